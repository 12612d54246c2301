/*
 * keys.c: API keys and the accounts they belong to.
 *
 * The file "keys" in the data directory (mode 0600), one key a line, fields
 * separated by tabs:
 *
 *   key_id  sha256-hex  account  account_id  rw|ro|admin  created_ms  0|1
 *
 * (the last field: revoked) after a first line "# contactd keys v1", then
 * one line for each account that was made without a key
 * (cs_keys_account_ensure: an import names it):
 *
 *   account  name  account_id
 *
 * then one line for each account marked moving (cs_keys_set_moving: its
 * keys answer CS_EMOVING), naming an account the lines above name:
 *
 *   moving  name
 *
 * and, once an account has been removed (cs_keys_account_remove), one
 * line with the floor of new account numbers, so that a removed account's
 * number is never given again:
 *
 *   account_floor  number
 *
 * The role "admin", the account lines, the moving lines and the floor came
 * later, in that order; a file without them reads as before, and an older
 * contactd refuses a file with them as malformed (a line that is neither
 * a key of 7 fields nor, for the oldest, anything else) rather than take
 * an admin key for a read-write one, serve a moving account, or give a
 * removed account's number again. A file is written with them only when
 * they are there: a store that never marked or removed an account keeps a
 * file every contactd since the account lines reads. Only a
 * SHA-256 of each key is
 * kept; the key itself is shown once, by cs_keys_add. A key is "ck_" and 40
 * characters of base62 from getrandom (238 bits). Its first 11 characters
 * are its public key_id, which lists and revocation use. Checking a key
 * compares its hash with every live key's hash in constant time, without
 * stopping at a match, so timing says nothing about which keys exist; a
 * thread remembers the keys it found last and the ring's state then
 * (keys_cache.c), and answers the same key in the same state from there.
 *
 * The file is replaced atomically on every change (dir_replace, through
 * the cs_io seam). Callers hold the store's directory lock while they
 * change it.
 *
 * Threads. A running server checks keys on every worker at once while an
 * admin request adds or revokes one and SIGHUP re-reads the file. Checks
 * (and every other read) hold `lock` for reading only while they scan the
 * list; a change is made by one writer at a time (`write_mu`), which
 * writes the file first, with the list as it will be, and only then takes
 * `lock` for writing for the moment it takes to change the list in memory:
 * a check never waits for a disk sync, and the very next check after a
 * change returns sees it. Entries are allocated one by one and never move
 * or go away before cs_keys_close (an entry a reload or an account's
 * removal drops is kept on a retired list), so the cs_key_info a check
 * hands out stays readable; of its fields only `revoked` ever changes.
 * The moving mark is the account's, not a key's: a check reads it under
 * the same read lock, after the scan (keys_acct.c sets it).
 *
 * Invariants kept: the file always holds a whole, valid key list (old or
 * new); a key itself is never stored, and the memory that held one is
 * cleansed. keys_int.h has the structures and theirs.
 */
#include "keys.h"
#include "keys_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "cs.h"
#include "cs_assert.h"
#include "dir.h"
#include "err.h"

#define KEYS_HEADER "# contactd keys v1"
#define ACCOUNT_LINE_WORD "account"
#define MOVING_LINE_WORD "moving"
#define FLOOR_LINE_WORD "account_floor"

bool keys_name_ok(const char *a) {
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

/* The answer to a name account_name_ok refuses. */
int keys_bad_name(cs_error *err) {
  return cs_err(err, CS_EACCOUNT,
                "account name must be 1 to %d letters, digits, '-', '_' or "
                "'.'",
                CS_ACCOUNT_NAME_MAX_BYTES);
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int keys_hex_decode(const char *hex, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int hi = hex_digit(hex[2 * i]),
        lo = hi < 0 ? -1 : hex_digit(hex[2 * i + 1]);
    if (lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

void keys_entry_free(key_entry *e) {
  if (e == NULL) return;
  OPENSSL_cleanse(e, sizeof *e);
  free(e);
}

/* Room for one more pointer in l; -ENOMEM or 0. The array may move: on a
 * ring's own list, the caller holds lock for writing. */
static int list_reserve(key_list *l) {
  if (l->count < l->cap) return 0;
  size_t cap = l->cap ? l->cap * 2 : 8;
  key_entry **p = realloc(l->v, cap * sizeof *p);
  if (!p) return -ENOMEM;
  l->v = p;
  l->cap = cap;
  return 0;
}

/* Room for one more account in l, as list_reserve. */
static int acct_reserve(key_list *l) {
  if (l->acct_count < l->acct_cap) return 0;
  size_t cap = l->acct_cap ? l->acct_cap * 2 : 8;
  acct_entry *p = realloc(l->accts, cap * sizeof *p);
  if (!p) return -ENOMEM;
  l->accts = p;
  l->acct_cap = cap;
  return 0;
}

/* The number of the account named name in l, 0 when there is none. */
uint32_t keys_account_number(const key_list *l, const char *name) {
  for (size_t i = 0; i < l->count; i++)
    if (strcmp(l->v[i]->info.account, name) == 0)
      return l->v[i]->info.account_id;
  for (size_t i = 0; i < l->acct_count; i++)
    if (strcmp(l->accts[i].name, name) == 0) return l->accts[i].id;
  return 0;
}

/* Whether an account other than name has number id in l. */
static bool number_taken(const key_list *l, const char *name, uint32_t id) {
  for (size_t i = 0; i < l->count; i++)
    if (l->v[i]->info.account_id == id &&
        strcmp(l->v[i]->info.account, name) != 0)
      return true;
  for (size_t i = 0; i < l->acct_count; i++)
    if (l->accts[i].id == id && strcmp(l->accts[i].name, name) != 0)
      return true;
  return false;
}

const char *keys_account_name_of(const key_list *l, uint32_t id) {
  for (size_t i = 0; i < l->count; i++)
    if (l->v[i]->info.account_id == id) return l->v[i]->info.account;
  for (size_t i = 0; i < l->acct_count; i++)
    if (l->accts[i].id == id) return l->accts[i].name;
  return NULL;
}

uint32_t keys_next_number(const key_list *l) {
  uint32_t id = 0;
  for (size_t i = 0; i < l->count; i++)
    if (l->v[i]->info.account_id > id) id = l->v[i]->info.account_id;
  for (size_t i = 0; i < l->acct_count; i++)
    if (l->accts[i].id > id) id = l->accts[i].id;
  return id + 1 > l->account_floor ? id + 1 : l->account_floor;
}

bool keys_list_moving(const key_list *l, uint32_t id) {
  for (size_t i = 0; i < l->moving_count; i++)
    if (l->moving[i] == id) return true;
  return false;
}

/* "account\tNAME\tNUMBER": a valid name and number that agree with the
 * lines before. 0, or -1 (malformed or out of memory). */
static int acct_line_read(key_list *l, char *line) {
  char *save, *f[4];
  int n = 0;
  for (char *t = strtok_r(line, "\t", &save); t && n < 4;
       t = strtok_r(NULL, "\t", &save))
    f[n++] = t;
  if (n != 3 || !keys_name_ok(f[1])) return -1;
  char *end;
  unsigned long id = strtoul(f[2], &end, 10);
  if (*end || id == 0 || id > CS_ACCOUNTS_MAX) return -1;
  uint32_t had = keys_account_number(l, f[1]);
  if ((had && had != id) || number_taken(l, f[1], (uint32_t)id)) return -1;
  if (had) return 0;
  if (acct_reserve(l)) return -1;
  acct_entry *a = &l->accts[l->acct_count++];
  snprintf(a->name, sizeof a->name, "%s", f[1]);
  a->id = (uint32_t)id;
  return 0;
}

/* "moving\tNAME": an account the lines before name, marked once. 0, or
 * -1 (malformed or out of memory). */
static int moving_line_read(key_list *l, char *line) {
  char *save, *f[3];
  int n = 0;
  for (char *t = strtok_r(line, "\t", &save); t && n < 3;
       t = strtok_r(NULL, "\t", &save))
    f[n++] = t;
  if (n != 2) return -1;
  uint32_t id = keys_account_number(l, f[1]);
  if (!id || keys_list_moving(l, id)) return -1;
  uint32_t *p = realloc(l->moving, (l->moving_count + 1) * sizeof *p);
  if (!p) return -1;
  l->moving = p;
  l->moving[l->moving_count++] = id;
  return 0;
}

/* "account_floor\tNUMBER", once: 0, or -1. */
static int floor_line_read(key_list *l, char *line) {
  char *save, *f[3];
  int n = 0;
  for (char *t = strtok_r(line, "\t", &save); t && n < 3;
       t = strtok_r(NULL, "\t", &save))
    f[n++] = t;
  if (n != 2 || l->account_floor) return -1;
  char *end;
  unsigned long v = strtoul(f[1], &end, 10);
  if (*end || f[1][0] < '1' || f[1][0] > '9' || v > CS_ACCOUNTS_MAX + 1UL)
    return -1;
  l->account_floor = (uint32_t)v;
  return 0;
}

/* Frees l's array and, when entries too, every entry in it. */
static void list_free(key_list *l, bool entries) {
  if (entries)
    for (size_t i = 0; i < l->count; i++)
      keys_entry_free(l->v[i]);
  free(l->v);
  free(l->accts);
  free(l->moving);
  memset(l, 0, sizeof *l);
}

static const char *role_word(cs_role r) {
  return r == CS_ROLE_READ_ONLY ? "ro" : r == CS_ROLE_ADMIN ? "admin" : "rw";
}

const char *cs_role_name(cs_role r) {
  switch (r) {
  case CS_ROLE_READ_WRITE:
    return "read-write";
  case CS_ROLE_READ_ONLY:
    return "read-only";
  case CS_ROLE_ADMIN:
    return "admin";
  }
  return NULL;
}

int cs_role_parse(const char *word, cs_role *out) {
  static const cs_role roles[] = {CS_ROLE_READ_WRITE, CS_ROLE_READ_ONLY,
                                  CS_ROLE_ADMIN};
  for (size_t i = 0; i < sizeof roles / sizeof *roles; i++)
    if (word != NULL && strcmp(word, cs_role_name(roles[i])) == 0) {
      *out = roles[i];
      return 0;
    }
  return CS_EKEY;
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
      !keys_name_ok(f[2]))
    return -1;
  memcpy(e->info.key_id, f[0], CS_KEY_ID_BYTES + 1);
  if (keys_hex_decode(f[1], e->hash, sizeof e->hash)) return -1;
  snprintf(e->info.account, sizeof e->info.account, "%s", f[2]);
  char *end;
  unsigned long id = strtoul(f[3], &end, 10);
  if (*end || id == 0 || id > CS_ACCOUNTS_MAX) return -1;
  e->info.account_id = (uint32_t)id;
  if (strcmp(f[4], "rw") == 0)
    e->info.role = CS_ROLE_READ_WRITE;
  else if (strcmp(f[4], "ro") == 0)
    e->info.role = CS_ROLE_READ_ONLY;
  else if (strcmp(f[4], "admin") == 0)
    e->info.role = CS_ROLE_ADMIN;
  else
    return -1;
  e->info.created_ms = strtoll(f[5], &end, 10);
  if (*end) return -1;
  if (strcmp(f[6], "0") != 0 && strcmp(f[6], "1") != 0) return -1;
  e->info.revoked = f[6][0] == '1';
  return 0;
}

/* Reads path into *out (an absent file: an empty list when missing_ok).
 * 0, or an error with out empty. */
static int file_load(const char *path, bool missing_ok, key_list *out,
                     cs_error *err) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "re");
  if (!f) {
    if (errno == ENOENT && missing_ok) return 0;
    int e = errno;
    return cs_err(err, -e, "cannot read %s: %s", path, strerror(e));
  }
  char line[512];
  int lineno = 0, rc = 0;
  while (!rc && fgets(line, sizeof line, f)) {
    lineno++;
    line[strcspn(line, "\n")] = 0;
    if (lineno == 1) {
      if (strcmp(line, KEYS_HEADER) != 0)
        rc = cs_err(err, CS_EFORMAT, "%s: not a key file (first line)", path);
      continue;
    }
    if (!line[0]) continue;
    if (strncmp(line, ACCOUNT_LINE_WORD "\t", sizeof ACCOUNT_LINE_WORD) == 0) {
      if (acct_line_read(out, line))
        rc = cs_err(err, CS_ECORRUPT, "%s:%d: malformed account line", path,
                    lineno);
      continue;
    }
    if (strncmp(line, MOVING_LINE_WORD "\t", sizeof MOVING_LINE_WORD) == 0) {
      if (moving_line_read(out, line))
        rc = cs_err(err, CS_ECORRUPT,
                    "%s:%d: malformed moving line (an account no line "
                    "before names, or named twice)",
                    path, lineno);
      continue;
    }
    if (strncmp(line, FLOOR_LINE_WORD "\t", sizeof FLOOR_LINE_WORD) == 0) {
      if (floor_line_read(out, line))
        rc = cs_err(err, CS_ECORRUPT, "%s:%d: malformed account_floor line",
                    path, lineno);
      continue;
    }
    key_entry e;
    if (parse_line(line, &e)) {
      rc = cs_err(err, CS_ECORRUPT, "%s:%d: malformed key line", path, lineno);
      break;
    }
    uint32_t had = keys_account_number(out, e.info.account);
    if ((had && had != e.info.account_id) ||
        number_taken(out, e.info.account, e.info.account_id))
      rc = cs_err(err, CS_ECORRUPT,
                  "%s:%d: account %s and its number disagree with an "
                  "earlier line",
                  path, lineno, e.info.account);
    if (rc) break;
    key_entry *p = malloc(sizeof *p);
    if (!p || list_reserve(out)) {
      free(p);
      rc = cs_err(err, -ENOMEM, "out of memory");
      break;
    }
    *p = e;
    out->v[out->count++] = p;
    OPENSSL_cleanse(&e, sizeof e);
  }
  if (!rc && ferror(f))
    rc = cs_err(err, -EIO, "cannot read %s: %s", path, strerror(EIO));
  fclose(f);
  OPENSSL_cleanse(line, sizeof line);
  if (rc) list_free(out, true);
  return rc;
}

int cs_keys_open(const char *dir, cs_keyring **out, cs_error *err) {
  *out = NULL;
  cs_keyring *k = calloc(1, sizeof *k);
  if (!k) return cs_err(err, -ENOMEM, "out of memory");
  /* Writers first: under a steady stream of checks, glibc's default lets
   * readers starve a revocation indefinitely. */
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&k->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  pthread_mutex_init(&k->write_mu, NULL);
  atomic_init(&k->stamp, keys_stamp_next());
  k->dir = strdup(dir);
  k->io = cs_io_posix();
  k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!k->dir || !k->sha256 ||
      asprintf(&k->path, "%s/%s", dir, KEYS_NAME) < 0) {
    k->path = NULL;
    cs_keys_close(k);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  int rc = file_load(k->path, true, &k->keys, err);
  if (rc) {
    cs_keys_close(k);
    return rc;
  }
  *out = k;
  return 0;
}

void cs_keys_close(cs_keyring *k) {
  if (!k) return;
  list_free(&k->keys, true);
  for (key_entry *e = k->retired, *next; e != NULL; e = next) {
    next = e->retired_next;
    keys_entry_free(e);
  }
  free(k->path);
  free(k->dir);
  EVP_MD_free(k->sha256);
  pthread_rwlock_destroy(&k->lock);
  pthread_mutex_destroy(&k->write_mu);
  free(k);
}

void keys_set_io(cs_keyring *k, const cs_io *io) {
  k->io = io ? io : cs_io_posix();
}

const char *cs_keys_path(const cs_keyring *k) {
  return k->path;
}

/* The whole file goes through the one atomic replace (dir.c), so the I/O
 * seam sees every step. */
int keys_write(cs_keyring *k, const key_list *l, const key_entry *revoking,
               const key_entry *extra, const acct_entry *extra_acct,
               cs_error *err) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return cs_err(err, -ENOMEM, "out of memory");
  fprintf(f, "%s\n", KEYS_HEADER);
  for (size_t i = 0; i <= l->count; i++) {
    const key_entry *e = i < l->count ? l->v[i] : extra;
    if (e == NULL) break;
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (int j = 0; j < SHA256_DIGEST_LENGTH; j++)
      snprintf(hex + 2 * j, 3, "%02x", e->hash[j]);
    fprintf(f, "%s\t%s\t%s\t%u\t%s\t%lld\t%d\n", e->info.key_id, hex,
            e->info.account, e->info.account_id, role_word(e->info.role),
            (long long)e->info.created_ms,
            e->info.revoked || e == revoking ? 1 : 0);
  }
  for (size_t i = 0; i <= l->acct_count; i++) {
    const acct_entry *a = i < l->acct_count ? &l->accts[i] : extra_acct;
    if (a == NULL) break;
    fprintf(f, "%s\t%s\t%u\n", ACCOUNT_LINE_WORD, a->name, a->id);
  }
  for (size_t i = 0; i < l->moving_count; i++) {
    const char *name = keys_account_name_of(l, l->moving[i]);
    CS_ASSERT(name != NULL); /* invariant 3 of keys_int.h */
    fprintf(f, "%s\t%s\n", MOVING_LINE_WORD, name);
  }
  if (l->account_floor)
    fprintf(f, "%s\t%u\n", FLOOR_LINE_WORD, l->account_floor);
  if (fclose(f) != 0) {
    free(text);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  int rc = dir_replace(k->io, k->dir, KEYS_NAME, text, len, err);
  OPENSSL_cleanse(text, len); /* hashes only, but keep no copies about */
  free(text);
  return rc;
}

/* The list as it is, with the change about to be made. Under write_mu. */
static int ring_save(cs_keyring *k, const key_entry *revoking,
                     const key_entry *extra, const acct_entry *extra_acct,
                     cs_error *err) {
  return keys_write(k, &k->keys, revoking, extra, extra_acct, err);
}

/* Under lock (either way) or write_mu. */
static int account_id_locked(const cs_keyring *k, const char *account,
                             uint32_t *id_out) {
  uint32_t id = keys_account_number(&k->keys, account);
  if (!id) return CS_EACCOUNT;
  *id_out = id;
  return 0;
}

/* The lock is taken on a const ring: the list is what is constant. */
void keys_read_lock(const cs_keyring *k) {
  pthread_rwlock_rdlock((pthread_rwlock_t *)&k->lock);
}

void keys_read_unlock(const cs_keyring *k) {
  pthread_rwlock_unlock((pthread_rwlock_t *)&k->lock);
}

int cs_keys_account_id(const cs_keyring *k, const char *account,
                       uint32_t *id_out) {
  keys_read_lock(k);
  int rc = account_id_locked(k, account, id_out);
  keys_read_unlock(k);
  return rc;
}

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

size_t cs_keys_account_list(const cs_keyring *k, uint32_t *ids_out,
                            size_t cap) {
  keys_read_lock(k);
  const key_list *l = &k->keys;
  size_t n = l->count + l->acct_count, u = 0;
  uint32_t *all = malloc((n ? n : 1) * sizeof *all);
  if (!all) {
    keys_read_unlock(k);
    return 0;
  }
  for (size_t i = 0; i < l->count; i++)
    all[i] = l->v[i]->info.account_id;
  for (size_t i = 0; i < l->acct_count; i++)
    all[l->count + i] = l->accts[i].id;
  keys_read_unlock(k);
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
  return keys_name_ok(name);
}

int cs_keys_account_name(const cs_keyring *k, uint32_t id,
                         char out[CS_ACCOUNT_NAME_MAX_BYTES + 1]) {
  keys_read_lock(k);
  const char *name = keys_account_name_of(&k->keys, id);
  if (name) snprintf(out, CS_ACCOUNT_NAME_MAX_BYTES + 1, "%s", name);
  keys_read_unlock(k);
  return name ? 0 : CS_EACCOUNT;
}

int cs_keys_account_ensure(cs_keyring *k, const char *account, uint32_t *id_out,
                           cs_error *err) {
  if (!keys_name_ok(account)) return keys_bad_name(err);
  pthread_mutex_lock(&k->write_mu);
  int rc = 0;
  uint32_t id = keys_account_number(&k->keys, account);
  if (id) goto out;
  id = keys_next_number(&k->keys);
  if (id > CS_ACCOUNTS_MAX) {
    rc = cs_err(err, CS_EACCOUNT, "too many accounts (at most %d)",
                CS_ACCOUNTS_MAX);
    goto out;
  }
  acct_entry a = {.id = id};
  snprintf(a.name, sizeof a.name, "%s", account);
  keys_write_lock(k); /* the array may move */
  rc = acct_reserve(&k->keys) ? cs_err(err, -ENOMEM, "out of memory") : 0;
  keys_write_unlock(k);
  if (!rc) rc = ring_save(k, NULL, NULL, &a, err);
  if (!rc) {
    keys_write_lock(k);
    k->keys.accts[k->keys.acct_count++] = a;
    keys_write_unlock(k);
  }
out:
  pthread_mutex_unlock(&k->write_mu);
  if (!rc) *id_out = id;
  return rc;
}

int cs_keys_add(cs_keyring *k, const char *account, cs_role role,
                char key_out[CS_KEY_BYTES + 1], cs_key_info *info_out,
                cs_error *err) {
  if (!keys_name_ok(account)) return keys_bad_name(err);
  if (cs_role_name(role) == NULL)
    return cs_err(err, CS_EKEY, "unknown role %d", (int)role);
  pthread_mutex_lock(&k->write_mu);
  int rc = 0;
  uint32_t id;
  if (account_id_locked(k, account, &id) != 0) {
    id = keys_next_number(&k->keys);
    if (id > CS_ACCOUNTS_MAX) {
      rc = cs_err(err, CS_EACCOUNT, "too many accounts (at most %d)",
                  CS_ACCOUNTS_MAX);
      goto out;
    }
  }
  static const char b62[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  char key[CS_KEY_BYTES + 1] = "ck_";
  size_t n = 3;
  while (n < CS_KEY_BYTES) {
    uint8_t r[64];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
      rc = cs_err(err, -EIO, "cannot get random bytes for a key");
      goto out;
    }
    for (size_t i = 0; i < sizeof r && n < CS_KEY_BYTES; i++)
      if (r[i] < 248) key[n++] = b62[r[i] % 62]; /* 248 = 4 * 62: unbiased */
  }
  key[CS_KEY_BYTES] = 0;
  /* Room for the pointer first (the array may move: readers must not be
   * scanning it), so that nothing can fail once the file is written. */
  keys_write_lock(k);
  int reserved = list_reserve(&k->keys);
  keys_write_unlock(k);
  key_entry *e = calloc(1, sizeof *e);
  if (!e || reserved) {
    free(e);
    OPENSSL_cleanse(key, sizeof key);
    rc = cs_err(err, -ENOMEM, "out of memory");
    goto out;
  }
  memcpy(e->info.key_id, key, CS_KEY_ID_BYTES);
  snprintf(e->info.account, sizeof e->info.account, "%s", account);
  e->info.account_id = id;
  e->info.role = role;
  e->info.created_ms = cs_now_ms();
  SHA256((const uint8_t *)key, CS_KEY_BYTES, e->hash);
  rc = ring_save(k, NULL, e, NULL, err);
  if (rc) {
    keys_entry_free(e);
    OPENSSL_cleanse(key, sizeof key);
    goto out;
  }
  /* The array has room (reserved above): this cannot fail or move. */
  keys_write_lock(k);
  k->keys.v[k->keys.count++] = e;
  keys_write_unlock(k);
  memcpy(key_out, key, CS_KEY_BYTES + 1);
  OPENSSL_cleanse(key, sizeof key);
  if (info_out) *info_out = e->info;
out:
  pthread_mutex_unlock(&k->write_mu);
  return rc;
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
  pthread_mutex_lock(&k->write_mu);
  key_entry *e = NULL;
  for (size_t i = 0; i < k->keys.count && e == NULL; i++)
    if (memcmp(k->keys.v[i]->info.key_id, key_id, CS_KEY_ID_BYTES) == 0 &&
        (!whole || CRYPTO_memcmp(h, k->keys.v[i]->hash, sizeof h) == 0))
      e = k->keys.v[i];
  int rc = 0;
  if (e == NULL)
    rc = cs_err(err, CS_EKEY, "no key with id %.*s", CS_KEY_ID_BYTES, key_id);
  else if (!e->info.revoked && (rc = ring_save(k, e, NULL, NULL, err)) == 0) {
    keys_write_lock(k);
    e->info.revoked = true;
    keys_write_unlock(k);
  }
  pthread_mutex_unlock(&k->write_mu);
  return rc;
}

/* The entry of old that is the same key as n (its id, hash, account and
 * role alike), or NULL. */
static key_entry *same_key(const key_list *old, const key_entry *n) {
  for (size_t i = 0; i < old->count; i++) {
    key_entry *o = old->v[i];
    if (memcmp(o->hash, n->hash, sizeof o->hash) == 0 &&
        strcmp(o->info.key_id, n->info.key_id) == 0 &&
        strcmp(o->info.account, n->info.account) == 0 &&
        o->info.account_id == n->info.account_id &&
        o->info.role == n->info.role &&
        o->info.created_ms == n->info.created_ms)
      return o;
  }
  return NULL;
}

int cs_keys_reload(cs_keyring *k, cs_error *err) {
  pthread_mutex_lock(&k->write_mu);
  key_list fresh;
  /* A file gone is an operator's mistake (an edit moved it away), not
   * "revoke every key". */
  int rc = file_load(k->path, false, &fresh, err);
  if (rc) {
    pthread_mutex_unlock(&k->write_mu);
    return rc;
  }
  /* A key that is still there keeps its entry (a check may be holding
   * it); the file's revoked flag is applied to it below. `kept` marks such
   * an entry; only writers (under write_mu) ever touch it. */
  bool *reused = calloc(fresh.count ? fresh.count : 1, sizeof *reused);
  bool *revoke = calloc(fresh.count ? fresh.count : 1, sizeof *revoke);
  if (!reused || !revoke) {
    free(reused);
    free(revoke);
    list_free(&fresh, true);
    pthread_mutex_unlock(&k->write_mu);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < fresh.count; i++) {
    key_entry *o = same_key(&k->keys, fresh.v[i]);
    if (o == NULL || o->kept) continue;
    o->kept = true;
    reused[i] = true;
    revoke[i] = fresh.v[i]->info.revoked;
    keys_entry_free(fresh.v[i]);
    fresh.v[i] = o;
  }
  keys_write_lock(k);
  key_list old = k->keys;
  k->keys = fresh;
  for (size_t i = 0; i < fresh.count; i++)
    if (reused[i]) fresh.v[i]->info.revoked = revoke[i];
  keys_write_unlock(k);
  for (size_t j = 0; j < old.count; j++) {
    if (old.v[j]->kept) {
      old.v[j]->kept = false;
      continue;
    }
    old.v[j]->retired_next = k->retired;
    k->retired = old.v[j];
  }
  list_free(&old, false);
  free(reused);
  free(revoke);
  pthread_mutex_unlock(&k->write_mu);
  return 0;
}

size_t cs_keys_count(const cs_keyring *k) {
  keys_read_lock(k);
  size_t n = k->keys.count;
  keys_read_unlock(k);
  return n;
}

const cs_key_info *cs_keys_at(const cs_keyring *k, size_t i) {
  keys_read_lock(k);
  const cs_key_info *info = i < k->keys.count ? &k->keys.v[i]->info : NULL;
  keys_read_unlock(k);
  return info;
}

int cs_keys_get(const cs_keyring *k, size_t i, cs_key_info *out) {
  keys_read_lock(k);
  int rc = CS_EKEY;
  if (i < k->keys.count) {
    *out = k->keys.v[i]->info;
    rc = 0;
  }
  keys_read_unlock(k);
  return rc;
}

int cs_keys_check(const cs_keyring *k, const char *key, size_t len,
                  const cs_key_info **info_out) {
  const cs_key_info *hit = keys_cache_get(k, key, len);
  if (hit) {
    *info_out = hit;
    return 0;
  }
  uint8_t h[SHA256_DIGEST_LENGTH];
  if (!EVP_Digest(key, len, h, NULL, k->sha256, NULL)) return CS_EKEY;
  const cs_key_info *found = NULL;
  keys_read_lock(k);
  for (size_t i = 0; i < k->keys.count; i++) {
    const key_entry *e = k->keys.v[i];
    int same = CRYPTO_memcmp(h, e->hash, sizeof h) == 0;
    /* Select without branching on the secret comparison's result. */
    uintptr_t mask = (uintptr_t)0 - (uintptr_t)(same & !e->info.revoked);
    found = (const cs_key_info *)(((uintptr_t)&e->info & mask) |
                                  ((uintptr_t)found & ~mask));
  }
  /* After the scan, and only a count when no account moves: the check
   * costs what it did. Whether a key matched is what the answer says
   * anyway. */
  bool moving = found != NULL && k->keys.moving_count != 0 &&
                keys_list_moving(&k->keys, found->account_id);
  uint64_t stamp = atomic_load_explicit(&k->stamp, memory_order_relaxed);
  keys_read_unlock(k);
  if (!found) return CS_EKEY;
  if (!moving) keys_cache_put(stamp, key, len, found);
  *info_out = found;
  return moving ? CS_EMOVING : 0;
}
