/*
 * fe_server.c: h2o behind the plugin API. Its structures are in
 * fe_server_int.h; the TLS context and the listening sockets in
 * fe_listen.c; the answers h2o makes on its own in fe_foreign.c.
 *
 * Threads. Each worker owns an h2o loop and context and accepts on its own
 * dup() of every listening socket, so closing its listeners at shutdown
 * never disturbs another worker. A plugin may answer from any thread (the
 * store's commit thread, typically); an answer made off the worker's thread
 * is queued to the worker through h2o's multithread queue and sent from the
 * loop, which is the only thread that ever touches an h2o request.
 *
 * The answer handle (cd_response) outlives the h2o request when it must. A
 * small guard object lives in the request's memory pool; h2o runs its
 * dispose callback when it frees the request (the client went away, or the
 * response was written), which tells the handle that its request is gone.
 * Invariants, all on the worker's thread:
 *   - res->req is non-NULL exactly while the request's pool is alive;
 *   - res is freed once it has been answered (sent or dropped) and its
 *     handler has returned, and never earlier;
 *   - the worker counts handles not yet freed (pending) and requests not yet
 *     disposed (live); shutdown waits for both to reach zero.
 */
#include "fe_server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "h2o.h"
#include "h2o/http1.h"
#include "h2o/http2.h"
#include "h2o/version.h"

#include "fe_errors.h"
#include "fe_json.h"
#include "fe_process.h"
#include "fe_refuse.h"
#include "fe_request.h"

#include "fe_server_int.h"

/* Kept reachable after fe_server_destroy: see its comment. */
static fe_worker *retained_workers[FE_RETAINED_SERVERS_MAX];
static size_t retained_count;

/* ------------------------------------------------------------- utilities */

fe_worker *fe_worker_of(h2o_context_t *ctx) {
  return H2O_STRUCT_FROM_MEMBER(fe_worker, ctx, ctx);
}

static uint64_t micros_since(const struct timespec *t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t us = (int64_t)(now.tv_sec - t0->tv_sec) * 1000000 +
               (now.tv_nsec - t0->tv_nsec) / 1000;
  return us > 0 ? (uint64_t)us : 0;
}

static void log_res(const cd_response *res, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_res(const cd_response *res, int level, const char *fmt, ...) {
  char line[FE_LOG_LINE_MAX_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fe_log_line(level, res != NULL ? res->request_id : NULL, line);
}

/* ---------------------------------------------------- answering requests */

static h2o_generator_t fe_generator = {NULL, NULL};

void fe_add_header(h2o_req_t *req, const char *name, size_t name_len,
                   const char *value, size_t value_len) {
  h2o_iovec_t n = h2o_strdup(&req->pool, name, name_len);
  h2o_iovec_t v = h2o_strdup(&req->pool, value, value_len);
  h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL,
                        v.base, v.len);
}

void fe_res_head(cd_response *res) {
  h2o_req_t *req = res->req;
  req->res.status = res->status;
  req->res.reason = fe_status_reason(res->status);
  for (fe_header *h = res->headers; h != NULL; h = h->next)
    fe_add_header(req, h->name, h->name_len, h->value, h->value_len);
  if (res->content_type != NULL) {
    h2o_iovec_t ct =
        h2o_strdup(&req->pool, res->content_type, strlen(res->content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   ct.base, ct.len);
  }
  fe_add_header(req, H2O_STRLIT("x-request-id"), res->request_id,
                strlen(res->request_id));
}

/* Hands the answer to h2o. Runs on the worker's thread. */
static void send_to_h2o(cd_response *res) {
  h2o_req_t *req = res->req;
  fe_res_head(res);
  req->res.content_length = res->body_len;
  /* A request whose head came before the stop began was told keep-alive;
   * its connection closes after this answer all the same. */
  if (res->worker->stopping) req->http1_is_persistent = 0;

  if (!res->body_pooled) h2o_mem_link_shared(&req->pool, res->body);
  h2o_iovec_t buf = h2o_iovec_init(res->body, res->body_len);
  h2o_start_response(req, &fe_generator);
  if (res->is_head || res->body_len == 0)
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
  else
    h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

void fe_res_record(cd_response *res, uint64_t body_bytes) {
  fe_server *s = res->worker->srv;
  uint64_t micros = micros_since(&res->started);
  fe_metrics_observe(
      s->metrics, res->route != NULL ? res->route->index : FE_METRICS_UNMATCHED,
      res->status, micros);
  if (s->access_log != NULL) {
    fe_access_entry e = {
        .time_ms = fe_now_ms(),
        .client = res->client[0] != '\0' ? res->client : NULL,
        .request_id = res->request_id,
        .account = res->account_name,
        .method = res->method,
        .path = res->path,
        .path_len = res->path_len,
        .protocol = res->protocol,
        .status = res->status,
        .bytes = body_bytes,
        .micros = micros,
        .user_agent = res->user_agent,
        .user_agent_len = res->user_agent_len,
    };
    fe_access_log_write(s->access_log, &e);
  }
  if (res->status >= 500)
    log_res(res, CD_LOG_ERROR, "%s %.*s answered %d", res->method,
            (int)res->path_len, res->path, res->status);
}

/* Completes an answered response on the worker's thread: counts it, logs
 * it, sends it if the client is still there, and frees it when it can. A
 * streamed answer sends its head here; it is counted at its end. */
static void res_finish(cd_response *res) {
  if (res->stream != NULL) {
    fe_stream_start(res);
    return;
  }
  res->sent = true;
  fe_res_record(res, res->is_head || res->req == NULL ? 0 : res->body_len);

  if (res->req != NULL)
    send_to_h2o(res);
  else
    log_res(res, CD_LOG_INFO, "%s %.*s: the client left before the answer (%d)",
            res->method, (int)res->path_len, res->path, res->status);
  fe_res_maybe_free(res);
}

static void on_answers(h2o_multithread_receiver_t *receiver,
                       h2o_linklist_t *messages) {
  while (!h2o_linklist_is_empty(messages)) {
    h2o_multithread_message_t *msg =
        H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
    h2o_linklist_unlink(&msg->link);
    res_finish(H2O_STRUCT_FROM_MEMBER(cd_response, msg, msg));
  }
}

/* ------------------------------------------------------- the host (API) */

static bool header_name_ok(const char *s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
      return false;
  }
  return true;
}

static bool header_value_ok(const char *s) {
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

/* Headers the transport owns; a plugin setting one would corrupt framing. */
static bool header_reserved(const char *lower) {
  static const char *const names[] = {
      "content-length", "transfer-encoding", "connection",  "keep-alive",
      "upgrade",        "x-request-id",      "content-type"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(lower, names[i]) == 0) return true;
  return false;
}

static void host_header(cd_response *res, const char *name, const char *value) {
  if (res == NULL || name == NULL || value == NULL) return;
  if (atomic_load(&res->answered)) {
    log_res(res, CD_LOG_WARN, "plugin bug: header %s added after the answer",
            name);
    return;
  }
  if (!header_name_ok(name) || !header_value_ok(value) ||
      strlen(name) > FE_HEADER_MAX_BYTES ||
      strlen(value) > FE_HEADER_MAX_BYTES) {
    log_res(res, CD_LOG_WARN,
            "plugin bug: header %s dropped (bad name or value)", name);
    return;
  }
  /* One allocation: the header, then its name and value. */
  size_t name_len = strlen(name), value_len = strlen(value);
  fe_header *h = malloc(sizeof(*h) + name_len + 1 + value_len + 1);
  if (h == NULL) return;
  h->next = NULL;
  h->name = (char *)(h + 1);
  h->name_len = name_len;
  h->value = h->name + name_len + 1;
  h->value_len = value_len;
  for (size_t i = 0; i <= name_len; i++) {
    char c = name[i];
    h->name[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
  }
  memcpy(h->value, value, value_len + 1);
  if (header_reserved(h->name)) {
    log_res(res, CD_LOG_WARN, "plugin bug: header %s is the server's to set",
            h->name);
    free(h);
    return;
  }
  *res->headers_tail = h;
  res->headers_tail = &h->next;
}

static void host_respond(cd_response *res, int status, const char *content_type,
                         const char *body, size_t body_len) {
  if (res == NULL) return;
  if (atomic_exchange(&res->answered, 1) != 0) {
    log_res(res, CD_LOG_ERROR, "plugin bug: a second answer (%d) ignored",
            status);
    return;
  }
  if (status < 100 || status > 599) {
    log_res(res, CD_LOG_ERROR, "plugin bug: status %d answered as 500", status);
    status = 500;
    content_type = NULL;
    body = NULL;
    body_len = 0;
  }
  res->status = status;
  if (content_type != NULL && header_value_ok(content_type)) {
    size_t n = strlen(content_type);
    res->content_type = n < sizeof(res->content_type_buf)
                            ? memcpy(res->content_type_buf, content_type, n + 1)
                            : strdup(content_type);
  }
  if (body == NULL) body_len = 0;
  bool on_worker = pthread_equal(pthread_self(), res->worker->tid);
  /* On the worker's thread with the request alive, the body goes into the
   * request's pool (freed with it); otherwise into shared memory, which
   * the pool takes a reference to at send, instead of a second copy. */
  res->body_pooled = on_worker && res->req != NULL;
  res->body = res->body_pooled
                  ? h2o_mem_alloc_pool(&res->req->pool, body_len + 1)
                  : h2o_mem_alloc_shared(NULL, body_len + 1, NULL);
  if (body_len > 0) memcpy(res->body, body, body_len);
  res->body_len = body_len;

  if (on_worker)
    res_finish(res);
  else
    h2o_multithread_send_message(&res->worker->answers, &res->msg);
}

static void host_error(cd_response *res, int status, const char *code,
                       const char *message, const char *field, uint64_t id) {
  size_t len = 0;
  char *body = fe_json_error(code, message, field, id, &len);
  if (body == NULL) {
    static const char fallback[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
    host_respond(res, 500, "application/json", fallback, sizeof(fallback) - 1);
    return;
  }
  host_respond(res, status, "application/json", body, len);
  free(body);
}

static void host_log(void *ctx, cd_response *res, int level, const char *line) {
  fe_log_line(level, res != NULL ? res->request_id : NULL, line);
}

#ifndef CONTACTD_VERSION
#define CONTACTD_VERSION "unknown"
#endif
#ifndef CONTACTD_GIT_COMMIT
#define CONTACTD_GIT_COMMIT "unknown"
#endif

/* The front end's counters, the process's figures (read now) and the
 * build, then every plugin's own metrics. */
static size_t host_metrics(void *ctx, char **out) {
  fe_server *s = ctx;
  size_t len = 0;
  if (s->metrics != NULL) {
    len = fe_metrics_render(s->metrics, out);
    if (len == 0) return 0;
  }
  static const fe_build_info build = {.version = CONTACTD_VERSION,
                                      .commit = CONTACTD_GIT_COMMIT,
                                      .h2o = H2O_VERSION,
                                      .plugin_api = CD_PLUGIN_API_VERSION};
  fe_process_stats proc;
  fe_process_read(&proc);
  len = fe_metrics_render_process(&proc, &build, out);
  if (len == 0) return 0;
  size_t all = fe_plugins_metrics(s->plugins, out);
  return all != 0 ? all : len;
}

static const char *host_option(void *ctx, const char *name, size_t i) {
  fe_server *s = ctx;
  return fe_options_plugin_value(s->opts, name, i);
}

static cs_keyring *host_keyring(void *ctx) {
  fe_server *s = ctx;
  return s->keys;
}

/* ------------------------------------------------------ request pipeline */

static void guard_dispose(void *p) {
  fe_guard *g = p;
  g->worker->live--;
  if (g->res != NULL) {
    g->res->req = NULL;
    g->res->guard = NULL;
  }
}

void fe_request_id_of(fe_worker *w, h2o_req_t *req,
                      char out[CS_REQUEST_ID_MAX_BYTES + 1]) {
  ssize_t i =
      h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
  if (i >= 0) {
    h2o_iovec_t v = req->headers.entries[i].value;
    if (fe_request_id_valid(v.base, v.len)) {
      memcpy(out, v.base, v.len);
      out[v.len] = '\0';
      return;
    }
  }
  fe_request_id_generate(&w->rng, out);
}

/*
 * A request goes through on_req in steps, each of which either moves it on
 * or answers it: res_begin (the answer handle), req_route (404, 405),
 * req_body_fits (413), req_authenticate (401, 403), req_view (the request
 * view the plugin sees) and req_dispatch (the plugin's handler). The steps
 * are static and called once each, so the compiler is free to fold them
 * back into one function: the split costs the request path nothing.
 */

/* The answer handle for req, with its guard in the request's pool; NULL
 * when out of memory, after h2o has been told to answer 500. */
static cd_response *res_begin(fe_worker *w, h2o_req_t *req, size_t path_len) {
  bool logged = w->srv->access_log != NULL;
  h2o_iovec_t ua = logged ? fe_peer_user_agent(req) : h2o_iovec_init(NULL, 0);
  cd_response *res = fe_res_alloc(w, path_len + 1 + ua.len + 1);
  fe_guard *guard =
      h2o_mem_alloc_shared(&req->pool, sizeof(*guard), guard_dispose);
  if (res == NULL) {
    h2o_send_error_500(req, "Internal Server Error", "out of memory", 0);
    guard->res = NULL;
    guard->worker = w;
    w->live++;
    return NULL;
  }
  clock_gettime(CLOCK_MONOTONIC, &res->started);
  w->pending++;
  w->live++;
  guard->res = res;
  guard->worker = w;
  res->worker = w;
  res->req = req;
  res->guard = guard;
  res->headers_tail = &res->headers;
  res->handler_running = true;
  size_t mlen = req->method.len < sizeof(res->method) - 1
                    ? req->method.len
                    : sizeof(res->method) - 1;
  memcpy(res->method, req->method.base, mlen);
  res->method[mlen] = '\0';
  memcpy(res->path, req->path.base, path_len);
  res->path_len = path_len;
  if (logged) {
    res->protocol = fe_peer_protocol(req);
    fe_peer_address(req, res->client);
    if (ua.base != NULL) {
      char *at = res->path + path_len + 1;
      memcpy(at, ua.base, ua.len);
      res->user_agent = at;
      res->user_agent_len = ua.len;
    }
  }
  res->is_head = strcmp(res->method, "HEAD") == 0;
  fe_request_id_of(w, req, res->request_id);
  return res;
}

/* Finds the route into *m (method: the request's, NUL-terminated, in the
 * pool). false when there is none and the 404 or 405 has been answered. */
static bool req_route(const fe_server *s, h2o_req_t *req, cd_response *res,
                      const char *method, size_t path_len, fe_match *m) {
  char *scratch =
      h2o_mem_alloc_pool(&req->pool, FE_ROUTER_SCRATCH_BYTES(path_len));
  fe_route_result rr =
      fe_router_match(s->router, method, req->path.base, path_len, scratch, m);
  if (rr == FE_ROUTE_NOT_FOUND) {
    host_error(res, 404, "not_found", "no such route", NULL, 0);
    return false;
  }
  if (rr == FE_ROUTE_METHOD_NOT_ALLOWED) {
    char msg[FE_MESSAGE_MAX_BYTES];
    snprintf(msg, sizeof(msg), "method %s is not allowed here; allowed: %s",
             res->method, m->allow);
    host_header(res, "allow", m->allow);
    host_error(res, 405, "method_not_allowed", msg, NULL, 0);
    return false;
  }
  res->route = m->route;
  return true;
}

/* false when the body is over the route's limit (CS_BODY_MAX_BYTES, or
 * FE_BULK_BODY_MAX_BYTES on a CD_ROUTE_BULK route) and the 413 is
 * answered. */
static bool req_body_fits(const h2o_req_t *req, cd_response *res,
                          const fe_route *route) {
  size_t max = fe_route_body_max(route->flags);
  if (req->entity.len <= max) return true;
  char msg[FE_MESSAGE_MAX_BYTES];
  snprintf(msg, sizeof(msg), "request body is larger than %zu bytes", max);
  host_error(res, 413, "payload_too_large", msg, NULL, 0);
  return false;
}

/* Checks the key a route needs and puts the caller into *view; routes
 * without CD_ROUTE_AUTH pass as read-only with no account. An admin key
 * reaches CD_ROUTE_ADMIN routes and no other authenticated one; those take
 * no other key. A key of an account marked moving reaches only
 * CD_ROUTE_ADMIN routes: every other gets 503 account_moving with
 * retry-after (the one place a key becomes a request's account, so no
 * route of any plugin serves a moving account). false when the 401, 403
 * or 503 is answered. */
static bool req_authenticate(const fe_server *s, const h2o_req_t *req,
                             cd_response *res, const fe_route *route,
                             cd_request *view) {
  view->role = CS_ROLE_READ_ONLY;
  if (!(route->flags & (CD_ROUTE_AUTH | CD_ROUTE_WRITE | CD_ROUTE_ADMIN)))
    return true;
  ssize_t ki =
      h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-api-key"), -1);
  if (ki < 0) {
    host_error(res, 401, "missing_api_key", "x-api-key header required", NULL,
               0);
    return false;
  }
  /* A field value excludes the whitespace around it (RFC 9110 section 5.5;
   * h2o 2.2.5 keeps trailing spaces and tabs in the value). */
  h2o_iovec_t key = req->headers.entries[ki].value;
  while (key.len > 0 && (key.base[0] == ' ' || key.base[0] == '\t')) {
    key.base++;
    key.len--;
  }
  while (key.len > 0 &&
         (key.base[key.len - 1] == ' ' || key.base[key.len - 1] == '\t'))
    key.len--;
  if (key.len == 0) {
    host_error(res, 401, "missing_api_key", "x-api-key header required", NULL,
               0);
    return false;
  }
  const cs_key_info *info = NULL;
  int rc = s->keys != NULL ? cs_keys_check(s->keys, key.base, key.len, &info)
                           : CS_EKEY;
  if ((rc != 0 && rc != CS_EMOVING) || info == NULL) {
    host_error(res, 401, "invalid_api_key", "unknown or revoked API key", NULL,
               0);
    return false;
  }
  const char *code, *message;
  int status = fe_route_admits(route->flags, info->role, &code, &message);
  if (status != 0) {
    host_error(res, status, code, message, NULL, 0);
    return false;
  }
  if (rc == CS_EMOVING && !(route->flags & CD_ROUTE_ADMIN)) {
    const cd_store_error *e = fe_store_error(CS_EMOVING);
    res->account_name = info->account;
    host_header(res, "retry-after", e->retry_after);
    host_error(res, e->status, e->code, e->message, NULL, 0);
    return false;
  }
  view->account = info->account_id;
  view->account_name = info->account;
  view->role = info->role;
  res->account_name = info->account;
  return true;
}

/* Fills the rest of the view: path, parameters, decoded query, headers
 * without the key, body. Everything points into the request's pool or the
 * router, valid until the handler returns. */
static void req_view(const fe_server *s, h2o_req_t *req, const cd_response *res,
                     const char *method, size_t path_len, const fe_match *m,
                     cd_request *view) {
  view->method = method;
  view->path = h2o_strdup(&req->pool, req->path.base, path_len).base;
  view->params = m->params;
  view->param_count = m->param_count;
  if (req->query_at != SIZE_MAX) {
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1;
    size_t max = fe_query_pairs_max(q, qlen);
    cd_pair *pairs = h2o_mem_alloc_pool(&req->pool, max * sizeof(cd_pair));
    char *qscratch =
        h2o_mem_alloc_pool(&req->pool, FE_QUERY_SCRATCH_BYTES(qlen));
    view->query = pairs;
    view->query_count = fe_query_parse(q, qlen, qscratch, pairs, max);
  }
  if (req->headers.size > 0) {
    cd_pair *hs =
        h2o_mem_alloc_pool(&req->pool, req->headers.size * sizeof(cd_pair));
    size_t n = 0;
    for (size_t i = 0; i < req->headers.size; i++) {
      const h2o_header_t *h = &req->headers.entries[i];
      /* The key has done its work; a plugin has no need to see it. */
      if (h2o_memis(h->name->base, h->name->len, H2O_STRLIT("x-api-key")))
        continue;
      hs[n].name = h->name->base;
      hs[n].name_len = h->name->len;
      hs[n].value = h->value.base;
      hs[n].value_len = h->value.len;
      n++;
    }
    view->headers = hs;
    view->header_count = n;
  }
  view->body = req->entity.base;
  view->body_len = req->entity.base != NULL ? req->entity.len : 0;
  view->request_id = res->request_id;
  view->store = s->store;
  view->scheme = req->scheme == &H2O_URL_SCHEME_HTTPS ? "https" : "http";
  /* h2o fills in its host entry's name when the client named none. */
  h2o_iovec_t a = req->input.authority;
  if (a.base != NULL && a.base != req->hostconf->authority.hostport.base)
    view->authority = h2o_strdup(&req->pool, a.base, a.len).base;
}

/* Calls the route's handler; a handler that returns CD_DONE without
 * answering is a plugin bug, answered 500 here so the client still hears. */
static void req_dispatch(cd_response *res, const fe_route *route,
                         const cd_request *view) {
  const fe_target *t = route->payload;
  int rc = t->handle(t->state, view, res);
  if (rc != CD_ASYNC && !atomic_load(&res->answered)) {
    log_res(res, CD_LOG_ERROR, "plugin %s: %s %s returned without answering",
            t->plugin, route->method, route->pattern);
    host_error(res, 500, "internal", "internal error", NULL, 0);
  }
}

/* false when h2o's parser refused the request (fe_refuse.c) and its 400 or
 * 413 is answered; a refused HTTP/1 connection closes after it. */
static bool req_parsed(h2o_req_t *req, cd_response *res) {
  int status;
  const char *why = fe_refusal(req, &status);
  if (why == NULL) return true;
  req->http1_is_persistent = 0;
  memcpy(res->path, "-", 2); /* the marker is no path to log */
  res->path_len = 1;
  host_error(res, status, status == 413 ? "payload_too_large" : "bad_request",
             why, NULL, 0);
  return false;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  fe_server *s = ((fe_handler *)self)->srv;
  fe_worker *w = fe_worker_of(req->conn->ctx);
  size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
  cd_response *res = res_begin(w, req, path_len);
  if (res == NULL) return 0;

  const char *method =
      h2o_strdup(&req->pool, req->method.base, req->method.len).base;
  fe_match m;
  cd_request view;
  memset(&view, 0, sizeof(view));
  if (req_parsed(req, res) && req_route(s, req, res, method, path_len, &m) &&
      req_body_fits(req, res, m.route)) {
    /* Counted in before the key check, out once the handler returned:
     * what host->quiesce waits for (fe_quiesce.c). */
    atomic_fetch_add(&w->keyed_in, 1);
    if (req_authenticate(s, req, res, m.route, &view)) {
      req_view(s, req, res, method, path_len, &m, &view);
      req_dispatch(res, m.route, &view);
    }
    atomic_fetch_add_explicit(&w->keyed_out, 1, memory_order_release);
  }
  res->handler_running = false;
  fe_res_maybe_free(res);
  return 0;
}

/* ------------------------------------------------------------- workers */

static void on_accept(h2o_socket_t *listener, const char *err) {
  if (err != NULL) return;
  fe_worker *w = listener->data;
  h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
  if (sock == NULL) return;
  fe_conn_track(w, sock);
  h2o_accept(&w->accept_ctx, sock);
}

static void on_control(h2o_multithread_receiver_t *receiver,
                       h2o_linklist_t *messages) {
  fe_worker *w = H2O_STRUCT_FROM_MEMBER(fe_worker, control, receiver);
  while (!h2o_linklist_is_empty(messages)) {
    h2o_linklist_t *m = messages->next;
    h2o_linklist_unlink(m);
  }
  fe_stop_begin(w);
}

static void *worker_main(void *arg) {
  fe_worker *w = arg;
  fe_server *s = w->srv;

  w->tid = pthread_self();
  h2o_linklist_init_anchor(&w->conns);
  h2o_context_init(&w->ctx, h2o_evloop_create(), &s->globalconf);
  h2o_multithread_register_receiver(w->ctx.queue, &w->answers, on_answers);
  h2o_multithread_register_receiver(w->ctx.queue, &w->control, on_control);
  fe_stream_worker_init(w);
  w->accept_ctx.ctx = &w->ctx;
  w->accept_ctx.hosts = s->globalconf.hosts;
  w->accept_ctx.ssl_ctx = s->ssl_ctx;

  for (size_t i = 0; i < s->listener_count; i++) {
    int fd = fcntl(s->listeners[i].fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      fe_log_line(CD_LOG_ERROR, NULL,
                  "worker cannot duplicate a listening socket");
      continue;
    }
    h2o_socket_t *sock =
        h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    sock->data = w;
    h2o_socket_read_start(sock, on_accept);
    w->listeners[w->listener_count++] = sock;
  }
  pthread_barrier_wait(&s->ready);

  for (;;) {
    h2o_evloop_run(w->ctx.loop, w->stopping ? FE_SHUTDOWN_POLL_MS : INT32_MAX);
    if (w->stopping && fe_stop_done(w)) break;
  }
  fe_stop_finish(w);
  fe_res_spares_free(w);
  return NULL;
}

/* ---------------------------------------------------------- life cycle */

int fe_server_create(const fe_options *o, fe_server **out, char *err,
                     size_t errlen) {
  fe_server *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->opts = o;
  for (size_t i = 0; i < FE_LISTEN_MAX; i++)
    s->listeners[i].fd = -1;

  if (o->tls_cert != NULL && fe_listen_tls(s, o, err, errlen) != 0) goto fail;
  for (size_t i = 0; i < o->listen_count; i++)
    if (fe_listen_bind(s, &o->listen[i], s->ssl_ctx != NULL, err, errlen) != 0)
      goto fail;
  if (o->access_log != NULL &&
      fe_access_log_open(o->access_log, &s->access_log, err, errlen) != 0)
    goto fail;
  if (s->access_log != NULL)
    fe_access_log_set_format(s->access_log, o->access_log_format);

  h2o_config_init(&s->globalconf);
  s->configured = true;
  s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("contactd"));
  /* Bulk routes take large bodies; every other route's body is refused
   * from its head past FE_BODY_BUFFER_MAX_BYTES (fe_refuse.c). */
  s->globalconf.max_request_entity_size = FE_BULK_BODY_BUFFER_MAX_BYTES;
  h2o_hostconf_t *hostconf = h2o_config_register_host(
      &s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), FE_H2O_PORT_ANY);
  h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
  fe_handler *h = (fe_handler *)h2o_create_handler(pathconf, sizeof(*h));
  h->super.on_req = on_req;
  h->srv = s;
  fe_filter *f = (fe_filter *)h2o_create_filter(pathconf, sizeof(*f));
  f->super.on_setup_ostream = fe_foreign_setup_ostream;
  f->srv = s;
  /* Errors h2o answers before a path is chosen use the fallback path. */
  f = (fe_filter *)h2o_create_filter(&hostconf->fallback_path, sizeof(*f));
  f->super.on_setup_ostream = fe_foreign_setup_ostream;
  f->srv = s;

  s->host.ctx = s;
  s->host.header = host_header;
  s->host.respond = host_respond;
  s->host.error = host_error;
  s->host.log = host_log;
  s->host.metrics = host_metrics;
  s->host.store_error = fe_store_error;
  s->host.option = host_option;
  s->host.stream_begin = fe_stream_begin;
  s->host.stream_write = fe_stream_write;
  s->host.stream_end = fe_stream_end;
  s->host.keyring = host_keyring;
  s->host.quiesce = fe_host_quiesce;
  *out = s;
  return 0;

fail:
  fe_server_destroy(s);
  return -1;
}

const cd_host *fe_server_host(fe_server *s) {
  return &s->host;
}

/* fe_refuse.c asks, on a worker, before a body is read. */
static bool bulk_path(void *ctx, const char *method, size_t method_len,
                      const char *path, size_t path_len) {
  const fe_server *s = ctx;
  return fe_router_is_bulk(s->router, method, method_len, path, path_len);
}

int fe_server_set_routes(fe_server *s, const fe_router *router,
                         cs_keyring *keys, cs_store *store, char *err,
                         size_t errlen) {
  size_t n = fe_router_count(router);
  const char **methods = calloc(n + 1, sizeof(char *));
  const char **patterns = calloc(n + 1, sizeof(char *));
  int rc = -1;
  if (methods != NULL && patterns != NULL) {
    for (size_t i = 0; i < n; i++) {
      methods[i] = fe_router_at(router, i)->method;
      patterns[i] = fe_router_at(router, i)->pattern;
    }
    rc = fe_metrics_create(n, methods, patterns, &s->metrics);
  }
  free(methods);
  free(patterns);
  if (rc != 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->router = router;
  fe_refuse_set_bulk(bulk_path, s);
  s->keys = keys;
  s->store = store;
  return 0;
}

void fe_server_set_plugins(fe_server *s, const fe_plugin_set *plugins) {
  s->plugins = plugins;
}

size_t fe_server_listener_count(const fe_server *s) {
  return s->listener_count;
}

const char *fe_server_listener_url(const fe_server *s, size_t i) {
  return i < s->listener_count ? s->listeners[i].url : NULL;
}

int fe_server_start(fe_server *s, char *err, size_t errlen) {
  unsigned threads = s->opts->threads;
  if (threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n < 1 ? 1 : n > FE_THREADS_MAX ? FE_THREADS_MAX : (unsigned)n;
  }
  s->workers = calloc(threads, sizeof(fe_worker));
  if (s->workers == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_barrier_init(&s->ready, NULL, threads + 1);
  for (unsigned i = 0; i < threads; i++) {
    fe_worker *w = &s->workers[i];
    w->srv = s;
    w->index = i;
    w->rng = fe_random_seed();
    pthread_t tid;
    int rc = pthread_create(&tid, NULL, worker_main, w);
    if (rc != 0) {
      /* Workers already started wait at the barrier forever; the process
       * is about to exit with this error. */
      snprintf(err, errlen, "cannot start worker thread %u: %s", i,
               strerror(rc));
      return -1;
    }
    w->join_tid = tid;
    s->worker_count++;
  }
  pthread_barrier_wait(&s->ready);
  s->started = true;
  return 0;
}

int fe_server_reopen_access_log(fe_server *s, char *err, size_t errlen) {
  if (s->access_log == NULL) return 0;
  return fe_access_log_reopen(s->access_log, err, errlen);
}

void fe_server_stop(fe_server *s) {
  if (s == NULL || !s->started || s->stopped) return;
  s->stopped = true;
  for (size_t i = 0; i < s->worker_count; i++)
    h2o_multithread_send_message(&s->workers[i].control,
                                 &s->workers[i].stop_msg);
  /* Each worker has closed its own copy; the originals go now so the port
   * stops answering at once. */
  for (size_t i = 0; i < s->listener_count; i++) {
    close(s->listeners[i].fd);
    s->listeners[i].fd = -1;
  }
  for (size_t i = 0; i < s->worker_count; i++)
    pthread_join(s->workers[i].join_tid, NULL);
}

void fe_server_destroy(fe_server *s) {
  if (s == NULL) return;
  for (size_t i = 0; i < FE_LISTEN_MAX; i++)
    if (s->listeners[i].fd >= 0) close(s->listeners[i].fd);
  fe_access_log_close(s->access_log);
  s->access_log = NULL;
  if (s->workers != NULL) {
    /* Loops and contexts stay allocated and reachable, see the header. The
     * metrics may still be read by a connection that never closed, so they
     * stay too. */
    if (retained_count < sizeof(retained_workers) / sizeof(retained_workers[0]))
      retained_workers[retained_count++] = s->workers;
    return;
  }
  /* Never started: nothing refers to the configuration any more. */
  if (s->configured) h2o_config_dispose(&s->globalconf);
  fe_metrics_destroy(s->metrics);
  if (s->ssl_ctx != NULL) SSL_CTX_free(s->ssl_ctx);
  free(s);
}
