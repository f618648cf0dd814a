/* FTZ/DAZ save, set and restore in every thread of a team; see fpenv.h for the mechanism and its
 * limits. */
#include "fpenv.h"

#include <stdint.h>

#if defined(__x86_64__) || defined(_M_X64) || (defined(__i386__) && defined(__SSE__))
#include <xmmintrin.h>
#define CK_FPENV_X86 1
#define CK_FLUSH_BITS ((uint64_t)0x8040) /* MXCSR FTZ (bit 15) | DAZ (bit 6) */
#define CK_STATUS_BITS ((uint64_t)0x3f)  /* MXCSR sticky exception flags (bits 0-5) */
static uint64_t read_control(void) {
  return _mm_getcsr();
}
static void write_control(uint64_t v) {
  _mm_setcsr((unsigned)v);
}
#elif defined(__aarch64__)
#define CK_FPENV_ARM64 1
#define CK_FLUSH_BITS ((uint64_t)1 << 24) /* FPCR FZ */
#define CK_STATUS_BITS ((uint64_t)0)      /* the flags live in FPSR */
static uint64_t read_control(void) {
  uint64_t v;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
  return v;
}
static void write_control(uint64_t v) {
  __asm__ __volatile__("msr fpcr, %0" : : "r"(v));
}
#endif

#ifdef CK_FLUSH_BITS

/* Per thread: the flush bits it had before the outermost begin, and how deep it is. A thread
 * belongs to one team at a time, so depth is 0 or 1 in practice; counting makes a repeated begin
 * harmless instead of losing the caller's bits. */
static _Thread_local struct {
  uint64_t saved;
  int depth;
} tls;

static void thread_begin(void) {
  uint64_t v = read_control();
  if (tls.depth++ == 0) tls.saved = v & CK_FLUSH_BITS;
  write_control(v | CK_FLUSH_BITS);
}

/* `inherited` is what a thread that was not in the flushing team gets: see fpenv.h. */
static void thread_end(uint64_t inherited) {
  if (tls.depth == 0) {
    write_control((read_control() & ~CK_FLUSH_BITS) | inherited);
    return;
  }
  if (--tls.depth != 0) return;
  write_control((read_control() & ~CK_FLUSH_BITS) | tls.saved);
}

int ck_fpenv_flush_supported(void) {
  return 1;
}

void ck_fpenv_flush_begin(int threads) {
  /* The calling thread first, outside any region: a runtime that copies the master's control
   * register into the team at every fork (LLVM libomp on x86) then flushes everywhere, and one
   * that does not (libgomp) gets every worker set by the region below. */
  thread_begin();
  if (threads <= 1) return;
  const void *caller = &tls;
#pragma omp parallel num_threads(threads)
  if (&tls != caller) thread_begin();
}

void ck_fpenv_flush_end(int threads) {
  /* The calling thread's own bits from before begin: what a pool thread it created meanwhile
   * would have inherited outside the flushing window. */
  const uint64_t inherited = tls.depth > 0 ? tls.saved : read_control() & CK_FLUSH_BITS;
  if (threads > 1) {
    const void *caller = &tls;
#pragma omp parallel num_threads(threads)
    if (&tls != caller) thread_end(inherited);
  }
  thread_end(inherited);
}

unsigned long long ck_fpenv_control(void) {
  return read_control() & ~CK_STATUS_BITS;
}

void ck_fpenv_adopt(unsigned long long control) {
  const uint64_t v = read_control();
  if ((v & ~CK_STATUS_BITS) != control) write_control((v & CK_STATUS_BITS) | control);
}

#else /* no flush control on this target: plan creation refuses the flag */

unsigned long long ck_fpenv_control(void) {
  return 0;
}
void ck_fpenv_adopt(unsigned long long control) {
  (void)control;
}

int ck_fpenv_flush_supported(void) {
  return 0;
}
void ck_fpenv_flush_begin(int threads) {
  (void)threads;
}
void ck_fpenv_flush_end(int threads) {
  (void)threads;
}

#endif
