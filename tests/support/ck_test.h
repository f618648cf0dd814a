/* Shared test support: deterministic random data, the random convolution descriptor generator,
 * and the check of an algorithm against the reference with guard zones. */
#ifndef CK_TEST_H
#define CK_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "convkit.h"

/* xorshift64* stream: deterministic across platforms. */
uint64_t ckt_next(uint64_t *state);
int ckt_range(uint64_t *state, int lo, int hi);     /* uniform in [lo, hi] */
void ckt_fill(float *x, size_t n, uint64_t *state); /* uniform in [-1, 1) */

/* The number of descriptors the generator covers, and descriptor i of them: 1x1 to 11x11
 * kernels, 1xK and Kx1, stride 1-4, dilation 1-3, asymmetric pads (some larger than the kernel),
 * groups and depthwise, batch 1-3, C = 1, M = 1, a 1x1 output, odd sizes, both layouts, both
 * filter layouts, each activation. Sizes stay small enough for the reference. */
#define CKT_RANDOM_CASES 240
void ckt_random_desc(int i, ck_conv_desc *d);

/* A one-line description of a descriptor for failure messages. */
void ckt_describe(const ck_conv_desc *d, char *buf, size_t n);

/* Runs d with algorithm algo on isa with `threads` threads and compares with the reference,
 * within the rigorous float bound (K + 2) * FLT_EPSILON * sum |x * w| per output. Checks guard
 * zones around output and caller workspace, and that the caller workspace and the plan's own
 * buffer give the same bits. Returns 0 on success; otherwise writes a sentence to msg and returns
 * non-zero. A plan that is CK_ERROR_UNSUPPORTED fails too (every algorithm takes every valid
 * descriptor). */
int ckt_check_conv(const ck_conv_desc *d, ck_algo algo, ck_isa isa, int threads, char *msg,
                   size_t msg_len);

/* The ISAs this machine runs (generic first); returns their count. */
int ckt_available_isas(ck_isa *out, int max);

#endif
