/* igemm micro-kernel, AVX-512F: a tile of 7 output pixels x 64 channels (28 zmm accumulators, 4
 * for the weights, 1 for the broadcast input; the compiler keeps one accumulator on the stack).
 * Per channel k: 4 weight loads, 7 broadcasts and 28 FMAs.
 *
 * Why 7 x 64 and not 14 x 32 (the GEMM's tile, this kernel's predecessor): both keep 28
 * accumulators, but 14 rows need 14 row pointers, more than the general registers left by the
 * loop (gcc 12 reloaded 3 of them from the stack every k) and 16 loads per 28 FMAs; 7 rows
 * take 11 loads per 28 FMAs and keep their pointers in registers. On a shared host the loads,
 * not the FMAs, are what the neighbours take away (a loop of FMAs alone keeps its speed while the
 * igemm kernels swing by up to 30%): on the 3x3 layers of 64-512 channels, in alternated rounds on
 * one core, the layer loop ran 5-13% faster with 7 x 64 (median of rounds), and as fast in quiet
 * moments. 64 weights per k (256 bytes) still come from L2 at 18 bytes per cycle.
 *
 * A partial tile runs the body compiled for the fewest rows in {1, 2, 4, 7} that cover mr, and a
 * block of nr <= 32 channels (a layer of 96 or 160 outputs, a group of 32) the body of 2 vectors
 * per row, so that neither pays for FMAs it does not store. Every body sums an output in the same
 * order (bias, then ascending taps and channels, one FMA each), so a pixel gets the same bits in
 * any tile and any body. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "igemm.h"

enum { MR = 7, NR = 64 };

/* One tap: acc[i][j] += r[i][k] * w[k][16j..] for k < kc; returns w past the tap. With PF, one
 * line of the rows at `next` per k: row k % 8, line k / 8, so the first kc / 2 steps cover
 * all of them. The weights stream from L2 (from L3 for the first tile that reads a block when
 * a layer's blocks outgrow L2): the lines of this k's V vectors, 16 channels (4 KiB) ahead. A
 * prefetch is a hint, not a load: it may name lines past the panel and never faults; the
 * addresses are formed in uintptr_t, outside C pointer arithmetic. */
static inline __attribute__((always_inline)) const float *
tap(const int R, const int V, const int PF, __m512 acc[MR][4], const float *const *r,
    const uintptr_t *next, size_t kc, const float *w) {
  const size_t row_bytes = kc * sizeof(float);
  for (size_t k = 0; k < kc; k++, w += NR) {
    if (PF) {
      const size_t off = (k >> 3) * 64;
      if (off < row_bytes) _mm_prefetch((const char *)(next[k & 7] + off), _MM_HINT_T1);
    }
#pragma GCC unroll 4
    for (int j = 0; j < V; j++)
      _mm_prefetch((const char *)((uintptr_t)w + 4096 + 64 * (size_t)j), _MM_HINT_T0);
    __m512 wv[4];
#pragma GCC unroll 4
    for (int j = 0; j < V; j++) wv[j] = _mm512_loadu_ps(w + 16 * j);
#pragma GCC unroll 7
    for (int i = 0; i < R; i++) {
      const __m512 x = _mm512_set1_ps(r[i][k]);
#pragma GCC unroll 4
      for (int j = 0; j < V; j++) acc[i][j] = _mm512_fmadd_ps(x, wv[j], acc[i][j]);
    }
  }
  return w;
}

/* The kernel for R <= MR rows and V 16-channel vectors per row. Every call passes literals for
 * both, so each instance below is compiled with literal loop bounds (gcc and clang unroll and
 * keep the accumulators in registers only then). The positions of a tap stay MR apart whatever R
 * is (the indirection is laid out for MR-row tiles), and a weight row stays NR floats whatever V
 * is (the packing). */
static inline __attribute__((always_inline)) void tile(const int R, const int V, const int PF,
                                                       size_t mr, size_t nr, size_t kc, size_t ks,
                                                       const float **a, size_t a_offset,
                                                       const float *zero, const float *w, float *c,
                                                       size_t cm_stride, const ck_clamp_params *p) {
  __m512 acc[MR][4];
#pragma GCC unroll 7
  for (int i = 0; i < R; i++) {
#pragma GCC unroll 4
    for (int j = 0; j < V; j++) acc[i][j] = _mm512_loadu_ps(w + 16 * j);
  }
  w += NR;
  do {
    /* Rows past mr repeat row 0: computed, never stored, and a[i >= mr] is never read. */
    const float *r[MR];
#pragma GCC unroll 7
    for (int i = 0; i < R; i++) {
      const float *ai = (size_t)i < mr ? a[i] : a[0];
      r[i] = ck_rebase(ai, a_offset, zero);
    }
    a += MR;
    /* The next tap's rows, fetched while this one computes when they are new: at a new kernel
     * row (a new input row, from L3 or memory: the hardware prefetchers do not follow 7 runs
     * of a few lines) or at stride 2 (the pixels between this tap's), not when the next tap is
     * this one moved by one pixel (its row 0 is this tap's row 1). Slots past R repeat row 0. */
    if (PF && ks > 1) {
      const uintptr_t next0 = (uintptr_t)ck_rebase(a[0], a_offset, zero);
      if (R == 1 || next0 != (uintptr_t)r[1]) {
        uintptr_t next[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
          next[i] = (uintptr_t)ck_rebase(a[i < R && (size_t)i < mr ? i : 0], a_offset, zero);
        w = tap(R, V, 1, acc, r, next, kc, w);
        continue;
      }
    }
    w = tap(R, V, 0, acc, r, NULL, kc, w);
  } while (--ks != 0);

  /* Columns [16j, 16j + 16) of vector j that are below nr. */
  __mmask16 m[4];
#pragma GCC unroll 4
  for (int j = 0; j < V; j++) {
    const size_t lo = 16 * (size_t)j, n = nr <= lo ? 0 : nr - lo;
    m[j] = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
  }
  /* No activation: skip the clamp, 2*R*V operations on the FMA ports. */
  if (!(p->min > -INFINITY || p->max < INFINITY)) {
#pragma GCC unroll 7
    for (int i = 0; i < R; i++) {
      if ((size_t)i >= mr) break;
#pragma GCC unroll 4
      for (int j = 0; j < V; j++)
        _mm512_mask_storeu_ps(c + (size_t)i * cm_stride + 16 * j, m[j], acc[i][j]);
    }
    return;
  }
  /* max(min, c) then min(max, c): the second operand wins on NaN, so NaN stays NaN. */
  const __m512 vmin = _mm512_set1_ps(p->min), vmax = _mm512_set1_ps(p->max);
#pragma GCC unroll 7
  for (int i = 0; i < R; i++) {
    if ((size_t)i >= mr) break;
#pragma GCC unroll 4
    for (int j = 0; j < V; j++)
      _mm512_mask_storeu_ps(c + (size_t)i * cm_stride + 16 * j, m[j],
                            _mm512_min_ps(vmax, _mm512_max_ps(vmin, acc[i][j])));
  }
}

/* Each body in its own function: one register allocation per (R, V), not one for all eight. */
typedef void body_fn(size_t mr, size_t nr, size_t kc, size_t ks, const float **a, size_t a_offset,
                     const float *zero, const float *w, float *c, size_t cm_stride,
                     const ck_clamp_params *p);
#define CK_IGEMM_INSTANCE(R, V, PF, NAME)                                                          \
  static __attribute__((noinline)) void NAME(                                                      \
      size_t mr, size_t nr, size_t kc, size_t ks, const float **a, size_t a_offset,                \
      const float *zero, const float *w, float *c, size_t cm_stride, const ck_clamp_params *p) {   \
    tile(R, V, PF, mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);                         \
  }
CK_IGEMM_INSTANCE(7, 4, 0, rows7_v4)
CK_IGEMM_INSTANCE(4, 4, 0, rows4_v4)
CK_IGEMM_INSTANCE(2, 4, 0, rows2_v4)
CK_IGEMM_INSTANCE(1, 4, 0, rows1_v4)
CK_IGEMM_INSTANCE(7, 2, 0, rows7_v2)
CK_IGEMM_INSTANCE(4, 2, 0, rows4_v2)
CK_IGEMM_INSTANCE(2, 2, 0, rows2_v2)
CK_IGEMM_INSTANCE(1, 2, 0, rows1_v2)
CK_IGEMM_INSTANCE(7, 4, 1, rows7_v4_pf)
CK_IGEMM_INSTANCE(4, 4, 1, rows4_v4_pf)
CK_IGEMM_INSTANCE(2, 4, 1, rows2_v4_pf)
CK_IGEMM_INSTANCE(1, 4, 1, rows1_v4_pf)
CK_IGEMM_INSTANCE(7, 2, 1, rows7_v2_pf)
CK_IGEMM_INSTANCE(4, 2, 1, rows4_v2_pf)
CK_IGEMM_INSTANCE(2, 2, 1, rows2_v2_pf)
CK_IGEMM_INSTANCE(1, 2, 1, rows1_v2_pf)
#undef CK_IGEMM_INSTANCE

/* [ks > 1: the bodies that fetch the next tap][nr > 32][rows class of mr: 1, 2, 3-4, 5-7]. A
 * single tap (1x1 layers) keeps the loop without the check. */
static body_fn *const bodies[2][2][4] = {
    {{rows1_v2, rows2_v2, rows4_v2, rows7_v2}, {rows1_v4, rows2_v4, rows4_v4, rows7_v4}},
    {{rows1_v2_pf, rows2_v2_pf, rows4_v2_pf, rows7_v2_pf},
     {rows1_v4_pf, rows2_v4_pf, rows4_v4_pf, rows7_v4_pf}}};

void ck_f32_igemm_7x64__avx512(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                               size_t a_offset, const float *zero, const float *w, float *c,
                               size_t cm_stride, const ck_clamp_params *p) {
  const int rows = mr > 4 ? 3 : mr > 2 ? 2 : mr == 2 ? 1 : 0;
  bodies[ks > 1][nr > 32][rows](mr, nr, kc, ks, a, a_offset, zero, w, c, cm_stride, p);
}
