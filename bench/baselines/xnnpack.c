/* Baseline: XNNPACK convolution operator (xnn_create_convolution2d_nhwc_f32), NHWC, the way
 * TFLite's delegate runs it: weights packed at creation, setup (indirection buffer) redone only
 * when the tensors move, run on a pthreadpool of the requested size. XNNPACK reads up to
 * XNN_EXTRA_BYTES past its input, which the bench allocates. NHWC only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <pthreadpool.h>
#include <xnnpack.h>

#include "baselines.h"

_Static_assert(XNN_EXTRA_BYTES <= CKB_BASELINE_INPUT_SLACK, "bench input slack too small");

typedef struct {
  ck_conv_desc d;
  xnn_operator_t op;
  pthreadpool_t pool;
  const float *last_in;
  float *last_out;
} xnnpack;

static void *create(const ck_conv_desc *d, const float *filter_oihw, const float *bias, int threads,
                    char *err, size_t err_len) {
  if (d->layout != CK_LAYOUT_NHWC) {
    snprintf(err, err_len, "XNNPACK runs NHWC only");
    return NULL;
  }
  if (xnn_initialize(NULL) != xnn_status_success) {
    snprintf(err, err_len, "xnn_initialize failed (CPU not supported?)");
    return NULL;
  }
  const int G = d->groups, CG = d->in_channels / G, KH = d->kernel_height, KW = d->kernel_width;
  const size_t M = (size_t)d->out_channels, taps = (size_t)KH * KW;
  float *ohwi = malloc(M * taps * (size_t)CG * sizeof(float));
  xnnpack *s = calloc(1, sizeof *s);
  if (!ohwi || !s) {
    free(ohwi), free(s);
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  for (size_t m = 0; m < M; m++)
    for (size_t t = 0; t < taps; t++)
      for (int c = 0; c < CG; c++)
        ohwi[(m * taps + t) * CG + c] = filter_oihw[(m * CG + c) * taps + t];
  s->d = *d;
  enum xnn_status st = xnn_create_convolution2d_nhwc_f32(
      d->pad_top, d->pad_right, d->pad_bottom, d->pad_left, KH, KW, d->stride_height,
      d->stride_width, d->dilation_height, d->dilation_width, G, CG, M / G, d->in_channels, M, ohwi,
      bias, -INFINITY, INFINITY, 0, &s->op);
  free(ohwi);
  if (st != xnn_status_success) {
    snprintf(err, err_len, "xnn_create_convolution2d_nhwc_f32 failed (status %d)", (int)st);
    free(s);
    return NULL;
  }
  s->pool = threads > 1 ? pthreadpool_create((size_t)threads) : NULL;
  return s;
}

static void run(void *inst, const float *input, float *output) {
  xnnpack *s = inst;
  if (input != s->last_in || output != s->last_out) {
    xnn_setup_convolution2d_nhwc_f32(s->op, (size_t)s->d.batch, (size_t)s->d.in_height,
                                     (size_t)s->d.in_width, input, output, s->pool);
    s->last_in = input;
    s->last_out = output;
  }
  xnn_run_operator(s->op, s->pool);
}

static size_t workspace(const void *inst) {
  (void)inst;
  return (size_t)-1; /* the indirection buffer lives inside the operator; XNNPACK does not say */
}

static void destroy(void *inst) {
  xnnpack *s = inst;
  if (!s) return;
  if (s->op) xnn_delete_operator(s->op);
  if (s->pool) pthreadpool_destroy(s->pool);
  free(s);
}

const ckb_baseline ckb_baseline_xnnpack = {
    .name = "xnnpack",
    .what = "XNNPACK convolution2d_nhwc_f32 (indirect conv) on a pthreadpool",
    .native = CK_LAYOUT_NHWC,
    .has_nchw = 0,
    .has_nhwc = 1,
    .create = create,
    .run = run,
    .workspace = workspace,
    .destroy = destroy,
};
