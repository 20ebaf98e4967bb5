# SMTP smuggling: bare LF / CR "end of data" variants never end DATA, the smuggled
# transaction is never executed and nothing is queued for the whole message.
. "$(dirname "$0")/lib.sh"
rr_start
for v in '\n.\n' '\n.\r\n' '\r\n.\n' '\r.\r\n'; do
  out=$($SMTPC $RR_PORT "EHLO c.test\r\n|||MAIL FROM:<a@x.test>\r\n|||RCPT TO:<b@local.test>\r\n|||DATA\r\n|||Subject: s\r\n\r\nhello${v}MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@local.test>\r\nDATA\r\nsmuggled\r\n.\r\n|||QUIT\r\n")
  expect_match "$out" '550 5\.5\.2 Error: bare <(LF|CR)> received' "variant $v"
  expect_nomatch "$out" 'queued as' "variant $v"
  expect_match "$out" '221 2\.0\.0 Bye' "variant $v quit"
done
# bare LF ending a command is refused too
out=$($SMTPC $RR_PORT 'EHLO c.test\n|||QUIT\r\n')
expect_match "$out" '550 5\.5\.2 Error: bare <LF> received' "command bare LF"
n=$(rr_queue_count)
[ "$n" -eq 0 ] || fail "smuggling queued $n messages"
rr_stop
ok "4 smuggling variants refused, nothing queued"
