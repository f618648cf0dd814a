/* convkit-bench info: what this machine and build offer. */
#include <omp.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"
#include "kernels.h"

static void print_cache(const char *name, int sc) {
  long v = sc >= 0 ? sysconf(sc) : -1;
  if (v > 0)
    printf("  %-4s %8ld KiB\n", name, v / 1024);
  else
    printf("  %-4s  unknown\n", name);
}

int ckb_cmd_info(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("convkit %s\n", ck_version());
  printf("cpu isa: %s (best available)\n", ck_isa_name(ck_cpu_isa()));
  printf("threads: %d (omp_get_max_threads)\n", omp_get_max_threads());
  printf("caches:\n");
#ifdef _SC_LEVEL1_DCACHE_SIZE
  print_cache("L1d", _SC_LEVEL1_DCACHE_SIZE);
  print_cache("L2", _SC_LEVEL2_CACHE_SIZE);
  print_cache("L3", _SC_LEVEL3_CACHE_SIZE);
#else
  print_cache("L1d", -1);
#endif
  printf("kernel tables:\n");
  static const ck_isa isas[] = {CK_ISA_GENERIC, CK_ISA_AVX2, CK_ISA_AVX512, CK_ISA_NEON};
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    if (!ck_isa_available(isas[i])) {
      printf("  %-8s not available on this CPU or build\n", ck_isa_name(isas[i]));
      continue;
    }
    const ck_kernels *k = ck_kernels_for(isas[i]);
    printf("  %-8s gemm %s (MR %d, NR %d; MC %d, KC %d, NC %d)\n", k->name,
           k->gemm_name ? k->gemm_name : "-", k->mr, k->nr, k->mc, k->kc, k->nc);
    printf("  %-8s igemm %s (MR %d, NR %d)\n", "", k->igemm_name ? k->igemm_name : "-", k->igemm_mr,
           k->igemm_nr);
    printf("  %-8s dwconv %s (%d channels a block)\n", "", k->dwconv_name ? k->dwconv_name : "-",
           k->dw_cb);
  }
  return 0;
}
