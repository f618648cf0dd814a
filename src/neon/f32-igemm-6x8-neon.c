/* igemm micro-kernel for AArch64 NEON: a tile of 6 output pixels x 8 channels (two q registers a
 * pixel), the shape of XNNPACK's f32-igemm 6x8 neonfma "lane ld64".
 *
 * 12 accumulators; per two channels k, k+1 of a tap: one 64-bit load from each of the 6 pixel
 * rows, 4 weight vectors, 24 FMAs by element (fmla v.4s, v.4s, v.s[lane]). An odd last channel
 * takes one broadcast load per row. The lane index of vfmaq_lane_f32 must be a literal, so the
 * FMAs are written out.
 *
 * Rows past mr repeat row 0 (computed, never stored; a[i >= mr] is never read). Each output is
 * summed as bias, then taps, then channels in ascending order, in the same FMA sequence whatever
 * mr and nr are, so a pixel has the same bits in a full or a partial tile.
 */
#include <stdint.h>

#include "neon-kernels.h"

enum { MR = 6, NR = 8 };

static inline void store_row(float *ci, float32x4_t v0, float32x4_t v1, size_t nr, float32x4_t lo,
                             float32x4_t hi) {
  v0 = ck_neon_clamp(v0, lo, hi);
  v1 = ck_neon_clamp(v1, lo, hi);
  if (nr >= 4) {
    vst1q_f32(ci, v0);
    if (nr > 4) ck_neon_store_n(ci + 4, v1, nr - 4);
  } else {
    ck_neon_store_n(ci, v0, nr);
  }
}

void ck_f32_igemm_6x8__neon(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                            size_t a_offset, const float *zero, const float *w, float *c,
                            size_t cm_stride, const ck_clamp_params *p) {
  const float32x4_t bias0 = vld1q_f32(w), bias1 = vld1q_f32(w + 4);
  float32x4_t c00 = bias0, c10 = bias0, c20 = bias0, c30 = bias0, c40 = bias0, c50 = bias0;
  float32x4_t c01 = bias1, c11 = bias1, c21 = bias1, c31 = bias1, c41 = bias1, c51 = bias1;
  w += NR;
  do {
    const float *a0 = ck_rebase(a[0], a_offset, zero);
    const float *a1 = mr > 1 ? ck_rebase(a[1], a_offset, zero) : a0;
    const float *a2 = mr > 2 ? ck_rebase(a[2], a_offset, zero) : a0;
    const float *a3 = mr > 3 ? ck_rebase(a[3], a_offset, zero) : a0;
    const float *a4 = mr > 4 ? ck_rebase(a[4], a_offset, zero) : a0;
    const float *a5 = mr > 5 ? ck_rebase(a[5], a_offset, zero) : a0;
    a += MR;
    size_t k = kc;
    for (; k >= 2; k -= 2, w += 2 * NR) {
      const float32x2_t x0 = vld1_f32(a0), x1 = vld1_f32(a1), x2 = vld1_f32(a2);
      const float32x2_t x3 = vld1_f32(a3), x4 = vld1_f32(a4), x5 = vld1_f32(a5);
      a0 += 2, a1 += 2, a2 += 2, a3 += 2, a4 += 2, a5 += 2;
      const float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4);
      c00 = vfmaq_lane_f32(c00, w0, x0, 0);
      c01 = vfmaq_lane_f32(c01, w1, x0, 0);
      c10 = vfmaq_lane_f32(c10, w0, x1, 0);
      c11 = vfmaq_lane_f32(c11, w1, x1, 0);
      c20 = vfmaq_lane_f32(c20, w0, x2, 0);
      c21 = vfmaq_lane_f32(c21, w1, x2, 0);
      c30 = vfmaq_lane_f32(c30, w0, x3, 0);
      c31 = vfmaq_lane_f32(c31, w1, x3, 0);
      c40 = vfmaq_lane_f32(c40, w0, x4, 0);
      c41 = vfmaq_lane_f32(c41, w1, x4, 0);
      c50 = vfmaq_lane_f32(c50, w0, x5, 0);
      c51 = vfmaq_lane_f32(c51, w1, x5, 0);
      const float32x4_t w2 = vld1q_f32(w + 8), w3 = vld1q_f32(w + 12);
      c00 = vfmaq_lane_f32(c00, w2, x0, 1);
      c01 = vfmaq_lane_f32(c01, w3, x0, 1);
      c10 = vfmaq_lane_f32(c10, w2, x1, 1);
      c11 = vfmaq_lane_f32(c11, w3, x1, 1);
      c20 = vfmaq_lane_f32(c20, w2, x2, 1);
      c21 = vfmaq_lane_f32(c21, w3, x2, 1);
      c30 = vfmaq_lane_f32(c30, w2, x3, 1);
      c31 = vfmaq_lane_f32(c31, w3, x3, 1);
      c40 = vfmaq_lane_f32(c40, w2, x4, 1);
      c41 = vfmaq_lane_f32(c41, w3, x4, 1);
      c50 = vfmaq_lane_f32(c50, w2, x5, 1);
      c51 = vfmaq_lane_f32(c51, w3, x5, 1);
    }
    if (k != 0) {
      const float32x4_t x0 = vld1q_dup_f32(a0), x1 = vld1q_dup_f32(a1), x2 = vld1q_dup_f32(a2);
      const float32x4_t x3 = vld1q_dup_f32(a3), x4 = vld1q_dup_f32(a4), x5 = vld1q_dup_f32(a5);
      const float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4);
      w += NR;
      c00 = vfmaq_f32(c00, w0, x0);
      c01 = vfmaq_f32(c01, w1, x0);
      c10 = vfmaq_f32(c10, w0, x1);
      c11 = vfmaq_f32(c11, w1, x1);
      c20 = vfmaq_f32(c20, w0, x2);
      c21 = vfmaq_f32(c21, w1, x2);
      c30 = vfmaq_f32(c30, w0, x3);
      c31 = vfmaq_f32(c31, w1, x3);
      c40 = vfmaq_f32(c40, w0, x4);
      c41 = vfmaq_f32(c41, w1, x4);
      c50 = vfmaq_f32(c50, w0, x5);
      c51 = vfmaq_f32(c51, w1, x5);
    }
  } while (--ks != 0);

  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max);
  store_row(c, c00, c01, nr, lo, hi);
  if (mr > 1) store_row(c + cm_stride, c10, c11, nr, lo, hi);
  if (mr > 2) store_row(c + 2 * cm_stride, c20, c21, nr, lo, hi);
  if (mr > 3) store_row(c + 3 * cm_stride, c30, c31, nr, lo, hi);
  if (mr > 4) store_row(c + 4 * cm_stride, c40, c41, nr, lo, hi);
  if (mr > 5) store_row(c + 5 * cm_stride, c50, c51, nr, lo, hi);
}
