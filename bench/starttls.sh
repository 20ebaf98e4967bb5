#!/usr/bin/env bash
# make bench-starttls (issue 10): STARTTLS handshakes per second inbound, side by side in
# one run, on one machine, everything on 127.0.0.1.
#
#   bash bench/starttls.sh          (what `make bench-starttls` runs after building; root)
#
# The client: build/ringblast --starttls --per-conn 1 (EHLO, STARTTLS, a full TLS handshake
# with no session reuse, EHLO again, one message, QUIT, a new connection), STARTTLS_CONNS
# (20) connections in parallel, STARTTLS_N (10000) messages of STARTTLS_SIZE (1 KiB): one
# handshake per message, so handshakes/s = messages/s. Its figures: handshakes/s (messages
# from its start to the last 250, one per connection), the time from the connect to the
# handshake's end (p50/p99: greeting, EHLO, STARTTLS, handshake), end of DATA to 250
# (p50/p99), errors of every kind.
#
# One certificate for every server: ECDSA P-256, self-signed, made here by openssl.
# The servers, each started afresh for its row:
#   ringrelay  build/ringrelay (release), workers 1, a listener with tls_mode starttls,
#              spool.sync true, spool on the disk of $BENCH_TMP, relaying everything to a
#              ringsink (route "*"), as bench/run.sh does
#   postfix    a private Postfix 3.7 (bench/peers/postfix.sh, PF_TLS_CERT/PF_TLS_KEY:
#              smtpd_tls_security_level may), relaying to a ringsink
#   ceiling    ringsink --tls (-w 1): the same server code as the relay (core/smtp_server,
#              net/tls) with no spool and no delivery
# Pinning as bench/run.sh: the server (its whole process tree) on CPU 0; ringblast and
# the downstream ringsink on CPU 1. Server CPU: utime+stime(+reaped children) of its tree
# from /proc over the client's run (bench/lib/procstat.py). Server-side check: the TLS
# sessions the server itself logged (relay: event=tls lines; Postfix: "TLS connection
# established from"; ringsink logs none). Client CPU: ringblast's user+system seconds
# (/usr/bin/time, when installed) over the same wall time.
#
# Every wait is bounded: ringblast's own -t (STARTTLS_SECONDS, 60 s: no transaction starts
# after it, and it gives up 30 s later), a timeout(1) around it, bounded starts and stops.
# Output: the table on stdout and in $BENCH_OUT/starttls.md (default build/bench-starttls),
# each row's logs and JSON under $BENCH_OUT/logs/.
# Environment: STARTTLS_N, STARTTLS_CONNS, STARTTLS_SIZE, STARTTLS_SECONDS,
# STARTTLS_PEERS ("ringrelay postfix ceiling"), BENCH_TMP (/var/tmp), BENCH_OUT,
# BS_PF_DIR (Postfix's instance).
set -euo pipefail

cd "$(dirname "$0")/.."
RR_ROOT=$(pwd -P)
export RR_ROOT
N=${STARTTLS_N:-10000}
CONNS=${STARTTLS_CONNS:-20}
SIZE=${STARTTLS_SIZE:-1024}
SECS=${STARTTLS_SECONDS:-60}
PEERS=${STARTTLS_PEERS:-ringrelay postfix ceiling}
OUT=${BENCH_OUT:-build/bench-starttls}
TMPBASE=${BENCH_TMP:-/var/tmp}
export BS_PF_DIR=${BS_PF_DIR:-$TMPBASE/ringrelay-bench-postfix}
SRV_CPU=0 CLI_CPU=1
# shellcheck source=bench/lib/servers.sh
. "$RR_ROOT/bench/lib/servers.sh"
procstat() { python3 "$RR_ROOT/bench/lib/procstat.py" "$@"; }
die() { echo "bench/starttls.sh: $*" >&2; exit 1; }

# ---- preflight -------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (private Postfix)"
for b in build/ringrelay build/ringblast build/ringsink; do
  [ -x "$b" ] || die "$b missing: run make"
done
command -v openssl >/dev/null || die "openssl missing"
command -v taskset >/dev/null || die "taskset missing (util-linux)"
(( $(nproc) >= 2 )) || die "needs 2 CPUs (server on CPU 0, load on CPU 1); nproc=$(nproc)"
for v in "$N" "$CONNS" "$SIZE" "$SECS"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "STARTTLS_N, _CONNS, _SIZE, _SECONDS must be numbers"
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bs_lock || exit 1
bs_dirs starttls

CLIENT_PID=''
cleanup() {
  local rc=$?
  [ -n "$CLIENT_PID" ] && kill -TERM "$CLIENT_PID" 2>/dev/null && bs_reap "$CLIENT_PID" 10
  bs_stop_all
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DATE_UTC=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the certificate (one for all) ----------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=starttls.bench.invalid -keyout "$W/cert.key" -out "$W/cert.crt" >/dev/null 2>&1 ||
  die "openssl could not make the certificate"
chmod 644 "$W/cert.crt"
chmod 600 "$W/cert.key"
export PF_TLS_CERT=$W/cert.crt PF_TLS_KEY=$W/cert.key    # bench/peers/postfix.sh: smtpd TLS

# The relay's listener for bs_start (bench/lib/servers.sh): STARTTLS with the certificate.
TLS_LISTENER="{ id: mta, address: 127.0.0.1, port: 0, tls_mode: starttls,
    tls: { certificate: $W/cert.crt, key: $W/cert.key } }"

# ---- one row ----------------------------------------------------------------------------
ROWS=$OUT/rows.tsv
printf 'peer\tjson\tcpu_s\twall_s\tserver_tls\tclient_cpu_s\tnotes\n' >"$ROWS"
TIMECMD=()
[ -x /usr/bin/time ] && TIMECMD=(/usr/bin/time -f '%U %S' -o)

run_row() {
  local peer=$1 d=$W/$1 pid c0 c1 t0 t1 rc=0 stls=- notes=''
  mkdir -p "$d"
  chmod 755 "$d"
  bs_log "$peer: ringblast --starttls --per-conn 1, $N x $SIZE octets, $CONNS connections"
  case "$peer" in
    ringrelay)
      bs_sink_start "$CLI_CPU" "$d/sink" &&
        BS_RR_LISTENER=$TLS_LISTENER bs_start ringrelay "$SRV_CPU" "$d" "$SINK_PORT" &&
        pid=$SRV_PID ;;
    postfix)
      bs_sink_start "$CLI_CPU" "$d/sink" &&
        bs_start postfix "$SRV_CPU" "$d" "$SINK_PORT" &&
        pid=$SRV_PID ;;
    ceiling)                         # ringsink itself as the server, with TLS
      BS_SINK_OPTS="--tls $W/cert.crt,$W/cert.key" bs_start limit "$SRV_CPU" "$d" &&
        pid=$SRV_PID ;;
    *) die "unknown peer $peer" ;;
  esac || {
    bs_stop_all
    printf '%s\t-\t-\t-\t-\t-\tfailed to start\n' "$peer" >>"$ROWS"
    return
  }
  c0=$(procstat cpu "$pid")
  t0=$(date +%s.%N)
  taskset -c "$CLI_CPU" ${TIMECMD[@]+"${TIMECMD[@]}"} ${TIMECMD[@]+"$d/client.cpu"} \
    timeout $((SECS + 60)) build/ringblast -s "127.0.0.1:$SRV_PORT" \
    -c "$CONNS" -n "$N" -l "$SIZE" --starttls --per-conn 1 -t "$SECS" --json \
    >"$d/blast.json" 2>"$d/blast.err" &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || rc=$?
  CLIENT_PID=''
  t1=$(date +%s.%N)
  c1=$(procstat cpu "$pid")
  (( rc == 0 )) || notes+="ringblast exit $rc; "
  [ -s "$d/blast.json" ] || { notes+="no JSON: $(tail -n 1 "$d/blast.err" | tr '\t' ' ' | cut -c1-80); "; echo '{}' >"$d/blast.json"; }
  case "$peer" in
    ringrelay)
      bs_stop
      stls=$(grep -c 'event=tls ' "$d/ringrelay.log" || true)
      # handshake steps the relay put off to its next loop turn (16 a turn: net/loop)
      notes+="$(sed -nE 's/.*event=worker_down .*tls_budget_waits=([0-9]+).*/relay tls_budget_waits=\1/p' "$d/ringrelay.log" | head -n 1); "
      bs_sink_stop ;;
    postfix)
      bs_stop
      stls=$(grep -c 'TLS connection established from' "$d/postfix.log" 2>/dev/null || true)
      bs_sink_stop ;;
    ceiling)
      bs_stop ;;
  esac
  local ccpu=-
  [ -s "$d/client.cpu" ] && ccpu=$(awk 'NF == 2 && $1 ~ /^[0-9.]+$/ { printf "%.3f", $1 + $2 }' "$d/client.cpu")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$peer" "$(tr -d '\n\t' <"$d/blast.json")" \
    "$(awk -v a="$c1" -v b="$c0" 'BEGIN { printf "%.3f", a - b }')" \
    "$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')" "$stls" "${ccpu:--}" \
    "${notes%; }" >>"$ROWS"
  mkdir -p "$OUT/logs/$peer"
  find "$d" -maxdepth 2 -type f \( -name '*.log' -o -name '*.err' -o -name '*.json' -o -name '*.yaml' \) \
    -size -20M -exec cp {} "$OUT/logs/$peer/" \; 2>/dev/null || true
  rm -rf "$d"
}

for peer in $PEERS; do
  run_row "$peer"
done

# ---- the table ------------------------------------------------------------------------------
{
  echo "## make bench-starttls — $DATE_UTC"
  echo
  echo "- **Command:** \`make bench-starttls\` (= \`bash bench/starttls.sh\`: STARTTLS_N=$N STARTTLS_CONNS=$CONNS STARTTLS_SIZE=$SIZE STARTTLS_SECONDS=$SECS)"
  echo "- **CPU:** $(lscpu | sed -nE 's/^Model name: *//p' | head -n 1), nproc $(nproc); load average at the start: $LOAD_START"
  echo "- **Kernel:** $(uname -r); Postfix $(postconf -d -h mail_version 2>/dev/null || echo '?'); $(openssl version | cut -d' ' -f1-2) (Postfix's TLS)"
  echo "- **Disk (spool, Postfix queue):** $(findmnt -no SOURCE,FSTYPE -T "$TMPBASE" | head -n 1) (under $TMPBASE)"
  echo "- **Pinning:** the server (every process of it) on CPU $SRV_CPU; ringblast and the downstream ringsink on CPU $CLI_CPU"
  echo "- **Certificate:** ECDSA P-256, self-signed (openssl), the same file for every server"
  echo
  python3 - "$ROWS" <<'PY'
import csv, json, sys
NAMES = {"ringrelay": "ringrelay (workers 1, spool sync, relaying to a ringsink)",
         "postfix": "Postfix (smtpd_tls_security_level may, relaying to a ringsink)",
         "ceiling": "ringsink --tls (the ceiling: no spool, no delivery)"}
csv.field_size_limit(1 << 24)
rows = list(csv.DictReader(open(sys.argv[1], newline=""), delimiter="\t"))
print("| server | handshakes | handshakes/s | connect → secure p50 / p99 ms"
      " | end of DATA → 250 p50 / p99 ms | errors | server CPU s / 1k handshakes"
      " | CPU 0 busy | ringblast CPU busy | TLS sessions the server logged | notes |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    try:
        j = json.loads(r["json"]) if r["json"] not in ("", "-") else {}
    except ValueError:
        j = {}
    if not j.get("server"):
        print(f"| {NAMES.get(r['peer'], r['peer'])} | — | — | — | — | — | — | — | — | — | {r['notes']} |")
        continue
    hs, h, l = j.get("handshakes", 0), j.get("handshake_ms", {}), j.get("latency_ms", {})
    errs = j.get("error_count", 0) + j.get("connection_errors", 0)
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(j.get("errors", {}).items()))
    if j.get("connection_errors"):
        kinds += (", " if kinds else "") + f"connection: {j['connection_errors']}"
    err = f"{errs}" + (f" ({kinds})" if kinds else "")
    cpu, wall = float(r["cpu_s"]), float(r["wall_s"])
    per1k = f"{cpu / hs * 1000:.3f}" if hs else "—"
    busy = f"{cpu / wall * 100:.0f}%" if wall else "—"
    cc = r["client_cpu_s"]
    cbusy = f"{float(cc) / wall * 100:.0f}%" if wall and cc not in ("", "-") else "—"
    notes = r["notes"]
    if j.get("messages") != j.get("requested"):
        notes = (notes + "; " if notes else "") + f"{j.get('messages')} of {j.get('requested')} messages"
    print(f"| {NAMES.get(r['peer'], r['peer'])} | {hs:,} | {j.get('messages_per_s', 0):,.0f}"
          f" | {h.get('p50', 0):.2f} / {h.get('p99', 0):.2f}"
          f" | {l.get('p50', 0):.2f} / {l.get('p99', 0):.2f} | {err} | {per1k} | {busy} | {cbusy}"
          f" | {r['server_tls']} | {notes} |")
print()
print("handshakes/s: ringblast's messages/s at one message per connection (its start to the"
      " last 250). connect → secure: from the connect to the end of the client's handshake"
      " (greeting, EHLO, STARTTLS and the TLS round trips). Server CPU: utime+stime of the"
      " server's process tree (Postfix: with the smtpd, cleanup, qmgr and smtp processes it"
      " reaped) during the client's run, delivery included; CPU 0 busy = that / wall time"
      " of the client's run; ringblast CPU busy = its user+system seconds / the same wall"
      " time (CPU 1, shared with the downstream ringsink of the relaying rows).")
PY
} >"$OUT/starttls.md"
cat "$OUT/starttls.md"
