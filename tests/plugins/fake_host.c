/*
 * fake_host.c: the in-process host the plugin tests drive handlers with.
 *
 * It records what a handler answers and checks the plugin API's rules as it
 * goes: exactly one answer per request, headers only before it, and an
 * answer may come from any thread (so everything is under the response's
 * mutex). The error body is made the way the front end makes it, so tests
 * read every answer as JSON the same way.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf, strchrnul, nftw */
#endif
#include "fake_host.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <yajl/yajl_gen.h>

#include "fe_errors.h"

const char *fh_front_metrics =
    "# HELP contactd_requests_total Requests answered.\n"
    "# TYPE contactd_requests_total counter\n"
    "contactd_requests_total{route=\"/contacts\",status=\"200\"} 3\n";
int fh_error_logs;

static void fh_header_cb(cd_response *res, const char *name,
                         const char *value) {
  pthread_mutex_lock(&res->mu);
  assert_int_equal(res->answers, 0); /* headers come before the answer */
  assert_true(res->header_count < FH_HEADERS_MAX);
  snprintf(res->header_name[res->header_count], 64, "%s", name);
  snprintf(res->header_value[res->header_count], 256, "%s", value);
  res->header_count++;
  pthread_mutex_unlock(&res->mu);
}

static void fh_record(cd_response *res, int status, const char *type,
                      const char *body, size_t len) {
  res->answers++;
  res->status = status;
  /* No type and no body are allowed (a 304), as the real host allows. */
  snprintf(res->content_type, sizeof res->content_type, "%s", type ? type : "");
  res->body = malloc(len + 1);
  if (len) memcpy(res->body, body, len);
  res->body[len] = '\0';
  res->body_len = len;
  pthread_cond_broadcast(&res->cv);
}

static void fh_respond_cb(cd_response *res, int status, const char *type,
                          const char *body, size_t len) {
  pthread_mutex_lock(&res->mu);
  if (res->answers == 0)
    fh_record(res, status, type, body, len);
  else
    res->answers++; /* a second answer: the test will see answers == 2 */
  pthread_mutex_unlock(&res->mu);
}

static void fh_gen_str(yajl_gen g, const char *s) {
  yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void fh_error_cb(cd_response *res, int status, const char *code,
                        const char *message, const char *field, uint64_t id) {
  yajl_gen g = yajl_gen_alloc(NULL);
  yajl_gen_config(g, yajl_gen_validate_utf8, 1);
  yajl_gen_map_open(g);
  fh_gen_str(g, "error");
  yajl_gen_map_open(g);
  fh_gen_str(g, "code");
  fh_gen_str(g, code);
  fh_gen_str(g, "message");
  /* The real host checks this too: a message must be valid UTF-8. */
  assert_int_equal(
      yajl_gen_string(g, (const unsigned char *)message, strlen(message)),
      yajl_gen_status_ok);
  if (field) {
    fh_gen_str(g, "field");
    assert_int_equal(
        yajl_gen_string(g, (const unsigned char *)field, strlen(field)),
        yajl_gen_status_ok);
  }
  if (id) {
    char digits[CS_ID_DIGITS + 1];
    cs_id_format(id, digits);
    fh_gen_str(g, "id");
    fh_gen_str(g, digits);
  }
  yajl_gen_map_close(g);
  yajl_gen_map_close(g);
  const unsigned char *buf;
  size_t len;
  yajl_gen_get_buf(g, &buf, &len);
  pthread_mutex_lock(&res->mu);
  if (res->answers == 0) {
    snprintf(res->code, sizeof res->code, "%s", code);
    snprintf(res->field, sizeof res->field, "%s", field ? field : "");
    res->id = id;
    fh_record(res, status, "application/json", (const char *)buf, len);
  } else {
    res->answers++;
  }
  pthread_mutex_unlock(&res->mu);
  yajl_gen_free(g);
}

static void fh_log_cb(void *ctx, cd_response *res, int level,
                      const char *line) {
  (void)ctx;
  (void)res;
  if (level >= CD_LOG_ERROR)
    __atomic_add_fetch(&fh_error_logs, 1, __ATOMIC_RELAXED);
  if (getenv("FH_VERBOSE")) fprintf(stderr, "log %d: %s\n", level, line);
}

static size_t fh_metrics_cb(void *ctx, char **out) {
  (void)ctx;
  *out = strdup(fh_front_metrics);
  return strlen(*out);
}

const char *const *fh_options;

/* ------------------------------------------------------ streamed answers */

/* The stream handle is the response's own. */
struct cd_stream {
  struct cd_response *res;
};

static cd_stream *fh_stream_begin_cb(cd_response *res, int status,
                                     const char *type) {
  pthread_mutex_lock(&res->mu);
  if (res->answers != 0) {
    res->answers++;
    pthread_mutex_unlock(&res->mu);
    return NULL;
  }
  cd_stream *st = calloc(1, sizeof *st);
  st->res = res;
  res->streamed = true;
  fh_record(res, status, type, "", 0);
  pthread_mutex_unlock(&res->mu);
  return st;
}

static int fh_stream_write_cb(cd_stream *st, const void *data, size_t len) {
  struct cd_response *res = st->res;
  pthread_mutex_lock(&res->mu);
  assert_false(res->stream_ended);
  res->stream_writes++;
  int rc = 0;
  if (res->stream_gone_after && res->body_len + len > res->stream_gone_after) {
    rc = -1;
  } else {
    res->body = realloc(res->body, res->body_len + len + 1);
    memcpy(res->body + res->body_len, data, len);
    res->body_len += len;
    res->body[res->body_len] = '\0';
  }
  pthread_mutex_unlock(&res->mu);
  return rc;
}

static void fh_stream_end_cb(cd_stream *st, bool ok) {
  struct cd_response *res = st->res;
  free(st);
  pthread_mutex_lock(&res->mu);
  assert_false(res->stream_ended);
  res->stream_ended = true;
  res->stream_ok = ok;
  pthread_cond_broadcast(&res->cv);
  pthread_mutex_unlock(&res->mu);
}

static cs_keyring *fh_keys;

static cs_keyring *fh_keyring_cb(void *ctx) {
  (void)ctx;
  return fh_keys;
}

static const char *fh_option_cb(void *ctx, const char *name, size_t i) {
  (void)ctx;
  for (const char *const *o = fh_options; o != NULL && o[0] != NULL; o += 2)
    if (strcmp(o[0], name) == 0 && i-- == 0) return o[1];
  return NULL;
}

static const cd_host fh_the_host = {
    .ctx = NULL,
    .header = fh_header_cb,
    .respond = fh_respond_cb,
    .error = fh_error_cb,
    .log = fh_log_cb,
    .metrics = fh_metrics_cb,
    /* The server's own table, so plugin tests see the answers it serves. */
    .store_error = fe_store_error,
    .option = fh_option_cb,
    .stream_begin = fh_stream_begin_cb,
    .stream_write = fh_stream_write_cb,
    .stream_end = fh_stream_end_cb,
    .keyring = fh_keyring_cb,
};

const cd_host *fh_host(void) {
  return &fh_the_host;
}

/* ------------------------------------------------------------ fixtures */

static int fh_rm(const char *path, const struct stat *sb, int flag,
                 struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void fh_open(fh_fixture *fx, const cd_plugin *plugin, const cs_options *opts) {
  memset(fx, 0, sizeof *fx);
  snprintf(fx->dir, sizeof fx->dir, "/tmp/test_plugins.XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  cs_options defaults = {.durability = CS_DURABILITY_NONE};
  cs_error err = {0};
  int rc = cs_open(fx->dir, opts ? opts : &defaults, &fx->store, &err);
  if (rc) fprintf(stderr, "cs_open: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(plugin->api_version, CD_PLUGIN_API_VERSION);
  rc = cs_keys_open(fx->dir, &fx->keys, &err);
  if (rc) fprintf(stderr, "cs_keys_open: %s\n", err.msg);
  assert_int_equal(rc, 0);
  fh_keys = fx->keys;
  fx->role = CS_ROLE_READ_WRITE;
  fx->plugin = plugin;
  char errbuf[256] = "";
  if (plugin->create)
    assert_int_equal(
        plugin->create(fh_host(), fx->store, &fx->state, errbuf, sizeof errbuf),
        0);
  fx->account = 1;
}

void fh_close(fh_fixture *fx) {
  if (fx->plugin && fx->plugin->destroy) fx->plugin->destroy(fx->state);
  cs_error err = {0};
  if (fx->store) cs_close(fx->store, &err);
  if (fh_keys == fx->keys) fh_keys = NULL;
  cs_keys_close(fx->keys);
  nftw(fx->dir, fh_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ requests */

static int fh_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..len) in place ('+' as space); the new length. */
static size_t fh_unescape(char *s, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '+') {
      s[o++] = ' ';
    } else if (s[i] == '%' && i + 2 < len && fh_hex(s[i + 1]) >= 0 &&
               fh_hex(s[i + 2]) >= 0) {
      s[o++] = (char)(fh_hex(s[i + 1]) * 16 + fh_hex(s[i + 2]));
      i += 2;
    } else {
      s[o++] = s[i];
    }
  }
  return o;
}

#define FH_QUERY_MAX 32

typedef struct fh_query {
  char *buf;
  cd_pair pairs[FH_QUERY_MAX];
  size_t count;
} fh_query;

static void fh_query_parse(fh_query *q, const char *query) {
  q->count = 0;
  q->buf = NULL;
  if (!query || !*query) return;
  q->buf = strdup(query);
  char *save = NULL;
  for (char *part = strtok_r(q->buf, "&", &save); part;
       part = strtok_r(NULL, "&", &save)) {
    assert_true(q->count < FH_QUERY_MAX);
    char *eq = strchr(part, '=');
    char *value = eq ? eq + 1 : part + strlen(part);
    if (eq) *eq = '\0';
    size_t nlen = fh_unescape(part, strlen(part));
    size_t vlen = fh_unescape(value, strlen(value));
    q->pairs[q->count++] = (cd_pair){part, nlen, value, vlen};
  }
}

/* Matches a concrete path against a pattern; params out. Returns 1 for a
 * literal match, 2 for a match through a parameter, 0 for none. */
static int fh_match(const char *pattern, const char *path, cd_pair *param,
                    size_t *param_count) {
  int kind = 1;
  *param_count = 0;
  while (*pattern && *path) {
    if (*pattern != '/' || *path != '/') return 0;
    pattern++, path++;
    const char *pe = strchrnul(pattern, '/');
    const char *se = strchrnul(path, '/');
    if (*pattern == '{') {
      param[*param_count] = (cd_pair){pattern + 1, (size_t)(pe - pattern - 2),
                                      path, (size_t)(se - path)};
      ++*param_count;
      kind = 2;
    } else if (pe - pattern != se - path ||
               memcmp(pattern, path, (size_t)(se - path))) {
      return 0;
    }
    pattern = pe, path = se;
  }
  return *pattern == '\0' && *path == '\0' ? kind : 0;
}

#define FH_REQUEST_HEADERS_MAX 16

static struct cd_response *fh_call_full(fh_fixture *fx, const char *method,
                                        const char *path, const char *query,
                                        const char *body, size_t body_len,
                                        const char *const *headers) {
  cd_pair hdrs[FH_REQUEST_HEADERS_MAX];
  size_t header_count = 0;
  const char *authority = NULL;
  for (size_t i = 0; headers && headers[i]; i++) {
    assert_true(header_count < FH_REQUEST_HEADERS_MAX);
    const char *colon = strchr(headers[i], ':');
    assert_non_null(colon);
    const char *v = colon + 1;
    while (*v == ' ')
      v++;
    /* As h2o does, the host header is the request's authority, not one
     * of its headers. */
    if (colon - headers[i] == 4 && !strncmp(headers[i], "host", 4)) {
      authority = v;
      continue;
    }
    hdrs[header_count++] =
        (cd_pair){headers[i], (size_t)(colon - headers[i]), v, strlen(v)};
  }
  struct cd_response *res = calloc(1, sizeof *res);
  pthread_mutex_init(&res->mu, NULL);
  pthread_cond_init(&res->cv, NULL);
  res->stream_gone_after = fx->stream_gone_after;

  const cd_route *route = NULL;
  cd_pair params[4];
  size_t param_count = 0;
  for (int want = 1; want <= 2 && !route; want++) {
    for (size_t i = 0; i < fx->plugin->route_count; i++) {
      const cd_route *r = &fx->plugin->routes[i];
      if (strcmp(r->method, method) == 0 &&
          fh_match(r->pattern, path, params, &param_count) == want) {
        route = r;
        break;
      }
    }
  }
  if (!route) {
    res->handler_rc = -1;
    fh_error_cb(res, 404, "not_found", "no such route", NULL, 0);
    return res;
  }

  fh_query q;
  fh_query_parse(&q, query);
  cd_request req = {
      .method = method,
      .path = path,
      .params = params,
      .param_count = param_count,
      .query = q.pairs,
      .query_count = q.count,
      .headers = hdrs,
      .header_count = header_count,
      .body = body,
      .body_len = body_len,
      .request_id = "test-request",
      .account = fx->account,
      .account_name =
          (route->flags & (CD_ROUTE_AUTH | CD_ROUTE_WRITE | CD_ROUTE_ADMIN))
              ? "test"
              : NULL,
      .role = fx->role,
      .store = fx->store,
      .scheme = "http",
      .authority = authority,
  };
  /* The body is only valid during the call, as with the real host. */
  char *copy = NULL;
  if (body) {
    copy = malloc(body_len + 1);
    memcpy(copy, body, body_len);
    copy[body_len] = '\0';
    req.body = copy;
  }
  int rc = route->handle(fx->state, &req, res);
  res->handler_rc = rc;
  if (copy) memset(copy, 0xAB, body_len);
  free(copy);
  free(q.buf);

  pthread_mutex_lock(&res->mu);
  if (rc == CD_DONE) {
    assert_int_equal(res->answers, 1);
  } else {
    assert_int_equal(rc, CD_ASYNC);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    while (res->answers == 0) {
      int w = pthread_cond_timedwait(&res->cv, &res->mu, &until);
      if (w == ETIMEDOUT) break;
    }
  }
  /* A streamed answer is whole once its writer ended it. */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 60;
  while (res->streamed && !res->stream_ended)
    if (pthread_cond_timedwait(&res->cv, &res->mu, &until) == ETIMEDOUT) break;
  if (res->streamed) assert_true(res->stream_ended);
  pthread_mutex_unlock(&res->mu);
  assert_int_equal(res->answers, 1);
  return res;
}

struct cd_response *fh_call_n(fh_fixture *fx, const char *method,
                              const char *path, const char *query,
                              const char *body, size_t body_len) {
  return fh_call_full(fx, method, path, query, body, body_len, NULL);
}

struct cd_response *fh_call_h(fh_fixture *fx, const char *method,
                              const char *path, const char *query,
                              const char *body, const char *const *headers) {
  return fh_call_full(fx, method, path, query, body, body ? strlen(body) : 0,
                      headers);
}

struct cd_response *fh_call(fh_fixture *fx, const char *method,
                            const char *path, const char *query,
                            const char *body) {
  return fh_call_n(fx, method, path, query, body, body ? strlen(body) : 0);
}

void fh_free(struct cd_response *res) {
  if (!res) return;
  /* A late second answer would land on freed memory: give it no chance. */
  pthread_mutex_lock(&res->mu);
  assert_int_equal(res->answers, 1);
  pthread_mutex_unlock(&res->mu);
  if (res->json) yajl_tree_free(res->json);
  pthread_mutex_destroy(&res->mu);
  pthread_cond_destroy(&res->cv);
  free(res->body);
  free(res);
}

yajl_val fh_json(struct cd_response *res) {
  if (!res->json) {
    char errbuf[256];
    res->json = yajl_tree_parse(res->body, errbuf, sizeof errbuf);
    if (!res->json) fprintf(stderr, "not JSON (%s): %s\n", errbuf, res->body);
    assert_non_null(res->json);
  }
  return res->json;
}

const char *fh_str(struct cd_response *res, ...) {
  const char *path[8];
  size_t n = 0;
  va_list ap;
  va_start(ap, res);
  const char *k;
  while ((k = va_arg(ap, const char *)) && n < 7)
    path[n++] = k;
  va_end(ap);
  path[n] = NULL;
  yajl_val v = yajl_tree_get(fh_json(res), path, yajl_t_string);
  return v ? YAJL_GET_STRING(v) : NULL;
}

const char *fh_header(struct cd_response *res, const char *name) {
  for (size_t i = 0; i < res->header_count; i++)
    if (strcasecmp(res->header_name[i], name) == 0) return res->header_value[i];
  return NULL;
}

uint64_t fh_create(fh_fixture *fx, const char *json) {
  struct cd_response *res = fh_call(fx, "POST", "/contacts", NULL, json);
  if (res->status != 200) fprintf(stderr, "create: %s\n", res->body);
  assert_int_equal(res->status, 200);
  const char *id = fh_str(res, "id", NULL);
  assert_non_null(id);
  uint64_t v = 0;
  assert_int_equal(cs_id_parse(id, strlen(id), &v), 0);
  fh_free(res);
  return v;
}

void fh_assert_error(struct cd_response *res, int status, const char *code,
                     const char *field) {
  if (res->status != status || strcmp(res->code, code) != 0 ||
      strcmp(res->field, field ? field : "") != 0)
    fprintf(stderr, "expected %d %s %s, got %d: %s\n", status, code,
            field ? field : "-", res->status, res->body);
  assert_int_equal(res->status, status);
  assert_string_equal(res->code, code);
  assert_string_equal(res->field, field ? field : "");
  assert_string_equal(res->content_type, "application/json");
  /* The body is the API's error object, whatever the path to it. */
  assert_string_equal(fh_str(res, "error", "code", NULL), code);
  assert_non_null(fh_str(res, "error", "message", NULL));
}
