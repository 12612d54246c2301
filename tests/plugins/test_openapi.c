/*
 * test_openapi.c: GET /openapi.json.
 *
 * Goal: the document served is JSON, says OpenAPI 3.1, documents every
 * route and method of API.md with its parameters and answers, and declares
 * the x-api-key scheme. Method: call the handler, parse the answer with
 * yajl's tree, and look every route up.
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

static yajl_val oa_get(yajl_val v, const char *a, const char *b,
                       const char *c) {
  const char *path[] = {a, b, c, NULL};
  if (!b) path[1] = NULL;
  if (!c) path[2] = NULL;
  return yajl_tree_get(v, path, yajl_t_any);
}

static void test_openapi_document(void **state) {
  (void)state;
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  assert_int_equal(contactd_plugin.route_count, 1);
  assert_string_equal(contactd_plugin.routes[0].pattern, "/openapi.json");
  assert_int_equal(contactd_plugin.routes[0].flags, 0);

  struct cd_response *r = fh_call(&fx, "GET", "/openapi.json", NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type, "application/json");
  yajl_val doc = fh_json(r);
  assert_string_equal(fh_str(r, "openapi", NULL), "3.1.0");
  assert_non_null(fh_str(r, "info", "title", NULL));

  /* Every route of API.md, with what each must document. */
  static const struct {
    const char *path, *method;
    const char *statuses[10];
    bool body, secured;
  } routes[] = {
      {"/contacts",
       "post",
       {"200", "400", "401", "403", "404", "409", "413", "500", "503"},
       true,
       true},
      {"/contacts/batch",
       "post",
       {"200", "400", "401", "403", "413"},
       true,
       true},
      {"/contacts", "get", {"200", "400", "401"}, true, true},
      {"/contacts/query",
       "post",
       {"200", "400", "401", "413", "500"},
       true,
       true},
      {"/contacts/{id}", "get", {"200", "304", "401", "404"}, false, true},
      {"/contacts/{id}",
       "patch",
       {"200", "400", "401", "403", "404", "409", "412", "422", "503"},
       true,
       true},
      {"/contacts",
       "delete",
       {"200", "400", "401", "403", "404", "412", "422", "503"},
       true,
       true},
      {"/contacts/{id}",
       "delete",
       {"200", "400", "401", "403", "404", "412", "422", "503"},
       false,
       true},
      {"/contacts/upsert",
       "post",
       {"200", "400", "401", "403", "409", "412", "422", "503"},
       true,
       true},
      {"/contacts/batch/upsert",
       "post",
       {"200", "400", "401", "403", "409", "422", "503"},
       true,
       true},
      {"/contacts/trash", "get", {"200", "400", "401"}, false, true},
      {"/contacts/{id}/restore",
       "post",
       {"200", "401", "403", "404", "409", "412", "422", "503"},
       false,
       true},
      {"/webhooks",
       "post",
       {"200", "400", "401", "403", "413", "500", "503"},
       true,
       true},
      {"/webhooks", "get", {"200", "401"}, false, true},
      {"/webhooks/{id}",
       "delete",
       {"200", "401", "403", "404", "503"},
       false,
       true},
      {"/webhooks/{id}/enable",
       "post",
       {"200", "401", "403", "404", "503"},
       false,
       true},
      {"/healthz", "get", {"200", "503"}, false, false},
      {"/metrics", "get", {"200"}, false, false},
      {"/openapi.json", "get", {"200"}, false, false},
  };
  for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
    yajl_val op = oa_get(doc, "paths", routes[i].path, routes[i].method);
    if (!op)
      fprintf(stderr, "missing %s %s\n", routes[i].method, routes[i].path);
    assert_non_null(op);
    assert_true(YAJL_IS_OBJECT(op));
    for (size_t k = 0; routes[i].statuses[k]; k++) {
      const char *p[] = {"responses", routes[i].statuses[k], NULL};
      if (!yajl_tree_get(op, p, yajl_t_object))
        fprintf(stderr, "%s %s: no %s\n", routes[i].method, routes[i].path,
                routes[i].statuses[k]);
      assert_non_null(yajl_tree_get(op, p, yajl_t_object));
    }
    const char *rb[] = {"requestBody", NULL};
    assert_int_equal(yajl_tree_get(op, rb, yajl_t_object) != NULL,
                     routes[i].body);
    /* service endpoints opt out of the document-wide key requirement */
    const char *sec[] = {"security", NULL};
    yajl_val s = yajl_tree_get(op, sec, yajl_t_array);
    assert_non_null(s);
    assert_int_equal(YAJL_GET_ARRAY(s)->len > 0, routes[i].secured);
  }
  /* the id parameter, and search's parameters */
  yajl_val params = oa_get(doc, "paths", "/contacts/{id}", "parameters");
  assert_non_null(params);
  assert_true(YAJL_IS_ARRAY(params));
  yajl_val search_params = oa_get(doc, "paths", "/contacts", "get");
  const char *pp[] = {"parameters", NULL};
  yajl_val list = yajl_tree_get(search_params, pp, yajl_t_array);
  assert_non_null(list);
  static const char *const names[] = {"searchby", "search", "match", "limit",
                                      "cursor"};
  for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
    bool found = false;
    for (size_t k = 0; k < YAJL_GET_ARRAY(list)->len; k++) {
      const char *np[] = {"name", NULL};
      yajl_val name =
          yajl_tree_get(YAJL_GET_ARRAY(list)->values[k], np, yajl_t_string);
      const char *got = name ? YAJL_GET_STRING(name) : NULL;
      found |= got && !strcmp(got, names[n]);
    }
    assert_true(found);
  }
  /* fields= on both reads (a $ref to one parameter), and suffix among the
   * match words */
  static const char *const projected[][2] = {{"/contacts", "get"},
                                             {"/contacts/{id}", "get"}};
  for (size_t n = 0; n < 2; n++) {
    yajl_val plist =
        yajl_tree_get(oa_get(doc, "paths", projected[n][0], projected[n][1]),
                      pp, yajl_t_array);
    assert_non_null(plist);
    bool found = false;
    for (size_t k = 0; k < YAJL_GET_ARRAY(plist)->len; k++) {
      const char *rp[] = {"$ref", NULL};
      yajl_val ref =
          yajl_tree_get(YAJL_GET_ARRAY(plist)->values[k], rp, yajl_t_string);
      const char *got = ref ? YAJL_GET_STRING(ref) : NULL;
      found |= got && !strcmp(got, "#/components/parameters/Fields");
    }
    assert_true(found);
  }
  const char *fn[] = {"components", "parameters", "Fields", "name", NULL};
  assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, fn, yajl_t_string)),
                      "fields");
  const char *me[] = {"components", "schemas", "Match", "enum", NULL};
  yajl_val words = yajl_tree_get(doc, me, yajl_t_array);
  assert_non_null(words);
  bool suffix = false;
  for (size_t k = 0; k < YAJL_GET_ARRAY(words)->len; k++) {
    const char *w = YAJL_GET_STRING(YAJL_GET_ARRAY(words)->values[k]);
    suffix |= w && !strcmp(w, "suffix");
  }
  assert_true(suffix);
  /* the query's body and answer */
  static const char *const qs[] = {"QueryRequest",   "QueryNode",
                                   "QueryCondition", "SortKey",
                                   "QueryAnswer",    "FacetValue"};
  for (size_t n = 0; n < sizeof qs / sizeof qs[0]; n++)
    assert_non_null(oa_get(doc, "components", "schemas", qs[n]));
  const char *asof[] = {"components", "schemas", "QueryAnswer",
                        "properties", "as_of",   NULL};
  assert_non_null(yajl_tree_get(doc, asof, yajl_t_object));
  /* the safe writes' headers, and version in the contact */
  static const char *const comps[][2] = {
      {"parameters", "IfMatch"},         {"parameters", "IfNoneMatch"},
      {"parameters", "IdempotencyKey"},  {"headers", "ETag"},
      {"headers", "IdempotentReplayed"}, {"schemas", "TrashedContact"}};
  for (size_t n = 0; n < sizeof comps / sizeof comps[0]; n++)
    assert_non_null(oa_get(doc, "components", comps[n][0], comps[n][1]));
  const char *vp[] = {"components", "schemas", "Contact",
                      "properties", "version", NULL};
  assert_non_null(yajl_tree_get(doc, vp, yajl_t_object));
  /* a delivery, as OpenAPI 3.1 describes requests the server makes */
  yajl_val delivery = oa_get(doc, "webhooks", "change", "post");
  assert_non_null(delivery);
  const char *hp[] = {"parameters", NULL};
  yajl_val hlist = yajl_tree_get(delivery, hp, yajl_t_array);
  assert_non_null(hlist);
  assert_int_equal(YAJL_GET_ARRAY(hlist)->len, 3);
  static const char *const wschemas[] = {"WebhookRequest", "WebhookCreated",
                                         "Webhook", "WebhookList",
                                         "WebhookDelivery"};
  for (size_t n = 0; n < sizeof wschemas / sizeof wschemas[0]; n++)
    assert_non_null(oa_get(doc, "components", "schemas", wschemas[n]));
  /* the key */
  const char *ks[] = {"components", "securitySchemes", "apiKey", "type", NULL};
  yajl_val type = yajl_tree_get(doc, ks, yajl_t_string);
  assert_non_null(type);
  assert_string_equal(YAJL_GET_STRING(type), "apiKey");
  ks[3] = "in";
  assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, ks, yajl_t_string)),
                      "header");
  ks[3] = "name";
  assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, ks, yajl_t_string)),
                      "x-api-key");
  /* every $ref points at something that exists */
  const char *cs[] = {"components", "schemas", NULL};
  yajl_val schemas = yajl_tree_get(doc, cs, yajl_t_object);
  assert_non_null(schemas);
  for (const char *ref = strstr(r->body, "\"$ref\""); ref;
       ref = strstr(ref + 1, "\"$ref\"")) {
    const char *q = strchr(ref + 6, '"');
    const char *end = strchr(q + 1, '"');
    char target[128];
    snprintf(target, sizeof target, "%.*s", (int)(end - q - 1), q + 1);
    assert_true(!strncmp(target, "#/components/", 13));
    char *kind = target + 13, *name = strchr(kind, '/');
    assert_non_null(name);
    *name++ = '\0';
    const char *tp[] = {"components", kind, name, NULL};
    if (!yajl_tree_get(doc, tp, yajl_t_object))
      fprintf(stderr, "dangling $ref %s/%s\n", kind, name);
    assert_non_null(yajl_tree_get(doc, tp, yajl_t_object));
  }
  fh_free(r);
  fh_close(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_openapi_document),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
