/* The reference algorithm against values worked out by hand: it is the oracle of every other
 * test, so it is never tested against itself. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "convkit.h"

/* Runs the reference on d and checks every output against `expect` (exact: the hand-worked
 * values are small integers or halves, exactly representable). */
static void run_expect(const ck_conv_desc *d, const float *in, const float *f, const float *bias,
                       const float *expect, size_t n) {
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = CK_ALGO_REFERENCE;
  ck_plan *p = NULL;
  cr_assert_eq(ck_conv_plan_create(d, f, bias, &o, &p), CK_OK, "%s", ck_last_error());
  float out[64];
  cr_assert(n <= 64);
  memset(out, 0xff, sizeof out);
  cr_assert_eq(ck_conv_execute(p, in, out, NULL), CK_OK, "%s", ck_last_error());
  for (size_t i = 0; i < n; i++)
    cr_expect_eq(out[i], expect[i], "output %zu: %g, expected %g", i, out[i], expect[i]);
  ck_plan_destroy(p);
}

/* 3 channels of 3x3, one 2x2 filter per channel, one output channel:
 *   c0 = [1 2 3; 4 5 6; 7 8 9] * [1 0; 0 1]   -> [6 8; 12 14]
 *   c1 = ones                  * [1 1; 1 1]   -> [4 4; 4 4]
 *   c2 = [1 0 2; 0 3 0; 4 0 5] * [0 1; -1 0] -> [0 -1; -1 0]
 *   sum [10 11; 15 18] + bias 0.5 -> [10.5 11.5; 15.5 18.5] */
static const float three_ch_in_nchw[27] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 1, 1, 1,
                                           1, 1, 1, 1, 1, 0, 2, 0, 3, 0, 4, 0, 5};
static const float three_ch_filter_oihw[12] = {1, 0, 0, 1, 1, 1, 1, 1, 0, 1, -1, 0};

static void three_ch_desc(ck_conv_desc *d) {
  ck_conv_desc_init(d);
  d->batch = 1;
  d->in_channels = 3;
  d->in_height = d->in_width = 3;
  d->out_channels = 1;
  d->kernel_height = d->kernel_width = 2;
}

Test(reference, three_channels_2x2_kernel_nchw_oihw) {
  ck_conv_desc d;
  three_ch_desc(&d);
  const float bias[1] = {0.5f}, expect[4] = {10.5f, 11.5f, 15.5f, 18.5f};
  run_expect(&d, three_ch_in_nchw, three_ch_filter_oihw, bias, expect, 4);
}

Test(reference, three_channels_2x2_kernel_nhwc_ohwi) {
  ck_conv_desc d;
  three_ch_desc(&d);
  d.layout = CK_LAYOUT_NHWC;
  d.filter_layout = CK_FILTER_OHWI;
  float in[27], f[12];
  for (int c = 0; c < 3; c++)
    for (int px = 0; px < 9; px++) in[px * 3 + c] = three_ch_in_nchw[c * 9 + px];
  for (int c = 0; c < 3; c++)
    for (int t = 0; t < 4; t++) f[t * 3 + c] = three_ch_filter_oihw[c * 4 + t];
  const float bias[1] = {0.5f}, expect[4] = {10.5f, 11.5f, 15.5f, 18.5f};
  run_expect(&d, in, f, bias, expect, 4);
}

Test(reference, relu_and_clamp_after_bias) {
  ck_conv_desc d;
  three_ch_desc(&d);
  const float bias[1] = {-12.0f}; /* raw outputs -2 -1 3 6 */
  d.activation = CK_ACTIVATION_RELU;
  const float relu[4] = {0, 0, 3, 6};
  run_expect(&d, three_ch_in_nchw, three_ch_filter_oihw, bias, relu, 4);
  d.activation = CK_ACTIVATION_CLAMP;
  d.clamp_min = -1.5f;
  d.clamp_max = 4.0f;
  const float clamped[4] = {-1.5f, -1, 3, 4};
  run_expect(&d, three_ch_in_nchw, three_ch_filter_oihw, bias, clamped, 4);
}

Test(reference, batch_of_two_without_bias) {
  ck_conv_desc d;
  three_ch_desc(&d);
  d.batch = 2;
  float in[54];
  for (int i = 0; i < 27; i++) in[i] = three_ch_in_nchw[i], in[27 + i] = 2 * three_ch_in_nchw[i];
  const float expect[8] = {10, 11, 15, 18, 20, 22, 30, 36};
  run_expect(&d, in, three_ch_filter_oihw, NULL, expect, 8);
}

/* 1-D: x = 1..7, w = [1 -1 2], stride 2, pad left 1, right 0: padded 0 1 2 3 4 5 6 7,
 * windows at 0, 2, 4 -> 0-1+4 = 3, 2-3+8 = 7, 4-5+12 = 11. */
Test(reference, one_dimensional_strided_left_padded) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = d.in_channels = d.out_channels = 1;
  d.in_height = 1;
  d.in_width = 7;
  d.kernel_height = 1;
  d.kernel_width = 3;
  d.stride_width = 2;
  d.pad_left = 1;
  int oh, ow;
  cr_assert_eq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
  cr_assert_eq(oh, 1);
  cr_assert_eq(ow, 3);
  const float in[7] = {1, 2, 3, 4, 5, 6, 7}, f[3] = {1, -1, 2}, expect[3] = {3, 7, 11};
  run_expect(&d, in, f, NULL, expect, 3);
}

/* Groups: C = 4, M = 2, groups 2, 1x1: m0 = 1*x0 + 10*x1, m1 = 100*x2 + 1000*x3. */
Test(reference, grouped_1x1) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = 1;
  d.in_channels = 4;
  d.out_channels = 2;
  d.groups = 2;
  d.in_height = d.in_width = 1;
  d.kernel_height = d.kernel_width = 1;
  const float in[4] = {1, 2, 3, 4}, f[4] = {1, 10, 100, 1000}, expect[2] = {21, 4300};
  run_expect(&d, in, f, NULL, expect, 2);
}

/* Depthwise with channel multiplier 2: C = 2, M = 4, groups 2; input 2x2 per channel, 2x2
 * kernels, one output pixel each: c0 = [1 2; 3 4], c1 = [5 6; 7 8];
 * m0 = c0 . [1 0 0 0] = 1, m1 = c0 . [0 0 0 1] = 4, m2 = c1 . [1 1 1 1] = 26,
 * m3 = c1 . [1 -1 0 0] = -1. */
Test(reference, depthwise_with_multiplier) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = 1;
  d.in_channels = 2;
  d.out_channels = 4;
  d.groups = 2;
  d.in_height = d.in_width = 2;
  d.kernel_height = d.kernel_width = 2;
  const float in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const float f[16] = {1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1, 0, 0};
  const float expect[4] = {1, 4, 26, -1};
  run_expect(&d, in, f, NULL, expect, 4);
}

/* Padded and dilated: x = [1..9] as 3x3, 2x2 ones kernel with dilation 2 (span 3), pad 1 on
 * every side: the taps of output (i, j) are padded (i, j), (i, j+2), (i+2, j), (i+2, j+2):
 * [5 10 5; 10 20 10; 5 10 5]. */
Test(reference, padded_and_dilated) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = d.in_channels = d.out_channels = 1;
  d.in_height = d.in_width = 3;
  d.kernel_height = d.kernel_width = 2;
  d.dilation_height = d.dilation_width = 2;
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  const float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, f[4] = {1, 1, 1, 1};
  const float expect[9] = {5, 10, 5, 10, 20, 10, 5, 10, 5};
  run_expect(&d, in, f, NULL, expect, 9);
}

/* Asymmetric padding (TF "SAME" with an even kernel): 1x4 input, 1x2 kernel [1 2], pad right 1:
 * padded 1 2 3 4 0 -> 5, 8, 11, 4. */
Test(reference, asymmetric_padding) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = d.in_channels = d.out_channels = 1;
  d.in_height = 1;
  d.in_width = 4;
  d.kernel_height = 1;
  d.kernel_width = 2;
  d.pad_right = 1;
  const float in[4] = {1, 2, 3, 4}, f[2] = {1, 2}, expect[4] = {5, 8, 11, 4};
  run_expect(&d, in, f, NULL, expect, 4);
}

/* NaN and Inf propagate as IEEE arithmetic says, also through ReLU. */
Test(reference, nan_and_inf_propagate) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = d.in_channels = d.out_channels = 1;
  d.in_height = 1;
  d.in_width = 3;
  d.kernel_height = d.kernel_width = 1;
  d.activation = CK_ACTIVATION_RELU;
  const float in[3] = {NAN, INFINITY, -INFINITY}, f[1] = {1};
  ck_plan *p = NULL;
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = CK_ALGO_REFERENCE;
  cr_assert_eq(ck_conv_plan_create(&d, f, NULL, &o, &p), CK_OK);
  float out[3];
  cr_assert_eq(ck_conv_execute(p, in, out, NULL), CK_OK);
  cr_expect(isnan(out[0]));
  cr_expect(isinf(out[1]) && out[1] > 0);
  cr_expect_eq(out[2], 0.0f);
  ck_plan_destroy(p);
}
