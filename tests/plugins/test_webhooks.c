/*
 * test_webhooks.c: the webhooks plugin driven in-process through its
 * routes (fake_host.c) over a real store, with receivers on loopback.
 *
 * Goal: the route table and its flags; a create answers an id and a
 * secret of their shapes, GET lists what API.md says and never the
 * secret; bad bodies (URL, allow-list, types, unknown members) are refused
 * and change nothing; the per-account limit at and past its edge; another
 * account sees nothing and gets 404 for every id, as does an id of no
 * shape; delete and enable; webhooks and positions survive a restart of
 * the plugin; side-file writes leave the worker thread (CD_ASYNC) until
 * the plugin drains; a damaged or unreadable side file stops create with a
 * message naming the file, and a failed side-file write answers 503 and
 * changes nothing; a receiver on loopback gets each change once, in feed
 * order, signed (checked with an HMAC made here), with the change entry
 * as body; a receiver that answers 500 and then 200 gets the change again
 * and in order; a dead receiver makes the webhook failing, then disabled
 * once the retry window has passed, and enable resumes it from where it
 * stopped; an answer inside WH_DELIVERY_TIMEOUT_MS acknowledges and none
 * within it is a timeout; a server keeping WH_TOTAL_MAX webhooks takes no
 * more; metrics count the outcomes and the states. Method: the
 * receiver is a thread of the test speaking just enough HTTP/1.1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fake_host.h"
#include "wh.h"

extern const cd_plugin contactd_plugin;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* ---------------------------------------------------- a loopback receiver */

#define RX_MAX 512

typedef struct rx_seen {
  char id[32], ts[32], sig[64];
  char *body;
} rx_seen;

typedef struct receiver {
  int fd;
  unsigned port;
  pthread_t thread;
  pthread_mutex_t mu;
  int status;     /* what to answer */
  int fail_first; /* answer 500 to this many requests first */
  rx_seen seen[RX_MAX];
  int count;
  bool stop;
  int client; /* the connection being served, -1 when none */
  /* The n-th request (0-based) is answered after delay_ms[n] ms. */
  int delay_ms[8];
  int requests;
} receiver;

/* Reads one request from fd into *s; 0, or -1 when the peer is gone. */
static int rx_read(int fd, rx_seen *s) {
  char buf[65536];
  size_t len = 0;
  char *end = NULL;
  while (end == NULL) {
    if (len == sizeof(buf) - 1) return -1;
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0) return -1;
    len += (size_t)n;
    buf[len] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  size_t head = (size_t)(end - buf) + 4;
  size_t body_len = 0;
  memset(s, 0, sizeof(*s));
  for (char *line = strstr(buf, "\r\n") + 2; line < end;
       line = strstr(line, "\r\n") + 2) {
    char *colon = strchr(line, ':');
    char *eol = strstr(line, "\r\n");
    if (colon == NULL || colon > eol) continue;
    char *v = colon + 1;
    while (*v == ' ')
      v++;
    size_t vlen = (size_t)(eol - v);
    size_t nlen = (size_t)(colon - line);
    char *dst = NULL;
    if (nlen == 10 && strncasecmp(line, "webhook-id", 10) == 0) dst = s->id;
    if (nlen == 17 && strncasecmp(line, "webhook-timestamp", 17) == 0)
      dst = s->ts;
    if (nlen == 17 && strncasecmp(line, "webhook-signature", 17) == 0)
      dst = s->sig;
    if (dst != NULL && vlen < 32 + (dst == s->sig ? 32 : 0)) {
      memcpy(dst, v, vlen);
      dst[vlen] = '\0';
    }
    if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0)
      body_len = strtoul(v, NULL, 10);
  }
  s->body = malloc(body_len + 1);
  size_t have = len - head < body_len ? len - head : body_len;
  memcpy(s->body, buf + head, have);
  while (have < body_len) {
    ssize_t n = read(fd, s->body + have, body_len - have);
    if (n <= 0) return -1;
    have += (size_t)n;
  }
  s->body[body_len] = '\0';
  return 0;
}

static void *rx_run(void *arg) {
  receiver *rx = arg;
  for (;;) {
    int fd = accept(rx->fd, NULL, NULL);
    if (fd < 0) return NULL;
    pthread_mutex_lock(&rx->mu);
    rx->client = rx->stop ? -1 : fd;
    bool stopping = rx->stop;
    pthread_mutex_unlock(&rx->mu);
    for (; !stopping;) {
      rx_seen s;
      if (rx_read(fd, &s) != 0) break;
      pthread_mutex_lock(&rx->mu);
      int nth = rx->requests++;
      int delay = nth < 8 ? rx->delay_ms[nth] : 0;
      pthread_mutex_unlock(&rx->mu);
      for (int waited = 0; waited < delay; waited += 10) {
        pthread_mutex_lock(&rx->mu);
        bool stopping_now = rx->stop;
        pthread_mutex_unlock(&rx->mu);
        if (stopping_now) break;
        sleep_ms(10);
      }
      pthread_mutex_lock(&rx->mu);
      bool stop = rx->stop;
      int status = rx->status;
      if (rx->fail_first > 0) {
        rx->fail_first--;
        status = 500;
      }
      if (!stop && rx->count < RX_MAX && status == 200)
        rx->seen[rx->count++] = s;
      else
        free(s.body);
      pthread_mutex_unlock(&rx->mu);
      if (stop) break;
      char answer[128];
      int n = snprintf(answer, sizeof(answer),
                       "HTTP/1.1 %d X\r\ncontent-length: 0\r\n\r\n", status);
      if (write(fd, answer, (size_t)n) != n) break;
    }
    pthread_mutex_lock(&rx->mu);
    rx->client = -1;
    pthread_mutex_unlock(&rx->mu);
    close(fd);
  }
}

/* Starts a receiver answering status on port (0: any free one). */
static void rx_start_on(receiver *rx, int status, unsigned port) {
  memset(rx, 0, sizeof(*rx));
  pthread_mutex_init(&rx->mu, NULL);
  rx->status = status;
  rx->client = -1;
  rx->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(rx->fd >= 0);
  int one = 1;
  setsockopt(rx->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(rx->fd, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t alen = sizeof(a);
  getsockname(rx->fd, (struct sockaddr *)&a, &alen);
  rx->port = ntohs(a.sin_port);
  assert_int_equal(listen(rx->fd, 16), 0);
  assert_int_equal(pthread_create(&rx->thread, NULL, rx_run, rx), 0);
}

static void rx_start(receiver *rx, int status) {
  rx_start_on(rx, status, 0);
}

static void rx_stop(receiver *rx) {
  pthread_mutex_lock(&rx->mu);
  rx->stop = true;
  if (rx->client >= 0) shutdown(rx->client, SHUT_RDWR);
  pthread_mutex_unlock(&rx->mu);
  shutdown(rx->fd, SHUT_RDWR);
  close(rx->fd);
  pthread_join(rx->thread, NULL);
  for (int i = 0; i < rx->count; i++)
    free(rx->seen[i].body);
  pthread_mutex_destroy(&rx->mu);
}

static int rx_count(receiver *rx) {
  pthread_mutex_lock(&rx->mu);
  int n = rx->count;
  pthread_mutex_unlock(&rx->mu);
  return n;
}

static void rx_wait(receiver *rx, int n) {
  for (int i = 0; i < 1500 && rx_count(rx) < n; i++)
    sleep_ms(10);
  assert_int_equal(rx_count(rx), n);
}

/* A port nothing listens on: bound, then closed. */
static unsigned dead_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t alen = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &alen);
  close(fd);
  return ntohs(a.sin_port);
}

/* ------------------------------------------------------------- helpers */

static const char *const opts_loopback[] = {"webhook-allow", "127.0.0.1", NULL};
static const char *const opts_short_window[] = {
    "webhook-allow", "127.0.0.1", "webhook-retry-seconds", "1", NULL};

static void wh_open(fh_fixture *fx, const char *const *opts) {
  fh_options = opts;
  fh_open(fx, &contactd_plugin, NULL);
}

/* POST /webhooks with url; answers the id (and the secret's key). */
static void create_hook(fh_fixture *fx, const char *url, const char *types,
                        char id[WH_ID_BYTES + 1],
                        uint8_t key[WH_SECRET_BYTES]) {
  char body[512];
  if (types)
    snprintf(body, sizeof(body), "{\"url\": \"%s\", \"types\": %s}", url,
             types);
  else
    snprintf(body, sizeof(body), "{\"url\": \"%s\"}", url);
  struct cd_response *r = fh_call(fx, "POST", "/webhooks", NULL, body);
  if (r->status != 200) fprintf(stderr, "create: %s\n", r->body);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type, "application/json");
  const char *got = fh_str(r, "id", NULL);
  const char *secret = fh_str(r, "secret", NULL);
  assert_non_null(got);
  assert_non_null(secret);
  assert_true(wh_id_valid(got, strlen(got)));
  assert_int_equal(strlen(secret), WH_SECRET_TEXT_BYTES);
  snprintf(id, WH_ID_BYTES + 1, "%s", got);
  uint8_t k[WH_SECRET_BYTES];
  assert_int_equal(wh_secret_parse(secret, strlen(secret), k), 0);
  if (key) memcpy(key, k, sizeof(k));
  fh_free(r);
}

/* The webhook of id in GET /webhooks, as a tree (NULL: not listed); the
 * answer is kept in *keep for the caller to free. */
static yajl_val listed(fh_fixture *fx, const char *id,
                       struct cd_response **keep) {
  struct cd_response *r = fh_call(fx, "GET", "/webhooks", NULL, NULL);
  assert_int_equal(r->status, 200);
  const char *path[] = {"webhooks", NULL};
  yajl_val list = yajl_tree_get(fh_json(r), path, yajl_t_array);
  assert_non_null(list);
  *keep = r;
  for (size_t i = 0; i < list->u.array.len; i++) {
    const char *ip[] = {"id", NULL};
    yajl_val v = yajl_tree_get(list->u.array.values[i], ip, yajl_t_string);
    const char *s = v ? YAJL_GET_STRING(v) : NULL;
    if (s != NULL && strcmp(s, id) == 0) return list->u.array.values[i];
  }
  return NULL;
}

static size_t listed_count(fh_fixture *fx) {
  struct cd_response *r = fh_call(fx, "GET", "/webhooks", NULL, NULL);
  assert_int_equal(r->status, 200);
  const char *path[] = {"webhooks", NULL};
  yajl_val list = yajl_tree_get(fh_json(r), path, yajl_t_array);
  assert_non_null(list);
  size_t n = list->u.array.len;
  fh_free(r);
  return n;
}

static const char *member(yajl_val v, const char *name) {
  const char *p[] = {name, NULL};
  yajl_val m = yajl_tree_get(v, p, yajl_t_any);
  return m && YAJL_IS_STRING(m) ? YAJL_GET_STRING(m) : NULL;
}

static bool member_null(yajl_val v, const char *name) {
  const char *p[] = {name, NULL};
  yajl_val m = yajl_tree_get(v, p, yajl_t_any);
  return m && YAJL_IS_NULL(m);
}

/* The state GET shows for id. */
static char *state_of(fh_fixture *fx, const char *id) {
  struct cd_response *r;
  yajl_val v = listed(fx, id, &r);
  assert_non_null(v);
  char *s = strdup(member(v, "state"));
  fh_free(r);
  return s;
}

/* Waits up to 30 s (a delivery timeout and a retry fit in it). */
static void wait_state(fh_fixture *fx, const char *id, const char *want) {
  for (int i = 0; i < 3000; i++) {
    char *s = state_of(fx, id);
    bool done = strcmp(s, want) == 0;
    free(s);
    if (done) return;
    sleep_ms(10);
  }
  char *s = state_of(fx, id);
  fail_msg("webhook %s stayed %s, want %s", id, s, want);
}

static void done_cb(void *ctx, int rc, uint64_t id) {
  (void)id;
  __atomic_store_n((int *)ctx, rc == 0 ? 1 : -1, __ATOMIC_SEQ_CST);
}

/* Creates a contact straight in the store (account 1) and waits for its
 * commit. */
static uint64_t put_contact(fh_fixture *fx, uint32_t account, int i) {
  char first[32], email[64];
  snprintf(first, sizeof(first), "P%d", i);
  snprintf(email, sizeof(email), "p%d@example.com", i);
  cs_contact c;
  memset(&c, 0, sizeof(c));
  c.field[CS_FIRST_NAME] = (cs_str){first, strlen(first)};
  c.field[CS_EMAIL] = (cs_str){email, strlen(email)};
  int done = 0;
  uint64_t id = 0;
  cs_error err = {0};
  assert_int_equal(cs_create(fx->store, account, &c, done_cb, &done, &id, &err),
                   0);
  while (__atomic_load_n(&done, __ATOMIC_SEQ_CST) == 0)
    sleep_ms(1);
  assert_int_equal(done, 1);
  return id;
}

/* The signature a receiver computes, independently of wh_sign. */
static void expect_signed(const rx_seen *s, const uint8_t key[]) {
  char msg[8192];
  int n = snprintf(msg, sizeof(msg), "%s.%s.%s", s->id, s->ts, s->body);
  assert_true(n > 0 && (size_t)n < sizeof(msg));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len;
  HMAC(EVP_sha256(), key, WH_SECRET_BYTES, (unsigned char *)msg, (size_t)n, mac,
       &mac_len);
  char want[64] = "v1,";
  EVP_EncodeBlock((unsigned char *)want + 3, mac, (int)mac_len);
  assert_string_equal(s->sig, want);
  long long ts = atoll(s->ts);
  assert_true(llabs(ts - (long long)time(NULL)) < 60);
}

static char *metrics_text(fh_fixture *fx) {
  char *text = NULL;
  size_t len = contactd_plugin.metrics(fx->state, &text);
  assert_true(len > 0);
  assert_int_equal(strlen(text), len);
  return text;
}

/* ---------------------------------------------------------------- tests */

static void test_webhooks_route_table(void **state) {
  assert_int_equal(contactd_plugin.api_version, CD_PLUGIN_API_VERSION);
  assert_string_equal(contactd_plugin.name, "webhooks");
  assert_int_equal(contactd_plugin.route_count, 4);
  static const struct {
    const char *method, *pattern;
    unsigned flags;
  } want[] = {
      {"POST", "/webhooks", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"GET", "/webhooks", CD_ROUTE_AUTH},
      {"DELETE", "/webhooks/{id}", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
      {"POST", "/webhooks/{id}/enable", CD_ROUTE_AUTH | CD_ROUTE_WRITE},
  };
  for (size_t i = 0; i < 4; i++) {
    assert_string_equal(contactd_plugin.routes[i].method, want[i].method);
    assert_string_equal(contactd_plugin.routes[i].pattern, want[i].pattern);
    assert_int_equal(contactd_plugin.routes[i].flags, want[i].flags);
  }
  assert_non_null(contactd_plugin.drain);
  assert_non_null(contactd_plugin.metrics);
}

static void test_webhooks_create_list_delete(void **state) {
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  assert_int_equal(listed_count(&fx), 0);
  char id[WH_ID_BYTES + 1], id2[WH_ID_BYTES + 1];
  create_hook(&fx, "http://127.0.0.1:9/a", NULL, id, NULL);
  create_hook(&fx, "http://127.0.0.1:9/b", "[\"purged\", \"created\"]", id2,
              NULL);
  assert_string_not_equal(id, id2);

  struct cd_response *r;
  yajl_val v = listed(&fx, id, &r);
  assert_non_null(v);
  assert_string_equal(member(v, "url"), "http://127.0.0.1:9/a");
  assert_string_equal(member(v, "state"), "active");
  assert_non_null(member(v, "created_at"));
  assert_true(member_null(v, "last_delivery_at"));
  assert_true(member_null(v, "last_error"));
  const char *tp[] = {"types", NULL};
  yajl_val types = yajl_tree_get(v, tp, yajl_t_array);
  assert_non_null(types);
  assert_int_equal(types->u.array.len, CS_CHANGE_TYPE_COUNT);
  /* Never the secret, under any name. */
  assert_null(strstr(r->body, "secret"));
  assert_null(strstr(r->body, "whsec_"));
  fh_free(r);
  v = listed(&fx, id2, &r);
  types = yajl_tree_get(v, tp, yajl_t_array);
  assert_int_equal(types->u.array.len, 2);
  assert_string_equal(YAJL_GET_STRING(types->u.array.values[0]), "created");
  assert_string_equal(YAJL_GET_STRING(types->u.array.values[1]), "purged");
  fh_free(r);

  char path[64];
  snprintf(path, sizeof(path), "/webhooks/%s", id);
  r = fh_call(&fx, "DELETE", path, NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_str(r, "id", NULL), id);
  fh_free(r);
  assert_int_equal(listed_count(&fx), 1);
  r = fh_call(&fx, "DELETE", path, NULL, NULL);
  fh_assert_error(r, 404, "not_found", NULL);
  fh_free(r);
  fh_close(&fx);
}

static void test_webhooks_bad_bodies_change_nothing(void **state) {
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  static const struct {
    const char *body, *code, *field;
  } bad[] = {
      {"", "invalid_json", NULL},
      {"[1]", "invalid_json", NULL},
      {"{}", "missing_field", "url"},
      {"{\"url\": \"http://127.0.0.2/\"}", "invalid_field", "url"},
      {"{\"url\": \"http://localhost/\"}", "invalid_field", "url"},
      {"{\"url\": \"gopher://127.0.0.1/\"}", "invalid_field", "url"},
      {"{\"url\": \"http://127.0.0.1/\", \"types\": [\"x\"]}", "invalid_field",
       "types"},
      {"{\"url\": \"http://127.0.0.1/\", \"types\": []}", "invalid_field",
       "types"},
      {"{\"url\": \"http://127.0.0.1/\", \"state\": \"active\"}",
       "unknown_field", "state"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct cd_response *r =
        fh_call(&fx, "POST", "/webhooks", NULL, bad[i].body);
    fh_assert_error(r, 400, bad[i].code, bad[i].field);
    fh_free(r);
  }
  assert_int_equal(listed_count(&fx), 0);
  /* Nothing was written either. */
  uint8_t *data;
  size_t len;
  cs_error err;
  assert_int_equal(cs_side_read(fx.store, WH_SIDE_FILE, &data, &len, &err),
                   CS_ENOTFOUND);
  fh_close(&fx);

  /* Without any --webhook-allow, no URL is allowed. */
  wh_open(&fx, NULL);
  struct cd_response *r = fh_call(&fx, "POST", "/webhooks", NULL,
                                  "{\"url\": \"http://127.0.0.1/\"}");
  fh_assert_error(r, 400, "invalid_field", "url");
  fh_free(r);
  fh_close(&fx);
}

static void test_webhooks_per_account_limit(void **state) {
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  char id[WH_ID_BYTES + 1];
  for (int i = 0; i < WH_PER_ACCOUNT_MAX; i++)
    create_hook(&fx, "http://127.0.0.1:9/", NULL, id, NULL);
  struct cd_response *r = fh_call(&fx, "POST", "/webhooks", NULL,
                                  "{\"url\": \"http://127.0.0.1/\"}");
  fh_assert_error(r, 400, "too_many_webhooks", NULL);
  fh_free(r);
  assert_int_equal(listed_count(&fx), WH_PER_ACCOUNT_MAX);
  /* Another account has its own allowance. */
  fx.account = 2;
  create_hook(&fx, "http://127.0.0.1:9/", NULL, id, NULL);
  assert_int_equal(listed_count(&fx), 1);
  /* One deleted makes room again. */
  fx.account = 1;
  r = fh_call(&fx, "GET", "/webhooks", NULL, NULL);
  const char *p0[] = {"webhooks", NULL};
  yajl_val list = yajl_tree_get(fh_json(r), p0, yajl_t_array);
  const char *ip[] = {"id", NULL};
  char path[64];
  snprintf(path, sizeof(path), "/webhooks/%s",
           YAJL_GET_STRING(
               yajl_tree_get(list->u.array.values[3], ip, yajl_t_string)));
  fh_free(r);
  r = fh_call(&fx, "DELETE", path, NULL, NULL);
  assert_int_equal(r->status, 200);
  fh_free(r);
  create_hook(&fx, "http://127.0.0.1:9/", NULL, id, NULL);
  assert_int_equal(listed_count(&fx), WH_PER_ACCOUNT_MAX);
  fh_close(&fx);
}

static void test_webhooks_accounts_never_meet(void **state) {
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  char id[WH_ID_BYTES + 1];
  create_hook(&fx, "http://127.0.0.1:9/", NULL, id, NULL);
  fx.account = 2;
  assert_int_equal(listed_count(&fx), 0);
  char path[96];
  static const char *const fmts[] = {"/webhooks/%s", "/webhooks/%s/enable"};
  for (int f = 0; f < 2; f++) {
    snprintf(path, sizeof(path), fmts[f], id);
    struct cd_response *r =
        fh_call(&fx, f ? "POST" : "DELETE", path, NULL, NULL);
    fh_assert_error(r, 404, "not_found", NULL);
    /* Exactly as an id nobody has, and one of no shape. */
    struct cd_response *missing =
        fh_call(&fx, f ? "POST" : "DELETE",
                f ? "/webhooks/wh_000000000000000000000000/enable"
                  : "/webhooks/wh_000000000000000000000000",
                NULL, NULL);
    assert_int_equal(missing->status, 404);
    assert_string_equal(missing->body, r->body);
    fh_free(missing);
    missing = fh_call(&fx, f ? "POST" : "DELETE",
                      f ? "/webhooks/nonsense/enable" : "/webhooks/nonsense",
                      NULL, NULL);
    assert_string_equal(missing->body, r->body);
    fh_free(missing);
    fh_free(r);
  }
  fx.account = 1;
  assert_int_equal(listed_count(&fx), 1);
  fh_close(&fx);
}

static void test_webhooks_survive_a_restart(void **state) {
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  char id[WH_ID_BYTES + 1], id2[WH_ID_BYTES + 1];
  create_hook(&fx, "http://127.0.0.1:9/x", "[\"deleted\"]", id, NULL);
  create_hook(&fx, "http://127.0.0.1:9/y", NULL, id2, NULL);
  contactd_plugin.drain(fx.state);
  contactd_plugin.drain(fx.state); /* a second drain does nothing */
  contactd_plugin.destroy(fx.state);
  char errbuf[512] = "";
  assert_int_equal(
      contactd_plugin.create(fh_host(), fx.store, &fx.state, errbuf, 512), 0);
  struct cd_response *r;
  yajl_val v = listed(&fx, id, &r);
  assert_non_null(v);
  assert_string_equal(member(v, "url"), "http://127.0.0.1:9/x");
  fh_free(r);
  v = listed(&fx, id2, &r);
  assert_non_null(v);
  fh_free(r);
  fh_close(&fx);
}

/* The side file's write syncs the disk: a worker hands it to the plugin's
 * thread and answers later (CD_ASYNC); once drained, the route writes and
 * answers itself. */
static void test_webhooks_writes_leave_the_worker(void **state) {
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  const char *body = "{\"url\": \"http://127.0.0.1:9/\"}";
  struct cd_response *r = fh_call(&fx, "POST", "/webhooks", NULL, body);
  assert_int_equal(r->status, 200);
  assert_int_equal(r->handler_rc, CD_ASYNC);
  fh_free(r);
  r = fh_call(&fx, "GET", "/webhooks", NULL, NULL);
  assert_int_equal(r->handler_rc, CD_DONE);
  fh_free(r);
  contactd_plugin.drain(fx.state);
  r = fh_call(&fx, "POST", "/webhooks", NULL, body);
  assert_int_equal(r->status, 200);
  assert_int_equal(r->handler_rc, CD_DONE);
  fh_free(r);
  assert_int_equal(listed_count(&fx), 2);
  contactd_plugin.destroy(fx.state);
  char errbuf[512] = "";
  assert_int_equal(
      contactd_plugin.create(fh_host(), fx.store, &fx.state, errbuf, 512), 0);
  assert_int_equal(listed_count(&fx), 2);
  fh_close(&fx);
}

static void test_webhooks_damaged_side_file_stops_the_start(void **state) {
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  char id[WH_ID_BYTES + 1];
  create_hook(&fx, "http://127.0.0.1:9/", NULL, id, NULL);
  contactd_plugin.destroy(fx.state);
  fx.state = NULL;
  uint8_t *data;
  size_t len;
  cs_error err = {0};
  assert_int_equal(cs_side_read(fx.store, WH_SIDE_FILE, &data, &len, &err), 0);
  /* A byte of the JSON changed: the checksum says so. */
  data[len - 5] ^= 1;
  assert_int_equal(cs_side_write(fx.store, WH_SIDE_FILE, data, len, &err), 0);
  char errbuf[512] = "";
  void *st = NULL;
  assert_int_not_equal(
      contactd_plugin.create(fh_host(), fx.store, &st, errbuf, 512), 0);
  assert_null(st);
  assert_non_null(strstr(errbuf, WH_SIDE_FILE));
  assert_non_null(strstr(errbuf, "checksum"));
  /* Cut short. */
  data[len - 5] ^= 1;
  assert_int_equal(cs_side_write(fx.store, WH_SIDE_FILE, data, len - 1, &err),
                   0);
  assert_int_not_equal(
      contactd_plugin.create(fh_host(), fx.store, &st, errbuf, 512), 0);
  assert_non_null(strstr(errbuf, "cut short"));
  /* Put back whole, it loads with its webhook. */
  assert_int_equal(cs_side_write(fx.store, WH_SIDE_FILE, data, len, &err), 0);
  free(data);
  assert_int_equal(
      contactd_plugin.create(fh_host(), fx.store, &fx.state, errbuf, 512), 0);
  assert_int_equal(listed_count(&fx), 1);
  fh_close(&fx);
}

static void test_webhooks_bad_options_stop_the_start(void **state) {
  fh_fixture fx;
  wh_open(&fx, NULL);
  static const char *const bad_allow[] = {"webhook-allow", "no_such:host",
                                          NULL};
  static const char *const bad_window[] = {"webhook-retry-seconds", "0", NULL};
  const char *const *cases[] = {bad_allow, bad_window};
  for (int i = 0; i < 2; i++) {
    fh_options = cases[i];
    void *st = NULL;
    char errbuf[512] = "";
    assert_int_not_equal(
        contactd_plugin.create(fh_host(), fx.store, &st, errbuf, 512), 0);
    assert_non_null(strstr(errbuf, cases[i][0]));
  }
  fh_options = NULL;
  fh_close(&fx);
}

/* A side file that cannot be written: the create is answered 503 and
 * nothing changes. */
static bool fail_writes;
static long failing_pwrite(void *ctx, int fd, const void *buf, size_t len,
                           uint64_t off) {
  if (__atomic_load_n(&fail_writes, __ATOMIC_SEQ_CST)) return -EIO;
  return cs_io_posix()->pwrite(ctx, fd, buf, len, off);
}

static void test_webhooks_failed_write_changes_nothing(void **state) {
  static cs_io io;
  io = *cs_io_posix();
  io.pwrite = failing_pwrite;
  cs_options o = {.durability = CS_DURABILITY_NONE, .io = &io};
  fh_fixture fx;
  fh_options = opts_loopback;
  fh_open(&fx, &contactd_plugin, &o);
  char id[WH_ID_BYTES + 1];
  create_hook(&fx, "http://127.0.0.1:9/", NULL, id, NULL);
  __atomic_store_n(&fail_writes, true, __ATOMIC_SEQ_CST);
  struct cd_response *r = fh_call(&fx, "POST", "/webhooks", NULL,
                                  "{\"url\": \"http://127.0.0.1/\"}");
  fh_assert_error(r, 503, "store_unavailable", NULL);
  assert_non_null(fh_header(r, "retry-after"));
  fh_free(r);
  char path[64];
  snprintf(path, sizeof(path), "/webhooks/%s", id);
  r = fh_call(&fx, "DELETE", path, NULL, NULL);
  fh_assert_error(r, 503, "store_unavailable", NULL);
  fh_free(r);
  assert_int_equal(listed_count(&fx), 1);
  __atomic_store_n(&fail_writes, false, __ATOMIC_SEQ_CST);
  r = fh_call(&fx, "DELETE", path, NULL, NULL);
  assert_int_equal(r->status, 200);
  fh_free(r);
  assert_int_equal(listed_count(&fx), 0);
  fh_close(&fx);
}

static void test_webhooks_deliver_in_order_signed(void **state) {
  receiver rx;
  rx_start(&rx, 200);
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  /* A change before the webhook exists is not delivered. */
  put_contact(&fx, 1, 0);
  char url[64], id[WH_ID_BYTES + 1];
  uint8_t key[WH_SECRET_BYTES];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", rx.port);
  create_hook(&fx, url, NULL, id, key);
  /* More than one read of the feed holds (WH_READ_BATCH). */
  enum { N = 2 * WH_READ_BATCH + 22 };
  static uint64_t ids[N];
  for (int i = 0; i < N; i++)
    ids[i] = put_contact(&fx, 1, i + 1);
  put_contact(&fx, 2, 99); /* another account's: not this webhook's */
  rx_wait(&rx, N);
  uint64_t last = 0;
  for (int i = 0; i < N; i++) {
    rx_seen *s = &rx.seen[i];
    expect_signed(s, key);
    char want[64];
    snprintf(want, sizeof(want), "\"cursor\":\"%s\"", s->id);
    assert_non_null(strstr(s->body, want));
    snprintf(want, sizeof(want), "\"id\":\"%020llu\"",
             (unsigned long long)ids[i]);
    assert_non_null(strstr(s->body, want));
    assert_non_null(strstr(s->body, "\"type\":\"created\""));
    assert_non_null(strstr(s->body, "\"contact\":{"));
    uint64_t seq = strtoull(s->id, NULL, 10);
    assert_true(seq > last);
    last = seq;
  }
  sleep_ms(300);
  assert_int_equal(rx_count(&rx), N);
  /* The position reached is in the side file WH_SAVE_INTERVAL_MS later. */
  sleep_ms(2 * WH_SAVE_INTERVAL_MS);
  uint8_t *data;
  size_t len;
  cs_error err = {0};
  assert_int_equal(cs_side_read(fx.store, WH_SIDE_FILE, &data, &len, &err), 0);
  wh_rec *recs;
  size_t count;
  char why[256];
  assert_int_equal(wh_file_decode(data, len, &recs, &count, why, 256), 0);
  assert_int_equal(count, 1);
  assert_true(recs[0].position >= last);
  free(recs);
  free(data);
  struct cd_response *r;
  yajl_val v = listed(&fx, id, &r);
  assert_false(member_null(v, "last_delivery_at"));
  assert_string_equal(member(v, "state"), "active");
  fh_free(r);
  char *m = metrics_text(&fx);
  char okline[96];
  snprintf(okline, sizeof(okline),
           "contactd_webhook_deliveries_total{outcome=\"ok\"} %d\n", N);
  assert_non_null(strstr(m, okline));
  assert_non_null(strstr(m, "contactd_webhooks{state=\"active\"} 1"));
  char want[128];
  snprintf(want, sizeof(want), "contactd_webhook_lag_changes{webhook=\"%s\"} 0",
           id);
  assert_non_null(strstr(m, want));
  free(m);
  fh_close(&fx);
  rx_stop(&rx);
}

static void test_webhooks_retry_after_errors_keeps_order(void **state) {
  receiver rx;
  rx_start(&rx, 200);
  rx.fail_first = 2;
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  char url[64], id[WH_ID_BYTES + 1];
  uint8_t key[WH_SECRET_BYTES];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", rx.port);
  create_hook(&fx, url, NULL, id, key);
  uint64_t a = put_contact(&fx, 1, 1);
  uint64_t b = put_contact(&fx, 1, 2);
  /* Two 500s, about 1 s and 2 s apart; then both, in order. */
  rx_wait(&rx, 2);
  char want[64];
  snprintf(want, sizeof(want), "\"id\":\"%020llu\"", (unsigned long long)a);
  assert_non_null(strstr(rx.seen[0].body, want));
  snprintf(want, sizeof(want), "\"id\":\"%020llu\"", (unsigned long long)b);
  assert_non_null(strstr(rx.seen[1].body, want));
  char *m = metrics_text(&fx);
  assert_non_null(
      strstr(m, "contactd_webhook_deliveries_total{outcome=\"http_error\"} 2"));
  free(m);
  struct cd_response *r;
  yajl_val v = listed(&fx, id, &r);
  assert_string_equal(member(v, "state"), "active");
  assert_non_null(strstr(member(v, "last_error"), "HTTP 500"));
  fh_free(r);
  fh_close(&fx);
  rx_stop(&rx);
}

static void test_webhooks_dead_receiver_is_disabled_then_enabled(void **st) {
  fh_fixture fx;
  wh_open(&fx, opts_short_window);
  unsigned port = dead_port();
  char url[64], id[WH_ID_BYTES + 1];
  uint8_t key[WH_SECRET_BYTES];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
  create_hook(&fx, url, NULL, id, key);
  char path[96];
  snprintf(path, sizeof(path), "/webhooks/%s/enable", id);
  /* Enabling an active one changes nothing. */
  struct cd_response *r = fh_call(&fx, "POST", path, NULL, NULL);
  assert_int_equal(r->status, 200);
  fh_free(r);
  uint64_t first = put_contact(&fx, 1, 1);
  wait_state(&fx, id, "failing");
  wait_state(&fx, id, "disabled");
  yajl_val v = listed(&fx, id, &r);
  assert_non_null(strstr(member(v, "last_error"), "disabled"));
  fh_free(r);
  char *m = metrics_text(&fx);
  assert_non_null(strstr(m, "contactd_webhooks{state=\"disabled\"} 1"));
  assert_null(
      strstr(m, "contactd_webhook_deliveries_total{outcome=\"network_error\"} "
                "0\n"));
  free(m);
  /* More changes while disabled; then a receiver on that port and enable:
   * every change from where it stopped, in order. */
  uint64_t second = put_contact(&fx, 1, 2);
  receiver rx;
  rx_start_on(&rx, 200, port);
  sleep_ms(200);
  assert_int_equal(rx_count(&rx), 0); /* disabled: nothing is tried */
  r = fh_call(&fx, "POST", path, NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(fh_str(r, "id", NULL), id);
  fh_free(r);
  rx_wait(&rx, 2);
  char want[64];
  snprintf(want, sizeof(want), "\"id\":\"%020llu\"", (unsigned long long)first);
  assert_non_null(strstr(rx.seen[0].body, want));
  snprintf(want, sizeof(want), "\"id\":\"%020llu\"",
           (unsigned long long)second);
  assert_non_null(strstr(rx.seen[1].body, want));
  expect_signed(&rx.seen[1], key);
  wait_state(&fx, id, "active");
  fh_close(&fx);
  rx_stop(&rx);
}

/* WH_DELIVERY_TIMEOUT_MS: an answer inside it acknowledges, none within it
 * is a timeout, retried. */
static void test_webhooks_delivery_timeout(void **state) {
  receiver rx;
  rx_start(&rx, 200);
  rx.delay_ms[0] = WH_DELIVERY_TIMEOUT_MS - 1500; /* in time */
  rx.delay_ms[1] = WH_DELIVERY_TIMEOUT_MS + 3000; /* too late */
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  char url[64], id[WH_ID_BYTES + 1];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", rx.port);
  create_hook(&fx, url, NULL, id, NULL);
  /* From before the first write: its delivery starts at once, so a clock
   * started after the second would miss that head start on a busy
   * machine. */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  put_contact(&fx, 1, 1);
  put_contact(&fx, 1, 2);
  /* The first in time; the second times out, is tried again, and goes. */
  wait_state(&fx, id, "failing");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double took =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  /* Failing only once the second attempt's timeout has passed. */
  assert_true(took * 1000 >= 2 * WH_DELIVERY_TIMEOUT_MS - 1500 - 200);
  struct cd_response *r;
  yajl_val v = listed(&fx, id, &r);
  assert_non_null(strstr(member(v, "last_error"), "no answer within"));
  fh_free(r);
  char *m = metrics_text(&fx);
  assert_non_null(
      strstr(m, "contactd_webhook_deliveries_total{outcome=\"ok\"} 1\n"));
  assert_non_null(
      strstr(m, "contactd_webhook_deliveries_total{outcome=\"timeout\"} 1\n"));
  free(m);
  wait_state(&fx, id, "active");
  fh_close(&fx);
  rx_stop(&rx);
}

/* WH_TOTAL_MAX: a server that keeps that many takes no more, from any
 * account, until one goes. */
static void test_webhooks_server_limit(void **state) {
  fh_fixture fx;
  wh_open(&fx, opts_loopback);
  contactd_plugin.destroy(fx.state);
  wh_rec *recs = calloc(WH_TOTAL_MAX, sizeof(*recs));
  const wh_rec **ptrs = calloc(WH_TOTAL_MAX, sizeof(*ptrs));
  assert_non_null(recs);
  assert_non_null(ptrs);
  for (size_t i = 0; i < WH_TOTAL_MAX; i++) {
    assert_int_equal(wh_id_new(recs[i].id), 0);
    recs[i].account = 100 + (uint32_t)(i / WH_PER_ACCOUNT_MAX);
    snprintf(recs[i].url, sizeof(recs[i].url), "http://127.0.0.1:9/");
    recs[i].types = CS_CHANGE_TYPES_ALL;
    ptrs[i] = &recs[i];
  }
  char *buf;
  size_t len;
  cs_error err = {0};
  assert_int_equal(wh_file_encode(ptrs, WH_TOTAL_MAX, &buf, &len), 0);
  assert_int_equal(cs_side_write(fx.store, WH_SIDE_FILE, buf, len, &err), 0);
  free(buf);
  char errbuf[512] = "";
  assert_int_equal(
      contactd_plugin.create(fh_host(), fx.store, &fx.state, errbuf, 512), 0);
  fx.account = 1;
  struct cd_response *r = fh_call(&fx, "POST", "/webhooks", NULL,
                                  "{\"url\": \"http://127.0.0.1/\"}");
  fh_assert_error(r, 400, "too_many_webhooks", NULL);
  fh_free(r);
  assert_int_equal(listed_count(&fx), 0);
  fx.account = 100;
  assert_int_equal(listed_count(&fx), WH_PER_ACCOUNT_MAX);
  char path[64];
  snprintf(path, sizeof(path), "/webhooks/%s", recs[0].id);
  r = fh_call(&fx, "DELETE", path, NULL, NULL);
  assert_int_equal(r->status, 200);
  fh_free(r);
  fx.account = 1;
  char id[WH_ID_BYTES + 1];
  create_hook(&fx, "http://127.0.0.1:9/", NULL, id, NULL);
  free(ptrs);
  free(recs);
  fh_close(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_webhooks_route_table),
      cmocka_unit_test(test_webhooks_create_list_delete),
      cmocka_unit_test(test_webhooks_bad_bodies_change_nothing),
      cmocka_unit_test(test_webhooks_per_account_limit),
      cmocka_unit_test(test_webhooks_accounts_never_meet),
      cmocka_unit_test(test_webhooks_survive_a_restart),
      cmocka_unit_test(test_webhooks_writes_leave_the_worker),
      cmocka_unit_test(test_webhooks_damaged_side_file_stops_the_start),
      cmocka_unit_test(test_webhooks_bad_options_stop_the_start),
      cmocka_unit_test(test_webhooks_failed_write_changes_nothing),
      cmocka_unit_test(test_webhooks_deliver_in_order_signed),
      cmocka_unit_test(test_webhooks_retry_after_errors_keeps_order),
      cmocka_unit_test(test_webhooks_dead_receiver_is_disabled_then_enabled),
      cmocka_unit_test(test_webhooks_delivery_timeout),
      cmocka_unit_test(test_webhooks_server_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
