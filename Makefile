# Thin wrapper: Debian packages, the CMake build, the demo, the tests, the sanitizer run.
BUILD ?= build
JOBS ?= $(shell nproc)
DEPS = build-essential cmake pkg-config lua5.4 liblua5.4-dev libopenblas-dev libcsv-dev \
       zlib1g-dev libedit-dev tmux libpng-dev libjpeg-dev dataset-fashion-mnist python3-sklearn \
       python3-numpy python3-pil python3-onnx nodejs openmpi-bin libopenmpi-dev
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= -1
FUZZ_TARGETS ?= safetensors csv idx image npy values script
FUZZ_DIR = $(BUILD)-fuzz
FUZZ_SOURCES = $(wildcard runtime/*.c runtime/ops/*.c runtime/optim/*.c runtime/sched/*.c \
               runtime/data/*.c) \
               $(filter-out lang/main.c lang/dist_mpi.c,$(wildcard lang/*.c))
FUZZ_CFLAGS = -std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iruntime -Ilang \
              $(shell pkg-config --cflags openblas lua5.4 libedit) -fsanitize=address,undefined \
              -fno-sanitize-recover=undefined
FUZZ_LIBS = $(shell pkg-config --libs openblas libpng libjpeg lua5.4 libedit) -lcsv -lz \
            -lpthread -lm
# Any change of flags or headers: `rm -rf build-fuzz/obj` (the objects depend on their .c only).
FUZZ_OBJS = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_SOURCES)) $(FUZZ_DIR)/obj/stdlib_embed.o

.PHONY: deps build demo test asan fuzz clean

# Installs only what is missing, so a machine that has everything needs no network.
# npm is part of NodeSource's nodejs package and its own package in Debian: checked as a command.
deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	  grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm; }

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/tkrun examples/fashion_mnist/mlp.lua

test: build
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS)

asan: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DTK_SANITIZE=ON
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure --no-tests=error -j $(JOBS)

# libFuzzer over every parser of untrusted input (tests/fuzz/README.md) under ASan + UBSan,
# FUZZ_SECONDS or FUZZ_RUNS executions per target; the library is instrumented once. Needs
# clang (installed here if missing). tests/fuzz/run.sh runs one target and logs its count.
fuzz: deps
	@command -v clang >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang; }
	$(MAKE) --no-print-directory $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))
	for t in $(FUZZ_TARGETS); do \
	  bash tests/fuzz/run.sh $$t $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_RUNS) || exit 1; \
	done

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/stdlib_embed.c: $(wildcard stdlib/tk/*.lua)
	@mkdir -p $(FUZZ_DIR)
	cmake -DOUT=$(CURDIR)/$@ -DSRC_DIR=$(CURDIR)/stdlib/tk -P lang/embed.cmake

$(FUZZ_DIR)/obj/stdlib_embed.o: $(FUZZ_DIR)/stdlib_embed.c
	clang $(FUZZ_CFLAGS) -c $< -o $@

# The value conversions include lang/spec.c (its conversions are static) and stub tk_compile.
$(FUZZ_DIR)/fuzz_values: tests/fuzz/fuzz_values.c lang/spec.c tests/fuzz/gzbuffer.c $(FUZZ_OBJS)
	clang $(FUZZ_CFLAGS) -Wall -Wextra -Werror -fsanitize=fuzzer $< tests/fuzz/gzbuffer.c \
	  $(filter-out %/lang/spec.o,$(FUZZ_OBJS)) -Wl,--wrap=gzbuffer,--wrap=tk_compile \
	  $(FUZZ_LIBS) -o $@

# Kept between runs: instrumenting the library is most of a target's build.
.SECONDARY: $(FUZZ_OBJS)
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_file.h tests/fuzz/gzbuffer.c $(FUZZ_OBJS)
	clang $(FUZZ_CFLAGS) -Wall -Wextra -Werror -fsanitize=fuzzer $< tests/fuzz/gzbuffer.c \
	  $(FUZZ_OBJS) -Wl,--wrap=gzbuffer $(FUZZ_LIBS) -o $@

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
