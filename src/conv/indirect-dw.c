/*
 * The depthwise part of the indirect algorithm (groups == C == M): per-channel dwconv kernels
 * reading an indirection of their own, one kernel call per output row and channel tile.
 *
 * Taps are ordered column-major (t = kx*kh + ky). With dilation_width 1 that lets the pixels of
 * an output row share positions, XNNPACK style: the row holds the kh positions of each input
 * column its windows touch, pixel ox starts at column ox*stride_width, so the buffer has
 * kh*((ow-1)*stride_width + kw) positions per row instead of kh*kw*ow (a third for 3x3 at
 * stride 1). With dilation each pixel has its own kh*kw positions.
 */
#include <stdlib.h>
#include <string.h>

#include "indirect.h"

/* Work units per thread (see igemm.c). */
#define CK_DW_UNITS_PER_THREAD 8

static void build_dw_indirection(const ck_conv_problem *pb, const ck_indirect_dw *dw,
                                 uintptr_t base, const float *zero, const float **ind) {
  const ck_conv_desc *d = &pb->d;
  const long KH = d->kernel_height, KW = d->kernel_width;
  const size_t pixel_bytes = (size_t)d->in_channels * sizeof(float);
  for (long oy = 0; oy < pb->out_h; oy++) {
    const float **row = ind + (size_t)oy * dw->row_ptrs;
    /* Column x of the row's windows (shared layout), or tap kx of pixel x (own layout). */
    const long groups = d->dilation_width == 1 ? (long)(dw->row_ptrs / (size_t)KH) : pb->out_w * KW;
    for (long x = 0; x < groups; x++) {
      const long ix = d->dilation_width == 1
                          ? x - d->pad_left
                          : x / KW * d->stride_width - d->pad_left + x % KW * d->dilation_width;
      for (long ky = 0; ky < KH; ky++) {
        const long iy = oy * d->stride_height - d->pad_top + ky * d->dilation_height;
        const int inside = iy >= 0 && iy < d->in_height && ix >= 0 && ix < d->in_width;
        row[x * KH + ky] =
            inside ? ck_indirection_ptr(base, ((size_t)iy * d->in_width + (size_t)ix) * pixel_bytes)
                   : zero;
      }
    }
  }
}

ck_status ck_indirect_dw_setup(const ck_conv_ctx *ctx, const ck_conv_weights *w,
                               ck_indirect_state *s) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const ck_kernels *k = ctx->kern;
  const size_t C = (size_t)d->in_channels, KH = (size_t)d->kernel_height;
  const size_t KW = (size_t)d->kernel_width, ks = KH * KW, OW = (size_t)pb->out_w;
  const size_t image_bytes = (size_t)d->in_height * d->in_width * C * sizeof(float);
  ck_indirect_dw *dw = &s->dw;
  dw->cb = (size_t)k->dw_cb;
  dw->ks = ks;
  dw->kernel = ks == 9 && k->dwconv_3x3 != NULL    ? k->dwconv_3x3
               : ks == 25 && k->dwconv_5x5 != NULL ? k->dwconv_5x5
                                                   : k->dwconv_any;
  dw->clamp = (ck_clamp_params){pb->min, pb->max};
  size_t nptr, ptr_bytes;
  if (d->dilation_width == 1) {
    dw->row_ptrs = ((OW - 1) * (size_t)d->stride_width + KW) * KH;
    dw->pixel_stride = (size_t)d->stride_width * KH;
  } else {
    dw->row_ptrs = OW * ks;
    dw->pixel_stride = ks;
  }
  if (!ck_mul_size(dw->row_ptrs, (size_t)pb->out_h, &nptr) ||
      !ck_mul_size(nptr, sizeof(float *), &ptr_bytes))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "indirect: the depthwise indirection (%zu rows of %zu positions) overflows "
                   "size_t",
                   (size_t)pb->out_h, dw->row_ptrs);
  const size_t packed_floats = ck_dwconv_packed_floats(dw->cb, C, ks);
  int *tap_of = malloc(ks * sizeof(int));
  s->zero = ck_aligned_alloc(C * sizeof(float));
  s->indirection = ck_aligned_alloc(ptr_bytes);
  s->packed = ck_aligned_alloc(packed_floats * sizeof(float));
  if (tap_of == NULL || s->zero == NULL || s->indirection == NULL || s->packed == NULL) {
    free(tap_of);
    return ck_fail(CK_ERROR_OUT_OF_MEMORY,
                   "out of memory for the depthwise indirect plan (%zu pointers)", nptr);
  }
  memset(s->zero, 0, C * sizeof(float));
  s->base = ck_indirection_base(s->zero, C * sizeof(float), image_bytes);
  build_dw_indirection(pb, dw, s->base, s->zero, s->indirection);
  for (size_t kx = 0; kx < KW; kx++)
    for (size_t ky = 0; ky < KH; ky++) tap_of[kx * KH + ky] = (int)(ky * KW + kx);
  ck_dwconv_pack(dw->cb, C, ks, w->filter_oihw, tap_of, w->bias, s->packed);
  free(tap_of);
  return CK_OK;
}

void ck_indirect_dw_run(const ck_conv_ctx *ctx, const ck_indirect_state *s, const float *x,
                        float *y) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const ck_indirect_dw *dw = &s->dw;
  const size_t N = (size_t)d->batch, C = (size_t)d->in_channels;
  const size_t OH = (size_t)pb->out_h, OW = (size_t)pb->out_w;
  const size_t image_bytes = (size_t)d->in_height * d->in_width * C * sizeof(float);
  const size_t cblocks = ck_div_up(C, dw->cb);
  const uintptr_t a_base = (uintptr_t)x - s->base;

  /* Units: rows first, then channel tiles, until every thread gets several. */
  size_t row_pieces = 1, chan_pieces = 1;
  if (ctx->threads > 1) {
    const size_t want = (size_t)ctx->threads * CK_DW_UNITS_PER_THREAD;
    row_pieces = ck_min_size(OH, ck_div_up(want, N));
    if (N * row_pieces < want) chan_pieces = ck_min_size(cblocks, ck_div_up(want, N * row_pieces));
  }
  const size_t rows = ck_div_up(OH, row_pieces), cbs = ck_div_up(cblocks, chan_pieces);
  row_pieces = ck_div_up(OH, rows);
  chan_pieces = ck_div_up(cblocks, cbs);
  const long units = (long)(N * row_pieces * chan_pieces);
  const size_t block_floats = dw->cb * (1 + dw->ks);

#pragma omp parallel for schedule(dynamic, 1)                                                      \
    num_threads(ctx->threads) if (ctx->threads > 1 && units > 1)
  for (long u = 0; u < units; u++) {
    const size_t cp = (size_t)u % chan_pieces, rp = (size_t)u / chan_pieces % row_pieces;
    const size_t n = (size_t)u / chan_pieces / row_pieces;
    const size_t c0 = cp * cbs * dw->cb, c1 = ck_min_size(C, (cp + 1) * cbs * dw->cb);
    const size_t y0 = rp * rows, y1 = ck_min_size(OH, y0 + rows);
    const size_t offset = a_base + n * image_bytes + c0 * sizeof(float);
    const float *packed = s->packed + cp * cbs * block_floats;
    for (size_t oy = y0; oy < y1; oy++)
      dw->kernel(c1 - c0, OW, dw->ks, s->indirection + oy * dw->row_ptrs, dw->pixel_stride, offset,
                 s->zero, packed, y + ((n * OH + oy) * OW) * C + c0, C, &dw->clamp);
  }
}
