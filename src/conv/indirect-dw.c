/*
 * The depthwise part of the indirect algorithm (groups == C == M): per-channel dwconv kernels
 * reading an indirection of their own, one kernel call per output row and channel tile.
 *
 * Taps are ordered column-major (t = kx*kh + ky). With dilation_width 1 that lets the pixels of
 * an output row share positions, XNNPACK style: the row holds the kh positions of each input
 * column its windows touch, pixel ox starts at column ox*stride_width, so the buffer has
 * kh*((ow-1)*stride_width + kw) positions per row instead of kh*kw*ow (a third for 3x3 at
 * stride 1). With dilation each pixel has its own kh*kw positions.
 *
 * Only the rows that touch the top or bottom padding and one inner row are stored (indirect.h):
 * the inner rows read the stored one through the kernels' input offset, so the buffer stays a
 * few KiB (mobilenetv1_dw_112: 3 rows, 8 KiB instead of 306 KiB) that every call reads from L1
 * instead of streaming it alongside an image that already fills L2.
 */
#include <stdlib.h>
#include <string.h>

#include "indirect.h"
#include "../parallel.h"

/* The stored row of output row oy, and the bytes its positions are read past. */
static size_t stored_row(const ck_indirect_dw *dw, size_t oy, size_t *extra) {
  *extra = 0;
  if (oy < dw->inner_lo || dw->inner_hi == dw->inner_lo) return oy;
  if (oy < dw->inner_hi) {
    *extra = (oy - dw->inner_lo) * dw->row_step;
    return dw->inner_lo;
  }
  return oy - (dw->inner_hi - dw->inner_lo - 1);
}

static void build_dw_indirection(const ck_conv_problem *pb, const ck_indirect_dw *dw,
                                 uintptr_t base, const float *zero, const float **ind) {
  const ck_conv_desc *d = &pb->d;
  const long KH = d->kernel_height, KW = d->kernel_width;
  const size_t pixel_bytes = (size_t)d->in_channels * sizeof(float);
  for (long oy = 0; oy < pb->out_h; oy++) {
    size_t extra;
    const size_t r = stored_row(dw, (size_t)oy, &extra);
    if (extra != 0) continue; /* an inner row after the first: shares its positions */
    const float **row = ind + r * dw->row_ptrs;
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
  /* The inner rows: every tap row inside the image. */
  const long SH = d->stride_height, reach = (long)(KH - 1) * d->dilation_height;
  const long lo = (d->pad_top + SH - 1) / SH;
  const long hi = d->in_height - 1 - reach + d->pad_top < 0
                      ? 0
                      : (d->in_height - 1 - reach + d->pad_top) / SH + 1;
  const long inner_hi = hi < pb->out_h ? hi : pb->out_h;
  dw->inner_lo = dw->inner_hi = 0;
  dw->row_step = (size_t)SH * (size_t)d->in_width * C * sizeof(float);
  if (inner_hi - lo >= 2) dw->inner_lo = (size_t)lo, dw->inner_hi = (size_t)inner_hi;
  const size_t stored =
      (size_t)pb->out_h - (dw->inner_hi > dw->inner_lo ? dw->inner_hi - dw->inner_lo - 1 : 0);
  if (!ck_mul_size(dw->row_ptrs, stored, &nptr) || !ck_mul_size(nptr, sizeof(float *), &ptr_bytes))
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

/* Tiles: (image, channel tile, run of output rows), sized by the work alone, so neither the
 * result nor the partition depends on the thread count. A tile is a run of rows of about
 * CK_DW_TILE_MACS multiply-adds (all channels): enough to amortise a tile's bookkeeping, small
 * enough that a mid-size layer has several tiles per thread. Only a row of several times that
 * (many channels, wide rows) is split into channel tiles of whole blocks. Splitting channels to
 * keep the kh input rows of a tile in L1 measured no faster on the mobilenet layers (the
 * 16-channel tiles of a 32-channel layer were twice as slow), so it is not done. */
#define CK_DW_TILE_MACS ((size_t)48 * 1024)
static size_t max_size(size_t a, size_t b) {
  return a > b ? a : b;
}

typedef struct {
  const ck_indirect_state *s;
  size_t C, OH, OW, image_bytes, ct, chan_tiles, rows, row_tiles, block_floats;
  uintptr_t a_base;
  float *y;
} dw_job;

static void dw_unit(void *arg, size_t u) {
  const dw_job *j = arg;
  const ck_indirect_dw *dw = &j->s->dw;
  const size_t rt = u % j->row_tiles, ct = u / j->row_tiles % j->chan_tiles;
  const size_t n = u / j->row_tiles / j->chan_tiles;
  const size_t c0 = ct * j->ct, c1 = ck_min_size(j->C, c0 + j->ct);
  const size_t y0 = rt * j->rows, y1 = ck_min_size(j->OH, y0 + j->rows);
  const size_t offset = j->a_base + n * j->image_bytes + c0 * sizeof(float);
  const float *packed = j->s->packed + c0 / dw->cb * j->block_floats;
  for (size_t oy = y0; oy < y1; oy++) {
    size_t extra;
    const size_t r = stored_row(dw, oy, &extra);
    dw->kernel(c1 - c0, j->OW, dw->ks, j->s->indirection + r * dw->row_ptrs, dw->pixel_stride,
               offset + extra, j->s->zero, packed, j->y + ((n * j->OH + oy) * j->OW) * j->C + c0,
               j->C, &dw->clamp);
  }
}

void ck_indirect_dw_run(const ck_conv_ctx *ctx, const ck_indirect_state *s, const float *x,
                        float *y) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const ck_indirect_dw *dw = &s->dw;
  dw_job j;
  j.s = s;
  j.y = y;
  j.C = (size_t)d->in_channels;
  j.OH = (size_t)pb->out_h;
  j.OW = (size_t)pb->out_w;
  j.image_bytes = (size_t)d->in_height * d->in_width * j.C * sizeof(float);
  j.a_base = (uintptr_t)x - s->base;
  j.block_floats = dw->cb * (1 + dw->ks);

  const size_t cblocks = ck_div_up(j.C, dw->cb);
  const size_t full_row = max_size(1, j.OW * j.C * dw->ks);
  const size_t nct =
      full_row >= 2 * CK_DW_TILE_MACS ? ck_min_size(cblocks, full_row / CK_DW_TILE_MACS) : 1;
  j.ct = ck_div_up(cblocks, nct) * dw->cb; /* balanced tiles of whole blocks */
  j.chan_tiles = ck_div_up(j.C, j.ct);
  const size_t row_macs = max_size(1, j.OW * j.ct * dw->ks);
  j.rows = ck_min_size(j.OH, max_size(1, CK_DW_TILE_MACS / row_macs));
  j.row_tiles = ck_div_up(j.OH, j.rows);
  const size_t units = (size_t)d->batch * j.chan_tiles * j.row_tiles;

  /* Each thread starts on its own contiguous range of tiles (parallel.h), so it keeps the same
   * part of the image in its L2 from one call to the next. */
  ck_parallel_for(ctx->threads, units, dw_unit, &j);
}
