/*
 * load.c: the bulk load of admin.h (cs_load_*): contactctl load's way
 * into a store, written as segments and indexed as a replay indexes.
 *
 * cs_load_add checks a contact the way a create is checked (values,
 * email uniqueness against the store through email_owner and against the
 * load itself through a map of its own) and, when it keeps an id, the way
 * cs_import checks identity (import.h); it then encodes the contact's put
 * record at once (seq 0, and for a new contact the placeholder id
 * CS_ID_MIN) into one buffer, so the load holds each contact once, in the
 * form it is written in. cs_load_commit gives the new contacts their ids,
 * sorts every put by id and writes them into new segments numbered past
 * the last one, the trash entries' deletes after them in deletion order,
 * and a meta record with the new id floor; it syncs each file and the
 * directory, then switches the manifest (the one step that makes the load
 * part of the store: see admin.h), maps the new segments and replays them
 * into the slots and the indexes in the indexes' bulk mode, as open
 * replays a log without a snapshot. The commit thread's active segment
 * moves to the new last one, so later appends (the seal at close) follow
 * the load's records.
 *
 * Invariants kept: slot order is id order (puts written in id order, every
 * id at or past the floor); sequence numbers keep increasing through the
 * log (the load's follow every record written before); every record a
 * load writes is marked synced, as compaction's are, since its files are
 * synced before the manifest names them.
 * Relied on: the caller accepts no other write meanwhile (admin.h); the
 * commit thread is idle while wmu is held and the queue is empty, so its
 * active_* fields may be moved under wmu.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xxhash.h>

#include "admin.h"
#include "cs_assert.h"
#include "dir.h"
#include "err.h"
#include "import.h"
#include "log.h"
#include "replay.h"
#include "store_int.h"
#include "write.h"

/* Progress is reported every this many contacts (a mask). */
#define LOAD_PROGRESS_MASK 0x3fff
/* The second hash of an email is seeded apart from the first, so a
 * collision of one is told from a duplicate by the other. */
#define LOAD_EMAIL_SEED2 0x9e3779b97f4a7c15ull

/* One contact kept: where its put is in the buffer, and what the commit
 * needs without decoding it. */
typedef struct load_item {
  uint64_t id; /* 0 until the commit gives a new contact its id */
  uint64_t tag;
  uint64_t off;    /* of its framed put in recs */
  uint64_t email2; /* the email's second hash, 0 for a trash entry */
  int64_t deleted_ms;
  uint64_t version;
  uint32_t len;
  uint32_t account;
} load_item;

struct cs_load {
  cs_store *s;
  uint64_t floor; /* the store's next_id when the load began */
  int64_t now;
  rec_buf recs;
  load_item *items;
  size_t count;
  size_t cap;
  uint64_t max_id; /* the largest id kept, 0 none */
  u64map ids;      /* kept id -> item index + 1 */
  u64map emails;   /* email hash -> item index + 1 */
};

int cs_load_begin(cs_store *s, cs_load **out, cs_error *err) {
  *out = NULL;
  pthread_mutex_lock(&s->wmu);
  int rc = 0;
  if (s->opts.no_indexes || s->bulk)
    rc = cs_err(err, CS_EINVAL, "the store is in no state for a load");
  else if (s->wq->count || s->written_seq + 1 != s->next_seq)
    rc = cs_err(err, CS_EINVAL, "writes are queued: flush them first");
  uint64_t floor = s->next_id;
  pthread_mutex_unlock(&s->wmu);
  if (rc) return rc;
  cs_load *l = calloc(1, sizeof *l);
  if (!l) return cs_err(err, -ENOMEM, "out of memory");
  l->s = s;
  l->floor = floor;
  l->now = store_now(s);
  *out = l;
  return 0;
}

void cs_load_free(cs_load *l) {
  if (!l) return;
  rec_buf_free(&l->recs);
  free(l->items);
  u64map_free(&l->ids);
  u64map_free(&l->emails);
  free(l);
}

/* The identity c brings, or a new contact's. */
static int load_identity(cs_load *l, cs_contact *c, uint64_t *dup_tag,
                         cs_error *err) {
  if (!c->id) {
    c->created_ms = c->updated_ms = l->now;
    if (c->deleted_ms) c->deleted_ms = l->now;
    if (!c->version) c->version = 1;
    return 0;
  }
  int rc = import_identity_check(c, err);
  if (rc) return rc;
  rc = import_id_check(l->s->shard, l->floor, c->id, err);
  if (rc) return rc;
  uint64_t *at = u64map_get(&l->ids, c->id);
  if (at) {
    *dup_tag = l->items[*at - 1].tag;
    return cs_err(err, CS_EINVAL, "id: %020llu is given twice",
                  (unsigned long long)c->id);
  }
  return 0;
}

/* The email of live contact c against the store and the load: 0 with its
 * map key and second hash, or the refusal. */
static int load_email(cs_load *l, uint32_t account, const cs_contact *c,
                      uint64_t *key, uint64_t *h2, uint64_t *dup_tag,
                      cs_error *err) {
  cs_store *s = l->s;
  uint64_t owner = 0;
  pthread_mutex_lock(&s->wmu);
  int rc = email_owner(s, account, &c->field[CS_EMAIL], 0, &owner, err);
  /* email_owner leaves the case-folded email in fb_case (under wmu). */
  uint64_t h1 = XXH3_64bits_withSeed(s->fb_case.ptr, s->fb_case.len, account);
  *h2 = XXH3_64bits_withSeed(s->fb_case.ptr, s->fb_case.len,
                             account ^ LOAD_EMAIL_SEED2) |
        1u;
  pthread_mutex_unlock(&s->wmu);
  if (rc) return rc;
  if (owner) return email_taken(owner, err);
  /* Probe past other emails whose first hash is the same. */
  for (uint64_t k = h1 ? h1 : 1;; k = u64_mix(k) | 1u) {
    uint64_t *at = u64map_get(&l->emails, k);
    if (!at) {
      *key = k;
      return 0;
    }
    const load_item *it = &l->items[*at - 1];
    if (it->email2 == *h2 && it->account == account) {
      *dup_tag = it->tag;
      cs_err(err, CS_EDUPLICATE, "email: already used by an earlier contact");
      if (err) err->field = CS_EMAIL;
      return CS_EDUPLICATE;
    }
  }
}

int cs_load_add(cs_load *l, uint32_t account, cs_contact *c, uint64_t tag,
                uint64_t *dup_tag, cs_error *err) {
  *dup_tag = 0;
  if (account > CS_ACCOUNT_ID_MAX)
    return cs_err(err, CS_EINVAL, "invalid account number");
  int rc = cs_contact_validate(c, err);
  if (!rc) rc = load_identity(l, c, dup_tag, err);
  uint64_t key = 0, h2 = 0;
  if (!rc && !c->deleted_ms)
    rc = load_email(l, account, c, &key, &h2, dup_tag, err);
  if (rc) return rc;
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4096;
    load_item *p = realloc(l->items, cap * sizeof *p);
    if (!p) return cs_err(err, -ENOMEM, "out of memory");
    l->items = p;
    l->cap = cap;
  }
  cs_contact put = *c;
  put.account = account;
  if (!put.id) put.id = CS_ID_MIN; /* set at the commit: rec_put_set_id */
  size_t off = l->recs.len;
  rc = rec_append_put(&l->recs, 0, &put, NULL, 0);
  if (rc)
    return cs_err(err, rc == CS_EINVAL ? CS_EINVAL : -ENOMEM,
                  rc == CS_EINVAL ? "the contact is too large to store"
                                  : "out of memory");
  size_t i = l->count;
  if ((c->id && u64map_put(&l->ids, c->id, i + 1)) ||
      (key && u64map_put(&l->emails, key, i + 1))) {
    l->recs.len = off;
    return cs_err(err, -ENOMEM, "out of memory");
  }
  l->items[l->count++] = (load_item){c->id,
                                     tag,
                                     off,
                                     h2,
                                     c->deleted_ms,
                                     put.version,
                                     (uint32_t)(l->recs.len - off),
                                     account};
  if (c->id > l->max_id) l->max_id = c->id;
  return 0;
}

/* ------------------------------------------------------------- commit */

/* The store may take the load now: it accepts writes, and none is queued
 * or unwritten. Caller holds wmu. */
static int load_state_ok(cs_store *s, cs_error *err) {
  int rc = write_check_open(s, err);
  if (!rc && (s->wq->count || s->written_seq + 1 != s->next_seq))
    rc = cs_err(err, CS_EINVAL, "writes are queued: flush them first");
  return rc;
}

static int item_by_id(const void *a, const void *b) {
  const load_item *x = *(const load_item *const *)a;
  const load_item *y = *(const load_item *const *)b;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int item_by_deletion(const void *a, const void *b) {
  const load_item *x = *(const load_item *const *)a;
  const load_item *y = *(const load_item *const *)b;
  if (x->deleted_ms != y->deleted_ms)
    return x->deleted_ms < y->deleted_ms ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* The segments being written: b holds segment no until it is full. */
typedef struct load_out {
  cs_store *s;
  rec_buf b;
  uint32_t first_no;
  uint32_t no;
  uint64_t seq;
} load_out;

/* Appends a framed record (its payload at rec + REC_HEADER_BYTES, len
 * bytes in all) as the next sequence number, writing the segment out first
 * when the record would pass the size limit. */
static int out_put(load_out *w, uint8_t type, const uint8_t *rec, size_t len,
                   cs_error *err) {
  if (w->b.len + len > w->s->opts.segment_bytes_max &&
      w->b.len > SEG_HEADER_BYTES) {
    int rc = log_seg_write(w->s, w->no, &w->b, err);
    if (rc) return rc;
    log_seg_start(&w->b, ++w->no);
  }
  memcpy(w->b.ptr + w->b.len, rec, len);
  rec_frame_flags(w->b.ptr + w->b.len, type, w->seq++,
                  (uint32_t)(len - REC_HEADER_BYTES), REC_FLAG_SYNCED);
  w->b.len += len;
  return 0;
}

/* Writes the sorted puts, the deletes and the meta record into segments
 * w->first_no.. (w->no the last), each synced, then the directory. */
static int load_write(cs_load *l, load_out *w, load_item **by_id,
                      load_item **trash, size_t ntrash, uint64_t next_id,
                      cs_progress_fn progress, void *pctx, cs_error *err) {
  cs_store *s = l->s;
  rec_buf one = {0};
  int rc = rec_buf_reserve(&w->b, (size_t)s->opts.segment_bytes_max +
                                      CS_RECORD_BYTES_MAX)
               ? -ENOMEM
               : 0;
  if (rc) return cs_err(err, rc, "out of memory");
  log_seg_start(&w->b, w->no);
  for (size_t i = 0; i < l->count && !rc; i++) {
    uint8_t *rec = l->recs.ptr + by_id[i]->off;
    rec_put_set_id(rec, by_id[i]->id);
    rc = out_put(w, REC_PUT, rec, by_id[i]->len, err);
    if (progress && (i & LOAD_PROGRESS_MASK) == LOAD_PROGRESS_MASK)
      progress(pctx, i + 1, l->count);
  }
  for (size_t i = 0; i < ntrash && !rc; i++) {
    const load_item *it = trash[i];
    rec_del d = {it->id, it->account, it->deleted_ms, false, it->version};
    one.len = 0;
    rc = rec_append_delete(&one, 0, &d, NULL);
    if (!rc) rc = out_put(w, REC_DELETE, one.ptr, one.len, err);
  }
  if (!rc) {
    one.len = 0;
    rc = rec_append_meta(&one, 0, next_id);
    if (!rc) rc = out_put(w, REC_META, one.ptr, one.len, err);
  }
  if (!rc) rc = log_seg_write(s, w->no, &w->b, err);
  if (!rc) {
    rc = s->io->fsync_dir(s->io->ctx, s->dir);
    if (rc)
      cs_err(err, rc, "cannot sync directory %s: %s", s->dir, cs_strerror(rc));
  }
  if (rc && err && !err->code) cs_err(err, rc, "out of memory");
  rec_buf_free(&one);
  if (progress && !rc) progress(pctx, l->count, l->count);
  return rc;
}

/* The switch: the manifest names the new segments. Caller holds wmu. */
static int load_switch(cs_store *s, uint32_t last_no, uint64_t next_id,
                       cs_error *err) {
  pthread_mutex_lock(&s->mmu);
  uint32_t prev = s->last_seg;
  s->last_seg = last_no;
  int rc = manifest_write(s, next_id, err);
  if (rc) s->last_seg = prev;
  pthread_mutex_unlock(&s->mmu);
  return rc;
}

/* Maps segments first..last for readers and makes the last the active one
 * the commit thread appends to. Caller holds wmu (the thread is idle). */
static int load_map(cs_store *s, uint32_t first, uint32_t last, cs_error *err) {
  pthread_rwlock_wrlock(&s->ilock); /* readers look at segs under it */
  seg_map *p =
      realloc(s->segs, (s->seg_count + (last - first + 1)) * sizeof *p);
  if (!p) {
    pthread_rwlock_unlock(&s->ilock);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  s->segs = p;
  int rc = 0;
  for (uint32_t no = first; no <= last && !rc; no++) {
    char name[SEG_NAME_BYTES];
    seg_name(name, sizeof name, no);
    uint64_t size = dir_file_bytes(s, name);
    seg_map m;
    rc = log_map_file(s, no, no == last ? s->opts.segment_bytes_max : size, &m,
                      err);
    if (rc) break;
    m.size = size;
    s->segs[s->seg_count++] = m;
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc) return rc;
  const cs_io *io = s->io;
  char name[SEG_NAME_BYTES], path[DIR_PATH_BYTES];
  seg_name(name, sizeof name, last);
  store_path(s, path, sizeof path, name);
  int fd = io->open(io->ctx, path, O_WRONLY, 0);
  if (fd < 0)
    return cs_err(err, fd, "cannot open %s: %s", path, cs_strerror(fd));
  if (s->active_dirty && (rc = io->fdatasync(io->ctx, s->active_fd)) != 0) {
    io->close(io->ctx, fd);
    return cs_err(err, rc, "cannot sync segment %u: %s", s->active_seg,
                  cs_strerror(rc));
  }
  if (s->active_fd >= 0) io->close(io->ctx, s->active_fd);
  s->active_fd = fd;
  s->active_seg = last;
  s->active_dirty = false;
  s->active_written = s->active_durable = s->segs[s->seg_count - 1].size;
  s->tail_seg = last;
  s->tail_off = s->active_written;
  return 0;
}

/* Indexes the new segments as open's replay does, in bulk mode. Caller
 * holds wmu. */
static int load_index(cs_store *s, cs_error *err) {
  replay rp = {.s = s, .mode = REPLAY_OPEN, .err = err};
  pthread_rwlock_wrlock(&s->ilock);
  ix_bulk_begin(s->ix);
  int rc = replay_log(&rp, true);
  int brc = ix_bulk_end(s->ix);
  pthread_rwlock_unlock(&s->ilock);
  if (!rc && brc)
    rc = cs_err(err, brc, "cannot build the indexes: %s", cs_strerror(brc));
  return rc;
}

int cs_load_commit(cs_load *l, cs_progress_fn progress, void *progress_ctx,
                   cs_load_result *res, cs_error *err) {
  cs_store *s = l->s;
  *res = (cs_load_result){0};
  load_item **by_id = malloc((l->count + 1) * sizeof *by_id);
  load_item **trash = malloc((l->count + 1) * sizeof *trash);
  if (!by_id || !trash) {
    free(by_id);
    free(trash);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  /* New contacts' ids follow every id kept and every id the store gave. */
  uint64_t next_id = l->max_id >= l->floor ? l->max_id + 1 : l->floor;
  size_t ntrash = 0;
  for (size_t i = 0; i < l->count; i++) {
    load_item *it = &l->items[i];
    if (!it->id) it->id = next_id++;
    by_id[i] = it;
    if (it->deleted_ms) trash[ntrash++] = it;
  }
  qsort(by_id, l->count, sizeof *by_id, item_by_id);
  qsort(trash, ntrash, sizeof *trash, item_by_deletion);

  pthread_mutex_lock(&s->wmu);
  int rc = load_state_ok(s, err);
  load_out w = {.s = s,
                .first_no = s->tail_seg + 1,
                .no = s->tail_seg + 1,
                .seq = s->next_seq};
  bool switched = false;
  if (!rc)
    rc = load_write(l, &w, by_id, trash, ntrash, next_id, progress,
                    progress_ctx, err);
  if (!rc) rc = load_switch(s, w.no, next_id, err);
  if (rc) {
    log_seg_remove(s, w.first_no, w.no); /* strays if left: open removes */
  } else {
    switched = true;
    s->next_seq = w.seq;
    s->written_seq = s->synced_seq = w.seq - 1;
    s->next_id = next_id;
    rc = load_map(s, w.first_no, w.no, err);
    if (!rc) rc = load_index(s, err);
  }
  if (rc && switched)
    store_fail(s, rc, true,
               "a load was written but not indexed (%s); reopen the store",
               err ? err->msg : cs_strerror(rc));
  pthread_mutex_unlock(&s->wmu);
  rec_buf_free(&w.b);
  free(by_id);
  free(trash);
  if (rc) return rc;
  res->loaded = l->count;
  res->trashed = ntrash;
  res->next_id = next_id;
  res->segments = w.no - w.first_no + 1;
  return 0;
}
