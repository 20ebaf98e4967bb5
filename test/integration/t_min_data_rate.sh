# limits.min_data_rate (Postfix's smtpd_min_data_rate): after a first idle_timeout, message
# data must average the rate, each octet moving the deadline 1/rate s on. The idle timeout
# alone counts any progress, so a client trickling a line every few seconds would hold its
# session, and its message's memory (limits.max_data_memory), for ever.
#  idle_timeout 2, min_data_rate 2000: a client that sends a 100-octet line every 0.5 s
#  (200 octets/s) is cut with 421 4.4.2 about 2.2 s into its data (logged
#  reason=min_data_rate), while one sending 900 octets every 10 ms (90,000/s) for 4 s
#  (past the idle timeout) gets its 250; min_data_rate 0: the trickler is never cut (its
#  message ends after 5 s, then 250).
. "$(dirname "$0")/lib.sh"
L=$T/relay.log
clients() {  # clients: the trickler and the fast one at once; prints each one's end
python3 - "$RR_PORT" <<'PY'
import socket, sys, threading, time
port = int(sys.argv[1])
res = {}
def run(name, size, gap, count):
    s = socket.create_connection(("127.0.0.1", port), 5); s.settimeout(15)
    f = s.makefile("rb")
    def reply():
        while True:
            l = f.readline()
            if not l: return "[closed]"
            if l[3:4] != b"-": return l.decode().strip()
    reply()
    for c in (b"EHLO c.test", b"MAIL FROM:<a@x.test>", b"RCPT TO:<b@y.test>", b"DATA"):
        s.sendall(c + b"\r\n"); r = reply()
    t0 = time.time()
    try:
        for k in range(count):
            s.sendall(b"y" * (size - 2) + b"\r\n")
            time.sleep(gap)
        s.sendall(b".\r\n")
    except OSError:
        pass
    res[name] = "%s after %.1f s" % (reply(), time.time() - t0)
ts = [threading.Thread(target=run, args=("trickler", 100, 0.5, 10)),
      threading.Thread(target=run, args=("fast", 900, 0.01, 400))]
for t in ts: t.start()
for t in ts: t.join()
for k in sorted(res): print(k + ": " + res[k])
PY
}
rr_config "limits: { idle_timeout: 2, min_data_rate: 2000 }"
rr_start
out=$(clients)
echo "$out"
expect_match "$out" "^fast: 250 2\\.0\\.0 Ok: queued as" "the fast client"
expect_match "$out" "^trickler: 421 4\\.4\\.2 relay\\.test Error: timeout exceeded after" "the trickler"
expect_match "$(grep 'event=timeout' "$L")" "reason=min_data_rate octets=[0-9]+ seconds=[23]$" "the log line (the deadline: 2.2 s)"
rr_stop
rr_config "limits: { idle_timeout: 2, min_data_rate: 0 }"
rr_start
out=$(clients)
echo "$out"
expect_match "$out" "^trickler: 250 2\\.0\\.0 Ok: queued as" "the trickler without a rate"
rr_stop
ok "a client under min_data_rate is cut after idle_timeout + its octets / rate; one over it, or with the rate off, is not"
