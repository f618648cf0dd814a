/* The public API contract: validation with sentences, names, versions, ISA selection. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convkit.h"

static void small_desc(ck_conv_desc *d) {
  ck_conv_desc_init(d);
  d->batch = 1;
  d->in_channels = 4;
  d->in_height = d->in_width = 5;
  d->out_channels = 6;
  d->kernel_height = d->kernel_width = 3;
}

static const float filter[6 * 4 * 9];

/* Expects plan creation on d to fail with `status` and a sentence containing `needle`. */
static void expect_refused(const ck_conv_desc *d, const ck_plan_options *o, ck_status status,
                           const char *needle) {
  ck_plan *p = (ck_plan *)0x1;
  ck_status s = ck_conv_plan_create(d, filter, NULL, o, &p);
  cr_expect_eq(s, status, "expected %s, got %s (%s)", ck_status_string(status), ck_status_string(s),
               ck_last_error());
  cr_expect_null(p, "a failed creation leaves *plan NULL");
  cr_expect(strstr(ck_last_error(), needle) != NULL, "sentence \"%s\" lacks \"%s\"",
            ck_last_error(), needle);
}

typedef struct {
  const char *field;
  size_t offset;
  int bad;
  const char *sentence;
} int_case;

#define FIELD(f, bad, sentence)                                                                    \
  { #f, offsetof(ck_conv_desc, f), bad, sentence }

Test(api, every_int_field_is_validated_with_its_name_and_value) {
  static const int_case cases[] = {
      FIELD(batch, 0, "batch (0) must be >= 1"),
      FIELD(in_channels, -3, "in_channels (-3) must be >= 1"),
      FIELD(in_height, 0, "in_height (0)"),
      FIELD(in_width, -1, "in_width (-1)"),
      FIELD(out_channels, 0, "out_channels (0)"),
      FIELD(kernel_height, 0, "kernel_height (0)"),
      FIELD(kernel_width, -7, "kernel_width (-7)"),
      FIELD(stride_height, 0, "stride_height (0) must be >= 1"),
      FIELD(stride_width, -2, "stride_width (-2)"),
      FIELD(pad_top, -1, "pad_top (-1) must be >= 0"),
      FIELD(pad_bottom, -1, "pad_bottom (-1)"),
      FIELD(pad_left, INT_MIN, "pad_left (-2147483648)"),
      FIELD(pad_right, -5, "pad_right (-5)"),
      FIELD(dilation_height, 0, "dilation_height (0)"),
      FIELD(dilation_width, -1, "dilation_width (-1)"),
      FIELD(groups, 0, "groups (0)"),
      FIELD(groups, 3, "groups (3) must divide in_channels (4)"),
      FIELD(layout, 7, "layout (7)"),
      FIELD(filter_layout, -1, "filter_layout (-1)"),
      FIELD(activation, 9, "activation (9)"),
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_conv_desc d;
    small_desc(&d);
    memcpy((char *)&d + cases[i].offset, &cases[i].bad, sizeof(int));
    expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, cases[i].sentence);
    int oh, ow;
    cr_expect_eq(ck_conv_output_size(&d, &oh, &ow), CK_ERROR_INVALID_ARGUMENT, "%s",
                 cases[i].field);
  }
}

Test(api, groups_must_divide_out_channels) {
  ck_conv_desc d;
  small_desc(&d);
  d.groups = 4;
  expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, "groups (4) must divide out_channels (6)");
}

Test(api, kernel_larger_than_padded_input) {
  ck_conv_desc d;
  small_desc(&d);
  d.kernel_height = 4;
  d.dilation_height = 2; /* span 7 > 5 */
  expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, "kernel_height (4)");
  small_desc(&d);
  d.kernel_width = 8;
  d.pad_left = 1;
  d.pad_right = 1;
  expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, "kernel_width (8)");
}

Test(api, clamp_bounds_are_checked) {
  ck_conv_desc d;
  small_desc(&d);
  d.activation = CK_ACTIVATION_CLAMP;
  d.clamp_min = 2.0f;
  d.clamp_max = 1.0f;
  expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, "clamp_min (2)");
  d.clamp_min = NAN;
  d.clamp_max = 1.0f;
  expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, "clamp_min (nan)");
}

Test(api, overflowing_sizes_are_refused) {
  ck_conv_desc d;
  small_desc(&d);
  d.batch = INT_MAX;
  d.in_channels = INT_MAX;
  d.in_height = INT_MAX;
  d.in_width = INT_MAX;
  d.kernel_height = d.kernel_width = 1;
  expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, "input size");
  small_desc(&d);
  d.out_channels = INT_MAX - 1; /* divisible by groups 1; output = 2^31 * 9 floats is fine, but */
  d.in_channels = INT_MAX - 1;  /* the filter is (2^31)^2 * 9 floats */
  expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, "filter size");
  small_desc(&d);
  d.in_height = INT_MAX;
  d.pad_top = INT_MAX;
  expect_refused(&d, NULL, CK_ERROR_INVALID_ARGUMENT, "");
}

Test(api, null_pointers_are_refused) {
  ck_conv_desc d;
  small_desc(&d);
  ck_plan *p = NULL;
  cr_expect_eq(ck_conv_plan_create(NULL, filter, NULL, NULL, &p), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "descriptor is NULL"));
  cr_expect_eq(ck_conv_plan_create(&d, NULL, NULL, NULL, &p), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "filter is NULL"));
  cr_expect_eq(ck_conv_plan_create(&d, filter, NULL, NULL, NULL), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "plan"));
  int oh;
  cr_expect_eq(ck_conv_output_size(&d, &oh, NULL), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "out_width is NULL"));

  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = CK_ALGO_REFERENCE;
  cr_assert_eq(ck_conv_plan_create(&d, filter, NULL, &o, &p), CK_OK);
  float in[4 * 25], out[6 * 9];
  cr_expect_eq(ck_conv_execute(NULL, in, out, NULL), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "plan is NULL"));
  cr_expect_eq(ck_conv_execute(p, NULL, out, NULL), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "input is NULL"));
  cr_expect_eq(ck_conv_execute(p, in, NULL, NULL), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "output is NULL"));
  cr_expect_eq(ck_conv_execute(p, in, (float *)in + 10, NULL), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "overlap"));
  ck_plan_destroy(p);
  ck_plan_destroy(NULL);
  cr_expect_eq(ck_plan_workspace_size(NULL), 0);
  cr_expect_eq(ck_plan_algo(NULL), CK_ALGO_AUTO);
  cr_expect_eq(ck_plan_isa(NULL), CK_ISA_AUTO);
  ck_conv_desc_init(NULL);
  ck_plan_options_init(NULL);
}

Test(api, options_are_validated) {
  ck_conv_desc d;
  small_desc(&d);
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = (ck_algo)42;
  expect_refused(&d, &o, CK_ERROR_INVALID_ARGUMENT, "algo (42)");
  ck_plan_options_init(&o);
  o.isa = (ck_isa)-1;
  expect_refused(&d, &o, CK_ERROR_INVALID_ARGUMENT, "isa (-1)");
  ck_plan_options_init(&o);
  o.threads = -2;
  expect_refused(&d, &o, CK_ERROR_INVALID_ARGUMENT, "threads (-2)");
  ck_plan_options_init(&o);
  o.flags = 1u << 7;
  expect_refused(&d, &o, CK_ERROR_INVALID_ARGUMENT, "flags (0x80)");
}

Test(api, success_clears_the_error_sentence) {
  ck_conv_desc d;
  small_desc(&d);
  d.batch = 0;
  int oh, ow;
  cr_assert_neq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
  cr_assert_neq(strlen(ck_last_error()), 0);
  d.batch = 1;
  cr_assert_eq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
  cr_expect_str_eq(ck_last_error(), "");
  cr_expect_eq(oh, 3);
  cr_expect_eq(ow, 3);
}

Test(api, names_round_trip) {
  for (int a = CK_ALGO_AUTO; a <= CK_ALGO_INDIRECT; a++) {
    ck_algo back;
    cr_expect_eq(ck_algo_from_name(ck_algo_name((ck_algo)a), &back), CK_OK);
    cr_expect_eq((int)back, a);
  }
  for (int i = CK_ISA_AUTO; i <= CK_ISA_NEON; i++) {
    ck_isa back;
    cr_expect_eq(ck_isa_from_name(ck_isa_name((ck_isa)i), &back), CK_OK);
    cr_expect_eq((int)back, i);
  }
  cr_expect_str_eq(ck_algo_name(CK_ALGO_KN2ROW_AA), "kn2row-aa");
  cr_expect_str_eq(ck_isa_name(CK_ISA_AVX512), "avx512");
  cr_expect_str_eq(ck_algo_name((ck_algo)99), "unknown");
  cr_expect_str_eq(ck_isa_name((ck_isa)-1), "unknown");
  ck_algo a;
  cr_expect_eq(ck_algo_from_name("winograd", &a), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "winograd"));
  cr_expect_eq(ck_algo_from_name(NULL, &a), CK_ERROR_INVALID_ARGUMENT);
  ck_isa i;
  cr_expect_eq(ck_isa_from_name("sse9", &i), CK_ERROR_INVALID_ARGUMENT);
  cr_expect_eq(ck_isa_from_name("avx2", NULL), CK_ERROR_INVALID_ARGUMENT);
  cr_expect_str_eq(ck_status_string(CK_ERROR_WORKSPACE_LIMIT), "CK_ERROR_WORKSPACE_LIMIT");
}

Test(api, version_matches_macros) {
  char expect[32];
  snprintf(expect, sizeof expect, "%d.%d.%d", CONVKIT_VERSION_MAJOR, CONVKIT_VERSION_MINOR,
           CONVKIT_VERSION_PATCH);
  cr_expect_str_eq(ck_version(), expect);
}

Test(api, cpu_isa_is_available_and_generic_always_is) {
  cr_expect(ck_isa_available(CK_ISA_GENERIC));
  cr_expect(ck_isa_available(ck_cpu_isa()));
  cr_expect(!ck_isa_available(CK_ISA_AUTO));
  cr_expect(!ck_isa_available((ck_isa)17));
#if defined(__x86_64__)
  cr_expect(!ck_isa_available(CK_ISA_NEON));
#endif
}

static ck_status plan_with_isa(ck_isa isa, ck_plan **p) {
  ck_conv_desc d;
  small_desc(&d);
  ck_plan_options o;
  ck_plan_options_init(&o);
  o.algo = CK_ALGO_REFERENCE;
  o.isa = isa;
  return ck_conv_plan_create(&d, filter, NULL, &o, p);
}

Test(api, isa_option_and_convkit_isa_override) {
  ck_plan *p = NULL;
  unsetenv("CONVKIT_ISA");
  cr_assert_eq(plan_with_isa(CK_ISA_AUTO, &p), CK_OK);
  cr_expect_eq(ck_plan_isa(p), ck_cpu_isa());
  ck_plan_destroy(p);

  setenv("CONVKIT_ISA", "generic", 1);
  cr_assert_eq(plan_with_isa(CK_ISA_AUTO, &p), CK_OK);
  cr_expect_eq(ck_plan_isa(p), CK_ISA_GENERIC);
  ck_plan_destroy(p);

  /* An explicit per-plan ISA is not overridden. */
  cr_assert_eq(plan_with_isa(ck_cpu_isa(), &p), CK_OK);
  cr_expect_eq(ck_plan_isa(p), ck_cpu_isa());
  ck_plan_destroy(p);

  setenv("CONVKIT_ISA", "sse9", 1);
  cr_expect_eq(plan_with_isa(CK_ISA_AUTO, &p), CK_ERROR_INVALID_ARGUMENT);
  cr_expect(strstr(ck_last_error(), "CONVKIT_ISA (\"sse9\")"));
  cr_expect_null(p);
#if defined(__x86_64__)
  setenv("CONVKIT_ISA", "neon", 1);
  cr_expect_eq(plan_with_isa(CK_ISA_AUTO, &p), CK_ERROR_UNSUPPORTED);
  cr_expect(strstr(ck_last_error(), "neon"));
  unsetenv("CONVKIT_ISA");
  cr_expect_eq(plan_with_isa(CK_ISA_NEON, &p), CK_ERROR_UNSUPPORTED);
  cr_expect(strstr(ck_last_error(), "isa (neon) is not available"));
#endif
  unsetenv("CONVKIT_ISA");
}

Test(api, execute_gives_the_same_bits_with_own_and_caller_workspace) {
  ck_conv_desc d;
  small_desc(&d);
  ck_plan *p = NULL;
  float f[6 * 4 * 9], in[4 * 25], a[6 * 9], b[6 * 9];
  for (int i = 0; i < 6 * 4 * 9; i++) f[i] = (float)((i * 7) % 11) - 5.0f;
  for (int i = 0; i < 4 * 25; i++) in[i] = (float)((i * 5) % 13) * 0.25f;
  cr_assert_eq(ck_conv_plan_create(&d, f, NULL, NULL, &p), CK_OK, "%s", ck_last_error());
  cr_expect_neq(ck_plan_algo(p), CK_ALGO_AUTO);
  void *ws = malloc(ck_plan_workspace_size(p) + 1);
  cr_assert_eq(ck_conv_execute(p, in, a, NULL), CK_OK);
  cr_assert_eq(ck_conv_execute(p, in, b, ws), CK_OK);
  cr_expect_arr_eq(a, b, sizeof a);
  free(ws);
  ck_plan_destroy(p);
}
