/* The planner: AUTO and CK_PLAN_MEASURE return plans whose results match the reference, never
 * the reference when another built algorithm fits, and honour workspace_limit from tiny limits
 * up; an explicit algorithm over the limit fails with both sizes in its sentence. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "conv/conv.h"
#include "planner.h"

static const ck_algo explicit_algos[] = {CK_ALGO_IM2COL, CK_ALGO_KN2ROW, CK_ALGO_KN2ROW_AA,
                                         CK_ALGO_MEC, CK_ALGO_INDIRECT};
#define N_EXPLICIT (sizeof explicit_algos / sizeof explicit_algos[0])

/* Non-zero when an algorithm other than the reference is built. */
static int others_built(void) {
  for (size_t i = 0; i < N_EXPLICIT; i++)
    if (ck_algo_lookup(explicit_algos[i]) != NULL) return 1;
  return 0;
}

/* The data of one descriptor: input, filter, bias, the reference output and the error scale
 * sum |x * w| + |bias| of every output. */
typedef struct {
  ck_conv_desc d;
  size_t nin, nout, nf;
  float *in, *f, *bias, *ref, *scale;
} problem;

static void problem_init(problem *P, const ck_conv_desc *d, uint64_t seed) {
  memset(P, 0, sizeof *P);
  P->d = *d;
  int oh, ow;
  cr_assert_eq(ck_conv_output_size(d, &oh, &ow), CK_OK, "%s", ck_last_error());
  const size_t M = (size_t)d->out_channels;
  P->nin = (size_t)d->batch * d->in_channels * d->in_height * d->in_width;
  P->nout = (size_t)d->batch * M * oh * ow;
  P->nf = M * (size_t)(d->in_channels / d->groups) * d->kernel_height * d->kernel_width;
  P->in = malloc(P->nin * sizeof(float));
  P->f = malloc(P->nf * sizeof(float));
  P->bias = malloc(M * sizeof(float));
  P->ref = malloc(P->nout * sizeof(float));
  P->scale = malloc(P->nout * sizeof(float));
  ckt_fill(P->in, P->nin, &seed);
  ckt_fill(P->f, P->nf, &seed);
  ckt_fill(P->bias, M, &seed);
  float *ia = malloc(P->nin * sizeof(float)), *fa = malloc(P->nf * sizeof(float));
  float *ba = malloc(M * sizeof(float));
  for (size_t i = 0; i < P->nin; i++) ia[i] = fabsf(P->in[i]);
  for (size_t i = 0; i < P->nf; i++) fa[i] = fabsf(P->f[i]);
  for (size_t i = 0; i < M; i++) ba[i] = fabsf(P->bias[i]);
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = CK_ALGO_REFERENCE;
  ck_conv_desc dabs = *d;
  dabs.activation = CK_ACTIVATION_NONE;
  ck_plan *rp = NULL, *sp = NULL;
  cr_assert_eq(ck_conv_plan_create(d, P->f, P->bias, &o, &rp), CK_OK, "%s", ck_last_error());
  cr_assert_eq(ck_conv_execute(rp, P->in, P->ref, NULL), CK_OK);
  cr_assert_eq(ck_conv_plan_create(&dabs, fa, ba, &o, &sp), CK_OK, "%s", ck_last_error());
  cr_assert_eq(ck_conv_execute(sp, ia, P->scale, NULL), CK_OK);
  ck_plan_destroy(rp);
  ck_plan_destroy(sp);
  free(ia), free(fa), free(ba);
}

static void problem_free(problem *P) {
  free(P->in), free(P->f), free(P->bias), free(P->ref), free(P->scale);
}

/* Runs plan p with a caller workspace of exactly its size (guarded) and compares the output with
 * the reference within (K + 2) * FLT_EPSILON * sum |x * w|. */
static void expect_matches_reference(const problem *P, const ck_plan *p, const char *what) {
  enum { GUARD = 16 };
  const size_t wsz = ck_plan_workspace_size(p);
  unsigned char *ws = malloc(wsz + 2 * GUARD);
  memset(ws, 0xA5, wsz + 2 * GUARD);
  float *out = malloc(P->nout * sizeof(float));
  cr_assert_eq(ck_conv_execute(p, P->in, out, ws + GUARD), CK_OK, "%s: %s", what, ck_last_error());
  for (size_t i = 0; i < GUARD; i++) {
    cr_assert_eq(ws[i], 0xA5, "%s: wrote before its workspace", what);
    cr_assert_eq(ws[GUARD + wsz + i], 0xA5, "%s: wrote past its workspace (%zu bytes)", what, wsz);
  }
  const double k =
      (double)(P->d.in_channels / P->d.groups) * P->d.kernel_height * P->d.kernel_width;
  for (size_t i = 0; i < P->nout; i++) {
    const double tol = (k + 2) * FLT_EPSILON * P->scale[i] + FLT_MIN;
    const double err = fabs((double)out[i] - (double)P->ref[i]);
    cr_assert(err <= tol, "%s (%s): output %zu is %.9g, reference %.9g (tolerance %.3g)", what,
              ck_algo_name(ck_plan_algo(p)), i, out[i], P->ref[i], tol);
  }
  free(ws);
  free(out);
}

static ck_plan *make_plan(const problem *P, const ck_plan_options *o, const char *what) {
  ck_plan *p = NULL;
  ck_status s = ck_conv_plan_create(&P->d, P->f, P->bias, o, &p);
  cr_assert_eq(s, CK_OK, "%s: %s: %s", what, ck_status_string(s), ck_last_error());
  cr_assert_str_empty(ck_last_error(), "%s: a successful plan leaves no sentence", what);
  return p;
}

/* Checks a plan made with AUTO (with o's flags and limit): matches the reference, fits the
 * limit, and is not the reference while another built algorithm fits. */
static void check_auto(const problem *P, const ck_plan_options *o, const char *what) {
  ck_plan *p = make_plan(P, o, what);
  const ck_algo a = ck_plan_algo(p);
  cr_assert(a != CK_ALGO_AUTO, "%s: the plan says AUTO", what);
  if (o->workspace_limit != 0)
    cr_assert(ck_plan_workspace_size(p) <= o->workspace_limit,
              "%s: %s needs %zu bytes, over the limit %zu", what, ck_algo_name(a),
              ck_plan_workspace_size(p), o->workspace_limit);
  if (a == CK_ALGO_REFERENCE) {
    /* Allowed only when no other built algorithm fits the limit. */
    for (size_t i = 0; i < N_EXPLICIT; i++) {
      if (ck_algo_lookup(explicit_algos[i]) == NULL) continue;
      ck_plan_options e = *o;
      e.algo = explicit_algos[i];
      e.flags = 0;
      ck_plan *q = NULL;
      ck_status s = ck_conv_plan_create(&P->d, P->f, P->bias, &e, &q);
      cr_assert_neq(s, CK_OK, "%s: chose the reference although %s fits (%zu bytes)", what,
                    ck_algo_name(explicit_algos[i]), ck_plan_workspace_size(q));
    }
  }
  expect_matches_reference(P, p, what);
  ck_plan_destroy(p);
}

Test(planner, auto_matches_reference_on_every_isa, .timeout = 600) {
  ck_isa isas[4];
  const int nisa = ckt_available_isas(isas, 4);
  char what[300];
  for (int i = 0; i < CKT_RANDOM_CASES; i++) {
    ck_conv_desc d;
    ckt_random_desc(i, &d);
    problem P;
    problem_init(&P, &d, 7 + (uint64_t)i);
    for (int j = 0; j < nisa; j++) {
      ck_plan_options o;
      ck_plan_options_init(&o);
      o.isa = isas[j];
      o.threads = 1 + (i + j) % 2;
      char desc[256];
      ckt_describe(&d, desc, sizeof desc);
      snprintf(what, sizeof what, "case %d %s, auto/%s", i, desc, ck_isa_name(isas[j]));
      ck_plan *p = make_plan(&P, &o, what);
      if (others_built())
        cr_assert_neq(ck_plan_algo(p), CK_ALGO_REFERENCE, "%s: AUTO chose the reference", what);
      ck_plan_destroy(p);
      check_auto(&P, &o, what);
    }
    problem_free(&P);
  }
}

Test(planner, measure_matches_reference, .timeout = 600) {
  char what[300];
  for (int i = 0; i < CKT_RANDOM_CASES; i += 3) {
    ck_conv_desc d;
    ckt_random_desc(i, &d);
    problem P;
    problem_init(&P, &d, 11 + (uint64_t)i);
    ck_plan_options o;
    ck_plan_options_init(&o);
    o.flags = CK_PLAN_MEASURE;
    o.threads = 1 + i % 2;
    char desc[256];
    ckt_describe(&d, desc, sizeof desc);
    snprintf(what, sizeof what, "case %d %s, measure", i, desc);
    check_auto(&P, &o, what);
    problem_free(&P);
  }
}

/* MEASURE with an explicit algorithm has nothing to choose: the plan runs that algorithm. */
Test(planner, measure_keeps_an_explicit_algorithm) {
  ck_conv_desc d;
  ckt_random_desc(5, &d);
  problem P;
  problem_init(&P, &d, 3);
  const ck_algo algos[] = {CK_ALGO_REFERENCE, CK_ALGO_IM2COL, CK_ALGO_KN2ROW,
                           CK_ALGO_KN2ROW_AA, CK_ALGO_MEC,    CK_ALGO_INDIRECT};
  for (size_t i = 0; i < sizeof algos / sizeof algos[0]; i++) {
    if (ck_algo_lookup(algos[i]) == NULL) continue;
    ck_plan_options o;
    ck_plan_options_init(&o);
    o.algo = algos[i];
    o.flags = CK_PLAN_MEASURE;
    ck_plan *p = make_plan(&P, &o, ck_algo_name(algos[i]));
    cr_expect_eq(ck_plan_algo(p), algos[i]);
    expect_matches_reference(&P, p, ck_algo_name(algos[i]));
    ck_plan_destroy(p);
  }
  problem_free(&P);
}

/* An explicit algorithm fits a limit of exactly its size and is refused one byte below, with
 * both sizes and its name in the sentence; limit 0 means no limit. */
Test(planner, explicit_algorithm_honours_the_limit, .timeout = 600) {
  char needle[64];
  for (int i = 0; i < CKT_RANDOM_CASES; i += 4) {
    ck_conv_desc d;
    ckt_random_desc(i, &d);
    problem P;
    problem_init(&P, &d, 5 + (uint64_t)i);
    for (size_t a = 0; a < N_EXPLICIT; a++) {
      if (ck_algo_lookup(explicit_algos[a]) == NULL) continue;
      const char *name = ck_algo_name(explicit_algos[a]);
      ck_plan_options o;
      ck_plan_options_init(&o);
      o.algo = explicit_algos[a];
      o.threads = 1 + i % 2;
      ck_plan *p = make_plan(&P, &o, name);
      const size_t need = ck_plan_workspace_size(p);
      ck_plan_destroy(p);

      o.workspace_limit = need > 0 ? need : 1;
      p = make_plan(&P, &o, name);
      cr_assert_eq(ck_plan_workspace_size(p), need, "case %d %s: size depends on the limit", i,
                   name);
      expect_matches_reference(&P, p, name);
      ck_plan_destroy(p);

      if (need > 1) {
        o.workspace_limit = need - 1;
        p = (ck_plan *)0x1;
        ck_status s = ck_conv_plan_create(&d, P.f, P.bias, &o, &p);
        cr_assert_eq(s, CK_ERROR_WORKSPACE_LIMIT, "case %d %s: limit %zu below %zu gave %s", i,
                     name, need - 1, need, ck_status_string(s));
        cr_assert_null(p);
        const char *why = ck_last_error();
        snprintf(needle, sizeof needle, "%zu", need);
        cr_assert(strstr(why, needle) != NULL, "\"%s\" lacks the size %s", why, needle);
        snprintf(needle, sizeof needle, "(%zu)", need - 1);
        cr_assert(strstr(why, needle) != NULL, "\"%s\" lacks the limit %s", why, needle);
        cr_assert(strstr(why, name) != NULL, "\"%s\" lacks the algorithm", why);
      }
    }
    problem_free(&P);
  }
}

/* AUTO (heuristic and measured) under limits from 1 byte upward, including each algorithm's
 * exact size and one byte less: the plan fits, is right, and the heuristic AUTO picks the first
 * candidate of the planner's order that fits. */
Test(planner, auto_honours_limits_from_zero_up, .timeout = 600) {
  char what[300];
  for (int i = 0; i < CKT_RANDOM_CASES; i += 6) {
    ck_conv_desc d;
    ckt_random_desc(i, &d);
    problem P;
    problem_init(&P, &d, 13 + (uint64_t)i);
    const int threads = 1 + i % 2;
    /* Each built algorithm's workspace without a limit. */
    size_t need[CK_ALGO_INDIRECT + 1] = {0};
    size_t limits[32];
    int nl = 0;
    limits[nl++] = 0; /* none */
    limits[nl++] = 1;
    limits[nl++] = 64;
    limits[nl++] = 4096;
    limits[nl++] = 1 << 20;
    for (size_t a = 0; a < N_EXPLICIT; a++) {
      if (ck_algo_lookup(explicit_algos[a]) == NULL) continue;
      ck_plan_options o;
      ck_plan_options_init(&o);
      o.algo = explicit_algos[a];
      o.threads = threads;
      ck_plan *p = make_plan(&P, &o, ck_algo_name(explicit_algos[a]));
      need[explicit_algos[a]] = ck_plan_workspace_size(p);
      ck_plan_destroy(p);
      if (need[explicit_algos[a]] > 1) {
        limits[nl++] = need[explicit_algos[a]];
        limits[nl++] = need[explicit_algos[a]] - 1;
      }
    }
    ck_conv_problem pb;
    cr_assert_eq(ck_conv_problem_init(&d, &pb), CK_OK);
    ck_algo order[CK_PLANNER_MAX_CANDIDATES];
    int contenders = 0;
    const int n = ck_planner_rank(&pb, ck_kernels_for(CK_ISA_AUTO), threads, order, &contenders);
    cr_assert(n >= 1 && order[n - 1] == CK_ALGO_REFERENCE, "the reference must come last");
    for (int l = 0; l < nl; l++) {
      for (int measure = 0; measure < 2; measure++) {
        ck_plan_options o;
        ck_plan_options_init(&o);
        o.threads = threads;
        o.workspace_limit = limits[l];
        o.flags = measure ? CK_PLAN_MEASURE : 0;
        snprintf(what, sizeof what, "case %d, %s, limit %zu", i, measure ? "measure" : "auto",
                 limits[l]);
        check_auto(&P, &o, what);
        if (measure) continue;
        ck_plan *p = make_plan(&P, &o, what);
        ck_algo expect = CK_ALGO_REFERENCE;
        for (int k = 0; k < n; k++)
          if (limits[l] == 0 || need[order[k]] <= limits[l]) {
            expect = order[k];
            break;
          }
        cr_assert_eq(ck_plan_algo(p), expect, "%s: chose %s, the first that fits is %s", what,
                     ck_algo_name(ck_plan_algo(p)), ck_algo_name(expect));
        ck_plan_destroy(p);
      }
    }
    problem_free(&P);
  }
}

/* The planner's order: built algorithms only, each once, the reference last. */
Test(planner, rank_lists_each_built_algorithm_once) {
  for (int i = 0; i < CKT_RANDOM_CASES; i++) {
    ck_conv_desc d;
    ckt_random_desc(i, &d);
    ck_conv_problem pb;
    cr_assert_eq(ck_conv_problem_init(&d, &pb), CK_OK);
    ck_algo order[CK_PLANNER_MAX_CANDIDATES];
    int contenders = 0;
    const int n = ck_planner_rank(&pb, ck_kernels_for(CK_ISA_AUTO), 1 + i % 2, order, &contenders);
    cr_assert(contenders >= 1 && contenders <= n, "case %d: %d contenders of %d", i, contenders, n);
    if (n > 1) cr_assert_neq(order[contenders - 1], CK_ALGO_REFERENCE, "case %d", i);
    int built = 1;
    for (size_t a = 0; a < N_EXPLICIT; a++) built += ck_algo_lookup(explicit_algos[a]) != NULL;
    cr_assert_eq(n, built, "case %d: %d candidates for %d built algorithms", i, n, built);
    cr_assert_eq(order[n - 1], CK_ALGO_REFERENCE);
    for (int j = 0; j < n; j++) {
      cr_assert_not_null(ck_algo_lookup(order[j]));
      for (int k = 0; k < j; k++) cr_assert_neq(order[j], order[k], "case %d: repeated", i);
    }
  }
}
