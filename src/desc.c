/* Descriptor defaults and validation: every field checked, every size overflow-checked. */
#include <math.h>
#include <stdint.h>

#include "conv/conv.h"

void ck_conv_desc_init(ck_conv_desc *d) {
  if (d == NULL) return;
  *d = (ck_conv_desc){0};
  d->stride_height = d->stride_width = 1;
  d->dilation_height = d->dilation_width = 1;
  d->groups = 1;
  d->layout = CK_LAYOUT_NCHW;
  d->filter_layout = CK_FILTER_OIHW;
  d->activation = CK_ACTIVATION_NONE;
  d->clamp_min = -INFINITY;
  d->clamp_max = INFINITY;
}

#define REQUIRE_AT_LEAST(field, lo)                                                                \
  do {                                                                                             \
    if (d->field < (lo))                                                                           \
      return ck_fail(CK_ERROR_INVALID_ARGUMENT, #field " (%d) must be >= %d", d->field, (lo));     \
  } while (0)

/* Output extent of one spatial dimension, or -1 when the dilated kernel does not fit. */
static int64_t out_extent(int in, int pad_a, int pad_b, int k, int dil, int stride) {
  int64_t padded = (int64_t)in + pad_a + pad_b;
  int64_t span = (int64_t)dil * (k - 1) + 1;
  if (span > padded) return -1;
  return (padded - span) / stride + 1;
}

static int product_fits(size_t *r, const int *f, int n) {
  size_t acc = 1;
  for (int i = 0; i < n; i++)
    if (!ck_mul_size(acc, (size_t)f[i], &acc)) return 0;
  /* Every tensor must also be addressable in bytes, with room for signed offsets. */
  if (acc > (size_t)PTRDIFF_MAX / sizeof(float)) return 0;
  *r = acc;
  return 1;
}

ck_status ck_conv_problem_init(const ck_conv_desc *d, ck_conv_problem *pb) {
  if (d == NULL) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "descriptor is NULL");
  REQUIRE_AT_LEAST(batch, 1);
  REQUIRE_AT_LEAST(in_channels, 1);
  REQUIRE_AT_LEAST(in_height, 1);
  REQUIRE_AT_LEAST(in_width, 1);
  REQUIRE_AT_LEAST(out_channels, 1);
  REQUIRE_AT_LEAST(kernel_height, 1);
  REQUIRE_AT_LEAST(kernel_width, 1);
  REQUIRE_AT_LEAST(stride_height, 1);
  REQUIRE_AT_LEAST(stride_width, 1);
  REQUIRE_AT_LEAST(pad_top, 0);
  REQUIRE_AT_LEAST(pad_bottom, 0);
  REQUIRE_AT_LEAST(pad_left, 0);
  REQUIRE_AT_LEAST(pad_right, 0);
  REQUIRE_AT_LEAST(dilation_height, 1);
  REQUIRE_AT_LEAST(dilation_width, 1);
  REQUIRE_AT_LEAST(groups, 1);
  if (d->in_channels % d->groups != 0)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "groups (%d) must divide in_channels (%d)", d->groups,
                   d->in_channels);
  if (d->out_channels % d->groups != 0)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "groups (%d) must divide out_channels (%d)",
                   d->groups, d->out_channels);
  if (d->layout != CK_LAYOUT_NCHW && d->layout != CK_LAYOUT_NHWC)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "layout (%d) is not a ck_layout value",
                   (int)d->layout);
  if (d->filter_layout != CK_FILTER_OIHW && d->filter_layout != CK_FILTER_OHWI)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "filter_layout (%d) is not a ck_filter_layout value",
                   (int)d->filter_layout);
  float lo = -INFINITY, hi = INFINITY;
  switch (d->activation) {
  case CK_ACTIVATION_NONE:
    break;
  case CK_ACTIVATION_RELU:
    lo = 0.0f;
    break;
  case CK_ACTIVATION_CLAMP:
    if (isnan(d->clamp_min) || isnan(d->clamp_max) || !(d->clamp_min <= d->clamp_max))
      return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                     "clamp_min (%g) must be <= clamp_max (%g), neither NaN", d->clamp_min,
                     d->clamp_max);
    lo = d->clamp_min;
    hi = d->clamp_max;
    break;
  default:
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "activation (%d) is not a ck_activation value",
                   (int)d->activation);
  }
  int64_t oh = out_extent(d->in_height, d->pad_top, d->pad_bottom, d->kernel_height,
                          d->dilation_height, d->stride_height);
  if (oh < 1)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "kernel_height (%d) dilated by dilation_height (%d) is larger than in_height "
                   "(%d) plus pad_top (%d) and pad_bottom (%d)",
                   d->kernel_height, d->dilation_height, d->in_height, d->pad_top, d->pad_bottom);
  int64_t ow = out_extent(d->in_width, d->pad_left, d->pad_right, d->kernel_width,
                          d->dilation_width, d->stride_width);
  if (ow < 1)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "kernel_width (%d) dilated by dilation_width (%d) is larger than in_width (%d) "
                   "plus pad_left (%d) and pad_right (%d)",
                   d->kernel_width, d->dilation_width, d->in_width, d->pad_left, d->pad_right);
  if (oh > INT32_MAX || ow > INT32_MAX)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "output size (%lld x %lld) overflows int",
                   (long long)oh, (long long)ow);
  /* Padded extents are used as int by the algorithms. */
  if ((int64_t)d->in_height + d->pad_top + d->pad_bottom > INT32_MAX ||
      (int64_t)d->in_width + d->pad_left + d->pad_right > INT32_MAX)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "padded input (%d+%d+%d x %d+%d+%d) overflows int",
                   d->in_height, d->pad_top, d->pad_bottom, d->in_width, d->pad_left, d->pad_right);

  size_t n;
  int in_dims[] = {d->batch, d->in_channels, d->in_height, d->in_width};
  if (!product_fits(&n, in_dims, 4))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "input size (batch %d x in_channels %d x in_height %d x in_width %d floats) "
                   "overflows",
                   d->batch, d->in_channels, d->in_height, d->in_width);
  int out_dims[] = {d->batch, d->out_channels, (int)oh, (int)ow};
  if (!product_fits(&n, out_dims, 4))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "output size (batch %d x out_channels %d x %lld x %lld floats) overflows",
                   d->batch, d->out_channels, (long long)oh, (long long)ow);
  int f_dims[] = {d->out_channels, d->in_channels / d->groups, d->kernel_height, d->kernel_width};
  if (!product_fits(&n, f_dims, 4))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "filter size (out_channels %d x %d x kernel %d x %d floats) overflows",
                   d->out_channels, d->in_channels / d->groups, d->kernel_height, d->kernel_width);

  pb->d = *d;
  pb->out_h = (int)oh;
  pb->out_w = (int)ow;
  pb->cin_g = d->in_channels / d->groups;
  pb->cout_g = d->out_channels / d->groups;
  pb->min = lo;
  pb->max = hi;
  return CK_OK;
}

ck_status ck_conv_output_size(const ck_conv_desc *d, int *out_height, int *out_width) {
  ck_clear_error();
  if (out_height == NULL || out_width == NULL)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "%s is NULL",
                   out_height == NULL ? "out_height" : "out_width");
  ck_conv_problem pb;
  ck_status s = ck_conv_problem_init(d, &pb);
  if (s != CK_OK) return s;
  *out_height = pb.out_h;
  *out_width = pb.out_w;
  return CK_OK;
}

size_t ck_conv_input_floats(const ck_conv_problem *pb) {
  return (size_t)pb->d.batch * pb->d.in_channels * pb->d.in_height * pb->d.in_width;
}

size_t ck_conv_output_floats(const ck_conv_problem *pb) {
  return (size_t)pb->d.batch * pb->d.out_channels * pb->out_h * pb->out_w;
}
