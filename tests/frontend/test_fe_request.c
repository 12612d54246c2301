/*
 * test_fe_request.c: percent-decoding, query strings, request ids.
 *
 * Goal: the query string a plugin sees is what the client meant ('+' as
 * space, %XX decoded, order kept, odd pieces handled), and the x-request-id
 * rule matches the API's words (1 to 128 printable characters).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_request.h"

static size_t parse(const char *q, cd_pair *pairs, size_t max, char **scratch) {
  size_t len = strlen(q);
  *scratch = malloc(FE_QUERY_SCRATCH_BYTES(len));
  assert_true(fe_query_pairs_max(q, len) <= 64);
  return fe_query_parse(q, len, *scratch, pairs, max);
}

static void assert_pair(const cd_pair *p, const char *name, const char *value) {
  assert_int_equal(p->name_len, strlen(name));
  assert_memory_equal(p->name, name, p->name_len);
  assert_int_equal(p->value_len, strlen(value));
  assert_memory_equal(p->value, value, p->value_len);
}

static void test_fe_request_percent_decode(void **state) {
  char out[64];
  size_t n = fe_percent_decode(out, "a%20b+c%2bd", 11, true);
  assert_int_equal(n, 7);
  assert_memory_equal(out, "a b c+d", 7);
  n = fe_percent_decode(out, "a%20b+c", 7, false);
  assert_memory_equal(out, "a b+c", n);
  /* Broken escapes are data. */
  n = fe_percent_decode(out, "100%", 4, true);
  assert_memory_equal(out, "100%", n);
  n = fe_percent_decode(out, "%zz%4", 5, true);
  assert_int_equal(n, 5);
  assert_memory_equal(out, "%zz%4", 5);
  n = fe_percent_decode(out, "%C3%A9", 6, true);
  assert_int_equal(n, 2);
  assert_memory_equal(out, "\xc3\xa9", 2);
  n = fe_percent_decode(out, "%00x", 4, true);
  assert_int_equal(n, 2);
  assert_int_equal(out[0], 0);
  /* In place. */
  char buf[] = "x%41y";
  n = fe_percent_decode(buf, buf, 5, false);
  assert_memory_equal(buf, "xAy", n);
}

static void test_fe_request_query_pairs_in_order(void **state) {
  cd_pair p[16];
  char *scratch;
  size_t n =
      parse("searchby=company&search=Example+Inc.&limit=10", p, 16, &scratch);
  assert_int_equal(n, 3);
  assert_pair(&p[0], "searchby", "company");
  assert_pair(&p[1], "search", "Example Inc.");
  assert_pair(&p[2], "limit", "10");
  /* NUL-terminated too, for plugins that want C strings. */
  assert_string_equal(p[1].value, "Example Inc.");
  free(scratch);
}

static void test_fe_request_query_decodes_names_and_values(void **state) {
  cd_pair p[16];
  char *scratch;
  size_t n =
      parse("s%65arch=Jos%C3%A9%20Garc%C3%ADa&a%26b=c%3Dd", p, 16, &scratch);
  assert_int_equal(n, 2);
  assert_pair(&p[0], "search",
              "Jos\xc3\xa9 Garc\xc3\xad"
              "a");
  assert_pair(&p[1], "a&b", "c=d");
  free(scratch);
}

static void test_fe_request_query_odd_pieces(void **state) {
  cd_pair p[16];
  char *scratch;
  size_t n = parse("&&a&b=&=c&d=e=f&", p, 16, &scratch);
  assert_int_equal(n, 4);
  assert_pair(&p[0], "a", "");
  assert_pair(&p[1], "b", "");
  assert_pair(&p[2], "", "c");
  assert_pair(&p[3], "d", "e=f");
  free(scratch);

  n = parse("", p, 16, &scratch);
  assert_int_equal(n, 0);
  free(scratch);

  /* Repeated names are all kept; the plugin chooses. */
  n = parse("x=1&x=2", p, 16, &scratch);
  assert_int_equal(n, 2);
  assert_pair(&p[1], "x", "2");
  free(scratch);
}

static void test_fe_request_query_respects_max_pairs(void **state) {
  cd_pair p[2];
  char *scratch;
  size_t n = parse("a=1&b=2&c=3", p, 2, &scratch);
  assert_int_equal(n, 2);
  assert_pair(&p[1], "b", "2");
  free(scratch);
}

static void test_fe_request_query_worst_case_scratch(void **state) {
  /* Every piece a one-byte name: the most NULs per input byte. */
  const char *q = "a&b&c&d&e&f&g&h&i";
  cd_pair p[16];
  size_t len = strlen(q);
  char *scratch = malloc(FE_QUERY_SCRATCH_BYTES(len));
  assert_int_equal(fe_query_parse(q, len, scratch, p, 16), 9);
  assert_pair(&p[8], "i", "");
  free(scratch);
}

static void test_fe_request_id_validation(void **state) {
  char id[CS_REQUEST_ID_MAX_BYTES + 2];
  assert_true(fe_request_id_valid("abc", 3));
  assert_true(fe_request_id_valid("a b~!", 5));
  assert_false(fe_request_id_valid("", 0));
  assert_false(fe_request_id_valid("a\tb", 3));
  assert_false(fe_request_id_valid("a\nb", 3));
  assert_false(fe_request_id_valid("caf\xc3\xa9", 5));
  assert_false(fe_request_id_valid("a\x7f", 2));
  memset(id, 'x', sizeof(id));
  assert_true(fe_request_id_valid(id, CS_REQUEST_ID_MAX_BYTES));
  assert_false(fe_request_id_valid(id, CS_REQUEST_ID_MAX_BYTES + 1));
}

static void test_fe_request_id_generation(void **state) {
  uint64_t st = 42;
  char a[FE_REQUEST_ID_GEN_CHARS + 1], b[FE_REQUEST_ID_GEN_CHARS + 1];
  fe_request_id_generate(&st, a);
  fe_request_id_generate(&st, b);
  assert_int_equal(strlen(a), FE_REQUEST_ID_GEN_CHARS);
  assert_string_not_equal(a, b);
  for (size_t i = 0; i < FE_REQUEST_ID_GEN_CHARS; i++)
    assert_non_null(strchr("0123456789abcdef", a[i]));
  assert_true(fe_request_id_valid(a, strlen(a)));
  assert_int_not_equal(fe_random_seed(), 0);
}

static void test_fe_request_status_reasons(void **state) {
  assert_string_equal(fe_status_reason(404), "Not Found");
  assert_string_equal(fe_status_reason(413), "Payload Too Large");
  assert_string_equal(fe_status_reason(304), "Not Modified");
  assert_string_equal(fe_status_reason(412), "Precondition Failed");
  assert_string_equal(fe_status_reason(422), "Unprocessable Content");
  assert_string_equal(fe_status_reason(299), "Unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_request_percent_decode),
      cmocka_unit_test(test_fe_request_query_pairs_in_order),
      cmocka_unit_test(test_fe_request_query_decodes_names_and_values),
      cmocka_unit_test(test_fe_request_query_odd_pieces),
      cmocka_unit_test(test_fe_request_query_respects_max_pairs),
      cmocka_unit_test(test_fe_request_query_worst_case_scratch),
      cmocka_unit_test(test_fe_request_id_validation),
      cmocka_unit_test(test_fe_request_id_generation),
      cmocka_unit_test(test_fe_request_status_reasons),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
