/* Packed-GEMM micro-kernel for AVX-512F: MR = 14 rows x NR = 32 columns (two zmm per row).
 *
 * 28 accumulators, two B vectors and one A broadcast fit the 32 zmm registers; per k, 16 loads
 * (2 of B, 14 broadcasts of A) feed 28 independent FMA chains, which cover the FMA latency (4)
 * times the two FMA ports with room to spare.
 *
 * Edge tiles use the same code specialised at compile time for the rows (1..14) and vectors (1 or
 * 2) they need, so a short edge costs only its own FMAs; the last vector is stored (and C read)
 * through a lane mask, and nothing outside the mr x nr tile or the kc*MR / kc*NR panels is read.
 */
#include <immintrin.h>

#include "../gemm.h"
#include "gemm-epilogue-avx512.h"

#define MR 14
#define NR 32

static inline __attribute__((always_inline)) void tile(const int rows, const int vecs, size_t kc,
                                                       const float *a, const float *b, float *c,
                                                       size_t ldc, const ck_gemm_epilogue *ep,
                                                       __mmask16 last_mask, ck_gemm_prefetch *pf) {
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
  /* the prefetch stream's state in registers: one L2 prefetch per k step while lines remain */
  const char *pf_row = pf ? pf->row : NULL;
  size_t pf_off = pf ? pf->off : 0, pf_left = pf ? pf->left : 0;
  const size_t pf_bytes = pf ? pf->row_bytes : 0, pf_stride = pf ? pf->stride : 0;
#pragma GCC unroll 4
  for (size_t k = 0; k < kc; k++) {
    if (pf && pf_left) {
      _mm_prefetch(pf_row + pf_off, _MM_HINT_T1);
      pf_left--;
      pf_off += 64;
      if (pf_off >= pf_bytes) {
        pf_off = 0;
        pf_row += pf_stride;
      }
    }
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
  if (pf) {
    pf->row = pf_row;
    pf->off = pf_off;
    pf->left = pf_left;
  }

  ck_gemm_store_avx512(rows, vecs, acc, c, ldc, ep, last_mask);
}

void ck_f32_gemm_prefetch_14x32__avx512(size_t mr, size_t nr, size_t kc, const float *a,
                                        const float *b, float *c, size_t ldc,
                                        const ck_gemm_epilogue *ep, ck_gemm_prefetch *pf) {
  if (mr == MR && nr == NR)
    tile(MR, 2, kc, a, b, c, ldc, ep, 0xFFFF, pf);
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
    two ? tile(14, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(14, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 13:
    two ? tile(13, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(13, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 12:
    two ? tile(12, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(12, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 11:
    two ? tile(11, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(11, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 10:
    two ? tile(10, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(10, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 9:
    two ? tile(9, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(9, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 8:
    two ? tile(8, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(8, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 7:
    two ? tile(7, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(7, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 6:
    two ? tile(6, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(6, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 5:
    two ? tile(5, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(5, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 4:
    two ? tile(4, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(4, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 3:
    two ? tile(3, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(3, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  case 2:
    two ? tile(2, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(2, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  default:
    two ? tile(1, 2, kc, a, b, c, ldc, ep, mask, NULL)
        : tile(1, 1, kc, a, b, c, ldc, ep, mask, NULL);
    break;
  }
}
