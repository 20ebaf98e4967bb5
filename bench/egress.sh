#!/usr/bin/env bash
# Issue 9: end-to-end delivery direct against through one HAProxy tier, same run; and the
# time from a proxy's death to the relay's taking it out.
#
#   bash bench/egress.sh [BUILD_DIR]      (default build: the release binaries)
#
#  1. ringsink twice on loopback: one plain (direct delivery), one --proxy behind a private
#     HAProxy (`bind ... accept-proxy`, `server ... send-proxy-v2`).
#  2. For each mode (direct: a transport to the plain sink with source 127.0.0.2 bound
#     locally; tier: the same source through a pool of that HAProxy): a fresh relay
#     (workers 2, spool.sync true), ringblast sends EGRESS_MSGS messages of 1 KiB over 20
#     connections; the rate is messages counted at the sink per second, from ringblast's
#     start to the last one (asked every 0.1 s with SIGUSR1).
#  3. Death: a pool of two HAProxy (interval 1 s, failure_threshold 3), the same load; one
#     HAProxy is killed a second in; from the kill to its `state=down` line, and to the last
#     delivery line that names it (the last message through it); deferred and bounced
#     lines counted (0 expected).
# Prints a markdown table. Everything on 127.0.0.1; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
N=${EGRESS_MSGS:-20000}
for b in ringrelay ringblast ringsink; do [ -x "$B/$b" ] || { echo "bench/egress.sh: $B/$b missing" >&2; exit 1; }; done
command -v haproxy > /dev/null || { echo "bench/egress.sh: haproxy missing" >&2; exit 1; }
T=$(mktemp -d "${BENCH_TMP:-/var/tmp}/rregress.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
[ -n "${EGRESS_KEEP:-}" ] && trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; echo "kept $T" >&2' EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s.%N; }

sink() {  # sink NAME [ARGS]: sets SP, SPID
  "$B/ringsink" -l 127.0.0.1:0 "${@:2}" 2> "$T/$1.log" &
  SPID=$!; PIDS+=("$SPID")
  for _ in $(seq 100); do
    SP=$(sed -nE '1s/^ringsink: listening on 127\.0\.0\.1:([0-9]+)$/\1/p' "$T/$1.log" 2>/dev/null || true)
    [ -n "$SP" ] && return 0; sleep 0.05
  done
  exit 1
}
sink_count() {  # sink_count NAME PID: messages so far
  local n; n=$(grep -c '^ringsink: connections=' "$T/$1.log" || true)
  kill -USR1 "$2"
  for _ in $(seq 50); do
    [ "$(grep -c '^ringsink: connections=' "$T/$1.log" || true)" -gt "$n" ] && break; sleep 0.02
  done
  sed -nE 's/^ringsink: connections=[0-9]+ messages=([0-9]+) .*/\1/p' "$T/$1.log" | tail -1
}
hap() {  # hap NAME PORT SINKPORT: sets HPID
  printf 'global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nfrontend fe\n  bind 127.0.0.1:%s accept-proxy\n  default_backend be\nbackend be\n  server s 127.0.0.1:%s send-proxy-v2\n' "$2" "$3" > "$T/$1.cfg"
  haproxy -f "$T/$1.cfg" -db > "$T/$1.out" 2>&1 &
  HPID=$!; PIDS+=("$HPID")
  sleep 0.3
}
relay() {  # relay CONFIG_TAIL...: starts a relay, sets RP, RPORT
  rm -rf "$T/spool"
  { printf 'hostname: relay.bench\nworkers: 2\nspool: { path: %s/spool, sync: true }\n' "$T"
    printf 'listeners: [ { id: mta, address: 127.0.0.1, port: 0 } ]\n'
    printf 'relay: { networks: [127.0.0.0/8] }\ndns: { servers: ["127.0.0.1:1"] }\n'
    printf 'routes: [ { domains: ["*"], transport: out } ]\n'
    printf '%s\n' "$@"; } > "$T/relay.yaml"
  : > "$T/relay.log"
  "$B/ringrelay" -c "$T/relay.yaml" 2>> "$T/relay.log" &
  RP=$!; PIDS+=("$RP")
  for _ in $(seq 100); do grep -q event=ready "$T/relay.log" && break; sleep 0.05; done
  RPORT=$(sed -nE 's/.*event=listen id=mta addr=127\.0\.0\.1:([0-9]+).*/\1/p' "$T/relay.log" | head -1)
}
run_load() {  # run_load SINKNAME SINKPID: prints seconds until N more arrived
  local base t0 n
  base=$(sink_count "$1" "$2")
  t0=$(now)
  "$B/ringblast" -s "127.0.0.1:$RPORT" -c 20 -n "$N" -l 1k -t 120 > "$T/blast.out" 2>&1 &
  for _ in $(seq 1200); do
    n=$(sink_count "$1" "$2")
    [ "$((n - base))" -ge "$N" ] && break
    sleep 0.1
  done
  wait $! || true
  echo "$(now) - $t0" | bc -l
}
stop_relay() { kill -TERM "$RP"; wait "$RP" 2>/dev/null || true; }
iso() { date -d "$1" +%s.%N; }

sink plain; PPLAIN=$SP; PIDPLAIN=$SPID
sink prox --proxy; PPROX=$SP; PIDPROX=$SPID
HA=$(port); hap a "$HA" "$PPROX"; HAPA=$HPID
HB=$(port); hap b "$HB" "$PPROX"; HAPB=$HPID

relay "transports: [ { id: out, nexthop: \"[127.0.0.1]:$PPLAIN\", max_connections: 20, source: { ipv4: 127.0.0.2 } } ]"
t_direct=$(run_load plain "$PIDPLAIN"); stop_relay
relay "transports: [ { id: out, nexthop: \"[127.0.0.1]:$PPLAIN\", max_connections: 20, proxy_pool: tier, source: { ipv4: 127.0.0.2 } } ]" \
      "proxy_pools: [ { id: tier, servers: [\"127.0.0.1:$HA\"] } ]"
t_tier=$(run_load prox "$PIDPROX"); stop_relay

relay "transports: [ { id: out, nexthop: \"[127.0.0.1]:$PPLAIN\", max_connections: 20, proxy_pool: tier, source: { ipv4: 127.0.0.2 } } ]" \
      "proxy_pools: [ { id: tier, servers: [\"127.0.0.1:$HA\", \"127.0.0.1:$HB\"], health_check: { interval: 1, timeout: 1, failure_threshold: 3, success_threshold: 3 } } ]"
( sleep 0.5; date +%s.%N > "$T/kill_at"; kill "$HAPA" ) &
t_death=$(run_load prox "$PIDPROX"); stop_relay
kill_at=$(cat "$T/kill_at")
down_line=$(grep -m1 "server=127\.0\.0\.1:$HA source=- state=down" "$T/relay.log" || true)
last_line=$(grep "proxy=127\.0\.0\.1:$HA, " "$T/relay.log" | tail -1 || true)
down_s=$( [ -n "$down_line" ] && echo "$(iso "${down_line%% *}") - $kill_at" | bc -l || echo nan)
last_s=$( [ -n "$last_line" ] && echo "$(iso "${last_line%% *}") - $kill_at" | bc -l || echo nan)
deferred=$(grep -c 'status=deferred' "$T/relay.log" || true)
bounced=$(grep -c 'status=bounced' "$T/relay.log" || true)
reason=$(sed -nE 's/.*reason="([^"]*)" by=([a-z]+).*/\1 (by \2)/p' <<< "$down_line")

printf '| %s messages of 1 KiB, 20 connections, workers 2, sync on | seconds | messages/s |\n|---|---|---|\n' "$N"
printf '| direct (source 127.0.0.2 bound locally) | %.2f | %.0f |\n' "$t_direct" "$(echo "$N / $t_direct" | bc -l)"
printf '| through one HAProxy (PROXY v2, send-proxy-v2 to the sink) | %.2f | %.0f |\n' "$t_tier" "$(echo "$N / $t_tier" | bc -l)"
printf '| two HAProxy, one killed 0.5 s in | %.2f | %.0f |\n\n' "$t_death" "$(echo "$N / $t_death" | bc -l)"
printf 'Killed proxy: state=down %.3f s after the kill (%s); last message through it %.3f s after the kill (it was in a connection opened before); %s deferred, %s bounced.\n' \
  "$down_s" "$reason" "$last_s" "$deferred" "$bounced"
