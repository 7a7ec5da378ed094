# Thin wrapper: Debian packages, the CMake build, the demo, the tests, the sanitizer run.
BUILD ?= build
JOBS ?= $(shell nproc)
DEPS = build-essential cmake pkg-config lua5.4 liblua5.4-dev libopenblas-dev libcsv-dev \
       zlib1g-dev libedit-dev libpng-dev libjpeg-dev dataset-fashion-mnist python3-sklearn \
       python3-numpy
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build demo test asan clean

# Installs only what is missing, so a machine that has everything needs no network.
deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	  grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

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

clean:
	rm -rf $(BUILD) $(BUILD)-asan
