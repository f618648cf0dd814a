/* The epilogue of the AVX-512 GEMM micro-kernels (packed, prefetching and direct 14x32, direct
 * 6x64): one definition, so that every kernel of the family stores the same bits for the same sums,
 * as the engine's contract in gemm.h requires (a problem may switch kernels between tiles).
 *
 * c = clamp(alpha * acc + beta * c + bias_row[i] + bias_col[j]) on the rows x (vecs zmm) tile,
 * the last vector through last_mask; C is read only when beta != 0. */
#ifndef CK_AVX512_GEMM_EPILOGUE_H
#define CK_AVX512_GEMM_EPILOGUE_H

#include <immintrin.h>

#include "../gemm.h"

/* One body for the tiles of 2 vectors per row (14x32 kernels) and of 4 (the 6x64 direct kernel):
 * CK_GEMM_STORE_AVX512(name, NV) defines name(rows, vecs, acc, ...) for acc[rows][NV], vecs <= NV.
 */
#define CK_GEMM_STORE_AVX512(NAME, NV)                                                             \
  static inline __attribute__((always_inline)) void NAME(                                          \
      const int rows, const int vecs, __m512(*acc)[NV], float *c, size_t ldc,                      \
      const ck_gemm_epilogue *ep, __mmask16 last_mask) {                                           \
    /* The fields in locals: the stores to C go through may-alias vector types, so gcc would       \
     * otherwise reload (and retest) them from *ep for every row. */                               \
    const float *const bias_row_p = ep->bias_row, *const bias_col_p = ep->bias_col;                \
    const __m512 alpha = _mm512_set1_ps(ep->alpha), beta = _mm512_set1_ps(ep->beta);               \
    const __m512 lo = _mm512_set1_ps(ep->min), hi = _mm512_set1_ps(ep->max);                       \
    const int scale = ep->alpha != 1.0f, add_c = ep->beta != 0.0f;                                 \
    const int clamp = ep->min != -__builtin_inff() || ep->max != __builtin_inff();                 \
    if (!scale && !clamp && !bias_row_p && !bias_col_p) {                                          \
      /* every KC block but the last one: C = acc or beta * C + acc, the same operations as below  \
       * without the per-row tests of the general case */                                          \
      _Pragma("GCC unroll 14") for (int i = 0; i < rows; i++) {                                    \
        float *ci = c + (size_t)i * ldc;                                                           \
        for (int v = 0; v < vecs; v++) {                                                           \
          const __mmask16 m = v + 1 == vecs ? last_mask : 0xFFFF;                                  \
          __m512 x = acc[i][v];                                                                    \
          if (add_c) x = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m, ci + 16 * v), x);          \
          _mm512_mask_storeu_ps(ci + 16 * v, m, x);                                                \
        }                                                                                          \
      }                                                                                            \
      return;                                                                                      \
    }                                                                                              \
    __m512 bias_col[NV];                                                                           \
    for (int v = 0; v < NV; v++) bias_col[v] = _mm512_setzero_ps();                                \
    if (bias_col_p)                                                                                \
      for (int v = 0; v < vecs; v++)                                                               \
        bias_col[v] =                                                                              \
            _mm512_maskz_loadu_ps(v + 1 == vecs ? last_mask : 0xFFFF, bias_col_p + 16 * v);        \
    _Pragma("GCC unroll 14") for (int i = 0; i < rows; i++) {                                      \
      float *ci = c + (size_t)i * ldc;                                                             \
      const __m512 bias_row = bias_row_p ? _mm512_set1_ps(bias_row_p[i]) : _mm512_setzero_ps();    \
      for (int v = 0; v < vecs; v++) {                                                             \
        const __mmask16 m = v + 1 == vecs ? last_mask : 0xFFFF;                                    \
        __m512 x = acc[i][v];                                                                      \
        if (scale) x = _mm512_mul_ps(alpha, x);                                                    \
        if (add_c) x = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m, ci + 16 * v), x);            \
        if (bias_row_p) x = _mm512_add_ps(x, bias_row);                                            \
        if (bias_col_p) x = _mm512_add_ps(x, bias_col[v]);                                         \
        if (clamp) x = _mm512_min_ps(hi, _mm512_max_ps(lo, x)); /* NaN in x survives both */       \
        _mm512_mask_storeu_ps(ci + 16 * v, m, x);                                                  \
      }                                                                                            \
    }                                                                                              \
  }

CK_GEMM_STORE_AVX512(ck_gemm_store_avx512, 2)
CK_GEMM_STORE_AVX512(ck_gemm_store4_avx512, 4)

#endif
