/*
 * cd_plugin.h: the contactd plugin API.
 *
 * Every endpoint of contactd is a plugin: a shared object exporting one
 * constant table named CD_PLUGIN_SYMBOL ("contactd_plugin"), whose
 * api_version must equal CD_PLUGIN_API_VERSION or the server refuses it.
 * The table names the plugin, its create/destroy callbacks and its routes.
 *
 * A handler sees a request view and answers through the host's response
 * functions. No h2o type appears here: a plugin can be driven by a unit test
 * that supplies its own cd_host and cd_request, with no socket.
 *
 * Threads: handlers run on the server's worker threads, many at once; the
 * plugin's state must be safe for that. A handler answers either before it
 * returns (CD_DONE) or later, from any thread, exactly once (CD_ASYNC), e.g.
 * from a store completion callback; the host carries the answer back to the
 * connection's own loop.
 *
 * Authentication happens before the handler: a route with CD_ROUTE_AUTH is
 * only called with a valid key (the front end answers 401 otherwise), a
 * route with CD_ROUTE_WRITE only with a read-write key (403 otherwise), a
 * route with CD_ROUTE_ADMIN only with an admin key (403 not_admin), and an
 * admin key reaches no authenticated route without CD_ROUTE_ADMIN (403
 * admin_key).
 *
 * Store failures: how an engine code becomes an HTTP answer (status, code
 * word, retry-after) is decided once, by the host (store_error), so that
 * every plugin answering a failed store answers it the same way.
 */
#ifndef CD_PLUGIN_H
#define CD_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version 2 added cd_plugin's drain and metrics; a version-1 table (which
 * ends before them) is still loaded. Version 3 added the route flags
 * CD_ROUTE_ADMIN and CD_ROUTE_BULK, streamed answers and host->keyring; its
 * cd_plugin is version 2's, so tables of versions 1 and 2 load as before. */
#define CD_PLUGIN_API_VERSION 3
#define CD_PLUGIN_API_OLDEST 1
#define CD_PLUGIN_SYMBOL "contactd_plugin"

/* A name/value pair; neither is NUL-terminated. */
typedef struct cd_pair {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} cd_pair;

/*
 * The request view. It and everything it points to live in the request's
 * memory and are valid until the handler returns; a handler that answers
 * later (CD_ASYNC) copies what its answer needs first. Only the
 * cd_response handle stays valid until the answer.
 */
typedef struct cd_request {
  /* "GET", NUL-terminated. A HEAD request runs the GET route with method
   * "HEAD"; the host sends the answer's headers without its body. */
  const char *method;
  const char *path; /* the path without the query string, NUL-terminated */
  /* Path parameters from the route pattern ("{id}"), in pattern order. */
  const cd_pair *params;
  size_t param_count;
  /* Query parameters, percent-decoded ('+' as space), in request order. */
  const cd_pair *query;
  size_t query_count;
  /* Request headers, names lower-case, in request order. x-api-key is
   * left out: the host has checked it and plugins never see keys. */
  const cd_pair *headers;
  size_t header_count;
  /* The body as sent, whatever its content-type; at most
   * CS_BODY_MAX_BYTES, or FE_BULK_BODY_MAX_BYTES on a CD_ROUTE_BULK route
   * (the host answers 413 past that). */
  const char *body; /* may be NULL when body_len is 0 */
  size_t body_len;
  const char *request_id; /* NUL-terminated */
  /* The authenticated caller, on CD_ROUTE_AUTH routes. */
  uint32_t account;
  const char *account_name; /* NULL on routes without authentication */
  cs_role role;    /* CS_ROLE_READ_ONLY on routes without authentication */
  cs_store *store; /* the store create was given */
  /* Added with version 3 (a plugin that reads them needs a contactd that
   * has them): the scheme, "https" on a TLS listener, else "http"; and the
   * authority the client named (HTTP/1's Host, HTTP/2's :authority) as
   * sent, unchecked, or NULL when it named none. NUL-terminated. */
  const char *scheme;
  const char *authority;
} cd_request;

/* The host's handle for one answer; owned by the host. */
typedef struct cd_response cd_response;

/* A streamed answer (host->stream_begin); owned by the host. */
typedef struct cd_stream cd_stream;

/* Handler results. */
enum { CD_DONE = 0, CD_ASYNC = 1 };

/* Log levels for host->log. The values are the ABI (plugins built before
 * the names existed pass the bare numbers). */
enum {
  CD_LOG_NONE = -1, /* in cd_store_error only: the client's own mistake,
                       nothing for an operator to read */
  CD_LOG_INFO = 0,
  CD_LOG_WARN = 1,
  CD_LOG_ERROR = 2
};

/*
 * How the API answers one engine code (host->store_error). The rows are
 * static and live as long as the host; nothing is to be freed.
 */
typedef struct cd_store_error {
  int status;          /* the HTTP status: 400, 404, 409, 500, 503 */
  const char *code;    /* the API's error code word ("store_unavailable") */
  const char *message; /* for the client; names no file and no key */
  /* Seconds a client should wait before retrying, and the same as the
   * retry-after header's text; 0 and NULL when the answer carries none. */
  unsigned retry_after_s;
  const char *retry_after;
  /* What the plugin logs the engine's detail (cs_error.msg, which may name
   * files) at: CD_LOG_WARN or CD_LOG_ERROR when the failure is not the
   * client's, CD_LOG_NONE when it is. */
  int log_level;
} cd_store_error;

/*
 * What the host gives plugins. Every response function may be called from
 * any thread; the first respond/error call completes the response and the
 * handle must not be used after it.
 */
typedef struct cd_host {
  void *ctx;
  /* Adds a response header (copied; the name is lower-cased). Before
   * respond only. The host owns content-length, content-type (respond's
   * argument), x-request-id and the hop-by-hop headers: adding one of those,
   * or a name or value with control characters, is logged and ignored. */
  void (*header)(cd_response *res, const char *name, const char *value);
  /* Sends status (100-599) with a body (copied) of content_type (NULL: no
   * content-type). The host adds content-length and x-request-id. */
  void (*respond)(cd_response *res, int status, const char *content_type,
                  const char *body, size_t body_len);
  /* Sends the API's JSON error: {"error": {"code", "message", "field"?,
   * "id"?}}. field may be NULL; id is included when non-zero. */
  void (*error)(cd_response *res, int status, const char *code,
                const char *message, const char *field, uint64_t id);
  /* Logs one line at level (CD_LOG_INFO, CD_LOG_WARN, CD_LOG_ERROR; any
   * other value as CD_LOG_ERROR) tagged with the request id when res is not
   * NULL. */
  void (*log)(void *ctx, cd_response *res, int level, const char *line);
  /* Appends the front end's own metrics (requests, latencies) in
   * Prometheus text format to *out: NULL for a new buffer, or a malloc'd
   * NUL-terminated string to append to. On return *out is malloc'd and
   * NUL-terminated (the caller frees it) and the result is its whole
   * length; 0 and *out unchanged when out of memory. ctx is this table's
   * ctx. */
  size_t (*metrics)(void *ctx, char **out);
  /* The API's answer to a failed store call: rc is the non-zero return of a
   * cs_* function or the code a completion callback was given. An engine
   * code the table does not name, and any -errno other than the ones that
   * mean the disk refuses writes, is 500 internal. Never NULL; callable
   * from any thread. Added after the rest without changing the version:
   * a plugin that calls it needs a contactd that has it. */
  const cd_store_error *(*store_error)(int rc);
  /* The i-th value (0, 1, ...) of a command-line option the server takes
   * on its plugins' behalf, by its name without dashes ("webhook-allow"),
   * or NULL past the last one given. The values live as long as the
   * host. Added with version 2. */
  const char *(*option)(void *ctx, const char *name, size_t i);
  /* Version 3: streamed answers and the keyring. */
  /* Starts a streamed answer instead of respond/error: status and content
   * type (NULL: none), with the headers added before by header, now; the
   * body follows in pieces, of a length not known in advance (HTTP/1.1
   * chunked, HTTP/2 DATA frames). Callable from the handler or any thread,
   * once per response, before any other answer; stream_write and
   * stream_end then come from a thread that is not a worker's loop (the
   * plugin's own: they block). Returns NULL if it cannot (out of memory,
   * already answered); the response is then answered 500 (unless it was
   * answered already) and the handle must not be used again. */
  cd_stream *(*stream_begin)(cd_response *res, int status,
                             const char *content_type);
  /* Sends len bytes (copied). Blocks the caller while more than
   * FE_STREAM_BUFFER_BYTES are queued and not yet written to the client,
   * so a slow reader slows the writer instead of growing memory. 0, or -1
   * once the client has gone, the server is stopping, or the request was a
   * HEAD (which gets the head only): stop producing, and still call
   * stream_end. */
  int (*stream_write)(cd_stream *st, const void *data, size_t len);
  /* Ends the body (ok: the client sees a complete answer) or aborts it
   * (!ok: the client sees a broken transfer: HTTP/1.1 without the last
   * chunk and the connection closed, HTTP/2 a reset stream). Frees st; the
   * response handle goes with it. Exactly once per stream_begin that did
   * not return NULL. */
  void (*stream_end)(cd_stream *st, bool ok);
  /* The server's keyring, live: cs_keys_* may be called on it from any
   * thread (a change is in force for the very next request). ctx is this
   * table's ctx. */
  cs_keyring *(*keyring)(void *ctx);
  /* Waits until every request that had reached its key check when the
   * call began is done (its handler returned: a write it made is queued
   * on the store by then), the caller's own request aside, for at most
   * FE_QUIESCE_MS_MAX: 0, or -1 when some were not done in time. A change
   * to the keyring is in force for every check after it; this is the wait
   * for the checks before (a moving mark: then cs_flush, and no write of
   * the account is accepted that the mark did not refuse). Blocks: from a
   * handler, or a plugin's own thread. ctx is this table's ctx. Added
   * after the rest without changing the version: a plugin that calls it
   * needs a contactd that has it, and checks it is not NULL. */
  int (*quiesce)(void *ctx);
} cd_host;

typedef int (*cd_handler_fn)(void *state, const cd_request *req,
                             cd_response *res);

#define CD_ROUTE_AUTH 1u  /* needs a valid x-api-key */
#define CD_ROUTE_WRITE 2u /* needs a read-write key (implies AUTH) */
/* Version 3. Needs an admin key (implies AUTH; 401 without a valid key,
 * 403 not_admin with another). Only such routes take an admin key. */
#define CD_ROUTE_ADMIN 4u
/* Version 3. The body may be up to FE_BULK_BODY_MAX_BYTES (fe_limits.h,
 * 256 MiB) instead of CS_BODY_MAX_BYTES (413 past it). */
#define CD_ROUTE_BULK 8u

typedef struct cd_route {
  const char *method;  /* "GET", "POST", "PATCH", "DELETE" */
  const char *pattern; /* "/contacts" or "/contacts/{id}": literal segments
                          and whole-segment {name} parameters */
  unsigned flags;
  cd_handler_fn handle;
} cd_route;

typedef struct cd_plugin {
  uint32_t api_version; /* CD_PLUGIN_API_VERSION */
  const char *name;
  /* Makes the plugin's state. Returns 0, or non-zero with a message in
   * errbuf, and the server does not start. May be NULL. */
  int (*create)(const cd_host *host, cs_store *store, void **state_out,
                char *errbuf, size_t errlen);
  void (*destroy)(void *state); /* may be NULL */
  const cd_route *routes;
  size_t route_count;
  /* Version 2 (a version-1 table ends above). */
  /* Called once when the server starts to stop, before it waits for the
   * requests in flight and before the store closes: answer every request
   * the plugin holds (long-polls) now, answer later ones without holding
   * them, and stop and join the plugin's threads that use the store
   * (commit watchers removed). May be NULL. */
  void (*drain)(void *state);
  /* Appends the plugin's metrics in Prometheus text format to *out, as
   * host->metrics does (the host's own metrics include every plugin's).
   * May be NULL. */
  size_t (*metrics)(void *state, char **out);
} cd_plugin;

#ifdef __cplusplus
}
#endif
#endif
