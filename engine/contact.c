/*
 * contact.c: what a contact is: its fields, ids, timestamps, the rules a
 * valid contact follows. (The error table is err.c's.)
 *
 * The rules are the API's (shared/API.md, "The contact"), with every bound
 * named in cs_limits.h. They run on every write, whoever the caller.
 */
#include "cs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

/* The contact's rules (cs.h, "cs_field_info"). The limits are the named
 * ones of cs_limits.h; the shape rules of each kind are in cs_field_check. */
const cs_field_info cs_field_table[CS_FIELD_COUNT] = {
    [CS_FIRST_NAME] = {"first_name", CS_KIND_NAME, CS_UNIT_CHARS,
                       CS_NAME_MAX_CHARS, CS_FIRST_NAME_MIN_CHARS, true, true},
    [CS_LAST_NAME] = {"last_name", CS_KIND_NAME, CS_UNIT_CHARS,
                      CS_NAME_MAX_CHARS, 0, false, true},
    [CS_EMAIL] = {"email", CS_KIND_EMAIL, CS_UNIT_BYTES, CS_EMAIL_MAX_BYTES, 0,
                  true, true},
    [CS_PHONE] = {"phone", CS_KIND_PHONE, CS_UNIT_BYTES, CS_PHONE_MAX_BYTES, 0,
                  false, true},
    [CS_COMPANY] = {"company", CS_KIND_NAME, CS_UNIT_CHARS, CS_NAME_MAX_CHARS,
                    0, false, true},
    [CS_JOB_TITLE] = {"job_title", CS_KIND_NAME, CS_UNIT_CHARS,
                      CS_NAME_MAX_CHARS, 0, false, true},
    [CS_NOTES] = {"notes", CS_KIND_TEXT, CS_UNIT_BYTES, CS_NOTES_MAX_BYTES, 0,
                  false, true},
};

/* Field masks (cs_patch, cs_field_first_missing) are 32 bits wide. */
_Static_assert(CS_FIELD_COUNT <= 32, "field masks are 32 bits");

static const char *const server_field_names[CS_SERVER_FIELD_COUNT] = {
    [CS_SERVER_ID] = "id",
    [CS_SERVER_CREATED_AT] = "created_at",
    [CS_SERVER_UPDATED_AT] = "updated_at",
    [CS_SERVER_VERSION] = "version",
};

const cs_field_info *cs_field_info_of(int field) {
  return field >= 0 && field < CS_FIELD_COUNT ? &cs_field_table[field] : NULL;
}

bool cs_field_required(int field) {
  return field >= 0 && field < CS_FIELD_COUNT && cs_field_table[field].required;
}

uint32_t cs_field_required_mask(void) {
  uint32_t mask = 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (cs_field_table[f].required) mask |= 1u << f;
  return mask;
}

int cs_field_first_missing(uint32_t present_mask) {
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (cs_field_table[f].required && !(present_mask & (1u << f))) return f;
  return -1;
}

const char *cs_server_field_name(int sf) {
  if (sf < 0 || sf >= CS_SERVER_FIELD_COUNT) return "?";
  return server_field_names[sf];
}

int cs_server_field_from_name(const char *name, size_t len) {
  for (int sf = 0; sf < CS_SERVER_FIELD_COUNT; sf++)
    if (strlen(server_field_names[sf]) == len &&
        memcmp(server_field_names[sf], name, len) == 0)
      return sf;
  return -1;
}

/* CS_SEARCH_BY_ID, one past the fields, is the id: its name is the server's. */
const char *cs_field_name(int field) {
  if (field >= 0 && field < CS_FIELD_COUNT) return cs_field_table[field].name;
  if (field == CS_SEARCH_BY_ID) return server_field_names[CS_SERVER_ID];
  return "?";
}

int cs_field_from_name(const char *name, size_t len) {
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (strlen(cs_field_table[f].name) == len &&
        memcmp(cs_field_table[f].name, name, len) == 0)
      return f;
  return -1;
}

uint64_t cs_shard_floor(uint32_t shard) {
  return CS_ID_MIN + (uint64_t)shard * CS_SHARD_ID_SPAN;
}

uint32_t cs_id_shard(uint64_t id) {
  /* Shard K's last id is its successor's floor, so count from floor + 1. */
  return id > CS_ID_MIN ? (uint32_t)((id - CS_ID_MIN - 1) / CS_SHARD_ID_SPAN)
                        : 0;
}

void cs_id_format(uint64_t id, char out[CS_ID_DIGITS + 1]) {
  snprintf(out, CS_ID_DIGITS + 1, "%020llu", (unsigned long long)id);
}

int cs_decimal_parse(const char *s, size_t len, uint64_t min, uint64_t max,
                     uint64_t *out) {
  if (len == 0) return CS_EINVAL;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return CS_EINVAL;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return CS_EINVAL; /* above 2^64 - 1 */
    v = v * 10 + d;
  }
  if (v < min || v > max) return CS_EINVAL;
  *out = v;
  return 0;
}

int cs_id_parse(const char *s, size_t len, uint64_t *id_out) {
  if (len != CS_ID_DIGITS || s[0] < '1' || s[0] > '9') return CS_EINVAL;
  return cs_decimal_parse(s, len, CS_ID_MIN, UINT64_MAX, id_out);
}

static void put_digits(char *p, unsigned v, int n) {
  for (int i = n - 1; i >= 0; i--, v /= 10)
    p[i] = (char)('0' + v % 10);
}

/* The value of n digits at s, or -1 when one is not a digit. */
static int get_digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* Days from 1970-01-01 to a civil date: the inverse of cs_time_format's
 * day count, on the same 400-year cycle. */
static int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  int64_t era = (year >= 0 ? year : year - 399) / 400;
  unsigned yoe = (unsigned)(year - era * 400);
  unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(int year, int month) {
  static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
                                         31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : days[month - 1];
}

/* The layout is fixed up to the seconds ("YYYY-MM-DDTHH:MM:SS", 19
 * bytes); a fraction and the offset follow. */
int cs_time_parse(const char *s, size_t len, int64_t *ms_out) {
  if (len < 20 || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
    return CS_EINVAL;
  int year = get_digits(s, 4), month = get_digits(s + 5, 2);
  int day = get_digits(s + 8, 2), hour = get_digits(s + 11, 2);
  int minute = get_digits(s + 14, 2), second = get_digits(s + 17, 2);
  if (year < 1970 || month < 1 || month > 12 || day < 1 ||
      (unsigned)day > days_in_month(year, month) || hour < 0 || hour > 23 ||
      minute < 0 || minute > 59 || second < 0 || second > 59)
    return CS_EINVAL;
  size_t i = 19;
  int64_t milli = 0;
  if (s[i] == '.') {
    size_t from = ++i;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (i - from < 3) milli = milli * 10 + (s[i] - '0');
      i++;
    }
    if (i == from || i - from > 9) return CS_EINVAL;
    for (size_t k = i - from; k < 3; k++)
      milli *= 10;
  }
  int64_t offset_min = 0;
  if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh = get_digits(s + i + 1, 2), om = get_digits(s + i + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return CS_EINVAL;
    offset_min = (s[i] == '-' ? -1 : 1) * (int64_t)(oh * 60 + om);
    i += 6;
  } else {
    return CS_EINVAL; /* the offset is required */
  }
  if (i != len) return CS_EINVAL;
  int64_t secs = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 +
                 hour * 3600 + minute * 60 + second - offset_min * 60;
  if (secs < 0) return CS_EINVAL; /* before the epoch, by its offset */
  *ms_out = secs * 1000 + milli;
  return 0;
}

/* Every answer carries two timestamps, so this avoids gmtime and printf:
 * the civil date comes from the day count with the proleptic Gregorian
 * calendar's 400-year cycle (146097 days). */
void cs_time_format(int64_t ms, char out[32]) {
  int64_t secs = ms / 1000;
  int64_t milli = ms % 1000;
  if (milli < 0) {
    milli += 1000;
    secs -= 1;
  }
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  /* Days since 0000-03-01, so that leap days end each cycle's year. */
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097); /* day of era */
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* from Mar 1 */
  unsigned mp = (5 * doy + 2) / 153;
  unsigned day = doy - (153 * mp + 2) / 5 + 1;
  unsigned month = mp < 10 ? mp + 3 : mp - 9;
  int64_t year = (int64_t)yoe + era * 400 + (month <= 2);
  if (year < 0 || year > 9999)
    year = year < 0 ? 0 : 9999; /* not reachable
                                    from a clock */
  put_digits(out, (unsigned)year, 4);
  out[4] = '-';
  put_digits(out + 5, month, 2);
  out[7] = '-';
  put_digits(out + 8, day, 2);
  out[10] = 'T';
  put_digits(out + 11, (unsigned)(rem / 3600), 2);
  out[13] = ':';
  put_digits(out + 14, (unsigned)(rem / 60 % 60), 2);
  out[16] = ':';
  put_digits(out + 17, (unsigned)(rem % 60), 2);
  out[19] = '.';
  put_digits(out + 20, (unsigned)milli, 3);
  out[23] = 'Z';
  out[24] = 0;
}

/* ------------------------------------------------------------- validation */

static int field_error(cs_error *err, int field, const char *fmt, ...) {
  if (err) {
    err->code = CS_EINVAL;
    err->field = field;
    err->id = 0;
    int n = snprintf(err->msg, sizeof err->msg, "%s: ", cs_field_name(field));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return CS_EINVAL;
}

static int cs_err_field(cs_error *err, int f) {
  if (err) {
    err->code = CS_EINVAL;
    err->field = -1;
    err->id = 0;
    snprintf(err->msg, sizeof err->msg, "no field number %d", f);
  }
  return CS_EINVAL;
}

static bool is_space_cp(utf8proc_int32_t cp) {
  if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return true;
  if (cp < 0x80) return false;
  utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL ||
         c == UTF8PROC_CATEGORY_ZP || cp == 0x85;
}

/* Counts code points; -1 for invalid UTF-8 or a NUL; *has_space set when any
 * whitespace is inside. utf8proc_iterate refuses overlong forms, surrogates
 * and code points past U+10FFFF. */
static long utf8_count(const char *s, size_t len, bool *has_space) {
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
  long n = 0;
  *has_space = false;
  size_t i = 0;
  while (i < len) {
    if (p[i] < 0x80) {
      if (p[i] == 0) return -1;
      if (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r')) *has_space = true;
      i++;
    } else {
      utf8proc_int32_t cp;
      utf8proc_ssize_t k =
          utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
      if (k < 0) return -1;
      if (is_space_cp(cp)) *has_space = true;
      i += (size_t)k;
    }
    n++;
  }
  return n;
}

static void trim(cs_str *v);

long cs_utf8_chars(const char *s, size_t len) {
  bool has_space;
  return utf8_count(s, len, &has_space);
}

size_t cs_space_len(const char *s, size_t len) {
  if (len == 0) return 0;
  utf8proc_int32_t cp;
  utf8proc_ssize_t k =
      utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &cp);
  return k > 0 && is_space_cp(cp) ? (size_t)k : 0;
}

cs_str cs_trim(cs_str v) {
  trim(&v);
  return v;
}

/* Trims leading and trailing whitespace (ASCII and Unicode spaces) in place.
 * Invalid UTF-8 is left for utf8_count to report. */
static void trim(cs_str *v) {
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)v->ptr;
  size_t start = 0, end = v->len;
  while (start < end) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k =
        utf8proc_iterate(p + start, (utf8proc_ssize_t)(end - start), &cp);
    if (k < 0 || !is_space_cp(cp)) break;
    start += (size_t)k;
  }
  while (end > start) {
    size_t b = end - 1; /* find the start of the last code point */
    while (b > start && (p[b] & 0xC0) == 0x80 && end - b < 4)
      b--;
    utf8proc_int32_t cp;
    utf8proc_ssize_t k =
        utf8proc_iterate(p + b, (utf8proc_ssize_t)(end - b), &cp);
    if (k < 0 || (size_t)k != end - b || !is_space_cp(cp)) break;
    end = b;
  }
  v->ptr += start;
  v->len = end - start;
}

static bool email_ok(const char *s, size_t len) {
  const char *at = memchr(s, '@', len);
  if (!at || at == s) return false;
  const char *dom = at + 1;
  size_t dlen = len - (size_t)(dom - s);
  if (memchr(dom, '@', dlen)) return false;
  const char *dot = memchr(dom, '.', dlen);
  if (!dot || dom[0] == '.' || dom[dlen - 1] == '.') return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
  return true;
}

static int phone_check(const char *s, size_t len) {
  int digits = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch >= '0' && ch <= '9')
      digits++;
    else if (!strchr("+()-. ", ch) || ch == 0)
      return -1;
  }
  return digits;
}

/* The limit of a field's row, in its unit; "longer than N units". */
static int over_limit(const cs_field_info *fi, long chars, size_t bytes) {
  return fi->unit == CS_UNIT_CHARS ? chars > (long)fi->limit
                                   : bytes > fi->limit;
}

static int limit_error(cs_error *err, int f, const cs_field_info *fi) {
  return field_error(err, f, "longer than %u %s", fi->limit,
                     fi->unit == CS_UNIT_CHARS ? "characters" : "bytes");
}

int cs_field_check(int f, cs_str *v, cs_error *err) {
  if (f < 0 || f >= CS_FIELD_COUNT) return cs_err_field(err, f);
  const cs_field_info *fi = &cs_field_table[f];
  trim(v);
  bool has_space;
  long chars = utf8_count(v->ptr, v->len, &has_space);
  if (chars < 0)
    return field_error(err, f, "not valid UTF-8, or contains a NUL");
  if (chars < (long)fi->min_chars)
    return field_error(err, f, "must not be empty");
  switch (fi->kind) {
  case CS_KIND_NAME:
  case CS_KIND_TEXT:
    if (over_limit(fi, chars, v->len)) return limit_error(err, f, fi);
    break;
  case CS_KIND_EMAIL:
    if (over_limit(fi, chars, v->len)) return limit_error(err, f, fi);
    if (has_space || !email_ok(v->ptr, v->len))
      return field_error(err, f, "not an email address");
    break;
  case CS_KIND_PHONE: {
    /* The byte limit is part of the shape, and so of its one message. */
    int digits =
        over_limit(fi, chars, v->len) ? -1 : phone_check(v->ptr, v->len);
    if (digits < CS_PHONE_MIN_DIGITS || digits > CS_PHONE_MAX_DIGITS)
      return field_error(err, f,
                         "needs %d to %d digits and only + ( ) - . or "
                         "spaces besides, at most %u characters",
                         CS_PHONE_MIN_DIGITS, CS_PHONE_MAX_DIGITS, fi->limit);
    break;
  }
  }
  return 0;
}

int cs_contact_validate(cs_contact *c, cs_error *err) {
  uint32_t present = 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr) continue;
    int rc = cs_field_check(f, &c->field[f], err);
    if (rc) return rc;
    present |= 1u << f;
  }
  int missing = cs_field_first_missing(present);
  if (missing >= 0) return field_error(err, missing, "required");
  return 0;
}

static const char *const change_type_names[CS_CHANGE_TYPE_COUNT] = {
    [CS_CHANGE_CREATED] = "created", [CS_CHANGE_UPDATED] = "updated",
    [CS_CHANGE_DELETED] = "deleted", [CS_CHANGE_RESTORED] = "restored",
    [CS_CHANGE_PURGED] = "purged",
};

const char *cs_change_type_name(int type) {
  return type >= 0 && type < CS_CHANGE_TYPE_COUNT ? change_type_names[type]
                                                  : "unknown";
}

int cs_change_type_from_name(const char *name, size_t len) {
  for (int t = 0; t < CS_CHANGE_TYPE_COUNT; t++)
    if (strlen(change_type_names[t]) == len &&
        memcmp(change_type_names[t], name, len) == 0)
      return t;
  return -1;
}
