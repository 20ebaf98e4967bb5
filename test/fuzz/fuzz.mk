# Fuzzing (clang + libFuzzer; Debian: clang, libclang-rt-14-dev), one target per parser
# that reads bytes from outside. A target T is test/fuzz/targets/T.mk defining
#   FUZZ_SRC_T    := the harness and the sources it links (no -DRR_TEST_BUILD)
#   FUZZ_MAXLEN_T := the largest input libFuzzer may make (cover the real limits)
#   FUZZ_SMOKE_RUNS_T := runs for fuzz-smoke (optional; default FUZZ_SMOKE_RUNS), for a
#                    target whose runs are slow
# and builds $(BUILD)/fuzz/T_fuzz. Seeds, if any, are test/fuzz/seeds/T/.
#
#   make fuzz                               build every target
#   make fuzz FUZZ_SECONDS=N [FUZZ_TARGETS="a b"]
#                                           run each selected target N seconds in turn
#                                           on $(BUILD)/fuzz/corpus/T (+ the seeds);
#                                           logs and crash artifacts in $(BUILD)/fuzz/;
#                                           one summary line per target; a crash fails
#   make fuzz-smoke [FUZZ_SMOKE_RUNS=n]     build every target, run each n times: its
#                                           seeds, then mutations (fixed seed; no corpus
#                                           kept); a few seconds, for `make test`
# A harness is strict; FZ_KNOWN=name,... in the environment tolerates named findings not
# fixed yet (listed in the harness's header), so that fuzzing can go on past them.
FUZZ_CC     ?= clang
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
               -std=gnu11 $(WARN)
FUZZ_DIR    := $(BUILD)/fuzz
FUZZ_SMOKE_RUNS ?= 20000
# more libFuzzer flags for every run, e.g. FUZZ_FLAGS=-use_value_profile=1
FUZZ_FLAGS  ?=

include $(wildcard test/fuzz/targets/*.mk)
FUZZ_ALL     := $(sort $(patsubst test/fuzz/targets/%.mk,%,$(wildcard test/fuzz/targets/*.mk)))
FUZZ_TARGETS ?= $(FUZZ_ALL)
ifneq ($(filter fuzz,$(MAKECMDGOALS)),)
ifneq ($(filter-out $(FUZZ_ALL),$(FUZZ_TARGETS)),)
$(error FUZZ_TARGETS: no target $(filter-out $(FUZZ_ALL),$(FUZZ_TARGETS)); have: $(FUZZ_ALL))
endif
endif
FUZZ_HDRS    := $(wildcard proto/*.h test/fuzz/*.h)

define FUZZ_RULE
$(FUZZ_DIR)/$(1)_fuzz: $$(FUZZ_SRC_$(1)) $$(FUZZ_HDRS) test/fuzz/targets/$(1).mk
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) -I. -D_GNU_SOURCE $$(FUZZ_CFLAGS) -o $$@ $$(FUZZ_SRC_$(1))
endef
$(foreach t,$(FUZZ_ALL),$(eval $(call FUZZ_RULE,$(t))))

# "name:maxlen[:runs]" words for test/fuzz/run.sh
fuzz_args = $(foreach t,$(1),$(t):$(FUZZ_MAXLEN_$(t)))
fuzz_smoke_args = $(foreach t,$(1),$(t):$(FUZZ_MAXLEN_$(t)):$(or $(FUZZ_SMOKE_RUNS_$(t)),$(FUZZ_SMOKE_RUNS)))

fuzz: $(patsubst %,$(FUZZ_DIR)/%_fuzz,$(if $(FUZZ_SECONDS),$(FUZZ_TARGETS),$(FUZZ_ALL)))
ifdef FUZZ_SECONDS
	@bash test/fuzz/run.sh $(FUZZ_DIR) "$(FUZZ_FLAGS)" time=$(FUZZ_SECONDS) $(call fuzz_args,$(FUZZ_TARGETS))
endif

fuzz-smoke: $(patsubst %,$(FUZZ_DIR)/%_fuzz,$(FUZZ_ALL))
	@bash test/fuzz/run.sh $(FUZZ_DIR) "$(FUZZ_FLAGS)" runs $(call fuzz_smoke_args,$(FUZZ_ALL))

.PHONY: fuzz fuzz-smoke
