/* The runner of the Criterion stand-in (criterion/criterion.h here): runs every registered test
 * in this process, or those whose "suite::name" contains one of the arguments. Exit status 0
 * when every check passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "criterion/criterion.h"

#define MAX_TESTS 256

static struct {
  const char *suite, *name;
  ckshim_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static jmp_buf test_end;
static int failed_checks;

void ckshim_register(const char *suite, const char *name, ckshim_fn fn) {
  if (n_tests == MAX_TESTS) {
    fprintf(stderr, "criterion shim: more than %d tests\n", MAX_TESTS);
    exit(2);
  }
  tests[n_tests].suite = suite;
  tests[n_tests].name = name;
  tests[n_tests].fn = fn;
  n_tests++;
}

void ckshim_check(int ok, int fatal, const char *file, int line, const char *expr, const char *fmt,
                  ...) {
  if (ok) return;
  failed_checks++;
  fprintf(stderr, "[----] %s:%d: %s failed: %s\n", file, line, fatal ? "assertion" : "check", expr);
  if (fmt[0] != '\0') {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[----]   ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
  }
  if (fatal) longjmp(test_end, 1);
}

static int selected(int i, int argc, char **argv) {
  char full[256];
  snprintf(full, sizeof full, "%s::%s", tests[i].suite, tests[i].name);
  int any = 0;
  for (int a = 1; a < argc; a++) {
    if (argv[a][0] == '-') continue; /* Criterion options such as --jobs are ignored */
    any = 1;
    if (strstr(full, argv[a]) != NULL) return 1;
  }
  return !any;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  for (int i = 0; i < n_tests; i++) {
    if (!selected(i, argc, argv)) continue;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int before = failed_checks;
    if (setjmp(test_end) == 0) tests[i].fn();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    int ok = failed_checks == before;
    printf("[%s] %s::%s (%.2fs)\n", ok ? "PASS" : "FAIL", tests[i].suite, tests[i].name, s);
    fflush(stdout);
    ok ? passed++ : failed++;
  }
  printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n", passed + failed, passed,
         failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
