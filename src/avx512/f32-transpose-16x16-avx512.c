/* Layout transpose, AVX-512F: one 16 x 16 tile (contract in kernels.h). Sixteen row loads, the
 * in-register transpose the transposing GEMM packer uses too, sixteen whole-line stores, instead
 * of 256 scalar moves with strided stores. */
#include <immintrin.h>

#include "../kernels.h"
#include "transpose-avx512.h"

void ck_f32_transpose_16x16__avx512(const float *src, size_t lds, float *dst, size_t ldd) {
  __m512 r[16];
  for (size_t i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
  ck_transpose16_avx512(r);
  for (size_t i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, r[i]);
}
