/*
 * ship.c: what a primary hands its standbys: the records of its log,
 * exactly as framed (record.h), in log order, each once it is durable
 * here; and the acknowledgements a standby sends back, which the apply
 * thread waits for under CS_STANDBY_ACK_REQUIRED.
 *
 * Where a read takes its records from:
 *   - the ring (ship_state's blocks): one block per batch, copied by the
 *     commit thread once the batch is durable and before it is applied.
 *     Blocks form one chain (each one's prev_seq is the last seq of the
 *     one before), so a read at `last` continues in the block whose range
 *     (prev_seq, last_seq] holds the record after it. A block goes only
 *     once it is applied and the ring holds more than CS_SHIP_KEEP_BYTES,
 *     so every record durable and not yet applied is always in it;
 *   - the segment files, for a standby behind the ring: only applied
 *     records (up to applied_seg / applied_off, under ilock), found by
 *     their sequence number, checked again by their checksum (a flipped
 *     bit is never shipped), and found again after an online compaction
 *     traded the segments (segs_gen).
 *
 * Invariants kept:
 *   - a read hands out whole records with strictly increasing sequence
 *     numbers, continuing exactly after the position it was opened at or
 *     last handed out: the record after `last` in the log, never one
 *     skipped (the chain above, and the files' walk in log order);
 *   - under CS_STANDBY_ACK_REQUIRED a batch is applied (visible) only
 *     once acked_seq is at or past its last record (extends store_int.h
 *     invariant 2: durable here and on a standby); a wait that times out
 *     sets `down`, which makes every new write CS_ESTANDBY_DOWN until an
 *     acknowledgement comes, and the batch stays unapplied until then.
 * Relied on: ship_state.mu is a leaf (store_int.h's order); acked_seq,
 * acked_ms, down and role are under wmu.
 */
#include "ship.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_assert.h"
#include "dir.h"
#include "err.h"
#include "le.h"
#include "log.h"
#include "record.h"
#include "store_int.h"

struct cs_ship {
  cs_store *s;
  uint64_t last; /* the last record handed out (or the opening position) */
  /* Where the record after last is in the files, when known. */
  bool at_known;
  uint32_t seg;
  uint64_t off;
  uint64_t segs_gen;
};

int ship_init(ship_state *sh) {
  memset(sh, 0, sizeof *sh);
  if (pthread_mutex_init(&sh->mu, NULL)) return -ENOMEM;
  if (pthread_cond_init(&sh->cv, NULL)) {
    pthread_mutex_destroy(&sh->mu);
    return -ENOMEM;
  }
  return 0;
}

void ship_free(ship_state *sh) {
  for (ship_blk *k = sh->head, *next; k; k = next) {
    next = k->next;
    free(k);
  }
  sh->head = sh->tail = NULL;
  pthread_cond_destroy(&sh->cv);
  pthread_mutex_destroy(&sh->mu);
}

static void abs_after(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += (time_t)(ms / 1000);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* ------------------------------------------------ the commit side */

int ship_batch(cs_store *s, const wqueue *b, uint64_t prev) {
  if (!b->count) return 0;
  size_t len = 0;
  for (size_t i = 0; i < b->chunk_count; i++)
    len += b->chunks[i].buf.len;
  ship_blk *k = malloc(sizeof *k + len);
  if (!k) return -ENOMEM;
  k->next = NULL;
  k->prev_seq = prev;
  k->last_seq = b->ops[b->count - 1].seq;
  k->made_ms = cs_now_ms();
  k->len = 0;
  for (size_t i = 0; i < b->chunk_count; i++) {
    memcpy(k->data + k->len, b->chunks[i].buf.ptr, b->chunks[i].buf.len);
    k->len += b->chunks[i].buf.len;
  }
  ship_state *sh = &s->ship;
  pthread_mutex_lock(&sh->mu);
  CS_ASSERT(!sh->tail || sh->tail->last_seq == prev);
  if (sh->tail)
    sh->tail->next = k;
  else
    sh->head = k;
  sh->tail = k;
  sh->bytes += len;
  sh->durable_seq = k->last_seq;
  while (sh->head != sh->tail && sh->head->last_seq <= sh->applied_seq &&
         sh->bytes > CS_SHIP_KEEP_BYTES) {
    ship_blk *h = sh->head;
    sh->head = h->next;
    sh->bytes -= h->len;
    free(h);
  }
  pthread_cond_broadcast(&sh->cv);
  pthread_mutex_unlock(&sh->mu);
  return 0;
}

void ship_applied(cs_store *s, uint64_t seq) {
  pthread_mutex_lock(&s->ship.mu);
  s->ship.applied_seq = seq;
  pthread_mutex_unlock(&s->ship.mu);
}

bool ship_wait(cs_store *s, const wqueue *b, int64_t deadline_ms,
               bool *timed_out) {
  /* A standby's batches are its primary's records: nothing to wait for
   * until it is promoted (so a pair may run with the same options). */
  if (s->opts.standby_ack != CS_STANDBY_ACK_REQUIRED || !b->count ||
      s->ship.role == CS_REPL_STANDBY)
    return true;
  uint64_t last = b->ops[b->count - 1].seq;
  while (s->ship.acked_seq < last) {
    int64_t now = cs_now_ms();
    if (!*timed_out && now >= deadline_ms) {
      *timed_out = true;
      if (!s->ship.down)
        store_notice(s,
                     "no standby acknowledged record %llu within %u ms: "
                     "refusing writes until one does",
                     (unsigned long long)last, s->opts.standby_timeout_ms);
      s->ship.down = true;
      return false;
    }
    /* Answered already: the store closing gives up the wait (the batch
     * is in the log; the next open applies it). */
    if (*timed_out && s->closing) return false;
    struct timespec ts;
    abs_after(&ts, *timed_out ? 100 : deadline_ms - now);
    pthread_cond_timedwait(&s->acv, &s->wmu, &ts);
  }
  return true;
}

void ship_close(cs_store *s) {
  pthread_mutex_lock(&s->ship.mu);
  s->ship.closing = true;
  pthread_cond_broadcast(&s->ship.cv);
  pthread_mutex_unlock(&s->ship.mu);
}

/* ------------------------------------------------------ the ring */

/* The block holding the record after last, or NULL. Caller holds mu. */
static ship_blk *ring_find(ship_state *sh, uint64_t last) {
  for (ship_blk *k = sh->head; k; k = k->next)
    if (k->prev_seq <= last && last < k->last_seq) return k;
  return NULL;
}

/* Does block k hold a record numbered seq? */
static bool blk_has(const ship_blk *k, uint64_t seq) {
  for (size_t off = 0; off + REC_HEADER_BYTES <= k->len;) {
    uint64_t rs = le_get64(k->data + off + 8);
    if (rs == seq) return true;
    if (rs > seq) return false;
    off += REC_HEADER_BYTES + le_get32(k->data + off);
  }
  return false;
}

/* Copies the records after sh->last from k on, while they fit. Caller
 * holds mu. */
static void ring_copy(cs_ship *sh, ship_blk *k, uint8_t *buf, size_t cap,
                      size_t *len) {
  for (; k; k = k->next) {
    for (size_t off = 0; off + REC_HEADER_BYTES <= k->len;) {
      size_t n = REC_HEADER_BYTES + le_get32(k->data + off);
      uint64_t rs = le_get64(k->data + off + 8);
      if (rs > sh->last) {
        if (*len + n > cap) return;
        memcpy(buf + *len, k->data + off, n);
        *len += n;
        sh->last = rs;
        sh->at_known = false; /* the files' position is behind now */
      }
      off += n;
    }
  }
}

/* ----------------------------------------------------- the files */

/* Where the applied records of segment m end. Caller holds ilock. */
static uint64_t seg_end(const cs_store *s, const seg_map *m) {
  if (m->no < s->applied_seg) return m->size;
  if (m->no == s->applied_seg) return s->applied_off;
  return SEG_HEADER_BYTES;
}

static int bad_rec(cs_store *s, const seg_map *m, uint64_t off, cs_error *err) {
  char name[SEG_NAME_BYTES];
  seg_name(name, sizeof name, m->no);
  return cs_err(err, CS_ECORRUPT,
                "%s/%s: damaged record at offset %llu: not shipped; run "
                "contactctl verify",
                s->dir, name, (unsigned long long)off);
}

/* Finds, among the applied records, the one numbered seq (0: the log's
 * start, when its first record is numbered 1 or it has none), and puts sh
 * after it. Caller holds ilock. */
static int files_find(cs_ship *sh, uint64_t seq, cs_error *err) {
  cs_store *s = sh->s;
  bool any = false; /* a record seen */
  for (uint32_t i = 0; i < s->seg_count; i++) {
    seg_map *m = &s->segs[i];
    uint64_t end = seg_end(s, m), off = SEG_HEADER_BYTES;
    /* A later segment starting at or before seq: this one is all before. */
    if (seq && i + 1 < s->seg_count) {
      seg_map *n = &s->segs[i + 1];
      uint64_t nend = seg_end(s, n);
      rec_view r;
      if (nend > SEG_HEADER_BYTES &&
          rec_check(n->map + SEG_HEADER_BYTES, nend - SEG_HEADER_BYTES, &r) ==
              0 &&
          r.seq <= seq)
        continue;
    }
    while (off < end) {
      rec_view r;
      if (rec_check(m->map + off, end - off, &r))
        return bad_rec(s, m, off, err);
      if (!any && seq == 0 && r.seq == 1) {
        sh->seg = m->no, sh->off = off; /* before the log's first record */
        goto found;
      }
      any = true;
      if (seq == 0 || r.seq > seq) goto gone;
      off += REC_HEADER_BYTES + r.len;
      if (r.seq == seq) {
        sh->seg = m->no, sh->off = off;
        goto found;
      }
    }
  }
  if (seq == 0 && !any) { /* an empty log */
    sh->seg = s->first_seg, sh->off = SEG_HEADER_BYTES;
    goto found;
  }
gone:
  return cs_err(err, CS_ESHIP_GONE,
                "this log does not hold record %llu (its last applied is "
                "%llu): the standby starts again from a backup",
                (unsigned long long)seq, (unsigned long long)s->applied_seq);
found:
  sh->at_known = true;
  sh->segs_gen = s->segs_gen;
  return 0;
}

/* Copies applied records after sh->last from the files, while they fit. */
static int files_copy(cs_ship *sh, uint8_t *buf, size_t cap, size_t *len,
                      cs_error *err) {
  cs_store *s = sh->s;
  int rc = 0;
  pthread_rwlock_rdlock(&s->ilock);
  if (!sh->at_known || sh->segs_gen != s->segs_gen)
    rc = files_find(sh, sh->last, err);
  while (!rc) {
    seg_map *m = log_seg(s->segs, s->first_seg, s->seg_count, sh->seg);
    if (!m) break;
    uint64_t end = seg_end(s, m);
    while (sh->off < end) {
      rec_view r;
      if (rec_check(m->map + sh->off, end - sh->off, &r)) {
        rc = bad_rec(s, m, sh->off, err);
        break;
      }
      size_t n = REC_HEADER_BYTES + r.len;
      if (*len + n > cap) goto out;
      memcpy(buf + *len, m->map + sh->off, n);
      *len += n;
      sh->last = r.seq;
      sh->off += n;
    }
    if (rc || sh->seg >= s->applied_seg) break;
    sh->seg++;
    sh->off = SEG_HEADER_BYTES;
  }
out:
  pthread_rwlock_unlock(&s->ilock);
  return rc;
}

/* ----------------------------------------------------- the reads */

int cs_ship_open(cs_store *s, uint64_t after, cs_ship **out, cs_error *err) {
  *out = NULL;
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  cs_ship *sh = calloc(1, sizeof *sh);
  if (!sh) return cs_err(err, -ENOMEM, "out of memory");
  sh->s = s;
  sh->last = after;
  ship_state *st = &s->ship;
  int rc = 0;
  bool files = false;
  pthread_mutex_lock(&st->mu);
  ship_blk *k = ring_find(st, after);
  if (st->closing) {
    rc = cs_err(err, CS_ECLOSING, "the store is closing");
  } else if (after > st->durable_seq) {
    rc = cs_err(err, CS_ESHIP_GONE,
                "the standby is at record %llu, past this log's end (%llu): "
                "it starts again from a backup",
                (unsigned long long)after, (unsigned long long)st->durable_seq);
  } else if (k && after != k->prev_seq && !blk_has(k, after)) {
    rc = cs_err(err, CS_ESHIP_GONE,
                "this log holds no record %llu: the standby starts again "
                "from a backup",
                (unsigned long long)after);
  } else if (!k && !(st->tail && after == st->tail->last_seq)) {
    files = true;
  }
  if (!rc) st->readers++;
  pthread_mutex_unlock(&st->mu);
  if (!rc && files) {
    pthread_rwlock_rdlock(&s->ilock);
    rc = files_find(sh, after, err);
    pthread_rwlock_unlock(&s->ilock);
    if (rc) cs_ship_close(sh), sh = NULL;
  } else if (rc) {
    free(sh);
    sh = NULL;
  }
  *out = sh;
  return rc;
}

uint64_t cs_ship_position(const cs_ship *sh) {
  return sh->last;
}

void cs_ship_close(cs_ship *sh) {
  if (!sh) return;
  pthread_mutex_lock(&sh->s->ship.mu);
  sh->s->ship.readers--;
  pthread_mutex_unlock(&sh->s->ship.mu);
  free(sh);
}

int cs_ship_read(cs_ship *sh, void *buf, size_t cap, size_t *len, int wait_ms,
                 cs_error *err) {
  *len = 0;
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  if (cap < CS_RECORD_BYTES_MAX)
    return cs_err(err, CS_EINVAL, "a read needs room for the largest record");
  ship_state *st = &sh->s->ship;
  struct timespec until;
  abs_after(&until, wait_ms < 0 ? 0 : wait_ms);
  for (;;) {
    pthread_mutex_lock(&st->mu);
    if (st->closing) {
      pthread_mutex_unlock(&st->mu);
      return cs_err(err, CS_ECLOSING, "the store is closing");
    }
    ship_blk *k = ring_find(st, sh->last);
    if (k) {
      ring_copy(sh, k, buf, cap, len);
      pthread_mutex_unlock(&st->mu);
      return 0;
    }
    bool behind = sh->last < st->durable_seq;
    if (!behind) {
      int w = pthread_cond_timedwait(&st->cv, &st->mu, &until);
      pthread_mutex_unlock(&st->mu);
      if (w == ETIMEDOUT) return 0;
      continue;
    }
    pthread_mutex_unlock(&st->mu);
    /* Behind the ring: the applied records are in the files. */
    int rc = files_copy(sh, buf, cap, len, err);
    if (rc || *len) return rc;
    /* Not applied yet (the ring was trimmed meanwhile): wait a moment. */
    pthread_mutex_lock(&st->mu);
    int w = pthread_cond_timedwait(&st->cv, &st->mu, &until);
    pthread_mutex_unlock(&st->mu);
    if (w == ETIMEDOUT) return 0;
  }
}

int cs_ship_ack(cs_store *s, uint64_t seq, cs_error *err) {
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  pthread_mutex_lock(&s->ship.mu);
  uint64_t durable = s->ship.durable_seq;
  pthread_mutex_unlock(&s->ship.mu);
  if (seq > durable)
    return cs_err(err, CS_EINVAL,
                  "seq: %llu is past the last durable record (%llu)",
                  (unsigned long long)seq, (unsigned long long)durable);
  pthread_mutex_lock(&s->wmu);
  if (seq > s->ship.acked_seq || s->ship.down) {
    if (seq > s->ship.acked_seq) s->ship.acked_seq = seq;
    s->ship.acked_ms = cs_now_ms();
    if (s->ship.down)
      store_notice(s, "a standby acknowledged record %llu: taking writes again",
                   (unsigned long long)seq);
    s->ship.down = false;
    pthread_cond_broadcast(&s->acv);
  } else {
    s->ship.acked_ms = cs_now_ms();
  }
  pthread_mutex_unlock(&s->wmu);
  return 0;
}

void cs_repl_get(cs_store *s, cs_repl_info *out) {
  memset(out, 0, sizeof *out);
  out->standby_ack = s->opts.standby_ack;
  out->standby_timeout_ms = s->opts.standby_timeout_ms;
  pthread_mutex_lock(&s->wmu);
  out->role = (cs_repl_role)s->ship.role;
  out->last_seq = s->next_seq - 1;
  out->acked_seq = s->ship.acked_seq;
  out->acked_ms = s->ship.acked_ms;
  out->unavailable = s->ship.down;
  pthread_mutex_unlock(&s->wmu);
  ship_state *st = &s->ship;
  pthread_mutex_lock(&st->mu);
  out->readers = st->readers;
  out->durable_seq = st->durable_seq;
  if (out->acked_seq < st->durable_seq) {
    out->lag_records = st->durable_seq - out->acked_seq;
    ship_blk *k = st->head;
    while (k && k->last_seq <= out->acked_seq)
      k = k->next;
    if (k) out->lag_ms = cs_now_ms() - k->made_ms;
    if (out->lag_ms < 0) out->lag_ms = 0;
  }
  pthread_mutex_unlock(&st->mu);
}
