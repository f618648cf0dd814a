#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local char error_sentence[512];

ck_status ck_fail(ck_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_sentence, sizeof error_sentence, fmt, ap);
  va_end(ap);
  return status;
}

void ck_clear_error(void) {
  error_sentence[0] = '\0';
}

const char *ck_last_error(void) {
  return error_sentence;
}

const char *ck_status_string(ck_status s) {
  switch (s) {
  case CK_OK:
    return "CK_OK";
  case CK_ERROR_INVALID_ARGUMENT:
    return "CK_ERROR_INVALID_ARGUMENT";
  case CK_ERROR_UNSUPPORTED:
    return "CK_ERROR_UNSUPPORTED";
  case CK_ERROR_OUT_OF_MEMORY:
    return "CK_ERROR_OUT_OF_MEMORY";
  case CK_ERROR_WORKSPACE_LIMIT:
    return "CK_ERROR_WORKSPACE_LIMIT";
  }
  return "CK_ERROR_UNKNOWN_STATUS";
}

void *ck_aligned_alloc(size_t n) {
  size_t rounded = ck_round_up(n ? n : 1, CK_ALIGNMENT);
  if (rounded < n) return NULL;
  return aligned_alloc(CK_ALIGNMENT, rounded);
}

void ck_aligned_free(void *p) {
  free(p);
}

int ck_ws_need(size_t *total, size_t n) {
  size_t r = ck_round_up(n, CK_ALIGNMENT);
  if (r < n) return 0;
  return ck_add_size(*total, r, total);
}

int ck_ws_finish(size_t *total) {
  if (*total == 0) return 1;
  return ck_add_size(*total, CK_ALIGNMENT, total);
}

void ck_ws_begin(ck_ws_cursor *c, void *ws, size_t size) {
  uintptr_t p = (uintptr_t)ws;
  uintptr_t aligned = (p + CK_ALIGNMENT - 1) & ~(uintptr_t)(CK_ALIGNMENT - 1);
  c->next = (unsigned char *)aligned;
  c->end = (unsigned char *)ws + size;
  if (ws == NULL || aligned > p + size) c->next = c->end = NULL;
}

void *ck_ws_take(ck_ws_cursor *c, size_t n) {
  size_t r = ck_round_up(n, CK_ALIGNMENT);
  if (n == 0) return c->next;
  if (c->next == NULL || r < n || (size_t)(c->end - c->next) < r) return NULL;
  void *p = c->next;
  c->next += r;
  return p;
}
