# Many distinct domains at once: 5,000 recipients, each of its own domain, resolved
# through a dnsmasq on loopback (every *.test name has an address and no MX: the implicit
# MX). Each worker lets at most dns.max_lookups (48 here) ask at once and lines up the
# rest: every recipient is delivered, none deferred 4.4.3. Before the cap all 5,000
# lookups asked at once (15,000 queries) and dnsmasq dropped most: 3,256 of 5,000 deferred
# "lookup failed: timeout".
. "$(dirname "$0")/lib.sh"
command -v dnsmasq > /dev/null || fail "dnsmasq not installed"
L=$T/relay.log
N=5000
sink mx; PM=$S_PORT
dns_start --address=/test/127.0.0.1
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" "  max_lookups: 48" "queue:" "  retry_schedule: [300]" "  max_age: 600" \
  "limits:" "  max_recipients: 1000"
RR_TEST_MX_PORT=$PM rr_start
python3 - "$RR_PORT" "$N" <<'PY' || fail "the messages were not accepted"
import smtplib, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = smtplib.SMTP("127.0.0.1", port, timeout=60)
k = 0
while k < n:
    rc = ["u@d%d.test" % i for i in range(k, min(n, k + 1000))]
    refused = s.sendmail("a@b.org", rc, "Subject: many domains\r\n\r\nhi\r\n")
    if refused:
        sys.exit("refused: %r" % list(refused.items())[:3])
    k += len(rc)
s.quit()
PY
wait_until 120 eval '[ "$(grep -c "status=" "$L")" -ge $N ]' || fail "only $(grep -c 'status=' "$L") of $N recipients ended"
sent=$(grep -c 'status=sent' "$L"); def=$(grep -c 'status=deferred' "$L")
[ "$sent" -eq $N ] && [ "$def" -eq 0 ] ||
  fail "$sent of $N sent, $def deferred: $(grep -m2 'status=deferred' "$L")"
[ "$(dumped mx)" -ge 1 ] || fail "nothing at the sink"
rr_stop
dns_stop
ok "$N recipients of $N distinct domains: all sent, none deferred (MX lookups lined up)"

# ctl delete frees the line: one worker letting one lookup ask at a time, 300 domains
# whose server never answers (each holds the place a second, then gives it up: the line
# would take 5 minutes); ctl delete --all takes the deleted mail's lookups back at once,
# and a new message behind them is delivered without waiting for them
python3 - "$T/silent.port" <<'PY' &
import socket, sys, os, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
open(sys.argv[1] + ".t", "w").write(str(s.getsockname()[1])); os.rename(sys.argv[1] + ".t", sys.argv[1])
time.sleep(120)
PY
SIL=$!
wait_until 5 test -s "$T/silent.port" || fail "silent DNS server"
dns_start --address=/test/127.0.0.1 "--server=/bh.test/127.0.0.1#$(cat "$T/silent.port")"
: > "$L"
rr_config "dns:" "  servers: [\"127.0.0.1:$DP\"]" "  max_lookups: 1" \
  "queue:" "  retry_schedule: [300]" "  max_age: 600" "limits:" "  max_recipients: 1000"
sed -i 's/^workers: 2$/workers: 1/' "$T/ringrelay.yaml"
RR_TEST_MX_PORT=$PM rr_start
python3 - "$RR_PORT" <<'PY' || fail "the dead domains' message was not accepted"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
s.sendmail("a@b.org", ["u@d%d.bh.test" % i for i in range(300)], "Subject: dead\r\n\r\nhi\r\n")
s.quit()
PY
sleep 1
out=$("$RR_BIN" ctl -c "$T/ringrelay.yaml" delete --all 2>&1) || fail "ctl delete --all: $out"
expect_match "$out" "deleted 300 recipients" "ctl delete --all"
swaks --server 127.0.0.1:$RR_PORT --from a@b.org --to u@fresh.test > /dev/null 2>&1 || fail "swaks"
wait_until 20 grep -q 'to=<u@fresh.test>.*status=sent' "$L" ||
  fail "the message behind the deleted mail's lookups was not delivered in 20 s (the line was not freed)"
rr_stop
kill "$SIL" 2> /dev/null
grep -q 'status=deferred' "$L" && fail "a deleted recipient was deferred: $(grep -m1 status=deferred "$L")"
ok "ctl delete --all took 300 lookups back from the line: the next message went at once"
