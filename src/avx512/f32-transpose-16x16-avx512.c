/* Layout transpose, AVX-512F: one 16 x 16 tile (contract in kernels.h). Sixteen row loads, the
 * in-register transpose the transposing GEMM packer uses too, sixteen whole-line stores, instead
 * of 256 scalar moves with strided stores. The streaming form stores whole aligned lines with
 * non-temporal stores: a conversion larger than the caches then writes each line once, without
 * first reading it (a read for ownership) and evicting what the next step needs. */
#include <immintrin.h>
#include <stdint.h>

#include "../kernels.h"
#include "transpose-avx512.h"

void ck_f32_transpose_16x16__avx512(const float *src, size_t lds, float *dst, size_t ldd) {
  __m512 r[16];
  for (size_t i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
  ck_transpose16_avx512(r);
  for (size_t i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, r[i]);
}

void ck_f32_transpose_16x16__avx512_stream(const float *src, size_t lds, float *dst, size_t ldd) {
  __m512 r[16];
  for (size_t i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
  ck_transpose16_avx512(r);
  if ((((uintptr_t)dst | (uintptr_t)(ldd * sizeof(float))) & 63) == 0)
    for (size_t i = 0; i < 16; i++) _mm512_stream_ps(dst + i * ldd, r[i]);
  else
    for (size_t i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, r[i]);
}

void ck_transpose_fence__avx512(void) {
  _mm_sfence();
}
