/*
 * compact.c: compaction and salvage (admin.h's cs_admin_compact), the one
 * offline operation that writes.
 *
 * It keeps this order so that a crash at any step leaves the old store or
 * the new one whole (DESIGN promise 5):
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
 * old one's. Deleted contacts are not rewritten, except those still in
 * the trash window (their last put with the live ones, then their
 * deletes in the order they were made, so the trash lists as before);
 * purged contacts and those past the window leave no byte behind. The
 * meta record keeps every id from ever being given again. Idempotency
 * entries not expired are carried over as idem records at the end, and
 * the change feed's entries inside its window as changes records (each
 * account's, with its floor, in order); every copied put and delete is
 * marked REC_FLAG_COPY, so that it makes no change of its own.
 *
 * Relied on: the source is either a store opened as cs_open opens it (so
 * a damaged one is refused) or, under salvage, a bare store replayed with
 * damage skipped and reported (replay.c).
 */
#include "compact.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bare.h"
#include "dir.h"
#include "err.h"
#include "log.h"
#include "pindex.h"
#include "replay.h"
#include "snap.h"
#include "store_int.h"

/* Progress is reported every this many contacts (a mask, as replay's). */
#define COMPACT_PROGRESS_MASK 0x3fff

uint64_t compact_store_bytes(cs_store *s, uint32_t first, uint32_t last,
                             const char *snapshot) {
  uint64_t total = 0;
  char name[SEG_NAME_BYTES];
  for (uint32_t no = first; no <= last && no; no++) {
    seg_name(name, sizeof name, no);
    total += dir_file_bytes(s, name);
  }
  if (snapshot) total += dir_file_bytes(s, snapshot);
  return total + dir_file_bytes(s, MANIFEST_NAME);
}

/* The checked put of slot sl of src (live, or in the trash), or
 * CS_ECORRUPT. */
static int live_record(cs_store *src, const cs_slot *sl, rec_view *r,
                       cs_error *err) {
  seg_map *m = log_seg(src->segs, src->first_seg, src->seg_count, sl->seg);
  uint32_t off = sl->off;
  if (m && off < m->size && rec_check(m->map + off, m->size - off, r) == 0 &&
      r->type == REC_PUT)
    return 0;
  char name[SEG_NAME_BYTES];
  seg_name(name, sizeof name, sl->seg);
  return cs_err(err, CS_ECORRUPT,
                "%s/%s: the record of contact %" PRIu64 " at offset %u "
                "fails its checksum; run contactctl compact --salvage",
                src->dir, name, sl->id, off);
}

/* Whether dead slot sl of src is in the trash window: its record kept. */
static bool kept_in_trash(cs_store *src, const cs_slot *sl, int64_t now) {
  const trash_ent *t = trash_find(&src->trash, sl->id);
  return t && store_in_trash_window(src, t->deleted_ms, now);
}

/* The segment writer of compact_write: appends framed records to b,
 * writing b out as segment no when the next would pass seg_max. */
typedef struct seg_out {
  cs_store *dst;
  rec_buf b;
  uint32_t seg_max;
  uint32_t no;
  uint32_t *last_no;
  uint64_t seq;
} seg_out;

/* Room for a record of len bytes in the current segment. */
static int out_room(seg_out *w, uint32_t len, cs_error *err) {
  if (w->b.len + len <= w->seg_max || w->b.len <= SEG_HEADER_BYTES) return 0;
  int rc = log_seg_write(w->dst, w->no, &w->b, err);
  if (rc) return rc;
  *w->last_no = w->no++;
  log_seg_start(&w->b, w->no);
  return 0;
}

/* The deletes of the contacts kept in the trash, in their old order, and
 * the idempotency entries still kept. */
static int compact_write_tail(cs_store *src, seg_out *w, int64_t now,
                              cs_compact_result *res, cs_error *err) {
  rec_buf one = {0};
  int rc = 0;
  for (size_t i = 0; i < src->trash.count && !rc; i++) {
    const trash_ent *t = &src->trash.v[i];
    if (t->gone || !store_in_trash_window(src, t->deleted_ms, now)) continue;
    rec_del d = {t->id, t->account, t->deleted_ms, false, 0};
    one.len = 0;
    rc = rec_append_delete(&one, 0, &d, NULL);
    if (!rc) rc = out_room(w, (uint32_t)one.len, err);
    if (rc) break;
    memcpy(w->b.ptr + w->b.len, one.ptr, one.len);
    rec_frame_flags(w->b.ptr + w->b.len, REC_DELETE, w->seq++,
                    (uint32_t)(one.len - REC_HEADER_BYTES),
                    REC_FLAG_SYNCED | REC_FLAG_COPY);
    w->b.len += one.len;
    res->trashed++;
  }
  for (const idem_ent *e = src->idem.first; e && !rc; e = e->next) {
    if (e->state != IDEM_DONE || e->expires_ms <= now) continue;
    rec_idem ri;
    idem_to_rec(e, &ri);
    one.len = 0;
    rc = rec_append_idem(&one, 0, e->account, &ri);
    if (!rc) rc = out_room(w, (uint32_t)one.len, err);
    if (rc) break;
    if (rec_buf_reserve(&w->b, one.len)) {
      rc = -ENOMEM;
      break;
    }
    memcpy(w->b.ptr + w->b.len, one.ptr, one.len);
    rec_frame_flags(w->b.ptr + w->b.len, REC_IDEM, w->seq++,
                    (uint32_t)(one.len - REC_HEADER_BYTES), REC_FLAG_SYNCED);
    w->b.len += one.len;
    res->idem_keys++;
  }
  /* The change feed, each account's list in pieces that fit a record;
   * the window was applied to src when it opened (and once more here,
   * for a source opened before now). */
  feed_trim(&src->feed, now - src->opts.changes_ms);
  for (uint32_t i = 0; i < src->feed.n && !rc; i++) {
    const feed_list *l = &src->feed.lists[i];
    uint32_t at = l->head;
    do {
      uint32_t n = l->count - at;
      if (n > REC_CHANGES_MAX) n = REC_CHANGES_MAX;
      one.len = 0;
      rc = rec_append_changes(&one, 0, l->account, l->floor,
                              n ? (const void *)(l->v + at) : NULL, n);
      if (!rc) rc = out_room(w, (uint32_t)one.len, err);
      if (!rc && rec_buf_reserve(&w->b, one.len)) rc = -ENOMEM;
      if (rc) break;
      memcpy(w->b.ptr + w->b.len, one.ptr, one.len);
      rec_frame_flags(w->b.ptr + w->b.len, REC_CHANGES, w->seq++,
                      (uint32_t)(one.len - REC_HEADER_BYTES), REC_FLAG_SYNCED);
      w->b.len += one.len;
      res->changes += n;
      at += n;
    } while (at < l->count);
  }
  rec_buf_free(&one);
  if (rc && rc != CS_ECORRUPT && !(err && err->code))
    rc = cs_err(err, rc, "out of memory");
  return rc;
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
                         uint32_t *last_no, cs_compact_result *res,
                         cs_error *err) {
  seg_out w = {.dst = dst,
               .seg_max = seg_max,
               .no = first_no,
               .last_no = last_no,
               .seq = first_seq};
  int rc = 0;
  int64_t now = o->now_ms ? o->now_ms(o->now_ctx) : cs_now_ms();
  uint64_t done = 0, total = src->live_contacts;
  if (rec_buf_reserve(&w.b, (size_t)seg_max + CS_RECORD_BYTES_MAX))
    return cs_err(err, -ENOMEM, "out of memory");
  log_seg_start(&w.b, w.no);
  for (uint32_t i = 0; i < src->slots.count; i++) {
    const cs_slot *sl = &src->slots.v[i];
    if (!slot_live(sl) && !kept_in_trash(src, sl, now)) continue;
    rec_view r;
    rc = live_record(src, sl, &r, err);
    if (rc) goto out;
    uint32_t len = REC_HEADER_BYTES + r.len;
    rc = out_room(&w, len, err);
    if (rc) goto out;
    memcpy(w.b.ptr + w.b.len + REC_HEADER_BYTES, r.payload, r.len);
    rec_frame_flags(w.b.ptr + w.b.len, REC_PUT, w.seq++, r.len,
                    REC_FLAG_SYNCED | REC_FLAG_COPY);
    w.b.len += len;
    if (o->progress && (++done & COMPACT_PROGRESS_MASK) == 0)
      o->progress(o->progress_ctx, done, total);
  }
  rc = compact_write_tail(src, &w, now, res, err);
  if (rc) goto out;
  size_t meta_at = w.b.len;
  rc = rec_append_meta(&w.b, w.seq, next_id);
  if (rc) {
    rc = cs_err(err, rc, "out of memory");
    goto out;
  }
  rec_mark_synced(w.b.ptr + meta_at);
  rc = log_seg_write(dst, w.no, &w.b, err);
  if (rc) goto out;
  *last_no = w.no;
  rc = dst->io->fsync_dir(dst->io->ctx, dst->dir);
  if (rc)
    rc = cs_err(err, rc, "cannot sync directory %s: %s", dst->dir,
                cs_strerror(rc));
  if (o->progress) o->progress(o->progress_ctx, total, total);
out:
  rec_buf_free(&w.b);
  return rc;
}

/* What open noticed and repaired, passed on as notes. */
struct notice_to_finding {
  cs_finding_fn fn;
  void *ctx;
};

static void notice_note(void *ctx, const char *line) {
  struct notice_to_finding *nf = ctx;
  finding_emit(nf->fn, nf->ctx, false, "", -1, "%s", line);
}

/* The source of a compaction and what the new store continues from. */
typedef struct compact_src {
  cs_store *opened; /* by cs_open (not salvage): close with cs_close */
  cs_store *s;      /* the source, opened or bare */
  uint64_t next_id;
  uint64_t last_seq; /* the highest sequence number ever used */
  struct notice_to_finding nf;
} compact_src;

/* The store as open sees it, or as salvage can read it. */
static int compact_source(const char *dir, const cs_io *io, uint32_t seg_max,
                          const cs_compact_opts *o, cs_finding_fn fn, void *ctx,
                          compact_src *cs, cs_compact_result *res,
                          cs_error *err) {
  cs->nf = (struct notice_to_finding){fn, ctx};
  if (!o->salvage) {
    cs_options opts = {.io = io,
                       .trash_ms = o->trash_ms,
                       .changes_ms = o->changes_ms,
                       .now_ms = o->now_ms,
                       .now_ctx = o->now_ctx,
                       .no_snapshot_on_close = true,
                       .segment_bytes_max = seg_max,
                       .notice = notice_note,
                       .notice_ctx = &cs->nf};
    int rc = cs_open(dir, &opts, &cs->opened, err);
    if (rc) return rc;
    cs->s = cs->opened;
    cs->next_id = cs->s->next_id;
    cs->last_seq = cs->s->applied_seq;
    return 0;
  }
  uint64_t floor = 0;
  int rc = bare_open(dir, io, &cs->s, &floor, err);
  if (rc) return rc;
  cs_store *s = cs->s;
  if (o->trash_ms > 0) s->opts.trash_ms = o->trash_ms;
  if (o->changes_ms > 0) s->opts.changes_ms = o->changes_ms;
  s->opts.now_ms = o->now_ms;
  s->opts.now_ctx = o->now_ctx;
  replay rp = {
      .s = s, .mode = REPLAY_SALVAGE, .fn = fn, .ctx = ctx, .err = err};
  rc = replay_log(&rp, false);
  if (rc) return rc;
  res->skipped_ranges = rp.skipped_ranges;
  res->skipped_bytes = rp.skipped_bytes;
  cs->next_id = pindex_next_id(s);
  if (cs->next_id < floor) cs->next_id = floor;
  /* Damaged records may have carried higher numbers than any applied. */
  cs->last_seq = s->applied_seq;
  for (uint32_t i = 0; i < s->seg_count; i++)
    cs->last_seq = log_seq_max(&s->segs[i], cs->last_seq);
  return 0;
}

/* Step 2: the new segments read back and replayed as open will, and
 * checked whole. */
static int compact_readback(cs_store *src, cs_store *dst, uint64_t next_id,
                            cs_error *err) {
  cs_error rerr;
  replay rp = {.s = dst, .mode = REPLAY_STRICT, .err = &rerr};
  int rc = store_map_segments(dst, err);
  if (!rc && replay_log(&rp, false) != 0)
    rc = cs_err(err, CS_ECORRUPT, "the new segments do not read back: %s",
                rerr.msg);
  if (!rc && (dst->live_contacts != src->live_contacts ||
              pindex_next_id(dst) != next_id))
    rc = cs_err(err, CS_ECORRUPT,
                "the new segments hold %" PRIu64 " contacts (next id %" PRIu64
                ") where %" PRIu64 " (next id %" PRIu64 ") were written",
                dst->live_contacts, pindex_next_id(dst), src->live_contacts,
                next_id);
  return rc;
}

/* Step 4: the old segments go (snap_save removed the old snapshot). From
 * here a failure is reported but changes nothing: the switch is made. */
int compact_remove_old(cs_store *dst, uint32_t old_first, uint32_t old_last,
                       cs_error *err) {
  const cs_io *io = dst->io;
  int rc = 0;
  for (uint32_t no = old_first; no <= old_last; no++) {
    char name[SEG_NAME_BYTES], path[DIR_PATH_BYTES];
    seg_name(name, sizeof name, no);
    store_path(dst, path, sizeof path, name);
    int urc = io->unlink(io->ctx, path);
    if (urc && urc != -ENOENT && !rc)
      rc = cs_err(err, urc,
                  "compacted, but cannot remove %s (the next open "
                  "removes it): %s",
                  path, cs_strerror(urc));
  }
  int drc = io->fsync_dir(io->ctx, dst->dir);
  if (drc && !rc)
    rc = cs_err(err, drc, "compacted, but cannot sync directory %s: %s",
                dst->dir, cs_strerror(drc));
  return rc;
}

int compact_build(cs_store *src, cs_store *dst, uint32_t seg_max,
                  uint32_t first_no, uint64_t first_seq, uint64_t next_id,
                  const cs_compact_opts *o, cs_compact_result *res,
                  cs_error *err) {
  uint32_t last_no = 0;
  int rc = compact_write(src, dst, seg_max, first_no, first_seq, next_id, o,
                         &last_no, res, err);
  if (rc) {
    log_seg_remove(dst, first_no, last_no ? last_no + 1 : first_no);
    return rc;
  }
  dst->first_seg = first_no;
  dst->last_seg = last_no;
  rc = compact_readback(src, dst, next_id, err);
  if (rc) log_seg_remove(dst, first_no, last_no);
  return rc;
}

/* Steps 1 to 4 from src into dst (a bare store on the same directory). */
static int compact_steps(compact_src *cs, cs_store *dst, uint32_t seg_max,
                         const cs_compact_opts *o, cs_compact_result *res,
                         cs_error *err) {
  cs_store *src = cs->s;
  uint32_t old_first = src->first_seg, old_last = src->last_seg;
  uint32_t first_no = old_last + 1;
  int rc = compact_build(src, dst, seg_max, first_no, cs->last_seq + 1,
                         cs->next_id, o, res, err);
  if (rc) return rc;
  uint32_t last_no = dst->last_seg;
  if (src->snapshot_name) {
    dst->snapshot_name = strdup(src->snapshot_name);
    if (!dst->snapshot_name) rc = cs_err(err, -ENOMEM, "out of memory");
  }
  if (rc) {
    log_seg_remove(dst, first_no, last_no);
    return rc;
  }
  /* Step 3: the snapshot and the switch. From here on a failure leaves
   * the files alone: the manifest on disk decides, and open tidies up. */
  rc = snap_save(dst, err);
  if (rc) return rc;
  rc = compact_remove_old(dst, old_first, old_last, err);
  res->segments_after = last_no - first_no + 1;
  res->bytes_after =
      compact_store_bytes(dst, first_no, last_no, dst->snapshot_name);
  return rc;
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
  compact_src cs = {0};
  cs_store *dst = NULL;
  int rc = compact_source(dir, io, seg_max, o, fn, ctx, &cs, res, err);
  if (rc) goto out;
  cs_store *src = cs.s;
  res->segments_before = src->last_seg - src->first_seg + 1;
  res->bytes_before = compact_store_bytes(src, src->first_seg, src->last_seg,
                                          src->snapshot_name);
  res->contacts = src->live_contacts;
  res->next_id = cs.next_id;
  dst = bare_new(dir, io);
  if (!dst) {
    rc = cs_err(err, -ENOMEM, "out of memory");
    goto out;
  }
  dst->shard = src->shard;
  rc = compact_steps(&cs, dst, seg_max, o, res, err);
out:
  store_free(dst);
  if (cs.opened) {
    cs_error cerr;
    cs_close(cs.opened, &cerr);
  } else {
    store_free(cs.s);
  }
  return rc;
}
