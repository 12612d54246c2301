/*
 * fuzz_http1.c: HTTP/1.1 framing through h2o and the front end.
 *
 * Goal: no byte stream a client can send (request lines, headers, bodies
 * with Content-Length or chunked, pipelined requests, Expect, upgrades)
 * crashes contactd or makes it answer outside the API's rules (promise 10):
 * every answer is a status line of HTTP/1.x with a status in 100..599, every
 * final answer carries x-request-id, and every error answer (400 and up)
 * has a JSON body, h2o's own refusals included (fe_guard.c); the server
 * keeps serving after each input.
 *
 * Method: at start the real front end runs in this process: fe_server with
 * one worker thread on 127.0.0.1 (a free port), the contacts plugin added
 * from its table, a store with no syncs and the account "default" with one
 * key. Each input is sent as it is over a new loopback connection, with
 * every "$KEY" replaced by that key (so inputs can reach the handlers), the
 * sending side then shut down; the answers are read until the server closes
 * or 5 s pass, and checked one by one. Coverage comes from the worker thread
 * as from any other. A connect that fails means the server died.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cd_plugin.h"
#include "fe_keys.h"
#include "fe_options.h"
#include "fe_plugins.h"
#include "fe_router.h"
#include "fe_server.h"
#include "fuzz_util.h"

extern const cd_plugin contactd_plugin;

#define FZ_ANSWER_WAIT_MS 5000
#define FZ_ANSWER_MAX (4 << 20) /* more than any answer to one input */
#define FZ_INPUT_MAX (256 << 10)

/* Kept here for the life of the process (and so never reported as
 * leaks): the server, its store, keys, routes and plugins. */
static struct {
  int port;
  char key[128];
  char *dir;
  cs_store *store;
  cs_keyring *keys;
  fe_server *srv;
  fe_router *router;
  fe_plugin_set *plugins;
} fz;

static void start_server(void) {
  char *dir = fz.dir = fz_tmpdir();
  char err[512] = "";
  cs_error ce = {0};
  cs_options so = {.durability = CS_DURABILITY_NONE,
                   .no_snapshot_on_close = true};
  fe_options o;
  fe_options_init(&o, dir);
  char *argv[] = {"fuzz_http1", "--listen", "127.0.0.1:0", "--threads",
                  "1",          "--data",   dir,           NULL};
  if (fe_options_parse(&o, 7, argv, err, sizeof err) != 0 ||
      fe_server_create(&o, &fz.srv, err, sizeof err) != 0)
    fz_fail("server: %s", err);
  if (cs_open(dir, &so, &fz.store, &ce) != 0 ||
      cs_keys_open(dir, &fz.keys, &ce) != 0)
    fz_fail("store: %s", ce.msg);
  if (fe_keys_bootstrap(fz.keys, dir, err, sizeof err) != 0 ||
      fe_router_create(&fz.router) != 0 ||
      fe_plugins_create(&fz.plugins) != 0 ||
      fe_plugins_add(fz.plugins, &contactd_plugin, "contacts",
                     fe_server_host(fz.srv), fz.store, fz.router, err,
                     sizeof err) != 0 ||
      fe_server_set_routes(fz.srv, fz.router, fz.keys, fz.store, err,
                           sizeof err) != 0 ||
      fe_server_start(fz.srv, err, sizeof err) != 0)
    fz_fail("server: %s", err);
  size_t klen = 0;
  uint8_t *key = fz_read(dir, "default.key", &klen);
  if (!key || klen == 0 || klen >= sizeof fz.key) fz_fail("no key written");
  memcpy(fz.key, key, klen);
  while (klen && (fz.key[klen - 1] == '\n' || fz.key[klen - 1] == '\r'))
    fz.key[--klen] = 0;
  free(key);
  const char *url = fe_server_listener_url(fz.srv, 0);
  const char *colon = strrchr(url, ':');
  fz.port = colon ? atoi(colon + 1) : 0;
  if (fz.port <= 0) fz_fail("no port in %s", url);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  start_server();
  return 0;
}

/* The input with every "$KEY" replaced by the key; malloc'd. */
static char *with_key(const uint8_t *data, size_t size, size_t *len_out) {
  size_t klen = strlen(fz.key), cap = size * (klen > 4 ? klen / 4 + 1 : 1) + 1;
  char *out = malloc(cap), *w = out;
  if (!out) fz_fail("out of memory");
  for (size_t i = 0; i < size;) {
    if (i + 4 <= size && memcmp(data + i, "$KEY", 4) == 0) {
      memcpy(w, fz.key, klen);
      w += klen;
      i += 4;
    } else {
      *w++ = (char)data[i++];
    }
  }
  *len_out = (size_t)(w - out);
  return out;
}

static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(fz.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0) fz_fail("socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    /* libFuzzer's timer may interrupt the connect, which then goes on in
     * the background: wait for it and take its outcome. */
    int e = errno;
    if (e == EINTR) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      socklen_t elen = sizeof e;
      while (poll(&p, 1, FZ_ANSWER_WAIT_MS) < 0 && errno == EINTR)
        ;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0) e = errno;
    }
    if (e != 0) fz_fail("cannot connect to the server: %s", strerror(e));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Sends what it can while reading answers (a server may answer and close
 * before the whole input is in), then reads until close or the deadline. */
static size_t exchange(int fd, const char *in, size_t in_len, char *out,
                       size_t out_cap) {
  size_t sent = 0, got = 0;
  bool shut = false;
  int waited_ms = 0;
  while (waited_ms < FZ_ANSWER_WAIT_MS) {
    if (sent == in_len && !shut) {
      shutdown(fd, SHUT_WR);
      shut = true;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN | (shut ? 0 : POLLOUT)};
    int n = poll(&p, 1, 50);
    if (n == 0) {
      waited_ms += 50;
      continue;
    }
    if (p.revents & POLLOUT) {
      ssize_t w = send(fd, in + sent, in_len - sent, MSG_NOSIGNAL);
      if (w < 0) {
        sent = in_len; /* the server closed its side: no more to send */
        shut = true;
      } else {
        sent += (size_t)w;
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = recv(fd, out + got, out_cap - got, 0);
      if (r <= 0) break;
      got += (size_t)r;
      if (got == out_cap) break;
    }
  }
  return got;
}

static const char *header_value(const char *head, size_t len, const char *name,
                                size_t *vlen) {
  size_t n = strlen(name);
  for (const char *p = head; p < head + len;) {
    const char *eol = memchr(p, '\n', (size_t)(head + len - p));
    if (!eol) break;
    if ((size_t)(eol - p) > n + 1 && strncasecmp(p, name, n) == 0 &&
        p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ')
        v++;
      *vlen = (size_t)(eol - v) - (eol > v && eol[-1] == '\r');
      return v;
    }
    p = eol + 1;
  }
  return NULL;
}

/* Is p the start of a status line? */
static bool status_line_at(const char *p, size_t n) {
  return n >= 13 &&
         (memcmp(p, "HTTP/1.1 ", 9) == 0 || memcmp(p, "HTTP/1.0 ", 9) == 0) &&
         p[9] >= '1' && p[9] <= '5' && p[12] == ' ';
}

/* Checks every answer in out. An answer to HEAD names the length of a body
 * it does not send; the API's bodies are JSON, never a status line, so an
 * answer whose body would begin with one had none. */
static void check_answers(const char *out, size_t len) {
  size_t at = 0;
  while (at < len) {
    const char *head = out + at;
    const char *end = memmem(head, len - at, "\r\n\r\n", 4);
    FZ_CHECK(end,
             "an answer without the end of its head (%zu of %zu bytes): %.80s",
             len - at, len, head);
    size_t head_len = (size_t)(end - head) + 4;
    FZ_CHECK(head_len > 12 && (memcmp(head, "HTTP/1.1 ", 9) == 0 ||
                               memcmp(head, "HTTP/1.0 ", 9) == 0),
             "not a status line: %.40s", head);
    int status = atoi(head + 9);
    FZ_CHECK(status >= 100 && status <= 599, "status %d", status);
    if (status == 101) return; /* what follows is HTTP/2 (Upgrade: h2c) */
    size_t vlen = 0;
    const char *v;
    if (status >= 200) {
      FZ_CHECK(header_value(head, head_len, "x-request-id", &vlen),
               "an answer %d without x-request-id", status);
      if (status >= 400) {
        v = header_value(head, head_len, "content-type", &vlen);
        FZ_CHECK(v && vlen >= 16 && memcmp(v, "application/json", 16) == 0,
                 "an error %d that is not JSON: %.200s", status, head);
      }
    }
    size_t body = 0;
    v = header_value(head, head_len, "content-length", &vlen);
    if (v) body = strtoull(v, NULL, 10);
    at += head_len;
    if (status_line_at(out + at, len - at)) body = 0;
    at += body < len - at ? body : len - at;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FZ_INPUT_MAX) return 0;
  size_t in_len;
  char *in = with_key(data, size, &in_len);
  static char out[FZ_ANSWER_MAX];
  int fd = dial();
  size_t got = exchange(fd, in, in_len, out, sizeof out);
  close(fd);
  check_answers(out, got);
  free(in);
  /* The server still answers: the next dial fails if it died. */
  return 0;
}
