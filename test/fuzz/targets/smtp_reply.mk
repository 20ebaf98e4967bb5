# SMTP replies as a client reads them (proto/smtp_reply). A line may be 2048 octets;
# 8 KiB holds a few of those, or a long pipelined group of short replies.
FUZZ_SRC_smtp_reply    := test/fuzz/smtp_reply_fuzz.c proto/smtp_reply.c
FUZZ_MAXLEN_smtp_reply := 8192
