/* Layout transpose, AVX2: one 8 x 8 tile (contract in kernels.h). Eight row loads, the
 * in-register transpose the transposing GEMM packer uses too, eight row stores, instead of 64
 * scalar moves with strided stores. */
#include <immintrin.h>

#include "../kernels.h"
#include "transpose-avx2.h"

void ck_f32_transpose_8x8__avx2(const float *src, size_t lds, float *dst, size_t ldd) {
  __m256 r[8];
  for (size_t i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
  ck_transpose8_avx2(r);
  for (size_t i = 0; i < 8; i++) _mm256_storeu_ps(dst + i * ldd, r[i]);
}
