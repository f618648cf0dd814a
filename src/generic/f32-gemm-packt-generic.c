/* Transposing pack for the packed GEMM, portable C (the reference of the ISA versions).
 *
 * dst[k*w + i] = src[i*rs + k] for i < h, k < kc, and 0 for h <= i < w: rows of contiguous k
 * (a row-major A with w = MR, or a transposed B with w = NR) become a k-major panel. */
#include "../gemm.h"

void ck_f32_gemm_packt__generic(size_t h, size_t w, size_t kc, const float *src, size_t rs,
                                float *dst) {
  for (size_t i = 0; i < h; i++)
    for (size_t k = 0; k < kc; k++) dst[k * w + i] = src[i * rs + k];
  for (size_t i = h; i < w; i++)
    for (size_t k = 0; k < kc; k++) dst[k * w + i] = 0.0f;
}
