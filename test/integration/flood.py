#!/usr/bin/env python3
"""Hostile clients for the back-pressure tests.

  flood.py noread PORT N MBYTES SECONDS [--proxy-v2]
      N clients each try to send MBYTES of "NOOP\\r\\n" without ever reading a reply, for at
      most SECONDS. Prints one line per client: "sent=OCTETS" (what the relay let in),
      then keeps the sockets open until stdin closes (so the caller can measure meanwhile).
  flood.py proxytail PORT SRC NOOPS
      One connection: a PROXY v2 header naming SRC and NOOPS x "NOOP\\r\\n" in ONE send;
      reads until NOOPS+1 replies (banner included) arrived or 10 s passed. Prints
      "replies=N first=<first line> last=<last line>".
  flood.py connect ADDR SECONDS [SRC]
      Connects as fast as it can for SECONDS, saying nothing, keeping the newest 200 open.
      ADDR is a Unix socket's path, or HOST:PORT (from SRC when given). Prints "flood=N".
"""
import select, socket, struct, sys, time

def v2_header(src, dst="127.0.0.1", sport=40000, dport=25):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body

def noread(port, n, mbytes, seconds):
    chunk = b"NOOP\r\n" * 10923                      # ~64 KiB
    total = mbytes * 1024 * 1024
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # and never read
        s.setblocking(False)
        socks.append([s, 0])
    end = time.time() + seconds
    while time.time() < end:
        w = [e[0] for e in socks if e[1] < total and len(e) == 2]
        if not w:
            break
        _, ready, _ = select.select([], w, [], 0.2)
        for entry in socks:
            if entry[0] in ready:
                try:
                    entry[1] += entry[0].send(chunk)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    entry.append("cut")         # closed by the relay: stop
    for e in socks:
        print("sent=%d%s" % (e[1], " cut" if len(e) > 2 else ""), flush=True)
    sys.stdin.read()                                 # hold them until told
    for e in socks:
        e[0].close()

def proxytail(port, src, noops):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(v2_header(src) + b"NOOP\r\n" * noops)
    data = b""
    end = time.time() + 10
    s.settimeout(0.5)
    while time.time() < end and data.count(b"\r\n") < noops + 1:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        data += d
    lines = data.split(b"\r\n")
    lines = [l for l in lines if l]
    print("replies=%d first=%s last=%s" % (len(lines), lines[0].decode(errors="replace") if lines else "",
                                           lines[-1].decode(errors="replace") if lines else ""))

def connect(addr, secs, src=None):
    import collections
    end, q, n = time.time() + secs, collections.deque(), 0
    while time.time() < end:
        try:
            if ":" in addr:
                host, port = addr.rsplit(":", 1)
                s = socket.socket()
                s.setblocking(False)
                if src:
                    s.bind((src, 0))
                try:
                    s.connect((host, int(port)))
                except BlockingIOError:
                    pass
            else:
                s = socket.socket(socket.AF_UNIX)
                s.setblocking(False)
                s.connect(addr)
            q.append(s)
            n += 1
        except OSError:
            time.sleep(0.001)
        while len(q) > 200:
            q.popleft().close()
    print("flood=%d" % n)

if __name__ == "__main__":
    if sys.argv[1] == "noread":
        noread(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    elif sys.argv[1] == "connect":
        connect(sys.argv[2], float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    elif sys.argv[1] == "proxytail":
        proxytail(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
