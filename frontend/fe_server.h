/*
 * fe_server.h: the HTTP server: h2o, its listeners, worker threads, TLS,
 * the request pipeline in front of the plugins, and the host side of the
 * plugin API.
 *
 * Life cycle, all from the main thread:
 *   fe_server_create   bind every --listen address, load the TLS
 *                      certificate, open the access log (nothing runs yet)
 *   fe_server_host     the cd_host handed to plugins' create
 *   fe_server_set_routes  the router (plugins loaded) and the keyring
 *   fe_server_set_plugins the plugins, whose metrics host->metrics adds
 *   fe_server_start    one worker thread per --threads, each with its own
 *                      h2o loop accepting on every listener
 *   fe_server_abort_streams  end streamed answers (before plugins drain)
 *   fe_server_stop     stop accepting, let in-flight requests and pending
 *                      asynchronous answers and requests whose
 *                      bodies are still arriving finish (for
 *                      --shutdown-timeout at most), join the workers
 *   fe_server_destroy  close the listeners and the access log
 *
 * Request pipeline on a worker: request id (the client's x-request-id when
 * valid, else generated), route match (404 / 405 with allow), body size
 * (413; FE_BULK_BODY_MAX_BYTES on CD_ROUTE_BULK routes), key check on
 * authenticated routes (401) and role (403: fe_route_admits), then the
 * plugin's handler. Every response carries x-request-id and a
 * content-length (a streamed one, fe_stream.c, is chunked instead), is
 * counted in the metrics and written to the access log; errors h2o answers
 * itself (a body past its own limit, a malformed request) are given the API's
 * JSON error body and a request id.
 */
#ifndef FE_SERVER_H
#define FE_SERVER_H

#include <stddef.h>

#include "cd_plugin.h"
#include "fe_options.h"
#include "fe_plugins.h"
#include "fe_router.h"

typedef struct fe_server fe_server;

/* 0, or -1 with one line in err naming the address or file at fault. */
int fe_server_create(const fe_options *o, fe_server **out, char *err,
                     size_t errlen);

const cd_host *fe_server_host(fe_server *s);

/* The router (whose payloads are fe_target), keyring and store must
 * outlive the server's workers. 0 or -1. */
int fe_server_set_routes(fe_server *s, const fe_router *router,
                         cs_keyring *keys, cs_store *store, char *err,
                         size_t errlen);

/* The plugins whose metrics host->metrics appends to the front end's (NULL:
 * none). The set must outlive the server's workers. */
void fe_server_set_plugins(fe_server *s, const fe_plugin_set *plugins);

/* Number of listeners and the URL of each ("http://127.0.0.1:8080"), with
 * the port the kernel chose when the address said 0. */
size_t fe_server_listener_count(const fe_server *s);
const char *fe_server_listener_url(const fe_server *s, size_t i);

int fe_server_start(fe_server *s, char *err, size_t errlen);

/* Ends every streamed answer as broken and makes the writers' next
 * stream_write return -1, so that plugin threads producing one stop
 * (before the plugins drain). Streams begun later are refused at once.
 * Returns without waiting. */
void fe_server_abort_streams(fe_server *s);

/* Reopens the access log's file (SIGHUP, after a rotation by mv), so that
 * the next line goes to a new file at its path. 0 (also without an access
 * log, or on standard output), or -1 with err: the old file stays in use. */
int fe_server_reopen_access_log(fe_server *s, char *err, size_t errlen);

/* Returns once every worker has stopped. Safe to call once. */
void fe_server_stop(fe_server *s);

/*
 * Frees what is safe to free. The h2o loops and contexts of stopped workers
 * are kept (still reachable) rather than torn down: connections a client
 * kept open are abandoned, not walked, when the process is about to exit.
 */
void fe_server_destroy(fe_server *s);

#endif
