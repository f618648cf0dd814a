/* The indirect GEMM engine: indirection base, weight packing, and the parallel tile loop. */
#include "igemm.h"

#include <string.h>

#include "internal.h"
#include "parallel.h"

/* Bytes of packed weights one chunk of NR-channel blocks may take. A chunk's blocks stay in L2
 * while every pixel tile of a unit streams past them, and each tile's input rows (MR x taps x C
 * floats) stay in cache across the chunk's blocks: in L1 for small layers, in L2 from a few
 * hundred channels on (7 x 2304 floats, 63 KiB, for a 3x3 layer of 256 channels). Half of a 1-2
 * MiB L2 leaves room for them. Cutting K into ranges of 1 or 3 taps, run over bands of 16 tiles
 * so that a tile's rows stay in L1 across all blocks, was measured no faster on vgg16 conv3/conv4,
 * yolov3 conv_52 and resnet50 res2 (-3% to +8% time, before the cost of re-reading the output
 * between ranges): the kernel's broadcasts and weight loads run at full speed from L2. */
#define CK_IGEMM_L2_WEIGHT_BYTES (768u * 1024u)

/* Bytes per prefetch: a cache line on the x86-64 and aarch64 cores convkit targets. */
#define CK_IGEMM_LINE 64u

/* Work units per thread: enough that a thread stalled by another process (a scheduler slice)
 * leaves most of its share to be taken by the others, few enough that the dynamic schedule
 * costs nothing next to a unit. */
#define CK_IGEMM_UNITS_PER_THREAD 8

uintptr_t ck_indirection_base(const float *zero, size_t zero_bytes, size_t span_bytes) {
  const uintptr_t z = (uintptr_t)zero, low = CK_ALIGNMENT;
  if (span_bytes <= UINTPTR_MAX - low && z >= low + span_bytes) return low;
  return z + zero_bytes;
}

void ck_igemm_pack(size_t nr, size_t n, size_t ks, size_t kc, const float *filter,
                   const float *bias, float *packed) {
  const size_t blocks = (n + nr - 1) / nr;
  for (size_t b = 0; b < blocks; b++) {
    float *w = packed + b * ck_igemm_block_floats(nr, ks, kc);
    const size_t j0 = b * nr, cols = ck_min_size(nr, n - j0);
    memset(w, 0, ck_igemm_block_floats(nr, ks, kc) * sizeof(float));
    for (size_t j = 0; j < cols; j++) w[j] = bias[j0 + j];
    w += nr;
    for (size_t t = 0; t < ks; t++)
      for (size_t k = 0; k < kc; k++)
        for (size_t j = 0; j < cols; j++)
          w[(t * kc + k) * nr + j] = filter[((j0 + j) * kc + k) * ks + t];
  }
}

void ck_dwconv_pack(size_t cb, size_t channels, size_t ks, const float *filter, const int *tap_of,
                    const float *bias, float *packed) {
  const size_t blocks = (channels + cb - 1) / cb;
  for (size_t b = 0; b < blocks; b++) {
    float *w = packed + b * cb * (1 + ks);
    const size_t c0 = b * cb, cols = ck_min_size(cb, channels - c0);
    memset(w, 0, cb * (1 + ks) * sizeof(float));
    for (size_t j = 0; j < cols; j++) w[j] = bias[c0 + j];
    for (size_t t = 0; t < ks; t++) {
      const size_t src_tap = tap_of != NULL ? (size_t)tap_of[t] : t;
      for (size_t j = 0; j < cols; j++) w[cb + t * cb + j] = filter[(c0 + j) * ks + src_tap];
    }
  }
}

/* The taps of a tile that the kernel must run: all but the trailing taps whose MR positions are
 * all the zero row. Those contribute only zeros (the tile's last kernel row under the bottom
 * padding: 1/3 of the taps of the last output rows of a 3x3 layer, 9% of the taps of a 7x7
 * output), and an absent tap is the reference's reading of padding. Only trailing ones: the
 * kernel starts from the bias at the head of the packed block and walks the taps in order, so
 * a tile cannot start at a later tap. At least one tap stays (the contract's ks >= 1). */
static size_t live_taps(const float **a, size_t ks, size_t MR, const float *zero) {
  for (; ks > 1; ks--) {
    const float **t = a + (ks - 1) * MR;
    for (size_t i = 0; i < MR; i++)
      if (t[i] != zero) return ks;
  }
  return ks;
}

/* The loop order of one unit: its pixel tiles outer, its chunk's channel blocks inner, so a
 * tile's input rows are read from memory once and reused from cache by every block. */
static void run_unit(const ck_igemm_op *op, const float *packed, size_t a_offset, float *out,
                     size_t tile0, size_t tile1, size_t block0, size_t block1) {
  const ck_kernels *k = op->kern;
  const size_t MR = (size_t)k->igemm_mr, NR = (size_t)k->igemm_nr;
  const size_t block_floats = ck_igemm_block_floats(NR, op->ks, op->kc);
  for (size_t tile = tile0; tile < tile1; tile++) {
    const size_t p0 = tile * MR, mr = ck_min_size(MR, op->pixels - p0);
    const float **a = op->indirection + tile * op->ks * MR;
    const int merged = op->merged != NULL && op->merged[tile];
    const size_t kc = merged ? op->kc_merged : op->kc;
    const size_t ks = live_taps(a, merged ? op->ks_merged : op->ks, MR, op->zero);
    for (size_t b = block0; b < block1; b++) {
      const size_t nr = ck_min_size(NR, op->n - b * NR);
      /* The next tile's output lines of this block, fetched while this tile computes, so that
       * its stores find them in cache instead of each waiting for its line from memory (with
       * the output confined to 70 pixels, a diagnostic, layers ran 3-29% faster: the output's
       * lines, not the kernel, cost that). Block by block: one burst of a whole chunk's lines
       * (4 blocks of a 1x1 layer of 256 outputs: 112) was slower. A prefetch is a hint: it
       * never faults, so the line may start before the output. */
      if (tile + 1 < tile1) {
        const size_t p1 = p0 + MR, rows = ck_min_size(MR, op->pixels - p1);
        for (size_t i = 0; i < rows; i++) {
          const uintptr_t q = (uintptr_t)(out + (p1 + i) * op->out_stride + b * NR);
          for (uintptr_t l = q & ~(uintptr_t)(CK_IGEMM_LINE - 1); l < q + nr * sizeof(float);
               l += CK_IGEMM_LINE)
            __builtin_prefetch((const void *)l, 1, 3);
        }
      }
      k->igemm(mr, nr, kc, ks, a, a_offset, op->zero, packed + b * block_floats,
               out + p0 * op->out_stride + b * NR, op->out_stride, &op->clamp);
    }
  }
}

typedef struct {
  const ck_igemm_op *op;
  uintptr_t a_base;
  size_t a_image_bytes, out_image_floats, tiles, blocks, block_floats;
  size_t chunk, chunks, piece, pieces;
  float *output;
} igemm_job;

static void igemm_unit(void *arg, size_t u) {
  const igemm_job *j = arg;
  const ck_igemm_op *op = j->op;
  const size_t pc = u % j->pieces;
  u /= j->pieces;
  const size_t ch = u % j->chunks;
  u /= j->chunks;
  const size_t g = u % op->groups, img = u / op->groups;
  const size_t a_offset = j->a_base + img * j->a_image_bytes + g * op->a_group_bytes;
  const float *packed = op->packed + g * j->blocks * j->block_floats;
  run_unit(op, packed, a_offset, j->output + img * j->out_image_floats + g * op->n, pc * j->piece,
           ck_min_size(j->tiles, (pc + 1) * j->piece), ch * j->chunk,
           ck_min_size(j->blocks, (ch + 1) * j->chunk));
}

void ck_igemm_run(const ck_igemm_op *op, size_t batch, uintptr_t a_base, size_t a_image_bytes,
                  float *output, size_t out_image_floats, int threads) {
  const size_t MR = (size_t)op->kern->igemm_mr, NR = (size_t)op->kern->igemm_nr;
  igemm_job j = {.op = op,
                 .a_base = a_base,
                 .a_image_bytes = a_image_bytes,
                 .out_image_floats = out_image_floats,
                 .tiles = ck_div_up(op->pixels, MR),
                 .blocks = ck_div_up(op->n, NR),
                 .block_floats = ck_igemm_block_floats(NR, op->ks, op->kc),
                 .output = output};

  /* Channel chunks: as many blocks as fit the L2 budget, evened out. */
  j.chunk = ck_min_size(j.blocks, CK_IGEMM_L2_WEIGHT_BYTES / (j.block_floats * sizeof(float)));
  if (j.chunk == 0) j.chunk = 1;
  j.chunks = ck_div_up(j.blocks, j.chunk);
  j.chunk = ck_div_up(j.blocks, j.chunks);

  /* Pixel pieces: split the tiles so that every thread gets several units. The split only
   * changes which thread computes a tile, never how, so the result does not depend on it. */
  const size_t coarse = batch * op->groups * j.chunks;
  const size_t want = (size_t)threads * CK_IGEMM_UNITS_PER_THREAD;
  j.pieces = threads > 1 && coarse < want ? ck_div_up(want, coarse) : 1;
  if (j.pieces > j.tiles) j.pieces = j.tiles;
  j.piece = ck_div_up(j.tiles, j.pieces);
  j.pieces = ck_div_up(j.tiles, j.piece);

  ck_parallel_for(threads, coarse * j.pieces, igemm_unit, &j);
}
