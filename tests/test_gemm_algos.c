/* Targeted cases for the GEMM-based algorithms (im2col, kn2row, kn2row-aa, mec) that the random
 * descriptor generator may miss: the 1x1 direct path with groups, stride-only 1x1, padding
 * larger than the kernel, MEC's solutions A and B, shapes large enough for several tiles, bands
 * and channel blocks, and the workspace contract (exact size, any alignment, contents ignored). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
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

/* Every GEMM algorithm, both layouts, every ISA, the given thread counts, against the
 * reference (ckt_check_conv also checks guard zones and caller vs own workspace bits). */
static void check_everywhere(ck_conv_desc d, const int *threads, int nthreads) {
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  char msg[1024];
  for (int lay = 0; lay < 2; lay++) {
    d.layout = lay ? CK_LAYOUT_NHWC : CK_LAYOUT_NCHW;
    for (size_t a = 0; a < NALGOS; a++)
      for (int i = 0; i < nisa; i++)
        for (int t = 0; t < nthreads; t++) {
          int rc = ckt_check_conv(&d, gemm_algos[a], isas[i], threads[t], msg, sizeof msg);
          cr_assert_eq(rc, 0, "%s (%d threads)", msg, threads[t]);
        }
  }
}

static const int one_two[] = {1, 2};

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

/* Large enough for several pixel tiles (im2col, kn2row-aa), several input-row bands (kn2row)
 * and several output-row bands (mec), with the bits compared across 1, 2 and 3 threads. */
Test(gemm_algos, several_tiles_and_bands, .timeout = 600) {
  static const int threads[] = {1, 3};
  ck_conv_desc d = make_desc(1, 64, 44, 40, 48, 3, 3);
  set_pads(&d, 1, 2, 1, 0);
  d.activation = CK_ACTIVATION_RELU;
  check_everywhere(d, threads, 2);
  ck_conv_desc e = make_desc(2, 24, 50, 46, 20, 3, 3);
  set_pads(&e, 2, 2, 2, 2);
  e.dilation_height = e.dilation_width = 2;
  check_everywhere(e, threads, 2);
  ck_conv_desc f = make_desc(1, 32, 47, 45, 40, 5, 3);
  set_pads(&f, 2, 1, 1, 1);
  f.stride_height = 2;
  check_everywhere(f, threads, 2);
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
