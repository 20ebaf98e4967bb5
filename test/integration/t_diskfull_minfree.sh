# spool.min_free (Postfix's queue_minfree): new mail is refused with "452 4.3.1
# Insufficient system storage" BEFORE the disk is full, and the headroom left goes to the
# relay's own bookkeeping; once the space is back, mail is taken again, by itself.
#  A 4 MiB tmpfs spool, min_free 1 MiB, 64 KiB test segments, a next hop that is down:
#  1. 32 KiB messages are taken until the free space would drop under 1 MiB: then 452 4.3.1,
#     never a 451 (no write ever failed), with more than 3/4 MiB still free; more messages
#     get 452 too, at MAIL FROM; the state is logged once per worker, not per message;
#  2. the hop comes up and rejects everything: every accepted message bounces, and its
#     DSN (a new record) is written into the headroom while new mail is still refused;
#  3. the bounced messages and their DSNs finish, their segments go, the space comes back:
#     mail is accepted again, logged once (event=spool_space_ok with the count refused).
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to mount a small tmpfs"; exit 0; }
mkdir -p "$T/spool"
mount -t tmpfs -o size=4m tmpfs "$T/spool" || fail "cannot mount tmpfs"
trap '[ -n "$RR_PID" ] && kill -9 "$RR_PID" 2>/dev/null; wait "$RR_PID" 2>/dev/null; umount "$T/spool" 2>/dev/null; cleanup' EXIT
export RR_TEST_SEGMENT_MAX=65536
count() { grep -c -- "$1" "$T/relay.log"; }
avail() { df -k --output=avail "$T/spool" | tail -1 | tr -d ' '; }
python3 -c 'print("y"*76)' > "$T/line"
for i in $(seq 1 420); do cat "$T/line"; done > "$T/body"       # ~32 KiB
send() {  # send TO: one message; prints the reply to its end of data (or the first refusal)
  swaks --server 127.0.0.1:$RR_PORT --from s@snd.test --to "$1" --body "$T/body" 2>&1 |
    sed -nE 's/^<(\*\*|-) +((250 .*queued as.*)|([45][0-9][0-9] .*))/\2/p' | head -1
}

sink dsn
P=$(free_port)
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$P\"" \
          "  - id: back" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
          "routes:" "  - domains: [snd.test]" "    transport: back" \
          "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 600"
sed -i 's/^  sync: true/  sync: true\n  min_free: 1048576/' "$T/ringrelay.yaml"
rr_start

# ---- 1. refused before the disk is full ---------------------------------------------------------
acked=0
for i in $(seq 1 120); do
  r=$(send "u$i@example.org")
  case "$r" in
    250*) acked=$((acked + 1));;
    "452 4.3.1 Insufficient system storage") break;;
    *) fail "message $i: '$r' (want 250, then 452 4.3.1)";;
  esac
done
free_at=$(avail)
expect_match "$r" '^452 4\.3\.1 Insufficient system storage$' "refused once under min_free"
[ "$acked" -ge 20 ] || fail "only $acked accepted before the refusal"
[ "$free_at" -ge 768 ] || fail "only $free_at KiB free at the first refusal (min_free 1024 KiB)"
for i in 1 2 3 4 5; do
  r=$(send "more$i@example.org")
  expect_match "$r" '^452 4\.3\.1' "still refused under min_free"
done
# refused at MAIL FROM already (Postfix's place for it): the message is never sent
out=$(swaks --server 127.0.0.1:$RR_PORT --from s@snd.test --to m@example.org --body "$T/body" 2>&1)
printf '%s\n' "$out" | grep -A1 -- '-> MAIL FROM' | grep -q '<\*\* 452 4\.3\.1' ||
  { printf '%s\n' "$out" | tail -8 >&2; fail "not refused at MAIL FROM"; }
if printf '%s\n' "$out" | grep -q -- '-> DATA'; then fail "DATA sent although MAIL was refused"; fi
[ "$(count event=spool_write_failed)" -eq 0 ] && [ "$(count event=spool_failing)" -eq 0 ] ||
  fail "a write failed: the disk filled although min_free was kept"
lows=$(count event=spool_low_space)
[ "$lows" -ge 1 ] && [ "$lows" -le 2 ] || fail "$lows spool_low_space lines for 6 refusals (want one per worker at most)"
echo "part 1: $acked accepted, then 452 4.3.1 with $free_at KiB free; $lows low_space line(s)"

# ---- 2. the bookkeeping goes on in the headroom ---------------------------------------------------
sink rej -l 127.0.0.1:$P --fail reject=100%
alldsn() { [ "$(dumped dsn)" -ge "$acked" ]; }
wait_until 30 alldsn || fail "only $(dumped dsn) of $acked DSNs arrived"
first_dsn=$(grep -n 'sender non-delivery notification' "$T/relay.log" | head -1 | cut -d: -f1)
[ -n "$first_dsn" ] || fail "no DSN logged"

# ---- 3. the space comes back by itself ---------------------------------------------------------------
for i in $(seq 1 40); do
  r=$(send "back$i@example.org")
  case "$r" in 250*) break;; esac
  sleep 0.25
done
expect_match "$r" '^250 ' "accepted again once the bounced mail was gone"
ok_line=$(grep -n 'event=spool_space_ok' "$T/relay.log" | head -1 | cut -d: -f1)
[ -n "$ok_line" ] || fail "no spool_space_ok line"
[ "$first_dsn" -lt "$ok_line" ] || fail "the first DSN was written only after the space was back (line $first_dsn, $ok_line)"
expect_match "$(sed -n "${ok_line}p" "$T/relay.log")" 'refused=[1-9]' "the count refused on the way back"
[ "$(count event=spool_write_failed)" -eq 0 ] || fail "a write failed"
[ "$(dumped dsn)" -eq "$acked" ] || fail "$(dumped dsn) DSNs for $acked bounced messages"
rr_stop
ok "min_free 1 MiB on a 4 MiB spool: $acked accepted, then 452 4.3.1 with $free_at KiB free, no write failed; $acked DSNs written meanwhile; accepted again by itself once the space was back"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
