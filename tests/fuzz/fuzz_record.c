/*
 * fuzz_record.c: one log record through rec_check and rec_decode
 * (engine/record.h).
 *
 * Goal: no bytes on disk crash the record reader, and whatever it accepts
 * survives a round trip through the writer unchanged.
 * Method: the input is checked as it is (random bytes almost never pass the
 * checksum, so this exercises the size and header checks), then again with
 * its header re-framed by rec_frame (length and checksum made right), so
 * that the msgpack decoder sees arbitrary payloads. Checked: rec_check only
 * accepts a record whose payload lies inside the input; rec_decode returns 0
 * or CS_ECORRUPT with a reason; a decoded put, delete or meta re-encoded by
 * rec_append_* checks and decodes to the same contact (every field, byte for
 * byte), delete or next_id.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "record.h"

static bool str_eq(cs_str a, cs_str b) {
  if (!a.ptr || !b.ptr) return !a.ptr && !b.ptr;
  return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static void round_trip(const rec_view *v, const rec_body *b) {
  rec_buf buf = {0};
  int rc;
  switch (b->type) {
  case REC_PUT:
    rc = rec_append_put(&buf, v->seq, &b->contact, &b->idem, b->cf);
    break;
  case REC_DELETE: {
    rec_del d = {b->contact.id, b->contact.account, b->contact.deleted_ms,
                 b->purge, b->contact.version};
    rc = rec_append_delete(&buf, v->seq, &d, &b->idem);
    break;
  }
  case REC_IDEM:
    rc = rec_append_idem(&buf, v->seq, b->contact.account, &b->idem);
    break;
  case REC_CHANGES:
    rc = rec_append_changes(&buf, v->seq, b->contact.account, b->floor,
                            b->changes, b->change_count);
    break;
  default:
    rc = rec_append_meta(&buf, v->seq, b->next_id);
    break;
  }
  FZ_CHECK(rc == 0, "re-encoding failed: %d", rc);
  rec_view v2;
  FZ_CHECK(rec_check(buf.ptr, buf.len, &v2) == 0,
           "re-encoded record fails its check");
  FZ_CHECK(v2.type == v->type && v2.seq == v->seq &&
               v2.len + REC_HEADER_BYTES == buf.len,
           "re-encoded header differs");
  msgpack_zone zone;
  msgpack_zone_init(&zone, 4096);
  rec_body b2;
  const char *why = NULL;
  rc = rec_decode(&v2, &zone, &b2, &why);
  FZ_CHECK(rc == 0, "re-encoded record does not decode: %s", why);
  const cs_contact *a = &b->contact, *c = &b2.contact;
  FZ_CHECK(b->idem.present == b2.idem.present, "idem entry lost or made up");
  if (b->idem.present)
    FZ_CHECK(str_eq(b->idem.key, b2.idem.key) &&
                 str_eq(b->idem.body, b2.idem.body) &&
                 memcmp(b->idem.fp, b2.idem.fp, CS_IDEM_FP_BYTES) == 0 &&
                 b->idem.status == b2.idem.status &&
                 b->idem.type == b2.idem.type &&
                 b->idem.expires_ms == b2.idem.expires_ms,
             "idem round trip differs");
  switch (b->type) {
  case REC_PUT:
    FZ_CHECK(a->id == c->id && a->account == c->account &&
                 a->created_ms == c->created_ms &&
                 a->updated_ms == c->updated_ms && a->version == c->version &&
                 b->cf == b2.cf,
             "put round trip: header fields differ");
    for (int f = 0; f < CS_FIELD_COUNT; f++)
      FZ_CHECK(str_eq(a->field[f], c->field[f]), "put round trip: %s differs",
               cs_field_name(f));
    break;
  case REC_DELETE:
    FZ_CHECK(a->id == c->id && a->account == c->account &&
                 a->deleted_ms == c->deleted_ms && b->purge == b2.purge &&
                 a->version == c->version,
             "delete round trip");
    break;
  case REC_CHANGES:
    FZ_CHECK(a->account == c->account && b->floor == b2.floor &&
                 b->change_count == b2.change_count &&
                 (!b->change_count ||
                  memcmp(b->changes, b2.changes, b->change_count * 32) == 0),
             "changes round trip");
    break;
  case REC_IDEM:
    FZ_CHECK(a->account == c->account, "idem round trip");
    break;
  default:
    FZ_CHECK(b->next_id == b2.next_id, "meta round trip");
    break;
  }
  msgpack_zone_destroy(&zone);
  rec_buf_free(&buf);
}

static void check_one(const uint8_t *p, size_t size) {
  rec_view v;
  int rc = rec_check(p, size, &v);
  FZ_CHECK(rc == 0 || rc == REC_TRUNCATED || rc == REC_BAD, "rec_check %d", rc);
  if (rc) return;
  FZ_CHECK(v.payload == p + REC_HEADER_BYTES &&
               (size_t)v.len <= size - REC_HEADER_BYTES &&
               v.len <= REC_PAYLOAD_MAX,
           "accepted payload outside the input");
  msgpack_zone zone;
  msgpack_zone_init(&zone, 4096);
  rec_body b;
  const char *why = NULL;
  rc = rec_decode(&v, &zone, &b, &why);
  FZ_CHECK(rc == 0 || (rc == CS_ECORRUPT && why && why[0]), "rec_decode %d",
           rc);
  if (rc == 0) {
    FZ_CHECK(b.type == v.type, "decoded type differs");
    if (b.type != REC_META)
      FZ_CHECK(b.contact.id >= CS_ID_MIN, "id below the floor");
    for (int f = 0; b.type == REC_PUT && f < CS_FIELD_COUNT; f++) {
      const cs_str *s = &b.contact.field[f];
      FZ_CHECK(!s->ptr || s->len == 0 ||
                   (s->ptr >= (const char *)v.payload &&
                    s->ptr + s->len <= (const char *)v.payload + v.len),
               "a field points outside the payload");
    }
    round_trip(&v, &b);
  }
  msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > CS_RECORD_BYTES_MAX + 64) return 0;
  uint8_t *p = malloc(size ? size : 1);
  memcpy(p, data, size);
  check_one(p, size);
  if (size >= REC_HEADER_BYTES) {
    uint32_t len = (uint32_t)(size - REC_HEADER_BYTES);
    if (len > REC_PAYLOAD_MAX) len = REC_PAYLOAD_MAX;
    uint64_t seq = 0;
    for (int i = 7; i >= 0; i--)
      seq = (seq << 8) | p[8 + i];
    uint8_t type = p[4] >= REC_PUT && p[4] <= REC_META
                       ? p[4]
                       : (uint8_t)(REC_PUT + p[4] % 3);
    rec_frame(p, type, seq, len);
    rec_view v;
    FZ_CHECK(rec_check(p, size, &v) == 0, "a framed record fails its check");
    check_one(p, REC_HEADER_BYTES + len);
  }
  free(p);
  return 0;
}
