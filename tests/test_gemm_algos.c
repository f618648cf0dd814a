/* Targeted cases for the GEMM-based algorithms (im2col, kn2row, kn2row-aa, mec) that the random
 * descriptor generator may miss: the 1x1 direct path with groups, stride-only 1x1, padding
 * larger than the kernel, MEC's solutions A and B, shapes large enough for several tiles, bands
 * and channel blocks, and the workspace contract (exact size, any alignment, contents ignored). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "conv/gemmconv.h"
#include "conv/lower.h"
#include "gemm.h"
#include "kernels.h"

static const ck_algo gemm_algos[] = {CK_ALGO_IM2COL, CK_ALGO_KN2ROW, CK_ALGO_KN2ROW_AA,
                                     CK_ALGO_MEC};
#define NALGOS (sizeof gemm_algos / sizeof gemm_algos[0])

static ck_conv_desc make_desc(int n, int c, int h, int w, int m, int kh, int kw) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = n;
  d.in_channels = c;
  d.in_height = h;
  d.in_width = w;
  d.out_channels = m;
  d.kernel_height = kh;
  d.kernel_width = kw;
  return d;
}

static void set_pads(ck_conv_desc *d, int t, int b, int l, int r) {
  d->pad_top = t;
  d->pad_bottom = b;
  d->pad_left = l;
  d->pad_right = r;
}

/* One algorithm, both layouts, every ISA, the given thread counts, against the reference
 * (ckt_check_conv also checks guard zones and caller vs own workspace bits); `what` names the
 * case in a failure. */
static void check_algo(ck_conv_desc d, ck_algo algo, const int *threads, int nthreads,
                       const char *what) {
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  char msg[1024];
  for (int lay = 0; lay < 2; lay++) {
    d.layout = lay ? CK_LAYOUT_NHWC : CK_LAYOUT_NCHW;
    for (int i = 0; i < nisa; i++)
      for (int t = 0; t < nthreads; t++) {
        int rc = ckt_check_conv(&d, algo, isas[i], threads[t], msg, sizeof msg);
        cr_assert_eq(rc, 0, "%s: %s (%d threads, budget shift %d)", what, msg, threads[t],
                     ck_gc_budget_shift);
      }
  }
}

/* Every GEMM algorithm, as check_algo. */
static void check_everywhere(ck_conv_desc d, const int *threads, int nthreads) {
  for (size_t a = 0; a < NALGOS; a++)
    check_algo(d, gemm_algos[a], threads, nthreads, ck_algo_name(gemm_algos[a]));
}

static const int one_two[] = {1, 2};

/* check_algo on each of n shapes, with the working-set budgets as they are and divided by
 * 2^shift (more, smaller tiles and blocks). */
static void check_shapes(const ck_conv_desc *shapes, int n, ck_algo algo, const int *threads,
                         int nthreads, int shift) {
  for (int sh = 0; sh <= shift; sh += shift) {
    ck_gc_budget_shift = sh;
    for (int i = 0; i < n; i++) {
      char what[16];
      snprintf(what, sizeof what, "shape %d", i);
      check_algo(shapes[i], algo, threads, nthreads, what);
    }
  }
  ck_gc_budget_shift = 0;
}

Test(gemm_algos, direct_1x1_with_groups) {
  /* 1x1, stride 1, no padding: the input is the pixel operand; groups offset it. */
  ck_conv_desc d = make_desc(2, 12, 7, 5, 18, 1, 1);
  d.groups = 3;
  d.activation = CK_ACTIVATION_RELU;
  check_everywhere(d, one_two, 2);
  d.filter_layout = CK_FILTER_OHWI;
  d.groups = 12; /* depthwise, channel multiplier 2 */
  d.out_channels = 24;
  check_everywhere(d, one_two, 2);
}

Test(gemm_algos, stride_only_1x1) {
  ck_conv_desc d = make_desc(2, 9, 11, 13, 10, 1, 1);
  d.stride_height = d.stride_width = 2;
  check_everywhere(d, one_two, 2);
  d.stride_height = 3;
  d.groups = 1;
  d.dilation_height = 2; /* no effect on a 1x1 kernel, but must be accepted */
  check_everywhere(d, one_two, 2);
}

Test(gemm_algos, padding_larger_than_the_kernel) {
  /* Whole output rows and columns see only padding: they are the bias alone. */
  ck_conv_desc d = make_desc(1, 5, 6, 7, 6, 3, 3);
  set_pads(&d, 5, 2, 4, 6);
  d.activation = CK_ACTIVATION_CLAMP;
  d.clamp_min = -0.25f;
  d.clamp_max = 0.5f;
  check_everywhere(d, one_two, 2);
  d.stride_height = 2;
  d.dilation_width = 2;
  check_everywhere(d, one_two, 2);
  ck_conv_desc e = make_desc(2, 3, 4, 9, 4, 1, 3);
  set_pads(&e, 3, 0, 0, 5);
  e.dilation_height = 3;
  check_everywhere(e, one_two, 2);
}

Test(gemm_algos, depthwise_with_multiplier_strided) {
  ck_conv_desc d = make_desc(2, 16, 15, 14, 32, 3, 3);
  d.groups = 16;
  d.stride_height = d.stride_width = 2;
  set_pads(&d, 1, 0, 1, 1);
  check_everywhere(d, one_two, 2);
}

/* Stride-2 rows of every width up to 21, from the left edge, the right edge and the interior:
 * the NCHW lowerings copy them four outputs at a time from pairs of 4-float loads, which must
 * neither skip nor read past a row's last input (ASan sees the input's end); dense and
 * depthwise (im2col's per-channel plane lowering). */
Test(gemm_algos, stride2_rows_every_width) {
  static const int one[] = {1};
  for (int w = 1; w <= 21; w++)
    for (int pad = 0; pad <= 1; pad++) {
      ck_conv_desc d = make_desc(1, 3, 3, w, 2, 1, 3);
      d.stride_width = 2;
      set_pads(&d, 0, 0, pad, pad + w % 2);
      if (w + 2 * pad + w % 2 < 3) continue;
      check_everywhere(d, one, 1);
      ck_conv_desc e = d;
      e.out_channels = e.groups = 3;
      check_everywhere(e, one, 1);
    }
}

/* Several pixel tiles (im2col, kn2row-aa), input-row bands (kn2row), output-row bands and filter
 * blocks (mec), with the bits compared across 1 and 3 threads. The working-set budgets are
 * divided by 64 so that small problems, cheap for the reference, take these paths. */
Test(gemm_algos, several_tiles_bands_and_blocks) {
  static const int threads[] = {1, 3};
  ck_gc_budget_shift = 6;
  ck_conv_desc d = make_desc(1, 16, 20, 18, 40, 3, 3);
  set_pads(&d, 1, 2, 1, 0);
  d.activation = CK_ACTIVATION_RELU;
  check_everywhere(d, threads, 2);
  ck_conv_desc e = make_desc(2, 8, 18, 16, 12, 3, 3);
  set_pads(&e, 2, 2, 2, 2);
  e.dilation_height = e.dilation_width = 2;
  check_everywhere(e, threads, 2);
  ck_conv_desc f = make_desc(1, 12, 21, 19, 20, 5, 3);
  set_pads(&f, 2, 1, 1, 1);
  f.stride_height = 2;
  f.groups = 2;
  check_everywhere(f, threads, 2);
  ck_gc_budget_shift = 0;
}

/* kn2row's shift-add jobs of output rows: rows that are whole pixel panels (W a multiple of the
 * panel width: 28 = 2*14 = 7*4, 32 = 32 = 2*16 = 4*8, 30 = 5*6) are packed once per job and read
 * at each row of taps' offset; other widths (29) go to the engine as the plain input. Several
 * channel blocks and single-row jobs (budgets divided by 64), jobs of several rows (divided by
 * 4), dilation, asymmetric and large pads, with the bits compared across 1 and 3 threads. */
Test(gemm_algos, kn2row_row_jobs_packed_and_plain) {
  static const int threads[] = {1, 3};
  static const int widths[] = {28, 32, 30, 29};
  for (int shift = 2; shift <= 6; shift += 4) {
    ck_gc_budget_shift = shift;
    for (int wi = 0; wi < 4; wi++) {
      ck_conv_desc d = make_desc(2, 9, 7, widths[wi], 40, 3, 3);
      set_pads(&d, 3, 1, 2, 0);
      d.dilation_height = 2;
      d.activation = CK_ACTIVATION_RELU;
      char what[32];
      snprintf(what, sizeof what, "width %d", widths[wi]);
      check_algo(d, CK_ALGO_KN2ROW, threads, 2, what);
    }
  }
  ck_gc_budget_shift = 0;
}

/* MEC on images narrower than half a panel folds several output rows into one GEMM (panel row
 * (i, ow) shifted by i*stride_h input rows): widths 7, 3 and 2 fold on the ISAs whose panels
 * are 14, 6 and 4 rows, with a last GEMM of fewer rows (odd heights), stride 2, and several
 * bands (budgets divided by 64), at 1 and 3 threads. */
Test(gemm_algos, mec_folded_rows) {
  static const int threads[] = {1, 3};
  ck_conv_desc shapes[3];
  shapes[0] = make_desc(1, 8, 7, 7, 40, 3, 3); /* 7x7 */
  set_pads(&shapes[0], 1, 1, 1, 1);
  shapes[1] = make_desc(1, 5, 5, 3, 9, 3, 3); /* 5x3 */
  set_pads(&shapes[1], 1, 1, 1, 1);
  shapes[2] = make_desc(1, 6, 11, 4, 7, 3, 3); /* stride 2: 5x2 */
  set_pads(&shapes[2], 0, 1, 1, 0);
  shapes[2].stride_height = shapes[2].stride_width = 2;
  check_shapes(shapes, 3, CK_ALGO_MEC, threads, 2, 6);
}

/* Few input channels and many output channels (a network's first layer): kn2row-aa and the tap
 * sums group taps into one GEMM, by whole rows of taps or by runs of kw within a row. */
Test(gemm_algos, tap_groups_for_few_channels) {
  ck_conv_desc d = make_desc(1, 3, 23, 21, 40, 7, 7);
  set_pads(&d, 3, 3, 3, 2);
  d.stride_height = d.stride_width = 2;
  check_everywhere(d, one_two, 2);
  ck_conv_desc e = make_desc(2, 12, 9, 13, 36, 2, 5); /* cg*KW = 60: groups of 3 kw */
  set_pads(&e, 1, 0, 2, 2);
  e.activation = CK_ACTIVATION_RELU;
  check_everywhere(e, one_two, 2);
  ck_conv_desc f = make_desc(1, 5, 10, 10, 33, 3, 3); /* 3 rows of 3 taps: one group */
  set_pads(&f, 1, 1, 1, 1);
  f.dilation_width = 2;
  check_everywhere(f, one_two, 2);
}

/* kn2row-aa on few images and several threads splits pixels into parts of nearly equal size,
 * each whole gather tiles (40x40: parts not a multiple of the first gather tile), and output
 * channels into blocks of whole filter panels shared as evenly as they allow (60 channels as
 * two blocks: on 14-row panels 28 + 32, the last panel partial), at 1, 2 and 3 threads. */
Test(gemm_algos, kn2row_aa_balanced_jobs) {
  static const int threads[] = {1, 2, 3};
  ck_conv_desc d = make_desc(1, 64, 6, 6, 60, 3, 3);
  set_pads(&d, 1, 1, 1, 1);
  d.activation = CK_ACTIVATION_RELU;
  check_everywhere(d, threads, 3);
  ck_conv_desc e = make_desc(1, 40, 40, 40, 36, 3, 3);
  set_pads(&e, 1, 1, 0, 2);
  check_everywhere(e, threads, 3);
}

/* kn2row-aa splits a tap whose panel (pw pixels x input channels) exceeds 8 Ki floats into
 * equal chunks of channels, each gathered and accumulated into the output in turn: 300
 * channels, 520 and 600 in two groups of 300 (a chunk's offset within its group), stride 2, and
 * images wide enough for whole panels of pixels inside the image (the gather's one-pack path, on
 * a chunk of a pixel's channels), at 1, 2 and 3 threads. With the budgets as they are, the
 * 32-pixel panels (NCHW, AVX-512) split them in two or three; with the budgets divided by 64,
 * every ISA and layout splits them into many chunks, the last one shorter. */
Test(gemm_algos, kn2row_aa_channel_chunks) {
  static const int threads[] = {1, 2, 3};
  ck_conv_desc shapes[3];
  shapes[0] = make_desc(1, 300, 5, 37, 40, 3, 3);
  set_pads(&shapes[0], 1, 0, 1, 2);
  shapes[0].activation = CK_ACTIVATION_RELU;
  shapes[1] = make_desc(2, 520, 4, 35, 20, 1, 3);
  set_pads(&shapes[1], 0, 1, 0, 1);
  shapes[2] = make_desc(1, 600, 7, 33, 36, 3, 2);
  set_pads(&shapes[2], 1, 1, 0, 1);
  shapes[2].groups = 2;
  shapes[2].stride_height = shapes[2].stride_width = 2;
  check_shapes(shapes, 3, CK_ALGO_KN2ROW_AA, threads, 3, 6);
}

/* A small image with many channels: too few tiles for the threads, so channels are split into
 * blocks (the tile is lowered once per block). */
Test(gemm_algos, channel_blocks_on_small_images) {
  static const int threads[] = {1, 2, 3};
  ck_conv_desc d = make_desc(1, 40, 5, 6, 150, 3, 3);
  set_pads(&d, 1, 1, 1, 1);
  check_everywhere(d, threads, 3);
  d.groups = 2;
  d.out_channels = 140;
  check_everywhere(d, threads, 3);
}

static size_t plan_ws(const ck_conv_desc *d, ck_algo algo, ck_isa isa) {
  size_t nf =
      (size_t)d->out_channels * (d->in_channels / d->groups) * d->kernel_height * d->kernel_width;
  float *f = calloc(nf, sizeof(float));
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = algo;
  o.isa = isa;
  o.threads = 1;
  ck_plan *p = NULL;
  cr_assert_eq(ck_conv_plan_create(d, f, NULL, &o, &p), CK_OK, "%s", ck_last_error());
  size_t ws = ck_plan_workspace_size(p);
  ck_plan_destroy(p);
  free(f);
  return ws;
}

/* MEC stacks the batch into L (solution A) when the output width does not fill the engine's
 * MR-row panels and stacking does; otherwise it lowers one image at a time (solution B). Seen
 * from outside: with A the workspace grows with the batch, with B it does not. Both are checked
 * against the reference. */
Test(gemm_algos, mec_solutions_a_and_b) {
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  for (int i = 0; i < nisa; i++) {
    const ck_kernels *k = ck_kernels_for(isas[i]);
    cr_assert(k != NULL && k->mr >= 2);
    const int mr = k->mr;
    /* A: o_w = mr + 1 leaves a nearly empty second panel per image; 3 images share panels. */
    ck_conv_desc a = make_desc(3, 6, 6, mr + 1, 7, 3, 3);
    set_pads(&a, 1, 1, 1, 1);
    ck_conv_desc a1 = a;
    a1.batch = 1;
    cr_expect_gt(plan_ws(&a, CK_ALGO_MEC, isas[i]), plan_ws(&a1, CK_ALGO_MEC, isas[i]),
                 "isa %s: MEC should stack 3 images of width %d", ck_isa_name(isas[i]), mr + 1);
    /* B: o_w = 2*mr fills its panels exactly. */
    ck_conv_desc b = a;
    b.in_width = 2 * mr;
    b.layout = CK_LAYOUT_NHWC;
    ck_conv_desc b1 = b;
    b1.batch = 1;
    cr_expect_eq(plan_ws(&b, CK_ALGO_MEC, isas[i]), plan_ws(&b1, CK_ALGO_MEC, isas[i]),
                 "isa %s: MEC should lower images of width %d one at a time", ck_isa_name(isas[i]),
                 2 * mr);
    char msg[1024];
    for (int lay = 0; lay < 2; lay++) {
      a.layout = b.layout = lay ? CK_LAYOUT_NHWC : CK_LAYOUT_NCHW;
      for (int t = 1; t <= 2; t++) {
        cr_assert_eq(ckt_check_conv(&a, CK_ALGO_MEC, isas[i], t, msg, sizeof msg), 0, "%s", msg);
        cr_assert_eq(ckt_check_conv(&b, CK_ALGO_MEC, isas[i], t, msg, sizeof msg), 0, "%s", msg);
      }
    }
  }
}

/* The workspace: exactly ck_plan_workspace_size bytes, at any alignment, with guard bytes right
 * after its end and right before its start, filled with NaN beforehand (an algorithm must not
 * read what it did not write); the result has the bits of the plan's own workspace. */
Test(gemm_algos, workspace_exact_any_alignment_contents_ignored) {
  ck_conv_desc shapes[3];
  shapes[0] = make_desc(2, 10, 9, 11, 12, 3, 3);
  set_pads(&shapes[0], 1, 1, 1, 1);
  shapes[1] = make_desc(1, 64, 20, 18, 32, 3, 3);
  shapes[1].stride_height = shapes[1].stride_width = 2;
  shapes[2] = make_desc(3, 8, 6, 7, 8, 1, 1);
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  for (size_t s = 0; s < 3; s++) {
    for (int lay = 0; lay < 2; lay++) {
      ck_conv_desc d = shapes[s];
      d.layout = lay ? CK_LAYOUT_NHWC : CK_LAYOUT_NCHW;
      int oh, ow;
      cr_assert_eq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
      size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
      size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
      size_t nf = (size_t)d.out_channels * d.in_channels * d.kernel_height * d.kernel_width;
      float *in = malloc(nin * 4), *f = malloc(nf * 4), *o1 = malloc(nout * 4);
      float *o2 = malloc(nout * 4);
      uint64_t seed = 7 + s;
      ckt_fill(in, nin, &seed);
      ckt_fill(f, nf, &seed);
      for (size_t a = 0; a < NALGOS; a++) {
        for (int i = 0; i < nisa; i++) {
          ck_plan_options o;
          ck_plan_options_init(&o);
          o.algo = gemm_algos[a];
          o.isa = isas[i];
          o.threads = 2;
          ck_plan *p = NULL;
          cr_assert_eq(ck_conv_plan_create(&d, f, NULL, &o, &p), CK_OK, "%s", ck_last_error());
          cr_assert_eq(ck_conv_execute(p, in, o1, NULL), CK_OK);
          const size_t ws = ck_plan_workspace_size(p);
          const size_t guard = 64;
          unsigned char *buf = malloc(ws + 2 * guard + 64);
          for (size_t off = 0; off < 64; off += 12) {
            unsigned char *w = buf + guard + off;
            memset(buf, 0xA5, ws + 2 * guard + 64);
            for (size_t b = 0; b + 4 <= ws; b += 4) memcpy(w + b, &(float){NAN}, 4);
            cr_assert_eq(ck_conv_execute(p, in, o2, ws ? w : NULL), CK_OK);
            cr_assert(memcmp(o1, o2, nout * 4) == 0, "%s/%s shape %zu offset %zu: other bits",
                      ck_algo_name(gemm_algos[a]), ck_isa_name(isas[i]), s, off);
            for (size_t b = 0; b < guard + off; b++)
              cr_assert_eq(buf[b], 0xA5, "%s wrote before its workspace",
                           ck_algo_name(gemm_algos[a]));
            for (size_t b = guard + off + ws; b < ws + 2 * guard + 64; b++)
              cr_assert_eq(buf[b], 0xA5, "%s wrote past its workspace (%zu bytes)",
                           ck_algo_name(gemm_algos[a]), ws);
          }
          free(buf);
          ck_plan_destroy(p);
        }
      }
      free(in), free(f), free(o1), free(o2);
    }
  }
}

/* The engine extension MEC relies on: a packed operand with a panel stride (gemm.h) is a window
 * of k rows of a packed matrix with more of them. Checked for A and for B on every ISA against
 * a direct sum, with shapes that leave partial panels. */
Test(gemm_algos, engine_packed_window_with_panel_stride) {
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  const size_t m = 23, n = 37, kbig = 300, k0 = 41, k = 201;
  float *a = malloc(m * kbig * 4), *b = malloc(kbig * n * 4), *c = malloc(m * n * 4);
  uint64_t s = 5;
  ckt_fill(a, m * kbig, &s);
  ckt_fill(b, kbig * n, &s);
  for (int i = 0; i < nisa; i++) {
    const ck_kernels *kern = ck_kernels_for(isas[i]);
    float *ap = malloc(ck_gemm_packed_a_floats(kern, m, kbig) * 4);
    float *bp = malloc(ck_gemm_packed_b_floats(kern, kbig, n) * 4);
    ck_gemm_pack_a(kern, m, kbig, a, kbig, 1, ap);
    ck_gemm_pack_b(kern, kbig, n, b, n, 1, bp);
    for (int which = 0; which < 2; which++) {
      ck_gemm_problem p = {.m = m,
                           .n = n,
                           .k = k,
                           .c = c,
                           .ldc = n,
                           .alpha = 1.0f,
                           .min = -INFINITY,
                           .max = INFINITY};
      if (which == 0) { /* A windowed, B plain */
        p.a = (ck_gemm_operand){
            .data = ap + k0 * (size_t)kern->mr, .row_stride = kbig * (size_t)kern->mr, .packed = 1};
        p.b = (ck_gemm_operand){.data = b + k0 * n, .row_stride = n, .col_stride = 1};
      } else { /* A plain, B windowed */
        p.a = (ck_gemm_operand){.data = a + k0, .row_stride = kbig, .col_stride = 1};
        p.b = (ck_gemm_operand){
            .data = bp + k0 * (size_t)kern->nr, .row_stride = kbig * (size_t)kern->nr, .packed = 1};
      }
      size_t wsz = 0;
      cr_assert(ck_gemm_workspace_size(kern, &p, 1, &wsz));
      void *ws = malloc(wsz + 1);
      ck_gemm_execute(kern, &p, 1, ws);
      free(ws);
      for (size_t r = 0; r < m; r++)
        for (size_t j = 0; j < n; j++) {
          double ref = 0, mag = 0;
          for (size_t q = k0; q < k0 + k; q++) {
            ref += (double)a[r * kbig + q] * b[q * n + j];
            mag += fabs((double)a[r * kbig + q] * b[q * n + j]);
          }
          cr_assert(fabs(c[r * n + j] - ref) <= (k + 2) * 1.2e-7 * mag + 1e-30,
                    "%s %s window: c[%zu][%zu] = %g, expected %g", ck_isa_name(isas[i]),
                    which ? "B" : "A", r, j, c[r * n + j], ref);
        }
    }
    free(ap), free(bp);
  }
  free(a), free(b), free(c);
}

Test(gemm_algos, depthwise_groups_batched) {
  /* Depthwise, multiplier 1: every algorithm batches the groups (im2col's lowered tile of all
   * channels, kn2row's scaled bands and shift-add, kn2row-aa's accumulation, tap sums when
   * strided). Odd channel counts (vector tails), asymmetric pads, dilation, bias and clamp,
   * batch 2; the small budgets split the pixels into several tiles and bands. */
  static const int threads[] = {1, 2, 3};
  ck_conv_desc d = make_desc(2, 19, 11, 9, 19, 3, 3);
  d.groups = 19;
  set_pads(&d, 1, 2, 0, 1);
  d.activation = CK_ACTIVATION_CLAMP;
  d.clamp_min = -0.3f;
  d.clamp_max = 0.4f;
  for (int shift = 0; shift <= 8; shift += 8) {
    ck_gc_budget_shift = shift;
    check_everywhere(d, threads, 3);
    ck_conv_desc s = d;
    s.stride_height = 2;
    s.stride_width = 3;
    check_everywhere(s, threads, 3);
    ck_conv_desc t = d;
    t.dilation_height = 2;
    t.kernel_width = 5;
    t.filter_layout = CK_FILTER_OHWI;
    check_everywhere(t, threads, 3);
  }
  ck_gc_budget_shift = 0;
}

/* MEC's NCHW lowering plans its copies as cuts of every (panel, band row, kw) and applies them
 * channel by channel in batches (MEC_CUTS, 256): bands of many more cuts than a batch (a 5x7
 * kernel over 5 panels of a tall band), a partial last panel, padding rows and columns, stride 2
 * (the strided copy), and two stacked images whose runs cross from one image to the next
 * (solution A), at 1 and 2 threads, against the reference. */
Test(gemm_algos, mec_nchw_cut_batches) {
  ck_conv_desc d = make_desc(1, 3, 40, 61, 5, 5, 7);
  set_pads(&d, 2, 3, 3, 4);
  check_algo(d, CK_ALGO_MEC, one_two, 2, "5x7 stride 1");
  d.stride_height = 2;
  d.stride_width = 2;
  check_algo(d, CK_ALGO_MEC, one_two, 2, "5x7 stride 2");
  ck_conv_desc a = make_desc(2, 4, 9, 17, 6, 3, 5); /* width 15: stacked on 14-row panels */
  set_pads(&a, 1, 1, 1, 1);
  check_algo(a, CK_ALGO_MEC, one_two, 2, "stacked images");
}

/* MEC's NCHW output tile goes to the planes through the table's T x T transpose (8 or 16), its
 * last tile in each direction moved back to end at the edge, and element by element when a run
 * or the channel block is under T: runs of 15-17 and 33 columns, 8-40 channels (one group of 17
 * at an offset), whole and chunked rows (budget shift), stride 2, at 1 and 2 threads. */
Test(gemm_algos, mec_nchw_output_transpose) {
  static const int widths[] = {15, 16, 17, 33}, chans[] = {8, 16, 17, 40};
  for (int w = 0; w < 4; w++)
    for (int m = 0; m < 4; m++) {
      ck_conv_desc d = make_desc(1, 5, 6, widths[w], chans[m], 3, 3);
      set_pads(&d, 1, 1, 1, 1);
      check_algo(d, CK_ALGO_MEC, one_two, 2, "output transpose");
    }
  ck_conv_desc g = make_desc(1, 4, 7, 35, 34, 3, 3);
  set_pads(&g, 1, 1, 1, 1);
  g.groups = 2;
  g.stride_height = g.stride_width = 2;
  check_algo(g, CK_ALGO_MEC, one_two, 2, "output transpose, groups, stride 2");
  ck_gc_budget_shift = 6;
  ck_conv_desc c = make_desc(1, 8, 12, 40, 24, 3, 3);
  set_pads(&c, 1, 1, 1, 1);
  check_algo(c, CK_ALGO_MEC, one_two, 2, "output transpose, chunked rows");
  ck_gc_budget_shift = 0;
}

Test(gemm_algos, mec_dilated_short_bands) {
  /* Bands of fewer rows than the dilation store only the phases they read; columns chunked. */
  ck_conv_desc d = make_desc(1, 6, 13, 40, 5, 3, 3);
  d.dilation_height = 3;
  set_pads(&d, 3, 3, 1, 1);
  for (int shift = 0; shift <= 12; shift += 4) {
    ck_gc_budget_shift = shift;
    check_everywhere(d, one_two, 2);
  }
  ck_gc_budget_shift = 0;
}

Test(gemm_algos, lowering_gather_packer_same_bits) {
  /* ck_lower_gather through the ISA's transposing packer (evenly spaced rows, then padding)
   * gives the bits of the element-by-element gather, and falls back on uneven spacing. */
  enum { PW = 32, CG = 37, SRC = 4096 };
  float *src = malloc(SRC * sizeof(float)), zero[CG] = {0};
  float *a = malloc(PW * CG * sizeof(float)), *b = malloc(PW * CG * sizeof(float));
  cr_assert(src && a && b);
  for (int i = 0; i < SRC; i++) src[i] = (float)i * 0.25f - 7.0f;
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  const size_t pws[3] = {8, 14, 32};
  for (int i = 0; i < nisa; i++) {
    ck_gemm_packt_fn packt = ck_kernels_for(isas[i])->gemm_packt;
    for (int w = 0; w < 3; w++)
      for (int cg = 1; cg <= CG; cg += 9)
        for (int kase = 0; kase < 4; kase++) {
          const float *ptrs[PW];
          const size_t pw = pws[w];
          for (size_t j = 0; j < pw; j++) {
            ptrs[j] = src + 5 + j * 2 * (size_t)cg;       /* stride 2 */
            if (kase == 1 && j >= pw / 2) ptrs[j] = zero; /* trailing padding */
            if (kase == 2 && j == 0) ptrs[j] = zero;      /* leading padding */
            if (kase == 3 && j == pw - 1) ptrs[j] = src;  /* uneven */
          }
          memset(a, 0xff, PW * CG * sizeof(float));
          memset(b, 0xff, PW * CG * sizeof(float));
          ck_lower_gather(a, pw, (size_t)cg, ptrs, zero, packt);
          ck_lower_gather(b, pw, (size_t)cg, ptrs, zero, NULL);
          cr_assert(memcmp(a, b, PW * CG * sizeof(float)) == 0, "isa %d pw %zu cg %d case %d",
                    (int)isas[i], pw, cg, kase);
          for (size_t j = 0; j < pw; j++) /* and the gather is the transpose */
            cr_assert_eq(b[((size_t)cg - 1) * pw + j], ptrs[j][cg - 1]);
        }
  }
  free(src);
  free(a);
  free(b);
}

Test(gemm_algos, nhwc_kernel_rows_as_one_pack) {
  /* Rows wide enough for full pixel panels inside one output row: NHWC lowering packs a whole
   * kernel row (kw, c contiguous) at once in the interior, tap by tap at the borders. */
  ck_conv_desc d = make_desc(1, 3, 9, 70, 8, 5, 5);
  d.stride_width = 2;
  set_pads(&d, 2, 1, 3, 2);
  check_everywhere(d, one_two, 2);
  d.in_channels = 5;
  d.stride_width = 1;
  d.dilation_width = 2; /* not contiguous: tap by tap */
  check_everywhere(d, one_two, 2);
}

/* ck_lower_nchw against its definition, element by element: row k = (c, kh, kw) of panel q holds
 * the input at (oh*sh - pt + kh*dh, ow*sw - pl + kw*dw) for the panel's pixels, 0 in the padding
 * and past the tile. Stride 1 with OW == W and narrow padding columns takes the flat path (one
 * copy per panel row, padding columns zeroed after it), including rows wholly in the padding
 * (pad_top above the kernel), asymmetric and dilated padding, widths below a panel and tiles
 * starting mid-row; the rest (stride 2, padding columns over a quarter of a row) takes the cuts
 * per output row. Whole kernels, single taps and rows of taps, as im2col, kn2row-aa and its tap
 * groups lower them. The input and the panels are allocated to their exact size, so ASan sees
 * any access outside them. */
Test(gemm_algos, nchw_lowering_matches_definition) {
  /* C, H, W, KH, KW, sh, sw, dh, dw, pt, pb, pl, pr */
  static const int shapes[][13] = {
      {3, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {2, 5, 17, 3, 3, 1, 1, 1, 1, 0, 2, 2, 0},  {2, 9, 9, 5, 3, 1, 1, 2, 2, 4, 4, 2, 2},
      {1, 4, 12, 3, 5, 1, 1, 1, 1, 4, 0, 1, 3},  {2, 6, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {2, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   {2, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {2, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  {2, 6, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}};
  static const size_t pws[] = {6, 8, 14, 16, 32};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const int *v = shapes[si];
    ck_conv_desc d = make_desc(1, v[0], v[1], v[2], 1, v[3], v[4]);
    d.stride_height = v[5];
    d.stride_width = v[6];
    d.dilation_height = v[7];
    d.dilation_width = v[8];
    set_pads(&d, v[9], v[10], v[11], v[12]);
    ck_conv_problem pb;
    cr_assert_eq(ck_conv_problem_init(&d, &pb), CK_OK, "shape %zu: %s", si, ck_last_error());
    const size_t C = (size_t)v[0], H = (size_t)v[1], W = (size_t)v[2];
    const size_t P = (size_t)pb.out_h * (size_t)pb.out_w;
    float *in = malloc(C * H * W * sizeof(float));
    for (size_t i = 0; i < C * H * W; i++) in[i] = (float)i + 1.0f;
    /* tap ranges: all, each single tap, each row of taps */
    ck_tap_range ranges[64];
    size_t nr = 0;
    ranges[nr++] = (ck_tap_range){0, v[3], 0, v[4]};
    for (int kh = 0; kh < v[3]; kh++) {
      ranges[nr++] = (ck_tap_range){kh, 1, 0, v[4]};
      for (int kw = 0; kw < v[4]; kw++) ranges[nr++] = (ck_tap_range){kh, 1, kw, 1};
    }
    for (size_t w = 0; w < sizeof pws / sizeof pws[0]; w++) {
      const size_t pw = pws[w];
      /* tiles: the whole image, one from mid-row to the end, one panel mid-image, a short tail */
      const size_t tiles[4][2] = {
          {0, P},
          {P / 3 + 1 < P ? P / 3 + 1 : 0, P - (P / 3 + 1 < P ? P / 3 + 1 : 0)},
          {P / 2, P - P / 2 < pw ? P - P / 2 : pw},
          {P > 3 ? P - 3 : 0, P > 3 ? 3 : P}};
      for (size_t ti = 0; ti < 4; ti++)
        for (size_t ri = 0; ri < nr; ri++) {
          const size_t p0 = tiles[ti][0], np = tiles[ti][1];
          const ck_tap_range t = ranges[ri];
          const size_t kdim = C * (size_t)t.nkh * (size_t)t.nkw, panels = (np + pw - 1) / pw;
          float *dst = malloc(panels * kdim * pw * sizeof(float));
          for (size_t i = 0; i < panels * kdim * pw; i++) dst[i] = NAN;
          ck_lower_nchw(&pb, in, p0, np, t, pw, dst);
          for (size_t q = 0; q < panels; q++)
            for (size_t k = 0; k < kdim; k++)
              for (size_t j = 0; j < pw; j++) {
                const size_t c = k / ((size_t)t.nkh * (size_t)t.nkw);
                const long kh = t.kh0 + (long)(k / (size_t)t.nkw % (size_t)t.nkh);
                const long kw = t.kw0 + (long)(k % (size_t)t.nkw);
                const size_t pix = q * pw + j;
                float want = 0.0f;
                if (pix < np) {
                  const long oh = (long)((p0 + pix) / (size_t)pb.out_w);
                  const long ow = (long)((p0 + pix) % (size_t)pb.out_w);
                  const long ih = oh * v[5] - v[9] + kh * v[7], iw = ow * v[6] - v[11] + kw * v[8];
                  if (ih >= 0 && ih < (long)H && iw >= 0 && iw < (long)W)
                    want = in[(c * H + (size_t)ih) * W + (size_t)iw];
                }
                const float got = dst[(q * kdim + k) * pw + j];
                cr_assert(got == want,
                          "shape %zu pw %zu tile %zu taps (%d+%d, %d+%d): panel %zu row %zu "
                          "pixel %zu: %g, want %g",
                          si, pw, ti, t.kh0, t.nkh, t.kw0, t.nkw, q, k, j, (double)got,
                          (double)want);
              }
          free(dst);
        }
    }
    free(in);
  }
}

/* The output of a plan with `threads` threads (NULL on failure; the caller frees it). */
static float *run_threads(const ck_conv_desc *d, ck_algo algo, int threads, const float *in,
                          const float *f, size_t nout) {
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = algo;
  o.threads = threads;
  ck_plan *p = NULL;
  cr_assert_eq(ck_conv_plan_create(d, f, NULL, &o, &p), CK_OK, "%s", ck_last_error());
  float *out = malloc(nout * sizeof(float));
  cr_assert_eq(ck_conv_execute(p, in, out, NULL), CK_OK);
  ck_plan_destroy(p);
  return out;
}

/* kn2row-aa with 32 to 64 input channels groups taps up to an inner dimension of 192: a whole
 * row of 3x3 taps at 64 channels (3 groups), two rows of 3 taps at 40 channels (the last row
 * alone), groups of 3 and 2 taps in a row of 5 at 64 channels, dilation and stride, with the
 * grouped tile capped at a single tap's floats; several tiles with the budgets divided by 16,
 * against the reference at 1, 2 and 3 threads and with the same bits for each. */
Test(gemm_algos, kn2row_aa_rows_of_taps) {
  static const int threads[] = {1, 2, 3};
  ck_conv_desc shapes[4];
  shapes[0] = make_desc(1, 64, 13, 11, 40, 3, 3);
  set_pads(&shapes[0], 1, 1, 1, 1);
  shapes[0].activation = CK_ACTIVATION_RELU;
  shapes[1] = make_desc(1, 40, 9, 10, 36, 3, 3);
  set_pads(&shapes[1], 2, 0, 1, 1);
  shapes[2] = make_desc(2, 64, 8, 9, 33, 5, 5);
  set_pads(&shapes[2], 2, 2, 2, 2);
  shapes[2].dilation_width = 2;
  shapes[3] = make_desc(1, 32, 12, 12, 32, 3, 3);
  set_pads(&shapes[3], 1, 1, 0, 1);
  shapes[3].stride_height = shapes[3].stride_width = 2;
  check_shapes(shapes, 4, CK_ALGO_KN2ROW_AA, threads, 3, 4);
  /* the same bits for 1, 2 and 3 threads */
  for (int shift = 0; shift <= 4; shift += 4) {
    ck_gc_budget_shift = shift;
    for (int sidx = 0; sidx < 4; sidx++) {
      ck_conv_desc d = shapes[sidx];
      for (int lay = 0; lay < 2; lay++) {
        d.layout = lay ? CK_LAYOUT_NHWC : CK_LAYOUT_NCHW;
        int oh, ow;
        cr_assert_eq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
        const size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
        const size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
        const size_t nf = (size_t)d.out_channels * d.in_channels * d.kernel_height * d.kernel_width;
        float *in = malloc(nin * sizeof(float)), *f = malloc(nf * sizeof(float));
        uint64_t seed = 7 + (uint64_t)sidx;
        ckt_fill(in, nin, &seed);
        ckt_fill(f, nf, &seed);
        float *o1 = run_threads(&d, CK_ALGO_KN2ROW_AA, 1, in, f, nout);
        for (int t = 2; t <= 3; t++) {
          float *ot = run_threads(&d, CK_ALGO_KN2ROW_AA, t, in, f, nout);
          cr_assert(memcmp(o1, ot, nout * sizeof(float)) == 0,
                    "shape %d layout %d shift %d: 1 and %d threads differ", sidx, lay, shift, t);
          free(ot);
        }
        free(o1), free(in), free(f);
      }
    }
  }
  ck_gc_budget_shift = 0;
}
