/* Layout transpose, AVX2: one 8 x 8 tile in registers (contract in kernels.h). Eight row loads,
 * three shuffle stages (32-bit pairs, 64-bit pairs, 128-bit halves), eight row stores, instead of
 * 64 scalar moves with strided stores. */
#include <immintrin.h>

#include "../kernels.h"

void ck_f32_transpose_8x8__avx2(const float *src, size_t lds, float *dst, size_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (size_t)i * lds);
  /* t[2j], t[2j+1]: rows 2j and 2j+1 interleaved (per 128-bit half: a0 b0 a1 b1 / a2 b2 a3 b3) */
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  /* r[4h + m]: rows 4h..4h+3 of columns m (low half) and m + 4 (high half) */
  for (int h = 0; h < 2; h++) {
    __m256 *u = r + 4 * h, *v = t + 4 * h;
    u[0] = _mm256_shuffle_ps(v[0], v[2], _MM_SHUFFLE(1, 0, 1, 0));
    u[1] = _mm256_shuffle_ps(v[0], v[2], _MM_SHUFFLE(3, 2, 3, 2));
    u[2] = _mm256_shuffle_ps(v[1], v[3], _MM_SHUFFLE(1, 0, 1, 0));
    u[3] = _mm256_shuffle_ps(v[1], v[3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int m = 0; m < 4; m++) {
    _mm256_storeu_ps(dst + (size_t)m * ldd, _mm256_permute2f128_ps(r[m], r[4 + m], 0x20));
    _mm256_storeu_ps(dst + (size_t)(m + 4) * ldd, _mm256_permute2f128_ps(r[m], r[4 + m], 0x31));
  }
}
