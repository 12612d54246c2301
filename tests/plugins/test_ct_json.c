/*
 * test_ct_json.c: the codec's JSON writer (ct_json.c) against yajl_gen, the
 * writer every answer used before: for every byte, for random strings and
 * for random contacts, pages and export lines, the text must be the same
 * byte for byte (the end-to-end tests compare bodies). The reference here
 * writes with yajl_gen as the codec did, member by member.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_gen.h>

#include "ct_codec.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static yajl_gen ref_new(void) {
  yajl_gen g = yajl_gen_alloc(NULL);
  assert_non_null(g);
  yajl_gen_config(g, yajl_gen_validate_utf8, 0);
  return g;
}

static void ref_str(yajl_gen g, const char *s, size_t n) {
  assert_int_equal(yajl_gen_string(g, (const unsigned char *)s, n),
                   yajl_gen_status_ok);
}

static void ref_time(yajl_gen g, const char *key, int64_t ms) {
  char when[32];
  ref_str(g, key, strlen(key));
  cs_time_format(ms, when);
  ref_str(g, when, strlen(when));
}

static void ref_contact_keys(yajl_gen g, const cs_contact *c, uint32_t m) {
  char digits[CS_ID_DIGITS + 1], num[32];
  ref_str(g, "id", 2);
  cs_id_format(c->id, digits);
  ref_str(g, digits, CS_ID_DIGITS);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr || !(m & (1u << f))) continue;
    ref_str(g, cs_field_name(f), strlen(cs_field_name(f)));
    ref_str(g, c->field[f].ptr, c->field[f].len);
  }
  if (m & (1u << (CS_FIELD_COUNT + CS_SERVER_CREATED_AT)))
    ref_time(g, "created_at", c->created_ms);
  if (m & (1u << (CS_FIELD_COUNT + CS_SERVER_UPDATED_AT)))
    ref_time(g, "updated_at", c->updated_ms);
  if (m & (1u << (CS_FIELD_COUNT + CS_SERVER_VERSION))) {
    ref_str(g, "version", 7);
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)c->version);
    yajl_gen_number(g, num, (size_t)n);
  }
  if (c->deleted_ms) ref_time(g, "deleted_at", c->deleted_ms);
}

static void ref_contact(yajl_gen g, const cs_contact *c, uint32_t m) {
  yajl_gen_map_open(g);
  ref_contact_keys(g, c, m);
  yajl_gen_map_close(g);
}

static void assert_same(yajl_gen g, const ct_json *j) {
  const unsigned char *buf;
  size_t len;
  assert_int_equal(yajl_gen_get_buf(g, &buf, &len), yajl_gen_status_ok);
  assert_false(j->failed);
  if (len != j->len || memcmp(buf, j->p, len) != 0) {
    print_message("yajl:    %.*s\nct_json: %.*s\n", (int)len, buf, (int)j->len,
                  j->p);
    fail();
  }
}

/* Random bytes, any of the 256, biased to the ones that need escapes. */
static size_t random_text(char *out, size_t max) {
  size_t n = next_rand() % max;
  for (size_t i = 0; i < n; i++) {
    uint64_t r = next_rand();
    out[i] = r % 4 == 0 ? (char)(r >> 8 & 0x3f) : (char)(r >> 8);
  }
  return n;
}

static void test_every_byte(void **state) {
  (void)state;
  for (int b = 0; b < 256; b++) {
    char s[3] = {'a', (char)b, 'z'};
    yajl_gen g = ref_new();
    ref_str(g, s, 3);
    ct_json j;
    ct_json_init(&j, NULL, 0);
    ct_json_str(&j, s, 3);
    assert_same(g, &j);
    ct_json_free(&j);
    yajl_gen_free(g);
  }
}

static void test_random_strings(void **state) {
  (void)state;
  char text[512];
  char small[8]; /* a caller's buffer too small: the writer moves to the heap */
  for (int round = 0; round < 5000; round++) {
    size_t n = random_text(text, sizeof text);
    yajl_gen g = ref_new();
    ref_str(g, text, n);
    ct_json j;
    ct_json_init(&j, small, sizeof small);
    ct_json_str(&j, text, n);
    assert_same(g, &j);
    ct_json_free(&j);
    yajl_gen_free(g);
  }
}

static void test_numbers(void **state) {
  (void)state;
  static const uint64_t values[] = {
      0, 1, 9, 10, 99, 100, 12345678901234ull, INT64_MAX};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    yajl_gen g = ref_new();
    yajl_gen_integer(g, (long long)values[i]);
    ct_json j;
    ct_json_init(&j, NULL, 0);
    ct_json_u64(&j, values[i]);
    assert_same(g, &j);
    ct_json_free(&j);
    yajl_gen_free(g);
  }
}

static char field_text[64][CS_FIELD_COUNT][512];

static cs_contact random_contact(int slot) {
  cs_contact c;
  memset(&c, 0, sizeof c);
  /* Any u64 now and then: cs_id_format pads with zeros. */
  c.id = next_rand() % 3 == 0   ? next_rand() % 100000
         : next_rand() % 2 == 0 ? next_rand()
                                : CS_ID_MIN + next_rand() % 1000000000000ull;
  c.created_ms = (int64_t)(next_rand() % 4102444800000ull);
  c.updated_ms = c.created_ms + (int64_t)(next_rand() % 1000000);
  c.version = 1 + next_rand() % 100000;
  c.deleted_ms = next_rand() % 3 == 0 ? c.updated_ms + 5 : 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (next_rand() % 4 == 0) continue; /* absent */
    size_t n = random_text(field_text[slot][f], sizeof field_text[slot][f]);
    c.field[f] = (cs_str){field_text[slot][f], n};
  }
  return c;
}

static uint32_t random_members(void) {
  return next_rand() % 2
             ? CT_MEMBERS_ALL
             : ((uint32_t)next_rand() & CT_MEMBERS_ALL) | CT_MEMBER_ID;
}

static void test_contacts(void **state) {
  (void)state;
  for (int round = 0; round < 2000; round++) {
    cs_contact c = random_contact(0);
    uint32_t m = random_members();
    yajl_gen g = ref_new();
    ref_contact(g, &c, m);
    char stack[CT_JSON_STACK_BYTES];
    ct_json j;
    ct_json_init(&j, stack, sizeof stack);
    ct_json_contact(&j, &c, m);
    assert_same(g, &j);
    ct_json_free(&j);
    yajl_gen_free(g);

    /* The yajl entry points take the writer's text as one value. */
    g = ref_new();
    yajl_gen ours = ref_new();
    yajl_gen_array_open(g);
    yajl_gen_array_open(ours);
    ref_contact(g, &c, m);
    ct_gen_contact_members(ours, &c, m);
    ref_contact(g, &c, CT_MEMBERS_ALL);
    ct_gen_contact(ours, &c);
    yajl_gen_array_close(g);
    yajl_gen_array_close(ours);
    const unsigned char *a, *b;
    size_t alen, blen;
    yajl_gen_get_buf(g, &a, &alen);
    yajl_gen_get_buf(ours, &b, &blen);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    yajl_gen_free(g);
    yajl_gen_free(ours);
  }
}

static void test_pages(void **state) {
  (void)state;
  cs_contact contacts[64];
  for (int round = 0; round < 200; round++) {
    cs_page page = {.total = next_rand() % 100000,
                    .count = (uint32_t)(next_rand() % 64),
                    .contacts = contacts};
    for (uint32_t i = 0; i < page.count; i++)
      contacts[i] = random_contact((int)i);
    uint32_t m = random_members();
    const char *cursor = round % 2 ? "AbC/def+12_-" : NULL;
    yajl_gen g = ref_new();
    yajl_gen_map_open(g);
    ref_str(g, "contacts", 8);
    yajl_gen_array_open(g);
    for (uint32_t i = 0; i < page.count; i++)
      ref_contact(g, &contacts[i], m);
    yajl_gen_array_close(g);
    ref_str(g, "count", 5);
    yajl_gen_integer(g, page.count);
    ref_str(g, "total", 5);
    yajl_gen_integer(g, (long long)page.total);
    ref_str(g, "next_cursor", 11);
    if (cursor)
      ref_str(g, cursor, strlen(cursor));
    else
      yajl_gen_null(g);
    yajl_gen_map_close(g);
    char small[64];
    ct_json j;
    ct_json_init(&j, small, sizeof small);
    ct_json_page(&j, &page, m, cursor);
    ct_json_raw(&j, "}", 1);
    assert_same(g, &j);
    ct_json_free(&j);
    yajl_gen_free(g);
  }
}

static void test_export_lines(void **state) {
  (void)state;
  for (int round = 0; round < 500; round++) {
    cs_contact c = random_contact(0);
    const char *account = round % 2 ? "acme" : "a\"b\\c";
    yajl_gen g = ref_new(), ours = ref_new();
    yajl_gen_map_open(g);
    ref_str(g, "account", 7);
    ref_str(g, account, strlen(account));
    ref_contact_keys(g, &c, CT_MEMBERS_ALL);
    yajl_gen_map_close(g);
    ct_gen_export_line(ours, account, &c);
    const unsigned char *a, *b;
    size_t alen, blen;
    yajl_gen_get_buf(g, &a, &alen);
    yajl_gen_get_buf(ours, &b, &blen);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    yajl_gen_free(g);
    yajl_gen_free(ours);
  }
}

static void test_etags(void **state) {
  (void)state;
  static const uint64_t values[] = {0, 1, 9, 10, 4711, UINT64_MAX};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    char want[CT_ETAG_BYTES], got[CT_ETAG_BYTES];
    snprintf(want, sizeof want, "\"%llu\"", (unsigned long long)values[i]);
    ct_etag_format(values[i], got);
    assert_string_equal(got, want);
  }
}

/* A reset keeps the buffer and starts the text over. */
static void test_reset(void **state) {
  (void)state;
  ct_json j;
  ct_json_init(&j, NULL, 0);
  for (int i = 0; i < 10000; i++)
    ct_json_raw(&j, "0123456789", 10);
  assert_int_equal(j.len, 100000);
  assert_true(j.owned);
  char *p = j.p;
  ct_json_reset(&j);
  assert_int_equal(j.len, 0);
  ct_json_str(&j, "x", 1);
  assert_ptr_equal(j.p, p);
  assert_int_equal(j.len, 3);
  assert_memory_equal(j.p, "\"x\"", 3);
  ct_json_free(&j);
  assert_null(j.p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_byte), cmocka_unit_test(test_random_strings),
      cmocka_unit_test(test_numbers),    cmocka_unit_test(test_contacts),
      cmocka_unit_test(test_pages),      cmocka_unit_test(test_export_lines),
      cmocka_unit_test(test_reset),      cmocka_unit_test(test_etags),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
