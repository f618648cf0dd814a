/*
 * A small consumer of an installed convkit: one 3x3 convolution layer (NHWC, padding 1, bias,
 * ReLU) planned once and executed with a caller-owned workspace, checked against a direct loop.
 * Builds against the installed package only (see examples/CMakeLists.txt and examples/README).
 * Prints the algorithms the library runs for the layer. Exit status 0 when the result matches.
 */
#include <convkit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 1, C = 8, H = 12, W = 12, M = 16, K = 3 };

static float next_value(unsigned *state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) / 16777216.0f - 0.5f;
}

/* The same layer by definition: out[n][h][w][m] = relu(bias[m] + sum x * w). */
static void direct(const float *in, const float *filter, const float *bias, float *out) {
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++)
      for (int w = 0; w < W; w++)
        for (int m = 0; m < M; m++) {
          double acc = bias[m];
          for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
              int ih = h + kh - 1, iw = w + kw - 1;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              for (int c = 0; c < C; c++)
                acc += (double)in[((n * H + ih) * W + iw) * C + c] *
                       filter[((m * K + kh) * K + kw) * C + c]; /* OHWI */
            }
          out[((n * H + h) * W + w) * M + m] = acc > 0 ? (float)acc : 0.0f;
        }
}

int main(void) {
  char expect_version[32];
  snprintf(expect_version, sizeof expect_version, "%d.%d.%d", CONVKIT_VERSION_MAJOR,
           CONVKIT_VERSION_MINOR, CONVKIT_VERSION_PATCH);
  if (strcmp(ck_version(), expect_version) != 0) {
    fprintf(stderr, "header says %s, library says %s\n", expect_version, ck_version());
    return 1;
  }

  ck_conv_desc d;
  ck_conv_desc_init(&d);
  d.batch = N;
  d.in_channels = C;
  d.in_height = H;
  d.in_width = W;
  d.out_channels = M;
  d.kernel_height = d.kernel_width = K;
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  d.layout = CK_LAYOUT_NHWC;
  d.filter_layout = CK_FILTER_OHWI;
  d.activation = CK_ACTIVATION_RELU;

  int oh, ow;
  if (ck_conv_output_size(&d, &oh, &ow) != CK_OK || oh != H || ow != W) {
    fprintf(stderr, "output size: %s\n", ck_last_error());
    return 1;
  }

  static float in[N * H * W * C], filter[M * K * K * C], bias[M];
  static float out[N * H * W * M], want[N * H * W * M];
  unsigned s = 12345;
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) in[i] = next_value(&s);
  for (size_t i = 0; i < sizeof filter / sizeof filter[0]; i++) filter[i] = next_value(&s);
  for (size_t i = 0; i < M; i++) bias[i] = next_value(&s);

  ck_plan_options o;
  ck_plan_options_init(&o);
  o.threads = 2;
  o.flags = CK_PLAN_FLUSH_DENORMALS;
  ck_plan *plan = NULL;
  ck_status st = ck_conv_plan_create(&d, filter, bias, &o, &plan);
  if (st == CK_ERROR_UNSUPPORTED) { /* no flush-to-zero control on this target */
    o.flags = 0;
    st = ck_conv_plan_create(&d, filter, bias, &o, &plan);
  }
  if (st != CK_OK) {
    fprintf(stderr, "plan: %s: %s\n", ck_status_string(st), ck_last_error());
    return 1;
  }
  void *workspace = malloc(ck_plan_workspace_size(plan) + 1);
  st = ck_conv_execute(plan, in, out, workspace);
  if (st != CK_OK) {
    fprintf(stderr, "execute: %s: %s\n", ck_status_string(st), ck_last_error());
    return 1;
  }

  direct(in, filter, bias, want);
  double max_err = 0;
  for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
    double e = fabs((double)out[i] - want[i]);
    if (!(e <= max_err)) max_err = e; /* NaN-safe */
  }
  printf("convkit %s: %dx%dx%d -> %dx%dx%d with %s on %s, max |error| %.3g\n", ck_version(), H, W,
         C, oh, ow, M, ck_algo_name(ck_plan_algo(plan)), ck_isa_name(ck_plan_isa(plan)), max_err);
  free(workspace);
  ck_plan_destroy(plan);

  /* Which algorithms this library runs for the layer: a static and a shared link of one build
   * must print the same list (tools/ci-integration.sh compares them). */
  printf("algorithms:");
  for (int a = CK_ALGO_REFERENCE; a <= CK_ALGO_INDIRECT; a++) {
    ck_plan *p = NULL;
    o.algo = (ck_algo)a;
    if (ck_conv_plan_create(&d, filter, bias, &o, &p) == CK_OK) printf(" %s", ck_algo_name(a));
    ck_plan_destroy(p);
  }
  printf("\n");
  return max_err <= 1e-4 ? 0 : 1;
}
