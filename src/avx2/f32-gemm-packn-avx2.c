/* Row-panel pack for the packed GEMM, AVX2: a row-major block of B becomes NR = 16 column panels.
 *
 * dst[q*kc*16 + k*16 + j] = src[k*rs + q*16 + j] for k < kc, q*16 + j < cols, and 0 for the
 * columns of the last panel past cols (w must be 16). Portable code copies a 64-byte row piece in
 * 4 SSE moves; here it is 2 ymm loads and 2 ymm stores. Rows go KB at a time (see pack_b_rows in
 * gemm.c): the KB x cols source slice stays in L1 while each panel gets its KB rows as one
 * contiguous run. The tail columns are loaded through a mask, so nothing past cols is read.
 */
#include <immintrin.h>

#include "../gemm.h"

void ck_f32_gemm_packn__avx2(size_t kc, size_t cols, size_t w, const float *src, size_t rs,
                             float *dst) {
  (void)w; /* 16 */
  enum { KB = 16 };
  const size_t full = cols / 16, rest = cols - full * 16;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rest), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rest - 8), lane);
  for (size_t k0 = 0; k0 < kc; k0 += KB, src += KB * rs) {
    const size_t kn = kc - k0 < KB ? kc - k0 : KB;
    float *d = dst + k0 * 16;
    for (size_t q = 0; q < full; q++, d += 16 * kc) {
      const float *s = src + q * 16;
      for (size_t k = 0; k < kn; k++) {
        const __m256 x0 = _mm256_loadu_ps(s + k * rs), x1 = _mm256_loadu_ps(s + k * rs + 8);
        _mm256_storeu_ps(d + k * 16, x0);
        _mm256_storeu_ps(d + k * 16 + 8, x1);
      }
    }
    if (rest) {
      const float *s = src + full * 16;
      for (size_t k = 0; k < kn; k++) {
        _mm256_storeu_ps(d + k * 16, _mm256_maskload_ps(s + k * rs, m0));
        _mm256_storeu_ps(d + k * 16 + 8, _mm256_maskload_ps(s + k * rs + 8, m1));
      }
    }
  }
}
