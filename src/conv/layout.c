#include "layout.h"

#include "../parallel.h"

/* Both directions are the same transpose of a rows x cols matrix per image. Jobs are bands of T
 * source rows (T = the ISA's transpose tile), so every destination element is written by one
 * thread whatever the thread count; a band walks its columns T at a time, a full T x T tile going
 * through the ISA's kernel (T row loads, T row stores, the shuffles in registers) and the ragged
 * right and bottom edges through scalar copies. */
typedef struct {
  const ck_kernels *k;
  const float *src;
  float *dst;
  size_t rows, cols, bands;
} transpose_job;

static void transpose_band(void *arg, size_t job) {
  const transpose_job *j = arg;
  const ck_kernels *k = j->k;
  const size_t rows = j->rows, cols = j->cols, T = (size_t)k->transpose_tile;
  const size_t n = job / j->bands, r0 = job % j->bands * T;
  const size_t nr = r0 + T < rows ? T : rows - r0;
  const float *s = j->src + n * rows * cols + r0 * cols;
  float *d = j->dst + n * rows * cols + r0;
  size_t c0 = 0;
  if (nr == T)
    for (; c0 + T <= cols; c0 += T) k->transpose(s + c0, cols, d + c0 * rows, rows);
  for (; c0 < cols; c0 += T) {
    const size_t nc = c0 + T < cols ? T : cols - c0;
    for (size_t r = 0; r < nr; r++)
      for (size_t c = 0; c < nc; c++) d[(c0 + c) * rows + r] = s[r * cols + c0 + c];
  }
}

static void transpose(const ck_kernels *k, const float *src, float *dst, size_t batch, size_t rows,
                      size_t cols, int threads) {
  const size_t T = (size_t)k->transpose_tile;
  transpose_job j = {k, src, dst, rows, cols, (rows + T - 1) / T};
  ck_parallel_for(threads, batch * j.bands, transpose_band, &j);
}

void ck_nchw_to_nhwc(const ck_kernels *k, const float *src, float *dst, size_t batch,
                     size_t channels, size_t pixels, int threads) {
  transpose(k, src, dst, batch, channels, pixels, threads);
}

void ck_nhwc_to_nchw(const ck_kernels *k, const float *src, float *dst, size_t batch,
                     size_t channels, size_t pixels, int threads) {
  transpose(k, src, dst, batch, pixels, channels, threads);
}
