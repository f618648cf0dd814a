/* The layout transposes: every ISA's tile kernel against a plain double loop on its full tile
 * with padded strides, and the NCHW <-> NHWC conversions built on them against the definition
 * for ragged sizes (1, below, at and past the tile, a 4 KiB-multiple stride, several blocks of
 * the conversion's jobs along either side, with ragged last blocks), batch 2 and 1 and 2 threads.
 * Every buffer is an exact allocation (the sanitizers catch an over-read) and the destination's
 * padding keeps a guard value (nothing written outside the tile). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "conv/layout.h"
#include "internal.h"
#include "kernels.h"

#define GUARD -777.25f

static const ck_kernels *tables[4];
static int ntables;

static void load_tables(void) {
  ck_isa isas[4];
  const int n = ckt_available_isas(isas, 4);
  ntables = 0;
  for (int i = 0; i < n; i++) {
    const ck_kernels *t = ck_kernels_for(isas[i]);
    cr_assert(t != NULL && t->transpose != NULL && t->transpose_tile > 0,
              "ISA %s has no transpose kernel", ck_isa_name(isas[i]));
    tables[ntables++] = t;
  }
}

Test(layout, tile_kernels_match_the_definition) {
  load_tables();
  uint64_t rng = 11;
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t T = (size_t)t->transpose_tile, lds = T + 3, ldd = T + 5;
    float *src = malloc((T - 1) * lds * sizeof(float) + T * sizeof(float));
    const size_t nd = (T - 1) * ldd + T;
    float *dst = malloc(nd * sizeof(float));
    ckt_fill(src, (T - 1) * lds + T, &rng);
    for (size_t i = 0; i < nd; i++) dst[i] = GUARD;
    t->transpose(src, lds, dst, ldd);
    for (size_t c = 0; c < T; c++)
      for (size_t r = 0; r < ldd && c * ldd + r < nd; r++) {
        const float want = r < T ? src[r * lds + c] : GUARD;
        cr_assert(memcmp(&dst[c * ldd + r], &want, sizeof want) == 0,
                  "%s: dst[%zu][%zu] is %g, want %g", t->name, c, r, dst[c * ldd + r], want);
      }
    free(src);
    free(dst);
  }
}

/* The streaming tile kernels: the same bits as the definition, with the destination on whole
 * lines (non-temporal stores) and off them (plain stores), guards around it untouched. */
Test(layout, streaming_tile_kernels_match_the_definition) {
  load_tables();
  uint64_t rng = 13;
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    if (t->transpose_stream == NULL) continue;
    cr_assert_not_null(t->transpose_fence, "%s: a streaming kernel needs its fence", t->name);
    const size_t T = (size_t)t->transpose_tile, lds = T + 3;
    for (size_t shift = 0; shift < 2; shift++) {
      const size_t ldd = T * 2 + shift * 3, nd = T * ldd + 32;
      float *src = malloc((T - 1) * lds * sizeof(float) + T * sizeof(float));
      float *buf = aligned_alloc(64, ck_round_up(nd * sizeof(float), 64));
      float *dst = buf + 16 + shift; /* on a line, or one float past it */
      ckt_fill(src, (T - 1) * lds + T, &rng);
      for (size_t i = 0; i < nd; i++) buf[i] = GUARD;
      t->transpose_stream(src, lds, dst, ldd);
      t->transpose_fence();
      for (size_t i = 0; i < nd; i++) {
        const size_t o = i - (size_t)(dst - buf), c = o / ldd, r = o % ldd;
        const int inside = i >= (size_t)(dst - buf) && c < T && r < T;
        const float want = inside ? src[r * lds + c] : GUARD;
        cr_assert(memcmp(&buf[i], &want, sizeof want) == 0,
                  "%s, shift %zu: element %zu is %g, want %g", t->name, shift, i, buf[i], want);
      }
      free(src);
      free(buf);
    }
  }
}

/* Conversions large enough for the streaming stores (over 4 MiB), with tensors on a line and
 * one float past it, channel counts whose rows are whole lines or not. */
Test(layout, large_conversions_match_the_definition) {
  load_tables();
  static const size_t shapes[][3] = {{2, 64, 9000}, {1, 3, 400000}, {1, 17, 70000}};
  uint64_t rng = 14;
  for (int ti = 0; ti < ntables; ti++)
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
      for (size_t shift = 0; shift < 2; shift++) {
        const ck_kernels *t = tables[ti];
        const size_t N = shapes[si][0], C = shapes[si][1], P = shapes[si][2], n = N * C * P;
        const size_t bytes = ck_round_up((n + 1) * sizeof(float), 64);
        float *a = aligned_alloc(64, bytes), *b = aligned_alloc(64, bytes);
        float *c = aligned_alloc(64, bytes);
        ckt_fill(a + shift, n, &rng);
        const int threads = 1 + (int)shift;
        ck_nchw_to_nhwc(t, a + shift, b + shift, N, C, P, threads);
        for (size_t i = 0; i < N; i++)
          for (size_t ch = 0; ch < C; ch++)
            for (size_t p = 0; p < P; p++) {
              const float x = a[shift + (i * C + ch) * P + p], y = b[shift + (i * P + p) * C + ch];
              if (memcmp(&x, &y, sizeof x) != 0)
                cr_assert_fail("%s N %zu C %zu P %zu shift %zu: nhwc[%zu][%zu][%zu] is %g, want %g",
                               t->name, N, C, P, shift, i, p, ch, y, x);
            }
        ck_nhwc_to_nchw(t, b + shift, c + shift, N, C, P, threads);
        cr_assert(memcmp(a + shift, c + shift, n * sizeof(float)) == 0,
                  "%s N %zu C %zu P %zu shift %zu: NHWC -> NCHW does not give the input back",
                  t->name, N, C, P, shift);
        free(a);
        free(b);
        free(c);
      }
}

Test(layout, nchw_nhwc_round_trip_matches_the_definition) {
  load_tables();
  static const size_t channels[] = {1, 3, 7, 8, 16, 17, 33, 64, 130, 200};
  static const size_t pixels[] = {1, 5, 15, 16, 49, 300, 1027, 1024, 2100};
  uint64_t rng = 12;
  for (int ti = 0; ti < ntables; ti++)
    for (size_t ci = 0; ci < sizeof channels / sizeof *channels; ci++)
      for (size_t pi = 0; pi < sizeof pixels / sizeof *pixels; pi++)
        for (int threads = 1; threads <= 2; threads++) {
          const ck_kernels *t = tables[ti];
          const size_t N = 2, C = channels[ci], P = pixels[pi], n = N * C * P;
          float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
          float *c = malloc(n * sizeof(float));
          ckt_fill(a, n, &rng);
          ck_nchw_to_nhwc(t, a, b, N, C, P, threads);
          for (size_t i = 0; i < N; i++)
            for (size_t ch = 0; ch < C; ch++)
              for (size_t p = 0; p < P; p++) {
                const float x = a[(i * C + ch) * P + p], y = b[(i * P + p) * C + ch];
                cr_assert(memcmp(&x, &y, sizeof x) == 0,
                          "%s C %zu P %zu threads %d: nhwc[%zu][%zu][%zu] is %g, want %g", t->name,
                          C, P, threads, i, p, ch, y, x);
              }
          ck_nhwc_to_nchw(t, b, c, N, C, P, threads);
          cr_assert(memcmp(a, c, n * sizeof(float)) == 0,
                    "%s C %zu P %zu threads %d: NHWC -> NCHW does not give the input back", t->name,
                    C, P, threads);
          free(a);
          free(b);
          free(c);
        }
}
