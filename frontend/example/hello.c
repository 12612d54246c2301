/*
 * hello.c: the smallest useful contactd plugin, the example of
 * frontend/README.md.
 *
 * It answers GET /hello with a fixed JSON body, needs no key and keeps no
 * state. Build it as a shared object, drop it in the plugin directory, and
 * contactd serves the route on every protocol it speaks.
 */
#include "cd_plugin.h"

static const cd_host *host;

static int hello_create(const cd_host *h, cs_store *store, void **state_out,
                        char *errbuf, size_t errlen) {
  (void)store;
  (void)errbuf;
  (void)errlen;
  host = h;
  *state_out = NULL;
  return 0;
}

static int hello_get(void *state, const cd_request *req, cd_response *res) {
  (void)state;
  (void)req;
  static const char body[] = "{\"hello\": \"world\"}";
  host->respond(res, 200, "application/json", body, sizeof(body) - 1);
  return CD_DONE;
}

static const cd_route hello_routes[] = {
    {"GET", "/hello", 0, hello_get},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "hello",
    .create = hello_create,
    .destroy = NULL,
    .routes = hello_routes,
    .route_count = sizeof(hello_routes) / sizeof(hello_routes[0]),
};
