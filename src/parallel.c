/* The work-claiming parallel for loop of parallel.h: static pools of pthreads, one caller each.
 *
 * Protocol, per pool (all shared words are C11 atomics, so ThreadSanitizer sees every edge):
 *  - gen counts published jobs. A job lives in slot[gen % 2] with stamp == gen; stamp 0 means
 *    the slot is being written. Two slots let a worker that is still leaving job g (one atomic
 *    away) hold its slot while the caller already runs job g + 1 in the other one.
 *  - A worker that sees a new gen takes a reference on that slot (refs), then checks the stamp:
 *    a different stamp means the caller has moved on, and it drops the reference untouched. The
 *    caller empties a slot's stamp, then waits for its refs to drain before rewriting it, so a
 *    worker never reads a half-written job (seq_cst on both sides: either the caller sees the
 *    reference or the worker sees the emptied stamp).
 *  - Units are claimed by fetch-add on a range's counter; every finished unit adds one to done
 *    (acq_rel: the caller's acquire load of the final count sees every unit's writes). The caller,
 *    once it finds nothing left to claim, waits for done == units: only for units in flight.
 *  - Idle workers spin on gen for CK_POOL_SPIN_NS, then sleep on `wake` after counting themselves
 *    in sleepers; the caller broadcasts only when sleepers is non-zero (seq_cst both sides, and
 *    the mutex closes the window between a worker's last check and its wait). The caller itself
 *    spins for CK_POOL_SPIN_NS for the units in flight, then sleeps on `finished`: on a machine
 *    whose other core is taken, a sleeping caller leaves its core to a preempted worker. */
#define _POSIX_C_SOURCE 200809L
#include "parallel.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "fpenv.h"
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax(void) {
  _mm_pause();
}
#elif defined(__aarch64__)
static inline void cpu_relax(void) {
  __asm__ __volatile__("yield");
}
#else
static inline void cpu_relax(void) {}
#endif

/* Pools: one per concurrent caller; a caller that finds all in use runs serially. Threads of a
 * pool are created only when a caller needs them, so unused pools cost their static memory. */
#define CK_POOLS 4
/* Ranges with their own claim counter; more participants than this share them. */
#define CK_POOL_RANGES 64
/* How long an idle thread looks for the next job before it sleeps: longer than the gap between
 * two layers of a network, far shorter than a scheduler slice (libgomp spins ~0.3 ms). */
#define CK_POOL_SPIN_NS 100000

typedef struct {
  _Alignas(64) atomic_size_t next; /* next unclaimed unit; one counter per cache line */
  size_t end;
} par_range;

typedef struct {
  _Alignas(64) atomic_uint_fast64_t stamp; /* gen of the job held, 0 while written */
  atomic_int refs;                         /* workers looking at this slot */
  ck_parallel_fn fn;
  void *ctx;
  size_t units, ranges;
  int workers; /* pool threads 1..workers take part */
  unsigned long long fp_control;
  _Alignas(64) atomic_size_t done; /* units finished */
  par_range range[CK_POOL_RANGES];
} par_slot;

typedef struct {
  atomic_int busy; /* a caller owns the pool */
  atomic_int shutdown;
  _Alignas(64) atomic_uint_fast64_t gen;
  atomic_int sleepers;       /* workers asleep or about to be, on wake */
  atomic_int caller_waiting; /* the caller asleep or about to be, on finished */
  pthread_mutex_t lock;
  pthread_cond_t wake, finished;
  int threads; /* pool threads created (owner only) */
  pthread_t thread[CK_MAX_THREADS];
  par_slot slot[2];
} par_pool;

static par_pool pools[CK_POOLS];
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;
static atomic_int pools_ready;

static void init_sync(par_pool *p) {
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->finished, NULL);
}

/* In a forked child only the forking thread exists: forget the pool threads and any state they
 * held (a lock, a reference, a sleeper count), so that the child starts new ones. */
static void after_fork_child(void) {
  for (int i = 0; i < CK_POOLS; i++) {
    par_pool *p = &pools[i];
    init_sync(p);
    p->threads = 0;
    atomic_store(&p->busy, 0);
    atomic_store(&p->sleepers, 0);
    atomic_store(&p->caller_waiting, 0);
    for (int s = 0; s < 2; s++) {
      atomic_store(&p->slot[s].stamp, 0);
      atomic_store(&p->slot[s].refs, 0);
    }
  }
}

static void init_pools(void) {
  for (int i = 0; i < CK_POOLS; i++) init_sync(&pools[i]);
  pthread_atfork(NULL, NULL, after_fork_child);
  atomic_store(&pools_ready, 1);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Takes the units of range `first` in order, then what is left of the others. */
static void participate(par_pool *p, par_slot *s, size_t first) {
  const size_t nr = s->ranges;
  for (size_t k = 0; k < nr; k++) {
    par_range *r = &s->range[(first + k) % nr];
    for (;;) {
      const size_t u = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
      if (u >= r->end) break;
      s->fn(s->ctx, u);
      if (atomic_fetch_add_explicit(&s->done, 1, memory_order_acq_rel) + 1 == s->units &&
          atomic_load(&p->caller_waiting)) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->finished);
        pthread_mutex_unlock(&p->lock);
      }
    }
  }
}

/* Waits for a job newer than `seen`; 0 when the pool shuts down. */
static uint_fast64_t wait_job(par_pool *p, uint_fast64_t seen) {
  const uint64_t t0 = now_ns();
  for (unsigned i = 1;; i++) {
    const uint_fast64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed)) return 0;
    if (g != seen) return g;
    cpu_relax();
    if (i % 64 == 0 && now_ns() - t0 > CK_POOL_SPIN_NS) break;
  }
  uint_fast64_t g;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    atomic_fetch_add(&p->sleepers, 1);
    g = atomic_load(&p->gen);
    if (g != seen || atomic_load(&p->shutdown)) break;
    pthread_cond_wait(&p->wake, &p->lock);
    atomic_fetch_sub(&p->sleepers, 1);
  }
  atomic_fetch_sub(&p->sleepers, 1);
  pthread_mutex_unlock(&p->lock);
  return atomic_load(&p->shutdown) ? 0 : g;
}

typedef struct {
  par_pool *pool;
  int index;               /* participant number, 1.. (the caller is 0) */
  uint_fast64_t start_gen; /* the last job published before the thread was created */
} worker_arg;

static worker_arg worker_args[CK_POOLS][CK_MAX_THREADS];

static void *worker_main(void *arg) {
  const worker_arg *a = arg;
  par_pool *p = a->pool;
  uint_fast64_t seen = a->start_gen;
  for (;;) {
    const uint_fast64_t g = wait_job(p, seen);
    if (g == 0) return NULL;
    seen = g;
    par_slot *s = &p->slot[g % 2];
    atomic_fetch_add(&s->refs, 1);
    if (atomic_load(&s->stamp) == g && a->index <= s->workers) {
      ck_fpenv_adopt(s->fp_control);
      participate(p, s, (size_t)a->index);
    }
    atomic_fetch_sub_explicit(&s->refs, 1, memory_order_release);
  }
}

/* Creates pool threads up to `want`; returns how many there are. Signals are blocked in them so
 * that the application's handlers run in its own threads. */
static int grow(par_pool *p, int want) {
  if (p->threads >= want) return p->threads;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  while (p->threads < want) {
    const int index = p->threads + 1;
    worker_arg *a = &worker_args[p - pools][index];
    a->pool = p;
    a->index = index;
    a->start_gen = atomic_load_explicit(&p->gen, memory_order_relaxed);
    if (pthread_create(&p->thread[index], NULL, worker_main, a) != 0) break;
    p->threads = index;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return p->threads;
}

static void run_serial(size_t units, ck_parallel_fn fn, void *ctx) {
  for (size_t u = 0; u < units; u++) fn(ctx, u);
}

void ck_parallel_for(int threads, size_t units, ck_parallel_fn fn, void *ctx) {
  const size_t want =
      threads > 1 ? ck_min_size(units, ck_min_size((size_t)threads, CK_MAX_THREADS)) : 1;
  /* Inside an OpenMP region that cannot nest, OpenMP would give a team of one. */
  if (want <= 1 || omp_get_active_level() >= omp_get_max_active_levels()) {
    run_serial(units, fn, ctx);
    return;
  }
  pthread_once(&pools_once, init_pools);
  par_pool *p = NULL;
  for (int i = 0; i < CK_POOLS && p == NULL; i++) {
    int free_ = 0;
    if (atomic_compare_exchange_strong_explicit(&pools[i].busy, &free_, 1, memory_order_acquire,
                                                memory_order_relaxed))
      p = &pools[i];
  }
  if (p == NULL) {
    run_serial(units, fn, ctx);
    return;
  }
  const int workers = atomic_load(&p->shutdown) ? 0 : grow(p, (int)want - 1);
  if (workers == 0) {
    atomic_store_explicit(&p->busy, 0, memory_order_release);
    run_serial(units, fn, ctx);
    return;
  }

  const uint_fast64_t g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
  par_slot *s = &p->slot[g % 2];
  atomic_store(&s->stamp, 0);
  /* Only a worker still leaving job g - 2 (a few instructions) can hold the slot. */
  for (unsigned i = 0; atomic_load(&s->refs) != 0; i++)
    if (i < 1000)
      cpu_relax();
    else
      sched_yield();
  s->fn = fn;
  s->ctx = ctx;
  s->units = units;
  s->workers = ck_min_int(workers, (int)want - 1);
  s->ranges = ck_min_size(ck_min_size((size_t)s->workers + 1, CK_POOL_RANGES), units);
  s->fp_control = ck_fpenv_control();
  for (size_t i = 0; i < s->ranges; i++) {
    atomic_store_explicit(&s->range[i].next, units * i / s->ranges, memory_order_relaxed);
    s->range[i].end = units * (i + 1) / s->ranges;
  }
  atomic_store_explicit(&s->done, 0, memory_order_relaxed);
  atomic_store_explicit(&s->stamp, g, memory_order_release);
  atomic_store(&p->gen, g);
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
  }

  participate(p, s, 0);

  /* Every unit is claimed; wait for those in flight in other threads. */
  const uint64_t t0 = now_ns();
  for (unsigned i = 1; atomic_load_explicit(&s->done, memory_order_acquire) != units; i++) {
    cpu_relax();
    if (i % 64 == 0 && now_ns() - t0 > CK_POOL_SPIN_NS) {
      pthread_mutex_lock(&p->lock);
      atomic_store(&p->caller_waiting, 1);
      while (atomic_load(&s->done) != units) pthread_cond_wait(&p->finished, &p->lock);
      atomic_store(&p->caller_waiting, 0);
      pthread_mutex_unlock(&p->lock);
      break;
    }
  }
  atomic_store_explicit(&p->busy, 0, memory_order_release);
}

/* Joins the pool threads when the library is unloaded or the process exits, so that none is left
 * running in unmapped code. Only threads that are idle by then (no caller is inside
 * ck_parallel_for when a process exits cleanly) are joined. */
__attribute__((destructor)) static void ck_parallel_shutdown(void) {
  if (!atomic_load(&pools_ready)) return;
  for (int i = 0; i < CK_POOLS; i++) {
    par_pool *p = &pools[i];
    int free_ = 0;
    if (!atomic_compare_exchange_strong(&p->busy, &free_, 1)) continue; /* in use: leave it */
    atomic_store(&p->shutdown, 1);
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int t = 1; t <= p->threads; t++) pthread_join(p->thread[t], NULL);
    p->threads = 0;
    atomic_store(&p->busy, 0);
  }
}
