#!/usr/bin/env python3
"""A next hop that misbehaves in one way, for the delivery tests.

  badhop.py MODE PORTFILE COUNTFILE [SECONDS]
Listens on 127.0.0.1:0, writes its port to PORTFILE, counts accepted connections into
COUNTFILE (rewritten on every accept) and exits after SECONDS (default 60).
MODE:
  ehlo421   greets 220, answers EHLO with "250 ok" and "421 4.3.2 going away" in one
            write, then closes: the server refuses every transaction after greeting.
"""
import os, socket, sys, threading, time

mode, portfile, countfile = sys.argv[1], sys.argv[2], sys.argv[3]
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
count = 0

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
    count += 1
    with open(countfile + ".tmp", "w") as f:
        f.write(str(count))
    os.rename(countfile + ".tmp", countfile)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
