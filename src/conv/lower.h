/*
 * Lowering: copying convolution patches into the packed panel layout of the GEMM engine (gemm.h),
 * so that the engine multiplies them without packing them again.
 *
 * A pixel operand is a sequence of panels of `pw` pixels (pw is the engine's NR when the pixels
 * are the B operand, MR when they are the A operand; both packed layouts are the same shape):
 * element (k, j) of panel q is at dst[q*kdim*pw + k*pw + j], where j is the pixel's place in the
 * panel and k the row of the lowered matrix. Pixels past the end of the tile are zero.
 *
 * The taps lowered are kh in [kh0, kh0+nkh) and kw in [kw0, kw0+nkw), with the group's cg
 * channels, so kdim = cg*nkh*nkw. The row order follows the source layout, which keeps the inner
 * copies contiguous:
 *   NCHW source: k = (c, kh, kw)    (pixels along a row of the image are adjacent)
 *   NHWC source: k = (kh, kw, c)    (the channels of a pixel are adjacent)
 * im2col lowers every tap at once; kn2row and kn2row-aa lower one tap at a time (a gather of the
 * shifted, strided input).
 */
#ifndef CK_CONV_LOWER_H
#define CK_CONV_LOWER_H

#include <stddef.h>

#include "../gemm.h"
#include "conv.h"

typedef struct {
  int kh0, nkh, kw0, nkw;
} ck_tap_range;

/* The t in [0, len) for which 0 <= iw0 + t*step < w, as [*lo, *hi). */
static inline void ck_lower_valid_range(size_t len, long iw0, long step, long w, size_t *lo,
                                        size_t *hi) {
  long l, h;
  if (step == 1) { /* no divisions on the common path */
    l = iw0 >= 0 ? 0 : -iw0;
    h = w - iw0;
  } else {
    l = iw0 >= 0 ? 0 : (-iw0 + step - 1) / step;
    h = iw0 >= w ? 0 : (w - 1 - iw0) / step + 1;
  }
  if (l > (long)len) l = (long)len;
  if (h > (long)len) h = (long)len;
  if (h < l) h = l;
  *lo = (size_t)l;
  *hi = (size_t)h;
}

/* One cut of an NCHW lowering, the same for every channel: the piece of a panel row at offset
 * `dst` (plus c * cstride for channel c) takes `len` source elements starting at offset `src`
 * from the group's first plane (plus c * plane, plus t * step), of which [lo, hi) lie inside the
 * image (the rest is padding, zero). */
typedef struct {
  size_t dst;
  long src;
  unsigned len, lo, hi;
} ck_lower_cut;

/* Applies n cuts to cg channels, channel by channel: one input plane at a time is read (its rows
 * stay in L1 across the cuts, which would not hold if each cut walked all the planes, whose
 * strides alias in L1) and each channel's pieces of the panels are written. A cut of length pw
 * with no padding is one unrolled copy. */
void ck_lower_cuts(const ck_lower_cut *cuts, size_t n, size_t pw, long step, size_t cg,
                   const float *in_g, size_t plane, float *dst, size_t cstride);

/* in_g: the image's first channel of the group (in + (n*C + g*cg)*H*W). Output pixels
 * [p0, p0+np) in row-major (oh, ow) order. */
void ck_lower_nchw(const ck_conv_problem *pb, const float *in_g, size_t p0, size_t np,
                   ck_tap_range taps, size_t pw, float *dst);

/* in_g: the image's first pixel at the group's first channel (in + n*H*W*C + g*cg); pixel
 * (ih, iw) at in_g + (ih*W + iw)*C. zero: cg floats of 0.0f, read for padding taps. */
void ck_lower_nhwc(const ck_conv_problem *pb, const float *in_g, const float *zero, size_t p0,
                   size_t np, ck_tap_range taps, size_t pw, ck_gemm_packt_fn packt, float *dst);

/* For `count` rows c: dst[c*dst_stride + t] = src[c*src_stride + iw0 + t*step] where
 * 0 <= iw0 + t*step < w, else 0, for t < len. The valid range is computed once for all rows. */
void ck_lower_rows(float *dst, size_t dst_stride, size_t count, size_t len, const float *src,
                   size_t src_stride, long iw0, long step, long w);

/* One input plane's taps for output rows [oh0, oh0+nr), as the depthwise NCHW lowering wants
 * them: x[k*nr*OW + r*OW + t] = plane[ih*W + iw] for tap k = kh*KW + kw, ih = (oh0+r)*SH - PT +
 * kh*DH, iw = t*SW - PL + kw*DW, or 0 in the padding. One call per tile, the valid range of a
 * tap's columns computed once for all its rows. */
void ck_lower_plane_taps(const ck_conv_problem *pb, const float *plane, size_t oh0, size_t nr,
                         float *x);

/* dst[c*pw + j] = ptrs[j][c] for c < cg, j < pw: the transpose of pw rows of cg floats into a
 * block of a panel. Pointers equal to `zero` (cg floats of 0.0f) are padding. When the leading
 * non-padding pointers are evenly spaced and the rest are padding (the interior of an image row
 * at any stride), the block is one call of the ISA's transposing packer `packt` (gemm.h), which
 * moves 16 x 16 blocks in registers; otherwise (or with packt NULL, or under 8 channels) element
 * by element. */
void ck_lower_gather(float *dst, size_t pw, size_t cg, const float *const *ptrs, const float *zero,
                     ck_gemm_packt_fn packt);

/* The largest pixel-panel width the lowering routines accept (they keep pw pointers on the
 * stack). Every kernel table's MR and NR is below it. */
#define CK_LOWER_MAX_PW 64

#endif
