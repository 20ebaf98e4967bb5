# ctl delete / bounce with two workers: a job waiting in the ready queue of a site that
# the other worker owns (or on its way there) is not sent once its message is deleted or
# returned. One slow next hop (250 after 1 s, one connection): the first message is in a
# transaction, the others wait (one or two may be done before the command); delete --all
# (then bounce --all) leaves the hop with the one in flight only.
. "$(dirname "$0")/lib.sh"
ctl() { "$RR_BIN" ctl -c "$T/ringrelay.yaml" "$@"; }
sink slow --fail delay=1000ms@100%
rr_config "transports:" "  - id: slow" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
          "    max_connections: 1" \
          "routes:" "  - domains: [slow.test]" "    transport: slow" \
          "queue:" "  retry_schedule: [600]"
rr_start
round() {   # round N R: N messages from N connections (both workers accept), one in flight
  local i
  for i in $(seq 1 "$1"); do
    swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "r$2-$i@slow.test" > /dev/null 2>&1 || fail "swaks $i"
  done
  sleep 0.5   # (the first one is in its transaction: the hop answers after 1 s)
}
homes() { grep -o "event=queued sid=[01]\\.[0-9]* qid=" "$T/relay.log" | cut -d= -f3 | cut -d. -f1 | sort -u | wc -l; }

round 12 1
[ "$(homes)" -eq 2 ] || fail "the messages were all accepted by one worker: the test needs both"
before=$(dumped slow)
out=$(ctl delete --all) || fail "delete --all: exit $?"
expect_match "$out" '^deleted ([4-9]|1[0-2]) recipients of ([4-9]|1[0-2]) messages' "delete --all said"
sleep 4                                  # two more transactions' time
n=$(( $(dumped slow) - before ))
[ "$n" -le 2 ] || fail "$n messages reached the hop after delete --all (only the one in flight, and one taken as the command came, may)"
expect_match "$(ctl queue)" '^-- 0 messages$' "queue after delete --all"
ok "delete --all with two workers: nothing waiting at either worker's site was sent ($n in flight)"

sleep 1.5                                # (round 1's transaction in flight ends)
round 12 2
before=$(dumped slow)
out=$(ctl bounce --all) || fail "bounce --all: exit $?"
expect_match "$out" '^returned ([4-9]|1[0-2]) recipients of ([4-9]|1[0-2]) messages' "bounce --all said"
k=$(printf '%s' "$out" | sed -nE 's/^returned ([0-9]+) recipients.*/\1/p')
wait_until 15 eval '[ "$(grep -c "to=<r2-[0-9]*@slow.test>.*status=\(bounced\|sent\)" "$T/relay.log")" -ge 8 ]' ||
  fail "not every message of round 2 ended: $(grep 'r2-' "$T/relay.log" | tail -5)"
n=$(( $(dumped slow) - before ))
[ "$n" -le 2 ] || fail "$n messages reached the hop after bounce --all (only the one in flight, and one taken as the command came, may)"
b=$(grep -c 'to=<r2-[0-9]*@slow.test>.*dsn=5\.0\.0, status=bounced (5\.0\.0 returned to the sender by the operator' "$T/relay.log")
[ "$b" -eq $(( k - n )) ] || fail "$b bounced, $n delivered after the command: want $k in all"
[ "$(grep -c 'sender non-delivery notification' "$T/relay.log")" -eq "$b" ] || fail "not one DSN per bounced message"
rr_stop
ok "bounce --all with two workers: $b returned with a DSN, $n delivered in flight, none sent after"

# hold --all: jobs waiting at either worker's site are held, not sent; release sends them
rr_start
sleep 1.5
round 12 3
before=$(dumped slow)
out=$(ctl hold --all) || fail "hold --all: exit $?"
expect_match "$out" '^held ([4-9]|[1-9][0-9]+) recipients of ([4-9]|[1-9][0-9]+) messages' "hold --all said"
sleep 4
n=$(( $(dumped slow) - before ))
[ "$n" -le 2 ] || fail "$n messages reached the hop after hold --all (only the one in flight, and one taken as the command came, may)"
h=$(ctl queue | grep -c '<r3-[0-9]*@slow.test> (held ')
[ "$h" -ge 4 ] || fail "only $h listed held: $(ctl queue)"
out=$(ctl release --all) || fail "release --all: exit $?"
wait_until 40 eval '[ "$(grep -c "to=<r3-[0-9]*@slow.test>.*status=sent" "$T/relay.log")" -ge 12 ]' ||
  fail "released, but not all of round 3 sent: $(grep -c 'to=<r3-.*status=sent' "$T/relay.log")"
ok "hold --all with two workers: $h held, $n in flight went; all sent after release --all"

# bounce --all, then kill -9 at once: the restart bounces them, it does not send them
round 12 4
before=$(dumped slow)
out=$(ctl bounce --all) || fail "bounce --all (round 4): exit $?"
rr_kill9
rr_start
wait_until 30 eval '[ "$(grep -c "to=<r4-[0-9]*@slow.test>.*status=\(bounced\|sent\)" "$T/relay.log")" -ge 12 ]' ||
  fail "round 4 not ended after the restart: $(grep -c 'to=<r4-.*status=\(bounced\|sent\)' "$T/relay.log") of 12"
sleep 1.5
n=$(( $(dumped slow) - before ))
[ "$n" -le 2 ] || fail "$n of round 4 reached the hop: returned messages were sent after the restart"
rr_stop
ok "bounce --all then kill -9: after the restart they bounced ($n in flight went)"

# the listing's bound counts recipients (a test build's RR_TEST_CTL_QUEUE_MAX=3 for the
# 100,000 of a worker): whole messages until 2 recipients are listed, the rest counted
RR_TEST_CTL_QUEUE_MAX=2 rr_start
HP=$(free_port)
sed -i "s/\\[127.0.0.1\\]:$S_PORT/[127.0.0.1]:$HP/" "$T/ringrelay.yaml"
out=$(ctl reload) || fail "reload to a dead hop"
out=$(ctl delete --all) || fail "delete --all (the DSNs of round 2)"
for i in 1 2 3 4; do
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "d$i-1@slow.test,d$i-2@slow.test" > /dev/null 2>&1 || fail "swaks d$i"
done
wait_until 15 eval '[ "$(grep -c "to=<d[1-4]-[12]@slow.test>.*status=deferred" "$T/relay.log")" -ge 8 ]' || fail "d1..d4 not deferred"
out=$(ctl queue) || fail "queue: exit $?"
listed=$(printf '%s\n' "$out" | grep -c '<d[1-4]-1@slow.test>')
more=$(printf '%s\n' "$out" | sed -nE 's/^-- ([0-9]+) more not listed$/\1/p')
[ -n "$more" ] && [ $((listed + more)) -eq 4 ] && [ "$listed" -le 2 ] && [ "$listed" -ge 1 ] ||
  fail "listed $listed, not listed '$more': want 4 in all, each worker stopping after its first message of 2 recipients"
per=$(printf '%s\n' "$out" | grep -c '<d[1-4]-1@slow.test> (deferred attempts=1 next_try=[^ ]* reason="[^"]*") <d[1-4]-2@slow.test>')
[ "$per" -eq "$listed" ] || fail "a listed message lacks a recipient: $out"
ctl queue --json | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
st = [s for r in rows if "recipient_state" in r for s in r["recipient_state"]]
assert st and all("where" in s and s["where"] is None for s in st), st
assert rows[-1].get("not_listed", 0) >= 1, rows[-1]' || fail "queue --json: where null, not_listed"
rr_stop
ok "queue lists whole messages until the recipient bound ($listed listed, $more counted); where is null when not busy"
