/*
 * keys_acct.c: what moving an account between stores needs of the key
 * ring (cs.h "moving an account"): the moving mark, keys listed and added
 * with their hashes, and an account removed with its keys.
 *
 * Each change follows keys.c's rule: under write_mu, the list the change
 * will leave is built beside the ring's own (new arrays, the same
 * entries), written as the whole file (keys_write), and only then swapped
 * in under `lock` held for writing, which takes only pointer moves: a
 * check never waits for the disk, and a failure leaves the file and the
 * ring as they were. An entry a removal drops goes on the retired list
 * (keys_int.h invariant 1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "cs.h"
#include "err.h"
#include "keys_int.h"

int cs_keys_get_line(const cs_keyring *k, size_t i, cs_key_line *out) {
  keys_read_lock(k);
  int rc = CS_EKEY;
  if (i < k->keys.count) {
    const key_entry *e = k->keys.v[i];
    out->info = e->info;
    for (int j = 0; j < SHA256_DIGEST_LENGTH; j++)
      snprintf(out->hash + 2 * j, 3, "%02x", e->hash[j]);
    rc = 0;
  }
  keys_read_unlock(k);
  return rc;
}

bool cs_keys_moving(const cs_keyring *k, uint32_t id) {
  keys_read_lock(k);
  bool moving = keys_list_moving(&k->keys, id);
  keys_read_unlock(k);
  return moving;
}

/* Puts the arrays and floor of next into the ring (lock held for writing
 * around the pointer moves only) and frees the ring's old arrays. */
static void ring_swap(cs_keyring *k, key_list *next) {
  keys_write_lock(k);
  key_list old = k->keys;
  k->keys = *next;
  keys_write_unlock(k);
  if (old.v != next->v) free(old.v);
  if (old.accts != next->accts) free(old.accts);
  if (old.moving != next->moving) free(old.moving);
}

int cs_keys_set_moving(cs_keyring *k, const char *account, bool moving,
                       cs_error *err) {
  pthread_mutex_lock(&k->write_mu);
  int rc = 0;
  uint32_t id = keys_account_number(&k->keys, account);
  if (!id) {
    rc = cs_err(err, CS_EACCOUNT, "no account named %.64s", account);
    goto out;
  }
  if (keys_list_moving(&k->keys, id) == moving) goto out;
  key_list next = k->keys;
  next.moving = malloc((k->keys.moving_count + 1) * sizeof *next.moving);
  if (!next.moving) {
    rc = cs_err(err, -ENOMEM, "out of memory");
    goto out;
  }
  next.moving_count = 0;
  for (size_t i = 0; i < k->keys.moving_count; i++)
    if (k->keys.moving[i] != id)
      next.moving[next.moving_count++] = k->keys.moving[i];
  if (moving) next.moving[next.moving_count++] = id;
  rc = keys_write(k, &next, NULL, NULL, NULL, err);
  if (rc) {
    free(next.moving);
    goto out;
  }
  ring_swap(k, &next);
out:
  pthread_mutex_unlock(&k->write_mu);
  return rc;
}

/* "ck_" and CS_KEY_ID_BYTES - 3 letters or digits, as cs_keys_add makes
 * them. */
static bool key_id_ok(const char *id) {
  if (strnlen(id, CS_KEY_ID_BYTES + 1) != CS_KEY_ID_BYTES ||
      memcmp(id, "ck_", 3) != 0)
    return false;
  for (size_t i = 3; i < CS_KEY_ID_BYTES; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

/* Checks entry i of v and reads its hash into h. 0, or CS_EINVAL. */
static int import_entry_ok(const char *account, const cs_key_line *v, size_t i,
                           uint8_t h[SHA256_DIGEST_LENGTH], cs_error *err) {
  const cs_key_line *e = &v[i];
  if (!key_id_ok(e->info.key_id))
    return cs_err(err, CS_EINVAL,
                  "entry %zu: key_id must be \"ck_\" and %d letters or digits",
                  i, CS_KEY_ID_BYTES - 3);
  if (strnlen(e->hash, sizeof e->hash) != CS_KEY_HASH_HEX_BYTES ||
      keys_hex_decode(e->hash, h, SHA256_DIGEST_LENGTH) != 0)
    return cs_err(err, CS_EINVAL, "entry %zu: hash must be %d hex digits", i,
                  CS_KEY_HASH_HEX_BYTES);
  if (cs_role_name(e->info.role) == NULL)
    return cs_err(err, CS_EINVAL, "entry %zu: no such role", i);
  if (e->info.created_ms < 0 || e->info.created_ms > CS_TIME_MS_MAX)
    return cs_err(err, CS_EINVAL, "entry %zu: created_at out of range", i);
  if (strcmp(e->info.account, account) != 0)
    return cs_err(err, CS_EINVAL,
                  "entry %zu: the key belongs to another account than %.64s", i,
                  account);
  for (size_t j = 0; j < i; j++)
    if (strcmp(v[j].info.key_id, e->info.key_id) == 0 ||
        strcasecmp(v[j].hash, e->hash) == 0)
      return cs_err(err, CS_EINVAL, "entry %zu: %s is given twice", i,
                    strcmp(v[j].info.key_id, e->info.key_id) == 0
                        ? "its key_id"
                        : "its key (the same hash)");
  return 0;
}

int cs_keys_import(cs_keyring *k, const char *account, const cs_key_line *v,
                   size_t n, size_t *added, size_t *present, size_t *bad,
                   cs_error *err) {
  *added = *present = 0;
  if (!keys_name_ok(account)) return keys_bad_name(err);
  key_entry **fresh = calloc(n ? n : 1, sizeof *fresh);
  if (!fresh) return cs_err(err, -ENOMEM, "out of memory");
  pthread_mutex_lock(&k->write_mu);
  const key_list *l = &k->keys;
  int rc = 0;
  size_t nfresh = 0;
  uint32_t id = keys_account_number(l, account);
  bool new_account = id == 0;
  if (new_account) {
    id = keys_next_number(l);
    if (id > CS_ACCOUNTS_MAX) {
      rc = cs_err(err, CS_EACCOUNT, "too many accounts (at most %d)",
                  CS_ACCOUNTS_MAX);
      goto out;
    }
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    uint8_t h[SHA256_DIGEST_LENGTH];
    rc = import_entry_ok(account, v, i, h, err);
    if (rc) {
      *bad = i;
      break;
    }
    const key_entry *same_id = NULL, *same_hash = NULL;
    for (size_t j = 0; j < l->count; j++) {
      const key_entry *o = l->v[j];
      if (strcmp(o->info.key_id, v[i].info.key_id) == 0) same_id = o;
      if (CRYPTO_memcmp(o->hash, h, sizeof h) == 0) same_hash = o;
    }
    if (same_id && same_id == same_hash && same_id->info.account_id == id) {
      (*present)++;
      continue;
    }
    if (same_id || same_hash) {
      *bad = i;
      rc = cs_err(err, CS_EKEY, "key_id %s: another key holds %s here",
                  v[i].info.key_id,
                  same_id ? "that key id" : "that key (the same hash)");
      break;
    }
    key_entry *e = calloc(1, sizeof *e);
    if (!e) {
      rc = cs_err(err, -ENOMEM, "out of memory");
      break;
    }
    e->info = v[i].info;
    e->info.account_id = id;
    memcpy(e->hash, h, sizeof h);
    fresh[nfresh++] = e;
  }
  if (rc) goto out;
  if (nfresh == 0 && !new_account) goto out; /* every key is there */
  key_list next = *l;
  next.v = malloc((l->count + nfresh) * sizeof *next.v + 1);
  if (!next.v) {
    rc = cs_err(err, -ENOMEM, "out of memory");
    goto out;
  }
  if (l->count) memcpy(next.v, l->v, l->count * sizeof *next.v);
  for (size_t i = 0; i < nfresh; i++)
    next.v[l->count + i] = fresh[i];
  next.count = next.cap = l->count + nfresh;
  /* An account with no key needs its account line to exist. */
  acct_entry a = {.id = id};
  snprintf(a.name, sizeof a.name, "%s", account);
  const acct_entry *extra = new_account && nfresh == 0 ? &a : NULL;
  if (extra) {
    next.accts = malloc((l->acct_count + 1) * sizeof *next.accts);
    if (!next.accts) {
      free(next.v);
      rc = cs_err(err, -ENOMEM, "out of memory");
      goto out;
    }
    if (l->acct_count)
      memcpy(next.accts, l->accts, l->acct_count * sizeof *next.accts);
    next.accts[l->acct_count] = a;
    next.acct_count = next.acct_cap = l->acct_count + 1;
  }
  rc = keys_write(k, &next, NULL, NULL, NULL, err);
  if (rc) {
    free(next.v);
    if (extra) free(next.accts);
    goto out;
  }
  ring_swap(k, &next);
  *added = nfresh;
  nfresh = 0; /* the ring's now */
out:
  pthread_mutex_unlock(&k->write_mu);
  for (size_t i = 0; i < nfresh; i++)
    keys_entry_free(fresh[i]);
  free(fresh);
  if (rc) *added = *present = 0;
  return rc;
}

int cs_keys_account_remove(cs_keyring *k, const char *account,
                           size_t *keys_removed, cs_error *err) {
  *keys_removed = 0;
  pthread_mutex_lock(&k->write_mu);
  const key_list *l = &k->keys;
  int rc = 0;
  uint32_t id = keys_account_number(l, account);
  if (!id) {
    rc = cs_err(err, CS_EACCOUNT, "no account named %.64s", account);
    goto out;
  }
  key_list next = *l;
  next.v = malloc(l->count * sizeof *next.v + 1);
  next.accts = malloc(l->acct_count * sizeof *next.accts + 1);
  next.moving = malloc(l->moving_count * sizeof *next.moving + 1);
  if (!next.v || !next.accts || !next.moving) {
    free(next.v);
    free(next.accts);
    free(next.moving);
    rc = cs_err(err, -ENOMEM, "out of memory");
    goto out;
  }
  next.count = next.acct_count = next.moving_count = 0;
  for (size_t i = 0; i < l->count; i++)
    if (l->v[i]->info.account_id != id) next.v[next.count++] = l->v[i];
  for (size_t i = 0; i < l->acct_count; i++)
    if (l->accts[i].id != id) next.accts[next.acct_count++] = l->accts[i];
  for (size_t i = 0; i < l->moving_count; i++)
    if (l->moving[i] != id) next.moving[next.moving_count++] = l->moving[i];
  next.cap = next.count;
  next.acct_cap = next.acct_count;
  if (next.account_floor < id + 1) next.account_floor = id + 1;
  rc = keys_write(k, &next, NULL, NULL, NULL, err);
  if (rc) {
    free(next.v);
    free(next.accts);
    free(next.moving);
    goto out;
  }
  /* The dropped entries, found before the swap frees the old array. */
  for (size_t i = 0; i < l->count; i++) {
    key_entry *e = l->v[i];
    if (e->info.account_id != id) continue;
    e->retired_next = k->retired;
    k->retired = e;
    (*keys_removed)++;
  }
  ring_swap(k, &next);
out:
  pthread_mutex_unlock(&k->write_mu);
  return rc;
}
