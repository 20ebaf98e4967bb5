# The Debian package (issue 11): `make deb` built it (RR_DEB names it; make
# test-integration builds it first). lintian reports no error; dpkg -i installs it here:
# the binaries, the conffile, the unit (systemd-analyze verify, its man pages found where
# they were installed), the `ringrelay` system user and its spool directory; `ringrelay
# --check` passes on the installed configuration; ringrelay runs from it as that user and
# answers `ctl status`; dpkg --purge removes it (the spool too, as it holds no mail).
. "$(dirname "$0")/lib.sh"
DEB=${RR_DEB:-$(ls "$(dirname "$RR_BIN")"/../ringrelay_*.deb 2>/dev/null | head -1)}
[ -f "$DEB" ] || fail "no package (make deb; RR_DEB)"
command -v lintian > /dev/null || fail "lintian missing (scripts/install-deps.sh)"
if dpkg -s ringrelay > /dev/null 2>&1; then fail "a ringrelay package is installed already: not touching it"; fi
purge() { dpkg --purge ringrelay > /dev/null 2>&1 || true; }
trap 'purge; cleanup' EXIT
out=$(lintian --tag-display-limit 0 "$DEB" 2>&1 | grep -v 'running with root privileges' || true)
if printf '%s\n' "$out" | grep -q '^E: '; then printf '%s\n' "$out" >&2; fail "lintian errors"; fi
dpkg -i "$DEB" > "$T/dpkg.out" 2>&1 || { cat "$T/dpkg.out" >&2; fail "dpkg -i"; }
for f in /usr/sbin/ringrelay /usr/bin/ringblast /usr/bin/ringsink /etc/ringrelay/ringrelay.yaml \
         /lib/systemd/system/ringrelay.service /usr/share/man/man8/ringrelay.8.gz \
         /usr/share/man/man5/ringrelay.yaml.5.gz /usr/share/doc/ringrelay/copyright; do
  [ -f "$f" ] || fail "$f not installed"
done
getent passwd ringrelay > /dev/null || fail "no ringrelay user"
[ "$(stat -c '%U %a' /var/spool/ringrelay)" = "ringrelay 700" ] || fail "spool: $(stat -c '%U %a' /var/spool/ringrelay)"
/usr/sbin/ringrelay --check -c /etc/ringrelay/ringrelay.yaml > "$T/check.out" 2>&1 || { cat "$T/check.out" >&2; fail "--check on the installed configuration"; }
out=$(systemd-analyze verify /lib/systemd/system/ringrelay.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify said: $out"
# run it as its user on the installed files (port 25 would need the unit's capability:
# a copy of the configuration on a free port)
PORT=$(free_port)
sed "s/port: 25/port: $PORT/" /etc/ringrelay/ringrelay.yaml > "$T/pkg.yaml"
chmod 755 "$T"; chmod 644 "$T/pkg.yaml"
setpriv --reuid=ringrelay --regid=ringrelay --init-groups /usr/sbin/ringrelay -c "$T/pkg.yaml" 2> "$T/pkg.log" &
PKG_PID=$!
wait_until 10 grep -q 'event=ready' "$T/pkg.log" || { cat "$T/pkg.log" >&2; fail "the installed ringrelay did not start as its user"; }
out=$(/usr/sbin/ringrelay ctl -c "$T/pkg.yaml" status 2>&1) || fail "ctl status: $out"
expect_match "$out" '^version=' "ctl status of the installed daemon"
swaks --server 127.0.0.1:$PORT --from a@x.test --to b@example.net --quit-after RCPT > /dev/null 2>&1 || fail "swaks to the installed daemon"
kill -TERM $PKG_PID; wait $PKG_PID || fail "the installed ringrelay exited $?"
dpkg --purge ringrelay > "$T/purge.out" 2>&1 || { cat "$T/purge.out" >&2; fail "dpkg --purge"; }
[ ! -e /usr/sbin/ringrelay ] && [ ! -e /etc/ringrelay ] && [ ! -e /var/spool/ringrelay ] || fail "files left after purge"
ok "make deb: lintian without errors, installed (user, spool, unit verified), --check and a run as its user, purged"
