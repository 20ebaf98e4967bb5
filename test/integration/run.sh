#!/usr/bin/env bash
# Run every integration test (t_*.sh) against $RR_BIN; print one closing line.
set -u
RR_BIN=$(readlink -f "${RR_BIN:?}"); export RR_BIN
RR_TOOLS=$(readlink -f "${RR_TOOLS:-$(dirname "$RR_BIN")}"); export RR_TOOLS
cd "$(dirname "$0")"
pass=0; fail=0; failed=()
for t in t_*.sh; do
  [ -n "${ONLY:-}" ] && [[ "$t" != *"$ONLY"* ]] && continue
  start=$(date +%s)
  out=$(timeout 150 bash "$t" 2>&1); rc=$?
  secs=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    pass=$((pass + 1)); printf '[PASS] %-28s %3ss\n' "$t" "$secs"
  else
    fail=$((fail + 1)); failed+=("$t"); printf '[FAIL] %-28s %3ss (exit %s)\n' "$t" "$secs" "$rc"
    printf '%s\n' "$out" | tail -40 | sed 's/^/    /'
  fi
done
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
