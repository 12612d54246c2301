/*
 * ship.h: what a primary keeps for its standbys (private to the engine):
 * the records of recent batches, as written, and the standbys'
 * acknowledgements. ship.c has the reads (cs_ship_*), follow.c the
 * standby's side.
 */
#ifndef CS_SHIP_H
#define CS_SHIP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commit.h"
#include "cs.h"

/* One batch's records, back to back, as the commit thread wrote them. */
typedef struct ship_blk {
  struct ship_blk *next;
  uint64_t prev_seq; /* the log's record before its first (0: none) */
  uint64_t last_seq;
  int64_t made_ms; /* when it became durable */
  size_t len;
  uint8_t data[];
} ship_blk;

typedef struct ship_state {
  /* A leaf lock: taken under none of the store's others while held, and
   * never held while taking one. */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a new batch, or closing */
  ship_blk *head, *tail;
  size_t bytes;
  uint64_t applied_seq; /* blocks up to here may go */
  uint64_t durable_seq; /* the last record durable here */
  uint32_t readers;
  bool closing;
  /* Under wmu (the apply thread waits on acv for them). */
  uint64_t acked_seq;
  int64_t acked_ms;
  bool down; /* required: a wait timed out; refuse writes until an ack */
  int role;  /* cs_repl_role */
} ship_state;

int ship_init(ship_state *sh);
void ship_free(ship_state *sh);

/* The commit thread, once batch b is durable (written, and synced when it
 * is synced), prev the log's last record before it: keeps a copy of its
 * bytes for the standbys and wakes their reads. 0 or -ENOMEM. */
int ship_batch(cs_store *s, const wqueue *b, uint64_t prev);

/* The apply thread: records up to seq are applied. */
void ship_applied(cs_store *s, uint64_t seq);

/* The apply thread, with wmu held, before it applies batch b: under
 * CS_STANDBY_ACK_REQUIRED, waits until a standby acknowledged the batch.
 * Returns true once it is, false when the store closes or the wait timed
 * out; on a timeout (*timed_out set, once) the store refuses writes with
 * CS_ESTANDBY_DOWN until an acknowledgement, and the caller answers the
 * batch's writes so, then calls again to wait on (the batch is applied
 * only once acknowledged: visible only once durable here and there). */
bool ship_wait(cs_store *s, const wqueue *b, int64_t deadline_ms,
               bool *timed_out);

/* At open, once replayed: the role from cs_options.standby and the fence
 * file (follow.c); a standby's open removes the fence. */
int follow_open(cs_store *s, cs_error *err);

/* Wakes every read (the store closes). */
void ship_close(cs_store *s);

#endif
