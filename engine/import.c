/*
 * import.c: an account's contacts out and in with their identity, for a
 * running store (cs.h's cs_export and cs_import): how an account moves
 * between stores through the admin API.
 *
 * cs_export copies, under ilock for reading, where the current record of
 * each of the account's contacts lies (live ones in id order, then those in
 * the trash window in the order they were deleted), and lets go: what it
 * copied is the state as of the last commit applied, since records are
 * applied under ilock for writing, a batch at a time. It then reads and
 * checks each record outside the lock; records never change once written
 * and the log stays mapped until cs_close (cs.h), so writers wait only for
 * the copy of the list, never for the reading.
 *
 * cs_import writes through the commit path, as every write of cs.h: each
 * item is checked (its values as a create's, its identity by
 * import_identity_check) before the writer is taken; then, under wmu, in
 * id order, its id must be one the store may take: of its own shard, at or
 * past its id floor (next_id: an id the store has ever given, live,
 * trashed, purged or compacted away, is refused, because ids are never
 * reused), or of a shard numbered lower (an account moving in), above
 * every id the account holds here and held by no slot or queued write; its
 * email must be free in the account (live items only: a trashed contact
 * holds no email), and its put is queued, followed at once by its delete
 * for a trash item, so that the change feed shows it created, then
 * deleted. next_id moves past each id of the store's shard taken (the
 * lower shards' are below it), which keeps each account's slots in id
 * order (invariant 1 of store_int.h): a lower shard's ids begin a run of
 * the slot table (pindex.h) and come before the account's own. The call
 * then waits for every completion: it returns once the items are durable
 * and applied.
 *
 * Relied on: the lock order of store_int.h; write.c's queueing (write.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "import.h"
#include "store_int.h"
#include "write.h"

/* ---------------------------------------------------------------- export */

/* Where one exported contact's put lies, copied under ilock. */
typedef struct export_ref {
  const uint8_t *rec; /* the framed record, in the mapped log */
  uint32_t len;       /* its bytes, header included */
  uint64_t id;
  int64_t deleted_ms; /* 0: live */
} export_ref;

/* The account's live contacts in id order, then its trash (inside the
 * window) in deletion order, into *out (malloc'd, *n of them). Caller
 * holds ilock for reading. */
static int export_refs(cs_store *s, uint32_t account, export_ref **out,
                       size_t *n, cs_error *err) {
  int64_t now = store_now(s);
  size_t cap = pindex_account_count(s, account);
  for (size_t i = 0; i < s->trash.count; i++)
    cap += !s->trash.v[i].gone && s->trash.v[i].account == account;
  export_ref *v = malloc((cap ? cap : 1) * sizeof *v);
  if (!v) return cs_err(err, -ENOMEM, "out of memory");
  size_t k = 0;
  uint32_t want = account << 1 | 1u;
  for (uint32_t i = 0; i < s->slots.count && k < cap; i++) {
    const cs_slot *sl = &s->slots.v[i];
    if (sl->acct_live != want) continue;
    seg_map *m = log_seg(s->segs, s->first_seg, s->seg_count, sl->seg);
    if (!m || (uint64_t)sl->off + sl->len > m->size) goto bad;
    v[k++] = (export_ref){m->map + sl->off, sl->len, sl->id, 0};
  }
  for (size_t i = 0; i < s->trash.count && k < cap; i++) {
    const trash_ent *t = &s->trash.v[i];
    if (t->gone || t->account != account ||
        !store_in_trash_window(s, t->deleted_ms, now))
      continue;
    int64_t slot = slots_find(&s->slots, t->id);
    const cs_slot *sl = slot >= 0 ? &s->slots.v[slot] : NULL;
    seg_map *m =
        sl ? log_seg(s->segs, s->first_seg, s->seg_count, sl->seg) : NULL;
    if (!m || (uint64_t)sl->off + sl->len > m->size) goto bad;
    v[k++] = (export_ref){m->map + sl->off, sl->len, sl->id, t->deleted_ms};
  }
  *out = v;
  *n = k;
  return 0;
bad:
  free(v);
  return cs_err(err, CS_ECORRUPT,
                "%s: a contact's record lies outside the log; run "
                "contactctl verify",
                s->dir);
}

int cs_export(cs_store *s, uint32_t account,
              int (*fn)(void *ctx, const cs_contact *c), void *ctx,
              cs_error *err) {
  if (account > CS_ACCOUNT_ID_MAX)
    return cs_err(err, CS_EINVAL, "invalid account number");
  export_ref *refs = NULL;
  size_t n = 0;
  pthread_rwlock_rdlock(&s->ilock);
  int rc = export_refs(s, account, &refs, &n, err);
  pthread_rwlock_unlock(&s->ilock);
  if (rc) return rc;
  msgpack_zone zone;
  msgpack_zone_init(&zone, REC_ZONE_CHUNK_BYTES);
  for (size_t i = 0; i < n && !rc; i++) {
    rec_view r;
    rec_body b;
    const char *why = "it fails its checksum";
    if (rec_check(refs[i].rec, refs[i].len, &r) == 0 &&
        rec_decode(&r, &zone, &b, &why) == 0) {
      why = "the index points at another record";
      if (b.type == REC_PUT && b.contact.id == refs[i].id) {
        b.contact.deleted_ms = refs[i].deleted_ms;
        rc = fn(ctx, &b.contact);
        continue;
      }
    }
    rc = cs_err(err, CS_ECORRUPT, "%s: the record of contact %020llu: %s",
                s->dir, (unsigned long long)refs[i].id, why);
  }
  msgpack_zone_destroy(&zone);
  free(refs);
  return rc;
}

/* ---------------------------------------------------------------- import */

int import_identity_check(const cs_contact *c, cs_error *err) {
  const char *why = NULL;
  if (c->id < CS_ID_MIN)
    why = "id: not an id (20 digits, the first not 0)";
  else if (c->version < 1)
    why = "version: must be 1 or more";
  else if (c->created_ms < 0 || c->created_ms > CS_TIME_MS_MAX)
    why = "created_at: out of range";
  else if (c->updated_ms < c->created_ms || c->updated_ms > CS_TIME_MS_MAX)
    why = "updated_at: before created_at, or out of range";
  else if (c->deleted_ms &&
           (c->deleted_ms < c->created_ms || c->deleted_ms > CS_TIME_MS_MAX))
    why = "deleted_at: before created_at, or out of range";
  if (!why) return 0;
  cs_err(err, CS_EINVAL, "%s", why);
  if (err) err->field = -1;
  return CS_EINVAL;
}

int import_id_check(uint32_t shard, uint64_t floor, uint64_t id,
                    cs_error *err) {
  uint32_t of = cs_id_shard(id);
  int rc = 0;
  if (of > shard)
    rc = cs_err(err, CS_EINVAL,
                "id: %020llu is an id of shard %u, above this store's shard "
                "%u (an account moves only to a shard numbered higher)",
                (unsigned long long)id, of, shard);
  else if (of < shard)
    rc = cs_err(err, CS_EINVAL,
                "id: %020llu is an id of shard %u: a load takes only ids of "
                "this store's shard, %u (an account of a shard numbered lower "
                "comes in through the admin API's import)",
                (unsigned long long)id, of, shard);
  else if (id < floor)
    rc = cs_err(err, CS_EINVAL,
                "id: %020llu was given by this store already (ids are never "
                "reused)",
                (unsigned long long)id);
  if (rc && err) err->field = -1;
  return rc;
}

/* The completions of one import: how many are still to come, and the
 * first failure. */
typedef struct import_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t left;
  int rc;
} import_wait;

static void import_done(void *ctx, int rc, uint64_t id) {
  (void)id;
  import_wait *w = ctx;
  pthread_mutex_lock(&w->mu);
  if (rc && !w->rc) w->rc = rc;
  if (--w->left == 0) pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* One more completion to wait for. */
static void import_expect(import_wait *w) {
  pthread_mutex_lock(&w->mu);
  w->left++;
  pthread_mutex_unlock(&w->mu);
}

typedef struct import_order {
  uint64_t id;
  size_t i;
} import_order;

static int order_cmp(const void *a, const void *b) {
  const import_order *x = a, *y = b;
  if (x->id != y->id) return x->id < y->id ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* The largest id account holds, applied (any slot, live or dead) or
 * queued. Caller holds wmu (so nothing is queued meanwhile). */
static uint64_t account_max_id(cs_store *s, uint32_t account) {
  uint64_t max = 0;
  pthread_rwlock_rdlock(&s->ilock);
  for (uint32_t i = 0; i < s->slots.count; i++)
    if (slot_account(&s->slots.v[i]) == account && s->slots.v[i].id > max)
      max = s->slots.v[i].id;
  pthread_rwlock_unlock(&s->ilock);
  const ov_table *t = &s->ov;
  for (size_t b = 0; b <= t->mask; b++)
    for (const ov_entry *e = t->by_id[b]; e; e = e->next_id)
      if (e->account == account && e->id > max) max = e->id;
  return max;
}

/* Whether the id of a shard numbered lower than the store's may come in
 * (cs_import's rule): above every id of the account (*max), and held by
 * no slot and no queued write. Caller holds wmu. */
static int import_lower_check(cs_store *s, uint64_t id, uint64_t max,
                              cs_error *err) {
  int rc = 0;
  if (id <= max)
    rc = cs_err(err, CS_EINVAL,
                "id: %020llu is not above %020llu, the account's largest id "
                "here: an account's contacts from a shard numbered lower go "
                "in before its others, in id order",
                (unsigned long long)id, (unsigned long long)max);
  if (!rc) {
    pthread_rwlock_rdlock(&s->ilock);
    bool held = slots_find(&s->slots, id) >= 0;
    pthread_rwlock_unlock(&s->ilock);
    if (held || ov_find(&s->ov, id))
      rc = cs_err(err, CS_EINVAL, "id: %020llu is held by this store already",
                  (unsigned long long)id);
  }
  if (rc && err) err->field = -1;
  return rc;
}

/* Queues item c (checked) of account, or refuses it for what the store
 * holds; *max is the account's largest id, moved past c's. Caller holds
 * wmu, so no completion of w runs before it lets go. */
static int import_one(cs_store *s, uint32_t account, cs_contact *c,
                      uint64_t *max, import_wait *w, cs_error *err) {
  bool lower = cs_id_shard(c->id) < s->shard;
  int rc = lower ? import_lower_check(s, c->id, *max, err)
                 : import_id_check(s->shard, s->next_id, c->id, err);
  if (rc) return rc;
  if (!c->deleted_ms) {
    uint64_t owner = 0;
    rc = email_owner(s, account, &c->field[CS_EMAIL], 0, &owner, err);
    if (rc) return rc;
    if (owner) return email_taken(owner, err);
  }
  cs_contact put = *c;
  put.account = account;
  put.deleted_ms = 0;
  rc = write_queue_put(s, &put, import_done, w, err);
  if (!rc) import_expect(w);
  if (!rc && c->deleted_ms) {
    rec_del d = {c->id, account, c->deleted_ms, false, c->version};
    put.deleted_ms = c->deleted_ms;
    rc = write_queue_delete(s, &d, &put, import_done, w, err);
    if (!rc) import_expect(w);
  }
  /* Also after a failure: the id may be on disk. */
  if (!lower) s->next_id = c->id + 1;
  *max = c->id;
  return rc;
}

int cs_import(cs_store *s, uint32_t account, cs_contact *items, size_t n,
              int *rc_out, cs_error *errs, cs_import_result *res,
              cs_error *err) {
  cs_import_result dummy;
  if (!res) res = &dummy;
  *res = (cs_import_result){0};
  if (account > CS_ACCOUNT_ID_MAX)
    return cs_err(err, CS_EINVAL, "invalid account number");
  import_order *order = malloc((n ? n : 1) * sizeof *order);
  if (!order) return cs_err(err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    cs_error *e = errs ? &errs[i] : NULL;
    if (e) memset(e, 0, sizeof *e), e->field = -1;
    rc_out[i] = import_identity_check(&items[i], e);
    if (!rc_out[i]) rc_out[i] = cs_contact_validate(&items[i], e);
    order[i] = (import_order){items[i].id, i};
  }
  qsort(order, n, sizeof *order, order_cmp);
  import_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0};
  pthread_mutex_lock(&s->wmu);
  int rc = write_check_open(s, err);
  uint64_t max = rc ? 0 : account_max_id(s, account);
  size_t k = 0;
  for (; k < n && !rc; k++) {
    size_t i = order[k].i;
    if (rc_out[i]) continue;
    cs_error *e = errs ? &errs[i] : NULL;
    rc_out[i] = import_one(s, account, &items[i], &max, &w, e);
    if (rc_out[i] == CS_EFAILED || rc_out[i] == -ENOMEM)
      rc = cs_err(err, rc_out[i], "%s", e ? e->msg : "the store failed");
  }
  for (; k < n; k++) /* not reached: the store's error for each */
    if (!rc_out[order[k].i]) rc_out[order[k].i] = rc;
  pthread_mutex_unlock(&s->wmu);
  /* Every record queued completes (also after a failure, with its code):
   * wait for the last, then the import's own count. */
  pthread_mutex_lock(&w.mu);
  if (--w.left)
    while (w.left)
      pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  free(order);
  if (!rc && w.rc)
    rc = cs_err(err, w.rc, "the import's commit failed: %s", cs_strerror(w.rc));
  for (size_t i = 0; i < n; i++) {
    if (rc_out[i])
      res->refused++;
    else
      res->imported++;
  }
  return rc;
}
