#include "layout.h"

#include "../internal.h"
#include "../parallel.h"

/* Both directions are the same transpose of a rows x cols matrix per image. Jobs are blocks of
 * br x bc elements (multiples of T, the ISA's transpose tile) of about BLOCK_FLOATS: the block's
 * source and destination (64 KiB each) stay in L2 while its tiles are moved, so every
 * destination line is completed while it is in cache and each side is read or written in runs
 * of at least bc or br floats. Bands of T rows across the whole matrix, as before, wrote a
 * 12.8 MiB NHWC image (vgg16 conv1_2) a quarter line per pixel per sweep and ran at a third of
 * memcpy's speed. The shorter side is taken whole up to BLOCK_SHORT, so a few channels still
 * give many jobs. A full T x T tile goes through the ISA's kernel (T row loads, T row stores,
 * the shuffles in registers), the ragged right and bottom edges through scalar copies. Every
 * destination element is written by one job, whatever the thread count. */
#define BLOCK_FLOATS (16u * 1024u)
#define BLOCK_SHORT 128u

/* Destinations of more bytes than this are written with the ISA's streaming stores when it has
 * them: the 2 MiB L2 of the machines measured, past which the lines would leave L2 before anyone
 * read them anyway, and skipping the read for ownership halves the traffic. Measured on the
 * 16x16 tile loop alone (medians, ms, plain -> streaming): 256 x 3136 (3.2 MB) to NHWC 2.39 ->
 * 1.90, to NCHW 2.24 -> 0.99; 512 x 784 (1.6 MB) 0.59 -> 0.64 and 0.67 -> 0.46; 64 x 3136
 * (0.8 MB, in L2: plain runs at 1.4x memcpy's time) 0.13 -> 0.31 both ways. */
#define STREAM_MIN_BYTES (2u << 20)

typedef struct {
  const ck_kernels *k;
  ck_transpose_ukernel tile; /* k->transpose or k->transpose_stream */
  const float *src;
  float *dst;
  size_t rows, cols, br, bc, nrb, ncb;
} transpose_job;

static size_t min_size(size_t a, size_t b) {
  return a < b ? a : b;
}

static void transpose_block(void *arg, size_t job) {
  const transpose_job *j = arg;
  const ck_kernels *k = j->k;
  const size_t rows = j->rows, cols = j->cols, T = (size_t)k->transpose_tile;
  const size_t per_image = j->nrb * j->ncb, n = job / per_image;
  const size_t r_begin = job % per_image / j->ncb * j->br, c_begin = job % j->ncb * j->bc;
  const size_t r_end = min_size(rows, r_begin + j->br), c_end = min_size(cols, c_begin + j->bc);
  const float *s = j->src + n * rows * cols;
  float *d = j->dst + n * rows * cols;
  for (size_t r0 = r_begin; r0 < r_end; r0 += T) {
    const size_t nr = min_size(T, r_end - r0);
    size_t c0 = c_begin;
    if (nr == T)
      for (; c0 + T <= c_end; c0 += T) j->tile(s + r0 * cols + c0, cols, d + c0 * rows + r0, rows);
    for (; c0 < c_end; c0 += T) {
      const size_t nc = min_size(T, c_end - c0);
      for (size_t r = 0; r < nr; r++)
        for (size_t c = 0; c < nc; c++) d[(c0 + c) * rows + r0 + r] = s[(r0 + r) * cols + c0 + c];
    }
  }
  if (j->tile == k->transpose_stream) k->transpose_fence();
}

static void transpose(const ck_kernels *k, const float *src, float *dst, size_t batch, size_t rows,
                      size_t cols, int threads) {
  if (rows == 0 || cols == 0) return;
  const size_t T = (size_t)k->transpose_tile;
  const size_t rows_t = ck_round_up(rows, T), cols_t = ck_round_up(cols, T);
  /* the shorter side whole (up to BLOCK_SHORT), the longer one fills the budget */
  const size_t s = min_size(min_size(rows_t, cols_t), BLOCK_SHORT);
  const size_t l = BLOCK_FLOATS / s / T * T;
  const int stream = k->transpose_stream != NULL &&
                     (double)batch * (double)rows * (double)cols * sizeof(float) > STREAM_MIN_BYTES;
  transpose_job j = {k, stream ? k->transpose_stream : k->transpose, src, dst, rows, cols, 0, 0, 0,
                     0};
  j.br = rows_t <= cols_t ? s : min_size(l, rows_t);
  j.bc = rows_t <= cols_t ? min_size(l, cols_t) : s;
  j.nrb = ck_div_up(rows, j.br);
  j.ncb = ck_div_up(cols, j.bc);
  ck_parallel_for(threads, batch * j.nrb * j.ncb, transpose_block, &j);
}

void ck_nchw_to_nhwc(const ck_kernels *k, const float *src, float *dst, size_t batch,
                     size_t channels, size_t pixels, int threads) {
  transpose(k, src, dst, batch, channels, pixels, threads);
}

void ck_nhwc_to_nchw(const ck_kernels *k, const float *src, float *dst, size_t batch,
                     size_t channels, size_t pixels, int threads) {
  transpose(k, src, dst, batch, pixels, channels, threads);
}
