#!/usr/bin/env python3
"""Markdown table of bench/run.sh's rows (rows.tsv, header line first).

  table.py ROWS.tsv

One row per size x client x server, in the order run. Ratios divide this row's msgs/s by
the limit's, Postfix's and Haraka's of the same client and size ("—" when that one has
no number). CPU per 10,000 messages = server CPU seconds / accepted messages * 10,000;
"CPU 0 busy" = server CPU seconds / wall seconds of the row (client start to the last
delivery). Peak RSS: VmHWM of the one process, or (*) the largest sum of VmRSS over the
process tree seen in 0.2 s samples.
"""
import csv
import sys

NAMES = {"limit": "limit (ringsink)", "ringrelay": "ringrelay",
         "ringrelay-before": "ringrelay (before)", "postfix": "Postfix",
         "haraka": "Haraka"}


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def size_name(b):
    b = int(b)
    return f"{b // 1024} KiB" if b % 1024 == 0 else f"{b} B"


def main(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    rate = {}
    for r in rows:
        rate[(r["size"], r["client"], r["peer"])] = num(r["rate"])

    def ratio(r, ref):
        a, b = num(r["rate"]), rate.get((r["size"], r["client"], ref))
        if a is None or not b:
            return "—"
        return f"{a / b:.2f}×"

    print("| size | client | server | msgs | msgs/s | p99 ms | delivered/s | CPU s / 10k msgs"
          " | CPU 0 busy | peak RSS MiB | ÷ limit | ÷ Postfix | ÷ Haraka | notes |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        acc, cpu, wall = num(r["accepted"]), num(r["cpu_s"]), num(r["wall_s"])
        rt = num(r["rate"])
        if rt is None:
            cells = ["—"] * 10
        else:
            p99 = r["p99_ms"] if r["p99_ms"] not in ("", "-") else "—"
            if r["peer"] in ("ringrelay", "ringrelay-before"):
                dr = "accept-only"
            elif r["deliv_rate"] in ("", "-"):
                dr = "—"
            else:
                dr = f"{num(r['deliv_rate']):,.0f}"
            per10k = f"{cpu / acc * 10000:.2f}" if acc and cpu is not None else "—"
            busy = f"{cpu / wall * 100:.0f}%" if wall and cpu is not None else "—"
            rss = num(r["rss_kb"])
            rss_s = "—" if rss is None else f"{rss / 1024:.1f}"
            if rss is not None and r["rss_how"] != "VmHWM":
                pss = num(r["pss_kb"])
                rss_s += "*" + (f" (PSS {pss / 1024:.1f})" if pss else "")
            cells = [r["accepted"], f"{rt:,.0f}", p99, dr, per10k, busy, rss_s,
                     ratio(r, "limit"), ratio(r, "postfix"), ratio(r, "haraka")]
        print("| " + " | ".join([size_name(r["size"]), r["client"],
                                 NAMES.get(r["peer"], r["peer"])] + cells +
                                [r["notes"] or ""]) + " |")
    print()
    print("msgs/s: ringblast's figure (first transaction to last reply); smtp-source: messages"
          " / its wall time. p99: ringblast, end of DATA to the 250 (smtp-source reports no"
          " latency). delivered/s: messages at the downstream ringsink / time from the"
          " client's start until the last one arrived. CPU: utime+stime (+cutime+cstime of"
          " reaped children) of the server's whole process tree from /proc, before and after"
          " the row, delivery included. Peak RSS: VmHWM of the single process; * = the"
          " largest sum of VmRSS over the tree's processes in 0.2 s samples (shared pages"
          " counted once per process), with the largest sum of PSS (shared pages divided among"
          " the processes that map them) in brackets.")


if __name__ == "__main__":
    main(sys.argv[1])
