/*
 * wh_file.c: the side file "webhooks.side", every webhook of the server
 * and how far each has got, kept in the store's directory through
 * cs_side_write (atomic and durable) and read back at start.
 *
 * Layout: one header line of text, then a JSON document.
 *
 *   offset  size  what
 *   0       18    "contactd-webhooks " (the magic)
 *   18      var   the format version in decimal (WH_FILE_VERSION), ' '
 *           var   the JSON's length in bytes in decimal, ' '
 *           64    the SHA-256 of the JSON in lower-case hex
 *           1     '\n'
 *   then    len   {"webhooks": [record, ...]}
 *
 * A record is an object with exactly these members, each once, in any
 * order:
 *
 *   id                string  "wh_" and 24 base62 characters
 *   account           integer 0..CS_ACCOUNT_ID_MAX
 *   url               string  a URL wh_url_parse takes
 *   types             list    1..5 change type words, none twice
 *   secret            string  "whsec_" and the base64 of 24 bytes
 *   created_ms        integer Unix ms, >= 0
 *   position          string  the feed position, decimal (a u64, which a
 *                             JSON integer may not hold exactly)
 *   state             string  active, failing or disabled
 *   failures          integer failed attempts in a row, 0..2^32-1
 *   failing_since_ms  integer Unix ms of the first of them, 0 when none
 *   last_delivery_ms  integer Unix ms, 0 when none
 *   last_error        string  printable ASCII, at most WH_ERROR_MAX_BYTES;
 *                             "" when none
 *
 * Reading checks all of it and refuses the whole file at the first fault,
 * naming the record and the member: a damaged file never loses a webhook
 * silently (the server does not start until an operator looks). The JSON
 * is read with yajl's event parser, which never nests deeper than a
 * record's types list.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "wh.h"

#define WH_FILE_MAGIC "contactd-webhooks "
#define WH_FILE_VERSION 1
/* The header line at its longest: the magic, a version, a length, the
 * digest, two spaces and the newline. */
#define WH_FILE_HEADER_MAX_BYTES 128
/* A record's JSON at its largest: the URL (which needs no escaping: every
 * character wh_url_parse takes is written as itself), last_error (printable
 * ASCII: a quote or a backslash takes two bytes), five type words, the
 * numbers at 20 digits, the member names and the punctuation. */
#define WH_RECORD_JSON_MAX_BYTES                                               \
  (WH_URL_MAX_BYTES + 2 * WH_ERROR_MAX_BYTES + 512)
_Static_assert((uint64_t)WH_TOTAL_MAX *WH_RECORD_JSON_MAX_BYTES +
                       WH_FILE_HEADER_MAX_BYTES + 64 <=
                   CS_SIDE_FILE_MAX_BYTES,
               "every webhook the server may keep fits one side file");

enum {
  F_ID = 0,
  F_ACCOUNT,
  F_URL,
  F_TYPES,
  F_SECRET,
  F_CREATED,
  F_POSITION,
  F_STATE,
  F_FAILURES,
  F_FAILING_SINCE,
  F_LAST_DELIVERY,
  F_LAST_ERROR,
  F_COUNT
};

/* Each member's name and JSON kind: 's' string, 'n' integer, 'a' list. */
static const struct {
  const char *name;
  char kind;
} members[F_COUNT] = {
    [F_ID] = {"id", 's'},
    [F_ACCOUNT] = {"account", 'n'},
    [F_URL] = {"url", 's'},
    [F_TYPES] = {"types", 'a'},
    [F_SECRET] = {"secret", 's'},
    [F_CREATED] = {"created_ms", 'n'},
    [F_POSITION] = {"position", 's'},
    [F_STATE] = {"state", 's'},
    [F_FAILURES] = {"failures", 'n'},
    [F_FAILING_SINCE] = {"failing_since_ms", 'n'},
    [F_LAST_DELIVERY] = {"last_delivery_ms", 'n'},
    [F_LAST_ERROR] = {"last_error", 's'},
};

static void sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 ||
      md_len != 32)
    md_len = 0; /* never matches a real digest */
  memset(out, '0', 64);
  for (unsigned i = 0; i < md_len; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  out[64] = '\0';
}

/* ---------------------------------------------------------------- encode */

static void gen_key(yajl_gen g, const char *k) {
  yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

static void gen_text(yajl_gen g, const char *s) {
  yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gen_rec(yajl_gen g, const wh_rec *r) {
  char text[WH_SECRET_TEXT_BYTES + 1];
  yajl_gen_map_open(g);
  gen_key(g, members[F_ID].name);
  gen_text(g, r->id);
  gen_key(g, members[F_ACCOUNT].name);
  yajl_gen_integer(g, r->account);
  gen_key(g, members[F_URL].name);
  gen_text(g, r->url);
  gen_key(g, members[F_TYPES].name);
  yajl_gen_array_open(g);
  for (int t = 0; t < CS_CHANGE_TYPE_COUNT; t++)
    if (r->types & (1u << t)) gen_text(g, cs_change_type_name(t));
  yajl_gen_array_close(g);
  gen_key(g, members[F_SECRET].name);
  wh_secret_format(r->secret, text);
  gen_text(g, text);
  gen_key(g, members[F_CREATED].name);
  yajl_gen_integer(g, r->created_ms);
  gen_key(g, members[F_POSITION].name);
  snprintf(text, sizeof(text), "%" PRIu64, r->position);
  gen_text(g, text);
  gen_key(g, members[F_STATE].name);
  gen_text(g, wh_state_name(r->state));
  gen_key(g, members[F_FAILURES].name);
  yajl_gen_integer(g, r->failures);
  gen_key(g, members[F_FAILING_SINCE].name);
  yajl_gen_integer(g, r->failing_since_ms);
  gen_key(g, members[F_LAST_DELIVERY].name);
  yajl_gen_integer(g, r->last_delivery_ms);
  gen_key(g, members[F_LAST_ERROR].name);
  gen_text(g, r->last_error);
  yajl_gen_map_close(g);
}

int wh_file_encode(const wh_rec *const *recs, size_t count, char **out,
                   size_t *len) {
  yajl_gen g = yajl_gen_alloc(NULL);
  const unsigned char *json;
  size_t json_len;
  int rc = -1;
  *out = NULL;
  *len = 0;
  if (g == NULL) return -1;
  yajl_gen_map_open(g);
  gen_key(g, "webhooks");
  yajl_gen_array_open(g);
  for (size_t i = 0; i < count; i++)
    gen_rec(g, recs[i]);
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  if (yajl_gen_get_buf(g, &json, &json_len) != yajl_gen_status_ok) goto out;
  char digest[65], header[WH_FILE_HEADER_MAX_BYTES];
  sha256_hex(json, json_len, digest);
  int n = snprintf(header, sizeof(header), "%s%d %zu %s\n", WH_FILE_MAGIC,
                   WH_FILE_VERSION, json_len, digest);
  char *buf = malloc((size_t)n + json_len);
  if (buf == NULL) goto out;
  memcpy(buf, header, (size_t)n);
  memcpy(buf + n, json, json_len);
  *out = buf;
  *len = (size_t)n + json_len;
  rc = 0;
out:
  yajl_gen_free(g);
  return rc;
}

/* ---------------------------------------------------------------- decode */

typedef struct file_parse {
  char *why;
  size_t whylen;
  bool failed;
  int depth; /* 0, 1 the document, 2 the list, 3 a record, 4 its types */
  bool seen_list;
  wh_rec *recs;
  size_t count, cap;
  int member;    /* the member whose value comes next, or -1 */
  uint32_t seen; /* members of the current record given (bits) */
} file_parse;

static int failf(file_parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Fills why (once: the first fault wins), naming the record when inside
 * one, and returns 0 so that yajl stops. */
static int failf(file_parse *p, const char *fmt, ...) {
  if (p->failed) return 0;
  p->failed = true;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (p->depth >= 3 && p->member >= 0)
    snprintf(p->why, p->whylen, "webhook %zu, %s: %s", p->count,
             members[p->member].name, msg);
  else if (p->depth >= 3)
    snprintf(p->why, p->whylen, "webhook %zu: %s", p->count, msg);
  else
    snprintf(p->why, p->whylen, "%s", msg);
  return 0;
}

static wh_rec *cur(file_parse *p) {
  return &p->recs[p->count - 1];
}

/* The value that comes is of kind k: checks that a member expects it. */
static bool expect(file_parse *p, char k, const char *what) {
  if (p->depth == 3 && p->member >= 0 && members[p->member].kind == k)
    return true;
  if (p->depth == 4 && k == 's') return true;
  failf(p, "%s where none belongs", what);
  return false;
}

static int f_null(void *ctx) {
  file_parse *p = ctx;
  return failf(p, "null where none belongs");
}

static int f_boolean(void *ctx, int v) {
  file_parse *p = ctx;
  return failf(p, "a boolean where none belongs");
}

static int f_number(void *ctx, const char *s, size_t len) {
  file_parse *p = ctx;
  if (!expect(p, 'n', "a number")) return 0;
  uint64_t max = p->member == F_ACCOUNT    ? CS_ACCOUNT_ID_MAX
                 : p->member == F_FAILURES ? UINT32_MAX
                                           : INT64_MAX;
  uint64_t n;
  if (cs_decimal_parse(s, len, 0, max, &n) != 0)
    return failf(p, "not an integer from 0 to %" PRIu64, max);
  wh_rec *r = cur(p);
  switch (p->member) {
  case F_ACCOUNT:
    r->account = (uint32_t)n;
    break;
  case F_CREATED:
    r->created_ms = (int64_t)n;
    break;
  case F_FAILURES:
    r->failures = (uint32_t)n;
    break;
  case F_FAILING_SINCE:
    r->failing_since_ms = (int64_t)n;
    break;
  case F_LAST_DELIVERY:
    r->last_delivery_ms = (int64_t)n;
    break;
  }
  p->member = -1;
  return 1;
}

static int f_string(void *ctx, const unsigned char *su, size_t len) {
  file_parse *p = ctx;
  const char *s = (const char *)su;
  if (!expect(p, 's', "a string")) return 0;
  wh_rec *r = cur(p);
  if (p->depth == 4) {
    int t = cs_change_type_from_name(s, len);
    if (t < 0) return failf(p, "not a change type");
    if (r->types & (1u << t)) return failf(p, "a change type given twice");
    r->types |= 1u << t;
    return 1;
  }
  char why[256];
  wh_url u;
  int state;
  switch (p->member) {
  case F_ID:
    if (!wh_id_valid(s, len)) return failf(p, "not a webhook id");
    memcpy(r->id, s, len);
    r->id[len] = '\0';
    break;
  case F_URL:
    if (wh_url_parse(s, len, &u, why, sizeof(why)) != 0)
      return failf(p, "%s", why);
    memcpy(r->url, s, len);
    r->url[len] = '\0';
    break;
  case F_SECRET:
    if (wh_secret_parse(s, len, r->secret) != 0)
      return failf(p, "not a secret");
    break;
  case F_POSITION:
    if (cs_decimal_parse(s, len, 0, UINT64_MAX, &r->position) != 0)
      return failf(p, "not a feed position");
    break;
  case F_STATE:
    state = wh_state_from_name(s, len);
    if (state < 0) return failf(p, "not active, failing or disabled");
    r->state = (uint8_t)state;
    break;
  case F_LAST_ERROR:
    if (len > WH_ERROR_MAX_BYTES)
      return failf(p, "longer than %d bytes", WH_ERROR_MAX_BYTES);
    for (size_t i = 0; i < len; i++)
      if (s[i] < 0x20 || s[i] > 0x7e) return failf(p, "not printable ASCII");
    memcpy(r->last_error, s, len);
    r->last_error[len] = '\0';
    break;
  }
  p->member = -1;
  return 1;
}

static int f_map_key(void *ctx, const unsigned char *su, size_t len) {
  file_parse *p = ctx;
  const char *s = (const char *)su;
  if (p->depth == 1) {
    if (len != 8 || memcmp(s, "webhooks", 8) != 0 || p->seen_list)
      return failf(p, "the document has one member, webhooks");
    p->seen_list = true;
    return 1;
  }
  for (int m = 0; m < F_COUNT; m++) {
    if (strlen(members[m].name) != len || memcmp(members[m].name, s, len))
      continue;
    if (p->seen & (1u << m)) {
      p->member = m;
      return failf(p, "given twice");
    }
    p->seen |= 1u << m;
    p->member = m;
    return 1;
  }
  return failf(p, "a member a webhook does not have: %.*s",
               (int)(len > 64 ? 64 : len), s);
}

static int f_start_map(void *ctx) {
  file_parse *p = ctx;
  if (p->depth == 0) {
    p->depth = 1;
    return 1;
  }
  if (p->depth != 2) return failf(p, "an object where none belongs");
  if (p->count == WH_TOTAL_MAX)
    return failf(p, "more than %d webhooks", WH_TOTAL_MAX);
  if (p->count == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 8;
    wh_rec *n = realloc(p->recs, cap * sizeof(*n));
    if (n == NULL) return failf(p, "out of memory");
    p->recs = n;
    p->cap = cap;
  }
  memset(&p->recs[p->count++], 0, sizeof(wh_rec));
  p->depth = 3;
  p->member = -1;
  p->seen = 0;
  return 1;
}

static int f_end_map(void *ctx) {
  file_parse *p = ctx;
  if (p->depth == 3) {
    for (int m = 0; m < F_COUNT; m++)
      if (!(p->seen & (1u << m))) {
        p->member = m;
        return failf(p, "missing");
      }
    p->depth = 2;
    return 1;
  }
  if (!p->seen_list) return failf(p, "the document has no webhooks list");
  p->depth = 0;
  return 1;
}

static int f_start_array(void *ctx) {
  file_parse *p = ctx;
  if (p->depth == 1 && p->seen_list) {
    p->depth = 2;
    return 1;
  }
  if (!expect(p, 'a', "a list")) return 0;
  p->depth = 4;
  return 1;
}

static int f_end_array(void *ctx) {
  file_parse *p = ctx;
  if (p->depth == 4) {
    if (cur(p)->types == 0) return failf(p, "an empty list");
    p->depth = 3;
    p->member = -1;
    return 1;
  }
  p->depth = 1;
  return 1;
}

static const yajl_callbacks file_callbacks = {
    .yajl_null = f_null,
    .yajl_boolean = f_boolean,
    .yajl_number = f_number,
    .yajl_string = f_string,
    .yajl_start_map = f_start_map,
    .yajl_map_key = f_map_key,
    .yajl_end_map = f_end_map,
    .yajl_start_array = f_start_array,
    .yajl_end_array = f_end_array,
};

/* Reads the header line: 0 with the JSON's offset and length, or -1. */
static int header_read(const uint8_t *data, size_t len, size_t *json_at,
                       size_t *json_len, char digest[65], char *why,
                       size_t whylen) {
  size_t magic = strlen(WH_FILE_MAGIC);
  const uint8_t *nl =
      memchr(data, '\n',
             len < WH_FILE_HEADER_MAX_BYTES ? len : WH_FILE_HEADER_MAX_BYTES);
  if (len < magic || memcmp(data, WH_FILE_MAGIC, magic) != 0 || nl == NULL) {
    snprintf(why, whylen, "not a webhooks file (no header line)");
    return -1;
  }
  /* After the magic: VERSION ' ' LENGTH ' ' DIGEST, each token exactly
   * as written here (decimal digits, 64 lower-case hex digits). */
  const char *t = (const char *)data + magic, *end = (const char *)nl;
  const char *sp1 = memchr(t, ' ', (size_t)(end - t));
  const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
  uint64_t version, body;
  bool hex_ok = sp2 != NULL && end - (sp2 + 1) == 64;
  for (const char *c = sp2 ? sp2 + 1 : end; hex_ok && c < end; c++)
    hex_ok = (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f');
  if (!hex_ok ||
      cs_decimal_parse(t, (size_t)(sp1 - t), 0, UINT32_MAX, &version) != 0 ||
      cs_decimal_parse(sp1 + 1, (size_t)(sp2 - sp1 - 1), 0,
                       CS_SIDE_FILE_MAX_BYTES, &body) != 0) {
    snprintf(why, whylen, "a damaged header line");
    return -1;
  }
  if (version != WH_FILE_VERSION) {
    snprintf(why, whylen,
             "format version %" PRIu64 "; this contactd reads version %d only",
             version, WH_FILE_VERSION);
    return -1;
  }
  size_t line_len = (size_t)(end - (const char *)data);
  *json_at = line_len + 1;
  if (body != len - *json_at) {
    snprintf(why, whylen,
             "the header says %" PRIu64 " bytes of webhooks, the file has %zu "
             "(cut short or grown)",
             body, len - *json_at);
    return -1;
  }
  *json_len = (size_t)body;
  memcpy(digest, sp2 + 1, 64);
  digest[64] = '\0';
  return 0;
}

int wh_file_decode(const uint8_t *data, size_t len, wh_rec **recs,
                   size_t *count, char *why, size_t whylen) {
  size_t at, json_len;
  char want[65], got[65];
  *recs = NULL;
  *count = 0;
  if (header_read(data, len, &at, &json_len, want, why, whylen) != 0) return -1;
  sha256_hex(data + at, json_len, got);
  if (strcmp(want, got) != 0) {
    snprintf(why, whylen, "the checksum does not match (the file is damaged)");
    return -1;
  }

  file_parse p = {.why = why, .whylen = whylen, .member = -1};
  yajl_handle h = yajl_alloc(&file_callbacks, NULL, &p);
  if (h == NULL) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  yajl_status st = yajl_parse(h, data + at, json_len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  yajl_free(h);
  if (!p.failed && (st != yajl_status_ok || !p.seen_list))
    failf(&p, "not the JSON of a webhooks file");

  /* The file as a whole: unique ids, each account within its limit. */
  for (size_t i = 0; i < p.count && !p.failed; i++) {
    size_t same_account = 0;
    for (size_t j = 0; j < p.count; j++) {
      if (j != i && strcmp(p.recs[i].id, p.recs[j].id) == 0)
        failf(&p, "webhook %s twice", p.recs[i].id);
      if (p.recs[j].account == p.recs[i].account) same_account++;
    }
    if (same_account > WH_PER_ACCOUNT_MAX)
      failf(&p, "account %" PRIu32 " has %zu webhooks, more than %d",
            p.recs[i].account, same_account, WH_PER_ACCOUNT_MAX);
  }
  if (p.failed) {
    free(p.recs);
    return -1;
  }
  *recs = p.recs;
  *count = p.count;
  return 0;
}

void wh_rec_error(wh_rec *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->last_error, sizeof(r->last_error), fmt, ap);
  va_end(ap);
  for (char *c = r->last_error; *c != '\0'; c++)
    if (*c < 0x20 || *c > 0x7e) *c = '?';
}
