#!/usr/bin/env python3
"""Process accounting from /proc for bench/run.sh and bench/mem.sh.

A "server" is the tree of processes under one or more root pids (ringrelay, the Postfix
master, the Haraka master, ringsink): every live process whose parent chain reaches a root.

  procstat.py tree ROOT...          pids of the tree, one per line
  procstat.py cpu ROOT...           CPU seconds used by the tree so far: the sum over its
                                    live processes of utime+stime (all threads) plus
                                    cutime+cstime (children they have reaped: Postfix's
                                    master reaps every smtpd/cleanup/smtp that exits, so
                                    processes that came and went are counted too)
  procstat.py mem ROOT...           one JSON object: procs, rss_kb (sum of VmRSS), pss_kb
                                    (sum of Pss from smaps_rollup), hwm_kb (sum of VmHWM)
  procstat.py sample OUT SECS ROOT...
                                    every SECS seconds until SIGTERM/SIGINT (or one hour),
                                    sums VmRSS and Pss over the tree; on exit writes JSON to
                                    OUT: peak_rss_kb, peak_pss_kb (each the largest sum seen
                                    at one sample), samples
"""
import json
import os
import signal
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # comm may hold spaces and parentheses: split after the last ')'
    rest = s[s.rindex(")") + 2:].split()
    return rest  # rest[0] = state (field 3), rest[1] = ppid (field 4)


def tree(roots):
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            parent[int(d)] = int(_stat(d)[1])
        except (OSError, ValueError, IndexError):
            continue
    roots = {r for r in roots if r in parent}
    out = []
    for pid in parent:
        p, seen = pid, 0
        while p and seen < 64:
            if p in roots:
                out.append(pid)
                break
            p = parent.get(p, 0)
            seen += 1
    return sorted(out)


def cpu(roots):
    ticks = 0
    for pid in tree(roots):
        try:
            f = _stat(pid)
        except (OSError, IndexError):
            continue
        # fields 14..17 (1-based) = utime stime cutime cstime = rest[11..14]
        ticks += sum(int(x) for x in f[11:15])
    return ticks / CLK


def _status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem(roots):
    pids = tree(roots)
    return {
        "procs": len(pids),
        "rss_kb": sum(_status_kb(p, "VmRSS") for p in pids),
        "pss_kb": sum(_pss_kb(p) for p in pids),
        "hwm_kb": sum(_status_kb(p, "VmHWM") for p in pids),
    }


def sample(out, secs, roots):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    peak_rss = peak_pss = n = 0
    deadline = time.monotonic() + 3600
    while not stop and time.monotonic() < deadline:
        m = mem(roots)
        peak_rss = max(peak_rss, m["rss_kb"])
        peak_pss = max(peak_pss, m["pss_kb"])
        n += 1
        time.sleep(secs)
    with open(out, "w") as f:
        json.dump({"peak_rss_kb": peak_rss, "peak_pss_kb": peak_pss, "samples": n}, f)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "sample":
        sample(argv[2], float(argv[3]), [int(x) for x in argv[4:]])
        return
    roots = [int(x) for x in argv[2:]]
    if cmd == "tree":
        print("\n".join(str(p) for p in tree(roots)))
    elif cmd == "cpu":
        print(f"{cpu(roots):.2f}")
    elif cmd == "mem":
        print(json.dumps(mem(roots)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
