/* Convolution baselines of convkit-bench: other libraries run on the same layers, in the same
 * run, alternately with convkit. Each one is compiled only when CMake found its library
 * (CKB_HAVE_OPENBLAS, CKB_HAVE_ONEDNN, CKB_HAVE_XNNPACK); the library never depends on them. */
#ifndef CKB_BASELINES_H
#define CKB_BASELINES_H

#include <stddef.h>

#include "convkit.h"

typedef struct {
  const char *name;       /* row name after "baseline:", e.g. "onednn" */
  const char *what;       /* one line for --help and the report */
  ck_layout native;       /* the layout the library runs best in */
  int has_nchw, has_nhwc; /* layouts create() accepts (the other one may be via reorders) */
  /* Builds an instance for descriptor d (sizes, stride, pads, dilation, groups, no activation;
   * d->layout says the layout of input and output) with an OIHW filter and a bias of out_channels
   * floats, running on `threads` threads. Returns NULL and writes a sentence to err when it cannot.
   */
  void *(*create)(const ck_conv_desc *d, const float *filter_oihw, const float *bias, int threads,
                  char *err, size_t err_len);
  /* One convolution. The input may be read up to ckb_baseline_input_slack bytes past its end
   * (XNNPACK asks for that slack); the bench allocates it. */
  void (*run)(void *inst, const float *input, float *output);
  /* Bytes of scratch memory the instance holds beyond input, output and packed weights, or
   * (size_t)-1 when the library does not say. */
  size_t (*workspace)(const void *inst);
  void (*destroy)(void *inst);
  /* The library's name for the implementation it chose (e.g. oneDNN's "brg:avx512_core"), or
   * NULL; may itself be NULL. */
  const char *(*impl)(const void *inst);
} ckb_baseline;

/* Bytes every input buffer given to a baseline must have readable past its end. */
#define CKB_BASELINE_INPUT_SLACK 64

/* The baselines compiled into this binary, in report order; *n gets their count. */
const ckb_baseline *const *ckb_baselines(int *n);

/* Looks a baseline up by name ("onednn" or "baseline:onednn"); NULL when not compiled in. */
const ckb_baseline *ckb_baseline_find(const char *name);

#endif
