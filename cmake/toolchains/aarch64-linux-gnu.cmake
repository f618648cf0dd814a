# Cross-compiling convkit for 64-bit ARM Linux boards (Raspberry Pi 4/5, Jetson, Graviton, ...)
# with Debian's cross compiler, and running the result under qemu-user.
#
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#   cmake --build build-arm -j2        # copy build-arm/bench/convkit-bench to the board, or:
#   qemu-aarch64 -L /usr/aarch64-linux-gnu build-arm/bench/convkit-bench info
#
# Sysroot: Debian's cross gcc already searches the arm64 C library of libc6-dev-arm64-cross
# (/usr/aarch64-linux-gnu) and the multiarch directories (/usr/lib/aarch64-linux-gnu) that
# `dpkg --add-architecture arm64` installs into, so CMAKE_SYSROOT stays unset: setting it would
# hide one of the two. Find calls look only there (and in CONVKIT_ARM64_EXTRA_ROOT, see below),
# never in the host's x86-64 directories.
#
# Emulator: CMAKE_CROSSCOMPILING_EMULATOR makes CTest (and try_run) start every aarch64 program
# through qemu-aarch64, with an arm64 loader and C library (see CONVKIT_QEMU_LD_PREFIX below).
#
# CONVKIT_ARM64_EXTRA_ROOT (optional): a directory holding arm64 .deb packages unpacked with
# `dpkg-deb -x`, for libraries whose arm64 package cannot be installed next to the amd64 one.
# tools/test-arm.sh uses it for Criterion (libnanomsg5 is not Multi-Arch: same, so apt would
# remove the native libcriterion to install the arm64 one).

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CONVKIT_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${CONVKIT_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${CONVKIT_CROSS_TRIPLE}-g++)

set(CONVKIT_ARM64_SYSROOT /usr/${CONVKIT_CROSS_TRIPLE}
    CACHE PATH "arm64 C library of the cross toolchain")
set(CONVKIT_ARM64_EXTRA_ROOT "" CACHE PATH "Unpacked arm64 .deb packages (optional)")
# try_compile projects re-read this file: hand them the two settings.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CONVKIT_ARM64_SYSROOT CONVKIT_ARM64_EXTRA_ROOT)

set(CMAKE_FIND_ROOT_PATH ${CONVKIT_ARM64_SYSROOT} /)
if(CONVKIT_ARM64_EXTRA_ROOT)
  list(PREPEND CMAKE_FIND_ROOT_PATH ${CONVKIT_ARM64_EXTRA_ROOT})
  # The linker resolves the libraries that the unpacked ones need (libcriterion -> libnanomsg).
  string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT
         " -Wl,-rpath-link,${CONVKIT_ARM64_EXTRA_ROOT}/usr/lib/${CONVKIT_CROSS_TRIPLE}")
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER) # build tools run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_LIBRARY_ARCHITECTURE ${CONVKIT_CROSS_TRIPLE})

# pkg-config: arm64 .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${CONVKIT_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")

# The guest's loader and C library: the multiarch ones (libc6:arm64, at the paths a board has)
# when installed, else the cross sysroot's through -L. Not the cross loader when multiarch
# libraries are in use: Criterion's runner (linked against multiarch libgit2 & co.) spins forever
# in the dynamic loader before its first test under qemu-aarch64 -L /usr/aarch64-linux-gnu,
# while it runs with the multiarch loader (see tests/support/qemu/ck_qemu_exec.c).
if(EXISTS /lib/ld-linux-aarch64.so.1)
  set(CONVKIT_QEMU_LD_PREFIX "")
else()
  set(CONVKIT_QEMU_LD_PREFIX ${CONVKIT_ARM64_SYSROOT})
endif()
find_program(CONVKIT_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(CONVKIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${CONVKIT_QEMU_AARCH64})
  if(CONVKIT_QEMU_LD_PREFIX)
    list(APPEND CMAKE_CROSSCOMPILING_EMULATOR -L ${CONVKIT_QEMU_LD_PREFIX})
  endif()
endif()
