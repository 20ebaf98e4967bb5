# Found in review: a client that half-closes (shutdown(SHUT_WR)) after its last command gets
# no reply to its message, although the message is queued: EOF on input aborts the
# connection and drops the replies still to come. The client never sees the 250, retries,
# and the message is queued twice. (Postfix answers what it read before the EOF.)
# Clients that do this: `nc -N`, scripts that close their write side after QUIT.
. "$(dirname "$0")/lib.sh"
rr_start
cat > "$T/hc.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(5)
f = s.makefile("rb"); f.readline()
s.sendall(b"EHLO hc.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@local.test>\r\nDATA\r\n")
while not f.readline().startswith(b"354"):   # EHLO, MAIL, RCPT replies, then 354
    pass
s.sendall(b"Subject: half-close\r\n\r\nbody\r\n.\r\nQUIT\r\n")
s.shutdown(socket.SHUT_WR)        # nothing more to say; still reading
out = b""; end = time.time() + 5
while time.time() < end:
    try: d = s.recv(4096)
    except OSError: break
    if not d: break
    out += d
sys.stdout.write(out.decode(errors="replace"))
PY
lost=0
for i in 1 2 3 4 5; do
  out=$(python3 "$T/hc.py" $RR_PORT)
  printf '%s' "$out" | grep -q 'queued as' || lost=$((lost + 1))
done
queued=$(rr_queue_count)
rr_stop
[ "$lost" -eq 0 ] || fail "$lost of 5 half-closing clients got no 250 (nor 221); $queued messages queued for them anyway"
ok "half-closing clients get their replies"
