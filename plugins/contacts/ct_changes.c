/*
 * ct_changes.c: GET /contacts/changes, the change feed (API.md "Changes"),
 * and its long-poll.
 *
 * A read is cs_changes_read after the cursor, rendered with each change's
 * contact as it is now (cs_get). When it finds nothing and wait is given,
 * the request becomes a waiter: the handler returns CD_ASYNC and the
 * feed's one thread answers it later, when a commit makes the feed's end
 * pass the end the waiter last saw (the store's commit watcher kicks the
 * thread: it never polls), or at its deadline with an empty page.
 *
 * Threads and the lock: mu guards the waiter list, kicked, stop and
 * draining. The commit watcher only takes mu to set kicked and signal.
 * The thread takes the whole list out under mu, reads and answers without
 * it (a read takes the store's index lock, a render calls cs_get), and
 * puts back the waiters still waiting. A waiter belongs to the list or to
 * the thread, never to both.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct.h"

/* What one read of the feed asks. */
typedef struct ct_changes_q {
  uint32_t account;
  uint64_t after;
  unsigned types; /* 0: every type */
  uint32_t limit;
  bool with_contact;
} ct_changes_q;

typedef struct ct_waiter {
  struct ct_waiter *next;
  cd_response *res;
  cs_store *store;
  ct_changes_q q;
  uint64_t seen_end;        /* the feed's end when it last read nothing */
  struct timespec deadline; /* CLOCK_MONOTONIC */
} ct_waiter;

struct ct_feed {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* on CLOCK_MONOTONIC */
  ct_waiter *waiters;
  uint32_t waiting; /* in the list or in the thread's hands */
  bool kicked;      /* a commit or a new waiter since the thread looked */
  bool stop;
  bool draining;
  bool thread_started;
  bool watching;
  pthread_t thread;
  uint64_t wakeups; /* kicks by commits, for the metrics */
};

/* ------------------------------------------------------------ parameters */

/* types: a comma list of change type words. 0 or -1 with *e. */
static int ct_types_parse(const char *s, size_t len, unsigned *out, ct_err *e) {
  unsigned m = 0;
  size_t i = 0;
  do {
    size_t j = i;
    while (j < len && s[j] != ',')
      j++;
    int t = cs_change_type_from_name(s + i, j - i);
    if (t < 0)
      return ct_fail(e, 400, "invalid_field", "types", 5,
                     "types: a comma list of created, updated, deleted, "
                     "restored, purged");
    m |= 1u << t;
    i = j + 1;
  } while (i <= len);
  *out = m;
  return 0;
}

static bool ct_is(const cd_pair *p, const char *name) {
  return p->name_len == strlen(name) && !memcmp(p->name, name, p->name_len);
}

/* The query string into *q and *wait_s; the cursor is resolved against
 * store (absent: the oldest kept; "now": the end). Unknown parameters are
 * ignored, as in search. 0, or -1 with *e. */
static int ct_changes_params(const cd_request *req, cs_store *store,
                             ct_changes_q *q, unsigned *wait_s, ct_err *e) {
  static const char *const names[] = {"cursor", "limit", "wait", "types",
                                      "include"};
  enum { P_CURSOR, P_LIMIT, P_WAIT, P_TYPES, P_INCLUDE, P_COUNT };
  const cd_pair *given[P_COUNT] = {NULL};
  for (size_t i = 0; i < req->query_count; i++) {
    for (int k = 0; k < P_COUNT; k++) {
      if (!ct_is(&req->query[i], names[k])) continue;
      if (given[k])
        return ct_fail(e, 400, "duplicate_field", names[k], strlen(names[k]),
                       "%s: given more than once", names[k]);
      given[k] = &req->query[i];
    }
  }
  *q = (ct_changes_q){.account = req->account,
                      .limit = CS_PAGE_LIMIT_DEFAULT,
                      .with_contact = true};
  *wait_s = 0;
#define VAL(k) (given[k]->value ? given[k]->value : ""), given[k]->value_len
  if (given[P_LIMIT] && ct_parse_limit(VAL(P_LIMIT), &q->limit))
    return ct_fail(e, 400, "invalid_field", "limit", 5,
                   "limit: must be an integer from 1 to %d", CS_PAGE_LIMIT_MAX);
  uint64_t w = 0;
  if (given[P_WAIT] &&
      cs_decimal_parse(VAL(P_WAIT), 0, CS_CHANGES_WAIT_MAX_S, &w))
    return ct_fail(e, 400, "invalid_field", "wait", 4,
                   "wait: must be an integer from 0 to %d seconds",
                   CS_CHANGES_WAIT_MAX_S);
  *wait_s = (unsigned)w;
  if (given[P_TYPES] && ct_types_parse(VAL(P_TYPES), &q->types, e)) return -1;
  if (given[P_INCLUDE]) {
    const cd_pair *p = given[P_INCLUDE];
    if (p->value_len == 4 && !memcmp(p->value, "none", 4))
      q->with_contact = false;
    else if (!(p->value_len == 7 && !memcmp(p->value, "contact", 7)))
      return ct_fail(e, 400, "invalid_field", "include", 7,
                     "include: must be contact or none");
  }
  if (!given[P_CURSOR]) {
    q->after = cs_changes_oldest(store, req->account);
  } else if (given[P_CURSOR]->value_len == 3 &&
             !memcmp(given[P_CURSOR]->value, "now", 3)) {
    q->after = cs_changes_end(store);
  } else if (ct_change_cursor_parse(VAL(P_CURSOR), &q->after)) {
    return ct_fail(e, 400, "invalid_cursor", "cursor", 6,
                   "cursor: not a cursor this server handed out");
  }
#undef VAL
  return 0;
}

/* ------------------------------------------------------------- answering */

/* Sends the page of the changes in v. With keep, the generator holding
 * the page is left in *keep for the caller to send again and free. */
static void ct_changes_send(const ct_state *st, cd_response *res,
                            cs_store *store, const ct_changes_q *q,
                            const cs_change *v, const cs_changes *got,
                            yajl_gen *keep) {
  yajl_gen g = ct_gen_new();
  if (!g) return ct_send_oom(st, res);
  yajl_gen_map_open(g);
  ct_gen_str(g, "changes", 7);
  yajl_gen_array_open(g);
  for (uint32_t i = 0; i < got->count; i++) {
    cs_contact c;
    const cs_contact *now = NULL;
    if (q->with_contact) {
      cs_error err = {0};
      int rc = cs_get(store, q->account, v[i].id, &c, &err);
      if (rc && rc != CS_ENOTFOUND) {
        yajl_gen_free(g);
        return ct_send_rc(st, res, "changes", rc, &err);
      }
      if (!rc) now = &c;
    }
    ct_gen_change(g, &v[i], now, q->with_contact);
  }
  yajl_gen_array_close(g);
  char cursor[CT_CHANGE_CURSOR_CHARS + 1];
  ct_change_cursor_format(got->next, cursor);
  ct_gen_str(g, "count", 5);
  yajl_gen_integer(g, got->count);
  ct_gen_str(g, "next_cursor", 11);
  ct_gen_str(g, cursor, strlen(cursor));
  ct_gen_str(g, "has_more", 8);
  yajl_gen_bool(g, got->more);
  yajl_gen_map_close(g);
  const unsigned char *buf;
  size_t len;
  if (keep && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
    st->host->respond(res, 200, ct_json_type, (const char *)buf, len);
    *keep = g;
    return;
  }
  ct_send_gen(st, res, g);
}

/*
 * Reads q's page. It is answered (true) when it holds changes, when it
 * fails, or when hold is false; otherwise (false) nothing is sent, q->after
 * moves past the changes of other types read on the way, and *end is the
 * feed's end the read saw. With keep, a page of changes sent is left there
 * (ct_changes_send).
 */
static bool ct_changes_try(const ct_state *st, cd_response *res,
                           cs_store *store, ct_changes_q *q, bool hold,
                           uint64_t *end, yajl_gen *keep) {
  cs_change *v = malloc((size_t)q->limit * sizeof *v);
  if (!v) return ct_send_oom(st, res), true;
  cs_changes got;
  uint64_t oldest = 0;
  cs_error err = {0};
  int rc = cs_changes_read(store, q->account, q->after, q->types, v, q->limit,
                           &got, &oldest, &err);
  bool answered = true;
  if (rc == CS_EEXPIRED) {
    ct_err e = {0};
    ct_fail(&e, 410, "cursor_expired", "cursor", 6,
            "cursor: the changes after it are no longer kept (they are kept "
            "--changes-days days); start again from oldest_cursor");
    e.has_oldest = true;
    e.oldest = oldest;
    ct_send_err(st, res, &e);
  } else if (rc == CS_ECURSOR) {
    ct_err e = {0};
    ct_fail(&e, 400, "invalid_cursor", "cursor", 6,
            "cursor: not a cursor this server handed out");
    ct_send_err(st, res, &e);
  } else if (rc) {
    ct_send_rc(st, res, "changes", rc, &err);
  } else if (got.count || !hold) {
    ct_changes_send(st, res, store, q, v, &got, got.count ? keep : NULL);
  } else {
    q->after = got.next;
    *end = got.next;
    answered = false;
  }
  free(v);
  return answered;
}

/* -------------------------------------------------------------- waiters */

static bool ts_before(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec ||
         (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The commit watcher: on the commit thread, only a kick. */
static void ct_feed_kick(void *ctx, uint64_t end) {
  ct_feed *f = ctx;
  (void)end; /* each waiter asks its store */
  pthread_mutex_lock(&f->mu);
  f->kicked = true;
  f->wakeups++;
  pthread_cond_signal(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

/*
 * The pages one pass of the feed thread rendered: waiters asking the same
 * (followers of one account that were all at its end when a commit came)
 * get the same page, rendered once. A page is the feed as it was a moment
 * before in the same pass, and its next_cursor says where it ends, so
 * nothing is skipped by taking it.
 */
typedef struct ct_shared {
  cs_store *store;
  ct_changes_q q; /* as asked, before the read */
  yajl_gen page;
} ct_shared;
#define CT_SHARED_MAX 16

typedef struct ct_pass {
  ct_shared v[CT_SHARED_MAX];
  int n;
} ct_pass;

static bool ct_same_q(const ct_changes_q *a, const ct_changes_q *b) {
  return a->account == b->account && a->after == b->after &&
         a->types == b->types && a->limit == b->limit &&
         a->with_contact == b->with_contact;
}

static void ct_pass_free(ct_pass *p) {
  for (int i = 0; i < p->n; i++)
    yajl_gen_free(p->v[i].page);
  p->n = 0;
}

/* Answers w if its time is up or the feed moved past what it saw; true
 * when it was answered (and freed). pass may be NULL (nothing shared). */
static bool ct_waiter_step(const ct_state *st, ct_waiter *w,
                           const struct timespec *now, bool final,
                           ct_pass *pass) {
  bool due = final || !ts_before(now, &w->deadline);
  uint64_t end = w->seen_end;
  if (!due && cs_changes_end(w->store) <= w->seen_end) return false;
  for (int i = 0; pass && i < pass->n; i++) {
    const unsigned char *buf;
    size_t len;
    if (pass->v[i].store != w->store || !ct_same_q(&pass->v[i].q, &w->q) ||
        yajl_gen_get_buf(pass->v[i].page, &buf, &len) != yajl_gen_status_ok)
      continue;
    st->host->respond(w->res, 200, ct_json_type, (const char *)buf, len);
    free(w);
    return true;
  }
  ct_changes_q asked = w->q;
  yajl_gen page = NULL;
  bool share = pass && pass->n < CT_SHARED_MAX;
  if (!ct_changes_try(st, w->res, w->store, &w->q, !due, &end,
                      share ? &page : NULL)) {
    w->seen_end = end;
    return false;
  }
  if (page) pass->v[pass->n++] = (ct_shared){w->store, asked, page};
  free(w);
  return true;
}

static void *ct_feed_main(void *arg) {
  ct_state *st = arg;
  ct_feed *f = st->feed;
  pthread_mutex_lock(&f->mu);
  while (!f->stop) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    const struct timespec *first = NULL;
    for (ct_waiter *w = f->waiters; w; w = w->next)
      if (!first || ts_before(&w->deadline, first)) first = &w->deadline;
    bool due = first && !ts_before(&now, first);
    if (!f->kicked && !due) {
      if (first)
        pthread_cond_timedwait(&f->cv, &f->mu, first);
      else
        pthread_cond_wait(&f->cv, &f->mu);
      continue;
    }
    f->kicked = false;
    ct_waiter *list = f->waiters, *keep = NULL;
    f->waiters = NULL;
    pthread_mutex_unlock(&f->mu);
    uint32_t answered = 0;
    ct_pass pass = {.n = 0};
    while (list) {
      ct_waiter *w = list;
      list = w->next;
      if (ct_waiter_step(st, w, &now, false, &pass)) {
        answered++;
      } else {
        w->next = keep;
        keep = w;
      }
    }
    ct_pass_free(&pass);
    pthread_mutex_lock(&f->mu);
    f->waiting -= answered;
    while (keep) {
      ct_waiter *w = keep;
      keep = w->next;
      w->next = f->waiters;
      f->waiters = w;
    }
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

/* Makes the request answered through res a waiter for wait_s seconds;
 * false when it cannot wait (the server is stopping, or
 * CS_CHANGES_WAITERS_MAX wait already). */
static bool ct_wait(const ct_state *st, cd_response *res, cs_store *store,
                    const ct_changes_q *q, uint64_t end, unsigned wait_s) {
  ct_feed *f = st->feed;
  ct_waiter *w = malloc(sizeof *w);
  if (!w) return false;
  *w = (ct_waiter){.res = res, .store = store, .q = *q, .seen_end = end};
  clock_gettime(CLOCK_MONOTONIC, &w->deadline);
  w->deadline.tv_sec += wait_s;
  pthread_mutex_lock(&f->mu);
  bool ok =
      !f->draining && f->thread_started && f->waiting < CS_CHANGES_WAITERS_MAX;
  if (ok) {
    w->next = f->waiters;
    f->waiters = w;
    f->waiting++;
    f->kicked = true; /* a commit may have come since the read */
    pthread_cond_signal(&f->cv);
  }
  pthread_mutex_unlock(&f->mu);
  if (!ok) free(w);
  return ok;
}

int ct_handle_changes(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  cs_store *store = ct_store(st, req);
  ct_changes_q q;
  unsigned wait_s = 0;
  ct_err e = {0};
  if (ct_changes_params(req, store, &q, &wait_s, &e))
    return ct_send_err(st, res, &e), CD_DONE;
  uint64_t end = 0;
  if (ct_changes_try(st, res, store, &q, wait_s > 0, &end, NULL))
    return CD_DONE;
  if (ct_wait(st, res, store, &q, end, wait_s)) return CD_ASYNC;
  ct_changes_try(st, res, store, &q, false, &end, NULL);
  return CD_DONE;
}

/* -------------------------------------------------------------- lifetime */

int ct_feed_start(ct_state *st, char *errbuf, size_t errlen) {
  ct_feed *f = calloc(1, sizeof *f);
  if (!f) {
    snprintf(errbuf, errlen, "contacts: out of memory");
    return -1;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&f->mu, NULL);
  st->feed = f;
  if (!st->store) return 0; /* no store to watch: reads only, no waiting */
  if (cs_watch_add(st->store, ct_feed_kick, f)) {
    snprintf(errbuf, errlen, "contacts: the store has no room for a watcher");
    return -1;
  }
  f->watching = true;
  int rc = pthread_create(&f->thread, NULL, ct_feed_main, st);
  if (rc) {
    snprintf(errbuf, errlen, "contacts: cannot start the feed thread: %s",
             strerror(rc));
    return -1;
  }
  f->thread_started = true;
  return 0;
}

void ct_feed_drain(ct_state *st) {
  ct_feed *f = st->feed;
  if (!f) return;
  pthread_mutex_lock(&f->mu);
  bool joinable = f->thread_started && !f->draining;
  f->draining = true;
  f->stop = true;
  pthread_cond_signal(&f->cv);
  pthread_mutex_unlock(&f->mu);
  if (joinable) pthread_join(f->thread, NULL);
  if (f->watching) cs_watch_remove(st->store, ct_feed_kick, f);
  f->watching = false;
  /* The thread is gone: the list is this thread's alone now. */
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  while (f->waiters) {
    ct_waiter *w = f->waiters;
    f->waiters = w->next;
    ct_waiter_step(st, w, &now, true, NULL);
    f->waiting--;
  }
}

void ct_feed_free(ct_state *st) {
  ct_feed *f = st->feed;
  if (!f) return;
  ct_feed_drain(st);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f);
  st->feed = NULL;
}

size_t ct_feed_metrics(ct_state *st, char **out) {
  ct_feed *f = st->feed;
  uint32_t waiting = 0;
  uint64_t wakeups = 0;
  if (f) {
    pthread_mutex_lock(&f->mu);
    waiting = f->waiting;
    wakeups = f->wakeups;
    pthread_mutex_unlock(&f->mu);
  }
  char text[512];
  int n = snprintf(text, sizeof text,
                   "# HELP contactd_feed_readers_waiting Change feed readers "
                   "holding a long-poll.\n"
                   "# TYPE contactd_feed_readers_waiting gauge\n"
                   "contactd_feed_readers_waiting %u\n"
                   "# HELP contactd_feed_commit_wakeups_total Commits that "
                   "woke the long-poll thread.\n"
                   "# TYPE contactd_feed_commit_wakeups_total counter\n"
                   "contactd_feed_commit_wakeups_total %llu\n",
                   waiting, (unsigned long long)wakeups);
  size_t had = *out ? strlen(*out) : 0;
  char *p = realloc(*out, had + (size_t)n + 1);
  if (!p) return 0;
  memcpy(p + had, text, (size_t)n + 1);
  *out = p;
  return had + (size_t)n;
}
