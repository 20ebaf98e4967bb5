# Postfix's smtp-source, 20 sessions x 2000 messages: every one is listed by --queue.
. "$(dirname "$0")/lib.sh"
rr_start
timeout 200 smtp-source -s 20 -m 40000 -l 1024 -d -f src@example.com -t dst@local.test \
  127.0.0.1:$RR_PORT > "$T/src.out" 2>&1 || { cat "$T/src.out" >&2; fail "smtp-source failed"; }
grep -qi 'error\|fatal' "$T/src.out" && { cat "$T/src.out" >&2; fail "smtp-source errors"; }
rr_stop
n=$(rr_queue_count)
[ "$n" -eq 40000 ] || fail "queue lists $n, want 40000"
q=$(rr_queue | tail -1)
expect_match "$q" '^-- 40000 messages' "queue summary"
ok "40000 messages queued and listed"
