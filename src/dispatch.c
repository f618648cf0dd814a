/* CPU feature detection and the kernel tables of every ISA this build contains. */
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "igemm.h"
#include "internal.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#define CK_X86 1
#include <cpuid.h>
#else
#define CK_X86 0
#endif

/* ---- Tables ------------------------------------------------------------------------------- */

/* Block sizes are chosen per ISA for the caches of the machines it targets; each table says which
 * cache a size aims at (see ck_kernels in kernels.h). */

const ck_kernels ck_kernels_generic = {
    .isa = CK_ISA_GENERIC,
    .name = "generic",

    /* packed GEMM (gemm.c derives KC and NC from the caches when the OS reports them; these are
       the values for L1d 48 KiB, L2 2 MiB): KC x MR of A = 8 KiB in L1, KC x NC of B = 768 KiB
       in L2, MC x KC of A in L3 */
    .gemm = ck_f32_gemm_4x8__generic,
    .gemm_name = "ck_f32_gemm_4x8__generic",
    .mr = 4,
    .nr = 8,
    .mc = 128,
    .kc = 512,
    .nc = 384,
    .gemm_packt = ck_f32_gemm_packt__generic,

    /* indirect GEMM: a 4x8 tile of scalars */
    .igemm = ck_f32_igemm_4x8__generic,
    .igemm_name = "ck_f32_igemm_4x8__generic",
    .igemm_mr = 4,
    .igemm_nr = 8,

    /* depthwise: blocks of 8 channels; 9 and 25 taps single pass, any other count multi-pass */
    .dwconv_3x3 = ck_f32_dwconv_9p8c__generic,
    .dwconv_5x5 = ck_f32_dwconv_25p8c__generic,
    .dwconv_any = ck_f32_dwconv_mp8c__generic,
    .dwconv_name = "ck_f32_dwconv_{9p,25p,mp}8c__generic",
    .dw_cb = 8,

    /* layout transpose: 8 x 8 tiles, one 32-byte half line per row on each side */
    .transpose = ck_f32_transpose_8x8__generic,
    .transpose_tile = 8,
};

#ifdef CK_HAVE_AVX2
const ck_kernels ck_kernels_avx2 = {
    .isa = CK_ISA_AVX2,
    .name = "avx2",

    /* packed GEMM (gemm.c derives KC and NC from the caches when the OS reports them; these are
       the values for L1d 48 KiB, L2 2 MiB): KC x MR of A = 12 KiB in L1 (KC is capped at 512),
       KC x NC of B = 768 KiB in L2, MC x KC of A in L3 */
    .gemm = ck_f32_gemm_6x16__avx2,
    .gemm_name = "ck_f32_gemm_6x16__avx2",
    .mr = 6,
    .nr = 16,
    .mc = 840,
    .kc = 512,
    .nc = 384,
    .gemm_packt = ck_f32_gemm_packt__avx2,
    .gemm_packn = ck_f32_gemm_packn__avx2,
    .gemm_direct = ck_f32_gemm_direct_6x16__avx2,

    /* indirect GEMM: 6 pixels x 16 channels, 12 ymm accumulators */
    .igemm = ck_f32_igemm_6x16__avx2,
    .igemm_name = "ck_f32_igemm_6x16__avx2",
    .igemm_mr = 6,
    .igemm_nr = 16,

    /* depthwise: blocks of 8 channels; 9 and 25 taps single pass, any other count multi-pass */
    .dwconv_3x3 = ck_f32_dwconv_9p8c__avx2,
    .dwconv_5x5 = ck_f32_dwconv_25p8c__avx2,
    .dwconv_any = ck_f32_dwconv_mp8c__avx2,
    .dwconv_name = "ck_f32_dwconv_{9p,25p,mp}8c__avx2",
    .dw_cb = 8,

    /* layout transpose: 8 x 8 tiles in ymm registers */
    .transpose = ck_f32_transpose_8x8__avx2,
    .transpose_tile = 8,
};
#endif

#ifdef CK_HAVE_AVX512
const ck_kernels ck_kernels_avx512 = {
    .isa = CK_ISA_AVX512,
    .name = "avx512",

    /* packed GEMM (gemm.c derives KC and NC from the caches when the OS reports them; these are
       the values for L1d 48 KiB, L2 2 MiB): KC x MR of A = 21 KiB in L1, KC x NC of B = 384 KiB
       in L2 (twice: the prefetching kernel fetches the next block meanwhile), MC x KC of A in L3 */
    .gemm = ck_f32_gemm_14x32__avx512,
    .gemm_name = "ck_f32_gemm_14x32__avx512",
    .mr = 14,
    .nr = 32,
    .mc = 840,
    .kc = 384,
    .nc = 256,
    .gemm_packt = ck_f32_gemm_packt__avx512,
    .gemm_packn = ck_f32_gemm_packn__avx512,
    .gemm_direct = ck_f32_gemm_direct_14x32__avx512,
    .gemm_prefetch = ck_f32_gemm_prefetch_14x32__avx512,
    /* products of at most 64 columns (tiny ones, and 512 x 49 x 4608): one 6 x 64 tile spans
       every column, B is read in place, 10 loads per 24 FMAs instead of 16 per 28 */
    .gemm_direct_wide = ck_f32_gemm_direct_6x64__avx512,
    .direct_wide_mr = 6,
    .direct_wide_nr = 64,

    /* indirect GEMM: 7 pixels x 64 channels, 28 zmm accumulators (fewer loads per FMA than the
       GEMM's 14 x 32, whose A panel is packed: see the kernel's file) */
    .igemm = ck_f32_igemm_7x64__avx512,
    .igemm_name = "ck_f32_igemm_7x64__avx512",
    .igemm_mr = 7,
    .igemm_nr = 64,

    /* depthwise: blocks of 16 channels; 9 and 25 taps single pass, any other count multi-pass */
    .dwconv_3x3 = ck_f32_dwconv_9p16c__avx512,
    .dwconv_5x5 = ck_f32_dwconv_25p16c__avx512,
    .dwconv_any = ck_f32_dwconv_mp16c__avx512,
    .dwconv_name = "ck_f32_dwconv_{9p,25p,mp}16c__avx512",
    .dw_cb = 16,

    /* layout transpose: 16 x 16 tiles in zmm registers, whole 64-byte lines on both sides */
    .transpose = ck_f32_transpose_16x16__avx512,
    .transpose_stream = ck_f32_transpose_16x16__avx512_stream,
    .transpose_fence = ck_transpose_fence__avx512,
    .transpose_tile = 16,
};
#endif

#ifdef CK_HAVE_NEON
#include "neon/neon-kernels.h"

const ck_kernels ck_kernels_neon = {
    .isa = CK_ISA_NEON,
    .name = "neon",

    /* packed GEMM: 8x12 tile (24 of the 32 q registers accumulate). KC x NR of B (12 KiB) in a
       32-64 KiB L1; MC x KC of A (128 KiB) in L2 (a quarter of the 0.5-1 MiB shared by a
       cluster on Cortex-A72/A76 boards); KC x NC of B (1.5 MiB) in L3 or the SoC cache */
    .gemm = ck_f32_gemm_8x12__neon,
    .gemm_name = "ck_f32_gemm_8x12__neon",
    .mr = 8,
    .nr = 12,
    .mc = 128,
    .kc = 256,
    .nc = 1536,
    .gemm_packt = ck_f32_gemm_packt__generic,

    /* indirect GEMM: 6 pixels x 8 channels, 12 q accumulators */
    .igemm = ck_f32_igemm_6x8__neon,
    .igemm_name = "ck_f32_igemm_6x8__neon",
    .igemm_mr = 6,
    .igemm_nr = 8,

    /* depthwise: blocks of 8 channels; 9 and 25 taps single pass, any other count multi-pass */
    .dwconv_3x3 = ck_f32_dwconv_9p8c__neon,
    .dwconv_5x5 = ck_f32_dwconv_25p8c__neon,
    .dwconv_any = ck_f32_dwconv_mp8c__neon,
    .dwconv_name = "ck_f32_dwconv_{9p,25p,mp}8c__neon",
    .dw_cb = 8,

    /* layout transpose: the portable 8 x 8 C kernel (the NCHW <-> NHWC copies are a small
       part of an NCHW indirect convolution; no NEON kernel yet) */
    .transpose = ck_f32_transpose_8x8__generic,
    .transpose_tile = 8,
};
#endif

/* ---- Detection ---------------------------------------------------------------------------- */

#if CK_X86
static unsigned long long read_xcr0(void) {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}
#endif

/* Bit i set: ISA i runs here. Computed once; the computation is pure, so a race between two
 * first callers only stores the same value twice (relaxed atomics keep it defined). */
static int detect_isas(void) {
  int mask = 1 << CK_ISA_GENERIC;
#if CK_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return mask;
  int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  if (!osxsave || !avx) return mask;
  unsigned long long xcr0 = read_xcr0();
  int ymm_os = (xcr0 & 0x6) == 0x6;   /* XMM and YMM state */
  int zmm_os = (xcr0 & 0xe6) == 0xe6; /* plus opmask, ZMM_Hi256, Hi16_ZMM */
  if (__get_cpuid_max(0, NULL) < 7) return mask;
  __cpuid_count(7, 0, a, b, c, d);
  int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
  if (ymm_os && avx2 && fma) mask |= 1 << CK_ISA_AVX2;
  if (zmm_os && avx512f && (mask & (1 << CK_ISA_AVX2))) mask |= 1 << CK_ISA_AVX512;
#elif defined(__aarch64__)
  mask |= 1 << CK_ISA_NEON; /* Advanced SIMD is mandatory on AArch64 */
#endif
  return mask;
}

static int isa_mask(void) {
  static int cached; /* 0: not yet detected (the real mask always has the generic bit) */
  int m = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (m == 0) {
    m = detect_isas();
    __atomic_store_n(&cached, m, __ATOMIC_RELAXED);
  }
  return m;
}

static const ck_kernels *table_of(ck_isa isa) {
  switch (isa) {
  case CK_ISA_GENERIC:
    return &ck_kernels_generic;
#ifdef CK_HAVE_AVX2
  case CK_ISA_AVX2:
    return &ck_kernels_avx2;
#endif
#ifdef CK_HAVE_AVX512
  case CK_ISA_AVX512:
    return &ck_kernels_avx512;
#endif
#ifdef CK_HAVE_NEON
  case CK_ISA_NEON:
    return &ck_kernels_neon;
#endif
  default:
    return NULL;
  }
}

int ck_isa_available(ck_isa isa) {
  if (isa <= CK_ISA_AUTO || isa > CK_ISA_NEON) return 0;
  return table_of(isa) != NULL && (isa_mask() >> isa & 1);
}

ck_isa ck_cpu_isa(void) {
  static const ck_isa best_first[] = {CK_ISA_AVX512, CK_ISA_AVX2, CK_ISA_NEON};
  for (size_t i = 0; i < sizeof best_first / sizeof best_first[0]; i++)
    if (ck_isa_available(best_first[i])) return best_first[i];
  return CK_ISA_GENERIC;
}

ck_status ck_resolve_isa(ck_isa requested, ck_isa *resolved) {
  if (requested == CK_ISA_AUTO) {
    const char *env = getenv("CONVKIT_ISA");
    if (env != NULL && env[0] != '\0') {
      ck_isa forced;
      if (ck_isa_from_name(env, &forced) != CK_OK)
        return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                       "CONVKIT_ISA (\"%.64s\") is not one of auto, generic, avx2, avx512, neon",
                       env);
      if (forced != CK_ISA_AUTO) {
        if (!ck_isa_available(forced))
          return ck_fail(CK_ERROR_UNSUPPORTED, "CONVKIT_ISA (\"%s\") is not available: this %s",
                         ck_isa_name(forced),
                         table_of(forced) ? "CPU or OS cannot run it"
                                          : "build has no kernels for it");
        *resolved = forced;
        return CK_OK;
      }
    }
    *resolved = ck_cpu_isa();
    return CK_OK;
  }
  if (requested < CK_ISA_AUTO || requested > CK_ISA_NEON)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "isa (%d) is not a ck_isa value", (int)requested);
  if (!ck_isa_available(requested))
    return ck_fail(CK_ERROR_UNSUPPORTED, "isa (%s) is not available: this %s",
                   ck_isa_name(requested),
                   table_of(requested) ? "CPU or OS cannot run it" : "build has no kernels for it");
  *resolved = requested;
  return CK_OK;
}

const ck_kernels *ck_kernels_for(ck_isa isa) {
  ck_isa r = CK_ISA_GENERIC;
  if (ck_resolve_isa(isa, &r) != CK_OK) return NULL;
  return table_of(r);
}
