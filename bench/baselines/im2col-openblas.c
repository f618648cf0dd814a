/* Baseline: im2col + OpenBLAS sgemm, the way Caffe's ConvolutionLayer runs on a CPU (NCHW).
 * Per image: a single-threaded im2col of all channels into a [C*kh*kw] x [out_h*out_w] column
 * buffer (skipped for 1x1 / stride 1 / no padding, as Caffe's is_1x1_), one sgemm per group,
 * then the bias as a rank-1 sgemm with a row of ones (Caffe's forward_cpu_bias). Only the GEMMs
 * use threads (openblas_set_num_threads). OpenBLAS is opened with dlopen (RTLD_LOCAL) so that its
 * BLAS symbols do not capture other BLAS libraries' internal calls (see bench/CMakeLists.txt). */
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"

static __typeof__(cblas_sgemm) *sgemm;
static __typeof__(openblas_set_num_threads) *set_threads;
static const char *load_error;

static void load(void) {
  void *h = dlopen(CKB_CONV_OPENBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    load_error = dlerror();
    return;
  }
  *(void **)&sgemm = dlsym(h, "cblas_sgemm");
  *(void **)&set_threads = dlsym(h, "openblas_set_num_threads");
  if (sgemm == NULL || set_threads == NULL)
    load_error = "cblas_sgemm or openblas_set_num_threads missing";
}

typedef struct {
  ck_conv_desc d;
  int oh, ow, threads, is_1x1;
  float *filter, *bias, *ones, *col;
  size_t col_floats;
} im2col_openblas;

/* Caffe's im2col_cpu, with separate top/left pads and dilation. */
static void im2col(const float *im, int C, int H, int W, const ck_conv_desc *d, int oh, int ow,
                   float *col) {
  for (int c = 0; c < C; c++)
    for (int kh = 0; kh < d->kernel_height; kh++)
      for (int kw = 0; kw < d->kernel_width; kw++) {
        int ih = -d->pad_top + kh * d->dilation_height;
        for (int y = 0; y < oh; y++, ih += d->stride_height) {
          if (ih < 0 || ih >= H) {
            memset(col, 0, (size_t)ow * sizeof(float));
            col += ow;
            continue;
          }
          const float *row = im + ((size_t)c * H + ih) * W;
          int iw = -d->pad_left + kw * d->dilation_width;
          for (int x = 0; x < ow; x++, iw += d->stride_width)
            *col++ = (iw >= 0 && iw < W) ? row[iw] : 0.0f;
        }
      }
}

static void *create(const ck_conv_desc *d, const float *filter_oihw, const float *bias, int threads,
                    char *err, size_t err_len) {
  if (d->layout != CK_LAYOUT_NCHW) {
    snprintf(err, err_len, "im2col + OpenBLAS runs NCHW only");
    return NULL;
  }
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, load);
  if (load_error != NULL) {
    snprintf(err, err_len, "cannot open %s: %s", CKB_CONV_OPENBLAS_PATH, load_error);
    return NULL;
  }
  im2col_openblas *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->d = *d;
  s->threads = threads;
  ck_conv_output_size(d, &s->oh, &s->ow);
  const size_t P = (size_t)s->oh * s->ow;
  const size_t K = (size_t)d->in_channels * d->kernel_height * d->kernel_width;
  const size_t nf = (size_t)d->out_channels * (K / (size_t)d->groups);
  s->is_1x1 = d->kernel_height == 1 && d->kernel_width == 1 && d->stride_height == 1 &&
              d->stride_width == 1 && d->pad_top == 0 && d->pad_bottom == 0 && d->pad_left == 0 &&
              d->pad_right == 0;
  s->col_floats = s->is_1x1 ? 0 : K * P;
  s->filter = malloc(nf * sizeof(float));
  s->bias = malloc((size_t)d->out_channels * sizeof(float));
  s->ones = malloc(P * sizeof(float));
  s->col = malloc((s->col_floats ? s->col_floats : 1) * sizeof(float));
  if (!s->filter || !s->bias || !s->ones || !s->col) {
    snprintf(err, err_len, "out of memory (column buffer of %zu floats)", s->col_floats);
    free(s->filter), free(s->bias), free(s->ones), free(s->col), free(s);
    return NULL;
  }
  memcpy(s->filter, filter_oihw, nf * sizeof(float));
  memcpy(s->bias, bias, (size_t)d->out_channels * sizeof(float));
  for (size_t i = 0; i < P; i++) s->ones[i] = 1.0f;
  return s;
}

static void run(void *inst, const float *input, float *output) {
  im2col_openblas *s = inst;
  const ck_conv_desc *d = &s->d;
  const int C = d->in_channels, H = d->in_height, W = d->in_width, M = d->out_channels;
  const int G = d->groups, MG = M / G;
  const int P = s->oh * s->ow, KG = C / G * d->kernel_height * d->kernel_width;
  set_threads(s->threads);
  for (int n = 0; n < d->batch; n++) {
    const float *im = input + (size_t)n * C * H * W;
    float *out = output + (size_t)n * M * P;
    const float *col = im;
    if (!s->is_1x1) {
      im2col(im, C, H, W, d, s->oh, s->ow, s->col);
      col = s->col;
    }
    for (int g = 0; g < G; g++)
      sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, MG, P, KG, 1.0f,
            s->filter + (size_t)g * MG * KG, KG, col + (size_t)g * KG * P, P, 0.0f,
            out + (size_t)g * MG * P, P);
    sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, P, 1, 1.0f, s->bias, 1, s->ones, P, 1.0f,
          out, P);
  }
}

static size_t workspace(const void *inst) {
  const im2col_openblas *s = inst;
  return s->col_floats * sizeof(float);
}

static void destroy(void *inst) {
  im2col_openblas *s = inst;
  if (!s) return;
  free(s->filter), free(s->bias), free(s->ones), free(s->col), free(s);
}

const ckb_baseline ckb_baseline_im2col_openblas = {
    .name = "im2col-openblas",
    .what = "im2col + OpenBLAS sgemm, Caffe style (NCHW, single-threaded im2col)",
    .native = CK_LAYOUT_NCHW,
    .has_nchw = 1,
    .has_nhwc = 0,
    .create = create,
    .run = run,
    .workspace = workspace,
    .destroy = destroy,
};
