/*
 * snap.c: snapshots of the in-memory indexes, so that open need not replay
 * the whole log.
 *
 * A snapshot file "snap-<seq in 16 hex digits>.snap":
 *
 *   offset size  field
 *   0      8     magic "CTSNAPS1"
 *   8      4     format version, little endian (SNAP_FORMAT_VERSION)
 *   12     4     zero
 *   16     8     payload length, little endian (= file size - 32)
 *   24     8     XXH3-64 of the payload, little endian
 *   32     len   payload: one msgpack map
 *
 * The payload:
 *   "seq", "segment", "offset"  the log position it covers: every record up
 *                               to seq, ending at (segment, offset)
 *   "next_id", "log_bytes"
 *   "time_ms"  when it was written (i64 ms). Written for readers of the
 *              format, never read back: open takes the time from the
 *              file's mtime instead (cs_stats.snapshot_time_ms). Dropping
 *              the key would change the format, so it stays.
 *   "slots"  {"count": n, "table": bin of n slots of 24 bytes, as in
 *             memory (pindex.h): id u64, segment u32, offset u32,
 *             length u32, account << 1 | live u32, all little endian}
 *   "index"  what ix_save writes
 *   "trash"  (format 2) bin of the trash list's entries, 32 bytes each as
 *            in memory (trash.h): id u64, seq u64, deleted_ms i64,
 *            account u32, zero u32, in seq order
 *   "idem"   (format 2) the idempotency entries committed up to seq, each
 *            [account, seq, key, fp, status, type, body, expires]
 *            (idem.c)
 *   "feed"   (format 3) the change feed, what feed_pack writes (feed.h):
 *            an array of [account, floor, bin of 32-byte entries]
 * Format 1 has neither trash nor idem: it was written before either
 * existed. Formats 1 and 2 have no feed: such a snapshot is not used (the
 * feed is rebuilt from the log with everything else, once).
 *
 * A snapshot is only a speed-up (DESIGN promise 6): open replays the log
 * after its position, and any problem with it (size, checksum, shape, a
 * value out of range) makes open rebuild from the log instead. The size is
 * checked and the checksum verified before msgpack sees a byte; after
 * msgpack every value is range-checked against the log it describes.
 *
 * Invariants kept: a snapshot file is replaced whole (dir_replace) before
 * the manifest names it, and the old one is removed only after the
 * manifest stopped naming it (DESIGN promise 8); loading checks sizes and
 * the checksum before any decoder sees a byte (promise 10).
 * Relied on: snap_save's caller holds ilock for reading (the state does
 * not move under it); snap_save takes mmu for the manifest.
 */
#include "snap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "dir.h"
#include "err.h"
#include "le.h"
#include "mp.h"
#include "store_int.h"

/* Room for the payload's keys and scalars besides the slot table. */
#define SNAP_KEYS_BYTES 4096

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "snapshot slot arrays are stored little endian as in memory"
#endif

static void pack_bin(msgpack_packer *pk, const char *key, const void *p,
                     size_t n) {
  mp_pack_cstr(pk, key);
  msgpack_pack_bin(pk, n);
  msgpack_pack_bin_body(pk, p, n);
}

int snap_save(cs_store *s, cs_error *err) {
  rec_buf b = {0};
  const slot_table *t = &s->slots;
  /* The header, the slot table, and room for the small keys; the index
   * image grows the buffer as it is packed. */
  size_t want =
      SNAP_HEADER_BYTES + (size_t)t->count * sizeof(cs_slot) + SNAP_KEYS_BYTES;
  if (rec_buf_reserve(&b, want)) return cs_err(err, -ENOMEM, "out of memory");
  b.len = SNAP_HEADER_BYTES;
  msgpack_packer pk;
  msgpack_packer_init(&pk, &b, rec_buf_write);
  int64_t now = cs_now_ms();
  msgpack_pack_map(&pk, 11);
  mp_pack_cstr(&pk, "seq");
  msgpack_pack_uint64(&pk, s->applied_seq);
  mp_pack_cstr(&pk, "segment");
  msgpack_pack_uint32(&pk, s->applied_seg);
  mp_pack_cstr(&pk, "offset");
  msgpack_pack_uint64(&pk, s->applied_off);
  mp_pack_cstr(&pk, "next_id");
  msgpack_pack_uint64(&pk, pindex_next_id(s));
  mp_pack_cstr(&pk, "time_ms");
  msgpack_pack_int64(&pk, now);
  mp_pack_cstr(&pk, "log_bytes");
  msgpack_pack_uint64(&pk, s->log_bytes);
  mp_pack_cstr(&pk, "slots");
  msgpack_pack_map(&pk, 2);
  mp_pack_cstr(&pk, "count");
  msgpack_pack_uint32(&pk, t->count);
  pack_bin(&pk, "table", t->count ? (const void *)t->v : "",
           (size_t)t->count * sizeof(cs_slot));
  trash_list *tr = &s->trash;
  size_t tn = 0; /* the live entries, packed over the gone ones */
  for (size_t i = 0; i < tr->count; i++)
    if (!tr->v[i].gone) tn++;
  mp_pack_cstr(&pk, "trash");
  msgpack_pack_bin(&pk, tn * sizeof(trash_ent));
  for (size_t i = 0; i < tr->count; i++)
    if (!tr->v[i].gone)
      msgpack_pack_bin_body(&pk, &tr->v[i], sizeof(trash_ent));
  mp_pack_cstr(&pk, "idem");
  pthread_mutex_lock(&s->imu);
  idem_pack(&s->idem, &pk, s->applied_seq);
  pthread_mutex_unlock(&s->imu);
  mp_pack_cstr(&pk, "feed");
  feed_pack(&s->feed, &pk);
  mp_pack_cstr(&pk, "index");
  int rc = ix_save(s->ix, &pk);
  if (rc || b.len < SNAP_HEADER_BYTES) {
    rec_buf_free(&b);
    return cs_err(err, rc ? rc : -ENOMEM, "cannot serialise the indexes");
  }
  uint64_t plen = b.len - SNAP_HEADER_BYTES;
  uint64_t sum = XXH3_64bits(b.ptr + SNAP_HEADER_BYTES, plen);
  memset(b.ptr, 0, SNAP_HEADER_BYTES);
  memcpy(b.ptr, SNAP_MAGIC, SNAP_MAGIC_BYTES);
  le_put32(b.ptr + 8, SNAP_FORMAT_VERSION);
  le_put64(b.ptr + 16, plen);
  le_put64(b.ptr + 24, sum);

  char name[64];
  snprintf(name, sizeof name, SNAP_NAME_PREFIX "%016llx.snap",
           (unsigned long long)s->applied_seq);
  pthread_mutex_lock(&s->mmu);
  /* This position is saved already, unless the file of that name was
   * found unusable at open (then snapshot_seq is not its position). */
  if (s->snapshot_name && s->snapshot_seq == s->applied_seq &&
      strcmp(s->snapshot_name, name) == 0) {
    pthread_mutex_unlock(&s->mmu);
    rec_buf_free(&b);
    return 0;
  }
  rc = dir_replace(s->io, s->dir, name, b.ptr, b.len, err);
  rec_buf_free(&b);
  if (!rc) {
    char *old = s->snapshot_name;
    s->snapshot_name = strdup(name);
    if (!s->snapshot_name) {
      s->snapshot_name = old;
      rc = cs_err(err, -ENOMEM, "out of memory");
    } else {
      rc = manifest_write(s, pindex_next_id(s), err);
      if (rc) {
        free(s->snapshot_name); /* the manifest still names the old one */
        s->snapshot_name = old;
      } else {
        s->snapshot_seq = s->applied_seq;
        s->snapshot_log_bytes = s->log_bytes;
        s->snapshot_time_ms = now;
        if (old && strcmp(old, name) == 0) {
          free(old); /* an unusable file of this name, just replaced */
        } else if (old) {
          char path[DIR_PATH_BYTES];
          store_path(s, path, sizeof path, old);
          s->io->unlink(s->io->ctx, path);
          free(old);
        }
      }
    }
  }
  pthread_mutex_unlock(&s->mmu);
  return rc;
}

static bool get_u64(const msgpack_object *m, const char *k, uint64_t *out) {
  const msgpack_object *v = mp_map_get(m, k);
  if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return false;
  *out = v->via.u64;
  return true;
}

/* Copies a bin of exactly n bytes into a fresh array. */
static void *get_bin(const msgpack_object *m, const char *k, size_t n) {
  const msgpack_object *v = mp_map_get(m, k);
  if (!v || v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != n) return NULL;
  void *p = malloc(n ? n : 1);
  if (p) memcpy(p, v->via.bin.ptr, n);
  return p;
}

static int load_slots(cs_store *s, const msgpack_object *o, const char **why) {
  uint64_t n;
  if (!get_u64(o, "count", &n) || n >= UINT32_MAX) {
    *why = "bad slot count";
    return CS_ECORRUPT;
  }
  slot_table *t = &s->slots;
  t->v = get_bin(o, "table", n * sizeof(cs_slot));
  if (!t->v) {
    *why = "slot table missing or of the wrong size";
    return CS_ECORRUPT;
  }
  t->count = t->cap = (uint32_t)n;
  uint32_t last_account = CS_ALL_ACCOUNTS;
  uint64_t *count = NULL;
  for (uint32_t i = 0; i < t->count; i++) {
    const cs_slot *sl = &t->v[i];
    /* Increasing, but where an import from a lower shard began a run. */
    if (sl->id < CS_ID_MIN ||
        (i && (sl->id == t->v[i - 1].id ||
               (sl->id < t->v[i - 1].id && cs_id_shard(sl->id) >= s->shard)))) {
      *why = "slot ids out of order or out of range";
      return CS_ECORRUPT;
    }
    if (!slot_live(sl)) continue;
    if (sl->seg < s->first_seg || sl->seg - s->first_seg >= s->seg_count ||
        (uint64_t)sl->off + sl->len > s->segs[sl->seg - s->first_seg].size ||
        sl->off < SEG_HEADER_BYTES || sl->len <= REC_HEADER_BYTES) {
      *why = "a record location outside the log";
      return CS_ECORRUPT;
    }
    s->live_contacts++;
    s->live_bytes += sl->len;
    /* Runs of one account are common: look its counter up once a run. */
    if (slot_account(sl) != last_account) {
      last_account = slot_account(sl);
      count = u64map_get(&s->acct_counts, (uint64_t)last_account + 1);
      if (!count) {
        if (u64map_put(&s->acct_counts, (uint64_t)last_account + 1, 0))
          return -ENOMEM;
        count = u64map_get(&s->acct_counts, (uint64_t)last_account + 1);
      }
    }
    (*count)++;
  }
  if (slots_runs_rebuild(t)) {
    *why = "out of memory";
    return -ENOMEM;
  }
  s->max_id_seen = slots_max_id(t);
  return 0;
}

/* The trash list: each entry a dead slot of its account whose record
 * (the last put) lies inside the log. */
static int load_trash(cs_store *s, const msgpack_object *o, const char **why) {
  if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size % sizeof(trash_ent)) {
    *why = "trash list of the wrong size";
    return CS_ECORRUPT;
  }
  size_t n = o->via.bin.size / sizeof(trash_ent);
  /* Copied out first: in the file the array need not be aligned. */
  trash_ent *v = malloc(n ? o->via.bin.size : 1);
  if (!v) {
    *why = "out of memory";
    return -ENOMEM;
  }
  memcpy(v, o->via.bin.ptr, o->via.bin.size);
  for (size_t i = 0; i < n; i++) {
    int64_t slot = slots_find(&s->slots, v[i].id);
    const cs_slot *sl = slot >= 0 ? &s->slots.v[slot] : NULL;
    if (!sl || sl->acct_live != v[i].account << 1 || sl->seg < s->first_seg ||
        sl->seg - s->first_seg >= s->seg_count ||
        (uint64_t)sl->off + sl->len > s->segs[sl->seg - s->first_seg].size ||
        sl->off < SEG_HEADER_BYTES || sl->len <= REC_HEADER_BYTES) {
      *why = "a trashed contact without its record";
      free(v);
      return CS_ECORRUPT;
    }
  }
  int rc = trash_load(&s->trash, v, n);
  free(v);
  if (rc) *why = rc == -ENOMEM ? "out of memory" : "trash list out of order";
  return rc;
}

int snap_load(cs_store *s, const char *name, cs_error *err) {
  char path[DIR_PATH_BYTES];
  store_path(s, path, sizeof path, name);
  /* Mapped, not read: loading touches each byte about once, and a copy
   * would double the work and the memory for the load. */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat fst;
  if (fd < 0 || fstat(fd, &fst) < 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return cs_err(err, -e, "cannot read snapshot %s: %s", path, strerror(e));
  }
  size_t len = (size_t)fst.st_size;
  if ((uint64_t)fst.st_size > CS_SNAPSHOT_BYTES_MAX || len == 0) {
    close(fd);
    return cs_err(err, CS_ECORRUPT, "snapshot %s has an impossible size", path);
  }
  uint8_t *buf = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  close(fd);
  if (buf == MAP_FAILED)
    return cs_err(err, -errno, "cannot map snapshot %s: %s", path,
                  strerror(errno));
  int rc = 0;
  const char *why = NULL;
  bool old_index =
      false; /* a format (its own or its index's) before this one */
  msgpack_zone zone;
  msgpack_zone_init(&zone, 1 << 20);
  uint64_t plen = 0, sum = 0;
  uint32_t ver = 0;
  if (len >= SNAP_HEADER_BYTES) {
    ver = le_get32(buf + 8);
    plen = le_get64(buf + 16);
    sum = le_get64(buf + 24);
  }
  if (len < SNAP_HEADER_BYTES ||
      memcmp(buf, SNAP_MAGIC, SNAP_MAGIC_BYTES) != 0) {
    why = "not a snapshot file";
  } else if (ver < 1 || ver > SNAP_FORMAT_VERSION) {
    why = "unknown snapshot format version";
  } else if (ver < SNAP_FORMAT_FEED) {
    why = "written before the change feed";
    old_index = true;
  } else if (plen != len - SNAP_HEADER_BYTES) {
    why = "its length does not match the file size (truncated?)";
  } else if (sum != XXH3_64bits(buf + SNAP_HEADER_BYTES, plen)) {
    why = "checksum mismatch";
  }
  msgpack_object root;
  if (!why && !rec_msgpack_fits(buf + SNAP_HEADER_BYTES, plen))
    why = "payload is not one msgpack object that fits its length";
  if (!why) {
    size_t off = 0;
    if (msgpack_unpack((const char *)buf + SNAP_HEADER_BYTES, plen, &off, &zone,
                       &root) != MSGPACK_UNPACK_SUCCESS ||
        off != plen || root.type != MSGPACK_OBJECT_MAP)
      why = "payload is not one msgpack map";
  }
  uint64_t seq = 0, seg = 0, offset = 0, next_id = 0, log_bytes = 0;
  if (!why &&
      (!get_u64(&root, "seq", &seq) || !get_u64(&root, "segment", &seg) ||
       !get_u64(&root, "offset", &offset) ||
       !get_u64(&root, "next_id", &next_id) ||
       !get_u64(&root, "log_bytes", &log_bytes)))
    why = "missing position";
  if (!why && seq > 0 &&
      (seg < s->first_seg || seg - s->first_seg >= s->seg_count ||
       offset < SEG_HEADER_BYTES || offset > s->segs[seg - s->first_seg].size))
    why = "its log position is outside the log";
  const msgpack_object *slots = why ? NULL : mp_map_get(&root, "slots");
  const msgpack_object *index = why ? NULL : mp_map_get(&root, "index");
  if (!why && (!slots || !index)) why = "missing slots or index";
  if (!why) {
    rc = load_slots(s, slots, &why);
    if (rc == -ENOMEM) why = "out of memory";
  }
  if (!why && ver >= 2) {
    const msgpack_object *trash = mp_map_get(&root, "trash");
    const msgpack_object *idem = mp_map_get(&root, "idem");
    if (!trash || !idem)
      why = "missing trash or idempotency keys";
    else
      rc = load_trash(s, trash, &why);
    if (!why) rc = idem_unpack(&s->idem, idem, store_now(s), &why);
  }
  if (!why) {
    const msgpack_object *fo = mp_map_get(&root, "feed");
    if (!fo)
      why = "missing the change feed";
    else
      rc = feed_unpack(&s->feed, fo, seq, &why);
    if (rc == -ENOMEM) why = "out of memory";
  }
  if (!why) {
    static __thread char ixerr[256];
    ixerr[0] = 0;
    rc = s->opts.no_indexes
             ? 0
             : ix_load(s->ix, index, s->slots.count, ixerr, sizeof ixerr);
    if (rc) why = ixerr[0] ? ixerr : "index does not load";
    if (rc == CS_EFORMAT) old_index = true;
  }
  msgpack_zone_destroy(&zone);
  munmap(buf, len);
  if (why)
    return cs_err(err, old_index ? CS_EFORMAT : CS_ECORRUPT,
                  "snapshot %s is unusable: %s", path, why);
  s->applied_seq = seq;
  s->applied_seg = (uint32_t)(seq ? seg : s->first_seg);
  s->applied_off = seq ? offset : 0;
  s->log_bytes = log_bytes;
  if (next_id > s->max_id_seen + 1) s->max_id_seen = next_id - 1;
  s->snapshot_seq = seq;
  s->snapshot_log_bytes = log_bytes;
  struct stat st;
  if (stat(path, &st) == 0)
    s->snapshot_time_ms =
        (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
  return 0;
}
