/*
 * test_fe_metrics.c: request counters and latency histograms.
 *
 * Goal: counts land under the right route and status, buckets are
 * cumulative with +Inf equal to _count and start at 10 us, the text appends
 * to a caller's buffer, and counting from many threads loses nothing. The
 * process's figures render under Prometheus's names, only those that were
 * read, with contactd_build_info.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_limits.h"
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

/* More threads than counter shards: some count alone, some share one, and
 * the scrape sums them all. */
#define HAMMERS (FE_METRICS_SHARDS + 2)

static void test_fe_metrics_threads_lose_nothing(void **state) {
  fe_metrics *m = make();
  pthread_t t[HAMMERS];
  for (int i = 0; i < HAMMERS; i++)
    pthread_create(&t[i], NULL, hammer, m);
  for (int i = 0; i < HAMMERS; i++)
    pthread_join(t[i], NULL);
  char *text = NULL;
  fe_metrics_render(m, &text);
  char want[160];
  snprintf(want, sizeof want,
           "contactd_http_requests_total{method=\"POST\",route=\"/"
           "contacts\",status=\"200\"} %d\n",
           HAMMERS * 100000);
  assert_has(text, want);
  snprintf(want, sizeof want,
           "contactd_http_request_duration_seconds_count{method=\"POST\","
           "route=\"/contacts\"} %d\n",
           HAMMERS * 100000);
  assert_has(text, want);
  free(text);
  fe_metrics_destroy(m);
}

static void test_fe_metrics_label_escaping(void **state) {
  const char *methods[] = {"GET"};
  const char *patterns[] = {"/a\"b\\c\nd"};
  fe_metrics *m;
  assert_int_equal(fe_metrics_create(1, methods, patterns, &m), 0);
  fe_metrics_observe(m, 0, 200, 1);
  char *text = NULL;
  fe_metrics_render(m, &text);
  assert_has(text, "route=\"/a\\\"b\\\\c\\nd\"");
  free(text);
  fe_metrics_destroy(m);
}

static void test_fe_metrics_buckets_from_ten_micros(void **state) {
  fe_metrics *m = make();
  fe_metrics_observe(m, 0, 200, 10); /* at the first edge: in it */
  fe_metrics_observe(m, 0, 200, 11);
  fe_metrics_observe(m, 0, 200, 20); /* a read served from memory */
  fe_metrics_observe(m, 0, 200, 10000000);
  fe_metrics_observe(m, 0, 200, 10000001);
  char *text = NULL;
  fe_metrics_render(m, &text);
  const char *pre = "contactd_http_request_duration_seconds_bucket{method=\""
                    "GET\",route=\"/contacts/{id}\",";
  char line[256];
  const struct {
    const char *le;
    int n;
  } want[] = {{"1e-05", 1},  {"2.5e-05", 3}, {"5e-05", 3},
              {"0.0001", 3}, {"0.00025", 3}, {"0.0005", 3},
              {"5", 3},      {"10", 4},      {"+Inf", 5}};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    snprintf(line, sizeof(line), "%sle=\"%s\"} %d\n", pre, want[i].le,
             want[i].n);
    assert_has(text, line);
  }
  /* 19 edges and +Inf, for each of the three slots. */
  size_t buckets = 0;
  for (const char *p = text; (p = strstr(p, "_bucket{")) != NULL; p++)
    buckets++;
  assert_int_equal(buckets, 3 * 20);
  free(text);
  fe_metrics_destroy(m);
}

static void test_fe_metrics_render_process(void **state) {
  fe_process_stats p = {.have_stat = true,
                        .resident_bytes = 1048576,
                        .virtual_bytes = 4194304,
                        .cpu_seconds = 1.5,
                        .start_time_seconds = 1700000000.25,
                        .have_fds = true,
                        .open_fds = 12,
                        .have_max_fds = true,
                        .max_fds = 1024};
  fe_build_info b = {.version = "1.2.3",
                     .commit = "v1-2-g\"x\\",
                     .h2o = "2.2.5",
                     .plugin_api = 2};
  char *text = strdup("# before\n");
  size_t len = fe_metrics_render_process(&p, &b, &text);
  assert_int_equal(len, strlen(text));
  assert_memory_equal(text, "# before\n# HELP ", 16);
  assert_has(text, "# TYPE process_cpu_seconds_total counter\n"
                   "process_cpu_seconds_total 1.50\n");
  assert_has(text, "# TYPE process_resident_memory_bytes gauge\n"
                   "process_resident_memory_bytes 1048576\n");
  assert_has(text, "\nprocess_virtual_memory_bytes 4194304\n");
  assert_has(text, "\nprocess_start_time_seconds 1700000000.25\n");
  assert_has(text, "\nprocess_open_fds 12\n");
  assert_has(text, "\nprocess_max_fds 1024\n");
  assert_has(text, "# TYPE contactd_build_info gauge\n"
                   "contactd_build_info{version=\"1.2.3\",commit=\"v1-2-g\\\""
                   "x\\\\\",plugin_api=\"2\",h2o=\"2.2.5\"} 1\n");
  free(text);

  /* What could not be read is left out, never made up. */
  fe_process_stats none = {.have_max_fds = true, .max_fds = UINT64_MAX};
  text = NULL;
  fe_metrics_render_process(&none, &b, &text);
  assert_null(strstr(text, "process_resident_memory_bytes"));
  assert_null(strstr(text, "process_open_fds"));
  assert_has(text, "\nprocess_max_fds +Inf\n");
  assert_has(text, "\ncontactd_build_info{");
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_metrics_counts_by_route_and_status),
      cmocka_unit_test(test_fe_metrics_appends_to_a_buffer),
      cmocka_unit_test(test_fe_metrics_threads_lose_nothing),
      cmocka_unit_test(test_fe_metrics_label_escaping),
      cmocka_unit_test(test_fe_metrics_buckets_from_ten_micros),
      cmocka_unit_test(test_fe_metrics_render_process),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
