#!/usr/bin/env python3
"""A NOTIFY_SOCKET for the sd_notify test: binds a Unix datagram socket at PATH and
appends every datagram it receives, with its sender's pid when the kernel gives it
(SO_PASSCRED), to LOG, one per line ("pid=N READY=1|STATUS=..." with newlines as '|').
  notifyd.py PATH LOG SECONDS
"""
import os, socket, struct, sys, time

path, log, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.settimeout(0.2)
end = time.time() + seconds
with open(log, "a", buffering=1) as f:
    while time.time() < end:
        try:
            data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            continue
        pid = "?"
        for level, kind, d in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = str(struct.unpack("iII", d[:12])[0])
        f.write("pid=%s %s\n" % (pid, data.decode("utf-8", "replace").replace("\n", "|")))
