/* Layout transpose, portable C: one 8 x 8 tile (contract in kernels.h). The reference for the
 * vector kernels, and the kernel of ISAs without one. */
#include "../kernels.h"

void ck_f32_transpose_8x8__generic(const float *src, size_t lds, float *dst, size_t ldd) {
  for (size_t r = 0; r < 8; r++)
    for (size_t c = 0; c < 8; c++) dst[c * ldd + r] = src[r * lds + c];
}
