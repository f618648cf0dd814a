/* Regression tests from fuzzing: every input in fuzz/regressions (inputs that once broke a
 * property: each file is named after what it found) and in the committed seed corpus
 * fuzz/corpus is replayed through the fuzz target's own checks (fuzz/fuzz_conv.c: validation
 * agrees with plan creation, valid requests are planned, results match the reference with guard
 * zones), in the normal gcc build and under ASan+UBSan, without libFuzzer. A fuzz finding is
 * turned into a regression test by copying its crash-<sha1> file into fuzz/regressions under a
 * name that says what it found. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A violated property fails the test (fuzz_conv.c prints what and on which descriptor). */
static const char *current_input = "";
#define CK_FUZZ_FAIL() cr_assert(0, "a fuzz property was violated on %s (see above)", current_input)
#include "../fuzz/fuzz_conv.c"

/* fuzz/<sub> of this source tree (CONVKIT_FUZZ_DIR overrides the fuzz/ directory). */
static void fuzz_dir(const char *sub, char *out, size_t n) {
  const char *env = getenv("CONVKIT_FUZZ_DIR");
  if (env != NULL && env[0] != '\0') {
    snprintf(out, n, "%s/%s", env, sub);
    return;
  }
  const char *file = __FILE__; /* .../tests/test_fuzz_regressions.c, absolute under CMake */
  const char *slash = strrchr(file, '/');
  int len = slash == NULL ? 0 : (int)(slash - file);
  snprintf(out, n, "%.*s%s../fuzz/%s", len, file, len ? "/" : "", sub);
}

/* Replays every regular file of fuzz/<sub>; returns how many. */
static int replay_dir(const char *sub) {
  char dir[4096];
  fuzz_dir(sub, dir, sizeof dir);
  DIR *dp = opendir(dir);
  cr_assert_not_null(dp, "cannot open %s", dir);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(dp)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    uint8_t *data = malloc((size_t)st.st_size + 1);
    size_t n = fread(data, 1, (size_t)st.st_size, f);
    fclose(f);
    cr_assert_eq(n, (size_t)st.st_size, "short read of %s", path);
    current_input = path;
    cr_assert_eq(LLVMFuzzerTestOneInput(data, n), 0, "%s", path);
    free(data);
    count++;
  }
  closedir(dp);
  return count;
}

Test(fuzz_regressions, every_past_finding_passes, .timeout = 600) {
  replay_dir("regressions");
}

Test(fuzz_regressions, seed_corpus_replays_clean, .timeout = 600) {
  cr_assert_gt(replay_dir("corpus"), 0, "the seed corpus fuzz/corpus is empty or missing");
}
