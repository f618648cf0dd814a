/* Layout transpose, AVX-512F: one 16 x 16 tile in registers (contract in kernels.h). Sixteen row
 * loads, four shuffle stages (32-bit pairs, 64-bit pairs, then 128-bit lanes twice), sixteen
 * whole-line stores, instead of 256 scalar moves with strided stores. */
#include <immintrin.h>

#include "../kernels.h"

void ck_f32_transpose_16x16__avx512(const float *src, size_t lds, float *dst, size_t ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)i * lds);
  /* per 128-bit lane: rows 2j, 2j+1 interleaved */
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  /* r[4q + m], lane L: rows 4q..4q+3 of column 4L + m */
  for (int q = 0; q < 4; q++) {
    const __m512 *v = t + 4 * q;
    r[4 * q + 0] = _mm512_shuffle_ps(v[0], v[2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * q + 1] = _mm512_shuffle_ps(v[0], v[2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * q + 2] = _mm512_shuffle_ps(v[1], v[3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * q + 3] = _mm512_shuffle_ps(v[1], v[3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int m = 0; m < 4; m++) {
    /* lanes (0, 2) and (1, 3) of rows 0-7 and of rows 8-15 */
    const __m512 x0 = _mm512_shuffle_f32x4(r[m], r[4 + m], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 x1 = _mm512_shuffle_f32x4(r[m], r[4 + m], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512 y0 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 y1 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], _MM_SHUFFLE(3, 1, 3, 1));
    /* column 4L + m gathers lane L of r[m], r[4+m], r[8+m], r[12+m] */
    _mm512_storeu_ps(dst + (size_t)(0 + m) * ldd,
                     _mm512_shuffle_f32x4(x0, y0, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(dst + (size_t)(4 + m) * ldd,
                     _mm512_shuffle_f32x4(x1, y1, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(dst + (size_t)(8 + m) * ldd,
                     _mm512_shuffle_f32x4(x0, y0, _MM_SHUFFLE(3, 1, 3, 1)));
    _mm512_storeu_ps(dst + (size_t)(12 + m) * ldd,
                     _mm512_shuffle_f32x4(x1, y1, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}
