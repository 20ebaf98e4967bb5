# The message data the sessions hold until committed is bounded by limits.max_data_memory
# (for the whole relay), whatever the clients do: before, it was bounded only by
# max_connections x max_message_size (500 connections from one address streaming 50 MiB
# each without ending: 25 GB). A session's buffer grows by doubling; a growth that does not
# fit is refused: the rest of that message is read and thrown away, its end answered
# "452 4.3.1 Insufficient system storage", and what it held is given back at once. MAIL
# is refused the same way while its SIZE= (or the smallest buffer) does not fit.
#  max_message_size 2 MiB, max_data_memory 7 MiB: three clients each send 1.5 MiB of data
#  and hold it (buffers of 2 MiB: 6 MiB held, seen on ringrelay_inbound_data_bytes); a
#  fourth grows to 1 MiB and is refused past it (452 at its end, its MiB given back); a
#  MAIL with SIZE=2000000 is refused at once, one without SIZE= is not; the three end:
#  250, and the gauge is back to 0; a fourth message goes through.
. "$(dirname "$0")/lib.sh"
L=$T/relay.log
rr_config "metrics: { address: 127.0.0.1, port: 0 }" \
  "limits: { max_message_size: 2097152, max_data_memory: 7340032 }"
rr_start
MP=$(sed -nE 's/.*event=metrics_listen addr=127\.0\.0\.1:([0-9]+) .*/\1/p' "$L" | tail -1)
[ -n "$MP" ] || fail "no metrics_listen line"
python3 - "$RR_PORT" "$MP" > "$T/out.txt" 2>&1 <<'PY' || { cat "$T/out.txt" >&2; fail "the clients"; }
import socket, sys, time, urllib.request
port, mport = int(sys.argv[1]), int(sys.argv[2])
def gauge(name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5).read().decode()
    for l in body.splitlines():
        if l.startswith(name + " "):
            return float(l.split()[1])
    raise SystemExit("no " + name)
def wait_gauge(name, want, what):
    end = time.time() + 20
    while time.time() < end:
        g = gauge(name)
        if g == want:
            return
        time.sleep(0.05)
    raise SystemExit("%s: %s is %s, not %s" % (what, name, gauge(name), want))
class C:
    def __init__(s):
        s.s = socket.create_connection(("127.0.0.1", port), 5)
        s.s.settimeout(20)
        s.buf = b""
        s.reply()                       # greeting
        s.cmd(b"EHLO c.example")
    def reply(s):
        while True:
            while b"\r\n" not in s.buf:
                d = s.s.recv(65536)
                if not d:
                    raise SystemExit("closed; had %r" % s.buf)
                s.buf += d
            line, s.buf = s.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return line.decode()
    def cmd(s, c):
        s.s.sendall(c + b"\r\n")
        return s.reply()
    def begin(s, size=None):
        r = s.cmd(b"MAIL FROM:<a@x.example>" + (b" SIZE=%d" % size if size else b""))
        if not r.startswith("250"):
            return r
        assert s.cmd(b"RCPT TO:<b@example.net>").startswith("250")
        return s.cmd(b"DATA")
    def data(s, n):
        line = b"x" * 78 + b"\r\n"
        s.s.sendall(line * (n // len(line)))
    def end(s):
        s.s.sendall(b".\r\n")
        return s.reply()
MB = 1 << 20
G = "ringrelay_inbound_data_bytes"
wait_gauge(G, 0, "at start")
held = []
for k in range(3):
    c = C()
    r = c.begin()
    assert r.startswith("354"), r
    c.data(3 * MB // 2)
    wait_gauge(G, 2 * MB * (k + 1), "client %d holding 1.5 MiB" % (k + 1))
    held.append(c)
print("held three: %d" % gauge(G))
# the fourth: room for 1 MiB more only
c4 = C()
r = c4.begin()
assert r.startswith("354"), "fourth DATA: " + r
c4.data(3 * MB // 2)
time.sleep(0.5)
wait_gauge(G, 6 * MB, "the fourth refused past 1 MiB and gave it back")
r = c4.end()
assert r == "452 4.3.1 Insufficient system storage", "fourth end: " + r
print("fourth: " + r)
# MAIL with a SIZE= that does not fit, and one without
c5 = C()
r = c5.begin(size=2000000)
assert r == "452 4.3.1 Insufficient system storage", "MAIL SIZE=2000000: " + r
print("MAIL SIZE=2000000: " + r)
r = c5.cmd(b"RSET"); assert r.startswith("250"), r
r = c5.begin()
assert r.startswith("354"), "MAIL without SIZE, DATA: " + r
r = c5.end()
assert r.startswith("250"), "a small message while 6 MiB are held: " + r
print("small message: " + r)
for k, c in enumerate(held):
    r = c.end()
    assert r.startswith("250"), "client %d end: %s" % (k + 1, r)
print("three ended: 250")
r = c4.begin()
assert r.startswith("354"), r
c4.data(3 * MB // 2)
r = c4.end()
assert r.startswith("250"), "the fourth again: " + r
print("fourth again: " + r)
for c in held + [c4, c5]:
    c.cmd(b"QUIT")
wait_gauge(G, 0, "all ended")
# (counters are published by each worker every 100 ms: waited for, not sampled)
wait_gauge("ringrelay_inbound_data_refused_total", 2, "the refusals counted")
r = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5).read().decode()
print([l for l in r.splitlines() if l.startswith("ringrelay_inbound_data_refused_total")][0])
PY
cat "$T/out.txt"
expect_match "$(cat "$T/out.txt")" "^ringrelay_inbound_data_refused_total 2$" "the refusals counted"
n=$(grep -c 'event=data_memory_full' "$L")
[ "$n" -eq 2 ] || fail "$n event=data_memory_full lines, not 2 (the fourth client, the MAIL)"
expect_match "$(grep 'event=data_memory_full' "$L" | head -1)" \
  'event=data_memory_full sid=[0-9.]+ client=127\.0\.0\.1 held=[0-9]+ limit=7340032' "the log line"
rr_stop
ok "7 MiB for the sessions' data: three held 6 MiB, the fourth refused past 1 MiB (452 at its end), MAIL SIZE= refused at once, all given back"
