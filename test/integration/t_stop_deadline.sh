# Issue 7, defect 4: a graceful stop never ended while a client did not read (its replies
# could not be sent). shutdown_timeout bounds it: after SIGTERM, transactions in flight get
# that long, then every connection is cut, the spool is flushed and the relay exits 0.
. "$(dirname "$0")/lib.sh"
rr_config 'shutdown_timeout: 2'
rr_start
mkfifo "$T/hold"
python3 "$HERE/flood.py" noread $RR_PORT 2 30 3 < "$T/hold" > "$T/flood.out" &
fpid=$!
exec 7> "$T/hold"
# and a client in the middle of DATA that goes quiet
python3 -c "
import socket,time
s=socket.create_connection(('127.0.0.1',$RR_PORT))
s.sendall(b'EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@local.test>\r\nDATA\r\nSubject: x\r\n\r\nhalf')
time.sleep(30)" &
dpid=$!
for i in $(seq 1 100); do [ "$(grep -c sent= "$T/flood.out" 2>/dev/null)" -ge 2 ] && break; sleep 0.1; done
sleep 0.5
start=$(date +%s%N)
kill -TERM $RR_PID
for i in $(seq 1 150); do kill -0 $RR_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $RR_PID 2>/dev/null && fail "still running 15 s after SIGTERM with shutdown_timeout 2"
wait $RR_PID; rc=$?; RR_PID=
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -eq 0 ] || fail "exit status $rc"
sanitizer_clean
grep -q 'event=stop_deadline' "$T/relay.log" || fail "the deadline was not logged"
[ "$ms" -ge 1800 ] || fail "stopped after $ms ms: before the deadline, with a transaction in flight"
[ "$ms" -lt 8000 ] || fail "stopped after $ms ms (shutdown_timeout 2)"
exec 7>&-
kill $dpid 2>/dev/null; wait $fpid 2>/dev/null
ok "SIGTERM with non-reading clients: exit 0 after $ms ms (shutdown_timeout 2)"
