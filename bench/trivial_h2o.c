/*
 * trivial_h2o.c: the ceiling for the HTTP benchmark (bench_http.sh).
 *
 * DESIGN.md holds contactd's get-by-id and one-result search to at least 70%
 * of the requests per second of "a trivial h2o handler (a fixed JSON body)"
 * measured in the same run. This is that handler: every request, whatever
 * its method and path, is answered 200 with one fixed JSON object (shaped
 * and sized like one contact as the API returns it) with content-type and
 * content-length, and nothing else happens.
 *
 * So that only the work behind the handler differs, everything around it is
 * set up as frontend/fe_server.c sets up contactd with h2o 2.2.5's evloop:
 *   - one listening socket (SO_REUSEADDR, non-blocking, SOMAXCONN backlog)
 *     bound before the workers start;
 *   - N worker threads, each with its own evloop and h2o context, each
 *     accepting on its own dup() of the listening socket (the same accept
 *     model, so connections are spread across workers the same way);
 *   - one host "default" with one handler on "/", HTTP/1.1 with keep-alive
 *     and cleartext HTTP/2 (prior knowledge and Upgrade) on the one port,
 *     h2o's defaults for everything else.
 *
 *   trivial_h2o [--listen 127.0.0.1:PORT] [--threads N]
 *
 * Port 0 takes a free port; the chosen one is printed on stderr as
 * "listening on http://ADDR:PORT", as contactd prints it. SIGTERM or SIGINT
 * end the process (nothing is in flight that matters).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "h2o.h"

#define TRIVIAL_THREADS_MAX 64

/* About the size of one generated contact as GET /contacts/{id} returns it. */
static const char body[] =
    "{\"id\":\"10000000000000000001\",\"first_name\":\"Marena\","
    "\"last_name\":\"Kovalsen\",\"email\":\"marena.kovalsen.4711@example.com\","
    "\"phone\":\"+1 (234) 567-8901\",\"company\":\"Northwind Traders\","
    "\"job_title\":\"Account Executive\",\"notes\":\"met at the spring "
    "conference, wants a quote\",\"created_at\":\"2026-11-26T08:58:00.123Z\","
    "\"updated_at\":\"2026-11-26T08:58:00.123Z\"}";

typedef struct worker {
  pthread_t tid;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;
  int listen_fd;
} worker;

static h2o_globalconf_t globalconf;
static h2o_generator_t generator = {NULL, NULL};

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  (void)self;
  static h2o_iovec_t buf = {(char *)body, sizeof(body) - 1};
  req->res.status = 200;
  req->res.reason = "OK";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                 H2O_STRLIT("application/json"));
  req->res.content_length = buf.len;
  h2o_start_response(req, &generator);
  h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
  return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err) {
  if (err != NULL) return;
  worker *w = listener->data;
  h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
  if (sock != NULL) h2o_accept(&w->accept_ctx, sock);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  h2o_context_init(&w->ctx, h2o_evloop_create(), &globalconf);
  w->accept_ctx.ctx = &w->ctx;
  w->accept_ctx.hosts = globalconf.hosts;
  h2o_socket_t *sock = h2o_evloop_socket_create(w->ctx.loop, w->listen_fd,
                                                H2O_SOCKET_FLAG_DONT_READ);
  sock->data = w;
  h2o_socket_read_start(sock, on_accept);
  for (;;)
    h2o_evloop_run(w->ctx.loop, INT32_MAX);
  return NULL;
}

static void usage(FILE *f) {
  fprintf(f, "usage: trivial_h2o [--listen ADDR:PORT] [--threads N]\n"
             "  --listen   default 127.0.0.1:0 (a free port, printed)\n"
             "  --threads  worker threads, default one per online CPU\n");
}

/* Binds and listens on host:port; the socket, or -1 with a message. */
static int bind_listener(const char *host, const char *port) {
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(host, port, &hints, &ai);
  if (rc != 0) {
    fprintf(stderr, "trivial_h2o: %s:%s: %s\n", host, port, gai_strerror(rc));
    return -1;
  }
  int one = 1;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
      listen(fd, SOMAXCONN) != 0) {
    fprintf(stderr, "trivial_h2o: %s:%s: %s\n", host, port, strerror(errno));
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    return -1;
  }
  freeaddrinfo(ai);
  return fd;
}

int main(int argc, char **argv) {
  const char *listen_arg = "127.0.0.1:0";
  long threads = sysconf(_SC_NPROCESSORS_ONLN);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      listen_arg = argv[++i];
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = strtol(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (threads < 1 || threads > TRIVIAL_THREADS_MAX) {
    fprintf(stderr, "trivial_h2o: --threads must be 1 to %d\n",
            TRIVIAL_THREADS_MAX);
    return 2;
  }
  char host[256];
  const char *colon = strrchr(listen_arg, ':');
  if (colon == NULL || (size_t)(colon - listen_arg) >= sizeof(host)) {
    fprintf(stderr, "trivial_h2o: --listen wants ADDR:PORT\n");
    return 2;
  }
  memcpy(host, listen_arg, (size_t)(colon - listen_arg));
  host[colon - listen_arg] = '\0';

  signal(SIGPIPE, SIG_IGN);
  int fd = bind_listener(host, colon + 1);
  if (fd < 0) return 1;

  h2o_config_init(&globalconf);
  globalconf.server_name = h2o_iovec_init(H2O_STRLIT("trivial"));
  h2o_hostconf_t *hostconf = h2o_config_register_host(
      &globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
  h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
  handler->on_req = on_req;

  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char name[64] = "?", serv[8] = "?";
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
    getnameinfo((struct sockaddr *)&ss, sl, name, sizeof(name), serv,
                sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);

  static worker workers[TRIVIAL_THREADS_MAX];
  for (long i = 0; i < threads; i++) {
    workers[i].listen_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (workers[i].listen_fd < 0) {
      fprintf(stderr, "trivial_h2o: dup: %s\n", strerror(errno));
      return 1;
    }
    int rc = pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
    if (rc != 0) {
      fprintf(stderr, "trivial_h2o: pthread_create: %s\n", strerror(rc));
      return 1;
    }
  }
  fprintf(stderr, "trivial_h2o: listening on http://%s:%s (%ld threads)\n",
          name, serv, threads);
  for (long i = 0; i < threads; i++)
    pthread_join(workers[i].tid, NULL);
  return 0;
}
