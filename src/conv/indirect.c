/*
 * Indirect convolution (Dukhan 2019), NHWC native. At plan time: one indirection buffer of
 * kh*kw*round_up(out pixels, MR) positions for one image (padding taps at the zero row), and the
 * weights packed [bias NR][taps][C][NR] per channel block and group. Per call only a_offset
 * changes (igemm.h), so a new input pointer, another image of the batch or another group costs
 * one addition. Depthwise convolutions (groups == C == M) take the per-channel kernels
 * (indirect-dw.c); grouped ones, depthwise with a channel multiplier included, run igemm per
 * group. NCHW tensors are transposed to NHWC in the workspace and back.
 */
#include <stdlib.h>
#include <string.h>

#include "indirect.h"
#include "layout.h"

/* The igemm indirection: for tile T, tap t = ky*kw + kx and row i, the position of output pixel
 * T*MR + i's input pixel under that tap; padding taps and pixels past the end at the zero row. */
static void build_igemm_indirection(const ck_conv_problem *pb, size_t MR, uintptr_t base,
                                    const float *zero, const float **ind) {
  const ck_conv_desc *d = &pb->d;
  const size_t P = (size_t)pb->out_h * pb->out_w, tiles = ck_div_up(P, MR);
  const size_t KH = (size_t)d->kernel_height, KW = (size_t)d->kernel_width;
  const size_t pixel_bytes = (size_t)d->in_channels * sizeof(float);
  for (size_t tile = 0; tile < tiles; tile++) {
    for (size_t ky = 0; ky < KH; ky++) {
      for (size_t kx = 0; kx < KW; kx++) {
        const float **a = ind + (tile * KH * KW + ky * KW + kx) * MR;
        for (size_t i = 0; i < MR; i++) {
          const size_t p = tile * MR + i;
          a[i] = zero;
          if (p >= P) continue;
          const long oy = (long)(p / (size_t)pb->out_w), ox = (long)(p % (size_t)pb->out_w);
          const long iy = oy * d->stride_height - d->pad_top + (long)ky * d->dilation_height;
          const long ix = ox * d->stride_width - d->pad_left + (long)kx * d->dilation_width;
          if (iy < 0 || iy >= d->in_height || ix < 0 || ix >= d->in_width) continue;
          a[i] = ck_indirection_ptr(base, ((size_t)iy * d->in_width + (size_t)ix) * pixel_bytes);
        }
      }
    }
  }
}

/* Below this many input channels a tap's few channels cannot pay for the MR positions the
 * kernel loads per tap (conv1 layers: 3 channels), so the kw taps of a kernel row are merged
 * into one of kw*C contiguous channels (NHWC, dilation_width 1, no groups) in every tile whose
 * windows lie inside the input horizontally. */
#define CK_MERGE_BELOW_CHANNELS 32

static int merges_taps(const ck_conv_problem *pb) {
  const ck_conv_desc *d = &pb->d;
  return d->groups == 1 && d->dilation_width == 1 && d->kernel_width > 1 &&
         d->in_channels < CK_MERGE_BELOW_CHANNELS;
}

/* Merged tiles: kh positions per pixel, each at the first of its kernel row's kw pixels. */
static void merge_tiles(const ck_conv_problem *pb, size_t MR, uintptr_t base, const float *zero,
                        const float **ind, unsigned char *merged) {
  const ck_conv_desc *d = &pb->d;
  const size_t P = (size_t)pb->out_h * pb->out_w, tiles = ck_div_up(P, MR);
  const size_t KH = (size_t)d->kernel_height, KW = (size_t)d->kernel_width;
  const size_t pixel_bytes = (size_t)d->in_channels * sizeof(float);
  for (size_t tile = 0; tile < tiles; tile++) {
    int inside = 1;
    for (size_t i = 0; i < MR && tile * MR + i < P; i++) {
      const long ox = (long)((tile * MR + i) % (size_t)pb->out_w);
      const long ix = ox * d->stride_width - d->pad_left;
      inside &= ix >= 0 && ix + (long)KW <= d->in_width;
    }
    merged[tile] = (unsigned char)inside;
    if (!inside) continue;
    const float **a = ind + tile * KH * KW * MR;
    for (size_t ky = 0; ky < KH; ky++) {
      for (size_t i = 0; i < MR; i++) {
        const size_t p = tile * MR + i;
        a[ky * MR + i] = zero;
        if (p >= P) continue;
        const long oy = (long)(p / (size_t)pb->out_w), ox = (long)(p % (size_t)pb->out_w);
        const long iy = oy * d->stride_height - d->pad_top + (long)ky * d->dilation_height;
        const long ix = ox * d->stride_width - d->pad_left;
        if (iy < 0 || iy >= d->in_height) continue;
        a[ky * MR + i] =
            ck_indirection_ptr(base, ((size_t)iy * d->in_width + (size_t)ix) * pixel_bytes);
      }
    }
  }
}

static ck_status igemm_setup(const ck_conv_ctx *ctx, const ck_conv_weights *w,
                             ck_indirect_state *s) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const ck_kernels *k = ctx->kern;
  const size_t MR = (size_t)k->igemm_mr, NR = (size_t)k->igemm_nr;
  const size_t P = (size_t)pb->out_h * pb->out_w, tiles = ck_div_up(P, MR);
  const size_t ks = (size_t)d->kernel_height * d->kernel_width, kc = (size_t)pb->cin_g;
  const size_t G = (size_t)d->groups, MG = (size_t)pb->cout_g, blocks = ck_div_up(MG, NR);
  const size_t image_bytes = (size_t)d->in_height * d->in_width * d->in_channels * sizeof(float);

  size_t nptr, ptr_bytes, group_floats, packed_bytes;
  if (!ck_mul_size(tiles * MR, ks, &nptr) || !ck_mul_size(nptr, sizeof(float *), &ptr_bytes) ||
      !ck_mul_size(blocks, ck_igemm_block_floats(NR, ks, kc), &group_floats) ||
      !ck_mul_size(group_floats, G * sizeof(float), &packed_bytes))
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "indirect: the indirection buffer or packed filter of this convolution "
                   "(%zu pixels, %zu taps, %zu channels) overflows size_t",
                   P, ks, kc);
  const int merge = merges_taps(pb);
  const size_t zero_floats = merge ? kc * (size_t)d->kernel_width : kc;
  s->zero = ck_aligned_alloc(zero_floats * sizeof(float));
  s->indirection = ck_aligned_alloc(ptr_bytes);
  s->packed = ck_aligned_alloc(packed_bytes);
  s->merged = merge ? malloc(tiles) : NULL;
  if (s->zero == NULL || s->indirection == NULL || s->packed == NULL || (merge && !s->merged))
    return ck_fail(CK_ERROR_OUT_OF_MEMORY,
                   "out of memory for the indirect plan (%zu pointers, %zu bytes of weights)", nptr,
                   packed_bytes);
  memset(s->zero, 0, zero_floats * sizeof(float));
  s->base = ck_indirection_base(s->zero, zero_floats * sizeof(float), image_bytes);
  build_igemm_indirection(pb, MR, s->base, s->zero, s->indirection);
  if (merge) merge_tiles(pb, MR, s->base, s->zero, s->indirection, s->merged);
  const size_t filter_group = MG * kc * ks;
  for (size_t g = 0; g < G; g++)
    ck_igemm_pack(NR, MG, ks, kc, w->filter_oihw + g * filter_group, w->bias + g * MG,
                  s->packed + g * group_floats);

  s->op = (ck_igemm_op){
      .kern = k,
      .pixels = P,
      .ks = ks,
      .kc = kc,
      .indirection = s->indirection,
      .zero = s->zero,
      .groups = G,
      .n = MG,
      .packed = s->packed,
      .out_stride = (size_t)d->out_channels,
      .a_group_bytes = kc * sizeof(float),
      .clamp = {pb->min, pb->max},
      .merged = s->merged,
      .ks_merged = (size_t)d->kernel_height,
      .kc_merged = kc * (size_t)d->kernel_width,
  };
  return CK_OK;
}

static ck_status indirect_setup(ck_conv_ctx *ctx, const ck_conv_weights *w) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const ck_kernels *k = ctx->kern;
  const int depthwise = pb->cin_g == 1 && pb->cout_g == 1;
  if (depthwise ? k->dwconv_any == NULL : k->igemm == NULL)
    return ck_fail(CK_ERROR_UNSUPPORTED, "algo (indirect) has no %s kernel for isa (%s) yet",
                   depthwise ? "depthwise" : "igemm", k->name);
  ck_indirect_state *s = calloc(1, sizeof *s);
  if (s == NULL) return ck_fail(CK_ERROR_OUT_OF_MEMORY, "out of memory for the indirect plan");
  ctx->state = s;
  s->depthwise = depthwise;
  ck_status st = depthwise ? ck_indirect_dw_setup(ctx, w, s) : igemm_setup(ctx, w, s);
  if (st != CK_OK) return st;

  size_t ws = 0;
  if (d->layout == CK_LAYOUT_NCHW) {
    if (!ck_ws_need(&ws, ck_conv_input_floats(pb) * sizeof(float)) ||
        !ck_ws_need(&ws, ck_conv_output_floats(pb) * sizeof(float)) || !ck_ws_finish(&ws))
      return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                     "indirect: the NHWC copies of input and output overflow size_t");
  }
  ctx->workspace_size = ws;
  return CK_OK;
}

static void indirect_execute(const ck_conv_ctx *ctx, const float *input, float *output,
                             void *workspace) {
  const ck_conv_problem *pb = &ctx->pb;
  const ck_conv_desc *d = &pb->d;
  const ck_indirect_state *s = ctx->state;
  const size_t N = (size_t)d->batch, C = (size_t)d->in_channels, M = (size_t)d->out_channels;
  const size_t HW = (size_t)d->in_height * d->in_width, P = (size_t)pb->out_h * pb->out_w;
  const float *x = input;
  float *y = output;
  if (d->layout == CK_LAYOUT_NCHW) {
    ck_ws_cursor cur;
    ck_ws_begin(&cur, workspace, ctx->workspace_size);
    float *xt = ck_ws_take(&cur, ck_conv_input_floats(pb) * sizeof(float));
    y = ck_ws_take(&cur, ck_conv_output_floats(pb) * sizeof(float));
    ck_nchw_to_nhwc(ctx->kern, input, xt, N, C, HW, ctx->threads);
    x = xt;
  }
  if (s->depthwise)
    ck_indirect_dw_run(ctx, s, x, y);
  else
    ck_igemm_run(&s->op, N, (uintptr_t)x - s->base, HW * C * sizeof(float), y, P * M, ctx->threads);
  if (d->layout == CK_LAYOUT_NCHW) ck_nhwc_to_nchw(ctx->kern, y, output, N, M, P, ctx->threads);
}

static void indirect_destroy(ck_conv_ctx *ctx) {
  ck_indirect_state *s = ctx->state;
  if (s == NULL) return;
  ck_aligned_free(s->zero);
  ck_aligned_free((void *)s->indirection);
  ck_aligned_free(s->packed);
  free(s->merged);
  free(s);
  ctx->state = NULL;
}

const ck_algo_impl ck_algo_indirect = {
    .id = CK_ALGO_INDIRECT,
    .setup = indirect_setup,
    .execute = indirect_execute,
    .destroy = indirect_destroy,
};
