/* Plan creation, execution and destruction: validation, algorithm and ISA choice, weight
 * normalization, workspace, threads. */
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv/conv.h"
#include "fpenv.h"
#include "parallel.h"
#include "planner.h"

struct ck_plan {
  ck_conv_ctx ctx;
  const ck_algo_impl *impl;
  ck_algo algo;
  ck_isa isa;
  unsigned flags;
  void *own_workspace; /* ctx.workspace_size bytes, used when execute gets NULL */
  pthread_mutex_t own_workspace_lock;
};

#define CK_KNOWN_FLAGS (CK_PLAN_MEASURE | CK_PLAN_FLUSH_DENORMALS)

void ck_plan_options_init(ck_plan_options *o) {
  if (o == NULL) return;
  *o = (ck_plan_options){.algo = CK_ALGO_AUTO, .isa = CK_ISA_AUTO};
}

const ck_algo_impl *ck_algo_lookup(ck_algo a) {
  switch (a) {
  case CK_ALGO_REFERENCE:
    return &ck_algo_reference;
  case CK_ALGO_IM2COL:
    return &ck_algo_im2col;
  case CK_ALGO_KN2ROW:
    return &ck_algo_kn2row;
  case CK_ALGO_KN2ROW_AA:
    return &ck_algo_kn2row_aa;
  case CK_ALGO_MEC:
    return &ck_algo_mec;
  case CK_ALGO_INDIRECT:
    return &ck_algo_indirect;
  default:
    return NULL;
  }
}

static ck_status validate_options(const ck_plan_options *o) {
  if (o->algo < CK_ALGO_AUTO || o->algo > CK_ALGO_INDIRECT)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "algo (%d) is not a ck_algo value", (int)o->algo);
  if (o->isa < CK_ISA_AUTO || o->isa > CK_ISA_NEON)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "isa (%d) is not a ck_isa value", (int)o->isa);
  if (o->threads < 0 || o->threads > CK_MAX_THREADS)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "threads (%d) must be between 0 and %d", o->threads,
                   CK_MAX_THREADS);
  if (o->flags & ~(unsigned)CK_KNOWN_FLAGS)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "flags (0x%x) has unknown bits (0x%x)", o->flags,
                   o->flags & ~(unsigned)CK_KNOWN_FLAGS);
  if ((o->flags & CK_PLAN_FLUSH_DENORMALS) && !ck_fpenv_flush_supported())
    return ck_fail(CK_ERROR_UNSUPPORTED,
                   "flags: CK_PLAN_FLUSH_DENORMALS is not available on this target (no "
                   "flush-to-zero control)");
  return CK_OK;
}

/* Copies the user's filter into OIHW order and the bias (or zeros) into fresh buffers. */
static ck_status normalize_weights(const ck_conv_problem *pb, const float *filter,
                                   const float *bias, float **filter_oihw, float **bias_out) {
  const ck_conv_desc *d = &pb->d;
  const size_t M = (size_t)d->out_channels, CG = (size_t)pb->cin_g;
  const size_t KH = (size_t)d->kernel_height, KW = (size_t)d->kernel_width;
  const size_t nf = M * CG * KH * KW; /* validated not to overflow */
  float *f = malloc(nf * sizeof(float));
  float *b = calloc(M, sizeof(float));
  if (f == NULL || b == NULL) {
    free(f);
    free(b);
    return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory copying the filter (%zu floats)", nf);
  }
  if (d->filter_layout == CK_FILTER_OIHW) {
    memcpy(f, filter, nf * sizeof(float));
  } else {
    for (size_t m = 0; m < M; m++)
      for (size_t kh = 0; kh < KH; kh++)
        for (size_t kw = 0; kw < KW; kw++)
          for (size_t c = 0; c < CG; c++)
            f[((m * CG + c) * KH + kh) * KW + kw] = filter[((m * KH + kh) * KW + kw) * CG + c];
  }
  if (bias != NULL) memcpy(b, bias, M * sizeof(float));
  *filter_oihw = f;
  *bias_out = b;
  return CK_OK;
}

/* Sets up one algorithm in p; on failure p->ctx.state is destroyed and cleared. */
static ck_status try_algo(ck_plan *p, ck_algo a, const ck_conv_weights *w, size_t limit) {
  const ck_algo_impl *impl = ck_algo_lookup(a);
  if (impl == NULL)
    return ck_fail(CK_ERROR_UNSUPPORTED, "algo (%s) is not built yet in this version of convkit",
                   ck_algo_name(a));
  p->ctx.state = NULL;
  p->ctx.workspace_size = 0;
  ck_status s = impl->setup(&p->ctx, w);
  if (s == CK_OK && limit != 0 && p->ctx.workspace_size > limit)
    s = ck_fail(CK_ERROR_WORKSPACE_LIMIT,
                "algo (%s) needs %zu bytes of workspace, more than workspace_limit (%zu)",
                ck_algo_name(a), p->ctx.workspace_size, limit);
  if (s != CK_OK) {
    impl->destroy(&p->ctx);
    p->ctx.state = NULL;
    return s;
  }
  p->impl = impl;
  p->algo = a;
  return CK_OK;
}

/* An explicit algorithm is set up or fails (CK_ERROR_WORKSPACE_LIMIT naming both sizes when it
 * does not fit). AUTO takes the planner's candidates, fastest predicted first, and keeps the
 * first that sets up within the limit; with CK_PLAN_MEASURE it times them and keeps the
 * fastest. The reference comes last, so AUTO runs it only when nothing else fits. */
static ck_status choose_algo(ck_plan *p, const ck_plan_options *o, const ck_conv_weights *w) {
  if (o->algo != CK_ALGO_AUTO) return try_algo(p, o->algo, w, o->workspace_limit);
  ck_algo order[CK_PLANNER_MAX_CANDIDATES];
  int contenders = 1;
  const int n = ck_planner_rank(&p->ctx.pb, p->ctx.kern, p->ctx.threads, order, &contenders);
  ck_status last = CK_ERROR_UNSUPPORTED;
  if (o->flags & CK_PLAN_MEASURE) {
    ck_algo a = CK_ALGO_AUTO;
    last = ck_planner_measure(&p->ctx, w, o->workspace_limit, order, n, contenders, &a);
    if (last == CK_OK) {
      p->impl = ck_algo_lookup(a);
      p->algo = a;
      ck_clear_error(); /* candidates that did not fit left their sentences */
      return CK_OK;
    }
    /* No memory to measure in: the heuristic choice below needs less. */
  }
  for (int i = 0; i < n; i++) {
    last = try_algo(p, order[i], w, o->workspace_limit);
    if (last == CK_OK) {
      ck_clear_error();
      return CK_OK;
    }
  }
  return last;
}

ck_status ck_conv_plan_create(const ck_conv_desc *d, const float *filter, const float *bias,
                              const ck_plan_options *o, ck_plan **plan) {
  ck_clear_error();
  if (plan == NULL) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "plan (the output pointer) is NULL");
  *plan = NULL;
  if (filter == NULL) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "filter is NULL");
  ck_plan_options defaults;
  ck_plan_options_init(&defaults);
  if (o == NULL) o = &defaults;

  ck_conv_problem pb;
  ck_status s = ck_conv_problem_init(d, &pb);
  if (s == CK_OK) s = validate_options(o);
  ck_isa isa = CK_ISA_GENERIC;
  if (s == CK_OK) s = ck_resolve_isa(o->isa, &isa);
  if (s != CK_OK) return s;

  ck_plan *p = calloc(1, sizeof *p);
  if (p == NULL) return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the plan");
  p->ctx.pb = pb;
  p->ctx.kern = ck_kernels_for(isa);
  p->ctx.threads = o->threads > 0 ? o->threads : omp_get_max_threads();
  if (p->ctx.threads > CK_MAX_THREADS) p->ctx.threads = CK_MAX_THREADS;
  p->isa = isa;
  p->flags = o->flags;

  float *filter_oihw = NULL, *bias_copy = NULL;
  s = normalize_weights(&pb, filter, bias, &filter_oihw, &bias_copy);
  if (s == CK_OK) {
    ck_conv_weights w = {.filter_oihw = filter_oihw, .bias = bias_copy};
    s = choose_algo(p, o, &w);
  }
  free(filter_oihw);
  free(bias_copy);
  if (s == CK_OK && p->ctx.workspace_size > 0) {
    p->own_workspace = ck_aligned_alloc(p->ctx.workspace_size);
    if (p->own_workspace == NULL)
      s = ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the plan's workspace (%zu bytes)",
                  p->ctx.workspace_size);
  }
  if (s == CK_OK && pthread_mutex_init(&p->own_workspace_lock, NULL) != 0)
    s = ck_fail(CK_ERROR_OUT_OF_MEMORY, "could not create the plan's workspace lock");
  if (s != CK_OK) {
    if (p->impl != NULL) p->impl->destroy(&p->ctx);
    ck_aligned_free(p->own_workspace);
    free(p);
    return s;
  }
  *plan = p;
  return CK_OK;
}

size_t ck_plan_workspace_size(const ck_plan *p) {
  return p == NULL ? 0 : p->ctx.workspace_size;
}

ck_algo ck_plan_algo(const ck_plan *p) {
  return p == NULL ? CK_ALGO_AUTO : p->algo;
}

ck_isa ck_plan_isa(const ck_plan *p) {
  return p == NULL ? CK_ISA_AUTO : p->isa;
}

static int ranges_overlap(const void *a, size_t an, const void *b, size_t bn) {
  uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
  return a0 < b0 + bn && b0 < a0 + an;
}

ck_status ck_conv_execute(const ck_plan *p, const float *input, float *output, void *workspace) {
  ck_clear_error();
  if (p == NULL) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "plan is NULL");
  if (input == NULL) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "input is NULL");
  if (output == NULL) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "output is NULL");
  size_t in_bytes = ck_conv_input_floats(&p->ctx.pb) * sizeof(float);
  size_t out_bytes = ck_conv_output_floats(&p->ctx.pb) * sizeof(float);
  if (ranges_overlap(input, in_bytes, output, out_bytes))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "input (%p, %zu bytes) and output (%p, %zu bytes) overlap", (const void *)input,
                   in_bytes, (void *)output, out_bytes);
  /* With CK_PLAN_FLUSH_DENORMALS every thread of the plan's team runs with FTZ+DAZ, and gets
   * its own bits back afterwards (fpenv.h); the algorithm does not know. */
  const int flush = (p->flags & CK_PLAN_FLUSH_DENORMALS) != 0;
  ck_plan *mp = (ck_plan *)p; /* the lock is the one mutable part of a plan */
  if (workspace == NULL) pthread_mutex_lock(&mp->own_workspace_lock);
  if (flush) ck_fpenv_flush_begin(p->ctx.threads);
  p->impl->execute(&p->ctx, input, output, workspace != NULL ? workspace : p->own_workspace);
  if (flush) ck_fpenv_flush_end(p->ctx.threads);
  if (workspace == NULL) pthread_mutex_unlock(&mp->own_workspace_lock);
  return CK_OK;
}

void ck_plan_destroy(ck_plan *p) {
  if (p == NULL) return;
  p->impl->destroy(&p->ctx);
  pthread_mutex_destroy(&p->own_workspace_lock);
  ck_aligned_free(p->own_workspace);
  free(p);
}
