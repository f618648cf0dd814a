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
 * setting it on the calling thread alone is not enough in general. ck_fpenv_flush_begin(threads)
 * saves the calling thread's FTZ/DAZ bits in thread-local storage and sets them, then opens a
 * parallel region of `threads` threads (the plan's thread count, the largest team an algorithm
 * may use) in which every other member does the same for itself; the algorithm then runs its
 * own parallel regions; ck_fpenv_flush_end(threads) opens a region of the same size in which
 * every worker that saved puts back exactly its own two bits, then restores the calling thread.
 * Only those bits change: the rounding mode, exception masks and the sticky exception flags the
 * computation raised are left as they are, as on the default path. Algorithms need not know.
 *
 * Why the algorithm's workers are the flushed ones, per runtime:
 *  - GNU libgomp keeps each thread's register as it is. Consecutive teams started by one thread
 *    run on the same pool threads while OMP_DYNAMIC is false (the default), so the workers set in
 *    begin are the algorithm's workers. A team smaller than the pool makes libgomp end the
 *    surplus threads, and a later larger team creates new ones; a new thread inherits the
 *    register of the thread that creates it (clone copies the FPU state), and inside the window
 *    that is the flushing calling thread, so new workers flush too. In end, such a thread has
 *    saved nothing and gets the calling thread's bits from before begin, which is what it would
 *    have inherited outside the window.
 *  - LLVM libomp on x86 (KMP_INHERIT_FP_CONTROL, on by default) copies the master's MXCSR into
 *    every worker at each fork and restores the master's at each join. Setting the calling
 *    thread outside any region (which begin does first) is then what makes every team flush, and
 *    restoring it is what ends the flushing; what the workers do in begin and end is overwritten
 *    at the next fork.
 * tests/test_denormals.c checks this on the runtime it is built with (the normal build uses
 * libgomp, the TSan build libomp): every member of equal and smaller teams flushes inside the
 * window, and afterwards every thread has the bits it had before.
 *
 * Limits, stated honestly. A runtime that keeps per-thread registers and hands a team to
 * threads of another origin breaks the rule above: LLVM libomp with KMP_INHERIT_FP_CONTROL=false
 * keeps one process-wide pool, so when two application threads execute concurrently and their
 * teams shrink and regrow, a worker may move from one caller's team to another's between begin
 * and end; OMP_DYNAMIC=true can shrink one team of the pair. Then some work may run unflushed
 * (denormals kept: IEEE-exact, only slower), and a worker may keep, or lose, the flush bits
 * afterwards. The same holds when a caller enables nested parallelism and
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

/* The calling thread's floating-point control: rounding mode, exception masks and the flush
 * bits (x86-64: MXCSR without its sticky exception flags; aarch64: FPCR; 0 elsewhere). The pool
 * threads of parallel.c take the caller's at each call with ck_fpenv_adopt, which changes only
 * those bits (and writes the register only when they differ), so they compute what the caller
 * would, with or without CK_PLAN_FLUSH_DENORMALS. */
unsigned long long ck_fpenv_control(void);
void ck_fpenv_adopt(unsigned long long control);

#endif
