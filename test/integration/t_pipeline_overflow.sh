# Found in review: a well-behaved pipelining client -- it reads every reply while it sends --
# is cut with event=input_overflow when its pipelined group is large: 20000 RCPT commands
# (820 kB, max_recipients: 100000 allows them) in one send. README: input "whose unread
# input reaches 256 KiB, which only a flood gets to, is cut". Likely cause: the multishot
# recv has 1024 x 16 KiB provided buffers; the completions of one turn are all appended
# to the kept input once the replies of the first ones reach out_hwm (the send only goes
# out at the flush), so one turn can exceed in_max before the pause (cancel) matters.
. "$(dirname "$0")/lib.sh"
rr_config 'limits: { max_recipients: 100000 }'
rr_start
cat > "$T/pipe.py" <<'PY'
import socket, sys, threading
port, nr = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(20)
f = s.makefile("rb"); f.readline()
s.sendall(b"EHLO p.test\r\n")
while f.readline()[3:4] != b" ": pass
cmds = (b"MAIL FROM:<a@x.test>\r\n" +
        b"".join(b"RCPT TO:<rcpt-number-%06d@local.test>\r\n" % i for i in range(nr)) +
        b"DATA\r\n")
codes = {}
def reader():                      # reads every reply while the group is being sent
    for _ in range(nr + 2):
        l = f.readline()
        if not l:
            codes["EOF"] = 1; break
        k = l[:3].decode(); codes[k] = codes.get(k, 0) + 1
t = threading.Thread(target=reader); t.start()
try:
    s.sendall(cmds)
except OSError as e:
    codes["send"] = str(e)
t.join()
if codes.get("354"):
    s.sendall(b"Subject: many\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    codes["final"] = f.readline()[:3].decode()
print(" ".join("%s=%s" % kv for kv in sorted(codes.items())))
PY
out=$(python3 "$T/pipe.py" $RR_PORT 20000)
overflow=$(grep -c 'event=input_overflow' "$T/relay.log")
rr_stop
expect_match "$out" '^250=20001 354=1 final=250$' "20000 pipelined recipients, replies read all along (got: $out; input_overflow logged $overflow times)"
ok "a large pipelined group from a reading client is served"
