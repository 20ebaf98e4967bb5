# ringblast (the ASan build in $RR_TOOLS) against the real relay: pipelined and one command
# at a time, --json, several recipients, PROXY v1/v2 from a relay network, a refusing relay
# (554 counted, exit 1), a dead port, --idle-hold, --rate, and its usage errors (exit 2).
# Small counts; no timing is asserted.
. "$(dirname "$0")/lib.sh"
BLAST="$RR_TOOLS/ringblast"
[ -x "$BLAST" ] || fail "no ringblast in $RR_TOOLS"
export RINGBLAST_NO_PROGRESS=1
blast() { timeout 120 "$BLAST" "$@" 2>&1; }

# 1. 200 messages over 4 connections, pipelined: every one queued.
rr_start
out=$(blast -s 127.0.0.1:$RR_PORT -c 4 -n 200) || fail "ringblast -c 4 -n 200 exited $?: $out"
expect_match "$out" '^messages: 200 ok, 0 failed, of 200 \(4 connections, 1 rcpt, 4096 octets, pipelining\)' "200 ok"
expect_match "$out" '^errors: 0$' "no errors"
expect_match "$out" '^connection errors: 0$' "no connection errors"
expect_match "$out" '^latency ms \(end of DATA to 250\): p50 [0-9.]+  p99 [0-9.]+  p999 [0-9.]+' "latency line"
n=$(rr_queue_count)
[ "$n" -eq 200 ] || fail "queue lists $n, want 200"
ok "200 messages, 0 errors, 200 queued"

# 2. --json: one object with the fields.
out=$(blast -s 127.0.0.1:$RR_PORT -c 2 -n 20 -l 1k --json) || fail "--json exited $?: $out"
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in ("server", "connections", "established", "messages", "failed", "seconds",
          "messages_per_s", "latency_ms", "errors", "error_count", "connection_errors"):
    assert k in d, "missing " + k
for k in ("p50", "p99", "p999", "min", "mean", "max", "count"):
    assert k in d["latency_ms"], "missing latency_ms." + k
assert d["messages"] == 20 and d["failed"] == 0 and d["errors"] == {}, d
assert d["connections"] == 2 and d["established"] == 2 and d["size"] == 1024, d
assert d["latency_ms"]["count"] == 20 and d["latency_ms"]["p50"] > 0, d
assert d["pipelining"] is True and d["proxy"] is None, d
' || fail "--json output: $out"
ok "--json parses and has the fields"

# 3. --no-pipelining; 4. -r 3.
out=$(blast -s 127.0.0.1:$RR_PORT -c 2 -n 20 --no-pipelining) || fail "--no-pipelining exited $?: $out"
expect_match "$out" '^messages: 20 ok, 0 failed, of 20 \(2 connections, 1 rcpt, 4096 octets, no pipelining\)' "no pipelining"
out=$(blast -s 127.0.0.1:$RR_PORT -c 2 -n 10 -r 3 --to-domain local.test) || fail "-r 3 exited $?: $out"
expect_match "$out" '^messages: 10 ok, 0 failed, of 10 \(2 connections, 3 rcpts' "-r 3"
out=$(blast -s 127.0.0.1:$RR_PORT -c 2 -n 6 -r 2 --no-pipelining) || fail "-r 2 --no-pipelining exited $?: $out"
rr_queue --json > "$T/q.json"
python3 - "$T/q.json" <<'PY' || fail "queue contents"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(msgs) == 256, len(msgs)
three = [m for m in msgs if m["recipients"] == ["rcpt1@local.test", "rcpt2@local.test", "rcpt3@local.test"]]
assert len(three) == 10, len(three)
two = [m for m in msgs if m["recipients"] == ["rcpt1@example.net", "rcpt2@example.net"]]
assert len(two) == 6, len(two)
assert all(m["sender"] == "blast@ringblast.test" for m in msgs)
PY
ok "--no-pipelining; -r 3 queues 3 recipients"

# 5. --idle-hold and --rate (no timing asserted).
out=$(blast -s 127.0.0.1:$RR_PORT -c 20 --idle-hold 1) || fail "--idle-hold exited $?: $out"
expect_match "$out" '20 of 20 connections established, holding them idle for 1 s' "idle-hold start"
expect_match "$out" '^established: 20 of 20 connections, held idle 1 s' "idle-hold summary"
out=$(blast -s 127.0.0.1:$RR_PORT -c 2 -n 10 --rate 40) || fail "--rate exited $?: $out"
expect_match "$out" '^messages: 10 ok' "--rate"
rr_stop
grep -q 'event=queued .*nrcpt=3' "$T/relay.log" || fail "no nrcpt=3 in the relay log"
ok "--idle-hold, --rate"

# 6. PROXY v2 (and v1) from 203.0.113.0/24 through a trusted proxy host.
rm -rf "$T/spool"
rr_proxy_config trusted 'proxy_hosts: [127.0.0.1]'
rr_start
out=$(blast -s 127.0.0.1:$RR_PORT -c 4 -n 40 --proxy v2 --proxy-src 203.0.113.0/24) || fail "--proxy v2 exited $?: $out"
expect_match "$out" '^messages: 40 ok, 0 failed, of 40 \(4 connections, 1 rcpt, 4096 octets, pipelining, PROXY v2\)' "PROXY v2"
out=$(blast -s 127.0.0.1:$RR_PORT -c 2 -n 4 --proxy v1 --proxy-src 203.0.113.128/25) || fail "--proxy v1 exited $?: $out"
expect_match "$out" '^messages: 4 ok' "PROXY v1"
# 7. A source outside the relay networks: 554 for example.net, counted, exit 1 ...
out=$(blast -s 127.0.0.1:$RR_PORT -c 1 -n 3 --proxy v2 --proxy-src 198.51.100.0/24); rc=$?
[ "$rc" -eq 1 ] || fail "refused run exited $rc, want 1: $out"
expect_match "$out" '^messages: 0 ok, 3 failed' "3 failed"
expect_match "$out" '^errors: 3 \(554: 3\)' "554 counted"
expect_match "$out" '^first error: 554 5\.7\.1 <rcpt1@example\.net>: Relay access denied' "first error"
out=$(blast -s 127.0.0.1:$RR_PORT -c 1 -n 2 --proxy v2 --proxy-src 198.51.100.0/24 --json); rc=$?
[ "$rc" -eq 1 ] || fail "refused --json run exited $rc, want 1"
printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["errors"] == {"554": 2} and d["failed"] == 2, d' \
  || fail "refused --json: $out"
# ... but the relay's own domain is accepted from anywhere.
out=$(blast -s 127.0.0.1:$RR_PORT -c 1 -n 3 --proxy v1 --proxy-src 198.51.100.0/24 --to-domain local.test) \
  || fail "relay domain from outside exited $?: $out"
n=$(rr_queue_count)
[ "$n" -eq 47 ] || fail "queue lists $n, want 47"
rr_stop
grep -Eq 'event=proxy .*client=203\.0\.113\.' "$T/relay.log" || fail "no event=proxy client=203.0.113.x"
[ "$(grep -Ec 'event=proxy .*client=203\.0\.113\..* version=2' "$T/relay.log")" -eq 4 ] || fail "want 4 v2 sessions"
v1=$(sed -nE 's/.*event=proxy .*client=203\.0\.113\.([0-9]+) .* version=1.*/\1/p' "$T/relay.log" | awk '$1 >= 128' | wc -l)
[ "$v1" -eq 2 ] || fail "want 2 v1 sessions from 203.0.113.128/25, got $v1"
ok "PROXY v2/v1 from the relay network accepted; 554 counted, exit 1"

# 8. Nobody listening: connection errors, exit 1.
port=$(free_port)
out=$(blast -s 127.0.0.1:$port -c 2 -n 2); rc=$?
[ "$rc" -eq 1 ] || fail "dead port exited $rc, want 1: $out"
expect_match "$out" '^connection errors: 2$' "connection errors counted"
expect_match "$out" 'Connection refused' "connection refused said"

# 9. Usage errors: exit 2.
out=$(blast -s 127.0.0.1:$port -c 1 -n 1 --per-conn 0); rc=$?
[ "$rc" -eq 2 ] || fail "--per-conn 0 exited $rc, want 2"
expect_match "$out" "^ringblast: --per-conn: expected a number from 1 to 1000000000000, got '0'" "--per-conn 0 message"
out=$(blast -s 127.0.0.1:$port -c 1); rc=$?
[ "$rc" -eq 2 ] || fail "missing -n exited $rc, want 2"
expect_match "$out" '^ringblast: missing -n MESSAGES' "missing -n"
out=$(blast --help) || fail "--help exited $?"
expect_match "$out" '^usage: ringblast -s HOST:PORT' "--help"
sanitizer_clean
ok "connection refused, usage errors"
