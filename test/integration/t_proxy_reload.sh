# The proxy_hosts_file (Haraka's format) is reloaded when it changes (inotify), during an
# smtp-source load through HAProxy, without a failed transaction: new connections from a
# newly listed host are trusted, and no longer once it is removed again.
. "$(dirname "$0")/lib.sh"
printf '# proxies in front of us\n127.0.0.2   # haproxy\n' > "$T/haproxy_hosts"
rr_proxy_config trusted "proxy_hosts_file: $T/haproxy_hosts"
rr_start
HAP_BIND_OPTS="" hap_start send-proxy-v2 127.0.0.2
python3 "$HERE/pp.py" v1 203.0.113.5 127.0.0.1 5000 25 > "$T/h"
try3() { $SMTPC --bind 127.0.0.3 --prefix "$T/h" $RR_PORT 'EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<far@example.net>\r\n|||QUIT\r\n'; }
out=$(try3)
expect_match "$out" '421 4\.7\.0 PROXY not allowed' "127.0.0.3 before it is listed"

timeout 200 smtp-source -s 10 -m 20000 -l 512 -d -f src@example.com -t dst@local.test \
  127.0.0.1:$HAP_PORT > "$T/src.out" 2>&1 &
src=$!
wait_log 'event=queued' || fail "the load did not start"
printf '127.0.0.3\n' >> "$T/haproxy_hosts"          # an append: IN_CLOSE_WRITE
wait_log 'event=proxy_hosts_reloaded generation=2' || fail "append not picked up"
kill -0 $src 2>/dev/null || fail "the load finished before the edit: nothing was shown"
out=$(try3)
expect_match "$out" '^220 relay\.test' "127.0.0.3 trusted after the append"
expect_match "$out" '250 2\.1\.5 Ok' "proxied 203.0.113.5 may relay"
printf '127.0.0.2\n' > "$T/hosts.new" && mv "$T/hosts.new" "$T/haproxy_hosts"   # a rename: IN_MOVED_TO
wait_log 'event=proxy_hosts_reloaded generation=3' || fail "rename not picked up"
out=$(try3)
expect_match "$out" '421 4\.7\.0 PROXY not allowed' "127.0.0.3 after removal"
# a broken file is refused and the last good table stays
printf '127.0.0.2\n10.0.0.0/33\n' > "$T/hosts.new" && mv "$T/hosts.new" "$T/haproxy_hosts"
wait_log "event=proxy_hosts_reload_failed keeping=old error=\"$T/haproxy_hosts:2:" || fail "bad file not reported with its line"
printf '127.0.0.2\n' > "$T/haproxy_hosts"   # good again (--queue below loads this config)
wait $src || { cat "$T/src.out" >&2; fail "smtp-source failed"; }
grep -qiE 'error|fatal|warning' "$T/src.out" && { cat "$T/src.out" >&2; fail "smtp-source saw errors"; }
hap_stop
rr_stop
n=$(rr_queue_count)
[ "$n" -eq 20000 ] || fail "queue lists $n, want 20000"
ok "proxy_hosts_file reloaded twice under load; 20000 messages, none failed"
