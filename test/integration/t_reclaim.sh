# Segment reclaim (issue 8): with small segments (the test build's RR_TEST_SEGMENT_MAX),
#  1. 600 messages delivered to a sink: once the queue drains, no segment without a live
#     message is left but the ones being written (at most 2 per worker); a restart lists
#     nothing, reclaims the rest, and a clean stop then leaves no segment at all;
#  2. 12 messages to a next hop that is down, sent among 600 others that are delivered:
#     the segments of the delivered ones go, the deferred ones are copied forward out of
#     their old segments (event=spool_copy) and survive a restart; then the hop comes up
#     and each of the 12 arrives exactly once (counted by the queue id in our Received:);
#  3. restarted with fewer workers: a vanished worker's segments are adopted (k % workers),
#     their deferred messages copied forward, the segments reclaimed, all arrive once.
. "$(dirname "$0")/lib.sh"
export RR_TEST_SEGMENT_MAX=65536
export RR_TEST_COPY_AGE_MS=300    # (10 s outside tests)
segs() { ls "$T/spool" 2>/dev/null | grep -c '\.seg$'; }
received_ids() {  # the queue ids of this relay in the messages a sink stored
  cat "$T/$1"/*.eml 2>/dev/null | sed -nE 's/.*by relay\.test \(ringrelay\) with E?SMTP id ([0-9A-V]+).*/\1/p'
}
# arrive_once SINK N: N messages reach SINK, each once (by our queue id), and no more
arrive_once() {
  wait_until 30 eval "[ \"\$(dumped $1)\" -ge $2 ]" || fail "only $(dumped $1) of the $2 deferred messages arrived once the hop was up"
  sleep 1.5
  local n u
  n=$(dumped $1)
  u=$(received_ids $1 | sort -u | wc -l)
  [ "$n" -eq "$2" ] && [ "$u" -eq "$2" ] || fail "$n copies of $u messages at the late hop, want $2 of $2"
}
# split_config SINK_PORT LATER_PORT: later.test to LATER_PORT, the rest to SINK_PORT
split_config() {
  rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$1\"" \
            "  - id: later" "    nexthop: \"[127.0.0.1]:$2\"" \
            "routes:" "  - domains: [later.test]" "    transport: later" \
            "  - domains: [\"*\"]" "    transport: hub" \
            "queue:" "  retry_schedule: [1]" "  max_age: 300"
}
# mixed_load ROUNDS PER_ROUND TAG: per round, PER_ROUND messages to later.test (one
# connection each), then 200 to example.net
mixed_load() {
  local round i
  for round in $(seq 1 "$1"); do
    for i in $(seq 1 "$2"); do
      swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "$3$round-$i@later.test" \
            --body "deferred $round $i" > /dev/null 2>&1 || fail "swaks (later)"
    done
    "$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 200 -t 30 -l 2k --to-domain example.net > "$T/blast.out" 2>&1 ||
      { cat "$T/blast.out" >&2; fail "ringblast"; }
  done
}

# ---- 1. everything delivered --------------------------------------------------------------
sink all
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 300"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 600 -t 30 -l 2k --to-domain example.net > "$T/blast.out" 2>&1 ||
  { cat "$T/blast.out" >&2; fail "ringblast"; }
made=$(grep -c 'event=spool_segment ' "$T/relay.log")
have600() { [ "$(dumped all)" -ge 600 ]; }
wait_until 30 have600 || fail "only $(dumped all) of 600 messages reached the sink"
few() { [ "$(segs)" -le 4 ]; }
wait_until 10 few || { ls -l "$T/spool" >&2; fail "$(segs) segments left after the queue drained (want <= 2 per worker)"; }
left=$(segs)
reclaimed=$(grep -c 'event=spool_reclaim ' "$T/relay.log")
[ "$made" -ge 10 ] || fail "only $made segments made: the test did not roll over"
[ "$(dumped all)" -eq 600 ] || fail "$(dumped all) at the sink, want 600"
rr_stop
rr_start
expect_match "$(cat "$T/relay.log.new")" 'event=queue_rebuilt messages=0 ' "nothing left after a restart"
[ "$(rr_queue_count)" -eq 0 ] || fail "--queue lists something after the drain"
reclaims() { grep -c 'event=spool_reclaim ' "$T/relay.log"; }
wait_until 10 eval '[ "$(reclaims)" -ge $((reclaimed + 1)) ]' || fail "the old segments were not reclaimed after the restart"
sleep 0.5
rr_stop
[ "$(segs)" -eq 0 ] || { ls -l "$T/spool" >&2; fail "$(segs) segments after restart and stop, want 0"; }
sleep 0.5
[ "$(dumped all)" -eq 600 ] || fail "a restart delivered again: $(dumped all) at the sink"
ok "600 delivered: $made segments made, $left left while running (the ones being written), 0 after a restart and a stop"

# ---- 2. some deferred -------------------------------------------------------------------
rm -rf "$T/spool"
LATER=$(free_port)
sink now
split_config $S_PORT $LATER
rr_start
mixed_load 3 4 r
have600n() { [ "$(dumped now)" -ge 600 ]; }
wait_until 30 have600n || fail "only $(dumped now) of 600 reached the sink"
copied() { grep -c 'event=spool_copy ' "$T/relay.log"; }
wait_until 15 eval '[ "$(copied)" -ge 12 ]' || { ls -l "$T/spool" >&2; fail "$(copied) copies forward, want >= 12 (each deferred message out of its old segment)"; }
few2() { [ "$(segs)" -le 6 ]; }
wait_until 10 few2 || { ls -l "$T/spool" >&2; fail "$(segs) segments with 12 deferred messages (want <= 2 per worker + the copies' own)"; }
left2=$(segs)
made2=$(( $(grep -c 'event=spool_segment ' "$T/relay.log") - made ))
# (outcome notes reach the disk up to 200 ms after the delivery: --queue reads the disk)
wait_until 5 eval '[ "$(rr_queue_count)" -eq 12 ]' || fail "--queue lists $(rr_queue_count) messages, want the 12 deferred"
rr_stop
rr_start
expect_match "$(cat "$T/relay.log.new")" 'event=queue_rebuilt messages=12 ' "the 12 deferred ones after a restart"
expect_match "$(cat "$T/relay.log.new")" 'duplicates=0' "no duplicates after a clean stop"
sink later -l 127.0.0.1:$LATER
arrive_once later 12
[ "$(dumped now)" -eq 600 ] || fail "$(dumped now) at the first sink after the restart, want 600"
wait_until 10 eval '[ "$(segs)" -le 4 ]' || { ls -l "$T/spool" >&2; fail "$(segs) segments after the last ones were delivered"; }
rr_stop
ok "12 deferred among 600: $made2 segments made, $(copied) copies forward, $left2 segments left while deferred; all 12 arrived once after the hop came up"

# ---- 3. fewer workers after a restart ------------------------------------------------------
# 16 deferred messages among 400 delivered by 2 workers; restarted with 1 worker, which
# adopts worker 1's segments (1 % 1 = 0): their deferred messages are copied forward into
# its own, worker 1's segments go, and the 16 arrive once when their hop comes up.
rm -rf "$T/spool"
LATER3=$(free_port)
sink now3
split_config $S_PORT $LATER3
rr_start
mixed_load 2 8 q      # 16 connections: some land on each worker
have400() { [ "$(dumped now3)" -ge 400 ]; }
wait_until 30 have400 || fail "only $(dumped now3) of 400 reached the sink"
rr_stop
w1=$(ls "$T/spool" | grep -c '^w1-.*\.seg$')
sed -i 's/^workers: 2$/workers: 1/' "$T/ringrelay.yaml"
rr_start
expect_match "$(cat "$T/relay.log.new")" 'event=queue_rebuilt messages=16 ' "the 16 deferred ones after a restart with 1 worker"
no_w1() { [ "$(ls "$T/spool" | grep -c '^w1-.*\.seg$')" -eq 0 ]; }
wait_until 10 no_w1 || { ls -l "$T/spool" >&2; fail "worker 1's segments are still there with 1 worker"; }
adopted() { grep -c 'event=spool_copy worker=0 qid=[0-9A-V]* from=w1-' "$T/relay.log"; }
[ "$(adopted)" -ge 1 ] || fail "no message of worker 1's segments was copied forward by worker 0"
sink later3 -l 127.0.0.1:$LATER3
arrive_once later3 16
wait_until 10 eval '[ "$(segs)" -le 2 ]' || { ls -l "$T/spool" >&2; fail "$(segs) segments after the last ones were delivered (1 worker)"; }
rr_stop
ok "workers 2 -> 1: worker 1's $w1 segments adopted, $(adopted) messages copied out of them, reclaimed; the 16 deferred arrived once"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
