/*
 * bare.c: bare stores (bare.h) and the directory lock alone (admin.h's
 * cs_dir_lock), the pieces verify.c and compact.c share.
 *
 * Invariants kept: a bare store holds the directory's lock for as long as
 * it lives, as an open store does, so no offline operation ever runs
 * beside the server or another tool (DESIGN "Exclusivity").
 */
#include "bare.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "admin.h"
#include "dir.h"
#include "err.h"
#include "log.h"
#include "store_int.h"

cs_store *bare_new(const char *dir, const cs_io *io) {
  cs_options o = {.io = io};
  return store_new(dir, &o);
}

int bare_open(const char *dir, const cs_io *io, cs_store **out,
              uint64_t *id_floor, cs_error *err) {
  *out = NULL;
  cs_store *s = bare_new(dir, io);
  if (!s) return cs_err(err, -ENOMEM, "out of memory");
  struct stat st;
  int rc = 0;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
    rc = cs_err(err, -ENOENT, "%s is not a data directory", dir);
  if (!rc) rc = dir_lock(s, err);
  if (!rc) rc = manifest_read(s, id_floor, err);
  if (!rc) rc = store_map_segments(s, err);
  if (rc) {
    store_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* ------------------------------------------------------------- the lock */

struct cs_dirlock {
  cs_store *s;
};

int cs_dir_lock(const char *dir, cs_dirlock **out, cs_error *err) {
  *out = NULL;
  struct stat st;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
    return cs_err(err, -ENOENT, "%s is not a data directory", dir);
  cs_dirlock *l = calloc(1, sizeof *l);
  if (l) l->s = bare_new(dir, NULL);
  if (!l || !l->s) {
    free(l);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  int rc = dir_lock(l->s, err);
  if (rc) {
    cs_dir_unlock(l);
    return rc;
  }
  *out = l;
  return 0;
}

bool cs_dir_is_store(const char *dir) {
  char path[DIR_PATH_BYTES];
  snprintf(path, sizeof path, "%s/%s", dir, MANIFEST_NAME);
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void cs_dir_unlock(cs_dirlock *l) {
  if (!l) return;
  store_free(l->s);
  free(l);
}
