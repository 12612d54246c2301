/*
 * bare.h: bare stores, what the offline operations of admin.h work on
 * (private to the engine).
 *
 * A bare store is a cs_store with no commit thread and no overlay, whose
 * segments are mapped and whose slots and indexes are filled by the
 * engine's own replay (replay.c) and snap_load, so that what the offline
 * operations rebuild is built exactly as open builds it. It can be
 * searched and iterated with the public read calls, and saved with
 * snap_save. Free it with store_free.
 */
#ifndef CS_BARE_H
#define CS_BARE_H

#include <stdint.h>

#include "cs.h"

/* A store to fill by hand: nothing opened yet (store_new). NULL when out
 * of memory. io NULL: cs_io_posix(). */
cs_store *bare_new(const char *dir, const cs_io *io);

/* A bare store locked on dir with its manifest read (*id_floor its floor)
 * and segments mapped; nothing replayed yet. */
int bare_open(const char *dir, const cs_io *io, cs_store **out,
              uint64_t *id_floor, cs_error *err);

#endif
