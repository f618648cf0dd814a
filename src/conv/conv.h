/*
 * The algorithm interface. Each algorithm (conv/<name>.c) turns a validated convolution into
 * engine calls. plan.c validates, normalizes the filter and bias, resolves ISA and threads, then
 * calls the algorithm's setup; execute and destroy follow.
 */
#ifndef CK_CONV_H
#define CK_CONV_H

#include <stddef.h>

#include "../internal.h"
#include "../kernels.h"

/* A validated problem: the descriptor and everything derived from it. */
typedef struct {
  ck_conv_desc d;
  int out_h, out_w;
  int cin_g, cout_g; /* channels per group */
  float min, max;    /* the activation as a clamp (-INF/+INF when none) */
} ck_conv_problem;

/* Read-only inputs to an algorithm's setup: the filter in canonical OIHW order
 * ([out][in/groups][kh][kw]) and the bias (out_channels floats, zeros when the user gave none).
 * Both are owned by plan.c and freed after setup: an algorithm copies or packs what it keeps. */
typedef struct {
  const float *filter_oihw;
  const float *bias;
} ck_conv_weights;

typedef struct ck_algo_impl ck_algo_impl;

/* The part of a plan an algorithm sees. */
typedef struct {
  ck_conv_problem pb;
  const ck_kernels *kern;
  int threads;
  void *state;           /* owned by the algorithm */
  size_t workspace_size; /* set by setup: exact bytes execute needs (0 allowed) */
} ck_conv_ctx;

struct ck_algo_impl {
  ck_algo id;
  /* Prepares ctx->state and ctx->workspace_size. CK_ERROR_UNSUPPORTED with a sentence when the
   * algorithm cannot run the problem (never a wrong answer); CK_ERROR_OUT_OF_MEMORY; overflow of
   * a size is CK_ERROR_INVALID_ARGUMENT naming the size. */
  ck_status (*setup)(ck_conv_ctx *ctx, const ck_conv_weights *w);
  /* Runs with a workspace of at least ctx->workspace_size bytes (any alignment; NULL when the
   * size is 0). Must not allocate. Input and output are in ctx->pb.d.layout. */
  void (*execute)(const ck_conv_ctx *ctx, const float *input, float *output, void *workspace);
  /* Frees ctx->state (which may be NULL after a failed setup). */
  void (*destroy)(ck_conv_ctx *ctx);
};

/* The implementation of an algorithm; NULL for AUTO or a value outside the enum. */
const ck_algo_impl *ck_algo_lookup(ck_algo a);

extern const ck_algo_impl ck_algo_reference;
extern const ck_algo_impl ck_algo_im2col;
extern const ck_algo_impl ck_algo_kn2row;
extern const ck_algo_impl ck_algo_kn2row_aa;
extern const ck_algo_impl ck_algo_mec;
extern const ck_algo_impl ck_algo_indirect;

/* Validates a descriptor (every field, every size) into a problem, or fails with a sentence. */
ck_status ck_conv_problem_init(const ck_conv_desc *d, ck_conv_problem *pb);

/* Element counts of the input and output tensors of a problem (validated not to overflow). */
size_t ck_conv_input_floats(const ck_conv_problem *pb);
size_t ck_conv_output_floats(const ck_conv_problem *pb);

#endif
