/* Transposing pack for the packed GEMM, AVX-512F: rows of contiguous k become a k-major panel.
 *
 * dst[k*w + i] = src[i*rs + k] for i < h, k < kc, and 0 for h <= i < w (w <= 64). This is the
 * packing of a row-major A (w = MR) and of a transposed B (w = NR); done one element at a time it
 * costs more than the product for skinny shapes, so 16 x 16 blocks are transposed in registers.
 * Loads past kc are masked, so nothing outside the h rows of kc floats is read.
 */
#include <immintrin.h>

#include "../gemm.h"
#include "transpose-avx512.h"

void ck_f32_gemm_packt__avx512(size_t h, size_t w, size_t kc, const float *src, size_t rs,
                               float *dst) {
  for (size_t g = 0; g < w; g += 16) {
    const size_t lanes = w - g < 16 ? w - g : 16;              /* columns of dst this group fills */
    const size_t live = h > g ? (h - g < 16 ? h - g : 16) : 0; /* rows of src it reads */
    const __mmask16 store = (__mmask16)(0xFFFFu >> (16 - lanes));
    for (size_t k0 = 0; k0 < kc; k0 += 16) {
      const size_t kn = kc - k0 < 16 ? kc - k0 : 16;
      const __mmask16 load = (__mmask16)(0xFFFFu >> (16 - kn));
      __m512 r[16];
      for (size_t i = 0; i < 16; i++)
        r[i] =
            i < live ? _mm512_maskz_loadu_ps(load, src + (g + i) * rs + k0) : _mm512_setzero_ps();
      ck_transpose16_avx512(r);
      for (size_t k = 0; k < kn; k++) _mm512_mask_storeu_ps(dst + (k0 + k) * w + g, store, r[k]);
    }
  }
}
