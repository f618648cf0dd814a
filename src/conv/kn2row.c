/*
 * kn2row and kn2row-aa (Vasudevan, Anderson, Gregg 2017; Anderson et al. 2017): a convolution as
 * a sum over the KH*KW taps of 1x1 convolutions, each tap's result shifted by the tap's offset.
 *
 * kn2row, stride 1: the taps' filters stacked ([KW*mb x cg] per row of taps kh) multiply the
 * plain input (no lowering) in one GEMM per row of taps, giving KW partial images Y; a shift-add
 * pass then sums each tap's partial image, shifted by the tap's offset, into the output, where
 * bias and activation are applied by the pass that completes a row. Work is tiled by blocks of
 * output rows (jobs): a job's GEMM for row of taps kh reads exactly the input rows its output
 * rows need through kh (the block's halo, shifted by kh*dh, so nothing is computed twice), and
 * its partial images (rows*W x KW*mb) are shift-added at once while they are in L2, a pixel's
 * KW taps in one pass over its channels. Channel blocks keep the stacked filter in L2. A row
 * of the output is summed by one job, bias then taps in (kh, kw) order, so its sum does not
 * depend on the block sizes.
 *
 * Dilation alone discards nothing (the shifts scale with it), so it stays on this path.
 *
 * kn2row, stride > 1: a GEMM on the whole input would compute stride_h*stride_w times the needed
 * products and discard them; instead each tap's strided input is gathered (cg x tile floats) and
 * multiplied by that tap's filter into its partial result, then the taps are summed.
 *
 * kn2row-aa: no partial images at all. For each tap in order, the tap's shifted (and strided,
 * dilated) input is gathered for a tile of output pixels, zero where it falls in the padding,
 * and a GEMM accumulates it straight into the output tile (beta = 1 after the first tap). Every
 * tap's GEMM covers the whole tile, so there is no border spill to fix up, and the last tap's
 * epilogue adds the bias and applies the activation. Extra memory: one gathered tap per thread,
 * or a chunk of its input channels when the tap has many (KN2ROW_AA_PANEL_FLOATS).
 *
 * Both run in NCHW and NHWC natively (gemmconv.h roles). Jobs are independent (image, group,
 * tile or block of output rows, channel block) under dynamic scheduling, each gathering or
 * packing what it reads; each output element is summed by one thread in a fixed order.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemmconv.h"
#include "lower.h"

/* Budgets (floats) of the per-thread working sets, aimed at the 2 MiB L2 of the machines
 * measured:
 *   gathered tap plus the output tile it accumulates into (kn2row-aa, tap sums): 32 Ki floats
 *   (128 KiB), so both stay in L2 across all the taps of the tile with the filter's tap block;
 *   partial images of a job's row of taps (kn2row shift-add): 64 Ki floats (256 KiB), written by
 *   the GEMM and read back by the shift-add pass from L2 while the job's output rows and filter
 *   block stay there too (1 MiB of partial images, 13-row jobs on yolov3_conv_52, left them to
 *   be re-read from further out: 1.40-1.49x im2col's time there on 1 thread in NCHW, 1.33x in
 *   NHWC; 3-row jobs 1.24x and 1.12x. Single rows were slower again, 1.42x: narrow GEMMs). */
#define KN2ROW_TAP_TILE_FLOATS (32u * 1024u)
#define KN2ROW_BAND_FLOATS (64u * 1024u)
/* Stacked filter block of a kn2row shift-add GEMM: 128 Ki floats (512 KiB) of L2. */
#define KN2ROW_FILTER_BLOCK_FLOATS (128u * 1024u)
/* Output tile of a kn2row-aa job, accumulated over every tap: 64 Ki floats (256 KiB) of L2. */
#define KN2ROW_OUT_TILE_FLOATS (64u * 1024u)
#define KN2ROW_MIN_BLOCK 16
/* Inner dimension below which taps are grouped into one GEMM (kn2row-aa, tap sums). */
#define KN2ROW_MIN_K 32
/* kn2row-aa with 32 to 64 input channels: taps grouped up to this inner dimension (a row of 3x3
 * taps at 64 channels), 3 passes over the output tile instead of 9. resnet50_res2_3x3 NCHW went
 * from 1.12 to 1.07x im2col's time on 1 thread and from 1.24-1.39 to 1.11x on 2 (paired
 * runs). 128-channel layers measured level with pairs of taps (K = 256), whose gathered tiles
 * took over a tenth of im2col's workspace on 2 threads, so they keep single taps. */
#define KN2ROW_AA_ROW_K 192
#define KN2ROW_AA_ROW_MAX_C 64
/* kn2row-aa: one panel of a gathered tap (pw pixels x the tap's input channels) at most 8 Ki
 * floats (32 KiB); a tap with more channels is split into equal chunks of channels, each
 * gathered and accumulated into the output in turn. The gathered tap is kn2row-aa's whole extra
 * memory (one per thread, a panel at the least), and 32-pixel panels (NCHW) of a 512-channel
 * layer would take a tenth of im2col's tile on two threads. The engine cuts such an inner
 * dimension into KC blocks (at most 512; 384 on the measured machines) anyway, each a pass over
 * the output tile, but the 14-pixel panels (NHWC) keep whole taps: chunks there measured 8%
 * slower on resnet50_res5_3x3 at 2 threads. */
#define KN2ROW_AA_PANEL_FLOATS (8u * 1024u)

typedef enum { MODE_AA, MODE_SHIFT_ADD, MODE_TAP_SUM } kn2row_mode;

typedef struct {
  kn2row_mode mode;
  ck_gc_roles r;
  size_t taps;               /* KH*KW */
  size_t gh, gw, ngroups;    /* taps per GEMM (AA, TAP_SUM): gh x gw; groups: the tap groups
                                times the channel chunks, chunk by chunk within a tap group */
  size_t kch, nkc;           /* input channels per chunk, chunks per tap group (AA; else cg, 1) */
  size_t gk;                 /* largest inner dimension of a group's GEMM: kch*gh*gw */
  size_t P;                  /* output pixels */
  size_t pt;                 /* pixels gathered at a time (AA, TAP_SUM) */
  size_t jt, ntiles;         /* pixels of a job (a multiple of pt), jobs per image and group */
  size_t band, nbands, rows; /* SHIFT_ADD: output rows per job, row blocks; depthwise: input
                                rows per band, bands, rows referenced */
  size_t mb, nmb;            /* channel block and blocks per group */
  size_t fstride;            /* floats between packed filter blocks */
  float *filter, *bias, *zero;
  int pack_rows; /* SHIFT_ADD: a job's input rows packed once (rows are whole panels) */
  int dw;        /* depthwise: groups batched (see dw_setup) */
  float *dw_w;   /* depthwise filter: NHWC [taps][C], NCHW [C][taps] */
  size_t pix_bytes, y_bytes, eng_bytes, region; /* per thread */
  int workers;
} kn2row_state;

static void kn2row_destroy(ck_conv_ctx *ctx) {
  kn2row_state *s = ctx->state;
  if (s == NULL) return;
  ck_aligned_free(s->filter);
  free(s->bias);
  free(s->zero);
  free(s->dw_w);
  free(s);
  ctx->state = NULL;
}

/* The taps of group q: row-major over the KH x KW taps in blocks of gh x gw. */
static ck_tap_range group_taps(const kn2row_state *s, const ck_conv_desc *d, size_t q) {
  q /= s->nkc;
  const size_t ngw = ck_div_up((size_t)d->kernel_width, s->gw);
  const size_t kh0 = q / ngw * s->gh, kw0 = q % ngw * s->gw;
  const size_t nkh =
      (size_t)d->kernel_height - kh0 < s->gh ? (size_t)d->kernel_height - kh0 : s->gh;
  const size_t nkw = (size_t)d->kernel_width - kw0 < s->gw ? (size_t)d->kernel_width - kw0 : s->gw;
  return (ck_tap_range){(int)kh0, (int)nkh, (int)kw0, (int)nkw};
}

/* The input channels [*c0, *c0 + return) of the group's taps that group q reads. */
static size_t group_chunk(const kn2row_state *s, const ck_conv_problem *pb, size_t q, size_t *c0) {
  *c0 = q % s->nkc * s->kch;
  return (size_t)pb->cin_g - *c0 < s->kch ? (size_t)pb->cin_g - *c0 : s->kch;
}

static size_t group_k(const kn2row_state *s, const ck_conv_problem *pb, size_t q) {
  const ck_tap_range t = group_taps(s, &pb->d, q);
  size_t c0;
  return group_chunk(s, pb, q, &c0) * (size_t)t.nkh * (size_t)t.nkw;
}

/* Channel block blk of a group (kn2row-aa, tap sums): [*m0, *m0 + return). The nmb blocks share
 * the ceil(mg / fw) filter panels as evenly as whole panels allow (256 channels in 14-row panels
 * as 2 blocks: 126 + 130 rather than 140 + 116, which left one of two threads idle for a tenth
 * of the time); none exceeds mb, and they are mb each when mb divides into whole panels. */
static size_t chan_block(const kn2row_state *s, size_t mg, size_t blk, size_t *m0) {
  const size_t fw = s->r.fw, panels = ck_div_up(mg, fw);
  const size_t end = (blk + 1) * panels / s->nmb * fw;
  *m0 = blk * panels / s->nmb * fw;
  return (end < mg ? end : mg) - *m0;
}

/* Packed filters. Per tap group (AA, TAP_SUM): block (g, t) = W_t [mg x cg], channel blocks inside
 * it. Stacked (SHIFT_ADD): block (g, b, kh) = [KW*mb x cg] with rows (kw, m) for the channels of
 * block b, so one GEMM yields a whole row of taps of those channels. */
static ck_status pack_filters(ck_conv_ctx *ctx, kn2row_state *s, const float *oihw) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  const int stacked = s->mode == MODE_SHIFT_ADD;
  const size_t KH = (size_t)d->kernel_height, KW = (size_t)d->kernel_width;
  const size_t rows_per_block = stacked ? KW * s->mb : mg, k = stacked ? cg : s->gk;
  const size_t blocks = G * (stacked ? s->nmb * KH : s->ngroups);
  const ck_gc_k_order order = s->r.pix_is_b ? CK_GC_K_CHW : CK_GC_K_HWC; /* the lowering's */
  int ok = 1;
  s->fstride = ck_gc_filter_floats(&s->r, rows_per_block, k);
  size_t fbytes = ck_gc_floats_bytes(ck_gc_mul(s->fstride, blocks, &ok), &ok);
  /* the filter rows of a whole tap group, before a chunk's columns are taken */
  const size_t k_rows = stacked ? cg : cg * s->gh * s->gw;
  size_t rbytes = ck_gc_floats_bytes(ck_gc_mul(rows_per_block, k_rows, &ok), &ok);
  if (!ok || s->fstride == 0)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "kn2row: packed filter size overflows");
  s->filter = ck_aligned_alloc(fbytes);
  float *rows = malloc(rbytes);
  if (s->filter == NULL || rows == NULL) {
    free(rows);
    return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the kn2row packed filter (%zu bytes)",
                   fbytes);
  }
  for (size_t g = 0; g < G; g++) {
    if (stacked) {
      for (size_t b = 0; b < s->nmb; b++) {
        const size_t m0 = b * s->mb, mb = mg - m0 < s->mb ? mg - m0 : s->mb;
        for (size_t kh = 0; kh < KH; kh++) {
          for (size_t kw = 0; kw < KW; kw++) {
            const ck_tap_range one = {(int)kh, 1, (int)kw, 1};
            ck_gc_filter_rows(pb, oihw, (int)g, m0, mb, order, one, rows + kw * mb * cg);
          }
          ck_gc_pack_filter(ctx->kern, &s->r, KW * mb, cg, rows,
                            s->filter + ((g * s->nmb + b) * KH + kh) * s->fstride);
        }
      }
    } else {
      for (size_t q = 0; q < s->ngroups; q++) {
        ck_gc_filter_rows(pb, oihw, (int)g, 0, mg, order, group_taps(s, d, q), rows);
        if (s->nkc > 1) { /* one tap (gh = gw = 1): the chunk's columns, rows packed down */
          size_t c0;
          const size_t len = group_chunk(s, pb, q, &c0);
          for (size_t m = 0; m < mg; m++)
            memmove(rows + m * len, rows + m * cg + c0, len * sizeof(float));
        }
        ck_gc_pack_filter(ctx->kern, &s->r, mg, group_k(s, pb, q), rows,
                          s->filter + (g * s->ngroups + q) * s->fstride);
      }
    }
  }
  free(rows);
  return CK_OK;
}

/* Input rows referenced by some output row (stride 1): from 0 up to the last tap of the last
 * row. */
static size_t sa_rows(const ck_conv_problem *pb) {
  const ck_conv_desc *d = &pb->d;
  long last = (long)pb->out_h - 1 - d->pad_top + (long)(d->kernel_height - 1) * d->dilation_height;
  if (last > d->in_height - 1) last = d->in_height - 1;
  return last >= 0 ? (size_t)last + 1 : 0;
}

/* Depthwise layers (one input and one output channel per group): each tap's 1x1 product is a
 * per-channel scaling, which as engine calls would be thousands of 1-row GEMMs. The groups are
 * batched instead, vectorized across channels (NHWC) or pixels (NCHW), with the same structure:
 *   kn2row-aa: each tap's scaled, shifted input accumulated straight into the output, the
 *     border handled by clipping each tap's output range (no workspace);
 *   kn2row (stride 1): per band of input rows, the scaled band of every tap (the partial
 *     images, KN2ROW_TAP_TILE_FLOATS of them: bands do not overlap, so small ones cost nothing
 *     and keep them in L2), then the shift-add pass;
 *   kn2row (stride > 1, tap sums): per output row, every tap's scaled strided input (zero in
 *     the padding) as its partial result, then the sum of the taps.
 * Jobs: kn2row-aa and tap sums, an output row (NHWC) or a channel (NCHW); kn2row, a block of
 * channels (NHWC) or a channel (NCHW), its bands in order. */
static ck_status dw_setup(ck_conv_ctx *ctx, kn2row_state *s, const ck_conv_weights *w) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const size_t C = (size_t)d->in_channels, N = (size_t)d->batch, T = s->taps;
  const size_t W = (size_t)d->in_width;
  const int nchw = s->r.pix_is_b;
  int ok = 1;
  size_t jobs;
  s->dw = 1;
  if (s->mode != MODE_SHIFT_ADD) {
    jobs = ck_gc_mul(N, nchw ? C : (size_t)pb->out_h, &ok);
    if (s->mode == MODE_TAP_SUM) /* the taps' partial rows */
      s->y_bytes = ck_gc_floats_bytes(
          ck_gc_mul(ck_gc_mul(T, (size_t)pb->out_w, &ok), nchw ? 1 : C, &ok), &ok);
  } else {
    s->rows = sa_rows(pb);
    s->mb = nchw ? 1 : ck_gc_channel_block(N, C, 8, 8, ctx->threads);
    s->nmb = nchw ? C : ck_div_up(C, s->mb);
    const size_t per_row = ck_gc_mul(T * s->mb, W, &ok);
    s->band = per_row > 0 ? ck_gc_budget(KN2ROW_TAP_TILE_FLOATS) / per_row : 1;
    if (s->band < 1) s->band = 1;
    if (s->band > s->rows) s->band = s->rows > 0 ? s->rows : 1;
    s->nbands = ck_div_up(s->rows, s->band);
    s->y_bytes = ck_gc_floats_bytes(ck_gc_mul(ck_gc_mul(T, s->mb, &ok), s->band * W, &ok), &ok);
    jobs = ck_gc_mul(N, s->nmb, &ok);
  }
  s->workers = jobs < (size_t)ctx->threads ? (int)jobs : ctx->threads;
  s->region = 0;
  if (!ok || !ck_gc_region_add(&s->region, s->y_bytes) ||
      !ck_gc_ws_total(0, s->region, s->workers, &ctx->workspace_size))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "%s: workspace size overflows",
                   s->mode == MODE_AA ? "kn2row-aa" : "kn2row");
  return ck_gc_dw_weights(w, C, T, nchw, s->mode == MODE_AA ? "kn2row-aa" : "kn2row", &s->dw_w,
                          &s->bias);
}

static ck_status setup_common(ck_conv_ctx *ctx, const ck_conv_weights *w, kn2row_mode mode) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  kn2row_state *s = calloc(1, sizeof *s);
  if (s == NULL) return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the kn2row plan");
  ctx->state = s;
  s->mode = mode;
  ck_gc_roles_init(ctx->kern, d->layout == CK_LAYOUT_NCHW, &s->r);
  if (s->r.pw > CK_LOWER_MAX_PW || s->r.pw == 0)
    return ck_fail(CK_ERROR_UNSUPPORTED, "kn2row: panel width (%zu) of isa (%s) is not supported",
                   s->r.pw, ctx->kern->name);
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  const size_t N = (size_t)d->batch, W = (size_t)d->in_width;
  s->taps = (size_t)d->kernel_height * (size_t)d->kernel_width; /* <= filter size */
  s->P = (size_t)pb->out_h * (size_t)pb->out_w;
  int ok = 1;
  size_t jobs;
  s->nkc = 1;
  s->kch = cg;
  if (G > 1 && cg == 1 && mg == 1) return dw_setup(ctx, s, w);
  if (mode == MODE_SHIFT_ADD) {
    const size_t KW = (size_t)d->kernel_width, OH = (size_t)pb->out_h;
    /* Filter blocks are [KW*mb x cg], one per row of taps: mb a multiple of fw / gcd(KW, fw)
     * fills their panels. */
    size_t gcd = KW, rem = s->r.fw;
    while (rem != 0) {
      const size_t r = gcd % rem;
      gcd = rem;
      rem = r;
    }
    /* Channel blocks small enough that a block's filter (taps*mb x cg) stays in L2 through the
     * job; jobs of `band` output rows whose partial images (band*W x KW*mb) stay in L2 from
     * their GEMM to the shift-add; channels split only when there are too few row blocks for
     * the threads. */
    const size_t gran = s->r.fw / gcd;
    size_t mb_cache = ck_gc_budget(KN2ROW_FILTER_BLOCK_FLOATS) / (s->taps * cg) / gran * gran;
    if (mb_cache < gran) mb_cache = gran;
    const size_t per_row = ck_gc_mul(KW * (mg < mb_cache ? mg : mb_cache), W, &ok);
    s->band = per_row > 0 ? ck_gc_budget(KN2ROW_BAND_FLOATS) / per_row : 1;
    if (s->band < 1) s->band = 1;
    if (s->band > OH) s->band = OH > 0 ? OH : 1;
    s->nbands = ck_div_up(OH, s->band);
    /* Bands of equal height (52 rows: 4 of 13 rather than 3 of 17 and 1 of 1): the same jobs,
     * each with less to keep in L2. */
    s->band = ck_div_up(OH, s->nbands);
    s->mb = ck_gc_channel_block(N * G * s->nbands, mg, gran, KN2ROW_MIN_BLOCK, ctx->threads);
    if (mb_cache < s->mb) s->mb = mb_cache;
    s->nmb = ck_div_up(mg, s->mb);
    s->y_bytes = ck_gc_floats_bytes(ck_gc_mul(ck_gc_mul(KW, s->mb, &ok), s->band * W, &ok), &ok);
    /* The GEMMs of a job read input rows [i0, i1) shifted by kh*dh rows. When a row is whole
     * pixel panels (W a multiple of pw), the job's rows are packed once and each GEMM starts at
     * its first row's panel; otherwise the input rows are the plain operand, packed by the
     * engine for each row of taps. A GEMM reads one to band rows (fewer at the image's edges),
     * and the engine's need is asked for each. */
    s->pack_rows = W % s->r.pw == 0;
    size_t urows = s->band + (size_t)(d->kernel_height - 1) * (size_t)d->dilation_height;
    if (urows > (size_t)d->in_height) urows = (size_t)d->in_height;
    s->pix_bytes =
        s->pack_rows ? ck_gc_floats_bytes(ck_gc_mul(ck_gc_mul(urows, W, &ok), cg, &ok), &ok) : 0;
    const size_t mb_last = mg - (s->nmb - 1) * s->mb;
    s->eng_bytes = 0;
    for (size_t rows = 1; rows <= s->band && ok; rows++) {
      const size_t e = ck_gc_gemm_workspace(ctx->kern, &s->r, rows * W, rows * W, KW * s->mb,
                                            KW * mb_last, cg, s->pack_rows, &ok);
      if (e > s->eng_bytes) s->eng_bytes = e;
    }
    jobs = N * G * s->nbands * s->nmb;
  } else {
    /* Each GEMM re-reads and re-writes the output tile: with few channels per tap (and enough
     * output channels for that to dominate) taps are grouped until a GEMM's inner dimension
     * reaches min_k, whole rows of taps first. Depthwise layers keep single taps. */
    const size_t KH = (size_t)d->kernel_height, KW = (size_t)d->kernel_width;
    const int aa_rows = mode == MODE_AA && cg >= KN2ROW_MIN_K && cg <= KN2ROW_AA_ROW_MAX_C;
    const size_t min_k = aa_rows ? KN2ROW_AA_ROW_K : KN2ROW_MIN_K;
    s->gh = s->gw = 1;
    if (cg < min_k && mg >= KN2ROW_MIN_K) {
      if (cg * KW >= min_k) {
        s->gw = ck_div_up(min_k, cg);
      } else {
        s->gw = KW;
        s->gh = ck_div_up(min_k, cg * KW);
        if (s->gh > KH) s->gh = KH;
      }
    }
    /* Channel chunks (kn2row-aa, single taps), from the shape and the ISA, never the thread
     * count: they set the order of the sums. */
    const size_t panel_max = ck_gc_budget(KN2ROW_AA_PANEL_FLOATS);
    s->nkc = mode == MODE_AA && s->gh * s->gw == 1 && cg > 1
                 ? ck_div_up(ck_gc_mul(cg, s->r.pw, &ok), panel_max > 0 ? panel_max : 1)
                 : 1;
    if (s->nkc > cg) s->nkc = cg;
    s->kch = ck_div_up(cg, s->nkc);
    s->nkc = ck_div_up(cg, s->kch); /* no empty chunk */
    s->ngroups = ck_div_up(KH, s->gh) * ck_div_up(KW, s->gw) * s->nkc;
    s->gk = s->kch * s->gh * s->gw;
    /* At most half the image: two tiles per image and group give two threads work without
     * splitting channels, which would repeat every tap's gather. The tile is sized for the
     * whole tap, whose GEMMs the chunks make up. */
    const size_t half_image = ck_round_up(ck_div_up(s->P, 2), s->r.pw);
    s->pt = ck_gc_pixel_tile(s->P, cg * s->gh * s->gw + mg, ck_gc_budget(KN2ROW_TAP_TILE_FLOATS),
                             s->r.pw, 0, half_image);
    if (aa_rows && s->gh * s->gw > 1) {
      /* The grouped taps' tile holds no more floats than a single tap's would (up to a panel),
       * which keeps the workspace under a tenth of im2col's (the uncapped tile, 128 pixels
       * instead of 96 on resnet50_res2_3x3, took 0.103 of it on 2 threads, for 3% less time). */
      const size_t one = ck_gc_pixel_tile(s->P, cg + mg, ck_gc_budget(KN2ROW_TAP_TILE_FLOATS),
                                          s->r.pw, 0, half_image);
      const size_t cap = ck_round_up(ck_div_up(one * cg, cg * s->gh * s->gw), s->r.pw);
      if (cap < s->pt) s->pt = cap;
    }
    /* kn2row-aa: a job runs every tap over several gather tiles, so each tap's filter block is
     * reused from cache across them; the job's output tile stays in L2. Smaller jobs when the
     * threads need more of them. */
    s->jt = s->pt;
    size_t aa_mb = 0; /* kn2row-aa's channel block, when chosen with the pixel split */
    if (mode == MODE_AA) {
      size_t per = ck_gc_budget(KN2ROW_OUT_TILE_FLOATS) / mg / s->pt;
      if (per < 1) per = 1;
      /* Too few tiles when there are fewer than 4 per thread. The gather tile is then a
       * 4*threads-th of the image at most, but the jobs number only 2 per thread: every job
       * gathers its own taps, so each extra channel block repeats the whole gather (4 jobs per
       * thread made the 512-channel 7x7 and 14x14 layers 1.4-1.7x slower than im2col on 2
       * threads, 2 per thread 1.1-1.2x), while a larger gather tile leaves L1 (alexnet conv2
       * lost 15% with a tile of 2*threads-th). */
      const size_t tiles_want = 4 * (size_t)ctx->threads, want = 2 * (size_t)ctx->threads;
      const size_t images = N * G;
      if (ctx->threads > 1 && images * ck_div_up(s->P, per * s->pt) < tiles_want) {
        /* The gathered tap is then at most half of a tiles_want-th of the image (so a job
         * gathers two tiles or more), which keeps it well under the lowered tile im2col uses
         * for the same job size. The jobs split pixels into nt parts and channels into nmb
         * blocks, each job gathering its own taps: every pixel part streams the whole filter
         * once (nt*mg per tap and input channel) and every channel block gathers every tap
         * again (nmb*P), so the split that repeats least of the two is taken. Splitting pixels
         * alone would stream a large filter (512x512 channels: 9 MiB) from memory once per
         * few pixels. */
        const size_t target = ck_div_up(s->P, ck_div_up(tiles_want, images));
        size_t half = target / 2 / s->r.pw * s->r.pw;
        if (half < s->r.pw) half = s->r.pw;
        if (half < s->pt) s->pt = half;
        const size_t floor_mb =
            ck_round_up(KN2ROW_MIN_BLOCK > s->r.fw ? KN2ROW_MIN_BLOCK : s->r.fw, s->r.fw);
        size_t best = SIZE_MAX, best_pt = s->pt;
        for (size_t nt = 1; nt <= want; nt++) {
          /* nt parts of nearly equal size, each whole gather tiles of at most pt pixels (parts
           * rounded up to whole tiles of pt left 3136 pixels as 960, 960, 960 and 256, one of
           * two threads idle for a fifth of the time; now 4 x 800 in tiles of 160) */
          const size_t part = ck_round_up(ck_div_up(s->P, nt), s->r.pw);
          const size_t subs = ck_div_up(part, s->pt);
          const size_t pt = ck_round_up(ck_div_up(part, subs), s->r.pw), jt = subs * pt;
          const size_t ntr = ck_div_up(s->P, jt);
          /* Splitting channels alone (one pixel part), the blocks repeat only the gather, so
           * one per thread when the job's output tile still fits its L2 budget: 512-channel
           * 7x7 and 14x14 layers went from 1.2-1.3x im2col's time on 2 threads to 1.0-1.1x
           * (alexnet conv2, whose tile would be 729 x 128, lost 30% that way). */
          size_t split = ck_div_up(want, images * ntr);
          if (ntr == 1) {
            const size_t one = ck_div_up(want / 2, images);
            if (jt * ck_round_up(ck_div_up(mg, one), s->r.fw) <=
                ck_gc_budget(KN2ROW_OUT_TILE_FLOATS))
              split = one;
          }
          size_t mb = ck_round_up(ck_div_up(mg, split), s->r.fw);
          if (mb < floor_mb) mb = floor_mb;
          if (mb > mg) mb = mg;
          const size_t cost = ntr * mg + ck_div_up(mg, mb) * s->P;
          if (cost < best) {
            best = cost;
            s->jt = jt;
            best_pt = pt;
            aa_mb = mb;
          }
          if (subs == 1) break; /* one gather tile per job */
        }
        s->pt = best_pt;
      } else {
        if (per > 1) s->jt = per * s->pt;
        if (s->jt > ck_round_up(s->P, s->pt)) s->jt = ck_round_up(s->P, s->pt);
      }
    }
    s->ntiles = ck_div_up(s->P, s->jt);
    s->mb = aa_mb > 0 ? aa_mb
                      : ck_gc_channel_block(N * G * s->ntiles, mg, s->r.fw, KN2ROW_MIN_BLOCK,
                                            ctx->threads);
    s->nmb = ck_div_up(mg, s->mb);
    const size_t tap_bytes = ck_gc_floats_bytes(ck_gc_mul(s->gk, s->pt, &ok), &ok);
    s->pix_bytes = tap_bytes;
    s->y_bytes =
        mode == MODE_TAP_SUM
            ? ck_gc_floats_bytes(ck_gc_mul(ck_gc_mul(s->ngroups, s->mb, &ok), s->pt, &ok), &ok)
            : 0;
    size_t mb_hi = 0, mb_lo = mg; /* the largest and smallest channel blocks */
    for (size_t b = 0; b < s->nmb; b++) {
      size_t m0;
      const size_t mb = chan_block(s, mg, b, &m0);
      if (mb > mb_hi) mb_hi = mb;
      if (mb < mb_lo) mb_lo = mb;
    }
    s->eng_bytes = 0;
    for (size_t q = 0; q < s->ngroups; q++) { /* the groups' inner dimensions differ at edges */
      const size_t last_job = s->P - (s->ntiles - 1) * s->jt, last_gather = last_job % s->pt;
      size_t b = ck_gc_gemm_workspace(ctx->kern, &s->r, s->pt, last_gather ? last_gather : s->pt,
                                      mb_hi, mb_lo, group_k(s, pb, q), 1, &ok);
      if (b > s->eng_bytes) s->eng_bytes = b;
    }
    jobs = N * G * s->ntiles * s->nmb;
  }
  s->workers = jobs < (size_t)ctx->threads ? (int)jobs : ctx->threads;
  s->region = 0;
  if (!ok || !ck_gc_region_add(&s->region, s->pix_bytes) ||
      !ck_gc_region_add(&s->region, s->y_bytes) || !ck_gc_region_add(&s->region, s->eng_bytes) ||
      !ck_gc_ws_total(0, s->region, s->workers, &ctx->workspace_size))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "%s: workspace size overflows",
                   mode == MODE_AA ? "kn2row-aa" : "kn2row");
  s->bias = malloc((size_t)d->out_channels * sizeof(float));
  s->zero = calloc(cg, sizeof(float));
  if (s->bias == NULL || s->zero == NULL)
    return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the kn2row plan");
  memcpy(s->bias, w->bias, (size_t)d->out_channels * sizeof(float));
  return pack_filters(ctx, s, w->filter_oihw);
}

static ck_status kn2row_setup(ck_conv_ctx *ctx, const ck_conv_weights *w) {
  const ck_conv_desc *d = &ctx->pb.d;
  int unit_stride = d->stride_height == 1 && d->stride_width == 1;
  return setup_common(ctx, w, unit_stride ? MODE_SHIFT_ADD : MODE_TAP_SUM);
}

static ck_status kn2row_aa_setup(ck_conv_ctx *ctx, const ck_conv_weights *w) {
  return setup_common(ctx, w, MODE_AA);
}

static inline float clampf(float v, float lo, float hi) {
  /* keeps NaN, like the reference and the kernels */
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

/* ---- kn2row-aa and tap sums: one gathered tap at a time over a tile of output pixels -------- */

typedef struct {
  const ck_conv_ctx *ctx;
  const kn2row_state *s;
  const float *in;
  float *out;
} run_args;

/* A tile of output pixels: image n, group g, pixels [p0, p0+np). */
typedef struct {
  size_t n, g, p0, np;
} tap_unit;

static tap_unit tap_unit_of(const run_args *a, size_t u) {
  const kn2row_state *s = a->s;
  const size_t G = (size_t)a->ctx->pb.d.groups;
  const size_t tile = u % s->ntiles, g = u / s->ntiles % G, n = u / s->ntiles / G;
  const size_t p0 = tile * s->jt;
  return (tap_unit){n, g, p0, s->P - p0 < s->jt ? s->P - p0 : s->jt};
}

/* Gather tile i of a job's unit. */
static tap_unit tap_sub(const kn2row_state *s, tap_unit un, size_t i) {
  const size_t off = i * s->pt;
  return (tap_unit){un.n, un.g, un.p0 + off, un.np - off < s->pt ? un.np - off : s->pt};
}

/* Gathers tap group t of the unit, panels [q_lo, q_hi), into pix (the tile's first panel). */
static void tap_gather(const run_args *a, tap_unit un, size_t t, size_t q_lo, size_t q_hi,
                       float *pix) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const size_t C = (size_t)d->in_channels, cg = (size_t)pb->cin_g, pw = s->r.pw;
  const size_t HW = (size_t)d->in_height * (size_t)d->in_width;
  const size_t lo = q_lo * pw, hi = q_hi * pw < un.np ? q_hi * pw : un.np;
  if (lo >= hi) return;
  const ck_tap_range tap = group_taps(s, d, t);
  float *dst = pix + q_lo * pw * group_k(s, pb, t);
  /* a chunk's channels, as a group of that many */
  ck_conv_problem pc;
  size_t c0 = 0;
  if (s->nkc > 1) {
    pc = *pb;
    pc.cin_g = (int)group_chunk(s, pb, t, &c0);
    pb = &pc;
  }
  if (s->r.pix_is_b)
    ck_lower_nchw(pb, a->in + (un.n * C + un.g * cg + c0) * HW, un.p0 + lo, hi - lo, tap, pw, dst);
  else
    ck_lower_nhwc(pb, a->in + un.n * HW * C + un.g * cg + c0, s->zero, un.p0 + lo, hi - lo, tap, pw,
                  a->ctx->kern->gemm_packt, dst);
}

/* The GEMM of tap group t for channel block blk of the unit, on its gathered taps pix:
 * accumulated into the output (kn2row-aa; the last group adds bias and activation) or into the
 * group's partial result y + t*mb*pt (tap sums). */
static void tap_gemm(const run_args *a, tap_unit un, size_t blk, size_t t, const float *pix,
                     float *y, void *ews) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const size_t M = (size_t)d->out_channels, P = s->P;
  const size_t mg = (size_t)pb->cout_g, k = group_k(s, pb, t);
  const int nchw = s->r.pix_is_b;
  size_t m0;
  const size_t mb = chan_block(s, mg, blk, &m0);
  ck_gc_tile tl = {.np = un.np,
                   .mb = mb,
                   .k = k,
                   .pix = {.data = pix, .packed = 1},
                   .filt = s->filter + (un.g * s->ngroups + t) * s->fstride + m0 * k,
                   .lo = -INFINITY,
                   .hi = INFINITY};
  if (s->mode == MODE_AA) {
    tl.c = nchw ? a->out + (un.n * M + un.g * mg + m0) * P + un.p0
                : a->out + (un.n * P + un.p0) * M + un.g * mg + m0;
    tl.ldc = nchw ? P : M;
    tl.beta = t > 0 ? 1.0f : 0.0f;
    if (t + 1 == s->ngroups) {
      tl.bias = s->bias + un.g * mg + m0;
      tl.lo = pb->min;
      tl.hi = pb->max;
    }
  } else {
    /* Y_t: [mb x np] (NCHW) or [np x mb] (NHWC) */
    tl.c = y + t * mb * s->pt;
    tl.ldc = nchw ? s->pt : mb;
  }
  ck_gc_gemm(a->ctx->kern, &s->r, &tl, ews);
}

/* Tap sums: out = activation(bias + the taps' partial results in order). */
static void tap_sum(const run_args *a, tap_unit un, size_t blk, const float *y) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const kn2row_state *s = a->s;
  const size_t M = (size_t)pb->d.out_channels, P = s->P, mg = (size_t)pb->cout_g;
  const int nchw = s->r.pix_is_b;
  size_t m0;
  const size_t mb = chan_block(s, mg, blk, &m0);
  const size_t y_ld = nchw ? s->pt : mb, tstride = mb * s->pt;
  float *out_t = nchw ? a->out + (un.n * M + un.g * mg + m0) * P + un.p0
                      : a->out + (un.n * P + un.p0) * M + un.g * mg + m0;
  const float *bias = s->bias + un.g * mg + m0;
  const size_t rows = nchw ? mb : un.np, cols = nchw ? un.np : mb, ld = nchw ? P : M;
  const size_t T = s->ngroups;
  const float lo = pb->min, hi = pb->max;
  /* A row of the output at a time, one contiguous pass per tap over it (the sum still bias
   * first, then the taps in order), so each pass is a plain vector loop. */
  for (size_t i = 0; i < rows; i++) {
    float *o = out_t + i * ld;
    const float *yi = y + i * y_ld;
    if (nchw)
      for (size_t j = 0; j < cols; j++) o[j] = bias[i] + yi[j];
    else
      for (size_t j = 0; j < cols; j++) o[j] = bias[j] + yi[j];
    for (size_t t = 1; t < T; t++)
      for (size_t j = 0; j < cols; j++) o[j] += yi[t * tstride + j];
    for (size_t j = 0; j < cols; j++) o[j] = clampf(o[j], lo, hi);
  }
}

static void tap_tile_job(const run_args *a, size_t job, float *pix, float *y, void *ews) {
  const kn2row_state *s = a->s;
  const tap_unit un = tap_unit_of(a, job / s->nmb);
  const size_t blk = job % s->nmb, panels = ck_div_up(s->pt, s->r.pw);
  const size_t subs = ck_div_up(un.np, s->pt); /* 1 for the tap sums */
  for (size_t t = 0; t < s->ngroups; t++) {
    for (size_t i = 0; i < subs; i++) {
      tap_gather(a, tap_sub(s, un, i), t, 0, panels, pix);
      tap_gemm(a, tap_sub(s, un, i), blk, t, pix, y, ews);
    }
  }
  if (s->mode == MODE_TAP_SUM) tap_sum(a, un, blk, y);
}

/* ---- kn2row shift-add ---------------------------------------------------------------------- */

/* The taps kh of output row oh that read a real input row: [*first, *last], or *first > *last. */
static void valid_kh(const ck_conv_desc *d, long oh, long *first, long *last) {
  *first = d->kernel_height;
  *last = -1;
  for (long kh = 0; kh < d->kernel_height; kh++) {
    long ih = oh - d->pad_top + kh * d->dilation_height;
    if (ih < 0 || ih >= d->in_height) continue;
    if (kh < *first) *first = kh;
    *last = kh;
  }
}

/* Output columns ow whose tap kw reads a real input column (stride 1): [lo, hi). */
static void valid_ow(const ck_conv_problem *pb, long kw, long *lo, long *hi) {
  const ck_conv_desc *d = &pb->d;
  long off = -d->pad_left + kw * d->dilation_width; /* iw = ow + off */
  *lo = off < 0 ? -off : 0;
  *hi = d->in_width - off;
  if (*hi > pb->out_w) *hi = pb->out_w;
  if (*hi < *lo) *hi = *lo;
}

/* One output row of the NCHW shift-add for a row of 3 taps (3-wide kernels), the taps in one pass:
 * o[ow] = clamp(((start + y_0) + y_1) + y_2) over the valid taps, start = b when `init`, else
 * o[ow]; tap kw's partial row at y + kw*ts, read at column ow + off_kw. The same additions in
 * the same order as one pass per tap (so the same bits), but the output row is read and written
 * once instead of three times: with a pass per tap, 4-float loads, adds and stores of the output
 * took 29% of kn2row's time on resnet50_res2_3x3. lo, hi: the clamp, or -INF, +INF before the
 * row's last row of taps (an identity, NaN kept). */
static void sa_row_nchw3(const ck_conv_problem *pb, float *o, const float *y, size_t ts, float b,
                         int init, float lo, float hi) {
  const long OW = pb->out_w;
  long l[3], h[3], off[3];
  long L = 0, R = OW;
  for (long kw = 0; kw < 3; kw++) {
    off[kw] = -pb->d.pad_left + kw * pb->d.dilation_width;
    valid_ow(pb, kw, &l[kw], &h[kw]);
    if (l[kw] > L) L = l[kw];
    if (h[kw] < R) R = h[kw];
  }
  if (L > OW) L = OW;
  if (R < L) R = L;
  /* the columns some tap misses, one at a time: [0, L) and [R, OW) */
  for (long ow = L == 0 ? R : 0; ow < OW; ow = ow + 1 == L ? R : ow + 1) {
    float v = init ? b : o[ow];
    for (long kw = 0; kw < 3; kw++)
      if (ow >= l[kw] && ow < h[kw]) v += y[(size_t)kw * ts + (size_t)(ow + off[kw])];
    o[ow] = clampf(v, lo, hi);
  }
  /* the columns every tap reaches */
  if (R == L) return;
  const float *y0 = y + (L + off[0]), *y1 = y + ts + (L + off[1]), *y2 = y + 2 * ts + (L + off[2]);
  float *oi = o + L;
  const size_t n = (size_t)(R - L);
  if (init)
    for (size_t i = 0; i < n; i++) oi[i] = clampf(((b + y0[i]) + y1[i]) + y2[i], lo, hi);
  else
    for (size_t i = 0; i < n; i++) oi[i] = clampf(((oi[i] + y0[i]) + y1[i]) + y2[i], lo, hi);
}

/* One output pixel's mb channels (NHWC): o[m] = init[m] + y[0*step + m] + ... + y[(n-1)*step +
 * m], summed in that order, clamped to [lo, hi] if `clamp`. init may be o. The channels are taken
 * 32 at a time into a block of accumulators the compiler keeps in vector registers, so the output
 * is read and written once per row of taps rather than once per tap, and the sum stays the same
 * sequence of additions as one tap at a time. */
#define SA_CHUNK 32
static void sa_pixel(float *o, const float *init, const float *y, size_t step, size_t n, size_t mb,
                     int clamp, float lo, float hi) {
  size_t m = 0;
  for (; m + SA_CHUNK <= mb; m += SA_CHUNK) {
    float acc[SA_CHUNK];
    for (size_t i = 0; i < SA_CHUNK; i++) acc[i] = init[m + i];
    for (size_t j = 0; j < n; j++) {
      const float *yj = y + j * step + m;
      for (size_t i = 0; i < SA_CHUNK; i++) acc[i] += yj[i];
    }
    if (clamp)
      for (size_t i = 0; i < SA_CHUNK; i++) acc[i] = clampf(acc[i], lo, hi);
    for (size_t i = 0; i < SA_CHUNK; i++) o[m + i] = acc[i];
  }
  for (; m < mb; m++) {
    float v = init[m];
    for (size_t j = 0; j < n; j++) v += y[j * step + m];
    o[m] = clamp ? clampf(v, lo, hi) : v;
  }
}

/* One output row of the NHWC shift-add for kernel row kh: output column ow adds the valid taps
 * kw (0 <= ow - pl + kw*dw < W, a contiguous range) of partial row yrow, in kw order. Input
 * column iw of yrow starts at iw*pix_floats and tap kw sits at (tap0 + kw)*mb within it. init:
 * kh is the outputs' first valid kernel row (start from the bias); fin: their last (clamp). */
static void sa_row_nhwc(const ck_conv_problem *pb, float *orow, const float *yrow,
                        size_t pix_floats, size_t tap0, size_t mb, const float *bias, int init,
                        int fin) {
  const ck_conv_desc *d = &pb->d;
  const long KW = d->kernel_width, dw = d->dilation_width, pl = d->pad_left, W = d->in_width;
  const size_t M = (size_t)d->out_channels, step = (size_t)dw * pix_floats + mb;
  for (long ow = 0; ow < pb->out_w; ow++) {
    long kw_lo = 0, kw_hi = KW;
    if (ow - pl < 0) kw_lo = (pl - ow + dw - 1) / dw;
    if (ow - pl + (KW - 1) * dw > W - 1)
      kw_hi = W - 1 - ow + pl >= 0 ? (W - 1 - ow + pl) / dw + 1 : 0;
    if (kw_hi < kw_lo) kw_hi = kw_lo;
    const size_t off =
        kw_hi > kw_lo ? (size_t)(ow - pl + kw_lo * dw) * pix_floats + (tap0 + (size_t)kw_lo) * mb
                      : 0;
    float *o = orow + (size_t)ow * M;
    sa_pixel(o, init ? bias : o, yrow + off, step, (size_t)(kw_hi - kw_lo), mb, fin, pb->min,
             pb->max);
  }
}

/* Output rows [o0, o1) that no kernel row reaches (all in the padding) get the clamped bias:
 * channel m of pixel p at out_c[m*P + p] (NCHW) or out_c[p*ldp + m] (NHWC). */
static void fill_unreached_rows(const ck_conv_problem *pb, float *out_c, const float *bias,
                                size_t mb, int nchw, size_t P, size_t ldp, long o0, long o1) {
  const size_t OW = (size_t)pb->out_w;
  for (long oh = o0; oh < o1; oh++) {
    long first, last;
    valid_kh(&pb->d, oh, &first, &last);
    if (first <= last) continue;
    for (size_t ow = 0; ow < OW; ow++)
      for (size_t m = 0; m < mb; m++) {
        const size_t px = (size_t)oh * OW + ow;
        out_c[nchw ? m * P + px : px * ldp + m] = clampf(bias[m], pb->min, pb->max);
      }
  }
}

/* Adds the taps that band [r0, r1) of partial images y holds into the output rows they reach:
 * NCHW: y[(t*mb + m)*npix + (ih - r0)*W + iw], out_c = channel m0's plane;
 * NHWC: y[((ih - r0)*W + iw)*taps*mb + t*mb + m], out_c = image n's first pixel at channel m0.
 * A row starts from the bias at its first valid tap and is clamped after its last; the taps are
 * added in (kh, kw) order. */
static void shift_add(const run_args *a, const float *y, long r0, long r1, size_t mb, float *out_c,
                      const float *bias) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const long KH = d->kernel_height, KW = d->kernel_width, dh = d->dilation_height;
  const long dw = d->dilation_width, pl = d->pad_left;
  const long OH = pb->out_h, OW = pb->out_w, W = d->in_width, pt = d->pad_top;
  const size_t P = s->P, M = (size_t)d->out_channels, npix = (size_t)(r1 - r0) * (size_t)W;
  const size_t tm = s->taps * mb;
  const int nchw = s->r.pix_is_b;
  long oh_lo = r0 + pt - (KH - 1) * dh, oh_hi = r1 - 1 + pt;
  if (oh_lo < 0) oh_lo = 0;
  if (oh_hi > OH - 1) oh_hi = OH - 1;
  for (long oh = oh_lo; oh <= oh_hi; oh++) {
    long first, last;
    valid_kh(d, oh, &first, &last);
    for (long kh = first; kh <= last; kh++) {
      const long ih = oh - pt + kh * dh;
      if (ih < r0 || ih >= r1) continue;
      if (!nchw) {
        /* Pixel by pixel, the row of taps kh at once. */
        sa_row_nhwc(pb, out_c + (size_t)(oh * OW) * M, y + (size_t)(ih - r0) * (size_t)W * tm, tm,
                    (size_t)(kh * KW), mb, bias, kh == first, kh == last);
        continue;
      }
      if (kh == first) {
        for (size_t m = 0; m < mb; m++)
          for (long ow = 0; ow < OW; ow++) out_c[m * P + (size_t)(oh * OW + ow)] = bias[m];
      }
      for (long kw = 0; kw < KW; kw++) {
        const size_t t = (size_t)(kh * KW + kw);
        const long off = -pl + kw * dw;
        long lo, hi;
        valid_ow(pb, kw, &lo, &hi);
        for (size_t m = 0; m < mb; m++) {
          float *o = out_c + m * P + (size_t)(oh * OW);
          const float *yr = y + (t * mb + m) * npix + (size_t)((ih - r0) * W);
          for (long ow = lo; ow < hi; ow++) o[ow] += yr[ow + off];
        }
      }
      if (kh == last) {
        for (size_t m = 0; m < mb; m++) {
          float *o = out_c + m * P + (size_t)(oh * OW);
          for (long ow = 0; ow < OW; ow++) o[ow] = clampf(o[ow], pb->min, pb->max);
        }
      }
    }
  }
}

/* Input rows of band b: [*r0, *r0 + return). */
static size_t sa_band_rows(const kn2row_state *s, size_t b, size_t *r0) {
  *r0 = b * s->band;
  return s->band < s->rows - *r0 ? s->band : s->rows - *r0;
}

/* Job j of the shift-add path: output rows [o0, o0 + band) of channel block blk of image n,
 * group g. Rows no tap reaches get the bias. Then for each row of taps kh in order: one GEMM of
 * the input rows those output rows read through kh (the plain input, no lowering) by the taps'
 * stacked filter gives the KW partial images y [rows*W x KW*mb] (NCHW: [KW*mb x rows*W]), which
 * the shift-add adds into the rows at once, while they are in L2. A row starts from the bias at
 * its first valid kh and is clamped after its last; its taps are added in (kh, kw) order, so
 * the sum does not depend on the job size. */
static void sa_job(const run_args *a, size_t job, float *pix, float *y, void *ews) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const size_t M = (size_t)d->out_channels, C = (size_t)d->in_channels, P = s->P;
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  const size_t HW = (size_t)d->in_height * (size_t)d->in_width;
  const long KH = d->kernel_height, KW = d->kernel_width, dh = d->dilation_height;
  const long dw = d->dilation_width, pl = d->pad_left, pt = d->pad_top;
  const long H = d->in_height, W = d->in_width, OH = pb->out_h, OW = pb->out_w;
  const int nchw = s->r.pix_is_b;
  const size_t blk = job % s->nmb, rb = job / s->nmb % s->nbands;
  const size_t g = job / s->nmb / s->nbands % G, n = job / s->nmb / s->nbands / G;
  const size_t m0 = blk * s->mb, mb = mg - m0 < s->mb ? mg - m0 : s->mb, km = (size_t)KW * mb;
  const long o0 = (long)(rb * s->band), o1 = o0 + (long)s->band < OH ? o0 + (long)s->band : OH;
  float *out_c = nchw ? a->out + (n * M + g * mg + m0) * P : a->out + n * P * M + g * mg + m0;
  const float *bias = s->bias + g * mg + m0;
  const float *in_g = nchw ? a->in + (n * C + g * cg) * HW : a->in + n * HW * C + g * cg;
  fill_unreached_rows(pb, out_c, bias, mb, nchw, P, M, o0, o1);
  /* All the input rows the job reads: [u0, u1). */
  const long u0 = o0 - pt > 0 ? o0 - pt : 0;
  const long u1 = o1 - pt + (KH - 1) * dh < H ? o1 - pt + (KH - 1) * dh : H;
  if (s->pack_rows && u0 < u1) {
    const size_t cnt = (size_t)(u1 - u0) * (size_t)W;
    if (nchw)
      ck_gemm_pack_b(a->ctx->kern, cg, cnt, in_g + (size_t)(u0 * W), HW, 1, pix);
    else
      ck_gemm_pack_a(a->ctx->kern, cnt, cg, in_g + (size_t)(u0 * W) * C, C, 1, pix);
  }
  for (long kh = 0; kh < KH; kh++) {
    long i0 = o0 - pt + kh * dh, i1 = o1 - pt + kh * dh; /* input rows read through kh */
    if (i0 < 0) i0 = 0;
    if (i1 > H) i1 = H;
    if (i0 >= i1) continue;
    const size_t npix = (size_t)(i1 - i0) * (size_t)W;
    ck_gc_tile tl = {
        .np = npix,
        .mb = km,
        .k = cg,
        .pix =
            nchw
                ? (ck_gc_pixels){.data = in_g + (size_t)(i0 * W), .row_stride = HW, .col_stride = 1}
                : (ck_gc_pixels){.data = in_g + (size_t)(i0 * W) * C,
                                 .row_stride = 1,
                                 .col_stride = C},
        .filt = s->filter + ((g * s->nmb + blk) * (size_t)KH + (size_t)kh) * s->fstride,
        .c = y,
        .ldc = nchw ? npix : km,
        .lo = -INFINITY,
        .hi = INFINITY};
    if (s->pack_rows) /* row i0 starts a panel */
      tl.pix = (ck_gc_pixels){.data = pix + (size_t)((i0 - u0) * W) * cg, .packed = 1};
    ck_gc_gemm(a->ctx->kern, &s->r, &tl, ews);
    if (!nchw) {
      for (long ih = i0; ih < i1; ih++) {
        const long oh = ih + pt - kh * dh;
        long first, last;
        valid_kh(d, oh, &first, &last);
        /* Pixel by pixel, the row of taps at once. */
        sa_row_nhwc(pb, out_c + (size_t)(oh * OW) * M, y + (size_t)(ih - i0) * (size_t)W * km, km,
                    0, mb, bias, kh == first, kh == last);
      }
      continue;
    }
    /* Channel by channel, its rows in order: each pass walks one output plane and the KW partial
     * planes of the channel contiguously (row by row, the channels interleaved, each row's few
     * lines were a new stream in another plane). */
    for (size_t m = 0; m < mb; m++) {
      for (long ih = i0; ih < i1; ih++) {
        const long oh = ih + pt - kh * dh;
        long first, last;
        valid_kh(d, oh, &first, &last);
        float *o = out_c + m * P + (size_t)(oh * OW);
        if (KW == 3) {
          const int fin = kh == last;
          sa_row_nchw3(pb, o, y + m * npix + (size_t)((ih - i0) * W), mb * npix, bias[m],
                       kh == first, fin ? pb->min : -INFINITY, fin ? pb->max : INFINITY);
          continue;
        }
        if (kh == first)
          for (long ow = 0; ow < OW; ow++) o[ow] = bias[m];
        for (long kw = 0; kw < KW; kw++) {
          const long off = -pl + kw * dw;
          const float *yr = y + ((size_t)kw * mb + m) * npix + (size_t)((ih - i0) * W);
          long lo, hi;
          valid_ow(pb, kw, &lo, &hi);
          for (long ow = lo; ow < hi; ow++) o[ow] += yr[ow + off];
        }
        if (kh == last)
          for (long ow = 0; ow < OW; ow++) o[ow] = clampf(o[ow], pb->min, pb->max);
      }
    }
  }
}

/* ---- Depthwise (dw_setup) -------------------------------------------------------------- */

/* Output columns ow whose input column ow*sw + off lies in [0, W): [*lo, *hi). */
static void dw_cols(const ck_conv_problem *pb, long off, long *lo, long *hi) {
  const long sw = pb->d.stride_width, W = pb->d.in_width;
  *lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  *hi = off >= W ? 0 : (W - 1 - off) / sw + 1;
  if (*hi > pb->out_w) *hi = pb->out_w;
  if (*hi < *lo) *hi = *lo;
}

/* kn2row-aa, NHWC: output row oh of image n, the taps accumulated in order, then bias and
 * activation. Tap sums (y non-NULL): each tap's row is its partial result y + t*OW*C (zero where
 * the tap reads padding), then out = activation(bias + the partials in order). */
static void dw_aa_row(const run_args *a, size_t n, long oh, float *y) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const size_t C = (size_t)d->in_channels, OW = (size_t)pb->out_w, T = s->taps;
  const long H = d->in_height, W = d->in_width, sw = d->stride_width;
  float *o = a->out + (n * (size_t)pb->out_h + (size_t)oh) * OW * C;
  if (y != NULL)
    for (size_t i = 0; i < T * OW * C; i++) y[i] = 0.0f;
  else
    for (size_t i = 0; i < OW * C; i++) o[i] = 0.0f;
  for (long kh = 0; kh < d->kernel_height; kh++) {
    const long ih = oh * d->stride_height - d->pad_top + kh * d->dilation_height;
    if (ih < 0 || ih >= H) continue;
    const float *row = a->in + (n * (size_t)H + (size_t)ih) * (size_t)W * C;
    for (long kw = 0; kw < d->kernel_width; kw++) {
      const size_t t = (size_t)(kh * d->kernel_width + kw);
      const long off = -d->pad_left + kw * d->dilation_width;
      const float *wt = s->dw_w + t * C;
      float *acc = y != NULL ? y + t * OW * C : o;
      long lo, hi;
      dw_cols(pb, off, &lo, &hi);
      for (long ow = lo; ow < hi; ow++) {
        const float *x = row + (size_t)(ow * sw + off) * C;
        float *oo = acc + (size_t)ow * C;
        for (size_t c = 0; c < C; c++) oo[c] += wt[c] * x[c];
      }
    }
  }
  for (size_t j = 0; j < OW; j++)
    for (size_t c = 0; c < C; c++) {
      float v;
      if (y != NULL) {
        v = s->bias[c];
        for (size_t t = 0; t < T; t++) v += y[(t * OW + j) * C + c];
      } else {
        v = o[j * C + c] + s->bias[c];
      }
      o[j * C + c] = clampf(v, pb->min, pb->max);
    }
}

/* kn2row-aa and tap sums, NCHW: channel c of image n, row by row as dw_aa_row (y: T*OW). */
static void dw_aa_plane(const run_args *a, size_t n, size_t c, float *y) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const size_t C = (size_t)d->in_channels, OW = (size_t)pb->out_w, T = s->taps;
  const long H = d->in_height, W = d->in_width, sw = d->stride_width;
  const float *in = a->in + (n * C + c) * (size_t)(H * W), *wc = s->dw_w + c * T;
  for (long oh = 0; oh < pb->out_h; oh++) {
    float *o = a->out + ((n * C + c) * (size_t)pb->out_h + (size_t)oh) * OW;
    if (y != NULL)
      for (size_t i = 0; i < T * OW; i++) y[i] = 0.0f;
    else
      for (size_t i = 0; i < OW; i++) o[i] = 0.0f;
    for (long kh = 0; kh < d->kernel_height; kh++) {
      const long ih = oh * d->stride_height - d->pad_top + kh * d->dilation_height;
      if (ih < 0 || ih >= H) continue;
      for (long kw = 0; kw < d->kernel_width; kw++) {
        const size_t t = (size_t)(kh * d->kernel_width + kw);
        const long off = -d->pad_left + kw * d->dilation_width;
        const float wt = wc[t], *x = in + ih * W + off;
        float *acc = y != NULL ? y + t * OW : o;
        long lo, hi;
        dw_cols(pb, off, &lo, &hi);
        if (sw == 1)
          for (long ow = lo; ow < hi; ow++) acc[ow] += wt * x[ow];
        else
          for (long ow = lo; ow < hi; ow++) acc[ow] += wt * x[ow * sw];
      }
    }
    for (size_t i = 0; i < OW; i++) {
      float v;
      if (y != NULL) {
        v = s->bias[c];
        for (size_t t = 0; t < T; t++) v += y[t * OW + i];
      } else {
        v = o[i] + s->bias[c];
      }
      o[i] = clampf(v, pb->min, pb->max);
    }
  }
}

/* kn2row, job j: channel block (NHWC) or channel (NCHW) of an image. Rows no tap reaches get
 * the bias; then band by band, every tap's scaled band into y and the shift-add. */
static void dw_sa_job(const run_args *a, size_t job, float *y) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const size_t C = (size_t)d->in_channels, T = s->taps, P = s->P;
  const size_t W = (size_t)d->in_width, HW = (size_t)d->in_height * W;
  const int nchw = s->r.pix_is_b;
  const size_t n = job / s->nmb, blk = job % s->nmb;
  const size_t c0 = blk * s->mb, mb = C - c0 < s->mb ? C - c0 : s->mb;
  float *out_c = nchw ? a->out + (n * C + c0) * P : a->out + n * P * C + c0;
  const float *bias = s->bias + c0;
  fill_unreached_rows(pb, out_c, bias, mb, nchw, P, C, 0, pb->out_h);
  for (size_t b = 0; b < s->nbands; b++) {
    size_t r0;
    const size_t nrows = sa_band_rows(s, b, &r0), npix = nrows * W;
    if (nchw) { /* y[t*npix + pixel] */
      const float *x = a->in + (n * C + c0) * HW + r0 * W, *wc = s->dw_w + c0 * T;
      for (size_t t = 0; t < T; t++)
        for (size_t p = 0; p < npix; p++) y[t * npix + p] = wc[t] * x[p];
    } else { /* y[(pixel*T + t)*mb + m] */
      const float *x = a->in + (n * HW + r0 * W) * C + c0;
      for (size_t p = 0; p < npix; p++)
        for (size_t t = 0; t < T; t++) {
          const float *wt = s->dw_w + t * C + c0;
          float *yy = y + (p * T + t) * mb;
          for (size_t m = 0; m < mb; m++) yy[m] = wt[m] * x[p * C + m];
        }
    }
    shift_add(a, y, (long)r0, (long)(r0 + nrows), mb, out_c, bias);
  }
}

static void dw_execute(const run_args *a, void *workspace) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const kn2row_state *s = a->s;
  const size_t N = (size_t)pb->d.batch, C = (size_t)pb->d.in_channels;
  const int nchw = s->r.pix_is_b;
  const size_t per_image = s->mode != MODE_SHIFT_ADD ? (nchw ? C : (size_t)pb->out_h) : s->nmb;
#pragma omp parallel num_threads(s->workers) if (s->workers > 1)
  {
    unsigned char *cur = ck_gc_ws_region(workspace, 0, s->region, omp_get_thread_num());
    float *y = s->mode == MODE_AA ? NULL : ck_gc_carve(&cur, s->y_bytes); /* AA: none */
#pragma omp for schedule(dynamic, 1)
    for (long job = 0; job < (long)(N * per_image); job++) {
      const size_t n = (size_t)job / per_image, r = (size_t)job % per_image;
      if (s->mode == MODE_SHIFT_ADD)
        dw_sa_job(a, (size_t)job, y);
      else if (nchw)
        dw_aa_plane(a, n, r, y);
      else
        dw_aa_row(a, n, (long)r, y);
    }
  }
}

static void kn2row_execute(const ck_conv_ctx *ctx, const float *input, float *output,
                           void *workspace) {
  const ck_conv_desc *d = &ctx->pb.d;
  const kn2row_state *s = ctx->state;
  const run_args a = {ctx, s, input, output};
  if (s->dw) {
    dw_execute(&a, workspace);
    return;
  }
  const size_t per_image = s->mode == MODE_SHIFT_ADD ? 1 : s->ntiles;
  const size_t units = (size_t)d->batch * (size_t)d->groups * per_image;
#pragma omp parallel num_threads(s->workers) if (s->workers > 1)
  {
    unsigned char *cur = ck_gc_ws_region(workspace, 0, s->region, omp_get_thread_num());
    float *pix = ck_gc_carve(&cur, s->pix_bytes);
    float *y = ck_gc_carve(&cur, s->y_bytes);
    void *ews = ck_gc_carve(&cur, s->eng_bytes);
    if (s->mode == MODE_SHIFT_ADD) {
#pragma omp for schedule(dynamic, 1)
      for (long job = 0; job < (long)(units * s->nbands * s->nmb); job++)
        sa_job(&a, (size_t)job, pix, y, ews);
    } else { /* kn2row-aa, tap sums */
#pragma omp for schedule(dynamic, 1)
      for (long job = 0; job < (long)(units * s->nmb); job++)
        tap_tile_job(&a, (size_t)job, pix, y, ews);
    }
  }
}

const ck_algo_impl ck_algo_kn2row = {
    .id = CK_ALGO_KN2ROW,
    .setup = kn2row_setup,
    .execute = kn2row_execute,
    .destroy = kn2row_destroy,
};

const ck_algo_impl ck_algo_kn2row_aa = {
    .id = CK_ALGO_KN2ROW_AA,
    .setup = kn2row_aa_setup,
    .execute = kn2row_execute,
    .destroy = kn2row_destroy,
};
