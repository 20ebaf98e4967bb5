# --check, --version, --help, usage errors, bad config file: FILE:LINE:COL and exit 2.
. "$(dirname "$0")/lib.sh"
rr_config
out=$("$RR_BIN" --check -c "$T/ringrelay.yaml") || fail "--check on a good file"
expect_match "$out" '^ok' "check summary"
out=$("$RR_BIN" --check) || fail "--check on defaults"
printf 'hostname: x\nlistners: []\n' > "$T/bad.yaml"
out=$("$RR_BIN" --check -c "$T/bad.yaml" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "bad config exit $rc"
expect_match "$out" "^$T/bad.yaml:2:1: " "error position"
printf 'relay:\n  networks: [10.0.0.0/33]\n' > "$T/bad2.yaml"
out=$("$RR_BIN" --check -c "$T/bad2.yaml" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "bad CIDR exit $rc"
expect_match "$out" "^$T/bad2.yaml:2:[0-9]+: .*10\.0\.0\.0/33" "cidr error position"
"$RR_BIN" --bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "usage error exit"
"$RR_BIN" --version | grep -q '^ringrelay ' || fail "--version"
"$RR_BIN" --help | grep -q 'usage' || fail "--help"
ok cli
