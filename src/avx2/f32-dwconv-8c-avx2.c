/* Depthwise micro-kernels, AVX2+FMA, 8 channels per ymm block: single pass over 9 or 25 taps
 * (XNNPACK "up" style: for each pixel, every channel block sums all taps in one register), and a
 * multi-pass form for any tap count that sums up to 8 taps per pass and carries the partial sum
 * in the output. All sum bias, then taps ascending, so they agree bit for bit. The channel tail
 * uses masked loads and stores: nothing is read or written past `channels`. */
#include <immintrin.h>
#include <stdint.h>

#include "igemm.h"

enum { CB = 8, PASS = 8 };

static inline const float *rebase(const float *ptr, size_t offset, const float *zero) {
  return ptr == zero ? zero : (const float *)((uintptr_t)ptr + offset);
}

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
    for (size_t t = 0; t < KS; t++) r[t] = rebase(input[t], input_offset, zero);
    pixel_single_pass(KS, channels, r, weights, output, vmin, vmax);
  }
}

void ck_f32_dwconv_9p8c__avx2(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p) {
  (void)ks; /* 9 by contract */
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
      for (size_t t = 0; t < tn; t++) r[t] = rebase(input[t0 + t], input_offset, zero);
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
