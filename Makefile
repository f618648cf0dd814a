# Thin front end over CMake. `make test` and `make bench` do all the set-up on a fresh Debian 12.
BUILD ?= build
BUILD_TYPE ?= Release
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BENCH_ARGS ?= --algo reference --threads 1 --check

.PHONY: all deps configure build test bench clean

all: build

# Installs what is missing with apt-get when run as root; otherwise prints the line and stops.
deps:
	@sh tools/ensure-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure

bench: build
	mkdir -p bench/results
	$(BUILD)/bench/convkit-bench conv --suite bench/layers.csv $(BENCH_ARGS) \
	  --csv bench/results/conv.csv

# Cross-build for aarch64, then every suite and a bench check under qemu-user (tools/test-arm.sh).
BUILD_ARM ?= build-arm
.PHONY: test-arm
test-arm:
	@BUILD_ARM=$(BUILD_ARM) JOBS=$(JOBS) CMAKE_FLAGS="$(CMAKE_FLAGS)" sh tools/test-arm.sh

clean:
	rm -rf $(BUILD)
