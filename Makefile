# libfinevent -- read top to bottom: variables, library, tools, tests,
# bench, examples, install.  `make help` lists the targets.

# ---------------------------------------------------------------- variables
VERSION   := 0.1.0
SOVERSION := 0
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
BINDIR    ?= $(PREFIX)/bin
DESTDIR   ?=
BUILD     ?= build

# Debian packages, as pkg-config-module:debian-package.
LIB_DEPS  := ck:libck-dev libxxhash:libxxhash-dev libsodium:libsodium-dev
# make fuzz: clang and its libFuzzer runtime (Debian's default clang).
FUZZ_DEPS := clang libclang-rt-dev llvm
TEST_DEPS := cmocka:libcmocka-dev quickfix:libquickfix-dev
# Test-only commands, as command:debian-package (promtool checks the
# Prometheus text format, curl scrapes order_flow's metrics endpoint).
TEST_CMDS := promtool:prometheus curl:curl
# Programs, as bin/command:debian-package: gnuplot draws `make bench-plot`
# (and its test).
PLOT_DEPS := bin/gnuplot:gnuplot-nox
# The Kafka companion (lib/kafka/) and its tests; optional for the core.
KAFKA_DEPS := rdkafka:librdkafka-dev

# Flavours of the build: release, asan (AddressSanitizer + UBSan), tsan.
FLAVOUR ?= release
O       := $(BUILD)/$(FLAVOUR)

WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla
CFLAGS     ?= -O2 -g
BASE_FLAGS := -std=c11 $(WARN) -fvisibility=hidden -pthread -Iinclude -Ilib
SAN_asan   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_tsan   := -fsanitize=thread
SAN_fuzz   := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=all
SAN_release:=
SAN        := $(SAN_$(FLAVOUR))
# Expanded when a recipe runs, i.e. after the deps check has installed them.
PKG_CFLAGS  = $(shell pkg-config --cflags ck libxxhash libsodium)
PKG_LIBS    = $(shell pkg-config --libs ck libxxhash libsodium)
TEST_CFLAGS = $(shell pkg-config --cflags cmocka)
TEST_LIBS   = $(shell pkg-config --libs cmocka)
ALL_CFLAGS  = $(BASE_FLAGS) $(CFLAGS) $(SAN) $(PKG_CFLAGS)

# Installs missing Debian packages (through sudo when not root), or stops
# naming them.  $(1): list of pc-module:debian-package, or of
# bin/command:debian-package for a program on the PATH.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
define need_packages
	@missing=""; command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"; \
	for p in $(1); do n="$${p%%:*}"; case "$$n" in \
	  bin/*) command -v "$${n#bin/}" >/dev/null 2>&1 ;; *) pkg-config --exists "$$n" 2>/dev/null ;; esac || \
	  missing="$$missing $${p#*:}"; done; \
	$(APT_MISSING)
endef

# Shell text: installs the Debian packages named in $$missing, if any.
APT_MISSING = if [ -n "$$missing" ]; then \
	  echo "libfinevent: installing missing Debian packages:$$missing"; \
	  { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } >/dev/null || \
	  { echo "libfinevent: could not install$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; }; \
	fi

# As need_packages, for commands: $(1) is a list of command:debian-package.
# Commands the tests run: TEST_COMMANDS.
TEST_COMMANDS := $(TEST_CMDS)
define need_commands
	@missing=""; for p in $(1); do command -v "$${p%%:*}" >/dev/null 2>&1 || missing="$$missing $${p#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "libfinevent: installing missing Debian packages:$$missing"; \
	  { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } >/dev/null || \
	  { echo "libfinevent: could not install$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; }; \
	fi
endef

$(BUILD)/.deps-commands:
	$(call need_commands,$(TEST_COMMANDS))
	@mkdir -p $(@D) && touch $@

.DEFAULT_GOAL := all
.PHONY: all help deps lib tools test test-asan test-tsan test-all check-symbols check-install \
        run-tests stress run-stress fuzz fuzz-bin fuzz-lib fuzz-seeds \
        bench bench-bin bench-vs-disruptor bench-order-flow bench-plot demo run examples run-examples install \
        uninstall clean compliance-conf fuzz-compliance-conf fuzz-compliance-conf-bin fuzz-recon \
        fix-gateway test-fix bench-fix fuzz-fix-map

help:
	@echo "make              build the library (static + shared) and the tools in $(BUILD)/release"
	@echo "make tools        build the tools: $(BUILD)/release/bin/fe-journal (journal dump/verify/stats), fe-audit (audit trail verify/dump/search/keygen)"
	@echo "make deps         install the Debian packages it needs (apt-get, sudo if not root)"
	@echo "make demo         build and run the order-flow application (examples/order_flow.c); also: make run"
	@echo "make test         build and run every cmocka suite and every example"
	@echo "make test-asan    the suites under AddressSanitizer + UBSan"
	@echo "make test-tsan    the suites under ThreadSanitizer"
	@echo "make test-all     all three, as CI does; ends on one 'N passed, N failed' line per flavour"
	@echo "make fuzz         build the libFuzzer harnesses (test/fuzz/) and run each FUZZ_SECONDS (default 60)"
	@echo "make stress       the long stress suites (test/stress/), release and TSan (STRESS_EVENTS=N)"
	@echo "make bench        build optimised and run every benchmark (BENCH_ARGS=... for options)"
	@echo "make bench-vs-disruptor  ours and the LMAX Disruptor's shapes alternated (VS_ROUNDS=5)"
	@echo "make bench-order-flow  the order_flow application as a benchmark (BENCH_RUNS=5)"
	@echo "make fuzz-recon   fuzz the statement parser with libFuzzer (FUZZ_SECONDS=60)"
	@echo "make bench-plot   latency-by-percentile chart (SVG+PNG) of PLOT_HGRM=*.hgrm files and a"
	@echo "                  throughput bar chart of PLOT_CSV=sweep.csv, into PLOT_OUT (docs/tuning.md)"
	@echo "make fix-gateway  build the FIX 4.4 gateway example (needs g++ and libquickfix-dev)"
	@echo "make test-fix     its test: a QuickFIX initiator against the running gateway"
	@echo "make bench-fix    FIX round trip (initiator send -> ack) for 1 and 4 sessions"
	@echo "make fuzz-fix-map libFuzzer on the FIX->fe_order mapping (FUZZ_SECONDS=600)"
	@echo "make examples     build the examples"
	@echo "make compliance-conf  the compliance file loader, libfinevent-compliance-conf (needs libinih)"
	@echo "make fuzz-compliance-conf  fuzz the loader (clang libFuzzer; FUZZ_SECONDS=60)"
	@echo "make install      install headers, libraries, libfinevent.pc, tools (PREFIX, DESTDIR)"
	@echo "make kafka        build libfinevent-kafka (needs librdkafka) and its example"
	@echo "make test-kafka   the Kafka suite on librdkafka's mock cluster (make test runs it too)"
	@echo "make fuzz-kafka   libFuzzer on the orders-topic decoder (FUZZ_SECONDS=60)"
	@echo "make bench-kafka  the kafka_source_sink scenario (mock cluster on loopback)"
	@echo "make kafka        build libfinevent-kafka (needs librdkafka) and its example"
	@echo "make test-kafka   the Kafka suite on librdkafka's mock cluster (make test runs it too)"
	@echo "make fuzz-kafka   libFuzzer on the orders-topic decoder (FUZZ_SECONDS=60)"
	@echo "make bench-kafka  the kafka_source_sink scenario (mock cluster on loopback)"
	@echo "make clean        remove $(BUILD)/"

deps: $(BUILD)/.deps-test $(BUILD)/.deps-examples $(BUILD)/.deps-commands

$(BUILD)/.deps-lib:
	$(call need_packages,$(LIB_DEPS))
	@mkdir -p $(@D) && touch $@

$(BUILD)/.deps-test: $(BUILD)/.deps-lib
	$(call need_packages,$(TEST_DEPS) $(PLOT_DEPS))
	$(call need_packages,$(KAFKA_DEPS))
	$(call need_commands,$(TEST_CMDS))
	@mkdir -p $(@D) && touch $@

$(BUILD)/.deps-plot:
	$(call need_packages,$(PLOT_DEPS))
	@mkdir -p $(@D) && touch $@

# ------------------------------------------------------------------ library
LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:lib/%.c=$(O)/lib/%.o)
HEADERS  := $(wildcard include/finevent/*.h) $(wildcard lib/*.h)
STATIC   := $(O)/libfinevent.a
SONAME   := libfinevent.so.$(SOVERSION)
SHARED   := $(O)/libfinevent.so.$(VERSION)

all: lib tools compliance-conf
lib: $(STATIC) $(SHARED)

$(O)/lib/%.o: lib/%.c $(HEADERS) $(BUILD)/.deps-lib
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(PKG_LIBS)
	ln -sf $(notdir $@) $(O)/$(SONAME)
	ln -sf $(SONAME) $(O)/libfinevent.so

# Only fe_ symbols may leave the shared library.
check-symbols: $(SHARED) $(CONF_SHARED)
	@bad=$$(nm -D --defined-only $(SHARED) $(CONF_SHARED) | awk 'NF==3 {print $$3}' | grep -v '^fe_' || true); \
	if [ -n "$$bad" ]; then echo "exported symbols without fe_ prefix:"; echo "$$bad"; exit 1; fi; \
	echo "check-symbols: only fe_ symbols exported"

# Installs into a scratch, non-standard prefix and builds the README's
# example against it exactly as the README says: shared (run with
# LD_LIBRARY_PATH, and linked with -rpath, run without) and static
# (libfinevent-static.pc; the program must not need libfinevent.so).
STAGE := $(abspath $(BUILD))/stage
check-install:
	@rm -rf $(STAGE)
	@$(MAKE) --no-print-directory FLAVOUR=release install PREFIX=$(STAGE) >/dev/null
	@sed -n '/^## A custom stage/,/^```$$/p' README.md | sed '1,/^```c/d;/^```$$/d' > $(STAGE)/app.c
	@cd $(STAGE) && export PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig && set -e; \
	cc app.c $$(pkg-config --cflags --libs libfinevent) -o app-shared; \
	LD_LIBRARY_PATH=$(STAGE)/lib ./app-shared; \
	cc app.c $$(pkg-config --cflags --libs libfinevent) -Wl,-rpath,$$(pkg-config --variable=libdir libfinevent) \
	  -o app-rpath; \
	./app-rpath; \
	cc app.c $$(pkg-config --cflags --libs --static libfinevent-static) -o app-static; \
	if readelf -d app-static | grep -q 'NEEDED.*libfinevent'; then \
	  echo "check-install: app-static needs libfinevent.so" >&2; exit 1; fi; \
	./app-static; \
	echo "check-install: README example built and ran shared (LD_LIBRARY_PATH, -rpath) and static"
	@cmp -s $(STAGE)/app.c examples/custom_stage.c || \
	  { echo "check-install: README's custom stage differs from examples/custom_stage.c"; exit 1; }
	@export PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig; \
	for e in $(EXAMPLE_SRC); do n=$$(basename $$e .c); extra=""; \
	  [ $$n = order_flow ] && extra="$$(pkg-config --cflags --libs libfinevent-compliance-conf libmicrohttpd libsodium)"; \
	  $(CC) -std=c11 -Wall -Werror -pthread $$e -o $(STAGE)/$$n $$(pkg-config --cflags --libs libfinevent) $$extra || exit 1; \
	done; echo "check-install: every example builds against the installed library via pkg-config"

# -------------------------------------------------------------------- tools
# Command-line tools, one per tools/*.c: programs for operators, not library
# code, so they live beside lib/ rather than in it; each is linked against
# the static library (and may read lib/'s private headers for on-disk
# formats, as fe-journal reads lib/jrec.h).
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(O)/bin/%)

$(O)/bin/%: tools/%.c $(HEADERS) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(STATIC) $(PKG_LIBS)

tools: $(TOOL_BIN)

# ------------------------------------------- compliance file loader
# libfinevent-compliance-conf (lib/compliance_conf/, compliance_conf.h):
# the INI loader for the compliance rules, a companion library so that the
# core keeps to ck, xxHash and libsodium; it adds libinih.
CONF_DEPS   := inih:libinih-dev
CONF_SRC    := $(wildcard lib/compliance_conf/*.c)
CONF_OBJ    := $(CONF_SRC:lib/compliance_conf/%.c=$(O)/lib/compliance_conf/%.o)
CONF_STATIC := $(O)/libfinevent-compliance-conf.a
CONF_SONAME := libfinevent-compliance-conf.so.$(SOVERSION)
CONF_SHARED := $(O)/libfinevent-compliance-conf.so.$(VERSION)
CONF_CFLAGS  = $(shell pkg-config --cflags inih)
CONF_LIBS    = $(shell pkg-config --libs inih)

$(BUILD)/.deps-conf: $(BUILD)/.deps-lib
	$(call need_packages,$(CONF_DEPS))
	@mkdir -p $(@D) && touch $@

$(O)/lib/compliance_conf/%.o: lib/compliance_conf/%.c $(HEADERS) $(BUILD)/.deps-conf
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CONF_CFLAGS) -fPIC -c $< -o $@

$(CONF_STATIC): $(CONF_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(CONF_SHARED): $(CONF_OBJ) $(SHARED)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(CONF_SONAME) -o $@ $(CONF_OBJ) \
	  -L$(O) -lfinevent $(CONF_LIBS)
	ln -sf $(notdir $@) $(O)/$(CONF_SONAME)
	ln -sf $(CONF_SONAME) $(O)/libfinevent-compliance-conf.so

compliance-conf: $(CONF_STATIC) $(CONF_SHARED)

# The loader's fuzzer is test/fuzz/fuzz_compliance_conf.c, built and run
# by `make fuzz` (below) with the loader's sources and libinih.

# -------------------------------------------------------------------- tests
TEST_SRC := $(filter-out test/test_kafka.c,$(wildcard test/test_*.c))
TEST_BIN := $(TEST_SRC:test/%.c=$(O)/test/%)
TEST_TIMEOUT ?= 600

$(O)/test/%: test/%.c test/*.h $(STATIC) $(BUILD)/.deps-test
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) $(TEST_DEFS) -Itest $< -o $@ $(TEST_OBJS) $(TEST_EXTRA) $(STATIC) $(PKG_LIBS) $(TEST_LIBS)

# The journal and durability suites run the fe-journal tool of their own
# flavour.
$(O)/test/test_journal $(O)/test/test_durable: $(O)/bin/fe-journal
$(O)/test/test_journal $(O)/test/test_durable: TEST_DEFS = -DFE_JOURNAL_TOOL='"$(abspath $(O)/bin/fe-journal)"'
# The NULL table checks itself against the public headers, the companion
# libraries' included: it links the compliance loader always (as its own
# suite does) and libfinevent-kafka when librdkafka is present (see the
# Kafka section).
# test_bus_inline binds the shared library of its flavour by symbol.
$(O)/test/test_bus_inline: $(SHARED)
$(O)/test/test_bus_inline: TEST_DEFS = -DFE_SHARED_LIB='"$(abspath $(SHARED))"'
$(O)/test/test_api_null: $(CONF_STATIC)
$(O)/test/test_api_null: TEST_DEFS = -DFE_INCLUDE_DIR='"$(abspath include/finevent)"'
$(O)/test/test_api_null: TEST_EXTRA = $(CONF_STATIC) $(CONF_LIBS)

$(O)/test/test_audit: $(O)/bin/fe-audit
$(O)/test/test_audit: TEST_DEFS = -DFE_AUDIT_TOOL='"$(abspath $(O)/bin/fe-audit)"'

# The compliance loader's suite links the companion library and libinih.
$(O)/test/test_compliance_conf: $(CONF_STATIC)
$(O)/test/test_compliance_conf: TEST_EXTRA = $(CONF_STATIC) $(CONF_LIBS)
$(O)/test/test_compliance_conf: TEST_DEFS = -DFE_EXAMPLES_DIR='"$(abspath examples)"'

# The order_flow suite runs the example of its own flavour (fe-audit on
# its trail, fe-journal on its journal), and scrapes its metrics with curl and checks them with
# promtool.
$(O)/test/test_order_flow: $(O)/examples/order_flow $(O)/bin/fe-audit $(O)/bin/fe-journal \
  $(BUILD)/.deps-commands
$(O)/test/test_order_flow: TEST_DEFS = -DFE_ORDER_FLOW='"$(abspath $(O)/examples/order_flow)"' \
  -DFE_AUDIT_TOOL='"$(abspath $(O)/bin/fe-audit)"' \
  -DFE_JOURNAL_TOOL='"$(abspath $(O)/bin/fe-journal)"'

# Each suite runs in its own process with a timeout; all run even if one
# fails, and the target fails if any did.  The flavour's closing line
# ("release: 27 passed, 0 failed") also goes to $(O)/test-summary, which
# test-all adds up.
run-tests: $(TEST_BIN) $(TOOL_BIN)
	@pass=0; fail=0; failed=""; for t in $(TEST_BIN); do echo "== $$t"; \
	  if timeout $(TEST_TIMEOUT) $$t; then pass=$$((pass + 1)); \
	  else echo "FAILED: $$t"; fail=$$((fail + 1)); failed="$$failed $${t##*/}"; fi; done; \
	[ -z "$$failed" ] || echo "$(FLAVOUR) suites that failed:$$failed"; \
	echo "$(FLAVOUR): $$pass passed, $$fail failed" | tee $(O)/test-summary; \
	[ $$fail = 0 ]

test: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=release run-tests run-examples check-symbols check-install
	@$(MAKE) --no-print-directory FLAVOUR=release test-fix
	@$(MAKE) --no-print-directory FLAVOUR=release run-kafka
test-asan: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=asan run-tests \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
	@$(MAKE) --no-print-directory FLAVOUR=asan run-kafka \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
	@$(MAKE) --no-print-directory FLAVOUR=asan test-fix \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
test-tsan: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=tsan run-tests TSAN_OPTIONS=halt_on_error=1
# All three flavours run even when one fails; the run ends on one line
# per flavour and one for the whole run, then fails if anything did.
TEST_FLAVOURS := release:test asan:test-asan tsan:test-tsan
test-all: $(BUILD)/.deps-test
	@rc=0; bad=""; for ft in $(TEST_FLAVOURS); do rm -f $(BUILD)/$${ft%%:*}/test-summary; done; \
	for ft in $(TEST_FLAVOURS); do \
	  $(MAKE) --no-print-directory $${ft#*:} || { rc=1; bad="$$bad $${ft%%:*}"; }; done; \
	echo "== test-all"; pass=0; fail=0; \
	for ft in $(TEST_FLAVOURS); do f=$${ft%%:*}; s=$(BUILD)/$$f/test-summary; \
	  if [ -f $$s ]; then p=$$(awk '{print $$2}' $$s); n=$$(awk '{print $$4}' $$s); \
	    pass=$$((pass + p)); fail=$$((fail + n)); \
	    case " $$bad " in *" $$f "*) [ "$$n" != 0 ] || echo "$$f: suites passed, but a later check failed (see above)";; esac; \
	  else echo "$$f: the suites did not run (build failed, see above)"; fi; done; \
	for ft in $(TEST_FLAVOURS); do s=$(BUILD)/$${ft%%:*}/test-summary; [ ! -f $$s ] || cat $$s; done; \
	echo "all: $$pass passed, $$fail failed"; \
	exit $$rc

# ------------------------------------------------------------------- stress
# Long concurrent runs, kept out of `make test`: test/stress/*.c, built
# like the suites, run once in release and once under TSan (fewer events:
# TSan is 5-15x slower).  FE_STRESS_EVENTS is the events per run.
STRESS_SRC         := $(wildcard test/stress/*.c)
STRESS_BIN         := $(STRESS_SRC:test/stress/%.c=$(O)/stress/%)
STRESS_EVENTS      ?= 100000000
STRESS_EVENTS_TSAN ?= 5000000
STRESS_TIMEOUT     ?= 1800

$(O)/stress/%: test/stress/%.c test/*.h $(STATIC) $(BUILD)/.deps-test
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Itest $< -o $@ $(STATIC) $(PKG_LIBS) $(TEST_LIBS)

run-stress: $(STRESS_BIN)
	@for t in $(STRESS_BIN); do echo "== $$t ($$FE_STRESS_EVENTS events)"; \
	  timeout $(STRESS_TIMEOUT) $$t || { echo "FAILED: $$t"; exit 1; }; done

stress: $(BUILD)/.deps-test
	@FE_STRESS_EVENTS=$(STRESS_EVENTS) $(MAKE) --no-print-directory FLAVOUR=release run-stress
	@FE_STRESS_EVENTS=$(STRESS_EVENTS_TSAN) $(MAKE) --no-print-directory FLAVOUR=tsan run-stress \
	  TSAN_OPTIONS=halt_on_error=1
	@echo "stress: every stress suite passed (release and TSan)"

# --------------------------------------------------------------------- fuzz
# libFuzzer harnesses: every test/fuzz/fuzz_*.c (and fuzz_*.cc), built
# with clang and ASan+UBSan against the library's "fuzz" flavour (the same
# sources, instrumented for coverage), each run FUZZ_SECONDS on a scratch
# copy of its seed corpus test/fuzz/corpus/<name>/ (the repository's copy
# is never written).  Any crash, leak, sanitizer report or timeout fails
# the target, after every harness has run; the input that did it is kept
# in $(BUILD)/fuzz/artifacts/.  FUZZ_ARGS passes more libFuzzer options.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_CXX     ?= clang++
FUZZ_ARGS    ?=
FUZZ_O       := $(BUILD)/fuzz
FUZZ_FLAGS    = $(BASE_FLAGS) -O1 -g $(SAN_fuzz) $(PKG_CFLAGS) -Itest/fuzz -Itools
FUZZ_LINK     = -fsanitize=fuzzer,address,undefined
FUZZ_SRC     := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_CC_SRC  := $(wildcard test/fuzz/fuzz_*.cc)
FUZZ_BIN     := $(FUZZ_SRC:test/fuzz/%.c=$(FUZZ_O)/bin/%) $(FUZZ_CC_SRC:test/fuzz/%.cc=$(FUZZ_O)/bin/%)
# What a harness needs beyond the library: sources compiled in with it
# (FUZZ_EXTRA_<name>), flags (FUZZ_CFLAGS_<name>), libraries
# (FUZZ_LIBS_<name>).  The companions' harnesses take their sources.
FUZZ_LIBS     = $(PKG_LIBS) $(FUZZ_LIBS_$(notdir $@))
FUZZ_EXTRA_fuzz_compliance_conf  = $(CONF_SRC)
FUZZ_CFLAGS_fuzz_compliance_conf = $(CONF_CFLAGS)
FUZZ_LIBS_fuzz_compliance_conf   = $(CONF_LIBS)
FUZZ_EXTRA_fuzz_kafka_record     = lib/kafka/codec.c
FUZZ_CFLAGS_fuzz_kafka_record    = -Ilib/kafka
FUZZ_EXTRA_fuzz_fix_map          = examples/fix_gateway/fix_map.c
FUZZ_CFLAGS_fuzz_fix_map         = -Iexamples/fix_gateway
# FUZZ_ONLY=name runs one harness (the fuzz-<module> targets below).
FUZZ_ONLY    ?=
FUZZ_RUN      = $(if $(FUZZ_ONLY),$(FUZZ_O)/bin/$(FUZZ_ONLY),$(FUZZ_BIN))

# Installs clang and libFuzzer when a one-line harness does not link.
$(BUILD)/.deps-fuzz: $(BUILD)/.deps-lib
	@mkdir -p $(@D)
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d == 0 && n; }\n' \
	  > $(BUILD)/.deps-fuzz.c; \
	if ! $(FUZZ_CC) -fsanitize=fuzzer,address,undefined $(BUILD)/.deps-fuzz.c -o $(BUILD)/.deps-fuzz.bin \
	     >/dev/null 2>&1; then \
	  echo "libfinevent: installing clang and libFuzzer: $(FUZZ_DEPS)"; \
	  { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FUZZ_DEPS); } >/dev/null || \
	  { echo "libfinevent: could not install them -- run: sudo apt-get install $(FUZZ_DEPS)" >&2; exit 1; }; \
	fi; rm -f $(BUILD)/.deps-fuzz.c $(BUILD)/.deps-fuzz.bin; touch $@

fuzz-lib: $(BUILD)/.deps-fuzz
	@$(MAKE) --no-print-directory FLAVOUR=fuzz CC=$(FUZZ_CC) CFLAGS="-O1 -g" $(FUZZ_O)/libfinevent.a

$(FUZZ_O)/bin/%: test/fuzz/%.c test/fuzz/*.h $(HEADERS) fuzz-lib
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_CFLAGS_$(notdir $@)) $< $(FUZZ_EXTRA_$(notdir $@)) -o $@ \
	  $(FUZZ_LINK) $(FUZZ_O)/libfinevent.a $(FUZZ_LIBS)

$(FUZZ_O)/bin/%: test/fuzz/%.cc test/fuzz/*.h $(HEADERS) fuzz-lib
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(filter-out -std=c11 -Wstrict-prototypes,$(FUZZ_FLAGS)) -std=c++14 $< -o $@ \
	  $(FUZZ_LINK) $(FUZZ_O)/libfinevent.a $(FUZZ_LIBS)

fuzz-bin: $(FUZZ_BIN)

# Rewrites the seed corpora of the journal harnesses from real journals
# (test/fuzz/gen_seeds.c); commit the result.
fuzz-seeds: fuzz-lib
	@mkdir -p $(FUZZ_O)/bin
	$(FUZZ_CC) $(FUZZ_FLAGS) test/fuzz/gen_seeds.c -o $(FUZZ_O)/bin/gen_seeds \
	  -fsanitize=address,undefined $(FUZZ_O)/libfinevent.a $(PKG_LIBS)
	rm -rf $(FUZZ_O)/seeds && $(FUZZ_O)/bin/gen_seeds $(FUZZ_O)/seeds
	for h in fuzz_journal_scan fuzz_fe_journal fuzz_bus_recovery fuzz_jrec; do \
	  rm -rf test/fuzz/corpus/$$h && mkdir -p test/fuzz/corpus && \
	  cp -R $(FUZZ_O)/seeds/$$h test/fuzz/corpus/$$h; done

fuzz: $(if $(FUZZ_ONLY),$(FUZZ_O)/bin/$(FUZZ_ONLY),fuzz-bin)
	@fail=""; for b in $(FUZZ_RUN); do n=$${b##*/}; run=$(FUZZ_O)/run/$$n; \
	  rm -rf $$run && mkdir -p $$run/corpus $$run/tmp $(FUZZ_O)/artifacts; \
	  [ ! -d test/fuzz/corpus/$$n ] || cp -R test/fuzz/corpus/$$n/. $$run/corpus/; \
	  echo "== $$n: $(FUZZ_SECONDS) s"; \
	  TMPDIR=$$(cd $$run/tmp && pwd) \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $$b -max_total_time=$(FUZZ_SECONDS) -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_O)/artifacts/$$n- $(FUZZ_ARGS) $$run/corpus > $$run/log 2>&1 \
	    || { fail="$$fail $$n"; echo "FAILED: $$n (log: $$run/log)"; tail -n 40 $$run/log; }; \
	  grep -E '^#[0-9]+[[:space:]]+DONE' $$run/log | tail -n 1; done; \
	[ -z "$$fail" ] || { echo "fuzz: crashes in:$$fail"; exit 1; }; \
	echo "fuzz: every harness ran $(FUZZ_SECONDS) s without a crash"

# One harness each (FUZZ_SECONDS as for make fuzz).
fuzz-recon:           ; @$(MAKE) --no-print-directory fuzz FUZZ_ONLY=fuzz_recon
fuzz-compliance-conf: ; @$(MAKE) --no-print-directory fuzz FUZZ_ONLY=fuzz_compliance_conf
fuzz-kafka:           ; @$(MAKE) --no-print-directory fuzz FUZZ_ONLY=fuzz_kafka_record
fuzz-fix-map:         ; @$(MAKE) --no-print-directory fuzz FUZZ_ONLY=fuzz_fix_map
fuzz-audit:           ; @$(MAKE) --no-print-directory fuzz FUZZ_ONLY=fuzz_audit
fuzz-compliance-conf-bin: $(FUZZ_O)/bin/fuzz_compliance_conf

# -------------------------------------------------------------------- bench
# Always the optimised release flavour.  --wrap lets fe-bench count the
# library's heap allocations while a bus runs.
BENCH_BIN  := $(BUILD)/release/bench/fe_bench
BENCH_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc
BENCH_ARGS ?=

# The bench's helper modules (sweeps, .hgrm files, the machine record) are
# not programs: fe_bench links them, and so does test_bench_sweep (in its
# own flavour).  FE_BENCH_COMMIT: the commit the bench is built from
# ("-dirty" when the tree has uncommitted changes); the stamp changes (and machine.o is rebuilt) only when the commit does.
BENCH_MOD_SRC := bench/hgrm.c bench/machine.c bench/sweep.c
BENCH_MOD_OBJ  = $(BENCH_MOD_SRC:bench/%.c=$(O)/bench/mod/%.o)
BENCH_COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)$(shell \
                 git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet HEAD -- 2>/dev/null && echo -dirty)

$(BUILD)/bench-commit: FORCE
	@mkdir -p $(@D); echo '$(BENCH_COMMIT)' | cmp -s - $@ 2>/dev/null || echo '$(BENCH_COMMIT)' > $@
FORCE:

$(O)/bench/mod/%.o: bench/%.c bench/*.h $(HEADERS) $(BUILD)/.deps-lib
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(O)/bench/mod/machine.o: $(BUILD)/bench-commit
$(O)/bench/mod/machine.o: ALL_CFLAGS += -DFE_BENCH_COMMIT='"$(BENCH_COMMIT)"'

$(O)/test/test_bench_sweep: $(BENCH_MOD_OBJ)
$(O)/test/test_bench_sweep: TEST_OBJS = $(BENCH_MOD_OBJ) -lm
$(O)/test/test_bench_sweep: TEST_DEFS = -DFE_SRCDIR='"$(abspath .)"'

$(BUILD)/release/bench/%: bench/%.c bench/*.h $(BENCH_MOD_OBJ) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(BENCH_WRAP) $(BENCH_MOD_OBJ) $(STATIC) $(PKG_LIBS) -lm

# Latency-by-percentile chart of .hgrm files (ours and the Disruptor
# anchor's alike) and a throughput bar chart of a sweep's CSV, as SVG and
# PNG in PLOT_OUT; see bench/plot.sh and docs/tuning.md.
PLOT_HGRM  ?= $(wildcard $(BUILD)/plot/*.hgrm)
PLOT_CSV   ?= $(wildcard $(BUILD)/plot/*.csv)
PLOT_OUT   ?= $(BUILD)/plot
PLOT_TITLE ?= end-to-end latency by percentile
bench-plot: $(BUILD)/.deps-plot
	@bench/plot.sh -o '$(PLOT_OUT)' -t '$(PLOT_TITLE)' $(PLOT_HGRM) $(PLOT_CSV)

bench-bin: $(BENCH_BIN)

# The Disruptor's shapes, ours and theirs alternated in one sitting
# (bench/vs_disruptor.sh; needs ../shared/anchors and a JDK).
VS_ROUNDS ?= 5
bench-vs-disruptor:
	@$(MAKE) --no-print-directory FLAVOUR=release bench-bin
	bench/vs_disruptor.sh $(VS_ROUNDS)

bench:
	@$(MAKE) --no-print-directory FLAVOUR=release bench-bin
	@echo "fe-bench on $$(nproc) cores, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $$(date -u +%F)"
	$(BENCH_BIN) $(BENCH_ARGS)

# The application's pipeline as a bench scenario (bench/order_flow.sh):
# orders/s and end-to-end p50/p99 of examples/order_flow.
BENCH_RUNS ?= 5
bench-order-flow:
	@$(MAKE) --no-print-directory FLAVOUR=release $(BUILD)/release/examples/order_flow
	@echo "order_flow bench on $$(nproc) cores, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $$(date -u '+%F %H:%M UTC')"
	sh bench/order_flow.sh $(BUILD)/release/examples/order_flow $(BENCH_RUNS)

# ----------------------------------------------------- the Kafka companion
# libfinevent-kafka (include/finevent/kafka.h, lib/kafka/*.c), its suite
# (test/test_kafka.c, run on librdkafka's in-process mock cluster), its
# example and bench.  Built only when librdkafka is present; the core
# library never links it.  No TSan run: Debian's librdkafka starts its
# threads with C11 thrd_create(), which gcc 12's TSan does not intercept,
# so the first allocation on a librdkafka thread crashes inside TSan's
# allocator (measured: SIGSEGV in SizeClassAllocator64LocalCache, thread
# rdk:mock).  The suite runs under ASan+UBSan instead.
HAVE_KAFKA    = $(shell pkg-config --exists rdkafka 2>/dev/null && echo 1)
KAFKA_CFLAGS  = $(shell pkg-config --cflags rdkafka 2>/dev/null)
KAFKA_LIBS    = $(shell pkg-config --libs rdkafka 2>/dev/null)
KAFKA_SRC     := $(wildcard lib/kafka/*.c)
KAFKA_OBJ     := $(KAFKA_SRC:lib/kafka/%.c=$(O)/lib/kafka/%.o)
KAFKA_STATIC  := $(O)/libfinevent-kafka.a
KAFKA_SONAME  := libfinevent-kafka.so.$(SOVERSION)
KAFKA_SHARED  := $(O)/libfinevent-kafka.so.$(VERSION)
KAFKA_TEST    := $(O)/test/test_kafka
KAFKA_LINK     = $(KAFKA_STATIC) $(STATIC) $(PKG_LIBS) $(KAFKA_LIBS)
KAFKA_TIMEOUT ?= 300
.PHONY: kafka test-kafka run-kafka fuzz-kafka bench-kafka install-kafka

$(O)/lib/kafka/%.o: lib/kafka/%.c lib/kafka/*.h $(HEADERS) $(BUILD)/.deps-lib
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(KAFKA_CFLAGS) -fPIC -c $< -o $@

$(KAFKA_STATIC): $(KAFKA_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(KAFKA_SHARED): $(KAFKA_OBJ) $(SHARED)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(KAFKA_SONAME) -o $@ $(KAFKA_OBJ) \
	  -L$(O) -lfinevent $(KAFKA_LIBS)
	ln -sf $(notdir $@) $(O)/$(KAFKA_SONAME)
	ln -sf $(KAFKA_SONAME) $(O)/libfinevent-kafka.so

kafka: $(KAFKA_STATIC) $(KAFKA_SHARED) $(O)/examples/kafka_partitions

$(KAFKA_TEST): test/test_kafka.c test/*.h $(KAFKA_STATIC) $(STATIC) $(BUILD)/.deps-test
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) $(KAFKA_CFLAGS) -Itest $< -o $@ $(KAFKA_LINK) $(TEST_LIBS)

$(O)/examples/kafka_partitions: examples/kafka/kafka_partitions.c $(KAFKA_STATIC) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(KAFKA_CFLAGS) $< -o $@ $(KAFKA_LINK)

# The NULL table (test/test_api_null.c) covers kafka.h when librdkafka is
# present; without it the table leaves kafka.h out.
ifeq ($(HAVE_KAFKA),1)
$(O)/test/test_api_null: $(KAFKA_STATIC)
$(O)/test/test_api_null: TEST_DEFS += -DFE_HAVE_KAFKA $(KAFKA_CFLAGS)
$(O)/test/test_api_null: TEST_EXTRA += $(KAFKA_STATIC) $(KAFKA_LIBS)
endif

# The suite and the example, or a SKIPPED line without librdkafka.
run-kafka:
	@if [ "$(HAVE_KAFKA)" != 1 ]; then \
	  echo "SKIPPED: libfinevent-kafka suite (librdkafka not installed: make deps)"; \
	else $(MAKE) --no-print-directory $(KAFKA_TEST) $(O)/examples/kafka_partitions $(KAFKA_SHARED) && \
	  echo "== $(KAFKA_TEST)" && timeout $(KAFKA_TIMEOUT) $(KAFKA_TEST) && \
	  timeout 120 $(O)/examples/kafka_partitions >/dev/null && \
	  echo "run-kafka: suite and example passed ($(FLAVOUR))"; fi

test-kafka: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=release run-kafka

# The kafka_source_sink scenario: a mock cluster on loopback, not a
# production figure.
bench-kafka:
	@$(MAKE) --no-print-directory FLAVOUR=release $(BUILD)/release/bench/kafka_bench
	$(BUILD)/release/bench/kafka_bench $(BENCH_ARGS)
$(BUILD)/release/bench/kafka_bench: bench/kafka/kafka_bench.c $(BUILD)/release/libfinevent-kafka.a $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(KAFKA_CFLAGS) $< -o $@ $(KAFKA_LINK)

# ----------------------------------------------------------------- examples
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(O)/examples/%)

$(O)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(EXAMPLE_CFLAGS) $< -o $@ $(STATIC) $(PKG_LIBS) $(EXAMPLE_LIBS)

# order_flow serves its metrics over HTTP with libmicrohttpd (Debian).
EXAMPLE_DEPS := libmicrohttpd:libmicrohttpd-dev
$(BUILD)/.deps-examples: $(BUILD)/.deps-lib
	$(call need_packages,$(EXAMPLE_DEPS))
	@mkdir -p $(@D) && touch $@
# Its compliance stage is the built-in kit, its rules loaded from
# examples/order_flow_compliance.ini by the companion loader (libinih).
$(O)/examples/order_flow: $(BUILD)/.deps-examples $(CONF_STATIC) examples/order_flow_compliance.ini
$(O)/examples/order_flow: EXAMPLE_CFLAGS = $(shell pkg-config --cflags libmicrohttpd) \
  -DORDER_FLOW_COMPLIANCE='"$(abspath examples/order_flow_compliance.ini)"'
$(O)/examples/order_flow: EXAMPLE_LIBS = $(CONF_STATIC) $(STATIC) $(PKG_LIBS) $(CONF_LIBS) \
  $(shell pkg-config --libs libmicrohttpd)

examples: $(EXAMPLE_BIN)

# Every example is a program that checks its own results: run them all.
run-examples: $(EXAMPLE_BIN)
	@for e in $(EXAMPLE_BIN); do $$e >$$e.out 2>&1 || { tail -n 30 $$e.out; echo "FAILED: $$e (output in $$e.out)"; exit 1; }; done; \
	echo "run-examples: every example ran and checked its results"

# The main job: a broker's day of order flow (examples/order_flow.c).
# DEMO_ARGS=... passes options (order_flow --help).
DEMO_ARGS ?=
demo run: $(O)/examples/order_flow
	$(O)/examples/order_flow $(DEMO_ARGS)

# -------------------------------------------------------------- FIX gateway
# examples/fix_gateway: C++14 on QuickFIX (Debian's 1.15.1 headers do not
# compile as C++17, and need -Wno-deprecated for their throw() lists).  The
# library headers are not -Wshadow clean as C++ (fe_idem_claim() the
# function hides struct fe_idem_claim's constructor), hence no -Wshadow.
# Built only when g++ and QuickFIX are there; `make test` says SKIPPED
# otherwise.  The mapping (fix_map.c) and the outbox are C11.
FIX_DIR      := examples/fix_gateway
HAVE_FIX     = $(shell command -v $(CXX) >/dev/null 2>&1 && pkg-config --exists quickfix 2>/dev/null && echo 1)
FIX_CXXFLAGS = -std=c++14 -Wall -Wextra -Werror -Wno-deprecated -pthread -Iinclude \
               $(CFLAGS) $(SAN) $(shell pkg-config --cflags quickfix)
FIX_LIBS     = $(shell pkg-config --libs quickfix) $(PKG_LIBS)
FIX_COBJ     := $(O)/fix/fix_map.o $(O)/fix/fix_outbox.o
FIX_GATEWAY  := $(O)/examples/fix_gateway
FIX_TEST     := $(O)/test/test_fix_gateway
FIX_BENCH    := $(O)/bench/fix_roundtrip
FIX_HDRS     := $(wildcard $(FIX_DIR)/*.h)

# The C parts' cmocka suites (test/test_fix_map.c, test_fix_outbox.c: plain
# C, every flavour) compile the example's source in with them.
$(O)/test/test_fix_map: $(FIX_DIR)/fix_map.c $(FIX_DIR)/fix_map.h
$(O)/test/test_fix_map: TEST_DEFS = -I$(FIX_DIR) $(FIX_DIR)/fix_map.c
$(O)/test/test_fix_outbox: $(FIX_DIR)/fix_outbox.c $(FIX_DIR)/fix_outbox.h
$(O)/test/test_fix_outbox: TEST_DEFS = -I$(FIX_DIR) $(FIX_DIR)/fix_outbox.c

$(O)/fix/%.o: $(FIX_DIR)/%.c $(FIX_HDRS) $(HEADERS) $(BUILD)/.deps-lib
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(FIX_GATEWAY): $(FIX_DIR)/gateway.cc $(FIX_COBJ) $(FIX_HDRS) $(STATIC)
	@mkdir -p $(@D)
	$(CXX) $(FIX_CXXFLAGS) $< -o $@ $(FIX_COBJ) $(STATIC) $(FIX_LIBS)

$(FIX_TEST): test/test_fix_gateway.cc $(FIX_HDRS) $(FIX_GATEWAY)
	@mkdir -p $(@D)
	$(CXX) $(FIX_CXXFLAGS) $(TEST_CFLAGS) -DFGW_BIN='"$(abspath $(FIX_GATEWAY))"' \
	  -DFGW_CFG='"$(abspath $(FIX_DIR)/gateway.cfg)"' $< -o $@ $(FIX_LIBS) $(TEST_LIBS)

$(FIX_BENCH): bench/fix_roundtrip.cc $(FIX_HDRS) $(FIX_GATEWAY)
	@mkdir -p $(@D)
	$(CXX) $(FIX_CXXFLAGS) -DFGW_BIN='"$(abspath $(FIX_GATEWAY))"' \
	  -DFGW_CFG='"$(abspath $(FIX_DIR)/gateway.cfg)"' $< -o $@ $(FIX_LIBS)

fix-gateway:
	@if [ "$(HAVE_FIX)" = 1 ]; then $(MAKE) --no-print-directory $(FIX_GATEWAY); \
	else echo "fix-gateway: SKIPPED (needs $(CXX) and libquickfix-dev)"; fi

test-fix:
	@if [ "$(HAVE_FIX)" = 1 ]; then \
	  $(MAKE) --no-print-directory $(FIX_TEST) && echo "== $(FIX_TEST)" && \
	  timeout $(TEST_TIMEOUT) $(FIX_TEST) || { echo "FAILED: $(FIX_TEST)"; exit 1; }; \
	else echo "test-fix: SKIPPED (needs $(CXX) and libquickfix-dev: FIX gateway not built)"; fi

bench-fix:
	@$(MAKE) --no-print-directory FLAVOUR=release $(BUILD)/release/bench/fix_roundtrip
	$(BUILD)/release/bench/fix_roundtrip $(BENCH_ARGS)

# ------------------------------------------------------------------ install
install: $(STATIC) $(SHARED) $(TOOL_BIN) $(CONF_STATIC) $(CONF_SHARED)
	install -d $(DESTDIR)$(INCDIR)/finevent $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR)
	install -m 644 include/finevent/*.h $(DESTDIR)$(INCDIR)/finevent/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(TOOL_BIN) $(DESTDIR)$(BINDIR)/
	ln -sf libfinevent.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libfinevent.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/libfinevent.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent.pc
	# The static link: the same file naming the archive, its private
	# requirements made public (they must be on the link line).
	sed -e 's|^Name: libfinevent|Name: libfinevent-static|' \
	    -e 's|^Libs: -L$${libdir} -lfinevent|Libs: $${libdir}/libfinevent.a|' \
	    -e 's|^Requires.private:|Requires:|' \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent.pc > $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent-static.pc
	install -m 644 $(CONF_STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(CONF_SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libfinevent-compliance-conf.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(CONF_SONAME)
	ln -sf $(CONF_SONAME) $(DESTDIR)$(LIBDIR)/libfinevent-compliance-conf.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/libfinevent-compliance-conf.pc.in \
	    > $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent-compliance-conf.pc
	@if [ "$(HAVE_KAFKA)" = 1 ]; then $(MAKE) --no-print-directory install-kafka; fi

# The Kafka companion, when librdkafka is present (make install runs it).
install-kafka: $(KAFKA_STATIC) $(KAFKA_SHARED)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 $(KAFKA_STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(KAFKA_SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libfinevent-kafka.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(KAFKA_SONAME)
	ln -sf $(KAFKA_SONAME) $(DESTDIR)$(LIBDIR)/libfinevent-kafka.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/libfinevent-kafka.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent-kafka.pc

uninstall:
	rm -rf $(DESTDIR)$(INCDIR)/finevent
	rm -f $(DESTDIR)$(LIBDIR)/libfinevent.a $(DESTDIR)$(LIBDIR)/libfinevent.so* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent.pc $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent-static.pc \
	      $(DESTDIR)$(LIBDIR)/libfinevent-compliance-conf.* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent-compliance-conf.pc
	rm -f $(TOOL_SRC:tools/%.c=$(DESTDIR)$(BINDIR)/%)
	rm -f $(DESTDIR)$(LIBDIR)/libfinevent-kafka.a $(DESTDIR)$(LIBDIR)/libfinevent-kafka.so* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent-kafka.pc

clean:
	rm -rf $(BUILD)
