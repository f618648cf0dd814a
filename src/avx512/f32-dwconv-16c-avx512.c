/* Depthwise micro-kernels, AVX-512F, 16 channels per zmm block: single pass over 9 or 25 taps
 * (XNNPACK "up" style: for each pixel, every channel block sums all taps in one register), and a
 * multi-pass form for any tap count that sums up to 8 taps per pass and carries the partial sum
 * in the output. The 9-tap kernel has a second path for windows that share columns (below).
 * All sum bias, then taps ascending, so they agree bit for bit. The channel tail uses masked
 * loads and stores: nothing is read or written past `channels`. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "igemm.h"

enum { CB = 16, PASS = 8 };

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
    for (size_t t = 0; t < KS; t++) r[t] = ck_rebase(input[t], input_offset, zero);
    pixel_single_pass(KS, channels, r, weights, output, vmin, vmax);
  }
}

/* The column path of the 9-tap kernel. With input_stride 3*S, the contract's indexing makes
 * entries 3x..3x+2 a "column" and gives pixel q the columns S*q, S*q+1, S*q+2 (taps 3j..3j+2 of
 * column S*q+j): neighbouring pixels share columns (an input row at stride S). So for PX pixels
 * and one channel block, the 9 weights stay in registers, each column is loaded once and feeds
 * every pixel that uses it: per pixel 3*S loads for 9 FMAs, instead of 9 loads, 9 weight loads
 * and 9 rebased pointers. Each output still sums bias then taps 0..8 in order. */
enum { COL_PX = 8, COL_MAX = (COL_PX - 1) * 2 + 3 };

static inline __attribute__((always_inline)) void
columns(int CL, size_t S, size_t PX, size_t channels, const float **e, size_t input_offset,
        const float *zero, const float *weights, float *output, size_t output_stride, __m512 vmin,
        __m512 vmax) {
  const size_t ncol = (PX - 1) * S + 3;
  const float *col[COL_MAX * 3];
  for (size_t i = 0; i < ncol * 3; i++) col[i] = ck_rebase(e[i], input_offset, zero);
  const float *w = weights;
  for (size_t c = 0; c < channels; c += CB, w += CB * 10) {
    const __mmask16 m = channels - c >= CB ? 0xffff : (__mmask16)((1u << (channels - c)) - 1);
    __m512 wt[9], acc[COL_PX];
#pragma GCC unroll 9
    for (size_t t = 0; t < 9; t++) wt[t] = _mm512_loadu_ps(w + CB + t * CB);
#pragma GCC unroll 8
    for (size_t q = 0; q < PX; q++) acc[q] = _mm512_loadu_ps(w);
#pragma GCC unroll 17
    for (size_t x = 0; x < ncol; x++) {
      __m512 v[3];
#pragma GCC unroll 3
      for (size_t i = 0; i < 3; i++) v[i] = _mm512_maskz_loadu_ps(m, col[x * 3 + i] + c);
#pragma GCC unroll 3
      for (size_t j = 0; j < 3; j++) {
        if (x < j || (x - j) % S != 0 || (x - j) / S >= PX) continue;
        const size_t q = (x - j) / S;
#pragma GCC unroll 3
        for (size_t i = 0; i < 3; i++) acc[q] = _mm512_fmadd_ps(v[i], wt[j * 3 + i], acc[q]);
      }
    }
#pragma GCC unroll 8
    for (size_t q = 0; q < PX; q++)
      _mm512_mask_storeu_ps(output + q * output_stride + c, m,
                            CL ? clamp(acc[q], vmin, vmax) : acc[q]);
  }
}

static inline __attribute__((always_inline)) void
row_of_columns(int CL, size_t S, size_t channels, size_t pixels, const float **input,
               size_t input_offset, const float *zero, const float *weights, float *output,
               size_t output_stride, __m512 vmin, __m512 vmax) {
  for (; pixels >= 8; pixels -= 8, input += 8 * 3 * S, output += 8 * output_stride)
    columns(CL, S, 8, channels, input, input_offset, zero, weights, output, output_stride, vmin,
            vmax);
  if (pixels >= 4) {
    columns(CL, S, 4, channels, input, input_offset, zero, weights, output, output_stride, vmin,
            vmax);
    pixels -= 4, input += 4 * 3 * S, output += 4 * output_stride;
  }
  if (pixels >= 2) {
    columns(CL, S, 2, channels, input, input_offset, zero, weights, output, output_stride, vmin,
            vmax);
    pixels -= 2, input += 2 * 3 * S, output += 2 * output_stride;
  }
  if (pixels >= 1)
    columns(CL, S, 1, channels, input, input_offset, zero, weights, output, output_stride, vmin,
            vmax);
}

void ck_f32_dwconv_9p16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p) {
  (void)ks; /* 9 by contract */
  const __m512 vmin = _mm512_set1_ps(p->min), vmax = _mm512_set1_ps(p->max);
  /* Unbounded clamp is the identity (NaN included): skip its two operations per vector. */
  const int cl = !(p->min == -INFINITY && p->max == INFINITY);
  if (input_stride == 3 && cl)
    row_of_columns(1, 1, channels, pixels, input, input_offset, zero, weights, output,
                   output_stride, vmin, vmax);
  else if (input_stride == 3)
    row_of_columns(0, 1, channels, pixels, input, input_offset, zero, weights, output,
                   output_stride, vmin, vmax);
  else if (input_stride == 6 && cl)
    row_of_columns(1, 2, channels, pixels, input, input_offset, zero, weights, output,
                   output_stride, vmin, vmax);
  else if (input_stride == 6)
    row_of_columns(0, 2, channels, pixels, input, input_offset, zero, weights, output,
                   output_stride, vmin, vmax);
  else
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
      for (size_t t = 0; t < tn; t++) r[t] = ck_rebase(input[t0 + t], input_offset, zero);
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
