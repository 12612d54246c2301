/*
 * feed.h: the change feed (private to the engine): every change of every
 * account in commit order, as cs_changes_read reads it (cs.h, "change
 * feed").
 *
 * One list per account, in increasing seq order, appended by store_apply
 * (pindex.c) as records are applied, at open and at every commit. A list
 * drops the changes older than the store's changes_ms from its head; its
 * floor is then the seq of the last one dropped, so that a cursor below
 * the floor is known to have missed changes (CS_EEXPIRED) and a cursor at
 * or above it has missed none. Snapshots keep the lists whole (snap.c);
 * compaction carries them over in changes records (record.h), so they
 * outlive the records they came from.
 *
 * Invariants: in each list, seq strictly increases and every entry's seq
 * is above the list's floor; an entry's seq is at most the store's
 * applied_seq. All of it is under ilock (written by whoever applies).
 */
#ifndef CS_FEED_H
#define CS_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cs.h"
#include "u64map.h"

/* One change as the feed keeps it: 32 bytes, in memory, in snapshots and
 * in changes records alike (little endian). kind holds the time in its
 * high 48 bits (Unix ms, 0 .. 2^48 - 1), the type in bits 8..15 and the
 * changed fields in bits 0..7. */
typedef struct feed_ent {
  uint64_t seq;
  uint64_t id;
  uint64_t version;
  uint64_t kind;
} feed_ent;
_Static_assert(sizeof(feed_ent) == 32, "a feed entry is 32 bytes, on disk too");

#define FEED_AT_MAX ((1ll << 48) - 1)

static inline uint64_t feed_kind(int64_t at_ms, int type, uint32_t fields) {
  if (at_ms < 0) at_ms = 0;
  if (at_ms > FEED_AT_MAX) at_ms = FEED_AT_MAX;
  return (uint64_t)at_ms << 16 | (uint64_t)(type & 0xff) << 8 | (fields & 0xff);
}
static inline int64_t feed_at(const feed_ent *e) {
  return (int64_t)(e->kind >> 16);
}
static inline int feed_type(const feed_ent *e) {
  return (int)(e->kind >> 8 & 0xff);
}
static inline uint32_t feed_fields(const feed_ent *e) {
  return (uint32_t)(e->kind & 0xff);
}

/* One account's list: the entries v[head .. count). */
typedef struct feed_list {
  uint32_t account;
  uint32_t head;
  uint32_t count;
  uint32_t cap;
  uint64_t floor;
  feed_ent *v;
} feed_list;

typedef struct feed {
  feed_list *lists;
  uint32_t n, cap;
  u64map where;     /* account + 1 -> list index + 1 */
  uint64_t entries; /* kept, all lists */
  /* A list that grows drops its changes made before this (Unix ms): set
   * once a batch by the commit thread, so that applying a record asks no
   * clock. 0 (replay, compaction's read-back): none; open trims after. */
  int64_t cutoff;
} feed;

/* Appends e to account's list, then drops its entries made before
 * f->cutoff. 0 or -ENOMEM. */
int feed_add(feed *f, uint32_t account, const feed_ent *e);

/* Takes a changes record's entries (n of them at ents, unaligned) into
 * account's list, which must hold none at or above the first of them,
 * and raises its floor to floor. Every seq must be below below_seq. 0,
 * CS_ECORRUPT (with why), or -ENOMEM. */
int feed_carry(feed *f, uint32_t account, uint64_t floor, const uint8_t *ents,
               uint32_t n, uint64_t below_seq, const char **why);

/* Drops every list's entries made before cutoff. */
void feed_trim(feed *f, int64_t cutoff);

/* cs_changes_read over the lists, with end the feed's end. */
int feed_read(const feed *f, uint32_t account, uint64_t after, uint64_t end,
              unsigned types, cs_change *out, uint32_t max, cs_changes *got,
              uint64_t *oldest);

/* The oldest valid cursor of account: its list's floor. */
uint64_t feed_oldest(const feed *f, uint32_t account);

/* Memory held. */
size_t feed_bytes(const feed *f);

void feed_free(feed *f);

/* The snapshot's "feed": an array of [account, floor, bin of entries]. */
void feed_pack(const feed *f, msgpack_packer *pk);
/* Loads what feed_pack wrote into an empty f, every seq at most seq_max.
 * 0, CS_ECORRUPT with why, or -ENOMEM. */
int feed_unpack(feed *f, const msgpack_object *o, uint64_t seq_max,
                const char **why);

#endif
