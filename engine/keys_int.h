/*
 * keys_int.h: the key ring's insides, shared by keys.c (the file, checks,
 * adding and revoking keys, reload) and keys_acct.c (what an account move
 * needs: the moving mark, keys exported and imported with their hashes,
 * an account removed). keys.c is the only writer of the file
 * (keys_write); keys_acct.c builds the list a change will leave, has it
 * written, and only then swaps it in under `lock`.
 *
 * Invariants (keys.c's comment has the threads):
 *   1. An entry never moves and is never freed before cs_keys_close: one
 *      a change drops goes on `retired` (under write_mu), so the
 *      cs_key_info a check handed out stays readable.
 *   2. The arrays of a key_list (v, accts, moving) change only under
 *      `lock` held for writing, or in a list no reader sees yet.
 *   3. Every account number in `moving` is named by a key or an account
 *      line of the same list; `account_floor` is 0 or above every number
 *      an account was removed with.
 */
#ifndef CS_KEYS_INT_H
#define CS_KEYS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "cs.h"

typedef struct key_entry {
  cs_key_info info;
  uint8_t hash[SHA256_DIGEST_LENGTH];
  struct key_entry *retired_next; /* on the retired list */
  bool kept;                      /* a reload found it again (transient) */
} key_entry;

/* An account made without a key. */
typedef struct acct_entry {
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  uint32_t id;
} acct_entry;

/* What the file holds: the keys (pointers: the entries themselves never
 * move), the accounts without a key, the accounts marked moving (by
 * number), and the floor of new account numbers. */
typedef struct key_list {
  key_entry **v;
  size_t count;
  size_t cap;
  acct_entry *accts;
  size_t acct_count;
  size_t acct_cap;
  uint32_t *moving;
  size_t moving_count;
  /* No new account gets a number below it (0: none): a removed account's
   * number is never given again, since the change feed and idempotency
   * entries of the store are kept under it. */
  uint32_t account_floor;
} key_list;

struct cs_keyring {
  char *dir;
  char *path;
  /* SHA-256, looked up once: every request hashes its key, and the
   * one-shot SHA256() looks the algorithm up again each time. */
  EVP_MD *sha256;
  pthread_rwlock_t lock; /* readers: checks and lists; writer: a change */
  /* This state of the ring, a number no other state of any ring of the
   * process has: replaced by every write-locked change (keys_cache.c). */
  _Atomic uint64_t stamp;
  pthread_mutex_t write_mu; /* one change at a time, file and memory */
  key_list keys;
  key_entry *retired; /* dropped by a reload or a removal, freed at close */
  const cs_io *io;    /* every write of the file goes through it */
};

/* The rules of the file's fields, as keys.c reads them. */
bool keys_name_ok(const char *name);
int keys_bad_name(cs_error *err); /* CS_EACCOUNT, with the rule said */
/* n bytes from 2n hex digits (either case); -1 when one is not hex. */
int keys_hex_decode(const char *hex, uint8_t *out, size_t n);
/* Cleanses and frees an entry (NULL: nothing). */
void keys_entry_free(key_entry *e);
/* The number of account name in l, 0 when none. */
uint32_t keys_account_number(const key_list *l, const char *name);
/* The name of account number id in l, NULL when none. */
const char *keys_account_name_of(const key_list *l, uint32_t id);
/* The number a new account gets: past every number in use and the
 * floor. */
uint32_t keys_next_number(const key_list *l);
/* Whether account number id is marked moving in l. */
bool keys_list_moving(const key_list *l, uint32_t id);

/*
 * Writes list l as the whole file, atomically, through the ring's I/O
 * seam, with `revoking` (when not NULL) written as revoked, `extra` (when
 * not NULL) after the keys and `extra_acct` (when not NULL) after the
 * accounts: the list as the change about to be made leaves it. Under
 * write_mu; l is k->keys or a list made from it. 0 or the error.
 */
int keys_write(cs_keyring *k, const key_list *l, const key_entry *revoking,
               const key_entry *extra, const acct_entry *extra_acct,
               cs_error *err);

void keys_read_lock(const cs_keyring *k);
void keys_read_unlock(const cs_keyring *k);
/* The lock for a change; the unlock gives the ring a new stamp first, so
 * no check after the change's call returned uses a cached answer from
 * before it (keys_cache.c). */
void keys_write_lock(cs_keyring *k);
void keys_write_unlock(cs_keyring *k);

/* The thread's cache of checked keys (keys_cache.c). A stamp never given
 * before; the info of key when this thread checked it in k's present
 * state, else NULL; and an entry for key, found live and not moving in
 * the state stamp (read under the read lock with the check). */
uint64_t keys_stamp_next(void);
const cs_key_info *keys_cache_get(const cs_keyring *k, const char *key,
                                  size_t len);
void keys_cache_put(uint64_t stamp, const char *key, size_t len,
                    const cs_key_info *info);

#endif
