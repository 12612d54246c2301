/*
 * fe_router.h: maps a method and a path to a plugin's route.
 *
 * A pattern is a path of literal segments and whole-segment parameters
 * ("/contacts/{id}"). A request path matches a pattern when it has the same
 * number of segments and every literal equals the request's segment after
 * percent-decoding; a parameter takes any non-empty segment. When several
 * patterns match, the one whose first differing segment is a literal wins
 * ("/contacts/batch" before "/contacts/{id}"), considering only routes with
 * the request's method; HEAD is served by a GET route. A path that matches
 * some pattern but no route of its method is a 405, whose allow list is every
 * method of every matching pattern.
 *
 * The router is built once at start and then only read, from any thread.
 */
#ifndef FE_ROUTER_H
#define FE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "cd_plugin.h"
#include "fe_limits.h"

typedef struct fe_router fe_router;

/* A route as added, with the caller's payload (the plugin's handler and
 * state). */
typedef struct fe_route {
  const char *method;  /* copied */
  const char *pattern; /* copied */
  unsigned flags;      /* CD_ROUTE_* */
  void *payload;
  size_t index; /* position in the router, 0-based, dense */
} fe_route;

typedef enum fe_route_result {
  FE_ROUTE_FOUND = 0,
  FE_ROUTE_METHOD_NOT_ALLOWED,
  FE_ROUTE_NOT_FOUND,
} fe_route_result;

typedef struct fe_match {
  const fe_route *route;                 /* FE_ROUTE_FOUND */
  cd_pair params[FE_ROUTE_SEGMENTS_MAX]; /* values decoded, NUL-terminated */
  size_t param_count;
  /* FE_ROUTE_METHOD_NOT_ALLOWED: "DELETE, GET, HEAD" */
  char allow[96];
} fe_match;

int fe_router_create(fe_router **out);
void fe_router_destroy(fe_router *r);

/*
 * Adds a route. The method must be GET, POST, PUT, PATCH or DELETE; the
 * pattern must start with '/', have at most FE_ROUTE_SEGMENTS_MAX non-empty
 * segments, and each parameter must be a whole segment "{name}". The same
 * method on the same pattern shape twice is refused. Returns 0, or -1 with
 * a message in err.
 */
int fe_router_add(fe_router *r, const char *method, const char *pattern,
                  unsigned flags, void *payload, char *err, size_t errlen);

size_t fe_router_count(const fe_router *r);
const fe_route *fe_router_at(const fe_router *r, size_t index);

/*
 * Matches a request. path (path_len bytes, no query string) is split on '/'
 * and each segment percent-decoded into scratch, which must hold path_len + 1
 * + FE_ROUTE_SEGMENTS_MAX bytes; params point into scratch.
 */
fe_route_result fe_router_match(const fe_router *r, const char *method,
                                const char *path, size_t path_len,
                                char *scratch, fe_match *m);

/*
 * Whether a valid key of role may take a route with flags (CD_ROUTE_*, as
 * the router keeps them): 0, or 403 with the API's code word and message
 * in *code and *message (static). An admin key takes CD_ROUTE_ADMIN routes
 * and no other authenticated one ("admin_key"); those take no other key
 * ("not_admin"); CD_ROUTE_WRITE takes read-write keys ("read_only_key").
 */
int fe_route_admits(unsigned flags, cs_role role, const char **code,
                    const char **message);

/* Whether method and path (neither NUL-terminated; the path as sent, its
 * query string ignored) name a CD_ROUTE_BULK route: asked from a request's
 * head. A path over FE_BULK_PATH_MAX_BYTES names none. */
bool fe_router_is_bulk(const fe_router *r, const char *method,
                       size_t method_len, const char *path, size_t path_len);

/* The largest body a route with flags takes: CS_BODY_MAX_BYTES, or
 * FE_BULK_BODY_MAX_BYTES with CD_ROUTE_BULK. */
size_t fe_route_body_max(unsigned flags);

/* Bytes of scratch fe_router_match needs for a path of path_len bytes. */
#define FE_ROUTER_SCRATCH_BYTES(path_len)                                      \
  ((path_len) + 1 + FE_ROUTE_SEGMENTS_MAX)

#endif
