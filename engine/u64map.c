/*
 * u64map.c: the u64 -> u64 map of u64map.h. Its invariants are there.
 */
#include "u64map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The first capacity: small maps (a few accounts) stay one allocation. */
#define U64MAP_CAP_MIN 1024

static int u64map_grow(u64map *m) {
  size_t cap = m->keys ? (m->mask + 1) * 2 : U64MAP_CAP_MIN;
  uint64_t *keys = calloc(cap, sizeof *keys);
  uint64_t *vals = malloc(cap * sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return -ENOMEM;
  }
  if (m->keys) {
    for (size_t i = 0; i <= m->mask; i++) {
      if (!m->keys[i]) continue;
      size_t j = u64_mix(m->keys[i]) & (cap - 1);
      while (keys[j])
        j = (j + 1) & (cap - 1);
      keys[j] = m->keys[i];
      vals[j] = m->vals[i];
    }
  }
  free(m->keys);
  free(m->vals);
  m->keys = keys;
  m->vals = vals;
  m->mask = cap - 1;
  return 0;
}

int u64map_put(u64map *m, uint64_t key, uint64_t val) {
  if (!m->keys || (m->count + 1) * 4 > (m->mask + 1) * 3) {
    int rc = u64map_grow(m);
    if (rc) return rc;
  }
  size_t j = u64_mix(key) & m->mask;
  while (m->keys[j] && m->keys[j] != key)
    j = (j + 1) & m->mask;
  if (!m->keys[j]) {
    m->keys[j] = key;
    m->count++;
  }
  m->vals[j] = val;
  return 0;
}

uint64_t *u64map_get(const u64map *m, uint64_t key) {
  if (!m->keys) return NULL;
  size_t j = u64_mix(key) & m->mask;
  while (m->keys[j]) {
    if (m->keys[j] == key) return &m->vals[j];
    j = (j + 1) & m->mask;
  }
  return NULL;
}

void u64map_free(u64map *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}
