/*
 * fuzz_request.c: a whole request through the contacts plugin, in process.
 *
 * Goal: no request, however malformed, crashes a handler, answers twice or
 * never, or answers something the host could not send (promise 10).
 * Method: the input is a request in HTTP/1.1's text shape:
 *
 *   METHOD SP TARGET LF          target = path ["?" query]
 *   NAME ":" VALUE LF ...        headers, until an empty line
 *   LF
 *   BODY                         the rest, as sent
 *
 * Two pseudo-headers choose the caller: "x-fuzz-account: 2" (default 1) and
 * "x-fuzz-role: read-only". The query string is split by the front end's own
 * decoder (fe_query_parse), the route is found as the front end finds it
 * (literal segments before {param}; HEAD runs the GET route), and a write
 * route with a read-only caller is refused as the front end would, without
 * calling the plugin. The handler runs against a real store (no syncs) that
 * starts with four contacts (ids 10000000000000000001..04; the last in
 * account 2) and is rebuilt every FZ_RESET_EVERY inputs so it stays small.
 * This host (not cmocka's) checks every answer: exactly one, from whatever
 * thread, within 10 s; a status in 100..599; headers before it and free of
 * control characters; an error code in snake_case with a message and field
 * that are valid UTF-8; a 2xx application/json body that is valid JSON; a
 * 503 with retry-after.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "cd_plugin.h"
#include "fe_errors.h"
#include "fe_request.h"
#include "fuzz_util.h"
#include "test_util.h"

extern const cd_plugin contactd_plugin;

#define FZ_RESET_EVERY 2000

struct cd_response {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int answers;
  int status;
  bool retry_after;
  bool head;
};

static void host_header(cd_response *res, const char *name, const char *value) {
  pthread_mutex_lock(&res->mu);
  FZ_CHECK(res->answers == 0, "a header after the answer");
  for (const char *c = name; *c; c++)
    FZ_CHECK((unsigned char)*c > 0x20 && *c != 0x7f, "header name %s", name);
  for (const char *c = value; *c; c++)
    FZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f, "header value of %s",
             name);
  if (strcmp(name, "retry-after") == 0) res->retry_after = true;
  pthread_mutex_unlock(&res->mu);
}

static void answered(cd_response *res, int status) {
  pthread_mutex_lock(&res->mu);
  res->answers++;
  FZ_CHECK(res->answers == 1, "answered %d times", res->answers);
  FZ_CHECK(status >= 100 && status <= 599, "status %d", status);
  FZ_CHECK(status != 503 || res->retry_after, "503 without retry-after");
  res->status = status;
  if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "answer %d\n", status);
  pthread_cond_broadcast(&res->cv);
  pthread_mutex_unlock(&res->mu);
}

static void host_respond(cd_response *res, int status, const char *type,
                         const char *body, size_t len) {
  if (status >= 200 && status < 300 && type &&
      strncmp(type, "application/json", 16) == 0) {
    char *copy = malloc(len + 1), errbuf[128];
    memcpy(copy, body, len);
    copy[len] = 0;
    yajl_val v = yajl_tree_parse(copy, errbuf, sizeof errbuf);
    FZ_CHECK(v != NULL, "a %d answer is not JSON (%s): %.200s", status, errbuf,
             copy);
    yajl_tree_free(v);
    free(copy);
  }
  answered(res, status);
}

static void host_error(cd_response *res, int status, const char *code,
                       const char *message, const char *field, uint64_t id) {
  FZ_CHECK(code && code[0], "an error without a code");
  for (const char *c = code; *c; c++)
    FZ_CHECK((*c >= 'a' && *c <= 'z') || *c == '_', "code %s", code);
  FZ_CHECK(status >= 400, "error %s with status %d", code, status);
  yajl_gen g = yajl_gen_alloc(NULL);
  yajl_gen_config(g, yajl_gen_validate_utf8, 1);
  yajl_gen_array_open(g);
  FZ_CHECK(message && message[0], "error %s without a message", code);
  FZ_CHECK(yajl_gen_string(g, (const unsigned char *)message,
                           strlen(message)) == yajl_gen_status_ok,
           "error %s: message is not valid UTF-8", code);
  if (field)
    FZ_CHECK(yajl_gen_string(g, (const unsigned char *)field, strlen(field)) ==
                 yajl_gen_status_ok,
             "error %s: field is not valid UTF-8", code);
  yajl_gen_free(g);
  answered(res, status);
}

static void host_log(void *ctx, cd_response *res, int level, const char *line) {
  if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "log %d: %s\n", level, line);
}

static size_t host_metrics(void *ctx, char **out) {
  *out = strdup("");
  return 0;
}

static const cd_host fz_host = {.header = host_header,
                                .respond = host_respond,
                                .error = host_error,
                                .log = host_log,
                                .metrics = host_metrics,
                                .store_error = fe_store_error};

/* ------------------------------------------------------------- fixture */

static char *g_dir;
static cs_store *g_store;
static void *g_state;
static long g_inputs;

static void fixture_close(void) {
  if (!g_store) return;
  if (contactd_plugin.destroy) contactd_plugin.destroy(g_state);
  cs_error err;
  cs_close(g_store, &err);
  fz_rmrf(g_dir);
  free(g_dir);
  g_store = NULL;
}

static void fixture_open(void) {
  static bool registered;
  if (!registered) atexit(fixture_close), registered = true;
  g_dir = fz_tmpdir();
  cs_options o = fz_options();
  cs_error err;
  if (cs_open(g_dir, &o, &g_store, &err)) fz_fail("open: %s", err.msg);
  static const char *const seeds[][3] = {
      {"Ada", "ada@one.example", "Analytical Engines"},
      {"Grace", "grace@one.example", "Navy"},
      {"José", "jose@one.example", "Exámple Inc."},
      {"Other", "other@two.example", "Elsewhere"},
  };
  for (int i = 0; i < 4; i++) {
    uint64_t id;
    cs_contact c = tu_contact(seeds[i][0], "Doe", seeds[i][1], "+1 555 0100",
                              seeds[i][2], NULL, "seed contact");
    if (tu_create(g_store, i < 3 ? 1 : 2, c, &id, &err))
      fz_fail("seed: %s", err.msg);
  }
  char errbuf[256] = "";
  if (contactd_plugin.create &&
      contactd_plugin.create(&fz_host, g_store, &g_state, errbuf,
                             sizeof errbuf))
    fz_fail("plugin create: %s", errbuf);
}

/* ------------------------------------------------------------- routing */

/* 1: literal match, 2: through a parameter, 0: none. */
static int match(const char *pattern, const char *path, size_t path_len,
                 cd_pair *param, size_t *param_count) {
  int kind = 1;
  *param_count = 0;
  const char *end = path + path_len;
  while (*pattern && path < end) {
    if (*pattern != '/' || *path != '/') return 0;
    pattern++, path++;
    const char *pe = strchrnul(pattern, '/');
    const char *se = memchr(path, '/', (size_t)(end - path));
    if (!se) se = end;
    if (*pattern == '{') {
      if (*param_count == 4) return 0;
      param[(*param_count)++] = (cd_pair){
          pattern + 1, (size_t)(pe - pattern - 2), path, (size_t)(se - path)};
      kind = 2;
    } else if (pe - pattern != se - path ||
               memcmp(pattern, path, (size_t)(se - path))) {
      return 0;
    }
    pattern = pe, path = se;
  }
  return *pattern == '\0' && path == end ? kind : 0;
}

static const char *line_end(const char *p, const char *end) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  return nl ? nl : end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > CS_BODY_MAX_BYTES + 4096) return 0;
  if (!g_store || ++g_inputs % FZ_RESET_EVERY == 0) {
    fixture_close();
    fixture_open();
  }
  /* An exact copy, so ASan catches a read past any piece of it. */
  char *in = malloc(size + 1);
  memcpy(in, data, size);
  in[size] = 0;
  const char *p = in, *end = in + size;

  /* Request line. */
  const char *le = line_end(p, end);
  const char *sp = memchr(p, ' ', (size_t)(le - p));
  if (!sp) {
    free(in);
    return 0;
  }
  char method[16];
  size_t mlen = (size_t)(sp - p);
  if (mlen == 0 || mlen >= sizeof method) {
    free(in);
    return 0;
  }
  memcpy(method, p, mlen);
  method[mlen] = 0;
  const char *target = sp + 1;
  size_t tlen = (size_t)(le - target);
  if (tlen && target[tlen - 1] == '\r') tlen--;
  const char *qm = memchr(target, '?', tlen);
  size_t path_len = qm ? (size_t)(qm - target) : tlen;
  const char *query = qm ? qm + 1 : NULL;
  size_t query_len = qm ? tlen - path_len - 1 : 0;
  path_len = strnlen(target, path_len); /* a NUL ends the path, as in C */
  char *path = strndup(target, path_len);
  p = le < end ? le + 1 : end;

  /* Headers. */
  cd_pair headers[64];
  size_t header_count = 0;
  uint32_t account = 1;
  cs_role role = CS_ROLE_READ_WRITE;
  while (p < end) {
    le = line_end(p, end);
    size_t n = (size_t)(le - p);
    if (n && p[n - 1] == '\r') n--;
    const char *line = p;
    p = le < end ? le + 1 : end;
    if (n == 0) break;
    const char *colon = memchr(line, ':', n);
    if (!colon || header_count == 64) continue;
    char *name = (char *)line; /* lower-cased in place, as the host does */
    size_t nlen = (size_t)(colon - line);
    for (size_t i = 0; i < nlen; i++)
      if (name[i] >= 'A' && name[i] <= 'Z') name[i] = (char)(name[i] + 32);
    const char *value = colon + 1;
    size_t vlen = (size_t)(line + n - value);
    while (vlen && *value == ' ')
      value++, vlen--;
    if (nlen == 14 && memcmp(name, "x-fuzz-account", 14) == 0) {
      account = vlen && value[0] == '2' ? 2 : 1;
    } else if (nlen == 11 && memcmp(name, "x-fuzz-role", 11) == 0) {
      role = vlen && value[0] == 'r' && value[1] == 'e' ? CS_ROLE_READ_ONLY
                                                        : CS_ROLE_READ_WRITE;
    } else if (!(nlen == 9 && memcmp(name, "x-api-key", 9) == 0)) {
      headers[header_count++] = (cd_pair){name, nlen, value, vlen};
    }
  }
  size_t body_len = (size_t)(end - p);
  char *body = NULL;
  if (body_len) {
    body = malloc(body_len);
    memcpy(body, p, body_len);
  }

  /* Route. */
  bool head = strcmp(method, "HEAD") == 0;
  const char *route_method = head ? "GET" : method;
  const cd_route *route = NULL;
  cd_pair params[4];
  size_t param_count = 0;
  for (int want = 1; want <= 2 && !route; want++)
    for (size_t i = 0; i < contactd_plugin.route_count && !route; i++) {
      const cd_route *r = &contactd_plugin.routes[i];
      if (strcmp(r->method, route_method) == 0 &&
          match(r->pattern, path, path_len, params, &param_count) == want)
        route = r;
    }

  if (route &&
      !((route->flags & CD_ROUTE_WRITE) && role == CS_ROLE_READ_ONLY)) {
    size_t max = fe_query_pairs_max(query ? query : "", query_len);
    cd_pair *pairs = malloc(max * sizeof *pairs);
    char *scratch = malloc(FE_QUERY_SCRATCH_BYTES(query_len));
    size_t qcount =
        fe_query_parse(query ? query : "", query_len, scratch, pairs, max);
    cd_request req = {.method = method,
                      .path = path,
                      .params = params,
                      .param_count = param_count,
                      .query = pairs,
                      .query_count = qcount,
                      .headers = headers,
                      .header_count = header_count,
                      .body = body,
                      .body_len = body_len,
                      .request_id = "fuzz",
                      .account = account,
                      .account_name = account == 1 ? "one" : "two",
                      .role = role,
                      .store = g_store};
    cd_response *res = calloc(1, sizeof *res);
    pthread_mutex_init(&res->mu, NULL);
    pthread_cond_init(&res->cv, NULL);
    res->head = head;
    int rc = route->handle(g_state, &req, res);
    /* The request's memory is gone once the handler returns. */
    if (body) memset(body, 0xAB, body_len);
    memset(scratch, 0xAB, FE_QUERY_SCRATCH_BYTES(query_len));
    memset(in, 0xAB, size);
    pthread_mutex_lock(&res->mu);
    if (rc == CD_DONE) {
      FZ_CHECK(res->answers == 1, "CD_DONE without an answer");
    } else {
      FZ_CHECK(rc == CD_ASYNC, "handler returned %d", rc);
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += 10;
      while (res->answers == 0)
        if (pthread_cond_timedwait(&res->cv, &res->mu, &until) == ETIMEDOUT)
          fz_fail("no answer within 10 s");
    }
    pthread_mutex_unlock(&res->mu);
    pthread_mutex_destroy(&res->mu);
    pthread_cond_destroy(&res->cv);
    free(res);
    free(pairs);
    free(scratch);
  }
  free(body);
  free(path);
  free(in);
  return 0;
}
