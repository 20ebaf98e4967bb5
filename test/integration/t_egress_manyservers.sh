# (Found by the hostile review of issue 9; fixed.) Was: a pool of more than 64 servers. egress_server_pick() looks at the first
# 64 only (bool ok[64]) while egress_source_usable() looks at all of them: with servers
# 1..64 down and server 65 up, the source counts as usable (no source_wait), yet no server
# is ever picked: dconn_open() returns false, nothing is logged, nothing retried: the mail
# sits in the ready queue for good.
. "$(dirname "$0")/lib.sh"
command -v haproxy > /dev/null || fail "haproxy not installed"
L=$T/relay.log
sink good
PG=$S_PORT
HA=$(free_port)
haproxy_out a "$HA"
HPID=${HAP_PID[a]}
# 64 servers where nothing listens (ports just freed: refused), then the real one
srv=$(python3 -c '
import socket
ss=[socket.socket() for _ in range(64)]
for s in ss: s.bind(("127.0.0.1",0))
print(", ".join("\"127.0.0.1:%d\"" % s.getsockname()[1] for s in ss))')
srv="$srv, \"127.0.0.1:$HA\""
rr_config "transports:" \
  "  - id: good" "    nexthop: \"[127.0.0.1]:$PG\"" "    proxy_pool: tier" \
  "    source: { ipv4: 127.0.0.1 }" \
  "proxy_pools:" "  - id: tier" "    servers: [$srv]" \
  "    health_check: { interval: 1, timeout: 1, failure_threshold: 1, success_threshold: 1 }" \
  "routes:" "  - domains: [\"*\"]" "    transport: good" \
  "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
wait_until 10 eval '[ "$(grep -c "event=proxy_state .*state=down" "$L")" -ge 64 ]' || fail "the 64 dead servers not seen down"
grep -q "server=127.0.0.1:$HA source=- state=down" "$L" && fail "the working server went down"
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 1 -n 5 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 8 eval '[ "$(dumped good)" -ge 5 ]'
n=$(dumped good)
kill "$HPID"; wait "$HPID" 2>/dev/null
[ "$n" -ge 5 ] || fail "server 65 up, 1..64 down: $n of 5 delivered in 8 s; source_wait lines: $(grep -c source_wait "$L"), status= lines: $(grep -c 'status=' "$L")"
rr_stop
ok "65th server used"
