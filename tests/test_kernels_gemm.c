/* Every ISA's packed-GEMM micro-kernel against the generic (reference) kernel, on full and edge
 * tiles: every mr <= MR and nr <= NR, kc = 1, odd kc, every epilogue. Buffers are allocated to
 * their exact sizes so the sanitizer build catches any read past a panel, a bias or C. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "gemm.h"
#include "kernels.h"

/* The tables this machine runs whose GEMM kernel exists (NEON on ARM, AVX2/AVX-512 on x86). */
static int tables(const ck_kernels **out) {
  ck_isa isas[8];
  int n = ckt_available_isas(isas, 8), count = 0;
  for (int i = 0; i < n; i++) {
    const ck_kernels *k = ck_kernels_for(isas[i]);
    if (k && k->gemm) out[count++] = k;
  }
  return count;
}

/* A packed panel of w interleaved rows from logical x (rows x kc, row-major); rows past `rows`
 * hold `pad` (the contract allows any finite value there). Exactly kc*w floats. */
static float *panel(const float *x, size_t rows, size_t kc, size_t w, float pad) {
  float *p = malloc(kc * w * sizeof(float));
  for (size_t k = 0; k < kc; k++)
    for (size_t i = 0; i < w; i++) p[k * w + i] = i < rows ? x[i * kc + k] : pad;
  return p;
}

typedef struct {
  float alpha, beta;
  int bias_row, bias_col;
  float min, max;
  int nan_c; /* C starts as NaN (with beta == 0 it must not show) */
} epi_case;

/* C (mr x nr, ldc) by the generic kernel, in its own 4x8 sub-tiles. */
static void generic_tile(size_t mr, size_t nr, size_t kc, const float *a, const float *bt, float *c,
                         size_t ldc, const ck_gemm_epilogue *ep) {
  const ck_kernels *g = ck_kernels_for(CK_ISA_GENERIC);
  const size_t gmr = (size_t)g->mr, gnr = (size_t)g->nr;
  for (size_t i = 0; i < mr; i += gmr)
    for (size_t j = 0; j < nr; j += gnr) {
      size_t h = mr - i < gmr ? mr - i : gmr, w = nr - j < gnr ? nr - j : gnr;
      float *ap = panel(a + i * kc, h, kc, gmr, 0), *bp = panel(bt + j * kc, w, kc, gnr, 0);
      ck_gemm_epilogue e = *ep;
      if (e.bias_row) e.bias_row += i;
      if (e.bias_col) e.bias_col += j;
      g->gemm(h, w, kc, ap, bp, c + i * ldc + j, ldc, &e);
      free(ap);
      free(bp);
    }
}

/* One tile: returns 0 or writes a sentence. a is mr x kc, bt is B transposed (nr x kc). */
static int check_tile(const ck_kernels *kern, size_t mr, size_t nr, size_t kc, const epi_case *ec,
                      uint64_t *st, char *msg, size_t len) {
  const size_t MR = (size_t)kern->mr, NR = (size_t)kern->nr, ldc = nr + 5;
  float *a = malloc(mr * kc * sizeof(float)), *bt = malloc(nr * kc * sizeof(float));
  ckt_fill(a, mr * kc, st);
  ckt_fill(bt, nr * kc, st);
  if (ec->min == 0.0f && mr > 1) a[kc] = NAN; /* a NaN row must survive the clamp */
  float *ap = panel(a, mr, kc, MR, 0.75f), *bp = panel(bt, nr, kc, NR, -0.5f);
  float *brow = malloc(mr * sizeof(float)), *bcol = malloc(nr * sizeof(float));
  ckt_fill(brow, mr, st);
  ckt_fill(bcol, nr, st);
  /* C is allocated to end at the tile's last element (no slack for an over-read) */
  const size_t c_len = (mr - 1) * ldc + nr;
  float *c = malloc(c_len * sizeof(float)), *want = malloc(c_len * sizeof(float));
  ckt_fill(c, c_len, st);
  for (size_t i = 0; i < mr; i++)
    for (size_t j = 0; j < nr; j++)
      if (ec->nan_c) c[i * ldc + j] = NAN;
  memcpy(want, c, c_len * sizeof(float));
  ck_gemm_epilogue ep = {
      ec->alpha, ec->beta, ec->bias_row ? brow : NULL, ec->bias_col ? bcol : NULL,
      ec->min,   ec->max};
  generic_tile(mr, nr, kc, a, bt, want, ldc, &ep);
  kern->gemm(mr, nr, kc, ap, bp, c, ldc, &ep);
  int bad = 0;
  for (size_t x = 0; x < c_len && !bad; x++) {
    size_t i = x / ldc, j = x % ldc;
    if (j >= nr) { /* between rows: must be untouched */
      if (memcmp(&c[x], &want[x], sizeof(float)) != 0) {
        snprintf(msg, len, "C(%zu,%zu) is outside the %zu x %zu tile but was written", i, j, mr,
                 nr);
        bad = 1;
      }
      continue;
    }
    double mag = 0;
    for (size_t k = 0; k < kc; k++) mag += fabs((double)a[i * kc + k] * bt[j * kc + k]);
    /* |beta * c| <= 2 and the two biases <= 2 */
    double tol = (double)(kc + 4) * FLT_EPSILON * (mag * fabs(ec->alpha) + 4.0);
    int same_nan = isnan(c[x]) && isnan(want[x]);
    if (!same_nan && !(fabs((double)c[x] - want[x]) <= tol)) {
      snprintf(msg, len, "C(%zu,%zu) = %.9g, generic kernel %.9g", i, j, c[x], want[x]);
      bad = 1;
    }
  }
  free(a), free(bt), free(ap), free(bp), free(brow), free(bcol), free(c), free(want);
  return bad;
}

Test(kernels_gemm, every_isa_matches_generic_on_full_and_edge_tiles) {
  const ck_kernels *tabs[8];
  int nt = tables(tabs);
  cr_assert(nt >= 1);
  static const epi_case epis[] = {
      {1, 0, 0, 0, -INFINITY, INFINITY, 1}, /* plain store, NaN in C ignored */
      {1, 1, 0, 0, -INFINITY, INFINITY, 0}, /* accumulate (a later KC block) */
      {-0.5f, 2, 1, 0, -INFINITY, INFINITY, 0},
      {1.5f, 0, 0, 1, 0, INFINITY, 0},  /* ReLU with column bias, NaN row */
      {1, 0.25f, 1, 1, -0.3f, 0.4f, 0}, /* clamp */
  };
  static const size_t kcs[] = {1, 2, 3, 17, 64, 257};
  uint64_t st = 2024;
  char msg[256];
  for (int t = 0; t < nt; t++) {
    const ck_kernels *k = tabs[t];
    int failures = 0;
    for (size_t mr = 1; mr <= (size_t)k->mr; mr++)
      for (size_t nr = 1; nr <= (size_t)k->nr; nr++)
        for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++) {
          /* all kc on full and edge rows/columns of each kind; the middle of the grid sees a
           * rotating subset, which keeps the suite fast */
          int corner = mr == 1 || nr == 1 || mr == (size_t)k->mr || nr == (size_t)k->nr;
          if (!corner && (mr + nr + ki) % 5 != 0) continue;
          const epi_case *ec = &epis[(mr * 7 + nr * 3 + ki) % (sizeof epis / sizeof epis[0])];
          if (check_tile(k, mr, nr, kcs[ki], ec, &st, msg, sizeof msg) && failures++ < 5)
            cr_expect(0, "%s: mr %zu nr %zu kc %zu alpha %g beta %g: %s", k->gemm_name, mr, nr,
                      kcs[ki], ec->alpha, ec->beta, msg);
        }
    cr_expect_eq(failures, 0, "%s: %d failing tiles", k->gemm_name, failures);
  }
}

Test(kernels_gemm, every_epilogue_on_full_tiles) {
  const ck_kernels *tabs[8];
  int nt = tables(tabs);
  static const epi_case epis[] = {
      {1, 0, 0, 0, -INFINITY, INFINITY, 1},  {1, 1, 0, 0, -INFINITY, INFINITY, 0},
      {2, -1, 1, 0, -INFINITY, INFINITY, 0}, {1, 0, 0, 1, -INFINITY, INFINITY, 0},
      {1, 0, 1, 1, 0, INFINITY, 1},          {0.5f, 0.5f, 0, 0, -0.1f, 0.1f, 0},
  };
  uint64_t st = 5;
  char msg[256];
  for (int t = 0; t < nt; t++)
    for (size_t e = 0; e < sizeof epis / sizeof epis[0]; e++)
      for (size_t kc = 1; kc <= 9; kc += 4) {
        const ck_kernels *k = tabs[t];
        size_t mr = (size_t)k->mr, nr = (size_t)k->nr;
        cr_expect(!check_tile(k, mr, nr, kc, &epis[e], &st, msg, sizeof msg),
                  "%s: epilogue %zu, kc %zu: %s", k->gemm_name, e, kc, msg);
        cr_expect(!check_tile(k, mr - 1 ? mr - 1 : 1, nr - 1 ? nr - 1 : 1, kc, &epis[e], &st, msg,
                              sizeof msg),
                  "%s: epilogue %zu, kc %zu (edge): %s", k->gemm_name, e, kc, msg);
      }
}

/* The ISA transposing packers give exactly the generic packer's bits, for every row count up to
 * the panel widths the engine uses (MR for A, NR for transposed B), and kc tails of every kind;
 * the source ends exactly at its last element, so an over-read shows under the sanitizers. */
Test(kernels_gemm, transposing_pack_matches_generic) {
  const ck_kernels *tabs[8];
  int nt = tables(tabs);
  static const size_t kcs[] = {1, 3, 8, 16, 17, 40};
  uint64_t st = 77;
  for (int t = 0; t < nt; t++) {
    ck_gemm_packt_fn f = tabs[t]->gemm_packt;
    const size_t widths[2] = {(size_t)tabs[t]->mr, (size_t)tabs[t]->nr};
    for (int wi = 0; wi < 2; wi++)
      for (size_t h = 1; h <= widths[wi]; h++)
        for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++) {
          const size_t w = widths[wi], kc = kcs[ki], rs = kc + 3;
          const size_t src_len = (h - 1) * rs + kc;
          float *src = malloc(src_len * sizeof(float));
          float *got = malloc(kc * w * sizeof(float)), *want = malloc(kc * w * sizeof(float));
          ckt_fill(src, src_len, &st);
          for (size_t i = 0; i < kc * w; i++) got[i] = want[i] = NAN; /* all must be written */
          f(h, w, kc, src, rs, got);
          ck_f32_gemm_packt__generic(h, w, kc, src, rs, want);
          cr_expect(memcmp(got, want, kc * w * sizeof(float)) == 0,
                    "%s packt: h %zu, w %zu, kc %zu differs from generic", tabs[t]->name, h, w, kc);
          free(src), free(got), free(want);
        }
  }
}

/* A direct kernel gives the bits of its table's packed kernel on the same tile (the engine relies
 * on it), reading A and B in place: the buffers end exactly at their last element read. */
Test(kernels_gemm, direct_kernel_matches_packed_kernel_bits) {
  const ck_kernels *tabs[8];
  int nt = tables(tabs);
  static const size_t kcs[] = {1, 2, 7, 64, 129};
  uint64_t st = 909;
  for (int t = 0; t < nt; t++) {
    const ck_kernels *k = tabs[t];
    ck_gemm_direct_fn direct = k->gemm_direct;
    if (direct == NULL) continue;
    const size_t MR = (size_t)k->mr, NR = (size_t)k->nr;
    for (size_t mr = 1; mr <= MR; mr++)
      for (size_t nr = 1; nr <= NR; nr++)
        for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++) {
          if ((mr * 31 + nr * 7 + ki) % 3 != 0 && mr != MR && nr != NR) continue;
          const size_t kc = kcs[ki], lda = kc + 2, ldb = nr + 3, ldc = nr + 1;
          const size_t a_len = (mr - 1) * lda + kc, b_len = (kc - 1) * ldb + nr;
          const size_t c_len = (mr - 1) * ldc + nr;
          float *a = malloc(a_len * sizeof(float)), *b = malloc(b_len * sizeof(float));
          float *c1 = malloc(c_len * sizeof(float)), *c2 = malloc(c_len * sizeof(float));
          float *bias = malloc(mr * sizeof(float));
          ckt_fill(a, a_len, &st);
          ckt_fill(b, b_len, &st);
          ckt_fill(c1, c_len, &st);
          ckt_fill(bias, mr, &st);
          memcpy(c2, c1, c_len * sizeof(float));
          float *ap = calloc(kc * MR, sizeof(float)), *bp = calloc(kc * NR, sizeof(float));
          for (size_t kk = 0; kk < kc; kk++) {
            for (size_t i = 0; i < mr; i++) ap[kk * MR + i] = a[i * lda + kk];
            for (size_t j = 0; j < nr; j++) bp[kk * NR + j] = b[kk * ldb + j];
          }
          const ck_gemm_epilogue ep = {
              -1.5f, ki % 2 ? 0.5f : 0.0f, ki % 3 ? bias : NULL, NULL, -0.75f, INFINITY};
          k->gemm(mr, nr, kc, ap, bp, c1, ldc, &ep);
          direct(mr, nr, kc, a, lda, b, ldb, c2, ldc, &ep);
          cr_expect(memcmp(c1, c2, c_len * sizeof(float)) == 0,
                    "%s: direct and packed kernels differ at mr %zu nr %zu kc %zu", k->gemm_name,
                    mr, nr, kc);
          free(a), free(b), free(c1), free(c2), free(bias), free(ap), free(bp);
        }
  }
}

/* The wide direct kernel (its own tile, e.g. 6 x 64) gives every element the bits of the table's
 * packed kernel, which the engine relies on when it picks one or the other by shape: every mr and
 * a spread of nr up to its bounds (full and edge tiles, one and several vectors, a lane mask),
 * kc = 1, odd and long, strided A, B and C, every epilogue kind. A, B, C and the biases end
 * exactly at their last element read, for the sanitizer build. */
Test(kernels_gemm, wide_direct_kernel_matches_packed_kernel_bits) {
  const ck_kernels *tabs[8];
  int nt = tables(tabs);
  static const size_t kcs[] = {1, 2, 7, 64, 129};
  uint64_t st = 4242;
  int tested = 0;
  for (int t = 0; t < nt; t++) {
    const ck_kernels *k = tabs[t];
    ck_gemm_direct_fn wide = k->gemm_direct_wide;
    if (wide == NULL) continue;
    const size_t WMR = (size_t)k->direct_wide_mr, WNR = (size_t)k->direct_wide_nr;
    const size_t MR = (size_t)k->mr, NR = (size_t)k->nr;
    for (size_t mr = 1; mr <= WMR; mr++)
      for (size_t nr = 1; nr <= WNR; nr++)
        for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++) {
          if ((mr * 13 + nr * 5 + ki) % 4 != 0 && nr % 16 != 0 && nr % 16 != 1) continue;
          const size_t kc = kcs[ki], lda = kc + 2, ldb = nr + 3, ldc = nr + 1;
          const size_t a_len = (mr - 1) * lda + kc, b_len = (kc - 1) * ldb + nr;
          const size_t c_len = (mr - 1) * ldc + nr;
          float *a = malloc(a_len * sizeof(float)), *b = malloc(b_len * sizeof(float));
          float *c1 = malloc(c_len * sizeof(float)), *c2 = malloc(c_len * sizeof(float));
          float *brow = malloc(mr * sizeof(float)), *bcol = malloc(nr * sizeof(float));
          ckt_fill(a, a_len, &st);
          ckt_fill(b, b_len, &st);
          ckt_fill(c1, c_len, &st);
          ckt_fill(brow, mr, &st);
          ckt_fill(bcol, nr, &st);
          memcpy(c2, c1, c_len * sizeof(float));
          const ck_gemm_epilogue eps[] = {
              {1.0f, 0.0f, NULL, NULL, -INFINITY, INFINITY},
              {1.0f, 1.0f, NULL, NULL, -INFINITY, INFINITY},
              {-1.5f, 0.5f, brow, NULL, -0.75f, INFINITY},
              {0.25f, 0.0f, NULL, bcol, -INFINITY, 0.5f},
          };
          const ck_gemm_epilogue *ep = &eps[(mr + nr + ki) % 4];
          /* the packed kernel, NR columns at a time, on panels of the same operands */
          float *ap = calloc(kc * MR, sizeof(float)), *bp = calloc(kc * NR, sizeof(float));
          for (size_t kk = 0; kk < kc; kk++)
            for (size_t i = 0; i < mr; i++) ap[kk * MR + i] = a[i * lda + kk];
          for (size_t j0 = 0; j0 < nr; j0 += NR) {
            const size_t w = nr - j0 < NR ? nr - j0 : NR;
            for (size_t kk = 0; kk < kc; kk++)
              for (size_t j = 0; j < NR; j++) bp[kk * NR + j] = j < w ? b[kk * ldb + j0 + j] : 0;
            ck_gemm_epilogue e = *ep;
            if (e.bias_col) e.bias_col += j0;
            k->gemm(mr, w, kc, ap, bp, c1 + j0, ldc, &e);
          }
          wide(mr, nr, kc, a, lda, b, ldb, c2, ldc, ep);
          cr_expect(memcmp(c1, c2, c_len * sizeof(float)) == 0,
                    "%s: wide direct and packed kernels differ at mr %zu nr %zu kc %zu",
                    k->gemm_name, mr, nr, kc);
          free(a), free(b), free(c1), free(c2), free(brow), free(bcol), free(ap), free(bp);
          tested++;
        }
  }
  (void)tested;
}

/* Full-height tiles for kc = 1..9 (every remainder of an unrolled k loop, with and without whole
 * groups) and every epilogue kind: the packed kernel gives the direct kernel's bits and the
 * prefetching kernel the packed kernel's; all three are tested against the generic kernel above. */
Test(kernels_gemm, full_tiles_every_k_remainder_same_bits_as_direct_kernel) {
  const ck_kernels *tabs[8];
  int nt = tables(tabs);
  uint64_t st = 77;
  for (int t = 0; t < nt; t++) {
    const ck_kernels *k = tabs[t];
    ck_gemm_direct_fn direct = k->gemm_direct;
    ck_gemm_prefetch_fn pfk = k->gemm_prefetch;
    if (direct == NULL) continue;
    const size_t MR = (size_t)k->mr, NR = (size_t)k->nr;
    const size_t nrs[] = {NR / 2 + 1, NR - 1, NR};
    for (size_t ni = 0; ni < 3; ni++)
      for (size_t kc = 1; kc <= 9; kc++) {
        const size_t mr = MR, nr = nrs[ni], ldc = nr + 2, c_len = (mr - 1) * ldc + nr;
        float *ap = malloc(kc * MR * sizeof(float)), *bp = malloc(kc * NR * sizeof(float));
        float *c1 = malloc(c_len * sizeof(float)), *c2 = malloc(c_len * sizeof(float));
        float *c3 = malloc(c_len * sizeof(float)), *bias = malloc(MR * sizeof(float));
        ckt_fill(ap, kc * MR, &st);
        ckt_fill(bp, kc * NR, &st);
        ckt_fill(c1, c_len, &st);
        ckt_fill(bias, MR, &st);
        memcpy(c2, c1, c_len * sizeof(float));
        memcpy(c3, c1, c_len * sizeof(float));
        const ck_gemm_epilogue eps[] = {
            {1.0f, 0.0f, NULL, NULL, -INFINITY, INFINITY}, /* first KC block */
            {1.0f, 1.0f, NULL, NULL, -INFINITY, INFINITY}, /* a later one */
            {-0.5f, 0.75f, kc % 2 ? bias : NULL, kc % 2 ? NULL : bias, -0.25f, 0.5f},
        };
        const ck_gemm_epilogue *ep = &eps[kc % 3];
        /* the packed panels as row-major operands: A rows MR floats apart in k, B rows NR apart */
        float *a = malloc(mr * kc * sizeof(float));
        for (size_t i = 0; i < mr; i++)
          for (size_t kk = 0; kk < kc; kk++) a[i * kc + kk] = ap[kk * MR + i];
        k->gemm(mr, nr, kc, ap, bp, c1, ldc, ep);
        direct(mr, nr, kc, a, kc, bp, NR, c2, ldc, ep);
        cr_expect(memcmp(c1, c2, c_len * sizeof(float)) == 0,
                  "%s: packed and direct kernels differ at nr %zu kc %zu", k->gemm_name, nr, kc);
        if (pfk && nr == NR) {
          static char region[4096];
          ck_gemm_prefetch pf = {region, 0, 256, 512, 5};
          pfk(mr, nr, kc, ap, bp, c3, ldc, ep, &pf);
          cr_expect(memcmp(c1, c3, c_len * sizeof(float)) == 0,
                    "%s: prefetching and packed kernels differ at kc %zu", k->gemm_name, kc);
          const size_t n = kc < 5 ? kc : 5; /* lines issued: 4 a row, rows 512 bytes apart */
          cr_expect(pf.left == 5 - n && pf.row == region + n / 4 * 512 && pf.off == n % 4 * 64,
                    "%s: stream at row %td off %zu left %zu after kc %zu", k->gemm_name,
                    pf.row - region, pf.off, pf.left, kc);
        }
        free(ap), free(bp), free(c1), free(c2), free(c3), free(bias), free(a);
      }
  }
}

/* The ISA row-panel packers give exactly the generic packer's bits for every column count up to a
 * few panels (full panels and every tail) and kc tails; the source ends exactly at its last
 * element, so an over-read shows under the sanitizers. */
Test(kernels_gemm, row_panel_pack_matches_generic) {
  const ck_kernels *tabs[8];
  int nt = tables(tabs);
  static const size_t kcs[] = {1, 3, 16, 17, 40};
  uint64_t st = 78;
  for (int t = 0; t < nt; t++) {
    ck_gemm_packn_fn f = tabs[t]->gemm_packn;
    if (f == NULL) continue;
    const size_t w = (size_t)tabs[t]->nr;
    for (size_t cols = 1; cols <= 3 * w; cols++)
      for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++) {
        const size_t kc = kcs[ki], rs = cols + 5, src_len = (kc - 1) * rs + cols;
        const size_t out = (cols + w - 1) / w * w * kc;
        float *src = malloc(src_len * sizeof(float));
        float *got = malloc(out * sizeof(float)), *want = malloc(out * sizeof(float));
        ckt_fill(src, src_len, &st);
        for (size_t i = 0; i < out; i++) got[i] = want[i] = NAN; /* all must be written */
        f(kc, cols, w, src, rs, got);
        ck_f32_gemm_packn__generic(kc, cols, w, src, rs, want);
        cr_expect(memcmp(got, want, out * sizeof(float)) == 0,
                  "%s packn: cols %zu, kc %zu differs from generic", tabs[t]->name, cols, kc);
        free(src), free(got), free(want);
      }
  }
  /* the generic packer itself, against a hand-worked 3-column case with w = 2: panels
   * [[1,2],[4,5]] and [[3,0],[6,0]] from rows {1,2,3} and {4,5,6} */
  const float src[] = {1, 2, 3, 9, 4, 5, 6};
  const float want[] = {1, 2, 4, 5, 3, 0, 6, 0};
  float got[8];
  ck_f32_gemm_packn__generic(2, 3, 2, src, 4, got);
  cr_expect(memcmp(got, want, sizeof want) == 0, "generic packn: wrong panels");
}

/* The prefetching kernel gives the bits of its table's kernel on full and edge tiles, and walks
 * its stream as documented: one line per k step while lines remain, rows row_bytes long and
 * stride apart, on full tiles; edge tiles leave the stream where it was. */
Test(kernels_gemm, prefetching_kernel_matches_kernel_bits_and_walks_its_stream) {
  const ck_kernels *tabs[8];
  int nt = tables(tabs);
  static const size_t kcs[] = {1, 2, 7, 64, 129};
  uint64_t st = 910;
  static char region[16384]; /* the 100 lines span 34 rows */
  for (int t = 0; t < nt; t++) {
    const ck_kernels *k = tabs[t];
    ck_gemm_prefetch_fn pfk = k->gemm_prefetch;
    if (pfk == NULL) continue;
    const size_t MR = (size_t)k->mr, NR = (size_t)k->nr;
    const size_t mrs[] = {1, MR - 1, MR}, nrs[] = {1, NR - 1, NR};
    for (size_t mi = 0; mi < 3; mi++)
      for (size_t ni = 0; ni < 3; ni++)
        for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++) {
          const size_t mr = mrs[mi], nr = nrs[ni], kc = kcs[ki], ldc = nr + 3;
          const size_t c_len = (mr - 1) * ldc + nr;
          float *ap = malloc(kc * MR * sizeof(float)), *bp = malloc(kc * NR * sizeof(float));
          float *c1 = malloc(c_len * sizeof(float)), *c2 = malloc(c_len * sizeof(float));
          float *bias = malloc(nr * sizeof(float));
          ckt_fill(ap, kc * MR, &st);
          ckt_fill(bp, kc * NR, &st);
          ckt_fill(c1, c_len, &st);
          ckt_fill(bias, nr, &st);
          memcpy(c2, c1, c_len * sizeof(float));
          const ck_gemm_epilogue ep = {
              0.5f, ki % 2 ? 1.0f : 0.0f, NULL, ki % 3 ? bias : NULL, -INFINITY, 0.25f};
          /* rows of 3 lines, 5 lines apart; 100 lines to give */
          ck_gemm_prefetch pf = {region, 64, 192, 320, 100};
          k->gemm(mr, nr, kc, ap, bp, c1, ldc, &ep);
          pfk(mr, nr, kc, ap, bp, c2, ldc, &ep, &pf);
          cr_expect(memcmp(c1, c2, c_len * sizeof(float)) == 0,
                    "%s: prefetching and plain kernels differ at mr %zu nr %zu kc %zu",
                    k->gemm_name, mr, nr, kc);
          if (mr == MR && nr == NR) {
            /* n = min(kc, 100) lines issued from line 1 of row 0: line index 1 + n, 3 a row */
            const size_t n = kc < 100 ? kc : 100, end = 1 + n;
            cr_expect(pf.left == 100 - n && pf.row == region + end / 3 * 320 &&
                          pf.off == end % 3 * 64,
                      "%s: stream at row %td off %zu left %zu after kc %zu", k->gemm_name,
                      pf.row - region, pf.off, pf.left, kc);
          } else {
            cr_expect(pf.left == 100 && pf.row == region && pf.off == 64,
                      "%s: an edge tile moved the stream", k->gemm_name);
          }
          free(ap), free(bp), free(c1), free(c2), free(bias);
        }
  }
}
