/* The planner: shape heuristics for AUTO and the measured choice of CK_PLAN_MEASURE. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "planner.h"

/* ---- Shape heuristics -------------------------------------------------------------------- */

static int is_depthwise(const ck_conv_problem *pb) {
  return pb->cin_g == 1 && pb->cout_g == 1 && pb->d.groups > 1;
}

/* A 1x1 kernel without padding (any stride): im2col's lowering is then at most a strided copy of
 * the input (none at stride 1), so the GEMM runs on the data nearly as it is. */
static int is_1x1(const ck_conv_desc *d) {
  return d->kernel_height == 1 && d->kernel_width == 1 && d->pad_top == 0 && d->pad_bottom == 0 &&
         d->pad_left == 0 && d->pad_right == 0;
}

/* The share of the GEMM's pixel columns that hold pixels when the output's pixels are cut into
 * panels of NR (NCHW puts the pixels in B): 1 for a multiple of NR, 49/64 for 49 pixels and
 * NR 32. An edge panel costs as much as a full one. */
static double pixel_panels_fill(size_t pixels, const ck_kernels *kern) {
  const size_t nr = (size_t)kern->nr;
  return (double)pixels / (double)(ck_div_up(pixels, nr) * nr);
}

#define PREF(...)                                                                                  \
  do {                                                                                             \
    const ck_algo o_[CK_PLANNER_MAX_CANDIDATES] = {__VA_ARGS__};                                   \
    memcpy(pref, o_, sizeof o_);                                                                   \
  } while (0)

/* The rules come from the suite (bench/layers.csv) timed with every algorithm, 1 thread, both
 * layouts, minimum of many runs (convkit-bench conv --algo all --stat min): the first choice
 * was within 10% of the fastest algorithm on every suite layer. After the first choice the
 * order is the fallback for tighter workspace limits, fastest first. */
int ck_planner_rank(const ck_conv_problem *pb, const ck_kernels *kern, int threads,
                    ck_algo order[CK_PLANNER_MAX_CANDIDATES], int *contenders) {
  (void)threads;
  const ck_conv_desc *d = &pb->d;
  const size_t out_pixels = (size_t)pb->out_h * pb->out_w;
  ck_algo pref[CK_PLANNER_MAX_CANDIDATES];
  /* How many of pref are worth timing: depthwise on GEMM algorithms is 10-1000x slower. */
  int timed = 3;
  if (is_depthwise(pb)) {
    /* Per-channel kernels over an indirection buffer, while the GEMM algorithms degenerate
     * into 1-row products per channel (NCHW too: the transposes cost less). */
    PREF(CK_ALGO_INDIRECT, CK_ALGO_KN2ROW, CK_ALGO_IM2COL, CK_ALGO_MEC, CK_ALGO_KN2ROW_AA,
         CK_ALGO_REFERENCE);
    timed = 1;
  } else if (d->layout == CK_LAYOUT_NHWC) {
    /* The indirect GEMM reads the input in place: fastest or within a few % everywhere,
     * 1x1 layers of very deep input included (resnet50 res5 reduce, 2048 channels, once went
     * to im2col for the packed GEMM's K blocking: in three suite runs at the end of session 3
     * the indirect GEMM took 0.47-0.66 ms against 0.58-0.79 on 2 threads, and won 2 of 3 on 1). */
    PREF(CK_ALGO_INDIRECT, CK_ALGO_IM2COL, CK_ALGO_KN2ROW_AA, CK_ALGO_MEC, CK_ALGO_KN2ROW,
         CK_ALGO_REFERENCE);
  } else if (is_1x1(d) && pixel_panels_fill(out_pixels, kern) >= 0.8) {
    /* NCHW 1x1: a GEMM on the input as it is, where the indirect GEMM would transpose input and
     * output, as costly as the GEMM itself (3-7x slower on the suite's 1x1 layers). Not when the
     * pixels fill their GEMM panels badly: resnet50 res5 reduce's 7x7 output is 49 pixels in
     * 64 columns of two AVX-512 panels, and the indirect GEMM (7-row tiles, none wasted) took
     * 1.36 ms against im2col's 1.51 on 1 thread, 0.82 against 0.91 on 2 (medians of 3 suite
     * runs, end of session 4); its transposes are small at 49 pixels. */
    PREF(CK_ALGO_IM2COL, CK_ALGO_KN2ROW_AA, CK_ALGO_INDIRECT, CK_ALGO_MEC, CK_ALGO_KN2ROW,
         CK_ALGO_REFERENCE);
  } else if (d->groups == 1 && pb->cin_g <= 4) {
    /* NCHW, a first layer on an image (3 channels): im2col's lowering copies whole strided input
     * rows per channel, while the indirect GEMM transposes the image and the output and runs
     * 3-channel taps. Two runs, ms, im2col vs indirect: alexnet conv1 2.67/2.46 vs 2.95/2.88 on
     * 1 thread, 1.28/1.62 vs 1.33/1.63 on 2; resnet50 conv1 2.76/3.78 vs 2.87/3.99 on 1,
     * 1.56/1.59 vs 1.42/1.64 on 2. */
    PREF(CK_ALGO_IM2COL, CK_ALGO_INDIRECT, CK_ALGO_KN2ROW_AA, CK_ALGO_MEC, CK_ALGO_KN2ROW,
         CK_ALGO_REFERENCE);
  } else if (kern->transpose_stream == NULL && pb->cin_g >= 16 && pb->cin_g <= 128 &&
             out_pixels > 56 * 56) {
    /* NCHW, few channels over a large output (vgg16 conv1/2, yolov3 208), on an ISA without
     * streaming conversions: transposing tensors of several MiB, past L2, costs about what
     * lowering im2col's patches does, and im2col won or tied in session 4. With streaming
     * stores (AVX-512) the conversions take half the time and the indirect GEMM wins these too
     * (1 thread, two runs, ms, im2col vs indirect: vgg16 conv1_2 55.8/38.2 vs 46.7/32.6,
     * conv2_2 49.3/37.5 vs 43.1/31.0, yolov3 208 23.5/19.1 vs 22.2/16.2; 2 threads level or
     * ahead). Not a 56x56 output (resnet50 res2: the 0.8 MiB tensors transpose in L2, and the
     * indirect GEMM is 10-20% ahead). */
    PREF(CK_ALGO_IM2COL, CK_ALGO_MEC, CK_ALGO_KN2ROW_AA, CK_ALGO_INDIRECT, CK_ALGO_KN2ROW,
         CK_ALGO_REFERENCE);
  } else {
    /* NCHW, deep layers: the transposes are small next to the work. Strided ones too (resnet50
     * res3_3x3_s2, two runs, ms: indirect 2.34/2.29 vs im2col 2.61/2.50 on 1 thread, 1.09/1.15
     * vs 1.60/1.64 on 2). */
    PREF(CK_ALGO_INDIRECT, CK_ALGO_KN2ROW_AA, CK_ALGO_IM2COL, CK_ALGO_MEC, CK_ALGO_KN2ROW,
         CK_ALGO_REFERENCE);
  }
  int n = 0, c = 0;
  for (int i = 0; i < CK_PLANNER_MAX_CANDIDATES; i++) {
    if (ck_algo_lookup(pref[i]) == NULL) continue;
    order[n++] = pref[i];
    if (i < timed && pref[i] != CK_ALGO_REFERENCE) c = n;
  }
  *contenders = c > 0 ? c : 1;
  return n;
}

/* ---- Measurement ------------------------------------------------------------------------- */

/* Bounds of CK_PLAN_MEASURE. Every candidate that fits runs at least once (its first run also
 * warms its caches and touches its memory); further runs, up to a few, go to candidates whose
 * first run is within reach of the best so far, while the extra time stays under the budget.
 * So a plan costs set-up + one run of each candidate + at most the budget. */
#define MEASURE_EXTRA_BUDGET_S 0.15
#define MEASURE_RUNS 3        /* runs of a contender */
#define MEASURE_RUNS_SHORT 10 /* runs of a contender whose run is shorter than a millisecond */
#define MEASURE_CONTENDER 1.5 /* first run within this factor of the best: time it again */
#define MEASURE_MARGIN 0.98   /* a later candidate must beat the earlier by 2% (noise) */

/* Deterministic, finite, normal values: timing must not hit denormal slow paths or NaN. */
static void fill_scratch(float *x, size_t n) {
  uint32_t s = 0x9e3779b9u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 9) * (1.0f / 8388608.0f) - 0.5f;
  }
}

/* Runs candidate c a few times (see the bounds above) and returns its fastest run in seconds,
 * or a negative value when its workspace cannot be allocated. */
static double time_candidate(const ck_algo_impl *impl, const ck_conv_ctx *c, const float *in,
                             float *out, double best_s, double *extra_s) {
  void *ws = NULL;
  if (c->workspace_size > 0) {
    ws = ck_aligned_alloc(c->workspace_size);
    if (ws == NULL) return -1;
    memset(ws, 0, c->workspace_size); /* page faults are not the algorithm's time */
  }
  double t0 = omp_get_wtime();
  impl->execute(c, in, out, ws);
  double fastest = omp_get_wtime() - t0;
  const int runs = fastest < 1e-3 ? MEASURE_RUNS_SHORT : MEASURE_RUNS;
  for (int r = 1;
       r < runs && *extra_s < MEASURE_EXTRA_BUDGET_S && !(fastest > MEASURE_CONTENDER * best_s);
       r++) {
    t0 = omp_get_wtime();
    impl->execute(c, in, out, ws);
    const double t = omp_get_wtime() - t0;
    *extra_s += t;
    if (t < fastest) fastest = t;
  }
  ck_aligned_free(ws);
  return fastest;
}

ck_status ck_planner_measure(ck_conv_ctx *ctx, const ck_conv_weights *w, size_t limit,
                             const ck_algo *order, int n, int contenders, ck_algo *algo) {
  const size_t nin = ck_conv_input_floats(&ctx->pb), nout = ck_conv_output_floats(&ctx->pb);
  float *in = ck_aligned_alloc(nin * sizeof(float));
  float *out = ck_aligned_alloc(nout * sizeof(float));
  if (in == NULL || out == NULL) {
    ck_aligned_free(in);
    ck_aligned_free(out);
    return ck_fail(CK_ERROR_OUT_OF_MEMORY,
                   "out of memory for CK_PLAN_MEASURE's scratch tensors (%zu + %zu floats)", nin,
                   nout);
  }
  fill_scratch(in, nin);
  memset(out, 0, nout * sizeof(float));

  ck_conv_ctx best = *ctx;
  best.state = NULL;
  const ck_algo_impl *best_impl = NULL;
  double best_s = INFINITY, extra_s = 0;
  ck_status last = CK_ERROR_UNSUPPORTED;
  /* The contenders, timed; past them only while none fits, untimed. */
  for (int i = 0; i < n && !(i >= contenders && best_impl != NULL); i++) {
    const ck_algo_impl *impl = ck_algo_lookup(order[i]);
    if (impl == NULL) continue;
    ck_conv_ctx c = *ctx;
    c.state = NULL;
    c.workspace_size = 0;
    ck_status s = impl->setup(&c, w);
    if (s == CK_OK && limit != 0 && c.workspace_size > limit)
      s = ck_fail(CK_ERROR_WORKSPACE_LIMIT,
                  "algo (%s) needs %zu bytes of workspace, more than workspace_limit (%zu)",
                  ck_algo_name(order[i]), c.workspace_size, limit);
    double t = 0;
    if (s == CK_OK && i < contenders) {
      t = time_candidate(impl, &c, in, out, best_s, &extra_s);
      if (t < 0)
        s = ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for %s's workspace (%zu bytes)",
                    ck_algo_name(order[i]), c.workspace_size);
    }
    if (s != CK_OK) {
      impl->destroy(&c);
      last = s;
      continue;
    }
    if (best_impl == NULL || t < MEASURE_MARGIN * best_s) {
      if (best_impl != NULL) best_impl->destroy(&best);
      best = c;
      best_impl = impl;
      best_s = t;
      *algo = order[i];
    } else {
      impl->destroy(&c);
    }
  }
  ck_aligned_free(in);
  ck_aligned_free(out);
  if (best_impl == NULL) return last;
  ctx->state = best.state;
  ctx->workspace_size = best.workspace_size;
  return CK_OK;
}
