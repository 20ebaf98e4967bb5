#!/usr/bin/env bash
# Memory per idle connection: ringrelay, Postfix and Haraka each hold CONNS connections
# that have said EHLO and then sit idle.
#
#   bash bench/mem.sh [CONNS [POSTFIX_CONNS]]      (defaults 10000 500; must be root)
#
# Per server (pinned to CPU 0, started afresh, on 127.0.0.1): memory of its whole process
# tree from /proc (sum of VmRSS, sum of Pss from smaps_rollup, process count) once it is
# up and idle, then `ringblast --idle-hold` on CPU 1 opens the connections, says EHLO to
# each and holds them; when ringblast reports them all established and EHLO'd, 2 s later,
# the same figures again. Per connection = (after - before) / connections held. Kernel
# memory (socket buffers) is not in these figures.
# ringrelay: workers 1, limits.max_connections_per_ip raised to CONNS (all come from
# 127.0.0.1). Postfix runs one smtpd process per connection: its private instance gets
# default_process_limit POSTFIX_CONNS+100 (postconf -e, reload) and is measured with
# POSTFIX_CONNS connections: 500 come up in about 10 s here, while with 1,000 it stalled
# at about 650 smtpd processes after 180 s (10,000 is out of reach on 2 cores); its
# figure per connection is what each further smtpd costs. Haraka: nodes=1 (master + one
# worker), all CONNS connections.
# Prints a Markdown table on stdout, progress on stderr. Everything bounded in time.
# Environment: BENCH_TMP (/var/tmp), MEM_HOLD (seconds held, 20), MEM_PEERS
# ("ringrelay postfix haraka"), HARAKA_OK/HARAKA_WHY (from bench/run.sh; else checked here).
set -euo pipefail

cd "$(dirname "$0")/.."
RR_ROOT=$(pwd -P)
export RR_ROOT
CONNS=${1:-10000}
PF_CONNS=${2:-500}
HOLD=${MEM_HOLD:-20}
PEERS=${MEM_PEERS:-ringrelay postfix haraka}
PROCSTAT_PY=$RR_ROOT/bench/lib/procstat.py
procstat() { python3 "$PROCSTAT_PY" "$@"; }
# shellcheck source=bench/lib/servers.sh
. "$RR_ROOT/bench/lib/servers.sh"

[ "$(id -u)" -eq 0 ] || { echo "bench/mem.sh: must run as root" >&2; exit 1; }
if [ ! -x build/ringblast ] || [ ! -x build/ringrelay ]; then
  echo "bench/mem.sh: run make first" >&2; exit 1
fi
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > CONNS + 1000 )) || { echo "bench/mem.sh: ulimit -n $(ulimit -n) too low" >&2; exit 1; }

bs_lock || exit 1
W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/ringrelay-mem.XXXXXX")
chmod 755 "$W"
BLAST_PID=
cleanup() {
  local rc=$?
  [ -n "$BLAST_PID" ] && kill -TERM "$BLAST_PID" 2>/dev/null && bs_reap "$BLAST_PID" 10
  bs_stop_all
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${HARAKA_OK+x}" ]; then
  HARAKA_OK=
  if err=$(bench/peers/haraka.sh install 2>&1); then HARAKA_OK=1; else HARAKA_WHY=$(tail -n 1 <<<"$err"); fi
fi

established() {  # server-side established connections on port $1
  ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}

js() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

echo "| server | connections held | processes before → after | RSS before MiB | RSS after MiB | RSS per connection KiB | PSS per connection KiB | notes |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"

measure() {
  local peer=$1 n=$2 d=$W/$1 m0 m1 line held est notes=
  bs_log "mem: $peer, $n idle connections"
  if [ "$peer" = haraka ] && [ -z "$HARAKA_OK" ]; then
    echo "| Haraka | — | — | — | — | — | — | not installed: ${HARAKA_WHY:-?} |"
    return
  fi
  case "$peer" in
    ringrelay)
      bs_start ringrelay 0 "$d" "" "limits: { max_connections: $((n + 1000)), max_connections_per_ip: $((n + 1000)) }" ;;
    postfix|haraka)
      bs_sink_start 1 "$d/sink" && bs_start "$peer" 0 "$d" "$SINK_PORT" ;;
  esac || { echo "| $peer | — | — | — | — | — | — | failed to start |"; bs_stop_all; return; }
  if [ "$peer" = postfix ]; then
    postconf -c "$BS_PF_DIR/conf" -e "default_process_limit = $((n + 100))"
    postfix -c "$BS_PF_DIR/conf" reload >/dev/null 2>&1
    sleep 2
    notes="one smtpd process per connection; default_process_limit raised to $((n + 100)); "
  fi
  sleep 1
  m0=$(procstat mem "$SRV_PID")

  taskset -c 1 build/ringblast -s "127.0.0.1:$SRV_PORT" -c "$n" -n 0 --idle-hold "$HOLD" -t 180 \
    >"$d/blast.out" 2>"$d/blast.err" &
  BLAST_PID=$!
  local deadline=$((SECONDS + 200))
  line=
  while (( SECONDS < deadline )) && kill -0 "$BLAST_PID" 2>/dev/null; do
    line=$(grep -m1 'connections established, holding' "$d/blast.err" || true)
    [ -n "$line" ] && break
    sleep 0.2
  done
  if [ -z "$line" ]; then
    echo "| $peer | — | — | — | — | — | — | ringblast never held the connections: $(tail -n 1 "$d/blast.err" | cut -c1-100) |"
    kill -TERM "$BLAST_PID" 2>/dev/null || true
    bs_reap "$BLAST_PID" 10
    BLAST_PID=
    bs_stop_all
    return
  fi
  held=$(sed -nE 's/^ringblast: ([0-9]+) of.*/\1/p' <<<"$line")
  sleep 2
  m1=$(procstat mem "$SRV_PID")
  est=$(established "$SRV_PORT")
  bs_reap "$BLAST_PID" $((HOLD + 30))
  BLAST_PID=
  bs_stop
  bs_sink_stop
  (( held == n )) || notes+="only $held of $n held; "
  notes+="$est established at the server when measured"

  local names
  case "$peer" in
    ringrelay) names=ringrelay ;; postfix) names=Postfix ;; haraka) names="Haraka (nodes=1)" ;;
  esac
  python3 - "$names" "$held" "$m0" "$m1" "$notes" <<'PY'
import json, sys
name, held, m0, m1, notes = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
d_rss = (m1["rss_kb"] - m0["rss_kb"]) / held if held else 0
d_pss = (m1["pss_kb"] - m0["pss_kb"]) / held if held else 0
print(f"| {name} | {held:,} | {m0['procs']} → {m1['procs']} | {m0['rss_kb']/1024:.1f} | "
      f"{m1['rss_kb']/1024:.1f} | {d_rss:.1f} | {d_pss:.1f} | {notes} |")
PY
}

for p in $PEERS; do
  case "$p" in
    postfix) measure postfix "$PF_CONNS" ;;
    *) measure "$p" "$CONNS" ;;
  esac
done
echo
echo "RSS/PSS: sums over the server's process tree from /proc (VmRSS; Pss of smaps_rollup)," \
     "measured idle before and 2 s after ringblast --idle-hold reported every connection" \
     "established and EHLO'd; per connection = difference / connections held. For Postfix" \
     "the RSS sum counts shared pages once per smtpd, PSS shares them out: PSS is its real cost."
