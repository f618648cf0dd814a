#include "lower.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Short copies dominate the lowering (a panel row is NR or MR floats): inline 4-float vector
 * moves (the baseline ISA's width) rather than calls to memcpy. */
typedef float v4f __attribute__((vector_size(16), aligned(4), may_alias));
typedef int v4i __attribute__((vector_size(16)));
/* Elements 0 and 2 of a, 1 and 3 of b: with a loaded at src and b at src + 3, the elements
 * src[0], src[2], src[4], src[6], and nothing past src[6] is read. */
#if defined(__clang__)
#define CK_EVENS(a, b) __builtin_shufflevector((a), (b), 0, 2, 5, 7)
#else
#define CK_EVENS(a, b) __builtin_shuffle((a), (b), (v4i){0, 2, 5, 7})
#endif

static inline void copy_floats(float *dst, const float *src, size_t n) {
  size_t t = 0;
  for (; t + 8 <= n; t += 8) {
    *(v4f *)(dst + t) = *(const v4f *)(src + t);
    *(v4f *)(dst + t + 4) = *(const v4f *)(src + t + 4);
  }
  for (; t + 4 <= n; t += 4) *(v4f *)(dst + t) = *(const v4f *)(src + t);
  for (; t < n; t++) dst[t] = src[t];
}

static inline void zero_floats(float *dst, size_t n) {
  size_t t = 0;
  for (; t + 4 <= n; t += 4) *(v4f *)(dst + t) = (v4f){0};
  for (; t < n; t++) dst[t] = 0.0f;
}

/* dst[t] = src[t*step] for t < n. Stride 2 (the strided layers of the suite) deinterleaves
 * four elements from two overlapping vectors (CK_EVENS), so nothing past src[(n-1)*step] is
 * read; a run of at least 4 ends with a vector moved back to end at n, rewriting up to three
 * elements with the same values instead of a scalar tail. */
static inline void copy_strided(float *dst, const float *src, size_t n, long step) {
  size_t t = 0;
  if (step == 2 && n >= 4) {
    for (; t + 4 <= n; t += 4) {
      const v4f a = *(const v4f *)(src + 2 * t), b = *(const v4f *)(src + 2 * t + 3);
      *(v4f *)(dst + t) = CK_EVENS(a, b);
    }
    if (t < n) {
      t = n - 4;
      const v4f a = *(const v4f *)(src + 2 * t), b = *(const v4f *)(src + 2 * t + 3);
      *(v4f *)(dst + t) = CK_EVENS(a, b);
    }
    return;
  }
  for (; t < n; t++) dst[t] = src[(long)t * step];
}

/* dst[t] = src[iw0 + t*step] for t in [lo, hi), zero elsewhere in [0, len). */
static inline void copy_range(float *dst, size_t len, const float *src, long iw0, long step,
                              size_t lo, size_t hi) {
  zero_floats(dst, lo);
  if (step == 1) {
    copy_floats(dst + lo, src + iw0 + (long)lo, hi - lo);
  } else {
    copy_strided(dst + lo, src + iw0 + (long)lo * step, hi - lo, step);
  }
  zero_floats(dst + hi, len - hi);
}

void ck_lower_rows(float *dst, size_t dst_stride, size_t count, size_t len, const float *src,
                   size_t src_stride, long iw0, long step, long w) {
  size_t lo, hi;
  ck_lower_valid_range(len, iw0, step, w, &lo, &hi);
  for (size_t c = 0; c < count; c++)
    copy_range(dst + c * dst_stride, len, src + c * src_stride, iw0, step, lo, hi);
}

void ck_lower_plane_taps(const ck_conv_problem *pb, const float *plane, size_t oh0, size_t nr,
                         float *x) {
  /* Locals, not loads through pb: the vector stores below may alias anything. */
  const ck_conv_desc *d = &pb->d;
  const size_t OW = (size_t)pb->out_w, np = nr * OW;
  const long H = d->in_height, W = d->in_width, sh = d->stride_height, sw = d->stride_width;
  const long KH = d->kernel_height, KW = d->kernel_width, dh = d->dilation_height;
  const long dw = d->dilation_width, pt = d->pad_top, pl = d->pad_left;
  for (long kh = 0; kh < KH; kh++)
    for (long kw = 0; kw < KW; kw++) {
      const long iw0 = -pl + kw * dw;
      size_t lo, hi;
      ck_lower_valid_range(OW, iw0, sw, W, &lo, &hi);
      float *dst = x + (size_t)(kh * KW + kw) * np;
      for (size_t r = 0; r < nr; r++, dst += OW) {
        const long ih = (long)(oh0 + r) * sh - pt + kh * dh;
        if (ih < 0 || ih >= H)
          zero_floats(dst, OW);
        else
          copy_range(dst, OW, plane + ih * W, iw0, sw, lo, hi);
      }
    }
}

void ck_lower_gather(float *dst, size_t pw, size_t cg, const float *const *ptrs, const float *zero,
                     ck_gemm_packt_fn packt) {
  /* Under 8 channels a register transpose moves mostly padding lanes: element by element. */
  if (packt != NULL && cg >= 8 && ptrs[0] != zero) {
    size_t h = 1;
    const ptrdiff_t rs = pw > 1 && ptrs[1] != zero ? ptrs[1] - ptrs[0] : 0;
    while (h < pw && ptrs[h] != zero && ptrs[h] - ptrs[0] == (ptrdiff_t)h * rs) h++;
    size_t z = h;
    while (z < pw && ptrs[z] == zero) z++;
    if (z == pw && (rs > 0 || h == 1)) {
      packt(h, pw, cg, ptrs[0], (size_t)rs, dst);
      return;
    }
  }
  for (size_t c = 0; c < cg; c++)
    for (size_t j = 0; j < pw; j++) dst[c * pw + j] = ptrs[j][c];
}

/* Channel planes ahead at which MEC's cuts (ck_lower_cuts) prefetch their source, into L2: its
 * pieces of rows (a chunk of output columns) are too short for the hardware prefetchers, which
 * serve im2col's whole rows well enough (there the hints measured no gain). */
#define PF_AHEAD 4

/* The cache lines of src[0..last], for reading, skipping those up to *done (the last line
 * prefetched before: successive cuts read overlapping spans); *done becomes the last line. */
static inline void prefetch_span(const float *src, long last, uintptr_t *done) {
  const uintptr_t lo = (uintptr_t)src / 64, hi = (uintptr_t)(src + last) / 64;
  if (hi == *done) return;
  for (uintptr_t x = lo == *done ? lo + 1 : lo; x <= hi; x++)
    __builtin_prefetch((const void *)(x * 64), 0, 2);
  *done = hi;
}

/* Cuts planned per batch: enough to cover a tile's taps for several output rows. */
#define CUTS 128

/* One cut into out: zeros, the elements in the image (x->src + t*step for t in [lo, hi)), zeros.
 * A whole cut (the common case) is one unrolled copy when pw and step are constants. */
static inline __attribute__((always_inline)) void
apply_cut(const ck_lower_cut *x, float *out, const float *in_g, size_t pw, long step) {
  if (x->len == pw && x->lo == 0 && x->hi == pw && (step == 1 || step == 2)) {
    if (step == 1)
      copy_floats(out, in_g + x->src, pw);
    else
      copy_strided(out, in_g + x->src, pw, 2);
    return;
  }
  zero_floats(out, x->lo);
  if (step == 1)
    copy_floats(out + x->lo, in_g + x->src + (long)x->lo, x->hi - x->lo);
  else
    copy_strided(out + x->lo, in_g + x->src + (long)x->lo * step, x->hi - x->lo, step);
  zero_floats(out + x->hi, x->len - x->hi);
}

/* Applies the cuts to every channel, channel by channel: one input plane at a time is read (its
 * rows stay in L1 across the cuts) and each channel's rows of the panels are written; with
 * ahead > 0, the source of plane c + ahead is prefetched while plane c is copied. */
static inline __attribute__((always_inline)) void
apply_cuts(const ck_lower_cut *cuts, size_t n, size_t pw, long step, size_t cg, const float *in_g,
           size_t plane, float *dst, size_t cstride, size_t ahead) {
  for (size_t c = 0; c < cg; c++, in_g += plane, dst += cstride) {
    const int pf = ahead > 0 && c + ahead < cg;
    uintptr_t done = 0;
    for (size_t e = 0; e < n; e++) {
      const ck_lower_cut *x = &cuts[e];
      if (pf && x->hi > x->lo)
        prefetch_span(in_g + ahead * plane + x->src + (long)x->lo * step,
                      (long)(x->hi - x->lo - 1) * step, &done);
      apply_cut(x, dst + x->dst, in_g, pw, step);
    }
  }
}

void ck_lower_cuts(const ck_lower_cut *cuts, size_t n, size_t pw, long step, size_t cg,
                   const float *in_g, size_t plane, float *dst, size_t cstride) {
  switch (pw) { /* the engines' MR values: the full cuts' copies unrolled */
  case 14:
    if (step == 2) /* the strided layers of the suite */
      apply_cuts(cuts, n, 14, 2, cg, in_g, plane, dst, cstride, PF_AHEAD);
    else
      apply_cuts(cuts, n, 14, step, cg, in_g, plane, dst, cstride, PF_AHEAD);
    break;
  case 8:
    apply_cuts(cuts, n, 8, step, cg, in_g, plane, dst, cstride, PF_AHEAD);
    break;
  case 6:
    apply_cuts(cuts, n, 6, step, cg, in_g, plane, dst, cstride, PF_AHEAD);
    break;
  default:
    apply_cuts(cuts, n, pw, step, cg, in_g, plane, dst, cstride, PF_AHEAD);
  }
}

/* Stride 1 with output rows as wide as the input rows (the "same" padding of most 3x3 layers):
 * output pixel p reads plane element p + off for a tap, across output rows too, so a panel row is
 * one contiguous copy instead of a cut per output row (a 14-wide image put three or four short
 * copies in each 32-pixel panel row, and the lowering took a sixth of im2col's and kn2row-aa's
 * time on resnet50_res4_3x3). The pixels whose input column lies in the left or right padding
 * (a few per output row) are then zeroed one by one, from a list planned with the cut; those whose
 * input row lies in the padding are outside [lo, hi), like the elements before the plane's first
 * or after its last (always padding columns), so nothing outside the plane is read. */
typedef struct {
  ck_lower_cut cut; /* stride 1, across output rows */
  unsigned z0, nz;  /* the zeroed pixels: zpos[z0 .. z0 + nz) */
} flat_cut;

#define FLAT_ZPOS (CUTS * 8)
_Static_assert(CK_LOWER_MAX_PW <= 256 && CK_LOWER_MAX_PW <= FLAT_ZPOS,
               "zpos holds pixel offsets in a panel");

static inline __attribute__((always_inline)) void
apply_flat(const flat_cut *cuts, size_t n, const unsigned char *zpos, size_t pw, size_t cg,
           const float *in_g, size_t plane, float *dst, size_t cstride) {
  for (size_t c = 0; c < cg; c++, in_g += plane, dst += cstride) {
    for (size_t e = 0; e < n; e++) {
      const flat_cut *x = &cuts[e];
      float *out = dst + x->cut.dst;
      apply_cut(&x->cut, out, in_g, pw, 1);
      for (unsigned z = 0; z < x->nz; z++) out[zpos[x->z0 + z]] = 0.0f;
    }
  }
}

/* Whether the flat lowering applies: stride 1, OW == W, and every tap's padding columns at most a
 * quarter of a row (each is a scalar store per channel). */
static int flat_ok(const ck_conv_problem *pb, ck_tap_range taps) {
  const ck_conv_desc *d = &pb->d;
  const long W = d->in_width;
  if (d->stride_height != 1 || d->stride_width != 1 || pb->out_w != W) return 0;
  for (long kw = taps.kw0; kw < (long)taps.kw0 + taps.nkw; kw++) {
    const long off = kw * d->dilation_width - d->pad_left; /* iw = ow + off */
    const long pad = (off < 0 ? -off : off);               /* columns out of [0, W) per row */
    if (pad * 4 > W) return 0;
  }
  return 1;
}

static inline __attribute__((always_inline)) void lower_nchw_flat(const ck_conv_problem *pb,
                                                                  const float *in_g, size_t p0,
                                                                  size_t np, ck_tap_range taps,
                                                                  size_t pw, float *dst) {
  const ck_conv_desc *d = &pb->d;
  const long H = d->in_height, W = d->in_width, HW = H * W;
  const long dh = d->dilation_height, dw = d->dilation_width;
  const long pt = d->pad_top, pl = d->pad_left;
  const size_t cg = (size_t)pb->cin_g, nkh = (size_t)taps.nkh, nkw = (size_t)taps.nkw;
  const size_t kdim = cg * nkh * nkw, pstride = kdim * pw, cstride = nkh * nkw * pw;
  flat_cut cuts[CUTS];
  unsigned char zpos[FLAT_ZPOS];
  size_t n = 0, nz = 0;
  for (size_t a = 0; a < np; a += pw) {
    const long ps = (long)(p0 + a), len = np - a < pw ? (long)(np - a) : (long)pw;
    for (size_t kh = 0; kh < nkh; kh++) {
      const long rk = ((long)taps.kh0 + (long)kh) * dh - pt; /* ih = oh + rk */
      /* pixels whose input row is in the image: [(-rk)*W, (H - rk)*W) */
      long lo = -rk * W - ps, hi = (H - rk) * W - ps;
      for (size_t kw = 0; kw < nkw; kw++) {
        const long ck = ((long)taps.kw0 + (long)kw) * dw - pl; /* iw = ow + ck */
        const long off = rk * W + ck;
        /* and whose element lies in the plane (the rest are padding columns) */
        long l = lo > -off - ps ? lo : -off - ps, h = hi < HW - off - ps ? hi : HW - off - ps;
        if (l < 0) l = 0;
        if (l > len) l = len;
        if (h > len) h = len;
        if (h < l) h = l;
        if (n == CUTS || nz + pw > FLAT_ZPOS) {
          apply_flat(cuts, n, zpos, pw, cg, in_g, (size_t)HW, dst, cstride);
          n = nz = 0;
        }
        /* the padding columns: ow < -ck or ow >= W - ck, on each output row in [l, h) */
        const size_t z0 = nz;
        if (ck != 0 && l < h) {
          const long c_lo = ck < 0 ? 0 : W - ck, c_hi = ck < 0 ? -ck : W; /* columns to zero */
          for (long row = (ps + l) / W * W; row < ps + h; row += W) {
            long z = row + c_lo - ps, zend = row + c_hi - ps;
            if (z < l) z = l;
            if (zend > h) zend = h;
            for (; z < zend; z++) zpos[nz++] = (unsigned char)z;
          }
        }
        cuts[n++] = (flat_cut){.cut = {.dst = a / pw * pstride + (kh * nkw + kw) * pw,
                                       .src = ps + off,
                                       .len = (unsigned)len,
                                       .lo = (unsigned)l,
                                       .hi = (unsigned)h},
                               .z0 = (unsigned)z0,
                               .nz = (unsigned)(nz - z0)};
      }
    }
  }
  apply_flat(cuts, n, zpos, pw, cg, in_g, (size_t)HW, dst, cstride);
}

/* The cuts follow the output rows the tile covers, the taps, and the panel boundaries; they are
 * planned once and applied to every channel. pw is a constant in the specialized callers. */
static inline __attribute__((always_inline)) void lower_nchw(const ck_conv_problem *pb,
                                                             const float *in_g, size_t p0,
                                                             size_t np, ck_tap_range taps,
                                                             size_t pw, float *dst) {
  const ck_conv_desc *d = &pb->d;
  const long H = d->in_height, W = d->in_width, OW = pb->out_w;
  const long sh = d->stride_height, sw = d->stride_width;
  const long dh = d->dilation_height, dw = d->dilation_width;
  const long pt = d->pad_top, pl = d->pad_left;
  const size_t cg = (size_t)pb->cin_g, nkh = (size_t)taps.nkh, nkw = (size_t)taps.nkw;
  const size_t kdim = cg * nkh * nkw, pstride = kdim * pw, cstride = nkh * nkw * pw;
  const size_t plane = (size_t)(H * W);
  const size_t tail = np % pw;
  if (tail) { /* columns past the tile in its last panel */
    float *panel = dst + np / pw * pstride;
    for (size_t k = 0; k < kdim; k++) zero_floats(panel + k * pw + tail, pw - tail);
  }
  if (flat_ok(pb, taps)) {
    lower_nchw_flat(pb, in_g, p0, np, taps, pw, dst);
    return;
  }
  ck_lower_cut cuts[CUTS];
  size_t n = 0;
  for (size_t i = 0; i < np;) {
    const size_t p = p0 + i;
    const long oh = (long)(p / (size_t)OW), ow0 = (long)(p % (size_t)OW);
    const size_t run = np - i < (size_t)(OW - ow0) ? np - i : (size_t)(OW - ow0);
    for (size_t kh = 0; kh < nkh; kh++) {
      const long ih = oh * sh - pt + ((long)taps.kh0 + (long)kh) * dh;
      const int row_ok = ih >= 0 && ih < H;
      for (size_t kw = 0; kw < nkw; kw++) {
        const long iw0 = ow0 * sw - pl + ((long)taps.kw0 + (long)kw) * dw;
        size_t lo = 0, hi = 0;
        if (row_ok) ck_lower_valid_range(run, iw0, sw, W, &lo, &hi);
        /* the run, cut at panel boundaries */
        for (size_t t = 0; t < run;) {
          const size_t col = (i + t) % pw, len = pw - col < run - t ? pw - col : run - t;
          size_t l = lo > t ? (lo - t < len ? lo - t : len) : 0;
          size_t h = hi > t ? (hi - t < len ? hi - t : len) : 0;
          if (h < l) h = l;
          cuts[n++] = (ck_lower_cut){.dst = (i + t) / pw * pstride + (kh * nkw + kw) * pw + col,
                                     .src = (row_ok ? ih : 0) * W + iw0 + (long)t * sw,
                                     .len = (unsigned)len,
                                     .lo = (unsigned)l,
                                     .hi = (unsigned)h};
          if (n == CUTS) {
            apply_cuts(cuts, n, pw, sw, cg, in_g, plane, dst, cstride, 0);
            n = 0;
          }
          t += len;
        }
      }
    }
    i += run;
  }
  apply_cuts(cuts, n, pw, sw, cg, in_g, plane, dst, cstride, 0);
}

void ck_lower_nchw(const ck_conv_problem *pb, const float *in_g, size_t p0, size_t np,
                   ck_tap_range taps, size_t pw, float *dst) {
  switch (pw) { /* the engines' NR values */
  case 32:
    lower_nchw(pb, in_g, p0, np, taps, 32, dst);
    break;
  case 16:
    lower_nchw(pb, in_g, p0, np, taps, 16, dst);
    break;
  case 8:
    lower_nchw(pb, in_g, p0, np, taps, 8, dst);
    break;
  default:
    lower_nchw(pb, in_g, p0, np, taps, pw, dst);
  }
}

void ck_lower_nhwc(const ck_conv_problem *pb, const float *in_g, const float *zero, size_t p0,
                   size_t np, ck_tap_range taps, size_t pw, ck_gemm_packt_fn packt, float *dst) {
  const ck_conv_desc *d = &pb->d;
  const long H = d->in_height, W = d->in_width, OW = pb->out_w, C = d->in_channels;
  const long sh = d->stride_height, sw = d->stride_width;
  const long dh = d->dilation_height, dw = d->dilation_width;
  const long pt = d->pad_top, pl = d->pad_left;
  const size_t cg = (size_t)pb->cin_g, nkh = (size_t)taps.nkh, nkw = (size_t)taps.nkw;
  const size_t kdim = cg * nkh * nkw;
  long oh[CK_LOWER_MAX_PW], ow[CK_LOWER_MAX_PW];
  const float *ptrs[CK_LOWER_MAX_PW];
  for (size_t a = 0, q = 0; a < np; a += pw, q++) {
    float *panel = dst + q * kdim * pw;
    const size_t cnt = np - a < pw ? np - a : pw;
    for (size_t j = 0; j < cnt; j++) {
      oh[j] = (long)((p0 + a + j) / (size_t)OW);
      ow[j] = (long)((p0 + a + j) % (size_t)OW);
    }
    /* A full panel within one output row, whose taps of a kernel row all lie inside the image:
     * when the group is all the channels and dilation_w is 1, or the row is one tap, a pixel's
     * nkw*cg floats of that kernel row are contiguous in the input (k = (kw, c)), so the whole
     * kernel row is one transposing pack of pw rows spaced sw*C apart. */
    const long dx0 = -pl + (long)taps.kw0 * dw;
    const int row_run = packt != NULL && cnt == pw && (nkw == 1 || ((size_t)C == cg && dw == 1)) &&
                        nkw * cg >= 8 && oh[0] == oh[pw - 1] && ow[0] * sw + dx0 >= 0 &&
                        ow[pw - 1] * sw + dx0 + (long)nkw - 1 < W;
    for (size_t kh = 0; kh < nkh; kh++) {
      if (row_run) {
        const long ih = oh[0] * sh - pt + ((long)taps.kh0 + (long)kh) * dh;
        if (ih >= 0 && ih < H) {
          packt(pw, pw, nkw * cg, in_g + (ih * W + ow[0] * sw + dx0) * C, (size_t)(sw * C),
                panel + kh * nkw * cg * pw);
          continue;
        }
      }
      for (size_t kw = 0; kw < nkw; kw++) {
        const long dy = -pt + ((long)taps.kh0 + (long)kh) * dh;
        const long dx = -pl + ((long)taps.kw0 + (long)kw) * dw;
        for (size_t j = 0; j < pw; j++) {
          ptrs[j] = zero;
          if (j >= cnt) continue;
          const long ih = oh[j] * sh + dy, iw = ow[j] * sw + dx;
          if (ih >= 0 && ih < H && iw >= 0 && iw < W) ptrs[j] = in_g + (ih * W + iw) * C;
        }
        ck_lower_gather(panel + (kh * nkw + kw) * cg * pw, pw, cg, ptrs, zero, packt);
      }
    }
  }
}
