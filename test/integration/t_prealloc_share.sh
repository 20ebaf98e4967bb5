# Found in review: every worker allocated a whole 64 MiB segment ahead at start, so many
# workers on a small spool reserved all of it (workers: 1024 on 1 GiB answered every
# message 451). What is allocated ahead is now at most a quarter of the free space, shared
# by the workers.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to mount a small tmpfs"; exit 0; }
mkdir -p "$T/spool"
mount -t tmpfs -o size=128m tmpfs "$T/spool" || fail "cannot mount tmpfs"
trap 'umount "$T/spool" 2>/dev/null; cleanup' EXIT
rr_config
sed -i 's/^workers: 2/workers: 16/' "$T/ringrelay.yaml"
rr_start
used=$(df -k --output=used "$T/spool" | tail -1 | tr -d ' ')
echo "used after start: ${used} KiB"
[ "$used" -le $((40 * 1024)) ] || fail "16 workers reserved $used KiB of a 128 MiB spool at start"
for i in $(seq 1 20); do
  swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test >/dev/null 2>&1 || fail "message $i refused"
done
rr_stop
[ "$(rr_queue_count)" -eq 20 ] || fail "not all 20 listed"
ok "16 workers on a 128 MiB spool reserve ${used} KiB at start and take mail"
