# Prometheus metrics (issue 11): `metrics: { address, port }` serves GET /metrics from its
# own thread on the shared runtime.
#  1. scrapes taken during a load and after it pass `promtool check metrics`; the counters
#     agree with what ringblast sent and the sinks got: per site and transport (a sink that
#     defers and rejects a share: deferred and bounced as it counted them), SMTP replies by
#     class (exactly: every reply of every session), connections refused by reason
#  2. MX delivery through dnsmasq with the labelled sites capped (RR_TEST_METRICS_SITES=2
#     a worker): more sites than that, so site="other" appears, the series stay within
#     the cap, no label is dropped and no counter goes back; DNS lookups, cache hits and
#     failed queries counted
#  3. a proxy pool of two HAProxy servers with a pair probe: all up; one stopped: the
#     deliveries refused through it counted against its pair (as ctl proxies counts
#     them), whose gauge goes to 0; nothing counted against the other. A pool whose server
#     nobody runs: down, its refused probes counted
#  4. the Grafana dashboard names only metrics the scrapes have, in valid PromQL; with a
#     next hop down, recipients scheduled, held (ctl hold), scheduled again (ctl release);
#     anything but GET /metrics gets 404/405, an endless request head 431, and the relay
#     goes on
. "$(dirname "$0")/lib.sh"
command -v promtool > /dev/null || fail "promtool missing (scripts/install-deps.sh installs prometheus)"
command -v haproxy > /dev/null || fail "haproxy not installed (scripts/install-deps.sh)"
command -v dnsmasq > /dev/null || fail "dnsmasq not installed (scripts/install-deps.sh)"
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
# sumof REGEX FILE: the sum of the samples whose name and labels match REGEX (0: none)
sumof() { grep -E "^$1 " "$2" | awk '{ s += $NF } END { printf "%d\n", s }'; }
metrics_port() { sed -nE 's/.*event=metrics_listen addr=127\.0\.0\.1:([0-9]+) .*/\1/p' "$T/relay.log" | tail -1; }
lint() {  # lint FILE WHAT
  promtool check metrics < "$1" > "$T/lint.txt" 2>&1 || { cat "$T/lint.txt" >&2; fail "promtool on $2"; }
}
# sink_counts PID-INDEX NAME: "deferred rejected" as the sink counted them (SIGUSR1)
sink_counts() {
  local n; n=$(grep -c '^ringsink: connections=' "$T/$2.log")
  kill -USR1 "${S_PID[$1]}"
  wait_until 5 eval "[ \$(grep -c '^ringsink: connections=' '$T/$2.log') -gt $n ]" || fail "no counts from sink $2"
  grep '^ringsink: connections=' "$T/$2.log" | tail -1 | sed -E 's/.* deferred=([0-9]+) rejected=([0-9]+) .*/\1 \2/'
}
L=$T/relay.log
# no_waiting FILE WHAT: no recipient scheduled, held or busy once every one is final (the
# queue's census: RR_TEST_METRICS_CENSUS=4096, a whole sweep at every publication)
no_waiting() {
  [ "$(grep -c '^ringrelay_queue_recipients{' "$1")" = 3 ] || fail "$2: no census: $(grep 'ringrelay_queue_recipients' "$1")"
  [ "$(sumof 'ringrelay_queue_recipients\{.*' "$1")" = 0 ] || fail "$2: $(grep '^ringrelay_queue_recipients' "$1")"
}

# ---- 1. a load, a sink that fails a share, replies, refusals --------------------------------
sink s1                                          # S_PID[0]
P1=$S_PORT
sink fl --fail defer=25%,reject=15% --seed 7     # S_PID[1]
PF=$S_PORT
rr_config "metrics: { address: 127.0.0.1, port: 0 }" \
          "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$P1\"" \
          "  - id: flaky" "    nexthop: \"[127.0.0.1]:$PF\"" \
          "  - id: \"q\\\"b\\\\s\\nl\"" "    nexthop: \"[127.0.0.1]:$P1\"" \
          "routes:" "  - domains: [flaky.test]" "    transport: flaky" \
          "  - domains: [odd.test]" "    transport: \"q\\\"b\\\\s\\nl\"" \
          "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 120"
RR_TEST_METRICS_CENSUS=4096 rr_start
MP=$(metrics_port)
[ -n "$MP" ] || fail "no metrics_listen line"
scrape > "$T/m0.txt" 2> "$T/h0.txt" || fail "first scrape"
grep -q '^HTTP 200 text/plain; version=0.0.4' "$T/h0.txt" || fail "status/type: $(cat "$T/h0.txt")"
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 300 -t 60 -l 2k > "$T/blast.out" 2>&1 &
BP=$!
for i in 1 2 3 4 5; do sleep 0.1; scrape > "$T/mid$i.txt" 2> /dev/null || fail "scrape during the load"; done
wait $BP || { cat "$T/blast.out" >&2; fail "ringblast"; }
for i in 1 2 3 4 5; do lint "$T/mid$i.txt" "a scrape during the load"; done
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 40 -t 60 -l 1k --to-domain flaky.test > "$T/blast.out" 2>&1 ||
  { cat "$T/blast.out" >&2; fail "ringblast (flaky.test)"; }
# one more through a transport whose id has a quote, a backslash and a newline
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 1 -n 1 -t 60 -l 1k --to-domain odd.test > "$T/blast.out" 2>&1 ||
  { cat "$T/blast.out" >&2; fail "ringblast (odd.test)"; }
# one client that speaks PROXY to a listener without it (220, then 421, refused), one
# with a command we do not know (220, 250, 5xx, 221)
$SMTPC $RR_PORT 'PROXY TCP4 192.0.2.1 192.0.2.2 1000 25\r\n' > "$T/pp.out"
grep -q '^421 4\.7\.0 PROXY not allowed' "$T/pp.out" || fail "PROXY: $(cat "$T/pp.out")"
$SMTPC $RR_PORT 'EHLO c.test\r\n|||BOGUS\r\n|||QUIT\r\n' > "$T/bogus.out"
grep -q '^5' "$T/bogus.out" || fail "BOGUS: $(cat "$T/bogus.out")"
# every flaky.test recipient final (sent or bounced; the deferred ones tried again every
# second), and the DSNs of the bounced ones at the hub's sink
final() { grep -cE 'to=<[^>]*@flaky\.test>.*status=(sent|bounced)' "$L"; }
wait_until 40 eval '[ "$(final)" -ge 40 ]' || fail "flaky.test: only $(final) of 40 final"
nb=$(grep -cE 'to=<[^>]*@flaky\.test>.*status=bounced' "$L")
wait_until 20 eval '[ "$(dumped s1)" -ge $((301 + nb)) ]' || fail "hub: $(dumped s1) of $((301 + nb)) (300, odd.test's 1 and $nb DSNs)"
sleep 1.3                                   # the site slots' period (1 s) and more
scrape > "$T/m1.txt" 2> /dev/null || fail "final scrape"
lint "$T/m1.txt" "the final scrape"
M=$T/m1.txt
[ "$(val ringrelay_messages_accepted_total "$M")" = 341 ] || fail "accepted: $(val ringrelay_messages_accepted_total "$M"), ringblast sent 341"
[ "$(val ringrelay_recipients_accepted_total "$M")" = 341 ] || fail "recipients accepted"
[ "$(val 'ringrelay_recipients_total\{outcome="delivered"\}' "$M")" = "$(( $(dumped s1) + $(dumped fl) ))" ] \
  || fail "delivered $(val 'ringrelay_recipients_total\{outcome="delivered"\}' "$M") but the sinks have $(dumped s1) + $(dumped fl)"
[ "$(val ringrelay_connections_accepted_total "$M")" = 9 ] || fail "connections accepted: $(val ringrelay_connections_accepted_total "$M"), want 4 + 2 + 1 + 2"
[ "$(val ringrelay_spool_commit_duration_seconds_count "$M")" = "$(val ringrelay_spool_commits_total "$M")" ] \
  || fail "commit histogram count differs from the commits"
[ "$(val ringrelay_workers "$M")" = 2 ] || fail "workers"
no_waiting "$M" "recipients waiting after every one is final"
ok "scrapes during and after a load: promtool clean, 341 accepted, delivered = the sinks' count"

# per site and transport: what each sink counted
read -r fdef frej <<< "$(sink_counts 1 fl)"
site() { echo "ringrelay_site_results_total\\{transport=\"$1\",site=\"\\[127\\.0\\.0\\.1\\]:$2\",result=\"$3\"\\}"; }
tot() { echo "ringrelay_transport_results_total\\{transport=\"$1\",result=\"$2\"\\}"; }
got="$(val "$(site flaky $PF delivered)" "$M") $(val "$(site flaky $PF deferred)" "$M") $(val "$(site flaky $PF bounced)" "$M")"
[ "$got" = "$(dumped fl) $fdef $frej" ] || fail "flaky site delivered/deferred/bounced: $got, the sink: $(dumped fl) $fdef $frej"
[ "$frej" -gt 0 ] && [ "$fdef" -gt 0 ] || fail "the flaky sink deferred $fdef and rejected $frej: nothing to count"
got="$(val "$(site hub $P1 delivered)" "$M") $(val "$(site hub $P1 deferred)" "$M") $(val "$(site hub $P1 bounced)" "$M")"
[ "$got" = "$(( $(dumped s1) - 1 )) 0 0" ] || fail "hub site: $got, the sink has $(dumped s1), one of them odd.test's"
# the odd transport's label, escaped as the text format wants (\", \\, \n)
odd='q\\"b\\\\s\\nl'
[ "$(val "$(site "$odd" $P1 delivered)" "$M")" = 1 ] || fail "the odd transport's site: $(grep '^ringrelay_site_results_total{transport="q' "$M")"
for t in hub flaky "$odd"; do
  for r in delivered deferred bounced; do
    [ "$(val "$(tot $t $r)" "$M")" = "$(sumof "ringrelay_site_results_total\\{transport=\"$t\",.*result=\"$r\"\\}" "$M")" ] ||
      fail "transport $t $r: $(val "$(tot $t $r)" "$M") is not the sum of its sites"
  done
done
[ "$(grep -c '^ringrelay_site_results_total{' "$M")" = 9 ] || fail "site series: $(grep '^ringrelay_site_results_total{' "$M")"
[ "$(val 'ringrelay_site_ready_jobs\{transport="hub",site="\[127\.0\.0\.1\]:'$P1'"\}' "$M")" = 0 ] || fail "ready jobs at the hub"
[ "$(val ringrelay_queue_ready_jobs "$M")" = 0 ] || fail "ready jobs"
ok "per site and transport: flaky delivered $(dumped fl), deferred $fdef, bounced $frej as its sink counted; hub $(dumped s1)"

# replies: per ringblast connection 220 EHLO-250 221, per message 250 250 354 250 (one
# recipient); the PROXY client 220 421; the other 220 250 5xx 221
r() { val "ringrelay_smtp_replies_total\\{class=\"$1\"\\}" "$M"; }
want2=$(( (4 + 2 + 1) * 3 + 341 * 3 + 1 + 3 ))
got="$(r 2xx) $(r 3xx) $(r 4xx) $(r 5xx)"
[ "$got" = "$want2 341 1 1" ] || fail "replies 2xx 3xx 4xx 5xx: $got, want $want2 341 1 1"
rf() { val "ringrelay_connections_refused_total\\{reason=\"$1\"\\}" "$M"; }
got="$(rf proxy_not_allowed) $(rf proxy_invalid) $(rf proxy_timeout) $(rf max_connections) $(rf max_connections_per_ip) $(rf proxy_required)"
[ "$got" = "1 0 0 0 0 0" ] || fail "refused by reason: $got"
ok "replies by class exactly as the sessions had them ($want2 2xx, 341 3xx, 1 4xx, 1 5xx); one refusal, proxy_not_allowed"
rr_stop
cp "$M" "$T/all.txt"
: > "$L"

# ---- 2. MX sites through dnsmasq, labels capped; DNS counted -------------------------------
sink mx                                          # S_PID[2]
PM=$S_PORT
args=()
for k in 1 2 3 4 5 6 7 8; do args+=(--mx-host=d$k.test,mx.d$k.test,10 --host-record=mx.d$k.test,127.0.0.1); done
dns_start --local-ttl=300 "${args[@]}"
rr_config "metrics: { address: 127.0.0.1, port: 0 }" "dns: { servers: [\"127.0.0.1:$DP\"] }" \
          "queue:" "  retry_schedule: [1]" "  max_age: 60"
RR_TEST_MX_PORT=$PM RR_TEST_METRICS_SITES=2 RR_TEST_METRICS_CENSUS=4096 rr_start
MP=$(metrics_port)
to=u@d1.test; for k in 2 3 4 5 6 7 8; do to="$to,u@d$k.test"; done
swaks --server 127.0.0.1:$RR_PORT --from a@d1.test --to "$to" > /dev/null 2>&1 || fail "swaks (8 domains)"
swaks --server 127.0.0.1:$RR_PORT --from '<>' --to u@nx.test > /dev/null 2>&1 || fail "swaks (nx.test)"
wait_until 20 eval '[ "$(dumped mx)" -ge 8 ]' || fail "MX: $(dumped mx) of 8 delivered"
wait_log 'to=<u@nx\.test>.*status=bounced' 10 || fail "nx.test not bounced"
sleep 1.3                                   # (the site slots: once a second)
scrape > "$T/m2.txt" 2> /dev/null || fail "scrape (sites)"
lint "$T/m2.txt" "the scrape with capped sites"
# twice more: each worker resolves (and caches) for the messages it took, so of three
# rounds two were taken by the same worker, and one found its answers cached
for round in 2 3; do
  swaks --server 127.0.0.1:$RR_PORT --from a@d1.test --to "$to" > /dev/null 2>&1 || fail "swaks (8 domains, round $round)"
  wait_until 20 eval '[ "$(dumped mx)" -ge $((8 * round)) ]' || fail "MX: $(dumped mx) of $((8 * round)) delivered"
done
sleep 1.3
scrape > "$T/m3.txt" 2> /dev/null || fail "scrape (sites, again)"
lint "$T/m3.txt" "the second scrape with capped sites"
sites() { sed -nE 's/^ringrelay_site_results_total\{transport="([^"]*)",site="([^"]*)",result="delivered"\} .*/\1 \2/p' "$1"; }
sites "$T/m2.txt" > "$T/s2.txt"
named=$(grep -vc ' other$' "$T/s2.txt")
[ "$named" -ge 2 ] && [ "$named" -le 4 ] || fail "named sites: $named (2 a worker, 2 workers): $(cat "$T/s2.txt")"
grep -qx 'default other' "$T/s2.txt" || fail "no site=\"other\" with 8 sites and 2 labels a worker: $(cat "$T/s2.txt")"
[ "$(wc -l < "$T/s2.txt")" -le 5 ] || fail "site series past the cap + transports: $(cat "$T/s2.txt")"
grep -q 'default mx\.d[1-8]\.test' "$T/s2.txt" || fail "site labels are not the MX hosts: $(cat "$T/s2.txt")"
[ "$(sumof 'ringrelay_site_results_total\{transport="default",.*result="delivered"\}' "$T/m2.txt")" = 8 ] ||
  fail "delivered over the site series: $(sumof 'ringrelay_site_results_total\{.*result="delivered"\}' "$T/m2.txt"), the sink took 8"
[ "$(val 'ringrelay_transport_results_total\{transport="default",result="delivered"\}' "$T/m2.txt")" = 8 ] || fail "transport total"
# the second round: the same labels (none dropped, none added past the cap), no counter back
sites "$T/m3.txt" > "$T/s3.txt"
cmp -s "$T/s2.txt" "$T/s3.txt" || fail "site labels changed: $(cat "$T/s2.txt") -> $(cat "$T/s3.txt")"
join <(grep '^ringrelay_site_results_total{' "$T/m2.txt" | sort) <(grep '^ringrelay_site_results_total{' "$T/m3.txt" | sort) |
  awk '$3 < $2 { print; bad = 1 } END { exit bad }' > "$T/back.txt" || fail "a counter went back: $(cat "$T/back.txt")"
no_waiting "$T/m3.txt" "recipients waiting after three rounds delivered"
[ "$(sumof 'ringrelay_site_results_total\{.*result="delivered"\}' "$T/m3.txt")" = 24 ] || fail "delivered over the sites after three rounds"
ok "8 MX sites, 2 labels a worker: $named named + other, labels kept, counters only grew, delivered = the sink's 8 x 3"

d() { val "ringrelay_dns_$1" "$T/m3.txt"; }
[ "$(d 'lookups_total\{result="ok"\}')" = 24 ] || fail "lookups ok: $(d 'lookups_total\{result="ok"\}'), want 24 (8 domains, 3 times)"
[ "$(d 'lookups_total\{result="nxdomain"\}')" = 1 ] || fail "lookups nxdomain: $(d 'lookups_total\{result="nxdomain"\}')"
[ "$(d cache_hits_total)" -ge 8 ] || fail "cache hits: $(d cache_hits_total), want the second round's 8"
[ "$(d queries_total)" -ge 25 ] || fail "queries: $(d queries_total), want MX, A, AAAA of 8 domains and nx.test's MX"
[ "$(d 'query_failures_total\{kind="nxdomain"\}')" -ge 1 ] || fail "NXDOMAIN queries: $(d 'query_failures_total\{kind="nxdomain"\}')"
[ "$(d 'query_failures_total\{kind="nodata"\}')" -ge 8 ] || fail "NODATA (AAAA) queries: $(d 'query_failures_total\{kind="nodata"\}')"
[ "$(d 'query_failures_total\{kind="servfail"\}')" = 0 ] && [ "$(d 'query_failures_total\{kind="timeout"\}')" = 0 ] ||
  fail "servfail or timeout counted from a dnsmasq that answers everything"
[ "$(d cache_entries)" -ge 9 ] || fail "cache entries: $(d cache_entries)"
[ "$(d lookups_waiting)" = 0 ] || fail "lookups waiting after the rounds: '$(d lookups_waiting)'"
ok "DNS: $(d 'lookups_total\{result="ok"\}') ok, $(d 'lookups_total\{result="nxdomain"\}') NXDOMAIN, $(d cache_hits_total) cache hits, $(d queries_total) queries"
rr_stop
dns_stop
cat "$T/m3.txt" >> "$T/all.txt"
: > "$L"

# ---- 3. proxy pools: states and failures ------------------------------------------------
# Pool "tier": HAProxy A and B, probes every 30 s (the first within 3 s: waited for), one
# message a connection, so that connections take the two servers in turn. After A is
# stopped, the deliveries that try it are refused, counted against the pair (A, 127.0.0.1)
# (the pool probes pairs), which goes down; the next probe is 27 s away, so nothing else
# is counted meanwhile. Pool "dead": a server nobody runs, probed every second: refused.
sink px                                          # S_PID[3]
PX=$S_PORT
HA=$(free_port); HB=$(free_port); XP=$(free_port)
haproxy_out a "$HA"
haproxy_out b "$HB"
rr_config "metrics: { address: 127.0.0.1, port: 0 }" \
  "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$PX\"" "    proxy_pool: tier" \
  "    source: { ipv4: 127.0.0.1 }" "    max_messages_per_connection: 1" \
  "  - id: viadead" "    nexthop: \"[127.0.0.1]:$PX\"" "    proxy_pool: dead" \
  "proxy_pools:" "  - id: tier" "    servers: [\"127.0.0.1:$HA\", \"127.0.0.1:$HB\"]" \
  "    health_check: { interval: 30, timeout: 1, failure_threshold: 1, success_threshold: 1, probe: \"[127.0.0.1]:$PX\" }" \
  "  - id: dead" "    servers: [\"127.0.0.1:$XP\"]" \
  "    health_check: { interval: 1, timeout: 1, failure_threshold: 1, success_threshold: 1 }" \
  "routes:" "  - domains: [nowhere.test]" "    transport: viadead" "  - domains: [\"*\"]" "    transport: hub" \
  "queue:" "  retry_schedule: [1]" "  max_age: 60"
rr_start
MP=$(metrics_port)
# every thing of "tier" probed once (ctl proxies: checks=)
probed() { [ "$("$RR_BIN" ctl -c "$T/ringrelay.yaml" proxies | grep -c "pool=tier .* checks=[1-9]")" = 4 ]; }
wait_until 10 probed || fail "tier not probed: $("$RR_BIN" ctl -c "$T/ringrelay.yaml" proxies)"
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 10 -t 30 -l 1k > "$T/blast.out" 2>&1 || { cat "$T/blast.out" >&2; fail "ringblast (pool)"; }
wait_until 20 eval '[ "$(dumped px)" -ge 10 ]' || fail "pool: $(dumped px) of 10 delivered"
sleep 0.5
scrape > "$T/m4.txt" 2> /dev/null || fail "scrape (pool)"
lint "$T/m4.txt" "the scrape with a pool"
up() { val "ringrelay_proxy_$1_up\\{pool=\"$2\",server=\"127\\.0\\.0\\.1:$3\"$4\\}" "$5"; }
pf() {  # pf POOL PORT SOURCE CHECK REASON FILE
  val "ringrelay_proxy_failures_total\\{pool=\"$1\",server=\"127\\.0\\.0\\.1:$2\",source=\"$3\",check=\"$4\",reason=\"$5\"\\}" "$6"
}
pair=',source="127\.0\.0\.1"'
got="$(up server tier $HA '' "$T/m4.txt") $(up server tier $HB '' "$T/m4.txt") $(up pair tier $HA "$pair" "$T/m4.txt") $(up pair tier $HB "$pair" "$T/m4.txt")"
[ "$got" = "1 1 1 1" ] || fail "tier's servers and pairs up: $got: $(grep '_up{' "$T/m4.txt")"
[ "$(sumof 'ringrelay_proxy_failures_total\{pool="tier",.*' "$T/m4.txt")" = 0 ] || fail "failures in tier with both up: $(grep '^ringrelay_proxy_failures_total' "$T/m4.txt")"
[ "$(up server dead $XP '' "$T/m4.txt")" = 0 ] || fail "the server nobody runs is not down: $(grep '_up{' "$T/m4.txt")"
[ "$(pf dead $XP '' probe refused "$T/m4.txt")" -ge 1 ] 2>/dev/null || fail "its refused probes not counted: $(grep '^ringrelay_proxy_failures_total' "$T/m4.txt")"
kill "${HAP_PID[a]}"; wait "${HAP_PID[a]}" 2>/dev/null
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 10 -t 30 -l 1k > "$T/blast.out" 2>&1 || { cat "$T/blast.out" >&2; fail "ringblast (pool, A stopped)"; }
wait_until 20 eval '[ "$(dumped px)" -ge 20 ]' || fail "pool, A stopped: $(dumped px) of 20 delivered"
sleep 0.5
scrape > "$T/m5.txt" 2> /dev/null || fail "scrape (pool, A stopped)"
lint "$T/m5.txt" "the scrape with A stopped"
fd=$(pf tier $HA 127.0.0.1 delivery refused "$T/m5.txt")
[ "${fd:-0}" -ge 1 ] || fail "A's refused deliveries not counted against its pair: $(grep '^ringrelay_proxy_failures_total' "$T/m5.txt")"
got="$(up pair tier $HA "$pair" "$T/m5.txt") $(up server tier $HA '' "$T/m5.txt") $(up server tier $HB '' "$T/m5.txt") $(up pair tier $HB "$pair" "$T/m5.txt")"
[ "$got" = "0 1 1 1" ] || fail "pair A down, server A (no probe yet), B and its pair up: $got"
[ "$(sumof 'ringrelay_proxy_failures_total\{pool="tier",.*' "$T/m5.txt")" = "$fd" ] ||
  fail "tier: failures besides A's refused deliveries: $(grep '^ringrelay_proxy_failures_total' "$T/m5.txt")"
# the counter agrees with the checker's own count (ctl proxies: fails=, probes and deliveries)
ctl_fails=$("$RR_BIN" ctl -c "$T/ringrelay.yaml" proxies | sed -nE "s/.*server=127\.0\.0\.1:$HA source=127\.0\.0\.1 .* fails=([0-9]+) .*/\1/p")
[ "$ctl_fails" = "$fd" ] || fail "ctl proxies says $ctl_fails failures of (A, 127.0.0.1), the counter $fd"
ok "pools: all up; the dead server's refused probes counted; A stopped: $fd refused deliveries (= ctl proxies) took its pair down; B untouched"
rr_stop
hap_b=${HAP_PID[b]}; kill "$hap_b"; wait "$hap_b" 2>/dev/null
cat "$T/m5.txt" >> "$T/all.txt"

# ---- 4. the dashboard; hostile requests -------------------------------------------------------
# etc/grafana-ringrelay.json: valid JSON; every query is valid PromQL (promtool checks
# them as recording rules) and names only metrics the scrapes have
python3 - "$HERE/../../etc/grafana-ringrelay.json" "$T/all.txt" "$T/rules.yml" <<'PY' || fail "the Grafana dashboard"
import json, re, sys
d = json.load(open(sys.argv[1]))
scrape = open(sys.argv[2]).read()
exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
assert len(exprs) >= 16, exprs
for e in exprs:
    for name in re.findall(r"ringrelay_[a-z_]+", e):
        assert re.search(r"^" + name + r"[ {]", scrape, re.M), "not in the scrape: " + name
with open(sys.argv[3], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write("      - record: dashboard:q%d\n        expr: %s\n" % (i, json.dumps(e)))
PY
promtool check rules "$T/rules.yml" > "$T/rules.out" 2>&1 || { cat "$T/rules.out" >&2; fail "promtool: a dashboard query is not valid PromQL"; }
ok "etc/grafana-ringrelay.json: every query valid PromQL over metrics the scrapes have"

# (with a next hop that is down: recipients scheduled, then held, then released)
DEAD=$(free_port)
rr_config "metrics: { address: 127.0.0.1, port: 0 }" \
          "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$DEAD\"" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" "queue:" "  retry_schedule: [600]"
RR_TEST_METRICS_CENSUS=410 rr_start     # a sweep in 10 publications (1 s), not 50
MP=$(metrics_port)
for i in 1 2 3; do
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "a$i@x.test,b$i@x.test" > /dev/null 2>&1 || fail "swaks $i"
done
wait_until 10 eval '[ "$(grep -c "status=deferred" "$L")" -ge 6 ]' || fail "not deferred"
# the queue's census, as it comes (a sweep a second here): recipients scheduled, held, busy
rq() { scrape > "$T/q.txt" 2> /dev/null && lint "$T/q.txt" "a scrape with a queue" &&
       [ "$(for st in scheduled held busy; do val "ringrelay_queue_recipients\\{state=\"$st\"\\}" "$T/q.txt"; done | xargs)" = "$1" ]; }
ctl() { "$RR_BIN" ctl -c "$T/ringrelay.yaml" "$@" > /dev/null || fail "ctl $*"; }
wait_until 15 rq "6 0 0" || fail "scheduled, held, busy: $(grep '^ringrelay_queue_recipients' "$T/q.txt"), want 6 0 0"
ctl hold --all
wait_until 15 rq "0 6 0" || fail "after hold: $(grep '^ringrelay_queue_recipients' "$T/q.txt"), want 0 6 0"
ctl release --all
wait_until 10 eval '[ "$(grep -c "status=deferred" "$L")" -ge 12 ]' || fail "released, not tried again"
wait_until 15 rq "6 0 0" || fail "after release: $(grep '^ringrelay_queue_recipients' "$T/q.txt"), want 6 0 0"
ok "queue census: 6 scheduled; ctl hold: 6 held; released and deferred again: 6 scheduled"
scrape > "$T/q.txt" 2> /dev/null || fail "scrape (queue)"
[ "$(val ringrelay_queue_messages "$T/q.txt")" = 3 ] || fail "queue messages: $(val ringrelay_queue_messages "$T/q.txt")"
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
# every one of the 32 places held by a half-sent request (and 8 more knocking): a scrape
# still gets through, each time, taking the place of the oldest silent one; the silent
# ones are cut when their 5 s for the head are over
python3 - "$MP" > "$T/hold.txt" <<'PY'
import http.client, socket, sys, time
port = int(sys.argv[1])
held = []
for i in range(40):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nX-Half: ")
    held.append(s)
    time.sleep(0.01)
ok = 0
for i in range(5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    r = c.getresponse(); r.read()
    ok += r.status == 200
    c.close()
end = time.time() + 30
cut = 0
for s in held:
    s.settimeout(max(0.1, end - time.time()))
    try:
        if s.recv(100) == b"":
            cut += 1
    except (ConnectionResetError, BrokenPipeError):
        cut += 1
    except socket.timeout:
        pass
print("scrapes=%d cut=%d" % (ok, cut))
PY
grep -q '^scrapes=5 cut=40$' "$T/hold.txt" || fail "with the places held by half-sent requests: $(cat "$T/hold.txt"), want 5 scrapes and all 40 cut"
# a connect flood from 127.0.0.2 for 5 s: the places taken back are its own, every scrape
# from 127.0.0.1 meanwhile is answered
python3 "$HERE/flood.py" connect "127.0.0.1:$MP" 5 127.0.0.2 > "$T/mflood.txt" &
MFP=$!
sleep 0.5
okm=0
for i in $(seq 1 8); do
  scrape > /dev/null 2> "$T/h.txt" && grep -q '^HTTP 200' "$T/h.txt" && okm=$((okm + 1))
  sleep 0.2
done
wait $MFP
[ "$okm" -eq 8 ] || fail "scrapes under a connect flood from another address: $okm of 8 ($(cat "$T/mflood.txt"))"
rr_stop
grep -q 'event=ops_stopped service=metrics accepted=[0-9]* refused=[0-9]* evicted=[1-9]' "$L" ||
  fail "no ops_stopped line for metrics with evictions: $(grep 'event=ops_stopped service=metrics' "$L")"
ok "404, 405, 431 for a head past 8 KiB; 5 of 5 scrapes with every place held by a half-sent request (40 cut), 8 of 8 under a connect flood from another address; stopped cleanly"
