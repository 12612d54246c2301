/*
 * overlay.c: the overlay of pending writes, email uniqueness, and the dry
 * run of a load (admin.h), which is the same check against an overlay of
 * its own.
 *
 * A write is validated under wmu against what it will land on: the
 * overlay first (accepted writes the commit thread has not applied yet),
 * then the applied state under ilock. Email uniqueness (case-folded
 * equality within an account) is found through the exact email index,
 * hashed on the fold_key form and compared on the fold_case form.
 *
 * Invariants kept (numbers from store_int.h):
 *   3. the overlay holds exactly the accepted writes not yet applied: one
 *      entry per id, the latest; ov_applied drops an entry only for the
 *      record it stands for;
 *   - an entry is in both chains (by email only while it has one) or in
 *     none: unlinking an entry that is not there is a broken table, and
 *     asserted rather than looped on.
 * Relied on: callers hold wmu; the probes of the applied state take ilock
 * for reading (lock order wmu, then ilock).
 */
#include "overlay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cs_assert.h"
#include "err.h"
#include "pindex.h"
#include "store_int.h"
#include "u64map.h"

/* Buckets of a new table: a few hundred writes in flight fit unresized. */
#define OV_BUCKETS_MIN 256

int ov_init(ov_table *t) {
  t->mask = OV_BUCKETS_MIN - 1;
  t->count = 0;
  t->by_id = calloc(t->mask + 1, sizeof *t->by_id);
  t->by_email = calloc(t->mask + 1, sizeof *t->by_email);
  if (!t->by_id || !t->by_email) {
    ov_deinit(t);
    return -ENOMEM;
  }
  return 0;
}

static void ov_free(ov_entry *e) {
  if (!e) return;
  free(e->blob);
  free(e);
}

void ov_deinit(ov_table *t) {
  if (t->by_id) {
    for (size_t i = 0; i <= t->mask; i++) {
      ov_entry *e = t->by_id[i];
      while (e) {
        ov_entry *next = e->next_id;
        ov_free(e);
        e = next;
      }
    }
  }
  free(t->by_id);
  free(t->by_email);
  memset(t, 0, sizeof *t);
}

static inline size_t ov_bucket(const ov_table *t, uint64_t h) {
  return u64_mix(h) & t->mask;
}

ov_entry *ov_find(const ov_table *t, uint64_t id) {
  for (ov_entry *e = t->by_id[ov_bucket(t, id)]; e; e = e->next_id)
    if (e->id == id) return e;
  return NULL;
}

static void ov_unlink(ov_table *t, ov_entry *e) {
  ov_entry **pp = &t->by_id[ov_bucket(t, e->id)];
  while (*pp != e) {
    CS_ASSERT(*pp != NULL); /* e is not in its id chain */
    pp = &(*pp)->next_id;
  }
  *pp = e->next_id;
  if (e->email_hash) {
    pp = &t->by_email[ov_bucket(t, e->email_hash)];
    while (*pp != e) {
      CS_ASSERT(*pp != NULL); /* e is not in its email chain */
      pp = &(*pp)->next_email;
    }
    *pp = e->next_email;
  }
  CS_ASSERT(t->count > 0);
  t->count--;
}

static void ov_link(ov_table *t, ov_entry *e) {
  size_t b = ov_bucket(t, e->id);
  e->next_id = t->by_id[b];
  t->by_id[b] = e;
  if (e->email_hash) {
    b = ov_bucket(t, e->email_hash);
    e->next_email = t->by_email[b];
    t->by_email[b] = e;
  }
}

static int ov_grow(ov_table *t) {
  size_t cap = (t->mask + 1) * 2;
  ov_entry **ids = calloc(cap, sizeof *ids);
  ov_entry **emails = calloc(cap, sizeof *emails);
  if (!ids || !emails) {
    free(ids);
    free(emails);
    return -ENOMEM;
  }
  size_t old_cap = t->mask + 1;
  ov_entry **old_ids = t->by_id;
  free(t->by_email);
  t->by_id = ids;
  t->by_email = emails;
  t->mask = cap - 1;
  for (size_t i = 0; i < old_cap; i++) {
    ov_entry *e = old_ids[i];
    while (e) {
      ov_entry *next = e->next_id;
      ov_link(t, e);
      e = next;
    }
  }
  free(old_ids);
  return 0;
}

static uint64_t email_hash(uint32_t account, const char *key, size_t len) {
  uint64_t h = XXH3_64bits_withSeed(key, len, account);
  return h ? h : 1;
}

/* Copies c's strings into one blob owned by e. */
static int ov_copy(ov_entry *e, const cs_contact *c) {
  size_t total = 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (c->field[f].ptr) total += c->field[f].len + 1;
  e->blob = malloc(total ? total : 1);
  if (!e->blob) return -ENOMEM;
  e->c = *c;
  char *p = e->blob;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr) continue;
    memcpy(p, c->field[f].ptr, c->field[f].len);
    p[c->field[f].len] = 0;
    e->c.field[f].ptr = p;
    p += c->field[f].len + 1;
  }
  return 0;
}

int ov_set(ov_table *t, fold_buf *fb, uint64_t id, uint32_t account,
           uint64_t seq, const cs_contact *c, bool trashed) {
  if (t->count + 1 > t->mask + 1 && ov_grow(t)) return -ENOMEM;
  ov_entry *e = calloc(1, sizeof *e);
  if (!e) return -ENOMEM;
  e->id = id;
  e->seq = seq;
  e->account = account;
  e->deleted = c == NULL || trashed;
  e->trashed = c != NULL && trashed;
  if (e->trashed && ov_copy(e, c)) {
    free(e);
    return -ENOMEM;
  }
  if (c && !trashed) {
    int rc = ov_copy(e, c);
    if (!rc)
      rc = fold_key(CS_EMAIL, c->field[CS_EMAIL].ptr, c->field[CS_EMAIL].len,
                    fb);
    if (rc) {
      ov_free(e);
      return rc;
    }
    e->email_hash = email_hash(account, fb->ptr, fb->len);
  }
  ov_entry *old = ov_find(t, id);
  if (old) {
    ov_unlink(t, old);
    ov_free(old);
  }
  ov_link(t, e);
  t->count++;
  return 0;
}

void ov_applied(ov_table *t, uint64_t id, uint64_t seq) {
  ov_entry *e = ov_find(t, id);
  if (e && e->seq == seq) {
    ov_unlink(t, e);
    ov_free(e);
  }
}

/* ---------------------------------------------------- email uniqueness */

/* Does the email case-folded in s->fb_case equal the stored one? */
static bool same_email(cs_store *s, const cs_str *stored) {
  if (fold_case(stored->ptr, stored->len, &s->fb_case2)) return false;
  return s->fb_case2.len == s->fb_case.len &&
         memcmp(s->fb_case2.ptr, s->fb_case.ptr, s->fb_case.len) == 0;
}

/* An entry of t of account, other than exclude, holding the email of
 * hash h (folded in s->fb_case), or NULL. */
static ov_entry *ov_email_match(cs_store *s, const ov_table *t, uint64_t h,
                                uint32_t account, uint64_t exclude) {
  for (ov_entry *e = t->by_email[ov_bucket(t, h)]; e; e = e->next_email) {
    if (e->email_hash != h || e->account != account || e->id == exclude)
      continue;
    if (same_email(s, &e->c.field[CS_EMAIL])) return e;
  }
  return NULL;
}

struct email_probe {
  cs_store *s;
  uint32_t account;
  uint64_t exclude;
  uint64_t found;
  int rc;
};

static int probe_slot(void *ctx, uint32_t slot) {
  struct email_probe *p = ctx;
  cs_store *s = p->s;
  uint64_t id = s->slots.v[slot].id;
  if (id == p->exclude || ov_find(&s->ov, id)) return 0; /* pending wins */
  rec_body b;
  cs_error err;
  int rc = store_read_slot(s, slot, &s->wzone, &b, &err);
  if (rc) {
    p->rc = rc;
    return 1;
  }
  if (same_email(s, &b.contact.field[CS_EMAIL])) {
    p->found = id;
    return 1;
  }
  return 0;
}

/* Folds email into s->fb_key and s->fb_case; its hash into *h. */
static int email_fold(cs_store *s, uint32_t account, const cs_str *email,
                      uint64_t *h, cs_error *err) {
  int rc = fold_key(CS_EMAIL, email->ptr, email->len, &s->fb_key);
  if (!rc) rc = fold_case(email->ptr, email->len, &s->fb_case);
  if (rc) return cs_err(err, rc, "cannot fold the email");
  *h = email_hash(account, s->fb_key.ptr, s->fb_key.len);
  return 0;
}

/* email_owner once the email is folded (hash h). */
static int email_owner_folded(cs_store *s, uint32_t account, uint64_t h,
                              uint64_t exclude, uint64_t *owner,
                              cs_error *err) {
  ov_entry *e = ov_email_match(s, &s->ov, h, account, exclude);
  if (e) {
    *owner = e->id;
    return 0;
  }
  struct email_probe p = {s, account, exclude, 0, 0};
  pthread_rwlock_rdlock(&s->ilock);
  ix_exact_slots(s->ix, account, CS_EMAIL, s->fb_key.ptr, s->fb_key.len,
                 probe_slot, &p);
  if (!p.found && !p.rc && s->bulk) {
    /* The index's bulk mode may not show the load's own contacts yet. */
    uint64_t *idp = u64map_get(
        &s->bulk_emails, email_hash(account, s->fb_case.ptr, s->fb_case.len));
    int64_t slot = idp && *idp != exclude ? slots_find(&s->slots, *idp) : -1;
    if (slot >= 0 && !ov_find(&s->ov, *idp)) probe_slot(&p, (uint32_t)slot);
  }
  pthread_rwlock_unlock(&s->ilock);
  if (p.rc)
    return cs_err(err, p.rc,
                  "cannot read a contact while checking "
                  "the email");
  *owner = p.found;
  return 0;
}

int email_taken(uint64_t owner, cs_error *err) {
  cs_err(err, CS_EDUPLICATE, "email: already used by contact %020" PRIu64,
         owner);
  if (err) {
    err->id = owner;
    err->field = CS_EMAIL;
  }
  return CS_EDUPLICATE;
}

int email_owner(cs_store *s, uint32_t account, const cs_str *email,
                uint64_t exclude, uint64_t *owner, cs_error *err) {
  *owner = 0;
  uint64_t h = 0;
  int rc = email_fold(s, account, email, &h, err);
  if (rc) return rc;
  return email_owner_folded(s, account, h, exclude, owner, err);
}

int email_bulk_note(cs_store *s, uint32_t account, uint64_t id) {
  return u64map_put(&s->bulk_emails,
                    email_hash(account, s->fb_case.ptr, s->fb_case.len), id);
}

/* ---------------------------------------------------------------- dry run */

/* The creates checked so far, as an overlay of their emails alone: entry
 * ids count the creates, entry seqs hold the caller's tags. */
struct cs_dryrun {
  cs_store *s;
  ov_table t;
  uint64_t count;
};

int cs_dryrun_create(cs_store *s, cs_dryrun **out) {
  cs_dryrun *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  if (ov_init(&d->t)) {
    free(d);
    return -ENOMEM;
  }
  d->s = s;
  *out = d;
  return 0;
}

void cs_dryrun_destroy(cs_dryrun *d) {
  if (!d) return;
  ov_deinit(&d->t);
  free(d);
}

/* The check itself, under wmu. */
static int dryrun_check_locked(cs_dryrun *d, uint32_t account,
                               const cs_contact *c, uint64_t tag,
                               uint64_t *dup_tag, cs_error *err) {
  cs_store *s = d->s;
  uint64_t h = 0;
  int rc = email_fold(s, account, &c->field[CS_EMAIL], &h, err);
  if (rc) return rc;
  ov_entry *e = ov_email_match(s, &d->t, h, account, 0);
  if (e) {
    *dup_tag = e->seq;
    cs_err(err, CS_EDUPLICATE, "email: already used by an earlier contact");
    if (err) err->field = CS_EMAIL;
    return CS_EDUPLICATE;
  }
  uint64_t owner = 0;
  rc = email_owner_folded(s, account, h, 0, &owner, err);
  if (rc) return rc;
  if (owner) return email_taken(owner, err);
  cs_contact email_only = {0};
  email_only.field[CS_EMAIL] = c->field[CS_EMAIL];
  if (ov_set(&d->t, &s->fb_key, d->count + 1, account, tag, &email_only, false))
    return cs_err(err, -ENOMEM, "out of memory");
  d->count++;
  return 0;
}

int cs_dryrun_check(cs_dryrun *d, uint32_t account, cs_contact *c, uint64_t tag,
                    uint64_t *dup_tag, cs_error *err) {
  *dup_tag = 0;
  if (account == CS_ALL_ACCOUNTS)
    return cs_err(err, CS_EINVAL, "invalid account number");
  int rc = cs_contact_validate(c, err);
  if (rc) return rc;
  pthread_mutex_lock(&d->s->wmu);
  rc = dryrun_check_locked(d, account, c, tag, dup_tag, err);
  pthread_mutex_unlock(&d->s->wmu);
  return rc;
}
