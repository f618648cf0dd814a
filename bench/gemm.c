/* convkit-bench gemm: the packed GEMM engine. */
#include <stdio.h>

#include "bench.h"

int ckb_cmd_gemm(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "convkit-bench gemm: the packed GEMM engine is not built yet\n");
  return 2;
}
