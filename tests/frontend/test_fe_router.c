/*
 * test_fe_router.c: route matching.
 *
 * Goal: every rule of fe_router.h holds: literal and parameter segments,
 * literal before parameter, 405 with the union of methods in a fixed order,
 * HEAD served by GET, percent-decoding per segment, trailing slashes and
 * bad patterns refused at registration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fe_router.h"

static int tag_list, tag_create, tag_get, tag_patch, tag_delete, tag_batch,
    tag_nested;

static fe_router *make_router(void) {
  fe_router *r;
  char err[256];
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(fe_router_add(r, "GET", "/contacts", CD_ROUTE_AUTH,
                                 &tag_list, err, sizeof(err)),
                   0);
  assert_int_equal(fe_router_add(r, "POST", "/contacts", CD_ROUTE_WRITE,
                                 &tag_create, err, sizeof(err)),
                   0);
  assert_int_equal(fe_router_add(r, "GET", "/contacts/{id}", CD_ROUTE_AUTH,
                                 &tag_get, err, sizeof(err)),
                   0);
  assert_int_equal(fe_router_add(r, "PATCH", "/contacts/{id}", CD_ROUTE_WRITE,
                                 &tag_patch, err, sizeof(err)),
                   0);
  assert_int_equal(fe_router_add(r, "DELETE", "/contacts/{id}", CD_ROUTE_WRITE,
                                 &tag_delete, err, sizeof(err)),
                   0);
  assert_int_equal(fe_router_add(r, "POST", "/contacts/batch", CD_ROUTE_WRITE,
                                 &tag_batch, err, sizeof(err)),
                   0);
  assert_int_equal(
      fe_router_add(r, "GET", "/a/{x}/b/{y}", 0, &tag_nested, err, sizeof(err)),
      0);
  return r;
}

static fe_route_result match(fe_router *r, const char *method, const char *path,
                             fe_match *m) {
  static char scratch[4096];
  return fe_router_match(r, method, path, strlen(path), scratch, m);
}

static void test_fe_router_literal_route_matches(void **state) {
  fe_router *r = make_router();
  fe_match m;
  assert_int_equal(match(r, "GET", "/contacts", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &tag_list);
  assert_int_equal(m.param_count, 0);
  assert_int_equal(m.route->flags, CD_ROUTE_AUTH);
  assert_int_equal(match(r, "POST", "/contacts", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &tag_create);
  fe_router_destroy(r);
}

static void test_fe_router_param_is_captured(void **state) {
  fe_router *r = make_router();
  fe_match m;
  assert_int_equal(match(r, "GET", "/contacts/12345678901234567890", &m),
                   FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &tag_get);
  assert_int_equal(m.param_count, 1);
  assert_int_equal(m.params[0].name_len, 2);
  assert_memory_equal(m.params[0].name, "id", 2);
  assert_int_equal(m.params[0].value_len, 20);
  assert_string_equal(m.params[0].value, "12345678901234567890");

  assert_int_equal(match(r, "GET", "/a/one/b/two", &m), FE_ROUTE_FOUND);
  assert_int_equal(m.param_count, 2);
  assert_string_equal(m.params[0].value, "one");
  assert_string_equal(m.params[1].value, "two");
  assert_memory_equal(m.params[1].name, "y", 1);
  fe_router_destroy(r);
}

static void test_fe_router_literal_beats_param(void **state) {
  fe_router *r = make_router();
  fe_match m;
  assert_int_equal(match(r, "POST", "/contacts/batch", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &tag_batch);
  /* GET on the literal's path falls to the parameter route. */
  assert_int_equal(match(r, "GET", "/contacts/batch", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &tag_get);
  assert_string_equal(m.params[0].value, "batch");
  fe_router_destroy(r);
}

/* The safe writes' routes beside /contacts/{id}: "trash" and "upsert" are
 * never taken for an id by the method that has a literal route. */
static void test_fe_router_trash_and_upsert_are_not_ids(void **state) {
  static int t_trash, t_get, t_upsert, t_bupsert, t_restore, t_delete;
  static const struct {
    const char *method, *pattern;
    int *tag;
  } routes[] = {{"GET", "/contacts/trash", &t_trash},
                {"GET", "/contacts/{id}", &t_get},
                {"POST", "/contacts/upsert", &t_upsert},
                {"POST", "/contacts/batch/upsert", &t_bupsert},
                {"POST", "/contacts/{id}/restore", &t_restore},
                {"DELETE", "/contacts/{id}", &t_delete}};
  fe_router *r;
  char err[256];
  assert_int_equal(fe_router_create(&r), 0);
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    assert_int_equal(fe_router_add(r, routes[i].method, routes[i].pattern, 0,
                                   routes[i].tag, err, sizeof(err)),
                     0);
  fe_match m;
  assert_int_equal(match(r, "GET", "/contacts/trash", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &t_trash);
  assert_int_equal(m.param_count, 0);
  assert_int_equal(match(r, "HEAD", "/contacts/trash", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &t_trash);
  assert_int_equal(match(r, "POST", "/contacts/upsert", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &t_upsert);
  assert_int_equal(match(r, "POST", "/contacts/batch/upsert", &m),
                   FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &t_bupsert);
  assert_int_equal(
      match(r, "POST", "/contacts/12345678901234567890/restore", &m),
      FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &t_restore);
  assert_string_equal(m.params[0].value, "12345678901234567890");
  /* Where only the parameter route has the method, the segment is an id
   * (which the plugin answers as one that does not exist). */
  assert_int_equal(match(r, "DELETE", "/contacts/trash", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &t_delete);
  assert_int_equal(match(r, "PATCH", "/contacts/trash", &m),
                   FE_ROUTE_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "DELETE, GET, HEAD");
  fe_router_destroy(r);
}

static void test_fe_router_wrong_method_is_405_with_allow(void **state) {
  fe_router *r = make_router();
  fe_match m;
  assert_int_equal(match(r, "PUT", "/contacts", &m),
                   FE_ROUTE_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "GET, HEAD, POST");
  assert_int_equal(match(r, "POST", "/contacts/7", &m),
                   FE_ROUTE_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "DELETE, GET, HEAD, PATCH");
  /* The union over every pattern the path matches. */
  assert_int_equal(match(r, "PUT", "/contacts/batch", &m),
                   FE_ROUTE_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "DELETE, GET, HEAD, PATCH, POST");
  assert_int_equal(match(r, "OPTIONS", "/contacts", &m),
                   FE_ROUTE_METHOD_NOT_ALLOWED);
  fe_router_destroy(r);
}

static void test_fe_router_head_uses_get(void **state) {
  fe_router *r = make_router();
  fe_match m;
  assert_int_equal(match(r, "HEAD", "/contacts/1", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &tag_get);
  fe_router_destroy(r);
}

static void test_fe_router_unknown_paths_are_404(void **state) {
  fe_router *r = make_router();
  fe_match m;
  const char *paths[] = {
      "/",          "/contact",  "/contacts/", "/contacts//", "/contacts/1/x",
      "//contacts", "/Contacts", "",           "contacts",    "/a/1/b/",
      "/a//b/2"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
    assert_int_equal(match(r, "GET", paths[i], &m), FE_ROUTE_NOT_FOUND);
  fe_router_destroy(r);
}

static void test_fe_router_segments_are_percent_decoded(void **state) {
  fe_router *r = make_router();
  fe_match m;
  assert_int_equal(match(r, "GET", "/%63ontacts", &m), FE_ROUTE_FOUND);
  assert_ptr_equal(m.route->payload, &tag_list);
  /* An encoded '/' stays inside its segment. */
  assert_int_equal(match(r, "GET", "/contacts/a%2Fb", &m), FE_ROUTE_FOUND);
  assert_string_equal(m.params[0].value, "a/b");
  /* '+' is not a space in a path. */
  assert_int_equal(match(r, "GET", "/contacts/a+b", &m), FE_ROUTE_FOUND);
  assert_string_equal(m.params[0].value, "a+b");
  fe_router_destroy(r);
}

static void test_fe_router_too_many_segments_is_404(void **state) {
  fe_router *r = make_router();
  fe_match m;
  char path[256] = "";
  for (int i = 0; i < FE_ROUTE_SEGMENTS_MAX + 1; i++)
    strcat(path, "/x");
  assert_int_equal(match(r, "GET", path, &m), FE_ROUTE_NOT_FOUND);
  fe_router_destroy(r);
}

static void test_fe_router_bad_patterns_are_refused(void **state) {
  fe_router *r;
  char err[256];
  int tag;
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(
      fe_router_add(r, "GET", "contacts", 0, &tag, err, sizeof(err)), -1);
  assert_int_equal(fe_router_add(r, "GET", "/a/{x", 0, &tag, err, sizeof(err)),
                   -1);
  assert_int_equal(
      fe_router_add(r, "GET", "/a/x{y}", 0, &tag, err, sizeof(err)), -1);
  assert_int_equal(fe_router_add(r, "GET", "/a/{}", 0, &tag, err, sizeof(err)),
                   -1);
  assert_int_equal(fe_router_add(r, "GET", "/a//b", 0, &tag, err, sizeof(err)),
                   -1);
  assert_int_equal(fe_router_add(r, "GET", "/a/", 0, &tag, err, sizeof(err)),
                   -1);
  assert_int_equal(fe_router_add(r, "FETCH", "/a", 0, &tag, err, sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "FETCH"));
  assert_int_equal(fe_router_add(r, "HEAD", "/a", 0, &tag, err, sizeof(err)),
                   -1);
  assert_int_equal(fe_router_count(r), 0);
  fe_router_destroy(r);
}

static void test_fe_router_duplicate_shape_is_refused(void **state) {
  fe_router *r;
  char err[256];
  int tag;
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(
      fe_router_add(r, "GET", "/c/{id}", 0, &tag, err, sizeof(err)), 0);
  assert_int_equal(
      fe_router_add(r, "GET", "/c/{other}", 0, &tag, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "already taken"));
  assert_int_equal(
      fe_router_add(r, "POST", "/c/{other}", 0, &tag, err, sizeof(err)), 0);
  assert_int_equal(fe_router_count(r), 2);
  assert_int_equal(fe_router_at(r, 1)->index, 1);
  assert_null(fe_router_at(r, 2));
  fe_router_destroy(r);
}

static void test_fe_router_root_pattern(void **state) {
  fe_router *r;
  char err[256];
  int tag;
  fe_match m;
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(fe_router_add(r, "GET", "/", 0, &tag, err, sizeof(err)), 0);
  assert_int_equal(match(r, "GET", "/", &m), FE_ROUTE_FOUND);
  assert_int_equal(match(r, "GET", "/x", &m), FE_ROUTE_NOT_FOUND);
  fe_router_destroy(r);
}

/* Which key takes which route: every role against every flag set a route
 * can have (the loader adds CD_ROUTE_AUTH to WRITE and ADMIN routes). */
static void test_fe_router_roles_and_flags(void **state) {
  const unsigned auth = CD_ROUTE_AUTH, write = CD_ROUTE_AUTH | CD_ROUTE_WRITE,
                 admin = CD_ROUTE_AUTH | CD_ROUTE_ADMIN,
                 admin_bulk = admin | CD_ROUTE_BULK;
  struct {
    unsigned flags;
    cs_role role;
    const char *code; /* NULL: admitted */
  } cases[] = {
      {auth, CS_ROLE_READ_WRITE, NULL},
      {auth, CS_ROLE_READ_ONLY, NULL},
      {auth, CS_ROLE_ADMIN, "admin_key"},
      {write, CS_ROLE_READ_WRITE, NULL},
      {write, CS_ROLE_READ_ONLY, "read_only_key"},
      {write, CS_ROLE_ADMIN, "admin_key"},
      {write | CD_ROUTE_BULK, CS_ROLE_READ_WRITE, NULL},
      {admin, CS_ROLE_ADMIN, NULL},
      {admin, CS_ROLE_READ_WRITE, "not_admin"},
      {admin, CS_ROLE_READ_ONLY, "not_admin"},
      {admin_bulk, CS_ROLE_ADMIN, NULL},
      {admin_bulk, CS_ROLE_READ_WRITE, "not_admin"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *code = NULL, *message = NULL;
    int status =
        fe_route_admits(cases[i].flags, cases[i].role, &code, &message);
    if (cases[i].code == NULL) {
      assert_int_equal(status, 0);
    } else {
      assert_int_equal(status, 403);
      assert_string_equal(code, cases[i].code);
      assert_non_null(message);
    }
  }
  assert_int_equal(fe_route_body_max(auth), CS_BODY_MAX_BYTES);
  assert_int_equal(fe_route_body_max(admin), CS_BODY_MAX_BYTES);
  assert_int_equal(fe_route_body_max(admin_bulk), FE_BULK_BODY_MAX_BYTES);
  assert_int_equal(fe_route_body_max(CD_ROUTE_BULK), 256 * 1024 * 1024);

  /* Which request heads may send a bulk body. */
  fe_router *r;
  char err[256];
  assert_int_equal(fe_router_create(&r), 0);
  assert_int_equal(fe_router_add(r, "POST", "/admin/accounts/{name}/import",
                                 admin_bulk, NULL, err, sizeof(err)),
                   0);
  assert_int_equal(
      fe_router_add(r, "POST", "/contacts", write, NULL, err, sizeof(err)), 0);
  const char *p = "/admin/accounts/acme/import?dry=1";
  assert_true(fe_router_is_bulk(r, "POST", 4, p, strlen(p)));
  assert_false(fe_router_is_bulk(r, "PUT", 3, p, strlen(p)));
  assert_false(fe_router_is_bulk(r, "POST", 4, "/contacts", 9));
  assert_false(fe_router_is_bulk(r, "POST", 4, "/admin/accounts", 15));
  /* At the path limit and past it. */
  char long_path[FE_BULK_PATH_MAX_BYTES + 2];
  size_t pre = strlen("/admin/accounts/"), post = strlen("/import");
  for (size_t len = FE_BULK_PATH_MAX_BYTES; len <= FE_BULK_PATH_MAX_BYTES + 1;
       len++) {
    memcpy(long_path, "/admin/accounts/", pre);
    memset(long_path + pre, 'a', len - pre - post);
    memcpy(long_path + len - post, "/import", post);
    assert_int_equal(fe_router_is_bulk(r, "POST", 4, long_path, len),
                     len <= FE_BULK_PATH_MAX_BYTES);
  }
  fe_router_destroy(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_router_literal_route_matches),
      cmocka_unit_test(test_fe_router_param_is_captured),
      cmocka_unit_test(test_fe_router_literal_beats_param),
      cmocka_unit_test(test_fe_router_trash_and_upsert_are_not_ids),
      cmocka_unit_test(test_fe_router_wrong_method_is_405_with_allow),
      cmocka_unit_test(test_fe_router_head_uses_get),
      cmocka_unit_test(test_fe_router_unknown_paths_are_404),
      cmocka_unit_test(test_fe_router_segments_are_percent_decoded),
      cmocka_unit_test(test_fe_router_too_many_segments_is_404),
      cmocka_unit_test(test_fe_router_bad_patterns_are_refused),
      cmocka_unit_test(test_fe_router_duplicate_shape_is_refused),
      cmocka_unit_test(test_fe_router_root_pattern),
      cmocka_unit_test(test_fe_router_roles_and_flags),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
