/*
 * backup.c: cs_backup_*, a copy of the whole store as of one commit while
 * it serves and writes.
 *
 * cs_backup_begin pins, holding ilock for reading and mmu (so the commit
 * thread applies nothing and no snapshot or manifest changes meanwhile,
 * while readers and the acceptance of writes go on):
 *   - the applied position: every record up to applied_seq, ending at
 *     (applied_seg, applied_off); all of it written (and synced, under
 *     CS_DURABILITY_FSYNC) before it was applied (invariant 2);
 *   - segments first_seg..applied_seg, each by an open descriptor, each to
 *     its applied size (seg_map.size, grown by apply_batch), the last to
 *     applied_off: what a batch wrote past it, or a segment a roll
 *     started, is left out, so the copy ends at a record's end and open
 *     cuts nothing;
 *   - the snapshot the manifest names: it was written from an applied
 *     state, so it never covers more than the pinned log;
 *   - "keys" and the "*.side" files, as they are at that moment (each is
 *     replaced whole by a rename, so a descriptor holds one version);
 *   - a manifest made here for exactly these segments and that snapshot,
 *     with the id floor read under wmu just before.
 * After that nothing is held: the descriptors keep the bytes even if a
 * compaction removes the files, and the parts of a segment handed out
 * never change (the log only grows). The manifest goes last, so a copy cut
 * short has segments and no manifest, which open refuses.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir.h"
#include "err.h"
#include "store_int.h"

/* One file of a backup: bytes from fd (or from the manifest buffer). */
typedef struct backup_ent {
  char name[CS_SIDE_NAME_MAX_BYTES + 1]; /* the longest name handed out */
  int fd;                                /* -1: the manifest */
  uint64_t size;
  uint32_t mode;
  int64_t mtime_s;
} backup_ent;

struct cs_backup {
  backup_ent *v;
  size_t count, cap;
  size_t cur; /* 1 + the file next handed out; 0 before the first */
  uint64_t off;
  uint64_t seq;
  rec_buf manifest;
};

_Static_assert(sizeof(((backup_ent *)0)->name) >= SEG_NAME_BYTES,
               "a segment's name fits");

static void backup_free(cs_backup *b) {
  for (size_t i = 0; i < b->count; i++)
    if (b->v[i].fd >= 0) close(b->v[i].fd);
  free(b->v);
  rec_buf_free(&b->manifest);
  free(b);
}

/* Adds dir/name, open and stat'ed, of size bytes (UINT64_MAX: all of it).
 * 0, -ENOENT when the file is not there, or -errno. */
static int backup_add(cs_backup *b, const cs_store *s, const char *name,
                      uint64_t size) {
  if (b->count == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    backup_ent *p = realloc(b->v, cap * sizeof *p);
    if (!p) return -ENOMEM;
    b->v = p;
    b->cap = cap;
  }
  char path[DIR_PATH_BYTES];
  store_path(s, path, sizeof path, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  backup_ent *e = &b->v[b->count++];
  snprintf(e->name, sizeof e->name, "%s", name);
  e->fd = fd;
  e->size = size < (uint64_t)st.st_size ? size : (uint64_t)st.st_size;
  e->mode = st.st_mode & 07777;
  e->mtime_s = (int64_t)st.st_mtime;
  return 0;
}

/* Is name one of the side files (cs_side_write's names)? */
static bool is_side_file(const char *name) {
  size_t n = strlen(name), sn = sizeof SIDE_SUFFIX - 1;
  return n > sn && n <= CS_SIDE_NAME_MAX_BYTES &&
         strcmp(name + n - sn, SIDE_SUFFIX) == 0;
}

/* The key file and the side files; a file gone since the listing is
 * skipped. Caller holds mmu. */
static int backup_add_extras(cs_backup *b, cs_store *s) {
  int rc = backup_add(b, s, KEYS_NAME, UINT64_MAX);
  if (rc && rc != -ENOENT) return rc;
  DIR *d = opendir(s->dir);
  if (!d) return -errno;
  struct dirent *e;
  rc = 0;
  while (!rc && (e = readdir(d)))
    if (is_side_file(e->d_name)) {
      rc = backup_add(b, s, e->d_name, UINT64_MAX);
      if (rc == -ENOENT) rc = 0;
    }
  closedir(d);
  return rc;
}

/* The pinning moment: the caller holds ilock for reading. */
static int backup_pin(cs_backup *b, cs_store *s, uint64_t id_floor,
                      cs_error *err) {
  pthread_mutex_lock(&s->mmu);
  int rc = 0;
  uint32_t last = s->applied_seg < s->first_seg ? s->first_seg : s->applied_seg;
  char name[SEG_NAME_BYTES];
  for (uint32_t no = s->first_seg; no <= last && !rc; no++) {
    seg_map *m = log_seg(s->segs, s->first_seg, s->seg_count, no);
    uint64_t size = m ? m->size : SEG_HEADER_BYTES;
    if (no == s->applied_seg && s->applied_off) size = s->applied_off;
    seg_name(name, sizeof name, no);
    rc = backup_add(b, s, name, size);
    if (rc)
      cs_err(err, rc, "cannot open %s/%s: %s", s->dir, name, cs_strerror(rc));
  }
  /* The snapshot is only a speed-up: one that cannot be opened is left
   * out, and the manifest then names none. */
  const char *snap = NULL;
  if (!rc && s->snapshot_name &&
      backup_add(b, s, s->snapshot_name, UINT64_MAX) == 0)
    snap = s->snapshot_name;
  if (!rc) {
    rc = backup_add_extras(b, s);
    if (rc)
      cs_err(err, rc, "cannot open the files of %s: %s", s->dir,
             cs_strerror(rc));
  }
  if (!rc) {
    uint64_t next = pindex_next_id(s);
    uint64_t floor = next > id_floor ? next : id_floor;
    rc = manifest_encode(&b->manifest, s->first_seg, last, snap, floor,
                         s->shard);
    if (rc) cs_err(err, rc, "out of memory");
  }
  b->seq = s->applied_seq;
  pthread_mutex_unlock(&s->mmu);
  return rc;
}

int cs_backup_begin(cs_store *s, cs_backup **out, cs_error *err) {
  *out = NULL;
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  cs_backup *b = calloc(1, sizeof *b);
  if (!b) return cs_err(err, -ENOMEM, "out of memory");
  /* The id floor first (wmu comes before ilock): every id handed out so
   * far, committed or not, stays below what the copy gives next. */
  pthread_mutex_lock(&s->wmu);
  uint64_t id_floor = s->next_id;
  pthread_mutex_unlock(&s->wmu);
  pthread_rwlock_rdlock(&s->ilock);
  int rc = backup_pin(b, s, id_floor, err);
  pthread_rwlock_unlock(&s->ilock);
  if (!rc && b->count == b->cap) { /* room for the manifest */
    backup_ent *p = realloc(b->v, (b->cap + 1) * sizeof *p);
    if (!p)
      rc = cs_err(err, -ENOMEM, "out of memory");
    else
      b->v = p, b->cap++;
  }
  if (rc) {
    backup_free(b);
    return rc;
  }
  /* The manifest last, from memory. */
  backup_ent *m = &b->v[b->count++];
  snprintf(m->name, sizeof m->name, "%s", MANIFEST_NAME);
  m->fd = -1;
  m->size = b->manifest.len;
  m->mode = 0600;
  m->mtime_s = store_now(s) / 1000;
  *out = b;
  return 0;
}

uint64_t cs_backup_seq(const cs_backup *b) {
  return b->seq;
}

int cs_backup_next(cs_backup *b, cs_backup_file *f, cs_error *err) {
  (void)err;
  if (b->cur >= b->count) {
    b->cur = b->count + 1;
    return 0;
  }
  const backup_ent *e = &b->v[b->cur++];
  b->off = 0;
  *f = (cs_backup_file){e->name, e->size, e->mode, e->mtime_s};
  return 1;
}

long cs_backup_read(cs_backup *b, void *buf, size_t cap, cs_error *err) {
  if (b->cur == 0 || b->cur > b->count)
    return cs_err(err, CS_EINVAL, "no current file: call cs_backup_next");
  const backup_ent *e = &b->v[b->cur - 1];
  uint64_t left = e->size - b->off;
  size_t n = cap < left ? cap : (size_t)left;
  if (n == 0) return 0;
  if (e->fd < 0) {
    memcpy(buf, b->manifest.ptr + b->off, n);
    b->off += n;
    return (long)n;
  }
  ssize_t got;
  do {
    got = pread(e->fd, buf, n, (off_t)b->off);
  } while (got < 0 && errno == EINTR);
  if (got < 0)
    return cs_err(err, -errno, "cannot read %s: %s", e->name, strerror(errno));
  if (got == 0)
    return cs_err(err, CS_ECORRUPT, "%s ends at %llu bytes of %llu", e->name,
                  (unsigned long long)b->off, (unsigned long long)e->size);
  b->off += (uint64_t)got;
  return (long)got;
}

void cs_backup_end(cs_backup *b) {
  if (b) backup_free(b);
}
