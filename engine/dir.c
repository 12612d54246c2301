/*
 * dir.c: the data directory (file names in dir.h): the lock, the manifest,
 * the one atomic replace, and the tidying of files an interrupted write
 * left behind.
 *
 * The manifest, "MANIFEST":
 *
 *   offset size  field
 *   0      8     magic "CTMANIF1"
 *   8      8     payload length, little endian (= file size - 24; not 0)
 *   16     8     XXH3-64 of the payload, little endian
 *   24     len   payload: one msgpack map, all five keys required:
 *                  "format"         u32, REC_FORMAT_VERSION when written;
 *                                   REC_FORMAT_OLDEST.. read
 *                  "first_segment"  u32, >= 1
 *                  "last_segment"   u32, >= first_segment
 *                  "snapshot"       str (a file name in the directory,
 *                                   1..MANIFEST_SNAPSHOT_NAME_MAX bytes,
 *                                   no '/') or nil
 *                  "next_id"        u64, the id floor
 *                and one optional key (a manifest written before shards
 *                lacks it: shard 0):
 *                  "shard"          u32, 0..CS_SHARD_MAX, the store's shard
 *                unknown keys are ignored (so an older contactd opens a
 *                shard's store and keeps giving ids past its floor)
 *
 * Invariants kept here:
 *   - every file the store relies on is replaced whole or not at all
 *     (dir_replace: temporary, fsync, rename, fsync the directory; DESIGN
 *     promise 8), and every write goes through the cs_io seam so fault
 *     tests can fail any step;
 *   - the manifest's size is bounded and its checksum verified before
 *     msgpack sees a byte (promise 10).
 * Relied on: callers hold mmu (or are alone with the store) while they
 * read or change the manifest's fields of cs_store.
 */
#include "dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "err.h"
#include "le.h"
#include "mp.h"
#include "store_int.h"

#define MANIFEST_MAGIC "CTMANIF1"
#define MANIFEST_MAGIC_BYTES (sizeof MANIFEST_MAGIC - 1)
#define MANIFEST_HEADER_BYTES 24 /* magic 8, payload length 8, XXH3 8 */
_Static_assert(MANIFEST_MAGIC_BYTES + 16 == MANIFEST_HEADER_BYTES,
               "manifest header: magic, length, checksum");
/* A manifest is six small keys: anything past this is not one. */
#define MANIFEST_BYTES_MAX (1u << 20)
/* Snapshot names are "snap-<16 hex>.snap"; a longer name is damage. */
#define MANIFEST_SNAPSHOT_NAME_MAX 199
/* What the payload is packed into first: it always fits. */
#define MANIFEST_BUF_BYTES 4096

/* The keys manifest_read found, one bit each: all must be there. */
enum {
  MANIFEST_HAVE_FORMAT = 1 << 0,
  MANIFEST_HAVE_FIRST = 1 << 1,
  MANIFEST_HAVE_LAST = 1 << 2,
  MANIFEST_HAVE_NEXT_ID = 1 << 3,
  MANIFEST_HAVE_SNAPSHOT = 1 << 4,
  MANIFEST_HAVE_ALL = (1 << 5) - 1,
};

void store_path(const cs_store *s, char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", s->dir, name);
}

void seg_name(char *buf, size_t len, uint32_t seg_no) {
  snprintf(buf, len, "%08u.seg", seg_no);
}

/* ---------------------------------------------------------------- lock */

int dir_lock(cs_store *s, cs_error *err) {
  char path[DIR_PATH_BYTES];
  store_path(s, path, sizeof path, LOCK_NAME);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return cs_err(err, -errno, "cannot open %s: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    close(fd);
    if (e == EWOULDBLOCK)
      return cs_err(err, CS_ELOCKED,
                    "data directory %s is in use by process %s (lock %s)",
                    s->dir, pid[0] ? pid : "?", path);
    return cs_err(err, -e, "cannot lock %s: %s", path, strerror(e));
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    int e = errno;
    close(fd);
    return cs_err(err, -e, "cannot write %s: %s", path, strerror(e));
  }
  s->lock_fd = fd;
  return 0;
}

/* ------------------------------------------------------ atomic replace */

int dir_replace(const cs_io *io, const char *dir, const char *name,
                const void *buf, size_t len, cs_error *err) {
  char tmp[DIR_PATH_BYTES], path[DIR_PATH_BYTES];
  snprintf(tmp, sizeof tmp, "%s/%s" TMP_SUFFIX, dir, name);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = io->open(io->ctx, tmp, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0)
    return cs_err(err, fd, "cannot create %s: %s", tmp, cs_strerror(fd));
  long n = io->pwrite(io->ctx, fd, buf, len, 0);
  int rc = n < 0 ? (int)n : 0;
  if (!rc) rc = io->fsync(io->ctx, fd);
  int crc = io->close(io->ctx, fd);
  if (!rc) rc = crc;
  if (rc) {
    io->unlink(io->ctx, tmp);
    return cs_err(err, rc, "cannot write %s: %s", tmp, cs_strerror(rc));
  }
  rc = io->rename(io->ctx, tmp, path);
  if (rc)
    return cs_err(err, rc, "cannot rename %s to %s: %s", tmp, path,
                  cs_strerror(rc));
  rc = io->fsync_dir(io->ctx, dir);
  if (rc)
    return cs_err(err, rc, "cannot sync directory %s: %s", dir,
                  cs_strerror(rc));
  return 0;
}

/* ------------------------------------------------------------ manifest */

int manifest_encode(rec_buf *b, uint32_t first_seg, uint32_t last_seg,
                    const char *snapshot, uint64_t next_id, uint32_t shard) {
  b->len = 0;
  if (rec_buf_reserve(b, MANIFEST_BUF_BYTES)) return -ENOMEM;
  b->len = MANIFEST_HEADER_BYTES;
  msgpack_packer pk;
  msgpack_packer_init(&pk, b, rec_buf_write);
  msgpack_pack_map(&pk, 6);
  mp_pack_cstr(&pk, "format");
  msgpack_pack_uint32(&pk, REC_FORMAT_VERSION);
  mp_pack_cstr(&pk, "first_segment");
  msgpack_pack_uint32(&pk, first_seg);
  mp_pack_cstr(&pk, "last_segment");
  msgpack_pack_uint32(&pk, last_seg);
  mp_pack_cstr(&pk, "snapshot");
  if (snapshot)
    mp_pack_cstr(&pk, snapshot);
  else
    msgpack_pack_nil(&pk);
  mp_pack_cstr(&pk, "next_id");
  msgpack_pack_uint64(&pk, next_id);
  mp_pack_cstr(&pk, "shard");
  msgpack_pack_uint32(&pk, shard);
  uint64_t plen = b->len - MANIFEST_HEADER_BYTES;
  memcpy(b->ptr, MANIFEST_MAGIC, MANIFEST_MAGIC_BYTES);
  le_put64(b->ptr + 8, plen);
  le_put64(b->ptr + 16, XXH3_64bits(b->ptr + MANIFEST_HEADER_BYTES, plen));
  return 0;
}

int manifest_write(cs_store *s, uint64_t next_id, cs_error *err) {
  rec_buf b = {0};
  if (manifest_encode(&b, s->first_seg, s->last_seg, s->snapshot_name, next_id,
                      s->shard)) {
    rec_buf_free(&b);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  int rc = dir_replace(s->io, s->dir, MANIFEST_NAME, b.ptr, b.len, err);
  rec_buf_free(&b);
  return rc;
}

int store_read_file(const char *path, uint8_t **out, size_t *len,
                    uint64_t max) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  if ((uint64_t)st.st_size > max) {
    close(fd);
    return -EFBIG;
  }
  uint8_t *p = malloc((size_t)st.st_size + 1);
  if (!p) {
    close(fd);
    return -ENOMEM;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, p + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  *out = p;
  *len = got;
  return 0;
}

/* One key of the manifest's map into s (and *id_floor): the bit it found,
 * 0 for a key it ignores, or -1 when the value is wrong (*rc, *why set
 * when that is not plain damage). */
static int manifest_key(cs_store *s, const msgpack_object *k,
                        const msgpack_object *v, uint64_t *id_floor, int *rc,
                        const char **why) {
  bool num = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
  if (MP_KEY_IS(k, "format") && num) {
    if (v->via.u64 < REC_FORMAT_OLDEST || v->via.u64 > REC_FORMAT_VERSION) {
      *rc = CS_EFORMAT;
      *why = "unknown format version";
      return -1;
    }
    return MANIFEST_HAVE_FORMAT;
  }
  if (MP_KEY_IS(k, "first_segment") && num && v->via.u64 >= 1 &&
      v->via.u64 < UINT32_MAX) {
    s->first_seg = (uint32_t)v->via.u64;
    return MANIFEST_HAVE_FIRST;
  }
  if (MP_KEY_IS(k, "last_segment") && num && v->via.u64 < UINT32_MAX) {
    s->last_seg = (uint32_t)v->via.u64;
    return MANIFEST_HAVE_LAST;
  }
  if (MP_KEY_IS(k, "shard")) {
    if (!num || v->via.u64 > CS_SHARD_MAX) return -1;
    s->shard = (uint32_t)v->via.u64;
    return 0; /* optional */
  }
  if (MP_KEY_IS(k, "next_id") && num) {
    *id_floor = v->via.u64;
    return MANIFEST_HAVE_NEXT_ID;
  }
  if (MP_KEY_IS(k, "snapshot")) {
    if (v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 &&
        v->via.str.size <= MANIFEST_SNAPSHOT_NAME_MAX &&
        !memchr(v->via.str.ptr, '/', v->via.str.size)) {
      s->snapshot_name = strndup(v->via.str.ptr, v->via.str.size);
    } else if (v->type != MSGPACK_OBJECT_NIL) {
      return -1;
    }
    return MANIFEST_HAVE_SNAPSHOT;
  }
  return 0;
}

int manifest_read(cs_store *s, uint64_t *id_floor, cs_error *err) {
  char path[DIR_PATH_BYTES];
  store_path(s, path, sizeof path, MANIFEST_NAME);
  uint8_t *buf;
  size_t len;
  int rc = store_read_file(path, &buf, &len, MANIFEST_BYTES_MAX);
  if (rc) return cs_err(err, rc, "cannot read %s: %s", path, cs_strerror(rc));
  rc = CS_ECORRUPT;
  const char *why = "bad header or checksum";
  msgpack_zone zone;
  msgpack_zone_init(&zone, 1024);
  uint64_t plen = 0, sum = 0;
  if (len >= MANIFEST_HEADER_BYTES &&
      memcmp(buf, MANIFEST_MAGIC, MANIFEST_MAGIC_BYTES) == 0) {
    plen = le_get64(buf + 8);
    sum = le_get64(buf + 16);
  }
  if (plen && plen == len - MANIFEST_HEADER_BYTES &&
      sum == XXH3_64bits(buf + MANIFEST_HEADER_BYTES, plen) &&
      rec_msgpack_fits(buf + MANIFEST_HEADER_BYTES, plen)) {
    msgpack_object o;
    size_t off = 0;
    why = "bad contents";
    if (msgpack_unpack((const char *)buf + MANIFEST_HEADER_BYTES, plen, &off,
                       &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_MAP) {
      int have = 0;
      for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object *k = &o.via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) continue;
        int bit =
            manifest_key(s, k, &o.via.map.ptr[i].val, id_floor, &rc, &why);
        if (bit < 0) goto out;
        have |= bit;
      }
      if (have == MANIFEST_HAVE_ALL && s->last_seg >= s->first_seg) rc = 0;
    }
  }
out:
  msgpack_zone_destroy(&zone);
  free(buf);
  if (rc)
    return cs_err(err, rc, "%s is damaged (%s); run contactctl verify", path,
                  why);
  return 0;
}

/* --------------------------------------------------------------- strays */

bool store_file_is_stray(const cs_store *s, const char *name) {
  unsigned no;
  char extra;
  size_t n = strlen(name);
  size_t tn = sizeof TMP_SUFFIX - 1;
  if (n > tn && strcmp(name + n - tn, TMP_SUFFIX) == 0) return true;
  /* "%08u.seg": 8 digits and 4 more, nothing else. */
  if (sscanf(name, "%8u.se%c", &no, &extra) == 2 && extra == 'g' && n == 12 &&
      (no > s->last_seg || no < s->first_seg))
    return true;
  return strncmp(name, SNAP_NAME_PREFIX, sizeof SNAP_NAME_PREFIX - 1) == 0 &&
         (!s->snapshot_name || strcmp(name, s->snapshot_name) != 0);
}

/* Temporaries, and segments past the manifest's last (created by a roll
 * that never reached the manifest, so they never held an acknowledged
 * record), and snapshots it does not name. */
void dir_remove_strays(cs_store *s) {
  DIR *d = opendir(s->dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (store_file_is_stray(s, e->d_name)) {
      char path[DIR_PATH_BYTES];
      store_path(s, path, sizeof path, e->d_name);
      if (s->io->unlink(s->io->ctx, path) == 0)
        store_notice(s, "removed %s, which is not part of the store", path);
    }
  }
  closedir(d);
}

uint64_t dir_file_bytes(const cs_store *s, const char *name) {
  char path[DIR_PATH_BYTES];
  struct stat st;
  store_path(s, path, sizeof path, name);
  return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}
