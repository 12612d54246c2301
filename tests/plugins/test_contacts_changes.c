/*
 * test_contacts_changes.c: GET /contacts/changes (API.md "Changes") and
 * x-change-cursor, through the plugin's route table over a real store: the
 * page's shape, every parameter's errors at and past its limits, types and
 * include, paging, a query's as_of as a cursor, an expired cursor's 410,
 * and the long-poll (woken by a commit, timed out, answered at drain,
 * counted in the metrics).
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ct.h"
#include "fake_host.h"

extern const cd_plugin contactd_plugin;

typedef struct cd_response res_t;

#define T0 1800000000000ll
static int64_t test_now = T0;
static int64_t clock_of(void *ctx) {
  (void)ctx;
  return __atomic_load_n(&test_now, __ATOMIC_RELAXED);
}

static int setup(void **state) {
  fh_fixture *fx = calloc(1, sizeof *fx);
  test_now = T0;
  cs_options o = {.durability = CS_DURABILITY_NONE,
                  .changes_ms = 2 * CS_DAY_MS,
                  .now_ms = clock_of};
  fh_open(fx, &contactd_plugin, &o);
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

static res_t *changes(fh_fixture *fx, const char *query) {
  return fh_call(fx, "GET", "/contacts/changes", query, NULL);
}

static yajl_val member(yajl_val obj, const char *name) {
  const char *path[] = {name, NULL};
  return yajl_tree_get(obj, path, yajl_t_any);
}

static yajl_val list_of(res_t *r) {
  yajl_val v = member(fh_json(r), "changes");
  assert_true(YAJL_IS_ARRAY(v));
  return v;
}

static uint64_t cursor_of(res_t *r) {
  return strtoull(fh_str(r, "next_cursor", NULL), NULL, 10);
}

#define ALL_TYPES "types=created,updated,deleted,restored,purged"

static void test_changes_parameter_errors(void **state) {
  fh_fixture *fx = *state;
  static const struct {
    const char *query, *code, *field;
  } bad[] = {
      {"limit=0", "invalid_field", "limit"},
      {"limit=1001", "invalid_field", "limit"},
      {"limit=x", "invalid_field", "limit"},
      {"wait=61", "invalid_field", "wait"},
      {"wait=-1", "invalid_field", "wait"},
      {"wait=1.5", "invalid_field", "wait"},
      {"types=created,nothing", "invalid_field", "types"},
      {"types=", "invalid_field", "types"},
      {"types=created,", "invalid_field", "types"},
      {"include=all", "invalid_field", "include"},
      {"cursor=abc", "invalid_cursor", "cursor"},
      {"cursor=", "invalid_cursor", "cursor"},
      {"cursor=99999", "invalid_cursor", "cursor"}, /* past the end */
      {"limit=5&limit=6", "duplicate_field", "limit"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    res_t *r = changes(fx, bad[i].query);
    fh_assert_error(r, 400, bad[i].code, bad[i].field);
    fh_free(r);
  }
  /* At the edges: fine. */
  static const char *const good[] = {"limit=1", "limit=1000",   "wait=0",
                                     ALL_TYPES, "include=none", "cursor=now",
                                     "cursor=0"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    res_t *r = changes(fx, good[i]);
    assert_int_equal(r->status, 200);
    fh_free(r);
  }
}

static void test_changes_every_write_once_in_order(void **state) {
  fh_fixture *fx = *state;
  res_t *r = fh_call(fx, "POST", "/contacts", NULL,
                     "{\"first_name\":\"Ann\",\"email\":\"ann@x.io\"}");
  assert_int_equal(r->status, 200);
  const char *c1 = fh_header(r, "x-change-cursor");
  assert_non_null(c1);
  char *id = strdup(fh_str(r, "id", NULL));
  uint64_t after_create = strtoull(c1, NULL, 10);
  fh_free(r);
  char path[64];
  snprintf(path, sizeof path, "/contacts/%s", id);
  r = fh_call(fx, "PATCH", path, NULL,
              "{\"company\":\"Acme\",\"job_title\":\"CTO\"}");
  assert_int_equal(r->status, 200);
  uint64_t after_edit = strtoull(fh_header(r, "x-change-cursor"), NULL, 10);
  assert_true(after_edit > after_create);
  fh_free(r);
  /* An upsert that changes nothing: no change, the cursor is the end. */
  r = fh_call(fx, "POST", "/contacts/upsert", NULL,
              "{\"email\":\"ann@x.io\",\"company\":\"Acme\"}");
  assert_string_equal(fh_str(r, "result", NULL), "unchanged");
  assert_int_equal(strtoull(fh_header(r, "x-change-cursor"), NULL, 10),
                   after_edit);
  fh_free(r);
  r = fh_call(fx, "POST", "/contacts/batch", NULL,
              "{\"contacts\":[{\"first_name\":\"B\",\"email\":\"b@x.io\"},"
              "{\"first_name\":\"C\",\"email\":\"c@x.io\"}]}");
  uint64_t after_batch = strtoull(fh_header(r, "x-change-cursor"), NULL, 10);
  assert_int_equal(after_batch, after_edit + 2); /* one change a contact */
  fh_free(r);
  r = fh_call(fx, "DELETE", path, NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_non_null(fh_header(r, "x-change-cursor"));
  fh_free(r);

  r = changes(fx, NULL);
  assert_int_equal(r->status, 200);
  yajl_val v = list_of(r);
  assert_int_equal(v->u.array.len, 5);
  static const char *const types[] = {"created", "updated", "created",
                                      "created", "deleted"};
  for (size_t i = 0; i < 5; i++) {
    yajl_val e = v->u.array.values[i];
    assert_string_equal(YAJL_GET_STRING(member(e, "type")), types[i]);
    assert_non_null(member(e, "contact"));
  }
  yajl_val edit = v->u.array.values[1];
  yajl_val cf = member(edit, "changed_fields");
  assert_int_equal(cf->u.array.len, 2);
  assert_string_equal(YAJL_GET_STRING(cf->u.array.values[0]), "company");
  assert_string_equal(YAJL_GET_STRING(cf->u.array.values[1]), "job_title");
  assert_int_equal(YAJL_GET_INTEGER(member(edit, "version")), 2);
  /* The contact as it is now: deleted, so null, on every entry of it. */
  assert_true(YAJL_IS_NULL(member(edit, "contact")));
  assert_true(YAJL_IS_NULL(member(v->u.array.values[4], "contact")));
  assert_true(YAJL_IS_OBJECT(member(v->u.array.values[2], "contact")));
  assert_int_equal(YAJL_GET_INTEGER(member(v->u.array.values[4], "version")),
                   2);
  assert_int_equal(YAJL_GET_INTEGER(member(fh_json(r), "count")), 5);
  assert_true(YAJL_IS_FALSE(member(fh_json(r), "has_more")));
  fh_free(r);

  /* Pages of two, each continuing where the last ended. */
  uint64_t at = 0;
  int pages = 0, seen = 0;
  for (;;) {
    char *q = fmt("cursor=%llu&limit=2&include=none", (unsigned long long)at);
    r = changes(fx, q);
    free(q);
    yajl_val pv = list_of(r);
    for (size_t i = 0; i < pv->u.array.len; i++)
      assert_null(member(pv->u.array.values[i], "contact"));
    seen += (int)pv->u.array.len;
    pages++;
    at = cursor_of(r);
    bool more = YAJL_IS_TRUE(member(fh_json(r), "has_more"));
    fh_free(r);
    if (!more) break;
  }
  assert_int_equal(seen, 5);
  assert_int_equal(pages, 3);
  /* Only creates, from a query's as_of taken after the first create. */
  char *q = fmt("cursor=%llu&types=created", (unsigned long long)after_create);
  r = changes(fx, q);
  free(q);
  assert_int_equal(list_of(r)->u.array.len, 2);
  fh_free(r);
  r = fh_call(fx, "POST", "/contacts/query", NULL, "{}");
  const char *as_of = fh_str(r, "as_of", NULL);
  assert_non_null(as_of);
  q = fmt("cursor=%s", as_of);
  res_t *r2 = changes(fx, q);
  free(q);
  assert_int_equal(r2->status, 200);
  assert_int_equal(list_of(r2)->u.array.len, 0);
  assert_string_equal(fh_str(r2, "next_cursor", NULL), as_of);
  fh_free(r2);
  fh_free(r);
  /* Another account sees none of it. */
  fx->account = 7;
  r = changes(fx, NULL);
  assert_int_equal(list_of(r)->u.array.len, 0);
  fh_free(r);
  fx->account = 0;
  free(id);
}

static void test_changes_expired_cursor_is_410(void **state) {
  fh_fixture *fx = *state;
  fh_create(fx, "{\"first_name\":\"A\",\"email\":\"a@x.io\"}");
  test_now += 3 * CS_DAY_MS; /* past the 2-day window */
  fh_create(fx, "{\"first_name\":\"B\",\"email\":\"b@x.io\"}");
  res_t *r = changes(fx, "cursor=0");
  /* The error object has oldest_cursor, so the codec writes it whole. */
  assert_int_equal(r->status, 410);
  assert_string_equal(fh_str(r, "error", "code", NULL), "cursor_expired");
  assert_string_equal(fh_str(r, "error", "field", NULL), "cursor");
  const char *oldest = fh_str(r, "error", "oldest_cursor", NULL);
  assert_non_null(oldest);
  char *q = fmt("cursor=%s", oldest);
  fh_free(r);
  r = changes(fx, q);
  free(q);
  assert_int_equal(r->status, 200);
  assert_int_equal(list_of(r)->u.array.len, 1);
  fh_free(r);
  /* No cursor: the oldest kept. */
  r = changes(fx, NULL);
  assert_int_equal(list_of(r)->u.array.len, 1);
  fh_free(r);
}

/* ------------------------------------------------------------- long-poll */

typedef struct later {
  fh_fixture *fx;
  useconds_t delay_us;
  const char *query; /* a GET of changes, or NULL: a create */
  res_t *r;
} later;

static void *later_main(void *arg) {
  later *l = arg;
  usleep(l->delay_us);
  if (l->query)
    l->r = changes(l->fx, l->query);
  else
    fh_free(fh_call(l->fx, "POST", "/contacts", NULL,
                    "{\"first_name\":\"W\",\"email\":\"w@x.io\"}"));
  return NULL;
}

static double seconds_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_changes_long_poll(void **state) {
  fh_fixture *fx = *state;
  /* Woken by a commit, well before the wait is over. */
  later w = {fx, 200000, NULL, NULL};
  pthread_t t;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_create(&t, NULL, later_main, &w);
  res_t *r = changes(fx, "cursor=now&wait=20");
  double took = seconds_since(&t0);
  pthread_join(t, NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(list_of(r)->u.array.len, 1);
  assert_true(took >= 0.19 && took < 5);
  fh_free(r);
  /* Nothing comes: an empty page once the wait is over, at the end. */
  clock_gettime(CLOCK_MONOTONIC, &t0);
  r = changes(fx, "cursor=now&wait=1");
  took = seconds_since(&t0);
  assert_int_equal(list_of(r)->u.array.len, 0);
  assert_true(took >= 0.99 && took < 5);
  assert_int_equal(cursor_of(r), cs_changes_end(fx->store));
  fh_free(r);
  /* Changes of another type do not end the wait. */
  later w2 = {fx, 0, "cursor=now&wait=1&types=deleted", NULL};
  pthread_create(&t, NULL, later_main, &w2);
  usleep(100000);
  fh_create(fx, "{\"first_name\":\"X\",\"email\":\"x@x.io\"}");
  pthread_join(t, NULL);
  assert_int_equal(list_of(w2.r)->u.array.len, 0);
  assert_int_equal(cursor_of(w2.r), cs_changes_end(fx->store));
  fh_free(w2.r);
}

static void test_changes_waiters_counted_and_drained(void **state) {
  fh_fixture *fx = *state;
  later w = {fx, 0, "cursor=now&wait=30", NULL};
  pthread_t t;
  pthread_create(&t, NULL, later_main, &w);
  char *text = NULL;
  for (int i = 0; i < 200; i++) { /* until the reader waits */
    free(text);
    text = NULL;
    contactd_plugin.metrics(fx->state, &text);
    if (strstr(text, "contactd_feed_readers_waiting 1\n")) break;
    usleep(10000);
  }
  assert_non_null(strstr(text, "contactd_feed_readers_waiting 1\n"));
  free(text);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  contactd_plugin.drain(fx->state);
  pthread_join(t, NULL);
  assert_true(seconds_since(&t0) < 5);
  assert_int_equal(w.r->status, 200);
  assert_int_equal(list_of(w.r)->u.array.len, 0);
  fh_free(w.r);
  /* After drain nobody is held. */
  clock_gettime(CLOCK_MONOTONIC, &t0);
  res_t *r = changes(fx, "cursor=now&wait=30");
  assert_true(seconds_since(&t0) < 5);
  assert_int_equal(r->status, 200);
  fh_free(r);
  text = NULL;
  contactd_plugin.metrics(fx->state, &text);
  assert_non_null(strstr(text, "contactd_feed_readers_waiting 0\n"));
  free(text);
}

/* Followers of one account waiting at the same cursor get the page one
 * commit made, each whole (the feed thread renders it once for them). */
static void test_changes_waiters_at_one_cursor_share_a_page(void **state) {
  fh_fixture *fx = *state;
  enum { N = 4 };
  char *q =
      fmt("cursor=%llu&wait=20", (unsigned long long)cs_changes_end(fx->store));
  later w[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++) {
    w[i] = (later){fx, 0, q, NULL};
    pthread_create(&t[i], NULL, later_main, &w[i]);
  }
  char *text = NULL;
  for (int i = 0; i < 500; i++) { /* until all of them wait */
    free(text);
    text = NULL;
    contactd_plugin.metrics(fx->state, &text);
    if (strstr(text, "contactd_feed_readers_waiting 4\n")) break;
    usleep(10000);
  }
  assert_non_null(strstr(text, "contactd_feed_readers_waiting 4\n"));
  free(text);
  fh_free(fh_call(fx, "POST", "/contacts/batch", NULL,
                  "{\"contacts\":[{\"first_name\":\"S\",\"email\":"
                  "\"s1@x.io\"},{\"first_name\":\"T\",\"email\":"
                  "\"s2@x.io\"}]}"));
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(w[i].r->status, 200);
    yajl_val v = list_of(w[i].r);
    assert_true(v->u.array.len >= 1 && v->u.array.len <= 2);
    assert_string_equal(YAJL_GET_STRING(member(v->u.array.values[0], "type")),
                        "created");
  }
  for (int i = 0; i < N; i++)
    fh_free(w[i].r);
  free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_changes_parameter_errors, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_changes_every_write_once_in_order,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_changes_expired_cursor_is_410, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_changes_long_poll, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_changes_waiters_at_one_cursor_share_a_page, setup, teardown),
      cmocka_unit_test_setup_teardown(test_changes_waiters_counted_and_drained,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
