# PIPELINING: a whole transaction in one write is answered in order; swaks --pipeline works.
. "$(dirname "$0")/lib.sh"
rr_start
out=$($SMTPC $RR_PORT 'EHLO c.test\r\n|||MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@local.test>\r\nDATA\r\n|||Subject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@local.test>\r\nDATA\r\n|||x\r\n.\r\nQUIT\r\n')
want=$'250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n'
case "$out" in *"$want"*) ;; *) printf '%s' "$out" >&2; fail "pipelined group replies";; esac
n=$(printf '%s' "$out" | grep -c 'queued as')
[ "$n" -eq 2 ] || fail "want 2 queued, got $n"
expect_match "$out" '221 2.0.0 Bye' quit
sw=$(swaks --pipeline --server 127.0.0.1:$RR_PORT --from a@example.com --to b@example.net 2>&1) || fail "swaks --pipeline: $sw"
expect_match "$sw" 'queued as' "swaks pipeline"
[ "$(rr_queue_count)" -eq 3 ] || fail "queue count"
rr_stop
ok pipelining
