/*
 * fuzz_util.c: see fuzz_util.h.
 */
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <xxhash.h>

void fz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz invariant broken: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

char *fz_tmpdir(void) {
  const char *base =
      access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/csfuzz-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(tmpl)) fz_fail("mkdtemp %s: %s", tmpl, strerror(errno));
  return strdup(tmpl);
}

void fz_rmrf(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (e->d_type == DT_DIR)
        fz_rmrf(path);
      else
        unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

void fz_write(const char *dir, const char *name, const void *p, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fz_fail("open %s: %s", path, strerror(errno));
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, (const char *)p + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fz_fail("write %s: %s", path, strerror(errno));
    done += (size_t)n;
  }
  close(fd);
}

uint8_t *fz_read(const char *dir, const char *name, size_t *len_out) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  *len_out = len;
  return buf;
}

static int nosync_open(void *ctx, const char *path, int flags, int mode) {
  const cs_io *p = cs_io_posix();
  return p->open(p->ctx, path, flags, mode);
}
static int nosync_close(void *ctx, int fd) {
  const cs_io *p = cs_io_posix();
  return p->close(p->ctx, fd);
}
static long nosync_pwrite(void *ctx, int fd, const void *buf, size_t len,
                          uint64_t off) {
  const cs_io *p = cs_io_posix();
  return p->pwrite(p->ctx, fd, buf, len, off);
}
static int nosync_sync(void *ctx, int fd) {
  return 0;
}
static int nosync_ftruncate(void *ctx, int fd, uint64_t len) {
  const cs_io *p = cs_io_posix();
  return p->ftruncate(p->ctx, fd, len);
}
static int nosync_rename(void *ctx, const char *from, const char *to) {
  const cs_io *p = cs_io_posix();
  return p->rename(p->ctx, from, to);
}
static int nosync_unlink(void *ctx, const char *path) {
  const cs_io *p = cs_io_posix();
  return p->unlink(p->ctx, path);
}
static int nosync_dir(void *ctx, const char *dir) {
  return 0;
}

static const cs_io fz_nosync = {
    .ctx = NULL,
    .open = nosync_open,
    .close = nosync_close,
    .pwrite = nosync_pwrite,
    .fdatasync = nosync_sync,
    .fsync = nosync_sync,
    .ftruncate = nosync_ftruncate,
    .rename = nosync_rename,
    .unlink = nosync_unlink,
    .fsync_dir = nosync_dir,
};

const cs_io *fz_io_nosync(void) {
  return &fz_nosync;
}

static void fz_quiet(void *ctx, const char *line) {
  if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "notice: %s\n", line);
}

cs_options fz_options(void) {
  cs_options o = {.durability = CS_DURABILITY_NONE,
                  .io = fz_io_nosync(),
                  .no_snapshot_on_close = true,
                  .notice = fz_quiet};
  return o;
}

static int fz_sbuf(void *data, const char *buf, size_t len) {
  msgpack_sbuffer_write(data, buf, len);
  return 0;
}

static void fz_pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

void fz_manifest(const char *dir, uint32_t first, uint32_t last,
                 const char *snapshot) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_sbuffer_write(&sb, "CTMANIF1", 8);
  static const char zero[16];
  msgpack_sbuffer_write(&sb, zero, 16);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, fz_sbuf);
  msgpack_pack_map(&pk, 5);
  fz_pack_str(&pk, "format");
  msgpack_pack_uint32(&pk, 1);
  fz_pack_str(&pk, "first_segment");
  msgpack_pack_uint32(&pk, first);
  fz_pack_str(&pk, "last_segment");
  msgpack_pack_uint32(&pk, last);
  fz_pack_str(&pk, "snapshot");
  if (snapshot)
    fz_pack_str(&pk, snapshot);
  else
    msgpack_pack_nil(&pk);
  fz_pack_str(&pk, "next_id");
  msgpack_pack_uint64(&pk, CS_ID_MIN + 1); /* what a new store writes */
  uint64_t plen = sb.size - 24;
  uint64_t sum = XXH3_64bits(sb.data + 24, plen);
  for (int i = 0; i < 8; i++) {
    sb.data[8 + i] = (char)(plen >> (8 * i));
    sb.data[16 + i] = (char)(sum >> (8 * i));
  }
  fz_write(dir, "MANIFEST", sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

void fz_copy(const char *from_dir, const char *to_dir, const char *name) {
  size_t len;
  uint8_t *p = fz_read(from_dir, name, &len);
  if (!p) fz_fail("cannot read %s/%s", from_dir, name);
  fz_write(to_dir, name, p, len);
  free(p);
}
