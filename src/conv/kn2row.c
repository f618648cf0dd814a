/*
 * kn2row and kn2row-aa (Vasudevan, Anderson, Gregg 2017; Anderson et al. 2017): a convolution as
 * a sum over the KH*KW taps of 1x1 convolutions, each tap's result shifted by the tap's offset.
 *
 * kn2row, stride 1: ONE GEMM per band of input rows multiplies all taps' filters, stacked as
 * [KH*KW*mb x cg], by the input band itself ([cg x rows*W], no lowering), giving KH*KW partial
 * images Y; a shift-add pass then sums each tap's partial image, shifted by the tap's offset, into
 * the output, where bias and activation are applied by the pass that completes a row. Bands of
 * input rows keep Y in cache; a row of the output receives its taps from consecutive bands in tap
 * order, so its sum (bias, then taps in (kh, kw) order) does not depend on the band size.
 *
 * kn2row, stride > 1: a GEMM on the whole input would compute stride_h*stride_w times the needed
 * products and discard them; instead each tap's strided input is gathered (cg x tile floats) and
 * multiplied by that tap's filter into its partial result, then the taps are summed.
 *
 * kn2row-aa: no partial images at all. For each tap in order, the tap's shifted (and strided,
 * dilated) input is gathered for a tile of output pixels, zero where it falls in the padding,
 * and a GEMM accumulates it straight into the output tile (beta = 1 after the first tap). Every
 * tap's GEMM covers the whole tile, so there is no border spill to fix up, and the last tap's
 * epilogue adds the bias and applies the activation. Extra memory: one gathered tap per thread.
 *
 * Both run in NCHW and NHWC natively (gemmconv.h roles). Jobs are independent (image, group,
 * tile or band sequence, channel block) under dynamic scheduling; each output element is summed
 * by one thread in a fixed order.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemmconv.h"
#include "lower.h"

/* Budgets (floats) of the per-thread working sets, aimed at the 2 MiB L2 of the machines
 * measured:
 *   gathered tap plus the output tile it accumulates into (kn2row-aa, tap sums): 64 Ki floats,
 *   so both stay in L2 across all the taps of the tile;
 *   partial images of a band (kn2row shift-add): 256 Ki floats (1 MiB), written by the GEMM and
 *   read back by the shift-add pass from L2. */
#define KN2ROW_TAP_TILE_FLOATS (64u * 1024u)
#define KN2ROW_BAND_FLOATS (256u * 1024u)
#define KN2ROW_MIN_BLOCK 16

typedef enum { MODE_AA, MODE_SHIFT_ADD, MODE_TAP_SUM } kn2row_mode;

typedef struct {
  kn2row_mode mode;
  ck_gc_roles r;
  size_t taps;               /* KH*KW */
  size_t P;                  /* output pixels */
  size_t pt, ntiles;         /* pixel tile and tiles per image and group (AA, TAP_SUM) */
  size_t band, nbands, rows; /* input rows per band, bands, rows referenced (SHIFT_ADD) */
  size_t mb, nmb;            /* channel block and blocks per group */
  size_t fstride;            /* floats between packed filter blocks */
  float *filter, *bias, *zero;
  size_t pix_bytes, y_bytes, eng_bytes, region;
  int workers;
} kn2row_state;

static void kn2row_destroy(ck_conv_ctx *ctx) {
  kn2row_state *s = ctx->state;
  if (s == NULL) return;
  ck_aligned_free(s->filter);
  free(s->bias);
  free(s->zero);
  free(s);
  ctx->state = NULL;
}

/* Packed filters. Per tap (AA, TAP_SUM): block (g, t) = W_t [mg x cg], channel blocks inside it.
 * Stacked (SHIFT_ADD): block (g, b) = [taps*mb x cg] with rows (t, m) for the channels of block
 * b, so one GEMM yields every tap of those channels. */
static ck_status pack_filters(ck_conv_ctx *ctx, kn2row_state *s, const float *oihw) {
  const ck_conv_problem *pb = &ctx->pb;
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)pb->d.groups;
  const int stacked = s->mode == MODE_SHIFT_ADD;
  const size_t rows_per_block = stacked ? s->taps * s->mb : mg;
  const size_t blocks = G * (stacked ? s->nmb : s->taps);
  int ok = 1;
  s->fstride = ck_gc_filter_floats(&s->r, rows_per_block, cg);
  size_t fbytes = ck_gc_floats_bytes(ck_gc_mul(s->fstride, blocks, &ok), &ok);
  size_t rbytes = ck_gc_floats_bytes(ck_gc_mul(rows_per_block, cg, &ok), &ok);
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
        for (size_t t = 0; t < s->taps; t++)
          ck_gc_filter_rows(pb, oihw, (int)g, m0, mb, CK_GC_K_C, (int)t, rows + t * mb * cg);
        ck_gc_pack_filter(ctx->kern, &s->r, s->taps * mb, cg, rows,
                          s->filter + (g * s->nmb + b) * s->fstride);
      }
    } else {
      for (size_t t = 0; t < s->taps; t++) {
        ck_gc_filter_rows(pb, oihw, (int)g, 0, mg, CK_GC_K_C, (int)t, rows);
        ck_gc_pack_filter(ctx->kern, &s->r, mg, cg, rows,
                          s->filter + (g * s->taps + t) * s->fstride);
      }
    }
  }
  free(rows);
  return CK_OK;
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
  if (mode == MODE_SHIFT_ADD) {
    /* Input rows referenced by some output row: from 0 (the first tap of row 0 is at -pad_top)
     * up to the last tap of the last row. */
    long last =
        (long)pb->out_h - 1 - d->pad_top + (long)(d->kernel_height - 1) * d->dilation_height;
    if (last > d->in_height - 1) last = d->in_height - 1;
    const size_t rows = last >= 0 ? (size_t)last + 1 : 0;
    s->rows = rows;
    s->mb = ck_gc_channel_block(N * G, mg, s->r.fw, KN2ROW_MIN_BLOCK, ctx->threads);
    s->nmb = ck_div_up(mg, s->mb);
    const size_t per_row = ck_gc_mul(s->taps * s->mb, W, &ok);
    s->band = per_row > 0 ? KN2ROW_BAND_FLOATS / per_row : 1;
    if (s->band < 1) s->band = 1;
    if (s->band > rows) s->band = rows > 0 ? rows : 1;
    s->nbands = ck_div_up(rows, s->band);
    const size_t npix = ck_gc_mul(s->band, W, &ok);
    s->y_bytes = ck_gc_floats_bytes(ck_gc_mul(ck_gc_mul(s->taps, s->mb, &ok), npix, &ok), &ok);
    s->pix_bytes = 0; /* the input band is the pixel operand */
    const size_t last_rows = rows > 0 ? rows - (s->nbands - 1) * s->band : s->band;
    const size_t mb_last = mg - (s->nmb - 1) * s->mb;
    s->eng_bytes = ck_gc_gemm_workspace(ctx->kern, &s->r, npix, last_rows * W, s->taps * s->mb,
                                        s->taps * mb_last, cg, 0, &ok);
    jobs = N * G * s->nmb;
  } else {
    s->pt = ck_gc_pixel_tile(s->P, cg + mg, KN2ROW_TAP_TILE_FLOATS, s->r.pw);
    s->ntiles = ck_div_up(s->P, s->pt);
    s->mb = ck_gc_channel_block(N * G * s->ntiles, mg, s->r.fw, KN2ROW_MIN_BLOCK, ctx->threads);
    s->nmb = ck_div_up(mg, s->mb);
    s->pix_bytes = ck_gc_floats_bytes(ck_gc_mul(cg, s->pt, &ok), &ok);
    s->y_bytes =
        mode == MODE_TAP_SUM
            ? ck_gc_floats_bytes(ck_gc_mul(ck_gc_mul(s->taps, s->mb, &ok), s->pt, &ok), &ok)
            : 0;
    s->eng_bytes = ck_gc_gemm_workspace(ctx->kern, &s->r, s->pt, s->P - (s->ntiles - 1) * s->pt,
                                        s->mb, mg - (s->nmb - 1) * s->mb, cg, 1, &ok);
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

static void tap_tile_job(const run_args *a, size_t job, float *pix, float *y, void *ews) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const size_t C = (size_t)d->in_channels, M = (size_t)d->out_channels;
  const size_t HW = (size_t)d->in_height * (size_t)d->in_width, P = s->P;
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  const int nchw = s->r.pix_is_b;
  const size_t blk = job % s->nmb;
  job /= s->nmb;
  const size_t tile = job % s->ntiles;
  job /= s->ntiles;
  const size_t g = job % G, n = job / G;
  const size_t p0 = tile * s->pt, np = P - p0 < s->pt ? P - p0 : s->pt;
  const size_t m0 = blk * s->mb, mb = mg - m0 < s->mb ? mg - m0 : s->mb;
  const float *in_g = nchw ? a->in + (n * C + g * cg) * HW : a->in + n * HW * C + g * cg;
  float *out_t =
      nchw ? a->out + (n * M + g * mg + m0) * P + p0 : a->out + (n * P + p0) * M + g * mg + m0;
  const float *bias = s->bias + g * mg + m0;
  const int aa = s->mode == MODE_AA;
  /* Y_t of the tap sums: [mb x np] (NCHW) or [np x mb] (NHWC), tap t at y + t*mb*pt. */
  const size_t y_ld = nchw ? s->pt : mb;
  for (size_t t = 0; t < s->taps; t++) {
    const ck_tap_range tap = {(int)(t / (size_t)d->kernel_width), 1,
                              (int)(t % (size_t)d->kernel_width), 1};
    if (nchw)
      ck_lower_nchw(pb, in_g, p0, np, tap, s->r.pw, pix);
    else
      ck_lower_nhwc(pb, in_g, s->zero, p0, np, tap, s->r.pw, pix);
    const int last = t + 1 == s->taps;
    ck_gc_tile tl = {.np = np,
                     .mb = mb,
                     .k = cg,
                     .pix = {.data = pix, .packed = 1},
                     .filt = s->filter + (g * s->taps + t) * s->fstride + m0 * cg,
                     .lo = -INFINITY,
                     .hi = INFINITY};
    if (aa) {
      tl.c = out_t;
      tl.ldc = nchw ? P : M;
      tl.beta = t > 0 ? 1.0f : 0.0f;
      if (last) {
        tl.bias = bias;
        tl.lo = pb->min;
        tl.hi = pb->max;
      }
    } else {
      tl.c = y + t * mb * s->pt;
      tl.ldc = y_ld;
    }
    ck_gc_gemm(a->ctx->kern, &s->r, &tl, ews);
  }
  if (aa) return;
  /* out = activation(bias + sum of the taps in order) */
  const size_t tstride = mb * s->pt;
  for (size_t i = 0; i < (nchw ? mb : np); i++) {
    for (size_t j = 0; j < (nchw ? np : mb); j++) {
      float v = bias[nchw ? i : j];
      for (size_t t = 0; t < s->taps; t++) v += y[t * tstride + i * y_ld + j];
      out_t[i * (nchw ? P : M) + j] = clampf(v, pb->min, pb->max);
    }
  }
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

/* Adds the taps that band [r0, r1) of partial images y holds into the output rows they reach:
 * NCHW: y[(t*mb + m)*npix + (ih - r0)*W + iw], out_c = channel m0's plane;
 * NHWC: y[((ih - r0)*W + iw)*taps*mb + t*mb + m], out_c = image n's first pixel at channel m0.
 * A row is set to the bias by its first valid tap and clamped after its last. */
static void shift_add(const run_args *a, const float *y, long r0, long r1, size_t mb, float *out_c,
                      const float *bias) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const long KH = d->kernel_height, KW = d->kernel_width, dh = d->dilation_height;
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
      if (kh == first) {
        for (size_t m = 0; m < mb; m++)
          for (long ow = 0; ow < OW; ow++) {
            if (nchw)
              out_c[m * P + (size_t)(oh * OW + ow)] = bias[m];
            else
              out_c[(size_t)(oh * OW + ow) * M + m] = bias[m];
          }
      }
      for (long kw = 0; kw < KW; kw++) {
        const size_t t = (size_t)(kh * KW + kw);
        const long off = -d->pad_left + kw * d->dilation_width;
        long lo, hi;
        valid_ow(pb, kw, &lo, &hi);
        if (nchw) {
          for (size_t m = 0; m < mb; m++) {
            float *o = out_c + m * P + (size_t)(oh * OW);
            const float *yr = y + (t * mb + m) * npix + (size_t)((ih - r0) * W);
            for (long ow = lo; ow < hi; ow++) o[ow] += yr[ow + off];
          }
        } else {
          for (long ow = lo; ow < hi; ow++) {
            float *o = out_c + (size_t)(oh * OW + ow) * M;
            const float *yr = y + (size_t)((ih - r0) * W + ow + off) * tm + t * mb;
            for (size_t m = 0; m < mb; m++) o[m] += yr[m];
          }
        }
      }
      if (kh == last) {
        for (size_t m = 0; m < mb; m++)
          for (long ow = 0; ow < OW; ow++) {
            float *o = nchw ? &out_c[m * P + (size_t)(oh * OW + ow)]
                            : &out_c[(size_t)(oh * OW + ow) * M + m];
            *o = clampf(*o, pb->min, pb->max);
          }
      }
    }
  }
}

static void shift_add_job(const run_args *a, size_t job, float *y, void *ews) {
  const ck_conv_problem *pb = &a->ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const kn2row_state *s = a->s;
  const size_t C = (size_t)d->in_channels, M = (size_t)d->out_channels;
  const size_t W = (size_t)d->in_width, HW = (size_t)d->in_height * W, P = s->P;
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  const int nchw = s->r.pix_is_b;
  const size_t blk = job % s->nmb;
  job /= s->nmb;
  const size_t g = job % G, n = job / G;
  const size_t m0 = blk * s->mb, mb = mg - m0 < s->mb ? mg - m0 : s->mb;
  const size_t tm = s->taps * mb;
  const float *in_g = nchw ? a->in + (n * C + g * cg) * HW : a->in + n * HW * C + g * cg;
  float *out_c = nchw ? a->out + (n * M + g * mg + m0) * P : a->out + n * P * M + g * mg + m0;
  const float *bias = s->bias + g * mg + m0;
  /* Rows that no tap reaches (padding only) are the bias alone. */
  for (long oh = 0; oh < pb->out_h; oh++) {
    long first, last;
    valid_kh(d, oh, &first, &last);
    if (first <= last) continue;
    for (size_t m = 0; m < mb; m++)
      for (size_t ow = 0; ow < (size_t)pb->out_w; ow++) {
        const size_t p = (size_t)oh * (size_t)pb->out_w + ow;
        float *o = nchw ? &out_c[m * P + p] : &out_c[p * M + m];
        *o = clampf(bias[m], pb->min, pb->max);
      }
  }
  for (size_t b = 0; b < s->nbands; b++) {
    const size_t r0 = b * s->band;
    const size_t rows = s->band < s->rows - r0 ? s->band : s->rows - r0;
    const size_t npix = rows * W;
    ck_gc_tile tl = {.np = npix,
                     .mb = tm,
                     .k = cg,
                     .filt = s->filter + (g * s->nmb + blk) * s->fstride,
                     .c = y,
                     .ldc = nchw ? npix : tm,
                     .lo = -INFINITY,
                     .hi = INFINITY};
    tl.pix = nchw ? (ck_gc_pixels){.data = in_g + r0 * W, .row_stride = HW, .col_stride = 1}
                  : (ck_gc_pixels){.data = in_g + r0 * W * C, .row_stride = 1, .col_stride = C};
    ck_gc_gemm(a->ctx->kern, &s->r, &tl, ews);
    shift_add(a, y, (long)r0, (long)(r0 + rows), mb, out_c, bias);
  }
}

static void kn2row_execute(const ck_conv_ctx *ctx, const float *input, float *output,
                           void *workspace) {
  const ck_conv_desc *d = &ctx->pb.d;
  const kn2row_state *s = ctx->state;
  const run_args a = {ctx, s, input, output};
  const size_t per_image = s->mode == MODE_SHIFT_ADD ? s->nmb : s->ntiles * s->nmb;
  const long jobs = (long)((size_t)d->batch * (size_t)d->groups * per_image);
#pragma omp parallel num_threads(s->workers) if (s->workers > 1)
  {
    unsigned char *cur = ck_gc_ws_region(workspace, 0, s->region, omp_get_thread_num());
    float *pix = ck_gc_carve(&cur, s->pix_bytes);
    float *y = ck_gc_carve(&cur, s->y_bytes);
    void *ews = ck_gc_carve(&cur, s->eng_bytes);
#pragma omp for schedule(dynamic, 1)
    for (long job = 0; job < jobs; job++) {
      if (s->mode == MODE_SHIFT_ADD)
        shift_add_job(&a, (size_t)job, y, ews);
      else
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
