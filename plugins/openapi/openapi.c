/*
 * openapi.c: GET /openapi.json, the API described as OpenAPI 3.1.
 *
 * The document is kept as plain JSON in openapi.json beside this file, where
 * it can be read and reviewed; the build compiles it in (embed.cmake), so
 * the answer is a constant and the plugin needs no state and no file.
 */
#include "cd_plugin.h"

extern const char oa_document[];
extern const size_t oa_document_len;

static int oa_handle(void *state, const cd_request *req, cd_response *res) {
  const cd_host *host = state;
  (void)req;
  host->respond(res, 200, "application/json", oa_document, oa_document_len);
  return CD_DONE;
}

static int oa_create(const cd_host *host, cs_store *store, void **state_out,
                     char *errbuf, size_t errlen) {
  (void)store;
  (void)errbuf;
  (void)errlen;
  /* The host table is all the state there is. */
  *state_out = (void *)host;
  return 0;
}

static const cd_route oa_routes[] = {
    {"GET", "/openapi.json", 0, oa_handle},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "openapi",
    .create = oa_create,
    .destroy = NULL,
    .routes = oa_routes,
    .route_count = sizeof oa_routes / sizeof oa_routes[0],
};
