# The spool's reserve (SPOOL/.reserve-w<k>) is cut and grown by the relay: a symlink of
# that name must not make it cut or grow the file it points to (as Postfix opens queue
# files, refusing symlinks). Hostile review of 10a36bb: a 300,000-octet file outside the
# spool was cut to 32,768 octets (a 1 MiB tmpfs) or grown to 16 MiB.
#  A symlink .reserve-w0 -> a file outside the spool; start; stop: that file is untouched,
#  and the relay said it runs without that reserve.
. "$(dirname "$0")/lib.sh"
mkdir -p "$T/spool"
head -c 300000 /dev/urandom > "$T/victim"
sum0=$(sha256sum < "$T/victim")
ln -s "$T/victim" "$T/spool/.reserve-w0"
rr_config
rr_start
rr_stop
size=$(stat -c %s "$T/victim")
[ "$(sha256sum < "$T/victim")" = "$sum0" ] ||
  fail "a file outside the spool, reached through a symlink named .reserve-w0, was changed: $size octets left of 300000"
grep -q 'event=spool_reserve_failed worker=0 file=.reserve-w0 error="a symbolic link"' "$T/relay.log" ||
  fail "the refused reserve was not logged"
ok "a symlinked reserve is not followed (logged, no reserve for that worker)"
