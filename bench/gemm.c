/* convkit-bench gemm: the packed GEMM engine, optionally against OpenBLAS and BLIS in the same run.
 *
 * Row-major C = A * B (alpha 1, beta 0). convkit runs the engine with its workspace allocated
 * before timing (as a plan does); --pack a|b times it with that operand pre-packed, as the
 * convolution algorithms call it (NCHW: packed filter A; NHWC: packed filter B). Baselines are
 * loaded at run time from the libraries CMake found (CKB_OPENBLAS_PATH, CKB_BLIS_PATH), so two
 * BLAS libraries can share one process and neither is ever required. Candidates of one shape are
 * timed in alternating rounds, so a noisy neighbour hits them alike. */
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "gemm.h"
#include "internal.h"

/* ---- Baselines ---------------------------------------------------------------------------- */

typedef void (*cblas_sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha,
                               const float *a, int lda, const float *b, int ldb, float beta,
                               float *c, int ldc);
typedef void (*set_threads_fn)(int);

typedef struct {
  const char *name;
  cblas_sgemm_fn sgemm;
  set_threads_fn set_threads; /* openblas_set_num_threads / bli_thread_set_num_threads */
} baseline;

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111 };

static int load_baseline(const char *name, baseline *b) {
  const char *path = NULL, *setter = NULL;
#ifdef CKB_OPENBLAS_PATH
  if (!strcmp(name, "openblas"))
    name = "openblas", path = CKB_OPENBLAS_PATH, setter = "openblas_set_num_threads";
#endif
#ifdef CKB_BLIS_PATH
  if (!strcmp(name, "blis"))
    name = "blis", path = CKB_BLIS_PATH, setter = "bli_thread_set_num_threads";
#endif
  if (path == NULL) {
    fprintf(stderr, "convkit-bench gemm: baseline %s was not found by CMake; skipped\n", name);
    return 0;
  }
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    fprintf(stderr, "convkit-bench gemm: cannot load %s: %s\n", path, dlerror());
    return 0;
  }
  b->name = name; /* a string literal: the caller's token does not outlive option parsing */
  *(void **)&b->sgemm = dlsym(h, "cblas_sgemm");
  *(void **)&b->set_threads = dlsym(h, setter);
  if (b->sgemm == NULL || b->set_threads == NULL) {
    fprintf(stderr, "convkit-bench gemm: %s lacks cblas_sgemm or %s\n", path, setter);
    return 0;
  }
  return 1;
}

/* ---- Candidates ---------------------------------------------------------------------------- */

typedef struct {
  const char *label; /* isa name or baseline name */
  ck_isa peak_isa;   /* the ISA whose FMA peak the row is compared with */
  const ck_kernels *kern;
  int sgemm; /* time the public ck_sgemm (its own buffers, omp threads) instead of the engine */
  const baseline *base;
  ck_gemm_problem p;
  float *packed;
  void *ws;
  int threads;
  double t[512];
  int n;
} candidate;

static void run(candidate *c, int m, int n, int k, const float *a, const float *b, float *out) {
  if (c->sgemm) {
    omp_set_num_threads(c->threads);
    ck_sgemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, out, n);
  } else if (c->kern) {
    c->p.c = out;
    ck_gemm_execute(c->kern, &c->p, c->threads, c->ws);
  } else {
    c->base->sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, m, n, k, 1.0f, a, k, b, n, 0.0f,
                   out, n);
  }
}

/* Seconds on the wall clock, or of this thread's CPU time with --clock cpu: with one thread, the
 * latter leaves out the slices the scheduler gave to other processes, so it stays meaningful on a
 * busy shared machine (cache pollution by the neighbours still counts). */
static int cpu_clock;
static double now(void) {
  if (!cpu_clock) return ckb_now();
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* ---- Command ------------------------------------------------------------------------------ */

typedef struct {
  int m, n, k;
} shape;

static int parse_shape(const char *s, shape *out) {
  return sscanf(s, "%dx%dx%d", &out->m, &out->n, &out->k) == 3 && out->m > 0 && out->n > 0 &&
         out->k > 0;
}

static void fill(float *x, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
}

static int usage(void) {
  fprintf(stderr,
          "usage: convkit-bench gemm [options]\n"
          "  --m M --n N --k K      one shape (or --shape MxNxK, repeatable); default: squares\n"
          "                         64..2048 and the convolution shapes of ANCHORS.md\n"
          "  --isa LIST             convkit ISAs (default: the best available)\n"
          "  --threads LIST         thread counts (default 1 and all)\n"
          "  --pack none|a|b        pre-pack an operand before timing (default none)\n"
          "  --baseline LIST        also time openblas and/or blis (when CMake found them)\n"
          "  --csv FILE             also write m,n,k,isa,threads,ms_median,gflops,peak_pct\n"
          "  --sgemm                time the public ck_sgemm (allocating its buffers per call,\n"
          "                         ISA from CONVKIT_ISA or the CPU) instead of the engine\n"
          "  --clock wall|cpu       wall clock (default) or the thread's CPU time (1 thread\n"
          "                         only: leaves out time stolen by other processes)\n"
          "  --quick                fewer repetitions\n");
  return 2;
}

int ckb_cmd_gemm(int argc, char **argv) {
  shape shapes[64];
  int nshapes = 0, one_m = 0, one_n = 0, one_k = 0, quick = 0, pack = 0, use_sgemm = 0;
  int threads[16], nt = 0, nisa = 0, nbase = 0;
  ck_isa isas[8];
  baseline bases[4];
  const char *csv_path = NULL;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--quick")) {
      quick = 1;
      continue;
    }
    if (!strcmp(o, "--sgemm")) {
      use_sgemm = 1;
      continue;
    }
    if (v == NULL) return fprintf(stderr, "convkit-bench gemm: %s needs a value\n", o), usage();
    i++;
    if (!strcmp(o, "--m")) {
      one_m = atoi(v);
    } else if (!strcmp(o, "--n")) {
      one_n = atoi(v);
    } else if (!strcmp(o, "--k")) {
      one_k = atoi(v);
    } else if (!strcmp(o, "--shape")) {
      if (nshapes == 64 || !parse_shape(v, &shapes[nshapes]))
        return fprintf(stderr, "convkit-bench gemm: bad --shape %s\n", v), 2;
      nshapes++;
    } else if (!strcmp(o, "--threads")) {
      if ((nt = ckb_parse_int_list(v, threads, 16)) < 0)
        return fprintf(stderr, "convkit-bench gemm: bad --threads %s\n", v), 2;
    } else if (!strcmp(o, "--pack")) {
      if (!strcmp(v, "none"))
        pack = 0;
      else if (!strcmp(v, "a"))
        pack = 1;
      else if (!strcmp(v, "b"))
        pack = 2;
      else
        return fprintf(stderr, "convkit-bench gemm: bad --pack %s\n", v), 2;
    } else if (!strcmp(o, "--isa")) {
      char buf[128];
      snprintf(buf, sizeof buf, "%s", v);
      for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (nisa == 8 || ck_isa_from_name(tok, &isas[nisa]) != CK_OK)
          return fprintf(stderr, "convkit-bench gemm: bad --isa %s\n", tok), 2;
        if (isas[nisa] == CK_ISA_AUTO) isas[nisa] = ck_cpu_isa();
        if (!ck_isa_available(isas[nisa]))
          return fprintf(stderr, "convkit-bench gemm: isa %s is not available\n", tok), 2;
        nisa++;
      }
    } else if (!strcmp(o, "--baseline")) {
      char buf[128];
      snprintf(buf, sizeof buf, "%s", v);
      for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (nbase < 4 && load_baseline(tok, &bases[nbase])) nbase++;
    } else if (!strcmp(o, "--clock")) {
      if (strcmp(v, "wall") && strcmp(v, "cpu"))
        return fprintf(stderr, "convkit-bench gemm: bad --clock %s\n", v), 2;
      cpu_clock = !strcmp(v, "cpu");
    } else if (!strcmp(o, "--csv")) {
      csv_path = v;
    } else {
      fprintf(stderr, "convkit-bench gemm: unknown option %s\n", o);
      return usage();
    }
  }
  if (one_m || one_n || one_k) {
    if (one_m < 1 || one_n < 1 || one_k < 1)
      return fprintf(stderr, "convkit-bench gemm: --m, --n and --k must all be >= 1\n"), 2;
    shapes[nshapes++] = (shape){one_m, one_n, one_k};
  }
  if (nshapes == 0) {
    static const shape defaults[] = {{64, 64, 64},    {128, 128, 128},    {256, 256, 256},
                                     {512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048},
                                     {64, 3136, 576}, {128, 784, 1152},   {256, 196, 2304},
                                     {512, 49, 4608}, {64, 50176, 576}};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
      shapes[nshapes++] = defaults[i];
  }
  if (nisa == 0) isas[nisa++] = ck_cpu_isa();
  if (nt == 0) {
    threads[nt++] = 1;
    if (omp_get_max_threads() > 1) threads[nt++] = omp_get_max_threads();
  }
  for (int ti = 0; ti < nt && cpu_clock; ti++)
    if (threads[ti] != 1)
      return fprintf(stderr, "convkit-bench gemm: --clock cpu needs --threads 1\n"), 2;
  FILE *csv = NULL;
  if (csv_path) {
    if ((csv = fopen(csv_path, "w")) == NULL)
      return fprintf(stderr, "convkit-bench gemm: cannot write %s\n", csv_path), 2;
    fprintf(csv, "m,n,k,isa,threads,ms_median,gflops,peak_pct\n");
  }
  const char *pack_names[] = {"", " (A pre-packed)", " (B pre-packed)"};
  printf("%6s %6s %6s %-9s %3s %10s %10s %9s %6s%s\n", "m", "n", "k", "isa", "thr", "ms_median",
         "ms_min", "gflops", "peak%", pack_names[pack]);

  for (int si = 0; si < nshapes; si++) {
    const int m = shapes[si].m, n = shapes[si].n, k = shapes[si].k;
    const double flop = 2.0 * m * n * k;
    float *a = ckb_tensor_alloc((size_t)m * k * 4), *b = ckb_tensor_alloc((size_t)k * n * 4);
    float *c = ckb_tensor_alloc((size_t)m * n * 4);
    fill(a, (size_t)m * k, 1), fill(b, (size_t)k * n, 2), fill(c, (size_t)m * n, 3);
    for (int ti = 0; ti < nt; ti++) {
      candidate cand[12];
      int nc = 0;
      if (use_sgemm) {
        candidate *x = &cand[nc++];
        memset(x, 0, sizeof *x);
        x->label = "ck_sgemm";
        x->peak_isa = ck_cpu_isa();
        x->sgemm = 1;
        x->threads = threads[ti];
      }
      for (int ii = 0; ii < nisa && !use_sgemm; ii++) {
        candidate *x = &cand[nc++];
        memset(x, 0, sizeof *x);
        x->label = ck_isa_name(isas[ii]);
        x->peak_isa = isas[ii];
        x->kern = ck_kernels_for(isas[ii]);
        x->threads = threads[ti];
        ck_gemm_problem *p = &x->p;
        p->m = (size_t)m, p->n = (size_t)n, p->k = (size_t)k;
        p->a = (ck_gemm_operand){a, (size_t)k, 1, 0};
        p->b = (ck_gemm_operand){b, (size_t)n, 1, 0};
        p->ldc = (size_t)n, p->alpha = 1, p->beta = 0, p->bias_kind = CK_BIAS_NONE;
        p->min = -INFINITY, p->max = INFINITY;
        if (pack == 1) {
          x->packed = ck_aligned_alloc(ck_gemm_packed_a_floats(x->kern, p->m, p->k) * 4);
          ck_gemm_pack_a(x->kern, p->m, p->k, a, p->a.row_stride, 1, x->packed);
          p->a = (ck_gemm_operand){x->packed, 0, 0, 1};
        } else if (pack == 2) {
          x->packed = ck_aligned_alloc(ck_gemm_packed_b_floats(x->kern, p->k, p->n) * 4);
          ck_gemm_pack_b(x->kern, p->k, p->n, b, p->b.row_stride, 1, x->packed);
          p->b = (ck_gemm_operand){x->packed, 0, 0, 1};
        }
        size_t bytes = 0;
        ck_gemm_workspace_size(x->kern, p, x->threads, &bytes);
        x->ws = ck_aligned_alloc(bytes);
      }
      for (int bi = 0; bi < nbase; bi++) {
        candidate *x = &cand[nc++];
        memset(x, 0, sizeof *x);
        x->label = bases[bi].name;
        x->peak_isa = ck_cpu_isa();
        x->base = &bases[bi];
        x->threads = threads[ti];
      }
      /* warm-up, then alternating rounds until the time budget is spent */
      fprintf(stderr, "\r[%d/%d] %d x %d x %d, %d threads   ", si + 1, nshapes, m, n, k,
              threads[ti]);
      for (int ci = 0; ci < nc; ci++) {
        if (cand[ci].base) cand[ci].base->set_threads(cand[ci].threads);
        run(&cand[ci], m, n, k, a, b, c);
      }
      const double budget = quick ? 0.3 : 1.5;
      const int min_rounds = quick ? 3 : 7, max_rounds = 512;
      double start = ckb_now();
      int rounds = 0;
      while (rounds < max_rounds && (rounds < min_rounds || ckb_now() - start < budget)) {
        for (int ci = 0; ci < nc; ci++) {
          candidate *x = &cand[ci];
          if (x->base) x->base->set_threads(x->threads);
          /* another library's pool may still spin on the second core (bench/settle.c) */
          if (x->threads > 1 && cand[(ci + nc - 1) % nc].base != x->base) ckb_settle_threads(0.1);
          double t0 = now();
          run(x, m, n, k, a, b, c);
          x->t[x->n++] = (now() - t0) * 1e3;
        }
        rounds++;
      }
      for (int ci = 0; ci < nc; ci++) {
        candidate *x = &cand[ci];
        qsort(x->t, (size_t)x->n, sizeof(double), cmp_double);
        double med = x->n % 2 ? x->t[x->n / 2] : 0.5 * (x->t[x->n / 2 - 1] + x->t[x->n / 2]);
        double gflops = flop / (med * 1e-3) * 1e-9;
        double peak = ckb_peak_gflops(x->peak_isa, x->threads);
        double pct = peak > 0 ? 100.0 * gflops / peak : NAN;
        printf("%6d %6d %6d %-9s %3d %10.3f %10.3f %9.1f %6.1f\n", m, n, k, x->label, x->threads,
               med, x->t[0], gflops, pct);
        if (csv)
          fprintf(csv, "%d,%d,%d,%s,%d,%.6f,%.3f,%.2f\n", m, n, k, x->label, x->threads, med,
                  gflops, pct);
        ck_aligned_free(x->ws);
        ck_aligned_free(x->packed);
      }
      fflush(stdout);
    }
    free(a), free(b), free(c);
  }
  fprintf(stderr, "\r%60s\r", "");
  if (csv) fclose(csv);
  return 0;
}
