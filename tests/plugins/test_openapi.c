/*
 * test_openapi.c: GET /openapi.json.
 *
 * Goal: the document served is JSON, says OpenAPI 3.1, documents every
 * route and method of API.md with its parameters and answers, and declares
 * the x-api-key scheme; every route the built plugins register is in it
 * with the key its flags demand, and every documented operation is one a
 * plugin registers; its server is the request's authority when that is a
 * host name or an address with an optional port, and the relative "/"
 * otherwise. Method: call the handler, parse the answer with yajl's tree,
 * and look every route up; read the route tables of the plugins the build
 * made (CD_TEST_PLUGIN_DIR) through oa_routes, which loads them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "fake_host.h"
#include "fe_limits.h"

/* Admin routes (plugin API version 3); the number is the ABI. */
#ifndef CD_ROUTE_ADMIN
#define CD_ROUTE_ADMIN 4u
#endif

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
      {"/admin/backup",
       "get",
       {"200", "401", "403", "429", "503"},
       false,
       true},
      {"/admin/keys", "post", {"201", "400", "401", "403"}, true, true},
      {"/admin/keys", "get", {"200", "401", "403"}, false, true},
      {"/admin/keys/{key_id}",
       "delete",
       {"200", "401", "403", "404"},
       false,
       true},
      {"/admin/accounts", "get", {"200", "401", "403"}, false, true},
      {"/admin/accounts/{name}/export",
       "get",
       {"200", "401", "403", "404", "429", "503"},
       false,
       true},
      {"/admin/accounts/{name}/import",
       "post",
       {"200", "400", "401", "403", "413", "429", "503"},
       true,
       true},
      {"/admin/compact",
       "post",
       {"202", "401", "403", "409", "429", "503"},
       false,
       true},
      {"/admin/jobs/{id}", "get", {"200", "401", "403", "404"}, false, true},
      {"/admin/stats", "get", {"200", "401", "403"}, false, true},
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

/* The url of the served document's one server, for a request naming
 * authority (NULL: none). Also checks that the rest of the document is
 * the embedded one, byte for byte. The answer is freed by the caller. */
extern const char oa_document[];
extern const size_t oa_document_len;

static const char *served_server(fh_fixture *fx, const char *authority,
                                 struct cd_response **out) {
  char header[600];
  snprintf(header, sizeof header, "host: %s", authority ? authority : "");
  const char *headers[] = {header, NULL};
  struct cd_response *r = fh_call_h(fx, "GET", "/openapi.json", NULL, NULL,
                                    authority ? headers : NULL);
  assert_int_equal(r->status, 200);
  yajl_val doc = fh_json(r);
  const char *sp[] = {"servers", NULL};
  yajl_val servers = yajl_tree_get(doc, sp, yajl_t_array);
  assert_non_null(servers);
  assert_int_equal(YAJL_GET_ARRAY(servers)->len, 1);
  const char *up[] = {"url", NULL};
  yajl_val url =
      yajl_tree_get(YAJL_GET_ARRAY(servers)->values[0], up, yajl_t_string);
  assert_non_null(url);
  const char *u = YAJL_GET_STRING(url);
  /* the body is the document with "/" replaced by the url */
  assert_int_equal(r->body_len, oa_document_len - 1 + strlen(u));
  const char *at = strstr(r->body, "\"servers\": [");
  assert_non_null(at);
  size_t head = (size_t)(strstr(at, "\"url\": \"") - r->body) + 8;
  assert_memory_equal(r->body, oa_document, head);
  assert_memory_equal(r->body + head + strlen(u), oa_document + head + 1,
                      oa_document_len - head - 1);
  *out = r;
  return u;
}

static void expect_server(fh_fixture *fx, const char *authority,
                          const char *want) {
  struct cd_response *r;
  const char *got = served_server(fx, authority, &r);
  if (strcmp(got, want) != 0)
    fprintf(stderr, "authority '%s': server '%s', want '%s'\n",
            authority ? authority : "(none)", got, want);
  assert_string_equal(got, want);
  fh_free(r);
}

static void test_openapi_servers(void **state) {
  (void)state;
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  expect_server(&fx, NULL, "/");
  expect_server(&fx, "127.0.0.1:8080", "http://127.0.0.1:8080");
  expect_server(&fx, "contacts.example.com", "http://contacts.example.com");
  expect_server(&fx, "Contacts.Example.COM:443",
                "http://Contacts.Example.COM:443");
  expect_server(&fx, "[::1]:9000", "http://[::1]:9000");
  expect_server(&fx, "[2001:db8::7]", "http://[2001:db8::7]");
  expect_server(&fx, "localhost:1", "http://localhost:1");
  /* ports: 1 to FE_PORT_MAX */
  expect_server(&fx, "localhost:65535", "http://localhost:65535");
  expect_server(&fx, "localhost:65536", "/");
  expect_server(&fx, "localhost:0", "/");
  expect_server(&fx, "localhost:", "/");
  expect_server(&fx, "localhost:80x", "/");
  /* a label of FE_HOST_LABEL_MAX_BYTES, and one past it */
  char name[FE_HOST_NAME_MAX_BYTES + 8], want[sizeof name + 16];
  memset(name, 'a', FE_HOST_LABEL_MAX_BYTES);
  strcpy(name + FE_HOST_LABEL_MAX_BYTES, ".example");
  snprintf(want, sizeof want, "http://%s", name);
  expect_server(&fx, name, want);
  memset(name, 'a', FE_HOST_LABEL_MAX_BYTES + 1);
  strcpy(name + FE_HOST_LABEL_MAX_BYTES + 1, ".example");
  expect_server(&fx, name, "/");
  /* a name of FE_HOST_NAME_MAX_BYTES (labels of 63 and dots), and one
   * byte past it */
  size_t n = 0;
  while (n < FE_HOST_NAME_MAX_BYTES) {
    size_t label = FE_HOST_NAME_MAX_BYTES - n < FE_HOST_LABEL_MAX_BYTES
                       ? FE_HOST_NAME_MAX_BYTES - n
                       : FE_HOST_LABEL_MAX_BYTES;
    memset(name + n, 'b', label);
    n += label;
    if (n < FE_HOST_NAME_MAX_BYTES) name[n++] = '.';
  }
  name[n] = '\0';
  assert_int_equal(strlen(name), FE_HOST_NAME_MAX_BYTES);
  snprintf(want, sizeof want, "http://%s", name);
  expect_server(&fx, name, want);
  name[n - 1] = '\0'; /* keep the shape, then add two bytes */
  strcat(name, "bb");
  assert_int_equal(strlen(name), FE_HOST_NAME_MAX_BYTES + 1);
  expect_server(&fx, name, "/");
  /* hostile or malformed: never copied */
  static const char *const hostile[] = {
      "",
      "evil.com\",\"x\":\"",
      "evil.com/\"}]",
      "evil.com/path",
      "user@evil.com",
      "evil.com\\",
      "a b",
      "-evil.com",
      "evil-.com",
      "evil..com",
      ".evil.com",
      "1.2.3",
      "999.1.1.1",
      "[::1",
      "[zz::1]:80",
      "[::1]80",
      "::1",
      "evil.com:80:80",
      "\xc3\xa9vil.com",
  };
  for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++)
    expect_server(&fx, hostile[i], "/");
  fh_close(&fx);
}

/* The operation object for method (a route's, upper case) on path. */
static yajl_val doc_operation(yajl_val doc, const char *path,
                              const char *method) {
  char lower[16];
  size_t i = 0;
  for (; method[i] && i + 1 < sizeof lower; i++)
    lower[i] = (char)(method[i] | 0x20);
  lower[i] = '\0';
  const char *p[] = {"paths", path, lower, NULL};
  return yajl_tree_get(doc, p, yajl_t_object);
}

/* The name of the first security scheme an operation asks for ("" for
 * none, NULL when it has no security member). */
static const char *op_scheme(yajl_val op) {
  const char *sp[] = {"security", NULL};
  yajl_val s = yajl_tree_get(op, sp, yajl_t_array);
  if (!s) return NULL;
  if (YAJL_GET_ARRAY(s)->len == 0) return "";
  yajl_val first = YAJL_GET_ARRAY(s)->values[0];
  return YAJL_IS_OBJECT(first) && YAJL_GET_OBJECT(first)->len > 0
             ? YAJL_GET_OBJECT(first)->keys[0]
             : "";
}

static bool op_has(yajl_val op, const char *status) {
  const char *p[] = {"responses", status, NULL};
  return yajl_tree_get(op, p, yajl_t_object) != NULL;
}

static void test_openapi_routes(void **state) {
  (void)state;
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  struct cd_response *r = fh_call(&fx, "GET", "/openapi.json", NULL, NULL);
  yajl_val doc = fh_json(r);

  /* Every route of every plugin the build made: documented, with the key
   * its flags demand. oa_routes prints "METHOD PATTERN FLAGS PLUGIN". */
  static struct { char method[16], pattern[256]; } table[128];
  size_t routes = 0;
  bool admin = false;
  FILE *list = popen(OA_ROUTES_TOOL " " CD_TEST_PLUGIN_DIR, "r");
  assert_non_null(list);
  char line[512], plugin[64];
  unsigned flags;
  while (fgets(line, sizeof line, list)) {
    assert_true(routes < sizeof table / sizeof *table);
    assert_int_equal(sscanf(line, "%15s %255s %u %63s", table[routes].method,
                            table[routes].pattern, &flags, plugin),
                     4);
    const char *method = table[routes].method;
    const char *pattern = table[routes].pattern;
    routes++;
    yajl_val op = doc_operation(doc, pattern, method);
    if (!op)
      fprintf(stderr, "%s: %s %s is not documented\n", plugin, method, pattern);
    assert_non_null(op);
    const char *scheme = op_scheme(op);
    const char *want = (flags & CD_ROUTE_ADMIN)                     ? "adminKey"
                       : (flags & (CD_ROUTE_AUTH | CD_ROUTE_WRITE)) ? "apiKey"
                                                                    : "";
    /* no security member: the document-wide one, the x-api-key */
    if (!scheme) scheme = "apiKey";
    if (strcmp(scheme, want) != 0)
      fprintf(stderr, "%s %s: security %s, want %s\n", method, pattern, scheme,
              want);
    assert_string_equal(scheme, want);
    if (*want) {
      assert_true(op_has(op, "401"));
      assert_true(op_has(op, "403"));
    }
    admin |= (flags & CD_ROUTE_ADMIN) != 0;
  }
  /* oa_routes loaded every plugin: contacts, health, metrics, openapi and
   * webhooks at least */
  assert_int_equal(pclose(list), 0);
  assert_true(routes >= 20);

  /* Every documented operation is registered by a plugin (the admin API
   * only when its plugin was built), and says its tag and every status
   * any request can get. */
  const char *pp[] = {"paths", NULL};
  yajl_val paths = yajl_tree_get(doc, pp, yajl_t_object);
  assert_non_null(paths);
  const char *tp[] = {"tags", NULL};
  yajl_val tags = yajl_tree_get(doc, tp, yajl_t_array);
  assert_non_null(tags);
  size_t ops = 0;
  for (size_t i = 0; i < YAJL_GET_OBJECT(paths)->len; i++) {
    const char *path = YAJL_GET_OBJECT(paths)->keys[i];
    yajl_val item = YAJL_GET_OBJECT(paths)->values[i];
    for (size_t k = 0; k < YAJL_GET_OBJECT(item)->len; k++) {
      const char *m = YAJL_GET_OBJECT(item)->keys[k];
      if (strcmp(m, "parameters") == 0) continue;
      yajl_val op = YAJL_GET_OBJECT(item)->values[k];
      ops++;
      bool registered = false;
      for (size_t x = 0; x < routes; x++)
        registered |= strcmp(table[x].pattern, path) == 0 &&
                      strcasecmp(table[x].method, m) == 0;
      if (!registered && !(strncmp(path, "/admin/", 7) == 0 && !admin))
        fprintf(stderr, "%s %s is documented but no plugin has it\n", m, path);
      assert_true(registered || (strncmp(path, "/admin/", 7) == 0 && !admin));
      static const char *const always[] = {"405", "413", "500", "default"};
      for (size_t a = 0; a < sizeof always / sizeof *always; a++) {
        if (!op_has(op, always[a]))
          fprintf(stderr, "%s %s: no %s\n", m, path, always[a]);
        assert_true(op_has(op, always[a]));
      }
      /* one tag, declared */
      yajl_val ot = yajl_tree_get(op, tp, yajl_t_array);
      assert_non_null(ot);
      assert_int_equal(YAJL_GET_ARRAY(ot)->len, 1);
      const char *tag = YAJL_GET_STRING(YAJL_GET_ARRAY(ot)->values[0]);
      bool declared = false;
      for (size_t t = 0; t < YAJL_GET_ARRAY(tags)->len; t++) {
        const char *np[] = {"name", NULL};
        yajl_val name =
            yajl_tree_get(YAJL_GET_ARRAY(tags)->values[t], np, yajl_t_string);
        const char *got = name ? YAJL_GET_STRING(name) : NULL;
        declared |= got && tag && strcmp(got, tag) == 0;
      }
      assert_true(declared);
    }
  }
  assert_true(ops >= 29);

  /* the licence, by its SPDX identifier */
  const char *lp[] = {"info", "license", "identifier", NULL};
  assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, lp, yajl_t_string)),
                      "Apache-2.0");
  /* the admin key: the same header */
  const char *ap[] = {"components", "securitySchemes", "adminKey", "name",
                      NULL};
  assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, ap, yajl_t_string)),
                      "x-api-key");
  fh_free(r);
  fh_close(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_openapi_document),
      cmocka_unit_test(test_openapi_servers),
      cmocka_unit_test(test_openapi_routes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
