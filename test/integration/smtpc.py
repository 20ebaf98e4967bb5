#!/usr/bin/env python3
"""Raw SMTP test client: sends exact bytes and prints what the server answered.

  smtpc.py PORT [--chunk N] [--delay S] [--wait-banner] SCRIPT
SCRIPT is a Python bytes literal body (escapes allowed), e.g. 'EHLO a\\r\\nQUIT\\r\\n'.
Steps are separated by '|||': the client sends a step, then reads replies until the
server is quiet for --quiet seconds (or closes), before sending the next step.
Everything received is written to stdout as-is; exit 0 unless connecting failed.
"""
import argparse, socket, sys, time, ast

def drain(s, quiet, limit=10.0):
    out = b""
    end = time.time() + limit
    s.settimeout(quiet)
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not d:
            return out, True
        out += d
    return out, False

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("script")
    ap.add_argument("--chunk", type=int, default=0, help="send N octets at a time")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--quiet", type=float, default=0.3)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--bind", default=None, help="source address")
    ap.add_argument("--prefix", default=None, help="file whose bytes are sent first")
    ap.add_argument("--prefix-chunk", type=int, default=0, help="send the prefix N octets at a time")
    a = ap.parse_args()
    raw = ast.literal_eval("b'''" + a.script.replace("'''", "\\'\\'\\'") + "'''")
    s = socket.create_connection((a.host, a.port), timeout=5,
                                 source_address=(a.bind, 0) if a.bind else None)
    if a.prefix:
        pre = open(a.prefix, "rb").read()
        step = a.prefix_chunk or len(pre) or 1
        for i in range(0, len(pre), step):
            s.sendall(pre[i:i + step])
            if a.prefix_chunk:
                time.sleep(a.delay or 0.02)
    out, closed = drain(s, a.quiet)
    sys.stdout.buffer.write(out)
    for step in raw.split(b"|||"):
        if closed:
            break
        try:
            if a.chunk:
                for i in range(0, len(step), a.chunk):
                    s.sendall(step[i:i + a.chunk])
                    if a.delay:
                        time.sleep(a.delay)
            else:
                s.sendall(step)
        except (BrokenPipeError, ConnectionResetError):
            break
        out, closed = drain(s, a.quiet)
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
    if not closed:
        out, closed = drain(s, a.quiet)
        sys.stdout.buffer.write(out)
    sys.stdout.write("\n[closed]\n" if closed else "\n[open]\n")

main()
