# A DSN that the spool cannot take does not take its message with it: the bounced
# recipients stay queued (logged event=bounce_failed), and bounce again at their next try
# once there is room, so every message is delivered or bounced to its sender.
#  40 messages from s@snd.test (routed to a DSN sink) wait for a next hop that is down; the
#  spool (a small tmpfs, 16 KiB test segments) is then filled up; the hop comes up and
#  rejects everything (5xx): the DSNs find no room; then the filler goes: all 40 DSNs
#  arrive, the queue is empty. (Before: each DSN the spool refused was logged and lost,
#  its message already noted bounced.)
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to mount a small tmpfs"; exit 0; }
mkdir -p "$T/spool"
mount -t tmpfs -o size=4m tmpfs "$T/spool" || fail "cannot mount tmpfs"
trap 'umount "$T/spool" 2>/dev/null; cleanup' EXIT
export RR_TEST_SEGMENT_MAX=16384
sink dsn
DSNP=$S_PORT
P=$(free_port)
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$P\"" \
          "  - id: back" "    nexthop: \"[127.0.0.1]:$DSNP\"" \
          "routes:" "  - domains: [snd.test]" "    transport: back" \
          "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 600"
rr_start
for i in $(seq 1 40); do
  swaks --server 127.0.0.1:$RR_PORT --from s@snd.test --to u$i@example.org > /dev/null 2>&1 || fail "swaks $i"
done
wait_log 'to=<u40@example.org>.*status=deferred' 20 || fail "not deferred while the hop is down"
# no room left for anything
dd if=/dev/zero of="$T/spool/filler" bs=4k 2> /dev/null
sink rej -l 127.0.0.1:$P --fail reject=100%
wait_log 'event=bounce_failed' 30 || fail "no DSN was refused by the full spool: the test did not test"
n_failed=$(grep -c 'event=bounce_failed' "$T/relay.log")
sleep 2
rm -f "$T/spool/filler"
all40() { [ "$(dumped dsn)" -ge 40 ]; }
wait_until 60 all40 || fail "only $(dumped dsn) of 40 DSNs arrived once there was room again ($n_failed refused)"
empty() { [ "$(rr_queue_count)" -eq 0 ]; }
wait_until 20 empty || { rr_queue >&2; fail "the queue did not empty"; }
ids=$(cat "$T/dsn"/*.eml | sed -nE 's/^X-Ringrelay-Queue-ID: ([0-9A-V]+).*/\1/p' | sort -u | wc -l)
[ "$ids" -ge 40 ] || fail "DSNs for only $ids distinct messages"
rr_stop
ok "a full spool refused $n_failed DSN(s): their recipients stayed queued, all 40 DSNs arrived once there was room"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
