/*
 * The packed GEMM engine: the five Goto/BLIS loops around the table's micro-kernel.
 *
 *   C[m x n] = alpha * A[m x k] * B[k x n] + beta * C, then + bias, then clamp.
 *
 * Operands are either plain (any row and column stride, which covers transposes) or pre-packed
 * in the engine's panel layouts, which depend only on the table's MR/NR (not on MC, KC, NC):
 *   packed A: panel p holds rows [p*MR, p*MR+MR); element (i, k) of the panel at
 *             p*K*MR + k*MR + i; rows past m are zero. round_up(m, MR) * K floats.
 *   packed B: panel q holds columns [q*NR, q*NR+NR); element (k, j) at q*K*NR + k*NR + j;
 *             columns past n are zero. round_up(n, NR) * K floats.
 * A KC slice [k0, k0+kc) of a panel is therefore contiguous, and filters packed once at plan time
 * serve any blocking.
 */
#ifndef CK_GEMM_H
#define CK_GEMM_H

#include <stddef.h>

#include "kernels.h"

typedef struct {
  const float *data;
  size_t row_stride, col_stride; /* plain operand: element (r, c) at data[r*rs + c*cs] */
  int packed;                    /* non-zero: data is in the packed layout above */
} ck_gemm_operand;
/* A packed operand ignores col_stride, and reads a non-zero row_stride as its panel stride:
 * floats from one panel to the next, instead of the layout's own K*MR (A) or K*NR (B). The
 * operand is then a window of k rows out of a packed matrix with more of them (MEC's
 * overlapping partitions of its lowered matrix). */

typedef enum { CK_BIAS_NONE = 0, CK_BIAS_PER_ROW, CK_BIAS_PER_COL } ck_bias_kind;

typedef struct {
  size_t m, n, k;
  ck_gemm_operand a, b;
  float *c;
  size_t ldc; /* row stride of C; columns are contiguous */
  float alpha, beta;
  const float *bias; /* m values (PER_ROW) or n values (PER_COL); NULL with CK_BIAS_NONE */
  ck_bias_kind bias_kind;
  float min, max; /* clamp; -INF/+INF for none */
} ck_gemm_problem;

/* Floats of a packed operand (overflow-checked; 0 on overflow). */
size_t ck_gemm_packed_a_floats(const ck_kernels *kern, size_t m, size_t k);
size_t ck_gemm_packed_b_floats(const ck_kernels *kern, size_t k, size_t n);

/* Pack a plain operand (element (r, c) at src[r*rs + c*cs]) into the packed layouts above. */
void ck_gemm_pack_a(const ck_kernels *kern, size_t m, size_t k, const float *src, size_t rs,
                    size_t cs, float *dst);
void ck_gemm_pack_b(const ck_kernels *kern, size_t k, size_t n, const float *src, size_t rs,
                    size_t cs, float *dst);

/* Stores in *bytes the workspace ck_gemm_execute needs for this problem with `threads` threads
 * (packing buffers of every thread). Returns 1, or 0 when the size overflows. The size depends
 * only on m, n, k, threads and which operands are plain, and never decreases when m, n, k or
 * threads grow: a workspace sized for the largest of several problems serves them all. */
int ck_gemm_workspace_size(const ck_kernels *kern, const ck_gemm_problem *p, int threads,
                           size_t *bytes);

/* Runs the problem. threads > 1 opens one OpenMP parallel region of at most that many threads
 * (fewer when the product is small: about 10 MFLOP per thread); threads == 1 runs on the calling
 * thread without opening any region, so algorithms may call it from inside their own parallel
 * region with a per-thread slice of workspace. The result is bitwise identical for any thread
 * count (no thread splits the k sum). workspace holds at least ck_gemm_workspace_size bytes (any
 * alignment). m, n or k == 0 is valid; k == 0 or alpha == 0 reads neither A nor B. */
void ck_gemm_execute(const ck_kernels *kern, const ck_gemm_problem *p, int threads,
                     void *workspace);

/* ---- Micro-kernels of the packed GEMM (contract: ck_gemm_ukernel in kernels.h) ------------ */

void ck_f32_gemm_4x8__generic(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                              float *c, size_t ldc, const ck_gemm_epilogue *ep);
void ck_f32_gemm_6x16__avx2(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                            float *c, size_t ldc, const ck_gemm_epilogue *ep);
void ck_f32_gemm_14x32__avx512(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                               float *c, size_t ldc, const ck_gemm_epilogue *ep);

/* Prefetching kernels (contract: ck_gemm_prefetch_fn in kernels.h). */
void ck_f32_gemm_prefetch_14x32__avx512(size_t mr, size_t nr, size_t kc, const float *a,
                                        const float *b, float *c, size_t ldc,
                                        const ck_gemm_epilogue *ep, ck_gemm_prefetch *pf);

/* Direct kernels (contract: ck_gemm_direct_fn in kernels.h). */
void ck_f32_gemm_direct_6x16__avx2(size_t mr, size_t nr, size_t kc, const float *a, size_t lda,
                                   const float *b, size_t ldb, float *c, size_t ldc,
                                   const ck_gemm_epilogue *ep);
void ck_f32_gemm_direct_14x32__avx512(size_t mr, size_t nr, size_t kc, const float *a, size_t lda,
                                      const float *b, size_t ldb, float *c, size_t ldc,
                                      const ck_gemm_epilogue *ep);
void ck_f32_gemm_direct_6x64__avx512(size_t mr, size_t nr, size_t kc, const float *a, size_t lda,
                                     const float *b, size_t ldb, float *c, size_t ldc,
                                     const ck_gemm_epilogue *ep);

/* Transposing packers (contract: ck_gemm_packt_fn in kernels.h). */
void ck_f32_gemm_packt__generic(size_t h, size_t w, size_t kc, const float *src, size_t rs,
                                float *dst);
void ck_f32_gemm_packt__avx2(size_t h, size_t w, size_t kc, const float *src, size_t rs,
                             float *dst);
void ck_f32_gemm_packt__avx512(size_t h, size_t w, size_t kc, const float *src, size_t rs,
                               float *dst);

/* Row-panel packers (contract: ck_gemm_packn_fn in kernels.h). */
void ck_f32_gemm_packn__generic(size_t kc, size_t cols, size_t w, const float *src, size_t rs,
                                float *dst);
void ck_f32_gemm_packn__avx2(size_t kc, size_t cols, size_t w, const float *src, size_t rs,
                             float *dst);
void ck_f32_gemm_packn__avx512(size_t kc, size_t cols, size_t w, const float *src, size_t rs,
                               float *dst);

#endif
