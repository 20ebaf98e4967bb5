#!/usr/bin/env python3
"""Bounded SMTP load that records every acknowledged queue id.

  load.py PORT CONNECTIONS MAX_MESSAGES MAX_SECONDS ACKFILE
Each connection sends transactions (MAIL/RCPT/DATA, pipelined up to DATA) until the
shared message budget or the time is used up, or the server goes away. Every
"250 2.0.0 Ok: queued as QID" is appended to ACKFILE (one QID per line, flushed at once)
before anything else happens, so a crash of the server cannot lose an ack the client saw.
Prints "acked=N errors=N".
"""
import re, socket, sys, threading, time

port, nconn, maxmsg, maxsec, ackpath = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
lock = threading.Lock()
budget = [maxmsg]
acked = [0]
errors = [0]
ackf = open(ackpath, "a", buffering=1)
deadline = time.time() + maxsec
QRE = re.compile(rb"^250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)\r\n", re.M)
body = (b"Subject: load\r\n\r\n" + (b"x" * 70 + b"\r\n") * 20)

def take():
    with lock:
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        return True

def readline(f):
    line = f.readline()
    if not line:
        raise EOFError
    return line

def reply(f):
    lines = []
    while True:
        l = readline(f)
        lines.append(l)
        if l[3:4] != b"-":
            return b"".join(lines)

def worker(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = s.makefile("rb")
        reply(f)
        s.sendall(b"EHLO load%03d\r\n" % i)
        reply(f)
        while time.time() < deadline and take():
            s.sendall(b"MAIL FROM:<s%03d@load.test>\r\nRCPT TO:<r@local.test>\r\nDATA\r\n" % i)
            r1, r2, r3 = reply(f), reply(f), reply(f)
            if not (r1.startswith(b"250") and r2.startswith(b"250") and r3.startswith(b"354")):
                with lock:
                    errors[0] += 1
                return
            s.sendall(body + b".\r\n")
            r = reply(f)
            m = QRE.match(r)
            if m:
                with lock:
                    ackf.write(m.group(1).decode() + "\n")
                    ackf.flush()
                    acked[0] += 1
            else:
                with lock:
                    errors[0] += 1
        s.sendall(b"QUIT\r\n")
        s.close()
    except (EOFError, OSError):
        with lock:
            errors[0] += 1

ts = [threading.Thread(target=worker, args=(i,)) for i in range(nconn)]
for t in ts: t.start()
for t in ts: t.join()
print("acked=%d errors=%d" % (acked[0], errors[0]))
