#!/usr/bin/env bash
# Run every integration test (t_*.sh) against $RR_BIN; print one closing line.
#
# Lanes. The tests lanes.list marks `serial` (they measure memory or time, run load, fill a
# disk: the list says why for each) run first, one at a time, nothing else running. Then
# RR_JOBS lanes (default 2) run the `parallel` ones, longest first by the list's measured
# seconds: each lane takes the next test when its own ends, so the lanes end together. A
# test the list does not name runs alone, with a note on stderr: a new test is serial until
# someone has looked at it. RR_JOBS=1: one test at a time, as before.
#
# Each test has 150 s (timeout) and its own process group (timeout's): what it leaves
# running is killed when it ends, so nothing of it outlives it into another test. Where
# the kernel lets us (root), each also runs in its own network namespace with only a
# loopback (unshare -n): a port one test chose with free_port and has not bound yet cannot
# be taken by another test's listener. RR_NETNS=0 runs them in the host's namespace.
#
# A test's output goes to a file; its [PASS]/[FAIL] line (and a failure's last 40 lines)
# is printed whole, under a lock, when it ends. ONLY=substring runs the matching tests.
set -u
RR_BIN=$(readlink -f "${RR_BIN:?}"); export RR_BIN
RR_TOOLS=$(readlink -f "${RR_TOOLS:-$(dirname "$RR_BIN")}"); export RR_TOOLS
cd "$(dirname "$0")"
JOBS=${RR_JOBS:-2}
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: RR_JOBS must be a number of lanes (1, 2, ...), not '$JOBS'" >&2; exit 2; }
W=$(mktemp -d /tmp/rrlanes.XXXXXX)
trap 'rm -rf "$W"' EXIT
: > "$W/results"

# lanes.list: NAME MODE SECONDS [why]
declare -A MODE SECS
while read -r name mode secs _; do
  case "$name" in ''|\#*) continue;; esac
  MODE[$name]=$mode; SECS[$name]=$secs
done < lanes.list

serial=(); par=()
for t in t_*.sh; do
  [ -n "${ONLY:-}" ] && [[ "$t" != *"$ONLY"* ]] && continue
  case "${MODE[$t]:-}" in
    parallel) par+=("$t");;
    serial) serial+=("$t");;
    *) echo "run.sh: $t is not in lanes.list: it runs alone (add it there: serial or parallel, and its seconds)" >&2
       serial+=("$t");;
  esac
done
# longest first (unknown seconds count as 0: last)
mapfile -t par < <(for t in "${par[@]}"; do
  s=${SECS[$t]:-0}; [[ "$s" =~ ^[0-9]+$ ]] || s=0; printf '%s %s\n' "$s" "$t"
done | sort -k1,1nr -k2,2 | cut -d' ' -f2)

if [ "$JOBS" -gt 1 ] && ! command -v flock > /dev/null; then
  echo "run.sh: no flock (util-linux): one lane" >&2; JOBS=1
fi
NETNS=0
if [ "${RR_NETNS:-1}" != 0 ] && unshare -n -- sh -c 'ip link set lo up && python3 -c "
import socket
socket.socket().bind((\"127.0.0.1\", 0))
socket.socket(socket.AF_INET6).bind((\"::1\", 0))"' > /dev/null 2>&1; then
  NETNS=1
fi

CUR=    # the running test's timeout: its pid, and the id of its process group
# run_one TEST: run it, kill what it left, print its result (whole, under the lock)
run_one() {
  local t=$1 start rc secs
  start=$(date +%s)
  if [ "$NETNS" = 1 ]; then
    timeout 150 unshare -n -- bash -c 'ip link set lo up && exec bash "$1"' run "$t" > "$W/$t.out" 2>&1 < /dev/null &
  else
    timeout 150 bash "$t" > "$W/$t.out" 2>&1 < /dev/null &
  fi
  CUR=$!
  wait "$CUR"; rc=$?
  kill -KILL -- "-$CUR" 2> /dev/null
  CUR=
  secs=$(( $(date +%s) - start ))
  {
    flock 9 2> /dev/null
    if [ "$rc" -eq 0 ]; then
      printf '[PASS] %-28s %3ss\n' "$t" "$secs"
      echo "pass $t" >> "$W/results"
    else
      printf '[FAIL] %-28s %3ss (exit %s)\n' "$t" "$secs" "$rc"
      tail -40 "$W/$t.out" | sed 's/^/    /'
      echo "fail $t" >> "$W/results"
    fi
  } 9>> "$W/lock"
  rm -f "$W/$t.out"
}

# next: the index of the next parallel test to run (shared by the lanes)
echo 0 > "$W/next"
next() {
  local n
  { flock 8; n=$(< "$W/next"); echo $((n + 1)) > "$W/next"; } 8>> "$W/next.lock"
  echo "$n"
}
lane() {
  trap '[ -n "$CUR" ] && kill -TERM -- "-$CUR" 2> /dev/null; exit 143' TERM
  local i
  while i=$(next) && [ "$i" -lt "${#par[@]}" ]; do run_one "${par[$i]}"; done
}

pids=()
stop() {
  trap - INT TERM
  [ -n "$CUR" ] && kill -TERM -- "-$CUR" 2> /dev/null
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2> /dev/null
  wait
  echo "integration: interrupted" >&2
  exit 130
}
trap stop INT TERM

for t in "${serial[@]}"; do run_one "$t"; done
n=$JOBS; [ "$n" -gt "${#par[@]}" ] && n=${#par[@]}
for ((j = 0; j < n; j++)); do lane & pids+=($!); done
[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"

pass=$(grep -c '^pass ' "$W/results"); fail=$(grep -c '^fail ' "$W/results")
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
