# Real HAProxy in front (send-proxy, send-proxy-v2, send-proxy-v2 with crc32c and
# unique-id TLVs): the relay keys on the proxied client. A relay that allows only
# 203.0.113.0/24 relays for a client proxied as 203.0.113.9 and refuses one proxied as
# 198.51.100.1; the log shows client and proxy; the Received: header names the client.
. "$(dirname "$0")/lib.sh"
rr_proxy_config trusted 'proxy_hosts: [127.0.0.1]'
rr_start
n=0
for opts in "send-proxy" "send-proxy-v2" "send-proxy-v2 proxy-v2-options crc32c,unique-id,authority"; do
  hap_start "$opts"
  ver=1; [[ "$opts" == *v2* ]] && ver=2
  out=$(swaks_via_hap 203.0.113.9 --from a@example.com --to far@example.net)
  expect_match "$out" '<-  220 relay\.test ESMTP' "$opts: banner after the header"
  expect_match "$out" 'queued as' "$opts: relayed for 203.0.113.9"
  n=$((n + 1))
  out=$(swaks_via_hap 198.51.100.1 --from a@example.com --to far@example.net)
  expect_match "$out" '554 5\.7\.1 <far@example\.net>: Relay access denied' "$opts: refused for 198.51.100.1"
  grep -q "event=proxy .*client=203\.0\.113\.9 proxy=127\.0\.0\.1 version=$ver command=proxy" "$T/relay.log" \
    || fail "$opts: no proxy log line for 203.0.113.9 v$ver"
  if [[ "$opts" == *crc32c* ]]; then
    grep -Eq "event=proxy .*client=203\.0\.113\.9 .*unique_id=[0-9A-V]+.*crc32c=ok" "$T/relay.log" \
      || fail "unique-id/crc32c TLVs not seen"
  fi
  hap_stop
  : > "$T/relay.log.mark"
done
[ "$(rr_queue_count)" -eq "$n" ] || fail "queue count"
for q in $(rr_queue --json | sed -nE 's/.*"queue_id":"([^"]+)".*/\1/p'); do "$RR_BIN" --show "$q" -c "$T/ringrelay.yaml"; done > "$T/msgs"
grep -q 'Received: from .*(203\.0\.113\.9 \[203\.0\.113\.9\])' "$T/msgs" || fail "Received: does not name the proxied client"
grep -q 'event=queued .*client=203\.0\.113\.9' "$T/relay.log" || fail "queued line does not name the proxied client"
rr_stop
ok "HAProxy v1, v2, v2+TLVs: relay decisions on the proxied client"
