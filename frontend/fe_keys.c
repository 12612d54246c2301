/*
 * fe_keys.c: the first key of a new data directory, and an atomic file
 * write for it.
 */
#include "fe_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fe_limits.h"
#include "fe_log.h"

int fe_write_file_atomic(const char *path, const void *data, size_t len,
                         int mode) {
  char tmp[FE_PATH_MAX_BYTES], dir[FE_PATH_MAX_BYTES];
  int rc = 0, fd = -1;

  if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
      (int)sizeof(tmp))
    return -ENAMETOOLONG;
  snprintf(dir, sizeof(dir), "%s", path);

  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return -errno;
  /* The umask may have taken bits away; it never gives more than mode. */
  if (fchmod(fd, (mode_t)mode) != 0) goto werr;
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      goto werr;
    }
    p += n;
    left -= (size_t)n;
  }
  if (fsync(fd) != 0) goto werr;
  if (close(fd) != 0) {
    fd = -1;
    goto werr;
  }
  fd = -1;
  if (rename(tmp, path) != 0) goto werr;

  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  rc = fsync(dfd) != 0 ? -errno : 0;
  close(dfd);
  return rc;

werr:
  rc = -errno;
  if (fd >= 0) close(fd);
  unlink(tmp);
  return rc;
}

int fe_keys_bootstrap(cs_keyring *k, const char *data_dir, char *err,
                      size_t errlen) {
  if (cs_keys_count(k) > 0) return 0;

  char key[CS_KEY_BYTES + 1];
  cs_key_info info;
  cs_error e = {0};
  int rc = cs_keys_add(k, "default", CS_ROLE_READ_WRITE, key, &info, &e);
  if (rc != 0) {
    snprintf(err, errlen, "creating the first key in %s: %s", data_dir,
             e.msg[0] != '\0' ? e.msg : cs_strerror(rc));
    return rc;
  }

  char path[FE_PATH_MAX_BYTES + sizeof(FE_DEFAULT_KEY_FILE) + 1],
      abs_dir[FE_PATH_MAX_BYTES];
  const char *shown_dir =
      realpath(data_dir, abs_dir) != NULL ? abs_dir : data_dir;
  snprintf(path, sizeof(path), "%.4095s/%s", shown_dir, FE_DEFAULT_KEY_FILE);

  char line[CS_KEY_BYTES + 2];
  int n = snprintf(line, sizeof(line), "%s\n", key);
  rc = fe_write_file_atomic(path, line, (size_t)n, 0600);
  if (rc != 0) {
    /* The key exists in the keyring now; show it anyway so it is not lost. */
    fe_log_printf(CD_LOG_WARN, NULL,
                  "API key for account default: %s (could not keep it in "
                  "%s: %s)",
                  key, path, strerror(-rc));
    memset(key, 0, sizeof(key));
    memset(line, 0, sizeof(line));
    return 0;
  }
  fe_log_printf(CD_LOG_INFO, NULL,
                "API key for account default: %s; kept in %s (readable by "
                "its owner only)",
                key, path);
  memset(key, 0, sizeof(key));
  memset(line, 0, sizeof(line));
  return 0;
}
