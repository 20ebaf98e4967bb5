# ringsink, the benchmarks' sink, with real clients: counts (swaks + smtp-source, SIGUSR1),
# --dump, --proxy (swaks v1/v2, v2 LOCAL, a malformed header), --fail (reject, defer with
# a seed repeated exactly, drop, delay), -w 2, SIGTERM/SIGINT with sessions open, usage
# errors; exit 0 and no sanitizer report every time.
. "$(dirname "$0")/lib.sh"
SINK="$RR_TOOLS/ringsink"
[ -x "$SINK" ] || fail "no ringsink in $RR_TOOLS"
PP="python3 $HERE/pp.py"
SINK_PID=
SINK_PORT=
SINK_LOG=

# sink_start NAME [ARGS...]: ringsink on an ephemeral port; stderr in $T/NAME.log.
sink_start() {
  local name=$1 i; shift
  SINK_LOG=$T/$name.log
  "$SINK" -l 127.0.0.1:0 "$@" 2> "$SINK_LOG" &
  SINK_PID=$!
  for i in $(seq 1 200); do
    SINK_PORT=$(sed -nE '1s/^ringsink: listening on 127\.0\.0\.1:([0-9]+)$/\1/p' "$SINK_LOG")
    [ -n "$SINK_PORT" ] && return 0
    kill -0 "$SINK_PID" 2>/dev/null || { cat "$SINK_LOG" >&2; fail "$name: ringsink exited at start"; }
    sleep 0.05
  done
  cat "$SINK_LOG" >&2
  fail "$name: no 'listening on' first line"
}

# sink_counts: SIGUSR1, wait for the new counts line, print it (and the source lines).
sink_counts() {
  local before i
  before=$(grep -Ec 'connections(=|":)' "$SINK_LOG")
  kill -USR1 "$SINK_PID"
  for i in $(seq 1 100); do
    [ "$(grep -Ec 'connections(=|":)' "$SINK_LOG")" -gt "$before" ] && break
    sleep 0.05
  done
  sleep 0.05
  awk -v n="$before" '/connections(=|":)/ { k++ } k > n' "$SINK_LOG"
}

# sink_stop [SIGNAL]: expect exit 0 within 10 s and no sanitizer report; $S is what the
# sink said after the signal. (Not in a subshell: it must wait for its child.)
sink_stop() {
  local sig=${1:-TERM} i rc lines
  lines=$(wc -l < "$SINK_LOG")
  kill -"$sig" "$SINK_PID"
  for i in $(seq 1 100); do kill -0 "$SINK_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SINK_PID" 2>/dev/null; then kill -9 "$SINK_PID"; SINK_PID=; fail "no exit 10 s after SIG$sig"; fi
  wait "$SINK_PID"; rc=$?
  SINK_PID=
  sanitizer_clean
  if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$SINK_LOG"; then
    cat "$SINK_LOG" >&2; fail "sanitizer report in the sink's log"
  fi
  [ "$rc" -eq 0 ] || { cat "$SINK_LOG" >&2; fail "exit status $rc after SIG$sig"; }
  S=$(tail -n +"$((lines + 1))" "$SINK_LOG")
}

num() { sed -nE "s/.*[ {\"]$1[\"]?[=:]([0-9]+).*/\1/p" <<<"$2" | head -1; }

# 1. Counting: swaks, then smtp-source (5 sessions, 200 messages; -d: sessions are reused).
sink_start plain
out=$(swaks --server 127.0.0.1:$SINK_PORT --from a@x.test --to b@y.test 2>&1)
expect_match "$out" '<-  250 2\.0\.0 Ok: queued as [0-9]+' "swaks: 250 queued as N"
expect_match "$out" '<-  220 .* ESMTP' "swaks: banner"
expect_match "$out" 'PIPELINING' "EHLO offers PIPELINING"
timeout 60 smtp-source -s 5 -m 200 -d 127.0.0.1:$SINK_PORT > "$T/src.out" 2>&1 ||
  { cat "$T/src.out" >&2; fail "smtp-source failed"; }
c=$(sink_counts)
expect_match "$c" '^ringsink: connections=6 messages=201 recipients=201 bytes=[0-9]+ deferred=0 rejected=0 dropped=0 delayed=0$' "SIGUSR1 counts"
[ "$(num bytes "$c")" -gt 0 ] || fail "no bytes counted"
# a pipelined session: two messages in one connection, exact bytes
out=$($SMTPC $SINK_PORT 'EHLO c.test\r\n|||MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n|||Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n|||..dot\r\n.\r\nQUIT\r\n')
[ "$(grep -c '^250 2.1.5 Ok' <<<"$out")" -eq 3 ] && [ "$(grep -c '^354 ' <<<"$out")" -eq 2 ] ||
  { echo "$out" >&2; fail "pipelined RCPTs and DATA"; }
[ "$(grep -c '250 2.0.0 Ok: queued as' <<<"$out")" -eq 2 ] || { echo "$out" >&2; fail "two messages queued"; }
expect_match "$out" '221 2\.0\.0 Bye' "QUIT"
c=$(sink_counts)
expect_match "$c" 'connections=7 messages=203 recipients=204 ' "pipelined session counted"
b0=$(num bytes "$(grep connections= "$SINK_LOG" | tail -2 | head -1)")
[ "$(( $(num bytes "$c") - b0 ))" -eq 26 ] || fail "bytes: $(( $(num bytes "$c") - b0 )), want 20 + 6"
sink_stop
expect_match "$S" '^ringsink: connections=7 messages=203 recipients=204 ' "final counts after SIGTERM"
ok "counts: swaks + smtp-source = 201, pipelining, bytes, SIGUSR1, SIGTERM"

# 2. --dump: every accepted message is a file, with the Received: header.
sink_start dump --dump "$T/dump" --hostname sink.test
out=$(swaks --server 127.0.0.1:$SINK_PORT --from a@x.test --to b@y.test --body 'ringsink dump marker 7f3a' 2>&1)
expect_match "$out" '<-  250 2\.0\.0 Ok' "dump: swaks"
timeout 60 smtp-source -s 2 -m 20 -d 127.0.0.1:$SINK_PORT > "$T/src2.out" 2>&1 || fail "smtp-source (dump)"
c=$(sink_counts)
expect_match "$c" 'messages=21 ' "dump: counts"
n=$(find "$T/dump" -name 'msg-0-*.eml' | wc -l)
[ "$n" -eq 21 ] || fail "dump: $n files, want 21"
f=$(grep -l 'ringsink dump marker 7f3a' "$T"/dump/msg-0-*.eml)
[ "$(wc -l <<<"$f")" -eq 1 ] || fail "dump: the marker in $(wc -l <<<"$f") files"
head -1 "$f" | grep -q '^Received: from .* (127\.0\.0\.1 \[127\.0\.0\.1\])' || fail "dump: no Received: header first"
grep -q 'by sink\.test (ringrelay) with ESMTP id' "$f" || fail "dump: --hostname not in Received:"
grep -q $'\r$' "$f" || fail "dump: not stored with CRLF"
sink_stop
ok "--dump: 21 files, body and Received: header"

# 3. --proxy: per-source counts (v2 and v1 swaks, v2 LOCAL), a malformed header refused.
sink_start proxy --proxy --dump "$T/pdump"
out=$(swaks --server 127.0.0.1:$SINK_PORT --from a@x.test --to b@y.test --proxy-version 2 \
  --proxy-family AF_INET --proxy-source 203.0.113.9 --proxy-source-port 1 \
  --proxy-dest 127.0.0.1 --proxy-dest-port $SINK_PORT 2>&1)
expect_match "$out" '<-  250 2\.0\.0 Ok' "proxy v2: swaks"
for i in 1 2; do
  out=$(swaks --server 127.0.0.1:$SINK_PORT --from a@x.test --to b@y.test --proxy-version 1 \
    --proxy-family TCP4 --proxy-source 198.51.100.7 --proxy-source-port 54321 \
    --proxy-dest 127.0.0.1 --proxy-dest-port $SINK_PORT 2>&1)
  expect_match "$out" '<-  250 2\.0\.0 Ok' "proxy v1: swaks"
done
$PP v2 192.0.2.1 127.0.0.1 1 25 --local > "$T/local"
out=$($SMTPC --prefix "$T/local" $SINK_PORT 'EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n|||x\r\n.\r\nQUIT\r\n')
expect_match "$out" '250 2\.0\.0 Ok: queued' "proxy v2 LOCAL: message"
out=$($SMTPC $SINK_PORT 'PROXY TCP4 203.0.113.9 127.0.0.1 65536 25\r\nEHLO x\r\n')
expect_match "$out" '^421 4\.7\.0 Invalid PROXY header' "malformed header"
expect_nomatch "$out" '220 ' "no banner before the header"
expect_match "$out" '\[closed\]' "closed after a malformed header"
out=$($SMTPC $SINK_PORT 'EHLO c.test\r\n')
expect_match "$out" '^421 4\.7\.0 Invalid PROXY header' "no header at all"
c=$(sink_counts)
expect_match "$c" 'connections=6 messages=4 ' "proxy: counts"
src=$(grep '^ringsink: source=' <<<"$c" | tr '\n' ' ')
[ "$src" = "ringsink: source=127.0.0.1 messages=1 ringsink: source=198.51.100.7 messages=2 ringsink: source=203.0.113.9 messages=1 " ] ||
  { echo "$c" >&2; fail "per-source lines (sorted by address)"; }
grep -lq 'Received: from .* (203\.0\.113\.9 \[203\.0\.113\.9\])' "$T"/pdump/*.eml || fail "proxy: Received: names the proxied client"
sink_stop INT
expect_match "$S" 'ringsink: source=203\.0\.113\.9 messages=1' "final per-source line after SIGINT"
ok "--proxy: per-source counts for 203.0.113.9, 198.51.100.7, LOCAL; malformed refused"

# 4. --fail reject=100%: swaks sees the 554.
sink_start reject --fail reject=100%
out=$(swaks --server 127.0.0.1:$SINK_PORT --from a@x.test --to b@y.test 2>&1)
expect_match "$out" '<\*\* 554 5\.7\.1 Error: rejected by ringsink' "reject: 554"
c=$(sink_counts)
expect_match "$c" 'messages=0 .*rejected=1 ' "reject: counts"
sink_stop
ok "--fail reject=100%: 554"

# 5. --fail defer=50%. smtp-source treats a 451 at the end of DATA as fatal, so it shows
# both outcomes and stops; the split itself is checked with one pipelined session of 200
# messages (its replies come in order), twice with the same seed: the same replies.
sink_start defer --fail defer=50% --seed 7 --json
timeout 60 smtp-source -s 5 -m 200 -d 127.0.0.1:$SINK_PORT > "$T/src3.out" 2>&1
grep -q 'end of data rejected: 451 4\.3\.0 Error: deferred by ringsink' "$T/src3.out" ||
  { head "$T/src3.out" >&2; fail "smtp-source did not see the 451"; }
c=$(sink_counts)
expect_match "$c" '^\{"connections":5,"messages":[0-9]+,"recipients":[0-9]+,"bytes":[0-9]+,"deferred":[0-9]+,"rejected":0,"dropped":0,"delayed":0\}$' "defer: JSON counts"
sm=$(num messages "$c"); sd=$(num deferred "$c")
[ "$sm" -ge 1 ] && [ "$sd" -ge 1 ] || fail "smtp-source, defer=50%: messages=$sm deferred=$sd"
sink_stop
msg='MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: n\r\n\r\nbody\r\n.\r\n'
script="EHLO c.test\r\n$(for i in $(seq 200); do printf '%s' "$msg"; done)QUIT\r\n"
for run in 1 2; do
  sink_start "defer$run" --fail defer=50% --seed 7
  $SMTPC --quiet 1 $SINK_PORT "$script" | grep -E '^(250 2\.0\.0 Ok: queued|451 4\.3\.0)' | cut -c1-3 > "$T/replies$run"
  c=$(sink_counts)
  sink_stop
  a=$(grep -c '^250' "$T/replies$run"); d=$(grep -c '^451' "$T/replies$run")
  [ $((a + d)) -eq 200 ] && [ "$a" -gt 60 ] && [ "$d" -gt 60 ] || fail "defer=50%: $a accepted, $d deferred"
  expect_match "$c" "connections=1 messages=$a .*deferred=$d " "defer: counts match the replies"
done
cmp -s "$T/replies1" "$T/replies2" || fail "--seed 7 twice: different replies"
ok "--fail defer=50%: smtp-source saw both ($sm accepted, $sd deferred); 200 pipelined: $a/$d, the same twice with --seed 7"

# 6. drop and delay.
sink_start drop --fail drop=100%
out=$($SMTPC $SINK_PORT 'EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n|||x\r\n.\r\n')
expect_match "$out" '354 ' "drop: DATA accepted"
expect_nomatch "$out" '(250 2\.0\.0 Ok: queued|[45][0-9][0-9] [0-9]\.[0-9]\.[0-9] Error)' "drop: no reply"
expect_match "$out" '\[closed\]' "drop: connection closed"
c=$(sink_counts)
expect_match "$c" 'messages=0 .*dropped=1 ' "drop: counts"
sink_stop
sink_start delay --fail delay=400ms@100%
t0=$(date +%s%N)
out=$(swaks --server 127.0.0.1:$SINK_PORT --from a@x.test --to b@y.test 2>&1)
t1=$(date +%s%N)
expect_match "$out" '<-  250 2\.0\.0 Ok: queued' "delay: 250 in the end"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -ge 400 ] && [ "$ms" -lt 3000 ] || fail "delay: the session took $ms ms"
c=$(sink_counts)
expect_match "$c" 'messages=1 .*delayed=1$' "delay: counts"
sink_stop
ok "--fail drop=100%: closed without a reply; delay=400ms: 250 after $ms ms"

# 7. SIGTERM with a held 250 and an idle session: 250, then 421 to both; exit 0.
sink_start stop --fail delay=30s@100%
$SMTPC --quiet 3 $SINK_PORT 'EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n|||x\r\n.\r\n' > "$T/held" &
held=$!
$SMTPC --quiet 8 $SINK_PORT 'EHLO c\r\n' > "$T/idle" &
idle=$!
for i in $(seq 1 100); do sink_counts | grep -q 'delayed=1' && break; sleep 0.05; done
sink_counts | grep -q 'connections=2 messages=0 .*delayed=1' || fail "stop: the message is not held"
sink_stop
wait $held $idle
h=$(cat "$T/held")
expect_match "$h" '^250 2\.0\.0 Ok: queued as [0-9]+' "stop: the held 250 is answered"
expect_match "$h" '^421 4\.3\.2 .* Service shutting down' "stop: then 421"
expect_match "$h" '\[closed\]' "stop: then closed"
[ "$(grep -n '^250 2.0.0 Ok: queued' <<<"$h" | cut -d: -f1)" -lt "$(grep -n '^421 ' <<<"$h" | cut -d: -f1)" ] || fail "stop: 421 before 250"
expect_match "$(cat "$T/idle")" '^421 4\.3\.2 .* Service shutting down' "stop: idle session told"
expect_match "$S" 'connections=2 messages=1 .*delayed=1$' "stop: final counts"
ok "SIGTERM: held 250 answered, 421 to every session, exit 0"

# 8. -w 2: two workers, one port, counts merged.
sink_start workers -w 2
timeout 60 smtp-source -s 10 -m 400 -d 127.0.0.1:$SINK_PORT > "$T/src4.out" 2>&1 || fail "smtp-source (-w 2)"
sink_stop
expect_match "$S" '^ringsink: connections=10 messages=400 recipients=400 ' "-w 2: merged counts"
ok "-w 2: 400 messages over two workers"

# 9. Usage errors: exit 2 with the reason.
out=$("$SINK" -l 127.0.0.1:0 --fail 'defer=5%,reject=1' 2>&1); rc=$?
[ $rc -eq 2 ] || fail "bad --fail: exit $rc"
expect_match "$out" '^ringsink: --fail "reject=1": share without % \(write e\.g\. 5%\)$' "bad --fail message"
out=$("$SINK" -l 127.0.0.1:0 --fail 'defer=60%,drop=50%' 2>&1); rc=$?
[ $rc -eq 2 ] || fail "--fail over 100%: exit $rc"
expect_match "$out" 'shares add up to more than 100%' "--fail over 100% message"
out=$("$SINK" 2>&1); rc=$?
[ $rc -eq 2 ] || fail "no -l: exit $rc"
expect_match "$out" '-l HOST:PORT is required' "no -l"
out=$("$SINK" -l nowhere 2>&1); rc=$?
[ $rc -eq 2 ] || fail "bad -l: exit $rc"
sanitizer_clean
ok "usage errors exit 2"
