#!/usr/bin/env python3
"""Build PROXY v1/v2 headers for tests (independent of the relay's own builder).

  pp.py v1 SRC DST SPORT DPORT            -> PROXY TCP4/TCP6 ... CRLF
  pp.py v2 SRC DST SPORT DPORT [--local] [--tlv TYPE:HEX | --tlv TYPE=TEXT]... [--crc] [--bad-crc]
Writes the header bytes to stdout.
"""
import socket, struct, sys

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

SIG = b"\r\n\r\n\x00\r\nQUIT\n"

def v2(src, dst, sport, dport, local=False, tlvs=(), crc=False, bad_crc=False):
    fam6 = ":" in src
    if fam6:
        addr = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        famb = 0x21
    else:
        addr = socket.inet_aton(src) + socket.inet_aton(dst)
        famb = 0x11
    addr += struct.pack("!HH", sport, dport)
    body = addr
    for t, v in tlvs:
        body += struct.pack("!BH", t, len(v)) + v
    if crc or bad_crc:
        body += struct.pack("!BH", 0x03, 4) + b"\0\0\0\0"
    cmd = 0x20 if local else 0x21
    if local:
        famb = 0x00 if not tlvs else famb
    hdr = SIG + bytes([cmd, famb]) + struct.pack("!H", len(body)) + body
    if crc or bad_crc:
        c = crc32c(hdr)
        if bad_crc:
            c ^= 1
        hdr = hdr[:-4] + struct.pack("!I", c)
    return hdr

def main():
    a = sys.argv[1:]
    if a[0] == "v1":
        src, dst, sp, dp = a[1:5]
        fam = "TCP6" if ":" in src else "TCP4"
        out = ("PROXY %s %s %s %s %s\r\n" % (fam, src, dst, sp, dp)).encode()
    else:
        src, dst, sp, dp = a[1], a[2], int(a[3]), int(a[4])
        local = "--local" in a
        tlvs = []
        for i, x in enumerate(a):
            if x == "--tlv":
                if "=" in a[i + 1]:          # TYPE=text
                    t, v = a[i + 1].split("=", 1)
                    tlvs.append((int(t, 0), v.encode()))
                else:                        # TYPE:hex
                    t, h = a[i + 1].split(":")
                    tlvs.append((int(t, 0), bytes.fromhex(h)))
        out = v2(src, dst, sp, dp, local, tlvs, "--crc" in a, "--bad-crc" in a)
    sys.stdout.buffer.write(out)

main()
