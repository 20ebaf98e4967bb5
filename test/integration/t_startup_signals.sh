# Issue 7, defect 9: a SIGHUP before event=ready killed the daemon (exit 129, nothing
# logged, 20 of 20 tries): the signals were blocked only after the spool scan and the
# listeners. Now they are blocked first thing in main(), before any work, and read from a
# signalfd once the relay runs. And a config error that goes into the log on reload is
# escaped (it may quote the file).
. "$(dirname "$0")/lib.sh"
rr_config
python3 - "$RR_BIN" "$T/ringrelay.yaml" "$T/start.log" <<'PY' || fail "$(tail -3 "$T/start.log")"
import os, signal, subprocess, sys, time
rr, cfg, log = sys.argv[1:4]
def blocked(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1))
    return 0
def text():
    return open(log).read()
running = []
quiet = 0
def stop_all():
    for q in running:
        if q.poll() is None:
            q.kill()
            q.wait()
import atexit
atexit.register(stop_all)
for i in range(1, 21):
    open(log, "w").close()
    p = subprocess.Popen([rr, "-c", cfg], stdout=subprocess.DEVNULL, stderr=open(log, "a"))
    running.append(p)
    end = time.time() + 20
    # Hang up from the moment the relay is in main(): its mask shows SIGHUP blocked, or
    # it has said anything at all (the old relay logged its spool scan, opened its
    # listeners and only then blocked signals: a SIGHUP there killed it).
    while not blocked(p.pid) and not text():
        if p.poll() is not None or time.time() > end:
            sys.exit("try %d: never got going" % i)
    sent = 0
    while "event=ready" not in text():
        try:
            os.kill(p.pid, signal.SIGHUP); sent += 1
        except ProcessLookupError:
            pass
        if p.poll() is not None:
            sys.exit("try %d: died after %d early SIGHUPs (exit %d)" % (i, sent, p.returncode))
        if time.time() > end:
            sys.exit("try %d: not ready" % i)
        time.sleep(0.0002)
    if sent == 0:                             # this poller was too slow to get one in
        quiet += 1
    while sent and "event=reload" not in text():   # the pending HUP, taken once running
        if time.time() > end:
            sys.exit("try %d: the early SIGHUP was lost" % i)
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    rc = p.wait(20)
    if rc != 0:
        sys.exit("try %d: exit %d after SIGTERM" % (i, rc))
    with open(log) as f, open(log + ".all", "a") as g:
        g.write(f.read())
    print("try %d: %d early SIGHUPs, survived" % (i, sent))
if quiet > 5:
    sys.exit("in %d of 20 tries no SIGHUP got in before ready" % quiet)
PY
cat "$T/start.log.all" >> "$T/relay.log"
# Deterministically: under strace, the block is the relay's first act in main(), before it
# opens its configuration (the old relay blocked after its spool scan and listeners).
timeout 20 strace -f -e trace=rt_sigprocmask,openat -o "$T/strace" "$RR_BIN" -c "$T/ringrelay.yaml" 2> "$T/strace.log" &
spid=$!
for i in $(seq 1 200); do grep -q 'event=ready' "$T/strace.log" && break; sleep 0.05; done
grep -q 'event=ready' "$T/strace.log" || fail "not ready under strace"
# stop the relay itself (strace's child: a TERM to strace only detaches it, and timeout
# then waited its 20 s)
st=$(pgrep -P $spid); rl=$(pgrep -P "$st")
[ -n "$rl" ] && kill -TERM $rl 2>/dev/null; wait $spid
blk=$(grep -n 'rt_sigprocmask(SIG_BLOCK, \[HUP INT TERM\]' "$T/strace" | head -1 | cut -d: -f1)
cfg=$(grep -n "openat(.*ringrelay\.yaml" "$T/strace" | head -1 | cut -d: -f1)
[ -n "$blk" ] && [ -n "$cfg" ] || fail "strace: block at line '$blk', config opened at line '$cfg'"
[ "$blk" -lt "$cfg" ] || fail "signals blocked (strace line $blk) only after the config was opened (line $cfg)"
sanitizer_clean
# A broken file with control characters and quotes: the log line stays one escaped line.
rr_start
printf 'hostname: "a\\x1b[2J\\x07\\" q=1\n  bad: [\n' >> "$T/ringrelay.yaml"
printf 'workers: 2\x1b[31m\n' >> "$T/ringrelay.yaml"
kill -HUP $RR_PID
wait_log 'event=reload_failed' || fail "bad reload not logged"
line=$(grep 'event=reload_failed' "$T/relay.log" | tail -1)
if printf '%s' "$line" | LC_ALL=C grep -q $'[\x01-\x1f\x7f]'; then fail "control characters in the log line: $line"; fi
expect_match "$line" '^[^ ]+ error event=reload_failed keeping=old error="[^" ]*"$' "one escaped key=value line"
rr_stop
ok "20 starts with SIGHUPs from the first moment: all survived and reloaded once ready; reload error escaped"
