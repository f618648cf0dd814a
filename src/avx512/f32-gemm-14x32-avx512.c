/* Packed-GEMM micro-kernel for AVX-512F: MR = 14 rows x NR = 32 columns (two zmm per row).
 *
 * 28 accumulators, two B vectors and the A broadcasts fit the 32 zmm registers; per k, 16 loads
 * (2 of B, 14 broadcasts of A) feed 28 independent FMA chains, which cover the FMA latency (4)
 * times the two FMA ports with room to spare.
 *
 * The full tile's k loop is assembly (full_tile); edge tiles use the C loop (tile) specialised at
 * compile time for the rows (1..14) and vectors (1 or 2) they need, so a short edge costs only its
 * own FMAs. The last vector is stored (and C read) through a lane mask, and nothing outside the
 * mr x nr tile or the kc*MR / kc*NR panels is read (software prefetches past a panel's end are
 * hints, not reads: they never fault).
 */
#include <immintrin.h>

#include "../gemm.h"
#include "gemm-epilogue-avx512.h"

#define MR 14
#define NR 32

/* The full 14 x 32 tile's k loop, written in assembly because gcc 12 compiles the C loop (plain
 * and prefetching) with two of the 28 accumulators on the stack, a store and reload per k step.
 * Registers: accumulators zmm0..27 (row i in zmm 2i, 2i+1), B's two vectors in zmm28/29, A
 * broadcast alternately into zmm30/31 so a row's broadcast never waits for the previous row's FMAs
 * to read its register. Unrolled by 4 with a one-step remainder loop; reads exactly kc*14 A and
 * kc*32 B floats. The FMAs per accumulator run in k order from zero, as in tile(), so the bits are
 * tile()'s. The 28 sums go to acc (64-byte aligned, row i's vectors at 32i and 32i+16), where the C
 * epilogue reads them: gcc's asm takes at most 30 operands, too few to hand them over in registers.
 */
/* Software prefetch, 8 k steps ahead: a call streams its 48 KiB B panel through L1, which
 * evicts the 21 KiB A panel between calls, so both come from L2 every call. */
#define CK_A_AHEAD "448"  /* 8 * 56 bytes */
#define CK_B_AHEAD "1024" /* 8 * 128 bytes */
// clang-format off
#define CK_ROW(j, i, bc, z0, z1)                                                                   \
  "vbroadcastss " #j "*56+" #i "*4(%[a]), %%zmm" #bc "\n\t"                                        \
  "vfmadd231ps %%zmm28, %%zmm" #bc ", %%zmm" #z0 "\n\t"                                            \
  "vfmadd231ps %%zmm29, %%zmm" #bc ", %%zmm" #z1 "\n\t"
/* k step j of an unrolled group: B row j, then the 14 rows of A */
#define CK_STEP(j)                                                                                 \
  "vmovups " #j "*128(%[b]), %%zmm28\n\t"                                                          \
  "vmovups " #j "*128+64(%[b]), %%zmm29\n\t"                                                       \
  CK_ROW(j, 0, 30, 0, 1) CK_ROW(j, 1, 31, 2, 3) CK_ROW(j, 2, 30, 4, 5)                             \
  "prefetcht0 " #j "*128+" CK_B_AHEAD "(%[b])\n\t"                                                 \
  CK_ROW(j, 3, 31, 6, 7) CK_ROW(j, 4, 30, 8, 9) CK_ROW(j, 5, 31, 10, 11)                           \
  CK_ROW(j, 6, 30, 12, 13) CK_ROW(j, 7, 31, 14, 15) CK_ROW(j, 8, 30, 16, 17)                       \
  "prefetcht0 " #j "*128+64+" CK_B_AHEAD "(%[b])\n\t"                                              \
  "prefetcht0 " #j "*56+" CK_A_AHEAD "(%[a])\n\t"                                                  \
  CK_ROW(j, 9, 31, 18, 19) CK_ROW(j, 10, 30, 20, 21) CK_ROW(j, 11, 31, 22, 23)                     \
  CK_ROW(j, 12, 30, 24, 25) CK_ROW(j, 13, 31, 26, 27)
/* one L2 prefetch of the stream while lines remain (the walk of ck_gemm_prefetch in kernels.h) */
#define CK_PF                                                                                      \
  "test %[left], %[left]\n\t"                                                                      \
  "jz 5f\n\t"                                                                                      \
  "prefetcht1 (%[row], %[off])\n\t"                                                                \
  "dec %[left]\n\t"                                                                                \
  "add $64, %[off]\n\t"                                                                            \
  "cmp %[bytes], %[off]\n\t"                                                                       \
  "jb 5f\n\t"                                                                                      \
  "xor %k[off], %k[off]\n\t"                                                                       \
  "add %[stride], %[row]\n\t"                                                                      \
  "5:\n\t"
#define CK_ZERO(r) "vpxord %%xmm" #r ", %%xmm" #r ", %%xmm" #r "\n\t"
#define CK_SAVE(r) "vmovaps %%zmm" #r ", " #r "*64(%[acc])\n\t"
/* zero the accumulators; n4 groups of 4 k steps, n1 single steps; store the sums to acc */
#define CK_KLOOP(PF)                                                                               \
  CK_ZERO(0) CK_ZERO(1) CK_ZERO(2) CK_ZERO(3) CK_ZERO(4) CK_ZERO(5) CK_ZERO(6)                     \
  CK_ZERO(7) CK_ZERO(8) CK_ZERO(9) CK_ZERO(10) CK_ZERO(11) CK_ZERO(12) CK_ZERO(13)                 \
  CK_ZERO(14) CK_ZERO(15) CK_ZERO(16) CK_ZERO(17) CK_ZERO(18) CK_ZERO(19) CK_ZERO(20)              \
  CK_ZERO(21) CK_ZERO(22) CK_ZERO(23) CK_ZERO(24) CK_ZERO(25) CK_ZERO(26) CK_ZERO(27)              \
  "test %[n4], %[n4]\n\t"                                                                          \
  "jz 2f\n\t"                                                                                      \
  "1:\n\t"                                                                                         \
  PF CK_STEP(0) PF CK_STEP(1) PF CK_STEP(2) PF CK_STEP(3)                                          \
  "add $224, %[a]\n\t"                                                                             \
  "add $512, %[b]\n\t"                                                                             \
  "dec %[n4]\n\t"                                                                                  \
  "jnz 1b\n\t"                                                                                     \
  "2:\n\t"                                                                                         \
  "test %[n1], %[n1]\n\t"                                                                          \
  "jz 4f\n\t"                                                                                      \
  "3:\n\t"                                                                                         \
  PF CK_STEP(0)                                                                                    \
  "add $56, %[a]\n\t"                                                                              \
  "add $128, %[b]\n\t"                                                                             \
  "dec %[n1]\n\t"                                                                                  \
  "jnz 3b\n\t"                                                                                     \
  "4:\n\t"                                                                                         \
  CK_SAVE(0) CK_SAVE(1) CK_SAVE(2) CK_SAVE(3) CK_SAVE(4) CK_SAVE(5) CK_SAVE(6)                     \
  CK_SAVE(7) CK_SAVE(8) CK_SAVE(9) CK_SAVE(10) CK_SAVE(11) CK_SAVE(12) CK_SAVE(13)                 \
  CK_SAVE(14) CK_SAVE(15) CK_SAVE(16) CK_SAVE(17) CK_SAVE(18) CK_SAVE(19) CK_SAVE(20)              \
  CK_SAVE(21) CK_SAVE(22) CK_SAVE(23) CK_SAVE(24) CK_SAVE(25) CK_SAVE(26) CK_SAVE(27)
#define CK_ZMM_CLOBBERS                                                                            \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",         \
  "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20",        \
  "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30",        \
  "xmm31"
// clang-format on

/* The full tile (all 14 rows, both vectors of B; the last one stored through last_mask). */
static void full_tile(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                      const ck_gemm_epilogue *ep, __mmask16 last_mask, ck_gemm_prefetch *pf) {
  float sums[MR * NR] __attribute__((aligned(64)));
  /* C is written at the end: fetch its lines while the k loop runs */
#pragma GCC unroll 14
  for (int i = 0; i < MR; i++) {
    _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + (size_t)i * ldc + 31), _MM_HINT_T0);
  }
  size_t n4 = kc / 4, n1 = kc % 4;
  if (pf) {
    const char *row = pf->row;
    size_t off = pf->off, left = pf->left;
    __asm__ volatile(CK_KLOOP(CK_PF)
                     : [a] "+r"(a), [b] "+r"(b), [n4] "+r"(n4), [n1] "+r"(n1), [row] "+r"(row),
                       [off] "+r"(off), [left] "+r"(left)
                     : [acc] "r"(sums), [bytes] "r"(pf->row_bytes), [stride] "r"(pf->stride)
                     : CK_ZMM_CLOBBERS, "cc", "memory");
    pf->row = row;
    pf->off = off;
    pf->left = left;
  } else {
    __asm__ volatile(CK_KLOOP("")
                     : [a] "+r"(a), [b] "+r"(b), [n4] "+r"(n4), [n1] "+r"(n1)
                     : [acc] "r"(sums)
                     : CK_ZMM_CLOBBERS, "cc", "memory");
  }
  __m512 acc[MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < MR; i++) {
    acc[i][0] = _mm512_load_ps(sums + 32 * i);
    acc[i][1] = _mm512_load_ps(sums + 32 * i + 16);
  }
  ck_gemm_store_avx512(MR, 2, acc, c, ldc, ep, last_mask);
}

static inline __attribute__((always_inline)) void tile(const int rows, const int vecs, size_t kc,
                                                       const float *a, const float *b, float *c,
                                                       size_t ldc, const ck_gemm_epilogue *ep,
                                                       __mmask16 last_mask) {
  __m512 acc[MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < rows; i++) {
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
  /* C is written at the end: fetch its lines while the k loop runs */
#pragma GCC unroll 14
  for (int i = 0; i < rows; i++) {
    _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    if (vecs == 2) _mm_prefetch((const char *)(c + (size_t)i * ldc + 31), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (size_t k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = vecs == 2 ? _mm512_loadu_ps(b + 16) : b0;
#pragma GCC unroll 14
    for (int i = 0; i < rows; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      if (vecs == 2) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }
  ck_gemm_store_avx512(rows, vecs, acc, c, ldc, ep, last_mask);
}

void ck_f32_gemm_prefetch_14x32__avx512(size_t mr, size_t nr, size_t kc, const float *a,
                                        const float *b, float *c, size_t ldc,
                                        const ck_gemm_epilogue *ep, ck_gemm_prefetch *pf) {
  if (mr == MR && nr == NR)
    full_tile(kc, a, b, c, ldc, ep, 0xFFFF, pf);
  else /* edge tiles are rare: they leave the stream where it is */
    ck_f32_gemm_14x32__avx512(mr, nr, kc, a, b, c, ldc, ep);
}

void ck_f32_gemm_14x32__avx512(size_t mr, size_t nr, size_t kc, const float *a, const float *b,
                               float *c, size_t ldc, const ck_gemm_epilogue *ep) {
  const size_t last = (nr - 1) % 16 + 1; /* lanes of the last vector: 1..16 */
  const __mmask16 mask = (__mmask16)(0xFFFFu >> (16 - last));
  const int two = nr > 16;
  switch (mr) {
  case 14:
    two ? full_tile(kc, a, b, c, ldc, ep, mask, NULL) : tile(14, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 13:
    two ? tile(13, 2, kc, a, b, c, ldc, ep, mask) : tile(13, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 12:
    two ? tile(12, 2, kc, a, b, c, ldc, ep, mask) : tile(12, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 11:
    two ? tile(11, 2, kc, a, b, c, ldc, ep, mask) : tile(11, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 10:
    two ? tile(10, 2, kc, a, b, c, ldc, ep, mask) : tile(10, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 9:
    two ? tile(9, 2, kc, a, b, c, ldc, ep, mask) : tile(9, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 8:
    two ? tile(8, 2, kc, a, b, c, ldc, ep, mask) : tile(8, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 7:
    two ? tile(7, 2, kc, a, b, c, ldc, ep, mask) : tile(7, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 6:
    two ? tile(6, 2, kc, a, b, c, ldc, ep, mask) : tile(6, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 5:
    two ? tile(5, 2, kc, a, b, c, ldc, ep, mask) : tile(5, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 4:
    two ? tile(4, 2, kc, a, b, c, ldc, ep, mask) : tile(4, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 3:
    two ? tile(3, 2, kc, a, b, c, ldc, ep, mask) : tile(3, 1, kc, a, b, c, ldc, ep, mask);
    break;
  case 2:
    two ? tile(2, 2, kc, a, b, c, ldc, ep, mask) : tile(2, 1, kc, a, b, c, ldc, ep, mask);
    break;
  default:
    two ? tile(1, 2, kc, a, b, c, ldc, ep, mask) : tile(1, 1, kc, a, b, c, ldc, ep, mask);
    break;
  }
}
