/*
 * replay.c: the log replayed into the primary index, the one loop behind
 * open (from the snapshot's position or from the start), verify, compact's
 * read-back and salvage. The walker (log.c) tells a torn tail from damage;
 * the mode says what each costs.
 *
 * Invariants kept:
 *   - records are applied in log order with strictly increasing sequence
 *     numbers (the walker refuses any other), so what is rebuilt is a
 *     gap-free prefix of the commits (DESIGN promise 1);
 *   - a torn tail is cut only at open and only on the last segment
 *     (promise 3); any other damage stops open with the file and offset,
 *     and salvage alone skips it, reporting each range (promise 4);
 *   - a snapshot's store and a full replay meet at the same state: both
 *     go through store_apply (promise 6).
 * In bulk mode (a full replay, a load's) the index's calls go through
 * index threads (ix_queue.c) in the same order, so store_apply's other
 * work overlaps them; their errors come back at the next call or at the
 * end of the walk.
 * Relied on: the caller is alone with the store (open, or a bare store).
 */
#include "replay.h"

#include <errno.h>
#include <inttypes.h>

#include "dir.h"
#include "err.h"
#include "log.h"
#include "pindex.h"
#include "store_int.h"

/* Progress is reported every this many records (a power of two, minus
 * one, as a mask): often enough for a person, rarely enough to cost
 * nothing. */
#define REPLAY_PROGRESS_MASK 0xffff

/* What replay_rec returns to end the walk at rp->seq_end (not an error). */
#define REPLAY_STOP 1

/* A record that does not decode, or that store_apply refuses: skipped
 * under salvage, an error otherwise. */
static int replay_refused(replay *rp, seg_map *m, uint64_t off,
                          const rec_view *r, const char *what,
                          const char *why) {
  char name[SEG_NAME_BYTES];
  seg_name(name, sizeof name, m->no);
  rp->skipped_ranges++;
  rp->skipped_bytes += REC_HEADER_BYTES + r->len;
  finding_emit(rp->fn, rp->ctx, true, name, (int64_t)off,
               "skipped a record %s%s", what, why);
  return 0;
}

static int replay_rec(void *ctx, seg_map *m, uint64_t off, const rec_view *r) {
  replay *rp = ctx;
  cs_store *s = rp->s;
  rec_body b;
  const char *why;
  if (rp->seq_end && r->seq >= rp->seq_end) return REPLAY_STOP;
  rp->records++;
  if (rp->progress) {
    rp->progress_done += REC_HEADER_BYTES + r->len;
    if ((rp->records & REPLAY_PROGRESS_MASK) == 0)
      rp->progress(rp->progress_ctx, rp->progress_done, rp->progress_total);
  }
  if (rec_decode(r, &s->czone, &b, &why) != 0) {
    if (rp->mode == REPLAY_SALVAGE) {
      char text[256];
      snprintf(text, sizeof text, " (%s)", why);
      return replay_refused(rp, m, off, r, "that does not decode", text);
    }
    char name[SEG_NAME_BYTES]; /* formatted for an error only: an open's
                                * replay passes here for every record */
    seg_name(name, sizeof name, m->no);
    if (rp->mode == REPLAY_OPEN)
      return cs_err(rp->err, CS_ECORRUPT,
                    "%s/%s: record at offset %" PRIu64
                    ": %s; run contactctl verify, or contactctl compact "
                    "--salvage",
                    s->dir, name, off, why);
    return cs_err(rp->err, CS_ECORRUPT,
                  "%s/%s: record at offset %" PRIu64 ": %s", s->dir, name, off,
                  why);
  }
  if (b.idem.present &&
      idem_load(&s->idem, b.contact.account, &b.idem, r->seq, store_now(s)))
    return cs_err(rp->err, -ENOMEM, "out of memory loading idempotency keys");
  if (rp->mode == REPLAY_OPEN)
    return store_apply(s, m->no, (uint32_t)off, r, &b, rp->err);
  cs_error aerr;
  int rc = store_apply(s, m->no, (uint32_t)off, r, &b, &aerr);
  if (rc == CS_ECORRUPT && rp->mode == REPLAY_SALVAGE) {
    char text[sizeof aerr.msg + 2];
    snprintf(text, sizeof text, ": %s", aerr.msg);
    return replay_refused(rp, m, off, r, "that contradicts the log", text);
  }
  if (rc) {
    char name[SEG_NAME_BYTES];
    seg_name(name, sizeof name, m->no);
    return cs_err(rp->err, rc, "%s/%s: record at offset %" PRIu64 ": %s",
                  s->dir, name, off, aerr.msg);
  }
  return 0;
}

/* open: damage stops it, a torn tail is cut so appends start clean. */
static int replay_bad_open(replay *rp, seg_map *m, const log_bad *bad) {
  cs_store *s = rp->s;
  char name[SEG_NAME_BYTES], path[DIR_PATH_BYTES];
  seg_name(name, sizeof name, m->no);
  store_path(s, path, sizeof path, name);
  if (bad->kind == LOG_BAD_HEADER)
    return cs_err(rp->err, bad->hdr_rc,
                  "%s: bad segment header; run contactctl verify", path);
  const char *why = log_damage_text(bad->kind, true);
  if (!bad->torn)
    return cs_err(rp->err, CS_ECORRUPT,
                  "%s: damaged record at offset %llu (%s) with data after "
                  "it; run contactctl verify, or contactctl compact "
                  "--salvage",
                  path, (unsigned long long)bad->off, why);
  int rc = log_cut(s, m, bad->off, rp->err);
  if (rc) return rc;
  store_notice(s, "%s: cut a torn tail of %llu bytes at offset %llu (%s)", path,
               (unsigned long long)bad->len, (unsigned long long)bad->off, why);
  return 0;
}

static int replay_bad(void *ctx, seg_map *m, const log_bad *bad) {
  replay *rp = ctx;
  if (rp->mode == REPLAY_OPEN) return replay_bad_open(rp, m, bad);
  char name[SEG_NAME_BYTES];
  seg_name(name, sizeof name, m->no);
  const char *why = log_damage_text(bad->kind, false);
  if (bad->torn) {
    /* Where the log ends after a crash; open cuts it the same way. */
    finding_emit(rp->fn, rp->ctx, false, name, (int64_t)bad->off,
                 "torn tail of %" PRIu64 " bytes (%s); open cuts it", bad->len,
                 why);
    return 0;
  }
  rp->problems++;
  if (rp->mode != REPLAY_SALVAGE)
    return cs_err(rp->err, CS_ECORRUPT,
                  "%s/%s: damaged record at offset %" PRIu64 " (%s) with data "
                  "after it; run contactctl verify, or contactctl compact "
                  "--salvage",
                  rp->s->dir, name, bad->off, why);
  rp->skipped_ranges++;
  rp->skipped_bytes += bad->len;
  finding_emit(rp->fn, rp->ctx, true, name, (int64_t)bad->off,
               "skipped %" PRIu64 " damaged bytes (%s)", bad->len, why);
  return 0;
}

int replay_log(replay *rp, bool from_snapshot) {
  cs_store *s = rp->s;
  log_walker w = {rp, replay_rec, replay_bad, s->applied_seq};
  for (uint32_t i = 0; i < s->seg_count; i++)
    rp->progress_total += s->segs[i].size;
  if (!from_snapshot) ix_bulk_begin(s->ix);
  /* In bulk mode the index's calls run on threads of their own (a live
   * index's, few after a snapshot, stay here). */
  int rc = 0;
  if (!s->opts.no_indexes && s->ix && ix_in_bulk(s->ix) &&
      (rc = ixq_start(s->ix, &s->ixq)))
    return cs_err(rp->err, rc, "cannot start the index threads: %s",
                  cs_strerror(rc));
  for (uint32_t i = 0; i < s->seg_count && !rc; i++) {
    seg_map *m = &s->segs[i];
    uint64_t from = 0;
    if (from_snapshot) {
      if (m->no < s->applied_seg) continue;
      if (m->no == s->applied_seg) from = s->applied_off;
    }
    rc = log_walk(&w, m, from, i + 1 == s->seg_count);
  }
  if (rc == REPLAY_STOP) rc = 0;
  int qrc = ixq_finish(s->ixq);
  s->ixq = NULL;
  if (qrc && !rc)
    rc = cs_err(rp->err, qrc, "index update failed: %s", cs_strerror(qrc));
  if (!rc && !from_snapshot) {
    rc = ix_bulk_end(s->ix);
    if (rc)
      rc = cs_err(rp->err, rc, "cannot build the indexes: %s", cs_strerror(rc));
    else
      slots_fit(&s->slots); /* grown by doubling in bulk mode */
  }
  if (rp->progress)
    rp->progress(rp->progress_ctx, rp->progress_total, rp->progress_total);
  return rc;
}
