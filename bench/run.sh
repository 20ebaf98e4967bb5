#!/usr/bin/env bash
# make bench: ringrelay side by side with the limit (ringsink), Postfix and Haraka, in one
# invocation, on one machine, everything on 127.0.0.1.
#
#   bash bench/run.sh          (what `make bench` runs after building; must be root)
#
# Scenarios, each run for both clients -- ringblast (pipelining, gives latency) and
# Postfix's smtp-source -d (a neutral client, no pipelining) -- at 4 KiB and 100 KiB,
# 50 connections; every server is started afresh for each row:
#   limit      ringblast/smtp-source straight into ringsink
#   haproxy    HAProxy in `mode tcp` (nbthread 1) forwarding to a ringsink: takes each
#              octet in and out once, no parsing, no disk -- the ceiling of any relay here
#   ringrelay  build/ringrelay, workers 1, spool.sync true, spool on the disk of
#              $BENCH_TMP, relaying everything (route "*") to [127.0.0.1]:SINKPORT, a
#              ringsink; its transport's limits raised (BS_RR_TRANSPORT in
#              bench/lib/servers.sh) so that they do not cap the run
#   postfix    private Postfix 3.7 (bench/peers/postfix.sh) relaying into a ringsink
#   haraka     Haraka (npm, bench/peers/haraka.sh: nodes=1, smtp_forward) into a ringsink
# The server (and all its processes) runs on CPU 0; the load generator, the downstream
# ringsink (of every server but the limit) and the samplers run on CPU 1. A relaying row
# ends when the sink has counted every accepted message (bounded by BENCH_RUN_TIMEOUT).
# Then bench/mem.sh (idle connections), bench/backlog.sh (a million queued recipients, the
# restart scan, the drain), a profile of the relay, and the issue's goals, met or not.
#
# Measured per row: msgs/s (ringblast's own figure; smtp-source: messages / its wall time),
# p99 (ringblast: end of DATA to 250), delivered/s (messages at the sink / time from the
# client's start until the last reached it: bench/lib/sinkwait.py asks the sink for its
# count every 0.02 s), CPU seconds of the server's process tree per
# 10,000 messages (utime+stime+cutime+cstime from /proc before and after, delivery included
# for Postfix), the share of CPU 0 that is (CPU seconds / wall seconds), peak RSS
# (one process: VmHWM; several: the largest sum of VmRSS over the tree, sampled every
# 0.2 s). Ratios compare msgs/s with the limit, Postfix and Haraka of the same client and
# size.
#
# Output: the tables on stdout and in $BENCH_OUT/results.md (default build/bench), the raw
# rows in $BENCH_OUT/rows.tsv, logs of each row under $BENCH_OUT/logs/.
# Environment (defaults): BENCH_N_4K (30000), BENCH_N_100K (10000), BENCH_CONNS (50),
# BENCH_RUN_TIMEOUT (300 s per client run and per delivery wait), BENCH_TMP (/var/tmp),
# BENCH_OUT (build/bench), BS_PF_DIR (Postfix's instance, $BENCH_TMP/ringrelay-bench-postfix),
# BENCH_MEM_CONNS (10000), BENCH_MEM_PF_CONNS (500),
# BENCH_SKIP_MEM=1, BENCH_SKIP_BACKLOG=1, BENCH_SKIP_PROFILE=1, BACKLOG_* (bench/backlog.sh),
# BENCH_PEERS ("limit haproxy ringrelay postfix haraka"),
# BENCH_RR_BEFORE (an earlier ringrelay binary: adds a "ringrelay (before)" row to every
# scenario, same run, same settings, for before/after figures).
set -euo pipefail

cd "$(dirname "$0")/.."
RR_ROOT=$(pwd -P)
export RR_ROOT
N_4K=${BENCH_N_4K:-30000}
N_100K=${BENCH_N_100K:-10000}
CONNS=${BENCH_CONNS:-50}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}
OUT=${BENCH_OUT:-build/bench}
PEERS=${BENCH_PEERS:-limit haproxy ringrelay${BENCH_RR_BEFORE:+ ringrelay-before} postfix haraka}
SRV_CPU=0 CLI_CPU=1
TMPBASE=${BENCH_TMP:-/var/tmp}
export BS_PF_DIR=${BS_PF_DIR:-$TMPBASE/ringrelay-bench-postfix}
PROCSTAT_PY=$RR_ROOT/bench/lib/procstat.py
procstat() { python3 "$PROCSTAT_PY" "$@"; }
# shellcheck source=bench/lib/servers.sh
. "$RR_ROOT/bench/lib/servers.sh"

die() { echo "bench/run.sh: $*" >&2; exit 1; }

# ---- preflight -------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (private Postfix, ulimit -n)"
for b in build/ringrelay build/ringblast build/ringsink; do
  [ -x "$b" ] || die "$b missing: run make"
done
command -v smtp-source >/dev/null || die "smtp-source missing (postfix package: scripts/install-deps.sh)"
command -v taskset >/dev/null || die "taskset missing (util-linux)"
(( $(nproc) >= 2 )) || die "needs 2 CPUs (server on CPU 0, load on CPU 1); nproc=$(nproc)"
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bs_lock || exit 1
bs_dirs bench

SAMPLER_PID='' CLIENT_PID='' SW_PID=''
cleanup() {
  local rc=$?
  [ -n "$SW_PID" ] && kill -TERM "$SW_PID" 2>/dev/null
  [ -n "$CLIENT_PID" ] && kill -TERM "$CLIENT_PID" 2>/dev/null && bs_reap "$CLIENT_PID" 10
  [ -n "$SAMPLER_PID" ] && kill -TERM "$SAMPLER_PID" 2>/dev/null
  bs_stop_all
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T_START=$SECONDS
DATE_UTC=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- machine -------------------------------------------------------------------------------
machine() {
  local dev
  dev=$(findmnt -no SOURCE -T "$W" | head -n 1)
  echo "- **Date:** $DATE_UTC"
  echo "- **CPU:** $(lscpu | sed -nE 's/^Model name: *//p' | head -n 1), nproc $(nproc)"
  echo "- **Memory:** $(free -g | awk '/^Mem:/ { print $2 }') GiB; load average at the start: $LOAD_START"
  echo "- **Kernel:** $(uname -r); **Debian** $(cat /etc/debian_version)"
  echo "- **Disk (spool, Postfix queue):** $dev $(findmnt -no FSTYPE -T "$W" | head -n 1)," \
       "$(lsblk -dno SIZE,ROTA,MODEL "$dev" 2>/dev/null | awk '{ printf "%s, %s", $1, ($2 == 1 ? "rotational" : "non-rotational"); $1 = $2 = ""; if ($0 ~ /[^ ]/) printf ",%s", $0 }')" \
       "(temp dir under $TMPBASE)"
  echo "- **Versions:** ringrelay $(build/ringrelay --version 2>&1 | head -n 1 | awk '{ print $NF }')" \
       "(release build, $(cc --version | head -n 1)); Postfix $(postconf -d -h mail_version 2>/dev/null);" \
       "Haraka $HARAKA_VERSION; node $(node --version 2>/dev/null || echo none)"
}

# ---- Haraka install ------------------------------------------------------------------------
# (also for bench/mem.sh; a no-op when bench/.peers already holds it)
HARAKA_OK='' HARAKA_WHY='' HARAKA_VERSION='not installed'
if err=$(bench/peers/haraka.sh install 2>&1); then
  HARAKA_OK=1
  HARAKA_VERSION=$(node -p 'require(process.argv[1]).version' "$RR_ROOT/bench/.peers/node_modules/Haraka/package.json" 2>/dev/null || echo '?')
else
  HARAKA_WHY=$(tail -n 1 <<<"$err" | sed 's/^haraka.sh: //')
  bs_log "Haraka not installed: $HARAKA_WHY"
fi

# ---- one row -------------------------------------------------------------------------------
ROWS=$OUT/rows.tsv
printf 'size\tclient\tpeer\tmsgs\taccepted\trate\tp99_ms\tdelivered\tdeliv_rate\tcpu_s\twall_s\trss_kb\trss_how\tpss_kb\tnotes\n' >"$ROWS"

row() {  # size client peer n accepted rate p99 delivered deliv_rate cpu wall rss how pss notes
  local IFS=$'\t'
  echo "$*" >>"$ROWS"
}

now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

run_row() {
  local size=$1 client=$2 peer=$3 n=$4 d rc=0 out err t0 t1 t2 c0 c1
  local accepted rate p99=- delivered=- deliv_rate=- rss how=VmHWM pss=- notes=
  d=$W/$peer-$client-$size
  mkdir -p "$d"
  chmod 755 "$d"
  bs_log "$peer / $client / $size octets / $n messages"
  if [ "$peer" = haraka ] && [ -z "$HARAKA_OK" ]; then
    row "$size" "$client" "$peer" "$n" - - - - - - - - - - "not installed: $HARAKA_WHY"
    return
  fi

  case "$peer" in
    limit|ringrelay-before) bs_start "$peer" "$SRV_CPU" "$d" ;;
    *) bs_sink_start "$CLI_CPU" "$d/sink" && bs_start "$peer" "$SRV_CPU" "$d" "$SINK_PORT" ;;
  esac || {
    bs_stop_all
    row "$size" "$client" "$peer" "$n" - - - - - - - - - - "failed to start"
    return
  }
  local multi=
  case "$peer" in postfix|haraka) multi=1 ;; esac
  if [ -n "$multi" ]; then
    taskset -c "$CLI_CPU" python3 "$PROCSTAT_PY" sample "$d/sample.json" 0.2 "$SRV_PID" &
    SAMPLER_PID=$!
  fi

  out=$d/client.out err=$d/client.err
  # Relays: the sink's count is asked for every 0.02 s from before the client starts, so
  # the time the last message arrived is known to 0.02 s however short the run.
  case "$peer" in
    ringrelay|postfix|haraka|haproxy)
      taskset -c "$CLI_CPU" python3 bench/lib/sinkwait.py "$SINK_PID" "$SINK_DIR/sink.err" \
        messages "$n" $((2 * RUN_TIMEOUT + 60)) 0.02 >"$d/sinkwait.json" &
      SW_PID=$!
      ;;
  esac
  c0=$(procstat cpu "$SRV_PID")
  t0=$(now)
  # In the background and waited for, so that a signal stops the bench at once.
  case "$client" in
    ringblast)
      taskset -c "$CLI_CPU" timeout $((RUN_TIMEOUT + 30)) build/ringblast -s "127.0.0.1:$SRV_PORT" \
        -c "$CONNS" -n "$n" -l "$size" -t "$RUN_TIMEOUT" --json >"$out" 2>"$err" &
      ;;
    smtp-source)
      taskset -c "$CLI_CPU" timeout "$RUN_TIMEOUT" smtp-source -s "$CONNS" -m "$n" -l "$size" -d \
        -f sender@example.com -t rcpt@example.net "127.0.0.1:$SRV_PORT" >"$out" 2>"$err" &
      ;;
  esac
  CLIENT_PID=$!
  wait "$CLIENT_PID" || rc=$?
  CLIENT_PID=
  t1=$(now)

  if [ "$client" = ringblast ]; then
    read -r accepted rate p99 errs < <(python3 -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    print("0 0 - -1"); sys.exit()
e = j.get("error_count", 0) + j.get("connection_errors", 0) + j.get("failed", 0)
print(j.get("messages", 0), j.get("messages_per_s", 0), j["latency_ms"]["p99"], e)' "$out")
    (( errs == 0 )) || notes+="ringblast exit $rc, errors: $errs ($(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
print(j.get("first_error") or j.get("first_connection_error") or "")' "$out" 2>/dev/null | tr '\t' ' ' | cut -c1-80)); "
  else
    accepted=$n
    rate=$(awk -v n="$n" -v s="$(fsub "$t1" "$t0")" 'BEGIN { printf "%.1f", n / s }')
    if (( rc != 0 )) || [ -s "$err" ]; then
      notes+="smtp-source exit $rc: $(head -n 1 "$err" | tr '\t' ' ' | cut -c1-80); "
    fi
  fi

  # Relays that deliver: wait (bounded) until the sink has every accepted message.
  t2=$t1
  case "$peer" in
    ringrelay|postfix|haraka|haproxy)
      if (( accepted < n )); then
        # fewer accepted than sent: wait for those only
        kill -TERM "$SW_PID" 2>/dev/null || true
        wait "$SW_PID" 2>/dev/null || true
        taskset -c "$CLI_CPU" python3 bench/lib/sinkwait.py "$SINK_PID" "$SINK_DIR/sink.err" \
          messages "$accepted" "$RUN_TIMEOUT" 0.02 >"$d/sinkwait.json" || true
      else
        wait "$SW_PID" 2>/dev/null || true   # bounded by its own timeout
      fi
      SW_PID=
      read -r delivered t2 < <(python3 -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    j = {}
print(j.get("count", 0), j.get("t_done") or j.get("t_end") or sys.argv[2])' "$d/sinkwait.json" "$(now)")
      deliv_rate=$(awk -v n="$delivered" -v s="$(fsub "$t2" "$t0")" 'BEGIN { printf "%.1f", n / s }')
      (( delivered >= accepted )) || notes+="only $delivered of $accepted delivered within ${RUN_TIMEOUT}s; "
      ;;
    ringrelay-before) notes+="accept-only; " ;;
  esac
  c1=$(procstat cpu "$SRV_PID")

  if [ -n "$multi" ]; then
    kill -TERM "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
    read -r rss pss < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); print(j["peak_rss_kb"], j["peak_pss_kb"])' "$d/sample.json")
    how="sum of VmRSS, sampled"
    notes+="$(procstat mem "$SRV_PID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["procs"])') processes at the end; "
  else
    rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SRV_PID/status")
  fi

  bs_stop
  bs_sink_stop
  if [ "$peer" = ringrelay ]; then
    local dl
    dl=$(sed -nE 's/.*event=worker_down .* delivered=([0-9]+) deferred=([0-9]+) bounced=([0-9]+).*/delivered=\1 deferred=\2 bounced=\3/p' "$d/ringrelay.log" | head -n 1)
    [ -n "$dl" ] && notes+="relay: $dl; "
  fi
  if [ "$peer" = ringrelay ] || [ "$peer" = ringrelay-before ]; then
    local commits
    commits=$(sed -nE 's/.*event=worker_down .*commits=([0-9]+).*/\1/p' "$d/ringrelay.log" | awk '{ s += $1 } END { print s + 0 }')
    local cavg
    cavg=$(sed -nE 's/.*event=worker_down .*commit_avg_us=([0-9]+).*/\1/p' "$d/ringrelay.log" | head -n 1)
    (( commits > 0 )) && notes+="$(awk -v a="$accepted" -v c="$commits" -v u="${cavg:-}" 'BEGIN { printf "%d fdatasyncs (%.1f msgs each%s); ", c, a / c, u == "" ? "" : sprintf(", %.2f ms each", u / 1000) }')"
  fi
  if [ "$peer" = limit ]; then
    delivered=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1] or "{}").get("messages", 0))' "${SINK_FINAL:-}")
    (( delivered == accepted )) || notes+="sink counted $delivered; "
    delivered=-
  fi

  row "$size" "$client" "$peer" "$n" "$accepted" "$rate" "$p99" "$delivered" "$deliv_rate" \
      "$(fsub "$c1" "$c0")" "$(fsub "$t2" "$t0")" "$rss" "$how" "$pss" "${notes%; }"
  # keep the logs, drop the spool and queue
  mkdir -p "$OUT/logs/${d##*/}"
  find "$d" -maxdepth 3 -type f \( -name '*.log' -o -name '*.err' -o -name '*.out' -o -name '*.json' -o -name '*.yaml' \) \
    -size -20M -exec cp {} "$OUT/logs/${d##*/}/" \; 2>/dev/null || true
  rm -rf "$d"
}

for spec in "4096 $N_4K" "102400 $N_100K"; do
  read -r size n <<<"$spec"
  for client in ringblast smtp-source; do
    for peer in $PEERS; do
      run_row "$size" "$client" "$peer" "$n"
    done
  done
done

# ---- memory --------------------------------------------------------------------------------
MEM_MD=$OUT/mem.md
if [ -z "${BENCH_SKIP_MEM:-}" ]; then
  bs_log "memory scenario (bench/mem.sh)"
  BENCH_TMP=$W HARAKA_OK=$HARAKA_OK HARAKA_WHY=$HARAKA_WHY \
    bash bench/mem.sh "${BENCH_MEM_CONNS:-10000}" "${BENCH_MEM_PF_CONNS:-500}" >"$MEM_MD" ||
    echo "bench/mem.sh failed (exit $?)" >>"$MEM_MD"
else
  echo "(skipped: BENCH_SKIP_MEM)" >"$MEM_MD"
fi

# ---- backlog -------------------------------------------------------------------------------
BACKLOG_MD=$OUT/backlog.md BACKLOG_JSON=$OUT/backlog.json
rm -f "$BACKLOG_JSON"
if [ -z "${BENCH_SKIP_BACKLOG:-}" ]; then
  bs_log "backlog scenario (bench/backlog.sh)"
  BENCH_TMP=$W BACKLOG_LOGS=$OUT/logs/backlog bash bench/backlog.sh "$BACKLOG_MD" "$BACKLOG_JSON" 2>"$OUT/logs/backlog.err" ||
    echo "bench/backlog.sh failed (exit $?): $(tail -n 1 "$OUT/logs/backlog.err")" >>"$BACKLOG_MD"
else
  echo "(skipped: BENCH_SKIP_BACKLOG)" >"$BACKLOG_MD"
fi

# ---- profile of the relay -------------------------------------------------------------------
PROF_MD=$OUT/profile.md
profile() {
  local d=$W/profile n_cg=2000 n_perf=$N_4K
  mkdir -p "$d"
  chmod 755 "$d"
  echo "\`perf stat -e instructions true\`: $(perf stat -e instructions true 2>&1 | grep -q 'not supported' && echo 'not supported here (no hardware counters in this VM)' || echo 'works')."
  echo
  # 1. callgrind: instructions executed in user space, per function (self cost).
  if command -v valgrind >/dev/null; then
    bs_log "profile: callgrind, $n_cg x 4 KiB"
    bs_sink_start "$CLI_CPU" "$d/cg-sink" || return 1
    cat >"$d/rr.yaml" <<YAML
workers: 1
spool: { path: $d/spool, sync: true }
listeners: [ { id: mta, address: 127.0.0.1, port: 0 } ]
dns: { servers: ["127.0.0.1:9"] }
transports: [ { id: sink, nexthop: "[127.0.0.1]:$SINK_PORT", $BS_RR_TRANSPORT } ]
routes: [ { domains: ["*"], transport: sink } ]
YAML
    taskset -c "$SRV_CPU" timeout 300 valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
      build/ringrelay -c "$d/rr.yaml" 2>"$d/cg.log" &
    local vpid=$! vgpid='' port='' deadline=$((SECONDS + 60))
    while (( SECONDS < deadline )) && kill -0 "$vpid" 2>/dev/null; do
      port=$(sed -nE 's/.*event=listen id=mta addr=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/cg.log" | head -n 1)
      # Not event=ready: under valgrind the main thread may not run again until the
      # worker's io_uring wait returns, i.e. until traffic arrives.
      [ -n "$port" ] && grep -q event=worker_up "$d/cg.log" && break
      sleep 0.2
    done
    if [ -n "$port" ]; then
      taskset -c "$CLI_CPU" timeout 300 build/ringblast -s "127.0.0.1:$port" -c "$CONNS" -n "$n_cg" -l 4096 \
        -t 240 --json >"$d/cg-blast.json" 2>&1 || true
      # and until the relay has delivered them (bounded)
      python3 bench/lib/sinkwait.py "$SINK_PID" "$SINK_DIR/sink.err" messages "$n_cg" 120 0.2 >/dev/null || true
      # Dump while it runs: under valgrind the relay's SIGTERM path is slow to be seen.
      vgpid=$(pgrep -P "$vpid" 2>/dev/null | head -n 1)
      timeout 60 callgrind_control -d "${vgpid:-$vpid}" >/dev/null 2>&1 || true
    fi
    kill -TERM "$vpid" 2>/dev/null || true
    local f; f=$(find "$d" -maxdepth 1 -name 'cg.out.*' | head -n 1)
    if [ -n "$f" ]; then
      echo "**callgrind** (\`valgrind --tool=callgrind\`, relay on CPU 0 relaying to a ringsink, ringblast $n_cg × 4 KiB, 50 connections, until all were delivered; user-space instructions, self cost, top 15):"
      echo
      echo '```'
      callgrind_annotate --auto=no --inclusive=no "$f" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -n 16 |
        sed -E 's# *\[[^]]*\] *$##; s#'"$RR_ROOT"'/##; s#^( *[0-9,]+ +\([ 0-9.%]+\) +)[^ :]*/#\1#'
      echo '```'
      echo
      echo "Inclusive (the function and all it calls), the relay's own functions, top 14:"
      echo
      echo '```'
      callgrind_annotate --auto=no --inclusive=yes "$f" 2>/dev/null |
        grep -E '^ *[0-9,]+ \([ 0-9.%]+\) +[^ ]+:[A-Za-z_]' | grep -F "$RR_ROOT/" |
        sed -E 's# *\[[^]]*\] *$##; s#'"$RR_ROOT"'/##' | awk '!seen[$NF]++' | head -n 14
      echo '```'
      echo
    else
      echo "callgrind: no profile written (see its log)."
    fi
    # timeout(1) under it bounds it; the relay under valgrind may not see SIGTERM soon.
    local k=0
    while kill -0 "$vpid" 2>/dev/null && (( k < 50 )); do sleep 0.1; k=$((k + 1)); done
    if kill -0 "$vpid" 2>/dev/null; then
      [ -n "$vgpid" ] && kill -KILL "$vgpid" 2>/dev/null
      kill -KILL "$vpid" 2>/dev/null || true
    fi
    wait "$vpid" 2>/dev/null || true
    bs_sink_stop
    rm -rf "$d/spool"
  else
    echo "callgrind: valgrind not installed (scripts/install-deps.sh --bench)."
  fi
  # 2. perf with the cpu-clock software event: where CPU 0's time goes, kernel included.
  if command -v perf >/dev/null && perf record -q -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; then
    bs_log "profile: perf cpu-clock, $n_perf x 4 KiB"
    bs_sink_start "$CLI_CPU" "$d/perf-sink" || return 1
    bs_start ringrelay "$SRV_CPU" "$d/perf" "$SINK_PORT" || { bs_sink_stop; return 1; }
    taskset -c "$CLI_CPU" timeout 120 perf record -q -e cpu-clock -F 1999 -g -p "$SRV_PID" \
      -o "$d/perf.data" >"$d/perf.err" 2>&1 &
    local ppid=$!
    sleep 0.5
    taskset -c "$CLI_CPU" timeout 300 build/ringblast -s "127.0.0.1:$SRV_PORT" -c "$CONNS" -n "$n_perf" \
      -l 4096 -t 240 --json >"$d/perf-blast.json" 2>&1 || true
    python3 bench/lib/sinkwait.py "$SINK_PID" "$SINK_DIR/sink.err" messages "$n_perf" 120 0.2 >/dev/null || true
    kill -INT "$ppid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
    bs_stop
    bs_sink_stop
    echo "**perf** (\`perf record -e cpu-clock -g\` on the relay relaying to a ringsink on CPU 1, ringblast $n_perf × 4 KiB, 50 connections, until all were delivered; samples of CPU 0's time, kernel included):"
    echo
    echo '```'
    echo "# by thread and object (iou-wrk-*: io_uring's worker threads, where the spool's"
    echo "# writes and fdatasyncs run)"
    perf report -i "$d/perf.data" --stdio --no-children --sort comm,dso -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | sed -E 's/iou-wrk-[0-9]+/iou-wrk/' | head -n 6
    echo
    echo "# self time, top 25"
    perf report -i "$d/perf.data" --stdio --no-children --sort sym -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -n 25
    echo
    echo "# inclusive time (children) of the kernel's main paths (the release build has no"
    echo "# frame pointers: user-space inclusive costs are in the callgrind section)"
    perf report -i "$d/perf.data" --stdio --children --sort sym -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' |
      grep -E ' (__do_sys_io_uring_enter|io_send|io_recv|io_accept|io_connect|io_read|io_write|io_fsync|ext4_sync_file|ext4_fsync_nojournal|jbd2_[a-z_]+|net_rx_action)$' |
      awk '!seen[$NF]++' | head -n 15
    echo '```'
  else
    echo "perf: not usable here."
  fi
}
if [ -z "${BENCH_SKIP_PROFILE:-}" ]; then
  profile >"$PROF_MD" 2>"$OUT/logs/profile.err" || echo "profile failed (exit $?)" >>"$PROF_MD"
else
  echo "(skipped: BENCH_SKIP_PROFILE)" >"$PROF_MD"
fi

# ---- results -------------------------------------------------------------------------------
ELAPSED=$((SECONDS - T_START))
{
  echo "## make bench — $DATE_UTC"
  echo
  echo "- **Command:** \`make bench\` (= \`bash bench/run.sh\`: BENCH_N_4K=$N_4K BENCH_N_100K=$N_100K BENCH_CONNS=$CONNS); bench/run.sh took ${ELAPSED} s"
  machine
  echo "- **Pinning:** the server (every process of it) on CPU $SRV_CPU; load generator, the downstream ringsink (of HAProxy, ringrelay, Postfix, Haraka) and the samplers on CPU $CLI_CPU"
  echo
  python3 bench/lib/table.py "$ROWS"
  echo
  echo "### End to end: delivered per second"
  echo
  python3 bench/lib/table.py --e2e "$ROWS"
  echo
  echo "### Backlog: 1,000,000 recipients for a hop that is down, then up (bench/backlog.sh)"
  echo
  cat "$BACKLOG_MD"
  echo
  echo "### Goals of issue 8"
  echo
  python3 bench/lib/table.py --goals "$ROWS" "$BACKLOG_JSON"
  echo
  echo "### Memory: idle connections after EHLO (bench/mem.sh)"
  echo
  cat "$MEM_MD"
  echo
  echo "### Profile of the relay"
  echo
  cat "$PROF_MD"
} >"$OUT/results.md"
cat "$OUT/results.md"
bs_log "done in ${ELAPSED}s; results in $OUT/results.md"
