/* Transposing pack for the packed GEMM, AVX2: rows of contiguous k become a k-major panel.
 *
 * dst[k*w + i] = src[i*rs + k] for i < h, k < kc, and 0 for h <= i < w. This is the packing of a
 * row-major A (w = MR) and of a transposed B (w = NR); done one element at a time it costs more
 * than the product for skinny shapes, so 8 x 8 blocks are transposed in registers. Loads past kc
 * are masked, so nothing outside the h rows of kc floats is read.
 */
#include <immintrin.h>

#include "../gemm.h"
#include "transpose-avx2.h"

void ck_f32_gemm_packt__avx2(size_t h, size_t w, size_t kc, const float *src, size_t rs,
                             float *dst) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (size_t g = 0; g < w; g += 8) {
    const size_t lanes = w - g < 8 ? w - g : 8;              /* columns of dst this group fills */
    const size_t live = h > g ? (h - g < 8 ? h - g : 8) : 0; /* rows of src it reads */
    const __m256i store = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lanes), lane);
    for (size_t k0 = 0; k0 < kc; k0 += 8) {
      const size_t kn = kc - k0 < 8 ? kc - k0 : 8;
      const __m256i load = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)kn), lane);
      __m256 r[8];
      for (size_t i = 0; i < 8; i++)
        r[i] = i < live ? _mm256_maskload_ps(src + (g + i) * rs + k0, load) : _mm256_setzero_ps();
      ck_transpose8_avx2(r);
      for (size_t k = 0; k < kn; k++) {
        if (lanes == 8)
          _mm256_storeu_ps(dst + (k0 + k) * w + g, r[k]);
        else
          _mm256_maskstore_ps(dst + (k0 + k) * w + g, store, r[k]);
      }
    }
  }
}
