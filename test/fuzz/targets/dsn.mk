# RFC 3464 bounces (proto/dsn): untrusted fields and the original message from the input.
# The original's header section is capped at 64 KiB (DSN_HEADERS_MAX): inputs up to 80000
# octets so that the cap, and lines past it, are reached.
FUZZ_SRC_dsn    := test/fuzz/dsn_fuzz.c proto/dsn.c
FUZZ_MAXLEN_dsn := 80000
