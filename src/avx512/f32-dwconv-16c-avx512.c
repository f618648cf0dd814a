/* Depthwise micro-kernels, AVX-512F, 16 channels per zmm block: single pass over 9 or 25 taps
 * (XNNPACK "up" style: for each pixel, every channel block sums all taps in one register), and a
 * multi-pass form for any tap count that sums up to 8 taps per pass and carries the partial sum
 * in the output. The 9-tap kernel has a second path for windows that share columns (below).
 * All sum bias, then taps ascending, so they agree bit for bit. The channel tail uses masked
 * loads and stores: nothing is read or written past `channels`. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "igemm.h"

enum { CB = 16, PASS = 8 };

static inline __m512 clamp(__m512 v, __m512 vmin, __m512 vmax) {
  return _mm512_min_ps(vmax, _mm512_max_ps(vmin, v)); /* NaN stays NaN */
}

/* One pixel, all channels, KS taps in one pass. */
static inline __attribute__((always_inline)) void pixel_single_pass(size_t KS, size_t channels,
                                                                    const float **r, const float *w,
                                                                    float *out, __m512 vmin,
                                                                    __m512 vmax) {
  size_t c = 0;
  for (; c + CB <= channels; c += CB, w += CB * (1 + KS)) {
    __m512 acc = _mm512_loadu_ps(w);
    for (size_t t = 0; t < KS; t++)
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(r[t] + c), _mm512_loadu_ps(w + CB + t * CB), acc);
    _mm512_storeu_ps(out + c, clamp(acc, vmin, vmax));
  }
  if (c < channels) {
    const __mmask16 m = (__mmask16)((1u << (channels - c)) - 1);
    __m512 acc = _mm512_loadu_ps(w);
    for (size_t t = 0; t < KS; t++)
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r[t] + c), _mm512_loadu_ps(w + CB + t * CB),
                            acc);
    _mm512_mask_storeu_ps(out + c, m, clamp(acc, vmin, vmax));
  }
}

static inline __attribute__((always_inline)) void
single_pass(size_t KS, size_t channels, size_t pixels, const float **input, size_t input_stride,
            size_t input_offset, const float *zero, const float *weights, float *output,
            size_t output_stride, const ck_clamp_params *p) {
  const __m512 vmin = _mm512_set1_ps(p->min), vmax = _mm512_set1_ps(p->max);
  for (; pixels != 0; pixels--, input += input_stride, output += output_stride) {
    const float *r[25];
    for (size_t t = 0; t < KS; t++) r[t] = ck_rebase(input[t], input_offset, zero);
    pixel_single_pass(KS, channels, r, weights, output, vmin, vmax);
  }
}

/* The column path of the 9-tap kernel. With input_stride 3*S, the contract's indexing makes
 * entries 3x..3x+2 a "column" and gives pixel q the columns S*q, S*q+1, S*q+2 (taps 3j..3j+2 of
 * column S*q+j): neighbouring pixels share columns (an input row at stride S). So for PX pixels
 * and one channel block, the 9 weights stay in registers, each column is loaded once and feeds
 * every pixel that uses it: per pixel 3*S loads for 9 FMAs, instead of 9 loads, 9 weight loads
 * and 9 rebased pointers. Each output still sums bias then taps 0..8 in order. */
enum { COL_PX = 8, COL_MAX = (COL_PX - 1) * 2 + 3 };

/* The sums of one block of 16 lanes for PX pixels: lane l is channel ch + l, read at byte
 * offset 4*ch from each column pointer (ch may be negative: those lanes are masked). */
static inline __attribute__((always_inline)) void column_sums(size_t S, size_t PX, size_t ncol,
                                                              const float *const *col, ptrdiff_t ch,
                                                              __mmask16 m, const __m512 wt[9],
                                                              __m512 bias, __m512 acc[COL_PX]) {
  const uintptr_t off = (uintptr_t)(ch * (ptrdiff_t)sizeof(float));
#pragma GCC unroll 8
  for (size_t q = 0; q < PX; q++) acc[q] = bias;
#pragma GCC unroll 17
  for (size_t x = 0; x < ncol; x++) {
    __m512 v[3];
#pragma GCC unroll 3
    for (size_t i = 0; i < 3; i++)
      v[i] = _mm512_maskz_loadu_ps(m, (const float *)((uintptr_t)col[x * 3 + i] + off));
#pragma GCC unroll 3
    for (size_t j = 0; j < 3; j++) {
      if (x < j || (x - j) % S != 0 || (x - j) / S >= PX) continue;
      const size_t q = (x - j) / S;
#pragma GCC unroll 3
      for (size_t i = 0; i < 3; i++) acc[q] = _mm512_fmadd_ps(v[i], wt[j * 3 + i], acc[q]);
    }
  }
}

/* The block's sums stored at output + ch of each pixel. */
static inline __attribute__((always_inline)) void
column_block(int CL, size_t S, size_t PX, size_t ncol, const float *const *col, ptrdiff_t ch,
             __mmask16 m, const __m512 wt[9], __m512 bias, float *output, size_t output_stride,
             __m512 vmin, __m512 vmax) {
  __m512 acc[COL_PX];
  column_sums(S, PX, ncol, col, ch, m, wt, bias, acc);
#pragma GCC unroll 8
  for (size_t q = 0; q < PX; q++)
    _mm512_mask_storeu_ps((float *)((uintptr_t)(output + q * output_stride) +
                                    (uintptr_t)(ch * (ptrdiff_t)sizeof(float))),
                          m, CL ? clamp(acc[q], vmin, vmax) : acc[q]);
}

/* Lane l of a block shifted down by `shift` channels: lanes l < shift come from lane
 * l + 16 - shift of the block below, the others from lane l - shift of the block above. */
static inline __m512i shift_index(size_t shift) {
  return _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                          _mm512_set1_epi32((int)(CB - shift)));
}

/* The lanes of shifted block k (channels 16k - shift + l) that are channels of the row. */
static inline __mmask16 shifted_mask(size_t channels, size_t shift, size_t k) {
  const size_t lo = k == 0 ? shift : 0, end = channels + shift - k * CB;
  const uint32_t hi = end >= CB ? 0xffffu : (1u << end) - 1;
  return (__mmask16)(hi & ~((1u << lo) - 1));
}

/* PX pixels, all channels, the packed blocks read as they are (loads in the input's frame) and
 * the stores in the output's frame, `shift` > 0 floats past a line: each pixel carries its
 * previous block's sums, and line k of its output is the upper lanes of block k-1 and the lower
 * lanes of block k, one permute and one store within a single cache line (row_of_columns says
 * when). */
static inline __attribute__((always_inline)) void
columns_carry(int CL, size_t S, size_t PX, size_t channels, size_t shift, const float *const *col,
              const float *weights, float *output, size_t output_stride, __m512 vmin, __m512 vmax) {
  const size_t ncol = (PX - 1) * S + 3, packed = (channels + CB - 1) / CB;
  const size_t lines = (channels + shift + CB - 1) / CB;
  const __m512i idx = shift_index(shift);
  __m512 prev[COL_PX];
#pragma GCC unroll 8
  for (size_t q = 0; q < PX; q++) prev[q] = _mm512_setzero_ps();
  const float *w = weights;
  for (size_t k = 0; k < packed; k++, w += CB * 10) {
    const size_t c = k * CB;
    const __mmask16 m = channels - c >= CB ? 0xffff : (__mmask16)((1u << (channels - c)) - 1);
    __m512 wt[9], acc[COL_PX];
#pragma GCC unroll 9
    for (size_t t = 0; t < 9; t++) wt[t] = _mm512_loadu_ps(w + CB + t * CB);
    column_sums(S, PX, ncol, col, (ptrdiff_t)c, m, wt, _mm512_loadu_ps(w), acc);
    const __mmask16 ml = shifted_mask(channels, shift, k);
    const uintptr_t off = (uintptr_t)(((ptrdiff_t)c - (ptrdiff_t)shift) * (ptrdiff_t)sizeof(float));
#pragma GCC unroll 8
    for (size_t q = 0; q < PX; q++) {
      if (CL) acc[q] = clamp(acc[q], vmin, vmax);
      _mm512_mask_storeu_ps((float *)((uintptr_t)(output + q * output_stride) + off), ml,
                            _mm512_permutex2var_ps(prev[q], idx, acc[q]));
      prev[q] = acc[q];
    }
  }
  if (lines > packed) { /* the last block's upper lanes open one more line */
    const __mmask16 ml = shifted_mask(channels, shift, packed);
    const uintptr_t off =
        (uintptr_t)(((ptrdiff_t)(packed * CB) - (ptrdiff_t)shift) * (ptrdiff_t)sizeof(float));
#pragma GCC unroll 8
    for (size_t q = 0; q < PX; q++)
      _mm512_mask_storeu_ps((float *)((uintptr_t)(output + q * output_stride) + off), ml,
                            _mm512_permutex2var_ps(prev[q], idx, prev[q]));
  }
}

/* PX pixels, all channels, in blocks shifted down by `shift` > 0 channels, each summed and
 * stored directly; a shifted block's weights are the upper lanes of packed block k-1 and the
 * lower lanes of block k, one permute each. */
static inline __attribute__((always_inline)) void
columns_shifted(int CL, size_t S, size_t PX, size_t channels, size_t shift, const float *const *col,
                const float *weights, float *output, size_t output_stride, __m512 vmin,
                __m512 vmax) {
  const size_t ncol = (PX - 1) * S + 3;
  const __m512i idx = shift_index(shift);
  const size_t packed = (channels + CB - 1) / CB, blocks = (channels + shift + CB - 1) / CB;
  for (size_t k = 0; k < blocks; k++) {
    /* Block -1 and block `packed` do not exist; the lanes they would give are masked. */
    const float *wp = weights + (k > 0 ? k - 1 : 0) * CB * 10;
    const float *wc = weights + (k < packed ? k : packed - 1) * CB * 10;
    __m512 wt[9];
#pragma GCC unroll 9
    for (size_t t = 0; t < 9; t++)
      wt[t] = _mm512_permutex2var_ps(_mm512_loadu_ps(wp + CB + t * CB), idx,
                                     _mm512_loadu_ps(wc + CB + t * CB));
    const __m512 bias = _mm512_permutex2var_ps(_mm512_loadu_ps(wp), idx, _mm512_loadu_ps(wc));
    column_block(CL, S, PX, ncol, col, (ptrdiff_t)(k * CB) - (ptrdiff_t)shift,
                 shifted_mask(channels, shift, k), wt, bias, output, output_stride, vmin, vmax);
  }
}

/* One pixel group of PX pixels: blocks shifted onto the output's lines (carry 0) or the packed
 * blocks with their sums carried into the output's lines (carry 1). */
static inline __attribute__((always_inline)) void
group(int CL, size_t S, size_t PX, int carry, size_t channels, size_t shift,
      const float *const *col, const float *weights, float *output, size_t output_stride,
      __m512 vmin, __m512 vmax) {
  if (carry)
    columns_carry(CL, S, PX, channels, shift, col, weights, output, output_stride, vmin, vmax);
  else
    columns_shifted(CL, S, PX, channels, shift, col, weights, output, output_stride, vmin, vmax);
}

/* The PX = 8, 4, 2, 1 pixel groups of a chunk of np pixels. */
static inline __attribute__((always_inline)) void
groups(int CL, size_t S, size_t np, int carry, size_t channels, size_t shift,
       const float *const *col, const float *weights, float *output, size_t output_stride,
       __m512 vmin, __m512 vmax) {
  size_t q = 0;
  for (; np - q >= 8; q += 8)
    group(CL, S, 8, carry, channels, shift, col + q * 3 * S, weights, output + q * output_stride,
          output_stride, vmin, vmax);
  if (np - q >= 4) {
    group(CL, S, 4, carry, channels, shift, col + q * 3 * S, weights, output + q * output_stride,
          output_stride, vmin, vmax);
    q += 4;
  }
  if (np - q >= 2) {
    group(CL, S, 2, carry, channels, shift, col + q * 3 * S, weights, output + q * output_stride,
          output_stride, vmin, vmax);
    q += 2;
  }
  if (np - q >= 1)
    group(CL, S, 1, carry, channels, shift, col + q * 3 * S, weights, output + q * output_stride,
          output_stride, vmin, vmax);
}

/* PX pixels through the packed blocks, their columns rebased here. (The shared column_sums
 * measured 5% slower on 112x112x32 here: its stores take a computed offset, these index.) */
static inline __attribute__((always_inline)) void
columns(int CL, size_t S, size_t PX, size_t channels, const float **e, size_t input_offset,
        const float *zero, const float *weights, float *output, size_t output_stride, __m512 vmin,
        __m512 vmax) {
  const size_t ncol = (PX - 1) * S + 3;
  const float *col[COL_MAX * 3];
  for (size_t i = 0; i < ncol * 3; i++) col[i] = ck_rebase(e[i], input_offset, zero);
  const float *w = weights;
  for (size_t c = 0; c < channels; c += CB, w += CB * 10) {
    const __mmask16 m = channels - c >= CB ? 0xffff : (__mmask16)((1u << (channels - c)) - 1);
    __m512 wt[9], acc[COL_PX];
#pragma GCC unroll 9
    for (size_t t = 0; t < 9; t++) wt[t] = _mm512_loadu_ps(w + CB + t * CB);
#pragma GCC unroll 8
    for (size_t q = 0; q < PX; q++) acc[q] = _mm512_loadu_ps(w);
#pragma GCC unroll 17
    for (size_t x = 0; x < ncol; x++) {
      __m512 v[3];
#pragma GCC unroll 3
      for (size_t i = 0; i < 3; i++) v[i] = _mm512_maskz_loadu_ps(m, col[x * 3 + i] + c);
#pragma GCC unroll 3
      for (size_t j = 0; j < 3; j++) {
        if (x < j || (x - j) % S != 0 || (x - j) / S >= PX) continue;
        const size_t q = (x - j) / S;
#pragma GCC unroll 3
        for (size_t i = 0; i < 3; i++) acc[q] = _mm512_fmadd_ps(v[i], wt[j * 3 + i], acc[q]);
      }
    }
#pragma GCC unroll 8
    for (size_t q = 0; q < PX; q++)
      _mm512_mask_storeu_ps(output + q * output_stride + c, m,
                            CL ? clamp(acc[q], vmin, vmax) : acc[q]);
  }
}

/* A row through the packed blocks, in groups of at most 8 pixels as even as they come (14:
 * 7 + 7, not 8 + 4 + 2): every group loads the 9 weights of every block and 2*S more columns
 * than its pixels need, so fewer, fuller groups do less of both. */
static inline __attribute__((always_inline)) void
row_direct(int CL, size_t S, size_t channels, size_t pixels, const float **input,
           size_t input_offset, const float *zero, const float *weights, float *output,
           size_t output_stride, __m512 vmin, __m512 vmax) {
  while (pixels != 0) {
    const size_t groups = (pixels + COL_PX - 1) / COL_PX, px = (pixels + groups - 1) / groups;
    switch (px) {
#define CK_GROUP(n)                                                                                \
  case n:                                                                                          \
    columns(CL, S, n, channels, input, input_offset, zero, weights, output, output_stride, vmin,   \
            vmax);                                                                                 \
    break;
      CK_GROUP(8)
      CK_GROUP(7)
      CK_GROUP(6)
      CK_GROUP(5)
      CK_GROUP(4)
      CK_GROUP(3)
      CK_GROUP(2)
      CK_GROUP(1)
#undef CK_GROUP
    default: /* px is 1 to COL_PX */
      break;
    }
    pixels -= px, input += px * 3 * S, output += px * output_stride;
  }
}

/* A row: row_direct for an output on a line, otherwise in chunks of up to CHUNK pixels, the
 * chunk's column pointers rebased once.
 *
 * Where the blocks fall in cache lines: a zmm load or store that straddles two lines touches
 * both, and with wide channel strides (512 channels: every pixel of a row in the same two L1
 * sets) the line two neighbouring blocks share is often evicted between them and read back from
 * L2; a straddling store also collides with the next block's loads 4 KiB apart. Every pixel's
 * output has the same place in its line when output_stride is a multiple of the block (`shift`
 * floats past a line; floats are 4-byte aligned), and so has every input pixel of an NHWC image
 * of such a channel count. Measured on 14x14x512, 1 thread: input and output on a line 29-33
 * us, input on a line and output 16 bytes past 50 us, both 16 bytes past 55 us. So, from
 * REALIGN_BLOCKS blocks on (a shifted frame costs one block more per row of pixels, 1/8 there;
 * with 2 blocks of 32 channels it measured slower on 112x112x32, whose time is the L3 traffic):
 *  - output on a line: the packed blocks, stored directly;
 *  - input and output equally past a line: blocks shifted down by `shift` channels, every load
 *    and store within one line (55 -> 37 us);
 *  - out of step: the packed blocks, the stores carried into whole lines (50 -> 41 us).
 * Input on a line or not, the output's (and so the result's) bits are the same. */
enum { CHUNK = 32, REALIGN_BLOCKS = 8 };

static inline __attribute__((always_inline)) void
row_of_columns(int CL, size_t S, size_t channels, size_t pixels, const float **input,
               size_t input_offset, const float *zero, const float *weights, float *output,
               size_t output_stride, __m512 vmin, __m512 vmax) {
  const size_t shift = output_stride % CB == 0 && channels >= REALIGN_BLOCKS * CB
                           ? (uintptr_t)output / sizeof(float) % CB
                           : 0;
  if (shift == 0) {
    row_direct(CL, S, channels, pixels, input, input_offset, zero, weights, output, output_stride,
               vmin, vmax);
    return;
  }
  const float *col[((CHUNK - 1) * 2 + 3) * 3];
  while (pixels != 0) {
    const size_t np = pixels < CHUNK ? pixels : CHUNK, ncol = (np - 1) * S + 3;
    size_t in_shift = shift; /* of the first column not in the padding, if any */
    for (size_t i = ncol * 3; i-- > 0;) {
      col[i] = ck_rebase(input[i], input_offset, zero);
      if (col[i] != zero) in_shift = (uintptr_t)col[i] / sizeof(float) % CB;
    }
    const int carry = shift != 0 && in_shift != shift;
    groups(CL, S, np, carry, channels, shift, col, weights, output, output_stride, vmin, vmax);
    pixels -= np, input += np * 3 * S, output += np * output_stride;
  }
}

void ck_f32_dwconv_9p16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p) {
  (void)ks; /* 9 by contract */
  const __m512 vmin = _mm512_set1_ps(p->min), vmax = _mm512_set1_ps(p->max);
  /* Unbounded clamp is the identity (NaN included): skip its two operations per vector. */
  const int cl = !(p->min == -INFINITY && p->max == INFINITY);
  if (input_stride == 3 && cl)
    row_of_columns(1, 1, channels, pixels, input, input_offset, zero, weights, output,
                   output_stride, vmin, vmax);
  else if (input_stride == 3)
    row_of_columns(0, 1, channels, pixels, input, input_offset, zero, weights, output,
                   output_stride, vmin, vmax);
  else if (input_stride == 6 && cl)
    row_of_columns(1, 2, channels, pixels, input, input_offset, zero, weights, output,
                   output_stride, vmin, vmax);
  else if (input_stride == 6)
    row_of_columns(0, 2, channels, pixels, input, input_offset, zero, weights, output,
                   output_stride, vmin, vmax);
  else
    single_pass(9, channels, pixels, input, input_stride, input_offset, zero, weights, output,
                output_stride, p);
}

void ck_f32_dwconv_25p16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                  size_t input_stride, size_t input_offset, const float *zero,
                                  const float *weights, float *output, size_t output_stride,
                                  const ck_clamp_params *p) {
  (void)ks; /* 25 by contract */
  single_pass(25, channels, pixels, input, input_stride, input_offset, zero, weights, output,
              output_stride, p);
}

/* Passes of up to PASS taps; the first starts from the bias, the others from the partial sum in
 * the output, and the last clamps. */
void ck_f32_dwconv_mp16c__avx512(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p) {
  const __m512 vmin = _mm512_set1_ps(p->min), vmax = _mm512_set1_ps(p->max);
  for (; pixels != 0; pixels--, input += input_stride, output += output_stride) {
    for (size_t t0 = 0; t0 < ks; t0 += PASS) {
      const size_t tn = ks - t0 < PASS ? ks - t0 : PASS;
      const int first = t0 == 0, last = t0 + tn == ks;
      const float *r[PASS];
      for (size_t t = 0; t < tn; t++) r[t] = ck_rebase(input[t0 + t], input_offset, zero);
      const float *w = weights;
      size_t c = 0;
      for (; c < channels; c += CB, w += CB * (1 + ks)) {
        const __mmask16 m = channels - c >= CB ? 0xffff : (__mmask16)((1u << (channels - c)) - 1);
        __m512 acc = first ? _mm512_loadu_ps(w) : _mm512_maskz_loadu_ps(m, output + c);
        for (size_t t = 0; t < tn; t++)
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r[t] + c),
                                _mm512_loadu_ps(w + CB + (t0 + t) * CB), acc);
        _mm512_mask_storeu_ps(output + c, m, last ? clamp(acc, vmin, vmax) : acc);
      }
    }
  }
}
