# ctl delete / bounce with two workers: a job waiting in the ready queue of a site that
# the other worker owns (or on its way there) is not sent once its message is deleted or
# returned. One slow next hop (250 after 2 s, one connection): the first message is in a
# transaction, the others wait (one or two may be done before the command); delete --all
# (then bounce --all) leaves the hop with the one in flight only.
. "$(dirname "$0")/lib.sh"
ctl() { "$RR_BIN" ctl -c "$T/ringrelay.yaml" "$@"; }
sink slow --fail delay=2000ms@100%
rr_config "transports:" "  - id: slow" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
          "    max_connections: 1" \
          "routes:" "  - domains: [slow.test]" "    transport: slow" \
          "queue:" "  retry_schedule: [600]"
rr_start
round() {   # round N: N messages from N connections (both workers accept), one in flight
  local i
  for i in $(seq 1 "$1"); do
    swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "r$2-$i@slow.test" > /dev/null 2>&1 || fail "swaks $i"
  done
  wait_until 10 eval "ctl queue | grep -q '(busy attempts=0 where=in_transaction)'" ||
    fail "nothing in a transaction: $(ctl queue)"
}
homes() { grep -o "event=queued sid=[01]\\.[0-9]* qid=" "$T/relay.log" | cut -d= -f3 | cut -d. -f1 | sort -u | wc -l; }

round 8 1
[ "$(homes)" -eq 2 ] || fail "the messages were all accepted by one worker: the test needs both"
before=$(dumped slow)
out=$(ctl delete --all) || fail "delete --all: exit $?"
expect_match "$out" '^deleted [5-8] recipients of [5-8] messages' "delete --all said"
sleep 5                                  # two more transactions' time
n=$(( $(dumped slow) - before ))
[ "$n" -le 1 ] || fail "$n messages reached the hop after delete --all (only the one in flight may)"
expect_match "$(ctl queue)" '^-- 0 messages$' "queue after delete --all"
ok "delete --all with two workers: nothing waiting at either worker's site was sent ($n in flight)"

wait_until 10 eval "[ -z \"\$(ctl queue | grep busy)\" ]" || true
round 8 2
before=$(dumped slow)
out=$(ctl bounce --all) || fail "bounce --all: exit $?"
expect_match "$out" '^returned [5-8] recipients of [5-8] messages' "bounce --all said"
k=$(printf '%s' "$out" | sed -nE 's/^returned ([0-9]+) recipients.*/\1/p')
wait_until 15 eval '[ "$(grep -c "to=<r2-[0-9]*@slow.test>.*status=\(bounced\|sent\)" "$T/relay.log")" -ge 8 ]' ||
  fail "not every message of round 2 ended: $(grep 'r2-' "$T/relay.log" | tail -5)"
n=$(( $(dumped slow) - before ))
[ "$n" -le 1 ] || fail "$n messages reached the hop after bounce --all (only the one in flight may)"
b=$(grep -c 'to=<r2-[0-9]*@slow.test>.*dsn=5\.0\.0, status=bounced (5\.0\.0 returned to the sender by the operator' "$T/relay.log")
[ "$b" -eq $(( k - n )) ] || fail "$b bounced, $n delivered after the command: want $k in all"
[ "$(grep -c 'sender non-delivery notification' "$T/relay.log")" -eq "$b" ] || fail "not one DSN per bounced message"
rr_stop
ok "bounce --all with two workers: $b returned with a DSN, $n delivered in flight, none sent after"
