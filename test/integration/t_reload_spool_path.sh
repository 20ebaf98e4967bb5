# Found in review: SIGHUP accepts a new spool.path ("event=reloaded") but the workers go on
# writing to the old spool. `ringrelay --queue -c FILE` then reads the new path and says
# the queue is empty right after a 250, and after the next restart the acknowledged
# messages of the old spool are never scanned again. README refuses a reload that changes
# the listeners; one that changes what cannot change at run time (spool.path, also
# workers, spool.sync, shutdown_timeout) is taken as if it had worked.
. "$(dirname "$0")/lib.sh"
rr_config
rr_start
sed -i "s#path: $T/spool\$#path: $T/spool2#" "$T/ringrelay.yaml"
kill -HUP $RR_PID
wait_log 'event=reload(ed|_failed)' || fail "reload not logged"
out=$(swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test 2>&1)
qid=$(printf '%s' "$out" | sed -nE 's/.*queued as ([0-9A-V]+).*/\1/p')
[ -n "$qid" ] || fail "not queued: $out"
listed=$(rr_queue)
rr_stop
if grep -q 'event=reloaded' "$T/relay.log"; then
  printf '%s' "$listed" | grep -q "$qid" || fail "reload of spool.path reported as done; $qid got a 250 but --queue -c (the reloaded file) says: $listed"
fi
ok "a reload that changes spool.path is refused, or takes effect"
