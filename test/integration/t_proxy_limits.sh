# After a PROXY header, per-IP connection limits count the proxied client, not the proxy:
# two connections proxied for 203.0.113.9 exceed max_connections_per_ip 1; one proxied for
# 203.0.113.10 through the same proxy at the same time is served.
. "$(dirname "$0")/lib.sh"
rr_proxy_config trusted 'proxy_hosts: [127.0.0.1]' 'limits:' '  max_connections_per_ip: 1'
rr_start
PP="python3 $HERE/pp.py"
$PP v1 203.0.113.9 127.0.0.1 5000 25 > "$T/a"
$PP v1 203.0.113.10 127.0.0.1 5001 25 > "$T/b"
$SMTPC --quiet 3 --prefix "$T/a" $RR_PORT '' > "$T/first" &
first=$!
sleep 0.5
out=$($SMTPC --prefix "$T/a" $RR_PORT '')
expect_match "$out" '421 4\.7\.0 relay\.test Error: too many connections from 203\.0\.113\.9' "second 203.0.113.9"
out=$($SMTPC --prefix "$T/b" $RR_PORT 'QUIT\r\n')
expect_match "$out" '^220 relay\.test' "203.0.113.10 served"
wait $first
expect_match "$(cat "$T/first")" '^220 relay\.test' "first 203.0.113.9 served"
rr_stop
ok "per-IP limit keys on the proxied client"
