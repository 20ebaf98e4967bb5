# (Found by the hostile review of issue 9; fixed.) Was: one dead destination (its MX refuses) reached through a healthy HAProxy
# counts as "closed before greeting" against the PROXY (passive check), so the proxy goes
# down for the source and every other destination's mail through it waits, although the
# proxy is fine. HAProxy here connects to the destination the header names
# (`server mx 0.0.0.0`), as etc/haproxy-outbound.cfg does.
. "$(dirname "$0")/lib.sh"
command -v haproxy > /dev/null || fail "haproxy not installed"
L=$T/relay.log
sink good
PG=$S_PORT
DEAD=$(free_port)                      # nothing listens: the MX of dead.test refuses
HA=$(free_port)
haproxy_out a "$HA"
HPID=${HAP_PID[a]}
rr_config "transports:" \
  "  - id: good" "    nexthop: \"[127.0.0.1]:$PG\"" "    proxy_pool: tier" \
  "    source: { ipv4: 127.0.0.1, helo: out.test }" \
  "  - id: dead" "    nexthop: \"[127.0.0.1]:$DEAD\"" "    proxy_pool: tier" \
  "    source: { ipv4: 127.0.0.1, helo: out.test }" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$HA\"]" \
  "    health_check: { interval: 5, timeout: 1, failure_threshold: 3, success_threshold: 3 }" \
  "routes:" "  - domains: [dead.test]" "    transport: dead" "  - domains: [\"*\"]" "    transport: good" \
  "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
# sanity: the tier works for good.test
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 1 -n 2 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 10 eval '[ "$(dumped good)" -ge 2 ]' || fail "tier does not deliver at all"
# ten messages to a destination whose MX is down
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 10 -t 10 -l 1k --to-domain dead.test > /dev/null 2>&1
wait_until 10 grep -q 'event=site_dead site=dead/' "$L" || fail "dead.test not found dead"
sleep 0.5
# now ten to the working destination, through the same (healthy) proxy
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 10 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 5 eval '[ "$(dumped good)" -ge 12 ]'
n=$(dumped good)
grep -E 'event=proxy_state .*state=down|event=source_wait' "$L" | head -3 >&2
kill "$HPID"; wait "$HPID" 2>/dev/null
[ "$n" -ge 12 ] || fail "a dead MX took the healthy proxy down: good.test got $((n - 2)) of 10 within 5 s"
rr_stop
ok "a dead destination does not stop other mail through the same proxy"

# A dead domain with three MX addresses is one destination, not three: "failure_threshold
# distinct destinations" counts sites (before, each address counted, and one domain took
# the only proxy down). dnsmasq answers its MX; nothing listens on their port.
command -v dnsmasq > /dev/null || fail "dnsmasq not installed"
dns_start --mx-host=bad.test,mx1.bad.test,10 --mx-host=bad.test,mx2.bad.test,10 \
  --mx-host=bad.test,mx3.bad.test,10 --host-record=mx1.bad.test,127.0.0.2 \
  --host-record=mx2.bad.test,127.0.0.3 --host-record=mx3.bad.test,127.0.0.4
haproxy_out a "$HA"
HPID=${HAP_PID[a]}
from=$(( $(wc -l < "$L") + 1 ))
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" "transports:" \
  "  - id: good" "    nexthop: \"[127.0.0.1]:$PG\"" "    proxy_pool: tier" \
  "    source: { ipv4: 127.0.0.1, helo: out.test }" \
  "  - id: bad" "    nexthop: mx" "    proxy_pool: tier" "    source: { ipv4: 127.0.0.1, helo: out.test }" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$HA\"]" \
  "    health_check: { interval: 5, timeout: 1, failure_threshold: 3, success_threshold: 3 }" \
  "routes:" "  - domains: [bad.test]" "    transport: bad" "  - domains: [\"*\"]" "    transport: good" \
  "queue:" "  retry_schedule: [60]" "  max_age: 600"
RR_TEST_MX_PORT=$DEAD rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 6 -t 10 -l 1k --to-domain bad.test > /dev/null 2>&1
wait_until 10 eval "tail -n +$from \"\$L\" | grep -q 'event=site_dead site=bad/'" || fail "bad.test not found dead"
n0=$(dumped good)
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 10 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 5 eval '[ "$(dumped good)" -ge $((n0 + 10)) ]'
n=$(( $(dumped good) - n0 ))
addrs=$(tail -n +$from "$L" | grep -oE 'relay=mx[123]\.bad\.test\[127\.0\.0\.[234]\]' | sort -u | wc -l)
kill "$HPID"; wait "$HPID" 2>/dev/null
[ "$addrs" -ge 2 ] || fail "only $addrs MX addresses of bad.test were tried"
expect_nomatch "$(tail -n +$from "$L" | grep 'event=proxy_state')" 'state=down' "the proxy down"
[ "$n" -ge 10 ] || fail "good.test got $n of 10 within 5 s"
rr_stop
ok "a dead domain's three MX addresses ($addrs tried) are one destination: the proxy stayed up"

# Three dead domains through two healthy proxies: before, their "closed before greeting"
# took both proxies down at once (attack run: all mail waited ~15 s, again at each three
# more dead domains). An unclear failure counts only when the site's mail went through
# another server: these never do.
haproxy_out a "$HA"
HPID=${HAP_PID[a]}
HB=$(free_port)
haproxy_out b "$HB"
HPB=${HAP_PID[b]}
D2=$(free_port); D3=$(free_port)
from=$(( $(wc -l < "$L") + 1 ))
rr_config "transports:" \
  "  - { id: good, nexthop: \"[127.0.0.1]:$PG\", proxy_pool: tier, source: { ipv4: 127.0.0.1 } }" \
  "  - { id: d1, nexthop: \"[127.0.0.1]:$DEAD\", proxy_pool: tier, source: { ipv4: 127.0.0.1 } }" \
  "  - { id: d2, nexthop: \"[127.0.0.1]:$D2\", proxy_pool: tier, source: { ipv4: 127.0.0.1 } }" \
  "  - { id: d3, nexthop: \"[127.0.0.1]:$D3\", proxy_pool: tier, source: { ipv4: 127.0.0.1 } }" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$HA\", \"127.0.0.1:$HB\"]" \
  "    health_check: { interval: 5, timeout: 1, failure_threshold: 3, success_threshold: 3 }" \
  "routes:" "  - { domains: [d1.test], transport: d1 }" "  - { domains: [d2.test], transport: d2 }" \
  "  - { domains: [d3.test], transport: d3 }" "  - { domains: [\"*\"], transport: good }" \
  "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
for k in 1 2 3; do
  "$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 4 -t 10 -l 1k --to-domain d$k.test > /dev/null 2>&1
done
wait_until 10 eval "[ \$(tail -n +$from \"\$L\" | grep -c 'event=site_dead site=d[123]/') -ge 3 ]" || fail "the dead domains not found dead"
n0=$(dumped good)
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 10 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 5 eval '[ "$(dumped good)" -ge $((n0 + 10)) ]'
n=$(( $(dumped good) - n0 ))
kill "$HPID" "$HPB"; wait "$HPID" "$HPB" 2>/dev/null
expect_nomatch "$(tail -n +$from "$L" | grep 'event=proxy_state')" 'state=down' "a proxy down"
[ "$n" -ge 10 ] || fail "good.test got $n of 10 within 5 s"
rr_stop
ok "three dead domains through two healthy proxies: neither went down, other mail went on at once"
