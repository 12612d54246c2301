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

/* A CD_ROUTE_BULK route (an account's import) takes a body up to this
 * many bytes instead of CS_BODY_MAX_BYTES: an account of about half a
 * million contacts in one request, while one request still pins a bounded
 * amount of memory. h2o buffers up to FE_BULK_BODY_BUFFER_MAX_BYTES so
 * that a body a little past it gets the API's JSON 413 like any route's.
 * A request to any other route whose content-length passes
 * FE_BODY_BUFFER_MAX_BYTES is refused from its head (fe_refuse.c); one
 * with no content-length (chunked) is buffered up to the bulk buffer before
 * it is refused. */
#define FE_BULK_BODY_MAX_BYTES (256 * 1024 * 1024)
#define FE_BULK_BODY_BUFFER_MAX_BYTES                                          \
  (FE_BULK_BODY_MAX_BYTES + FE_BODY_BUFFER_MAX_BYTES)
/* The longest request path (percent-encoded, without the query string)
 * the head check above matches against the bulk routes; a longer one is
 * taken for no bulk route. A bulk route's path holds an account name
 * (CS_ACCOUNT_NAME_MAX_BYTES) and a few literal segments. */
#define FE_BULK_PATH_MAX_BYTES 1024

/* A streamed answer (host->stream_begin) holds at most about this many
 * bytes not yet written to the client; stream_write blocks while more are
 * queued. 1 MiB keeps a fast client's socket busy (many 64 KiB writes in
 * flight) and a slow one's memory small. */
#define FE_STREAM_BUFFER_BYTES (1024 * 1024)
/* ... in pieces of this many bytes (a writer's small writes fill one piece
 * before the next is made; one h2o_send takes every queued piece). */
#define FE_STREAM_PIECE_BYTES (64 * 1024)
/* At shutdown a streamed answer is ended broken; a client that has not
 * taken the bytes already in flight this long after is cut off (its
 * connection shut down) rather than hold the shutdown for
 * FE_SHUTDOWN_DRAIN_MS. */
#define FE_STREAM_ABORT_GRACE_MS 1000

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

/* --shutdown-timeout SECONDS: how long SIGTERM waits for requests in
 * flight (bodies still arriving, answers waiting for a commit) before it
 * closes what remains and the store. A durable commit takes milliseconds
 * and a client uploading the largest body the API takes needs a second or
 * two; 30 s leaves a slow client room and still ends well inside systemd's
 * own stop timeout (90 s). 0 stops at once; an hour is the most any
 * operator would wait for a request. */
#define FE_SHUTDOWN_TIMEOUT_S_DEFAULT 30
#define FE_SHUTDOWN_TIMEOUT_S_MIN 0
#define FE_SHUTDOWN_TIMEOUT_S_MAX 3600

/* Options read from the environment (CONTACTD_<OPTION>, fe_options_load)
 * are copied, as "--option=value" arguments, into this much room inside
 * fe_options: every option's longest sensible value (a path, 64 webhook
 * hosts of a host name each) fits several times over. More is refused,
 * naming the variable. */
#define FE_ENV_BYTES_MAX 32768
/* The "--option=value" arguments made from the environment: one per
 * option, one per item of a repeatable option's list. */
#define FE_ENV_ARGS_MAX 256
/* Distinct option names a command line can hold (contactd has about
 * twenty): the names given are kept so the environment never overrides
 * them. */
#define FE_OPTION_NAMES_MAX 64
/* An option's name with its dashes: the longest, --snapshot-every-bytes,
 * has 22 bytes; a CONTACTD_ variable whose name is longer names none. */
#define FE_OPTION_NAME_MAX_BYTES 64
/* The prefix of those variables. */
#define FE_ENV_PREFIX "CONTACTD_"

/* What a 503 for a store that refuses writes tells a client (and a probe)
 * to wait before retrying, in seconds. Such a store needs an operator and a
 * restart (or freed disk space), so a tight retry loop would only add load;
 * 30 s is about how long an orchestrator takes to notice and act. */
#define FE_RETRY_AFTER_S 30
/* What a request whose idempotency key is in flight is told to wait
 * (API.md: 409 idempotency_key_in_use with retry-after: 1). */
#define FE_IDEM_RETRY_AFTER_S 1
/* What a request of an account marked moving is told to wait (503
 * account_moving): a move's cut-over takes about a second, and a client
 * that retries then reaches the account where it now is. */
#define FE_MOVING_RETRY_AFTER_S 1
/* How long host->quiesce waits for the requests past their key check.
 * A handler returns in microseconds (a write is queued, a long wait
 * answers later); a worker that has not moved on in 5 s is stuck, and the
 * caller answers an error it can retry rather than hang. */
#define FE_QUIESCE_MS_MAX 5000

/* What a write refused by a standby, a fenced primary, or a primary whose
 * standby did not acknowledge in time is told to wait: a failover or a
 * standby's return takes about a second. */
#define FE_STANDBY_RETRY_AFTER_S 1

/* A file path the front end builds or resolves (key file, temporary files,
 * plugin files): Linux's PATH_MAX, which realpath needs as its buffer. */
#define FE_PATH_MAX_BYTES 4096

/* A TCP port is 16 bits. */
#define FE_PORT_MAX 65535

/* The port h2o reads as "any port" when a host configuration is registered:
 * contactd has one host configuration for every listener. */
#define FE_H2O_PORT_ANY 65535

/* An error message the front end composes for a client. The longest, the
 * 405's, holds the method (FE_METHOD_MAX_BYTES) and the allow list (under
 * 96 bytes) in 40 bytes of text. */
#define FE_MESSAGE_MAX_BYTES 160

/* A request method as kept for the log and the metrics, with its NUL. The
 * longest method a route can have is "DELETE"; a longer unknown one is only
 * ever logged, and cut. */
#define FE_METHOD_MAX_BYTES 16

/* A listener's URL ("https://[v6 address]:port"): an IPv6 address is at
 * most 45 characters, so 300 leaves room for any scheme and port. */
#define FE_LISTENER_URL_MAX_BYTES 300

/* One line of the server's own log (its message as composed, and as written
 * with time, level, request id and escapes), and one of the access log in
 * the default format (whose path is cut to fit, and its user agent to
 * FE_ACCESS_UA_ROOM_BYTES; the other fields are short). */
#define FE_LOG_LINE_MAX_BYTES 1024
#define FE_LOG_OUT_MAX_BYTES 4096
#define FE_ACCESS_LINE_MAX_BYTES 2048
#define FE_ACCESS_UA_ROOM_BYTES 512
/* The path and the user agent are kept for the access log up to this many
 * bytes (the rest is cut), in either format. */
#define FE_ACCESS_FIELD_MAX_BYTES 1024
/* A client's numeric address as the access log shows it: an IPv6 address
 * with a zone is at most INET6_ADDRSTRLEN (46) and IF_NAMESIZE (16). */
#define FE_CLIENT_ADDR_MAX_BYTES 64

/* A worker keeps up to FE_RES_SPARE_MAX answer handles it has freed, for
 * its next requests (no allocation per request), each with room for
 * FE_RES_INLINE_BYTES of path and user agent (a longer request gets a
 * handle of its own size, freed after it), and a content type of up to
 * FE_CONTENT_TYPE_INLINE_BYTES (with its NUL) in the handle itself. */
#define FE_RES_SPARE_MAX 256
#define FE_RES_INLINE_BYTES 512
#define FE_CONTENT_TYPE_INLINE_BYTES 64

/* An RFC 3339 time with milliseconds is 24 characters; with a year past
 * 9999 cut, 32 bytes always hold it and its NUL. */
#define FE_TIME_MAX_BYTES 32

/* The reason a plugin's create or a route gives for refusing to start; it
 * becomes part of one startup error line. */
#define FE_PLUGIN_ERR_MAX_BYTES 512
#define FE_ROUTE_ERR_MAX_BYTES 256

/* A startup error (options, store, plugins): one line for a person. */
#define FE_STARTUP_ERR_MAX_BYTES 1024

/* --help's text: the options table is about 3 KB. */
#define FE_USAGE_MAX_BYTES 8192

/* --webhook-allow HOST[:PORT] may be given this many times: an
 * administrator names the few receivers of an installation; a longer list
 * belongs in a proxy's configuration, not on a command line. */
#define FE_WEBHOOK_ALLOW_MAX 64
/* A host name: 253 bytes in text (RFC 1035's 255 octets on the wire, less
 * the first length byte and the root label), each label 1 to 63. */
#define FE_HOST_NAME_MAX_BYTES 253
#define FE_HOST_LABEL_MAX_BYTES 63
/* --webhook-retry-seconds N: how long a failing webhook is retried before
 * it is disabled. API.md says 3 days; an operator may choose from a second
 * (tests) to ten times that (a long holiday of the receiver's owner). */
#define FE_WEBHOOK_RETRY_SECONDS_DEFAULT (3 * 24 * 3600)
#define FE_WEBHOOK_RETRY_SECONDS_MIN 1
#define FE_WEBHOOK_RETRY_SECONDS_MAX (10 * FE_WEBHOOK_RETRY_SECONDS_DEFAULT)

/* The metrics text grows in steps of this many bytes: one render of the
 * front end's counters for a dozen routes fits in a few steps. */
#define FE_METRICS_CHUNK_BYTES 4096
/* Copies of the request counters, one per thread up to this many (summed
 * when scraped), so that workers do not share their cache lines. */
#define FE_METRICS_SHARDS 4
/* A latency bucket's edge as its le label writes it ("%g" of seconds:
 * "2.5e-05", "0.00025", "10"). */
#define FE_METRICS_EDGE_MAX_BYTES 16
/* /proc/self/stat: 52 numbers and a command name of at most 16 bytes, well
 * under 1 KiB; the figures /metrics takes are among its first 24 fields. */
#define FE_PROC_STAT_MAX_BYTES 2048

/* While stopping, a worker wakes this often to see whether its last
 * answers are out, and afterwards turns its loop this many more times, this
 * long each, so the bytes h2o queued reach their sockets. */
#define FE_SHUTDOWN_POLL_MS 50
#define FE_SHUTDOWN_FLUSH_TURNS 4
#define FE_SHUTDOWN_FLUSH_TURN_MS 10

/* Servers whose workers are kept reachable after fe_server_destroy (see
 * fe_server.h): one per process is the real use; tests create a few. */
#define FE_RETAINED_SERVERS_MAX 8

#endif
