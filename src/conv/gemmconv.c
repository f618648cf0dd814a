#include "gemmconv.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int ck_gc_budget_shift = 0;

void ck_gc_roles_init(const ck_kernels *kern, int pix_is_b, ck_gc_roles *r) {
  r->pix_is_b = pix_is_b;
  r->pw = (size_t)(pix_is_b ? kern->nr : kern->mr);
  r->fw = (size_t)(pix_is_b ? kern->mr : kern->nr);
}

void ck_gc_filter_rows(const ck_conv_problem *pb, const float *oihw, int g, size_t m0, size_t mb,
                       ck_gc_k_order order, ck_tap_range taps, float *dst) {
  const size_t cg = (size_t)pb->cin_g, KH = (size_t)pb->d.kernel_height;
  const size_t KW = (size_t)pb->d.kernel_width, nkh = (size_t)taps.nkh, nkw = (size_t)taps.nkw;
  const size_t kdim = cg * nkh * nkw;
  for (size_t m = 0; m < mb; m++) {
    const float *f = oihw + ((size_t)g * (size_t)pb->cout_g + m0 + m) * cg * KH * KW;
    float *row = dst + m * kdim;
    for (size_t c = 0; c < cg; c++)
      for (size_t h = 0; h < nkh; h++)
        for (size_t w = 0; w < nkw; w++) {
          const size_t k = order == CK_GC_K_CHW ? (c * nkh + h) * nkw + w : (h * nkw + w) * cg + c;
          row[k] = f[(c * KH + (size_t)taps.kh0 + h) * KW + (size_t)taps.kw0 + w];
        }
  }
}

size_t ck_gc_filter_floats(const ck_gc_roles *r, size_t mb, size_t k) {
  size_t n;
  if (!ck_mul_size(ck_round_up(mb, r->fw), k, &n)) return 0;
  return n;
}

void ck_gc_pack_filter(const ck_kernels *kern, const ck_gc_roles *r, size_t mb, size_t k,
                       const float *rows, float *dst) {
  if (r->pix_is_b)
    ck_gemm_pack_a(kern, mb, k, rows, k, 1, dst);
  else
    ck_gemm_pack_b(kern, k, mb, rows, 1, k, dst);
}

static void make_problem(const ck_gc_roles *r, const ck_gc_tile *t, ck_gemm_problem *p) {
  const ck_gemm_operand filt = {.data = t->filt, .packed = 1};
  ck_gemm_operand pix = {.data = t->pix.data, .packed = t->pix.packed};
  *p = (ck_gemm_problem){.k = t->k,
                         .c = t->c,
                         .ldc = t->ldc,
                         .alpha = 1.0f,
                         .beta = t->beta,
                         .bias = t->bias,
                         .min = t->lo,
                         .max = t->hi};
  if (r->pix_is_b) {
    pix.row_stride = t->pix.row_stride;
    pix.col_stride = t->pix.col_stride;
    p->m = t->mb;
    p->n = t->np;
    p->a = filt;
    p->b = pix;
    p->bias_kind = t->bias ? CK_BIAS_PER_ROW : CK_BIAS_NONE;
  } else {
    /* plain pixels are described as B (k x np): transposed for the A role */
    pix.row_stride = t->pix.packed ? t->pix.row_stride : t->pix.col_stride;
    pix.col_stride = t->pix.packed ? 0 : t->pix.row_stride;
    p->m = t->np;
    p->n = t->mb;
    p->a = pix;
    p->b = filt;
    p->bias_kind = t->bias ? CK_BIAS_PER_COL : CK_BIAS_NONE;
  }
}

void ck_gc_gemm(const ck_kernels *kern, const ck_gc_roles *r, const ck_gc_tile *t, void *ws) {
  ck_gemm_problem p;
  make_problem(r, t, &p);
  ck_gemm_execute(kern, &p, 1, ws);
}

static size_t workspace_of(const ck_kernels *kern, const ck_gc_roles *r, size_t np, size_t mb,
                           size_t k, int pix_packed, int *ok) {
  /* Only the shape and which operands are packed matter to the engine's workspace; a plain
   * operand is described as a row-major matrix of that shape. */
  float dummy = 0.0f;
  const ck_gc_tile t = {
      .np = np,
      .mb = mb,
      .k = k,
      .pix = {.data = &dummy, .row_stride = np, .col_stride = 1, .packed = pix_packed},
      .filt = &dummy,
      .c = &dummy,
      .ldc = r->pix_is_b ? np : mb,
      .lo = -INFINITY,
      .hi = INFINITY};
  ck_gemm_problem p;
  make_problem(r, &t, &p);
  size_t bytes = 0;
  if (!ck_gemm_workspace_size(kern, &p, 1, &bytes)) {
    *ok = 0;
    return 0;
  }
  return bytes;
}

size_t ck_gc_gemm_workspace(const ck_kernels *kern, const ck_gc_roles *r, size_t np_full,
                            size_t np_last, size_t mb_full, size_t mb_last, size_t k,
                            int pix_packed, int *ok) {
  const size_t nps[2] = {np_full, np_last}, mbs[2] = {mb_full, mb_last};
  size_t most = 0;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      size_t b = workspace_of(kern, r, nps[i], mbs[j], k, pix_packed, ok);
      if (b > most) most = b;
    }
  return most;
}

size_t ck_gc_channel_block(size_t jobs, size_t mg, size_t fw, size_t min_block, int threads) {
  /* Four jobs per thread let dynamic scheduling even out tiles of unequal cost. */
  const size_t want = 4 * (size_t)threads;
  if (threads <= 1 || jobs >= want || mg <= fw) return mg;
  size_t split = ck_div_up(want, jobs > 0 ? jobs : 1);
  size_t mb = ck_round_up(ck_div_up(mg, split), fw);
  size_t floor_mb = ck_round_up(min_block > fw ? min_block : fw, fw);
  if (mb < floor_mb) mb = floor_mb;
  return mb < mg ? mb : mg;
}

size_t ck_gc_pixel_tile(size_t pixels, size_t floats_per_pixel, size_t budget, size_t pw,
                        size_t min_tile, size_t max_tile) {
  size_t all = ck_round_up(pixels, pw), t = floats_per_pixel > 0 ? budget / floats_per_pixel : all;
  max_tile = max_tile / pw * pw;
  if (max_tile < all) all = max_tile < pw ? pw : max_tile;
  t = t / pw * pw;
  if (t < min_tile) t = ck_round_up(min_tile, pw);
  if (t < pw) t = pw;
  return t < all ? t : all;
}

int ck_gc_region_add(size_t *region, size_t n) {
  return ck_ws_need(region, n);
}

int ck_gc_ws_total(size_t shared, size_t region, int threads, size_t *total) {
  size_t s = 0, per = 0;
  if (!ck_ws_need(&s, shared) || !ck_mul_size(region, (size_t)threads, &per) ||
      !ck_add_size(s, per, &s))
    return 0;
  if (!ck_ws_finish(&s)) return 0;
  *total = s;
  return 1;
}

unsigned char *ck_gc_ws_shared(void *ws) {
  if (ws == NULL) return NULL;
  uintptr_t p = (uintptr_t)ws;
  return (unsigned char *)((p + CK_ALIGNMENT - 1) & ~(uintptr_t)(CK_ALIGNMENT - 1));
}

unsigned char *ck_gc_ws_region(void *ws, size_t shared, size_t region, int t) {
  if (ws == NULL) return NULL;
  return ck_gc_ws_shared(ws) + ck_round_up(shared, CK_ALIGNMENT) + (size_t)t * region;
}

size_t ck_gc_floats_bytes(size_t n, int *ok) {
  return ck_gc_mul(n, sizeof(float), ok);
}

size_t ck_gc_mul(size_t a, size_t b, int *ok) {
  size_t r;
  if (!ck_mul_size(a, b, &r)) {
    *ok = 0;
    return 0;
  }
  return r;
}

ck_status ck_gc_dw_weights(const ck_conv_weights *w, size_t C, size_t T, int nchw, const char *algo,
                           float **taps_w, float **bias) {
  int ok = 1;
  const size_t bytes = ck_gc_floats_bytes(ck_gc_mul(T, C, &ok), &ok);
  if (!ok) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "%s: depthwise filter size overflows", algo);
  *taps_w = malloc(bytes);
  *bias = malloc(C * sizeof(float));
  if (*taps_w == NULL || *bias == NULL)
    return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the %s depthwise filter", algo);
  memcpy(*bias, w->bias, C * sizeof(float));
  for (size_t c = 0; c < C; c++) /* oihw of a depthwise filter is [C][1][KH][KW] */
    for (size_t t = 0; t < T; t++)
      (*taps_w)[nchw ? c * T + t : t * C + c] = w->filter_oihw[c * T + t];
  return CK_OK;
}
