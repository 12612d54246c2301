/*
 * bench_feed.c: the change feed over HTTP, each measurement beside a
 * baseline taken in the same run (bench/README.md, "bench_feed").
 *
 * It starts its own contactd (the build's, with the build's plugins, on a
 * loopback port the kernel picks, a temporary data directory, durability
 * fsync unless told otherwise) or uses a running one (--port, --key), and
 * measures:
 *
 *   1. Feed reads. N contacts go in through POST /contacts/batch; then the
 *      whole feed is paged from the oldest change, limit=1000, once with
 *      include=none and once with include=contact (changes a second).
 *      Beside it, the same N contacts paged through search
 *      (searchby=id&match=prefix&search=1: every id has 20 digits and
 *      starts with 1) and through POST /contacts/query {}, limit 1000
 *      (contacts a second). The four passes alternate, one warm-up each,
 *      then medians; on a server of its own every pass must see exactly N.
 *   2. Long-poll wake-up. A reader holds GET /contacts/changes?cursor=<end>
 *      &wait=30 on its own keep-alive connection; once it has sent it, a
 *      writer on another connection waits --park-ms (so that the request
 *      is parked on the server) and creates one contact. The wake-up is the
 *      time from the writer reading its 200 to the reader reading its
 *      answer, both on CLOCK_MONOTONIC in this process; the write's own
 *      latency is the baseline. The reader's page must hold exactly that
 *      contact, at the cursor the write's x-change-cursor named.
 *   3. Durable creates from 64 writers (POST /contacts, keep-alive, each
 *      waiting for its answer) for a fixed time, with each attachment of a
 *      list in turn: nothing (the baseline), long-poll readers that each
 *      follow the whole feed (wait=30, from the cursor they got, default
 *      include), the same readers with include=none (what rendering the
 *      contacts costs), and with --webhooks one and ten webhooks to a
 *      receiver in this process. Rounds interleave the attachments; each
 *      rate is also taken as a ratio to the baseline of its own round;
 *      medians. After a round every reader and webhook must have seen
 *      every create. contactd's CPU time (from /proc) and the bench's own
 *      are taken over each round, per create.
 *   4. With --webhooks: deliveries a second to the receiver (it answers 204
 *      at once) after a burst of creates, for one and for ten webhooks.
 *
 * Every exchange is HTTP/1.1 over a plain blocking socket, one request at a
 * time per connection (as http_load.c does). The bench reads only what it
 * checks (count, next_cursor, has_more, a cursor and an id), from the end
 * of each answer where the top-level members are, so its own work stays
 * small beside the server's. Exit status: 0 when everything was measured
 * (met or not), 1 when something failed (start-up, a request), 2 on bad
 * usage, 3 when an answer was wrong (a count, a missed change).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#ifndef CONTACTD_PATH
#define CONTACTD_PATH "contactd"
#endif
#ifndef CONTACTD_PLUGINS_DIR
#define CONTACTD_PLUGINS_DIR "plugins"
#endif
#ifndef BF_BUILD_TYPE
#define BF_BUILD_TYPE "unknown"
#endif

/* ---------------------------------------------------------------- limits */

#define BF_PAGE_LIMIT 1000 /* CS_PAGE_LIMIT_MAX: the largest page */
#define BF_BATCH_MAX 1000  /* CS_BATCH_MAX: contacts in one batch */
#define BF_LOAD_CONNS 4    /* as http_load: enough for group commit */
/* A generated contact is about 330 bytes of JSON; escapes may double it. */
#define BF_CONTACT_JSON_MAX 2048
#define BF_WRITERS_MAX 512
#define BF_POLLERS_MAX 200
/* The receiver's slots, one per webhook: the largest attachment has 10. */
#define BF_HOOKS_MAX 16
#define BF_ROUNDS_MAX 20
#define BF_RUNS_MAX 50
#define BF_ATTACH_MAX 5
/* The long-poll's wait, seconds. */
#define BF_WAIT_S 30
/* A read that takes longer than any wait (at most 60 s) is a hung server. */
#define BF_RECV_TIMEOUT_S 75
/* Cursors are short opaque strings; anything longer is not one. */
#define BF_CURSOR_MAX 128
/* After the writers stop, readers and webhooks get this long to see every
 * create before the round counts as failed. */
#define BF_CATCH_UP_S 180
/* contactd gets this long to say it listens, and to stop. */
#define BF_START_S 60
#define BF_STOP_S 60
/* Uncounted long-poll rounds before the counted ones. */
#define BF_POLL_WARMUP 20

enum { BF_OK = 0, BF_FAIL = 1, BF_USAGE = 2, BF_WRONG = 3 };

enum {
  BF_ONLY_FEED = 1,
  BF_ONLY_POLL = 2,
  BF_ONLY_CREATES = 4,
  BF_ONLY_HOOKS = 8,
};

typedef struct bf_opts {
  uint64_t count; /* contacts loaded for the feed reads */
  int runs;       /* repetitions of each feed read */
  int rounds;     /* long-poll rounds */
  int park_ms;    /* the writer's pause after the reader sent its poll */
  int writers;
  int pollers;
  double seconds; /* one creates round */
  int create_rounds;
  uint64_t hook_burst;
  bool webhooks;
  int port; /* a running contactd; 0: start one */
  const char *key;
  int hook_port; /* the receiver's port; 0: any free one */
  int threads;   /* contactd --threads; 0: its default */
  const char *durability;
  const char *dir;
  bool keep;
  uint64_t seed;
  unsigned only; /* BF_ONLY_* bits; 0: everything */
} bf_opts;

typedef struct bf_hooks bf_hooks;

/* What every measurement shares. */
typedef struct bf_run {
  const bf_opts *o;
  int port;
  char key[256];
  bool own_server;
  pid_t server_pid; /* 0 when the server is not ours */
  bh_gen *gen;
  char tag[32]; /* in front of every email of this run: unique per run */
  atomic_uint_fast64_t next_contact;
  bf_hooks *hooks;     /* the receiver, or NULL */
  bool hooks_ok;       /* POST /webhooks works */
  char hooks_why[300]; /* why the webhook measurements are skipped */
  int status;          /* the worst BF_* so far */
} bf_run;

static void bf_worse(bf_run *run, int status) {
  if (status > run->status) run->status = status;
}

static void bf_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bf_log(const char *fmt, ...) {
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  char when[16];
  strftime(when, sizeof when, "%H:%M:%S", &tm);
  fprintf(stderr, "[%s] ", when);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static void bf_sleep_ms(double ms) {
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                        .tv_nsec = (long)(fmod(ms, 1000) * 1e6)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* CPU seconds (user and system, all threads) the server has used so far,
 * from /proc/PID/stat; -1 when it is not ours or cannot be read. On a
 * shared machine wall-clock rates move with other work, CPU time per
 * operation much less. */
static double bf_server_cpu_s(const bf_run *run) {
  if (run->server_pid <= 0) return -1;
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)run->server_pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  /* Fields 14 and 15, counted after the command's closing parenthesis
   * (the command may hold spaces). */
  const char *p = strrchr(text, ')');
  unsigned long long utime, stime;
  if (!p || sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
                   "%llu",
                   &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds this process (the bench's clients) has used so far. */
static double bf_self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------- streams */

/* A socket and what has been read from it. Both sides (the client's
 * answers, the receiver's requests) read one message at a time: the bytes
 * of the last message are dropped when the next is read, and whatever came
 * after it is kept. */
typedef struct bf_stream {
  int fd;
  char *buf;
  size_t cap;
  size_t have; /* bytes in buf; buf[have] is a NUL once buf exists */
  size_t used; /* the last message's bytes, dropped at the next read */
} bf_stream;

static void bf_stream_init(bf_stream *s, int fd) {
  memset(s, 0, sizeof *s);
  s->fd = fd;
}

static void bf_stream_free(bf_stream *s) {
  if (s->fd >= 0) close(s->fd);
  free(s->buf);
  bf_stream_init(s, -1);
}

/* Room for want bytes and the NUL. 0, or -1 when out of memory. */
static int bf_stream_reserve(bf_stream *s, size_t want) {
  if (want + 1 <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : 16384;
  while (cap < want + 1)
    cap *= 2;
  char *b = realloc(s->buf, cap);
  if (!b) return -1;
  s->buf = b;
  s->cap = cap;
  return 0;
}

/* Reads what the socket has, at least a byte. 0, or -1 at the end of the
 * stream, on a timeout (SO_RCVTIMEO) or an error. */
static int bf_stream_fill(bf_stream *s) {
  if (bf_stream_reserve(s, s->have + 16384)) return -1;
  ssize_t n;
  do
    n = read(s->fd, s->buf + s->have, s->cap - 1 - s->have);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  s->have += (size_t)n;
  s->buf[s->have] = '\0';
  return 0;
}

static void bf_stream_next(bf_stream *s) {
  if (s->used == 0) return;
  memmove(s->buf, s->buf + s->used, s->have - s->used);
  s->have -= s->used;
  s->used = 0;
  s->buf[s->have] = '\0';
}

/* Reads until mark is in buf at or after from; its offset, or -1. */
static long bf_stream_find(bf_stream *s, size_t from, const char *mark,
                           size_t mark_len) {
  size_t scan = from;
  for (;;) {
    if (s->have >= scan + mark_len) {
      const char *p = memmem(s->buf + scan, s->have - scan, mark, mark_len);
      if (p) return (long)(p - s->buf);
      scan = s->have - mark_len + 1;
    }
    if (bf_stream_fill(s)) return -1;
  }
}

/* Reads until buf holds n bytes. 0, or -1. */
static int bf_stream_want(bf_stream *s, size_t n) {
  if (bf_stream_reserve(s, n)) return -1;
  while (s->have < n)
    if (bf_stream_fill(s)) return -1;
  return 0;
}

/* The value of header name (case-insensitive) in the head_len bytes of a
 * message head, copied into out (cap bytes, cut to fit); false when the
 * head has no such header. */
static bool bf_head_value(const char *head, size_t head_len, const char *name,
                          char *out, size_t cap) {
  size_t nl = strlen(name);
  const char *end = head + head_len;
  const char *line = memchr(head, '\n', head_len); /* past the start line */
  while (line && line + 1 < end) {
    line++;
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) eol = end;
    if ((size_t)(eol - line) > nl && line[nl] == ':' &&
        strncasecmp(line, name, nl) == 0) {
      const char *v = line + nl + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
        ve--;
      size_t n = (size_t)(ve - v) < cap ? (size_t)(ve - v) : cap - 1;
      memcpy(out, v, n);
      out[n] = '\0';
      return true;
    }
    line = eol < end ? eol : NULL;
  }
  return false;
}

/* Reads the head of the next message; its length (to the blank line
 * included), or -1. */
static long bf_read_head(bf_stream *s) {
  bf_stream_next(s);
  long end = bf_stream_find(s, 0, "\r\n\r\n", 4);
  return end < 0 ? -1 : end + 4;
}

/* Reads the body of the message whose head is head_len bytes: by its
 * content-length (none: empty) or, when chunked_ok, chunk by chunk (the
 * chunks stay in buf with their framing: only the receiver takes chunked
 * bodies, and it counts them without reading them). Sets s->used to the
 * message's end and *body_len to the bytes after the head. 0, or -1 (also
 * for a chunked body when !chunked_ok). */
static int bf_read_body(bf_stream *s, size_t head_len, bool chunked_ok,
                        size_t *body_len) {
  char v[64];
  if (bf_head_value(s->buf, head_len, "transfer-encoding", v, sizeof v) &&
      strcasestr(v, "chunked")) {
    if (!chunked_ok) return -1;
    size_t pos = head_len;
    for (;;) {
      long eol = bf_stream_find(s, pos, "\r\n", 2);
      if (eol < 0) return -1;
      unsigned long size = strtoul(s->buf + pos, NULL, 16);
      pos = (size_t)eol + 2;
      if (size == 0) break;
      if (bf_stream_want(s, pos + size + 2)) return -1;
      pos += size + 2;
    }
    for (;;) { /* trailer lines, to the empty one */
      long eol = bf_stream_find(s, pos, "\r\n", 2);
      if (eol < 0) return -1;
      bool empty = (size_t)eol == pos;
      pos = (size_t)eol + 2;
      if (empty) break;
    }
    s->used = pos;
    *body_len = pos - head_len;
    return 0;
  }
  size_t len = 0;
  if (bf_head_value(s->buf, head_len, "content-length", v, sizeof v))
    len = strtoull(v, NULL, 10);
  if (bf_stream_want(s, head_len + len)) return -1;
  s->used = head_len + len;
  *body_len = len;
  return 0;
}

/* Writes every byte of the iov_count buffers. 0, or -1. */
static int bf_writev_all(int fd, struct iovec *iov, int iov_count) {
  while (iov_count > 0) {
    ssize_t n = writev(fd, iov, iov_count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    size_t done = (size_t)n;
    while (iov_count > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      iov++;
      iov_count--;
    }
    if (iov_count > 0) {
      iov->iov_base = (char *)iov->iov_base + done;
      iov->iov_len -= done;
    }
  }
  return 0;
}

/* ----------------------------------------------------------- HTTP client */

typedef struct bf_resp {
  int status;
  const char *head;
  size_t head_len;
  const char *body; /* valid until the stream's next read */
  size_t body_len;
} bf_resp;

/* A keep-alive connection to 127.0.0.1:port, reads timing out after
 * BF_RECV_TIMEOUT_S. 0, or -errno. */
static int bf_connect(bf_stream *s, int port) {
  bf_stream_init(s, -1);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {.tv_sec = BF_RECV_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  s->fd = fd;
  return 0;
}

/* A fresh connection in place of s, which may have been idle longer than
 * the server keeps an idle connection (h2o closes it after seconds). 0,
 * or -errno. */
static int bf_reconnect(bf_stream *s, int port) {
  bf_stream_free(s);
  return bf_connect(s, port);
}

/* Sends one request with the run's key; body may be NULL. 0, or -1. */
static int bf_send(bf_stream *s, const bf_run *run, const char *method,
                   const char *path, const char *body, size_t body_len) {
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
                   "x-api-key: %s\r\n",
                   method, path, run->port, run->key);
  if (n < 0 || (size_t)n >= sizeof head - 96) return -1;
  if (body)
    n += snprintf(head + n, sizeof head - (size_t)n,
                  "content-type: application/json\r\n"
                  "content-length: %zu\r\n",
                  body_len);
  n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
  struct iovec iov[2] = {{head, (size_t)n},
                         {(void *)body, body ? body_len : 0}};
  return bf_writev_all(s->fd, iov, body ? 2 : 1);
}

/* Reads one answer (it must have a content-length). 0, or -1. */
static int bf_recv(bf_stream *s, bf_resp *r) {
  long head_len = bf_read_head(s);
  if (head_len < 0) return -1;
  memset(r, 0, sizeof *r);
  if (sscanf(s->buf, "HTTP/1.%*d %d", &r->status) != 1) return -1;
  size_t body_len;
  if (bf_read_body(s, (size_t)head_len, false, &body_len)) return -1;
  r->head = s->buf;
  r->head_len = (size_t)head_len;
  r->body = s->buf + head_len;
  r->body_len = body_len;
  return 0;
}

static int bf_http(bf_stream *s, const bf_run *run, const char *method,
                   const char *path, const char *body, size_t body_len,
                   bf_resp *r) {
  if (bf_send(s, run, method, path, body, body_len)) return -1;
  return bf_recv(s, r);
}

/* ------------------------------------------------------- reading answers */

/* Just past the last occurrence of key in the body, or NULL. The members
 * a page's reader needs (count, next_cursor, has_more) follow its list, so
 * they are found from the end in a few bytes whatever the page holds. */
static const char *bf_last(const bf_resp *r, const char *key) {
  size_t k = strlen(key);
  if (r->body_len < k) return NULL;
  for (size_t i = r->body_len - k + 1; i-- > 0;)
    if (r->body[i] == key[0] && memcmp(r->body + i, key, k) == 0)
      return r->body + i + k;
  return NULL;
}

/* Just past the first occurrence of key, or NULL. */
static const char *bf_first(const bf_resp *r, const char *key) {
  const char *p = memmem(r->body, r->body_len, key, strlen(key));
  return p ? p + strlen(key) : NULL;
}

/* The string at p (just past a member's colon) into out: 1, or 0 for
 * null, or -1 when it is neither or does not fit. */
static int bf_string_at(const bf_resp *r, const char *p, char *out,
                        size_t cap) {
  const char *end = r->body + r->body_len;
  if (!p) return -1;
  while (p < end && *p == ' ')
    p++;
  if (end - p >= 4 && memcmp(p, "null", 4) == 0) return 0;
  if (p >= end || *p != '"') return -1;
  const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
  if (!q || (size_t)(q - p - 1) >= cap) return -1;
  memcpy(out, p + 1, (size_t)(q - p - 1));
  out[q - p - 1] = '\0';
  return 1;
}

static long long bf_int_at(const char *p) {
  return p ? strtoll(p, NULL, 10) : -1;
}

/* The page's count, or -1. */
static long long bf_count(const bf_resp *r) {
  return bf_int_at(bf_last(r, "\"count\":"));
}

/* Occurrences of key in the body. */
static uint64_t bf_occurrences(const bf_resp *r, const char *key) {
  uint64_t n = 0;
  size_t k = strlen(key);
  const char *p = r->body, *end = r->body + r->body_len;
  while ((p = memmem(p, (size_t)(end - p), key, k)) != NULL) {
    n++;
    p += k;
  }
  return n;
}

/* The first bytes of a body, for a message. */
static const char *bf_excerpt(const bf_resp *r, char *buf, size_t cap) {
  size_t n = r->body_len < cap - 1 ? r->body_len : cap - 1;
  memcpy(buf, r->body, n);
  buf[n] = '\0';
  return buf;
}

/* Percent-encodes s for a query string value. */
static void bf_url_encode(const char *s, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;
  for (; *s && n + 4 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out[n++] = (char)c;
    } else {
      out[n++] = '%';
      out[n++] = hex[c >> 4];
      out[n++] = hex[c & 15];
    }
  }
  out[n] = '\0';
}

/* -------------------------------------------------------------- contacts */

/* Appends s as a JSON string; NULL when it does not fit before end. */
static char *bf_json_string(char *p, char *end, const char *s) {
  if (end - p < 2) return NULL;
  *p++ = '"';
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (end - p < 8) return NULL;
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      p += sprintf(p, "\\u%04x", c);
    } else {
      *p++ = (char)c;
    }
  }
  if (end - p < 1) return NULL;
  *p++ = '"';
  return p;
}

/* The create body of generated contact i, its email behind the run's tag
 * (so that a second run against the same store makes no duplicate).
 * Returns the end of what was written, or NULL. */
static char *bf_contact_body(const bf_run *run, uint64_t i, char *p,
                             char *end) {
  bh_contact c;
  bh_gen_contact(run->gen, i, &c);
  char email[sizeof c.email + sizeof run->tag];
  snprintf(email, sizeof email, "%s%s", run->tag, c.email);
  const char *values[BH_FIELDS];
  bh_contact_values(&c, values);
  for (size_t f = 0; f < BH_FIELDS; f++) {
    if (end - p < 32) return NULL;
    p += sprintf(p, "%s\"%s\":", f == 0 ? "{" : ",", bh_field_names[f]);
    const char *v = strcmp(bh_field_names[f], "email") == 0 ? email : values[f];
    if ((p = bf_json_string(p, end, v)) == NULL) return NULL;
  }
  if (end - p < 1) return NULL;
  *p++ = '}';
  return p;
}

/* ---------------------------------------------------------------- loading */

typedef struct bf_load {
  bf_run *run;
  uint64_t first; /* contact numbers first .. first + count - 1 */
  uint64_t count;
  atomic_uint_fast64_t next_batch;
  atomic_uint_fast64_t stored;
  atomic_int failed;
} bf_load;

static void *bf_load_main(void *arg) {
  bf_load *l = arg;
  bf_stream s;
  char *req = malloc((size_t)BF_BATCH_MAX * BF_CONTACT_JSON_MAX + 64);
  if (!req || bf_connect(&s, l->run->port)) {
    fprintf(stderr, "bench_feed: load: cannot connect\n");
    atomic_store(&l->failed, 1);
    free(req);
    return NULL;
  }
  char *end = req + (size_t)BF_BATCH_MAX * BF_CONTACT_JSON_MAX + 60;
  uint64_t batches = (l->count + BF_BATCH_MAX - 1) / BF_BATCH_MAX;
  for (;;) {
    uint64_t b = atomic_fetch_add(&l->next_batch, 1);
    if (b >= batches || atomic_load(&l->failed)) break;
    uint64_t from = b * BF_BATCH_MAX;
    uint64_t to =
        from + BF_BATCH_MAX < l->count ? from + BF_BATCH_MAX : l->count;
    char *p = req + sprintf(req, "{\"contacts\":[");
    for (uint64_t i = from; i < to && p; i++) {
      if (i > from) *p++ = ',';
      p = bf_contact_body(l->run, l->first + i, p, end);
    }
    if (!p) {
      fprintf(stderr, "bench_feed: load: a batch does not fit\n");
      atomic_store(&l->failed, 1);
      break;
    }
    p += sprintf(p, "]}");
    bf_resp r;
    if (bf_http(&s, l->run, "POST", "/contacts/batch", req, (size_t)(p - req),
                &r)) {
      fprintf(stderr, "bench_feed: load: the connection failed\n");
      atomic_store(&l->failed, 1);
      break;
    }
    uint64_t ok = bf_occurrences(&r, "{\"id\":");
    if (r.status != 200 || ok != to - from) {
      char ex[300];
      fprintf(stderr, "bench_feed: load: status %d, %llu of %llu stored: %s\n",
              r.status, (unsigned long long)ok, (unsigned long long)(to - from),
              bf_excerpt(&r, ex, sizeof ex));
      atomic_store(&l->failed, 1);
      break;
    }
    atomic_fetch_add(&l->stored, ok);
  }
  bf_stream_free(&s);
  free(req);
  return NULL;
}

/* Creates count new contacts through POST /contacts/batch over
 * BF_LOAD_CONNS connections; *secs is the wall time. 0, or -1. */
static int bf_load_run(bf_run *run, uint64_t count, double *secs) {
  bf_load l = {.run = run, .count = count};
  l.first = atomic_fetch_add(&run->next_contact, count);
  pthread_t tid[BF_LOAD_CONNS];
  int started = 0;
  uint64_t t0 = bh_now_ns();
  for (; started < BF_LOAD_CONNS; started++)
    if (pthread_create(&tid[started], NULL, bf_load_main, &l)) break;
  for (int i = 0; i < started; i++)
    pthread_join(tid[i], NULL);
  *secs = bh_seconds(t0, bh_now_ns());
  return atomic_load(&l.failed) || atomic_load(&l.stored) != count ? -1 : 0;
}

/* -------------------------------------------------------- the feed's end */

/* The feed's end now (GET /contacts/changes?cursor=now): a cursor after
 * which only later writes come. 0, or -1. */
static int bf_feed_end(bf_run *run, bf_stream *s, char *cursor, size_t cap) {
  bf_resp r;
  if (bf_http(s, run, "GET", "/contacts/changes?cursor=now&limit=1", NULL, 0,
              &r) ||
      r.status != 200 ||
      bf_string_at(&r, bf_last(&r, "\"next_cursor\":"), cursor, cap) != 1) {
    fprintf(stderr, "bench_feed: GET /contacts/changes?cursor=now failed\n");
    return -1;
  }
  return 0;
}

/* ----------------------------------------------------- 1. the feed's read */

enum {
  BF_PASS_FEED_NONE,
  BF_PASS_FEED_CONTACT,
  BF_PASS_SEARCH,
  BF_PASS_QUERY,
  BF_PASSES
};

static const char *const bf_pass_names[BF_PASSES] = {
    "feed, include=none", "feed, include=contact",
    "search, searchby=id&match=prefix&search=1", "query {}"};

/* Pages the whole of one pass with limit 1000; *items is what the pages
 * held in all. 0, or -1. */
static int bf_pass(bf_run *run, bf_stream *s, int kind, uint64_t *items,
                   double *secs) {
  char cursor[BF_CURSOR_MAX] = "", enc[3 * BF_CURSOR_MAX], path[512], body[256];
  uint64_t n = 0;
  uint64_t t0 = bh_now_ns();
  for (bool first = true;; first = false) {
    bf_resp r;
    int rc;
    bf_url_encode(cursor, enc, sizeof enc);
    if (kind == BF_PASS_QUERY) {
      int len =
          first
              ? snprintf(body, sizeof body, "{\"limit\":%d}", BF_PAGE_LIMIT)
              : snprintf(body, sizeof body, "{\"limit\":%d,\"cursor\":\"%s\"}",
                         BF_PAGE_LIMIT, cursor);
      rc = bf_http(s, run, "POST", "/contacts/query", body, (size_t)len, &r);
    } else {
      if (kind == BF_PASS_SEARCH)
        snprintf(path, sizeof path,
                 "/contacts?searchby=id&match=prefix&search=1&limit=%d%s%s",
                 BF_PAGE_LIMIT, first ? "" : "&cursor=", first ? "" : enc);
      else
        snprintf(path, sizeof path, "/contacts/changes?limit=%d&include=%s%s%s",
                 BF_PAGE_LIMIT, kind == BF_PASS_FEED_NONE ? "none" : "contact",
                 first ? "" : "&cursor=", first ? "" : enc);
      rc = bf_http(s, run, "GET", path, NULL, 0, &r);
    }
    long long count = rc ? -1 : bf_count(&r);
    if (rc || r.status != 200 || count < 0) {
      char ex[300] = "";
      fprintf(stderr, "bench_feed: %s: status %d: %s\n", bf_pass_names[kind],
              rc ? -1 : r.status, rc ? "no answer" : bf_excerpt(&r, ex, 300));
      return -1;
    }
    n += (uint64_t)count;
    int more = bf_string_at(&r, bf_last(&r, "\"next_cursor\":"), cursor,
                            sizeof cursor);
    if (more < 0) {
      fprintf(stderr, "bench_feed: %s: no next_cursor\n", bf_pass_names[kind]);
      return -1;
    }
    bool has_more;
    if (kind == BF_PASS_FEED_NONE || kind == BF_PASS_FEED_CONTACT) {
      const char *h = bf_last(&r, "\"has_more\":");
      has_more = h && strncmp(h, "true", 4) == 0;
    } else {
      has_more = more == 1;
    }
    if (!has_more) break;
  }
  *secs = bh_seconds(t0, bh_now_ns());
  *items = n;
  return 0;
}

typedef struct bf_feed_result {
  bool measured;
  uint64_t loaded;
  double load_secs;
  double rate[BF_PASSES]; /* medians, items a second */
  uint64_t items[BF_PASSES];
} bf_feed_result;

static int bf_measure_feed(bf_run *run, bf_feed_result *out) {
  const bf_opts *o = run->o;
  bf_log("1. feed reads: loading %llu contacts through POST /contacts/batch",
         (unsigned long long)o->count);
  if (bf_load_run(run, o->count, &out->load_secs)) return BF_FAIL;
  out->loaded = o->count;
  bf_log("   loaded in %.1f s (%.0f contacts/s)", out->load_secs,
         (double)o->count / out->load_secs);
  bf_stream s;
  if (bf_connect(&s, run->port)) return BF_FAIL;
  double rates[BF_PASSES][BF_RUNS_MAX];
  int status = BF_OK;
  for (int rep = -1; rep < o->runs; rep++) { /* -1: the warm-up */
    for (int k = 0; k < BF_PASSES; k++) {
      uint64_t items;
      double secs;
      if (bf_pass(run, &s, k, &items, &secs)) {
        bf_stream_free(&s);
        return BF_FAIL;
      }
      if (run->own_server && items != o->count) {
        fprintf(stderr, "bench_feed: %s saw %llu items, %llu were loaded\n",
                bf_pass_names[k], (unsigned long long)items,
                (unsigned long long)o->count);
        status = BF_WRONG;
      }
      out->items[k] = items;
      if (rep >= 0) rates[k][rep] = (double)items / secs;
      bf_log("   %s%s: %llu items in %.3f s, %.0f/s",
             rep < 0 ? "(warm-up) " : "", bf_pass_names[k],
             (unsigned long long)items, secs, (double)items / secs);
    }
  }
  bf_stream_free(&s);
  for (int k = 0; k < BF_PASSES; k++)
    out->rate[k] = bh_median(rates[k], (size_t)o->runs);
  out->measured = true;
  return status;
}

/* ------------------------------------------------ 2. the long-poll wake-up */

typedef struct bf_reader {
  bf_run *run;
  pthread_t tid;
  bf_stream s;
  sem_t go, sent, done;
  bool quit;
  char cursor[BF_CURSOR_MAX];
  /* The answer, set before done is posted. */
  bool ok; /* an answer came */
  uint64_t answered_ns;
  int status;
  long long count;
  char change_cursor[BF_CURSOR_MAX];
  char change_id[32];
  char next_cursor[BF_CURSOR_MAX];
} bf_reader;

static void *bf_reader_main(void *arg) {
  bf_reader *rd = arg;
  for (;;) {
    sem_wait(&rd->go);
    if (rd->quit) break;
    char enc[3 * BF_CURSOR_MAX], path[512];
    bf_url_encode(rd->cursor, enc, sizeof enc);
    snprintf(path, sizeof path, "/contacts/changes?cursor=%s&wait=%d", enc,
             BF_WAIT_S);
    rd->ok = bf_send(&rd->s, rd->run, "GET", path, NULL, 0) == 0;
    sem_post(&rd->sent);
    bf_resp r;
    rd->change_cursor[0] = rd->change_id[0] = rd->next_cursor[0] = '\0';
    if (rd->ok && bf_recv(&rd->s, &r) == 0) {
      rd->answered_ns = bh_now_ns();
      rd->status = r.status;
      rd->count = bf_count(&r);
      /* The first cursor and id are the first change's (an entry opens
       * with them); what is absent stays empty. */
      bf_string_at(&r, bf_first(&r, "\"cursor\":"), rd->change_cursor,
                   sizeof rd->change_cursor);
      bf_string_at(&r, bf_first(&r, "\"id\":"), rd->change_id,
                   sizeof rd->change_id);
      bf_string_at(&r, bf_last(&r, "\"next_cursor\":"), rd->next_cursor,
                   sizeof rd->next_cursor);
    } else {
      rd->ok = false;
    }
    sem_post(&rd->done);
  }
  return NULL;
}

typedef struct bf_poll_result {
  bool measured;
  int rounds;
  double wake_ms[3]; /* p50, p99, max */
  double write_ms[3];
  double wake_min_ms;
} bf_poll_result;

static int bf_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The p-quantile (0 < p <= 1) of n sorted values: the smallest value with
 * at least p n values at or below it. */
static double bf_quantile(const double *sorted, size_t n, double p) {
  size_t k = (size_t)ceil(p * (double)n);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return sorted[k - 1];
}

static int bf_measure_poll(bf_run *run, bf_poll_result *out) {
  const bf_opts *o = run->o;
  int total = BF_POLL_WARMUP + o->rounds;
  bf_log("2. long-poll wake-up: %d rounds (and %d to warm up), the writer "
         "waiting %d ms after the reader sent its poll",
         o->rounds, BF_POLL_WARMUP, o->park_ms);
  double *wake = calloc((size_t)o->rounds, sizeof *wake);
  double *write = calloc((size_t)o->rounds, sizeof *write);
  bf_reader *rd = calloc(1, sizeof *rd);
  bf_stream ws;
  bf_stream_init(&ws, -1);
  int status = BF_FAIL;
  bool thread = false;
  char *body = malloc(BF_CONTACT_JSON_MAX);
  if (rd) {
    rd->run = run;
    bf_stream_init(&rd->s, -1);
    sem_init(&rd->go, 0, 0);
    sem_init(&rd->sent, 0, 0);
    sem_init(&rd->done, 0, 0);
  }
  if (!wake || !write || !rd || !body) goto out;
  if (bf_connect(&rd->s, run->port) || bf_connect(&ws, run->port)) goto out;
  if (bf_feed_end(run, &ws, rd->cursor, sizeof rd->cursor)) goto out;
  if (pthread_create(&rd->tid, NULL, bf_reader_main, rd)) goto out;
  thread = true;
  status = BF_OK;
  for (int i = 0; i < total; i++) {
    sem_post(&rd->go);
    sem_wait(&rd->sent);
    bf_sleep_ms(o->park_ms);
    char *end = bf_contact_body(run, atomic_fetch_add(&run->next_contact, 1),
                                body, body + BF_CONTACT_JSON_MAX);
    bf_resp r;
    uint64_t t0 = bh_now_ns();
    int rc =
        bf_http(&ws, run, "POST", "/contacts", body, (size_t)(end - body), &r);
    uint64_t t1 = bh_now_ns();
    char id[32] = "", xcursor[BF_CURSOR_MAX] = "";
    if (!rc && r.status == 200) {
      bf_string_at(&r, bf_first(&r, "\"id\":"), id, sizeof id);
      bf_head_value(r.head, r.head_len, "x-change-cursor", xcursor,
                    sizeof xcursor);
    }
    sem_wait(&rd->done);
    if (rc || r.status != 200) {
      fprintf(stderr, "bench_feed: long-poll round %d: the create failed\n", i);
      status = BF_FAIL;
      break;
    }
    if (!rd->ok || rd->status != 200) {
      fprintf(stderr,
              "bench_feed: long-poll round %d: the reader got no page "
              "(status %d)\n",
              i, rd->status);
      status = BF_FAIL;
      break;
    }
    if (rd->count != 1 || strcmp(rd->change_id, id) != 0 ||
        strcmp(rd->change_cursor, xcursor) != 0 || !rd->next_cursor[0]) {
      fprintf(stderr,
              "bench_feed: long-poll round %d: the reader's page has %lld "
              "changes, the first %s at %s; the write made %s at %s\n",
              i, rd->count, rd->change_id, rd->change_cursor, id, xcursor);
      status = BF_WRONG;
      break;
    }
    snprintf(rd->cursor, sizeof rd->cursor, "%s", rd->next_cursor);
    if (i >= BF_POLL_WARMUP) {
      wake[i - BF_POLL_WARMUP] = ((double)rd->answered_ns - (double)t1) / 1e6;
      write[i - BF_POLL_WARMUP] = (double)(t1 - t0) / 1e6;
    }
  }
  if (status == BF_OK) {
    qsort(wake, (size_t)o->rounds, sizeof *wake, bf_cmp_double);
    qsort(write, (size_t)o->rounds, sizeof *write, bf_cmp_double);
    const double ps[3] = {0.50, 0.99, 1.0};
    for (int k = 0; k < 3; k++) {
      out->wake_ms[k] = bf_quantile(wake, (size_t)o->rounds, ps[k]);
      out->write_ms[k] = bf_quantile(write, (size_t)o->rounds, ps[k]);
    }
    out->wake_min_ms = wake[0];
    out->rounds = o->rounds;
    out->measured = true;
    bf_log("   wake-up p50 %.3f ms, p99 %.3f ms, max %.3f ms (min %.3f); "
           "write p50 %.3f ms, p99 %.3f ms, max %.3f ms",
           out->wake_ms[0], out->wake_ms[1], out->wake_ms[2], out->wake_min_ms,
           out->write_ms[0], out->write_ms[1], out->write_ms[2]);
  }
out:
  if (thread) {
    rd->quit = true;
    sem_post(&rd->go);
    pthread_join(rd->tid, NULL);
  }
  if (rd) {
    bf_stream_free(&rd->s);
    sem_destroy(&rd->go);
    sem_destroy(&rd->sent);
    sem_destroy(&rd->done);
  }
  bf_stream_free(&ws);
  free(rd);
  free(wake);
  free(write);
  free(body);
  return status;
}

/* --------------------------------------------------- the webhook receiver */

/* A loopback HTTP/1.1 server that takes webhook deliveries: POST
 * /hook/<slot> with any body (by content-length or chunked), answered 204
 * at once, counted per slot (one slot per webhook). One thread accepts;
 * each connection has a detached thread of its own that closes its socket
 * and leaves the list when the peer goes. */
typedef struct bf_hook_conn {
  struct bf_hook_conn *next;
  bf_hooks *h;
  int fd;
} bf_hook_conn;

struct bf_hooks {
  int listen_fd;
  int port;
  pthread_t accept_tid;
  pthread_mutex_t mu; /* guards conns, live and stopping */
  pthread_cond_t gone;
  bf_hook_conn *conns;
  int live;
  bool stopping;
  atomic_uint_fast64_t delivered[BF_HOOKS_MAX];
  atomic_uint_fast64_t total;
  atomic_uint_fast64_t strays; /* requests that are no delivery to a slot */
  atomic_uint_fast64_t first_ns, last_ns;
};

static void bf_hooks_reset(bf_hooks *h) {
  for (int k = 0; k < BF_HOOKS_MAX; k++)
    atomic_store(&h->delivered[k], 0);
  atomic_store(&h->total, 0);
  atomic_store(&h->first_ns, 0);
  atomic_store(&h->last_ns, 0);
}

static void *bf_hook_conn_main(void *arg) {
  bf_hook_conn *c = arg;
  bf_hooks *h = c->h;
  bf_stream s;
  bf_stream_init(&s, c->fd);
  static const char answer[] = "HTTP/1.1 204 No Content\r\n\r\n";
  static const char answer_close[] =
      "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
  for (;;) {
    long head_len = bf_read_head(&s);
    if (head_len < 0) break;
    int slot = -1;
    if (strncmp(s.buf, "POST /hook/", 11) == 0) slot = atoi(s.buf + 11);
    char v[32];
    bool close_after =
        (bf_head_value(s.buf, (size_t)head_len, "connection", v, sizeof v) &&
         strcasecmp(v, "close") == 0) ||
        memmem(s.buf, (size_t)head_len, " HTTP/1.0\r\n", 11) != NULL;
    size_t body_len;
    if (bf_read_body(&s, (size_t)head_len, true, &body_len)) break;
    uint64_t now = bh_now_ns();
    if (slot >= 0 && slot < BF_HOOKS_MAX) {
      uint_fast64_t none = 0;
      atomic_compare_exchange_strong(&h->first_ns, &none, now);
      atomic_store(&h->last_ns, now);
      atomic_fetch_add(&h->delivered[slot], 1);
      atomic_fetch_add(&h->total, 1);
    } else {
      atomic_fetch_add(&h->strays, 1);
    }
    const char *a = close_after ? answer_close : answer;
    struct iovec iov = {(void *)a, strlen(a)};
    if (bf_writev_all(s.fd, &iov, 1) || close_after) break;
  }
  free(s.buf);
  pthread_mutex_lock(&h->mu);
  close(c->fd);
  for (bf_hook_conn **p = &h->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  h->live--;
  pthread_cond_broadcast(&h->gone);
  pthread_mutex_unlock(&h->mu);
  free(c);
  return NULL;
}

static void *bf_hooks_accept_main(void *arg) {
  bf_hooks *h = arg;
  for (;;) {
    int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break; /* shut down by bf_hooks_stop, or failing */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bf_hook_conn *c = calloc(1, sizeof *c);
    pthread_mutex_lock(&h->mu);
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (!c || h->stopping) {
      close(fd);
      free(c);
    } else {
      *c = (bf_hook_conn){.next = h->conns, .h = h, .fd = fd};
      h->conns = c;
      h->live++;
      if (pthread_create(&tid, &attr, bf_hook_conn_main, c)) {
        h->conns = c->next;
        h->live--;
        close(fd);
        free(c);
      }
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_unlock(&h->mu);
  }
  return NULL;
}

/* Starts the receiver on 127.0.0.1:port (0: a free one). NULL on failure,
 * with the reason printed. */
static bf_hooks *bf_hooks_start(int port) {
  bf_hooks *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->gone, NULL);
  h->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (h->listen_fd < 0 ||
      bind(h->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(h->listen_fd, 128) != 0 ||
      getsockname(h->listen_fd, (struct sockaddr *)&sa, &len) != 0 ||
      pthread_create(&h->accept_tid, NULL, bf_hooks_accept_main, h) != 0) {
    fprintf(stderr, "bench_feed: the webhook receiver on 127.0.0.1:%d: %s\n",
            port, strerror(errno));
    if (h->listen_fd >= 0) close(h->listen_fd);
    free(h);
    return NULL;
  }
  h->port = ntohs(sa.sin_port);
  return h;
}

static void bf_hooks_stop(bf_hooks *h) {
  if (!h) return;
  shutdown(h->listen_fd, SHUT_RDWR); /* wakes the blocked accept */
  pthread_join(h->accept_tid, NULL);
  close(h->listen_fd);
  pthread_mutex_lock(&h->mu);
  h->stopping = true;
  for (bf_hook_conn *c = h->conns; c; c = c->next)
    shutdown(c->fd, SHUT_RDWR);
  while (h->live > 0)
    pthread_cond_wait(&h->gone, &h->mu);
  pthread_mutex_unlock(&h->mu);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->gone);
  free(h);
}

/* POST /webhooks to the receiver's slot; the new webhook's id into id.
 * Returns the answer's status, or -1 when the connection failed; *r is
 * the answer. */
static int bf_hook_create(bf_run *run, bf_stream *s, int slot, char *id,
                          size_t cap, bf_resp *r) {
  char body[128];
  int len =
      snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:%d/hook/%d\"}",
               run->hooks->port, slot);
  if (bf_http(s, run, "POST", "/webhooks", body, (size_t)len, r)) return -1;
  if (r->status == 200 &&
      bf_string_at(r, bf_first(r, "\"id\":"), id, cap) != 1) {
    fprintf(stderr, "bench_feed: POST /webhooks: no id in the answer\n");
    return -1;
  }
  return r->status;
}

static int bf_hook_delete(bf_run *run, bf_stream *s, const char *id) {
  char enc[200], path[256];
  bf_url_encode(id, enc, sizeof enc);
  snprintf(path, sizeof path, "/webhooks/%s", enc);
  bf_resp r;
  if (bf_http(s, run, "DELETE", path, NULL, 0, &r) || r.status != 200) {
    fprintf(stderr, "bench_feed: DELETE %s failed\n", path);
    return -1;
  }
  return 0;
}

/* Whether webhooks can be measured: POST /webhooks to the receiver works
 * (the webhook it makes is deleted again). When not, run->hooks_why says
 * why. */
static void bf_hooks_probe(bf_run *run) {
  bf_stream s;
  if (bf_connect(&s, run->port)) {
    snprintf(run->hooks_why, sizeof run->hooks_why, "cannot connect");
    return;
  }
  char id[64];
  bf_resp r;
  int status = bf_hook_create(run, &s, 0, id, sizeof id, &r);
  if (status == 200) {
    run->hooks_ok = bf_hook_delete(run, &s, id) == 0;
    if (!run->hooks_ok)
      snprintf(run->hooks_why, sizeof run->hooks_why,
               "DELETE /webhooks/{id} failed");
  } else if (status == 404) {
    snprintf(run->hooks_why, sizeof run->hooks_why,
             "POST /webhooks answered 404: this contactd has no webhooks "
             "plugin");
  } else {
    char ex[200] = "";
    snprintf(run->hooks_why, sizeof run->hooks_why,
             "POST /webhooks answered %d: %s (with --port, the receiver's "
             "--hook-port must be in the server's --webhook-allow)",
             status, status < 0 ? "no answer" : bf_excerpt(&r, ex, sizeof ex));
  }
  bf_stream_free(&s);
}

/* -------------------------------------------------------------- writers */

typedef struct bf_writers {
  bf_run *run;
  /* The start gate: each writer connects, counts itself ready and waits
   * for go, so that connecting is not timed. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ready;
  bool go;
  atomic_bool stop;
  atomic_uint_fast64_t created;
  atomic_uint_fast64_t failed;
} bf_writers;

static void *bf_writer_main(void *arg) {
  bf_writers *w = arg;
  bf_run *run = w->run;
  bf_stream s;
  int rc = bf_connect(&s, run->port);
  char body[BF_CONTACT_JSON_MAX];
  pthread_mutex_lock(&w->mu);
  w->ready++;
  pthread_cond_broadcast(&w->cv);
  while (!w->go)
    pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  if (rc) {
    atomic_fetch_add(&w->failed, 1);
    return NULL;
  }
  while (!atomic_load(&w->stop)) {
    char *end = bf_contact_body(run, atomic_fetch_add(&run->next_contact, 1),
                                body, body + sizeof body);
    bf_resp r;
    if (!end ||
        bf_http(&s, run, "POST", "/contacts", body, (size_t)(end - body), &r)) {
      atomic_fetch_add(&w->failed, 1);
      break;
    }
    if (r.status == 200) {
      atomic_fetch_add(&w->created, 1);
    } else if (atomic_fetch_add(&w->failed, 1) == 0) {
      char ex[300];
      fprintf(stderr, "bench_feed: POST /contacts: status %d: %s\n", r.status,
              bf_excerpt(&r, ex, sizeof ex));
    }
  }
  bf_stream_free(&s);
  return NULL;
}

/* Durable creates from o->writers connections for o->seconds: *rate
 * creates a second over the time from the start to the last answer, and
 * *created. 0, or -1 when any create failed. */
static int bf_writers_run(bf_run *run, double *rate, uint64_t *created) {
  const bf_opts *o = run->o;
  bf_writers w = {.run = run};
  pthread_t *tid = calloc((size_t)o->writers, sizeof *tid);
  if (!tid) return -1;
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  int started = 0;
  for (; started < o->writers; started++)
    if (pthread_create(&tid[started], NULL, bf_writer_main, &w)) break;
  bool all = started == o->writers;
  if (!all) {
    fprintf(stderr, "bench_feed: cannot start %d writer threads\n", o->writers);
    atomic_store(&w.stop, true);
  }
  pthread_mutex_lock(&w.mu);
  while (w.ready < started)
    pthread_cond_wait(&w.cv, &w.mu);
  w.go = true;
  pthread_cond_broadcast(&w.cv);
  pthread_mutex_unlock(&w.mu);
  uint64_t t0 = bh_now_ns();
  if (all) bf_sleep_ms(o->seconds * 1000);
  atomic_store(&w.stop, true);
  for (int i = 0; i < started; i++)
    pthread_join(tid[i], NULL);
  double secs = bh_seconds(t0, bh_now_ns());
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  free(tid);
  *created = atomic_load(&w.created);
  *rate = (double)*created / secs;
  return !all || atomic_load(&w.failed) ? -1 : 0;
}

/* ---------------------------------------------------- long-poll followers */

/* A reader that follows the whole feed as a sync client does: GET
 * /contacts/changes?cursor=C&wait=30&limit=1000 (the default include, or
 * include=none), then again from the page's next_cursor, until it is
 * stopped. */
typedef struct bf_poller {
  bf_run *run;
  bool include_none;
  pthread_t tid;
  bf_stream s;
  char cursor[BF_CURSOR_MAX];
  atomic_uint_fast64_t received; /* changes on its pages */
  atomic_uint_fast64_t polls;
  atomic_bool stopping;
  atomic_int failed;
} bf_poller;

static void *bf_poller_main(void *arg) {
  bf_poller *p = arg;
  while (!atomic_load(&p->stopping)) {
    char enc[3 * BF_CURSOR_MAX], path[512];
    bf_url_encode(p->cursor, enc, sizeof enc);
    snprintf(path, sizeof path,
             "/contacts/changes?cursor=%s&wait=%d&limit=%d%s", enc, BF_WAIT_S,
             BF_PAGE_LIMIT, p->include_none ? "&include=none" : "");
    bf_resp r;
    if (bf_http(&p->s, p->run, "GET", path, NULL, 0, &r)) {
      if (!atomic_load(&p->stopping)) {
        fprintf(stderr, "bench_feed: a follower's connection failed\n");
        atomic_store(&p->failed, 1);
      }
      break;
    }
    long long count = bf_count(&r);
    if (r.status != 200 || count < 0 ||
        bf_string_at(&r, bf_last(&r, "\"next_cursor\":"), p->cursor,
                     sizeof p->cursor) != 1) {
      char ex[300];
      fprintf(stderr, "bench_feed: a follower's poll: status %d: %s\n",
              r.status, bf_excerpt(&r, ex, sizeof ex));
      atomic_store(&p->failed, 1);
      break;
    }
    atomic_fetch_add(&p->received, (uint64_t)count);
    atomic_fetch_add(&p->polls, 1);
  }
  return NULL;
}

/* ------------------------------------------------------------ attachments */

/* What is attached to the store while the writers run. The list of
 * measurement 3 is built of these; each kind starts, waits for its
 * followers to see every create, and stops. */
typedef enum bf_attach_kind {
  BF_ATTACH_NONE,
  BF_ATTACH_POLLERS,
  BF_ATTACH_HOOKS,
} bf_attach_kind;

typedef struct bf_attach {
  bf_attach_kind kind;
  int count;
  bool include_none; /* pollers: without the contacts */
  char name[64];
  double rate[BF_ROUNDS_MAX];
  double ratio[BF_ROUNDS_MAX];      /* to the baseline of the same round */
  double catch_up_s[BF_ROUNDS_MAX]; /* writers stopped to all followers done */
  uint64_t polls[BF_ROUNDS_MAX];    /* the followers' polls in all */
  uint64_t created[BF_ROUNDS_MAX];
  double server_cpu_s[BF_ROUNDS_MAX]; /* while the writers ran; -1: unknown */
  double bench_cpu_s[BF_ROUNDS_MAX];
  /* While attached: */
  bf_poller *pollers;
  char hook_ids[BF_HOOKS_MAX][64];
  int hooks_made;
} bf_attach;

static int bf_attach_start(bf_run *run, bf_attach *a, bf_stream *ctl) {
  if (a->kind != BF_ATTACH_NONE && bf_reconnect(ctl, run->port)) return -1;
  if (a->kind == BF_ATTACH_POLLERS) {
    char end[BF_CURSOR_MAX];
    if (bf_feed_end(run, ctl, end, sizeof end)) return -1;
    a->pollers = calloc((size_t)a->count, sizeof *a->pollers);
    if (!a->pollers) return -1;
    for (int i = 0; i < a->count; i++) {
      bf_poller *p = &a->pollers[i];
      p->run = run;
      p->include_none = a->include_none;
      snprintf(p->cursor, sizeof p->cursor, "%s", end);
      if (bf_connect(&p->s, run->port) ||
          pthread_create(&p->tid, NULL, bf_poller_main, p)) {
        fprintf(stderr, "bench_feed: cannot start follower %d\n", i);
        a->count = i; /* the ones started are stopped by bf_attach_stop */
        bf_stream_free(&p->s);
        return -1;
      }
    }
    /* Let the first polls park before the writers start. */
    bf_sleep_ms(50);
  } else if (a->kind == BF_ATTACH_HOOKS) {
    bf_hooks_reset(run->hooks);
    for (int k = 0; k < a->count; k++) {
      bf_resp r;
      if (bf_hook_create(run, ctl, k, a->hook_ids[k], sizeof a->hook_ids[k],
                         &r) != 200) {
        fprintf(stderr, "bench_feed: POST /webhooks failed\n");
        return -1;
      }
      a->hooks_made++;
    }
  }
  return 0;
}

/* How many of the round's changes the slowest follower has seen. */
static uint64_t bf_attach_slowest(const bf_run *run, const bf_attach *a) {
  uint64_t low = UINT64_MAX;
  for (int i = 0; i < a->count; i++) {
    uint64_t n = a->kind == BF_ATTACH_POLLERS
                     ? atomic_load(&a->pollers[i].received)
                     : atomic_load(&run->hooks->delivered[i]);
    if (n < low) low = n;
  }
  return low;
}

/* Waits until every follower has seen created changes; *secs is how long
 * that took. BF_OK, BF_FAIL when a follower failed, or BF_WRONG when one
 * was still short after BF_CATCH_UP_S. */
static int bf_attach_settle(bf_run *run, bf_attach *a, uint64_t created,
                            double *secs) {
  *secs = 0;
  if (a->kind == BF_ATTACH_NONE) return BF_OK;
  uint64_t t0 = bh_now_ns();
  for (;;) {
    if (a->kind == BF_ATTACH_POLLERS)
      for (int i = 0; i < a->count; i++)
        if (atomic_load(&a->pollers[i].failed)) return BF_FAIL;
    if (bf_attach_slowest(run, a) >= created) break;
    if (bh_seconds(t0, bh_now_ns()) > BF_CATCH_UP_S) {
      fprintf(stderr,
              "bench_feed: %s: the slowest follower saw %llu of %llu "
              "changes in %d s\n",
              a->name, (unsigned long long)bf_attach_slowest(run, a),
              (unsigned long long)created, BF_CATCH_UP_S);
      return BF_WRONG;
    }
    bf_sleep_ms(1);
  }
  *secs = bh_seconds(t0, bh_now_ns());
  return BF_OK;
}

/* Stops what bf_attach_start started; the followers' polls into *polls. */
static int bf_attach_stop(bf_run *run, bf_attach *a, bf_stream *ctl,
                          uint64_t *polls) {
  int rc = 0;
  *polls = 0;
  if (a->kind == BF_ATTACH_POLLERS && a->pollers) {
    for (int i = 0; i < a->count; i++) {
      atomic_store(&a->pollers[i].stopping, true);
      shutdown(a->pollers[i].s.fd, SHUT_RDWR); /* ends a held poll */
    }
    for (int i = 0; i < a->count; i++) {
      pthread_join(a->pollers[i].tid, NULL);
      *polls += atomic_load(&a->pollers[i].polls);
      bf_stream_free(&a->pollers[i].s);
    }
    free(a->pollers);
    a->pollers = NULL;
  }
  if (a->hooks_made > 0 && bf_reconnect(ctl, run->port)) rc = -1;
  for (; a->hooks_made > 0 && rc == 0; a->hooks_made--)
    if (bf_hook_delete(run, ctl, a->hook_ids[a->hooks_made - 1])) rc = -1;
  return rc;
}

/* ------------------------------------------ 3. creates with attachments */

static int bf_measure_creates(bf_run *run, bf_attach *list, int n) {
  const bf_opts *o = run->o;
  bf_log("3. durable creates from %d writers, %.0f s a round, %d rounds; "
         "attachments:",
         o->writers, o->seconds, o->create_rounds);
  for (int k = 0; k < n; k++)
    bf_log("   - %s", list[k].name);
  bf_stream ctl;
  if (bf_connect(&ctl, run->port)) return BF_FAIL;
  int status = BF_OK;
  for (int r = 0; r < o->create_rounds && status != BF_FAIL; r++) {
    /* Forward in the first round, backward in the second, and so on, so
     * that a drift of the machine or the store's growth falls on every
     * attachment alike. */
    for (int j = 0; j < n && status != BF_FAIL; j++) {
      bf_attach *a = &list[r % 2 == 0 ? j : n - 1 - j];
      uint64_t created = 0, polls = 0;
      double catch_up = 0;
      a->server_cpu_s[r] = a->bench_cpu_s[r] = -1;
      if (bf_attach_start(run, a, &ctl)) {
        status = BF_FAIL;
      } else {
        double cpu0 = bf_server_cpu_s(run), self0 = bf_self_cpu_s();
        int rc = bf_writers_run(run, &a->rate[r], &created);
        double cpu1 = bf_server_cpu_s(run), self1 = bf_self_cpu_s();
        if (cpu0 >= 0 && cpu1 >= 0) a->server_cpu_s[r] = cpu1 - cpu0;
        a->bench_cpu_s[r] = self1 - self0;
        if (rc) {
          fprintf(stderr, "bench_feed: %s: creates failed\n", a->name);
          status = BF_FAIL;
        } else {
          int st = bf_attach_settle(run, a, created, &catch_up);
          if (st > status) status = st;
        }
      }
      if (bf_attach_stop(run, a, &ctl, &polls)) status = BF_FAIL;
      if (status == BF_FAIL) break;
      a->catch_up_s[r] = catch_up;
      a->polls[r] = polls;
      a->created[r] = created;
      char cpu[32] = "?";
      if (a->server_cpu_s[r] >= 0)
        snprintf(cpu, sizeof cpu, "%.2f s", a->server_cpu_s[r]);
      bf_log("   round %d, %s: %llu creates, %.0f/s; CPU: contactd %s, "
             "the bench %.2f s",
             r + 1, a->name, (unsigned long long)created, a->rate[r], cpu,
             a->bench_cpu_s[r]);
      if (a->kind != BF_ATTACH_NONE)
        bf_log("      every follower had every create %.3f s after the "
               "writers stopped",
               catch_up);
      if (a->kind == BF_ATTACH_POLLERS)
        bf_log("      %llu polls in all, %.1f changes a poll",
               (unsigned long long)polls,
               polls ? (double)created * a->count / (double)polls : 0.0);
    }
    for (int k = 1; k < n; k++)
      list[k].ratio[r] = list[k].rate[r] / list[0].rate[r];
  }
  bf_stream_free(&ctl);
  return status;
}

/* ------------------------------------------------ 4. webhook deliveries */

typedef struct bf_deliver_result {
  bool measured;
  int hooks[2];
  double rate[2];    /* medians, deliveries a second over all webhooks */
  double drain_s[2]; /* medians: the burst's last answer to the last one */
} bf_deliver_result;

static int bf_measure_deliveries(bf_run *run, bf_deliver_result *out) {
  const bf_opts *o = run->o;
  const int sizes[2] = {1, 10};
  double rate[2][BF_ROUNDS_MAX], drain[2][BF_ROUNDS_MAX];
  bf_log("4. webhook deliveries after a burst of %llu creates, %d rounds",
         (unsigned long long)o->hook_burst, o->create_rounds);
  bf_stream ctl;
  if (bf_connect(&ctl, run->port)) return BF_FAIL;
  int status = BF_OK;
  for (int r = 0; r < o->create_rounds && status == BF_OK; r++) {
    for (int k = 0; k < 2 && status == BF_OK; k++) {
      bf_attach a = {.kind = BF_ATTACH_HOOKS, .count = sizes[k]};
      snprintf(a.name, sizeof a.name, "%d webhook%s", sizes[k],
               sizes[k] > 1 ? "s" : "");
      double load_s = 0, settle_s = 0;
      uint64_t polls;
      if (bf_attach_start(run, &a, &ctl) ||
          bf_load_run(run, o->hook_burst, &load_s)) {
        status = BF_FAIL;
      } else {
        status = bf_attach_settle(run, &a, o->hook_burst, &settle_s);
      }
      uint64_t first = atomic_load(&run->hooks->first_ns);
      uint64_t last = atomic_load(&run->hooks->last_ns);
      uint64_t total = atomic_load(&run->hooks->total);
      if (bf_attach_stop(run, &a, &ctl, &polls)) status = BF_FAIL;
      if (status != BF_OK) break;
      rate[k][r] = last > first ? (double)total / bh_seconds(first, last) : 0;
      drain[k][r] = settle_s;
      bf_log("   round %d, %s: %llu deliveries, %.0f/s; the burst took "
             "%.2f s, the last delivery came %.3f s after it",
             r + 1, a.name, (unsigned long long)total, rate[k][r], load_s,
             settle_s);
    }
  }
  bf_stream_free(&ctl);
  if (status != BF_OK) return status;
  for (int k = 0; k < 2; k++) {
    out->hooks[k] = sizes[k];
    out->rate[k] = bh_median(rate[k], (size_t)o->create_rounds);
    out->drain_s[k] = bh_median(drain[k], (size_t)o->create_rounds);
  }
  out->measured = true;
  return BF_OK;
}

/* ---------------------------------------------------------------- server */

typedef struct bf_server {
  pid_t pid; /* 0: none running */
  char work[4096];
  char data[4200];
  char log[4200];
} bf_server;

/* The whole of a small file into buf (cap bytes, cut), NUL-terminated;
 * its length, or -1. */
static long bf_read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t got = read(fd, buf + n, cap - 1 - n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    n += (size_t)got;
  }
  close(fd);
  buf[n] = '\0';
  return (long)n;
}

/* Starts the build's contactd on the work directory, on a port of the
 * kernel's choosing, and fills run->port and run->key from what it prints
 * and writes. With hook_port, it may call the receiver. 0, or -1 with the
 * log printed; *usage_error when contactd refused its options (exit 2). */
static int bf_server_start(bf_server *sv, bf_run *run, int hook_port,
                           bool *usage_error) {
  const bf_opts *o = run->o;
  char threads[16], allow[64];
  const char *argv[20];
  int argc = 0;
  argv[argc++] = CONTACTD_PATH;
  argv[argc++] = "--data";
  argv[argc++] = sv->data;
  argv[argc++] = "--listen";
  argv[argc++] = "127.0.0.1:0";
  argv[argc++] = "--plugins";
  argv[argc++] = CONTACTD_PLUGINS_DIR;
  argv[argc++] = "--durability";
  argv[argc++] = o->durability;
  if (o->threads > 0) {
    snprintf(threads, sizeof threads, "%d", o->threads);
    argv[argc++] = "--threads";
    argv[argc++] = threads;
  }
  if (hook_port > 0) {
    snprintf(allow, sizeof allow, "127.0.0.1:%d", hook_port);
    argv[argc++] = "--webhook-allow";
    argv[argc++] = allow;
  }
  argv[argc] = NULL;
  *usage_error = false;

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(sv->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    /* contactd goes when the bench goes, however it ends. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(CONTACTD_PATH, (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", CONTACTD_PATH, strerror(errno));
    _exit(127);
  }
  sv->pid = pid;
  static char text[65536];
  const char *mark = "listening on http://127.0.0.1:";
  for (int i = 0; i < BF_START_S * 20; i++) {
    bf_sleep_ms(50);
    int wst;
    if (waitpid(pid, &wst, WNOHANG) == pid) {
      sv->pid = 0;
      bf_read_small(sv->log, text, sizeof text);
      *usage_error = WIFEXITED(wst) && WEXITSTATUS(wst) == 2;
      if (!*usage_error)
        fprintf(stderr, "bench_feed: contactd did not start:\n%s", text);
      return -1;
    }
    if (bf_read_small(sv->log, text, sizeof text) < 0) continue;
    const char *p = strstr(text, mark);
    if (!p) continue;
    run->port = atoi(p + strlen(mark));
    char key_path[4300];
    snprintf(key_path, sizeof key_path, "%s/default.key", sv->data);
    long n = bf_read_small(key_path, run->key, sizeof run->key);
    while (n > 0 && (run->key[n - 1] == '\n' || run->key[n - 1] == '\r'))
      run->key[--n] = '\0';
    if (n <= 0) {
      fprintf(stderr, "bench_feed: %s is empty\n", key_path);
      return -1;
    }
    return 0;
  }
  fprintf(stderr, "bench_feed: contactd did not listen within %d s\n",
          BF_START_S);
  return -1;
}

/* SIGTERM, then SIGKILL after BF_STOP_S. */
static void bf_server_stop(bf_server *sv) {
  if (sv->pid <= 0) return;
  kill(sv->pid, SIGTERM);
  for (int i = 0; i < BF_STOP_S * 20; i++) {
    if (waitpid(sv->pid, NULL, WNOHANG) == sv->pid) {
      sv->pid = 0;
      return;
    }
    bf_sleep_ms(50);
  }
  fprintf(stderr, "bench_feed: contactd did not stop in %d s: killed\n",
          BF_STOP_S);
  kill(sv->pid, SIGKILL);
  waitpid(sv->pid, NULL, 0);
  sv->pid = 0;
}

/* ---------------------------------------------------------------- report */

static void bf_loadavg(char *out, size_t cap) {
  char text[128];
  if (bf_read_small("/proc/loadavg", text, sizeof text) < 0) {
    snprintf(out, cap, "?");
    return;
  }
  /* The first three fields. */
  int fields = 0;
  size_t n = 0;
  for (const char *p = text; *p && n + 1 < cap; p++) {
    if (*p == ' ' && ++fields == 3) break;
    out[n++] = *p;
  }
  out[n] = '\0';
}

static void bf_cpu_model(char *out, size_t cap) {
  static char text[65536];
  snprintf(out, cap, "?");
  if (bf_read_small("/proc/cpuinfo", text, sizeof text) < 0) return;
  const char *p = strstr(text, "model name");
  if (!p || !(p = strchr(p, ':'))) return;
  p += 2;
  size_t n = strcspn(p, "\n");
  snprintf(out, cap, "%.*s", (int)n, p);
}

static void bf_contactd_version(const bf_run *run, char *out, size_t cap) {
  snprintf(out, cap, "?");
  if (!run->own_server) {
    snprintf(out, cap, "a running contactd on port %d", run->port);
    return;
  }
  FILE *f = popen(CONTACTD_PATH " --version 2>&1", "r");
  if (!f) return;
  if (fgets(out, (int)cap, f)) out[strcspn(out, "\n")] = '\0';
  pclose(f);
}

static char *bf_fmt_ms(char *buf, size_t cap, double ms) {
  snprintf(buf, cap, "%.3f ms", ms);
  return buf;
}

static char *bf_fmt_percent(char *buf, size_t cap, double r) {
  snprintf(buf, cap, "%.0f%%", r * 100);
  return buf;
}

typedef struct bf_env {
  char date[64];
  char load_before[64];
  char load_after[64];
  double secs;
} bf_env;

static void bf_report(const bf_run *run, const bf_env *env,
                      const bf_feed_result *feed, const bf_poll_result *poll,
                      bf_attach *list, int attach_count,
                      const bf_deliver_result *deliver) {
  const bf_opts *o = run->o;
  char version[256], model[128], a[40], b[40], c[40], m[128];
  struct utsname un;
  uname(&un);
  bf_contactd_version(run, version, sizeof version);
  bf_cpu_model(model, sizeof model);
  printf("date: %s; host: %s, %ld CPUs (%s); load average before: %s, "
         "after: %s; took %.0f s\n",
         env->date, un.release, sysconf(_SC_NPROCESSORS_ONLN), model,
         env->load_before, env->load_after, env->secs);
  if (run->own_server)
    printf("contactd: %s; bench built %s; --durability %s; %s worker "
           "threads\n",
           version, BF_BUILD_TYPE, o->durability,
           o->threads > 0 ? (snprintf(m, sizeof m, "%d", o->threads), m)
                          : "default (one per CPU)");
  else
    printf("contactd: %s, with its own options; bench built %s\n", version,
           BF_BUILD_TYPE);
  if (feed->measured)
    printf("data: %llu contacts loaded through POST /contacts/batch in %.1f "
           "s (%.0f/s, %d connections, %d a batch)\n",
           (unsigned long long)feed->loaded, feed->load_secs,
           (double)feed->loaded / feed->load_secs, BF_LOAD_CONNS, BF_BATCH_MAX);
  printf("\n");

  bh_table t;
  bh_table_init(&t, "measured", "baseline");
  if (feed->measured) {
    static const char *const rows[3] = {
        "feed, include=none (changes/s) vs search by id prefix (contacts/s)",
        "feed, include=contact (changes/s) vs search by id prefix",
        "feed, include=contact (changes/s) vs query {} (contacts/s)"};
    const int ours[3] = {BF_PASS_FEED_NONE, BF_PASS_FEED_CONTACT,
                         BF_PASS_FEED_CONTACT};
    const int base[3] = {BF_PASS_SEARCH, BF_PASS_SEARCH, BF_PASS_QUERY};
    for (int k = 0; k < 3; k++)
      bh_table_add(
          &t, rows[k], bh_fmt_rate(a, sizeof a, feed->rate[ours[k]]),
          bh_fmt_rate(b, sizeof b, feed->rate[base[k]]),
          bh_fmt_ratio(c, sizeof c, feed->rate[ours[k]] / feed->rate[base[k]]),
          NULL, NULL);
  }
  if (poll->measured) {
    static const char *const q[3] = {"p50", "p99", "max"};
    for (int k = 0; k < 3; k++) {
      snprintf(m, sizeof m,
               "long-poll wake-up after the write's 200, %s, vs the write",
               q[k]);
      bool p99 = k == 1;
      bh_table_add(&t, m, bf_fmt_ms(a, sizeof a, poll->wake_ms[k]),
                   bf_fmt_ms(b, sizeof b, poll->write_ms[k]), NULL,
                   p99 ? "< 5 ms" : NULL,
                   p99 ? (poll->wake_ms[1] < 5.0 ? "yes" : "**NO**") : NULL);
    }
  }
  for (int k = 0; k < attach_count; k++) {
    bf_attach *at = &list[k];
    double rate[BF_ROUNDS_MAX], base_rate[BF_ROUNDS_MAX], ratio[BF_ROUNDS_MAX];
    memcpy(rate, at->rate, sizeof rate);
    memcpy(base_rate, list[0].rate, sizeof base_rate);
    memcpy(ratio, at->ratio, sizeof ratio);
    double r = bh_median(rate, (size_t)o->create_rounds);
    snprintf(m, sizeof m, "durable creates, %d writers, %s (creates/s)%s",
             o->writers, at->name, k ? " vs nothing" : "");
    if (k == 0) {
      bh_table_add(&t, m, bh_fmt_rate(a, sizeof a, r), NULL, NULL, NULL, NULL);
    } else {
      double q = bh_median(ratio, (size_t)o->create_rounds);
      bh_table_add(&t, m, bh_fmt_rate(a, sizeof a, r),
                   bh_fmt_rate(b, sizeof b,
                               bh_median(base_rate, (size_t)o->create_rounds)),
                   bf_fmt_percent(c, sizeof c, q), ">= 90%",
                   q >= 0.9 ? "yes" : "**NO**");
    }
  }
  if (deliver->measured) {
    for (int k = 0; k < 2; k++) {
      snprintf(m, sizeof m,
               "webhook deliveries, %d webhook%s (deliveries/s) vs the feed, "
               "include=contact",
               deliver->hooks[k], deliver->hooks[k] > 1 ? "s" : "");
      bool base = feed->measured;
      bh_table_add(
          &t, m, bh_fmt_rate(a, sizeof a, deliver->rate[k]),
          base ? bh_fmt_rate(b, sizeof b, feed->rate[BF_PASS_FEED_CONTACT])
               : NULL,
          base ? bh_fmt_ratio(c, sizeof c,
                              deliver->rate[k] /
                                  feed->rate[BF_PASS_FEED_CONTACT])
               : NULL,
          NULL, NULL);
    }
  }
  bh_table_print(&t, stdout);
  bh_table_free(&t);

  printf("\n");
  if (feed->measured)
    printf("- feed reads: %d runs of each pass after a warm-up, "
           "interleaved, medians; limit %d; every pass saw %llu items.\n",
           o->runs, BF_PAGE_LIMIT,
           (unsigned long long)feed->items[BF_PASS_FEED_NONE]);
  if (poll->measured)
    printf("- long-poll: %d rounds after %d to warm up, one reader and one "
           "writer connection, the writer waiting %d ms after the poll was "
           "sent; fastest wake-up %.3f ms (below 0: the reader had its page "
           "before the writer had its 200).\n",
           poll->rounds, BF_POLL_WARMUP, o->park_ms, poll->wake_min_ms);
  if (attach_count > 0) {
    printf(
        "- creates: %d rounds of %.0f s, attachments in turn (backward in "
        "every second round); ratio: median of each round's rate over the same "
        "round's \"nothing attached\". Per round:",
        o->create_rounds, o->seconds);
    for (int k = 0; k < attach_count; k++) {
      printf(" %s", list[k].name);
      for (int r = 0; r < o->create_rounds; r++)
        printf("%s%.0f", r ? "/" : " ", list[k].rate[r]);
      if (list[k].kind != BF_ATTACH_NONE) {
        double worst = 0;
        for (int r = 0; r < o->create_rounds; r++)
          if (list[k].catch_up_s[r] > worst) worst = list[k].catch_up_s[r];
        printf(" (every follower had every create at most %.3f s after "
               "the writers stopped)",
               worst);
      }
      printf(k + 1 < attach_count ? ";" : ".\n");
    }
    printf("- CPU time per create while the writers ran (medians of the "
           "rounds), contactd / the bench's own clients:");
    for (int k = 0; k < attach_count; k++) {
      double srv[BF_ROUNDS_MAX], self[BF_ROUNDS_MAX];
      for (int r = 0; r < o->create_rounds; r++) {
        double n = list[k].created[r] ? (double)list[k].created[r] : 1;
        srv[r] = list[k].server_cpu_s[r] / n * 1e6;
        self[r] = list[k].bench_cpu_s[r] / n * 1e6;
      }
      double s_us = bh_median(srv, (size_t)o->create_rounds);
      printf(" %s ", list[k].name);
      if (s_us >= 0)
        printf("%.1f", s_us);
      else
        printf("?");
      printf(" / %.1f us%s", bh_median(self, (size_t)o->create_rounds),
             k + 1 < attach_count ? ";" : ".\n");
    }
  }
  if (deliver->measured)
    printf("- deliveries: a burst of %llu creates through POST "
           "/contacts/batch, %d rounds, medians; the last delivery came "
           "%.3f s (1 webhook) and %.3f s (10) after the burst's last "
           "answer.\n",
           (unsigned long long)o->hook_burst, o->create_rounds,
           deliver->drain_s[0], deliver->drain_s[1]);
  if (o->webhooks && !run->hooks_ok)
    printf("- webhooks: skipped: %s.\n", run->hooks_why);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: bench_feed [--count N] [--runs R] [--rounds N] [--park-ms MS]\n"
      "                  [--writers N] [--pollers N] [--seconds S]\n"
      "                  [--create-rounds R] [--webhooks] [--hook-burst N]\n"
      "                  [--hook-port P] [--port P --key KEY] [--threads N]\n"
      "                  [--durability fsync|none] [--dir DIR] [--keep]\n"
      "                  [--seed S] [--only feed|poll|creates|webhooks]...\n"
      "                  [--quick]\n"
      "\n"
      "  --count N         contacts loaded for the feed reads (100000)\n"
      "  --runs R          repetitions of each feed read (5)\n"
      "  --rounds N        long-poll rounds (1000)\n"
      "  --park-ms MS      the writer's pause after the reader sent its\n"
      "                    poll, so that it is held by the server (5)\n"
      "  --writers N       concurrent writers for the creates (64)\n"
      "  --pollers N       long-poll followers attached to the creates (10)\n"
      "  --seconds S       one round of creates (10)\n"
      "  --create-rounds R rounds of creates and of deliveries (3)\n"
      "  --webhooks        also 1 and 10 webhooks attached to the creates,\n"
      "                    and deliveries a second; skipped with a message\n"
      "                    when POST /webhooks answers 404\n"
      "  --hook-burst N    creates whose deliveries are counted (10000)\n"
      "  --hook-port P     the receiver's port (default: a free one; with\n"
      "                    --port it must be in the server's --webhook-allow)\n"
      "  --port P --key K  measure a running contactd instead of starting\n"
      "                    one (its data is kept; counts are not checked)\n"
      "  --threads N       contactd --threads (default: its own)\n"
      "  --durability M    contactd --durability (fsync)\n"
      "  --dir DIR         where the temporary data directory goes (/tmp)\n"
      "  --keep            keep it (data and contactd.log)\n"
      "  --seed S          the data set's seed (42)\n"
      "  --only WHAT       measure only that (repeatable)\n"
      "  --quick           10,000 contacts, 3 runs, 200 rounds, 3 s rounds,\n"
      "                    bursts of 2,000: a smoke test\n"
      "\n"
      "Exit status: 0 measured, 1 failed, 2 bad usage, 3 a wrong answer.\n");
}

/* A whole decimal number from lo to hi into *out; false when it is not. */
static bool bf_number(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

static int bf_parse(bf_opts *o, int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--quick") == 0) {
      o->count = 10000;
      o->runs = 3;
      o->rounds = 200;
      o->seconds = 3;
      o->hook_burst = 2000;
    }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    double v = 0;
#define FLAG(name) (strcmp(a, name) == 0)
#define NUM(name, lo, hi)                                                      \
  (FLAG(name) && i + 1 < argc && bf_number(argv[++i], lo, hi, &v))
    if (FLAG("--quick")) {
    } else if (FLAG("--webhooks")) {
      o->webhooks = true;
    } else if (FLAG("--keep")) {
      o->keep = true;
    } else if (FLAG("--help") || FLAG("-h")) {
      usage(stdout);
      exit(0);
    } else if (NUM("--count", 1, 1e9)) {
      o->count = (uint64_t)v;
    } else if (NUM("--runs", 1, BF_RUNS_MAX)) {
      o->runs = (int)v;
    } else if (NUM("--rounds", 1, 1e7)) {
      o->rounds = (int)v;
    } else if (NUM("--park-ms", 0, 10000)) {
      o->park_ms = (int)v;
    } else if (NUM("--writers", 1, BF_WRITERS_MAX)) {
      o->writers = (int)v;
    } else if (NUM("--pollers", 1, BF_POLLERS_MAX)) {
      o->pollers = (int)v;
    } else if (NUM("--seconds", 0.1, 3600)) {
      o->seconds = v;
    } else if (NUM("--create-rounds", 1, BF_ROUNDS_MAX)) {
      o->create_rounds = (int)v;
    } else if (NUM("--hook-burst", 1, 1e8)) {
      o->hook_burst = (uint64_t)v;
    } else if (NUM("--hook-port", 1, 65535)) {
      o->hook_port = (int)v;
    } else if (NUM("--port", 1, 65535)) {
      o->port = (int)v;
    } else if (NUM("--threads", 1, 1024)) {
      o->threads = (int)v;
    } else if (NUM("--seed", 0, 1e18)) {
      o->seed = (uint64_t)v;
    } else if (FLAG("--key") && i + 1 < argc) {
      o->key = argv[++i];
    } else if (FLAG("--dir") && i + 1 < argc) {
      o->dir = argv[++i];
    } else if (FLAG("--durability") && i + 1 < argc &&
               (strcmp(argv[i + 1], "fsync") == 0 ||
                strcmp(argv[i + 1], "none") == 0)) {
      o->durability = argv[++i];
    } else if (FLAG("--only") && i + 1 < argc) {
      const char *w = argv[++i];
      if (strcmp(w, "feed") == 0)
        o->only |= BF_ONLY_FEED;
      else if (strcmp(w, "poll") == 0)
        o->only |= BF_ONLY_POLL;
      else if (strcmp(w, "creates") == 0)
        o->only |= BF_ONLY_CREATES;
      else if (strcmp(w, "webhooks") == 0)
        o->only |= BF_ONLY_HOOKS;
      else
        return -1;
    } else {
      return -1;
    }
#undef FLAG
#undef NUM
  }
  if ((o->port != 0) != (o->key != NULL)) return -1;
  if (o->only == 0)
    o->only = BF_ONLY_FEED | BF_ONLY_POLL | BF_ONLY_CREATES | BF_ONLY_HOOKS;
  return 0;
}

int main(int argc, char **argv) {
  bf_opts o = {.count = 100000,
               .runs = 5,
               .rounds = 1000,
               .park_ms = 5,
               .writers = 64,
               .pollers = 10,
               .seconds = 10,
               .create_rounds = 3,
               .hook_burst = 10000,
               .durability = "fsync",
               .dir = "/tmp",
               .seed = 42};
  if (bf_parse(&o, argc, argv)) {
    usage(stderr);
    return BF_USAGE;
  }
  signal(SIGPIPE, SIG_IGN);

  bf_run run = {.o = &o};
  bf_server sv = {0};
  bf_feed_result feed = {0};
  bf_poll_result poll = {0};
  bf_deliver_result deliver = {0};
  bf_attach list[BF_ATTACH_MAX];
  int attach_count = 0;
  bf_env env = {0};
  bool work_made = false;

  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(env.date, sizeof env.date, "%Y-%m-%d %H:%M %Z", &tm);
  bf_loadavg(env.load_before, sizeof env.load_before);
  uint64_t t_start = bh_now_ns();
  if (strcmp(BF_BUILD_TYPE, "Release") != 0)
    bf_log("warning: this bench was built %s, not Release", BF_BUILD_TYPE);

  run.gen = bh_gen_create(o.seed);
  if (!run.gen) {
    fprintf(stderr, "bench_feed: out of memory\n");
    return BF_FAIL;
  }
  snprintf(run.tag, sizeof run.tag, "b%x%lx.", (unsigned)getpid(),
           (unsigned long)now & 0xffffff);

  bool want_hooks =
      o.webhooks && (o.only & (BF_ONLY_CREATES | BF_ONLY_HOOKS)) != 0;
  if (want_hooks && !(run.hooks = bf_hooks_start(o.hook_port))) {
    run.status = BF_FAIL;
    goto out;
  }

  if (o.port) {
    run.port = o.port;
    snprintf(run.key, sizeof run.key, "%s", o.key);
  } else {
    snprintf(sv.work, sizeof sv.work, "%s/bench_feed.XXXXXX", o.dir);
    if (!mkdtemp(sv.work)) {
      fprintf(stderr, "bench_feed: mkdtemp %s: %s\n", sv.work, strerror(errno));
      run.status = BF_FAIL;
      goto out;
    }
    work_made = true;
    snprintf(sv.data, sizeof sv.data, "%s/data", sv.work);
    snprintf(sv.log, sizeof sv.log, "%s/contactd.log", sv.work);
    run.own_server = true;
    bool usage_error = false;
    int rc = bf_server_start(&sv, &run, run.hooks ? run.hooks->port : 0,
                             &usage_error);
    if (rc && usage_error && run.hooks) {
      /* This contactd takes no --webhook-allow: no webhooks in it. */
      snprintf(run.hooks_why, sizeof run.hooks_why,
               "this contactd refuses --webhook-allow (no webhook support "
               "in this build)");
      bf_hooks_stop(run.hooks);
      run.hooks = NULL;
      rc = bf_server_start(&sv, &run, 0, &usage_error);
    }
    if (rc) {
      if (usage_error) {
        static char text[65536];
        bf_read_small(sv.log, text, sizeof text);
        fprintf(stderr, "bench_feed: contactd refused its options:\n%s", text);
      }
      run.status = BF_FAIL;
      goto out;
    }
    run.server_pid = sv.pid;
    bf_log("contactd on 127.0.0.1:%d (pid %d), data in %s", run.port,
           (int)sv.pid, sv.data);
  }
  if (run.hooks) {
    bf_hooks_probe(&run);
    if (run.hooks_ok)
      bf_log("webhooks: the receiver is on 127.0.0.1:%d", run.hooks->port);
  }
  if (o.webhooks && !run.hooks_ok && want_hooks)
    bf_log("webhooks: skipped: %s", run.hooks_why);

  if (o.only & BF_ONLY_FEED) {
    int st = bf_measure_feed(&run, &feed);
    bf_worse(&run, st);
    if (st == BF_FAIL) goto report;
  }
  if (o.only & BF_ONLY_POLL) {
    int st = bf_measure_poll(&run, &poll);
    bf_worse(&run, st);
    if (st == BF_FAIL) goto report;
  }
  if (o.only & BF_ONLY_CREATES) {
    memset(list, 0, sizeof list);
    list[attach_count++] =
        (bf_attach){.kind = BF_ATTACH_NONE, .name = "nothing attached"};
    list[attach_count] =
        (bf_attach){.kind = BF_ATTACH_POLLERS, .count = o.pollers};
    snprintf(list[attach_count].name, sizeof list[attach_count].name,
             "%d long-polling readers", o.pollers);
    attach_count++;
    /* The same without the contacts on their pages: how much of what the
     * readers cost is rendering the contacts. */
    list[attach_count] = (bf_attach){
        .kind = BF_ATTACH_POLLERS, .count = o.pollers, .include_none = true};
    snprintf(list[attach_count].name, sizeof list[attach_count].name,
             "%d long-polling readers, include=none", o.pollers);
    attach_count++;
    if (run.hooks_ok) {
      list[attach_count++] =
          (bf_attach){.kind = BF_ATTACH_HOOKS, .count = 1, .name = "1 webhook"};
      list[attach_count++] = (bf_attach){
          .kind = BF_ATTACH_HOOKS, .count = 10, .name = "10 webhooks"};
    }
    int st = bf_measure_creates(&run, list, attach_count);
    bf_worse(&run, st);
    if (st != BF_OK) attach_count = 0; /* not reported: incomplete */
    if (st == BF_FAIL) goto report;
  }
  if ((o.only & BF_ONLY_HOOKS) && run.hooks_ok)
    bf_worse(&run, bf_measure_deliveries(&run, &deliver));

report:
  bf_loadavg(env.load_after, sizeof env.load_after);
  env.secs = bh_seconds(t_start, bh_now_ns());
  bf_report(&run, &env, &feed, &poll, list, attach_count, &deliver);
out:
  bf_server_stop(&sv);
  bf_hooks_stop(run.hooks);
  if (work_made) {
    if (o.keep)
      bf_log("kept %s", sv.work);
    else
      bh_rm_rf(sv.work);
  }
  bh_gen_destroy(run.gen);
  return run.status;
}
