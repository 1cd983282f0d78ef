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
TEST_DEPS := cmocka:libcmocka-dev
# Test-only commands, as command:debian-package (promtool checks the
# Prometheus text format in test_metrics).
TEST_CMDS := promtool:prometheus

# Flavours of the build: release, asan (AddressSanitizer + UBSan), tsan.
FLAVOUR ?= release
O       := $(BUILD)/$(FLAVOUR)

WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla
CFLAGS     ?= -O2 -g
BASE_FLAGS := -std=c11 $(WARN) -fvisibility=hidden -pthread -Iinclude -Ilib
SAN_asan   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_tsan   := -fsanitize=thread
SAN_release:=
SAN        := $(SAN_$(FLAVOUR))
# Expanded when a recipe runs, i.e. after the deps check has installed them.
PKG_CFLAGS  = $(shell pkg-config --cflags ck libxxhash libsodium)
PKG_LIBS    = $(shell pkg-config --libs ck libxxhash libsodium)
TEST_CFLAGS = $(shell pkg-config --cflags cmocka)
TEST_LIBS   = $(shell pkg-config --libs cmocka)
ALL_CFLAGS  = $(BASE_FLAGS) $(CFLAGS) $(SAN) $(PKG_CFLAGS)

# Installs missing Debian packages (through sudo when not root), or stops
# naming them.  $(1): list of pc-module:debian-package.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
define need_packages
	@missing=""; command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"; \
	for p in $(1); do pkg-config --exists "$${p%%:*}" 2>/dev/null || missing="$$missing $${p#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "libfinevent: installing missing Debian packages:$$missing"; \
	  { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } >/dev/null || \
	  { echo "libfinevent: could not install$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; }; \
	fi
endef

# Commands the tests run, as command:debian-package.
TEST_COMMANDS := $(TEST_CMDS) curl:curl
define need_commands
	@missing=""; for c in $(1); do command -v "$${c%%:*}" >/dev/null 2>&1 || missing="$$missing $${c#*:}"; done; \
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
        bench bench-bin bench-order-flow demo run examples run-examples install uninstall clean fuzz-recon

help:
	@echo "make              build the library (static + shared) and the tools in $(BUILD)/release"
	@echo "make tools        build the tools: $(BUILD)/release/bin/fe-journal (journal dump/verify/stats)"
	@echo "make deps         install the Debian packages it needs (apt-get, sudo if not root)"
	@echo "make demo         build and run the order-flow application (examples/order_flow.c); also: make run"
	@echo "make test         build and run every cmocka suite and every example"
	@echo "make test-asan    the suites under AddressSanitizer + UBSan"
	@echo "make test-tsan    the suites under ThreadSanitizer"
	@echo "make test-all     all three, as CI does"
	@echo "make bench        build optimised and run every benchmark (BENCH_ARGS=... for options)"
	@echo "make bench-order-flow  the order_flow application as a benchmark (BENCH_RUNS=5)"
	@echo "make fuzz-recon   fuzz the statement parser with libFuzzer (FUZZ_SECONDS=60)"
	@echo "make examples     build the examples"
	@echo "make install      install headers, libraries, libfinevent.pc, tools (PREFIX, DESTDIR)"
	@echo "make clean        remove $(BUILD)/"

deps: $(BUILD)/.deps-test $(BUILD)/.deps-examples $(BUILD)/.deps-commands

$(BUILD)/.deps-lib:
	$(call need_packages,$(LIB_DEPS))
	@mkdir -p $(@D) && touch $@

$(BUILD)/.deps-test: $(BUILD)/.deps-lib
	$(call need_packages,$(TEST_DEPS))
	@mkdir -p $(@D) && touch $@

# ------------------------------------------------------------------ library
LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:lib/%.c=$(O)/lib/%.o)
HEADERS  := $(wildcard include/finevent/*.h) $(wildcard lib/*.h)
STATIC   := $(O)/libfinevent.a
SONAME   := libfinevent.so.$(SOVERSION)
SHARED   := $(O)/libfinevent.so.$(VERSION)

all: lib tools
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
check-symbols: $(SHARED)
	@bad=$$(nm -D --defined-only $(SHARED) | awk '{print $$3}' | grep -v '^fe_' || true); \
	if [ -n "$$bad" ]; then echo "exported symbols without fe_ prefix:"; echo "$$bad"; exit 1; fi; \
	echo "check-symbols: only fe_ symbols exported"

# Installs into a scratch prefix and builds the README's example against it
# through pkg-config, with the shared and the static library.
STAGE := $(abspath $(BUILD))/stage
check-install:
	@rm -rf $(STAGE)
	@$(MAKE) --no-print-directory FLAVOUR=release install PREFIX=/usr DESTDIR=$(STAGE) >/dev/null
	@sed -n '/^## A custom stage/,/^```$$/p' README.md | sed '1,/^```c/d;/^```$$/d' > $(STAGE)/example.c
	@cmp -s $(STAGE)/example.c examples/custom_stage.c || \
	  { echo "check-install: README's custom stage differs from examples/custom_stage.c"; exit 1; }
	@pc="env PKG_CONFIG_SYSROOT_DIR=$(STAGE) PKG_CONFIG_PATH=$(STAGE)/usr/lib/pkgconfig pkg-config"; \
	$(CC) -std=c11 -Wall -Werror $(STAGE)/example.c -o $(STAGE)/example-shared $$($$pc --cflags --libs libfinevent) && \
	LD_LIBRARY_PATH=$(STAGE)/usr/lib $(STAGE)/example-shared && \
	$(CC) -std=c11 -Wall -Werror $(STAGE)/example.c -o $(STAGE)/example-static $$($$pc --cflags libfinevent) \
	  $(STAGE)/usr/lib/libfinevent.a $$($$pc --libs --static libfinevent | sed 's/-lfinevent//') && \
	$(STAGE)/example-static && \
	echo "check-install: README example builds and runs against the installed library (shared and static)"
	@pc="env PKG_CONFIG_SYSROOT_DIR=$(STAGE) PKG_CONFIG_PATH=$(STAGE)/usr/lib/pkgconfig pkg-config"; \
	for e in $(EXAMPLE_SRC); do n=$$(basename $$e .c); extra=""; \
	  [ $$n = order_flow ] && extra="$$(pkg-config --cflags --libs libmicrohttpd libsodium)"; \
	  $(CC) -std=c11 -Wall -Werror -pthread $$e -o $(STAGE)/$$n $$($$pc --cflags --libs libfinevent) $$extra || exit 1; \
	done; echo "check-install: every example builds against the installed library via pkg-config"

# -------------------------------------------------------------------- tools
# Command-line tools, one per lib/tools/*.c (kept out of lib/*.c so they
# are not globbed into the library), linked against the static library.
TOOL_SRC := $(wildcard lib/tools/*.c)
TOOL_BIN := $(TOOL_SRC:lib/tools/%.c=$(O)/bin/%)

$(O)/bin/%: lib/tools/%.c $(HEADERS) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(STATIC) $(PKG_LIBS)

tools: $(TOOL_BIN)

# -------------------------------------------------------------------- tests
TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(TEST_SRC:test/%.c=$(O)/test/%)
TEST_TIMEOUT ?= 600

$(O)/test/%: test/%.c test/*.h $(STATIC) $(BUILD)/.deps-test
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) $(TEST_DEFS) -Itest $< -o $@ $(STATIC) $(PKG_LIBS) $(TEST_LIBS)

# The journal and durability suites run the fe-journal tool of their own
# flavour.
$(O)/test/test_journal $(O)/test/test_durable: $(O)/bin/fe-journal
$(O)/test/test_journal $(O)/test/test_durable: TEST_DEFS = -DFE_JOURNAL_TOOL='"$(abspath $(O)/bin/fe-journal)"'

$(O)/test/test_audit: $(O)/bin/fe-audit
$(O)/test/test_audit: TEST_DEFS = -DFE_AUDIT_TOOL='"$(abspath $(O)/bin/fe-audit)"'

# The order_flow suite runs the example of its own flavour (and fe-audit
# on its trail), and scrapes its metrics with curl and checks them with
# promtool.
$(O)/test/test_order_flow: $(O)/examples/order_flow $(O)/bin/fe-audit $(BUILD)/.deps-commands
$(O)/test/test_order_flow: TEST_DEFS = -DFE_ORDER_FLOW='"$(abspath $(O)/examples/order_flow)"' \
  -DFE_AUDIT_TOOL='"$(abspath $(O)/bin/fe-audit)"'

# Each suite runs in its own process with a timeout; all run even if one
# fails, and the target fails if any did.
run-tests: $(TEST_BIN) $(TOOL_BIN)
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; \
	  timeout $(TEST_TIMEOUT) $$t || { echo "FAILED: $$t"; fail=1; }; done; \
	[ $$fail = 0 ] || { echo "some $(FLAVOUR) suites failed"; exit 1; }

test: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=release run-tests run-examples check-symbols check-install
test-asan: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=asan run-tests \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
test-tsan: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=tsan run-tests TSAN_OPTIONS=halt_on_error=1
test-all: test test-asan test-tsan

# -------------------------------------------------------------------- bench
# Always the optimised release flavour.  --wrap lets fe-bench count the
# library's heap allocations while a bus runs.
BENCH_BIN  := $(BUILD)/release/bench/fe_bench
BENCH_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc
BENCH_ARGS ?=

$(BUILD)/release/bench/%: bench/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(BENCH_WRAP) $(STATIC) $(PKG_LIBS)

bench-bin: $(BENCH_BIN)

bench:
	@$(MAKE) --no-print-directory FLAVOUR=release bench-bin
	@echo "fe-bench on $$(nproc) cores, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $$(date -u +%F)"
	$(BENCH_BIN) $(BENCH_ARGS)

# --------------------------------------------------------------------- fuzz
# libFuzzer harnesses (clang): test/fuzz/fuzz_<name>.c with seeds in
# test/fuzz/corpus/<name>/.  `make fuzz-recon FUZZ_SECONDS=600`; new inputs
# go to $(BUILD)/fuzz/corpus-<name>, the seeds stay as they are.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -std=c11 -g -O1 -Iinclude -Ilib -fsanitize=fuzzer,address,undefined

$(BUILD)/fuzz/fuzz_recon: test/fuzz/fuzz_recon.c lib/recon.c lib/error.c $(HEADERS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) test/fuzz/fuzz_recon.c lib/recon.c lib/error.c -o $@

fuzz-recon: $(BUILD)/fuzz/fuzz_recon
	@mkdir -p $(BUILD)/fuzz/corpus-recon
	$(BUILD)/fuzz/fuzz_recon -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 $(BUILD)/fuzz/corpus-recon test/fuzz/corpus/recon

# The application's pipeline as a bench scenario (bench/order_flow.sh):
# orders/s and end-to-end p50/p99 of examples/order_flow.
BENCH_RUNS ?= 5
bench-order-flow:
	@$(MAKE) --no-print-directory FLAVOUR=release $(BUILD)/release/examples/order_flow
	@echo "order_flow bench on $$(nproc) cores, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $$(date -u '+%F %H:%M UTC')"
	sh bench/order_flow.sh $(BUILD)/release/examples/order_flow $(BENCH_RUNS)

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
$(O)/examples/order_flow: $(BUILD)/.deps-examples
$(O)/examples/order_flow: EXAMPLE_CFLAGS = $(shell pkg-config --cflags libmicrohttpd)
$(O)/examples/order_flow: EXAMPLE_LIBS = $(shell pkg-config --libs libmicrohttpd)

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

# ------------------------------------------------------------------ install
install: $(STATIC) $(SHARED) $(TOOL_BIN)
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

uninstall:
	rm -rf $(DESTDIR)$(INCDIR)/finevent
	rm -f $(DESTDIR)$(LIBDIR)/libfinevent.a $(DESTDIR)$(LIBDIR)/libfinevent.so* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent.pc
	rm -f $(TOOL_SRC:lib/tools/%.c=$(DESTDIR)$(BINDIR)/%)

clean:
	rm -rf $(BUILD)
