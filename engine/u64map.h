/*
 * u64map.h: the engine's one u64 -> u64 hash map (open addressing, linear
 * probing, a power-of-two capacity at most three quarters full). Used for
 * the per-account contact counts and a bulk load's case-folded emails.
 *
 * Invariants: key 0 is never stored (0 marks an empty cell); entries are
 * never removed, so a probe ends at the first empty cell.
 */
#ifndef CS_U64MAP_H
#define CS_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct u64map {
  uint64_t *keys;
  uint64_t *vals;
  size_t mask; /* capacity - 1; capacity a power of two */
  size_t count;
} u64map;

/* Sets key (not 0) to val. 0 or -ENOMEM (the map is left as it was). */
int u64map_put(u64map *m, uint64_t key, uint64_t val);
/* Returns a pointer to the value, or NULL. Valid until the next put. */
uint64_t *u64map_get(const u64map *m, uint64_t key);
/* Frees the map and leaves it empty, ready for reuse. */
void u64map_free(u64map *m);

/* A 64-bit finaliser (murmur3's): spreads ids, which are sequential, over
 * the buckets. Also the overlay's bucket hash. */
static inline uint64_t u64_mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

#endif
