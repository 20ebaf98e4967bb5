#!/usr/bin/env bash
# A backlog of a million recipients for a next hop that is down, then brought up (issue 8).
#
#   bash bench/backlog.sh [OUT_MD [OUT_JSON]]     (run by bench/run.sh; runnable alone, as root)
#
#  1. ringrelay (release build, workers 1, spool.sync true, on CPU 0) with one route "*" to a
#     transport whose next hop is [127.0.0.1]:DOWN, a port where nothing listens, and
#     queue.retry_schedule [BACKLOG_RETRY] (default 60 s, the first interval of the relay's
#     default schedule, repeated: so that the backlog comes due within the run).
#  2. ringblast (CPU 1) sends BACKLOG_MSGS messages of BACKLOG_RCPTS recipients each
#     (default 100,000 x 10 = 1,000,000 recipients, BACKLOG_SIZE octets, 1 KiB); the relay
#     tries the hop, finds it dead, defers. When its log has stood still for 2 s (every
#     deferral logged), the peak: VmHWM and VmRSS from /proc, minus VmRSS of the idle relay
#     just after it started, per queued recipient.
#  3. SIGTERM, then start again (restart 1): the scan time is the time from the launch to
#     the stamp of its event=spool_scan line (the relay logs no timing of its own; the
#     scan is the first thing it does after reading its config and locking the spool), and
#     to event=ready; then VmRSS with the queue rebuilt from the spool (bodies on disk).
#  4. SIGTERM again; wait (bounded) until every recipient's next try has passed; start a
#     ringsink on port DOWN (CPU 1) and the relay (restart 2, everything overdue): the
#     drain rate is recipients counted at the sink per second, from the first arrival to
#     the last (and from the relay's launch), asked every 0.1 s (bench/lib/sinkwait.py).
#     Bounded by BACKLOG_DRAIN_TIMEOUT (300 s).
#  5. Stop everything, delete the spool (its size is reported first).
#
# Writes a markdown section to OUT_MD (default stdout) and the numbers as JSON to OUT_JSON
# (for bench/lib/table.py --goals). Everything on 127.0.0.1; every wait is bounded.
# Environment: BACKLOG_MSGS (100000), BACKLOG_RCPTS (10), BACKLOG_SIZE (1024), BACKLOG_CONNS
# (50), BACKLOG_RETRY (60), BACKLOG_LOAD_TIMEOUT (600), BACKLOG_DRAIN_TIMEOUT (300),
# BENCH_TMP (/var/tmp), BACKLOG_LOGS (a directory: keep the relay's start/stop lines, the
# first 200 lines of the drain's log, the config and the raw numbers there).
set -euo pipefail

cd "$(dirname "$0")/.."
RR_ROOT=$(pwd -P)
export RR_ROOT
# shellcheck source=bench/lib/servers.sh
. "$RR_ROOT/bench/lib/servers.sh"

MSGS=${BACKLOG_MSGS:-100000}
RCPTS=${BACKLOG_RCPTS:-10}
SIZE=${BACKLOG_SIZE:-1024}
CONNS=${BACKLOG_CONNS:-50}
RETRY=${BACKLOG_RETRY:-60}
LOAD_TIMEOUT=${BACKLOG_LOAD_TIMEOUT:-600}
DRAIN_TIMEOUT=${BACKLOG_DRAIN_TIMEOUT:-300}
OUT_MD=${1:-/dev/stdout}
OUT_JSON=${2:-}
SRV_CPU=0 CLI_CPU=1
TOTAL=$((MSGS * RCPTS))
export BS_WAIT=180   # a start that scans a million recipients may take longer than the default

die() { echo "bench/backlog.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (ulimit -n, the benchmark lock in /run)"
for b in build/ringrelay build/ringblast build/ringsink; do
  [ -x "$b" ] || die "$b missing: run make"
done
(( $(nproc) >= 2 )) || die "needs 2 CPUs; nproc=$(nproc)"
(( RETRY >= 10 )) || die "BACKLOG_RETRY must be at least 10 s"
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bs_lock || exit 1

W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/ringrelay-backlog.XXXXXX")
chmod 755 "$W"
# Disk: the spool (records of SIZE + headers, and an outcome note per recipient and
# attempt) and the log (a line per recipient and attempt), with a wide margin.
need_kb=$(( (MSGS * (SIZE + 1024 + RCPTS * 200) + TOTAL * 600) / 1024 * 2 ))
free_kb=$(df -Pk "$W" | awk 'NR == 2 { print $4 }')
(( free_kb > need_kb )) || { rm -rf "$W"; die "needs about $((need_kb / 1024)) MiB free in $W, has $((free_kb / 1024))"; }

cleanup() {
  local rc=$?
  bs_stop_all
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# stamp_of EVENT LOG: the relay's stamp (2026-12-02T02:40:01.356Z) of the first EVENT line,
# as seconds since the epoch
stamp_of() {
  python3 -c '
import re, sys, datetime
for line in open(sys.argv[2], errors="replace"):
    if "event=" + sys.argv[1] + " " in line or line.rstrip().endswith("event=" + sys.argv[1]):
        t = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
        print("%.3f" % t.replace(tzinfo=datetime.timezone.utc).timestamp()); break' "$1" "$2"
}
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
# wait (bounded by $2 s) until file $1 has not grown for $3 s
wait_quiet() {
  local f=$1 deadline=$((SECONDS + $2)) still=$3 last=-1 size since=$SECONDS
  while (( SECONDS < deadline )); do
    size=$(stat -c %s "$f")
    if [ "$size" != "$last" ]; then last=$size since=$SECONDS; fi
    (( SECONDS - since >= still )) && return 0
    sleep 0.5
  done
  return 1
}

D=$W/rr
DOWN=$(bs_free_port)
EXTRA="queue: { retry_schedule: [$RETRY] }"
NOTES=''
bs_log "backlog: $MSGS messages x $RCPTS recipients ($SIZE octets) for [127.0.0.1]:$DOWN (down)"

# ---- 1. start, idle baseline -------------------------------------------------------------
bs_start ringrelay "$SRV_CPU" "$D" "$DOWN" "$EXTRA" || die "ringrelay did not start"
sleep 1
BASE_KB=$(rss_kb "$SRV_PID" VmRSS)

# ---- 2. the load ---------------------------------------------------------------------------
t_load0=$(now)
taskset -c "$CLI_CPU" timeout $((LOAD_TIMEOUT + 30)) build/ringblast -s "127.0.0.1:$SRV_PORT" \
  -c "$CONNS" -n "$MSGS" -r "$RCPTS" -l "$SIZE" -t "$LOAD_TIMEOUT" --json \
  >"$W/blast.json" 2>"$W/blast.err" || NOTES+="ringblast exit $?; "
t_load1=$(now)
read -r ACCEPTED ACC_RATE < <(python3 -c '
import json, sys
try: j = json.load(open(sys.argv[1]))
except Exception: j = {}
print(j.get("messages", 0), j.get("messages_per_s", 0))' "$W/blast.json")
QUEUED=$((ACCEPTED * RCPTS))
wait_quiet "$D/ringrelay.log" 300 2 || NOTES+="the relay's log still grew 300 s after the load; "
t_quiet=$(now)
HWM_KB=$(rss_kb "$SRV_PID" VmHWM)
RSS_KB=$(rss_kb "$SRV_PID" VmRSS)
DEFERRED_LINES=$(grep -c 'status=deferred' "$D/ringrelay.log" || true)
LOAD_LOG_MB=$(( $(stat -c %s "$D/ringrelay.log") / 1048576 ))
grep -m 3 -E 'event=site_dead|status=deferred' "$D/ringrelay.log" >"$W/load-excerpt.log" || true
bs_log "backlog: $ACCEPTED messages accepted ($ACC_RATE/s), $DEFERRED_LINES deferral lines; VmHWM ${HWM_KB} kB, VmRSS ${RSS_KB} kB (idle: ${BASE_KB} kB)"

# ---- 3. SIGTERM, restart 1 -------------------------------------------------------------------
t_stop0=$(now)
bs_stop
STOP_S=$(fsub "$(now)" "$t_stop0")
: >"$D/ringrelay.log"     # hundreds of MB of deferral lines; counted above
SPOOL_MB=$(du -sm "$D/spool" | awk '{ print $1 }')

restart() {  # restart TAG: start again; sets R_LAUNCH, R_SCAN, R_READY (s), R_REBUILT
  local tag=$1 ts tr
  R_LAUNCH=$(now)
  bs_start ringrelay "$SRV_CPU" "$D" "$DOWN" "$EXTRA" || die "ringrelay did not start again ($tag)"
  cp "$D/ringrelay.log" "$W/$tag.log"
  ts=$(stamp_of spool_scan "$W/$tag.log")
  tr=$(stamp_of ready "$W/$tag.log")
  R_SCAN=$(fsub "$ts" "$R_LAUNCH")
  R_READY=$(fsub "$tr" "$R_LAUNCH")
  R_REBUILT=$(grep -m1 -o 'event=queue_rebuilt .*' "$W/$tag.log" || true)
}
restart r1
r1_SCAN=$R_SCAN r1_READY=$R_READY r1_REBUILT=$R_REBUILT
sleep 2
R1_RSS_KB=$(rss_kb "$SRV_PID" VmRSS)
R1_HWM_KB=$(rss_kb "$SRV_PID" VmHWM)
# the earliest next try: the first deferral + 0.9 x RETRY (jitter); restart 1 must be over by
# then, or some recipients are tried (and deferred again) before the drain
if awk -v a="$(now)" -v b="$t_load0" -v r="$RETRY" 'BEGIN { exit !(a > b + 0.9 * r) }'; then
  NOTES+="restart 1 ran past the earliest next try (BACKLOG_RETRY=$RETRY too short for this load): some recipients were tried again while the hop was down; "
fi
bs_stop
t_r1_stop=$(now)
R1_DEFERRED=$(grep -c 'status=deferred' "$D/ringrelay.log" || true)
SCAN_MSGS=$(sed -nE 's/.*messages=([0-9]+).*/\1/p' <<<"$r1_REBUILT")
SCAN_OPEN=$(sed -nE 's/.*recipients_open=([0-9]+).*/\1/p' <<<"$r1_REBUILT")
bs_log "backlog: restart 1: scan ${r1_SCAN} s, ready ${r1_READY} s ($r1_REBUILT); VmRSS ${R1_RSS_KB} kB"

# ---- 4. wait for every next try, then the hop comes up, restart 2 ----------------------------
# (a recipient whose deferral note had not reached the spool is tried again at once by
# restart 1, and deferred again then: count from the end of restart 1)
due=$(awk -v q="$t_r1_stop" -v r="$RETRY" 'BEGIN { printf "%d", q + 1.1 * r + 2 }')
wait_s=$(( due - $(date +%s) ))
if (( wait_s > 0 )); then
  bs_log "backlog: waiting ${wait_s} s until every next try has passed"
  sleep "$wait_s"
fi
bs_sink_start "$CLI_CPU" "$W/sink" "$DOWN" || die "ringsink did not start on $DOWN"
restart r2
r2_LAUNCH=$R_LAUNCH r2_SCAN=$R_SCAN r2_READY=$R_READY
taskset -c "$CLI_CPU" python3 bench/lib/sinkwait.py "$SINK_PID" "$SINK_DIR/sink.err" recipients \
  "$QUEUED" "$DRAIN_TIMEOUT" 0.1 >"$W/drain.json" || true
c1=$(python3 bench/lib/procstat.py cpu "$SRV_PID")
R2_HWM_KB=$(rss_kb "$SRV_PID" VmHWM)
sleep 1
bs_stop
bs_sink_stop
DELIVERED_LINE=$(sed -nE 's/.*event=worker_down .* (delivered=[0-9]+ deferred=[0-9]+ bounced=[0-9]+).*/\1/p' "$D/ringrelay.log" | head -n 1)
if [ -n "${BACKLOG_LOGS:-}" ]; then   # what is worth keeping of the logs (not 1M lines)
  mkdir -p "$BACKLOG_LOGS"
  cp "$W/load-excerpt.log" "$W/r1.log" "$W/blast.json" "$W/drain.json" "$BACKLOG_LOGS/" 2>/dev/null || true
  grep -vE 'status=|event=spool_copy ' "$D/ringrelay.log" >"$BACKLOG_LOGS/r2-events.log" || true
  echo "$(grep -c 'event=spool_copy ' "$D/ringrelay.log" || true) event=spool_copy lines left out" >>"$BACKLOG_LOGS/r2-events.log"
  head -n 200 "$D/ringrelay.log" >"$BACKLOG_LOGS/r2-head.log" || true
  cp "$D/ringrelay.yaml" "$BACKLOG_LOGS/" 2>/dev/null || true
fi
SINK_MSGS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1] or "{}").get("messages", 0))' "${SINK_FINAL:-}")
bs_log "backlog: drain done ($DELIVERED_LINE)"

# ---- 5. results ------------------------------------------------------------------------------
python3 - "$W/drain.json" "$OUT_JSON" <<PY >"$OUT_MD"
import json, sys
d = json.load(open(sys.argv[1])) if open(sys.argv[1]).read().strip() else {}
queued, base, hwm, rss = $QUEUED, $BASE_KB, $HWM_KB, $RSS_KB
r1rss, r1hwm, r2hwm = $R1_RSS_KB, $R1_HWM_KB, $R2_HWM_KB
launch = $r2_LAUNCH
count, tf, td = d.get("count", 0), d.get("t_first"), d.get("t_done")
drain = (count / (td - tf)) if td and tf and td > tf else None
drain_launch = (count / (td - launch)) if td else None
cpu = $c1
res = {
    "messages": $MSGS, "rcpts_per_msg": $RCPTS, "size": $SIZE, "accepted": $ACCEPTED,
    "accept_rate": float("$ACC_RATE" or 0), "recipients_queued": queued,
    "load_s": round($t_load1 - $t_load0, 3), "deferred_by_s": round($t_quiet - $t_load0, 3),
    "deferral_lines": $DEFERRED_LINES, "load_log_mb": $LOAD_LOG_MB,
    "idle_rss_kb": base, "peak_hwm_kb": hwm, "peak_rss_kb": rss,
    "bytes_per_rcpt_peak": (hwm - base) * 1024 / queued if queued else None,
    "stop_s": $STOP_S, "spool_mb": $SPOOL_MB,
    "scan_s": $r1_SCAN, "ready_s": $r1_READY,
    "scan_messages": int("${SCAN_MSGS:-0}"), "scan_recipients_open": int("${SCAN_OPEN:-0}"),
    "restart_deferral_lines": $R1_DEFERRED,
    "restart_rss_kb": r1rss, "restart_hwm_kb": r1hwm,
    "bytes_per_rcpt_restart": (r1rss - base) * 1024 / queued if queued else None,
    "scan2_s": $r2_SCAN, "ready2_s": $r2_READY,
    "drained": count, "drain_first_s": round(tf - launch, 3) if tf else None,
    "drain_done_s": round(td - launch, 3) if td else None,
    "drain_rate": drain, "drain_rate_from_launch": drain_launch,
    "drain_cpu_s": round(cpu, 2), "drain_hwm_kb": r2hwm,
    "sink_messages": $SINK_MSGS, "relay_counts": "$DELIVERED_LINE",
    "retry_s": $RETRY, "notes": "${NOTES%; }",
}
if sys.argv[2]:
    json.dump(res, open(sys.argv[2], "w"), indent=1)
def f(v, fmt="{:,.0f}"):
    return "—" if v is None else fmt.format(v)
print("| step | seen |")
print("|---|---|")
print(f"| load | {res['accepted']:,} messages × {res['rcpts_per_msg']} recipients × {res['size']} octets accepted in {res['load_s']:.1f} s ({res['accept_rate']:,.0f} msgs/s, {res['accept_rate'] * res['rcpts_per_msg']:,.0f} recipients/s), all deferred {res['deferred_by_s']:.1f} s after the start ({res['deferral_lines']:,} status=deferred lines, {res['load_log_mb']} MB of log) |")
print(f"| memory at the peak | VmHWM {hwm / 1024:.1f} MiB, VmRSS {rss / 1024:.1f} MiB after the load; idle {base / 1024:.1f} MiB: **{f(res['bytes_per_rcpt_peak'])} B per queued recipient** ((VmHWM − idle) / {queued:,}) |")
print(f"| stop (SIGTERM) | {res['stop_s']:.2f} s; spool {res['spool_mb']:,} MB |")
print(f"| restart scan | **{res['scan_s']:.2f} s** from the launch to event=spool_scan (event=ready at {res['ready_s']:.2f} s): {res['scan_messages']:,} messages, {res['scan_recipients_open']:,} open recipients; this run then logged {res['restart_deferral_lines']:,} deferrals (recipients whose note had not reached the spool by the stop, tried again at once) |")
print(f"| memory after the restart | VmRSS {r1rss / 1024:.1f} MiB (VmHWM {r1hwm / 1024:.1f}): {f(res['bytes_per_rcpt_restart'])} B per queued recipient (bodies on disk, not in memory) |")
print(f"| drain (hop up, restart 2) | scan {res['scan2_s']:.2f} s, ready {res['ready2_s']:.2f} s; first recipient at the sink {f(res['drain_first_s'], '{:.2f}')} s after the launch, {count:,} of {queued:,} by {f(res['drain_done_s'], '{:.2f}')} s: **{f(drain)} recipients/s** from the first to the last ({f(drain_launch)}/s from the launch); {res['sink_messages']:,} messages at the sink; relay CPU {res['drain_cpu_s']} s (scan included), VmHWM {r2hwm / 1024:.1f} MiB; relay: {res['relay_counts']} |")
if res["notes"]:
    print(f"| notes | {res['notes']} |")
print()
print(f"queue.retry_schedule was [{res['retry_s']}] (one short interval, so that the backlog comes due within the run); the relay ran with workers 1 on CPU 0, ringblast and the sink on CPU 1. Memory from /proc/PID/status; per recipient = (VmHWM at the peak, or VmRSS after the restart, − VmRSS of the idle relay) / recipients queued.")
PY
bs_log "backlog: done"
