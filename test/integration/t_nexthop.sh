# Next hops in brackets and a reload that changes them.
#  1. "[host]:port" with a host name: its A/AAAA through dnsmasq (no MX lookup, as Postfix's
#     brackets), delivered there; a bracketed host that does not resolve defers (4.4.3),
#     never bounces: the next hop is configuration, not the recipient's fault
#  2. a reload turns a transport's "[address]:port" next hop into "mx" while mail waits for
#     its retry: the waiting recipients are grouped again under the new configuration and
#     delivered through the domain's MX (they were bounced 5.1.2 once: the old next hop
#     taken for the domain)
. "$(dirname "$0")/lib.sh"
command -v dnsmasq > /dev/null || fail "dnsmasq not installed (scripts/install-deps.sh)"

# ---- 1. a host name in brackets ----------------------------------------------------------------
sink hn
dns_start --log-queries --host-record=smarthost.test,127.0.0.1 --mx-host=smarthost.test,elsewhere.test,10 \
          --mx-host=mx.test,mail.mx.test,10 --host-record=mail.mx.test,127.0.0.1
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" \
          "transports:" "  - id: hub" "    nexthop: \"[smarthost.test]:$S_PORT\"" \
          "  - id: broken" "    nexthop: \"[nowhere.test]:25\"" \
          "routes:" "  - domains: [broken.test]" "    transport: broken" \
          "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u@example.org > /dev/null 2>&1 || fail "swaks (host name)"
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u@broken.test > /dev/null 2>&1 || fail "swaks (broken)"
one() { [ "$(dumped hn)" -ge 1 ]; }
wait_until 20 one || fail "nothing delivered to [smarthost.test]"
grep -q "to=<u@example.org>, relay=smarthost.test\[127.0.0.1\]:$S_PORT, .*status=sent" "$T/relay.log" ||
  fail "not delivered to the bracketed host's A record"
grep -q 'query\[A\] smarthost.test' "$T/dnsmasq.log" || fail "no A query for the bracketed host logged"
grep -q 'query\[MX\] smarthost.test' "$T/dnsmasq.log" && fail "an MX lookup for a bracketed host"
wait_log 'to=<u@broken.test>.*dsn=4\.4\.3, status=deferred \(4\.4\.3 next hop \[nowhere\.test\]:25: ' 20 ||
  fail "a bracketed host that does not resolve was not deferred 4.4.3"
grep -q 'to=<u@broken.test>.*status=bounced' "$T/relay.log" && fail "a bad next hop bounced"
rr_stop
ok "[smarthost.test]:port delivered through its A record (no MX asked); [nowhere.test] deferred 4.4.3"

# ---- 2. a reload from [address]:port to mx ------------------------------------------------------
: > "$T/relay.log"
rm -rf "$T/spool"
sink mx
PM=$S_PORT
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" \
          "transports:" "  - id: default" "    nexthop: \"[127.0.0.1]:1\"" \
          "queue:" "  retry_schedule: [2]" "  max_age: 600"
RR_TEST_MX_PORT=$PM rr_start
for i in 1 2 3; do
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u$i@mx.test > /dev/null 2>&1 || fail "swaks $i"
done
wait_log 'to=<u3@mx.test>.*status=deferred' 20 || fail "not deferred while the next hop refuses"
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" \
          "transports:" "  - id: default" "    nexthop: mx" \
          "queue:" "  retry_schedule: [2]" "  max_age: 600"
kill -HUP "$RR_PID"
wait_log 'event=reloaded' 10 || fail "no reload"
three() { [ "$(dumped mx)" -ge 3 ]; }
wait_until 30 three || fail "only $(dumped mx) of 3 delivered through the MX after the reload"
grep -q 'status=bounced' "$T/relay.log" && { grep 'status=bounced' "$T/relay.log" >&2; fail "a recipient bounced across the reload"; }
grep -q 'to=<u1@mx.test>, relay=mail.mx.test\[127.0.0.1\]' "$T/relay.log" || fail "not delivered via the MX host"
rr_stop
dns_stop
ok "reload [127.0.0.1]:1 -> mx: the 3 waiting recipients were regrouped and delivered via the MX, none bounced"

# ---- 3. a reload moves jobs already waiting in a ready queue ----------------------------------
: > "$T/relay.log"
rm -rf "$T/spool"
python3 "$HERE/badhop.py" slow "$T/slow.port" "$T/slow.count" 60 &
wait_until 10 test -s "$T/slow.port" || fail "badhop slow did not start"
sink moved
MP=$S_PORT
rr_config "transports:" "  - id: a" "    nexthop: \"[127.0.0.1]:$(cat "$T/slow.port")\"" "    max_connections: 1" \
          "  - id: b" "    nexthop: \"[127.0.0.1]:$MP\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: a"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 30 -t 30 -l 1k > /dev/null 2>&1 || fail "ringblast (reroute)"
sed -i 's/^    transport: a$/    transport: b/' "$T/ringrelay.yaml"
kill -HUP "$RR_PID"
wait_log 'event=reloaded' 10 || fail "no reload"
at_a() { sed -nE 's/.*accepted=([0-9]+).*/\1/p' "$T/slow.count"; }
all30() { [ $(( $(at_a) + $(dumped moved) )) -ge 30 ]; }
wait_until 30 all30 || fail "$(at_a) at the old hop + $(dumped moved) at the new one, want 30"
[ "$(dumped moved)" -ge 20 ] || fail "only $(dumped moved) of 30 moved to the new route: waiting jobs kept the old one"
grep -q 'event=rerouted' "$T/relay.log" || fail "no rerouted line"
rr_stop
ok "reload while 30 waited for a slow hop (max_connections 1): $(dumped moved) went the new route at once, $(at_a) had gone the old"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
