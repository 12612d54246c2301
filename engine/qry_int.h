/*
 * qry_int.h: what the query files share (private to the engine).
 *
 * A query runs in three steps, each in its own file, all under the
 * store's read lock:
 *
 *     query.c    checks the query, evaluates its filter and free text to
 *                the set of matching slots (a CRoaring bitmap), and reads
 *                the page's contacts: cs_query_check, cs_query_run
 *     qorder.c   orders the matches and cuts the page after the cursor
 *     qfacet.c   counts the facets over all the matches
 *        |
 *     qrun.c     the arena, and a match's folded key read from its record
 *     qrules.c   names, which op a field takes, the typo allowance (a
 *                leaf, shared with ix_query.c)
 *
 * They meet in one qrun: the store, the query, the match set and the
 * arena that the result's strings live in (a msgpack zone, which the
 * result owns). The sets come from the index (ix_query.c).
 */
#ifndef CS_QRY_INT_H
#define CS_QRY_INT_H

#include <msgpack.h>
#include <roaring/roaring.h>

#include "cs_query.h"
#include "index.h"
#include "store_int.h"
#include "u64map.h"

typedef struct qrun {
  cs_store *s;
  const cs_qry *q;
  roaring_bitmap_t *live;  /* the account's live slots, once asked for */
  roaring_bitmap_t *match; /* the slots that match */
  ixq_text text;           /* q's sets (with tiers when sorting by them) */
  u64map score;            /* slot + 1 -> relevance (smaller first) */
  msgpack_zone *mem;       /* the result's strings (moves to the result) */
  msgpack_zone rz;         /* scratch for decoding records */
  fold_buf fb;             /* scratch for folding */
  cs_error *err;
} qrun;

/* Copies len bytes into the arena. NULL when out of memory. */
const char *qrun_dup(qrun *r, const char *p, size_t len);

/* The folded key of field on slot's contact, copied into the arena
 * (missing: absent or empty). 0, CS_ECORRUPT, -ENOMEM. */
int qrun_key(qrun *r, uint32_t slot, int field, cs_str *key, bool *missing);

/* Orders the matches and writes the page: up to limit slots after the
 * query's cursor into slots, their number into *count, whether more
 * follow into *more and, when they do, the position of the last into
 * *next (strings in the arena). */
int qorder_page(qrun *r, uint32_t *slots, uint32_t *count, bool *more,
                cs_qpos *next);

/* Counts the query's facets over the matches into out[0..nfacets). */
int qfacet_count(qrun *r, cs_facet *out);

#endif
