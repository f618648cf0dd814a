/* Direct (unpacked) GEMM micro-kernel for AVX2 + FMA, MR = 6 x NR = 16: the packed kernel's tile
 * reading A and B where they are (see ck_gemm_direct_fn in kernels.h), for products too small or
 * too narrow to repay packing.
 *
 * The arithmetic is that of ck_f32_gemm_6x16__avx2 (ascending k from zero, one FMA per k, the
 * same epilogue), so both give the same bits. The last vector of a B row is read through a lane
 * mask, so nothing past column nr is read.
 */
#include <immintrin.h>

#include "../gemm.h"
#include "gemm-epilogue-avx2.h"

#define MR 6

static inline __attribute__((always_inline)) void
tile(const int rows, const int vecs, const int partial, size_t kc, const float *a, size_t lda,
     const float *b, size_t ldb, float *c, size_t ldc, const ck_gemm_epilogue *ep,
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
  /* a masked load costs an extra uop on AVX2: only the last vector of a partial row pays it */
#pragma GCC unroll 2
  for (size_t k = 0; k < kc; k++, b += ldb) {
    const __m256 b0 = vecs == 1 && partial ? _mm256_maskload_ps(b, last_mask) : _mm256_loadu_ps(b);
    const __m256 b1 =
        vecs == 2 ? (partial ? _mm256_maskload_ps(b + 8, last_mask) : _mm256_loadu_ps(b + 8)) : b0;
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++) {
      const __m256 ai = _mm256_broadcast_ss(a + (size_t)i * lda + k);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      if (vecs == 2) acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }

  ck_gemm_store_avx2(rows, vecs, acc, c, ldc, ep, last_mask);
}

void ck_f32_gemm_direct_6x16__avx2(size_t mr, size_t nr, size_t kc, const float *a, size_t lda,
                                   const float *b, size_t ldb, float *c, size_t ldc,
                                   const ck_gemm_epilogue *ep) {
  const int last = (int)((nr - 1) % 8 + 1); /* lanes of the last vector: 1..8 */
  const __m256i mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const int vecs = nr > 8 ? 2 : 1, partial = last < 8;
  switch (mr * 4 + (size_t)(vecs - 1) * 2 + (size_t)partial) {
  case 6 * 4 + 2 + 0:
    tile(6, 2, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 6 * 4 + 2 + 1:
    tile(6, 2, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 6 * 4 + 0 + 0:
    tile(6, 1, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 6 * 4 + 0 + 1:
    tile(6, 1, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 5 * 4 + 2 + 0:
    tile(5, 2, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 5 * 4 + 2 + 1:
    tile(5, 2, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 5 * 4 + 0 + 0:
    tile(5, 1, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 5 * 4 + 0 + 1:
    tile(5, 1, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 4 * 4 + 2 + 0:
    tile(4, 2, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 4 * 4 + 2 + 1:
    tile(4, 2, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 4 * 4 + 0 + 0:
    tile(4, 1, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 4 * 4 + 0 + 1:
    tile(4, 1, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 3 * 4 + 2 + 0:
    tile(3, 2, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 3 * 4 + 2 + 1:
    tile(3, 2, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 3 * 4 + 0 + 0:
    tile(3, 1, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 3 * 4 + 0 + 1:
    tile(3, 1, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 2 * 4 + 2 + 0:
    tile(2, 2, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 2 * 4 + 2 + 1:
    tile(2, 2, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 2 * 4 + 0 + 0:
    tile(2, 1, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 2 * 4 + 0 + 1:
    tile(2, 1, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 1 * 4 + 2 + 0:
    tile(1, 2, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 1 * 4 + 2 + 1:
    tile(1, 2, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 1 * 4 + 0 + 0:
    tile(1, 1, 0, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  case 1 * 4 + 0 + 1:
    tile(1, 1, 1, kc, a, lda, b, ldb, c, ldc, ep, mask);
    break;
  default:
    break;
  }
}
