# Issue 7, defect 3: the reply queue has no bound. Four clients each pipeline 30 MB of
# NOOP and never read. The relay must stop reading them (TCP pushes back), keep its
# memory bounded (RSS grows by less than 16 MB), and serve another client meanwhile.
. "$(dirname "$0")/lib.sh"
rr_config
rr_start
rss() { awk '/^VmRSS:/ { print $2 }' /proc/$RR_PID/status; }
# A first transaction, so the resident set has what a served client costs.
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test >/dev/null 2>&1 || fail "warm-up"
before=$(rss)
mkfifo "$T/hold"
python3 "$HERE/flood.py" noread $RR_PORT 4 30 6 < "$T/hold" > "$T/flood.out" &
fpid=$!
exec 7> "$T/hold"              # keeps the flood's sockets open until closed
for i in $(seq 1 100); do [ "$(grep -c sent= "$T/flood.out" 2>/dev/null)" -ge 4 ] && break; sleep 0.1; done
[ "$(grep -c sent= "$T/flood.out")" -eq 4 ] || fail "flood did not finish its sends"
out=$(swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test 2>&1)
expect_match "$out" 'queued as' "another client is served while four flood"
after=$(rss)
grow=$(( (after - before) / 1024 ))
echo "rss before=${before}kB after=${after}kB grew=${grow}MB; $(tr '\n' ' ' < "$T/flood.out")"
[ "$grow" -lt 16 ] || fail "RSS grew by $grow MB (limit 16)"
# The relay let in far less than 30 MB per client: it stopped reading.
while read -r line _; do
  n=${line#sent=}
  [ "$n" -lt $((20 * 1024 * 1024)) ] || fail "a non-reading client got $n octets in"
done < "$T/flood.out"
exec 7>&-
wait $fpid
rr_stop
ok "4 x 30 MB of unread NOOP: RSS +$grow MB, another client served, flooders pushed back"
