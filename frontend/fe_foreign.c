/*
 * fe_foreign.c: the answers h2o makes on its own, before any handler runs
 * (a body past its buffer, a malformed request), made the API's: an
 * x-request-id, an error body in the API's JSON shape, counted in the
 * metrics and written to the access log. h2o calls it as the filter the
 * server registers (fe_server.c); its structures are fe_server_int.h's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "h2o.h"

#include "fe_json.h"
#include "fe_log.h"
#include "fe_metrics.h"
#include "fe_refuse.h"
#include "fe_request.h"
#include "fe_server_int.h"

typedef struct fe_swap_ostream {
  h2o_ostream_t super;
  h2o_iovec_t body; /* sent with the first chunk, then nothing */
} fe_swap_ostream;

static void swap_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs,
                         size_t bufcnt, h2o_send_state_t state) {
  fe_swap_ostream *o = (fe_swap_ostream *)self;
  h2o_iovec_t body = o->body;
  o->body = h2o_iovec_init(NULL, 0);
  if (body.len > 0)
    h2o_ostream_send_next(&o->super, req, &body, 1, state);
  else
    h2o_ostream_send_next(&o->super, req, NULL, 0, state);
}

/*
 * h2o answers some requests before any handler runs: a body over its
 * buffer limit (413), a malformed request (400). Those answers come here
 * without our x-request-id; they get one, and an error body in the API's
 * JSON shape instead of h2o's plain text, and are counted and logged.
 */
static void foreign_response(fe_server *s, h2o_req_t *req,
                             h2o_ostream_t ***slot) {
  fe_worker *w = fe_worker_of(req->conn->ctx);
  char rid[CS_REQUEST_ID_MAX_BYTES + 1];
  fe_request_id_of(w, req, rid);
  fe_add_header(req, H2O_STRLIT("x-request-id"), rid, strlen(rid));

  bool is_head =
      h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
  size_t body_len = req->res.content_length;
  /* An HTTP/2 body refused while it streams comes as h2o's 400 (fe_refuse.c
   * says why): it is the API's 413. */
  int refused_status = 0;
  bool refused = fe_refusal(req, &refused_status) != NULL;
  if (refused && refused_status != req->res.status) {
    req->res.status = refused_status;
    req->res.reason = fe_status_reason(refused_status);
  }
  if (req->res.status >= 400) {
    char msg[FE_MESSAGE_MAX_BYTES];
    if (req->res.status == 413)
      snprintf(msg, sizeof(msg), "request body is larger than %d bytes",
               CS_BODY_MAX_BYTES);
    else
      snprintf(msg, sizeof(msg), "%s", fe_status_reason(req->res.status));
    size_t len = 0;
    char *json = fe_json_error(fe_json_code_for_status(req->res.status), msg,
                               NULL, 0, &len);
    if (json != NULL) {
      h2o_iovec_t body = h2o_strdup(&req->pool, json, len);
      free(json);
      h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                     H2O_STRLIT("application/json"), 1);
      req->res.content_length = body.len;
      body_len = body.len;
      fe_swap_ostream *o =
          (fe_swap_ostream *)h2o_add_ostream(req, sizeof(*o), *slot);
      o->super.do_send = swap_do_send;
      o->body = is_head ? h2o_iovec_init(NULL, 0) : body;
      *slot = &o->super.next;
    }
  }

  struct timeval now;
  gettimeofday(&now, NULL);
  int64_t us = (int64_t)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) *
                   1000000 +
               (now.tv_usec - req->timestamps.request_begin_at.tv_usec);
  if (req->timestamps.request_begin_at.tv_sec == 0 || us < 0) us = 0;
  if (s->metrics != NULL)
    fe_metrics_observe(s->metrics, FE_METRICS_UNMATCHED, req->res.status,
                       (uint64_t)us);
  if (s->access_log != NULL) {
    char method[FE_METHOD_MAX_BYTES];
    snprintf(method, sizeof(method), "%.*s", (int)req->method.len,
             req->method.base != NULL ? req->method.base : "-");
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    char client[FE_CLIENT_ADDR_MAX_BYTES];
    fe_peer_address(req, client);
    h2o_iovec_t ua = fe_peer_user_agent(req);
    fe_access_entry e = {
        .time_ms = fe_now_ms(),
        .client = client[0] != '\0' ? client : NULL,
        .request_id = rid,
        .account = NULL,
        .method = method[0] != '\0' ? method : "-",
        .path = refused ? "-" : req->path.base,
        .path_len = refused                  ? 1
                    : req->path.base != NULL ? path_len
                                             : 0,
        .protocol = fe_peer_protocol(req),
        .status = req->res.status,
        .bytes = is_head || body_len == SIZE_MAX ? 0 : body_len,
        .micros = (uint64_t)us,
        .user_agent = ua.base,
        .user_agent_len = ua.len,
    };
    fe_access_log_write(s->access_log, &e);
  }
}

void fe_foreign_setup_ostream(h2o_filter_t *self, h2o_req_t *req,
                              h2o_ostream_t **slot) {
  fe_server *s = ((fe_filter *)self)->srv;
  if (h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"),
                             -1) < 0)
    foreign_response(s, req, &slot);
  h2o_setup_next_ostream(req, slot);
}
