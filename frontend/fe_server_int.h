/*
 * fe_server_int.h: the server's insides (private to fe_server.c and
 * fe_listen.c): the server, its workers and listeners, and the host's
 * response object.
 */
#ifndef FE_SERVER_INT_H
#define FE_SERVER_INT_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "h2o.h"

#include "fe_limits.h"
#include "fe_log.h"
#include "fe_metrics.h"
#include "fe_plugins.h"
#include "fe_server.h"

typedef struct fe_worker fe_worker;

typedef struct fe_listener {
  int fd;
  char url[FE_LISTENER_URL_MAX_BYTES];
} fe_listener;

typedef struct fe_handler {
  h2o_handler_t super;
  fe_server *srv;
} fe_handler;

typedef struct fe_filter {
  h2o_filter_t super;
  fe_server *srv;
} fe_filter;

/* A connection the worker accepted, until h2o closes its socket: what a
 * stop closes when it is over. */
typedef struct fe_conn {
  h2o_linklist_t link; /* in fe_worker.conns */
  h2o_socket_t *sock;
} fe_conn;

struct fe_worker {
  fe_server *srv;
  size_t index;
  pthread_t tid;      /* set by the worker itself, read after the barrier */
  pthread_t join_tid; /* set by pthread_create, for pthread_join */
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;
  h2o_socket_t *listeners[FE_LISTEN_MAX];
  size_t listener_count;
  h2o_multithread_receiver_t answers; /* cd_response from other threads */
  h2o_multithread_receiver_t control; /* the stop message */
  h2o_multithread_message_t stop_msg;
  h2o_multithread_receiver_t streams; /* cd_stream wake-ups, abort_msg */
  h2o_multithread_message_t abort_msg;
  h2o_linklist_t open_streams; /* cd_stream started and not yet freed */
  size_t pending;              /* handles not yet freed */
  size_t live;                 /* requests with a guard not yet disposed */
  h2o_linklist_t conns;        /* fe_conn: every open accepted connection */
  uint64_t rng;
  /* Freed answer handles kept for reuse (res_alloc), linked through
   * spare_next; none once the worker has finished. */
  struct cd_response *spare;
  size_t spare_count;
  bool spare_closed;
  bool stopping;
  int64_t stop_deadline_ms;
  /* Requests this worker took to their key check, and those of them done
   * (their handler returned, or they were refused): written by the worker
   * alone, read by fe_host_quiesce. */
  _Atomic uint64_t keyed_in, keyed_out;
};

struct fe_server {
  const fe_options *opts;
  fe_listener listeners[FE_LISTEN_MAX];
  size_t listener_count;
  SSL_CTX *ssl_ctx;
  fe_access_log *access_log;
  h2o_globalconf_t globalconf;
  bool configured; /* globalconf initialised */
  cd_host host;
  const fe_router *router;
  cs_keyring *keys;
  cs_store *store;
  atomic_bool streams_aborted; /* stopping: no stream runs any more */
  fe_metrics *metrics;
  const fe_plugin_set *plugins; /* their metrics follow the front end's */
  fe_worker *workers;
  size_t worker_count;
  pthread_barrier_t ready;
  bool started, stopped;
};

typedef struct fe_header {
  struct fe_header *next;
  char *name; /* lower-case; name and value follow the header itself */
  char *value;
  size_t name_len, value_len;
} fe_header;

typedef struct fe_guard {
  struct cd_response *res;
  fe_worker *worker;
} fe_guard;

struct cd_response {
  fe_worker *worker;
  h2o_req_t *req; /* NULL once h2o freed the request */
  fe_guard *guard;
  h2o_multithread_message_t msg;
  struct cd_response *spare_next; /* in fe_worker.spare, once freed */
  atomic_int answered;
  bool handler_running;
  bool sent;
  bool is_head;
  bool reusable;    /* FE_RES_INLINE_BYTES after path: a spare when freed */
  bool body_pooled; /* body is in the request's pool, not shared memory */
  /* the answer */
  int status;
  char *content_type; /* content_type_buf, malloc'd, or NULL */
  char content_type_buf[FE_CONTENT_TYPE_INLINE_BYTES];
  /* h2o shared memory (the pool takes a reference at send), or, when
   * body_pooled, the request pool's own (an answer on the worker's thread
   * while its request is alive) */
  char *body;
  size_t body_len;
  fe_header *headers, **headers_tail;
  struct cd_stream *stream; /* a streamed answer (fe_stream.c), or NULL */
  /* the request, for the log and the metrics */
  const fe_route *route;
  const char *account_name;
  const char *protocol;                  /* fe_peer_protocol */
  char client[FE_CLIENT_ADDR_MAX_BYTES]; /* "": unknown */
  const char *user_agent; /* in the storage after path; NULL: none */
  size_t user_agent_len;
  struct timespec started;
  char method[FE_METHOD_MAX_BYTES];
  char request_id[CS_REQUEST_ID_MAX_BYTES + 1];
  size_t path_len;
  char path[]; /* path_len bytes and a NUL, then the user agent when the
                * access log is on, user_agent_len bytes and a NUL */
};

/* fe_server.c: the worker a loop's context belongs to; a response header
 * added to req (copied into its pool); the request's id (the client's
 * when valid, else a new one). */
fe_worker *fe_worker_of(h2o_context_t *ctx);

/* host->quiesce (fe_quiesce.c). */
int fe_host_quiesce(void *ctx);
void fe_add_header(h2o_req_t *req, const char *name, size_t name_len,
                   const char *value, size_t value_len);
void fe_request_id_of(fe_worker *w, h2o_req_t *req,
                      char out[CS_REQUEST_ID_MAX_BYTES + 1]);

/* fe_server.c, for the streamed answers: the answer's status and headers
 * set on its request (res->req not NULL); an answered request counted in
 * the metrics and the access log with its body bytes; the handle freed
 * when it is answered and its handler has returned. Worker's thread. */
void fe_res_head(cd_response *res);
void fe_res_record(cd_response *res, uint64_t body_bytes);
void fe_res_maybe_free(cd_response *res);

/* fe_res.c: a zeroed answer handle with extra bytes after it (path and
 * user agent), a spare of the worker's when it fits one (NULL when out of
 * memory); and, once the worker's loop has ended, its spares freed for
 * good (a handle freed later is freed at once). */
cd_response *fe_res_alloc(fe_worker *w, size_t extra);
void fe_res_spares_free(fe_worker *w);

/* fe_stream.c: the host's stream_begin, stream_write and stream_end (see
 * cd_plugin.h); on the worker: its stream receiver set up, a streamed
 * answer's head sent (res->stream set by stream_begin), and every open
 * stream aborted (shutdown). */
cd_stream *fe_stream_begin(cd_response *res, int status,
                           const char *content_type);
int fe_stream_write(cd_stream *st, const void *data, size_t len);
void fe_stream_end(cd_stream *st, bool ok);
void fe_stream_worker_init(fe_worker *w);
void fe_stream_start(cd_response *res);
void fe_stream_abort_all(fe_worker *w);
/* While stopping: the connections of aborted streams whose client has read
 * nothing for FE_STREAM_ABORT_GRACE_MS are shut down. */
void fe_stream_reap(fe_worker *w);

/* fe_foreign.c: the filter that makes h2o's own answers the API's. */
void fe_foreign_setup_ostream(h2o_filter_t *self, h2o_req_t *req,
                              h2o_ostream_t **slot);

/* fe_shutdown.c: what a stop waits for and closes. fe_conn_track keeps
 * an accepted connection in w->conns until h2o frees its socket;
 * fe_requests_begun counts the requests of w's connections that h2o has
 * begun to read (a head or body still arriving, or being answered);
 * fe_conns_close shuts down every connection still open. */
/* A worker's stop (fe_shutdown.c): begin it (idempotent), ask after each
 * turn of the loop whether it is done (logging the requests dropped when
 * --shutdown-timeout is over), then finish it. */
void fe_stop_begin(fe_worker *w);
bool fe_stop_done(fe_worker *w);
void fe_stop_finish(fe_worker *w);
void fe_conn_track(fe_worker *w, h2o_socket_t *sock);
size_t fe_requests_begun(fe_worker *w);
void fe_conns_close(fe_worker *w);
/* fe_peer.c: what the access log shows of a live request: its client's
 * numeric address ("" when unknown), its protocol ("HTTP/1.1", "HTTP/2"),
 * its user agent cut at FE_ACCESS_FIELD_MAX_BYTES (base NULL when it sent
 * none). */
void fe_peer_address(h2o_req_t *req, char out[FE_CLIENT_ADDR_MAX_BYTES]);
const char *fe_peer_protocol(const h2o_req_t *req);
h2o_iovec_t fe_peer_user_agent(h2o_req_t *req);

/* fe_listen.c: the TLS context from --tls-cert and --tls-key, and one
 * listening socket bound for an address (its URL kept for the logs). 0, or
 * -1 with err written. */
int fe_listen_tls(fe_server *s, const fe_options *o, char *err, size_t errlen);
int fe_listen_bind(fe_server *s, const fe_listen_addr *a, bool tls, char *err,
                   size_t errlen);

#endif
