/*
 * test_contacts.c: the contacts plugin against API.md, route by route.
 *
 * Goal: every success and every error the contract names, answered with the
 * exact status, code and field, and every limit at and past its edge.
 * Method: the plugin's handlers are called in-process through its route
 * table by fake_host.c, over a real store opened in a temporary directory
 * (durability none: durability is the engine's tests' business). Answers are
 * read back as JSON, and writes are checked by reading them back.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf, strchrnul, nftw */
#endif
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

/* "/contacts/<id>" in a static buffer per call site use. */
static const char *id_path(uint64_t id, char buf[64]) {
  char digits[CS_ID_DIGITS + 1];
  cs_id_format(id, digits);
  snprintf(buf, 64, "/contacts/%s", digits);
  return buf;
}

static char *id_str(uint64_t id) {
  static __thread char digits[4][CS_ID_DIGITS + 1];
  static __thread int next;
  char *d = digits[next++ % 4];
  cs_id_format(id, d);
  return d;
}

/* unit repeated n times, malloc'd. */
static char *rep(const char *unit, size_t n) {
  size_t u = strlen(unit);
  char *s = malloc(u * n + 1);
  for (size_t i = 0; i < n; i++)
    memcpy(s + i * u, unit, u);
  s[u * n] = '\0';
  return s;
}

static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *s = NULL;
  assert_true(vasprintf(&s, f, ap) >= 0);
  va_end(ap);
  return s;
}

/* GET /contacts/{id} for a contact that must exist. */
static res_t *get_ok(fh_fixture *fx, uint64_t id) {
  char p[64];
  res_t *r = fh_call(fx, "GET", id_path(id, p), NULL, NULL);
  if (r->status != 200) fprintf(stderr, "get: %s\n", r->body);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type, "application/json");
  return r;
}

static void expect_error(fh_fixture *fx, const char *method, const char *path,
                         const char *query, const char *body, int status,
                         const char *code, const char *field) {
  res_t *r = fh_call(fx, method, path, query, body);
  fh_assert_error(r, status, code, field);
  fh_free(r);
}

static void expect_create_error(fh_fixture *fx, const char *body, int status,
                                const char *code, const char *field) {
  expect_error(fx, "POST", "/contacts", NULL, body, status, code, field);
}

static size_t array_len(res_t *r, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(fh_json(r), path, yajl_t_array);
  assert_non_null(v);
  return YAJL_GET_ARRAY(v)->len;
}

static long long int_at(res_t *r, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(fh_json(r), path, yajl_t_number);
  assert_non_null(v);
  return YAJL_GET_INTEGER(v);
}

/* The i-th contact of a search answer. */
static yajl_val page_at(res_t *r, size_t i) {
  const char *path[] = {"contacts", NULL};
  yajl_val v = yajl_tree_get(fh_json(r), path, yajl_t_array);
  assert_non_null(v);
  assert_true(i < YAJL_GET_ARRAY(v)->len);
  return YAJL_GET_ARRAY(v)->values[i];
}

static const char *obj_str(yajl_val obj, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
  return v ? YAJL_GET_STRING(v) : NULL;
}

/* ------------------------------------------------------------- routes */

static void test_contacts_routes_and_flags(void **state) {
  (void)state;
  const cd_plugin *pl = &contactd_plugin;
  assert_int_equal(pl->api_version, CD_PLUGIN_API_VERSION);
  assert_string_equal(pl->name, "contacts");
  static const struct {
    const char *method, *pattern;
    unsigned flags;
  } want[] = {
      {"POST", "/contacts", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"POST", "/contacts/batch", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"POST", "/contacts/upsert", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"POST", "/contacts/batch/upsert", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"GET", "/contacts", CD_ROUTE_AUTH},
      {"POST", "/contacts/query", CD_ROUTE_AUTH},
      {"GET", "/contacts/trash", CD_ROUTE_AUTH},
      {"GET", "/contacts/changes", CD_ROUTE_AUTH},
      {"GET", "/contacts/{id}", CD_ROUTE_AUTH},
      {"POST", "/contacts/{id}/restore", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"PATCH", "/contacts/{id}", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"DELETE", "/contacts", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"DELETE", "/contacts/{id}", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
  };
  assert_int_equal(pl->route_count, sizeof want / sizeof want[0]);
  for (size_t i = 0; i < pl->route_count; i++) {
    bool found = false;
    for (size_t j = 0; j < pl->route_count; j++)
      if (!strcmp(pl->routes[j].method, want[i].method) &&
          !strcmp(pl->routes[j].pattern, want[i].pattern)) {
        assert_int_equal(pl->routes[j].flags, want[i].flags);
        assert_non_null(pl->routes[j].handle);
        found = true;
      }
    assert_true(found);
  }
}

/* ------------------------------------------------------------- create */

static void test_contacts_create_and_get(void **state) {
  fh_fixture *fx = *state;
  res_t *r = fh_call(fx, "POST", "/contacts", NULL,
                     "{\"first_name\": \"  John \", \"last_name\": \"Doe\","
                     " \"email\": \"john@example.com\", \"phone\": \"+1 234 "
                     "567 890\", \"company\": \"Example Inc.\", \"job_title\":"
                     " \"CEO\", \"notes\": \"met at the fair\"}");
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type, "application/json");
  const char *id = fh_str(r, "id", NULL);
  assert_non_null(id);
  assert_int_equal(strlen(id), CS_ID_DIGITS);
  assert_true(id[0] >= '1' && id[0] <= '9');
  uint64_t v;
  assert_int_equal(cs_id_parse(id, strlen(id), &v), 0);
  fh_free(r);

  r = get_ok(fx, v);
  assert_string_equal(fh_str(r, "id", NULL), id_str(v));
  assert_string_equal(fh_str(r, "first_name", NULL), "John"); /* trimmed */
  assert_string_equal(fh_str(r, "last_name", NULL), "Doe");
  assert_string_equal(fh_str(r, "email", NULL), "john@example.com");
  assert_string_equal(fh_str(r, "phone", NULL), "+1 234 567 890");
  assert_string_equal(fh_str(r, "company", NULL), "Example Inc.");
  assert_string_equal(fh_str(r, "job_title", NULL), "CEO");
  assert_string_equal(fh_str(r, "notes", NULL), "met at the fair");
  const char *created = fh_str(r, "created_at", NULL);
  assert_non_null(created);
  /* RFC 3339 UTC with milliseconds: 2026-11-26T08:58:00.123Z */
  assert_int_equal(strlen(created), 24);
  assert_int_equal(created[10], 'T');
  assert_int_equal(created[19], '.');
  assert_int_equal(created[23], 'Z');
  assert_string_equal(fh_str(r, "updated_at", NULL), created);
  fh_free(r);
}

static void test_contacts_create_ids_increase(void **state) {
  fh_fixture *fx = *state;
  uint64_t a = fh_create(fx, "{\"first_name\":\"A\",\"email\":\"a@x.io\"}");
  uint64_t b = fh_create(fx, "{\"first_name\":\"B\",\"email\":\"b@x.io\"}");
  assert_true(a >= CS_ID_MIN);
  assert_true(b > a);
}

static void
test_contacts_create_null_and_empty_optional_are_absent(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = fh_create(fx, "{\"first_name\":\"Ann\",\"email\":\"ann@x.io\","
                              "\"last_name\":null,\"phone\":null,"
                              "\"company\":\"  \",\"notes\":\"\"}");
  res_t *r = get_ok(fx, id);
  /* Absent fields are left out of the object, not written as null. */
  assert_null(fh_str(r, "last_name", NULL));
  const char *p[] = {"last_name", NULL};
  assert_null(yajl_tree_get(fh_json(r), p, yajl_t_any));
  const char *q[] = {"company", NULL};
  assert_null(yajl_tree_get(fh_json(r), q, yajl_t_any));
  const char *n[] = {"notes", NULL};
  assert_null(yajl_tree_get(fh_json(r), n, yajl_t_any));
  fh_free(r);
}

static void test_contacts_create_missing_required(void **state) {
  fh_fixture *fx = *state;
  expect_create_error(fx, "{\"email\":\"a@x.io\"}", 400, "missing_field",
                      "first_name");
  expect_create_error(fx, "{\"first_name\":\"A\"}", 400, "missing_field",
                      "email");
  expect_create_error(fx, "{}", 400, "missing_field", "first_name");
  expect_create_error(fx, "{\"first_name\":null,\"email\":\"a@x.io\"}", 400,
                      "invalid_field", "first_name");
  expect_create_error(fx, "{\"first_name\":\"   \",\"email\":\"a@x.io\"}", 400,
                      "invalid_field", "first_name");
  expect_create_error(fx, "{\"first_name\":\"A\",\"email\":\"\"}", 400,
                      "invalid_field", "email");
}

static void test_contacts_create_unknown_field(void **state) {
  fh_fixture *fx = *state;
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"a@x.io\","
                      "\"nickname\":\"Al\"}",
                      400, "unknown_field", "nickname");
  /* name is an edit's shorthand, not a contact field */
  expect_create_error(fx, "{\"name\":\"A B\",\"email\":\"a@x.io\"}", 400,
                      "unknown_field", "name");
  /* a hostile key is cut, not echoed whole */
  char *longkey = rep("k", 5000);
  char *body = fmt("{\"%s\":1}", longkey);
  res_t *r = fh_call(fx, "POST", "/contacts", NULL, body);
  assert_int_equal(r->status, 400);
  assert_string_equal(r->code, "unknown_field");
  assert_int_equal(strlen(r->field), CT_ECHO_MAX_BYTES);
  assert_true(r->body_len < 600);
  fh_free(r);
  free(body);
  free(longkey);
}

static void test_contacts_create_server_fields_refused(void **state) {
  fh_fixture *fx = *state;
  expect_create_error(fx,
                      "{\"id\":\"12345678901234567890\",\"first_name\":\"A\","
                      "\"email\":\"a@x.io\"}",
                      400, "invalid_field", "id");
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"a@x.io\","
                      "\"created_at\":\"2020-01-01T00:00:00.000Z\"}",
                      400, "invalid_field", "created_at");
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"a@x.io\","
                      "\"updated_at\":\"x\"}",
                      400, "invalid_field", "updated_at");
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"a@x.io\","
                      "\"version\":1}",
                      400, "invalid_field", "version");
}

static void test_contacts_create_wrong_types(void **state) {
  fh_fixture *fx = *state;
  static const struct {
    const char *json, *field;
  } cases[] = {
      {"{\"first_name\":5,\"email\":\"a@x.io\"}", "first_name"},
      {"{\"first_name\":\"A\",\"email\":true}", "email"},
      {"{\"first_name\":\"A\",\"email\":\"a@x.io\",\"notes\":{\"a\":1}}",
       "notes"},
      {"{\"first_name\":\"A\",\"email\":\"a@x.io\",\"last_name\":[\"x\"]}",
       "last_name"},
      {"{\"first_name\":\"A\",\"email\":\"a@x.io\",\"company\":12}", "company"},
      {"{\"first_name\":\"A\",\"email\":\"a@x.io\",\"phone\":1.5}", "phone"},
      {"{\"first_name\":\"A\",\"email\":\"a@x.io\",\"phone\":-1234567}",
       "phone"},
      {"{\"first_name\":\"A\",\"email\":\"a@x.io\",\"phone\":1e7}", "phone"},
      {"{\"first_name\":\"A\",\"email\":\"a@x.io\",\"phone\":false}", "phone"},
      {"{\"first_name\":\"A\",\"email\":\"a@x.io\",\"job_title\":[]}",
       "job_title"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect_create_error(fx, cases[i].json, 400, "invalid_field",
                        cases[i].field);
}

static void test_contacts_create_phone_integer(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = fh_create(
      fx, "{\"first_name\":\"A\",\"email\":\"a@x.io\",\"phone\":1234567890}");
  res_t *r = get_ok(fx, id);
  assert_string_equal(fh_str(r, "phone", NULL), "1234567890");
  fh_free(r);
  /* an integer is held to the same digit limits */
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"b@x.io\","
                      "\"phone\":12}",
                      400, "invalid_field", "phone");
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"b@x.io\","
                      "\"phone\":123456789012345678901}",
                      400, "invalid_field", "phone");
}

static void test_contacts_create_duplicate_keys(void **state) {
  fh_fixture *fx = *state;
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"first_name\":\"B\","
                      "\"email\":\"a@x.io\"}",
                      400, "duplicate_field", "first_name");
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"a@x.io\","
                      "\"email\":\"a@x.io\"}",
                      400, "duplicate_field", "email");
}

static void test_contacts_body_not_json(void **state) {
  fh_fixture *fx = *state;
  static const char *const not_json[] = {
      "{",
      "{\"first_name\":}",
      "nope",
      "{\"first_name\":\"A\",\"email\":\"a@x.io\"} x",
      "{\"first_name\":\"A\",\"email\":\"a@x.io\"}{}",
      "{'a':1}",
      "   ",
      "{\"first_name\":\"A\",}",
      "{\"first_name\":\"A\" \"email\":\"a@x.io\"}",
      "{\"first_name\":\"A\",\"email\":\"a@x.io\" /* c */}",
  };
  /* Reading stops at the first fault, so JSON broken after a bad key is
   * reported as that key. */
  for (size_t i = 0; i < sizeof not_json / sizeof *not_json; i++)
    expect_create_error(fx, not_json[i], 400, "invalid_json", NULL);
  expect_create_error(fx, NULL, 400, "invalid_json", NULL);
  static const char *const not_object[] = {"[1]",  "\"x\"", "5",
                                           "null", "true",  "[]"};
  for (size_t i = 0; i < sizeof not_object / sizeof *not_object; i++)
    expect_create_error(fx, not_object[i], 400, "invalid_body", NULL);
  /* the same on every route that takes a body */
  expect_error(fx, "POST", "/contacts/batch", NULL, "{\"contacts\":[", 400,
               "invalid_json", NULL);
  expect_error(fx, "PATCH", "/contacts/12345678901234567890", NULL, "[]", 400,
               "invalid_body", NULL);
  expect_error(fx, "DELETE", "/contacts", NULL, "{x", 400, "invalid_json",
               NULL);
  expect_error(fx, "GET", "/contacts", NULL, "{\"searchby\":", 400,
               "invalid_json", NULL);
  expect_error(fx, "GET", "/contacts", NULL, "[1", 400, "invalid_body", NULL);
}

static void test_contacts_invalid_utf8_and_nul(void **state) {
  fh_fixture *fx = *state;
  static const char *const bad[] = {
      "\xff",             /* never valid */
      "\xc0\x80",         /* overlong NUL */
      "\xed\xa0\x80",     /* an encoded surrogate */
      "\xf4\x90\x80\x80", /* past U+10FFFF */
      "\xe2\x82",         /* cut short */
      "a\\u0000b",        /* NUL, escaped */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *body = fmt("{\"first_name\":\"%s\",\"email\":\"a@x.io\"}", bad[i]);
    expect_create_error(fx, body, 400, "invalid_field", "first_name");
    free(body);
  }
  /* in a key: unknown, and never echoed */
  res_t *r = fh_call(fx, "POST", "/contacts", NULL, "{\"\xc0\x80\":1}");
  fh_assert_error(r, 400, "unknown_field", NULL);
  fh_free(r);
  /* a raw control character is not JSON */
  expect_create_error(fx, "{\"first_name\":\"a\x01\",\"email\":\"a@x.io\"}",
                      400, "invalid_json", NULL);
  /* valid multi-byte text passes and comes back as sent */
  uint64_t id = fh_create(
      fx,
      "{\"first_name\":\"J\\u00f6rg \xf0\x9f\x98\x80\",\"email\":\"j@x.io\"}");
  r = get_ok(fx, id);
  assert_string_equal(fh_str(r, "first_name", NULL),
                      "J\xc3\xb6rg \xf0\x9f\x98\x80");
  fh_free(r);
}

/* A \u escape of a surrogate that is not half of a high-low pair stands for
 * no character: refused, never rewritten (yajl alone turns a lone high
 * surrogate into "?" and joins it with any following escape). */
static void test_contacts_lone_surrogate_escapes_refused(void **state) {
  fh_fixture *fx = *state;
  static const char *const bad[] = {
      "x\\ud800y",      /* high, alone */
      "\\ud800\\u0041", /* high, then not a low one */
      "\\ud800\\ud800", /* high, then high */
      "\\udc00",        /* low, alone */
      "\\ude00\\ud83d", /* a pair reversed */
      "ok \\uD83D",     /* upper-case hex, at the end */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *body =
        fmt("{\"first_name\":\"A\",\"email\":\"s%zu@x.io\",\"last_name\":"
            "\"%s\"}",
            i, bad[i]);
    expect_create_error(fx, body, 400, "invalid_field", "last_name");
    free(body);
  }
  /* in an edit, a batch item, a key and a search term */
  uint64_t id = fh_create(fx, "{\"first_name\":\"A\",\"email\":\"e@x.io\"}");
  char *path = fmt("/contacts/%s", id_str(id));
  res_t *r = fh_call(fx, "PATCH", path, NULL, "{\"notes\":\"\\ud800\"}");
  fh_assert_error(r, 400, "invalid_field", "notes");
  fh_free(r);
  free(path);
  r = fh_call(fx, "POST", "/contacts/batch", NULL,
              "{\"contacts\":[{\"first_name\":\"\\ud800\",\"email\":"
              "\"b1@x.io\"},{\"first_name\":\"B\",\"email\":\"b2@x.io\"}]}");
  assert_int_equal(r->status, 200);
  assert_non_null(strstr(r->body, "\"field\":\"first_name\""));
  assert_non_null(strstr(r->body, "{\"id\":"));
  fh_free(r);
  r = fh_call(fx, "POST", "/contacts", NULL,
              "{\"first_name\":\"A\",\"email\":\"k@x.io\",\"\\ud800\":1}");
  fh_assert_error(r, 400, "unknown_field", NULL);
  fh_free(r);
  expect_error(fx, "GET", "/contacts", NULL,
               "{\"searchby\":\"last_name\",\"search\":\"\\ud800\"}", 400,
               "invalid_field", "search");
  /* a pair, an escaped backslash before "ud800", and a lone surrogate in a
   * value that is ignored: all fine, and stored as sent */
  id = fh_create(fx, "{\"first_name\":\"\\ud83d\\ude00\",\"last_name\":"
                     "\"a\\\\ud800\",\"email\":\"p@x.io\"}");
  r = get_ok(fx, id);
  assert_string_equal(fh_str(r, "first_name", NULL), "\xf0\x9f\x98\x80");
  assert_string_equal(fh_str(r, "last_name", NULL), "a\\ud800");
  fh_free(r);
}

static void test_contacts_create_invalid_email_and_phone(void **state) {
  fh_fixture *fx = *state;
  expect_create_error(fx, "{\"first_name\":\"A\",\"email\":\"not-an-email\"}",
                      400, "invalid_field", "email");
  expect_create_error(fx, "{\"first_name\":\"A\",\"email\":\"a b@x.io\"}", 400,
                      "invalid_field", "email");
  expect_create_error(fx, "{\"first_name\":\"A\",\"email\":\"a@localhost\"}",
                      400, "invalid_field", "email");
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"a@x.io\","
                      "\"phone\":\"12a456\"}",
                      400, "invalid_field", "phone");
}

static void test_contacts_create_duplicate_email(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = fh_create(fx, "{\"first_name\":\"A\",\"email\":\"dup@x.io\"}");
  res_t *r = fh_call(fx, "POST", "/contacts", NULL,
                     "{\"first_name\":\"B\",\"email\":\"DUP@X.IO\"}");
  fh_assert_error(r, 409, "duplicate_email", "email");
  assert_string_equal(fh_str(r, "error", "id", NULL), id_str(id));
  fh_free(r);
  /* another account may hold the same email */
  fx->account = 2;
  fh_create(fx, "{\"first_name\":\"C\",\"email\":\"dup@x.io\"}");
}

/* ------------------------------------------------------------- limits */

static void create_field(fh_fixture *fx, const char *field, const char *value,
                         int status) {
  static int n;
  char *body =
      fmt("{\"first_name\":\"F\",\"email\":\"lim%d@x.io\",\"%s\":\"%s\"}", n++,
          field, value);
  if (!strcmp(field, "first_name") || !strcmp(field, "email"))
    body = (free(body),
            !strcmp(field, "email")
                ? fmt("{\"first_name\":\"F\",\"email\":\"%s\"}", value)
                : fmt("{\"first_name\":\"%s\",\"email\":\"lim%d@x.io\"}", value,
                      n++));
  res_t *r = fh_call(fx, "POST", "/contacts", NULL, body);
  if (r->status != status)
    fprintf(stderr, "%s (%zu bytes): %s\n", field, strlen(value), r->body);
  assert_int_equal(r->status, status);
  if (status == 400) assert_string_equal(r->field, field);
  fh_free(r);
  free(body);
}

static void test_contacts_limit_names_in_characters(void **state) {
  fh_fixture *fx = *state;
  static const char *const fields[] = {"first_name", "last_name", "company",
                                       "job_title"};
  /* characters, not bytes: 256 two-byte and four-byte code points pass */
  char *at2 = rep("\xc3\xa9", CS_NAME_MAX_CHARS);
  char *past2 = rep("\xc3\xa9", CS_NAME_MAX_CHARS + 1);
  char *at4 = rep("\xf0\x9f\x98\x80", CS_NAME_MAX_CHARS);
  char *past1 = rep("a", CS_NAME_MAX_CHARS + 1);
  char *padded = fmt("  %s  ", at2); /* trimmed before counting */
  for (size_t i = 0; i < 4; i++) {
    create_field(fx, fields[i], at2, 200);
    create_field(fx, fields[i], at4, 200);
    create_field(fx, fields[i], padded, 200);
    create_field(fx, fields[i], past2, 400);
    create_field(fx, fields[i], past1, 400);
  }
  free(at2), free(past2), free(at4), free(past1), free(padded);
}

static void test_contacts_limit_email_bytes(void **state) {
  fh_fixture *fx = *state;
  const char *domain = "@example.com";
  char *local = rep("a", CS_EMAIL_MAX_BYTES - strlen(domain));
  char *at = fmt("%s%s", local, domain);
  char *past = fmt("b%s%s", local, domain);
  assert_int_equal(strlen(at), CS_EMAIL_MAX_BYTES);
  create_field(fx, "email", at, 200);
  create_field(fx, "email", past, 400);
  free(local), free(at), free(past);
}

static void test_contacts_limit_phone_digits(void **state) {
  fh_fixture *fx = *state;
  char *min = rep("1", CS_PHONE_MIN_DIGITS);
  char *below = rep("1", CS_PHONE_MIN_DIGITS - 1);
  char *max = rep("2", CS_PHONE_MAX_DIGITS);
  char *above = rep("2", CS_PHONE_MAX_DIGITS + 1);
  create_field(fx, "phone", min, 200);
  create_field(fx, "phone", max, 200);
  create_field(fx, "phone", below, 400);
  create_field(fx, "phone", above, 400);
  /* punctuation does not count as digits, but the whole string may have
   * CS_PHONE_MAX_BYTES and no more */
  create_field(fx, "phone", "+1 (2) -.", 400);
  char *dashes = rep("-", CS_PHONE_MAX_BYTES - 6);
  char *longest = fmt("123%s456", dashes);
  char *past = fmt("123-%s456", dashes);
  assert_int_equal(strlen(longest), CS_PHONE_MAX_BYTES);
  create_field(fx, "phone", longest, 200);
  create_field(fx, "phone", past, 400);
  char *spaced = rep("2 ", CS_PHONE_MAX_DIGITS); /* every digit separated */
  create_field(fx, "phone", spaced, 200);
  free(dashes), free(longest), free(past), free(spaced);
  create_field(fx, "phone", "+1 (234) 567-890", 200);
  /* integers alike */
  char *body =
      fmt("{\"first_name\":\"F\",\"email\":\"pi1@x.io\",\"phone\":%s}", max);
  res_t *r = fh_call(fx, "POST", "/contacts", NULL, body);
  assert_int_equal(r->status, 200);
  fh_free(r);
  free(body);
  body =
      fmt("{\"first_name\":\"F\",\"email\":\"pi2@x.io\",\"phone\":%s}", below);
  expect_create_error(fx, body, 400, "invalid_field", "phone");
  free(body);
  free(min), free(below), free(max), free(above);
}

static void test_contacts_limit_notes_bytes(void **state) {
  fh_fixture *fx = *state;
  char *at = rep("n", CS_NOTES_MAX_BYTES);
  char *past = rep("n", CS_NOTES_MAX_BYTES + 1);
  create_field(fx, "notes", at, 200);
  create_field(fx, "notes", past, 400);
  free(at), free(past);
}

/* --------------------------------------------------------------- edit */

static uint64_t make_jane(fh_fixture *fx) {
  return fh_create(fx, "{\"first_name\":\"Jane\",\"last_name\":\"Roe\","
                       "\"email\":\"jane@x.io\",\"phone\":\"555 0100\","
                       "\"company\":\"Acme\"}");
}

static void test_contacts_edit_both_spellings(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  static const char *const forms[] = {
      "{\"contact_id\":\"%s\",\"update_fields\":{\"company\":\"C1\"}}",
      "{\"contactID\":\"%s\",\"updateFields\":{\"company\":\"C2\"}}",
      "{\"contact_id\":\"%s\",\"updateFields\":{\"company\":\"C3\"}}",
      "{\"updateFields\":{\"company\":\"C4\"},\"contactID\":\"%s\"}",
  };
  for (size_t i = 0; i < 4; i++) {
    char *body = fmt(forms[i], id_str(id));
    res_t *r = fh_call(fx, "POST", "/contacts", NULL, body);
    assert_int_equal(r->status, 200);
    assert_string_equal(fh_str(r, "id", NULL), id_str(id));
    fh_free(r);
    free(body);
    r = get_ok(fx, id);
    char want[8];
    snprintf(want, sizeof want, "C%zu", i + 1);
    assert_string_equal(fh_str(r, "company", NULL), want);
    assert_string_equal(fh_str(r, "first_name", NULL), "Jane");
    fh_free(r);
  }
  /* the original specification's example: phone as an integer */
  char *body = fmt("{\"contactID\":\"%s\",\"updateFields\":{\"email\":"
                   "\"example@example.com\",\"phone\":1234567890}}",
                   id_str(id));
  res_t *r = fh_call(fx, "POST", "/contacts", NULL, body);
  assert_int_equal(r->status, 200);
  fh_free(r);
  free(body);
  r = get_ok(fx, id);
  assert_string_equal(fh_str(r, "email", NULL), "example@example.com");
  assert_string_equal(fh_str(r, "phone", NULL), "1234567890");
  fh_free(r);
}

static void test_contacts_edit_updates_updated_at_only(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  res_t *before = get_ok(fx, id);
  char *body =
      fmt("{\"contact_id\":\"%s\",\"update_fields\":{\"notes\":\"n\"}}",
          id_str(id));
  fh_free(fh_call(fx, "POST", "/contacts", NULL, body));
  free(body);
  res_t *after = get_ok(fx, id);
  assert_string_equal(fh_str(after, "created_at", NULL),
                      fh_str(before, "created_at", NULL));
  assert_true(strcmp(fh_str(after, "updated_at", NULL),
                     fh_str(before, "updated_at", NULL)) >= 0);
  fh_free(before);
  fh_free(after);
}

static void test_contacts_edit_name_splits(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char *body = fmt("{\"contact_id\":\"%s\",\"update_fields\":"
                   "{\"name\":\"  Mary   Ann  Smith \"}}",
                   id_str(id));
  res_t *r = fh_call(fx, "POST", "/contacts", NULL, body);
  assert_int_equal(r->status, 200);
  fh_free(r);
  free(body);
  r = get_ok(fx, id);
  assert_string_equal(fh_str(r, "first_name", NULL), "Mary");
  assert_string_equal(fh_str(r, "last_name", NULL), "Ann  Smith");
  fh_free(r);

  /* one word: last_name is removed */
  char p[64];
  r = fh_call(fx, "PATCH", id_path(id, p), NULL, "{\"name\":\"Cher\"}");
  assert_int_equal(r->status, 200);
  fh_free(r);
  r = get_ok(fx, id);
  assert_string_equal(fh_str(r, "first_name", NULL), "Cher");
  assert_null(fh_str(r, "last_name", NULL));
  fh_free(r);

  /* name with first_name or last_name is ambiguous */
  expect_error(fx, "PATCH", id_path(id, p), NULL,
               "{\"name\":\"A B\",\"first_name\":\"C\"}", 400, "invalid_field",
               "name");
  expect_error(fx, "PATCH", id_path(id, p), NULL,
               "{\"last_name\":\"C\",\"name\":\"A B\"}", 400, "invalid_field",
               "name");
  expect_error(fx, "PATCH", id_path(id, p), NULL, "{\"name\":\"  \"}", 400,
               "invalid_field", "name");
  expect_error(fx, "PATCH", id_path(id, p), NULL, "{\"name\":null}", 400,
               "invalid_field", "name");
  expect_error(fx, "PATCH", id_path(id, p), NULL, "{\"name\":7}", 400,
               "invalid_field", "name");
  char *longer = rep("x", CS_NAME_MAX_CHARS + 1);
  body = fmt("{\"name\":\"A %s\"}", longer);
  expect_error(fx, "PATCH", id_path(id, p), NULL, body, 400, "invalid_field",
               "name");
  free(body);
  free(longer);
}

static void test_contacts_edit_null_removes(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char p[64];
  res_t *r = fh_call(fx, "PATCH", id_path(id, p), NULL,
                     "{\"phone\":null,\"last_name\":\"\",\"notes\":\"kept\"}");
  assert_int_equal(r->status, 200);
  fh_free(r);
  r = get_ok(fx, id);
  assert_null(fh_str(r, "phone", NULL));
  assert_null(fh_str(r, "last_name", NULL));
  assert_string_equal(fh_str(r, "notes", NULL), "kept");
  assert_string_equal(fh_str(r, "company", NULL), "Acme");
  fh_free(r);
  /* required fields cannot be removed or emptied */
  expect_error(fx, "PATCH", id_path(id, p), NULL, "{\"first_name\":null}", 400,
               "invalid_field", "first_name");
  expect_error(fx, "PATCH", id_path(id, p), NULL, "{\"email\":null}", 400,
               "invalid_field", "email");
  expect_error(fx, "PATCH", id_path(id, p), NULL, "{\"first_name\":\" \"}", 400,
               "invalid_field", "first_name");
  expect_error(fx, "PATCH", id_path(id, p), NULL, "{\"email\":\"\"}", 400,
               "invalid_field", "email");
}

static void test_contacts_edit_empty_fields(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char *body = fmt("{\"contact_id\":\"%s\",\"update_fields\":{}}", id_str(id));
  expect_create_error(fx, body, 400, "empty_update", "update_fields");
  free(body);
  body = fmt("{\"contactID\":\"%s\",\"updateFields\":{}}", id_str(id));
  expect_create_error(fx, body, 400, "empty_update", "updateFields");
  free(body);
  char p[64];
  expect_error(fx, "PATCH", id_path(id, p), NULL, "{}", 400, "empty_update",
               NULL);
  expect_error(fx, "PATCH", id_path(id, p), NULL, "", 400, "invalid_json",
               NULL);
}

static void test_contacts_edit_shape_errors(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char *body;
  /* no update_fields */
  body = fmt("{\"contact_id\":\"%s\"}", id_str(id));
  expect_create_error(fx, body, 400, "missing_field", "update_fields");
  free(body);
  /* a contact field beside contact_id belongs in update_fields */
  body = fmt("{\"contact_id\":\"%s\",\"email\":\"n@x.io\","
             "\"update_fields\":{\"company\":\"X\"}}",
             id_str(id));
  expect_create_error(fx, body, 400, "unknown_field", "email");
  free(body);
  /* update_fields without contact_id is no create */
  expect_create_error(fx,
                      "{\"first_name\":\"A\",\"email\":\"a@x.io\","
                      "\"update_fields\":{\"company\":\"X\"}}",
                      400, "unknown_field", "update_fields");
  /* both spellings at once are one key given twice */
  body = fmt("{\"contact_id\":\"%s\",\"contactID\":\"%s\","
             "\"update_fields\":{\"company\":\"X\"}}",
             id_str(id), id_str(id));
  expect_create_error(fx, body, 400, "duplicate_field", "contactID");
  free(body);
  body = fmt("{\"contact_id\":\"%s\",\"update_fields\":{\"company\":\"X\"},"
             "\"updateFields\":{\"company\":\"Y\"}}",
             id_str(id));
  expect_create_error(fx, body, 400, "duplicate_field", "updateFields");
  free(body);
  /* wrong types */
  body = fmt("{\"contact_id\":\"%s\",\"update_fields\":[1]}", id_str(id));
  expect_create_error(fx, body, 400, "invalid_field", "update_fields");
  free(body);
  expect_create_error(fx,
                      "{\"contact_id\":true,\"update_fields\":{\"company\":"
                      "\"X\"}}",
                      400, "invalid_field", "contact_id");
  /* unknown and server-set fields inside update_fields */
  body =
      fmt("{\"contact_id\":\"%s\",\"update_fields\":{\"age\":3}}", id_str(id));
  expect_create_error(fx, body, 400, "unknown_field", "age");
  free(body);
  body = fmt("{\"contact_id\":\"%s\",\"update_fields\":{\"id\":\"1\"}}",
             id_str(id));
  expect_create_error(fx, body, 400, "invalid_field", "id");
  free(body);
  body = fmt("{\"contact_id\":\"%s\",\"update_fields\":{\"company\":\"A\","
             "\"company\":\"B\"}}",
             id_str(id));
  expect_create_error(fx, body, 400, "duplicate_field", "company");
  free(body);
  /* a limit past its edge in an edit */
  char *longer = rep("x", CS_NAME_MAX_CHARS + 1);
  body = fmt("{\"contact_id\":\"%s\",\"update_fields\":{\"company\":\"%s\"}}",
             id_str(id), longer);
  expect_create_error(fx, body, 400, "invalid_field", "company");
  free(body);
  free(longer);
}

static void test_contacts_edit_contact_id_as_number(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char *body = fmt("{\"contact_id\":%s,\"update_fields\":{\"company\":\"N\"}}",
                   id_str(id));
  res_t *r = fh_call(fx, "POST", "/contacts", NULL, body);
  assert_int_equal(r->status, 200);
  fh_free(r);
  free(body);
}

static void test_contacts_edit_unknown_contact(void **state) {
  fh_fixture *fx = *state;
  make_jane(fx);
  static const char *const ids[] = {
      "18000000000000000000", /* well formed, never handed out */
      "123",                  /* too short */
      "01234567890123456789", /* leading zero */
      "99999999999999999999", /* past 64 bits */
      "abc",
      "",
  };
  for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
    char *body = fmt("{\"contact_id\":\"%s\",\"update_fields\":"
                     "{\"company\":\"X\"}}",
                     ids[i]);
    expect_create_error(fx, body, 404, "not_found", NULL);
    free(body);
    char p[64];
    snprintf(p, sizeof p, "/contacts/%s", ids[i]);
    if (ids[i][0]) {
      expect_error(fx, "PATCH", p, NULL, "{\"company\":\"X\"}", 404,
                   "not_found", NULL);
      expect_error(fx, "GET", p, NULL, NULL, 404, "not_found", NULL);
      expect_error(fx, "DELETE", p, NULL, NULL, 404, "not_found", NULL);
    }
    body = fmt("{\"contact_id\":\"%s\"}", ids[i]);
    expect_error(fx, "DELETE", "/contacts", NULL, body, 404, "not_found", NULL);
    free(body);
  }
}

static void test_contacts_edit_duplicate_email(void **state) {
  fh_fixture *fx = *state;
  uint64_t a = fh_create(fx, "{\"first_name\":\"A\",\"email\":\"a@x.io\"}");
  uint64_t b = fh_create(fx, "{\"first_name\":\"B\",\"email\":\"b@x.io\"}");
  char p[64];
  res_t *r =
      fh_call(fx, "PATCH", id_path(b, p), NULL, "{\"email\":\"A@x.io\"}");
  fh_assert_error(r, 409, "duplicate_email", "email");
  assert_string_equal(fh_str(r, "error", "id", NULL), id_str(a));
  fh_free(r);
  /* its own email again, in another case, is no conflict */
  r = fh_call(fx, "PATCH", id_path(b, p), NULL, "{\"email\":\"B@x.io\"}");
  assert_int_equal(r->status, 200);
  fh_free(r);
}

static void test_contacts_edit_is_atomic(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char p[64];
  /* the bad email fails the whole change: company stays */
  res_t *r = fh_call(fx, "PATCH", id_path(id, p), NULL,
                     "{\"company\":\"New\",\"email\":\"nope\"}");
  fh_assert_error(r, 400, "invalid_field", "email");
  fh_free(r);
  r = get_ok(fx, id);
  assert_string_equal(fh_str(r, "company", NULL), "Acme");
  fh_free(r);
}

static void test_contacts_patch(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char p[64];
  res_t *r = fh_call(fx, "PATCH", id_path(id, p), NULL,
                     "{\"job_title\":\"CTO\",\"phone\":5551234}");
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_str(r, "id", NULL), id_str(id));
  fh_free(r);
  r = get_ok(fx, id);
  assert_string_equal(fh_str(r, "job_title", NULL), "CTO");
  assert_string_equal(fh_str(r, "phone", NULL), "5551234");
  fh_free(r);
  /* PATCH takes the fields object, not the edit envelope */
  expect_error(fx, "PATCH", id_path(id, p), NULL,
               "{\"update_fields\":{\"company\":\"X\"}}", 400, "unknown_field",
               "update_fields");
}

/* ------------------------------------------------------------- delete */

static void test_contacts_delete_by_body_and_path(void **state) {
  fh_fixture *fx = *state;
  static const char *const forms[] = {"{\"contact_id\":\"%s\"}",
                                      "{\"contactID\":\"%s\"}", NULL};
  for (size_t i = 0; i < 3; i++) {
    uint64_t id = fh_create(fx, "{\"first_name\":\"D\",\"email\":\"d@x.io\"}");
    char p[64];
    res_t *r;
    char *body = forms[i] ? fmt(forms[i], id_str(id)) : NULL;
    if (body)
      r = fh_call(fx, "DELETE", "/contacts", NULL, body);
    else
      r = fh_call(fx, "DELETE", id_path(id, p), NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->content_type, "text/plain; charset=utf-8");
    assert_int_equal(r->body_len, strlen("Document deleted successfully"));
    assert_memory_equal(r->body, "Document deleted successfully", r->body_len);
    fh_free(r);
    /* gone, and deleting again is 404 */
    expect_error(fx, "GET", id_path(id, p), NULL, NULL, 404, "not_found", NULL);
    if (body)
      expect_error(fx, "DELETE", "/contacts", NULL, body, 404, "not_found",
                   NULL);
    else
      expect_error(fx, "DELETE", id_path(id, p), NULL, NULL, 404, "not_found",
                   NULL);
    free(body);
    /* the email is free again (the loop reuses it) */
  }
}

static void test_contacts_delete_body_errors(void **state) {
  fh_fixture *fx = *state;
  expect_error(fx, "DELETE", "/contacts", NULL, NULL, 400, "missing_field",
               "contact_id");
  expect_error(fx, "DELETE", "/contacts", NULL, "{}", 400, "missing_field",
               "contact_id");
  expect_error(fx, "DELETE", "/contacts", NULL,
               "{\"contact_id\":\"12345678901234567890\",\"why\":\"x\"}", 400,
               "unknown_field", "why");
  expect_error(fx, "DELETE", "/contacts", NULL, "{\"contact_id\":[]}", 400,
               "invalid_field", "contact_id");
  expect_error(fx, "DELETE", "/contacts", NULL,
               "{\"contact_id\":\"12345678901234567890\","
               "\"contactID\":\"12345678901234567890\"}",
               400, "duplicate_field", "contactID");
}

/* ------------------------------------------------------------ accounts */

/* Another account's contact answers byte for byte as a missing one. */
static void test_contacts_other_account_is_not_found(void **state) {
  fh_fixture *fx = *state;
  fx->account = 7;
  uint64_t theirs = fh_create(
      fx, "{\"first_name\":\"T\",\"email\":\"t@x.io\",\"company\":\"Them\"}");
  uint64_t missing = theirs + 1000;
  fx->account = 8;
  fh_create(fx, "{\"first_name\":\"M\",\"email\":\"m@x.io\"}");

  for (int round = 0; round < 2; round++) {
    uint64_t ids[2] = {theirs, missing};
    char *answers[2][7];
    int statuses[2][7];
    for (int k = 0; k < 2; k++) {
      char p[64], *body;
      id_path(ids[k], p);
      res_t *r[7];
      r[0] = fh_call(fx, "GET", p, NULL, NULL);
      r[1] = fh_call(fx, "PATCH", p, NULL, "{\"company\":\"Mine\"}");
      body = fmt("{\"contact_id\":\"%s\",\"update_fields\":{\"company\":"
                 "\"Mine\"}}",
                 id_str(ids[k]));
      r[2] = fh_call(fx, "POST", "/contacts", NULL, body);
      free(body);
      body = fmt("{\"contactID\":\"%s\"}", id_str(ids[k]));
      r[3] = round == 1 ? fh_call(fx, "DELETE", "/contacts", NULL, body)
                        : fh_call(fx, "GET", p, NULL, NULL);
      free(body);
      r[4] = round == 1 ? fh_call(fx, "DELETE", p, NULL, NULL)
                        : fh_call(fx, "GET", p, NULL, NULL);
      char *q = fmt("searchby=id&search=%s", id_str(ids[k]));
      r[5] = fh_call(fx, "GET", "/contacts", q, NULL);
      free(q);
      r[6] =
          fh_call(fx, "GET", "/contacts", "searchby=company&search=Them", NULL);
      for (int i = 0; i < 7; i++) {
        statuses[k][i] = r[i]->status;
        answers[k][i] = strdup(r[i]->body);
        fh_free(r[i]);
      }
    }
    for (int i = 0; i < 7; i++) {
      assert_int_equal(statuses[0][i], statuses[1][i]);
      assert_string_equal(answers[0][i], answers[1][i]);
      free(answers[0][i]);
      free(answers[1][i]);
    }
    assert_int_equal(statuses[0][0], 404);
    assert_int_equal(statuses[0][5], 200);
  }
  /* and the owner still has it, unchanged */
  fx->account = 7;
  res_t *r = get_ok(fx, theirs);
  assert_string_equal(fh_str(r, "company", NULL), "Them");
  fh_free(r);
}

/* ------------------------------------------------------------- search */

static void seed_people(fh_fixture *fx) {
  fh_create(fx, "{\"first_name\":\"Jos\xc3\xa9\",\"last_name\":\"Garc\xc3\xad"
                "a\",\"email\":\"jose@example.com\",\"phone\":\"+1 (234) "
                "567-890\",\"company\":\"Example Inc.\",\"job_title\":"
                "\"Sales Lead\",\"notes\":\"Met at the Berlin fair; likes "
                "jazz.\"}");
  fh_create(fx, "{\"first_name\":\"Joseph\",\"last_name\":\"Smith\","
                "\"email\":\"joe@other.org\",\"company\":\"Example Inc.\","
                "\"notes\":\"jazz and blues\"}");
  fh_create(fx, "{\"first_name\":\"Ann\",\"email\":\"ann@example.com\","
                "\"company\":\"Other Ltd\",\"notes\":\"Berlin office\"}");
}

static long long search_total(fh_fixture *fx, const char *query,
                              const char *body) {
  res_t *r = fh_call(fx, "GET", "/contacts", query, body);
  if (r->status != 200) fprintf(stderr, "search %s: %s\n", query, r->body);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type, "application/json");
  long long total = int_at(r, "total");
  assert_int_equal(int_at(r, "count"), (long long)array_len(r, "contacts"));
  fh_free(r);
  return total;
}

static void test_contacts_search_query_string(void **state) {
  fh_fixture *fx = *state;
  seed_people(fx);
  res_t *r = fh_call(fx, "GET", "/contacts",
                     "searchby=company&search=Example%20Inc.", NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(int_at(r, "count"), 2);
  assert_int_equal(int_at(r, "total"), 2);
  const char *np[] = {"next_cursor", NULL};
  yajl_val nc = yajl_tree_get(fh_json(r), np, yajl_t_any);
  assert_non_null(nc);
  assert_true(YAJL_IS_NULL(nc));
  /* full objects, in id order */
  yajl_val a = page_at(r, 0), b = page_at(r, 1);
  assert_string_equal(obj_str(a, "first_name"), "Jos\xc3\xa9");
  assert_string_equal(obj_str(b, "first_name"), "Joseph");
  assert_true(strcmp(obj_str(a, "id"), obj_str(b, "id")) < 0);
  assert_non_null(obj_str(a, "created_at"));
  assert_string_equal(obj_str(a, "phone"), "+1 (234) 567-890");
  fh_free(r);
  /* '+' in a query string is a space */
  assert_int_equal(
      search_total(fx, "searchby=company&search=example+inc.", NULL), 2);
}

static void test_contacts_search_json_body_and_query_wins(void **state) {
  fh_fixture *fx = *state;
  seed_people(fx);
  /* the original specification's example */
  assert_int_equal(
      search_total(fx, NULL,
                   "{\"searchby\": \"company\", \"search\": \"Example Inc.\"}"),
      2);
  /* the query string wins, parameter by parameter */
  assert_int_equal(search_total(fx, "search=Other%20Ltd",
                                "{\"searchby\":\"company\",\"search\":"
                                "\"Example Inc.\"}"),
                   1);
  assert_int_equal(search_total(fx, "searchby=first_name&search=ann",
                                "{\"searchby\":\"company\",\"search\":"
                                "\"Example Inc.\"}"),
                   1);
  /* a bad body value overridden by the query string does not matter */
  assert_int_equal(
      search_total(fx, "searchby=company&search=Other+Ltd&limit=5&match=exact",
                   "{\"limit\":0,\"match\":\"fuzzy\"}"),
      1);
  /* limit and search may be JSON numbers */
  assert_int_equal(search_total(fx, NULL,
                                "{\"searchby\":\"phone\",\"search\":"
                                "1234567890,\"limit\":1}"),
                   1);
  /* null means not given */
  assert_int_equal(
      search_total(fx, NULL,
                   "{\"searchby\":\"company\",\"search\":"
                   "\"Other Ltd\",\"cursor\":null,\"match\":null}"),
      1);
}

static void test_contacts_search_errors(void **state) {
  fh_fixture *fx = *state;
  seed_people(fx);
  expect_error(fx, "GET", "/contacts", NULL, NULL, 400, "missing_field",
               "searchby");
  expect_error(fx, "GET", "/contacts", "search=x", NULL, 400, "missing_field",
               "searchby");
  res_t *r = fh_call(fx, "GET", "/contacts", "searchby=age&search=3", NULL);
  fh_assert_error(r, 400, "invalid_searchby", "searchby");
  const char *msg = fh_str(r, "error", "message", NULL);
  static const char *const valid[] = {"id",        "first_name", "last_name",
                                      "email",     "phone",      "company",
                                      "job_title", "notes"};
  for (size_t i = 0; i < 8; i++)
    assert_non_null(strstr(msg, valid[i]));
  fh_free(r);
  expect_error(fx, "GET", "/contacts", "searchby=ID&search=3", NULL, 400,
               "invalid_searchby", "searchby");
  expect_error(fx, "GET", "/contacts", "searchby=email", NULL, 400,
               "missing_field", "search");
  expect_error(fx, "GET", "/contacts", "searchby=email&search=", NULL, 400,
               "invalid_field", "search");
  expect_error(fx, "GET", "/contacts", "searchby=email&search=%20%20", NULL,
               400, "invalid_field", "search");
  expect_error(fx, "GET", "/contacts", "searchby=email&search=%C0%80", NULL,
               400, "invalid_field", "search");
  expect_error(fx, "GET", "/contacts", "searchby=email&search=a%00b", NULL, 400,
               "invalid_field", "search");
  expect_error(fx, "GET", "/contacts", "searchby=email&search=a&match=fuzzy",
               NULL, 400, "invalid_field", "match");
  expect_error(fx, "GET", "/contacts", "searchby=email&search=a&match=EXACT",
               NULL, 400, "invalid_field", "match");
  static const char *const bad_limits[] = {
      "0", "1001", "-1", "abc", "1.5", "", "99999999999999999999"};
  for (size_t i = 0; i < sizeof bad_limits / sizeof *bad_limits; i++) {
    char *q = fmt("searchby=email&search=a&limit=%s", bad_limits[i]);
    expect_error(fx, "GET", "/contacts", q, NULL, 400, "invalid_field",
                 "limit");
    free(q);
  }
  expect_error(fx, "GET", "/contacts", NULL,
               "{\"searchby\":\"email\",\"search\":\"a\",\"limit\":1001}", 400,
               "invalid_field", "limit");
  expect_error(fx, "GET", "/contacts", NULL,
               "{\"searchby\":\"email\",\"search\":\"a\",\"limit\":true}", 400,
               "invalid_field", "limit");
  static const char *const bad_cursors[] = {"x",
                                            "AAAAAAAAAAAA",
                                            "AQAAAAAAAAAA" /* id 0 */,
                                            "AQAAAAAAAAA!",
                                            "AQAAAAAAAAAAA",
                                            "%2B%2B%2B",
                                            "AgCKxyMEiegA" /* version 2 */};
  for (size_t i = 0; i < sizeof bad_cursors / sizeof *bad_cursors; i++) {
    char *q = fmt("searchby=email&search=a&cursor=%s", bad_cursors[i]);
    expect_error(fx, "GET", "/contacts", q, NULL, 400, "invalid_cursor",
                 "cursor");
    free(q);
  }
  expect_error(fx, "GET", "/contacts", NULL,
               "{\"searchby\":\"email\",\"search\":\"a\",\"sort\":\"id\"}", 400,
               "unknown_field", "sort");
  expect_error(fx, "GET", "/contacts", NULL,
               "{\"searchby\":\"email\",\"searchby\":\"phone\",\"search\":"
               "\"a\"}",
               400, "duplicate_field", "searchby");
  expect_error(fx, "GET", "/contacts", NULL,
               "{\"searchby\":[\"email\"],\"search\":\"a\"}", 400,
               "invalid_field", "searchby");
  expect_error(fx, "GET", "/contacts", "searchby=email&searchby=phone&search=a",
               NULL, 400, "duplicate_field", "searchby");
  /* unknown query parameters are ignored */
  assert_int_equal(
      search_total(fx, "searchby=first_name&search=ann&_=12345", NULL), 1);
}

static void test_contacts_search_limit_edges(void **state) {
  fh_fixture *fx = *state;
  seed_people(fx);
  res_t *r = fh_call(fx, "GET", "/contacts",
                     "searchby=company&search=example%20inc.&limit=1", NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(int_at(r, "count"), 1);
  assert_int_equal(int_at(r, "total"), 2);
  assert_non_null(fh_str(r, "next_cursor", NULL));
  fh_free(r);
  r = fh_call(fx, "GET", "/contacts",
              "searchby=company&search=example%20inc.&limit=1000", NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(int_at(r, "count"), 2);
  fh_free(r);
}

static void test_contacts_search_modes_and_folding(void **state) {
  fh_fixture *fx = *state;
  seed_people(fx);
  static const struct {
    const char *query;
    long long total;
  } cases[] = {
      /* exact on folded text: case, accents, outer and inner whitespace */
      {"searchby=first_name&search=%20%20JOS%C3%89%20%20", 1},
      {"searchby=first_name&search=jose", 1},
      {"searchby=first_name&search=jos", 0},
      {"searchby=last_name&search=GARCIA", 1},
      {"searchby=company&search=example%20%20%20inc.", 2},
      {"searchby=first_name&search=JOS&match=prefix", 2},
      {"searchby=first_name&search=Joseph&match=exact", 1},
      /* notes default to words, in any order */
      {"searchby=notes&search=jazz", 2},
      {"searchby=notes&search=berlin%20JAZZ", 1},
      {"searchby=notes&search=berlin&match=exact", 0},
      {"searchby=notes&search=Berlin%20office&match=exact", 1},
      {"searchby=notes&search=blu&match=prefix", 0},
      {"searchby=notes&search=jazz%20and&match=prefix", 1},
      /* email: the whole folded address, or its words */
      {"searchby=email&search=JOSE@EXAMPLE.COM", 1},
      {"searchby=email&search=example.com", 0},
      {"searchby=email&search=example.com&match=words", 2},
      {"searchby=email&search=jo&match=prefix", 2},
      /* phone: digits only */
      {"searchby=phone&search=1234567890", 1},
      {"searchby=phone&search=%2B1%20(234)%20567-890", 1},
      {"searchby=phone&search=123&match=prefix", 1},
      {"searchby=job_title&search=sales%20lead", 1},
      {"searchby=job_title&search=lead&match=words", 1},
      /* no match is an empty page, not 404 */
      {"searchby=company&search=Nobody", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    long long got = search_total(fx, cases[i].query, NULL);
    if (got != cases[i].total)
      fprintf(stderr, "%s: %lld, want %lld\n", cases[i].query, got,
              cases[i].total);
    assert_int_equal(got, cases[i].total);
  }
}

static void test_contacts_search_empty_page(void **state) {
  fh_fixture *fx = *state;
  res_t *r =
      fh_call(fx, "GET", "/contacts", "searchby=email&search=a@b.co", NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->body, "{\"contacts\":[],\"count\":0,\"total\":0,"
                               "\"next_cursor\":null}");
  fh_free(r);
}

static void test_contacts_search_by_id(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char *q = fmt("searchby=id&search=%s", id_str(id));
  res_t *r = fh_call(fx, "GET", "/contacts", q, NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(int_at(r, "total"), 1);
  assert_string_equal(obj_str(page_at(r, 0), "id"), id_str(id));
  fh_free(r);
  free(q);
  assert_int_equal(search_total(fx, "searchby=id&search=12", NULL), 0);
  assert_int_equal(search_total(fx, "searchby=id&search=abc", NULL), 0);
}

/* Walks every page of a search; checks order, no duplicates, totals. */
static size_t walk(fh_fixture *fx, const char *base, int limit, uint64_t *seen,
                   size_t seen_cap, void (*between)(fh_fixture *, int),
                   long long *first_total) {
  char cursor[64] = "";
  size_t n = 0;
  int page = 0;
  for (;;) {
    char *q = cursor[0] ? fmt("%s&limit=%d&cursor=%s", base, limit, cursor)
                        : fmt("%s&limit=%d", base, limit);
    res_t *r = fh_call(fx, "GET", "/contacts", q, NULL);
    free(q);
    assert_int_equal(r->status, 200);
    size_t count = array_len(r, "contacts");
    assert_int_equal(int_at(r, "count"), (long long)count);
    assert_true(count <= (size_t)limit);
    if (page == 0 && first_total) *first_total = int_at(r, "total");
    for (size_t i = 0; i < count; i++) {
      const char *s = obj_str(page_at(r, i), "id");
      uint64_t id;
      assert_int_equal(cs_id_parse(s, strlen(s), &id), 0);
      if (n > 0) assert_true(id > seen[n - 1]); /* id order, no repeats */
      assert_true(n < seen_cap);
      seen[n++] = id;
    }
    const char *next = fh_str(r, "next_cursor", NULL);
    if (!next) {
      fh_free(r);
      break;
    }
    assert_int_equal(count, (size_t)limit);
    assert_true(strlen(next) < sizeof cursor);
    strcpy(cursor, next);
    fh_free(r);
    if (between) between(fx, page);
    page++;
  }
  return n;
}

static void test_contacts_search_cursor_walks_all(void **state) {
  fh_fixture *fx = *state;
  uint64_t made[53];
  for (int i = 0; i < 53; i++) {
    char *body = fmt("{\"first_name\":\"P%d\",\"email\":\"p%d@x.io\","
                     "\"company\":\"Paged Co\"}",
                     i, i);
    made[i] = fh_create(fx, body);
    free(body);
  }
  fh_create(fx, "{\"first_name\":\"Q\",\"email\":\"q@x.io\","
                "\"company\":\"Other\"}");
  static const int limits[] = {1, 7, 53, 100};
  for (size_t l = 0; l < 4; l++) {
    uint64_t seen[64];
    long long total = 0;
    size_t n = walk(fx, "searchby=company&search=paged%20co", limits[l], seen,
                    64, NULL, &total);
    assert_int_equal(n, 53);
    assert_int_equal(total, 53);
    assert_memory_equal(seen, made, sizeof made);
  }
}

static int writer_serial;

/* Between pages: a new match (after the cursor) and a deleted one. */
static void write_between(fh_fixture *fx, int page) {
  char *body = fmt("{\"first_name\":\"W%d\",\"email\":\"w%d@x.io\","
                   "\"company\":\"Walk Co\"}",
                   writer_serial, writer_serial);
  writer_serial++;
  fh_create(fx, body);
  free(body);
  (void)page;
}

static void test_contacts_search_cursor_survives_writes(void **state) {
  fh_fixture *fx = *state;
  uint64_t made[30];
  for (int i = 0; i < 30; i++) {
    char *body = fmt("{\"first_name\":\"W\",\"email\":\"base%d@x.io\","
                     "\"company\":\"Walk Co\"}",
                     i);
    made[i] = fh_create(fx, body);
    free(body);
  }
  writer_serial = 0;
  uint64_t seen[128];
  size_t n = walk(fx, "searchby=company&search=walk%20co", 4, seen, 128,
                  write_between, NULL);
  /* every contact that matched for the whole walk is there, once */
  for (int i = 0; i < 30; i++) {
    bool found = false;
    for (size_t j = 0; j < n; j++)
      found |= seen[j] == made[i];
    assert_true(found);
  }
  assert_true(n >= 30);
}

static void test_contacts_read_your_writes(void **state) {
  fh_fixture *fx = *state;
  for (int i = 0; i < 20; i++) {
    char *body =
        fmt("{\"first_name\":\"R\",\"email\":\"ryw%d@x.io\",\"company\":"
            "\"RYW %d\"}",
            i, i);
    uint64_t id = fh_create(fx, body);
    free(body);
    char *q = fmt("searchby=company&search=ryw%%20%d", i);
    assert_int_equal(search_total(fx, q, NULL), 1);
    free(q);
    char p[64];
    res_t *r =
        fh_call(fx, "PATCH", id_path(id, p), NULL, "{\"company\":\"Moved\"}");
    assert_int_equal(r->status, 200);
    fh_free(r);
    q = fmt("searchby=company&search=ryw%%20%d", i);
    assert_int_equal(search_total(fx, q, NULL), 0);
    free(q);
    r = fh_call(fx, "DELETE", id_path(id, p), NULL, NULL);
    assert_int_equal(r->status, 200);
    fh_free(r);
    assert_int_equal(search_total(fx, "searchby=company&search=moved", NULL),
                     0);
  }
}

/* -------------------------------------------------------------- batch */

static yajl_val result_at(res_t *r, size_t i) {
  const char *path[] = {"results", NULL};
  yajl_val v = yajl_tree_get(fh_json(r), path, yajl_t_array);
  assert_non_null(v);
  assert_true(i < YAJL_GET_ARRAY(v)->len);
  return YAJL_GET_ARRAY(v)->values[i];
}

static const char *result_str(yajl_val item, const char *a, const char *b) {
  const char *path[] = {a, b, NULL};
  yajl_val v = yajl_tree_get(item, path, yajl_t_string);
  return v ? YAJL_GET_STRING(v) : NULL;
}

static void test_contacts_batch_results_in_order(void **state) {
  fh_fixture *fx = *state;
  res_t *r = fh_call(
      fx, "POST", "/contacts/batch", NULL,
      "{\"contacts\":["
      "{\"first_name\":\"A\",\"email\":\"a@x.io\",\"phone\":1234567},"
      "{\"first_name\":\"B\"},"
      "{\"first_name\":\"C\",\"email\":\"A@X.IO\"},"
      "{\"first_name\":\"D\",\"email\":\"d@x.io\",\"color\":{\"deep\":[1]},"
      "\"first_name\":\"dup\"},"
      "\"not an object\","
      "{\"first_name\":\"E\",\"email\":\"e@x.io\",\"last_name\":5},"
      "{\"first_name\":\"F\",\"email\":\"f@x.io\",\"first_name\":\"G\"},"
      "{\"first_name\":\"H\",\"email\":\"nope\"},"
      "[1,[2]],"
      "{\"first_name\":\"I\",\"email\":\"i@x.io\"}"
      "]}");
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type, "application/json");
  assert_int_equal(array_len(r, "results"), 10);
  const char *id_a = obj_str(result_at(r, 0), "id");
  assert_non_null(id_a);
  assert_string_equal(result_str(result_at(r, 1), "error", "code"),
                      "missing_field");
  assert_string_equal(result_str(result_at(r, 1), "error", "field"), "email");
  assert_string_equal(result_str(result_at(r, 2), "error", "code"),
                      "duplicate_email");
  assert_string_equal(result_str(result_at(r, 2), "error", "id"), id_a);
  assert_string_equal(result_str(result_at(r, 3), "error", "code"),
                      "unknown_field");
  assert_string_equal(result_str(result_at(r, 3), "error", "field"), "color");
  assert_string_equal(result_str(result_at(r, 4), "error", "code"),
                      "invalid_body");
  assert_string_equal(result_str(result_at(r, 5), "error", "code"),
                      "invalid_field");
  assert_string_equal(result_str(result_at(r, 5), "error", "field"),
                      "last_name");
  assert_string_equal(result_str(result_at(r, 6), "error", "code"),
                      "duplicate_field");
  assert_string_equal(result_str(result_at(r, 7), "error", "code"),
                      "invalid_field");
  assert_string_equal(result_str(result_at(r, 7), "error", "field"), "email");
  assert_string_equal(result_str(result_at(r, 8), "error", "code"),
                      "invalid_body");
  const char *id_i = obj_str(result_at(r, 9), "id");
  assert_non_null(id_i);
  assert_true(strcmp(id_a, id_i) < 0);
  /* every accepted item is readable once the batch is answered */
  uint64_t a, i;
  assert_int_equal(cs_id_parse(id_a, CS_ID_DIGITS, &a), 0);
  assert_int_equal(cs_id_parse(id_i, CS_ID_DIGITS, &i), 0);
  fh_free(r);
  r = get_ok(fx, a);
  assert_string_equal(fh_str(r, "phone", NULL), "1234567");
  fh_free(r);
  fh_free(get_ok(fx, i));
}

static char *batch_body(size_t n, const char *tag) {
  size_t cap = 64 + n * 80;
  char *s = malloc(cap);
  size_t o = (size_t)snprintf(s, cap, "{\"contacts\":[");
  for (size_t i = 0; i < n; i++)
    o += (size_t)snprintf(
        s + o, cap - o, "%s{\"first_name\":\"N%zu\",\"email\":\"%s%zu@x.io\"}",
        i ? "," : "", i, tag, i);
  snprintf(s + o, cap - o, "]}");
  return s;
}

static void test_contacts_batch_size_limits(void **state) {
  fh_fixture *fx = *state;
  expect_error(fx, "POST", "/contacts/batch", NULL, "{\"contacts\":[]}", 400,
               "invalid_field", "contacts");
  char *past = batch_body(CS_BATCH_MAX + 1, "past");
  expect_error(fx, "POST", "/contacts/batch", NULL, past, 400, "invalid_field",
               "contacts");
  free(past);
  /* nothing of the refused batch was stored */
  assert_int_equal(search_total(fx, "searchby=email&search=past0@x.io", NULL),
                   0);

  char *one = batch_body(1, "one");
  res_t *r = fh_call(fx, "POST", "/contacts/batch", NULL, one);
  assert_int_equal(r->status, 200);
  assert_int_equal(array_len(r, "results"), 1);
  fh_free(r);
  free(one);

  char *full = batch_body(CS_BATCH_MAX, "full");
  r = fh_call(fx, "POST", "/contacts/batch", NULL, full);
  assert_int_equal(r->status, 200);
  assert_int_equal(array_len(r, "results"), CS_BATCH_MAX);
  uint64_t prev = 0;
  for (size_t i = 0; i < CS_BATCH_MAX; i++) {
    const char *s = obj_str(result_at(r, i), "id");
    assert_non_null(s);
    uint64_t id;
    assert_int_equal(cs_id_parse(s, CS_ID_DIGITS, &id), 0);
    assert_true(id > prev);
    prev = id;
  }
  fh_free(r);
  free(full);
  assert_int_equal(
      search_total(fx, "searchby=email&search=full&match=prefix&limit=1", NULL),
      CS_BATCH_MAX);
}

static void test_contacts_batch_shape_errors(void **state) {
  fh_fixture *fx = *state;
  expect_error(fx, "POST", "/contacts/batch", NULL, "{}", 400, "missing_field",
               "contacts");
  expect_error(fx, "POST", "/contacts/batch", NULL, "{\"contacts\":{}}", 400,
               "invalid_field", "contacts");
  expect_error(fx, "POST", "/contacts/batch", NULL, "{\"contacts\":[],\"x\":1}",
               400, "unknown_field", "x");
  expect_error(fx, "POST", "/contacts/batch", NULL,
               "{\"contacts\":[{\"first_name\":\"A\",\"email\":\"a@x.io\"}"
               "],\"contacts\":[]}",
               400, "duplicate_field", "contacts");
  expect_error(fx, "POST", "/contacts/batch", NULL, "", 400, "invalid_json",
               NULL);
  expect_error(fx, "POST", "/contacts/batch", NULL,
               "{\"contacts\":[{\"first_name\":\"A\",\"email\":\"a@x.io\"}",
               400, "invalid_json", NULL);
}

/* Flips one byte of the first occurrence of marker in the store's segment
 * files, behind the store's back (its reads see it through mmap). */
static void flip_in_segments(const char *dir, const char *marker) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "grep -l -a '%s' %s/*.seg", marker, dir);
  FILE *ls = popen(cmd, "r");
  assert_non_null(ls);
  char path[256];
  assert_non_null(fgets(path, sizeof path, ls));
  pclose(ls);
  path[strcspn(path, "\n")] = '\0';
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  char *buf = malloc((size_t)size);
  fseek(f, 0, SEEK_SET);
  assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
  char *at = memmem(buf, (size_t)size, marker, strlen(marker));
  assert_non_null(at);
  fseek(f, at - buf, SEEK_SET);
  fputc(*at ^ 0x20, f);
  fclose(f);
  free(buf);
}

/* A record that fails its checksum is a 500, logged, with nothing about the
 * store in the body; its neighbours still read. */
static void test_contacts_corrupt_record_is_500(void **state) {
  fh_fixture *fx = *state;
  uint64_t good =
      fh_create(fx, "{\"first_name\":\"Good\",\"email\":\"g@x.io\"}");
  uint64_t bad =
      fh_create(fx, "{\"first_name\":\"Zyxwvutsrq\",\"email\":\"z@x.io\"}");
  cs_error err = {0};
  assert_int_equal(cs_flush(fx->store, &err), 0);
  flip_in_segments(fx->dir, "Zyxwvutsrq");
  int logs = fh_error_logs;
  char p[64];
  res_t *r = fh_call(fx, "GET", id_path(bad, p), NULL, NULL);
  fh_assert_error(r, 500, "internal", NULL);
  assert_null(strstr(r->body, fx->dir));
  assert_null(strstr(r->body, ".seg"));
  fh_free(r);
  assert_true(fh_error_logs > logs);
  fh_free(get_ok(fx, good));
}

/* ------------------------------------------------------------ hostile */

/* Every prefix of a valid body is refused cleanly, and every single-byte
 * change is answered once with a status the contract knows. */
static void test_contacts_truncated_and_mangled_bodies(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = make_jane(fx);
  char *bodies[3];
  bodies[0] = fmt("{\"contactID\":\"%s\",\"updateFields\":{\"name\":\"A "
                  "B\",\"phone\":1234567,\"notes\":\"x\\u00e9\\n\",\"company\":"
                  "null}}",
                  id_str(id));
  bodies[1] = strdup("{\"contacts\":[{\"first_name\":\"T\",\"email\":"
                     "\"t@x.io\"},[1,{\"a\":[]}],\"s\",{\"phone\":12345}]}");
  bodies[2] = strdup("{\"searchby\":\"notes\",\"search\":\"jazz\",\"limit\":"
                     "5,\"match\":\"words\",\"cursor\":null}");
  const char *method[3] = {"POST", "POST", "GET"};
  const char *path[3] = {"/contacts", "/contacts/batch", "/contacts"};
  for (int b = 0; b < 3; b++) {
    size_t len = strlen(bodies[b]);
    for (size_t cut = 0; cut < len; cut++) {
      res_t *r = fh_call_n(fx, method[b], path[b], NULL, bodies[b], cut);
      /* a GET may come without a body: then searchby is missing */
      assert_int_equal(r->status, 400);
      fh_free(r);
    }
    for (size_t pos = 0; pos < len; pos++) {
      static const char subst[] = {'"',  '{',  '}',    '[', ']', ',', ':',
                                   '\\', '\0', '\xff', 'x', '1', ' '};
      for (size_t k = 0; k < sizeof subst; k++) {
        char *m = strdup(bodies[b]);
        m[pos] = subst[k];
        res_t *r = fh_call_n(fx, method[b], path[b], NULL, m, len);
        assert_true(r->status == 200 || r->status == 400 || r->status == 404 ||
                    r->status == 409);
        fh_free(r);
        free(m);
      }
    }
    free(bodies[b]);
  }
}

/* ---------------------------------------------------------- concurrency */

#define CC_THREADS 6
#define CC_WRITES 40

typedef struct cc_arg {
  fh_fixture *fx;
  int thread;
  uint64_t ids[CC_WRITES];
} cc_arg;

static void *cc_writer(void *p) {
  cc_arg *a = p;
  for (int i = 0; i < CC_WRITES; i++) {
    char *body = fmt("{\"first_name\":\"C\",\"email\":\"c%d.%d@x.io\","
                     "\"company\":\"Conc %d\"}",
                     a->thread, i, a->thread);
    res_t *r = fh_call(a->fx, "POST", "/contacts", NULL, body);
    free(body);
    if (r->status == 200) {
      const char *s = fh_str(r, "id", NULL);
      cs_id_parse(s, strlen(s), &a->ids[i]);
    }
    fh_free(r);
    /* a search and an edit from every thread, between the creates */
    char *q = fmt("searchby=company&search=conc%%20%d&limit=1", a->thread);
    r = fh_call(a->fx, "GET", "/contacts", q, NULL);
    free(q);
    fh_free(r);
    if (i % 4 == 3 && a->ids[i - 1]) {
      char path[64];
      r = fh_call(a->fx, "PATCH", id_path(a->ids[i - 1], path), NULL,
                  "{\"notes\":\"edited\"}");
      fh_free(r);
    }
  }
  return NULL;
}

/* Handlers run on many threads at once and their answers come from the
 * commit thread: every request is answered once, every id is distinct. */
static void test_contacts_concurrent_requests(void **state) {
  fh_fixture *fx = *state;
  pthread_t t[CC_THREADS];
  static cc_arg args[CC_THREADS];
  for (int i = 0; i < CC_THREADS; i++) {
    memset(&args[i], 0, sizeof args[i]);
    args[i].fx = fx;
    args[i].thread = i;
    assert_int_equal(pthread_create(&t[i], NULL, cc_writer, &args[i]), 0);
  }
  for (int i = 0; i < CC_THREADS; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < CC_THREADS; i++) {
    for (int k = 0; k < CC_WRITES; k++) {
      assert_true(args[i].ids[k] >= CS_ID_MIN);
      for (int j = 0; j <= i; j++)
        for (int l = 0; l < (j == i ? k : CC_WRITES); l++)
          assert_true(args[j].ids[l] != args[i].ids[k]);
    }
    char *q = fmt("searchby=company&search=conc%%20%d", i);
    assert_int_equal(search_total(fx, q, NULL), CC_WRITES);
    free(q);
  }
}

/* ------------------------------------------------------ store failure */

static bool fail_writes;

static long failing_pwrite(void *ctx, int fd, const void *buf, size_t len,
                           uint64_t off) {
  if (__atomic_load_n(&fail_writes, __ATOMIC_SEQ_CST)) return -EIO;
  return cs_io_posix()->pwrite(ctx, fd, buf, len, off);
}

static int failing_fdatasync(void *ctx, int fd) {
  if (__atomic_load_n(&fail_writes, __ATOMIC_SEQ_CST)) return -EIO;
  return cs_io_posix()->fdatasync(ctx, fd);
}

static void expect_unavailable(res_t *r) {
  fh_assert_error(r, 503, "store_unavailable", NULL);
  assert_non_null(fh_header(r, "retry-after"));
  /* no path, no engine detail in the body */
  assert_null(strstr(r->body, "/tmp"));
  fh_free(r);
}

/* A store that failed a write answers every write 503 with retry-after,
 * whether the failure shows at commit (async) or at submission (sync). */
static void test_contacts_store_failure_is_503(void **state) {
  (void)state;
  static cs_io io;
  io = *cs_io_posix();
  io.pwrite = failing_pwrite;
  io.fdatasync = failing_fdatasync;
  fail_writes = false;
  cs_options opts = {.durability = CS_DURABILITY_FSYNC, .io = &io};
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, &opts);
  uint64_t id = fh_create(&fx, "{\"first_name\":\"K\",\"email\":\"k@x.io\"}");

  __atomic_store_n(&fail_writes, true, __ATOMIC_SEQ_CST);
  /* the commit fails: answered from the completion */
  expect_unavailable(fh_call(&fx, "POST", "/contacts", NULL,
                             "{\"first_name\":\"L\",\"email\":\"l@x.io\"}"));
  /* the store now refuses writes up front */
  expect_unavailable(fh_call(&fx, "POST", "/contacts", NULL,
                             "{\"first_name\":\"M\",\"email\":\"m@x.io\"}"));
  char p[64];
  expect_unavailable(
      fh_call(&fx, "PATCH", id_path(id, p), NULL, "{\"company\":\"X\"}"));
  expect_unavailable(fh_call(&fx, "DELETE", id_path(id, p), NULL, NULL));
  res_t *r = fh_call(&fx, "POST", "/contacts/batch", NULL,
                     "{\"contacts\":[{\"first_name\":\"N\",\"email\":"
                     "\"n@x.io\"},{\"first_name\":\"O\"}]}");
  assert_int_equal(r->status, 200);
  assert_string_equal(result_str(result_at(r, 0), "error", "code"),
                      "store_unavailable");
  assert_string_equal(result_str(result_at(r, 1), "error", "code"),
                      "missing_field");
  fh_free(r);
  /* reads still work */
  fh_free(get_ok(&fx, id));
  /* bad input is still the client's fault first */
  expect_error(&fx, "POST", "/contacts", NULL, "{", 400, "invalid_json", NULL);
  fh_close(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_contacts_routes_and_flags),
      T(test_contacts_create_and_get),
      T(test_contacts_create_ids_increase),
      T(test_contacts_create_null_and_empty_optional_are_absent),
      T(test_contacts_create_missing_required),
      T(test_contacts_create_unknown_field),
      T(test_contacts_create_server_fields_refused),
      T(test_contacts_create_wrong_types),
      T(test_contacts_create_phone_integer),
      T(test_contacts_create_duplicate_keys),
      T(test_contacts_body_not_json),
      T(test_contacts_invalid_utf8_and_nul),
      T(test_contacts_lone_surrogate_escapes_refused),
      T(test_contacts_create_invalid_email_and_phone),
      T(test_contacts_create_duplicate_email),
      T(test_contacts_limit_names_in_characters),
      T(test_contacts_limit_email_bytes),
      T(test_contacts_limit_phone_digits),
      T(test_contacts_limit_notes_bytes),
      T(test_contacts_edit_both_spellings),
      T(test_contacts_edit_updates_updated_at_only),
      T(test_contacts_edit_name_splits),
      T(test_contacts_edit_null_removes),
      T(test_contacts_edit_empty_fields),
      T(test_contacts_edit_shape_errors),
      T(test_contacts_edit_contact_id_as_number),
      T(test_contacts_edit_unknown_contact),
      T(test_contacts_edit_duplicate_email),
      T(test_contacts_edit_is_atomic),
      T(test_contacts_patch),
      T(test_contacts_delete_by_body_and_path),
      T(test_contacts_delete_body_errors),
      T(test_contacts_other_account_is_not_found),
      T(test_contacts_search_query_string),
      T(test_contacts_search_json_body_and_query_wins),
      T(test_contacts_search_errors),
      T(test_contacts_search_limit_edges),
      T(test_contacts_search_modes_and_folding),
      T(test_contacts_search_empty_page),
      T(test_contacts_search_by_id),
      T(test_contacts_search_cursor_walks_all),
      T(test_contacts_search_cursor_survives_writes),
      T(test_contacts_read_your_writes),
      T(test_contacts_batch_results_in_order),
      T(test_contacts_batch_size_limits),
      T(test_contacts_batch_shape_errors),
      T(test_contacts_corrupt_record_is_500),
      T(test_contacts_truncated_and_mangled_bodies),
      T(test_contacts_concurrent_requests),
#undef T
      cmocka_unit_test(test_contacts_store_failure_is_503),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
