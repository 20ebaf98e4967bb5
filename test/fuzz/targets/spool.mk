FUZZ_SRC_spool := test/fuzz/spool_fuzz.c proto/spoolrec.c proto/crc32c.c
FUZZ_MAXLEN_spool := 1048576
