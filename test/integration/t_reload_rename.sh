# Reloads that rename a transport under load: connections opened in the moment between the
# new TLS table and the worker's new configuration must not fail closed ("4.7.4 TLS is
# required") nor count against the site (the attack run saw 214 such failures, 16 dead
# sites, 14,403 deferrals over 8 reloads). Nothing is deferred; everything arrives.
. "$(dirname "$0")/lib.sh"
ctl() { "$RR_BIN" ctl -c "$T/ringrelay.yaml" "$@"; }
sink hub
conf() {
  rr_config "transports:" "  - id: $1" "    nexthop: \"[127.0.0.1]:$S_PORT\"" \
            "    max_messages_per_connection: 3" \
            "routes:" "  - domains: [\"*\"]" "    transport: $1"
}
conf hub
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 8 -n 6000 -t 40 -l 1k --rate 1500 > "$T/blast.out" 2>&1 &
B=$!
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
  sleep 0.3
  if [ $((i % 2)) -eq 1 ]; then conf hub2; else conf hub; fi
  kill -HUP "$RR_PID"
done
wait $B || { cat "$T/blast.out" >&2; fail "ringblast"; }
wait_until 60 eval '[ "$(dumped hub)" -ge 6000 ]' || fail "$(dumped hub) of 6000 arrived"
grep -q 'TLS is required' "$T/relay.log" && fail "a renamed transport's connection failed closed: $(grep -c 'TLS is required' "$T/relay.log") times"
grep -q 'status=deferred' "$T/relay.log" && fail "$(grep -c 'status=deferred' "$T/relay.log") deferrals under reloads"
[ "$(grep -c 'event=reloaded' "$T/relay.log")" -ge 6 ] || fail "too few reloads taken"
rr_stop
ok "12 reloads renaming the transport under 1,500 msg/s: 6000 delivered, none deferred, no TLS failure"
