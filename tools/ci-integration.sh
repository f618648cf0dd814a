#!/usr/bin/env bash
# Integration and robustness checks (project issue 8), in this order:
#   1. install to a temporary prefix (cmake --install);
#   2. symbol hygiene of the installed libraries (tools/check-symbols.sh);
#   3. a consumer project (examples/) built against the installed package four ways: CMake
#      find_package shared and static, pkg-config shared and static; each must run and agree
#      on the algorithms the library offers;
#   4. every test suite built with ThreadSanitizer (clang + LLVM libomp + Archer; see
#      tools/tsan/CMakeLists.txt and tools/tsan.supp for why) and run;
#   5. the libFuzzer target with ASan+UBSan for a fixed budget (FUZZ_SECONDS, default 180 s,
#      seed FUZZ_SEED, default 1) from the committed corpus fuzz/corpus.
# Needs cmake, gcc, pkg-config, clang and libomp-dev (installed with apt-get when run as root).
# Environment: JOBS (2), FUZZ_SECONDS, FUZZ_SEED, CK_INTEGRATION_DIR (build-integration),
# CK_TSAN_TESTS (the TSan suites to run; default all that tools/tsan builds).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-180}
FUZZ_SEED=${FUZZ_SEED:-1}
OUT=${CK_INTEGRATION_DIR:-$ROOT/build-integration}
START=$SECONDS
step() { echo "== [$((SECONDS - START))s] $*"; }

CONVKIT_EXTRA_DEPS="clang libomp-dev" sh tools/ensure-deps.sh
rm -rf "$OUT"
mkdir -p "$OUT"

# ---- 1. Install ---------------------------------------------------------------------------
step "build and install to a temporary prefix"
cmake -S . -B "$OUT/lib" -DCMAKE_BUILD_TYPE=Release -DCONVKIT_WERROR=ON \
  -DCONVKIT_BUILD_TESTS=OFF -DCONVKIT_BUILD_BENCH=OFF >"$OUT/lib.log"
cmake --build "$OUT/lib" -j "$JOBS" >>"$OUT/lib.log"
PREFIX=$OUT/prefix
cmake --install "$OUT/lib" --prefix "$PREFIX" | sed "s|$PREFIX|<prefix>|"
LIBDIR=$(dirname "$(find "$PREFIX" -name libconvkit.so -print -quit)")

# ---- 2. Symbols ---------------------------------------------------------------------------
step "symbol hygiene"
tools/check-symbols.sh "$LIBDIR/libconvkit.so" "$LIBDIR/libconvkit.a" "$PREFIX/include/convkit.h"

# ---- 3. Consumers -------------------------------------------------------------------------
# Only the prefix is visible to the consumer: no source tree include path, no build tree.
run_example() { # name, binary: runs it, keeps its "algorithms:" line
  local out
  out=$("$2")
  echo "   $1: ${out%%$'\n'*}"
  grep '^algorithms:' <<<"$out" >"$OUT/$1.algorithms"
}
for mode in shared static; do
  step "consumer: CMake find_package(convkit CONFIG), $mode"
  static=OFF
  [ "$mode" = static ] && static=ON
  cmake -S examples -B "$OUT/example-cmake-$mode" -DCMAKE_PREFIX_PATH="$PREFIX" \
    -DCONVKIT_USE_STATIC_LIBS=$static >"$OUT/example-cmake-$mode.log"
  cmake --build "$OUT/example-cmake-$mode" >>"$OUT/example-cmake-$mode.log"
  run_example "cmake-$mode" "$OUT/example-cmake-$mode/conv_example"
done
# ldd's output is taken whole before grep reads it: under pipefail, grep -q leaving at the
# first match could kill ldd with SIGPIPE and fail the pipeline (a CI run failed that way).
shared_deps=$(ldd "$OUT/example-cmake-shared/conv_example")
static_deps=$(ldd "$OUT/example-cmake-static/conv_example")
if ! grep -q "$LIBDIR/libconvkit.so" <<<"$shared_deps"; then
  echo "FAIL: the shared CMake consumer does not load $LIBDIR/libconvkit.so"
  exit 1
fi
if grep -q libconvkit <<<"$static_deps"; then
  echo "FAIL: the static CMake consumer depends on a shared libconvkit"
  exit 1
fi

export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
step "consumer: pkg-config shared ($(pkg-config --cflags --libs convkit | sed "s|$PREFIX|<prefix>|g"))"
cc -std=c11 -O2 -Wall -Wextra -Werror examples/conv_example.c $(pkg-config --cflags --libs convkit) \
  -lm -o "$OUT/example-pc-shared"
LD_LIBRARY_PATH=$LIBDIR run_example pc-shared "$OUT/example-pc-shared"
step "consumer: pkg-config static (libconvkit.a + Libs.private: $(pkg-config --static --libs-only-l convkit))"
cc -std=c11 -O2 -Wall -Wextra -Werror examples/conv_example.c $(pkg-config --cflags convkit) \
  "$(pkg-config --variable=libdir convkit)/libconvkit.a" \
  $(pkg-config --static --libs-only-L --libs-only-l convkit | sed 's/-lconvkit//') \
  -o "$OUT/example-pc-static"
run_example pc-static "$OUT/example-pc-static"
for m in cmake-static pc-shared pc-static; do
  if ! cmp -s "$OUT/cmake-shared.algorithms" "$OUT/$m.algorithms"; then
    echo "FAIL: consumers disagree on the algorithms: cmake-shared $(cat "$OUT/cmake-shared.algorithms"), $m $(cat "$OUT/$m.algorithms")"
    exit 1
  fi
done
echo "   all four consumers run and offer: $(cat "$OUT/cmake-shared.algorithms")"

# ---- 4. ThreadSanitizer -------------------------------------------------------------------
step "ThreadSanitizer build (clang + libomp + Archer)"
CC=clang cmake -S tools/tsan -B "$OUT/tsan" >"$OUT/tsan.log"
cmake --build "$OUT/tsan" -j "$JOBS" >>"$OUT/tsan.log" 2>&1 || {
  tail -30 "$OUT/tsan.log"
  exit 1
}
tsan_tests=${CK_TSAN_TESTS:-$(cd "$OUT/tsan" && ls test_* 2>/dev/null | grep -v '\.' || true)}
libomp=$(ldd "$OUT/tsan/test_concurrency" | awk '/libomp/ { print $3; exit }')
archer=$(dirname "$libomp")/libarcher.so
if [ ! -f "$archer" ]; then
  echo "FAIL: no Archer (libarcher.so) next to $libomp: TSan would report libomp's barriers"
  exit 1
fi
for t in $tsan_tests; do
  step "TSan: $t"
  OMP_TOOL_LIBRARIES=$archer ARCHER_OPTIONS=verbose=0 \
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$ROOT/tools/tsan.supp" \
    "$OUT/tsan/$t" >"$OUT/tsan-$t.log" 2>&1 || {
    echo "FAIL: $t under ThreadSanitizer (exit $?):"
    grep -v "^Warning: please export TSAN_OPTIONS" "$OUT/tsan-$t.log" | tail -60
    exit 1
  }
  grep -E '^\[(PASS|FAIL|====)' "$OUT/tsan-$t.log" | tail -1 | sed 's/^/   /'
done

# ---- 5. Fuzzing ---------------------------------------------------------------------------
step "libFuzzer build (clang, ASan + UBSan)"
CC=clang cmake -S . -B "$OUT/fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCONVKIT_BUILD_FUZZ=ON \
  -DCONVKIT_SANITIZE=address,undefined -DCONVKIT_BUILD_TESTS=OFF -DCONVKIT_BUILD_BENCH=OFF \
  >"$OUT/fuzz.log"
cmake --build "$OUT/fuzz" -j "$JOBS" --target fuzz_conv >>"$OUT/fuzz.log" 2>&1 || {
  tail -30 "$OUT/fuzz.log"
  exit 1
}
step "fuzz_conv for ${FUZZ_SECONDS}s (seed $FUZZ_SEED)"
mkdir -p "$OUT/fuzz-corpus" "$OUT/fuzz-artifacts"
# A crash leaves crash-<sha1> in fuzz-artifacts; reproduce with: fuzz_conv <that file>.
if ! ASAN_OPTIONS=allocator_may_return_null=1 "$OUT/fuzz/fuzz/fuzz_conv" \
  -max_total_time="$FUZZ_SECONDS" -seed="$FUZZ_SEED" -rss_limit_mb=4096 -timeout=60 \
  -print_final_stats=1 -artifact_prefix="$OUT/fuzz-artifacts/" \
  "$OUT/fuzz-corpus" fuzz/corpus >"$OUT/fuzz-run.log" 2>&1; then
  grep -vE '^#[0-9]+ +(NEW|REDUCE|pulse|RELOAD)' "$OUT/fuzz-run.log" | tail -40
  echo "FAIL: fuzz_conv found a problem; the input is in $OUT/fuzz-artifacts/"
  ls "$OUT/fuzz-artifacts/"
  exit 1
fi
grep -E '^#[0-9]+ +DONE|^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' \
  "$OUT/fuzz-run.log" | sed 's/^/   /'

step "integration checks passed"
