# Over-long lines, too many recipients, message size, too many errors.
. "$(dirname "$0")/lib.sh"
rr_config 'limits:' '  max_recipients: 3' '  max_message_size: 10000'
rr_start
long=$(head -c 600 /dev/zero | tr '\0' 'a')
out=$($SMTPC $RR_PORT "EHLO c.test\r\n|||MAIL FROM:<$long@x.test>\r\n|||NOOP\r\n|||QUIT\r\n")
expect_match "$out" '500 5\.5\.2 Error: command too long' "long command"
expect_match "$out" '250 2\.0\.0 Ok' "session survives"
dl=$(head -c 1200 /dev/zero | tr '\0' 'b')
out=$($SMTPC $RR_PORT "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@local.test>\r\nDATA\r\n|||Subject: l\r\n\r\n$dl\r\n.\r\n|||QUIT\r\n")
expect_match "$out" '550 5\.6\.0' "long data line"
expect_nomatch "$out" 'queued as' "long data line"
out=$($SMTPC $RR_PORT 'EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<1@local.test>\r\nRCPT TO:<2@local.test>\r\nRCPT TO:<3@local.test>\r\nRCPT TO:<4@local.test>\r\n|||QUIT\r\n')
expect_match "$out" '452 4\.5\.3 Error: too many recipients' "too many rcpts"
big=$(head -c 12000 /dev/zero | tr '\0' 'c' | fold -w 900 | sed 's/$/\\r/' | tr -d '\n' | sed 's/\\r/\\r\\n/g')
out=$($SMTPC $RR_PORT "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@local.test>\r\nDATA\r\n|||$big.\r\n|||QUIT\r\n")
expect_match "$out" '552 5\.3\.4' "message too big"
expect_nomatch "$out" 'queued as' "message too big"
errs=$(for i in $(seq 1 25); do printf 'BOGUS\\r\\n'; done)
out=$($SMTPC $RR_PORT "EHLO c.test\r\n|||$errs")
expect_match "$out" '421 4\.7\.0 relay\.test Error: too many errors' "too many errors"
expect_match "$out" '\[closed\]' "closed after too many errors"
[ "$(rr_queue_count)" -eq 0 ] || fail "something was queued"
rr_stop
ok limits
