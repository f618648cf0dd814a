/* NaN and Inf in the input, the filter or the bias propagate as IEEE arithmetic says, in every
 * built algorithm on every ISA this machine runs: an output whose sum meets a NaN, Inf * 0 or
 * +Inf + -Inf is NaN, one that meets infinities of one sign is that infinity (then clamped by the
 * activation, which keeps NaN), and every other output is the finite value of the reference. No
 * NaN may leak into outputs outside the receptive field of the special value (a computation
 * that adds then subtracts a border contribution would), and nothing hangs or crashes.
 *
 * Padding has two IEEE readings that differ only when a weight is NaN or Inf: taps that fall in
 * the padding are absent from the sum (the reference algorithm), or they are zeros multiplied by
 * the weight, 0 * Inf = NaN (algorithms that lower the input into a zero-filled matrix or point
 * padding taps at a zero row). Both are accepted, output by output: the second oracle is the
 * reference run on the input explicitly padded with zeros and a descriptor without padding. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "conv/conv.h"

typedef struct {
  ck_conv_desc d;
  size_t nin, nf, nout, m;
  double k; /* products per output */
  float *in, *f, *bias;
} problem;

static void problem_init(problem *p, const ck_conv_desc *d) {
  int oh, ow;
  cr_assert_eq(ck_conv_output_size(d, &oh, &ow), CK_OK, "%s", ck_last_error());
  p->d = *d;
  p->m = (size_t)d->out_channels;
  p->nin = (size_t)d->batch * d->in_channels * d->in_height * d->in_width;
  p->nf = p->m * (d->in_channels / d->groups) * d->kernel_height * d->kernel_width;
  p->nout = (size_t)d->batch * p->m * oh * ow;
  p->k = (double)(d->in_channels / d->groups) * d->kernel_height * d->kernel_width;
  p->in = malloc(p->nin * sizeof(float));
  p->f = malloc(p->nf * sizeof(float));
  p->bias = malloc(p->m * sizeof(float));
}

static void problem_free(problem *p) {
  free(p->in), free(p->f), free(p->bias);
}

/* The special values of one case, planted into finite random data. */
typedef enum {
  INPUT_NAN,
  INPUT_INFS,
  FILTER_NAN,
  FILTER_INFS,
  BIAS_SPECIALS,
  INF_TIMES_ZERO,
  SPRINKLED,
  N_CASES
} special_case;
static const char *const case_names[N_CASES] = {"a NaN input",
                                                "+Inf and -Inf inputs",
                                                "a NaN weight",
                                                "+Inf and -Inf weights",
                                                "NaN, +Inf, -Inf biases",
                                                "Inf inputs against zero weights",
                                                "5% of inputs NaN/+Inf/-Inf"};

static size_t pick(uint64_t *s, size_t n) {
  return (size_t)(ckt_next(s) % n);
}

static void plant(problem *p, special_case c, uint64_t seed) {
  uint64_t s = seed;
  ckt_fill(p->in, p->nin, &s);
  ckt_fill(p->f, p->nf, &s);
  ckt_fill(p->bias, p->m, &s);
  switch (c) {
  case INPUT_NAN:
    p->in[pick(&s, p->nin)] = NAN;
    break;
  case INPUT_INFS:
    p->in[pick(&s, p->nin)] = INFINITY;
    p->in[pick(&s, p->nin)] = -INFINITY;
    break;
  case FILTER_NAN:
    p->f[pick(&s, p->nf)] = NAN;
    break;
  case FILTER_INFS:
    p->f[pick(&s, p->nf)] = INFINITY;
    p->f[pick(&s, p->nf)] = -INFINITY;
    break;
  case BIAS_SPECIALS:
    p->bias[pick(&s, p->m)] = NAN;
    p->bias[pick(&s, p->m)] = INFINITY;
    p->bias[pick(&s, p->m)] = -INFINITY;
    break;
  case INF_TIMES_ZERO: {
    /* The first output channel's filter is all zeros: Inf * 0 = NaN there, Inf elsewhere. */
    size_t per = p->nf / p->m;
    memset(p->f, 0, per * sizeof(float));
    for (int i = 0; i < 3; i++) p->in[pick(&s, p->nin)] = i == 1 ? -INFINITY : INFINITY;
    break;
  }
  case SPRINKLED:
    for (size_t i = 0; i < p->nin; i++)
      if (pick(&s, 20) == 0) p->in[i] = (const float[]){NAN, INFINITY, -INFINITY}[pick(&s, 3)];
    break;
  default:
    break;
  }
}

static ck_status run(const float *in, const float *f, const float *bias, const ck_conv_desc *d,
                     ck_algo algo, ck_isa isa, int threads, int own_ws, float *out) {
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = algo;
  o.isa = isa;
  o.threads = threads;
  ck_plan *plan = NULL;
  ck_status st = ck_conv_plan_create(d, f, bias, &o, &plan);
  if (st != CK_OK) return st;
  void *ws = own_ws ? NULL : malloc(ck_plan_workspace_size(plan) + 1);
  st = ck_conv_execute(plan, in, out, ws);
  free(ws);
  ck_plan_destroy(plan);
  return st;
}

/* The error scale of each output: the reference on |x| and |w| with the special values set to 0
 * (a finite output has no special value in its sum). */
static void error_scale(const problem *p, float *scale) {
  float *in = malloc(p->nin * sizeof(float)), *f = malloc(p->nf * sizeof(float));
  float *b = malloc(p->m * sizeof(float));
  for (size_t i = 0; i < p->nin; i++) in[i] = isfinite(p->in[i]) ? fabsf(p->in[i]) : 0.0f;
  for (size_t i = 0; i < p->nf; i++) f[i] = isfinite(p->f[i]) ? fabsf(p->f[i]) : 0.0f;
  for (size_t i = 0; i < p->m; i++) b[i] = isfinite(p->bias[i]) ? fabsf(p->bias[i]) : 0.0f;
  ck_conv_desc d = p->d;
  d.activation = CK_ACTIVATION_NONE;
  cr_assert_eq(run(in, f, b, &d, CK_ALGO_REFERENCE, CK_ISA_GENERIC, 1, 1, scale), CK_OK);
  free(in), free(f), free(b);
}

/* The reference with padding read as zeros times the weight: the input padded explicitly, the
 * descriptor without padding. */
static void zero_padded_reference(const problem *p, float *out) {
  const ck_conv_desc *d = &p->d;
  ck_conv_desc dp = *d;
  dp.in_height = d->in_height + d->pad_top + d->pad_bottom;
  dp.in_width = d->in_width + d->pad_left + d->pad_right;
  dp.pad_top = dp.pad_bottom = dp.pad_left = dp.pad_right = 0;
  const size_t C = (size_t)d->in_channels, H = (size_t)d->in_height, W = (size_t)d->in_width;
  const size_t HP = (size_t)dp.in_height, WP = (size_t)dp.in_width;
  float *in = calloc((size_t)d->batch * C * HP * WP, sizeof(float));
  for (size_t n = 0; n < (size_t)d->batch; n++)
    for (size_t c = 0; c < C; c++)
      for (size_t h = 0; h < H; h++)
        for (size_t w = 0; w < W; w++) {
          const size_t hp = h + (size_t)d->pad_top, wp = w + (size_t)d->pad_left;
          const size_t src = d->layout == CK_LAYOUT_NCHW ? ((n * C + c) * H + h) * W + w
                                                         : ((n * H + h) * W + w) * C + c;
          const size_t dst = d->layout == CK_LAYOUT_NCHW ? ((n * C + c) * HP + hp) * WP + wp
                                                         : ((n * HP + hp) * WP + wp) * C + c;
          in[dst] = p->in[src];
        }
  cr_assert_eq(run(in, p->f, p->bias, &dp, CK_ALGO_REFERENCE, CK_ISA_GENERIC, 1, 1, out), CK_OK,
               "%s", ck_last_error());
  free(in);
}

/* Whether got matches one reference output: NaN where it is NaN, the same infinity, otherwise
 * within the float error bound. */
static int matches(float got, float ref, double k, float scale) {
  if (isnan(ref)) return isnan(got);
  if (isinf(ref)) return got == ref;
  double tol = (k + 2) * FLT_EPSILON * scale + FLT_MIN;
  return fabs((double)got - (double)ref) <= tol;
}

/* The first output that matches neither reading of the padding, or -1. */
static long first_mismatch(const problem *p, const float *got, const float *ref,
                           const float *ref_zero_pad, const float *scale) {
  for (size_t i = 0; i < p->nout; i++)
    if (!matches(got[i], ref[i], p->k, scale[i]) &&
        !matches(got[i], ref_zero_pad[i], p->k, scale[i]))
      return (long)i;
  return -1;
}

static const ck_algo all_algos[] = {CK_ALGO_REFERENCE, CK_ALGO_IM2COL, CK_ALGO_KN2ROW,
                                    CK_ALGO_KN2ROW_AA, CK_ALGO_MEC,    CK_ALGO_INDIRECT};

static void check_case(special_case c) {
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  int checked = 0, specials_seen = 0;
  for (int i = 0; i < CKT_RANDOM_CASES; i += 8) {
    ck_conv_desc d;
    ckt_random_desc(i + (int)c, &d);
    problem p;
    problem_init(&p, &d);
    plant(&p, c, 1000u + (uint64_t)i * 16 + (uint64_t)c);
    float *ref = malloc(p.nout * sizeof(float)), *scale = malloc(p.nout * sizeof(float));
    float *out = malloc(p.nout * sizeof(float)), *ref0 = malloc(p.nout * sizeof(float));
    cr_assert_eq(run(p.in, p.f, p.bias, &d, CK_ALGO_REFERENCE, CK_ISA_GENERIC, 1, 1, ref), CK_OK,
                 "%s", ck_last_error());
    zero_padded_reference(&p, ref0);
    error_scale(&p, scale);
    for (size_t j = 0; j < p.nout; j++) specials_seen += !isfinite(ref[j]);
    char what[256];
    ckt_describe(&d, what, sizeof what);
    for (size_t a = 0; a < sizeof all_algos / sizeof all_algos[0]; a++) {
      if (ck_algo_lookup(all_algos[a]) == NULL) continue;
      for (int j = 0; j < nisa; j++) {
        int threads = 1 + (i / 8 + j) % 2;
        for (size_t q = 0; q < p.nout; q++) out[q] = 7.0f; /* no stale NaN from a previous run */
        ck_status st = run(p.in, p.f, p.bias, &d, all_algos[a], isas[j], threads, i % 16 == 0, out);
        cr_assert_eq(st, CK_OK, "%s/%s on %s: %s", ck_algo_name(all_algos[a]), ck_isa_name(isas[j]),
                     what, ck_last_error());
        long bad = first_mismatch(&p, out, ref, ref0, scale);
        cr_assert_eq(bad, -1,
                     "%s/%s, %d threads, %s on %s: output %ld is %g, reference %g (zero-padded "
                     "reading %g)",
                     ck_algo_name(all_algos[a]), ck_isa_name(isas[j]), threads, case_names[c], what,
                     bad, bad >= 0 ? out[bad] : 0.0f, bad >= 0 ? ref[bad] : 0.0f,
                     bad >= 0 ? ref0[bad] : 0.0f);
        checked++;
      }
    }
    free(ref), free(ref0), free(scale), free(out);
    problem_free(&p);
  }
  cr_assert_gt(checked, 0);
  /* The case must actually reach outputs (not only clamped away or padded over). */
  cr_assert_gt(specials_seen, 0, "%s produced no NaN or Inf output at all", case_names[c]);
}

Test(ieee, nan_input, .timeout = 300) {
  check_case(INPUT_NAN);
}
Test(ieee, inf_inputs, .timeout = 300) {
  check_case(INPUT_INFS);
}
Test(ieee, nan_weight, .timeout = 300) {
  check_case(FILTER_NAN);
}
Test(ieee, inf_weights, .timeout = 300) {
  check_case(FILTER_INFS);
}
Test(ieee, special_biases, .timeout = 300) {
  check_case(BIAS_SPECIALS);
}
Test(ieee, inf_times_zero_weight_is_nan, .timeout = 300) {
  check_case(INF_TIMES_ZERO);
}
Test(ieee, sprinkled_inputs, .timeout = 300) {
  check_case(SPRINKLED);
}

/* Hand-worked: a 1-D 3-tap box filter over [1, NaN, 2, 3, +Inf, 4, -Inf, 5] with one pixel of
 * zero padding on each side. NaN reaches outputs 0-2 only; +Inf 3-5, -Inf 5-7, so output 5 is
 * +Inf + -Inf = NaN; ReLU keeps NaN, turns -Inf into 0; nothing else is touched. */
Test(ieee, hand_worked_box_filter_every_algorithm, .timeout = 120) {
  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = d.in_channels = d.out_channels = 1;
  d.in_height = 1;
  d.in_width = 8;
  d.kernel_height = 1;
  d.kernel_width = 3;
  d.pad_left = d.pad_right = 1;
  d.activation = CK_ACTIVATION_RELU;
  const float in[8] = {1, NAN, 2, 3, INFINITY, 4, -INFINITY, 5}, f[3] = {1, 1, 1};
  const float nan = NAN, inf = INFINITY;
  const float expect[8] = {nan, nan, nan, inf, inf, nan, 0, 0};
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  for (size_t a = 0; a < sizeof all_algos / sizeof all_algos[0]; a++) {
    if (ck_algo_lookup(all_algos[a]) == NULL) continue;
    for (int j = 0; j < nisa; j++)
      for (int layout = 0; layout < 2; layout++) {
        d.layout = (ck_layout)layout;
        float out[8];
        cr_assert_eq(run(in, f, NULL, &d, all_algos[a], isas[j], 1, layout, out), CK_OK);
        for (int i = 0; i < 8; i++) {
          int ok = isnan(expect[i]) ? isnan(out[i]) : out[i] == expect[i];
          cr_expect(ok, "%s/%s: output %d is %g, expected %g", ck_algo_name(all_algos[a]),
                    ck_isa_name(isas[j]), i, out[i], expect[i]);
        }
      }
  }
}
