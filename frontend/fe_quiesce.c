/*
 * fe_quiesce.c: host->quiesce, the wait for the requests past their key
 * check.
 *
 * A change to the keyring is in force for every key check that begins
 * after it; a request already past its check when the change came runs
 * on. host->quiesce waits for those. Each worker counts the requests it
 * takes to the key check (keyed_in, before the check) and those done
 * (keyed_out, after the handler returned). The check and the change are
 * ordered by the ring's lock: a check that did not see the change held
 * the lock before the change did, so its keyed_in was counted before the
 * caller reads keyed_in here, and waiting until each worker's keyed_out
 * reaches that count waits for every such request. The caller's own
 * worker is skipped: it is running the caller's request, and nothing
 * else. A request counted in after the change saw it; the wait needs no
 * lock and costs the workers two atomic adds a request.
 */
#include <stdatomic.h>
#include <time.h>

#include "fe_limits.h"
#include "fe_server_int.h"

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fe_host_quiesce(void *ctx) {
  fe_server *s = ctx;
  int64_t deadline = mono_ms() + FE_QUIESCE_MS_MAX;
  pthread_t self = pthread_self();
  for (size_t i = 0; i < s->worker_count; i++) {
    fe_worker *w = &s->workers[i];
    if (pthread_equal(w->tid, self)) continue;
    uint64_t in = atomic_load(&w->keyed_in);
    while (atomic_load_explicit(&w->keyed_out, memory_order_acquire) < in) {
      if (mono_ms() > deadline) return -1;
      struct timespec pause = {0, 100 * 1000}; /* 0.1 ms */
      nanosleep(&pause, NULL);
    }
  }
  return 0;
}
