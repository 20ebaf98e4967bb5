# A plain swaks session: queued, with a Received: header, listed by --queue.
. "$(dirname "$0")/lib.sh"
rr_start
out=$(swaks --server 127.0.0.1:$RR_PORT --from alice@example.com --to bob@example.net \
      --header 'Subject: hello' --body 'hi there' 2>&1) || fail "swaks failed: $out"
expect_match "$out" '<-  220 relay.test ESMTP' banner
expect_match "$out" '<-  250-PIPELINING' ehlo
expect_match "$out" '<-  250 2\.0\.0 Ok: queued as [0-9A-V]+' queued
qid=$(printf '%s' "$out" | sed -nE 's/.*queued as ([0-9A-V]+).*/\1/p')
q=$(rr_queue)
expect_match "$q" "^$qid +[0-9]+ .*<alice@example.com> +<bob@example.net>" "queue line"
qj=$(rr_queue --json)
expect_match "$qj" "\"queue_id\":\"$qid\"" "json id"
expect_match "$qj" '"recipients":\["bob@example.net"\]' "json rcpt"
# the message on disk carries our Received: header
"$RR_BIN" --show "$qid" -c "$T/ringrelay.yaml" > "$T/msg" || fail "--show $qid"
grep -q "by relay.test (ringrelay) with ESMTP id $qid" "$T/msg" || fail "no Received header in the queued message"
grep -q "^hi there" "$T/msg" || fail "--show does not give the message back"
if grep -aq "X-Mailer: swaks" "$T"/spool/*.seg; then fail "message data lies in the spool as sent (not scrambled)"; fi
"$RR_BIN" --show 0000000000000NONE -c "$T/ringrelay.yaml" >/dev/null 2>&1 && fail "--show of an unknown id succeeded"
rr_stop
ok "swaks queued $qid"
