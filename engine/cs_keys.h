/*
 * cs_keys.h: API keys and accounts (keys.c, keys_acct.c), part of the
 * public API.
 */
#ifndef CS_KEYS_PUBLIC_H
#define CS_KEYS_PUBLIC_H

/* A part of cs.h, which includes it after its own declarations (they
 * are used here): include cs.h, not this. */
#ifndef CS_H
#error "include cs.h, which includes this header"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ keys */

/*
 * API keys and accounts, kept in the file "keys" of the data directory
 * (mode 0600). Only a SHA-256 of each key is stored. An account is a name
 * with a number; contacts are stored under the number. The key file is read
 * and written while the caller holds the store (cs_open), so two programs
 * never change it at once.
 *
 * Threads: every call below may be made from any thread while others are
 * made from others (a server checks keys on every worker while an admin
 * request adds or revokes one and SIGHUP reloads the file), except
 * cs_keys_close and cs_keys_at (see there). A check never waits for a
 * change's disk sync, and sees a change as soon as its call returned.
 */
typedef struct cs_keyring cs_keyring;

/* An admin key (CS_ROLE_ADMIN) reaches the server's /admin/... routes and
 * nothing else: it reads no account's contacts. */
typedef enum cs_role {
  CS_ROLE_READ_WRITE = 0,
  CS_ROLE_READ_ONLY = 1,
  CS_ROLE_ADMIN = 2
} cs_role;

/* A role's word in the API and the tools: "read-write", "read-only",
 * "admin" (NULL for a value that is no role); and back (CS_EKEY for a
 * word that names none). */
const char *cs_role_name(cs_role r);
int cs_role_parse(const char *word, cs_role *out);

#define CS_KEY_BYTES 43    /* "ck_" and 40 characters of base62 */
#define CS_KEY_ID_BYTES 11 /* the key's first 11 characters, shown in lists */

typedef struct cs_key_info {
  char key_id[CS_KEY_ID_BYTES + 1]; /* public prefix, names a key in lists */
  char account[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  uint32_t account_id;
  cs_role role;
  int64_t created_ms;
  bool revoked;
} cs_key_info;

/* Loads dir/keys (an absent file is an empty ring). */
int cs_keys_open(const char *dir, cs_keyring **out, cs_error *err);
void cs_keys_close(cs_keyring *k);
/* The path of the key file. */
const char *cs_keys_path(const cs_keyring *k);

/* Creates a key for account (creating the account when new), saves the file
 * atomically and writes the key, NUL-terminated, to key_out: the only time
 * it is ever seen. CS_EACCOUNT for a bad name. */
int cs_keys_add(cs_keyring *k, const char *account, cs_role role,
                char key_out[CS_KEY_BYTES + 1], cs_key_info *info_out,
                cs_error *err);
/* Revokes the key whose key_id (exactly CS_KEY_ID_BYTES) or whole key
 * (CS_KEY_BYTES, its hash checked) is given; saves. CS_EKEY for anything
 * else, or no such key. */
int cs_keys_revoke(cs_keyring *k, const char *key_id, cs_error *err);
/* Re-reads the key file (the operator replaced it, SIGHUP). On any error
 * (missing, unreadable, damaged) the ring in memory stays as it was and
 * the error says why. A key in both keeps its entry, so a cs_key_info a check
 * handed out stays readable until cs_keys_close. */
int cs_keys_reload(cs_keyring *k, cs_error *err);
/* Number of keys (revoked ones included) and a copy of the i-th one's
 * public info: 0, or CS_EKEY past the end. */
size_t cs_keys_count(const cs_keyring *k);
int cs_keys_get(const cs_keyring *k, size_t i, cs_key_info *out);
/* The i-th key's info in place: for a single-threaded caller only (a
 * reload or revoke may change it under another thread's eyes). */
const cs_key_info *cs_keys_at(const cs_keyring *k, size_t i);
/* Finds an account's number by name. CS_EACCOUNT when unknown. */
int cs_keys_account_id(const cs_keyring *k, const char *account,
                       uint32_t *id_out);

/* The name of account number id into out (NUL-terminated). CS_EACCOUNT
 * when no key or account line names it. */
int cs_keys_account_name(const cs_keyring *k, uint32_t id,
                         char out[CS_ACCOUNT_NAME_MAX_BYTES + 1]);
/* The numbers of every account the ring names (by a key or made without
 * one), ascending, each once: the first cap of them into ids_out (may be
 * NULL when cap is 0). Returns how many there are. */
size_t cs_keys_account_list(const cs_keyring *k, uint32_t *ids_out, size_t cap);
/* Whether name is a valid account name (1 to CS_ACCOUNT_NAME_MAX_BYTES
 * letters, digits, '-', '_' or '.'). */
bool cs_keys_account_name_ok(const char *name);
/* An account by name, created when new (no key made; the file saved
 * atomically), its number in *id_out. CS_EACCOUNT for a bad name or when
 * CS_ACCOUNTS_MAX are taken. */
int cs_keys_account_ensure(cs_keyring *k, const char *account, uint32_t *id_out,
                           cs_error *err);

/*
 * Authenticates a presented key: hashes it and compares against every live
 * key in constant time. Returns 0 with the account and role, CS_EMOVING
 * with them all the same when the key is good and its account is marked
 * moving (cs_keys_set_moving: the caller refuses the account's requests,
 * and may let its admin requests through), or CS_EKEY for an unknown or
 * revoked key. Safe to call from many threads at once, and while keys
 * are added, revoked, marked or reloaded. *info_out stays readable until
 * cs_keys_close; of its fields only `revoked` may change later.
 */
int cs_keys_check(const cs_keyring *k, const char *key, size_t len,
                  const cs_key_info **info_out);

/* ---------------------------------------------------- moving an account */

/*
 * What moving an account from one store to another needs of the ring
 * (the admin routes of plugins/admin/README.md). Every call saves the
 * file atomically before the change is in force, and a failed call
 * changes nothing.
 */

/* The hex SHA-256 of a key: what the key file keeps. */
#define CS_KEY_HASH_HEX_BYTES 64

/* A key as it is kept: its public info and its hash (never the key). */
typedef struct cs_key_line {
  cs_key_info info;
  char hash[CS_KEY_HASH_HEX_BYTES + 1]; /* lower-case hex, NUL-terminated */
} cs_key_line;

/* The i-th key (revoked ones included) with its hash, as cs_keys_get: 0,
 * or CS_EKEY past the end. */
int cs_keys_get_line(const cs_keyring *k, size_t i, cs_key_line *out);

/*
 * Marks account moving (or clears the mark): from the call's return, every
 * check of its keys answers CS_EMOVING (or 0 again). Kept in the file, so
 * across restarts and reloads. Marking a marked account, or clearing an
 * unmarked one, writes nothing. CS_EACCOUNT when no key or account line
 * names it.
 */
int cs_keys_set_moving(cs_keyring *k, const char *account, bool moving,
                       cs_error *err);
/* Whether account number id is marked moving. */
bool cs_keys_moving(const cs_keyring *k, uint32_t id);

/*
 * Adds n keys to account, each as it is given (key id, hash, role,
 * created time and revoked flag; v[i].info.account must be account, and
 * account_id is ignored: the account's number is this ring's), making
 * the account when new (with no key when n is 0). All or nothing: a key
 * id the ring holds with the same hash for the same account is counted
 * in *present and left as it is; any other key holding that key id or
 * that hash is CS_EKEY (*bad the entry's index, nothing added); a
 * malformed entry (a key id that is not "ck_" and 8 letters or digits, a
 * hash that is not 64 hex digits, a role that is none, a negative time,
 * another account, a key id or hash twice in v) is CS_EINVAL (*bad its index).
 * CS_EACCOUNT for a bad name or when CS_ACCOUNTS_MAX are taken. 0 with
 * *added and *present.
 */
int cs_keys_import(cs_keyring *k, const char *account, const cs_key_line *v,
                   size_t n, size_t *added, size_t *present, size_t *bad,
                   cs_error *err);

/*
 * Removes account from the ring: every key of it (revoked ones too), its
 * account line and its moving mark; *keys_removed says how many keys.
 * Its number is never given to a new account (the store keeps its change
 * feed and idempotency entries under it). The account's contacts are the
 * caller's to purge first. A cs_key_info a check handed out stays
 * readable. CS_EACCOUNT when no key or account line names it.
 */
int cs_keys_account_remove(cs_keyring *k, const char *account,
                           size_t *keys_removed, cs_error *err);

#ifdef __cplusplus
}
#endif

#endif
