/* Internal helpers shared by every layer: error reporting, overflow-checked sizes, aligned memory.
 */
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "convkit.h"

/* Records the sentence for ck_last_error() on this thread and returns status (so a failing path
 * reads `return ck_fail(CK_ERROR_..., "x (%d) must ...", x);`). */
ck_status ck_fail(ck_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Clears the thread's error sentence (called at the start of every public entry point). */
void ck_clear_error(void);

/* Overflow-checked size arithmetic: return 0 and leave *r unspecified on overflow. */
static inline int ck_mul_size(size_t a, size_t b, size_t *r) {
  return !__builtin_mul_overflow(a, b, r);
}
static inline int ck_add_size(size_t a, size_t b, size_t *r) {
  return !__builtin_add_overflow(a, b, r);
}

static inline size_t ck_round_up(size_t x, size_t q) {
  return (x + q - 1) / q * q;
}
static inline size_t ck_div_up(size_t x, size_t q) {
  return (x + q - 1) / q;
}
static inline int ck_min_int(int a, int b) {
  return a < b ? a : b;
}
static inline int ck_max_int(int a, int b) {
  return a > b ? a : b;
}
static inline size_t ck_min_size(size_t a, size_t b) {
  return a < b ? a : b;
}

/* Every buffer convkit allocates or carves from a workspace is aligned to this many bytes (one
 * cache line, and the widest vector register). */
#define CK_ALIGNMENT 64

/* Aligned allocation of n bytes (n == 0 gives a valid unique pointer); NULL when out of memory. */
void *ck_aligned_alloc(size_t n);
void ck_aligned_free(void *p);

/* Carves aligned pieces out of a caller workspace. ck_ws_take returns NULL only when the sizes
 * given to ck_ws_need did not match (a bug); sizes are rounded up to CK_ALIGNMENT. */
typedef struct {
  unsigned char *next, *end;
} ck_ws_cursor;
/* Adds n bytes (rounded to the alignment) to *total; 0 on overflow. */
int ck_ws_need(size_t *total, size_t n);
/* Bytes to request for a workspace whose pieces add up to `total`: one alignment of slack because
 * caller workspaces may be unaligned. 0 on overflow. */
int ck_ws_finish(size_t *total);
void ck_ws_begin(ck_ws_cursor *c, void *ws, size_t size);
void *ck_ws_take(ck_ws_cursor *c, size_t n);

#endif
