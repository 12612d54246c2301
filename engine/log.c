/*
 * log.c: the log's segment files: create, map, write whole, cut, remove;
 * and the one segment walker, which tells a torn tail from damage for
 * open's replay (replay.c), verify, compact and salvage alike.
 *
 * Invariants kept (record.h has the format):
 *   - a new segment's header and the directory entry are synced before
 *     any record is written to it (DESIGN promise 8);
 *   - a segment is mapped with room for one more whole record past its
 *     limit, so a reader never reads past the mapping;
 *   - only a torn tail is ever cut, and only on the last segment: damage
 *     there that no later whole record marked synced vouches for (a
 *     power cut's hole in unsynced pages, or a record cut short); damage
 *     with a synced record after it, or in any other segment, stops open.
 * Relied on: segments are mapped and unmapped under ilock for writing, or
 * by a caller alone with the store.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir.h"
#include "err.h"
#include "store_int.h"

void log_seg_path(const cs_store *s, uint32_t no, char *path) {
  char name[SEG_NAME_BYTES];
  seg_name(name, sizeof name, no);
  snprintf(path, DIR_PATH_BYTES, "%s/%s%s", s->dir, name,
           s->seg_tmp ? TMP_SUFFIX : "");
}

int log_map_file(cs_store *s, uint32_t no, uint64_t map_len, seg_map *out,
                 cs_error *err) {
  char path[DIR_PATH_BYTES];
  log_seg_path(s, no, path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cs_err(err, errno == ENOENT ? CS_ECORRUPT : -errno,
                  "cannot open segment %s named by the manifest: %s", path,
                  strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return cs_err(err, -e, "cannot stat %s: %s", path, strerror(e));
  }
  if ((uint64_t)st.st_size > map_len) map_len = (uint64_t)st.st_size;
  /* A record may start just under the segment limit (or be larger than a
   * tiny test limit): map room for one more whole record. */
  map_len += CS_RECORD_BYTES_MAX;
  void *p = mmap(NULL, map_len, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return cs_err(err, -errno, "cannot map %s: %s", path, strerror(errno));
  out->no = no;
  out->map = p;
  out->map_len = map_len;
  out->size = (uint64_t)st.st_size;
  return 0;
}

int store_map_segments(cs_store *s, cs_error *err) {
  uint32_t n = s->last_seg - s->first_seg + 1;
  s->seg_count = 0;
  s->segs = calloc(n, sizeof *s->segs);
  if (!s->segs) return cs_err(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    int rc = log_map_file(s, s->first_seg + i, s->opts.segment_bytes_max,
                          &s->segs[i], err);
    if (rc) return rc;
    s->seg_count = i + 1; /* log_unmap_all unmaps what is counted */
  }
  return 0;
}

void log_unmap_all(cs_store *s) {
  for (uint32_t i = 0; i < s->seg_count; i++)
    if (s->segs[i].map) munmap(s->segs[i].map, s->segs[i].map_len);
  free(s->segs);
  s->segs = NULL;
  s->seg_count = 0;
}

/* Creates segment no (truncating any file of that name) holding len bytes
 * of buf, synced. 0 with *fd_out open for writing, or an error (nothing
 * open) with *fd_out -1; path is filled either way, for messages. */
static int seg_make(cs_store *s, uint32_t no, const void *buf, size_t len,
                    int *fd_out, char path[DIR_PATH_BYTES]) {
  log_seg_path(s, no, path);
  const cs_io *io = s->io;
  *fd_out = -1;
  int fd = io->open(io->ctx, path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0) return fd;
  long n = io->pwrite(io->ctx, fd, buf, len, 0);
  int rc = n < 0 ? (int)n : 0;
  if (!rc) rc = io->fdatasync(io->ctx, fd);
  if (rc) {
    io->close(io->ctx, fd);
    return rc;
  }
  *fd_out = fd;
  return 0;
}

int log_seg_create(cs_store *s, uint32_t no, int *fd_out, cs_error *err) {
  char path[DIR_PATH_BYTES];
  uint8_t hdr[SEG_HEADER_BYTES];
  seg_header_make(hdr, no);
  int fd;
  int rc = seg_make(s, no, hdr, sizeof hdr, &fd, path);
  if (!rc) rc = s->io->fsync_dir(s->io->ctx, s->dir);
  if (rc) {
    if (fd >= 0) s->io->close(s->io->ctx, fd);
    return cs_err(err, rc, "cannot create %s: %s", path, cs_strerror(rc));
  }
  *fd_out = fd;
  return 0;
}

int log_seg_write(cs_store *s, uint32_t no, const rec_buf *b, cs_error *err) {
  char path[DIR_PATH_BYTES];
  int fd;
  int rc = seg_make(s, no, b->ptr, b->len, &fd, path);
  if (!rc) rc = s->io->close(s->io->ctx, fd);
  if (rc) return cs_err(err, rc, "cannot write %s: %s", path, cs_strerror(rc));
  return 0;
}

void log_seg_start(rec_buf *b, uint32_t no) {
  seg_header_make(b->ptr, no);
  b->len = SEG_HEADER_BYTES;
}

void log_seg_remove(cs_store *s, uint32_t first, uint32_t last) {
  char path[DIR_PATH_BYTES];
  for (uint32_t no = first; no <= last; no++) {
    log_seg_path(s, no, path);
    s->io->unlink(s->io->ctx, path);
  }
}

int log_cut(cs_store *s, seg_map *m, uint64_t off, cs_error *err) {
  char name[SEG_NAME_BYTES], path[DIR_PATH_BYTES];
  seg_name(name, sizeof name, m->no);
  store_path(s, path, sizeof path, name);
  int fd = s->io->open(s->io->ctx, path, O_WRONLY, 0);
  int rc = fd < 0 ? fd : s->io->ftruncate(s->io->ctx, fd, off);
  if (fd >= 0) {
    if (!rc) rc = s->io->fsync(s->io->ctx, fd);
    s->io->close(s->io->ctx, fd);
  }
  if (rc)
    return cs_err(err, rc, "cannot cut the torn tail of %s: %s", path,
                  cs_strerror(rc));
  m->size = off;
  return 0;
}

/* ---------------------------------------------------------- the walker */

/* Is there a whole record at or after off, later than the walk, marked
 * synced? */
static bool synced_after(const log_walker *w, const seg_map *m, uint64_t off) {
  for (; off + REC_HEADER_BYTES <= m->size; off++) {
    rec_view r;
    if (rec_check(m->map + off, m->size - off, &r) == 0 &&
        r.seq > w->last_seq && (r.flags & REC_FLAG_SYNCED))
      return true;
  }
  return false;
}

int log_walk(log_walker *w, seg_map *m, uint64_t off, bool last) {
  if (off < SEG_HEADER_BYTES) {
    int hrc = seg_header_check(m->map, m->size, m->no);
    if (hrc) {
      log_bad bad = {.off = 0,
                     .len = m->size < SEG_HEADER_BYTES ? m->size
                                                       : SEG_HEADER_BYTES,
                     .kind = LOG_BAD_HEADER,
                     .hdr_rc = hrc};
      int rc = w->on_bad(w->ctx, m, &bad);
      if (rc) return rc;
    }
    off = SEG_HEADER_BYTES;
  }
  while (off < m->size) {
    rec_view r;
    int c = rec_check(m->map + off, m->size - off, &r);
    log_damage kind = c == REC_TRUNCATED ? LOG_TRUNCATED : LOG_BAD_CHECKSUM;
    if (c == 0 && r.seq <= w->last_seq) {
      c = REC_BAD;
      kind = LOG_SEQ_BACKWARDS;
    }
    if (c == 0) {
      w->last_seq = r.seq;
      int rc = w->on_rec(w->ctx, m, off, &r);
      if (rc) return rc;
      off += REC_HEADER_BYTES + r.len;
      continue;
    }
    uint64_t next = off + 1;
    for (; next + REC_HEADER_BYTES <= m->size; next++) {
      rec_view n;
      if (rec_check(m->map + next, m->size - next, &n) == 0 &&
          n.seq > w->last_seq)
        break;
    }
    uint64_t end = m->size; /* on_bad may cut the segment here */
    if (next + REC_HEADER_BYTES > end) next = end;
    /* On the last segment, damage is a torn tail unless a record after it
     * says the bytes before it were synced (REC_FLAG_SYNCED): whole
     * records after a hole that none of them vouches for are unsynced
     * writes a power cut left out of order, never acknowledged. */
    bool torn = last && (next == end || !synced_after(w, m, next));
    if (torn) next = end;
    log_bad bad = {.off = off, .len = next - off, .torn = torn, .kind = kind};
    int rc = w->on_bad(w->ctx, m, &bad);
    if (rc) return rc;
    off = next;
  }
  return 0;
}

const char *log_damage_text(log_damage kind, bool short_words) {
  switch (kind) {
  case LOG_BAD_HEADER:
    return "bad segment header";
  case LOG_TRUNCATED:
    return short_words ? "truncated" : "truncated record";
  case LOG_BAD_CHECKSUM:
    return short_words ? "checksum mismatch"
                       : "bad header or checksum mismatch";
  default:
    return "sequence number goes backwards";
  }
}

uint64_t log_seq_max(const seg_map *m, uint64_t seq) {
  for (uint64_t off = SEG_HEADER_BYTES; off + REC_HEADER_BYTES <= m->size;
       off++) {
    rec_view r;
    if (rec_check(m->map + off, m->size - off, &r) == 0) {
      if (r.seq > seq) seq = r.seq;
      off += REC_HEADER_BYTES + r.len - 1;
    }
  }
  return seq;
}
