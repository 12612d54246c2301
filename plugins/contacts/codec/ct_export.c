/*
 * ct_export.c: one line of an export or a dump read with its identity
 * (ct_codec.h, "export lines"; ct_json.c writes it), shared by contactctl's
 * load and the admin API's account import.
 *
 * Reading runs the POST /contacts parser with CT_PARSE_EXPORT_FIELDS, so
 * the fields are checked exactly as a create's, and then reads the keys
 * the parser handed back as written: the id (cs_id_parse), the times
 * (cs_time_parse), the version (ct_parse_version) and the account's name.
 */
#include <inttypes.h>
#include <string.h>

#include "ct_codec.h"
#include "ct_codec_int.h"

/* The name of key slot i of ct_body.server. */
static const char *key_name(int i) {
  if (i == CT_X_ACCOUNT) return "account";
  if (i == CT_X_DELETED_AT) return "deleted_at";
  return cs_server_field_name(i);
}

/* Key i as a string (a number is refused, as is a boolean, an object or an
 * array); *v its value, ptr NULL when absent. 0 or -1 with l->err. */
static int key_string(ct_export_line *l, int i, cs_str *v) {
  const ct_body *b = &l->body;
  uint32_t bit = 1u << i;
  *v = b->server[i];
  if (!(b->server_number & bit) && !(b->server_other & bit)) return 0;
  const char *name = key_name(i);
  return ct_fail(&l->err, 400, "invalid_field", name, strlen(name),
                 "%s: must be a string", name);
}

/* Time key i, required: into *ms. */
static int key_time(ct_export_line *l, int i, bool required, int64_t *ms) {
  cs_str v;
  *ms = 0;
  if (key_string(l, i, &v)) return -1;
  const char *name = key_name(i);
  if (!v.ptr) {
    if (!required) return 0;
    return ct_fail(&l->err, 400, "missing_field", name, strlen(name),
                   "%s: required with an id", name);
  }
  if (cs_time_parse(v.ptr, v.len, ms) == 0) return 0;
  return ct_fail(&l->err, 400, "invalid_field", name, strlen(name),
                 "%s: not an RFC 3339 time (2026-11-26T08:58:00.123Z)", name);
}

/* The version, a JSON integer from 1, into *out (0 when absent). The
 * message shows what was given, quoted when it was a string. */
static int key_version(ct_export_line *l, uint64_t *out) {
  const ct_body *b = &l->body;
  uint32_t bit = 1u << CS_SERVER_VERSION;
  cs_str v = b->server[CS_SERVER_VERSION];
  *out = 0;
  if (b->server_other & bit)
    return ct_fail(&l->err, 400, "invalid_field", "version", 7,
                   "version: must be an integer from 1 to %" PRIu64
                   ", not a boolean, an object or an array",
                   UINT64_MAX);
  if (!v.ptr) return 0;
  bool number = b->server_number & bit;
  if (number && ct_parse_version(v.ptr, v.len, out) == 0) return 0;
  const char *q = number ? "" : "\"";
  return ct_fail(
      &l->err, 400, "invalid_field", "version", 7,
      "version: must be an integer from 1 to %" PRIu64 ", not %s%.*s%s",
      UINT64_MAX, q,
      (int)(v.len > CT_ECHO_MAX_BYTES ? CT_ECHO_MAX_BYTES : v.len), v.ptr, q);
}

/* The identity keys of a parsed line into l->c. */
static int read_identity(ct_export_line *l) {
  cs_contact *c = &l->c;
  cs_str id, account, deleted;
  if (key_string(l, CS_SERVER_ID, &id) ||
      key_string(l, CT_X_ACCOUNT, &account) ||
      key_string(l, CT_X_DELETED_AT, &deleted) || key_version(l, &c->version))
    return -1;
  if (account.ptr) l->account = account;
  if (!id.ptr) {
    if (deleted.ptr)
      return ct_fail(&l->err, 400, "invalid_field", "deleted_at", 10,
                     "deleted_at: only with an id (a dump's trash entry)");
    return 0;
  }
  if (cs_id_parse(id.ptr, id.len, &c->id) != 0)
    return ct_fail(&l->err, 400, "invalid_field", "id", 2,
                   "id: not an id (20 digits, the first not 0)");
  l->has_identity = true;
  if (!c->version) c->version = 1;
  if (key_time(l, CS_SERVER_CREATED_AT, true, &c->created_ms) ||
      key_time(l, CS_SERVER_UPDATED_AT, true, &c->updated_ms) ||
      key_time(l, CT_X_DELETED_AT, false, &c->deleted_ms))
    return -1;
  if (c->updated_ms < c->created_ms)
    return ct_fail(&l->err, 400, "invalid_field", "updated_at", 10,
                   "updated_at: before created_at");
  if (c->deleted_ms && c->deleted_ms < c->created_ms)
    return ct_fail(&l->err, 400, "invalid_field", "deleted_at", 10,
                   "deleted_at: before created_at");
  return 0;
}

int ct_export_line_parse(ct_export_line *l, const char *json, size_t len) {
  memset(l, 0, sizeof *l);
  ct_body *b = &l->body;
  if (ct_body_parse_flags(b, CT_BODY_POST, CT_PARSE_EXPORT_FIELDS, json, len) !=
      0) {
    l->err = b->err;
    return -1;
  }
  if (b->is_edit)
    return ct_fail(&l->err, 400, "unknown_field", "contact_id", 10,
                   "contact_id: an export line is a contact, not an edit");
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (b->top.v.set_mask & (1u << f)) l->c.field[f] = b->top.v.field[f];
  return read_identity(l);
}

void ct_export_line_free(ct_export_line *l) {
  ct_body_free(&l->body);
}
