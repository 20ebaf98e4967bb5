# kill -9 in the middle of a load, restart: every message that received a 250 is listed.
. "$(dirname "$0")/lib.sh"
rr_start
python3 "$HERE/load.py" $RR_PORT 20 200000 20 "$T/acks" > "$T/load.out" 2>&1 &
lp=$!
# wait for the load to be well under way
for i in $(seq 1 100); do [ -f "$T/acks" ] && [ "$(wc -l < "$T/acks")" -ge 500 ] && break; sleep 0.05; done
[ "$(wc -l < "$T/acks")" -ge 500 ] || fail "load did not get going"
sleep 0.5
rr_kill9
wait $lp
acked=$(sort -u "$T/acks" | wc -l)
[ "$acked" -gt 0 ] || fail "nothing acked"
rr_start
rr_queue --json | sed -nE 's/.*"queue_id":"([^"]+)".*/\1/p' | sort -u > "$T/listed"
missing=$(comm -23 <(sort -u "$T/acks") "$T/listed" | wc -l)
[ "$missing" -eq 0 ] || fail "$missing of $acked acknowledged messages lost after kill -9"
grep -q 'event=spool_scan' "$T/relay.log" || fail "no spool scan at restart"
rr_stop
ok "kill -9 after $acked acks ($(cat "$T/load.out")): all listed, $(wc -l < "$T/listed") queued"
