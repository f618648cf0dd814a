/*
 * Lets Criterion's runner work under qemu-user: a guest-side execve that starts aarch64
 * programs through qemu-aarch64 (a user-space binfmt_misc), LD_PRELOADed into the test
 * executables of an emulated build only.
 *
 * Why: Criterion runs every test in a fresh worker process that BoxFort makes by re-executing
 * the test binary (execve of /proc/self/exe's path, argv[0] "boxfort-worker"). Under qemu-user
 * that execve reaches the host kernel, which cannot run an aarch64 ELF: without a binfmt_misc
 * registration (containers, CI) it fails with ENOEXEC and Criterion aborts with "Could not spawn
 * test instance: Protocol error"; with one, the worker depends on how the host registered qemu
 * (reported to hang in signal set-up with qemu 7.2's binfmt "F" handler). Here every aarch64
 * execve becomes `qemu-aarch64 -0 argv[0] path argv[1..]` with the same environment, so the
 * worker runs under the same emulator as its parent whatever the host has, and Criterion's own
 * runner (fork isolation, .timeout, crash reports, --jobs) runs the unmodified test sources.
 *
 * Environment (set by tests/CMakeLists.txt for CTest):
 *   CK_QEMU_AARCH64   host path of qemu-aarch64 (default /usr/bin/qemu-aarch64)
 *   QEMU_LD_PREFIX, QEMU_SET_ENV   read by every qemu, so workers get the same loader prefix,
 *                     LD_PRELOAD and LD_LIBRARY_PATH as the first process.
 * LD_PRELOAD and LD_LIBRARY_PATH name arm64 files, so they are removed from the environment of
 * the host qemu (its x86-64 loader would complain about them); QEMU_SET_ENV restores them in the
 * guest. Everything after fork uses async-signal-safe calls only (open, read, close, alloca,
 * execve): BoxFort may fork from a multithreaded process.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*execve_fn)(const char *, char *const[], char *const[]);

static execve_fn real_execve;

/* Resolved at load time, not after fork: dlsym may take the loader's lock. */
__attribute__((constructor)) static void ck_qemu_exec_init(void) {
  real_execve = (execve_fn)dlsym(RTLD_NEXT, "execve");
}

/* 1 when path is a 64-bit little-endian ELF for EM_AARCH64 (183). */
static int is_aarch64_elf(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  unsigned char h[20];
  ssize_t n = read(fd, h, sizeof h);
  close(fd);
  return n == (ssize_t)sizeof h && memcmp(h, "\177ELF", 4) == 0 && h[4] == 2 && h[5] == 1 &&
         h[18] == 183 && h[19] == 0;
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

int execve(const char *path, char *const argv[], char *const envp[]) {
  if (real_execve == NULL) {
    errno = ENOSYS;
    return -1;
  }
  if (!is_aarch64_elf(path)) return real_execve(path, argv, envp);
  const char *qemu = NULL;
  size_t nenv = 0, nargs = 0;
  for (; envp != NULL && envp[nenv] != NULL; nenv++)
    if (starts_with(envp[nenv], "CK_QEMU_AARCH64=")) qemu = envp[nenv] + strlen("CK_QEMU_AARCH64=");
  if (qemu == NULL || qemu[0] == '\0') qemu = "/usr/bin/qemu-aarch64";
  while (argv[nargs] != NULL) nargs++;

  /* qemu-aarch64 -0 <argv[0]> <path> <argv[1]> ... */
  char **qargv = alloca((nargs + 4) * sizeof *qargv);
  size_t a = 0;
  qargv[a++] = (char *)"qemu-aarch64";
  qargv[a++] = (char *)"-0";
  qargv[a++] = nargs > 0 ? argv[0] : (char *)path;
  qargv[a++] = (char *)path;
  for (size_t i = 1; i < nargs; i++) qargv[a++] = argv[i];
  qargv[a] = NULL;

  char **qenv = alloca((nenv + 1) * sizeof *qenv);
  size_t e = 0;
  for (size_t i = 0; i < nenv; i++)
    if (!starts_with(envp[i], "LD_PRELOAD=") && !starts_with(envp[i], "LD_LIBRARY_PATH="))
      qenv[e++] = envp[i];
  qenv[e] = NULL;
  return real_execve(qemu, qargv, qenv);
}
