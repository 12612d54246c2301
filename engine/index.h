/*
 * index.h: the inverted indexes (private to the engine).
 *
 * One index per searchable field. Each holds, per account, a dictionary from
 * a field's exact key (fold_key of the whole value) to the posting list of
 * the contacts having it, kept sorted for prefix search; and a dictionary
 * from each word of the folded value to its posting list, for words search.
 *
 * Contacts are named by slot: a dense 32-bit number the store gives each
 * contact version's owner in creation order, so slot order is id order.
 * Posting lists hold slots in increasing order.
 *
 * The store serialises calls: ix_insert, ix_erase, ix_load and the bulk
 * calls run alone; ix_search, ix_exact_slots, ix_save and ix_memory_bytes may
 * run in many threads at once and must not change anything.
 */
#ifndef CS_INDEX_H
#define CS_INDEX_H

#include <msgpack.h>
#include <roaring/roaring.h>
#include <stdbool.h>
#include <stdint.h>

#include "cs.h"
#include "cs_query.h"
#include "fold.h"

typedef struct ix_index ix_index;

ix_index *ix_create(void);
void ix_destroy(ix_index *ix);

/* Indexes a contact version at slot (any slot not currently indexed, or
 * one whose fields in skip stayed indexed: an edit re-indexes only what
 * changed). field holds every field of the version; those in skip (bits
 * 1 << cs_field) are left alone, the others are indexed, an absent one as
 * absent. The times are the version's. Values are raw (validated,
 * trimmed); the index folds them. 0 or -ENOMEM (then the index is
 * unchanged). */
int ix_insert(ix_index *ix, uint32_t account, uint32_t slot,
              const cs_str field[CS_FIELD_COUNT], uint32_t skip,
              int64_t created_ms, int64_t updated_ms);

/* Removes exactly what ix_insert added for these values and skip at slot
 * (field[f] NULL and f not in skip: the field was absent). */
int ix_erase(ix_index *ix, uint32_t account, uint32_t slot,
             const cs_str field[CS_FIELD_COUNT], uint32_t skip);

/*
 * The index in IX_PARTS parts that share no dictionary (each field's
 * dictionaries are in one part; meta and the times in part 0), so that
 * threads may insert and erase one part each, at once: the same call with
 * every part, in any order between the parts, leaves the index as
 * ix_insert (ix_erase) does, which is the call with part -1. In bulk mode only;
 * a failure of one part leaves the others as they are (the index is to be
 * thrown away).
 */
#define IX_PARTS 2
int ix_insert_part(ix_index *ix, int part, uint32_t account, uint32_t slot,
                   const cs_str field[CS_FIELD_COUNT], uint32_t skip,
                   int64_t created_ms, int64_t updated_ms);
int ix_erase_part(ix_index *ix, int part, uint32_t account, uint32_t slot,
                  const cs_str field[CS_FIELD_COUNT], uint32_t skip);

/*
 * A replay's index calls made on threads of their own (ix_queue.c: one a
 * part of the index), in their order, while the replay goes on. ixq_start
 * starts them (*out stays NULL, and 0 is returned, when there is one
 * processor or no thread could start: then the caller calls the index
 * itself); ixq_insert
 * and ixq_erase queue a call as ix_insert and ix_erase take it (the
 * values' text must stay where it is until ixq_finish), returning the
 * first error an earlier call met, if any; ixq_finish waits for every
 * queued call, stops the thread and returns that error (0 for a NULL
 * queue). Nothing else may touch the index from ixq_start to ixq_finish.
 */
typedef struct ixq ixq;
int ixq_start(ix_index *ix, ixq **out);
int ixq_insert(ixq *q, uint32_t account, uint32_t slot,
               const cs_str field[CS_FIELD_COUNT], uint32_t skip,
               int64_t created_ms, int64_t updated_ms);
int ixq_erase(ixq *q, uint32_t account, uint32_t slot,
              const cs_str field[CS_FIELD_COUNT], uint32_t skip);
int ixq_finish(ixq *q);

/* Calls fn for each slot whose exact key on field equals key (already
 * folded with fold_key), stopping when fn returns non-zero (returned). */
int ix_exact_slots(const ix_index *ix, uint32_t account, int field,
                   const char *key, size_t key_len,
                   int (*fn)(void *ctx, uint32_t slot), void *ctx);

/*
 * Searches field (not CS_SEARCH_BY_ID) of account with the raw term, folded
 * here; match is EXACT, PREFIX or WORDS (DEFAULT resolved by the caller).
 * Writes up to limit matching slots >= min_slot into slots_out in increasing
 * order, their number to *count_out, the number of all matches (ignoring
 * min_slot) to *total_out, and whether more matches follow the last one
 * written to *more_out. A term that folds to nothing matches nothing.
 * 0, CS_EINVAL or -ENOMEM.
 */
int ix_search(const ix_index *ix, uint32_t account, int field, cs_match match,
              const char *term, size_t term_len, uint32_t min_slot,
              uint32_t limit, uint32_t *slots_out, uint32_t *count_out,
              uint64_t *total_out, bool *more_out);

/* How the posting list of an exact key (already folded) is held: 0 no such
 * key, 1 one slot inline, 2 a sorted array, 3 a bitmap. For tests and
 * diagnostics. */
int ix_posting_kind(const ix_index *ix, uint32_t account, int field,
                    const char *key, size_t key_len);

/* Bytes of memory the indexes hold (dictionaries, postings, strings). */
size_t ix_memory_bytes(const ix_index *ix);

/* The same bytes, dictionary by dictionary (exact, words, reversed, meta,
 * typo) and then the times array, by structure: for benchmarks and
 * diagnostics. The parts sum to ix_memory_bytes less the writer's scratch
 * buffers. */
#define IX_MEM_DICTS (3 * CS_FIELD_COUNT + 4)
typedef struct ix_mem_part {
  char name[32];
  size_t keys;  /* live keys */
  size_t ents;  /* entry array */
  size_t tab;   /* hash table */
  size_t arena; /* key bytes */
  size_t order; /* sorted order: chunk headers and bodies */
  size_t post;  /* posting arrays and bitmaps */
  size_t other; /* bulk staging, pending keys, the bitmap list; times */
} ix_mem_part;
void ix_memory_parts(const ix_index *ix, ix_mem_part out[IX_MEM_DICTS]);

/* Many inserts in a row (replay at open): structures that only searches
 * need may be built once at ix_bulk_end. No search or erase in between. */
void ix_bulk_begin(ix_index *ix);
int ix_bulk_end(ix_index *ix);
/* Whether ix is between ix_bulk_begin and a successful ix_bulk_end (the
 * store's arrays grow faster then). */
bool ix_in_bulk(const ix_index *ix);

/* Writes the whole index as one msgpack object. */
int ix_save(const ix_index *ix, msgpack_packer *pk);

/* Replaces an empty index's contents with a saved one. obj comes from a
 * snapshot whose checksum was verified, but its shape is still checked:
 * an image of index format 1 is CS_EFORMAT (rebuild from the log), and
 * anything unexpected is CS_ECORRUPT with a message in errbuf (and the index
 * is left empty). Slots must be < slot_limit. */
int ix_load(ix_index *ix, const msgpack_object *obj, uint32_t slot_limit,
            char *errbuf, size_t errlen);

/* Checks the whole index against its invariants (engine/ix_int.h): every
 * posting list strictly increasing, below slot_limit and held as its size
 * says, the posting lists of one field's exact keys disjoint, every key once
 * in its hash table and in its sorted order, and every count consistent.
 * Reads only, so it may run beside searches; slow (it visits everything):
 * for tests. 0 when sound; CS_ECORRUPT with a message in errbuf naming the
 * dictionary and what is wrong; -ENOMEM. */
int ix_check(const ix_index *ix, uint32_t slot_limit, char *errbuf,
             size_t errlen);

/* ------------------------------------------------ queries (ix_query.c) */

/* Frees a set (CRoaring's free does not take NULL). */
static inline void ixq_set_free(roaring_bitmap_t *b) {
  if (b) roaring_bitmap_free(b);
}

/* Adds to out the live slots of account; those without a key for field
 * (absent, or a value whose key is empty); those of the latter kind. */
int ixq_live(const ix_index *ix, uint32_t account, roaring_bitmap_t *out);
int ixq_absent(const ix_index *ix, uint32_t account, int field,
               roaring_bitmap_t *out);
int ixq_empty(const ix_index *ix, uint32_t account, int field,
              roaring_bitmap_t *out);

/* Adds to out the slots of account whose field matches raw under op
 * (eq, prefix, words, fuzzy; cs_query.h), folding with fb. 0,
 * CS_EINVAL (an op the field does not take, too many words), -ENOMEM. */
int ixq_match(const ix_index *ix, uint32_t account, int field, cs_op op,
              const char *raw, size_t len, fold_buf *fb, roaring_bitmap_t *out);

/* Adds to out the slots of account whose field (email, phone) may end
 * with raw, folded into fb: exactly those, or with *verify a superset the
 * caller narrows by comparing each one's key with fb (see IX_REV_EMAIL).
 * 0, CS_EINVAL (another field, or fewer than CS_QUERY_SUFFIX_MIN
 * characters), -ENOMEM. */
int ixq_suffix(const ix_index *ix, uint32_t account, int field, const char *raw,
               size_t len, fold_buf *fb, roaring_bitmap_t *out, bool *verify);

/* The words of fold_text(text), counted up to CS_QUERY_WORDS_MAX + 1. */
int ixq_count_words(const char *text, size_t len, fold_buf *fb, uint32_t *n);

/* How a word of q matched, in relevance order: typos * 12, + 6 for a
 * prefix, + the field group (names, email, company, job title, phone,
 * notes). */
#define IXQ_TIERS 36
#define IXQ_TIER_TYPOS(t) ((t) / 12)
#define IXQ_TIER_PREFIX(t) (((t) % 12) / 6)
#define IXQ_TIER_GROUP(t) ((t) % 6)

typedef struct ixq_text {
  roaring_bitmap_t *set; /* the slots every word matches */
  uint32_t nwords;
  /* with tiers: per word, the slots it matches in each tier (NULL: none) */
  roaring_bitmap_t *(*tier)[IXQ_TIERS];
} ixq_text;

/* Evaluates free text q over account (cs_query.h). 0, CS_EINVAL (no word,
 * too many), -ENOMEM. Free with ixq_text_free. */
int ixq_text_eval(const ix_index *ix, uint32_t account, const char *q,
                  size_t qlen, bool fuzzy, bool tiers, ixq_text *out);
void ixq_text_free(ixq_text *t);

/* Keys in field's exact dictionary (all accounts): what a walk may cost. */
uint64_t ixq_keys(const ix_index *ix, int field);
/* The times of slot. CS_EINVAL for a slot never indexed. */
int ixq_times(const ix_index *ix, uint32_t slot, int64_t *created_ms,
              int64_t *updated_ms);
/* The smallest slot of account whose field has this key, or
 * CS_ENOTFOUND. */
int ixq_first_slot(const ix_index *ix, uint32_t account, int field,
                   const char *key, size_t len, uint32_t *slot);

/* Called per key of a walk that some slot of r has: the key's text, and
 * the slots of r under it (ascending; NULL when the caller only counts:
 * ixq_count_keys) and their number. Non-zero stops the walk (a negative value
 * is returned). */
typedef int (*ixq_walk_fn)(void *ctx, cs_str key, const uint32_t *slots,
                           uint64_t n);
/* Walks field's keys of account in order (desc: backwards), from the
 * first key >= from (desc: <= from; from NULL: from the end), calling fn
 * with the slots of r under each key that has some. 0, fn's negative
 * value, or -ENOMEM. */
int ixq_walk(const ix_index *ix, uint32_t account, int field, bool desc,
             const cs_str *from, const roaring_bitmap_t *r, ixq_walk_fn fn,
             void *ctx);

/* Calls fn (without slots) for every key of field that slots of r hold
 * (r: slots of one account), with their number, in no particular order:
 * the facets' count, cheaper than a walk in key order. 0, fn's negative
 * value, or -ENOMEM. */
int ixq_count_keys(const ix_index *ix, int field, const roaring_bitmap_t *r,
                   ixq_walk_fn fn, void *ctx);

#endif
