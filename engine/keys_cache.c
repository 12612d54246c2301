/*
 * keys_cache.c: each thread's memory of the keys it checked last, so that
 * a client sending the same key on every request costs one hash lookup
 * and one constant-time compare instead of a SHA-256 and a scan.
 *
 * An entry holds the key's bytes, the key's cs_key_info and the ring's
 * stamp when the full check found it: a number given to every state of
 * every ring of the process (keys_stamp_next), replaced by each change
 * before its call returns (keys_write_unlock). An entry is used only
 * while its stamp is the ring's, so a revoked key, a moving mark, a
 * reload or a closed ring is seen by the very next check, as without the
 * cache. Only keys the full check found live and not moving are kept.
 * The info pointed to stays valid while the ring is open (entries never
 * move; dropped ones are freed at close), and a closed ring's stamps are
 * never any other ring's.
 *
 * The cached bytes are a key the thread was just given; they stay in the
 * thread's memory until another key takes the entry.
 */
#include "keys_int.h"

#include <stdatomic.h>
#include <string.h>

#include <openssl/crypto.h>
#include <xxhash.h>

#include "cs_limits.h"

_Static_assert((CS_KEYS_CACHE_SLOTS & (CS_KEYS_CACHE_SLOTS - 1)) == 0,
               "a power of two: a slot is the hash's low bits");

typedef struct keys_cached {
  uint64_t stamp; /* 0: empty (no ring state has it) */
  const cs_key_info *info;
  char key[CS_KEY_BYTES];
} keys_cached;

static _Thread_local keys_cached cache[CS_KEYS_CACHE_SLOTS];
static _Atomic uint64_t stamps;

uint64_t keys_stamp_next(void) {
  return atomic_fetch_add_explicit(&stamps, 1, memory_order_relaxed) + 1;
}

static keys_cached *slot_of(const char *key) {
  return &cache[XXH3_64bits(key, CS_KEY_BYTES) & (CS_KEYS_CACHE_SLOTS - 1)];
}

const cs_key_info *keys_cache_get(const cs_keyring *k, const char *key,
                                  size_t len) {
  if (len != CS_KEY_BYTES) return NULL;
  const keys_cached *c = slot_of(key);
  uint64_t now = atomic_load_explicit(&k->stamp, memory_order_acquire);
  if (c->stamp != now || CRYPTO_memcmp(c->key, key, CS_KEY_BYTES) != 0)
    return NULL;
  return c->info;
}

void keys_cache_put(uint64_t stamp, const char *key, size_t len,
                    const cs_key_info *info) {
  if (len != CS_KEY_BYTES) return;
  keys_cached *c = slot_of(key);
  c->stamp = stamp;
  c->info = info;
  memcpy(c->key, key, CS_KEY_BYTES);
}

void keys_write_lock(cs_keyring *k) {
  pthread_rwlock_wrlock(&k->lock);
}

void keys_write_unlock(cs_keyring *k) {
  atomic_store_explicit(&k->stamp, keys_stamp_next(), memory_order_release);
  pthread_rwlock_unlock(&k->lock);
}
