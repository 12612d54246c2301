/*
 * wh_deliver.c: the delivery thread. One thread for the plugin, driving
 * every webhook's deliveries through libcurl's multi interface.
 *
 * It sleeps in curl_multi_poll until a transfer needs it, a retry or a
 * save is due, or someone calls curl_multi_wakeup: the store's commit
 * watcher (a batch of changes became visible) and the routes (a webhook
 * was created, deleted or enabled). Nothing polls on a timer: a webhook
 * with nothing to deliver costs nothing until the next commit.
 *
 * Per webhook, at most one delivery is in flight and deliveries go
 * strictly in feed order: the thread reads up to WH_READ_BATCH changes of
 * the webhook's account and types after its position
 * (cs_changes_read), and sends them one at a time; a change is sent again
 * until its receiver acknowledges it (a 2xx within WH_DELIVERY_TIMEOUT_MS),
 * and only then does the position move past it. So a change is never
 * skipped; after a crash the side file's position (saved at most
 * WH_SAVE_INTERVAL_MS after a delivery) may be a little behind, and
 * those changes go again: at least once. A read that finds none of the
 * webhook's changes moves the position to the feed's end then. A position
 * that fell behind the feed's retention (CS_EEXPIRED) resumes at the
 * oldest change kept, and last_error says that changes were lost.
 *
 * Each body is rendered at each attempt: the change entry of the feed
 * (ct_gen_change) with the contact as it is then (cs_get; null when it is
 * no longer live), signed for that attempt's timestamp (wh_sign).
 *
 * A failure (a status other than 2xx, no connection, a timeout) makes the
 * webhook failing and the change is tried again after wh_retry_delay_ms;
 * once the webhook has been failing for longer than the retry window it
 * is disabled (and the side file written at once) until
 * POST /webhooks/{id}/enable.
 *
 * Safety of the calls out: the thread holds no lock of the plugin across
 * a store call or network I/O (mu is taken for memory work only), and the
 * store takes no lock of its own across ours. The receiver is called only
 * when its URL's host and port are allowed now (the allow-list may have
 * changed since the webhook was made); libcurl follows no redirect, speaks
 * only HTTP and HTTPS, uses no proxy from the environment, and gets the
 * URL as wh_url_parse read it.
 *
 * The thread's own state of a webhook (struct wh_delivery) is touched by
 * this thread only, and by destroy after the thread is joined.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "wh.h"

struct wh_delivery {
  CURL *easy; /* kept across deliveries: the connection stays open */
  struct curl_slist *headers;
  bool in_flight;
  cs_change buf[WH_READ_BATCH]; /* changes read, buf[at..count) to send */
  uint32_t count, at;
  uint64_t next;  /* where the read that filled buf says to go on */
  int64_t due_ms; /* no attempt before this (a retry, a store retry) */
  char curl_error[CURL_ERROR_SIZE];
};

static CURLM *multi_of(wh_ctx *c) {
  return (CURLM *)c->multi;
}

static void wh_log(wh_ctx *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void wh_log(wh_ctx *c, int level, const char *fmt, ...) {
  char line[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  c->host->log(c->host->ctx, NULL, level, line);
}

static uint32_t wh_random(void) {
  uint32_t r;
  if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
    r = (uint32_t)wh_now_ms() * 2654435761u;
  return r;
}

/* The commit watcher: runs on the store's commit thread and only wakes. */
static void wh_watch(void *ctx, uint64_t end) {
  wh_ctx *c = ctx;
  curl_multi_wakeup(multi_of(c));
}

void wh_deliver_wake(wh_ctx *c) {
  if (c->multi != NULL) curl_multi_wakeup(multi_of(c));
}

void wh_delivery_free(wh_ctx *c, struct wh_delivery *d) {
  if (d == NULL) return;
  if (d->in_flight) curl_multi_remove_handle(multi_of(c), d->easy);
  if (d->easy != NULL) curl_easy_cleanup(d->easy);
  curl_slist_free_all(d->headers);
  free(d);
}

/* ------------------------------------------------------------- the list */

static wh_hook *wh_first(wh_ctx *c) {
  pthread_mutex_lock(&c->mu);
  wh_hook *h = c->head;
  pthread_mutex_unlock(&c->mu);
  return h;
}

static wh_hook *wh_next(wh_ctx *c, wh_hook *h) {
  pthread_mutex_lock(&c->mu);
  wh_hook *n = h->next;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* Unlinks the webhooks the routes deleted and frees them (aborting a
 * delivery in flight: it is not acknowledged, and nothing will send it
 * again). Only this thread ever frees a webhook. */
static void wh_reap(wh_ctx *c) {
  wh_hook *gone = NULL;
  pthread_mutex_lock(&c->mu);
  for (wh_hook **p = &c->head; *p != NULL;) {
    wh_hook *h = *p;
    if (!h->removed) {
      p = &h->next;
      continue;
    }
    *p = h->next;
    if (c->tail == &h->next) c->tail = p;
    h->next = gone;
    gone = h;
  }
  pthread_mutex_unlock(&c->mu);
  while (gone != NULL) {
    wh_hook *next = gone->next;
    wh_delivery_free(c, gone->d);
    free(gone);
    gone = next;
  }
}

/* ------------------------------------------------------------- sending */

static size_t wh_discard(char *p, size_t size, size_t n, void *ctx) {
  return size * n;
}

/* Fills d->buf from the feed. Returns the ms until the webhook wants the
 * thread again: 0 to look again at once, WH_IDLE_WAKE_MS when it waits
 * for commits. */
static int64_t wh_fill(wh_ctx *c, wh_hook *h, struct wh_delivery *d,
                       uint64_t end, int64_t now) {
  pthread_mutex_lock(&c->mu);
  uint64_t position = h->rec.position;
  uint32_t account = h->rec.account;
  unsigned types = h->rec.types;
  pthread_mutex_unlock(&c->mu);
  if (position >= end) return WH_IDLE_WAKE_MS;

  cs_changes got;
  uint64_t oldest = 0;
  cs_error err = {0};
  int rc = cs_changes_read(c->store, account, position, types, d->buf,
                           WH_READ_BATCH, &got, &oldest, &err);
  if (rc == CS_EEXPIRED || rc == CS_ECURSOR) {
    pthread_mutex_lock(&c->mu);
    if (rc == CS_EEXPIRED) {
      h->rec.position = oldest;
      wh_rec_error(&h->rec,
                   "changes after feed position %" PRIu64
                   " were no longer kept (--changes-days) and may have been "
                   "lost; delivery resumed at %" PRIu64,
                   position, oldest);
    } else {
      /* Past the feed's end: the store is older than this file (a data
       * directory put back from a copy). Go on from the end. */
      h->rec.position = end;
      wh_rec_error(&h->rec,
                   "its position %" PRIu64 " was past the feed's end %" PRIu64
                   "; delivery resumed at the end",
                   position, end);
    }
    c->dirty = true;
    pthread_mutex_unlock(&c->mu);
    wh_log(c, CD_LOG_WARN, "webhooks: %s: %s", h->rec.id, err.msg);
    return 0;
  }
  if (rc != 0) {
    wh_log(c, CD_LOG_WARN, "webhooks: %s: reading the feed failed: %s",
           h->rec.id, err.msg[0] ? err.msg : cs_strerror(rc));
    d->due_ms = now + WH_STORE_RETRY_MS;
    return WH_STORE_RETRY_MS;
  }
  d->count = got.count;
  d->at = 0;
  d->next = got.next;
  pthread_mutex_lock(&c->mu);
  if (got.count == 0) {
    /* None of its changes up to there: nothing to send before it. */
    if (got.next > h->rec.position) {
      h->rec.position = got.next;
      c->dirty = true;
    }
  } else {
    h->oldest_at_ms = d->buf[0].at_ms;
  }
  pthread_mutex_unlock(&c->mu);
  return got.count == 0 ? WH_IDLE_WAKE_MS : 0;
}

/* What one attempt goes out with: the record's parts, copied under mu. */
typedef struct wh_target {
  uint32_t account;
  char url[WH_URL_MAX_BYTES + 1];
  uint8_t secret[WH_SECRET_BYTES];
} wh_target;

/* Renders the body of change ch: 0 with a malloc'd body, or a store code
 * (the attempt waits WH_STORE_RETRY_MS). */
static int wh_render(wh_ctx *c, uint32_t account, const cs_change *ch,
                     char **body, size_t *len) {
  cs_contact now;
  cs_error err = {0};
  int rc = cs_get(c->store, account, ch->id, &now, &err);
  if (rc != 0 && rc != CS_ENOTFOUND) {
    wh_log(c, CD_LOG_WARN, "webhooks: reading contact %" PRIu64 ": %s", ch->id,
           err.msg[0] ? err.msg : cs_strerror(rc));
    return rc;
  }
  yajl_gen g = ct_gen_new();
  if (g == NULL) return -ENOMEM;
  ct_gen_change(g, ch, rc == 0 ? &now : NULL, true);
  const unsigned char *buf;
  size_t n;
  rc = -ENOMEM;
  if (yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok &&
      (*body = malloc(n + 1)) != NULL) {
    memcpy(*body, buf, n);
    (*body)[n] = '\0';
    *len = n;
    rc = 0;
  }
  yajl_gen_free(g);
  return rc;
}

static void wh_fail(wh_ctx *c, wh_hook *h, struct wh_delivery *d,
                    const char *error);

/* Appends a header line to *hs; false (and *hs as it was) when out of
 * memory. */
static bool add_header(struct curl_slist **hs, const char *line) {
  struct curl_slist *n = curl_slist_append(*hs, line);
  if (n == NULL) return false;
  *hs = n;
  return true;
}

/* Starts the delivery of d->buf[d->at]. */
static void wh_send(wh_ctx *c, wh_hook *h, struct wh_delivery *d, int64_t now) {
  const cs_change *ch = &d->buf[d->at];
  wh_target t;
  pthread_mutex_lock(&c->mu);
  t.account = h->rec.account;
  memcpy(t.url, h->rec.url, sizeof(t.url));
  memcpy(t.secret, h->rec.secret, sizeof(t.secret));
  pthread_mutex_unlock(&c->mu);

  wh_url u;
  char why[256];
  if (wh_url_parse(t.url, strlen(t.url), &u, why, sizeof(why)) != 0 ||
      !wh_allowed(c->allow, c->allow_count, &u)) {
    wh_fail(c, h, d,
            "its URL's host and port are not allowed by this server's "
            "--webhook-allow (any more)");
    return;
  }

  char *body = NULL;
  size_t body_len = 0;
  if (wh_render(c, t.account, ch, &body, &body_len) != 0) {
    d->due_ms = now + WH_STORE_RETRY_MS;
    return;
  }
  char id[CT_CHANGE_CURSOR_CHARS + 1];
  ct_change_cursor_format(ch->seq, id);
  int64_t ts = now / 1000;
  char sig[WH_SIGNATURE_BYTES + 1];
  if (wh_sign(t.secret, sizeof(t.secret), id, ts, body, body_len, sig) != 0) {
    wh_log(c, CD_LOG_ERROR, "webhooks: %s: signing failed", h->rec.id);
    free(body);
    d->due_ms = now + WH_STORE_RETRY_MS;
    return;
  }

  if (d->easy == NULL) d->easy = curl_easy_init();
  char line[64 + WH_SIGNATURE_BYTES];
  struct curl_slist *hs = NULL;
  bool ok = add_header(&hs, "content-type: application/json");
  snprintf(line, sizeof(line), "webhook-id: %s", id);
  ok = ok && add_header(&hs, line);
  snprintf(line, sizeof(line), "webhook-timestamp: %lld", (long long)ts);
  ok = ok && add_header(&hs, line);
  snprintf(line, sizeof(line), "webhook-signature: %s", sig);
  ok = ok && add_header(&hs, line);
  /* No "Expect: 100-continue" round trip before the body. */
  ok = ok && add_header(&hs, "expect:");
  if (d->easy == NULL || !ok) {
    wh_log(c, CD_LOG_ERROR, "webhooks: %s: out of memory", h->rec.id);
    curl_slist_free_all(hs);
    free(body);
    d->due_ms = now + WH_STORE_RETRY_MS;
    return;
  }
  CURL *e = d->easy;
  curl_slist_free_all(d->headers);
  d->headers = hs;
  d->curl_error[0] = '\0';
  curl_easy_setopt(e, CURLOPT_URL, t.url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)WH_DELIVERY_TIMEOUT_MS);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)WH_DELIVERY_TIMEOUT_MS);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "contactd-webhooks");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, wh_discard);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->curl_error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, h);
  free(body);
  if (curl_multi_add_handle(multi_of(c), e) != CURLM_OK) {
    wh_log(c, CD_LOG_ERROR, "webhooks: %s: libcurl refused the transfer",
           h->rec.id);
    d->due_ms = now + WH_STORE_RETRY_MS;
    return;
  }
  d->in_flight = true;
}

/* ------------------------------------------------------------ outcomes */

/* A failed attempt: failing and a retry scheduled, or disabled once the
 * webhook has failed for longer than the retry window. */
static void wh_fail(wh_ctx *c, wh_hook *h, struct wh_delivery *d,
                    const char *error) {
  int64_t now = wh_now_ms();
  bool disabled = false;
  pthread_mutex_lock(&c->mu);
  wh_rec *r = &h->rec;
  if (r->failures < UINT32_MAX) r->failures++;
  if (r->failing_since_ms == 0) r->failing_since_ms = now;
  if (now - r->failing_since_ms >= c->retry_window_ms) {
    r->state = WH_DISABLED;
    wh_rec_error(r, "disabled after failing for %lld s: %s",
                 (long long)((now - r->failing_since_ms) / 1000), error);
    disabled = true;
  } else {
    r->state = WH_FAILING;
    wh_rec_error(r, "%s", error);
    d->due_ms = now + wh_retry_delay_ms(r->failures, wh_random());
  }
  c->dirty = true;
  pthread_mutex_unlock(&c->mu);
  if (disabled) {
    wh_log(c, CD_LOG_WARN, "webhooks: %s %s", h->rec.id, h->rec.last_error);
    cs_error err = {0};
    int rc = wh_save(c, NULL, &err);
    if (rc != 0)
      wh_log(c, CD_LOG_WARN, "webhooks: writing %s failed: %s", WH_SIDE_FILE,
             err.msg[0] ? err.msg : cs_strerror(rc));
  }
}

/* The receiver acknowledged d->buf[d->at]. */
static void wh_ack(wh_ctx *c, wh_hook *h, struct wh_delivery *d) {
  pthread_mutex_lock(&c->mu);
  wh_rec *r = &h->rec;
  r->position = d->buf[d->at].seq;
  d->at++;
  if (d->at == d->count && d->next > r->position) r->position = d->next;
  h->oldest_at_ms = d->at < d->count ? d->buf[d->at].at_ms : 0;
  r->last_delivery_ms = wh_now_ms();
  r->state = WH_ACTIVE;
  r->failures = 0;
  r->failing_since_ms = 0;
  c->dirty = true;
  pthread_mutex_unlock(&c->mu);
}

/* A transfer ended: count it, then acknowledge or fail. */
static void wh_done(wh_ctx *c, CURL *e, CURLcode result) {
  char *priv = NULL;
  curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
  wh_hook *h = (wh_hook *)priv;
  curl_multi_remove_handle(multi_of(c), e);
  struct wh_delivery *d = h->d;
  d->in_flight = false;
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  wh_outcome out;
  char error[WH_ERROR_MAX_BYTES];
  if (result == CURLE_OK && status >= 200 && status <= 299) {
    out = WH_OUT_OK;
  } else if (result == CURLE_OK) {
    out = WH_OUT_HTTP_ERROR;
    snprintf(error, sizeof(error), "the receiver answered HTTP %ld", status);
  } else if (result == CURLE_OPERATION_TIMEDOUT) {
    out = WH_OUT_TIMEOUT;
    snprintf(error, sizeof(error), "no answer within %d s",
             WH_DELIVERY_TIMEOUT_MS / 1000);
  } else {
    out = WH_OUT_NETWORK;
    /* Cut to what last_error holds. */
    int n = snprintf(error, sizeof(error), "%s", curl_easy_strerror(result));
    if (d->curl_error[0] != '\0' && n > 0 && (size_t)n < sizeof(error))
      snprintf(error + n, sizeof(error) - (size_t)n, ": %.*s",
               (int)(sizeof(error) - (size_t)n), d->curl_error);
  }
  atomic_fetch_add(&c->outcomes[out], 1);
  pthread_mutex_lock(&c->mu);
  bool removed = h->removed;
  pthread_mutex_unlock(&c->mu);
  if (removed) return;
  if (out == WH_OUT_OK)
    wh_ack(c, h, d);
  else
    wh_fail(c, h, d, error);
}

/* Moves the transfers on and handles those that ended; returns how many
 * did. */
static int wh_collect(wh_ctx *c) {
  int running, left, ended = 0;
  curl_multi_perform(multi_of(c), &running);
  CURLMsg *m;
  while ((m = curl_multi_info_read(multi_of(c), &left)) != NULL)
    if (m->msg == CURLMSG_DONE) {
      wh_done(c, m->easy_handle, m->data.result);
      ended++;
    }
  return ended;
}

/* ------------------------------------------------------------ the loop */

/* Moves one webhook on: reads, or starts its next delivery. Returns the
 * ms until it wants the thread again (WH_IDLE_WAKE_MS: only on a wake). */
static int64_t wh_step(wh_ctx *c, wh_hook *h, uint64_t end, int64_t now) {
  if (h->d == NULL) h->d = calloc(1, sizeof(*h->d));
  struct wh_delivery *d = h->d;
  if (d == NULL) return WH_STORE_RETRY_MS;
  pthread_mutex_lock(&c->mu);
  int state = h->rec.state;
  bool removed = h->removed;
  if (h->retry_now) {
    h->retry_now = false;
    d->due_ms = 0;
  }
  pthread_mutex_unlock(&c->mu);
  if (removed || d->in_flight || state == WH_DISABLED) return WH_IDLE_WAKE_MS;
  if (d->due_ms > now) return d->due_ms - now;
  if (d->at == d->count) {
    int64_t wait = wh_fill(c, h, d, end, now);
    if (d->at == d->count) return wait;
  }
  wh_send(c, h, d, now);
  if (d->in_flight) return WH_IDLE_WAKE_MS;
  return d->due_ms > now ? d->due_ms - now : 0;
}

/* Saves the positions when some moved and the last save is old enough;
 * returns the ms until the next is due (WH_IDLE_WAKE_MS: none). */
static int64_t wh_save_step(wh_ctx *c, int64_t now, bool *failing) {
  pthread_mutex_lock(&c->mu);
  bool dirty = c->dirty;
  pthread_mutex_unlock(&c->mu);
  if (!dirty) return WH_IDLE_WAKE_MS;
  int64_t due = c->last_save_ms + WH_SAVE_INTERVAL_MS;
  if (due > now) return due - now;
  cs_error err = {0};
  int rc = wh_save(c, NULL, &err);
  c->last_save_ms = now;
  if (rc != 0 && !*failing)
    wh_log(c, CD_LOG_WARN,
           "webhooks: writing %s failed: %s; trying again every %d ms",
           WH_SIDE_FILE, err.msg[0] ? err.msg : cs_strerror(rc),
           WH_SAVE_INTERVAL_MS);
  *failing = rc != 0;
  return rc != 0 ? WH_SAVE_INTERVAL_MS : WH_IDLE_WAKE_MS;
}

static void *wh_run(void *arg) {
  wh_ctx *c = arg;
  bool save_failing = false;
  while (!atomic_load(&c->stop)) {
    wh_jobs_run(c);
    wh_reap(c);
    int64_t now = wh_now_ms();
    uint64_t end = cs_changes_end(c->store);
    int64_t wait = WH_IDLE_WAKE_MS;
    for (wh_hook *h = wh_first(c); h != NULL; h = wh_next(c, h)) {
      int64_t w = wh_step(c, h, end, now);
      if (w < wait) wait = w;
    }
    /* A transfer that ended moves its webhook on (the next change, or a
     * retry's time): look at every webhook again before sleeping. */
    if (wh_collect(c) > 0) wait = 0;
    int64_t w = wh_save_step(c, now, &save_failing);
    if (w < wait) wait = w;
    if (wait > 0 && !atomic_load(&c->stop))
      curl_multi_poll(multi_of(c), NULL, 0, (int)wait, NULL);
    wh_collect(c);
  }
  /* Deliveries in flight are abandoned unacknowledged: after a restart
   * they go again from the saved position. */
  for (wh_hook *h = wh_first(c); h != NULL; h = wh_next(c, h))
    if (h->d != NULL && h->d->in_flight) {
      curl_multi_remove_handle(multi_of(c), h->d->easy);
      h->d->in_flight = false;
    }
  return NULL;
}

/* ------------------------------------------------------------ life cycle */

int wh_deliver_start(wh_ctx *c, char *errbuf, size_t errlen) {
  c->multi = curl_multi_init();
  if (c->multi == NULL) {
    snprintf(errbuf, errlen, "webhooks: libcurl's multi handle failed");
    return -1;
  }
  int rc = cs_watch_add(c->store, wh_watch, c);
  if (rc != 0) {
    snprintf(errbuf, errlen, "webhooks: cannot watch the store's commits: %s",
             cs_strerror(rc));
    return -1;
  }
  c->watching = true;
  atomic_store(&c->stop, false);
  if (pthread_create(&c->thread, NULL, wh_run, c) != 0) {
    snprintf(errbuf, errlen, "webhooks: cannot start the delivery thread");
    return -1;
  }
  c->thread_started = true;
  pthread_mutex_lock(&c->mu);
  c->accepting = true;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

void wh_deliver_stop(wh_ctx *c) {
  pthread_mutex_lock(&c->mu);
  c->accepting = false;
  pthread_mutex_unlock(&c->mu);
  if (c->thread_started) {
    atomic_store(&c->stop, true);
    curl_multi_wakeup(multi_of(c));
    pthread_join(c->thread, NULL);
    c->thread_started = false;
  }
  /* Jobs queued before the routes stopped queueing: answered here. */
  wh_jobs_run(c);
  if (c->watching) {
    cs_watch_remove(c->store, wh_watch, c);
    c->watching = false;
  }
}

void wh_deliver_free(wh_ctx *c) {
  wh_deliver_stop(c);
  for (wh_hook *h = c->head; h != NULL; h = h->next) {
    wh_delivery_free(c, h->d);
    h->d = NULL;
  }
  if (c->multi != NULL) curl_multi_cleanup(multi_of(c));
  c->multi = NULL;
}
