# etc/haproxy-inbound.cfg, the HAProxy tier in front of the relays, as an operator copies
# it (only its addresses changed to loopback ones): `haproxy -c` accepts it; HAProxy's
# SMTP health checks with the PROXY header keep the relay's `proxy_protocol: required`
# listener up; a client's mail through it is accepted with the client's address (from
# the PROXY header), and a connection straight to the relay without a header is refused.
. "$(dirname "$0")/lib.sh"
command -v haproxy > /dev/null || fail "haproxy not installed"
rr_config
sed -i "/^listeners:/,/^relay:/c\\
listeners:\\
  - id: mta\\
    address: 127.0.0.1\\
    port: 0\\
    proxy_protocol: required\\
    proxy_hosts: [127.0.0.1]\\
relay:" "$T/ringrelay.yaml"
rr_start
HP=$(free_port)
sed -e "s/^    log \/dev\/log local0$/    log stderr format raw local0 info/" \
    -e "s/^    bind :25$/    bind 127.0.0.1:$HP/" \
    -e "s/^    maxconn .*/    maxconn 1000/" \
    -e "s/^    server relay1 10.0.0.11:2525$/    server relay1 127.0.0.1:$RR_PORT/" \
    -e "/^    server relay2 /d" \
    -e "s/inter 5s fall 3 rise 2/inter 300ms fall 3 rise 2/" \
    "$HERE/../../etc/haproxy-inbound.cfg" > "$T/hap-in.cfg"
grep -q "server relay1 127.0.0.1:$RR_PORT" "$T/hap-in.cfg" || fail "the example's server line changed: the test's sed no longer fits"
haproxy -c -f "$T/hap-in.cfg" > "$T/hapc.out" 2>&1 || { cat "$T/hapc.out" >&2; fail "haproxy -c on the example"; }
haproxy -f "$T/hap-in.cfg" -db > "$T/hap-in.log" 2>&1 &
HPID=$!
wait_until 10 eval "python3 -c \"import socket;socket.create_connection(('127.0.0.1',$HP),0.2).close()\" 2>/dev/null" || { cat "$T/hap-in.log" >&2; fail "haproxy not listening"; }
# checks: EHLO behind a PROXY v2 LOCAL header (HAProxy's check-send-proxy), answered 250: up
wait_until 10 eval "[ \$(grep -c 'event=proxy .* version=2 command=local' '$T/relay.log') -ge 3 ]" || fail "no health checks with the PROXY header reached the relay"
grep -q 'Server ringrelay/relay1 is DOWN' "$T/hap-in.log" && { cat "$T/hap-in.log" >&2; fail "HAProxy took the relay down"; }
out=$(swaks --server 127.0.0.1:$HP --from a@example.com --to b@local.test 2>&1) || fail "swaks through HAProxy: $out"
expect_match "$out" '<-  250 2\.0\.0 Ok: queued as' "queued through the tier"
wait_log 'event=queued .* client=127\.0\.0\.1 from=<a@example\.com>' 5 || fail "no queued line with the client's address"
out=$(swaks --server 127.0.0.1:$RR_PORT --local-interface 127.0.0.2 --from a@example.com --to b@local.test --quit-after CONNECT 2>&1) || true   # not a proxy host
expect_match "$out" '421 4\.7\.0 PROXY required' "a connection without a header is refused"
kill $HPID; wait $HPID 2>/dev/null
rr_stop
ok "etc/haproxy-inbound.cfg: haproxy -c, SMTP checks with PROXY v2 keep the relay up, mail through it, no header refused"
