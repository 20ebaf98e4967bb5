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
ok "$N recipients of $N distinct domains: all sent, none deferred (MX lookups lined up)"
