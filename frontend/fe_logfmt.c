/*
 * fe_logfmt.c: the access log's two line formats (fe_log.h says what each
 * field is).
 *
 * default: fields are separated by one space and none can hold one unless
 * it is quoted, none can hold a quote or a control byte: the escaping is
 * nginx's ("\xNN" for a byte outside printable ASCII, '"' and '\'), so a
 * line splits the same way whatever a client sent, and tools that read
 * nginx's escapes read these. json: yajl's generator escapes, after
 * fe_json_gen_string has made the bytes valid UTF-8.
 */
#include "fe_log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "fe_json.h"

/* Whether c is written as itself in a field (quoted or not). */
static bool plain_byte(unsigned char c, bool quoted) {
  if (c == ' ') return quoted;
  return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/*
 * Writes one field into buf, at most room bytes, and returns how many: v
 * (vlen bytes) escaped, between quotes when quoted, cut before an escape
 * that would not fit (a quoted field keeps its closing quote). NULL, and an
 * empty value without quotes, are "-". Writes nothing when room cannot hold
 * the smallest form.
 */
static size_t put_field(char *buf, size_t room, const char *v, size_t vlen,
                        bool quoted) {
  static const char hex[] = "0123456789abcdef";
  if (v == NULL || (vlen == 0 && !quoted)) {
    if (room < 1) return 0;
    buf[0] = '-';
    return 1;
  }
  size_t ends = quoted ? 2 : 0;
  if (room < ends) return 0;
  size_t n = 0;
  if (quoted) buf[n++] = '"';
  for (size_t i = 0; i < vlen; i++) {
    unsigned char c = (unsigned char)v[i];
    if (plain_byte(c, quoted)) {
      if (n + 1 + ends / 2 > room) break;
      buf[n++] = (char)c;
    } else {
      if (n + 4 + ends / 2 > room) break;
      buf[n++] = '\\';
      buf[n++] = 'x';
      buf[n++] = hex[c >> 4];
      buf[n++] = hex[c & 15];
    }
  }
  if (quoted) buf[n++] = '"';
  return n;
}

static size_t cut(size_t len) {
  return len < FE_ACCESS_FIELD_MAX_BYTES ? len : FE_ACCESS_FIELD_MAX_BYTES;
}

static size_t slen(const char *s) {
  return s != NULL ? strlen(s) : 0;
}

size_t fe_access_log_format(char *buf, size_t len, const fe_access_entry *e) {
  /* The tail (protocol, status, bytes, micros, user agent, newline) first,
   * so that the path, the one long field, takes the room left. */
  char tail[FE_ACCESS_UA_ROOM_BYTES + 128];
  size_t t = 0;
  tail[t++] = ' ';
  t += put_field(tail + t, 32, e->protocol, slen(e->protocol), false);
  int n = snprintf(tail + t, sizeof(tail) - t, " %d %" PRIu64 " %" PRIu64 " ",
                   e->status, e->bytes, e->micros);
  t += n > 0 ? (size_t)n : 0;
  t += put_field(tail + t, FE_ACCESS_UA_ROOM_BYTES, e->user_agent,
                 cut(e->user_agent_len), true);
  tail[t++] = '\n';

  char when[FE_TIME_MAX_BYTES];
  fe_time_format(e->time_ms, when);
  struct {
    const char *v;
    size_t len;
    bool quoted;
  } head[] = {
      {when, strlen(when), false},
      {e->client, slen(e->client), false},
      {e->request_id, slen(e->request_id), true},
      {e->account, slen(e->account), false},
      {e->method, slen(e->method), false},
  };
  /* Room for everything but the tail, the path's smallest form ("") and
   * the NUL. */
  size_t room = len > t + 3 ? len - t - 3 : 0;
  size_t used = 0;
  for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
    if (used + 1 > room) break;
    used += put_field(buf + used, room - used - 1, head[i].v, head[i].len,
                      head[i].quoted);
    buf[used++] = ' ';
  }
  room = len > used + t + 1 ? len - used - t - 1 : 0;
  used += put_field(buf + used, room, e->path, cut(e->path_len), true);
  if (used + t < len) {
    memcpy(buf + used, tail, t);
    used += t;
  }
  buf[used] = '\0';
  return used;
}

static int gen_str(yajl_gen g, const char *s, size_t len) {
  if (s == NULL) return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : -1;
  return fe_json_gen_string(g, s, len);
}

static int gen_key(yajl_gen g, const char *k) {
  return fe_json_gen_string(g, k, strlen(k));
}

static int gen_num(yajl_gen g, uint64_t v) {
  long long n = v > (uint64_t)INT64_MAX ? INT64_MAX : (long long)v;
  return yajl_gen_integer(g, n) == yajl_gen_status_ok ? 0 : -1;
}

char *fe_access_log_json(const fe_access_entry *e, size_t *len_out) {
  yajl_gen g = yajl_gen_alloc(NULL);
  if (g == NULL) return NULL;
  char when[FE_TIME_MAX_BYTES];
  fe_time_format(e->time_ms, when);
  int rc = yajl_gen_map_open(g) != yajl_gen_status_ok;
  rc |= gen_key(g, "time") | gen_str(g, when, strlen(when));
  rc |= gen_key(g, "client") | gen_str(g, e->client, slen(e->client));
  rc |=
      gen_key(g, "request_id") | gen_str(g, e->request_id, slen(e->request_id));
  rc |= gen_key(g, "account") | gen_str(g, e->account, slen(e->account));
  rc |= gen_key(g, "method") | gen_str(g, e->method, slen(e->method));
  rc |= gen_key(g, "path") | gen_str(g, e->path, cut(e->path_len));
  rc |= gen_key(g, "protocol") | gen_str(g, e->protocol, slen(e->protocol));
  rc |= gen_key(g, "status") | gen_num(g, e->status > 0 ? e->status : 0);
  rc |= gen_key(g, "bytes") | gen_num(g, e->bytes);
  rc |= gen_key(g, "duration_us") | gen_num(g, e->micros);
  rc |= gen_key(g, "user_agent") |
        gen_str(g, e->user_agent, cut(e->user_agent_len));
  rc |= yajl_gen_map_close(g) != yajl_gen_status_ok;

  char *out = NULL;
  const unsigned char *text;
  size_t len;
  if (rc == 0 && yajl_gen_get_buf(g, &text, &len) == yajl_gen_status_ok) {
    out = malloc(len + 2);
    if (out != NULL) {
      memcpy(out, text, len);
      out[len] = '\n';
      out[len + 1] = '\0';
      *len_out = len + 1;
    }
  }
  yajl_gen_free(g);
  return out;
}
