/* The igemm contract of kernels.h in plain C: ck_f32_igemm_ref for any tile shape (the reference
 * every ISA kernel is tested against) and the generic table's 4x8 kernel, which keeps its tile
 * in an array the compiler can hold in registers. Both sum each output in the same order (bias,
 * then taps, then channels, ascending), so they agree bit for bit. */
#include <stdint.h>

#include "igemm.h"

/* NaN stays NaN: both comparisons are false for it. */
static inline float clamp(float v, const ck_clamp_params *p) {
  if (v < p->min) v = p->min;
  if (v > p->max) v = p->max;
  return v;
}

void ck_f32_igemm_ref(size_t MR, size_t NR, size_t mr, size_t nr, size_t kc, size_t ks,
                      const float **a, size_t a_offset, const float *zero, const float *w, float *c,
                      size_t cm_stride, const ck_clamp_params *p) {
  for (size_t i = 0; i < mr; i++) {
    for (size_t j = 0; j < nr; j++) {
      float acc = w[j];
      for (size_t t = 0; t < ks; t++) {
        const float *r = ck_rebase(a[t * MR + i], a_offset, zero);
        const float *wt = w + NR + t * kc * NR + j;
        for (size_t k = 0; k < kc; k++) acc += r[k] * wt[k * NR];
      }
      c[i * cm_stride + j] = clamp(acc, p);
    }
  }
}

enum { MR = 4, NR = 8 };

void ck_f32_igemm_4x8__generic(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                               size_t a_offset, const float *zero, const float *w, float *c,
                               size_t cm_stride, const ck_clamp_params *p) {
  float acc[MR][NR];
  for (size_t i = 0; i < MR; i++)
    for (size_t j = 0; j < NR; j++) acc[i][j] = w[j];
  w += NR;
  for (size_t t = 0; t < ks; t++, a += MR) {
    /* Rows past mr repeat row 0: computed, never stored, and never a read of a[i >= mr]. */
    const float *r[MR];
    for (size_t i = 0; i < MR; i++) r[i] = ck_rebase(i < mr ? a[i] : a[0], a_offset, zero);
    for (size_t k = 0; k < kc; k++, w += NR)
      for (size_t i = 0; i < MR; i++)
        for (size_t j = 0; j < NR; j++) acc[i][j] += r[i][k] * w[j];
  }
  for (size_t i = 0; i < mr; i++)
    for (size_t j = 0; j < nr; j++) c[i * cm_stride + j] = clamp(acc[i][j], p);
}
