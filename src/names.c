/* Names of algorithms and ISAs, and the library version. */
#include <string.h>

#include "internal.h"

#define CK_STR2(x) #x
#define CK_STR(x) CK_STR2(x)

const char *ck_version(void) {
  return CK_STR(CONVKIT_VERSION_MAJOR) "." CK_STR(CONVKIT_VERSION_MINOR) "." CK_STR(
      CONVKIT_VERSION_PATCH);
}

static const char *const algo_names[] = {"auto",      "reference", "im2col",  "kn2row",
                                         "kn2row-aa", "mec",       "indirect"};
static const char *const isa_names[] = {"auto", "generic", "avx2", "avx512", "neon"};

#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

const char *ck_algo_name(ck_algo a) {
  return (int)a >= 0 && (int)a < COUNT(algo_names) ? algo_names[a] : "unknown";
}

const char *ck_isa_name(ck_isa i) {
  return (int)i >= 0 && (int)i < COUNT(isa_names) ? isa_names[i] : "unknown";
}

static int find_name(const char *s, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

ck_status ck_algo_from_name(const char *s, ck_algo *a) {
  ck_clear_error();
  if (s == NULL || a == NULL)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "%s is NULL", s == NULL ? "name" : "algo");
  int i = find_name(s, algo_names, COUNT(algo_names));
  if (i < 0)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "algorithm name (\"%.64s\") is not one of auto, reference, im2col, kn2row, "
                   "kn2row-aa, mec, indirect",
                   s);
  *a = (ck_algo)i;
  return CK_OK;
}

ck_status ck_isa_from_name(const char *s, ck_isa *isa) {
  ck_clear_error();
  if (s == NULL || isa == NULL)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT, "%s is NULL", s == NULL ? "name" : "isa");
  int i = find_name(s, isa_names, COUNT(isa_names));
  if (i < 0)
    return ck_fail(CK_ERROR_INVALID_ARGUMENT,
                   "ISA name (\"%.64s\") is not one of auto, generic, avx2, avx512, neon", s);
  *isa = (ck_isa)i;
  return CK_OK;
}
