/*
 * io.c: the real file operations behind the I/O seam (cs_io).
 *
 * The store never calls these system calls directly, so that tests can put
 * a seam of their own in between to fail the Nth call or to drop what was
 * not synced (a simulated power loss).
 */
#include "cs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int px_open(void *ctx, const char *path, int flags, int mode) {
  int fd = open(path, flags | O_CLOEXEC, mode);
  return fd < 0 ? -errno : fd;
}

static int px_close(void *ctx, int fd) {
  return close(fd) < 0 ? -errno : 0;
}

static long px_pwrite(void *ctx, int fd, const void *buf, size_t len,
                      uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n =
        pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;
    done += (size_t)n;
  }
  return (long)done;
}

static int px_fdatasync(void *ctx, int fd) {
  return fdatasync(fd) < 0 ? -errno : 0;
}

static int px_fsync(void *ctx, int fd) {
  return fsync(fd) < 0 ? -errno : 0;
}

static int px_ftruncate(void *ctx, int fd, uint64_t len) {
  return ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
}

static int px_rename(void *ctx, const char *from, const char *to) {
  return rename(from, to) < 0 ? -errno : 0;
}

static int px_unlink(void *ctx, const char *path) {
  return unlink(path) < 0 ? -errno : 0;
}

static int px_fsync_dir(void *ctx, const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

static const cs_io posix_io = {
    .ctx = NULL,
    .open = px_open,
    .close = px_close,
    .pwrite = px_pwrite,
    .fdatasync = px_fdatasync,
    .fsync = px_fsync,
    .ftruncate = px_ftruncate,
    .rename = px_rename,
    .unlink = px_unlink,
    .fsync_dir = px_fsync_dir,
};

const cs_io *cs_io_posix(void) {
  return &posix_io;
}
