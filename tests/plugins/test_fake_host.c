/*
 * test_fake_host.c: the fake host's streamed answers and keyring, the way a
 * plugin's unit test uses them (tests/e2e/fe_streamer.c as the plugin).
 *
 * Goal: a plugin test can drive plugin API 3 without a socket: fh_call
 * returns once a streamed answer's writer ended it, with the whole body,
 * the status, the content type and the headers; fh_fixture's
 * stream_gone_after makes the client leave (stream_write returns -1);
 * host->keyring is the fixture's ring, and the caller's role is the
 * fixture's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"

extern const cd_plugin contactd_plugin;

static void drain_and_close(fh_fixture *fx) {
  fx->plugin->drain(fx->state);
  fh_close(fx);
}

static void test_streamed_answer_is_recorded_whole(void **state) {
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  struct cd_response *r =
      fh_call(&fx, "GET", "/stream/bytes", "bytes=300001&piece=7000", NULL);
  assert_true(r->streamed);
  assert_true(r->stream_ok);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type, "application/octet-stream");
  assert_string_equal(fh_header(r, "x-stream-bytes"), "300001");
  assert_int_equal(r->body_len, 300001);
  for (size_t i = 0; i < r->body_len; i++)
    if ((unsigned char)r->body[i] != i % 251) fail_msg("byte %zu differs", i);
  assert_int_equal(r->stream_writes, (300001 + 6999) / 7000);
  fh_free(r);

  r = fh_call(&fx, "GET", "/stream/bytes", "bytes=5000&fail=1", NULL);
  assert_true(r->stream_ended);
  assert_false(r->stream_ok);
  fh_free(r);
  drain_and_close(&fx);
}

static void test_client_leaving_mid_stream(void **state) {
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  fx.stream_gone_after = 100000;
  struct cd_response *r =
      fh_call(&fx, "GET", "/stream/bytes", "bytes=1000000", NULL);
  assert_false(r->stream_ok);
  assert_true(r->body_len <= 100000);
  fh_free(r);
  fx.stream_gone_after = 0;
  r = fh_call(&fx, "GET", "/stream/last", NULL, NULL);
  assert_non_null(strstr(r->body, "\"refused\": true"));
  fh_free(r);
  drain_and_close(&fx);
}

static void test_keyring_and_role(void **state) {
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  char key[CS_KEY_BYTES + 1];
  cs_key_info info;
  cs_error err = {0};
  assert_int_equal(
      cs_keys_add(fx.keys, "acme", CS_ROLE_READ_WRITE, key, &info, &err), 0);
  fx.role = CS_ROLE_ADMIN;
  struct cd_response *r = fh_call(&fx, "GET", "/admin/probe", NULL, NULL);
  assert_string_equal(fh_str(r, "role", NULL), "admin");
  assert_int_equal(
      YAJL_GET_INTEGER(yajl_tree_get(fh_json(r), (const char *[]){"keys", NULL},
                                     yajl_t_number)),
      1);
  fh_free(r);
  char path[64];
  snprintf(path, sizeof path, "/admin/probe/revoke/%s", info.key_id);
  r = fh_call(&fx, "POST", path, NULL, NULL);
  assert_int_equal(r->status, 200);
  fh_free(r);
  const cs_key_info *got = NULL;
  assert_int_equal(cs_keys_check(fx.keys, key, CS_KEY_BYTES, &got), CS_EKEY);
  drain_and_close(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_streamed_answer_is_recorded_whole),
      cmocka_unit_test(test_client_leaving_mid_stream),
      cmocka_unit_test(test_keyring_and_role),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
