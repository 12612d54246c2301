/*
 * qfacet.c: a query's facets, the most common keys of a field among all
 * its matches.
 *
 * Why two ways: over many matches, the field's dictionary is walked and
 * each key counted as the size of its posting list within the match set
 * (a bitmap intersection count, no record read); over few matches, their
 * records are read and their keys counted in a hash map, which is cheaper
 * than visiting every key of the account. Either way the counts are exact.
 * The value shown for a key is the one stored on the account's lowest id
 * holding it (the first slot of its posting list), matching or not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "err.h"
#include "pindex.h"
#include "qry_int.h"

typedef struct fkey {
  cs_str key;
  uint64_t count;
  uint32_t next; /* the next key of the same hash, + 1; 0: none */
} fkey;

typedef struct fcount {
  fkey *v;
  size_t n, cap;
  u64map where; /* hash of a key (never 0) -> its index + 1 */
  qrun *r;
} fcount;

static int fcount_push(fcount *fc, cs_str key, uint64_t count) {
  if (fc->n == fc->cap) {
    size_t cap = fc->cap ? fc->cap * 2 : 256;
    fkey *v = realloc(fc->v, cap * sizeof(fkey));
    if (!v) return -ENOMEM;
    fc->v = v;
    fc->cap = cap;
  }
  fc->v[fc->n++] = (fkey){key, count, 0};
  return 0;
}

/* Counts one more contact with key (a copy of it is kept when new). */
static int fcount_add(fcount *fc, cs_str key) {
  uint64_t h = XXH3_64bits(key.ptr, key.len) | 1u;
  uint64_t *at = u64map_get(&fc->where, h);
  uint32_t last = 0;
  for (uint32_t i = at ? (uint32_t)*at : 0; i; i = fc->v[i - 1].next) {
    last = i;
    if (fc->v[i - 1].key.len == key.len &&
        !memcmp(fc->v[i - 1].key.ptr, key.ptr, key.len)) {
      fc->v[i - 1].count++;
      return 0;
    }
  }
  if (fcount_push(fc, key, 1)) return -ENOMEM;
  if (last) {
    fc->v[last - 1].next = (uint32_t)fc->n;
    return 0;
  }
  return u64map_put(&fc->where, h, fc->n);
}

static int walk_count(void *ctx, cs_str key, const uint32_t *slots,
                      uint64_t n) {
  (void)slots;
  return fcount_push(ctx, key, n) ? -ENOMEM : 0;
}

static int fkey_cmp(const void *a, const void *b) {
  const fkey *x = a, *y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  size_t m = x->key.len < y->key.len ? x->key.len : y->key.len;
  int c = m ? memcmp(x->key.ptr, y->key.ptr, m) : 0;
  if (c) return c;
  return (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

/* Sifts v[k] down the heap v[0..n) whose root is its worst key. */
static void heap_down(fkey *v, size_t n, size_t k) {
  for (;;) {
    size_t l = 2 * k + 1, m = k;
    if (l < n && fkey_cmp(&v[l], &v[m]) > 0) m = l;
    if (l + 1 < n && fkey_cmp(&v[l + 1], &v[m]) > 0) m = l + 1;
    if (m == k) return;
    fkey t = v[k];
    v[k] = v[m];
    v[m] = t;
    k = m;
  }
}

/* Puts the top best keys of v[0..n) first, in order: a heap of the best
 * top seen so far (the worst at its root) in v[0..top), then a sort of
 * those alone, so that a field of a million keys is not sorted to show a
 * hundred. */
static void top_first(fkey *v, size_t n, size_t top) {
  if (!top) return;
  for (size_t k = top / 2; k-- > 0;)
    heap_down(v, top, k);
  for (size_t i = top; i < n; i++) {
    if (fkey_cmp(&v[i], &v[0]) >= 0) continue;
    v[0] = v[i];
    heap_down(v, top, 0);
  }
  qsort(v, top, sizeof(fkey), fkey_cmp);
}

/* The counts of field's keys among the matches. */
static int count_keys(qrun *r, int field, fcount *fc) {
  uint64_t card = roaring_bitmap_get_cardinality(r->match);
  if (card * 16 >= ixq_keys(r->s->ix, field)) {
    int rc = ixq_count_keys(r->s->ix, field, r->match, walk_count, fc);
    return rc ? cs_err(r->err, rc, "out of memory") : 0;
  }
  roaring_uint32_iterator_t it;
  roaring_init_iterator(r->match, &it);
  for (; it.has_value; roaring_advance_uint32_iterator(&it)) {
    cs_str key;
    bool missing;
    int rc = qrun_key(r, it.current_value, field, &key, &missing);
    if (!rc && !missing && fcount_add(fc, key))
      rc = cs_err(r->err, -ENOMEM, "out of memory");
    if (rc) return rc;
  }
  return 0;
}

/* The top keys of field with the values to show, into out. */
static int one_facet(qrun *r, int field, cs_facet *out) {
  fcount fc = {.r = r};
  int rc = count_keys(r, field, &fc);
  size_t top = fc.n < CS_QUERY_FACET_VALUES ? fc.n : CS_QUERY_FACET_VALUES;
  out->field = field;
  if (!rc) top_first(fc.v, fc.n, top);
  if (!rc && top &&
      !(out->values =
            msgpack_zone_malloc(r->mem, top * sizeof(cs_facet_value))))
    rc = cs_err(r->err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < top && !rc; i++) {
    cs_facet_value *fv = &out->values[i];
    const char *k = qrun_dup(r, fc.v[i].key.ptr, fc.v[i].key.len);
    uint32_t slot;
    rec_body b;
    if (!k) {
      rc = cs_err(r->err, -ENOMEM, "out of memory");
      break;
    }
    fv->key = (cs_str){k, fc.v[i].key.len};
    fv->count = fc.v[i].count;
    fv->value = fv->key;
    if (ixq_first_slot(r->s->ix, r->q->account, field, k, fv->key.len, &slot))
      continue; /* cannot be: the key has matches */
    msgpack_zone_clear(&r->rz);
    if ((rc = store_read_slot(r->s, slot, &r->rz, &b, r->err))) break;
    if (b.contact.field[field].ptr) fv->value = b.contact.field[field];
  }
  if (!rc) out->count = (uint32_t)top;
  free(fc.v);
  u64map_free(&fc.where);
  return rc;
}

int qfacet_count(qrun *r, cs_facet *out) {
  for (uint32_t i = 0; i < r->q->nfacets; i++) {
    int rc = one_facet(r, r->q->facets[i], &out[i]);
    if (rc) return rc;
  }
  return 0;
}
