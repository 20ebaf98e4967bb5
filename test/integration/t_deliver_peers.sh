# Delivery against real peers, and logs pflogsumm can read.
#  1. Postfix's smtp-sink as the smarthost: 50 messages from ringblast arrive in its dump
#     directory, each once
#  2. two MX hosts of different preference (dnsmasq on loopback), the first refusing
#     connections: delivered via the second, the refused connection logged first
#  3. a bounce that bounces: the DSN to a sender whose domain routes to the rejecting hop
#     is rejected too, dropped and logged (bounce_not_sent), no third message, queue empty
#  4. pflogsumm (Debian's, through scripts/pflogsumm-feed) counts exactly the received,
#     delivered, deferred and bounced numbers of a known run
# Each part has its own relay log ($T/partN.log): the relay's log is moved away after it.
. "$(dirname "$0")/lib.sh"
FEED=$HERE/../../scripts/pflogsumm-feed
command -v smtp-sink > /dev/null || fail "smtp-sink not installed (postfix; scripts/install-deps.sh)"
command -v dnsmasq > /dev/null || fail "dnsmasq not installed (scripts/install-deps.sh)"
command -v pflogsumm > /dev/null || fail "pflogsumm not installed (scripts/install-deps.sh)"

endpart() { mv "$T/relay.log" "$T/$1.log"; }
count() { grep -Ec -- "$1" "$2"; }   # count REGEX FILE (0 when none)
refused() {  # refused ADDR PORT: a TCP connect there is refused (nothing listens)
  python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except ConnectionRefusedError:
    sys.exit(0)
except OSError:
    sys.exit(2)
sys.exit(1)
PY
}
listening() { ! refused "$1" "$2"; }

# ---- 1. Postfix's smtp-sink as the smarthost ------------------------------------------------
SP=$(free_port)
mkdir -p "$T/sinkdir"
smtp-sink -u "$(id -un)" -d "$T/sinkdir/%M." 127.0.0.1:$SP 100 > "$T/smtp-sink.log" 2>&1 &
PSS=$!
wait_until 10 listening 127.0.0.1 $SP || { cat "$T/smtp-sink.log" >&2; fail "smtp-sink not listening"; }
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$SP\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 60"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 50 -t 30 -l 2k --to-domain example.net > "$T/blast1.out" 2>&1 ||
  { cat "$T/blast1.out" >&2; fail "ringblast"; }
sent50() { [ "$(count 'status=sent' "$T/relay.log")" -ge 50 ]; }
wait_until 30 sent50 || fail "$(count 'status=sent' "$T/relay.log") of 50 delivered to smtp-sink"
rr_stop
kill $PSS; wait $PSS 2>/dev/null
nfiles=$(ls "$T/sinkdir" | wc -l)
[ "$nfiles" -eq 50 ] || fail "$nfiles messages in smtp-sink's dump directory, want 50"
nids=$(cat "$T"/sinkdir/* | grep -i '^Message-ID: <' | sort -u | wc -l)
[ "$nids" -eq 50 ] || fail "$nids distinct Message-IDs at smtp-sink, want 50 (duplicates?)"
[ "$(count 'status=sent' "$T/relay.log")" -eq 50 ] || fail "$(count 'status=sent' "$T/relay.log") sent lines, want 50"
[ "$(count 'status=(deferred|bounced)' "$T/relay.log")" -eq 0 ] || fail "smtp-sink deferred or bounced something"
expect_match "$(grep -m1 'status=sent' "$T/relay.log")" \
  ": to=<rcpt1@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$SP, conn_use=[0-9]+, .*dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok\)$" \
  "smtp-sink's reply in the delivery line"
endpart part1
ok "smtp-sink smarthost: 50 messages in its dump directory, 50 distinct Message-IDs, 50 sent lines"

# ---- 2. two MX hosts, the preferred one refusing ------------------------------------------
sink mx2 -l 127.0.0.1:0
PM=$S_PORT
refused 127.0.0.2 $PM || fail "something listens on 127.0.0.2:$PM"
dns_start --mx-host=two.test,mx1.two.test,10 --mx-host=two.test,mx2.two.test,20 \
  --host-record=mx1.two.test,127.0.0.2 --host-record=mx2.two.test,127.0.0.1
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" "queue:" "  retry_schedule: [1]" "  max_age: 60"
RR_TEST_MX_PORT=$PM rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@two.test --to u@two.test > /dev/null 2>&1 || fail "swaks (two.test)"
hasmx2() { [ "$(dumped mx2)" -ge 1 ]; }
wait_until 20 hasmx2 || fail "nothing delivered to mx2"
wait_log 'to=<u@two\.test>.*status=sent' 10 || fail "no sent line for u@two.test"
rr_stop
dns_stop
[ "$(dumped mx2)" -eq 1 ] || fail "$(dumped mx2) messages at mx2, want 1"
refused_re="event=connect_failed site=[^ ]*/mx1\.two\.test,mx2\.two\.test relay=mx1\.two\.test\[127\.0\.0\.2\]:$PM reason=\"4\.4\.1 connect to mx1\.two\.test\[127\.0\.0\.2\]:$PM: Connection refused\""
sent_re="^[^ ]+ info [0-9A-V]+: to=<u@two\.test>, relay=mx2\.two\.test\[127\.0\.0\.1\]:$PM, conn_use=1, .*dsn=2\.0\.0, status=sent \(250 "
nref=$(grep -En -- "$refused_re" "$T/relay.log" | head -1 | cut -d: -f1)
nsent=$(grep -En -- "$sent_re" "$T/relay.log" | head -1 | cut -d: -f1)
[ -n "$nref" ] || { cat "$T/relay.log" >&2; fail "no refused connection to mx1 logged"; }
[ -n "$nsent" ] || { cat "$T/relay.log" >&2; fail "no delivery via mx2 logged"; }
[ "$nref" -lt "$nsent" ] || fail "the refused connection to mx1 (line $nref) is not logged before the delivery (line $nsent)"
[ "$(count 'status=(deferred|bounced)' "$T/relay.log")" -eq 0 ] || fail "u@two.test was deferred or bounced"
endpart part2
ok "MX 10 refusing, MX 20 up: delivered via mx2.two.test, refused mx1 logged first (lines $nref < $nsent)"

# ---- 3. a bounce that bounces --------------------------------------------------------------
sink rej3 --fail reject=100%
PR=$S_PORT
PID_REJ3=${S_PID[-1]}
rr_config "transports:" "  - id: rej" "    nexthop: \"[127.0.0.1]:$PR\"" \
          "routes:" "  - domains: [rej.test, far.test]" "    transport: rej"
rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@rej.test --to b@far.test > /dev/null 2>&1 || fail "swaks (rej.test)"
wait_log 'event=bounce_not_sent' 20 || fail "no bounce_not_sent"
rr_stop
L=$T/relay.log
q1=$(sed -nE 's/.* event=queued .*qid=([0-9A-V]+) .*from=<a@rej\.test>.*/\1/p' "$L")
[ -n "$q1" ] || fail "the message was not queued"
expect_match "$(cat "$L")" " $q1: to=<b@far\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PR, .*dsn=5\.7\.1, status=bounced \(host said: 554 " "the first rejection"
q2=$(sed -nE "s/.* $q1: sender non-delivery notification: ([0-9A-V]+)$/\1/p" "$L")
[ -n "$q2" ] || fail "no DSN was made for $q1"
expect_match "$(cat "$L")" " $q2: to=<a@rej\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PR, .*dsn=5\.7\.1, status=bounced \(host said: 554 " "the DSN's rejection"
expect_match "$(cat "$L")" "event=bounce_not_sent qid=$q2 recipients=1 reason=\"null sender\"" "the DSN's bounce dropped"
[ "$(count 'sender non-delivery notification' "$L")" -eq 1 ] || fail "more than one DSN made (a bounce of the bounce?)"
[ "$(count 'event=queued' "$L")" -eq 1 ] || fail "more than one message received"
nq=$(grep -oE ' [0-9A-V]+: to=<' "$L" | sort -u | wc -l)
[ "$nq" -eq 2 ] || fail "$nq messages tried, want 2 (the message and its DSN)"
[ "$(count 'status=' "$L")" -eq 2 ] || fail "$(count 'status=' "$L") delivery attempts, want 2"
[ "$(rr_queue_count)" -eq 0 ] || { rr_queue >&2; fail "the queue is not empty"; }
kill -TERM "$PID_REJ3"; wait "$PID_REJ3" 2>/dev/null
grep -q 'messages=0 .*rejected=2 ' "$T/rej3.log" || { cat "$T/rej3.log" >&2; fail "the rejecting sink did not see exactly 2 transactions"; }
endpart part3
ok "a bounce that bounces: $q1 rejected, DSN $q2 rejected, bounce_not_sent, no third message, queue empty"

# ---- 4. pflogsumm counts our log -------------------------------------------------------------
sink ok4
POK=$S_PORT
sink def4 --fail defer=100%
PDEF=$S_PORT
sink rej4 --fail reject=100%
PREJ=$S_PORT
dns_start --address=/nx.test/
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" "queue:" "  retry_schedule: [1]" "  max_age: 60" \
          "transports:" "  - id: ok" "    nexthop: \"[127.0.0.1]:$POK\"" \
          "  - id: def" "    nexthop: \"[127.0.0.1]:$PDEF\"" \
          "  - id: rej" "    nexthop: \"[127.0.0.1]:$PREJ\"" \
          "  - id: out" "    nexthop: mx" \
          "routes:" "  - domains: [ok.test, senders.test]" "    transport: ok" \
          "  - domains: [def.test]" "    transport: def" \
          "  - domains: [rej.test]" "    transport: rej" \
          "  - domains: [\"*\"]" "    transport: out"
rr_start
# 12 messages x 2 recipients delivered; 3 messages deferred (and retried) until the end;
# 2 rejected (each DSN to a@senders.test delivered); 1 NXDOMAIN from <> (no DSN)
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 12 -r 2 -t 30 -l 1k --to-domain ok.test \
  --from blast@senders.test > "$T/blast4.out" 2>&1 || { cat "$T/blast4.out" >&2; fail "ringblast (ok)"; }
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 1 -n 3 -t 30 -l 1k --to-domain def.test \
  --from blast@senders.test > "$T/blast4d.out" 2>&1 || { cat "$T/blast4d.out" >&2; fail "ringblast (def)"; }
for r in r1 r2; do
  swaks --server 127.0.0.1:$RR_PORT --from a@senders.test --to $r@rej.test > /dev/null 2>&1 || fail "swaks ($r@rej.test)"
done
swaks --server 127.0.0.1:$RR_PORT --from '<>' --to u@nx.test > /dev/null 2>&1 || fail "swaks (nx.test)"
L=$T/relay.log
done4() {
  [ "$(count 'status=sent' "$L")" -ge 26 ] && [ "$(count 'status=bounced' "$L")" -ge 3 ] || return 1
  # every deferred message retried at least once
  [ "$(grep -oE ' [0-9A-V]+: to=<rcpt1@def\.test>.*status=deferred' "$L" | awk '{print $1}' | sort | uniq -c |
       awk '$1 >= 2' | wc -l)" -ge 3 ]
}
wait_until 40 done4 || fail "not there: $(count 'status=sent' "$L") sent (want 26), $(count 'status=bounced' "$L") bounced (want 3), deferrals: $(count 'status=deferred' "$L")"
rr_stop
dns_stop
[ "$(dumped ok4)" -eq 14 ] || fail "$(dumped ok4) messages at the ok sink, want 14 (12 of ringblast, 2 DSNs)"
[ "$(count 'event=queued' "$L")" -eq 18 ] || fail "$(count 'event=queued' "$L") messages received, want 18"
[ "$(count 'status=sent' "$L")" -eq 26 ] || fail "$(count 'status=sent' "$L") sent lines, want 26"
[ "$(count 'status=bounced' "$L")" -eq 3 ] || fail "$(count 'status=bounced' "$L") bounced lines, want 3"
ndefq=$(grep -oE ' [0-9A-V]+: to=<[^>]*>.*status=deferred' "$L" | awk '{print $1}' | sort -u | wc -l)
[ "$ndefq" -eq 3 ] || fail "$ndefq messages deferred, want 3"
ndeferrals=$(count 'status=deferred' "$L")
bytes=$(sed -nE 's/.* event=queued .* size=([0-9]+).*/\1/p' "$L" | awk '{s += $1} END {print s + 0}')
endpart part4
L=$T/part4.log

gt() {  # gt KEY [SECOND WORD] < pflogsumm output: a Grand Totals number
  awk -v k="$1" -v k2="${2:-}" '
    /^Grand Totals/ { g = 1; next }
    g && /^[A-Z]/ && !/^Grand/ { exit }
    g && $2 == k && (k2 == "" || $3 == k2) { print $1; exit }'
}
"$FEED" < "$L" > "$T/feed.log"
pflogsumm --syslog-name=ringrelay "$T/feed.log" > "$T/pflogsumm.out" 2>&1 || { cat "$T/pflogsumm.out" >&2; fail "pflogsumm"; }
sed -n '/^Grand Totals/,/recipient hosts/p' "$T/pflogsumm.out"
check_totals() {  # check_totals FILE WHAT
  local f=$1 w=$2 v
  v=$(gt received < "$f");  [ "$v" = 18 ] || fail "$w: received $v, want 18"
  v=$(gt delivered < "$f"); [ "$v" = 26 ] || fail "$w: delivered $v, want 26"
  v=$(gt deferred < "$f");  [ "$v" = 3 ] || fail "$w: deferred $v, want 3"
  v=$(gt bounced < "$f");   [ "$v" = 3 ] || fail "$w: bounced $v, want 3"
  grep -Eq "^ +3 +deferred +\($ndeferrals +deferrals\)$" "$f" || fail "$w: not $ndeferrals deferrals"
  v=$(gt bytes received < "$f"); [ "$v" = "$bytes" ] || fail "$w: bytes received $v, want $bytes"
  v=$(gt rejected < "$f");  [ "$v" = 0 ] || fail "$w: rejected $v, want 0"
}
check_totals "$T/pflogsumm.out" "pflogsumm (RFC 3339 stamps)"
# the classic syslog stamp (-c) counts the same
"$FEED" -c "$L" | pflogsumm --syslog-name=ringrelay > "$T/pflogsumm-c.out" 2>&1 || fail "pflogsumm (-c)"
check_totals "$T/pflogsumm-c.out" "pflogsumm (classic stamps)"
# the sections behind the totals: bounce reasons per relay
expect_match "$(cat "$T/pflogsumm.out")" "127\.0\.0\.1\[127\.0\.0\.1\]:$PREJ \(total: 2\)" "bounce detail for the rejecting hop"
expect_match "$(cat "$T/pflogsumm.out")" "NXDOMAIN for nx\.test MX" "bounce detail for NXDOMAIN"
# a DSN's qmgr line gives its size: no message is listed without size data
sed -n '/^[Mm]essages with no size data/,/^$/p' "$T/pflogsumm.out" | grep -Eq '^ +[0-9A-V]{17} ' &&
  fail "pflogsumm lists messages without size data (a DSN's size line missing?)"
# without the feed pflogsumm counts nothing (the relay's own prefix is not syslog's)
pflogsumm --syslog-name=ringrelay "$L" > "$T/pflogsumm-raw.out" 2>&1 || fail "pflogsumm (raw)"
[ "$(gt delivered < "$T/pflogsumm-raw.out")" = 0 ] || fail "pflogsumm counted the raw log: has the prefix changed?"
# part 2's refused connection shows under "smtp delivery failures"
"$FEED" "$T/part2.log" | pflogsumm --syslog-name=ringrelay > "$T/pflogsumm2.out" 2>&1 || fail "pflogsumm (part 2)"
sed -n '/^smtp delivery failures/,/^$/p' "$T/pflogsumm2.out" > "$T/failures2"
grep -Eq '^ +connection refused \(total: 1\)$' "$T/failures2" && grep -Eq '^ +1 +mx1\.two\.test$' "$T/failures2" ||
  { cat "$T/pflogsumm2.out" >&2; fail "the refused connection to mx1 is not under smtp delivery failures"; }
[ "$(gt delivered < "$T/pflogsumm2.out")" = 1 ] || fail "part 2: pflogsumm delivered is not 1"
# a warn line (queue.c's site_dead) lands under "Warnings"; other events are dropped
printf '%s\n' '2026-12-01T21:49:02.043Z warn event=site_dead site=hub/[127.0.0.1]:9 reason="4.4.1 connect to 127.0.0.1[127.0.0.1]:9: Connection refused" deferred=3' \
  '2026-12-01T21:49:02.044Z info event=ready version=0.1.0 workers=2 config=x' | "$FEED" > "$T/feedw.log"
[ "$(wc -l < "$T/feedw.log")" -eq 1 ] || { cat "$T/feedw.log" >&2; fail "the feed did not keep just the warning"; }
pflogsumm --syslog-name=ringrelay "$T/feedw.log" | sed -n '/^Warnings/,/^$/p' | grep -Eq '^ +ringrelay \(total: 1\)$' ||
  fail "the warning is not under pflogsumm's Warnings"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
ok "pflogsumm via scripts/pflogsumm-feed: 18 received, 26 delivered, 3 deferred ($ndeferrals deferrals), 3 bounced, $bytes bytes received"
