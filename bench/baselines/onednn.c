/* Baseline: oneDNN convolution through its C API, the way a framework uses it: NHWC activations,
 * weights in the format the library chooses (format_tag any), reordered once at creation,
 * forward inference, direct algorithm (oneDNN then picks its fastest kernel, brgemm conv on
 * AVX-512). For NCHW data the instance reorders the input to NHWC and the output back, and that
 * time is part of each run: the price an NCHW user of oneDNN pays. Threads: oneDNN's OpenMP
 * runtime uses omp_get_max_threads(), set around creation and each run. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "baselines.h"

typedef struct {
  int threads, nchw;
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  dnnl_primitive_desc_t conv_pd;
  dnnl_primitive_t conv, to_nhwc, to_nchw;
  dnnl_memory_t src, dst, weights, bias; /* src/dst: NHWC, the conv's own tensors */
  dnnl_memory_t user_src, user_dst;      /* NCHW user tensors when nchw */
  void *src_nhwc, *dst_nhwc;             /* buffers behind src/dst when nchw */
  size_t extra_bytes;
  char impl_name[64];
} onednn;

#define TRY(call)                                                                                  \
  do {                                                                                             \
    dnnl_status_t st_ = (call);                                                                    \
    if (st_ != dnnl_success) {                                                                     \
      snprintf(err, err_len, "oneDNN: %s failed (status %d)", #call, (int)st_);                    \
      goto fail;                                                                                   \
    }                                                                                              \
  } while (0)

static void destroy(void *inst);

/* A reorder primitive from one memory descriptor to another. */
static dnnl_status_t make_reorder(dnnl_engine_t engine, const dnnl_memory_desc_t *from,
                                  const dnnl_memory_desc_t *to, dnnl_primitive_t *out) {
  dnnl_primitive_desc_t pd;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL);
  if (st != dnnl_success) return st;
  st = dnnl_primitive_create(out, pd);
  dnnl_primitive_desc_destroy(pd);
  return st;
}

static void *create(const ck_conv_desc *d, const float *filter_oihw, const float *bias, int threads,
                    char *err, size_t err_len) {
  onednn *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(threads);
  s->threads = threads;
  s->nchw = d->layout == CK_LAYOUT_NCHW;
  int oh, ow;
  ck_conv_output_size(d, &oh, &ow);
  const int G = d->groups, MG = d->out_channels / G, CG = d->in_channels / G;
  dnnl_dims_t src_dims = {d->batch, d->in_channels, d->in_height, d->in_width};
  dnnl_dims_t dst_dims = {d->batch, d->out_channels, oh, ow};
  dnnl_dims_t bias_dims = {d->out_channels};
  dnnl_dims_t w_dims = {MG, CG, d->kernel_height, d->kernel_width};
  dnnl_dims_t gw_dims = {G, MG, CG, d->kernel_height, d->kernel_width};
  dnnl_dims_t strides = {d->stride_height, d->stride_width};
  dnnl_dims_t dilates = {d->dilation_height - 1, d->dilation_width - 1};
  dnnl_dims_t pad_l = {d->pad_top, d->pad_left}, pad_r = {d->pad_bottom, d->pad_right};
  dnnl_memory_desc_t src_md, dst_md, w_any_md, w_user_md, bias_md, src_nchw_md, dst_nchw_md;
  dnnl_convolution_desc_t cd;
  dnnl_memory_t user_w = NULL;
  dnnl_primitive_t w_reorder = NULL;

  TRY(dnnl_engine_create(&s->engine, dnnl_cpu, 0));
  TRY(dnnl_stream_create(&s->stream, s->engine, dnnl_stream_default_flags));
  TRY(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc));
  TRY(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc));
  TRY(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x));
  if (G == 1) {
    TRY(dnnl_memory_desc_init_by_tag(&w_any_md, 4, w_dims, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&w_user_md, 4, w_dims, dnnl_f32, dnnl_oihw));
  } else {
    TRY(dnnl_memory_desc_init_by_tag(&w_any_md, 5, gw_dims, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&w_user_md, 5, gw_dims, dnnl_f32, dnnl_goihw));
  }
  TRY(dnnl_dilated_convolution_forward_desc_init(
      &cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md, &w_any_md, &bias_md, &dst_md,
      strides, dilates, pad_l, pad_r));
  TRY(dnnl_primitive_desc_create(&s->conv_pd, &cd, NULL, s->engine, NULL));
  TRY(dnnl_primitive_create(&s->conv, s->conv_pd));
  const char *impl = NULL;
  dnnl_primitive_desc_query(s->conv_pd, dnnl_query_impl_info_str, 0, &impl);
  snprintf(s->impl_name, sizeof s->impl_name, "%s", impl ? impl : "?");
  int64_t consumption = 0;
  dnnl_primitive_desc_query(s->conv_pd, dnnl_query_memory_consumption_s64, 0, &consumption);
  s->extra_bytes = consumption > 0 ? (size_t)consumption : 0;

  /* Weights: reordered once into the layout the convolution chose. */
  const dnnl_memory_desc_t *w_md =
      dnnl_primitive_desc_query_md(s->conv_pd, dnnl_query_weights_md, 0);
  TRY(dnnl_memory_create(&user_w, &w_user_md, s->engine, (void *)filter_oihw));
  TRY(dnnl_memory_create(&s->weights, w_md, s->engine, DNNL_MEMORY_ALLOCATE));
  TRY(make_reorder(s->engine, &w_user_md, w_md, &w_reorder));
  dnnl_exec_arg_t wargs[2] = {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, s->weights}};
  TRY(dnnl_primitive_execute(w_reorder, s->stream, 2, wargs));
  TRY(dnnl_stream_wait(s->stream));
  TRY(dnnl_memory_create(&s->bias, &bias_md, s->engine, DNNL_MEMORY_ALLOCATE));
  void *bias_ptr = NULL;
  TRY(dnnl_memory_get_data_handle(s->bias, &bias_ptr));
  memcpy(bias_ptr, bias, (size_t)d->out_channels * sizeof(float));

  if (!s->nchw) {
    TRY(dnnl_memory_create(&s->src, &src_md, s->engine, DNNL_MEMORY_NONE));
    TRY(dnnl_memory_create(&s->dst, &dst_md, s->engine, DNNL_MEMORY_NONE));
  } else {
    TRY(dnnl_memory_desc_init_by_tag(&src_nchw_md, 4, src_dims, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(&dst_nchw_md, 4, dst_dims, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_create(&s->src, &src_md, s->engine, DNNL_MEMORY_ALLOCATE));
    TRY(dnnl_memory_create(&s->dst, &dst_md, s->engine, DNNL_MEMORY_ALLOCATE));
    TRY(dnnl_memory_create(&s->user_src, &src_nchw_md, s->engine, DNNL_MEMORY_NONE));
    TRY(dnnl_memory_create(&s->user_dst, &dst_nchw_md, s->engine, DNNL_MEMORY_NONE));
    TRY(make_reorder(s->engine, &src_nchw_md, &src_md, &s->to_nhwc));
    TRY(make_reorder(s->engine, &dst_md, &dst_nchw_md, &s->to_nchw));
    s->extra_bytes += dnnl_memory_desc_get_size(&src_md) + dnnl_memory_desc_get_size(&dst_md);
  }
  dnnl_primitive_destroy(w_reorder);
  dnnl_memory_destroy(user_w);
  omp_set_num_threads(saved_threads);
  return s;
fail:
  if (w_reorder) dnnl_primitive_destroy(w_reorder);
  if (user_w) dnnl_memory_destroy(user_w);
  destroy(s);
  omp_set_num_threads(saved_threads);
  return NULL;
}

static void run(void *inst, const float *input, float *output) {
  onednn *s = inst;
  const int saved_threads = omp_get_max_threads(); /* the caller's default, restored below */
  omp_set_num_threads(s->threads);
  dnnl_memory_t src = s->nchw ? s->user_src : s->src, dst = s->nchw ? s->user_dst : s->dst;
  dnnl_memory_set_data_handle(src, (void *)input);
  dnnl_memory_set_data_handle(dst, output);
  if (s->nchw) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, s->user_src}, {DNNL_ARG_TO, s->src}};
    dnnl_primitive_execute(s->to_nhwc, s->stream, 2, a);
  }
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, s->src},
                             {DNNL_ARG_WEIGHTS, s->weights},
                             {DNNL_ARG_BIAS, s->bias},
                             {DNNL_ARG_DST, s->dst}};
  dnnl_primitive_execute(s->conv, s->stream, 4, args);
  if (s->nchw) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, s->dst}, {DNNL_ARG_TO, s->user_dst}};
    dnnl_primitive_execute(s->to_nchw, s->stream, 2, a);
  }
  dnnl_stream_wait(s->stream);
  omp_set_num_threads(saved_threads);
}

static size_t workspace(const void *inst) {
  return ((const onednn *)inst)->extra_bytes;
}

static const char *impl(const void *inst) {
  return ((const onednn *)inst)->impl_name;
}

static void destroy(void *inst) {
  onednn *s = inst;
  if (!s) return;
  if (s->to_nhwc) dnnl_primitive_destroy(s->to_nhwc);
  if (s->to_nchw) dnnl_primitive_destroy(s->to_nchw);
  if (s->conv) dnnl_primitive_destroy(s->conv);
  if (s->conv_pd) dnnl_primitive_desc_destroy(s->conv_pd);
  dnnl_memory_t mems[] = {s->src, s->dst, s->weights, s->bias, s->user_src, s->user_dst};
  for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
    if (mems[i]) dnnl_memory_destroy(mems[i]);
  if (s->stream) dnnl_stream_destroy(s->stream);
  if (s->engine) dnnl_engine_destroy(s->engine);
  free(s);
}

const ckb_baseline ckb_baseline_onednn = {
    .name = "onednn",
    .what = "oneDNN convolution, NHWC, weights in the library's format (NCHW: + reorders)",
    .native = CK_LAYOUT_NHWC,
    .has_nchw = 1,
    .has_nhwc = 1,
    .create = create,
    .run = run,
    .workspace = workspace,
    .destroy = destroy,
    .impl = impl,
};
