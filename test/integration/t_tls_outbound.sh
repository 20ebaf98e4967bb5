# Outbound TLS (issue 10): a transport's `tls` against real next hops.
#  1. opportunistic to ringsink --tls: STARTTLS, TLS 1.3, the message arrives ESMTPS,
#     the delivery line names the TLS version and cipher, the next connection to the
#     same destination resumes the session
#  2. none: no STARTTLS although offered
#  3. required to a sink without TLS: deferred (4.7.4 in the reason), never delivered in plaintext
#  4. verify: a next hop whose certificate the CA file does not sign is deferred
#     (4.7.5 in the reason); the one it signs, under the MX name, gets the mail
#  5. opportunistic to a hop whose handshake fails (plaintext "250" injected behind the
#     220, garbage instead of TLS): the injected line is never read as a reply, the
#     handshake failure is logged, and the mail goes in plaintext on the next connection
#     ... and to a hop that never answers the ClientHello: timed out (timeouts.ehlo), the
#     same plaintext fallback
#  7. reloads to stricter rules (found by attacking it): a session resumed from before a
#     reload to `verify` must not skip the check (deferred 4.7.5, nothing delivered);
#     connections opened before a reload to `required` take no more mail (queued mail
#     waits and is deferred 4.7.4, none goes out in plaintext after the reload)
#  6. a private Postfix with STARTTLS as the next hop: "TLS connection established" in
#     its log, the mail delivered through it; then TLS 1.2 only: sessions resumed; then
#     two of them behind one address (each its own ticket keys): one failed handshake
. "$(dirname "$0")/lib.sh"
. "$HERE/tls_lib.sh"
tls_cert sinkcert mx.tls.test
tls_cert other mx.tls.test
dns_start --host-record=mx.tls.test,127.0.0.1
hub() {  # hub PORT TLS [more transport lines]: every domain to [mx.tls.test]:PORT
  local port=$1 mode=$2; shift 2
  rr_config "dns: { servers: [\"127.0.0.1:$DP\"] }" \
            "transports:" "  - id: hub" "    nexthop: \"[mx.tls.test]:$port\"" \
            "    tls: $mode" "    max_messages_per_connection: 1" "$@" \
            "routes:" "  - domains: [\"*\"]" "    transport: hub" \
            "queue:" "  retry_schedule: [1]" "  max_age: 60"
}
since() { tail -c +$((MARK + 1)) "$T/relay.log"; }   # the log since the last mark
mark() { touch "$T/relay.log"; MARK=$(stat -c %s "$T/relay.log"); }
fresh() { rr_stop; rm -rf "$T/spool"; }             # each part starts with an empty queue
send() { swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to "$1" > /dev/null 2>&1 || fail "swaks $1"; }

# ---- 1. opportunistic to a sink with STARTTLS ---------------------------------------------
sink s1 --tls "$T/sinkcert.crt,$T/sinkcert.key"
hub "$S_PORT" opportunistic
rr_start
for i in 1 2 3; do
  send "u$i@example.net"
  wait_until 20 eval '[ "$(dumped s1)" -ge '$i' ]' || fail "message $i not delivered over TLS"
done
grep -q "with ESMTPS id" "$T"/s1/*.eml || fail "the sink did not get it over TLS"
[ "$(grep -l 'with ESMTPS id' "$T"/s1/*.eml | wc -l)" -eq 3 ] || fail "not all three over TLS"
wait_log 'to=<u3@example.net>.*status=sent' 10 || fail "no sent line"
line=$(grep -m1 'to=<u1@example.net>.*status=sent' "$T/relay.log")
expect_match "$line" 'relay=mx\.tls\.test\[127\.0\.0\.1\]:[0-9]+ tls=TLSv1\.3 cipher=TLS_AES_[0-9]+_GCM_SHA[0-9]+, conn_use=1,' "TLS on the delivery line"
expect_match "$(cat "$T/relay.log")" 'event=tls_out site=hub/[^ ]+ relay=mx\.tls\.test\[127\.0\.0\.1\]:[0-9]+ version=TLSv1\.3 cipher=TLS_[A-Z0-9_]+ verified=no resumed=no' "first handshake logged"
expect_match "$(cat "$T/relay.log")" 'event=tls_out .* resumed=yes' "the next connection resumed the session"
fresh
ok "opportunistic: STARTTLS to the sink, TLS 1.3, ESMTPS, logged, session resumed"

# ---- 2. none -----------------------------------------------------------------------------
sink s2 --tls "$T/sinkcert.crt,$T/sinkcert.key"
hub "$S_PORT" none
mark
rr_start
send u@example.net
wait_until 20 eval '[ "$(dumped s2)" -ge 1 ]' || fail "tls: none: not delivered"
grep -q "with ESMTP id" "$T"/s2/*.eml || fail "tls: none went over TLS"
since | grep -q 'event=tls_out' && fail "tls: none: a handshake was logged"
fresh
ok "none: plaintext although STARTTLS was offered"

# ---- 3. required to a sink without TLS -------------------------------------------------------
sink s3
hub "$S_PORT" required
rr_start
send u@example.net
wait_log 'to=<u@example.net>.*dsn=4\.7\.4, status=deferred \(4\.7\.4 (delivery temporarily suspended: )?TLS is required, but was not offered by host mx\.tls\.test\[127\.0\.0\.1\]' 15 \
  || fail "required: no 4.7.4 deferral"
sleep 2
[ "$(dumped s3)" -eq 0 ] || fail "required: delivered in plaintext"
rr_stop
[ "$(rr_queue_count)" -eq 1 ] || fail "required: the message is not queued"
rm -rf "$T/spool"
ok "required: deferred 4.7.4 and kept, never sent in plaintext"

# ---- 4. verify ---------------------------------------------------------------------------------
sink s4 --tls "$T/sinkcert.crt,$T/sinkcert.key"
hub "$S_PORT" verify "    tls_ca_file: $T/other.crt"
rr_start
send u@example.net
wait_log 'to=<u@example.net>.*status=deferred \(4\.7\.5 (delivery temporarily suspended: )?TLS handshake with mx\.tls\.test\[127\.0\.0\.1\]:[0-9]+ failed' 15 \
  || fail "verify against the wrong CA: no 4.7.5 deferral"
[ "$(dumped s4)" -eq 0 ] || fail "verify: delivered to an unverified host"
rr_stop
hub "$S_PORT" verify "    tls_ca_file: $T/sinkcert.crt"
mark
rr_start
wait_until 20 eval '[ "$(dumped s4)" -ge 1 ]' || fail "verify with the right CA: not delivered"
wait_log 'status=sent' 10 || fail "verify: no sent line"
expect_match "$(since)" 'event=tls_out .* verified=yes' "verified handshake logged"
fresh
ok "verify: wrong CA deferred 4.7.5, the right one delivers (verified=yes)"

# ---- 5. a handshake that fails: plaintext next time -------------------------------------------
python3 "$HERE/badhop.py" badtls "$T/bad.port" "$T/bad.count" 60 &
wait_until 10 test -s "$T/bad.port" || fail "badhop did not start"
hub "$(cat "$T/bad.port")" opportunistic
mark
rr_start
send u@example.net
wait_until 20 grep -q 'accepted=1' "$T/bad.count" || fail "not delivered in plaintext after the failed handshake: $(cat "$T/bad.count")"
wait_log 'to=<u@example.net>.*status=sent' 10 || fail "no sent line"
expect_match "$(since)" 'event=tls_failed site=hub/[^ ]+ relay=mx\.tls\.test\[127\.0\.0\.1\]:[0-9]+ reason="[^"]+" note="opportunistic: plaintext' "failed handshake logged"
expect_nomatch "$(since)" 'injected' "the plaintext behind the 220"
expect_nomatch "$(since)" 'status=deferred' "a deferral"
fresh
ok "failed opportunistic handshake: injected reply ignored, plaintext on the next connection"
python3 "$HERE/badhop.py" tlssilent "$T/sil.port" "$T/sil.count" 60 &
wait_until 10 test -s "$T/sil.port" || fail "badhop tlssilent did not start"
hub "$(cat "$T/sil.port")" opportunistic "    timeouts: { ehlo: 2 }"
mark
rr_start
send u@example.net
wait_until 20 grep -q 'accepted=1' "$T/sil.count" || fail "silent handshake: not delivered in plaintext: $(cat "$T/sil.count")"
expect_match "$(since)" 'event=tls_failed site=hub/[^ ]+ relay=[^ ]+ reason="timed out" note="opportunistic' "handshake timeout logged"
fresh
ok "a handshake that never ends: timed out, plaintext on the next connection"

# ---- 7. reloads to stricter rules ----------------------------------------------------------
sink s7 --tls "$T/sinkcert.crt,$T/sinkcert.key"
hub "$S_PORT" opportunistic
mark
rr_start
send u1@example.net
wait_until 20 eval '[ "$(dumped s7)" -ge 1 ]' || fail "reload/verify: first message not delivered"
wait_log 'event=tls_out .* resumed=no' 10 || fail "no first handshake"
hub "$S_PORT" verify "    tls_ca_file: $T/other.crt"
kill -HUP "$RR_PID"
wait_log 'event=reloaded generation=2' 10 || fail "no reload"
send u2@example.net
wait_log 'to=<u2@example.net>.*status=deferred \(4\.7\.5 (delivery temporarily suspended: )?TLS handshake' 15 || fail "verify after a reload: a cached session skipped the check"
sleep 1
[ "$(dumped s7)" -eq 1 ] || fail "verify after a reload: delivered to an unverified host"
expect_nomatch "$(since)" 'verified=yes' "a handshake said verified"
fresh
ok "reload to verify: no session from before is resumed, the unverified host gets nothing"

python3 "$HERE/badhop.py" slow "$T/slow.port" "$T/slow.count" 60 &
wait_until 10 test -s "$T/slow.port" || fail "badhop slow did not start"
hub "$(cat "$T/slow.port")" opportunistic "    max_connections: 1"
sed -i 's/max_messages_per_connection: 1$/max_messages_per_connection: 1000/' "$T/ringrelay.yaml"
mark
rr_start
"$RR_TOOLS/ringblast" -s 127.0.0.1:$RR_PORT -c 2 -n 20 -t 30 -l 1k > /dev/null 2>&1 || fail "ringblast (reload to required)"
wait_until 10 grep -q 'accepted=[1-9]' "$T/slow.count" || fail "the slow hop got nothing"
hub "$(cat "$T/slow.port")" required "    max_connections: 1"
kill -HUP "$RR_PID"
wait_log 'event=reloaded generation=2' 10 || fail "no reload"
at=$(sed -nE 's/.* accepted=([0-9]+).*/\1/p' "$T/slow.count")
wait_log 'status=deferred \(4\.7\.4 (delivery temporarily suspended: )?TLS is required' 15 || fail "reload to required: nothing deferred 4.7.4"
sleep 1
now=$(sed -nE 's/.* accepted=([0-9]+).*/\1/p' "$T/slow.count")
[ "$now" -le $((at + 1)) ] || fail "reload to required: $((now - at)) messages went out in plaintext after the reload (at most the one in flight may)"
[ "$now" -lt 20 ] || fail "reload to required: all went out"
fresh
ok "reload to required: $((now - at)) after the reload (the one in flight at most), the rest deferred 4.7.4"

# ---- 6. Postfix with STARTTLS as the next hop -------------------------------------------------
sink s6
chmod 755 "$T"
PFD=$T/pf
PFP=$(free_port)
PF_TLS_CERT=$T/sinkcert.crt PF_TLS_KEY=$T/sinkcert.key \
  bash "$HERE/../../bench/peers/postfix.sh" start "$PFD" "$PFP" "$S_PORT" > "$T/pf.out" 2>&1 \
  || { cat "$T/pf.out" >&2; fail "Postfix did not start"; }
pf_stop() { bash "$HERE/../../bench/peers/postfix.sh" stop "$PFD" > /dev/null 2>&1; }
hub "$PFP" opportunistic
sed -i "s/\[mx.tls.test\]/[127.0.0.1]/" "$T/ringrelay.yaml"
mark
rr_start
send u@example.net
if ! wait_until 30 eval '[ "$(dumped s6)" -ge 1 ]'; then pf_stop; fail "not delivered through Postfix"; fi
grep -q 'TLS connection established from [a-z]*\[127\.0\.0\.1\]: TLSv1\.[23] with cipher' "$PFD/postfix.log" \
  || { tail -20 "$PFD/postfix.log" >&2; pf_stop; fail "Postfix did not log a TLS connection"; }
grep -q 'disconnect from .* ehlo=2 starttls=1 mail=1 rcpt=1' "$PFD/postfix.log" \
  || { tail -20 "$PFD/postfix.log" >&2; pf_stop; fail "Postfix did not see STARTTLS then EHLO again"; }
wait_log 'to=<u@example.net>, relay=127.*status=sent' 10 || fail "no sent line for Postfix"
expect_match "$(since)" 'relay=127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+ tls=TLSv1\.[23] cipher=[^,]+, conn_use=1, .*status=sent' "sent over TLS to Postfix"
# ... and at TLS 1.2 only: the TLS 1.3 session kept from before is refused (wolfSSL: a
# record layer version error), which costs one connection, not TLS: the next makes a full
# handshake (before, the failure sent the host plaintext for an hour); then sessions are
# resumed (Postfix keeps no session cache by default: the relay asks for a ticket; before
# it did, none of 4 was resumed)
pf_stop
PF_TLS_CERT=$T/sinkcert.crt PF_TLS_KEY=$T/sinkcert.key PF_TLS_PROTOCOLS='>=TLSv1.2, <=TLSv1.2' \
  bash "$HERE/../../bench/peers/postfix.sh" start "$PFD" "$PFP" "$S_PORT" > "$T/pf.out" 2>&1 \
  || { cat "$T/pf.out" >&2; fail "Postfix (TLS 1.2 only) did not start"; }
mark
for i in 1 2 3; do
  send "v$i@example.net"
  if ! wait_until 30 eval '[ "$(dumped s6)" -ge '$((i + 1))' ]'; then pf_stop; fail "v$i not delivered through Postfix at TLS 1.2"; fi
done
# (Postfix stays up for the next part)
n12=$(since | grep -c 'event=tls_out .* version=TLSv1\.2 ')
r12=$(since | grep -c 'event=tls_out .* version=TLSv1\.2 .* resumed=yes')
[ "$n12" -ge 3 ] || fail "TLS 1.2 handshakes with Postfix: $n12 of 3"
[ "$r12" -ge 1 ] || fail "no TLS 1.2 session with Postfix resumed ($n12 handshakes): $(since | grep -m3 'event=tls_out')"
for i in 1 2 3; do
  expect_match "$(since | grep "to=<v$i@example.net>.*status=sent")" ' tls=TLSv1\.2 ' "v$i went over TLS 1.2"
done
since | grep -q 'event=tls_failed .*note="resuming a session' ||
  fail "the TLS 1.3 session offered to the TLS 1.2-only server was not refused as expected (wolfSSL changed?)"
rr_stop
ok "Postfix with STARTTLS: TLS connection established, delivered; at TLS 1.2 only, the old TLS 1.3 session refused once (not plaintext), then $r12 of $n12 handshakes resumed"

# ---- 6c. two Postfix behind one address, each its own ticket keys -----------------------------
# A forwarder alternates the relay's connections between two TLS 1.2-only Postfix. wolfSSL's
# client offering the first one's ticket to the second fails that handshake ("Out of order
# message") instead of making a full one: once, after which the relay asks that
# destination for no ticket: every message over TLS 1.2, one failed handshake (before the
# per-destination rule: every other handshake failed)
PFD2=$T/pf2
PFP2=$(free_port)
PF_TLS_CERT=$T/sinkcert.crt PF_TLS_KEY=$T/sinkcert.key PF_TLS_PROTOCOLS='>=TLSv1.2, <=TLSv1.2' \
  bash "$HERE/../../bench/peers/postfix.sh" start "$PFD2" "$PFP2" "$S_PORT" > "$T/pf2.out" 2>&1 \
  || { cat "$T/pf2.out" >&2; pf_stop; fail "the second Postfix did not start"; }
pf2_stop() { bash "$HERE/../../bench/peers/postfix.sh" stop "$PFD2" > /dev/null 2>&1; }
python3 - "$T/fw.port" "$PFP" "$PFP2" <<'PY' &
import socket, sys, os, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64); s.settimeout(60)
open(sys.argv[1] + ".t", "w").write(str(s.getsockname()[1])); os.rename(sys.argv[1] + ".t", sys.argv[1])
ports, k = [int(sys.argv[2]), int(sys.argv[3])], 0
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except Exception: pass
    for x in (a, b):
        try: x.shutdown(socket.SHUT_RDWR)
        except Exception: pass
while True:
    try: c, _ = s.accept()
    except socket.timeout: break
    u = socket.create_connection(("127.0.0.1", ports[k % 2])); k += 1
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
PY
FWPID=$!
wait_until 5 test -s "$T/fw.port" || { pf_stop; pf2_stop; fail "forwarder"; }
hub "$(cat "$T/fw.port")" opportunistic
sed -i "s/\[mx.tls.test\]/[127.0.0.1]/" "$T/ringrelay.yaml"
mark
rr_start
before=$(dumped s6)
for i in 1 2 3 4; do
  send "w$i@example.net"
  if ! wait_until 30 eval '[ "$(dumped s6)" -ge '$((before + i))' ]'; then pf_stop; pf2_stop; fail "w$i not delivered through the two Postfix"; fi
done
pf_stop; pf2_stop; kill "$FWPID" 2> /dev/null
for i in 1 2 3 4; do
  expect_match "$(since | grep "to=<w$i@example.net>.*status=sent")" ' tls=TLSv1\.2 ' "w$i went over TLS 1.2"
done
nf=$(since | grep -c 'event=tls_failed')
[ "$nf" -eq 1 ] || fail "failed handshakes behind the two Postfix: $nf, want 1: $(since | grep 'event=tls_failed')"
since | grep -q 'event=tls_failed .*without asking for a ticket' || fail "the failure did not stop the tickets"
rr_stop
dns_stop
ok "two Postfix behind one address: one handshake failed on the other's ticket, then none (no tickets asked there); all over TLS 1.2"

# ---- --check loads what the daemon will load ---------------------------------------------------
printf 'transports:\n  - id: default\n    tls: verify\n    tls_ca_file: %s\n' "$HERE/badhop.py" > "$T/c1.yaml"
out=$("$RR_BIN" --check -c "$T/c1.yaml" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "--check with a CA file that is not PEM: exit $rc ($out)"
expect_match "$out" "c1\.yaml:0:0: tls: transport default: CA file .*badhop\.py" "--check names the CA file"
cat > "$T/c2.yaml" <<YAML
listeners:
  - { id: a, port: 0, tls: { certificate: $HERE/badhop.py, key: $T/sinkcert.key } }
YAML
out=$("$RR_BIN" --check -c "$T/c2.yaml" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "--check with a certificate that is not PEM: exit $rc ($out)"
expect_match "$out" "tls: listener a: certificate .*badhop\.py: cannot be used \(not PEM" "--check names the certificate"
sanitizer_clean
ok "--check loads certificates, keys and CA files: unusable ones are exit 2"
