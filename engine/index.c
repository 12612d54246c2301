/*
 * index.c: the inverted indexes behind every field search.
 *
 * Why: searches must answer exactly and at once (read-your-writes), for
 * exact, prefix and words matching, over a million contacts, with indexes
 * smaller than the data they index, rebuilt from the log in well under the
 * replay budget and loaded from a snapshot in a fraction of a second.
 *
 * Shape. Each field has an exact dictionary (fold_key of the whole value ->
 * posting list) that also keeps its keys in sorted order for prefix search,
 * and a words dictionary (each word of the folded value -> posting list).
 * Phone has no words dictionary: its folded value is a string of digits,
 * one word, so a words search on phone is an exact search.
 *
 * Accounts cost nothing: every dictionary key starts with the account
 * number as 4 big-endian bytes, so one account's keys form one contiguous
 * range of the sorted order and an exact lookup can never reach another
 * account. The hash of a key is XXH3 of its text seeded with the account.
 *
 * A dictionary is:
 *  - an arena of key bytes (account prefix, then the folded text), garbage
 *    from removed keys reclaimed by compaction once it is half the arena;
 *  - an array of 16-byte entries {posting, arena offset:40 | length:24},
 *    free entries chained through the offset field;
 *  - an open-addressing hash table (linear probing, backward shift
 *    deletion, no tombstones) of 64-bit cells {hash:32 | entry+1:32}, so
 *    probing and growing never touch the entries or the keys. Its size is
 *    any number of cells, a key's home being its hash scaled to the size:
 *    built whole (ix_load, ix_bulk_end) at load 7/10, grown to load 1/2
 *    when inserts pass 4/5;
 *  - for exact dictionaries, the sorted order: entry numbers in chunks of
 *    at most IX_CHUNK_CAP, the chunks in key order (a two-level B-tree:
 *    binary search over the chunks' first keys, then within a chunk; a
 *    full chunk splits, an emptying one merges). Beside each entry number
 *    a chunk keeps the first 12 bytes of the key's text as big-endian
 *    integers, and the chunk headers (one array) the first key's prefix and
 *    the accounts of the first and last keys: both searches compare within
 *    that memory and read a key from the arena only when prefixes tie. In
 *    bulk mode new keys go to a pending list that ix_bulk_end sorts once
 *    and merges in.
 *
 * An insert folds all of a contact's fields first and prefetches the hash
 * cells, then the entries, then the key bytes and posting lists of all its
 * keys in rounds before adding any, so their cache misses overlap instead
 * of queueing.
 *
 * Bulk mode (replay) also stages the slots of keys that already exist as
 * (entry, slot) pairs and applies them sorted by entry, one pass over the
 * posting lists instead of a random list per word per contact; and ix_load
 * builds each hash table in one sequential pass from cells radix-sorted by
 * hash (homes ascend with hashes). On large indexes random memory access
 * and page faults, not arithmetic, are what cost: large arenas, entry
 * arrays and tables ask for transparent huge pages.
 *
 * A posting list is one 64-bit word: 0 none; (slot << 1) | 1 a single slot,
 * inline, no allocation (the common case: emails, phones, notes); a pointer
 * to a sorted uint32 array {n, cap, v[]} for up to IX_ARRAY_MAX slots; a
 * pointer | 2 to a CRoaring bitmap beyond. Arrays become bitmaps past
 * IX_ARRAY_MAX and bitmaps go back to arrays at IX_ARRAY_LOW (hysteresis,
 * so a list at the edge does not flip on every write).
 *
 * Invariants:
 *  1. Every key in a dictionary has a non-empty posting list (a key is
 *     removed when its list empties) and appears once in the hash table
 *     and, for exact dictionaries outside bulk mode, once in the order.
 *  2. Posting lists are strictly increasing; a single slot is inline, an
 *     array holds 2..IX_ARRAY_MAX slots, a bitmap more than IX_ARRAY_LOW.
 *  3. Within one exact dictionary the posting lists are disjoint (a slot
 *     has one value per field), so a prefix search's union is a disjoint
 *     union: its size is the sum of the lists' sizes. ix_load checks this.
 *  4. Searches never write: they use stack state and a per-thread folding
 *     buffer only, so any number may run at once under the store's lock.
 *     During bulk mode staged slots and pending keys are not yet visible
 *     (the store does not search then); ix_erase applies the stage first.
 *
 * Snapshot (ix_save / ix_load): one msgpack array
 *     ["csix", 1, [field0 .. field6]]
 *     field = [exact dict, words dict or nil (phone)]
 *     dict  = [key count, keys bin, postings bin]
 * keys bin: per key, varint length then the key bytes (account + text);
 * exact dictionaries in sorted order, so loading rebuilds the order
 * without sorting. postings bin: per key, in the same order, varint count
 * n >= 1, varint first slot, then n - 1 varints of (gap - 1). Varints are
 * LEB128, at most 5 bytes. A few large bins instead of millions of msgpack
 * objects keep both the unpacker's and our load work to a linear scan.
 * Hashes are not saved: recomputing them is about 1% of a load's time,
 * while 4 more bytes a key would be read (and faulted in) from the file.
 * ix_load checks every length, count, order, slot (< slot_limit),
 * duplicate and the disjointness of invariant 3, and never trusts a size
 * before checking it against the bytes that remain.
 */
#include "index.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <roaring/roaring.h>
#include <xxhash.h>

#include "fold.h"

/* Slots in an array posting before it becomes a bitmap, and the size at
 * which a shrinking bitmap becomes an array again. A bitmap over a million
 * slots costs about 1 KiB of fixed overhead (16 containers, their headers
 * and the container index) plus 2 bytes a slot, an array 4 bytes a slot:
 * they break even near 500 slots spread over the slot space; past 1024 the
 * bitmap wins on memory and on intersection speed. */
#define IX_ARRAY_MAX 1024
#define IX_ARRAY_LOW 512

/* Entries per chunk of the sorted order: 1 KiB, so an insert moves at most
 * a few hundred bytes and a million keys take some 4000 chunks. Bulk builds
 * fill chunks to 7/8 so the next inserts do not split every chunk. */
#define IX_CHUNK_CAP 256
#define IX_CHUNK_FILL (IX_CHUNK_CAP * 7 / 8)

/* Bulk mode stages (entry, slot) pairs for keys that already exist and
 * applies them in entry order when this many are waiting (16 MiB) or at
 * ix_bulk_end: appending to a posting list as each contact arrives touches
 * a random list per word, which on large indexes is a cache and TLB miss
 * each; sorting the pairs first turns that into one pass over the lists. */
#define IX_STAGE_MAX (1u << 21)

/* Key length is kept in 24 bits. Folding a 64 KiB note cannot come near
 * 16 MiB (NFKC and case folding expand UTF-8 by at most a small factor). */
#define IX_KEY_BYTES_MAX ((1u << 24) - 1)
#define IX_ACCOUNT_BYTES 4
#define IX_OFF_BITS 40

/* What malloc keeps beside each block, for ix_memory_bytes. */
#define IX_MALLOC_OVERHEAD 16

#define IX_NONE UINT32_MAX

/* Field names for load errors (the engine's own table lives with the
 * contact code; the index keeps to its own file). */
static const char *const ix_field_names[CS_FIELD_COUNT] = {
    "first_name", "last_name", "email", "phone",
    "company",    "job_title", "notes"};

typedef uint64_t ix_post;

typedef struct ix_arr {
  uint32_t n, cap;
  uint32_t v[];
} ix_arr;

typedef struct ix_ent {
  ix_post post;  /* 0: the entry is free */
  uint64_t kref; /* offset << 24 | length; free: the next free entry */
} ix_ent;

/* The first IX_PFX_BYTES bytes of a key's text (after the account) as
 * big-endian numbers, zero-padded: a 64-bit word then a 32-bit one. */
#define IX_PFX_BYTES 12
typedef struct ix_pfx {
  uint64_t a;
  uint32_t b;
} ix_pfx;

/* A chunk of the sorted order. Beside each entry number it keeps the key's
 * prefix (ix_pfx): comparing prefixes orders two keys as memcmp would
 * unless they tie, so binary searches stay within the chunk's own memory
 * and read the arena only on a tie (12 bytes: 8 ties too often, on emails
 * that start with a common first name and on notes). The chunk header (in
 * the one contiguous chunks array) repeats the first key's prefix and the
 * accounts of its first and last keys, so the search over chunks touches
 * no chunk body either. */
typedef struct ix_chunk {
  uint64_t pa0;          /* pa[0] */
  uint32_t pb0;          /* pb[0] */
  uint32_t acct0, acct1; /* accounts of the first and last keys */
  uint32_t n;
  uint32_t *v; /* one block: IX_CHUNK_CAP entry numbers, the first n in key
                * order, then the prefixes' 32-bit and 64-bit halves
                * (chunk_pb, chunk_pa), 16 bytes an entry */
} ix_chunk;

#define IX_CHUNK_BYTES (IX_CHUNK_CAP * (4 + 4 + 8))

typedef struct ix_dict {
  ix_ent *ents;
  uint32_t nents, ents_cap, free_head, live;
  uint64_t *tab; /* hash << 32 | (entry + 1); 0 empty */
  uint64_t tab_size;
  char *arena;
  uint64_t arena_len, arena_cap, arena_garbage;
  bool sorted;
  ix_chunk *chunks;
  uint32_t nchunks, chunks_cap;
  uint32_t *pending; /* bulk mode: new keys not yet in the order */
  uint32_t npending, pending_cap;
  uint32_t *big; /* entries whose posting is a bitmap */
  uint32_t nbig, big_cap;
  size_t arr_bytes; /* bytes held by array postings */
  uint64_t *stage;  /* bulk mode: (entry << 32 | slot) not yet in postings */
  size_t nstage, stage_cap;
} ix_dict;

/* One key an insert adds: where, which, and its hash (see ix_insert). */
typedef struct ix_job {
  ix_dict *d;
  const char *text;
  size_t len;
  uint32_t h, e; /* e: the entry its hash first matched, or IX_NONE */
} ix_job;

struct ix_index {
  ix_dict exact[CS_FIELD_COUNT];
  ix_dict words[CS_FIELD_COUNT]; /* words[CS_PHONE] stays empty */
  bool bulk;
  fold_buf fb; /* folding scratch of the writer (writes are serialised) */
  fold_buf ff[CS_FIELD_COUNT]; /* each field's folded value, in ix_insert */
  ix_job *jobs;                /* the keys of the insert in progress */
  size_t njobs, jobs_cap;
};

/* Asks for transparent huge pages under a large block (the arenas, entry
 * arrays and hash tables of large dictionaries). Filling a fresh block
 * faults its pages in one at a time, and on virtual machines a fault is
 * expensive (tens of microseconds): loading or replaying a million
 * contacts spent a third of its time there. Huge pages also spare the TLB
 * misses of random lookups. Best effort: the hint may be refused. */
#define IX_HUGE_MIN (4u << 20)
static void *ix_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  if (p && bytes >= IX_HUGE_MIN) {
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t b = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
    if (b > a) (void)madvise((void *)a, b - a, MADV_HUGEPAGE);
  }
#else
  (void)bytes;
#endif
  return p;
}

/* ------------------------------------------------------------ postings */

#define POST_IS_ONE(p) ((p)&1u)
#define POST_IS_RB(p) (((p)&3u) == 2u)
#define POST_ONE(p) ((uint32_t)((p) >> 1))
#define POST_MAKE_ONE(s) (((uint64_t)(s) << 1) | 1u)
#define POST_ARR(p) ((ix_arr *)(uintptr_t)(p))
#define POST_RB(p) ((roaring_bitmap_t *)(uintptr_t)((p) & ~(uint64_t)3))

static size_t arr_bytes(uint32_t cap) {
  return sizeof(ix_arr) + (size_t)cap * 4 + IX_MALLOC_OVERHEAD;
}

/* First index in v[0..n) whose value is >= x. */
static uint32_t lower_u32(const uint32_t *v, uint32_t n, uint32_t x) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (v[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static uint64_t post_card(ix_post p) {
  if (POST_IS_ONE(p)) return 1;
  if (POST_IS_RB(p)) return roaring_bitmap_get_cardinality(POST_RB(p));
  return POST_ARR(p)->n;
}

/* How many slots of p are >= min. */
static uint64_t post_count_ge(ix_post p, uint32_t min) {
  if (POST_IS_ONE(p)) return POST_ONE(p) >= min;
  if (POST_IS_RB(p)) {
    const roaring_bitmap_t *r = POST_RB(p);
    uint64_t c = roaring_bitmap_get_cardinality(r);
    return min == 0 ? c : c - roaring_bitmap_rank(r, min - 1);
  }
  const ix_arr *a = POST_ARR(p);
  return a->n - lower_u32(a->v, a->n, min);
}

static bool post_contains(ix_post p, uint32_t x) {
  if (POST_IS_ONE(p)) return POST_ONE(p) == x;
  if (POST_IS_RB(p)) return roaring_bitmap_contains(POST_RB(p), x);
  const ix_arr *a = POST_ARR(p);
  uint32_t i = lower_u32(a->v, a->n, x);
  return i < a->n && a->v[i] == x;
}

/* Ascending walk over the slots >= min of one list. Not copyable once
 * initialised (v may point at one). */
typedef struct post_iter {
  const uint32_t *v;
  uint32_t i, n, one;
  bool rb;
  roaring_uint32_iterator_t it;
} post_iter;

static void post_iter_init(post_iter *pi, ix_post p, uint32_t min) {
  pi->rb = false;
  if (POST_IS_ONE(p)) {
    pi->one = POST_ONE(p);
    pi->v = &pi->one;
    pi->n = 1;
    pi->i = pi->one >= min ? 0 : 1;
  } else if (POST_IS_RB(p)) {
    pi->rb = true;
    roaring_init_iterator(POST_RB(p), &pi->it);
    roaring_move_uint32_iterator_equalorlarger(&pi->it, min);
  } else {
    const ix_arr *a = POST_ARR(p);
    pi->v = a->v;
    pi->n = a->n;
    pi->i = lower_u32(a->v, a->n, min);
  }
}

static bool post_iter_next(post_iter *pi, uint32_t *out) {
  if (pi->rb) {
    if (!pi->it.has_value) return false;
    *out = pi->it.current_value;
    roaring_advance_uint32_iterator(&pi->it);
    return true;
  }
  if (pi->i >= pi->n) return false;
  *out = pi->v[pi->i++];
  return true;
}

/* Writes up to limit slots >= min of p to out; returns how many. */
static uint32_t post_first_ge(ix_post p, uint32_t min, uint32_t *out,
                              uint32_t limit) {
  if (limit == 0) return 0;
  if (POST_IS_ONE(p)) {
    if (POST_ONE(p) < min) return 0;
    out[0] = POST_ONE(p);
    return 1;
  }
  if (POST_IS_RB(p)) {
    roaring_uint32_iterator_t it;
    roaring_init_iterator(POST_RB(p), &it);
    if (!roaring_move_uint32_iterator_equalorlarger(&it, min)) return 0;
    return roaring_read_uint32_iterator(&it, out, limit);
  }
  const ix_arr *a = POST_ARR(p);
  uint32_t i = lower_u32(a->v, a->n, min);
  uint32_t k = a->n - i < limit ? a->n - i : limit;
  memcpy(out, a->v + i, (size_t)k * 4);
  return k;
}

static size_t rb_bytes(const roaring_bitmap_t *r) {
  roaring_statistics_t st;
  roaring_bitmap_statistics(r, &st);
  size_t b = sizeof(*r) + IX_MALLOC_OVERHEAD;
  b += (size_t)r->high_low_container.allocation_size *
           (sizeof(void *) + sizeof(uint16_t) + sizeof(uint8_t)) +
       3 * IX_MALLOC_OVERHEAD;
  b += (size_t)st.n_bytes_array_containers + st.n_bytes_run_containers +
       st.n_bytes_bitset_containers;
  /* each container: its header struct and its data, two blocks */
  b += (size_t)st.n_containers * (16 + 2 * IX_MALLOC_OVERHEAD);
  return b;
}

static void big_remove(ix_dict *d, uint32_t e) {
  for (uint32_t i = 0; i < d->nbig; i++)
    if (d->big[i] == e) {
      d->big[i] = d->big[--d->nbig];
      return;
    }
}

static int big_add(ix_dict *d, uint32_t e) {
  if (d->nbig == d->big_cap) {
    uint32_t cap = d->big_cap ? d->big_cap * 2 : 16;
    uint32_t *p = realloc(d->big, (size_t)cap * 4);
    if (!p) return -ENOMEM;
    d->big = p;
    d->big_cap = cap;
  }
  d->big[d->nbig++] = e;
  return 0;
}

static void post_free(ix_dict *d, ix_post p) {
  if (!p || POST_IS_ONE(p)) return;
  if (POST_IS_RB(p)) {
    roaring_bitmap_free(POST_RB(p));
    return;
  }
  d->arr_bytes -= arr_bytes(POST_ARR(p)->cap);
  free(POST_ARR(p));
}

/* Replaces entry e's posting p with a bitmap of the n slots in v (v may
 * belong to p: it is copied before p is freed); the bitmap in *out. 0 or
 * -ENOMEM, which leaves p in place. */
static int post_to_bitmap(ix_dict *d, uint32_t e, ix_post p, const uint32_t *v,
                          uint32_t n, roaring_bitmap_t **out) {
  roaring_bitmap_t *r = roaring_bitmap_of_ptr(n, v);
  if (!r) return -ENOMEM;
  if (big_add(d, e)) {
    roaring_bitmap_free(r);
    return -ENOMEM;
  }
  post_free(d, p);
  d->ents[e].post = (uint64_t)(uintptr_t)r | 2u;
  *out = r;
  return 0;
}

static ix_arr *arr_new(ix_dict *d, uint32_t cap) {
  ix_arr *a = malloc(sizeof(ix_arr) + (size_t)cap * 4);
  if (!a) return NULL;
  a->n = 0;
  a->cap = cap;
  d->arr_bytes += arr_bytes(cap);
  return a;
}

/* Adds slot to entry e's list (no-op when present). 0 or -ENOMEM, and then
 * the list is unchanged. */
static int post_add(ix_dict *d, uint32_t e, uint32_t slot) {
  ix_post p = d->ents[e].post;
  if (POST_IS_ONE(p)) {
    uint32_t s = POST_ONE(p);
    if (s == slot) return 0;
    ix_arr *a = arr_new(d, 2);
    if (!a) return -ENOMEM;
    a->n = 2;
    a->v[0] = s < slot ? s : slot;
    a->v[1] = s < slot ? slot : s;
    d->ents[e].post = (uint64_t)(uintptr_t)a;
    return 0;
  }
  if (POST_IS_RB(p)) {
    roaring_bitmap_add(POST_RB(p), slot);
    return 0;
  }
  ix_arr *a = POST_ARR(p);
  uint32_t i = a->v[a->n - 1] < slot ? a->n : lower_u32(a->v, a->n, slot);
  if (i < a->n && a->v[i] == slot) return 0;
  if (a->n == IX_ARRAY_MAX) {
    roaring_bitmap_t *r;
    if (post_to_bitmap(d, e, p, a->v, a->n, &r)) return -ENOMEM;
    roaring_bitmap_add(r, slot);
    return 0;
  }
  if (a->n == a->cap) {
    uint32_t cap = a->cap * 2 > IX_ARRAY_MAX ? IX_ARRAY_MAX : a->cap * 2;
    ix_arr *b = realloc(a, sizeof(ix_arr) + (size_t)cap * 4);
    if (!b) return -ENOMEM;
    d->arr_bytes += arr_bytes(cap) - arr_bytes(b->cap);
    b->cap = cap;
    a = b;
    d->ents[e].post = (uint64_t)(uintptr_t)a;
  }
  memmove(a->v + i + 1, a->v + i, (size_t)(a->n - i) * 4);
  a->v[i] = slot;
  a->n++;
  return 0;
}

/* Removes slot from entry e's list (no-op when absent); the posting becomes
 * 0 when the list empties. Never fails: a smaller representation that
 * cannot be allocated is simply not adopted. */
static void post_remove(ix_dict *d, uint32_t e, uint32_t slot) {
  ix_post p = d->ents[e].post;
  if (POST_IS_ONE(p)) {
    if (POST_ONE(p) == slot) d->ents[e].post = 0;
    return;
  }
  if (POST_IS_RB(p)) {
    roaring_bitmap_t *r = POST_RB(p);
    roaring_bitmap_remove(r, slot);
    uint64_t c = roaring_bitmap_get_cardinality(r);
    if (c > IX_ARRAY_LOW) return;
    if (c <= 1) {
      d->ents[e].post = c ? POST_MAKE_ONE(roaring_bitmap_minimum(r)) : 0;
      roaring_bitmap_free(r);
      big_remove(d, e);
      return;
    }
    ix_arr *a = arr_new(d, (uint32_t)c);
    if (!a) return;
    roaring_bitmap_to_uint32_array(r, a->v);
    a->n = (uint32_t)c;
    roaring_bitmap_free(r);
    big_remove(d, e);
    d->ents[e].post = (uint64_t)(uintptr_t)a;
    return;
  }
  ix_arr *a = POST_ARR(p);
  uint32_t i = lower_u32(a->v, a->n, slot);
  if (i == a->n || a->v[i] != slot) return;
  memmove(a->v + i, a->v + i + 1, (size_t)(a->n - i - 1) * 4);
  a->n--;
  if (a->n == 1) {
    d->ents[e].post = POST_MAKE_ONE(a->v[0]);
    post_free(d, p);
    return;
  }
  if (a->cap >= 16 && a->n <= a->cap / 4) {
    uint32_t cap = a->cap / 2;
    ix_arr *b = realloc(a, sizeof(ix_arr) + (size_t)cap * 4);
    if (b) {
      d->arr_bytes -= arr_bytes(b->cap) - arr_bytes(cap);
      b->cap = cap;
      d->ents[e].post = (uint64_t)(uintptr_t)b;
    }
  }
}

/* ---------------------------------------------------------------- keys */

static inline void acct_be(uint32_t account, uint8_t out[4]) {
  out[0] = (uint8_t)(account >> 24);
  out[1] = (uint8_t)(account >> 16);
  out[2] = (uint8_t)(account >> 8);
  out[3] = (uint8_t)account;
}

static inline uint32_t key_hash(uint32_t account, const char *text,
                                size_t len) {
  return (uint32_t)XXH3_64bits_withSeed(text, len, account);
}

static inline const uint8_t *ent_key(const ix_dict *d, uint32_t e,
                                     size_t *len) {
  uint64_t k = d->ents[e].kref;
  *len = (size_t)(k & IX_KEY_BYTES_MAX);
  return (const uint8_t *)d->arena + (k >> 24);
}

/* Compares a stored key with (account, text): memcmp order, then length. */
static int key_cmp(const uint8_t *k, size_t klen, const uint8_t acct[4],
                   const char *text, size_t tlen) {
  int c = memcmp(k, acct, 4);
  if (c) return c;
  size_t kt = klen - 4, m = kt < tlen ? kt : tlen;
  c = m ? memcmp(k + 4, text, m) : 0;
  if (c) return c;
  return (kt > tlen) - (kt < tlen);
}

static int key_cmp_raw(const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen) {
  size_t m = alen < blen ? alen : blen;
  int c = memcmp(a, b, m);
  if (c) return c;
  return (alen > blen) - (alen < blen);
}

/* A hash's home cell in a table of size cells: its hash scaled to the size
 * (any size, not only powers of two, so a table can be sized to its keys;
 * and homes ascend with hashes, which tab_build relies on). */
static inline uint64_t tab_home(uint32_t h, uint64_t size) {
  return ((uint64_t)h * size) >> 32;
}

static inline uint64_t tab_next(uint64_t i, uint64_t size) {
  return i + 1 == size ? 0 : i + 1;
}

/* Cells from a to b going forward (wrapping). */
static inline uint64_t tab_dist(uint64_t a, uint64_t b, uint64_t size) {
  return b >= a ? b - a : b + size - a;
}

/* Table sizes: grown to hold twice its keys when they pass 4/5 of it;
 * built whole (load, end of bulk) at 10/7 of its keys, so the next inserts
 * do not grow it at once. */
#define IX_TAB_FULL(keys, size) ((uint64_t)(keys)*5 > (uint64_t)(size)*4)
static inline uint64_t tab_size_for(uint64_t keys) {
  return keys * 10 / 7 + 16;
}

static uint32_t dict_find(const ix_dict *d, uint32_t account, const char *text,
                          size_t len, uint32_t h) {
  if (!d->tab_size) return IX_NONE;
  uint8_t acct[4];
  acct_be(account, acct);
  for (uint64_t i = tab_home(h, d->tab_size);; i = tab_next(i, d->tab_size)) {
    uint64_t c = d->tab[i];
    if (!c) return IX_NONE;
    if ((uint32_t)(c >> 32) != h) continue;
    uint32_t e = (uint32_t)c - 1;
    size_t klen;
    const uint8_t *k = ent_key(d, e, &klen);
    if (klen == len + 4 && !memcmp(k, acct, 4) && !memcmp(k + 4, text, len))
      return e;
  }
}

static void tab_put(uint64_t *tab, uint64_t size, uint64_t cell) {
  uint64_t i = tab_home((uint32_t)(cell >> 32), size);
  while (tab[i])
    i = tab_next(i, size);
  tab[i] = cell;
}

/* Makes room in the table for one more key. */
static int tab_reserve(ix_dict *d, uint64_t keys) {
  if (d->tab_size && !IX_TAB_FULL(keys, d->tab_size)) return 0;
  uint64_t size = keys * 2 > 16 ? keys * 2 : 16;
  uint64_t *t = ix_huge(calloc(size, sizeof(uint64_t)), size * 8);
  if (!t) return -ENOMEM;
  for (uint64_t i = 0; i < d->tab_size; i++)
    if (d->tab[i]) tab_put(t, size, d->tab[i]);
  free(d->tab);
  d->tab = t;
  d->tab_size = size;
  return 0;
}

static void tab_delete(ix_dict *d, uint32_t e, uint32_t h) {
  uint64_t size = d->tab_size;
  uint64_t i = tab_home(h, size);
  while ((uint32_t)d->tab[i] != e + 1)
    i = tab_next(i, size);
  /* Backward shift: pull later cells of the run into the hole unless that
   * would move one before its home position. */
  for (uint64_t j = tab_next(i, size);; j = tab_next(j, size)) {
    uint64_t c = d->tab[j];
    if (!c) break;
    uint64_t home = tab_home((uint32_t)(c >> 32), size);
    if (tab_dist(home, j, size) >= tab_dist(i, j, size)) {
      d->tab[i] = c;
      i = j;
    }
  }
  d->tab[i] = 0;
}

/* Stable LSD radix sort of a[0..n) by bits [lo, lo + bits) of each value,
 * 8 bits a pass. Returns the array that holds the result (a or tmp). */
static uint64_t *radix_sort(uint64_t *a, uint64_t *tmp, size_t n, int lo,
                            int bits) {
  for (int shift = lo; shift < lo + bits; shift += 8) {
    int w = lo + bits - shift < 8 ? lo + bits - shift : 8;
    uint64_t m = (1u << w) - 1;
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++)
      count[((a[i] >> shift) & m) + 1]++;
    for (int b = 1; b <= 256; b++)
      count[b] += count[b - 1];
    for (size_t i = 0; i < n; i++)
      tmp[count[(a[i] >> shift) & m]++] = a[i];
    uint64_t *t = a;
    a = tmp;
    tmp = t;
  }
  return a;
}

static int log2_ceil(uint64_t n) {
  int b = 0;
  while (((uint64_t)1 << b) < n)
    b++;
  return b;
}

/*
 * Fills the (empty) table with cells[0..n) in one sequential pass: sorted
 * by home position, linear probing places each cell at max(home, next
 * free); the few that run off the end wrap to the first free cells. This
 * avoids a random read per key, which on large tables is a cache and TLB
 * miss each. With check_dups, two equal keys are reported (-EEXIST).
 */
static int tab_build(ix_dict *d, uint64_t *cells, size_t n, bool check_dups) {
  uint64_t *tmp = malloc((n ? n : 1) * sizeof(uint64_t));
  if (!tmp) return -ENOMEM;
  /* homes ascend with hashes: sorting by hash sorts by home */
  uint64_t *sorted = radix_sort(cells, tmp, n, 32, 32);
  uint64_t size = d->tab_size;
  if (check_dups) {
    /* equal keys have equal hashes: compare within runs of one hash */
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n &&
             (uint32_t)(sorted[j] >> 32) == (uint32_t)(sorted[i] >> 32))
        j++;
      for (size_t a = i; a < j; a++)
        for (size_t b = a + 1; b < j; b++) {
          if ((uint32_t)(sorted[a] >> 32) != (uint32_t)(sorted[b] >> 32))
            continue;
          size_t la, lb;
          const uint8_t *ka = ent_key(d, (uint32_t)sorted[a] - 1, &la);
          const uint8_t *kb = ent_key(d, (uint32_t)sorted[b] - 1, &lb);
          if (la == lb && !memcmp(ka, kb, la)) {
            free(tmp);
            return -EEXIST;
          }
        }
      i = j;
    }
  }
  uint64_t next = 0;
  size_t wrapped = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t home = tab_home((uint32_t)(sorted[i] >> 32), size);
    uint64_t p = home > next ? home : next;
    if (p >= size) {
      sorted[wrapped++] = sorted[i]; /* i >= wrapped: safe in place */
      continue;
    }
    d->tab[p] = sorted[i];
    next = p + 1;
  }
  for (size_t i = 0, p = 0; i < wrapped; i++) {
    while (d->tab[p])
      p++;
    d->tab[p] = sorted[i];
  }
  free(tmp);
  return 0;
}

/* Rebuilds the table at tab_size_for its keys when growth by doubling left
 * it much larger (after a bulk load). Best effort: on failure the table
 * stays as it is. */
static void tab_fit(ix_dict *d) {
  uint64_t size = tab_size_for(d->live);
  if (!d->tab_size || d->tab_size <= size + size / 4) return;
  uint64_t *cells = malloc(((size_t)d->live + 1) * sizeof(uint64_t));
  uint64_t *t = ix_huge(calloc(size, sizeof(uint64_t)), size * 8);
  if (!cells || !t) {
    free(cells);
    free(t);
    return;
  }
  size_t n = 0;
  for (uint64_t i = 0; i < d->tab_size; i++)
    if (d->tab[i]) cells[n++] = d->tab[i];
  uint64_t *old = d->tab;
  uint64_t old_size = d->tab_size;
  d->tab = t;
  d->tab_size = size;
  if (tab_build(d, cells, n, false)) {
    free(t);
    d->tab = old;
    d->tab_size = old_size;
  } else {
    free(old);
  }
  free(cells);
}

static int arena_reserve(ix_dict *d, uint64_t more) {
  if (d->arena_len + more <= d->arena_cap) return 0;
  uint64_t cap = d->arena_cap ? d->arena_cap + d->arena_cap / 2 : 4096;
  if (cap < d->arena_len + more) cap = d->arena_len + more;
  if (cap >> IX_OFF_BITS) return -ENOMEM;
  char *p = ix_huge(realloc(d->arena, cap), cap);
  if (!p) return -ENOMEM;
  d->arena = p;
  d->arena_cap = cap;
  return 0;
}

/* Rewrites the arena without the garbage of removed keys. Best effort. */
static void arena_compact(ix_dict *d) {
  uint64_t need = d->arena_len - d->arena_garbage;
  uint64_t cap = need + need / 4 + 4096;
  char *p = malloc(cap);
  if (!p) return;
  uint64_t off = 0;
  for (uint32_t e = 0; e < d->nents; e++) {
    if (!d->ents[e].post) continue;
    size_t len;
    const uint8_t *k = ent_key(d, e, &len);
    memcpy(p + off, k, len);
    d->ents[e].kref = off << 24 | len;
    off += len;
  }
  free(d->arena);
  d->arena = p;
  d->arena_cap = cap;
  d->arena_len = off;
  d->arena_garbage = 0;
}

/* ------------------------------------------------------- sorted order */

static inline uint32_t *chunk_pb(const ix_chunk *ch) {
  return ch->v + IX_CHUNK_CAP;
}

static inline uint64_t *chunk_pa(const ix_chunk *ch) {
  return (uint64_t *)(void *)(ch->v + 2 * IX_CHUNK_CAP);
}

/* The prefix of a key's text. Keys hold no NUL past their account prefix,
 * so when two prefixes differ they order the keys as memcmp-then-length
 * does (a shorter key's zero padding sorts before any byte of a longer
 * one); when they tie only the whole keys can tell. */
static inline ix_pfx text_pk(const uint8_t *t, size_t len) {
  uint8_t b[IX_PFX_BYTES] = {0};
  const uint8_t *p = t;
  if (len < IX_PFX_BYTES) {
    memcpy(b, t, len);
    p = b;
  }
  uint64_t a;
  uint32_t w;
  memcpy(&a, p, 8);
  memcpy(&w, p + 8, 4);
  return (ix_pfx){__builtin_bswap64(a), __builtin_bswap32(w)};
}

static inline int pfx_cmp(uint64_t a, uint32_t b, const ix_pfx *t) {
  if (a != t->a) return a < t->a ? -1 : 1;
  if (b != t->b) return b < t->b ? -1 : 1;
  return 0;
}

static inline void chunk_set(ix_chunk *ch, uint32_t i, uint32_t e, ix_pfx p) {
  ch->v[i] = e;
  chunk_pa(ch)[i] = p.a;
  chunk_pb(ch)[i] = p.b;
}

/* Moves n entries of ch from index from to index to (memmove). */
static void chunk_move(ix_chunk *ch, uint32_t to, uint32_t from, uint32_t n) {
  memmove(ch->v + to, ch->v + from, (size_t)n * 4);
  memmove(chunk_pb(ch) + to, chunk_pb(ch) + from, (size_t)n * 4);
  memmove(chunk_pa(ch) + to, chunk_pa(ch) + from, (size_t)n * 8);
}

/* Copies n entries from src at from to dst at to (distinct chunks). */
static void chunk_copy(ix_chunk *dst, uint32_t to, const ix_chunk *src,
                       uint32_t from, uint32_t n) {
  memcpy(dst->v + to, src->v + from, (size_t)n * 4);
  memcpy(chunk_pb(dst) + to, chunk_pb(src) + from, (size_t)n * 4);
  memcpy(chunk_pa(dst) + to, chunk_pa(src) + from, (size_t)n * 8);
}

static inline uint32_t key_acct(const uint8_t *k) {
  return (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 |
         k[3];
}

/* Refreshes chunk c's header from its body (after its ends changed). */
static void chunk_fix(ix_dict *d, uint32_t c) {
  ix_chunk *ch = &d->chunks[c];
  size_t len;
  ch->pa0 = chunk_pa(ch)[0];
  ch->pb0 = chunk_pb(ch)[0];
  ch->acct0 = key_acct(ent_key(d, ch->v[0], &len));
  ch->acct1 = key_acct(ent_key(d, ch->v[ch->n - 1], &len));
}

/* A key being looked for in the order. */
typedef struct order_target {
  uint32_t acct;
  uint8_t acct_be[4];
  const char *text;
  size_t tlen;
  ix_pfx pk;
} order_target;

static void target_init(order_target *t, uint32_t account, const char *text,
                        size_t tlen) {
  t->acct = account;
  acct_be(account, t->acct_be);
  t->text = text;
  t->tlen = tlen;
  t->pk = text_pk((const uint8_t *)text, tlen);
}

/* Compares entry e (of account acct, prefix pk) with the target. */
static inline int order_cmp(const ix_dict *d, uint32_t e, uint32_t acct,
                            uint64_t pa, uint32_t pb, const order_target *t) {
  if (acct != t->acct) return acct < t->acct ? -1 : 1;
  int c = pfx_cmp(pa, pb, &t->pk);
  if (c) return c;
  size_t klen;
  const uint8_t *k = ent_key(d, e, &klen);
  return key_cmp(k, klen, t->acct_be, t->text, t->tlen);
}

/* The position of the first key >= the target: chunk *c, index *i
 * (*c == nchunks at the end). */
static void order_lower_t(const ix_dict *d, const order_target *t,
                          uint32_t *c_out, uint32_t *i_out) {
  /* k = number of chunks whose first key is < target */
  uint32_t lo = 0, hi = d->nchunks;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    const ix_chunk *ch = &d->chunks[mid];
    if (order_cmp(d, ch->v[0], ch->acct0, ch->pa0, ch->pb0, t) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) {
    *c_out = 0;
    *i_out = 0;
    return;
  }
  uint32_t c = lo - 1;
  const ix_chunk *ch = &d->chunks[c];
  const uint64_t *pa = chunk_pa(ch);
  const uint32_t *pb = chunk_pb(ch);
  uint32_t a = 1, b = ch->n; /* v[0] < target already */
  if (ch->acct1 < t->acct) {
    a = b; /* the whole chunk is of smaller accounts */
  } else if (ch->acct0 == ch->acct1) {
    /* one account, the target's (acct0 <= t->acct <= acct1) */
    while (a < b) {
      uint32_t mid = a + (b - a) / 2;
      if (order_cmp(d, ch->v[mid], t->acct, pa[mid], pb[mid], t) < 0)
        a = mid + 1;
      else
        b = mid;
    }
  } else {
    /* a chunk across accounts (rare): whole keys */
    while (a < b) {
      uint32_t mid = a + (b - a) / 2;
      size_t klen;
      const uint8_t *k = ent_key(d, ch->v[mid], &klen);
      if (key_cmp(k, klen, t->acct_be, t->text, t->tlen) < 0)
        a = mid + 1;
      else
        b = mid;
    }
  }
  if (a == ch->n) {
    *c_out = c + 1;
    *i_out = 0;
  } else {
    *c_out = c;
    *i_out = a;
  }
}

static void order_lower(const ix_dict *d, uint32_t account, const char *text,
                        size_t tlen, uint32_t *c_out, uint32_t *i_out) {
  order_target t;
  target_init(&t, account, text, tlen);
  order_lower_t(d, &t, c_out, i_out);
}

static int chunks_reserve(ix_dict *d, uint32_t n) {
  if (n <= d->chunks_cap) return 0;
  uint32_t cap = d->chunks_cap ? d->chunks_cap * 2 : 16;
  while (cap < n)
    cap *= 2;
  ix_chunk *p = realloc(d->chunks, (size_t)cap * sizeof(ix_chunk));
  if (!p) return -ENOMEM;
  d->chunks = p;
  d->chunks_cap = cap;
  return 0;
}

static int order_insert(ix_dict *d, uint32_t e) {
  size_t klen;
  const uint8_t *k = ent_key(d, e, &klen);
  order_target t;
  target_init(&t, key_acct(k), (const char *)k + 4, klen - 4);
  if (d->nchunks == 0) {
    if (chunks_reserve(d, 1)) return -ENOMEM;
    uint32_t *v = malloc(IX_CHUNK_BYTES);
    if (!v) return -ENOMEM;
    d->chunks[0] = (ix_chunk){0, 0, 0, 0, 1, v};
    chunk_set(&d->chunks[0], 0, e, t.pk);
    d->nchunks = 1;
    chunk_fix(d, 0);
    return 0;
  }
  uint32_t c, i;
  order_lower_t(d, &t, &c, &i);
  if (c == d->nchunks ||
      (i == 0 && c > 0 && d->chunks[c - 1].n < IX_CHUNK_CAP)) {
    c--;
    i = d->chunks[c].n;
  }
  ix_chunk *ch = &d->chunks[c];
  if (ch->n == IX_CHUNK_CAP) {
    if (chunks_reserve(d, d->nchunks + 1)) return -ENOMEM;
    uint32_t *v = malloc(IX_CHUNK_BYTES);
    if (!v) return -ENOMEM;
    ch = &d->chunks[c];
    uint32_t half = IX_CHUNK_CAP / 2;
    memmove(d->chunks + c + 2, d->chunks + c + 1,
            (size_t)(d->nchunks - c - 1) * sizeof(ix_chunk));
    ix_chunk *nx = &d->chunks[c + 1];
    *nx = (ix_chunk){0, 0, 0, 0, IX_CHUNK_CAP - half, v};
    chunk_copy(nx, 0, ch, half, IX_CHUNK_CAP - half);
    d->nchunks++;
    ch->n = half;
    chunk_fix(d, c);
    chunk_fix(d, c + 1);
    if (i > half) {
      ch = nx;
      c++;
      i -= half;
    }
  }
  chunk_move(ch, i + 1, i, ch->n - i);
  chunk_set(ch, i, e, t.pk);
  ch->n++;
  if (i == 0) {
    ch->pa0 = t.pk.a;
    ch->pb0 = t.pk.b;
    ch->acct0 = t.acct;
  }
  if (i == ch->n - 1) ch->acct1 = t.acct;
  return 0;
}

static void order_remove(ix_dict *d, uint32_t e) {
  size_t klen;
  const uint8_t *k = ent_key(d, e, &klen);
  uint32_t c, i;
  order_lower(d, key_acct(k), (const char *)k + 4, klen - 4, &c, &i);
  if (c >= d->nchunks || d->chunks[c].v[i] != e) {
    /* Not in the order: a key added in bulk mode and not yet merged. */
    for (uint32_t j = 0; j < d->npending; j++)
      if (d->pending[j] == e) {
        d->pending[j] = d->pending[--d->npending];
        return;
      }
    return;
  }
  ix_chunk *ch = &d->chunks[c];
  chunk_move(ch, i, i + 1, ch->n - i - 1);
  ch->n--;
  if (ch->n == 0) {
    free(ch->v);
    memmove(d->chunks + c, d->chunks + c + 1,
            (size_t)(d->nchunks - c - 1) * sizeof(ix_chunk));
    d->nchunks--;
    return;
  }
  /* Merge a thin chunk into its right neighbour when both fit in 3/4 of a
   * chunk, so the chunk count tracks the key count. */
  if (c + 1 < d->nchunks && ch->n < IX_CHUNK_CAP / 4 &&
      ch->n + d->chunks[c + 1].n <= IX_CHUNK_CAP * 3 / 4) {
    ix_chunk *nx = &d->chunks[c + 1];
    chunk_copy(ch, ch->n, nx, 0, nx->n);
    ch->n += nx->n;
    free(nx->v);
    memmove(d->chunks + c + 1, d->chunks + c + 2,
            (size_t)(d->nchunks - c - 2) * sizeof(ix_chunk));
    d->nchunks--;
    chunk_fix(d, c);
    return;
  }
  if (i == 0 || i == ch->n) chunk_fix(d, c);
}

/* ------------------------------------------------- bulk sort and merge */

typedef struct ix_sitem {
  uint64_t k0, k1;
  uint32_t e;
} ix_sitem;

/* 8 bytes of key from off, big-endian, zero-padded past the end. Keys
 * never hold a NUL past their account prefix, so padding sorts a shorter
 * key before any longer one sharing its bytes, as memcmp order wants. */
static uint64_t key_word(const uint8_t *k, size_t len, size_t off) {
  uint64_t w = 0;
  for (size_t i = 0; i < 8; i++)
    w = w << 8 | (off + i < len ? k[off + i] : 0);
  return w;
}

static void sitem_load(const ix_dict *d, ix_sitem *it, size_t off) {
  size_t len;
  const uint8_t *k = ent_key(d, it->e, &len);
  it->k0 = key_word(k, len, off);
  it->k1 = key_word(k, len, off + 8);
}

static inline int sitem_cmp(const ix_sitem *a, const ix_sitem *b) {
  if (a->k0 != b->k0) return a->k0 < b->k0 ? -1 : 1;
  if (a->k1 != b->k1) return a->k1 < b->k1 ? -1 : 1;
  return 0;
}

static uint64_t sort_rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Three-way quicksort on (k0, k1) with random pivots: expected n log n
 * whatever order the keys arrived in. */
static void sitem_qsort(ix_sitem *a, size_t n, uint64_t *rng) {
  while (n > 16) {
    ix_sitem p = a[sort_rng(rng) % n];
    size_t lt = 0, i = 0, gt = n;
    while (i < gt) {
      int c = sitem_cmp(&a[i], &p);
      if (c < 0) {
        ix_sitem t = a[lt];
        a[lt++] = a[i];
        a[i++] = t;
      } else if (c > 0) {
        ix_sitem t = a[--gt];
        a[gt] = a[i];
        a[i] = t;
      } else {
        i++;
      }
    }
    /* recurse into the smaller side, loop on the larger */
    if (lt < n - gt) {
      sitem_qsort(a, lt, rng);
      a += gt;
      n -= gt;
    } else {
      sitem_qsort(a + gt, n - gt, rng);
      n = lt;
    }
  }
  for (size_t i = 1; i < n; i++) {
    ix_sitem t = a[i];
    size_t j = i;
    while (j > 0 && sitem_cmp(&t, &a[j - 1]) < 0) {
      a[j] = a[j - 1];
      j--;
    }
    a[j] = t;
  }
}

/* Sorts by whole keys: 16 bytes at a time from off, then each run that
 * ties on those 16 bytes by the next 16. */
static void sitem_sort(const ix_dict *d, ix_sitem *a, size_t n, size_t off,
                       uint64_t *rng) {
  sitem_qsort(a, n, rng);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && !sitem_cmp(&a[i], &a[j]))
      j++;
    if (j - i > 1) {
      bool longer = false;
      for (size_t t = i; t < j; t++) {
        size_t len;
        ent_key(d, a[t].e, &len);
        longer |= len > off + 16;
        sitem_load(d, &a[t], off + 16);
      }
      if (longer) sitem_sort(d, a + i, j - i, off + 16, rng);
    }
    i = j;
  }
}

/* Merges the pending keys into the order: one sort, one linear merge. */
static int order_merge_pending(ix_dict *d) {
  if (!d->npending) return 0;
  size_t np = d->npending;
  ix_sitem *s = malloc(np * sizeof(ix_sitem));
  if (!s) return -ENOMEM;
  for (size_t i = 0; i < np; i++) {
    s[i].e = d->pending[i];
    sitem_load(d, &s[i], 0);
  }
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  sitem_sort(d, s, np, 0, &rng);

  uint64_t total = (uint64_t)d->live;
  uint32_t nch = (uint32_t)((total + IX_CHUNK_FILL - 1) / IX_CHUNK_FILL);
  ix_chunk *out = calloc(nch ? nch : 1, sizeof(ix_chunk));
  if (!out) {
    free(s);
    return -ENOMEM;
  }
  for (uint32_t c = 0; c < nch; c++) {
    out[c].v = malloc(IX_CHUNK_BYTES);
    if (!out[c].v) {
      for (uint32_t j = 0; j < c; j++)
        free(out[j].v);
      free(out);
      free(s);
      return -ENOMEM;
    }
  }
  uint32_t oc = 0, oi = 0;
  size_t pi = 0;
  uint32_t cc = 0, ci = 0;
#define IX_EMIT(ent, pk)                                                       \
  do {                                                                         \
    if (oi == IX_CHUNK_FILL) {                                                 \
      out[oc++].n = oi;                                                        \
      oi = 0;                                                                  \
    }                                                                          \
    chunk_set(&out[oc], oi++, (ent), (pk));                                    \
  } while (0)
  while (cc < d->nchunks || pi < np) {
    uint32_t take;
    ix_pfx tpk;
    if (cc == d->nchunks) {
      size_t lb;
      const uint8_t *kb = ent_key(d, s[pi].e, &lb);
      tpk = text_pk(kb + 4, lb - 4);
      take = s[pi++].e;
    } else if (pi == np) {
      tpk =
          (ix_pfx){chunk_pa(&d->chunks[cc])[ci], chunk_pb(&d->chunks[cc])[ci]};
      take = d->chunks[cc].v[ci];
      if (++ci == d->chunks[cc].n) {
        cc++;
        ci = 0;
      }
    } else {
      size_t la, lb;
      const uint8_t *ka = ent_key(d, d->chunks[cc].v[ci], &la);
      const uint8_t *kb = ent_key(d, s[pi].e, &lb);
      if (key_cmp_raw(ka, la, kb, lb) < 0) {
        tpk = (ix_pfx){chunk_pa(&d->chunks[cc])[ci],
                       chunk_pb(&d->chunks[cc])[ci]};
        take = d->chunks[cc].v[ci];
        if (++ci == d->chunks[cc].n) {
          cc++;
          ci = 0;
        }
      } else {
        tpk = text_pk(kb + 4, lb - 4);
        take = s[pi++].e;
      }
    }
    IX_EMIT(take, tpk);
  }
#undef IX_EMIT
  if (oi) out[oc++].n = oi;
  for (uint32_t c = oc; c < nch; c++)
    free(out[c].v);
  for (uint32_t c = 0; c < d->nchunks; c++)
    free(d->chunks[c].v);
  free(d->chunks);
  d->chunks = out;
  d->nchunks = oc;
  d->chunks_cap = nch ? nch : 1;
  d->npending = 0;
  for (uint32_t c = 0; c < oc; c++)
    chunk_fix(d, c);
  free(s);
  return 0;
}

/* ---------------------------------------------------------- dictionary */

static void dict_init(ix_dict *d, bool sorted) {
  memset(d, 0, sizeof(*d));
  d->free_head = IX_NONE;
  d->sorted = sorted;
}

static void dict_deinit(ix_dict *d) {
  for (uint32_t e = 0; e < d->nents; e++)
    post_free(d, d->ents[e].post);
  for (uint32_t c = 0; c < d->nchunks; c++)
    free(d->chunks[c].v);
  free(d->chunks);
  free(d->ents);
  free(d->tab);
  free(d->arena);
  free(d->pending);
  free(d->big);
  free(d->stage);
  dict_init(d, d->sorted);
}

/* Adds a new key (not present) with a single-slot posting. Everything that
 * can fail happens before anything changes. */
static int dict_new_key(ix_dict *d, bool bulk, uint32_t account,
                        const char *text, size_t len, uint32_t h,
                        uint32_t slot) {
  if (len + 4 > IX_KEY_BYTES_MAX) return CS_EINVAL;
  if (d->live == UINT32_MAX - 1) return -ENOMEM;
  int rc = tab_reserve(d, (uint64_t)d->live + 1);
  if (rc) return rc;
  if ((rc = arena_reserve(d, len + 4))) return rc;
  if (d->free_head == IX_NONE && d->nents == d->ents_cap) {
    uint32_t cap = d->ents_cap ? d->ents_cap + d->ents_cap / 2 + 1 : 64;
    if (cap < d->ents_cap) return -ENOMEM;
    ix_ent *p = ix_huge(realloc(d->ents, (size_t)cap * sizeof(ix_ent)),
                        (size_t)cap * sizeof(ix_ent));
    if (!p) return -ENOMEM;
    d->ents = p;
    d->ents_cap = cap;
  }
  bool pend = d->sorted && bulk;
  if (pend && d->npending == d->pending_cap) {
    uint32_t cap = d->pending_cap ? d->pending_cap * 2 : 1024;
    uint32_t *p = realloc(d->pending, (size_t)cap * 4);
    if (!p) return -ENOMEM;
    d->pending = p;
    d->pending_cap = cap;
  }
  uint32_t e;
  bool reused = d->free_head != IX_NONE;
  if (reused) {
    e = d->free_head;
    d->free_head = (uint32_t)d->ents[e].kref;
  } else {
    e = d->nents++;
  }
  uint8_t acct[4];
  acct_be(account, acct);
  memcpy(d->arena + d->arena_len, acct, 4);
  memcpy(d->arena + d->arena_len + 4, text, len);
  d->ents[e].kref = d->arena_len << 24 | (len + 4);
  d->ents[e].post = POST_MAKE_ONE(slot);
  if (d->sorted && !bulk) {
    rc = order_insert(d, e);
    if (rc) {
      d->ents[e].post = 0;
      if (reused) {
        d->ents[e].kref = d->free_head;
        d->free_head = e;
      } else {
        d->nents--;
      }
      return rc;
    }
  }
  d->arena_len += len + 4;
  if (pend) d->pending[d->npending++] = e;
  tab_put(d->tab, d->tab_size, (uint64_t)h << 32 | (e + 1));
  d->live++;
  return 0;
}

static void dict_del_key(ix_dict *d, uint32_t e, uint32_t h) {
  if (d->sorted) order_remove(d, e);
  tab_delete(d, e, h);
  if (POST_IS_RB(d->ents[e].post)) big_remove(d, e);
  post_free(d, d->ents[e].post);
  d->arena_garbage += d->ents[e].kref & IX_KEY_BYTES_MAX;
  d->ents[e].post = 0;
  d->ents[e].kref = d->free_head;
  d->free_head = e;
  d->live--;
  if (d->arena_garbage > (1u << 20) && d->arena_garbage * 2 > d->arena_len)
    arena_compact(d);
}

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Adds staged slots[0..k) to entry e's list in one step. */
static int stage_apply_one(ix_dict *d, uint32_t e, uint32_t *buf, size_t k) {
  ix_post p = d->ents[e].post;
  if (POST_IS_RB(p)) {
    roaring_bitmap_add_many(POST_RB(p), k, buf);
    return 0;
  }
  /* buf has room for IX_ARRAY_MAX more in front; build existing + new */
  uint32_t n = POST_IS_ONE(p) ? 1 : POST_ARR(p)->n;
  const uint32_t *old = POST_IS_ONE(p) ? NULL : POST_ARR(p)->v;
  uint32_t one = POST_ONE(p);
  uint32_t *all = buf - n;
  if (old)
    memcpy(all, old, (size_t)n * 4);
  else
    all[0] = one;
  size_t m = n + k;
  bool ordered = true;
  for (size_t i = 1; i < m && ordered; i++)
    ordered = all[i - 1] < all[i];
  if (!ordered) {
    qsort(all, m, 4, u32_cmp);
    size_t u = 1;
    for (size_t i = 1; i < m; i++)
      if (all[i] != all[u - 1]) all[u++] = all[i];
    m = u;
  }
  if (m == n) return 0;
  if (m > IX_ARRAY_MAX) {
    roaring_bitmap_t *r;
    return post_to_bitmap(d, e, p, all, m, &r);
  }
  ix_arr *a;
  if (old) {
    a = realloc(POST_ARR(p), sizeof(ix_arr) + m * 4);
    if (!a) return -ENOMEM;
    d->arr_bytes += arr_bytes((uint32_t)m) - arr_bytes(a->cap);
    a->cap = (uint32_t)m;
  } else {
    a = arr_new(d, (uint32_t)m);
    if (!a) return -ENOMEM;
  }
  memcpy(a->v, all, m * 4);
  a->n = (uint32_t)m;
  d->ents[e].post = (uint64_t)(uintptr_t)a;
  return 0;
}

/* Applies the staged pairs in entry order (a stable sort keeps each
 * entry's slots in arrival order, which is usually ascending). On failure
 * the pairs not applied stay staged. */
static int stage_apply(ix_dict *d) {
  if (!d->nstage) return 0;
  size_t n = d->nstage;
  uint64_t *tmp = malloc(n * sizeof(uint64_t));
  if (!tmp) return -ENOMEM;
  uint64_t *sorted = radix_sort(d->stage, tmp, n, 32, log2_ceil(d->nents));
  size_t cap = 0;
  uint32_t *buf = NULL;
  int rc = 0;
  size_t i = 0;
  while (i < n) {
    uint32_t e = (uint32_t)(sorted[i] >> 32);
    size_t j = i + 1;
    while (j < n && (uint32_t)(sorted[j] >> 32) == e)
      j++;
    size_t k = j - i;
    if (cap < k) {
      uint32_t *nb = realloc(buf, (k + IX_ARRAY_MAX) * 4);
      if (!nb) {
        rc = -ENOMEM;
        break;
      }
      buf = nb;
      cap = k;
    }
    uint32_t *slots = buf + IX_ARRAY_MAX;
    for (size_t t = 0; t < k; t++)
      slots[t] = (uint32_t)sorted[i + t];
    if ((rc = stage_apply_one(d, e, slots, k))) break;
    i = j;
  }
  /* keep what was not applied */
  memmove(d->stage, sorted + i, (n - i) * sizeof(uint64_t));
  d->nstage = n - i;
  free(buf);
  free(tmp);
  return rc;
}

static int dict_add(ix_dict *d, bool bulk, uint32_t account, const char *text,
                    size_t len, uint32_t h, uint32_t slot) {
  uint32_t e = dict_find(d, account, text, len, h);
  if (e == IX_NONE) return dict_new_key(d, bulk, account, text, len, h, slot);
  if (!bulk) return post_add(d, e, slot);
  if (d->nstage == d->stage_cap) {
    if (d->stage_cap == IX_STAGE_MAX) {
      int rc = stage_apply(d);
      if (rc) return rc;
    } else {
      size_t cap = d->stage_cap ? d->stage_cap * 2 : 4096;
      uint64_t *p = realloc(d->stage, cap * sizeof(uint64_t));
      if (!p) return -ENOMEM;
      d->stage = p;
      d->stage_cap = cap;
    }
  }
  d->stage[d->nstage++] = (uint64_t)e << 32 | slot;
  return 0;
}

static void dict_remove(ix_dict *d, uint32_t account, const char *text,
                        size_t len, uint32_t slot) {
  uint32_t h = key_hash(account, text, len);
  uint32_t e = dict_find(d, account, text, len, h);
  if (e == IX_NONE) return;
  post_remove(d, e, slot);
  if (!d->ents[e].post) dict_del_key(d, e, h);
}

static size_t dict_memory(const ix_dict *d) {
  size_t b = (size_t)d->ents_cap * sizeof(ix_ent);
  b += (size_t)d->tab_size * sizeof(uint64_t);
  b += (size_t)d->arena_cap;
  b += (size_t)d->chunks_cap * sizeof(ix_chunk);
  b += (size_t)d->nchunks * (IX_CHUNK_BYTES + IX_MALLOC_OVERHEAD);
  b += (size_t)d->pending_cap * 4 + (size_t)d->big_cap * 4;
  b += d->arr_bytes + d->stage_cap * sizeof(uint64_t);
  for (uint32_t i = 0; i < d->nbig; i++)
    b += rb_bytes(POST_RB(d->ents[d->big[i]].post));
  return b;
}

/* -------------------------------------------------------------- index */

ix_index *ix_create(void) {
  ix_index *ix = calloc(1, sizeof(*ix));
  if (!ix) return NULL;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    dict_init(&ix->exact[f], true);
    dict_init(&ix->words[f], false);
  }
  return ix;
}

static void ix_clear(ix_index *ix) {
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    dict_deinit(&ix->exact[f]);
    dict_deinit(&ix->words[f]);
  }
}

void ix_destroy(ix_index *ix) {
  if (!ix) return;
  ix_clear(ix);
  fold_buf_free(&ix->fb);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    fold_buf_free(&ix->ff[f]);
  free(ix->jobs);
  free(ix);
}

typedef struct word_ctx {
  ix_dict *d;
  bool bulk;
  uint32_t account, slot;
} word_ctx;

typedef struct job_ctx {
  ix_index *ix;
  ix_dict *d;
} job_ctx;

static int job_push(ix_index *ix, ix_dict *d, const char *text, size_t len) {
  if (ix->njobs == ix->jobs_cap) {
    size_t cap = ix->jobs_cap ? ix->jobs_cap * 2 : 64;
    ix_job *p = realloc(ix->jobs, cap * sizeof(ix_job));
    if (!p) return -ENOMEM;
    ix->jobs = p;
    ix->jobs_cap = cap;
  }
  ix->jobs[ix->njobs++] = (ix_job){d, text, len, 0, IX_NONE};
  return 0;
}

static int word_job_cb(void *ctx, const char *w, size_t n) {
  job_ctx *c = ctx;
  return job_push(c->ix, c->d, w, n);
}

static int word_remove_cb(void *ctx, const char *w, size_t n) {
  word_ctx *c = ctx;
  dict_remove(c->d, c->account, w, n, c->slot);
  return 0;
}

/* Removes fields [0, upto] of a value; what is not there is skipped, so it
 * also undoes a half-done insert. */
static void ix_erase_upto(ix_index *ix, uint32_t account, uint32_t slot,
                          const cs_str field[CS_FIELD_COUNT], int upto) {
  for (int f = 0; f <= upto; f++) {
    if (!field[f].ptr) continue;
    if (fold_key(f, field[f].ptr, field[f].len, &ix->fb) || !ix->fb.len)
      continue;
    dict_remove(&ix->exact[f], account, ix->fb.ptr, ix->fb.len, slot);
    if (f == CS_PHONE) continue;
    word_ctx c = {&ix->words[f], false, account, slot};
    fold_words(ix->fb.ptr, ix->fb.len, word_remove_cb, &c);
  }
}

/*
 * Folds every field first and lists the keys to add, then walks the list in
 * rounds that each only prefetch: the hash cells, then the entries those
 * cells name, then the entries' key bytes. A contact has some twenty keys
 * in a dozen large tables; looking them up one after the other costs three
 * dependent cache misses each, while the rounds overlap them. The adds
 * then run in order over warm lines (a word met twice in one value is
 * found the second time, since the adds, not the rounds, decide).
 */
int ix_insert(ix_index *ix, uint32_t account, uint32_t slot,
              const cs_str field[CS_FIELD_COUNT]) {
  int rc = 0;
  ix->njobs = 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!field[f].ptr) continue;
    fold_buf *fb = &ix->ff[f];
    if ((rc = fold_key(f, field[f].ptr, field[f].len, fb)))
      return rc; /* nothing added yet */
    if (!fb->len) continue;
    if ((rc = job_push(ix, &ix->exact[f], fb->ptr, fb->len))) return rc;
    if (f == CS_PHONE) continue;
    job_ctx c = {ix, &ix->words[f]};
    if ((rc = fold_words(fb->ptr, fb->len, word_job_cb, &c))) return rc;
  }
  ix_job *jobs = ix->jobs;
  size_t n = ix->njobs;
  for (size_t j = 0; j < n; j++) {
    ix_job *jb = &jobs[j];
    jb->h = key_hash(account, jb->text, jb->len);
    if (jb->d->tab_size)
      __builtin_prefetch(&jb->d->tab[tab_home(jb->h, jb->d->tab_size)]);
  }
  for (size_t j = 0; j < n; j++) {
    ix_job *jb = &jobs[j];
    const ix_dict *d = jb->d;
    if (!d->tab_size) continue;
    for (uint64_t i = tab_home(jb->h, d->tab_size), k = 0; k < 4;
         i = tab_next(i, d->tab_size), k++) {
      uint64_t c = d->tab[i];
      if (!c) break;
      if ((uint32_t)(c >> 32) == jb->h) {
        jb->e = (uint32_t)c - 1;
        __builtin_prefetch(&d->ents[jb->e]);
        break;
      }
    }
  }
  for (size_t j = 0; j < n; j++) {
    if (jobs[j].e == IX_NONE) continue;
    const ix_ent *en = &jobs[j].d->ents[jobs[j].e];
    __builtin_prefetch(jobs[j].d->arena + (en->kref >> 24));
    /* and the list the slot will join, when it is not inline */
    if (en->post && !POST_IS_ONE(en->post))
      __builtin_prefetch(POST_IS_RB(en->post)
                             ? (const void *)POST_RB(en->post)
                             : (const void *)POST_ARR(en->post));
  }
  for (size_t j = 0; j < n; j++) {
    ix_job *jb = &jobs[j];
    if ((rc = dict_add(jb->d, ix->bulk, account, jb->text, jb->len, jb->h,
                       slot)))
      goto fail;
  }
  return 0;
fail:
  /* Every staged pair with this slot is this insert's: the slot was not
   * indexed before, and an erase applies the stages. Those already applied
   * and the new keys it made are removed by the erase below. */
  for (int g = 0; g < 2 * CS_FIELD_COUNT; g++) {
    ix_dict *d =
        g < CS_FIELD_COUNT ? &ix->exact[g] : &ix->words[g - CS_FIELD_COUNT];
    size_t k = 0;
    for (size_t i = 0; i < d->nstage; i++)
      if ((uint32_t)d->stage[i] != slot) d->stage[k++] = d->stage[i];
    d->nstage = k;
  }
  ix_erase_upto(ix, account, slot, field, CS_FIELD_COUNT - 1);
  return rc;
}

/* Applies every staged pair (bulk mode). */
static int ix_stage_flush(ix_index *ix) {
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    int rc = stage_apply(&ix->exact[f]);
    if (!rc) rc = stage_apply(&ix->words[f]);
    if (rc) return rc;
  }
  return 0;
}

int ix_erase(ix_index *ix, uint32_t account, uint32_t slot,
             const cs_str field[CS_FIELD_COUNT]) {
  /* Not expected in bulk mode, but kept exact: staged slots first. */
  int rc = ix_stage_flush(ix);
  if (rc) return rc;
  ix_erase_upto(ix, account, slot, field, CS_FIELD_COUNT - 1);
  return 0;
}

void ix_bulk_begin(ix_index *ix) {
  ix->bulk = true;
}

/* Gives back the slack of growth by doubling once a bulk load is over. */
static void dict_shrink(ix_dict *d) {
  if (d->arena_cap > d->arena_len + 4096 && !d->arena_garbage) {
    char *p = realloc(d->arena, d->arena_len + 4096);
    if (p) {
      d->arena = p;
      d->arena_cap = d->arena_len + 4096;
    }
  }
  if (d->free_head == IX_NONE && d->ents_cap > d->nents + 64) {
    ix_ent *p = realloc(d->ents, ((size_t)d->nents + 64) * sizeof(ix_ent));
    if (p) {
      d->ents = p;
      d->ents_cap = d->nents + 64;
    }
  }
  tab_fit(d);
  free(d->stage);
  d->stage = NULL;
  d->stage_cap = 0;
  free(d->pending);
  d->pending = NULL;
  d->pending_cap = 0;
}

int ix_bulk_end(ix_index *ix) {
  int rc = ix_stage_flush(ix);
  if (rc) return rc;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    int r = order_merge_pending(&ix->exact[f]);
    if (r && !rc) rc = r;
  }
  if (rc) return rc; /* still in bulk mode: the caller may retry */
  ix->bulk = false;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    dict_shrink(&ix->exact[f]);
    dict_shrink(&ix->words[f]);
  }
  /* Replay grew arrays by doubling; give the slack back once. */
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    ix_dict *ds[2] = {&ix->exact[f], &ix->words[f]};
    for (int k = 0; k < 2; k++) {
      ix_dict *d = ds[k];
      for (uint32_t e = 0; e < d->nents; e++) {
        ix_post p = d->ents[e].post;
        if (!p || POST_IS_ONE(p)) continue;
        if (POST_IS_RB(p)) {
          roaring_bitmap_shrink_to_fit(POST_RB(p));
          continue;
        }
        ix_arr *a = POST_ARR(p);
        if (a->cap == a->n) continue;
        ix_arr *b = realloc(a, sizeof(ix_arr) + (size_t)a->n * 4);
        if (!b) continue;
        d->arr_bytes -= arr_bytes(b->cap) - arr_bytes(b->n);
        b->cap = b->n;
        d->ents[e].post = (uint64_t)(uintptr_t)b;
      }
    }
  }
  return 0;
}

size_t ix_memory_bytes(const ix_index *ix) {
  size_t b = sizeof(*ix) + ix->fb.cap + ix->jobs_cap * sizeof(ix_job);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    b += ix->ff[f].cap;
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    b += dict_memory(&ix->exact[f]) + dict_memory(&ix->words[f]);
  return b;
}

int ix_exact_slots(const ix_index *ix, uint32_t account, int field,
                   const char *key, size_t key_len,
                   int (*fn)(void *ctx, uint32_t slot), void *ctx) {
  if (field < 0 || field >= CS_FIELD_COUNT || (!key && key_len))
    return CS_EINVAL;
  const ix_dict *d = &ix->exact[field];
  uint32_t e = dict_find(d, account, key ? key : "", key_len,
                         key_hash(account, key ? key : "", key_len));
  if (e == IX_NONE) return 0;
  post_iter it;
  post_iter_init(&it, d->ents[e].post, 0);
  uint32_t s;
  while (post_iter_next(&it, &s)) {
    int rc = fn(ctx, s);
    if (rc) return rc;
  }
  return 0;
}

int ix_posting_kind(const ix_index *ix, uint32_t account, int field,
                    const char *key, size_t key_len) {
  if (field < 0 || field >= CS_FIELD_COUNT || (!key && key_len))
    return CS_EINVAL;
  const ix_dict *d = &ix->exact[field];
  key = key ? key : "";
  uint32_t e =
      dict_find(d, account, key, key_len, key_hash(account, key, key_len));
  if (e == IX_NONE) return 0;
  ix_post p = d->ents[e].post;
  return POST_IS_ONE(p) ? 1 : POST_IS_RB(p) ? 3 : 2;
}

/* ------------------------------------------------------------- search */

/* Each searching thread folds its term into its own buffer, kept for the
 * thread's life and freed when it exits. */
static pthread_key_t ix_tls_key;
static pthread_once_t ix_tls_once = PTHREAD_ONCE_INIT;
static __thread fold_buf *ix_tls_buf;

static void ix_tls_free(void *p) {
  fold_buf_free(p);
  free(p);
}

static void ix_tls_init(void) {
  pthread_key_create(&ix_tls_key, ix_tls_free);
}

static fold_buf *ix_term_buf(void) {
  if (ix_tls_buf) return ix_tls_buf;
  pthread_once(&ix_tls_once, ix_tls_init);
  fold_buf *b = calloc(1, sizeof(*b));
  if (!b) return NULL;
  pthread_setspecific(ix_tls_key, b);
  ix_tls_buf = b;
  return b;
}

typedef struct ix_result {
  uint32_t *out;
  uint32_t limit, count;
  uint64_t total, ge;
} ix_result;

static void answer_one(ix_post p, uint32_t min, ix_result *r) {
  r->total = post_card(p);
  r->ge = post_count_ge(p, min);
  r->count = post_first_ge(p, min, r->out, r->limit);
}

/* Max-heap of the limit smallest slots seen, kept in the output array. */
static void heap_sift_down(uint32_t *h, uint32_t n, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, m = i;
    if (l < n && h[l] > h[m]) m = l;
    if (l + 1 < n && h[l + 1] > h[m]) m = l + 1;
    if (m == i) return;
    uint32_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static void heap_push(uint32_t *h, uint32_t n, uint32_t x) {
  uint32_t i = n;
  h[i] = x;
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (h[p] >= h[i]) break;
    uint32_t t = h[p];
    h[p] = h[i];
    h[i] = t;
    i = p;
  }
}

static void search_prefix(const ix_dict *d, uint32_t account, const char *t,
                          size_t tlen, uint32_t min, ix_result *r) {
  uint8_t acct[4];
  acct_be(account, acct);
  uint32_t c, i;
  order_lower(d, account, t, tlen, &c, &i);
  uint32_t *h = r->out, hn = 0;
  for (; c < d->nchunks; c++, i = 0) {
    const ix_chunk *ch = &d->chunks[c];
    for (; i < ch->n; i++) {
      size_t klen;
      const uint8_t *k = ent_key(d, ch->v[i], &klen);
      if (klen < tlen + 4 || memcmp(k, acct, 4) || memcmp(k + 4, t, tlen))
        goto done;
      ix_post p = d->ents[ch->v[i]].post;
      if (POST_IS_ONE(p)) {
        /* the common case: a unique value */
        uint32_t s = POST_ONE(p);
        r->total++;
        if (s < min) continue;
        r->ge++;
        if (hn < r->limit) {
          heap_push(h, hn++, s);
        } else if (r->limit && s < h[0]) {
          h[0] = s;
          heap_sift_down(h, hn, 0);
        }
        continue;
      }
      r->total += post_card(p);
      uint64_t g = post_count_ge(p, min);
      r->ge += g;
      if (!g || !r->limit) continue;
      post_iter it;
      post_iter_init(&it, p, min);
      uint32_t s;
      while (post_iter_next(&it, &s)) {
        if (hn < r->limit) {
          heap_push(h, hn++, s);
        } else if (s < h[0]) {
          h[0] = s;
          heap_sift_down(h, hn, 0);
        } else {
          break;
        }
      }
    }
  }
done:
  /* heap sort in place: ascending */
  r->count = hn;
  for (uint32_t n = hn; n > 1; n--) {
    uint32_t tmp = h[0];
    h[0] = h[n - 1];
    h[n - 1] = tmp;
    heap_sift_down(h, n - 1, 0);
  }
}

typedef struct term_words {
  const char **w;
  size_t *len;
  size_t n, cap;
  const char *w_stack[16];
  size_t len_stack[16];
} term_words;

static int term_word_cb(void *ctx, const char *w, size_t n) {
  term_words *tw = ctx;
  for (size_t i = 0; i < tw->n && i < 16; i++)
    if (tw->len[i] == n && !memcmp(tw->w[i], w, n))
      return 0; /* cheap duplicate check; the rest is done after sorting */
  if (tw->n == tw->cap) {
    size_t cap = tw->cap * 2;
    const char **a = malloc(cap * sizeof(*a));
    size_t *b = malloc(cap * sizeof(*b));
    if (!a || !b) {
      free(a);
      free(b);
      return -ENOMEM;
    }
    memcpy(a, tw->w, tw->n * sizeof(*a));
    memcpy(b, tw->len, tw->n * sizeof(*b));
    if (tw->w != tw->w_stack) {
      free(tw->w);
      free(tw->len);
    }
    tw->w = a;
    tw->len = b;
    tw->cap = cap;
  }
  tw->w[tw->n] = w;
  tw->len[tw->n] = n;
  tw->n++;
  return 0;
}

typedef struct post_ref {
  ix_post p;
  uint64_t card;
} post_ref;

static int post_ref_cmp(const void *a, const void *b) {
  const post_ref *x = a, *y = b;
  if (x->p != y->p) {
    if (x->card != y->card) return x->card < y->card ? -1 : 1;
    return x->p < y->p ? -1 : 1;
  }
  return 0;
}

static int search_words(const ix_dict *d, uint32_t account, const char *t,
                        size_t tlen, uint32_t min, ix_result *r) {
  term_words tw = {0};
  tw.w = tw.w_stack;
  tw.len = tw.len_stack;
  tw.cap = 16;
  int rc = fold_words(t, tlen, term_word_cb, &tw);
  post_ref refs_stack[16], *refs = refs_stack;
  if (rc) goto out;
  if (tw.n == 0) goto out;
  if (tw.n > 16 && !(refs = malloc(tw.n * sizeof(post_ref)))) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < tw.n; i++) {
    uint32_t e = dict_find(d, account, tw.w[i], tw.len[i],
                           key_hash(account, tw.w[i], tw.len[i]));
    if (e == IX_NONE) goto out; /* a word no value has: no match */
    refs[i].p = d->ents[e].post;
    refs[i].card = post_card(refs[i].p);
  }
  /* Smallest list first; the same word twice is the same list: drop it. */
  qsort(refs, tw.n, sizeof(post_ref), post_ref_cmp);
  size_t k = 1;
  for (size_t i = 1; i < tw.n; i++)
    if (refs[i].p != refs[k - 1].p) refs[k++] = refs[i];
  if (k == 1) {
    answer_one(refs[0].p, min, r);
    goto out;
  }
  bool all_rb = true;
  for (size_t i = 0; i < k; i++)
    all_rb &= POST_IS_RB(refs[i].p);
  if (!all_rb) {
    /* Probe each slot of the smallest list in the others. */
    post_iter it;
    post_iter_init(&it, refs[0].p, 0);
    uint32_t s;
    while (post_iter_next(&it, &s)) {
      size_t j = 1;
      while (j < k && post_contains(refs[j].p, s))
        j++;
      if (j < k) continue;
      r->total++;
      if (s < min) continue;
      r->ge++;
      if (r->count < r->limit) r->out[r->count++] = s;
    }
    goto out;
  }
  roaring_bitmap_t *acc =
      roaring_bitmap_and(POST_RB(refs[0].p), POST_RB(refs[1].p));
  if (!acc) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 2; i < k; i++)
    roaring_bitmap_and_inplace(acc, POST_RB(refs[i].p));
  answer_one((uint64_t)(uintptr_t)acc | 2u, min, r);
  roaring_bitmap_free(acc);
out:
  if (refs != refs_stack) free(refs);
  if (tw.w != tw.w_stack) {
    free(tw.w);
    free(tw.len);
  }
  return rc;
}

int ix_search(const ix_index *ix, uint32_t account, int field, cs_match match,
              const char *term, size_t term_len, uint32_t min_slot,
              uint32_t limit, uint32_t *slots_out, uint32_t *count_out,
              uint64_t *total_out, bool *more_out) {
  *count_out = 0;
  *total_out = 0;
  *more_out = false;
  if (field < 0 || field >= CS_FIELD_COUNT || (!term && term_len) ||
      (limit && !slots_out))
    return CS_EINVAL;
  if (match == CS_MATCH_DEFAULT)
    match = field == CS_NOTES ? CS_MATCH_WORDS : CS_MATCH_EXACT;
  if (match != CS_MATCH_EXACT && match != CS_MATCH_PREFIX &&
      match != CS_MATCH_WORDS)
    return CS_EINVAL;
  /* A phone folds to one word of digits: words is exact there. */
  if (field == CS_PHONE && match == CS_MATCH_WORDS) match = CS_MATCH_EXACT;
  fold_buf *fb = ix_term_buf();
  if (!fb) return -ENOMEM;
  int rc = fold_key(field, term ? term : "", term_len, fb);
  if (rc) return rc;
  if (!fb->len) return 0;
  ix_result r = {slots_out, limit, 0, 0, 0};
  const ix_dict *d = &ix->exact[field];
  if (match == CS_MATCH_EXACT) {
    uint32_t e = dict_find(d, account, fb->ptr, fb->len,
                           key_hash(account, fb->ptr, fb->len));
    if (e != IX_NONE) answer_one(d->ents[e].post, min_slot, &r);
  } else if (match == CS_MATCH_PREFIX) {
    search_prefix(d, account, fb->ptr, fb->len, min_slot, &r);
  } else {
    rc = search_words(&ix->words[field], account, fb->ptr, fb->len, min_slot,
                      &r);
    if (rc) return rc;
  }
  *count_out = r.count;
  *total_out = r.total;
  *more_out = r.ge > r.count;
  return 0;
}

/* ----------------------------------------------------------- snapshot */

#define IX_MAGIC "csix"
#define IX_VERSION 1

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static size_t varint_put(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

/* Reads a varint of at most 32 bits. false on truncation or overflow. */
static bool varint_get(const uint8_t *p, size_t len, size_t *pos,
                       uint32_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (*pos >= len) return false;
    uint8_t b = p[(*pos)++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      if (v > UINT32_MAX) return false;
      *out = (uint32_t)v;
      return true;
    }
  }
  return false;
}

/* Streams bytes into a msgpack bin body through a buffer. */
typedef struct save_out {
  msgpack_packer *pk;
  uint8_t buf[1 << 16];
  size_t n;
  int rc;
} save_out;

static void save_flush(save_out *o) {
  if (o->n && !o->rc && msgpack_pack_bin_body(o->pk, o->buf, o->n))
    o->rc = -EIO;
  o->n = 0;
}

static void save_bytes(save_out *o, const void *p, size_t n) {
  const uint8_t *s = p;
  while (n) {
    if (o->n == sizeof o->buf) save_flush(o);
    size_t k = sizeof o->buf - o->n;
    if (k > n) k = n;
    memcpy(o->buf + o->n, s, k);
    o->n += k;
    s += k;
    n -= k;
  }
}

static void save_varint(save_out *o, uint64_t v) {
  if (sizeof o->buf - o->n < 10) save_flush(o);
  o->n += varint_put(o->buf + o->n, v);
}

/* The entries of d in saved order: the sorted order for exact
 * dictionaries, entry order for words. Calls fn(e) for each. */
#define DICT_FOREACH(d, e, body)                                               \
  do {                                                                         \
    if ((d)->sorted) {                                                         \
      for (uint32_t c_ = 0; c_ < (d)->nchunks; c_++)                           \
        for (uint32_t i_ = 0; i_ < (d)->chunks[c_].n; i_++) {                  \
          const uint32_t *v_ = (d)->chunks[c_].v;                              \
          /* key order is not memory order: fetch ahead */                     \
          if (i_ + 16 < (d)->chunks[c_].n)                                     \
            __builtin_prefetch(&(d)->ents[v_[i_ + 16]]);                       \
          if (i_ + 8 < (d)->chunks[c_].n)                                      \
            __builtin_prefetch((d)->arena +                                    \
                               ((d)->ents[v_[i_ + 8]].kref >> 24));            \
          uint32_t e = v_[i_];                                                 \
          body;                                                                \
        }                                                                      \
    } else {                                                                   \
      for (uint32_t e = 0; e < (d)->nents; e++) {                              \
        if (!(d)->ents[e].post) continue;                                      \
        body;                                                                  \
      }                                                                        \
    }                                                                          \
  } while (0)

/* Bytes of one posting's encoding; with o set, writes it. */
static uint64_t post_encode(ix_post p, save_out *o) {
  uint64_t n = post_card(p), bytes = varint_len(n);
  if (o) save_varint(o, n);
  post_iter it;
  post_iter_init(&it, p, 0);
  uint32_t s, prev = 0;
  bool first = true;
  while (post_iter_next(&it, &s)) {
    uint32_t v = first ? s : s - prev - 1;
    bytes += varint_len(v);
    if (o) save_varint(o, v);
    prev = s;
    first = false;
  }
  return bytes;
}

static int save_dict(const ix_dict *d, save_out *o) {
  msgpack_packer *pk = o->pk;
  if (d->npending || d->nstage)
    return CS_EINVAL; /* in bulk mode: the order is incomplete */
  uint64_t kbytes = 0, pbytes = 0;
  DICT_FOREACH(d, e, {
    size_t len;
    ent_key(d, e, &len);
    kbytes += varint_len(len) + len;
    pbytes += post_encode(d->ents[e].post, NULL);
  });
  if (kbytes > UINT32_MAX || pbytes > UINT32_MAX) return -EFBIG;
  if (msgpack_pack_array(pk, 3) || msgpack_pack_uint32(pk, d->live) ||
      msgpack_pack_bin(pk, (size_t)kbytes))
    return -EIO;
  DICT_FOREACH(d, e, {
    size_t len;
    const uint8_t *k = ent_key(d, e, &len);
    save_varint(o, len);
    save_bytes(o, k, len);
  });
  save_flush(o);
  if (o->rc) return o->rc;
  if (msgpack_pack_bin(pk, (size_t)pbytes)) return -EIO;
  DICT_FOREACH(d, e, { post_encode(d->ents[e].post, o); });
  save_flush(o);
  return o->rc;
}

int ix_save(const ix_index *ix, msgpack_packer *pk) {
  save_out *o = malloc(sizeof(*o));
  if (!o) return -ENOMEM;
  o->pk = pk;
  o->n = 0;
  o->rc = 0;
  int rc = -EIO;
  if (msgpack_pack_array(pk, 3) ||
      msgpack_pack_str_with_body(pk, IX_MAGIC, strlen(IX_MAGIC)) ||
      msgpack_pack_uint32(pk, IX_VERSION) ||
      msgpack_pack_array(pk, CS_FIELD_COUNT))
    goto out;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (msgpack_pack_array(pk, 2)) goto out;
    if ((rc = save_dict(&ix->exact[f], o))) goto out;
    if (f == CS_PHONE) {
      rc = msgpack_pack_nil(pk) ? -EIO : 0;
    } else {
      rc = save_dict(&ix->words[f], o);
    }
    if (rc) goto out;
  }
  rc = 0;
out:
  free(o);
  return rc;
}

typedef struct load_ctx {
  char *errbuf;
  size_t errlen;
  uint32_t slot_limit;
  uint64_t *seen; /* slots met in the current exact dictionary */
  uint32_t *scratch;
  size_t scratch_cap;
} load_ctx;

__attribute__((format(printf, 2, 3))) static int
load_err(load_ctx *lc, const char *fmt, ...) {
  if (lc->errbuf && lc->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lc->errbuf, lc->errlen, fmt, ap);
    va_end(ap);
  }
  return CS_ECORRUPT;
}

/* Decodes one posting list at *pos into entry e. */
static int load_post(load_ctx *lc, ix_dict *d, uint32_t e, const uint8_t *p,
                     size_t len, size_t *pos, const char *what) {
  uint32_t n, s;
  if (!varint_get(p, len, pos, &n) || n == 0 || n > lc->slot_limit)
    return load_err(lc, "index %s: bad posting count at byte %zu", what, *pos);
  if (n > len - *pos) /* each slot takes at least one byte */
    return load_err(lc, "index %s: posting of %u slots overruns its bin", what,
                    n);
  if (lc->scratch_cap < n) {
    size_t cap = lc->scratch_cap ? lc->scratch_cap : 1024;
    while (cap < n)
      cap *= 2;
    uint32_t *sc = realloc(lc->scratch, cap * 4);
    if (!sc) return -ENOMEM;
    lc->scratch = sc;
    lc->scratch_cap = cap;
  }
  uint64_t cur = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!varint_get(p, len, pos, &s))
      return load_err(lc, "index %s: truncated posting at byte %zu", what,
                      *pos);
    cur = i == 0 ? s : cur + (uint64_t)s + 1;
    if (cur >= lc->slot_limit)
      return load_err(lc, "index %s: slot %llu out of range (limit %u)", what,
                      (unsigned long long)cur, lc->slot_limit);
    lc->scratch[i] = (uint32_t)cur;
  }
  if (lc->seen) {
    for (uint32_t i = 0; i < n; i++) {
      uint32_t x = lc->scratch[i];
      if (lc->seen[x >> 6] & (1ull << (x & 63)))
        return load_err(lc, "index %s: slot %u under two keys", what, x);
      lc->seen[x >> 6] |= 1ull << (x & 63);
    }
  }
  if (n == 1) {
    d->ents[e].post = POST_MAKE_ONE(lc->scratch[0]);
  } else if (n <= IX_ARRAY_MAX) {
    ix_arr *a = arr_new(d, n);
    if (!a) return -ENOMEM;
    memcpy(a->v, lc->scratch, (size_t)n * 4);
    a->n = n;
    d->ents[e].post = (uint64_t)(uintptr_t)a;
  } else {
    if (big_add(d, e)) return -ENOMEM;
    roaring_bitmap_t *r = roaring_bitmap_of_ptr(n, lc->scratch);
    if (!r) {
      d->nbig--;
      return -ENOMEM;
    }
    roaring_bitmap_run_optimize(r);
    roaring_bitmap_shrink_to_fit(r);
    d->ents[e].post = (uint64_t)(uintptr_t)r | 2u;
  }
  return 0;
}

static int load_dict(load_ctx *lc, ix_dict *d, const msgpack_object *o,
                     const char *what) {
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
    return load_err(lc, "index %s: not a [count, keys, postings] array", what);
  const msgpack_object *a = o->via.array.ptr;
  if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      a[0].via.u64 >= UINT32_MAX - 1)
    return load_err(lc, "index %s: bad key count", what);
  if (a[1].type != MSGPACK_OBJECT_BIN || a[2].type != MSGPACK_OBJECT_BIN)
    return load_err(lc, "index %s: keys or postings not a bin", what);
  uint32_t nkeys = (uint32_t)a[0].via.u64;
  const uint8_t *kp = (const uint8_t *)a[1].via.bin.ptr;
  size_t klen = a[1].via.bin.size;
  const uint8_t *pp = (const uint8_t *)a[2].via.bin.ptr;
  size_t plen = a[2].via.bin.size;
  /* a key takes at least 6 bytes (length, account, one byte of text) and a
   * posting at least 2 */
  if ((uint64_t)nkeys * 6 > klen || (uint64_t)nkeys * 2 > plen)
    return load_err(lc, "index %s: %u keys cannot fit in %zu + %zu bytes", what,
                    nkeys, klen, plen);
  if (nkeys == 0) {
    if (klen || plen)
      return load_err(lc, "index %s: bytes after the last key", what);
    return 0;
  }
  d->ents = ix_huge(calloc(nkeys, sizeof(ix_ent)), nkeys * sizeof(ix_ent));
  d->arena = ix_huge(malloc(klen), klen);
  uint64_t ts = tab_size_for(nkeys);
  d->tab = ix_huge(calloc(ts, sizeof(uint64_t)), ts * 8);
  uint32_t nch = d->sorted ? (nkeys + IX_CHUNK_FILL - 1) / IX_CHUNK_FILL : 0;
  if (nch) d->chunks = calloc(nch, sizeof(ix_chunk));
  if (!d->ents || !d->arena || !d->tab || (nch && !d->chunks)) return -ENOMEM;
  d->ents_cap = d->nents = nkeys;
  d->arena_cap = klen;
  d->tab_size = ts;
  d->chunks_cap = nch;
  for (uint32_t c = 0; c < nch; c++) {
    if (!(d->chunks[c].v = malloc(IX_CHUNK_BYTES))) return -ENOMEM;
    d->nchunks++;
  }

  uint64_t *cells = malloc((size_t)nkeys * sizeof(uint64_t));
  if (!cells) return -ENOMEM;
  size_t pos = 0;
  const uint8_t *prev = NULL;
  size_t prev_len = 0;
  for (uint32_t e = 0; e < nkeys; e++) {
    uint32_t len;
    if (!varint_get(kp, klen, &pos, &len) || len < 5 ||
        len > IX_KEY_BYTES_MAX || len > klen - pos) {
      free(cells);
      return load_err(lc, "index %s: bad key length at byte %zu", what, pos);
    }
    const uint8_t *k = kp + pos;
    pos += len;
    if (d->sorted) {
      if (prev && key_cmp_raw(prev, prev_len, k, len) >= 0) {
        free(cells);
        return load_err(lc, "index %s: key %u out of order", what, e);
      }
      prev = k;
      prev_len = len;
      ix_chunk *ch = &d->chunks[e / IX_CHUNK_FILL];
      chunk_set(ch, ch->n++, e, text_pk(k + 4, len - 4));
    }
    memcpy(d->arena + d->arena_len, k, len);
    d->ents[e].kref = d->arena_len << 24 | len;
    d->arena_len += len;
    uint32_t account = (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 |
                       (uint32_t)k[2] << 8 | k[3];
    uint32_t h = key_hash(account, (const char *)k + 4, len - 4);
    cells[e] = (uint64_t)h << 32 | (e + 1);
  }
  if (pos != klen) {
    free(cells);
    return load_err(lc, "index %s: %zu stray bytes after the keys", what,
                    klen - pos);
  }
  for (uint32_t c = 0; c < d->nchunks; c++)
    chunk_fix(d, c);
  /* Sorted dictionaries cannot hold a key twice (checked above). */
  int brc = tab_build(d, cells, nkeys, !d->sorted);
  free(cells);
  if (brc == -EEXIST)
    return load_err(lc, "index %s: a key appears twice", what);
  if (brc) return brc;
  d->live = nkeys;
  pos = 0;
  for (uint32_t e = 0; e < nkeys; e++) {
    int rc = load_post(lc, d, e, pp, plen, &pos, what);
    if (rc) return rc;
  }
  if (pos != plen)
    return load_err(lc, "index %s: %zu stray bytes after the postings", what,
                    plen - pos);
  return 0;
}

static bool obj_is_str(const msgpack_object *o, const char *s) {
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
         !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static int ix_load_fields(ix_index *ix, const msgpack_object *obj,
                          load_ctx *lc) {
  if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 3 ||
      !obj_is_str(&obj->via.array.ptr[0], IX_MAGIC))
    return load_err(lc, "index: not an index image");
  const msgpack_object *v = &obj->via.array.ptr[1];
  if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != IX_VERSION)
    return load_err(lc, "index: unknown version");
  const msgpack_object *fs = &obj->via.array.ptr[2];
  if (fs->type != MSGPACK_OBJECT_ARRAY || fs->via.array.size != CS_FIELD_COUNT)
    return load_err(lc, "index: expected %d fields", CS_FIELD_COUNT);
  size_t words = ((size_t)lc->slot_limit + 63) / 64;
  uint64_t *seen = calloc(words ? words : 1, sizeof(uint64_t));
  if (!seen) return -ENOMEM;
  int rc = 0;
  for (int f = 0; f < CS_FIELD_COUNT && !rc; f++) {
    const msgpack_object *fo = &fs->via.array.ptr[f];
    char what[64];
    if (fo->type != MSGPACK_OBJECT_ARRAY || fo->via.array.size != 2) {
      rc = load_err(lc, "index: field %s is not [exact, words]",
                    ix_field_names[f]);
      break;
    }
    memset(seen, 0, words * sizeof(uint64_t));
    lc->seen = seen;
    snprintf(what, sizeof what, "%s exact", ix_field_names[f]);
    rc = load_dict(lc, &ix->exact[f], &fo->via.array.ptr[0], what);
    lc->seen = NULL;
    if (rc) break;
    const msgpack_object *wo = &fo->via.array.ptr[1];
    if (f == CS_PHONE) {
      if (wo->type != MSGPACK_OBJECT_NIL)
        rc = load_err(lc, "index: phone has a words dictionary");
    } else {
      snprintf(what, sizeof what, "%s words", ix_field_names[f]);
      rc = load_dict(lc, &ix->words[f], wo, what);
    }
  }
  free(seen);
  return rc;
}

int ix_load(ix_index *ix, const msgpack_object *obj, uint32_t slot_limit,
            char *errbuf, size_t errlen) {
  load_ctx lc = {errbuf, errlen, slot_limit, NULL, NULL, 0};
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (ix->exact[f].live || ix->words[f].live)
      return load_err(&lc, "index: load into a non-empty index");
  int rc = ix_load_fields(ix, obj, &lc);
  free(lc.scratch);
  if (rc) {
    if (rc == -ENOMEM) load_err(&lc, "index: out of memory while loading");
    ix_clear(ix);
  }
  return rc;
}
