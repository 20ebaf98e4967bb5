# (Found by the hostile review of issue 9; fixed.) Was: a transport with more than 64 sources and a pool. site_key() builds
# usable[] for the first 64 sources only and hands egress_route() n = 64 while
# egress_pick() chose the home among all of them: a home of index >= 64 is "not of the
# family", so with source_failover: false its mail is deferred "4.4.1 no source of the
# transport can reach the next hop: no source address of the destination's family"
# (a wrong reason; max_age then bounces it), and with failover those sources are never used.
. "$(dirname "$0")/lib.sh"
command -v haproxy > /dev/null || fail "haproxy not installed"
L=$T/relay.log
sink good
PG=$S_PORT
HA=$(free_port)
haproxy_out a "$HA"
HPID=${HAP_PID[a]}
srcs=()
for i in $(seq 1 70); do srcs+=("      - { ipv4: 127.0.0.$i, helo: out$i.test }"); done
rr_config "transports:" \
  "  - id: good" "    nexthop: \"[127.0.0.1]:$PG\"" "    proxy_pool: tier" "    source_failover: false" \
  "    source:" "${srcs[@]}" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$HA\"]" \
  "    health_check: { interval: 1, timeout: 1, failure_threshold: 2, success_threshold: 2 }" \
  "routes:" "  - domains: [\"*\"]" "    transport: good" \
  "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 1 -n 140 -t 20 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 20 eval '[ "$(dumped good)" -ge 140 ]'
n=$(dumped good)
d=$(grep -c 'status=deferred' "$L")
grep -m2 'status=deferred' "$L" >&2
kill "$HPID"; wait "$HPID" 2>/dev/null
[ "$n" -eq 140 ] && [ "$d" -eq 0 ] || fail "70 sources, proxy up: $n of 140 delivered, $d deferred"
rr_stop
ok "70 sources"
