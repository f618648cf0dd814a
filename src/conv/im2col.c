/*
 * im2col (NCHW) and im2row (NHWC): lower the patches of a tile of output pixels into a K x tile
 * matrix and multiply it by the filter, K = cg*KH*KW.
 *
 * The lowering writes straight into the engine's packed panel layout (lower.h), so the engine
 * multiplies without packing again, and it is tiled: each job lowers one tile of pixels into its
 * thread's buffer and runs the GEMM on it at once, while the tile is still in cache. The work is
 * the jobs (image, group, pixel tile, channel block) under dynamic scheduling, each summed by
 * one thread in the engine's fixed order, so the bits do not depend on the thread count. Channel
 * blocks appear only when there are too few tiles to feed the threads (small images).
 *
 * When there are too few tiles for the threads and the channels are split, a tile is lowered
 * once into a buffer shared by the team (in parallel, panel by panel), then its channel blocks
 * are shared out.
 *
 * A 1x1 layer with stride 1 and no padding needs no lowering: the input itself is the pixel
 * operand (a plain matrix the engine packs).
 *
 * Depthwise layers (one input and one output channel per group) are G products of 1 x K by
 * K x P, each a single row: as one engine call per group they would be thousands of 1-row GEMMs
 * bound by call and packing overhead. Their groups are batched instead: a tile of pixels is
 * lowered for all groups at once and the G one-row products run together, vectorized across the
 * groups (NHWC: the lowered tile is [pixel][tap][channel], channels contiguous) or across the
 * pixels (NCHW: channel by channel, the same K x tile panels as the GEMM path). Each output is
 * still the dot product of a lowered patch column with the filter row, summed over k in order.
 *
 * Workspace: a lowered tile (K x tile floats) per thread, or one shared by the team when the
 * channels are split, and the engine's buffer per thread.
 */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemmconv.h"
#include "lower.h"

/* Lowered tile budget: 256 Ki floats (1 MiB), half the 2 MiB L2 of the machines measured, so the
 * tile stays in L2 from its lowering to its last read by the micro-kernels, next to the filter
 * block the engine streams. */
#define IM2COL_TILE_FLOATS (256u * 1024u)
/* At least 4 panels per tile even when K is large: each block of the filter the engine loads
 * then serves 4 panels of the tile, not 1 (the lowered tile itself then exceeds L2, but the
 * engine reads it one KC slice at a time). */
#define IM2COL_MIN_PANELS 4
/* Smallest channel block when splitting channels for parallelism: below it the repeated lowering
 * costs more than it balances. */
#define IM2COL_MIN_BLOCK 32
/* Lowered tile of the depthwise path: 16 Ki floats (64 KiB), written and read back at once from
 * L1/L2. */
#define IM2COL_DW_TILE_FLOATS (16u * 1024u)

typedef struct {
  ck_gc_roles r;
  size_t K, P;
  int direct;        /* 1x1, stride 1, no padding: the input is the pixel operand */
  size_t pt, ntiles; /* pixel tile, tiles per image and group */
  size_t mb, nmb;    /* channel block, blocks per group */
  size_t fstride;    /* floats of one group's packed filter */
  float *filter, *bias, *zero;
  size_t shared_bytes; /* a tile lowered once for all threads (few tiles, channels split) */
  size_t pix_bytes, eng_bytes, region; /* per thread */
  int workers;
  int dw;      /* depthwise: groups batched (see above) */
  float *dw_w; /* NHWC: [K][C] (taps by channel); NCHW: [C][K] */
} im2col_state;

static void im2col_destroy(ck_conv_ctx *ctx) {
  im2col_state *s = ctx->state;
  if (s == NULL) return;
  ck_aligned_free(s->filter);
  free(s->bias);
  free(s->zero);
  free(s->dw_w);
  free(s);
  ctx->state = NULL;
}

/* The depthwise plan: tiles of pixels, all groups at once (NHWC) or one group at a time (NCHW). */
static ck_status dw_setup(ck_conv_ctx *ctx, im2col_state *s, const ck_conv_weights *w) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const size_t C = (size_t)d->in_channels, K = s->K;
  const int nchw = s->r.pix_is_b;
  int ok = 1;
  /* NHWC: tiles of pixels; NCHW: tiles of output rows of one channel. */
  const size_t per_unit = nchw ? ck_gc_mul(K, (size_t)pb->out_w, &ok) : ck_gc_mul(K, C, &ok);
  const size_t units = nchw ? (size_t)pb->out_h : s->P;
  s->pt = ck_gc_pixel_tile(units, per_unit, ck_gc_budget(IM2COL_DW_TILE_FLOATS), 1, 0, SIZE_MAX);
  s->ntiles = ck_div_up(units, s->pt);
  s->pix_bytes = ck_gc_floats_bytes(ck_gc_mul(per_unit, s->pt, &ok), &ok);
  const size_t jobs = ck_gc_mul(ck_gc_mul((size_t)d->batch, nchw ? C : 1, &ok), s->ntiles, &ok);
  s->workers = jobs < (size_t)ctx->threads ? (int)jobs : ctx->threads;
  s->region = 0;
  if (!ok || !ck_gc_region_add(&s->region, s->pix_bytes) ||
      !ck_gc_ws_total(0, s->region, s->workers, &ctx->workspace_size))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "im2col: workspace size overflows");
  const ck_status st = ck_gc_dw_weights(w, C, K, nchw, "im2col", &s->dw_w, &s->bias);
  if (st != CK_OK) return st;
  s->zero = calloc(C, sizeof(float));
  if (s->zero == NULL) return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for a zero row");
  return CK_OK;
}

/* The pixel tile and channel block of im2col's jobs, from which its workspace follows. */
static void im2col_tiling(const ck_conv_ctx *ctx, const ck_gc_roles *r, size_t *pt_out,
                          size_t *mb_out) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const size_t K = (size_t)pb->cin_g * (size_t)d->kernel_height * (size_t)d->kernel_width;
  const size_t P = (size_t)pb->out_h * (size_t)pb->out_w;
  const size_t floor_pt = IM2COL_MIN_PANELS * r->pw;
  size_t pt = ck_gc_pixel_tile(P, K, ck_gc_budget(IM2COL_TILE_FLOATS), r->pw, floor_pt, SIZE_MAX);
  size_t ntiles = ck_div_up(P, pt);
  /* Parallelism comes first from smaller tiles (down to the 4-panel minimum), which cost
   * nothing extra, and only then from splitting channels. */
  const size_t want = 4 * (size_t)ctx->threads, images = (size_t)d->batch * (size_t)d->groups;
  if (ctx->threads > 1 && images * ntiles < want) {
    size_t t = ck_round_up(ck_div_up(P, ck_div_up(want, images)), r->pw);
    if (t < floor_pt) t = floor_pt;
    if (t < pt) pt = t;
    ntiles = ck_div_up(P, pt);
  }
  *pt_out = pt;
  *mb_out = ck_gc_channel_block(images * ntiles, (size_t)pb->cout_g, r->fw, IM2COL_MIN_BLOCK,
                                ctx->threads);
}

/* Floats of the lowered tiles im2col holds for ctx's problem and thread count (non-depthwise,
 * lowered path): one tile shared by the team when channels are split, else one per worker.
 * SIZE_MAX on overflow. */
size_t ck_im2col_lowered_floats(const ck_conv_ctx *ctx) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  ck_gc_roles r;
  ck_gc_roles_init(ctx->kern, d->layout == CK_LAYOUT_NCHW, &r);
  const size_t K = (size_t)pb->cin_g * (size_t)d->kernel_height * (size_t)d->kernel_width;
  const size_t P = (size_t)pb->out_h * (size_t)pb->out_w, mg = (size_t)pb->cout_g;
  size_t pt, mb;
  im2col_tiling(ctx, &r, &pt, &mb);
  const size_t jobs = (size_t)d->batch * (size_t)d->groups * ck_div_up(P, pt) * ck_div_up(mg, mb);
  const size_t tiles = mb < mg ? 1 : jobs < (size_t)ctx->threads ? jobs : (size_t)ctx->threads;
  size_t f;
  if (!ck_mul_size(K, pt, &f) || !ck_mul_size(f, tiles, &f)) return SIZE_MAX;
  return f;
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
  s->dw = G > 1 && cg == 1 && mg == 1;
  if (s->dw) return dw_setup(ctx, s, w);
  im2col_tiling(ctx, &s->r, &s->pt, &s->mb);
  s->ntiles = ck_div_up(s->P, s->pt);
  const size_t jobs0 = (size_t)d->batch * G * s->ntiles;
  s->nmb = ck_div_up(mg, s->mb);

  int ok = 1;
  s->fstride = ck_gc_filter_floats(&s->r, mg, s->K);
  size_t ffloats = ck_gc_mul(s->fstride, G, &ok);
  size_t fbytes = ck_gc_floats_bytes(ffloats, &ok);
  const size_t tile_bytes = s->direct ? 0 : ck_gc_floats_bytes(ck_gc_mul(s->K, s->pt, &ok), &ok);
  const int shared = s->nmb > 1 && !s->direct;
  s->shared_bytes = shared ? tile_bytes : 0;
  s->pix_bytes = shared ? 0 : tile_bytes;
  s->eng_bytes = ck_gc_gemm_workspace(ctx->kern, &s->r, s->pt, s->P - (s->ntiles - 1) * s->pt,
                                      s->mb, mg - (s->nmb - 1) * s->mb, s->K, !s->direct, &ok);
  const size_t jobs = jobs0 * s->nmb;
  s->workers = jobs < (size_t)ctx->threads ? (int)jobs : ctx->threads;
  s->region = 0;
  if (!ok || s->fstride == 0 || !ck_gc_region_add(&s->region, s->pix_bytes) ||
      !ck_gc_region_add(&s->region, s->eng_bytes) ||
      !ck_gc_ws_total(s->shared_bytes, s->region, s->workers, &ctx->workspace_size))
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
    ck_gc_filter_rows(pb, w->filter_oihw, (int)g, 0, mg, order,
                      (ck_tap_range){0, d->kernel_height, 0, d->kernel_width}, rows);
    ck_gc_pack_filter(ctx->kern, &s->r, mg, s->K, rows, s->filter + g * s->fstride);
  }
  free(rows);
  return CK_OK;
}

/* The pixel tile `tile` of image n and group g lowered, for panels [q0, q1) of the tile, into
 * dst (the tile's first panel). */
static void lower_tile(const ck_conv_ctx *ctx, const float *input, size_t n, size_t g, size_t tile,
                       size_t q0, size_t q1, float *dst) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const im2col_state *s = ctx->state;
  const size_t C = (size_t)d->in_channels, cg = (size_t)pb->cin_g, pw = s->r.pw;
  const size_t HW = (size_t)d->in_height * (size_t)d->in_width;
  const ck_tap_range all_taps = {0, d->kernel_height, 0, d->kernel_width};
  const size_t p0 = tile * s->pt, np = s->P - p0 < s->pt ? s->P - p0 : s->pt;
  const size_t a = q0 * pw, b = q1 * pw < np ? q1 * pw : np;
  if (a >= b) return;
  float *panel = dst + q0 * pw * s->K;
  if (s->r.pix_is_b)
    ck_lower_nchw(pb, input + (n * C + g * cg) * HW, p0 + a, b - a, all_taps, pw, panel);
  else
    ck_lower_nhwc(pb, input + n * HW * C + g * cg, s->zero, p0 + a, b - a, all_taps, pw,
                  ctx->kern->gemm_packt, panel);
}

/* The GEMM of channel block blk on tile `tile` of image n and group g; pix: the lowered tile,
 * or NULL on the direct path (the input is the pixel operand). */
static void tile_gemm(const ck_conv_ctx *ctx, const float *input, float *output, size_t n, size_t g,
                      size_t tile, size_t blk, const float *pix, void *ews) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const im2col_state *s = ctx->state;
  const size_t C = (size_t)d->in_channels, M = (size_t)d->out_channels;
  const size_t HW = (size_t)d->in_height * (size_t)d->in_width, P = s->P;
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g;
  const int nchw = s->r.pix_is_b;
  const size_t p0 = tile * s->pt, np = P - p0 < s->pt ? P - p0 : s->pt;
  const size_t m0 = blk * s->mb, mb = mg - m0 < s->mb ? mg - m0 : s->mb;
  ck_gc_tile t = {.np = np,
                  .mb = mb,
                  .k = s->K,
                  .pix = {.data = pix, .packed = 1},
                  .filt = s->filter + g * s->fstride + m0 * s->K,
                  .beta = 0.0f,
                  .bias = s->bias + g * mg + m0,
                  .lo = pb->min,
                  .hi = pb->max};
  if (pix == NULL) {
    const float *in_g = nchw ? input + (n * C + g * cg) * HW : input + n * HW * C + g * cg;
    t.pix = nchw ? (ck_gc_pixels){.data = in_g + p0, .row_stride = HW, .col_stride = 1}
                 : (ck_gc_pixels){.data = in_g + p0 * C, .row_stride = 1, .col_stride = C};
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

static inline float clampf(float v, float lo, float hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Depthwise, NHWC: tile `tile` of image n lowered as [pixel][tap][channel] (all C channels of
 * the input pixel, or zeros in the padding), then out[p][c] = sum_k w[k][c] * x[p][k][c]. */
static void dw_tile_nhwc(const ck_conv_ctx *ctx, const float *input, float *output, size_t n,
                         size_t tile, float *x) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const im2col_state *s = ctx->state;
  const size_t C = (size_t)d->in_channels, K = s->K, OW = (size_t)pb->out_w;
  const long H = d->in_height, W = d->in_width;
  const size_t p0 = tile * s->pt, np = s->P - p0 < s->pt ? s->P - p0 : s->pt;
  const float *in = input + n * (size_t)(H * W) * C;
  for (size_t j = 0; j < np; j++) {
    const long oh = (long)((p0 + j) / OW), ow = (long)((p0 + j) % OW);
    float *xj = x + j * K * C;
    for (long kh = 0; kh < d->kernel_height; kh++) {
      const long ih = oh * d->stride_height - d->pad_top + kh * d->dilation_height;
      for (long kw = 0; kw < d->kernel_width; kw++) {
        const long iw = ow * d->stride_width - d->pad_left + kw * d->dilation_width;
        const float *src =
            ih >= 0 && ih < H && iw >= 0 && iw < W ? in + (ih * W + iw) * (long)C : s->zero;
        memcpy(xj + (size_t)(kh * d->kernel_width + kw) * C, src, C * sizeof(float));
      }
    }
  }
  for (size_t j = 0; j < np; j++) {
    const float *xj = x + j * K * C;
    float *o = output + (n * s->P + p0 + j) * C;
    for (size_t c = 0; c < C; c++) o[c] = 0.0f;
    for (size_t k = 0; k < K; k++) {
      const float *wk = s->dw_w + k * C, *xk = xj + k * C;
      for (size_t c = 0; c < C; c++) o[c] += wk[c] * xk[c];
    }
    for (size_t c = 0; c < C; c++) o[c] = clampf(o[c] + s->bias[c], pb->min, pb->max);
  }
}

/* Pixels of the depthwise NCHW sums held in registers at once: 8 vectors of the baseline ISA. */
#define DW_SPAN 32

/* Depthwise, NCHW: rows [tile*pt, +pt) of output channel c of image n lowered as [tap][pixel]
 * (each tap's input row gathered with its shift and stride, zero in the padding), then
 * out[p] = sum_k w[c][k] * x[k][p], vectorized across the pixels. */
static void dw_tile_nchw(const ck_conv_ctx *ctx, const float *input, float *output, size_t n,
                         size_t c, size_t tile, float *x) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const im2col_state *s = ctx->state;
  const size_t C = (size_t)d->in_channels, K = s->K, OW = (size_t)pb->out_w;
  const size_t OH = (size_t)pb->out_h, HW = (size_t)d->in_height * (size_t)d->in_width;
  const size_t oh0 = tile * s->pt, nr = OH - oh0 < s->pt ? OH - oh0 : s->pt, np = nr * OW;
  ck_lower_plane_taps(pb, input + (n * C + c) * HW, oh0, nr, x);
  const float *wc = s->dw_w + c * K;
  const float b = s->bias[c];
  float *out = output + (n * C + c) * s->P + oh0 * OW;
  /* DW_SPAN sums stay in registers over all taps: x is read once and out written once. The
   * full span has its own loop so that its trip count is a constant the compiler unrolls into
   * registers; the last, shorter span runs the same sums in memory. */
  for (size_t p0 = 0; p0 < np; p0 += DW_SPAN) {
    const size_t m = np - p0 < DW_SPAN ? np - p0 : DW_SPAN;
    float acc[DW_SPAN] = {0.0f};
    if (m == DW_SPAN)
      for (size_t k = 0; k < K; k++) {
        const float wk = wc[k], *xk = x + k * np + p0;
        for (size_t j = 0; j < DW_SPAN; j++) acc[j] += wk * xk[j];
      }
    else
      for (size_t k = 0; k < K; k++) {
        const float wk = wc[k], *xk = x + k * np + p0;
        for (size_t j = 0; j < m; j++) acc[j] += wk * xk[j];
      }
    for (size_t j = 0; j < m; j++) out[p0 + j] = clampf(acc[j] + b, pb->min, pb->max);
  }
}

static void dw_execute(const ck_conv_ctx *ctx, const float *input, float *output, void *workspace) {
  const ck_conv_desc *d = &ctx->pb.d;
  const im2col_state *s = ctx->state;
  const size_t per_image = s->r.pix_is_b ? (size_t)d->in_channels * s->ntiles : s->ntiles;
  const size_t jobs = (size_t)d->batch * per_image;
#pragma omp parallel num_threads(s->workers) if (s->workers > 1)
  {
    unsigned char *cur = ck_gc_ws_region(workspace, 0, s->region, omp_get_thread_num());
    float *x = ck_gc_carve(&cur, s->pix_bytes);
#pragma omp for schedule(dynamic, 1)
    for (long job = 0; job < (long)jobs; job++) {
      const size_t n = (size_t)job / per_image, r = (size_t)job % per_image;
      if (s->r.pix_is_b)
        dw_tile_nchw(ctx, input, output, n, r / s->ntiles, r % s->ntiles, x);
      else
        dw_tile_nhwc(ctx, input, output, n, r, x);
    }
  }
}

static void im2col_execute(const ck_conv_ctx *ctx, const float *input, float *output,
                           void *workspace) {
  const ck_conv_desc *d = &ctx->pb.d;
  const im2col_state *s = ctx->state;
  if (s->dw) {
    dw_execute(ctx, input, output, workspace);
    return;
  }
  const size_t G = (size_t)d->groups, units = (size_t)d->batch * G * s->ntiles;
  const size_t panels = ck_div_up(s->pt, s->r.pw);

#pragma omp parallel num_threads(s->workers) if (s->workers > 1)
  {
    unsigned char *cur =
        ck_gc_ws_region(workspace, s->shared_bytes, s->region, omp_get_thread_num());
    float *pix = ck_gc_carve(&cur, s->pix_bytes);
    void *ews = ck_gc_carve(&cur, s->eng_bytes);
    if (s->shared_bytes == 0) {
      /* Independent jobs: each lowers its tile into its thread's buffer and multiplies it. */
#pragma omp for schedule(dynamic, 1)
      for (long job = 0; job < (long)(units * s->nmb); job++) {
        const size_t blk = (size_t)job % s->nmb, u = (size_t)job / s->nmb;
        const size_t tile = u % s->ntiles, g = u / s->ntiles % G, n = u / s->ntiles / G;
        if (!s->direct) lower_tile(ctx, input, n, g, tile, 0, panels, pix);
        tile_gemm(ctx, input, output, n, g, tile, blk, s->direct ? NULL : pix, ews);
      }
    } else {
      /* Few tiles, channels split among the threads: each tile is lowered once, by all
       * threads panel by panel into the shared buffer, then its channel blocks are shared. */
      float *shared = (float *)ck_gc_ws_shared(workspace);
      for (size_t u = 0; u < units; u++) {
        const size_t tile = u % s->ntiles, g = u / s->ntiles % G, n = u / s->ntiles / G;
#pragma omp for schedule(dynamic, 1)
        for (long q = 0; q < (long)panels; q++)
          lower_tile(ctx, input, n, g, tile, (size_t)q, (size_t)q + 1, shared);
#pragma omp for schedule(dynamic, 1)
        for (long blk = 0; blk < (long)s->nmb; blk++)
          tile_gemm(ctx, input, output, n, g, tile, (size_t)blk, shared, ews);
      }
    }
  }
}

const ck_algo_impl ck_algo_im2col = {
    .id = CK_ALGO_IM2COL,
    .setup = im2col_setup,
    .execute = im2col_execute,
    .destroy = im2col_destroy,
};
