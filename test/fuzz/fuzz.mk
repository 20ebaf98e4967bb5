# Fuzzing (clang + libFuzzer; Debian: clang, libclang-rt-14-dev). `make fuzz` builds
# $(BUILD)/fuzz/proxy_fuzz from the parser's sources directly (no -DRR_TEST_BUILD).
# `make fuzz FUZZ_SECONDS=N` also runs it for N seconds (inputs up to 400 octets) on the
# corpus directory $(FUZZ_CORPUS), created if missing; crashes land in $(BUILD)/fuzz/.
FUZZ_CC     ?= clang
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
               -std=gnu11 $(WARN)
FUZZ_CORPUS ?= $(BUILD)/fuzz/corpus/proxy
FUZZ_PROXY_SRC := test/fuzz/proxy_fuzz.c proto/proxy.c proto/crc32c.c
$(BUILD)/fuzz/proxy_fuzz: $(FUZZ_PROXY_SRC) proto/proxy.h proto/crc32c.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -I. -D_GNU_SOURCE $(FUZZ_CFLAGS) -o $@ $(FUZZ_PROXY_SRC)
fuzz: $(BUILD)/fuzz/proxy_fuzz
ifdef FUZZ_SECONDS
	@mkdir -p $(FUZZ_CORPUS)
	$< -max_total_time=$(FUZZ_SECONDS) -max_len=400 -artifact_prefix=$(BUILD)/fuzz/ $(FUZZ_CORPUS)
endif
.PHONY: fuzz
