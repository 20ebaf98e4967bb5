# Issue 7, defect 5: a full disk flooded the spool directory and the log (every failed
# batch opened a new segment and logged 2-3 lines, no back-off: 84,289 empty segment files
# and a 27 MB log after 12 s on a 2 MB tmpfs). Now: 451 while the disk is full, the disk
# tried a few times a second, empty segments removed, one line per transition with counts.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to mount a small tmpfs"; exit 0; }
mkdir -p "$T/spool"
mount -t tmpfs -o size=2m tmpfs "$T/spool" || fail "cannot mount tmpfs"
trap 'umount "$T/spool" 2>/dev/null; cleanup' EXIT
rr_config
rr_start
lines0=$(wc -l < "$T/relay.log")
# 8 s of pipelined load, 20 connections of 16 KiB messages: the disk fills in the first
# moments and stays full.
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 20 -n 1000000 -t 8 -l 16384 --json > "$T/blast.json" 2>/dev/null
python3 - "$T/blast.json" <<'PY' || fail "load: unexpected replies"
import json,sys
r=json.load(open(sys.argv[1]))
errs=r["errors"]
print("ok=%d failed=%d errors=%s" % (r["messages"], r["failed"], errs))
assert r["failed"] > 0, "the disk never filled"
assert set(errs) <= {"451"}, "replies other than 451: %s" % errs
PY
segs=$(ls "$T/spool" | grep -c '\.seg$')
lines=$(( $(wc -l < "$T/relay.log") - lines0 ))
fails=$(grep -c 'event=spool_failing' "$T/relay.log")
recs=$(grep -c 'event=spool_recovered' "$T/relay.log")
echo "segments=$segs log_lines=$lines spool_failing=$fails spool_recovered=$recs"
[ "$segs" -le 6 ] || fail "$segs segment files on a full disk"
# One failing line per worker and transition: a worker's first failure, then one after
# each recovery (a removed empty segment gives a little room back, so a worker may
# recover and fail again while the load goes on; never a line per failed batch).
[ "$fails" -ge 1 ] && [ "$fails" -le $((recs + 2)) ] && [ "$fails" -le 40 ] ||
  fail "$fails spool_failing lines for $recs recoveries (want one per worker and transition)"
# Per message lines (queued, connect, the delivery attempt: DNS fails here, so deferred)
# are bounded by what was accepted; what is left is small: no line per failed batch or
# retry.
acc=$(grep -c 'event=queued' "$T/relay.log")
other=$(( lines - acc - $(grep -c 'event=connect' "$T/relay.log") - $(grep -c ': to=<' "$T/relay.log") ))
[ "$other" -le 40 ] || { grep -v 'event=queued\|event=connect\|: to=<' "$T/relay.log" | tail -20 >&2; fail "$other other log lines in 8 s"; }
# Room again: accepted, and the recovery says how much was refused.
mount -o remount,size=64m "$T/spool" || fail "remount"
sleep 0.5
for i in 1 2 3 4; do
  out=$(swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test 2>&1)
  printf '%s' "$out" | grep -q 'queued as' && break
  sleep 0.3
done
expect_match "$out" 'queued as' "accepted again after space came back"
wait_log 'event=spool_recovered worker=[0-9]+ failed_batches=[1-9][0-9]* failed_messages=[1-9]' || fail "no recovery line with counts"
rr_stop
ok "full disk: $segs segments, $other non-message log lines in 8 s of load, recovered with counts"
