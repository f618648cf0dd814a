/*
 * The NEON (AArch64 Advanced SIMD) micro-kernels of every family, and the partial-vector loads
 * and stores their edges share. Contracts: kernels.h. Built only for aarch64 (CMake globs
 * the src/neon sources there), where Advanced SIMD and FMA are part of the base ISA.
 */
#ifndef CK_NEON_KERNELS_H
#define CK_NEON_KERNELS_H

#include <stddef.h>

#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

/* The first n (1..4) floats of p in lanes 0..n-1, zero above: nothing past p[n-1] is read. */
static inline float32x4_t ck_neon_load_n(const float *p, size_t n) {
  if (n >= 4) return vld1q_f32(p);
  float32x4_t v = vdupq_n_f32(0.0f);
  if (n >= 2) {
    v = vcombine_f32(vld1_f32(p), vget_high_f32(v));
    if (n == 3) v = vld1q_lane_f32(p + 2, v, 2);
  } else {
    v = vld1q_lane_f32(p, v, 0);
  }
  return v;
}

/* Stores lanes 0..n-1 (n = 1..4) of v at p, nothing past p[n-1]. */
static inline void ck_neon_store_n(float *p, float32x4_t v, size_t n) {
  if (n >= 4) {
    vst1q_f32(p, v);
  } else if (n >= 2) {
    vst1_f32(p, vget_low_f32(v));
    if (n == 3) vst1q_lane_f32(p + 2, v, 2);
  } else {
    vst1q_lane_f32(p, v, 0);
  }
}

/* min(max(v, lo), hi) keeping NaN: FMAX and FMIN return NaN when an operand is NaN (unlike
 * FMAXNM/FMINNM), as the generic kernels and x86 max_ps/min_ps in their operand order do. */
static inline float32x4_t ck_neon_clamp(float32x4_t v, float32x4_t lo, float32x4_t hi) {
  return vminq_f32(vmaxq_f32(v, lo), hi);
}
#endif

void ck_f32_gemm_8x12__neon(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                            float *c, size_t ldc, const ck_gemm_epilogue *ep);

void ck_f32_igemm_6x8__neon(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                            size_t a_offset, const float *zero, const float *w, float *c,
                            size_t cm_stride, const ck_clamp_params *p);

void ck_f32_dwconv_9p8c__neon(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p);
void ck_f32_dwconv_25p8c__neon(size_t channels, size_t pixels, size_t ks, const float **input,
                               size_t input_stride, size_t input_offset, const float *zero,
                               const float *weights, float *output, size_t output_stride,
                               const ck_clamp_params *p);
void ck_f32_dwconv_mp8c__neon(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p);

#endif
