/*
 * fe_json.c: error bodies, generated with yajl so that escaping is never
 * hand-rolled.
 *
 * yajl refuses invalid UTF-8 when asked to validate, and messages may quote
 * what a client sent, so strings are made valid first (invalid bytes become
 * U+FFFD) and the generator then only escapes.
 */
#include "fe_json.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

/* A copy of s with invalid UTF-8 replaced, or s itself when it is valid
 * (then *owned is false). */
static const char *valid_utf8(const char *s, size_t len, size_t *out_len,
                              bool *owned) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    size_t n = utf8_sequence(u + i, len - i);
    if (n == 0) break;
    i += n;
  }
  *owned = false;
  *out_len = len;
  if (i == len) return s;

  char *copy = malloc(len * 3 + 1);
  if (copy == NULL) return NULL;
  size_t o = 0;
  i = 0;
  while (i < len) {
    size_t n = utf8_sequence(u + i, len - i);
    if (n == 0) {
      memcpy(copy + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    } else {
      memcpy(copy + o, s + i, n);
      o += n;
      i += n;
    }
  }
  copy[o] = '\0';
  *owned = true;
  *out_len = o;
  return copy;
}

int fe_json_gen_string(yajl_gen g, const char *s, size_t slen) {
  size_t len;
  bool owned;
  const char *v = valid_utf8(s, slen, &len, &owned);
  if (v == NULL) return -1;
  int rc =
      yajl_gen_string(g, (const unsigned char *)v, len) == yajl_gen_status_ok
          ? 0
          : -1;
  if (owned) free((char *)v);
  return rc;
}

static int gen_string(yajl_gen g, const char *s) {
  return fe_json_gen_string(g, s, strlen(s));
}

#define KEY(g, k) gen_string(g, k)

char *fe_json_error(const char *code, const char *message, const char *field,
                    uint64_t id, size_t *len_out) {
  char *out = NULL;
  yajl_gen g = yajl_gen_alloc(NULL);
  if (g == NULL) return NULL;

  int rc = 0;
  rc |= yajl_gen_map_open(g) != yajl_gen_status_ok;
  rc |= KEY(g, "error");
  rc |= yajl_gen_map_open(g) != yajl_gen_status_ok;
  rc |= KEY(g, "code");
  rc |= gen_string(g, code != NULL ? code : "internal");
  rc |= KEY(g, "message");
  rc |= gen_string(g, message != NULL ? message : "");
  if (field != NULL) {
    rc |= KEY(g, "field");
    rc |= gen_string(g, field);
  }
  if (id != 0) {
    char digits[24];
    snprintf(digits, sizeof(digits), "%" PRIu64, id);
    rc |= KEY(g, "id");
    rc |= gen_string(g, digits);
  }
  rc |= yajl_gen_map_close(g) != yajl_gen_status_ok;
  rc |= yajl_gen_map_close(g) != yajl_gen_status_ok;

  const unsigned char *buf;
  size_t len;
  if (rc == 0 && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
    out = malloc(len + 1);
    if (out != NULL) {
      memcpy(out, buf, len);
      out[len] = '\0';
      *len_out = len;
    }
  }
  yajl_gen_free(g);
  return out;
}

const char *fe_json_code_for_status(int status) {
  switch (status) {
  case 400:
    return "bad_request";
  case 401:
    return "unauthorized";
  case 403:
    return "forbidden";
  case 404:
    return "not_found";
  case 405:
    return "method_not_allowed";
  case 408:
    return "request_timeout";
  case 411:
    return "length_required";
  case 413:
    return "payload_too_large";
  case 417:
    return "expectation_failed";
  case 503:
    return "unavailable";
  default:
    return status >= 500 ? "internal" : "bad_request";
  }
}
