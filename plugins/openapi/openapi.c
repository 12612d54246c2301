/*
 * openapi.c: GET /openapi.json, the API described as OpenAPI 3.1.
 *
 * The document is kept as plain JSON in openapi.json beside this file, where
 * it can be read and reviewed; the build compiles it in (embed.cmake). Its
 * one server is written there as the relative URL "/"; each answer puts the
 * address the client used in its place, "http://HOST[:PORT]" (or https on a
 * TLS listener), from the request's authority (HTTP/1's Host, HTTP/2's
 * :authority: cd_request.authority), so a client generated from the served
 * document calls the server it was fetched from. The authority is only ever
 * copied when it is a host name (fe_hostname.h), a dotted IPv4 address or a
 * bracketed IPv6 address, with an optional port of 1 to 65535: anything else (a
 * header made to inject JSON, a path, user information) leaves the relative
 * "/", which a client resolves against the document's own URL.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_plugin.h"
#include "fe_hostname.h"

extern const char oa_document[];
extern const size_t oa_document_len;

/* The server's URL as openapi.json writes it: what each answer replaces. */
static const char oa_relative_server[] = "\"url\": \"/\"";

typedef struct oa_state {
  const cd_host *host;
  size_t server_at; /* offset of oa_relative_server in the document */
} oa_state;

/* Whether text (len bytes) is an authority the document may name:
 * HOST[:PORT] with HOST a host name or an IPv4 address, or [IPV6][:PORT]. */
static bool oa_authority_ok(const char *text, size_t len) {
  char buf[FE_HOST_NAME_MAX_BYTES + 1];
  unsigned char addr[16];
  size_t host_len;
  const char *port;
  bool v6 = len > 0 && text[0] == '[';
  if (v6) {
    const char *close = memchr(text, ']', len);
    if (close == NULL) return false;
    host_len = (size_t)(close - text) - 1;
    port = close + 1;
    if (host_len == 0 || host_len >= sizeof buf) return false;
    memcpy(buf, text + 1, host_len);
  } else {
    const char *colon = memchr(text, ':', len);
    host_len = colon != NULL ? (size_t)(colon - text) : len;
    port = text + host_len;
    if (host_len == 0 || host_len >= sizeof buf) return false;
    memcpy(buf, text, host_len);
  }
  buf[host_len] = '\0';
  bool host_ok =
      v6 ? inet_pton(AF_INET6, buf, addr) == 1
         : inet_pton(AF_INET, buf, addr) == 1 || fe_host_name_ok(buf, host_len);
  if (!host_ok) return false;
  size_t rest = len - (size_t)(port - text);
  if (rest == 0) return true;
  uint64_t n;
  return port[0] == ':' &&
         cs_decimal_parse(port + 1, rest - 1, 1, FE_PORT_MAX, &n) == 0;
}

static int oa_handle(void *state, const cd_request *req, cd_response *res) {
  const oa_state *st = state;
  const char *authority = req->authority;
  size_t alen = authority != NULL ? strlen(authority) : 0;
  if (authority == NULL || !oa_authority_ok(authority, alen)) {
    st->host->respond(res, 200, "application/json", oa_document,
                      oa_document_len);
    return CD_DONE;
  }
  const char *scheme = req->scheme != NULL && strcmp(req->scheme, "https") == 0
                           ? "https"
                           : "http";
  size_t head = st->server_at, tail_at = head + sizeof oa_relative_server - 1;
  size_t cap = oa_document_len + alen + 32;
  char *body = malloc(cap);
  if (body == NULL) {
    st->host->error(res, 500, "internal", "internal error", NULL, 0);
    return CD_DONE;
  }
  size_t n = 0;
  memcpy(body, oa_document, head);
  n += head;
  n += (size_t)snprintf(body + n, cap - n, "\"url\": \"%s://%.*s\"", scheme,
                        (int)alen, authority);
  memcpy(body + n, oa_document + tail_at, oa_document_len - tail_at);
  n += oa_document_len - tail_at;
  st->host->respond(res, 200, "application/json", body, n);
  free(body);
  return CD_DONE;
}

static int oa_create(const cd_host *host, cs_store *store, void **state_out,
                     char *errbuf, size_t errlen) {
  (void)store;
  const char *servers = strstr(oa_document, "\"servers\": [");
  const char *url =
      servers != NULL ? strstr(servers, oa_relative_server) : NULL;
  if (url == NULL) {
    snprintf(errbuf, errlen,
             "openapi: the document has no server %s to fill in",
             oa_relative_server);
    return -1;
  }
  oa_state *st = malloc(sizeof *st);
  if (st == NULL) {
    snprintf(errbuf, errlen, "openapi: out of memory");
    return -1;
  }
  st->host = host;
  st->server_at = (size_t)(url - oa_document);
  *state_out = st;
  return 0;
}

static void oa_destroy(void *state) {
  free(state);
}

static const cd_route oa_routes[] = {
    {"GET", "/openapi.json", 0, oa_handle},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "openapi",
    .create = oa_create,
    .destroy = oa_destroy,
    .routes = oa_routes,
    .route_count = sizeof oa_routes / sizeof oa_routes[0],
};
