/*
 * write.c: every write of cs.h (create, update, delete, upsert, restore,
 * and the idempotency keys they carry), validated under wmu against the
 * overlay and the applied state, framed, and queued for the commit thread.
 *
 * A write runs in three steps, all under wmu, so that nothing comes
 * between them: find the target (the live contact, the one an upsert's
 * email names, or the trashed one a restore brings back), check the
 * condition on its version (If-Match) and the rules, then submit its
 * record with the idempotency entry it carries. Pending writes are seen
 * through the overlay (invariant 3 of store_int.h), so two writes accepted
 * one after the other see each other even before either is durable.
 *
 * Versions: a create is 1; an applied change (edit, upsert that changes
 * something, restore) is the version before plus one; a delete keeps it.
 * The trash: a delete (not purged) leaves the contact's last put where it
 * is and notes the deletion (trash.h); a restore is a put of that contact
 * with the next version.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "store_int.h"
#include "write.h"

/* ----------------------------------------------------------- the rules */

static int writable(cs_store *s, cs_error *err) {
  if (s->opts.no_indexes)
    return cs_err(err, CS_EINVAL,
                  "the store was opened without indexes, "
                  "for reading only");
  if (s->failed)
    return cs_err(err, CS_EFAILED, "the store refuses writes: %s",
                  s->failed_msg);
  if (s->closing) return cs_err(err, CS_ECLOSING, "the store is closing");
  if (s->ship.role == CS_REPL_STANDBY)
    return cs_err(err, CS_ESTANDBY,
                  "this store is a standby: writes go to its primary");
  if (s->ship.role == CS_REPL_FENCED)
    return cs_err(err, CS_EFENCED,
                  "this store was fenced: writes go to the new primary");
  if (s->ship.down)
    return cs_err(err, CS_ESTANDBY_DOWN,
                  "no standby acknowledged the last writes within %u ms",
                  s->opts.standby_timeout_ms);
  return 0;
}

/* Only creates are part of a bulk load. Caller holds wmu. */
static int not_bulk(cs_store *s, cs_error *err) {
  return s->bulk ? cs_err(err, CS_EINVAL,
                          "a bulk load is in progress: "
                          "only creates until cs_bulk_end")
                 : writable(s, err);
}

int write_check_open(cs_store *s, cs_error *err) {
  return not_bulk(s, err);
}

/* The If-Match condition against a target of this version (0: no live
 * target). */
static int check_cond(const cs_cond *c, uint64_t version, cs_error *err) {
  if (!c) return 0;
  bool ok = version != 0 && c->any;
  for (uint32_t i = 0; version && !ok && i < c->count && i < CS_IF_MATCH_MAX;
       i++)
    ok = c->versions[i] == version;
  if (ok) return 0;
  if (version)
    cs_err(err, CS_EPRECONDITION,
           "the contact is at version %llu, which If-Match does not name",
           (unsigned long long)version);
  else
    cs_err(err, CS_EPRECONDITION, "no live contact for If-Match to name");
  if (err) err->version = version;
  return CS_EPRECONDITION;
}

/* The live contact id of account: pending or applied. Caller holds wmu.
 * *out's strings stay valid while wmu is held. */
static int live_contact(cs_store *s, uint32_t account, uint64_t id,
                        cs_contact *out, cs_error *err) {
  ov_entry *e = ov_find(&s->ov, id);
  if (e) {
    if (e->deleted || e->account != account) goto missing;
    *out = e->c;
    return 0;
  }
  pthread_rwlock_rdlock(&s->ilock);
  int64_t slot = slots_find(&s->slots, id);
  int rc = CS_ENOTFOUND;
  if (slot >= 0 && s->slots.v[slot].acct_live == (account << 1 | 1u)) {
    rec_body b;
    rc = store_read_slot(s, (uint32_t)slot, &s->wzone, &b, err);
    if (!rc) *out = b.contact; /* points into the map: stays valid */
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc != CS_ENOTFOUND) return rc;
missing:
  return cs_err(err, CS_ENOTFOUND, "no contact %020llu",
                (unsigned long long)id);
}

/* A target that is not there fails every condition (412 before 404). */
static int missing_target(const cs_write *w, int rc, cs_error *err) {
  if (rc == CS_ENOTFOUND && w->if_match) return check_cond(w->if_match, 0, err);
  return rc;
}

/* The contact id of account as it is in the trash (inside its window),
 * with deleted_ms: pending or applied. Caller holds wmu. */
static int trashed_contact(cs_store *s, uint32_t account, uint64_t id,
                           cs_contact *out, cs_error *err) {
  int64_t now = store_now(s);
  ov_entry *e = ov_find(&s->ov, id);
  if (e) {
    if (!e->trashed || e->account != account) goto missing;
    *out = e->c;
    return 0;
  }
  pthread_rwlock_rdlock(&s->ilock);
  int64_t slot = slots_find(&s->slots, id);
  const trash_ent *t = slot >= 0 ? trash_find(&s->trash, id) : NULL;
  int rc = CS_ENOTFOUND;
  if (t && t->account == account &&
      s->slots.v[slot].acct_live == account << 1 &&
      store_in_trash_window(s, t->deleted_ms, now)) {
    rec_body b;
    int64_t deleted_ms = t->deleted_ms;
    rc = store_read_slot(s, (uint32_t)slot, &s->wzone, &b, err);
    if (!rc) {
      *out = b.contact;
      out->deleted_ms = deleted_ms;
    }
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc != CS_ENOTFOUND) return rc;
missing:
  return cs_err(err, CS_ENOTFOUND, "no contact %020llu in the trash",
                (unsigned long long)id);
}

/* ------------------------------------------------------------ submitting */

/* The entry e as a record carries it once a is its answer, kept
 * CS_IDEM_KEEP_MS from now. */
static void answer_rec(const cs_store *s, const idem_ent *e, const cs_answer *a,
                       rec_idem *out) {
  idem_to_rec(e, out);
  out->status = a->status;
  out->type = a->type;
  out->body = a->body;
  out->expires_ms = store_now(s) + CS_IDEM_KEEP_MS;
}

/* What one write leaves in the log besides its contact. */
typedef struct wrec {
  uint8_t type;            /* REC_PUT or REC_DELETE */
  const cs_contact *c;     /* put; delete into the trash: what it was */
  uint32_t cf;             /* put of an edit: REC_CF_SAID | changed fields */
  rec_del del;             /* delete */
  idem_ent *idem;          /* the reserved entry the write carries */
  const cs_idem *idem_req; /* how to render its answer */
} wrec;

/* Frames the record for the next sequence number, with the idempotency
 * entry rendered from the outcome o, queues it and records the pending
 * state. Caller holds wmu. */
static int submit(cs_store *s, const wrec *w, const cs_outcome *o,
                  cs_done_fn done, void *ctx, cs_error *err) {
  rec_buf *rec = &s->rbuf; /* reused: encoding allocates nothing */
  rec->len = 0;
  uint64_t seq = s->next_seq;
  rec_idem ri = {0};
  cs_answer ans = {0};
  if (w->idem) {
    w->idem_req->render(w->idem_req->render_ctx, o, &ans);
    if (ans.body.len > CS_IDEM_ANSWER_MAX_BYTES)
      return cs_err(err, CS_EINVAL, "the answer is too large to keep");
    answer_rec(s, w->idem, &ans, &ri);
  }
  uint64_t id = w->type == REC_PUT ? w->c->id : w->del.id;
  uint32_t account = w->type == REC_PUT ? w->c->account : w->del.account;
  int rc = w->type == REC_PUT ? rec_append_put(rec, seq, w->c, &ri, w->cf)
                              : rec_append_delete(rec, seq, &w->del, &ri);
  if (rc) return cs_err(err, rc, "the contact is too large to store");
  if (w->idem) {
    pthread_mutex_lock(&s->imu);
    rc = idem_fill(&s->idem, w->idem, &ans, ri.expires_ms, seq);
    pthread_mutex_unlock(&s->imu);
    if (rc) return cs_err(err, rc, "out of memory");
  }
  s->next_seq++;
  bool trashed = w->type == REC_DELETE && !w->del.purge;
  rc = ov_set(&s->ov, &s->fb_key, id, account, seq,
              w->type == REC_PUT || trashed ? w->c : NULL, trashed);
  if (!rc)
    rc = commit_enqueue(s, w->type, seq, id, account, rec, done, ctx, w->idem);
  if (rc) {
    /* Out of memory midway: a pending entry may exist for a record never
     * queued. Refuse writes rather than risk a wrong answer. */
    store_fail(s, rc, false, "out of memory while queueing a write");
    return cs_err(err, CS_EFAILED, "the store refuses writes: %s",
                  s->failed_msg);
  }
  return 0;
}

int write_queue_put(cs_store *s, const cs_contact *c, cs_done_fn done,
                    void *ctx, cs_error *err) {
  wrec r = {.type = REC_PUT, .c = c};
  return submit(s, &r, NULL, done, ctx, err);
}

int write_queue_delete(cs_store *s, const rec_del *d, const cs_contact *was,
                       cs_done_fn done, void *ctx, cs_error *err) {
  wrec r = {.type = REC_DELETE, .c = was, .del = *d};
  return submit(s, &r, NULL, done, ctx, err);
}

/* -------------------------------------------------------------- the kinds */

typedef struct wjob {
  cs_store *s;
  cs_write *w;
  idem_ent *idem;
  cs_outcome *out;
  cs_error *err;
  /* The email's owner is known already (an upsert matched by it, under
   * this same hold of wmu): no second lookup. */
  bool email_checked;
} wjob;

static int job_submit(wjob *j, uint8_t type, const cs_contact *c,
                      const rec_del *d, uint32_t cf) {
  wrec r = {
      .type = type, .c = c, .cf = cf, .idem = j->idem, .idem_req = j->w->idem};
  if (d) r.del = *d;
  j->out->seq = j->s->next_seq; /* the record's, as submit frames it */
  return submit(j->s, &r, j->out, j->w->done, j->w->ctx, j->err);
}

/* A new contact from c (validated), in the writer. */
static int do_create(wjob *j, cs_contact *c) {
  cs_store *s = j->s;
  uint64_t owner = 0;
  int rc = check_cond(j->w->if_match, 0, j->err);
  if (!rc && !j->email_checked)
    rc = email_owner(s, j->w->account, &c->field[CS_EMAIL], 0, &owner, j->err);
  if (!rc && owner) rc = email_taken(owner, j->err);
  if (rc) return rc;
  if (s->next_id > cs_shard_floor(s->shard + 1))
    return cs_err(j->err, CS_EIDS_SPENT,
                  "shard %u has given every id of its span (the last is "
                  "%020llu): move accounts to a shard numbered higher",
                  s->shard, (unsigned long long)cs_shard_floor(s->shard + 1));
  cs_contact rec = *c;
  rec.id = s->next_id;
  rec.account = j->w->account;
  rec.created_ms = rec.updated_ms = store_now(s);
  /* A load keeps the version its dump carried (versions never go back,
   * also not across dump and load). */
  rec.version = s->bulk && c->version ? c->version : 1;
  rec.deleted_ms = 0;
  *j->out = (cs_outcome){rec.id, rec.version, CS_RESULT_CREATED};
  rc = job_submit(j, REC_PUT, &rec, NULL, 0);
  if (!rc && s->bulk && email_bulk_note(s, j->w->account, rec.id) != 0) {
    store_fail(s, -ENOMEM, true, "out of memory in a bulk load");
    rc = -ENOMEM; /* queued already: done still fires, with the failure */
  }
  if (!rc || rc == -ENOMEM) {
    s->next_id++;
    rc = 0;
  }
  return rc;
}

/* Checks a patch's shape (not its values): something to change, known
 * fields, no required one removed, every set one with a value. */
static int patch_shape(const cs_patch *p, cs_error *err) {
  uint32_t all = (1u << CS_FIELD_COUNT) - 1;
  if (!(p->set_mask | p->clear_mask))
    return cs_err(err, CS_EINVAL, "no fields to change");
  if ((p->set_mask | p->clear_mask) & ~all)
    return cs_err(err, CS_EINVAL, "unknown field in the change");
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    const char *why = NULL;
    if ((p->clear_mask & (1u << f)) && cs_field_required(f))
      why = "required, cannot be removed";
    else if ((p->set_mask & (1u << f)) && !p->field[f].ptr)
      why = "no value given";
    if (why) {
      cs_err(err, CS_EINVAL, "%s: %s", cs_field_name(f), why);
      if (err) err->field = f;
      return CS_EINVAL;
    }
  }
  return 0;
}

/* A required field of a contact whose present fields are present. */
static int required_missing(uint32_t present, cs_error *err) {
  int missing = cs_field_first_missing(present);
  if (missing < 0) return 0;
  cs_err(err, CS_EINVAL, "%s: required", cs_field_name(missing));
  if (err) err->field = missing;
  return CS_EINVAL;
}

/* A patch's shape and each value it sets (trimmed in place); an upsert's
 * must set the email. */
static int patch_values(const cs_write *w, cs_error *err) {
  cs_patch *p = w->patch;
  int rc = patch_shape(p, err);
  if (!rc && w->kind == CS_WRITE_UPSERT && !(p->set_mask & (1u << CS_EMAIL))) {
    rc = cs_err(err, CS_EINVAL, "email: required to upsert");
    if (err) err->field = CS_EMAIL;
  }
  for (int f = 0; !rc && f < CS_FIELD_COUNT; f++)
    if (p->set_mask & (1u << f)) rc = cs_field_check(f, &p->field[f], err);
  return rc;
}

/* The fields whose stored value differs between a and b. */
static uint32_t changed_fields(const cs_contact *a, const cs_contact *b) {
  uint32_t m = 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    const cs_str *x = &a->field[f], *y = &b->field[f];
    if (!x->ptr != !y->ptr ||
        (x->ptr && (x->len != y->len || memcmp(x->ptr, y->ptr, x->len))))
      m |= 1u << f;
  }
  return m;
}

/* cur with patch p applied (its values checked and trimmed before the
 * writer was taken: patch_values); *same tells whether every given value
 * was stored already. */
static int patched(wjob *j, const cs_contact *cur, cs_patch *p,
                   cs_contact *next, bool *same) {
  *next = *cur;
  uint32_t present = 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (p->clear_mask & (1u << f)) next->field[f] = (cs_str){NULL, 0};
    if (p->set_mask & (1u << f)) next->field[f] = p->field[f];
    if (next->field[f].ptr) present |= 1u << f;
  }
  int rc = required_missing(present, j->err);
  if (rc) return rc;
  *same = changed_fields(cur, next) == 0;
  return 0;
}

/* Applies p to the live contact cur (id), unless nothing changes and
 * keep_same says so. */
static int do_patch(wjob *j, uint64_t id, const cs_contact *cur, cs_patch *p,
                    bool keep_same) {
  cs_store *s = j->s;
  cs_contact next;
  bool same;
  int rc = check_cond(j->w->if_match, cur->version, j->err);
  if (!rc) rc = patched(j, cur, p, &next, &same);
  if (rc) return rc;
  if (same && keep_same) {
    *j->out = (cs_outcome){id, cur->version, CS_RESULT_UNCHANGED,
                           __atomic_load_n(&s->applied_seq, __ATOMIC_ACQUIRE)};
    return 0;
  }
  uint64_t owner = 0;
  if (!j->email_checked)
    rc = email_owner(s, j->w->account, &next.field[CS_EMAIL], id, &owner,
                     j->err);
  if (!rc && owner) rc = email_taken(owner, j->err);
  if (rc) return rc;
  next.id = id;
  next.account = j->w->account;
  next.updated_ms = store_now(s);
  if (next.updated_ms < next.created_ms) next.updated_ms = next.created_ms;
  next.version = cur->version + 1;
  next.deleted_ms = 0;
  *j->out = (cs_outcome){id, next.version, CS_RESULT_UPDATED};
  return job_submit(j, REC_PUT, &next, NULL,
                    REC_CF_SAID | changed_fields(cur, &next));
}

static int do_update(wjob *j) {
  cs_contact cur;
  int rc = not_bulk(j->s, j->err);
  if (!rc) rc = live_contact(j->s, j->w->account, j->w->id, &cur, j->err);
  if (rc) return missing_target(j->w, rc, j->err);
  return do_patch(j, j->w->id, &cur, j->w->patch, false);
}

/* Upsert: the contact whose email is the patch's, updated, or a new one
 * made of the patch's values. */
static int do_upsert(wjob *j) {
  cs_store *s = j->s;
  cs_patch *p = j->w->patch;
  int rc = not_bulk(s, j->err);
  uint64_t owner = 0;
  if (!rc)
    rc = email_owner(s, j->w->account, &p->field[CS_EMAIL], 0, &owner, j->err);
  if (rc) return rc;
  /* The email names owner (or no one) case-insensitively, as uniqueness
   * compares: the create or the update below needs no second look. */
  j->email_checked = true;
  if (owner) {
    cs_contact cur;
    rc = live_contact(s, j->w->account, owner, &cur, j->err);
    return rc ? rc : do_patch(j, owner, &cur, p, true);
  }
  cs_contact c = {0};
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (p->set_mask & (1u << f)) c.field[f] = p->field[f];
  rc = required_missing(p->set_mask, j->err);
  return rc ? rc : do_create(j, &c);
}

static int do_delete(wjob *j) {
  cs_store *s = j->s;
  cs_contact cur;
  int rc = not_bulk(s, j->err);
  if (rc) return rc;
  rec_del d = {j->w->id, j->w->account, store_now(s), j->w->purge, 0};
  rc = live_contact(s, j->w->account, j->w->id, &cur, j->err);
  if (rc == CS_ENOTFOUND && j->w->purge) {
    /* Purging what is in the trash: no live version for If-Match. */
    rc = trashed_contact(s, j->w->account, j->w->id, &cur, j->err);
    if (!rc) rc = check_cond(j->w->if_match, 0, j->err);
    if (rc) return rc;
  } else if (!rc) {
    rc = check_cond(j->w->if_match, cur.version, j->err);
  }
  if (rc) return missing_target(j->w, rc, j->err);
  *j->out = (cs_outcome){j->w->id, cur.version,
                         d.purge ? CS_RESULT_PURGED : CS_RESULT_DELETED};
  cur.id = j->w->id;
  cur.account = j->w->account;
  cur.deleted_ms = d.deleted_ms;
  d.version = cur.version;
  return job_submit(j, REC_DELETE, &cur, &d, 0);
}

static int do_restore(wjob *j) {
  cs_store *s = j->s;
  cs_contact cur;
  int rc = not_bulk(s, j->err);
  if (!rc) rc = trashed_contact(s, j->w->account, j->w->id, &cur, j->err);
  if (rc) return missing_target(j->w, rc, j->err);
  rc = check_cond(j->w->if_match, cur.version, j->err);
  uint64_t owner = 0;
  if (!rc)
    rc = email_owner(s, j->w->account, &cur.field[CS_EMAIL], j->w->id, &owner,
                     j->err);
  if (!rc && owner) rc = email_taken(owner, j->err);
  if (rc) return rc;
  cs_contact next = cur;
  next.id = j->w->id;
  next.account = j->w->account;
  next.updated_ms = store_now(s);
  if (next.updated_ms < next.created_ms) next.updated_ms = next.created_ms;
  next.version = cur.version + 1;
  next.deleted_ms = 0;
  *j->out = (cs_outcome){j->w->id, next.version, CS_RESULT_RESTORED};
  return job_submit(j, REC_PUT, &next, NULL, 0);
}

/* The reserved entry w names, or an error. Caller holds wmu. */
static int reserved_entry(cs_store *s, const cs_write *w, idem_ent **out,
                          cs_error *err) {
  *out = NULL;
  if (!w->idem) return 0;
  if (!w->idem->render)
    return cs_err(err, CS_EINVAL, "an idempotent write needs a renderer");
  pthread_mutex_lock(&s->imu);
  idem_ent *e = idem_find(&s->idem, w->account, w->idem->key, w->idem->key_len,
                          store_now(s));
  pthread_mutex_unlock(&s->imu);
  if (!e || e->state != IDEM_RESERVED)
    return cs_err(err, CS_EINVAL,
                  "the idempotency key is not reserved (cs_idem_begin)");
  *out = e;
  return 0;
}

int cs_write_apply(cs_store *s, cs_write *w, cs_outcome *out, cs_error *err) {
  cs_outcome dummy;
  if (!out) out = &dummy;
  *out = (cs_outcome){0};
  if (w->account > CS_ACCOUNT_ID_MAX)
    return cs_err(err, CS_EINVAL, "invalid account number");
  if (w->if_match && w->if_match->count > CS_IF_MATCH_MAX)
    return cs_err(err, CS_EINVAL, "If-Match names more than %d versions",
                  CS_IF_MATCH_MAX);
  /* Values are checked (and trimmed) before the writer is taken: only
   * what depends on the stored state is checked under it. */
  int rc = 0;
  if (w->kind == CS_WRITE_CREATE) rc = cs_contact_validate(w->contact, err);
  if (w->kind == CS_WRITE_UPDATE || w->kind == CS_WRITE_UPSERT)
    rc = patch_values(w, err);
  if (rc) return rc;
  wjob j = {s, w, NULL, out, err, false};
  pthread_mutex_lock(&s->wmu);
  rc = reserved_entry(s, w, &j.idem, err);
  if (!rc) switch (w->kind) {
    case CS_WRITE_CREATE:
      rc = writable(s, err);
      if (!rc) rc = do_create(&j, w->contact);
      break;
    case CS_WRITE_UPDATE:
      rc = do_update(&j);
      break;
    case CS_WRITE_DELETE:
      rc = do_delete(&j);
      break;
    case CS_WRITE_UPSERT:
      rc = do_upsert(&j);
      break;
    case CS_WRITE_RESTORE:
      rc = do_restore(&j);
      break;
    default:
      rc = cs_err(err, CS_EINVAL, "unknown kind of write");
    }
  pthread_mutex_unlock(&s->wmu);
  if (rc) *out = (cs_outcome){0};
  return rc;
}

/* --------------------------------------------- the three original calls */

int cs_create(cs_store *s, uint32_t account, cs_contact *c, cs_done_fn done,
              void *ctx, uint64_t *id_out, cs_error *err) {
  cs_write w = {.kind = CS_WRITE_CREATE,
                .account = account,
                .contact = c,
                .done = done,
                .ctx = ctx};
  cs_outcome o;
  int rc = cs_write_apply(s, &w, &o, err);
  if (!rc && id_out) *id_out = o.id;
  return rc;
}

int cs_update(cs_store *s, uint32_t account, uint64_t id, cs_patch *p,
              cs_done_fn done, void *ctx, cs_error *err) {
  cs_write w = {.kind = CS_WRITE_UPDATE,
                .account = account,
                .id = id,
                .patch = p,
                .done = done,
                .ctx = ctx};
  return cs_write_apply(s, &w, NULL, err);
}

int cs_delete(cs_store *s, uint32_t account, uint64_t id, cs_done_fn done,
              void *ctx, cs_error *err) {
  cs_write w = {.kind = CS_WRITE_DELETE,
                .account = account,
                .id = id,
                .done = done,
                .ctx = ctx};
  return cs_write_apply(s, &w, NULL, err);
}

/* ------------------------------------------------------ idempotency keys */

static bool key_ok(const char *key, size_t len) {
  if (!key || len == 0 || len > CS_IDEM_KEY_MAX_BYTES) return false;
  for (size_t i = 0; i < len; i++)
    if (key[i] < 0x21 || key[i] > 0x7e) return false;
  return true;
}

int cs_idem_begin(cs_store *s, uint32_t account, const char *key,
                  size_t key_len, const uint8_t fp[CS_IDEM_FP_BYTES],
                  cs_answer *replay, cs_error *err) {
  if (!key_ok(key, key_len)) {
    cs_err(err, CS_EINVAL,
           "idempotency-key: 1 to %d printable ASCII characters",
           CS_IDEM_KEY_MAX_BYTES);
    if (err) err->field = -1;
    return CS_EINVAL;
  }
  int rc = 0;
  pthread_mutex_lock(&s->imu);
  idem_ent *e = idem_find(&s->idem, account, key, key_len, store_now(s));
  if (!e) {
    if (!idem_reserve(&s->idem, account, key, key_len, fp))
      rc = cs_err(err, -ENOMEM, "out of memory");
  } else if (e->state != IDEM_DONE) {
    rc = cs_err(err, CS_EIDEM_BUSY,
                "a request with this idempotency key is in flight");
  } else if (memcmp(e->fp, fp, CS_IDEM_FP_BYTES) != 0) {
    rc = cs_err(err, CS_EIDEM_REUSED,
                "the idempotency key was used with another request");
  } else {
    char *body = malloc(e->body_len + 1);
    if (!body) {
      rc = cs_err(err, -ENOMEM, "out of memory");
    } else {
      memcpy(body, e->body, e->body_len);
      body[e->body_len] = 0;
      *replay = (cs_answer){e->status, e->type, {body, e->body_len}};
      rc = CS_IDEM_REPLAY;
    }
  }
  pthread_mutex_unlock(&s->imu);
  return rc;
}

void cs_idem_release(cs_store *s, uint32_t account, const char *key,
                     size_t key_len) {
  pthread_mutex_lock(&s->imu);
  idem_ent *e = idem_find(&s->idem, account, key, key_len, store_now(s));
  if (e && e->state == IDEM_RESERVED) idem_remove(&s->idem, e);
  pthread_mutex_unlock(&s->imu);
}

int cs_idem_finish(cs_store *s, uint32_t account, const char *key,
                   size_t key_len, const cs_answer *a, cs_done_fn done,
                   void *ctx, cs_error *err) {
  if (a->body.len > CS_IDEM_ANSWER_MAX_BYTES)
    return cs_err(err, CS_EINVAL, "the answer is too large to keep");
  pthread_mutex_lock(&s->wmu);
  int rc = writable(s, err);
  pthread_mutex_lock(&s->imu);
  idem_ent *e =
      rc ? NULL : idem_find(&s->idem, account, key, key_len, store_now(s));
  pthread_mutex_unlock(&s->imu);
  if (!rc && (!e || e->state != IDEM_RESERVED))
    rc = cs_err(err, CS_EINVAL,
                "the idempotency key is not reserved (cs_idem_begin)");
  if (!rc) {
    rec_idem ri;
    answer_rec(s, e, a, &ri);
    uint64_t seq = s->next_seq;
    s->rbuf.len = 0;
    rc = rec_append_idem(&s->rbuf, seq, account, &ri);
    if (rc) rc = cs_err(err, rc, "the answer is too large to keep");
    if (!rc) {
      pthread_mutex_lock(&s->imu);
      rc = idem_fill(&s->idem, e, a, ri.expires_ms, seq);
      pthread_mutex_unlock(&s->imu);
      if (rc) rc = cs_err(err, rc, "out of memory");
    }
    if (!rc) {
      s->next_seq++;
      rc = commit_enqueue(s, REC_IDEM, seq, 0, account, &s->rbuf, done, ctx, e);
      if (rc) {
        store_fail(s, rc, false, "out of memory while queueing a write");
        rc = cs_err(err, CS_EFAILED, "the store refuses writes: %s",
                    s->failed_msg);
      }
    }
  }
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

/* ------------------------------------------------------------- the trash */

int cs_trash_list(cs_store *s, uint32_t account, uint64_t before,
                  uint32_t limit, cs_page *out, uint64_t *next, cs_error *err) {
  memset(out, 0, sizeof *out);
  *next = 0;
  if (limit == 0) limit = CS_PAGE_LIMIT_DEFAULT;
  if (limit > CS_PAGE_LIMIT_MAX)
    return cs_err(err, CS_EINVAL, "limit: 1 to %d", CS_PAGE_LIMIT_MAX);
  out->contacts = calloc(limit, sizeof *out->contacts);
  if (!out->contacts) return cs_err(err, -ENOMEM, "out of memory");
  int64_t now = store_now(s);
  msgpack_zone zone;
  msgpack_zone_init(&zone, REC_ZONE_CHUNK_BYTES);
  int rc = 0;
  pthread_rwlock_rdlock(&s->ilock);
  const trash_list *t = &s->trash;
  for (size_t i = t->count; i-- > 0 && !rc;) {
    const trash_ent *e = &t->v[i];
    if (e->gone || e->account != account ||
        !store_in_trash_window(s, e->deleted_ms, now))
      continue;
    out->total++;
    if (before && e->seq >= before) continue;
    if (out->count == limit) {
      out->more = true;
      continue;
    }
    int64_t slot = slots_find(&s->slots, e->id);
    rec_body b;
    rc = slot < 0 ? cs_err(err, CS_ECORRUPT, "trashed contact %llu has no slot",
                           (unsigned long long)e->id)
                  : store_read_slot(s, (uint32_t)slot, &zone, &b, err);
    if (rc) break;
    /* Strings point into the mapped log, which stays until close. */
    out->contacts[out->count] = b.contact;
    out->contacts[out->count].deleted_ms = e->deleted_ms;
    out->count++;
    *next = e->seq;
  }
  pthread_rwlock_unlock(&s->ilock);
  msgpack_zone_destroy(&zone);
  if (!out->more) *next = 0;
  if (rc || !out->count) {
    free(out->contacts);
    out->contacts = NULL;
    out->count = 0;
  }
  return rc;
}
