/* igemm micro-kernel, AVX-512F: a tile of 14 output pixels x 32 channels (28 zmm accumulators,
 * 2 for the weights, 1 for the broadcast input). Per channel k: 2 weight loads, 14 broadcasts and
 * 28 FMAs, so the two FMA ports, not the loads, set the pace; the 14 rows keep the weight stream
 * at 2/14 byte per flop, low enough to come from L2.
 *
 * A partial tile runs the body compiled for the fewest rows in {1, 2, 4, 7, 14} that cover mr:
 * a 7x7 output (49 pixels, resnet50 res5) is three full tiles and one of 7 rows, which would
 * otherwise pay for 14 (an eighth of the layer's FMAs wasted). Every body sums an output in the
 * same order, so a pixel gets the same bits in any tile. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "igemm.h"

enum { MR = 14 };

/* The kernel for R <= MR rows, one function per row count with R a literal in every loop
 * bound (a macro, not an inline function taking R: clang unrolled and promoted the
 * accumulators to registers only for literal bounds, and ran a third as fast otherwise). The
 * positions of a tap stay MR apart whatever R is: the indirection is laid out for MR-row tiles. */
#define CK_IGEMM_ROWS(R)                                                                           \
  static __attribute__((noinline)) void rows##R(                                                   \
      size_t mr, size_t nr, size_t kc, size_t ks, const float **a, size_t a_offset,                \
      const float *zero, const float *w, float *c, size_t cm_stride, const ck_clamp_params *p) {   \
    __m512 acc0[MR], acc1[MR];                                                                     \
    const __m512 bias0 = _mm512_loadu_ps(w), bias1 = _mm512_loadu_ps(w + 16);                      \
    _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) acc0[i] = bias0, acc1[i] = bias1;         \
    w += 32;                                                                                       \
    do {                                                                                           \
      /* Rows past mr repeat row 0: computed, never stored, and a[i >= mr] is never read. */       \
      const float *r[MR];                                                                          \
      _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                       \
        const float *ai = (size_t)i < mr ? a[i] : a[0];                                            \
        r[i] = ck_rebase(ai, a_offset, zero);                                                      \
      }                                                                                            \
      a += MR;                                                                                     \
      size_t k = 0;                                                                                \
      /* Two channels per iteration: half the loop overhead, which competes for the FMA ports. */  \
      for (; k + 2 <= kc; k += 2, w += 64) {                                                       \
        /* The weights stream from L2, and from L3 for the first tile that reads a block when a    \
         * layer's blocks outgrow L2 (every block of resnet50 res5 and vgg16 conv5). All four      \
         * lines of this iteration's 256 bytes, 4 KiB (32 channels) ahead: 2 KiB ahead, or every   \
         * other line, left that first tile waiting on L3 at ~60% of its speed. A prefetch is a    \
         * hint, not a load: it may name lines past the panel and never faults; the address is     \
         * formed in uintptr_t, outside C pointer arithmetic. */                                   \
        _mm_prefetch((const char *)((uintptr_t)w + 4096), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)((uintptr_t)w + 4160), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)((uintptr_t)w + 4224), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)((uintptr_t)w + 4288), _MM_HINT_T0);                            \
        _Pragma("GCC unroll 2") for (size_t u = 0; u < 2; u++) {                                   \
          const __m512 w0 = _mm512_loadu_ps(w + 32 * u), w1 = _mm512_loadu_ps(w + 32 * u + 16);    \
          _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                   \
            const __m512 x = _mm512_set1_ps(r[i][k + u]);                                          \
            acc0[i] = _mm512_fmadd_ps(x, w0, acc0[i]);                                             \
            acc1[i] = _mm512_fmadd_ps(x, w1, acc1[i]);                                             \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
      if (k < kc) {                                                                                \
        const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);                        \
        w += 32;                                                                                   \
        _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                     \
          const __m512 x = _mm512_set1_ps(r[i][k]);                                                \
          acc0[i] = _mm512_fmadd_ps(x, w0, acc0[i]);                                               \
          acc1[i] = _mm512_fmadd_ps(x, w1, acc1[i]);                                               \
        }                                                                                          \
      }                                                                                            \
    } while (--ks != 0);                                                                           \
                                                                                                   \
    const __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);                          \
    const __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);    \
    /* No activation: skip the clamp, 2*R operations on the FMA ports. */                          \
    if (!(p->min > -INFINITY || p->max < INFINITY)) {                                              \
      _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                       \
        if ((size_t)i >= mr) break;                                                                \
        _mm512_mask_storeu_ps(c + (size_t)i * cm_stride, m0, acc0[i]);                             \
        _mm512_mask_storeu_ps(c + (size_t)i * cm_stride + 16, m1, acc1[i]);                        \
      }                                                                                            \
      return;                                                                                      \
    }                                                                                              \
    /* max(min, c) then min(max, c): the second operand wins on NaN, so NaN stays NaN. */          \
    const __m512 vmin = _mm512_set1_ps(p->min), vmax = _mm512_set1_ps(p->max);                     \
    _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                         \
      if ((size_t)i >= mr) break;                                                                  \
      float *ci = c + (size_t)i * cm_stride;                                                       \
      _mm512_mask_storeu_ps(ci, m0, _mm512_min_ps(vmax, _mm512_max_ps(vmin, acc0[i])));            \
      _mm512_mask_storeu_ps(ci + 16, m1, _mm512_min_ps(vmax, _mm512_max_ps(vmin, acc1[i])));       \
    }                                                                                              \
  }

CK_IGEMM_ROWS(14)
CK_IGEMM_ROWS(7)
CK_IGEMM_ROWS(4)
CK_IGEMM_ROWS(2)
CK_IGEMM_ROWS(1)

void ck_f32_igemm_14x32__avx512(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                                size_t a_offset, const float *zero, const float *w, float *c,
                                size_t cm_stride, const ck_clamp_params *p) {
  if (mr > 7)
    rows14(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
  else if (mr > 4)
    rows7(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
  else if (mr > 2)
    rows4(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
  else if (mr == 2)
    rows2(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
  else
    rows1(mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
}
