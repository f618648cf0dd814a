/* Direct (unpacked) GEMM micro-kernel for AVX-512F with wide rows: MR = 6 x NR = 64, A and B read
 * where they are (contract: ck_gemm_direct_fn in kernels.h, with the table's direct_wide_mr/nr).
 *
 * The engine uses it for products of at most 64 columns with plain row-major operands (tiny
 * ones, and narrow ones such as 512 x 49 x 4608): one tile then spans every column, B needs no
 * packing, and per k it takes 4 loads of B and 6 broadcasts of A for 24 FMAs (10 loads per 24
 * FMAs), where the 14 x 32 tile takes 16 per 28 and, for 33..64 columns, two tiles. On this
 * shared host the loads, not the FMAs, are what a busy neighbour on the core takes away (see the
 * 7 x 64 igemm kernel). 24 accumulators, 4 B vectors and two broadcast registers fit the 32 zmm
 * registers, so gcc keeps everything in registers.
 *
 * Each output element is summed as by every other AVX-512 GEMM kernel: from zero, one FMA per k
 * in ascending k, then the shared epilogue (gemm-epilogue-avx512.h). A C element therefore gets
 * the same bits from this kernel as from the 14 x 32 ones, whatever tile holds it. The last
 * vector of a B row is read through a lane mask, so nothing past column nr is read.
 */
#include <immintrin.h>

#include "../gemm.h"
#include "gemm-epilogue-avx512.h"

enum { MR = 6, NR = 64 };

/* The tile of R rows and V vectors per row; every call passes literals for both, so each body is
 * compiled with literal bounds (and its accumulators in registers). */
static inline __attribute__((always_inline)) void
tile(const int R, const int V, size_t kc, const float *a, size_t lda, const float *b, size_t ldb,
     float *c, size_t ldc, const ck_gemm_epilogue *ep, __mmask16 last_mask) {
  __m512 acc[MR][4];
#pragma GCC unroll 6
  for (int i = 0; i < R; i++)
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < R; i++) _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
  /* rows 3g + r at q[g] + r*L (base + index * scale addressing), as in the 14 x 32 direct kernel */
  const size_t L = lda * sizeof(float);
  const char *q[2];
  q[0] = (const char *)a;
  q[1] = R > 3 ? (const char *)(a + 3 * lda) : q[0]; /* no pointer past the rows it reads */
#pragma GCC unroll 2
  for (size_t k = 0; k < kc; k++, b += ldb) {
    __m512 bv[4];
#pragma GCC unroll 4
    for (int v = 0; v < V; v++)
      bv[v] =
          v + 1 == V ? _mm512_maskz_loadu_ps(last_mask, b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
      const __m512 ai = _mm512_set1_ps(*(const float *)(q[i / 3] + (size_t)(i % 3) * L));
#pragma GCC unroll 4
      for (int v = 0; v < V; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    q[0] += sizeof(float);
    if (R > 3) q[1] += sizeof(float);
  }
  ck_gemm_store4_avx512(R, V, acc, c, ldc, ep, last_mask);
}

/* Each body in its own function: one register allocation per (R, V). */
typedef void body_fn(size_t kc, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                     size_t ldc, const ck_gemm_epilogue *ep, __mmask16 last_mask);
#define CK_DIRECT_INSTANCE(R, V)                                                                   \
  static __attribute__((noinline)) void rows##R##_v##V(                                            \
      size_t kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc,     \
      const ck_gemm_epilogue *ep, __mmask16 last_mask) {                                           \
    tile(R, V, kc, a, lda, b, ldb, c, ldc, ep, last_mask);                                         \
  }
#define CK_DIRECT_ROWS(R)                                                                          \
  CK_DIRECT_INSTANCE(R, 1)                                                                         \
  CK_DIRECT_INSTANCE(R, 2) CK_DIRECT_INSTANCE(R, 3) CK_DIRECT_INSTANCE(R, 4)
CK_DIRECT_ROWS(1)
CK_DIRECT_ROWS(2)
CK_DIRECT_ROWS(3)
CK_DIRECT_ROWS(4)
CK_DIRECT_ROWS(5)
CK_DIRECT_ROWS(6)
#undef CK_DIRECT_ROWS
#undef CK_DIRECT_INSTANCE

/* [rows - 1][vectors - 1]: a short edge costs only its own FMAs */
static body_fn *const bodies[MR][4] = {
    {rows1_v1, rows1_v2, rows1_v3, rows1_v4}, {rows2_v1, rows2_v2, rows2_v3, rows2_v4},
    {rows3_v1, rows3_v2, rows3_v3, rows3_v4}, {rows4_v1, rows4_v2, rows4_v3, rows4_v4},
    {rows5_v1, rows5_v2, rows5_v3, rows5_v4}, {rows6_v1, rows6_v2, rows6_v3, rows6_v4}};

void ck_f32_gemm_direct_6x64__avx512(size_t mr, size_t nr, size_t kc, const float *a, size_t lda,
                                     const float *b, size_t ldb, float *c, size_t ldc,
                                     const ck_gemm_epilogue *ep) {
  const size_t vecs = (nr + 15) / 16, last = nr - 16 * (vecs - 1); /* lanes of the last: 1..16 */
  const __mmask16 mask = (__mmask16)(0xFFFFu >> (16 - last));
  bodies[mr - 1][vecs - 1](kc, a, lda, b, ldb, c, ldc, ep, mask);
}
