# shellcheck shell=bash
# Start and stop the servers of the benchmarks, each pinned to a CPU; sourced by
# bench/run.sh and bench/mem.sh. Everything binds to 127.0.0.1. Every wait is bounded.
#
# Needs RR_ROOT (the checkout) set by the caller. Postfix's instance always lives in
# BS_PF_DIR (default /var/tmp/ringrelay-bench-postfix, emptied before each start and removed
# after each stop): bench/peers/postfix.sh registers every instance directory in
# /etc/postfix/main.cf for good, so one fixed directory keeps that list from growing.
# bs_lock serializes the benchmarks on this machine (they pin CPUs and share that directory).
#
#   bs_sink_start CPU DIR [PORT]   ringsink -w 1 --json on CPU, on 127.0.0.1:PORT (default
#                                  0: any free port), with BS_SINK_OPTS (more ringsink
#                                  options, e.g. --tls CERT,KEY); sets SINK_PID SINK_PORT
#   bs_sink_count                  messages the running sink has answered 250 (SIGUSR1)
#   bs_sink_wait N SECS            until the sink has N messages or SECS pass; prints count
# shellcheck disable=SC2034  # SINK_FINAL, SRV_DIR are read by the callers
#   bs_sink_stop                   SIGTERM; sets SINK_FINAL (its last JSON line)
#   bs_start PEER CPU DIR [SINK_PORT [EXTRA_YAML]]
#                                  PEER: limit (ringsink itself) | ringrelay | postfix |
#                                  haraka | haproxy. Sets SRV_PID (root of its process
#                                  tree), SRV_PORT, SRV_KIND, SRV_DIR. ringrelay: workers 1,
#                                  spool.sync true, spool in DIR/spool, its listener
#                                  BS_RR_LISTENER (default 127.0.0.1, port 0: read back
#                                  from event=listen); with SINK_PORT a route "*" to a
#                                  transport with next hop [127.0.0.1]:SINK_PORT and its
#                                  shaping limits raised (BS_RR_TRANSPORT), without one no
#                                  route leaves the machine (dns.servers is a closed
#                                  loopback port); EXTRA_YAML is appended to its config.
#                                  haproxy: `mode tcp` forwarder to 127.0.0.1:SINK_PORT,
#                                  nbthread 1 (the reference: no parsing, no disk).
#   bs_dirs NAME                   OUT made absolute with an empty OUT/logs; W a fresh work
#                                  directory TMPBASE/ringrelay-NAME.XXXXXX (0755, warned
#                                  about when on tmpfs: the spool would not be on a disk)
#   bs_stop                        stop what bs_start started (bounded; SIGKILL at worst)
#   bs_stop_all                    bs_stop and bs_sink_stop if running (for traps)

# shellcheck source=bench/lib/peer.sh
. "$RR_ROOT/bench/lib/peer.sh"     # wait_banner

BS_WAIT=${BS_WAIT:-30}          # seconds to wait for a server to come up or go down
# The relay's transport to the sink: limits raised so that they never cap a run (50
# client connections; Postfix's default is 20 at most per destination, starting at 5).
BS_RR_TRANSPORT=${BS_RR_TRANSPORT:-max_connections: 100, initial_connections: 50, max_messages_per_connection: 1000000}
BS_PF_DIR=${BS_PF_DIR:-/var/tmp/ringrelay-bench-postfix}

# One benchmark at a time (fd 8 stays open, and locked, until the shell exits).
bs_lock() {
  [ -n "${RR_BENCH_LOCKED:-}" ] && return 0
  exec 8>/run/ringrelay-bench.lock
  flock -n 8 || { echo "another benchmark is running (/run/ringrelay-bench.lock)" >&2; return 1; }
  export RR_BENCH_LOCKED=1
}

bs_log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

bs_dirs() {
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd -P)
  rm -rf "$OUT/logs"
  mkdir -p "$OUT/logs"
  W=$(mktemp -d "$TMPBASE/ringrelay-$1.XXXXXX")
  chmod 755 "$W"
  [ "$(stat -f -c %T "$W")" != tmpfs ] || bs_log "warning: $W is on tmpfs, not a disk"
}

# Wait (bounded) for pid $1 to exit after a signal; SIGKILL after $2 seconds.
bs_reap() {
  local pid=$1 secs=${2:-$BS_WAIT} deadline
  deadline=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    bs_log "pid $pid still running after ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

bs_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Last JSON object ringsink printed (it prints one per SIGUSR1 and one at exit).
bs_sink_last_json() { grep '^{' "$SINK_DIR/sink.err" 2>/dev/null | tail -n 1; }

bs_sink_start() {
  local cpu=$1 dir=$2 port=${3:-0} deadline
  mkdir -p "$dir"
  SINK_DIR=$dir
  # shellcheck disable=SC2086  # BS_SINK_OPTS: options, split on spaces
  taskset -c "$cpu" "$RR_ROOT/build/ringsink" -l "127.0.0.1:$port" -w 1 --json \
    --hostname sink.bench.invalid ${BS_SINK_OPTS-} 2>"$dir/sink.err" &
  SINK_PID=$!
  deadline=$((SECONDS + BS_WAIT))
  SINK_PORT=
  while (( SECONDS < deadline )); do
    SINK_PORT=$(sed -nE 's/^ringsink: listening on 127\.0\.0\.1:([0-9]+).*/\1/p' "$dir/sink.err")
    [ -n "$SINK_PORT" ] && return 0
    kill -0 "$SINK_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$dir/sink.err" >&2
  echo "ringsink did not start" >&2
  return 1
}

bs_sink_count() {
  local before after deadline
  before=$(grep -c '^{' "$SINK_DIR/sink.err" || true)
  kill -USR1 "$SINK_PID" 2>/dev/null || { echo 0; return; }
  deadline=$((SECONDS + 5))
  while (( SECONDS < deadline )); do
    after=$(grep -c '^{' "$SINK_DIR/sink.err" || true)
    (( after > before )) && break
    sleep 0.02
  done
  bs_sink_last_json | python3 -c 'import json,sys; print(json.loads(sys.stdin.read() or "{}").get("messages", 0))'
}

bs_sink_wait() {
  local want=$1 secs=$2 deadline n=0
  deadline=$((SECONDS + secs))
  while :; do
    n=$(bs_sink_count)
    (( n >= want )) && break
    (( SECONDS >= deadline )) && break
    sleep 0.2
  done
  echo "$n"
}

bs_sink_stop() {
  [ -n "${SINK_PID:-}" ] || return 0
  kill -TERM "$SINK_PID" 2>/dev/null || true
  bs_reap "$SINK_PID" 15
  SINK_FINAL=$(bs_sink_last_json)
  SINK_PID=
}

bs_start() {
  local peer=$1 cpu=$2 dir=$3 sink=${4:-} extra=${5:-} deadline
  mkdir -p "$dir"
  chmod 755 "$dir"
  SRV_KIND=$peer SRV_DIR=$dir SRV_PID='' SRV_PORT=''
  case "$peer" in
    limit)
      bs_sink_start "$cpu" "$dir" || return 1
      SRV_PID=$SINK_PID SRV_PORT=$SINK_PORT
      ;;
    ringrelay|ringrelay-before)
      local bin="$RR_ROOT/build/ringrelay"
      [ "$peer" = ringrelay-before ] && bin=${BENCH_RR_BEFORE:?BENCH_RR_BEFORE names the earlier build}
      local listener=${BS_RR_LISTENER:-'{ id: mta, address: 127.0.0.1, port: 0 }'}
      local deliver="dns: { servers: [\"127.0.0.1:9\"] }"
      if [ -n "$sink" ] && [ "$peer" = ringrelay ]; then
        deliver+=$'\n'"transports: [ { id: sink, nexthop: \"[127.0.0.1]:$sink\", $BS_RR_TRANSPORT } ]"
        deliver+=$'\n'"routes: [ { domains: [\"*\"], transport: sink } ]"
      fi
      cat >"$dir/ringrelay.yaml" <<YAML
hostname: ringrelay.bench.invalid
workers: 1
spool: { path: $dir/spool, sync: true }
listeners: [ $listener ]
$deliver
$extra
YAML
      taskset -c "$cpu" "$bin" -c "$dir/ringrelay.yaml" 2>"$dir/ringrelay.log" &
      SRV_PID=$!
      deadline=$((SECONDS + BS_WAIT))
      while (( SECONDS < deadline )); do
        grep -q 'event=ready' "$dir/ringrelay.log" && break
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
      done
      SRV_PORT=$(sed -nE 's/.*event=listen id=mta addr=127\.0\.0\.1:([0-9]+).*/\1/p' "$dir/ringrelay.log" | head -n 1)
      if [ -z "$SRV_PORT" ] || ! grep -q 'event=ready' "$dir/ringrelay.log"; then
        tail -n 20 "$dir/ringrelay.log" >&2
        echo "ringrelay did not start" >&2
        return 1
      fi
      ;;
    postfix)
      SRV_PORT=$(bs_free_port)
      if [ -d "$BS_PF_DIR" ]; then
        "$RR_ROOT/bench/peers/postfix.sh" stop "$BS_PF_DIR" >/dev/null 2>&1 || true
        rm -rf "$BS_PF_DIR"
      fi
      taskset -c "$cpu" "$RR_ROOT/bench/peers/postfix.sh" start "$BS_PF_DIR" "$SRV_PORT" "$sink" >&2 || return 1
      SRV_PID=$(tr -dc '0-9' <"$BS_PF_DIR/queue/pid/master.pid")
      ;;
    haraka)
      SRV_PORT=$(bs_free_port)
      taskset -c "$cpu" "$RR_ROOT/bench/peers/haraka.sh" start "$dir/hk" "$SRV_PORT" "$sink" >&2 || return 1
      SRV_PID=$(tr -dc '0-9' <"$dir/hk/haraka.pid")
      ;;
    haproxy)
      command -v haproxy >/dev/null || { echo "haproxy not installed" >&2; return 1; }
      SRV_PORT=$(bs_free_port)
      cat >"$dir/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 4000
  log stderr format raw local0 err
defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend smtp
  bind 127.0.0.1:$SRV_PORT
  default_backend sink
backend sink
  server s1 127.0.0.1:$sink
CFG
      taskset -c "$cpu" haproxy -f "$dir/haproxy.cfg" -db </dev/null >"$dir/haproxy.log" 2>&1 &
      SRV_PID=$!
      if ! wait_banner "$SRV_PORT" "$BS_WAIT" kill -0 "$SRV_PID"; then
        tail -n 20 "$dir/haproxy.log" >&2
        echo "haproxy did not start" >&2
        kill -TERM "$SRV_PID" 2>/dev/null; bs_reap "$SRV_PID" 5
        return 1
      fi
      ;;
    *) echo "bs_start: unknown peer $peer" >&2; return 1 ;;
  esac
  # Affinity is inherited from taskset by every process of the tree; check it.
  local p mask
  for p in $(python3 "$RR_ROOT/bench/lib/procstat.py" tree "$SRV_PID"); do
    mask=$(taskset -pc "$p" 2>/dev/null | sed -nE 's/.*: *//p')
    if [ -n "$mask" ] && [ "$mask" != "$cpu" ]; then
      bs_log "warning: pid $p of $peer runs on CPUs $mask, not $cpu"
    fi
  done
}

bs_stop() {
  [ -n "${SRV_KIND:-}" ] || return 0
  case "$SRV_KIND" in
    limit) bs_sink_stop ;;
    ringrelay|ringrelay-before|haproxy)
      kill -TERM "$SRV_PID" 2>/dev/null || true
      bs_reap "$SRV_PID" 20
      ;;
    postfix)
      "$RR_ROOT/bench/peers/postfix.sh" stop "$BS_PF_DIR" >/dev/null 2>&1 || true
      cp "$BS_PF_DIR/postfix.log" "$SRV_DIR/postfix.log" 2>/dev/null || true
      rm -rf "$BS_PF_DIR"
      ;;
    haraka) "$RR_ROOT/bench/peers/haraka.sh" stop "$SRV_DIR/hk" >/dev/null 2>&1 || true ;;
  esac
  SRV_KIND='' SRV_PID=''
}

bs_stop_all() {
  bs_stop || true
  bs_sink_stop || true
}
