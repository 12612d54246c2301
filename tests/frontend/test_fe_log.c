/*
 * test_fe_log.c: access log lines.
 *
 * Goal: one line per request with the documented fields in order, a path
 * that cannot forge lines, and a bounded line for an absurd path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fe_log.h"

static void test_fe_log_line_fields(void **state) {
  fe_access_entry e = {.time_ms = 1795683480123,
                       .request_id = "abc",
                       .account = "default",
                       .method = "POST",
                       .path = "/contacts",
                       .path_len = 9,
                       .status = 200,
                       .bytes = 31,
                       .micros = 1532};
  char buf[512];
  size_t n = fe_access_log_format(buf, sizeof(buf), &e);
  assert_string_equal(buf, "2026-11-26T08:58:00.123Z abc default POST "
                           "/contacts 200 31 1532\n");
  assert_int_equal(n, strlen(buf));

  e.account = NULL;
  fe_access_log_format(buf, sizeof(buf), &e);
  assert_non_null(strstr(buf, " abc - POST "));
}

static void test_fe_log_path_cannot_forge_lines(void **state) {
  const char path[] = "/x\n2026 fake\\ \x01";
  fe_access_entry e = {.time_ms = 0,
                       .request_id = "r",
                       .method = "GET",
                       .path = path,
                       .path_len = sizeof(path) - 1,
                       .status = 404};
  char buf[512];
  fe_access_log_format(buf, sizeof(buf), &e);
  assert_string_equal(buf, "1970-01-01T00:00:00.000Z r - GET "
                           "/x\\x0a2026\\x20fake\\x5c\\x20\\x01 404 0 0\n");
}

static void test_fe_log_long_path_is_cut(void **state) {
  static char path[10000];
  memset(path, 'a', sizeof(path));
  fe_access_entry e = {.time_ms = 0,
                       .request_id = "r",
                       .method = "GET",
                       .path = path,
                       .path_len = sizeof(path),
                       .status = 200,
                       .bytes = 5,
                       .micros = 7};
  char buf[256];
  size_t n = fe_access_log_format(buf, sizeof(buf), &e);
  assert_true(n < sizeof(buf));
  assert_int_equal(buf[n - 1], '\n');
  assert_non_null(strstr(buf, " 200 5 7\n"));
}

static void test_fe_log_time_format(void **state) {
  char out[32];
  fe_time_format(0, out);
  assert_string_equal(out, "1970-01-01T00:00:00.000Z");
  fe_time_format(-1, out);
  assert_string_equal(out, "1969-12-31T23:59:59.999Z");
  assert_true(fe_now_ms() > 1700000000000);
}

static void test_fe_log_file_gets_whole_lines(void **state) {
  char path[] = "/tmp/test_fe_log_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  fe_access_log *log;
  char err[256];
  assert_int_equal(fe_access_log_open(path, &log, err, sizeof(err)), 0);
  fe_access_entry e = {.time_ms = 0,
                       .request_id = "r",
                       .method = "GET",
                       .path = "/",
                       .path_len = 1,
                       .status = 200};
  fe_access_log_write(log, &e);
  fe_access_log_write(log, &e);
  fe_access_log_close(log);
  FILE *f = fopen(path, "r");
  char line[256];
  int lines = 0;
  while (fgets(line, sizeof(line), f) != NULL)
    lines++;
  fclose(f);
  unlink(path);
  assert_int_equal(lines, 2);

  assert_int_equal(
      fe_access_log_open("/nonexistent/dir/log", &log, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "--access-log /nonexistent/dir/log"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_log_line_fields),
      cmocka_unit_test(test_fe_log_path_cannot_forge_lines),
      cmocka_unit_test(test_fe_log_long_path_is_cut),
      cmocka_unit_test(test_fe_log_time_format),
      cmocka_unit_test(test_fe_log_file_gets_whole_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
