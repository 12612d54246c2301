/*
 * test_metrics.c: GET /metrics.
 *
 * Goal: Prometheus text that carries the front end's own lines unchanged and
 * the store's figures, each with HELP and TYPE, values that follow the
 * store. Method: a fake host whose metrics() returns a fixed line, a real
 * store written to directly, and the answer read line by line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_host.h"

extern const cd_plugin contactd_plugin;

/* The value of the sample line "name value", or -1 when absent. */
static double mt_value(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *line = text; line && *line;) {
    if (!strncmp(line, name, n) && line[n] == ' ') return atof(line + n + 1);
    line = strchr(line, '\n');
    if (line) line++;
  }
  return -1;
}

static void mt_done(void *ctx, int rc, uint64_t id) {
  (void)ctx;
  (void)rc;
  (void)id;
}

static void test_metrics_front_end_and_store(void **state) {
  (void)state;
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  assert_int_equal(contactd_plugin.route_count, 1);
  assert_string_equal(contactd_plugin.routes[0].pattern, "/metrics");
  assert_int_equal(contactd_plugin.routes[0].flags, 0);

  for (int i = 0; i < 3; i++) {
    char email[32];
    snprintf(email, sizeof email, "m%d@x.io", i);
    cs_contact c = {0};
    c.field[CS_FIRST_NAME] = (cs_str){"M", 1};
    c.field[CS_EMAIL] = (cs_str){email, strlen(email)};
    cs_error err = {0};
    uint64_t id;
    assert_int_equal(cs_create(fx.store, 1, &c, mt_done, NULL, &id, &err), 0);
  }
  cs_error err = {0};
  assert_int_equal(cs_flush(fx.store, &err), 0);

  struct cd_response *r = fh_call(&fx, "GET", "/metrics", NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type,
                      "text/plain; version=0.0.4; charset=utf-8");
  const char *body = r->body;
  /* the front end's lines, as given */
  assert_non_null(strstr(body, fh_front_metrics));
  /* the store's, with HELP and TYPE */
  static const char *const names[] = {"contactd_contacts",
                                      "contactd_store_disk_bytes",
                                      "contactd_store_live_bytes",
                                      "contactd_store_garbage_bytes",
                                      "contactd_store_garbage_ratio",
                                      "contactd_store_commits_total",
                                      "contactd_store_fsyncs_total",
                                      "contactd_store_index_bytes",
                                      "contactd_store_trash_contacts",
                                      "contactd_store_idempotency_keys",
                                      "contactd_store_idempotency_bytes",
                                      "contactd_store_segments",
                                      "contactd_store_failed"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char help[128], type[128];
    snprintf(help, sizeof help, "# HELP %s ", names[i]);
    snprintf(type, sizeof type, "# TYPE %s ", names[i]);
    assert_non_null(strstr(body, help));
    assert_non_null(strstr(body, type));
    assert_true(mt_value(body, names[i]) >= 0);
  }
  assert_true(mt_value(body, "contactd_contacts") == 3);
  assert_true(mt_value(body, "contactd_store_trash_contacts") == 0);
  assert_true(mt_value(body, "contactd_store_idempotency_keys") == 0);
  assert_true(mt_value(body, "contactd_store_commits_total") >= 3);
  assert_true(mt_value(body, "contactd_store_failed") == 0);
  double ratio = mt_value(body, "contactd_store_garbage_ratio");
  assert_true(ratio >= 0 && ratio <= 1);
  assert_true(mt_value(body, "contactd_store_disk_bytes") > 0);
  /* every line ends, and TYPE lines name a known type */
  assert_int_equal(body[r->body_len - 1], '\n');
  for (const char *t = strstr(body, "# TYPE "); t;
       t = strstr(t + 1, "# TYPE ")) {
    const char *eol = strchr(t, '\n');
    const char *sp = eol;
    while (sp > t && sp[-1] != ' ')
      sp--;
    size_t n = (size_t)(eol - sp);
    assert_true((n == 5 && !strncmp(sp, "gauge", 5)) ||
                (n == 7 && !strncmp(sp, "counter", 7)) ||
                (n == 9 && !strncmp(sp, "histogram", 9)));
  }
  fh_free(r);
  fh_close(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_metrics_front_end_and_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
