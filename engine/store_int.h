/*
 * store_int.h: the store's insides, shared by store.c, snap.c and the
 * offline operations (compaction, verify). Nothing outside engine/ includes
 * this.
 *
 * Locks, always taken in this order:
 *   wmu    the writer: the queue of accepted writes, the overlay of pending
 *          changes, id and sequence assignment, the log's tail position,
 *          the failed state.
 *   ilock  (rwlock) what readers see: slots, the id map, the inverted
 *          indexes, the segment maps. The commit thread takes it for writing
 *          to apply durable records; readers share it.
 *   mmu    manifest rewrites (segment roll, snapshot).
 *
 * Invariants:
 *   1. Slots are given in creation order, so slot order is id order.
 *   2. A record becomes visible (applied under ilock) only after it is
 *      durable (or written, under CS_DURABILITY_NONE), and before its
 *      completion callback runs.
 *   3. The overlay holds exactly the accepted writes not yet applied; a
 *      validation sees the overlay first, then the applied state.
 *   4. Once failed is set it stays set until the store is closed.
 */
#ifndef CS_STORE_INT_H
#define CS_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "cs.h"
#include "fold.h"
#include "index.h"
#include "record.h"

#define MANIFEST_NAME "MANIFEST"
#define MANIFEST_MAGIC "CTMANIF1"
#define MANIFEST_HEADER_BYTES 24 /* magic 8, payload length 8, XXH3 8 */
#define LOCK_NAME "LOCK"
#define SNAP_MAGIC "CTSNAPS1"
/* Snapshot header: magic 8, version 4, zero 4, length 8, XXH3 8. */
#define SNAP_HEADER_BYTES 32
#define SNAP_FORMAT_VERSION 1

/* u64 -> u64 open-addressing map; key 0 is never stored. */
typedef struct u64map {
  uint64_t *keys;
  uint64_t *vals;
  size_t mask; /* capacity - 1; capacity a power of two */
  size_t count;
} u64map;

int u64map_put(u64map *m, uint64_t key, uint64_t val);
/* Returns a pointer to the value, or NULL. */
uint64_t *u64map_get(const u64map *m, uint64_t key);
void u64map_free(u64map *m);

typedef struct seg_map {
  uint32_t no;    /* segment number */
  uint8_t *map;   /* PROT_READ mapping of the file */
  size_t map_len; /* bytes mapped (may exceed the file) */
  uint64_t size;  /* bytes of valid data: header and whole records */
} seg_map;

/* Where one contact's current record is: 24 bytes, so a get touches one
 * cache line. Snapshots store the table as it is in memory. */
typedef struct cs_slot {
  uint64_t id;
  uint32_t seg;       /* segment number of the current record */
  uint32_t off;       /* its offset */
  uint32_t len;       /* its length, header included */
  uint32_t acct_live; /* account << 1 | live */
} cs_slot;
_Static_assert(sizeof(cs_slot) == 24, "a slot is 24 bytes, on disk too");

static inline uint32_t slot_account(const cs_slot *sl) {
  return sl->acct_live >> 1;
}
static inline bool slot_live(const cs_slot *sl) {
  return sl->acct_live & 1;
}

/* The slot table, one entry per contact ever created since the store was
 * rebuilt (dead ones included), in id order. Ids are handed out one after
 * the other, so the slot of an id is found by its distance from the first
 * id, or by a binary search below that where compaction left gaps: no map
 * from id to slot is needed. */
typedef struct slot_table {
  cs_slot *v;
  uint32_t count;
  uint32_t cap;
} slot_table;

/* The slot of id, or -1 when no slot has it. Caller holds ilock. */
int64_t store_slot_of(const cs_store *s, uint64_t id);

/* A pending change, not yet applied (see invariant 3). */
typedef struct ov_entry {
  uint64_t id;
  uint64_t seq;
  uint32_t account;
  bool deleted;
  uint64_t email_hash; /* hash of (account, fold_key(email)), 0 if deleted */
  cs_contact c;        /* strings in blob */
  char *blob;
  struct ov_entry *next_id;    /* chain in ov_by_id */
  struct ov_entry *next_email; /* chain in ov_by_email */
} ov_entry;

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
} wop;

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
} wqueue;

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

  /* ---- under wmu */
  pthread_mutex_t wmu;
  pthread_cond_t wcv; /* wakes the commit thread */
  pthread_cond_t fcv; /* wakes flush waiters */
  wqueue wq;
  uint64_t next_seq;
  uint64_t next_id;
  uint32_t tail_seg; /* where the next accepted record goes */
  uint64_t tail_off;
  uint64_t sync_req_seq; /* cs_flush wants everything up to here synced */
  uint64_t written_seq;
  uint64_t synced_seq;
  int failed;
  char failed_msg[sizeof(((cs_error *)0)->msg)];
  bool closing;
  ov_entry **ov_by_id;
  ov_entry **ov_by_email;
  size_t ov_mask;
  size_t ov_count;
  rec_buf rbuf; /* the record being encoded */
  fold_buf fb_key, fb_case, fb_case2;
  /* In a bulk load: the case-folded emails created during it (hash of
   * account and email -> id). The index's bulk mode defers the postings
   * of keys that already exist, so its lookups may miss contacts of the
   * load itself; this map does not. Also under ilock for bulk itself. */
  bool bulk;
  u64map bulk_emails;
  msgpack_zone wzone; /* decoding under wmu */

  /* ---- commit thread only (and open, before it starts) */
  msgpack_zone czone;
  pthread_t committer;
  bool committer_started;
  int active_fd; /* the last segment, open for appending */
  uint32_t active_seg;
  bool active_dirty; /* written since its last sync */

  /* ---- under mmu */
  pthread_mutex_t mmu;
  uint32_t last_seg;
  char *snapshot_name; /* file name in dir, or NULL */
  uint64_t snapshot_seq;
  uint64_t snapshot_log_bytes; /* log_bytes when it was taken */
  int64_t snapshot_time_ms;

  /* counters (atomic) */
  uint64_t commits;
  uint64_t fsyncs;
};

/* A store with nothing opened, locked or mapped yet: options defaulted,
 * locks and buffers made. NULL when out of memory. store_free frees a
 * store in any state, closing and unmapping what it holds. */
cs_store *store_new(const char *dir, const cs_options *opts);
void store_free(cs_store *s);

/* Is name (a file in the store's directory) left over from an interrupted
 * write: a temporary, a segment outside the manifest's range, a snapshot
 * the manifest does not name? Open removes these. Caller holds mmu or is
 * alone with the store. */
bool store_file_is_stray(const cs_store *s, const char *name);

/* Maps segments first_seg..last_seg (read-only, with room for the active
 * one to grow). A missing file is CS_ECORRUPT. Caller is alone with s. */
int store_map_segments(cs_store *s, cs_error *err);

/* Path of a file in the store's directory into buf. */
void store_path(const cs_store *s, char *buf, size_t len, const char *name);
void seg_name(char *buf, size_t len, uint32_t seg_no);

/* Writes buf to dir/name atomically through the seam: a temporary, fsync,
 * rename, fsync of the directory. */
int store_write_atomic(cs_store *s, const char *name, const void *buf,
                       size_t len, cs_error *err);

/* Reads a whole file (at most max bytes, else -EFBIG) into a malloc'd
 * buffer (*out, to free). */
int store_read_file(const char *path, uint8_t **out, size_t *len, uint64_t max);

/* Rewrites the manifest atomically from s->first_seg, s->last_seg,
 * s->snapshot_name and next_id. Caller holds mmu. */
int manifest_write(cs_store *s, uint64_t next_id, cs_error *err);

/* Applies one checked record found at (seg, off) to slots and indexes.
 * Caller holds ilock for writing (or is opening the store alone). */
int store_apply(cs_store *s, uint32_t seg, uint32_t off, const rec_view *r,
                const rec_body *b, cs_error *err);

/* Reads and checks the record of a slot (caller holds ilock), decoding it
 * with zone. 0, CS_ECORRUPT with err filled. */
int store_read_slot(cs_store *s, uint32_t slot, msgpack_zone *zone,
                    rec_body *out, cs_error *err);

/* Snapshots (snap.c). Save: caller holds ilock for reading. Load: at open,
 * alone; returns 0, or an error after which the caller rebuilds from the
 * log (the store is left empty). */
int snap_save(cs_store *s, cs_error *err);
int snap_load(cs_store *s, const char *name, cs_error *err);

/* Fills err (when not NULL) and returns code. */
int cs_err(cs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void store_notice(cs_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int64_t cs_now_ms(void);

/* Offline operations (admin.c) take the directory lock and read the
 * manifest without opening the whole store. dir_lock sets s->lock_fd
 * (closing it unlocks); manifest_read fills s->first_seg, s->last_seg,
 * s->snapshot_name and the manifest's id floor. */
int dir_lock(cs_store *s, cs_error *err);
int manifest_read(cs_store *s, uint64_t *id_floor, cs_error *err);

#endif
