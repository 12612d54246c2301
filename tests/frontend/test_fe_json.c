/*
 * test_fe_json.c: the API's error body.
 *
 * Goal: the shape is exactly {"error":{"code","message","field"?,"id"?}},
 * strings are escaped, and invalid UTF-8 in a message never makes invalid
 * JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_json.h"

static void expect(const char *code, const char *message, const char *field,
                   uint64_t id, const char *want) {
  size_t len = 0;
  char *got = fe_json_error(code, message, field, id, &len);
  assert_non_null(got);
  assert_int_equal(len, strlen(want));
  assert_string_equal(got, want);
  free(got);
}

static void test_fe_json_error_shape(void **state) {
  expect(
      "not_found", "no such contact", NULL, 0,
      "{\"error\":{\"code\":\"not_found\",\"message\":\"no such contact\"}}");
  expect("invalid_field", "email: not an email address", "email", 0,
         "{\"error\":{\"code\":\"invalid_field\",\"message\":\"email: not an "
         "email address\",\"field\":\"email\"}}");
  expect("duplicate_email", "email already in use", "email",
         12345678901234567890ull,
         "{\"error\":{\"code\":\"duplicate_email\",\"message\":\"email already "
         "in use\",\"field\":\"email\",\"id\":\"12345678901234567890\"}}");
}

static void test_fe_json_error_escapes(void **state) {
  expect("bad", "quote \" backslash \\ newline \n tab \t", NULL, 0,
         "{\"error\":{\"code\":\"bad\",\"message\":\"quote \\\" backslash "
         "\\\\ newline \\n tab \\t\"}}");
  expect("bad", "ctl \x01", NULL, 0,
         "{\"error\":{\"code\":\"bad\",\"message\":\"ctl \\u0001\"}}");
  /* Valid UTF-8 passes through as it is. */
  expect("bad", "Jos\xc3\xa9", NULL, 0,
         "{\"error\":{\"code\":\"bad\",\"message\":\"Jos\xc3\xa9\"}}");
}

static void test_fe_json_error_replaces_invalid_utf8(void **state) {
  expect("bad", "x\xff\xc3y", NULL, 0,
         "{\"error\":{\"code\":\"bad\",\"message\":\"x\xef\xbf\xbd\xef\xbf\xbd"
         "y\"}}");
  /* An encoded surrogate and an overlong form are invalid too. */
  expect("bad", "\xed\xa0\x80\xc0\xaf", NULL, 0,
         "{\"error\":{\"code\":\"bad\",\"message\":\"\xef\xbf\xbd\xef\xbf\xbd"
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}}");
}

static void test_fe_json_null_code_and_message(void **state) {
  expect(NULL, NULL, NULL, 0,
         "{\"error\":{\"code\":\"internal\",\"message\":\"\"}}");
}

static void test_fe_json_codes_for_h2o_statuses(void **state) {
  assert_string_equal(fe_json_code_for_status(413), "payload_too_large");
  assert_string_equal(fe_json_code_for_status(400), "bad_request");
  assert_string_equal(fe_json_code_for_status(404), "not_found");
  assert_string_equal(fe_json_code_for_status(502), "internal");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_json_error_shape),
      cmocka_unit_test(test_fe_json_error_escapes),
      cmocka_unit_test(test_fe_json_error_replaces_invalid_utf8),
      cmocka_unit_test(test_fe_json_null_code_and_message),
      cmocka_unit_test(test_fe_json_codes_for_h2o_statuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
