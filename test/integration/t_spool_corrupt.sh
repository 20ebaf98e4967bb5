# A damaged record in the middle of a segment costs that record only: the scan
# resynchronises on the next valid record (DESIGN.md, "Spool and delivery"). 100 messages
# through the real relay, then one flipped octet: in a body near the middle of the
# segment, then (on a fresh copy) in the length field of an early record. Each time
# `--queue` lists 99, and the relay still starts on the damaged spool.
. "$(dirname "$0")/lib.sh"
rr_config
sed -i 's/^workers: 2$/workers: 1/' "$T/ringrelay.yaml"   # one segment
rr_start
python3 "$HERE/load.py" $RR_PORT 1 100 60 "$T/acks" > "$T/load.out" 2>&1
acked=$(sort -u "$T/acks" | wc -l)
[ "$acked" -eq 100 ] || fail "acked $acked of 100 ($(cat "$T/load.out"))"
rr_stop
[ "$(rr_queue_count)" -eq 100 ] || fail "not 100 listed before any damage"

segs=("$T"/spool/w0-*.seg)
[ "${#segs[@]}" -eq 1 ] || fail "expected one segment, got ${#segs[@]}"
seg=${segs[0]}
cp "$seg" "$T/pristine.seg"

# seg_flip RECORD WHERE: XOR one octet of message record number RECORD (0-based) of the pristine
# copy into the segment. WHERE is "body" (an octet of the message data, 50 octets before
# the record's end) or "len" (the third octet of the payload length: +1 MiB, past the
# file's end).
# Prints the record's offset.
seg_flip() {
  python3 - "$T/pristine.seg" "$seg" "$1" "$2" <<'PY'
import struct, sys
src, dst, k, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
b = bytearray(open(src, "rb").read())
offs, off = [], 0
while off + 16 <= len(b) and b[off:off + 4] == b"RRS1":
    offs.append(off)
    off += 16 + struct.unpack_from("<I", b, off + 8)[0]
assert off == len(b), "segment does not parse: stopped at %d of %d" % (off, len(b))
msgs = [o for o in offs if b[o + 4] == 1]          # MSG records (PADs fill the blocks)
assert k < len(msgs), "only %d messages" % len(msgs)
r = msgs[k]
if where == "body":
    plen = struct.unpack_from("<I", b, r + 8)[0]
    pos = r + 16 + plen - 50        # inside the data, the payload's last field (scrambled)
    b[pos] ^= 0x01
else:
    b[r + 10] ^= 0x10
open(dst, "wb").write(b)
print(r)
PY
}

off=$(seg_flip 50 body) || fail "could not damage record 50"
n=$(rr_queue_count)
[ "$n" -eq 99 ] || fail "body octet of record 50 (offset $off) flipped: $n listed, want 99"

off=$(seg_flip 5 len) || fail "could not damage record 5"
n=$(rr_queue_count)
[ "$n" -eq 99 ] || fail "length octet of record 5 (offset $off) flipped: $n listed, want 99"

# The daemon starts on the damaged spool, and what it lists afterwards is unchanged.
rr_start
grep -q 'event=spool_scan.* live=99 ' "$T/relay.log" || fail "start-up scan did not find 99"
grep -Eq 'error event=spool_corrupt segment=w0-[0-9a-f]+\.seg offset=[0-9]+ skipped=[1-9][0-9]*' "$T/relay.log" \
  || fail "the damage was not logged as an error with segment, offset and octets skipped"
rr_stop
n=$(rr_queue_count)
[ "$n" -eq 99 ] || fail "after a restart: $n listed, want 99"
ok "one damaged record of 100 costs that record only (body, then length octet)"

# A segment cut short (truncated, here to half) while later segments of its worker hold
# records: what it lost may have been acknowledged, so it is an error (event=spool_cut_short),
# not the info-level torn tail a crash leaves in the segment being written. A restart
# after a clean stop, and the newest segment's own tail, say nothing of the kind.
rm -rf "$T/spool"; : > "$T/relay.log"
export RR_TEST_SEGMENT_MAX=65536
rr_config
sed -i 's/^workers: 2$/workers: 1/' "$T/ringrelay.yaml"
rr_start
python3 "$HERE/load.py" $RR_PORT 1 150 60 "$T/acks2" > "$T/load2.out" 2>&1
rr_stop
# a torn tail in the newest segment (what a power cut leaves): information once, trimmed
# away at that start, so that two restarts later, with segments written after it, it is
# no error
segs=("$T"/spool/w0-*.seg)
last=${segs[${#segs[@]}-1]}
python3 -c 'import sys; open(sys.argv[1], "ab").write(b"\x5a" * 300)' "$last"
rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test > /dev/null 2>&1 || fail "swaks"
rr_stop
rr_start
rr_stop
[ "$(grep -c 'event=spool_torn' "$T/relay.log")" -eq 1 ] || fail "a torn tail not seen once: $(grep -c 'event=spool_torn' "$T/relay.log") times"
grep -q 'event=spool_cut_short' "$T/relay.log" && fail "a cut_short error without any damage"
segs=("$T"/spool/w0-*.seg)
[ "${#segs[@]}" -ge 3 ] || fail "expected several segments, got ${#segs[@]}"
first=${segs[0]}; second=${segs[1]}
: > "$first"                                              # emptied
truncate -s $(( $(stat -c %s "$second") / 2 + 1000 )) "$second"   # cut inside a record
rr_start
for g in "$first" "$second"; do
  grep -q "error event=spool_cut_short segment=$(basename "$g") " "$T/relay.log" ||
    { grep 'spool_torn\|spool_cut' "$T/relay.log" >&2; fail "$(basename "$g") cut short before later ones was not logged as an error"; }
done
rr_stop
ok "segments emptied or cut inside a record before later ones of their worker are errors (spool_cut_short); none without damage"
