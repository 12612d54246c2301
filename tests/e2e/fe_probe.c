/*
 * fe_probe.c: a test plugin that shows the end-to-end tests what the front
 * end handed it, and answers in every way a plugin can.
 *
 *   GET  /probe/echo/{name}  the request view as JSON (method, path, params,
 *                            query pairs, headers, body length, request id)
 *   GET  /probe/whoami       (key) the account and role the key maps to
 *   POST /probe/write        (read-write key) {"ok": true}
 *   POST /probe/body         the body's length and content-type
 *   GET  /probe/async        answered from another thread after delay_ms
 *   GET  /probe/silent       returns without answering (the host's 500)
 *   GET  /probe/unavailable  503 with retry-after and a custom header
 *   GET  /probe/big          a body of ?bytes=N bytes
 *   GET  /probe/metrics      the host's metrics text
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>

#include "cd_plugin.h"

static const cd_host *host;

static void gen_str(yajl_gen g, const char *s, size_t len) {
  yajl_gen_string(g, (const unsigned char *)s, len);
}
#define GEN_LIT(g, s) gen_str(g, s, strlen(s))

static void respond_gen(cd_response *res, int status, yajl_gen g) {
  const unsigned char *buf;
  size_t len;
  yajl_gen_get_buf(g, &buf, &len);
  host->respond(res, status, "application/json", (const char *)buf, len);
  yajl_gen_free(g);
}

static const char *query_value(const cd_request *req, const char *name) {
  for (size_t i = 0; i < req->query_count; i++)
    if (req->query[i].name_len == strlen(name) &&
        memcmp(req->query[i].name, name, req->query[i].name_len) == 0)
      return req->query[i].value;
  return NULL;
}

static int probe_echo(void *state, const cd_request *req, cd_response *res) {
  yajl_gen g = yajl_gen_alloc(NULL);
  yajl_gen_map_open(g);
  GEN_LIT(g, "method");
  GEN_LIT(g, req->method);
  GEN_LIT(g, "path");
  GEN_LIT(g, req->path);
  GEN_LIT(g, "params");
  yajl_gen_map_open(g);
  for (size_t i = 0; i < req->param_count; i++) {
    gen_str(g, req->params[i].name, req->params[i].name_len);
    gen_str(g, req->params[i].value, req->params[i].value_len);
  }
  yajl_gen_map_close(g);
  GEN_LIT(g, "query");
  yajl_gen_array_open(g);
  for (size_t i = 0; i < req->query_count; i++) {
    yajl_gen_array_open(g);
    gen_str(g, req->query[i].name, req->query[i].name_len);
    gen_str(g, req->query[i].value, req->query[i].value_len);
    yajl_gen_array_close(g);
  }
  yajl_gen_array_close(g);
  GEN_LIT(g, "headers");
  yajl_gen_map_open(g);
  for (size_t i = 0; i < req->header_count; i++) {
    gen_str(g, req->headers[i].name, req->headers[i].name_len);
    gen_str(g, req->headers[i].value, req->headers[i].value_len);
  }
  yajl_gen_map_close(g);
  GEN_LIT(g, "body_len");
  yajl_gen_integer(g, (long long)req->body_len);
  GEN_LIT(g, "request_id");
  GEN_LIT(g, req->request_id);
  GEN_LIT(g, "has_store");
  yajl_gen_bool(g, req->store != NULL);
  yajl_gen_map_close(g);
  respond_gen(res, 200, g);
  return CD_DONE;
}

static int probe_whoami(void *state, const cd_request *req, cd_response *res) {
  yajl_gen g = yajl_gen_alloc(NULL);
  yajl_gen_map_open(g);
  GEN_LIT(g, "account");
  GEN_LIT(g, req->account_name != NULL ? req->account_name : "");
  GEN_LIT(g, "account_id");
  yajl_gen_integer(g, req->account);
  GEN_LIT(g, "role");
  GEN_LIT(g, req->role == CS_ROLE_READ_WRITE ? "read-write" : "read-only");
  yajl_gen_map_close(g);
  respond_gen(res, 200, g);
  return CD_DONE;
}

static int probe_write(void *state, const cd_request *req, cd_response *res) {
  static const char body[] = "{\"ok\":true}";
  host->respond(res, 200, "application/json", body, sizeof(body) - 1);
  return CD_DONE;
}

static int probe_body(void *state, const cd_request *req, cd_response *res) {
  const char *ct = "";
  size_t ct_len = 0;
  for (size_t i = 0; i < req->header_count; i++)
    if (req->headers[i].name_len == 12 &&
        memcmp(req->headers[i].name, "content-type", 12) == 0) {
      ct = req->headers[i].value;
      ct_len = req->headers[i].value_len;
    }
  yajl_gen g = yajl_gen_alloc(NULL);
  yajl_gen_map_open(g);
  GEN_LIT(g, "body_len");
  yajl_gen_integer(g, (long long)req->body_len);
  GEN_LIT(g, "content_type");
  gen_str(g, ct, ct_len);
  /* A cheap digest of the bytes, so the test knows they arrived intact. */
  unsigned long sum = 0;
  for (size_t i = 0; i < req->body_len; i++)
    sum = sum * 31 + (unsigned char)req->body[i];
  GEN_LIT(g, "sum");
  yajl_gen_integer(g, (long long)(sum & 0x7fffffffffffull));
  yajl_gen_map_close(g);
  respond_gen(res, 200, g);
  return CD_DONE;
}

typedef struct async_job {
  cd_response *res;
  long delay_ms;
} async_job;

static void *async_main(void *arg) {
  async_job *job = arg;
  struct timespec ts = {job->delay_ms / 1000, (job->delay_ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
  char body[64];
  int n = snprintf(body, sizeof(body), "{\"async\":true,\"delay_ms\":%ld}",
                   job->delay_ms);
  host->respond(job->res, 200, "application/json", body, (size_t)n);
  free(job);
  return NULL;
}

static int probe_async(void *state, const cd_request *req, cd_response *res) {
  const char *d = query_value(req, "delay_ms");
  async_job *job = malloc(sizeof(*job));
  job->res = res;
  job->delay_ms = d != NULL ? atol(d) : 0;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, async_main, job) != 0) {
    free(job);
    host->error(res, 500, "internal", "no thread", NULL, 0);
    pthread_attr_destroy(&attr);
    return CD_DONE;
  }
  pthread_attr_destroy(&attr);
  return CD_ASYNC;
}

static int probe_silent(void *state, const cd_request *req, cd_response *res) {
  return CD_DONE;
}

static int probe_unavailable(void *state, const cd_request *req,
                             cd_response *res) {
  host->header(res, "Retry-After", "1");
  host->header(res, "x-probe", "yes");
  host->header(res, "content-length", "999"); /* refused by the host */
  host->error(res, 503, "unavailable", "the store refuses writes", NULL, 0);
  return CD_DONE;
}

static int probe_big(void *state, const cd_request *req, cd_response *res) {
  const char *b = query_value(req, "bytes");
  size_t n = b != NULL ? (size_t)atol(b) : 0;
  char *body = malloc(n > 0 ? n : 1);
  for (size_t i = 0; i < n; i++)
    body[i] = (char)('a' + i % 26);
  host->respond(res, 200, "text/plain", body, n);
  free(body);
  return CD_DONE;
}

static int probe_metrics(void *state, const cd_request *req, cd_response *res) {
  char *text = NULL;
  size_t len = host->metrics(host->ctx, &text);
  host->respond(res, 200, "text/plain; version=0.0.4", text, len);
  free(text);
  return CD_DONE;
}

static int probe_create(const cd_host *h, cs_store *store, void **state_out,
                        char *errbuf, size_t errlen) {
  host = h;
  *state_out = NULL;
  if (getenv("FE_PROBE_FAIL") != NULL) {
    snprintf(errbuf, errlen, "asked to fail by FE_PROBE_FAIL");
    return -1;
  }
  return 0;
}

static const cd_route probe_routes[] = {
    {"GET", "/probe/echo/{name}", 0, probe_echo},
    {"GET", "/probe/whoami", CD_ROUTE_AUTH, probe_whoami},
    {"POST", "/probe/write", CD_ROUTE_WRITE, probe_write},
    {"POST", "/probe/body", 0, probe_body},
    {"GET", "/probe/async", 0, probe_async},
    {"GET", "/probe/silent", 0, probe_silent},
    {"GET", "/probe/unavailable", 0, probe_unavailable},
    {"GET", "/probe/big", 0, probe_big},
    {"GET", "/probe/metrics", 0, probe_metrics},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "probe",
    .create = probe_create,
    .routes = probe_routes,
    .route_count = sizeof(probe_routes) / sizeof(probe_routes[0]),
};
