/*
 * record.h: log records and segment files, byte by byte (private to the
 * engine; the admin tool reads it too, for dump --raw, verify and salvage).
 *
 * A segment file ("%08u.seg") starts with a 32-byte header:
 *
 *   offset size  field
 *   0      8     magic "CTSEG\0\0\1"
 *   8      4     format version, little endian (REC_FORMAT_OLDEST ..
 *                REC_FORMAT_VERSION)
 *   12     4     segment number, little endian (equals the file's number)
 *   16     8     reserved, zero
 *   24     8     XXH3-64 of bytes 0..23, little endian
 *
 * followed by records, back to back, never spanning two segments:
 *
 *   offset size  field
 *   0      4     payload length in bytes, little endian (<= REC_PAYLOAD_MAX)
 *   4      1     type: 1 put, 2 delete, 3 meta, 4 idem (format 2),
 *                5 changes (format 3)
 *   5      1     flags (format 2; zero in format 1): REC_FLAG_SYNCED,
 *                REC_FLAG_COPY (format 3)
 *   6      2     zero
 *   8      8     sequence number, little endian, strictly increasing
 *                through the store (gaps allowed after compaction)
 *   16     8     checksum, little endian: XXH3-64 of the payload seeded
 *                with the XXH3-64 of bytes 0..15
 *   24     len   payload: one msgpack map
 *
 * Payloads (format 3; a segment's header says its format, and a store may
 * hold segments of every format from REC_FORMAT_OLDEST):
 *   put     {"id": u64, "account": u32, "created_at": i64 ms,
 *            "updated_at": i64 ms, "version": u64 >= 1, <field name>: str
 *            ..., "idem": idem?, "cf": u8?}  (present fields only; "cf",
 *            format 3, on an edit: the fields whose value it changed, bit
 *            1 << cs_field); a put of an
 *            existing id replaces the contact whole; a put of a contact in
 *            the trash restores it. Format 1 has no "version": read as 1.
 *   delete  {"id": u64, "account": u32, "deleted_at": i64 ms,
 *            "purge": bool, "idem": idem?, "version": u64?}  ("version",
 *            format 3: the contact's version when deleted) the contact goes
 *            to the trash
 *            at deleted_at, or (purge) is gone for good, also from the
 *            trash. Format 1 has neither key: such a delete is a purge.
 *   meta    {"next_id": u64}  (written by compaction so that ids are never
 *            reused even when the highest contact was deleted)
 *   idem    {"account": u32, "idem": idem}  an idempotency entry of its
 *            own: a batch's answer, after the batch's records; compaction
 *            carries kept entries over in these
 *   changes {"account": u32, "floor": u64, "changes": bin}  (format 3,
 *            written by compaction alone) the change feed's kept entries
 *            of one account, carried over: floor is the position after
 *            which none of its changes was dropped, changes holds
 *            feed_ent entries (feed.h, 32 bytes each, little endian) in
 *            increasing seq order, each seq below this record's
 * where idem, the idempotency entry a write leaves, is
 *           {"key": str (1..CS_IDEM_KEY_MAX_BYTES), "fp": bin (32 bytes,
 *            SHA-256 of the request), "status": u16, "type": u8
 *            (cs_answer_type), "body": bin (the answer,
 *            <= CS_IDEM_ANSWER_MAX_BYTES), "expires": i64 ms}
 *
 * The change feed (feed.h) is made of the puts and deletes as they are
 * applied, except those with REC_FLAG_COPY: the copies compaction writes
 * of records that were changes once, whose entries it carries over in
 * changes records instead. A put is a create, an edit or a restore as the
 * contact was absent, live or in the trash before it; a delete with purge
 * is a purge, else a delete. Records of formats 1 and 2 carry neither "cf"
 * nor the delete's "version": their edits count every field the contact
 * has as changed, and their deletes version 0.
 *
 * REC_FLAG_SYNCED on a record says that every byte of its segment before
 * it was durable when it was written: the commit thread sets it on the
 * first record of a batch written after a sync (or right after the
 * segment's header), compaction on every record it writes (its files are
 * synced before they are used). It is what lets open tell damage from a
 * power cut's hole (log.c): unsynced pages may reach the disk in any order,
 * so a cut can leave a hole in the last batch with whole records after
 * it, none of them ever acknowledged; a flipped bit before a synced mark
 * is damage.
 *
 * Invariants: a record is written whole at the end of the active segment;
 * a sealed segment never changes; a segment's records end exactly at its
 * file size, except for a torn tail on the last segment after a crash.
 */
#ifndef CS_RECORD_H
#define CS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cs.h"

#define SEG_MAGIC "CTSEG\0\0\1"
#define SEG_MAGIC_BYTES (sizeof SEG_MAGIC - 1)
#define SEG_HEADER_BYTES 32
#define REC_HEADER_BYTES 24
#define REC_FORMAT_VERSION 3 /* what new segments are written in */
#define REC_FORMAT_OLDEST 1  /* the oldest format still read */
#define REC_PAYLOAD_MAX (CS_RECORD_BYTES_MAX - REC_HEADER_BYTES)
/* The chunk size of a msgpack zone that decodes records: a typical
 * record's objects fit in one chunk, and msgpack grows it for larger. */
#define REC_ZONE_CHUNK_BYTES 4096

enum rec_type {
  REC_PUT = 1,
  REC_DELETE = 2,
  REC_META = 3,
  REC_IDEM = 4,
  REC_CHANGES = 5,
};

#define REC_FLAG_SYNCED 1u
#define REC_FLAG_COPY 2u /* compaction's copy: not a change of the feed */

typedef struct rec_view {
  uint8_t type;
  uint8_t flags;
  uint32_t len; /* payload bytes */
  uint64_t seq;
  uint64_t checksum;
  const uint8_t *payload;
} rec_view;

/* Results of rec_check besides 0. */
enum {
  REC_TRUNCATED = 1, /* fewer bytes than the header or the payload need */
  REC_BAD = 2,       /* header fields impossible, or checksum mismatch */
};

/* Fills the 32-byte header of segment seg_no. */
void seg_header_make(uint8_t out[SEG_HEADER_BYTES], uint32_t seg_no);
/* 0 when the header is valid for seg_no, else CS_ECORRUPT / CS_EFORMAT. */
int seg_header_check(const uint8_t *p, size_t avail, uint32_t seg_no);

/* Writes a record header for payload (already at dst + REC_HEADER_BYTES),
 * with flags (REC_FLAG_*); rec_frame has none. */
void rec_frame_flags(uint8_t *dst, uint8_t type, uint64_t seq, uint32_t len,
                     uint8_t flags);
static inline void rec_frame(uint8_t *dst, uint8_t type, uint64_t seq,
                             uint32_t len) {
  rec_frame_flags(dst, type, seq, len, 0);
}
/* Sets REC_FLAG_SYNCED on the framed record at rec (its checksum made
 * again). */
void rec_mark_synced(uint8_t *rec);
/* Checks the record at p with avail bytes readable: 0 (and *out filled),
 * REC_TRUNCATED or REC_BAD. Sizes are checked before the checksum. */
int rec_check(const uint8_t *p, size_t avail, rec_view *out);

/* A growable byte buffer for encoding. */
typedef struct rec_buf {
  uint8_t *ptr;
  size_t len;
  size_t cap;
} rec_buf;
int rec_buf_reserve(rec_buf *b, size_t more);
void rec_buf_free(rec_buf *b);
/* A msgpack_packer write callback appending to the rec_buf in data. */
int rec_buf_write(void *data, const char *buf, size_t len);

/* An idempotency entry as a record carries it (strings and fp point into
 * the payload when decoded). */
typedef struct rec_idem {
  bool present;
  cs_str key;
  const uint8_t *fp; /* CS_IDEM_FP_BYTES */
  uint16_t status;
  uint8_t type; /* cs_answer_type */
  cs_str body;
  int64_t expires_ms;
} rec_idem;

/* A delete as a record says it. */
typedef struct rec_del {
  uint64_t id;
  uint32_t account;
  int64_t deleted_ms;
  bool purge;
  uint64_t version; /* the contact's when deleted; 0: not said */
} rec_del;

/* An edit's changed fields as rec_append_put writes them: REC_CF_SAID |
 * the field bits; 0 writes no "cf" (a create, a restore, a copy). */
#define REC_CF_SAID 0x100u

/* Appends a framed put/delete/meta/idem record to b; idem may be NULL (or
 * not present). 0, -ENOMEM, or CS_EINVAL when it would pass
 * REC_PAYLOAD_MAX. */
int rec_append_put(rec_buf *b, uint64_t seq, const cs_contact *c,
                   const rec_idem *idem, uint32_t cf);
int rec_append_delete(rec_buf *b, uint64_t seq, const rec_del *d,
                      const rec_idem *idem);
int rec_append_meta(rec_buf *b, uint64_t seq, uint64_t next_id);
int rec_append_idem(rec_buf *b, uint64_t seq, uint32_t account,
                    const rec_idem *idem);
/* Sets the id of the framed put at rec (written by rec_append_put, whose
 * first value is the id: 0xcf and 8 bytes big-endian, the one width
 * msgpack gives a number at or above CS_ID_MIN > 2^63), so that a load can
 * encode a contact before it knows its id. The checksum is left stale:
 * frame the record again (rec_frame_flags) before it is written. */
void rec_put_set_id(uint8_t *rec, uint64_t id);

/* A changes record of n entries (feed.h's feed_ent). */
int rec_append_changes(rec_buf *b, uint64_t seq, uint32_t account,
                       uint64_t floor, const void *ents, size_t n);
/* The most feed entries one changes record holds. */
#define REC_CHANGES_MAX ((REC_PAYLOAD_MAX - 64) / 32)

/* A decoded payload. For puts the contact's strings point into the payload
 * bytes (zero copy). */
typedef struct rec_body {
  uint8_t type;
  cs_contact contact;     /* put: all; delete and idem: id (delete), account;
                             delete: deleted_ms */
  uint64_t next_id;       /* meta */
  bool purge;             /* delete: gone for good (every format-1 delete) */
  uint32_t cf;            /* put: REC_CF_SAID | changed fields, or 0 */
  uint64_t floor;         /* changes */
  const uint8_t *changes; /* changes: the entries (unaligned) */
  uint32_t change_count;
  rec_idem idem; /* put, delete, idem: the entry, when present */
} rec_body;

/*
 * Does p hold exactly one msgpack object whose every length and container
 * count fits in the bytes there are? msgpack_unpack allocates a container's
 * entries from its count before reading them, so a count read from disk is
 * checked here first: each entry takes at least one byte, so a count larger
 * than the bytes left is impossible. Walks the headers once, no recursion.
 */
bool rec_msgpack_fits(const uint8_t *p, size_t n);

/* Decodes a checked record's payload. zone is scratch space the caller
 * owns (msgpack_zone_init'd); it is cleared here. 0 or CS_ECORRUPT with a
 * reason in why. */
int rec_decode(const rec_view *r, msgpack_zone *zone, rec_body *out,
               const char **why);

#endif
