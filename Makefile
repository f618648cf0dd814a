# Thin front end over CMake. `make test` and `make bench` do all the set-up on a fresh Debian 12.
BUILD ?= build
BUILD_TYPE ?= Release
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# make bench: the whole suite, AUTO and every algorithm, 1 thread and all threads, with the
# baselines found at build time; BENCH_ARGS=--quick (or make bench-quick) for about a minute.
BENCH_THREADS ?= 1,$(shell nproc 2>/dev/null || echo 2)
BENCH_ARGS ?=
BENCH_CHECK ?= --check
BENCH_OUT ?= bench/results
BENCH_DEPS ?= gnuplot-nox libopenblas-dev libdnnl-dev libxnnpack-dev libpthreadpool-dev

.PHONY: all deps bench-deps configure build test bench bench-quick clean

all: build

# Installs what is missing with apt-get when run as root; otherwise prints the line and stops.
deps:
	@sh tools/ensure-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest -j2 -V --output-on-failure

# The bench's extras (chart, baselines) are optional: without them the bench still runs.
bench-deps:
	@CONVKIT_EXTRA_DEPS="$(BENCH_DEPS)" sh tools/ensure-deps.sh || \
	  echo "convkit: continuing without the missing bench extras (chart, baselines)" >&2

# Both runs and the chart happen even when a --check fails; the target fails at the end then.
bench: bench-deps
	$(MAKE) build
	mkdir -p $(BENCH_OUT)
	st=0; \
	$(BUILD)/bench/convkit-bench conv --suite bench/layers.csv --layout nhwc --algo auto,all \
	  --baselines all --threads $(BENCH_THREADS) $(BENCH_CHECK) $(BENCH_ARGS) \
	  --csv $(BENCH_OUT)/conv-nhwc.csv || st=1; \
	$(BUILD)/bench/convkit-bench conv --suite bench/layers.csv --layout nchw --algo auto \
	  --baselines onednn,im2col-openblas --threads $(BENCH_THREADS) $(BENCH_CHECK) $(BENCH_ARGS) \
	  --csv $(BENCH_OUT)/conv-nchw.csv || st=1; \
	sh bench/plot-conv.sh $(BENCH_OUT)/conv.png $(BENCH_OUT)/conv-nhwc.csv \
	  $(BENCH_OUT)/conv-nchw.csv || true; \
	exit $$st

bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick BENCH_CHECK=

# Cross-build for aarch64, then every suite and a bench check under qemu-user (tools/test-arm.sh).
BUILD_ARM ?= build-arm
.PHONY: test-arm
test-arm:
	@BUILD_ARM=$(BUILD_ARM) JOBS=$(JOBS) CMAKE_FLAGS="$(CMAKE_FLAGS)" sh tools/test-arm.sh

clean:
	rm -rf $(BUILD)
