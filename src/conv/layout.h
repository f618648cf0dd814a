/* Layout conversion between NCHW and NHWC, for algorithms whose native layout differs from the
 * caller's. Parallel over images and rows; each element is written by one thread. */
#ifndef CK_CONV_LAYOUT_H
#define CK_CONV_LAYOUT_H

#include <stddef.h>

/* dst[n][h*w][c] = src[n][c][h*w] for n < batch. */
void ck_nchw_to_nhwc(const float *src, float *dst, size_t batch, size_t channels, size_t pixels,
                     int threads);
/* dst[n][c][h*w] = src[n][h*w][c] for n < batch. */
void ck_nhwc_to_nchw(const float *src, float *dst, size_t batch, size_t channels, size_t pixels,
                     int threads);

#endif
