/* convkit-bench conv: times convkit's algorithms (AUTO and every explicit one) and the baseline
 * libraries on the layers of a suite, for a list of thread counts.
 *
 * Fairness: for one layer and thread count, every candidate (a convkit plan or a baseline
 * instance) is created first, with weights packed, then they are timed in alternating rounds so
 * that a noisy neighbour slows all of them alike. Each candidate's turn in a round starts with
 * an untimed run when one run is short (the others have just evicted its caches), then a few
 * timed runs, once the previous candidate's thread pool has stopped spinning (bench/settle.c).
 * Medians over all rounds are reported.
 *
 * Output: a table on stdout (one row per layer x candidate x threads), a summary per candidate
 * (suite totals, GFLOP/s, % of peak, scaling efficiency over the thread list, AUTO against the
 * best explicit algorithm and against the baselines), optionally the rows as CSV, and a
 * progress line on stderr. */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baselines/baselines.h"
#include "bench.h"

#define MAX_CANDIDATES 24
#define MAX_THREADS_LIST 16
#define MAX_REPS 1000
#define CHOSEN_LEN 64

/* A thing to time: a convkit algorithm (possibly AUTO with flags) or a baseline library. */
typedef struct {
  char name[64]; /* "auto", "auto-measure", "im2col", "baseline:onednn" */
  ck_algo algo;
  unsigned flags;
  const ckb_baseline *bl; /* NULL for convkit */
  int disabled;           /* not built: reported once, then skipped */
} candidate;

/* One candidate set up for one layer and thread count. */
typedef struct {
  candidate *c;
  ck_layout layout;
  ck_plan *plan;
  void *ws;
  void *inst;
  const float *in;
  float *out;
  const float *ref;
  char chosen[CHOSEN_LEN], isa[16];
  size_t workspace;
  double plan_ms, est_ms, err;
  double samples[MAX_REPS];
  int nsamples, ok;
} runner;

typedef struct {
  const char *suite, *csv_path;
  const char *layers[64];
  int nlayers, check, quick, stat_min;
  ck_isa isa;
  ck_layout layout;
  int threads[MAX_THREADS_LIST], nt;
  candidate cand[MAX_CANDIDATES];
  int ncand;
  double per_candidate_s; /* timed seconds per candidate, layer and thread count */
  int rounds, min_reps;
  int tty;
} options;

static const char *layout_name(ck_layout l) {
  return l == CK_LAYOUT_NCHW ? "nchw" : "nhwc";
}

static void fill(float *x, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
}

/* [N][C][HW] -> [N][HW][C] */
static void nchw_to_nhwc(const float *src, float *dst, int N, int C, size_t HW) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      for (size_t p = 0; p < HW; p++)
        dst[((size_t)n * HW + p) * C + c] = src[((size_t)n * C + c) * HW + p];
}

/* max |out - ref| / max |ref| over the tensor. */
static double rel_err(const float *out, const float *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)out[i] - ref[i]);
    if (!(e <= num)) num = e;
    if (fabs(ref[i]) > den) den = fabs(ref[i]);
  }
  return den > 0 ? num / den : num;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int add_candidate(options *op, const char *name, ck_algo algo, unsigned flags,
                         const ckb_baseline *bl) {
  for (int i = 0; i < op->ncand; i++)
    if (!strcmp(op->cand[i].name, name)) return 0;
  if (op->ncand == MAX_CANDIDATES) return -1;
  candidate *c = &op->cand[op->ncand++];
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  c->algo = algo;
  c->flags = flags;
  c->bl = bl;
  return 0;
}

/* --algo: auto, measure (AUTO with CK_PLAN_MEASURE), all (every explicit algorithm but the
 * reference), or algorithm names. */
static int parse_algos(options *op, const char *s) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    ck_algo a;
    if (!strcmp(tok, "all")) {
      for (int i = CK_ALGO_IM2COL; i <= CK_ALGO_INDIRECT; i++)
        if (add_candidate(op, ck_algo_name((ck_algo)i), (ck_algo)i, 0, NULL)) return -1;
    } else if (!strcmp(tok, "measure")) {
      if (add_candidate(op, "auto-measure", CK_ALGO_AUTO, CK_PLAN_MEASURE, NULL)) return -1;
    } else if (ck_algo_from_name(tok, &a) == CK_OK) {
      if (add_candidate(op, ck_algo_name(a), a, 0, NULL)) return -1;
    } else {
      fprintf(stderr, "convkit-bench conv: unknown algorithm \"%s\"\n", tok);
      return -1;
    }
  }
  return 0;
}

/* --baselines: all, none, or names of baselines compiled in. */
static int parse_baselines(options *op, const char *s) {
  int n;
  const ckb_baseline *const *all = ckb_baselines(&n);
  if (!strcmp(s, "none")) return 0;
  char buf[256], name[64];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (!strcmp(tok, "all")) {
      if (n == 0)
        fprintf(stderr, "convkit-bench conv: no baselines in this build (CMake found none of "
                        "OpenBLAS, oneDNN, XNNPACK)\n");
      for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "baseline:%s", all[i]->name);
        if (add_candidate(op, name, CK_ALGO_AUTO, 0, all[i])) return -1;
      }
      continue;
    }
    const ckb_baseline *bl = ckb_baseline_find(tok);
    if (bl == NULL) {
      fprintf(stderr, "convkit-bench conv: baseline \"%s\" is not in this build (found:", tok);
      for (int i = 0; i < n; i++) fprintf(stderr, " %s", all[i]->name);
      fprintf(stderr, "%s); skipped\n", n ? "" : " none");
      continue;
    }
    snprintf(name, sizeof name, "baseline:%s", bl->name);
    if (add_candidate(op, name, CK_ALGO_AUTO, 0, bl)) return -1;
  }
  return 0;
}

static void progress(const options *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const options *op, const char *fmt, ...) {
  if (!op->tty) return;
  char line[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\r%-100.100s", line);
  fflush(stderr);
}

static void progress_clear(const options *op) {
  if (op->tty) fprintf(stderr, "\r%100s\r", "");
}

static void runner_run(runner *r) {
  if (r->plan)
    ck_conv_execute(r->plan, r->in, r->out, r->ws);
  else
    r->c->bl->run(r->inst, r->in, r->out);
}

/* Creates the plan or baseline instance; 0 on success, else a note on stderr. */
static int runner_create(runner *r, const options *op, const ck_conv_desc *d0, const float *f,
                         const float *bias, int threads) {
  ck_conv_desc d = *d0;
  d.layout = r->layout;
  double t0 = ckb_now();
  if (r->c->bl == NULL) {
    ck_plan_options o;
    ck_plan_options_init(&o);
    o.algo = r->c->algo;
    o.isa = op->isa;
    o.threads = threads;
    o.flags = r->c->flags;
    if (ck_conv_plan_create(&d, f, bias, &o, &r->plan) != CK_OK) {
      const char *why = ck_last_error();
      progress_clear(op);
      if (strstr(why, "not built yet")) {
        fprintf(stderr, "convkit-bench conv: %s skipped: %s\n", r->c->name, why);
        r->c->disabled = 1;
      } else {
        fprintf(stderr, "convkit-bench conv: %s: %s\n", r->c->name, why);
      }
      return -1;
    }
    r->workspace = ck_plan_workspace_size(r->plan);
    r->ws = ckb_tensor_alloc(r->workspace);
    snprintf(r->chosen, sizeof r->chosen, "%s", ck_algo_name(ck_plan_algo(r->plan)));
    snprintf(r->isa, sizeof r->isa, "%s", ck_isa_name(ck_plan_isa(r->plan)));
  } else {
    char err[256] = "";
    r->inst = r->c->bl->create(&d, f, bias, threads, err, sizeof err);
    if (r->inst == NULL) {
      progress_clear(op);
      fprintf(stderr, "convkit-bench conv: %s: %s\n", r->c->name, err[0] ? err : "failed");
      return -1;
    }
    r->workspace = r->c->bl->workspace(r->inst);
    const char *impl = r->c->bl->impl ? r->c->bl->impl(r->inst) : NULL;
    snprintf(r->chosen, sizeof r->chosen, "%s", impl ? impl : r->c->bl->name);
    snprintf(r->isa, sizeof r->isa, "-");
  }
  r->plan_ms = (ckb_now() - t0) * 1e3;
  return 0;
}

static void runner_destroy(runner *r) {
  if (r->plan) ck_plan_destroy(r->plan);
  if (r->inst) r->c->bl->destroy(r->inst);
  free(r->ws);
  r->plan = NULL, r->inst = NULL, r->ws = NULL;
}

/* Per-layer results kept for the summary: the statistic the summary uses (median, or minimum
 * with --stat min) in ms per (threads, candidate, layer). */
typedef struct {
  double *ms;   /* [nt][ncand][nlayers], NAN when not run */
  char *chosen; /* [nt][ncand][nlayers][64]: what AUTO picked */
  int nlayers;
} results;

static size_t res_index(const results *R, const options *op, int ti, int ci, int li) {
  return ((size_t)ti * op->ncand + ci) * R->nlayers + li;
}

static double *res_ms(results *R, const options *op, int ti, int ci, int li) {
  return &R->ms[res_index(R, op, ti, ci, li)];
}

static const char *res_chosen(const results *R, const options *op, int ti, int ci, int li) {
  return R->chosen + res_index(R, op, ti, ci, li) * CHOSEN_LEN;
}

static void print_header(void) {
  printf("%-26s %-24s %-24s %-7s %3s %-4s %7s %9s %9s %7s %6s %10s %8s\n", "layer", "algo",
         "chosen", "isa", "thr", "lay", "gflop", "ms", "ms_min", "GFLOP/s", "peak%", "workspace",
         "rel_err");
}

static void format_bytes(size_t b, char *buf, size_t n) {
  if (b == (size_t)-1)
    snprintf(buf, n, "?");
  else if (b >= 1 << 20)
    snprintf(buf, n, "%.1f MiB", (double)b / (1 << 20));
  else if (b >= 1 << 10)
    snprintf(buf, n, "%.1f KiB", (double)b / (1 << 10));
  else
    snprintf(buf, n, "%zu B", b);
}

/* Times the runners of one layer and thread count in alternating rounds. */
static void time_runners(runner *rs, int nr, const options *op, int li, int nsel, const char *lname,
                         int threads) {
  int reps[MAX_CANDIDATES];
  for (int i = 0; i < nr; i++) {
    if (!rs[i].ok) continue;
    double want = op->per_candidate_s * 1e3 / (rs[i].est_ms > 1e-3 ? rs[i].est_ms : 1e-3);
    int r = (int)want;
    if (r < op->min_reps) r = op->min_reps;
    if (r > MAX_REPS) r = MAX_REPS;
    reps[i] = r;
  }
  for (int round = 0; round < op->rounds; round++) {
    for (int i = 0; i < nr; i++) {
      runner *r = &rs[i];
      if (!r->ok) continue;
      progress(op, "[%d/%d] %s, %d thr: round %d/%d, %s", li, nsel, lname, threads, round + 1,
               op->rounds, r->c->name);
      int todo = (reps[i] * (round + 1)) / op->rounds - (reps[i] * round) / op->rounds;
      if (todo > 0) ckb_settle_threads(0.1);         /* the previous turn's thread pool goes idle */
      if (todo > 0 && r->est_ms < 20) runner_run(r); /* caches back after the others' turns */
      for (int k = 0; k < todo && r->nsamples < MAX_REPS; k++) {
        double t0 = ckb_now();
        runner_run(r);
        r->samples[r->nsamples++] = (ckb_now() - t0) * 1e3;
      }
    }
  }
}

static int bench_layer(const options *op, const ckb_layer *L, int li, int lidx, int nsel,
                       results *R, FILE *csv) {
  int status = 0;
  ck_conv_desc d = L->d;
  d.layout = CK_LAYOUT_NCHW;
  int oh, ow;
  if (ck_conv_output_size(&d, &oh, &ow) != CK_OK) {
    fprintf(stderr, "convkit-bench conv: %s: %s\n", L->name, ck_last_error());
    return 1;
  }
  const size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
  const size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
  const size_t nf =
      (size_t)d.out_channels * (d.in_channels / d.groups) * d.kernel_height * d.kernel_width;
  const double gflop =
      2.0 * (double)nout * (d.in_channels / d.groups) * d.kernel_height * d.kernel_width * 1e-9;
  const size_t slack = CKB_BASELINE_INPUT_SLACK;
  float *in[2] = {ckb_tensor_alloc(nin * 4 + slack), NULL}; /* indexed by ck_layout */
  float *out[2] = {ckb_tensor_alloc(nout * 4), NULL};
  float *ref[2] = {NULL, NULL};
  float *f = ckb_tensor_alloc(nf * 4), *bias = ckb_tensor_alloc((size_t)d.out_channels * 4);
  fill(in[0], nin, 1), fill(f, nf, 2), fill(bias, (size_t)d.out_channels, 3);
  memset((char *)in[0] + nin * 4, 0, slack);

  /* Which layouts do the candidates need? A baseline without the requested layout runs in its
   * native one (its rows say so). */
  ck_layout lay[MAX_CANDIDATES];
  int need[2] = {0, 0};
  for (int ci = 0; ci < op->ncand; ci++) {
    const ckb_baseline *bl = op->cand[ci].bl;
    lay[ci] = op->layout;
    if (bl && !(op->layout == CK_LAYOUT_NCHW ? bl->has_nchw : bl->has_nhwc)) lay[ci] = bl->native;
    need[lay[ci]] = 1;
  }
  const size_t hw_in = (size_t)d.in_height * d.in_width, hw_out = (size_t)oh * ow;
  if (need[CK_LAYOUT_NHWC]) {
    in[1] = ckb_tensor_alloc(nin * 4 + slack);
    out[1] = ckb_tensor_alloc(nout * 4);
    nchw_to_nhwc(in[0], in[1], d.batch, d.in_channels, hw_in);
    memset((char *)in[1] + nin * 4, 0, slack);
  }
  if (op->check) {
    progress(op, "[%d/%d] %s: reference", lidx, nsel, L->name);
    ck_plan_options ro;
    ck_plan_options_init(&ro);
    ro.algo = CK_ALGO_REFERENCE;
    ck_plan *rp = NULL;
    ref[0] = ckb_tensor_alloc(nout * 4);
    if (ck_conv_plan_create(&d, f, bias, &ro, &rp) != CK_OK ||
        ck_conv_execute(rp, in[0], ref[0], NULL) != CK_OK) {
      fprintf(stderr, "convkit-bench conv: reference failed on %s: %s\n", L->name, ck_last_error());
      status = 1;
    }
    ck_plan_destroy(rp);
    if (need[CK_LAYOUT_NHWC]) {
      ref[1] = ckb_tensor_alloc(nout * 4);
      nchw_to_nhwc(ref[0], ref[1], d.batch, d.out_channels, hw_out);
    }
  }

  runner *rs = calloc((size_t)op->ncand, sizeof *rs);
  for (int ti = 0; ti < op->nt; ti++) {
    const int threads = op->threads[ti];
    for (int ci = 0; ci < op->ncand; ci++) {
      runner *r = &rs[ci];
      memset(r, 0, sizeof *r);
      r->c = (candidate *)&op->cand[ci];
      r->layout = lay[ci];
      r->in = in[r->layout];
      r->out = out[r->layout];
      r->ref = ref[r->layout];
      if (r->c->disabled) continue;
      progress(op, "[%d/%d] %s, %d thr: creating %s", lidx, nsel, L->name, threads, r->c->name);
      if (runner_create(r, op, &L->d, f, bias, threads) != 0) continue;
      /* First run: page faults, thread pools, and the result checked against the reference. */
      double t0 = ckb_now();
      runner_run(r);
      r->est_ms = (ckb_now() - t0) * 1e3;
      r->err = r->ref ? rel_err(r->out, r->ref, nout) : NAN;
      r->ok = 1;
    }
    time_runners(rs, op->ncand, op, lidx, nsel, L->name, threads);
    progress_clear(op);
    for (int ci = 0; ci < op->ncand; ci++) {
      runner *r = &rs[ci];
      if (!r->ok) {
        runner_destroy(r);
        continue;
      }
      qsort(r->samples, (size_t)r->nsamples, sizeof(double), cmp_double);
      const int n = r->nsamples;
      const double med =
          n % 2 ? r->samples[n / 2] : 0.5 * (r->samples[n / 2 - 1] + r->samples[n / 2]);
      const double mn = r->samples[0];
      const double gflops = gflop / (med * 1e-3);
      const double peak = ckb_peak_gflops(r->plan ? ck_plan_isa(r->plan) : ck_cpu_isa(), threads);
      const double pct = peak > 0 ? 100.0 * gflops / peak : NAN;
      char wbuf[32];
      format_bytes(r->workspace, wbuf, sizeof wbuf);
      const int bad = op->check && !(r->err < 1e-4);
      printf("%-26s %-24s %-24s %-7s %3d %-4s %7.3f %9.3f %9.3f %7.1f %6.1f %10s %8.1e%s\n",
             L->name, r->c->name, r->chosen, r->isa, threads, layout_name(r->layout), gflop, med,
             mn, gflops, pct, wbuf, r->err, bad ? "  CHECK FAILED" : "");
      if (bad) status = 1;
      if (csv) {
        fprintf(csv, "%s,%s,%s,%d,%s,%.6f,%.6f,%.6f,%.3f,%.2f,", L->name, r->c->name, r->isa,
                threads, layout_name(r->layout), gflop, med, mn, gflops, pct);
        if (r->workspace != (size_t)-1) fprintf(csv, "%zu", r->workspace);
        fprintf(csv, ",%.3e,%s,%d,%.3f\n", r->err, r->chosen, n, r->plan_ms);
      }
      *res_ms(R, op, ti, ci, li) = op->stat_min ? mn : med;
      snprintf(R->chosen + res_index(R, op, ti, ci, li) * CHOSEN_LEN, CHOSEN_LEN, "%s", r->chosen);
      runner_destroy(r);
    }
    fflush(stdout);
    if (csv) fflush(csv);
  }
  free(rs);
  for (int l = 0; l < 2; l++) free(in[l]), free(out[l]), free(ref[l]);
  free(f), free(bias);
  return status;
}

/* The summary: totals per candidate and thread count, scaling, AUTO against the best explicit
 * algorithm per layer and against the baselines. */
static void print_summary(const options *op, results *R, const ckb_layer *layers,
                          const int *selected, double suite_gflop) {
  printf("\nSuite totals (sum of per-layer %s, %s, %.3f GFLOP):\n",
         op->stat_min ? "minima" : "medians", layout_name(op->layout), suite_gflop);
  printf("%-24s %3s %11s %9s %7s %9s %7s\n", "algo", "thr", "total_ms", "GFLOP/s", "peak%",
         "scaling", "layers");
  double total[MAX_THREADS_LIST][MAX_CANDIDATES];
  int complete[MAX_THREADS_LIST][MAX_CANDIDATES];
  int nsel = 0;
  for (int li = 0; li < R->nlayers; li++) nsel += selected[li];
  for (int ci = 0; ci < op->ncand; ci++) {
    for (int ti = 0; ti < op->nt; ti++) {
      double t = 0;
      int n = 0;
      for (int li = 0; li < R->nlayers; li++) {
        double m = *res_ms(R, op, ti, ci, li);
        if (selected[li] && !isnan(m)) t += m, n++;
      }
      total[ti][ci] = t;
      complete[ti][ci] = n == nsel;
      if (n == 0) continue;
      const int threads = op->threads[ti];
      const double gf = complete[ti][ci] ? suite_gflop / (t * 1e-3) : NAN;
      const double peak = ckb_peak_gflops(
          op->isa != CK_ISA_AUTO && !op->cand[ci].bl ? op->isa : ck_cpu_isa(), threads);
      /* Parallel efficiency against the first thread count of the list. */
      const int t0 = op->threads[0];
      const double eff =
          ti > 0 && complete[0][ci] && complete[ti][ci] ? total[0][ci] * t0 / (t * threads) : NAN;
      printf("%-24s %3d %11.3f %9.1f %7.1f ", op->cand[ci].name, threads, t, gf,
             peak > 0 ? 100 * gf / peak : NAN);
      if (isnan(eff))
        printf("%9s", "-");
      else
        printf("%8.0f%%", 100 * eff);
      printf(" %3d/%-3d%s\n", n, nsel, complete[ti][ci] ? "" : "  (incomplete: not comparable)");
    }
  }

  /* AUTO (and auto-measure) against the best explicit convkit algorithm, per layer: its own
   * time, and (less noisy) the time of the explicit row of the algorithm it chose. */
  for (int ci = 0; ci < op->ncand; ci++) {
    const candidate *a = &op->cand[ci];
    if (a->bl || a->algo != CK_ALGO_AUTO) continue;
    for (int ti = 0; ti < op->nt; ti++) {
      double worst = 0, worst_choice = 0;
      int over = 0, over_choice = 0, compared = 0;
      const char *worst_layer = "", *worst_choice_layer = "";
      for (int li = 0; li < R->nlayers; li++) {
        const double m = *res_ms(R, op, ti, ci, li);
        const char *chosen = res_chosen(R, op, ti, ci, li);
        double best = INFINITY, as_chosen = NAN;
        int bj = -1;
        for (int cj = 0; cj < op->ncand; cj++) {
          const candidate *b = &op->cand[cj];
          if (b->bl || b->algo == CK_ALGO_AUTO || b->algo == CK_ALGO_REFERENCE) continue;
          const double mb = *res_ms(R, op, ti, cj, li);
          if (!isnan(mb) && mb < best) best = mb, bj = cj;
          if (!strcmp(b->name, chosen)) as_chosen = mb;
        }
        if (!selected[li] || isnan(m) || bj < 0) continue;
        compared++;
        const double ratio = m / best, choice = as_chosen / best;
        if (ratio > 1.10 || choice > 1.10) {
          if (!over && !over_choice) printf("\n");
          printf("%s, %d thr: %s chose %s: %.3f ms (as %s alone: %.3f ms); best %s %.3f ms\n",
                 layers[li].name, op->threads[ti], a->name, chosen, m, chosen, as_chosen,
                 op->cand[bj].name, best);
        }
        over += ratio > 1.10;
        over_choice += choice > 1.10;
        if (ratio > worst) worst = ratio, worst_layer = layers[li].name;
        if (choice > worst_choice) worst_choice = choice, worst_choice_layer = layers[li].name;
      }
      if (compared)
        printf("%s, %d thr: %d of %d layers more than 10%% slower than the best explicit "
               "algorithm (worst %.2fx, %s); by the explicit rows of its choices %d (worst "
               "%.2fx, %s)\n",
               a->name, op->threads[ti], over, compared, worst, worst_layer, over_choice,
               worst_choice, worst_choice_layer);
    }
  }

  /* The headline: AUTO's suite total against each baseline's. */
  for (int ci = 0; ci < op->ncand; ci++) {
    const candidate *a = &op->cand[ci];
    if (a->bl || a->algo != CK_ALGO_AUTO) continue;
    for (int cj = 0; cj < op->ncand; cj++) {
      if (!op->cand[cj].bl) continue;
      for (int ti = 0; ti < op->nt; ti++) {
        if (!complete[ti][ci] || !complete[ti][cj]) continue;
        printf("%s vs %s, %d thr: %.1f ms vs %.1f ms = %.2fx\n", a->name, op->cand[cj].name,
               op->threads[ti], total[ti][ci], total[ti][cj], total[ti][ci] / total[ti][cj]);
      }
    }
  }
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "convkit-bench conv: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  return 2;
}

int ckb_cmd_conv(int argc, char **argv) {
  options op;
  memset(&op, 0, sizeof op);
  op.suite = "bench/layers.csv";
  op.isa = CK_ISA_AUTO;
  op.layout = CK_LAYOUT_NHWC;
  op.tty = isatty(2);
  const char *algos = "auto", *baselines = "none";
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--check"))
      op.check = 1;
    else if (!strcmp(o, "--quick"))
      op.quick = 1;
    else if (!v)
      return usage_error("%s needs a value", o);
    else if (!strcmp(o, "--suite"))
      op.suite = v, i++;
    else if (!strcmp(o, "--csv"))
      op.csv_path = v, i++;
    else if (!strcmp(o, "--layer")) {
      if (op.nlayers == 64) return usage_error("too many --layer (max 64)");
      op.layers[op.nlayers++] = v, i++;
    } else if (!strcmp(o, "--algo"))
      algos = v, i++;
    else if (!strcmp(o, "--stat")) {
      if (strcmp(v, "min") && strcmp(v, "median"))
        return usage_error("bad --stat %s (median or min)", v);
      op.stat_min = !strcmp(v, "min");
      i++;
    } else if (!strcmp(o, "--baselines"))
      baselines = v, i++;
    else if (!strcmp(o, "--isa")) {
      if (ck_isa_from_name(v, &op.isa) != CK_OK) return usage_error("%s", ck_last_error());
      i++;
    } else if (!strcmp(o, "--layout")) {
      if (!strcmp(v, "nchw"))
        op.layout = CK_LAYOUT_NCHW;
      else if (!strcmp(v, "nhwc"))
        op.layout = CK_LAYOUT_NHWC;
      else
        return usage_error("bad --layout %s (nchw or nhwc)", v);
      i++;
    } else if (!strcmp(o, "--threads")) {
      int t[MAX_THREADS_LIST], n = ckb_parse_int_list(v, t, MAX_THREADS_LIST);
      if (n < 0) return usage_error("bad --threads %s (e.g. 1,2,4)", v);
      for (int j = 0; j < n; j++) { /* keep the order, drop repeats ("1,$(nproc)" on 1 core) */
        int dup = 0;
        for (int k = 0; k < op.nt; k++) dup |= op.threads[k] == t[j];
        if (!dup) op.threads[op.nt++] = t[j];
      }
      i++;
    } else
      return usage_error("unknown option %s", o);
  }
  if (parse_algos(&op, algos) != 0 || parse_baselines(&op, baselines) != 0)
    return usage_error("bad --algo or --baselines (at most %d candidates)", MAX_CANDIDATES);
  if (op.ncand == 0) return usage_error("nothing to time");
  if (op.nt == 0) op.threads[op.nt++] = omp_get_max_threads();
  op.per_candidate_s = op.quick ? 0.02 : 0.25;
  op.rounds = op.quick ? 2 : 5;
  op.min_reps = op.quick ? 2 : 5;

  ckb_layer *layers;
  const int n = ckb_read_suite(op.suite, &layers);
  if (n < 0) return 2;
  int *selected = calloc((size_t)n, sizeof(int)), nsel = 0;
  double suite_gflop = 0;
  for (int li = 0; li < n; li++) {
    int want = op.nlayers == 0;
    for (int j = 0; j < op.nlayers; j++) want |= !strcmp(op.layers[j], layers[li].name);
    selected[li] = want;
    if (!want) continue;
    nsel++;
    int oh, ow;
    const ck_conv_desc *d = &layers[li].d;
    if (ck_conv_output_size(d, &oh, &ow) == CK_OK)
      suite_gflop += 2.0 * d->batch * d->out_channels * oh * ow * (d->in_channels / d->groups) *
                     d->kernel_height * d->kernel_width * 1e-9;
  }
  for (int j = 0; j < op.nlayers; j++) {
    int found = 0;
    for (int li = 0; li < n; li++) found |= !strcmp(op.layers[j], layers[li].name);
    if (!found)
      fprintf(stderr, "convkit-bench conv: no layer \"%s\" in %s\n", op.layers[j], op.suite);
  }
  FILE *csv = NULL;
  if (op.csv_path) {
    csv = fopen(op.csv_path, "w");
    if (!csv) {
      free(layers), free(selected);
      return usage_error("cannot write %s", op.csv_path);
    }
    fprintf(csv, "layer,algo,isa,threads,layout,gflop,ms_median,ms_min,gflops,peak_pct,"
                 "workspace_bytes,max_rel_err,chosen,reps,plan_ms\n");
  }
  results R = {.nlayers = n};
  const size_t cells = (size_t)op.nt * op.ncand * n;
  R.ms = malloc(cells * sizeof(double));
  R.chosen = calloc(cells, CHOSEN_LEN);
  for (size_t i = 0; i < cells; i++) R.ms[i] = NAN;

  /* Peaks are measured once per (isa, threads) before timing, not in the middle of a layer. */
  for (int ti = 0; ti < op.nt; ti++) {
    ckb_peak_gflops(ck_cpu_isa(), op.threads[ti]);
    if (op.isa != CK_ISA_AUTO && ck_isa_available(op.isa)) ckb_peak_gflops(op.isa, op.threads[ti]);
  }
  print_header();
  int status = 0, done = 0;
  double t_start = ckb_now();
  for (int li = 0; li < n; li++) {
    if (!selected[li]) continue;
    done++;
    if (!op.tty)
      fprintf(stderr, "convkit-bench conv: [%d/%d] %s (%.0f s)\n", done, nsel, layers[li].name,
              ckb_now() - t_start);
    status |= bench_layer(&op, &layers[li], li, done, nsel, &R, csv);
  }
  progress_clear(&op);
  print_summary(&op, &R, layers, selected, suite_gflop);
  if (csv) fclose(csv);
  free(R.ms), free(R.chosen), free(layers), free(selected);
  return status;
}
