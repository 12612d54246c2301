/*
 * fake_host.h: a cd_host for driving plugins in-process, with no socket.
 *
 * The plugin tests link a plugin's sources into the test executable and call
 * its handlers through its route table, the way the front end does: a
 * request view in, the answer recorded by this host. Answers given later
 * from the store's commit thread (CD_ASYNC) are waited for on a condition
 * variable. Each test opens a real store in a fresh temporary directory.
 */
#ifndef FAKE_HOST_H
#define FAKE_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "cd_plugin.h"

#define FH_HEADERS_MAX 16

/* One recorded answer. */
struct cd_response {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int answers; /* respond/error calls: must end up exactly 1 */
  int status;
  char content_type[128];
  char *body; /* NUL-terminated copy */
  size_t body_len;
  size_t header_count;
  char header_name[FH_HEADERS_MAX][64];
  char header_value[FH_HEADERS_MAX][256];
  /* error() arguments as given */
  char code[64];
  char field[128];
  uint64_t id;
  int handler_rc;
  yajl_val json; /* body parsed on demand by fh_json */
  /* A streamed answer (host->stream_begin): the body grows with every
   * stream_write; fh_call returns once stream_end was called. */
  bool streamed;
  bool stream_ended, stream_ok;
  size_t stream_writes;
  /* The client "leaves" once this many body bytes arrived (0: never):
   * stream_write returns -1 from then on, and the bytes are not kept. */
  size_t stream_gone_after;
};

/* A test's world: a store in a temporary directory and one plugin. */
typedef struct fh_fixture {
  char dir[64];
  cs_store *store;
  const cd_plugin *plugin;
  void *state;
  uint32_t account; /* the caller's account for the next requests */
  cs_role role;     /* the caller's role (CS_ROLE_READ_WRITE after fh_open) */
  /* The keyring of dir, opened by fh_open: what host->keyring answers. */
  cs_keyring *keys;
  /* Set before a call: the client of a streamed answer leaves after this
   * many bytes (0: it reads to the end). */
  size_t stream_gone_after;
} fh_fixture;

/* The host every test uses. Its metrics() returns fh_front_metrics. */
const cd_host *fh_host(void);
extern const char *fh_front_metrics;
/* Log lines seen at CD_LOG_ERROR, for tests that expect none. */
extern int fh_error_logs;
/* What host->option answers: "name", "value" pairs ending with NULL
 * (NULL: no options), as the front end would hand them out. Set before
 * fh_open. */
extern const char *const *fh_options;

/* Opens a store (durability none unless opts given) and its keyring, and
 * creates the plugin's state. Asserts on failure. */
void fh_open(fh_fixture *fx, const cd_plugin *plugin, const cs_options *opts);
void fh_close(fh_fixture *fx);

/*
 * Sends one request: method, a concrete path ("/contacts/123..."), a raw
 * query string (percent-encoded, may be NULL) and a body (may be NULL).
 * Finds the route as the front end would (literal segments before {param}),
 * calls the handler and waits for the answer. Never NULL; free with
 * fh_free. A path with no route answers a 404 recorded with handler_rc -1.
 */
struct cd_response *fh_call(fh_fixture *fx, const char *method,
                            const char *path, const char *query,
                            const char *body);
/* As fh_call with a body of explicit length (may hold NUL bytes). */
struct cd_response *fh_call_n(fh_fixture *fx, const char *method,
                              const char *path, const char *query,
                              const char *body, size_t body_len);
/* As fh_call_n with request headers: a NULL-terminated list of "name:
 * value" strings (names lower case, as the host hands them over; the value
 * is what follows the colon, its leading spaces skipped). A "host" header
 * is the request's authority (cd_request.authority), as the front end
 * hands it over, not one of its headers; the scheme is always "http". */
struct cd_response *fh_call_h(fh_fixture *fx, const char *method,
                              const char *path, const char *query,
                              const char *body, const char *const *headers);
void fh_free(struct cd_response *res);

/* The answer's body as JSON (asserts that it parses). */
yajl_val fh_json(struct cd_response *res);
/* A string at a path of keys (NULL-terminated list), or NULL. */
const char *fh_str(struct cd_response *res, ...);
/* The value of a response header, or NULL. */
const char *fh_header(struct cd_response *res, const char *name);

/* Creates a contact from a JSON body and returns its id (asserts 200). */
uint64_t fh_create(fh_fixture *fx, const char *json);

/* Asserts an error answer: status, code, and field (NULL: none). */
void fh_assert_error(struct cd_response *res, int status, const char *code,
                     const char *field);

#endif
