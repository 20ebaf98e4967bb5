# Numbers in the configuration are base 10 and range-checked ("010" is ten, 4294968 s is
# refused rather than wrapped to 0.8 s); a FIFO given as the configuration is refused at
# once instead of hanging; a spool path that is a file is an error. --check prints
# FILE:LINE:COL (FILE:0:0 for the file itself) and exits 2.
. "$(dirname "$0")/lib.sh"

# check FILE: run --check under a deadline; sets out and rc (124: it hung).
check() { out=$(timeout 5 "$RR_BIN" --check -c "$1" 2>&1); rc=$?; }

# base FILE [YAML lines...]: a valid configuration without `limits`, plus the lines.
base() {
  local f=$1; shift
  printf 'hostname: relay.test\nspool:\n  path: %s\n' "$T/spool" > "$f"
  [ $# -gt 0 ] && printf '%s\n' "$@" >> "$f"
  return 0
}

# 010 is ten, in range: accepted. (As octal it was eight.)
base "$T/oct.yaml" 'limits:' '  idle_timeout: 010'
check "$T/oct.yaml"
[ "$rc" -eq 0 ] || fail "idle_timeout: 010 refused (exit $rc): $out"
expect_match "$out" '^ok: ' "idle_timeout: 010 accepted"

# 0100 is a hundred: max_line_length (78..1048576) takes it; as octal (64) it would not.
base "$T/oct2.yaml" 'limits:' '  max_line_length: 0100'
check "$T/oct2.yaml"
[ "$rc" -eq 0 ] || fail "max_line_length: 0100 refused (exit $rc): $out"

# 01025 is 1025 workers, over 1024 (as octal, 533, it would pass).
base "$T/w.yaml" 'workers: 01025'
check "$T/w.yaml"
[ "$rc" -eq 2 ] || fail "workers: 01025 exit $rc: $out"
expect_match "$out" "^$T/w\.yaml:4:10: workers: 01025 is out of range \(0\.\.1024\)$" "workers 01025"

# 4294968 s used to wrap (seconds * 1000 in 32 bits) to a 0.8 s idle timeout.
base "$T/wrap.yaml" 'limits:' '  max_recipients: 10' '  idle_timeout: 4294968'
check "$T/wrap.yaml"
[ "$rc" -eq 2 ] || fail "idle_timeout: 4294968 exit $rc: $out"
expect_match "$out" "^$T/wrap\.yaml:6:17: limits\.idle_timeout: 4294968 is out of range \(1\.\.86400\)$" \
  "idle_timeout 4294968"

# Not integers in base 10.
for v in 0x10 +5 1e3 1.5 1_000; do
  base "$T/bad.yaml" 'limits:' "  idle_timeout: $v"
  check "$T/bad.yaml"
  [ "$rc" -eq 2 ] || fail "idle_timeout: $v exit $rc: $out"
  expect_match "$out" "^$T/bad\.yaml:5:17: invalid integer '$(sed 's/[.+]/\\&/g' <<<"$v")' for limits\.idle_timeout" \
    "idle_timeout $v"
done

# The daemon gets what --check saw: workers: 010 starts ten workers.
base "$T/ringrelay.yaml" 'workers: 010' 'listeners:' '  - id: mta' '    address: 127.0.0.1' \
  '    port: 0'
rr_start
expect_match "$(cat "$T/relay.log.new")" 'event=ready .*workers=10 ' "ten workers"
rr_stop

# A FIFO as the configuration: refused at once (it used to block in open(2) forever).
mkfifo "$T/fifo.yaml"
start=$(date +%s%N)
check "$T/fifo.yaml"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -ne 124 ] || fail "--check on a FIFO hung"
[ "$rc" -eq 2 ] || fail "--check on a FIFO: exit $rc: $out"
expect_match "$out" "^$T/fifo\.yaml:0:0: not a regular file$" "FIFO refused"
[ "$ms" -lt 3000 ] || fail "--check on a FIFO took $ms ms"

# A proxy_hosts_file that is a FIFO: an error at the key, not a hang.
mkfifo "$T/hosts"
base "$T/ph.yaml" 'listeners:' '  - id: mta' '    proxy_protocol: trusted' \
  "    proxy_hosts_file: $T/hosts"
check "$T/ph.yaml"
[ "$rc" -eq 2 ] || fail "proxy_hosts_file FIFO: exit $rc: $out"
expect_match "$out" "^$T/ph\.yaml:7:23: cannot read proxy_hosts_file '$T/hosts': not a regular file$" \
  "proxy_hosts_file FIFO"

# spool.path that is a file.
echo "not a directory" > "$T/spoolfile"
printf 'hostname: relay.test\nspool:\n  path: %s\n' "$T/spoolfile" > "$T/sp.yaml"
check "$T/sp.yaml"
[ "$rc" -eq 2 ] || fail "spool.path a file: exit $rc: $out"
expect_match "$out" "^$T/sp\.yaml:3:9: spool\.path '$T/spoolfile' exists and is not a directory$" \
  "spool.path a file"
# A spool path that does not exist yet is fine: the daemon creates it.
printf 'hostname: relay.test\nspool:\n  path: %s\n' "$T/new/spool" > "$T/sp2.yaml"
check "$T/sp2.yaml"
[ "$rc" -eq 0 ] || fail "missing spool.path refused: $out"
sanitizer_clean
ok "config numbers, FIFO, spool path"
