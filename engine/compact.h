/*
 * compact.h: the pieces of compaction (compact.c) that online compaction
 * (online.c) shares (private to the engine).
 */
#ifndef CS_COMPACT_H
#define CS_COMPACT_H

#include <stdint.h>

#include "admin.h"
#include "cs.h"

/* Bytes of a store's files: segments first..last, snapshot and manifest. */
uint64_t compact_store_bytes(cs_store *s, uint32_t first, uint32_t last,
                             const char *snapshot);

/*
 * Steps 1 and 2 of compaction: the live and trashed contacts of src, its
 * idempotency entries and change feed (as of o's clock and src's windows),
 * and a meta record holding next_id, written into segments first_no.. of
 * dst (sequence numbers from first_seq, each file synced, then the
 * directory), then mapped and replayed into dst and checked whole:
 * dst->first_seg..last_seg name them, dst's slots and indexes are theirs.
 * On failure the new files are removed.
 */
int compact_build(cs_store *src, cs_store *dst, uint32_t seg_max,
                  uint32_t first_no, uint64_t first_seq, uint64_t next_id,
                  const cs_compact_opts *o, cs_compact_result *res,
                  cs_error *err);

/* Step 4: removes segments old_first..old_last of dst's directory and
 * syncs it. A failure is reported (the next open removes what is left). */
int compact_remove_old(cs_store *dst, uint32_t old_first, uint32_t old_last,
                       cs_error *err);

#endif
