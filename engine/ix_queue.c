/*
 * ix_queue.c: a replay's index work on threads of its own.
 *
 * A replay in bulk mode spends about half its time in the inverted index
 * (folding each value, hashing its keys, staging their postings) and the
 * other half around it (walking and checking the log, decoding records,
 * the slot table, the trash and the change feed). The two halves share
 * nothing but the order of the calls, so the replay's thread hands the
 * index calls to index threads here, which make them in the same order,
 * while the replay goes on with the next records. With two processors or
 * more there are IX_PARTS index threads, each making every call on its
 * part of the index (index.h: the parts share no dictionary), so the
 * index's half is itself halved.
 *
 * The calls travel in blocks of IXQ_BLOCK_OPS, IXQ_BLOCKS of them in a
 * ring: the replay fills one while the index threads empty others, and
 * they meet under the mutex only once a block; a block is free again once
 * every index thread is past it. A value's text is not copied: it points
 * into the mapped log, which stays mapped until the store closes.
 *
 * Invariants kept: each part of the index sees exactly the calls it would
 * have seen without the queue, in their order; after ixq_finish nothing
 * runs on the index threads. The first error stops them (the rest of the
 * calls are dropped: a replay that fails throws the index away) and is
 * returned by every later call, so the replay stops soon after.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index.h"

#define IXQ_BLOCK_OPS 256
#define IXQ_BLOCKS 8

typedef struct ixq_op {
  bool erase;
  uint32_t account, slot, skip;
  int64_t created_ms, updated_ms;
  cs_str field[CS_FIELD_COUNT];
} ixq_op;

typedef struct ixq_block {
  size_t n;
  ixq_op op[IXQ_BLOCK_OPS];
} ixq_block;

typedef struct ixq_worker {
  ixq *q;
  int part; /* of the index; -1: all of it */
  pthread_t thread;
  uint64_t head; /* the next block it takes */
} ixq_worker;

struct ixq {
  ix_index *ix;
  pthread_mutex_t mu;
  pthread_cond_t filled; /* the index threads wait for a block */
  pthread_cond_t freed;  /* the replay waits for room */
  /* Blocks are filled and emptied in ring order: a worker's [head, tail)
   * are full and waiting for it, tail is the one the replay fills. */
  uint64_t tail;
  bool done; /* no more blocks will come */
  atomic_int rc;
  int nworkers;
  ixq_worker w[IX_PARTS];
  ixq_block ring[IXQ_BLOCKS];
};

static void *ixq_main(void *arg) {
  ixq_worker *w = arg;
  ixq *q = w->q;
  for (;;) {
    pthread_mutex_lock(&q->mu);
    while (w->head == q->tail && !q->done)
      pthread_cond_wait(&q->filled, &q->mu);
    if (w->head == q->tail) {
      pthread_mutex_unlock(&q->mu);
      return NULL;
    }
    ixq_block *b = &q->ring[w->head % IXQ_BLOCKS];
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < b->n && !atomic_load(&q->rc); i++) {
      const ixq_op *o = &b->op[i];
      int rc = o->erase ? ix_erase_part(q->ix, w->part, o->account, o->slot,
                                        o->field, o->skip)
                        : ix_insert_part(q->ix, w->part, o->account, o->slot,
                                         o->field, o->skip, o->created_ms,
                                         o->updated_ms);
      int zero = 0;
      if (rc) atomic_compare_exchange_strong(&q->rc, &zero, rc);
    }
    pthread_mutex_lock(&q->mu);
    w->head++;
    pthread_cond_signal(&q->freed);
    pthread_mutex_unlock(&q->mu);
  }
}

/* The block the slowest index thread is at. Under mu. */
static uint64_t ixq_low(const ixq *q) {
  uint64_t low = q->w[0].head;
  for (int i = 1; i < q->nworkers; i++)
    if (q->w[i].head < low) low = q->w[i].head;
  return low;
}

int ixq_start(ix_index *ix, ixq **out) {
  *out = NULL;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 2) return 0; /* no second processor to overlap on */
  ixq *q = calloc(1, sizeof *q);
  if (!q) return -ENOMEM;
  q->ix = ix;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->filled, NULL);
  pthread_cond_init(&q->freed, NULL);
  for (int i = 0; i < IX_PARTS; i++) {
    q->w[i] = (ixq_worker){.q = q, .part = i};
    if (pthread_create(&q->w[i].thread, NULL, ixq_main, &q->w[i]) != 0) break;
    q->nworkers++;
  }
  if (q->nworkers == 1) { /* the second did not start: one does it all */
    pthread_mutex_lock(&q->mu);
    q->w[0].part = -1; /* before any block: it is still waiting */
    pthread_mutex_unlock(&q->mu);
  }
  if (q->nworkers == 0) {
    pthread_cond_destroy(&q->freed);
    pthread_cond_destroy(&q->filled);
    pthread_mutex_destroy(&q->mu);
    free(q);
    return 0; /* the calls are made in place instead */
  }
  *out = q;
  return 0;
}

/* The next free op of the block being filled, once there is room. */
static ixq_op *ixq_next(ixq *q) {
  ixq_block *b = &q->ring[q->tail % IXQ_BLOCKS];
  if (b->n < IXQ_BLOCK_OPS) return &b->op[b->n++];
  pthread_mutex_lock(&q->mu);
  q->tail++; /* hand the full block over */
  pthread_cond_broadcast(&q->filled);
  while (q->tail - ixq_low(q) >= IXQ_BLOCKS)
    pthread_cond_wait(&q->freed, &q->mu);
  pthread_mutex_unlock(&q->mu);
  b = &q->ring[q->tail % IXQ_BLOCKS];
  b->n = 1;
  return &b->op[0];
}

/* Queues one call, or returns the error an earlier one met. */
static int ixq_push(ixq *q, bool erase, uint32_t account, uint32_t slot,
                    const cs_str field[CS_FIELD_COUNT], uint32_t skip,
                    int64_t created_ms, int64_t updated_ms) {
  int rc = atomic_load(&q->rc);
  if (rc) return rc;
  ixq_op *o = ixq_next(q);
  *o = (ixq_op){erase, account, slot, skip, created_ms, updated_ms, {{0}}};
  memcpy(o->field, field, sizeof o->field);
  return 0;
}

int ixq_insert(ixq *q, uint32_t account, uint32_t slot,
               const cs_str field[CS_FIELD_COUNT], uint32_t skip,
               int64_t created_ms, int64_t updated_ms) {
  return ixq_push(q, false, account, slot, field, skip, created_ms, updated_ms);
}

int ixq_erase(ixq *q, uint32_t account, uint32_t slot,
              const cs_str field[CS_FIELD_COUNT], uint32_t skip) {
  return ixq_push(q, true, account, slot, field, skip, 0, 0);
}

int ixq_finish(ixq *q) {
  if (!q) return 0;
  pthread_mutex_lock(&q->mu);
  if (q->ring[q->tail % IXQ_BLOCKS].n) q->tail++; /* the last, part full */
  q->done = true;
  pthread_cond_broadcast(&q->filled);
  pthread_mutex_unlock(&q->mu);
  for (int i = 0; i < q->nworkers; i++)
    pthread_join(q->w[i].thread, NULL);
  int rc = atomic_load(&q->rc);
  pthread_cond_destroy(&q->freed);
  pthread_cond_destroy(&q->filled);
  pthread_mutex_destroy(&q->mu);
  free(q);
  return rc;
}
