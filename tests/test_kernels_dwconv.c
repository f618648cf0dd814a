/* The depthwise micro-kernels of every ISA this machine runs against the C reference of the
 * contract (ck_f32_dwconv_ref): single-pass 9 and 25 taps, multi-pass any tap count, channel
 * counts around the block, one and several pixels with shared (stride < ks) and own windows,
 * padding taps at the zero row. Every input row is its own exact allocation (the sanitizers catch
 * an over-read) and the output has guard values between pixels. */
#define _POSIX_C_SOURCE 200809L /* posix_memalign */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "igemm.h"

#define GUARD 12345.678f

/* image: 0 gives every position its own allocation; 1-4 lay the positions of a 9-tap row of
 * shared columns (stride 3 or 6) out as 3 rows of an NHWC image, one allocation with pixels
 * channels + 2 floats apart: 1 all inside, 2 a padding left column and top row, 3 a padding
 * right column, 4 one inner column out of step. */
typedef struct {
  size_t cb, channels, pixels, ks, stride;
  int image;
} shape;

typedef struct {
  float **rows; /* nrows separate allocations of `channels` floats */
  size_t nrows;
  float *zero, *w, *out;
  const float **ptrs;
  size_t nptrs, offset, out_stride, nout;
  double *scale;
} call;

/* Positions are each row's address minus input_offset, an integer difference (modulo 2^64). */
#define OFFSET ((size_t)0x7ff0001040)

static const float *at(const float *pos, const call *k) {
  return pos == k->zero ? pos : (const float *)((uintptr_t)pos + k->offset);
}

static void make_call(const shape *s, uint64_t *rng, int nan_pixel, call *k) {
  k->nptrs = (s->pixels - 1) * s->stride + s->ks;
  const size_t ncol = k->nptrs / 3, pstride = s->channels + 2;
  const size_t image_floats = (3 * ncol - 1) * pstride + s->channels;
  k->nrows = s->image ? 1 : k->nptrs;
  k->rows = malloc(k->nrows * sizeof(float *));
  for (size_t i = 0; i < k->nrows; i++) {
    const size_t n = s->image ? image_floats : s->channels;
    k->rows[i] = malloc(n * sizeof(float));
    ckt_fill(k->rows[i], n, rng);
  }
  k->zero = calloc(s->channels, sizeof(float));
  const size_t wf = ck_dwconv_packed_floats(s->cb, s->channels, s->ks);
  k->w = malloc(wf * sizeof(float));
  ckt_fill(k->w, wf, rng);
  k->ptrs = malloc(k->nptrs * sizeof(*k->ptrs));
  k->offset = OFFSET;
  for (size_t i = 0; i < k->nptrs; i++) {
    const size_t x = i / 3, row = i % 3;
    const size_t xs = s->image == 4 && x == ncol / 2 && row == 1 ? x + 1 : x;
    const float *pos = s->image ? k->rows[0] + (row * ncol + xs) * pstride : k->rows[i];
    const int pad = s->image == 0   ? i % 7 == 3
                    : s->image == 2 ? x == 0 || row == 0
                    : s->image == 3 ? x == ncol - 1
                                    : 0;
    k->ptrs[i] = pad ? k->zero : (const float *)((uintptr_t)pos - OFFSET);
  }
  if (nan_pixel >= 0 && s->image == 0) k->rows[(size_t)nan_pixel * s->stride][0] = NAN;
  k->out_stride = s->channels + 5;
  k->nout = (s->pixels - 1) * k->out_stride + s->channels;
  k->out = malloc(k->nout * sizeof(float));
  for (size_t i = 0; i < k->nout; i++) k->out[i] = GUARD;
  k->scale = calloc(s->pixels * s->channels, sizeof(double));
  for (size_t p = 0; p < s->pixels; p++)
    for (size_t c = 0; c < s->channels; c++) {
      const float *w = k->w + c / s->cb * s->cb * (1 + s->ks) + c % s->cb;
      double sum = fabs(w[0]);
      for (size_t t = 0; t < s->ks; t++)
        sum += fabs((double)at(k->ptrs[p * s->stride + t], k)[c] * w[s->cb + t * s->cb]);
      k->scale[p * s->channels + c] = sum;
    }
}

static void free_call(call *k) {
  for (size_t i = 0; i < k->nrows; i++) free(k->rows[i]);
  free(k->rows), free(k->zero), free(k->w), free(k->out), free((void *)k->ptrs), free(k->scale);
}

static void run(ck_dwconv_ukernel f, const shape *s, call *k, const ck_clamp_params *p) {
  f(s->channels, s->pixels, s->ks, k->ptrs, s->stride, k->offset, k->zero, k->w, k->out,
    k->out_stride, p);
}

static void check(const char *name, ck_dwconv_ukernel f, const shape *s, const ck_clamp_params *p,
                  int nan_pixel, int exact, uint64_t seed) {
  uint64_t rng = seed;
  call k, r;
  make_call(s, &rng, nan_pixel, &k);
  rng = seed;
  make_call(s, &rng, nan_pixel, &r);
  run(f, s, &k, p);
  ck_f32_dwconv_ref(s->cb, s->channels, s->pixels, s->ks, r.ptrs, s->stride, r.offset, r.zero, r.w,
                    r.out, r.out_stride, p);
  for (size_t i = 0; i < k.nout; i++) {
    const size_t px = i / k.out_stride, c = i % k.out_stride;
    if (c >= s->channels) {
      cr_assert(k.out[i] == GUARD, "%s channels %zu ks %zu: wrote between pixels at %zu", name,
                s->channels, s->ks, i);
      continue;
    }
    if (isnan(r.out[i])) {
      cr_assert(isnan(k.out[i]), "%s: pixel %zu channel %zu is %g, reference NaN", name, px, c,
                k.out[i]);
      continue;
    }
    const double tol = (double)(s->ks + 2) * FLT_EPSILON * k.scale[px * s->channels + c];
    cr_assert(fabs((double)k.out[i] - r.out[i]) <= tol,
              "%s channels %zu pixels %zu ks %zu stride %zu: pixel %zu channel %zu is %.9g, "
              "reference %.9g",
              name, s->channels, s->pixels, s->ks, s->stride, px, c, k.out[i], r.out[i]);
    if (exact)
      cr_assert(memcmp(&k.out[i], &r.out[i], sizeof(float)) == 0,
                "%s differs from the reference at pixel %zu channel %zu", name, px, c);
  }
  free_call(&k);
  free_call(&r);
}

static const ck_kernels *tables[4];
static int ntables;

static void load_tables(void) {
  ck_isa isas[4];
  int n = ckt_available_isas(isas, 4);
  ntables = 0;
  for (int i = 0; i < n; i++) {
    const ck_kernels *t = ck_kernels_for(isas[i]);
    if (t != NULL && t->dwconv_any != NULL) tables[ntables++] = t;
  }
}

Test(kernels_dwconv, every_isa_has_depthwise_kernels) {
  load_tables();
  ck_isa isas[4];
  cr_assert_eq(ntables, ckt_available_isas(isas, 4));
  for (int i = 0; i < ntables; i++)
    cr_assert(tables[i]->dwconv_3x3 != NULL && tables[i]->dwconv_5x5 != NULL,
              "%s lacks a single-pass kernel", tables[i]->name);
}

Test(kernels_dwconv, single_and_multi_pass_against_the_reference) {
  load_tables();
  const ck_clamp_params none = {-INFINITY, INFINITY};
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t CB = (size_t)t->dw_cb;
    const size_t channels[] = {1, CB - 1 ? CB - 1 : 1, CB, CB + 1, 2 * CB + 3, 37};
    const size_t kss[] = {9, 25, 1, 2, 7, 8, 10, 17};
    const size_t pixels[] = {1, 4, 15};
    uint64_t seed = 11;
    for (size_t a = 0; a < sizeof channels / sizeof *channels; a++)
      for (size_t b = 0; b < sizeof kss / sizeof *kss; b++)
        for (size_t c = 0; c < sizeof pixels / sizeof *pixels; c++) {
          const size_t ks = kss[b];
          /* Shared windows (strides 3 and 6 < ks: columns of 3 at input stride 1 and 2) and
           * windows of their own (stride ks + 1). */
          const size_t strides[] = {ks > 3 ? 3 : ks, ks > 6 ? 6 : ks, ks + 1};
          for (size_t d = 0; d < 3; d++) {
            const shape s = {CB, channels[a], pixels[c], ks, strides[d], 0};
            const int exact = t->isa == CK_ISA_GENERIC;
            check(t->dwconv_name, t->dwconv_any, &s, &none, -1, exact, seed++);
            if (ks == 9) check(t->dwconv_name, t->dwconv_3x3, &s, &none, -1, exact, seed++);
            if (ks == 25) check(t->dwconv_name, t->dwconv_5x5, &s, &none, -1, exact, seed++);
          }
        }
  }
}

Test(kernels_dwconv, clamp_and_nan) {
  load_tables();
  const ck_clamp_params clamp = {-0.25f, 0.5f};
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t CB = (size_t)t->dw_cb;
    const shape s9 = {CB, 2 * CB + 1, 3, 9, 3, 0}, s25 = {CB, CB + 2, 2, 25, 5, 0};
    const shape s12 = {CB, CB + 3, 2, 12, 4, 0};
    check(t->dwconv_name, t->dwconv_3x3, &s9, &clamp, 1, t->isa == CK_ISA_GENERIC, 3);
    check(t->dwconv_name, t->dwconv_5x5, &s25, &clamp, 0, t->isa == CK_ISA_GENERIC, 4);
    check(t->dwconv_name, t->dwconv_any, &s12, &clamp, 1, t->isa == CK_ISA_GENERIC, 5);
  }
}

/* The multi-pass kernel carries partial sums through the output; it still gives the bits of the
 * single-pass kernels, so the kernel choice never changes a result. */
Test(kernels_dwconv, multi_pass_has_the_bits_of_single_pass) {
  load_tables();
  const ck_clamp_params none = {-INFINITY, INFINITY};
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t CB = (size_t)t->dw_cb;
    for (int five = 0; five <= 1; five++) {
      const shape s = {CB, 3 * CB + 5, 3, five ? 25 : 9, 3, 0};
      uint64_t rng = 21;
      call a, b;
      make_call(&s, &rng, -1, &a);
      rng = 21;
      make_call(&s, &rng, -1, &b);
      run(five ? t->dwconv_5x5 : t->dwconv_3x3, &s, &a, &none);
      run(t->dwconv_any, &s, &b, &none);
      cr_assert(memcmp(a.out, b.out, a.nout * sizeof(float)) == 0,
                "%s: multi-pass and single-pass %zu-tap results differ", t->dwconv_name, s.ks);
      free_call(&a);
      free_call(&b);
    }
  }
}

/* The 9-tap kernels read rows of shared columns (input stride 3 and 6) in groups of up to 8
 * pixels (AVX-512: as even as they come, 1 to 8 each; AVX2: 4, 2, 1), and skip the clamp
 * when it is unbounded: every group size and mix, channel tail, both clamps and a NaN in the
 * row. */
Test(kernels_dwconv, column_paths_with_and_without_a_clamp) {
  load_tables();
  const ck_clamp_params none = {-INFINITY, INFINITY}, relu = {0.0f, INFINITY};
  const ck_clamp_params both = {-0.25f, 0.5f};
  const ck_clamp_params *clamps[] = {&none, &relu, &both};
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t CB = (size_t)t->dw_cb;
    const size_t channels[] = {1, CB - 1, CB, CB + 1, 2 * CB + 3, 4 * CB};
    const size_t pixels[] = {1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 22};
    uint64_t seed = 101;
    for (size_t a = 0; a < sizeof channels / sizeof *channels; a++)
      for (size_t b = 0; b < sizeof pixels / sizeof *pixels; b++)
        for (size_t stride = 3; stride <= 6; stride += 3)
          for (size_t ci = 0; ci < 3; ci++) {
            const shape s = {CB, channels[a], pixels[b], 9, stride, 0};
            const int nan_pixel = (int)((seed % 3 == 0) ? pixels[b] - 1 : (size_t)-1);
            check(t->dwconv_name, t->dwconv_3x3, &s, clamps[ci], nan_pixel,
                  t->isa == CK_ISA_GENERIC, seed++);
          }
  }
}

/* The 9-tap kernels on positions as the depthwise loop builds them: rows of an NHWC image with
 * pixels closer than the channel block, padding columns and rows at the zero row, and a column
 * out of step (the kernels may not assume a layout); every group mix and channel tail. */
Test(kernels_dwconv, column_paths_on_image_rows) {
  load_tables();
  const ck_clamp_params relu = {0.0f, INFINITY};
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t CB = (size_t)t->dw_cb;
    const size_t channels[] = {1, CB - 1, CB, 2 * CB + 3, 8 * CB};
    const size_t pixels[] = {1, 2, 7, 8, 13, 14, 20, 28};
    uint64_t seed = 707;
    for (size_t a = 0; a < sizeof channels / sizeof *channels; a++)
      for (size_t b = 0; b < sizeof pixels / sizeof *pixels; b++)
        for (size_t stride = 3; stride <= 6; stride += 3)
          for (int image = 1; image <= 4; image++) {
            const shape s = {CB, channels[a], pixels[b], 9, stride, image};
            check(t->dwconv_name, t->dwconv_3x3, &s, &relu, -1, t->isa == CK_ISA_GENERIC, seed++);
          }
  }
}

/* posix_memalign of exactly n floats (the sanitizers see the end), 64-byte aligned. */
static float *line_alloc(size_t n) {
  void *p = NULL;
  cr_assert_eq(posix_memalign(&p, 64, n * sizeof(float)), 0);
  return p;
}

/* The 9-tap kernels with the output at every place in a cache line and the input in step with
 * it or not (the AVX-512 kernel realigns its blocks to the output's lines for wide channel
 * counts, by shifting them or by carrying sums into whole lines): channel tails, rows longer
 * than the kernel's chunk, padding columns, strides 1 and 2, clamped or not. Against the
 * reference, and the same bits at every place; nothing written outside the outputs. */
Test(kernels_dwconv, column_paths_at_every_place_in_a_line) {
  load_tables();
  const ck_clamp_params none = {-INFINITY, INFINITY}, both = {-0.25f, 0.5f};
  const size_t channels[] = {128, 133, 143, 259, 512};
  const size_t pixels[] = {1, 3, 14, 37};
  const size_t out_places[] = {0, 1, 4, 9, 15};
  /* Input pixel stride a multiple of 16 floats at offset 0, 4 or 9 in the line, or
   * channels + 3 (pixels out of step with each other). */
  const int in_places[] = {0, 4, 9, -1};
  uint64_t rng = 909;
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t CB = (size_t)t->dw_cb;
    for (size_t a = 0; a < sizeof channels / sizeof *channels; a++)
      for (size_t b = 0; b < sizeof pixels / sizeof *pixels; b++)
        for (size_t stride = 3; stride <= 6; stride += 3)
          for (size_t ip = 0; ip < sizeof in_places / sizeof *in_places; ip++) {
            const size_t C = channels[a], P = pixels[b], nptrs = (P - 1) * stride + 9;
            const size_t ncol = nptrs / 3;
            const size_t ps = in_places[ip] < 0 ? C + 3 : (C + 15) / 16 * 16;
            const size_t in0 = in_places[ip] < 0 ? 0 : (size_t)in_places[ip];
            const size_t img = in0 + (3 * ncol - 1) * ps + C;
            float *image = line_alloc(img), *zero = calloc(C, sizeof(float));
            ckt_fill(image, img, &rng);
            const size_t wf = ck_dwconv_packed_floats(CB, C, 9);
            float *w = malloc(wf * sizeof(float));
            ckt_fill(w, wf, &rng);
            const float **ptrs = malloc(nptrs * sizeof(*ptrs));
            const int pad = (int)(b % 2); /* column 0 in the padding */
            for (size_t i = 0; i < nptrs; i++) {
              const size_t x = i / 3, row = i % 3;
              ptrs[i] =
                  pad && x == 0
                      ? zero
                      : (const float *)((uintptr_t)(image + in0 + (row * ncol + x) * ps) - OFFSET);
            }
            const size_t os = (C + 15) / 16 * 16 + 16; /* a multiple of 16, gaps between pixels */
            const size_t nout = (P - 1) * os + C, nbuf = 16 + nout + 32;
            float *first = NULL;
            for (size_t op = 0; op < sizeof out_places / sizeof *out_places; op++) {
              const ck_clamp_params *p = op % 2 ? &both : &none;
              float *buf = line_alloc(nbuf), *ref = malloc(nout * sizeof(float));
              for (size_t i = 0; i < nbuf; i++) buf[i] = GUARD;
              float *out = buf + 16 + out_places[op];
              t->dwconv_3x3(C, P, 9, ptrs, stride, OFFSET, zero, w, out, os, p);
              ck_f32_dwconv_ref(CB, C, P, 9, ptrs, stride, OFFSET, zero, w, ref, os, p);
              for (size_t i = 0; i < nbuf; i++) {
                const ptrdiff_t j = (ptrdiff_t)i - 16 - (ptrdiff_t)out_places[op];
                const size_t px = (size_t)j / os, c = (size_t)j % os;
                if (j < 0 || (size_t)j >= nout || c >= C) {
                  cr_assert(buf[i] == GUARD,
                            "%s channels %zu pixels %zu: wrote outside the outputs at %td "
                            "(output %zu floats past a line)",
                            t->dwconv_name, C, P, j, out_places[op]);
                  continue;
                }
                /* Sum of |terms| bounds the rounding of the kernel and of the reference. */
                const float *wb = w + c / CB * CB * 10 + c % CB;
                double scale = fabs(wb[0]);
                for (size_t k = 0; k < 9; k++) {
                  const float *r = ptrs[px * stride + k];
                  r = r == zero ? r : (const float *)((uintptr_t)r + OFFSET);
                  scale += fabs((double)r[c] * wb[CB + k * CB]);
                }
                cr_assert(fabs((double)buf[i] - ref[j]) <= 11 * FLT_EPSILON * scale,
                          "%s channels %zu pixels %zu stride %zu, output %zu floats past a line, "
                          "input place %d: pixel %zu channel %zu is %.9g, reference %.9g",
                          t->dwconv_name, C, P, stride, out_places[op], in_places[ip], px, c,
                          buf[i], ref[j]);
              }
              if (op == 0) {
                first = malloc(nout * sizeof(float));
                memcpy(first, out, nout * sizeof(float));
              } else if (op % 2 == 0) { /* unclamped, as the first */
                cr_assert(memcmp(first, out, nout * sizeof(float)) == 0,
                          "%s channels %zu pixels %zu: output %zu floats past a line changes "
                          "the bits",
                          t->dwconv_name, C, P, out_places[op]);
              }
              free(buf), free(ref);
            }
            free(first), free(image), free(zero), free(w), free((void *)ptrs);
          }
  }
}

/* The depthwise loop's tiles (indirect-dw.c): rows wide enough in work to be split into channel
 * tiles (with a channel tail), several images, row runs ending mid-image. Every ISA, against the
 * reference, and the same bits for 1, 2 and 3 threads (units claimed from other threads' ranges
 * included: 3 threads over an odd unit count). */
Test(kernels_dwconv, depthwise_tiles_against_the_reference) {
  ck_isa isas[4];
  const int nisa = ckt_available_isas(isas, 4);
  /* C, H=W, stride, batch: OW*C*9 multiply-adds a row from ~1K to ~150K (channel tiles). */
  const int shapes[][4] = {{520, 31, 1, 1}, {300, 40, 2, 2}, {24, 29, 1, 3}, {3, 5, 1, 1}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    ck_conv_desc d;
    ck_conv_desc_init(&d);
    d.batch = shapes[s][3], d.in_channels = d.out_channels = d.groups = shapes[s][0];
    d.in_height = d.in_width = shapes[s][1];
    d.kernel_height = d.kernel_width = 3;
    d.stride_height = d.stride_width = shapes[s][2];
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
    d.layout = CK_LAYOUT_NHWC;
    d.activation = s % 2 ? CK_ACTIVATION_RELU : CK_ACTIVATION_NONE;
    int oh, ow;
    cr_assert_eq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
    const size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
    const size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
    const size_t nf = (size_t)d.out_channels * 9;
    float *in = malloc(nin * 4), *f = malloc(nf * 4), *o1 = malloc(nout * 4);
    float *ot = malloc(nout * 4);
    uint64_t rng = 5 + s;
    ckt_fill(in, nin, &rng);
    ckt_fill(f, nf, &rng);
    for (int j = 0; j < nisa; j++) {
      char msg[512];
      cr_assert_eq(ckt_check_conv(&d, CK_ALGO_INDIRECT, isas[j], 2, msg, sizeof msg), 0, "%s", msg);
      for (int t = 1; t <= 3; t++) {
        ck_plan_options o;
        ck_plan_options_init(&o);
        o.algo = CK_ALGO_INDIRECT;
        o.isa = isas[j];
        o.threads = t;
        ck_plan *p = NULL;
        cr_assert_eq(ck_conv_plan_create(&d, f, NULL, &o, &p), CK_OK, "%s", ck_last_error());
        cr_assert_eq(ck_conv_execute(p, in, t == 1 ? o1 : ot, NULL), CK_OK);
        if (t > 1)
          cr_assert(memcmp(o1, ot, nout * 4) == 0, "%s shape %zu: 1 and %d threads differ",
                    ck_isa_name(isas[j]), s, t);
        ck_plan_destroy(p);
      }
    }
    free(in), free(f), free(o1), free(ot);
  }
}
