/*
 * test_record.c: record framing and payload decoding.
 *
 * Goal: promise 10's disk half. A record is checked (sizes, then checksum)
 * before any decoder sees it, and a payload whose msgpack lengths or counts
 * cannot fit its bytes is refused before msgpack allocates for them.
 * Method: frame payloads by hand, valid and hostile, and decode them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "record.h"

static void test_record_put_round_trips(void **state) {
  rec_buf b = {0};
  cs_contact c;
  memset(&c, 0, sizeof c);
  c.id = CS_ID_MIN + 7;
  c.account = 3;
  c.created_ms = 1700000000000;
  c.updated_ms = 1700000000001;
  c.field[CS_FIRST_NAME] = (cs_str){"Ann", 3};
  c.field[CS_EMAIL] = (cs_str){"a@b.co", 6};
  assert_int_equal(rec_append_put(&b, 42, &c, NULL, 0), 0);
  rec_view r;
  assert_int_equal(rec_check(b.ptr, b.len, &r), 0);
  assert_int_equal(r.seq, 42);
  msgpack_zone z;
  msgpack_zone_init(&z, 1024);
  rec_body body;
  const char *why;
  assert_int_equal(rec_decode(&r, &z, &body, &why), 0);
  assert_int_equal(body.contact.id, c.id);
  assert_int_equal(body.contact.account, 3);
  assert_int_equal(body.contact.field[CS_EMAIL].len, 6);
  /* Every truncation is "truncated", never a decode. */
  for (size_t n = 0; n < b.len; n++)
    assert_int_equal(rec_check(b.ptr, n, &r), REC_TRUNCATED);
  /* Every flipped bit is caught by the checksum or the header checks. */
  for (size_t i = 0; i < b.len; i++) {
    b.ptr[i] ^= 0x04;
    assert_int_not_equal(rec_check(b.ptr, b.len, &r), 0);
    b.ptr[i] ^= 0x04;
  }
  msgpack_zone_destroy(&z);
  rec_buf_free(&b);
}

/* Frames payload as a put record with a valid checksum. */
static size_t frame(uint8_t *out, const uint8_t *payload, uint32_t len) {
  memcpy(out + REC_HEADER_BYTES, payload, len);
  rec_frame(out, REC_PUT, 1, len);
  return REC_HEADER_BYTES + len;
}

static void
test_record_impossible_counts_are_refused_before_decoding(void **state) {
  /* A map claiming 2^31 entries in a 20-byte payload: msgpack would ask
   * for 2^31 * 32 bytes before reading any. */
  uint8_t payload[20] = {0xdf, 0x80, 0x00, 0x00, 0x00, 0xa2, 'i', 'd'};
  uint8_t buf[64];
  size_t n = frame(buf, payload, sizeof payload);
  rec_view r;
  assert_int_equal(rec_check(buf, n, &r), 0);
  msgpack_zone z;
  msgpack_zone_init(&z, 1024);
  rec_body body;
  const char *why = NULL;
  assert_int_equal(rec_decode(&r, &z, &body, &why), CS_ECORRUPT);
  assert_non_null(strstr(why, "fits"));
  msgpack_zone_destroy(&z);

  const uint8_t ok[] = {0x82, 0xa1, 'a',  0x01, 0xa1, 'b',
                        0x92, 0xc0, 0xcd, 0x01, 0x02};
  assert_true(rec_msgpack_fits(ok, sizeof ok));
  assert_false(rec_msgpack_fits(ok, sizeof ok - 1)); /* cut short */
  uint8_t extra[sizeof ok + 1];
  memcpy(extra, ok, sizeof ok);
  extra[sizeof ok] = 0xc0;
  assert_false(rec_msgpack_fits(extra, sizeof extra)); /* two objects */
  const uint8_t big_str[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
  assert_false(rec_msgpack_fits(big_str, sizeof big_str));
  const uint8_t big_array[] = {0xdd, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02};
  assert_false(rec_msgpack_fits(big_array, sizeof big_array));
  const uint8_t never[] = {0xc1};
  assert_false(rec_msgpack_fits(never, 1));
  const uint8_t ext[] = {0xc7, 0x02, 0x05, 'a', 'b'};
  assert_true(rec_msgpack_fits(ext, sizeof ext));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_record_put_round_trips),
      cmocka_unit_test(
          test_record_impossible_counts_are_refused_before_decoding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
