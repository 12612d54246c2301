/*
 * changes.c: the change feed's public calls (cs.h, "change feed"): reads
 * after a cursor, the feed's end, commit watchers; and the side files
 * the server keeps its own state in.
 *
 * Relied on: the feed's lists (feed.c) are kept under ilock by whoever
 * applies records (pindex.c), so a reader holding ilock sees every
 * change up to applied_seq and none after; the commit thread calls the
 * watchers (commit.c) after each batch is applied.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dir.h"
#include "err.h"
#include "store_int.h"

int cs_changes_read(cs_store *s, uint32_t account, uint64_t after,
                    unsigned types, cs_change *out, uint32_t max,
                    cs_changes *got, uint64_t *oldest, cs_error *err) {
  if (types & ~CS_CHANGE_TYPES_ALL)
    return cs_err(err, CS_EINVAL, "unknown change types");
  pthread_rwlock_rdlock(&s->ilock);
  uint64_t floor = 0;
  int rc = feed_read(&s->feed, account, after, s->applied_seq, types, out, max,
                     got, &floor);
  pthread_rwlock_unlock(&s->ilock);
  if (rc == CS_EEXPIRED) {
    if (oldest) *oldest = floor;
    return cs_err(err, rc,
                  "the changes after %llu are no longer kept; the "
                  "oldest cursor is %llu",
                  (unsigned long long)after, (unsigned long long)floor);
  }
  if (rc == CS_ECURSOR)
    return cs_err(err, rc, "cursor %llu is past the feed's end",
                  (unsigned long long)after);
  return 0;
}

uint64_t cs_changes_end(cs_store *s) {
  pthread_rwlock_rdlock(&s->ilock);
  uint64_t end = s->applied_seq;
  pthread_rwlock_unlock(&s->ilock);
  return end;
}

uint64_t cs_changes_oldest(cs_store *s, uint32_t account) {
  pthread_rwlock_rdlock(&s->ilock);
  uint64_t floor = feed_oldest(&s->feed, account);
  pthread_rwlock_unlock(&s->ilock);
  return floor;
}

int cs_watch_add(cs_store *s, cs_watch_fn fn, void *ctx) {
  int rc = 0;
  pthread_mutex_lock(&s->watchmu);
  if (s->watcher_count == CS_WATCHERS_MAX) {
    rc = CS_EINVAL;
  } else {
    s->watchers[s->watcher_count].fn = fn;
    s->watchers[s->watcher_count].ctx = ctx;
    s->watcher_count++;
  }
  pthread_mutex_unlock(&s->watchmu);
  return rc;
}

void cs_watch_remove(cs_store *s, cs_watch_fn fn, void *ctx) {
  pthread_mutex_lock(&s->watchmu);
  for (uint32_t i = 0; i < s->watcher_count; i++) {
    if (s->watchers[i].fn != fn || s->watchers[i].ctx != ctx) continue;
    s->watchers[i] = s->watchers[--s->watcher_count];
    break;
  }
  pthread_mutex_unlock(&s->watchmu);
}

/* ------------------------------------------------------------ side files */

static int side_name_check(const char *name, cs_error *err) {
  size_t n = strlen(name), sn = sizeof SIDE_SUFFIX - 1;
  bool ok = n > sn && n <= CS_SIDE_NAME_MAX_BYTES &&
            strcmp(name + n - sn, SIDE_SUFFIX) == 0;
  for (size_t i = 0; ok && i < n - sn; i++)
    ok = (name[i] >= 'a' && name[i] <= 'z') ||
         (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-';
  return ok ? 0
            : cs_err(err, CS_EINVAL,
                     "a side file's name is 1 to %d characters of a-z, 0-9, "
                     "_ and - ending \"" SIDE_SUFFIX "\"",
                     CS_SIDE_NAME_MAX_BYTES);
}

int cs_side_write(cs_store *s, const char *name, const void *data, size_t len,
                  cs_error *err) {
  int rc = side_name_check(name, err);
  if (rc) return rc;
  if (len > CS_SIDE_FILE_MAX_BYTES)
    return cs_err(err, CS_EINVAL, "%s: %zu bytes, more than a side file's %u",
                  name, len, CS_SIDE_FILE_MAX_BYTES);
  return dir_replace(s->io, s->dir, name, data, len, err);
}

int cs_side_read(cs_store *s, const char *name, uint8_t **data, size_t *len,
                 cs_error *err) {
  *data = NULL;
  *len = 0;
  int rc = side_name_check(name, err);
  if (rc) return rc;
  char path[DIR_PATH_BYTES];
  store_path(s, path, sizeof path, name);
  rc = store_read_file(path, data, len, CS_SIDE_FILE_MAX_BYTES);
  if (rc == -ENOENT) return cs_err(err, CS_ENOTFOUND, "%s: no such file", path);
  if (rc) return cs_err(err, rc, "cannot read %s: %s", path, cs_strerror(rc));
  return 0;
}
