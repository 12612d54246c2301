/*
 * store_int.h: the store's insides: struct cs_store, its lock order and
 * the numbered invariants every module of the engine relies on. Each
 * module's private interface is in its own header beside its code (see
 * README.md for the modules in dependency order); this one only gathers
 * the types the struct is made of. Nothing outside engine/ includes this,
 * except tests and benchmarks that link csengine_internal.
 *
 * Locks, always taken in this order:
 *   wmu    the writer: the queue of accepted writes, the overlay of pending
 *          changes, id and sequence assignment, the log's tail position,
 *          the failed state.
 *   ilock  (rwlock) what readers see: the slot table, the inverted
 *          indexes, the segment maps. The commit thread takes it for writing
 *          to apply durable records; readers share it.
 *   imu    the idempotency table: a leaf, taken under any of the others
 *          and never holding one.
 *   watchmu the commit watchers: a leaf, held by the commit thread while
 *          it calls them (so removing one waits for its call to end).
 *   mmu    manifest rewrites (segment roll, snapshot). One exception
 *          to the order: a roll (commit.c) reads next_id under wmu while
 *          it holds mmu; this is safe because the only one holding wmu
 *          that waits for mmu is online compaction's switch (online.c),
 *          which runs on the commit thread, the thread that rolls.
 *
 * Invariants:
 *   1. Slots are given in creation order, so slot order is id order within
 *      each account (and within each run of the table: pindex.h; a store
 *      that never imported an account of a shard numbered lower has one).
 *   2. A record becomes visible (applied under ilock) only after it is
 *      durable (or written, under CS_DURABILITY_NONE), and before its
 *      completion callback runs.
 *   3. The overlay holds exactly the accepted writes not yet applied; a
 *      validation sees the overlay first, then the applied state.
 *   4. Once failed is set it stays set until the store is closed.
 *   5. Under CS_STANDBY_ACK_REQUIRED, invariant 2 is "durable here and on
 *      a standby": a batch is applied only once a standby acknowledged a
 *      sequence number at or past its last record (ship.c ship_wait).
 *
 * ship.mu (ship.h) is a leaf like imu: held only for the ring of shipped
 * batches and the readers' count, never while taking another lock.
 */
#ifndef CS_STORE_INT_H
#define CS_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "commit.h"
#include "cs.h"
#include "feed.h"
#include "fold.h"
#include "idem.h"
#include "index.h"
#include "log.h"
#include "overlay.h"
#include "pindex.h"
#include "record.h"
#include "ship.h"
#include "snap.h"
#include "trash.h"
#include "u64map.h"

struct cs_store {
  char *dir;
  cs_options opts;
  const cs_io *io;
  int lock_fd;

  /* ---- under ilock */
  pthread_rwlock_t ilock;
  slot_table slots;
  u64map acct_counts; /* account + 1 -> live contacts */
  ix_index *ix;
  ixq *ixq; /* during a replay in bulk mode: the index's calls (replay.c) */
  seg_map *segs; /* first_seg .. last_seg */
  uint32_t seg_count;
  uint32_t first_seg;
  uint64_t live_contacts;
  uint64_t live_bytes;
  uint64_t log_bytes;   /* all record bytes in all segments */
  uint64_t applied_seq; /* the last record applied */
  uint32_t applied_seg; /* and where the log ends after it */
  uint64_t applied_off;
  uint64_t max_id_seen;
  trash_list trash; /* the deleted contacts that can be restored */
  feed feed;        /* the change feed (feed.h) */
  /* Segments an online compaction replaced: still mapped, because the
   * strings of contacts handed out point into them (valid until cs_close),
   * unmapped by store_free. */
  seg_map *retired;
  uint32_t retired_count;
  uint64_t segs_gen; /* moved on when segs are traded (online.c) */

  /* ---- under wmu */
  pthread_mutex_t wmu;
  pthread_cond_t wcv; /* wakes the commit thread */
  pthread_cond_t fcv; /* wakes flush waiters */
  /* Three queues: wq takes accepted writes while the commit thread writes
   * and syncs another and the apply thread applies the third (applying,
   * NULL when none); they trade places at every batch (commit.c). The
   * arrays stay owned by the store, never by a local of a thread, so a
   * leak checker that stops a thread mid-trade still sees them (struct
   * copies travel in vector registers, which LeakSanitizer does not
   * scan). */
  wqueue queues[3];
  wqueue *wq;
  wqueue *applying;
  pthread_cond_t acv; /* wakes the apply thread */
  uint64_t next_seq;
  uint64_t next_id;
  uint32_t tail_seg; /* where the next accepted record goes */
  uint64_t tail_off;
  uint64_t sync_req_seq; /* cs_flush wants everything up to here synced */
  uint64_t written_seq;
  uint64_t synced_seq;
  int failed; /* written by store_fail (commit.c) alone */
  char failed_msg[sizeof(((cs_error *)0)->msg)];
  bool closing;
  ov_table ov;  /* the overlay of pending changes */
  rec_buf rbuf; /* the record being encoded */
  fold_buf fb_key, fb_case, fb_case2;
  /* In a bulk load: the case-folded emails created during it (hash of
   * account and email -> id). The index's bulk mode defers the postings
   * of keys that already exist, so its lookups may miss contacts of the
   * load itself; this map does not. Also under ilock for bulk itself. */
  bool bulk;
  u64map bulk_emails;
  /* A job to run on the commit thread between two batches, with wmu held
   * (commit_run_between); between_done once it ran. */
  void (*between_fn)(cs_store *s, void *ctx);
  void *between_ctx;
  bool between_done;
  msgpack_zone wzone; /* decoding under wmu */

  /* ---- under imu (a leaf lock: see idem.h) */
  pthread_mutex_t imu;
  idem_table idem;

  /* ---- commit thread only (and open, before it starts); czone: the
   * apply thread's, which applies while the commit thread waits for it
   * (between batches, at a roll), or nobody's */
  msgpack_zone czone;
  pthread_t committer;
  bool committer_started;
  pthread_t applier;
  bool applier_started;
  bool applier_stop; /* under wmu: the commit thread has ended */
  int active_fd;     /* the last segment, open for appending */
  uint32_t active_seg;
  bool active_dirty; /* written since its last sync */
  /* Where the active segment's bytes end, and how many of them are known
   * durable (0: not known, as at open): a batch written at the durable end
   * has its first record marked synced (record.h). */
  uint64_t active_written;
  uint64_t active_durable;
  uint64_t open_seq; /* the last record when the store was opened */

  /* ---- under watchmu (a leaf) */
  pthread_mutex_t watchmu;
  struct {
    cs_watch_fn fn;
    void *ctx;
  } watchers[CS_WATCHERS_MAX];
  uint32_t watcher_count;

  /* ---- under mmu */
  pthread_mutex_t mmu;
  uint32_t last_seg;
  char *snapshot_name; /* file name in dir, or NULL */
  uint64_t snapshot_seq;
  uint64_t snapshot_log_bytes; /* log_bytes when it was taken */
  int64_t snapshot_time_ms;    /* for cs_stats: when it was written */

  /* ---- set once when made (or when its manifest is read) */
  bool seg_tmp; /* its segments are named "%08u.seg.tmp" (log.h) */
  /* Its shard (cs_options.shard): every manifest it writes names it, and
   * it gives only ids of that shard (write.c, import.c, load.c). */
  uint32_t shard;

  /* Replication (ship.h): its own leaf lock, and fields under wmu. */
  ship_state ship;

  /* An online compaction is running (atomic: online.c). */
  int compacting;

  /* counters (atomic) */
  uint64_t commits;
  uint64_t fsyncs;
};

/* A store with nothing opened, locked or mapped yet: options defaulted,
 * locks and buffers made. NULL when out of memory. store_free frees a
 * store in any state, closing and unmapping what it holds. (store.c) */
cs_store *store_new(const char *dir, const cs_options *opts);
void store_free(cs_store *s);

/* The store's clock (cs_options.now_ms, or the real one), in Unix ms.
 * Inline, so that every module may ask without calling store.c. */
int64_t cs_now_ms(void); /* err.c */
static inline int64_t store_now(const cs_store *s) {
  return s->opts.now_ms ? s->opts.now_ms(s->opts.now_ctx) : cs_now_ms();
}

/* Is the trash entry of a contact deleted at deleted_ms still inside the
 * trash window at now? */
static inline bool store_in_trash_window(const cs_store *s, int64_t deleted_ms,
                                         int64_t now) {
  return deleted_ms > now - s->opts.trash_ms;
}

#endif
