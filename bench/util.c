#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

/* Tensors start on a 64-byte line, as frameworks allocate them (PyTorch's and ONNX Runtime's CPU
 * allocators, oneDNN's memory objects). glibc's malloc puts large blocks 16 bytes past a line,
 * and on the 512-channel depthwise layer that alone made the time of one call, convkit's and
 * oneDNN's alike, vary by up to 1.8x with where the allocation fell. */
void *ckb_tensor_alloc(size_t bytes) {
  const size_t line = 64;
  if (bytes > SIZE_MAX - line) return NULL;
  const size_t lines = bytes == 0 ? 1 : (bytes + line - 1) / line; /* aligned_alloc: a multiple */
  return aligned_alloc(line, lines * line);
}

double ckb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void ckb_time(void (*fn)(void *), void *arg, int min_reps, int max_reps, double min_seconds,
              double *median_ms, double *min_ms) {
  double *t = malloc((size_t)max_reps * sizeof(double));
  fn(arg); /* warm-up: caches, page faults, thread pool */
  int n = 0;
  double start = ckb_now();
  while (n < max_reps && (n < min_reps || ckb_now() - start < min_seconds)) {
    double t0 = ckb_now();
    fn(arg);
    t[n++] = (ckb_now() - t0) * 1e3;
  }
  qsort(t, (size_t)n, sizeof(double), cmp_double);
  *median_ms = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  *min_ms = t[0];
  free(t);
}

int ckb_parse_int_list(const char *s, int *out, int max) {
  int n = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 4096 || n == max) return -1;
    out[n++] = (int)v;
    s = end;
    if (*s == ',')
      s++;
    else if (*s)
      return -1;
  }
  return n;
}

int ckb_read_suite(const char *path, ckb_layer **out) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "convkit-bench: cannot open suite \"%s\"\n", path);
    return -1;
  }
  char line[512];
  int n = 0, cap = 0;
  ckb_layer *v = NULL;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#' || line[0] == '\n' || !strncmp(line, "name,", 5)) continue;
    ckb_layer L;
    int b, c, h, w, m, kh, kw, sh, sw, ph, pw, dh, dw, g;
    if (sscanf(line, "%63[^,],%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d", L.name, &b, &c, &h, &w,
               &m, &kh, &kw, &sh, &sw, &ph, &pw, &dh, &dw, &g) != 15) {
      fprintf(stderr, "convkit-bench: %s: cannot parse line: %s", path, line);
      fclose(f);
      free(v);
      return -1;
    }
    ck_conv_desc_init(&L.d);
    L.d.batch = b, L.d.in_channels = c, L.d.in_height = h, L.d.in_width = w;
    L.d.out_channels = m, L.d.kernel_height = kh, L.d.kernel_width = kw;
    L.d.stride_height = sh, L.d.stride_width = sw;
    L.d.pad_top = L.d.pad_bottom = ph;
    L.d.pad_left = L.d.pad_right = pw;
    L.d.dilation_height = dh, L.d.dilation_width = dw, L.d.groups = g;
    if (n == cap) {
      cap = cap ? 2 * cap : 32;
      v = realloc(v, (size_t)cap * sizeof *v);
    }
    v[n++] = L;
  }
  fclose(f);
  *out = v;
  return n;
}
