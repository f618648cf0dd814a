/* The planner: which algorithm AUTO runs for a problem.
 *
 * Two ways, both limited to algorithms that are built and fit the workspace limit:
 *  - shape heuristics (ck_planner_rank): the built algorithms in predicted order, fastest first,
 *    the reference last. Plan creation sets them up in that order and keeps the first that fits.
 *  - measurement (CK_PLAN_MEASURE, ck_planner_measure): every candidate is set up and timed a
 *    few times on scratch input with the plan's own packed filter and threads, within a time
 *    budget, and the fastest is kept. */
#ifndef CK_PLANNER_H
#define CK_PLANNER_H

#include "conv/conv.h"

/* Room for every ck_algo but AUTO. */
#define CK_PLANNER_MAX_CANDIDATES 6

/* Writes the built algorithms for problem pb into order[], predicted fastest first, the
 * reference last; returns their number (at least 1: the reference is always built).
 * *contenders (1 <= *contenders <= the count) is how many of the first are worth timing: the
 * rest are predicted several times slower and are timed by CK_PLAN_MEASURE only when none of the
 * contenders fits the workspace limit. */
int ck_planner_rank(const ck_conv_problem *pb, const ck_kernels *kern, int threads,
                    ck_algo order[CK_PLANNER_MAX_CANDIDATES], int *contenders);

/* Times the candidates order[0..contenders) (built, in ck_planner_rank's order) on ctx's
 * problem, kernels and threads, skipping those whose workspace exceeds limit (0: none); when
 * none of them fits, takes the first of order[contenders..n) that fits, untimed beyond one run
 * (the reference comes last, so it runs only when nothing else fits). On CK_OK, ctx->state and
 * ctx->workspace_size are the winner's (every other candidate's state is destroyed), *algo its
 * id. Fails with CK_ERROR_OUT_OF_MEMORY when the scratch tensors cannot be allocated, or with the
 * last candidate's error. */
ck_status ck_planner_measure(ck_conv_ctx *ctx, const ck_conv_weights *w, size_t limit,
                             const ck_algo *order, int n, int contenders, ck_algo *algo);

#endif
