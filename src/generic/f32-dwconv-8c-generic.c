/* The dwconv contract of kernels.h in plain C: ck_f32_dwconv_ref for any channel block (the
 * reference every ISA kernel is tested against) and the generic table's kernels, the same loop
 * with 8-channel blocks and the tap count fixed (9, 25) or free (mp). Every output is summed as
 * bias, then taps in ascending order, so all of them agree bit for bit. */
#include <stdint.h>

#include "igemm.h"

static inline float clamp(float v, const ck_clamp_params *p) {
  if (v < p->min) v = p->min;
  if (v > p->max) v = p->max;
  return v;
}

static inline __attribute__((always_inline)) void
dwconv(size_t CB, size_t channels, size_t pixels, size_t ks, const float **input,
       size_t input_stride, size_t input_offset, const float *zero, const float *weights,
       float *output, size_t output_stride, const ck_clamp_params *p) {
  for (size_t px = 0; px < pixels; px++, input += input_stride, output += output_stride) {
    for (size_t c = 0; c < channels; c++) {
      const float *w = weights + c / CB * CB * (1 + ks) + c % CB;
      float acc = w[0];
      for (size_t t = 0; t < ks; t++) {
        const float *in = ck_rebase(input[t], input_offset, zero);
        acc += in[c] * w[CB + t * CB];
      }
      output[c] = clamp(acc, p);
    }
  }
}

void ck_f32_dwconv_ref(size_t CB, size_t channels, size_t pixels, size_t ks, const float **input,
                       size_t input_stride, size_t input_offset, const float *zero,
                       const float *weights, float *output, size_t output_stride,
                       const ck_clamp_params *p) {
  dwconv(CB, channels, pixels, ks, input, input_stride, input_offset, zero, weights, output,
         output_stride, p);
}

void ck_f32_dwconv_9p8c__generic(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p) {
  (void)ks; /* 9 by contract */
  dwconv(8, channels, pixels, 9, input, input_stride, input_offset, zero, weights, output,
         output_stride, p);
}

void ck_f32_dwconv_25p8c__generic(size_t channels, size_t pixels, size_t ks, const float **input,
                                  size_t input_stride, size_t input_offset, const float *zero,
                                  const float *weights, float *output, size_t output_stride,
                                  const ck_clamp_params *p) {
  (void)ks; /* 25 by contract */
  dwconv(8, channels, pixels, 25, input, input_stride, input_offset, zero, weights, output,
         output_stride, p);
}

void ck_f32_dwconv_mp8c__generic(size_t channels, size_t pixels, size_t ks, const float **input,
                                 size_t input_stride, size_t input_offset, const float *zero,
                                 const float *weights, float *output, size_t output_stride,
                                 const ck_clamp_params *p) {
  dwconv(8, channels, pixels, ks, input, input_stride, input_offset, zero, weights, output,
         output_stride, p);
}
