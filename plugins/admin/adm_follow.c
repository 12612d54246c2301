/*
 * adm_follow.c: a standby's client loop (contactd --follow URL
 * --follow-key-file FILE; plugins/admin/README.md "Replication").
 *
 * One thread: GET URL/admin/replication?after=LAST (LAST the store's last
 * record, cs_follow_last) with the admin key, through libcurl; each piece
 * of the stream that arrives is handed to cs_follow_append, which checks,
 * appends, syncs and applies its whole records (a record cut between two
 * pieces waits for the next), and then the last of them is acknowledged
 * with POST URL/admin/replication/ack {"seq": N} on a second keep-alive
 * connection, so the primary's waiting writes go on as soon as this
 * store has them. A lost connection, a refused request or a record the
 * engine refuses ends the transfer; the loop connects again after a
 * back-off doubled from ADM_FOLLOW_BACKOFF_MIN_MS to ..._MAX_MS (back to
 * the first once records arrive), and says so in the server's log. A 410
 * (the primary no longer holds the records after LAST) is logged as an
 * error naming the way out (a fresh backup), and retried at the longest
 * back-off.
 *
 * adm_follow_stop (promotion, drain) sets stop, which the transfer's
 * progress callback sees within a second, and joins the thread.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "adm.h"

typedef struct adm_follow {
  adm_ctx *c;
  char url[ADM_FOLLOW_URL_MAX_BYTES];
  char keyhdr[ADM_FOLLOW_KEY_MAX_BYTES + 16];
  pthread_t th;
  bool started;
  atomic_bool stop;
  pthread_mutex_t mu; /* the sleep between tries, and the figures below */
  pthread_cond_t cv;
  CURL *ack;
  struct curl_slist *hdrs, *ack_hdrs;
  /* The transfer under way. */
  long status;
  uint8_t *buf;
  size_t len;
  char errbody[512];
  size_t errlen;
  int append_rc;
  char append_msg[512];
  bool got_records;
  /* Under mu, for stats. */
  bool connected;
  uint64_t acked;
  uint64_t reconnects;
  int64_t acked_ms;
  char last_error[512];
} adm_follow;

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void flog(adm_follow *f, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void flog(adm_follow *f, int level, const char *fmt, ...) {
  char line[900];
  int n = snprintf(line, sizeof line, "follow: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  f->c->host->log(f->c->host->ctx, NULL, level, line);
  if (level != CD_LOG_INFO) {
    pthread_mutex_lock(&f->mu);
    snprintf(f->last_error, sizeof f->last_error, "%s", line + n);
    pthread_mutex_unlock(&f->mu);
  }
}

/* POST .../ack {"seq": seq} on the keep-alive handle. */
static int send_ack(adm_follow *f, uint64_t seq) {
  char url[ADM_FOLLOW_URL_MAX_BYTES + 32], body[64];
  snprintf(url, sizeof url, "%s/admin/replication/ack", f->url);
  snprintf(body, sizeof body, "{\"seq\": %" PRIu64 "}", seq);
  curl_easy_setopt(f->ack, CURLOPT_URL, url);
  curl_easy_setopt(f->ack, CURLOPT_POSTFIELDS, body);
  CURLcode cc = curl_easy_perform(f->ack);
  long status = 0;
  curl_easy_getinfo(f->ack, CURLINFO_RESPONSE_CODE, &status);
  if (cc != CURLE_OK || status != 200) {
    flog(f, CD_LOG_WARN, "acknowledging record %" PRIu64 " failed: %s", seq,
         cc != CURLE_OK ? curl_easy_strerror(cc) : "the primary refused it");
    return -1;
  }
  pthread_mutex_lock(&f->mu);
  f->acked = seq;
  f->acked_ms = wall_ms();
  pthread_mutex_unlock(&f->mu);
  return 0;
}

static size_t on_ack_body(char *p, size_t size, size_t n, void *ctx) {
  (void)p, (void)ctx;
  return size * n;
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx) {
  adm_follow *f = ctx;
  size_t len = size * n;
  if (f->status != 200) { /* an error's body, for the log */
    size_t room = sizeof f->errbody - 1 - f->errlen;
    size_t take = len < room ? len : room;
    memcpy(f->errbody + f->errlen, p, take);
    f->errlen += take;
    f->errbody[f->errlen] = '\0';
    return len;
  }
  /* ADM_SHIP_READ_BYTES holds a record and any piece libcurl hands over
   * (CURL_MAX_WRITE_SIZE); a record cut short stays at the front. */
  if (f->len + len > ADM_SHIP_READ_BYTES + CS_RECORD_BYTES_MAX) return 0;
  memcpy(f->buf + f->len, p, len);
  f->len += len;
  size_t used = 0;
  uint64_t last = 0;
  cs_error err = {0};
  int rc = cs_follow_append(f->c->store, f->buf, f->len, &used, &last, &err);
  if (rc) {
    f->append_rc = rc;
    snprintf(f->append_msg, sizeof f->append_msg, "%s",
             err.msg[0] ? err.msg : cs_strerror(rc));
    return 0; /* ends the transfer */
  }
  memmove(f->buf, f->buf + used, f->len - used);
  f->len -= used;
  if (used) {
    if (!f->got_records) {
      f->got_records = true;
      flog(f, CD_LOG_INFO, "records arriving from %s (up to %" PRIu64 ")",
           f->url, last);
    }
    send_ack(f, last);
  }
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx) {
  adm_follow *f = ctx;
  size_t len = size * n;
  int code;
  if (len > 9 && memcmp(p, "HTTP/", 5) == 0 &&
      sscanf(p, "HTTP/%*s %d", &code) == 1)
    f->status = code;
  return len;
}

static int on_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c,
                       curl_off_t d) {
  (void)a, (void)b, (void)c, (void)d;
  adm_follow *f = ctx;
  return atomic_load(&f->stop) ? 1 : 0;
}

/* Sleeps ms, or less when stopped. */
static void nap(adm_follow *f, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&f->mu);
  while (!atomic_load(&f->stop) &&
         pthread_cond_timedwait(&f->cv, &f->mu, &ts) == 0)
    ;
  pthread_mutex_unlock(&f->mu);
}

/* One transfer: until it breaks or stop. Returns the back-off to use. */
static int follow_once(adm_follow *f, CURL *h, int backoff) {
  uint64_t after = cs_follow_last(f->c->store);
  char url[ADM_FOLLOW_URL_MAX_BYTES + 64];
  snprintf(url, sizeof url, "%s/admin/replication?after=%" PRIu64, f->url,
           after);
  f->status = 0;
  f->len = 0;
  f->errlen = 0;
  f->errbody[0] = '\0';
  f->append_rc = 0;
  f->got_records = false;
  curl_easy_setopt(h, CURLOPT_URL, url);
  pthread_mutex_lock(&f->mu);
  f->connected = true;
  pthread_mutex_unlock(&f->mu);
  CURLcode cc = curl_easy_perform(h);
  pthread_mutex_lock(&f->mu);
  f->connected = false;
  f->reconnects++;
  pthread_mutex_unlock(&f->mu);
  if (atomic_load(&f->stop)) return backoff;
  if (f->got_records) backoff = ADM_FOLLOW_BACKOFF_MIN_MS;
  if (f->append_rc) {
    flog(f, CD_LOG_ERROR, "a record from %s was refused: %s", f->url,
         f->append_msg);
  } else if (f->status == 410) {
    flog(f, CD_LOG_ERROR,
         "%s no longer holds the records after %" PRIu64
         " (%s): restore this standby from a fresh backup of the primary",
         f->url, after, f->errbody);
    return ADM_FOLLOW_BACKOFF_MAX_MS;
  } else if (f->status && f->status != 200) {
    flog(f, CD_LOG_ERROR, "%s answered %ld: %s", f->url, f->status, f->errbody);
  } else {
    flog(f, CD_LOG_WARN, "lost the primary %s after record %" PRIu64 " (%s)",
         f->url, cs_follow_last(f->c->store),
         cc == CURLE_OK ? "the stream ended" : curl_easy_strerror(cc));
  }
  return backoff;
}

static void *follow_main(void *arg) {
  adm_follow *f = arg;
  CURL *h = curl_easy_init();
  f->ack = curl_easy_init();
  if (!h || !f->ack) {
    flog(f, CD_LOG_ERROR, "libcurl cannot start: not following %s", f->url);
    goto out;
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, f->hdrs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, f);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)ADM_FOLLOW_CONNECT_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(f->ack, CURLOPT_HTTPHEADER, f->ack_hdrs);
  curl_easy_setopt(f->ack, CURLOPT_WRITEFUNCTION, on_ack_body);
  curl_easy_setopt(f->ack, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(f->ack, CURLOPT_TIMEOUT_MS, (long)ADM_FOLLOW_ACK_TIMEOUT_MS);
  curl_easy_setopt(f->ack, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(f->ack, CURLOPT_PROTOCOLS_STR, "http,https");
  flog(f, CD_LOG_INFO, "following %s after record %" PRIu64, f->url,
       cs_follow_last(f->c->store));
  int backoff = ADM_FOLLOW_BACKOFF_MIN_MS;
  while (!atomic_load(&f->stop)) {
    backoff = follow_once(f, h, backoff);
    if (atomic_load(&f->stop)) break;
    flog(f, CD_LOG_INFO, "reconnecting to %s in %d ms", f->url, backoff);
    nap(f, backoff);
    backoff = backoff * 2 > ADM_FOLLOW_BACKOFF_MAX_MS
                  ? ADM_FOLLOW_BACKOFF_MAX_MS
                  : backoff * 2;
  }
  flog(f, CD_LOG_INFO, "stopped following %s at record %" PRIu64, f->url,
       cs_follow_last(f->c->store));
out:
  if (h) curl_easy_cleanup(h);
  if (f->ack) curl_easy_cleanup(f->ack);
  f->ack = NULL;
  return NULL;
}

static int read_key(const char *path, char *key, size_t cap, char *errbuf,
                    size_t errlen) {
  FILE *fp = fopen(path, "r");
  if (!fp) {
    snprintf(errbuf, errlen, "--follow-key-file %s: cannot open it", path);
    return -1;
  }
  size_t n = fread(key, 1, cap - 1, fp);
  fclose(fp);
  key[n] = '\0';
  key[strcspn(key, "\r\n")] = '\0';
  if (n == cap - 1 || !key[0]) {
    snprintf(errbuf, errlen,
             "--follow-key-file %s: holds no key (one line, the admin key)",
             path);
    return -1;
  }
  return 0;
}

int adm_follow_start(adm_ctx *c, const char *url, const char *key_file,
                     char *errbuf, size_t errlen) {
  size_t ulen = strlen(url);
  while (ulen && url[ulen - 1] == '/')
    ulen--;
  if (ulen >= ADM_FOLLOW_URL_MAX_BYTES) {
    snprintf(errbuf, errlen, "--follow: the URL is longer than %d bytes",
             ADM_FOLLOW_URL_MAX_BYTES - 1);
    return -1;
  }
  char key[ADM_FOLLOW_KEY_MAX_BYTES];
  if (read_key(key_file, key, sizeof key, errbuf, errlen)) return -1;
  adm_follow *f = calloc(1, sizeof *f);
  if (!f || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    free(f);
    snprintf(errbuf, errlen, "admin: cannot start following %s", url);
    return -1;
  }
  f->c = c;
  memcpy(f->url, url, ulen);
  f->url[ulen] = '\0';
  snprintf(f->keyhdr, sizeof f->keyhdr, "x-api-key: %s", key);
  memset(key, 0, sizeof key);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  f->buf = malloc(ADM_SHIP_READ_BYTES + CS_RECORD_BYTES_MAX);
  f->hdrs = curl_slist_append(NULL, f->keyhdr);
  f->ack_hdrs = curl_slist_append(NULL, f->keyhdr);
  if (f->ack_hdrs)
    f->ack_hdrs =
        curl_slist_append(f->ack_hdrs, "content-type: application/json");
  c->follow = f;
  if (!f->buf || !f->hdrs || !f->ack_hdrs ||
      pthread_create(&f->th, NULL, follow_main, f) != 0) {
    adm_follow_free(c);
    snprintf(errbuf, errlen, "admin: cannot start following %s", url);
    return -1;
  }
  f->started = true;
  return 0;
}

void adm_follow_stop(adm_ctx *c) {
  adm_follow *f = c->follow;
  if (!f) return;
  pthread_mutex_lock(&f->mu);
  atomic_store(&f->stop, true);
  pthread_cond_broadcast(&f->cv);
  bool join = f->started;
  f->started = false;
  pthread_mutex_unlock(&f->mu);
  if (join) pthread_join(f->th, NULL);
}

void adm_follow_free(adm_ctx *c) {
  adm_follow *f = c->follow;
  if (!f) return;
  adm_follow_stop(c);
  curl_slist_free_all(f->hdrs);
  curl_slist_free_all(f->ack_hdrs);
  free(f->buf);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  memset(f->keyhdr, 0, sizeof f->keyhdr);
  free(f);
  c->follow = NULL;
  curl_global_cleanup();
}

void adm_follow_gen(adm_ctx *c, yajl_gen g) {
  adm_follow *f = c->follow;
  adm_gen_str(g, "following");
  if (!f) {
    yajl_gen_null(g);
    return;
  }
  pthread_mutex_lock(&f->mu);
  yajl_gen_map_open(g);
  adm_gen_str(g, "url");
  adm_gen_str(g, f->url);
  adm_gen_str(g, "running");
  yajl_gen_bool(g, !atomic_load(&f->stop));
  adm_gen_str(g, "connected");
  yajl_gen_bool(g, f->connected);
  adm_gen_str(g, "acked_seq");
  adm_gen_u64(g, f->acked);
  adm_gen_str(g, "acked_at");
  adm_gen_time(g, f->acked_ms);
  adm_gen_str(g, "connections");
  adm_gen_u64(g, f->reconnects);
  adm_gen_str(g, "last_error");
  if (f->last_error[0])
    adm_gen_str(g, f->last_error);
  else
    yajl_gen_null(g);
  yajl_gen_map_close(g);
  pthread_mutex_unlock(&f->mu);
}
