/*
 * wh.h: the webhooks plugin's private header.
 *
 *   webhooks.c  the plugin table: state, create, drain, destroy, metrics
 *   wh_routes.c POST /webhooks, GET /webhooks, DELETE /webhooks/{id},
 *               POST /webhooks/{id}/enable, and the side file's writes
 *   wh_deliver.c the delivery thread: the feed read, libcurl's multi
 *               interface, acknowledgements and retries
 *   wh_url.c    URLs and the allow-list (--webhook-allow)
 *   wh_sign.c   ids, secrets, the Standard Webhooks signature
 *   wh_retry.c  the retry schedule
 *   wh_body.c   POST /webhooks's body, GET /webhooks's answer
 *   wh_file.c   the side file's format (webhooks.side)
 *
 * The last five are the library whcore: no thread, no store call, no
 * network; the unit tests drive them alone. The first three make the
 * plugin over them.
 *
 * Concurrency: the plugin's state (wh_ctx) has two locks. mu guards the
 * list of webhooks and every field of every wh_rec in it; it is held only
 * for memory work (never across a store call, a file write or network
 * I/O). save_mu orders the side file's writes: whoever writes the file
 * holds it from encoding the records (under mu) to the end of the write,
 * so the file on disk is always the newest encoding. Lock order: save_mu,
 * then mu. Only the delivery thread frees a webhook (after a route marked
 * it removed), so a pointer to a wh_hook stays valid on that thread.
 */
#ifndef WH_H
#define WH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cd_plugin.h"
#include "cs.h"
#include "ct_codec.h"
#include "wh_limits.h"

/* ---------------------------------------------------------- a webhook */

typedef enum wh_hook_state {
  WH_ACTIVE = 0, /* delivering, or waiting for changes */
  WH_FAILING,    /* the last attempt failed; a retry is due */
  WH_DISABLED,   /* failed for longer than the retry window; waits for
                    POST /webhooks/{id}/enable */
  WH_STATE_COUNT
} wh_hook_state;

/* "active", "failing", "disabled"; and back (-1: none). */
const char *wh_state_name(int state);
int wh_state_from_name(const char *s, size_t len);

/*
 * What is kept of a webhook in the side file. Plain memory (no pointers),
 * so that it can be copied and encoded as is.
 */
typedef struct wh_rec {
  char id[WH_ID_BYTES + 1];
  uint32_t account;
  unsigned types; /* bits 1 << cs_change_type, never 0 */
  char url[WH_URL_MAX_BYTES + 1];
  uint8_t secret[WH_SECRET_BYTES];
  int64_t created_ms;
  /* The feed position of the last change the receiver acknowledged (or
   * skipped as not its own): deliveries resume after it. */
  uint64_t position;
  uint8_t state;            /* wh_hook_state */
  uint32_t failures;        /* failed attempts in a row */
  int64_t failing_since_ms; /* the first of them; 0 when none */
  int64_t last_delivery_ms; /* the last acknowledged delivery; 0: none */
  char last_error[WH_ERROR_MAX_BYTES + 1]; /* "" when none */
} wh_rec;

/* ------------------------------------------------ URLs (wh_url.c) */

/* A URL's or an allow-list entry's host: a host name (lower case), an
 * IPv4 address or an IPv6 address (without brackets), in its canonical
 * text (inet_ntop's), so that equal hosts compare equal as strings. */
#define WH_HOST_BYTES (FE_HOST_NAME_MAX_BYTES + 1)

typedef struct wh_url {
  bool https;
  char host[WH_HOST_BYTES];
  unsigned port; /* as given, or 80/443 */
} wh_url;

/*
 * Reads a webhook URL: "http://" or "https://" (any case), a host (a host
 * name, a dotted IPv4 address or a bracketed IPv6 address; no user
 * information), an optional port 1-65535, then an optional path and query
 * ("/..."; no fragment), at most WH_URL_MAX_BYTES, every byte a character
 * RFC 3986 allows in a URL (percent escapes with two hex digits). 0, or
 * -1 with a reason for a person in why.
 */
int wh_url_parse(const char *s, size_t len, wh_url *out, char *why,
                 size_t whylen);

/* One --webhook-allow entry: HOST[:PORT]; port 0 allows every port. */
typedef struct wh_allow {
  char host[WH_HOST_BYTES];
  unsigned port;
} wh_allow;

/* Reads an entry as the front end checked it (fe_hostport_check). 0, or
 * -1 with why. */
int wh_allow_parse(const char *text, wh_allow *out, char *why, size_t whylen);
/* Whether some entry allows the URL's host and port. */
bool wh_allowed(const wh_allow *list, size_t count, const wh_url *u);

/* ------------------------------------ ids, secrets, signatures (wh_sign.c) */

/* A new id, WH_ID_PREFIX and WH_ID_RANDOM_CHARS base62 characters, and a
 * NUL into out; a new secret's WH_SECRET_BYTES. 0, or -1 when the random
 * source fails. */
int wh_id_new(char out[WH_ID_BYTES + 1]);
int wh_secret_new(uint8_t key[WH_SECRET_BYTES]);
/* Whether s is an id's shape (what wh_id_new makes). */
bool wh_id_valid(const char *s, size_t len);
/* "whsec_" and the key's base64, and a NUL. */
void wh_secret_format(const uint8_t key[WH_SECRET_BYTES],
                      char out[WH_SECRET_TEXT_BYTES + 1]);
/* The key of a secret's text; 0, or -1 for anything wh_secret_format
 * would not write. */
int wh_secret_parse(const char *s, size_t len, uint8_t key[WH_SECRET_BYTES]);
/*
 * The Standard Webhooks signature of one delivery: "v1," and the base64
 * of HMAC-SHA256 keyed with key over "<msg_id>.<timestamp>.<body>", and a
 * NUL, into out. 0, or -1 when libcrypto fails.
 */
int wh_sign(const uint8_t *key, size_t key_len, const char *msg_id,
            int64_t timestamp, const char *body, size_t body_len,
            char out[WH_SIGNATURE_BYTES + 1]);

/* ------------------------------------------- retries (wh_retry.c) */

/*
 * The pause before the next attempt after failures failed attempts in a
 * row (1 for the first): WH_RETRY_FIRST_MS doubled failures - 1 times,
 * moved by up to WH_RETRY_JITTER_PERCENT either way as rnd says (any
 * value, uniformly), and never more than WH_RETRY_MAX_MS.
 */
int64_t wh_retry_delay_ms(uint32_t failures, uint32_t rnd);

/* -------------------------------------- the API's JSON (wh_body.c) */

/*
 * POST /webhooks's body: {"url": ..., "types": [...]}, types optional
 * (absent or null: every type). The URL is read with wh_url_parse and must
 * be allowed by the list. 0 with the URL's text (NUL-terminated) in url
 * and the types in *types; or -1 with *e: 400 invalid_json (not JSON, or
 * not an object), duplicate_field, unknown_field (naming the member),
 * missing_field "url", invalid_field "url" (not a string, not a URL this
 * server takes, or a host the allow-list does not name), invalid_field
 * "types" (not a list, empty, or an item that is no change type).
 */
int wh_body_parse(const char *body, size_t len, const wh_allow *allow,
                  size_t allow_count, char url[WH_URL_MAX_BYTES + 1],
                  unsigned *types, ct_err *e);

/* Writes one webhook as GET /webhooks lists it: id, url, types, state,
 * created_at, last_delivery_at (null: none), last_error (null: none);
 * never the secret. */
void wh_gen_hook(yajl_gen g, const wh_rec *r);
/* Writes {"id": ...}, or {"id": ..., "secret": ...} when key is not
 * NULL. */
void wh_gen_id(yajl_gen g, const char *id, const uint8_t *key);

/* ------------------------------------------ the side file (wh_file.c) */

#define WH_SIDE_FILE "webhooks.side"

/* Encodes count records into a malloc'd buffer (*out, *len). 0, or -1
 * when out of memory. */
int wh_file_encode(const wh_rec *const *recs, size_t count, char **out,
                   size_t *len);
/*
 * Decodes a side file into a malloc'd array of records (*recs, *count; a
 * file of no webhooks gives NULL and 0). Everything is checked: the
 * header, the length, the checksum, every member of every record (its
 * type, its range, the URL's syntax, the secret), no member missing, none
 * unknown or twice, ids unique, the per-account and total limits. 0, or
 * -1 with what is wrong, and where, in why; then nothing is returned.
 */
int wh_file_decode(const uint8_t *data, size_t len, wh_rec **recs,
                   size_t *count, char *why, size_t whylen);

/* Sets r's last_error (printf-style), cut to WH_ERROR_MAX_BYTES, every
 * byte that is not printable ASCII made '?' (what the file takes). */
void wh_rec_error(wh_rec *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* -------------------------------------------- the plugin (the rest) */

/* A delivery's outcome, as the metrics count them. */
typedef enum wh_outcome {
  WH_OUT_OK = 0,     /* a 2xx within the timeout */
  WH_OUT_HTTP_ERROR, /* another status */
  WH_OUT_NETWORK,    /* no answer: refused, reset, DNS, TLS */
  WH_OUT_TIMEOUT,    /* no whole answer within WH_DELIVERY_TIMEOUT_MS */
  WH_OUT_COUNT
} wh_outcome;

/* One webhook in memory: its record and the delivery thread's own state. */
typedef struct wh_hook {
  wh_rec rec;           /* under mu */
  struct wh_hook *next; /* under mu; creation order */
  bool removed;         /* under mu: deleted, for the thread to free */
  bool retry_now;       /* under mu: enabled; the thread tries it now */
  int64_t oldest_at_ms; /* under mu: when the oldest undelivered change
                           read was made; 0 when none is pending */
  /* The delivery thread's alone. */
  struct wh_delivery *d; /* NULL until its first delivery */
} wh_hook;

typedef struct wh_ctx {
  const cd_host *host;
  cs_store *store;
  wh_allow allow[FE_WEBHOOK_ALLOW_MAX];
  size_t allow_count;
  int64_t retry_window_ms;
  bool curl_ready; /* curl_global_init done */

  pthread_mutex_t mu;
  pthread_mutex_t save_mu;
  wh_hook *head, **tail; /* under mu */
  bool dirty;            /* under mu: positions not yet in the file */
  /* Under mu: side-file changes the routes queued for the thread, and
   * whether it takes them (false once draining: routes run their own). */
  struct wh_job *jobs, **jobs_tail;
  bool accepting;

  /* The delivery thread (wh_deliver.c). */
  void *multi; /* CURLM */
  pthread_t thread;
  bool thread_started;
  bool watching;
  bool drained;
  atomic_bool stop;
  int64_t last_save_ms; /* the thread's */
  _Atomic uint64_t outcomes[WH_OUT_COUNT];
} wh_ctx;

/* The clock (Unix ms). */
int64_t wh_now_ms(void);

/* wh_routes.c */
/* Runs the queued jobs (each writes the side file and answers its
 * request). */
void wh_jobs_run(wh_ctx *c);
int wh_handle_create(void *state, const cd_request *req, cd_response *res);
int wh_handle_list(void *state, const cd_request *req, cd_response *res);
int wh_handle_delete(void *state, const cd_request *req, cd_response *res);
int wh_handle_enable(void *state, const cd_request *req, cd_response *res);

/*
 * Writes the side file with every webhook not removed, as changed by edit
 * (NULL: none), and then applies the edit to the list. Takes save_mu, then
 * mu. Returns 0; one of the WH_E* codes below, and then nothing is written
 * or changed; or a store code with err filled, and then the list is as
 * before (and dirty, so that the next save tries again). Enabling one
 * that is not disabled writes nothing: a failing one is tried again at
 * once, an active one is left alone.
 */
enum {
  WH_ENOTFOUND = 1,     /* remove_id, enable_id: none of that account */
  WH_EACCOUNT_FULL = 2, /* add: the account has WH_PER_ACCOUNT_MAX */
  WH_ESERVER_FULL = 3,  /* add: the server has WH_TOTAL_MAX */
};
typedef struct wh_edit {
  const wh_rec *add;     /* a new webhook */
  const char *remove_id; /* one to delete */
  const char *enable_id; /* one to make active again */
  uint32_t account;      /* remove_id, enable_id: whose */
} wh_edit;
int wh_save(wh_ctx *c, const wh_edit *edit, cs_error *err);

/* wh_deliver.c: the thread and the commit watcher. 0, or -1 with a
 * message. */
int wh_deliver_start(wh_ctx *c, char *errbuf, size_t errlen);
/* Stops and joins the thread, removes the watcher. */
void wh_deliver_stop(wh_ctx *c);
/* Frees the thread's own state of every webhook and the multi handle. */
void wh_deliver_free(wh_ctx *c);
/* Wakes the thread (a route changed the list). */
void wh_deliver_wake(wh_ctx *c);
/* Frees one webhook's delivery state (the thread's, or destroy's). */
void wh_delivery_free(wh_ctx *c, struct wh_delivery *d);

#endif
