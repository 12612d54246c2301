/*
 * ct_text.c: the rules one value must pass as the body is read.
 *
 * The engine validates every write again (cs_contact_validate); checking
 * here too lets the parser stop at the first bad value of a large body, name
 * the field in the answer without a round trip, and tell a wrong type from a
 * wrong value. The whitespace trimmed and the limits are the engine's: the
 * same Unicode spaces, the limits by their names in cs_limits.h, and which
 * fields are required read from the engine's field table, never listed here.
 *
 * yajl's own UTF-8 check lets overlong forms, encoded surrogates and code
 * points past U+10FFFF through, so the parser turns it off and every string
 * is checked by the engine's cs_field_check / cs_utf8_chars (utf8proc),
 * strictly.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ct_codec.h"

int ct_fail(ct_err *e, int status, const char *code, const char *field,
            size_t flen, const char *fmt, ...) {
  e->status = status;
  e->code = code;
  e->id = 0;
  e->version = 0;
  e->has_oldest = false;
  e->oldest = 0;
  e->field[0] = '\0';
  if (field) {
    if (flen > CT_ECHO_MAX_BYTES) {
      flen = CT_ECHO_MAX_BYTES;
      /* Never cut inside a code point: the answer must stay valid UTF-8. */
      while (flen > 0 && ((unsigned char)field[flen] & 0xC0) == 0x80)
        flen--;
    }
    memcpy(e->field, field, flen);
    e->field[flen] = '\0';
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return -1;
}

int ct_check_value(int field, const char *s, size_t len, cs_str *out,
                   ct_err *e) {
  const char *name = cs_field_name(field);
  size_t nlen = strlen(name);
  if (field < 0 || field >= CS_FIELD_COUNT)
    return ct_fail(e, 400, "unknown_field", name, nlen, "%s: not a field",
                   name);
  cs_str v = {s, len};
  /* An optional value empty after trimming is absent (README); everything
   * else meets the engine's rules for the field, checked by the engine's
   * own function so the two can never disagree. */
  if (!cs_field_table[field].required && cs_utf8_chars(s, len) >= 0 &&
      cs_trim(v).len == 0) {
    *out = cs_trim(v);
    return 0;
  }
  cs_error err;
  if (cs_field_check(field, &v, &err))
    return ct_fail(e, 400, "invalid_field", name, nlen, "%s", err.msg);
  *out = v;
  return 0;
}

int ct_check_phone_number(const char *s, size_t len, cs_str *out, ct_err *e) {
  const char *name = cs_field_name(CS_PHONE);
  /* yajl hands over the number's text as written: digits only means a
   * non-negative integer (JSON allows no leading '+' or zeros). */
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return ct_fail(e, 400, "invalid_field", name, strlen(name),
                     "%s: must be a string or a non-negative integer", name);
  return ct_check_value(CS_PHONE, s, len, out, e);
}

int ct_check_required(uint32_t present_mask, ct_err *e) {
  int missing = cs_field_first_missing(present_mask);
  if (missing < 0) return 0;
  const char *name = cs_field_name(missing);
  return ct_fail(e, 400, "missing_field", name, strlen(name), "%s: required",
                 name);
}

size_t ct_searchby_names(char *out, size_t cap) {
  const char *id = cs_server_field_name(CS_SERVER_ID);
  int n = snprintf(out, cap, "%s", id);
  size_t used = n > 0 ? (size_t)n : 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!cs_field_table[f].searchable) continue;
    n = snprintf(out + (used < cap ? used : cap), used < cap ? cap - used : 0,
                 ", %s", cs_field_table[f].name);
    used += n > 0 ? (size_t)n : 0;
  }
  return used;
}

void ct_name_split(cs_str name, cs_str *first, cs_str *rest) {
  size_t i = 0;
  /* name is valid UTF-8 here: step over the first word code point by code
   * point (a lead byte, then its continuation bytes). */
  while (i < name.len && !cs_space_len(name.ptr + i, name.len - i)) {
    i++;
    while (i < name.len && ((unsigned char)name.ptr[i] & 0xC0) == 0x80)
      i++;
  }
  *first = (cs_str){name.ptr, i};
  *rest = cs_trim((cs_str){name.ptr + i, name.len - i});
}

/* ----------------------------------------------------------------- cursors */

/* base64url is standard base64 with two letters swapped and no padding;
 * libcrypto's block coder does the work, this only translates. */
size_t ct_b64url_encode(const unsigned char *raw, size_t len, char *out) {
  /* EVP_EncodeBlock pads a last partial group with '=' (and ends with a
   * NUL): whole groups go straight into out, the last one through a small
   * buffer cut to its unpadded length. */
  size_t n = CT_B64URL_CHARS(len);
  size_t whole = len / 3 * 3;
  EVP_EncodeBlock((unsigned char *)out, raw, (int)whole);
  char tail[8];
  EVP_EncodeBlock((unsigned char *)tail, raw + whole, (int)(len - whole));
  memcpy(out + whole / 3 * 4, tail, n - whole / 3 * 4);
  for (size_t i = 0; i < n; i++)
    out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
  out[n] = '\0';
  return n;
}

static bool ct_b64url_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int ct_b64url_decode(const char *s, size_t len, unsigned char *out,
                     size_t *out_len) {
  if (len % 4 == 1 || len > INT32_MAX / 2) return -1;
  for (size_t i = 0; i < len; i++)
    if (!ct_b64url_char(s[i])) return -1;
  size_t padded = (len + 3) / 4 * 4;
  char *std = malloc(padded + 1);
  unsigned char *raw = malloc(padded / 4 * 3 + 1);
  char *again = malloc(len + 1);
  int rc = -1;
  if (!std || !raw || !again) goto out;
  for (size_t i = 0; i < len; i++)
    std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
  memset(std + len, '=', padded - len);
  int n = EVP_DecodeBlock(raw, (unsigned char *)std, (int)padded);
  if (n < 0) goto out;
  size_t bytes = (size_t)n - (padded - len); /* EVP counts padding as 0s */
  /* Only the canonical text of the bytes: its unused bits are zero. */
  ct_b64url_encode(raw, bytes, again);
  if (memcmp(again, s, len) != 0) goto out;
  memcpy(out, raw, bytes);
  *out_len = bytes;
  rc = 0;
out:
  free(std);
  free(raw);
  free(again);
  return rc;
}

/* The cursor of kind for value v, CT_CURSOR_CHARS and a NUL. */
static void ct_cursor_pack(unsigned kind, uint64_t v,
                           char out[CT_CURSOR_CHARS + 1]) {
  unsigned char raw[9];
  raw[0] = (unsigned char)kind;
  for (int i = 0; i < 8; i++)
    raw[1 + i] = (unsigned char)(v >> (56 - 8 * i));
  ct_b64url_encode(raw, sizeof raw, out);
}

/* The value of a cursor of kind; -1 for anything else. */
static int ct_cursor_unpack(unsigned kind, const char *s, size_t len,
                            uint64_t *v_out) {
  if (len != CT_CURSOR_CHARS) return -1;
  unsigned char raw[9];
  size_t n;
  if (ct_b64url_decode(s, len, raw, &n) || n != sizeof raw) return -1;
  if (raw[0] != kind) return -1;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | raw[1 + i];
  *v_out = v;
  return 0;
}

void ct_cursor_encode(uint64_t id, char out[CT_CURSOR_CHARS + 1]) {
  ct_cursor_pack(CT_CURSOR_VERSION, id, out);
}

int ct_cursor_decode(const char *s, size_t len, uint64_t *id_out) {
  uint64_t id;
  if (ct_cursor_unpack(CT_CURSOR_VERSION, s, len, &id)) return -1;
  /* Every cursor handed out names a real id; anything else was made up. */
  char digits[CS_ID_DIGITS + 1];
  if (id < CS_ID_MIN) return -1;
  cs_id_format(id, digits);
  if (cs_id_parse(digits, CS_ID_DIGITS, &id) != 0) return -1;
  *id_out = id;
  return 0;
}

void ct_trash_cursor_encode(uint64_t next, char out[CT_CURSOR_CHARS + 1]) {
  ct_cursor_pack(CT_CURSOR_TRASH, next, out);
}

int ct_trash_cursor_decode(const char *s, size_t len, uint64_t *next_out) {
  uint64_t next;
  /* 0 means "the first page" to cs_trash_list: never handed out. */
  if (ct_cursor_unpack(CT_CURSOR_TRASH, s, len, &next) || next == 0) return -1;
  *next_out = next;
  return 0;
}

void ct_etag_format(uint64_t version, char out[CT_ETAG_BYTES]) {
  /* Every answer of a contact carries one: digits by hand, not snprintf. */
  char digits[20];
  size_t n = 0;
  do {
    digits[sizeof digits - 1 - n++] = (char)('0' + version % 10);
    version /= 10;
  } while (version != 0);
  out[0] = '"';
  memcpy(out + 1, digits + sizeof digits - n, n);
  out[n + 1] = '"';
  out[n + 2] = '\0';
}

int ct_parse_limit(const char *s, size_t len, uint32_t *out) {
  if (len == 0) return -1;
  uint32_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (uint32_t)(s[i] - '0');
    if (v > CS_PAGE_LIMIT_MAX) return -1; /* and no overflow */
  }
  if (v < 1 || v > CS_PAGE_LIMIT_MAX) return -1;
  *out = v;
  return 0;
}

int ct_parse_version(const char *s, size_t len, uint64_t *out) {
  if (len == 0 || s[0] == '0') return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}
