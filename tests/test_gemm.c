/* The packed GEMM engine and ck_sgemm against a naive triple loop in double precision. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "convkit.h"
#include "gemm.h"
#include "internal.h"

/* ---- Reference and comparison ------------------------------------------------------------- */

/* One reference product: op(A) (m x k, element (i, p) at a[i*ars + p*acs]) times op(B).
 * Stores in ref the exact-ish result and in bound the rigorous float error bound of each output:
 * (k + 4) * eps * (|alpha| * sum |a*b| + |beta*c| + |bias|). */
typedef struct {
  size_t m, n, k;
  const float *a, *b;
  size_t ars, acs, brs, bcs;
  float alpha, beta;
  const float *c0; /* C before the call, ldc as for C */
  size_t ldc;
  const float *bias;
  ck_bias_kind bias_kind;
  float min, max;
} ref_problem;

static void reference(const ref_problem *r, double *ref, double *bound) {
  for (size_t i = 0; i < r->m; i++)
    for (size_t j = 0; j < r->n; j++) {
      double s = 0, sa = 0;
      for (size_t p = 0; p < r->k; p++) {
        double x = (double)r->a[i * r->ars + p * r->acs] * r->b[p * r->brs + j * r->bcs];
        s += x;
        sa += fabs(x);
      }
      double v = r->alpha * s, mag = fabs(r->alpha) * sa;
      if (r->beta != 0.0f) {
        v += (double)r->beta * r->c0[i * r->ldc + j];
        mag += fabs((double)r->beta * r->c0[i * r->ldc + j]);
      }
      if (r->bias_kind != CK_BIAS_NONE) {
        double bv = r->bias[r->bias_kind == CK_BIAS_PER_ROW ? i : j];
        v += bv;
        mag += fabs(bv);
      }
      if (v < r->min) v = r->min;
      if (v > r->max) v = r->max;
      ref[i * r->n + j] = v;
      bound[i * r->n + j] = (double)(r->k + 4) * FLT_EPSILON * mag + 1e-30;
    }
}

/* Checks C (ldc) against the reference; also that the padding columns [n, ldc) kept `guard`. */
static int check_c(const ref_problem *r, const float *c, float guard, char *msg, size_t len) {
  double *ref = malloc(r->m * r->n * sizeof(double)), *bound = malloc(r->m * r->n * sizeof(double));
  reference(r, ref, bound);
  int bad = 0;
  for (size_t i = 0; i < r->m && !bad; i++) {
    for (size_t j = 0; j < r->n && !bad; j++) {
      double got = c[i * r->ldc + j], want = ref[i * r->n + j];
      if (!(fabs(got - want) <= bound[i * r->n + j])) {
        snprintf(msg, len, "C(%zu,%zu) = %.9g, expected %.9g (bound %.3g)", i, j, got, want,
                 bound[i * r->n + j]);
        bad = 1;
      }
    }
    for (size_t j = r->n; j < r->ldc && !bad; j++)
      if (memcmp(&c[i * r->ldc + j], &guard, sizeof guard) != 0) {
        snprintf(msg, len, "C(%zu,%zu) is past n = %zu but was written", i, j, r->n);
        bad = 1;
      }
  }
  free(ref);
  free(bound);
  return bad;
}

static float *random_floats(size_t n, uint64_t *st) {
  float *x = malloc((n ? n : 1) * sizeof(float));
  ckt_fill(x, n, st);
  return x;
}

/* ---- ck_sgemm ----------------------------------------------------------------------------- */

/* Runs ck_sgemm on random data with leading dimensions `pad` larger than needed and checks it. */
static void sgemm_case(int ta, int tb, int m, int n, int k, float alpha, float beta, int pad,
                       uint64_t *st) {
  const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
  const size_t a_len = (size_t)(ta ? k : m) * (size_t)lda;
  const size_t b_len = (size_t)(tb ? n : k) * (size_t)ldb;
  const size_t c_len = (size_t)m * (size_t)ldc;
  float *a = random_floats(a_len, st), *b = random_floats(b_len, st), *c = random_floats(c_len, st);
  float *c0 = malloc((c_len ? c_len : 1) * sizeof(float));
  const float guard = -777.0f;
  for (int i = 0; i < m; i++)
    for (int j = n; j < ldc; j++) c[(size_t)i * ldc + j] = guard;
  memcpy(c0, c, c_len * sizeof(float));
  ck_status s = ck_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  cr_assert_eq(s, CK_OK, "%s", ck_last_error());
  ref_problem r = {(size_t)m,
                   (size_t)n,
                   (size_t)k,
                   a,
                   b,
                   ta ? 1 : (size_t)lda,
                   ta ? (size_t)lda : 1,
                   tb ? 1 : (size_t)ldb,
                   tb ? (size_t)ldb : 1,
                   alpha,
                   beta,
                   c0,
                   (size_t)ldc,
                   NULL,
                   CK_BIAS_NONE,
                   -INFINITY,
                   INFINITY};
  char msg[256];
  int bad = check_c(&r, c, guard, msg, sizeof msg);
  cr_expect(!bad, "sgemm(%c%c, m %d, n %d, k %d, alpha %g, beta %g, pad %d): %s", ta ? 'T' : 'N',
            tb ? 'T' : 'N', m, n, k, alpha, beta, pad, msg);
  free(a);
  free(b);
  free(c);
  free(c0);
}

Test(sgemm, all_transposes_sizes_1_to_67) {
  uint64_t st = 42;
  static const float ab[][2] = {{1, 0}, {1, 1}, {-0.5f, 2}, {2.5f, -1}};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int s = 1; s <= 67; s++) {
        /* every size of 1..67 appears as m, n and k, in varied combinations */
        int m = s, n = (s * 7) % 67 + 1, k = (s * 13) % 67 + 1;
        const float *x = ab[(s + ta + 2 * tb) % 4];
        sgemm_case(ta, tb, m, n, k, x[0], x[1], s % 3 == 0 ? 0 : s % 5 + 1, &st);
        sgemm_case(ta, tb, k, m, n, x[0], x[1], 3, &st);
      }
}

Test(sgemm, large_sizes) {
  uint64_t st = 7;
  sgemm_case(0, 0, 300, 257, 520, 1, 0, 0, &st);
  sgemm_case(1, 0, 129, 1100, 70, -1, 0.5f, 5, &st);
  sgemm_case(0, 1, 517, 33, 700, 0.75f, 1, 1, &st);
  sgemm_case(1, 1, 64, 400, 1300, 1, 0, 16, &st);
}

Test(sgemm, beta_zero_ignores_nan_in_c) {
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}; /* A 2x3, B 3x2 */
  float c[4] = {NAN, NAN, NAN, NAN};
  cr_assert_eq(ck_sgemm(0, 0, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2), CK_OK, "%s", ck_last_error());
  /* [1 2 3; 4 5 6] * [1 0; 0 1; 1 1] = [4 5; 10 11] */
  const float expect[4] = {4, 5, 10, 11};
  for (int i = 0; i < 4; i++) cr_expect_eq(c[i], expect[i], "c[%d] = %g", i, c[i]);
}

Test(sgemm, k_zero_or_alpha_zero_scales_c) {
  float c[4] = {1, 2, 3, 4};
  cr_assert_eq(ck_sgemm(0, 0, 2, 2, 0, 1, NULL, 1, NULL, 2, 3, c, 2), CK_OK, "%s", ck_last_error());
  for (int i = 0; i < 4; i++) cr_expect_eq(c[i], 3.0f * (float)(i + 1));
  float a[4] = {NAN, 1, 1, 1}, b[4] = {1, 1, 1, INFINITY};
  cr_assert_eq(ck_sgemm(0, 0, 2, 2, 2, 0, a, 2, b, 2, 0.5f, c, 2), CK_OK, "%s", ck_last_error());
  for (int i = 0; i < 4; i++) cr_expect_eq(c[i], 1.5f * (float)(i + 1), "alpha 0 reads no A, B");
}

static void expect_sgemm_refused(ck_status got, const char *needle) {
  cr_expect_eq(got, CK_ERROR_INVALID_ARGUMENT, "expected CK_ERROR_INVALID_ARGUMENT, got %s",
               ck_status_string(got));
  cr_expect(strstr(ck_last_error(), needle) != NULL, "sentence \"%s\" lacks \"%s\"",
            ck_last_error(), needle);
}

Test(sgemm, validates_every_argument) {
  float a[16] = {0}, b[16] = {0}, c[16] = {0};
  expect_sgemm_refused(ck_sgemm(0, 0, -1, 2, 2, 1, a, 2, b, 2, 0, c, 2), "m (-1) must be >= 0");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, -3, 2, 1, a, 2, b, 2, 0, c, 2), "n (-3) must be >= 0");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, 2, -2, 1, a, 2, b, 2, 0, c, 2), "k (-2) must be >= 0");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2),
                       "lda (2) must be >= max(1, k) (3)");
  expect_sgemm_refused(ck_sgemm(1, 0, 4, 2, 3, 1, a, 3, b, 2, 0, c, 2),
                       "lda (3) must be >= max(1, m) (4)");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, 3, 2, 1, a, 2, b, 2, 0, c, 3),
                       "ldb (2) must be >= max(1, n) (3)");
  expect_sgemm_refused(ck_sgemm(0, 1, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2),
                       "ldb (2) must be >= max(1, k) (3)");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, 3, 2, 1, a, 2, b, 3, 0, c, 2),
                       "ldc (2) must be >= max(1, n) (3)");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 0), "ldc (0)");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, 2, 2, 1, NULL, 2, b, 2, 0, c, 2), "a is NULL");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, 2, 2, 1, a, 2, NULL, 2, 0, c, 2), "b is NULL");
  expect_sgemm_refused(ck_sgemm(0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, NULL, 2), "c is NULL");
  /* empty products touch nothing and need no pointers */
  cr_expect_eq(ck_sgemm(0, 0, 0, 5, 5, 1, NULL, 5, NULL, 5, 0, NULL, 5), CK_OK);
  cr_expect_eq(ck_sgemm(0, 0, 5, 0, 5, 1, NULL, 5, NULL, 1, 0, NULL, 1), CK_OK);
}

/* ---- The engine: pre-packed operands, epilogue, threads ----------------------------------- */

typedef struct {
  size_t m, n, k;
  int a_packed, b_packed, a_trans, b_trans;
  ck_bias_kind bias_kind;
  float alpha, beta, min, max;
} engine_case;

/* Runs one engine problem on kern with `threads` threads into c (ldc = n + 3) and checks it;
 * returns the result for bitwise comparisons (caller frees). */
static float *engine_run(const ck_kernels *kern, const engine_case *e, int threads, uint64_t seed) {
  uint64_t st = seed;
  const size_t ldc = e->n + 3;
  float *a = random_floats(e->m * e->k, &st), *b = random_floats(e->k * e->n, &st);
  float *c = random_floats(e->m * ldc, &st), *bias = random_floats(e->m + e->n, &st);
  float *c0 = malloc(e->m * ldc * sizeof(float) + 1);
  const float guard = 1234.5f;
  for (size_t i = 0; i < e->m; i++)
    for (size_t j = e->n; j < ldc; j++) c[i * ldc + j] = guard;
  memcpy(c0, c, e->m * ldc * sizeof(float));

  ck_gemm_problem p = {0};
  p.m = e->m, p.n = e->n, p.k = e->k;
  /* plain A is m x k (or stored k x m when a_trans), plain B k x n (or n x k) */
  size_t ars = e->a_trans ? 1 : e->k, acs = e->a_trans ? e->m : 1;
  size_t brs = e->b_trans ? 1 : e->n, bcs = e->b_trans ? e->k : 1;
  float *ap = NULL, *bp = NULL;
  if (e->a_packed) {
    ap = ck_aligned_alloc(ck_gemm_packed_a_floats(kern, e->m, e->k) * sizeof(float));
    ck_gemm_pack_a(kern, e->m, e->k, a, ars, acs, ap);
    p.a.data = ap, p.a.packed = 1;
  } else {
    p.a.data = a, p.a.row_stride = ars, p.a.col_stride = acs;
  }
  if (e->b_packed) {
    bp = ck_aligned_alloc(ck_gemm_packed_b_floats(kern, e->k, e->n) * sizeof(float));
    ck_gemm_pack_b(kern, e->k, e->n, b, brs, bcs, bp);
    p.b.data = bp, p.b.packed = 1;
  } else {
    p.b.data = b, p.b.row_stride = brs, p.b.col_stride = bcs;
  }
  p.c = c, p.ldc = ldc, p.alpha = e->alpha, p.beta = e->beta;
  p.bias_kind = e->bias_kind;
  p.bias = e->bias_kind == CK_BIAS_NONE ? NULL : bias;
  p.min = e->min, p.max = e->max;
  size_t bytes = 0;
  cr_assert(ck_gemm_workspace_size(kern, &p, threads, &bytes));
  /* an odd offset: caller workspaces may be unaligned */
  unsigned char *ws = malloc(bytes + 1);
  ck_gemm_execute(kern, &p, threads, bytes ? ws + 1 : NULL);

  ref_problem r = {e->m,     e->n,    e->k, a,   b,    ars,          acs,    brs,   bcs,
                   e->alpha, e->beta, c0,   ldc, bias, e->bias_kind, e->min, e->max};
  char msg[256];
  int bad = check_c(&r, c, guard, msg, sizeof msg);
  cr_expect(!bad,
            "%s: m %zu n %zu k %zu, A %s%s, B %s%s, bias %d, alpha %g beta %g, clamp [%g, %g], "
            "%d threads: %s",
            kern->name, e->m, e->n, e->k, e->a_packed ? "packed" : "plain", e->a_trans ? "^T" : "",
            e->b_packed ? "packed" : "plain", e->b_trans ? "^T" : "", (int)e->bias_kind, e->alpha,
            e->beta, e->min, e->max, threads, msg);
  free(ws);
  ck_aligned_free(ap);
  ck_aligned_free(bp);
  free(a);
  free(b);
  free(bias);
  free(c0);
  return c;
}

/* Every ISA table with a GEMM kernel. */
static int gemm_tables(const ck_kernels **out) {
  ck_isa isas[8];
  int n = ckt_available_isas(isas, 8), count = 0;
  for (int i = 0; i < n; i++) {
    const ck_kernels *k = ck_kernels_for(isas[i]);
    if (k && k->gemm) out[count++] = k;
  }
  return count;
}

Test(gemm_engine, packed_operands_bias_clamp_every_isa) {
  const ck_kernels *tabs[8];
  int nt = gemm_tables(tabs);
  cr_assert(nt >= 1, "the generic table has a GEMM kernel");
  /* k of 800 spans several KC blocks (alpha/beta on the first, bias/clamp on the last), m of 900
   * several MC blocks */
  static const size_t shapes[][3] = {{1, 1, 1},     {5, 7, 3},      {17, 33, 9},  {64, 64, 64},
                                     {70, 45, 300}, {129, 20, 257}, {3, 300, 41}, {200, 130, 1},
                                     {40, 70, 800}, {900, 50, 20}};
  uint64_t seed = 1;
  for (int t = 0; t < nt; t++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int v = 0; v < 8; v++) {
        engine_case e = {shapes[s][0], shapes[s][1], shapes[s][2],          v & 1, (v >> 1) & 1,
                         (v >> 2) & 1, (int)(s & 1), (ck_bias_kind)(v % 3), 1,     0,
                         -INFINITY,    INFINITY};
        if (v & 2) e.beta = 0.5f, e.alpha = -2;
        if (v >= 4) e.min = -0.25f, e.max = 0.5f;
        if (v == 7) e.max = INFINITY, e.min = 0; /* ReLU */
        free(engine_run(tabs[t], &e, 1 + (v & 1), seed++));
      }
}

Test(gemm_engine, identical_bits_for_1_and_2_threads) {
  const ck_kernels *tabs[8];
  int nt = gemm_tables(tabs);
  /* tall (many row blocks), wide (column chunks), several KC blocks, both operands plain or
   * pre-packed; 100 x 49 x 9000 plain takes the wide direct path (at most 64 columns) with its
   * own, longer KC blocks (several of them while L2 is at most 4 MiB) */
  static const size_t shapes[][3] = {{300, 200, 500}, {40, 1500, 300}, {1500, 40, 300},
                                     {33, 700, 900},  {500, 70, 90},   {100, 49, 9000}};
  for (int t = 0; t < nt; t++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int v = 0; v < 4; v += 3) {
        engine_case e = {
            shapes[s][0], shapes[s][1], shapes[s][2], v & 1, v >> 1, 0, 0, CK_BIAS_PER_ROW, 1, 0,
            -INFINITY,    INFINITY};
        float *c1 = engine_run(tabs[t], &e, 1, 99 + s);
        float *c2 = engine_run(tabs[t], &e, 2, 99 + s);
        cr_expect(memcmp(c1, c2, e.m * (e.n + 3) * sizeof(float)) == 0,
                  "%s: %zu x %zu x %zu (A %d, B %d packed): 1 and 2 threads differ", tabs[t]->name,
                  e.m, e.n, e.k, e.a_packed, e.b_packed);
        free(c1);
        free(c2);
      }
}

Test(gemm_engine, clamp_keeps_nan_and_beta_zero_ignores_c) {
  const ck_kernels *tabs[8];
  int nt = gemm_tables(tabs);
  for (int t = 0; t < nt; t++) {
    const ck_kernels *kern = tabs[t];
    /* A = [NaN 1; 1 1] (2 x 2), B = identity: row 0 of A*B holds NaN */
    float a[4] = {NAN, 1, 1, 1}, b[4] = {1, 0, 0, 1}, c[4] = {NAN, NAN, NAN, NAN};
    ck_gemm_problem p = {0};
    p.m = p.n = p.k = 2;
    p.a.data = a, p.a.row_stride = 2, p.a.col_stride = 1;
    p.b.data = b, p.b.row_stride = 2, p.b.col_stride = 1;
    p.c = c, p.ldc = 2, p.alpha = 1, p.beta = 0, p.min = 0, p.max = 0.5f;
    size_t bytes;
    cr_assert(ck_gemm_workspace_size(kern, &p, 1, &bytes));
    void *ws = malloc(bytes);
    ck_gemm_execute(kern, &p, 1, ws);
    free(ws);
    cr_expect(isnan(c[0]), "%s: NaN * 1 stays NaN through the clamp", kern->name);
    cr_expect_eq(c[2], 0.5f, "%s: 1 clamps to 0.5", kern->name);
    cr_expect_eq(c[3], 0.5f, "%s: 1 clamps to 0.5 (beta 0 ignored NaN in C)", kern->name);
  }
}

Test(gemm_engine, workspace_never_shrinks_when_sizes_grow) {
  const ck_kernels *tabs[8];
  int nt = gemm_tables(tabs);
  uint64_t st = 3;
  for (int t = 0; t < nt; t++)
    for (int i = 0; i < 2000; i++) {
      size_t d[3], e[3];
      for (int j = 0; j < 3; j++) {
        d[j] = (size_t)ckt_range(&st, 1, 3000);
        e[j] = d[j] + (size_t)ckt_range(&st, 0, 500);
      }
      const int plain_a = i & 1, plain_b = (i >> 1) & 1, threads = 1 + (i >> 2) % 3;
      ck_gemm_problem p = {0}, q;
      p.m = d[0], p.n = d[1], p.k = d[2], p.alpha = 1;
      p.a.packed = !plain_a, p.b.packed = !plain_b;
      q = p;
      q.m = e[0], q.n = e[1], q.k = e[2];
      size_t small = 0, big = 0, more_threads = 0;
      cr_assert(ck_gemm_workspace_size(tabs[t], &p, threads, &small));
      cr_assert(ck_gemm_workspace_size(tabs[t], &q, threads, &big));
      cr_assert(ck_gemm_workspace_size(tabs[t], &q, threads + 1, &more_threads));
      cr_expect(small <= big && big <= more_threads,
                "%s: %zu x %zu x %zu needs %zu bytes, %zu x %zu x %zu %zu, with a thread more %zu",
                tabs[t]->name, d[0], d[1], d[2], small, e[0], e[1], e[2], big, more_threads);
    }
}

/* Small problems take the direct path when both operands are plain; pre-packed operands force
 * the packed path. Both must give the same bits. */
Test(gemm_engine, direct_path_gives_packed_path_bits) {
  const ck_kernels *tabs[8];
  int nt = gemm_tables(tabs);
  static const size_t shapes[][3] = {{64, 64, 64}, {5, 100, 17}, {130, 31, 200}, {1, 1, 1}};
  for (int t = 0; t < nt; t++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      engine_case e = {
          shapes[s][0], shapes[s][1], shapes[s][2], 0, 0, 0, 0, CK_BIAS_PER_COL, 0.5f, 2, -1, 1};
      float *plain = engine_run(tabs[t], &e, 1, 5 + s);
      e.a_packed = e.b_packed = 1;
      float *packed = engine_run(tabs[t], &e, 1, 5 + s);
      cr_expect(memcmp(plain, packed, e.m * (e.n + 3) * sizeof(float)) == 0,
                "%s: %zu x %zu x %zu: plain and pre-packed operands differ", tabs[t]->name, e.m,
                e.n, e.k);
      free(plain);
      free(packed);
    }
}

/* A packed operand with a panel stride (row_stride) is a window of k rows out of a packed matrix
 * with more of them: rows [k0, k0 + k) of a packed A (m x K) times rows [k0, k0 + k) of a packed B
 * (K x n) must equal the plain product of those slices. */
Test(gemm_engine, packed_operand_windows_by_panel_stride) {
  const ck_kernels *tabs[8];
  int nt = gemm_tables(tabs);
  uint64_t st = 12;
  const size_t m = 37, n = 45, kbig = 90, k0 = 13, k = 50;
  for (int t = 0; t < nt; t++) {
    const ck_kernels *kern = tabs[t];
    const size_t mr = (size_t)kern->mr, nr = (size_t)kern->nr;
    float *a = random_floats(m * kbig, &st), *b = random_floats(kbig * n, &st);
    float *ap = ck_aligned_alloc(ck_gemm_packed_a_floats(kern, m, kbig) * sizeof(float));
    float *bp = ck_aligned_alloc(ck_gemm_packed_b_floats(kern, kbig, n) * sizeof(float));
    ck_gemm_pack_a(kern, m, kbig, a, kbig, 1, ap);
    ck_gemm_pack_b(kern, kbig, n, b, n, 1, bp);
    float *c = calloc(m * n, sizeof(float)), *c0 = calloc(m * n, sizeof(float));
    ck_gemm_problem p = {0};
    p.m = m, p.n = n, p.k = k;
    p.a = (ck_gemm_operand){ap + k0 * mr, mr * kbig, 0, 1};
    p.b = (ck_gemm_operand){bp + k0 * nr, nr * kbig, 0, 1};
    p.c = c, p.ldc = n, p.alpha = 1, p.beta = 0, p.min = -INFINITY, p.max = INFINITY;
    size_t bytes = 0;
    cr_assert(ck_gemm_workspace_size(kern, &p, 2, &bytes));
    void *ws = malloc(bytes + 1);
    ck_gemm_execute(kern, &p, 2, ws);
    ref_problem r = {m, n, k,  a + k0, b + k0 * n, kbig,         1,         n,       1,
                     1, 0, c0, n,      NULL,       CK_BIAS_NONE, -INFINITY, INFINITY};
    char msg[256];
    cr_expect(!check_c(&r, c, 0, msg, sizeof msg), "%s: %s", kern->name, msg);
    free(ws), free(a), free(b), free(c), free(c0);
    ck_aligned_free(ap);
    ck_aligned_free(bp);
  }
}
