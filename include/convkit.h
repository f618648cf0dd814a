/*
 * convkit — fp32 2-D convolution for CPUs.
 *
 * The only public header. Every function returns a status or a value documented below; nothing
 * aborts, exits or prints. When a call fails, ck_last_error() returns a sentence that names the
 * offending field and its value.
 */
#ifndef CONVKIT_H
#define CONVKIT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CONVKIT_VERSION_MAJOR 0
#define CONVKIT_VERSION_MINOR 1
#define CONVKIT_VERSION_PATCH 0

#if defined(CONVKIT_BUILDING) && defined(__GNUC__)
#define CK_API __attribute__((visibility("default")))
#else
#define CK_API
#endif

/* ---- Status ------------------------------------------------------------------------------- */

typedef enum {
  CK_OK = 0,
  CK_ERROR_INVALID_ARGUMENT, /* a field, pointer or size is out of range */
  CK_ERROR_UNSUPPORTED,      /* valid, but this algorithm or ISA cannot run it here */
  CK_ERROR_OUT_OF_MEMORY,
  CK_ERROR_WORKSPACE_LIMIT /* the chosen algorithm needs more workspace than the limit allows */
} ck_status;

/* A constant English name for a status ("CK_ERROR_INVALID_ARGUMENT"); never NULL. */
CK_API const char *ck_status_string(ck_status s);

/* The sentence explaining the last failure on the calling thread, e.g.
 * "groups (3) must divide in_channels (64)". Empty string after success. Never NULL; valid until
 * the next convkit call on the same thread. */
CK_API const char *ck_last_error(void);

/* ---- Convolution descriptor --------------------------------------------------------------- */

/* Input and output tensor layout. NCHW: [batch][channels][height][width]; NHWC:
 * [batch][height][width][channels]. Both are dense. */
typedef enum { CK_LAYOUT_NCHW = 0, CK_LAYOUT_NHWC } ck_layout;

/* Filter layout. OIHW: [out][in/groups][kh][kw]; OHWI: [out][kh][kw][in/groups]. */
typedef enum { CK_FILTER_OIHW = 0, CK_FILTER_OHWI } ck_filter_layout;

/* Fused activation applied after bias: NONE, RELU (max(x, 0)) or CLAMP (to [clamp_min,
 * clamp_max]).*/
typedef enum { CK_ACTIVATION_NONE = 0, CK_ACTIVATION_RELU, CK_ACTIVATION_CLAMP } ck_activation;

typedef enum {
  CK_ALGO_AUTO = 0,  /* the planner chooses */
  CK_ALGO_REFERENCE, /* direct loops with double accumulation: the oracle */
  CK_ALGO_IM2COL,    /* patch lowering + packed GEMM */
  CK_ALGO_KN2ROW,    /* one GEMM for all taps, then shift-add */
  CK_ALGO_KN2ROW_AA, /* per-tap GEMMs accumulated into the output */
  CK_ALGO_MEC,       /* memory-efficient lowering, overlapping GEMM partitions */
  CK_ALGO_INDIRECT   /* indirection buffer + indirect GEMM */
} ck_algo;

typedef enum { CK_ISA_AUTO = 0, CK_ISA_GENERIC, CK_ISA_AVX2, CK_ISA_AVX512, CK_ISA_NEON } ck_isa;

typedef struct {
  int batch, in_channels, in_height, in_width, out_channels;
  int kernel_height, kernel_width;
  int stride_height, stride_width;              /* >= 1 */
  int pad_top, pad_bottom, pad_left, pad_right; /* >= 0, may differ (TF "SAME") */
  int dilation_height, dilation_width;          /* >= 1 */
  int groups; /* divides in and out channels; == both: depthwise */
  ck_layout layout;
  ck_filter_layout filter_layout;
  ck_activation activation;
  float clamp_min, clamp_max; /* used with CK_ACTIVATION_CLAMP; clamp_min <= clamp_max */
} ck_conv_desc;

/* Sets every size to 0 and the rest to: stride 1, dilation 1, groups 1, NCHW, OIHW, no
 * activation, clamp [-inf, +inf]. The caller then fills in the sizes. NULL is ignored. */
CK_API void ck_conv_desc_init(ck_conv_desc *d);

/* Validates d and stores the output spatial size:
 * out = (in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride + 1.
 * CK_ERROR_INVALID_ARGUMENT (with a sentence) for any invalid field. */
CK_API ck_status ck_conv_output_size(const ck_conv_desc *d, int *out_height, int *out_width);

/* ---- Plan --------------------------------------------------------------------------------- */

enum {
  CK_PLAN_MEASURE = 1u << 0,        /* time the candidates at plan time, keep the fastest */
  CK_PLAN_FLUSH_DENORMALS = 1u << 1 /* FTZ+DAZ in every worker during execute, restored after */
};

typedef struct {
  ck_algo algo;           /* AUTO: the planner chooses */
  ck_isa isa;             /* AUTO: best this CPU has; env CONVKIT_ISA overrides AUTO */
  int threads;            /* 0: omp_get_max_threads() */
  size_t workspace_limit; /* bytes, 0 = none; AUTO picks the fastest algorithm that fits */
  unsigned flags;         /* CK_PLAN_* bits */
} ck_plan_options;

/* AUTO algorithm, AUTO ISA, 0 threads, no workspace limit, no flags. NULL is ignored. */
CK_API void ck_plan_options_init(ck_plan_options *o);

typedef struct ck_plan ck_plan;

/* Validates the descriptor, chooses algorithm and ISA, packs the filter (layout as
 * d->filter_layout; [out_channels][in_channels/groups * kh * kw] floats) and the optional bias
 * (out_channels floats, NULL for none) and stores a new plan in *plan. The filter and bias are
 * copied; the caller may free them afterwards. o may be NULL (defaults). On failure *plan is set
 * to NULL. */
CK_API ck_status ck_conv_plan_create(const ck_conv_desc *d, const float *filter, const float *bias,
                                     const ck_plan_options *o, ck_plan **plan);

/* Bytes of workspace ck_conv_execute needs when the caller provides it (0 for a NULL plan). */
CK_API size_t ck_plan_workspace_size(const ck_plan *p);

/* Runs the convolution: input and output in the descriptor's layout, sizes
 * batch*in_channels*in_height*in_width and batch*out_channels*out_height*out_width floats.
 * workspace NULL: the plan's own buffer is used and calls on one plan are serialized.
 * Otherwise workspace must hold ck_plan_workspace_size(p) bytes (any alignment); calls with
 * distinct workspaces may run concurrently on one plan. input and output must not overlap.
 * NaN and Inf propagate as IEEE arithmetic says. Padding has two readings that differ only when
 * a weight is NaN or Inf: the reference leaves taps in the padding out of the sum, while the
 * other algorithms may multiply such a weight by a padded zero (0 * Inf = NaN); which one an
 * output gets is unspecified (tests/test_ieee.c accepts either, output by output). */
CK_API ck_status ck_conv_execute(const ck_plan *p, const float *input, float *output,
                                 void *workspace);

/* The algorithm and ISA a plan runs (never AUTO); CK_ALGO_AUTO / CK_ISA_AUTO for NULL. */
CK_API ck_algo ck_plan_algo(const ck_plan *p);
CK_API ck_isa ck_plan_isa(const ck_plan *p);

/* Frees a plan and everything it owns. NULL is ignored. */
CK_API void ck_plan_destroy(ck_plan *p);

/* ---- GEMM --------------------------------------------------------------------------------- */

/* Row-major SGEMM on the packed GEMM engine: C = alpha * op(A) * op(B) + beta * C, where op(X)
 * is X or its transpose (trans_x non-zero). op(A) is m x k, op(B) is k x n, C is m x n.
 * beta == 0: C is not read (NaN in C does not propagate). Uses omp_get_max_threads() threads
 * and the ISA ck_cpu_isa() (or CONVKIT_ISA). Sizes of 0 are valid and do nothing (C is still
 * scaled by beta when k == 0). */
CK_API ck_status ck_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                          const float *a, int lda, const float *b, int ldb, float beta, float *c,
                          int ldc);

/* ---- Library and CPU information ---------------------------------------------------------- */

/* "MAJOR.MINOR.PATCH", matching the CONVKIT_VERSION_* macros of this header. */
CK_API const char *ck_version(void);

/* The best ISA this CPU runs and this build contains (never AUTO). */
CK_API ck_isa ck_cpu_isa(void);

/* Non-zero when this build has kernels for isa and this CPU (and OS) can run them. */
CK_API int ck_isa_available(ck_isa isa);

/* Names: "auto", "reference", "im2col", "kn2row", "kn2row-aa", "mec", "indirect" and "auto",
 * "generic", "avx2", "avx512", "neon". *_name returns "unknown" for a value outside the enum;
 * *_from_name returns CK_ERROR_INVALID_ARGUMENT for an unknown name (or NULL pointers). */
CK_API const char *ck_algo_name(ck_algo a);
CK_API ck_status ck_algo_from_name(const char *s, ck_algo *a);
CK_API const char *ck_isa_name(ck_isa i);
CK_API ck_status ck_isa_from_name(const char *s, ck_isa *i);

#ifdef __cplusplus
}
#endif

#endif /* CONVKIT_H */
