# Found in review: a bulk client that pipelines more recipients than max_recipients is
# disconnected: every 452 4.5.3 "too many recipients" counts towards the 20-error limit,
# so 20 recipients over the limit give "421 4.7.0 Error: too many errors" before DATA and
# the transaction of the recipients that were accepted is lost. RFC 5321 4.5.3.1.8 says
# the client should send the rest in a later transaction; Postfix, whose wording the
# README follows, tolerates smtpd_recipient_overshoot_limit (1000) such 452s before they
# count as errors.
. "$(dirname "$0")/lib.sh"
rr_config 'limits: { max_recipients: 50 }'
rr_start
cat > "$T/many.py" <<'PY'
import socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10)
f = s.makefile("rb"); f.readline()
s.sendall(b"EHLO bulk.test\r\n")
while f.readline()[3:4] != b" ": pass
s.sendall(b"MAIL FROM:<a@x.test>\r\n"); f.readline()
s.sendall(b"".join(b"RCPT TO:<r%d@local.test>\r\n" % i for i in range(n)) + b"DATA\r\n")
codes = []
for i in range(n + 1):
    l = f.readline()
    if not l: break
    codes.append(l[:3].decode())
if codes and codes[-1] == "354":
    s.sendall(b"Subject: many\r\n\r\nhi\r\n.\r\n")
    codes.append(f.readline()[:3].decode())
print(" ".join("%sx%d" % (c, codes.count(c)) for c in sorted(set(codes))))
PY
out=$(python3 "$T/many.py" $RR_PORT 80)
rr_stop
expect_match "$out" '250x51' "50 recipients accepted, then the message queued (got: $out)"
ok "recipients over max_recipients get 452 and the rest of the transaction goes on"
