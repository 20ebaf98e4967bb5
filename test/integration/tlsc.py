"""A TLS SMTP client for the integration tests (Python's ssl module, no verification).

  tlsc.py inject PORT      EHLO, "STARTTLS\\r\\nRSET\\r\\n" in one write, the handshake; then
                           whatever the relay says within 1 s (nothing, if RSET was
                           dropped), the EHLO after it, and one message sent over TLS.
  tlsc.py implicit PORT    TLS from the first octet (port 465 style), one message.
  tlsc.py garbage PORT     STARTTLS, then octets that are no ClientHello.
  tlsc.py stall PORT       STARTTLS and nothing more: prints how long the relay waited.
  tlsc.py flood PORT SECS  implicit-TLS handshakes back to back from 8 threads, while one
                           session already up says NOOP every 20 ms: handshakes done, and
                           the NOOP round trips (count, slowest in ms).
Prints "key: value" lines for the shell test to check."""
import socket, ssl, sys, threading, time

def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c

def reply(f):
    lines = []
    while True:
        l = f.readline()
        if not l:
            return lines
        lines.append(l.decode(errors="replace").rstrip("\r\n"))
        if len(l) < 4 or l[3:4] != b"-":
            return lines

def cmd(s, f, line):
    s.sendall(line.encode() + b"\r\n")
    return reply(f)

def message(s, f):
    for line in ("MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.net>", "DATA"):
        print("reply:", cmd(s, f, line)[-1])
    s.sendall(b"Subject: tls\r\n\r\nover TLS\r\n.\r\n")
    print("reply:", reply(f)[-1])
    print("reply:", cmd(s, f, "QUIT")[-1])

def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "implicit":
        s = ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), 10))
        f = s.makefile("rb")
        print("banner:", reply(f)[-1])
        print("version:", s.version())
        print("ehlo:", " ".join(cmd(s, f, "EHLO implicit.test")))
        message(s, f)
        return
    if mode == "flood":
        secs = float(sys.argv[3])
        up = ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), 10))
        uf = up.makefile("rb")
        reply(uf)
        done, stop = [0], time.time() + secs
        def hammer():
            while time.time() < stop:
                try:
                    h = ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), 10))
                    done[0] += 1
                    h.close()
                except OSError:
                    pass
        ts = [threading.Thread(target=hammer) for _ in range(8)]
        for t in ts:
            t.start()
        n, worst = 0, 0.0
        while time.time() < stop:
            t0 = time.time()
            r = cmd(up, uf, "NOOP")
            worst = max(worst, time.time() - t0)
            if r and r[-1].startswith("250"):
                n += 1
            time.sleep(0.02)
        for t in ts:
            t.join()
        print("handshakes:", done[0])
        print("noops:", n)
        print("slowest_ms:", int(worst * 1000))
        return
    s = socket.create_connection(("127.0.0.1", port), 10)
    f = s.makefile("rb")
    print("banner:", reply(f)[-1])
    print("ehlo:", " ".join(cmd(s, f, "EHLO plain.test")))
    if mode == "inject":
        s.sendall(b"STARTTLS\r\nRSET\r\n")
        print("starttls:", reply(f)[-1])
        t = ctx().wrap_socket(s)
        tf = t.makefile("rb")
        t.settimeout(1.0)
        try:
            extra = t.recv(1000)
            print("after_handshake:", extra.decode(errors="replace").strip() or "(closed)")
        except (socket.timeout, TimeoutError):
            print("after_handshake: (nothing)")
        t.settimeout(10)
        print("version:", t.version())
        print("ehlo_tls:", " ".join(cmd(t, tf, "EHLO plain.test")))
        message(t, tf)
    elif mode == "garbage":
        print("starttls:", cmd(s, f, "STARTTLS")[-1])
        s.sendall(b"MAIL FROM:<x@y>\r\nRCPT TO:<a@b>\r\n" * 20)
        s.settimeout(10)
        try:
            rest = s.recv(1000)
            print("after_garbage:", repr(rest[:40]) if rest else "(closed)")
        except ConnectionResetError:
            print("after_garbage: (reset)")
    elif mode == "stall":
        print("starttls:", cmd(s, f, "STARTTLS")[-1])
        t0 = time.time()
        s.settimeout(30)
        try:
            while s.recv(1000):
                pass
        except ConnectionResetError:
            pass
        print("closed_after_s:", round(time.time() - t0, 1))

main()
