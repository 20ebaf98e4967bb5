#!/usr/bin/env bash
# test/fuzz/run.sh DIR FLAGS MODE NAME:MAXLEN[:RUNS]... — run libFuzzer targets and print
# one summary line per target, in the order given. Called by test/fuzz/fuzz.mk.
#   MODE time=N   each target N seconds on DIR/corpus/NAME (kept), plus its seeds: one
#                 after the other (never two at once: each gets the same machine)
#   MODE runs     each target RUNS runs from its seeds, fixed seed, throw-away corpus:
#                 FUZZ_JOBS at once (default: one per core; a fixed count of runs)
# Logs: DIR/NAME.log; crash artifacts: DIR/NAME-crash-*, DIR/NAME-leak-*, ...
# Exit 1 when any target crashed (or did not run).
set -u
dir=$1 flags=$2 mode=$3
shift 3
kind=${mode%%=*} n=${mode#*=}   # n: seconds, for time
# one NAME:MAXLEN[:RUNS]: its summary line into DIR/NAME.summary; exit 1 when it crashed
one() {
  local t maxlen runs bin log seeds corpus args dirs start rc secs execs cov result art why
  IFS=: read -r t maxlen runs <<<"$1"
  bin=$dir/${t}_fuzz log=$dir/$t.log seeds=test/fuzz/seeds/$t
  if [ "$kind" = time ]; then
    corpus=$dir/corpus/$t
    args=(-max_total_time="$n")
  else
    corpus=$dir/smoke-corpus/$t
    rm -rf "$corpus"
    args=(-runs="$runs" -seed=1)
  fi
  mkdir -p "$corpus"
  dirs=("$corpus")
  [ -d "$seeds" ] && dirs+=("$seeds")
  start=$(date +%s.%N)
  # shellcheck disable=SC2086  # FLAGS is a list of words
  "$bin" "${args[@]}" -max_len="$maxlen" -print_final_stats=1 \
    -artifact_prefix="$dir/$t-" $flags "${dirs[@]}" >"$log" 2>&1
  rc=$?
  secs=$(echo "$start $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
  cov=$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 |
        sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/cov=\1 ft=\2/p')
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    art=$(sed -nE 's/.*Test unit written to (.*)/\1/p' "$log" | tail -1)
    why=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|check failed:' "$log")
    result="CRASHED (exit $rc) ${art:-no artifact}; see $log: ${why:-?}"
  fi
  printf 'fuzz %-10s %6ss  execs=%-10s %-18s %s\n' "$t" "$secs" "${execs:-?}" "${cov:-cov=?}" \
    "$result" > "$dir/$t.summary"
  [ "$rc" -ne 0 ] && grep -E -m1 -A12 'ERROR:|runtime error:|check failed:' "$log" >&2
  [ "$rc" -eq 0 ]
}

jobs=1
if [ "$kind" != time ]; then
  jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
  [[ "$jobs" =~ ^[1-9][0-9]*$ ]] || jobs=1
fi
failed=0
for tm in "$@"; do
  rm -f "$dir/${tm%%:*}.summary"
  if [ "$jobs" -eq 1 ]; then
    one "$tm" || failed=1
    continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  one "$tm" &
done
wait
# (the parallel runs' exit codes are not collected: each one's summary line says it)
for tm in "$@"; do
  t=${tm%%:*}
  if [ -s "$dir/$t.summary" ]; then
    cat "$dir/$t.summary"
    grep -q ' ok$' "$dir/$t.summary" || failed=1
  else
    printf 'fuzz %-10s did not run\n' "$t"; failed=1
  fi
done
exit "$failed"
