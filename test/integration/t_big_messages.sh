# Issue 7, defect 6: large messages got 451 forever: any batch over 512 MiB was answered
# 451 after the whole message had been buffered (twelve 48 MiB messages finishing
# together on one worker was enough), and max_message_size was accepted up to INT64_MAX.
# Now records are written from where they are (no batch buffer) and a batch that is full
# starts the next one, never a 451; max_message_size is bounded by what the spool takes.
. "$(dirname "$0")/lib.sh"
rr_config 'limits: { max_message_size: 67108864 }'
sed -i 's/^workers: 2/workers: 1/' "$T/ringrelay.yaml"
rr_start
python3 - $RR_PORT <<'PY' || fail "twelve 48 MiB messages"
import socket, sys, time
port = int(sys.argv[1])
body = (b"x" * 998 + b"\r\n") * 50332           # 48 MiB, lines of 1000 octets
files = {}
def reply(s):
    f = files.setdefault(s, s.makefile("rb"))
    while True:
        l = f.readline()
        if not l:
            raise SystemExit("closed")
        if len(l) >= 4 and l[3:4] == b" ":
            return l.rstrip(b"\r\n")
socks = []
for i in range(12):
    s = socket.create_connection(("127.0.0.1", port))
    reply(s)
    s.sendall(b"EHLO big.test\r\n"); reply(s)
    s.sendall(b"MAIL FROM:<a@x.test> SIZE=%d\r\nRCPT TO:<b@local.test>\r\nDATA\r\n" % len(body))
    for want in (b"250", b"250", b"354"):
        r = reply(s)
        if not r.startswith(want):
            raise SystemExit("conn %d: %r" % (i, r))
    s.sendall(body)
    socks.append(s)
for s in socks:                                   # the twelve end together
    s.sendall(b".\r\n")
bad = 0
for i, s in enumerate(socks):
    s.settimeout(120)
    r = reply(s)
    print("conn %d: %s" % (i, r.decode()))
    if not r.startswith(b"250 2.0.0 Ok: queued as "):
        bad += 1
sys.exit(1 if bad else 0)
PY
rr_stop
[ "$(rr_queue_count)" -eq 12 ] || fail "not all twelve on disk"
# And the limit itself is bounded by what the spool can take.
rr_config 'limits: { max_message_size: 9223372036854775807 }'
out=$("$RR_BIN" --check -c "$T/ringrelay.yaml" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "max_message_size INT64_MAX accepted: $out"
expect_match "$out" 'max_message_size.*out of range' "range error"
ok "twelve 48 MiB messages ending together: all 250 and on disk; max_message_size bounded"
