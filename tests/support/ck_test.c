#include "ck_test.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t ckt_next(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

int ckt_range(uint64_t *s, int lo, int hi) {
  return lo + (int)(ckt_next(s) % (uint64_t)(hi - lo + 1));
}

void ckt_fill(float *x, size_t n, uint64_t *s) {
  for (size_t i = 0; i < n; i++) x[i] = (float)((ckt_next(s) >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static int span(int k, int dil) {
  return dil * (k - 1) + 1;
}

void ckt_random_desc(int i, ck_conv_desc *d) {
  uint64_t s = 0x1234567ull + (uint64_t)i * 0x9e3779b97f4a7c15ull;
  ckt_next(&s);
  ck_conv_desc_init(d);
  int kind = i % 12;
  /* Kernel shape: square 1..11, 1xK or Kx1. */
  int k = ckt_range(&s, 1, i % 5 == 0 ? 11 : 5);
  d->kernel_height = d->kernel_width = k;
  if (kind == 3) d->kernel_height = 1;
  if (kind == 4) d->kernel_width = 1;
  d->stride_height = ckt_range(&s, 1, 4);
  d->stride_width = kind == 5 ? ckt_range(&s, 1, 4) : d->stride_height;
  if (i % 7 < 4) d->stride_height = d->stride_width = 1;
  d->dilation_height = ckt_range(&s, 1, 3);
  d->dilation_width = kind == 6 ? ckt_range(&s, 1, 3) : d->dilation_height;
  if (i % 5 < 3) d->dilation_height = d->dilation_width = 1;
  /* Padding: usually small and asymmetric, sometimes larger than the kernel. */
  int pmax = kind == 7 ? k + 3 : (k > 1 ? k / 2 + 1 : 1);
  d->pad_top = ckt_range(&s, 0, pmax);
  d->pad_bottom = ckt_range(&s, 0, pmax);
  d->pad_left = ckt_range(&s, 0, pmax);
  d->pad_right = ckt_range(&s, 0, pmax);
  if (i % 4 == 0) d->pad_top = d->pad_bottom = d->pad_left = d->pad_right = 0;
  /* Groups: plain, depthwise (with a channel multiplier sometimes), or grouped. */
  int g = 1, cg = ckt_range(&s, 1, 24), mg = ckt_range(&s, 1, 40);
  if (kind == 8 || kind == 9) { /* depthwise */
    g = ckt_range(&s, 1, 40);
    cg = 1;
    mg = kind == 9 ? ckt_range(&s, 1, 3) : 1;
  } else if (kind == 10) {
    g = ckt_range(&s, 2, 4);
    cg = ckt_range(&s, 1, 9);
    mg = ckt_range(&s, 1, 9);
  }
  if (i % 23 == 1) cg = 1, g = 1;              /* C = 1 */
  if (i % 29 == 2) mg = 1, g = 1;              /* M = 1 */
  if (i % 31 == 3) cg = ckt_range(&s, 33, 70); /* several KC-ish channel blocks */
  d->groups = g;
  d->in_channels = g * cg;
  d->out_channels = g * mg;
  d->batch = ckt_range(&s, 1, 3);
  /* Spatial: odd sizes, at least one output; a 1x1 output now and then. */
  int sh = span(d->kernel_height, d->dilation_height),
      sw = span(d->kernel_width, d->dilation_width);
  int h = ckt_range(&s, 1, 19), w = ckt_range(&s, 1, 19);
  if (h + d->pad_top + d->pad_bottom < sh) h = sh - d->pad_top - d->pad_bottom;
  if (w + d->pad_left + d->pad_right < sw) w = sw - d->pad_left - d->pad_right;
  if (h < 1) h = 1;
  if (w < 1) w = 1;
  if (kind == 11) { /* exactly one output pixel */
    d->pad_top = d->pad_bottom = d->pad_left = d->pad_right = 0;
    h = sh;
    w = sw;
  }
  d->in_height = h;
  d->in_width = w;
  /* Keep the reference affordable: shrink the batch and channels of the biggest cases. */
  long long work = (long long)d->batch * d->out_channels * cg * d->kernel_height * d->kernel_width *
                   h * w / ((long long)d->stride_height * d->stride_width);
  if (work > 3000000 && d->batch > 1) d->batch = 1;
  d->layout = (i / 2) % 2 ? CK_LAYOUT_NHWC : CK_LAYOUT_NCHW;
  d->filter_layout = (i / 3) % 2 ? CK_FILTER_OHWI : CK_FILTER_OIHW;
  int act = (i / 5) % 3;
  d->activation = (ck_activation)act;
  if (act == CK_ACTIVATION_CLAMP) {
    d->clamp_min = -0.5f;
    d->clamp_max = 0.75f;
  }
}

void ckt_describe(const ck_conv_desc *d, char *buf, size_t n) {
  snprintf(buf, n,
           "N%d C%d %dx%d -> M%d k%dx%d s%dx%d pad(t%d b%d l%d r%d) dil%dx%d g%d %s %s act%d",
           d->batch, d->in_channels, d->in_height, d->in_width, d->out_channels, d->kernel_height,
           d->kernel_width, d->stride_height, d->stride_width, d->pad_top, d->pad_bottom,
           d->pad_left, d->pad_right, d->dilation_height, d->dilation_width, d->groups,
           d->layout == CK_LAYOUT_NCHW ? "NCHW" : "NHWC",
           d->filter_layout == CK_FILTER_OIHW ? "OIHW" : "OHWI", (int)d->activation);
}

#define GUARD 64
#define GUARD_VALUE 12345.678f

static void fill_guard(float *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = GUARD_VALUE;
}
static int guard_intact(const float *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&p[i], &(float){GUARD_VALUE}, sizeof(float)) != 0) return 0;
  return 1;
}

/* The reference output and its error scale for the last descriptor checked: a test loops over
 * algorithms and ISAs for one descriptor, and the reference is the expensive part. */
static struct {
  ck_conv_desc d;
  size_t nin, nout, nf;
  float *in, *f, *bias, *ref, *scale;
} cache;

static int fill_cache(const ck_conv_desc *d, char *msg, size_t msg_len) {
  if (cache.ref != NULL && memcmp(&cache.d, d, sizeof *d) == 0) return 0;
  free(cache.in), free(cache.f), free(cache.bias), free(cache.ref), free(cache.scale);
  memset(&cache, 0, sizeof cache);
  int oh, ow;
  if (ck_conv_output_size(d, &oh, &ow) != CK_OK) {
    snprintf(msg, msg_len, "invalid descriptor: %s", ck_last_error());
    return 1;
  }
  size_t cg = (size_t)(d->in_channels / d->groups), M = (size_t)d->out_channels;
  size_t nin = (size_t)d->batch * d->in_channels * d->in_height * d->in_width;
  size_t nout = (size_t)d->batch * M * oh * ow;
  size_t nf = M * cg * d->kernel_height * d->kernel_width;
  uint64_t s = 42 + nin * 31 + nf;
  float *in_abs = malloc(nin * sizeof(float)), *f_abs = malloc(nf * sizeof(float));
  float *bias_abs = malloc(M * sizeof(float));
  cache.in = malloc(nin * sizeof(float));
  cache.f = malloc(nf * sizeof(float));
  cache.bias = malloc(M * sizeof(float));
  cache.ref = malloc(nout * sizeof(float));
  cache.scale = malloc(nout * sizeof(float));
  ckt_fill(cache.in, nin, &s);
  ckt_fill(cache.f, nf, &s);
  ckt_fill(cache.bias, M, &s);
  for (size_t i = 0; i < nin; i++) in_abs[i] = fabsf(cache.in[i]);
  for (size_t i = 0; i < nf; i++) f_abs[i] = fabsf(cache.f[i]);
  for (size_t i = 0; i < M; i++) bias_abs[i] = fabsf(cache.bias[i]);
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = CK_ALGO_REFERENCE;
  o.isa = CK_ISA_GENERIC;
  ck_conv_desc dabs = *d;
  dabs.activation = CK_ACTIVATION_NONE;
  ck_plan *rp = NULL, *sp = NULL;
  int rc = 0;
  if (ck_conv_plan_create(d, cache.f, cache.bias, &o, &rp) != CK_OK ||
      ck_conv_execute(rp, cache.in, cache.ref, NULL) != CK_OK ||
      ck_conv_plan_create(&dabs, f_abs, bias_abs, &o, &sp) != CK_OK ||
      ck_conv_execute(sp, in_abs, cache.scale, NULL) != CK_OK) {
    snprintf(msg, msg_len, "reference failed: %s", ck_last_error());
    free(cache.ref);
    cache.ref = NULL;
    rc = 1;
  }
  ck_plan_destroy(rp);
  ck_plan_destroy(sp);
  free(in_abs), free(f_abs), free(bias_abs);
  cache.d = *d;
  cache.nin = nin, cache.nout = nout, cache.nf = nf;
  return rc;
}

int ckt_check_conv(const ck_conv_desc *d, ck_algo algo, ck_isa isa, int threads, char *msg,
                   size_t msg_len) {
  char what[256], why[512];
  ckt_describe(d, what, sizeof what);
  if (fill_cache(d, why, sizeof why) != 0) {
    snprintf(msg, msg_len, "%s: %s", what, why);
    return 1;
  }
  const size_t nout = cache.nout;
  const char *an = ck_algo_name(algo), *in = ck_isa_name(isa);
  int rc = 1;
  ck_plan *p = NULL;
  void *ws = NULL;
  float *out = malloc((nout + 2 * GUARD) * sizeof(float)), *out2 = malloc(nout * sizeof(float));
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = algo;
  o.isa = isa;
  o.threads = threads;
  ck_status st = ck_conv_plan_create(d, cache.f, cache.bias, &o, &p);
  if (st != CK_OK) {
    snprintf(msg, msg_len, "%s/%s plan failed on %s: %s: %s", an, in, what, ck_status_string(st),
             ck_last_error());
    goto done;
  }
  size_t wsz = ck_plan_workspace_size(p);
  size_t wfloats = (wsz + sizeof(float) - 1) / sizeof(float);
  float *wsf = ws = malloc((wfloats + 2 * GUARD) * sizeof(float));
  fill_guard(out, nout + 2 * GUARD);
  fill_guard(wsf, wfloats + 2 * GUARD);
  /* A float-aligned but (usually) not 64-byte-aligned workspace: algorithms must align it. */
  if (ck_conv_execute(p, cache.in, out + GUARD, wsf + GUARD) != CK_OK) {
    snprintf(msg, msg_len, "%s/%s execute failed on %s: %s", an, in, what, ck_last_error());
    goto done;
  }
  if (!guard_intact(out, GUARD) || !guard_intact(out + GUARD + nout, GUARD)) {
    snprintf(msg, msg_len, "%s/%s wrote outside the output on %s", an, in, what);
    goto done;
  }
  if (!guard_intact(wsf, GUARD) || !guard_intact(wsf + GUARD + wfloats, GUARD)) {
    snprintf(msg, msg_len, "%s/%s wrote outside its workspace (%zu bytes) on %s", an, in, wsz,
             what);
    goto done;
  }
  double k = (double)(d->in_channels / d->groups) * d->kernel_height * d->kernel_width;
  for (size_t i = 0; i < nout; i++) {
    double tol = (k + 2) * FLT_EPSILON * cache.scale[i] + FLT_MIN;
    double err = fabs((double)out[GUARD + i] - (double)cache.ref[i]);
    if (!(err <= tol)) {
      snprintf(msg, msg_len, "%s/%s on %s: output %zu is %.9g, reference %.9g (tolerance %.3g)", an,
               in, what, i, out[GUARD + i], cache.ref[i], tol);
      goto done;
    }
  }
  if (ck_conv_execute(p, cache.in, out2, NULL) != CK_OK ||
      memcmp(out2, out + GUARD, nout * sizeof(float)) != 0) {
    snprintf(msg, msg_len,
             "%s/%s on %s: the plan's own workspace gives other bits than a caller workspace", an,
             in, what);
    goto done;
  }
  rc = 0;
done:
  ck_plan_destroy(p);
  free(ws);
  free(out), free(out2);
  return rc;
}

int ckt_available_isas(ck_isa *out, int max) {
  static const ck_isa all[] = {CK_ISA_GENERIC, CK_ISA_AVX2, CK_ISA_AVX512, CK_ISA_NEON};
  int n = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0] && n < max; i++)
    if (ck_isa_available(all[i])) out[n++] = all[i];
  return n;
}
