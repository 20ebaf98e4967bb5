# A full disk whose oldest segments hold deferred mail recovers by itself (the hostile
# review: a 1 MB spool with 10 deferred messages in its first segments refused everything
# with 451, also after a restart, until an operator freed space). Only a prefix of
# segments is ever removed and the copy forward that frees the rest needs room to write:
# the spool's reserve (core/spool.h, Free space) is given back for it.
#  1. a 1 MiB tmpfs spool, 32 KiB test segments, spool.min_free 0 (the disk may fill to its
#     last block); 10 messages for a next hop that is down, then 120 delivered ones; then
#     something else fills the disk (a filler file that stays): mail gets 451; the relay
#     gives its reserve back, copies the 10 forward, removes the finished segments, makes
#     the reserve again and accepts mail again, the filler still there;
#  2. 60 more delivered, a clean stop, the disk filled again, a start: the same, from the
#     start-up scan;
#  3. the hop comes up: each of the 10 arrives exactly once, every message acknowledged to
#     the other hop arrived (some twice: a delivery note the full disk refused is lost,
#     so the restart delivers that message again; a duplicate, never a loss), the queue
#     drains, and a restart and a stop leave no segment.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to mount a small tmpfs"; exit 0; }
mkdir -p "$T/spool"
mount -t tmpfs -o size=1m tmpfs "$T/spool" || fail "cannot mount tmpfs"
trap '[ -n "$RR_PID" ] && kill -9 "$RR_PID" 2>/dev/null; wait "$RR_PID" 2>/dev/null; umount "$T/spool" 2>/dev/null; cleanup' EXIT
export RR_TEST_SEGMENT_MAX=32768
export RR_TEST_COPY_AGE_MS=5000   # (10 s outside tests): the disk is filled before it passes
segs() { ls "$T/spool" | grep -c '\.seg$'; }
count() { grep -c -- "$1" "$T/relay.log"; }
received_ids() { cat "$T/$1"/*.eml 2>/dev/null | sed -nE 's/.*by relay\.test \(ringrelay\) with E?SMTP id ([0-9A-V]+).*/\1/p'; }
fill() { dd if=/dev/zero of="$T/spool/$1" bs=4k 2> /dev/null; return 0; }
avail() { df -k --output=avail "$T/spool" | tail -1 | tr -d ' '; }
ACKED=0
blast() {  # blast N: N messages of 2 KiB to the hub; adds the acknowledged ones to ACKED
  "$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n "$1" -t 30 -l 2k --to-domain example.net \
    --json > "$T/blast.json" 2> "$T/blast.err" || { cat "$T/blast.err" >&2; fail "ringblast"; }
  local ok; ok=$(python3 -c 'import json,sys;r=json.load(open(sys.argv[1]));print(r["messages"])' "$T/blast.json")
  ACKED=$((ACKED + ok))
  [ "$ok" -eq "$1" ] || fail "only $ok of $1 accepted before the disk was filled"
}
send() {  # send TO: one message; prints the reply to its end of data (or the first refusal)
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "$1" 2>&1 |
    sed -nE 's/^<(\*\*|-) +((250 .*queued as.*)|([45][0-9][0-9] .*))/\2/p' | head -1
}
# recovered_by_itself PART: mail refused while the disk is full, then, the filler still
# there, the reserve given back and made again and mail accepted
recovered_by_itself() {
  local r i rel0=$1 part=$2
  wait_until 20 eval '[ "$(count event=spool_reserve_released)" -gt '"$rel0"' ]' ||
    fail "$part: the reserve was not given back on the full disk"
  wait_until 20 eval '[ "$(count event=spool_reserve_restored)" -gt '"$rel0"' ]' ||
    fail "$part: the reserve was not made again (no room came back)"
  for i in $(seq 1 40); do
    r=$(send "ok$part-$i@example.net")
    case "$r" in 250*) ACKED=$((ACKED + 1)); break;; esac
    sleep 0.25
  done
  expect_match "$r" '^250 ' "$part: accepted again with the filler in place"
  [ -e "$T/spool/filler$part" ] || fail "the filler went"
}

sink hub
P=$(free_port)
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
          "  - id: later" "    nexthop: \"[127.0.0.1]:$P\"" \
          "routes:" "  - domains: [later.test]" "    transport: later" \
          "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 600"
sed -i 's/^  sync: true/  sync: true\n  min_free: 0/' "$T/ringrelay.yaml"
rr_start
[ "$(count 'event=spool_reserve ')" -eq 2 ] || fail "no reserve made at start (want one per worker)"
ls -la "$T/spool" | grep -q '\.reserve-w0' || fail "no reserve file"

# ---- 1. filled while running ----------------------------------------------------------------
for i in $(seq 1 10); do
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "d$i@later.test" --body "deferred $i" \
    > /dev/null 2>&1 || fail "swaks $i"
done
wait_log 'to=<d10@later.test>.*status=deferred' 10 || fail "not deferred while the hop is down"
blast 120
fill filler1
echo "part 1: filled, $(avail) KiB free, $(segs) segments"
r=$(send x@example.net)
expect_match "$r" '^451 4\.3\.0' "a message on the full disk"
recovered_by_itself 0 1
copies1=$(count 'event=spool_copy ')
reclaims1=$(count 'event=spool_reclaim ')
[ "$copies1" -ge 1 ] && [ "$reclaims1" -ge 1 ] || fail "part 1: $copies1 copies, $reclaims1 segments reclaimed"
echo "part 1: recovered: $copies1 copies forward, $reclaims1 segments reclaimed, $(avail) KiB free, $(segs) segments"

# ---- 2. filled while stopped: recovered from the start-up scan ------------------------------
blast 60
rr_stop
fill filler2
echo "part 2: filled while stopped, $(avail) KiB free, $(segs) segments"
rel=$(count event=spool_reserve_released)
rr_start
recovered_by_itself "$rel" 2
echo "part 2: recovered after the start: $(( $(count 'event=spool_copy ') - copies1 )) copies, $(( $(count 'event=spool_reclaim ') - reclaims1 )) reclaimed, $(avail) KiB free"

# ---- 3. the hop comes up ----------------------------------------------------------------------
sink later -l 127.0.0.1:$P
all10() { [ "$(dumped later)" -ge 10 ]; }
wait_until 30 all10 || fail "only $(dumped later) of the 10 deferred messages arrived"
# (by our queue id: a delivery whose note the full disk refused is made again after the
# restart, a duplicate, never a loss)
hub_ids() { received_ids hub | sort -u | wc -l; }
allhub() { [ "$(hub_ids)" -ge "$ACKED" ]; }
wait_until 30 allhub || fail "only $(hub_ids) of the $ACKED acknowledged messages reached the hub"
empty() { [ "$(rr_queue_count)" -eq 0 ]; }
wait_until 20 empty || { rr_queue >&2; fail "the queue did not drain"; }
sleep 1
n=$(dumped later); u=$(received_ids later | sort -u | wc -l)
[ "$n" -eq 10 ] && [ "$u" -eq 10 ] || fail "$n copies of $u deferred messages at the late hop, want 10 of 10"
dups=$(( $(dumped hub) - $(hub_ids) ))
rr_stop
rr_start
sleep 1.5
rr_stop
[ "$(segs)" -eq 0 ] || { ls -l "$T/spool" >&2; fail "$(segs) segments left after the drain, a restart and a stop"; }
grep -q 'event=spool_cut_short\|event=spool_corrupt' "$T/relay.log" && fail "damage reported"
ok "1 MiB spool filled twice (running, stopped) with 10 deferred in its oldest segments: recovered by itself both times; 10 of 10 arrived once, $ACKED of $ACKED acked at the hub ($dups duplicates: notes the full disk refused), no segment left"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
