/*
 * ix_int.h: the inverted indexes' private structures, shared by the ix files.
 *
 * index.h is the index's interface to the rest of the engine; this header is
 * what the files behind it share: the dictionary, posting list and sorted
 * order structures, the limits they keep, and the small helpers of the hot
 * paths (a lookup, a key comparison, a posting walk), kept static inline so
 * that searching, inserting and loading pay no call across files for them.
 *
 * Why: searches must answer exactly and at once (read-your-writes), for
 * exact, prefix and words matching, over a million contacts, with indexes
 * smaller than the data they index, rebuilt from the log in well under the
 * replay budget and loaded from a snapshot in a fraction of a second.
 *
 * Shape. Each field has an exact dictionary (fold_key of the whole value ->
 * posting list) that also keeps its keys in sorted order for prefix search,
 * and a words dictionary (each word of the folded value -> posting list),
 * sorted too, for the prefix and typo-tolerant word matches of a query.
 * Email and phone also have a dictionary of their reversed tails (suffix
 * search, see IX_REV_EMAIL), and one meta dictionary lists each account's live
 * contacts and, per field, those without the field. Beside the dictionaries, an
 * array keeps each slot's creation and update times. Phone has no words
 * dictionary: its folded value is a string of digits, one word, so a words
 * search on phone is an exact search.
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
 *    built whole (ix_load, ix_bulk_end) at load 7/10, grown when inserts
 *    pass 4/5 (to load 1/2 while small, 0.56 once large: ix_grow);
 *  - for exact dictionaries, the sorted order: entry numbers in chunks of
 *    at most IX_CHUNK_CAP, the chunks in key order (a two-level B-tree:
 *    binary search over the chunks' first keys, then within a chunk; a
 *    full chunk spills into a neighbour with room or splits, an emptying
 *    one merges). Beside each entry number
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
 *     (One exception: a shrinking bitmap whose array cannot be allocated
 *     stays a bitmap, of at least 2 slots; ix_check reports it, and the
 *     tests, which never fail an allocation, never see it.)
 *  3. Within one exact dictionary the posting lists are disjoint (a slot
 *     has one value per field), so a prefix search's union is a disjoint
 *     union: its size is the sum of the lists' sizes. ix_load checks this.
 *  4. Searches never write: they use stack state and a per-thread folding
 *     buffer only, so any number may run at once under the store's lock.
 *     During bulk mode staged slots and pending keys are not yet visible
 *     (the store does not search then); ix_erase applies the stage first.
 *
 * The snapshot format is described at the top of ix_snap.c.
 *
 * Files, each calling only files below it (the four at the top call none
 * of each other, and no file calls one above it):
 *
 *     index.c       create/destroy, insert, erase, bulk mode, memory
 *     ix_search.c   search, exact lookups, per-thread folding buffers
 *     ix_query.c    a query's sets: conditions, free text (and ix_fuzzy.c,
 *                   the typo walk, below it)
 *     ix_qwalk.c    walks against a match set, for sorts and facets
 *     ix_snap.c     the snapshot codec (ix_save, ix_load)
 *     ix_check.c    the whole-index checker (ix_check), for tests
 *        |
 *     ix_dict.c     a dictionary as a whole: new and removed keys,
 *        |          bulk staging, memory, shrink after bulk
 *        +------------------+------------------+
 *     ix_post.c          ix_tab.c           ix_order.c
 *     posting lists      key arena and      sorted order, bulk
 *     and their sets     hash table         sort and merge
 *        |                  |                  |
 *     ix_int.h      types, limits, inline helpers (includes no ix file)
 *
 * ix_search.c uses ix_order.c (prefix search) beside the inline helpers;
 * ix_snap.c uses ix_post.c, ix_tab.c, ix_order.c and ix_dict.c; ix_check.c
 * reads the structures through the inline helpers only.
 *
 * Who runs when (the store serialises the calls): ix_insert, ix_erase,
 * ix_load and the bulk calls run alone; ix_search, ix_exact_slots, ix_save,
 * ix_memory_bytes and ix_check may run in many threads at once and must not
 * change anything (invariant 4 above). ix_load and ix_bulk_end themselves
 * hand whole dictionaries to a few threads (ix_par_each), each touching
 * only its own dictionary, and return when all are done.
 *
 * Growth. Arrays grow by half while small and in bulk mode (whose end
 * gives the slack back), and by an eighth once large otherwise (ix_grow):
 * a loaded index then takes live inserts without leaving up to a third of
 * each million-key array unused.
 */
#ifndef CS_IX_INT_H
#define CS_IX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sys/mman.h>

#include <roaring/roaring.h>
#include <xxhash.h>

#include "cs.h"
#include "cs_assert.h"
#include "fold.h"
#include "index.h"

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
/* A full chunk gives entries to a neighbour that has at least this many
 * free (half of them) before it splits, so live inserts keep chunks about
 * 82% full rather than 73%. */
#define IX_SPILL_MIN 32

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

/* The suffix dictionaries, sorted, of reversed tails: an email's domain
 * (what follows the last '@' of its key) and a phone's last IX_PHONE_TAIL
 * digits. A suffix is a prefix of the reversed tail, so a suffix search
 * is a prefix search over them: exact for an email suffix without '@' and
 * a phone suffix of at most IX_PHONE_TAIL digits, and otherwise a small
 * set of candidates (one domain; one tail) that the query checks against
 * their records. Whole reversed keys would answer every suffix exactly but
 * cost some 180 bytes a contact; tails cost about a tenth of that, since
 * domains repeat and 5 digits have 100,000 values. */
enum { IX_REV_EMAIL, IX_REV_PHONE, IX_NREV };
#define IX_PHONE_TAIL 5

/* key reversed bytewise into out (index.c). 0 or -ENOMEM. */
int ix_reverse(const char *key, size_t len, fold_buf *out);

/* The tail of a folded key (email, phone) that its suffix dictionary
 * holds. */
static inline cs_str ix_tail(int field, const char *key, size_t len) {
  if (field == CS_PHONE) {
    size_t n = len < IX_PHONE_TAIL ? len : IX_PHONE_TAIL;
    return (cs_str){key + len - n, n};
  }
  const char *at = memrchr(key, '@', len);
  size_t from = at ? (size_t)(at - key) + 1 : 0;
  return (cs_str){key + from, len - from};
}

/* The meta dictionary's keys, after the account: one whose list is every
 * live contact of the account, and one per field listing the live
 * contacts without a key for it (absent, or a value whose key is empty),
 * and those of the latter kind alone. "not",
 * "neq" and "exists" are set differences against these; a sort puts the
 * contacts without its field last from them. */
#define IX_META_LIVE "*"
#define IX_META_ABSENT "0123456789" /* [field]: one character per field */
/* And those whose value is present but has an empty key (a lone combining
 * mark): they have the field (exists) but no key (sorts, facets). */
#define IX_META_EMPTY "abcdefghij"
_Static_assert(CS_FIELD_COUNT <= 10, "one absent tag per field");

/* What one writer folds into while it inserts or erases: ix_insert and
 * ix_erase use sc[0]; a replay's index threads (ix_queue.c) each use the
 * one of their part (ix_insert_part). */
typedef struct ix_scratch {
  fold_buf fb;                 /* an erase's folding */
  fold_buf ff[CS_FIELD_COUNT]; /* each field's folded value, in an insert */
  fold_buf rb[IX_NREV];        /* the reversed keys, in an insert */
  ix_job *jobs;                /* the keys of the insert in progress */
  size_t njobs, jobs_cap;
} ix_scratch;

struct ix_index {
  ix_dict exact[CS_FIELD_COUNT];
  ix_dict words[CS_FIELD_COUNT]; /* words[CS_PHONE] stays empty */
  ix_dict rev[IX_NREV];
  ix_dict meta;
  /* Per field that takes typos, each word's one-deletion variants -> the
   * word's entry in words[field] (ix_fuzzy.c): not saved in snapshots,
   * rebuilt after a load or a bulk load, kept in step by insert and
   * erase otherwise. */
  ix_dict typo[CS_FIELD_COUNT];
  bool bulk;
  ix_scratch sc[IX_PARTS];
  /* created_ms and updated_ms of each slot, for conditions and sorts on
   * times: tms[2 * slot], tms[2 * slot + 1]; ntms slots hold them. */
  int64_t *tms;
  uint32_t ntms, tms_cap;
};

/* Every dictionary of an index, for what treats them all alike (bulk
 * mode, memory, clearing): the exact ones, the words ones, the reversed
 * ones, then meta. */
#define IX_NDICTS (3 * CS_FIELD_COUNT + IX_NREV + 1)
static inline ix_dict *ix_dict_at(const ix_index *ix, int i) {
  ix_index *m = (ix_index *)ix;
  if (i < CS_FIELD_COUNT) return &m->exact[i];
  if (i < 2 * CS_FIELD_COUNT) return &m->words[i - CS_FIELD_COUNT];
  if (i < 2 * CS_FIELD_COUNT + IX_NREV) return &m->rev[i - 2 * CS_FIELD_COUNT];
  if (i == 2 * CS_FIELD_COUNT + IX_NREV) return &m->meta;
  return &m->typo[i - 2 * CS_FIELD_COUNT - IX_NREV - 1];
}

/* The fields whose words take typos (cs_query.h: never email or phone). */
static inline bool ix_typo_field(int f) {
  return f >= 0 && f < CS_FIELD_COUNT && f != CS_EMAIL && f != CS_PHONE;
}

/* The part of the index a field's dictionaries (exact, words, reversed,
 * typo) are in, for ix_insert_part: the names and the email in part 0,
 * with meta and the times; the others in part 1. About half the work of
 * an insert each. */
static inline int ix_field_part(int field) {
  return field == CS_FIRST_NAME || field == CS_LAST_NAME || field == CS_EMAIL
             ? 0
             : 1;
}

/* The reversed dictionary of field, or -1 (only email and phone). */
static inline int ix_rev_of(int field) {
  return field == CS_EMAIL   ? IX_REV_EMAIL
         : field == CS_PHONE ? IX_REV_PHONE
                             : -1;
}

/* Asks for transparent huge pages under a large block (the arenas, entry
 * arrays and hash tables of large dictionaries). Filling a fresh block
 * faults its pages in one at a time, and on virtual machines a fault is
 * expensive (tens of microseconds): loading or replaying a million
 * contacts spent a third of its time there. Huge pages also spare the TLB
 * misses of random lookups. Best effort: the hint may be refused. */
#define IX_HUGE_MIN (4u << 20)
static inline void *ix_huge(void *p, size_t bytes) {
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

/* The next capacity of a growing array of cap elements of elem bytes that
 * needs room for want: half again while small or in bulk mode, an eighth
 * once it is large (IX_HUGE_MIN) otherwise. Growing by half would leave up
 * to a third of a million-key array unused after a few live inserts (and
 * counted in index_bytes); an eighth costs a copy of the array every
 * eighth of its size at worst (realloc moves mapped pages without copying
 * them), a few bytes a key. Bulk mode grows by half (its copies would be
 * a replay's time) and gives the slack back at its end. */
static inline uint64_t ix_grow(uint64_t cap, uint64_t want, size_t elem,
                               bool bulk) {
  uint64_t next =
      !bulk && cap * elem >= IX_HUGE_MIN ? cap + cap / 8 : cap + cap / 2;
  return next < want ? want : next;
}

/* ------------------------------------------------ postings (read side) */

#define POST_IS_ONE(p) ((p)&1u)
#define POST_IS_RB(p) (((p)&3u) == 2u)
#define POST_ONE(p) ((uint32_t)((p) >> 1))
#define POST_MAKE_ONE(s) (((uint64_t)(s) << 1) | 1u)
#define POST_ARR(p) ((ix_arr *)(uintptr_t)(p))
#define POST_RB(p) ((roaring_bitmap_t *)(uintptr_t)((p) & ~(uint64_t)3))

static inline size_t arr_bytes(uint32_t cap) {
  return sizeof(ix_arr) + (size_t)cap * 4 + IX_MALLOC_OVERHEAD;
}

/* First index in v[0..n) whose value is >= x. */
static inline uint32_t lower_u32(const uint32_t *v, uint32_t n, uint32_t x) {
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

static inline uint64_t post_card(ix_post p) {
  if (POST_IS_ONE(p)) return 1;
  if (POST_IS_RB(p)) return roaring_bitmap_get_cardinality(POST_RB(p));
  return POST_ARR(p)->n;
}

/* Whether slot x is in p. */
static inline bool post_contains(ix_post p, uint32_t x) {
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

static inline void post_iter_init(post_iter *pi, ix_post p, uint32_t min) {
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

static inline bool post_iter_next(post_iter *pi, uint32_t *out) {
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

/* ------------------------------------------------------------ keys */

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
static inline int key_cmp(const uint8_t *k, size_t klen, const uint8_t acct[4],
                          const char *text, size_t tlen) {
  int c = memcmp(k, acct, 4);
  if (c) return c;
  size_t kt = klen - 4, m = kt < tlen ? kt : tlen;
  c = m ? memcmp(k + 4, text, m) : 0;
  if (c) return c;
  return (kt > tlen) - (kt < tlen);
}

static inline int key_cmp_raw(const uint8_t *a, size_t alen, const uint8_t *b,
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

/* Table sizes: grown (tab_reserve) when its keys pass 4/5 of it;
 * built whole (load, end of bulk) at 10/7 of its keys, so the next inserts
 * do not grow it at once. */
#define IX_TAB_FULL(keys, size) ((uint64_t)(keys)*5 > (uint64_t)(size)*4)
static inline uint64_t tab_size_for(uint64_t keys) {
  return keys * 10 / 7 + 16;
}

static inline uint32_t dict_find(const ix_dict *d, uint32_t account,
                                 const char *text, size_t len, uint32_t h) {
  if (!d->tab_size) return IX_NONE;
  uint8_t acct[4];
  acct_be(account, acct);
  for (uint64_t i = tab_home(h, d->tab_size);; i = tab_next(i, d->tab_size)) {
    uint64_t c = d->tab[i];
    if (!c) return IX_NONE;
    if ((uint32_t)(c >> 32) != h) continue;
    uint32_t e = (uint32_t)c - 1;
    CS_ASSERT(e < d->nents); /* a cell past the entries: any bytes */
    size_t klen;
    const uint8_t *k = ent_key(d, e, &klen);
    if (klen == len + 4 && !memcmp(k, acct, 4) && !memcmp(k + 4, text, len))
      return e;
  }
}

/* ------------------------------------------------ sorted order (inline) */

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

static inline uint32_t key_acct(const uint8_t *k) {
  return (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 |
         k[3];
}

/* Puts a cell into a table that has room (tab_reserve), at the first free
 * cell from its home. */
static inline void tab_put(uint64_t *tab, uint64_t size, uint64_t cell) {
  uint64_t i = tab_home((uint32_t)(cell >> 32), size);
  while (tab[i])
    i = tab_next(i, size);
  tab[i] = cell;
}

/* ------------------------------------------- ix_post.c: posting lists */

/* Bytes a bitmap holds, its blocks' malloc overhead included. */
size_t rb_bytes(const roaring_bitmap_t *r);
/* Records / forgets entry e as one whose posting is a bitmap. */
int big_add(ix_dict *d, uint32_t e);
void big_remove(ix_dict *d, uint32_t e);
/* A new empty array posting of cap slots, counted in d->arr_bytes. */
ix_arr *arr_new(ix_dict *d, uint32_t cap);
/* Frees a posting's array or bitmap (not its place in d->big). */
void post_free(ix_dict *d, ix_post p);
/* post_add for any list: also a single slot becoming an array, a slot that
 * goes before an array's last, and a full array grown or made a bitmap.
 * As post_add. */
int post_add_slow(ix_dict *d, uint32_t e, uint32_t slot);
/* Adds slots[0..k) (any order, repeats allowed) to entry e's list at once;
 * slots has room for IX_ARRAY_MAX values in front of it. 0 or -ENOMEM. */
int post_add_many(ix_dict *d, uint32_t e, uint32_t *slots, size_t k);
/* Removes slot from entry e's list (no-op when absent); the posting becomes
 * 0 when the list empties. Never fails. */
void post_remove(ix_dict *d, uint32_t e, uint32_t slot);
/* Gives back the slack of growth in entry e's list. Best effort. */
void post_fit(ix_dict *d, uint32_t e);

/* ------------------------------------- ix_tab.c: arena and hash table */

/* Makes room in the table for keys keys (growing as ix_grow says for
 * bulk). 0 or -ENOMEM. */
int tab_reserve(ix_dict *d, uint64_t keys, bool bulk);
/* Removes entry e (of hash h) from the table; e must be there. */
void tab_delete(ix_dict *d, uint32_t e, uint32_t h);
/* Stable LSD radix sort of a[0..n) by bits [lo, lo + bits); returns the
 * array holding the result (a or tmp, both of n values). */
uint64_t *radix_sort(uint64_t *a, uint64_t *tmp, size_t n, int lo, int bits);
int log2_ceil(uint64_t n);
/* Fills the empty table of d with cells[0..n) (reordered). 0, -ENOMEM, or
 * with check_dups -EEXIST when two cells name equal keys. */
int tab_build(ix_dict *d, uint64_t *cells, size_t n, bool check_dups);
/* Rebuilds an oversized table at tab_size_for its keys. Best effort. */
void tab_fit(ix_dict *d);
/* Makes room for more arena bytes (growing as ix_grow says for bulk). 0
 * or -ENOMEM. */
int arena_reserve(ix_dict *d, uint64_t more, bool bulk);
/* Rewrites the arena without the garbage of removed keys. Best effort. */
void arena_compact(ix_dict *d);

/* ---------------------------------------- ix_order.c: the sorted order */

/* Refreshes chunk c's header from its body (after its ends changed). */
void chunk_fix(ix_dict *d, uint32_t c);
/* The position of the first key >= (account, text): chunk *c_out, index
 * *i_out (*c_out == nchunks at the end). */
void order_lower(const ix_dict *d, uint32_t account, const char *text,
                 size_t tlen, uint32_t *c_out, uint32_t *i_out);
/* Puts entry e into the order. 0 or -ENOMEM, and then nothing changed. */
int order_insert(ix_dict *d, uint32_t e);
/* Takes entry e out of the order (or out of the pending keys). */
void order_remove(ix_dict *d, uint32_t e);
/* Merges the pending keys into the order: one sort, one linear merge. 0 or
 * -ENOMEM, and then the keys stay pending. */
int order_merge_pending(ix_dict *d);

/* ----------------------------------------- ix_dict.c: the dictionaries */

/* Threads that building a whole index (ix_load, ix_bulk_end) uses at most,
 * the caller's included: its dictionaries are independent, and the four
 * that hold a key per contact (email, phone, notes, email words) are most
 * of the work, so a few threads take them at once. */
#define IX_PAR_THREADS 4
/* Runs fn(ctx, i) once for each i in [0, n) on up to IX_PAR_THREADS
 * threads (no more than the machine's processors), taking the tasks in
 * order (list the largest first). Each task must touch only what is its
 * own. Once a task fails no other starts; the first failure is returned
 * (0 when all succeed). */
int ix_par_each(size_t n, int (*fn)(void *ctx, size_t i), void *ctx);

void dict_init(ix_dict *d, bool sorted);
/* Frees everything d holds and leaves it empty (as dict_init). */
void dict_deinit(ix_dict *d);
/* Adds the key (account, text) of hash h, not present, with slot as its
 * list. 0, CS_EINVAL (key too long) or -ENOMEM; on failure d is as it was. */
int dict_new_key(ix_dict *d, bool bulk, uint32_t account, const char *text,
                 size_t len, uint32_t h, uint32_t slot);
/* Room for one more staged pair (bulk mode). 0 or -ENOMEM. */
int stage_reserve(ix_dict *d);
/* Removes slot from (account, text), and the key when its list empties. */
void dict_remove(ix_dict *d, uint32_t account, const char *text, size_t len,
                 uint32_t slot);
/* Applies the staged pairs in entry order. 0 or -ENOMEM, and then the pairs
 * not applied stay staged. */
int stage_apply(ix_dict *d);
/* Gives back the slack of growth once a bulk load is over. */
void dict_shrink(ix_dict *d);
size_t dict_memory(const ix_dict *d);
/* Empties every dictionary of ix. */
void ix_clear(ix_index *ix);

/* Adds slot to entry e's list (no-op when present). 0 or -ENOMEM, and then
 * the list is unchanged. Inline, with the common cases first: dict_add calls
 * it for every existing key of every contact indexed, and slots are mostly
 * new and the largest yet, so most adds go into a bitmap or onto the end of
 * an array with room (an array's cap is at most IX_ARRAY_MAX, which ix_check
 * checks, so room means no bitmap is due). */
static inline int post_add(ix_dict *d, uint32_t e, uint32_t slot) {
  ix_post p = d->ents[e].post;
  if (POST_IS_RB(p)) {
    roaring_bitmap_add(POST_RB(p), slot);
    return 0;
  }
  if (!POST_IS_ONE(p)) {
    ix_arr *a = POST_ARR(p);
    if (a->n < a->cap && a->v[a->n - 1] < slot) {
      a->v[a->n++] = slot;
      return 0;
    }
  }
  return post_add_slow(d, e, slot);
}

/* Adds slot under (account, text) of hash h, staging it in bulk mode when
 * the key exists. 0, CS_EINVAL (key too long) or -ENOMEM; on failure d is
 * as it was. Inline: ix_insert calls it for every key of every contact, and
 * in bulk mode the common case (a key that exists) is a lookup and a store. */
static inline int dict_add(ix_dict *d, bool bulk, uint32_t account,
                           const char *text, size_t len, uint32_t h,
                           uint32_t slot) {
  uint32_t e = dict_find(d, account, text, len, h);
  if (e == IX_NONE) return dict_new_key(d, bulk, account, text, len, h, slot);
  if (!bulk) return post_add(d, e, slot);
  if (d->nstage == d->stage_cap) {
    int rc = stage_reserve(d);
    if (rc) return rc;
  }
  d->stage[d->nstage++] = (uint64_t)e << 32 | slot;
  return 0;
}
/* ------------------------------------ postings (query side, inline) */

/* Adds the slots of p to out (ix_query.c, ix_qwalk.c). */
static inline void post_or(ix_post p, roaring_bitmap_t *out) {
  if (!p) return;
  if (POST_IS_ONE(p)) {
    roaring_bitmap_add(out, POST_ONE(p));
  } else if (POST_IS_RB(p)) {
    roaring_bitmap_or_inplace(out, POST_RB(p));
  } else {
    const ix_arr *a = POST_ARR(p);
    roaring_bitmap_add_many(out, a->n, a->v);
  }
}

/* The posting of (account, text) in d, or 0. */
static inline ix_post dict_post(const ix_dict *d, uint32_t account,
                                const char *t, size_t len) {
  uint32_t e = dict_find(d, account, t, len, key_hash(account, t, len));
  return e == IX_NONE ? 0 : d->ents[e].post;
}

/* ------------------------------------------- ix_fuzzy.c: typo walks */

typedef struct fuzzy_walk fuzzy_walk;
/* A walk's state (a few KiB: rows per character); free with free(). */
fuzzy_walk *fuzzy_new(void);
/* Sets z up for word (folded) and allowance k; false when the word is
 * longer than typo tolerance takes (CS_FUZZY_MAX_CHARS). */
bool fuzzy_init(fuzzy_walk *z, const char *w, size_t len, int k);
/* Calls fn(ctx, post, typos) for every word of account in the sorted d
 * without a digit and 1..k typos from z's word. */
void fuzzy_each(const ix_dict *d, uint32_t account, fuzzy_walk *z,
                void (*fn)(void *ctx, ix_post p, int typos), void *ctx);
/* The typo allowance of a folded query word (cs_typo_allowance). */
int word_allowance(const char *w, size_t len);
/* Calls fn(ctx, post, typos) for every word of account in words[field]
 * without a digit and 1..k typos from the folded word w (z set up for it
 * by fuzzy_init): for one typo from the deletion variants, for two by the
 * walk. */
void typo_each(const ix_index *ix, int field, uint32_t account, fuzzy_walk *z,
               const char *w, size_t len, int k,
               void (*fn)(void *ctx, ix_post p, int typos), void *ctx);
/* Keeps typo[field] in step with a word key that words[field] gained (as
 * entry e) or lost. 0 or -ENOMEM. */
int typo_word_added(ix_index *ix, int field, uint32_t account, const char *w,
                    size_t len, uint32_t e);
void typo_word_removed(ix_index *ix, int field, uint32_t account, const char *w,
                       size_t len, uint32_t e);
/* Builds every typo dictionary from the words dictionaries. 0 or
 * -ENOMEM. */
int typo_rebuild(ix_index *ix);

#endif
