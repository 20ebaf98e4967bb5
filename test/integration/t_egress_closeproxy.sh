# (Found by the hostile review of issue 9; fixed.) Was: one of two proxies accepts and closes right after the PROXY header
# (what HAProxy does when it cannot bind the source address, per etc/haproxy-outbound.cfg,
# or when it is broken). The other proxy is fine. Its "closed before greeting" failures
# count towards the SITE's dead_after before the proxy's failure_threshold takes the proxy
# out, so the site is declared dead and every queued message is deferred (attempt counted,
# next try in retry_schedule[0]) instead of leaving through the working proxy.
. "$(dirname "$0")/lib.sh"
command -v haproxy > /dev/null || fail "haproxy not installed"
L=$T/relay.log
sink good; PG=$S_PORT
HA=$(free_port)
haproxy_out a "$HA"
HPID=${HAP_PID[a]}
# the broken proxy: accepts, reads the header, closes
python3 - "$T/bp.port" <<'PY' &
import socket, sys, os, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128); s.settimeout(0.5)
open(sys.argv[1] + ".t", "w").write(str(s.getsockname()[1])); os.rename(sys.argv[1] + ".t", sys.argv[1])
end = time.time() + 40
while time.time() < end:
    try: c, _ = s.accept()
    except socket.timeout: continue
    c.settimeout(2)
    try: c.recv(4096)
    except Exception: pass
    c.close()
PY
BP=$!
wait_until 5 test -s "$T/bp.port" || fail "broken proxy"
wait_until 5 python3 -c "import socket;socket.create_connection(('127.0.0.1',$HA),0.2).close()" 2>/dev/null || fail "haproxy"
rr_config "transports:" "  - id: good" "    nexthop: \"[127.0.0.1]:$PG\"" "    proxy_pool: tier" \
  "    source: { ipv4: 127.0.0.1 }" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$(cat "$T/bp.port")\", \"127.0.0.1:$HA\"]" \
  "    health_check: { interval: 5, timeout: 1, failure_threshold: 3, success_threshold: 3 }" \
  "routes:" "  - domains: [\"*\"]" "    transport: good" "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 40 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 10 eval '[ "$(dumped good)" -ge 40 ]'
n=$(dumped good); d=$(grep -c 'status=deferred' "$L")
grep -m1 'event=site_dead' "$L" >&2
kill "$HPID" "$BP"; wait "$HPID" "$BP" 2>/dev/null
[ "$n" -eq 40 ] && [ "$d" -eq 0 ] || fail "one broken proxy of two: $n of 40 delivered in 10 s, $d deferred"
rr_stop
ok "a proxy that closes after the header: its mail leaves through the other"
