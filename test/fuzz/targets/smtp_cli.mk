# The outbound SMTP client (proto/smtp_cli): the input is a server's stream in turns, and
# the owner's choices. A reply line may be 4096 octets and a reply 200 lines: 20000
# octets hold a few maximal lines, or thousands of short replies.
FUZZ_SRC_smtp_cli    := test/fuzz/smtp_cli_fuzz.c proto/smtp_cli.c
FUZZ_MAXLEN_smtp_cli := 20000
