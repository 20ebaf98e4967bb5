#!/usr/bin/env python3
"""Wait (bounded) until a running ringsink has counted WANT messages (or recipients).

  sinkwait.py PID ERRFILE KEY WANT TIMEOUT [INTERVAL]

ringsink prints one JSON object to ERRFILE (its stderr) per SIGUSR1. This sends SIGUSR1
every INTERVAL seconds (default 0.05), reads the newest object, and stops when
obj[KEY] >= WANT, when TIMEOUT seconds have passed, when PID is gone, or on SIGTERM/SIGINT
(started before a client, it can be stopped when the client got fewer messages through
than it was asked to send). Prints one JSON
object on stdout:

  count     the last count seen
  t_first   wall-clock time (time.time()) of the first sample with count > 0 (null if none)
  t_done    time of the first sample with count >= WANT (null if never)
  t_end     time of the last sample
  first_before
            time of the last sample with count 0: the first arrival lies between it and
            t_first (t_done is likewise late by at most one INTERVAL plus a signal's answer)
  samples   [[t, count], ...] thinned to at most 400 points (for rates over time)

Each sample's time is taken just before the signal is sent, so a count is never credited
to a time earlier than it was reached.
"""
import json
import os
import signal
import sys
import time


def last_json(path, pos, cur):
    """Read what was appended to path since pos; return (pos, newest object or cur)."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except OSError:
        return pos, cur
    end = data.rfind(b"\n")
    if end < 0:
        return pos, cur
    for line in reversed(data[:end].split(b"\n")):
        if line.startswith(b"{"):
            try:
                cur = json.loads(line)
                break
            except ValueError:
                pass
    return pos + end + 1, cur


STOP = False


def on_stop(_sig, _frame):
    global STOP
    STOP = True


def main():
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    pid, path, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    want, timeout = int(sys.argv[4]), float(sys.argv[5])
    interval = float(sys.argv[6]) if len(sys.argv) > 6 else 0.05
    deadline = time.time() + timeout
    pos, cur = 0, None
    try:
        pos = os.path.getsize(path)
    except OSError:
        pass
    samples = []
    t_first = t_done = None
    count = 0
    while True:
        t = time.time()
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            break
        # wait (bounded) for the answer to this signal
        got = False
        wait_until = time.time() + 2.0
        while time.time() < wait_until:
            npos, obj = last_json(path, pos, None)
            if obj is not None:
                pos, cur, got = npos, obj, True
                break
            time.sleep(0.005)
        if got:
            count = int(cur.get(key, 0))
            samples.append([t, count])
            if t_first is None and count > 0:
                t_first = t
            if count >= want:
                t_done = t
                break
        if time.time() >= deadline or STOP:
            break
        time.sleep(interval)
    before = [s for s in samples if s[1] == 0]
    step = max(1, len(samples) // 400)
    thin = samples[::step]
    if samples and thin[-1] is not samples[-1]:
        thin.append(samples[-1])
    print(json.dumps({
        "count": count, "want": want, "t_first": t_first, "t_done": t_done,
        "t_end": samples[-1][0] if samples else None,
        "first_before": before[-1][0] if before else None,
        "interval": interval, "samples": thin,
    }))


if __name__ == "__main__":
    main()
