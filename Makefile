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
LIB_DEPS  := ck:libck-dev libxxhash:libxxhash-dev
TEST_DEPS := cmocka:libcmocka-dev quickfix:libquickfix-dev

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
PKG_CFLAGS  = $(shell pkg-config --cflags ck libxxhash)
PKG_LIBS    = $(shell pkg-config --libs ck libxxhash)
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

.DEFAULT_GOAL := all
.PHONY: all help deps lib tools test test-asan test-tsan test-all check-symbols check-install \
        bench bench-bin demo examples run-examples install uninstall clean \
        fix-gateway test-fix bench-fix fuzz-fix-map

help:
	@echo "make              build the library (static + shared) and the tools in $(BUILD)/release"
	@echo "make tools        build the tools: $(BUILD)/release/bin/fe-journal (journal dump/verify/stats)"
	@echo "make deps         install the Debian packages it needs (apt-get, sudo if not root)"
	@echo "make demo         build and run the bus demo (examples/bus_demo.c)"
	@echo "make test         build and run every cmocka suite and every example"
	@echo "make test-asan    the suites under AddressSanitizer + UBSan"
	@echo "make test-tsan    the suites under ThreadSanitizer"
	@echo "make test-all     all three, as CI does"
	@echo "make bench        build optimised and run every benchmark (BENCH_ARGS=... for options)"
	@echo "make fix-gateway  build the FIX 4.4 gateway example (needs g++ and libquickfix-dev)"
	@echo "make test-fix     its test: a QuickFIX initiator against the running gateway"
	@echo "make bench-fix    FIX round trip (initiator send -> ack) for 1 and 4 sessions"
	@echo "make fuzz-fix-map libFuzzer on the FIX->fe_order mapping (FUZZ_SECONDS=600)"
	@echo "make examples     build the examples"
	@echo "make install      install headers, libraries, libfinevent.pc, tools (PREFIX, DESTDIR)"
	@echo "make clean        remove $(BUILD)/"

deps: $(BUILD)/.deps-test

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
	@echo 'int main(void) { return run(); }' >> $(STAGE)/example.c
	@pc="env PKG_CONFIG_SYSROOT_DIR=$(STAGE) PKG_CONFIG_PATH=$(STAGE)/usr/lib/pkgconfig pkg-config"; \
	$(CC) -std=c11 -Wall -Werror $(STAGE)/example.c -o $(STAGE)/example-shared $$($$pc --cflags --libs libfinevent) && \
	LD_LIBRARY_PATH=$(STAGE)/usr/lib $(STAGE)/example-shared && \
	$(CC) -std=c11 -Wall -Werror $(STAGE)/example.c -o $(STAGE)/example-static $$($$pc --cflags libfinevent) \
	  $(STAGE)/usr/lib/libfinevent.a $$($$pc --libs --static libfinevent | sed 's/-lfinevent//') && \
	$(STAGE)/example-static && \
	echo "check-install: README example builds and runs against the installed library (shared and static)"

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

# Each suite runs in its own process with a timeout; all run even if one
# fails, and the target fails if any did.
run-tests: $(TEST_BIN) $(TOOL_BIN)
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; \
	  timeout $(TEST_TIMEOUT) $$t || { echo "FAILED: $$t"; fail=1; }; done; \
	[ $$fail = 0 ] || { echo "some $(FLAVOUR) suites failed"; exit 1; }

test: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=release run-tests run-examples check-symbols check-install
	@$(MAKE) --no-print-directory FLAVOUR=release test-fix
test-asan: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=asan run-tests \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
	@$(MAKE) --no-print-directory FLAVOUR=asan test-fix \
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

# ----------------------------------------------------------------- examples
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(O)/examples/%)

$(O)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(STATIC) $(PKG_LIBS)

examples: $(EXAMPLE_BIN)

# Every example is a program that checks its own results: run them all.
run-examples: $(EXAMPLE_BIN)
	@for e in $(EXAMPLE_BIN); do $$e >/dev/null || { echo "FAILED: $$e"; exit 1; }; done; \
	echo "run-examples: every example ran and checked its results"

demo: $(O)/examples/bus_demo
	$(O)/examples/bus_demo

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

# libFuzzer (clang) over fix_map.c: raw bytes -> fields -> fe_order_t.
FUZZ_SECONDS ?= 600
FUZZ_BIN     := $(BUILD)/fuzz/fuzz_fix_map
$(FUZZ_BIN): test/fuzz/fuzz_fix_map.c $(FIX_DIR)/fix_map.c $(FIX_DIR)/fix_map.h $(HEADERS)
	@mkdir -p $(@D)/fix_map_corpus
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -Iinclude -I$(FIX_DIR) $< $(FIX_DIR)/fix_map.c -o $@
fuzz-fix-map: $(FUZZ_BIN)
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=512 -print_final_stats=1 \
	  $(BUILD)/fuzz/fix_map_corpus test/fuzz/corpus

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
