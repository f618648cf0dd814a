/* The reference convolution: direct loops with a double accumulator, every layout and option.
 * It is the oracle of every test, so it is kept as plain as the definition. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"

typedef struct {
  float *filter; /* OIHW */
  float *bias;
} reference_state;

static ck_status reference_setup(ck_conv_ctx *ctx, const ck_conv_weights *w) {
  const ck_conv_desc *d = &ctx->pb.d;
  size_t nf = (size_t)d->out_channels * ctx->pb.cin_g * d->kernel_height * d->kernel_width;
  reference_state *s = calloc(1, sizeof *s);
  if (s == NULL) return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the reference plan");
  ctx->state = s;
  s->filter = malloc(nf * sizeof(float));
  s->bias = malloc((size_t)d->out_channels * sizeof(float));
  if (s->filter == NULL || s->bias == NULL)
    return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the reference filter (%zu floats)",
                   nf);
  memcpy(s->filter, w->filter_oihw, nf * sizeof(float));
  memcpy(s->bias, w->bias, (size_t)d->out_channels * sizeof(float));
  ctx->workspace_size = 0;
  return CK_OK;
}

/* Offset of element (n, c, h, w) of a tensor with C channels and H x W pixels. */
static size_t tensor_index(ck_layout layout, int n, int c, int h, int w, int C, int H, int W) {
  if (layout == CK_LAYOUT_NCHW) return (((size_t)n * C + c) * H + h) * W + w;
  return (((size_t)n * H + h) * W + w) * C + c;
}

static float activate(double v, float lo, float hi) {
  float f = (float)v;
  /* fmaxf/fminf would turn NaN into a bound; IEEE propagation wants NaN kept. */
  if (f < lo) f = lo;
  if (f > hi) f = hi;
  return f;
}

static void reference_execute(const ck_conv_ctx *ctx, const float *input, float *output,
                              void *workspace) {
  (void)workspace;
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const reference_state *s = ctx->state;
  const int N = d->batch, C = d->in_channels, H = d->in_height, W = d->in_width;
  const int M = d->out_channels, OH = pb->out_h, OW = pb->out_w;
  const int KH = d->kernel_height, KW = d->kernel_width, CG = pb->cin_g, MG = pb->cout_g;
  const long jobs = (long)N * M;

#pragma omp parallel for num_threads(ctx->threads) schedule(static) if (ctx->threads > 1)
  for (long job = 0; job < jobs; job++) {
    const int n = (int)(job / M), m = (int)(job % M);
    const int g = m / MG;
    for (int oh = 0; oh < OH; oh++) {
      for (int ow = 0; ow < OW; ow++) {
        double acc = s->bias[m];
        for (int cg = 0; cg < CG; cg++) {
          const int c = g * CG + cg;
          for (int kh = 0; kh < KH; kh++) {
            const long ih =
                (long)oh * d->stride_height - d->pad_top + (long)kh * d->dilation_height;
            if (ih < 0 || ih >= H) continue;
            for (int kw = 0; kw < KW; kw++) {
              const long iw =
                  (long)ow * d->stride_width - d->pad_left + (long)kw * d->dilation_width;
              if (iw < 0 || iw >= W) continue;
              const float x = input[tensor_index(d->layout, n, c, (int)ih, (int)iw, C, H, W)];
              const float f = s->filter[(((size_t)m * CG + cg) * KH + kh) * KW + kw];
              acc += (double)x * (double)f;
            }
          }
        }
        output[tensor_index(d->layout, n, m, oh, ow, M, OH, OW)] = activate(acc, pb->min, pb->max);
      }
    }
  }
}

static void reference_destroy(ck_conv_ctx *ctx) {
  reference_state *s = ctx->state;
  if (s == NULL) return;
  free(s->filter);
  free(s->bias);
  free(s);
  ctx->state = NULL;
}

const ck_algo_impl ck_algo_reference = {
    .id = CK_ALGO_REFERENCE,
    .setup = reference_setup,
    .execute = reference_execute,
    .destroy = reference_destroy,
};
