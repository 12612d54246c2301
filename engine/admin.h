/*
 * admin.h: the offline operations on a data directory, for contactctl:
 * the directory lock alone, a raw scan of every record, verification,
 * compaction (and salvage of a damaged store), and the checks of a load's
 * dry run.
 *
 * Every operation here takes the directory's lock (the same flock the
 * server and cs_open take) for as long as it runs, and fails with
 * CS_ELOCKED naming the holder's pid when someone else has it. None of them
 * may run while the store is open in this process.
 *
 * Errors follow cs.h: 0 or a negative code, with err filled when not NULL.
 */
#ifndef CS_ADMIN_H
#define CS_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "cs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* -------------------------------------------------------------- the lock */

typedef struct cs_dirlock cs_dirlock;

/*
 * Locks dir (which must exist) without opening the store, for commands that
 * only touch one file of it (keys). CS_ELOCKED with the holder's pid when
 * held elsewhere. Release with cs_dir_unlock.
 */
int cs_dir_lock(const char *dir, cs_dirlock **out, cs_error *err);
void cs_dir_unlock(cs_dirlock *l);

/* Is dir a store's data directory (it holds a manifest)? The read-only
 * commands ask before they open it, so that a mistyped --data is refused
 * rather than made into a new, empty store. */
bool cs_dir_is_store(const char *dir);

/* ------------------------------------------------------------- reporting */

/* Long operations report how far they are: done out of total units. */
typedef void (*cs_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* One thing an operation found: a problem (damage, a mismatch) or a note
 * (something open repairs by itself, like a torn tail). file is a name in
 * the data directory ("" when none), offset -1 when none. The strings live
 * only during the call. */
typedef struct cs_finding {
  bool problem;
  const char *file;
  int64_t offset;
  const char *msg;
} cs_finding;
typedef void (*cs_finding_fn)(void *ctx, const cs_finding *f);

/* -------------------------------------------------------------- raw scan */

enum cs_raw_status {
  CS_RAW_OK = 0,     /* header and checksum good, payload decodes */
  CS_RAW_BAD,        /* bad header or checksum: damaged bytes, len of them */
  CS_RAW_TORN,       /* damaged bytes at the very end of the last segment */
  CS_RAW_UNDECODABLE /* checksum good, payload not a valid record */
};

typedef struct cs_raw_record {
  uint32_t seg;    /* segment number */
  uint64_t offset; /* of the record (or of the damage) in the segment */
  int status;      /* cs_raw_status */
  uint8_t type;    /* 1 put, 2 delete, 3 meta (OK and UNDECODABLE) */
  uint64_t len;    /* bytes, header included (or bytes of damage) */
  uint64_t seq;
  uint64_t checksum;
  uint64_t id;      /* put and delete */
  uint32_t account; /* put and delete */
  uint64_t next_id; /* meta */
} cs_raw_record;

/*
 * Calls fn for every record of every segment the manifest names, in log
 * order, and for every damaged range (skipping to the next valid record
 * header after damage). fn returning non-zero stops the scan (returned).
 * A bad segment header is reported as damage at offset 0. Changes nothing.
 */
int cs_admin_scan(const char *dir, int (*fn)(void *ctx, const cs_raw_record *r),
                  void *ctx, cs_error *err);

/* ----------------------------------------------------------------- verify */

typedef struct cs_verify_opts {
  uint32_t sample_contacts; /* contacts whose values are searched; 0: 100 */
  cs_progress_fn progress;  /* may be NULL */
  void *progress_ctx;
} cs_verify_opts;

typedef struct cs_verify_result {
  uint64_t problems;
  uint64_t notes;
  uint64_t segments;
  uint64_t records;
  uint64_t contacts; /* live, from the replay */
  uint64_t searches; /* compared between snapshot and replay */
} cs_verify_result;

/*
 * Checks everything without changing anything: the manifest; every segment
 * header and every record's checksum and payload, and the sequence order;
 * that no contact's version goes back along the log (each put of an id
 * above the previous one's, a delete keeping it); the snapshot (loaded as open
 * would, then the log after it replayed) against a replay of the whole log:
 * every slot of the primary index (each live one must point at a put of its own
 * id), the counts, every contact, and the answers of searches on a sample of
 * stored values. Each problem and note goes to fn. Returns 0 when it could look
 * (res->problems says whether it is clean), or an error that kept it from
 * looking (CS_ELOCKED, no manifest, out of memory).
 */
int cs_admin_verify(const char *dir, const cs_verify_opts *o, cs_finding_fn fn,
                    void *ctx, cs_verify_result *res, cs_error *err);

/* ----------------------------------------------------------------- compact */

typedef struct cs_compact_opts {
  const cs_io *io;            /* NULL: cs_io_posix() */
  uint32_t segment_bytes_max; /* of the new segments; 0: the default */
  bool salvage;               /* skip records that fail their checksum */
  cs_progress_fn progress;    /* may be NULL */
  void *progress_ctx;
  /* The trash window: deleted contacts younger than this are kept (with
   * their last put), older ones dropped. 0: CS_TRASH_MS_DEFAULT. */
  int64_t trash_ms;
  /* The change feed's window: changes younger than this are carried over,
   * older ones dropped. 0: CS_CHANGES_MS_DEFAULT. */
  int64_t changes_ms;
  int64_t (*now_ms)(void *ctx); /* NULL: the real clock */
  void *now_ctx;
} cs_compact_opts;

typedef struct cs_compact_result {
  uint64_t bytes_before; /* segments, snapshot and manifest */
  uint64_t bytes_after;
  uint64_t contacts;  /* live contacts rewritten */
  uint64_t trashed;   /* contacts kept in the trash */
  uint64_t idem_keys; /* idempotency entries carried over */
  uint64_t changes;   /* change feed entries carried over */
  uint32_t segments_before;
  uint32_t segments_after;
  uint64_t next_id;        /* the id floor the new store keeps */
  uint64_t skipped_ranges; /* salvage: damaged ranges skipped */
  uint64_t skipped_bytes;
} cs_compact_result;

/*
 * Rewrites the live contacts into new segments numbered after the current
 * last one, ending with a meta record holding next_id (so that no id is
 * ever given again), writes a fresh snapshot, switches the manifest
 * atomically, then removes the old segments and snapshot. Every write goes
 * through o->io. A crash at any point leaves the old store or the new one
 * whole: until the manifest names the new files, open removes them as
 * strays; after, it removes the old ones.
 *
 * A damaged store is refused (CS_ECORRUPT, as open refuses it) unless
 * o->salvage: then every record that fails its checksum is skipped (with
 * the damaged range reported to fn: file and offset), the replay goes on
 * from the next valid record header, and what remains is rewritten.
 * Returns 0 or the error; after a failure before the switch the new files
 * are removed (or left for the next open to remove).
 */
int cs_admin_compact(const char *dir, const cs_compact_opts *o,
                     cs_finding_fn fn, void *ctx, cs_compact_result *res,
                     cs_error *err);

/* ------------------------------------------------------------- bulk load */

/*
 * A bulk load (contactctl load): contacts checked one at a time as they
 * are read, then written in one step, straight into new segments, and
 * indexed the way open's replay indexes the log, instead of one create at
 * a time through the commit queue. Unlike the rest of this header it works
 * on a store open in this process (cs_open), which must accept no other
 * write from cs_load_begin until cs_load_free.
 *
 * Atomic: the new segments are numbered past the manifest's last and
 * become part of the store only when the manifest naming them replaces the
 * old one (the switch, after every new file and the directory are
 * synced). A crash before the switch leaves the store exactly as it was
 * (open removes the new files as strays); after it, the whole load is
 * there. Nothing of a load is ever half there.
 */
typedef struct cs_load cs_load;

typedef struct cs_load_result {
  uint64_t loaded;  /* contacts written, live and trashed */
  uint64_t trashed; /* of which in the trash */
  uint64_t next_id; /* the store's id floor after the load */
  uint32_t segments;
} cs_load_result;

/* Starts a load into s. CS_EINVAL when s was opened without indexes, is in
 * a bulk mode, or has writes still queued; -ENOMEM. */
int cs_load_begin(cs_store *s, cs_load **out, cs_error *err);

/*
 * Checks one contact for account and keeps a copy of it for the commit
 * (c's values are validated as a create's and trimmed in place).
 *   c->id 0: a new contact; it gets a fresh id at the commit (after every
 *     id the store gave and every id this load keeps), created and updated
 *     now, c->version kept (0 means 1), deleted_ms != 0 puts it in the
 *     trash deleted then.
 *   c->id set: kept with c's version, created_ms, updated_ms and
 *     deleted_ms, all checked as cs_import checks them; an id below the
 *     store's id floor (any id it ever gave: ids are never reused) is
 *     CS_EINVAL, an id an earlier contact of the load keeps is CS_EINVAL
 *     with *dup_tag that contact's tag.
 * Email uniqueness per account holds for live contacts: CS_EDUPLICATE with
 * err->id the stored contact holding the email, or err->id 0 and *dup_tag
 * the tag of the earlier contact of this load. A refused contact changes
 * nothing. 0, those codes, or -ENOMEM.
 */
int cs_load_add(cs_load *l, uint32_t account, cs_contact *c, uint64_t tag,
                uint64_t *dup_tag, cs_error *err);

/*
 * Writes every contact kept, in id order (trash entries' deletes after,
 * in the order they were made), into new segments with a meta record
 * holding the new id floor, syncs them and the directory, switches the
 * manifest, then indexes them into s as a replay does. Returns once the
 * load is durable. progress (may be NULL) is told contacts written out of
 * those kept. A failure before the switch leaves the store as it was
 * (the new files removed); one after it (out of memory while indexing)
 * makes s refuse writes: the load is on disk, and reopening the store
 * indexes it.
 */
int cs_load_commit(cs_load *l, cs_progress_fn progress, void *progress_ctx,
                   cs_load_result *res, cs_error *err);

/* Frees the load; without a commit nothing was written. */
void cs_load_free(cs_load *l);

/* ---------------------------------------------------------------- dry run */

typedef struct cs_dryrun cs_dryrun;

/* Checks creates against an open store without writing anything. */
int cs_dryrun_create(cs_store *s, cs_dryrun **out);
void cs_dryrun_destroy(cs_dryrun *d);

/*
 * Answers what cs_create would for c in account, given the creates checked
 * before through d: 0 (and d remembers c's email, with tag), CS_EINVAL, or
 * CS_EDUPLICATE with err->id the stored contact holding the email, or
 * err->id 0 and *dup_tag the tag of the earlier create holding it. Trims
 * c's values in place as cs_create does.
 */
int cs_dryrun_check(cs_dryrun *d, uint32_t account, cs_contact *c, uint64_t tag,
                    uint64_t *dup_tag, cs_error *err);

#ifdef __cplusplus
}
#endif
#endif
