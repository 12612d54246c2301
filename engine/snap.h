/*
 * snap.h: snapshots of the indexes (private to the engine; format at the
 * top of snap.c).
 */
#ifndef CS_SNAP_H
#define CS_SNAP_H

#include "cs.h"

#define SNAP_MAGIC "CTSNAPS1"
#define SNAP_MAGIC_BYTES (sizeof SNAP_MAGIC - 1)
/* Snapshot header: magic 8, version 4, zero 4, length 8, XXH3 8. */
#define SNAP_HEADER_BYTES 32
#define SNAP_FORMAT_VERSION 3 /* written */
/* The first format with the change feed: older ones are recognised and
 * not used (CS_EFORMAT: the store rebuilds from its log once). */
#define SNAP_FORMAT_FEED 3

/* Writes a snapshot of s at its applied position (atomically), then the
 * manifest naming it (the switch), then removes the old one. Caller holds
 * ilock for reading, not mmu. A position already saved is not written
 * again. On failure the manifest still names the old snapshot. */
int snap_save(cs_store *s, cs_error *err);

/* Loads snapshot name into s (at open, alone, with segments mapped and the
 * slot table empty). 0, or CS_ECORRUPT, CS_EFORMAT (a sound snapshot whose
 * index is in an older format) or -errno, after which the caller empties s
 * (pindex_reset) and rebuilds from the log. */
int snap_load(cs_store *s, const char *name, cs_error *err);

#endif
