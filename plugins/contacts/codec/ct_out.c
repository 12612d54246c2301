/*
 * ct_out.c: the contacts API's JSON answers written with yajl_gen: errors
 * and changes. Everything is streamed into the generator's buffer; no tree
 * is built. The contact object itself (and the pages of contacts) is
 * ct_json.c's, which yajl takes as one value.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ct_codec.h"
#include "ct_codec_int.h"

yajl_gen ct_gen_new(void) {
  yajl_gen g = yajl_gen_alloc(NULL);
  /* Stored strings were validated on the way in; a corrupted one would
   * have failed its record checksum before it got here. */
  if (g) yajl_gen_config(g, yajl_gen_validate_utf8, 0);
  return g;
}

void ct_gen_str(yajl_gen g, const char *s, size_t len) {
  yajl_gen_string(g, (const unsigned char *)s, len);
}

static void ct_gen_key(yajl_gen g, const char *key) {
  ct_gen_str(g, key, strlen(key));
}

void ct_gen_id(yajl_gen g, uint64_t id) {
  char digits[CS_ID_DIGITS + 1];
  cs_id_format(id, digits);
  ct_gen_str(g, digits, CS_ID_DIGITS);
}

uint32_t ct_member_bit(const char *name, size_t len) {
  int f = cs_field_from_name(name, len);
  if (f >= 0) return 1u << f;
  int sf = cs_server_field_from_name(name, len);
  if (sf >= 0) return 1u << (CS_FIELD_COUNT + sf);
  return 0;
}

int ct_members_parse(const char *s, size_t len, uint32_t *members, ct_err *e) {
  uint32_t m = CT_MEMBER_ID;
  size_t i = 0;
  do {
    size_t j = i;
    while (j < len && s[j] != ',')
      j++;
    uint32_t bit = ct_member_bit(s + i, j - i);
    if (!bit) {
      const char *why = " is not a member of a contact (id, the contact "
                        "fields, created_at, updated_at, version)";
      if (j == i)
        return ct_fail(e, 400, "invalid_field", "fields", 6,
                       "fields: an empty name");
      /* The name is echoed only when it is short text. */
      if (j - i > CT_ECHO_MAX_BYTES || cs_utf8_chars(s + i, j - i) < 0)
        return ct_fail(e, 400, "invalid_field", "fields", 6, "fields: a name%s",
                       why);
      return ct_fail(e, 400, "invalid_field", "fields", 6, "fields: \"%.*s\"%s",
                     (int)(j - i), s + i, why);
    }
    m |= bit;
    i = j + 1;
  } while (i <= len);
  *members = m;
  return 0;
}

void ct_gen_error(yajl_gen g, const ct_err *e) {
  yajl_gen_map_open(g);
  ct_gen_key(g, "error");
  yajl_gen_map_open(g);
  ct_gen_key(g, "code");
  ct_gen_key(g, e->code);
  ct_gen_key(g, "message");
  ct_gen_key(g, e->msg);
  if (e->field[0]) {
    ct_gen_key(g, "field");
    ct_gen_key(g, e->field);
  }
  if (e->id) {
    ct_gen_key(g, "id");
    ct_gen_id(g, e->id);
  }
  if (e->version) {
    char etag[CT_ETAG_BYTES];
    ct_etag_format(e->version, etag);
    ct_gen_key(g, "etag");
    ct_gen_key(g, etag);
  }
  if (e->has_oldest) {
    char cursor[CT_CHANGE_CURSOR_CHARS + 1];
    ct_change_cursor_format(e->oldest, cursor);
    ct_gen_key(g, "oldest_cursor");
    ct_gen_key(g, cursor);
  }
  yajl_gen_map_close(g);
  yajl_gen_map_close(g);
}

void ct_change_cursor_format(uint64_t seq,
                             char out[CT_CHANGE_CURSOR_CHARS + 1]) {
  snprintf(out, CT_CHANGE_CURSOR_CHARS + 1, "%" PRIu64, seq);
}

int ct_change_cursor_parse(const char *s, size_t len, uint64_t *seq) {
  return cs_decimal_parse(s, len, 0, UINT64_MAX, seq) == 0 ? 0 : -1;
}

void ct_gen_change(yajl_gen g, const cs_change *ch, const cs_contact *now,
                   bool with_contact) {
  char text[32];
  yajl_gen_map_open(g);
  ct_gen_key(g, "cursor");
  ct_change_cursor_format(ch->seq, text);
  ct_gen_str(g, text, strlen(text));
  ct_gen_key(g, "type");
  ct_gen_key(g, cs_change_type_name(ch->type));
  ct_gen_key(g, "id");
  ct_gen_id(g, ch->id);
  ct_gen_key(g, "version");
  yajl_gen_integer(g, (long long)ch->version);
  ct_gen_key(g, "at");
  cs_time_format(ch->at_ms, text);
  ct_gen_str(g, text, strlen(text));
  ct_gen_key(g, "changed_fields");
  yajl_gen_array_open(g);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (ch->fields & (1u << f)) ct_gen_key(g, cs_field_name(f));
  yajl_gen_array_close(g);
  if (with_contact) {
    ct_gen_key(g, "contact");
    if (now)
      ct_gen_contact(g, now);
    else
      yajl_gen_null(g);
  }
  yajl_gen_map_close(g);
}
