/* Depthwise micro-kernels for AArch64 NEON in blocks of 8 channels (two q registers): 9 taps
 * (3x3) and 25 taps (5x5) in one pass, any tap count in passes of up to 8 taps.
 *
 * Per pixel, the tap pointers are resolved once (zero row or position + offset), then every
 * 8-channel block runs bias + sum over taps of input * weight as FMAs in ascending tap order.
 * The multi-pass kernel keeps the partial sum of a block in the output between passes (a float
 * stored and reloaded unchanged), so all three kernels give the same bits. Channel tails (1..7)
 * use lane loads and stores: no input row, output pixel or bias is read or written past its
 * `channels` floats (the packed weights are full blocks by contract).
 */
#include <stdint.h>

#include "neon-kernels.h"

enum { CB = 8, MP_TAPS = 8 };

/* One pass over taps [t0, t0 + n) of one pixel, every channel. `in` holds the n resolved tap
 * pointers. first: start from the bias (else from the partial sum in out); last: clamp. */
static inline __attribute__((always_inline)) void pass(size_t channels, size_t ks, size_t t0,
                                                       size_t n, const float *const *in,
                                                       const float *weights, float *out, int first,
                                                       int last, float32x4_t lo, float32x4_t hi) {
  const size_t block = CB * (1 + ks); /* floats of one packed channel block */
  size_t c = 0;
  for (; c + CB <= channels; c += CB, weights += block) {
    float32x4_t acc0, acc1;
    if (first) {
      acc0 = vld1q_f32(weights);
      acc1 = vld1q_f32(weights + 4);
    } else {
      acc0 = vld1q_f32(out + c);
      acc1 = vld1q_f32(out + c + 4);
    }
    const float *w = weights + CB + t0 * CB;
    for (size_t t = 0; t < n; t++, w += CB) {
      acc0 = vfmaq_f32(acc0, vld1q_f32(in[t] + c), vld1q_f32(w));
      acc1 = vfmaq_f32(acc1, vld1q_f32(in[t] + c + 4), vld1q_f32(w + 4));
    }
    if (last) {
      acc0 = ck_neon_clamp(acc0, lo, hi);
      acc1 = ck_neon_clamp(acc1, lo, hi);
    }
    vst1q_f32(out + c, acc0);
    vst1q_f32(out + c + 4, acc1);
  }
  if (c < channels) { /* 1..7 channels: the same operations on partial vectors */
    const size_t rest = channels - c, n0 = rest < 4 ? rest : 4, n1 = rest - n0;
    float32x4_t acc0, acc1 = vdupq_n_f32(0.0f);
    if (first) {
      acc0 = vld1q_f32(weights);
      acc1 = vld1q_f32(weights + 4);
    } else {
      acc0 = ck_neon_load_n(out + c, n0);
      if (n1) acc1 = ck_neon_load_n(out + c + 4, n1);
    }
    const float *w = weights + CB + t0 * CB;
    for (size_t t = 0; t < n; t++, w += CB) {
      acc0 = vfmaq_f32(acc0, ck_neon_load_n(in[t] + c, n0), vld1q_f32(w));
      if (n1) acc1 = vfmaq_f32(acc1, ck_neon_load_n(in[t] + c + 4, n1), vld1q_f32(w + 4));
    }
    if (last) {
      acc0 = ck_neon_clamp(acc0, lo, hi);
      acc1 = ck_neon_clamp(acc1, lo, hi);
    }
    ck_neon_store_n(out + c, acc0, n0);
    if (n1) ck_neon_store_n(out + c + 4, acc1, n1);
  }
}

/* Single pass over a fixed tap count KS (9 or 25): the tap loop unrolls. */
static inline __attribute__((always_inline)) void
single_pass(const size_t KS, size_t channels, size_t pixels, const float **input,
            size_t input_stride, size_t input_offset, const float *zero, const float *weights,
            float *output, size_t output_stride, const ck_clamp_params *p) {
  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max);
  const float *in[25];
  for (size_t px = 0; px < pixels; px++, input += input_stride, output += output_stride) {
    for (size_t t = 0; t < KS; t++) in[t] = ck_rebase(input[t], input_offset, zero);
    pass(channels, KS, 0, KS, in, weights, output, 1, 1, lo, hi);
  }
}

void ck_f32_dwconv_9p8c__neon(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p) {
  (void)ks; /* 9 by contract */
  single_pass(9, channels, pixels, input, input_stride, input_offset, zero, weights, output,
              output_stride, p);
}

void ck_f32_dwconv_25p8c__neon(size_t channels, size_t pixels, size_t ks, const float **input,
                               size_t input_stride, size_t input_offset, const float *zero,
                               const float *weights, float *output, size_t output_stride,
                               const ck_clamp_params *p) {
  (void)ks; /* 25 by contract */
  single_pass(25, channels, pixels, input, input_stride, input_offset, zero, weights, output,
              output_stride, p);
}

void ck_f32_dwconv_mp8c__neon(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p) {
  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max);
  const float *in[MP_TAPS];
  for (size_t px = 0; px < pixels; px++, input += input_stride, output += output_stride) {
    for (size_t t0 = 0; t0 < ks; t0 += MP_TAPS) {
      const size_t n = ks - t0 < MP_TAPS ? ks - t0 : MP_TAPS;
      for (size_t t = 0; t < n; t++) in[t] = ck_rebase(input[t0 + t], input_offset, zero);
      pass(channels, ks, t0, n, in, weights, output, t0 == 0, t0 + n == ks, lo, hi);
    }
  }
}
