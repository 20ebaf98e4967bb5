# A proxy that dies under a transaction before its end of data went out: nothing can
# have been delivered, so the job goes back in line at once (once) and leaves through the
# other proxy, instead of waiting for its next try (retry_schedule, here 60 s). The
# connections that proxy carried are dead too, but the relay learns it one by one: a job
# put back is not given to one of them (cut twice, it would wait for its next try).
#  Pool [a proxy that forwards to the sink and, at the first MAIL FROM it sees, cuts that
#  connection, refuses new ones and cuts each other one as it begins its next transaction
#  (RSET or MAIL: replies still come back, so the relay sees them idle and well), a
#  HAProxy]: 30 messages all arrive within 10 s, none deferred, the cut ones logged
#  event=requeued, none put back twice.
. "$(dirname "$0")/lib.sh"
command -v haproxy > /dev/null || fail "haproxy not installed"
L=$T/relay.log
sink good --fail delay=300ms@100%; PG=$S_PORT   # each message 0.3 s: the dying proxy's connections get some (else, under load, HAProxy's may take all 30 first)
HA=$(free_port)
haproxy_out a "$HA"
HPID=${HAP_PID[a]}
# the dying proxy: reads the PROXY header, forwards to the sink; at the first MAIL FROM it
# dies: that connection dropped, the listening socket closed (new connects refused), every
# other connection dropped when it sends RSET or MAIL
python3 - "$T/dp.port" "$PG" <<'PY' &
import socket, sys, os, time, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128); s.settimeout(0.2)
open(sys.argv[1] + ".t", "w").write(str(s.getsockname()[1])); os.rename(sys.argv[1] + ".t", sys.argv[1])
sink = int(sys.argv[2])
dead = threading.Event()
conns = []
def header(c):
    h = b""
    while len(h) < 16: h += c.recv(16 - len(h))
    n = int.from_bytes(h[14:16], "big")
    while n > 0: n -= len(c.recv(n))
def down(x):
    try: x.shutdown(socket.SHUT_RDWR)
    except Exception: pass
def pump(a, b, watch):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            if watch and (b"MAIL FROM" in d or (dead.is_set() and d.startswith(b"RSET"))):
                dead.set()
                break
            b.sendall(d)
    except Exception: pass
    down(a); down(b)
def serve(c):
    try:
        c.settimeout(10); header(c)
        u = socket.create_connection(("127.0.0.1", sink), 2)
    except Exception:
        c.close(); return
    conns.extend([c, u])
    threading.Thread(target=pump, args=(u, c, False), daemon=True).start()
    pump(c, u, True)
end = time.time() + 40
while time.time() < end and not dead.is_set():
    try: c, _ = s.accept()
    except socket.timeout: continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
s.close()
time.sleep(max(0, end - time.time()))
PY
DP=$!
wait_until 5 test -s "$T/dp.port" || fail "dying proxy"
rr_config "transports:" "  - id: good" "    nexthop: \"[127.0.0.1]:$PG\"" "    proxy_pool: tier" \
  "    source: { ipv4: 127.0.0.1 }" "    dead_after: 20" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$(cat "$T/dp.port")\", \"127.0.0.1:$HA\"]" \
  "    health_check: { interval: 5, timeout: 1, failure_threshold: 3, success_threshold: 3 }" \
  "routes:" "  - domains: [\"*\"]" "    transport: good" "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 30 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait_until 10 eval '[ "$(dumped good)" -ge 30 ]'
n=$(dumped good); d=$(grep -c 'status=deferred' "$L"); rq=$(grep -c 'event=requeued' "$L")
kill "$HPID" "$DP"; wait "$HPID" "$DP" 2>/dev/null
[ "$n" -eq 30 ] && [ "$d" -eq 0 ] || fail "$n of 30 delivered in 10 s ($d deferred, $rq requeued)"
[ "$rq" -ge 1 ] || fail "no transaction was cut and put back (the dying proxy was not used?)"
# a job cut twice waits for its next try: deferrals are only of jobs already put back once
rqq=$(grep -o 'event=requeued qid=[0-9A-Z]*' "$L" | sort | uniq -d | wc -l)
[ "$rqq" -eq 0 ] || fail "$rqq jobs were put back more than once"
rr_stop
ok "a proxy cut $rq transactions before their end of data: put back at once, all 30 delivered, $d deferred"
