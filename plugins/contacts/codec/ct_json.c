/*
 * ct_json.c: the JSON writer of the answers that carry contacts (ct_codec.h,
 * "the JSON writer"): one growing buffer, constant keys copied as they are,
 * values escaped by a scan that copies the clean runs between escapes at
 * once. Its text is byte for byte what yajl_gen (not beautified, UTF-8 not
 * re-validated, solidus not escaped) writes for the same values: the
 * answers were yajl's before and tests compare bodies.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ct_codec.h"
#include "ct_codec_int.h"

void ct_json_init(ct_json *j, char *buf, size_t cap) {
  j->p = buf;
  j->len = 0;
  j->cap = buf != NULL ? cap : 0;
  j->owned = false;
  j->failed = false;
}

void ct_json_reset(ct_json *j) {
  j->len = 0;
  j->failed = false;
}

void ct_json_free(ct_json *j) {
  if (j->owned) free(j->p);
  ct_json_init(j, NULL, 0);
}

/* Room for n more bytes; false (and failed set) when out of memory. */
static bool ct_json_room(ct_json *j, size_t n) {
  if (j->cap - j->len >= n) return true;
  if (j->failed) return false;
  size_t cap = j->cap > 0 ? j->cap : CT_JSON_START_BYTES;
  while (cap - j->len < n)
    cap *= 2;
  char *p = j->owned ? realloc(j->p, cap) : malloc(cap);
  if (p == NULL) {
    j->failed = true;
    return false;
  }
  if (!j->owned && j->len > 0) memcpy(p, j->p, j->len);
  j->p = p;
  j->cap = cap;
  j->owned = true;
  return true;
}

void ct_json_raw(ct_json *j, const char *s, size_t n) {
  if (!ct_json_room(j, n)) return;
  memcpy(j->p + j->len, s, n);
  j->len += n;
}

/* 0: copied as is; otherwise the escape's second character ('u': \u00XX,
 * upper-case hex, as yajl writes the other control characters). */
static const char escape_of[256] = {
    ['\0'] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',
    [0x05] = 'u', [0x06] = 'u', [0x07] = 'u', ['\b'] = 'b', ['\t'] = 't',
    ['\n'] = 'n', [0x0b] = 'u', ['\f'] = 'f', ['\r'] = 'r', [0x0e] = 'u',
    [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u', [0x12] = 'u', [0x13] = 'u',
    [0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u', [0x18] = 'u',
    [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u',
    [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"',  ['\\'] = '\\'};

void ct_json_str(ct_json *j, const char *s, size_t n) {
  /* The worst case, every byte a \u00XX, is reserved once. */
  if (n > (SIZE_MAX - 2) / 6 || !ct_json_room(j, 6 * n + 2)) {
    j->failed = true;
    return;
  }
  char *o = j->p + j->len;
  *o++ = '"';
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && !escape_of[(unsigned char)s[run]])
      run++;
    memcpy(o, s + i, run - i);
    o += run - i;
    if (run == n) break;
    unsigned char c = (unsigned char)s[run];
    char e = escape_of[c];
    *o++ = '\\';
    *o++ = e;
    if (e == 'u') {
      static const char hex[] = "0123456789ABCDEF";
      *o++ = '0';
      *o++ = '0';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
    i = run + 1;
  }
  *o++ = '"';
  j->len = (size_t)(o - j->p);
}

/* v's decimal digits, ending at end; at least min of them (zeros before).
 * Returns where they start. */
static char *ct_digits(char *end, uint64_t v, size_t min) {
  char *o = end;
  do {
    *--o = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while ((size_t)(end - o) < min)
    *--o = '0';
  return o;
}

void ct_json_u64(ct_json *j, uint64_t v) {
  char digits[20];
  char *at = ct_digits(digits + sizeof digits, v, 1);
  ct_json_raw(j, at, (size_t)(digits + sizeof digits - at));
}

/* An id as cs_id_format writes it (20 digits, zeros first), quoted. */
static void ct_json_id(ct_json *j, uint64_t id) {
  char text[CS_ID_DIGITS + 2];
  text[CS_ID_DIGITS + 1] = '"';
  char *at = ct_digits(text + CS_ID_DIGITS + 1, id, CS_ID_DIGITS);
  *--at = '"';
  ct_json_raw(j, at, (size_t)(text + sizeof text - at));
}

/* A key the writer knows to need no escape (the API's member names), with
 * its colon: "name": */
static void ct_json_key(ct_json *j, const char *name) {
  size_t n = strlen(name);
  if (!ct_json_room(j, n + 3)) return;
  char *o = j->p + j->len;
  o[0] = '"';
  memcpy(o + 1, name, n);
  o[n + 1] = '"';
  o[n + 2] = ':';
  j->len += n + 3;
}

/* A quoted value that needs no escape: an id, a time, a cursor. */
static void ct_json_plain(ct_json *j, const char *s, size_t n) {
  if (!ct_json_room(j, n + 2)) return;
  char *o = j->p + j->len;
  o[0] = '"';
  memcpy(o + 1, s, n);
  o[n + 1] = '"';
  j->len += n + 2;
}

static void ct_json_time(ct_json *j, const char *key, int64_t ms) {
  char when[32];
  ct_json_raw(j, ",", 1);
  ct_json_key(j, key);
  cs_time_format(ms, when);
  ct_json_plain(j, when, strlen(when));
}

void ct_json_contact_keys(ct_json *j, const cs_contact *c, uint32_t members) {
  ct_json_key(j, cs_server_field_name(CS_SERVER_ID));
  ct_json_id(j, c->id);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr || !(members & (1u << f))) continue;
    ct_json_raw(j, ",", 1);
    ct_json_key(j, cs_field_name(f));
    ct_json_str(j, c->field[f].ptr, c->field[f].len);
  }
  uint32_t server = members >> CS_FIELD_COUNT;
  if (server & (1u << CS_SERVER_CREATED_AT))
    ct_json_time(j, cs_server_field_name(CS_SERVER_CREATED_AT), c->created_ms);
  if (server & (1u << CS_SERVER_UPDATED_AT))
    ct_json_time(j, cs_server_field_name(CS_SERVER_UPDATED_AT), c->updated_ms);
  if (server & (1u << CS_SERVER_VERSION)) {
    ct_json_raw(j, ",", 1);
    ct_json_key(j, cs_server_field_name(CS_SERVER_VERSION));
    ct_json_u64(j, c->version);
  }
  if (c->deleted_ms) ct_json_time(j, "deleted_at", c->deleted_ms);
}

void ct_json_contact(ct_json *j, const cs_contact *c, uint32_t members) {
  ct_json_raw(j, "{", 1);
  ct_json_contact_keys(j, c, members);
  ct_json_raw(j, "}", 1);
}

void ct_json_page(ct_json *j, const cs_page *page, uint32_t members,
                  const char *next_cursor) {
  ct_json_raw(j, "{\"contacts\":[", 13);
  for (uint32_t i = 0; i < page->count; i++) {
    if (i > 0) ct_json_raw(j, ",", 1);
    ct_json_contact(j, &page->contacts[i], members);
  }
  ct_json_raw(j, "],\"count\":", 10);
  ct_json_u64(j, page->count);
  ct_json_raw(j, ",\"total\":", 9);
  ct_json_u64(j, page->total);
  ct_json_raw(j, ",\"next_cursor\":", 15);
  if (next_cursor)
    ct_json_str(j, next_cursor, strlen(next_cursor));
  else
    ct_json_raw(j, "null", 4);
}

/* Hands what j holds to yajl as one value: yajl_gen_number writes its text
 * as it is, with the separator the generator's state asks for. */
static void ct_gen_json(yajl_gen g, const ct_json *j) {
  /* yajl's own buffer has no way to fail either (it does not check its
   * allocations); an answer cut short would be worse than the stop. */
  if (j->failed) abort();
  yajl_gen_number(g, j->p, j->len);
}

void ct_gen_contact_members(yajl_gen g, const cs_contact *c, uint32_t members) {
  char stack[CT_JSON_STACK_BYTES];
  ct_json j;
  ct_json_init(&j, stack, sizeof stack);
  ct_json_contact(&j, c, members);
  ct_gen_json(g, &j);
  ct_json_free(&j);
}

void ct_gen_contact(yajl_gen g, const cs_contact *c) {
  ct_gen_contact_members(g, c, CT_MEMBERS_ALL);
}

void ct_gen_export_line(yajl_gen g, const char *account, const cs_contact *c) {
  char stack[CT_JSON_STACK_BYTES];
  ct_json j;
  ct_json_init(&j, stack, sizeof stack);
  ct_json_raw(&j, "{\"account\":", 11);
  ct_json_str(&j, account, strlen(account));
  ct_json_raw(&j, ",", 1);
  ct_json_contact_keys(&j, c, CT_MEMBERS_ALL);
  ct_json_raw(&j, "}", 1);
  ct_gen_json(g, &j);
  ct_json_free(&j);
}
