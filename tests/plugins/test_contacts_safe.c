/*
 * test_contacts_safe.c: the contacts plugin's safe writes (API.md "Safe
 * writes" and "Trash"): versions and entity tags, If-Match and
 * If-None-Match, idempotency keys, upsert, the trash, restore and purge.
 *
 * Goal: every header the routes read is parsed as ct_safe.c says (at and
 * past CS_IF_MATCH_MAX and CS_IDEM_KEY_MAX_BYTES), the fingerprint's
 * framing is the documented one, the codec writes version, deleted_at and
 * the error's etag, every refusal the plugin makes before the store is
 * answered with its status, code and field, and through the store every
 * success and error of the contract is answered as written.
 * Method: the header readers and the codec are called directly; routes
 * through the plugin's table with fake_host.c over a real store.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "ct.h"
#include "fake_host.h"

extern const cd_plugin contactd_plugin;

typedef struct cd_response res_t;

static int setup(void **state) {
  fh_fixture *fx = calloc(1, sizeof *fx);
  fh_open(fx, &contactd_plugin, NULL);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fh_fixture *fx = *state;
  fh_close(fx);
  free(fx);
  return 0;
}

static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *s = NULL;
  assert_true(vasprintf(&s, f, ap) >= 0);
  va_end(ap);
  return s;
}

static const char *id_path(uint64_t id, const char *tail, char buf[96]) {
  char digits[CS_ID_DIGITS + 1];
  cs_id_format(id, digits);
  snprintf(buf, 96, "/contacts/%s%s", digits, tail ? tail : "");
  return buf;
}

static void expect_error_h(fh_fixture *fx, const char *method, const char *path,
                           const char *query, const char *body,
                           const char *const *headers, int status,
                           const char *code, const char *field) {
  res_t *r = fh_call_h(fx, method, path, query, body, headers);
  fh_assert_error(r, status, code, field);
  fh_free(r);
}

static long long int_at(yajl_val obj, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(obj, path, yajl_t_number);
  assert_non_null(v);
  return YAJL_GET_INTEGER(v);
}

static const char *str_at(yajl_val obj, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
  return v ? YAJL_GET_STRING(v) : NULL;
}

static yajl_val array_at(res_t *r, const char *key, size_t i) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(fh_json(r), path, yajl_t_array);
  assert_non_null(v);
  assert_true(i < YAJL_GET_ARRAY(v)->len);
  return YAJL_GET_ARRAY(v)->values[i];
}

/* ------------------------------------------------- headers, no store */

static int cond(const char *v, bool weak_ok, cs_cond *c, ct_err *e) {
  memset(c, 0, sizeof *c);
  memset(e, 0, sizeof *e);
  return ct_cond_parse("if-match", v, strlen(v), weak_ok, c, e);
}

static void test_safe_if_match_reads_tags_and_star(void **state) {
  (void)state;
  cs_cond c;
  ct_err e;
  assert_int_equal(cond("\"7\"", false, &c, &e), 0);
  assert_false(c.any);
  assert_int_equal(c.count, 1);
  assert_true(c.versions[0] == 7);
  assert_int_equal(
      cond(" \"1\" ,\t\"22\",,\"18446744073709551615\" ", false, &c, &e), 0);
  assert_int_equal(c.count, 3);
  assert_true(c.versions[1] == 22);
  assert_true(c.versions[2] == UINT64_MAX);
  assert_int_equal(cond("*", false, &c, &e), 0);
  assert_true(c.any);
  assert_int_equal(c.count, 0);
  assert_true(ct_cond_names(&c, 5));
  /* Well formed, but no version of ours: version 0, which none has. */
  assert_int_equal(
      cond("\"abc\", \"07\", \"\", \"18446744073709551616\"", false, &c, &e),
      0);
  assert_int_equal(c.count, 4);
  for (int i = 0; i < 4; i++)
    assert_true(c.versions[i] == 0);
  assert_false(ct_cond_names(&c, 7));
  /* CS_IF_MATCH_MAX tags, and one more. */
  char *list = strdup("\"1\"");
  for (int i = 2; i <= CS_IF_MATCH_MAX; i++) {
    char *n = fmt("%s, \"%d\"", list, i);
    free(list);
    list = n;
  }
  assert_int_equal(cond(list, false, &c, &e), 0);
  assert_int_equal(c.count, CS_IF_MATCH_MAX);
  assert_true(ct_cond_names(&c, CS_IF_MATCH_MAX));
  char *over = fmt("%s, \"99\"", list);
  assert_int_equal(cond(over, false, &c, &e), -1);
  assert_int_equal(e.status, 400);
  assert_string_equal(e.code, "invalid_field");
  assert_string_equal(e.field, "if-match");
  free(over);
  free(list);
}

static void test_safe_if_match_malformed_is_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",          "  ",       ",",        "7",       "\"7",     "\"7\" \"8\"",
      "\"7\";",    "*, \"7\"", "\"7\", *", "W/\"7\"", "w/\"7\"", "\"a b\"",
      "\"a\x01\"", "**"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cs_cond c;
    ct_err e;
    if (cond(bad[i], false, &c, &e) != -1)
      fail_msg("If-Match %s accepted", bad[i]);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "invalid_field");
    assert_string_equal(e.field, "if-match");
  }
}

static void test_safe_if_none_match_takes_weak_tags(void **state) {
  (void)state;
  cs_cond c;
  ct_err e;
  assert_int_equal(cond("W/\"3\", \"4\"", true, &c, &e), 0);
  assert_true(ct_cond_names(&c, 3));
  assert_true(ct_cond_names(&c, 4));
  assert_false(ct_cond_names(&c, 5));
}

/* Headers given several times are one list; "*" stands alone. */
static void test_safe_if_match_repeated_header_is_one_list(void **state) {
  (void)state;
  cd_pair h[] = {{"if-match", 8, "\"1\"", 3}, {"if-match", 8, "\"2\"", 3}};
  cd_request req = {.headers = h, .header_count = 2};
  cs_cond c;
  ct_err e = {0};
  bool given;
  assert_int_equal(ct_cond_read(&req, "if-match", false, &given, &c, &e), 0);
  assert_true(given);
  assert_int_equal(c.count, 2);
  h[1] = (cd_pair){"if-match", 8, "*", 1};
  assert_int_equal(ct_cond_read(&req, "if-match", false, &given, &c, &e), -1);
  assert_string_equal(e.field, "if-match");
  req.header_count = 0;
  assert_int_equal(ct_cond_read(&req, "if-match", false, &given, &c, &e), 0);
  assert_false(given);
}

static int key_of(const char *v, cs_str *key, ct_err *e) {
  cd_pair h[] = {{"idempotency-key", 15, v, strlen(v)}};
  cd_request req = {.headers = h, .header_count = 1};
  memset(e, 0, sizeof *e);
  return ct_idem_key_read(&req, key, e);
}

static void test_safe_idempotency_key_shapes(void **state) {
  (void)state;
  cs_str key;
  ct_err e;
  assert_int_equal(key_of("  order-42 x~ \t", &key, &e), 0);
  assert_int_equal(key.len, 11);
  assert_memory_equal(key.ptr, "order-42 x~", 11);
  char longest[CS_IDEM_KEY_MAX_BYTES + 2];
  memset(longest, 'k', sizeof longest);
  longest[CS_IDEM_KEY_MAX_BYTES] = '\0';
  assert_int_equal(key_of(longest, &key, &e), 0);
  assert_int_equal(key.len, CS_IDEM_KEY_MAX_BYTES);
  longest[CS_IDEM_KEY_MAX_BYTES] = 'k';
  longest[CS_IDEM_KEY_MAX_BYTES + 1] = '\0';
  static const char *const bad[] = {"", "   ", "caf\xc3\xa9", "a\x7f",
                                    "a\x01z"};
  assert_int_equal(key_of(longest, &key, &e), -1);
  assert_string_equal(e.field, "idempotency-key");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(key_of(bad[i], &key, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "invalid_field");
    assert_string_equal(e.field, "idempotency-key");
  }
  /* Twice is malformed; absent is no key. */
  cd_pair two[] = {{"idempotency-key", 15, "a", 1},
                   {"idempotency-key", 15, "a", 1}};
  cd_request req = {.headers = two, .header_count = 2};
  assert_int_equal(ct_idem_key_read(&req, &key, &e), -1);
  req.header_count = 0;
  assert_int_equal(ct_idem_key_read(&req, &key, &e), 0);
  assert_null(key.ptr);
}

/* The framing written at the top of ct_safe.c, computed independently. */
static void fp_expected(const char *method, const char *path, const cd_pair *q,
                        size_t qn, const char *body, size_t blen,
                        uint8_t out[32]) {
  unsigned char buf[1024];
  size_t n = 0;
#define PUT_LEN(x)                                                             \
  do {                                                                         \
    for (int i_ = 0; i_ < 8; i_++)                                             \
      buf[n++] = (unsigned char)((uint64_t)(x) >> (56 - 8 * i_));              \
  } while (0)
#define PUT(p, l)                                                              \
  do {                                                                         \
    PUT_LEN(l);                                                                \
    memcpy(buf + n, p, l);                                                     \
    n += l;                                                                    \
  } while (0)
  PUT(method, strlen(method));
  PUT(path, strlen(path));
  PUT_LEN(qn);
  for (size_t i = 0; i < qn; i++) {
    PUT(q[i].name, q[i].name_len);
    PUT(q[i].value, q[i].value_len);
  }
  PUT(body, blen);
#undef PUT
#undef PUT_LEN
  unsigned int len = 0;
  assert_int_equal(EVP_Digest(buf, n, out, &len, EVP_sha256(), NULL), 1);
  assert_int_equal(len, 32);
}

static void test_safe_fingerprint_framing(void **state) {
  (void)state;
  cd_pair q[] = {{"purge", 5, "true", 4}};
  cd_request req = {.method = "DELETE",
                    .path = "/contacts/12345678901234567890",
                    .query = q,
                    .query_count = 1,
                    .body = "{}",
                    .body_len = 2};
  uint8_t got[CS_IDEM_FP_BYTES], want[32];
  assert_int_equal(ct_fingerprint(&req, got), 0);
  fp_expected(req.method, req.path, q, 1, "{}", 2, want);
  assert_memory_equal(got, want, 32);
  /* Each part counts, and the lengths keep parts from running together. */
  uint8_t other[CS_IDEM_FP_BYTES];
  req.query_count = 0;
  assert_int_equal(ct_fingerprint(&req, other), 0);
  assert_memory_not_equal(got, other, 32);
  cd_request a = {.method = "POST", .path = "/contacts", .body = "x"};
  cd_request b = {.method = "POST", .path = "/contactsx", .body = ""};
  a.body_len = 1;
  uint8_t fa[CS_IDEM_FP_BYTES], fb[CS_IDEM_FP_BYTES];
  assert_int_equal(ct_fingerprint(&a, fa), 0);
  assert_int_equal(ct_fingerprint(&b, fb), 0);
  assert_memory_not_equal(fa, fb, 32);
  fp_expected("POST", "/contacts", NULL, 0, "x", 1, want);
  assert_memory_equal(fa, want, 32);
}

/* -------------------------------------------------------------- codec */

static char *gen_str(void (*fn)(yajl_gen, const void *), const void *arg) {
  yajl_gen g = ct_gen_new();
  fn(g, arg);
  const unsigned char *buf;
  size_t len;
  assert_int_equal(yajl_gen_get_buf(g, &buf, &len), yajl_gen_status_ok);
  char *s = strndup((const char *)buf, len);
  yajl_gen_free(g);
  return s;
}

static void gen_contact(yajl_gen g, const void *c) {
  ct_gen_contact(g, c);
}
static void gen_error(yajl_gen g, const void *e) {
  ct_gen_error(g, e);
}

static void test_safe_codec_writes_version_deleted_at_and_etag(void **state) {
  (void)state;
  cs_contact c = {.id = 12345678901234567890ull,
                  .created_ms = 1000,
                  .updated_ms = 2000,
                  .version = 3};
  c.field[CS_FIRST_NAME] = (cs_str){"A", 1};
  c.field[CS_EMAIL] = (cs_str){"a@x.io", 6};
  char *s = gen_str(gen_contact, &c);
  assert_non_null(strstr(s, "\"updated_at\":\"1970-01-01T00:00:02.000Z\","
                            "\"version\":3}"));
  assert_null(strstr(s, "deleted_at"));
  free(s);
  c.deleted_ms = 3000;
  s = gen_str(gen_contact, &c);
  assert_non_null(
      strstr(s, "\"version\":3,\"deleted_at\":\"1970-01-01T00:00:03.000Z\"}"));
  free(s);

  ct_err e;
  ct_fail(&e, 412, "precondition_failed", NULL, 0, "no");
  assert_true(e.version == 0);
  s = gen_str(gen_error, &e);
  assert_null(strstr(s, "etag"));
  free(s);
  e.version = 42;
  s = gen_str(gen_error, &e);
  assert_non_null(strstr(s, "\"etag\":\"\\\"42\\\"\""));
  free(s);
  char etag[CT_ETAG_BYTES];
  ct_etag_format(UINT64_MAX, etag);
  assert_string_equal(etag, "\"18446744073709551615\"");
}

static void test_safe_trash_cursor_is_its_own_kind(void **state) {
  (void)state;
  char cur[CT_CURSOR_CHARS + 1];
  uint64_t v = 0;
  ct_trash_cursor_encode(77, cur);
  assert_int_equal(strlen(cur), CT_CURSOR_CHARS);
  assert_int_equal(ct_trash_cursor_decode(cur, strlen(cur), &v), 0);
  assert_true(v == 77);
  /* A search cursor is no trash cursor, and the other way round. */
  assert_int_equal(ct_cursor_decode(cur, strlen(cur), &v), -1);
  ct_cursor_encode(12345678901234567890ull, cur);
  assert_int_equal(ct_trash_cursor_decode(cur, strlen(cur), &v), -1);
  ct_trash_cursor_encode(0, cur);
  assert_int_equal(ct_trash_cursor_decode(cur, strlen(cur), &v), -1);
  assert_int_equal(ct_trash_cursor_decode("AAAA", 4, &v), -1);
}

/* -------------------------------------------------------- body parsing */

static void parse_fails(ct_body_kind kind, const char *json, const char *code,
                        const char *field) {
  ct_body b;
  if (ct_body_parse(&b, kind, json, strlen(json)) != -1)
    fail_msg("accepted: %s", json);
  if (strcmp(b.err.code, code) || strcmp(b.err.field, field))
    fail_msg("%s: got %s %s", json, b.err.code, b.err.field);
  ct_body_free(&b);
}

static void test_safe_parse_upsert_bodies(void **state) {
  (void)state;
  ct_body b;
  const char *ok = "{\"email\": \"a@x.io\", \"name\": \"Ann Lee\", "
                   "\"company\": null}";
  assert_int_equal(ct_body_parse(&b, CT_BODY_UPSERT, ok, strlen(ok)), 0);
  assert_true(b.upd.v.set_mask & (1u << CS_EMAIL));
  assert_true(b.upd.v.set_mask & (1u << CS_LAST_NAME));
  assert_true(b.upd.v.clear_mask & (1u << CS_COMPANY));
  ct_body_free(&b);
  parse_fails(CT_BODY_UPSERT, "{}", "missing_field", "email");
  parse_fails(CT_BODY_UPSERT, "{\"first_name\": \"A\"}", "missing_field",
              "email");
  parse_fails(CT_BODY_UPSERT, "{\"email\": null}", "invalid_field", "email");
  parse_fails(CT_BODY_UPSERT, "{\"email\": \"a@x.io\", \"version\": 2}",
              "invalid_field", "version");
  parse_fails(CT_BODY_UPSERT, "{\"email\": \"a@x.io\", \"id\": \"1\"}",
              "invalid_field", "id");
  parse_fails(CT_BODY_UPSERT, "{\"email\": \"a@x.io\", \"bogus\": 1}",
              "unknown_field", "bogus");
  parse_fails(CT_BODY_UPSERT, "[]", "invalid_body", "");
  parse_fails(CT_BODY_UPSERT, "", "invalid_json", "");

  const char *batch = "{\"contacts\": [{\"email\": \"a@x.io\"}, "
                      "{\"first_name\": \"B\"}, 3, {\"email\": \"b@x.io\", "
                      "\"version\": 1}]}";
  assert_int_equal(
      ct_body_parse(&b, CT_BODY_BATCH_UPSERT, batch, strlen(batch)), 0);
  assert_int_equal(b.item_count, 4);
  assert_int_equal(b.items[0].err.status, 0);
  assert_string_equal(b.items[1].err.code, "missing_field");
  assert_string_equal(b.items[1].err.field, "email");
  assert_string_equal(b.items[2].err.code, "invalid_body");
  assert_string_equal(b.items[3].err.field, "version");
  ct_body_free(&b);
  parse_fails(CT_BODY_BATCH_UPSERT, "{}", "missing_field", "contacts");
  parse_fails(CT_BODY_BATCH_UPSERT, "{\"contacts\": []}", "invalid_field",
              "contacts");
}

static void test_safe_parse_version_refused_in_edits(void **state) {
  (void)state;
  parse_fails(CT_BODY_PATCH, "{\"version\": 3}", "invalid_field", "version");
  parse_fails(CT_BODY_POST,
              "{\"contact_id\": \"12345678901234567890\", "
              "\"update_fields\": {\"version\": 3}}",
              "invalid_field", "version");
  ct_body b;
  const char *batch = "{\"contacts\": [{\"version\": 1}]}";
  assert_int_equal(ct_body_parse(&b, CT_BODY_BATCH, batch, strlen(batch)), 0);
  assert_string_equal(b.items[0].err.code, "invalid_field");
  assert_string_equal(b.items[0].err.field, "version");
  ct_body_free(&b);
}

static void test_safe_parse_load_takes_a_dump_with_version(void **state) {
  (void)state;
  const char *line = "{\"id\": \"12345678901234567890\", \"first_name\": "
                     "\"A\", \"email\": \"a@x.io\", \"version\": 7, "
                     "\"created_at\": \"2026-01-01T00:00:00.000Z\"}";
  ct_body b;
  assert_int_equal(ct_body_parse_flags(&b, CT_BODY_POST, CT_PARSE_SERVER_FIELDS,
                                       line, strlen(line)),
                   0);
  assert_false(b.is_edit);
  /* The number as written, for the load to check and keep. */
  assert_int_equal(b.server[CS_SERVER_VERSION].len, 1);
  assert_memory_equal(b.server[CS_SERVER_VERSION].ptr, "7", 1);
  assert_true(b.server_number & (1u << CS_SERVER_VERSION));
  ct_body_free(&b);
}

static void test_safe_parse_delete_purge(void **state) {
  (void)state;
  ct_body b;
  const char *t = "{\"contact_id\": \"12345678901234567890\", \"purge\": true}";
  assert_int_equal(ct_body_parse(&b, CT_BODY_DELETE, t, strlen(t)), 0);
  assert_true(b.purge);
  ct_body_free(&b);
  const char *f =
      "{\"purge\": false, \"contact_id\": \"12345678901234567890\"}";
  assert_int_equal(ct_body_parse(&b, CT_BODY_DELETE, f, strlen(f)), 0);
  assert_false(b.purge);
  ct_body_free(&b);
  const char *n = "{\"purge\": null, \"contactID\": \"12345678901234567890\"}";
  assert_int_equal(ct_body_parse(&b, CT_BODY_DELETE, n, strlen(n)), 0);
  assert_false(b.purge);
  ct_body_free(&b);
  parse_fails(CT_BODY_DELETE,
              "{\"contact_id\": \"12345678901234567890\", \"purge\": \"yes\"}",
              "invalid_field", "purge");
  parse_fails(CT_BODY_DELETE,
              "{\"contact_id\": \"12345678901234567890\", \"purge\": true, "
              "\"purge\": true}",
              "duplicate_field", "purge");
  parse_fails(CT_BODY_POST, "{\"first_name\": \"A\", \"purge\": true}",
              "unknown_field", "purge");
}

/* ------------------------------------ refusals before the store, routes */

static void test_safe_routes_refuse_bad_headers(void **state) {
  fh_fixture *fx = *state;
  const char *path = "/contacts/12345678901234567890";
  const char *const weak[] = {"if-match: W/\"1\"", NULL};
  expect_error_h(fx, "PATCH", path, NULL, "{\"company\": \"X\"}", weak, 400,
                 "invalid_field", "if-match");
  expect_error_h(fx, "DELETE", path, NULL, NULL, weak, 400, "invalid_field",
                 "if-match");
  expect_error_h(fx, "POST", "/contacts/upsert", NULL, "{\"email\":\"a@x.io\"}",
                 weak, 400, "invalid_field", "if-match");
  expect_error_h(fx, "POST", "/contacts/12345678901234567890/restore", NULL,
                 NULL, weak, 400, "invalid_field", "if-match");
  const char *const badkey[] = {"idempotency-key: caf\xc3\xa9", NULL};
  static const struct {
    const char *method, *path;
  } writes[] = {{"POST", "/contacts"},
                {"POST", "/contacts/batch"},
                {"POST", "/contacts/upsert"},
                {"POST", "/contacts/batch/upsert"},
                {"PATCH", "/contacts/12345678901234567890"},
                {"DELETE", "/contacts"},
                {"DELETE", "/contacts/12345678901234567890"},
                {"POST", "/contacts/12345678901234567890/restore"}};
  for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
    expect_error_h(fx, writes[i].method, writes[i].path, NULL, "{}", badkey,
                   400, "invalid_field", "idempotency-key");
  const char *const badinm[] = {"if-none-match: 3", NULL};
  expect_error_h(fx, "GET", path, NULL, NULL, badinm, 400, "invalid_field",
                 "if-none-match");
}

static void test_safe_if_match_on_what_cannot_exist_is_412(void **state) {
  fh_fixture *fx = *state;
  const char *const im[] = {"if-match: \"1\"", NULL};
  const char *const star[] = {"if-match: *", NULL};
  /* A contact not made yet, and ids that are no ids: no version to match
   * (with no etag in the error); without If-Match the id is a 404. */
  res_t *r = fh_call_h(fx, "POST", "/contacts", NULL,
                       "{\"first_name\": \"A\", \"email\": \"a@x.io\"}", star);
  fh_assert_error(r, 412, "precondition_failed", NULL);
  assert_null(strstr(r->body, "etag"));
  fh_free(r);
  expect_error_h(fx, "PATCH", "/contacts/123", NULL, "{\"company\": \"X\"}", im,
                 412, "precondition_failed", NULL);
  expect_error_h(fx, "DELETE", "/contacts/abc", NULL, NULL, im, 412,
                 "precondition_failed", NULL);
  expect_error_h(fx, "POST", "/contacts/trash/restore", NULL, NULL, im, 412,
                 "precondition_failed", NULL);
  expect_error_h(fx, "POST", "/contacts/upsert/restore", NULL, NULL, NULL, 404,
                 "not_found", NULL);
  expect_error_h(fx, "DELETE", "/contacts", NULL, "{\"contact_id\": \"1\"}",
                 NULL, 404, "not_found", NULL);
}

static void test_safe_purge_parameter(void **state) {
  fh_fixture *fx = *state;
  const char *path = "/contacts/12345678901234567890";
  expect_error_h(fx, "DELETE", path, "purge=yes", NULL, NULL, 400,
                 "invalid_field", "purge");
  expect_error_h(fx, "DELETE", path, "purge=TRUE", NULL, NULL, 400,
                 "invalid_field", "purge");
  expect_error_h(fx, "DELETE", path, "purge=true&purge=true", NULL, NULL, 400,
                 "duplicate_field", "purge");
  expect_error_h(fx, "DELETE", "/contacts", NULL,
                 "{\"contact_id\": \"12345678901234567890\", \"purge\": 1}",
                 NULL, 400, "invalid_field", "purge");
}

/* GET /contacts/trash is the trash, not a contact whose id is "trash". */
static void test_safe_trash_parameters(void **state) {
  fh_fixture *fx = *state;
  expect_error_h(fx, "GET", "/contacts/trash", "limit=0", NULL, NULL, 400,
                 "invalid_field", "limit");
  char over[32];
  snprintf(over, sizeof over, "limit=%d", CS_PAGE_LIMIT_MAX + 1);
  expect_error_h(fx, "GET", "/contacts/trash", over, NULL, NULL, 400,
                 "invalid_field", "limit");
  expect_error_h(fx, "GET", "/contacts/trash", "limit=1&limit=2", NULL, NULL,
                 400, "duplicate_field", "limit");
  expect_error_h(fx, "GET", "/contacts/trash", "cursor=bogus", NULL, NULL, 400,
                 "invalid_cursor", "cursor");
  char cur[CT_CURSOR_CHARS + 1], q[64];
  ct_cursor_encode(12345678901234567890ull, cur);
  snprintf(q, sizeof q, "cursor=%s", cur);
  expect_error_h(fx, "GET", "/contacts/trash", q, NULL, NULL, 400,
                 "invalid_cursor", "cursor");
}

static void test_safe_upsert_bodies_refused(void **state) {
  fh_fixture *fx = *state;
  expect_error_h(fx, "POST", "/contacts/upsert", NULL, "{\"first_name\":\"A\"}",
                 NULL, 400, "missing_field", "email");
  expect_error_h(fx, "POST", "/contacts/upsert", NULL,
                 "{\"email\":\"a@x.io\",\"version\":1}", NULL, 400,
                 "invalid_field", "version");
  expect_error_h(fx, "POST", "/contacts/batch/upsert", NULL, "{\"contacts\":3}",
                 NULL, 400, "invalid_field", "contacts");
}

/* ------------------------------------------------- through the store */

static uint64_t create_h(fh_fixture *fx, const char *json,
                         const char *const *headers, char etag_out[32]) {
  res_t *r = fh_call_h(fx, "POST", "/contacts", NULL, json, headers);
  if (r->status != 200) fprintf(stderr, "create: %s\n", r->body);
  assert_int_equal(r->status, 200);
  const char *etag = fh_header(r, "etag");
  assert_non_null(etag);
  if (etag_out) snprintf(etag_out, 32, "%s", etag);
  uint64_t id = 0;
  const char *s = fh_str(r, "id", NULL);
  assert_non_null(s);
  assert_int_equal(cs_id_parse(s, strlen(s), &id), 0);
  fh_free(r);
  return id;
}

static void test_safe_versions_and_etags(void **state) {
  fh_fixture *fx = *state;
  char etag[32], p[96];
  uint64_t id =
      create_h(fx, "{\"first_name\":\"A\",\"email\":\"v@x.io\"}", NULL, etag);
  assert_string_equal(etag, "\"1\"");
  res_t *r = fh_call(fx, "GET", id_path(id, NULL, p), NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_header(r, "etag"), "\"1\"");
  assert_int_equal(int_at(fh_json(r), "version"), 1);
  fh_free(r);
  const char *const inm[] = {"if-none-match: W/\"1\"", NULL};
  r = fh_call_h(fx, "GET", p, NULL, NULL, inm);
  assert_int_equal(r->status, 304);
  assert_int_equal(r->body_len, 0);
  assert_string_equal(fh_header(r, "etag"), "\"1\"");
  fh_free(r);
  const char *const inm2[] = {"if-none-match: \"2\"", NULL};
  r = fh_call_h(fx, "GET", p, NULL, NULL, inm2);
  assert_int_equal(r->status, 200);
  fh_free(r);

  /* An edit naming the version applies and moves it on; naming it again
   * fails with the current tag in the error object. */
  const char *const im1[] = {"if-match: \"1\"", NULL};
  r = fh_call_h(fx, "PATCH", p, NULL, "{\"company\":\"X\"}", im1);
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_header(r, "etag"), "\"2\"");
  fh_free(r);
  r = fh_call_h(fx, "PATCH", p, NULL, "{\"company\":\"Y\"}", im1);
  assert_int_equal(r->status, 412);
  assert_string_equal(fh_str(r, "error", "code", NULL), "precondition_failed");
  assert_string_equal(fh_str(r, "error", "etag", NULL), "\"2\"");
  fh_free(r);
  char *edit = fmt("{\"contact_id\":\"%s\",\"update_fields\":{\"phone\":123}}",
                   p + strlen("/contacts/"));
  const char *const star[] = {"if-match: *", NULL};
  r = fh_call_h(fx, "POST", "/contacts", NULL, edit, star);
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_header(r, "etag"), "\"3\"");
  fh_free(r);
  free(edit);
  /* A delete names the version too, and its answer has no etag. */
  r = fh_call_h(fx, "DELETE", p, NULL, NULL, im1);
  assert_int_equal(r->status, 412);
  fh_free(r);
  const char *const im3[] = {"if-match: \"9\", \"3\"", NULL};
  r = fh_call_h(fx, "DELETE", p, NULL, NULL, im3);
  assert_int_equal(r->status, 200);
  assert_null(fh_header(r, "etag"));
  fh_free(r);
  /* Not live: every If-Match fails, with no etag to name. */
  r = fh_call_h(fx, "PATCH", p, NULL, "{\"company\":\"Z\"}", star);
  assert_int_equal(r->status, 412);
  assert_null(fh_str(r, "error", "etag", NULL));
  fh_free(r);
}

static void test_safe_idempotent_create_replays(void **state) {
  fh_fixture *fx = *state;
  const char *body = "{\"first_name\":\"I\",\"email\":\"i@x.io\"}";
  const char *const k[] = {"idempotency-key: k-1", NULL};
  res_t *a = fh_call_h(fx, "POST", "/contacts", NULL, body, k);
  assert_int_equal(a->status, 200);
  assert_null(fh_header(a, "idempotent-replayed"));
  res_t *b = fh_call_h(fx, "POST", "/contacts", NULL, body, k);
  assert_int_equal(b->status, 200);
  assert_string_equal(fh_header(b, "idempotent-replayed"), "true");
  assert_string_equal(b->content_type, "application/json");
  assert_int_equal(a->body_len, b->body_len);
  assert_memory_equal(a->body, b->body, a->body_len);
  fh_free(b);
  fh_free(a);
  expect_error_h(fx, "POST", "/contacts", NULL,
                 "{\"first_name\":\"J\",\"email\":\"j@x.io\"}", k, 422,
                 "idempotency_key_reused", NULL);
  expect_error_h(fx, "POST", "/contacts/batch", NULL, body, k, 422,
                 "idempotency_key_reused", NULL);
  /* A refused request is not remembered: the key is judged afresh. */
  const char *const k2[] = {"idempotency-key: k-2", NULL};
  expect_error_h(fx, "POST", "/contacts", NULL, "{\"first_name\":\"I\"}", k2,
                 400, "missing_field", "email");
  res_t *c = fh_call_h(fx, "POST", "/contacts", NULL,
                       "{\"first_name\":\"K\",\"email\":\"k@x.io\"}", k2);
  assert_int_equal(c->status, 200);
  assert_null(fh_header(c, "idempotent-replayed"));
  fh_free(c);
  /* Keys are per account. */
  fx->account = 2;
  res_t *d = fh_call_h(fx, "POST", "/contacts", NULL, body, k);
  assert_int_equal(d->status, 200);
  assert_null(fh_header(d, "idempotent-replayed"));
  fh_free(d);
}

static void test_safe_idempotent_delete_replays_text(void **state) {
  fh_fixture *fx = *state;
  char p[96];
  uint64_t id =
      create_h(fx, "{\"first_name\":\"D\",\"email\":\"d@x.io\"}", NULL, NULL);
  const char *const k[] = {"idempotency-key: del", NULL};
  for (int i = 0; i < 2; i++) {
    res_t *r = fh_call_h(fx, "DELETE", id_path(id, NULL, p), NULL, NULL, k);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->content_type, "text/plain; charset=utf-8");
    assert_string_equal(r->body, CT_DELETED);
    if (i) assert_string_equal(fh_header(r, "idempotent-replayed"), "true");
    fh_free(r);
  }
  /* The same key on the same path with ?purge=true is another request. */
  expect_error_h(fx, "DELETE", p, "purge=true", NULL, k, 422,
                 "idempotency_key_reused", NULL);
}

static res_t *upsert(fh_fixture *fx, const char *body, const char *result) {
  res_t *r = fh_call(fx, "POST", "/contacts/upsert", NULL, body);
  if (r->status != 200) fprintf(stderr, "upsert: %s\n", r->body);
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_str(r, "result", NULL), result);
  assert_non_null(fh_header(r, "etag"));
  return r;
}

static void test_safe_upsert_created_updated_unchanged(void **state) {
  fh_fixture *fx = *state;
  res_t *r =
      upsert(fx, "{\"email\":\"u@x.io\",\"first_name\":\"U\"}", "created");
  assert_string_equal(fh_header(r, "etag"), "\"1\"");
  char id[CS_ID_DIGITS + 1];
  snprintf(id, sizeof id, "%s", fh_str(r, "id", NULL));
  fh_free(r);
  r = upsert(fx, "{\"email\":\"u@x.io\",\"first_name\":\"U\"}", "unchanged");
  assert_string_equal(fh_header(r, "etag"), "\"1\"");
  assert_string_equal(fh_str(r, "id", NULL), id);
  fh_free(r);
  r = upsert(fx, "{\"email\":\"U@x.io\",\"company\":\"C\"}", "updated");
  assert_string_equal(fh_header(r, "etag"), "\"2\"");
  assert_string_equal(fh_str(r, "id", NULL), id);
  fh_free(r);
  /* Creating needs first_name, as a create does. */
  expect_error_h(fx, "POST", "/contacts/upsert", NULL,
                 "{\"email\":\"new@x.io\"}", NULL, 400, "missing_field",
                 "first_name");
  /* If-Match on an upsert names the matched contact's version; no match
   * fails it. */
  const char *const im[] = {"if-match: \"1\"", NULL};
  r = fh_call_h(fx, "POST", "/contacts/upsert", NULL,
                "{\"email\":\"u@x.io\",\"company\":\"D\"}", im);
  assert_int_equal(r->status, 412);
  assert_string_equal(fh_str(r, "error", "etag", NULL), "\"2\"");
  fh_free(r);
  expect_error_h(fx, "POST", "/contacts/upsert", NULL,
                 "{\"email\":\"none@x.io\",\"first_name\":\"N\"}", im, 412,
                 "precondition_failed", NULL);
  /* An unchanged upsert keeps nothing with its key. */
  const char *const k[] = {"idempotency-key: up", NULL};
  r = fh_call_h(fx, "POST", "/contacts/upsert", NULL,
                "{\"email\":\"U@x.io\",\"company\":\"C\"}", k);
  assert_string_equal(fh_str(r, "result", NULL), "unchanged");
  fh_free(r);
  r = fh_call_h(fx, "POST", "/contacts/upsert", NULL,
                "{\"email\":\"U@x.io\",\"company\":\"E\"}", k);
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_str(r, "result", NULL), "updated");
  fh_free(r);
}

static void test_safe_batch_upsert_in_order(void **state) {
  fh_fixture *fx = *state;
  const char *body = "{\"contacts\":[{\"email\":\"b@x.io\",\"first_name\":"
                     "\"B\"},{\"email\":\"B@x.io\",\"company\":\"C\"},"
                     "{\"email\":\"c@x.io\"},{\"email\":\"B@x.io\",\"company\":"
                     "\"C\"}]}";
  const char *const k[] = {"idempotency-key: batch-up", NULL};
  res_t *r = fh_call_h(fx, "POST", "/contacts/batch/upsert", NULL, body, k);
  assert_int_equal(r->status, 200);
  assert_string_equal(str_at(array_at(r, "results", 0), "result"), "created");
  assert_string_equal(str_at(array_at(r, "results", 1), "result"), "updated");
  assert_string_equal(str_at(array_at(r, "results", 0), "id"),
                      str_at(array_at(r, "results", 1), "id"));
  yajl_val err = array_at(r, "results", 2);
  const char *path[] = {"error", "field", NULL};
  assert_string_equal(YAJL_GET_STRING(yajl_tree_get(err, path, yajl_t_string)),
                      "first_name");
  assert_string_equal(str_at(array_at(r, "results", 3), "result"), "unchanged");
  res_t *again = fh_call_h(fx, "POST", "/contacts/batch/upsert", NULL, body, k);
  assert_string_equal(fh_header(again, "idempotent-replayed"), "true");
  assert_int_equal(again->body_len, r->body_len);
  assert_memory_equal(again->body, r->body, r->body_len);
  fh_free(again);
  fh_free(r);
}

static void test_safe_trash_restore_purge(void **state) {
  fh_fixture *fx = *state;
  char p[96];
  uint64_t a =
      create_h(fx, "{\"first_name\":\"A\",\"email\":\"ta@x.io\"}", NULL, NULL);
  uint64_t b =
      create_h(fx, "{\"first_name\":\"B\",\"email\":\"tb@x.io\"}", NULL, NULL);
  res_t *r = fh_call(fx, "DELETE", id_path(a, NULL, p), NULL, NULL);
  assert_int_equal(r->status, 200);
  fh_free(r);
  r = fh_call(fx, "DELETE", id_path(b, NULL, p), NULL, NULL);
  assert_int_equal(r->status, 200);
  fh_free(r);
  /* Newest deletion first, each with deleted_at; one a page. */
  r = fh_call(fx, "GET", "/contacts/trash", "limit=1", NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(int_at(fh_json(r), "count"), 1);
  assert_int_equal(int_at(fh_json(r), "total"), 2);
  yajl_val first = array_at(r, "contacts", 0);
  assert_string_equal(str_at(first, "email"), "tb@x.io");
  assert_non_null(str_at(first, "deleted_at"));
  assert_int_equal(int_at(first, "version"), 1);
  const char *cur = fh_str(r, "next_cursor", NULL);
  assert_non_null(cur);
  char *q = fmt("limit=1&cursor=%s", cur);
  fh_free(r);
  r = fh_call(fx, "GET", "/contacts/trash", q, NULL);
  free(q);
  assert_int_equal(r->status, 200);
  assert_string_equal(str_at(array_at(r, "contacts", 0), "email"), "ta@x.io");
  fh_free(r);

  /* Restore: If-Match names the trashed version, and a 412 names no etag
   * (the contact is not live); then a new version, live, out of the trash. */
  const char *const im2[] = {"if-match: \"2\"", NULL};
  r = fh_call_h(fx, "POST", id_path(a, "/restore", p), NULL, NULL, im2);
  fh_assert_error(r, 412, "precondition_failed", NULL);
  assert_null(fh_str(r, "error", "etag", NULL));
  fh_free(r);
  const char *const im1[] = {"if-match: \"1\"", NULL};
  r = fh_call_h(fx, "POST", id_path(a, "/restore", p), NULL, NULL, im1);
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_header(r, "etag"), "\"2\"");
  fh_free(r);
  expect_error_h(fx, "POST", p, NULL, NULL, NULL, 404, "not_found", NULL);
  /* b's email taken meanwhile: 409 naming the holder. */
  uint64_t c =
      create_h(fx, "{\"first_name\":\"C\",\"email\":\"TB@x.io\"}", NULL, NULL);
  r = fh_call(fx, "POST", id_path(b, "/restore", p), NULL, NULL);
  fh_assert_error(r, 409, "duplicate_email", "email");
  assert_true(r->id == c);
  fh_free(r);
  /* Purged from the trash: never to be restored. */
  r = fh_call(fx, "DELETE", id_path(b, NULL, p), "purge=true", NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->body, CT_DELETED);
  fh_free(r);
  expect_error_h(fx, "POST", id_path(b, "/restore", p), NULL, NULL, NULL, 404,
                 "not_found", NULL);
  r = fh_call(fx, "GET", "/contacts/trash", NULL, NULL);
  assert_int_equal(int_at(fh_json(r), "total"), 0);
  fh_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      cmocka_unit_test(test_safe_if_match_reads_tags_and_star),
      cmocka_unit_test(test_safe_if_match_malformed_is_refused),
      cmocka_unit_test(test_safe_if_none_match_takes_weak_tags),
      cmocka_unit_test(test_safe_if_match_repeated_header_is_one_list),
      cmocka_unit_test(test_safe_idempotency_key_shapes),
      cmocka_unit_test(test_safe_fingerprint_framing),
      cmocka_unit_test(test_safe_codec_writes_version_deleted_at_and_etag),
      cmocka_unit_test(test_safe_trash_cursor_is_its_own_kind),
      cmocka_unit_test(test_safe_parse_upsert_bodies),
      cmocka_unit_test(test_safe_parse_version_refused_in_edits),
      cmocka_unit_test(test_safe_parse_load_takes_a_dump_with_version),
      cmocka_unit_test(test_safe_parse_delete_purge),
      T(test_safe_routes_refuse_bad_headers),
      T(test_safe_if_match_on_what_cannot_exist_is_412),
      T(test_safe_purge_parameter),
      T(test_safe_trash_parameters),
      T(test_safe_upsert_bodies_refused),
      T(test_safe_versions_and_etags),
      T(test_safe_idempotent_create_replays),
      T(test_safe_idempotent_delete_replays_text),
      T(test_safe_upsert_created_updated_unchanged),
      T(test_safe_batch_upsert_in_order),
      T(test_safe_trash_restore_purge),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
