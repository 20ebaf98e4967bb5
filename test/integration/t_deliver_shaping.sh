# Delivery shaping per site: message_rate, connection_rate, and timeouts that a server
# cannot stretch. Rates are checked as lower bounds on the time a batch takes (a slow
# machine only makes it longer), never as upper bounds.
#  1. message_rate "5/s" per site (one owner for the relay, whichever of the 2 workers
#     accepted the mail): 20 messages take at least 3.6 s from the first delivery to the
#     last (19 intervals of 200 ms; per worker it was about half; unlimited: about 0.1 s)
#  2. connection_rate "2/s" with one message per connection: 12 messages take at least 5 s
#  3. a next hop that trickles its greeting an octet every 0.5 s, with timeouts
#     {connect: 1, greeting: 2}: the connection is given up as a greeting timeout, not
#     kept alive by the trickle
#  4. `shaping` entries per site (DESIGN.md): "*.gmail.test" (the MX host names of a
#     provider) at 4 messages a second, every other site the "default" entry
#  5. a next hop that never answers QUIT, with max_connections 1 and one message per
#     connection: a QUITting connection does not hold the site's only slot for the quit
#     timeout (120 s here); the next message gets a new connection at once
. "$(dirname "$0")/lib.sh"
# span of the status=sent lines in the relay's log, in ms
sent_span_ms() {
  grep 'status=sent' "$T/relay.log" | python3 -c '
import sys, datetime
ts = [datetime.datetime.strptime(l.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ") for l in sys.stdin]
print(int((max(ts) - min(ts)).total_seconds() * 1000) if ts else -1)'
}
sent_count() { grep -c 'status=sent' "$T/relay.log"; }

# ---- 1. message_rate ------------------------------------------------------------------------
sink mr
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" "    message_rate: 5/s" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 20 -t 30 -l 1k > /dev/null 2>&1 || fail "ringblast (message_rate)"
wait_until 60 eval '[ "$(sent_count)" -ge 20 ]' || fail "only $(sent_count) of 20 sent under message_rate"
span=$(sent_span_ms)
[ "$span" -ge 3600 ] || fail "20 messages in $span ms under message_rate 5/s for the site (want >= 3600)"
rr_stop
ok "message_rate 5/s: 20 messages over $span ms (3800 ms is the exact rate)"
: > "$T/relay.log"

# ---- 2. connection_rate -----------------------------------------------------------------------
sink cr
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" "    connection_rate: 2/s" \
          "    max_messages_per_connection: 1" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 12 -t 30 -l 1k > /dev/null 2>&1 || fail "ringblast (connection_rate)"
wait_until 60 eval '[ "$(sent_count)" -ge 12 ]' || fail "only $(sent_count) of 12 sent under connection_rate"
span=$(sent_span_ms)
[ "$span" -ge 5000 ] || fail "12 connections in $span ms under connection_rate 2/s for the site (want >= 5000)"
grep 'status=sent' "$T/relay.log" | grep -q 'conn_use=2' && fail "a connection was used twice (max_messages_per_connection 1)"
rr_stop
ok "connection_rate 2/s: 12 one-message connections over $span ms"
: > "$T/relay.log"

# ---- 3. a trickled greeting -------------------------------------------------------------------
python3 "$HERE/badhop.py" trickle "$T/tr.port" "$T/tr.count" 40 &
wait_until 10 test -s "$T/tr.port" || fail "badhop trickle did not start"
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$(cat "$T/tr.port")\"" \
          "    timeouts: { connect: 1, greeting: 2 }" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [60]" "  max_age: 600"
rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u@example.org > /dev/null 2>&1 || fail "swaks"
# (deferred by its own connection, or by the site dying of it: "delivery temporarily suspended")
wait_log 'status=deferred \(4\.4\.2 (delivery temporarily suspended: )?conversation with .* timed out while receiving the initial server greeting' 30 ||
  fail "a trickled greeting kept the connection past its deadline"
rr_stop
ok "a greeting trickled an octet every 0.5 s: given up at its deadline"

# ---- 4. shaping per site: an entry for the provider's MX hosts --------------------------------
command -v dnsmasq > /dev/null || fail "dnsmasq not installed (scripts/install-deps.sh)"
sink shp
PS=$S_PORT
dns_start --mx-host=gm.test,mx.gmail.test,10 --host-record=mx.gmail.test,127.0.0.1 \
          --mx-host=fast.test,mx.fast.test,10 --host-record=mx.fast.test,127.0.0.1
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" \
          "shaping:" "  - site: default" "    max_connections: 20" \
          "  - site: \"*.gmail.test\"" "    max_message_rate: 4" "    max_connections: 2"
RR_TEST_MX_PORT=$PS rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 12 -t 30 -l 1k --to-domain gm.test > /dev/null 2>&1 ||
  fail "ringblast (shaping)"
wait_until 60 eval '[ "$(sent_count)" -ge 12 ]' || fail "only $(sent_count) of 12 sent to gm.test"
span=$(sent_span_ms)
[ "$span" -ge 2500 ] || fail "12 messages to a 4/s site in $span ms (want >= 2500)"
grep -q 'event=site_shaping site=default/mx.gmail.test shaping=\*.gmail.test max_connections=2 ' "$T/relay.log" ||
  fail "the *.gmail.test entry was not applied to the site"
: > "$T/relay.log"
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 12 -t 30 -l 1k --to-domain fast.test > /dev/null 2>&1 ||
  fail "ringblast (default shaping)"
wait_until 60 eval '[ "$(sent_count)" -ge 12 ]' || fail "only $(sent_count) of 12 sent to fast.test"
grep -q 'event=site_shaping site=default/mx.fast.test shaping=default max_connections=20 ' "$T/relay.log" ||
  fail "the default entry was not applied to another site"
rr_stop
dns_stop
ok "shaping per site: *.gmail.test at 4/s (12 messages over $span ms), others the default entry"

# ---- 5. QUIT never answered ---------------------------------------------------------------------
: > "$T/relay.log"
python3 "$HERE/badhop.py" noquit "$T/nq.port" "$T/nq.count" 60 &
NQ_PID=$!
wait_until 10 test -s "$T/nq.port" || fail "badhop noquit did not start"
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$(cat "$T/nq.port")\"" \
          "    max_connections: 1" "    max_messages_per_connection: 1" "    timeouts: { quit: 120 }" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub"
rr_start
for i in 1 2 3 4 5 6; do
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to u$i@example.org > /dev/null 2>&1 || fail "swaks $i"
done
wait_until 40 eval '[ "$(sent_count)" -ge 6 ]' ||
  fail "only $(sent_count) of 6 sent: a connection waiting for a 221 held the site's slot"
grep -q 'event=connect_failed' "$T/relay.log" && fail "an unanswered QUIT was counted as a site failure"
rr_stop
kill $NQ_PID 2>/dev/null; wait $NQ_PID 2>/dev/null
ok "QUIT never answered: 6 one-message connections through max_connections 1, none waiting on a 221"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
