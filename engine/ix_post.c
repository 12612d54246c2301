/*
 * ix_post.c: posting lists, the sets of slots behind each dictionary key.
 *
 * Why a file of their own: a list changes representation as it grows and
 * shrinks (one inline slot, a sorted array, a CRoaring bitmap; see
 * ix_int.h), and every change of representation must keep the dictionary's
 * bookkeeping exact: the bytes held by arrays (arr_bytes, for
 * ix_memory_bytes) and the list of entries whose posting is a bitmap (big).
 * Everything that writes a posting goes through here; the read side (card,
 * walk) is inline in ix_int.h.
 *
 * Invariants kept: a list stays strictly increasing; an array holds
 * 2..IX_ARRAY_MAX slots, a bitmap is in d->big exactly while it is the
 * entry's posting; a failed allocation leaves the list as it was.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"

size_t rb_bytes(const roaring_bitmap_t *r) {
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

void big_remove(ix_dict *d, uint32_t e) {
  for (uint32_t i = 0; i < d->nbig; i++)
    if (d->big[i] == e) {
      d->big[i] = d->big[--d->nbig];
      return;
    }
  /* a bitmap missing from big: ix_memory_bytes and the checks go wrong */
  CS_ASSERT(!"bitmap posting not in the big list");
}

int big_add(ix_dict *d, uint32_t e) {
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

void post_free(ix_dict *d, ix_post p) {
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

ix_arr *arr_new(ix_dict *d, uint32_t cap) {
  ix_arr *a = malloc(sizeof(ix_arr) + (size_t)cap * 4);
  if (!a) return NULL;
  a->n = 0;
  a->cap = cap;
  d->arr_bytes += arr_bytes(cap);
  return a;
}

/* Every case of post_add (ix_int.h), the inline ones included. */
int post_add_slow(ix_dict *d, uint32_t e, uint32_t slot) {
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
  /* The binary search is only right over a sorted list: check the
   * neighbours the new slot goes between. */
  CS_ASSERT((i == 0 || a->v[i - 1] < slot) && (i == a->n || a->v[i] > slot));
  if (a->n == IX_ARRAY_MAX) {
    roaring_bitmap_t *r;
    if (post_to_bitmap(d, e, p, a->v, a->n, &r)) return -ENOMEM;
    roaring_bitmap_add(r, slot);
    return 0;
  }
  if (a->n == a->cap) {
    /* by a quarter: arrays are loaded and fitted to their size, and
     * doubling on the first insert after would double them all */
    uint32_t cap = a->cap + a->cap / 4 + 2;
    if (cap > IX_ARRAY_MAX) cap = IX_ARRAY_MAX;
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
void post_remove(ix_dict *d, uint32_t e, uint32_t slot) {
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

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Adds slots[0..k) (any order, duplicates allowed) to entry e's list in
 * one step; slots must have room for IX_ARRAY_MAX more in front of it.
 * 0 or -ENOMEM, which leaves the list as it was. */
int post_add_many(ix_dict *d, uint32_t e, uint32_t *slots, size_t k) {
  ix_post p = d->ents[e].post;
  if (POST_IS_RB(p)) {
    roaring_bitmap_add_many(POST_RB(p), k, slots);
    return 0;
  }
  /* build existing + new in the room in front of slots */
  uint32_t n = POST_IS_ONE(p) ? 1 : POST_ARR(p)->n;
  const uint32_t *old = POST_IS_ONE(p) ? NULL : POST_ARR(p)->v;
  uint32_t one = POST_ONE(p);
  uint32_t *all = slots - n;
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

/* Gives back the slack of growth by doubling in entry e's list (after a
 * bulk load). Best effort: a list that cannot be shrunk stays as it is. */
void post_fit(ix_dict *d, uint32_t e) {
  ix_post p = d->ents[e].post;
  if (!p || POST_IS_ONE(p)) return;
  if (POST_IS_RB(p)) {
    roaring_bitmap_shrink_to_fit(POST_RB(p));
    return;
  }
  ix_arr *a = POST_ARR(p);
  if (a->cap == a->n) return;
  ix_arr *b = realloc(a, sizeof(ix_arr) + (size_t)a->n * 4);
  if (!b) return;
  d->arr_bytes -= arr_bytes(b->cap) - arr_bytes(b->n);
  b->cap = b->n;
  d->ents[e].post = (uint64_t)(uintptr_t)b;
}
