# One owner per ready queue across workers (core/owner): a site's limits are the relay's,
# not each worker's, and a connection carries the mail every worker accepted.
#  1. max_connections 1 with mail accepted on both workers: the next hop never sees two
#     connections at once (one per worker before), and one connection carries messages
#     of both workers
#  2. SIGTERM while the owner is delivering other workers' jobs to a slow next hop: a
#     clean exit (jobs away come home, letters settle, no leak); after a restart every
#     message arrives
. "$(dirname "$0")/lib.sh"
unique_ids() { cat "$T/$1"/*.eml 2>/dev/null | grep -i '^Message-ID:' | sort -u | wc -l; }

# ---- 1. one connection for the relay ------------------------------------------------------
python3 "$HERE/badhop.py" slow "$T/slow.port" "$T/slow.count" 60 &
wait_until 10 test -s "$T/slow.port" || fail "badhop slow did not start"
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$(cat "$T/slow.port")\"" "    max_connections: 1" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 300"
rr_start
# 16 connections: SO_REUSEPORT spreads them over both workers (all on one: 2 in 65,536)
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 16 -n 24 -t 30 -l 1k > /dev/null 2>&1 || fail "ringblast (one owner)"
took24() { grep -Eq 'accepted=(2[4-9]|[3-9][0-9])' "$T/slow.count"; }
wait_until 60 took24 || fail "the slow hop took only: $(cat "$T/slow.count")"
w0=$(grep -c 'event=queued sid=0\.' "$T/relay.log"); w1=$(grep -c 'event=queued sid=1\.' "$T/relay.log")
[ "$w0" -gt 0 ] && [ "$w1" -gt 0 ] || fail "the load did not reach both workers ($w0, $w1): the test did not test"
maxc=$(sed -nE 's/.*max_concurrent=([0-9]+).*/\1/p' "$T/slow.count")
[ "$maxc" -eq 1 ] || fail "$maxc connections at once with max_connections 1 (one per worker: no single owner)"
n=$(cut -d" " -f1 "$T/slow.count")
[ "$n" -le 3 ] || fail "$n connections for 24 messages through one owner's reused connection"
rr_stop
ok "max_connections 1 for the relay: $w0 + $w1 messages accepted on two workers, $n connection(s), never 2 at once"

# ---- 2. a stop while jobs are away ----------------------------------------------------------
: > "$T/relay.log"
rm -rf "$T/spool"
sink slow --fail delay=200ms@100%
rr_config "transports:" "  - id: hub" "    nexthop: \"[127.0.0.1]:$S_PORT\"" "    max_connections: 2" \
          "routes:" "  - domains: [\"*\"]" "    transport: hub" \
          "queue:" "  retry_schedule: [1]" "  max_age: 300"
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 4 -n 40 -t 30 -l 1k > /dev/null 2>&1 || fail "ringblast (stop)"
some() { [ "$(dumped slow)" -ge 5 ]; }
wait_until 30 some || fail "nothing delivered before the stop"
rr_stop                                    # exit 0 within 20 s, sanitizers clean
before=$(unique_ids slow)
[ "$before" -lt 40 ] || fail "everything was delivered before the stop: the test did not test"
rr_start
all40() { [ "$(unique_ids slow)" -ge 40 ]; }
wait_until 60 all40 || fail "only $(unique_ids slow) of 40 arrived after a stop with jobs away and a restart"
rr_stop
ok "SIGTERM with jobs away: clean exit ($before delivered), all 40 arrived after the restart"
for p in "${S_PID[@]}"; do kill "$p" 2>/dev/null; done
