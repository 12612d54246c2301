/*
 * dir.h: the data directory: its file names, the lock, the manifest, and
 * the one atomic file replace (private to the engine).
 *
 *   LOCK         flock()ed by the opener; holds its pid
 *   MANIFEST     which segments make up the store, the current snapshot and
 *                an id floor (layout at the top of dir.c)
 *   %08u.seg     log segments (format in record.h, code in log.c)
 *   snap-*.snap  index snapshots (format and code in snap.c)
 *   keys         API keys (keys.c)
 *   *.side       the server's own state (cs_side_write, changes.c)
 *   *.tmp        a replace under way; removed by the next open
 */
#ifndef CS_DIR_H
#define CS_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs.h"
#include "record.h"

#define MANIFEST_NAME "MANIFEST"
#define LOCK_NAME "LOCK"
#define SNAP_NAME_PREFIX "snap-"
#define TMP_SUFFIX ".tmp"
#define KEYS_NAME "keys"    /* the key file (keys.c) */
#define SIDE_SUFFIX ".side" /* the server's side files (changes.c) */

/* Room for a path in the data directory: PATH_MAX on Linux. A longer
 * directory name is cut and then fails to open, never overflows. */
#define DIR_PATH_BYTES 4096
/* Room for a segment's file name, "%08u.seg" of any u32, and its NUL. */
#define SEG_NAME_BYTES 32

/* Path of a file in the store's directory into buf. */
void store_path(const cs_store *s, char *buf, size_t len, const char *name);
/* File name of segment seg_no into buf. */
void seg_name(char *buf, size_t len, uint32_t seg_no);

/* Takes the directory's flock and writes our pid into LOCK; sets
 * s->lock_fd (closing it unlocks). CS_ELOCKED naming the holder's pid when
 * another process has it. */
int dir_lock(cs_store *s, cs_error *err);

/* Reads the manifest: fills s->first_seg, s->last_seg, s->snapshot_name
 * (malloc'd, or left NULL) and *id_floor. CS_ECORRUPT / CS_EFORMAT with a
 * message naming the file when it is damaged. */
int manifest_read(cs_store *s, uint64_t *id_floor, cs_error *err);

/* The manifest's bytes for these fields into b (its old contents
 * dropped): what manifest_write writes, and what a backup hands out. 0 or
 * -ENOMEM. */
int manifest_encode(rec_buf *b, uint32_t first_seg, uint32_t last_seg,
                    const char *snapshot, uint64_t next_id, uint32_t shard);

/* Rewrites the manifest atomically from s->first_seg, s->last_seg,
 * s->snapshot_name and next_id. Caller holds mmu or is alone with s. */
int manifest_write(cs_store *s, uint64_t next_id, cs_error *err);

/* The one atomic replace: writes buf to dir/name through io as a
 * temporary (name.tmp), fsyncs it, renames it over name, fsyncs dir. On
 * failure before the rename the temporary is removed and name is as it
 * was; after it, name is new but maybe not yet durable. */
int dir_replace(const cs_io *io, const char *dir, const char *name,
                const void *buf, size_t len, cs_error *err);

/* Reads a whole file (at most max bytes, else -EFBIG) into a malloc'd
 * buffer (*out, to free; *len its bytes). 0 or -errno. */
int store_read_file(const char *path, uint8_t **out, size_t *len, uint64_t max);

/* Is name (a file in the store's directory) left over from an interrupted
 * write: a temporary, a segment outside the manifest's range, a snapshot
 * the manifest does not name? Caller holds mmu or is alone with s. */
bool store_file_is_stray(const cs_store *s, const char *name);

/* Removes the strays (with a notice each). Caller is alone with s. */
void dir_remove_strays(cs_store *s);

/* Size in bytes of dir/name, 0 when it cannot be read. */
uint64_t dir_file_bytes(const cs_store *s, const char *name);

#endif
