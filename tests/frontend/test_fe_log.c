/*
 * test_fe_log.c: access log lines in both formats, and the server's own
 * lines.
 *
 * Goal: one line per request with the documented fields in order; no
 * request id, path, method or user agent (quotes, spaces, newlines,
 * control bytes, invalid UTF-8) can end a field or a line in the default
 * format, and every json line parses back to what was sent (invalid UTF-8
 * as U+FFFD); bounded lines for absurd values; the server's lines carry a
 * time and cannot be split by a newline in a message.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "fe_log.h"

static fe_access_entry sample(void) {
  fe_access_entry e = {.time_ms = 1795683480123,
                       .client = "192.0.2.7",
                       .request_id = "abc",
                       .account = "default",
                       .method = "POST",
                       .path = "/contacts",
                       .path_len = 9,
                       .protocol = "HTTP/1.1",
                       .status = 200,
                       .bytes = 31,
                       .micros = 1532,
                       .user_agent = "curl/7.88.1",
                       .user_agent_len = 11};
  return e;
}

static void test_fe_log_line_fields(void **state) {
  fe_access_entry e = sample();
  char buf[512];
  size_t n = fe_access_log_format(buf, sizeof(buf), &e);
  assert_string_equal(buf, "2026-11-26T08:58:00.123Z 192.0.2.7 \"abc\" default "
                           "POST \"/contacts\" HTTP/1.1 200 31 1532 "
                           "\"curl/7.88.1\"\n");
  assert_int_equal(n, strlen(buf));

  /* Absent values are a bare "-"; a value that is "-" keeps its quotes. */
  e.account = NULL;
  e.client = NULL;
  e.protocol = NULL;
  e.user_agent = NULL;
  fe_access_log_format(buf, sizeof(buf), &e);
  assert_string_equal(buf, "2026-11-26T08:58:00.123Z - \"abc\" - POST "
                           "\"/contacts\" - 200 31 1532 -\n");
  e.user_agent = "-";
  e.user_agent_len = 1;
  fe_access_log_format(buf, sizeof(buf), &e);
  assert_non_null(strstr(buf, " 1532 \"-\"\n"));
  e.user_agent = "";
  e.user_agent_len = 0;
  fe_access_log_format(buf, sizeof(buf), &e);
  assert_non_null(strstr(buf, " 1532 \"\"\n"));
}

/* Splits a default-format line the way a reader would: by spaces, a quoted
 * field being one whatever it holds. Returns the number of fields, or -1
 * when the line is not one line of printable ASCII with balanced quotes. */
static int split_fields(const char *line) {
  size_t len = strlen(line);
  if (len == 0 || line[len - 1] != '\n') return -1;
  int fields = 0;
  bool in_field = false, quoted = false;
  for (size_t i = 0; i + 1 < len; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c < 0x20 || c >= 0x7f) return -1;
    if (quoted) {
      if (c == '"') quoted = false;
      continue;
    }
    if (c == ' ') {
      if (!in_field) return -1; /* two spaces: an empty field */
      in_field = false;
      continue;
    }
    if (!in_field) {
      fields++;
      in_field = true;
      if (c == '"') quoted = true;
    } else if (c == '"') {
      return -1; /* a quote inside a field */
    }
  }
  return quoted ? -1 : fields;
}

static const char *const hostile[] = {
    "a b",
    "x\" 200 0 0 \"forged",
    "line\n2026-01-01T00:00:00.000Z 6.6.6.6 \"r\" GET \"/\" 200 0 0 \"x\"",
    "cr\rlf\n\ttab",
    "back\\slash\\\"",
    "\x01\x02\x7f\x1b[31m",
    "bad utf8 \xff\xfe \xc3\x28 \xe2\x82",
    "caf\xc3\xa9 \xe2\x82\xac",
    "",
    "-",
    " ",
    "\"",
};
enum { HOSTILE = sizeof(hostile) / sizeof(hostile[0]) };

static void test_fe_log_default_fields_cannot_be_forged(void **state) {
  for (size_t i = 0; i < HOSTILE; i++) {
    for (size_t j = 0; j < HOSTILE; j++) {
      fe_access_entry e = sample();
      e.request_id = hostile[i];
      e.path = hostile[j];
      e.path_len = strlen(hostile[j]);
      e.user_agent = hostile[(i + j) % HOSTILE];
      e.user_agent_len = strlen(e.user_agent);
      e.method = hostile[(i + 1) % HOSTILE];
      e.account = hostile[(j + 2) % HOSTILE];
      char buf[FE_ACCESS_LINE_MAX_BYTES];
      fe_access_log_format(buf, sizeof(buf), &e);
      if (split_fields(buf) != 11)
        fail_msg("%zu,%zu: not 11 fields: %s", i, j, buf);
    }
  }
}

static void test_fe_log_default_escapes(void **state) {
  fe_access_entry e = sample();
  const char path[] = "/x\n2026 fake\\ \x01\"\xff";
  e.path = path;
  e.path_len = sizeof(path) - 1;
  e.request_id = "a \"b\"";
  e.user_agent = "Mozilla/5.0 (X11; \"q\")\r\n\xc3\xa9";
  e.user_agent_len = strlen(e.user_agent);
  e.method = "G T";
  e.account = NULL;
  char buf[512];
  fe_access_log_format(buf, sizeof(buf), &e);
  assert_string_equal(
      buf, "2026-11-26T08:58:00.123Z 192.0.2.7 \"a \\x22b\\x22\" - G\\x20T "
           "\"/x\\x0a2026 fake\\x5c \\x01\\x22\\xff\" HTTP/1.1 200 31 1532 "
           "\"Mozilla/5.0 (X11; \\x22q\\x22)\\x0d\\x0a\\xc3\\xa9\"\n");
  /* A NUL inside the path is a byte like another. */
  const char nul[] = {'/', 'a', '\0', 'b'};
  e.path = nul;
  e.path_len = sizeof(nul);
  fe_access_log_format(buf, sizeof(buf), &e);
  assert_non_null(strstr(buf, " \"/a\\x00b\" "));
}

static void test_fe_log_long_path_is_cut(void **state) {
  static char path[10000];
  memset(path, 'a', sizeof(path));
  fe_access_entry e = sample();
  e.path = path;
  e.path_len = sizeof(path);
  e.bytes = 5;
  e.micros = 7;
  char buf[256];
  size_t n = fe_access_log_format(buf, sizeof(buf), &e);
  assert_true(n < sizeof(buf));
  assert_int_equal(buf[n - 1], '\n');
  assert_non_null(strstr(buf, "aa\" HTTP/1.1 200 5 7 \"curl/7.88.1\"\n"));
  assert_int_equal(split_fields(buf), 11);

  /* In a full-size line the path is cut at FE_ACCESS_FIELD_MAX_BYTES and a
   * long user agent at FE_ACCESS_UA_ROOM_BYTES, each keeping its quotes;
   * escapes are never split. */
  static char ua[4000];
  memset(ua, '"', sizeof(ua));
  e.user_agent = ua;
  e.user_agent_len = sizeof(ua);
  char line[FE_ACCESS_LINE_MAX_BYTES];
  n = fe_access_log_format(line, sizeof(line), &e);
  assert_int_equal(split_fields(line), 11);
  char *q = strstr(line, " \"aaa");
  assert_non_null(q);
  assert_int_equal(strspn(q + 2, "a"), FE_ACCESS_FIELD_MAX_BYTES);
  char *u = strstr(line, " 7 \"");
  assert_non_null(u);
  size_t ua_field = strlen(u + 3) - 1; /* without the newline */
  assert_true(ua_field <= FE_ACCESS_UA_ROOM_BYTES);
  assert_true(ua_field > FE_ACCESS_UA_ROOM_BYTES - 4);
  assert_int_equal((ua_field - 2) % 4, 0); /* whole \x22 escapes */
}

static void test_fe_log_format_words(void **state) {
  fe_access_format f = FE_ACCESS_FORMAT_JSON;
  assert_int_equal(fe_access_format_parse("default", &f), 0);
  assert_int_equal(f, FE_ACCESS_FORMAT_DEFAULT);
  assert_int_equal(fe_access_format_parse("json", &f), 0);
  assert_int_equal(f, FE_ACCESS_FORMAT_JSON);
  assert_int_equal(fe_access_format_parse("JSON", &f), -1);
  assert_int_equal(fe_access_format_parse("", &f), -1);
  assert_int_equal(fe_access_format_parse("combined", &f), -1);
  assert_int_equal(f, FE_ACCESS_FORMAT_JSON);
}

static void test_fe_log_json_line(void **state) {
  fe_access_entry e = sample();
  size_t n = 0;
  char *line = fe_access_log_json(&e, &n);
  assert_non_null(line);
  assert_int_equal(n, strlen(line));
  assert_string_equal(
      line, "{\"time\":\"2026-11-26T08:58:00.123Z\",\"client\":\"192.0.2.7\","
            "\"request_id\":\"abc\",\"account\":\"default\",\"method\":"
            "\"POST\",\"path\":\"/contacts\",\"protocol\":\"HTTP/1.1\","
            "\"status\":200,\"bytes\":31,\"duration_us\":1532,"
            "\"user_agent\":\"curl/7.88.1\"}\n");
  free(line);

  e.account = NULL;
  e.client = NULL;
  e.user_agent = NULL;
  line = fe_access_log_json(&e, &n);
  assert_non_null(strstr(line, "\"client\":null,"));
  assert_non_null(strstr(line, "\"account\":null,"));
  assert_non_null(strstr(line, "\"user_agent\":null}\n"));
  free(line);
}

/* The string value of key in a parsed object, or NULL. */
static const char *json_str(yajl_val obj, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
  return v != NULL ? YAJL_GET_STRING(v) : NULL;
}

static void test_fe_log_json_escapes_hostile_values(void **state) {
  for (size_t i = 0; i < HOSTILE; i++) {
    fe_access_entry e = sample();
    e.request_id = hostile[i];
    e.path = hostile[(i + 1) % HOSTILE];
    e.path_len = strlen(e.path);
    e.user_agent = hostile[(i + 2) % HOSTILE];
    e.user_agent_len = strlen(e.user_agent);
    size_t n = 0;
    char *line = fe_access_log_json(&e, &n);
    assert_non_null(line);
    /* One line: the only newline is the last byte. */
    assert_int_equal(strchr(line, '\n') - line, (ptrdiff_t)n - 1);
    char err[256];
    yajl_val v = yajl_tree_parse(line, err, sizeof(err));
    if (v == NULL) fail_msg("%zu: not JSON (%s): %s", i, err, line);
    /* Valid UTF-8 comes back exactly; invalid bytes are U+FFFD. */
    const char *rid = json_str(v, "request_id");
    assert_non_null(rid);
    if (strstr(hostile[i], "bad utf8") == NULL)
      assert_string_equal(rid, hostile[i]);
    else
      assert_string_equal(rid, "bad utf8 \xef\xbf\xbd\xef\xbf\xbd "
                               "\xef\xbf\xbd( \xef\xbf\xbd\xef\xbf\xbd");
    assert_non_null(json_str(v, "path"));
    assert_non_null(json_str(v, "user_agent"));
    yajl_tree_free(v);
    free(line);
  }

  /* A NUL and the other control bytes are escaped, never written raw. */
  const char nul[] = {'/', '\0', '\x01', '\x1f'};
  fe_access_entry e = sample();
  e.path = nul;
  e.path_len = sizeof(nul);
  size_t n = 0;
  char *line = fe_access_log_json(&e, &n);
  assert_int_equal(strlen(line), n);
  assert_non_null(strstr(line, "\"path\":\"/\\u0000\\u0001\\u001F\""));
  free(line);

  /* The path and the user agent are cut at FE_ACCESS_FIELD_MAX_BYTES. */
  static char big[3 * FE_ACCESS_FIELD_MAX_BYTES];
  memset(big, 'p', sizeof(big));
  e.path = big;
  e.path_len = sizeof(big);
  e.user_agent = big;
  e.user_agent_len = sizeof(big);
  line = fe_access_log_json(&e, &n);
  char err[256];
  yajl_val v = yajl_tree_parse(line, err, sizeof(err));
  assert_non_null(v);
  assert_int_equal(strlen(json_str(v, "path")), FE_ACCESS_FIELD_MAX_BYTES);
  assert_int_equal(strlen(json_str(v, "user_agent")),
                   FE_ACCESS_FIELD_MAX_BYTES);
  yajl_tree_free(v);
  free(line);
}

static void test_fe_log_server_lines(void **state) {
  char buf[256];
  size_t n = fe_log_format_line(buf, sizeof(buf), 1795683480123, CD_LOG_WARN,
                                NULL, "store: repaired");
  assert_string_equal(buf, "2026-11-26T08:58:00.123Z warning store: repaired");
  assert_int_equal(n, strlen(buf));
  fe_log_format_line(buf, sizeof(buf), 0, CD_LOG_INFO, "r-1", "ready");
  assert_string_equal(buf, "1970-01-01T00:00:00.000Z info [r-1] ready");
  /* A bad level is an error; a newline in a message cannot start a line. */
  fe_log_format_line(buf, sizeof(buf), 0, 7, "a\nb",
                     "GET /x\n1970-01-01T00:00:00.000Z info forged\x7f");
  assert_string_equal(buf, "1970-01-01T00:00:00.000Z error [a\\x0ab] GET "
                           "/x\\x0a1970-01-01T00:00:00.000Z info forged\\x7f");
  /* UTF-8 in a message stays as it is. */
  fe_log_format_line(buf, sizeof(buf), 0, CD_LOG_INFO, NULL, "caf\xc3\xa9");
  assert_string_equal(buf, "1970-01-01T00:00:00.000Z info caf\xc3\xa9");
  /* Cut, never past the buffer, never in the middle of an escape. */
  char small[32];
  n = fe_log_format_line(small, sizeof(small), 0, CD_LOG_INFO, NULL,
                         "\n\n\n\n");
  assert_true(n < sizeof(small));
  assert_string_equal(small, "1970-01-01T00:00:00.000Z info ");
}

static void test_fe_log_time_format(void **state) {
  char out[32];
  fe_time_format(0, out);
  assert_string_equal(out, "1970-01-01T00:00:00.000Z");
  fe_time_format(-1, out);
  assert_string_equal(out, "1969-12-31T23:59:59.999Z");
  /* The seconds are kept between calls: a new second, and a step back,
   * must both show. */
  fe_time_format(1795683480123, out);
  assert_string_equal(out, "2026-11-26T08:58:00.123Z");
  fe_time_format(1795683480999, out);
  assert_string_equal(out, "2026-11-26T08:58:00.999Z");
  fe_time_format(1795683481000, out);
  assert_string_equal(out, "2026-11-26T08:58:01.000Z");
  fe_time_format(1795683480007, out);
  assert_string_equal(out, "2026-11-26T08:58:00.007Z");
  /* A year past 9999 is wider, and still fits. */
  fe_time_format(253402300800000, out);
  assert_string_equal(out, "10000-01-01T00:00:00.000Z");
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
  fe_access_log_set_format(log, FE_ACCESS_FORMAT_JSON);
  fe_access_log_write(log, &e);
  fe_access_log_close(log);
  FILE *f = fopen(path, "r");
  char line[256];
  int lines = 0, json = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    lines++;
    json += line[0] == '{';
  }
  fclose(f);
  unlink(path);
  assert_int_equal(lines, 3);
  assert_int_equal(json, 1);

  assert_int_equal(
      fe_access_log_open("/nonexistent/dir/log", &log, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "--access-log /nonexistent/dir/log"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_log_line_fields),
      cmocka_unit_test(test_fe_log_default_fields_cannot_be_forged),
      cmocka_unit_test(test_fe_log_default_escapes),
      cmocka_unit_test(test_fe_log_long_path_is_cut),
      cmocka_unit_test(test_fe_log_format_words),
      cmocka_unit_test(test_fe_log_json_line),
      cmocka_unit_test(test_fe_log_json_escapes_hostile_values),
      cmocka_unit_test(test_fe_log_server_lines),
      cmocka_unit_test(test_fe_log_time_format),
      cmocka_unit_test(test_fe_log_file_gets_whole_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
