/* Depthwise micro-kernels, AVX2+FMA, 8 channels per ymm block: single pass over 9 or 25 taps
 * (XNNPACK "up" style: for each pixel, every channel block sums all taps in one register), and a
 * multi-pass form for any tap count that sums up to 8 taps per pass and carries the partial sum
 * in the output. The 9-tap kernel has a second path for windows that share columns (as in the
 * AVX-512 kernel). All sum bias, then taps ascending, so they agree bit for bit. The channel
 * tail uses masked loads and stores: nothing is read or written past `channels`. */
#include <immintrin.h>
#include <stdint.h>

#include "igemm.h"

enum { CB = 8, PASS = 8 };

static inline __m256 clamp(__m256 v, __m256 vmin, __m256 vmax) {
  return _mm256_min_ps(vmax, _mm256_max_ps(vmin, v)); /* NaN stays NaN */
}

/* Lanes j < n set: a window of 8 into -1 x 8, 0 x 8. */
static inline __m256i lanes(size_t n) {
  static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1};
  return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - n));
}

/* One pixel, all channels, KS taps in one pass. */
static inline __attribute__((always_inline)) void pixel_single_pass(size_t KS, size_t channels,
                                                                    const float **r, const float *w,
                                                                    float *out, __m256 vmin,
                                                                    __m256 vmax) {
  size_t c = 0;
  for (; c + CB <= channels; c += CB, w += CB * (1 + KS)) {
    __m256 acc = _mm256_loadu_ps(w);
    for (size_t t = 0; t < KS; t++)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(r[t] + c), _mm256_loadu_ps(w + CB + t * CB), acc);
    _mm256_storeu_ps(out + c, clamp(acc, vmin, vmax));
  }
  if (c < channels) {
    const __m256i m = lanes(channels - c);
    __m256 acc = _mm256_loadu_ps(w);
    for (size_t t = 0; t < KS; t++)
      acc = _mm256_fmadd_ps(_mm256_maskload_ps(r[t] + c, m), _mm256_loadu_ps(w + CB + t * CB), acc);
    _mm256_maskstore_ps(out + c, m, clamp(acc, vmin, vmax));
  }
}

static inline __attribute__((always_inline)) void
single_pass(size_t KS, size_t channels, size_t pixels, const float **input, size_t input_stride,
            size_t input_offset, const float *zero, const float *weights, float *output,
            size_t output_stride, const ck_clamp_params *p) {
  const __m256 vmin = _mm256_set1_ps(p->min), vmax = _mm256_set1_ps(p->max);
  for (; pixels != 0; pixels--, input += input_stride, output += output_stride) {
    const float *r[25];
    for (size_t t = 0; t < KS; t++) r[t] = ck_rebase(input[t], input_offset, zero);
    pixel_single_pass(KS, channels, r, weights, output, vmin, vmax);
  }
}

/* The column path of the 9-tap kernel (see the AVX-512 kernel for the indexing): with
 * input_stride 3*S, pixel q reads columns S*q .. S*q+2 of 3 entries, so for PX pixels and one
 * channel block the 9 weights stay in registers and each column is loaded once for every pixel
 * that reads it. 9 weights, 4 accumulators and 3 inputs fill the 16 ymm registers. */
enum { COL_PX = 4, COL_MAX = (COL_PX - 1) * 2 + 3 };

static inline __attribute__((always_inline)) void
column_block(size_t S, size_t PX, int masked, __m256i m, const float **col, size_t c,
             const float *w, float *output, size_t output_stride, const ck_clamp_params *p) {
  const size_t ncol = (PX - 1) * S + 3;
  __m256 wt[9], acc[COL_PX];
#pragma GCC unroll 9
  for (size_t t = 0; t < 9; t++) wt[t] = _mm256_loadu_ps(w + CB + t * CB);
#pragma GCC unroll 4
  for (size_t q = 0; q < PX; q++) acc[q] = _mm256_loadu_ps(w);
#pragma GCC unroll 9
  for (size_t x = 0; x < ncol; x++) {
    __m256 v[3];
#pragma GCC unroll 3
    for (size_t i = 0; i < 3; i++)
      v[i] =
          masked ? _mm256_maskload_ps(col[x * 3 + i] + c, m) : _mm256_loadu_ps(col[x * 3 + i] + c);
#pragma GCC unroll 3
    for (size_t j = 0; j < 3; j++) {
      if (x < j || (x - j) % S != 0 || (x - j) / S >= PX) continue;
      const size_t q = (x - j) / S;
#pragma GCC unroll 3
      for (size_t i = 0; i < 3; i++) acc[q] = _mm256_fmadd_ps(v[i], wt[j * 3 + i], acc[q]);
    }
  }
  const __m256 vmin = _mm256_broadcast_ss(&p->min), vmax = _mm256_broadcast_ss(&p->max);
#pragma GCC unroll 4
  for (size_t q = 0; q < PX; q++) {
    const __m256 v = clamp(acc[q], vmin, vmax);
    if (masked)
      _mm256_maskstore_ps(output + q * output_stride + c, m, v);
    else
      _mm256_storeu_ps(output + q * output_stride + c, v);
  }
}

static inline __attribute__((always_inline)) void columns(size_t S, size_t PX, size_t channels,
                                                          const float **e, size_t input_offset,
                                                          const float *zero, const float *weights,
                                                          float *output, size_t output_stride,
                                                          const ck_clamp_params *p) {
  const size_t ncol = (PX - 1) * S + 3;
  const float *col[COL_MAX * 3];
  for (size_t i = 0; i < ncol * 3; i++) col[i] = ck_rebase(e[i], input_offset, zero);
  const float *w = weights;
  size_t c = 0;
  for (; c + CB <= channels; c += CB, w += CB * 10)
    column_block(S, PX, 0, lanes(CB), col, c, w, output, output_stride, p);
  if (c < channels)
    column_block(S, PX, 1, lanes(channels - c), col, c, w, output, output_stride, p);
}

static inline __attribute__((always_inline)) void
row_of_columns(size_t S, size_t channels, size_t pixels, const float **input, size_t input_offset,
               const float *zero, const float *weights, float *output, size_t output_stride,
               const ck_clamp_params *p) {
  for (; pixels >= 4; pixels -= 4, input += 4 * 3 * S, output += 4 * output_stride)
    columns(S, 4, channels, input, input_offset, zero, weights, output, output_stride, p);
  if (pixels >= 2) {
    columns(S, 2, channels, input, input_offset, zero, weights, output, output_stride, p);
    pixels -= 2, input += 2 * 3 * S, output += 2 * output_stride;
  }
  if (pixels >= 1)
    columns(S, 1, channels, input, input_offset, zero, weights, output, output_stride, p);
}

void ck_f32_dwconv_9p8c__avx2(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p) {
  (void)ks; /* 9 by contract */
  if (input_stride == 3)
    row_of_columns(1, channels, pixels, input, input_offset, zero, weights, output, output_stride,
                   p);
  else if (input_stride == 6)
    row_of_columns(2, channels, pixels, input, input_offset, zero, weights, output, output_stride,
                   p);
  else
    single_pass(9, channels, pixels, input, input_stride, input_offset, zero, weights, output,
                output_stride, p);
}

void ck_f32_dwconv_25p8c__avx2(size_t channels, size_t pixels, size_t ks, const float **input,
                               size_t input_stride, size_t input_offset, const float *zero,
                               const float *weights, float *output, size_t output_stride,
                               const ck_clamp_params *p) {
  (void)ks; /* 25 by contract */
  single_pass(25, channels, pixels, input, input_stride, input_offset, zero, weights, output,
              output_stride, p);
}

/* Passes of up to PASS taps; the first starts from the bias, the others from the partial sum in
 * the output, and the last clamps. */
void ck_f32_dwconv_mp8c__avx2(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p) {
  const __m256 vmin = _mm256_set1_ps(p->min), vmax = _mm256_set1_ps(p->max);
  for (; pixels != 0; pixels--, input += input_stride, output += output_stride) {
    for (size_t t0 = 0; t0 < ks; t0 += PASS) {
      const size_t tn = ks - t0 < PASS ? ks - t0 : PASS;
      const int first = t0 == 0, last = t0 + tn == ks;
      const float *r[PASS];
      for (size_t t = 0; t < tn; t++) r[t] = ck_rebase(input[t0 + t], input_offset, zero);
      const float *w = weights;
      for (size_t c = 0; c < channels; c += CB, w += CB * (1 + ks)) {
        const __m256i m = lanes(channels - c >= CB ? CB : channels - c);
        __m256 acc = first ? _mm256_loadu_ps(w) : _mm256_maskload_ps(output + c, m);
        for (size_t t = 0; t < tn; t++)
          acc = _mm256_fmadd_ps(_mm256_maskload_ps(r[t] + c, m),
                                _mm256_loadu_ps(w + CB + (t0 + t) * CB), acc);
        _mm256_maskstore_ps(output + c, m, last ? clamp(acc, vmin, vmax) : acc);
      }
    }
  }
}
