#include "layout.h"

/* Both directions are the same blocked transpose of a rows x cols matrix per image; 32 x 32 tiles
 * keep the strided side within a few cache lines per row. */
#define TILE 32

static void transpose(const float *src, float *dst, size_t batch, size_t rows, size_t cols,
                      int threads) {
  const size_t row_tiles = (rows + TILE - 1) / TILE;
  const long jobs = (long)(batch * row_tiles);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1 && jobs > 1)
  for (long job = 0; job < jobs; job++) {
    const size_t n = (size_t)job / row_tiles, r0 = (size_t)job % row_tiles * TILE;
    const size_t r1 = r0 + TILE < rows ? r0 + TILE : rows;
    const float *s = src + n * rows * cols;
    float *d = dst + n * rows * cols;
    for (size_t c0 = 0; c0 < cols; c0 += TILE) {
      const size_t c1 = c0 + TILE < cols ? c0 + TILE : cols;
      for (size_t r = r0; r < r1; r++)
        for (size_t c = c0; c < c1; c++) d[c * rows + r] = s[r * cols + c];
    }
  }
}

void ck_nchw_to_nhwc(const float *src, float *dst, size_t batch, size_t channels, size_t pixels,
                     int threads) {
  transpose(src, dst, batch, channels, pixels, threads);
}

void ck_nhwc_to_nchw(const float *src, float *dst, size_t batch, size_t channels, size_t pixels,
                     int threads) {
  transpose(src, dst, batch, pixels, channels, threads);
}
