#!/usr/bin/env bash
# Accept rate, side by side in one run: Postfix's smtp-source (a neutral client) against
#   1. ringrelay (release build, spool.sync on: every 250 is covered by an fdatasync)
#   2. a private Postfix instance (default durability) relaying into smtp-sink
# Prints one line per peer and the ratio. Everything on 127.0.0.1; bounded by timeouts.
#   bench/accept-compare.sh [SESSIONS MESSAGES BYTES]     (default 50 20000 4096)
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-50} M=${2:-20000} L=${3:-4096}
W=$(mktemp -d /tmp/rrbench.XXXXXX); chmod 755 "$W"
RR=./build/ringrelay
[ -x "$RR" ] || { echo "build first: make" >&2; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
pids=()
cleanup() {
  bench/peers/postfix.sh stop "$W/pf" >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# 1. ringrelay
cat > "$W/rr.yaml" <<YAML
spool: { path: $W/spool, sync: true }
listeners: [ { id: mta, address: 127.0.0.1, port: 0 } ]
YAML
"$RR" -c "$W/rr.yaml" 2> "$W/rr.log" & pids+=($!)
for i in $(seq 1 100); do grep -q event=ready "$W/rr.log" && break; sleep 0.05; done
rrport=$(sed -nE 's/.*event=listen id=mta addr=127\.0\.0\.1:([0-9]+).*/\1/p' "$W/rr.log")
rr=$(bench/accept-rate.sh ringrelay 127.0.0.1:$rrport "$S" "$M" "$L")
echo "$rr"
kill -TERM "${pids[0]}"; wait "${pids[0]}" || true
commits=$(grep -o 'commits=[0-9]*' "$W/rr.log" | cut -d= -f2 | awk "{s+=\$1} END {print s}")
echo "ringrelay fdatasync commits=$commits for $M messages"

# 2. Postfix relaying into smtp-sink
sinkport=$(free_port); pfport=$(free_port)
smtp-sink -u postfix -c 127.0.0.1:$sinkport 1000 > "$W/sink.out" 2>&1 & pids+=($!)
bench/peers/postfix.sh start "$W/pf" "$pfport" "$sinkport" >/dev/null
pf=$(bench/accept-rate.sh postfix 127.0.0.1:$pfport "$S" "$M" "$L")
echo "$pf"

r1=$(sed -nE 's/.*rate=([0-9.]+).*/\1/p' <<<"$rr")
r2=$(sed -nE 's/.*rate=([0-9.]+).*/\1/p' <<<"$pf")
awk -v a="$r1" -v b="$r2" 'BEGIN { printf "ratio ringrelay/postfix = %.1fx\n", a / b }'
