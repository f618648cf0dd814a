/* The indirect algorithm's plan state, shared by its igemm part (indirect.c) and its depthwise
 * part (indirect-dw.c). */
#ifndef CK_CONV_INDIRECT_H
#define CK_CONV_INDIRECT_H

#include <stdint.h>

#include "../igemm.h"
#include "conv.h"

/* The depthwise loop: one kernel call per output row and channel tile. Output rows whose
 * windows are all inside the image vertically (inner_lo <= oy < inner_hi) differ only by where
 * their input rows start, so they share the stored positions of row inner_lo, read with
 * (oy - inner_lo) * row_step more bytes of offset: the buffer holds the rows that touch the top
 * or bottom padding and one inner row. */
typedef struct {
  ck_dwconv_ukernel kernel;
  size_t cb;                 /* channels per packed block */
  size_t ks;                 /* taps */
  size_t row_ptrs;           /* positions per output row */
  size_t pixel_stride;       /* positions from one output pixel to the next */
  size_t inner_lo, inner_hi; /* the rows sharing stored row inner_lo; inner_hi == inner_lo: none */
  size_t row_step;           /* bytes between the input rows of output rows oy and oy + 1 */
  ck_clamp_params clamp;
} ck_indirect_dw;

typedef struct {
  int depthwise;             /* groups == C == M: the dwconv kernels, else igemm per group */
  float *zero;               /* the zero row (aligned; ck_aligned_free) */
  const float **indirection; /* positions relative to base (aligned; ck_aligned_free) */
  float *packed;             /* packed weights (aligned; ck_aligned_free) */
  unsigned char *merged;     /* igemm tiles read with merged taps, or NULL (free) */
  uintptr_t base;            /* see igemm.h */
  ck_igemm_op op;            /* igemm path */
  ck_indirect_dw dw;         /* depthwise path */
} ck_indirect_state;

/* Sets up the depthwise path of s: zero row, indirection, packed weights. */
ck_status ck_indirect_dw_setup(const ck_conv_ctx *ctx, const ck_conv_weights *w,
                               ck_indirect_state *s);

/* Runs the depthwise path on NHWC input x into NHWC output y. */
void ck_indirect_dw_run(const ck_conv_ctx *ctx, const ck_indirect_state *s, const float *x,
                        float *y);

#endif
