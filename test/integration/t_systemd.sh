# systemd (issue 11): the daemon's sd_notify messages on a NOTIFY_SOCKET the test
# provides — READY=1 (with STATUS=) only once it listens, RELOADING=1 then READY=1
# around a SIGHUP (and a failed reload says so), STOPPING=1 at SIGTERM, all from the
# daemon's own pid — and etc/ringrelay.service passes `systemd-analyze verify` (its
# binary path pointed at the build, its man pages found in the build's man folder).
. "$(dirname "$0")/lib.sh"
python3 "$HERE/notifyd.py" "$T/notify.sock" "$T/notify.log" 60 &
wait_until 5 test -S "$T/notify.sock" || fail "notify socket not there"
export NOTIFY_SOCKET=$T/notify.sock
rr_start
unset NOTIFY_SOCKET
wait_until 5 grep -q 'READY=1' "$T/notify.log" || fail "no READY=1"
line=$(grep -m1 'READY=1' "$T/notify.log")
expect_match "$line" "^pid=$RR_PID READY=1\|STATUS=ready: 2 workers, config $T/ringrelay.yaml$" "READY=1 with a STATUS from the daemon itself"
# READY came after the listener was bound: the port answers
swaks --server 127.0.0.1:$RR_PORT --quit-after EHLO > /dev/null 2>&1 || fail "not listening after READY"
kill -HUP "$RR_PID"
wait_until 5 eval '[ "$(grep -c "READY=1" "$T/notify.log")" -ge 2 ]' || fail "no READY=1 after the reload"
expect_match "$(cat "$T/notify.log")" "pid=$RR_PID RELOADING=1\|STATUS=reloading" "RELOADING=1"
expect_match "$(tail -1 "$T/notify.log")" "READY=1\|STATUS=ready \(reloaded\)" "READY=1 after the reload"
echo "this: is: not: yaml: [" >> "$T/ringrelay.yaml"
kill -HUP "$RR_PID"
wait_until 5 grep -q 'reload failed' "$T/notify.log" || fail "a failed reload not said in STATUS"
kill -TERM "$RR_PID"
wait_until 10 grep -q 'STOPPING=1' "$T/notify.log" || fail "no STOPPING=1"
wait "$RR_PID"; rc=$?; RR_PID=
[ "$rc" -eq 0 ] || fail "exit $rc"
sanitizer_clean
# order: READY, RELOADING, READY, RELOADING, READY (failed), STOPPING
got=$(sed -E 's/^pid=[0-9]+ ([A-Z]+=1).*/\1/' "$T/notify.log" | tr '\n' ' ')
[ "$got" = "READY=1 RELOADING=1 READY=1 RELOADING=1 READY=1 STOPPING=1 " ] || fail "order: $got"
ok "sd_notify: READY after listening, RELOADING/READY around SIGHUP (failure said), STOPPING"

# the unit file
command -v systemd-analyze > /dev/null || fail "systemd-analyze missing (scripts/install-deps.sh)"
mkdir -p "$T/unit"
sed "s|/usr/sbin/ringrelay|$RR_BIN|g" "$HERE/../../etc/ringrelay.service" > "$T/unit/ringrelay.service"
MAN=$(readlink -f "${RR_MAN:-$(dirname "$RR_BIN")/../man}")
out=$(MANPATH=$MAN systemd-analyze verify "$T/unit/ringrelay.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify said: $out"
grep -q '^Type=notify$' "$T/unit/ringrelay.service" || fail "not Type=notify"
grep -q '^ProtectSystem=strict$' "$T/unit/ringrelay.service" || fail "not ProtectSystem=strict"
grep -q '^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$' "$T/unit/ringrelay.service" || fail "capabilities"
ok "etc/ringrelay.service: systemd-analyze verify is clean"
