/* Packed-GEMM micro-kernel for AArch64 NEON: MR = 8 rows x NR = 12 columns (three q registers a
 * row).
 *
 * 24 accumulators, two A vectors (8 rows) and three B vectors: 29 of the 32 q registers. Each k
 * step loads 5 vectors and issues 24 FMAs by element (fmla v.4s, v.4s, v.s[lane]), which keeps
 * the loads well under the FMA rate on every AArch64 core and hides the FMA latency (4) of two
 * pipes many times over. The lane index of vfmaq_laneq_f32 must be a literal, so the 24 FMAs are
 * written out.
 *
 * Edge tiles: the packer zero-pads A and B panels to MR and NR, so the k loop always reads full
 * panels; tiles of at most 4 rows run a 4 x 12 loop (half the FMAs). The epilogue reads and
 * writes only the mr x nr tile (partial vectors through lane loads and stores). Each element gets
 * the same FMA sequence in either loop, so its bits do not depend on the tile it falls in.
 */
#include "neon-kernels.h"

enum { MR = 8, NR = 12 };

/* The epilogue of kernels.h on one row of three accumulators, columns j < nr. */
static inline void store_row(float *ci, const float32x4_t acc[3], size_t nr, float row_bias,
                             const ck_gemm_epilogue *ep, const float32x4_t bias_col[3]) {
  const float32x4_t lo = vdupq_n_f32(ep->min), hi = vdupq_n_f32(ep->max);
  for (size_t v = 0; v < 3 && 4 * v < nr; v++) {
    const size_t n = nr - 4 * v < 4 ? nr - 4 * v : 4;
    float32x4_t x = acc[v];
    if (ep->alpha != 1.0f) x = vmulq_n_f32(x, ep->alpha);
    if (ep->beta != 0.0f) x = vfmaq_n_f32(x, ck_neon_load_n(ci + 4 * v, n), ep->beta);
    if (ep->bias_row) x = vaddq_f32(x, vdupq_n_f32(row_bias));
    if (ep->bias_col) x = vaddq_f32(x, bias_col[v]);
    ck_neon_store_n(ci + 4 * v, ck_neon_clamp(x, lo, hi), n);
  }
}

void ck_f32_gemm_8x12__neon(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                            float *c, size_t ldc, const ck_gemm_epilogue *ep) {
  /* Named accumulators (cIJ: row I, columns 4J..4J+3) stay in registers through the k loop; an
   * array indexed by the row in the epilogue would put them in memory. */
  const float32x4_t z = vdupq_n_f32(0.0f);
  float32x4_t c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z, c22 = z;
  float32x4_t c30 = z, c31 = z, c32 = z, c40 = z, c41 = z, c42 = z, c50 = z, c51 = z, c52 = z;
  float32x4_t c60 = z, c61 = z, c62 = z, c70 = z, c71 = z, c72 = z;

  if (mr > 4) {
    for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
      const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
      const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
      c00 = vfmaq_laneq_f32(c00, b0, a0, 0);
      c01 = vfmaq_laneq_f32(c01, b1, a0, 0);
      c02 = vfmaq_laneq_f32(c02, b2, a0, 0);
      c10 = vfmaq_laneq_f32(c10, b0, a0, 1);
      c11 = vfmaq_laneq_f32(c11, b1, a0, 1);
      c12 = vfmaq_laneq_f32(c12, b2, a0, 1);
      c20 = vfmaq_laneq_f32(c20, b0, a0, 2);
      c21 = vfmaq_laneq_f32(c21, b1, a0, 2);
      c22 = vfmaq_laneq_f32(c22, b2, a0, 2);
      c30 = vfmaq_laneq_f32(c30, b0, a0, 3);
      c31 = vfmaq_laneq_f32(c31, b1, a0, 3);
      c32 = vfmaq_laneq_f32(c32, b2, a0, 3);
      c40 = vfmaq_laneq_f32(c40, b0, a1, 0);
      c41 = vfmaq_laneq_f32(c41, b1, a1, 0);
      c42 = vfmaq_laneq_f32(c42, b2, a1, 0);
      c50 = vfmaq_laneq_f32(c50, b0, a1, 1);
      c51 = vfmaq_laneq_f32(c51, b1, a1, 1);
      c52 = vfmaq_laneq_f32(c52, b2, a1, 1);
      c60 = vfmaq_laneq_f32(c60, b0, a1, 2);
      c61 = vfmaq_laneq_f32(c61, b1, a1, 2);
      c62 = vfmaq_laneq_f32(c62, b2, a1, 2);
      c70 = vfmaq_laneq_f32(c70, b0, a1, 3);
      c71 = vfmaq_laneq_f32(c71, b1, a1, 3);
      c72 = vfmaq_laneq_f32(c72, b2, a1, 3);
    }
  } else {
    for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
      const float32x4_t a0 = vld1q_f32(a);
      const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
      c00 = vfmaq_laneq_f32(c00, b0, a0, 0);
      c01 = vfmaq_laneq_f32(c01, b1, a0, 0);
      c02 = vfmaq_laneq_f32(c02, b2, a0, 0);
      c10 = vfmaq_laneq_f32(c10, b0, a0, 1);
      c11 = vfmaq_laneq_f32(c11, b1, a0, 1);
      c12 = vfmaq_laneq_f32(c12, b2, a0, 1);
      c20 = vfmaq_laneq_f32(c20, b0, a0, 2);
      c21 = vfmaq_laneq_f32(c21, b1, a0, 2);
      c22 = vfmaq_laneq_f32(c22, b2, a0, 2);
      c30 = vfmaq_laneq_f32(c30, b0, a0, 3);
      c31 = vfmaq_laneq_f32(c31, b1, a0, 3);
      c32 = vfmaq_laneq_f32(c32, b2, a0, 3);
    }
  }

  const float32x4_t acc[MR][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22},
                                  {c30, c31, c32}, {c40, c41, c42}, {c50, c51, c52},
                                  {c60, c61, c62}, {c70, c71, c72}};
  float32x4_t bias_col[3] = {z, z, z};
  if (ep->bias_col)
    for (size_t v = 0; v < 3 && 4 * v < nr; v++)
      bias_col[v] = ck_neon_load_n(ep->bias_col + 4 * v, nr - 4 * v < 4 ? nr - 4 * v : 4);
  for (size_t i = 0; i < mr; i++)
    store_row(c + i * ldc, acc[i], nr, ep->bias_row ? ep->bias_row[i] : 0.0f, ep, bias_col);
}
