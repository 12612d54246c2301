/*
 * fe_stream.c: streamed answers (host->stream_begin, stream_write,
 * stream_end): a body of unknown length made by a plugin's own thread
 * (a backup, an export) and sent as it comes, HTTP/1.1 chunked or HTTP/2
 * DATA frames, through h2o's generator (its proceed callback says when
 * the bytes handed over last are written and more may follow).
 *
 * Two threads share a stream: the writer (the plugin's thread) and the
 * request's worker, the only one that ever touches h2o. Between them, under
 * the stream's mutex: the queue of pieces not yet handed to h2o, the count
 * of bytes not yet written to the client (`unsent`: queued and in flight),
 * and the flags below. The writer appends to the queue and wakes the worker
 * with a message on the worker's stream receiver (at most one in the queue
 * per stream: `wake_pending`); it waits on `cv` while `unsent` is past
 * FE_STREAM_BUFFER_BYTES. The worker moves the whole queue to h2o in one
 * h2o_send and keeps those pieces (in flight) until proceed, when it frees
 * them, lowers `unsent` and wakes the writer.
 *
 * Ends. The writer's stream_end sets `ended` and wakes the worker, which
 * sends the last (empty) piece as FINAL, or ERROR when the writer said the
 * body is not whole. The client going away makes h2o call stop (the
 * request is being freed): from then on the worker never touches the
 * request, and the writer's next stream_write returns -1 (`refused`).
 * Server shutdown (fe_stream_abort_all) refuses the writer the same way and
 * ends the body as ERROR. The stream and its response handle are freed on
 * the worker once the writer has ended, h2o is done with the request, and
 * no wake message of the stream is queued.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "h2o.h"

#include "fe_server_int.h"

typedef struct fe_piece {
  struct fe_piece *next;
  size_t len;
  char data[FE_STREAM_PIECE_BYTES];
} fe_piece;

struct cd_stream {
  h2o_generator_t gen; /* first: h2o hands it back to proceed and stop */
  cd_response *res;
  fe_worker *worker;
  h2o_multithread_message_t msg; /* wakes the worker */
  h2o_linklist_t link;           /* in the worker's open_streams */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* Under mu. */
  fe_piece *queue, **queue_tail;
  size_t unsent;     /* queued and in flight */
  bool wake_pending; /* msg is in the worker's queue */
  bool ended, ok;    /* stream_end was called, and how */
  bool refused;      /* stream_write returns -1 from now on */
  bool aborted;      /* the server is stopping: end the body as ERROR */
  /* The worker's own. */
  fe_piece *inflight; /* handed to h2o, until proceed */
  size_t inflight_bytes;
  /* A queue holds at most FE_STREAM_BUFFER_BYTES and one piece more, in
   * full pieces and a last one. */
  h2o_iovec_t vecs[FE_STREAM_BUFFER_BYTES / FE_STREAM_PIECE_BYTES + 3];
  bool started;       /* the head went to h2o (or the client had gone) */
  bool busy;          /* h2o_send done, proceed not yet called */
  bool h2o_done;      /* FINAL or ERROR sent, or stop called: req is gone */
  bool client_gone;   /* stop called, or no request at the start */
  int64_t aborted_ms; /* when fe_stream_abort_all saw it (0: not yet) */
  bool cut;           /* its connection was shut down (fe_stream_reap) */
  uint64_t bytes;     /* body bytes written to the client */
};

static void pieces_free(fe_piece *p) {
  while (p != NULL) {
    fe_piece *next = p->next;
    free(p);
    p = next;
  }
}

/* Under st->mu. */
static void wake(cd_stream *st) {
  if (st->wake_pending) return;
  st->wake_pending = true;
  h2o_multithread_send_message(&st->worker->streams, &st->msg);
}

/* Frees the stream and its response once nobody needs either. Worker. */
static void try_complete(cd_stream *st) {
  pthread_mutex_lock(&st->mu);
  bool done = st->ended && st->h2o_done && !st->wake_pending;
  bool ok = st->ok && !st->aborted && !st->client_gone;
  pthread_mutex_unlock(&st->mu);
  if (!done) return;
  cd_response *res = st->res;
  if (!ok)
    fe_log_line(CD_LOG_INFO, res->request_id,
                st->client_gone ? "streamed answer: the client left before "
                                  "its end"
                                : "streamed answer aborted");
  fe_res_record(res, st->bytes);
  if (h2o_linklist_is_linked(&st->link)) h2o_linklist_unlink(&st->link);
  pieces_free(st->queue);
  pieces_free(st->inflight);
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  res->stream = NULL;
  free(st);
  res->sent = true;
  fe_res_maybe_free(res);
}

/* Hands h2o what is queued, or the end. Worker. */
static void pump(cd_stream *st) {
  if (!st->started || st->h2o_done || st->busy) return;
  h2o_req_t *req = st->res->req;
  pthread_mutex_lock(&st->mu);
  if (st->aborted) {
    pthread_mutex_unlock(&st->mu);
    st->h2o_done = true;
    h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
    return;
  }
  if (st->queue != NULL) {
    /* Every queued piece, as many as vecs holds (all of them, by the
     * bound on a queue; the rest would wait for the next proceed). */
    const size_t cap = sizeof(st->vecs) / sizeof(st->vecs[0]);
    size_t n = 0;
    fe_piece *last = NULL;
    for (fe_piece *p = st->queue; p != NULL && n < cap; p = p->next, n++)
      last = p;
    st->inflight = st->queue;
    st->queue = last->next;
    last->next = NULL;
    if (st->queue == NULL) st->queue_tail = &st->queue;
    pthread_mutex_unlock(&st->mu);
    n = 0;
    st->inflight_bytes = 0;
    for (fe_piece *p = st->inflight; p != NULL; p = p->next) {
      st->vecs[n++] = h2o_iovec_init(p->data, p->len);
      st->inflight_bytes += p->len;
    }
    st->busy = true;
    h2o_send(req, st->vecs, n, H2O_SEND_STATE_IN_PROGRESS);
    return;
  }
  bool ended = st->ended, ok = st->ok;
  pthread_mutex_unlock(&st->mu);
  if (!ended) return;
  st->h2o_done = true;
  h2o_send(req, NULL, 0, ok ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_ERROR);
}

/* The bytes handed over last are written: free them, let the writer on. */
static void on_proceed(h2o_generator_t *gen, h2o_req_t *req) {
  cd_stream *st = (cd_stream *)gen;
  fe_piece *done = st->inflight;
  st->inflight = NULL;
  st->bytes += st->inflight_bytes;
  pthread_mutex_lock(&st->mu);
  st->unsent -= st->inflight_bytes;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
  st->inflight_bytes = 0;
  st->busy = false;
  pieces_free(done);
  pump(st);
  try_complete(st);
}

/* h2o is freeing the request (the client went away): never touch it again,
 * and refuse the writer. */
static void on_stop(h2o_generator_t *gen, h2o_req_t *req) {
  cd_stream *st = (cd_stream *)gen;
  pieces_free(st->inflight);
  st->inflight = NULL;
  st->busy = false;
  st->client_gone = true;
  st->h2o_done = true;
  /* The request is half freed now: the stream is completed from the
   * worker's loop, by this wake or the writer's stream_end. */
  pthread_mutex_lock(&st->mu);
  st->refused = true;
  st->unsent -= st->inflight_bytes;
  pthread_cond_broadcast(&st->cv);
  wake(st);
  pthread_mutex_unlock(&st->mu);
  st->inflight_bytes = 0;
}

static void on_wake(h2o_multithread_receiver_t *receiver,
                    h2o_linklist_t *messages) {
  fe_worker *w = H2O_STRUCT_FROM_MEMBER(fe_worker, streams, receiver);
  while (!h2o_linklist_is_empty(messages)) {
    h2o_multithread_message_t *msg =
        H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
    h2o_linklist_unlink(&msg->link);
    if (msg == &w->abort_msg) {
      fe_stream_abort_all(w);
      continue;
    }
    cd_stream *st = H2O_STRUCT_FROM_MEMBER(cd_stream, msg, msg);
    pthread_mutex_lock(&st->mu);
    st->wake_pending = false;
    pthread_mutex_unlock(&st->mu);
    pump(st);
    try_complete(st);
  }
}

void fe_stream_worker_init(fe_worker *w) {
  h2o_linklist_init_anchor(&w->open_streams);
  h2o_multithread_register_receiver(w->ctx.queue, &w->streams, on_wake);
}

void fe_stream_abort_all(fe_worker *w) {
  h2o_linklist_t *node = w->open_streams.next;
  while (node != &w->open_streams) {
    cd_stream *st = H2O_STRUCT_FROM_MEMBER(cd_stream, link, node);
    node = node->next; /* try_complete may unlink st */
    pthread_mutex_lock(&st->mu);
    st->aborted = true;
    st->refused = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (st->aborted_ms == 0) st->aborted_ms = fe_now_ms();
    pump(st);
    try_complete(st);
  }
}

void fe_stream_reap(fe_worker *w) {
  int64_t now = fe_now_ms();
  for (h2o_linklist_t *node = w->open_streams.next; node != &w->open_streams;
       node = node->next) {
    cd_stream *st = H2O_STRUCT_FROM_MEMBER(cd_stream, link, node);
    if (st->aborted_ms == 0 || st->cut || !st->busy || st->h2o_done ||
        now - st->aborted_ms < FE_STREAM_ABORT_GRACE_MS)
      continue;
    /* The client stopped reading: the bytes in flight will never be
     * written. Shutting the socket down makes h2o's write fail, and h2o
     * then closes the connection as if the client had left. */
    h2o_req_t *req = st->res->req;
    h2o_socket_t *sock = req != NULL && req->conn->callbacks->get_socket != NULL
                             ? req->conn->callbacks->get_socket(req->conn)
                             : NULL;
    st->cut = true;
    if (sock != NULL) {
      fe_log_line(CD_LOG_WARN, st->res->request_id,
                  "streamed answer: the client reads nothing; its connection "
                  "is closed");
      shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    }
  }
}

void fe_stream_start(cd_response *res) {
  cd_stream *st = res->stream;
  fe_worker *w = st->worker;
  h2o_linklist_insert(&w->open_streams, &st->link);
  st->started = true;
  pthread_mutex_lock(&st->mu);
  if (atomic_load(&w->srv->streams_aborted)) st->aborted = st->refused = true;
  bool no_body = res->req == NULL || res->is_head;
  if (no_body) st->refused = true;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
  if (res->req == NULL) {
    st->client_gone = st->h2o_done = true;
    try_complete(st);
    return;
  }
  h2o_req_t *req = res->req;
  fe_res_head(res);
  req->res.content_length = SIZE_MAX; /* chunked over HTTP/1.1 */
  h2o_start_response(req, &st->gen);
  if (res->is_head) {
    st->h2o_done = true;
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
  } else {
    /* The head goes out now, before the first byte of the body. */
    st->busy = true;
    h2o_send(req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
  }
  try_complete(st);
}

cd_stream *fe_stream_begin(cd_response *res, int status,
                           const char *content_type) {
  if (res == NULL) return NULL;
  const cd_host *host = &res->worker->srv->host;
  if (atomic_load(&res->answered)) {
    fe_log_line(CD_LOG_ERROR, res->request_id,
                "plugin bug: stream_begin after the answer");
    return NULL;
  }
  cd_stream *st = calloc(1, sizeof(*st));
  char *ct = content_type != NULL ? strdup(content_type) : NULL;
  if (status < 100 || status > 599 || st == NULL ||
      (content_type != NULL && ct == NULL)) {
    free(st);
    free(ct);
    fe_log_line(CD_LOG_ERROR, res->request_id,
                status < 100 || status > 599
                    ? "plugin bug: stream_begin with a bad status"
                    : "stream_begin: out of memory");
    host->error(res, 500, "internal", "internal error", NULL, 0);
    return NULL;
  }
  if (atomic_exchange(&res->answered, 1) != 0) {
    free(st);
    free(ct);
    fe_log_line(CD_LOG_ERROR, res->request_id,
                "plugin bug: stream_begin after the answer");
    return NULL;
  }
  st->gen.proceed = on_proceed;
  st->gen.stop = on_stop;
  st->res = res;
  st->worker = res->worker;
  st->queue_tail = &st->queue;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  res->status = status;
  res->content_type = ct;
  res->stream = st;
  if (pthread_equal(pthread_self(), res->worker->tid))
    fe_stream_start(res);
  else
    h2o_multithread_send_message(&res->worker->answers, &res->msg);
  return st;
}

int fe_stream_write(cd_stream *st, const void *data, size_t len) {
  if (st == NULL) return -1;
  const char *p = data;
  int rc = 0;
  pthread_mutex_lock(&st->mu);
  while (rc == 0 && len > 0) {
    while (!st->refused && st->unsent > FE_STREAM_BUFFER_BYTES)
      pthread_cond_wait(&st->cv, &st->mu);
    if (st->refused) {
      rc = -1;
      break;
    }
    fe_piece *tail =
        st->queue_tail == &st->queue
            ? NULL
            : H2O_STRUCT_FROM_MEMBER(fe_piece, next, st->queue_tail);
    if (tail == NULL || tail->len == FE_STREAM_PIECE_BYTES) {
      tail = malloc(sizeof(*tail));
      if (tail == NULL) {
        fe_log_line(CD_LOG_ERROR, st->res->request_id,
                    "streamed answer: out of memory");
        rc = -1;
        break;
      }
      tail->next = NULL;
      tail->len = 0;
      *st->queue_tail = tail;
      st->queue_tail = &tail->next;
    }
    size_t n = FE_STREAM_PIECE_BYTES - tail->len;
    if (n > len) n = len;
    memcpy(tail->data + tail->len, p, n);
    tail->len += n;
    st->unsent += n;
    p += n;
    len -= n;
    wake(st);
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

void fe_stream_end(cd_stream *st, bool ok) {
  if (st == NULL) return;
  pthread_mutex_lock(&st->mu);
  st->ended = true;
  st->ok = ok;
  wake(st);
  pthread_mutex_unlock(&st->mu);
}

void fe_server_abort_streams(fe_server *s) {
  if (s == NULL || !s->started || s->stopped) return;
  atomic_store(&s->streams_aborted, true);
  for (size_t i = 0; i < s->worker_count; i++)
    h2o_multithread_send_message(&s->workers[i].streams,
                                 &s->workers[i].abort_msg);
}
