/*
 * What the GEMM-based algorithms (im2col, kn2row, kn2row-aa, mec) share: which operand holds the
 * pixels, the packing of filters at plan time, one engine call on a tile, per-thread workspace
 * regions and the split of work into jobs.
 *
 * Operand roles. Output channels are one GEMM dimension, pixels the other:
 *   NCHW output: C[M x P] = W[M x K] * X[K x P]   filter = packed A (MR-channel panels),
 *                                                 pixels = B (NR-pixel panels), bias per row;
 *   NHWC output: C[P x M] = X[P x K] * W'[K x M]  pixels = A (MR-pixel panels),
 *                                                 filter = packed B (NR-channel panels), bias per
 *                                                 column.
 * Either way the output is written in place (unit column stride), so no algorithm transposes its
 * result for the caller's layout. The packed A and B layouts have the same shape (gemm.h), so one
 * lowering routine serves both with panel width pw.
 */
#ifndef CK_CONV_GEMMCONV_H
#define CK_CONV_GEMMCONV_H

#include <stddef.h>

#include "../gemm.h"
#include "conv.h"
#include "lower.h"

typedef struct {
  int pix_is_b; /* 1: pixels are the B operand (NCHW output) */
  size_t pw;    /* pixel panel width (NR or MR) */
  size_t fw;    /* filter panel width (MR or NR); channel blocks start at multiples of it */
} ck_gc_roles;

void ck_gc_roles_init(const ck_kernels *kern, int pix_is_b, ck_gc_roles *r);

/* Filter row orders for ck_gc_filter_rows: the inner dimension k of the filter operand, which
 * must match the lowering's (lower.h). */
typedef enum {
  CK_GC_K_CHW, /* (c, kh, kw): lowered from NCHW */
  CK_GC_K_HWC  /* (kh, kw, c): lowered from NHWC, and MEC */
} ck_gc_k_order;

/* dst[m*kdim + k] = the filter of group g, output channel m0+m < m0+mb, for the taps in `taps`
 * (kdim = cg*nkh*nkw) in order `order`. oihw: the canonical filter [M][cg][KH][KW]. */
void ck_gc_filter_rows(const ck_conv_problem *pb, const float *oihw, int g, size_t m0, size_t mb,
                       ck_gc_k_order order, ck_tap_range taps, float *dst);

/* Floats of a packed filter block of mb channels and inner dimension k (round_up(mb, fw) * k);
 * 0 on overflow. */
size_t ck_gc_filter_floats(const ck_gc_roles *r, size_t mb, size_t k);

/* Packs rows[mb x k] (row-major) as the filter operand. A block of channels starting at m (a
 * multiple of fw) is then the valid packed operand at dst + m*k. */
void ck_gc_pack_filter(const ck_kernels *kern, const ck_gc_roles *r, size_t mb, size_t k,
                       const float *rows, float *dst);

/* One GEMM on a tile of np pixels and mb channels with inner dimension k, on the calling thread.
 *   pix: the pixel operand, packed (from the lowering) or plain: element (pixel j, row k) at
 *        data[j*col_stride + k*row_stride] -- described as for the B operand (k x np); for the
 *        A role it is transposed here.
 *   filt: packed filter block (ck_gc_pack_filter).
 *   c, ldc: the output tile, pixels along columns (NCHW) or rows (NHWC).
 *   beta: 0 (c is written) or 1 (accumulated). bias: mb values or NULL. lo, hi: clamp. */
typedef struct {
  const float *data;
  size_t row_stride, col_stride; /* packed: row_stride is the panel stride, 0 for the layout's
                                    own (gemm.h) */
  int packed;
} ck_gc_pixels;

typedef struct {
  size_t np, mb, k;
  ck_gc_pixels pix;
  const float *filt;
  float *c;
  size_t ldc;
  float beta;
  const float *bias;
  float lo, hi;
} ck_gc_tile;

void ck_gc_gemm(const ck_kernels *kern, const ck_gc_roles *r, const ck_gc_tile *t, void *ws);

/* Engine workspace bytes (threads = 1) that covers every tile a job runs: np pixels is either
 * np_full or np_last, mb channels either mb_full or mb_last (the last tile and block may be
 * shorter). The engine's need is not monotone in the sizes (its blocks are balanced), so each
 * shape is asked. A packed pixel operand needs none; a plain one is packed by the engine.
 * 0 on overflow, with *ok cleared. */
size_t ck_gc_gemm_workspace(const ck_kernels *kern, const ck_gc_roles *r, size_t np_full,
                            size_t np_last, size_t mb_full, size_t mb_last, size_t k,
                            int pix_packed, int *ok);

/* Channel block size for splitting mg output channels so that `jobs` independent tiles become
 * enough jobs to keep `threads` busy under dynamic scheduling (several jobs per thread, so one
 * slow core does not hold the others). Blocks are multiples of fw and at least min_block
 * channels; with one thread, or jobs to spare, the whole mg. Splitting never changes results: a
 * channel's sum does not depend on which block computes it. */
size_t ck_gc_channel_block(size_t jobs, size_t mg, size_t fw, size_t min_block, int threads);

/* The working-set budgets of the algorithms (floats), divided by 2^ck_gc_budget_shift. The
 * shift is 0 in the library; tests raise it so that small problems take the tiled paths (several
 * tiles, bands and filter blocks) that only large layers reach otherwise. */
extern int ck_gc_budget_shift;
static inline size_t ck_gc_budget(size_t floats) {
  return floats >> ck_gc_budget_shift;
}

/* Pixel tile, a multiple of pw: the largest whose floats (tile * floats_per_pixel) fit `budget`,
 * raised to min_tile, then capped at max_tile (rounded down to pw) and at round_up(pixels, pw);
 * never below pw. */
size_t ck_gc_pixel_tile(size_t pixels, size_t floats_per_pixel, size_t budget, size_t pw,
                        size_t min_tile, size_t max_tile);

/* Floats of the lowered tiles im2col would hold for ctx's problem and thread count (im2col.c;
 * SIZE_MAX on overflow). MEC keeps its workspace a fraction of it. */
size_t ck_im2col_lowered_floats(const ck_conv_ctx *ctx);

/* Per-thread workspace regions: each thread gets `region` bytes (a multiple of CK_ALIGNMENT)
 * after the shared part. ck_gc_ws_total gives the bytes to request (0 when nothing is needed);
 * ck_gc_ws_region the region of thread t. Returns 0 on overflow. */
int ck_gc_ws_total(size_t shared, size_t region, int threads, size_t *total);
unsigned char *ck_gc_ws_shared(void *ws);
unsigned char *ck_gc_ws_region(void *ws, size_t shared, size_t region, int t);

/* Carves the next piece of n bytes (rounded up to CK_ALIGNMENT) out of a region. */
static inline void *ck_gc_carve(unsigned char **cursor, size_t n) {
  void *p = *cursor;
  if (p == NULL || n == 0) return p;
  *cursor += ck_round_up(n, CK_ALIGNMENT);
  return p;
}

/* Per-thread piece sizes: adds round_up(n, CK_ALIGNMENT) to *region; 0 on overflow. */
int ck_gc_region_add(size_t *region, size_t n);

/* n floats as bytes, overflow-checked (0 on overflow, with *ok cleared). */
size_t ck_gc_floats_bytes(size_t n, int *ok);

/* Product of sizes, overflow-checked (0 on overflow, with *ok cleared). */
size_t ck_gc_mul(size_t a, size_t b, int *ok);

/* The depthwise paths of the GEMM algorithms (groups == C == M): allocates *taps_w, the C x T
 * filter (T = kh*kw taps) as [C][T] for NCHW or [T][C] for NHWC, and *bias, a copy of the C
 * bias values. The caller frees both (also on failure, when either may be set). */
ck_status ck_gc_dw_weights(const ck_conv_weights *w, size_t C, size_t T, int nchw, const char *algo,
                           float **taps_w, float **bias);

#endif
