/* ck_parallel_for (src/parallel.h): every unit runs exactly once and its writes are visible to the
 * caller, for 1-4 threads and 0-100 units; a pool thread really takes units; pool threads compute
 * with the caller's rounding mode; calls from inside an OpenMP region, from many threads at once
 * (more callers than pools) and from a forked child all complete with every unit run once. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <fenv.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fpenv.h"
#include "parallel.h"

#if defined(__SANITIZE_THREAD__)
#define CKT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CKT_TSAN 1
#endif
#endif

#define MAX_UNITS 100

typedef struct {
  atomic_int runs[MAX_UNITS + 1];
  size_t value[MAX_UNITS + 1]; /* plain writes, read by the caller after the call */
} counts;

static void count_unit(void *arg, size_t u) {
  counts *c = arg;
  atomic_fetch_add(&c->runs[u], 1);
  c->value[u] = 3 * u + 1;
}

/* 0 when every unit below `units` ran once and wrote its value, and none past it ran. */
static int check_counts(counts *c, size_t units) {
  for (size_t u = 0; u <= MAX_UNITS; u++) {
    const int want = u < units ? 1 : 0;
    if (atomic_load(&c->runs[u]) != want) return 1;
    if (u < units && c->value[u] != 3 * u + 1) return 2;
  }
  return 0;
}

static void reset_counts(counts *c) {
  for (size_t u = 0; u <= MAX_UNITS; u++) {
    atomic_store(&c->runs[u], 0);
    c->value[u] = 0;
  }
}

Test(parallel, every_unit_runs_once_for_1_to_4_threads_and_0_to_100_units) {
  counts *c = malloc(sizeof *c);
  cr_assert_not_null(c);
  for (int threads = 1; threads <= 4; threads++)
    for (size_t units = 0; units <= MAX_UNITS; units++) {
      reset_counts(c);
      ck_parallel_for(threads, units, count_unit, c);
      const int bad = check_counts(c, units);
      cr_assert_eq(bad, 0, "%d threads, %zu units: %s", threads, units,
                   bad == 1 ? "a unit ran other than once" : "a unit's write is not visible");
    }
  free(c);
}

/* Unit 0 waits (up to 10 s) until unit 1 has started on another thread: with 2 threads and 2
 * units the caller takes unit 0 and a pool thread unit 1, so the wait ends at once. */
typedef struct {
  pthread_t caller;
  atomic_int started1, other_thread;
} pair_ctx;

static void pair_unit(void *arg, size_t u) {
  pair_ctx *p = arg;
  if (u == 1) {
    atomic_store(&p->other_thread, !pthread_equal(pthread_self(), p->caller));
    atomic_store(&p->started1, 1);
    return;
  }
  const struct timespec nap = {0, 1000 * 1000};
  for (int i = 0; i < 10000 && !atomic_load(&p->started1); i++) nanosleep(&nap, NULL);
}

Test(parallel, a_pool_thread_takes_units_while_the_caller_is_busy) {
  for (int rep = 0; rep < 3; rep++) {
    pair_ctx p = {.caller = pthread_self()};
    ck_parallel_for(2, 2, pair_unit, &p);
    cr_assert(atomic_load(&p.started1), "unit 1 did not run");
    cr_assert(atomic_load(&p.other_thread), "unit 1 ran on the caller's thread (repetition %d)",
              rep);
  }
}

/* Each unit divides 1 by 3 and records the bits and its thread's floating-point control. A unit
 * on the caller's thread waits (up to 10 s) until a unit has run on a pool thread, so a pool
 * thread takes part however late the loaded host schedules it (a fixed nap per unit was not
 * always long enough under load). */
typedef struct {
  float q[64];
  unsigned long long control[64];
  pthread_t thread[64];
  pthread_t caller;
  atomic_int pool_ran;
} fp_ctx;

static void fp_unit(void *arg, size_t u) {
  fp_ctx *f = arg;
  volatile float one = 1.0f, three = 3.0f;
  f->q[u] = one / three;
  f->control[u] = ck_fpenv_control();
  f->thread[u] = pthread_self();
  if (!pthread_equal(f->thread[u], f->caller)) {
    atomic_store(&f->pool_ran, 1);
    return;
  }
  const struct timespec nap = {0, 1000 * 1000};
  for (int i = 0; i < 10000 && !atomic_load(&f->pool_ran); i++) nanosleep(&nap, NULL);
}

Test(parallel, pool_threads_use_the_callers_rounding_mode) {
  const int modes[2] = {FE_UPWARD, FE_DOWNWARD};
  for (int m = 0; m < 2; m++) {
    fp_ctx *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->caller = pthread_self();
    const int saved = fegetround();
    cr_assert_eq(fesetround(modes[m]), 0);
    volatile float one = 1.0f, three = 3.0f;
    const float want = one / three;
    const unsigned long long control = ck_fpenv_control();
    ck_parallel_for(4, 64, fp_unit, f);
    fesetround(saved);
    int others = 0;
    for (int u = 0; u < 64; u++) {
      cr_assert(memcmp(&f->q[u], &want, sizeof want) == 0,
                "mode %d, unit %d: 1/3 is %a, the caller's %a", m, u, (double)f->q[u],
                (double)want);
      cr_assert_eq(f->control[u], control, "mode %d, unit %d: control %#llx, caller's %#llx", m, u,
                   f->control[u], control);
      others += !pthread_equal(f->thread[u], pthread_self());
    }
    cr_assert_gt(others, 0, "no unit of 64 ran on a pool thread");
    free(f);
  }
}

Test(parallel, calls_from_inside_an_openmp_region_complete) {
  counts *c = malloc(2 * sizeof *c);
  cr_assert_not_null(c);
  for (size_t units = 0; units <= MAX_UNITS; units += 7) {
    reset_counts(&c[0]);
    reset_counts(&c[1]);
    int team = 1;
#pragma omp parallel num_threads(2)
    {
      if (omp_get_thread_num() == 0) team = omp_get_num_threads();
      ck_parallel_for(2, units, count_unit, &c[omp_get_thread_num() % 2]);
    }
    for (int t = 0; t < team; t++)
      cr_assert_eq(check_counts(&c[t], units), 0, "region thread %d, %zu units", t, units);
  }
  free(c);
}

#define CALLERS 8

static void *caller_main(void *arg) {
  counts *c = arg;
  for (int rep = 0; rep < 40; rep++) {
    const size_t units = (size_t)(rep * 37 % (MAX_UNITS + 1));
    reset_counts(c);
    ck_parallel_for(1 + rep % 4, units, count_unit, c);
    if (check_counts(c, units) != 0) return c;
  }
  return NULL;
}

Test(parallel, more_concurrent_callers_than_pools) {
  counts *c = malloc(CALLERS * sizeof *c);
  cr_assert_not_null(c);
  pthread_t t[CALLERS];
  for (int i = 0; i < CALLERS; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, caller_main, &c[i]), 0);
  int failed = 0;
  for (int i = 0; i < CALLERS; i++) {
    void *r;
    pthread_join(t[i], &r);
    failed += r != NULL;
  }
  cr_assert_eq(failed, 0, "%d of %d callers saw a unit run other than once", failed, CALLERS);
  free(c);
}

#ifndef CKT_TSAN /* TSan does not support threads started in a child of a threaded process */
Test(parallel, a_forked_child_starts_its_own_pool) {
  /* qemu-user cannot start threads in a forked child of a threaded guest (its TCG asserts
   * "cpu == current_cpu"); the aarch64 suites run under it (CK_QEMU_AARCH64, tests/CMakeLists.txt).
   */
  if (getenv("CK_QEMU_AARCH64") != NULL) return;
  counts *c = malloc(sizeof *c);
  cr_assert_not_null(c);
  reset_counts(c);
  ck_parallel_for(2, MAX_UNITS, count_unit, c); /* the parent's pool exists */
  cr_assert_eq(check_counts(c, MAX_UNITS), 0);
  const pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    reset_counts(c);
    ck_parallel_for(2, MAX_UNITS, count_unit, c);
    _exit(check_counts(c, MAX_UNITS) == 0 ? 0 : 3);
  }
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  reset_counts(c);
  ck_parallel_for(2, MAX_UNITS, count_unit, c); /* and still works */
  cr_assert_eq(check_counts(c, MAX_UNITS), 0);
  free(c);
}
#endif
