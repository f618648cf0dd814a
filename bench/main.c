/* convkit-bench: the benchmark command line. `convkit-bench help` lists the subcommands. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int usage(FILE *f) {
  fprintf(f, "usage: convkit-bench COMMAND [options]\n"
             "  info                      detected ISA, kernel tables, caches, threads\n"
             "  conv [options]            time convolution algorithms and baselines on a suite\n"
             "     --suite CSV            layers file (default bench/layers.csv)\n"
             "     --layer NAME           only this layer (repeatable)\n"
             "     --algo LIST            auto, measure (AUTO + CK_PLAN_MEASURE), all (every\n"
             "                            explicit algorithm), or names; default auto\n"
             "     --baselines LIST|all   other libraries found at build time: onednn, xnnpack,\n"
             "                            im2col-openblas; default none\n"
             "     --isa NAME             ISA of the convkit plans (default auto)\n"
             "     --threads LIST         thread counts, e.g. 1,2,4,8 (default: all)\n"
             "     --layout nchw|nhwc     tensor layout (default nhwc)\n"
             "     --check                compare each result with the reference\n"
             "     --csv FILE             also write the rows as CSV\n"
             "     --stat median|min      statistic of the summary (default median; min on a\n"
             "                            busy machine)\n"
             "     --quick                fewer repetitions (about a minute for the suite)\n"
             "  gemm [options]            time the packed GEMM engine\n"
             "  peak [options]            FMA peak per ISA and thread count\n");
  return f == stderr ? 2 : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage(stderr);
  const char *cmd = argv[1];
  /* OpenBLAS (a baseline, dlopen'ed later) keeps its idle workers spinning for 2^28 cycles by
   * default, a tenth of a second that steals a core from whatever is timed next; 2^22 cycles
   * (about 2 ms) still covers the gaps between its own calls within one convolution. A value
   * set by the user wins. */
  setenv("OPENBLAS_THREAD_TIMEOUT", "22", 0);
  if (!strcmp(cmd, "info")) return ckb_cmd_info(argc - 1, argv + 1);
  if (!strcmp(cmd, "conv")) return ckb_cmd_conv(argc - 1, argv + 1);
  if (!strcmp(cmd, "gemm")) return ckb_cmd_gemm(argc - 1, argv + 1);
  if (!strcmp(cmd, "peak")) return ckb_cmd_peak(argc - 1, argv + 1);
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) return usage(stdout);
  fprintf(stderr, "convkit-bench: unknown command \"%s\"\n", cmd);
  return usage(stderr);
}
