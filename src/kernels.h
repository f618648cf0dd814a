/*
 * The micro-kernel contracts and the per-ISA kernel table.
 *
 * Micro-kernels know registers and one tile: no allocation, no threads, no shapes. Every loop
 * around them lives once, in the engines (gemm.c, igemm.c) and algorithms (conv/). An ISA is
 * added by writing kernels that obey the contracts below and one table in dispatch.c.
 *
 * Common rules for every kernel:
 *  - It reads only the elements the contract names: never past the end of a row, a panel or a
 *    pointer's kc floats. Callers never provide over-read slack (sanitizer-clean).
 *  - It writes only the mr x nr (or channels x pixels) elements it owns.
 *  - Accumulation order over k (and taps) is ascending, so a kernel's result does not depend on
 *    where the engine cuts the problem into tiles (bitwise identical for any thread count).
 *  - The clamp keeps NaN: c = NaN stays NaN (x86: max_ps(vmin, c) then min_ps(vmax, c), whose
 *    second operand wins when one is NaN), as the reference algorithm does.
 *  - The generic C kernel of a family is its reference; every ISA kernel is tested against it on
 *    full and edge tiles (mr < MR, nr < NR, kc = 1, odd kc).
 */
#ifndef CK_KERNELS_H
#define CK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "convkit.h"

/* ---- Packed GEMM -------------------------------------------------------------------------- */

/* Epilogue of one GEMM micro-tile, applied in this order:
 *   c = alpha * (a * b) + beta * c      (beta == 0: c is not read, so garbage or NaN is ignored)
 *   c += bias_row[i]   (when bias_row != NULL; i < mr)
 *   c += bias_col[j]   (when bias_col != NULL; j < nr)
 *   c = min(max(c, min), max)           (min = -INF, max = +INF for no activation)
 * The engine passes bias and activation only with the last KC block of a tile. */
typedef struct {
  float alpha, beta;
  const float *bias_row;
  const float *bias_col;
  float min, max;
} ck_gemm_epilogue;

/* C[mr x nr] (row i at c + i*ldc, unit column stride) op= A[mr x kc] * B[kc x nr].
 *   a: packed panel of A, element (i, k) at a[k*MR + i] (rows i >= mr hold anything finite and
 *      are never stored; the engine zero-pads them).
 *   b: packed panel of B, element (k, j) at b[k*NR + j] (likewise columns j >= nr).
 *   1 <= mr <= MR, 1 <= nr <= NR, kc >= 1. */
typedef void (*ck_gemm_ukernel)(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                                float *c, size_t ldc, const ck_gemm_epilogue *ep);

/* Prefetching micro-kernel: the table's kernel (same arithmetic and bits) that also issues, one
 * per k step, L2 prefetches of the lines of a stream the engine will read next: `left` lines of
 * 64 bytes, walking rows of row_bytes bytes (from byte `off` of the current row) stride bytes
 * apart. It advances the stream by the lines it issued. The engine uses it to fetch the source of
 * the next B block from L3 or DRAM while the FMAs run: packing B is otherwise a pure memory phase,
 * a fifth of the time of the skinny products of convolutions. Prefetches never fault and never
 * count as reads; the engine points the stream only at its own operand. */
typedef struct {
  const char *row;
  size_t off, row_bytes, stride, left;
} ck_gemm_prefetch;
typedef void (*ck_gemm_prefetch_fn)(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                                    float *c, size_t ldc, const ck_gemm_epilogue *ep,
                                    ck_gemm_prefetch *pf);

/* Direct micro-kernel: the GEMM micro-kernel's tile read from unpacked row-major operands,
 * element (i, k) of A at a[i*lda + k] and (k, j) of B at b[k*ldb + j] (a packed B panel is the
 * case ldb = NR). The engine uses it where packing costs more than it saves: tiny products (A
 * and B in place) and narrow ones (A in place). Same bounds (mr <= MR, nr <= NR of the table),
 * same epilogue and same arithmetic as the table's kernel, so a KC block gives the same bits
 * either way. Reads exactly rows i < mr of A, columns j < nr of B and k < kc. The table's wide
 * direct kernel (gemm_direct_wide) obeys the same contract with its own bounds (mr <=
 * direct_wide_mr, nr <= direct_wide_nr): every kernel of a table sums an element from zero, one FMA
 * per k in ascending k, then the same epilogue, so the tile that holds an element never changes its
 * bits. */
typedef void (*ck_gemm_direct_fn)(size_t mr, size_t nr, size_t kc, const float *a, size_t lda,
                                  const float *b, size_t ldb, float *c, size_t ldc,
                                  const ck_gemm_epilogue *ep);

/* Transposing pack (the table's gemm_packt): for i < h <= w,
 * k < kc: dst[k*w + i] = src[i*rs + k], and dst[k*w + i] = 0 for h <= i < w. Reads exactly the h
 * rows of kc floats. It packs a row-major A (w = MR) and a transposed B (w = NR). */
typedef void (*ck_gemm_packt_fn)(size_t h, size_t w, size_t kc, const float *src, size_t rs,
                                 float *dst);

/* Row-panel pack (the table's gemm_packn where one pays): a
 * row-major block of B[kc x cols] (rows rs apart) into w-column panels, panel q at dst + q*kc*w:
 * dst[q*kc*w + k*w + j] = src[k*rs + q*w + j], and 0 for the columns of the last panel past cols.
 * Reads exactly kc rows of cols floats. The ISA versions require w == their table's NR. */
typedef void (*ck_gemm_packn_fn)(size_t kc, size_t cols, size_t w, const float *src, size_t rs,
                                 float *dst);

/* ---- Indirect GEMM ------------------------------------------------------------------------ */

/* Clamp applied after the bias: c = min(max(c, min), max). */
typedef struct {
  float min, max;
} ck_clamp_params;

/* C[mr x nr] = clamp(bias + sum over taps t < ks, k < kc of A_t[i][k] * W[t][k][j]).
 *   a: ks*MR pointers, tap-major: a[t*MR + i] is the row of pixel i for tap t (i < mr are read;
 *      entries i >= mr are never dereferenced). A pointer equal to `zero` is read as is; any
 *      other pointer is read at (const char *)a[...] + a_offset. Each row supplies kc floats.
 *      That sum is an integer sum modulo 2^64: the stored pointers are positions relative to a
 *      base chosen at plan time, not addresses of objects, and a_offset may be "negative"
 *      (see igemm.h). Kernels compute it as (const float *)((uintptr_t)a[...] + a_offset),
 *      never as C pointer arithmetic, which would be undefined (UBSan flags the wrap).
 *   zero: kc floats of 0.0f (padding taps point here).
 *   w: packed weights of one NR-channel block: NR bias values, then ks*kc*NR weights, element
 *      (t, k, j) at w[NR + (t*kc + k)*NR + j]; columns j >= nr are zero-padded by the packer.
 *   c: row i (output pixel i) at c + i*cm_stride (in floats), nr contiguous channels.
 *   1 <= mr <= MR, 1 <= nr <= NR, kc >= 1, ks >= 1. */
typedef void (*ck_igemm_ukernel)(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                                 size_t a_offset, const float *zero, const float *w, float *c,
                                 size_t cm_stride, const ck_clamp_params *p);

/* The rebasing rule of the igemm and dwconv contracts, in one place: a pointer equal to `zero`
 * is read as is; any other is read `offset` bytes further, the sum formed in uintptr_t (modulo
 * 2^64) because indirection entries are positions relative to a base, not addresses. */
static inline const float *ck_rebase(const float *ptr, size_t offset, const float *zero) {
  return ptr == zero ? zero : (const float *)((uintptr_t)ptr + offset);
}

/* ---- Depthwise convolution ---------------------------------------------------------------- */

/* For each output pixel p < pixels and channel c < channels:
 *   out[p*output_stride + c] = clamp(bias[c] + sum over taps t < ks of in(p, t)[c] * w(t)[c])
 *   input: pixel p's taps are the ks pointers input[p*input_stride + t] (input_stride >= 1 is
 *      in pointers; it may be below ks: overlapping windows share pointers). A pointer equal to
 *      `zero` is read as is, any other at (const char *)ptr + input_offset, an integer sum
 *      modulo 2^64 as for igemm; each supplies `channels` floats.
 *   zero: `channels` floats of 0.0f.
 *   weights: per block of CB channels (CB = the table's dw_cb): CB bias values, then ks*CB
 *      weights, tap-major; the last block is zero-padded to CB by the packer.
 * A single-pass kernel (dwconv_3x3, dwconv_5x5) requires ks == 9 or 25; dwconv_any takes any
 * ks >= 1 (multi-pass over taps, accumulating in the output). */
typedef void (*ck_dwconv_ukernel)(size_t channels, size_t pixels, size_t ks, const float **input,
                                  size_t input_stride, size_t input_offset, const float *zero,
                                  const float *weights, float *output, size_t output_stride,
                                  const ck_clamp_params *p);

/* ---- Layout transpose ---------------------------------------------------------------------- */

/* One full T x T tile (T = the table's transpose_tile):
 *   dst[c*ldd + r] = src[r*lds + c] for r, c < T; lds, ldd >= T, in floats.
 * Reads exactly the T rows of T floats and writes exactly the T rows of T floats; the layout
 * code does partial tiles itself. NCHW <-> NHWC conversions (src/conv/layout.c) run on it. */
typedef void (*ck_transpose_ukernel)(const float *src, size_t lds, float *dst, size_t ldd);

/* The streaming form (optional, NULL where the ISA has none): the same tile and bits, but when
 * dst and ldd put every destination row on a whole 64-byte line, the rows are written with
 * non-temporal stores, which skip reading the lines first and do not fill the caches with them;
 * otherwise as transpose. Such stores are weakly ordered: a caller runs the table's
 * transpose_fence after its last call before anyone else reads the destination. */
typedef void (*ck_transpose_fence_fn)(void);

void ck_f32_transpose_8x8__generic(const float *src, size_t lds, float *dst, size_t ldd);
void ck_f32_transpose_8x8__avx2(const float *src, size_t lds, float *dst, size_t ldd);
void ck_f32_transpose_16x16__avx512(const float *src, size_t lds, float *dst, size_t ldd);
void ck_f32_transpose_16x16__avx512_stream(const float *src, size_t lds, float *dst, size_t ldd);
void ck_transpose_fence__avx512(void);

/* ---- The table ---------------------------------------------------------------------------- */

/* Everything an engine needs for one ISA: kernels, their tile shapes, and the cache blocking.
 * Block sizes, and the cache each targets (Goto/BLIS):
 *   kc: a KC x NR panel of B stays in L1 while a micro-kernel streams A;
 *   mc: an MC x KC block of packed A stays in L2;
 *   nc: a KC x NC panel of packed B stays in L3 (shared).
 * mc is a multiple of mr, nc a multiple of nr. */
typedef struct ck_kernels {
  ck_isa isa;
  const char *name;

  ck_gemm_ukernel gemm;
  const char *gemm_name; /* e.g. "ck_f32_gemm_14x32__avx512" */
  int mr, nr;
  int mc, kc, nc;
  /* the packed GEMM's companions, all with the gemm kernel's MR x NR tile and bits */
  ck_gemm_packt_fn gemm_packt;       /* never NULL */
  ck_gemm_packn_fn gemm_packn;       /* NULL: the engine's portable packer */
  ck_gemm_direct_fn gemm_direct;     /* NULL: none, the engine packs */
  ck_gemm_prefetch_fn gemm_prefetch; /* NULL: none */
  /* a direct kernel of fewer, wider rows (its own tile, direct_wide_mr x direct_wide_nr, the
     same bits per element) for products of at most direct_wide_nr columns with A and B read in
     place; NULL: none */
  ck_gemm_direct_fn gemm_direct_wide;
  int direct_wide_mr, direct_wide_nr;

  ck_igemm_ukernel igemm;
  const char *igemm_name;
  int igemm_mr, igemm_nr;

  ck_dwconv_ukernel dwconv_3x3, dwconv_5x5, dwconv_any;
  const char *dwconv_name;
  int dw_cb;

  ck_transpose_ukernel transpose;
  ck_transpose_ukernel transpose_stream; /* NULL: none */
  ck_transpose_fence_fn transpose_fence; /* with transpose_stream */
  int transpose_tile;
} ck_kernels;

/* The kernel table of an ISA, or NULL when this build lacks it or this CPU cannot run it.
 * CK_ISA_AUTO resolves to CONVKIT_ISA when set (NULL if that name is unknown or unavailable),
 * otherwise to the best ISA. Thread-safe; detection runs once. */
const ck_kernels *ck_kernels_for(ck_isa isa);

/* Resolves CK_ISA_AUTO (with the CONVKIT_ISA override) to a concrete available ISA, or fails
 * with a sentence. */
ck_status ck_resolve_isa(ck_isa requested, ck_isa *resolved);

/* The per-ISA tables; a build for a target without an ISA does not define its table. */
extern const ck_kernels ck_kernels_generic;
extern const ck_kernels ck_kernels_avx2;
extern const ck_kernels ck_kernels_avx512;
extern const ck_kernels ck_kernels_neon;

#endif
