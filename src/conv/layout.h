/* Layout conversion between NCHW and NHWC, for algorithms whose native layout differs from the
 * caller's. Parallel over images and bands of rows; each element is written by one thread. The
 * full tiles go through the ISA's transpose kernel (k->transpose). */
#ifndef CK_CONV_LAYOUT_H
#define CK_CONV_LAYOUT_H

#include <stddef.h>

#include "../kernels.h"

/* dst[n][h*w][c] = src[n][c][h*w] for n < batch. */
void ck_nchw_to_nhwc(const ck_kernels *k, const float *src, float *dst, size_t batch,
                     size_t channels, size_t pixels, int threads);
/* dst[n][c][h*w] = src[n][h*w][c] for n < batch. */
void ck_nhwc_to_nchw(const ck_kernels *k, const float *src, float *dst, size_t batch,
                     size_t channels, size_t pixels, int threads);

#endif
