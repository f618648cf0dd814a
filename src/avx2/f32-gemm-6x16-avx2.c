/* Packed-GEMM micro-kernel for AVX2 + FMA: MR = 6 rows x NR = 16 columns (two ymm per row).
 *
 * 12 accumulators, two B vectors and one A broadcast fit the 16 ymm registers; 12 independent
 * FMA chains cover the FMA latency (4) times the two FMA ports.
 *
 * Edge tiles use the same code specialised at compile time for the rows (1..6) and vectors (1 or
 * 2) they need; the last vector is stored (and C read) through a lane mask, and nothing outside
 * the mr x nr tile or the kc*MR / kc*NR panels is read.
 */
#include <immintrin.h>

#include "../gemm.h"
#include "gemm-epilogue-avx2.h"

#define MR 6
#define NR 16

static inline __attribute__((always_inline)) void tile(const int rows, const int vecs, size_t kc,
                                                       const float *a, const float *b, float *c,
                                                       size_t ldc, const ck_gemm_epilogue *ep,
                                                       __m256i last_mask) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < rows; i++) {
    acc[i][0] = _mm256_setzero_ps();
    acc[i][1] = _mm256_setzero_ps();
  }
#pragma GCC unroll 6
  for (int i = 0; i < rows; i++) {
    _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    if (vecs == 2) _mm_prefetch((const char *)(c + (size_t)i * ldc + 15), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (size_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = vecs == 2 ? _mm256_loadu_ps(b + 8) : b0;
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      if (vecs == 2) acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }

  ck_gemm_store_avx2(rows, vecs, acc, c, ldc, ep, last_mask);
}

void ck_f32_gemm_6x16__avx2(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                            float *c, size_t ldc, const ck_gemm_epilogue *ep) {
  const int last = (int)((nr - 1) % 8 + 1); /* lanes of the last vector: 1..8 */
  const __m256i mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const int two = nr > 8;
  switch (mr) {
  case 6:
    two ? tile(6, 2, kc, a, b, c, ldc, ep, mask) : tile(6, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 5:
    two ? tile(5, 2, kc, a, b, c, ldc, ep, mask) : tile(5, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 4:
    two ? tile(4, 2, kc, a, b, c, ldc, ep, mask) : tile(4, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 3:
    two ? tile(3, 2, kc, a, b, c, ldc, ep, mask) : tile(3, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 2:
    two ? tile(2, 2, kc, a, b, c, ldc, ep, mask) : tile(2, 1, kc, a, b, c, ldc, ep, mask);
    break;
  default:
    two ? tile(1, 2, kc, a, b, c, ldc, ep, mask) : tile(1, 1, kc, a, b, c, ldc, ep, mask);
    break;
  }
}
