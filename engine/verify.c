/*
 * verify.c: the read-only offline operations of admin.h: the raw scan of
 * every record (contactctl dump --raw) and verify.
 *
 * Verify looks at everything and changes nothing: the manifest; every
 * byte of every segment through the log's one walker (log.c), so it
 * calls torn and damaged exactly what open calls them, and on the way that
 * no contact's version goes back along the log; then the whole log
 * replayed into a bare store as open without a snapshot does; then the
 * snapshot loaded and caught up as open does, compared with the replay
 * slot by slot, count by count, contact by contact, and search by search
 * on a sample of stored values (DESIGN promises 4 and 6).
 *
 * Versions along the log: each put of an id (a restore is a put too)
 * carries a version greater than the previous put's of that id; a delete
 * keeps the version (when its record names one, it is the last put's). A
 * put without a version is a record format 1 wrote, version 1; format 1
 * kept no versions, so such a put may follow a put of version 1 (an edit
 * in format 1) but none of a higher one.
 *
 * Invariants kept: nothing here writes to the directory; every problem
 * and note goes to the caller's finding callback, none is skipped.
 * Relied on: bare stores (bare.h) hold the directory lock.
 */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bare.h"
#include "dir.h"
#include "mp.h"
#include "u64map.h"
#include "err.h"
#include "log.h"
#include "pindex.h"
#include "replay.h"
#include "snap.h"
#include "store_int.h"

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

static int scan_bad(void *ctx, seg_map *m, const log_bad *bad) {
  scan_ctx *sc = ctx;
  cs_raw_record raw = {.seg = m->no,
                       .offset = bad->off,
                       .status = bad->torn ? CS_RAW_TORN : CS_RAW_BAD,
                       .len = bad->len};
  return sc->fn(sc->ctx, &raw);
}

int cs_admin_scan(const char *dir, int (*fn)(void *ctx, const cs_raw_record *r),
                  void *ctx, cs_error *err) {
  cs_store *s;
  uint64_t floor;
  int rc = bare_open(dir, NULL, &s, &floor, err);
  if (rc) return rc;
  scan_ctx sc = {fn, ctx};
  msgpack_zone_init(&sc.zone, REC_ZONE_CHUNK_BYTES);
  log_walker w = {&sc, scan_rec, scan_bad, 0};
  for (uint32_t i = 0; i < s->seg_count && !rc; i++)
    rc = log_walk(&w, &s->segs[i], 0, i + 1 == s->seg_count);
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
  u64map versions; /* id -> the version of its last put so far */
  int oom;         /* -ENOMEM when versions could not grow */
} vctx;

/* The version a put's bytes carry, or 0 when they carry none (format 1).
 * Read from the payload itself, so that a put without the key is told from
 * one whose version is 1 whatever the decoder makes of either. The payload
 * decoded once already, so it unpacks. */
static uint64_t put_version_written(vctx *v, const rec_view *r) {
  msgpack_object o;
  msgpack_zone_clear(&v->zone);
  if (msgpack_unpack((const char *)r->payload, r->len, NULL, &v->zone, &o) !=
      MSGPACK_UNPACK_SUCCESS)
    return 0;
  const msgpack_object *ver =
      mp_map_get(&o, cs_server_field_name(CS_SERVER_VERSION));
  if (!ver) return 0;
  return ver->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? ver->via.u64 : 0;
}

static void version_problem(vctx *v, seg_map *m, uint64_t off, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

static void version_problem(vctx *v, seg_map *m, uint64_t off, const char *fmt,
                            ...) {
  char name[SEG_NAME_BYTES], msg[300];
  seg_name(name, sizeof name, m->no);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  v->res->problems++;
  finding_emit(v->fn, v->ctx, true, name, (int64_t)off, "%s", msg);
}

/* The version rule of the top of this file, for one decoded record. */
static void verify_version(vctx *v, seg_map *m, uint64_t off, const rec_view *r,
                           const rec_body *b) {
  if (b->type != REC_PUT && b->type != REC_DELETE) return;
  uint64_t id = b->contact.id, ver = b->contact.version;
  uint64_t *prev = u64map_get(&v->versions, id);
  if (b->type == REC_DELETE) {
    if (prev && ver && ver != *prev)
      version_problem(v, m, off,
                      "the delete of contact %020" PRIu64 " (seq %" PRIu64
                      ") says version %" PRIu64 ", its last put %" PRIu64,
                      id, r->seq, ver, *prev);
    return;
  }
  /* Most puts are creates or go up: the decoder's word is enough. */
  if (ver && (!prev || ver > *prev)) {
    if (u64map_put(&v->versions, id, ver) != 0) v->oom = -ENOMEM;
    return;
  }
  uint64_t written = put_version_written(v, r);
  bool ok = !prev || (written ? written > *prev : *prev == 1);
  if (!ok)
    version_problem(v, m, off,
                    "contact %020" PRIu64 " goes back: this put (seq %" PRIu64
                    ") has version %" PRIu64 "%s, its previous put %" PRIu64,
                    id, r->seq, written ? written : 1,
                    written ? "" : " (none written: format 1)", *prev);
  if (u64map_put(&v->versions, id, written ? written : 1) != 0)
    v->oom = -ENOMEM;
}

static int verify_rec(void *ctx, seg_map *m, uint64_t off, const rec_view *r) {
  vctx *v = ctx;
  v->res->records++;
  rec_body b;
  const char *why;
  if (rec_decode(r, &v->zone, &b, &why) != 0) {
    char name[SEG_NAME_BYTES];
    seg_name(name, sizeof name, m->no);
    v->res->problems++;
    finding_emit(v->fn, v->ctx, true, name, (int64_t)off,
                 "record seq %" PRIu64 " has a good checksum but %s", r->seq,
                 why);
    return 0;
  }
  verify_version(v, m, off, r, &b);
  return v->oom;
}

static int verify_bad(void *ctx, seg_map *m, const log_bad *bad) {
  vctx *v = ctx;
  char name[SEG_NAME_BYTES];
  seg_name(name, sizeof name, m->no);
  uint64_t off = bad->off, len = bad->len;
  const char *why = log_damage_text(bad->kind, false);
  if (bad->torn) {
    v->res->notes++;
    finding_emit(v->fn, v->ctx, false, name, (int64_t)off,
                 "torn tail of %" PRIu64 " bytes (%s); open cuts it", len, why);
  } else {
    v->res->problems++;
    finding_emit(v->fn, v->ctx, true, name, (int64_t)off,
                 "%s; %" PRIu64 " bytes damaged before the next valid record",
                 why, len);
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
      finding_emit(v->fn, v->ctx, false, e->d_name, -1,
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
    finding_emit(v->fn, v->ctx, true, snap->snapshot_name, -1,
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
/* The change feed the snapshot gives against the log's, both with the
 * window applied now (each drops changes only as writes come, so the two
 * may have dropped different old ones before). */
static void verify_feed(cs_store *snap, cs_store *full, vctx *v) {
  int64_t cutoff = store_now(full) - full->opts.changes_ms;
  feed_trim(&snap->feed, cutoff);
  feed_trim(&full->feed, cutoff);
  const char *sn = snap->snapshot_name;
  uint64_t differ = 0;
  for (uint32_t i = 0; i < full->feed.n; i++) {
    const feed_list *b = &full->feed.lists[i];
    const feed_list *a = NULL;
    for (uint32_t j = 0; j < snap->feed.n && !a; j++)
      if (snap->feed.lists[j].account == b->account) a = &snap->feed.lists[j];
    uint32_t na = a ? a->count - a->head : 0, nb = b->count - b->head;
    bool same = na == nb && (a ? a->floor : 0) == b->floor;
    for (uint32_t k = 0; same && k < nb; k++)
      same = !memcmp(&a->v[a->head + k], &b->v[b->head + k], sizeof(feed_ent));
    if (same) continue;
    v->res->problems++;
    if (differ++ < 20)
      finding_emit(v->fn, v->ctx, true, sn, -1,
                   "account %u's change feed differs: %u changes after %" PRIu64
                   " from the snapshot, %u after %" PRIu64 " from the log",
                   b->account, na, a ? a->floor : 0, nb, b->floor);
  }
  if (snap->feed.entries != full->feed.entries) {
    v->res->problems++;
    finding_emit(v->fn, v->ctx, true, sn, -1,
                 "the change feed holds %" PRIu64 " changes from the snapshot, "
                 "%" PRIu64 " from the log",
                 snap->feed.entries, full->feed.entries);
  }
}

static void verify_compare(cs_store *snap, cs_store *full, vctx *v,
                           uint32_t sample) {
  verify_feed(snap, full, v);
  const char *sn = snap->snapshot_name;
  const slot_table *a = &snap->slots, *b = &full->slots;
  if (a->count != b->count) {
    v->res->problems++;
    finding_emit(v->fn, v->ctx, true, sn, -1,
                 "holds %u index slots where the log gives %u", a->count,
                 b->count);
  }
  msgpack_zone za, zb;
  msgpack_zone_init(&za, REC_ZONE_CHUNK_BYTES);
  msgpack_zone_init(&zb, REC_ZONE_CHUNK_BYTES);
  uint32_t n = a->count < b->count ? a->count : b->count;
  uint64_t reported = 0;
  for (uint32_t i = 0; i < n; i++) {
    const cs_slot *x = &a->v[i], *y = &b->v[i];
    bool loc = slot_live(x) && slot_live(y) &&
               (x->seg != y->seg || x->off != y->off || x->len != y->len);
    if (x->id != y->id || x->acct_live != y->acct_live || loc) {
      v->res->problems++;
      if (reported++ < 20)
        finding_emit(
            v->fn, v->ctx, true, sn, -1,
            "index entry %u (contact %020" PRIu64 ", %s) says segment %u "
            "offset %u; the log has contact %020" PRIu64 " (%s) at "
            "segment %u offset %u",
            i, x->id, slot_live(x) ? "live" : "deleted", x->seg, x->off, y->id,
            slot_live(y) ? "live" : "deleted", y->seg, y->off);
    }
    if (!slot_live(x)) continue;
    /* Each live entry must point at a put of its own id. */
    rec_body ra, rb;
    cs_error e;
    if (store_read_slot(snap, i, &za, &ra, &e) != 0) {
      char name[SEG_NAME_BYTES];
      seg_name(name, sizeof name, x->seg);
      v->res->problems++;
      if (reported++ < 20)
        finding_emit(v->fn, v->ctx, true, name, x->off,
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
        finding_emit(v->fn, v->ctx, true, sn, -1,
                     "contact %020" PRIu64 " differs between snapshot and log",
                     x->id);
    }
  }
  if (reported > 20)
    finding_emit(v->fn, v->ctx, true, sn, -1,
                 "... %" PRIu64 " index problems in all", reported);
  if (snap->live_contacts != full->live_contacts ||
      snap->live_bytes != full->live_bytes ||
      snap->log_bytes != full->log_bytes ||
      pindex_next_id(snap) != pindex_next_id(full)) {
    v->res->problems++;
    finding_emit(v->fn, v->ctx, true, sn, -1,
                 "counts differ: %" PRIu64 " contacts, %" PRIu64
                 " live bytes, %" PRIu64 " log bytes, next id %" PRIu64
                 " from the snapshot; %" PRIu64 ", %" PRIu64 ", %" PRIu64
                 ", %" PRIu64 " from the log",
                 snap->live_contacts, snap->live_bytes, snap->log_bytes,
                 pindex_next_id(snap), full->live_contacts, full->live_bytes,
                 full->log_bytes, pindex_next_id(full));
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
  msgpack_zone_init(&v.zone, REC_ZONE_CHUNK_BYTES);
  int rc = bare_open(dir, NULL, &full, &floor, err);
  if (rc) {
    /* A damaged manifest is a finding, not a failure to look. */
    if (rc == CS_ECORRUPT || rc == CS_EFORMAT) {
      res->problems++;
      finding_emit(fn, ctx, true, MANIFEST_NAME, -1, "%s", err ? err->msg : "");
      rc = 0;
    }
    goto out;
  }
  res->segments = full->seg_count;
  verify_strays(full, &v);
  if (floor < CS_ID_MIN) {
    res->problems++;
    finding_emit(fn, ctx, true, MANIFEST_NAME, -1,
                 "its id floor %" PRIu64 " is not an id", floor);
  }

  /* 1. Every byte of every segment. */
  log_walker w = {&v, verify_rec, verify_bad, 0};
  for (uint32_t i = 0; i < full->seg_count && !v.oom; i++)
    log_walk(&w, &full->segs[i], 0, i + 1 == full->seg_count);
  u64map_free(&v.versions);
  if (v.oom) {
    rc = cs_err(err, v.oom, "out of memory for the versions of every id");
    goto out;
  }
  if (res->problems) goto out; /* a replay would stop at the same damage */

  /* 2. The whole log replayed, as open without a snapshot does. */
  cs_error rerr;
  replay rp = {.s = full,
               .mode = REPLAY_STRICT,
               .fn = fn,
               .ctx = ctx,
               .err = &rerr,
               .progress = o->progress,
               .progress_ctx = o->progress_ctx};
  if (replay_log(&rp, false) != 0) {
    res->problems++;
    finding_emit(fn, ctx, true, "", -1, "replaying the log fails: %s",
                 rerr.msg);
    goto out;
  }
  res->contacts = full->live_contacts;

  /* 3. The snapshot, loaded and caught up as open does, against it. */
  if (!full->snapshot_name) goto out;
  snap = bare_new(dir, NULL);
  if (!snap) {
    rc = cs_err(err, -ENOMEM, "out of memory");
    goto out;
  }
  snap->first_seg = full->first_seg;
  snap->last_seg = full->last_seg;
  snap->shard = full->shard;
  snap->snapshot_name = strdup(full->snapshot_name);
  rc = store_map_segments(snap, err);
  if (rc) goto out;
  /* snap_load installs slot arrays of its own. */
  free(snap->slots.v);
  memset(&snap->slots, 0, sizeof snap->slots);
  cs_error serr;
  if ((rc = snap_load(snap, snap->snapshot_name, &serr)) != 0) {
    /* An index in an older format is not damage: open rebuilds it. */
    bool old = rc == CS_EFORMAT;
    rc = 0;
    if (old)
      res->notes++;
    else
      res->problems++;
    finding_emit(fn, ctx, !old, snap->snapshot_name, -1, "%s%s", serr.msg,
                 old ? "; open rebuilds the indexes from the log" : "");
    goto out;
  }
  replay sp = {.s = snap, .mode = REPLAY_STRICT, .err = &rerr};
  if (replay_log(&sp, true) != 0) {
    res->problems++;
    finding_emit(
        fn, ctx, true, snap->snapshot_name, -1,
        "the log after the snapshot's position does not replay onto it: "
        "%s",
        rerr.msg);
    goto out;
  }
  verify_compare(snap, full, &v, o->sample_contacts ? o->sample_contacts : 100);
out:
  u64map_free(&v.versions);
  msgpack_zone_destroy(&v.zone);
  store_free(snap);
  store_free(full);
  return rc;
}
