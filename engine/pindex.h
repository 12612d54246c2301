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
 * rebuilt (dead ones included), in the order they were created. A store
 * gives ids one after the other, so slot order is id order, and the slot
 * of an id is found by its distance from the first id, or by a binary
 * search below that where compaction left gaps: no map from id to slot is
 * needed.
 *
 * An import of an account from a shard numbered lower (import.c) appends
 * contacts whose ids are below ids the table holds already. Where a slot's
 * id is below the one before it a new run begins: the table is a few runs,
 * each in increasing id order, whose starts `runs` lists (0 is not in it:
 * a store that never took such an import has none). Within one account,
 * slot order stays id order (invariant 1 of store_int.h), which is what
 * reads in id order rely on; a lookup by id searches each run whose range
 * holds it, and the slots of an id range are one range of slots a run
 * (slots_id_ranges). */
typedef struct slot_table {
  cs_slot *v;
  uint32_t count;
  uint32_t cap;
  uint32_t *runs; /* increasing slot numbers where a run begins, past 0 */
  uint32_t run_count;
  uint32_t run_cap;
} slot_table;

/* The slot of id in v[lo, hi) (increasing ids), or -1. */
static inline int64_t slots_find_in(const cs_slot *v, uint32_t lo, uint32_t hi,
                                    uint64_t id) {
  if (lo == hi || id < v[lo].id || id > v[hi - 1].id) return -1;
  uint64_t d = id - v[lo].id;
  if (d < hi - lo && v[lo + d].id == id) return (int64_t)(lo + d); /* no gap */
  /* Gaps (from compaction) put id's slot below lo + d: search there. */
  uint32_t top = d < hi - lo ? lo + (uint32_t)d : hi;
  while (lo < top) {
    uint32_t mid = lo + (top - lo) / 2;
    if (v[mid].id < id)
      lo = mid + 1;
    else
      top = mid;
  }
  return lo < hi && v[lo].id == id ? (int64_t)lo : -1;
}

/* The end of run r (0 .. run_count) of t. */
static inline uint32_t slots_run_end(const slot_table *t, uint32_t r) {
  return r < t->run_count ? t->runs[r] : t->count;
}

/* The slot of id, or -1 when no slot has it. Caller holds ilock. Every get
 * and every write's validation looks here: inline. */
static inline int64_t slots_find(const slot_table *t, uint64_t id) {
  if (!t->run_count) return slots_find_in(t->v, 0, t->count, id);
  uint32_t lo = 0;
  for (uint32_t r = 0; r <= t->run_count; r++) {
    uint32_t hi = slots_run_end(t, r);
    int64_t at = slots_find_in(t->v, lo, hi, id);
    if (at >= 0) return at;
    lo = hi;
  }
  return -1;
}

/* Calls fn(ctx, a, b) for the slots [a, b) of each run whose ids lie in
 * [lo, hi] (a < b; none when no slot's id does), in slot order: one call
 * when the table has one run. Caller holds ilock. */
void slots_id_ranges(const slot_table *t, uint64_t lo, uint64_t hi,
                     void (*fn)(void *ctx, uint32_t a, uint32_t b), void *ctx);

/* The first slot after which every slot of an account holds an id > id,
 * and before which each holds an id <= id, given the slot of id itself
 * when the table has it, else exact only for a table of one run (with
 * several, the first slot of a run holding an id > id: a read that pages
 * from there may meet again contacts it met before it, never miss one).
 * Caller holds ilock. */
uint32_t slots_after(const slot_table *t, uint64_t id);

/* The id the store gives next, as far as its slots and records say: past
 * the largest id of its own shard it has seen, and at least its shard's
 * first (ids imported from a shard numbered lower lie below it). */
uint64_t pindex_next_id(const cs_store *s);

/* The largest id of the table (0 when empty). */
uint64_t slots_max_id(const slot_table *t);

/* Finds the runs of a table filled in as a whole (a snapshot's). 0 or
 * -ENOMEM. */
int slots_runs_rebuild(slot_table *t);

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
 * Checks the whole store, for tests: the slot table's runs each in
 * strictly increasing id order, every id once, each account's slots in
 * increasing id order, the live count, live bytes and every account's
 * count equal to a recount, and every live slot's record reading back as
 * a put of its own id and account. Takes ilock for reading (do not hold
 * it). 0, or CS_ECORRUPT with the first problem in errbuf.
 */
int store_check(cs_store *s, char *errbuf, size_t errlen);

#endif
