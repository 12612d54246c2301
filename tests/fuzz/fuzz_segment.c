/*
 * fuzz_segment.c: a segment file opened as part of a store.
 *
 * Goal: no segment file, however damaged or hostile, crashes cs_open; it
 * either opens or returns an error naming what is wrong (promises 3, 4, 10),
 * and recovery is stable: a store that opened once (cutting a torn tail,
 * perhaps) opens again to exactly the same contents.
 * Method: a fresh data directory with a valid manifest naming segment 1 (or
 * 1 and 2) gets the input as 00000001.seg. The first input byte holds flags:
 *   bit 0  re-frame every record (length walk from byte 32, checksums made
 *          right by rec_frame), so the msgpack decoder and the replay logic
 *          see hostile payloads instead of stopping at a checksum;
 *   bit 1  put a valid segment header in front of the rest (else the rest
 *          is the whole file, header included);
 *   bit 2  add an empty segment 2 after it, so damage in segment 1 is no
 *          longer a torn tail and must be reported, not cut.
 * When open succeeds, every contact is read back by id and through a search
 * on its email, the store is closed and opened again, and both views must
 * be equal.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "record.h"
#include "test_util.h"

static void reframe(uint8_t *p, size_t size) {
  size_t off = SEG_HEADER_BYTES;
  while (off + REC_HEADER_BYTES <= size) {
    uint32_t len = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 |
                   (uint32_t)p[off + 2] << 16 | (uint32_t)p[off + 3] << 24;
    if (len > REC_PAYLOAD_MAX || len > size - off - REC_HEADER_BYTES) break;
    uint8_t type = p[off + 4];
    if (type < REC_PUT || type > REC_META) type = (uint8_t)(REC_PUT + type % 3);
    uint64_t seq = 0;
    for (int i = 7; i >= 0; i--)
      seq = (seq << 8) | p[off + 8 + i];
    rec_frame(p + off, type, seq, len);
    off += REC_HEADER_BYTES + len;
  }
}

typedef struct ids {
  uint64_t *id;
  uint32_t *account;
  size_t count, cap;
} ids;

static int collect(void *ctx, const cs_contact *c) {
  ids *v = ctx;
  if (v->count == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 64;
    v->id = realloc(v->id, v->cap * sizeof *v->id);
    v->account = realloc(v->account, v->cap * sizeof *v->account);
  }
  v->id[v->count] = c->id;
  v->account[v->count++] = c->account;
  return 0;
}

/* Reads every contact back by id and by email search; returns the dump. */
static char *look(cs_store *s) {
  ids v = {0};
  cs_error err;
  int rc = cs_iterate(s, CS_ALL_ACCOUNTS, collect, &v, &err);
  FZ_CHECK(rc == 0, "iterating an opened store failed: %s", err.msg);
  for (size_t i = 0; i < v.count; i++) {
    cs_contact c;
    rc = cs_get(s, v.account[i], v.id[i], &c, &err);
    FZ_CHECK(rc == 0, "iterated contact %llu cannot be read: %s",
             (unsigned long long)v.id[i], err.msg);
    FZ_CHECK(c.id == v.id[i], "read the wrong contact");
    if (c.field[CS_EMAIL].len && c.field[CS_EMAIL].len <= 254) {
      cs_query q = {.account = v.account[i],
                    .field = CS_EMAIL,
                    .match = CS_MATCH_EXACT,
                    .term = c.field[CS_EMAIL].ptr,
                    .term_len = c.field[CS_EMAIL].len,
                    .limit = 10};
      cs_page pg = {0};
      rc = cs_search(s, &q, &pg, &err);
      FZ_CHECK(rc == 0 || rc == CS_ECORRUPT, "search failed: %s", err.msg);
      if (rc == 0) cs_page_free(&pg);
    }
  }
  free(v.id);
  free(v.account);
  return tu_dump(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4u << 20) return 0;
  uint8_t flags = data[0];
  size_t len = size - 1 + ((flags & 2) ? SEG_HEADER_BYTES : 0);
  uint8_t *seg = malloc(len ? len : 1);
  if (flags & 2) {
    seg_header_make(seg, 1);
    memcpy(seg + SEG_HEADER_BYTES, data + 1, size - 1);
  } else {
    memcpy(seg, data + 1, size - 1);
  }
  if (flags & 1) reframe(seg, len);

  char *dir = fz_tmpdir();
  uint32_t last = (flags & 4) ? 2 : 1;
  fz_manifest(dir, 1, last, NULL);
  fz_write(dir, "00000001.seg", seg, len);
  if (last == 2) {
    uint8_t h[SEG_HEADER_BYTES];
    seg_header_make(h, 2);
    fz_write(dir, "00000002.seg", h, sizeof h);
  }
  cs_options o = fz_options();
  cs_store *s = NULL;
  cs_error err = {0};
  int rc = cs_open(dir, &o, &s, &err);
  if (rc) {
    FZ_CHECK(s == NULL, "failed open left a store");
    FZ_CHECK(err.msg[0], "open failed (%d) without a message", rc);
  } else {
    char *first = look(s);
    FZ_CHECK(cs_close(s, &err) == 0, "close failed: %s", err.msg);
    rc = cs_open(dir, &o, &s, &err);
    FZ_CHECK(rc == 0, "opened once, not twice: %s", err.msg);
    char *second = look(s);
    FZ_CHECK(strcmp(first, second) == 0, "reopening changed the store");
    cs_close(s, &err);
    free(first);
    free(second);
  }
  fz_rmrf(dir);
  free(dir);
  free(seg);
  return 0;
}
