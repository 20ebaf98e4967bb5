# Prometheus metrics (issue 11): `metrics: { address, port }` serves GET /metrics from its
# own thread on the shared runtime. A scrape taken during a load and one after it pass
# `promtool check metrics`; the counters agree with what ringblast sent and ringsink got;
# anything but GET /metrics gets 404/405, an endless request head 431, and the relay
# goes on.
. "$(dirname "$0")/lib.sh"
command -v promtool > /dev/null || fail "promtool missing (scripts/install-deps.sh installs prometheus)"
scrape() {  # scrape [PATH [METHOD]] -> body on stdout, "HTTP STATUS" on fd 3
  python3 - "$MP" "${1:-/metrics}" "${2:-GET}" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request(sys.argv[3], sys.argv[2])
r = c.getresponse()
sys.stdout.write(r.read().decode())
sys.stderr.write("HTTP %d %s\n" % (r.status, r.getheader("Content-Type")))
PY
}
val() { grep -E "^$1 " "$2" | awk '{print $2}'; }
sink s1
rr_config "metrics: { address: 127.0.0.1, port: 0 }" \
          "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub"
rr_start
MP=$(sed -nE 's/.*event=metrics_listen addr=127\.0\.0\.1:([0-9]+) .*/\1/p' "$T/relay.log" | head -1)
[ -n "$MP" ] || fail "no metrics_listen line"
scrape > "$T/m0.txt" 2> "$T/h0.txt" || fail "first scrape"
grep -q '^HTTP 200 text/plain; version=0.0.4' "$T/h0.txt" || fail "status/type: $(cat "$T/h0.txt")"
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 300 -t 60 -l 2k > "$T/blast.out" 2>&1 &
BP=$!
for i in 1 2 3 4 5; do sleep 0.1; scrape > "$T/mid$i.txt" 2> /dev/null || fail "scrape during the load"; done
wait $BP || { cat "$T/blast.out" >&2; fail "ringblast"; }
for i in 1 2 3 4 5; do
  promtool check metrics < "$T/mid$i.txt" > "$T/lint.txt" 2>&1 || { cat "$T/lint.txt" >&2; fail "promtool on a scrape during the load"; }
done
wait_until 30 eval '[ "$(dumped s1)" -ge 300 ]' || fail "only $(dumped s1) delivered"
sleep 0.5                                   # one publication period (100 ms) and more
scrape > "$T/m1.txt" 2> /dev/null || fail "final scrape"
promtool check metrics < "$T/m1.txt" > "$T/lint.txt" 2>&1 || { cat "$T/lint.txt" >&2; fail "promtool on the final scrape"; }
[ "$(val ringrelay_messages_accepted_total "$T/m1.txt")" = 300 ] || fail "accepted: $(val ringrelay_messages_accepted_total "$T/m1.txt"), ringblast sent 300"
[ "$(val ringrelay_recipients_accepted_total "$T/m1.txt")" = 300 ] || fail "recipients accepted"
[ "$(val 'ringrelay_recipients_total\{outcome="delivered"\}' "$T/m1.txt")" = "$(dumped s1)" ] \
  || fail "delivered $(val 'ringrelay_recipients_total\{outcome="delivered"\}' "$T/m1.txt") but the sink has $(dumped s1)"
[ "$(val ringrelay_connections_accepted_total "$T/m1.txt")" -ge 4 ] || fail "connections accepted"
[ "$(val ringrelay_spool_commit_duration_seconds_count "$T/m1.txt")" = "$(val ringrelay_spool_commits_total "$T/m1.txt")" ] \
  || fail "commit histogram count differs from the commits"
[ "$(val ringrelay_workers "$T/m1.txt")" = 2 ] || fail "workers"
ok "scrapes during and after a load: promtool clean, 300 accepted, delivered = the sink's count"

# etc/grafana-ringrelay.json: valid JSON; every query is valid PromQL (promtool checks
# them as recording rules) and names only metrics the scrape has
python3 - "$HERE/../../etc/grafana-ringrelay.json" "$T/m1.txt" "$T/rules.yml" <<'PY' || fail "the Grafana dashboard"
import json, re, sys
d = json.load(open(sys.argv[1]))
scrape = open(sys.argv[2]).read()
exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
assert len(exprs) >= 10, exprs
for e in exprs:
    for name in re.findall(r"ringrelay_[a-z_]+", e):
        assert re.search(r"^" + name + r"[ {]", scrape, re.M), "not in the scrape: " + name
with open(sys.argv[3], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write("      - record: dashboard:q%d\n        expr: %s\n" % (i, json.dumps(e)))
PY
promtool check rules "$T/rules.yml" > "$T/rules.out" 2>&1 || { cat "$T/rules.out" >&2; fail "promtool: a dashboard query is not valid PromQL"; }
ok "etc/grafana-ringrelay.json: every query valid PromQL over metrics the scrape has"

scrape /other > /dev/null 2> "$T/h.txt"; grep -q '^HTTP 404' "$T/h.txt" || fail "not 404: $(cat "$T/h.txt")"
scrape /metrics POST > /dev/null 2> "$T/h.txt"; grep -q '^HTTP 405' "$T/h.txt" || fail "not 405: $(cat "$T/h.txt")"
python3 - "$MP" > "$T/big.txt" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 20000 + b"\r\n")
print(s.recv(100).decode(errors="replace").splitlines()[0])
PY
grep -q '^HTTP/1.0 431' "$T/big.txt" || fail "an endless head: $(cat "$T/big.txt")"
scrape > /dev/null 2> "$T/h.txt"; grep -q '^HTTP 200' "$T/h.txt" || fail "no scrape after the hostile ones"
rr_stop
grep -q 'event=ops_stopped service=metrics accepted=[0-9]' "$T/relay.log" || fail "no ops_stopped line for metrics"
ok "404, 405, 431 for a head past 8 KiB; scrapes go on; stopped cleanly"
