#!/usr/bin/env python3
"""test/fuzz/mkseeds.py [TARGET...] - writes the seed corpora test/fuzz/seeds/<target>/
(committed; run again after changing this file; with TARGETs, only theirs: proxy,
smtp_srv, addr, smtp_reply, spool). Small realistic inputs so that the fuzzers start
deep: valid PROXY v1/v2 headers with TLVs, SMTP sessions, replies, paths, spool
segments."""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- PROXY ---------------------------------------------------------------------------
PP = os.path.join(HERE, "..", "integration", "pp.py")   # the tests' own header builder


def v2(src, dst, sport, dport, tlvs=(), crc=False, local=False):
    """A v2 header from test/integration/pp.py (TLVs as (type, bytes))."""
    args = [sys.executable, PP, "v2", src, dst, str(sport), str(dport)]
    for t, v in tlvs:
        args += ["--tlv", "%d:%s" % (t, v.hex())]
    if crc:
        args.append("--crc")
    if local:
        args.append("--local")
    return subprocess.run(args, check=True, stdout=subprocess.PIPE).stdout


def proxy_seeds():
    ehlo = b"EHLO client.example\r\n"
    write("proxy", "v1-tcp4", b"PROXY TCP4 192.0.2.10 203.0.113.9 56324 25\r\n" + ehlo)
    write("proxy", "v1-tcp6-longest",
          b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
          b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n")
    write("proxy", "v1-tcp6-mapped", b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 1 25\r\n")
    write("proxy", "v1-unknown", b"PROXY UNKNOWN ignored words\r\n")
    write("proxy", "v2-local", v2("192.0.2.10", "203.0.113.9", 1, 2, local=True))
    write("proxy", "v2-local-unspec", b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")  # HAProxy's check
    sub = lambda t, v: struct.pack(">BH", t, len(v)) + v
    ssl = (bytes([0x07]) + struct.pack(">I", 0) + sub(0x21, b"TLSv1.3") +
           sub(0x22, b"client.example") + sub(0x23, b"TLS_AES_256_GCM_SHA384") +
           sub(0x24, b"RSA-SHA256") + sub(0x25, b"RSA2048"))
    tlvs = [(0x01, b"smtp"), (0x02, b"mx.example.com"), (0x05, bytes(range(32))),
            (0x20, ssl), (0x30, b"ns1"), (0x04, b"\0" * 8)]
    write("proxy", "v2-inet-tlvs-crc",
          v2("192.0.2.10", "203.0.113.9", 56324, 25, tlvs, crc=True) + ehlo)
    # an AWS NLB sends its VPC endpoint id as type 0xEA
    write("proxy", "v2-inet6-nlb-crc", v2("2001:db8::1", "2001:db8::2", 40000, 25,
                                          [(0xEA, b"\x01vpce-0123456789abcdef0")], crc=True))
    unix = b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")
    write("proxy", "v2-unix", b"\r\n\r\n\x00\r\nQUIT\n\x21\x31" + struct.pack(">H", len(unix)) + unix)
    write("proxy", "v2-unique-id-max", v2("192.0.2.10", "203.0.113.9", 1, 2, [(0x05, b"u" * 128)]))
    # the default cap (4096) and the largest header (65551), with a CRC over all of it;
    # the last two octets (the harness's configured cap) follow the header
    pad = 4096 - 16 - 12 - 7 - 3
    write("proxy", "v2-4096-crc",
          v2("192.0.2.10", "203.0.113.9", 1, 2, [(0x04, b"\0" * pad)], crc=True) + b"\x0f\xf0")
    pad = 65551 - 16 - 12 - 7 - 3 * 3 - 14
    big = [(0x02, b"mx.example.com"), (0xE0, bytes(i & 0xff for i in range(pad // 2))),
           (0xE1, bytes(i & 0xff for i in range(pad - pad // 2)))]
    write("proxy", "v2-65551-crc", v2("192.0.2.10", "203.0.113.9", 1, 2, big, crc=True) + ehlo)


# ---- SMTP session ---------------------------------------------------------------------
# 10 octets of configuration (see smtp_srv_fuzz.c), then the client's stream.
def cfg(size=0, rcpt=0, line=0, errs=0, split=0, spool=0, misc=0, allow=0x80, t=0):
    return bytes([size, rcpt, line, errs, split, spool, misc, allow]) + struct.pack(">H", t)


def smtp_seeds():
    msg = ("From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\n"
           "Hello.\r\n..a dot-stuffed line\r\n.\r\n")
    write("smtp_srv", "pipelined-ehlo", cfg(split=7) +
          ("EHLO client.example\r\nMAIL FROM:<a@example.com> SIZE=120 BODY=8BITMIME\r\n"
           "RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n" + msg +
           "QUIT\r\n").encode())
    write("smtp_srv", "helo-one-by-one", cfg(misc=0x05) +
          ("HELO client\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n" + msg +
           "RSET\r\nNOOP\r\nVRFY x\r\nQUIT\r\n").encode())
    write("smtp_srv", "smtputf8",
          cfg(spool=0x80) + ("EHLO c\r\nMAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8\r\n"
                             "RCPT TO:<\u7528\u6237@\u4f8b\u5b50.\u6d4b\u8bd5>\r\nDATA\r\n"
                             "Subject: \u00e9\r\n\r\nx\r\n.\r\nQUIT\r\n").encode())
    write("smtp_srv", "utf8-undeclared",
          cfg() + "EHLO c\r\nMAIL FROM:<j\u00f6rg@example.com>\r\n".encode())
    write("smtp_srv", "quoted-literal",
          cfg(allow=0x01) + (b'EHLO [192.0.2.1]\r\nMAIL FROM:<"a b\\"c"@[192.0.2.7]>\r\n'
                             b"RCPT TO:<@relay.example,@r2.example:u@[IPv6:2001:db8::1]>\r\n"
                             b"RCPT TO:<x@denied.example>\r\nDATA\r\n.\r\nQUIT\r\n"))
    # SMTP smuggling: bare LF / CR around the end of data, a second transaction behind it
    smuggle = ("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
               "Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@example.com>\r\n"
               "RCPT TO:<victim@example.net>\r\nDATA\r\nsmuggled\r\n.\r\n")
    write("smtp_srv", "smuggle-lf-dot-lf", cfg() + smuggle.encode())
    write("smtp_srv", "smuggle-variants", cfg(split=3) +
          (b"EHLO c\r\nMAIL FROM:<a@e.com>\r\nRCPT TO:<b@e.net>\r\nDATA\r\n"
           b"x\r\n.\nNOT END\n.\r\nNOT END\r.\r\nNOT END\r\n.\r\n"
           b"MAIL FROM:<a@e.com>\r\nRCPT TO:<b@e.net>\r\nDATA\r\nok\r\n.\r\n"
           b"NOOP\nRSET\r\rNOOP\r\n"))
    write("smtp_srv", "limits", cfg(size=3, rcpt=2, line=4, errs=3) +
          (b"EHLO c\r\nMAIL FROM:<a@e.com> SIZE=100\r\nMAIL FROM:<a@e.com>\r\n"
           b"RCPT TO:<1@e.net>\r\nRCPT TO:<2@e.net>\r\nRCPT TO:<3@e.net>\r\nDATA\r\n" +
           b"x" * 79 + b"\r\n" + b"y" * 30 + b"\r\n.\r\n" + b"BOGUS\r\nDATA\r\n"))
    write("smtp_srv", "long-command", cfg(errs=1) +
          b"EHLO " + b"h" * 600 + b"\r\nMAIL FROM:<a@e.com> " + b"X" * 490 + b"\r\n")
    write("smtp_srv", "errors-then-timeout", cfg(errs=4, t=0x8000 | 40) +
          b"MAIL FROM:<a@b.c>\r\nRCPT TO:<a@b.c>\r\nDATA\r\n\x00\r\nHELO x\r\nNOOP\r\n")
    write("smtp_srv", "mail-params", cfg(size=5) +
          (b"EHLO c\r\nMAIL FROM:<a@e.com> SIZE=\r\nMAIL FROM:<a@e.com> SIZE=12a\r\n"
           b"MAIL FROM:<a@e.com> SIZE=99999999999999999999999 BODY=7BIT\r\n"
           b"MAIL FROM:<a@e.com> BODY=8BITMIME BODY=7BIT SIZE=1000\r\n"
           b"RCPT TO:<b@e.net> NOTIFY=NEVER\r\nRCPT TO:<b@e.net>\r\nDATA x\r\nDATA\r\n.\r\n"))
    # a message over 64 KiB (the session frees such a buffer after use), default limits
    body = b"".join(b"line %05d " % i + b"x" * 56 + b"\r\n" for i in range(1000))
    write("smtp_srv", "big-message", cfg(spool=0x80) +
          b"EHLO c\r\nMAIL FROM:<a@e.com>\r\nRCPT TO:<b@e.net>\r\nDATA\r\n" + body +
          b".\r\nMAIL FROM:<a@e.com>\r\nRCPT TO:<b@e.net>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n")
    write("smtp_srv", "queue-answers", cfg(spool=0x13, misc=0x80) +
          b"".join(b"HELO c\r\nMAIL FROM:<s%d@e.com>\r\nRCPT TO:<r@e.net>\r\nDATA\r\nm\r\n.\r\n" % i
                   for i in range(8)))


# ---- addresses ------------------------------------------------------------------------
def addr_seeds():
    for name, p in [
        ("plain", "<user@example.com>"), ("null", "<>"), ("postmaster", "<Postmaster>"),
        ("quoted", '<"john \\"q\\" smith"@example.com> SIZE=1'),
        ("route", "<@a.example,@b.example:user@c.example>"),
        ("ipv4", "<u@[192.0.2.1]>"), ("ipv6", "<u@[IPv6:2001:db8::1]>"),
        ("ipv6-v4", "<u@[IPv6:::ffff:192.0.2.1]>"), ("ipv6-full", "<u@[IPv6:1:2:3:4:5:6:7:8]>"),
        ("utf8", "<j\u00f6rg@b\u00fccher.example>"), ("utf8-cjk", "<\u7528\u6237@\u4f8b\u5b50.\u6d4b\u8bd5>"),
        ("verp", "<bounce+list=user=example.org@lists.example.com>"),
        ("long-label", "<a@" + "l" * 63 + ".example>"),
        ("path-256", "<" + "v" * 241 + "@example.com>"),
        ("domain-256", "<a@" + ".".join(["d" * 63] * 4) + ">"),
        ("path-257", "<" + "v" * 242 + "@example.com>"),
    ]:
        write("addr", name, p.encode())


# ---- replies --------------------------------------------------------------------------
def reply_seeds():
    write("smtp_reply", "banner", b"220 mx.example.com ESMTP Postfix\r\n")
    write("smtp_reply", "ehlo", b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
          b"250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n")
    write("smtp_reply", "pipelined", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n554 5.7.1 <x@y>: Relay access denied\r\n"
          b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4BcD\r\n221 2.0.0 Bye\r\n")
    write("smtp_reply", "bare-lf", b"451 4.3.0 later\n421 closing\n")
    write("smtp_reply", "bare-code", b"250\r\n250-\r\n250 x\r\n")
    write("smtp_reply", "long", b"250 " + b"x" * 2044 + b"\r\n")


# ---- spool segments --------------------------------------------------------------------
# The record format of proto/spoolrec.c, written independently of it (a second reading of
# the documented layout): "RRS1" | type | 3 zero | payload length | CRC-32C | payload.
def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def record(rtype, payload):
    head = bytes([rtype, 0, 0, 0]) + struct.pack("<I", len(payload))
    return b"RRS1" + head + struct.pack("<I", crc32c(head + payload)) + payload


def sstr(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<I", len(b)) + b


GOLDEN = 0x9E3779B97F4A7C15


def scramble(data, nonce):
    out = bytearray(data)
    for i in range(len(out)):
        k = (nonce + (i // 8 + 1) * GOLDEN) & 0xFFFFFFFFFFFFFFFF
        out[i] ^= (k >> (8 * (i % 8))) & 0xFF
    return bytes(out)


def msg(qid, rcpts, data, arrival=1700000000, nonce=0x1122334455667788, sender="s@example.com"):
    return record(1, sstr(qid) + struct.pack("<QI", arrival, 0) + sstr(sender) +
                  sstr("192.0.2.1") + struct.pack("<I", len(rcpts)) +
                  b"".join(sstr(r) for r in rcpts) + struct.pack("<Q", nonce) +
                  sstr(scramble(data, nonce)))


def done(qid):
    return record(2, sstr(qid))


def pad(total):
    return record(3, bytes(total - 16))


DELIVERED, BOUNCED, DEFERRED = 1, 2, 3


def rcpt(qid, state, attempts, next_try, at, idx, rtype=4):
    return record(rtype, sstr(qid) + struct.pack("<BIQQI", state, attempts, next_try, at, len(idx)) +
                  b"".join(struct.pack("<I", i) for i in idx))


def void(qid):
    return record(5, sstr(qid))


def spool_seeds():
    body = b"Received: from c by relay.test\r\nSubject: hi\r\n\r\nhello\r\n"
    a = msg("4Xb9kQ1", ["bob@example.net", "carol@example.org"], body)
    write("spool", "segment-mixed",
          a + rcpt("4Xb9kQ1", DEFERRED, 1, 1700003600, 1700000060, [0]) +
          rcpt("4Xb9kQ1", DELIVERED, 2, 0, 1700003700, [0, 1]) + void("7Yc0mR2") +
          done("4Xb9kQ1") + pad(64) + msg("8Zd1nS3", ["dave@example.com"], b"x\r\n", nonce=7) +
          record(6, b"a newer build's record") + bytes(512))
    five = ["r%d@example.net" % i for i in range(5)]
    write("spool", "rcpt-many-indexes",
          msg("MANY", five, body) + rcpt("MANY", BOUNCED, 3, 0, 1700000100, [4, 0, 2]) +
          rcpt("MANY", DEFERRED, 7, 0xFFFFFFFFFFFFFFFF, 1700000200, [1, 3, 5, 0xFFFFFFFF]))
    r = bytearray(rcpt("Q1", DEFERRED, 1, 1700003600, 1700000000, [0]))
    r[-1] ^= 1                                  # bit rot in an index: CRC mismatch
    write("spool", "damaged-rcpt",
          msg("Q1", ["a@example.com"], b"x\r\n") + bytes(r) + void("Q1") + done("Q0"))
    r = rcpt("Q2", DELIVERED, 1, 0, 1700000000, [0, 1, 2])
    write("spool", "torn-rcpt", msg("Q2", ["a@b", "c@d", "e@f"], body) + r[:len(r) - 5])
    # good CRCs, payloads that are not outcomes: a state out of range, a final state with a
    # next try, n one short of the indexes; then a valid VOID
    write("spool", "rcpt-bad-payloads",
          rcpt("Q3", 4, 1, 0, 1, [0]) + rcpt("Q3", DELIVERED, 1, 5, 1, [0]) +
          record(4, sstr("Q3") + struct.pack("<BIQQI", DEFERRED, 1, 9, 1, 1) + bytes(8)) +
          void("Q3"))


TARGETS = {"proxy": proxy_seeds, "smtp_srv": smtp_seeds, "addr": addr_seeds,
           "smtp_reply": reply_seeds, "spool": spool_seeds}
for t in sys.argv[1:] or TARGETS:
    TARGETS[t]()
