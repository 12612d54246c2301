/*
 * pindex.h: the primary index (private to the engine): the slot table,
 * which says where each contact's current record is, the live counts, and
 * applying a record to it and to the inverted indexes.
 */
#ifndef CS_PINDEX_H
#define CS_PINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cs.h"
#include "record.h"

/* Where one contact's current record is: 24 bytes, so a get touches one
 * cache line. Snapshots store the table as it is in memory. */
typedef struct cs_slot {
  uint64_t id;
  uint32_t seg;       /* segment number of the current record */
  uint32_t off;       /* its offset */
  uint32_t len;       /* its length, header included */
  uint32_t acct_live; /* account << 1 | live */
} cs_slot;
_Static_assert(sizeof(cs_slot) == 24, "a slot is 24 bytes, on disk too");

static inline uint32_t slot_account(const cs_slot *sl) {
  return sl->acct_live >> 1;
}
static inline bool slot_live(const cs_slot *sl) {
  return sl->acct_live & 1;
}

/* The slot table, one entry per contact ever created since the store was
 * rebuilt (dead ones included), in id order. Ids are handed out one after
 * the other, so the slot of an id is found by its distance from the first
 * id, or by a binary search below that where compaction left gaps: no map
 * from id to slot is needed. */
typedef struct slot_table {
  cs_slot *v;
  uint32_t count;
  uint32_t cap;
} slot_table;

/* The slot of id, or -1 when no slot has it. Caller holds ilock. Every get
 * and every write's validation looks here: inline. */
static inline int64_t slots_find(const slot_table *t, uint64_t id) {
  if (!t->count || id < t->v[0].id) return -1;
  uint64_t d = id - t->v[0].id;
  if (d < t->count && t->v[d].id == id) return (int64_t)d; /* no gap below */
  /* Gaps (from compaction) put id's slot below d: search there. */
  uint32_t lo = 0, hi = d < t->count ? (uint32_t)d : t->count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (t->v[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < t->count && t->v[lo].id == id ? (int64_t)lo : -1;
}

/* First slot whose id is > id (ids ascend with slots). Caller holds
 * ilock. */
uint32_t slots_after(const slot_table *t, uint64_t id);

void slots_free(slot_table *t);
/* Gives back a table's slack beyond a sixteenth of its slots (after a
 * replay, which grows it by doubling). Best effort. */
void slots_fit(slot_table *t);

/* Empties slots, counts and indexes, to rebuild from the log (after an
 * unusable snapshot). Caller is alone with s. */
void pindex_reset(cs_store *s);

/* Applies one checked record found at (seg, off) to slots and indexes.
 * Caller holds ilock for writing (or is opening the store alone).
 * CS_ECORRUPT when the record contradicts the log before it (another
 * account, out of id order); the store is then unchanged. */
int store_apply(cs_store *s, uint32_t seg, uint32_t off, const rec_view *r,
                const rec_body *b, cs_error *err);

/* Reads and checks the record of a slot (caller holds ilock), decoding it
 * with zone. 0, CS_ECORRUPT with err filled. */
int store_read_slot(cs_store *s, uint32_t slot, msgpack_zone *zone,
                    rec_body *out, cs_error *err);

/* Live contacts of account (caller holds ilock). */
uint64_t pindex_account_count(const cs_store *s, uint32_t account);

/*
 * Checks the whole store, for tests: the slot table in strictly
 * increasing id order, the live count, live bytes and every account's
 * count equal to a recount, and every live slot's record reading back as
 * a put of its own id and account. Takes ilock for reading (do not hold
 * it). 0, or CS_ECORRUPT with the first problem in errbuf.
 */
int store_check(cs_store *s, char *errbuf, size_t errlen);

#endif
