# Found in review: an empty proxy_hosts_file is an error at start-up and on SIGHUP
# ("proxy_protocol 'trusted' needs at least one proxy host"), but when the file is
# written or renamed into place the watcher loads it: every proxy loses its trust and
# each proxied connection gets "421 4.7.0 PROXY not allowed" (with proxy_protocol:
# required, every client is refused). README: "a broken file is logged ... and the
# last good table stays". After that the relay cannot be restarted on the same file.
. "$(dirname "$0")/lib.sh"
echo 127.0.0.1 > "$T/hosts"
rr_proxy_config trusted "proxy_hosts_file: $T/hosts"
rr_start
printf 'PROXY TCP4 203.0.113.5 127.0.0.1 1234 25\r\n' > "$T/hdr"
out=$($SMTPC $RR_PORT --prefix "$T/hdr" 'EHLO x\r\nQUIT\r\n')
expect_match "$out" '^250 SMTPUTF8' "proxied connection before"
: > "$T/hosts.new"; mv "$T/hosts.new" "$T/hosts"      # a deploy that renders no hosts
wait_log 'event=proxy_hosts_reload' 5 || fail "the watcher did not react"
sleep 0.2
out=$($SMTPC $RR_PORT --prefix "$T/hdr" 'EHLO x\r\nQUIT\r\n')
"$RR_BIN" --check -c "$T/ringrelay.yaml" > "$T/check.out" 2>&1; crc=$?
rr_stop
[ "$crc" -eq 2 ] || fail "--check accepts the empty file (exit $crc)"
expect_nomatch "$out" 'PROXY not allowed' "after an empty proxy_hosts_file (refused by --check: $(cat "$T/check.out")), the proxied connection got: $(printf '%s' "$out" | head -2 | tr '\r\n' '  ')"
ok "an empty proxy_hosts_file is refused the same way by start-up, SIGHUP and the watcher"
