/*
 * idem.c: the idempotency table (see idem.h).
 */
#include "idem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cs_assert.h"
#include "mp.h"

/* When this many chain heads have emptied (and more than live entries),
 * the head map is rebuilt, so that keys seen once do not keep a cell
 * forever. */
#define IDEM_REBUILD_EMPTY_MIN 4096

static uint64_t key_hash(uint32_t account, const char *key, size_t len) {
  uint64_t h = XXH3_64bits_withSeed(key, len, (uint64_t)account + 1);
  return h ? h : 1; /* 0 marks an empty cell of the map */
}

static idem_ent *head_of(const idem_table *t, uint64_t hash) {
  uint64_t *v = u64map_get(&t->heads, hash);
  return v ? (idem_ent *)(uintptr_t)*v : NULL;
}

static int set_head(idem_table *t, uint64_t hash, idem_ent *e) {
  return u64map_put(&t->heads, hash, (uint64_t)(uintptr_t)e);
}

static void list_unlink(idem_table *t, idem_ent *e) {
  if (e->prev)
    e->prev->next = e->next;
  else if (t->first == e)
    t->first = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else if (t->last == e)
    t->last = e->prev;
  e->prev = e->next = NULL;
}

static void list_append(idem_table *t, idem_ent *e) {
  e->prev = t->last;
  e->next = NULL;
  if (t->last)
    t->last->next = e;
  else
    t->first = e;
  t->last = e;
}

/* Rebuilds the head map from the chains when many cells went empty. */
static void maybe_rebuild(idem_table *t) {
  if (t->empty_heads < IDEM_REBUILD_EMPTY_MIN || t->empty_heads < t->count)
    return;
  u64map fresh = {0};
  for (size_t i = 0; t->heads.keys && i <= t->heads.mask; i++) {
    if (!t->heads.keys[i] || !t->heads.vals[i]) continue;
    if (u64map_put(&fresh, t->heads.keys[i], t->heads.vals[i])) {
      u64map_free(&fresh); /* keep the old map: it still works */
      return;
    }
  }
  u64map_free(&t->heads);
  t->heads = fresh;
  t->empty_heads = 0;
}

void idem_remove(idem_table *t, idem_ent *e) {
  idem_ent *h = head_of(t, e->hash), **pp = &h;
  while (*pp && *pp != e)
    pp = &(*pp)->chain;
  CS_ASSERT(*pp == e);
  *pp = e->chain;
  /* Setting an existing key never allocates. */
  set_head(t, e->hash, h);
  if (!h) t->empty_heads++;
  if (e->state != IDEM_RESERVED) list_unlink(t, e);
  t->count--;
  t->bytes -= sizeof *e + e->key_len + e->body_len;
  free(e->key);
  free(e);
  maybe_rebuild(t);
}

void idem_free(idem_table *t) {
  for (size_t i = 0; t->heads.keys && i <= t->heads.mask; i++) {
    if (!t->heads.keys[i]) continue; /* an empty cell: no value */
    idem_ent *e = (idem_ent *)(uintptr_t)t->heads.vals[i];
    while (e) {
      idem_ent *next = e->chain;
      free(e->key);
      free(e);
      e = next;
    }
  }
  u64map_free(&t->heads);
  memset(t, 0, sizeof *t);
}

/* Drops committed entries whose time is up. */
static void expire(idem_table *t, int64_t now) {
  while (t->first && t->first->state == IDEM_DONE &&
         t->first->expires_ms <= now)
    idem_remove(t, t->first);
}

idem_ent *idem_find(idem_table *t, uint32_t account, const char *key,
                    size_t len, int64_t now) {
  expire(t, now);
  uint64_t h = key_hash(account, key, len);
  for (idem_ent *e = head_of(t, h); e; e = e->chain)
    if (e->account == account && e->key_len == len &&
        memcmp(e->key, key, len) == 0)
      return e;
  return NULL;
}

/* A new entry with room for a body of body_len, linked into its chain. */
static idem_ent *ent_new(idem_table *t, uint32_t account, const char *key,
                         size_t len, size_t body_len) {
  idem_ent *e = calloc(1, sizeof *e);
  char *mem = malloc(len + body_len + 1);
  uint64_t h = key_hash(account, key, len);
  uint64_t *cell = u64map_get(&t->heads, h);
  idem_ent *head = cell ? (idem_ent *)(uintptr_t)*cell : NULL;
  bool reuses_empty = cell && !head;
  if (!e || !mem || set_head(t, h, e)) {
    free(e);
    free(mem);
    return NULL;
  }
  if (reuses_empty && t->empty_heads) t->empty_heads--;
  e->chain = head;
  e->hash = h;
  e->account = account;
  memcpy(mem, key, len);
  e->key = mem;
  e->key_len = len;
  e->body = mem + len;
  t->count++;
  t->bytes += sizeof *e + len;
  return e;
}

idem_ent *idem_reserve(idem_table *t, uint32_t account, const char *key,
                       size_t len, const uint8_t fp[CS_IDEM_FP_BYTES]) {
  idem_ent *e = ent_new(t, account, key, len, 0);
  if (!e) return NULL;
  e->state = IDEM_RESERVED;
  memcpy(e->fp, fp, CS_IDEM_FP_BYTES);
  return e;
}

int idem_fill(idem_table *t, idem_ent *e, const cs_answer *a,
              int64_t expires_ms, uint64_t seq) {
  CS_ASSERT(e->state == IDEM_RESERVED);
  char *mem = malloc(e->key_len + a->body.len + 1);
  if (!mem) return -ENOMEM;
  memcpy(mem, e->key, e->key_len);
  if (a->body.len) memcpy(mem + e->key_len, a->body.ptr, a->body.len);
  free(e->key);
  e->key = mem;
  e->body = mem + e->key_len;
  e->body_len = a->body.len;
  e->status = a->status;
  e->type = a->type;
  e->expires_ms = expires_ms;
  e->seq = seq;
  e->state = IDEM_PENDING;
  t->bytes += a->body.len;
  list_append(t, e);
  return 0;
}

int idem_load(idem_table *t, uint32_t account, const rec_idem *r, uint64_t seq,
              int64_t now) {
  idem_ent *old = idem_find(t, account, r->key.ptr, r->key.len, now);
  if (old) idem_remove(t, old);
  if (r->expires_ms <= now) return 0;
  idem_ent *e = ent_new(t, account, r->key.ptr, r->key.len, r->body.len);
  if (!e) return -ENOMEM;
  if (r->body.len) memcpy(e->body, r->body.ptr, r->body.len);
  e->body_len = r->body.len;
  t->bytes += r->body.len;
  memcpy(e->fp, r->fp, CS_IDEM_FP_BYTES);
  e->status = r->status;
  e->type = r->type;
  e->expires_ms = r->expires_ms;
  e->seq = seq;
  e->state = IDEM_DONE;
  list_append(t, e);
  return 0;
}

void idem_to_rec(const idem_ent *e, rec_idem *out) {
  *out = (rec_idem){
      .present = true,
      .key = {e->key, e->key_len},
      .fp = e->fp,
      .status = e->status,
      .type = e->type,
      .body = {e->body, e->body_len},
      .expires_ms = e->expires_ms,
  };
}

/* ------------------------------------------------------------ snapshots */

void idem_pack(const idem_table *t, msgpack_packer *pk, uint64_t upto) {
  size_t n = 0;
  for (const idem_ent *e = t->first; e; e = e->next)
    n += e->seq <= upto;
  msgpack_pack_array(pk, n);
  for (const idem_ent *e = t->first; e; e = e->next) {
    if (e->seq > upto) continue;
    msgpack_pack_array(pk, 8);
    msgpack_pack_uint32(pk, e->account);
    msgpack_pack_uint64(pk, e->seq);
    msgpack_pack_str(pk, e->key_len);
    msgpack_pack_str_body(pk, e->key, e->key_len);
    msgpack_pack_bin(pk, CS_IDEM_FP_BYTES);
    msgpack_pack_bin_body(pk, e->fp, CS_IDEM_FP_BYTES);
    msgpack_pack_uint16(pk, e->status);
    msgpack_pack_uint8(pk, e->type);
    msgpack_pack_bin(pk, e->body_len);
    msgpack_pack_bin_body(pk, e->body, e->body_len);
    msgpack_pack_int64(pk, e->expires_ms);
  }
}

int idem_unpack(idem_table *t, const msgpack_object *o, int64_t now,
                const char **why) {
  if (o->type != MSGPACK_OBJECT_ARRAY) {
    *why = "idempotency entries are not an array";
    return CS_ECORRUPT;
  }
  for (uint32_t i = 0; i < o->via.array.size; i++) {
    const msgpack_object *a = &o->via.array.ptr[i];
    const msgpack_object *v = a->via.array.ptr;
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 8 ||
        v[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        v[0].via.u64 > CS_ACCOUNT_ID_MAX ||
        v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        v[2].type != MSGPACK_OBJECT_STR || v[2].via.str.size == 0 ||
        v[2].via.str.size > CS_IDEM_KEY_MAX_BYTES ||
        v[3].type != MSGPACK_OBJECT_BIN ||
        v[3].via.bin.size != CS_IDEM_FP_BYTES ||
        v[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER || v[4].via.u64 < 100 ||
        v[4].via.u64 > 599 || v[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        v[5].via.u64 > CS_ANSWER_TEXT || v[6].type != MSGPACK_OBJECT_BIN ||
        v[6].via.bin.size > CS_IDEM_ANSWER_MAX_BYTES ||
        (v[7].type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
         v[7].type != MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
      *why = "an idempotency entry has the wrong shape";
      return CS_ECORRUPT;
    }
    rec_idem r = {
        .present = true,
        .key = {v[2].via.str.ptr, v[2].via.str.size},
        .fp = (const uint8_t *)v[3].via.bin.ptr,
        .status = (uint16_t)v[4].via.u64,
        .type = (uint8_t)v[5].via.u64,
        .body = {v[6].via.bin.ptr, v[6].via.bin.size},
        .expires_ms = v[7].via.i64,
    };
    int rc = idem_load(t, (uint32_t)v[0].via.u64, &r, v[1].via.u64, now);
    if (rc) {
      *why = "out of memory";
      return rc;
    }
  }
  return 0;
}
