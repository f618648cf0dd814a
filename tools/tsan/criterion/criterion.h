/*
 * A minimal stand-in for <criterion/criterion.h>, used only by the ThreadSanitizer build
 * (tools/tsan/CMakeLists.txt). Criterion itself cannot start under TSan: BoxFort maps its
 * inter-process arena with MAP_FIXED at random addresses in the range TSan reserves for shadow
 * memory and gives up ("Could not initialize inheritable arena", Snaipe/Criterion issue #274).
 *
 * It supports the subset convkit's suites use: Test(suite, name, options ignored), cr_assert*,
 * cr_expect* with an optional printf-style message. Tests run in one process, one after the
 * other (no fork, so TSan sees every thread). A failed cr_assert* ends the test with longjmp and
 * must be called on the test's own thread (convkit's tests call them there only).
 */
#ifndef CKSHIM_CRITERION_H
#define CKSHIM_CRITERION_H

#include <stddef.h>
#include <string.h>

typedef void (*ckshim_fn)(void);
void ckshim_register(const char *suite, const char *name, ckshim_fn fn);
/* Records a failed check at file:line with the expression and the optional message; fatal
 * checks end the running test. Returns nothing when ok is non-zero. */
void ckshim_check(int ok, int fatal, const char *file, int line, const char *expr, const char *fmt,
                  ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

#define Test(suite, name, ...)                                                                     \
  static void suite##_##name(void);                                                                \
  __attribute__((constructor)) static void suite##_##name##_register(void) {                       \
    ckshim_register(#suite, #name, suite##_##name);                                                \
  }                                                                                                \
  static void suite##_##name(void)

/* "" __VA_ARGS__ turns an absent message into "" and a present one into its format string. */
#define CKSHIM_CHECK(fatal, ok, expr, ...)                                                         \
  ckshim_check(!!(ok), fatal, __FILE__, __LINE__, expr, "" __VA_ARGS__)

#define cr_assert(c, ...) CKSHIM_CHECK(1, (c), #c, __VA_ARGS__)
#define cr_assert_fail(...) CKSHIM_CHECK(1, 0, "failed", __VA_ARGS__)
#define cr_expect(c, ...) CKSHIM_CHECK(0, (c), #c, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) CKSHIM_CHECK(1, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) CKSHIM_CHECK(0, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) CKSHIM_CHECK(1, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) CKSHIM_CHECK(0, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) CKSHIM_CHECK(1, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) CKSHIM_CHECK(0, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) CKSHIM_CHECK(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_null(p, ...) CKSHIM_CHECK(0, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) CKSHIM_CHECK(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) CKSHIM_CHECK(0, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                                                \
  CKSHIM_CHECK(1, strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)                                                                \
  CKSHIM_CHECK(0, strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_empty(s, ...) CKSHIM_CHECK(1, (s)[0] == '\0', #s " is empty", __VA_ARGS__)
#define cr_expect_str_empty(s, ...) CKSHIM_CHECK(0, (s)[0] == '\0', #s " is empty", __VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...)                                                             \
  CKSHIM_CHECK(1, memcmp((a), (b), (n)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_expect_arr_eq(a, b, n, ...)                                                             \
  CKSHIM_CHECK(0, memcmp((a), (b), (n)) == 0, #a " equals " #b, __VA_ARGS__)

#endif
