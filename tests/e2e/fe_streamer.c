/*
 * fe_streamer.c: a test plugin for plugin API version 3: streamed answers,
 * admin and bulk routes, and the live keyring (host->keyring).
 *
 *   GET  /stream/bytes       ?bytes=N&piece=P&fail=1: N bytes (byte i is
 *                            i % 251) written from a thread of the
 *                            plugin's in pieces of P bytes (default 65536),
 *                            ended ok, or broken with fail=1
 *   GET  /stream/last        how the last stream ended: bytes accepted,
 *                            whether a write returned -1, whether it ended
 *   GET  /stream/whoami      (key) the account and role
 *   POST /stream/bulk        (bulk) the body's length and a checksum
 *   GET  /admin/probe        (admin) the role, and the keyring's key count
 *   POST /admin/probe/revoke/{key_id}  (admin) revokes through
 *                            host->keyring
 *
 * Every streaming thread is joined in drain (server shutdown), so a thread
 * blocked in stream_write must be released by the host for the server to
 * stop.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_plugin.h"

#define STREAMER_THREADS_MAX 64

static const cd_host *host;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t threads[STREAMER_THREADS_MAX];
static size_t thread_count;

/* The last stream's outcome, for /stream/last. */
static atomic_ullong last_bytes;
static atomic_int last_refused, last_ended, streams;

typedef struct job {
  cd_stream *st;
  unsigned long long bytes;
  size_t piece;
  bool fail;
} job;

static const char *query_value(const cd_request *req, const char *name) {
  for (size_t i = 0; i < req->query_count; i++)
    if (req->query[i].name_len == strlen(name) &&
        memcmp(req->query[i].name, name, req->query[i].name_len) == 0)
      return req->query[i].value;
  return NULL;
}

static void *stream_main(void *arg) {
  job *j = arg;
  char *buf = malloc(j->piece);
  unsigned long long sent = 0;
  int refused = 0;
  while (buf != NULL && sent < j->bytes) {
    size_t n =
        j->bytes - sent < j->piece ? (size_t)(j->bytes - sent) : j->piece;
    for (size_t i = 0; i < n; i++)
      buf[i] = (char)((sent + i) % 251);
    if (host->stream_write(j->st, buf, n) != 0) {
      refused = 1;
      break;
    }
    sent += n;
    atomic_store(&last_bytes, sent);
  }
  atomic_store(&last_refused, refused);
  host->stream_end(j->st, buf != NULL && !refused && !j->fail);
  atomic_store(&last_ended, 1);
  free(buf);
  free(j);
  return NULL;
}

static int stream_bytes(void *state, const cd_request *req, cd_response *res) {
  const char *b = query_value(req, "bytes"), *p = query_value(req, "piece");
  job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    host->error(res, 500, "internal", "out of memory", NULL, 0);
    return CD_DONE;
  }
  j->bytes = b != NULL ? strtoull(b, NULL, 10) : 0;
  j->piece = p != NULL ? strtoul(p, NULL, 10) : 65536;
  if (j->piece == 0) j->piece = 1;
  j->fail = query_value(req, "fail") != NULL;
  atomic_store(&last_bytes, 0);
  atomic_store(&last_refused, 0);
  atomic_store(&last_ended, 0);
  atomic_fetch_add(&streams, 1);
  host->header(res, "x-stream-bytes", b != NULL ? b : "0");
  j->st = host->stream_begin(res, 200, "application/octet-stream");
  if (j->st == NULL) {
    free(j);
    return CD_ASYNC; /* the host answered 500 */
  }
  pthread_mutex_lock(&mu);
  if (thread_count == STREAMER_THREADS_MAX ||
      pthread_create(&threads[thread_count], NULL, stream_main, j) != 0) {
    pthread_mutex_unlock(&mu);
    host->stream_end(j->st, false);
    free(j);
    return CD_ASYNC;
  }
  thread_count++;
  pthread_mutex_unlock(&mu);
  return CD_ASYNC;
}

static void respond_text(cd_response *res, const char *text) {
  host->respond(res, 200, "application/json", text, strlen(text));
}

static int stream_last(void *state, const cd_request *req, cd_response *res) {
  char body[160];
  snprintf(body, sizeof(body),
           "{\"streams\": %d, \"bytes\": %llu, \"refused\": %s, "
           "\"ended\": %s}",
           atomic_load(&streams), (unsigned long long)atomic_load(&last_bytes),
           atomic_load(&last_refused) ? "true" : "false",
           atomic_load(&last_ended) ? "true" : "false");
  respond_text(res, body);
  return CD_DONE;
}

static int stream_whoami(void *state, const cd_request *req, cd_response *res) {
  char body[160];
  snprintf(body, sizeof(body), "{\"account\": \"%s\", \"role\": \"%s\"}",
           req->account_name, cs_role_name(req->role));
  respond_text(res, body);
  return CD_DONE;
}

static int stream_bulk(void *state, const cd_request *req, cd_response *res) {
  unsigned long long sum = 0;
  for (size_t i = 0; i < req->body_len; i++)
    sum += (unsigned char)req->body[i];
  char body[160];
  snprintf(body, sizeof(body), "{\"body_len\": %zu, \"sum\": %llu}",
           req->body_len, sum);
  respond_text(res, body);
  return CD_DONE;
}

static int admin_probe(void *state, const cd_request *req, cd_response *res) {
  cs_keyring *k = host->keyring(host->ctx);
  size_t n = 0;
  cs_key_info info;
  while (cs_keys_get(k, n, &info) == 0)
    n++;
  char body[160];
  snprintf(body, sizeof(body), "{\"role\": \"%s\", \"keys\": %zu}",
           cs_role_name(req->role), n);
  respond_text(res, body);
  return CD_DONE;
}

static int admin_revoke(void *state, const cd_request *req, cd_response *res) {
  cs_error err = {0};
  if (cs_keys_revoke(host->keyring(host->ctx), req->params[0].value, &err) !=
      0) {
    host->error(res, 404, "not_found", err.msg, NULL, 0);
    return CD_DONE;
  }
  respond_text(res, "{\"revoked\": true}");
  return CD_DONE;
}

static int streamer_create(const cd_host *h, cs_store *store, void **state_out,
                           char *errbuf, size_t errlen) {
  host = h;
  *state_out = NULL;
  return 0;
}

static void streamer_drain(void *state) {
  pthread_mutex_lock(&mu);
  size_t n = thread_count;
  pthread_mutex_unlock(&mu);
  for (size_t i = 0; i < n; i++)
    pthread_join(threads[i], NULL);
}

static const cd_route streamer_routes[] = {
    {"GET", "/stream/bytes", 0, stream_bytes},
    {"GET", "/stream/last", 0, stream_last},
    {"GET", "/stream/whoami", CD_ROUTE_AUTH, stream_whoami},
    {"POST", "/stream/bulk", CD_ROUTE_BULK, stream_bulk},
    {"GET", "/admin/probe", CD_ROUTE_ADMIN, admin_probe},
    {"POST", "/admin/probe/revoke/{key_id}", CD_ROUTE_ADMIN, admin_revoke},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "streamer",
    .create = streamer_create,
    .routes = streamer_routes,
    .route_count = sizeof(streamer_routes) / sizeof(streamer_routes[0]),
    .drain = streamer_drain,
};
