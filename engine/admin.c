/*
 * admin.c: the offline operations of admin.h: lock, raw scan, verify,
 * compact (and salvage), dry-run checks.
 *
 * They work on "bare" stores: a cs_store with no commit thread and no
 * overlay, whose segments are mapped here and whose slots and indexes are
 * filled by the engine's own store_apply and snap_load, so that what they
 * rebuild is built exactly as open builds it. A bare store can be searched
 * and iterated with the public read functions, and saved with snap_save.
 *
 * Compaction, the one operation that writes, keeps this order so that a
 * crash at any step leaves the old store or the new one whole:
 *   1. write the live records into new segments numbered after the last
 *      one, with new sequence numbers after every old one, and a meta
 *      record holding next_id; sync each file, then the directory;
 *   2. replay the new segments into a bare store and check it holds every
 *      live contact;
 *   3. snap_save it: the snapshot (atomically), then the manifest naming
 *      the new segments and snapshot (atomically: the switch);
 *   4. remove the old segments and snapshot, sync the directory.
 * Before 3 the old manifest names none of the new files and open removes
 * them as strays (new segments are numbered past its last one, the
 * snapshot is not the one it names); after 3 the old segments are below
 * the new first one and open removes those. New sequence numbers start
 * after the old store's last, so the new snapshot's name never equals the
 * old one's.
 */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "store_int.h"

/* ------------------------------------------------------------ bare stores */

/* A store to fill by hand: nothing opened yet (store_new). */
static cs_store *bare_new(const char *dir, const cs_io *io) {
  cs_options o = {.io = io};
  return store_new(dir, &o);
}

/* A bare store locked on dir with its manifest read and segments mapped. */
static int bare_open(const char *dir, const cs_io *io, cs_store **out,
                     uint64_t *id_floor, cs_error *err) {
  *out = NULL;
  cs_store *s = bare_new(dir, io);
  if (!s) return cs_err(err, -ENOMEM, "out of memory");
  struct stat st;
  int rc = 0;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
    rc = cs_err(err, -ENOENT, "%s is not a data directory", dir);
  if (!rc) rc = dir_lock(s, err);
  if (!rc) rc = manifest_read(s, id_floor, err);
  if (!rc) rc = store_map_segments(s, err);
  if (rc) {
    store_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

static seg_map *bare_seg(cs_store *s, uint32_t no) {
  if (no < s->first_seg || no - s->first_seg >= s->seg_count) return NULL;
  return &s->segs[no - s->first_seg];
}

/* ------------------------------------------------------------- the lock */

struct cs_dirlock {
  cs_store *s;
};

int cs_dir_lock(const char *dir, cs_dirlock **out, cs_error *err) {
  *out = NULL;
  struct stat st;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
    return cs_err(err, -ENOENT, "%s is not a data directory", dir);
  cs_dirlock *l = calloc(1, sizeof *l);
  if (l) l->s = bare_new(dir, NULL);
  if (!l || !l->s) {
    free(l);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  int rc = dir_lock(l->s, err);
  if (rc) {
    cs_dir_unlock(l);
    return rc;
  }
  *out = l;
  return 0;
}

void cs_dir_unlock(cs_dirlock *l) {
  if (!l) return;
  store_free(l->s);
  free(l);
}

/* ------------------------------------------------------------- walking */

/*
 * Walks segment m from off: on_rec for each valid record, on_bad for each
 * damaged range. After damage the walk goes on at the next offset holding
 * a valid record with a sequence number above *last_seq (a record header
 * can be found by chance inside a payload only with a matching 64-bit
 * checksum). Damage with nothing valid after it on the last segment is a
 * torn tail. Either callback returning non-zero stops the walk.
 */
typedef struct walker {
  void *ctx;
  int (*on_rec)(void *ctx, seg_map *m, uint64_t off, const rec_view *r);
  int (*on_bad)(void *ctx, seg_map *m, uint64_t off, uint64_t len, bool torn,
                const char *why);
  uint64_t last_seq;
} walker;

static int walk_segment(walker *w, seg_map *m, uint64_t off, bool last) {
  if (off < SEG_HEADER_BYTES) {
    if (seg_header_check(m->map, m->size, m->no) != 0) {
      /* Records may still be intact behind a damaged header. */
      int rc = w->on_bad(
          w->ctx, m, 0, m->size < SEG_HEADER_BYTES ? m->size : SEG_HEADER_BYTES,
          false, "bad segment header");
      if (rc) return rc;
    }
    off = SEG_HEADER_BYTES;
  }
  while (off < m->size) {
    rec_view r;
    int c = rec_check(m->map + off, m->size - off, &r);
    const char *why = c == REC_TRUNCATED ? "truncated record"
                                         : "bad header or checksum mismatch";
    if (c == 0 && r.seq <= w->last_seq) {
      c = REC_BAD;
      why = "sequence number goes backwards";
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
    if (next + REC_HEADER_BYTES > m->size) next = m->size;
    int rc =
        w->on_bad(w->ctx, m, off, next - off, last && next == m->size, why);
    if (rc) return rc;
    off = next;
  }
  return 0;
}

/* --------------------------------------------------------------- replay */

/* Replaying into a bare store: strictly (any damage is an error, a torn
 * tail is a note) or salvaging (damage is skipped and reported). */
typedef struct replay {
  cs_store *s;
  bool salvage;
  cs_finding_fn fn;
  void *ctx;
  cs_error *err;
  uint64_t problems;
  uint64_t skipped_ranges;
  uint64_t skipped_bytes;
  uint64_t records;
  cs_progress_fn progress;
  void *progress_ctx;
  uint64_t progress_total;
  uint64_t progress_done;
} replay;

static void finding(cs_finding_fn fn, void *ctx, bool problem, const char *file,
                    int64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void finding(cs_finding_fn fn, void *ctx, bool problem, const char *file,
                    int64_t offset, const char *fmt, ...) {
  if (!fn) return;
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cs_finding f = {problem, file ? file : "", offset, msg};
  fn(ctx, &f);
}

static int replay_rec(void *ctx, seg_map *m, uint64_t off, const rec_view *r) {
  replay *rp = ctx;
  cs_store *s = rp->s;
  char name[32];
  seg_name(name, sizeof name, m->no);
  rec_body b;
  const char *why;
  rp->records++;
  if (rp->progress) {
    rp->progress_done += REC_HEADER_BYTES + r->len;
    if ((rp->records & 0xffff) == 0)
      rp->progress(rp->progress_ctx, rp->progress_done, rp->progress_total);
  }
  if (rec_decode(r, &s->czone, &b, &why) != 0) {
    if (!rp->salvage)
      return cs_err(rp->err, CS_ECORRUPT,
                    "%s/%s: record at offset %" PRIu64 ": %s", s->dir, name,
                    off, why);
    rp->skipped_ranges++;
    rp->skipped_bytes += REC_HEADER_BYTES + r->len;
    finding(rp->fn, rp->ctx, true, name, (int64_t)off,
            "skipped a record that does not decode (%s)", why);
    return 0;
  }
  cs_error aerr;
  int rc = store_apply(s, m->no, (uint32_t)off, r, &b, &aerr);
  if (rc == CS_ECORRUPT && rp->salvage) {
    rp->skipped_ranges++;
    rp->skipped_bytes += REC_HEADER_BYTES + r->len;
    finding(rp->fn, rp->ctx, true, name, (int64_t)off,
            "skipped a record that contradicts the log: %s", aerr.msg);
    return 0;
  }
  if (rc)
    return cs_err(rp->err, rc, "%s/%s: record at offset %" PRIu64 ": %s",
                  s->dir, name, off, aerr.msg);
  return 0;
}

static int replay_bad(void *ctx, seg_map *m, uint64_t off, uint64_t len,
                      bool torn, const char *why) {
  replay *rp = ctx;
  char name[32];
  seg_name(name, sizeof name, m->no);
  if (torn) {
    /* Where the log ends after a crash; open cuts it the same way. */
    finding(rp->fn, rp->ctx, false, name, (int64_t)off,
            "torn tail of %" PRIu64 " bytes (%s); open cuts it", len, why);
    return 0;
  }
  rp->problems++;
  if (!rp->salvage)
    return cs_err(rp->err, CS_ECORRUPT,
                  "%s/%s: damaged record at offset %" PRIu64 " (%s) with data "
                  "after it; run contactctl verify, or contactctl compact "
                  "--salvage",
                  rp->s->dir, name, off, why);
  rp->skipped_ranges++;
  rp->skipped_bytes += len;
  finding(rp->fn, rp->ctx, true, name, (int64_t)off,
          "skipped %" PRIu64 " damaged bytes (%s)", len, why);
  return 0;
}

/* Replays the mapped log of s into its slots and indexes, from the
 * position s already covers (a loaded snapshot's) or from the start. */
static int replay_log(replay *rp, bool from_snapshot) {
  cs_store *s = rp->s;
  walker w = {rp, replay_rec, replay_bad, s->applied_seq};
  for (uint32_t i = 0; i < s->seg_count; i++)
    rp->progress_total += s->segs[i].size;
  if (!from_snapshot) ix_bulk_begin(s->ix);
  int rc = 0;
  for (uint32_t i = 0; i < s->seg_count && !rc; i++) {
    seg_map *m = &s->segs[i];
    uint64_t from = 0;
    if (from_snapshot && s->applied_seq) {
      if (m->no < s->applied_seg) continue;
      if (m->no == s->applied_seg) from = s->applied_off;
    }
    rc = walk_segment(&w, m, from, i + 1 == s->seg_count);
  }
  if (!from_snapshot) {
    int brc = ix_bulk_end(s->ix);
    if (!rc && brc)
      rc = cs_err(rp->err, brc, "cannot build the indexes: %s",
                  cs_strerror(brc));
  }
  if (rp->progress)
    rp->progress(rp->progress_ctx, rp->progress_total, rp->progress_total);
  return rc;
}

/* ------------------------------------------------------------- raw scan */

typedef struct scan_ctx {
  int (*fn)(void *ctx, const cs_raw_record *r);
  void *ctx;
  msgpack_zone zone;
} scan_ctx;

static int scan_rec(void *ctx, seg_map *m, uint64_t off, const rec_view *r) {
  scan_ctx *sc = ctx;
  cs_raw_record raw = {.seg = m->no,
                       .offset = off,
                       .status = CS_RAW_OK,
                       .type = r->type,
                       .len = REC_HEADER_BYTES + r->len,
                       .seq = r->seq,
                       .checksum = r->checksum};
  rec_body b;
  const char *why;
  if (rec_decode(r, &sc->zone, &b, &why) != 0) {
    raw.status = CS_RAW_UNDECODABLE;
  } else {
    raw.id = b.contact.id;
    raw.account = b.contact.account;
    raw.next_id = b.next_id;
  }
  return sc->fn(sc->ctx, &raw);
}

static int scan_bad(void *ctx, seg_map *m, uint64_t off, uint64_t len,
                    bool torn, const char *why) {
  scan_ctx *sc = ctx;
  cs_raw_record raw = {.seg = m->no,
                       .offset = off,
                       .status = torn ? CS_RAW_TORN : CS_RAW_BAD,
                       .len = len};
  return sc->fn(sc->ctx, &raw);
}

int cs_admin_scan(const char *dir, int (*fn)(void *ctx, const cs_raw_record *r),
                  void *ctx, cs_error *err) {
  cs_store *s;
  uint64_t floor;
  int rc = bare_open(dir, NULL, &s, &floor, err);
  if (rc) return rc;
  scan_ctx sc = {fn, ctx};
  msgpack_zone_init(&sc.zone, 4096);
  walker w = {&sc, scan_rec, scan_bad, 0};
  for (uint32_t i = 0; i < s->seg_count && !rc; i++)
    rc = walk_segment(&w, &s->segs[i], 0, i + 1 == s->seg_count);
  msgpack_zone_destroy(&sc.zone);
  store_free(s);
  return rc;
}

/* ---------------------------------------------------------------- verify */

typedef struct vctx {
  cs_finding_fn fn;
  void *ctx;
  cs_verify_result *res;
  msgpack_zone zone;
} vctx;

static int verify_rec(void *ctx, seg_map *m, uint64_t off, const rec_view *r) {
  vctx *v = ctx;
  v->res->records++;
  rec_body b;
  const char *why;
  if (rec_decode(r, &v->zone, &b, &why) != 0) {
    char name[32];
    seg_name(name, sizeof name, m->no);
    v->res->problems++;
    finding(v->fn, v->ctx, true, name, (int64_t)off,
            "record seq %" PRIu64 " has a good checksum but %s", r->seq, why);
  }
  return 0;
}

static int verify_bad(void *ctx, seg_map *m, uint64_t off, uint64_t len,
                      bool torn, const char *why) {
  vctx *v = ctx;
  char name[32];
  seg_name(name, sizeof name, m->no);
  if (torn) {
    v->res->notes++;
    finding(v->fn, v->ctx, false, name, (int64_t)off,
            "torn tail of %" PRIu64 " bytes (%s); open cuts it", len, why);
  } else {
    v->res->problems++;
    finding(v->fn, v->ctx, true, name, (int64_t)off,
            "%s; %" PRIu64 " bytes damaged before the next valid record", why,
            len);
  }
  return 0;
}

/* Files in dir that the manifest does not name: open would remove them. */
static void verify_strays(cs_store *s, vctx *v) {
  DIR *d = opendir(s->dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (store_file_is_stray(s, e->d_name)) {
      v->res->notes++;
      finding(v->fn, v->ctx, false, e->d_name, -1,
              "not part of the store (left by an interrupted write); open "
              "removes it");
    }
  }
  closedir(d);
}

/* Both stores' answers to one search, compared. */
static void verify_search(cs_store *snap, cs_store *full, vctx *v,
                          uint32_t account, int field, cs_match match,
                          const char *term, size_t len) {
  cs_query q = {.account = account,
                .field = field,
                .match = match,
                .term = term,
                .term_len = len,
                .limit = 50};
  cs_page a, b;
  cs_error ea, eb;
  int ra = cs_search(snap, &q, &a, &ea);
  int rb = cs_search(full, &q, &b, &eb);
  v->res->searches++;
  bool same = ra == rb;
  if (same && ra == 0) {
    same = a.total == b.total && a.count == b.count && a.more == b.more;
    for (uint32_t i = 0; same && i < a.count; i++)
      same = a.contacts[i].id == b.contacts[i].id;
  }
  if (!same) {
    v->res->problems++;
    finding(v->fn, v->ctx, true, snap->snapshot_name, -1,
            "search %s %s \"%.*s\" in account %u answers %" PRIu64
            " from the snapshot, %" PRIu64 " from the log",
            cs_field_name(field),
            match == CS_MATCH_PREFIX  ? "prefix"
            : match == CS_MATCH_WORDS ? "words"
                                      : "exact",
            (int)(len > 60 ? 60 : len), term, account, ra ? 0 : a.total,
            rb ? 0 : b.total);
  }
  if (!ra) cs_page_free(&a);
  if (!rb) cs_page_free(&b);
}

static bool same_str(cs_str a, cs_str b) {
  if (!a.ptr || !b.ptr) return !a.ptr && !b.ptr;
  return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* The snapshot-loaded store against the replayed one. */
static void verify_compare(cs_store *snap, cs_store *full, vctx *v,
                           uint32_t sample) {
  const char *sn = snap->snapshot_name;
  const slot_table *a = &snap->slots, *b = &full->slots;
  if (a->count != b->count) {
    v->res->problems++;
    finding(v->fn, v->ctx, true, sn, -1,
            "holds %u index slots where the log gives %u", a->count, b->count);
  }
  msgpack_zone za, zb;
  msgpack_zone_init(&za, 4096);
  msgpack_zone_init(&zb, 4096);
  uint32_t n = a->count < b->count ? a->count : b->count;
  uint64_t reported = 0;
  for (uint32_t i = 0; i < n; i++) {
    const cs_slot *x = &a->v[i], *y = &b->v[i];
    bool loc = slot_live(x) && slot_live(y) &&
               (x->seg != y->seg || x->off != y->off || x->len != y->len);
    if (x->id != y->id || x->acct_live != y->acct_live || loc) {
      v->res->problems++;
      if (reported++ < 20)
        finding(v->fn, v->ctx, true, sn, -1,
                "index entry %u (contact %020" PRIu64 ", %s) says segment %u "
                "offset %u; the log has contact %020" PRIu64 " (%s) at "
                "segment %u offset %u",
                i, x->id, slot_live(x) ? "live" : "deleted", x->seg, x->off,
                y->id, slot_live(y) ? "live" : "deleted", y->seg, y->off);
    }
    if (!slot_live(x)) continue;
    /* Each live entry must point at a put of its own id. */
    rec_body ra, rb;
    cs_error e;
    if (store_read_slot(snap, i, &za, &ra, &e) != 0) {
      char name[32];
      seg_name(name, sizeof name, x->seg);
      v->res->problems++;
      if (reported++ < 20)
        finding(v->fn, v->ctx, true, name, x->off,
                "the snapshot's index entry for contact %020" PRIu64
                " points here: %s",
                x->id, e.msg);
      continue;
    }
    if (!slot_live(y) || store_read_slot(full, i, &zb, &rb, &e) != 0) continue;
    bool same = ra.contact.id == rb.contact.id &&
                ra.contact.account == rb.contact.account &&
                ra.contact.created_ms == rb.contact.created_ms &&
                ra.contact.updated_ms == rb.contact.updated_ms;
    for (int f = 0; same && f < CS_FIELD_COUNT; f++)
      same = same_str(ra.contact.field[f], rb.contact.field[f]);
    if (!same) {
      v->res->problems++;
      if (reported++ < 20)
        finding(v->fn, v->ctx, true, sn, -1,
                "contact %020" PRIu64 " differs between snapshot and log",
                x->id);
    }
  }
  if (reported > 20)
    finding(v->fn, v->ctx, true, sn, -1,
            "... %" PRIu64 " index problems in all", reported);
  if (snap->live_contacts != full->live_contacts ||
      snap->live_bytes != full->live_bytes ||
      snap->log_bytes != full->log_bytes ||
      snap->max_id_seen != full->max_id_seen) {
    v->res->problems++;
    finding(v->fn, v->ctx, true, sn, -1,
            "counts differ: %" PRIu64 " contacts, %" PRIu64
            " live bytes, %" PRIu64 " log bytes, highest id %" PRIu64
            " from the snapshot; %" PRIu64 ", %" PRIu64 ", %" PRIu64
            ", %" PRIu64 " from the log",
            snap->live_contacts, snap->live_bytes, snap->log_bytes,
            snap->max_id_seen, full->live_contacts, full->live_bytes,
            full->log_bytes, full->max_id_seen);
  }
  /* Searches on values of a sample of the log's live contacts, spread over
   * the whole id range. */
  uint64_t live = full->live_contacts;
  uint32_t step = live > sample && sample ? (uint32_t)(live / sample) : 1;
  uint32_t seen = 0;
  for (uint32_t i = 0; i < b->count; i++) {
    if (!slot_live(&b->v[i]) || seen++ % step) continue;
    rec_body rb;
    cs_error e;
    if (store_read_slot(full, i, &zb, &rb, &e) != 0) continue;
    const cs_contact *c = &rb.contact;
    /* The record lives in the map, so its strings stay put while the
     * searches below reuse the zone. */
    for (int f = 0; f < CS_FIELD_COUNT; f++) {
      cs_str t = c->field[f];
      if (!t.ptr || !t.len) continue;
      verify_search(snap, full, v, c->account, f, CS_MATCH_DEFAULT, t.ptr,
                    t.len);
      size_t plen = t.len < 3 ? t.len : 3;
      while (plen < t.len && (t.ptr[plen] & 0xc0) == 0x80)
        plen++;
      verify_search(snap, full, v, c->account, f, CS_MATCH_PREFIX, t.ptr, plen);
      size_t wlen = 0;
      while (wlen < t.len && t.ptr[wlen] != ' ')
        wlen++;
      verify_search(snap, full, v, c->account, f, CS_MATCH_WORDS, t.ptr, wlen);
    }
    char id[CS_ID_DIGITS + 1];
    cs_id_format(c->id, id);
    verify_search(snap, full, v, c->account, CS_SEARCH_BY_ID, CS_MATCH_EXACT,
                  id, CS_ID_DIGITS);
  }
  msgpack_zone_destroy(&za);
  msgpack_zone_destroy(&zb);
}

int cs_admin_verify(const char *dir, const cs_verify_opts *o, cs_finding_fn fn,
                    void *ctx, cs_verify_result *res, cs_error *err) {
  cs_verify_opts none = {0};
  if (!o) o = &none;
  memset(res, 0, sizeof *res);
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  cs_store *full = NULL, *snap = NULL;
  uint64_t floor = 0;
  vctx v = {fn, ctx, res};
  msgpack_zone_init(&v.zone, 4096);
  int rc = bare_open(dir, NULL, &full, &floor, err);
  if (rc) {
    /* A damaged manifest is a finding, not a failure to look. */
    if (rc == CS_ECORRUPT || rc == CS_EFORMAT) {
      res->problems++;
      finding(fn, ctx, true, MANIFEST_NAME, -1, "%s", err ? err->msg : "");
      rc = 0;
    }
    goto out;
  }
  res->segments = full->seg_count;
  verify_strays(full, &v);
  if (floor < CS_ID_MIN) {
    res->problems++;
    finding(fn, ctx, true, MANIFEST_NAME, -1,
            "its id floor %" PRIu64 " is not an id", floor);
  }

  /* 1. Every byte of every segment. */
  walker w = {&v, verify_rec, verify_bad, 0};
  for (uint32_t i = 0; i < full->seg_count; i++)
    walk_segment(&w, &full->segs[i], 0, i + 1 == full->seg_count);
  if (res->problems) goto out; /* a replay would stop at the same damage */

  /* 2. The whole log replayed, as open without a snapshot does. */
  cs_error rerr;
  replay rp = {.s = full,
               .fn = fn,
               .ctx = ctx,
               .err = &rerr,
               .progress = o->progress,
               .progress_ctx = o->progress_ctx};
  if (replay_log(&rp, false) != 0) {
    res->problems++;
    finding(fn, ctx, true, "", -1, "replaying the log fails: %s", rerr.msg);
    goto out;
  }
  res->contacts = full->live_contacts;
  if (full->max_id_seen + 1 > floor && floor < full->max_id_seen) {
    /* The floor only ever rises past the highest id; below it is fine. */
  }

  /* 3. The snapshot, loaded and caught up as open does, against it. */
  if (!full->snapshot_name) goto out;
  snap = bare_new(dir, NULL);
  if (!snap) {
    rc = cs_err(err, -ENOMEM, "out of memory");
    goto out;
  }
  snap->first_seg = full->first_seg;
  snap->last_seg = full->last_seg;
  snap->snapshot_name = strdup(full->snapshot_name);
  rc = store_map_segments(snap, err);
  if (rc) goto out;
  /* snap_load installs slot arrays of its own. */
  free(snap->slots.v);
  memset(&snap->slots, 0, sizeof snap->slots);
  cs_error serr;
  if (snap_load(snap, snap->snapshot_name, &serr) != 0) {
    res->problems++;
    finding(fn, ctx, true, snap->snapshot_name, -1, "%s", serr.msg);
    goto out;
  }
  replay sp = {.s = snap, .err = &rerr};
  if (replay_log(&sp, true) != 0) {
    res->problems++;
    finding(fn, ctx, true, snap->snapshot_name, -1,
            "the log after the snapshot's position does not replay onto it: "
            "%s",
            rerr.msg);
    goto out;
  }
  verify_compare(snap, full, &v, o->sample_contacts ? o->sample_contacts : 100);
out:
  msgpack_zone_destroy(&v.zone);
  store_free(snap);
  store_free(full);
  return rc;
}

/* --------------------------------------------------------------- compact */

/* Bytes of the store's files: its segments, snapshot and manifest. */
static uint64_t store_bytes(cs_store *s, uint32_t first, uint32_t last,
                            const char *snapshot) {
  uint64_t total = 0;
  char name[64], path[4096];
  struct stat st;
  for (uint32_t no = first; no <= last && no; no++) {
    seg_name(name, sizeof name, no);
    store_path(s, path, sizeof path, name);
    if (stat(path, &st) == 0) total += (uint64_t)st.st_size;
  }
  if (snapshot) {
    store_path(s, path, sizeof path, snapshot);
    if (stat(path, &st) == 0) total += (uint64_t)st.st_size;
  }
  store_path(s, path, sizeof path, MANIFEST_NAME);
  if (stat(path, &st) == 0) total += (uint64_t)st.st_size;
  return total;
}

/* Writes one new segment file whole, synced. */
static int segment_write(cs_store *s, uint32_t no, const rec_buf *b,
                         cs_error *err) {
  char name[32], path[4096];
  seg_name(name, sizeof name, no);
  store_path(s, path, sizeof path, name);
  const cs_io *io = s->io;
  int fd = io->open(io->ctx, path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0)
    return cs_err(err, fd, "cannot create %s: %s", path, cs_strerror(fd));
  long n = io->pwrite(io->ctx, fd, b->ptr, b->len, 0);
  int rc = n < 0 ? (int)n : 0;
  if (!rc) rc = io->fdatasync(io->ctx, fd);
  int crc = io->close(io->ctx, fd);
  if (!rc) rc = crc;
  if (rc) return cs_err(err, rc, "cannot write %s: %s", path, cs_strerror(rc));
  return 0;
}

static void segment_start(rec_buf *b, uint32_t no) {
  b->len = 0;
  seg_header_make(b->ptr, no);
  b->len = SEG_HEADER_BYTES;
}

/*
 * Step 1: the live records of src, in id order, into segments first_no..
 * (*last_no), with sequence numbers from first_seq, and the meta record.
 * Payloads are copied as they are (their checksums verified first) and
 * framed again with their new sequence number.
 */
static int compact_write(cs_store *src, cs_store *dst, uint32_t seg_max,
                         uint32_t first_no, uint64_t first_seq,
                         uint64_t next_id, const cs_compact_opts *o,
                         uint32_t *last_no, cs_error *err) {
  rec_buf b = {0};
  int rc = 0;
  uint32_t no = first_no;
  uint64_t seq = first_seq;
  uint64_t done = 0, total = src->live_contacts;
  if (rec_buf_reserve(&b, (size_t)seg_max + CS_RECORD_BYTES_MAX))
    return cs_err(err, -ENOMEM, "out of memory");
  segment_start(&b, no);
  for (uint32_t i = 0; i < src->slots.count; i++) {
    const cs_slot *sl = &src->slots.v[i];
    if (!slot_live(sl)) continue;
    seg_map *m = bare_seg(src, sl->seg);
    uint32_t off = sl->off;
    rec_view r;
    if (!m || off >= m->size ||
        rec_check(m->map + off, m->size - off, &r) != 0 || r.type != REC_PUT) {
      char name[32];
      seg_name(name, sizeof name, sl->seg);
      rc = cs_err(err, CS_ECORRUPT,
                  "%s/%s: the record of contact %" PRIu64 " at offset %u "
                  "fails its checksum; run contactctl compact --salvage",
                  src->dir, name, sl->id, off);
      goto out;
    }
    uint32_t len = REC_HEADER_BYTES + r.len;
    if (b.len + len > seg_max && b.len > SEG_HEADER_BYTES) {
      rc = segment_write(dst, no, &b, err);
      if (rc) goto out;
      *last_no = no++;
      segment_start(&b, no);
    }
    memcpy(b.ptr + b.len + REC_HEADER_BYTES, r.payload, r.len);
    rec_frame(b.ptr + b.len, REC_PUT, seq++, r.len);
    b.len += len;
    if (o->progress && (++done & 0x3fff) == 0)
      o->progress(o->progress_ctx, done, total);
  }
  rc = rec_append_meta(&b, seq, next_id);
  if (rc) {
    rc = cs_err(err, rc, "out of memory");
    goto out;
  }
  rc = segment_write(dst, no, &b, err);
  if (rc) goto out;
  *last_no = no;
  rc = dst->io->fsync_dir(dst->io->ctx, dst->dir);
  if (rc)
    rc = cs_err(err, rc, "cannot sync directory %s: %s", dst->dir,
                cs_strerror(rc));
  if (o->progress) o->progress(o->progress_ctx, total, total);
out:
  rec_buf_free(&b);
  return rc;
}

/* Removes the new segments after a failure before the switch. */
static void compact_undo(cs_store *dst, uint32_t first_no, uint32_t last_no) {
  char name[32], path[4096];
  for (uint32_t no = first_no; no <= last_no; no++) {
    seg_name(name, sizeof name, no);
    store_path(dst, path, sizeof path, name);
    dst->io->unlink(dst->io->ctx, path);
  }
}

/* What open noticed and repaired, passed on as notes. */
struct notice_to_finding {
  cs_finding_fn fn;
  void *ctx;
};

static void notice_note(void *ctx, const char *line) {
  struct notice_to_finding *nf = ctx;
  finding(nf->fn, nf->ctx, false, "", -1, "%s", line);
}

int cs_admin_compact(const char *dir, const cs_compact_opts *o,
                     cs_finding_fn fn, void *ctx, cs_compact_result *res,
                     cs_error *err) {
  cs_compact_opts none = {0};
  if (!o) o = &none;
  memset(res, 0, sizeof *res);
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  const cs_io *io = o->io ? o->io : cs_io_posix();
  uint32_t seg_max =
      o->segment_bytes_max ? o->segment_bytes_max : CS_SEGMENT_BYTES_DEFAULT;
  if (seg_max < CS_SEGMENT_BYTES_MIN || seg_max > CS_SEGMENT_BYTES_MAX)
    return cs_err(err, CS_EINVAL, "segment size %u is outside %u..%u", seg_max,
                  CS_SEGMENT_BYTES_MIN, CS_SEGMENT_BYTES_MAX);

  /* The source: the store as open sees it, or as salvage can read it. */
  cs_store *opened = NULL, *src = NULL, *dst = NULL;
  uint64_t next_id = 0, last_seq = 0;
  int rc;
  struct notice_to_finding nf = {fn, ctx};
  if (!o->salvage) {
    cs_options opts = {.io = io,
                       .no_snapshot_on_close = true,
                       .segment_bytes_max = seg_max,
                       .notice = notice_note,
                       .notice_ctx = &nf};
    rc = cs_open(dir, &opts, &opened, err);
    if (rc) return rc;
    src = opened;
    next_id = src->next_id;
    last_seq = src->applied_seq;
  } else {
    uint64_t floor = 0;
    rc = bare_open(dir, io, &src, &floor, err);
    if (rc) return rc;
    replay rp = {.s = src, .salvage = true, .fn = fn, .ctx = ctx, .err = err};
    rc = replay_log(&rp, false);
    if (rc) goto out;
    res->skipped_ranges = rp.skipped_ranges;
    res->skipped_bytes = rp.skipped_bytes;
    next_id = src->max_id_seen + 1;
    if (next_id < floor) next_id = floor;
    /* Damaged records may have carried higher numbers than any applied. */
    last_seq = src->applied_seq;
    for (uint32_t i = 0; i < src->seg_count; i++) {
      seg_map *m = &src->segs[i];
      for (uint64_t off = SEG_HEADER_BYTES; off + REC_HEADER_BYTES <= m->size;
           off++) {
        rec_view r;
        if (rec_check(m->map + off, m->size - off, &r) == 0) {
          if (r.seq > last_seq) last_seq = r.seq;
          off += REC_HEADER_BYTES + r.len - 1;
        }
      }
    }
  }
  uint32_t old_first = src->first_seg, old_last = src->last_seg;
  res->segments_before = old_last - old_first + 1;
  res->bytes_before = store_bytes(src, old_first, old_last, src->snapshot_name);
  res->contacts = src->live_contacts;
  res->next_id = next_id;

  /* 1. The new segments. */
  dst = bare_new(dir, io);
  if (!dst) {
    rc = cs_err(err, -ENOMEM, "out of memory");
    goto out;
  }
  uint32_t first_no = old_last + 1, last_no = 0;
  rc = compact_write(src, dst, seg_max, first_no, last_seq + 1, next_id, o,
                     &last_no, err);
  if (rc) {
    compact_undo(dst, first_no, last_no ? last_no + 1 : first_no);
    goto out;
  }

  /* 2. Read back and replayed as open will, and checked whole. */
  dst->first_seg = first_no;
  dst->last_seg = last_no;
  cs_error rerr;
  replay rp = {.s = dst, .err = &rerr};
  rc = store_map_segments(dst, err);
  if (!rc && replay_log(&rp, false) != 0)
    rc = cs_err(err, CS_ECORRUPT, "the new segments do not read back: %s",
                rerr.msg);
  if (!rc && (dst->live_contacts != src->live_contacts ||
              dst->max_id_seen + 1 != next_id))
    rc = cs_err(err, CS_ECORRUPT,
                "the new segments hold %" PRIu64 " contacts (next id %" PRIu64
                ") where %" PRIu64 " (next id %" PRIu64 ") were written",
                dst->live_contacts, dst->max_id_seen + 1, src->live_contacts,
                next_id);
  if (rc) {
    compact_undo(dst, first_no, last_no);
    goto out;
  }

  /* 3. The snapshot and the switch. From here on a failure leaves the
   * files alone: the manifest on disk decides, and open tidies up. */
  if (src->snapshot_name) {
    dst->snapshot_name = strdup(src->snapshot_name);
    if (!dst->snapshot_name) {
      rc = cs_err(err, -ENOMEM, "out of memory");
      compact_undo(dst, first_no, last_no);
      goto out;
    }
  }
  rc = snap_save(dst, err);
  if (rc) goto out;

  /* 4. The old segments (snap_save removed the old snapshot). */
  for (uint32_t no = old_first; no <= old_last; no++) {
    char name[32], path[4096];
    seg_name(name, sizeof name, no);
    store_path(dst, path, sizeof path, name);
    int urc = io->unlink(io->ctx, path);
    if (urc && urc != -ENOENT && !rc)
      rc = cs_err(err, urc,
                  "compacted, but cannot remove %s (the next open "
                  "removes it): %s",
                  path, cs_strerror(urc));
  }
  int drc = io->fsync_dir(io->ctx, dir);
  if (drc && !rc)
    rc = cs_err(err, drc, "compacted, but cannot sync directory %s: %s", dir,
                cs_strerror(drc));
  res->segments_after = last_no - first_no + 1;
  res->bytes_after = store_bytes(dst, first_no, last_no, dst->snapshot_name);
out:
  store_free(dst);
  if (opened) {
    cs_error cerr;
    cs_close(opened, &cerr);
  } else {
    store_free(src);
  }
  return rc;
}

/* ---------------------------------------------------------------- dry run */

/* Emails met in this run: case-folded text and account, with the tag. */
typedef struct dry_entry {
  uint64_t hash; /* 0: empty */
  uint32_t account;
  char *email;
  size_t len;
  uint64_t tag;
} dry_entry;

struct cs_dryrun {
  cs_store *s;
  dry_entry *t;
  size_t mask;
  size_t count;
  fold_buf key, fcase, fcase2;
};

int cs_dryrun_create(cs_store *s, cs_dryrun **out) {
  cs_dryrun *d = calloc(1, sizeof *d);
  if (d) {
    d->mask = 1023;
    d->t = calloc(d->mask + 1, sizeof *d->t);
  }
  if (!d || !d->t) {
    free(d);
    return -ENOMEM;
  }
  d->s = s;
  *out = d;
  return 0;
}

void cs_dryrun_destroy(cs_dryrun *d) {
  if (!d) return;
  for (size_t i = 0; i <= d->mask; i++)
    free(d->t[i].email);
  free(d->t);
  fold_buf_free(&d->key);
  fold_buf_free(&d->fcase);
  fold_buf_free(&d->fcase2);
  free(d);
}

static dry_entry *dry_find(cs_dryrun *d, uint64_t h, uint32_t account,
                           const char *e, size_t len) {
  for (size_t j = h & d->mask;; j = (j + 1) & d->mask) {
    dry_entry *x = &d->t[j];
    if (!x->hash) return x;
    if (x->hash == h && x->account == account && x->len == len &&
        memcmp(x->email, e, len) == 0)
      return x;
  }
}

static int dry_grow(cs_dryrun *d) {
  size_t cap = (d->mask + 1) * 2;
  dry_entry *t = calloc(cap, sizeof *t);
  if (!t) return -ENOMEM;
  for (size_t i = 0; i <= d->mask; i++) {
    if (!d->t[i].hash) continue;
    size_t j = d->t[i].hash & (cap - 1);
    while (t[j].hash)
      j = (j + 1) & (cap - 1);
    t[j] = d->t[i];
  }
  free(d->t);
  d->t = t;
  d->mask = cap - 1;
  return 0;
}

/* The stored contact of account with this email (as cs_create compares:
 * case-folded equality, found through the exact email index). */
typedef struct dry_probe {
  cs_dryrun *d;
  uint64_t found;
  int rc;
} dry_probe;

static int dry_probe_slot(void *ctx, uint32_t slot) {
  dry_probe *p = ctx;
  cs_store *s = p->d->s;
  rec_body b;
  cs_error e;
  int rc = store_read_slot(s, slot, &s->wzone, &b, &e);
  if (rc) {
    p->rc = rc;
    return 1;
  }
  const cs_str *em = &b.contact.field[CS_EMAIL];
  if (fold_case(em->ptr, em->len, &p->d->fcase2) == 0 &&
      p->d->fcase2.len == p->d->fcase.len &&
      memcmp(p->d->fcase2.ptr, p->d->fcase.ptr, p->d->fcase.len) == 0) {
    p->found = s->slots.v[slot].id;
    return 1;
  }
  return 0;
}

int cs_dryrun_check(cs_dryrun *d, uint32_t account, cs_contact *c, uint64_t tag,
                    uint64_t *dup_tag, cs_error *err) {
  *dup_tag = 0;
  if (account == CS_ALL_ACCOUNTS)
    return cs_err(err, CS_EINVAL, "invalid account number");
  int rc = cs_contact_validate(c, err);
  if (rc) return rc;
  const cs_str *em = &c->field[CS_EMAIL];
  rc = fold_key(CS_EMAIL, em->ptr, em->len, &d->key);
  if (!rc) rc = fold_case(em->ptr, em->len, &d->fcase);
  if (rc) return cs_err(err, rc, "cannot fold the email");
  uint64_t h = XXH3_64bits_withSeed(d->fcase.ptr, d->fcase.len, account);
  if (!h) h = 1;
  dry_entry *x = dry_find(d, h, account, d->fcase.ptr, d->fcase.len);
  if (x->hash) {
    *dup_tag = x->tag;
    cs_err(err, CS_EDUPLICATE, "email: already used by an earlier contact");
    if (err) err->field = CS_EMAIL;
    return CS_EDUPLICATE;
  }
  cs_store *s = d->s;
  dry_probe p = {d, 0, 0};
  pthread_rwlock_rdlock(&s->ilock);
  ix_exact_slots(s->ix, account, CS_EMAIL, d->key.ptr, d->key.len,
                 dry_probe_slot, &p);
  pthread_rwlock_unlock(&s->ilock);
  if (p.rc)
    return cs_err(err, p.rc, "cannot read a contact while checking the email");
  if (p.found) {
    cs_err(err, CS_EDUPLICATE, "email: already used by contact %020" PRIu64,
           p.found);
    if (err) {
      err->id = p.found;
      err->field = CS_EMAIL;
    }
    return CS_EDUPLICATE;
  }
  if ((d->count + 1) * 4 > (d->mask + 1) * 3) {
    if (dry_grow(d)) return cs_err(err, -ENOMEM, "out of memory");
    x = dry_find(d, h, account, d->fcase.ptr, d->fcase.len);
  }
  x->email = malloc(d->fcase.len + 1);
  if (!x->email) return cs_err(err, -ENOMEM, "out of memory");
  memcpy(x->email, d->fcase.ptr, d->fcase.len);
  x->hash = h;
  x->account = account;
  x->len = d->fcase.len;
  x->tag = tag;
  d->count++;
  return 0;
}
