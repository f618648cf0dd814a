/* igemm micro-kernel, AVX2+FMA: a tile of 6 output pixels x 16 channels (12 ymm accumulators,
 * 2 for the weights, 1 for the broadcast input: 15 of the 16 registers). Per channel k: 2 weight
 * loads, 6 broadcasts, 12 FMAs. A partial tile runs the body compiled for the fewest rows in
 * {1, 2, 3, 6} that cover mr (a 7x7 output is eight tiles and one of a single row); every body
 * sums an output in the same order, so a pixel gets the same bits in any tile. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "igemm.h"

enum { MR = 6 };

/* Lanes j < n set: a window of 8 into -1 x 8, 0 x 8. */
static inline __m256i lanes(size_t n) {
  static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1};
  return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - n));
}

/* The kernel for R <= MR rows, one function per row count with R a literal in every loop
 * bound (a macro, not an inline function taking R: clang unrolled and promoted the
 * accumulators to registers only for literal bounds, and ran a third as fast otherwise). The
 * positions of a tap stay MR apart whatever R is: the indirection is laid out for MR-row tiles. */
#define CK_IGEMM_ROWS(R)                                                                           \
  static __attribute__((noinline)) void rows##R(                                                   \
      size_t mr, size_t nr, size_t kc, size_t ks, const float **a, size_t a_offset,                \
      const float *zero, const float *w, float *c, size_t cm_stride, const ck_clamp_params *p) {   \
    __m256 acc0[MR], acc1[MR];                                                                     \
    const __m256 bias0 = _mm256_loadu_ps(w), bias1 = _mm256_loadu_ps(w + 8);                       \
    _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) acc0[i] = bias0, acc1[i] = bias1;          \
    w += 16;                                                                                       \
    do {                                                                                           \
      /* Rows past mr repeat row 0: computed, never stored, and a[i >= mr] is never read. */       \
      const float *r[MR];                                                                          \
      _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {                                        \
        const float *ai = (size_t)i < mr ? a[i] : a[0];                                            \
        r[i] = ck_rebase(ai, a_offset, zero);                                                      \
      }                                                                                            \
      a += MR;                                                                                     \
      size_t k = 0;                                                                                \
      /* Two channels per iteration: half the loop overhead, which competes for the FMA ports. */  \
      for (; k + 2 <= kc; k += 2, w += 32) {                                                       \
        /* Weights stream from L2, and from L3 for the first tile that reads a block when a        \
         * layer's blocks outgrow L2: ask 2 KiB (32 channels) ahead, as the AVX-512 kernel does;   \
         * 1 KiB left that tile waiting on L3. A prefetch is a hint, not a load: it may name       \
         * lines past the panel and never faults; the address is formed in uintptr_t. */           \
        _mm_prefetch((const char *)((uintptr_t)w + 2048), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)((uintptr_t)w + 2112), _MM_HINT_T0);                            \
        _Pragma("GCC unroll 2") for (size_t u = 0; u < 2; u++) {                                   \
          const __m256 w0 = _mm256_loadu_ps(w + 16 * u), w1 = _mm256_loadu_ps(w + 16 * u + 8);     \
          _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {                                    \
            const __m256 x = _mm256_broadcast_ss(r[i] + k + u);                                    \
            acc0[i] = _mm256_fmadd_ps(x, w0, acc0[i]);                                             \
            acc1[i] = _mm256_fmadd_ps(x, w1, acc1[i]);                                             \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
      if (k < kc) {                                                                                \
        const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);                         \
        w += 16;                                                                                   \
        _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {                                      \
          const __m256 x = _mm256_broadcast_ss(r[i] + k);                                          \
          acc0[i] = _mm256_fmadd_ps(x, w0, acc0[i]);                                               \
          acc1[i] = _mm256_fmadd_ps(x, w1, acc1[i]);                                               \
        }                                                                                          \
      }                                                                                            \
    } while (--ks != 0);                                                                           \
                                                                                                   \
    /* max(min, c) then min(max, c): the second operand wins on NaN, so NaN stays NaN. Without     \
     * activation the clamp is skipped (2*MR operations on the FMA ports). */                      \
    const int clamp = p->min > -INFINITY || p->max < INFINITY;                                     \
    const __m256 vmin = _mm256_set1_ps(p->min), vmax = _mm256_set1_ps(p->max);                     \
    _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {                                          \
      if ((size_t)i >= mr) break;                                                                  \
      float *ci = c + (size_t)i * cm_stride;                                                       \
      __m256 v0 = acc0[i], v1 = acc1[i];                                                           \
      if (clamp) {                                                                                 \
        v0 = _mm256_min_ps(vmax, _mm256_max_ps(vmin, v0));                                         \
        v1 = _mm256_min_ps(vmax, _mm256_max_ps(vmin, v1));                                         \
      }                                                                                            \
      if (nr == 16) {                                                                              \
        _mm256_storeu_ps(ci, v0);                                                                  \
        _mm256_storeu_ps(ci + 8, v1);                                                              \
      } else if (nr >= 8) {                                                                        \
        _mm256_storeu_ps(ci, v0);                                                                  \
        _mm256_maskstore_ps(ci + 8, lanes(nr - 8), v1);                                            \
      } else {                                                                                     \
        _mm256_maskstore_ps(ci, lanes(nr), v0);                                                    \
      }                                                                                            \
    }                                                                                              \
  }

CK_IGEMM_ROWS(6)
CK_IGEMM_ROWS(3)
CK_IGEMM_ROWS(2)
CK_IGEMM_ROWS(1)

void ck_f32_igemm_6x16__avx2(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                             size_t a_offset, const float *zero, const float *w, float *c,
                             size_t cm_stride, const ck_clamp_params *p) {
  if (mr > 3)
    rows6(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
  else if (mr == 3)
    rows3(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
  else if (mr == 2)
    rows2(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
  else
    rows1(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
}
