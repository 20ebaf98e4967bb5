# Implicit TLS (issue 10, tls_mode: implicit, port 465 style): Python's ssl client and
# swaks --tlsc deliver, EHLO offers no STARTTLS, Received: says ESMTPS; a PROXY header
# from a host that may not send one gets its 421 in plaintext; behind a real
# HAProxy (send-proxy-v2) the header comes first and the bytes after it go to TLS; a
# flood of handshakes does not starve a session already up (the per-turn budget).
. "$(dirname "$0")/lib.sh"
. "$HERE/tls_lib.sh"
tls_cert cert
tls_config implicit 'proxy_protocol: trusted' 'proxy_hosts: [127.0.0.2/32]'
rr_start
out=$($TLSC implicit $RR_PORT 2>&1) || fail "implicit client: $out"
expect_match "$out" 'banner: 220 relay\.test ESMTP' "banner over TLS"
expect_nomatch "$out" 'ehlo:.*STARTTLS' "STARTTLS offered under implicit TLS"
expect_match "$out" 'reply: 250 2\.0\.0 Ok: queued as' "implicit: queued"
out=$(swaks --server 127.0.0.1:$RR_PORT --tlsc --from a@example.com --to b@example.net 2>&1) \
  || fail "swaks --tlsc: $out"
expect_match "$out" 'queued as' "swaks --tlsc queued"

# A PROXY header from a host not in proxy_hosts: refused in plaintext, before any TLS.
out=$(timeout 10 python3 -c "
import socket
s=socket.create_connection(('127.0.0.1',$RR_PORT)); s.sendall(b'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')
print(s.recv(200).decode())")
expect_match "$out" '^421 4\.7\.0 PROXY not allowed' "untrusted PROXY header on an implicit listener"

# HAProxy: plain TCP from the client, PROXY v2 to the relay, the client's TLS after it.
HAP_BIND_OPTS='' hap_start send-proxy-v2 127.0.0.2
out=$(swaks --server 127.0.0.1:$HAP_PORT --tlsc --from a@example.com --to b@example.net \
      --header 'Subject: via haproxy' 2>&1) || fail "swaks --tlsc via HAProxy: $out"
expect_match "$out" 'TLS started with cipher' "TLS via HAProxy"
qid=$(printf '%s' "$out" | sed -nE 's/.*queued as ([0-9A-V]+).*/\1/p')
[ -n "$qid" ] || fail "not queued via HAProxy: $out"
hap_stop
grep -q "event=proxy .*proxy=127\.0\.0\.2 version=2" "$T/relay.log" || fail "no PROXY v2 line"
grep -Eq "event=queued .*qid=$qid .*tls=TLSv1\.3" "$T/relay.log" || fail "queued via HAProxy without TLS"
"$RR_BIN" --show "$qid" -c "$T/ringrelay.yaml" | grep -q "with ESMTPS id $qid" || fail "Received: not ESMTPS"
rr_stop

# A handshake flood against one worker whose budget is 2 handshake steps a turn (the test
# build's knob, so that the flood meets it at once): the session already up keeps being
# answered, and handshakes waited for the budget (tls_budget_waits at the worker's end).
tls_config implicit -- 'workers: 1'
sed -i '/^workers: 2$/d' "$T/ringrelay.yaml"
RR_TEST_TLS_BUDGET=2 rr_start
out=$($TLSC flood $RR_PORT 2 2>&1) || fail "flood client: $out"
h=$(printf '%s' "$out" | sed -nE 's/handshakes: ([0-9]+)/\1/p')
n=$(printf '%s' "$out" | sed -nE 's/noops: ([0-9]+)/\1/p')
w=$(printf '%s' "$out" | sed -nE 's/slowest_ms: ([0-9]+)/\1/p')
echo "flood: $h handshakes in 2 s, $n NOOPs answered, slowest ${w} ms"
[ "$h" -ge 50 ] || fail "only $h handshakes"
[ "$n" -ge 20 ] && [ "$w" -lt 1000 ] || fail "the session up was starved: $n NOOPs, slowest $w ms"
rr_stop
waits=$(sed -nE 's/.*event=worker_down .*tls_budget_waits=([0-9]+).*/\1/p' "$T/relay.log" | tail -1)
echo "flood: feeds refused for want of budget: $waits"
[ "${waits:-0}" -gt 0 ] || fail "the budget never held a handshake back"
ok "implicit TLS: python, swaks --tlsc, HAProxy PROXY v2 then TLS, $h handshakes while a session stayed served"
