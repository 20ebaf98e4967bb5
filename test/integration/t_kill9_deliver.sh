# kill -9 of the relay during a load that accepts and delivers at once, then a restart:
# every message that got a 250 reaches the sink at least once (issue 8). The sink finds a
# message's queue id in the relay's own Received: header ("(ringrelay) with ESMTP id QID").
# Then, once the queue drained, the spool holds no segment without a live message but the
# ones being written (small segments, RR_TEST_SEGMENT_MAX, so that there are many).
. "$(dirname "$0")/lib.sh"
export RR_TEST_SEGMENT_MAX=262144
sink k9
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 300"
rr_start
python3 "$HERE/load.py" $RR_PORT 20 6000 20 "$T/acks" > "$T/load.out" 2>&1 &
lp=$!
acks() { [ -f "$T/acks" ] && wc -l < "$T/acks" || echo 0; }
busy() { [ "$(acks)" -ge 1000 ] && [ "$(dumped k9)" -ge 200 ]; }
wait_until 30 busy || fail "the load did not get going: $(acks) acked, $(dumped k9) delivered"
rr_kill9
wait $lp
acked=$(sort -u "$T/acks" | wc -l)
before=$(dumped k9)
rr_start
# the sink's queue ids of this relay (each delivered copy names the id it was accepted under)
arrived() { cat "$T/k9"/*.eml 2>/dev/null | sed -nE 's/.*by relay\.test \(ringrelay\) with E?SMTP id ([0-9A-V]+).*/\1/p' | sort -u; }
all_arrived() { [ "$(comm -23 <(sort -u "$T/acks") <(arrived) | wc -l)" -eq 0 ]; }
wait_until 90 all_arrived ||
  fail "$(comm -23 <(sort -u "$T/acks") <(arrived) | wc -l) of $acked acknowledged messages never reached the sink after kill -9"
total=$(dumped k9)
uniq=$(arrived | wc -l)
segs() { ls "$T/spool" | grep -c '\.seg$'; }
few() { [ "$(segs)" -le 4 ]; }
wait_until 20 few || { ls -l "$T/spool" >&2; fail "$(segs) segments once the queue drained (want at most 2 per worker: the ones being written)"; }
rr_stop
ok "kill -9 with $acked acked and $before delivered: all $acked reached the sink ($total copies of $uniq messages: $((total - uniq)) duplicates); $(grep -c 'event=spool_segment ' "$T/relay.log") segments made, $(segs) left after the drain"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
