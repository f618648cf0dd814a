/* Row-panel pack for the packed GEMM, portable C (the reference of the ISA versions).
 *
 * dst[q*kc*w + k*w + j] = src[k*rs + q*w + j] for k < kc, q*w + j < cols, and 0 for the columns
 * of the last panel past cols: a row-major block of B becomes w-column panels (w = NR). */
#include "../gemm.h"

void ck_f32_gemm_packn__generic(size_t kc, size_t cols, size_t w, const float *src, size_t rs,
                                float *dst) {
  for (size_t j0 = 0; j0 < cols; j0 += w, dst += kc * w)
    for (size_t k = 0; k < kc; k++)
      for (size_t j = 0; j < w; j++) dst[k * w + j] = j0 + j < cols ? src[k * rs + j0 + j] : 0.0f;
}
