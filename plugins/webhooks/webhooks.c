/*
 * webhooks.c: the webhooks plugin (API.md "Webhooks"): its table, its
 * state's life cycle and its metrics. The routes are in wh_routes.c, the
 * delivery thread in wh_deliver.c, the pieces without store or network in
 * whcore (wh.h lists them).
 *
 *   POST   /webhooks              create (read-write key): {"id", "secret"}
 *   GET    /webhooks              the account's webhooks (any key)
 *   DELETE /webhooks/{id}         delete (read-write key)
 *   POST   /webhooks/{id}/enable  resume a disabled one (read-write key)
 *
 * Life cycle. create reads the options the front end took on the plugin's
 * behalf (--webhook-allow, --webhook-retry-seconds) and the side file
 * (webhooks.side; a damaged one stops the start, naming the file and the
 * fault, so that no webhook is ever dropped silently), then starts the
 * delivery thread and its commit watcher. drain stops the thread (joined)
 * and the watcher and writes the side file with the positions reached.
 * destroy frees.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "wh.h"

int64_t wh_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ options */

static int wh_options_read(wh_ctx *c, char *errbuf, size_t errlen) {
  const cd_host *h = c->host;
  if (h->option == NULL) return 0; /* a host without options: none allowed */
  for (size_t i = 0;; i++) {
    const char *v = h->option(h->ctx, "webhook-allow", i);
    if (v == NULL) break;
    if (i == FE_WEBHOOK_ALLOW_MAX) {
      snprintf(errbuf, errlen, "webhooks: more than %d --webhook-allow hosts",
               FE_WEBHOOK_ALLOW_MAX);
      return -1;
    }
    char why[256];
    if (wh_allow_parse(v, &c->allow[i], why, sizeof(why)) != 0) {
      snprintf(errbuf, errlen, "webhooks: %s", why);
      return -1;
    }
    c->allow_count++;
  }
  const char *v = h->option(h->ctx, "webhook-retry-seconds", 0);
  if (v != NULL) {
    uint64_t n;
    if (cs_decimal_parse(v, strlen(v), FE_WEBHOOK_RETRY_SECONDS_MIN,
                         FE_WEBHOOK_RETRY_SECONDS_MAX, &n) != 0) {
      snprintf(errbuf, errlen,
               "webhooks: --webhook-retry-seconds %s: expected %d to %d", v,
               FE_WEBHOOK_RETRY_SECONDS_MIN, FE_WEBHOOK_RETRY_SECONDS_MAX);
      return -1;
    }
    c->retry_window_ms = (int64_t)n * 1000;
  }
  return 0;
}

/* --------------------------------------------------------- the side file */

/* Loads webhooks.side (none: no webhooks). */
static int wh_load(wh_ctx *c, char *errbuf, size_t errlen) {
  uint8_t *data = NULL;
  size_t len = 0;
  cs_error err = {0};
  int rc = cs_side_read(c->store, WH_SIDE_FILE, &data, &len, &err);
  if (rc == CS_ENOTFOUND) return 0;
  if (rc != 0) {
    snprintf(errbuf, errlen, "webhooks: %s",
             err.msg[0] ? err.msg : cs_strerror(rc));
    return -1;
  }
  wh_rec *recs = NULL;
  size_t count = 0;
  char why[512];
  rc = wh_file_decode(data, len, &recs, &count, why, sizeof(why));
  free(data);
  if (rc != 0) {
    snprintf(errbuf, errlen,
             "webhooks: %s/%s: %s; the file is left as it is (move it away "
             "to start without webhooks)",
             cs_dir(c->store), WH_SIDE_FILE, why);
    return -1;
  }
  for (size_t i = 0; i < count; i++) {
    wh_hook *h = calloc(1, sizeof(*h));
    if (h == NULL) {
      free(recs);
      snprintf(errbuf, errlen, "webhooks: out of memory");
      return -1;
    }
    h->rec = recs[i];
    *c->tail = h;
    c->tail = &h->next;
  }
  free(recs);
  return 0;
}

int wh_save(wh_ctx *c, const wh_edit *edit, cs_error *err) {
  static const wh_edit none;
  if (edit == NULL) edit = &none;
  const char *target = edit->remove_id ? edit->remove_id : edit->enable_id;
  wh_hook *fresh = NULL;
  if (edit->add != NULL) {
    fresh = calloc(1, sizeof(*fresh));
    if (fresh == NULL) {
      snprintf(err->msg, sizeof(err->msg), "out of memory");
      return -ENOMEM;
    }
    fresh->rec = *edit->add;
  }

  pthread_mutex_lock(&c->save_mu);
  pthread_mutex_lock(&c->mu);
  size_t n = 0, mine = 0;
  wh_hook *found = NULL;
  for (wh_hook *h = c->head; h != NULL; h = h->next) {
    if (h->removed) continue;
    n++;
    if (fresh != NULL && h->rec.account == fresh->rec.account) mine++;
    if (target != NULL && h->rec.account == edit->account &&
        strcmp(h->rec.id, target) == 0)
      found = h;
  }
  int rc = 0;
  if (target != NULL && found == NULL) rc = WH_ENOTFOUND;
  if (fresh != NULL && mine >= WH_PER_ACCOUNT_MAX) rc = WH_EACCOUNT_FULL;
  if (fresh != NULL && n >= WH_TOTAL_MAX) rc = WH_ESERVER_FULL;
  /* Enabling a webhook that is not disabled changes nothing on disk: a
   * failing one is only tried again now. */
  if (rc == 0 && edit->enable_id != NULL && found->rec.state != WH_DISABLED) {
    if (found->rec.state == WH_FAILING) found->retry_now = true;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&c->save_mu);
    return 0;
  }
  const wh_rec **recs = NULL;
  wh_rec enabled;
  char *buf = NULL;
  size_t len = 0;
  if (rc == 0) {
    recs = malloc((n + 1) * sizeof(*recs));
    if (recs == NULL) rc = -ENOMEM;
  }
  if (rc == 0) {
    size_t k = 0;
    for (wh_hook *h = c->head; h != NULL; h = h->next) {
      if (h->removed || (h == found && edit->remove_id != NULL)) continue;
      if (h == found) {
        enabled = h->rec;
        enabled.state = WH_ACTIVE;
        enabled.failures = 0;
        enabled.failing_since_ms = 0;
        recs[k++] = &enabled;
      } else {
        recs[k++] = &h->rec;
      }
    }
    if (fresh != NULL) recs[k++] = &fresh->rec;
    if (wh_file_encode(recs, k, &buf, &len) != 0) rc = -ENOMEM;
  }
  bool was_dirty = c->dirty;
  if (rc == 0) c->dirty = false;
  pthread_mutex_unlock(&c->mu);
  free(recs);
  if (rc == -ENOMEM) snprintf(err->msg, sizeof(err->msg), "out of memory");

  if (rc == 0) {
    rc = cs_side_write(c->store, WH_SIDE_FILE, buf, len, err);
    pthread_mutex_lock(&c->mu);
    if (rc != 0) {
      c->dirty = c->dirty || was_dirty;
    } else if (fresh != NULL) {
      *c->tail = fresh;
      c->tail = &fresh->next;
      fresh = NULL;
    } else if (found != NULL && edit->remove_id != NULL) {
      found->removed = true;
    } else if (found != NULL) {
      found->rec.state = WH_ACTIVE;
      found->rec.failures = 0;
      found->rec.failing_since_ms = 0;
      found->retry_now = true;
    }
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_unlock(&c->save_mu);
  free(buf);
  free(fresh);
  return rc;
}

/* ------------------------------------------------------------ life cycle */

static void wh_destroy(void *state);
static void wh_drain(void *state);

static int wh_create(const cd_host *host, cs_store *store, void **state_out,
                     char *errbuf, size_t errlen) {
  *state_out = NULL;
  wh_ctx *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    snprintf(errbuf, errlen, "webhooks: out of memory");
    return -1;
  }
  c->host = host;
  c->store = store;
  c->tail = &c->head;
  c->jobs_tail = &c->jobs;
  c->retry_window_ms = (int64_t)FE_WEBHOOK_RETRY_SECONDS_DEFAULT * 1000;
  pthread_mutex_init(&c->mu, NULL);
  pthread_mutex_init(&c->save_mu, NULL);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(errbuf, errlen, "webhooks: libcurl failed to start");
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->save_mu);
    free(c);
    return -1;
  }
  c->curl_ready = true;
  if (wh_options_read(c, errbuf, errlen) != 0 ||
      wh_load(c, errbuf, errlen) != 0 ||
      wh_deliver_start(c, errbuf, errlen) != 0) {
    wh_destroy(c);
    return -1;
  }
  *state_out = c;
  return 0;
}

static void wh_drain(void *state) {
  wh_ctx *c = state;
  if (c == NULL || c->drained) return;
  c->drained = true;
  wh_deliver_stop(c);
  cs_error err = {0};
  int rc = wh_save(c, NULL, &err);
  if (rc != 0) {
    char line[768];
    snprintf(line, sizeof(line),
             "webhooks: saving the positions at stop failed (%s): %s; the "
             "changes since the last save will be delivered again",
             cs_strcode(rc), err.msg[0] ? err.msg : cs_strerror(rc));
    c->host->log(c->host->ctx, NULL, CD_LOG_WARN, line);
  }
}

static void wh_destroy(void *state) {
  wh_ctx *c = state;
  if (c == NULL) return;
  if (c->thread_started) wh_drain(c);
  wh_deliver_free(c);
  for (wh_hook *h = c->head, *next; h != NULL; h = next) {
    next = h->next;
    free(h);
  }
  pthread_mutex_destroy(&c->mu);
  pthread_mutex_destroy(&c->save_mu);
  if (c->curl_ready) curl_global_cleanup();
  free(c);
}

/* --------------------------------------------------------------- metrics */

/* Appends text to *out (NULL or a malloc'd NUL-terminated string); the
 * whole length, or 0 with *out unchanged when out of memory. */
static size_t wh_append(char **out, const char *text, size_t len) {
  size_t had = *out != NULL ? strlen(*out) : 0;
  char *p = realloc(*out, had + len + 1);
  if (p == NULL) return 0;
  memcpy(p + had, text, len);
  p[had + len] = '\0';
  *out = p;
  return had + len;
}

static size_t wh_metrics(void *state, char **out) {
  static const char *const outcome_names[WH_OUT_COUNT] = {
      "ok", "http_error", "network_error", "timeout"};
  wh_ctx *c = state;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) return 0;
  fprintf(f, "# HELP contactd_webhook_deliveries_total Webhook delivery "
             "attempts, by outcome.\n"
             "# TYPE contactd_webhook_deliveries_total counter\n");
  for (int i = 0; i < WH_OUT_COUNT; i++)
    fprintf(f,
            "contactd_webhook_deliveries_total{outcome=\"%s\"} %" PRIu64 "\n",
            outcome_names[i], atomic_load(&c->outcomes[i]));

  uint64_t end = cs_changes_end(c->store);
  int64_t now = wh_now_ms();
  size_t states[WH_STATE_COUNT] = {0};
  char *lags = NULL, *ages = NULL;
  size_t lags_len = 0, ages_len = 0;
  FILE *fl = open_memstream(&lags, &lags_len);
  FILE *fa = open_memstream(&ages, &ages_len);
  pthread_mutex_lock(&c->mu);
  for (const wh_hook *h = c->head; h != NULL; h = h->next) {
    if (h->removed) continue;
    states[h->rec.state < WH_STATE_COUNT ? h->rec.state : 0]++;
    uint64_t behind = end > h->rec.position ? end - h->rec.position : 0;
    double age = h->oldest_at_ms > 0 && now > h->oldest_at_ms
                     ? (double)(now - h->oldest_at_ms) / 1000.0
                     : 0.0;
    if (fl != NULL)
      fprintf(fl, "contactd_webhook_lag_changes{webhook=\"%s\"} %" PRIu64 "\n",
              h->rec.id, behind);
    if (fa != NULL)
      fprintf(fa, "contactd_webhook_lag_seconds{webhook=\"%s\"} %.3f\n",
              h->rec.id, age);
  }
  pthread_mutex_unlock(&c->mu);
  fprintf(f, "# HELP contactd_webhooks Webhooks, by state.\n"
             "# TYPE contactd_webhooks gauge\n");
  for (int i = 0; i < WH_STATE_COUNT; i++)
    fprintf(f, "contactd_webhooks{state=\"%s\"} %zu\n", wh_state_name(i),
            states[i]);
  fprintf(f, "# HELP contactd_webhook_lag_changes Feed positions (commits of "
             "the whole store) between a webhook's position and the feed's "
             "end; 0 when it is caught up.\n"
             "# TYPE contactd_webhook_lag_changes gauge\n");
  if (fl != NULL && fclose(fl) == 0 && lags != NULL) fputs(lags, f);
  fprintf(f, "# HELP contactd_webhook_lag_seconds Age of the oldest change "
             "read for a webhook and not yet acknowledged; 0 when none "
             "waits.\n"
             "# TYPE contactd_webhook_lag_seconds gauge\n");
  if (fa != NULL && fclose(fa) == 0 && ages != NULL) fputs(ages, f);
  free(lags);
  free(ages);
  size_t total = 0;
  if (fclose(f) == 0 && text != NULL) total = wh_append(out, text, len);
  free(text);
  return total;
}

/* ---------------------------------------------------------------- table */

#define WH_READ CD_ROUTE_AUTH
#define WH_WRITE (CD_ROUTE_AUTH | CD_ROUTE_WRITE)

static const cd_route wh_routes[] = {
    {"POST", "/webhooks", WH_WRITE, wh_handle_create},
    {"GET", "/webhooks", WH_READ, wh_handle_list},
    {"DELETE", "/webhooks/{id}", WH_WRITE, wh_handle_delete},
    {"POST", "/webhooks/{id}/enable", WH_WRITE, wh_handle_enable},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "webhooks",
    .create = wh_create,
    .destroy = wh_destroy,
    .routes = wh_routes,
    .route_count = sizeof wh_routes / sizeof wh_routes[0],
    .drain = wh_drain,
    .metrics = wh_metrics,
};
