# RFC 5321 paths (proto/smtp_addr). A path is at most 256 octets; inputs up to 600 so
# that over-long paths, labels, domains and what follows a path all occur.
FUZZ_SRC_addr    := test/fuzz/addr_fuzz.c proto/smtp_addr.c
FUZZ_MAXLEN_addr := 600
