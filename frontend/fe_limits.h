/*
 * fe_limits.h: the front end's own limits, named once.
 *
 * The API's request limits (body size, request id length, batch size) live
 * with the store's in engine/cs_limits.h; these bound the server itself.
 * Each says why it is what it is.
 */
#ifndef FE_LIMITS_H
#define FE_LIMITS_H

#include "cs_limits.h"

/* --listen may be given this many times: one address per interface and
 * family is the real use; 16 leaves room without an allocation. */
#define FE_LISTEN_MAX 16

/* Worker threads: one per core is the default; past 256 the loops only
 * contend with each other on any machine this runs on. */
#define FE_THREADS_MAX 256

/* h2o buffers a request body up to this many bytes before our handler sees
 * it. It is above CS_BODY_MAX_BYTES so that a body somewhat over the API's
 * limit reaches the handler and gets the API's JSON 413 on every protocol
 * (over HTTP/2, h2o resets a stream past its own limit instead of answering).
 * Bodies beyond this get h2o's 413 (HTTP/1, rewritten to JSON) or a stream
 * reset (HTTP/2); it bounds the memory one request can pin. */
#define FE_BODY_BUFFER_MAX_BYTES (4 * CS_BODY_MAX_BYTES)

/* A route pattern has at most this many segments ("/contacts/{id}" has
 * two); a request path with more can match no route. */
#define FE_ROUTE_SEGMENTS_MAX 16

/* Routes across all plugins. The API has about a dozen. */
#define FE_ROUTES_MAX 256

/* Plugins in one directory. */
#define FE_PLUGINS_MAX 64

/* A generated request id: 16 lower-case hex digits (64 random bits). */
#define FE_REQUEST_ID_GEN_CHARS 16

/* Longest response header name or value a plugin may add; longer ones are
 * dropped and logged (they would be a plugin bug). */
#define FE_HEADER_MAX_BYTES 4096

/* SIGTERM waits this long for in-flight requests and pending commits before
 * closing the store anyway. A durable commit takes milliseconds; a client
 * that stops reading must not hold the shutdown forever. */
#define FE_SHUTDOWN_DRAIN_MS 30000

/* What a 503 for a store that refuses writes tells a client (and a probe)
 * to wait before retrying, in seconds. Such a store needs an operator and a
 * restart (or freed disk space), so a tight retry loop would only add load;
 * 30 s is about how long an orchestrator takes to notice and act. */
#define FE_RETRY_AFTER_S 30

#endif
