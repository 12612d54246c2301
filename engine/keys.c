/*
 * keys.c: API keys and the accounts they belong to.
 *
 * The file "keys" in the data directory (mode 0600), one key a line, fields
 * separated by tabs:
 *
 *   key_id  sha256-hex  account  account_id  rw|ro  created_ms  0|1(revoked)
 *
 * after a first line "# contactd keys v1", and then one line for each
 * account that was made without a key (cs_keys_account_ensure: an import
 * names it):
 *
 *   account  name  account_id
 *
 * Only a SHA-256 of each key is
 * kept; the key itself is shown once, by cs_keys_add. A key is "ck_" and 40
 * characters of base62 from getrandom (238 bits). Its first 11 characters
 * are its public key_id, which lists and revocation use. Checking a key
 * compares its hash with every live key's hash in constant time, without
 * stopping at a match, so timing says nothing about which keys exist.
 *
 * The file is replaced atomically on every change (dir_replace, through
 * the cs_io seam). Callers hold the store's directory lock while they
 * change it.
 *
 * Invariants kept: the file always holds a whole, valid key list (old or
 * new); a key itself is never stored, and the memory that held one is
 * cleansed.
 */
#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "cs.h"
#include "dir.h"
#include "err.h"

#define KEYS_NAME "keys"
#define KEYS_HEADER "# contactd keys v1"

typedef struct key_entry {
  cs_key_info info;
  uint8_t hash[SHA256_DIGEST_LENGTH];
} key_entry;

/* An account made without a key. */
typedef struct acct_entry {
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  uint32_t id;
} acct_entry;

#define ACCOUNT_LINE_WORD "account"

struct cs_keyring {
  acct_entry *accts;
  size_t acct_count;
  size_t acct_cap;
  char *dir;
  char *path;
  /* SHA-256, looked up once: every request hashes its key, and the
   * one-shot SHA256() looks the algorithm up again each time. */
  EVP_MD *sha256;
  key_entry *keys;
  size_t count;
  size_t cap;
  const cs_io *io; /* every write of the file goes through it */
};

static bool account_name_ok(const char *a) {
  size_t n = strlen(a);
  if (n == 0 || n > CS_ACCOUNT_NAME_MAX_BYTES) return false;
  for (size_t i = 0; i < n; i++) {
    char c = a[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

static int hex_decode(const char *hex, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return 0;
}

static int ring_push(cs_keyring *k, const key_entry *e) {
  if (k->count == k->cap) {
    size_t cap = k->cap ? k->cap * 2 : 8;
    key_entry *p = realloc(k->keys, cap * sizeof *p);
    if (!p) return -ENOMEM;
    k->keys = p;
    k->cap = cap;
  }
  k->keys[k->count++] = *e;
  return 0;
}

/* The number of the account named name, 0 when there is none. */
static uint32_t account_number(const cs_keyring *k, const char *name) {
  for (size_t i = 0; i < k->count; i++)
    if (strcmp(k->keys[i].info.account, name) == 0)
      return k->keys[i].info.account_id;
  for (size_t i = 0; i < k->acct_count; i++)
    if (strcmp(k->accts[i].name, name) == 0) return k->accts[i].id;
  return 0;
}

/* Whether an account other than name has number id. */
static bool number_taken(const cs_keyring *k, const char *name, uint32_t id) {
  for (size_t i = 0; i < k->count; i++)
    if (k->keys[i].info.account_id == id &&
        strcmp(k->keys[i].info.account, name) != 0)
      return true;
  for (size_t i = 0; i < k->acct_count; i++)
    if (k->accts[i].id == id && strcmp(k->accts[i].name, name) != 0)
      return true;
  return false;
}

static int acct_push(cs_keyring *k, const char *name, uint32_t id) {
  if (k->acct_count == k->acct_cap) {
    size_t cap = k->acct_cap ? k->acct_cap * 2 : 8;
    acct_entry *p = realloc(k->accts, cap * sizeof *p);
    if (!p) return -ENOMEM;
    k->accts = p;
    k->acct_cap = cap;
  }
  acct_entry *a = &k->accts[k->acct_count++];
  snprintf(a->name, sizeof a->name, "%s", name);
  a->id = id;
  return 0;
}

/* "account\tNAME\tNUMBER": a valid name and number that agree with the
 * lines before. 0, or -1 (malformed or out of memory). */
static int acct_line_read(cs_keyring *k, char *line) {
  char *save, *f[4];
  int n = 0;
  for (char *t = strtok_r(line, "\t", &save); t && n < 4;
       t = strtok_r(NULL, "\t", &save))
    f[n++] = t;
  if (n != 3 || !account_name_ok(f[1])) return -1;
  char *end;
  unsigned long id = strtoul(f[2], &end, 10);
  if (*end || id == 0 || id > CS_ACCOUNTS_MAX) return -1;
  uint32_t had = account_number(k, f[1]);
  if ((had && had != id) || number_taken(k, f[1], (uint32_t)id)) return -1;
  return had ? 0 : acct_push(k, f[1], (uint32_t)id);
}

/* The number a new account gets: one past every number in use. */
static uint32_t account_next_number(const cs_keyring *k) {
  uint32_t id = 0;
  for (size_t i = 0; i < k->count; i++)
    if (k->keys[i].info.account_id > id) id = k->keys[i].info.account_id;
  for (size_t i = 0; i < k->acct_count; i++)
    if (k->accts[i].id > id) id = k->accts[i].id;
  return id + 1;
}

static int parse_line(char *line, key_entry *e) {
  char *f[8];
  int n = 0;
  char *save;
  for (char *t = strtok_r(line, "\t", &save); t && n < 8;
       t = strtok_r(NULL, "\t", &save))
    f[n++] = t;
  if (n != 7) return -1;
  memset(e, 0, sizeof *e);
  if (strlen(f[0]) != CS_KEY_ID_BYTES || strlen(f[1]) != 64 ||
      !account_name_ok(f[2]))
    return -1;
  memcpy(e->info.key_id, f[0], CS_KEY_ID_BYTES + 1);
  if (hex_decode(f[1], e->hash, sizeof e->hash)) return -1;
  snprintf(e->info.account, sizeof e->info.account, "%s", f[2]);
  char *end;
  unsigned long id = strtoul(f[3], &end, 10);
  if (*end || id == 0 || id > CS_ACCOUNTS_MAX) return -1;
  e->info.account_id = (uint32_t)id;
  if (strcmp(f[4], "rw") == 0)
    e->info.role = CS_ROLE_READ_WRITE;
  else if (strcmp(f[4], "ro") == 0)
    e->info.role = CS_ROLE_READ_ONLY;
  else
    return -1;
  e->info.created_ms = strtoll(f[5], &end, 10);
  if (*end) return -1;
  if (strcmp(f[6], "0") != 0 && strcmp(f[6], "1") != 0) return -1;
  e->info.revoked = f[6][0] == '1';
  return 0;
}

int cs_keys_open(const char *dir, cs_keyring **out, cs_error *err) {
  *out = NULL;
  cs_keyring *k = calloc(1, sizeof *k);
  if (!k) return cs_err(err, -ENOMEM, "out of memory");
  k->dir = strdup(dir);
  k->io = cs_io_posix();
  k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!k->dir || !k->sha256 ||
      asprintf(&k->path, "%s/%s", dir, KEYS_NAME) < 0) {
    k->path = NULL;
    cs_keys_close(k);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  FILE *f = fopen(k->path, "re");
  if (!f) {
    if (errno == ENOENT) {
      *out = k;
      return 0;
    }
    int e = errno;
    cs_err(err, -e, "cannot read %s: %s", k->path, strerror(e));
    cs_keys_close(k);
    return -e;
  }
  char line[512];
  int lineno = 0, rc = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    line[strcspn(line, "\n")] = 0;
    if (lineno == 1) {
      if (strcmp(line, KEYS_HEADER) != 0) {
        rc =
            cs_err(err, CS_EFORMAT, "%s: not a key file (first line)", k->path);
        break;
      }
      continue;
    }
    if (!line[0]) continue;
    if (strncmp(line, ACCOUNT_LINE_WORD "\t", sizeof ACCOUNT_LINE_WORD) == 0) {
      if (acct_line_read(k, line))
        rc = cs_err(err, CS_ECORRUPT, "%s:%d: malformed account line", k->path,
                    lineno);
      if (rc) break;
      continue;
    }
    key_entry e;
    if (parse_line(line, &e)) {
      rc = cs_err(err, CS_ECORRUPT, "%s:%d: malformed key line", k->path,
                  lineno);
      break;
    }
    uint32_t had = account_number(k, e.info.account);
    if ((had && had != e.info.account_id) ||
        number_taken(k, e.info.account, e.info.account_id))
      rc = cs_err(err, CS_ECORRUPT,
                  "%s:%d: account %s and its number disagree with an "
                  "earlier line",
                  k->path, lineno, e.info.account);
    for (size_t i = 0; i < k->count && !rc; i++) {
      bool same_name = strcmp(k->keys[i].info.account, e.info.account) == 0;
      if (same_name != (k->keys[i].info.account_id == e.info.account_id)) {
        rc = cs_err(err, CS_ECORRUPT,
                    "%s:%d: account %s and its number disagree with an "
                    "earlier line",
                    k->path, lineno, e.info.account);
        break;
      }
    }
    if (!rc && ring_push(k, &e)) rc = cs_err(err, -ENOMEM, "out of memory");
    if (rc) break;
  }
  fclose(f);
  if (rc) {
    cs_keys_close(k);
    return rc;
  }
  *out = k;
  return 0;
}

void cs_keys_close(cs_keyring *k) {
  if (!k) return;
  if (k->keys) OPENSSL_cleanse(k->keys, k->cap * sizeof *k->keys);
  free(k->keys);
  free(k->accts);
  free(k->path);
  free(k->dir);
  EVP_MD_free(k->sha256);
  free(k);
}

void keys_set_io(cs_keyring *k, const cs_io *io) {
  k->io = io ? io : cs_io_posix();
}

const char *cs_keys_path(const cs_keyring *k) {
  return k->path;
}

/* Writes the whole file through the one atomic replace (dir.c), so the
 * I/O seam sees every step. */
static int ring_save(cs_keyring *k, cs_error *err) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return cs_err(err, -ENOMEM, "out of memory");
  fprintf(f, "%s\n", KEYS_HEADER);
  for (size_t i = 0; i < k->count; i++) {
    const key_entry *e = &k->keys[i];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (int j = 0; j < SHA256_DIGEST_LENGTH; j++)
      snprintf(hex + 2 * j, 3, "%02x", e->hash[j]);
    fprintf(f, "%s\t%s\t%s\t%u\t%s\t%lld\t%d\n", e->info.key_id, hex,
            e->info.account, e->info.account_id,
            e->info.role == CS_ROLE_READ_ONLY ? "ro" : "rw",
            (long long)e->info.created_ms, e->info.revoked ? 1 : 0);
  }
  for (size_t i = 0; i < k->acct_count; i++)
    fprintf(f, "%s\t%s\t%u\n", ACCOUNT_LINE_WORD, k->accts[i].name,
            k->accts[i].id);
  if (fclose(f) != 0) {
    free(text);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  int rc = dir_replace(k->io, k->dir, KEYS_NAME, text, len, err);
  OPENSSL_cleanse(text, len); /* hashes only, but keep no copies about */
  free(text);
  return rc;
}

int cs_keys_account_id(const cs_keyring *k, const char *account,
                       uint32_t *id_out) {
  uint32_t id = account_number(k, account);
  if (!id) return CS_EACCOUNT;
  *id_out = id;
  return 0;
}

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

size_t cs_keys_account_list(const cs_keyring *k, uint32_t *ids_out,
                            size_t cap) {
  size_t n = k->count + k->acct_count, u = 0;
  uint32_t *all = malloc((n ? n : 1) * sizeof *all);
  if (!all) return 0;
  for (size_t i = 0; i < k->count; i++)
    all[i] = k->keys[i].info.account_id;
  for (size_t i = 0; i < k->acct_count; i++)
    all[k->count + i] = k->accts[i].id;
  qsort(all, n, sizeof *all, u32_cmp);
  for (size_t i = 0; i < n; i++) {
    if (i && all[i] == all[i - 1]) continue;
    if (u < cap) ids_out[u] = all[i];
    u++;
  }
  free(all);
  return u;
}

bool cs_keys_account_name_ok(const char *name) {
  return account_name_ok(name);
}

int cs_keys_account_name(const cs_keyring *k, uint32_t id,
                         char out[CS_ACCOUNT_NAME_MAX_BYTES + 1]) {
  const char *name = NULL;
  for (size_t i = 0; i < k->count && !name; i++)
    if (k->keys[i].info.account_id == id) name = k->keys[i].info.account;
  for (size_t i = 0; i < k->acct_count && !name; i++)
    if (k->accts[i].id == id) name = k->accts[i].name;
  if (!name) return CS_EACCOUNT;
  snprintf(out, CS_ACCOUNT_NAME_MAX_BYTES + 1, "%s", name);
  return 0;
}

int cs_keys_account_ensure(cs_keyring *k, const char *account, uint32_t *id_out,
                           cs_error *err) {
  if (!account_name_ok(account))
    return cs_err(err, CS_EACCOUNT,
                  "account name must be 1 to %d letters, digits, '-', '_' "
                  "or '.'",
                  CS_ACCOUNT_NAME_MAX_BYTES);
  uint32_t id = account_number(k, account);
  if (id) {
    *id_out = id;
    return 0;
  }
  id = account_next_number(k);
  if (id > CS_ACCOUNTS_MAX)
    return cs_err(err, CS_EACCOUNT, "too many accounts (at most %d)",
                  CS_ACCOUNTS_MAX);
  if (acct_push(k, account, id)) return cs_err(err, -ENOMEM, "out of memory");
  int rc = ring_save(k, err);
  if (rc) {
    k->acct_count--;
    return rc;
  }
  *id_out = id;
  return 0;
}

int cs_keys_add(cs_keyring *k, const char *account, cs_role role,
                char key_out[CS_KEY_BYTES + 1], cs_key_info *info_out,
                cs_error *err) {
  if (!account_name_ok(account))
    return cs_err(err, CS_EACCOUNT,
                  "account name must be 1 to %d letters, digits, '-', '_' "
                  "or '.'",
                  CS_ACCOUNT_NAME_MAX_BYTES);
  uint32_t id;
  if (cs_keys_account_id(k, account, &id) != 0) {
    id = account_next_number(k);
    if (id > CS_ACCOUNTS_MAX)
      return cs_err(err, CS_EACCOUNT, "too many accounts (at most %d)",
                    CS_ACCOUNTS_MAX);
  }
  static const char b62[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  char key[CS_KEY_BYTES + 1] = "ck_";
  size_t n = 3;
  while (n < CS_KEY_BYTES) {
    uint8_t r[64];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
      return cs_err(err, -EIO, "cannot get random bytes for a key");
    for (size_t i = 0; i < sizeof r && n < CS_KEY_BYTES; i++)
      if (r[i] < 248) key[n++] = b62[r[i] % 62]; /* 248 = 4 * 62: unbiased */
  }
  key[CS_KEY_BYTES] = 0;
  key_entry e;
  memset(&e, 0, sizeof e);
  memcpy(e.info.key_id, key, CS_KEY_ID_BYTES);
  snprintf(e.info.account, sizeof e.info.account, "%s", account);
  e.info.account_id = id;
  e.info.role = role;
  e.info.created_ms = cs_now_ms();
  SHA256((const uint8_t *)key, CS_KEY_BYTES, e.hash);
  if (ring_push(k, &e)) return cs_err(err, -ENOMEM, "out of memory");
  int rc = ring_save(k, err);
  if (rc) {
    k->count--;
    return rc;
  }
  memcpy(key_out, key, CS_KEY_BYTES + 1);
  OPENSSL_cleanse(key, sizeof key);
  if (info_out) *info_out = e.info;
  return 0;
}

int cs_keys_revoke(cs_keyring *k, const char *key_id, cs_error *err) {
  size_t n = strlen(key_id);
  /* A key id exactly, or a whole key (whose hash must be the key's). */
  uint8_t h[SHA256_DIGEST_LENGTH];
  bool whole = n == CS_KEY_BYTES;
  if (whole && !EVP_Digest(key_id, n, h, NULL, k->sha256, NULL))
    return cs_err(err, CS_EKEY, "cannot hash the key");
  if (n != CS_KEY_ID_BYTES && !whole)
    return cs_err(
        err, CS_EKEY, "%s is neither a key id (%d characters) nor a key (%d)",
        n > 64 ? "the argument" : key_id, CS_KEY_ID_BYTES, CS_KEY_BYTES);
  for (size_t i = 0; i < k->count; i++) {
    key_entry *e = &k->keys[i];
    if (memcmp(e->info.key_id, key_id, CS_KEY_ID_BYTES) == 0 &&
        (!whole || CRYPTO_memcmp(h, e->hash, sizeof h) == 0)) {
      if (e->info.revoked) return 0;
      e->info.revoked = true;
      int rc = ring_save(k, err);
      if (rc) e->info.revoked = false;
      return rc;
    }
  }
  return cs_err(err, CS_EKEY, "no key with id %.*s", CS_KEY_ID_BYTES, key_id);
}

size_t cs_keys_count(const cs_keyring *k) {
  return k->count;
}

const cs_key_info *cs_keys_at(const cs_keyring *k, size_t i) {
  return i < k->count ? &k->keys[i].info : NULL;
}

int cs_keys_check(const cs_keyring *k, const char *key, size_t len,
                  const cs_key_info **info_out) {
  uint8_t h[SHA256_DIGEST_LENGTH];
  if (!EVP_Digest(key, len, h, NULL, k->sha256, NULL)) return CS_EKEY;
  const cs_key_info *found = NULL;
  for (size_t i = 0; i < k->count; i++) {
    int same = CRYPTO_memcmp(h, k->keys[i].hash, sizeof h) == 0;
    /* Select without branching on the secret comparison's result. */
    uintptr_t mask =
        (uintptr_t)0 - (uintptr_t)(same & !k->keys[i].info.revoked);
    found = (const cs_key_info *)(((uintptr_t)&k->keys[i].info & mask) |
                                  ((uintptr_t)found & ~mask));
  }
  if (!found) return CS_EKEY;
  *info_out = found;
  return 0;
}
