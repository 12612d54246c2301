/*
 * h2_post.c: an HTTP/2 load generator for requests that differ in their
 * bodies, which h2load cannot make (its -d sends one file as the body of
 * every request). bench_http.sh measures POST /contacts/query with it, on
 * contactd and on the trivial ceiling alike, so both sides of the ratio
 * see the same client.
 *
 *   h2_post --port P --bodies FILE [--host 127.0.0.1] [--path /contacts/query]
 *           [--key KEY] [--threads 2] [--conns 16] [--streams 16]
 *           [--duration 10]
 *
 * FILE holds one request body a line. Like h2load -t -c -m, the threads
 * share the connections out (cleartext HTTP/2 with prior knowledge), each
 * connection keeps --streams requests in flight, and each thread starts at
 * its own place in the list and cycles through it. Every request is a POST
 * with content-type application/json and x-api-key. At the end it prints
 * one line:
 *   requests N ok N non2xx N errors N seconds S rps R p50_ms A p99_ms B
 * where latency runs from the request's submission to its stream's close.
 * Exit 0, 1 when a connection failed, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define H2P_THREADS_MAX 64
#define H2P_CONNS_MAX 1024
#define H2P_STREAMS_MAX 256
#define H2P_READ_BYTES 65536
#define H2P_WRITE_BYTES 65536

typedef struct h2p_opts {
  const char *host, *path, *key, *bodies;
  int port, threads, conns, streams;
  double duration;
} h2p_opts;

typedef struct h2p_body {
  const char *p;
  size_t len;
} h2p_body;

typedef struct h2p_thread h2p_thread;

typedef struct h2p_stream {
  struct h2p_conn *conn;
  const h2p_body *body;
  size_t sent;
  double started;
  int status;
} h2p_stream;

typedef struct h2p_conn {
  h2p_thread *t;
  int fd;
  nghttp2_session *session;
  int in_flight;
  bool dead;
} h2p_conn;

struct h2p_thread {
  const h2p_opts *o;
  const h2p_body *bodies;
  size_t body_count, next;
  pthread_t tid;
  int index;
  h2p_conn conns[H2P_CONNS_MAX];
  int conn_count;
  double end;
  uint64_t ok, non2xx, errors;
  uint32_t *lat_us; /* one per completed request */
  size_t lat_len, lat_cap;
  bool failed;
  char authority[128];
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------ nghttp2 hooks */

static ssize_t on_body_read(nghttp2_session *session, int32_t stream_id,
                            uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *source, void *user) {
  (void)session, (void)stream_id, (void)user;
  h2p_stream *s = source->ptr;
  size_t n = s->body->len - s->sent;
  if (n > length) n = length;
  memcpy(buf, s->body->p + s->sent, n);
  s->sent += n;
  if (s->sent == s->body->len) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user) {
  (void)flags, (void)user;
  if (frame->hd.type != NGHTTP2_HEADERS || namelen != 7 ||
      memcmp(name, ":status", 7) != 0)
    return 0;
  h2p_stream *s =
      nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (s != NULL) {
    int st = 0;
    for (size_t i = 0; i < valuelen; i++)
      st = st * 10 + (value[i] - '0');
    s->status = st;
  }
  return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                   const uint8_t *data, size_t len, void *user) {
  (void)flags, (void)data, (void)user;
  /* The body is read and dropped; its window is given back at once. */
  nghttp2_session_consume(session, stream_id, len);
  return 0;
}

static void submit(h2p_conn *c);

static int on_close(nghttp2_session *session, int32_t stream_id,
                    uint32_t error_code, void *user) {
  h2p_conn *c = user;
  h2p_thread *t = c->t;
  h2p_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
  if (s == NULL) return 0;
  double done = now_s();
  if (error_code != NGHTTP2_NO_ERROR || s->status == 0)
    t->errors++;
  else if (s->status >= 200 && s->status < 300)
    t->ok++;
  else
    t->non2xx++;
  if (t->lat_len == t->lat_cap) {
    size_t cap = t->lat_cap ? t->lat_cap * 2 : 65536;
    uint32_t *p = realloc(t->lat_us, cap * sizeof(uint32_t));
    if (p != NULL) {
      t->lat_us = p;
      t->lat_cap = cap;
    }
  }
  if (t->lat_len < t->lat_cap)
    t->lat_us[t->lat_len++] = (uint32_t)((done - s->started) * 1e6);
  free(s);
  c->in_flight--;
  if (done < t->end) submit(c);
  return 0;
}

#define NV(n, v, vl)                                                           \
  {                                                                            \
    (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl),                       \
        NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE           \
  }

static void submit(h2p_conn *c) {
  h2p_thread *t = c->t;
  const h2p_opts *o = t->o;
  h2p_stream *s = calloc(1, sizeof(*s));
  if (s == NULL) return;
  s->conn = c;
  s->body = &t->bodies[t->next];
  t->next = (t->next + 1) % t->body_count;
  s->started = now_s();
  char length[24];
  int ln = snprintf(length, sizeof(length), "%zu", s->body->len);
  nghttp2_nv hdrs[] = {
      NV(":method", "POST", 4),
      NV(":scheme", "http", 4),
      NV(":authority", t->authority, strlen(t->authority)),
      NV(":path", o->path, strlen(o->path)),
      NV("content-type", "application/json", 16),
      NV("content-length", length, (size_t)ln),
      NV("x-api-key", o->key, strlen(o->key)),
  };
  size_t n = sizeof(hdrs) / sizeof(hdrs[0]);
  if (o->key[0] == '\0') n--;
  /* content-length is copied by nghttp2 only without NO_COPY_VALUE. */
  hdrs[5].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;
  nghttp2_data_provider dp = {.source.ptr = s, .read_callback = on_body_read};
  if (nghttp2_submit_request(c->session, NULL, hdrs, n, &dp, s) < 0) {
    free(s);
    t->errors++;
    return;
  }
  c->in_flight++;
}

/* --------------------------------------------------------- connections */

static int conn_open(h2p_conn *c, h2p_thread *t) {
  const h2p_opts *o = t->o;
  c->t = t;
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)o->port)};
  if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1 ||
      connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
    return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0) return -1;
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  nghttp2_option *opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rc = nghttp2_session_client_new2(&c->session, cb, c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rc != 0) return -1;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)o->streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1u << 30) - 1}};
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                        (1 << 30) - 1);
  for (int i = 0; i < o->streams; i++)
    submit(c);
  return 0;
}

/* Sends n bytes whole (blocking: the peer is on loopback). */
static int send_all(int fd, const uint8_t *p, size_t n) {
  for (size_t off = 0; off < n;) {
    ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  return 0;
}

/* Writes all nghttp2 has to send, gathered into few writes (as h2load
 * does), not one system call per frame. */
static int conn_flush(h2p_conn *c) {
  uint8_t out[H2P_WRITE_BYTES];
  size_t used = 0;
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->session, &data);
    if (n < 0) return -1;
    if (n == 0 || used + (size_t)n > sizeof out) {
      if (used > 0 && send_all(c->fd, out, used) != 0) return -1;
      used = 0;
    }
    if (n == 0) return 0;
    if ((size_t)n > sizeof out) {
      if (send_all(c->fd, data, (size_t)n) != 0) return -1;
    } else {
      memcpy(out + used, data, (size_t)n);
      used += (size_t)n;
    }
  }
}

static void *thread_main(void *arg) {
  h2p_thread *t = arg;
  const h2p_opts *o = t->o;
  snprintf(t->authority, sizeof(t->authority), "%s:%d", o->host, o->port);
  t->next = (size_t)t->index * 7919 % t->body_count;
  t->end = now_s() + o->duration;
  for (int i = 0; i < t->conn_count; i++)
    if (conn_open(&t->conns[i], t) != 0 || conn_flush(&t->conns[i]) != 0) {
      fprintf(stderr, "h2_post: cannot connect to %s:%d\n", o->host, o->port);
      t->failed = true;
      return NULL;
    }
  struct pollfd pfd[H2P_CONNS_MAX];
  uint8_t *buf = malloc(H2P_READ_BYTES);
  if (buf == NULL) {
    t->failed = true;
    return NULL;
  }
  for (;;) {
    int open = 0;
    for (int i = 0; i < t->conn_count; i++) {
      h2p_conn *c = &t->conns[i];
      bool live = !c->dead && c->in_flight > 0;
      pfd[i].fd = live ? c->fd : -1;
      pfd[i].events = POLLIN;
      open += live;
    }
    if (open == 0) break;
    if (poll(pfd, (nfds_t)t->conn_count, 1000) < 0 && errno != EINTR) break;
    for (int i = 0; i < t->conn_count; i++) {
      h2p_conn *c = &t->conns[i];
      if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t n = recv(c->fd, buf, H2P_READ_BYTES, 0);
      if (n <= 0 || nghttp2_session_mem_recv(c->session, buf, (size_t)n) < 0 ||
          conn_flush(c) != 0) {
        if (now_s() < t->end) t->failed = true;
        t->errors += (uint64_t)c->in_flight;
        c->dead = true;
      }
    }
  }
  free(buf);
  for (int i = 0; i < t->conn_count; i++) {
    nghttp2_session_del(t->conns[i].session);
    if (t->conns[i].fd >= 0) close(t->conns[i].fd);
  }
  return NULL;
}

/* ---------------------------------------------------------------- main */

static int by_value(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 20, n = 0;
  char *p = malloc(cap);
  for (size_t r; p != NULL && (r = fread(p + n, 1, cap - n, f)) > 0;) {
    n += r;
    if (n == cap) {
      char *q = realloc(p, cap *= 2);
      if (q == NULL) free(p);
      p = q;
    }
  }
  fclose(f);
  *len = n;
  return p;
}

static int usage(void) {
  fprintf(stderr,
          "usage: h2_post --port P --bodies FILE [--host 127.0.0.1]\n"
          "               [--path /contacts/query] [--key KEY] [--threads 2]\n"
          "               [--conns 16] [--streams 16] [--duration 10]\n");
  return 2;
}

int main(int argc, char **argv) {
  h2p_opts o = {.host = "127.0.0.1",
                .path = "/contacts/query",
                .key = "",
                .threads = 2,
                .conns = 16,
                .streams = 16,
                .duration = 10};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (strcmp(a, "--port") == 0)
      o.port = atoi(v);
    else if (strcmp(a, "--bodies") == 0)
      o.bodies = v;
    else if (strcmp(a, "--host") == 0)
      o.host = v;
    else if (strcmp(a, "--path") == 0)
      o.path = v;
    else if (strcmp(a, "--key") == 0)
      o.key = v;
    else if (strcmp(a, "--threads") == 0)
      o.threads = atoi(v);
    else if (strcmp(a, "--conns") == 0)
      o.conns = atoi(v);
    else if (strcmp(a, "--streams") == 0)
      o.streams = atoi(v);
    else if (strcmp(a, "--duration") == 0)
      o.duration = atof(v);
    else
      return usage();
  }
  if (argc % 2 != 1 || o.port <= 0 || o.bodies == NULL || o.threads < 1 ||
      o.threads > H2P_THREADS_MAX || o.conns < o.threads ||
      o.conns > H2P_CONNS_MAX || o.streams < 1 || o.streams > H2P_STREAMS_MAX ||
      o.duration <= 0)
    return usage();

  size_t len;
  char *text = read_all(o.bodies, &len);
  if (text == NULL) {
    fprintf(stderr, "h2_post: cannot read %s\n", o.bodies);
    return 1;
  }
  size_t count = 0;
  for (size_t i = 0; i < len; i++)
    count += text[i] == '\n';
  h2p_body *bodies = calloc(count + 1, sizeof(*bodies));
  size_t nb = 0;
  for (size_t i = 0; bodies != NULL && i < len;) {
    const char *nl = memchr(text + i, '\n', len - i);
    size_t l = nl != NULL ? (size_t)(nl - (text + i)) : len - i;
    if (l > 0) bodies[nb++] = (h2p_body){text + i, l};
    i += l + 1;
  }
  if (nb == 0) {
    fprintf(stderr, "h2_post: no bodies in %s\n", o.bodies);
    return 1;
  }

  h2p_thread *ts = calloc((size_t)o.threads, sizeof(*ts));
  if (ts == NULL) return 1;
  double t0 = now_s();
  for (int i = 0; i < o.threads; i++) {
    ts[i].o = &o;
    ts[i].bodies = bodies;
    ts[i].body_count = nb;
    ts[i].index = i;
    ts[i].conn_count = o.conns / o.threads + (i < o.conns % o.threads);
    pthread_create(&ts[i].tid, NULL, thread_main, &ts[i]);
  }
  uint64_t ok = 0, non2xx = 0, errors = 0;
  size_t lat = 0;
  bool failed = false;
  for (int i = 0; i < o.threads; i++) {
    pthread_join(ts[i].tid, NULL);
    ok += ts[i].ok;
    non2xx += ts[i].non2xx;
    errors += ts[i].errors;
    lat += ts[i].lat_len;
    failed |= ts[i].failed;
  }
  double secs = now_s() - t0;
  uint32_t *all = malloc((lat + 1) * sizeof(uint32_t));
  size_t k = 0;
  for (int i = 0; all != NULL && i < o.threads; i++) {
    memcpy(all + k, ts[i].lat_us, ts[i].lat_len * sizeof(uint32_t));
    k += ts[i].lat_len;
  }
  if (all != NULL) qsort(all, k, sizeof(uint32_t), by_value);
  double p50 = k ? all[k / 2] / 1000.0 : 0,
         p99 = k ? all[k * 99 / 100] / 1000.0 : 0;
  uint64_t total = ok + non2xx + errors;
  printf("requests %llu ok %llu non2xx %llu errors %llu seconds %.2f rps %.1f "
         "p50_ms %.3f p99_ms %.3f\n",
         (unsigned long long)total, (unsigned long long)ok,
         (unsigned long long)non2xx, (unsigned long long)errors, secs,
         (double)(ok + non2xx) / secs, p50, p99);
  for (int i = 0; i < o.threads; i++)
    free(ts[i].lat_us);
  free(all);
  free(ts);
  free(bodies);
  free(text);
  return failed ? 1 : 0;
}
