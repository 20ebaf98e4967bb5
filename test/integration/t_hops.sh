# A mail loop ends: the relay refuses a message that carries more than limits.max_hops
# Received: headers (its own included) with 554 5.4.6, as Postfix's hopcount_limit does.
#  1. from a client: 49 Received: lines (50 with ours) are accepted, 50 (51) are refused
#     with 554 5.4.6 and logged; Received lines in the body do not count
#  2. a route that points back at the relay itself (max_hops 10): the message goes round
#     until the hop count stops it, its DSN does the same and is dropped (never a bounce
#     for a bounce), and the queue drains instead of looping for ever
. "$(dirname "$0")/lib.sh"

# msg FILE N [BODY_RECEIVED]: a message with N Received: header lines
msg() {
  { local i; for i in $(seq 1 "$2"); do
      printf 'Received: from h%d.test by h%d.test; Tue, 1 Dec 2026 00:00:00 +0000\r\n' "$i" "$i"
    done
    printf 'From: a@x.test\r\nTo: u@example.org\r\nSubject: hops\r\n\r\n'
    for i in $(seq 1 "${3:-0}"); do printf 'Received: quoted in the body\r\n'; done
    printf 'body\r\n'; } > "$1"
}

# ---- 1. from a client ----------------------------------------------------------------------
rr_config
rr_start
msg "$T/m49" 49 100
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u@local.test --data "$T/m49" > "$T/s49" 2>&1 \
  || { cat "$T/s49" >&2; fail "49 Received: lines (50 with ours) were refused"; }
msg "$T/m50" 50
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u@local.test --data "$T/m50" > "$T/s50" 2>&1 \
  && fail "50 Received: lines (51 with ours) were accepted"
grep -q '<\*\* *554 5.4.6 Error: too many hops' "$T/s50" || { cat "$T/s50" >&2; fail "no 554 5.4.6 reply"; }
grep -q 'event=rejected .*reason=too_many_hops hops=51 limit=50' "$T/relay.log" || fail "the refusal is not logged"
[ "$(rr_queue_count)" -eq 1 ] || fail "expected only the 49-hop message queued"
rr_stop
ok "49 Received lines + ours accepted, 50 + ours refused with 554 5.4.6 and logged"

# ---- 2. a route back to ourselves -------------------------------------------------------------
rm -rf "$T/spool"; : > "$T/relay.log"
P=$(free_port)
rr_config "limits:" "  max_hops: 10" \
          "transports:" "  - id: self" "    nexthop: \"[127.0.0.1]:$P\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: self" \
          "queue:" "  retry_schedule: [1]" "  max_age: 120"
sed -i "s/^    port: 0$/    port: $P/" "$T/ringrelay.yaml"
rr_start
[ "$RR_PORT" = "$P" ] || fail "listening on $RR_PORT, not $P"
swaks --server 127.0.0.1:$RR_PORT --from a@loop.test --to u@loop.test > /dev/null 2>&1 || fail "swaks (loop)"
wait_log 'reason=too_many_hops hops=11 limit=10' 60 || fail "the loop was not stopped by the hop count"
empty() { [ "$(rr_queue_count)" -eq 0 ]; }
wait_until 60 empty || { rr_queue >&2; fail "the queue did not drain after the loop was stopped"; }
sleep 1
q=$(grep -c 'event=queued' "$T/relay.log")
# the message 10 times (hops 1..10, the 11th refused), its DSN likewise: about 20
[ "$q" -ge 15 ] && [ "$q" -le 30 ] || fail "$q acceptances for a loop with max_hops 10"
grep -q 'status=bounced (.*554 5.4.6' "$T/relay.log" || fail "the refused hop did not bounce"
grep -Eq 'from=<>.*reason=too_many_hops' "$T/relay.log" || fail "the DSN did not loop to its own limit"
rr_stop
ok "a route back to the relay: $q acceptances, then 554 5.4.6, the DSN dropped, queue empty"
