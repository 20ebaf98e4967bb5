# ringsink --tls (issue 10): STARTTLS offered and used by swaks --tls (ESMTPS in the dumped
# message), --tls-implicit with swaks --tlsc, a bad certificate refused at start (exit 2).
. "$(dirname "$0")/lib.sh"
. "$HERE/tls_lib.sh"
tls_cert cert
sink s1 --tls "$T/cert.crt,$T/cert.key"
out=$(swaks --server 127.0.0.1:$S_PORT --tls --from a@example.com --to b@example.net 2>&1) \
  || fail "swaks --tls to ringsink: $out"
expect_match "$out" '<-  250-STARTTLS' "ringsink offers STARTTLS"
expect_match "$out" '<~  250 2\.0\.0 Ok: queued as' "queued over TLS"
wait_until 5 [ "$(dumped s1)" -eq 1 ] || fail "not dumped"
grep -q "with ESMTPS id" "$T"/s1/*.eml || fail "dumped message not ESMTPS"
sink s2 --tls "$T/cert.crt,$T/cert.key" --tls-implicit
out=$(swaks --server 127.0.0.1:$S_PORT --tlsc --from a@example.com --to b@example.net 2>&1) \
  || fail "swaks --tlsc to ringsink: $out"
expect_match "$out" '<~  250 2\.0\.0 Ok: queued as' "implicit: queued over TLS"
for p in "${S_PID[@]}"; do kill -TERM "$p"; wait "$p" || fail "ringsink exit status $?"; done
S_PID=()
"$SINK" -l 127.0.0.1:0 --tls "$T/nothere.crt,$T/cert.key" 2> "$T/bad.log"; rc=$?
[ "$rc" -eq 2 ] || fail "a missing certificate: exit $rc"
grep -q "ringsink: --tls: certificate" "$T/bad.log" || fail "no reason: $(cat "$T/bad.log")"
"$SINK" -l 127.0.0.1:0 --tls-implicit 2> /dev/null; [ $? -eq 2 ] || fail "--tls-implicit alone accepted"
sanitizer_clean
ok "ringsink --tls (STARTTLS) and --tls-implicit"
