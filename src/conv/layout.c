#include "layout.h"

/* Both directions are the same transpose of a rows x cols matrix per image. Jobs are bands of T
 * source rows (T = the ISA's transpose tile), so every destination element is written by one
 * thread whatever the thread count; a band walks its columns T at a time, a full T x T tile going
 * through the ISA's kernel (T row loads, T row stores, the shuffles in registers) and the ragged
 * right and bottom edges through scalar copies. */
static void transpose(const ck_kernels *k, const float *src, float *dst, size_t batch, size_t rows,
                      size_t cols, int threads) {
  const size_t T = (size_t)k->transpose_tile;
  const size_t bands = (rows + T - 1) / T;
  const long jobs = (long)(batch * bands);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1 && jobs > 1)
  for (long job = 0; job < jobs; job++) {
    const size_t n = (size_t)job / bands, r0 = (size_t)job % bands * T;
    const size_t nr = r0 + T < rows ? T : rows - r0;
    const float *s = src + n * rows * cols + r0 * cols;
    float *d = dst + n * rows * cols + r0;
    size_t c0 = 0;
    if (nr == T)
      for (; c0 + T <= cols; c0 += T) k->transpose(s + c0, cols, d + c0 * rows, rows);
    for (; c0 < cols; c0 += T) {
      const size_t nc = c0 + T < cols ? T : cols - c0;
      for (size_t r = 0; r < nr; r++)
        for (size_t c = 0; c < nc; c++) d[(c0 + c) * rows + r] = s[r * cols + c0 + c];
    }
  }
}

void ck_nchw_to_nhwc(const ck_kernels *k, const float *src, float *dst, size_t batch,
                     size_t channels, size_t pixels, int threads) {
  transpose(k, src, dst, batch, channels, pixels, threads);
}

void ck_nhwc_to_nchw(const ck_kernels *k, const float *src, float *dst, size_t batch,
                     size_t channels, size_t pixels, int threads) {
  transpose(k, src, dst, batch, pixels, channels, threads);
}
