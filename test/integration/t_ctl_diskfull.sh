# ctl hold while the disk is full: the answer says at once that the spool has not taken
# it (exit 1), the hold stands in memory, and once there is room its notes are written by
# themselves (event=ctl_notes_written): after a kill -9 the message is still held. While
# the disk fails, the worker goes on (a retry from the spool's own callback once spun it).
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to mount a small tmpfs"; exit 0; }
ctl() { "$RR_BIN" ctl -c "$T/ringrelay.yaml" "$@"; }
mkdir -p "$T/spool"
mount -t tmpfs -o size=512k tmpfs "$T/spool" || fail "cannot mount tmpfs"
trap 'umount "$T/spool" 2>/dev/null; cleanup' EXIT
rr_config "queue:" "  retry_schedule: [600]"
RR_TEST_SEGMENT_MAX=16384 rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u@nowhere.test > /dev/null 2>&1 || fail "swaks"
wait_log 'to=<u@nowhere.test>.*status=deferred' 10 || fail "not deferred"
qid=$(ctl queue | awk '/nowhere/ {print $1}')
[ -n "$qid" ] || fail "no queue id"
dd if=/dev/zero of="$T/spool/filler" bs=4k 2>/dev/null          # the disk is full
for i in $(seq 1 20); do                 # (and the segment made ahead: until mail gets 451)
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to v@nowhere.test 2>&1 | grep -q '451 4\.3\.0' && break
  sleep 0.1
done
[ "$i" -lt 20 ] || fail "the spool never filled"
out=$(ctl hold "$qid" 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "hold on a full disk: exit $rc ($out)"
expect_match "$out" 'held 1 recipients of 1 messages, but the spool has not taken all of it yet' "hold on a full disk said"
expect_match "$(ctl queue)" "<u@nowhere\\.test> \\(held " "held in memory"
expect_match "$(ctl status)" 'state=running' "status while the disk is full"
rm -f "$T/spool/filler"
wait_log 'event=ctl_notes_written' 15 || fail "the hold's notes were not written once there was room"
rr_kill9
expect_match "$(rr_queue)" '<u@nowhere\.test> \(attempts=[0-9]+ held\)' "not held in the spool after room came back"
ok "hold on a full disk: exit 1 at once, said so; written by itself once there was room; held after kill -9"

# the disk full again, a release refused, then a stop: a clean exit (no leak of the notes
# waiting for their retry: the sanitizers say), the release lost and said so
rr_start
dd if=/dev/zero of="$T/spool/filler" bs=4k 2>/dev/null
for i in $(seq 1 20); do
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to v@nowhere.test 2>&1 | grep -q '451 4\.3\.0' && break
  sleep 0.1
done
out=$(ctl release "$qid" 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "release on a full disk: exit $rc ($out)"
rr_stop
grep -q 'event=ctl_notes_lost' "$T/relay.log" || fail "a change given up at the stop was not said"
rm -f "$T/spool/filler"
expect_match "$(rr_queue)" '<u@nowhere\.test> \(attempts=[0-9]+ held\)' "the lost release is in the spool after all?"
ok "a release refused by a full disk, then SIGTERM: clean exit, ctl_notes_lost said, still held"
