# `ringrelay ctl delete` and `ctl bounce` (issue 11): a deferred message deleted is gone,
# also after a restart, and never delivered when its hop comes back; a message deleted
# while its delivery is in flight (a hop that never answers the end of data; a hop that takes 2 s to say
# 250) gets no retry, no DSN, and its outcome logged; bounce returns a deferred message
# to its sender with a DSN (held ones too), and one in flight bounces when its
# transaction fails (also when the daemon is killed before it ends); a wrong queue id is
# exit 1; delete --all empties the queue, durably when it answers (kill -9 right after).
. "$(dirname "$0")/lib.sh"
ctl() { "$RR_BIN" ctl -c "$T/ringrelay.yaml" "$@"; }
HP=$(free_port)                       # a smarthost that is down
GP=$(free_port)                       # a hop that never answers the end of data
# the stalling hop: speaks SMTP up to the end of data, then says nothing (bounded: 90 s);
# logs "data" when it has a message it will not answer
python3 - "$GP" "$T/silent.log" <<'PY' &
import selectors, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); s.setblocking(False)
sel = selectors.DefaultSelector(); sel.register(s, selectors.EVENT_READ)
buf, indata, end = {}, {}, time.time() + 90
def say(line):
    with open(sys.argv[2], "a") as f:
        f.write(line + "\n")
while time.time() < end:
    for key, _ in sel.select(1):
        if key.fileobj is s:
            try:
                c, _ = s.accept()
            except BlockingIOError:
                continue
            c.sendall(b"220 stall.test ESMTP\r\n")
            buf[c], indata[c] = b"", False
            sel.register(c, selectors.EVENT_READ)
            continue
        c = key.fileobj
        d = c.recv(65536)
        if not d:
            sel.unregister(c); c.close(); continue
        buf[c] += d
        while True:
            if indata[c]:
                if b"\r\n.\r\n" in buf[c]:
                    buf[c], indata[c] = b"", None   # stalled: never answered
                    say("data")
                break
            if indata[c] is None or b"\r\n" not in buf[c]:
                break
            line, buf[c] = buf[c].split(b"\r\n", 1)
            verb = line[:4].upper()
            if verb == b"DATA":
                indata[c] = True
                c.sendall(b"354 go\r\n")
            elif verb == b"QUIT":
                c.sendall(b"221 bye\r\n")
            else:
                c.sendall(b"250 ok\r\n")
PY
: > "$T/silent.log"
sink slow --fail delay=2000ms@100%
SP=$S_PORT
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$HP\"" \
          "  - id: silent" "    nexthop: \"[127.0.0.1]:$GP\"" "    timeouts: { data_done: 3 }" \
          "  - id: slow" "    nexthop: \"[127.0.0.1]:$SP\"" \
          "  - id: viapool" "    nexthop: \"[127.0.0.1]:$SP\"" "    proxy_pool: p1" \
          "proxy_pools:" "  - id: p1" "    servers: [\"127.0.0.1:$(free_port)\"]" \
          "    health_check: { interval: 1, timeout: 1, failure_threshold: 1 }" \
          "routes:" "  - domains: [hub.test]" "    transport: hub" \
          "  - domains: [silent.test]" "    transport: silent" \
          "  - domains: [slow.test]" "    transport: slow" \
          "  - domains: [pool.test]" "    transport: viapool" \
          "queue:" "  retry_schedule: [600]"
# one worker: a job is never handed to another worker's site, so `where=` is exact here
sed -i 's/^workers: 2$/workers: 1/' "$T/ringrelay.yaml"
rr_start
send() { swaks --server 127.0.0.1:$RR_PORT --from "$1" --to "$2" > /dev/null 2>&1 || fail "swaks $2"; }
qid_of() { ctl queue | grep -F "<$1>" | awk '{print $1}'; }

send a@x.test d1@hub.test
send a@x.test d2@hub.test
wait_until 10 eval '[ "$(grep -c "hub.test>.*status=deferred" "$T/relay.log")" -ge 2 ]' || fail "not deferred"
q1=$(qid_of d1@hub.test); [ -n "$q1" ] || fail "no queue id for d1"
out=$(ctl delete "$q1") || fail "delete: exit $?"
expect_match "$out" '^deleted 1 recipients of 1 messages' "delete said"
expect_match "$(grep -F "$q1:" "$T/relay.log")" "$q1: removed by the operator \\(1 recipients\\)" "delete logged"
expect_nomatch "$(ctl queue)" 'd1@hub\.test' "the deleted message is still listed"
out=$(ctl delete "$q1" 2>&1); rc=$?
[ "$rc" -eq 1 ] && expect_match "$out" "error: no queued message $q1" "a second delete of it"
out=$(ctl delete 1NOSUCHQUEUEID 2>&1); rc=$?
[ "$rc" -eq 1 ] && expect_match "$out" 'error: no queued message 1NOSUCHQUEUEID' "delete of a wrong id"
out=$(ctl delete --bogus 2>&1); rc=$?
[ "$rc" -eq 1 ] && expect_match "$out" 'error: not a queue id' "delete of an option"
rr_stop
expect_nomatch "$(rr_queue)" 'd1@hub\.test' "the spool lists the deleted message"
expect_match "$(rr_queue)" 'd2@hub\.test' "the spool lost the other one"
rr_start
expect_nomatch "$(ctl queue)" 'd1@hub\.test' "deleted message back after a restart"
sink hub -l 127.0.0.1:$HP
out=$(ctl flush) || fail "flush"
wait_until 10 eval '[ "$(dumped hub)" -ge 1 ]' || fail "d2 not delivered after the flush"
sleep 1
[ "$(dumped hub)" -eq 1 ] || fail "the hop got $(dumped hub) messages: the deleted one went out"
grep -q 'to=<d1@hub.test>.*status=sent' "$T/relay.log" && fail "the deleted message was sent"
ok "delete: gone from the queue and the spool, not back after a restart, never sent; wrong ids are exit 1"

# in flight: the stalling hop holds the end of data until the 3 s data_done timeout
send a@x.test f1@silent.test
wait_until 10 grep -q data "$T/silent.log" || fail "the stalling hop got no message"
q=$(ctl queue); expect_match "$q" "<f1@silent\\.test> \\(busy attempts=0 where=in_transaction\\)" "in a delivery"
qf=$(qid_of f1@silent.test)
out=$(ctl delete "$qf") || fail "delete in flight: exit $?"
expect_match "$out" '^deleted 1 recipients of 1 messages' "delete in flight said"
expect_nomatch "$(ctl queue)" 'f1@silent\.test' "deleted in flight, still listed"
wait_log "$qf: to=<f1@silent.test>, relay=.*status=deleted \\(deleted by the operator; last: 4\\.4\\.2 " 15 ||
  fail "no outcome line for the message deleted in flight"
grep -q "$qf: to=<f1@silent.test>.*status=deferred" "$T/relay.log" && fail "deleted, yet deferred"
grep -q "$qf: sender non-delivery notification" "$T/relay.log" && fail "deleted, yet a DSN"
# one that the hop takes (250 after 2 s) while it is deleted: it went, and is said so
send a@x.test s1@slow.test
wait_until 10 eval 'ctl queue | grep -q "<s1@slow.test> (busy "' || fail "s1 not in a delivery"
qs=$(qid_of s1@slow.test)
out=$(ctl delete "$qs") || fail "delete of s1: exit $?"
wait_log "$qs: to=<s1@slow.test>, relay=.*status=sent \\(deleted by the operator during the delivery; reply: 250" 15 ||
  fail "no sent line for the message deleted during its 250"
rr_stop
expect_nomatch "$(rr_queue)" 'f1@silent|s1@slow' "a message deleted in flight is in the spool"
rr_start
sleep 1
expect_nomatch "$(ctl queue)" 'f1@silent|s1@slow' "a message deleted in flight came back"
ok "delete in flight: no retry, no DSN, the outcome logged (a 250 said as sent); not back after a restart"

# bounce: a deferred message (sink down again), a held one, one in flight
kill "${S_PID[1]}"; wait "${S_PID[1]}" 2>/dev/null
swaks --server 127.0.0.1:$RR_PORT --from b@x.test --to b1@hub.test \
  --header "Subject: original subject b1" > /dev/null 2>&1 || fail "swaks b1"
send c@x.test b2@hub.test
wait_until 10 eval '[ "$(grep -c "to=<b[12]@hub.test>.*status=deferred" "$T/relay.log")" -ge 2 ]' || fail "b1/b2 not deferred"
qb1=$(qid_of b1@hub.test); qb2=$(qid_of b2@hub.test)
out=$(ctl hold "$qb2") || fail "hold b2"
out=$(ctl bounce "$qb1") || fail "bounce: exit $?"
expect_match "$out" '^returned 1 recipients of 1 messages' "bounce said"
wait_log "$qb1: to=<b1@hub.test>, relay=none, .*dsn=5\\.0\\.0, status=bounced \\(5\\.0\\.0 returned to the sender by the operator\\)" 5 ||
  fail "no bounced line for b1"
wait_log "$qb1: sender non-delivery notification: " 5 || fail "no DSN for b1"
dsn=$(sed -nE "s/.*$qb1: sender non-delivery notification: ([0-9A-Za-z]+).*/\\1/p" "$T/relay.log" | head -1)
expect_match "$(ctl queue)" "^$dsn .*<> +<b@x\\.test>" "the DSN is queued to the sender"
# (b1's body was dropped from memory when it was deferred: read back for the DSN's header)
"$RR_BIN" --show "$dsn" -c "$T/ringrelay.yaml" > "$T/dsn.eml" || fail "--show the DSN"
grep -q 'text/rfc822-headers' "$T/dsn.eml" || fail "the DSN has no headers part"
grep -q '^Subject: original subject b1' "$T/dsn.eml" || fail "the DSN does not quote the returned message's header"

out=$(ctl bounce "$qb2") || fail "bounce of a held message: exit $?"
wait_log "$qb2: to=<b2@hub.test>, relay=none, .*status=bounced" 5 || fail "held b2 not bounced"
send e@x.test g1@silent.test
wait_until 10 eval '[ "$(grep -c data "$T/silent.log")" -ge 2 ]' || fail "the stalling hop got no second message"
qg=$(qid_of g1@silent.test)
out=$(ctl bounce "$qg") || fail "bounce in flight: exit $?"
wait_log "$qg: to=<g1@silent.test>, relay=.*dsn=5\\.0\\.0, status=bounced \\(5\\.0\\.0 returned to the sender by the operator; last: " 15 ||
  fail "the message in flight did not bounce when its transaction failed"
grep -q "$qg: to=<g1@silent.test>.*status=deferred" "$T/relay.log" && fail "returned, yet deferred"
wait_log "$qg: sender non-delivery notification: " 5 || fail "no DSN for g1"
# bounced in flight, then the daemon dies before the transaction ends: the spool says it
# is returning, and the restart bounces it
send h@x.test h1@silent.test
wait_until 10 eval '[ "$(grep -c data "$T/silent.log")" -ge 3 ]' || fail "the stalling hop got no third message"
qh=$(qid_of h1@silent.test)
out=$(ctl bounce "$qh") || fail "bounce in flight (h1): exit $?"
rr_kill9
expect_match "$(rr_queue)" '<h1@silent\.test> \(attempts=0 returning\)' "the spool does not say h1 is returning"
rr_start
wait_log "$qh: to=<h1@silent.test>, relay=.*dsn=5\\.0\\.0, status=bounced \\(5\\.0\\.0 returned to the sender by the operator" 15 ||
  fail "h1 was not bounced after the restart"
wait_log "$qh: sender non-delivery notification: " 5 || fail "no DSN for h1"
out=$(ctl bounce 1NOSUCHQUEUEID 2>&1); rc=$?
[ "$rc" -eq 1 ] && expect_match "$out" 'error: no queued message 1NOSUCHQUEUEID' "bounce of a wrong id"
rr_stop
expect_nomatch "$(rr_queue)" 'b1@hub|b2@hub|g1@silent|h1@silent' "a returned message is still in the spool"
expect_match "$(rr_queue)" '<b@x\.test>' "the DSN is not in the spool"
ok "bounce: deferred, held and in-flight messages returned with a DSN (also after a kill -9 mid-transaction); gone after a restart"

rr_start
# bounce --all of 80 deferred messages (more than the 32 DSN body reads a worker runs at
# once): a DSN each, each quoting its message's header
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 80 -t 30 -l 1k --to-domain norte.test > "$T/blast.out" 2>&1 ||
  { cat "$T/blast.out" >&2; fail "ringblast"; }
wait_until 20 eval '[ "$(grep -c "@norte.test>.*status=deferred" "$T/relay.log")" -ge 80 ]' || fail "norte.test not deferred"
d0=$(grep -c 'sender non-delivery notification' "$T/relay.log")
out=$(ctl bounce --all) || fail "bounce --all: exit $?"
expect_match "$out" '^returned [0-9]+ recipients of [0-9]+ messages' "bounce --all said"
wait_until 20 eval '[ $(( $(grep -c "sender non-delivery notification" "$T/relay.log") - d0 )) -ge 80 ]' ||
  fail "$(( $(grep -c 'sender non-delivery notification' "$T/relay.log") - d0 )) DSNs of 80"
for q in $(grep -o 'sender non-delivery notification: [0-9A-Za-z]*' "$T/relay.log" | tail -3 | awk '{print $4}'); do
  "$RR_BIN" --show "$q" -c "$T/ringrelay.yaml" | grep -q '^Subject: ringblast test message' ||
    fail "DSN $q does not quote its message's header"
done
ok "bounce --all of 80 deferred messages: 80 DSNs, each with its message's header"

# a message for a pool whose only proxy nobody runs waits, and says why
send a@x.test p@pool.test
wait_until 10 eval "ctl queue | grep -q '<p@pool.test> (busy attempts=0 where=no_proxy_up)'" ||
  fail "the pool's message does not say it waits for a proxy: $(ctl queue)"
ctl queue --json | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
p = [s for r in rows for s in r["recipient_state"] if s["address"] == "p@pool.test"]
assert p and p[0]["where"] == "no_proxy_up" and p[0]["reason"] is None, p' || fail "queue --json: where"
n=$(ctl queue | grep -c '^[0-9A-Za-z]\{8,\} ')
[ "$n" -ge 5 ] || fail "expected the DSNs and the pool's message queued, saw $n: $(ctl queue)"
out=$(ctl delete --all) || fail "delete --all"
expect_match "$out" "^deleted [0-9]+ recipients of $n messages" "delete --all"
expect_match "$(ctl queue)" '^-- 0 messages$' "the queue after delete --all"
rr_kill9                                 # the answer came once the change was durable
[ "$(rr_queue_count)" -eq 0 ] || fail "the spool after delete --all and kill -9: $(rr_queue)"
rr_start
expect_match "$(ctl queue)" '^-- 0 messages$' "the queue after delete --all, kill -9, start"
rr_stop
ok "delete --all: the queue and the spool are empty, also after a kill -9 right after the answer"
