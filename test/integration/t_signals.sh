# SIGHUP: a bad new file is logged and the old snapshot stays; a good one takes effect.
# SIGTERM: stops accepting, lets a transaction in flight finish, exits 0.
. "$(dirname "$0")/lib.sh"
rr_config
rr_start
cp "$T/ringrelay.yaml" "$T/good.yaml"
printf 'this: [is not\n' >> "$T/ringrelay.yaml"
kill -HUP $RR_PID
wait_log 'event=reload_failed' || fail "bad reload not logged"
out=$(swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test 2>&1) || fail "after bad reload: $out"
# good reload: relay.domains changes
sed 's/domains: \[local.test\]/domains: [other.test]/' "$T/good.yaml" > "$T/ringrelay.yaml"
sed -i 's/networks: \[127.0.0.0\/8\]/networks: [192.0.2.0\/24]/' "$T/ringrelay.yaml"
kill -HUP $RR_PID
wait_log 'event=reloaded generation=2' || fail "good reload not logged"
out=$(swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test 2>&1)
expect_match "$out" '554 5\.7\.1' "new relay rules in force"
out=$(swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@other.test 2>&1) || fail "new domain: $out"
# SIGTERM in the middle of DATA: the transaction completes, then 421.
( printf 'EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@other.test>\r\nDATA\r\n'; sleep 1; printf 'Subject: x\r\n\r\nbody\r\n'; sleep 1; printf '.\r\n'; sleep 1 ) \
  | python3 -c '
import socket,sys,time
s=socket.create_connection(("127.0.0.1",'$RR_PORT'))
import threading
def rd():
    while True:
        d=s.recv(4096)
        if not d: break
        sys.stdout.buffer.write(d); sys.stdout.flush()
t=threading.Thread(target=rd); t.start()
for chunk in iter(lambda: sys.stdin.buffer.read1(4096), b""):
    s.sendall(chunk)
t.join(5)' > "$T/term.out" &
cp=$!
# the SIGTERM once the relay said 354 (a fixed 1.5 s was too short for a loaded machine:
# the signal came before the connection, CI run of 2133664)
wait_until 10 grep -q '^354 ' "$T/term.out" || fail "no 354 in 10 s: $(cat "$T/term.out")"
kill -TERM $RR_PID
wait $cp
out=$(cat "$T/term.out")
expect_match "$out" 'queued as' "in-flight transaction completed"
expect_match "$out" '421 4\.3\.2 relay\.test Service shutting down' "shutdown reply"
rr_stop
ok "reload kept old on bad file, applied good file; graceful stop"
