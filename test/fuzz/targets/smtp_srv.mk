# The inbound SMTP session (and the address parser it calls). Limits are drawn small
# from the input, so short inputs hit them all: 512-octet command lines, DATA lines of
# 998 and more, max_message_size, recipients, errors. Up to 70000 octets so that a
# message over 64 KiB (whose buffer the session frees after use) fits too.
FUZZ_SRC_smtp_srv    := test/fuzz/smtp_srv_fuzz.c proto/smtp_srv.c proto/smtp_addr.c
FUZZ_MAXLEN_smtp_srv := 70000
# each run feeds the stream three times with a model alongside: fewer runs for fuzz-smoke
FUZZ_SMOKE_RUNS_smtp_srv := 5000
