/*
 * fe_refuse.c: request heads are checked before h2o acts on them.
 *
 * Why this file exists. Some answers h2o 2.2.5 (Debian 12's) gives on its
 * own, before any handler runs, break the API's promises, and h2o's API
 * offers no way to change them.
 *
 * HTTP/1.x. h2o parses a request head with picohttpparser's
 * phr_parse_request and then:
 *   - answers a head it cannot parse (a DEL byte in a header value, a bad
 *     request line, a head over H2O_MAX_REQLEN) by writing a fixed
 *     "400 Bad Request" in text/plain straight to the socket, past every
 *     filter, so the answer has no x-request-id and no JSON body;
 *   - reads the body by the FIRST Content-Length when several are sent, and
 *     lets Transfer-Encoding win over Content-Length silently: two parties
 *     that disagree on where a request ends is request smuggling, which
 *     RFC 9112 section 6.3 answers with 400 and closing the connection.
 * libh2o-evloop calls phr_parse_request through its PLT, and contactd
 * exports its symbols (ENABLE_EXPORTS), so the definition below is the one
 * h2o's HTTP/1 code calls. It calls picohttpparser's own (the next definition
 * in the lookup order) and, when the head must be refused, hands h2o instead a
 * complete head of its own: "GET <marker>" in HTTP/1.0 with no headers and no
 * body. h2o then runs that request through the server like any other; the front
 * end recognises the marker by its address (fe_refusal) and answers
 * 400 in the API's JSON shape, with x-request-id, and closes the
 * connection (HTTP/1.0 without keep-alive). No body is read, so whatever
 * bytes followed are never taken for a request. Left alone: the HTTP/2
 * connection preface ("PRI * HTTP/2"), which h2o upgrades on a parse error,
 * and input of only CR and LF, which h2o closes quietly.
 *
 * HTTP/2. h2o runs a handler only once the whole body has arrived, and
 * resets a stream whose body passes its buffer limit with REFUSED_STREAM,
 * which tells a client "not processed, try again": curl retries forever. The
 * one answer h2o can give while a body streams is the 400 it sends when
 * h2o_hpack_parse_headers reports a bad header character. A body over
 * CS_BODY_MAX_BYTES but within h2o's buffer (FE_BODY_BUFFER_MAX_BYTES) is
 * received whole and the handler answers it 413 with the API's JSON. For
 * one whose content-length says it would pass the buffer, the definition
 * of h2o_hpack_parse_headers below (also called through the PLT) reports
 * that bad character, after marking the request's path the same way; the
 * front end turns h2o's 400 into the API's 413. h2o then resets the stream
 * when the next DATA frame arrives, and a frame of the answer not yet sent
 * by then is lost with it: the status (the HEADERS frame, sent at once)
 * always reaches the client, the JSON body only when the client paused
 * between its headers and its body (curl with "Expect" would). A body with
 * no content-length that passes the buffer is still reset by h2o with
 * REFUSED_STREAM: there is no earlier moment to answer it.
 *
 * Bulk routes (CD_ROUTE_BULK) take bodies up to FE_BULK_BODY_MAX_BYTES, so
 * h2o's buffer limit is FE_BULK_BODY_BUFFER_MAX_BYTES for every request
 * (h2o 2.2 has one limit for all). Both definitions below refuse, from the
 * head, a content-length past FE_BODY_BUFFER_MAX_BYTES on any route that
 * is not a bulk one (fe_refuse_set_bulk's question), with the same 413: over
 * HTTP/1 by the marker above (the connection closes; the body is never
 * read). A body with no content-length on another route is still buffered
 * up to the bulk limit before its handler answers 413.
 */
#include "fe_refuse.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cs_limits.h"
#include "fe_limits.h"
#include "fe_log.h"
#include "h2o.h"
#include "h2o/cache_digests.h"

/* h2o/http2_internal.h declares h2o_hpack_parse_headers but includes a
 * header Debian does not install (khash.h); only pointers to the table pass
 * through here, so its type stays incomplete (the definition below is the
 * only declaration needed). */
struct st_h2o_hpack_header_table_t;

/* picohttpparser's header, as its phr_parse_request fills it (the library
 * installs no header of its own). */
struct phr_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

typedef int (*phr_parse_request_fn)(const char *, size_t, const char **,
                                    size_t *, const char **, size_t *, int *,
                                    struct phr_header *, size_t *, size_t);

/* The markers: paths no parsed request can have (picohttpparser refuses a
 * control character in the target), told apart by address. */
static const char refused_malformed[] = "\x01malformed";
static const char refused_framing[] = "\x01framing";
static const char refused_too_large[] = "\x01too-large";
static const char refused_body_too_large[] = "\x01body-too-large";

typedef int (*hpack_parse_fn)(h2o_req_t *, struct st_h2o_hpack_header_table_t *,
                              const uint8_t *, size_t, int *, size_t *,
                              h2o_cache_digests_t **, const char **);

/* The library's own definition of name. Without it no request could be
 * served at all, so its absence is fatal. */
static void *real(const char *name) {
  void *fn = dlsym(RTLD_NEXT, name);
  if (fn == NULL) {
    fe_log_printf(CD_LOG_ERROR, NULL, "%s not found: %s", name, dlerror());
    abort();
  }
  return fn;
}

static phr_parse_request_fn real_parse(void) {
  static phr_parse_request_fn fn;
  if (fn == NULL) fn = (phr_parse_request_fn)real("phr_parse_request");
  return fn;
}

static bool name_is(const struct phr_header *h, const char *name) {
  size_t n = strlen(name);
  return h->name != NULL && h->name_len == n &&
         strncasecmp(h->name, name, n) == 0;
}

static _Atomic(fe_bulk_fn) bulk_fn;
static void *_Atomic bulk_ctx;

void fe_refuse_set_bulk(fe_bulk_fn fn, void *ctx) {
  atomic_store(&bulk_ctx, ctx);
  atomic_store(&bulk_fn, fn);
}

/* A body of content_length bytes is past what this request may send. */
static bool body_too_large(size_t content_length, const char *method,
                           size_t method_len, const char *path,
                           size_t path_len) {
  if (content_length <= FE_BODY_BUFFER_MAX_BYTES) return false;
  if (content_length > FE_BULK_BODY_BUFFER_MAX_BYTES) return true;
  fe_bulk_fn fn = atomic_load(&bulk_fn);
  return fn == NULL ||
         !fn(atomic_load(&bulk_ctx), method, method_len, path, path_len);
}

/* The value of the one content-length field, or SIZE_MAX (none, or not a
 * number h2o would take: h2o answers that itself). */
static size_t content_length_of(const struct phr_header *h, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!name_is(&h[i], "content-length")) continue;
    size_t v = 0;
    if (h[i].value_len == 0 || h[i].value_len > 19) return SIZE_MAX;
    for (size_t j = 0; j < h[i].value_len; j++) {
      char c = h[i].value[j];
      if (c < '0' || c > '9') return SIZE_MAX;
      v = v * 10 + (size_t)(c - '0');
    }
    return v;
  }
  return SIZE_MAX;
}

/* Several Content-Length fields (equal or not), several Transfer-Encoding
 * fields, or both kinds together: the request's end is ambiguous. */
static bool framing_ambiguous(const struct phr_header *h, size_t n) {
  int lengths = 0, encodings = 0;
  for (size_t i = 0; i < n; i++) {
    if (name_is(&h[i], "content-length")) lengths++;
    if (name_is(&h[i], "transfer-encoding")) encodings++;
  }
  return lengths > 1 || encodings > 1 || (lengths && encodings);
}

static bool only_crlf(const char *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (buf[i] != '\r' && buf[i] != '\n') return false;
  return true;
}

static int refuse(const char *marker, size_t consumed, const char **method,
                  size_t *method_len, const char **path, size_t *path_len,
                  int *minor_version, size_t *num_headers) {
  *method = "GET";
  *method_len = 3;
  *path = marker;
  *path_len = strlen(marker);
  *minor_version = 0;
  *num_headers = 0;
  return (int)consumed;
}

int phr_parse_request(const char *buf, size_t len, const char **method,
                      size_t *method_len, const char **path, size_t *path_len,
                      int *minor_version, struct phr_header *headers,
                      size_t *num_headers, size_t last_len) {
  int rc = real_parse()(buf, len, method, method_len, path, path_len,
                        minor_version, headers, num_headers, last_len);
  if (rc >= 0) {
    if (framing_ambiguous(headers, *num_headers))
      return refuse(refused_framing, (size_t)rc, method, method_len, path,
                    path_len, minor_version, num_headers);
    size_t cl = content_length_of(headers, *num_headers);
    if (cl != SIZE_MAX &&
        body_too_large(cl, *method, *method_len, *path, *path_len)) {
      /* The other headers stay (the answer carries the client's
       * x-request-id); those that would read a body, keep the connection
       * or upgrade it go. */
      size_t kept = 0;
      for (size_t i = 0; i < *num_headers; i++)
        if (!name_is(&headers[i], "content-length") &&
            !name_is(&headers[i], "transfer-encoding") &&
            !name_is(&headers[i], "connection") &&
            !name_is(&headers[i], "upgrade") && !name_is(&headers[i], "expect"))
          headers[kept++] = headers[i];
      refuse(refused_body_too_large, (size_t)rc, method, method_len, path,
             path_len, minor_version, num_headers);
      *num_headers = kept;
      return rc;
    }
    return rc;
  }
  if (rc == -1) {
    static const char preface[] = "PRI * HTTP/2";
    if ((len >= sizeof(preface) - 1 &&
         memcmp(buf, preface, sizeof(preface) - 1) == 0) ||
        (len <= 4 && only_crlf(buf, len)))
      return rc;
    return refuse(refused_malformed, len, method, method_len, path, path_len,
                  minor_version, num_headers);
  }
  if (rc == -2 && len >= H2O_MAX_REQLEN)
    return refuse(refused_too_large, len, method, method_len, path, path_len,
                  minor_version, num_headers);
  return rc;
}

int h2o_hpack_parse_headers(h2o_req_t *req,
                            struct st_h2o_hpack_header_table_t *header_table,
                            const uint8_t *src, size_t len,
                            int *pseudo_header_exists_map,
                            size_t *content_length,
                            h2o_cache_digests_t **digests,
                            const char **err_desc) {
  static hpack_parse_fn fn;
  if (fn == NULL) fn = (hpack_parse_fn)real("h2o_hpack_parse_headers");
  int rc = fn(req, header_table, src, len, pseudo_header_exists_map,
              content_length, digests, err_desc);
  /* Only a request's own headers (trailers come without the map). */
  if (rc == 0 && pseudo_header_exists_map != NULL &&
      *content_length != SIZE_MAX &&
      body_too_large(*content_length, req->input.method.base,
                     req->input.method.len, req->input.path.base,
                     req->input.path.len)) {
    req->input.path =
        h2o_iovec_init(refused_body_too_large, strlen(refused_body_too_large));
    *err_desc = "request body too large";
    return H2O_HTTP2_ERROR_INVALID_HEADER_CHAR;
  }
  return rc;
}

const char *fe_refusal(const h2o_req_t *req, int *status) {
  const char *p = req->input.path.base;
  *status = 400;
  if (p == refused_malformed) return "malformed request";
  if (p == refused_framing)
    return "ambiguous request framing: several Content-Length or "
           "Transfer-Encoding fields, or both";
  if (p == refused_too_large) return "request line and headers too large";
  if (p == refused_body_too_large) {
    *status = 413;
    return "request body too large";
  }
  return NULL;
}
