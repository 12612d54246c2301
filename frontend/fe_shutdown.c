/*
 * fe_shutdown.c: what a worker's stop waits for and what it closes at its
 * end (fe_server_int.h).
 *
 * The server's own handles (pending, live) count only requests h2o has
 * handed to it; a request whose head or body is still arriving is h2o's
 * alone until then, so the stop also asks h2o's protocols for their
 * requests (foreach_request, HTTP/1 and HTTP/2) and counts those that
 * have begun. h2o sets a request's begin time at its first byte and
 * clears it when a keep-alive connection waits for the next one, so an
 * idle connection holds nothing up.
 *
 * Connections are tracked from accept to the socket's close (h2o calls
 * the socket's on_close; the socket object stays the same through TLS,
 * h2c Upgrade and HTTP/2), so that the end of a stop can shut down those
 * still open (idle keep-alive ones, and those whose requests the timeout
 * dropped): their clients hear the end at once, not when the process
 * exits after the store has closed.
 *
 * A worker's stop, in order: fe_stop_begin (on the stop message: no new
 * connection, open streams cut, GOAWAY), fe_stop_done after each turn of
 * the loop (everything answered, or --shutdown-timeout over), then
 * fe_stop_finish (the last writes flushed, what is open closed).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "fe_server_int.h"

static void on_conn_close(void *data) {
  fe_conn *c = data;
  h2o_linklist_unlink(&c->link);
  free(c);
}

void fe_conn_track(fe_worker *w, h2o_socket_t *sock) {
  fe_conn *c = malloc(sizeof(*c));
  if (c == NULL) return; /* untracked: it closes when the process exits */
  c->sock = sock;
  h2o_linklist_insert(&w->conns, &c->link);
  sock->on_close.cb = on_conn_close;
  sock->on_close.data = c;
}

static int count_begun(h2o_req_t *req, void *cbdata) {
  if (req->timestamps.request_begin_at.tv_sec != 0) ++*(size_t *)cbdata;
  return 0;
}

size_t fe_requests_begun(fe_worker *w) {
  size_t n = 0;
  const h2o_globalconf_t *g = w->ctx.globalconf;
  if (g->http1.callbacks.foreach_request != NULL)
    g->http1.callbacks.foreach_request(&w->ctx, count_begun, &n);
  if (g->http2.callbacks.foreach_request != NULL)
    g->http2.callbacks.foreach_request(&w->ctx, count_begun, &n);
  return n;
}

void fe_conns_close(fe_worker *w) {
  for (h2o_linklist_t *l = w->conns.next; l != &w->conns; l = l->next) {
    fe_conn *c = H2O_STRUCT_FROM_MEMBER(fe_conn, link, l);
    shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
  }
}

void fe_stop_begin(fe_worker *w) {
  if (w->stopping) return;
  w->stopping = true;
  w->stop_deadline_ms =
      fe_now_ms() + (int64_t)w->srv->opts->shutdown_timeout_s * 1000;
  atomic_store(&w->srv->streams_aborted, true);
  fe_stream_abort_all(w);
  for (size_t i = 0; i < w->listener_count; i++) {
    h2o_socket_read_stop(w->listeners[i]);
    h2o_socket_close(w->listeners[i]);
    w->listeners[i] = NULL;
  }
  w->listener_count = 0;
  /* HTTP/2 connections get GOAWAY; HTTP/1 ones stop keeping alive. */
  h2o_context_request_shutdown(&w->ctx);
}

bool fe_stop_done(fe_worker *w) {
  size_t begun = fe_requests_begun(w);
  if (w->pending == 0 && w->live == 0 && begun == 0) return true;
  fe_stream_reap(w);
  if (fe_now_ms() < w->stop_deadline_ms) return false;
  char line[FE_LOG_LINE_MAX_BYTES];
  snprintf(line, sizeof(line),
           "worker %zu: --shutdown-timeout %u s is over; dropping %zu "
           "unfinished requests (%zu answers pending)",
           w->index, w->srv->opts->shutdown_timeout_s,
           begun > w->live ? begun : w->live, w->pending);
  fe_log_line(CD_LOG_WARN, NULL, line);
  return true;
}

void fe_stop_finish(fe_worker *w) {
  /* Let the last responses reach their sockets: a few more turns of the
   * loop flush what h2o has queued for writing; then what is still open
   * closes. */
  for (int i = 0; i < FE_SHUTDOWN_FLUSH_TURNS; i++)
    h2o_evloop_run(w->ctx.loop, FE_SHUTDOWN_FLUSH_TURN_MS);
  fe_conns_close(w);
  for (int i = 0; i < FE_SHUTDOWN_FLUSH_TURNS; i++)
    h2o_evloop_run(w->ctx.loop, FE_SHUTDOWN_FLUSH_TURN_MS);
}
