/*
 * commit.h: the write queue and the commit thread (private to the
 * engine).
 */
#ifndef CS_COMMIT_H
#define CS_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs.h"
#include "record.h"

/* One accepted write: where its record goes and whom to tell. */
typedef struct wop {
  uint8_t type;
  uint64_t seq;
  uint64_t id;
  uint32_t account;
  uint32_t seg;
  uint32_t off;
  uint32_t len;
  cs_done_fn done;
  void *ctx;
  struct idem_ent *idem; /* the idempotency entry it carries, or NULL */
  /* A primary's record taken by a standby (follow.c): its idempotency
   * entry is loaded when applied, as a replay loads it. */
  bool shipped;
} wop;

/* The queued records bound for one segment, back to back from off: one
 * pwrite. */
typedef struct wchunk {
  uint32_t seg;
  uint32_t off;
  rec_buf buf;
} wchunk;

typedef struct wqueue {
  wop *ops;
  size_t count;
  size_t cap;
  wchunk *chunks;
  size_t chunk_count;
  size_t chunk_cap;
  /* Set by the commit thread for the apply thread: whether the batch was
   * synced, and its failure (0: written, and synced if so), described in
   * what. */
  bool synced;
  int rc;
  char what[sizeof(((cs_error *)0)->msg)];
} wqueue;

void wqueue_free(wqueue *q);

/* Queues one framed record (rec) for the commit thread, at the log's tail
 * (rolling to the next segment number when it would pass the limit), and
 * wakes the thread; idem, when not NULL, is the PENDING idempotency entry
 * the record carries, made DONE once it is applied. 0 or -ENOMEM. Caller
 * holds wmu. */
int commit_enqueue(cs_store *s, uint8_t type, uint64_t seq, uint64_t id,
                   uint32_t account, const rec_buf *rec, cs_done_fn done,
                   void *ctx, struct idem_ent *idem);

/* Makes the store refuse writes from now on (invariant 4), with rc and a
 * reason; tell: also as a notice. The first failure wins. Caller holds
 * wmu. The only writer of s->failed. */
void store_fail(cs_store *s, int rc, bool tell, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Runs fn(s, ctx) on the commit thread between two batches (none in
 * flight: everything taken from the queue is written, applied and
 * answered), with wmu held, so that nothing is accepted meanwhile; returns
 * once it ran. Accepted records may be queued, placed at the log's tail:
 * fn may move the tail (the active segment, tail_seg, tail_off) if it
 * calls commit_requeue_prepare first and commit_requeue after. Not from
 * the commit thread, nor once cs_close began. */
void commit_run_between(cs_store *s, void (*fn)(cs_store *s, void *ctx),
                        void *ctx);

/* Makes room for commit_requeue, so that it cannot fail: 0 or -ENOMEM.
 * On the commit thread, with wmu held. */
int commit_requeue_prepare(cs_store *s);

/* Places the queued records again at a new tail (seg, off), in their
 * order, their sequence numbers, callbacks and entries kept. */
void commit_requeue(cs_store *s, uint32_t seg, uint64_t off);

/* At close, once the thread has stopped: syncs the active segment and, if
 * this open wrote to the log, appends a meta record marked synced and
 * syncs it too, so that the next open tells damage anywhere before it
 * from a power cut's hole (record.h). 0 or the failure, in err. */
int commit_seal(cs_store *s, cs_error *err);

/* Starts the commit thread (at open, once the log is replayed). */
int commit_start(cs_store *s, cs_error *err);

/* Tells the thread to finish what is queued and waits for it to end. */
void commit_stop(cs_store *s);

#endif
