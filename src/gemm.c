/*
 * The packed GEMM engine: the Goto/BLIS loops around the table's micro-kernel.
 *
 *   for jc (NC columns; the KC x NC block of packed B targets L3)
 *     for pc (KC of the k dimension)                     <- pack B block, shared by all threads
 *       for ic (MC rows; the MC x KC block of packed A targets L2)   <- pack A block, per thread
 *         for jr (NR columns; a KC x NR micro-panel of B stays in L1)
 *           for ir (MR rows) micro-kernel
 *
 * Threads take tasks (an MC block of rows times a chunk of the NC columns) from a dynamic
 * schedule, so a core busy with another process delays only the tasks it holds. Every C element
 * belongs to exactly one micro-tile, and a micro-tile's k sum always runs over the same KC blocks
 * in ascending order, whatever the thread count or the task shape: results are bitwise identical
 * for any thread count.
 *
 * alpha and beta apply on the first KC block (later blocks add with beta = 1); bias and clamp only
 * on the last one, so the output is never read or written in an extra pass.
 *
 * When B is pre-packed nothing is shared between tasks, so a task runs its whole k range (pc is
 * the innermost of the outer loops) and the parallel region has no barrier at all.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "gemm.h"
#include "internal.h"

/* ---- Blocking ----------------------------------------------------------------------------- */

/* The blocking of one problem, derived from the table and the sizes only (never from the thread
 * count, so that the k blocks, and hence the bits, are the same for any thread count). */
typedef struct {
  size_t mr, nr;
  size_t kc, nkb;  /* balanced KC blocks: nkb blocks of kc (the last may be shorter) */
  size_t mc, nic;  /* balanced MC blocks of rows (multiples of MR) */
  size_t nc, njc;  /* balanced NC blocks of columns (multiples of NR) */
  size_t a_floats; /* per-thread packed-A buffer (0 when A is pre-packed) */
  size_t b_floats; /* shared packed-B buffer (0 when B is pre-packed) */
} blocking;

/* Splits n into div_up(n, max_block) near-equal blocks, each a multiple of q (except through the
 * end of n); returns the block size and stores the count. */
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

static int make_blocking(const ck_kernels *kern, const ck_gemm_problem *p, blocking *bl) {
  bl->mr = (size_t)kern->mr;
  bl->nr = (size_t)kern->nr;
  size_t mc_max = ck_round_up((size_t)kern->mc, bl->mr);
  size_t nc_max = ck_round_up((size_t)kern->nc, bl->nr);
  bl->kc = balance(p->k, (size_t)kern->kc, 1, &bl->nkb);
  bl->mc = balance(p->m, mc_max, bl->mr, &bl->nic);
  bl->nc = balance(p->n, nc_max, bl->nr, &bl->njc);
  bl->a_floats = 0;
  bl->b_floats = 0;
  if (!p->a.packed && !ck_mul_size(bl->mc, bl->kc, &bl->a_floats)) return 0;
  if (!p->b.packed && !ck_mul_size(bl->nc, bl->kc, &bl->b_floats)) return 0;
  return 1;
}

/* ---- Packing ------------------------------------------------------------------------------ */

/* Packs rows [0, rows) x k [0, kc) of a plain operand (element (r, k) at src[r*rs + k*cs]) into
 * ceil(rows / w) panels of w interleaved rows, panel p at dst + p*panel_stride, element (i, k) of a
 * panel at k*w + i; rows past `rows` are zero. Used for A (w = MR, rows = m) and for B seen as its
 * transpose (w = NR, rows = n, r = column). */
static void pack_panels(size_t rows, size_t kc, const float *src, size_t rs, size_t cs, size_t w,
                        float *dst, size_t panel_stride) {
  for (size_t r0 = 0; r0 < rows; r0 += w, dst += panel_stride) {
    size_t h = ck_min_size(w, rows - r0);
    const float *s = src + r0 * rs;
    if (rs == 1) {
      /* the panel's rows are contiguous for each k: one short copy per k */
      for (size_t k = 0; k < kc; k++) {
        memcpy(dst + k * w, s + k * cs, h * sizeof(float));
        for (size_t i = h; i < w; i++) dst[k * w + i] = 0.0f;
      }
    } else {
      for (size_t i = 0; i < h; i++) {
        const float *si = s + i * rs;
        if (cs == 1)
          for (size_t k = 0; k < kc; k++) dst[k * w + i] = si[k];
        else
          for (size_t k = 0; k < kc; k++) dst[k * w + i] = si[k * cs];
      }
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
  pack_panels(m, k, src, rs, cs, mr, dst, mr * k);
}

void ck_gemm_pack_b(const ck_kernels *kern, size_t k, size_t n, const float *src, size_t rs,
                    size_t cs, float *dst) {
  size_t nr = (size_t)kern->nr;
  /* B's column j is the packed "row": its k elements are rs apart, columns cs apart */
  pack_panels(n, k, src, cs, rs, nr, dst, nr * k);
}

/* ---- Workspace ---------------------------------------------------------------------------- */

int ck_gemm_workspace_size(const ck_kernels *kern, const ck_gemm_problem *p, int threads,
                           size_t *bytes) {
  blocking bl;
  size_t total = 0, a_bytes, b_bytes;
  if (threads < 1) threads = 1;
  if (!make_blocking(kern, p, &bl) || !ck_mul_size(bl.a_floats, sizeof(float), &a_bytes) ||
      !ck_mul_size(bl.b_floats, sizeof(float), &b_bytes))
    return 0;
  if (p->m && p->n && p->k && p->alpha != 0.0f) {
    for (int t = 0; t < threads; t++)
      if (a_bytes && !ck_ws_need(&total, a_bytes)) return 0;
    if (b_bytes && !ck_ws_need(&total, b_bytes)) return 0;
  }
  if (!ck_ws_finish(&total)) return 0;
  *bytes = total;
  return 1;
}

/* ---- Execution ---------------------------------------------------------------------------- */

typedef struct {
  const ck_kernels *kern;
  const ck_gemm_problem *p;
  blocking bl;
  float *b_buf; /* shared packed B block (plain B) */
  size_t chunk; /* columns per compute task (a multiple of NR) */
  int parallel; /* inside our own parallel region: worksharing loops are ours */
} job;

typedef struct {
  float *a_buf;
  size_t a_key; /* 1 + index of the MC block held in a_buf for the current KC block; 0: none */
} worker;

/* Micro-tiles of one MC x (columns) block for the KC block kb:
 *   a: packed A of the block's first MR panel, panels a_stride floats apart;
 *   b: packed B of the first NR panel, panels b_stride floats apart. */
static void macro_kernel(const job *jb, size_t kb, size_t i0, size_t rows, size_t j0, size_t cols,
                         const float *a, size_t a_stride, const float *b, size_t b_stride) {
  const ck_gemm_problem *p = jb->p;
  const size_t mr = jb->bl.mr, nr = jb->bl.nr;
  const size_t k0 = kb * jb->bl.kc, kc = ck_min_size(jb->bl.kc, p->k - k0);
  const int last = kb + 1 == jb->bl.nkb;
  ck_gemm_epilogue ep = {p->alpha, kb == 0 ? p->beta : 1.0f, NULL, NULL, -INFINITY, INFINITY};
  if (last) {
    ep.min = p->min;
    ep.max = p->max;
  }
  for (size_t j = 0; j < cols; j += nr, b += b_stride) {
    size_t w = ck_min_size(nr, cols - j);
    ep.bias_col = last && p->bias_kind == CK_BIAS_PER_COL ? p->bias + j0 + j : NULL;
    const float *ap = a;
    for (size_t i = 0; i < rows; i += mr, ap += a_stride) {
      size_t h = ck_min_size(mr, rows - i);
      ep.bias_row = last && p->bias_kind == CK_BIAS_PER_ROW ? p->bias + i0 + i : NULL;
      jb->kern->gemm(h, w, kc, ap, b, p->c + (i0 + i) * p->ldc + j0 + j, p->ldc, &ep);
    }
  }
}

/* The packed A of rows [i0, i0+rows) for KC block kb: the pre-packed operand itself, or the
 * worker's buffer (packed unless it already holds that block). Stores the panel stride. */
static const float *a_block(const job *jb, worker *w, size_t ic, size_t kb, size_t *stride) {
  const ck_gemm_problem *p = jb->p;
  const size_t mr = jb->bl.mr, i0 = ic * jb->bl.mc, k0 = kb * jb->bl.kc;
  const size_t kc = ck_min_size(jb->bl.kc, p->k - k0);
  if (p->a.packed) {
    *stride = mr * p->k;
    return p->a.data + i0 * p->k + k0 * mr;
  }
  *stride = mr * kc;
  if (w->a_key != ic + 1) {
    size_t rows = ck_min_size(jb->bl.mc, p->m - i0);
    pack_panels(rows, kc, p->a.data + i0 * p->a.row_stride + k0 * p->a.col_stride, p->a.row_stride,
                p->a.col_stride, mr, w->a_buf, mr * kc);
    w->a_key = ic + 1;
  }
  return w->a_buf;
}

/* Runs fn(jb, w, t, ctx) for t < count: on this thread alone, or shared dynamically by the team
 * of our parallel region (ending with its barrier). */
typedef void (*task_fn)(const job *jb, worker *w, size_t t, size_t ctx);
static void for_tasks(const job *jb, worker *w, size_t count, task_fn fn, size_t ctx) {
  if (!jb->parallel) {
    for (size_t t = 0; t < count; t++) fn(jb, w, t, ctx);
    return;
  }
#pragma omp for schedule(dynamic, 1)
  for (size_t t = 0; t < count; t++) fn(jb, w, t, ctx);
}

/* -- Plain B: per (jc, kb), pack the B block together, then compute it together. */

static void pack_b_task(const job *jb, worker *w, size_t t, size_t ctx) {
  (void)w;
  const ck_gemm_problem *p = jb->p;
  const size_t nr = jb->bl.nr, jc = ctx / jb->bl.nkb, kb = ctx % jb->bl.nkb;
  const size_t j0 = jc * jb->bl.nc + t * nr, k0 = kb * jb->bl.kc;
  const size_t kc = ck_min_size(jb->bl.kc, p->k - k0);
  const float *src = p->b.data + k0 * p->b.row_stride + j0 * p->b.col_stride;
  pack_panels(ck_min_size(nr, p->n - j0), kc, src, p->b.col_stride, p->b.row_stride, nr,
              jb->b_buf + t * nr * kc, nr * kc);
}

static void compute_task(const job *jb, worker *w, size_t t, size_t ctx) {
  const ck_gemm_problem *p = jb->p;
  const size_t jc = ctx / jb->bl.nkb, kb = ctx % jb->bl.nkb;
  const size_t jc0 = jc * jb->bl.nc, cols_jc = ck_min_size(jb->bl.nc, p->n - jc0);
  const size_t nch = ck_div_up(cols_jc, jb->chunk);
  const size_t ic = t / nch, ch = t % nch; /* row-block major: a thread's next task usually
                                              reuses the A block it already packed */
  const size_t i0 = ic * jb->bl.mc, rows = ck_min_size(jb->bl.mc, p->m - i0);
  const size_t j0 = ch * jb->chunk, cols = ck_min_size(jb->chunk, cols_jc - j0);
  const size_t kc = ck_min_size(jb->bl.kc, p->k - kb * jb->bl.kc);
  size_t a_stride;
  const float *a = a_block(jb, w, ic, kb, &a_stride);
  macro_kernel(jb, kb, i0, rows, jc0 + j0, cols, a, a_stride, jb->b_buf + j0 * kc, jb->bl.nr * kc);
}

static void run_plain_b(const job *jb, worker *w) {
  const ck_gemm_problem *p = jb->p;
  for (size_t jc = 0; jc < jb->bl.njc; jc++) {
    const size_t cols = ck_min_size(jb->bl.nc, p->n - jc * jb->bl.nc);
    const size_t tasks = jb->bl.nic * ck_div_up(cols, jb->chunk);
    for (size_t kb = 0; kb < jb->bl.nkb; kb++) {
      const size_t ctx = jc * jb->bl.nkb + kb;
      for_tasks(jb, w, ck_div_up(cols, jb->bl.nr), pack_b_task, ctx);
      w->a_key = 0; /* the A buffer held the previous KC block */
      for_tasks(jb, w, tasks, compute_task, ctx);
    }
  }
}

/* -- Pre-packed B: independent tasks, each over its whole k range. */

static void prepacked_b_task(const job *jb, worker *w, size_t t, size_t ctx) {
  (void)ctx;
  const ck_gemm_problem *p = jb->p;
  const size_t nr = jb->bl.nr, nch = ck_div_up(p->n, jb->chunk);
  const size_t ic = t / nch, ch = t % nch;
  const size_t i0 = ic * jb->bl.mc, rows = ck_min_size(jb->bl.mc, p->m - i0);
  const size_t j0 = ch * jb->chunk, cols = ck_min_size(jb->chunk, p->n - j0);
  for (size_t kb = 0; kb < jb->bl.nkb; kb++) {
    size_t a_stride;
    w->a_key = 0;
    const float *a = a_block(jb, w, ic, kb, &a_stride);
    const float *b = p->b.data + j0 * p->k + kb * jb->bl.kc * nr;
    macro_kernel(jb, kb, i0, rows, j0, cols, a, a_stride, b, nr * p->k);
  }
}

static void run_prepacked_b(const job *jb, worker *w) {
  const size_t tasks = jb->bl.nic * ck_div_up(jb->p->n, jb->chunk);
  for_tasks(jb, w, tasks, prepacked_b_task, 0);
}

static void run(const job *jb, worker *w) {
  if (jb->p->b.packed)
    run_prepacked_b(jb, w);
  else
    run_plain_b(jb, w);
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

/* Columns per compute task. One task per MC block when there are enough of them to keep every
 * thread busy; otherwise the columns are cut too, into chunks of whole NR panels, aiming at a few
 * tasks per thread so a dynamic schedule can even out the load. */
static size_t choose_chunk(const blocking *bl, size_t cols, int threads) {
  const size_t want = 3 * (size_t)threads;
  if (threads <= 1 || bl->nic >= want) return ck_round_up(cols ? cols : 1, bl->nr);
  size_t pieces = ck_div_up(want, bl->nic);
  size_t panels = ck_div_up(cols, bl->nr);
  if (pieces > panels) pieces = panels;
  return ck_div_up(panels, pieces ? pieces : 1) * bl->nr;
}

void ck_gemm_execute(const ck_kernels *kern, const ck_gemm_problem *p, int threads,
                     void *workspace) {
  if (p->m == 0 || p->n == 0) return;
  if (p->k == 0 || p->alpha == 0.0f) {
    scale_only(p);
    return;
  }
  job jb;
  jb.kern = kern;
  jb.p = p;
  if (!make_blocking(kern, p, &jb.bl)) return; /* cannot happen after ck_gemm_workspace_size */
  size_t ws_bytes = 0;
  if (threads < 1) threads = 1;
  ck_gemm_workspace_size(kern, p, threads, &ws_bytes);

  /* Fewer threads than requested when there is too little work to share (the bits do not
   * depend on it). */
  const double flops = 2.0 * (double)p->m * (double)p->n * (double)p->k;
  const double min_flops_per_thread = 4e6;
  if ((double)threads * min_flops_per_thread > flops) {
    int t = (int)(flops / min_flops_per_thread);
    threads = t < 1 ? 1 : t;
  }

  ck_ws_cursor cur;
  ck_ws_begin(&cur, workspace, ws_bytes);
  jb.chunk = choose_chunk(&jb.bl, p->b.packed ? p->n : jb.bl.nc, threads);
  jb.parallel = threads > 1;
  if (threads == 1) {
    worker w = {NULL, 0};
    if (jb.bl.a_floats) w.a_buf = ck_ws_take(&cur, jb.bl.a_floats * sizeof(float));
    jb.b_buf = jb.bl.b_floats ? ck_ws_take(&cur, jb.bl.b_floats * sizeof(float)) : NULL;
    run(&jb, &w);
    return;
  }
  /* per-thread A buffers come first, then the shared B block (the order of workspace_size) */
  unsigned char *a_base = NULL;
  size_t a_step = ck_round_up(jb.bl.a_floats * sizeof(float), CK_ALIGNMENT);
  if (jb.bl.a_floats) {
    a_base = ck_ws_take(&cur, a_step);
    for (int t = 1; t < threads; t++) ck_ws_take(&cur, a_step);
  }
  jb.b_buf = jb.bl.b_floats ? ck_ws_take(&cur, jb.bl.b_floats * sizeof(float)) : NULL;
#pragma omp parallel num_threads(threads)
  {
    worker w = {NULL, 0};
    if (a_base) w.a_buf = (float *)(a_base + (size_t)omp_get_thread_num() * a_step);
    run(&jb, &w);
  }
}
