/*
 * pindex.c: the primary index: the slot table (pindex.h), applying a
 * record to it and to the inverted indexes, the live counts, reading a
 * slot's record, and the whole-store checker for tests.
 *
 * Invariants kept (numbers from store_int.h):
 *   1. slot order is id order within an account, and within a run of the
 *      table (pindex.h): a new slot is appended with an id above the last
 *      one, or below it only for an id of a shard numbered lower than the
 *      store's (an import), which begins a run; any other record that
 *      would break the order is CS_ECORRUPT before the table is touched;
 *   - live_contacts, live_bytes and acct_counts always equal a recount of
 *     the live slots (store_check verifies it);
 *   - a live slot points at a checksum-valid put of its own id: a read
 *     that finds otherwise is CS_ECORRUPT, never returned as data (DESIGN
 *     promise 4).
 * Relied on: callers hold ilock (for writing to change anything), or are
 * alone with the store.
 */
#include "pindex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_assert.h"
#include "dir.h"
#include "err.h"
#include "log.h"
#include "store_int.h"

/* The slot table's first capacity, in slots (24 KiB). */
#define SLOTS_CAP_MIN 1024
/* The size past which the table grows by an eighth (4 MiB). */
#define SLOTS_GROW_SLOW_BYTES (4u << 20)

static int slots_reserve(slot_table *t, uint32_t want, bool bulk) {
  if (want <= t->cap) return 0;
  uint32_t cap = t->cap ? t->cap : SLOTS_CAP_MIN;
  /* Doubling while small and in bulk mode (a replay, whose end trims it:
   * slots_fit); by an eighth once large otherwise, so that live creates
   * after an open leave at most an eighth unused instead of up to half:
   * the table is counted in cs_stats.index_bytes. */
  while (cap < want) {
    uint64_t next =
        !bulk && (uint64_t)cap * sizeof(cs_slot) >= SLOTS_GROW_SLOW_BYTES
            ? (uint64_t)cap + cap / 8
            : (uint64_t)cap * 2;
    cap = next > UINT32_MAX ? UINT32_MAX : (uint32_t)next;
  }
  cs_slot *p = realloc(t->v, (size_t)cap * sizeof *p);
  if (!p) return -ENOMEM;
  t->v = p;
  t->cap = cap;
  return 0;
}

void slots_fit(slot_table *t) {
  uint64_t keep = (uint64_t)t->count + t->count / 16 + SLOTS_CAP_MIN;
  if (t->cap <= keep) return;
  cs_slot *p = realloc(t->v, (size_t)keep * sizeof *p);
  if (!p) return; /* best effort: the table stays as it was */
  t->v = p;
  t->cap = (uint32_t)keep;
}

void slots_free(slot_table *t) {
  free(t->v);
  free(t->runs);
  memset(t, 0, sizeof *t);
}

/* The first slot of v[lo, hi) (increasing ids) whose id is > id. */
static uint32_t run_after(const cs_slot *v, uint32_t lo, uint32_t hi,
                          uint64_t id) {
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (v[mid].id <= id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

uint32_t slots_after(const slot_table *t, uint64_t id) {
  if (!t->run_count) return run_after(t->v, 0, t->count, id);
  int64_t at = slots_find(t, id);
  if (at >= 0) return (uint32_t)at + 1;
  uint32_t lo = 0;
  for (uint32_t r = 0; r <= t->run_count; r++) {
    uint32_t hi = slots_run_end(t, r);
    uint32_t a = run_after(t->v, lo, hi, id);
    if (a < hi) return a;
    lo = hi;
  }
  return t->count;
}

void slots_id_ranges(const slot_table *t, uint64_t lo, uint64_t hi,
                     void (*fn)(void *ctx, uint32_t a, uint32_t b), void *ctx) {
  uint32_t start = 0;
  for (uint32_t r = 0; r <= t->run_count; r++) {
    uint32_t end = slots_run_end(t, r);
    uint32_t a = lo ? run_after(t->v, start, end, lo - 1) : start;
    uint32_t b = hi == UINT64_MAX ? end : run_after(t->v, start, end, hi);
    if (a < b) fn(ctx, a, b);
    start = end;
  }
}

uint64_t pindex_next_id(const cs_store *s) {
  uint64_t first = cs_shard_floor(s->shard) + 1;
  return s->max_id_seen + 1 > first ? s->max_id_seen + 1 : first;
}

uint64_t slots_max_id(const slot_table *t) {
  uint64_t max = 0;
  for (uint32_t r = 0; r <= t->run_count; r++) {
    uint32_t end = slots_run_end(t, r);
    if (end && t->v[end - 1].id > max) max = t->v[end - 1].id;
  }
  return max;
}

/* Notes that a run begins at slot (its id below the one before). */
static int runs_add(slot_table *t, uint32_t slot) {
  if (t->run_count == t->run_cap) {
    uint32_t cap = t->run_cap ? t->run_cap * 2 : 8;
    uint32_t *p = realloc(t->runs, (size_t)cap * sizeof *p);
    if (!p) return -ENOMEM;
    t->runs = p;
    t->run_cap = cap;
  }
  t->runs[t->run_count++] = slot;
  return 0;
}

int slots_runs_rebuild(slot_table *t) {
  t->run_count = 0;
  for (uint32_t i = 1; i < t->count; i++)
    if (t->v[i].id < t->v[i - 1].id && runs_add(t, i)) return -ENOMEM;
  return 0;
}

void pindex_reset(cs_store *s) {
  slots_free(&s->slots);
  u64map_free(&s->acct_counts);
  trash_free(&s->trash);
  idem_free(&s->idem); /* the log has them again */
  feed_free(&s->feed); /* and the changes */
  ix_destroy(s->ix);
  s->ix = ix_create();
  s->live_contacts = s->live_bytes = s->log_bytes = 0;
  s->applied_seq = 0;
  s->applied_seg = 0;
  s->applied_off = 0;
  s->max_id_seen = 0;
}

static void acct_adjust(cs_store *s, uint32_t account, int delta) {
  uint64_t *n = u64map_get(&s->acct_counts, (uint64_t)account + 1);
  if (n)
    *n += (uint64_t)(int64_t)delta;
  else if (delta > 0)
    u64map_put(&s->acct_counts, (uint64_t)account + 1, (uint64_t)delta);
}

uint64_t pindex_account_count(const cs_store *s, uint32_t account) {
  uint64_t *n = u64map_get(&s->acct_counts, (uint64_t)account + 1);
  return n ? *n : 0;
}

int store_read_slot(cs_store *s, uint32_t slot, msgpack_zone *zone,
                    rec_body *out, cs_error *err) {
  const cs_slot *sl = &s->slots.v[slot];
  seg_map *m = log_seg(s->segs, s->first_seg, s->seg_count, sl->seg);
  uint32_t off = sl->off;
  rec_view r;
  const char *why = "its location is outside the file";
  if (m && off < m->size) {
    why = "it fails its checksum";
    if (rec_check(m->map + off, m->size - off, &r) == 0) {
      int rc = rec_decode(&r, zone, out, &why);
      if (rc == 0 && out->type == REC_PUT && out->contact.id == sl->id)
        return 0;
      if (rc == 0) why = "the index points at another record";
    }
  }
  char name[SEG_NAME_BYTES];
  seg_name(name, sizeof name, sl->seg);
  return cs_err(err, CS_ECORRUPT,
                "%s/%s: record of contact %llu at offset %u: %s", s->dir, name,
                (unsigned long long)sl->id, off, why);
}

static bool same_str(const cs_str *a, const cs_str *b) {
  if (!a->ptr || !b->ptr) return !a->ptr && !b->ptr;
  return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

/* Takes the live version of slot out of the indexes and counts. With
 * next (the put replacing it), the fields next holds unchanged stay
 * indexed, and their bits are set in *kept, for the insert to skip. */
static int slot_kill(cs_store *s, uint32_t slot, const cs_contact *c,
                     const cs_contact *next, uint32_t *kept, cs_error *err) {
  cs_slot *sl = &s->slots.v[slot];
  rec_body old;
  int rc = store_read_slot(s, slot, &s->czone, &old, err);
  if (rc) return rc;
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (next && same_str(&old.contact.field[f], &next->field[f]))
      *kept |= 1u << f;
  rc = s->opts.no_indexes ? 0
       : s->ixq ? ixq_erase(s->ixq, c->account, slot, old.contact.field, *kept)
                : ix_erase(s->ix, c->account, slot, old.contact.field, *kept);
  if (rc) return cs_err(err, rc, "index update failed: %s", cs_strerror(rc));
  s->live_bytes -= sl->len;
  sl->acct_live &= ~1u;
  s->live_contacts--;
  acct_adjust(s, c->account, -1);
  return 0;
}

/* A new slot at the end for c (a create: no slot has its id), beginning a
 * new run when its id is below the last slot's (an import from a shard
 * numbered lower), or an error when the record cannot be one. */
static int slot_append(cs_store *s, const rec_view *r, const cs_contact *c,
                       uint32_t *slot, cs_error *err) {
  slot_table *t = &s->slots;
  bool descent = t->count && c->id < t->v[t->count - 1].id;
  if (descent && cs_id_shard(c->id) >= s->shard)
    return cs_err(err, CS_ECORRUPT,
                  "record seq %llu creates contact %llu out of id order",
                  (unsigned long long)r->seq, (unsigned long long)c->id);
  if (c->account > CS_ACCOUNT_ID_MAX)
    return cs_err(err, CS_ECORRUPT, "record seq %llu has account %u",
                  (unsigned long long)r->seq, c->account);
  if (t->count == UINT32_MAX ||
      slots_reserve(t, t->count + 1, s->ix && ix_in_bulk(s->ix)) ||
      (descent && runs_add(t, t->count)))
    return cs_err(err, -ENOMEM, "out of memory growing the primary index");
  /* Invariant 1: slot order is id order, but where a run begins. */
  CS_ASSERT(t->count == 0 || t->v[t->count - 1].id != c->id);
  *slot = t->count++;
  cs_slot *sl = &t->v[*slot];
  sl->id = c->id;
  sl->acct_live = c->account << 1;
  return 0;
}

/* The change of the feed that put or delete b makes of the contact in
 * slot sl (NULL: none yet), as record.h says; false when it makes none. */
static bool change_of(const rec_view *r, const rec_body *b, const cs_slot *sl,
                      feed_ent *out) {
  const cs_contact *c = &b->contact;
  if (r->flags & REC_FLAG_COPY) return false;
  int type;
  uint32_t fields = 0;
  int64_t at = c->updated_ms;
  if (b->type == REC_DELETE) {
    if (!sl) return false;
    type = b->purge ? CS_CHANGE_PURGED : CS_CHANGE_DELETED;
    at = c->deleted_ms;
  } else if (!sl) {
    type = CS_CHANGE_CREATED;
    for (int f = 0; f < CS_FIELD_COUNT; f++)
      if (c->field[f].ptr) fields |= 1u << f;
  } else if (slot_live(sl)) {
    type = CS_CHANGE_UPDATED;
    if (b->cf)
      fields = b->cf & ~REC_CF_SAID;
    else /* formats 1 and 2 do not say: every field it has */
      for (int f = 0; f < CS_FIELD_COUNT; f++)
        if (c->field[f].ptr) fields |= 1u << f;
  } else {
    type = CS_CHANGE_RESTORED;
  }
  *out = (feed_ent){r->seq, c->id, c->version, feed_kind(at, type, fields)};
  return true;
}

/* Keeps the change ch (when made) in the feed. */
static int note_change(cs_store *s, uint32_t account, bool made,
                       const feed_ent *ch, cs_error *err) {
  if (!made) return 0;
  if (feed_add(&s->feed, account, ch))
    return cs_err(err, -ENOMEM, "out of memory growing the change feed");
  return 0;
}

int store_apply(cs_store *s, uint32_t seg, uint32_t off, const rec_view *r,
                const rec_body *b, cs_error *err) {
  uint32_t len = REC_HEADER_BYTES + r->len;
  s->log_bytes += len;
  s->applied_seq = r->seq;
  s->applied_seg = seg;
  s->applied_off = (uint64_t)off + len;
  if (b->type == REC_IDEM) return 0; /* idem.c's, not the index's */
  if (b->type == REC_CHANGES) {
    const char *why = NULL;
    int rc = feed_carry(&s->feed, b->contact.account, b->floor, b->changes,
                        b->change_count, r->seq, &why);
    if (rc == CS_ECORRUPT)
      return cs_err(err, rc, "record seq %llu: %s", (unsigned long long)r->seq,
                    why);
    return rc ? cs_err(err, rc, "out of memory growing the change feed") : 0;
  }
  if (b->type == REC_META) {
    if (b->next_id > s->max_id_seen + 1) s->max_id_seen = b->next_id - 1;
    return 0;
  }
  const cs_contact *c = &b->contact;
  if (c->id > s->max_id_seen) s->max_id_seen = c->id;
  int64_t found = slots_find(&s->slots, c->id);
  uint32_t slot = 0, kept = 0; /* kept: fields an edit left as they were */
  feed_ent ch;
  bool made = change_of(r, b, found >= 0 ? &s->slots.v[found] : NULL, &ch);
  if (found >= 0) {
    slot = (uint32_t)found;
    const cs_slot *sl = &s->slots.v[slot];
    if (slot_account(sl) != c->account)
      return cs_err(err, CS_ECORRUPT,
                    "record seq %llu moves contact %llu to another account",
                    (unsigned long long)r->seq, (unsigned long long)c->id);
    if (slot_live(sl)) {
      int rc = slot_kill(s, slot, c, b->type == REC_PUT ? c : NULL, &kept, err);
      if (rc) return rc;
    }
    trash_drop(&s->trash, c->id); /* restored, purged, or trashed again */
    if (b->type == REC_DELETE) {
      if (!b->purge &&
          trash_add(&s->trash, c->id, c->account, r->seq, c->deleted_ms))
        return cs_err(err, -ENOMEM, "out of memory growing the trash");
      return note_change(s, c->account, made, &ch, err);
    }
  } else {
    if (b->type == REC_DELETE) return 0; /* nothing to delete */
    int rc = slot_append(s, r, c, &slot, err);
    if (rc) return rc;
  }
  /* A put: index the new version (what changed, for an edit). Its strings
   * point into the record. */
  int rc = s->opts.no_indexes ? 0
           : s->ixq ? ixq_insert(s->ixq, c->account, slot, c->field, kept,
                                 c->created_ms, c->updated_ms)
                    : ix_insert(s->ix, c->account, slot, c->field, kept,
                                c->created_ms, c->updated_ms);
  if (rc) return cs_err(err, rc, "index update failed: %s", cs_strerror(rc));
  cs_slot *sl = &s->slots.v[slot];
  sl->seg = seg;
  sl->off = off;
  sl->len = len;
  sl->acct_live |= 1u;
  s->live_bytes += len;
  s->live_contacts++;
  acct_adjust(s, c->account, +1);
  return note_change(s, c->account, made, &ch, err);
}

/* ------------------------------------------------------------- checker */

/* The slot table alone: its runs, each account's order, every id found
 * where it is, and the counts recounted. */
static int check_slots(cs_store *s, char *errbuf, size_t errlen) {
  const slot_table *t = &s->slots;
  u64map counts = {0}, last = {0}; /* account + 1 -> live; -> last id */
  uint64_t live = 0, bytes = 0;
  uint32_t run = 0;
  int rc = 0;
  for (uint32_t i = 0; i < t->count && !rc; i++) {
    const cs_slot *sl = &t->v[i];
    bool starts = run < t->run_count && t->runs[run] == i;
    run += starts;
    uint64_t key = (uint64_t)slot_account(sl) + 1;
    uint64_t *prev = u64map_get(&last, key);
    const char *why = NULL;
    if (i && !starts && sl->id <= t->v[i - 1].id)
      why = "in a run, after a larger or equal id";
    else if (starts && (!i || sl->id >= t->v[i - 1].id))
      why = "at the start of a run, after a smaller id";
    else if (prev && sl->id <= *prev)
      why = "after a larger id of its account";
    else if (slots_find(t, sl->id) != (int64_t)i)
      why = "not where a lookup of its id finds it";
    if (why) {
      snprintf(errbuf, errlen, "slot %u holds id %llu %s", i,
               (unsigned long long)sl->id, why);
      rc = CS_ECORRUPT;
      break;
    }
    if (u64map_put(&last, key, sl->id)) rc = -ENOMEM;
    if (!slot_live(sl)) continue;
    live++;
    bytes += sl->len;
    uint64_t *n = u64map_get(&counts, key);
    if (u64map_put(&counts, key, n ? *n + 1 : 1)) rc = -ENOMEM;
  }
  if (!rc && (live != s->live_contacts || bytes != s->live_bytes)) {
    snprintf(errbuf, errlen,
             "%llu live contacts of %llu bytes counted; the store says %llu "
             "of %llu",
             (unsigned long long)live, (unsigned long long)bytes,
             (unsigned long long)s->live_contacts,
             (unsigned long long)s->live_bytes);
    rc = CS_ECORRUPT;
  }
  /* Both ways: every recounted account, and every kept counter. */
  for (size_t i = 0; !rc && counts.keys && i <= counts.mask; i++) {
    if (!counts.keys[i]) continue;
    uint64_t *n = u64map_get(&s->acct_counts, counts.keys[i]);
    if (!n || *n != counts.vals[i]) rc = CS_ECORRUPT;
  }
  for (size_t i = 0; !rc && s->acct_counts.keys && i <= s->acct_counts.mask;
       i++) {
    if (!s->acct_counts.keys[i] || !s->acct_counts.vals[i]) continue;
    uint64_t *n = u64map_get(&counts, s->acct_counts.keys[i]);
    if (!n || *n != s->acct_counts.vals[i]) rc = CS_ECORRUPT;
  }
  if (rc == CS_ECORRUPT && !errbuf[0])
    snprintf(errbuf, errlen, "an account's count differs from a recount");
  if (rc == -ENOMEM) snprintf(errbuf, errlen, "out of memory");
  u64map_free(&counts);
  u64map_free(&last);
  return rc;
}

int store_check(cs_store *s, char *errbuf, size_t errlen) {
  errbuf[0] = 0;
  msgpack_zone zone;
  msgpack_zone_init(&zone, REC_ZONE_CHUNK_BYTES);
  pthread_rwlock_rdlock(&s->ilock);
  int rc = check_slots(s, errbuf, errlen);
  for (uint32_t i = 0; i < s->slots.count && !rc; i++) {
    const cs_slot *sl = &s->slots.v[i];
    if (!slot_live(sl)) continue;
    rec_body b;
    cs_error err;
    rc = store_read_slot(s, i, &zone, &b, &err);
    if (rc)
      snprintf(errbuf, errlen, "%s", err.msg);
    else if (b.contact.account != slot_account(sl)) {
      snprintf(errbuf, errlen, "contact %llu's record names account %u",
               (unsigned long long)sl->id, b.contact.account);
      rc = CS_ECORRUPT;
    }
  }
  /* Then the inverted indexes, by their own checker. */
  if (!rc && s->ix) rc = ix_check(s->ix, s->slots.count, errbuf, errlen);
  pthread_rwlock_unlock(&s->ilock);
  msgpack_zone_destroy(&zone);
  return rc;
}
