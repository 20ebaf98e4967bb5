# STARTTLS (issue 10): swaks --tls delivers and Received: says ESMTPS; the queued line names
# version and cipher; "STARTTLS\r\nRSET\r\n" in one write gets no RSET reply after the
# handshake (CVE-2011-0411) and EHLO no longer offers STARTTLS; garbage after STARTTLS and
# a client that never starts its handshake are cut; tls_mode required: 530 5.7.0; a new
# certificate after SIGHUP serves new connections.
. "$(dirname "$0")/lib.sh"
. "$HERE/tls_lib.sh"
tls_cert cert
tls_config starttls -- 'limits:' '  idle_timeout: 2'
rr_start
out=$(swaks --server 127.0.0.1:$RR_PORT --tls --from alice@example.com --to bob@example.net \
      --header 'Subject: tls' --body 'secret' 2>&1) || fail "swaks --tls failed: $out"
expect_match "$out" '<-  250-STARTTLS' "STARTTLS offered"
expect_match "$out" '<-  220 2\.0\.0 Ready to start TLS' "220 Ready"
expect_match "$out" '=== TLS started with cipher TLSv1\.3' "TLS 1.3"
expect_match "$out" '<~  250 2\.0\.0 Ok: queued as' "queued over TLS"
qid=$(printf '%s' "$out" | sed -nE 's/.*queued as ([0-9A-V]+).*/\1/p')
"$RR_BIN" --show "$qid" -c "$T/ringrelay.yaml" > "$T/msg" || fail "--show $qid"
grep -q "by relay.test (ringrelay) with ESMTPS id $qid" "$T/msg" || fail "Received: does not say ESMTPS"
grep -Eq "event=queued .*qid=$qid .*tls=TLSv1\.3 cipher=TLS_[A-Z0-9_]+" "$T/relay.log" \
  || fail "queued line without TLS version and cipher"
grep -q "event=tls .*version=TLSv1.3" "$T/relay.log" || fail "no event=tls line"
# TLS 1.2 as well
out=$(swaks --server 127.0.0.1:$RR_PORT --tls --tls-protocol tlsv1_2 --from a@example.com \
      --to b@example.net 2>&1) || fail "swaks TLS 1.2 failed: $out"
expect_match "$out" 'TLS started with cipher TLSv1\.2' "TLS 1.2"
expect_match "$out" 'queued as' "queued over TLS 1.2"

out=$($TLSC inject $RR_PORT 2>&1) || fail "inject client: $out"
expect_match "$out" 'starttls: 220 2\.0\.0 Ready to start TLS' "inject: 220"
expect_match "$out" 'after_handshake: \(nothing\)' "inject: RSET got no reply"
expect_nomatch "$out" 'ehlo_tls:.*STARTTLS' "STARTTLS offered again after TLS"
expect_match "$out" 'reply: 250 2\.0\.0 Ok: queued as' "inject: message over TLS"
grep -q "event=starttls .*note=pipelined_plaintext_dropped" "$T/relay.log" || fail "no drop noted"

out=$($TLSC garbage $RR_PORT 2>&1) || fail "garbage client: $out"
expect_match "$out" 'after_garbage: \((closed|reset)\)' "garbage: cut"
wait_log 'event=tls_failed' 5 || fail "no tls_failed line"

out=$($TLSC stall $RR_PORT 2>&1) || fail "stall client: $out"
s=$(printf '%s' "$out" | sed -nE 's/closed_after_s: ([0-9.]+)/\1/p')
awk -v s="$s" 'BEGIN { exit !(s >= 1.5 && s < 6) }' || fail "handshake never begun: closed after $s s (idle 2)"

# SIGHUP: a new certificate for new connections
tls_cert cert2 renewed.test
cp "$T/cert2.crt" "$T/cert.crt"; cp "$T/cert2.key" "$T/cert.key"
kill -HUP "$RR_PID"
wait_log 'event=reloaded' 5 || fail "no reload"
subj=$(printf 'EHLO x\r\nSTARTTLS\r\n' | timeout 10 openssl s_client -connect 127.0.0.1:$RR_PORT \
       -starttls smtp 2>/dev/null </dev/null | sed -nE 's/^subject=.*CN ?= ?([a-z.]+).*/\1/p' | head -1)
[ "$subj" = "renewed.test" ] || fail "after SIGHUP the certificate is '$subj'"
rr_stop

# tls_mode required
tls_config required
rr_start
out=$(printf 'EHLO x\r\nMAIL FROM:<a@example.com>\r\nQUIT\r\n' | timeout 10 python3 -c "
import socket,sys,time
s=socket.create_connection(('127.0.0.1',$RR_PORT)); s.sendall(sys.stdin.buffer.read()); time.sleep(0.5)
print(s.recv(4000).decode())")
expect_match "$out" '250-STARTTLS' "required: offered"
expect_match "$out" '530 5\.7\.0 Must issue a STARTTLS command first' "required: 530"
out=$(swaks --server 127.0.0.1:$RR_PORT --tls --from a@example.com --to b@example.net 2>&1) \
  || fail "required + STARTTLS: $out"
expect_match "$out" 'queued as' "required: queued after STARTTLS"
rr_stop
ok "STARTTLS: swaks (1.3, 1.2) queued with ESMTPS, injection dropped, garbage and stall cut, 530 when required, SIGHUP reload"
