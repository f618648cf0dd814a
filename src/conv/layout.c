#include "layout.h"

/* Both directions are the same transpose of a rows x cols matrix per image, in blocks of RB
 * source rows x cb source columns. A block reads RB source rows of cb floats and writes cb
 * destination rows of RB floats (one 64-byte line each), so every destination line is written
 * whole, by one thread (jobs are bands of RB rows), and only cb destination lines are live at a
 * time. cb is 16 (whole source lines too) unless the destination stride would put more than 8 of
 * those 16 lines into one L1 set (a stride that is a multiple of 4 KiB, e.g. 224 x 224 pixels):
 * a set has 8 to 12 ways, and more lines than ways would miss on every store. Then cb is 8 and
 * each source line is read in two halves, the second from L2 at worst. */
#define RB 16

static size_t gcd(size_t a, size_t b) {
  while (b != 0) {
    size_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* How many of 16 lines `stride` floats apart share one set of a 64-set, 64-byte-line cache. */
static size_t lines_per_set(size_t stride) {
  const size_t step = (stride * sizeof(float) / 64) % 64; /* in sets */
  const size_t sets = 64 / gcd(step == 0 ? 64 : step, 64);
  return (16 + sets - 1) / sets;
}

static void transpose(const float *src, float *dst, size_t batch, size_t rows, size_t cols,
                      int threads) {
  const size_t bands = (rows + RB - 1) / RB;
  const size_t cb = lines_per_set(rows) > 8 ? 8 : 16;
  const long jobs = (long)(batch * bands);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1 && jobs > 1)
  for (long job = 0; job < jobs; job++) {
    const size_t n = (size_t)job / bands, r0 = (size_t)job % bands * RB;
    const size_t nr = r0 + RB < rows ? RB : rows - r0;
    const float *s = src + n * rows * cols + r0 * cols;
    float *d = dst + n * rows * cols + r0;
    for (size_t c0 = 0; c0 < cols; c0 += cb) {
      const size_t nc = c0 + cb < cols ? cb : cols - c0;
      for (size_t r = 0; r < nr; r++)
        for (size_t c = 0; c < nc; c++) d[(c0 + c) * rows + r] = s[r * cols + c0 + c];
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
