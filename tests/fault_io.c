/*
 * fault_io.c: the failing, power-losing I/O seam of fault_io.h.
 */
#include "fault_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static fault_io *F(void *ctx) {
  return ctx;
}

/* Should this call fail? Counts it either way. */
static int should_fail(fault_io *f, int kind) {
  if (__atomic_load_n(&f->crashed, __ATOMIC_ACQUIRE)) return -EIO;
  long n = ++f->calls[kind];
  if (kind == f->fail_kind &&
      (n == f->fail_at || (f->persistent && n > f->fail_at))) {
    f->failures++;
    return -(f->fail_errno ? f->fail_errno : EIO);
  }
  return 0;
}

static fault_file *by_fd(fault_io *f, int fd) {
  for (int i = 0; i < f->file_count; i++)
    if (f->files[i].fd == fd) return &f->files[i];
  return NULL;
}

static fault_file *by_path(fault_io *f, const char *path) {
  for (int i = 0; i < f->file_count; i++)
    if (strcmp(f->files[i].path, path) == 0) return &f->files[i];
  return NULL;
}

static int fi_open(void *ctx, const char *path, int flags, int mode) {
  fault_io *f = F(ctx);
  int rc = should_fail(f, FAULT_OPEN);
  if (rc) return rc;
  int fd = open(path, flags | O_CLOEXEC, mode);
  if (fd < 0) return -errno;
  fault_file *t = by_path(f, path);
  if (!t && f->file_count < FAULT_FILES_MAX) {
    t = &f->files[f->file_count++];
    snprintf(t->path, sizeof t->path, "%s", path);
    off_t end = lseek(fd, 0, SEEK_END);
    t->size = t->synced = end > 0 ? (uint64_t)end : 0;
  }
  if (t) {
    t->fd = fd;
    if (flags & O_TRUNC) t->size = 0; /* truncation reaches the disk lazily */
  }
  return fd;
}

static int fi_close(void *ctx, int fd) {
  fault_file *t = by_fd(F(ctx), fd);
  if (t) t->fd = -1;
  return close(fd) < 0 ? -errno : 0;
}

static long fi_pwrite(void *ctx, int fd, const void *buf, size_t len,
                      uint64_t off) {
  fault_io *f = F(ctx);
  int rc = should_fail(f, FAULT_WRITE);
  if (rc) return rc;
  ssize_t n = pwrite(fd, buf, len, (off_t)off);
  if (n < 0) return -errno;
  fault_file *t = by_fd(f, fd);
  if (t && off + (uint64_t)n > t->size) t->size = off + (uint64_t)n;
  return n;
}

static int fi_sync(void *ctx, int fd) {
  fault_io *f = F(ctx);
  int rc = should_fail(f, FAULT_SYNC);
  if (rc) return rc;
  fault_file *t = by_fd(f, fd);
  if (t) t->synced = t->size;
  return 0; /* the real sync is not needed: power loss is simulated */
}

static int fi_ftruncate(void *ctx, int fd, uint64_t len) {
  fault_io *f = F(ctx);
  int rc = should_fail(f, FAULT_TRUNCATE);
  if (rc) return rc;
  if (ftruncate(fd, (off_t)len) < 0) return -errno;
  fault_file *t = by_fd(f, fd);
  if (t) {
    t->size = len;
    if (t->synced > len) t->synced = len;
  }
  return 0;
}

static int fi_rename(void *ctx, const char *from, const char *to) {
  fault_io *f = F(ctx);
  int rc = should_fail(f, FAULT_RENAME);
  if (rc) return rc;
  if (rename(from, to) < 0) return -errno;
  fault_file *old = by_path(f, to);
  if (old) old->path[0] = 0; /* replaced */
  fault_file *t = by_path(f, from);
  if (t) snprintf(t->path, sizeof t->path, "%s", to);
  return 0;
}

static int fi_unlink(void *ctx, const char *path) {
  fault_io *f = F(ctx);
  if (__atomic_load_n(&f->crashed, __ATOMIC_ACQUIRE)) return -EIO;
  if (unlink(path) < 0) return -errno;
  fault_file *t = by_path(f, path);
  if (t) t->path[0] = 0;
  return 0;
}

static int fi_fsync_dir(void *ctx, const char *dir) {
  return should_fail(F(ctx), FAULT_DIRSYNC);
}

void fault_io_init(fault_io *f) {
  memset(f, 0, sizeof *f);
  f->fail_kind = -1;
  f->io.ctx = f;
  f->io.open = fi_open;
  f->io.close = fi_close;
  f->io.pwrite = fi_pwrite;
  f->io.fdatasync = fi_sync;
  f->io.fsync = fi_sync;
  f->io.ftruncate = fi_ftruncate;
  f->io.rename = fi_rename;
  f->io.unlink = fi_unlink;
  f->io.fsync_dir = fi_fsync_dir;
}

void fault_io_arm(fault_io *f, int kind, long nth, bool persistent, int e) {
  f->fail_kind = kind;
  f->fail_at = nth;
  f->persistent = persistent;
  f->fail_errno = e;
}

void fault_io_crash(fault_io *f) {
  __atomic_store_n(&f->crashed, true, __ATOMIC_RELEASE);
}

void fault_io_power_loss(fault_io *f, int mode, unsigned seed) {
  srand(seed);
  for (int i = 0; i < f->file_count; i++) {
    fault_file *t = &f->files[i];
    if (!t->path[0] || t->size <= t->synced) continue;
    uint64_t unsynced = t->size - t->synced;
    uint64_t keep =
        mode == POWER_DROP_UNSYNCED ? 0 : (uint64_t)rand() % (unsynced + 1);
    if (truncate(t->path, (off_t)(t->synced + keep)) < 0) continue;
    if (mode == POWER_GARBAGE_TAIL && keep > 0) {
      int fd = open(t->path, O_WRONLY | O_CLOEXEC);
      if (fd < 0) continue;
      uint64_t from = t->synced + (uint64_t)rand() % keep;
      for (uint64_t p = from; p < t->synced + keep; p++) {
        unsigned char b = (unsigned char)rand();
        if (pwrite(fd, &b, 1, (off_t)p) != 1) break;
      }
      close(fd);
    }
  }
}
