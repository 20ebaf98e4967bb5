# The provided-buffer ring runs dry (shrunk to 2 x 64 octets in the test build): multishot
# recv ends with -ENOBUFS, is re-armed, and no byte or message is lost.
. "$(dirname "$0")/lib.sh"
export RR_TEST_RECV_BUFS=2,64
rr_start
out=$(python3 "$HERE/load.py" $RR_PORT 20 2000 120 "$T/acks")
[ "$out" = "acked=2000 errors=0" ] || fail "load: $out"
rr_stop
n=$(grep -o 'enobufs=[0-9]*' "$T/relay.log" | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
[ "$n" -gt 0 ] || fail "the buffer ring never ran dry: the test did not test anything"
q=$(rr_queue_count)
[ "$q" -eq 2000 ] || fail "queue lists $q, want 2000"
# every message arrived whole: load.py sends equal-sized messages (fixed-width names)
sizes=$(rr_queue --json | sed -nE 's/.*"size":([0-9]+).*/\1/p' | sort -u | wc -l)
[ "$sizes" -eq 1 ] || fail "messages of $sizes different sizes: bytes were lost or duplicated"
ok "ring ran dry $n times; 2000 messages intact"
