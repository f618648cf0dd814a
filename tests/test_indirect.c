/* The indirect algorithm: shapes that stress its paths (groups, depthwise with and without a
 * channel multiplier, 1x1, pads larger than the kernel, strides larger than the kernel, dilation,
 * batch, both layouts) against the reference on every ISA; one plan fed from different input
 * buffers; thread-count reproducibility; the workspace it asks for; the indirection base. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "igemm.h"

typedef struct {
  int n, c, h, w, m, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, g;
} shape;

static void desc_of(const shape *s, ck_layout layout, ck_filter_layout fl, ck_activation act,
                    ck_conv_desc *d) {
  ck_conv_desc_init(d);
  d->batch = s->n, d->in_channels = s->c, d->in_height = s->h, d->in_width = s->w;
  d->out_channels = s->m, d->kernel_height = s->kh, d->kernel_width = s->kw;
  d->stride_height = s->sh, d->stride_width = s->sw;
  d->pad_top = s->pt, d->pad_bottom = s->pb, d->pad_left = s->pl, d->pad_right = s->pr;
  d->dilation_height = s->dh, d->dilation_width = s->dw, d->groups = s->g;
  d->layout = layout, d->filter_layout = fl, d->activation = act;
  if (act == CK_ACTIVATION_CLAMP) d->clamp_min = -0.5f, d->clamp_max = 0.75f;
}

/* An indirect plan for d and filter f on isa (CK_ISA_AUTO: the best) with `threads` threads
 * (0: the default); fails the test if creation fails. */
static ck_plan *indirect_plan(const ck_conv_desc *d, const float *f, ck_isa isa, int threads) {
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = CK_ALGO_INDIRECT;
  o.isa = isa;
  if (threads > 0) o.threads = threads;
  ck_plan *p = NULL;
  cr_assert_eq(ck_conv_plan_create(d, f, NULL, &o, &p), CK_OK, "%s", ck_last_error());
  return p;
}

static const shape shapes[] = {
    /* n  c   h   w   m  kh kw sh sw pt pb pl pr dh dw g */
    {1, 16, 9, 11, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* 3x3, NR edge (40) */
    {2, 35, 7, 6, 33, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},    /* 1x1, batch */
    {1, 12, 8, 8, 18, 3, 3, 2, 2, 5, 4, 6, 3, 1, 1, 3},    /* grouped, pads > kernel */
    {1, 8, 10, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8},     /* depthwise 3x3 */
    {3, 37, 7, 12, 37, 3, 3, 2, 2, 1, 0, 0, 1, 1, 1, 37},  /* depthwise s2, asymmetric */
    {1, 20, 9, 9, 20, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 20},   /* depthwise 5x5 */
    {1, 19, 12, 11, 19, 7, 7, 1, 1, 3, 3, 3, 3, 1, 1, 19}, /* depthwise 7x7: multi-pass */
    {1, 17, 11, 13, 17, 3, 3, 1, 2, 2, 2, 2, 2, 2, 2, 17}, /* depthwise dilated: own windows */
    {1, 9, 6, 7, 9, 1, 4, 3, 5, 0, 1, 2, 0, 1, 1, 9},      /* depthwise 1x4, stride > kernel */
    {2, 6, 7, 8, 18, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 6},     /* depthwise, multiplier 3 */
    {1, 3, 23, 21, 16, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1},   /* conv1-like: C = 3 */
    {1, 24, 9, 9, 16, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1},    /* atrous */
    {1, 5, 4, 4, 7, 2, 2, 4, 4, 9, 9, 9, 9, 1, 1, 1},      /* mostly padding */
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},      /* one of everything */
    {1, 70, 5, 5, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 70},   /* depthwise, 70 channels */
    {1, 64, 3, 3, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2},    /* groups of 32 channels */
};

Test(indirect, stress_shapes_match_the_reference_on_every_isa, .timeout = 600) {
  ck_isa isas[4];
  const int nisa = ckt_available_isas(isas, 4);
  char msg[1024];
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    for (int v = 0; v < 4; v++) {
      ck_conv_desc d;
      desc_of(&shapes[i], v & 1 ? CK_LAYOUT_NCHW : CK_LAYOUT_NHWC,
              v & 2 ? CK_FILTER_OHWI : CK_FILTER_OIHW, (ck_activation)(v % 3), &d);
      for (int j = 0; j < nisa; j++) {
        const int threads = 1 + (int)(i + (size_t)j + (size_t)v) % 3;
        cr_assert_eq(ckt_check_conv(&d, CK_ALGO_INDIRECT, isas[j], threads, msg, sizeof msg), 0,
                     "shape %zu: %s", i, msg);
      }
    }
  }
}

/* Depthwise: the output rows whose windows are inside the image vertically share one stored
 * row of positions, each read at its own input offset (indirect.h). Heights from no such row to
 * several, with top and bottom pads that differ, strides 1-3, dilation 1-2 and two images, so
 * that the first and last of those rows, the rows around them and the batch offset are all
 * checked against the reference on every ISA. */
Test(indirect, depthwise_inner_rows_match_the_reference) {
  ck_isa isas[4];
  const int nisa = ckt_available_isas(isas, 4);
  char msg[1024];
  int n = 0;
  for (int h = 1; h <= 9; h++)
    for (int sh = 1; sh <= 3; sh++)
      for (int dh = 1; dh <= 2; dh++)
        for (int v = 0; v < 3; v++) {
          const int pt = v, pb = 2 - v, kh = v == 1 ? 5 : 3;
          if (h + pt + pb < dh * (kh - 1) + 1) continue; /* no output row */
          const shape s = {2, 19, h, 6, 19, kh, 3, sh, 1, pt, pb, 1, 1, dh, 1, 19};
          ck_conv_desc d;
          desc_of(&s, CK_LAYOUT_NHWC, CK_FILTER_OIHW, CK_ACTIVATION_NONE, &d);
          for (int j = 0; j < nisa; j++) {
            cr_assert_eq(
                ckt_check_conv(&d, CK_ALGO_INDIRECT, isas[j], 1 + (h + j) % 2, msg, sizeof msg), 0,
                "h %d sh %d dh %d pads %d/%d kh %d on %s: %s", h, sh, dh, pt, pb, kh,
                ck_isa_name(isas[j]), msg);
            n++;
          }
        }
  cr_assert_gt(n, 100);
}

/* One plan, two input buffers at different addresses holding the same values: the same bits.
 * (The indirection is built once against a base; only the offset changes per call.) Then a
 * third buffer with other values gives other results, so the plan does read the new buffer. */
Test(indirect, one_plan_two_input_buffers_same_bits) {
  ck_isa isas[4];
  const int nisa = ckt_available_isas(isas, 4);
  const int pick[] = {0, 3, 9, 2};
  for (size_t s = 0; s < sizeof pick / sizeof *pick; s++) {
    for (int layout = 0; layout < 2; layout++) {
      ck_conv_desc d;
      desc_of(&shapes[pick[s]], layout ? CK_LAYOUT_NCHW : CK_LAYOUT_NHWC, CK_FILTER_OIHW,
              CK_ACTIVATION_NONE, &d);
      int oh, ow;
      cr_assert_eq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
      const size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
      const size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
      const size_t nf =
          (size_t)d.out_channels * (d.in_channels / d.groups) * d.kernel_height * d.kernel_width;
      float *a = malloc(nin * 4), *b = malloc((nin + 333) * 4), *other = malloc(nin * 4);
      float *f = malloc(nf * 4), *o1 = malloc(nout * 4), *o2 = malloc(nout * 4);
      float *o3 = malloc(nout * 4);
      uint64_t rng = 3 + s;
      ckt_fill(a, nin, &rng);
      ckt_fill(other, nin, &rng);
      ckt_fill(f, nf, &rng);
      memcpy(b + 333, a, nin * 4); /* another address, another alignment */
      for (int j = 0; j < nisa; j++) {
        ck_plan *p = indirect_plan(&d, f, isas[j], 2);
        cr_assert_eq(ck_conv_execute(p, a, o1, NULL), CK_OK);
        cr_assert_eq(ck_conv_execute(p, other, o3, NULL), CK_OK);
        cr_assert_eq(ck_conv_execute(p, b + 333, o2, NULL), CK_OK);
        cr_assert(memcmp(o1, o2, nout * 4) == 0, "%s shape %d: two buffers give other bits",
                  ck_isa_name(isas[j]), pick[s]);
        cr_assert(memcmp(o1, o3, nout * 4) != 0, "%s shape %d: the plan ignored a new input",
                  ck_isa_name(isas[j]), pick[s]);
        ck_plan_destroy(p);
      }
      free(a), free(b), free(other), free(f), free(o1), free(o2), free(o3);
    }
  }
}

/* Bitwise identical for 1, 2, 3 and 5 threads on every path (igemm, grouped, depthwise,
 * multiplier), every ISA. */
Test(indirect, same_bits_for_any_thread_count) {
  ck_isa isas[4];
  const int nisa = ckt_available_isas(isas, 4);
  const int pick[] = {0, 2, 4, 6, 9};
  for (size_t s = 0; s < sizeof pick / sizeof *pick; s++) {
    ck_conv_desc d;
    desc_of(&shapes[pick[s]], CK_LAYOUT_NHWC, CK_FILTER_OIHW, CK_ACTIVATION_RELU, &d);
    int oh, ow;
    cr_assert_eq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
    const size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
    const size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
    const size_t nf =
        (size_t)d.out_channels * (d.in_channels / d.groups) * d.kernel_height * d.kernel_width;
    float *in = malloc(nin * 4), *f = malloc(nf * 4), *o1 = malloc(nout * 4);
    float *ot = malloc(nout * 4);
    uint64_t rng = 17 + s;
    ckt_fill(in, nin, &rng);
    ckt_fill(f, nf, &rng);
    for (int j = 0; j < nisa; j++) {
      const int counts[] = {1, 2, 3, 5};
      for (int t = 0; t < 4; t++) {
        ck_plan *p = indirect_plan(&d, f, isas[j], counts[t]);
        cr_assert_eq(ck_conv_execute(p, in, t == 0 ? o1 : ot, NULL), CK_OK);
        if (t > 0)
          cr_assert(memcmp(o1, ot, nout * 4) == 0, "%s shape %d: 1 and %d threads differ",
                    ck_isa_name(isas[j]), pick[s], counts[t]);
        ck_plan_destroy(p);
      }
    }
    free(in), free(f), free(o1), free(ot);
  }
}

/* NHWC needs no workspace at all; NCHW needs exactly its two NHWC copies (with the alignment
 * of each piece and one alignment of slack for an unaligned caller workspace). */
Test(indirect, workspace_is_the_nchw_copies_only) {
  for (int layout = 0; layout < 2; layout++) {
    ck_conv_desc d;
    desc_of(&shapes[1], layout ? CK_LAYOUT_NCHW : CK_LAYOUT_NHWC, CK_FILTER_OIHW,
            CK_ACTIVATION_NONE, &d);
    float f[35 * 33] = {0};
    ck_plan *p = indirect_plan(&d, f, CK_ISA_AUTO, 0);
    const size_t in_bytes = 2 * 35 * 7 * 6 * 4, out_bytes = 2 * 33 * 7 * 6 * 4;
    const size_t expect = layout ? (in_bytes + 63) / 64 * 64 + (out_bytes + 63) / 64 * 64 + 64 : 0;
    cr_assert_eq(ck_plan_workspace_size(p), expect, "%s: workspace %zu, expected %zu",
                 layout ? "NCHW" : "NHWC", ck_plan_workspace_size(p), expect);
    ck_plan_destroy(p);
  }
}

/* Positions never equal the zero row's address, wherever the zero row lies. */
Test(indirect, indirection_base_avoids_the_zero_row) {
  const uintptr_t zeros[] = {64, 100, 4096, 1u << 20, (uintptr_t)1 << 40, UINTPTR_MAX - 4096};
  const size_t spans[] = {0, 4, 4096, 1u << 20, (size_t)1 << 36};
  for (size_t i = 0; i < sizeof zeros / sizeof *zeros; i++)
    for (size_t j = 0; j < sizeof spans / sizeof *spans; j++) {
      const float *zero = (const float *)zeros[i];
      const uintptr_t base = ck_indirection_base(zero, 256, spans[j]);
      /* Positions are base + off for off < span: none may be the zero row's address. */
      const int hits = zeros[i] >= base && zeros[i] - base < spans[j];
      cr_assert(!hits, "zero row at %#zx, span %zu: base %#zx puts a position on it",
                (size_t)zeros[i], spans[j], (size_t)base);
    }
}

/* Few input channels: tiles inside the image read each kernel row as one merged tap of kw*C
 * channels, border tiles read kw taps of C. Both must sum the same products in the same order.
 * Input column X-1 is zero and columns X, X+1 repeat columns 0, 1, so output pixel (y, X) sees
 * the window of (y, 0) (whose left tap is padding): the two must have the same bits, for several
 * X, whichever tiles they fall in. */
Test(indirect, merged_taps_have_the_bits_of_single_taps) {
  ck_isa isas[4];
  const int nisa = ckt_available_isas(isas, 4);
  const shape s = {1, 3, 9, 60, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  ck_conv_desc d;
  desc_of(&s, CK_LAYOUT_NHWC, CK_FILTER_OIHW, CK_ACTIVATION_NONE, &d);
  const int C = 3, W = 60, H = 9, M = 40;
  float in[9 * 60 * 3], f[40 * 3 * 9], out[9 * 60 * 40];
  uint64_t rng = 5;
  ckt_fill(in, sizeof in / sizeof *in, &rng);
  ckt_fill(f, sizeof f / sizeof *f, &rng);
  const int xs[] = {17, 24, 31, 38, 45, 52};
  for (size_t j = 0; j < sizeof xs / sizeof *xs; j++)
    for (int y = 0; y < H; y++)
      for (int c = 0; c < C; c++) {
        in[(y * W + xs[j] - 1) * C + c] = 0;
        in[(y * W + xs[j]) * C + c] = in[(y * W + 0) * C + c];
        in[(y * W + xs[j] + 1) * C + c] = in[(y * W + 1) * C + c];
      }
  for (int i = 0; i < nisa; i++) {
    ck_plan *p = indirect_plan(&d, f, isas[i], 0);
    cr_assert_eq(ck_conv_execute(p, in, out, NULL), CK_OK);
    for (size_t j = 0; j < sizeof xs / sizeof *xs; j++)
      for (int y = 0; y < H; y++)
        cr_assert(memcmp(&out[(y * W + xs[j]) * M], &out[(y * W) * M], M * sizeof(float)) == 0,
                  "%s: pixel (%d, %d) differs from pixel (%d, 0)", ck_isa_name(isas[i]), y, xs[j],
                  y);
    ck_plan_destroy(p);
  }
}

/* Taps under the bottom padding are absent from the sum, as in the reference, not zeros times
 * the weight: with +Inf weights on the last kernel row, the bottom output row (whose last kernel
 * row lies in the padding for every pixel) is the finite sum of the other taps, worked out here
 * in double. W = 84, a multiple of every ISA's MR, keeps each tile inside one output row. */
Test(indirect, taps_under_the_bottom_padding_are_absent) {
  enum { C = 4, H = 4, W = 84, M = 5 };
  ck_isa isas[4];
  const int nisa = ckt_available_isas(isas, 4);
  const shape s = {1, C, H, W, M, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  ck_conv_desc d;
  desc_of(&s, CK_LAYOUT_NHWC, CK_FILTER_OIHW, CK_ACTIVATION_NONE, &d);
  static float in[H * W * C], f[M * C * 9], out[H * W * M];
  uint64_t rng = 11;
  ckt_fill(in, sizeof in / sizeof *in, &rng);
  ckt_fill(f, sizeof f / sizeof *f, &rng);
  for (int j = 0; j < M * C; j++)
    for (int kx = 0; kx < 3; kx++) f[j * 9 + 6 + kx] = INFINITY;
  for (int i = 0; i < nisa; i++) {
    ck_plan *p = indirect_plan(&d, f, isas[i], 0);
    cr_assert_eq(ck_conv_execute(p, in, out, NULL), CK_OK);
    for (int x = 0; x < W; x++)
      for (int m = 0; m < M; m++) {
        double want = 0;
        for (int ky = 0; ky < 2; ky++)
          for (int kx = 0; kx < 3; kx++) {
            const int iy = H - 2 + ky, ix = x - 1 + kx;
            if (ix < 0 || ix >= W) continue;
            for (int c = 0; c < C; c++)
              want += (double)in[(iy * W + ix) * C + c] * f[(m * C + c) * 9 + ky * 3 + kx];
          }
        const float got = out[((H - 1) * W + x) * M + m];
        cr_assert(fabs(got - want) <= 1e-5 * 24, "%s: output (%d, %d, %d) is %g, want %g",
                  ck_isa_name(isas[i]), H - 1, x, m, got, want);
      }
    ck_plan_destroy(p);
  }
}
