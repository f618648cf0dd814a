/* Every algorithm against the reference on the random descriptor generator, on every ISA this
 * machine runs, plus thread-count reproducibility. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "conv/conv.h"

static void check_algo_everywhere(ck_algo algo) {
  ck_isa isas[4];
  int nisa = ckt_available_isas(isas, 4);
  char msg[1024];
  for (int i = 0; i < CKT_RANDOM_CASES; i++) {
    ck_conv_desc d;
    ckt_random_desc(i, &d);
    for (int j = 0; j < nisa; j++) {
      /* Alternate 1 and 2 threads across cases: both paths see every kind of shape. */
      int threads = 1 + (i + j) % 2;
      int rc = ckt_check_conv(&d, algo, isas[j], threads, msg, sizeof msg);
      cr_assert_eq(rc, 0, "case %d: %s", i, msg);
    }
  }
}

Test(conv, reference_on_every_isa) {
  check_algo_everywhere(CK_ALGO_REFERENCE);
}
Test(conv, im2col_matches_reference, .timeout = 600) {
  check_algo_everywhere(CK_ALGO_IM2COL);
}
Test(conv, kn2row_matches_reference, .timeout = 600) {
  check_algo_everywhere(CK_ALGO_KN2ROW);
}
Test(conv, kn2row_aa_matches_reference, .timeout = 600) {
  check_algo_everywhere(CK_ALGO_KN2ROW_AA);
}
Test(conv, mec_matches_reference, .timeout = 600) {
  check_algo_everywhere(CK_ALGO_MEC);
}
Test(conv, indirect_matches_reference, .timeout = 600) {
  check_algo_everywhere(CK_ALGO_INDIRECT);
}

/* Results are bitwise identical for any thread count. */
Test(conv, same_bits_for_1_2_and_3_threads, .timeout = 600) {
  static const ck_algo algos[] = {CK_ALGO_REFERENCE, CK_ALGO_IM2COL, CK_ALGO_KN2ROW,
                                  CK_ALGO_KN2ROW_AA, CK_ALGO_MEC,    CK_ALGO_INDIRECT};
  for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
    if (ck_algo_lookup(algos[a]) == NULL) continue;
    for (int i = 0; i < CKT_RANDOM_CASES; i += 7) {
      ck_conv_desc d;
      ckt_random_desc(i, &d);
      int oh, ow;
      cr_assert_eq(ck_conv_output_size(&d, &oh, &ow), CK_OK);
      size_t nin = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
      size_t nout = (size_t)d.batch * d.out_channels * oh * ow;
      size_t nf =
          (size_t)d.out_channels * (d.in_channels / d.groups) * d.kernel_height * d.kernel_width;
      float *in = malloc(nin * 4), *f = malloc(nf * 4), *o1 = malloc(nout * 4);
      float *o2 = malloc(nout * 4);
      uint64_t s = (uint64_t)i + 99;
      ckt_fill(in, nin, &s);
      ckt_fill(f, nf, &s);
      for (int t = 2; t <= 3; t++) {
        ck_plan_options o;
        ck_plan_options_init(&o);
        o.algo = algos[a];
        ck_plan *p1 = NULL, *pt = NULL;
        o.threads = 1;
        cr_assert_eq(ck_conv_plan_create(&d, f, NULL, &o, &p1), CK_OK, "%s", ck_last_error());
        o.threads = t;
        cr_assert_eq(ck_conv_plan_create(&d, f, NULL, &o, &pt), CK_OK, "%s", ck_last_error());
        cr_assert_eq(ck_conv_execute(p1, in, o1, NULL), CK_OK);
        cr_assert_eq(ck_conv_execute(pt, in, o2, NULL), CK_OK);
        cr_assert(memcmp(o1, o2, nout * 4) == 0, "%s case %d: 1 and %d threads differ",
                  ck_algo_name(algos[a]), i, t);
        ck_plan_destroy(p1);
        ck_plan_destroy(pt);
      }
      free(in), free(f), free(o1), free(o2);
    }
  }
}
