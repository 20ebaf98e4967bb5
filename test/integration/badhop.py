#!/usr/bin/env python3
"""A next hop that misbehaves in one way, for the delivery tests.

  badhop.py MODE PORTFILE COUNTFILE [SECONDS]
Listens on 127.0.0.1:0, writes its port to PORTFILE, counts accepted connections into
COUNTFILE (rewritten on every accept) and exits after SECONDS (default 60).
MODE:
  ehlo421   greets 220, answers EHLO with "250 ok" and "421 4.3.2 going away" in one
            write, then closes: the server refuses every transaction after greeting.
  trickle   sends its greeting one octet every 0.5 s, forever ("220 " and then dots).
  slow      a plain SMTP server (no PIPELINING, no CHUNKING) that waits 0.3 s before
            each 250 for a message; COUNTFILE also gets "accepted=N max_concurrent=M"
            (messages taken, most connections open at once).
  rcpt452   as slow, but every RCPT gets "452 4.2.1 try again later" after 0.1 s: no
            message is ever taken (COUNTFILE: accepted= counts the refused RCPTs).
  dblrset   offers PIPELINING and CHUNKING, answers every RSET twice ("250" "250") and
            every BDAT ... LAST with 554: a broken server whose replies shift by one; it
            takes no message (COUNTFILE: accepted= stays 0).
  rcptcap   as slow, without the wait, but the third and later RCPT of a transaction get
            "452 4.5.3 Too many recipients" (RFC 5321 4.5.3.1.10).
  noquit    as slow, without the wait, but QUIT gets no reply: the connection stays open,
            silent, until the client closes it (or SECONDS pass).
  badtls    as slow, without the wait, offering STARTTLS; STARTTLS gets "220" with a
            plaintext "250 2.0.0 injected" behind it in the same write, then plaintext
            garbage instead of a handshake, and the connection closes. Plaintext
            sessions that never say STARTTLS are served (accepted= counts messages).
"""
import os, socket, sys, threading, time

mode, portfile, countfile = sys.argv[1], sys.argv[2], sys.argv[3]
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
count = 0
lock = threading.Lock()

state = {"open": 0, "max": 0, "msgs": 0}

def report():
    with open(countfile + ".tmp", "w") as f:
        f.write("%d accepted=%d max_concurrent=%d" % (count, state["msgs"], state["max"]))
    os.rename(countfile + ".tmp", countfile)

def slow_smtp(c, delay=0.3, answer_quit=True, rcpt452=False, rcpt_cap=0, badtls=False,
              tlssilent=False):
    with lock:
        state["open"] += 1
        state["max"] = max(state["max"], state["open"])
        report()
    try:
        f = c.makefile("rb")
        c.sendall(b"220 slowhop ESMTP\r\n")
        nrcpt = 0
        while True:
            line = f.readline(4096)
            if not line:
                return
            cmd = line[:4].upper()
            if cmd == b"EHLO" and badtls:
                c.sendall(b"250-slowhop\r\n250 STARTTLS\r\n")
            elif cmd == b"STAR" and badtls:
                c.sendall(b"220 2.0.0 go ahead\r\n250 2.0.0 injected\r\n")
                if tlssilent:
                    while c.recv(4096):
                        pass             # silent until the client gives up
                    return
                c.recv(4096)             # the ClientHello
                c.sendall(b"this is not TLS\r\n" * 4)
                return
            elif cmd in (b"EHLO", b"HELO"):
                c.sendall(b"250 slowhop\r\n")
            elif cmd == b"DATA":
                c.sendall(b"354 go ahead\r\n")
                while True:
                    l = f.readline(100000)
                    if not l or l == b".\r\n":
                        break
                time.sleep(delay)
                with lock:
                    state["msgs"] += 1
                    report()
                c.sendall(b"250 2.0.0 taken\r\n")
            elif cmd in (b"MAIL", b"RSET"):
                nrcpt = 0
                c.sendall(b"250 ok\r\n")
            elif cmd == b"RCPT" and rcpt_cap:
                nrcpt += 1
                c.sendall(b"250 ok\r\n" if nrcpt <= rcpt_cap else b"452 4.5.3 Too many recipients\r\n")
            elif cmd == b"RCPT" and rcpt452:
                time.sleep(0.1)
                with lock:
                    state["msgs"] += 1   # here: RCPTs refused
                    report()
                c.sendall(b"452 4.2.1 try again later\r\n")
            elif cmd == b"QUIT":
                if not answer_quit:
                    while f.readline(4096):
                        pass             # silent until the client gives up
                    return
                c.sendall(b"221 bye\r\n")
                return
            else:
                c.sendall(b"250 ok\r\n")
    except OSError:
        pass
    finally:
        with lock:
            state["open"] -= 1
        c.close()

def dblrset(c):
    f = c.makefile("rb")
    c.sendall(b"220 dblrset ESMTP\r\n")
    while True:
        line = f.readline(4096)
        if not line:
            return
        cmd = line[:4].upper()
        if cmd == b"EHLO":
            c.sendall(b"250-dblrset\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n")
        elif cmd == b"RSET":
            c.sendall(b"250 2.0.0 ok\r\n250 2.0.0 ok\r\n")
        elif cmd == b"MAIL":
            c.sendall(b"250 2.1.0 ok\r\n")
        elif cmd == b"RCPT":
            c.sendall(b"250 2.1.5 ok\r\n")
        elif cmd == b"BDAT":
            n = int(line.split()[1])
            while n > 0:
                d = f.read(min(n, 65536))
                if not d:
                    return
                n -= len(d)
            c.sendall(b"554 5.7.1 rejected\r\n")
        elif cmd == b"QUIT":
            c.sendall(b"221 bye\r\n")
            return
        else:
            c.sendall(b"250 ok\r\n")

def serve(c):
    try:
        c.settimeout(10)
        if mode == "ehlo421":
            c.sendall(b"220 badhop ESMTP\r\n")
            buf = b""
            while b"\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            c.sendall(b"250 badhop\r\n421 4.3.2 going away\r\n")
            c.close()
        elif mode == "slow":
            slow_smtp(c)
        elif mode == "rcpt452":
            slow_smtp(c, 0, True, True)
        elif mode == "rcptcap":
            slow_smtp(c, 0, True, False, 2)
        elif mode == "dblrset":
            c.settimeout(seconds)
            dblrset(c)
        elif mode == "badtls":
            slow_smtp(c, 0, True, False, 0, True)
        elif mode == "tlssilent":
            c.settimeout(seconds)
            slow_smtp(c, 0, True, False, 0, True, True)
        elif mode == "noquit":
            c.settimeout(seconds)
            slow_smtp(c, 0, False)
        elif mode == "trickle":
            c.sendall(b"2")
            for _ in range(int(seconds * 2)):
                time.sleep(0.5)
                c.sendall(b"2" if _ < 2 else b".")
    except OSError:
        pass

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
s.settimeout(0.2)
end = time.time() + seconds
while time.time() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    with lock:
        count += 1
        report()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
