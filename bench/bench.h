/* convkit-bench: shared pieces of the subcommands. */
#ifndef CK_BENCH_H
#define CK_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include "convkit.h"

/* One layer of a suite CSV (the format of bench/layers.csv). */
typedef struct {
  char name[64];
  ck_conv_desc d; /* NCHW/OIHW, no activation; the bench sets the layout */
} ckb_layer;

/* Reads a suite: lines starting with '#' and the header are skipped. Returns the number of
 * layers (allocated in *out) or -1 with a message on stderr. */
int ckb_read_suite(const char *path, ckb_layer **out);

/* Wall-clock seconds, monotonic. */
/* Bytes for a tensor or workspace, on a 64-byte line; free() releases them. */
void *ckb_tensor_alloc(size_t bytes);
double ckb_now(void);

/* Times fn(arg) after one warm-up run: at least min_reps runs and until min_seconds have passed
 * (at most max_reps). Stores the median and minimum in milliseconds. */
void ckb_time(void (*fn)(void *), void *arg, int min_reps, int max_reps, double min_seconds,
              double *median_ms, double *min_ms);

/* Returns once no other thread of the process is running (another library's thread pool
 * spinning after its last call), or after max_seconds. See bench/settle.c. */
void ckb_settle_threads(double max_seconds);

/* FMA peak of an ISA for a thread count in GFLOP/s, measured once per (isa, threads) with a
 * register-only FMA loop; 0 when unknown. */
double ckb_peak_gflops(ck_isa isa, int threads);

/* Parses a comma-separated list of positive ints ("1,2,4"); returns the count or -1. */
int ckb_parse_int_list(const char *s, int *out, int max);

/* Subcommands. */
int ckb_cmd_info(int argc, char **argv);
int ckb_cmd_conv(int argc, char **argv);
int ckb_cmd_gemm(int argc, char **argv);
int ckb_cmd_peak(int argc, char **argv);

#endif
