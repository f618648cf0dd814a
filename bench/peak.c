/* FMA peak: a register-only loop of independent FMAs per ISA, on every thread at once. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define FMA_CHAINS 12 /* > latency (4) x ports (2): keeps both FMA units busy */

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters) {
  __m256 acc[FMA_CHAINS];
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < FMA_CHAINS; i++) s = _mm256_add_ps(s, acc[i]);
  return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"))) static float fma_loop_avx512(long iters) {
  __m512 acc[FMA_CHAINS];
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < FMA_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}
#elif defined(__aarch64__)
#include <arm_neon.h>
#define FMA_CHAINS 16
static float fma_loop_neon(long iters) {
  float32x4_t acc[FMA_CHAINS];
  const float32x4_t a = vdupq_n_f32(0.999f), b = vdupq_n_f32(1e-7f);
  for (int i = 0; i < FMA_CHAINS; i++) acc[i] = vdupq_n_f32((float)i);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = vfmaq_f32(b, acc[i], a);
  float32x4_t s = acc[0];
  for (int i = 1; i < FMA_CHAINS; i++) s = vaddq_f32(s, acc[i]);
  return vaddvq_f32(s);
}
#endif

/* Flops of one loop iteration on one thread, and the loop itself; 0 when the ISA has none. */
static int loop_for(ck_isa isa, float (**fn)(long)) {
  switch (isa) {
#if defined(__x86_64__)
  case CK_ISA_AVX2:
    *fn = fma_loop_avx2;
    return FMA_CHAINS * 8 * 2;
  case CK_ISA_AVX512:
    *fn = fma_loop_avx512;
    return FMA_CHAINS * 16 * 2;
#elif defined(__aarch64__)
  case CK_ISA_NEON:
    *fn = fma_loop_neon;
    return FMA_CHAINS * 4 * 2;
#endif
  default:
    return 0;
  }
}

/* The best of many short runs (a few ms each): on a shared machine a run that the scheduler
 * leaves alone is common even when long runs never are, and the best run is the peak. */
static double measure(ck_isa isa, int threads) {
  float (*fn)(long) = NULL;
  int flops_per_iter = loop_for(isa, &fn);
  if (!flops_per_iter || !ck_isa_available(isa)) return 0;
  const long iters = 1000000;
  double best = 0;
  volatile float sink = 0;
  for (int rep = 0; rep < 40; rep++) {
    double t0 = ckb_now();
#pragma omp parallel num_threads(threads)
    {
      float r = fn(iters);
#pragma omp atomic
      sink += r;
    }
    double g = (double)flops_per_iter * iters * threads / (ckb_now() - t0) * 1e-9;
    if (g > best) best = g;
  }
  return best;
}

double ckb_peak_gflops(ck_isa isa, int threads) {
  static double cache[8][65];
  if (isa < 0 || isa > 7 || threads < 1 || threads > 64) return 0;
  if (cache[isa][threads] == 0) cache[isa][threads] = measure(isa, threads);
  return cache[isa][threads];
}

int ckb_cmd_peak(int argc, char **argv) {
  int threads[16], nt = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      nt = ckb_parse_int_list(argv[++i], threads, 16);
      if (nt < 0) return fprintf(stderr, "convkit-bench peak: bad --threads\n"), 2;
    } else {
      return fprintf(stderr, "convkit-bench peak: unknown option %s\n", argv[i]), 2;
    }
  }
  if (nt == 0) {
    threads[nt++] = 1;
    if (omp_get_max_threads() > 1) threads[nt++] = omp_get_max_threads();
  }
  printf("%-8s %7s %12s\n", "isa", "threads", "peak_gflops");
  static const ck_isa isas[] = {CK_ISA_AVX2, CK_ISA_AVX512, CK_ISA_NEON};
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    if (!ck_isa_available(isas[i])) continue;
    for (int t = 0; t < nt; t++)
      printf("%-8s %7d %12.1f\n", ck_isa_name(isas[i]), threads[t],
             ckb_peak_gflops(isas[i], threads[t]));
  }
  return 0;
}
