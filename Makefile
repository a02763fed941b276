# Makefile - the routers (every impl-*/), one conformance suite, one benchmark, one talk.
#
#   make              build every router into build/router-<impl>, and the test programs
#   make test         unit tests + the conformance suite for every router (installs deps)
#   make asan / tsan  the same under AddressSanitizer+UBSan / ThreadSanitizer
#   make fuzz         run the frame parser's libFuzzer target (FUZZ_SECONDS, default 60)
#   make check ROUTER='command'   run the conformance suite against any router
#   make bench        the full benchmark and report; make bench-quick for a short run
#   make bench-reference  a full make bench, kept in bench/reference/ for the decks and README
#   make slides       render the decks
#   make docs         rewrite the README's router tables from impl-*/router.desc
#   make workshop-check   what the workshop needs (tools, gdb's ptrace, loopback), with advice
#   make copy-router DIR=build/copies/NAME   a participant's copy of a router -> build/router-NAME
#   make format       clang-format every C file

SAN ?=
BUILD ?= build$(if $(SAN),/$(SAN))
OBJ := $(BUILD)/obj

CC ?= cc
CFLAGS_BASE := -std=c17 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon -MMD -MP
# Errors halt at once, except ASan's when ASAN_OPTIONS says halt_on_error=0: tests/run.sh says so
# for a router whose description expects memory errors (router-naive), so they are noted, not fatal.
SAN_FLAGS_asan := -fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize-recover=address \
	-fno-omit-frame-pointer
SAN_FLAGS_tsan := -fsanitize=thread -fno-omit-frame-pointer
SAN_FLAGS := $(SAN_FLAGS_$(SAN))
CFLAGS ?=
CFLAGS += $(CFLAGS_BASE) $(SAN_FLAGS)
LDFLAGS += $(SAN_FLAGS) -pthread

# Evaluated when a recipe runs, after scripts/deps.sh has installed pkg-config and the libraries.
UV_LIBS = $(shell pkg-config --libs libuv)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)

# Every impl-<name>/ with C sources becomes build/router-<name>.
IMPLS := $(sort $(patsubst impl-%/,%,$(dir $(wildcard impl-*/*.c))))
ROUTERS := $(IMPLS:%=$(BUILD)/router-%)
# A router that includes <uv.h> links libuv (so a participant's copy of impl-reactor builds too).
uses_uv = $(if $(shell grep -l '<uv.h>' impl-$(1)/*.c impl-$(1)/*.h 2>/dev/null),$(UV_LIBS))

COMMON_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(wildcard common/*.c))
UNIT_TESTS := $(patsubst tests/%.c,$(BUILD)/%,$(wildcard tests/unit_*.c))
# A unit test of one router's private module links that module too.
UNIT_EXTRA_unit_channel := $(OBJ)/impl-channels/channel.o
UNIT_EXTRA_unit_mailbox := $(OBJ)/impl-sharded/mailbox.o
CONFORMANCE_SRCS := $(wildcard tests/conformance*.c)
RACE_DRIVER := $(if $(wildcard tests/race_driver.c),$(BUILD)/race_driver)
# router-sansio's deterministic simulator: its core, played against by simulated clients.
SIM := $(if $(wildcard tests/sim_sansio.c),$(BUILD)/sim_sansio)
PROGRAMS := $(ROUTERS) $(UNIT_TESTS) $(if $(CONFORMANCE_SRCS),$(BUILD)/conformance) \
            $(RACE_DRIVER) $(SIM) $(if $(wildcard bench/*.c),$(BUILD)/loadgen)

DEPS_STAMP := build/.deps-build

.PHONY: all routers race-build test asan tsan fuzz check sim sim-planted bench bench-quick bench-reference slides docs format clean \
        workshop-check copy-router
.SECONDEXPANSION:
# Keep object files of routers: they are built through a computed prerequisite list.
.SECONDARY:

all: $(PROGRAMS)

routers: $(ROUTERS)

# ThreadSanitizer builds of every router, for tests/race_check.sh (part of make test).
race-build:
	@$(MAKE) --no-print-directory SAN=tsan BUILD=build/tsan routers $(if $(RACE_DRIVER),build/tsan/race_driver)

$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(@D)
	@scripts/deps.sh build
	@touch $@

$(OBJ)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libcommon.a: $(COMMON_OBJS)
	$(AR) rcs $@ $^

# No % inside the prerequisites: make would put the stem there before expanding them.
$(BUILD)/router-%: $$(addprefix $(OBJ)/,$$(subst .c,.o,$$(wildcard impl-$$*/*.c))) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(call uses_uv,$*)

$(BUILD)/unit_%: $(OBJ)/tests/unit_%.o $$(UNIT_EXTRA_unit_$$*) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/race_driver: $(OBJ)/tests/race_driver.o $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/sim_sansio: $(OBJ)/tests/sim_sansio.o $(OBJ)/impl-sansio/core.o $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/conformance: $(CONFORMANCE_SRCS:%.c=$(OBJ)/%.o) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/loadgen: $(patsubst %.c,$(OBJ)/%.o,$(wildcard bench/*.c)) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(UV_LIBS) -lm

# A participant's copy of a router (workshop exercise 4), kept out of the tree's impl-*/ so that
# make test, the router descriptions and the slides never see it: every .c in DIR, built like an
# impl-*/ router (the same CFLAGS, -Icommon, libcommon.a, libuv if a source includes <uv.h>)
# into build/router-NAME, NAME being DIR's last component. make alone does not rebuild it.
#   mkdir -p build/copies && cp -r impl-reactor build/copies/nobp
#   make copy-router DIR=build/copies/nobp              # -> build/router-nobp
COPY_DIR := $(patsubst %/,%,$(DIR))
COPY_NAME := $(notdir $(COPY_DIR))
COPY_BIN := $(if $(COPY_DIR),$(BUILD)/router-$(COPY_NAME))
ifneq ($(COPY_BIN),)
ifeq ($(filter $(COPY_NAME),$(IMPLS)),)
$(COPY_BIN): $(patsubst %.c,$(OBJ)/%.o,$(wildcard $(COPY_DIR)/*.c)) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(if $(shell grep -l '<uv.h>' $(COPY_DIR)/*.c $(COPY_DIR)/*.h 2>/dev/null),$(UV_LIBS))
endif
endif

copy-router:
	@test -n "$(COPY_DIR)" || { echo "usage: make copy-router DIR=build/copies/NAME (builds build/router-NAME)" >&2; exit 2; }
	@ls $(COPY_DIR)/*.c > /dev/null 2>&1 || { echo "copy-router: no C sources in $(COPY_DIR) (make one: mkdir -p build/copies && cp -r impl-reactor $(COPY_DIR))" >&2; exit 2; }
	@case "$(COPY_DIR)" in impl-*) echo "copy-router: $(COPY_DIR) is in the tree, where make test and the slides would see it: copy it under build/copies/ instead" >&2; exit 2 ;; esac
	@test -z "$(filter $(COPY_NAME),$(IMPLS))" || { echo "copy-router: $(COPY_NAME) is a router of the tree (impl-$(COPY_NAME)/): name the copy otherwise, e.g. $(dir $(COPY_DIR))$(COPY_NAME)-mine" >&2; exit 2; }
	@$(MAKE) --no-print-directory $(COPY_BIN) DIR=$(COPY_DIR)
	@echo "copy-router: $(COPY_BIN) built from $(COPY_DIR)"

# Run before the workshop: the build, the tools, gdb's ptrace permission, loopback, limits.
workshop-check:
	@workshop/check.sh $(BUILD)

test: all race-build
	@tests/run.sh $(BUILD)

asan:
	@$(MAKE) --no-print-directory SAN=asan test

tsan:
	@$(MAKE) --no-print-directory SAN=tsan test

# The frame parser under libFuzzer (clang only), for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
build/fuzz_frame: tests/fuzz_frame.c common/frame.c common/frame.h
	@scripts/deps.sh fuzz
	@mkdir -p $(@D)
	clang -std=c17 -O1 -g -Icommon -fsanitize=fuzzer,address,undefined -o $@ tests/fuzz_frame.c common/frame.c

fuzz: build/fuzz_frame
	@mkdir -p build/fuzz-corpus
	build/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz-corpus

# The simulator: make sim runs the default seeds; make sim SEED=N STEPS=M runs one.
sim: $(BUILD)/sim_sansio
	$(BUILD)/sim_sansio $(if $(SEED),--seed $(SEED)) $(if $(STEPS),--steps $(STEPS))

# The proof that the simulator finds bugs: four planted in the core, each against the simulator
# and the conformance suite (tests/sim_planted.sh; SIM_ONLY=1 skips the suite).
sim-planted: all
	@tests/sim_planted.sh

check: all
	@test -n "$(ROUTER)" || { echo "usage: make check ROUTER='command [args]'" >&2; exit 2; }
	$(BUILD)/conformance $(ROUTER)

bench: all
	@scripts/deps.sh bench
	@bench/run.sh full $(BUILD) $(if $(EXTRA),"$(EXTRA)")

bench-reference: all
	@scripts/deps.sh bench
	@bench/run.sh full $(BUILD)
	@bench/reference.sh bench/results/latest

bench-quick: all
	@scripts/deps.sh bench
	@bench/run.sh quick $(BUILD) $(if $(EXTRA),"$(EXTRA)")

slides:
	@scripts/deps.sh slides
	@$(MAKE) --no-print-directory -C slides

docs:
	@scripts/routers.sh readme

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
