/* Transposing pack for the packed GEMM, AVX-512F: rows of contiguous k become a k-major panel.
 *
 * dst[k*w + i] = src[i*rs + k] for i < h, k < kc, and 0 for h <= i < w (w <= 64). This is the
 * packing of a row-major A (w = MR) and of a transposed B (w = NR); done one element at a time it
 * costs more than the product for skinny shapes, so 16 x 16 blocks are transposed in registers.
 * Loads past kc are masked, so nothing outside the h rows of kc floats is read.
 */
#include <immintrin.h>

#include "../gemm.h"

/* Transposes r[0..15] (row i = 16 floats) in place: afterwards r[k] holds column k. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
  }
}

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
      transpose16(r);
      for (size_t k = 0; k < kn; k++) _mm512_mask_storeu_ps(dst + (k0 + k) * w + g, store, r[k]);
    }
  }
}
