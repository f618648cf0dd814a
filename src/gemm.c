/*
 * The packed GEMM engine: the Goto/BLIS loops around the table's micro-kernel.
 *
 *   task = (ic: MC rows, a chunk of columns)                   <- OpenMP, dynamic schedule
 *     for pc (KC of the k dimension, ascending)
 *       A block MC x KC: pre-packed, or packed by this thread (transposing packer of the ISA)
 *       for jc (NC columns of the chunk)
 *         B block KC x NC: pre-packed, or packed by this thread (stays in L2)
 *         for ir (MR rows)                       the KC x MR micro-panel of A stays in L1
 *           for jr (NR columns) micro-kernel     KC x NR micro-panels of B stream from L2
 *
 * The two inner loops are those of BLIS on Skylake-X, seen in row-major: the broadcast operand's
 * micro-panel (A, MR floats per k) is the one kept in L1 while the wide vector operand (B, NR
 * floats per k) streams from L2, which lets KC grow to a few hundred (fewer passes over C) with
 * a 48 KiB L1. The A block then only needs L3: MC is large, which keeps B repacking rare.
 *
 * Unlike BLIS, plain B is not packed into one block shared by all threads: each thread packs the
 * B block of its own task. A B element is then packed once per MC block of rows instead of once,
 * one copy per 2*MC flops (well under 1%), and the parallel loop needs no barrier and no shared
 * buffer: a thread that loses its core to another process delays only the task it holds.
 *
 * Two shapes skip packing where it costs more than it saves, through the ISA's direct kernel (the
 * micro-kernel reading unpacked rows, with the same arithmetic): tiny products (nothing packed)
 * and narrow ones (n <= 4*NR: A is used only n times, so it is read in place). Where the table
 * has a wide direct kernel (AVX-512: 6 x 64), products of at most its NR columns with plain
 * row-major operands use it instead, nothing packed, one tile spanning every column.
 *
 * Every C element belongs to exactly one micro-tile, and a micro-tile's k sum always runs over the
 * same KC blocks in ascending order, whatever the thread count or the task shape: results are
 * bitwise identical for any thread count. alpha and beta apply on the first KC block (later blocks
 * add with beta = 1); bias and clamp only on the last one, so C is never read or written in an
 * extra pass.
 */
#include <math.h>
#include <omp.h>
#include <string.h>
#include <unistd.h>

#include "gemm.h"
#include "internal.h"

/* ---- Blocking ----------------------------------------------------------------------------- */

/* The blocking of one problem. KC comes from the table (or the caches) and k only, never from the
 * thread count, so the k blocks, and hence the bits, are the same for any thread count; MC may
 * be cut finer for threads (choose_grid), which only regroups whole micro-tiles. */
typedef struct {
  size_t mr, nr;
  size_t kc, nkb;  /* balanced KC blocks: nkb blocks of kc (the last may be shorter) */
  size_t mc, nic;  /* balanced MC blocks of rows (multiples of MR) */
  size_t nc;       /* columns of a packed B block (a multiple of NR) */
  int direct_a;    /* A is read in place by the direct kernel (see make_blocking) */
  int wide;        /* A and B are read in place by the wide direct kernel (mr, nr are its tile) */
  size_t a_floats; /* per-thread packed-A block (0 when A is pre-packed or read in place) */
  size_t b_floats; /* per-thread packed-B block of KC x NC (0 when B is pre-packed) */
} blocking;

/* Splits n into div_up(n, max_block) near-equal blocks, each a multiple of q; returns the block
 * size and stores the count. */
static size_t balance(size_t n, size_t max_block, size_t q, size_t *count) {
  if (n == 0) {
    *count = 0;
    return q;
  }
  size_t nb = ck_div_up(n, max_block);
  size_t b = ck_round_up(ck_div_up(n, nb), q);
  *count = ck_div_up(n, b);
  return b;
}

/* L1d and L2 sizes in bytes as the OS reports them, 0 when it does not. Read once; the reading is
 * pure, so two first callers racing only store the same values twice. */
static void cache_sizes(size_t *l1, size_t *l2) {
  static long cached[2] = {-1, -1};
  long a = __atomic_load_n(&cached[0], __ATOMIC_RELAXED);
  long b = __atomic_load_n(&cached[1], __ATOMIC_RELAXED);
  if (a < 0 || b < 0) {
    a = b = 0;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
    a = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    b = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    a = a > 0 ? a : 0;
    b = b > 0 ? b : 0;
    __atomic_store_n(&cached[0], a, __ATOMIC_RELAXED);
    __atomic_store_n(&cached[1], b, __ATOMIC_RELAXED);
  }
  *l1 = (size_t)a;
  *l2 = (size_t)b;
}

/* KC and NC for a table: derived from the caches when the OS reports them, else the table's.
 *   KC: A's KC x MR micro-panel takes 7/16 of L1d (the rest holds the B lines streaming through
 *       and the C tile); at most 512, beyond which fewer passes over C no longer pay.
 *   NC: the KC x NC block of B takes 3/8 of L2 (the rest holds A micro-panels and C tiles), or
 *       3/16 with a prefetching kernel: the source of the next block then arrives in L2 while the
 *       current one is used, and two blocks in 3/4 of L2 evict each other (measured at
 *       128 x 784 x 1152: NC 256 instead of 512 is 7% faster; squares unchanged).
 * On this project's machines (L1d 48 KiB, L2 2 MiB) they give the tables' values. MC is the
 * table's: the A block only needs L3. */
static void cache_blocks(const ck_kernels *kern, size_t *kc, size_t *nc) {
  size_t l1, l2;
  cache_sizes(&l1, &l2);
  const size_t mr = (size_t)kern->mr, nr = (size_t)kern->nr;
  *kc = (size_t)kern->kc;
  *nc = (size_t)kern->nc;
  if (l1 >= 4096) {
    const size_t k = l1 * 7 / 16 / (mr * sizeof(float)) / 8 * 8;
    *kc = k < 64 ? 64 : k > 512 ? 512 : k;
  }
  if (l2 >= 65536) {
    const size_t share = kern->gemm_prefetch ? l2 * 3 / 16 : l2 * 3 / 8;
    const size_t n = share / (*kc * sizeof(float)) / nr * nr;
    *nc = n < nr ? nr : n;
  }
}

/* Both operands plain and row-major: the direct kernels can read them in place. */
static int plain_rows(const ck_gemm_problem *p) {
  return !p->a.packed && !p->b.packed && p->a.col_stride == 1 && p->b.col_stride == 1;
}

/* At most direct_wide_nr columns of plain row-major operands: the wide direct kernel reads A and B
 * in place, one tile spanning every column (no packing at all; a KC block of B is k x n contiguous
 * floats when ldb = n). The choice depends on the shape only, and every kernel gives an element
 * the same bits, so the thread count still changes nothing. */
static int use_wide(const ck_kernels *kern, const ck_gemm_problem *p) {
  return kern->gemm_direct_wide != NULL && plain_rows(p) && p->n <= (size_t)kern->direct_wide_nr;
}

/* The direct kernel for the wide path or the table's own, with the tile it covers. */
static ck_gemm_direct_fn direct_kernel(const ck_kernels *kern, int wide, size_t *mr, size_t *nr) {
  *mr = (size_t)(wide ? kern->direct_wide_mr : kern->mr);
  *nr = (size_t)(wide ? kern->direct_wide_nr : kern->nr);
  return wide ? kern->gemm_direct_wide : kern->gemm_direct;
}

static int make_blocking(const ck_kernels *kern, const ck_gemm_problem *p, blocking *bl) {
  size_t kc_max, nc_max;
  cache_blocks(kern, &kc_max, &nc_max);
  bl->wide = use_wide(kern, p);
  direct_kernel(kern, bl->wide, &bl->mr, &bl->nr);
  if (bl->wide) {
    /* Each k of a wide tile reads its A elements once (no micro-panel to keep in L1), and every
     * row tile reads the KC x n block of B again: KC may grow until that block takes half of L2,
     * which spares the passes over C and the short streams of A rows that each KC block restarts
     * (512 x 49 x 4608: one block instead of 12, 1.20 -> 1.37 times OpenBLAS's speed). */
    size_t l1, l2;
    cache_sizes(&l1, &l2);
    const size_t kc_l2 = l2 / 2 / (p->n * sizeof(float));
    kc_max = kc_l2 > kc_max ? kc_l2 : kc_max;
  }
  bl->kc = balance(p->k, kc_max, 1, &bl->nkb);
  bl->mc = balance(p->m, ck_round_up((size_t)kern->mc, bl->mr), bl->mr, &bl->nic);
  bl->nc = ck_round_up(nc_max, bl->nr);
  /* The buffers are sized from the caps rather than the balanced blocks (which they hold), so
   * the workspace never shrinks when m, n or k grows: a caller may size one workspace for the
   * largest of several problems. */
  const size_t kc_cap = ck_min_size(p->k, kc_max);
  const size_t mc_cap =
      ck_min_size(ck_round_up(p->m, bl->mr), ck_round_up((size_t)kern->mc, bl->mr));
  const size_t nc_cap = ck_min_size(ck_round_up(p->n, bl->nr), bl->nc);
  /* A narrow product uses each element of A only n times: packing A (a transposition, and one
   * more pass over memory) then costs more than the direct kernel's broadcasts straight from the
   * rows of A lose (measured: a clear win up to n = 4*NR, a wash around 8*NR). B is still packed
   * (or pre-packed): its panels are rows NR apart, which the direct kernel reads as well. */
  bl->direct_a = bl->wide || (!p->a.packed && p->a.col_stride == 1 && p->n <= 4 * bl->nr &&
                              kern->gemm_direct != NULL);
  bl->a_floats = 0;
  bl->b_floats = 0;
  if (!p->a.packed && !bl->direct_a && !ck_mul_size(mc_cap, kc_cap, &bl->a_floats)) return 0;
  if (!p->b.packed && !bl->wide && !ck_mul_size(nc_cap, kc_cap, &bl->b_floats)) return 0;
  return 1;
}

/* ---- Packing ------------------------------------------------------------------------------ */

/* dst[k*w + i] = s[k*cs + i] for i < h, zero for h <= i < w: a panel whose w rows are contiguous
 * for each k. The full-width cases get copies of constant size, which compile to a few vector
 * moves instead of a library call per k. */
#define COPY_ROWS(W)                                                                               \
  for (size_t k = 0; k < kc; k++) memcpy(dst + k * (W), s + k * cs, (W) * sizeof(float));          \
  return
static void copy_panel(size_t h, size_t w, size_t kc, const float *s, size_t cs, float *dst) {
  if (h == w) {
    switch (w) {
    case 32:
      COPY_ROWS(32);
    case 16:
      COPY_ROWS(16);
    case 14:
      COPY_ROWS(14);
    case 8:
      COPY_ROWS(8);
    case 6:
      COPY_ROWS(6);
    case 4:
      COPY_ROWS(4);
    default:
      break;
    }
  }
  for (size_t k = 0; k < kc; k++) {
    memcpy(dst + k * w, s + k * cs, h * sizeof(float));
    for (size_t i = h; i < w; i++) dst[k * w + i] = 0.0f;
  }
}
#undef COPY_ROWS

/* Packs rows [0, rows) x k [0, kc) of a plain operand (element (r, k) at src[r*rs + k*cs]) into
 * ceil(rows / w) panels of w interleaved rows, panel p at dst + p*panel_stride, element (i, k) of a
 * panel at k*w + i; rows past `rows` are zero. Used for A (w = MR, rows = m) and for B seen as its
 * transpose (w = NR, rows = n, r = column). */
static void pack_panels(const ck_kernels *kern, size_t rows, size_t kc, const float *src, size_t rs,
                        size_t cs, size_t w, float *dst, size_t panel_stride) {
  for (size_t r0 = 0; r0 < rows; r0 += w, dst += panel_stride) {
    const size_t h = ck_min_size(w, rows - r0);
    const float *s = src + r0 * rs;
    if (rs == 1) {
      copy_panel(h, w, kc, s, cs, dst);
    } else if (cs == 1) {
      kern->gemm_packt(h, w, kc, s, rs, dst);
    } else {
      for (size_t i = 0; i < h; i++)
        for (size_t k = 0; k < kc; k++) dst[k * w + i] = s[i * rs + k * cs];
      for (size_t i = h; i < w; i++)
        for (size_t k = 0; k < kc; k++) dst[k * w + i] = 0.0f;
    }
  }
}

size_t ck_gemm_packed_a_floats(const ck_kernels *kern, size_t m, size_t k) {
  size_t r;
  return ck_mul_size(ck_round_up(m, (size_t)kern->mr), k, &r) ? r : 0;
}

size_t ck_gemm_packed_b_floats(const ck_kernels *kern, size_t k, size_t n) {
  size_t r;
  return ck_mul_size(ck_round_up(n, (size_t)kern->nr), k, &r) ? r : 0;
}

void ck_gemm_pack_a(const ck_kernels *kern, size_t m, size_t k, const float *src, size_t rs,
                    size_t cs, float *dst) {
  size_t mr = (size_t)kern->mr;
  pack_panels(kern, m, k, src, rs, cs, mr, dst, mr * k);
}

void ck_gemm_pack_b(const ck_kernels *kern, size_t k, size_t n, const float *src, size_t rs,
                    size_t cs, float *dst) {
  size_t nr = (size_t)kern->nr;
  /* B's column j is the packed "row": its k elements are rs apart, columns cs apart */
  pack_panels(kern, n, k, src, cs, rs, nr, dst, nr * k);
}

/* ---- Workspace ---------------------------------------------------------------------------- */

/* Per thread: the A block, then the B block, each aligned. */
static int thread_bytes(const blocking *bl, size_t *bytes) {
  size_t a, b, total = 0;
  if (!ck_mul_size(bl->a_floats, sizeof(float), &a) ||
      !ck_mul_size(bl->b_floats, sizeof(float), &b))
    return 0;
  if (a && !ck_ws_need(&total, a)) return 0;
  if (b && !ck_ws_need(&total, b)) return 0;
  *bytes = total;
  return 1;
}

static int needs_product(const ck_gemm_problem *p) {
  return p->m && p->n && p->k && p->alpha != 0.0f;
}

int ck_gemm_workspace_size(const ck_kernels *kern, const ck_gemm_problem *p, int threads,
                           size_t *bytes) {
  blocking bl;
  size_t per = 0, total = 0;
  if (!make_blocking(kern, p, &bl) || !thread_bytes(&bl, &per)) return 0;
  if (needs_product(p) && !ck_mul_size(per, (size_t)(threads < 1 ? 1 : threads), &total)) return 0;
  if (!ck_ws_finish(&total)) return 0;
  *bytes = total;
  return 1;
}

/* ---- Execution ---------------------------------------------------------------------------- */

typedef struct {
  const ck_kernels *kern;
  const ck_gemm_problem *p;
  blocking bl;
  size_t chunk, nch;            /* columns per task (a multiple of NR) and chunks per row block */
  ck_gemm_direct_fn direct_a;   /* non-NULL: A is read in place by the direct kernel */
  size_t ldb;                   /* its rows of B: NR in a packed panel, B's own in place (wide) */
  ck_gemm_prefetch_fn prefetch; /* non-NULL: prefetch the next plain B block (see b_stream) */
} job;

typedef struct {
  float *a_buf, *b_buf;
} worker;

/* The packed A of row block ic for KC block [k0, k0+kc): the pre-packed operand itself or the
 * worker's buffer, packed now. Stores the distance between MR panels. */
static const float *a_block(const job *jb, worker *w, size_t ic, size_t k0, size_t kc,
                            size_t *stride) {
  const ck_gemm_problem *p = jb->p;
  const size_t mr = jb->bl.mr, i0 = ic * jb->bl.mc;
  if (jb->direct_a) {
    *stride = mr * p->a.row_stride;
    return p->a.data + i0 * p->a.row_stride + k0;
  }
  if (p->a.packed) {
    *stride = p->a.row_stride ? p->a.row_stride : mr * p->k; /* panel stride (gemm.h) */
    return p->a.data + i0 / mr * *stride + k0 * mr;
  }
  *stride = mr * kc;
  pack_panels(jb->kern, ck_min_size(jb->bl.mc, p->m - i0), kc,
              p->a.data + i0 * p->a.row_stride + k0 * p->a.col_stride, p->a.row_stride,
              p->a.col_stride, mr, w->a_buf, mr * kc);
  return w->a_buf;
}

/* Row-major B[kc x cols] (rows rs apart) into w-column panels at dst (panel q at q*kc*w), KB rows
 * at a time. Reading whole rows of the block (not kc short rows a power of two apart, which alias
 * in the caches) lets the hardware prefetchers stream the source; the KB x cols source slice
 * stays in L1 while each panel receives its KB rows of w floats as one contiguous run, so the
 * stores fill few lines at a time instead of one line in each of cols / w panels. The caller
 * inlines it with a constant w, making each piece a few vector moves. */
static inline __attribute__((always_inline)) void
pack_b_rows(size_t kc, size_t cols, const float *src, size_t rs, size_t w, float *dst) {
  const size_t full = cols / w, rest = cols - full * w;
  enum { KB = 16 };
  for (size_t k0 = 0; k0 < kc; k0 += KB, src += KB * rs) {
    const size_t kn = ck_min_size(KB, kc - k0);
    float *d = dst + k0 * w;
    for (size_t q = 0; q < full; q++, d += w * kc)
      for (size_t k = 0; k < kn; k++) memcpy(d + k * w, src + k * rs + q * w, w * sizeof(float));
    if (rest)
      for (size_t k = 0; k < kn; k++) {
        memcpy(d + k * w, src + k * rs + full * w, rest * sizeof(float));
        memset(d + k * w + rest, 0, (w - rest) * sizeof(float));
      }
  }
}

/* Packs B[k0 : k0+kc, j0 : j0+cols] of a plain B into NR-column panels at dst (panel q at
 * q*kc*NR); a transposed B is packed panel by panel (its columns are contiguous). */
static void pack_b_block(const job *jb, size_t k0, size_t kc, size_t j0, size_t cols, float *dst) {
  const ck_gemm_problem *p = jb->p;
  const size_t nr = jb->bl.nr, rs = p->b.row_stride, cs = p->b.col_stride;
  const float *src = p->b.data + k0 * rs + j0 * cs;
  if (cs != 1) {
    pack_panels(jb->kern, cols, kc, src, cs, rs, nr, dst, nr * kc);
    return;
  }
  const ck_gemm_packn_fn packn = jb->kern->gemm_packn;
  if (packn) {
    packn(kc, cols, nr, src, rs, dst);
    return;
  }
  switch (nr) {
  case 32:
    pack_b_rows(kc, cols, src, rs, 32, dst);
    break;
  case 16:
    pack_b_rows(kc, cols, src, rs, 16, dst);
    break;
  case 8:
    pack_b_rows(kc, cols, src, rs, 8, dst);
    break;
  default:
    pack_b_rows(kc, cols, src, rs, nr, dst);
    break;
  }
}

/* ---- The loops ---------------------------------------------------------------------------- */

/* The source of the next B block, fetched into L2 by the prefetching kernel while the current
 * block is multiplied (see ck_gemm_prefetch in kernels.h): `total` lines, handed out `per_call` to
 * each full micro-tile (edge tiles use the plain kernel). Before a new KC block, the rows of A it
 * will pack follow (`then`): the transposing pack otherwise waits on L3 for short row pieces
 * (256 x 196 x 2304: the pack's share of the time 7.1-8.0% -> 5.8-6.4% in perf profiles). */
enum { PREFETCH_ROWS = 24 }; /* most MR panels in a block that prefetches the next B block */

typedef struct {
  ck_gemm_prefetch s;
  size_t total, per_call;
  ck_gemm_prefetch then; /* taken up when s is done: the source of the next A block */
  size_t then_total;
} b_stream;

/* Micro-tiles of rows [i0, i0+rows) x columns [j0, j0+cols) for one KC block: A and B packed,
 * MR panels a_stride apart and NR panels b_stride apart. */
static void macro_tile(const job *jb, ck_gemm_epilogue *ep, int last, size_t kc, size_t i0,
                       size_t rows, const float *a, size_t a_stride, size_t j0, size_t cols,
                       const float *b, size_t b_stride, b_stream *pf) {
  const ck_gemm_problem *p = jb->p;
  const size_t mr = jb->bl.mr, nr = jb->bl.nr;
  if (pf) { /* spread the lines over the full micro-tiles, at most one per k step */
    const size_t full = (rows / mr) * (cols / nr);
    if (full == 0)
      pf = NULL;
    else
      pf->per_call = ck_min_size(ck_div_up(pf->total + pf->then_total, full), kc);
  }
  for (size_t i = 0; i < rows; i += mr, a += a_stride) {
    ep->bias_row = last && p->bias_kind == CK_BIAS_PER_ROW ? p->bias + i0 + i : NULL;
    const float *bp = b;
    for (size_t j = 0; j < cols; j += nr, bp += b_stride) {
      const size_t jj = j0 + j, h = ck_min_size(mr, rows - i), w = ck_min_size(nr, cols - j);
      float *c = p->c + (i0 + i) * p->ldc + jj;
      ep->bias_col = last && p->bias_kind == CK_BIAS_PER_COL ? p->bias + jj : NULL;
      if (jb->direct_a) { /* a packed B panel is a row-major block with rows NR apart */
        jb->direct_a(h, w, kc, a, p->a.row_stride, bp, jb->ldb, c, p->ldc, ep);
      } else if (pf && (pf->total || pf->then_total) && h == mr && w == nr) {
        if (pf->total == 0) {
          pf->s = pf->then;
          pf->total = pf->then_total;
          pf->then_total = 0;
        }
        const size_t give = ck_min_size(pf->per_call, pf->total);
        pf->s.left = give;
        jb->prefetch(h, w, kc, a, bp, c, p->ldc, ep, &pf->s);
        pf->total -= give - pf->s.left;
      } else
        jb->kern->gemm(h, w, kc, a, bp, c, p->ldc, ep);
    }
  }
}

/* Task t: row block t / nch, column chunk t % nch, over the whole k range. Within a KC block the
 * chunk's columns go by NC at a time: the packed B block of KC x NC is what each thread packs and
 * reuses across the row block. */
static void task(const job *jb, worker *w, size_t t) {
  const ck_gemm_problem *p = jb->p;
  const size_t nr = jb->bl.nr, mr = jb->bl.mr;
  const size_t ic = t / jb->nch, i0 = ic * jb->bl.mc, rows = ck_min_size(jb->bl.mc, p->m - i0);
  const size_t j0 = (t % jb->nch) * jb->chunk, cols = ck_min_size(jb->chunk, p->n - j0);
  for (size_t kb = 0; kb < jb->bl.nkb; kb++) {
    const size_t k0 = kb * jb->bl.kc, kc = ck_min_size(jb->bl.kc, p->k - k0);
    const int last = kb + 1 == jb->bl.nkb;
    ck_gemm_epilogue ep = {p->alpha, kb == 0 ? p->beta : 1.0f, NULL, NULL, -INFINITY, INFINITY};
    if (last) {
      ep.min = p->min;
      ep.max = p->max;
    }
    size_t a_stride;
    const float *a = a_block(jb, w, ic, k0, kc, &a_stride);
    for (size_t jc = 0; jc < cols; jc += jb->bl.nc) {
      const size_t width = ck_min_size(jb->bl.nc, cols - jc);
      const float *b = w->b_buf;
      size_t b_stride = nr * kc;
      if (jb->bl.wide) { /* in place: the next NR columns are NR floats on */
        b_stride = nr;
        b = p->b.data + k0 * p->b.row_stride + j0 + jc;
      } else if (p->b.packed) {
        b_stride = p->b.row_stride ? p->b.row_stride : nr * p->k; /* panel stride (gemm.h) */
        b = p->b.data + (j0 + jc) / nr * b_stride + k0 * nr;
      } else {
        pack_b_block(jb, k0, kc, j0 + jc, width, w->b_buf);
      }
      b_stream next, *pf = NULL;
      /* Only for blocks of few rows: packing B then weighs most, and the fetched lines wait in L2
       * for a short while only (with hundreds of rows they evict the current block: measured 2%
       * slower at 1024^3 and 2048^3). */
      if (jb->prefetch && !p->b.packed && p->b.col_stride == 1 && rows <= PREFETCH_ROWS * mr) {
        /* the task's next B block: its next NC columns, else the first ones of the next KC rows */
        size_t nk0 = k0, nkc = kc, nj = jc + jb->bl.nc;
        if (nj >= cols) {
          nj = 0;
          nk0 = k0 + kc;
          nkc = nk0 < p->k ? ck_min_size(jb->bl.kc, p->k - nk0) : 0;
        }
        if (nkc) {
          const size_t row_bytes = ck_min_size(jb->bl.nc, cols - nj) * sizeof(float);
          next.s = (ck_gemm_prefetch){(const char *)(p->b.data + nk0 * p->b.row_stride + j0 + nj),
                                      0, row_bytes, p->b.row_stride * sizeof(float), 0};
          next.total = nkc * ck_div_up(row_bytes, 64);
          next.then_total = 0;
          /* the next KC block also needs a new A block, packed by this task from plain rows */
          if (nj == 0 && !p->a.packed && !jb->direct_a && p->a.col_stride == 1) {
            const size_t a_bytes = nkc * sizeof(float);
            next.then = (ck_gemm_prefetch){(const char *)(p->a.data + i0 * p->a.row_stride + nk0),
                                           0, a_bytes, p->a.row_stride * sizeof(float), 0};
            next.then_total = rows * ck_div_up(a_bytes, 64);
          }
          pf = &next;
        }
      }
      macro_tile(jb, &ep, last, kc, i0, rows, a, a_stride, j0 + jc, width, b, b_stride, pf);
    }
  }
}

/* C = beta*C + bias, clamped: the whole result when k == 0 or alpha == 0 (A and B unread). */
static void scale_only(const ck_gemm_problem *p) {
  for (size_t i = 0; i < p->m; i++) {
    float *ci = p->c + i * p->ldc;
    for (size_t j = 0; j < p->n; j++) {
      float v = p->beta != 0.0f ? p->beta * ci[j] : 0.0f;
      if (p->bias_kind == CK_BIAS_PER_ROW) v += p->bias[i];
      if (p->bias_kind == CK_BIAS_PER_COL) v += p->bias[j];
      v = p->min > v ? p->min : v;
      v = p->max < v ? p->max : v;
      ci[j] = v;
    }
  }
}

/* The whole problem by the direct kernel, tile by tile (one KC block, plain row-major A and B). */
static void run_direct(ck_gemm_direct_fn direct, size_t mr, size_t nr, const ck_gemm_problem *p) {
  ck_gemm_epilogue ep = {p->alpha, p->beta, NULL, NULL, p->min, p->max};
  for (size_t i = 0; i < p->m; i += mr) {
    ep.bias_row = p->bias_kind == CK_BIAS_PER_ROW ? p->bias + i : NULL;
    for (size_t j = 0; j < p->n; j += nr) {
      ep.bias_col = p->bias_kind == CK_BIAS_PER_COL ? p->bias + j : NULL;
      direct(ck_min_size(mr, p->m - i), ck_min_size(nr, p->n - j), p->k,
             p->a.data + i * p->a.row_stride, p->a.row_stride, p->b.data + j, p->b.row_stride,
             p->c + i * p->ldc + j, p->ldc, &ep);
    }
  }
}

/* The task grid: row blocks of jb->bl.mc rows times column chunks of jb->chunk columns.
 *
 * One thread: the table's MC blocks times all the columns, so every A block is packed once. With
 * more threads the grid is cut finer, to about four tasks per thread (the dynamic schedule then
 * evens out unequal tasks and a thread that loses its core): cutting rows makes each task pack
 * its own copy of B (one copy per 2*MC flops), cutting columns its own copy of A (one transposing
 * pack per 2*chunk flops, about 2.5 times dearer per element), and an operand that is pre-packed
 * (or A read in place) costs nothing, so the cut that packs least is taken. Neither cut changes the
 * micro-tile grid (blocks are multiples of MR and NR) nor the KC blocks, so the bits stay the same.
 */
static void choose_grid(job *jb, int threads) {
  const ck_gemm_problem *p = jb->p;
  const size_t mr = jb->bl.mr, nr = jb->bl.nr;
  const size_t row_panels = ck_div_up(p->m, mr), col_panels = ck_div_up(p->n, nr);
  size_t rows = jb->bl.nic, cols = 1; /* pieces */
  if (threads > 1 && jb->bl.wide) {
    /* Nothing is packed (the wide kernel reads A and B in place), so pieces cost nothing
     * extra: rows of tiles, 4 per thread. The cost below would keep the single MC block that a
     * narrow product's M fits in (512 x 49 x 4608 ran on one thread: 2 threads 0.90 times
     * OpenBLAS's speed, 1 thread 1.35). */
    rows = ck_min_size(row_panels, 4 * (size_t)threads);
    if (rows < jb->bl.nic) rows = jb->bl.nic;
  } else if (threads > 1) {
    const size_t want = 4 * (size_t)threads;
    double best = -1;
    for (size_t r = jb->bl.nic; r <= row_panels && r <= want; r++) {
      size_t c = ck_min_size(ck_div_up(want, r), col_panels);
      /* relative packing cost: B copies per row piece, A copies per column piece */
      double cost = (p->b.packed ? 0.0 : (double)r / (double)p->m) +
                    (p->a.packed || jb->bl.direct_a ? 0.0 : 2.5 * (double)c / (double)p->n);
      if (best < 0 || cost < best) best = cost, rows = r, cols = c;
    }
  }
  jb->bl.mc = ck_div_up(row_panels, rows) * mr;
  jb->bl.nic = ck_div_up(p->m, jb->bl.mc);
  jb->chunk = ck_div_up(col_panels, cols) * nr;
  jb->nch = ck_div_up(p->n, jb->chunk);
}

void ck_gemm_execute(const ck_kernels *kern, const ck_gemm_problem *p, int threads,
                     void *workspace) {
  if (p->m == 0 || p->n == 0) return;
  if (!needs_product(p)) {
    scale_only(p);
    return;
  }
  /* Small enough that packing would cost more than it saves (measured: up to about 192^3): the
   * direct kernel reads A and B in place, on this thread. Only within one KC block (k <= KC),
   * where it gives the packed path's bits. Decided before any blocking is worked out: at 64^3
   * the whole product takes a few microseconds. */
  const double flops = 2.0 * (double)p->m * (double)p->n * (double)p->k;
  if (flops <= 1.5e7 && plain_rows(p)) {
    size_t kc_max, nc_max;
    cache_blocks(kern, &kc_max, &nc_max);
    size_t mr, nr;
    const ck_gemm_direct_fn direct = direct_kernel(kern, use_wide(kern, p), &mr, &nr);
    if (direct && p->k <= kc_max) {
      run_direct(direct, mr, nr, p);
      return;
    }
  }
  job jb;
  jb.kern = kern;
  jb.p = p;
  size_t per = 0;
  if (!make_blocking(kern, p, &jb.bl) || !thread_bytes(&jb.bl, &per))
    return; /* cannot happen after ck_gemm_workspace_size succeeded */
  if (threads < 1) threads = 1;
  /* Fewer threads when there is too little work to share (the bits do not depend on it). */
  const double min_flops_per_thread = 1e7; /* ~0.1 ms each: far above a region's cost */
  if ((double)threads * min_flops_per_thread > flops) {
    int t = (int)(flops / min_flops_per_thread);
    threads = t < 1 ? 1 : t;
  }
  size_t mr, nr;
  const ck_gemm_direct_fn direct = direct_kernel(kern, jb.bl.wide, &mr, &nr);
  jb.direct_a = jb.bl.direct_a ? direct : NULL;
  jb.ldb = jb.bl.wide ? p->b.row_stride : jb.bl.nr;
  jb.prefetch = jb.bl.wide ? NULL : kern->gemm_prefetch;
  choose_grid(&jb, threads);
  const size_t tasks = jb.bl.nic * jb.nch;
  if ((size_t)threads > tasks) threads = (int)tasks;

  /* the caller's workspace may be unaligned: start at its first aligned byte */
  ck_ws_cursor cur;
  size_t total = 0;
  ck_mul_size(per, (size_t)threads, &total);
  ck_ws_finish(&total);
  ck_ws_begin(&cur, workspace, total);
  unsigned char *base = ck_ws_take(&cur, per * (size_t)threads);
  const size_t a_bytes = ck_round_up(jb.bl.a_floats * sizeof(float), CK_ALIGNMENT);

  if (threads == 1) {
    worker w = {NULL, NULL};
    if (per) w.a_buf = (float *)base, w.b_buf = (float *)(base + a_bytes);
    for (size_t t = 0; t < tasks; t++) task(&jb, &w, t);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    worker w = {NULL, NULL};
    if (per) {
      unsigned char *mine = base + (size_t)omp_get_thread_num() * per;
      w.a_buf = (float *)mine, w.b_buf = (float *)(mine + a_bytes);
    }
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < tasks; t++) task(&jb, &w, t);
  }
}
