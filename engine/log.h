/*
 * log.h: the log's segments and the one walker over them (private to the
 * engine). The byte layout of a segment and of a record is in record.h.
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs.h"
#include "record.h"

typedef struct seg_map {
  uint32_t no;    /* segment number */
  uint8_t *map;   /* PROT_READ mapping of the file */
  size_t map_len; /* bytes mapped (may exceed the file) */
  uint64_t size;  /* bytes of valid data: header and whole records */
} seg_map;

/* The mapping of segment seg_no, or NULL when the store has none. Caller
 * holds ilock (or is alone with s). On every read: inline. */
static inline seg_map *log_seg(seg_map *segs, uint32_t first_seg,
                               uint32_t seg_count, uint32_t seg_no) {
  if (seg_no < first_seg || seg_no - first_seg >= seg_count) return NULL;
  return &segs[seg_no - first_seg];
}

/* The path of segment no of s (into DIR_PATH_BYTES at path): "%08u.seg"
 * in its directory, with ".tmp"
 * after it while s->seg_tmp (the segments an online compaction writes
 * beside the live ones: strays to open until they are renamed). */
void log_seg_path(const cs_store *s, uint32_t no, char *path);

/* Maps segment no read-only, with room for it to grow to map_len and one
 * more whole record. A missing file is CS_ECORRUPT (the manifest names
 * it). */
int log_map_file(cs_store *s, uint32_t no, uint64_t map_len, seg_map *out,
                 cs_error *err);

/* Maps segments first_seg..last_seg (read-only, with room for the active
 * one to grow). A missing file is CS_ECORRUPT. Caller is alone with s. */
int store_map_segments(cs_store *s, cs_error *err);

/* Unmaps every segment and frees the array. */
void log_unmap_all(cs_store *s);

/* Creates segment no with its header, synced, with the directory synced;
 * *fd_out stays open for appending. */
int log_seg_create(cs_store *s, uint32_t no, int *fd_out, cs_error *err);

/* Writes one whole new segment file (header and records in b), synced;
 * the caller syncs the directory once after the last. */
int log_seg_write(cs_store *s, uint32_t no, const rec_buf *b, cs_error *err);

/* Starts b as segment no: its header alone. b has room for it. */
void log_seg_start(rec_buf *b, uint32_t no);

/* Removes segments first..last (errors ignored: open removes strays). */
void log_seg_remove(cs_store *s, uint32_t first, uint32_t last);

/* Cuts segment m at off (a torn tail): truncates the file through the
 * seam, syncs it, sets m->size. */
int log_cut(cs_store *s, seg_map *m, uint64_t off, cs_error *err);

/* ---------------------------------------------------------- the walker */

/* Why the bytes at a damaged range are not a record. */
typedef enum log_damage {
  LOG_BAD_HEADER,    /* the segment header (off 0) */
  LOG_TRUNCATED,     /* fewer bytes than the record needs */
  LOG_BAD_CHECKSUM,  /* impossible header fields or a checksum mismatch */
  LOG_SEQ_BACKWARDS, /* valid, but its sequence number is not above */
} log_damage;

/*
 * Walks segment m from off: on_rec for each valid record, on_bad for each
 * damaged range. After damage the walk goes on at the next offset holding
 * a valid record with a sequence number above *last_seq (a record header
 * can be found by chance inside a payload only with a matching 64-bit
 * checksum). Damage with nothing valid after it on the last segment is a
 * torn tail: where the log ends after a crash (DESIGN promise 3); any
 * other damage is corruption (promise 4). This is the only place that
 * tells the two apart. Either callback returning non-zero stops the walk
 * (returned). A bad segment header is damage at offset 0 (hdr_rc says how:
 * CS_ECORRUPT or CS_EFORMAT), after which records may still be intact.
 */
typedef struct log_bad {
  uint64_t off;
  uint64_t len; /* bytes of damage, up to the next valid record */
  bool torn;
  log_damage kind;
  int hdr_rc; /* LOG_BAD_HEADER: seg_header_check's code */
} log_bad;

typedef struct log_walker {
  void *ctx;
  int (*on_rec)(void *ctx, seg_map *m, uint64_t off, const rec_view *r);
  int (*on_bad)(void *ctx, seg_map *m, const log_bad *bad);
  uint64_t last_seq; /* in: the sequence to pass; out: the last valid one */
} log_walker;

int log_walk(log_walker *w, seg_map *m, uint64_t off, bool last);

/* Words for a kind of damage. open's messages have always used the short
 * ones (short true), the offline tools' the long ones. */
const char *log_damage_text(log_damage kind, bool short_words);

/* The highest sequence number of any checksum-valid record in m, damaged
 * ranges included, or seq when none is higher (for salvage: numbers after
 * it are never reused). */
uint64_t log_seq_max(const seg_map *m, uint64_t seq);

#endif
