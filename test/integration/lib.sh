# Integration test helpers: start the real ringrelay on an ephemeral loopback port with a
# private spool, talk to it with real clients, stop it, and check its log for sanitizer
# reports. Sourced by each t_*.sh; RR_BIN names the binary (the ASan+UBSan build).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${RR_BIN:?RR_BIN must name the ringrelay binary}"
RR_BIN=$(readlink -f "$RR_BIN")
RR_TOOLS=$(readlink -f "${RR_TOOLS:-$(dirname "$RR_BIN")}")   # ringblast, ringsink (test builds)
T=$(mktemp -d /tmp/rrtest.XXXXXX)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:log_path=$T/asan}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:log_path=$T/ubsan}
RR_PID=
RR_PORT=
SMTPC="python3 $HERE/smtpc.py"

cleanup() {
  [ -n "$RR_PID" ] && kill -9 "$RR_PID" 2>/dev/null
  jobs -p | xargs -r kill -9 2>/dev/null
  if [ -z "${KEEP:-}" ]; then rm -rf "$T"; else echo "kept $T" >&2; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; [ -f "$T/relay.log" ] && tail -20 "$T/relay.log" >&2; exit 1; }
ok() { echo "ok: $*"; }
expect_match() {  # expect_match TEXT REGEX WHAT
  printf '%s' "$1" | grep -Eq -- "$2" || { printf '%s\n' "$1" | tail -30 >&2; fail "$3: no match for /$2/"; }
}
expect_nomatch() {
  if printf '%s' "$1" | grep -Eq -- "$2"; then printf '%s\n' "$1" | tail -30 >&2; fail "$3: unexpected /$2/"; fi
}

# Tests never send a packet past loopback: unless a test names its own `dns:`, the relay
# asks a loopback port where nothing listens (lookups fail at once and defer: accepted
# mail stays queued, as the receiving-side tests expect), never the system's resolver.
RR_DNS_NOWHERE='dns: { servers: ["127.0.0.1:1"] }'
rr_dns_default() {  # rr_dns_default [YAML lines...]: the default dns line unless one is given
  local l
  for l in "$@"; do case "$l" in dns:*) return 0;; esac; done
  echo "$RR_DNS_NOWHERE"
}

# rr_config [YAML lines appended at top level] -> writes $T/ringrelay.yaml
rr_config() {
  cat > "$T/ringrelay.yaml" <<YAML
hostname: relay.test
workers: 2
spool:
  path: $T/spool
  sync: true
listeners:
  - id: mta
    address: 127.0.0.1
    port: 0
relay:
  networks: [127.0.0.0/8]
  domains: [local.test]
$(rr_dns_default "$@")
YAML
  [ $# -gt 0 ] && printf '%s\n' "$@" >> "$T/ringrelay.yaml"
  return 0
}

# rr_start: start ringrelay on $T/ringrelay.yaml (rr_config first); sets RR_PID, RR_PORT.
# The relay appends straight to $T/relay.log (no copy, no lag); this start's lines are
# those after the file's size at the start.
rr_start() {
  [ -f "$T/ringrelay.yaml" ] || rr_config
  touch "$T/relay.log"
  local off; off=$(stat -c %s "$T/relay.log")
  "$RR_BIN" -c "$T/ringrelay.yaml" 2>> "$T/relay.log" &
  RR_PID=$!
  local i
  for i in $(seq 1 200); do
    tail -c +$((off + 1)) "$T/relay.log" | grep -q 'event=ready' && break
    kill -0 "$RR_PID" 2>/dev/null || { tail -c +$((off + 1)) "$T/relay.log" >&2; fail "ringrelay exited at start"; }
    sleep 0.05
  done
  tail -c +$((off + 1)) "$T/relay.log" > "$T/relay.log.new"
  grep -q 'event=ready' "$T/relay.log.new" || fail "ringrelay not ready after 10 s"
  RR_PORT=$(sed -nE 's/.*event=listen id=mta addr=127\.0\.0\.1:([0-9]+).*/\1/p' "$T/relay.log.new" | head -1)
  [ -n "$RR_PORT" ] || fail "no listen line"
}

# wait_log REGEX [SECONDS]: wait (bounded, default 10 s) until the relay's log matches.
wait_log() {
  local i n=$(( ${2:-10} * 20 ))
  for i in $(seq 1 $n); do grep -Eq -- "$1" "$T/relay.log" && return 0; sleep 0.05; done
  return 1
}

sanitizer_clean() {
  if ls "$T"/asan.* "$T"/ubsan.* >/dev/null 2>&1; then
    cat "$T"/asan.* "$T"/ubsan.* 2>/dev/null | head -60 >&2
    fail "sanitizer report"
  fi
  if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/relay.log" 2>/dev/null; then
    grep -E -A30 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/relay.log" | head -60 >&2
    fail "sanitizer report in log"
  fi
}

# rr_stop: SIGTERM, expect exit 0 within 20 s and a clean sanitizer run.
rr_stop() {
  [ -n "$RR_PID" ] || return 0
  kill -TERM "$RR_PID"
  local i rc
  for i in $(seq 1 200); do kill -0 "$RR_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$RR_PID" 2>/dev/null; then kill -9 "$RR_PID"; RR_PID=; fail "no exit 20 s after SIGTERM"; fi
  wait "$RR_PID"; rc=$?
  RR_PID=
  sanitizer_clean
  [ "$rc" -eq 0 ] || fail "ringrelay exit status $rc after SIGTERM"
}

# rr_kill9: crash it.
rr_kill9() {
  kill -9 "$RR_PID"; wait "$RR_PID" 2>/dev/null; RR_PID=
  return 0
}

rr_queue() { "$RR_BIN" --queue -c "$T/ringrelay.yaml" "$@"; }
rr_queue_count() { rr_queue --json | grep -c '"queue_id"'; }

# haproxy_out NAME PORT: a HAProxy of the outbound tier on 127.0.0.1:PORT, as
# etc/haproxy-outbound.cfg sets it up (`bind ... accept-proxy`, `server mx 0.0.0.0`: it
# connects to the destination the relay's PROXY header names); waits until it listens;
# its pid in HAP_PID[NAME], its log in $T/NAME.log.
declare -A HAP_PID
haproxy_out() {
  local name=$1 port=$2
  printf 'global\n  log stderr format raw local0 info\ndefaults\n  mode tcp\n  log global\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\nfrontend fe\n  bind 127.0.0.1:%s accept-proxy\n  default_backend be\nbackend be\n  retries 0\n  server mx 0.0.0.0\n' "$port" > "$T/$name.cfg"
  haproxy -f "$T/$name.cfg" -db > "$T/$name.log" 2>&1 &
  HAP_PID[$name]=$!
  wait_until 5 python3 -c "import socket;socket.create_connection(('127.0.0.1',$port),0.2).close()" 2>/dev/null ||
    { cat "$T/$name.log" >&2; fail "haproxy $name did not start"; }
}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# hap_start SERVER_OPTS [SOURCE_ADDR]: a private HAProxy in front of the relay. Its frontend
# (on HAP_PORT) accepts a PROXY header from the test client (accept-proxy), so a client can
# claim any source address; its backend sends the relay a header with SERVER_OPTS
# (send-proxy, send-proxy-v2, ...), from SOURCE_ADDR (default 127.0.0.1).
hap_start() {
  HAP_PORT=$(free_port)
  cat > "$T/haproxy.cfg" <<HAP
global
  log stderr format raw local0 info
defaults
  mode tcp
  log global
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$HAP_PORT ${HAP_BIND_OPTS-accept-proxy}
  unique-id-format %{+X}o%ci-%cp-%Ts-%rt
  default_backend be
backend be
  server relay 127.0.0.1:$RR_PORT $1 source ${2:-127.0.0.1}
HAP
  haproxy -f "$T/haproxy.cfg" -db > "$T/haproxy.log" 2>&1 &
  HAP_PID=$!
  local i
  for i in $(seq 1 100); do
    python3 -c "import socket;socket.create_connection(('127.0.0.1',$HAP_PORT),0.2).close()" 2>/dev/null && return 0
    kill -0 $HAP_PID 2>/dev/null || { cat "$T/haproxy.log" >&2; fail "haproxy exited"; }
    sleep 0.05
  done
  fail "haproxy not listening"
}
hap_stop() { [ -n "${HAP_PID:-}" ] && kill $HAP_PID 2>/dev/null; wait $HAP_PID 2>/dev/null; HAP_PID=; return 0; }

# swaks through HAProxy, claiming source address $1; remaining args go to swaks.
swaks_via_hap() {
  local src=$1; shift
  swaks --server 127.0.0.1:$HAP_PORT --proxy-version 1 --proxy-family TCP4 \
    --proxy-source "$src" --proxy-source-port 54321 --proxy-dest 127.0.0.1 \
    --proxy-dest-port $HAP_PORT "$@" 2>&1
}

# rr_proxy_config MODE PROXY_HOSTS_YAML [extra top-level yaml lines...]
rr_proxy_config() {
  local mode=$1 hosts=$2; shift 2
  cat > "$T/ringrelay.yaml" <<YAML
hostname: relay.test
workers: 2
spool: { path: $T/spool }
listeners:
  - id: mta
    address: 127.0.0.1
    port: 0
    proxy_protocol: $mode
    $hosts
relay:
  networks: [203.0.113.0/24]
  domains: [local.test]
$(rr_dns_default "$@")
YAML
  [ $# -gt 0 ] && printf '%s\n' "$@" >> "$T/ringrelay.yaml"
  return 0
}

# ---- next hops for delivery tests: ringsink (bench/ringsink.c, the test build) --------
SINK="$RR_TOOLS/ringsink"
S_PID=(); S_PORT=

# sink NAME [ARGS]: a ringsink on an ephemeral (or given with -l) port; sets S_PORT.
sink() {
  local name=$1 i; shift
  local listen=127.0.0.1:0
  if [ "${1:-}" = "-l" ]; then listen=$2; shift 2; fi
  mkdir -p "$T/$name"
  "$SINK" -l "$listen" --dump "$T/$name" "$@" 2> "$T/$name.log" &
  S_PID+=($!)
  for i in $(seq 1 200); do
    S_PORT=$(sed -nE '1s/^ringsink: listening on 127\.0\.0\.1:([0-9]+)$/\1/p' "$T/$name.log")
    [ -n "$S_PORT" ] && return 0
    sleep 0.05
  done
  cat "$T/$name.log" >&2; fail "sink $name did not start"
}
dumped() { ls "$T/$1" 2>/dev/null | grep -c '\.eml$'; }
wait_until() {  # wait_until SECONDS CMD...: bounded poll until CMD succeeds
  local n=$(( $1 * 10 )) i; shift
  for i in $(seq 1 $n); do "$@" && return 0; sleep 0.1; done
  return 1
}

# dnsmasq on loopback, on a free port: sets DP; arguments are extra records
dns_start() {
  DP=$(free_port)
  : > "$T/dnsmasq.log"
  dnsmasq --keep-in-foreground --port=$DP --listen-address=127.0.0.1 --bind-interfaces \
    --no-resolv --no-hosts --conf-file=/dev/null --pid-file= --local=/test/ \
    --log-facility="$T/dnsmasq.log" "$@" &
  DNS_PID=$!
  wait_until 5 grep -q started "$T/dnsmasq.log" || { cat "$T/dnsmasq.log" >&2; fail "dnsmasq did not start"; }
}
dns_stop() { kill "$DNS_PID" 2>/dev/null; wait "$DNS_PID" 2>/dev/null; return 0; }
