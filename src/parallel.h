/*
 * A work-claiming parallel for loop whose caller waits only for work another thread has taken.
 *
 * Why not an OpenMP region: the end of a parallel region is a barrier that waits for every
 * member of the team, including one the OS has not run yet. When another process keeps a core
 * busy, a 2-thread call then waits a scheduler slice (milliseconds) for a worker that the caller
 * could have replaced by doing every unit itself (oneDNN's 2-thread mobilenetv1_dw_112 went from
 * 0.056 ms to 8 ms that way, issue 5). libgomp and libomp have no way to leave a region without
 * that barrier (`nowait` only applies to worksharing constructs inside it).
 *
 * Here the caller publishes the job to a small pool of its own threads and claims units itself
 * with the others; once every unit is claimed it waits only for the units that another thread
 * claimed and has not finished. A worker that wakes late finds nothing left and does nothing,
 * and a worker that wakes after the call has returned does not touch it at all.
 *
 * Contract of ck_parallel_for(threads, units, fn, ctx):
 *  - fn(ctx, u) is called exactly once for every u < units, by the calling thread or by one of
 *    at most threads - 1 pool threads, concurrently and in no fixed order; the call returns once
 *    all have returned, and everything they wrote is visible to the caller.
 *  - Which thread runs a unit never changes what the unit computes, so a caller whose units are
 *    fixed by the work alone (each output written by one unit) gets the same bits for any thread
 *    count.
 *  - Units are dealt in min(threads, units, 64) contiguous ranges, each with its own claim
 *    counter; participant t takes the units of range t in order first, then claims what is left
 *    of the others. So from one call to the next a thread tends to work on the same part of the
 *    data (in its own cache), and a thread slowed by another process loses its range's tail.
 *  - Serial in the calling thread when threads <= 1 or units <= 1, when called from inside an
 *    OpenMP region that could not nest another one (the serial team OpenMP would have given),
 *    and when every pool is in use by concurrent callers.
 *  - Pool threads run with the caller's floating-point control (rounding, exception masks,
 *    FTZ/DAZ), taken at each call, as LLVM libomp does at each fork.
 *  - What it gives up: when every core is taken by other processes, a pool thread often gets its
 *    core back only after the caller has done every unit, and the call takes the 1-thread time
 *    (measured on the shared 2-core machine at load 5-15: 14 units of 5.7 us, median of 3000
 *    calls 77-89 us, the serial time; the same loop as an OpenMP region: 43-49 us in most runs,
 *    8-16 ms in the runs where its worker was off its core). It never waits for a thread that has
 *    not started.
 *  - Never allocates, prints or fails. The pool's threads are created on first use (a pool is
 *    static; creating a thread is libc's allocation of its stack), a thread that cannot be created
 *    leaves fewer participants. Idle pool threads spin for CK_POOL_SPIN_NS (so layer after layer
 *    finds them awake), then sleep on a condition variable, so they take no CPU from another
 *    process. They are joined when the library is unloaded or the process exits; a forked child
 *    forgets them (they do not exist there) and starts new ones when needed.
 */
#ifndef CK_PARALLEL_H
#define CK_PARALLEL_H

#include <stddef.h>

/* The largest thread count a plan may ask for. */
#define CK_MAX_THREADS 1024

typedef void (*ck_parallel_fn)(void *ctx, size_t unit);

void ck_parallel_for(int threads, size_t units, ck_parallel_fn fn, void *ctx);

#endif
