/*
 * test_fe_metrics.c: request counters and latency histograms.
 *
 * Goal: counts land under the right route and status, buckets are
 * cumulative with +Inf equal to _count, the text appends to a caller's
 * buffer, and counting from many threads loses nothing.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_metrics.h"

static fe_metrics *make(void) {
  const char *methods[] = {"GET", "POST"};
  const char *patterns[] = {"/contacts/{id}", "/contacts"};
  fe_metrics *m;
  assert_int_equal(fe_metrics_create(2, methods, patterns, &m), 0);
  return m;
}

static void assert_has(const char *text, const char *line) {
  if (strstr(text, line) == NULL)
    fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void test_fe_metrics_counts_by_route_and_status(void **state) {
  fe_metrics *m = make();
  fe_metrics_observe(m, 0, 200, 300);
  fe_metrics_observe(m, 0, 200, 700);
  fe_metrics_observe(m, 0, 404, 20000000);
  fe_metrics_observe(m, 1, 409, 1000);
  fe_metrics_observe(m, FE_METRICS_UNMATCHED, 404, 10);
  char *text = NULL;
  size_t len = fe_metrics_render(m, &text);
  assert_non_null(text);
  assert_int_equal(len, strlen(text));
  assert_has(text, "# TYPE contactd_http_requests_total counter\n");
  assert_has(text, "contactd_http_requests_total{method=\"GET\",route=\"/"
                   "contacts/{id}\",status=\"200\"} 2\n");
  assert_has(text, "contactd_http_requests_total{method=\"GET\",route=\"/"
                   "contacts/{id}\",status=\"404\"} 1\n");
  assert_has(text, "contactd_http_requests_total{method=\"POST\",route=\"/"
                   "contacts\",status=\"409\"} 1\n");
  assert_has(text, "contactd_http_requests_total{method=\"-\",route=\""
                   "unmatched\",status=\"404\"} 1\n");
  /* Cumulative buckets; the 20 s request is only in +Inf. */
  assert_has(text, "contactd_http_request_duration_seconds_bucket{method=\""
                   "GET\",route=\"/contacts/{id}\",le=\"0.0005\"} 1\n");
  assert_has(text, "contactd_http_request_duration_seconds_bucket{method=\""
                   "GET\",route=\"/contacts/{id}\",le=\"0.001\"} 2\n");
  assert_has(text, "contactd_http_request_duration_seconds_bucket{method=\""
                   "GET\",route=\"/contacts/{id}\",le=\"10\"} 2\n");
  assert_has(text, "contactd_http_request_duration_seconds_bucket{method=\""
                   "GET\",route=\"/contacts/{id}\",le=\"+Inf\"} 3\n");
  assert_has(text, "contactd_http_request_duration_seconds_count{method=\""
                   "GET\",route=\"/contacts/{id}\"} 3\n");
  assert_has(text, "contactd_http_request_duration_seconds_sum{method=\""
                   "GET\",route=\"/contacts/{id}\"} 20.001000\n");
  /* A status never seen is not written. */
  assert_null(strstr(text, "status=\"500\""));
  free(text);
  fe_metrics_destroy(m);
}

static void test_fe_metrics_appends_to_a_buffer(void **state) {
  fe_metrics *m = make();
  char *text = strdup("# mine\n");
  size_t len = fe_metrics_render(m, &text);
  assert_int_equal(len, strlen(text));
  assert_memory_equal(text, "# mine\n# HELP", 13);
  free(text);
  fe_metrics_destroy(m);
}

static void *hammer(void *arg) {
  for (int i = 0; i < 100000; i++)
    fe_metrics_observe(arg, 1, 200, (uint64_t)i % 3000);
  return NULL;
}

static void test_fe_metrics_threads_lose_nothing(void **state) {
  fe_metrics *m = make();
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, hammer, m);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  char *text = NULL;
  fe_metrics_render(m, &text);
  assert_has(text, "contactd_http_requests_total{method=\"POST\",route=\"/"
                   "contacts\",status=\"200\"} 400000\n");
  free(text);
  fe_metrics_destroy(m);
}

static void test_fe_metrics_label_escaping(void **state) {
  const char *methods[] = {"GET"};
  const char *patterns[] = {"/a\"b\\c"};
  fe_metrics *m;
  assert_int_equal(fe_metrics_create(1, methods, patterns, &m), 0);
  fe_metrics_observe(m, 0, 200, 1);
  char *text = NULL;
  fe_metrics_render(m, &text);
  assert_has(text, "route=\"/a\\\"b\\\\c\"");
  free(text);
  fe_metrics_destroy(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_metrics_counts_by_route_and_status),
      cmocka_unit_test(test_fe_metrics_appends_to_a_buffer),
      cmocka_unit_test(test_fe_metrics_threads_lose_nothing),
      cmocka_unit_test(test_fe_metrics_label_escaping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
