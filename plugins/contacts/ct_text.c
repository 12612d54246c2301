/*
 * ct_text.c: the rules one value must pass as the body is read.
 *
 * The engine validates every write again (cs_contact_validate); checking
 * here too lets the parser stop at the first bad value of a large body, name
 * the field in the answer without a round trip, and tell a wrong type from a
 * wrong value. The whitespace trimmed and the limits are the engine's: the
 * same Unicode spaces, the limits by their names in cs_limits.h.
 *
 * yajl's own UTF-8 check lets overlong forms, encoded surrogates and code
 * points past U+10FFFF through, so the parser turns it off and every string
 * is checked here, strictly.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ct.h"

int ct_fail(ct_err *e, int status, const char *code, const char *field,
            size_t flen, const char *fmt, ...) {
  e->status = status;
  e->code = code;
  e->id = 0;
  e->field[0] = '\0';
  if (field) {
    if (flen > CT_ECHO_MAX_BYTES) {
      flen = CT_ECHO_MAX_BYTES;
      /* Never cut inside a code point: the answer must stay valid UTF-8. */
      while (flen > 0 && ((unsigned char)field[flen] & 0xC0) == 0x80) flen--;
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

/* Decodes one code point at s[0..len) strictly. Returns its length in bytes
 * and the code point in *cp, or 0 when the bytes are not valid UTF-8. */
static size_t ct_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
  unsigned char c = s[0];
  size_t n;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    n = 2, v = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, v = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (len < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

long ct_utf8_count(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  long count = 0;
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t n = ct_utf8_decode(p + i, len - i, &cp);
    if (n == 0) return -1;
    i += n;
    count++;
  }
  return count;
}

/* The engine's whitespace: ASCII \t..\r and space, U+0085, and Unicode's
 * space, line and paragraph separators (categories Zs, Zl, Zp). */
static bool ct_is_space(uint32_t cp) {
  if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return true;
  if (cp < 0x80) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Length of the whitespace code point at s, or 0. */
static size_t ct_space_at(const char *s, size_t len) {
  uint32_t cp;
  size_t n = ct_utf8_decode((const unsigned char *)s, len, &cp);
  return n && ct_is_space(cp) ? n : 0;
}

cs_str ct_trim(const char *s, size_t len) {
  size_t start = 0, end = len, n;
  while (start < end && (n = ct_space_at(s + start, end - start))) start += n;
  while (end > start) {
    size_t b = end - 1; /* back to the start of the last code point */
    while (b > start && ((unsigned char)s[b] & 0xC0) == 0x80 && end - b < 4) b--;
    if (ct_space_at(s + b, end - b) != end - b) break;
    end = b;
  }
  return (cs_str){s + start, end - start};
}

/* Counts the digits of a phone number; -1 for a character a phone number
 * may not hold. */
static int ct_phone_digits(const char *s, size_t len) {
  int digits = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch >= '0' && ch <= '9')
      digits++;
    else if (ch == '\0' || !strchr("+()-. ", ch))
      return -1;
  }
  return digits;
}

static int ct_check_phone(const char *name, cs_str v, ct_err *e) {
  int digits = v.len > CS_PHONE_MAX_BYTES ? -1 : ct_phone_digits(v.ptr, v.len);
  if (digits < CS_PHONE_MIN_DIGITS || digits > CS_PHONE_MAX_DIGITS)
    return ct_fail(e, 400, "invalid_field", name, strlen(name),
                   "%s: needs %d to %d digits and only + ( ) - . or spaces "
                   "besides, at most %d characters",
                   name, CS_PHONE_MIN_DIGITS, CS_PHONE_MAX_DIGITS,
                   CS_PHONE_MAX_BYTES);
  return 0;
}

int ct_check_value(int field, const char *s, size_t len, cs_str *out,
                   ct_err *e) {
  const char *name = cs_field_name(field);
  size_t nlen = strlen(name);
  if (memchr(s, '\0', len))
    return ct_fail(e, 400, "invalid_field", name, nlen,
                   "%s: contains a NUL character", name);
  if (ct_utf8_count(s, len) < 0)
    return ct_fail(e, 400, "invalid_field", name, nlen,
                   "%s: not valid UTF-8", name);
  cs_str v = ct_trim(s, len);
  *out = v;
  switch (field) {
  case CS_FIRST_NAME:
    if (ct_utf8_count(v.ptr, v.len) < CS_FIRST_NAME_MIN_CHARS)
      return ct_fail(e, 400, "invalid_field", name, nlen,
                     "%s: must not be empty", name);
    /* fallthrough */
  case CS_LAST_NAME:
  case CS_COMPANY:
  case CS_JOB_TITLE:
    if (ct_utf8_count(v.ptr, v.len) > CS_NAME_MAX_CHARS)
      return ct_fail(e, 400, "invalid_field", name, nlen,
                     "%s: longer than %d characters", name, CS_NAME_MAX_CHARS);
    return 0;
  case CS_EMAIL:
    if (v.len == 0)
      return ct_fail(e, 400, "invalid_field", name, nlen,
                     "%s: must not be empty", name);
    if (v.len > CS_EMAIL_MAX_BYTES)
      return ct_fail(e, 400, "invalid_field", name, nlen,
                     "%s: longer than %d bytes", name, CS_EMAIL_MAX_BYTES);
    return 0;
  case CS_PHONE:
    return v.len == 0 ? 0 : ct_check_phone(name, v, e);
  case CS_NOTES:
    if (v.len > CS_NOTES_MAX_BYTES)
      return ct_fail(e, 400, "invalid_field", name, nlen,
                     "%s: longer than %d bytes", name, CS_NOTES_MAX_BYTES);
    return 0;
  default:
    return ct_fail(e, 400, "unknown_field", name, nlen, "%s: not a field",
                   name);
  }
}

int ct_check_phone_number(const char *s, size_t len, cs_str *out, ct_err *e) {
  const char *name = cs_field_name(CS_PHONE);
  /* yajl hands over the number's text as written: digits only means a
   * non-negative integer (JSON allows no leading '+' or zeros). */
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return ct_fail(e, 400, "invalid_field", name, strlen(name),
                     "%s: must be a string or a non-negative integer", name);
  *out = (cs_str){s, len};
  return ct_check_phone(name, *out, e);
}

void ct_name_split(cs_str name, cs_str *first, cs_str *rest) {
  size_t i = 0, n;
  while (i < name.len && !ct_space_at(name.ptr + i, name.len - i)) {
    uint32_t cp;
    n = ct_utf8_decode((const unsigned char *)name.ptr + i, name.len - i, &cp);
    i += n ? n : 1;
  }
  *first = (cs_str){name.ptr, i};
  *rest = ct_trim(name.ptr + i, name.len - i);
}

/* ----------------------------------------------------------------- cursors */

static const char ct_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void ct_cursor_encode(uint64_t id, char out[CT_CURSOR_CHARS + 1]) {
  unsigned char raw[9];
  raw[0] = CT_CURSOR_VERSION;
  for (int i = 0; i < 8; i++) raw[1 + i] = (unsigned char)(id >> (56 - 8 * i));
  for (int i = 0; i < 3; i++) {
    uint32_t v = (uint32_t)raw[3 * i] << 16 | (uint32_t)raw[3 * i + 1] << 8 |
                 raw[3 * i + 2];
    out[4 * i] = ct_b64url[v >> 18];
    out[4 * i + 1] = ct_b64url[(v >> 12) & 63];
    out[4 * i + 2] = ct_b64url[(v >> 6) & 63];
    out[4 * i + 3] = ct_b64url[v & 63];
  }
  out[CT_CURSOR_CHARS] = '\0';
}

int ct_cursor_decode(const char *s, size_t len, uint64_t *id_out) {
  if (len != CT_CURSOR_CHARS) return -1;
  unsigned char raw[9];
  for (int i = 0; i < 3; i++) {
    uint32_t v = 0;
    for (int j = 0; j < 4; j++) {
      const char *p = s[4 * i + j] ? strchr(ct_b64url, s[4 * i + j]) : NULL;
      if (!p) return -1;
      v = v << 6 | (uint32_t)(p - ct_b64url);
    }
    raw[3 * i] = (unsigned char)(v >> 16);
    raw[3 * i + 1] = (unsigned char)(v >> 8);
    raw[3 * i + 2] = (unsigned char)v;
  }
  if (raw[0] != CT_CURSOR_VERSION) return -1;
  uint64_t id = 0;
  for (int i = 0; i < 8; i++) id = id << 8 | raw[1 + i];
  /* Every cursor handed out names a real id; anything else was made up. */
  char digits[CS_ID_DIGITS + 1];
  if (id < CS_ID_MIN) return -1;
  cs_id_format(id, digits);
  if (cs_id_parse(digits, CS_ID_DIGITS, &id) != 0) return -1;
  *id_out = id;
  return 0;
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
