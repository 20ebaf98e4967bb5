# Found in review: a second ringrelay (its own spool, possibly an old or wrong config) on an
# address:port that a running relay already listens on starts without complaint: both
# sockets have SO_REUSEPORT, so the kernel joins them into one group and splits the
# connections between the two processes and their spools. t_start_fail.sh shows a port
# held by another program gives exit 1; held by another ringrelay it does not.
. "$(dirname "$0")/lib.sh"
P=$(free_port)
rr_config
sed -i "s/port: 0/port: $P/" "$T/ringrelay.yaml"
rr_start
sed "s#path: $T/spool\$#path: $T/spool2#" "$T/ringrelay.yaml" > "$T/second.yaml"
"$RR_BIN" -c "$T/second.yaml" 2> "$T/second.log" & p2=$!
for i in $(seq 1 100); do grep -qE 'event=(ready|start_failed)' "$T/second.log" && break; kill -0 $p2 2>/dev/null || break; sleep 0.05; done
for i in $(seq 1 20); do swaks --server 127.0.0.1:$P --from a@x.test --to b@local.test >/dev/null 2>&1; done
second=$("$RR_BIN" --queue --json -c "$T/second.yaml" | grep -c queue_id)
kill -TERM $p2 2>/dev/null; wait $p2
rr_stop
grep -q 'event=ready' "$T/second.log" && fail "a second relay started on 127.0.0.1:$P, which the first one listens on; it took $second of 20 messages into its own spool"
ok "a second relay on a port in use is refused"
