# tenantcached: build, test, install.
#
#   make            build ./tenantcached
#   make check      install missing dependencies, build, run unit and integration tests
#   make asan       the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#                   (LeakSanitizer on, for the daemon started by the integration tests too)
#   make tsan       the same tests under ThreadSanitizer
#   make valgrind   the unit tests, and the daemon of the integration tests, under valgrind
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (60); make fuzz-smoke: 10 s each
#   make run        build and run the daemon against a private redis-server
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR   ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR    ?= $(PREFIX)/share/man
DOCDIR    ?= $(PREFIX)/share/doc/tenantcached
DATADIR   ?= $(PREFIX)/share/tenantcached

CC        ?= cc
BUILD     ?= build
VERSION   := 0.2.0
PKGS      := hiredis libevent libevent_pthreads jansson yaml-0.1

OPTFLAGS  ?= -O2 -g
WARNINGS  := -Wall -Wextra -Werror -Wshadow -Wconversion -Wformat=2 \
             -Wmissing-prototypes -Wstrict-prototypes -Wwrite-strings -Wno-sign-conversion
CPPFLAGS  += -Iinclude -D_GNU_SOURCE -DTENANTCACHED_VERSION='"$(VERSION)"' -MMD -MP
CFLAGS    += -std=c11 $(OPTFLAGS) $(WARNINGS) -pthread
DEP_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

SRCS      := $(sort $(wildcard src/*.c))
OBJS      := $(SRCS:src/%.c=$(BUILD)/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
ITEST_SRCS := $(sort $(wildcard tests/integration/test_*.c))
ITEST_BINS := $(ITEST_SRCS:tests/integration/%.c=$(BUILD)/itests/%)
HARNESS_OBJ := $(BUILD)/harness.o

.PHONY: all deps check unit integration asan tsan valgrind run bench install uninstall clean \
	fuzz fuzz-build fuzz-smoke check-build

all: tenantcached

# Renamed into place, so a running ./tenantcached ("text file busy") is no obstacle.
tenantcached: $(BUILD)/tenantcached
	cp $< $@.new && mv -f $@.new $@

$(BUILD)/tenantcached: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEP_CFLAGS) -c -o $@ $<

$(BUILD)/harness.o: tests/harness.c tests/harness.h | $(BUILD)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(DEP_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

# The harness (redis-server on a private socket, cleaned up however a test
# ends) serves the unit suites that need a real Redis too.
$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(HARNESS_OBJ) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(DEP_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(LIB_OBJS) $(HARNESS_OBJ) $(DEP_LIBS) $(CHECK_LIBS)

$(BUILD)/itests/%: tests/integration/%.c $(LIB_OBJS) $(HARNESS_OBJ) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(DEP_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(LIB_OBJS) $(HARNESS_OBJ) $(DEP_LIBS) $(CHECK_LIBS)

$(BUILD):
	@mkdir -p $(BUILD)

deps:
	@scripts/install-deps.sh

# The unit suites run in-process; the integration suites start redis-server and
# the daemon binary themselves, on private sockets under a temporary directory.
# Then the client compatibility suite (tests/clients/run.sh): the daemon driven
# by redis-py, phpredis, redis-rb, node-redis 4 and current, and ioredis, with
# their default options; TENANTCACHED_SKIP_CLIENTS=1 skips it (loudly).
check: deps
	@$(MAKE) --no-print-directory all $(UNIT_BINS) $(ITEST_BINS)
	@scripts/run-tests.sh $(BUILD) $(UNIT_BINS) $(ITEST_BINS)
	@TENANTCACHED_BIN=$(BUILD)/tenantcached tests/clients/run.sh

# Sanitizer runs: the unit suites, and the integration suites with the daemon
# binary of the same build dir (TENANTCACHED_BIN). A finding makes a process
# exit 86 (LeakSanitizer included, at exit); with TENANTCACHED_SANITIZER set,
# the harness fails a test whose daemon does not exit 0 when stopped.
SAN_EXITCODE := 86

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPTFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" check-build
	@ASAN_OPTIONS=detect_leaks=1:exitcode=$(SAN_EXITCODE):abort_on_error=0:detect_stack_use_after_return=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=$(SAN_EXITCODE) \
		TENANTCACHED_SANITIZER=address TENANTCACHED_BIN=build-asan/tenantcached scripts/run-tests.sh build-asan \
		$(UNIT_BINS:$(BUILD)/%=build-asan/%) $(ITEST_BINS:$(BUILD)/%=build-asan/%)

# ThreadSanitizer.
tsan: deps
	@$(MAKE) --no-print-directory BUILD=build-tsan OPTFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" check-build
	@TSAN_OPTIONS=halt_on_error=1:exitcode=$(SAN_EXITCODE):second_deadlock_stack=1 CK_DEFAULT_TIMEOUT=300 \
		TENANTCACHED_SANITIZER=thread TENANTCACHED_BIN=build-tsan/tenantcached scripts/run-tests.sh build-tsan \
		$(UNIT_BINS:$(BUILD)/%=build-tsan/%) $(ITEST_BINS:$(BUILD)/%=build-tsan/%)

# valgrind (memcheck): the unit suites in one process each (CK_FORK=no), then
# the integration suites with the daemon under valgrind through
# scripts/valgrind-daemon.sh (exit 99 on an error or a definite leak).
VALGRIND_UNIT := valgrind --quiet --leak-check=full --error-exitcode=1 --num-callers=30

valgrind: deps
	@$(MAKE) --no-print-directory check-build
	@CK_FORK=no TEST_WRAPPER="$(VALGRIND_UNIT)" scripts/run-tests.sh $(BUILD) $(UNIT_BINS)
	@CK_DEFAULT_TIMEOUT=300 TENANTCACHED_SANITIZER=valgrind TENANTCACHED_BIN=$(CURDIR)/scripts/valgrind-daemon.sh \
		VALGRIND_DAEMON_BIN=$(abspath $(BUILD)/tenantcached) scripts/run-tests.sh $(BUILD) $(ITEST_BINS)

check-build: $(BUILD)/tenantcached $(UNIT_BINS) $(ITEST_BINS)

# libFuzzer targets (clang), one per parser: the RESP request parser, the
# invalidation message validator and the YAML config loader. `make fuzz` runs
# each for FUZZ_SECONDS on a working copy of its seed corpus under build-fuzz/
# (new inputs never go into tests/fuzz/corpus); a crash leaves its input in
# build-fuzz/artifacts/ and fails the target: add that input to the corpus
# once the bug is fixed. `make fuzz-smoke` is the short run for CI.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_TARGETS := protocol message config snapshot
FUZZ_CFLAGS  := -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all $(WARNINGS) -Iinclude -D_GNU_SOURCE
FUZZ_SRCS_protocol := src/protocol.c src/util.c src/log.c
FUZZ_SRCS_message  := src/message.c src/jscan.c src/names.c src/value.c src/perm.c src/config.c src/yaml_reader.c \
                      src/util.c src/log.c
FUZZ_SRCS_config   := src/config.c src/yaml_reader.c src/names.c src/util.c src/log.c
FUZZ_SRCS_snapshot := src/snapshot.c src/cache.c src/slab.c src/message.c src/jscan.c src/names.c src/value.c src/perm.c \
                      src/config.c src/yaml_reader.c src/stats.c src/util.c src/log.c
FUZZ_LIBS_protocol :=
FUZZ_LIBS_message   = $(shell pkg-config --libs jansson yaml-0.1 2>/dev/null) -lm
FUZZ_LIBS_config    = $(shell pkg-config --libs yaml-0.1 2>/dev/null) -lm
FUZZ_LIBS_snapshot  = $(shell pkg-config --libs libevent jansson yaml-0.1 2>/dev/null) -lm -pthread
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/fuzz_protocol: tests/fuzz/fuzz_protocol.c $(FUZZ_SRCS_protocol) $(wildcard include/*.h)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS_protocol) $(FUZZ_LIBS_protocol)

$(FUZZ_BUILD)/fuzz_message: tests/fuzz/fuzz_message.c $(FUZZ_SRCS_message) $(wildcard include/*.h)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEP_CFLAGS) -o $@ $< $(FUZZ_SRCS_message) $(FUZZ_LIBS_message)

$(FUZZ_BUILD)/fuzz_config: tests/fuzz/fuzz_config.c $(FUZZ_SRCS_config) $(wildcard include/*.h)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEP_CFLAGS) -o $@ $< $(FUZZ_SRCS_config) $(FUZZ_LIBS_config)

$(FUZZ_BUILD)/fuzz_snapshot: tests/fuzz/fuzz_snapshot.c $(FUZZ_SRCS_snapshot) $(wildcard include/*.h)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEP_CFLAGS) -o $@ $< $(FUZZ_SRCS_snapshot) $(FUZZ_LIBS_snapshot)

# stdin from /dev/null: a config naming password_file: /dev/stdin must not block.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts/$$t; \
		cp -R tests/fuzz/corpus/$$t/. $(FUZZ_BUILD)/corpus/$$t/; \
		dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
		if ! $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 $$dict -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ \
			$(FUZZ_BUILD)/corpus/$$t </dev/null >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
			tail -n 60 $(FUZZ_BUILD)/fuzz_$$t.log; \
			echo "fuzz_$$t FAILED: input in $(FUZZ_BUILD)/artifacts/$$t/, log $(FUZZ_BUILD)/fuzz_$$t.log"; \
			exit 1; \
		fi; \
		grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' $(FUZZ_BUILD)/fuzz_$$t.log | tail -n 1; \
	done

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

run: deps all
	@scripts/run-local.sh

bench: deps all
	@scripts/bench.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/tenantcached $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)
	install -m 0755 tenantcached $(DESTDIR)$(BINDIR)/tenantcached
	install -m 0644 scripts/tenantcached.lua $(DESTDIR)$(DATADIR)/tenantcached.lua
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/tenantcached/tenantcached.yaml ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/tenantcached/tenantcached.yaml"; \
	else install -m 0644 conf/tenantcached.yaml $(DESTDIR)$(SYSCONFDIR)/tenantcached/tenantcached.yaml; fi
	@for unit in systemd/*.service; do \
		sed 's|@BINDIR@|$(BINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' $$unit > $(DESTDIR)$(UNITDIR)/$$(basename $$unit); \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$unit); done
	@if [ -f systemd/tenantcached.sysusers ]; then install -m 0644 systemd/tenantcached.sysusers $(DESTDIR)$(SYSUSERSDIR)/tenantcached.conf; fi
	@if [ -f tenantcached.8 ]; then install -m 0644 tenantcached.8 $(DESTDIR)$(MANDIR)/man8/tenantcached.8; fi
	install -m 0644 docs/reference.md $(DESTDIR)$(DOCDIR)/reference.md

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tenantcached $(DESTDIR)$(UNITDIR)/tenantcached.service \
		$(DESTDIR)$(UNITDIR)/tenantcached@.service $(DESTDIR)$(SYSUSERSDIR)/tenantcached.conf \
		$(DESTDIR)$(MANDIR)/man8/tenantcached.8 $(DESTDIR)$(DOCDIR)/reference.md \
		$(DESTDIR)$(DATADIR)/tenantcached.lua
	-rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR) 2>/dev/null

clean:
	rm -rf build build-asan build-tsan build-fuzz tenantcached

-include $(OBJS:.o=.d)
