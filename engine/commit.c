/*
 * commit.c: the write queue and the commit thread: group commit.
 *
 * A caller validates and queues a record under wmu and returns; the commit
 * thread takes the whole queue, writes it with one pwrite per segment,
 * syncs once for the batch (fdatasync, under CS_DURABILITY_FSYNC or when
 * cs_flush asks), applies the records to what readers see, then calls each
 * write's completion. So one fdatasync acknowledges many writes, and no
 * reader ever waits for a sync.
 *
 * Invariants kept (numbers from store_int.h):
 *   2. a record is applied (under ilock) only after it is durable (or
 *      written, under CS_DURABILITY_NONE), and before its completion runs:
 *      a write answered is on disk (DESIGN promise 1);
 *   3. a record's overlay entry goes when, and only when, it is applied;
 *   4. a failed write or fsync sets failed, which stays set: the store
 *      refuses writes until reopened, and no fsync is ever retried
 *      (promise 7). store_fail is the only writer of failed;
 *   - sequence numbers are queued strictly increasing, and each record is
 *     applied once, past the last applied (asserted).
 * Relied on: lock order wmu, ilock, mmu (store_int.h); the commit thread
 * alone touches active_fd, active_seg, active_dirty, active_written and
 * active_durable; the apply thread (applier_main) alone czone, and the
 * commit thread waits for it to be idle before a job between batches.
 */
#include "commit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cs_assert.h"
#include "dir.h"
#include "err.h"
#include "idem.h"
#include "log.h"
#include "overlay.h"
#include "pindex.h"
#include "ship.h"
#include "snap.h"
#include "store_int.h"

/* Queue growth: ops in the first array, chunks in the first array (one
 * per segment a batch spans), bytes in a chunk's first buffer. */
#define WQ_OPS_MIN 64
#define WQ_CHUNKS_MIN 4
#define WQ_CHUNK_BYTES_MIN (64 * 1024)

void wqueue_free(wqueue *q) {
  free(q->ops);
  for (size_t i = 0; i < q->chunk_cap; i++)
    rec_buf_free(&q->chunks[i].buf);
  free(q->chunks);
  memset(q, 0, sizeof *q);
}

/* The chunk the next record of segment tail_seg goes into. */
static wchunk *wq_chunk(cs_store *s, wqueue *q) {
  wchunk *ch = q->chunk_count ? &q->chunks[q->chunk_count - 1] : NULL;
  if (ch && ch->seg == s->tail_seg) return ch;
  if (q->chunk_count == q->chunk_cap) {
    size_t cap = q->chunk_cap ? q->chunk_cap * 2 : WQ_CHUNKS_MIN;
    wchunk *p = realloc(q->chunks, cap * sizeof *p);
    if (!p) return NULL;
    memset(p + q->chunk_cap, 0, (cap - q->chunk_cap) * sizeof *p);
    q->chunks = p;
    q->chunk_cap = cap;
  }
  ch = &q->chunks[q->chunk_count];
  if (ch->buf.cap == 0 && rec_buf_reserve(&ch->buf, WQ_CHUNK_BYTES_MIN))
    return NULL;
  ch->seg = s->tail_seg;
  ch->off = (uint32_t)s->tail_off;
  ch->buf.len = 0;
  q->chunk_count++;
  return ch;
}

int commit_enqueue(cs_store *s, uint8_t type, uint64_t seq, uint64_t id,
                   uint32_t account, const rec_buf *rec, cs_done_fn done,
                   void *ctx, struct idem_ent *idem) {
  wqueue *q = s->wq;
  uint32_t len = (uint32_t)rec->len;
  CS_ASSERT(q->count == 0 || q->ops[q->count - 1].seq < seq);
  if (s->tail_off + len > s->opts.segment_bytes_max &&
      s->tail_off > SEG_HEADER_BYTES) {
    s->tail_seg++;
    s->tail_off = SEG_HEADER_BYTES;
  }
  if (q->count == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : WQ_OPS_MIN;
    wop *p = realloc(q->ops, cap * sizeof *p);
    if (!p) return -ENOMEM;
    q->ops = p;
    q->cap = cap;
  }
  wchunk *ch = wq_chunk(s, q);
  if (!ch || rec_buf_reserve(&ch->buf, len)) return -ENOMEM;
  memcpy(ch->buf.ptr + ch->buf.len, rec->ptr, len);
  ch->buf.len += len;
  wop *op = &q->ops[q->count++];
  op->type = type;
  op->seq = seq;
  op->id = id;
  op->account = account;
  op->seg = s->tail_seg;
  op->off = (uint32_t)s->tail_off;
  op->len = len;
  op->done = done;
  op->ctx = ctx;
  op->idem = idem;
  op->shipped = false;
  s->tail_off += len;
  pthread_cond_signal(&s->wcv);
  return 0;
}

void store_fail(cs_store *s, int rc, bool tell, const char *fmt, ...) {
  if (s->failed) return;
  s->failed = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->failed_msg, sizeof s->failed_msg, fmt, ap);
  va_end(ap);
  if (tell) store_notice(s, "refusing writes from now on: %s", s->failed_msg);
}

/* Syncs the active segment if written since its last sync. Commit thread
 * only. */
static int sync_active(cs_store *s, char *what, size_t what_len) {
  if (!s->active_dirty) return 0;
  int rc = s->io->fdatasync(s->io->ctx, s->active_fd);
  __atomic_add_fetch(&s->fsyncs, 1, __ATOMIC_RELAXED);
  if (rc) {
    snprintf(what, what_len, "fdatasync of segment %u failed: %s",
             s->active_seg, cs_strerror(rc));
    return rc;
  }
  s->active_dirty = false;
  s->active_durable = s->active_written;
  return 0;
}

/* Maps new segment no for readers, and names it in the manifest. */
static int roll_publish(cs_store *s, uint32_t no, cs_error *err) {
  seg_map m;
  int rc = log_map_file(s, no, s->opts.segment_bytes_max, &m, err);
  if (rc) return rc;
  pthread_rwlock_wrlock(&s->ilock);
  seg_map *p = realloc(s->segs, (s->seg_count + 1) * sizeof *p);
  if (p) {
    s->segs = p;
    s->segs[s->seg_count++] = m;
  } else {
    rc = -ENOMEM;
    munmap(m.map, m.map_len);
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc) return rc;
  pthread_mutex_lock(&s->mmu);
  uint32_t prev = s->last_seg;
  s->last_seg = no;
  pthread_mutex_lock(&s->wmu);
  uint64_t next_id = s->next_id;
  pthread_mutex_unlock(&s->wmu);
  rc = manifest_write(s, next_id, err);
  if (rc) s->last_seg = prev;
  pthread_mutex_unlock(&s->mmu);
  return rc;
}

/* Seals the active segment and starts segment no. Commit thread only. */
static int roll(cs_store *s, uint32_t no, char *what, size_t what_len) {
  const cs_io *io = s->io;
  int rc = sync_active(s, what, what_len);
  if (rc) return rc;
  cs_error err;
  int fd;
  rc = log_seg_create(s, no, &fd, &err);
  if (!rc) {
    rc = roll_publish(s, no, &err);
    if (rc) io->close(io->ctx, fd);
  }
  if (rc) {
    snprintf(what, what_len, "%s", err.msg);
    return rc;
  }
  io->close(io->ctx, s->active_fd);
  s->active_fd = fd;
  s->active_seg = no;
  /* log_seg_create synced the header and the directory. */
  s->active_written = s->active_durable = SEG_HEADER_BYTES;
  return 0;
}

static int write_batch(cs_store *s, wqueue *b, char *what, size_t what_len) {
  const cs_io *io = s->io;
  for (size_t i = 0; i < b->chunk_count; i++) {
    wchunk *ch = &b->chunks[i];
    if (ch->seg != s->active_seg) {
      int rc = roll(s, ch->seg, what, what_len);
      if (rc) return rc;
    }
    /* Everything before this chunk is on disk: say so in its first
     * record, so that open can tell damage before it from a hole a power
     * cut left after it. */
    if (ch->off == s->active_durable && ch->buf.len)
      rec_mark_synced(ch->buf.ptr);
    long n =
        io->pwrite(io->ctx, s->active_fd, ch->buf.ptr, ch->buf.len, ch->off);
    if (n < 0) {
      snprintf(what, what_len, "write to segment %u at offset %u failed: %s",
               ch->seg, ch->off, cs_strerror((int)n));
      return (int)n;
    }
    s->active_dirty = true;
    s->active_written = (uint64_t)ch->off + ch->buf.len;
  }
  return 0;
}

static int apply_batch(cs_store *s, wqueue *b, char *what, size_t what_len) {
  int rc = 0;
  pthread_rwlock_wrlock(&s->ilock);
  s->feed.cutoff = store_now(s) - s->opts.changes_ms; /* feed.h */
  for (size_t i = 0; i < b->count && !rc; i++) {
    wop *op = &b->ops[i];
    /* Each record once, in order: never one already applied. */
    CS_ASSERT(op->seq > s->applied_seq);
    seg_map *m = log_seg(s->segs, s->first_seg, s->seg_count, op->seg);
    if (m && op->off + op->len > m->size) m->size = op->off + op->len;
    rec_view r;
    rec_body body;
    const char *why = "it fails its checksum after writing";
    cs_error err;
    if (!m || rec_check(m->map + op->off, m->size - op->off, &r) != 0 ||
        rec_decode(&r, &s->czone, &body, &why) != 0) {
      snprintf(what, what_len, "record %llu in segment %u at offset %u: %s",
               (unsigned long long)op->seq, op->seg, op->off, why);
      rc = CS_ECORRUPT;
      break;
    }
    /* A standby's: the entry is loaded as a replay loads it (follow.c). */
    if (op->shipped && body.idem.present) {
      pthread_mutex_lock(&s->imu);
      int irc = idem_load(&s->idem, body.contact.account, &body.idem, op->seq,
                          store_now(s));
      pthread_mutex_unlock(&s->imu);
      if (irc) {
        snprintf(what, what_len, "out of memory loading idempotency keys");
        rc = irc;
        break;
      }
    }
    rc = store_apply(s, op->seg, op->off, &r, &body, &err);
    if (rc) snprintf(what, what_len, "%s", err.msg);
  }
  pthread_rwlock_unlock(&s->ilock);
  __atomic_add_fetch(&s->commits, b->count, __ATOMIC_RELAXED);
  return rc;
}

/* Tells the commit watchers (cs_watch_add) the feed's new end. */
static void wake_watchers(cs_store *s, uint64_t end) {
  pthread_mutex_lock(&s->watchmu);
  for (uint32_t i = 0; i < s->watcher_count; i++)
    s->watchers[i].fn(s->watchers[i].ctx, end);
  pthread_mutex_unlock(&s->watchmu);
}

/* A batch to write, or a sync cs_flush waits for that the commit thread
 * has not made (synced: the last record it wrote and synced). Caller holds
 * wmu. */
static bool has_work(const cs_store *s, uint64_t synced) {
  return s->wq->count > 0 || (s->sync_req_seq > synced && !s->failed);
}

/* Bounds the replay a crash would cost. A failed snapshot is only
 * reported: the log is whole without it. */
static void snapshot_if_due(cs_store *s) {
  if (s->log_bytes - s->snapshot_log_bytes < s->opts.snapshot_every_bytes)
    return;
  cs_error serr;
  pthread_rwlock_rdlock(&s->ilock);
  int src = s->bulk ? 0 : snap_save(s, &serr); /* not mid-bulk */
  pthread_rwlock_unlock(&s->ilock);
  if (src) {
    store_notice(s, "periodic snapshot failed: %s", serr.msg);
    pthread_mutex_lock(&s->mmu);
    s->snapshot_log_bytes = s->log_bytes; /* try again later, not now */
    pthread_mutex_unlock(&s->mmu);
  }
}

/* The queue neither taking writes nor being applied (nor, when busy is
 * not NULL, busy): the commit thread's next batch trades places with it.
 * Caller holds wmu. */
static wqueue *wq_spare(cs_store *s, const wqueue *busy) {
  for (size_t i = 0; i < sizeof s->queues / sizeof s->queues[0]; i++) {
    wqueue *q = &s->queues[i];
    if (q != s->wq && q != s->applying && q != busy) return q;
  }
  CS_ASSERT(!"three queues, at most two of them in use");
  return NULL;
}

/* Waits until the apply thread has applied and answered everything handed
 * to it. Caller holds wmu. */
static void wait_applied(cs_store *s) {
  while (s->applying)
    pthread_cond_wait(&s->fcv, &s->wmu);
}

/*
 * The commit thread writes and syncs; the apply thread applies and
 * answers. A batch is written and synced here, then handed over (once the
 * batch before it is applied), and the next batch is written and synced
 * while it is applied: so the index work of one batch overlaps the
 * fdatasync of the next, and each batch is still applied only once it is
 * durable (invariant 2), in log order, and answered only once applied.
 * written_seq and synced_seq move when a batch is applied, so that a
 * flush, and whatever waits for written_seq, finds its writes applied.
 * A batch that failed (or follows a failure) is handed over too, so that
 * its completions run, with the failure, in order.
 */
static void *committer_main(void *arg) {
  cs_store *s = arg;
  /* The last record this thread wrote, and the last it knows synced. */
  uint64_t wrote = s->synced_seq, synced = s->synced_seq;
  pthread_mutex_lock(&s->wmu);
  for (;;) {
    while (!has_work(s, synced) && !s->closing && !s->between_fn)
      pthread_cond_wait(&s->wcv, &s->wmu);
    if (s->between_fn) { /* no batch in flight: run the job handed in */
      wait_applied(s);
      s->between_fn(s, s->between_ctx);
      s->between_fn = NULL;
      s->between_done = true;
      pthread_cond_broadcast(&s->fcv);
      continue;
    }
    if (!has_work(s, synced)) break; /* closing, and nothing left to do */
    wqueue *batch = s->wq;
    s->wq = wq_spare(s, batch);
    s->wq->count = 0;
    s->wq->chunk_count = 0;
    batch->synced =
        s->opts.durability == CS_DURABILITY_FSYNC || s->sync_req_seq > synced;
    int rc = s->failed;
    uint64_t last = batch->count ? batch->ops[batch->count - 1].seq : 0;
    pthread_mutex_unlock(&s->wmu);

    batch->what[0] = 0;
    if (!rc && batch->count)
      rc = write_batch(s, batch, batch->what, sizeof batch->what);
    if (!rc && batch->synced)
      rc = sync_active(s, batch->what, sizeof batch->what);
    /* Durable here: the standbys may have it (ship.c). */
    if (!rc && batch->count && ship_batch(s, batch, wrote) != 0) {
      rc = -ENOMEM;
      snprintf(batch->what, sizeof batch->what,
               "out of memory keeping a batch for the standbys");
    }

    pthread_mutex_lock(&s->wmu);
    if (!rc && last) wrote = last;
    if (!rc && batch->synced) synced = wrote; /* a sync covers all before */
    /* Failed here: refuse from now on, before the next batch is taken
     * (no write or fsync is tried again). */
    if (rc)
      store_fail(s, rc < 0 ? rc : CS_EFAILED, true, "%s",
                 batch->what[0] ? batch->what : cs_strerror(rc));
    batch->rc = rc;
    wait_applied(s);
    s->applying = batch;
    pthread_cond_signal(&s->acv);
  }
  wait_applied(s);
  pthread_mutex_unlock(&s->wmu);
  return NULL;
}

/* Runs the completions of batch b not run yet, with rc. */
static void answer_batch(wqueue *b, int rc) {
  for (size_t i = 0; i < b->count; i++) {
    cs_done_fn done = b->ops[i].done;
    b->ops[i].done = NULL;
    if (done) done(b->ops[i].ctx, rc, b->ops[i].id);
  }
}

/* Applies and answers the batches the commit thread hands over. */
static void *applier_main(void *arg) {
  cs_store *s = arg;
  pthread_mutex_lock(&s->wmu);
  for (;;) {
    while (!s->applying && !s->applier_stop)
      pthread_cond_wait(&s->acv, &s->wmu);
    if (!s->applying) break; /* the commit thread has ended */
    wqueue *batch = s->applying;
    /* A failure since it was synced (the batch before failed to apply):
     * it is durable but not applied, and answered with the failure. */
    int rc = batch->rc ? batch->rc : s->failed;
    /* Under CS_STANDBY_ACK_REQUIRED: applied only once a standby has it
     * (invariant 5); answered CS_ESTANDBY_DOWN once the wait times out,
     * applied when the acknowledgement comes, or left to the next open's
     * replay when the store closes first. */
    bool late = false, skip = false;
    int64_t deadline = cs_now_ms() + s->opts.standby_timeout_ms;
    bool answered = false;
    while (!rc && !ship_wait(s, batch, deadline, &late)) {
      if (!answered) {
        answered = true;
        pthread_mutex_unlock(&s->wmu);
        answer_batch(batch, CS_ESTANDBY_DOWN);
        pthread_mutex_lock(&s->wmu);
      }
      if (s->closing) {
        skip = true;
        break;
      }
    }
    pthread_mutex_unlock(&s->wmu);

    char *what = batch->what;
    if (!rc && batch->count && !skip)
      rc = apply_batch(s, batch, what, sizeof batch->what);
    if (!rc && batch->count && !skip)
      ship_applied(s, batch->ops[batch->count - 1].seq);

    pthread_mutex_lock(&s->wmu);
    if (rc) {
      store_fail(s, rc < 0 ? rc : CS_EFAILED, true, "%s",
                 what[0] ? what : cs_strerror(rc));
    } else if (skip) {
      /* closing: durable here, not applied; the next open replays it */
    } else {
      uint64_t last =
          batch->count ? batch->ops[batch->count - 1].seq : s->written_seq;
      s->written_seq = last;
      if (batch->synced) s->synced_seq = last;
      pthread_mutex_lock(&s->imu);
      for (size_t i = 0; i < batch->count; i++) {
        ov_applied(&s->ov, batch->ops[i].id, batch->ops[i].seq);
        if (batch->ops[i].idem) batch->ops[i].idem->state = IDEM_DONE;
      }
      pthread_mutex_unlock(&s->imu);
    }
    pthread_cond_broadcast(&s->fcv);
    pthread_mutex_unlock(&s->wmu);

    if (!rc && !skip && batch->count)
      wake_watchers(s, batch->ops[batch->count - 1].seq);
    if (!rc && !skip) snapshot_if_due(s);

    answer_batch(batch, rc ? (rc < 0 ? rc : CS_EFAILED) : 0);
    pthread_mutex_lock(&s->wmu);
    batch->count = 0;
    batch->chunk_count = 0;
    s->applying = NULL;
    pthread_cond_broadcast(&s->fcv);
  }
  pthread_mutex_unlock(&s->wmu);
  return NULL;
}

void commit_run_between(cs_store *s, void (*fn)(cs_store *s, void *ctx),
                        void *ctx) {
  pthread_mutex_lock(&s->wmu);
  while (s->between_fn) /* one job at a time */
    pthread_cond_wait(&s->fcv, &s->wmu);
  s->between_fn = fn;
  s->between_ctx = ctx;
  s->between_done = false;
  pthread_cond_signal(&s->wcv);
  while (!s->between_done)
    pthread_cond_wait(&s->fcv, &s->wmu);
  pthread_mutex_unlock(&s->wmu);
}

/* Bytes queued in q. */
static size_t wq_bytes(const wqueue *q) {
  size_t n = 0;
  for (size_t i = 0; i < q->chunk_count; i++)
    n += q->chunks[i].buf.len;
  return n;
}

int commit_requeue_prepare(cs_store *s) {
  wqueue *old = s->wq;
  wqueue *q = wq_spare(s, NULL);
  CS_ASSERT(q->count == 0); /* between batches the others are empty */
  size_t bytes = wq_bytes(old);
  /* Every chunk the records can need at the new tail: one per segment
   * they may span (each record fits a segment, so a segment holds at
   * least half its limit of them, or one record past it). */
  size_t chunks =
      old->chunk_count + 2 + bytes / (s->opts.segment_bytes_max / 2) + 1;
  if (q->cap < old->count) {
    wop *p = realloc(q->ops, old->count * sizeof *p);
    if (!p) return -ENOMEM;
    q->ops = p;
    q->cap = old->count;
  }
  if (q->chunk_cap < chunks) {
    wchunk *p = realloc(q->chunks, chunks * sizeof *p);
    if (!p) return -ENOMEM;
    memset(p + q->chunk_cap, 0, (chunks - q->chunk_cap) * sizeof *p);
    q->chunks = p;
    q->chunk_cap = chunks;
  }
  for (size_t i = 0; i < chunks; i++) {
    rec_buf *b = &q->chunks[i].buf;
    size_t want = bytes > WQ_CHUNK_BYTES_MIN ? bytes : WQ_CHUNK_BYTES_MIN;
    if (b->cap < want) {
      size_t len = b->len;
      b->len = 0;
      if (rec_buf_reserve(b, want)) return -ENOMEM;
      b->len = len;
    }
  }
  return 0;
}

void commit_requeue(cs_store *s, uint32_t seg, uint64_t off) {
  wqueue *old = s->wq;
  s->wq = wq_spare(s, NULL);
  s->tail_seg = seg;
  s->tail_off = off;
  size_t c = 0;
  for (size_t i = 0; i < old->count; i++) {
    const wop *op = &old->ops[i];
    while (old->chunks[c].seg != op->seg ||
           op->off >= old->chunks[c].off + old->chunks[c].buf.len)
      c++;
    const wchunk *ch = &old->chunks[c];
    rec_buf rec = {ch->buf.ptr + (op->off - ch->off), op->len, op->len};
    /* Room was made by commit_requeue_prepare: this cannot fail. */
    int rc = commit_enqueue(s, op->type, op->seq, op->id, op->account, &rec,
                            op->done, op->ctx, op->idem);
    CS_ASSERT(rc == 0);
  }
  old->count = 0;
  old->chunk_count = 0;
}

int commit_seal(cs_store *s, cs_error *err) {
  const cs_io *io = s->io;
  if (s->active_fd < 0) return 0;
  int rc = s->active_dirty ? io->fdatasync(io->ctx, s->active_fd) : 0;
  if (rc) return cs_err(err, rc, "final sync failed: %s", cs_strerror(rc));
  s->active_dirty = false;
  s->active_durable = s->active_written;
  if (s->written_seq <= s->open_seq) return 0; /* nothing new to vouch for */
  /* A standby's log numbers only its primary's records (follow.c). */
  if (s->ship.role == CS_REPL_STANDBY) return 0;
  rec_buf *b = &s->rbuf;
  b->len = 0;
  if (rec_append_meta(b, s->next_seq, s->next_id) ||
      s->active_written + b->len > s->opts.segment_bytes_max)
    return 0; /* no room: the next open's first synced batch vouches */
  rec_mark_synced(b->ptr);
  long n = io->pwrite(io->ctx, s->active_fd, b->ptr, b->len, s->active_written);
  rc = n < 0 ? (int)n : io->fdatasync(io->ctx, s->active_fd);
  if (rc)
    return cs_err(err, rc, "cannot seal segment %u: %s", s->active_seg,
                  cs_strerror(rc));
  s->next_seq++;
  s->active_written += b->len;
  s->active_durable = s->active_written;
  return 0;
}

int commit_start(cs_store *s, cs_error *err) {
  s->ship.durable_seq = s->ship.applied_seq = s->applied_seq;
  if (pthread_create(&s->applier, NULL, applier_main, s) != 0)
    return cs_err(err, -EAGAIN, "cannot start the apply thread");
  s->applier_started = true;
  if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
    commit_stop(s);
    return cs_err(err, -EAGAIN, "cannot start the commit thread");
  }
  s->committer_started = true;
  return 0;
}

void commit_stop(cs_store *s) {
  pthread_mutex_lock(&s->wmu);
  s->closing = true;
  pthread_cond_signal(&s->wcv);
  pthread_mutex_unlock(&s->wmu);
  if (s->committer_started) pthread_join(s->committer, NULL);
  s->committer_started = false;
  /* The commit thread waited for its last batch to be applied. */
  pthread_mutex_lock(&s->wmu);
  s->applier_stop = true;
  pthread_cond_signal(&s->acv);
  pthread_mutex_unlock(&s->wmu);
  if (s->applier_started) pthread_join(s->applier, NULL);
  s->applier_started = false;
}
