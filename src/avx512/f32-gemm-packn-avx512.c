/* Row-panel pack for the packed GEMM, AVX-512F: a row-major block of B becomes NR = 32 column
 * panels.
 *
 * dst[q*kc*32 + k*32 + j] = src[k*rs + q*32 + j] for k < kc, q*32 + j < cols, and 0 for the
 * columns of the last panel past cols (w must be 32). Portable code copies a 128-byte row piece
 * in 8 SSE moves; here it is 2 zmm loads and 2 zmm stores, which matters because for the skinny
 * products of convolutions (m of a few tens) packing B is a sixth of the time. Rows go KB at a
 * time (see pack_b_rows in gemm.c): the KB x cols source slice stays in L1 while each panel gets
 * its KB rows as one contiguous run. The tail columns are loaded through a mask, so nothing past
 * cols is read.
 */
#include <immintrin.h>

#include "../gemm.h"

void ck_f32_gemm_packn__avx512(size_t kc, size_t cols, size_t w, const float *src, size_t rs,
                               float *dst) {
  (void)w; /* 32 */
  enum { KB = 16 };
  const size_t full = cols / 32, rest = cols - full * 32;
  const __mmask16 m0 = (__mmask16)(rest >= 16 ? 0xFFFFu : 0xFFFFu >> (16 - rest));
  const __mmask16 m1 = (__mmask16)(rest > 16 ? 0xFFFFu >> (32 - rest) : 0);
  for (size_t k0 = 0; k0 < kc; k0 += KB, src += KB * rs) {
    const size_t kn = kc - k0 < KB ? kc - k0 : KB;
    float *d = dst + k0 * 32;
    for (size_t q = 0; q < full; q++, d += 32 * kc) {
      const float *s = src + q * 32;
      for (size_t k = 0; k < kn; k++) {
        const __m512 x0 = _mm512_loadu_ps(s + k * rs), x1 = _mm512_loadu_ps(s + k * rs + 16);
        _mm512_storeu_ps(d + k * 32, x0);
        _mm512_storeu_ps(d + k * 32 + 16, x1);
      }
    }
    if (rest) {
      const float *s = src + full * 32;
      for (size_t k = 0; k < kn; k++) {
        _mm512_storeu_ps(d + k * 32, _mm512_maskz_loadu_ps(m0, s + k * rs));
        _mm512_storeu_ps(d + k * 32 + 16, _mm512_maskz_loadu_ps(m1, s + k * rs + 16));
      }
    }
  }
}
