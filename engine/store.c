/*
 * store.c: opening, recovering, writing, reading and closing a store.
 *
 * The data directory:
 *   LOCK         flock()ed by the opener; holds its pid
 *   MANIFEST     which segments make up the store, the current snapshot and
 *                an id floor; replaced atomically (write temp, fsync,
 *                rename, fsync the directory)
 *   %08u.seg     log segments (format in record.h)
 *   snap-*.snap  index snapshots (format in snap.c)
 *   keys         API keys (keys.c)
 *
 * Writes: a caller validates and queues a record under wmu and returns; the
 * commit thread writes each batch with one pwrite per segment, syncs once
 * for the whole batch (group commit), applies the records to what readers
 * see, then calls each write's completion. The overlay of pending changes
 * lets validations see writes accepted but not applied yet. The locking
 * rules and invariants are in store_int.h.
 *
 * Recovery: records are replayed from the snapshot's position (or from the
 * start). An invalid record at the end of the last segment is a torn tail,
 * cut and reported; anywhere else it is corruption, reported with file and
 * offset, and open fails.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

/* ------------------------------------------------------------- helpers */

int cs_err(cs_error *err, int code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    err->field = -1;
    err->id = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void store_notice(cs_store *s, const char *fmt, ...) {
  char line[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (s->opts.notice)
    s->opts.notice(s->opts.notice_ctx, line);
  else
    fprintf(stderr, "contactstore: %s\n", line);
}

int64_t cs_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void store_path(const cs_store *s, char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", s->dir, name);
}

void seg_name(char *buf, size_t len, uint32_t seg_no) {
  snprintf(buf, len, "%08u.seg", seg_no);
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

/* -------------------------------------------------------------- u64map */

static int u64map_grow(u64map *m) {
  size_t cap = m->keys ? (m->mask + 1) * 2 : 1024;
  uint64_t *keys = calloc(cap, sizeof *keys);
  uint64_t *vals = malloc(cap * sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return -ENOMEM;
  }
  if (m->keys) {
    for (size_t i = 0; i <= m->mask; i++) {
      if (!m->keys[i]) continue;
      size_t j = mix64(m->keys[i]) & (cap - 1);
      while (keys[j])
        j = (j + 1) & (cap - 1);
      keys[j] = m->keys[i];
      vals[j] = m->vals[i];
    }
  }
  free(m->keys);
  free(m->vals);
  m->keys = keys;
  m->vals = vals;
  m->mask = cap - 1;
  return 0;
}

int u64map_put(u64map *m, uint64_t key, uint64_t val) {
  if (!m->keys || (m->count + 1) * 4 > (m->mask + 1) * 3) {
    int rc = u64map_grow(m);
    if (rc) return rc;
  }
  size_t j = mix64(key) & m->mask;
  while (m->keys[j] && m->keys[j] != key)
    j = (j + 1) & m->mask;
  if (!m->keys[j]) {
    m->keys[j] = key;
    m->count++;
  }
  m->vals[j] = val;
  return 0;
}

uint64_t *u64map_get(const u64map *m, uint64_t key) {
  if (!m->keys) return NULL;
  size_t j = mix64(key) & m->mask;
  while (m->keys[j]) {
    if (m->keys[j] == key) return &m->vals[j];
    j = (j + 1) & m->mask;
  }
  return NULL;
}

void u64map_free(u64map *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------- slot table */

static int slots_reserve(slot_table *t, uint32_t want) {
  if (want <= t->cap) return 0;
  uint32_t cap = t->cap ? t->cap : 1024;
  while (cap < want)
    cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
  cs_slot *p = realloc(t->v, (size_t)cap * sizeof *p);
  if (!p) return -ENOMEM;
  t->v = p;
  t->cap = cap;
  return 0;
}

static void slots_free(slot_table *t) {
  free(t->v);
  memset(t, 0, sizeof *t);
}

int64_t store_slot_of(const cs_store *s, uint64_t id) {
  const slot_table *t = &s->slots;
  if (!t->count || id < t->v[0].id) return -1;
  uint64_t d = id - t->v[0].id;
  if (d < t->count && t->v[d].id == id) return (int64_t)d; /* no gap below */
  /* Gaps (from compaction) put id's slot below d: search there. */
  uint32_t lo = 0, hi = d < t->count ? (uint32_t)d : t->count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (t->v[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < t->count && t->v[lo].id == id ? (int64_t)lo : -1;
}

static void acct_adjust(cs_store *s, uint32_t account, int delta) {
  uint64_t *n = u64map_get(&s->acct_counts, (uint64_t)account + 1);
  if (n)
    *n += (uint64_t)(int64_t)delta;
  else if (delta > 0)
    u64map_put(&s->acct_counts, (uint64_t)account + 1, (uint64_t)delta);
}

/* ----------------------------------------------------- reading records */

static seg_map *seg_find(cs_store *s, uint32_t seg_no) {
  if (seg_no < s->first_seg || seg_no - s->first_seg >= s->seg_count)
    return NULL;
  return &s->segs[seg_no - s->first_seg];
}

int store_read_slot(cs_store *s, uint32_t slot, msgpack_zone *zone,
                    rec_body *out, cs_error *err) {
  const cs_slot *sl = &s->slots.v[slot];
  seg_map *m = seg_find(s, sl->seg);
  uint32_t off = sl->off;
  rec_view r;
  const char *why = "its location is outside the file";
  if (m && off < m->size) {
    why = "it fails its checksum";
    if (rec_check(m->map + off, m->size - off, &r) == 0) {
      int rc = rec_decode(&r, zone, out, &why);
      if (rc == 0 && out->type == REC_PUT && out->contact.id == sl->id)
        return 0;
      if (rc == 0) why = "the index points at another record";
    }
  }
  char name[32];
  seg_name(name, sizeof name, sl->seg);
  return cs_err(err, CS_ECORRUPT,
                "%s/%s: record of contact %llu at offset %u: %s", s->dir, name,
                (unsigned long long)sl->id, off, why);
}

/* A msgpack zone per reader thread, freed when the thread ends. */
static pthread_key_t zone_key;
static pthread_once_t zone_once = PTHREAD_ONCE_INIT;

static void zone_free(void *z) {
  msgpack_zone_free(z);
}
static void zone_key_make(void) {
  pthread_key_create(&zone_key, zone_free);
}

static msgpack_zone *reader_zone(void) {
  pthread_once(&zone_once, zone_key_make);
  msgpack_zone *z = pthread_getspecific(zone_key);
  if (!z) {
    z = msgpack_zone_new(4096);
    if (z) pthread_setspecific(zone_key, z);
  }
  return z;
}

/* --------------------------------------------------------------- apply */

int store_apply(cs_store *s, uint32_t seg, uint32_t off, const rec_view *r,
                const rec_body *b, cs_error *err) {
  uint32_t len = REC_HEADER_BYTES + r->len;
  s->log_bytes += len;
  s->applied_seq = r->seq;
  s->applied_seg = seg;
  s->applied_off = (uint64_t)off + len;
  if (b->type == REC_META) {
    if (b->next_id > s->max_id_seen + 1) s->max_id_seen = b->next_id - 1;
    return 0;
  }
  const cs_contact *c = &b->contact;
  if (c->id > s->max_id_seen) s->max_id_seen = c->id;
  int64_t found = store_slot_of(s, c->id);
  uint32_t slot;
  cs_slot *sl;
  if (found >= 0) {
    slot = (uint32_t)found;
    sl = &s->slots.v[slot];
    if (slot_account(sl) != c->account)
      return cs_err(err, CS_ECORRUPT,
                    "record seq %llu moves contact %llu to another account",
                    (unsigned long long)r->seq, (unsigned long long)c->id);
    if (slot_live(sl)) {
      rec_body old;
      int rc = store_read_slot(s, slot, &s->czone, &old, err);
      if (rc) return rc;
      rc = s->opts.no_indexes
               ? 0
               : ix_erase(s->ix, c->account, slot, old.contact.field);
      if (rc)
        return cs_err(err, rc, "index update failed: %s", cs_strerror(rc));
      s->live_bytes -= sl->len;
      sl->acct_live &= ~1u;
      s->live_contacts--;
      acct_adjust(s, c->account, -1);
    }
    if (b->type == REC_DELETE) return 0;
  } else {
    if (b->type == REC_DELETE) return 0; /* nothing to delete */
    if (s->slots.count && c->id <= s->slots.v[s->slots.count - 1].id)
      return cs_err(err, CS_ECORRUPT,
                    "record seq %llu creates contact %llu out of id order",
                    (unsigned long long)r->seq, (unsigned long long)c->id);
    if (c->account > CS_ACCOUNT_ID_MAX)
      return cs_err(err, CS_ECORRUPT, "record seq %llu has account %u",
                    (unsigned long long)r->seq, c->account);
    if (s->slots.count == UINT32_MAX ||
        slots_reserve(&s->slots, s->slots.count + 1))
      return cs_err(err, -ENOMEM, "out of memory growing the primary index");
    slot = s->slots.count++;
    sl = &s->slots.v[slot];
    sl->id = c->id;
    sl->acct_live = c->account << 1;
  }
  /* A put: index the new version. Its strings point into the record. */
  int rc =
      s->opts.no_indexes ? 0 : ix_insert(s->ix, c->account, slot, c->field);
  if (rc) return cs_err(err, rc, "index update failed: %s", cs_strerror(rc));
  sl->seg = seg;
  sl->off = off;
  sl->len = len;
  sl->acct_live |= 1u;
  s->live_bytes += len;
  s->live_contacts++;
  acct_adjust(s, c->account, +1);
  return 0;
}

/* ------------------------------------------------------------ manifest */

static void pack_cstr(msgpack_packer *pk, const char *str) {
  size_t n = strlen(str);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, str, n);
}

/* Writes buf to dir/name atomically through the seam. */
int store_write_atomic(cs_store *s, const char *name, const void *buf,
                       size_t len, cs_error *err) {
  char tmp[4096], path[4096];
  char tmpname[300];
  snprintf(tmpname, sizeof tmpname, "%s.tmp", name);
  store_path(s, tmp, sizeof tmp, tmpname);
  store_path(s, path, sizeof path, name);
  const cs_io *io = s->io;
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
  rc = io->fsync_dir(io->ctx, s->dir);
  if (rc)
    return cs_err(err, rc, "cannot sync directory %s: %s", s->dir,
                  cs_strerror(rc));
  return 0;
}

int manifest_write(cs_store *s, uint64_t next_id, cs_error *err) {
  rec_buf b = {0};
  if (rec_buf_reserve(&b, 4096)) return cs_err(err, -ENOMEM, "out of memory");
  b.len = MANIFEST_HEADER_BYTES;
  msgpack_packer pk;
  msgpack_packer_init(&pk, &b, rec_buf_write);
  msgpack_pack_map(&pk, 5);
  pack_cstr(&pk, "format");
  msgpack_pack_uint32(&pk, REC_FORMAT_VERSION);
  pack_cstr(&pk, "first_segment");
  msgpack_pack_uint32(&pk, s->first_seg);
  pack_cstr(&pk, "last_segment");
  msgpack_pack_uint32(&pk, s->last_seg);
  pack_cstr(&pk, "snapshot");
  if (s->snapshot_name)
    pack_cstr(&pk, s->snapshot_name);
  else
    msgpack_pack_nil(&pk);
  pack_cstr(&pk, "next_id");
  msgpack_pack_uint64(&pk, next_id);
  uint64_t plen = b.len - MANIFEST_HEADER_BYTES;
  memcpy(b.ptr, MANIFEST_MAGIC, 8);
  for (int i = 0; i < 8; i++)
    b.ptr[8 + i] = (uint8_t)(plen >> (8 * i));
  uint64_t sum = XXH3_64bits(b.ptr + MANIFEST_HEADER_BYTES, plen);
  for (int i = 0; i < 8; i++)
    b.ptr[16 + i] = (uint8_t)(sum >> (8 * i));
  int rc = store_write_atomic(s, MANIFEST_NAME, b.ptr, b.len, err);
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

int manifest_read(cs_store *s, uint64_t *id_floor, cs_error *err) {
  char path[4096];
  store_path(s, path, sizeof path, MANIFEST_NAME);
  uint8_t *buf;
  size_t len;
  int rc = store_read_file(path, &buf, &len, 1 << 20);
  if (rc) return cs_err(err, rc, "cannot read %s: %s", path, cs_strerror(rc));
  rc = CS_ECORRUPT;
  const char *why = "bad header or checksum";
  msgpack_zone zone;
  msgpack_zone_init(&zone, 1024);
  uint64_t plen = 0, sum = 0;
  if (len >= MANIFEST_HEADER_BYTES && memcmp(buf, MANIFEST_MAGIC, 8) == 0) {
    for (int i = 7; i >= 0; i--)
      plen = (plen << 8) | buf[8 + i];
    for (int i = 7; i >= 0; i--)
      sum = (sum << 8) | buf[16 + i];
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
        msgpack_object *k = &o.via.map.ptr[i].key, *v = &o.via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) continue;
        const char *kp = k->via.str.ptr;
        size_t kn = k->via.str.size;
#define KEY(lit) (kn == sizeof(lit) - 1 && memcmp(kp, lit, kn) == 0)
        bool num = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        if (KEY("format") && num) {
          if (v->via.u64 != REC_FORMAT_VERSION) {
            rc = CS_EFORMAT;
            why = "unknown format version";
            goto out;
          }
          have |= 1;
        } else if (KEY("first_segment") && num && v->via.u64 >= 1 &&
                   v->via.u64 < UINT32_MAX) {
          s->first_seg = (uint32_t)v->via.u64;
          have |= 2;
        } else if (KEY("last_segment") && num && v->via.u64 < UINT32_MAX) {
          s->last_seg = (uint32_t)v->via.u64;
          have |= 4;
        } else if (KEY("next_id") && num) {
          *id_floor = v->via.u64;
          have |= 8;
        } else if (KEY("snapshot")) {
          if (v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 &&
              v->via.str.size < 200 &&
              !memchr(v->via.str.ptr, '/', v->via.str.size)) {
            s->snapshot_name = strndup(v->via.str.ptr, v->via.str.size);
          } else if (v->type != MSGPACK_OBJECT_NIL) {
            goto out;
          }
          have |= 16;
        }
#undef KEY
      }
      if (have == 31 && s->last_seg >= s->first_seg) rc = 0;
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

/* ---------------------------------------------------------------- lock */

int dir_lock(cs_store *s, cs_error *err) {
  char path[4096];
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

/* ------------------------------------------------------------ segments */

static int seg_map_file(cs_store *s, uint32_t no, uint64_t map_len,
                        seg_map *out, cs_error *err) {
  char name[32], path[4096];
  seg_name(name, sizeof name, no);
  store_path(s, path, sizeof path, name);
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

static uint32_t seg_bytes_max(const cs_store *s) {
  return s->opts.segment_bytes_max;
}

int store_map_segments(cs_store *s, cs_error *err) {
  uint32_t n = s->last_seg - s->first_seg + 1;
  s->seg_count = 0;
  s->segs = calloc(n, sizeof *s->segs);
  if (!s->segs) return cs_err(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    int rc =
        seg_map_file(s, s->first_seg + i, seg_bytes_max(s), &s->segs[i], err);
    if (rc) return rc;
    s->seg_count = i + 1; /* store_free unmaps what is counted */
  }
  return 0;
}

/* Is there a valid record after a bad one at off? Then the damage is not a
 * torn tail. */
static bool valid_record_after(const seg_map *m, uint64_t off,
                               uint64_t last_seq) {
  for (uint64_t p = off + 1; p + REC_HEADER_BYTES <= m->size; p++) {
    rec_view r;
    if (rec_check(m->map + p, m->size - p, &r) == 0 && r.seq > last_seq)
      return true;
  }
  return false;
}

/* Replays segment m from off. last says whether it is the store's last. */
static int replay_segment(cs_store *s, seg_map *m, uint64_t off, bool last,
                          cs_error *err) {
  char name[32], path[4096];
  seg_name(name, sizeof name, m->no);
  store_path(s, path, sizeof path, name);
  if (off < SEG_HEADER_BYTES) {
    int rc = seg_header_check(m->map, m->size, m->no);
    if (rc)
      return cs_err(err, rc, "%s: bad segment header; run contactctl verify",
                    path);
    off = SEG_HEADER_BYTES;
  }
  while (off < m->size) {
    rec_view r;
    int rc = rec_check(m->map + off, m->size - off, &r);
    const char *why = rc == REC_TRUNCATED ? "truncated" : "checksum mismatch";
    if (rc == 0 && r.seq <= s->applied_seq) {
      rc = REC_BAD;
      why = "sequence number goes backwards";
    }
    rec_body b;
    if (rc == 0) {
      const char *dwhy;
      if (rec_decode(&r, &s->czone, &b, &dwhy)) {
        return cs_err(err, CS_ECORRUPT,
                      "%s: record at offset %llu: %s; run contactctl verify, "
                      "or contactctl compact --salvage",
                      path, (unsigned long long)off, dwhy);
      }
      rc = store_apply(s, m->no, (uint32_t)off, &r, &b, err);
      if (rc) return rc;
      off += REC_HEADER_BYTES + r.len;
      continue;
    }
    if (!last || valid_record_after(m, off, s->applied_seq))
      return cs_err(err, CS_ECORRUPT,
                    "%s: damaged record at offset %llu (%s) with data after "
                    "it; run contactctl verify, or contactctl compact "
                    "--salvage",
                    path, (unsigned long long)off, why);
    /* A torn tail: where the log ends. Cut it so appends start clean. */
    int fd = s->io->open(s->io->ctx, path, O_WRONLY, 0);
    int trc = fd < 0 ? fd : s->io->ftruncate(s->io->ctx, fd, off);
    if (fd >= 0) {
      if (!trc) trc = s->io->fsync(s->io->ctx, fd);
      s->io->close(s->io->ctx, fd);
    }
    if (trc)
      return cs_err(err, trc, "cannot cut the torn tail of %s: %s", path,
                    cs_strerror(trc));
    store_notice(s, "%s: cut a torn tail of %llu bytes at offset %llu (%s)",
                 path, (unsigned long long)(m->size - off),
                 (unsigned long long)off, why);
    m->size = off;
  }
  return 0;
}

/* Creates segment no with its header, synced, with the directory synced. */
static int seg_create(cs_store *s, uint32_t no, int *fd_out, cs_error *err) {
  char name[32], path[4096];
  seg_name(name, sizeof name, no);
  store_path(s, path, sizeof path, name);
  const cs_io *io = s->io;
  int fd = io->open(io->ctx, path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0)
    return cs_err(err, fd, "cannot create %s: %s", path, cs_strerror(fd));
  uint8_t hdr[SEG_HEADER_BYTES];
  seg_header_make(hdr, no);
  long n = io->pwrite(io->ctx, fd, hdr, sizeof hdr, 0);
  int rc = n < 0 ? (int)n : 0;
  if (!rc) rc = io->fdatasync(io->ctx, fd);
  if (!rc) rc = io->fsync_dir(io->ctx, s->dir);
  if (rc) {
    io->close(io->ctx, fd);
    return cs_err(err, rc, "cannot create %s: %s", path, cs_strerror(rc));
  }
  *fd_out = fd;
  return 0;
}

bool store_file_is_stray(const cs_store *s, const char *name) {
  unsigned no;
  char extra;
  size_t n = strlen(name);
  if (n > 4 && strcmp(name + n - 4, ".tmp") == 0) return true;
  if (sscanf(name, "%8u.se%c", &no, &extra) == 2 && extra == 'g' && n == 12 &&
      (no > s->last_seg || no < s->first_seg))
    return true;
  return strncmp(name, "snap-", 5) == 0 &&
         (!s->snapshot_name || strcmp(name, s->snapshot_name) != 0);
}

/* Removes files that are not part of the store: temporaries and segments
 * past the manifest's last (created by a roll that never reached the
 * manifest, so they never held an acknowledged record). */
static void remove_strays(cs_store *s) {
  DIR *d = opendir(s->dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (store_file_is_stray(s, e->d_name)) {
      char path[4096];
      store_path(s, path, sizeof path, e->d_name);
      if (s->io->unlink(s->io->ctx, path) == 0)
        store_notice(s, "removed %s, which is not part of the store", path);
    }
  }
  closedir(d);
}

/* ------------------------------------------------------------- overlay */

static size_t ov_bucket(const cs_store *s, uint64_t h) {
  return mix64(h) & s->ov_mask;
}

static ov_entry *ov_find(const cs_store *s, uint64_t id) {
  for (ov_entry *e = s->ov_by_id[ov_bucket(s, id)]; e; e = e->next_id)
    if (e->id == id) return e;
  return NULL;
}

static void ov_unlink(cs_store *s, ov_entry *e) {
  ov_entry **pp = &s->ov_by_id[ov_bucket(s, e->id)];
  while (*pp != e)
    pp = &(*pp)->next_id;
  *pp = e->next_id;
  if (e->email_hash) {
    pp = &s->ov_by_email[ov_bucket(s, e->email_hash)];
    while (*pp != e)
      pp = &(*pp)->next_email;
    *pp = e->next_email;
  }
  s->ov_count--;
}

static void ov_free(ov_entry *e) {
  if (!e) return;
  free(e->blob);
  free(e);
}

static int ov_grow(cs_store *s) {
  size_t cap = (s->ov_mask + 1) * 2;
  ov_entry **ids = calloc(cap, sizeof *ids);
  ov_entry **emails = calloc(cap, sizeof *emails);
  if (!ids || !emails) {
    free(ids);
    free(emails);
    return -ENOMEM;
  }
  size_t old_cap = s->ov_mask + 1;
  ov_entry **old_ids = s->ov_by_id;
  free(s->ov_by_email);
  s->ov_by_id = ids;
  s->ov_by_email = emails;
  s->ov_mask = cap - 1;
  for (size_t i = 0; i < old_cap; i++) {
    ov_entry *e = old_ids[i];
    while (e) {
      ov_entry *next = e->next_id;
      size_t b = ov_bucket(s, e->id);
      e->next_id = ids[b];
      ids[b] = e;
      if (e->email_hash) {
        b = ov_bucket(s, e->email_hash);
        e->next_email = emails[b];
        emails[b] = e;
      }
      e = next;
    }
  }
  free(old_ids);
  return 0;
}

static uint64_t email_hash(uint32_t account, const char *key, size_t len) {
  uint64_t h = XXH3_64bits_withSeed(key, len, account);
  return h ? h : 1;
}

/* Makes (or replaces) the pending entry of c->id. c == NULL: a deletion. */
static int ov_set(cs_store *s, uint64_t id, uint32_t account, uint64_t seq,
                  const cs_contact *c) {
  if (s->ov_count + 1 > s->ov_mask + 1 && ov_grow(s)) return -ENOMEM;
  ov_entry *e = calloc(1, sizeof *e);
  if (!e) return -ENOMEM;
  e->id = id;
  e->seq = seq;
  e->account = account;
  e->deleted = c == NULL;
  if (c) {
    size_t total = 0;
    for (int f = 0; f < CS_FIELD_COUNT; f++)
      if (c->field[f].ptr) total += c->field[f].len + 1;
    e->blob = malloc(total ? total : 1);
    if (!e->blob) {
      free(e);
      return -ENOMEM;
    }
    e->c = *c;
    char *p = e->blob;
    for (int f = 0; f < CS_FIELD_COUNT; f++) {
      if (!c->field[f].ptr) continue;
      memcpy(p, c->field[f].ptr, c->field[f].len);
      p[c->field[f].len] = 0;
      e->c.field[f].ptr = p;
      p += c->field[f].len + 1;
    }
    int rc = fold_key(CS_EMAIL, c->field[CS_EMAIL].ptr, c->field[CS_EMAIL].len,
                      &s->fb_key);
    if (rc) {
      ov_free(e);
      return rc;
    }
    e->email_hash = email_hash(account, s->fb_key.ptr, s->fb_key.len);
  }
  ov_entry *old = ov_find(s, id);
  if (old) {
    ov_unlink(s, old);
    ov_free(old);
  }
  size_t b = ov_bucket(s, id);
  e->next_id = s->ov_by_id[b];
  s->ov_by_id[b] = e;
  if (e->email_hash) {
    b = ov_bucket(s, e->email_hash);
    e->next_email = s->ov_by_email[b];
    s->ov_by_email[b] = e;
  }
  s->ov_count++;
  return 0;
}

static void fail_store(cs_store *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------- email uniqueness */

struct email_probe {
  cs_store *s;
  uint32_t account;
  uint64_t exclude;
  uint64_t found;
  int rc;
};

/* Does email (case-folded in s->fb_case) equal the stored one? */
static bool same_email(cs_store *s, const cs_str *stored) {
  if (fold_case(stored->ptr, stored->len, &s->fb_case2)) return false;
  return s->fb_case2.len == s->fb_case.len &&
         memcmp(s->fb_case2.ptr, s->fb_case.ptr, s->fb_case.len) == 0;
}

static int probe_slot(void *ctx, uint32_t slot) {
  struct email_probe *p = ctx;
  cs_store *s = p->s;
  uint64_t id = s->slots.v[slot].id;
  if (id == p->exclude || ov_find(s, id)) return 0; /* pending wins */
  rec_body b;
  cs_error err;
  int rc = store_read_slot(s, slot, &s->wzone, &b, &err);
  if (rc) {
    p->rc = rc;
    return 1;
  }
  if (same_email(s, &b.contact.field[CS_EMAIL])) {
    p->found = id;
    return 1;
  }
  return 0;
}

/* The id of another contact of account whose email equals email (case
 * insensitively), or 0. Caller holds wmu. */
static int email_owner(cs_store *s, uint32_t account, const cs_str *email,
                       uint64_t exclude, uint64_t *owner, cs_error *err) {
  *owner = 0;
  int rc = fold_key(CS_EMAIL, email->ptr, email->len, &s->fb_key);
  if (!rc) rc = fold_case(email->ptr, email->len, &s->fb_case);
  if (rc) return cs_err(err, rc, "cannot fold the email");
  uint64_t h = email_hash(account, s->fb_key.ptr, s->fb_key.len);
  for (ov_entry *e = s->ov_by_email[ov_bucket(s, h)]; e; e = e->next_email) {
    if (e->email_hash != h || e->account != account || e->id == exclude)
      continue;
    if (same_email(s, &e->c.field[CS_EMAIL])) {
      *owner = e->id;
      return 0;
    }
  }
  struct email_probe p = {s, account, exclude, 0, 0};
  pthread_rwlock_rdlock(&s->ilock);
  ix_exact_slots(s->ix, account, CS_EMAIL, s->fb_key.ptr, s->fb_key.len,
                 probe_slot, &p);
  if (!p.found && !p.rc && s->bulk) {
    uint64_t *idp = u64map_get(
        &s->bulk_emails, email_hash(account, s->fb_case.ptr, s->fb_case.len));
    int64_t slot = idp && *idp != exclude ? store_slot_of(s, *idp) : -1;
    if (slot >= 0 && !ov_find(s, *idp)) probe_slot(&p, (uint32_t)slot);
  }
  pthread_rwlock_unlock(&s->ilock);
  if (p.rc)
    return cs_err(err, p.rc,
                  "cannot read a contact while checking "
                  "the email");
  *owner = p.found;
  return 0;
}

/* ------------------------------------------------------------- writing */

static int writable(cs_store *s, cs_error *err);

/* Edits and deletes are not part of a bulk load. Caller holds wmu. */
static int not_bulk(cs_store *s, cs_error *err) {
  return s->bulk ? cs_err(err, CS_EINVAL,
                          "a bulk load is in progress: "
                          "only creates until cs_bulk_end")
                 : writable(s, err);
}

static int writable(cs_store *s, cs_error *err) {
  if (s->opts.no_indexes)
    return cs_err(err, CS_EINVAL,
                  "the store was opened without indexes, "
                  "for reading only");
  if (s->failed)
    return cs_err(err, CS_EFAILED, "the store refuses writes: %s",
                  s->failed_msg);
  if (s->closing) return cs_err(err, CS_ECLOSING, "the store is closing");
  return 0;
}

/* Queues one framed record (already in tmp) under wmu. */
static int enqueue(cs_store *s, uint8_t type, uint64_t seq, uint64_t id,
                   uint32_t account, const rec_buf *rec, cs_done_fn done,
                   void *ctx) {
  wqueue *q = &s->wq;
  uint32_t len = (uint32_t)rec->len;
  if (s->tail_off + len > seg_bytes_max(s) && s->tail_off > SEG_HEADER_BYTES) {
    s->tail_seg++;
    s->tail_off = SEG_HEADER_BYTES;
  }
  if (q->count == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 64;
    wop *p = realloc(q->ops, cap * sizeof *p);
    if (!p) return -ENOMEM;
    q->ops = p;
    q->cap = cap;
  }
  wchunk *ch = q->chunk_count ? &q->chunks[q->chunk_count - 1] : NULL;
  if (!ch || ch->seg != s->tail_seg) {
    if (q->chunk_count == q->chunk_cap) {
      size_t cap = q->chunk_cap ? q->chunk_cap * 2 : 4;
      wchunk *p = realloc(q->chunks, cap * sizeof *p);
      if (!p) return -ENOMEM;
      memset(p + q->chunk_cap, 0, (cap - q->chunk_cap) * sizeof *p);
      q->chunks = p;
      q->chunk_cap = cap;
    }
    ch = &q->chunks[q->chunk_count];
    if (ch->buf.cap == 0 && rec_buf_reserve(&ch->buf, 64 * 1024))
      return -ENOMEM;
    ch->seg = s->tail_seg;
    ch->off = (uint32_t)s->tail_off;
    ch->buf.len = 0;
    q->chunk_count++;
  }
  if (rec_buf_reserve(&ch->buf, len)) return -ENOMEM;
  memcpy(ch->buf.ptr + ch->buf.len, rec->ptr, len);
  ch->buf.len += len;
  wop *op = &q->ops[q->count++];
  op->type = type;
  op->seq = seq;
  op->id = id;
  op->account = account;
  op->seg = s->tail_seg;
  op->off = (uint32_t)s->tail_off;
  op->len = len;
  op->done = done;
  op->ctx = ctx;
  s->tail_off += len;
  pthread_cond_signal(&s->wcv);
  return 0;
}

/* Frames rec for the next sequence number, queues it and records the
 * pending state. Caller holds wmu. c == NULL for a deletion. */
static int submit(cs_store *s, uint8_t type, const cs_contact *c, uint64_t id,
                  uint32_t account, cs_done_fn done, void *ctx, cs_error *err) {
  rec_buf *rec = &s->rbuf; /* reused: encoding allocates nothing */
  rec->len = 0;
  uint64_t seq = s->next_seq;
  int rc = type == REC_PUT ? rec_append_put(rec, seq, c)
                           : rec_append_delete(rec, seq, id, account);
  if (rc)
    return cs_err(err, rc == CS_EINVAL ? CS_EINVAL : rc,
                  "the contact is too large to store");
  s->next_seq++;
  rc = ov_set(s, id, account, seq, c);
  if (!rc) rc = enqueue(s, type, seq, id, account, rec, done, ctx);
  if (rc) {
    /* Out of memory midway: a pending entry may exist for a record never
     * queued. Refuse writes rather than risk a wrong answer. */
    s->failed = rc;
    snprintf(s->failed_msg, sizeof s->failed_msg,
             "out of memory while queueing a write");
    return cs_err(err, CS_EFAILED, "the store refuses writes: %s",
                  s->failed_msg);
  }
  return 0;
}

int cs_create(cs_store *s, uint32_t account, cs_contact *c, cs_done_fn done,
              void *ctx, uint64_t *id_out, cs_error *err) {
  if (account > CS_ACCOUNT_ID_MAX)
    return cs_err(err, CS_EINVAL, "invalid account number");
  int rc = cs_contact_validate(c, err);
  if (rc) return rc;
  pthread_mutex_lock(&s->wmu);
  rc = writable(s, err);
  uint64_t owner = 0;
  if (!rc) rc = email_owner(s, account, &c->field[CS_EMAIL], 0, &owner, err);
  if (!rc && owner) {
    rc = cs_err(err, CS_EDUPLICATE, "email: already used by contact %020llu",
                (unsigned long long)owner);
    if (err) {
      err->id = owner;
      err->field = CS_EMAIL;
    }
  }
  if (!rc) {
    cs_contact rec = *c;
    rec.id = s->next_id;
    rec.account = account;
    rec.created_ms = rec.updated_ms = cs_now_ms();
    rc = submit(s, REC_PUT, &rec, rec.id, account, done, ctx, err);
    if (!rc && s->bulk &&
        u64map_put(&s->bulk_emails,
                   email_hash(account, s->fb_case.ptr, s->fb_case.len),
                   rec.id) != 0) {
      fail_store(s, -ENOMEM, "out of memory in a bulk load");
      rc = -ENOMEM; /* queued already: done still fires, with the failure */
    }
    if (!rc || rc == -ENOMEM) {
      s->next_id++;
      if (id_out) *id_out = rec.id;
      rc = 0;
    }
  }
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

/* The current version of id in account: pending or applied. Caller holds
 * wmu. *out's strings stay valid while wmu is held. */
static int current_version(cs_store *s, uint32_t account, uint64_t id,
                           cs_contact *out, cs_error *err) {
  ov_entry *e = ov_find(s, id);
  if (e) {
    if (e->deleted || e->account != account) goto missing;
    *out = e->c;
    return 0;
  }
  pthread_rwlock_rdlock(&s->ilock);
  int64_t slot = store_slot_of(s, id);
  int rc = CS_ENOTFOUND;
  if (slot >= 0 && s->slots.v[slot].acct_live == (account << 1 | 1u)) {
    rec_body b;
    rc = store_read_slot(s, (uint32_t)slot, &s->wzone, &b, err);
    if (!rc) *out = b.contact; /* points into the map: stays valid */
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc != CS_ENOTFOUND) return rc;
missing:
  return cs_err(err, CS_ENOTFOUND, "no contact %020llu",
                (unsigned long long)id);
}

int cs_update(cs_store *s, uint32_t account, uint64_t id, cs_patch *p,
              cs_done_fn done, void *ctx, cs_error *err) {
  uint32_t all = (1u << CS_FIELD_COUNT) - 1;
  if (!(p->set_mask | p->clear_mask))
    return cs_err(err, CS_EINVAL, "no fields to change");
  if ((p->set_mask | p->clear_mask) & ~all)
    return cs_err(err, CS_EINVAL, "unknown field in the change");
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if ((p->clear_mask & (1u << f)) && (f == CS_FIRST_NAME || f == CS_EMAIL)) {
      cs_err(err, CS_EINVAL, "%s: required, cannot be removed",
             cs_field_name(f));
      if (err) err->field = f;
      return CS_EINVAL;
    }
    if ((p->set_mask & (1u << f)) && !p->field[f].ptr) {
      cs_err(err, CS_EINVAL, "%s: no value given", cs_field_name(f));
      if (err) err->field = f;
      return CS_EINVAL;
    }
  }
  pthread_mutex_lock(&s->wmu);
  cs_contact cur;
  int rc = not_bulk(s, err);
  if (!rc) rc = current_version(s, account, id, &cur, err);
  if (!rc) {
    cs_contact next = cur;
    for (int f = 0; f < CS_FIELD_COUNT; f++) {
      if (p->clear_mask & (1u << f)) next.field[f] = (cs_str){NULL, 0};
      if (p->set_mask & (1u << f)) next.field[f] = p->field[f];
    }
    rc = cs_contact_validate(&next, err);
    if (!rc) {
      /* Hand the trimmed values back, as cs_create does. */
      for (int f = 0; f < CS_FIELD_COUNT; f++)
        if (p->set_mask & (1u << f)) p->field[f] = next.field[f];
      uint64_t owner = 0;
      rc = email_owner(s, account, &next.field[CS_EMAIL], id, &owner, err);
      if (!rc && owner) {
        rc =
            cs_err(err, CS_EDUPLICATE, "email: already used by contact %020llu",
                   (unsigned long long)owner);
        if (err) {
          err->id = owner;
          err->field = CS_EMAIL;
        }
      }
    }
    if (!rc) {
      next.id = id;
      next.account = account;
      next.updated_ms = cs_now_ms();
      if (next.updated_ms < next.created_ms) next.updated_ms = next.created_ms;
      rc = submit(s, REC_PUT, &next, id, account, done, ctx, err);
    }
  }
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

int cs_delete(cs_store *s, uint32_t account, uint64_t id, cs_done_fn done,
              void *ctx, cs_error *err) {
  pthread_mutex_lock(&s->wmu);
  cs_contact cur;
  int rc = not_bulk(s, err);
  if (!rc) rc = current_version(s, account, id, &cur, err);
  if (!rc) rc = submit(s, REC_DELETE, NULL, id, account, done, ctx, err);
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

int cs_flush(cs_store *s, cs_error *err) {
  pthread_mutex_lock(&s->wmu);
  uint64_t target = s->next_seq - 1;
  if (target > s->sync_req_seq) s->sync_req_seq = target;
  pthread_cond_signal(&s->wcv);
  while (s->synced_seq < target && !s->failed)
    pthread_cond_wait(&s->fcv, &s->wmu);
  int rc = 0;
  if (s->failed)
    rc = cs_err(err, CS_EFAILED, "the store refuses writes: %s", s->failed_msg);
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

int cs_bulk_begin(cs_store *s, cs_error *err) {
  int rc = cs_flush(s, err);
  if (rc) return rc;
  pthread_mutex_lock(&s->wmu);
  pthread_rwlock_wrlock(&s->ilock);
  if (s->opts.no_indexes || s->bulk) {
    rc = cs_err(err, CS_EINVAL,
                s->bulk ? "a bulk load is in progress"
                        : "opened without indexes");
  } else {
    ix_bulk_begin(s->ix);
    s->bulk = true;
  }
  pthread_rwlock_unlock(&s->ilock);
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

/* Caller holds wmu and ilock for writing. */
static int bulk_finish(cs_store *s, cs_error *err) {
  if (!s->bulk) return 0;
  s->bulk = false;
  u64map_free(&s->bulk_emails);
  int rc = ix_bulk_end(s->ix);
  return rc ? cs_err(err, rc, "cannot build the indexes: %s", cs_strerror(rc))
            : 0;
}

int cs_bulk_end(cs_store *s, cs_error *err) {
  int rc = cs_flush(s, err); /* every create of the load applied */
  pthread_mutex_lock(&s->wmu);
  pthread_rwlock_wrlock(&s->ilock);
  int brc = bulk_finish(s, err);
  pthread_rwlock_unlock(&s->ilock);
  pthread_mutex_unlock(&s->wmu);
  return rc ? rc : brc;
}

/* ------------------------------------------------------- commit thread */

static void fail_store(cs_store *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Caller holds wmu. */
static void fail_store(cs_store *s, int rc, const char *fmt, ...) {
  if (s->failed) return;
  s->failed = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->failed_msg, sizeof s->failed_msg, fmt, ap);
  va_end(ap);
  store_notice(s, "refusing writes from now on: %s", s->failed_msg);
}

/* Seals the active segment and starts segment no. Commit thread only. */
static int roll(cs_store *s, uint32_t no, char *what, size_t what_len) {
  const cs_io *io = s->io;
  int rc = 0;
  if (s->active_dirty) {
    rc = io->fdatasync(io->ctx, s->active_fd);
    __atomic_add_fetch(&s->fsyncs, 1, __ATOMIC_RELAXED);
    if (rc) {
      snprintf(what, what_len, "fdatasync of segment %u failed: %s",
               s->active_seg, cs_strerror(rc));
      return rc;
    }
    s->active_dirty = false;
  }
  cs_error err;
  int fd;
  rc = seg_create(s, no, &fd, &err);
  if (rc) {
    snprintf(what, what_len, "%s", err.msg);
    return rc;
  }
  seg_map m;
  rc = seg_map_file(s, no, seg_bytes_max(s), &m, &err);
  if (!rc) {
    pthread_rwlock_wrlock(&s->ilock);
    seg_map *p = realloc(s->segs, (s->seg_count + 1) * sizeof *p);
    if (p) {
      s->segs = p;
      s->segs[s->seg_count++] = m;
    } else {
      rc = -ENOMEM;
      munmap(m.map, m.map_len);
    }
    pthread_rwlock_unlock(&s->ilock);
  }
  if (!rc) {
    pthread_mutex_lock(&s->mmu);
    uint32_t prev = s->last_seg;
    s->last_seg = no;
    pthread_mutex_lock(&s->wmu);
    uint64_t next_id = s->next_id;
    pthread_mutex_unlock(&s->wmu);
    rc = manifest_write(s, next_id, &err);
    if (rc) s->last_seg = prev;
    pthread_mutex_unlock(&s->mmu);
  }
  if (rc) {
    io->close(io->ctx, fd);
    snprintf(what, what_len, "%s", err.msg);
    return rc;
  }
  io->close(io->ctx, s->active_fd);
  s->active_fd = fd;
  s->active_seg = no;
  return 0;
}

static int write_batch(cs_store *s, wqueue *b, char *what, size_t what_len) {
  const cs_io *io = s->io;
  for (size_t i = 0; i < b->chunk_count; i++) {
    wchunk *ch = &b->chunks[i];
    if (ch->seg != s->active_seg) {
      int rc = roll(s, ch->seg, what, what_len);
      if (rc) return rc;
    }
    long n =
        io->pwrite(io->ctx, s->active_fd, ch->buf.ptr, ch->buf.len, ch->off);
    if (n < 0) {
      snprintf(what, what_len, "write to segment %u at offset %u failed: %s",
               ch->seg, ch->off, cs_strerror((int)n));
      return (int)n;
    }
    s->active_dirty = true;
  }
  return 0;
}

static int apply_batch(cs_store *s, wqueue *b, char *what, size_t what_len) {
  int rc = 0;
  pthread_rwlock_wrlock(&s->ilock);
  for (size_t i = 0; i < b->count && !rc; i++) {
    wop *op = &b->ops[i];
    seg_map *m = seg_find(s, op->seg);
    if (m && op->off + op->len > m->size) m->size = op->off + op->len;
    rec_view r;
    rec_body body;
    const char *why = "it fails its checksum after writing";
    cs_error err;
    if (!m || rec_check(m->map + op->off, m->size - op->off, &r) != 0 ||
        rec_decode(&r, &s->czone, &body, &why) != 0) {
      snprintf(what, what_len, "record %llu in segment %u at offset %u: %s",
               (unsigned long long)op->seq, op->seg, op->off, why);
      rc = CS_ECORRUPT;
      break;
    }
    rc = store_apply(s, op->seg, op->off, &r, &body, &err);
    if (rc) snprintf(what, what_len, "%s", err.msg);
  }
  pthread_rwlock_unlock(&s->ilock);
  __atomic_add_fetch(&s->commits, b->count, __ATOMIC_RELAXED);
  return rc;
}

/* A batch to write, or a sync cs_flush waits for. Caller holds wmu. */
static bool has_work(const cs_store *s) {
  return s->wq.count > 0 || (s->sync_req_seq > s->synced_seq && !s->failed);
}

static void *committer_main(void *arg) {
  cs_store *s = arg;
  wqueue batch = {0};
  const cs_io *io = s->io;
  pthread_mutex_lock(&s->wmu);
  for (;;) {
    while (!has_work(s) && !s->closing)
      pthread_cond_wait(&s->wcv, &s->wmu);
    if (!has_work(s)) break; /* closing, and nothing left to do */
    wqueue t = s->wq;
    s->wq = batch;
    batch = t;
    s->wq.count = 0;
    s->wq.chunk_count = 0;
    bool want_sync = s->opts.durability == CS_DURABILITY_FSYNC ||
                     s->sync_req_seq > s->synced_seq;
    int rc = s->failed;
    pthread_mutex_unlock(&s->wmu);

    char what[sizeof(((cs_error *)0)->msg)] = "";
    if (!rc && batch.count) rc = write_batch(s, &batch, what, sizeof what);
    if (!rc && want_sync && s->active_dirty) {
      rc = io->fdatasync(io->ctx, s->active_fd);
      __atomic_add_fetch(&s->fsyncs, 1, __ATOMIC_RELAXED);
      if (rc)
        snprintf(what, sizeof what, "fdatasync of segment %u failed: %s",
                 s->active_seg, cs_strerror(rc));
      else
        s->active_dirty = false;
    }
    if (!rc && batch.count) rc = apply_batch(s, &batch, what, sizeof what);

    pthread_mutex_lock(&s->wmu);
    if (rc) {
      fail_store(s, rc < 0 ? rc : CS_EFAILED, "%s",
                 what[0] ? what : cs_strerror(rc));
    } else {
      uint64_t last =
          batch.count ? batch.ops[batch.count - 1].seq : s->written_seq;
      s->written_seq = last;
      if (want_sync) s->synced_seq = last;
      for (size_t i = 0; i < batch.count; i++) {
        ov_entry *e = ov_find(s, batch.ops[i].id);
        if (e && e->seq == batch.ops[i].seq) {
          ov_unlink(s, e);
          ov_free(e);
        }
      }
    }
    pthread_cond_broadcast(&s->fcv);
    pthread_mutex_unlock(&s->wmu);

    /* Bound the replay a crash would cost. A failed snapshot is only
     * reported: the log is whole without it. */
    if (!rc &&
        s->log_bytes - s->snapshot_log_bytes >= s->opts.snapshot_every_bytes) {
      cs_error serr;
      pthread_rwlock_rdlock(&s->ilock);
      int src = s->bulk ? 0 : snap_save(s, &serr); /* not mid-bulk */
      pthread_rwlock_unlock(&s->ilock);
      if (src) {
        store_notice(s, "periodic snapshot failed: %s", serr.msg);
        pthread_mutex_lock(&s->mmu);
        s->snapshot_log_bytes = s->log_bytes; /* try again later, not now */
        pthread_mutex_unlock(&s->mmu);
      }
    }

    int done_rc = rc ? (rc < 0 ? rc : CS_EFAILED) : 0;
    for (size_t i = 0; i < batch.count; i++)
      if (batch.ops[i].done)
        batch.ops[i].done(batch.ops[i].ctx, done_rc, batch.ops[i].id);
    batch.count = 0;
    batch.chunk_count = 0;
    pthread_mutex_lock(&s->wmu);
  }
  pthread_mutex_unlock(&s->wmu);
  free(batch.ops);
  for (size_t i = 0; i < batch.chunk_cap; i++)
    rec_buf_free(&batch.chunks[i].buf);
  free(batch.chunks);
  return NULL;
}

/* ----------------------------------------------------------- open/close */

void store_free(cs_store *s) {
  if (!s) return;
  if (s->active_fd >= 0) s->io->close(s->io->ctx, s->active_fd);
  for (uint32_t i = 0; i < s->seg_count; i++)
    if (s->segs[i].map) munmap(s->segs[i].map, s->segs[i].map_len);
  free(s->segs);
  slots_free(&s->slots);
  u64map_free(&s->acct_counts);
  u64map_free(&s->bulk_emails);
  if (s->ix) ix_destroy(s->ix);
  if (s->ov_by_id) {
    for (size_t i = 0; i <= s->ov_mask; i++) {
      ov_entry *e = s->ov_by_id[i];
      while (e) {
        ov_entry *next = e->next_id;
        ov_free(e);
        e = next;
      }
    }
  }
  free(s->ov_by_id);
  free(s->ov_by_email);
  free(s->wq.ops);
  for (size_t i = 0; i < s->wq.chunk_cap; i++)
    rec_buf_free(&s->wq.chunks[i].buf);
  free(s->wq.chunks);
  rec_buf_free(&s->rbuf);
  fold_buf_free(&s->fb_key);
  fold_buf_free(&s->fb_case);
  fold_buf_free(&s->fb_case2);
  msgpack_zone_destroy(&s->wzone);
  msgpack_zone_destroy(&s->czone);
  pthread_rwlock_destroy(&s->ilock);
  pthread_mutex_destroy(&s->wmu);
  pthread_mutex_destroy(&s->mmu);
  pthread_cond_destroy(&s->wcv);
  pthread_cond_destroy(&s->fcv);
  if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
  free(s->snapshot_name);
  free(s->dir);
  free(s);
}

/* Rebuilds everything in memory from the log (after an unusable snapshot). */
static void reset_memory(cs_store *s) {
  slots_free(&s->slots);
  u64map_free(&s->acct_counts);
  ix_destroy(s->ix);
  s->ix = ix_create();
  s->live_contacts = s->live_bytes = s->log_bytes = 0;
  s->applied_seq = 0;
  s->applied_seg = 0;
  s->applied_off = 0;
  s->max_id_seen = 0;
}

cs_store *store_new(const char *dir, const cs_options *opts) {
  cs_store *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->lock_fd = -1;
  s->active_fd = -1;
  if (opts) s->opts = *opts;
  if (!s->opts.segment_bytes_max)
    s->opts.segment_bytes_max = CS_SEGMENT_BYTES_DEFAULT;
  s->io = s->opts.io ? s->opts.io : cs_io_posix();
  if (!s->opts.snapshot_every_bytes)
    s->opts.snapshot_every_bytes = CS_SNAPSHOT_EVERY_BYTES;
  s->dir = strdup(dir);
  pthread_rwlock_init(&s->ilock, NULL);
  pthread_mutex_init(&s->wmu, NULL);
  pthread_mutex_init(&s->mmu, NULL);
  pthread_cond_init(&s->wcv, NULL);
  pthread_cond_init(&s->fcv, NULL);
  msgpack_zone_init(&s->wzone, 4096);
  msgpack_zone_init(&s->czone, 4096);
  s->ix = ix_create();
  s->ov_mask = 255;
  s->ov_by_id = calloc(s->ov_mask + 1, sizeof *s->ov_by_id);
  s->ov_by_email = calloc(s->ov_mask + 1, sizeof *s->ov_by_email);
  if (!s->dir || !s->ix || !s->ov_by_id || !s->ov_by_email) {
    store_free(s);
    return NULL;
  }
  return s;
}

int cs_open(const char *dir, const cs_options *opts, cs_store **out,
            cs_error *err) {
  *out = NULL;
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  cs_store *s = store_new(dir, opts);
  if (!s) return cs_err(err, -ENOMEM, "out of memory");
  int rc = 0;
  if (s->opts.segment_bytes_max < CS_SEGMENT_BYTES_MIN ||
      s->opts.segment_bytes_max > CS_SEGMENT_BYTES_MAX) {
    rc = cs_err(err, CS_EINVAL, "segment size %u is outside %u..%u",
                s->opts.segment_bytes_max, CS_SEGMENT_BYTES_MIN,
                CS_SEGMENT_BYTES_MAX);
    goto fail;
  }
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    rc = cs_err(err, -errno, "cannot create data directory %s: %s", dir,
                strerror(errno));
    goto fail;
  }
  struct stat st;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
    rc = cs_err(err, -ENOTDIR, "%s is not a directory", dir);
    goto fail;
  }
  rc = dir_lock(s, err);
  if (rc) goto fail;

  char path[4096];
  store_path(s, path, sizeof path, MANIFEST_NAME);
  uint64_t id_floor = CS_ID_MIN + 1;
  if (access(path, F_OK) != 0) {
    /* A new store, unless segments are lying around without a manifest. */
    char seg1[32], segpath[4096];
    seg_name(seg1, sizeof seg1, 1);
    store_path(s, segpath, sizeof segpath, seg1);
    /* A creation that failed before its manifest leaves at most a segment
     * header: no record was ever written without a manifest. */
    struct stat sst;
    if (stat(segpath, &sst) == 0 && sst.st_size > SEG_HEADER_BYTES) {
      rc =
          cs_err(err, CS_ECORRUPT,
                 "%s has segments but no manifest; run contactctl verify", dir);
      goto fail;
    }
    s->first_seg = s->last_seg = 1;
    int fd;
    rc = seg_create(s, 1, &fd, err);
    if (rc) goto fail;
    s->io->close(s->io->ctx, fd);
    rc = manifest_write(s, id_floor, err);
    if (rc) goto fail;
  } else {
    rc = manifest_read(s, &id_floor, err);
    if (rc) goto fail;
  }
  remove_strays(s);

  rc = store_map_segments(s, err);
  if (rc) goto fail;

  /* The snapshot is only a speed-up: any problem with it means a replay. */
  bool from_snapshot = false;
  if (s->snapshot_name && !s->opts.no_snapshot_load) {
    cs_error serr;
    if (snap_load(s, s->snapshot_name, &serr) == 0) {
      from_snapshot = true;
    } else {
      store_notice(s, "%s; rebuilding the indexes from the log", serr.msg);
      reset_memory(s);
    }
  }
  if (!from_snapshot) ix_bulk_begin(s->ix);
  for (uint32_t i = 0; i < s->seg_count; i++) {
    seg_map *m = &s->segs[i];
    uint64_t from = 0;
    if (from_snapshot) {
      if (m->no < s->applied_seg) continue;
      if (m->no == s->applied_seg) from = s->applied_off;
    }
    rc = replay_segment(s, m, from, i + 1 == s->seg_count, err);
    if (rc) goto fail;
  }
  if (!from_snapshot) {
    rc = ix_bulk_end(s->ix);
    if (rc) {
      rc = cs_err(err, rc, "cannot build the indexes: %s", cs_strerror(rc));
      goto fail;
    }
  }

  s->next_seq = s->applied_seq + 1;
  s->written_seq = s->synced_seq = s->applied_seq;
  s->next_id = s->max_id_seen + 1;
  if (s->next_id < id_floor) s->next_id = id_floor;
  seg_map *lastm = &s->segs[s->seg_count - 1];
  s->tail_seg = s->active_seg = lastm->no;
  s->tail_off = lastm->size;
  char name[32];
  seg_name(name, sizeof name, lastm->no);
  store_path(s, path, sizeof path, name);
  s->active_fd = s->io->open(s->io->ctx, path, O_WRONLY, 0);
  if (s->active_fd < 0) {
    rc = cs_err(err, s->active_fd, "cannot open %s for writing: %s", path,
                cs_strerror(s->active_fd));
    s->active_fd = -1;
    goto fail;
  }
  if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
    rc = cs_err(err, -EAGAIN, "cannot start the commit thread");
    goto fail;
  }
  s->committer_started = true;
  *out = s;
  return 0;
fail:
  store_free(s);
  return rc;
}

int cs_close(cs_store *s, cs_error *err) {
  if (!s) return 0;
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  pthread_mutex_lock(&s->wmu);
  s->closing = true;
  pthread_cond_signal(&s->wcv);
  pthread_mutex_unlock(&s->wmu);
  if (s->committer_started) pthread_join(s->committer, NULL);
  int rc = 0, brc = 0;
  if (s->bulk && !s->failed) {
    /* A bulk load left open: build the indexes so the snapshot is whole. */
    pthread_mutex_lock(&s->wmu);
    pthread_rwlock_wrlock(&s->ilock);
    brc = bulk_finish(s, err);
    pthread_rwlock_unlock(&s->ilock);
    pthread_mutex_unlock(&s->wmu);
  }
  if (s->failed) {
    rc = cs_err(err, CS_EFAILED, "closed after a failure: %s", s->failed_msg);
  } else {
    if (s->active_dirty) {
      rc = s->io->fdatasync(s->io->ctx, s->active_fd);
      if (rc) cs_err(err, rc, "final sync failed: %s", cs_strerror(rc));
    }
    if (!rc && !brc && !s->opts.no_snapshot_on_close && !s->opts.no_indexes &&
        s->applied_seq != s->snapshot_seq) {
      /* Only a speed-up: everything is in the log already, so a snapshot
       * that cannot be written (a full disk) is reported, not an error. */
      cs_error serr;
      pthread_rwlock_rdlock(&s->ilock);
      if (snap_save(s, &serr) != 0)
        store_notice(s,
                     "no snapshot written at close (the next open "
                     "replays the log): %s",
                     serr.msg);
      pthread_rwlock_unlock(&s->ilock);
    }
  }
  store_free(s);
  return rc ? rc : brc;
}

int cs_snapshot(cs_store *s, cs_error *err) {
  pthread_rwlock_rdlock(&s->ilock);
  int rc = snap_save(s, err);
  pthread_rwlock_unlock(&s->ilock);
  return rc;
}

/* -------------------------------------------------------------- reading */

int cs_get(cs_store *s, uint32_t account, uint64_t id, cs_contact *out,
           cs_error *err) {
  msgpack_zone *z = reader_zone();
  if (!z) return cs_err(err, -ENOMEM, "out of memory");
  pthread_rwlock_rdlock(&s->ilock);
  int64_t slot = store_slot_of(s, id);
  int rc = CS_ENOTFOUND;
  if (slot >= 0 && s->slots.v[slot].acct_live == (account << 1 | 1u)) {
    rec_body b;
    rc = store_read_slot(s, (uint32_t)slot, z, &b, err);
    if (!rc) *out = b.contact;
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc == CS_ENOTFOUND)
    cs_err(err, rc, "no contact %020llu", (unsigned long long)id);
  return rc;
}

/* First slot whose id is > id (binary search: ids ascend with slots). */
static uint32_t slot_after(const cs_store *s, uint64_t id) {
  uint32_t lo = 0, hi = s->slots.count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (s->slots.v[mid].id <= id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Search by id: exact (and words) is one lookup; prefix is a range. */
static int search_ids(cs_store *s, const cs_query *q, uint32_t min_slot,
                      uint32_t limit, uint32_t *slots, uint32_t *count,
                      uint64_t *total, bool *more) {
  *count = 0;
  *total = 0;
  *more = false;
  const char *t = q->term;
  size_t n = q->term_len;
  while (n && (*t == ' ' || *t == '\t'))
    t++, n--;
  while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
    n--;
  if (n == 0 || n > CS_ID_DIGITS) return 0;
  uint64_t lo = 0;
  for (size_t i = 0; i < n; i++) {
    if (t[i] < '0' || t[i] > '9') return 0;
    lo = lo * 10 + (uint64_t)(t[i] - '0');
  }
  if (t[0] == '0') return 0;
  uint64_t hi;
  if (q->match == CS_MATCH_PREFIX) {
    uint64_t scale = 1;
    for (size_t i = n; i < CS_ID_DIGITS; i++)
      scale *= 10;
    /* lo * scale may exceed 2^64 for large prefixes: no id there. */
    if (lo > UINT64_MAX / scale) return 0;
    uint64_t base = lo * scale;
    hi = (UINT64_MAX - base < scale - 1) ? UINT64_MAX : base + (scale - 1);
    lo = base;
  } else {
    if (n != CS_ID_DIGITS) return 0;
    hi = lo;
  }
  uint32_t i = lo ? slot_after(s, lo - 1) : 0;
  uint32_t want = q->account << 1 | 1u;
  for (; i < s->slots.count && s->slots.v[i].id <= hi; i++) {
    if (s->slots.v[i].acct_live != want) continue;
    (*total)++;
    if (i < min_slot) continue;
    if (*count < limit)
      slots[(*count)++] = i;
    else
      *more = true;
  }
  return 0;
}

int cs_search(cs_store *s, const cs_query *q, cs_page *out, cs_error *err) {
  memset(out, 0, sizeof *out);
  if (q->field < 0 || q->field > CS_SEARCH_BY_ID)
    return cs_err(err, CS_EINVAL, "no such field to search by");
  uint32_t limit = q->limit ? q->limit : CS_PAGE_LIMIT_DEFAULT;
  if (limit > CS_PAGE_LIMIT_MAX)
    return cs_err(err, CS_EINVAL, "limit must be 1 to %d", CS_PAGE_LIMIT_MAX);
  cs_match match = q->match;
  if (match == CS_MATCH_DEFAULT)
    match = q->field == CS_NOTES ? CS_MATCH_WORDS : CS_MATCH_EXACT;
  if (match < CS_MATCH_EXACT || match > CS_MATCH_WORDS)
    return cs_err(err, CS_EINVAL, "no such match mode");
  if (s->opts.no_indexes)
    return cs_err(err, CS_EINVAL, "the store was opened without indexes");
  if (q->term_len > CS_SEARCH_TERM_MAX_BYTES) return 0; /* matches nothing */
  msgpack_zone *z = reader_zone();
  if (!z) return cs_err(err, -ENOMEM, "out of memory");
  /* The page's slots on the stack (4 KiB at most) and its contacts sized
   * to what was found: a one-result search allocates one contact. */
  uint32_t slots[CS_PAGE_LIMIT_MAX];
  pthread_rwlock_rdlock(&s->ilock);
  if (s->bulk) {
    pthread_rwlock_unlock(&s->ilock);
    return cs_err(err, CS_EINVAL, "a bulk load is in progress");
  }
  uint32_t min_slot = q->after_id ? slot_after(s, q->after_id) : 0;
  uint32_t count = 0;
  int rc;
  if (q->field == CS_SEARCH_BY_ID) {
    cs_query qq = *q;
    qq.match = match;
    rc = search_ids(s, &qq, min_slot, limit, slots, &count, &out->total,
                    &out->more);
  } else {
    rc = ix_search(s->ix, q->account, q->field, match, q->term, q->term_len,
                   min_slot, limit, slots, &count, &out->total, &out->more);
    if (rc) cs_err(err, rc, "search failed: %s", cs_strerror(rc));
  }
  if (!rc && count) {
    out->contacts = malloc(count * sizeof *out->contacts);
    if (!out->contacts) rc = cs_err(err, -ENOMEM, "out of memory");
  }
  for (uint32_t i = 0; i < count && !rc; i++) {
    rec_body b;
    rc = store_read_slot(s, slots[i], z, &b, err);
    if (!rc) out->contacts[out->count++] = b.contact;
  }
  pthread_rwlock_unlock(&s->ilock);
  if (rc) cs_page_free(out);
  return rc;
}

void cs_page_free(cs_page *p) {
  free(p->contacts);
  memset(p, 0, sizeof *p);
}

int cs_iterate(cs_store *s, uint32_t account,
               int (*fn)(void *ctx, const cs_contact *c), void *ctx,
               cs_error *err) {
  msgpack_zone *z = reader_zone();
  if (!z) return cs_err(err, -ENOMEM, "out of memory");
  int rc = 0;
  pthread_rwlock_rdlock(&s->ilock);
  for (uint32_t i = 0; i < s->slots.count && !rc; i++) {
    const cs_slot *sl = &s->slots.v[i];
    if (!slot_live(sl)) continue;
    if (account != CS_ALL_ACCOUNTS && slot_account(sl) != account) continue;
    rec_body b;
    rc = store_read_slot(s, i, z, &b, err);
    if (!rc) rc = fn(ctx, &b.contact);
  }
  pthread_rwlock_unlock(&s->ilock);
  return rc;
}

void cs_stats_get(cs_store *s, cs_stats *o) {
  memset(o, 0, sizeof *o);
  pthread_rwlock_rdlock(&s->ilock);
  o->contacts = s->live_contacts;
  o->segments = s->seg_count;
  o->live_bytes = s->live_bytes;
  o->garbage_bytes = s->log_bytes - s->live_bytes;
  for (uint32_t i = 0; i < s->seg_count; i++)
    o->disk_bytes += s->segs[i].size;
  o->index_bytes =
      ix_memory_bytes(s->ix) + (size_t)s->slots.cap * sizeof(cs_slot);
  pthread_rwlock_unlock(&s->ilock);
  pthread_mutex_lock(&s->mmu);
  o->snapshot_seq = s->snapshot_seq;
  o->snapshot_time_ms = s->snapshot_time_ms;
  if (s->snapshot_name) {
    char path[4096];
    struct stat st;
    store_path(s, path, sizeof path, s->snapshot_name);
    if (stat(path, &st) == 0) o->disk_bytes += (uint64_t)st.st_size;
  }
  pthread_mutex_unlock(&s->mmu);
  pthread_mutex_lock(&s->wmu);
  o->next_id = s->next_id;
  o->failed = s->failed;
  pthread_mutex_unlock(&s->wmu);
  o->commits = __atomic_load_n(&s->commits, __ATOMIC_RELAXED);
  o->fsyncs = __atomic_load_n(&s->fsyncs, __ATOMIC_RELAXED);
}

uint64_t cs_account_count(cs_store *s, uint32_t account) {
  pthread_rwlock_rdlock(&s->ilock);
  uint64_t *n = u64map_get(&s->acct_counts, (uint64_t)account + 1);
  uint64_t v = n ? *n : 0;
  pthread_rwlock_unlock(&s->ilock);
  return v;
}

int cs_health(cs_store *s, cs_error *err) {
  pthread_mutex_lock(&s->wmu);
  int rc = 0;
  if (s->failed)
    rc = cs_err(err, CS_EFAILED, "the store refuses writes: %s", s->failed_msg);
  else if (s->closing)
    rc = cs_err(err, CS_ECLOSING, "the store is closing");
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

const char *cs_dir(const cs_store *s) {
  return s->dir;
}
