/*
 * ix_qwalk.c: walks of a field's dictionary against a match set, for the
 * sorts (ixq_walk, in key order from a position) and the facets
 * (ixq_count_keys, every key with matches, counted), and the per-slot
 * facts a query reads (times, a key's first slot).
 *
 * Why a bit per slot: a walk tests many slots of many posting lists for
 * membership in the match set; CRoaring's contains is a binary search
 * within a container, a bit test one load, so once a walk has tested a
 * fair share of the set's size it builds the bits and tests those.
 *
 * Reads only (invariant 4 of ix_int.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"

uint64_t ixq_keys(const ix_index *ix, int field) {
  return ix->exact[field].live;
}

int ixq_times(const ix_index *ix, uint32_t slot, int64_t *created_ms,
              int64_t *updated_ms) {
  if (slot >= ix->ntms) return CS_EINVAL;
  *created_ms = ix->tms[2 * (size_t)slot];
  *updated_ms = ix->tms[2 * (size_t)slot + 1];
  return 0;
}

int ixq_first_slot(const ix_index *ix, uint32_t account, int field,
                   const char *key, size_t len, uint32_t *slot) {
  ix_post p = dict_post(&ix->exact[field], account, key, len);
  if (!p) return CS_ENOTFOUND;
  if (POST_IS_ONE(p))
    *slot = POST_ONE(p);
  else if (POST_IS_RB(p))
    *slot = roaring_bitmap_minimum(POST_RB(p));
  else
    *slot = POST_ARR(p)->v[0];
  return 0;
}

/* A match set as one bit per slot, for a walk that tests many slots:
 * CRoaring's contains is a binary search within a container, a bit test is
 * one load from a block of slots / 8 bytes. */
typedef struct dense {
  uint64_t *bits;
  uint32_t words;
} dense;

/* Bits for every slot below limit (every slot the index holds: ntms) and
 * r's, so that a posting's slots need no bounds check. */
static int dense_make(dense *dn, const roaring_bitmap_t *r, uint32_t limit) {
  uint32_t max = roaring_bitmap_maximum(r);
  if (max < limit) max = limit;
  dn->words = max / 64 + 1;
  if (!(dn->bits = calloc(dn->words, sizeof(uint64_t)))) return -ENOMEM;
  uint32_t buf[1024];
  roaring_uint32_iterator_t it;
  roaring_init_iterator(r, &it);
  uint32_t n;
  while ((n = roaring_read_uint32_iterator(&it, buf, 1024)))
    for (uint32_t i = 0; i < n; i++)
      dn->bits[buf[i] >> 6] |= 1ull << (buf[i] & 63);
  return 0;
}

static inline bool in_set(const dense *dn, const roaring_bitmap_t *r,
                          uint32_t x) {
  if (!dn->bits) return roaring_bitmap_contains(r, x);
  return x >> 6 < dn->words && (dn->bits[x >> 6] >> (x & 63) & 1);
}

/* The slots of p that are in r, ascending, into *buf (grown); their
 * number. -1 when out of memory. */
static int64_t post_in(ix_post p, const roaring_bitmap_t *r, const dense *dn,
                       uint32_t **buf, size_t *cap) {
  uint64_t n = post_card(p);
  if (n > *cap) {
    size_t c = *cap ? *cap : 256;
    while (c < n)
      c *= 2;
    uint32_t *b = realloc(*buf, c * sizeof(uint32_t));
    if (!b) return -1;
    *buf = b;
    *cap = c;
  }
  int64_t k = 0;
  if (POST_IS_ONE(p)) {
    if (in_set(dn, r, POST_ONE(p))) (*buf)[k++] = POST_ONE(p);
  } else if (POST_IS_RB(p)) {
    roaring_bitmap_t *x = roaring_bitmap_and(POST_RB(p), r);
    if (!x) return -1;
    roaring_bitmap_to_uint32_array(x, *buf);
    k = (int64_t)roaring_bitmap_get_cardinality(x);
    ixq_set_free(x);
  } else {
    const ix_arr *a = POST_ARR(p);
    for (uint32_t i = 0; i < a->n; i++)
      if (in_set(dn, r, a->v[i])) (*buf)[k++] = a->v[i];
  }
  return k;
}

/* A bitmap posting's slots in r by their bits: a list of many slots
 * crosses every container of r, a bit test per slot does not. */
static uint64_t rb_count_dense(const roaring_bitmap_t *p, const dense *dn) {
  uint32_t buf[1024], n;
  uint64_t k = 0;
  roaring_uint32_iterator_t it;
  roaring_init_iterator(p, &it);
  while ((n = roaring_read_uint32_iterator(&it, buf, 1024)))
    for (uint32_t i = 0; i < n; i++)
      k += buf[i] >> 6 < dn->words &&
           (dn->bits[buf[i] >> 6] >> (buf[i] & 63) & 1);
  return k;
}

static uint64_t post_count_in(ix_post p, const roaring_bitmap_t *r,
                              const dense *dn) {
  if (POST_IS_ONE(p)) return in_set(dn, r, POST_ONE(p));
  if (POST_IS_RB(p))
    return dn->bits ? rb_count_dense(POST_RB(p), dn)
                    : roaring_bitmap_and_cardinality(POST_RB(p), r);
  const ix_arr *a = POST_ARR(p);
  uint64_t k = 0;
  if (dn->bits) { /* every slot is below the bits' end: no branch */
    for (uint32_t i = 0; i < a->n; i++)
      k += dn->bits[a->v[i] >> 6] >> (a->v[i] & 63) & 1;
    return k;
  }
  for (uint32_t i = 0; i < a->n; i++)
    k += in_set(dn, r, a->v[i]);
  return k;
}

int ixq_walk(const ix_index *ix, uint32_t account, int field, bool desc,
             const cs_str *from, const roaring_bitmap_t *r, ixq_walk_fn fn,
             void *ctx) {
  const ix_dict *d = &ix->exact[field];
  uint8_t acct[4];
  acct_be(account, acct);
  /* (c, i): the next key to visit going up, or the one after the next
   * going down */
  uint32_t c, i;
  if (from)
    order_lower(d, account, from->ptr, from->len, &c, &i);
  else
    order_lower(d, desc ? account + 1 : account, "", 0, &c, &i);
  if (desc && from && c < d->nchunks && i < d->chunks[c].n) {
    /* down from the last key <= from: that one too when it is from */
    size_t klen;
    const uint8_t *k = ent_key(d, d->chunks[c].v[i], &klen);
    if (key_cmp(k, klen, acct, from->ptr, from->len) == 0) i++;
  }
  uint32_t *buf = NULL;
  size_t cap = 0;
  int rc = 0;
  /* Once the walk has tested a quarter as many slots as r holds (and a
   * few), a bit per slot of r pays for itself: filling it costs about a
   * tenth of a contains per slot of r, and each test after is that much
   * cheaper. */
  dense dn = {NULL, 0};
  uint64_t tested = 0, card = roaring_bitmap_get_cardinality(r);
  for (;;) {
    uint32_t e;
    if (!desc) {
      while (c < d->nchunks && i >= d->chunks[c].n)
        c++, i = 0;
      if (c >= d->nchunks) break;
      e = d->chunks[c].v[i++];
    } else {
      while (i == 0 && c > 0)
        i = d->chunks[--c].n;
      if (i == 0) break;
      e = d->chunks[c].v[--i];
    }
    size_t klen;
    const uint8_t *k = ent_key(d, e, &klen);
    if (memcmp(k, acct, 4)) break;
    ix_post p = d->ents[e].post;
    if (!dn.bits && tested > card / 4 + 1024 && dense_make(&dn, r, ix->ntms)) {
      rc = -ENOMEM;
      break;
    }
    if (!POST_IS_RB(p)) tested += post_card(p);
    int64_t n = post_in(p, r, &dn, &buf, &cap);
    if (n < 0) {
      rc = -ENOMEM;
      break;
    }
    if (!n) continue;
    cs_str key = {(const char *)k + 4, klen - 4};
    if ((rc = fn(ctx, key, buf, (uint64_t)n))) break;
  }
  free(buf);
  free(dn.bits);
  return rc > 0 ? 0 : rc;
}

int ixq_count_keys(const ix_index *ix, int field, const roaring_bitmap_t *r,
                   ixq_walk_fn fn, void *ctx) {
  const ix_dict *d = &ix->exact[field];
  dense dn = {NULL, 0};
  if (!roaring_bitmap_is_empty(r) && dense_make(&dn, r, ix->ntms))
    return -ENOMEM;
  int rc = 0;
  /* Entry order, not key order: the entries are read one after the other
   * and a key is read only when it has matches (only the account's keys
   * can: r holds the account's slots alone). */
  for (uint32_t e = 0; e < d->nents && !rc; e++) {
    ix_post p = d->ents[e].post;
    if (!p || !dn.bits) continue;
    uint64_t n = post_count_in(p, r, &dn);
    if (!n) continue;
    size_t klen;
    const uint8_t *k = ent_key(d, e, &klen);
    rc = fn(ctx, (cs_str){(const char *)k + 4, klen - 4}, NULL, n);
  }
  free(dn.bits);
  return rc > 0 ? 0 : rc;
}
