/*
 * im2col (NCHW) and im2row (NHWC): lower the patches of a tile of output pixels into a K x tile
 * matrix and multiply it by the filter, K = cg*KH*KW.
 *
 * The lowering writes straight into the engine's packed panel layout (lower.h), so the engine
 * multiplies without packing again, and it is tiled: each job lowers one tile of pixels into its
 * thread's buffer and runs the GEMM on it at once, while the tile is still in cache. The work is
 * the jobs (image, group, pixel tile, channel block) under dynamic scheduling, each summed by
 * one thread in the engine's fixed order, so the bits do not depend on the thread count. Channel
 * blocks appear only when there are too few tiles to feed the threads (small images), and cost a
 * repeated lowering of the tile per block.
 *
 * A 1x1 layer with stride 1 and no padding needs no lowering: the input itself is the pixel
 * operand (a plain matrix the engine packs).
 *
 * Workspace per thread: one lowered tile (K x tile floats) and the engine's buffer.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemmconv.h"
#include "lower.h"

/* Lowered tile budget: 256 Ki floats (1 MiB), half the 2 MiB L2 of the machines measured, so the
 * tile stays in L2 from its lowering to its last read by the micro-kernels, next to the filter
 * block the engine streams. */
#define IM2COL_TILE_FLOATS (256u * 1024u)
/* Smallest channel block when splitting channels for parallelism: below it the repeated lowering
 * costs more than it balances. */
#define IM2COL_MIN_BLOCK 32

typedef struct {
  ck_gc_roles r;
  size_t K, P;
  int direct;        /* 1x1, stride 1, no padding: the input is the pixel operand */
  size_t pt, ntiles; /* pixel tile, tiles per image and group */
  size_t mb, nmb;    /* channel block, blocks per group */
  size_t fstride;    /* floats of one group's packed filter */
  float *filter, *bias, *zero;
  size_t pix_bytes, eng_bytes, region;
  int workers;
} im2col_state;

static void im2col_destroy(ck_conv_ctx *ctx) {
  im2col_state *s = ctx->state;
  if (s == NULL) return;
  ck_aligned_free(s->filter);
  free(s->bias);
  free(s->zero);
  free(s);
  ctx->state = NULL;
}

static ck_status im2col_setup(ck_conv_ctx *ctx, const ck_conv_weights *w) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  im2col_state *s = calloc(1, sizeof *s);
  if (s == NULL) return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the im2col plan");
  ctx->state = s;
  ck_gc_roles_init(ctx->kern, d->layout == CK_LAYOUT_NCHW, &s->r);
  if (s->r.pw > CK_LOWER_MAX_PW || s->r.pw == 0)
    return ck_fail(CK_ERROR_UNSUPPORTED, "im2col: panel width (%zu) of isa (%s) is not supported",
                   s->r.pw, ctx->kern->name);
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  s->K = cg * (size_t)d->kernel_height * (size_t)d->kernel_width; /* <= filter size */
  s->P = (size_t)pb->out_h * (size_t)pb->out_w;
  s->direct = d->kernel_height == 1 && d->kernel_width == 1 && d->stride_height == 1 &&
              d->stride_width == 1 && d->pad_top == 0 && d->pad_bottom == 0 && d->pad_left == 0 &&
              d->pad_right == 0;
  s->pt = ck_gc_pixel_tile(s->P, s->K, IM2COL_TILE_FLOATS, s->r.pw);
  s->ntiles = ck_div_up(s->P, s->pt);
  const size_t jobs0 = (size_t)d->batch * G * s->ntiles;
  s->mb = ck_gc_channel_block(jobs0, mg, s->r.fw, IM2COL_MIN_BLOCK, ctx->threads);
  s->nmb = ck_div_up(mg, s->mb);

  int ok = 1;
  s->fstride = ck_gc_filter_floats(&s->r, mg, s->K);
  size_t ffloats = ck_gc_mul(s->fstride, G, &ok);
  size_t fbytes = ck_gc_floats_bytes(ffloats, &ok);
  s->pix_bytes = s->direct ? 0 : ck_gc_floats_bytes(ck_gc_mul(s->K, s->pt, &ok), &ok);
  s->eng_bytes = ck_gc_gemm_workspace(ctx->kern, &s->r, s->pt, s->P - (s->ntiles - 1) * s->pt,
                                      s->mb, mg - (s->nmb - 1) * s->mb, s->K, !s->direct, &ok);
  const size_t jobs = jobs0 * s->nmb;
  s->workers = jobs < (size_t)ctx->threads ? (int)jobs : ctx->threads;
  s->region = 0;
  if (!ok || s->fstride == 0 || !ck_gc_region_add(&s->region, s->pix_bytes) ||
      !ck_gc_region_add(&s->region, s->eng_bytes) ||
      !ck_gc_ws_total(0, s->region, s->workers, &ctx->workspace_size))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "im2col: workspace or packed filter size overflows");

  s->filter = ck_aligned_alloc(fbytes);
  s->bias = malloc((size_t)d->out_channels * sizeof(float));
  s->zero = calloc(cg, sizeof(float));
  float *rows = malloc(mg * s->K * sizeof(float));
  if (s->filter == NULL || s->bias == NULL || s->zero == NULL || rows == NULL) {
    free(rows);
    return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the im2col packed filter (%zu bytes)",
                   fbytes);
  }
  memcpy(s->bias, w->bias, (size_t)d->out_channels * sizeof(float));
  const ck_gc_k_order order = s->r.pix_is_b ? CK_GC_K_CHW : CK_GC_K_HWC;
  for (size_t g = 0; g < G; g++) {
    ck_gc_filter_rows(pb, w->filter_oihw, (int)g, 0, mg, order, 0, rows);
    ck_gc_pack_filter(ctx->kern, &s->r, mg, s->K, rows, s->filter + g * s->fstride);
  }
  free(rows);
  return CK_OK;
}

static void im2col_execute(const ck_conv_ctx *ctx, const float *input, float *output,
                           void *workspace) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const im2col_state *s = ctx->state;
  const size_t C = (size_t)d->in_channels, M = (size_t)d->out_channels;
  const size_t HW = (size_t)d->in_height * (size_t)d->in_width, P = s->P;
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  const ck_tap_range all_taps = {0, d->kernel_height, 0, d->kernel_width};
  const int nchw = s->r.pix_is_b;
  const long jobs = (long)((size_t)d->batch * G * s->ntiles * s->nmb);

#pragma omp parallel num_threads(s->workers) if (s->workers > 1)
  {
    unsigned char *cur = ck_gc_ws_region(workspace, 0, s->region, omp_get_thread_num());
    float *pix = ck_gc_carve(&cur, s->pix_bytes);
    void *ews = ck_gc_carve(&cur, s->eng_bytes);
#pragma omp for schedule(dynamic, 1)
    for (long job = 0; job < jobs; job++) {
      size_t j = (size_t)job;
      const size_t blk = j % s->nmb;
      j /= s->nmb;
      const size_t tile = j % s->ntiles;
      j /= s->ntiles;
      const size_t g = j % G, n = j / G;
      const size_t p0 = tile * s->pt, np = P - p0 < s->pt ? P - p0 : s->pt;
      const size_t m0 = blk * s->mb, mb = mg - m0 < s->mb ? mg - m0 : s->mb;
      const float *in_g = nchw ? input + (n * C + g * cg) * HW : input + n * HW * C + g * cg;
      ck_gc_tile t = {.np = np,
                      .mb = mb,
                      .k = s->K,
                      .filt = s->filter + g * s->fstride + m0 * s->K,
                      .beta = 0.0f,
                      .bias = s->bias + g * mg + m0,
                      .lo = pb->min,
                      .hi = pb->max};
      if (s->direct) {
        t.pix = nchw ? (ck_gc_pixels){.data = in_g + p0, .row_stride = HW, .col_stride = 1}
                     : (ck_gc_pixels){.data = in_g + p0 * C, .row_stride = 1, .col_stride = C};
      } else {
        if (nchw)
          ck_lower_nchw(pb, in_g, p0, np, all_taps, s->r.pw, pix);
        else
          ck_lower_nhwc(pb, in_g, s->zero, p0, np, all_taps, s->r.pw, pix);
        t.pix = (ck_gc_pixels){.data = pix, .packed = 1};
      }
      if (nchw) {
        t.c = output + (n * M + g * mg + m0) * P + p0;
        t.ldc = P;
      } else {
        t.c = output + (n * P + p0) * M + g * mg + m0;
        t.ldc = M;
      }
      ck_gc_gemm(ctx->kern, &s->r, &t, ews);
    }
  }
}

const ck_algo_impl ck_algo_im2col = {
    .id = CK_ALGO_IM2COL,
    .setup = im2col_setup,
    .execute = im2col_execute,
    .destroy = im2col_destroy,
};
