/*
 * online.c: cs_compact_online, compaction while the store serves.
 *
 * The steps, and what each may hold:
 *   1. The pin (wmu, briefly): N = the next sequence number; a range of
 *      numbers N..M-1 is kept for the new log's base (enough for every
 *      record it can need, bounded from the store's counts), and a meta
 *      record numbered M is queued as the range's end, so that the log's
 *      numbers stay those of real records (a flush waits for one) and
 *      every later write is numbered above M. The new segments are
 *      numbered from the live tail + 1 + CS_ONLINE_SEGMENT_GAP, so the
 *      live log may roll meanwhile.
 *   2. The source (nothing held): once every record below N is applied,
 *      the log up to N-1 is replayed into a bare store without indexes
 *      (replay.c, seq_end), from the store's own files, which only grow.
 *   3. The base (nothing held): compact.c's steps 1 and 2 (compact_build)
 *      from that source into "%08u.seg.tmp" files numbered as above, then
 *      replayed with their indexes into a second bare store, dst.
 *   4. The catch-up (nothing held): the records applied since (from the
 *      marker M on) are copied from the live segments into dst's last one
 *      as they are, their numbers kept (so the change feed's positions,
 *      the cursors handed out, stay valid), each marked synced, synced,
 *      and replayed into dst; round after round until a round copies
 *      little.
 *   5. The switch, on the commit thread between two batches
 *      (commit_run_between: wmu held, nothing in flight): the last records
 *      copied; the new files synced and renamed to "%08u.seg" and the
 *      directory synced; then, under ilock for writing (readers wait for
 *      this alone), the manifest naming the new segments (the atomic
 *      step), and dst's slots, indexes, trash, feed and maps traded for
 *      the store's; the commit thread's active segment becomes dst's last
 *      and the queued writes are placed again at its end
 *      (commit_requeue).
 *   6. After (nothing held): the old segments and snapshot removed, a
 *      fresh snapshot written.
 * Steps 1 to 4 and 6 run on a thread of the store's at nice
 * CS_ONLINE_COMPACT_NICE (the caller waits for it), so that on a busy
 * machine the commit thread and the readers come first. The old maps stay
 * mapped until cs_close (the strings of contacts handed out point into them),
 * so their disk space comes back at close. Crash safety (DESIGN promise 5):
 * before the renames the new files end
 * ".tmp" and open removes them; once renamed, before the manifest, they
 * are numbered past the old manifest's last segment (checked at the
 * switch) and open removes them as strays; after the manifest, the old
 * segments are below its first and go the same way. Every byte the new
 * manifest names was synced before it was written. Until the switch a
 * failure changes nothing of the live store (the new files are removed);
 * a failed manifest write makes the store refuse writes (promise 7: which
 * manifest is on disk is then unknown, and either is whole).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bare.h"
#include "commit.h"
#include "compact.h"
#include "cs_assert.h"
#include "dir.h"
#include "err.h"
#include "log.h"
#include "replay.h"
#include "snap.h"
#include "store_int.h"

/* Sequence numbers kept for the base beyond its bound (the meta record
 * and slack). */
#define ONLINE_SEQ_SLACK 64

typedef struct online_job {
  cs_store *s;   /* the live store */
  cs_store *dst; /* the new log, replayed (segments "*.seg.tmp") */
  uint32_t seg_max;
  uint32_t first_no; /* the new segments' first number */
  uint64_t marker;   /* M: the first number after the base's range */
  uint32_t from_seg; /* where the next record to copy is in the live log */
  uint64_t from_off;
  int out_fd;       /* dst's last segment, open for appending */
  uint64_t out_end; /* its bytes */
  rec_buf buf;      /* copied records not yet written */
  uint64_t copied;  /* bytes of records copied so far */
  uint32_t renamed; /* new segments renamed to their final names */
  /* the switch's outcome */
  int rc;
  cs_error err;
  bool switched;
  bool manifest_unknown; /* the manifest write failed: leave every file */
  uint32_t old_first, old_last;
  char *old_snapshot;
} online_job;

/* ---------------------------------------------------------------- pin */

/* Step 1. *n: the base's first number; *next_id: the id floor. */
static int online_pin(online_job *j, uint64_t *n, uint64_t *next_id,
                      cs_error *err) {
  cs_store *s = j->s;
  pthread_mutex_lock(&s->wmu);
  if (s->failed || s->bulk) {
    int rc = s->failed ? cs_err(err, CS_EFAILED, "the store refuses writes: %s",
                                s->failed_msg)
                       : cs_err(err, CS_EBUSY, "a bulk load is in progress");
    pthread_mutex_unlock(&s->wmu);
    return rc;
  }
  /* Every record of the base stands for a live contact, a trashed one (a
   * put and a delete), an idempotency entry or a piece of a feed list;
   * each record still queued adds at most a contact, its trash entry, its
   * idempotency entry and a feed list. */
  pthread_rwlock_rdlock(&s->ilock);
  pthread_mutex_lock(&s->imu);
  uint64_t idem = s->idem.count;
  pthread_mutex_unlock(&s->imu);
  uint64_t pending = s->next_seq - 1 - s->applied_seq;
  uint64_t bound = s->live_contacts + 2 * (uint64_t)s->trash.count + idem +
                   s->feed.entries / REC_CHANGES_MAX + s->feed.n + 4 * pending +
                   ONLINE_SEQ_SLACK;
  pthread_rwlock_unlock(&s->ilock);
  *n = s->next_seq;
  *next_id = s->next_id;
  j->marker = *n + bound;
  j->first_no = s->tail_seg + 1 + CS_ONLINE_SEGMENT_GAP;
  s->rbuf.len = 0;
  int rc = rec_append_meta(&s->rbuf, j->marker, s->next_id);
  if (!rc)
    rc = commit_enqueue(s, REC_META, j->marker, 0, 0, &s->rbuf, NULL, NULL,
                        NULL);
  if (rc) {
    pthread_mutex_unlock(&s->wmu);
    return cs_err(err, rc, "out of memory");
  }
  s->next_seq = j->marker + 1;
  /* Every record below N applied (written_seq moves after the apply). */
  while (s->written_seq < *n - 1 && !s->failed)
    pthread_cond_wait(&s->fcv, &s->wmu);
  rc = s->failed ? cs_err(err, CS_EFAILED, "the store refuses writes: %s",
                          s->failed_msg)
                 : 0;
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

/* ------------------------------------------------------------- source */

/* Step 2: the log before record number end, replayed into a bare store without
 * indexes, with the windows and clock of opts. */
static int online_source(cs_store *s, const cs_options *opts, uint64_t end_seq,
                         cs_store **out, cs_error *err) {
  cs_options so = *opts;
  so.no_indexes = true;
  cs_store *src = store_new(s->dir, &so);
  if (!src) return cs_err(err, -ENOMEM, "out of memory");
  pthread_rwlock_rdlock(&s->ilock);
  src->first_seg = s->first_seg;
  src->last_seg = s->applied_seg < s->first_seg ? s->first_seg : s->applied_seg;
  uint64_t end = s->applied_off;
  pthread_rwlock_unlock(&s->ilock);
  /* The segments below the last applied one are whole; the last is read
   * to the end of what is applied, a record's end. */
  int rc = store_map_segments(src, err);
  if (!rc && end) src->segs[src->seg_count - 1].size = end;
  replay rp = {.s = src, .mode = REPLAY_STRICT, .err = err, .seq_end = end_seq};
  if (!rc) rc = replay_log(&rp, false);
  if (rc) {
    store_free(src);
    return rc;
  }
  *out = src;
  return 0;
}

/* ------------------------------------------------------------ copying */

/* Writes the copied records out to dst's last segment and syncs it. */
static int online_flush(online_job *j, cs_error *err) {
  cs_store *d = j->dst;
  if (!j->buf.len) return 0;
  const cs_io *io = d->io;
  long n = io->pwrite(io->ctx, j->out_fd, j->buf.ptr, j->buf.len, j->out_end);
  int rc = n < 0 ? (int)n : io->fdatasync(io->ctx, j->out_fd);
  if (rc)
    return cs_err(err, rc, "cannot write segment %u of the compaction: %s",
                  d->last_seg, cs_strerror(rc));
  j->out_end += j->buf.len;
  j->buf.len = 0;
  seg_map *m = log_seg(d->segs, d->first_seg, d->seg_count, d->last_seg);
  m->size = j->out_end;
  return 0;
}

/* Starts dst's next segment (created synced, mapped) for the copies. */
static int online_roll(online_job *j, cs_error *err) {
  cs_store *d = j->dst;
  int rc = online_flush(j, err);
  if (rc) return rc;
  uint32_t no = d->last_seg + 1;
  seg_map m;
  int fd;
  rc = log_seg_create(d, no, &fd, err);
  if (rc) return rc;
  d->last_seg = no; /* so that a failure removes it */
  rc = log_map_file(d, no, j->seg_max, &m, err);
  seg_map *p = rc ? NULL : realloc(d->segs, (d->seg_count + 1) * sizeof *p);
  if (!rc && !p) {
    munmap(m.map, m.map_len);
    rc = cs_err(err, -ENOMEM, "out of memory");
  }
  if (rc) {
    d->io->close(d->io->ctx, fd);
    return rc;
  }
  d->segs = p;
  d->segs[d->seg_count++] = m;
  d->io->close(d->io->ctx, j->out_fd);
  j->out_fd = fd;
  j->out_end = SEG_HEADER_BYTES;
  return 0;
}

/* One checked record of the live log, as it is (its number kept), marked
 * synced: it is synced before the manifest names it. */
static int online_put(online_job *j, const rec_view *r, cs_error *err) {
  uint32_t len = REC_HEADER_BYTES + r->len;
  if (j->out_end + j->buf.len + len > j->seg_max &&
      j->out_end + j->buf.len > SEG_HEADER_BYTES) {
    int rc = online_roll(j, err);
    if (rc) return rc;
  }
  if (rec_buf_reserve(&j->buf, len))
    return cs_err(err, -ENOMEM, "out of memory");
  uint8_t *at = j->buf.ptr + j->buf.len;
  memcpy(at + REC_HEADER_BYTES, r->payload, r->len);
  rec_frame_flags(at, r->type, r->seq, r->len, r->flags | REC_FLAG_SYNCED);
  j->buf.len += len;
  j->copied += len;
  return 0;
}

/* The records of live segment no from off to end, copied. */
static int online_copy_seg(online_job *j, uint32_t no, uint64_t off,
                           uint64_t end, cs_error *err) {
  char path[DIR_PATH_BYTES];
  log_seg_path(j->s, no, path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cs_err(err, -errno, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  int rc = fstat(fd, &st) < 0 ? -errno : 0;
  if (!rc && end == UINT64_MAX) end = (uint64_t)st.st_size;
  if (!rc && end > (uint64_t)st.st_size) rc = CS_ECORRUPT;
  uint8_t *map = NULL;
  if (!rc && end > off) {
    map = mmap(NULL, end, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) rc = -errno, map = NULL;
  }
  close(fd);
  if (rc) return cs_err(err, rc, "cannot read %s: %s", path, cs_strerror(rc));
  while (!rc && off < end) {
    rec_view r;
    if (rec_check(map + off, end - off, &r) != 0) {
      rc = cs_err(err, CS_ECORRUPT,
                  "%s: the record at offset %" PRIu64 " fails its checksum",
                  path, off);
      break;
    }
    rc = online_put(j, &r, err);
    off += REC_HEADER_BYTES + r.len;
  }
  if (map) munmap(map, end);
  return rc;
}

/* Copies the live log from where the last copy ended to (to_seg, to_off),
 * the end of what is applied, and replays it into dst. *bytes: how much. */
static int online_copy(online_job *j, uint32_t to_seg, uint64_t to_off,
                       uint64_t *bytes, cs_error *err) {
  int rc = 0;
  uint64_t before = j->copied;
  for (uint32_t no = j->from_seg; no <= to_seg && !rc; no++) {
    /* Segments before the applied one are whole. */
    uint64_t end = no == to_seg ? to_off : UINT64_MAX;
    rc = online_copy_seg(j, no, j->from_off, end, err);
    if (rc) break;
    if (no < to_seg) {
      j->from_seg = no + 1;
      j->from_off = SEG_HEADER_BYTES;
    } else {
      j->from_off = to_off;
    }
  }
  if (!rc) rc = online_flush(j, err);
  if (!rc) {
    replay rp = {.s = j->dst, .mode = REPLAY_STRICT, .err = err};
    rc = replay_log(&rp, true);
  }
  *bytes = j->copied - before;
  return rc;
}

/* ------------------------------------------------------------- switch */

/* The new segments renamed to their final names, the directory synced. */
static int online_rename(online_job *j, cs_error *err) {
  cs_store *d = j->dst;
  const cs_io *io = d->io;
  for (uint32_t no = d->first_seg; no <= d->last_seg; no++) {
    char from[DIR_PATH_BYTES], to[DIR_PATH_BYTES];
    log_seg_path(d, no, from);
    log_seg_path(j->s, no, to);
    int rc = io->rename(io->ctx, from, to);
    if (rc)
      return cs_err(err, rc, "cannot rename %s to %s: %s", from, to,
                    cs_strerror(rc));
    j->renamed = no - d->first_seg + 1;
  }
  int rc = io->fsync_dir(io->ctx, d->dir);
  return rc ? cs_err(err, rc, "cannot sync directory %s: %s", d->dir,
                     cs_strerror(rc))
            : 0;
}

#define SWAP(a, b)                                                             \
  do {                                                                         \
    __typeof__(a) swap_tmp_ = (a);                                             \
    (a) = (b);                                                                 \
    (b) = swap_tmp_;                                                           \
  } while (0)

/* What readers see, traded between s and d (ilock held for writing). */
static void online_trade(cs_store *s, cs_store *d) {
  SWAP(s->slots, d->slots);
  SWAP(s->acct_counts, d->acct_counts);
  SWAP(s->ix, d->ix);
  SWAP(s->segs, d->segs);
  s->segs_gen++; /* a standby's read finds its place again (ship.c) */
  SWAP(s->seg_count, d->seg_count);
  SWAP(s->first_seg, d->first_seg);
  SWAP(s->live_contacts, d->live_contacts);
  SWAP(s->live_bytes, d->live_bytes);
  SWAP(s->log_bytes, d->log_bytes);
  SWAP(s->applied_seq, d->applied_seq); /* the same, or the base's end */
  SWAP(s->applied_seg, d->applied_seg);
  SWAP(s->applied_off, d->applied_off);
  SWAP(s->max_id_seen, d->max_id_seen);
  SWAP(s->trash, d->trash);
  int64_t cutoff = s->feed.cutoff;
  SWAP(s->feed, d->feed);
  s->feed.cutoff = cutoff;
}

/* Step 5, on the commit thread with wmu held (commit_run_between). */
static void online_switch(cs_store *s, void *ctx) {
  online_job *j = ctx;
  cs_store *d = j->dst;
  cs_error *err = &j->err;
  uint64_t bytes;
  if (s->failed) {
    j->rc =
        cs_err(err, CS_EFAILED, "the store refuses writes: %s", s->failed_msg);
    return;
  }
  if (s->tail_seg >= j->first_no) {
    j->rc = cs_err(err, CS_EBUSY,
                   "the log grew by more than %u segments during the "
                   "compaction; run it again",
                   CS_ONLINE_SEGMENT_GAP);
    return;
  }
  j->rc = online_copy(j, s->applied_seg, s->applied_off, &bytes, err);
  /* Everything applied is copied: up to the store's last record, or, when
   * the marker is still queued (it moves with the queue), the base. */
  if (!j->rc && (s->applied_seq >= j->marker ? d->applied_seq != s->applied_seq
                                             : d->applied_seq >= j->marker))
    j->rc = cs_err(err, CS_ECORRUPT,
                   "the new log ends at %" PRIu64 " where the store is at "
                   "%" PRIu64,
                   d->applied_seq, s->applied_seq);
  if (!j->rc && commit_requeue_prepare(s) != 0)
    j->rc = cs_err(err, -ENOMEM, "out of memory");
  seg_map *retired = NULL;
  if (!j->rc) {
    retired = realloc(s->retired,
                      (s->retired_count + s->seg_count + 1) * sizeof *retired);
    if (!retired)
      j->rc = cs_err(err, -ENOMEM, "out of memory");
    else
      s->retired = retired;
  }
  if (!j->rc) j->rc = online_rename(j, err);
  if (j->rc) return;

  pthread_rwlock_wrlock(&s->ilock);
  pthread_mutex_lock(&s->mmu);
  j->old_first = s->first_seg;
  j->old_last = s->last_seg;
  j->old_snapshot = s->snapshot_name;
  s->first_seg = d->first_seg;
  s->last_seg = d->last_seg;
  s->snapshot_name = NULL;
  int rc = manifest_write(s, s->next_id, err);
  if (rc) {
    s->first_seg = j->old_first;
    s->last_seg = j->old_last;
    s->snapshot_name = j->old_snapshot;
    j->old_snapshot = NULL;
    pthread_mutex_unlock(&s->mmu);
    pthread_rwlock_unlock(&s->ilock);
    j->rc = rc;
    j->manifest_unknown = true;
    store_fail(s, rc, true, "online compaction's switch: %s", err->msg);
    return;
  }
  s->first_seg = j->old_first; /* traded back just below */
  online_trade(s, d);
  s->snapshot_seq = 0;
  s->snapshot_log_bytes = s->log_bytes;
  pthread_mutex_unlock(&s->mmu);
  /* The old maps stay until cs_close (contacts handed out point there). */
  memcpy(s->retired + s->retired_count, d->segs,
         d->seg_count * sizeof *d->segs);
  s->retired_count += d->seg_count;
  free(d->segs);
  d->segs = NULL;
  d->seg_count = 0;
  pthread_rwlock_unlock(&s->ilock);

  const cs_io *io = s->io;
  io->close(io->ctx, s->active_fd);
  s->active_fd = j->out_fd;
  j->out_fd = -1;
  s->active_seg = s->last_seg;
  s->active_written = s->active_durable = j->out_end;
  s->active_dirty = false;
  commit_requeue(s, s->active_seg, j->out_end);
  j->switched = true;
}

/* ------------------------------------------------------------ the call */

/* The new files of a compaction that did not switch. */
static void online_discard(online_job *j) {
  cs_store *d = j->dst;
  if (!d || j->manifest_unknown || !d->first_seg) return;
  if (j->renamed) {
    d->seg_tmp = false;
    log_seg_remove(d, d->first_seg, d->first_seg + j->renamed - 1);
    d->seg_tmp = true;
  }
  log_seg_remove(d, d->first_seg + j->renamed, d->last_seg);
}

/* Steps 1 to 5; the job holds what step 6 needs. */
static int online_run(online_job *j, const cs_compact_opts *o,
                      const cs_options *wo, cs_compact_result *res,
                      cs_error *err) {
  cs_store *s = j->s;
  uint64_t n = 0, next_id = 0;
  int rc = online_pin(j, &n, &next_id, err);
  cs_store *src = NULL;
  if (!rc) rc = online_source(s, wo, n, &src, err);
  if (rc) return rc;
  j->from_seg = src->applied_seg ? src->applied_seg : src->first_seg;
  j->from_off = src->applied_seg ? src->applied_off : SEG_HEADER_BYTES;
  j->dst = store_new(s->dir, wo);
  if (!j->dst) {
    store_free(src);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  j->dst->seg_tmp = true;
  rc = compact_build(src, j->dst, j->seg_max, j->first_no, n, next_id, o, res,
                     err);
  store_free(src);
  if (rc) {
    j->dst->first_seg = 0; /* compact_build removed its files */
    return rc;
  }
  if (j->dst->applied_seq >= j->marker)
    return cs_err(err, CS_ECORRUPT,
                  "the compacted log needs more than the %" PRIu64
                  " sequence numbers kept for it",
                  j->marker - n);
  char path[DIR_PATH_BYTES];
  log_seg_path(j->dst, j->dst->last_seg, path);
  j->out_fd = s->io->open(s->io->ctx, path, O_WRONLY, 0);
  if (j->out_fd < 0)
    return cs_err(err, j->out_fd, "cannot open %s: %s", path,
                  cs_strerror(j->out_fd));
  j->out_end = j->dst->segs[j->dst->seg_count - 1].size;
  /* Step 4: catch up without holding anything. */
  for (int round = 0; round < CS_ONLINE_CATCHUP_ROUNDS_MAX; round++) {
    pthread_rwlock_rdlock(&s->ilock);
    uint32_t to_seg = s->applied_seg;
    uint64_t to_off = s->applied_off;
    pthread_rwlock_unlock(&s->ilock);
    uint64_t bytes;
    rc = online_copy(j, to_seg, to_off, &bytes, err);
    if (rc) return rc;
    if (bytes < CS_ONLINE_SWITCH_LAG_BYTES) break;
  }
  commit_run_between(s, online_switch, j);
  if (j->rc) {
    if (err) *err = j->err;
    return j->rc;
  }
  return 0;
}

/* Step 6: the old files go, a fresh snapshot is written. Failures are
 * reported; the switch is made. */
static int online_finish(online_job *j, cs_error *err) {
  cs_store *s = j->s;
  int rc = compact_remove_old(s, j->old_first, j->old_last, err);
  if (j->old_snapshot) {
    char path[DIR_PATH_BYTES];
    store_path(s, path, sizeof path, j->old_snapshot);
    s->io->unlink(s->io->ctx, path);
  }
  cs_error serr;
  pthread_rwlock_rdlock(&s->ilock);
  int src = snap_save(s, &serr);
  pthread_rwlock_unlock(&s->ilock);
  if (src && !rc)
    rc = cs_err(err, src, "compacted, but no snapshot written: %s", serr.msg);
  return rc;
}

static int online_compact(cs_store *s, const cs_compact_opts *o,
                          cs_compact_result *res, cs_error *err) {
  cs_compact_opts none = {0};
  if (!o) o = &none;
  memset(res, 0, sizeof *res);
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  if (s->opts.no_indexes)
    return cs_err(err, CS_EINVAL, "the store was opened without indexes");
  /* Its pin numbers a range of records and a marker of its own. */
  if (cs_store_role(s) == CS_REPL_STANDBY)
    return cs_err(err, CS_ESTANDBY,
                  "a standby does not compact: its log is its primary's");
  if (__atomic_exchange_n(&s->compacting, 1, __ATOMIC_ACQ_REL))
    return cs_err(err, CS_EBUSY, "a compaction of %s is running", s->dir);
  /* The windows and the clock: o's, else the store's. */
  cs_options wo = {.io = s->io,
                   .segment_bytes_max = s->opts.segment_bytes_max,
                   .trash_ms = o->trash_ms > 0 ? o->trash_ms : s->opts.trash_ms,
                   .changes_ms =
                       o->changes_ms > 0 ? o->changes_ms : s->opts.changes_ms,
                   .now_ms = o->now_ms ? o->now_ms : s->opts.now_ms,
                   .now_ctx = o->now_ms ? o->now_ctx : s->opts.now_ctx,
                   .notice = s->opts.notice,
                   .notice_ctx = s->opts.notice_ctx,
                   .shard = s->shard,
                   .shard_set = true};
  cs_compact_opts co = *o;
  co.now_ms = wo.now_ms;
  co.now_ctx = wo.now_ctx;
  online_job j = {.s = s, .seg_max = s->opts.segment_bytes_max, .out_fd = -1};
  pthread_mutex_lock(&s->mmu);
  res->segments_before = s->last_seg - s->first_seg + 1;
  res->bytes_before =
      compact_store_bytes(s, s->first_seg, s->last_seg, s->snapshot_name);
  pthread_mutex_unlock(&s->mmu);
  int rc = online_run(&j, &co, &wo, res, err);
  if (j.out_fd >= 0) s->io->close(s->io->ctx, j.out_fd);
  if (!j.switched) online_discard(&j);
  if (j.switched) {
    rc = online_finish(&j, err);
    pthread_rwlock_rdlock(&s->ilock);
    res->contacts = s->live_contacts;
    pthread_rwlock_unlock(&s->ilock);
    pthread_mutex_lock(&s->mmu);
    res->segments_after = s->last_seg - s->first_seg + 1;
    res->bytes_after =
        compact_store_bytes(s, s->first_seg, s->last_seg, s->snapshot_name);
    pthread_mutex_unlock(&s->mmu);
    pthread_mutex_lock(&s->wmu);
    res->next_id = s->next_id;
    pthread_mutex_unlock(&s->wmu);
  }
  free(j.old_snapshot);
  rec_buf_free(&j.buf);
  store_free(j.dst);
  __atomic_store_n(&s->compacting, 0, __ATOMIC_RELEASE);
  return rc;
}

/* The work runs on a thread of its own at a lower priority, so that on a
 * busy machine the writers' commit thread and the readers come first. */
typedef struct online_call {
  cs_store *s;
  const cs_compact_opts *o;
  cs_compact_result *res;
  cs_error *err;
  int rc;
} online_call;

static void *online_thread(void *arg) {
  online_call *c = arg;
  /* Per thread on Linux; a failure only leaves it at the caller's. */
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
                    CS_ONLINE_COMPACT_NICE);
  c->rc = online_compact(c->s, c->o, c->res, c->err);
  return NULL;
}

int cs_compact_online(cs_store *s, const cs_compact_opts *o,
                      cs_compact_result *res, cs_error *err) {
  online_call c = {s, o, res, err, 0};
  pthread_t t;
  if (pthread_create(&t, NULL, online_thread, &c) != 0)
    return online_compact(s, o, res, err);
  pthread_join(t, NULL);
  return c.rc;
}
