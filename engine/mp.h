/*
 * mp.h: the few msgpack helpers every engine format shares: packing a
 * string key, matching a key, finding a key in a map. Records (record.c),
 * snapshots (snap.c) and the manifest (dir.c) are msgpack maps with string
 * keys; one matcher means one rule for what a key is (a str object of
 * exactly these bytes; never a bin, never a prefix).
 *
 * Private to the engine; the index's image reader (ix_snap.c) uses it too.
 */
#ifndef CS_MP_H
#define CS_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <msgpack.h>

/* Is o a string of exactly the n bytes at s? */
static inline bool mp_str_is(const msgpack_object *o, const char *s, size_t n) {
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
         memcmp(o->via.str.ptr, s, n) == 0;
}

/* The same for a string literal, its length known at compile time. */
#define MP_KEY_IS(o, lit) mp_str_is((o), (lit), sizeof(lit) - 1)

/* The value of key k (a NUL-terminated string) in map m, or NULL when m is
 * not a map or has no such key. */
static inline const msgpack_object *mp_map_get(const msgpack_object *m,
                                               const char *k) {
  if (m->type != MSGPACK_OBJECT_MAP) return NULL;
  size_t n = strlen(k);
  for (uint32_t i = 0; i < m->via.map.size; i++)
    if (mp_str_is(&m->via.map.ptr[i].key, k, n)) return &m->via.map.ptr[i].val;
  return NULL;
}

/* Packs a NUL-terminated string as a msgpack str. */
static inline void mp_pack_cstr(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

#endif
