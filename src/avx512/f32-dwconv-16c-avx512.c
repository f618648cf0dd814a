/* Depthwise micro-kernels, AVX-512F, 16 channels per zmm block: single pass over 9 or 25 taps
 * (XNNPACK "up" style: for each pixel, every channel block sums all taps in one register), and a
 * multi-pass form for any tap count that sums up to 8 taps per pass and carries the partial sum
 * in the output. All sum bias, then taps ascending, so they agree bit for bit. The channel tail
 * uses masked loads and stores: nothing is read or written past `channels`. */
#include <immintrin.h>
#include <stdint.h>

#include "igemm.h"

enum { CB = 16, PASS = 8 };

static inline const float *rebase(const float *ptr, size_t offset, const float *zero) {
  return ptr == zero ? zero : (const float *)((uintptr_t)ptr + offset);
}

static inline __m512 clamp(__m512 v, __m512 vmin, __m512 vmax) {
  return _mm512_min_ps(vmax, _mm512_max_ps(vmin, v)); /* NaN stays NaN */
}

/* One pixel, all channels, KS taps in one pass. */
static inline __attribute__((always_inline)) void pixel_single_pass(size_t KS, size_t channels,
                                                                    const float **r, const float *w,
                                                                    float *out, __m512 vmin,
                                                                    __m512 vmax) {
  size_t c = 0;
  for (; c + CB <= channels; c += CB, w += CB * (1 + KS)) {
    __m512 acc = _mm512_loadu_ps(w);
    for (size_t t = 0; t < KS; t++)
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(r[t] + c), _mm512_loadu_ps(w + CB + t * CB), acc);
    _mm512_storeu_ps(out + c, clamp(acc, vmin, vmax));
  }
  if (c < channels) {
    const __mmask16 m = (__mmask16)((1u << (channels - c)) - 1);
    __m512 acc = _mm512_loadu_ps(w);
    for (size_t t = 0; t < KS; t++)
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r[t] + c), _mm512_loadu_ps(w + CB + t * CB),
                            acc);
    _mm512_mask_storeu_ps(out + c, m, clamp(acc, vmin, vmax));
  }
}

static inline __attribute__((always_inline)) void
single_pass(size_t KS, size_t channels, size_t pixels, const float **input, size_t input_stride,
            size_t input_offset, const float *zero, const float *weights, float *output,
            size_t output_stride, const ck_clamp_params *p) {
  const __m512 vmin = _mm512_set1_ps(p->min), vmax = _mm512_set1_ps(p->max);
  for (; pixels != 0; pixels--, input += input_stride, output += output_stride) {
    const float *r[25];
    for (size_t t = 0; t < KS; t++) r[t] = rebase(input[t], input_offset, zero);
    pixel_single_pass(KS, channels, r, weights, output, vmin, vmax);
  }
}

void ck_f32_dwconv_9p16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p) {
  (void)ks; /* 9 by contract */
  single_pass(9, channels, pixels, input, input_stride, input_offset, zero, weights, output,
              output_stride, p);
}

void ck_f32_dwconv_25p16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                  size_t input_stride, size_t input_offset, const float *zero,
                                  const float *weights, float *output, size_t output_stride,
                                  const ck_clamp_params *p) {
  (void)ks; /* 25 by contract */
  single_pass(25, channels, pixels, input, input_stride, input_offset, zero, weights, output,
              output_stride, p);
}

/* Passes of up to PASS taps; the first starts from the bias, the others from the partial sum in
 * the output, and the last clamps. */
void ck_f32_dwconv_mp16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p) {
  const __m512 vmin = _mm512_set1_ps(p->min), vmax = _mm512_set1_ps(p->max);
  for (; pixels != 0; pixels--, input += input_stride, output += output_stride) {
    for (size_t t0 = 0; t0 < ks; t0 += PASS) {
      const size_t tn = ks - t0 < PASS ? ks - t0 : PASS;
      const int first = t0 == 0, last = t0 + tn == ks;
      const float *r[PASS];
      for (size_t t = 0; t < tn; t++) r[t] = rebase(input[t0 + t], input_offset, zero);
      const float *w = weights;
      size_t c = 0;
      for (; c < channels; c += CB, w += CB * (1 + ks)) {
        const __mmask16 m = channels - c >= CB ? 0xffff : (__mmask16)((1u << (channels - c)) - 1);
        __m512 acc = first ? _mm512_loadu_ps(w) : _mm512_maskz_loadu_ps(m, output + c);
        for (size_t t = 0; t < tn; t++)
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r[t] + c),
                                _mm512_loadu_ps(w + CB + (t0 + t) * CB), acc);
        _mm512_mask_storeu_ps(output + c, m, last ? clamp(acc, vmin, vmax) : acc);
      }
    }
  }
}
