/*
 * replay.h: the log replayed into the primary index and the inverted
 * indexes (private to the engine): at open, and by the offline operations.
 */
#ifndef CS_REPLAY_H
#define CS_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "admin.h"
#include "cs.h"

typedef enum replay_mode {
  /* open: damage is an error; a torn tail is cut (through the seam) and
   * reported as a notice. */
  REPLAY_OPEN,
  /* verify and compact's read-back: damage is an error; a torn tail is a
   * note to fn, left as it is. */
  REPLAY_STRICT,
  /* salvage: damage and records that do not decode or contradict the log
   * are skipped, each reported to fn as a problem. */
  REPLAY_SALVAGE,
} replay_mode;

typedef struct replay {
  cs_store *s;
  replay_mode mode;
  cs_finding_fn fn; /* may be NULL */
  void *ctx;
  cs_error *err;
  cs_progress_fn progress; /* may be NULL */
  void *progress_ctx;
  /* Not 0: the walk ends before the first record numbered this or above
   * (an online compaction's source: the log as of one commit). */
  uint64_t seq_end;
  /* out */
  uint64_t problems;
  uint64_t skipped_ranges;
  uint64_t skipped_bytes;
  uint64_t records;
  /* progress, in bytes of the log */
  uint64_t progress_total;
  uint64_t progress_done;
} replay;

/* Replays the mapped log of rp->s into its slots and indexes, from the
 * position s already covers (a loaded snapshot's, from_snapshot) or from
 * the start (then building the indexes in bulk). Caller is alone with s.
 * 0, or the first error (in rp->err). */
int replay_log(replay *rp, bool from_snapshot);

#endif
