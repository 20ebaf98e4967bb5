# ringblast --starttls (issue 10), the ASan builds: against ringsink --tls every message
# arrives over TLS (ESMTPS in each dumped message; pipelined, one command at a time, and
# --per-conn 1: one handshake per message); against the relay's STARTTLS listener every
# message is queued with tls=TLSv1.3 on its queued line (also behind a PROXY v2 header,
# which goes first in plaintext); against a sink without TLS every connection is an error
# (no_starttls), the exit status is 1 and nothing is sent in plaintext. No timing asserted.
. "$(dirname "$0")/lib.sh"
. "$HERE/tls_lib.sh"
BLAST="$RR_TOOLS/ringblast"
[ -x "$BLAST" ] || fail "no ringblast in $RR_TOOLS"
export RINGBLAST_NO_PROGRESS=1
blast() { timeout 120 "$BLAST" "$@" 2>&1; }
tls_cert cert

# 1. ringsink --tls: 40 pipelined over 4 connections, 10 one command at a time, 12 with
#    one message per connection.
sink s1 --tls "$T/cert.crt,$T/cert.key"
out=$(blast -s 127.0.0.1:$S_PORT -c 4 -n 40 -l 1k --starttls) || fail "--starttls exited $?: $out"
expect_match "$out" '^messages: 40 ok, 0 failed, of 40 \(4 connections, 1 rcpt, 1024 octets, pipelining, STARTTLS\)' "40 ok over TLS"
expect_match "$out" '^TLS handshakes: 4; connect to secure ms: p50 [0-9.]+  p99 [0-9.]+' "4 handshakes"
expect_match "$out" '^errors: 0$' "no errors"
out=$(blast -s 127.0.0.1:$S_PORT -c 2 -n 10 --starttls --no-pipelining) || fail "--no-pipelining exited $?: $out"
expect_match "$out" '^messages: 10 ok, 0 failed, of 10 \(2 connections, 1 rcpt, 4096 octets, no pipelining, STARTTLS\)' "no pipelining over TLS"
out=$(blast -s 127.0.0.1:$S_PORT -c 3 -n 12 -l 1k --starttls --per-conn 1) || fail "--per-conn 1 exited $?: $out"
expect_match "$out" '^messages: 12 ok, 0 failed' "12 ok, one per connection"
expect_match "$out" '^connections made: 12 \(1 message each at most\)' "12 connections"
expect_match "$out" '^TLS handshakes: 12;' "12 handshakes"
wait_until 10 [ "$(dumped s1)" -eq 62 ] || fail "dumped $(dumped s1) of 62"
plain=$(grep -L "with ESMTPS id" "$T"/s1/*.eml | wc -l)
[ "$plain" -eq 0 ] || fail "$plain dumped messages not received with ESMTPS"
# Without --starttls, as before: plaintext although STARTTLS is offered.
out=$(blast -s 127.0.0.1:$S_PORT -c 1 -n 2 -l 1k) || fail "plaintext run exited $?: $out"
expect_match "$out" '^messages: 2 ok, 0 failed, of 2 \(1 connections, 1 rcpt, 1024 octets, pipelining\)$' "plaintext line unchanged"
expect_nomatch "$out" 'TLS handshakes' "no TLS line without --starttls"
wait_until 10 [ "$(dumped s1)" -eq 64 ] || fail "dumped $(dumped s1) of 64"
[ "$(grep -L "with ESMTPS id" "$T"/s1/*.eml | wc -l)" -eq 2 ] || fail "want 2 plaintext messages"
ok "ringsink --tls: 62 messages over TLS (ESMTPS), 16 handshakes; plaintext unchanged"

# 2. The relay's STARTTLS listener: 30 messages, 5 per connection, --json.
tls_config starttls
rr_start
out=$(blast -s 127.0.0.1:$RR_PORT -c 3 -n 30 -l 1k --starttls --per-conn 5 --json) \
  || fail "relay --starttls exited $?: $out"
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["messages"] == 30 and d["failed"] == 0 and d["errors"] == {}, d
assert d["starttls"] is True and d["handshakes"] == 6, d
assert d["per_conn"] == 5 and d["connects"] == 6, d
h = d["handshake_ms"]
assert h["count"] == 6 and 0 < h["p50"] <= h["p99"] <= h["max"], d
assert d["connection_errors"] == 0 and d["exit"] == 0, d
' || fail "--json: $out"
n=$(rr_queue_count)
[ "$n" -eq 30 ] || fail "queue lists $n, want 30"
q=$(grep -c 'event=queued ' "$T/relay.log")
t=$(grep -c 'event=queued .*tls=TLSv1\.3' "$T/relay.log")
[ "$q" -eq 30 ] && [ "$t" -eq 30 ] || fail "queued lines: $q, with tls=TLSv1.3: $t (want 30 and 30)"
rr_stop
ok "relay STARTTLS listener: 30 queued, each with tls=TLSv1.3; 6 handshakes"

# 3. PROXY v2 first (plaintext), then STARTTLS, through a trusted proxy host.
rm -rf "$T/spool"
mv "$T/relay.log" "$T/relay1.log"      # this start's lines alone in relay.log
tls_config starttls 'proxy_protocol: trusted' 'proxy_hosts: [127.0.0.1]'
rr_start
out=$(blast -s 127.0.0.1:$RR_PORT -c 2 -n 8 -l 1k --starttls --proxy v2 --proxy-src 203.0.113.0/24) \
  || fail "--proxy v2 --starttls exited $?: $out"
expect_match "$out" '^messages: 8 ok, 0 failed, of 8 \(2 connections, 1 rcpt, 1024 octets, pipelining, PROXY v2, STARTTLS\)' "8 ok behind PROXY v2"
n=$(rr_queue_count)
[ "$n" -eq 8 ] || fail "queue lists $n, want 8"
[ "$(grep -Ec 'event=queued .*tls=TLSv1\.3' "$T/relay.log")" -eq 8 ] || fail "want 8 queued over TLS"
[ "$(grep -Ec 'event=proxy .*client=203\.0\.113\..* version=2' "$T/relay.log")" -eq 2 ] || fail "want 2 v2 sessions"
rr_stop
ok "PROXY v2 then STARTTLS: 8 queued over TLS from 203.0.113.0/24"

# 4. A sink without TLS: every connection fails, exit 1, nothing sent in plaintext.
sink s2
out=$(blast -s 127.0.0.1:$S_PORT -c 2 -n 10 --starttls); rc=$?
[ "$rc" -eq 1 ] || fail "no STARTTLS offered: exit $rc, want 1: $out"
expect_match "$out" '^messages: 0 ok, 0 failed, of 10' "no message"
expect_match "$out" '^errors: 2 \(no_starttls: 2\)$' "no_starttls counted"
expect_match "$out" '^first error: STARTTLS: not offered in the EHLO reply$' "first error"
out=$(blast -s 127.0.0.1:$S_PORT -c 2 -n 10 --starttls --per-conn 1 --json); rc=$?
[ "$rc" -eq 1 ] || fail "--per-conn 1 without STARTTLS: exit $rc, want 1"
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["errors"] == {"no_starttls": 2} and d["started"] == 0 and d["handshakes"] == 0, d
assert d["connects"] == 2 and d["exit"] == 1, d     # a failed connection is not replaced
' || fail "--json without STARTTLS: $out"
sleep 0.3
[ "$(dumped s2)" -eq 0 ] || fail "$(dumped s2) messages went in plaintext"
kill -USR1 "${S_PID[1]}"
wait_until 5 grep -q '^ringsink: connections=' "$T/s2.log" || fail "no count from the plain sink"
grep -Eq '^ringsink: connections=[0-9]+ messages=0 ' "$T/s2.log" || fail "plain sink: $(grep '^ringsink: connections=' "$T/s2.log")"

for p in "${S_PID[@]}"; do kill -TERM "$p"; wait "$p" || fail "ringsink exit status $?"; done
S_PID=()
sanitizer_clean
ok "no STARTTLS offered: errors, exit 1, nothing in plaintext"
