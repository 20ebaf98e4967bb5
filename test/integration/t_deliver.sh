# Delivery (issue 8), against real peers: ringsink as the next hop, dnsmasq for MX.
#  1. smarthost: 200 messages reach the sink once each; Postfix-shaped log lines; a
#     restart delivers nothing again (DONE and outcome notes were written)
#  2. a next hop that defers 40 %: everything arrives in the end, retries logged
#  3. a next hop that rejects: one well-formed DSN per message to the sender's route,
#     none for a null sender
#  4. a next hop that is down: deferred, the site declared dead once, delivered when
#     it comes up
#  5. MX: routes to `mx` resolved through dnsmasq on loopback; NXDOMAIN and null MX bounce
. "$(dirname "$0")/lib.sh"
sent_lines() { grep -c 'status=sent' "$T/relay.log"; }

# ---- 1. smarthost ---------------------------------------------------------------------
sink ok1
P1=$S_PORT
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$P1\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 60"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 200 -t 30 -l 2k --to-domain example.net > "$T/blast.out" 2>&1 ||
  { cat "$T/blast.out" >&2; fail "ringblast"; }
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to 'r1@example.org,r2@example.org' \
      --body $'line one\n.dot line\n..two dots' > /dev/null 2>&1 || fail "swaks"
have201() { [ "$(dumped ok1)" -ge 201 ]; }
wait_until 30 have201 || fail "only $(dumped ok1) of 201 messages reached the sink"
sleep 1
[ "$(dumped ok1)" -eq 201 ] || fail "$(dumped ok1) messages at the sink, want 201 (duplicates?)"
wait_until 10 eval '[ "$(sent_lines)" -ge 202 ]' || fail "$(sent_lines) status=sent lines, want 202"
line=$(grep -m1 'status=sent' "$T/relay.log")
expect_match "$line" ': to=<[^>]+>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+, conn_use=[0-9]+, delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\.0\.0, status=sent \(250 ' "Postfix-shaped delivery line"
# the dot-stuffed message arrived with its dots as sent
f=$(grep -l 'r1@example.org\|line one' "$T/ok1"/*.eml | head -1)
grep -q '^\.dot line' "$f" && grep -q '^\.\.two dots' "$f" || { cat "$f" >&2; fail "dot-stuffing changed the body"; }
rr_stop
rr_start
sleep 2
[ "$(dumped ok1)" -eq 201 ] || fail "a restart delivered again: $(dumped ok1) at the sink"
expect_match "$(cat "$T/relay.log.new")" 'event=queue_rebuilt messages=0 ' "nothing left after a restart"
rr_stop
ok "smarthost: 201 messages delivered once, Postfix-shaped lines, nothing again after a restart"

# ---- 2. a next hop that defers 40 % -----------------------------------------------------
sink def --fail defer=40% --seed 7
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 60"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 40 -t 30 -l 1k > /dev/null 2>&1 || fail "ringblast (defer)"
have40() { [ "$(dumped def)" -ge 40 ]; }
wait_until 40 have40 || fail "only $(dumped def) of 40 delivered through a deferring hop"
grep -q 'status=deferred (host said: 451' "$T/relay.log" || fail "no deferral logged"
rr_stop
ok "deferred 40 %: all 40 delivered after retries"

# ---- 3. a next hop that rejects: DSNs -----------------------------------------------------
sink rej --fail reject=100%
PR=$S_PORT
sink dsn
PD=$S_PORT
rr_config "transports:" "  - id: rej" "    nexthop: \"[127.0.0.1]:$PR\"" \
          "  - id: dsn" "    nexthop: \"[127.0.0.1]:$PD\"" \
          "routes:" "  - domains: [senders.test]" "    transport: dsn" \
          "  - domains: [\"*\"]" "    transport: rej"
rr_start
swaks --server 127.0.0.1:$RR_PORT --from alice@senders.test --to bob@far.test \
      --header 'Subject: hello bounce' > /dev/null 2>&1 || fail "swaks (bounce)"
swaks --server 127.0.0.1:$RR_PORT --from '<>' --to carol@far.test > /dev/null 2>&1 || fail "swaks (null sender)"
hasdsn() { [ "$(dumped dsn)" -ge 1 ]; }
wait_until 20 hasdsn || fail "no DSN reached the sender's route"
wait_log 'event=bounce_not_sent' 10 || fail "no bounce_not_sent for the null sender"
sleep 1
[ "$(dumped dsn)" -eq 1 ] || fail "$(dumped dsn) DSNs, want 1"
python3 - "$(ls "$T"/dsn/*.eml | head -1)" <<'PY' || fail "the DSN does not parse"
import email, sys
from email import policy
raw = open(sys.argv[1], 'rb').read()
m = email.message_from_bytes(raw[raw.find(b'\r\n\r\n') + 4:] if raw.startswith(b'Received') and False else raw, policy=policy.default)
assert m.get_content_type() == 'multipart/report', m.get_content_type()
parts = list(m.iter_parts())
assert len(parts) == 3, len(parts)
assert parts[1].get_content_type() == 'message/delivery-status'
ds = parts[1].as_string()
assert 'Final-Recipient: rfc822; bob@far.test' in ds, ds
assert 'Action: failed' in ds and 'Status: 5.' in ds, ds
assert 'hello bounce' in parts[2].as_string()
assert m['To'].strip('<>') .endswith('alice@senders.test'), m['To']
PY
grep -q 'status=bounced' "$T/relay.log" || fail "no bounced line"
grep -q 'sender non-delivery notification' "$T/relay.log" || fail "no notification line"
rr_stop
ok "rejected: one RFC 3464 DSN to the sender, none for <>"

# ---- 4. next hop down, then up -------------------------------------------------------------
PDOWN=$(free_port)
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$PDOWN\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 120"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 20 -t 30 -l 1k > /dev/null 2>&1 || fail "ringblast (down)"
wait_log 'status=deferred' 10 || fail "nothing deferred while the next hop is down"
wait_log 'event=site_dead' 10 || fail "no site_dead line"
sink up -l 127.0.0.1:$PDOWN
have20() { [ "$(dumped up)" -ge 20 ]; }
wait_until 40 have20 || fail "only $(dumped up) of 20 delivered after the next hop came up"
rr_stop
ok "next hop down: deferred, site dead, all 20 delivered once it came up"

# ---- 5. MX through dnsmasq ------------------------------------------------------------------
command -v dnsmasq > /dev/null || fail "dnsmasq not installed (scripts/install-deps.sh)"
sink mx
PM=$S_PORT
DP=$(free_port)
dnsmasq --keep-in-foreground --port=$DP --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --conf-file=/dev/null --pid-file= --local=/test/ \
  --mx-host=mx.test,mail.mx.test,10 --host-record=mail.mx.test,127.0.0.1 \
  --mx-host=nullmx.test,.,0 --log-facility="$T/dnsmasq.log" &
for i in $(seq 1 50); do python3 -c "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)" && grep -q started "$T/dnsmasq.log" 2>/dev/null && break; sleep 0.1; done
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" "queue:" "  retry_schedule: [1]" "  max_age: 60"
RR_TEST_MX_PORT=$PM rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@mx.test --to u@mx.test > /dev/null 2>&1 || fail "swaks (mx)"
swaks --server 127.0.0.1:$RR_PORT --from '<>' --to u@nx.test > /dev/null 2>&1 || fail "swaks (nx)"
swaks --server 127.0.0.1:$RR_PORT --from '<>' --to u@nullmx.test > /dev/null 2>&1 || fail "swaks (nullmx)"
hasmx() { [ "$(dumped mx)" -ge 1 ]; }
wait_until 20 hasmx || fail "nothing delivered through the MX"
wait_log 'to=<u@nx.test>.*dsn=5\.1\.2, status=bounced' 10 || fail "NXDOMAIN did not bounce with 5.1.2"
wait_log 'to=<u@nullmx.test>.*dsn=5\.1\.10, status=bounced' 10 || fail "null MX did not bounce with 5.1.10"
grep -q 'to=<u@mx.test>, relay=mail.mx.test\[127.0.0.1\]' "$T/relay.log" || fail "relay is not the MX host"
rr_stop
ok "MX via dnsmasq: delivered to the MX host; NXDOMAIN 5.1.2 and null MX 5.1.10 bounced"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
