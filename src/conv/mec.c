/*
 * MEC, memory-efficient convolution (Cho and Brand 2017).
 *
 * Lowering: L has one row per output column ow and, for each padded input row and each kw, the
 * cg channels of input pixel (row, ow*sw - pl + kw*dw): o_w x (rows * KW * cg) floats, about
 * KH/stride_h times less than im2col's matrix. Output row oh needs the KH input rows
 * oh*sh + kh*dh: a window of consecutive columns of L, so the GEMMs of successive output rows
 * read overlapping partitions of L with no copies:
 *   out[oh] (o_w x mg) = L[:, window(oh)] (o_w x K) * W'[K x mg],   K = KH*KW*cg, k = (kh, kw, c).
 * With dilation dh > 1 the window would not be consecutive, so L's rows are stored phase by
 * phase (all rows u with u mod dh = 0, then 1, ...): the KH rows of a window are then adjacent.
 *
 * L is written in the engine's packed-A layout (panels of MR rows of L), so a partition is a
 * column offset into every panel, read by the engine as a pre-packed operand whose panel stride
 * is L's full width (a packed operand's row_stride, gemm.h): one engine call per output row.
 *
 * Solution A stacks the images of the batch into L's rows (N*o_w rows) so that small o_w fills
 * the MR-row panels; solution B lowers one image at a time. A is chosen when stacking needs fewer
 * panel rows than B (o_w not a multiple of MR); its output rows are not evenly spaced in the
 * output tensor, so they go through a per-thread tile. The pixels are the A operand in both
 * layouts (o_w, not o_w rounded to NR, sets the waste), so the NCHW output goes through the tile
 * too and is transposed there, in the table's T x T transpose tiles (counted in the workspace and
 * the time); the NCHW input is read in place by the lowering.
 *
 * Tiling: bands of output rows and chunks of output columns (whole MR-row panels of L); each job
 * lowers the L of its band and chunk (the input rows it needs, with the KH - stride overlap
 * between bands lowered twice) and runs their GEMMs while L is in cache. L's budget is 0.35x
 * im2col's lowered tile, and the whole workspace is kept within 0.35x of im2col's lowered tiles
 * at the same thread count (smaller bands, or one L for the team, when im2col's tiles shrink
 * for the threads): MEC's point is its smaller lowering, and a band of at least
 * MEC_MIN_ROWS output rows keeps the relowered overlap small, so columns are chunked first.
 * With dilation, a band of fewer rows than the dilation stores only the phases it reads.
 * The GEMMs of a row have few rows (o_w), so the filter would stream from memory once per output
 * row: they run channel block by channel block, each block of the filter staying in L2 across
 * all the rows of the band. Jobs (image or batch, group, band, channel split) are independent
 * under dynamic scheduling, each lowering its own L; only when per-thread Ls would exceed the
 * workspace target (many threads, small images) is a band's L lowered once by the whole team
 * into a shared buffer and its channel blocks shared out.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemmconv.h"
#include "lower.h"

/* L of one band and chunk: 88 Ki floats (352 KiB), in L2 from its lowering through its GEMMs,
 * and 0.35x of im2col's lowered tile (IM2COL_TILE_FLOATS). */
#define MEC_BAND_FLOATS (88u * 1024u)
/* Output rows of a band before its columns are chunked: the lowering of a band of R rows reads
 * R + KH - 1 input rows. */
#define MEC_MIN_ROWS 4
/* Filter block reused across the rows of a band: 128 Ki floats (512 KiB) of L2. */
#define MEC_FILTER_BLOCK_FLOATS (128u * 1024u)
#define MEC_MIN_BLOCK 32
/* MEC's whole workspace at most this percentage of im2col's lowered tiles (the issue asks for
 * 0.4x; the margin covers the engine's and the output tile's share). */
#define MEC_WS_PERCENT 35
/* L of one depthwise job: 5.5 Ki floats (22 KiB, in L1), 0.35x of im2col's depthwise lowered
 * tile (IM2COL_DW_TILE_FLOATS). */
#define MEC_DW_BAND_FLOATS (5632u)
/* NCHW lowering cuts planned per batch (8 KiB of stack): a band's panels, rows and taps. */
#define MEC_CUTS 256
/* Channel planes ahead at which the NCHW output tile's stores prefetch their lines. */
#define AHEAD 16

typedef struct {
  ck_gc_roles r; /* pixels (rows of L) are A, the filter is packed B */
  size_t K;
  size_t nb;            /* images stacked in L: N (solution A) or 1 (solution B) */
  size_t R, nbands;     /* output rows per band */
  size_t Qb, ctot;      /* input rows per dilation phase, columns of L */
  size_t lrows, panels; /* rows of L (nb*o_w) and its MR-row panels */
  size_t fold;          /* output rows per GEMM (see mec_setup) */
  size_t cp, nchunks;   /* panels of L per chunk of columns, chunks */
  int use_tmp;          /* output through a per-thread tile */
  size_t mb, nmb;       /* channel split into jobs */
  size_t cb;            /* channel block of the filter kept in L2 within a job (multiple of NR) */
  size_t fstride;
  float *filter, *bias, *zero;
  int dw;              /* depthwise: groups batched (dw_setup) */
  float *dw_w;         /* depthwise filter: NHWC [K][C], NCHW [C][K] */
  size_t U;            /* depthwise: input rows of a band of R output rows */
  size_t shared_bytes; /* L lowered once for the team (channels split) */
  size_t l_bytes, tmp_bytes, eng_bytes, region; /* per thread */
  int workers;
} mec_state;

static void mec_destroy(ck_conv_ctx *ctx) {
  mec_state *s = ctx->state;
  if (s == NULL) return;
  ck_aligned_free(s->filter);
  free(s->bias);
  free(s->zero);
  free(s->dw_w);
  free(s);
  ctx->state = NULL;
}

/* Input rows a band of R output rows reads, and L's width for them. */
static size_t band_rows(const ck_conv_desc *d, size_t R) {
  return (R - 1) * (size_t)d->stride_height +
         (size_t)(d->kernel_height - 1) * (size_t)d->dilation_height + 1;
}

/* Output rows of a band of R whose windows L holds: with folding (mec_setup) one GEMM serves
 * rows r..r+fold-1 through the window of row r, its other panel rows holding the input rows
 * shifted, so only the first row of each GEMM reads a window of its own. */
static size_t window_rows(size_t R, size_t fold) {
  return (R - 1) / fold * fold + 1;
}

/* Rows of L are stored phase by phase (u mod dh); output rows r < R start at u = r*sh, so only
 * the phases below (R-1)*sh + 1 are read when that is under dh. */
static size_t band_width(const ck_conv_problem *pb, size_t R, size_t fold, size_t *qb) {
  const ck_conv_desc *d = &pb->d;
  R = window_rows(R, fold);
  const size_t dh = (size_t)d->dilation_height, first = (R - 1) * (size_t)d->stride_height + 1;
  *qb = ck_div_up(band_rows(d, R), dh);
  return *qb * (first < dh ? first : dh) * (size_t)d->kernel_width * (size_t)pb->cin_g;
}

/* Floats of L for a band of R output rows and a chunk of cp panels (SIZE_MAX on overflow). */
static size_t band_floats(const ck_conv_problem *pb, size_t R, size_t fold, size_t cp, size_t MR) {
  size_t qb, f;
  if (!ck_mul_size(band_width(pb, R, fold, &qb), cp * MR, &f)) return SIZE_MAX;
  return f;
}

/* Depthwise layers (one input and one output channel per group): the o_h GEMMs per group would
 * be thousands of one-column products. The groups are batched: L is lowered for all channels
 * (NHWC: row ow of L holds, per band input row u and tap kw, the C channels of input pixel
 * (u, ow*sw - pl + kw*dw); NCHW, one channel at a time, L is stored transposed, [u][kw][ow]),
 * and each output row reads its window of L -- the KH band rows it needs, overlapping those of
 * the next rows, no copies -- in products vectorized across channels (NHWC) or columns (NCHW).
 * Jobs: NHWC (image, band, chunk of columns), NCHW (image, channel, band). */
static ck_status dw_setup(ck_conv_ctx *ctx, mec_state *s, const ck_conv_weights *w) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const size_t C = (size_t)d->in_channels, K = s->K, N = (size_t)d->batch;
  const size_t OH = (size_t)pb->out_h, OW = (size_t)pb->out_w, KW = (size_t)d->kernel_width;
  const int nchw = d->layout == CK_LAYOUT_NCHW;
  const size_t budget = ck_gc_budget(MEC_DW_BAND_FLOATS);
  const size_t rmin = OH < MEC_MIN_ROWS ? OH : MEC_MIN_ROWS;
  int ok = 1;
  s->dw = 1;
  /* floats of L per (band input row, column) */
  const size_t unit = ck_gc_mul(KW, nchw ? 1 : C, &ok);
  s->cp = OW; /* columns per chunk (NCHW: all) */
  if (!nchw)
    while (s->cp > 1 && ck_gc_mul(band_rows(d, rmin) * s->cp, unit, &ok) > budget) s->cp--;
  s->nchunks = ck_div_up(OW, s->cp);
  s->cp = ck_div_up(OW, s->nchunks);
  s->nchunks = ck_div_up(OW, s->cp);
  s->R = 1;
  while (s->R < OH && ck_gc_mul(band_rows(d, s->R + 1) * s->cp, unit, &ok) <= budget) s->R++;
  s->nbands = ck_div_up(OH, s->R);
  s->U = band_rows(d, s->R);
  s->l_bytes = ck_gc_floats_bytes(ck_gc_mul(s->U * s->cp, unit, &ok), &ok);
  const size_t jobs = ck_gc_mul(ck_gc_mul(N, nchw ? C : s->nchunks, &ok), s->nbands, &ok);
  s->workers = jobs < (size_t)ctx->threads ? (int)jobs : ctx->threads;
  s->region = 0;
  if (!ok || !ck_gc_region_add(&s->region, s->l_bytes) ||
      !ck_gc_ws_total(0, s->region, s->workers, &ctx->workspace_size))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "mec: workspace size overflows");
  const ck_status st = ck_gc_dw_weights(w, C, K, nchw, "mec", &s->dw_w, &s->bias);
  if (st != CK_OK) return st;
  s->zero = calloc(C, sizeof(float));
  if (s->zero == NULL) return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for a zero row");
  return CK_OK;
}

/* Tiling of the non-depthwise path for an L budget (floats of one band's L and output tile):
 * chunks, bands, channel split and the workspace (ctx->workspace_size). Each job lowers its
 * own L (a channel split lowers a band once per block: little next to its GEMMs, and no thread
 * waits for another); share: one L per band lowered by the whole team, the channels always
 * split, for when per-thread Ls cannot fit the workspace target. 0 on overflow. */
static int mec_tiling(ck_conv_ctx *ctx, mec_state *s, size_t budget, int share) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const size_t MR = s->r.pw, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  const size_t N = (size_t)d->batch, OH = (size_t)pb->out_h;
  int ok = 1;
  /* The widest chunk whose L (and output tile, when the output goes through one; at most mg
   * channels) fits the budget with MEC_MIN_ROWS rows (one panel at least), made even; then the
   * most output rows that fit with that chunk (one at least). */
  const size_t rmin = OH < MEC_MIN_ROWS ? OH : MEC_MIN_ROWS;
  s->use_tmp = d->layout == CK_LAYOUT_NCHW || s->nb > 1;
  const size_t tmp_per = s->use_tmp ? mg : 0; /* output floats per output row and row of L */
  s->cp = s->panels;
  while (s->cp > 1 &&
         band_floats(pb, rmin, s->fold, s->cp, MR) + rmin * s->cp * MR * tmp_per > budget)
    s->cp--;
  s->nchunks = ck_div_up(s->panels, s->cp);
  s->cp = ck_div_up(s->panels, s->nchunks);
  s->nchunks = ck_div_up(s->panels, s->cp);
  const size_t per_lrow = s->cp * MR; /* rows of L in a chunk, including panel padding */
  s->R = 1;
  while (s->R < OH &&
         band_floats(pb, s->R + 1, s->fold, s->cp, MR) + (s->R + 1) * per_lrow * tmp_per <= budget)
    s->R++;
  if (s->R > s->fold) s->R = s->R / s->fold * s->fold; /* whole GEMMs per band */
  s->nbands = ck_div_up(OH, s->R);
  s->ctot = band_width(pb, s->R, s->fold, &s->Qb);
  const size_t jobs0 = N / s->nb * G * s->nbands * s->nchunks;
  s->mb = ck_gc_channel_block(share ? 1 : jobs0, mg, s->r.fw, MEC_MIN_BLOCK, ctx->threads);
  s->nmb = ck_div_up(mg, s->mb);
  const size_t l_bytes = ck_gc_floats_bytes(ck_gc_mul(s->ctot, per_lrow, &ok), &ok);
  s->shared_bytes = share ? l_bytes : 0;
  s->l_bytes = share ? 0 : l_bytes;
  s->tmp_bytes =
      s->use_tmp ? ck_gc_floats_bytes(ck_gc_mul(ck_gc_mul(s->R, per_lrow, &ok), s->mb, &ok), &ok)
                 : 0;
  s->cb = ck_gc_budget(MEC_FILTER_BLOCK_FLOATS) / s->K / s->r.fw * s->r.fw;
  if (s->cb < s->r.fw) s->cb = s->r.fw;
  /* Every GEMM is (a chunk's rows) x (a block of at most cb channels) x K: ask the engine for
   * each shape. */
  const size_t rows_last = s->lrows - (s->nchunks - 1) * per_lrow;
  const size_t mb_last = mg - (s->nmb - 1) * s->mb;
  const size_t widths[4] = {s->cb < s->mb ? s->cb : s->mb, s->mb % s->cb,
                            mb_last < s->cb ? mb_last : s->cb, mb_last % s->cb};
  s->eng_bytes = 0;
  for (int i = 0; i < 4; i++) {
    if (widths[i] == 0) continue;
    for (size_t f = 1; f <= s->fold; f++) { /* folded GEMMs: f*rows_last pixels */
      size_t b = ck_gc_gemm_workspace(ctx->kern, &s->r, per_lrow, f * rows_last, widths[i],
                                      widths[i], s->K, 1, &ok);
      if (b > s->eng_bytes) s->eng_bytes = b;
    }
  }
  const size_t jobs = jobs0 * s->nmb;
  s->workers = jobs < (size_t)ctx->threads ? (int)jobs : ctx->threads;
  s->region = 0;
  return ok && ck_gc_region_add(&s->region, s->l_bytes) &&
         ck_gc_region_add(&s->region, s->tmp_bytes) && ck_gc_region_add(&s->region, s->eng_bytes) &&
         ck_gc_ws_total(s->shared_bytes, s->region, s->workers, &ctx->workspace_size);
}

static ck_status mec_setup(ck_conv_ctx *ctx, const ck_conv_weights *w) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  mec_state *s = calloc(1, sizeof *s);
  if (s == NULL) return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the mec plan");
  ctx->state = s;
  ck_gc_roles_init(ctx->kern, 0, &s->r);
  const size_t MR = s->r.pw;
  if (MR > CK_LOWER_MAX_PW || MR == 0)
    return ck_fail(CK_ERROR_UNSUPPORTED, "mec: panel width (%zu) of isa (%s) is not supported", MR,
                   ctx->kern->name);
  const size_t cg = (size_t)pb->cin_g, mg = (size_t)pb->cout_g, G = (size_t)d->groups;
  const size_t N = (size_t)d->batch, OW = (size_t)pb->out_w;
  int ok = 1;
  s->K = cg * (size_t)d->kernel_height * (size_t)d->kernel_width; /* <= filter size */
  if (G > 1 && cg == 1 && mg == 1) return dw_setup(ctx, s, w);
  /* Solution A when stacking the batch fills the panels better than one image at a time. */
  const size_t stacked = ck_gc_mul(N, OW, &ok);
  s->nb = N > 1 && ck_round_up(stacked, MR) < N * ck_round_up(OW, MR) ? N : 1;
  s->lrows = s->nb * OW;
  s->panels = ck_div_up(s->lrows, MR);
  /* One image narrower than half a panel (7x7 layers: 7 of 14 rows) would leave most of the
   * panel's rows zero and compute them anyway. Its panel instead holds `fold` output rows: panel
   * row (i, ow) holds the L row of ow shifted by i*sh input rows, so the window of output row r
   * serves rows r..r+fold-1 in one GEMM, whose output rows are consecutive pixels. Without
   * dilation, where a shift of sh input rows is a fixed column offset; the extra rows are
   * lowered into the panel's otherwise zero rows, no extra memory. */
  s->fold = s->nb == 1 && d->dilation_height == 1 && 2 * OW <= MR ? MR / OW : 1;
  if (s->fold > (size_t)pb->out_h) s->fold = (size_t)pb->out_h;
  /* L's budget: MEC_BAND_FLOATS per band, lowered by one thread or shared by the team; shrunk
   * until the whole workspace is within MEC_WS_PERCENT of im2col's lowered tiles at the same
   * thread count, since with several threads im2col's tiles shrink (and MEC's per-thread bands
   * multiply). One output row and one panel at the least; if that is still too much with one L
   * per thread, the team shares one L and splits the channels. With one thread the band budget
   * alone is the rule (0.35x of a full im2col tile); only images too small to fill it exceed
   * that share, as their whole-image L and tile do. */
  const size_t im2col_floats = ck_im2col_lowered_floats(ctx);
  const size_t target =
      ctx->threads > 1 && im2col_floats / 100 <= SIZE_MAX / sizeof(float) / MEC_WS_PERCENT
          ? im2col_floats / 100 * MEC_WS_PERCENT * sizeof(float)
          : SIZE_MAX;
  for (int share = 0; share < 2; share++) {
    size_t budget = ck_gc_budget(MEC_BAND_FLOATS);
    for (;;) {
      if (!mec_tiling(ctx, s, budget, share))
        return ck_fail(CK_ERROR_INVALID_ARGUMENT, "mec: workspace size overflows");
      if (ctx->workspace_size <= target || (s->R == 1 && s->cp == 1) || budget <= 1) break;
      const size_t next = (size_t)((double)budget * (double)target / (double)ctx->workspace_size);
      budget = next < budget ? next : budget - 1;
    }
    /* Still over with a band of one row per thread: one L for the team instead. */
    if (ctx->workspace_size <= target) break;
  }
  s->fstride = ck_gc_filter_floats(&s->r, mg, s->K);
  size_t fbytes = ck_gc_floats_bytes(ck_gc_mul(s->fstride, G, &ok), &ok);
  if (!ok || s->fstride == 0)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "mec: packed filter size overflows");

  s->filter = ck_aligned_alloc(fbytes);
  s->bias = malloc((size_t)d->out_channels * sizeof(float));
  s->zero = calloc(cg, sizeof(float));
  float *rows = malloc(mg * s->K * sizeof(float));
  if (s->filter == NULL || s->bias == NULL || s->zero == NULL || rows == NULL) {
    free(rows);
    return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the mec packed filter (%zu bytes)",
                   fbytes);
  }
  memcpy(s->bias, w->bias, (size_t)d->out_channels * sizeof(float));
  for (size_t g = 0; g < G; g++) {
    ck_gc_filter_rows(pb, w->filter_oihw, (int)g, 0, mg, CK_GC_K_HWC,
                      (ck_tap_range){0, d->kernel_height, 0, d->kernel_width}, rows);
    ck_gc_pack_filter(ctx->kern, &s->r, mg, s->K, rows, s->filter + g * s->fstride);
  }
  free(rows);
  return CK_OK;
}

/* Whether some output row r < nr of the band reads band input row u (u = r*sh + kh*dh). */
static int row_used(const ck_conv_desc *d, size_t u, size_t nr) {
  for (size_t kh = 0; kh < (size_t)d->kernel_height; kh++) {
    const size_t off = kh * (size_t)d->dilation_height;
    if (off > u) break;
    const size_t v = u - off;
    if (v % (size_t)d->stride_height == 0 && v / (size_t)d->stride_height < nr) return 1;
  }
  return 0;
}

/* Band input rows (columns of L) a band of nr output rows reads. */
static size_t band_units(const mec_state *s, const ck_conv_desc *d, size_t nr) {
  return band_rows(d, window_rows(nr, s->fold));
}

/* Lowers band input rows [u_lo, u_hi) of panels [p_lo, p_hi) of L for the band whose first input
 * row is padded row `base`, for images n0.. and group g: panel p at l + (p - p_base)*ctot*MR,
 * element (row j, column col) at col*MR + j%MR. */
static void lower_band(const ck_conv_problem *pb, const mec_state *s, ck_gemm_packt_fn packt,
                       const float *in, size_t n0, size_t g, size_t base, size_t nr, size_t p_lo,
                       size_t p_hi, size_t u_lo, size_t u_hi, size_t p_base, float *l) {
  const ck_conv_desc *d = &pb->d;
  const size_t MR = s->r.pw, cg = (size_t)pb->cin_g, C = (size_t)d->in_channels;
  const long H = d->in_height, W = d->in_width, OW = pb->out_w;
  const long sw = d->stride_width, dw = d->dilation_width, pl = d->pad_left;
  const size_t KW = (size_t)d->kernel_width, dh = (size_t)d->dilation_height;
  const size_t sh = (size_t)d->stride_height, U = band_units(s, d, nr);
  const int nchw = d->layout == CK_LAYOUT_NCHW;
  const float *ptrs[CK_LOWER_MAX_PW];
  /* NCHW: the group's first plane of image 0; cuts of every (panel, band row, kw) are planned,
   * then applied channel by channel (ck_lower_cuts) so that each input plane is read from L1. */
  const float *in_g = in + g * cg * (size_t)(H * W);
  ck_lower_cut cuts[MEC_CUTS];
  size_t nc = 0;
  /* Panel rows: (image or folded row q, ow) for q = row / OW. */
  const size_t span = s->fold > 1 ? s->fold * s->lrows : s->lrows;
  for (size_t p = p_lo; p < p_hi; p++) {
    float *panel = l + (p - p_base) * s->ctot * MR;
    const size_t j0 = p * MR, cnt = span - j0 < MR ? span - j0 : MR;
    for (size_t u = u_lo; u < u_hi && u < U; u++) {
      if (!row_used(d, u, nr)) continue; /* never read by a window */
      for (size_t kw = 0; kw < KW; kw++) {
        float *dst = panel + (((u % dh) * s->Qb + u / dh) * KW + kw) * cg * MR;
        const long dx = -pl + (long)kw * dw;
        if (!nchw) {
          for (size_t i = 0; i < MR; i++) {
            ptrs[i] = s->zero;
            if (i >= cnt) continue;
            const size_t q = (j0 + i) / (size_t)OW, n = s->fold > 1 ? n0 : n0 + q;
            const long ih = (long)(base + u + (s->fold > 1 ? q * sh : 0)) - d->pad_top;
            const long iw = (long)((j0 + i) % (size_t)OW) * sw + dx;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
              ptrs[i] = in + ((n * (size_t)H + (size_t)ih) * (size_t)W + (size_t)iw) * C + g * cg;
          }
          ck_lower_gather(dst, MR, cg, ptrs, s->zero, packt);
          continue;
        }
        /* NCHW: cuts (below), applied channel by channel. Segments of the panel within one
         * image and input row: adjacent output columns; whole rows of padding, and rows past
         * the end of L, are zero. */
        for (size_t i = 0; i < MR;) {
          const size_t j = j0 + i, q = j / (size_t)OW, ow = j % (size_t)OW;
          const size_t n = s->fold > 1 ? n0 : n0 + q;
          const long ih = (long)(base + u + (s->fold > 1 ? q * sh : 0)) - d->pad_top;
          size_t len = MR - i, lo = 0, hi = 0;
          long src = 0;
          if (i < cnt) {
            len = cnt - i < (size_t)OW - ow ? cnt - i : (size_t)OW - ow;
            const long iw0 = (long)ow * sw + dx;
            if (ih >= 0 && ih < H) {
              ck_lower_valid_range(len, iw0, sw, W, &lo, &hi);
              src = (long)(n * C * (size_t)(H * W)) + ih * W + iw0;
            }
          }
          cuts[nc++] = (ck_lower_cut){.dst = (size_t)(dst - l) + i,
                                      .src = src,
                                      .len = (unsigned)len,
                                      .lo = (unsigned)lo,
                                      .hi = (unsigned)hi};
          if (nc == MEC_CUTS) {
            ck_lower_cuts(cuts, nc, MR, sw, cg, in_g, (size_t)(H * W), l, MR);
            nc = 0;
          }
          i += len;
        }
      }
    }
  }
  if (nchw) ck_lower_cuts(cuts, nc, MR, sw, cg, in_g, (size_t)(H * W), l, MR);
}

/* Unit u of the work: (images, group, band, chunk): output rows [oh0, oh0+nr) and panels
 * [p0, p0+np) of L. */
typedef struct {
  size_t n0, g, oh0, nr, p0, np;
} mec_unit;

static mec_unit unit_of(const ck_conv_ctx *ctx, size_t u) {
  const mec_state *s = ctx->state;
  const size_t G = (size_t)ctx->pb.d.groups, OH = (size_t)ctx->pb.out_h;
  const size_t chunk = u % s->nchunks, v = u / s->nchunks;
  const size_t band = v % s->nbands, g = v / s->nbands % G, n0 = v / s->nbands / G * s->nb;
  const size_t oh0 = band * s->R, p0 = chunk * s->cp;
  return (mec_unit){n0,  g,
                    oh0, OH - oh0 < s->R ? OH - oh0 : s->R,
                    p0,  s->panels - p0 < s->cp ? s->panels - p0 : s->cp};
}

/* Band input rows [u_lo, u_hi) of panels [p_lo, p_hi) of the unit's L (within its chunk) into
 * l, the chunk's first panel. */
static void lower_unit(const ck_conv_ctx *ctx, const float *in, mec_unit un, size_t p_lo,
                       size_t p_hi, size_t u_lo, size_t u_hi, float *l) {
  const mec_state *s = ctx->state;
  lower_band(&ctx->pb, s, ctx->kern->gemm_packt, in, un.n0, un.g,
             un.oh0 * (size_t)ctx->pb.d.stride_height, un.nr, p_lo, p_hi, u_lo, u_hi, un.p0, l);
}

/* The cache lines of o[0..len), for writing. */
static inline void prefetch_run(const float *o, size_t len) {
  for (size_t x = 0; x < len; x += 64 / sizeof(float)) __builtin_prefetch(o + x, 1, 3);
  __builtin_prefetch(o + len - 1, 1, 3);
}

/* The GEMMs of channel block blk of a unit whose L (its chunk) is lowered, and their output. */
static void gemm_unit(const ck_conv_ctx *ctx, float *out, mec_unit un, size_t blk, const float *l,
                      float *tmp, void *ews) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const mec_state *s = ctx->state;
  const size_t M = (size_t)d->out_channels, mg = (size_t)pb->cout_g;
  const size_t OH = (size_t)pb->out_h, OW = (size_t)pb->out_w, MR = s->r.pw;
  const size_t KW = (size_t)d->kernel_width, cg = (size_t)pb->cin_g;
  const size_t sh = (size_t)d->stride_height, dh = (size_t)d->dilation_height;
  const size_t g = un.g, n0 = un.n0, oh0 = un.oh0, nr = un.nr;
  const size_t T = (size_t)ctx->kern->transpose_tile;
  const size_t j0 = un.p0 * MR, rows = s->lrows - j0 < un.np * MR ? s->lrows - j0 : un.np * MR;
  const size_t m0 = blk * s->mb, mb = mg - m0 < s->mb ? mg - m0 : s->mb;
  for (size_t c0 = 0; c0 < mb; c0 += s->cb) {
    const size_t cb = mb - c0 < s->cb ? mb - c0 : s->cb;
    for (size_t r = 0; r < nr; r += s->fold) {
      const size_t col0 = (((r * sh) % dh) * s->Qb + (r * sh) / dh) * KW * cg;
      const size_t f = nr - r < s->fold ? nr - r : s->fold; /* folded rows: consecutive pixels */
      ck_gc_tile t = {.np = f * rows,
                      .mb = cb,
                      .k = s->K,
                      .pix = {.data = l + col0 * MR, .row_stride = s->ctot * MR, .packed = 1},
                      .filt = s->filter + g * s->fstride + (m0 + c0) * s->K,
                      .beta = 0.0f,
                      .bias = s->bias + g * mg + m0 + c0,
                      .lo = pb->min,
                      .hi = pb->max};
      if (s->use_tmp) {
        t.c = tmp + r * rows * mb + c0;
        t.ldc = mb;
      } else { /* one image: rows of L are output columns j0.. */
        t.c = out + ((n0 * OH + oh0 + r) * OW + j0) * M + g * mg + m0 + c0;
        t.ldc = M;
      }
      ck_gc_gemm(ctx->kern, &s->r, &t, ews);
    }
  }
  if (!s->use_tmp) return;
  /* The tile's rows (r, row of L = (image, ow)) into the output, a run within an image at a
   * time. */
  for (size_t r = 0; r < nr; r++) {
    const size_t oh = oh0 + r;
    for (size_t j = 0; j < rows;) {
      const size_t n = n0 + (j0 + j) / OW, ow0 = (j0 + j) % OW;
      const size_t len = rows - j < OW - ow0 ? rows - j : OW - ow0;
      const float *t = tmp + (r * rows + j) * mb;
      if (d->layout == CK_LAYOUT_NHWC) {
        for (size_t x = 0; x < len; x++)
          memcpy(out + ((n * OH + oh) * OW + ow0 + x) * M + g * mg + m0, t + x * mb,
                 mb * sizeof(float));
      } else {
        /* The run of each channel plane is a store to lines not in L1: fetched AHEAD
         * channels in advance, so that the fills overlap instead of draining the store
         * buffer one miss at a time. */
        float *o = out + ((n * M + g * mg + m0) * OH + oh) * OW + ow0;
        const size_t plane = OH * OW;
        for (size_t m = 0; m < AHEAD && m < mb; m++) prefetch_run(o + m * plane, len);
        if (len >= T && mb >= T) {
          /* T x T tiles of the table's transpose; the last tile of each direction is moved
           * back to end at the edge, rewriting some elements with the same values. */
          for (size_t mt = 0; mt < mb; mt += T) {
            const size_t m = mt + T <= mb ? mt : mb - T;
            for (size_t q = mt + AHEAD; q < mt + T + AHEAD && q < mb; q++)
              prefetch_run(o + q * plane, len);
            for (size_t xt = 0; xt < len; xt += T) {
              const size_t x = xt + T <= len ? xt : len - T;
              ctx->kern->transpose(t + x * mb + m, mb, o + m * plane + x, plane);
            }
          }
        } else {
          for (size_t m = 0; m < mb; m++, o += plane) {
            if (m + AHEAD < mb) prefetch_run(o + AHEAD * plane, len);
            for (size_t x = 0; x < len; x++) o[x] = t[x * mb + m];
          }
        }
      }
      j += len;
    }
  }
}

static inline float clampf(float v, float lo, float hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Depthwise job (dw_setup): lowers the band's L, then every output row from its window. */
static void dw_job(const ck_conv_ctx *ctx, const float *input, float *output, size_t job,
                   float *l) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const mec_state *s = ctx->state;
  const size_t C = (size_t)d->in_channels, OH = (size_t)pb->out_h, OW = (size_t)pb->out_w;
  const size_t KH = (size_t)d->kernel_height, KW = (size_t)d->kernel_width, U = s->U;
  const long H = d->in_height, W = d->in_width;
  const size_t sh = (size_t)d->stride_height, dh = (size_t)d->dilation_height;
  const int nchw = d->layout == CK_LAYOUT_NCHW;
  const size_t per_image = (nchw ? C : s->nchunks) * s->nbands;
  const size_t n = job / per_image, rest = job % per_image;
  const size_t b = rest % s->nbands, q = rest / s->nbands; /* q: channel (NCHW) or chunk */
  const size_t oh0 = b * s->R, nr = OH - oh0 < s->R ? OH - oh0 : s->R;
  const long base = (long)(oh0 * sh) - d->pad_top;
  if (nchw) {
    const float *in = input + (n * C + q) * (size_t)(H * W), *wc = s->dw_w + q * s->K;
    for (size_t u = 0; u < U; u++) {
      const long ih = base + (long)u;
      for (size_t kw = 0; kw < KW; kw++) {
        float *row = l + (u * KW + kw) * OW;
        if (ih < 0 || ih >= H)
          memset(row, 0, OW * sizeof(float));
        else
          ck_lower_rows(row, 0, 1, OW, in + ih * W, 0, -d->pad_left + (long)kw * d->dilation_width,
                        d->stride_width, W);
      }
    }
    for (size_t r = 0; r < nr; r++) {
      float *o = output + ((n * C + q) * OH + oh0 + r) * OW;
      for (size_t ow = 0; ow < OW; ow++) o[ow] = 0.0f;
      for (size_t kh = 0; kh < KH; kh++)
        for (size_t kw = 0; kw < KW; kw++) {
          const float wk = wc[kh * KW + kw], *x = l + ((r * sh + kh * dh) * KW + kw) * OW;
          for (size_t ow = 0; ow < OW; ow++) o[ow] += wk * x[ow];
        }
      for (size_t ow = 0; ow < OW; ow++) o[ow] = clampf(o[ow] + s->bias[q], pb->min, pb->max);
    }
    return;
  }
  const size_t ow0 = q * s->cp, ncols = OW - ow0 < s->cp ? OW - ow0 : s->cp;
  const size_t ctot = U * KW * C; /* floats of a row of L */
  const float *in = input + n * (size_t)(H * W) * C;
  for (size_t j = 0; j < ncols; j++)
    for (size_t u = 0; u < U; u++) {
      const long ih = base + (long)u;
      for (size_t kw = 0; kw < KW; kw++) {
        const long iw =
            (long)(ow0 + j) * d->stride_width - d->pad_left + (long)kw * d->dilation_width;
        const float *src =
            ih >= 0 && ih < H && iw >= 0 && iw < W ? in + (ih * W + iw) * (long)C : s->zero;
        memcpy(l + j * ctot + (u * KW + kw) * C, src, C * sizeof(float));
      }
    }
  for (size_t r = 0; r < nr; r++)
    for (size_t j = 0; j < ncols; j++) {
      float *o = output + ((n * OH + oh0 + r) * OW + ow0 + j) * C;
      for (size_t c = 0; c < C; c++) o[c] = 0.0f;
      for (size_t kh = 0; kh < KH; kh++)
        for (size_t kw = 0; kw < KW; kw++) {
          const float *x = l + j * ctot + ((r * sh + kh * dh) * KW + kw) * C;
          const float *wk = s->dw_w + (kh * KW + kw) * C;
          for (size_t c = 0; c < C; c++) o[c] += wk[c] * x[c];
        }
      for (size_t c = 0; c < C; c++) o[c] = clampf(o[c] + s->bias[c], pb->min, pb->max);
    }
}

static void dw_execute(const ck_conv_ctx *ctx, const float *input, float *output, void *workspace) {
  const ck_conv_desc *d = &ctx->pb.d;
  const mec_state *s = ctx->state;
  const size_t per_image =
      (d->layout == CK_LAYOUT_NCHW ? (size_t)d->in_channels : s->nchunks) * s->nbands;
#pragma omp parallel num_threads(s->workers) if (s->workers > 1)
  {
    unsigned char *cur = ck_gc_ws_region(workspace, 0, s->region, omp_get_thread_num());
    float *l = ck_gc_carve(&cur, s->l_bytes);
#pragma omp for schedule(dynamic, 1)
    for (long job = 0; job < (long)((size_t)d->batch * per_image); job++)
      dw_job(ctx, input, output, (size_t)job, l);
  }
}

static void mec_execute(const ck_conv_ctx *ctx, const float *input, float *output,
                        void *workspace) {
  const ck_conv_desc *d = &ctx->pb.d;
  const mec_state *s = ctx->state;
  if (s->dw) {
    dw_execute(ctx, input, output, workspace);
    return;
  }
  const size_t units = (size_t)d->batch / s->nb * (size_t)d->groups * s->nbands * s->nchunks;
#pragma omp parallel num_threads(s->workers) if (s->workers > 1)
  {
    unsigned char *cur =
        ck_gc_ws_region(workspace, s->shared_bytes, s->region, omp_get_thread_num());
    float *l = ck_gc_carve(&cur, s->l_bytes);
    float *tmp = ck_gc_carve(&cur, s->tmp_bytes);
    void *ews = ck_gc_carve(&cur, s->eng_bytes);
    if (s->shared_bytes == 0) {
      /* Independent jobs: each lowers its band's L and runs its GEMMs. They are handed out in
       * a strided order (job j is unit j%W*q + j/W): the W threads start far apart, not on
       * neighbouring chunks whose output runs share cache lines, and each still walks
       * consecutive chunks of a band (adjacent input). Only the order changes, not the bits. */
      const size_t W = (size_t)s->workers, q = ck_div_up(units, W);
#pragma omp for schedule(dynamic, 1)
      for (long job = 0; job < (long)(q * W * s->nmb); job++) {
        const size_t j = (size_t)job / s->nmb, u = j % W * q + j / W;
        if (u >= units) continue;
        const mec_unit un = unit_of(ctx, u);
        lower_unit(ctx, input, un, un.p0, un.p0 + un.np, 0, SIZE_MAX, l);
        gemm_unit(ctx, output, un, (size_t)job % s->nmb, l, tmp, ews);
      }
    } else {
      /* Few bands, channels split among the threads: each band's L is lowered once, by all
       * threads (panel, input row) by (panel, input row) into the shared buffer, since a band
       * may be a single panel (7x7 layers), then its channel blocks are shared. */
      float *shared = (float *)ck_gc_ws_shared(workspace);
      for (size_t u = 0; u < units; u++) {
        const mec_unit un = unit_of(ctx, u);
        const size_t U = band_units(s, d, un.nr);
#pragma omp for schedule(dynamic, 1)
        for (long i = 0; i < (long)(un.np * U); i++) {
          const size_t p = un.p0 + (size_t)i / U, r = (size_t)i % U;
          lower_unit(ctx, input, un, p, p + 1, r, r + 1, shared);
        }
#pragma omp for schedule(dynamic, 1)
        for (long blk = 0; blk < (long)s->nmb; blk++)
          gemm_unit(ctx, output, un, (size_t)blk, shared, tmp, ews);
      }
    }
  }
}

const ck_algo_impl ck_algo_mec = {
    .id = CK_ALGO_MEC,
    .setup = mec_setup,
    .execute = mec_execute,
    .destroy = mec_destroy,
};
