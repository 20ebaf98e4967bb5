#!/usr/bin/env bash
# Run every Criterion unit-test binary given; print one closing line for all of them.
set -u
pass=0; fail=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "$@"; do
  out=$("$t" --jobs 2 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^\[====\] Synthesis:' | tail -1)
  p=$(printf '%s' "$line" | sed -nE 's/.*Passing: ([0-9]+).*/\1/p')
  f=$(printf '%s' "$line" | sed -nE 's/.*Failing: ([0-9]+).*/\1/p')
  c=$(printf '%s' "$line" | sed -nE 's/.*Crashing: ([0-9]+).*/\1/p')
  p=${p:-0}; f=${f:-0}; c=${c:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$c" -eq 0 ]; then f=1; fi
  # Criterion's children may report a leak or UB and still exit 0: any report fails.
  if printf '%s\n' "$out" | grep -Eq 'LeakSanitizer|AddressSanitizer|runtime error:'; then
    printf '%s\n' "$out" | grep -E -A20 'LeakSanitizer|AddressSanitizer|runtime error:' | head -40
    f=$((f + 1)); rc=1
  fi
  printf '%-40s %s\n' "$(basename "$t")" "${line:-exit $rc}"
  if [ "$rc" -ne 0 ]; then printf '%s\n' "$out" | grep -vE '^\[----\]|^\[RUN |^\[PASS\]' | tail -40; fi
  pass=$((pass + p)); fail=$((fail + f + c))
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
