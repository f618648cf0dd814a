/*
 * The indirect GEMM engine (Dukhan 2019): weight packing, the indirection base, and the tile loop
 * around the igemm micro-kernels of kernels.h; plus the declarations of those kernels and of the
 * depthwise kernels that read the same kind of indirection.
 *
 * Indirection pointers are positions, not addresses. Building them once at plan time against the
 * real input would tie a plan to one input buffer; building them against a made-up base and
 * adding (input - base) per call would be pointer arithmetic outside any object (undefined in C,
 * flagged by UBSan). So a pointer of the buffer is the integer `base + byte offset` cast to a
 * pointer, and execute passes a_offset = (uintptr_t)input - base, the two summed by the kernel
 * in uintptr_t arithmetic modulo 2^64. The base is chosen by ck_indirection_base so that no
 * position equals the zero row's address (the kernels compare against it) and, when the address
 * space allows, so that a_offset stays below 2^63 and no sum wraps.
 */
#ifndef CK_IGEMM_H
#define CK_IGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* ---- Indirection ------------------------------------------------------------------------- */

/* A base for positions of an input of `span_bytes` bytes that never meet the zero row
 * [zero, zero + zero_bytes): a low base (one alignment unit above 0) when that range is clear
 * of the zero row, otherwise just past the zero row. */
uintptr_t ck_indirection_base(const float *zero, size_t zero_bytes, size_t span_bytes);

/* The position of byte offset `off` from `base`. */
static inline const float *ck_indirection_ptr(uintptr_t base, size_t off) {
  return (const float *)(base + off);
}

/* ---- Weight packing ---------------------------------------------------------------------- */

/* Floats of one packed NR-channel block of ks taps of kc channels: [bias NR][ks][kc][NR]. */
static inline size_t ck_igemm_block_floats(size_t nr, size_t ks, size_t kc) {
  return nr * (1 + ks * kc);
}

/* Packs n output channels into ceil(n / nr) blocks at `packed`. filter element (j, k, t) of
 * output channel j < n, input channel k < kc and tap t < ks is filter[(j*kc + k)*ks + t] (one
 * group of an OIHW filter); bias has n values. Columns past n are zero. */
void ck_igemm_pack(size_t nr, size_t n, size_t ks, size_t kc, const float *filter,
                   const float *bias, float *packed);

/* Floats of packed depthwise weights: ceil(channels / cb) blocks of [bias cb][ks][cb]. */
static inline size_t ck_dwconv_packed_floats(size_t cb, size_t channels, size_t ks) {
  return (channels + cb - 1) / cb * cb * (1 + ks);
}

/* Packs depthwise weights in blocks of cb channels. Kernel tap t of channel c is
 * filter[c*ks + tap_of[t]] (tap_of lets the indirection order taps its own way; NULL is the
 * identity); bias has `channels` values. Channels past the end are zero. */
void ck_dwconv_pack(size_t cb, size_t channels, size_t ks, const float *filter, const int *tap_of,
                    const float *bias, float *packed);

/* ---- The tile loop ----------------------------------------------------------------------- */

/* One indirect GEMM problem: `groups` independent products over `tiles` pixel tiles of MR
 * pixels (the last one partial), sharing one indirection buffer. */
typedef struct {
  const ck_kernels *kern;    /* igemm, igemm_mr, igemm_nr */
  size_t pixels;             /* output pixels per image */
  size_t ks, kc;             /* taps, channels per tap (per group) */
  const float **indirection; /* ceil(pixels / MR) * ks * MR positions, tile-major */
  const float *zero;         /* max(kc, kc_merged) floats of zero */
  size_t groups;             /* products per image */
  size_t n;                  /* output channels per group */
  const float *packed;       /* groups * ceil(n / NR) packed blocks */
  size_t out_stride;         /* floats between output pixels (all channels of all groups) */
  size_t a_group_bytes;      /* a_offset step from one group to the next (its input channels) */
  ck_clamp_params clamp;
  /* Tiles whose taps were merged (NULL: none): merged[tile] != 0 reads the tile as ks_merged
   * taps of kc_merged channels from the start of its slot. The packed weights are the same:
   * element (t, k) sits at (t*kc + k)*NR, and a merged tap of kw*C contiguous channels is kw
   * taps of C, so both readings sum the same products in the same order (the same bits). */
  const unsigned char *merged;
  size_t ks_merged, kc_merged;
} ck_igemm_op;

/* Runs op on `batch` images: image b reads its positions with a_offset = a_base +
 * b*a_image_bytes (+ the group step) and writes output + b*out_image_floats, each group at
 * channel g*n. Parallel with `threads` threads over (image, group, channel chunk, pixel tiles);
 * the result does not depend on the thread count. */
void ck_igemm_run(const ck_igemm_op *op, size_t batch, uintptr_t a_base, size_t a_image_bytes,
                  float *output, size_t out_image_floats, int threads);

/* ---- Kernels ----------------------------------------------------------------------------- */

/* The igemm and dwconv contracts of kernels.h in plain C for any tile shape (MR x NR, CB
 * channels per block): the generic kernels are these with fixed shapes, and every ISA kernel is
 * tested against them. */
void ck_f32_igemm_ref(size_t MR, size_t NR, size_t mr, size_t nr, size_t kc, size_t ks,
                      const float **a, size_t a_offset, const float *zero, const float *w, float *c,
                      size_t cm_stride, const ck_clamp_params *p);
void ck_f32_dwconv_ref(size_t CB, size_t channels, size_t pixels, size_t ks, const float **input,
                       size_t input_stride, size_t input_offset, const float *zero,
                       const float *weights, float *output, size_t output_stride,
                       const ck_clamp_params *p);

void ck_f32_igemm_4x8__generic(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                               size_t a_offset, const float *zero, const float *w, float *c,
                               size_t cm_stride, const ck_clamp_params *p);
void ck_f32_igemm_6x16__avx2(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                             size_t a_offset, const float *zero, const float *w, float *c,
                             size_t cm_stride, const ck_clamp_params *p);
void ck_f32_igemm_7x64__avx512(size_t mr, size_t nr, size_t kc, size_t ks, const float **a,
                               size_t a_offset, const float *zero, const float *w, float *c,
                               size_t cm_stride, const ck_clamp_params *p);

void ck_f32_dwconv_9p8c__generic(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p);
void ck_f32_dwconv_25p8c__generic(size_t channels, size_t pixels, size_t ks, const float **input,
                                  size_t input_stride, size_t input_offset, const float *zero,
                                  const float *weights, float *output, size_t output_stride,
                                  const ck_clamp_params *p);
void ck_f32_dwconv_mp8c__generic(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p);
void ck_f32_dwconv_9p8c__avx2(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p);
void ck_f32_dwconv_25p8c__avx2(size_t channels, size_t pixels, size_t ks, const float **input,
                               size_t input_stride, size_t input_offset, const float *zero,
                               const float *weights, float *output, size_t output_stride,
                               const ck_clamp_params *p);
void ck_f32_dwconv_mp8c__avx2(size_t channels, size_t pixels, size_t ks, const float **input,
                              size_t input_stride, size_t input_offset, const float *zero,
                              const float *weights, float *output, size_t output_stride,
                              const ck_clamp_params *p);
void ck_f32_dwconv_9p16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p);
void ck_f32_dwconv_25p16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                  size_t input_stride, size_t input_offset, const float *zero,
                                  const float *weights, float *output, size_t output_stride,
                                  const ck_clamp_params *p);
void ck_f32_dwconv_mp16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p);

#endif
