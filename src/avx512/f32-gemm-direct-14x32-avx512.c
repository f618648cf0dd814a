/* Direct (unpacked) GEMM micro-kernel for AVX-512F, MR = 14 x NR = 32: the packed kernel's tile
 * reading A and B where they are, for problems so small that packing them would cost more than
 * multiplying them (see ck_gemm_direct_fn in kernels.h).
 *
 * The arithmetic is that of ck_f32_gemm_14x32__avx512 (ascending k from zero, one FMA per k, the
 * same epilogue), so for a problem within one KC block both give the same bits. The last vector
 * of a B row is read through a lane mask, so nothing past column nr is read.
 */
#include <immintrin.h>

#include "../gemm.h"
#include "gemm-epilogue-avx512.h"

#define MR 14

static inline __attribute__((always_inline)) void
tile(const int rows, const int vecs, size_t kc, const float *a, size_t lda, const float *b,
     size_t ldb, float *c, size_t ldc, const ck_gemm_epilogue *ep, __mmask16 last_mask) {
  __m512 acc[MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < rows; i++) {
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
#pragma GCC unroll 14
  for (int i = 0; i < rows; i++) _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
  const __mmask16 m0 = vecs == 1 ? last_mask : 0xFFFF;
  /* Rows in groups of three: one moving pointer per group and the row distance L, so row 3g + r
   * is at q[g] + r*L, an address mode (base + index * scale) instead of a register per row */
  const size_t L = lda * sizeof(float);
  const char *q[(MR + 2) / 3];
#pragma GCC unroll 5
  for (int g = 0; g < (rows + 2) / 3; g++) q[g] = (const char *)(a + (size_t)(3 * g) * lda);
#pragma GCC unroll 2
  for (size_t k = 0; k < kc; k++, b += ldb) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
    const __m512 b1 = vecs == 2 ? _mm512_maskz_loadu_ps(last_mask, b + 16) : b0;
#pragma GCC unroll 14
    for (int i = 0; i < rows; i++) {
      const __m512 ai = _mm512_set1_ps(*(const float *)(q[i / 3] + (size_t)(i % 3) * L));
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      if (vecs == 2) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
#pragma GCC unroll 5
    for (int g = 0; g < (rows + 2) / 3; g++) q[g] += sizeof(float);
  }

  ck_gemm_store_avx512(rows, vecs, acc, c, ldc, ep, last_mask);
}

void ck_f32_gemm_direct_14x32__avx512(size_t mr, size_t nr, size_t kc, const float *a, size_t lda,
                                      const float *b, size_t ldb, float *c, size_t ldc,
                                      const ck_gemm_epilogue *ep) {
  const size_t last = (nr - 1) % 16 + 1; /* lanes of the last vector: 1..16 */
  const __mmask16 mask = (__mmask16)(0xFFFFu >> (16 - last));
  const int two = nr > 16;
  switch (mr) {
  case 14:
    two ? tile(14, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(14, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 13:
    two ? tile(13, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(13, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 12:
    two ? tile(12, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(12, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 11:
    two ? tile(11, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(11, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 10:
    two ? tile(10, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(10, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 9:
    two ? tile(9, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(9, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 8:
    two ? tile(8, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(8, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 7:
    two ? tile(7, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(7, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 6:
    two ? tile(6, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(6, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 5:
    two ? tile(5, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(5, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 4:
    two ? tile(4, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(4, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 3:
    two ? tile(3, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(3, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 2:
    two ? tile(2, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(2, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  default:
    two ? tile(1, 2, kc, a, lda, b, ldb, c, ldc, ep, mask)
        : tile(1, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  }
}
