#include "lower.h"

#include <string.h>

/* The t in [0, len) for which 0 <= iw0 + t*step < w, as [*lo, *hi). */
static void valid_range(size_t len, long iw0, long step, long w, size_t *lo, size_t *hi) {
  long l = iw0 >= 0 ? 0 : (-iw0 + step - 1) / step;
  long h = iw0 >= w ? 0 : (w - 1 - iw0) / step + 1;
  if (l > (long)len) l = (long)len;
  if (h > (long)len) h = (long)len;
  if (h < l) h = l;
  *lo = (size_t)l;
  *hi = (size_t)h;
}

/* dst[t] = src[iw0 + t*step] for t in [lo, hi), zero elsewhere in [0, len). */
static void copy_range(float *dst, size_t len, const float *src, long iw0, long step, size_t lo,
                       size_t hi) {
  for (size_t t = 0; t < lo; t++) dst[t] = 0.0f;
  if (step == 1) {
    const float *s = src + iw0;
    for (size_t t = lo; t < hi; t++) dst[t] = s[t];
  } else {
    for (size_t t = lo; t < hi; t++) dst[t] = src[iw0 + (long)t * step];
  }
  for (size_t t = hi; t < len; t++) dst[t] = 0.0f;
}

void ck_lower_rows(float *dst, size_t dst_stride, size_t count, size_t len, const float *src,
                   size_t src_stride, long iw0, long step, long w) {
  size_t lo, hi;
  valid_range(len, iw0, step, w, &lo, &hi);
  for (size_t c = 0; c < count; c++)
    copy_range(dst + c * dst_stride, len, src + c * src_stride, iw0, step, lo, hi);
}

void ck_lower_gather(float *dst, size_t pw, size_t cg, const float *const *ptrs) {
  for (size_t c = 0; c < cg; c++)
    for (size_t j = 0; j < pw; j++) dst[c * pw + j] = ptrs[j][c];
}

void ck_lower_nchw(const ck_conv_problem *pb, const float *in_g, size_t p0, size_t np,
                   ck_tap_range taps, size_t pw, float *dst) {
  const ck_conv_desc *d = &pb->d;
  const long H = d->in_height, W = d->in_width, OW = pb->out_w;
  const long sh = d->stride_height, sw = d->stride_width;
  const long dh = d->dilation_height, dw = d->dilation_width;
  const long pt = d->pad_top, pl = d->pad_left;
  const size_t cg = (size_t)pb->cin_g, nkh = (size_t)taps.nkh, nkw = (size_t)taps.nkw;
  const size_t kdim = cg * nkh * nkw;
  for (size_t a = 0, q = 0; a < np; a += pw, q++) {
    float *panel = dst + q * kdim * pw;
    const size_t cnt = np - a < pw ? np - a : pw;
    if (cnt < pw)
      for (size_t k = 0; k < kdim; k++) memset(panel + k * pw + cnt, 0, (pw - cnt) * sizeof(float));
    /* Segments of the panel that lie on one output row. */
    for (size_t j = 0; j < cnt;) {
      const size_t p = p0 + a + j;
      const long oh = (long)(p / (size_t)OW), ow = (long)(p % (size_t)OW);
      const size_t len = cnt - j < (size_t)(OW - ow) ? cnt - j : (size_t)(OW - ow);
      const size_t cstride = nkh * nkw * pw; /* from channel c to c+1 in the panel */
      for (size_t kh = 0; kh < nkh; kh++) {
        const long ih = oh * sh - pt + ((long)taps.kh0 + (long)kh) * dh;
        for (size_t kw = 0; kw < nkw; kw++) {
          float *row = panel + (kh * nkw + kw) * pw + j;
          if (ih < 0 || ih >= H) {
            for (size_t c = 0; c < cg; c++) memset(row + c * cstride, 0, len * sizeof(float));
          } else {
            const long iw0 = ow * sw - pl + ((long)taps.kw0 + (long)kw) * dw;
            ck_lower_rows(row, cstride, cg, len, in_g + ih * W, (size_t)(H * W), iw0, sw, W);
          }
        }
      }
      j += len;
    }
  }
}

void ck_lower_nhwc(const ck_conv_problem *pb, const float *in_g, const float *zero, size_t p0,
                   size_t np, ck_tap_range taps, size_t pw, float *dst) {
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
    for (size_t kh = 0; kh < nkh; kh++) {
      for (size_t kw = 0; kw < nkw; kw++) {
        const long dy = -pt + ((long)taps.kh0 + (long)kh) * dh;
        const long dx = -pl + ((long)taps.kw0 + (long)kw) * dw;
        for (size_t j = 0; j < pw; j++) {
          ptrs[j] = zero;
          if (j >= cnt) continue;
          const long ih = oh[j] * sh + dy, iw = ow[j] * sw + dx;
          if (ih >= 0 && ih < H && iw >= 0 && iw < W) ptrs[j] = in_g + (ih * W + iw) * C;
        }
        ck_lower_gather(panel + (kh * nkw + kw) * cg * pw, pw, cg, ptrs);
      }
    }
  }
}
