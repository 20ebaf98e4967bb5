#!/usr/bin/env python3
"""Markdown tables of bench/run.sh's rows (rows.tsv, header line first).

  table.py ROWS.tsv                     the table of every row
  table.py --e2e ROWS.tsv               end to end: delivered/s side by side, with ratios
  table.py --goals ROWS.tsv [BACKLOG.json]
                                        issue 8's goals, met or not, with the ratios

One row per size x client x server, in the order run. Ratios divide this row's msgs/s by
the limit's, Postfix's and Haraka's of the same client and size ("—" when that one has
no number). CPU per 10,000 messages = server CPU seconds / accepted messages * 10,000;
"CPU 0 busy" = server CPU seconds / wall seconds of the row (client start to the last
delivery). Peak RSS: VmHWM of the one process, or (*) the largest sum of VmRSS over the
process tree seen in 0.2 s samples.
"""
import csv
import json
import sys

NAMES = {"limit": "limit (ringsink)", "ringrelay": "ringrelay",
         "ringrelay-before": "ringrelay (before)", "postfix": "Postfix",
         "haraka": "Haraka", "haproxy": "HAProxy (mode tcp)"}
# relaying servers, in the order of the end-to-end table
RELAYS = ["haproxy", "ringrelay", "postfix", "haraka"]


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
            if r["peer"] == "ringrelay-before":
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


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def deliv(rows):
    """(size, client, peer) -> delivered/s, only where every accepted message arrived."""
    d = {}
    for r in rows:
        dr, acc, got = num(r["deliv_rate"]), num(r["accepted"]), num(r["delivered"])
        if dr is not None and acc and got is not None and got >= acc:
            d[(r["size"], r["client"], r["peer"])] = dr
    return d


def e2e(path):
    rows = load(path)
    d = deliv(rows)
    keys = []
    for r in rows:
        k = (r["size"], r["client"])
        if k not in keys:
            keys.append(k)

    def cell(v):
        return "—" if v is None else f"{v:,.0f}"

    def rat(a, b):
        return "—" if a is None or not b else f"{a / b:.2f}×"

    print("| size | client | HAProxy (mode tcp) | ringrelay | Postfix | Haraka"
          " | ringrelay ÷ HAProxy | ringrelay ÷ Postfix | ringrelay ÷ Haraka |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for size, client in keys:
        v = {p: d.get((size, client, p)) for p in RELAYS}
        print("| " + " | ".join([size_name(size), client] + [cell(v[p]) for p in RELAYS] +
                                [rat(v["ringrelay"], v["haproxy"]),
                                 rat(v["ringrelay"], v["postfix"]),
                                 rat(v["ringrelay"], v["haraka"])]) + " |")
    print()
    print("Messages delivered per second at the downstream ringsink (the same sink program for"
          " every server, on CPU 1 with the client; the server on CPU 0): messages / time from"
          " the client's start until the sink had counted the last one. \"—\": no number, or"
          " not every accepted message arrived within the bound.")


def goals(path, backlog=None):
    rows = load(path)
    d = deliv(rows)
    out = []

    def verdict(ok):
        return "**met**" if ok else "**not met**"

    keys = []
    for r in rows:
        k = (r["size"], r["client"])
        if k not in keys:
            keys.append(k)
    for size, client in keys:
        rr, pf, hp = (d.get((size, client, p)) for p in ("ringrelay", "postfix", "haproxy"))
        what = f"{size_name(size)}, {client}"
        if rr is not None and pf:
            out.append((f"end to end ≥ 10× Postfix ({what})",
                        f"{rr:,.0f} vs {pf:,.0f} msgs/s delivered: {rr / pf:.1f}×",
                        verdict(rr >= 10 * pf)))
        else:
            out.append((f"end to end ≥ 10× Postfix ({what})", "no number", "—"))
        if rr is not None and hp:
            out.append((f"end to end ≥ 50% of HAProxy ({what})",
                        f"{rr:,.0f} vs {hp:,.0f} msgs/s delivered: {rr / hp * 100:.0f}%",
                        verdict(rr >= 0.5 * hp)))
        else:
            out.append((f"end to end ≥ 50% of HAProxy ({what})", "no number", "—"))
    if backlog:
        try:
            with open(backlog) as f:
                b = json.load(f)
        except (OSError, ValueError):
            b = None
        if not b:
            out.append(("backlog of 1,000,000 recipients", "no result", "—"))
        else:
            n = b.get("recipients_queued") or 0
            for key, label in (("bytes_per_rcpt_peak", "at the peak (VmHWM during the load)"),
                               ("bytes_per_rcpt_restart", "after the restart (VmRSS)")):
                v = b.get(key)
                if v is None:
                    out.append((f"≤ 300 B per queued recipient, {label}", "no number", "—"))
                else:
                    out.append((f"≤ 300 B per queued recipient, {label}",
                                f"{v:,.0f} B ({n:,} recipients)", verdict(v <= 300)))
            sc = b.get("scan_s")
            if sc is None:
                out.append(("restart scan of a million ≤ 5 s", "no number", "—"))
            else:
                out.append(("restart scan of a million ≤ 5 s",
                            f"{sc:.2f} s ({b.get('scan_recipients_open', 0):,} open recipients,"
                            f" {b.get('scan_messages', 0):,} messages)",
                            verdict(sc <= 5) if n >= 1000000
                            else f"— (a backlog of {n:,}, not a million)"))
    print("| goal | seen | |")
    print("|---|---|---|")
    for g, seen, v in out:
        print(f"| {g} | {seen} | {v} |")


if __name__ == "__main__":
    if sys.argv[1] == "--e2e":
        e2e(sys.argv[2])
    elif sys.argv[1] == "--goals":
        goals(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        main(sys.argv[1])
