# Found in review: the start-up scan (and --queue) keeps every segment of the spool mapped
# at once (plus a reference per message), so a spool with more segments than
# vm.max_map_count (65530 by default) cannot be scanned: --queue fails and the relay does
# not start ("spool scan: Cannot allocate memory"). Segments are never removed today
# (no delivery), every start opens a new one per worker, and spool failures open more.
# Here: 66001 small segments (4 KiB each, one message), 260 MiB in all.
. "$(dirname "$0")/lib.sh"
limit=$(cat /proc/sys/vm/max_map_count)
rr_config
sed -i 's/^workers: 2$/workers: 1/' "$T/ringrelay.yaml"
rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test >/dev/null 2>&1 || fail swaks
rr_stop
python3 - "$(ls "$T"/spool/w0-*.seg)" "$T/spool" $((limit + 470)) <<'PY'
import sys, os
src, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
for i in range(2, n + 1):
    with open(os.path.join(d, "w0-%016x.seg" % i), "wb") as f:
        f.write(data)
PY
n=$(ls "$T/spool" | grep -c '\.seg$')
out=$(rr_queue 2>&1 | tail -1); rc=$?
"$RR_BIN" -c "$T/ringrelay.yaml" 2> "$T/start.log" & p=$!
for i in $(seq 1 150); do grep -qE 'event=(ready|start_failed)' "$T/start.log" && break; sleep 0.2; done
kill -TERM $p 2>/dev/null; wait $p; prc=$?
grep -q 'event=ready' "$T/start.log" || fail "relay does not start on a spool of $n segments (max_map_count $limit): $(grep -o 'error=.*' "$T/start.log" | head -1)"
# every segment holds the same record (one queue id): since reclaim's copies, a message
# found in several segments is one message (the scan counts the rest as duplicates)
expect_match "$out" "-- 1 messages" "--queue on $n segments"
ok "a spool of $n segments is scanned and listed"
