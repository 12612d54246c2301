/*
 * store.c: opening and closing a store, and the public calls of cs.h
 * besides the writes: flush, bulk, get, search, iterate, stats, health.
 *
 * Writes (write.c): a call validates under wmu against the overlay and the
 * applied state (overlay.c), frames its record, and queues it (commit.c),
 * which answers through the completion once the record is durable and
 * applied.
 * Reads take ilock for reading and never wait for a sync.
 *
 * Open: lock the directory, read (or create) the manifest, remove strays,
 * map the segments, load the snapshot if it is usable, replay the log
 * after it (replay.c), then start the commit thread. Close: stop the
 * thread, sync, and leave a snapshot (only a speed-up).
 *
 * Invariants kept (numbers from store_int.h): 3, every validation sees
 * the overlay first; 4, a failed store answers CS_EFAILED to every write
 * until closed; ids are handed out increasing and never reused (next_id
 * starts past every id in the log and the manifest's floor).
 * Relied on: the lock order of store_int.h.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs_query.h"
#include "dir.h"
#include "err.h"
#include "replay.h"

/* --------------------------------------------------------- read zones */

/* A msgpack zone per reader thread, freed when the thread ends. */
static pthread_key_t zone_key;
static pthread_once_t zone_once = PTHREAD_ONCE_INIT;

static void zone_free(void *z) {
  msgpack_zone_free(z);
}
static void zone_key_make(void) {
  pthread_key_create(&zone_key, zone_free);
}

static msgpack_zone *reader_zone(void) {
  pthread_once(&zone_once, zone_key_make);
  msgpack_zone *z = pthread_getspecific(zone_key);
  if (!z) {
    z = msgpack_zone_new(REC_ZONE_CHUNK_BYTES);
    if (z) pthread_setspecific(zone_key, z);
  }
  return z;
}

/* ----------------------------------------------------------- open/close */

void store_free(cs_store *s) {
  if (!s) return;
  if (s->active_fd >= 0) s->io->close(s->io->ctx, s->active_fd);
  log_unmap_all(s);
  for (uint32_t i = 0; i < s->retired_count; i++)
    munmap(s->retired[i].map, s->retired[i].map_len);
  free(s->retired);
  slots_free(&s->slots);
  u64map_free(&s->acct_counts);
  u64map_free(&s->bulk_emails);
  if (s->ix) ix_destroy(s->ix);
  ov_deinit(&s->ov);
  trash_free(&s->trash);
  idem_free(&s->idem);
  feed_free(&s->feed);
  pthread_mutex_destroy(&s->imu);
  pthread_mutex_destroy(&s->watchmu);
  for (size_t i = 0; i < sizeof s->queues / sizeof s->queues[0]; i++)
    wqueue_free(&s->queues[i]);
  rec_buf_free(&s->rbuf);
  fold_buf_free(&s->fb_key);
  fold_buf_free(&s->fb_case);
  fold_buf_free(&s->fb_case2);
  msgpack_zone_destroy(&s->wzone);
  msgpack_zone_destroy(&s->czone);
  pthread_rwlock_destroy(&s->ilock);
  pthread_mutex_destroy(&s->wmu);
  pthread_mutex_destroy(&s->mmu);
  pthread_cond_destroy(&s->wcv);
  pthread_cond_destroy(&s->fcv);
  pthread_cond_destroy(&s->acv);
  ship_free(&s->ship);
  if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
  free(s->snapshot_name);
  free(s->dir);
  free(s);
}

cs_store *store_new(const char *dir, const cs_options *opts) {
  cs_store *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->lock_fd = -1;
  s->active_fd = -1;
  s->wq = &s->queues[0];
  if (opts) s->opts = *opts;
  s->shard = s->opts.shard; /* a manifest read replaces it */
  if (!s->opts.segment_bytes_max)
    s->opts.segment_bytes_max = CS_SEGMENT_BYTES_DEFAULT;
  s->io = s->opts.io ? s->opts.io : cs_io_posix();
  if (!s->opts.snapshot_every_bytes)
    s->opts.snapshot_every_bytes = CS_SNAPSHOT_EVERY_BYTES;
  if (s->opts.trash_ms <= 0) s->opts.trash_ms = CS_TRASH_MS_DEFAULT;
  if (s->opts.changes_ms <= 0) s->opts.changes_ms = CS_CHANGES_MS_DEFAULT;
  if (!s->opts.standby_timeout_ms)
    s->opts.standby_timeout_ms = CS_STANDBY_TIMEOUT_MS_DEFAULT;
  s->dir = strdup(dir);
  pthread_mutex_init(&s->imu, NULL);
  pthread_mutex_init(&s->watchmu, NULL);
  pthread_rwlock_init(&s->ilock, NULL);
  pthread_mutex_init(&s->wmu, NULL);
  pthread_mutex_init(&s->mmu, NULL);
  pthread_cond_init(&s->wcv, NULL);
  pthread_cond_init(&s->fcv, NULL);
  pthread_cond_init(&s->acv, NULL);
  msgpack_zone_init(&s->wzone, REC_ZONE_CHUNK_BYTES);
  msgpack_zone_init(&s->czone, REC_ZONE_CHUNK_BYTES);
  s->ix = ix_create();
  int orc = ov_init(&s->ov);
  if (!orc) orc = ship_init(&s->ship);
  if (!s->dir || !s->ix || orc) {
    store_free(s);
    return NULL;
  }
  return s;
}

/* The directory exists (made if need be) and is one. */
static int open_dir(cs_store *s, const char *dir, cs_error *err) {
  if (s->opts.segment_bytes_max < CS_SEGMENT_BYTES_MIN ||
      s->opts.segment_bytes_max > CS_SEGMENT_BYTES_MAX)
    return cs_err(err, CS_EINVAL, "segment size %u is outside %u..%u",
                  s->opts.segment_bytes_max, CS_SEGMENT_BYTES_MIN,
                  CS_SEGMENT_BYTES_MAX);
  if (mkdir(dir, 0700) == 0) {
    /* A new directory is an entry of its parent: until the parent is
     * synced a power cut may take it, and every store file in it, away
     * (promise 8). */
    char parent[DIR_PATH_BYTES];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') { /* "a/b/" */
      *slash = '\0';
      slash = strrchr(parent, '/');
    }
    if (!slash)
      snprintf(parent, sizeof parent, ".");
    else
      slash[slash == parent] = '\0'; /* "/b" keeps its root */
    int rc = s->io->fsync_dir(s->io->ctx, parent);
    if (rc)
      return cs_err(err, rc, "cannot sync %s after creating %s: %s", parent,
                    dir, cs_strerror(rc));
  } else if (errno != EEXIST) {
    return cs_err(err, -errno, "cannot create data directory %s: %s", dir,
                  strerror(errno));
  }
  struct stat st;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
    return cs_err(err, -ENOTDIR, "%s is not a directory", dir);
  return 0;
}

/* The manifest's shard against the one asked for; then s->opts names the
 * store's own, so that the stores online compaction makes from them
 * write manifests of the same shard. */
static int open_shard(cs_store *s, cs_error *err) {
  if (s->opts.shard_set && s->opts.shard != s->shard)
    return cs_err(err, CS_EINVAL,
                  "%s is the data directory of shard %u, not of shard %u",
                  s->dir, s->shard, s->opts.shard);
  s->opts.shard = s->shard;
  s->opts.shard_set = true;
  return 0;
}

/* Reads the manifest, or makes a new store's first segment and manifest
 * when there is none. *id_floor: the manifest's (a new store's: the first
 * id of its shard). */
static int open_manifest(cs_store *s, uint64_t *id_floor, cs_error *err) {
  char path[DIR_PATH_BYTES];
  store_path(s, path, sizeof path, MANIFEST_NAME);
  if (s->opts.shard > CS_SHARD_MAX)
    return cs_err(err, CS_EINVAL, "shard: %u is past the last, %u",
                  s->opts.shard, CS_SHARD_MAX);
  *id_floor = cs_shard_floor(s->shard) + 1;
  if (access(path, F_OK) == 0) {
    s->shard = 0; /* a manifest without "shard" is shard 0's */
    int rc = manifest_read(s, id_floor, err);
    return rc ? rc : open_shard(s, err);
  }
  /* A new store, unless segments are lying around without a manifest. A
   * creation that failed before its manifest leaves at most a segment
   * header: no record was ever written without a manifest. */
  char seg1[SEG_NAME_BYTES], segpath[DIR_PATH_BYTES];
  seg_name(seg1, sizeof seg1, 1);
  store_path(s, segpath, sizeof segpath, seg1);
  struct stat sst;
  if (stat(segpath, &sst) == 0 && sst.st_size > SEG_HEADER_BYTES)
    return cs_err(err, CS_ECORRUPT,
                  "%s has segments but no manifest; run contactctl verify",
                  s->dir);
  s->first_seg = s->last_seg = 1;
  int fd;
  int rc = log_seg_create(s, 1, &fd, err);
  if (rc) return rc;
  s->io->close(s->io->ctx, fd);
  rc = manifest_write(s, *id_floor, err);
  return rc ? rc : open_shard(s, err);
}

/* The snapshot if usable (only a speed-up: any problem means a full
 * replay), then the log after it. */
static int open_replay(cs_store *s, cs_error *err) {
  bool from_snapshot = false;
  if (s->snapshot_name && !s->opts.no_snapshot_load) {
    cs_error serr;
    if (snap_load(s, s->snapshot_name, &serr) == 0) {
      from_snapshot = true;
    } else {
      store_notice(s, "%s; rebuilding the indexes from the log", serr.msg);
      pindex_reset(s);
    }
  }
  replay rp = {.s = s, .mode = REPLAY_OPEN, .err = err};
  return replay_log(&rp, from_snapshot);
}

/* Positions the writer after the replayed log and opens the last segment
 * for appending. */
static int open_tail(cs_store *s, uint64_t id_floor, cs_error *err) {
  s->next_seq = s->applied_seq + 1;
  s->written_seq = s->synced_seq = s->applied_seq;
  s->next_id = pindex_next_id(s);
  if (s->next_id < id_floor) s->next_id = id_floor;
  seg_map *lastm = &s->segs[s->seg_count - 1];
  s->tail_seg = s->active_seg = lastm->no;
  s->tail_off = lastm->size;
  /* What is there may not be synced yet (a crash of the process leaves it
   * in the page cache only): no batch is marked synced before the first
   * sync of this open. */
  s->active_written = lastm->size;
  s->active_durable = 0;
  s->open_seq = s->applied_seq;
  char name[SEG_NAME_BYTES], path[DIR_PATH_BYTES];
  seg_name(name, sizeof name, lastm->no);
  store_path(s, path, sizeof path, name);
  s->active_fd = s->io->open(s->io->ctx, path, O_WRONLY, 0);
  if (s->active_fd < 0) {
    int rc = cs_err(err, s->active_fd, "cannot open %s for writing: %s", path,
                    cs_strerror(s->active_fd));
    s->active_fd = -1;
    return rc;
  }
  return 0;
}

int cs_open(const char *dir, const cs_options *opts, cs_store **out,
            cs_error *err) {
  *out = NULL;
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  cs_store *s = store_new(dir, opts);
  if (!s) return cs_err(err, -ENOMEM, "out of memory");
  uint64_t id_floor = 0;
  int rc = open_dir(s, dir, err);
  if (!rc) rc = dir_lock(s, err);
  if (!rc) rc = open_manifest(s, &id_floor, err);
  if (!rc) {
    dir_remove_strays(s);
    rc = store_map_segments(s, err);
  }
  if (!rc) rc = open_replay(s, err);
  /* Changes past the window drop out here, also from lists no write
   * touches again. */
  if (!rc) feed_trim(&s->feed, store_now(s) - s->opts.changes_ms);
  if (!rc) rc = open_tail(s, id_floor, err);
  if (!rc) rc = follow_open(s, err);
  if (!rc) rc = commit_start(s, err);
  if (rc) {
    store_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* Caller holds wmu and ilock for writing. */
static int bulk_finish(cs_store *s, cs_error *err) {
  if (!s->bulk) return 0;
  s->bulk = false;
  u64map_free(&s->bulk_emails);
  int rc = ix_bulk_end(s->ix);
  return rc ? cs_err(err, rc, "cannot build the indexes: %s", cs_strerror(rc))
            : 0;
}

int cs_close(cs_store *s, cs_error *err) {
  if (!s) return 0;
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  ship_close(s);
  commit_stop(s);
  int rc = 0, brc = 0;
  if (s->bulk && !s->failed) {
    /* A bulk load left open: build the indexes so the snapshot is whole. */
    pthread_mutex_lock(&s->wmu);
    pthread_rwlock_wrlock(&s->ilock);
    brc = bulk_finish(s, err);
    pthread_rwlock_unlock(&s->ilock);
    pthread_mutex_unlock(&s->wmu);
  }
  if (s->failed) {
    rc = cs_err(err, CS_EFAILED, "closed after a failure: %s", s->failed_msg);
  } else {
    rc = commit_seal(s, err);
    if (!rc && !brc && !s->opts.no_snapshot_on_close && !s->opts.no_indexes &&
        s->applied_seq != s->snapshot_seq) {
      /* Only a speed-up: everything is in the log already, so a snapshot
       * that cannot be written (a full disk) is reported, not an error. */
      cs_error serr;
      pthread_rwlock_rdlock(&s->ilock);
      if (snap_save(s, &serr) != 0)
        store_notice(s,
                     "no snapshot written at close (the next open "
                     "replays the log): %s",
                     serr.msg);
      pthread_rwlock_unlock(&s->ilock);
    }
  }
  store_free(s);
  return rc ? rc : brc;
}

int cs_snapshot(cs_store *s, cs_error *err) {
  pthread_rwlock_rdlock(&s->ilock);
  int rc = snap_save(s, err);
  pthread_rwlock_unlock(&s->ilock);
  return rc;
}

/* ------------------------------------------------------------- writing */

/* The writes themselves are in write.c. */

int cs_flush(cs_store *s, cs_error *err) {
  pthread_mutex_lock(&s->wmu);
  uint64_t target = s->next_seq - 1;
  if (target > s->sync_req_seq) s->sync_req_seq = target;
  pthread_cond_signal(&s->wcv);
  while (s->synced_seq < target && !s->failed)
    pthread_cond_wait(&s->fcv, &s->wmu);
  int rc = 0;
  if (s->failed)
    rc = cs_err(err, CS_EFAILED, "the store refuses writes: %s", s->failed_msg);
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

int cs_bulk_begin(cs_store *s, cs_error *err) {
  int rc = cs_flush(s, err);
  if (rc) return rc;
  pthread_mutex_lock(&s->wmu);
  pthread_rwlock_wrlock(&s->ilock);
  if (__atomic_load_n(&s->compacting, __ATOMIC_ACQUIRE)) {
    rc = cs_err(err, CS_EBUSY, "an online compaction is running");
  } else if (s->opts.no_indexes || s->bulk) {
    rc = cs_err(err, CS_EINVAL,
                s->bulk ? "a bulk load is in progress"
                        : "opened without indexes");
  } else {
    ix_bulk_begin(s->ix);
    s->bulk = true;
  }
  pthread_rwlock_unlock(&s->ilock);
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

int cs_bulk_end(cs_store *s, cs_error *err) {
  int rc = cs_flush(s, err); /* every create of the load applied */
  pthread_mutex_lock(&s->wmu);
  pthread_rwlock_wrlock(&s->ilock);
  int brc = bulk_finish(s, err);
  pthread_rwlock_unlock(&s->ilock);
  pthread_mutex_unlock(&s->wmu);
  return rc ? rc : brc;
}

/* -------------------------------------------------------------- reading */

int cs_get(cs_store *s, uint32_t account, uint64_t id, cs_contact *out,
           cs_error *err) {
  msgpack_zone *z = reader_zone();
  if (!z) return cs_err(err, -ENOMEM, "out of memory");
  pthread_rwlock_rdlock(&s->ilock);
  int64_t slot = slots_find(&s->slots, id);
  int rc = CS_ENOTFOUND;
  if (slot >= 0 && s->slots.v[slot].acct_live == (account << 1 | 1u)) {
    rec_body b;
    rc = store_read_slot(s, (uint32_t)slot, z, &b, err);
    if (!rc) *out = b.contact;
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc == CS_ENOTFOUND)
    cs_err(err, rc, "no contact %020llu", (unsigned long long)id);
  return rc;
}

/* What search_ids gathers from each range of slots. */
typedef struct id_hits {
  const slot_table *t;
  uint32_t want; /* acct_live of the account's live slots */
  uint32_t min_slot, limit;
  uint32_t *slots, *count;
  uint64_t *total;
  bool *more;
} id_hits;

static void id_hits_add(void *ctx, uint32_t a, uint32_t b) {
  id_hits *h = ctx;
  for (uint32_t i = a; i < b; i++) {
    if (h->t->v[i].acct_live != h->want) continue;
    (*h->total)++;
    if (i < h->min_slot) continue;
    if (*h->count < h->limit)
      h->slots[(*h->count)++] = i;
    else
      *h->more = true;
  }
}

/* Search by id: exact (and words) is one lookup; prefix is a range. */
static int search_ids(cs_store *s, const cs_query *q, uint32_t min_slot,
                      uint32_t limit, uint32_t *slots, uint32_t *count,
                      uint64_t *total, bool *more) {
  *count = 0;
  *total = 0;
  *more = false;
  const char *t = q->term;
  size_t n = q->term_len;
  while (n && (*t == ' ' || *t == '\t'))
    t++, n--;
  while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
    n--;
  if (n == 0 || n > CS_ID_DIGITS) return 0;
  uint64_t lo = 0;
  for (size_t i = 0; i < n; i++) {
    if (t[i] < '0' || t[i] > '9') return 0;
    lo = lo * 10 + (uint64_t)(t[i] - '0');
  }
  if (t[0] == '0') return 0;
  uint64_t hi;
  if (q->match == CS_MATCH_PREFIX) {
    uint64_t scale = 1;
    for (size_t i = n; i < CS_ID_DIGITS; i++)
      scale *= 10;
    /* lo * scale may exceed 2^64 for large prefixes: no id there. */
    if (lo > UINT64_MAX / scale) return 0;
    uint64_t base = lo * scale;
    hi = (UINT64_MAX - base < scale - 1) ? UINT64_MAX : base + (scale - 1);
    lo = base;
  } else {
    if (n != CS_ID_DIGITS) return 0;
    hi = lo;
  }
  id_hits h = {
      &s->slots, q->account << 1 | 1u, min_slot, limit, slots, count, total,
      more};
  slots_id_ranges(&s->slots, lo, hi, id_hits_add, &h);
  return 0;
}

/* A suffix search is the query of one suffix condition in id order (its
 * candidates may need their records checked: ixq_suffix). */
static int search_suffix(cs_store *s, const cs_query *q, uint32_t limit,
                         cs_page *out, cs_error *err) {
  if (q->field != CS_EMAIL && q->field != CS_PHONE) {
    cs_err(err, CS_EINVAL, "match=suffix searches email or phone only");
    if (err) err->field = q->field < CS_FIELD_COUNT ? q->field : -1;
    return CS_EINVAL;
  }
  cs_str term = {q->term ? q->term : "", q->term_len};
  cs_qnode n = {.kind = CS_Q_COND,
                .field = q->field,
                .op = CS_OP_SUFFIX,
                .values = &term,
                .nvalues = 1};
  cs_qpos after = {.nkeys = 0, .id = q->after_id};
  cs_qry qq = {.account = q->account,
               .filter = &n,
               .limit = limit,
               .after = q->after_id ? &after : NULL};
  cs_qresult r;
  int rc = cs_query_run(s, &qq, &r, err);
  if (rc) {
    if (err && rc == CS_EINVAL) err->field = q->field;
    return rc;
  }
  out->total = r.page.total;
  out->count = r.page.count;
  out->more = r.page.more;
  out->contacts = r.page.contacts;
  r.page.contacts = NULL;
  cs_qresult_free(&r);
  return 0;
}

int cs_search(cs_store *s, const cs_query *q, cs_page *out, cs_error *err) {
  memset(out, 0, sizeof *out);
  if (q->field < 0 || q->field > CS_SEARCH_BY_ID)
    return cs_err(err, CS_EINVAL, "no such field to search by");
  uint32_t limit = q->limit ? q->limit : CS_PAGE_LIMIT_DEFAULT;
  if (limit > CS_PAGE_LIMIT_MAX)
    return cs_err(err, CS_EINVAL, "limit must be 1 to %d", CS_PAGE_LIMIT_MAX);
  cs_match match = q->match;
  if (match == CS_MATCH_DEFAULT)
    match = q->field == CS_NOTES ? CS_MATCH_WORDS : CS_MATCH_EXACT;
  if (match < CS_MATCH_EXACT || match > CS_MATCH_SUFFIX)
    return cs_err(err, CS_EINVAL, "no such match mode");
  if (match == CS_MATCH_SUFFIX) return search_suffix(s, q, limit, out, err);
  if (s->opts.no_indexes)
    return cs_err(err, CS_EINVAL, "the store was opened without indexes");
  if (q->term_len > CS_SEARCH_TERM_MAX_BYTES) return 0; /* matches nothing */
  msgpack_zone *z = reader_zone();
  if (!z) return cs_err(err, -ENOMEM, "out of memory");
  /* The page's slots on the stack (4 KiB at most) and its contacts sized
   * to what was found: a one-result search allocates one contact. */
  uint32_t slots[CS_PAGE_LIMIT_MAX];
  pthread_rwlock_rdlock(&s->ilock);
  if (s->bulk) {
    pthread_rwlock_unlock(&s->ilock);
    return cs_err(err, CS_EINVAL, "a bulk load is in progress");
  }
  uint32_t min_slot = q->after_id ? slots_after(&s->slots, q->after_id) : 0;
  uint32_t count = 0;
  int rc;
  if (q->field == CS_SEARCH_BY_ID) {
    cs_query qq = *q;
    qq.match = match;
    rc = search_ids(s, &qq, min_slot, limit, slots, &count, &out->total,
                    &out->more);
  } else {
    rc = ix_search(s->ix, q->account, q->field, match, q->term, q->term_len,
                   min_slot, limit, slots, &count, &out->total, &out->more);
    if (rc) cs_err(err, rc, "search failed: %s", cs_strerror(rc));
  }
  if (!rc && count) {
    out->contacts = malloc(count * sizeof *out->contacts);
    if (!out->contacts) rc = cs_err(err, -ENOMEM, "out of memory");
  }
  for (uint32_t i = 0; i < count && !rc; i++) {
    rec_body b;
    rc = store_read_slot(s, slots[i], z, &b, err);
    if (!rc) out->contacts[out->count++] = b.contact;
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc) cs_page_free(out);
  return rc;
}

void cs_page_free(cs_page *p) {
  free(p->contacts);
  memset(p, 0, sizeof *p);
}

int cs_iterate(cs_store *s, uint32_t account,
               int (*fn)(void *ctx, const cs_contact *c), void *ctx,
               cs_error *err) {
  msgpack_zone *z = reader_zone();
  if (!z) return cs_err(err, -ENOMEM, "out of memory");
  int rc = 0;
  pthread_rwlock_rdlock(&s->ilock);
  for (uint32_t i = 0; i < s->slots.count && !rc; i++) {
    const cs_slot *sl = &s->slots.v[i];
    if (!slot_live(sl)) continue;
    if (account != CS_ALL_ACCOUNTS && slot_account(sl) != account) continue;
    rec_body b;
    rc = store_read_slot(s, i, z, &b, err);
    if (!rc) rc = fn(ctx, &b.contact);
  }
  pthread_rwlock_unlock(&s->ilock);
  return rc;
}

void cs_stats_get(cs_store *s, cs_stats *o) {
  memset(o, 0, sizeof *o);
  pthread_rwlock_rdlock(&s->ilock);
  o->contacts = s->live_contacts;
  o->segments = s->seg_count;
  o->live_bytes = s->live_bytes;
  o->garbage_bytes = s->log_bytes - s->live_bytes;
  for (uint32_t i = 0; i < s->seg_count; i++)
    o->disk_bytes += s->segs[i].size; /* what the log holds, torn tail cut */
  o->index_bytes =
      ix_memory_bytes(s->ix) + (size_t)s->slots.cap * sizeof(cs_slot);
  o->trash_contacts = s->trash.count - s->trash.gone;
  o->index_bytes += (uint64_t)s->trash.cap * sizeof(trash_ent) +
                    (s->trash.where.keys ? (s->trash.where.mask + 1) * 16 : 0);
  o->changes = s->feed.entries;
  o->changes_bytes = feed_bytes(&s->feed);
  o->shard = s->shard;
  pthread_rwlock_unlock(&s->ilock);
  pthread_mutex_lock(&s->imu);
  o->idem_keys = s->idem.count;
  o->idem_bytes = s->idem.bytes;
  pthread_mutex_unlock(&s->imu);
  pthread_mutex_lock(&s->mmu);
  o->snapshot_seq = s->snapshot_seq;
  o->snapshot_time_ms = s->snapshot_time_ms;
  if (s->snapshot_name) o->disk_bytes += dir_file_bytes(s, s->snapshot_name);
  o->disk_bytes += dir_file_bytes(s, MANIFEST_NAME);
  pthread_mutex_unlock(&s->mmu);
  pthread_mutex_lock(&s->wmu);
  o->next_id = s->next_id;
  o->failed = s->failed;
  pthread_mutex_unlock(&s->wmu);
  o->commits = __atomic_load_n(&s->commits, __ATOMIC_RELAXED);
  o->fsyncs = __atomic_load_n(&s->fsyncs, __ATOMIC_RELAXED);
}

uint64_t cs_account_count(cs_store *s, uint32_t account) {
  pthread_rwlock_rdlock(&s->ilock);
  uint64_t v = pindex_account_count(s, account);
  pthread_rwlock_unlock(&s->ilock);
  return v;
}

int cs_health(cs_store *s, cs_error *err) {
  pthread_mutex_lock(&s->wmu);
  int rc = 0;
  if (s->failed)
    rc = cs_err(err, CS_EFAILED, "the store refuses writes: %s", s->failed_msg);
  else if (s->closing)
    rc = cs_err(err, CS_ECLOSING, "the store is closing");
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

const char *cs_dir(const cs_store *s) {
  return s->dir;
}
