# A full disk: a message whose record cannot be written gets 451 4.3.0, never 250; every
# message that got a 250 is listed; once there is space again, mail is accepted again.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to mount a small tmpfs"; exit 0; }
mkdir -p "$T/spool"
mount -t tmpfs -o size=256k tmpfs "$T/spool" || fail "cannot mount tmpfs"
trap 'umount "$T/spool" 2>/dev/null; cleanup' EXIT
rr_config
rr_start
python3 -c 'print("x"*76)' > "$T/line"
for i in $(seq 1 600); do cat "$T/line"; done > "$T/body"       # ~46 KiB
acked=0; failed=0
for i in $(seq 1 10); do
  out=$(swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test --body "$T/body" 2>&1)
  if printf '%s' "$out" | grep -q 'queued as'; then
    acked=$((acked + 1)); printf '%s' "$out" | sed -nE 's/.*queued as ([0-9A-V]+).*/\1/p' >> "$T/acks"
  elif printf '%s' "$out" | grep -q '451 4\.3\.0 Error: queue file write error'; then
    failed=$((failed + 1))
  else
    printf '%s\n' "$out" | tail -5 >&2; fail "message $i: neither 250 nor 451"
  fi
done
[ "$failed" -gt 0 ] || fail "256 KiB spool never filled ($acked acked)"
[ "$acked" -gt 0 ] || fail "nothing acked before the disk filled"
grep -q 'event=spool_write_failed' "$T/relay.log" || fail "write failure not logged"
# room again: mail is accepted again once the worker tries its disk again (a few times a
# second while it is failing)
mount -o remount,size=4m "$T/spool" || fail "remount"
for i in 1 2 3 4 5 6; do
  out=$(swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test --body "$T/body" 2>&1)
  printf '%s' "$out" | grep -q 'queued as' && break
  sleep 0.3
done
expect_match "$out" 'queued as' "accepted again after space came back"
printf '%s' "$out" | sed -nE 's/.*queued as ([0-9A-V]+).*/\1/p' >> "$T/acks"
rr_stop
rr_queue --json | sed -nE 's/.*"queue_id":"([^"]+)".*/\1/p' | sort -u > "$T/listed"
missing=$(comm -23 <(sort -u "$T/acks") "$T/listed" | wc -l)
[ "$missing" -eq 0 ] || fail "$missing acknowledged messages not listed"
ok "disk full: $acked acked, $failed answered 451, recovered; all acked listed"
