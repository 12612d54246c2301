/*
 * test_fe_plugins.c: the plugin loader, driven with plugin tables built in
 * the test (no shared objects needed).
 *
 * Goal: a table of a version this contactd does not load (0, or one past
 * CD_PLUGIN_API_VERSION) is refused naming its version and the ones
 * loaded; a version-1 table, which ends before drain and metrics, still
 * loads and is never read past its end (the test gives one as an object
 * of exactly that size, so a sanitizer build catches a read past it); a
 * failing create stops the start with its message; routes land in the
 * router with CD_ROUTE_WRITE implying CD_ROUTE_AUTH; a route taken by an
 * earlier plugin, a route without a handler, a nameless table or a second
 * plugin of one name are refused; drain and destroy run in reverse order;
 * every plugin's metrics are appended in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_plugins.h"

static char destroyed[16];
static size_t destroyed_len;

static int handler(void *state, const cd_request *req, cd_response *res) {
  return CD_DONE;
}

static int create_ok(const cd_host *host, cs_store *store, void **state_out,
                     char *errbuf, size_t errlen) {
  *state_out = (void *)"state";
  return 0;
}

static int create_fail(const cd_host *host, cs_store *store, void **state_out,
                       char *errbuf, size_t errlen) {
  snprintf(errbuf, errlen, "no database here");
  return -1;
}

static void destroy_a(void *state) {
  destroyed[destroyed_len++] = 'a';
}
static void destroy_b(void *state) {
  destroyed[destroyed_len++] = 'b';
}

static const cd_route routes_a[] = {
    {"GET", "/a", 0, handler},
    {"POST", "/a", CD_ROUTE_WRITE, handler},
};
static const cd_route routes_b[] = {{"GET", "/b/{id}", CD_ROUTE_AUTH, handler}};
static const cd_route routes_clash[] = {{"GET", "/a", 0, handler}};
static const cd_route routes_nohandler[] = {{"GET", "/x", 0, NULL}};

static const cd_plugin plugin_a = {
    CD_PLUGIN_API_VERSION, "a", create_ok, destroy_a, routes_a, 2};
static const cd_plugin plugin_b = {
    CD_PLUGIN_API_VERSION, "b", NULL, destroy_b, routes_b, 1};

static const cd_host host;

static void test_fe_plugins_other_version_is_refused(void **state) {
  const uint32_t versions[] = {0, CD_PLUGIN_API_VERSION + 1,
                               CD_PLUGIN_API_VERSION + 6};
  for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
    fe_plugin_set *set;
    fe_router *r;
    char err[512];
    cd_plugin p = plugin_a;
    p.api_version = versions[i];
    assert_int_equal(fe_plugins_create(&set), 0);
    assert_int_equal(fe_router_create(&r), 0);
    assert_int_equal(
        fe_plugins_add(set, &p, "/x/a.so", &host, NULL, r, err, sizeof(err)),
        -1);
    char want[64];
    snprintf(want, sizeof(want), "version %u,", versions[i]);
    assert_non_null(strstr(err, "/x/a.so"));
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want), "versions %d to %d", CD_PLUGIN_API_OLDEST,
             CD_PLUGIN_API_VERSION);
    assert_non_null(strstr(err, want));
    assert_int_equal(fe_plugins_count(set), 0);
    assert_int_equal(fe_router_count(r), 0);
    fe_plugins_destroy(set);
    fe_router_destroy(r);
  }
}

/* A table as a plugin built against the version-1 header has it: it ends
 * after route_count. */
typedef struct plugin_v1 {
  uint32_t api_version;
  const char *name;
  int (*create)(const cd_host *host, cs_store *store, void **state_out,
                char *errbuf, size_t errlen);
  void (*destroy)(void *state);
  const cd_route *routes;
  size_t route_count;
} plugin_v1;

_Static_assert(sizeof(plugin_v1) == offsetof(cd_plugin, drain),
               "a version-1 table ends where drain begins");

/* Allocated at exactly its size, so a read past it is caught by ASan. */
static const plugin_v1 *plugin_v1_table(void) {
  plugin_v1 *t = malloc(sizeof(*t));
  assert_non_null(t);
  *t = (plugin_v1){1, "old", create_ok, destroy_a, routes_a, 2};
  return t;
}

static void test_fe_plugins_version_1_table_still_loads(void **state) {
  fe_plugin_set *set;
  fe_router *r;
  char err[512] = "";
  destroyed_len = 0;
  const plugin_v1 *old = plugin_v1_table();
  assert_int_equal(fe_plugins_create(&set), 0);
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(fe_plugins_add(set, (const cd_plugin *)old, "old.so", &host,
                                  NULL, r, err, sizeof(err)),
                   0);
  assert_int_equal(fe_plugins_count(set), 1);
  assert_string_equal(fe_plugins_name(set, 0), "old");
  assert_int_equal(fe_router_count(r), 2);
  /* Neither drain nor metrics is read from the short table. */
  fe_plugins_drain(set);
  char *text = NULL;
  assert_int_equal(fe_plugins_metrics(set, &text), 0);
  assert_null(text);
  fe_plugins_destroy(set);
  assert_int_equal(destroyed_len, 1);
  fe_router_destroy(r);
  free((void *)old);
}

static char drained[16];
static size_t drained_len;
static void drain_a(void *state) {
  drained[drained_len++] = 'a';
}
static void drain_b(void *state) {
  drained[drained_len++] = 'b';
}

/* Appends "name value\n" lines as a plugin's metrics callback would. */
static size_t append(char **out, const char *line) {
  size_t had = *out != NULL ? strlen(*out) : 0;
  char *p = realloc(*out, had + strlen(line) + 1);
  if (p == NULL) return 0;
  memcpy(p + had, line, strlen(line) + 1);
  *out = p;
  return had + strlen(line);
}
static size_t metrics_a(void *state, char **out) {
  return append(out, "a_total 1\n");
}
static size_t metrics_b(void *state, char **out) {
  return append(out, "b_total 2\n");
}
static size_t metrics_oom(void *state, char **out) {
  return 0;
}

static void test_fe_plugins_drain_and_metrics_reach_every_plugin(void **st) {
  fe_plugin_set *set;
  fe_router *r;
  char err[512];
  drained_len = 0;
  cd_plugin a = plugin_a, b = plugin_b, c = {CD_PLUGIN_API_VERSION, "c"};
  a.drain = drain_a;
  a.metrics = metrics_a;
  b.drain = drain_b;
  b.metrics = metrics_b;
  c.metrics = metrics_oom; /* fails: adds nothing, the others still show */
  assert_int_equal(fe_plugins_create(&set), 0);
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(
      fe_plugins_add(set, &a, "a.so", &host, NULL, r, err, sizeof(err)), 0);
  assert_int_equal(
      fe_plugins_add(set, &c, "c.so", &host, NULL, r, err, sizeof(err)), 0);
  assert_int_equal(
      fe_plugins_add(set, &b, "b.so", &host, NULL, r, err, sizeof(err)), 0);
  char *text = strdup("front 0\n");
  size_t len = fe_plugins_metrics(set, &text);
  assert_string_equal(text, "front 0\na_total 1\nb_total 2\n");
  assert_int_equal(len, strlen(text));
  free(text);
  fe_plugins_drain(set);
  assert_int_equal(drained_len, 2);
  assert_memory_equal(drained, "ba", 2);
  fe_plugins_destroy(set);
  fe_router_destroy(r);
  /* No set: nothing to drain, and the text is left as it was. */
  fe_plugins_drain(NULL);
  text = NULL;
  assert_int_equal(fe_plugins_metrics(NULL, &text), 0);
  assert_null(text);
}

static void test_fe_plugins_routes_are_registered(void **state) {
  fe_plugin_set *set;
  fe_router *r;
  char err[512];
  destroyed_len = 0;
  assert_int_equal(fe_plugins_create(&set), 0);
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(
      fe_plugins_add(set, &plugin_a, "a.so", &host, NULL, r, err, sizeof(err)),
      0);
  assert_int_equal(
      fe_plugins_add(set, &plugin_b, "b.so", &host, NULL, r, err, sizeof(err)),
      0);
  assert_int_equal(fe_plugins_count(set), 2);
  assert_string_equal(fe_plugins_name(set, 1), "b");
  assert_int_equal(fe_router_count(r), 3);
  const fe_route *post = fe_router_at(r, 1);
  assert_string_equal(post->method, "POST");
  assert_int_equal(post->flags, CD_ROUTE_WRITE | CD_ROUTE_AUTH);
  const fe_target *t = post->payload;
  assert_ptr_equal(t->handle, handler);
  assert_string_equal((const char *)t->state, "state");
  assert_string_equal(t->plugin, "a");
  fe_plugins_destroy(set);
  assert_int_equal(destroyed_len, 2);
  assert_memory_equal(destroyed, "ba", 2);
  fe_router_destroy(r);
}

static void test_fe_plugins_create_failure_is_reported(void **state) {
  fe_plugin_set *set;
  fe_router *r;
  char err[512];
  cd_plugin p = plugin_a;
  p.create = create_fail;
  assert_int_equal(fe_plugins_create(&set), 0);
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(
      fe_plugins_add(set, &p, "a.so", &host, NULL, r, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "no database here"));
  assert_non_null(strstr(err, "a.so"));
  assert_int_equal(fe_plugins_count(set), 0);
  fe_plugins_destroy(set);
  fe_router_destroy(r);
}

static void test_fe_plugins_bad_tables_are_refused(void **state) {
  fe_plugin_set *set;
  fe_router *r;
  char err[512];
  assert_int_equal(fe_plugins_create(&set), 0);
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(
      fe_plugins_add(set, &plugin_a, "a.so", &host, NULL, r, err, sizeof(err)),
      0);

  cd_plugin clash = {CD_PLUGIN_API_VERSION, "clash", NULL, NULL,
                     routes_clash,          1};
  assert_int_equal(
      fe_plugins_add(set, &clash, "c.so", &host, NULL, r, err, sizeof(err)),
      -1);
  assert_non_null(strstr(err, "already taken"));

  cd_plugin nohandler = {CD_PLUGIN_API_VERSION, "nh", NULL, NULL,
                         routes_nohandler,      1};
  assert_int_equal(
      fe_plugins_add(set, &nohandler, "n.so", &host, NULL, r, err, sizeof(err)),
      -1);
  assert_non_null(strstr(err, "no handler"));

  cd_plugin noname = plugin_b;
  noname.name = NULL;
  assert_int_equal(
      fe_plugins_add(set, &noname, "x.so", &host, NULL, r, err, sizeof(err)),
      -1);

  cd_plugin again = plugin_b;
  again.name = "a";
  assert_int_equal(
      fe_plugins_add(set, &again, "a2.so", &host, NULL, r, err, sizeof(err)),
      -1);
  assert_non_null(strstr(err, "already loaded"));

  cd_plugin noroutes = {CD_PLUGIN_API_VERSION, "none", NULL, NULL, NULL, 2};
  assert_int_equal(
      fe_plugins_add(set, &noroutes, "z.so", &host, NULL, r, err, sizeof(err)),
      -1);
  assert_int_equal(fe_plugins_count(set), 1);
  fe_plugins_destroy(set);
  fe_router_destroy(r);
}

static const cd_route routes_admin[] = {
    {"GET", "/admin/x", CD_ROUTE_ADMIN, handler},
    {"POST", "/admin/in", CD_ROUTE_ADMIN | CD_ROUTE_BULK, handler},
};
static const cd_route routes_admin_write[] = {
    {"POST", "/admin/y", CD_ROUTE_ADMIN | CD_ROUTE_WRITE, handler}};
static const cd_route routes_unknown_flag[] = {{"GET", "/u", 16u, handler}};

/* Version 3's flags: an admin route is an authenticated one; a table of an
 * older version may not use them (it cannot mean them); ADMIN with WRITE
 * asks for two roles at once; a flag no version knows is refused. A
 * version-2 table (cd_plugin has not grown since) still loads. */
static void test_fe_plugins_route_flags_of_version_3(void **state) {
  fe_plugin_set *set;
  fe_router *r;
  char err[512];
  assert_int_equal(fe_plugins_create(&set), 0);
  assert_int_equal(fe_router_create(&r), 0);
  cd_plugin admin = {CD_PLUGIN_API_VERSION, "admin", NULL, NULL,
                     routes_admin,          2};
  assert_int_equal(
      fe_plugins_add(set, &admin, "ad.so", &host, NULL, r, err, sizeof(err)),
      0);
  assert_int_equal(fe_router_at(r, 0)->flags, CD_ROUTE_ADMIN | CD_ROUTE_AUTH);
  assert_int_equal(fe_router_at(r, 1)->flags,
                   CD_ROUTE_ADMIN | CD_ROUTE_BULK | CD_ROUTE_AUTH);

  cd_plugin old = {2, "old", NULL, NULL, routes_admin, 2};
  old.routes = routes_admin;
  assert_int_equal(
      fe_plugins_add(set, &old, "old.so", &host, NULL, r, err, sizeof(err)),
      -1);
  assert_non_null(strstr(err, "does not know"));
  cd_plugin both = {CD_PLUGIN_API_VERSION, "both", NULL, NULL,
                    routes_admin_write,    1};
  assert_int_equal(
      fe_plugins_add(set, &both, "b.so", &host, NULL, r, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "CD_ROUTE_ADMIN and CD_ROUTE_WRITE"));
  cd_plugin unknown = {CD_PLUGIN_API_VERSION, "unk", NULL, NULL,
                       routes_unknown_flag,   1};
  assert_int_equal(
      fe_plugins_add(set, &unknown, "u.so", &host, NULL, r, err, sizeof(err)),
      -1);
  assert_int_equal(fe_plugins_count(set), 1);

  cd_plugin v2 = plugin_b;
  v2.api_version = 2;
  assert_int_equal(
      fe_plugins_add(set, &v2, "v2.so", &host, NULL, r, err, sizeof(err)), 0);
  assert_int_equal(fe_plugins_count(set), 2);
  fe_plugins_destroy(set);
  fe_router_destroy(r);
}

static void test_fe_plugins_missing_dir_is_named(void **state) {
  fe_plugin_set *set;
  fe_router *r;
  char err[512];
  assert_int_equal(fe_plugins_create(&set), 0);
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(fe_plugins_load_dir(set, "/nonexistent/plugins", &host, NULL,
                                       r, err, sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "/nonexistent/plugins"));
  /* A directory without any *.so loads nothing and is fine. */
  assert_int_equal(
      fe_plugins_load_dir(set, "/", &host, NULL, r, err, sizeof(err)), 0);
  assert_int_equal(fe_plugins_count(set), 0);
  fe_plugins_destroy(set);
  fe_router_destroy(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_plugins_other_version_is_refused),
      cmocka_unit_test(test_fe_plugins_version_1_table_still_loads),
      cmocka_unit_test(test_fe_plugins_drain_and_metrics_reach_every_plugin),
      cmocka_unit_test(test_fe_plugins_routes_are_registered),
      cmocka_unit_test(test_fe_plugins_create_failure_is_reported),
      cmocka_unit_test(test_fe_plugins_bad_tables_are_refused),
      cmocka_unit_test(test_fe_plugins_missing_dir_is_named),
      cmocka_unit_test(test_fe_plugins_route_flags_of_version_3),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
