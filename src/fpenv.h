/*
 * Flush-to-zero / denormals-are-zero for the duration of one execute (CK_PLAN_FLUSH_DENORMALS).
 *
 * Denormal operands make many CPUs take a micro-code assist per instruction (tens of times
 * slower), so a network with denormal weights or activations can run several times slower. FTZ
 * (results that would be denormal become 0) and DAZ (denormal operands read as 0) avoid that at
 * the price of IEEE gradual underflow. The bits live in a per-thread register:
 *   x86-64:  MXCSR bit 15 (FTZ) and bit 6 (DAZ); they govern SSE/AVX/AVX-512 arithmetic.
 *   aarch64: FPCR bit 24 (FZ), which flushes denormal operands and results alike.
 * Other targets have no flush support: plan creation refuses the flag there.
 *
 * Mechanism. Each register is per thread and OpenMP worker threads are separate threads, so
 * setting it on the calling thread alone would leave the workers computing with denormals.
 * ck_fpenv_flush_begin(threads) therefore opens a parallel region of `threads` threads (the
 * plan's thread count, the largest team an algorithm may use) in which every member saves its
 * own FTZ/DAZ bits in thread-local storage and sets them; the algorithm then runs its own
 * parallel regions; ck_fpenv_flush_end(threads) opens a region of the same size in which every
 * member that saved puts back exactly its own two bits. Only those bits change: the rounding
 * mode, exception masks and the sticky exception flags the computation raised are left as they
 * are, as on the default path. Algorithms need not know any of this.
 *
 * Why the workers of the algorithm are the flushed ones: the OpenMP runtime runs consecutive
 * teams started by one thread on the same pool threads (libgomp's per-thread pool; LLVM libomp's
 * hot teams) while OMP_DYNAMIC is false, their default. A team smaller than the pool makes
 * libgomp end the surplus threads, and a later larger team creates new ones; a new thread
 * inherits the control register of the thread that creates it (clone copies the FPU state), and
 * inside the window that is the flushing calling thread, so new workers flush too. In
 * ck_fpenv_flush_end such a thread has saved nothing; it gets the calling thread's bits from
 * before begin, which is what it would have inherited outside the window.
 * tests/test_denormals.c checks all of this on the runtime the library is built with: every
 * member of equal and smaller teams flushes inside the window, and every thread of the pool has
 * its own bits back afterwards.
 *
 * Limits, stated honestly. A runtime that hands a team to threads of another origin breaks the
 * rule above: LLVM libomp keeps one process-wide pool, so when two application threads execute
 * concurrently and their teams shrink and regrow, a worker may move from one caller's team to
 * another's between begin and end; OMP_DYNAMIC=true can shrink one team of the pair. Then some
 * work may run unflushed (denormals kept: IEEE-exact, only slower), and a worker may keep, or
 * lose, the flush bits afterwards. The same holds when a caller enables nested parallelism and
 * calls execute from inside its own parallel region. The default (flag not set) never touches
 * any thread's floating-point state.
 */
#ifndef CK_FPENV_H
#define CK_FPENV_H

/* Non-zero when this target can set flush-to-zero and denormals-are-zero. */
int ck_fpenv_flush_supported(void);

/* Saves and sets FTZ+DAZ in every thread of a team of `threads` (1: the calling thread only). */
void ck_fpenv_flush_begin(int threads);

/* Restores the FTZ+DAZ bits each thread of a team of `threads` saved in ck_fpenv_flush_begin. */
void ck_fpenv_flush_end(int threads);

#endif
