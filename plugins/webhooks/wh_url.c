/*
 * wh_url.c: webhook URLs and the allow-list.
 *
 * The server calls only hosts its administrator allowed (--webhook-allow
 * HOST[:PORT]). The check is made on the URL's host and port as written
 * (the port defaulting to 80 or 443), in a canonical form on both sides:
 * host names in lower case, addresses as inet_ntop writes them, so
 * "[0:0::1]" is "::1" and "Hooks.Example.COM" is "hooks.example.com". A
 * URL is read strictly, and only in the one shape the API documents, so
 * that libcurl, which is handed the same text, can read no other host out
 * of it: no user information (which would put an '@' before the host), no
 * backslash, no space or control character, no percent escape in the
 * host, no fragment.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fe_hostname.h"
#include "wh.h"

/* Whether c may appear in a URL's path or query (RFC 3986: unreserved,
 * sub-delims, ':', '@', '/', '?'; '%' is checked with its digits). */
static bool path_char(unsigned char c) {
  if (isalnum(c)) return true;
  return strchr("-._~!$&'()*+,;=:@/?", c) != NULL && c != '\0';
}

/* Reads a host as written (s, len; brackets included for IPv6) into its
 * canonical text. 0 or -1. */
static int host_read(const char *s, size_t len, char out[WH_HOST_BYTES]) {
  char buf[WH_HOST_BYTES];
  unsigned char addr[16];
  if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
    if (len - 2 >= sizeof(buf)) return -1;
    memcpy(buf, s + 1, len - 2);
    buf[len - 2] = '\0';
    if (inet_pton(AF_INET6, buf, addr) != 1) return -1;
    return inet_ntop(AF_INET6, addr, out, WH_HOST_BYTES) != NULL ? 0 : -1;
  }
  if (len == 0 || len >= sizeof(buf)) return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  if (inet_pton(AF_INET, buf, addr) == 1)
    return inet_ntop(AF_INET, addr, out, WH_HOST_BYTES) != NULL ? 0 : -1;
  if (!fe_host_name_ok(buf, len)) return -1;
  for (size_t i = 0; i <= len; i++)
    out[i] = (char)tolower((unsigned char)buf[i]);
  return 0;
}

/* Splits an authority, "host", "host:port", "[v6]" or "[v6]:port", into
 * the host as written and its port (0 when none is given). 0 or -1. */
static int authority_split(const char *s, size_t len, size_t *host_len,
                           unsigned *port) {
  size_t h;
  if (len > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL) return -1;
    h = (size_t)(close - s) + 1;
  } else {
    const char *colon = memchr(s, ':', len);
    h = colon != NULL ? (size_t)(colon - s) : len;
  }
  *host_len = h;
  *port = 0;
  if (h == len) return 0;
  if (s[h] != ':') return -1;
  uint64_t n;
  if (cs_decimal_parse(s + h + 1, len - h - 1, 1, FE_PORT_MAX, &n) != 0)
    return -1;
  *port = (unsigned)n;
  return 0;
}

int wh_url_parse(const char *s, size_t len, wh_url *out, char *why,
                 size_t whylen) {
  memset(out, 0, sizeof(*out));
  if (len > WH_URL_MAX_BYTES) {
    snprintf(why, whylen, "longer than %d bytes", WH_URL_MAX_BYTES);
    return -1;
  }
  if (memchr(s, '\0', len) != NULL) {
    snprintf(why, whylen, "a NUL byte in the URL");
    return -1;
  }
  size_t at;
  if (len >= 7 && strncasecmp(s, "http://", 7) == 0) {
    at = 7;
  } else if (len >= 8 && strncasecmp(s, "https://", 8) == 0) {
    out->https = true;
    at = 8;
  } else {
    snprintf(why, whylen, "not an http:// or https:// URL");
    return -1;
  }
  size_t auth_end = at;
  while (auth_end < len && s[auth_end] != '/' && s[auth_end] != '?')
    auth_end++;
  size_t host_len;
  unsigned port;
  if (memchr(s + at, '@', auth_end - at) != NULL) {
    snprintf(why, whylen, "a URL with user information is not taken");
    return -1;
  }
  if (authority_split(s + at, auth_end - at, &host_len, &port) != 0 ||
      host_read(s + at, host_len, out->host) != 0) {
    snprintf(why, whylen,
             "expected http(s)://HOST[:PORT]/PATH, HOST a host name, an IPv4 "
             "address or an [IPv6] address and PORT 1-65535");
    return -1;
  }
  out->port = port != 0 ? port : out->https ? 443 : 80;
  for (size_t i = auth_end; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
          !isxdigit((unsigned char)s[i + 2])) {
        snprintf(why, whylen, "a '%%' not followed by two hex digits");
        return -1;
      }
      i += 2;
    } else if (c == '#') {
      snprintf(why, whylen, "a URL with a fragment ('#') is not taken");
      return -1;
    } else if (!path_char(c)) {
      snprintf(why, whylen, "a character a URL may not hold, at byte %zu", i);
      return -1;
    }
  }
  return 0;
}

int wh_allow_parse(const char *text, wh_allow *out, char *why, size_t whylen) {
  size_t len = strlen(text), host_len;
  memset(out, 0, sizeof(*out));
  if (authority_split(text, len, &host_len, &out->port) != 0 ||
      host_read(text, host_len, out->host) != 0) {
    snprintf(why, whylen,
             "--webhook-allow %s: expected HOST[:PORT], HOST a host name, an "
             "IPv4 address or an [IPv6] address",
             text);
    return -1;
  }
  return 0;
}

bool wh_allowed(const wh_allow *list, size_t count, const wh_url *u) {
  for (size_t i = 0; i < count; i++)
    if (strcmp(list[i].host, u->host) == 0 &&
        (list[i].port == 0 || list[i].port == u->port))
      return true;
  return false;
}
