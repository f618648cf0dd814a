/* Waiting for the other threads of the bench process to go idle.
 *
 * Every library times its runs with its own thread pool, and a pool keeps its workers spinning
 * for a while after a call returns so that the next call starts fast: libgomp (convkit, oneDNN)
 * for a fraction of a millisecond, XNNPACK's pthreadpool and OpenBLAS for tens of milliseconds.
 * On a 2-core machine such a spinning worker takes the core that the next library's second
 * thread needs, and that library's 2-thread time comes out up to 2.5x too slow (seen: convkit
 * on vgg16_conv5_2 9.6 ms right after XNNPACK, 3.9 ms otherwise). So each candidate's turn
 * starts only once no other thread of the process is running, as Linux's /proc tells; without
 * /proc it does not wait, and a pool that never sleeps (OMP_WAIT_POLICY=active) costs the bounded
 * wait of the caller's max_seconds. */
#define _GNU_SOURCE /* syscall(SYS_gettid) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* Threads of this process other than the caller in state R (running or runnable); -1 when
 * /proc cannot tell. */
static int other_running_threads(void) {
  DIR *dir = opendir("/proc/self/task");
  if (dir == NULL) return -1;
  const long self = (long)syscall(SYS_gettid);
  int running = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    char *end;
    const long tid = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || tid == self) continue;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue; /* the thread has just exited */
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name may contain spaces and parentheses */
    if (paren != NULL && paren[1] == ' ' && paren[2] == 'R') running++;
  }
  closedir(dir);
  return running;
}

void ckb_settle_threads(double max_seconds) {
  const double start = ckb_now();
  const struct timespec nap = {0, 200 * 1000}; /* 0.2 ms */
  while (ckb_now() - start < max_seconds) {
    const int n = other_running_threads();
    if (n <= 0) return;
    nanosleep(&nap, NULL);
  }
}
