# Issue 7, defect 2: with a full submission queue, the write->fdatasync link of a spool
# commit could be split over two submissions (a link does not survive that), so the sync
# might run before the write and a 250 go out for data it did not cover. The test build
# shrinks the SQ to 4 entries (RR_TEST_RING_ENTRIES), so that the sends of every turn fill
# it right before the commit, and aborts if a commit's chain is ever split; every message
# must be acknowledged and on disk.
. "$(dirname "$0")/lib.sh"
rr_config
RR_TEST_RING_ENTRIES=4 rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 50 -n 3000 -l 2048 --json > "$T/blast.json" 2>/dev/null \
  || { cat "$T/blast.json" >&2; fail "load failed"; }
n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' "$T/blast.json")
[ "$n" -eq 3000 ] || fail "$n of 3000 acknowledged"
rr_stop
grep -q 'split by a submission' "$T/relay.log" && fail "a chain was split"
chains=$(sed -nE 's/.*event=worker_down .* chains=([0-9]+).*/\1/p' "$T/relay.log" | awk '{ s += $1 } END { print s + 0 }')
commits=$(sed -nE 's/.*event=worker_down .* commits=([0-9]+).*/\1/p' "$T/relay.log" | awk '{ s += $1 } END { print s + 0 }')
[ "$chains" -eq "$commits" ] && [ "$commits" -gt 0 ] || fail "chains=$chains commits=$commits"
[ "$(rr_queue_count)" -eq 3000 ] || fail "not all 3000 on disk"
ok "SQ of 4: 3000 messages in $commits commits, every chain whole"
