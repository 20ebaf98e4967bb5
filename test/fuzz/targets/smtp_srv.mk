# The inbound SMTP session (and the address parser it calls). Limits are drawn small
# from the input, so 16 KiB reaches all of them: 512-octet command lines, DATA lines of
# 998 and more, several messages, max_message_size up to 64 KiB (or the default).
FUZZ_SRC_smtp_srv    := test/fuzz/smtp_srv_fuzz.c proto/smtp_srv.c proto/smtp_addr.c
FUZZ_MAXLEN_smtp_srv := 16384
