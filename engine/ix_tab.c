/*
 * ix_tab.c: a dictionary's key arena and its hash table.
 *
 * Why: an exact lookup (every exact search, every insert's key) must cost
 * one probe run in a table that holds only 64-bit cells {hash:32 |
 * entry+1:32}, so probing and growing never touch the entries or the keys;
 * and a table of millions of keys must be built (ix_load, ix_bulk_end)
 * without a random write per key. The layout and growth rules are in
 * ix_int.h; the probe itself (dict_find, tab_put) is inline there.
 *
 * Invariants kept: every live entry has exactly one cell, reachable from
 * its home without crossing an empty cell (linear probing, backward shift
 * deletion, no tombstones); a key's bytes stay at their arena offset until
 * arena_compact rewrites the arena and every entry's offset together.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"

/* Makes room in the table for one more key. */
int tab_reserve(ix_dict *d, uint64_t keys, bool bulk) {
  if (d->tab_size && !IX_TAB_FULL(keys, d->tab_size)) return 0;
  /* Small tables double, and all in bulk mode (its end refits them); a
   * large one grows to load 0.56 (10/7 of its keys and a quarter more),
   * not 1/2: 8 bytes a cell over millions of keys is what the index's
   * bytes per contact would show. */
  uint64_t size = keys * 2 > 16 ? keys * 2 : 16;
  if (!bulk && keys * 2 * sizeof(uint64_t) >= IX_HUGE_MIN)
    size = tab_size_for(keys + keys / 4);
  uint64_t *t = ix_huge(calloc(size, sizeof(uint64_t)), size * 8);
  if (!t) return -ENOMEM;
  for (uint64_t i = 0; i < d->tab_size; i++)
    if (d->tab[i]) tab_put(t, size, d->tab[i]);
  free(d->tab);
  d->tab = t;
  d->tab_size = size;
  return 0;
}

void tab_delete(ix_dict *d, uint32_t e, uint32_t h) {
  uint64_t size = d->tab_size;
  uint64_t i = tab_home(h, size);
  /* An empty cell ends the key's run: the key is not in the table, and
   * going on would spin forever or delete another key. */
  while ((uint32_t)d->tab[i] != e + 1) {
    CS_ASSERT(d->tab[i] != 0);
    i = tab_next(i, size);
  }
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
uint64_t *radix_sort(uint64_t *a, uint64_t *tmp, size_t n, int lo, int bits) {
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

int log2_ceil(uint64_t n) {
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
int tab_build(ix_dict *d, uint64_t *cells, size_t n, bool check_dups) {
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
void tab_fit(ix_dict *d) {
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

int arena_reserve(ix_dict *d, uint64_t more, bool bulk) {
  if (d->arena_len + more <= d->arena_cap) return 0;
  uint64_t cap =
      d->arena_cap ? ix_grow(d->arena_cap, d->arena_len + more, 1, bulk) : 4096;
  if (cap < d->arena_len + more) cap = d->arena_len + more;
  if (cap >> IX_OFF_BITS) return -ENOMEM;
  char *p = ix_huge(realloc(d->arena, cap), cap);
  if (!p) return -ENOMEM;
  d->arena = p;
  d->arena_cap = cap;
  return 0;
}

/* Rewrites the arena without the garbage of removed keys. Best effort. */
void arena_compact(ix_dict *d) {
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
