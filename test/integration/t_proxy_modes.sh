# PROXY detection per listener mode, with raw headers: not allowed, required, timed out,
# invalid (no banner before it), a v2 header one octet at a time, v2 LOCAL, a v1 header
# with a pipelined EHLO behind it, AUTHORITY/UNIQUE_ID logged, a bad CRC32C refused.
. "$(dirname "$0")/lib.sh"
PP="python3 $HERE/pp.py"
# 1. trusted listener; this client (127.0.0.1) is not a proxy host
rr_proxy_config trusted 'proxy_hosts: [192.0.2.1]'
rr_start
$PP v1 203.0.113.9 127.0.0.1 5000 25 > "$T/h1"
out=$($SMTPC --prefix "$T/h1" $RR_PORT '')
expect_match "$out" '^220 relay\.test' "untrusted: plain session banner"
expect_match "$out" '421 4\.7\.0 PROXY not allowed' "untrusted PROXY sender"
expect_match "$out" '\[closed\]' "closed after not allowed"
out=$($SMTPC $RR_PORT 'EHLO c.test\r\n|||QUIT\r\n')
expect_match "$out" '221 2\.0\.0' "untrusted plain client still served"
rr_stop
# 2. off: a PROXY header gets the same 421
rr_proxy_config off ''
rr_start
$PP v2 203.0.113.9 127.0.0.1 5000 25 > "$T/h2"
out=$($SMTPC --prefix "$T/h2" $RR_PORT '')
expect_match "$out" '421 4\.7\.0 PROXY not allowed' "off: v2 header"
rr_stop
# 3. required: a client that is not a proxy host is refused before any banner
rr_proxy_config required 'proxy_hosts: [192.0.2.1]'
rr_start
out=$($SMTPC $RR_PORT '')
expect_match "$out" '^421 4\.7\.0 PROXY required' "required"
expect_nomatch "$out" '220 ' "required: no banner"
rr_stop
# 4. trusted proxy host (127.0.0.1), proxy_timeout 2 s
rr_proxy_config trusted 'proxy_hosts: [127.0.0.0/8]' 
sed -i 's/    proxy_protocol: trusted/    proxy_protocol: trusted\n    proxy_timeout: 2/' "$T/ringrelay.yaml"
rr_start
t0=$(date +%s.%N)
out=$($SMTPC --quiet 3.5 $RR_PORT '')
t1=$(date +%s.%N)
expect_match "$out" '^421 4\.4\.2 PROXY timed out' "silent trusted client"
expect_nomatch "$out" '220 ' "timeout: no banner"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 1.9) }' || fail "timed out before proxy_timeout"
# malformed: no banner, 421 Invalid
out=$($SMTPC $RR_PORT 'PROXY TCP4 203.0.113.9 127.0.0.1 65536 25\r\nEHLO x\r\n')
expect_match "$out" '^421 4\.7\.0 Invalid PROXY header' "port 65536"
expect_nomatch "$out" '220 ' "invalid: no banner"
out=$($SMTPC $RR_PORT 'EHLO c.test\r\n')
expect_match "$out" '^421 4\.7\.0 Invalid PROXY header' "SMTP instead of a header"
$PP v2 203.0.113.9 127.0.0.1 5000 25 --bad-crc > "$T/h3"
out=$($SMTPC --prefix "$T/h3" $RR_PORT '')
expect_match "$out" '^421 4\.7\.0 Invalid PROXY header' "CRC32C mismatch"
# v2 one octet at a time, with CRC32C, AUTHORITY and UNIQUE_ID
$PP v2 203.0.113.77 127.0.0.1 5000 25 --tlv 0x02=mx.example.org --tlv 0x05=req-42 --crc > "$T/h4"
out=$($SMTPC --prefix "$T/h4" --prefix-chunk 1 $RR_PORT 'EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<far@example.net>\r\n|||QUIT\r\n')
expect_match "$out" '^220 relay\.test' "v2 octet by octet: banner"
expect_match "$out" '250 2\.1\.5 Ok' "v2 client 203.0.113.77 may relay"
grep -q 'event=proxy .*client=203\.0\.113\.77 proxy=127\.0\.0\.1 version=2 command=proxy unique_id=req-42 authority=mx\.example\.org crc32c=ok' "$T/relay.log" \
  || fail "TLVs not logged"
# v2 LOCAL (a health check): normal session on the socket address
$PP v2 127.0.0.1 127.0.0.1 0 0 --local > "$T/h5"
out=$($SMTPC --prefix "$T/h5" $RR_PORT 'EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<far@example.net>\r\n|||QUIT\r\n')
expect_match "$out" '^220 relay\.test' "LOCAL: banner"
expect_match "$out" '554 5\.7\.1' "LOCAL keeps the socket address (127.0.0.1 may not relay)"
grep -q 'event=proxy .*client=127\.0\.0\.1 proxy=127\.0\.0\.1 version=2 command=local' "$T/relay.log" || fail "LOCAL not logged"
# v1 with an EHLO pipelined in the same packet
out=$($SMTPC $RR_PORT 'PROXY TCP6 2001:db8::9 ::1 5000 25\r\nEHLO c.test\r\n|||QUIT\r\n')
expect_match "$out" '^220 relay\.test' "v1+EHLO: banner"
expect_match "$out" '250-PIPELINING' "pipelined EHLO answered"
grep -q 'event=proxy .*client=2001:db8::9 proxy=127\.0\.0\.1 version=1' "$T/relay.log" || fail "TCP6 not logged"
rr_stop
ok "PROXY modes"
