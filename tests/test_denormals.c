/* CK_PLAN_FLUSH_DENORMALS: every thread of the team flushes during execute (denormal operands
 * read as 0, denormal results become 0) and gets its own floating-point control bits back
 * afterwards; without the flag no thread's floating-point state is touched. Runs every built
 * algorithm on every ISA this machine has. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "conv/conv.h"
#include "fpenv.h"

/* ---- The per-thread control register, as the test sees it --------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define HAVE_CONTROL 1
#define FLUSH_BITS 0x8040u   /* MXCSR FTZ | DAZ */
#define CONTROL_MASK 0xffc0u /* everything but the sticky exception flags (bits 0-5) */
#define ROUND_TO_ZERO 0x6000u
#define FTZ_ONLY 0x8000u
#define DAZ_ONLY 0x0040u
static uint64_t get_control(void) {
  return _mm_getcsr() & CONTROL_MASK;
}
static void set_control(uint64_t v) {
  _mm_setcsr((unsigned)((_mm_getcsr() & ~CONTROL_MASK) | (v & CONTROL_MASK)));
}
#elif defined(__aarch64__)
#define HAVE_CONTROL 1
#define FLUSH_BITS (1u << 24)    /* FPCR FZ */
#define ROUND_TO_ZERO (3u << 22) /* FPCR RMode = RZ */
#define FTZ_ONLY (1u << 24)
#define DAZ_ONLY (1u << 24) /* aarch64 has one bit for both */
static uint64_t get_control(void) {
  uint64_t v;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
  return v;
}
static void set_control(uint64_t v) {
  __asm__ __volatile__("msr fpcr, %0" : : "r"(v));
}
#else
#define HAVE_CONTROL 0
#endif

#if HAVE_CONTROL

/* What each OS thread set for itself, so a check after execute compares every pool thread with
 * its own value whatever team number the runtime gives it. */
static _Thread_local uint64_t my_expected;
static _Thread_local int my_expected_set;

/* Whether the OpenMP runtime copies the master's control register into the workers at every
 * fork (LLVM libomp on x86 does; libgomp leaves each thread's own). Then a worker cannot keep a
 * value of its own across regions, and the tests give every thread the caller's value. */
static int runtime_copies_master_control(void) {
  const uint64_t before = get_control();
  set_control(before | FTZ_ONLY);
  const void *caller = &my_expected;
#pragma omp parallel num_threads(2)
  if (&my_expected != caller) set_control(before & ~(uint64_t)FTZ_ONLY);
  int copies = 0;
#pragma omp parallel num_threads(2) reduction(+ : copies)
  if (&my_expected != caller) copies += (get_control() & FTZ_ONLY) != 0;
  set_control(before);
  return copies > 0;
}

/* Gives the calling thread `base` (outside any region: libomp restores the master's register at
 * each join) and every other thread of a team of t its own value: base, plus FTZ only on odd
 * team numbers when the runtime lets workers keep their own, so caller and workers differ. */
static void set_team_controls(int t, uint64_t base) {
  const int copies = runtime_copies_master_control();
  set_control(base);
  my_expected = get_control();
  my_expected_set = 1;
  const void *caller = &my_expected;
#pragma omp parallel num_threads(t)
  if (&my_expected != caller) {
    set_control(base | (!copies && omp_get_thread_num() % 2 ? FTZ_ONLY : 0));
    my_expected = get_control();
    my_expected_set = 1;
  }
}

/* Number of threads of a team of t whose control differs from what they set themselves. A
 * thread the test did not set was created since (an algorithm that runs a smaller team makes
 * libgomp end the surplus pool threads, and a later team creates new ones): it inherited the
 * register of the calling thread that created it, so it must hold the caller's value. */
static int team_controls_changed(int t) {
  const uint64_t caller_value = my_expected;
  int changed = 0;
#pragma omp parallel num_threads(t) reduction(+ : changed)
  changed += get_control() != (my_expected_set ? my_expected : caller_value);
  return changed;
}

static void reset_team_controls(int t, uint64_t v) {
  set_control(v);
  my_expected_set = 0;
#pragma omp parallel num_threads(t)
  {
    set_control(v);
    my_expected_set = 0;
  }
}

/* ---- Convolutions that produce denormals -------------------------------------------------- */

/* 4 channels, 3x3 kernel, no padding: every output sums 36 products. 8 output channels and 2
 * images give the reference (static split over image x channel) work for both threads. */
static void denormal_desc(ck_conv_desc *d, ck_layout layout) {
  ck_conv_desc_init(d);
  d->batch = 2;
  d->in_channels = 4;
  d->in_height = d->in_width = 7;
  d->out_channels = 8;
  d->kernel_height = d->kernel_width = 3;
  d->layout = layout;
}

enum { N_IN = 2 * 4 * 7 * 7, N_F = 8 * 4 * 9, N_OUT = 2 * 8 * 5 * 5 };

/* Runs d with every input x and filter value w; returns the output in out. */
static void run(const ck_conv_desc *d, ck_algo algo, ck_isa isa, int threads, unsigned flags,
                int own_workspace, float x, float w, float *out) {
  static float in[N_IN], f[N_F];
  for (int i = 0; i < N_IN; i++) in[i] = x;
  for (int i = 0; i < N_F; i++) f[i] = w;
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = algo;
  o.isa = isa;
  o.threads = threads;
  o.flags = flags;
  ck_plan *p = NULL;
  cr_assert_eq(ck_conv_plan_create(d, f, NULL, &o, &p), CK_OK, "%s/%s: %s", ck_algo_name(algo),
               ck_isa_name(isa), ck_last_error());
  void *ws = own_workspace ? NULL : malloc(ck_plan_workspace_size(p) + 1);
  cr_assert_eq(ck_conv_execute(p, in, out, ws), CK_OK, "%s", ck_last_error());
  free(ws);
  ck_plan_destroy(p);
}

static const ck_algo all_algos[] = {CK_ALGO_REFERENCE, CK_ALGO_IM2COL, CK_ALGO_KN2ROW,
                                    CK_ALGO_KN2ROW_AA, CK_ALGO_MEC,    CK_ALGO_INDIRECT};
#define N_ALGOS (int)(sizeof all_algos / sizeof all_algos[0])

/* Denormal operands (DAZ): x = 1e-39 is denormal, w = 1; unflushed every output is 36e-39, a
 * normal number, so only reading the operands as 0 makes it 0. Denormal results (FTZ):
 * x = w = 1e-20; every product 1e-40 and the sum 3.6e-39 are denormal; flushing makes them 0. */
static const struct {
  const char *what;
  float x, w, unflushed;
} cases[] = {{"denormal operands", 1e-39f, 1.0f, 36 * 1e-39f},
             {"denormal results", 1e-20f, 1e-20f, 3.6e-39f}};

Test(denormals, flag_flushes_in_every_algorithm_isa_and_thread, .timeout = 300) {
  cr_assert(ck_fpenv_flush_supported());
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  static float out[N_OUT];
  for (int a = 0; a < N_ALGOS; a++) {
    if (ck_algo_lookup(all_algos[a]) == NULL) continue;
    for (int j = 0; j < nisa; j++)
      for (int c = 0; c < 2; c++)
        for (int threads = 1; threads <= 4; threads *= 2)
          for (int layout = 0; layout < 2; layout++) {
            ck_conv_desc d;
            denormal_desc(&d, (ck_layout)layout);
            const char *an = ck_algo_name(all_algos[a]), *in = ck_isa_name(isas[j]);
            /* Without the flag: IEEE gradual underflow, every output is the unflushed value. */
            run(&d, all_algos[a], isas[j], threads, 0, layout, cases[c].x, cases[c].w, out);
            for (int i = 0; i < N_OUT; i++)
              cr_assert(fabsf(out[i] - cases[c].unflushed) <= 1e-4f * cases[c].unflushed,
                        "%s/%s %s, %d threads, no flag: output %d is %g, expected %g", an, in,
                        cases[c].what, threads, i, out[i], cases[c].unflushed);
            /* With the flag: every output is exactly +0, whichever thread computed it. */
            run(&d, all_algos[a], isas[j], threads, CK_PLAN_FLUSH_DENORMALS, layout, cases[c].x,
                cases[c].w, out);
            for (int i = 0; i < N_OUT; i++)
              cr_assert(out[i] == 0.0f && !signbit(out[i]),
                        "%s/%s %s, %d threads, flag: output %d is %g, expected 0", an, in,
                        cases[c].what, threads, i, out[i]);
          }
  }
}

/* After a flagged execute every thread of the team has its own bits back (here the caller and
 * the workers start with different bits, and a non-default rounding mode that must survive). */
Test(denormals, flag_restores_every_threads_own_bits, .timeout = 120) {
  ck_conv_desc d;
  denormal_desc(&d, CK_LAYOUT_NCHW);
  static float out[N_OUT];
  const uint64_t base = get_control() & ~(uint64_t)FLUSH_BITS;
  const uint64_t starts[] = {base, base | DAZ_ONLY, base | ROUND_TO_ZERO};
  for (int a = 0; a < N_ALGOS; a++) {
    if (ck_algo_lookup(all_algos[a]) == NULL) continue;
    for (int s = 0; s < 3; s++)
      for (int threads = 1; threads <= 4; threads *= 2) {
        set_team_controls(threads, starts[s]);
        run(&d, all_algos[a], CK_ISA_AUTO, threads, CK_PLAN_FLUSH_DENORMALS, s % 2, 1.0f, 0.5f,
            out);
        int changed = team_controls_changed(threads);
        reset_team_controls(threads, base);
        cr_assert_eq(changed, 0,
                     "%s, %d threads, start 0x%llx: %d threads did not get their bits back",
                     ck_algo_name(all_algos[a]), threads, (unsigned long long)starts[s], changed);
      }
  }
}

/* Without the flag nothing is touched: a caller that set FTZ+DAZ itself keeps them, one that
 * has them clear keeps them clear, and so does every worker. */
Test(denormals, default_leaves_every_threads_state_alone, .timeout = 120) {
  ck_conv_desc d;
  denormal_desc(&d, CK_LAYOUT_NHWC);
  static float out[N_OUT];
  const uint64_t base = get_control() & ~(uint64_t)FLUSH_BITS;
  const uint64_t starts[] = {base, base | FLUSH_BITS, base | DAZ_ONLY, base | ROUND_TO_ZERO};
  for (int a = 0; a < N_ALGOS; a++) {
    if (ck_algo_lookup(all_algos[a]) == NULL) continue;
    for (int s = 0; s < 4; s++)
      for (int threads = 1; threads <= 4; threads *= 2) {
        set_team_controls(threads, starts[s]);
        run(&d, all_algos[a], CK_ISA_AUTO, threads, 0, s % 2, 1.0f, 0.5f, out);
        int changed = team_controls_changed(threads);
        reset_team_controls(threads, base);
        cr_assert_eq(changed, 0, "%s, %d threads, start 0x%llx: %d threads changed",
                     ck_algo_name(all_algos[a]), threads, (unsigned long long)starts[s], changed);
      }
  }
}

/* The mechanism itself: between begin and end every member of a team of the plan's size, and of
 * any smaller team (an algorithm may use fewer threads for a small problem), flushes; after end
 * none does. This is the property of the OpenMP runtime fpenv.h relies on, checked here. */
Test(denormals, every_worker_of_the_team_flushes) {
  for (int t = 1; t <= 6; t++) {
    const uint64_t before = get_control();
    reset_team_controls(t, before & ~(uint64_t)FLUSH_BITS);
    ck_fpenv_flush_begin(t);
    for (int sub = t; sub >= 1; sub = sub > 1 ? sub / 2 : 0) {
      int flushed = 0, members = 0;
#pragma omp parallel num_threads(sub) reduction(+ : flushed, members)
      {
        volatile float tiny = 1e-20f, denormal = 1e-39f;
        float product = tiny * tiny, sum = denormal + 0.0f;
        members++;
        flushed += product == 0.0f && sum == 0.0f && (get_control() & FLUSH_BITS) == FLUSH_BITS;
      }
      cr_expect_eq(flushed, members, "team of %d inside a flushing team of %d: %d of %d flush", sub,
                   t, flushed, members);
    }
    ck_fpenv_flush_end(t);
    int still = 0;
#pragma omp parallel num_threads(t) reduction(+ : still)
    still += (get_control() & FLUSH_BITS) != 0;
    cr_expect_eq(still, 0, "team of %d: %d threads still flush after end", t, still);
    set_control(before);
  }
}

/* Flagged and unflagged executions from 8 application threads at once: each gets what its own
 * plan asks for (no flushing leaks into a default plan's team, none is lost from a flagged one),
 * and every application thread ends with the bits it started with. */
typedef struct {
  const ck_plan *plan;
  const float *in;
  size_t nout, ws;
  int flush, bad_values, bad_state;
  float unflushed;
  pthread_barrier_t *start;
} mixed_job;

static void *mixed_worker(void *arg) {
  mixed_job *j = arg;
  float *out = malloc(j->nout * sizeof(float));
  void *ws = malloc(j->ws + 1);
  const uint64_t before = get_control();
  pthread_barrier_wait(j->start);
  for (int r = 0; r < 20; r++) {
    if (ck_conv_execute(j->plan, j->in, out, r % 2 ? NULL : ws) != CK_OK) j->bad_values++;
    for (size_t i = 0; i < j->nout; i++) {
      const float want = j->flush ? 0.0f : j->unflushed;
      if (!(fabsf(out[i] - want) <= 1e-4f * want)) j->bad_values++;
    }
    j->bad_state += get_control() != before;
  }
  free(ws);
  free(out);
  return NULL;
}

Test(denormals, flagged_and_default_plans_at_once_do_not_interfere, .timeout = 300) {
  ck_conv_desc d;
  denormal_desc(&d, CK_LAYOUT_NHWC);
  static float in[N_IN], f[N_F];
  for (int i = 0; i < N_IN; i++) in[i] = cases[1].x;
  for (int i = 0; i < N_F; i++) f[i] = cases[1].w;
  for (int a = 0; a < N_ALGOS; a++) {
    if (ck_algo_lookup(all_algos[a]) == NULL) continue;
    ck_plan *plans[2] = {NULL, NULL};
    for (int flush = 0; flush < 2; flush++) {
      ck_plan_options o;
      ck_plan_options_init(&o);
      o.algo = all_algos[a];
      o.threads = 2;
      o.flags = flush ? CK_PLAN_FLUSH_DENORMALS : 0;
      cr_assert_eq(ck_conv_plan_create(&d, f, NULL, &o, &plans[flush]), CK_OK, "%s",
                   ck_last_error());
    }
    enum { T = 8 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, T);
    pthread_t tid[T];
    mixed_job jobs[T];
    for (int t = 0; t < T; t++) {
      jobs[t] = (mixed_job){.plan = plans[t % 2],
                            .in = in,
                            .nout = N_OUT,
                            .ws = ck_plan_workspace_size(plans[t % 2]),
                            .flush = t % 2,
                            .unflushed = cases[1].unflushed,
                            .start = &start};
      cr_assert_eq(pthread_create(&tid[t], NULL, mixed_worker, &jobs[t]), 0);
    }
    for (int t = 0; t < T; t++) pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);
    for (int t = 0; t < T; t++) {
      cr_expect_eq(jobs[t].bad_values, 0, "%s, %s plan, thread %d: %d wrong outputs",
                   ck_algo_name(all_algos[a]), t % 2 ? "flushing" : "default", t,
                   jobs[t].bad_values);
      cr_expect_eq(jobs[t].bad_state, 0, "%s, thread %d: its own bits changed",
                   ck_algo_name(all_algos[a]), t);
    }
    ck_plan_destroy(plans[0]);
    ck_plan_destroy(plans[1]);
  }
}

#endif /* HAVE_CONTROL */

/* The flag is accepted exactly where flushing is possible; elsewhere plan creation refuses it
 * with a sentence naming it. */
Test(denormals, flag_accepted_where_supported) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = d.in_channels = d.out_channels = 1;
  d.in_height = d.in_width = 2;
  d.kernel_height = d.kernel_width = 1;
  const float f[1] = {1};
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.flags = CK_PLAN_FLUSH_DENORMALS;
  ck_plan *p = NULL;
  ck_status s = ck_conv_plan_create(&d, f, NULL, &o, &p);
  if (ck_fpenv_flush_supported()) {
    cr_expect_eq(s, CK_OK, "%s", ck_last_error());
  } else {
    cr_expect_eq(s, CK_ERROR_UNSUPPORTED);
    cr_expect(strstr(ck_last_error(), "CK_PLAN_FLUSH_DENORMALS") != NULL, "%s", ck_last_error());
  }
  ck_plan_destroy(p);
}
