/*
 * follow.c: the standby's side of replication, and the roles.
 *
 * A standby (cs_options.standby) takes records only from its primary,
 * through cs_follow_append: each is checked by its checksum, decoded, and
 * must be numbered above the log's last; then it is queued through the
 * commit path with its own sequence number (commit_enqueue), so it is
 * written, synced and applied exactly as a write of this store would be,
 * and its idempotency entry is loaded as a replay loads it (commit.c
 * apply_batch, wop.shipped). Its REC_FLAG_SYNCED is cleared before it is
 * written: that flag speaks of the bytes before it in its own segment,
 * and this log's segments are not the primary's (write_batch sets it
 * again where it holds here).
 *
 * Roles (ship_state.role, under wmu): primary, standby, fenced. A fenced
 * store keeps the file FENCE_FILE in its directory, so it stays fenced
 * across restarts until it is opened as a standby. A standby writes no
 * record of its own: no seal at close (commit_seal), no online
 * compaction, no write (write.c writable).
 *
 * Invariants kept: a buffer is taken whole or not at all (every record is
 * checked before the first is queued); sequence numbers stay strictly
 * increasing through the log; ids are handed out, after promotion, past
 * every id the standby has seen (max_id_seen) and its own floor, with
 * CS_PROMOTE_ID_SKIP more between (the ids the old primary may have given
 * in records that never reached this store).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit.h"
#include "cs_assert.h"
#include "dir.h"
#include "err.h"
#include "record.h"
#include "ship.h"
#include "store_int.h"

#define FENCE_FILE "fenced"

cs_repl_role cs_store_role(cs_store *s) {
  return (cs_repl_role)__atomic_load_n(&s->ship.role, __ATOMIC_ACQUIRE);
}

const char *cs_repl_role_name(cs_repl_role r) {
  switch (r) {
  case CS_REPL_PRIMARY:
    return "primary";
  case CS_REPL_STANDBY:
    return "standby";
  case CS_REPL_FENCED:
    return "fenced";
  }
  return "unknown";
}

static void set_role(cs_store *s, cs_repl_role r) {
  __atomic_store_n(&s->ship.role, (int)r, __ATOMIC_RELEASE);
}

int follow_open(cs_store *s, cs_error *err) {
  char path[DIR_PATH_BYTES];
  store_path(s, path, sizeof path, FENCE_FILE);
  bool fenced = access(path, F_OK) == 0;
  if (s->opts.standby) {
    set_role(s, CS_REPL_STANDBY);
    if (fenced) { /* it rejoins as a standby: the fence has done its job */
      if (unlink(path) != 0 && errno != ENOENT)
        return cs_err(err, -errno, "cannot remove %s: %s", path,
                      strerror(errno));
      int rc = s->io->fsync_dir(s->io->ctx, s->dir);
      if (rc)
        return cs_err(err, rc, "cannot sync %s: %s", s->dir, cs_strerror(rc));
      store_notice(s, "%s removed: this store now follows a primary", path);
    }
  } else {
    set_role(s, fenced ? CS_REPL_FENCED : CS_REPL_PRIMARY);
  }
  return 0;
}

uint64_t cs_follow_last(cs_store *s) {
  pthread_mutex_lock(&s->wmu);
  uint64_t last = s->next_seq - 1;
  pthread_mutex_unlock(&s->wmu);
  return last;
}

/* Checks the whole records at the start of buf: *n of them in *used bytes,
 * the last numbered *last. Caller holds wmu. */
static int follow_check(cs_store *s, const uint8_t *p, size_t len, size_t *used,
                        size_t *n, uint64_t *last, cs_error *err) {
  uint64_t prev = s->next_seq - 1;
  size_t off = 0;
  *n = 0;
  while (off < len) {
    rec_view r;
    int c = rec_check(p + off, len - off, &r);
    if (c == REC_TRUNCATED && len - off < CS_RECORD_BYTES_MAX) break;
    if (c)
      return cs_err(err, CS_ECORRUPT,
                    "the record at byte %zu of what the primary sent fails "
                    "its checksum: nothing of it is taken",
                    off);
    if (r.seq <= prev)
      return cs_err(err, CS_ECORRUPT,
                    "record %llu does not follow record %llu: nothing of "
                    "what the primary sent is taken",
                    (unsigned long long)r.seq, (unsigned long long)prev);
    if (r.type == REC_CHANGES)
      return cs_err(err, CS_ECORRUPT,
                    "record %llu is a changes record, which only a "
                    "compaction writes: nothing is taken",
                    (unsigned long long)r.seq);
    rec_body b;
    const char *why;
    if (rec_decode(&r, &s->wzone, &b, &why) != 0)
      return cs_err(err, CS_ECORRUPT,
                    "record %llu does not decode (%s): nothing is taken",
                    (unsigned long long)r.seq, why);
    prev = r.seq;
    off += REC_HEADER_BYTES + r.len;
    (*n)++;
  }
  *used = off;
  *last = prev;
  return 0;
}

int cs_follow_append(cs_store *s, const void *buf, size_t len, size_t *used,
                     uint64_t *last_seq, cs_error *err) {
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  const uint8_t *p = buf;
  *used = 0;
  pthread_mutex_lock(&s->wmu);
  *last_seq = s->next_seq - 1;
  int rc = 0;
  size_t n = 0;
  if (s->ship.role != CS_REPL_STANDBY)
    rc = cs_err(err, CS_ESTANDBY, "this store is not a standby");
  else if (s->failed)
    rc = cs_err(err, CS_EFAILED, "the store refuses writes: %s", s->failed_msg);
  else if (s->closing)
    rc = cs_err(err, CS_ECLOSING, "the store is closing");
  else
    rc = follow_check(s, p, len, used, &n, last_seq, err);
  for (size_t off = 0, i = 0; !rc && i < n; i++) {
    rec_view r;
    rec_body b;
    const char *why;
    CS_ASSERT(rec_check(p + off, len - off, &r) == 0);
    CS_ASSERT(rec_decode(&r, &s->wzone, &b, &why) == 0);
    size_t rlen = REC_HEADER_BYTES + r.len;
    rec_buf *rb = &s->rbuf;
    rb->len = 0;
    if (rec_buf_reserve(rb, rlen)) {
      rc = -ENOMEM;
    } else {
      memcpy(rb->ptr, p + off, rlen);
      rb->len = rlen;
      rec_frame_flags(rb->ptr, r.type, r.seq, r.len,
                      r.flags & (uint8_t)~REC_FLAG_SYNCED);
      uint64_t id =
          b.type == REC_PUT || b.type == REC_DELETE ? b.contact.id : 0;
      rc = commit_enqueue(s, r.type, r.seq, id, b.contact.account, rb, NULL,
                          NULL, NULL);
    }
    if (rc) { /* records before it are queued: the log would have a hole */
      store_fail(s, rc, true,
                 "out of memory queueing record %llu from the "
                 "primary",
                 (unsigned long long)r.seq);
      cs_err(err, rc, "out of memory");
      break;
    }
    s->wq->ops[s->wq->count - 1].shipped = true;
    s->next_seq = r.seq + 1;
    if ((b.type == REC_PUT || b.type == REC_DELETE) &&
        b.contact.id >= s->next_id)
      s->next_id = b.contact.id + 1;
    if (b.type == REC_META && b.next_id > s->next_id) s->next_id = b.next_id;
    off += rlen;
  }
  /* Returns once applied: readers see them, and they are durable. */
  while (!rc && n && s->written_seq < *last_seq && !s->failed)
    pthread_cond_wait(&s->fcv, &s->wmu);
  if (!rc && n && s->written_seq < *last_seq)
    rc = cs_err(err, CS_EFAILED, "the store refuses writes: %s", s->failed_msg);
  pthread_mutex_unlock(&s->wmu);
  if (rc) *used = 0;
  return rc;
}

int cs_promote(cs_store *s, cs_error *err) {
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  pthread_mutex_lock(&s->wmu);
  int rc = 0;
  if (s->ship.role == CS_REPL_FENCED) {
    rc = cs_err(err, CS_EFENCED,
                "a fenced store is not promoted: it rejoins as a standby, "
                "restored from the new primary's backup");
  } else if (s->ship.role == CS_REPL_STANDBY) {
    /* Everything taken is applied first. */
    while (s->written_seq < s->next_seq - 1 && !s->failed)
      pthread_cond_wait(&s->fcv, &s->wmu);
    pthread_rwlock_rdlock(&s->ilock);
    uint64_t seen = s->max_id_seen;
    pthread_rwlock_unlock(&s->ilock);
    /* Past every id seen, and past the ids the old primary may have
     * handed out in records this store never got (its lag, or writes in
     * flight): CS_PROMOTE_ID_SKIP of them, kept by the manifest so that a
     * restart before the first create does not fall back. */
    if (seen + 1 > s->next_id) s->next_id = seen + 1;
    s->next_id += CS_PROMOTE_ID_SKIP;
    uint64_t nid = s->next_id;
    pthread_mutex_unlock(&s->wmu);
    pthread_mutex_lock(&s->mmu); /* never under wmu (store_int.h) */
    rc = manifest_write(s, nid, err);
    pthread_mutex_unlock(&s->mmu);
    pthread_mutex_lock(&s->wmu);
    if (!rc) {
      set_role(s, CS_REPL_PRIMARY);
      store_notice(s,
                   "promoted: taking writes after record %llu, ids from %llu",
                   (unsigned long long)(s->next_seq - 1),
                   (unsigned long long)s->next_id);
    }
  }
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

int cs_fence(cs_store *s, cs_error *err) {
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  pthread_mutex_lock(&s->wmu);
  int rc = 0;
  if (s->ship.role == CS_REPL_STANDBY) {
    rc = cs_err(err, CS_ESTANDBY, "a standby takes no writes to fence");
  } else if (s->ship.role == CS_REPL_PRIMARY) {
    static const char text[] =
        "fenced: this store refuses writes; it rejoins as a standby\n";
    rc = dir_replace(s->io, s->dir, FENCE_FILE, text, sizeof text - 1, err);
    if (!rc) {
      set_role(s, CS_REPL_FENCED);
      store_notice(s, "fenced: refusing writes from now on, across restarts");
    }
  }
  pthread_mutex_unlock(&s->wmu);
  return rc;
}
