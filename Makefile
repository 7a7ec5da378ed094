# Thin wrapper: Debian packages, the CMake build, the demo, the tests, the sanitizer run.
BUILD ?= build
JOBS ?= $(shell nproc)
DEPS = build-essential cmake pkg-config lua5.4 liblua5.4-dev libopenblas-dev libcsv-dev \
       zlib1g-dev libedit-dev tmux libpng-dev libjpeg-dev dataset-fashion-mnist python3-sklearn \
       python3-numpy python3-pil python3-onnx nodejs openmpi-bin libopenmpi-dev
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

FUZZ_SECONDS ?= 60
FUZZ_SOURCES = $(wildcard runtime/*.c runtime/ops/*.c runtime/optim/*.c runtime/sched/*.c runtime/data/*.c)
FUZZ_FLAGS = -std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iruntime \
             $(shell pkg-config --cflags openblas) -fsanitize=fuzzer,address,undefined
FUZZ_LIBS = $(shell pkg-config --libs openblas libpng libjpeg) -lcsv -lz -lpthread -lm
FUZZ_LANG = -Ilang $(shell pkg-config --cflags lua5.4 libedit) \
            $(filter-out lang/main.c lang/dist_mpi.c,$(wildcard lang/*.c)) \
            $(BUILD)-fuzz/stdlib_embed.c $(shell pkg-config --libs lua5.4 libedit)

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

# libFuzzer over the parsers of untrusted files (safetensors; CSV and IDX, plain and gzip;
# PNG/JPEG images; .npy/.npz),
# FUZZ_SECONDS each, under ASan + UBSan. Needs clang (installed here if missing).
fuzz: deps
	@command -v clang >/dev/null || $(SUDO) apt-get install -y -qq clang
	mkdir -p $(BUILD)-fuzz
	for t in safetensors data image npy; do \
	  clang $(FUZZ_FLAGS) tests/fuzz/fuzz_$$t.c $(FUZZ_SOURCES) $(FUZZ_LIBS) \
	    -o $(BUILD)-fuzz/fuzz_$$t && \
	  mkdir -p $(BUILD)-fuzz/corpus_$$t && \
	  $(BUILD)-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) $(BUILD)-fuzz/corpus_$$t \
	    tests/fixtures || exit 1; \
	done
	# The script loader's value conversions: --set lines on a pipeline, built and described.
	cmake -DOUT=$(CURDIR)/$(BUILD)-fuzz/stdlib_embed.c -DSRC_DIR=$(CURDIR)/stdlib/tk \
	  -P lang/embed.cmake
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_script.c $(FUZZ_SOURCES) $(FUZZ_LANG) $(FUZZ_LIBS) \
	  -o $(BUILD)-fuzz/fuzz_script
	mkdir -p $(BUILD)-fuzz/corpus_script
	$(BUILD)-fuzz/fuzz_script -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/fuzz_script.dict \
	  $(BUILD)-fuzz/corpus_script tests/fuzz/script_seeds

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
