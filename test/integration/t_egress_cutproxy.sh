# A proxy that passes every greeting and cuts every transaction (its path out drops a
# message's packets, a timeout shorter than a transaction, a proxy killing sessions) goes
# down: cuts under a connection's first transaction count towards failure_threshold
# distinct destinations, in a run that neither the greetings nor the server probes break.
# Before, the greeting counted as a success and such a proxy stayed up for ever, taking
# its share of every site's connections and sending each of their jobs round again.
# And the other side of it: a proxy that cuts the transactions of one destination only
# (that destination's doing, as far as anyone can tell) stays up.
#  Three sinks (three destinations, three transports d1..d3), a pool [the cutting proxy,
#  a HAProxy], failure_threshold 3. The cutting proxy forwards to the destination of the
#  PROXY v2 header and, on a connection whose destination it cuts, closes both sides when
#  the relay's MAIL FROM comes.
. "$(dirname "$0")/lib.sh"
command -v haproxy > /dev/null || fail "haproxy not installed"
L=$T/relay.log
# each message 0.3 s at the sinks: every connection of a site gets jobs (else, under load,
# those through HAProxy may take them all before one through the cutting proxy greets)
sink d1 --fail delay=300ms@100%; P1=$S_PORT
sink d2 --fail delay=300ms@100%; P2=$S_PORT
sink d3 --fail delay=300ms@100%; P3=$S_PORT
HA=$(free_port)
haproxy_out a "$HA"
HPID=${HAP_PID[a]}

# cutproxy MODE PORTFILE: MODE "all" cuts every destination's, a port number that one's.
# Writes the number of delivery connections it took (PROXY PROXY headers) to PORTFILE.n.
cutproxy() {
python3 - "$1" "$2" <<'PY' &
import socket, sys, os, time, threading
mode, pf = sys.argv[1], sys.argv[2]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128); s.settimeout(0.2)
open(pf + ".t", "w").write(str(s.getsockname()[1])); os.rename(pf + ".t", pf)
taken = [0]
lock = threading.Lock()
def recvn(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: raise EOFError
        b += d
    return b
def down(x):
    try: x.shutdown(socket.SHUT_RDWR)
    except Exception: pass
def pump(a, b, cut):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            if cut and b"MAIL FROM" in d: break
            b.sendall(d)
    except Exception: pass
    down(a); down(b)
def serve(c):
    try:
        c.settimeout(10)
        h = recvn(c, 16)
        rest = recvn(c, int.from_bytes(h[14:16], "big"))
        if h[12] & 0x0f == 0 or h[13] != 0x11:      # LOCAL (a server probe), or not TCP/IPv4
            c.close(); return
        dst = socket.inet_ntoa(rest[4:8]); port = int.from_bytes(rest[10:12], "big")
        u = socket.create_connection((dst, port), 2)
        u.settimeout(None); c.settimeout(None)
    except Exception:
        c.close(); return
    with lock:
        taken[0] += 1
        open(pf + ".n.t", "w").write(str(taken[0])); os.rename(pf + ".n.t", pf + ".n")
    cut = mode == "all" or str(port) == mode
    threading.Thread(target=pump, args=(u, c, False), daemon=True).start()
    pump(c, u, cut)
end = time.time() + 60
while time.time() < end:
    try: c, _ = s.accept()
    except socket.timeout: continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
CP=$!
wait_until 5 test -s "$2" || fail "cutting proxy"
}

# relay_with PORTFILE: the relay, its pool [cutting proxy, HAProxy]
relay_with() {
  rr_config "transports:" \
    "  - { id: t1, nexthop: \"[127.0.0.1]:$P1\", proxy_pool: tier, source: { ipv4: 127.0.0.1 }, dead_after: 50 }" \
    "  - { id: t2, nexthop: \"[127.0.0.1]:$P2\", proxy_pool: tier, source: { ipv4: 127.0.0.1 }, dead_after: 50 }" \
    "  - { id: t3, nexthop: \"[127.0.0.1]:$P3\", proxy_pool: tier, source: { ipv4: 127.0.0.1 }, dead_after: 50 }" \
    "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$(cat "$1")\", \"127.0.0.1:$HA\"]" \
    "    health_check: { interval: 5, timeout: 1, failure_threshold: 3, success_threshold: 3 }" \
    "routes:" "  - { domains: [d1.test], transport: t1 }" "  - { domains: [d2.test], transport: t2 }" \
    "  - { domains: [d3.test], transport: t3 }" \
    "queue:" "  retry_schedule: [1]" "  max_age: 600"
  rr_start
}
blast() {  # blast N: N messages to each of d1..d3, at once
  local k pids=()
  for k in 1 2 3; do
    "$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n "$1" -t 10 -l 1k --to-domain d$k.test > /dev/null 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
}
all_in() { [ "$(dumped d1)" -ge "$1" ] && [ "$(dumped d2)" -ge "$1" ] && [ "$(dumped d3)" -ge "$1" ]; }
ctl() { "$RR_BIN" ctl -c "$T/ringrelay.yaml" "$@"; }

# (rr_start appends to the same log: phase 3 reads its own lines)
# 1. it cuts every transaction: down by delivery, reason cut, and then no more traffic
cutproxy all "$T/cp1.port"
CPORT=$(cat "$T/cp1.port")
relay_with "$T/cp1.port"
blast 10
wait_until 10 grep -q "event=proxy_state pool=tier server=127.0.0.1:$CPORT .*state=down" "$L" ||
  fail "a proxy that cut every transaction is not down: $(grep -c event=requeued "$L") requeued; $(ctl proxies)"
expect_match "$(grep "event=proxy_state pool=tier server=127.0.0.1:$CPORT" "$L")" \
  'state=down .*reason="cut after greeting \(closed\)" by=delivery' "the down line"
expect_match "$(ctl proxies)" "server=127\\.0\\.0\\.1:$CPORT source=- state=down .*last_failure=cut" "ctl proxies"
wait_until 20 all_in 10 || fail "not all delivered: $(dumped d1) $(dumped d2) $(dumped d3) of 10 each"
n1=$(cat "$T/cp1.port.n")
blast 10
wait_until 20 all_in 20 || fail "not all delivered after it went down: $(dumped d1) $(dumped d2) $(dumped d3) of 20 each"
n2=$(cat "$T/cp1.port.n")
[ "$n2" -eq "$n1" ] || fail "$((n2 - n1)) connections went through the proxy after it was down"
rq=$(grep -c 'event=requeued' "$L")
rr_stop
kill "$CP"; wait "$CP" 2>/dev/null
ok "a proxy that cut every transaction ($n1 connections, $rq put back) went down by delivery; the next 30 messages left through the other"

# 2. it cuts only d1's transactions: one destination, no news of the proxy: it stays up
rm -f "$T"/d?/*.eml
cutproxy "$P1" "$T/cp2.port"
CPORT=$(cat "$T/cp2.port")
relay_with "$T/cp2.port"
blast 10
wait_until 20 all_in 10 || fail "not all delivered: $(dumped d1) $(dumped d2) $(dumped d3) of 10 each"
cuts=$(grep -c "event=requeued .*proxy=127.0.0.1:$CPORT" "$L")
[ "$cuts" -ge 1 ] || fail "the proxy cut no transaction of d1 (not used?)"
expect_nomatch "$(grep "event=proxy_state" "$L")" "server=127\\.0\\.0\\.1:$CPORT .*state=down" "a down line"
expect_match "$(ctl proxies)" "server=127\\.0\\.0\\.1:$CPORT source=- state=up" "ctl proxies"
rr_stop
kill "$CP"; wait "$CP" 2>/dev/null
ok "a proxy that cut only one destination's transactions ($cuts) stayed up"

# 3. destinations that cut everyone (sinks dropping the connection at each end of data:
# what an attacker's domains, or one domain's many MX addresses, can do) through two
# healthy proxies: no proxy goes down (a cut counts only when the site's mail went through
# another server of the pool), and other mail goes on through both
HB=$(free_port)
haproxy_out b "$HB"
HPB=${HAP_PID[b]}
sink x1 --fail drop=100%; X1=$S_PORT
sink x2 --fail drop=100%; X2=$S_PORT
sink x3 --fail drop=100%; X3=$S_PORT
rm -f "$T"/d?/*.eml
from=$(( $(wc -l < "$L") + 1 ))           # this phase's log lines only
rr_config "transports:" \
  "  - { id: t1, nexthop: \"[127.0.0.1]:$X1\", proxy_pool: tier, source: { ipv4: 127.0.0.1 } }" \
  "  - { id: t2, nexthop: \"[127.0.0.1]:$X2\", proxy_pool: tier, source: { ipv4: 127.0.0.1 } }" \
  "  - { id: t3, nexthop: \"[127.0.0.1]:$X3\", proxy_pool: tier, source: { ipv4: 127.0.0.1 } }" \
  "  - { id: good, nexthop: \"[127.0.0.1]:$P1\", proxy_pool: tier, source: { ipv4: 127.0.0.1 } }" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$HA\", \"127.0.0.1:$HB\"]" \
  "    health_check: { interval: 5, timeout: 1, failure_threshold: 3, success_threshold: 3 }" \
  "routes:" "  - { domains: [x1.test], transport: t1 }" "  - { domains: [x2.test], transport: t2 }" \
  "  - { domains: [x3.test], transport: t3 }" "  - { domains: [\"*\"], transport: good }" \
  "queue:" "  retry_schedule: [1]" "  max_age: 600"
rr_start
pids=()
for k in 1 2 3; do
  "$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 6 -t 10 -l 1k --to-domain x$k.test > /dev/null 2>&1 &
  pids+=($!)
done
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 10 -t 10 -l 1k --to-domain good.test > /dev/null 2>&1
wait "${pids[@]}"
wait_until 20 eval '[ "$(dumped d1)" -ge 10 ]' || fail "good mail: $(dumped d1) of 10"
sleep 2                                  # retries of the cut ones (retry_schedule 1 s)
drops=$(tail -n +$from "$L" | grep -c 'lost connection')
[ "$drops" -ge 6 ] || fail "only $drops transactions cut (the dropping sinks not reached?)"
expect_nomatch "$(tail -n +$from "$L" | grep 'event=proxy_state')" 'state=down' "a proxy down"
expect_nomatch "$(ctl proxies)" 'state=down' "ctl proxies"
rr_stop
kill "$HPID" "$HPB"; wait "$HPID" "$HPB" 2>/dev/null
ok "destinations that cut everyone ($drops cuts, three domains, through two proxies): no proxy down, other mail went on"
