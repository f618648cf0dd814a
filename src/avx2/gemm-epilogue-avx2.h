/* The epilogue of the AVX2 GEMM micro-kernels (packed and direct 6x16): one definition, so that
 * both store the same bits for the same sums, as the engine's contract in gemm.h requires (a
 * problem may switch kernels between tiles).
 *
 * c = clamp(alpha * acc + beta * c + bias_row[i] + bias_col[j]) on the rows x (vecs ymm) tile,
 * the last vector through last_mask; C is read only when beta != 0. */
#ifndef CK_AVX2_GEMM_EPILOGUE_H
#define CK_AVX2_GEMM_EPILOGUE_H

#include <immintrin.h>

#include "../gemm.h"

static inline __attribute__((always_inline)) void
ck_gemm_store_avx2(const int rows, const int vecs, __m256 (*acc)[2], float *c, size_t ldc,
                   const ck_gemm_epilogue *ep, __m256i last_mask) {
  const __m256i all = _mm256_set1_epi32(-1);
  const __m256 alpha = _mm256_set1_ps(ep->alpha), beta = _mm256_set1_ps(ep->beta);
  const __m256 lo = _mm256_set1_ps(ep->min), hi = _mm256_set1_ps(ep->max);
  const int scale = ep->alpha != 1.0f, add_c = ep->beta != 0.0f;
  const int clamp = ep->min != -__builtin_inff() || ep->max != __builtin_inff();
  __m256 bias_col[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  if (ep->bias_col)
    for (int v = 0; v < vecs; v++)
      bias_col[v] = _mm256_maskload_ps(ep->bias_col + 8 * v, v + 1 == vecs ? last_mask : all);
#pragma GCC unroll 6
  for (int i = 0; i < rows; i++) {
    float *ci = c + (size_t)i * ldc;
    const __m256 bias_row = ep->bias_row ? _mm256_set1_ps(ep->bias_row[i]) : _mm256_setzero_ps();
    for (int v = 0; v < vecs; v++) {
      const __m256i m = v + 1 == vecs ? last_mask : all;
      __m256 x = acc[i][v];
      if (scale) x = _mm256_mul_ps(alpha, x);
      if (add_c) x = _mm256_fmadd_ps(beta, _mm256_maskload_ps(ci + 8 * v, m), x);
      if (ep->bias_row) x = _mm256_add_ps(x, bias_row);
      if (ep->bias_col) x = _mm256_add_ps(x, bias_col[v]);
      if (clamp) x = _mm256_min_ps(hi, _mm256_max_ps(lo, x)); /* NaN in x survives both */
      _mm256_maskstore_ps(ci + 8 * v, m, x);
    }
  }
}

#endif
