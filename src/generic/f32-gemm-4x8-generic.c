/* The reference packed-GEMM micro-kernel: portable C, MR = 4, NR = 8.
 *
 * Every ISA kernel is tested against this one. The accumulation is a plain multiply then add in
 * ascending k (ISO C mode keeps the compiler from contracting it into FMAs), so its rounding is
 * the textbook one. */
#include "../gemm.h"

#define MR 4
#define NR 8

void ck_f32_gemm_4x8__generic(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                              float *c, size_t ldc, const ck_gemm_epilogue *ep) {
  /* Full panels are read whatever mr and nr are: the packer zero-pads them, so this stays inside
   * the panels and keeps the inner loop free of edge tests. */
  float acc[MR][NR] = {{0}};
  for (size_t k = 0; k < kc; k++) {
    const float *ak = a + k * MR, *bk = b + k * NR;
    for (size_t i = 0; i < MR; i++)
      for (size_t j = 0; j < NR; j++) acc[i][j] += ak[i] * bk[j];
  }
  const float alpha = ep->alpha, beta = ep->beta, lo = ep->min, hi = ep->max;
  for (size_t i = 0; i < mr; i++) {
    float *ci = c + i * ldc;
    const float row_bias = ep->bias_row ? ep->bias_row[i] : 0.0f;
    for (size_t j = 0; j < nr; j++) {
      float v = alpha * acc[i][j];
      if (beta != 0.0f) v += beta * ci[j]; /* beta == 0 never reads C */
      if (ep->bias_row) v += row_bias;
      if (ep->bias_col) v += ep->bias_col[j];
      /* max then min, each keeping v when it is NaN (as the x86 max_ps/min_ps order does) */
      v = lo > v ? lo : v;
      v = hi < v ? hi : v;
      ci[j] = v;
    }
  }
}
