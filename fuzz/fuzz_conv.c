/*
 * libFuzzer target: builds a convolution descriptor and plan options from the input bytes, then
 *  - validates it (ck_conv_output_size) and creates a plan; properties checked:
 *      an invalid descriptor fails plan creation with the same status, *plan NULL, and a
 *      sentence; a valid one with valid options is planned unless the request cannot be met
 *      here (algorithm not built, ISA not on this CPU, workspace limit, a flag not built), and
 *      the plan runs the algorithm and ISA asked for;
 *  - for small valid descriptors executes it (both workspaces, exact-size caller buffer) and
 *    checks the result against the reference with guard zones (ckt_check_conv).
 * Any violated property aborts, which libFuzzer reports with the input that caused it. Built by
 * -DCONVKIT_BUILD_FUZZ=ON with clang (fuzz/CMakeLists.txt); run by tools/ci-integration.sh.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "conv/conv.h"

/* What a violated property does: abort for libFuzzer; tests/test_fuzz_regressions.c, which
 * replays inputs through this file, makes it a test failure instead. */
#ifndef CK_FUZZ_FAIL
#define CK_FUZZ_FAIL() abort()
#endif

/* Bytes as numbers; zeros once they run out. */
typedef struct {
  const uint8_t *p;
  size_t n;
} reader;

static uint32_t take(reader *r, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; i++) {
    v = v << 8;
    if (r->n > 0) {
      v |= *r->p++;
      r->n--;
    }
  }
  return v;
}

static int in_range(reader *r, int lo, int hi) {
  return lo + (int)(take(r, 1) % (uint32_t)(hi - lo + 1));
}

/* Usually in [lo, hi]; one time in 16 up to lo + 511 (channel counts past a cache block, wide
 * images, big kernels, strides and pads); in wild inputs also any int (negative, zero, huge). */
static int field(reader *r, int lo, int hi, int wild) {
  uint32_t sel = take(r, 1);
  if (wild && sel % 16 == 0) return (int)take(r, 4);
  if (wild && sel % 16 == 1) return (int)(take(r, 1) << (take(r, 1) % 31)); /* big powers */
  if (sel % 16 == 2 && hi - lo > 2) return lo + (int)(take(r, 2) % 512);
  return lo + (int)((sel >> 4 | take(r, 1) << 4) % (uint32_t)(hi - lo + 1));
}

static float any_float(reader *r) {
  uint32_t bits = take(r, 4);
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static void fail(const char *what, const ck_conv_desc *d, const ck_plan_options *o) {
  char desc[256];
  ckt_describe(d, desc, sizeof desc);
  fprintf(stderr,
          "fuzz_conv: %s\n  descriptor: %s\n  options: algo %d isa %d threads %d "
          "workspace_limit %zu flags 0x%x\n  last error: %s\n",
          what, desc, (int)o->algo, (int)o->isa, o->threads, o->workspace_limit, o->flags,
          ck_last_error());
  CK_FUZZ_FAIL();
}

#define LIMIT_ELEMENTS ((size_t)1 << 20) /* any tensor, lowered matrix or buffer, in floats */
#define LIMIT_FILTER ((size_t)1 << 16)
#define LIMIT_MACS ((double)(1 << 17)) /* executed and compared with the reference */

static int mul_ok(size_t *acc, long long v) {
  if (v < 0) return 0;
  return ck_mul_size(*acc, (size_t)v, acc) && *acc <= LIMIT_ELEMENTS;
}

/* Whether every buffer any algorithm may allocate for d stays small enough for the fuzzer. */
static int bounded(const ck_conv_desc *d, int oh, int ow) {
  const long long cg = d->in_channels / d->groups,
                  taps = (long long)d->kernel_height * d->kernel_width;
  size_t in = 1, out = 1, f = 1, lowered = 1, shifted = 1, mec = 1;
  return mul_ok(&in, d->batch) && mul_ok(&in, d->in_channels) && mul_ok(&in, d->in_height) &&
         mul_ok(&in, d->in_width) && mul_ok(&out, d->batch) && mul_ok(&out, d->out_channels) &&
         mul_ok(&out, oh) && mul_ok(&out, ow) && mul_ok(&f, d->out_channels) && mul_ok(&f, cg) &&
         mul_ok(&f, taps) && f <= LIMIT_FILTER &&
         /* im2col: K x P; kn2row: kh*kw*M x H*W; MEC: o_w x padded i_h*k_w*C; indirect: taps
          * x P pointers. Padded extents count: padding may be far larger than the input. */
         mul_ok(&lowered, cg * taps) && mul_ok(&lowered, (long long)oh * ow) &&
         mul_ok(&lowered, d->batch) && mul_ok(&shifted, taps * d->out_channels) &&
         mul_ok(&shifted, (long long)d->in_height + d->pad_top + d->pad_bottom) &&
         mul_ok(&shifted, (long long)d->in_width + d->pad_left + d->pad_right) &&
         mul_ok(&mec, ow) && mul_ok(&mec, (long long)d->in_height + d->pad_top + d->pad_bottom) &&
         mul_ok(&mec, (long long)d->kernel_width * d->in_channels) && mul_ok(&mec, d->batch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader r = {data, size};
  const int wild = take(&r, 1) % 4 == 0; /* a quarter of inputs probe validation with any int */
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  const int groups = in_range(&r, 0, 3) == 0 ? field(&r, 1, 8, wild) : 1;
  d.groups = groups;
  /* Channels as a multiple of groups (wrapped to int: huge products probe validation too). */
  d.in_channels = (int)(uint32_t)((int64_t)groups * field(&r, 1, 12, wild));
  d.out_channels = (int)(uint32_t)((int64_t)groups * field(&r, 1, 12, wild));
  d.batch = field(&r, 1, 3, wild);
  d.in_height = field(&r, 1, 20, wild);
  d.in_width = field(&r, 1, 20, wild);
  d.kernel_height = field(&r, 1, 7, wild);
  d.kernel_width = field(&r, 1, 7, wild);
  d.stride_height = field(&r, 1, 4, wild);
  d.stride_width = field(&r, 1, 4, wild);
  d.dilation_height = field(&r, 1, 3, wild);
  d.dilation_width = field(&r, 1, 3, wild);
  d.pad_top = field(&r, 0, 8, wild);
  d.pad_bottom = field(&r, 0, 8, wild);
  d.pad_left = field(&r, 0, 8, wild);
  d.pad_right = field(&r, 0, 8, wild);
  d.layout = (ck_layout)field(&r, 0, 1, wild);
  d.filter_layout = (ck_filter_layout)field(&r, 0, 1, wild);
  d.activation = (ck_activation)field(&r, 0, 2, wild);
  if (take(&r, 1) % 2) {
    d.clamp_min = any_float(&r);
    d.clamp_max = any_float(&r);
  } else {
    d.clamp_min = -0.5f;
    d.clamp_max = 0.75f;
  }

  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = (ck_algo)field(&r, CK_ALGO_AUTO, CK_ALGO_INDIRECT, wild);
  o.isa = (ck_isa)field(&r, CK_ISA_AUTO, CK_ISA_NEON, wild);
  /* Any int probes validation, but no valid team above 4 threads: hundreds of threads per input
   * only slow the fuzzer down (and leave the OpenMP runtime's per-thread memory behind). */
  o.threads = wild ? field(&r, 0, 3, 1) : in_range(&r, 0, 3);
  if (o.threads > 4 && o.threads <= 1024) o.threads = 4;
  o.workspace_limit = take(&r, 1) % 4 == 0 ? (size_t)take(&r, 3) : 0;
  o.flags = take(&r, 1) % 4 == 0 ? (unsigned)field(&r, 0, 3, 1) : 0;

  /* Name parsing takes any string. */
  char name[16] = {0};
  for (int i = 0; i < 15; i++) name[i] = (char)take(&r, 1);
  ck_algo a_named;
  ck_isa i_named;
  (void)ck_algo_from_name(name, &a_named);
  (void)ck_isa_from_name(name, &i_named);

  int oh = -1, ow = -1;
  const ck_status valid = ck_conv_output_size(&d, &oh, &ow);
  if (valid != CK_OK && ck_last_error()[0] == '\0') fail("invalid without a sentence", &d, &o);

  static float filter_small[64], bias_small[64];
  ck_plan *p = (ck_plan *)&r; /* must become NULL on failure */
  if (valid != CK_OK) {
    /* Validation fails before the filter is read: a tiny buffer is enough. */
    ck_status s = ck_conv_plan_create(&d, filter_small, bias_small, &o, &p);
    if (s != valid) fail("plan creation and validation disagree on an invalid descriptor", &d, &o);
    if (p != NULL) fail("failed plan creation left *plan set", &d, &o);
    return 0;
  }
  if (oh < 1 || ow < 1) fail("valid descriptor with an empty output", &d, &o);
  if (!bounded(&d, oh, ow)) return 0;

  const size_t nf = (size_t)d.out_channels * (size_t)(d.in_channels / d.groups) *
                    (size_t)d.kernel_height * (size_t)d.kernel_width;
  float *filter = malloc(nf * sizeof(float)), *bias = malloc((size_t)d.out_channels * 4);
  uint64_t s = 1 + size;
  ckt_fill(filter, nf, &s);
  ckt_fill(bias, (size_t)d.out_channels, &s);
  const ck_status st = ck_conv_plan_create(&d, filter, take(&r, 1) % 2 ? bias : NULL, &o, &p);
  free(filter);
  free(bias);

  const int options_valid = o.algo >= CK_ALGO_AUTO && o.algo <= CK_ALGO_INDIRECT &&
                            o.isa >= CK_ISA_AUTO && o.isa <= CK_ISA_NEON && o.threads >= 0 &&
                            o.threads <= 1024 && (o.flags & ~3u) == 0;
  if (st != CK_OK) {
    if (p != NULL) fail("failed plan creation left *plan set", &d, &o);
    if (ck_last_error()[0] == '\0') fail("plan creation failed without a sentence", &d, &o);
    if (!options_valid) return 0;
    const int excused =
        (st == CK_ERROR_UNSUPPORTED &&
         ((o.algo != CK_ALGO_AUTO && ck_algo_lookup(o.algo) == NULL) ||
          (o.isa != CK_ISA_AUTO && !ck_isa_available(o.isa)) ||
          strstr(ck_last_error(), "CK_PLAN_") != NULL || strstr(ck_last_error(), "CONVKIT_ISA"))) ||
        (st == CK_ERROR_WORKSPACE_LIMIT && o.workspace_limit != 0) ||
        (st == CK_ERROR_INVALID_ARGUMENT && strstr(ck_last_error(), "CONVKIT_ISA")) ||
        st == CK_ERROR_OUT_OF_MEMORY;
    if (!excused) fail("a valid request was refused", &d, &o);
    return 0;
  }
  if (!options_valid) fail("invalid options were accepted", &d, &o);
  if (o.algo != CK_ALGO_AUTO && ck_plan_algo(p) != o.algo) fail("plan runs another algo", &d, &o);
  if (o.isa != CK_ISA_AUTO && ck_plan_isa(p) != o.isa) fail("plan runs another ISA", &d, &o);
  const size_t ws = ck_plan_workspace_size(p);
  if (o.workspace_limit != 0 && ws > o.workspace_limit) fail("workspace over the limit", &d, &o);

  const double macs = (double)d.batch * d.out_channels * oh * ow * (d.in_channels / d.groups) *
                      d.kernel_height * d.kernel_width;
  if (macs <= LIMIT_MACS) {
    /* This plan (its flags, its workspace limit) with an exact-size caller workspace, then the
     * full check of the same algorithm, ISA and threads against the reference. */
    const size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
    const size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
    float *in = malloc(nin * sizeof(float)), *out = malloc(nout * sizeof(float));
    void *w = ws ? malloc(ws) : NULL;
    ckt_fill(in, nin, &s);
    if (ck_conv_execute(p, in, out, w) != CK_OK) fail("execute failed", &d, &o);
    if (ck_conv_execute(p, in, out, NULL) != CK_OK) fail("execute (own workspace) failed", &d, &o);
    free(w);
    free(in);
    free(out);
    char msg[1024];
    if (ckt_check_conv(&d, ck_plan_algo(p), ck_plan_isa(p), o.threads, msg, sizeof msg) != 0) {
      fprintf(stderr, "fuzz_conv: %s\n", msg);
      fail("result differs from the reference", &d, &o);
    }
  }
  ck_plan_destroy(p);
  return 0;
}
