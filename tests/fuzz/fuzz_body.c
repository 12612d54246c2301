/*
 * fuzz_body.c: a request body through the contacts plugin's parser.
 *
 * Goal: no body, however malformed, crashes ct_body_parse or makes it hand
 * out something the rest of the plugin relies on being impossible.
 * Method: the first input byte picks the kind of body (POST, PATCH, batch,
 * search, DELETE, upsert, batch upsert), the rest is the body. After the parse
 * the result is checked against the parser's contract (ct.h): a failure carries
 * a 4xx/5xx status, a snake_case code and a message and field that are valid
 * UTF-8 (the host refuses to send anything else); a success hands out only
 * values that are valid UTF-8 without NUL, trimmed, inside the body's arena or
 * the body itself, within their limits, with disjoint set and clear masks and
 * every required field of a create present; and the engine's own validation of
 * an accepted create never finds a value the parser should have refused.
 */
#include <stdlib.h>
#include <string.h>

#include "ct.h"
#include "fuzz_util.h"

static const char *g_body;
static size_t g_body_len;
static const ct_body *g_b;

static bool inside(const char *p, size_t len) {
  const char *a = g_b->arena;
  if (a && p >= a && p + len <= a + g_b->arena_cap) return true;
  return p >= g_body && p + len <= g_body + g_body_len;
}

/* Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF): the number of code points, or -1. Written apart from the
 * plugin's own check, as an oracle. */
static long utf8_chars(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  long count = 0;
  for (size_t i = 0; i < len; count++) {
    unsigned c = s[i];
    size_t n = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (n == 0 || i + n > len) return -1;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return -1;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return -1;
    i += n;
  }
  return count;
}

static void check_utf8(const char *s, size_t len, const char *what) {
  FZ_CHECK(utf8_chars(s, len) >= 0, "%s is not valid UTF-8", what);
}

static bool ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

static void check_err(const ct_err *e) {
  FZ_CHECK(e->status >= 400 && e->status <= 599, "error status %d", e->status);
  FZ_CHECK(e->code && e->code[0], "error without a code");
  for (const char *c = e->code; *c; c++)
    FZ_CHECK((*c >= 'a' && *c <= 'z') || *c == '_', "code %s", e->code);
  FZ_CHECK(e->msg[0], "error %s without a message", e->code);
  check_utf8(e->msg, strlen(e->msg), "an error message");
  check_utf8(e->field, strlen(e->field), "an error's field");
  FZ_CHECK(strlen(e->field) <= CT_ECHO_MAX_BYTES, "field echoed too long");
}

static void check_value(int f, cs_str v) {
  const char *name = cs_field_name(f);
  FZ_CHECK(v.ptr || v.len == 0, "%s: NULL with a length", name);
  if (!v.ptr) return;
  FZ_CHECK(inside(v.ptr, v.len), "%s points outside the body and arena", name);
  FZ_CHECK(!memchr(v.ptr, 0, v.len), "%s holds a NUL", name);
  check_utf8(v.ptr, v.len, name);
  FZ_CHECK(v.len == 0 ||
               (!ascii_space(v.ptr[0]) && !ascii_space(v.ptr[v.len - 1])),
           "%s is not trimmed", name);
  long chars = utf8_chars(v.ptr, v.len);
  switch (f) {
  case CS_FIRST_NAME:
  case CS_LAST_NAME:
  case CS_COMPANY:
  case CS_JOB_TITLE:
    FZ_CHECK(chars <= CS_NAME_MAX_CHARS, "%s: %ld characters", name, chars);
    break;
  case CS_EMAIL:
    FZ_CHECK(v.len <= CS_EMAIL_MAX_BYTES, "email: %zu bytes", v.len);
    break;
  case CS_PHONE:
    FZ_CHECK(v.len <= CS_PHONE_MAX_BYTES, "phone: %zu bytes", v.len);
    break;
  case CS_NOTES:
    FZ_CHECK(v.len <= CS_NOTES_MAX_BYTES, "notes: %zu bytes", v.len);
    break;
  }
}

static void check_fields(const ct_fields *f, bool create) {
  FZ_CHECK((f->v.set_mask & f->v.clear_mask) == 0, "set and clear overlap");
  FZ_CHECK((f->v.set_mask | f->v.clear_mask) < (1u << CS_FIELD_COUNT),
           "mask names no field");
  for (int i = 0; i < CS_FIELD_COUNT; i++)
    if (f->v.set_mask & (1u << i)) check_value(i, f->v.field[i]);
  if (!create) return;
  FZ_CHECK(f->v.clear_mask == 0, "a create removes fields");
  FZ_CHECK(f->v.set_mask & (1u << CS_FIRST_NAME), "create without first_name");
  FZ_CHECK(f->v.set_mask & (1u << CS_EMAIL), "create without email");
  /* The engine's check may refuse an email's shape, which the parser leaves
   * to it, but nothing else. */
  cs_contact c;
  memset(&c, 0, sizeof c);
  for (int i = 0; i < CS_FIELD_COUNT; i++)
    if (f->v.set_mask & (1u << i)) c.field[i] = f->v.field[i];
  cs_error err = {0};
  int rc = cs_contact_validate(&c, &err);
  FZ_CHECK(rc == 0 || (rc == CS_EINVAL && err.field == CS_EMAIL),
           "parser accepted what the engine refuses: %s (field %d)", err.msg,
           err.field);
  for (int i = 0; rc == 0 && i < CS_FIELD_COUNT; i++)
    FZ_CHECK(c.field[i].len == f->v.field[i].len ||
                 !(f->v.set_mask & (1u << i)),
             "the engine trimmed %s further", cs_field_name(i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > CS_BODY_MAX_BYTES) return 0;
  ct_body_kind kind = (ct_body_kind)(data[0] % 7);
  /* An exact copy, so a read past the body's end is caught. */
  size_t len = size - 1;
  char *body = malloc(len ? len : 1);
  memcpy(body, data + 1, len);
  ct_body b;
  g_body = body, g_body_len = len, g_b = &b;
  int rc = ct_body_parse(&b, kind, len ? body : NULL, len);
  if (rc) {
    FZ_CHECK(rc == -1, "parse returned %d", rc);
    check_err(&b.err);
  } else {
    FZ_CHECK(b.err.status == 0, "success with an error %d", b.err.status);
    switch (kind) {
    case CT_BODY_POST:
      if (b.is_edit) {
        FZ_CHECK(b.has_id, "an edit without an id");
        check_fields(&b.upd, false);
      } else {
        check_fields(&b.top, true);
      }
      break;
    case CT_BODY_PATCH:
      check_fields(&b.upd, false);
      FZ_CHECK(b.upd.v.set_mask | b.upd.v.clear_mask, "an empty edit accepted");
      break;
    case CT_BODY_UPSERT:
      check_fields(&b.upd, false);
      FZ_CHECK(b.upd.v.set_mask & (1u << CS_EMAIL), "an upsert without email");
      break;
    case CT_BODY_BATCH:
    case CT_BODY_BATCH_UPSERT:
      FZ_CHECK(b.item_count >= 1 && b.item_count <= CS_BATCH_MAX,
               "batch of %zu items", b.item_count);
      for (size_t i = 0; i < b.item_count; i++) {
        if (b.items[i].err.status) {
          check_err(&b.items[i].err);
        } else if (kind == CT_BODY_BATCH) {
          check_fields(&b.items[i], true);
        } else {
          check_fields(&b.items[i], false);
          FZ_CHECK(b.items[i].v.set_mask & (1u << CS_EMAIL),
                   "an upsert item without email");
        }
      }
      break;
    case CT_BODY_SEARCH:
      /* An empty value may point at a constant "" rather than the body. */
      for (int p = 0; p < CT_P_COUNT; p++)
        if (b.param[p].ptr && b.param[p].len)
          FZ_CHECK(inside(b.param[p].ptr, b.param[p].len),
                   "parameter %s outside the body", ct_param_name[p]);
      break;
    case CT_BODY_DELETE:
      FZ_CHECK(b.has_id, "a delete without an id");
      if (b.id_ok)
        FZ_CHECK(b.id >= CS_ID_MIN, "id %llu accepted",
                 (unsigned long long)b.id);
      break;
    }
  }
  ct_body_free(&b);
  free(body);
  return 0;
}
