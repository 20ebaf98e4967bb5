# Relay control keys on the client address: loopback outside relay.networks may only send
# to relay.domains.
. "$(dirname "$0")/lib.sh"
cat > "$T/ringrelay.yaml" <<YAML
hostname: relay.test
workers: 1
spool: { path: $T/spool }
listeners: [ { id: mta, address: 127.0.0.1, port: 0 } ]
relay:
  networks: [192.0.2.0/24]
  domains: [local.test]
$RR_DNS_NOWHERE
YAML
rr_start
out=$(swaks --server 127.0.0.1:$RR_PORT --from a@example.com --to victim@example.net 2>&1)
expect_match "$out" '554 5\.7\.1 <victim@example\.net>: Relay access denied' "relay denied"
out=$(swaks --server 127.0.0.1:$RR_PORT --from a@example.com --to user@LOCAL.test 2>&1) || fail "local domain: $out"
expect_match "$out" 'queued as' "relay domain accepted"
[ "$(rr_queue_count)" -eq 1 ] || fail "queue count"
rr_stop
ok "relay denied outside relay.networks, relay.domains accepted"
