#!/bin/sh
# `make test-arm`: cross-builds convkit for aarch64 and runs every test suite under qemu-user,
# once with CONVKIT_ISA=neon and once with CONVKIT_ISA=generic, then convkit-bench --check on a
# few small layers with every algorithm. On a fresh Debian 12 it first installs what is missing
# (as root; otherwise it prints the apt-get line and stops).
#
# Environment: BUILD_ARM (default build-arm), JOBS (default nproc), CMAKE_FLAGS (extra cmake
# arguments, e.g. -DCONVKIT_WERROR=ON), BENCH_LAYERS (default: three small suite layers).
#
# How the tests run under emulation (README, "ARM boards"): CTest starts each suite through
# qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR of cmake/toolchains/aarch64-linux-gnu.cmake), and
# Criterion's own runner starts each test in a worker process; tests/support/qemu/ck_qemu_exec.c
# makes those workers start under qemu as well. The test sources and cases are the native ones.
# shellcheck disable=SC2086 # package and argument lists are split on purpose
set -eu
cd "$(dirname "$0")/.."
BUILD_ARM=${BUILD_ARM:-build-arm}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
CMAKE_FLAGS=${CMAKE_FLAGS:-}
BENCH_LAYERS=${BENCH_LAYERS:-mobilenetv1_dw_14 resnet50_res5_3x3 mobilenetv1_pw_14}
ARCH=arm64
TRIPLE=aarch64-linux-gnu
EXTRA_ROOT="$PWD/$BUILD_ARM/arm64-root" # unpacked arm64 .debs (see step 1)

say() { echo "test-arm: $*" >&2; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
as_root() {
  if [ "$(id -u)" -ne 0 ]; then
    say "missing packages or set-up. Run as root:"
    echo "  $*" >&2
    exit 1
  fi
  "$@"
}
# Other apt users (another build, unattended upgrades) may hold the lock for a while.
APT="apt-get -y -qq -o DPkg::Lock::Timeout=600"
export DEBIAN_FRONTEND=noninteractive

# ---- 1. Dependencies ----------------------------------------------------------------------
# Host tools and the cross toolchain.
missing=""
for p in cmake make gcc-$TRIPLE libc6-dev-$ARCH-cross; do installed "$p" || missing="$missing $p"; done
command -v qemu-aarch64 >/dev/null 2>&1 || command -v qemu-aarch64-static >/dev/null 2>&1 ||
  missing="$missing qemu-user"
# arm64 packages come from Debian multiarch.
if ! dpkg --print-foreign-architectures | grep -qx "$ARCH"; then
  as_root dpkg --add-architecture "$ARCH"
  as_root apt-get update -qq
fi
if ! apt-cache show "libcriterion3:$ARCH" >/dev/null 2>&1; then as_root apt-get update -qq; fi
# Criterion for arm64. libcriterion3:arm64 cannot be installed next to the native libcriterion3
# (its dependency libnanomsg5 is not Multi-Arch: same, so apt would REMOVE the native Criterion
# that `make test` needs; a machine may even pin the arm64 packages away). So its Multi-Arch:
# same dependencies (libc6, libffi8, libgit2, ...) are installed with apt, and the rest
# (libcriterion3, libcriterion-dev, libnanomsg5) is downloaded at an explicit version and
# unpacked into $EXTRA_ROOT, which the toolchain file adds to its find roots.
multiarch_same() {
  apt-cache show --no-all-versions "$1" 2>/dev/null | grep -qx "Multi-Arch: same"
}
# The version to fetch: the native package's when installed (same headers as `make test`), else
# the candidate, else the newest known (apt-cache madison lists newest first).
version_of() {
  v=$(dpkg-query -W -f='${Version}' "${1%:*}:$(dpkg --print-architecture)" 2>/dev/null || true)
  if [ -n "$v" ] && apt-cache madison "$1" | awk -v v="$v" '$3 == v {f = 1} END {exit !f}'; then
    echo "$v"
    return
  fi
  v=$(apt-cache policy "$1" | awk '$1 == "Candidate:" && $2 != "(none)" {print $2}')
  [ -n "$v" ] || v=$(apt-cache madison "$1" | awk 'NR == 1 {print $3}')
  [ -n "$v" ] || { say "no $1 package is known to apt"; exit 1; }
  echo "$v"
}
crit=$(version_of "libcriterion3:$ARCH")
unpack="libcriterion3:$ARCH=$crit libcriterion-dev:$ARCH=$crit"
for d in $(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances "libcriterion3:$ARCH=$crit" | awk '$1 == "Depends:" {print $2}'); do
  case "$d" in *:*) ;; *) d="$d:$ARCH" ;; esac
  if multiarch_same "$d"; then
    installed "$d" || missing="$missing $d"
  else
    unpack="$unpack $d=$(version_of "$d")"
  fi
done
if [ -n "$missing" ]; then
  say "installing$missing"
  as_root $APT install $missing >/dev/null
fi
stamp="$EXTRA_ROOT/.packages"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$unpack" ]; then
  say "unpacking $unpack into $EXTRA_ROOT"
  rm -rf "$EXTRA_ROOT" "$BUILD_ARM/arm64-debs"
  mkdir -p "$EXTRA_ROOT" "$BUILD_ARM/arm64-debs"
  (cd "$BUILD_ARM/arm64-debs" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" $unpack)
  for deb in "$BUILD_ARM"/arm64-debs/*.deb; do dpkg-deb -x "$deb" "$EXTRA_ROOT"; done
  echo "$unpack" >"$stamp"
fi

# ---- 2. Cross build -----------------------------------------------------------------------
say "cross-building in $BUILD_ARM"
cmake -S . -B "$BUILD_ARM" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
  -DCONVKIT_ARM64_EXTRA_ROOT="$EXTRA_ROOT" $CMAKE_FLAGS >/dev/null
cmake --build "$BUILD_ARM" -j "$JOBS"

# ---- 3. Every suite under emulation, NEON and generic -------------------------------------
# Suites run side by side (-j): each is bound by one long test, and the machine's cores would
# otherwise idle. OpenMP threads sleep rather than spin while waiting: a spinning guest thread
# costs emulated instructions and starves the other suites (it changes no result).
for isa in neon generic; do
  say "ctest under qemu-aarch64 with CONVKIT_ISA=$isa"
  (cd "$BUILD_ARM" && CONVKIT_ISA=$isa OMP_WAIT_POLICY=passive ctest -j "$JOBS" --output-on-failure)
done

# ---- 4. convkit-bench under emulation: every algorithm checked against the reference ------
# The toolchain file's emulator: multiarch arm64 glibc when installed, else the cross one.
emu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
[ -e /lib/ld-linux-aarch64.so.1 ] || emu="$emu -L /usr/$TRIPLE"
layers=""
for l in $BENCH_LAYERS; do layers="$layers --layer $l"; done
say "convkit-bench --check under qemu-aarch64:$layers"
$emu "$BUILD_ARM/bench/convkit-bench" info
$emu "$BUILD_ARM/bench/convkit-bench" conv --suite bench/layers.csv $layers --algo all \
  --isa neon --threads 2 --check --quick
say "passed"
