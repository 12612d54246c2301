/*
 * fe_badversion.c: a plugin built for a plugin API version this contactd
 * does not speak (one past the newest). The server must refuse to start
 * with it, naming the file, its version and the ones this contactd loads.
 */
#include "cd_plugin.h"

static int nothing(void *state, const cd_request *req, cd_response *res) {
  return CD_DONE;
}

static const cd_route routes[] = {{"GET", "/never", 0, nothing}};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION + 1,
    .name = "badversion",
    .routes = routes,
    .route_count = 1,
};
