/*
 * fe_request.c: percent-decoding, query strings and request ids.
 *
 * Decoding is lenient on purpose: a stray '%' is data, not an error, as in
 * every common server, because a 400 for it would help no client.
 */
#include "fe_request.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t fe_percent_decode(char *dst, const char *src, size_t len,
                         bool plus_as_space) {
  size_t out = 0;
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    if (c == '%' && i + 2 < len) {
      int hi = hex_value(src[i + 1]), lo = hex_value(src[i + 2]);
      if (hi >= 0 && lo >= 0) {
        dst[out++] = (char)(hi << 4 | lo);
        i += 2;
        continue;
      }
    } else if (c == '+' && plus_as_space) {
      c = ' ';
    }
    dst[out++] = c;
  }
  return out;
}

size_t fe_query_pairs_max(const char *query, size_t len) {
  size_t n = 1;
  for (size_t i = 0; i < len; i++)
    n += query[i] == '&';
  return n;
}

size_t fe_query_parse(const char *query, size_t len, char *scratch,
                      cd_pair *pairs, size_t max_pairs) {
  size_t count = 0, pos = 0;
  char *out = scratch;

  while (pos <= len && count < max_pairs) {
    const char *piece = query + pos;
    const char *amp = memchr(piece, '&', len - pos);
    size_t piece_len = amp != NULL ? (size_t)(amp - piece) : len - pos;
    pos += piece_len + 1;
    if (piece_len == 0) continue;

    const char *eq = memchr(piece, '=', piece_len);
    size_t name_len = eq != NULL ? (size_t)(eq - piece) : piece_len;
    const char *value = eq != NULL ? eq + 1 : piece + piece_len;
    size_t value_len = eq != NULL ? piece_len - name_len - 1 : 0;

    cd_pair *p = &pairs[count++];
    p->name = out;
    p->name_len = fe_percent_decode(out, piece, name_len, true);
    out += p->name_len;
    *out++ = '\0';
    p->value = out;
    p->value_len = fe_percent_decode(out, value, value_len, true);
    out += p->value_len;
    *out++ = '\0';
  }
  return count;
}

bool fe_request_id_valid(const char *s, size_t len) {
  if (len == 0 || len > CS_REQUEST_ID_MAX_BYTES) return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/* splitmix64: cheap, well mixed, and each worker has its own state, so a
 * request id costs no system call and no lock. Ids need to be unique in
 * practice, not unpredictable. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fe_request_id_generate(uint64_t *state,
                            char out[FE_REQUEST_ID_GEN_CHARS + 1]) {
  static const char digits[] = "0123456789abcdef";
  uint64_t v = next_random(state);
  for (int i = FE_REQUEST_ID_GEN_CHARS - 1; i >= 0; i--) {
    out[i] = digits[v & 15];
    v >>= 4;
  }
  out[FE_REQUEST_ID_GEN_CHARS] = '\0';
}

uint64_t fe_random_seed(void) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed) || seed == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
           (uint64_t)(uintptr_t)&seed;
  }
  return seed | 1;
}

const char *fe_status_reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 411:
    return "Length Required";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Payload Too Large";
  case 415:
    return "Unsupported Media Type";
  case 422:
    return "Unprocessable Content";
  case 429:
    return "Too Many Requests";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return "Unknown";
  }
}
