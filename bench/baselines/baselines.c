/* The registry of convolution baselines compiled into convkit-bench. */
#include <string.h>

#include "baselines.h"

#ifdef CKB_HAVE_OPENBLAS
extern const ckb_baseline ckb_baseline_im2col_openblas;
#endif
#ifdef CKB_HAVE_ONEDNN
extern const ckb_baseline ckb_baseline_onednn;
#endif
#ifdef CKB_HAVE_XNNPACK
extern const ckb_baseline ckb_baseline_xnnpack;
#endif

static const ckb_baseline *const all[] = {
#ifdef CKB_HAVE_ONEDNN
    &ckb_baseline_onednn,
#endif
#ifdef CKB_HAVE_XNNPACK
    &ckb_baseline_xnnpack,
#endif
#ifdef CKB_HAVE_OPENBLAS
    &ckb_baseline_im2col_openblas,
#endif
    NULL};

const ckb_baseline *const *ckb_baselines(int *n) {
  *n = (int)(sizeof all / sizeof all[0]) - 1;
  return all;
}

const ckb_baseline *ckb_baseline_find(const char *name) {
  if (strncmp(name, "baseline:", 9) == 0) name += 9;
  for (int i = 0; all[i] != NULL; i++)
    if (strcmp(all[i]->name, name) == 0) return all[i];
  return NULL;
}
