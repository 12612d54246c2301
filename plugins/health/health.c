/*
 * health.c: GET /healthz, for load balancers and orchestrators.
 *
 * Healthy means the store accepts writes (cs_health == 0): a store that has
 * failed a write or an fsync refuses writes until it is reopened, and a
 * probe should take the instance out of rotation then. No key is needed, and
 * the reason given is the store's message for people, which names no key.
 *
 * The status and retry-after of an unhealthy answer are the host's
 * (host->store_error): the same the contacts API answers a write with at
 * that moment, so a probe and a client never hear two stories.
 */
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "cd_plugin.h"

typedef struct hl_state {
  const cd_host *host;
  cs_store *store;
} hl_state;

static void hl_gen_key(yajl_gen g, const char *s) {
  yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static int hl_handle(void *state, const cd_request *req, cd_response *res) {
  const hl_state *st = state;
  cs_store *store = req->store ? req->store : st->store;
  cs_error err = {0};
  int rc = store ? cs_health(store, &err) : CS_ECLOSING;
  /* cs_health's codes (failed, closing) are all the table's 503 today. */
  const cd_store_error *unhealthy = rc != 0 ? st->host->store_error(rc) : NULL;
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) {
    st->host->error(res, 500, "internal", "internal error", NULL, 0);
    return CD_DONE;
  }
  /* The reason comes from the store: check it rather than trust it. */
  yajl_gen_config(g, yajl_gen_validate_utf8, 1);
  yajl_gen_map_open(g);
  hl_gen_key(g, "status");
  hl_gen_key(g, rc == 0 ? "ok" : "unavailable");
  if (rc != 0) {
    hl_gen_key(g, "reason");
    const char *why = err.msg[0] ? err.msg : cs_strerror(rc);
    if (yajl_gen_string(g, (const unsigned char *)why, strlen(why)) !=
        yajl_gen_status_ok)
      hl_gen_key(g, cs_strcode(rc));
  }
  yajl_gen_map_close(g);
  const unsigned char *buf;
  size_t len;
  yajl_gen_get_buf(g, &buf, &len);
  if (unhealthy && unhealthy->retry_after)
    st->host->header(res, "retry-after", unhealthy->retry_after);
  st->host->respond(res, unhealthy ? unhealthy->status : 200,
                    "application/json", (const char *)buf, len);
  yajl_gen_free(g);
  return CD_DONE;
}

/* GET /healthz/primary: 200 on a primary that takes writes, else 503
 * not_primary with the role, so that a proxy's health check sends writes
 * only to the primary. */
static int hl_primary(void *state, const cd_request *req, cd_response *res) {
  const hl_state *st = state;
  cs_store *store = req->store ? req->store : st->store;
  cs_error err = {0};
  cs_repl_role role = store ? cs_store_role(store) : CS_REPL_PRIMARY;
  int rc = store ? cs_health(store, &err) : CS_ECLOSING;
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) {
    st->host->error(res, 500, "internal", "internal error", NULL, 0);
    return CD_DONE;
  }
  yajl_gen_map_open(g);
  bool ok = role == CS_REPL_PRIMARY && rc == 0;
  if (!ok) {
    hl_gen_key(g, "error");
    yajl_gen_map_open(g);
    hl_gen_key(g, "code");
    hl_gen_key(g, "not_primary");
    hl_gen_key(g, "message");
    hl_gen_key(g, role == CS_REPL_STANDBY ? "this server is a standby"
                  : role == CS_REPL_FENCED
                      ? "this server was fenced: another is the primary"
                      : "this primary refuses writes: see /healthz");
    yajl_gen_map_close(g);
  }
  hl_gen_key(g, "role");
  hl_gen_key(g, cs_repl_role_name(role));
  yajl_gen_map_close(g);
  const unsigned char *buf;
  size_t len;
  yajl_gen_get_buf(g, &buf, &len);
  st->host->respond(res, ok ? 200 : 503, "application/json", (const char *)buf,
                    len);
  yajl_gen_free(g);
  return CD_DONE;
}

static int hl_create(const cd_host *host, cs_store *store, void **state_out,
                     char *errbuf, size_t errlen) {
  hl_state *st = malloc(sizeof *st);
  if (!st) {
    strncpy(errbuf, "health: out of memory", errlen - 1);
    errbuf[errlen - 1] = '\0';
    return -1;
  }
  st->host = host;
  st->store = store;
  *state_out = st;
  return 0;
}

static void hl_destroy(void *state) {
  free(state);
}

static const cd_route hl_routes[] = {
    {"GET", "/healthz", 0, hl_handle},
    {"GET", "/healthz/primary", 0, hl_primary},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "health",
    .create = hl_create,
    .destroy = hl_destroy,
    .routes = hl_routes,
    .route_count = sizeof hl_routes / sizeof hl_routes[0],
};
