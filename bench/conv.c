/* convkit-bench conv: time algorithms on the layers of a suite. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct {
  const ck_plan *plan;
  const float *in;
  float *out;
  void *ws;
} run_args;

static void run_once(void *arg) {
  run_args *a = arg;
  ck_conv_execute(a->plan, a->in, a->out, a->ws);
}

static void fill(float *x, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
}

static int parse_algos(const char *s, ck_algo *out) {
  if (!strcmp(s, "all")) {
    int n = 0;
    for (int a = CK_ALGO_IM2COL; a <= CK_ALGO_INDIRECT; a++) out[n++] = (ck_algo)a;
    return n;
  }
  int n = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (n == 16 || ck_algo_from_name(tok, &out[n]) != CK_OK) return -1;
    n++;
  }
  return n;
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

int ckb_cmd_conv(int argc, char **argv) {
  const char *suite = "bench/layers.csv", *csv_path = NULL;
  const char *layers[64];
  int nlayers = 0, check = 0, quick = 0;
  ck_algo algos[16] = {CK_ALGO_AUTO};
  int nalgo = 1;
  ck_isa isa = CK_ISA_AUTO;
  ck_layout layout = CK_LAYOUT_NHWC;
  int threads[16], nt = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--check"))
      check = 1;
    else if (!strcmp(o, "--quick"))
      quick = 1;
    else if (!v)
      return fprintf(stderr, "convkit-bench conv: %s needs a value\n", o), 2;
    else if (!strcmp(o, "--suite"))
      suite = v, i++;
    else if (!strcmp(o, "--csv"))
      csv_path = v, i++;
    else if (!strcmp(o, "--layer") && nlayers < 64)
      layers[nlayers++] = v, i++;
    else if (!strcmp(o, "--algo")) {
      if ((nalgo = parse_algos(v, algos)) < 0)
        return fprintf(stderr, "convkit-bench conv: bad --algo %s\n", v), 2;
      i++;
    } else if (!strcmp(o, "--isa")) {
      if (ck_isa_from_name(v, &isa) != CK_OK)
        return fprintf(stderr, "convkit-bench conv: %s\n", ck_last_error()), 2;
      i++;
    } else if (!strcmp(o, "--layout")) {
      if (!strcmp(v, "nchw"))
        layout = CK_LAYOUT_NCHW;
      else if (!strcmp(v, "nhwc"))
        layout = CK_LAYOUT_NHWC;
      else
        return fprintf(stderr, "convkit-bench conv: bad --layout %s\n", v), 2;
      i++;
    } else if (!strcmp(o, "--threads")) {
      if ((nt = ckb_parse_int_list(v, threads, 16)) < 0)
        return fprintf(stderr, "convkit-bench conv: bad --threads %s\n", v), 2;
      i++;
    } else
      return fprintf(stderr, "convkit-bench conv: unknown option %s\n", o), 2;
  }
  if (nt == 0) threads[nt++] = omp_get_max_threads();
  ckb_layer *suite_layers;
  int n = ckb_read_suite(suite, &suite_layers);
  if (n < 0) return 2;
  FILE *csv = NULL;
  if (csv_path) {
    csv = fopen(csv_path, "w");
    if (!csv) return fprintf(stderr, "convkit-bench conv: cannot write %s\n", csv_path), 2;
    fprintf(csv, "layer,algo,isa,threads,layout,gflop,ms_median,ms_min,gflops,peak_pct,"
                 "workspace_bytes,max_rel_err\n");
  }
  printf("%-28s %-10s %-7s %3s %-5s %8s %10s %10s %8s %6s %12s %9s\n", "layer", "algo", "isa",
         "thr", "lay", "gflop", "ms_median", "ms_min", "gflops", "peak%", "workspace", "rel_err");
  int selected = 0, status = 0;
  for (int li = 0; li < n; li++) {
    int want = nlayers == 0;
    for (int j = 0; j < nlayers; j++) want |= !strcmp(layers[j], suite_layers[li].name);
    if (want) selected++;
  }
  int done_count = 0;
  double totals[16][16] = {{0}};
  for (int li = 0; li < n; li++) {
    ckb_layer *L = &suite_layers[li];
    int want = nlayers == 0;
    for (int j = 0; j < nlayers; j++) want |= !strcmp(layers[j], L->name);
    if (!want) continue;
    done_count++;
    ck_conv_desc d = L->d;
    d.layout = layout;
    int oh, ow;
    ck_conv_output_size(&d, &oh, &ow);
    size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
    size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
    size_t nf =
        (size_t)d.out_channels * (d.in_channels / d.groups) * d.kernel_height * d.kernel_width;
    double gflop =
        2.0 * nout * (d.in_channels / d.groups) * d.kernel_height * d.kernel_width * 1e-9;
    float *in = malloc(nin * 4), *f = malloc(nf * 4), *bias = malloc(d.out_channels * 4);
    float *out = malloc(nout * 4), *ref = check ? malloc(nout * 4) : NULL;
    fill(in, nin, 1), fill(f, nf, 2), fill(bias, (size_t)d.out_channels, 3);
    if (check) {
      ck_plan_options ro;
      ck_plan_options_init(&ro);
      ro.algo = CK_ALGO_REFERENCE;
      ck_plan *rp = NULL;
      if (ck_conv_plan_create(&d, f, bias, &ro, &rp) != CK_OK ||
          ck_conv_execute(rp, in, ref, NULL) != CK_OK) {
        fprintf(stderr, "reference failed on %s: %s\n", L->name, ck_last_error());
        return 1;
      }
      ck_plan_destroy(rp);
    }
    for (int ai = 0; ai < nalgo; ai++) {
      for (int ti = 0; ti < nt; ti++) {
        fprintf(stderr, "\r[%d/%d] %-28s %-10s %d thr   ", done_count, selected, L->name,
                ck_algo_name(algos[ai]), threads[ti]);
        ck_plan_options o;
        ck_plan_options_init(&o);
        o.algo = algos[ai];
        o.isa = isa;
        o.threads = threads[ti];
        ck_plan *p = NULL;
        ck_status st = ck_conv_plan_create(&d, f, bias, &o, &p);
        if (st != CK_OK) {
          fprintf(stderr, "\n%s %s: %s\n", L->name, ck_algo_name(algos[ai]), ck_last_error());
          status = 1;
          continue;
        }
        size_t wsz = ck_plan_workspace_size(p);
        void *ws = malloc(wsz ? wsz : 1);
        run_args ra = {p, in, out, ws};
        double med, mn;
        double budget = quick ? 0.05 : 0.3;
        ckb_time(run_once, &ra, quick ? 3 : 7, 1000, budget, &med, &mn);
        double err = check ? rel_err(out, ref, nout) : NAN;
        double gflops = gflop / (med * 1e-3);
        double peak = ckb_peak_gflops(ck_plan_isa(p), threads[ti]);
        double pct = peak > 0 ? 100.0 * gflops / peak : NAN;
        totals[ai][ti] += med;
        printf("%-28s %-10s %-7s %3d %-5s %8.3f %10.3f %10.3f %8.1f %6.1f %12zu %9.2e\n", L->name,
               ck_algo_name(ck_plan_algo(p)), ck_isa_name(ck_plan_isa(p)), threads[ti],
               layout == CK_LAYOUT_NCHW ? "nchw" : "nhwc", gflop, med, mn, gflops, pct, wsz, err);
        fflush(stdout);
        if (csv)
          fprintf(csv, "%s,%s,%s,%d,%s,%.6f,%.6f,%.6f,%.3f,%.2f,%zu,%.3e\n", L->name,
                  ck_algo_name(ck_plan_algo(p)), ck_isa_name(ck_plan_isa(p)), threads[ti],
                  layout == CK_LAYOUT_NCHW ? "nchw" : "nhwc", gflop, med, mn, gflops, pct, wsz,
                  err);
        if (check && !(err < 1e-4)) status = 1;
        free(ws);
        ck_plan_destroy(p);
      }
    }
    free(in), free(f), free(bias), free(out), free(ref);
  }
  fprintf(stderr, "\r%70s\r", "");
  for (int ai = 0; ai < nalgo; ai++)
    for (int ti = 0; ti < nt; ti++)
      printf("total %-10s %2d threads: %10.3f ms (sum of per-layer medians)\n",
             ck_algo_name(algos[ai]), threads[ti], totals[ai][ti]);
  if (csv) fclose(csv);
  free(suite_layers);
  return status;
}
