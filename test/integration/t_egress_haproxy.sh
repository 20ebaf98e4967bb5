# Outbound through a HAProxy tier (issue 9): two real HAProxy processes, each reading the
# relay's PROXY header (`bind ... accept-proxy`) and passing the source it names on to
# ringsink --proxy --by-helo (`send-proxy-v2`), which counts messages per (source, EHLO).
#  0. no pool: each source's address bound locally; the sink sees 127.0.0.2 and 127.0.0.3
#  1. v2: two IPv4 sources, both seen, about evenly, each with its own EHLO; an IPv6
#     source; a bypass domain arrives at its next hop directly, with no PROXY header;
#     source= and proxy= in the delivery lines, which pflogsumm still counts
#  2. one HAProxy stopped: everything goes through the other, nothing deferred or bounced
#  3. both stopped: the queue holds (no attempt logged); both started again: all delivered
#  4. v1 with a probe: a HAProxy that rejects one source (`tcp-request session reject`)
#     marks only that (proxy, source) pair down; that source's mail leaves by the other
#  5. a reload that takes B out of the pool: the pair keeps its state (down), so the
#     rejected source has no server left and its mail moves to the other source
. "$(dirname "$0")/lib.sh"
FEED=$HERE/../../scripts/pflogsumm-feed
command -v haproxy > /dev/null || fail "haproxy not installed (scripts/install-deps.sh)"
L=$T/relay.log
count() { grep -c -- "$1" "$2"; }

declare -A HP
# tier NAME PORT SINKPORT [frontend lines...]: a HAProxy of the outbound tier
tier() {
  local name=$1 port=$2 sp=$3 l; shift 3
  { printf 'global\n  log stderr format raw local0 info\ndefaults\n  mode tcp\n  log global\n'
    printf '  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n'
    printf 'frontend fe\n  bind 127.0.0.1:%s accept-proxy\n' "$port"
    for l in "$@"; do printf '  %s\n' "$l"; done
    printf '  default_backend be\nbackend be\n  server sink 127.0.0.1:%s send-proxy-v2\n' "$sp"
  } > "$T/$name.cfg"
  haproxy -f "$T/$name.cfg" -db >> "$T/$name.log" 2>&1 &
  HP[$name]=$!
  wait_until 5 python3 -c "import socket;socket.create_connection(('127.0.0.1',$port),0.2).close()" 2>/dev/null ||
    { cat "$T/$name.log" >&2; fail "haproxy $name did not start"; }
}
untier() { kill "${HP[$1]}" 2>/dev/null; wait "${HP[$1]}" 2>/dev/null; HP[$1]=; return 0; }
blast() {  # blast N DOMAIN
  "$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n "$1" -t 30 -l 1k --to-domain "$2" \
    > "$T/blast.out" 2>&1 || { cat "$T/blast.out" >&2; fail "ringblast ($2)"; }
}
# the per-source counts of sink $2 (pid index $1) after a SIGUSR1: "SOURCE HELO N" lines
counts() {
  local n; n=$(grep -c '^ringsink: connections=' "$T/$2.log")
  kill -USR1 "${S_PID[$1]}"
  wait_until 5 eval "[ \$(grep -c '^ringsink: connections=' '$T/$2.log') -gt $n ]"
  sleep 0.2
  awk '/^ringsink: connections=/ { n = 0; delete l } /^ringsink: source=/ { l[n++] = $0 }
       END { for (i = 0; i < n; i++) print l[i] }' "$T/$2.log" |
    sed -nE 's/^ringsink: source=([^ ]+) helo=([^ ]+) messages=([0-9]+)$/\1 \2 \3/p'
}
got() { awk -v s="$2" -v h="$3" '$1 == s && $2 == h { print $3 }' <<< "$1" | tail -1; }

# ---- 0. no pool: local bind -------------------------------------------------------------
sink local --by-helo                                     # S_PID[0]
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
  "    source:" "      - { ipv4: 127.0.0.2, helo: out2.test }" \
  "      - { ipv4: 127.0.0.3, helo: out3.test }" \
  "routes:" "  - domains: [\"*\"]" "    transport: hub" "queue:" "  retry_schedule: [1]" "  max_age: 60"
rr_start
blast 40 example.net
wait_until 20 eval '[ "$(dumped local)" -ge 40 ]' || fail "local bind: only $(dumped local) of 40"
c=$(counts 0 local)
n2=$(got "$c" 127.0.0.2 out2.test); n3=$(got "$c" 127.0.0.3 out3.test)
[ "${n2:-0}" -ge 14 ] && [ "${n3:-0}" -ge 14 ] && [ $((n2 + n3)) -eq 40 ] ||
  fail "local bind: want 40 over 127.0.0.2 and 127.0.0.3 with their EHLO names, got: $c"
expect_match "$(cat "$L")" 'relay=127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+ source=127\.0\.0\.(2|3) proxy=none, conn_use=' "delivery line names the source"
rr_stop
ok "no pool: 40 messages bound to 127.0.0.2 ($n2) and 127.0.0.3 ($n3), each with its EHLO"
: > "$L"

# ---- 1. v2 through two HAProxy ------------------------------------------------------------
sink px --proxy --by-helo                                # S_PID[1]
PX=$S_PORT
sink direct --by-helo                                    # S_PID[2]
PD=$S_PORT
HA=$(free_port); HB=$(free_port)
tier a "$HA" "$PX"
tier b "$HB" "$PX"
relay_config() {  # relay_config VERSION [PROBE]
  rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$PD\"" "    proxy_pool: tier" \
    "    source:" "      - { ipv4: 127.0.0.2, helo: out2.test }" \
    "      - { ipv4: 127.0.0.3, helo: out3.test }" \
    "    proxy_bypass_domains: [bypass.test]" \
    "  - id: six" "    nexthop: \"[::1]:$PD\"" "    proxy_pool: tier" \
    "    source: { ipv6: \"2001:db8::6\", helo: out6.test }" \
    "proxy_pools:" "  - id: tier" "    version: $1" "    servers: [\"127.0.0.1:$HA\", \"127.0.0.1:$HB\"]" \
    "    health_check: { interval: 1, timeout: 1, failure_threshold: 2, success_threshold: 2${2:+, probe: \"$2\"} }" \
    "routes:" "  - domains: [six.test]" "    transport: six" "  - domains: [\"*\"]" "    transport: hub" \
    "queue:" "  retry_schedule: [1]" "  max_age: 120"
}
relay_config 2
rr_start
blast 100 example.net
blast 10 six.test
blast 6 bypass.test
wait_until 20 eval '[ "$(dumped px)" -ge 110 ] && [ "$(dumped direct)" -ge 6 ]' ||
  fail "v2: $(dumped px) of 110 through the tier, $(dumped direct) of 6 direct"
c=$(counts 1 px)
n2=$(got "$c" 127.0.0.2 out2.test); n3=$(got "$c" 127.0.0.3 out3.test); n6=$(got "$c" 2001:db8::6 out6.test)
[ "${n2:-0}" -ge 40 ] && [ "${n3:-0}" -ge 40 ] && [ $((n2 + n3)) -eq 100 ] && [ "${n6:-0}" -eq 10 ] ||
  fail "v2: want 100 over 127.0.0.2 / 127.0.0.3 (about evenly) and 10 from 2001:db8::6, got: $c"
# the bypass domain reached its next hop without a header: the plain sink took it, and it
# saw the source bound locally
cd_=$(counts 2 direct)
[ "$(awk '{ s += $3 } END { print s + 0 }' <<< "$cd_")" -eq 6 ] || fail "bypass: $cd_"
[ "$(dumped px)" -eq 110 ] || fail "v2: $(dumped px) at the proxied sink, want 110 (bypass mail there?)"
expect_match "$(cat "$L")" "relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PD source=127\.0\.0\.[23] proxy=127\.0\.0\.1:($HA|$HB), conn_use=[0-9]+, delay=" "delivery line: source and proxy"
expect_match "$(cat "$L")" "relay=::1\[::1\]:$PD source=2001:db8::6 proxy=127\.0\.0\.1:($HA|$HB), " "delivery line: IPv6 source"
expect_match "$(cat "$L")" "to=<[^>]*@bypass\.test>, relay=[^,]* source=127\.0\.0\.[23] proxy=none, " "delivery line: bypass"
expect_match "$(cat "$L")" "event=proxy_state pool=tier server=127\.0\.0\.1:$HA source=- state=up since=[0-9]+ fails=0 checks=" "proxy_state line"
# pflogsumm still reads the lines
if command -v pflogsumm > /dev/null; then
  sum=$(sh "$FEED" "$L" | pflogsumm --syslog-name=ringrelay 2>/dev/null)
  d=$(awk '/^Grand Totals/ { g = 1 } g && $2 == "delivered" { print $1; exit }' <<< "$sum")
  [ "${d:-0}" = 116 ] || { printf '%s\n' "$sum" | head -30 >&2; fail "pflogsumm counted ${d:-nothing} delivered, want 116"; }
fi
ok "v2: 127.0.0.2=$n2 127.0.0.3=$n3 2001:db8::6=$n6 through the tier, 6 bypass direct; pflogsumm: 116 delivered"

# ---- 2. one HAProxy stopped -----------------------------------------------------------------
untier a
blast 100 example.net
wait_until 30 eval '[ "$(dumped px)" -ge 210 ]' || fail "A stopped: $(dumped px) of 210"
expect_match "$(cat "$L")" "event=proxy_state pool=tier server=127\.0\.0\.1:$HA source=- state=down .*reason=\"refused\"" "A down, refused"
[ "$(count 'status=deferred' "$L")" -eq 0 ] && [ "$(count 'status=bounced' "$L")" -eq 0 ] ||
  fail "A stopped: $(count 'status=deferred' "$L") deferred, $(count 'status=bounced' "$L") bounced"
[ "$(grep -c "proxy=127\.0\.0\.1:$HA, conn_use=.*status=sent" "$L")" -le 110 ] || fail "sent through the dead proxy?"
ok "one HAProxy stopped: 100 more delivered through the other, none deferred or bounced"

# ---- 3. both stopped, then started ----------------------------------------------------------
untier b
wait_until 10 eval "grep -q 'server=127\.0\.0\.1:$HB source=- state=down' '$L'" || fail "B not seen down"
sent=$(count 'status=' "$L")
blast 20 example.net
sleep 3
[ "$(dumped px)" -eq 210 ] || fail "both stopped: $(dumped px) at the sink"
[ "$(count 'status=' "$L")" -eq "$sent" ] || fail "both stopped: delivery attempts were logged"
expect_match "$(cat "$L")" 'event=source_wait site=hub/\[127\.0\.0\.1\]:[0-9]+\|127\.0\.0\.[23] ' "source_wait logged"
tier a "$HA" "$PX"
tier b "$HB" "$PX"
wait_until 30 eval '[ "$(dumped px)" -ge 230 ]' || fail "restarted: $(dumped px) of 230"
[ "$(count 'status=deferred' "$L")" -eq 0 ] && [ "$(count 'status=bounced' "$L")" -eq 0 ] ||
  fail "both stopped: $(count 'status=deferred' "$L") deferred, $(count 'status=bounced' "$L") bounced"
for hp in "$HA" "$HB"; do   # brought back by the server probes (connect, LOCAL header, close)
  wait_until 10 grep -q "server=127\.0\.0\.1:$hp source=- state=up .* by=probe" "$L" ||
    fail "server $hp not brought up by its probes"
done
nwait=$(count 'event=source_wait' "$L")
rr_stop
ok "both stopped: 20 held without an attempt ($nwait source_wait lines), all delivered once the tier was back"
: > "$L"

# ---- 4. v1, probes, a HAProxy that rejects one source ---------------------------------------
untier a
tier a "$HA" "$PX" 'tcp-request session reject if { src 127.0.0.3 }'
before=$(dumped px)
relay_config 1 "[127.0.0.1]:$PD"
rr_start
wait_until 10 eval "grep -q 'server=127\.0\.0\.1:$HA source=127\.0\.0\.3 state=down' '$L'" || fail "pair (A, 127.0.0.3) not found down"
sent_before=$(grep -c 'status=sent' "$L")
blast 100 example.net
blast 10 six.test
wait_until 30 eval '[ "$(dumped px)" -ge $((before + 110)) ]' || fail "v1: $(( $(dumped px) - before )) of 110"
# the sink stores a message before the relay has its 250 and logs it: wait for the lines
wait_until 10 eval '[ "$(grep -c status=sent "$L")" -ge $((sent_before + 110)) ]' || fail "v1: sent lines missing"
[ "$(grep -c 'state=down' "$L")" -eq 1 ] || { grep 'state=down' "$L" >&2; fail "v1: more than the one pair went down"; }
[ "$(grep -c "source=127\.0\.0\.3 proxy=127\.0\.0\.1:$HA, .*status=sent" "$L")" -eq 0 ] ||
  fail "v1: 127.0.0.3's mail went through the HAProxy that rejects it"
[ "$(grep -c "source=127\.0\.0\.3 proxy=127\.0\.0\.1:$HB, .*status=sent" "$L")" -ge 30 ] ||
  fail "v1: 127.0.0.3's mail did not leave through the other HAProxy"
[ "$(grep -c "source=127\.0\.0\.2 proxy=127\.0\.0\.1:$HA, .*status=sent" "$L")" -ge 1 ] ||
  fail "v1: 127.0.0.2 stopped using the HAProxy that only rejects 127.0.0.3"
grep -q "source=2001:db8::6 proxy=" "$L" || fail "v1: IPv6 source"
[ "$(count 'status=bounced' "$L")" -eq 0 ] || fail "v1: bounces"
ok "v1 + probe: only (A, 127.0.0.3) down; 127.0.0.3's mail left by B; IPv6 source through v1"

# ---- 5. a reload rebuilds the pool: B taken out, A's rejected pair keeps its state ------------
sed -i "s/servers: \[\"127\.0\.0\.1:$HA\", \"127\.0\.0\.1:$HB\"\]/servers: [\"127.0.0.1:$HA\"]/" "$T/ringrelay.yaml"
grep -q "servers: \[\"127.0.0.1:$HA\"\]" "$T/ringrelay.yaml" || fail "reload: config not edited"
mark=$(wc -l < "$L")
kill -HUP "$RR_PID"
wait_until 10 eval "grep -q 'event=reloaded' '$L'" || fail "no reload"
sleep 0.3
before=$(dumped px)
blast 40 example.net
# 127.0.0.2's mail goes through A; 127.0.0.3 has no server left (A rejects it): it moves
# to 127.0.0.2 (source_failover), nothing through B, nothing bounced
wait_until 30 eval '[ "$(dumped px)" -ge $((before + 40)) ]' || fail "reload: $(( $(dumped px) - before )) of 40"
new=$(tail -n +$((mark + 1)) "$L")
[ "$(grep -c "proxy=127\.0\.0\.1:$HB, .*status=sent" <<< "$new")" -eq 0 ] || fail "reload: mail through the server taken out"
[ "$(grep -c "source=127\.0\.0\.3 proxy=.*status=sent" <<< "$new")" -eq 0 ] || fail "reload: 127.0.0.3 had no server left"
[ "$(grep -c "source=127\.0\.0\.2 proxy=127\.0\.0\.1:$HA, .*status=sent" <<< "$new")" -eq 40 ] || fail "reload: want all 40 from 127.0.0.2 via A"
grep -q "server=127\.0\.0\.1:$HA source=127\.0\.0\.3 state=down" <<< "$new" || fail "reload: the pair's state was not kept"
[ "$(count 'status=bounced' "$L")" -eq 0 ] && [ "$(count 'status=deferred' "$L")" -eq 0 ] || fail "reload: bounced or deferred"
rr_stop
ok "reload: pool rebuilt with A only; the (A, 127.0.0.3) pair stayed down; all 40 left from 127.0.0.2 via A"
untier a
untier b
