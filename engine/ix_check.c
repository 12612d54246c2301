/*
 * ix_check.c: the whole-index checker (ix_check), for tests.
 *
 * Why: the index's invariants (ix_int.h) span structures no single write
 * looks at whole: a posting list out of order, a hash cell that cannot be
 * reached from its home or a key missing from the sorted order answer
 * wrongly much later, far from the write that broke them. The tests run
 * this after every step so that a break shows at the step that made it.
 * It reads everything and allocates one mark per entry and one bit per
 * slot, so it is far too slow for the write path: production never calls
 * it.
 *
 * It only reads, through the same inline helpers the searches use, so it
 * may run beside searches (invariant 4).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"

/* What the check of one dictionary needs beside the dictionary. */
typedef struct check_ctx {
  char *errbuf;
  size_t errlen;
  uint32_t slot_limit;
  const char *what; /* "exact 2", "words 6": which dictionary */
  uint8_t *mark;    /* per entry: CHECK_IN_* bits */
  uint64_t *seen;   /* per slot, for the exact dictionaries: disjointness */
} check_ctx;

#define CHECK_IN_TAB 1u
#define CHECK_IN_ORDER 2u
#define CHECK_IN_BIG 4u

__attribute__((format(printf, 2, 3))) static int
check_err(check_ctx *cc, const char *fmt, ...) {
  if (cc->errbuf && cc->errlen) {
    int n = snprintf(cc->errbuf, cc->errlen, "index %s: ", cc->what);
    if (n >= 0 && (size_t)n < cc->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(cc->errbuf + n, cc->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return CS_ECORRUPT;
}

/* Marks slot s as held by a key of the current exact dictionary. */
static int check_disjoint(check_ctx *cc, uint32_t e, uint32_t s) {
  if (!cc->seen) return 0;
  if (cc->seen[s >> 6] & (1ull << (s & 63)))
    return check_err(cc, "slot %u under two keys (entry %u)", s, e);
  cc->seen[s >> 6] |= 1ull << (s & 63);
  return 0;
}

/* Invariant 2 for entry e's list, and its bytes in *arr_bytes_sum. */
static int check_post(check_ctx *cc, const ix_dict *d, uint32_t e,
                      size_t *arr_bytes_sum) {
  ix_post p = d->ents[e].post;
  if (POST_IS_ONE(p)) {
    if (POST_ONE(p) >= cc->slot_limit)
      return check_err(cc, "entry %u: slot %u past the limit %u", e,
                       POST_ONE(p), cc->slot_limit);
    return check_disjoint(cc, e, POST_ONE(p));
  }
  uint64_t n = post_card(p);
  if (POST_IS_RB(p)) {
    if (n <= IX_ARRAY_LOW)
      return check_err(cc, "entry %u: a bitmap of %llu slots", e,
                       (unsigned long long)n);
    if (!(cc->mark[e] & CHECK_IN_BIG))
      return check_err(cc, "entry %u: a bitmap not listed as big", e);
  } else {
    const ix_arr *a = POST_ARR(p);
    if (a->n < 2 || a->n > a->cap || a->cap > IX_ARRAY_MAX)
      return check_err(cc, "entry %u: an array of %u slots, room for %u", e,
                       a->n, a->cap);
    *arr_bytes_sum += arr_bytes(a->cap);
  }
  post_iter it;
  post_iter_init(&it, p, 0);
  uint32_t s, prev = 0;
  uint64_t k = 0;
  while (post_iter_next(&it, &s)) {
    if (k && s <= prev)
      return check_err(cc, "entry %u: slot %u after %u", e, s, prev);
    if (s >= cc->slot_limit)
      return check_err(cc, "entry %u: slot %u past the limit %u", e, s,
                       cc->slot_limit);
    int rc = check_disjoint(cc, e, s);
    if (rc) return rc;
    prev = s;
    k++;
  }
  if (k != n)
    return check_err(cc, "entry %u: walked %llu slots of %llu", e,
                     (unsigned long long)k, (unsigned long long)n);
  return 0;
}

/* Every entry: its key's place in the arena and shape, and its list; the
 * live count; the free chain. */
static int check_entries(check_ctx *cc, const ix_dict *d) {
  if (d->nents > d->ents_cap || d->arena_len > d->arena_cap ||
      d->arena_garbage > d->arena_len)
    return check_err(cc, "sizes past capacities");
  for (uint32_t i = 0; i < d->nbig; i++) {
    uint32_t e = d->big[i];
    if (e >= d->nents || !POST_IS_RB(d->ents[e].post) ||
        (cc->mark[e] & CHECK_IN_BIG))
      return check_err(cc, "big list names entry %u", e);
    cc->mark[e] |= CHECK_IN_BIG;
  }
  uint32_t live = 0, nbig = 0;
  size_t arr_sum = 0;
  for (uint32_t e = 0; e < d->nents; e++) {
    if (!d->ents[e].post) continue;
    live++;
    uint64_t kref = d->ents[e].kref;
    size_t len = (size_t)(kref & IX_KEY_BYTES_MAX);
    if ((kref >> 24) + len > d->arena_len || len < IX_ACCOUNT_BYTES + 1)
      return check_err(cc, "entry %u: key of %zu bytes at %llu", e, len,
                       (unsigned long long)(kref >> 24));
    nbig += POST_IS_RB(d->ents[e].post);
    int rc = check_post(cc, d, e, &arr_sum);
    if (rc) return rc;
  }
  if (live != d->live)
    return check_err(cc, "%u live entries, counted %u", live, d->live);
  if (nbig != d->nbig)
    return check_err(cc, "%u bitmaps, big lists %u", nbig, d->nbig);
  if (arr_sum != d->arr_bytes)
    return check_err(cc, "arrays hold %zu bytes, counted %zu", arr_sum,
                     d->arr_bytes);
  uint32_t nfree = 0;
  for (uint32_t e = d->free_head; e != IX_NONE; e = (uint32_t)d->ents[e].kref) {
    if (e >= d->nents || d->ents[e].post || ++nfree > d->nents - live)
      return check_err(cc, "free chain broken at entry %u", e);
  }
  if (nfree != d->nents - live)
    return check_err(cc, "%u free entries, chained %u", d->nents - live, nfree);
  return 0;
}

/* Invariant 1 for the hash table: each live entry in exactly one cell,
 * with its key's hash, found from its home by dict_find. */
static int check_tab(check_ctx *cc, const ix_dict *d) {
  uint64_t cells = 0;
  if (d->live && !d->tab_size) return check_err(cc, "keys but no table");
  for (uint64_t i = 0; i < d->tab_size; i++) {
    uint64_t c = d->tab[i];
    if (!c) continue;
    cells++;
    uint32_t e = (uint32_t)c - 1, h = (uint32_t)(c >> 32);
    if ((uint32_t)c == 0 || e >= d->nents || !d->ents[e].post ||
        (cc->mark[e] & CHECK_IN_TAB))
      return check_err(cc, "cell %llu names entry %u", (unsigned long long)i,
                       e);
    cc->mark[e] |= CHECK_IN_TAB;
    size_t len;
    const uint8_t *k = ent_key(d, e, &len);
    const char *text = (const char *)k + IX_ACCOUNT_BYTES;
    size_t tlen = len - IX_ACCOUNT_BYTES;
    if (key_hash(key_acct(k), text, tlen) != h)
      return check_err(cc, "cell %llu: wrong hash for entry %u",
                       (unsigned long long)i, e);
    if (dict_find(d, key_acct(k), text, tlen, h) != e)
      return check_err(cc, "entry %u not found from its home (or twice)", e);
  }
  if (cells != d->live)
    return check_err(cc, "%llu cells for %u keys", (unsigned long long)cells,
                     d->live);
  return 0;
}

/* One chunk's header and prefixes against its keys. */
static int check_chunk(check_ctx *cc, const ix_dict *d, uint32_t c) {
  const ix_chunk *ch = &d->chunks[c];
  if (ch->n == 0 || ch->n > IX_CHUNK_CAP)
    return check_err(cc, "chunk %u holds %u entries", c, ch->n);
  for (uint32_t i = 0; i < ch->n; i++) {
    uint32_t e = ch->v[i];
    if (e >= d->nents || !d->ents[e].post || (cc->mark[e] & CHECK_IN_ORDER))
      return check_err(cc, "chunk %u [%u] names entry %u", c, i, e);
    cc->mark[e] |= CHECK_IN_ORDER;
    size_t len;
    const uint8_t *k = ent_key(d, e, &len);
    ix_pfx pk = text_pk(k + IX_ACCOUNT_BYTES, len - IX_ACCOUNT_BYTES);
    if (pfx_cmp(chunk_pa(ch)[i], chunk_pb(ch)[i], &pk))
      return check_err(cc, "chunk %u [%u]: stale prefix", c, i);
    if (i == 0 &&
        (ch->pa0 != pk.a || ch->pb0 != pk.b || ch->acct0 != key_acct(k)))
      return check_err(cc, "chunk %u: stale header", c);
    if (i == ch->n - 1 && ch->acct1 != key_acct(k))
      return check_err(cc, "chunk %u: stale last account", c);
  }
  return 0;
}

/* Invariant 1 for the sorted order: strictly increasing over all chunks,
 * and with the pending keys exactly the live keys. */
static int check_order(check_ctx *cc, const ix_dict *d) {
  if (!d->sorted) {
    if (d->nchunks || d->npending)
      return check_err(cc, "an order in a words dictionary");
    return 0;
  }
  if (d->nchunks > d->chunks_cap || d->npending > d->pending_cap)
    return check_err(cc, "order sizes past capacities");
  uint64_t total = 0;
  const uint8_t *prev = NULL;
  size_t prev_len = 0;
  for (uint32_t c = 0; c < d->nchunks; c++) {
    int rc = check_chunk(cc, d, c);
    if (rc) return rc;
    const ix_chunk *ch = &d->chunks[c];
    for (uint32_t i = 0; i < ch->n; i++) {
      size_t len;
      const uint8_t *k = ent_key(d, ch->v[i], &len);
      if (prev && key_cmp_raw(prev, prev_len, k, len) >= 0)
        return check_err(cc, "chunk %u [%u]: key out of order", c, i);
      prev = k;
      prev_len = len;
    }
    total += ch->n;
  }
  for (uint32_t j = 0; j < d->npending; j++) {
    uint32_t e = d->pending[j];
    if (e >= d->nents || !d->ents[e].post || (cc->mark[e] & CHECK_IN_ORDER))
      return check_err(cc, "pending key %u names entry %u", j, e);
    cc->mark[e] |= CHECK_IN_ORDER;
  }
  total += d->npending;
  if (total != d->live)
    return check_err(cc, "%llu keys in the order for %u keys",
                     (unsigned long long)total, d->live);
  return 0;
}

/* Staged pairs (bulk mode) name live entries and slots below the limit. */
static int check_stage(check_ctx *cc, const ix_dict *d, bool bulk) {
  if (!bulk && (d->nstage || d->npending))
    return check_err(cc, "staged slots or pending keys outside bulk mode");
  if (d->nstage > d->stage_cap) return check_err(cc, "stage past capacity");
  for (size_t i = 0; i < d->nstage; i++) {
    uint32_t e = (uint32_t)(d->stage[i] >> 32), s = (uint32_t)d->stage[i];
    if (e >= d->nents || !d->ents[e].post || s >= cc->slot_limit)
      return check_err(cc, "staged pair %zu: entry %u slot %u", i, e, s);
  }
  return 0;
}

static int check_dict(check_ctx *cc, const ix_dict *d, bool bulk) {
  uint8_t *mark = calloc(d->nents ? d->nents : 1, 1);
  if (!mark) return -ENOMEM;
  cc->mark = mark;
  int rc = check_entries(cc, d);
  if (!rc) rc = check_tab(cc, d);
  if (!rc) rc = check_order(cc, d);
  if (!rc) rc = check_stage(cc, d, bulk);
  cc->mark = NULL;
  free(mark);
  return rc;
}

int ix_check(const ix_index *ix, uint32_t slot_limit, char *errbuf,
             size_t errlen) {
  if (errbuf && errlen) errbuf[0] = '\0';
  size_t words = ((size_t)slot_limit + 63) / 64;
  uint64_t *seen = calloc(words ? words : 1, sizeof(uint64_t));
  if (!seen) return -ENOMEM;
  check_ctx cc = {errbuf, errlen, slot_limit, "", NULL, NULL};
  char what[32];
  cc.what = what;
  int rc = 0;
  for (int f = 0; f < CS_FIELD_COUNT && !rc; f++) {
    snprintf(what, sizeof what, "exact %d", f);
    if (!ix->exact[f].sorted) {
      rc = check_err(&cc, "not sorted");
      break;
    }
    memset(seen, 0, words * sizeof(uint64_t));
    cc.seen = seen; /* invariant 3: one value per field and slot */
    rc = check_dict(&cc, &ix->exact[f], ix->bulk);
    cc.seen = NULL;
    if (rc) break;
    snprintf(what, sizeof what, "words %d", f);
    if (!ix->words[f].sorted)
      rc = check_err(&cc, "not sorted");
    else if (f == CS_PHONE && ix->words[f].live)
      rc = check_err(&cc, "phone has words");
    else
      rc = check_dict(&cc, &ix->words[f], ix->bulk);
  }
  for (int r = 0; r < IX_NREV && !rc; r++) {
    snprintf(what, sizeof what, "reversed %d", r);
    memset(seen, 0, words * sizeof(uint64_t));
    cc.seen = seen;
    rc = ix->rev[r].sorted ? check_dict(&cc, &ix->rev[r], ix->bulk)
                           : check_err(&cc, "not sorted");
    cc.seen = NULL;
  }
  if (!rc) {
    snprintf(what, sizeof what, "meta");
    rc = ix->meta.sorted ? check_err(&cc, "sorted")
                         : check_dict(&cc, &ix->meta, ix->bulk);
  }
  free(seen);
  return rc;
}
