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
# make fuzz: clang and its libFuzzer runtime (Debian's default clang).
FUZZ_DEPS := clang libclang-rt-dev llvm
TEST_DEPS := cmocka:libcmocka-dev

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
        run-tests stress run-stress fuzz fuzz-bin fuzz-lib fuzz-seeds \
        bench bench-bin demo examples run-examples install uninstall clean

help:
	@echo "make              build the library (static + shared) and the tools in $(BUILD)/release"
	@echo "make tools        build the tools: $(BUILD)/release/bin/fe-journal (journal dump/verify/stats)"
	@echo "make deps         install the Debian packages it needs (apt-get, sudo if not root)"
	@echo "make demo         build and run the bus demo (examples/bus_demo.c)"
	@echo "make test         build and run every cmocka suite and every example"
	@echo "make test-asan    the suites under AddressSanitizer + UBSan"
	@echo "make test-tsan    the suites under ThreadSanitizer"
	@echo "make test-all     all three, as CI does; ends on one 'N passed, N failed' line per flavour"
	@echo "make fuzz         build the libFuzzer harnesses (test/fuzz/) and run each FUZZ_SECONDS (default 60)"
	@echo "make stress       the long stress suites (test/stress/), release and TSan (STRESS_EVENTS=N)"
	@echo "make bench        build optimised and run every benchmark (BENCH_ARGS=... for options)"
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

# Installs into a scratch, non-standard prefix and builds the README's
# example against it exactly as the README says: shared (run with
# LD_LIBRARY_PATH, and linked with -rpath, run without) and static
# (libfinevent-static.pc; the program must not need libfinevent.so).
STAGE := $(abspath $(BUILD))/stage
check-install:
	@rm -rf $(STAGE)
	@$(MAKE) --no-print-directory FLAVOUR=release install PREFIX=$(STAGE) >/dev/null
	@sed -n '/^## A custom stage/,/^```$$/p' README.md | sed '1,/^```c/d;/^```$$/d' > $(STAGE)/app.c
	@echo 'int main(void) { return run(); }' >> $(STAGE)/app.c
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
# The NULL table checks itself against the public headers.
$(O)/test/test_api_null: TEST_DEFS = -DFE_INCLUDE_DIR='"$(abspath include/finevent)"'

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
test-asan: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory FLAVOUR=asan run-tests \
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
# Libraries a harness needs beyond the library's own (FUZZ_LIBS_<name>).
FUZZ_LIBS     = $(PKG_LIBS) $(FUZZ_LIBS_$(notdir $@))

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
	$(FUZZ_CC) $(FUZZ_FLAGS) $< -o $@ $(FUZZ_LINK) $(FUZZ_O)/libfinevent.a $(FUZZ_LIBS)

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

fuzz: fuzz-bin
	@fail=""; for b in $(FUZZ_BIN); do n=$${b##*/}; run=$(FUZZ_O)/run/$$n; \
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
	# The static link: the same file naming the archive, its private
	# requirements made public (they must be on the link line).
	sed -e 's|^Name: libfinevent|Name: libfinevent-static|' \
	    -e 's|^Libs: -L$${libdir} -lfinevent|Libs: $${libdir}/libfinevent.a|' \
	    -e 's|^Requires.private:|Requires:|' \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent.pc > $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent-static.pc

uninstall:
	rm -rf $(DESTDIR)$(INCDIR)/finevent
	rm -f $(DESTDIR)$(LIBDIR)/libfinevent.a $(DESTDIR)$(LIBDIR)/libfinevent.so* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent.pc $(DESTDIR)$(LIBDIR)/pkgconfig/libfinevent-static.pc
	rm -f $(TOOL_SRC:tools/%.c=$(DESTDIR)$(BINDIR)/%)

clean:
	rm -rf $(BUILD)
