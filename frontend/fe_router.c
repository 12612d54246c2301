/*
 * fe_router.c: route table and matching.
 *
 * Routes are few (about a dozen) and matching is a linear scan over
 * pre-split patterns: simpler than a trie and, at this size, as fast.
 * Invariant: no two routes have the same method and the same shape (the
 * same literals in the same places), so the best match is unique.
 */
#include "fe_router.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_request.h"

typedef struct segment {
  char *text; /* literal, or the parameter's name without braces */
  size_t len;
  bool param;
} segment;

typedef struct route_int {
  fe_route pub;
  size_t segment_count;
  segment seg[FE_ROUTE_SEGMENTS_MAX];
  unsigned score; /* one bit per literal segment, first segment highest */
  int method_ix;  /* method_index(pub.method), found once */
} route_int;

struct fe_router {
  route_int *routes[FE_ROUTES_MAX];
  size_t count;
};

/* Methods a route may use, in the order the allow header lists them. */
static const char *const method_names[] = {"DELETE", "GET",  "HEAD",
                                           "PATCH",  "POST", "PUT"};
enum { METHOD_COUNT = sizeof(method_names) / sizeof(method_names[0]) };
enum { METHOD_GET = 1, METHOD_HEAD = 2 }; /* their places above */

static int method_index(const char *m) {
  for (int i = 0; i < METHOD_COUNT; i++)
    if (strcmp(m, method_names[i]) == 0) return i;
  return -1;
}

int fe_router_create(fe_router **out) {
  *out = calloc(1, sizeof(**out));
  return *out != NULL ? 0 : -1;
}

static void route_free(route_int *ri) {
  if (ri == NULL) return;
  for (size_t i = 0; i < ri->segment_count; i++)
    free(ri->seg[i].text);
  free((char *)ri->pub.method);
  free((char *)ri->pub.pattern);
  free(ri);
}

void fe_router_destroy(fe_router *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->count; i++)
    route_free(r->routes[i]);
  free(r);
}

static bool same_shape(const route_int *a, const route_int *b) {
  if (a->segment_count != b->segment_count) return false;
  for (size_t i = 0; i < a->segment_count; i++) {
    if (a->seg[i].param != b->seg[i].param) return false;
    if (!a->seg[i].param &&
        (a->seg[i].len != b->seg[i].len ||
         memcmp(a->seg[i].text, b->seg[i].text, a->seg[i].len) != 0))
      return false;
  }
  return true;
}

int fe_router_add(fe_router *r, const char *method, const char *pattern,
                  unsigned flags, void *payload, char *err, size_t errlen) {
  if (method == NULL || pattern == NULL) {
    snprintf(err, errlen, "route without a method or a pattern");
    return -1;
  }
  if (method_index(method) < 0 || strcmp(method, "HEAD") == 0) {
    snprintf(err, errlen, "route %s %s: unknown method '%s'", method, pattern,
             method);
    return -1;
  }
  if (pattern[0] != '/') {
    snprintf(err, errlen, "route %s %s: a pattern starts with '/'", method,
             pattern);
    return -1;
  }
  if (r->count == FE_ROUTES_MAX) {
    snprintf(err, errlen, "route %s %s: more than %d routes", method, pattern,
             FE_ROUTES_MAX);
    return -1;
  }

  route_int *ri = calloc(1, sizeof(*ri));
  if (ri == NULL) goto nomem;
  ri->pub.method = strdup(method);
  ri->pub.pattern = strdup(pattern);
  if (ri->pub.method == NULL || ri->pub.pattern == NULL) goto nomem;
  ri->pub.flags = flags;
  ri->pub.payload = payload;
  ri->method_ix = method_index(method);

  const char *p = pattern + 1;
  while (*p != '\0') {
    const char *slash = strchr(p, '/');
    size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (len == 0) {
      snprintf(err, errlen, "route %s %s: empty segment", method, pattern);
      goto fail;
    }
    if (ri->segment_count == FE_ROUTE_SEGMENTS_MAX) {
      snprintf(err, errlen, "route %s %s: more than %d segments", method,
               pattern, FE_ROUTE_SEGMENTS_MAX);
      goto fail;
    }
    segment *s = &ri->seg[ri->segment_count];
    bool has_brace = memchr(p, '{', len) != NULL || memchr(p, '}', len) != NULL;
    if (p[0] == '{' && p[len - 1] == '}' && len > 2 &&
        memchr(p + 1, '{', len - 2) == NULL &&
        memchr(p + 1, '}', len - 2) == NULL) {
      s->param = true;
      s->text = strndup(p + 1, len - 2);
      s->len = len - 2;
    } else if (has_brace) {
      snprintf(err, errlen,
               "route %s %s: a parameter is a whole segment, {name}", method,
               pattern);
      goto fail;
    } else {
      s->text = strndup(p, len);
      s->len = len;
      ri->score |= 1u << (FE_ROUTE_SEGMENTS_MAX - 1 - ri->segment_count);
    }
    if (s->text == NULL) goto nomem;
    ri->segment_count++;
    if (slash == NULL) break;
    p = slash + 1;
    if (*p == '\0') {
      snprintf(err, errlen, "route %s %s: trailing '/'", method, pattern);
      goto fail;
    }
  }

  for (size_t i = 0; i < r->count; i++) {
    const route_int *o = r->routes[i];
    if (strcmp(o->pub.method, method) == 0 && same_shape(o, ri)) {
      snprintf(err, errlen, "route %s %s: already taken by %s %s", method,
               pattern, o->pub.method, o->pub.pattern);
      goto fail;
    }
  }

  ri->pub.index = r->count;
  r->routes[r->count++] = ri;
  return 0;

nomem:
  snprintf(err, errlen, "route %s %s: out of memory", method, pattern);
fail:
  route_free(ri);
  return -1;
}

size_t fe_router_count(const fe_router *r) {
  return r->count;
}

const fe_route *fe_router_at(const fe_router *r, size_t index) {
  return index < r->count ? &r->routes[index]->pub : NULL;
}

static bool pattern_matches(const route_int *ri, const char *const *segs,
                            const size_t *lens, size_t count) {
  if (ri->segment_count != count) return false;
  for (size_t i = 0; i < count; i++) {
    if (ri->seg[i].param) {
      if (lens[i] == 0) return false;
    } else if (lens[i] != ri->seg[i].len ||
               memcmp(segs[i], ri->seg[i].text, lens[i]) != 0) {
      return false;
    }
  }
  return true;
}

fe_route_result fe_router_match(const fe_router *r, const char *method,
                                const char *path, size_t path_len,
                                char *scratch, fe_match *m) {
  const char *segs[FE_ROUTE_SEGMENTS_MAX];
  size_t lens[FE_ROUTE_SEGMENTS_MAX];
  size_t count = 0;

  m->route = NULL;
  m->param_count = 0;
  m->allow[0] = '\0';

  if (path_len == 0 || path[0] != '/') return FE_ROUTE_NOT_FOUND;

  /* Split on the raw '/' first and decode each segment after, so that an
   * encoded "%2F" stays inside its segment. */
  char *out = scratch;
  size_t pos = 1;
  while (pos < path_len) {
    const char *seg = path + pos;
    const char *slash = memchr(seg, '/', path_len - pos);
    size_t len = slash != NULL ? (size_t)(slash - seg) : path_len - pos;
    if (count == FE_ROUTE_SEGMENTS_MAX) return FE_ROUTE_NOT_FOUND;
    segs[count] = out;
    lens[count] = fe_percent_decode(out, seg, len, false);
    out += lens[count];
    *out++ = '\0';
    count++;
    pos += len + 1;
    if (slash != NULL && pos == path_len) {
      /* A trailing '/' is an empty last segment, which nothing matches. */
      if (count == FE_ROUTE_SEGMENTS_MAX) return FE_ROUTE_NOT_FOUND;
      segs[count] = out;
      lens[count] = 0;
      *out++ = '\0';
      count++;
    }
  }

  /* The request's method as an index, found once: a route compares
   * numbers. */
  const int get_ix = METHOD_GET, head_ix = METHOD_HEAD;
  int want = method_index(method);
  bool is_head = want == head_ix;
  const route_int *best = NULL;
  unsigned allowed = 0;
  for (size_t i = 0; i < r->count; i++) {
    const route_int *ri = r->routes[i];
    if (!pattern_matches(ri, segs, lens, count)) continue;
    allowed |= 1u << ri->method_ix;
    if (ri->method_ix == get_ix) allowed |= 1u << head_ix;
    bool method_ok = (want >= 0 && ri->method_ix == want) ||
                     (is_head && ri->method_ix == get_ix);
    if (method_ok && (best == NULL || ri->score > best->score)) best = ri;
  }

  if (best != NULL) {
    m->route = &best->pub;
    for (size_t i = 0; i < count; i++) {
      if (!best->seg[i].param) continue;
      cd_pair *p = &m->params[m->param_count++];
      p->name = best->seg[i].text;
      p->name_len = best->seg[i].len;
      p->value = segs[i];
      p->value_len = lens[i];
    }
    return FE_ROUTE_FOUND;
  }
  if (allowed == 0) return FE_ROUTE_NOT_FOUND;

  size_t used = 0;
  for (int i = 0; i < METHOD_COUNT; i++) {
    if ((allowed & (1u << i)) == 0) continue;
    int n = snprintf(m->allow + used, sizeof(m->allow) - used, "%s%s",
                     used > 0 ? ", " : "", method_names[i]);
    if (n > 0) used += (size_t)n;
  }
  return FE_ROUTE_METHOD_NOT_ALLOWED;
}

int fe_route_admits(unsigned flags, cs_role role, const char **code,
                    const char **message) {
  bool admin_route = (flags & CD_ROUTE_ADMIN) != 0;
  if (admin_route && role != CS_ROLE_ADMIN) {
    *code = "not_admin";
    *message = "this request needs an admin key";
    return 403;
  }
  if (!admin_route && role == CS_ROLE_ADMIN) {
    *code = "admin_key";
    *message = "an admin key reaches /admin/... only; use a key of the account";
    return 403;
  }
  if ((flags & CD_ROUTE_WRITE) && role != CS_ROLE_READ_WRITE) {
    *code = "read_only_key";
    *message = "this API key is read-only; this request changes data";
    return 403;
  }
  return 0;
}

size_t fe_route_body_max(unsigned flags) {
  return (flags & CD_ROUTE_BULK) ? (size_t)FE_BULK_BODY_MAX_BYTES
                                 : (size_t)CS_BODY_MAX_BYTES;
}

bool fe_router_is_bulk(const fe_router *r, const char *method,
                       size_t method_len, const char *path, size_t path_len) {
  char m[FE_METHOD_MAX_BYTES];
  if (method_len >= sizeof(m)) return false;
  memcpy(m, method, method_len);
  m[method_len] = '\0';
  const char *q = memchr(path, '?', path_len);
  if (q != NULL) path_len = (size_t)(q - path);
  if (path_len > FE_BULK_PATH_MAX_BYTES) return false;
  char scratch[FE_ROUTER_SCRATCH_BYTES(FE_BULK_PATH_MAX_BYTES)];
  fe_match match;
  return fe_router_match(r, m, path, path_len, scratch, &match) ==
             FE_ROUTE_FOUND &&
         (match.route->flags & CD_ROUTE_BULK) != 0;
}
