# The control socket and `ringrelay ctl` (issue 11, in part): status; queue (text and
# JSON, live states); flush of everything, of a queue id, of a domain, and of a dead
# site once its hop is back; reload (and a failed one); clear errors and exit statuses for a wrong queue id, an
# unknown command, no daemon (never a hang) and no command; a long request line; the
# socket's mode; a stale socket after kill -9 is replaced at the next start.
. "$(dirname "$0")/lib.sh"
ctl() { "$RR_BIN" ctl -c "$T/ringrelay.yaml" "$@"; }
HP=$(free_port)                       # a smarthost that is down at first
XP=$(free_port)                       # a proxy server nobody runs
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$HP\"" "    dead_after: 1" \
          "  - id: viapool" "    proxy_pool: p1" \
          "proxy_pools:" "  - id: p1" "    servers: [\"127.0.0.1:$XP\"]" \
          "    health_check: { interval: 1, timeout: 1, failure_threshold: 2 }" \
          "routes:" "  - domains: [hub.test]" "    transport: hub" \
          "  - domains: [pool.test]" "    transport: viapool" \
          "queue:" "  retry_schedule: [600]"
rr_start
[ "$(stat -c %a "$T/spool/control.sock")" = 600 ] || fail "control socket mode $(stat -c %a "$T/spool/control.sock")"
for i in 1 2 3; do
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "u$i@example.net" > /dev/null 2>&1 || fail "swaks $i"
done
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u@hub.test > /dev/null 2>&1 || fail "swaks hub"
wait_log 'to=<u@hub.test>.*status=deferred' 10 || fail "the hub message was not deferred"
wait_until 10 eval '[ "$(grep -c "example.net>.*status=deferred" "$T/relay.log")" -ge 3 ]' || fail "not deferred"
wait_log 'event=site_dead site=hub/' 5 || fail "the hub site is not dead"
out=$(ctl sites) || fail "sites: exit $?"
expect_match "$out" "^hub/\\[127\\.0\\.0\\.1\\]:$HP  state=dead worker=[01] connections=0 window=[0-9]+ max_connections=100 ready=0 fails=0 retry_in_s=[0-9]+" "sites: the dead hub"
wait_until 10 eval "ctl proxies | grep -q 'server=127.0.0.1:$XP source=- state=down'" || fail "proxies: the server nobody runs is not down: $(ctl proxies)"
expect_match "$(ctl proxies)" "pool=p1 server=127\\.0\\.0\\.1:$XP source=- state=down for_s=[0-9]+ checks=[0-9]+ fails=[1-9][0-9]* passive_fails=0 last_failure=refused\\(111\\)" "proxies line"
ok "sites (the dead one, with its retry) and proxies (the server nobody runs: down, refused)"

# (the counters are what the workers published: at most 100 ms old)
wait_until 5 eval 'ctl status | grep -q "queue_messages=4"' || fail "status: not 4 queued: $(ctl status)"
out=$(ctl status) || fail "status: exit $?"
expect_match "$out" '^version=[0-9.]+ pid=[0-9]+ uptime_s=[0-9]+ workers=2 state=running' "status line"
expect_match "$out" 'queue_messages=4' "status: 4 queued"
expect_match "$out" 'accepted=4 ' "status: 4 accepted"

out=$(ctl queue) || fail "queue: exit $?"
expect_match "$out" '<u1@example.net> \(deferred attempts=1 next_try=20[0-9-]+T[0-9:]+Z reason="4\.3\.5 no route for this domain in the configuration"\)' "queue: deferred line with its reason"
expect_match "$out" '<u@hub.test> \(deferred attempts=1 next_try=[0-9TZ:-]+ reason="4\.4\.1 delivery temporarily suspended: connect to 127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+: Connection refused"\)' "queue: the hub's reason"
expect_match "$out" '^-- 4 messages$' "queue: count"
ctl queue --json > "$T/q.json" || fail "queue --json"
python3 - "$T/q.json" <<'PY' || fail "queue --json is not one JSON object per line as described"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 4, rows
for r in rows:
    assert r["live"] is True and r["sender"] == "a@x.test" and r["size"] > 0
    for s in r["recipient_state"]:
        assert s["state"] == "deferred" and s["attempts"] == 1 and s["next_try"], s
        assert s["reason"] and s["reason"][:2] == "4.", s
PY
ok "status and queue (text, JSON) from the live daemon"

qid=$(ctl queue | grep '<u2@example.net>' | awk '{print $1}')
[ -n "$qid" ] || fail "no queue id for u2"
out=$(ctl flush "$qid") || fail "flush QID: exit $?"
expect_match "$out" '^flushed 1 recipients of 1 messages' "flush by queue id"
wait_until 10 eval '[ "$(grep -c "to=<u2@example.net>.*status=deferred" "$T/relay.log")" -ge 2 ]' || fail "u2 not tried again"
[ "$(grep -c 'to=<u1@example.net>.*status=deferred' "$T/relay.log")" -eq 1 ] || fail "u1 was tried again too"
out=$(ctl flush EXAMPLE.net) || fail "flush domain: exit $?"
expect_match "$out" '^flushed 3 recipients of 3 messages' "flush by domain"
out=$(ctl flush 1NOSUCHQUEUEID 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "flush of a wrong queue id: exit $rc"
expect_match "$out" 'error: nothing deferred matches 1NOSUCHQUEUEID' "wrong queue id said"
ok "flush by queue id, by domain (case-insensitive); a wrong id is exit 1 with a reason"

settled() { ! ctl queue | grep -Eq '\((ready|busy) '; }   # the flushed ones tried again
wait_until 10 settled || fail "flushed recipients not tried: $(ctl queue)"
qid1=$(ctl queue | grep '<u1@example.net>' | awk '{print $1}')
[ -n "$qid1" ] || fail "no queue id for u1"
out=$(ctl hold "$qid1") || fail "hold: exit $?"
expect_match "$out" '^held 1 recipients of 1 messages' "hold said"
expect_match "$(ctl queue)" '<u1@example\.net> \(held attempts=[0-9]+ reason="4\.3\.5 [^"]+"\)' "queue shows it held"
tries=$(grep -c 'to=<u1@example.net>.*status=deferred' "$T/relay.log")
out=$(ctl flush example.net) || fail "flush with a held message: exit $?"
expect_match "$out" '^flushed 2 recipients of 2 messages' "flush leaves the held one alone"
sleep 1.5
[ "$(grep -c 'to=<u1@example.net>.*status=deferred' "$T/relay.log")" -eq "$tries" ] || fail "the held message was tried"
wait_until 10 settled || fail "not settled before the restart"
rr_stop
expect_match "$(rr_queue)" '<u1@example\.net> \(attempts=[0-9]+ held\)' "--queue (the spool) shows it held"
rr_start
expect_match "$(ctl queue)" '<u1@example\.net> \(held attempts=[0-9]+\)' "held after a restart"
out=$(ctl release "$qid1") || fail "release: exit $?"
expect_match "$out" '^released 1 recipients of 1 messages' "release said"
wait_until 10 eval '[ "$(grep -c "to=<u1@example.net>.*status=deferred" "$T/relay.log")" -gt "$tries" ]' || fail "released, but not tried"
wait_until 10 settled || fail "not settled after the release"
rr_stop                                  # the release outranks the hold in the spool too
expect_nomatch "$(rr_queue)" 'held' "held again after a release and a restart"
rr_start
out=$(ctl hold 1NOSUCHQUEUEID 2>&1); rc=$?
[ "$rc" -eq 1 ] && expect_match "$out" 'error: no queued message 1NOSUCHQUEUEID' "hold of a wrong id"
out=$(ctl hold --all) || fail "hold --all"
expect_match "$out" '^held [0-9]+ recipients of 4 messages' "hold --all"
out=$(ctl release --all) || fail "release --all"
expect_match "$out" '^released [0-9]+ recipients of 4 messages' "release --all"
ok "hold (kept across a restart, left alone by flush), release, --all, a wrong id is exit 1"

# the hub site was dead (dead_after: 1, retry in 600 s; the flushes above made it live
# again, and nothing tried it since); its hop comes up; flush

sink up -l 127.0.0.1:$HP
out=$(ctl flush) || fail "flush all: exit $?"
expect_match "$out" '^flushed [0-9]+ recipients' "flush all"
wait_until 15 eval '[ "$(dumped up)" -ge 1 ]' || fail "the dead site's message was not delivered after flush"
wait_log 'to=<u@hub.test>.*status=sent' 10 || fail "no sent line for the hub message"
ok "flush of a dead site: delivered once its hop is back"

out=$(ctl reload) || fail "reload: exit $?"
expect_match "$out" '^reloaded$' "reload said"
wait_log 'event=reloaded generation=2' 5 || fail "no reload in the log"
cp "$T/ringrelay.yaml" "$T/good.yaml"
sed -i 's/^workers: 2$/workers: 1/' "$T/ringrelay.yaml"   # valid, but needs a restart
out=$(ctl reload 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "a failed reload: exit $rc"
expect_match "$out" 'error: the reload failed and the running configuration stays' "failed reload said"
cp "$T/good.yaml" "$T/ringrelay.yaml"
sed -i 's/"127\.0\.0\.1:1"/"127.0.0.1:2"/' "$T/ringrelay.yaml"   # resolvers: made at start
grep -q '"127.0.0.1:2"' "$T/ringrelay.yaml" || fail "the test's dns line changed"
out=$(ctl reload 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "a reload changing dns.servers: exit $rc"
wait_log 'event=reload_failed keeping=old error="dns.servers changed: a restart is needed"' 5 ||
  fail "dns.servers change not refused"
cp "$T/good.yaml" "$T/ringrelay.yaml"
ok "reload: reloaded, and a failed one (workers, dns.servers) is exit 1"
out=$(ctl bogus 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "an unknown command: exit $rc"
expect_match "$out" "unknown command: bogus" "unknown command"
out=$(ctl bounce " --all" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "ctl bounce ' --all': exit $rc, want 2"
out=$(ctl flush '' 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "ctl flush '': exit $rc, want 2"
for args in "delete" "bounce a b" "hold" "queue --xml" "status now"; do
  out=$(ctl $args 2>&1); rc=$?
  [ "$rc" -eq 2 ] || fail "ctl $args: exit $rc, want 2 (usage)"
  expect_match "$out" "error: usage: ${args%% *}" "ctl $args: usage said"
done
out=$(ctl 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "no command: exit $rc"
python3 - "$T/spool/control.sock" <<'PY' || fail "a long request line"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
try:
    s.sendall(b"q" * 1100)
except OSError:
    pass
data = s.makefile("rb").read()
assert data.startswith(b"error: request line too long"), data[:80]
PY
out=$(ctl status) || fail "status after the hostile ones"
rr_kill9
[ -S "$T/spool/control.sock" ] || fail "no socket left behind by kill -9 (the next check means nothing)"
start=$(date +%s)
out=$(ctl status 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "no daemon: exit $rc"
[ $(( $(date +%s) - start )) -le 5 ] || fail "no daemon: it waited"
# (refused; or, while the dead process's ring still holds its listening socket a moment,
# accepted into the backlog and closed: both said, both at once)
expect_match "$out" '(cannot reach the daemon at .*control.sock: Connection refused \(is it running|the daemon closed without an answer)' "no daemon said"
rr_start
ctl status > /dev/null || fail "the stale socket was not replaced"
# 20 connections that say nothing (16 places) and one trickling half a line: ctl still
# answers at once, each time (it takes the place of the oldest silent one), and the
# silent ones are cut when their 5 s for the request are over
python3 - "$T/spool/control.sock" > "$T/silent.txt" <<'PY' &
import socket, sys, time
held = []
for i in range(20):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
held[-1].sendall(b"stat")
open(sys.argv[1] + ".held", "w").close()
end = time.time() + 30
cut = 0
for s in held:
    s.settimeout(max(0.1, end - time.time()))
    try:
        if s.recv(100) == b"":
            cut += 1
    except ConnectionResetError:
        cut += 1
    except socket.timeout:
        pass
print("cut=%d" % cut)
PY
SP=$!
wait_until 10 test -e "$T/spool/control.sock.held" || fail "the silent connections"
for i in 1 2 3; do
  out=$(timeout 10 "$RR_BIN" ctl -c "$T/ringrelay.yaml" status 2>&1) || fail "ctl status with every place held ($i): $out"
done
wait $SP
grep -q '^cut=20$' "$T/silent.txt" || fail "the silent connections: $(cat "$T/silent.txt"), want all 20 cut"
rm -f "$T/spool/control.sock.held"
# one process connecting as fast as it can for 6 s (its places are the ones taken back):
# every ctl status meanwhile is answered (before: about a quarter failed at 50k/s)
python3 "$HERE/flood.py" connect "$T/spool/control.sock" 6 > "$T/flood.txt" &
FLP=$!
sleep 0.5
okn=0
for i in $(seq 1 10); do
  timeout 10 "$RR_BIN" ctl -c "$T/ringrelay.yaml" status > /dev/null 2>> "$T/flood.err" && okn=$((okn + 1))
  sleep 0.2
done
wait $FLP
[ "$okn" -eq 10 ] || fail "ctl status under a connect flood: $okn of 10 ($(cat "$T/flood.txt"); $(sort "$T/flood.err" | uniq -c | head -3))"
rr_stop
grep -q "event=ops_stopped service=control accepted=[0-9]* refused=[0-9]* evicted=[1-9]" "$T/relay.log" ||
  fail "$(grep "event=ops_stopped service=control" "$T/relay.log" | tail -1)"
[ ! -e "$T/spool/control.sock" ] || fail "the socket is left after a clean stop"
ok "unknown command, wrong arguments (exit 2), no command, a long line, no daemon (exit 1 at once), stale socket replaced, 3 of 3 answered with every place held by silent connections (20 cut), 10 of 10 under a connect flood, removed at stop"

# an answer without its closing "." line was cut: exit 1, nothing printed as if whole
python3 - "$T/spool/control.sock" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); s.settimeout(10)
c, _ = s.accept(); c.recv(4096); c.sendall(b"ok\nversion=9 half"); c.close(); s.close(); os.unlink(sys.argv[1])
PY
FP=$!
wait_until 5 test -S "$T/spool/control.sock" || fail "fake daemon"
out=$(ctl status 2> "$T/err.txt"); rc=$?
wait $FP
[ "$rc" -eq 1 ] || fail "a cut answer: exit $rc"
[ -z "$out" ] || fail "a cut answer was printed: $out"
grep -q 'the answer was cut short' "$T/err.txt" || fail "a cut answer not said: $(cat "$T/err.txt")"
# a stop removes only the socket it made: another relay bound there since keeps its own
rr_start
A_PID=$RR_PID
rm "$T/spool/control.sock"
cp "$T/ringrelay.yaml" "$T/b.yaml"
sed -i "s|path: $T/spool|path: $T/spool2|" "$T/b.yaml"
printf 'control: { path: %s }\n' "$T/spool/control.sock" >> "$T/b.yaml"
sed -i 's/port: 0/port: 0/' "$T/b.yaml"
"$RR_BIN" -c "$T/b.yaml" 2> "$T/b.log" &
B_PID=$!
wait_until 10 grep -q 'event=ready' "$T/b.log" || { cat "$T/b.log" >&2; fail "the second relay did not start"; }
rr_stop
[ -S "$T/spool/control.sock" ] || fail "stopping one relay removed the other's socket"
"$RR_BIN" ctl -c "$T/b.yaml" status > /dev/null || fail "the second relay's socket does not answer"
kill -TERM $B_PID; wait $B_PID || fail "the second relay exited $?"
[ ! -e "$T/spool/control.sock" ] || fail "the second relay left its socket"
ok "a cut answer is exit 1; a stop removes only its own socket"
