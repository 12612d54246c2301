/*
 * idem.h: idempotency keys (private to the engine): per account, the
 * requests in flight and the answers kept to be given again.
 *
 * An entry is RESERVED from cs_idem_begin until a write carries it
 * (PENDING: queued with its record) or it is released; PENDING becomes
 * DONE once its record is applied. DONE entries expire at expires_ms.
 * Committed entries are listed in commit order, which is also their order
 * of expiry (each is kept CS_IDEM_KEEP_MS from its commit), so expiry
 * pops from the head.
 *
 * Lock: the table has its own mutex (imu in cs_store), a leaf: taken
 * under wmu or ilock, and nothing is taken while it is held.
 */
#ifndef CS_IDEM_H
#define CS_IDEM_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs.h"
#include "record.h"
#include "u64map.h"

typedef enum idem_state {
  IDEM_RESERVED = 1,
  IDEM_PENDING,
  IDEM_DONE,
} idem_state;

typedef struct idem_ent {
  uint64_t hash;
  uint32_t account;
  uint8_t state;
  uint8_t type;
  uint16_t status;
  uint8_t fp[CS_IDEM_FP_BYTES];
  int64_t expires_ms;
  uint64_t seq; /* of the record that carries it (PENDING, DONE) */
  char *key;    /* key_len bytes, then body_len bytes: one allocation */
  size_t key_len;
  char *body;
  size_t body_len;
  struct idem_ent *chain;       /* same hash */
  struct idem_ent *prev, *next; /* the committed list */
} idem_ent;

typedef struct idem_table {
  u64map heads;           /* hash -> chain head (a pointer), 0 for none */
  size_t empty_heads;     /* cells whose chain emptied */
  idem_ent *first, *last; /* PENDING and DONE, in commit order */
  size_t count;
  uint64_t bytes; /* memory the entries hold, for cs_stats */
} idem_table;

void idem_free(idem_table *t);

/* The entry of (account, key), or NULL. Expired entries are dropped
 * first. */
idem_ent *idem_find(idem_table *t, uint32_t account, const char *key,
                    size_t len, int64_t now);

/* A new RESERVED entry. NULL when out of memory. */
idem_ent *idem_reserve(idem_table *t, uint32_t account, const char *key,
                       size_t len, const uint8_t fp[CS_IDEM_FP_BYTES]);

/* Gives a RESERVED entry its answer and its record's seq: PENDING, at the
 * end of the committed list. 0 or -ENOMEM (the entry unchanged). */
int idem_fill(idem_table *t, idem_ent *e, const cs_answer *a,
              int64_t expires_ms, uint64_t seq);

/* Removes and frees an entry in any state. */
void idem_remove(idem_table *t, idem_ent *e);

/* Adds a committed entry as a record carries it (open's replay, a
 * snapshot), replacing any entry of the same key; an expired one is
 * skipped. 0 or -ENOMEM. */
int idem_load(idem_table *t, uint32_t account, const rec_idem *r, uint64_t seq,
              int64_t now);

/* The record form of an entry (pointing into it). */
void idem_to_rec(const idem_ent *e, rec_idem *out);

/* Snapshots: packs the committed entries whose seq is at most upto as one
 * msgpack array; reads such an array back (replacing nothing: the table
 * is empty at open). */
void idem_pack(const idem_table *t, msgpack_packer *pk, uint64_t upto);
int idem_unpack(idem_table *t, const msgpack_object *o, int64_t now,
                const char **why);

#endif
