/* Concurrency: one plan executed from 8 threads at once (each with its own workspace, and all on
 * the plan's own workspace, which serializes them), many plans created, executed and destroyed
 * at once, and thread-local error sentences. Every run must give the bits of a single run on its
 * own. Covers every built algorithm on every ISA this machine runs. Built with ThreadSanitizer
 * by tools/ci-integration.sh. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "conv/conv.h"

#define N_THREADS 8
#define REPEATS 3

static const ck_algo all_algos[] = {CK_ALGO_REFERENCE, CK_ALGO_IM2COL, CK_ALGO_KN2ROW,
                                    CK_ALGO_KN2ROW_AA, CK_ALGO_MEC,    CK_ALGO_INDIRECT};
#define N_ALGOS (int)(sizeof all_algos / sizeof all_algos[0])

/* Descriptors from the random generator: both layouts, groups, depthwise, strides, padding. */
static const int desc_ids[] = {1, 6, 8, 9, 14, 22, 27, 33};
#define N_DESCS (int)(sizeof desc_ids / sizeof desc_ids[0])

typedef struct {
  ck_conv_desc d;
  size_t nin, nf, nout;
  float *in, *f, *bias;
} data;

static void data_init(data *x, int id) {
  ckt_random_desc(id, &x->d);
  int oh, ow;
  cr_assert_eq(ck_conv_output_size(&x->d, &oh, &ow), CK_OK);
  const ck_conv_desc *d = &x->d;
  x->nin = (size_t)d->batch * d->in_channels * d->in_height * d->in_width;
  x->nf =
      (size_t)d->out_channels * (d->in_channels / d->groups) * d->kernel_height * d->kernel_width;
  x->nout = (size_t)d->batch * d->out_channels * oh * ow;
  x->in = malloc(x->nin * sizeof(float));
  x->f = malloc(x->nf * sizeof(float));
  x->bias = malloc((size_t)d->out_channels * sizeof(float));
  uint64_t s = 77 + (uint64_t)id;
  ckt_fill(x->in, x->nin, &s);
  ckt_fill(x->f, x->nf, &s);
  ckt_fill(x->bias, (size_t)d->out_channels, &s);
}

static void data_free(data *x) {
  free(x->in), free(x->f), free(x->bias);
}

static ck_plan *make_plan(const data *x, ck_algo algo, ck_isa isa, int threads) {
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = algo;
  o.isa = isa;
  o.threads = threads;
  ck_plan *p = NULL;
  ck_status st = ck_conv_plan_create(&x->d, x->f, x->bias, &o, &p);
  return st == CK_OK ? p : NULL;
}

/* ---- One plan, many threads --------------------------------------------------------------- */

typedef struct {
  const ck_plan *plan;
  const data *x;
  const float *want;
  int own_workspace; /* 1: pass NULL (the plan's own buffer) */
  pthread_barrier_t *start;
  int mismatches, failures;
} one_plan_job;

static void *one_plan_worker(void *arg) {
  one_plan_job *j = arg;
  float *out = malloc(j->x->nout * sizeof(float));
  void *ws = j->own_workspace ? NULL : malloc(ck_plan_workspace_size(j->plan) + 1);
  /* An odd offset: caller workspaces may be unaligned, and each thread's is its own. */
  void *ws_arg = ws == NULL ? NULL : (char *)ws + 1;
  pthread_barrier_wait(j->start);
  for (int r = 0; r < REPEATS; r++) {
    memset(out, 0xff, j->x->nout * sizeof(float));
    if (ck_conv_execute(j->plan, j->x->in, out, ws_arg) != CK_OK)
      j->failures++;
    else if (memcmp(out, j->want, j->x->nout * sizeof(float)) != 0)
      j->mismatches++;
  }
  free(ws);
  free(out);
  return NULL;
}

static void one_plan_from_many_threads(int own_workspace) {
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  int runs = 0;
  for (int a = 0; a < N_ALGOS; a++) {
    if (ck_algo_lookup(all_algos[a]) == NULL) continue;
    for (int j = 0; j < nisa; j++)
      for (int k = 0; k < N_DESCS; k += 2) {
        data x;
        data_init(&x, desc_ids[(k + j + a) % N_DESCS]);
        int plan_threads = 1 + (k / 2 + j) % 2;
        ck_plan *p = make_plan(&x, all_algos[a], isas[j], plan_threads);
        cr_assert_not_null(p, "%s/%s: %s", ck_algo_name(all_algos[a]), ck_isa_name(isas[j]),
                           ck_last_error());
        /* The single run every concurrent run must reproduce bit for bit. */
        float *want = malloc(x.nout * sizeof(float));
        void *ws = malloc(ck_plan_workspace_size(p) + 1);
        cr_assert_eq(ck_conv_execute(p, x.in, want, ws), CK_OK);
        free(ws);
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, N_THREADS);
        pthread_t tid[N_THREADS];
        one_plan_job jobs[N_THREADS];
        for (int t = 0; t < N_THREADS; t++) {
          jobs[t] = (one_plan_job){
              .plan = p, .x = &x, .want = want, .own_workspace = own_workspace, .start = &start};
          cr_assert_eq(pthread_create(&tid[t], NULL, one_plan_worker, &jobs[t]), 0);
        }
        for (int t = 0; t < N_THREADS; t++) pthread_join(tid[t], NULL);
        pthread_barrier_destroy(&start);
        char what[256];
        ckt_describe(&x.d, what, sizeof what);
        for (int t = 0; t < N_THREADS; t++) {
          cr_expect_eq(jobs[t].failures, 0, "%s/%s on %s: thread %d: execute failed",
                       ck_algo_name(all_algos[a]), ck_isa_name(isas[j]), what, t);
          cr_expect_eq(jobs[t].mismatches, 0,
                       "%s/%s on %s, plan threads %d, %s workspace: thread %d got other bits "
                       "in %d of %d runs",
                       ck_algo_name(all_algos[a]), ck_isa_name(isas[j]), what, plan_threads,
                       own_workspace ? "the plan's own" : "its own", t, jobs[t].mismatches,
                       REPEATS);
        }
        free(want);
        ck_plan_destroy(p);
        data_free(&x);
        runs++;
      }
  }
  cr_assert_gt(runs, 0);
}

Test(concurrency, one_plan_8_threads_each_with_its_own_workspace, .timeout = 600) {
  one_plan_from_many_threads(0);
}

Test(concurrency, one_plan_8_threads_on_the_plans_own_workspace, .timeout = 600) {
  one_plan_from_many_threads(1);
}

/* ---- Many plans at once ------------------------------------------------------------------- */

/* Every (algorithm, ISA, descriptor) combination, with the output of a single run. */
typedef struct {
  ck_algo algo;
  ck_isa isa;
  int desc;
  float *want;
} combo;

typedef struct {
  const combo *combos;
  int ncombos, first;
  const data *xs;
  pthread_barrier_t *start;
  int mismatches, failures;
  char first_failure[256];
} many_plans_job;

static void *many_plans_worker(void *arg) {
  many_plans_job *j = arg;
  pthread_barrier_wait(j->start);
  /* Each thread walks all combinations from its own starting point: plans of every algorithm
   * are created, run and destroyed at the same time as others. */
  for (int i = 0; i < j->ncombos; i++) {
    const combo *c = &j->combos[(j->first + i) % j->ncombos];
    const data *x = &j->xs[c->desc];
    ck_plan *p = make_plan(x, c->algo, c->isa, 1 + i % 2);
    float *out = malloc(x->nout * sizeof(float));
    void *ws = p == NULL ? NULL : malloc(ck_plan_workspace_size(p) + 1);
    if (p == NULL || ck_conv_execute(p, x->in, out, i % 3 == 0 ? NULL : ws) != CK_OK) {
      if (j->failures++ == 0)
        snprintf(j->first_failure, sizeof j->first_failure, "%s/%s desc %d: %s",
                 ck_algo_name(c->algo), ck_isa_name(c->isa), c->desc, ck_last_error());
    } else if (memcmp(out, c->want, x->nout * sizeof(float)) != 0) {
      if (j->mismatches++ == 0)
        snprintf(j->first_failure, sizeof j->first_failure, "%s/%s desc %d: other bits",
                 ck_algo_name(c->algo), ck_isa_name(c->isa), c->desc);
    }
    free(ws);
    free(out);
    ck_plan_destroy(p);
  }
  return NULL;
}

Test(concurrency, many_plans_created_run_and_destroyed_at_once, .timeout = 600) {
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  data xs[N_DESCS];
  for (int k = 0; k < N_DESCS; k++) data_init(&xs[k], desc_ids[k]);
  combo combos[N_ALGOS * 4 * N_DESCS];
  int n = 0;
  for (int a = 0; a < N_ALGOS; a++) {
    if (ck_algo_lookup(all_algos[a]) == NULL) continue;
    for (int j = 0; j < nisa; j++)
      for (int k = (a + j) % 2; k < N_DESCS; k += 2) {
        combo *c = &combos[n++];
        *c = (combo){.algo = all_algos[a], .isa = isas[j], .desc = k};
        c->want = malloc(xs[k].nout * sizeof(float));
        ck_plan *p = make_plan(&xs[k], c->algo, c->isa, 1);
        cr_assert_not_null(p, "%s", ck_last_error());
        cr_assert_eq(ck_conv_execute(p, xs[k].in, c->want, NULL), CK_OK);
        ck_plan_destroy(p);
      }
  }
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, N_THREADS);
  pthread_t tid[N_THREADS];
  many_plans_job jobs[N_THREADS];
  for (int t = 0; t < N_THREADS; t++) {
    jobs[t] = (many_plans_job){
        .combos = combos, .ncombos = n, .first = t * n / N_THREADS, .xs = xs, .start = &start};
    cr_assert_eq(pthread_create(&tid[t], NULL, many_plans_worker, &jobs[t]), 0);
  }
  for (int t = 0; t < N_THREADS; t++) pthread_join(tid[t], NULL);
  pthread_barrier_destroy(&start);
  for (int t = 0; t < N_THREADS; t++) {
    cr_expect_eq(jobs[t].failures, 0, "thread %d: %d failures, first: %s", t, jobs[t].failures,
                 jobs[t].first_failure);
    cr_expect_eq(jobs[t].mismatches, 0, "thread %d: %d of %d runs gave other bits, first: %s", t,
                 jobs[t].mismatches, n, jobs[t].first_failure);
  }
  for (int i = 0; i < n; i++) free(combos[i].want);
  for (int k = 0; k < N_DESCS; k++) data_free(&xs[k]);
}

/* ---- Error sentences are per thread ------------------------------------------------------- */

typedef struct {
  int value;
  pthread_barrier_t *start;
  int ok;
} error_job;

static void *error_worker(void *arg) {
  error_job *j = arg;
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = d.in_channels = d.out_channels = 1;
  d.in_height = d.in_width = d.kernel_height = d.kernel_width = 1;
  d.pad_left = -j->value; /* each thread's own bad value */
  const float f[1] = {1};
  char expect[64];
  snprintf(expect, sizeof expect, "pad_left (%d)", -j->value);
  pthread_barrier_wait(j->start);
  j->ok = 1;
  for (int r = 0; r < 200; r++) {
    ck_plan *p = NULL;
    if (ck_conv_plan_create(&d, f, NULL, NULL, &p) != CK_ERROR_INVALID_ARGUMENT ||
        strstr(ck_last_error(), expect) == NULL)
      j->ok = 0;
  }
  return NULL;
}

Test(concurrency, error_sentences_are_per_thread) {
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, N_THREADS);
  pthread_t tid[N_THREADS];
  error_job jobs[N_THREADS];
  for (int t = 0; t < N_THREADS; t++) {
    jobs[t] = (error_job){.value = t + 1, .start = &start};
    cr_assert_eq(pthread_create(&tid[t], NULL, error_worker, &jobs[t]), 0);
  }
  for (int t = 0; t < N_THREADS; t++) pthread_join(tid[t], NULL);
  pthread_barrier_destroy(&start);
  for (int t = 0; t < N_THREADS; t++)
    cr_expect(jobs[t].ok, "thread %d saw another thread's sentence or status", t);
}
