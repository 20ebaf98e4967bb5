# (Found by the hostile review of issue 9; fixed.) Was: health_check.probe is a single point of failure. When the probe target
# is down while both proxies and the destination are fine, every (server, source) pair is
# marked down ("closed before greeting"), every source waits, and no mail leaves at all,
# for as long as the probe target stays down (nothing says the proxies are fine).
. "$(dirname "$0")/lib.sh"
command -v haproxy > /dev/null || fail "haproxy not installed"
L=$T/relay.log
sink good
PG=$S_PORT
PROBE=$(free_port)                     # the probe target: down
declare -a HP
for n in 0 1; do
  P[$n]=$(free_port)
  haproxy_out "h$n" "${P[$n]}"
  HP[$n]=${HAP_PID[h$n]}
done
rr_config "transports:" \
  "  - id: good" "    nexthop: \"[127.0.0.1]:$PG\"" "    proxy_pool: tier" \
  "    source:" "      - { ipv4: 127.0.0.1, helo: out1.test }" "      - { ipv4: 127.0.0.2, helo: out2.test }" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:${P[0]}\", \"127.0.0.1:${P[1]}\"]" \
  "    health_check: { interval: 1, timeout: 1, failure_threshold: 2, success_threshold: 2, probe: \"[127.0.0.1]:$PROBE\" }" \
  "routes:" "  - domains: [\"*\"]" "    transport: good" \
  "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
sleep 3
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 10 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 8 eval '[ "$(dumped good)" -ge 10 ]'
n=$(dumped good)
grep -E 'event=proxy_state .*state=down|event=source_wait' "$L" | head -4 >&2
kill "${HP[0]}" "${HP[1]}"; wait "${HP[0]}" "${HP[1]}" 2>/dev/null
[ "$n" -ge 10 ] || fail "probe target down, proxies and destination fine: $n of 10 delivered in 8 s"
grep -q 'event=probe_target_unreachable pool=tier' "$L" || fail "the unreachable probe target was not logged"
if grep -q 'event=proxy_state .*state=down' "$L"; then fail "a pair went down for the probe target's failure"; fi
rr_stop
ok "a probe target that is down does not stop the mail"
