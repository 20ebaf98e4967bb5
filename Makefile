# ringrelay — see README.md. `make` builds; `make run` runs on the embedded defaults;
# `make test` installs what is missing, builds the ASan+UBSan variant and runs all tests.
BUILD    ?= build
CC       ?= cc
PKGS     := liburing libcyaml liburcu-qsbr libcares libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
# wolfSSL: the fast static build of scripts/build-wolfssl.sh when it is there (make deps
# makes it), else Debian's packaged libwolfssl-dev. WOLFSSL_LIB names the one linked.
WOLFSSL_DIR ?= third_party/wolfssl
ifneq ($(wildcard $(WOLFSSL_DIR)/install/lib/libwolfssl.a),)
WOLFSSL_LIB    := $(WOLFSSL_DIR)/install/lib/libwolfssl.a
PKG_CFLAGS     += -I$(WOLFSSL_DIR)/install/include
PKG_LIBS       := $(WOLFSSL_LIB) -lm $(PKG_LIBS)
else
WOLFSSL_LIB    := packaged
PKG_CFLAGS     += $(shell pkg-config --cflags wolfssl 2>/dev/null)
PKG_LIBS       := $(shell pkg-config --libs wolfssl 2>/dev/null) $(PKG_LIBS)
endif

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Wformat=2 -fno-common
ifdef CI
WARN     += -Werror
endif
CPPFLAGS := -I. -D_GNU_SOURCE -MMD -MP
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) $(PKG_CFLAGS)

# Test variant: ASan + UBSan, libc malloc (jemalloc only in the release build).
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TCFLAGS  := -O1 -g -std=gnu11 $(WARN) $(PKG_CFLAGS) $(SAN) -DRR_TEST_BUILD

PROTO_SRC := $(wildcard proto/*.c)
CFG_SRC   := $(wildcard cfg/*.c)
CORE_SRC  := $(filter-out core/main.c,$(wildcard core/*.c))
NET_SRC   := $(wildcard net/*.c)
LIB_SRC   := $(PROTO_SRC) $(CFG_SRC) $(CORE_SRC) $(NET_SRC)

REL := $(BUILD)/rel
TST := $(BUILD)/asan
obj = $(patsubst %.c,$(1)/%.o,$(2))
# net/tls is compiled against the headers of the library it links: a switch between the
# built and the packaged wolfSSL recompiles it.
$(BUILD)/wolfssl.which: FORCE
	@mkdir -p $(BUILD); echo '$(WOLFSSL_LIB)' | cmp -s - $@ || echo '$(WOLFSSL_LIB)' > $@
$(REL)/net/tls.o $(TST)/net/tls.o $(TST)/test/net/tls_test.o: $(BUILD)/wolfssl.which
FORCE:
.PHONY: FORCE

all: $(BUILD)/ringrelay $(BUILD)/ringblast $(BUILD)/ringsink man

# Man pages: written once in scdoc (doc/NAME.SECTION.scd), built into $(BUILD)/man/manN
# (scdoc's roff tidied by scripts/man-tidy.awk), checked with `mandoc -T lint`.
MAN_SRC  := $(wildcard doc/*.scd)
MAN_OUT  := $(foreach f,$(MAN_SRC),$(BUILD)/man/man$(subst .,,$(suffix $(basename $(f))))/$(notdir $(basename $(f))))
man: $(MAN_OUT)
define man_rule
$(BUILD)/man/man$(subst .,,$(suffix $(basename $(1))))/$(notdir $(basename $(1))): $(1) scripts/man-tidy.awk
	@mkdir -p $$(dir $$@)
	scdoc < $$< > $$@.raw && awk -f scripts/man-tidy.awk $$@.raw > $$@.tmp && rm $$@.raw && mv $$@.tmp $$@
endef
$(foreach f,$(MAN_SRC),$(eval $(call man_rule,$(f))))
check-man: $(MAN_OUT)
	@mandoc -T lint -W warning $(MAN_OUT) && echo "man: $(words $(MAN_OUT)) pages, mandoc -T lint clean"
.PHONY: man check-man

$(REL)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
$(TST)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TCFLAGS) -c $< -o $@

$(REL)/libring.a: $(call obj,$(REL),$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(TST)/libring.a: $(call obj,$(TST),$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(TST)/libproto.a: $(call obj,$(TST),$(PROTO_SRC))
	@rm -f $@; ar rcs $@ $^
$(TST)/libcfg.a: $(call obj,$(TST),$(CFG_SRC))
	@rm -f $@; ar rcs $@ $^

$(BUILD)/ringrelay: $(REL)/core/main.o $(REL)/libring.a
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) -ljemalloc
$(TST)/ringrelay: $(TST)/core/main.o $(TST)/libring.a
	$(CC) $(TCFLAGS) -o $@ $^ $(PKG_LIBS)

# bench/: ringblast and ringsink (and cidr_bench) are programs; every other bench/*.c is
# their shared support library (histogram, option parsing, ...), unit-tested in test/bench/.
BENCH_MAIN := bench/ringblast.c bench/ringsink.c bench/cidr_bench.c bench/tls_bench.c
BENCH_SRC  := $(filter-out $(BENCH_MAIN),$(wildcard bench/*.c))
$(REL)/libbench.a: $(call obj,$(REL),$(BENCH_SRC))
	@rm -f $@; ar rcs $@ $^
$(TST)/libbench.a: $(call obj,$(TST),$(BENCH_SRC))
	@rm -f $@; ar rcs $@ $^
$(BUILD)/ringblast: $(if $(wildcard bench/ringblast.c),$(REL)/bench/ringblast.o $(REL)/libbench.a $(REL)/libring.a)
	$(if $^,$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) -ljemalloc -lm,@echo "ringblast: not built yet (issue 4)")
$(BUILD)/ringsink: $(if $(wildcard bench/ringsink.c),$(REL)/bench/ringsink.o $(REL)/libbench.a $(REL)/libring.a)
	$(if $^,$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) -ljemalloc -lm,@echo "ringsink: not built yet (issue 4)")
# ASan+UBSan builds of the tools, for the integration tests.
$(TST)/ringblast: $(TST)/bench/ringblast.o $(TST)/libbench.a $(TST)/libring.a
	$(CC) $(TCFLAGS) -o $@ $^ $(PKG_LIBS) -lm
$(TST)/ringsink: $(TST)/bench/ringsink.o $(TST)/libbench.a $(TST)/libring.a
	$(CC) $(TCFLAGS) -o $@ $^ $(PKG_LIBS) -lm
TST_TOOLS := $(if $(wildcard bench/ringblast.c),$(TST)/ringblast) $(if $(wildcard bench/ringsink.c),$(TST)/ringsink)

# Unit tests: test/<dir>/<mod>_test.c. proto tests link proto only; cfg tests proto+cfg;
# core/net tests the whole library (they may need the ring plumbing).
UNIT_SRC := $(wildcard test/proto/*_test.c test/cfg/*_test.c test/core/*_test.c test/net/*_test.c test/bench/*_test.c)
UNIT_BIN := $(patsubst test/%.c,$(TST)/test/%,$(UNIT_SRC))
$(TST)/test/proto/%: $(TST)/test/proto/%.o $(TST)/libproto.a
	$(CC) $(TCFLAGS) -o $@ $^ -lcriterion
$(TST)/test/cfg/%: $(TST)/test/cfg/%.o $(TST)/libcfg.a $(TST)/libproto.a
	$(CC) $(TCFLAGS) -o $@ $^ -lcriterion $(PKG_LIBS)
# core/<mod>_test links core/<mod>.o plus cfg and proto (add a <mod>_DEPS line if it needs more).
.SECONDEXPANSION:
spool_DEPS := core/log.o core/spooldir.o net/loop.o net/stream.o net/listener.o net/uring.o \
              net/timer.o net/buf.o net/alarm.o net/post.o
$(TST)/test/core/%_test: $(TST)/test/core/%_test.o $(TST)/core/%.o $$(addprefix $(TST)/,$$($$*_DEPS)) $(TST)/libcfg.a $(TST)/libproto.a
	$(CC) $(TCFLAGS) -o $@ $^ -lcriterion $(PKG_LIBS)
# the spool's tests drive core/spool on the runtime (whatever net/ it needs) and the scan
$(TST)/test/core/spool_model_test: $(TST)/test/core/spool_model_test.o $(TST)/libring.a
	$(CC) $(TCFLAGS) -o $@ $^ -lcriterion $(PKG_LIBS)
$(TST)/test/core/spool_test: $(TST)/test/core/spool_test.o $(TST)/libring.a
	$(CC) $(TCFLAGS) -o $@ $^ -lcriterion $(PKG_LIBS)
# core/egress's table and headers (it posts letters and probes on the runtime)
$(TST)/test/core/egress_test: $(TST)/test/core/egress_test.o $(TST)/libring.a
	$(CC) $(TCFLAGS) -o $@ $^ -lcriterion $(PKG_LIBS)
$(TST)/test/bench/%: $(TST)/test/bench/%.o $(TST)/libbench.a $(TST)/libring.a
	$(CC) $(TCFLAGS) -o $@ $^ -lcriterion $(PKG_LIBS) -lm
$(TST)/test/net/%: $(TST)/test/net/%.o $(TST)/libring.a
	$(CC) $(TCFLAGS) -o $@ $^ -lcriterion $(PKG_LIBS)
.SECONDARY:

deps:
	@bash scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/ringrelay

test-unit: $(UNIT_BIN)
	@bash scripts/run-unit.sh $(UNIT_BIN)

test-integration: $(TST)/ringrelay $(TST_TOOLS) $(MAN_OUT) deb
	@RR_BIN=$(TST)/ringrelay RR_TOOLS=$(TST) RR_DEB=$$(readlink -f $$(ls $(BUILD)/ringrelay_*.deb | head -1)) \
	  bash test/integration/run.sh

check-layers:
	@bash scripts/check-layers.sh

# Everything `make test` runs is built first, one compiler per core (NPROC); the tests
# themselves then run one phase at a time, as before.
NPROC ?= $(shell nproc 2>/dev/null || echo 2)
test-build:
	@$(MAKE) --no-print-directory -j$(NPROC) $(UNIT_BIN) $(TST)/ringrelay $(TST_TOOLS) \
	  $(MAN_OUT) all $(patsubst %,$(FUZZ_DIR)/%_fuzz,$(FUZZ_ALL))
.PHONY: test-build

test: deps
	@$(MAKE) --no-print-directory check-layers test-build
	@$(MAKE) --no-print-directory check-man test-unit test-integration
	@$(MAKE) --no-print-directory fuzz-smoke

bench: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/install-deps.sh --bench && bash bench/run.sh

# The backlog scenario alone (also part of `make bench`): see bench/backlog.sh.
bench-backlog: deps
	@$(MAKE) --no-print-directory all
	@bash bench/backlog.sh
.PHONY: bench-backlog

# Delivery through one HAProxy tier against direct, and a proxy's death (issue 9): see
# bench/egress.sh. Not part of `make bench` (it needs a minute: the transactions a dead
# proxy cut wait for their next try).
bench-egress: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/install-deps.sh --bench && bash bench/egress.sh
.PHONY: bench-egress

# STARTTLS handshakes/s inbound (issue 10): ringblast --starttls against ringrelay and a
# private Postfix with TLS, in the same run; see bench/starttls.sh and bench/RESULTS.md.
bench-starttls: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/install-deps.sh --bench && bash bench/starttls.sh
.PHONY: bench-starttls

# The Debian package (scripts/make-deb.sh): build/ringrelay_VERSION_ARCH.deb.
deb: all
	@BUILD=$(BUILD) bash scripts/make-deb.sh
.PHONY: deb

clean:
	rm -rf $(BUILD)

# Fuzzing: the targets and `make fuzz` live in test/fuzz/fuzz.mk.
include test/fuzz/fuzz.mk

.PHONY: all deps run test check-layers test-unit test-integration bench clean
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The fast static wolfSSL against the packaged one: AES-128-GCM MB/s (wolfSSL's own
# benchmark program) and handshakes/s through net/tls (bench/tls_bench.c); bench/RESULTS.md.
bench-tls-lib: deps
	@BUILD=$(BUILD) WOLFSSL_DIR=$(WOLFSSL_DIR) bash bench/tls_lib.sh
.PHONY: bench-tls-lib

# CIDR lookups/s: cfg/cidr table vs a linear scan (issue 3); see bench/RESULTS.md.
$(BUILD)/cidr_bench: $(REL)/bench/cidr_bench.o $(REL)/libring.a
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)
bench-cidr: $(BUILD)/cidr_bench
	./$(BUILD)/cidr_bench
.PHONY: bench-cidr
