/* ck_sgemm: the public row-major SGEMM, a thin validated front end over the packed GEMM engine. */
#include <math.h>
#include <omp.h>

#include "gemm.h"
#include "internal.h"

/* The problem is small enough that its packing buffers go on the stack (no allocation, which
 * would cost more than the product itself at these sizes). */
#define SMALL_WORKSPACE_BYTES (64 * 1024)

CK_API ck_status ck_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                          const float *a, int lda, const float *b, int ldb, float beta, float *c,
                          int ldc) {
  ck_clear_error();
  if (m < 0) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "m (%d) must be >= 0", m);
  if (n < 0) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "n (%d) must be >= 0", n);
  if (k < 0) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "k (%d) must be >= 0", k);
  /* Row-major: op(A) is m x k, so A is stored m x k (rows of k) or, transposed, k x m. */
  const int a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
  if (lda < ck_max_int(1, a_cols))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "lda (%d) must be >= max(1, %s) (%d)", lda,
                   trans_a ? "m" : "k", ck_max_int(1, a_cols));
  if (ldb < ck_max_int(1, b_cols))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "ldb (%d) must be >= max(1, %s) (%d)", ldb,
                   trans_b ? "k" : "n", ck_max_int(1, b_cols));
  if (ldc < ck_max_int(1, n))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "ldc (%d) must be >= max(1, n) (%d)", ldc,
                   ck_max_int(1, n));
  if (m == 0 || n == 0) return CK_OK;
  if (c == NULL) return ck_fail(CK_ERROR_INVALID_ARGUMENT, "c is NULL (m = %d, n = %d)", m, n);
  const int reads_ab = k > 0 && alpha != 0.0f;
  if (reads_ab && a == NULL)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "a is NULL (m = %d, k = %d)", m, k);
  if (reads_ab && b == NULL)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "b is NULL (k = %d, n = %d)", k, n);

  ck_isa isa;
  ck_status st = ck_resolve_isa(CK_ISA_AUTO, &isa); /* honours CONVKIT_ISA */
  if (st != CK_OK) return st;
  const ck_kernels *kern = ck_kernels_for(isa);

  ck_gemm_problem p = {0};
  p.m = (size_t)m;
  p.n = (size_t)n;
  p.k = (size_t)k;
  p.a.data = a;
  p.a.row_stride = trans_a ? 1 : (size_t)lda;
  p.a.col_stride = trans_a ? (size_t)lda : 1;
  p.b.data = b;
  p.b.row_stride = trans_b ? 1 : (size_t)ldb;
  p.b.col_stride = trans_b ? (size_t)ldb : 1;
  p.c = c;
  p.ldc = (size_t)ldc;
  p.alpha = alpha;
  p.beta = beta;
  p.bias_kind = CK_BIAS_NONE;
  p.min = -INFINITY;
  p.max = INFINITY;

  const int threads = omp_get_max_threads();
  size_t bytes = 0;
  if (!ck_gemm_workspace_size(kern, &p, threads, &bytes))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "the packing buffers of a %d x %d x %d product overflow size_t", m, n, k);
  if (bytes <= SMALL_WORKSPACE_BYTES) {
    _Alignas(CK_ALIGNMENT) unsigned char small[SMALL_WORKSPACE_BYTES];
    ck_gemm_execute(kern, &p, threads, small);
    return CK_OK;
  }
  void *ws = ck_aligned_alloc(bytes);
  if (ws == NULL)
    return ck_fail(CK_ERROR_OUT_OF_MEMORY, "cannot allocate %zu bytes of packing buffers", bytes);
  ck_gemm_execute(kern, &p, threads, ws);
  ck_aligned_free(ws);
  return CK_OK;
}
