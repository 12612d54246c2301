/*
 * fe_keys.h: the first key of a new data directory.
 *
 * A server started on a data directory whose keyring holds no key at all
 * creates account "default" with one read-write key, so that a fresh
 * install answers its first request without an admin step. The key is shown
 * once on stderr and kept in DATA/default.key (mode 0600, written
 * atomically) for scripts; the keyring itself stores only its hash.
 */
#ifndef FE_KEYS_H
#define FE_KEYS_H

#include <stddef.h>

#include "cs.h"

/* File name of the first key, inside the data directory. */
#define FE_DEFAULT_KEY_FILE "default.key"

/*
 * When k holds no key, adds the default account's key, writes it to
 * data_dir/default.key and says so on stderr. Returns 0 (also when keys
 * exist and nothing was done), or a negative code with a message in err.
 */
int fe_keys_bootstrap(cs_keyring *k, const char *data_dir, char *err,
                      size_t errlen);

/*
 * Writes data (len bytes) to path atomically with the given mode: a
 * temporary beside it, fsync, rename, fsync of the directory. 0 or -errno.
 */
int fe_write_file_atomic(const char *path, const void *data, size_t len,
                         int mode);

#endif
