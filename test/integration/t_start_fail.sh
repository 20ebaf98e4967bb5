# Start-up failures are clear and clean: a port held by someone else, a spool already in
# use by another ringrelay. Exit 1, a start_failed line, no sanitizer report.
. "$(dirname "$0")/lib.sh"
# The holder binds port 0 itself and says which port it got: no window in which another
# program could take the port between choosing it and holding it.
python3 -c "import socket,time,sys;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();print(s.getsockname()[1],flush=True);time.sleep(30)" > "$T/holder.port" &
holder=$!
for i in $(seq 1 100); do [ -s "$T/holder.port" ] && break; sleep 0.05; done
port=$(cat "$T/holder.port")
[ -n "$port" ] || fail "the port holder did not start"
rr_config
sed -i "s/port: 0/port: $port/" "$T/ringrelay.yaml"
timeout -s KILL 20 "$RR_BIN" -c "$T/ringrelay.yaml" 2> "$T/relay.log.new"; rc=$?
kill $holder
[ "$rc" -eq 1 ] || fail "port in use: exit $rc"
grep -q "event=start_failed error=\"listen 127.0.0.1:$port: Address already in use\"" "$T/relay.log.new" || fail "no clear start_failed line"
sanitizer_clean
rr_config
rr_start
first=$RR_PID
timeout -s KILL 20 "$RR_BIN" -c "$T/ringrelay.yaml" 2> "$T/second.log"; rc=$?
[ "$rc" -eq 1 ] || fail "second relay on the same spool: exit $rc"
grep -q 'in use by another ringrelay' "$T/second.log" || fail "no clear spool-in-use line"
RR_PID=$first
rr_stop
ok "port in use and spool in use refused with exit 1"

# A damaged queue id counter (SPOOL/.qid) with mail in the spool: exit 1, a line that says
# what the file is, and nothing of the scanned mail leaked (LeakSanitizer saw the scan's
# messages leak on this path once).
rr_config
rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test > /dev/null 2>&1 || fail "swaks"
rr_stop
echo garbage > "$T/spool/.qid"
timeout -s KILL 20 "$RR_BIN" -c "$T/ringrelay.yaml" 2> "$T/qid.log"; rc=$?
[ "$rc" -eq 1 ] || fail "a damaged .qid: exit $rc"
grep -q 'event=start_failed error="queue id blocks .*/\.qid: .*note="the file does not hold a queue id counter' "$T/qid.log" ||
  { cat "$T/qid.log" >&2; fail "no clear line for a damaged .qid"; }
sanitizer_clean
ok "a damaged .qid refused with exit 1, said plainly, nothing leaked"
