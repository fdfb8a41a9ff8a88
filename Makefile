# tenantcached: build, test, install.
#
#   make            build ./tenantcached
#   make check      install missing dependencies, build, run unit and integration tests
#   make asan       the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make run        build and run the daemon against a private redis-server
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR   ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR    ?= $(PREFIX)/share/man

CC        ?= cc
BUILD     ?= build
VERSION   := 0.1.0
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

.PHONY: all deps check unit integration asan tsan run bench install uninstall clean fuzz

all: tenantcached

tenantcached: $(BUILD)/tenantcached
	cp $< $@

$(BUILD)/tenantcached: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEP_CFLAGS) -c -o $@ $<

$(BUILD)/harness.o: tests/harness.c tests/harness.h | $(BUILD)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(DEP_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(DEP_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(LIB_OBJS) $(DEP_LIBS) $(CHECK_LIBS)

$(BUILD)/itests/%: tests/integration/%.c $(LIB_OBJS) $(HARNESS_OBJ) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(DEP_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(LIB_OBJS) $(HARNESS_OBJ) $(DEP_LIBS) $(CHECK_LIBS)

$(BUILD):
	@mkdir -p $(BUILD)

deps:
	@scripts/install-deps.sh

# The unit suites run in-process; the integration suites start redis-server and
# the daemon binary themselves, on private sockets under a temporary directory.
check: deps
	@$(MAKE) --no-print-directory all $(UNIT_BINS) $(ITEST_BINS)
	@scripts/run-tests.sh $(BUILD) $(UNIT_BINS) $(ITEST_BINS)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPTFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" check-build
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		TENANTCACHED_BIN=build-asan/tenantcached scripts/run-tests.sh build-asan \
		$(UNIT_BINS:$(BUILD)/%=build-asan/%) $(ITEST_BINS:$(BUILD)/%=build-asan/%)

tsan: deps
	@$(MAKE) --no-print-directory BUILD=build-tsan OPTFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" check-build
	@TSAN_OPTIONS=halt_on_error=1 TENANTCACHED_BIN=build-tsan/tenantcached scripts/run-tests.sh build-tsan \
		$(UNIT_BINS:$(BUILD)/%=build-tsan/%) $(ITEST_BINS:$(BUILD)/%=build-tsan/%)

check-build: $(BUILD)/tenantcached $(UNIT_BINS) $(ITEST_BINS)

run: deps all
	@scripts/run-local.sh

bench: deps all
	@scripts/bench.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/tenantcached $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 tenantcached $(DESTDIR)$(BINDIR)/tenantcached
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/tenantcached/tenantcached.yaml ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/tenantcached/tenantcached.yaml"; \
	else install -m 0644 conf/tenantcached.yaml $(DESTDIR)$(SYSCONFDIR)/tenantcached/tenantcached.yaml; fi
	@for unit in systemd/*.service; do \
		sed 's|@BINDIR@|$(BINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' $$unit > $(DESTDIR)$(UNITDIR)/$$(basename $$unit); \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$unit); done
	@if [ -f systemd/tenantcached.sysusers ]; then install -m 0644 systemd/tenantcached.sysusers $(DESTDIR)$(SYSUSERSDIR)/tenantcached.conf; fi
	@if [ -f tenantcached.8 ]; then install -m 0644 tenantcached.8 $(DESTDIR)$(MANDIR)/man8/tenantcached.8; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tenantcached $(DESTDIR)$(UNITDIR)/tenantcached.service \
		$(DESTDIR)$(UNITDIR)/tenantcached@.service $(DESTDIR)$(SYSUSERSDIR)/tenantcached.conf \
		$(DESTDIR)$(MANDIR)/man8/tenantcached.8

clean:
	rm -rf build build-asan build-tsan build-fuzz tenantcached

-include $(OBJS:.o=.d)
