/*
 * ct_parse.c: request bodies read straight into contacts, patches and
 * search parameters.
 *
 * yajl's event parser calls back for every key and value; a small state
 * machine (where we are, and what the pending key's value is for) puts each
 * value in its place as it arrives, checking its type and its limits there
 * and then. Nothing builds a tree: the only memory is one arena for the
 * decoded strings kept, as large as the body, since no decoded string is
 * longer than its JSON text.
 *
 * Errors stop the parse at once (a callback returning 0), except inside a
 * batch item: an item's error is that item's result, so the rest of the item
 * is skipped and the parse goes on with the next one.
 *
 * POST /contacts is a create unless the body has contact_id; since the key
 * may come last, a POST body is read into both shapes (top-level fields as a
 * create, update_fields as a patch) and the choice made at the end, where
 * keys that belong only to the other shape become unknown_field.
 *
 * PATCH and upsert bodies are a fields object themselves (an upsert's must
 * give email); a batch upsert's items are fields objects like it. A delete
 * by body may carry "purge", a boolean.
 *
 * Duplicate keys are refused (yajl would let the second silently win), and
 * two spellings of one key (contact_id and contactID) count as the same key.
 *
 * Which keys are fields, which are required and which the server sets all
 * come from the engine's table (cs_field_table, cs_server_field_from_name);
 * this file names no field but "name", the edit-only pair of first_name
 * and last_name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "ct_codec.h"
#include "ct_codec_int.h"

const char *const ct_param_name[CT_P_COUNT] = {"searchby", "search", "match",
                                               "limit",    "cursor", "fields"};

/* Keys, as bits of ct_fields.seen. Contact fields use their cs_field. */
enum {
  CT_K_NAME = CS_FIELD_COUNT,
  CT_K_CONTACT_ID,
  CT_K_UPDATE_FIELDS,
  CT_K_CONTACTS,
  CT_K_PURGE,
  CT_K_PARAM0,
};
_Static_assert(CT_K_PARAM0 + CT_P_COUNT <= 32, "seen is 32 bits");

typedef enum ct_where {
  CT_W_BEGIN,  /* before the body's value */
  CT_W_TOP,    /* in the body's object (not PATCH) */
  CT_W_FIELDS, /* in a fields object: PATCH's body, update_fields, an item */
  CT_W_ITEMS,  /* in the batch's contacts array */
  CT_W_END,    /* after the body's value */
} ct_where;

/* What the value after the pending key is for. */
typedef enum ct_slot {
  CT_S_FIELD, /* a contact field, p->slot_index */
  CT_S_NAME,  /* "name": first word and the rest */
  CT_S_CONTACT_ID,
  CT_S_UPDATE_FIELDS,
  CT_S_CONTACTS,
  CT_S_PURGE,  /* DELETE's "purge": a boolean */
  CT_S_PARAM,  /* a search parameter, p->slot_index */
  CT_S_SERVER, /* a server-set key's value, p->slot_index (a flag allows it) */
  CT_S_IGNORE, /* the rest of a failed batch item */
} ct_slot;

typedef enum ct_vtype {
  CT_V_STRING,
  CT_V_NUMBER,
  CT_V_NULL,
  CT_V_BOOL,
  CT_V_MAP,
  CT_V_ARRAY,
} ct_vtype;

typedef struct ct_parser {
  ct_body *b;
  ct_where where;
  ct_where fields_parent; /* where a fields object's end returns to */
  ct_slot slot;
  int slot_index;
  const char *slot_name; /* the key's canonical name, for messages */
  ct_fields *cur;        /* the fields object being filled */
  bool cur_patch;        /* null removes (edit), rather than means absent */
  bool item_failed;      /* batch: this item has its error already */
  int skip;              /* >0: inside a value being ignored */
  bool bool_value;       /* the value of the CT_V_BOOL being handed on */
  const char *stray;     /* POST: first top-level key of a create */
  const char *upd_name;  /* POST: how update_fields was spelled */
  yajl_handle h;
  const char *json; /* the whole body, for ct_escape_next */
  size_t json_len;
  size_t bad_escape_at; /* offset of the next bad \u escape, or SIZE_MAX */
} ct_parser;

/*
 * Lone surrogates. yajl decodes a \u escape of a high surrogate (D800-DBFF)
 * without checking what follows: alone it becomes "?", and followed by any
 * other \u escape the two are joined into a code point that was never sent
 * (so "\ud800\u0041" loses its "A"). A low surrogate alone becomes bytes
 * that are not UTF-8, which the value check refuses. The API stores values
 * as given and refuses text that is not valid Unicode, so a body is scanned
 * for escapes that do not form a high-low pair before yajl decodes them, and
 * the string (value or key) holding one is handed on as invalid UTF-8,
 * refused like any other with the field's name.
 *
 * A backslash only ever stands inside a string in a body yajl accepts, so
 * the scan needs no string state: it steps over each escape whole.
 */
static int ct_hex4(const char *s) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v << 4 | d;
  }
  return v;
}

/* The offset of the first escape at or after from that is a surrogate not
 * in a high-low pair, or SIZE_MAX. */
size_t ct_escape_next(const char *s, size_t len, size_t from) {
  for (size_t i = from; i < len; i++) {
    const char *bs = memchr(s + i, '\\', len - i);
    if (!bs) return SIZE_MAX;
    i = (size_t)(bs - s);
    if (i + 1 >= len) return SIZE_MAX;
    if (s[i + 1] != 'u' || i + 6 > len) {
      i++; /* a one-character escape, or a broken one yajl will refuse */
      continue;
    }
    int cp = ct_hex4(s + i + 2);
    if (cp >= 0xDC00 && cp <= 0xDFFF) return i;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      int lo = i + 12 <= len && s[i + 6] == '\\' && s[i + 7] == 'u'
                   ? ct_hex4(s + i + 8)
                   : -1;
      if (lo < 0xDC00 || lo > 0xDFFF) return i;
      i += 6;
    }
    i += 5;
  }
  return SIZE_MAX;
}

bool ct_escape_passed(const char *json, size_t len, size_t *at, size_t end) {
  bool bad = false;
  while (*at < end) {
    bad = true;
    *at = ct_escape_next(json, len, *at + 1);
  }
  return bad;
}

/* Whether the string token yajl just decoded holds a bad escape (moving
 * past every one it holds). */
static bool ct_escape_bad(ct_parser *p) {
  return ct_escape_passed(p->json, p->json_len, &p->bad_escape_at,
                          yajl_get_bytes_consumed(p->h));
}

const char ct_not_utf8[] = "\xff";

static ct_err *ct_err_of(ct_parser *p) {
  return p->where == CT_W_FIELDS && p->fields_parent == CT_W_ITEMS
             ? &p->cur->err
             : &p->b->err;
}

/* After an error was written to ct_err_of(p): a batch item goes on (its rest
 * ignored), anything else stops the parse. Returns the callback's result. */
static int ct_stop(ct_parser *p, ct_vtype vt) {
  if (p->where == CT_W_FIELDS && p->fields_parent == CT_W_ITEMS) {
    p->item_failed = true;
    p->slot = CT_S_IGNORE;
    if (vt == CT_V_MAP || vt == CT_V_ARRAY) p->skip = 1;
    return 1;
  }
  return 0;
}

static int ct_wrong_type(ct_parser *p, ct_vtype vt, const char *want) {
  ct_fail(ct_err_of(p), 400, "invalid_field", p->slot_name,
          strlen(p->slot_name), "%s: must be %s", p->slot_name, want);
  return ct_stop(p, vt);
}

/* Copies a decoded string into the arena; yajl's buffer is reused. */
static const char *ct_keep(ct_parser *p, const char *s, size_t len) {
  ct_body *b = p->b;
  if (len > b->arena_cap - b->arena_used) return NULL; /* cannot happen */
  char *d = b->arena + b->arena_used;
  memcpy(d, s, len);
  b->arena_used += len;
  return d;
}

/* ------------------------------------------------------- fields objects */

static void ct_enter_fields(ct_parser *p, ct_fields *f, bool patch,
                            ct_where parent) {
  p->where = CT_W_FIELDS;
  p->fields_parent = parent;
  p->cur = f;
  p->cur_patch = patch;
  p->item_failed = false;
}

/* Marks a key seen in f; -1 (error written) when it was seen before. */
static int ct_see(ct_parser *p, ct_fields *f, int bit, const char *name) {
  if (f->seen & (1u << bit)) {
    ct_fail(ct_err_of(p), 400, "duplicate_field", name, strlen(name),
            "%s: given more than once", name);
    return -1;
  }
  f->seen |= 1u << bit;
  return 0;
}

/* What ct_fields_key found. */
enum { CT_KEY_OTHER = 0, CT_KEY_FIELD = 1, CT_KEY_SERVER = 2 };

/* Whether the key being read belongs to the body's own object. */
static bool ct_at_top(const ct_parser *p) {
  return p->where == CT_W_TOP ||
         (p->where == CT_W_FIELDS && p->fields_parent == CT_W_END);
}

/* A key of a contact/patch object. CT_KEY_FIELD when it names a field
 * (slot set), CT_KEY_SERVER when it is a server-set key the flag lets
 * through (slot set), CT_KEY_OTHER when it is not a field's key at all, -1
 * on error (written). */
static int ct_fields_key(ct_parser *p, ct_fields *f, bool patch, const char *k,
                         size_t len) {
  int field = cs_field_from_name(k, len);
  if (field >= 0) {
    const char *name = cs_field_name(field);
    if (ct_see(p, f, field, name)) return -1;
    if ((field == CS_FIRST_NAME || field == CS_LAST_NAME) &&
        (f->seen & (1u << CT_K_NAME))) {
      ct_fail(ct_err_of(p), 400, "invalid_field", "name", 4,
              "name: cannot be given with %s", name);
      return -1;
    }
    p->slot = CT_S_FIELD;
    p->slot_index = field;
    p->slot_name = name;
    return CT_KEY_FIELD;
  }
  if (patch && len == 4 && !memcmp(k, "name", 4)) {
    if (ct_see(p, f, CT_K_NAME, "name")) return -1;
    if (f->seen & (1u << CS_FIRST_NAME | 1u << CS_LAST_NAME)) {
      ct_fail(ct_err_of(p), 400, "invalid_field", "name", 4,
              "name: cannot be given with first_name or last_name");
      return -1;
    }
    p->slot = CT_S_NAME;
    p->slot_name = "name";
    return CT_KEY_FIELD;
  }
  int sf = cs_server_field_from_name(k, len);
  if (sf < 0 && (p->b->flags & CT_PARSE_EXPORT_FIELDS) && ct_at_top(p)) {
    if (len == 7 && !memcmp(k, "account", 7)) sf = CT_X_ACCOUNT;
    if (len == 10 && !memcmp(k, "deleted_at", 10)) sf = CT_X_DELETED_AT;
    if (sf >= 0) {
      p->slot = CT_S_SERVER;
      p->slot_index = sf;
      p->slot_name = sf == CT_X_ACCOUNT ? "account" : "deleted_at";
      return CT_KEY_SERVER;
    }
  }
  if (sf >= 0) {
    const char *name = cs_server_field_name(sf);
    /* Not marked seen: a dump's line is taken whatever it repeats. */
    if ((p->b->flags & (CT_PARSE_SERVER_FIELDS | CT_PARSE_EXPORT_FIELDS)) &&
        ct_at_top(p)) {
      p->slot = CT_S_SERVER;
      p->slot_index = sf;
      p->slot_name = name;
      return CT_KEY_SERVER;
    }
    ct_fail(ct_err_of(p), 400, "invalid_field", k, len,
            "%s: set by the server, cannot be given", name);
    return -1;
  }
  return CT_KEY_OTHER;
}

/* The value of a server-set key the flag lets through: a string or a
 * number is handed back as written, with its kind (server_number,
 * server_other); null means none was given; anything else (nested values
 * included) is skipped and marked in server_other. The last one counts. */
static int ct_server_value(ct_parser *p, ct_vtype vt, const char *s,
                           size_t len) {
  ct_body *b = p->b;
  uint32_t bit = 1u << p->slot_index;
  cs_str v = {NULL, 0};
  if (vt == CT_V_MAP || vt == CT_V_ARRAY) p->skip = 1;
  if (vt == CT_V_STRING || vt == CT_V_NUMBER) {
    v.ptr = len ? ct_keep(p, s, len) : "";
    if (!v.ptr) return 0;
    v.len = len;
  }
  b->server[p->slot_index] = v;
  b->server_number &= ~bit;
  b->server_other &= ~bit;
  if (vt == CT_V_NUMBER) b->server_number |= bit;
  if (vt == CT_V_MAP || vt == CT_V_ARRAY || vt == CT_V_BOOL)
    b->server_other |= bit;
  return 1;
}

static int ct_unknown_key(ct_parser *p, const char *k, size_t len) {
  ct_err *e = ct_err_of(p);
  ct_fail(e, 400, "unknown_field", k, len, "not a field");
  /* The name as cut by ct_fail, whole code points only. */
  snprintf(e->msg, sizeof e->msg, "%s: not a field", e->field);
  return -1;
}

/* Sets or removes field in f. An empty optional value counts as null. */
static int ct_fields_put(ct_parser *p, ct_vtype vt, int field, cs_str v) {
  ct_fields *f = p->cur;
  uint32_t bit = 1u << field;
  if (vt == CT_V_NULL || v.len == 0) {
    if (cs_field_table[field].required) {
      const char *name = cs_field_name(field);
      ct_fail(ct_err_of(p), 400, "invalid_field", name, strlen(name),
              "%s: required, cannot be %s", name,
              p->cur_patch ? "removed" : "null");
      return ct_stop(p, vt);
    }
    f->v.set_mask &= ~bit;
    f->v.field[field] = (cs_str){NULL, 0};
    if (p->cur_patch) f->v.clear_mask |= bit;
    return 1;
  }
  f->v.clear_mask &= ~bit;
  f->v.set_mask |= bit;
  f->v.field[field] = v;
  return 1;
}

static int ct_fields_value(ct_parser *p, ct_vtype vt, const char *s,
                           size_t len) {
  if (p->slot == CT_S_IGNORE) {
    if (vt == CT_V_MAP || vt == CT_V_ARRAY) p->skip = 1;
    return 1;
  }
  if (p->slot == CT_S_SERVER) return ct_server_value(p, vt, s, len);
  cs_str v = {NULL, 0};
  if (p->slot == CT_S_NAME) {
    if (vt == CT_V_NULL) {
      ct_fail(ct_err_of(p), 400, "invalid_field", "name", 4,
              "name: cannot be removed, first_name is required");
      return ct_stop(p, vt);
    }
    if (vt != CT_V_STRING) return ct_wrong_type(p, vt, "a string");
    /* The whole name passes first_name's checks, then each part its own. */
    ct_err why;
    if (ct_check_value(CS_FIRST_NAME, s, len, &v, &why)) {
      const char *colon = strchr(why.msg, ':');
      ct_fail(ct_err_of(p), 400, "invalid_field", "name", 4, "name%s",
              colon ? colon : ": invalid");
      return ct_stop(p, vt);
    }
    if (!(v.ptr = ct_keep(p, v.ptr, v.len))) {
      ct_fail(ct_err_of(p), 500, "internal", NULL, 0, "out of arena");
      return 0;
    }
    cs_str first, rest;
    ct_name_split(v, &first, &rest);
    if (cs_utf8_chars(first.ptr, first.len) > CS_NAME_MAX_CHARS ||
        cs_utf8_chars(rest.ptr, rest.len) > CS_NAME_MAX_CHARS) {
      ct_fail(ct_err_of(p), 400, "invalid_field", "name", 4,
              "name: its first word and its rest must each be at most %d "
              "characters",
              CS_NAME_MAX_CHARS);
      return ct_stop(p, vt);
    }
    ct_fields_put(p, CT_V_STRING, CS_FIRST_NAME, first);
    return ct_fields_put(p, CT_V_STRING, CS_LAST_NAME, rest);
  }
  /* CT_S_FIELD */
  int field = p->slot_index;
  switch (vt) {
  case CT_V_NULL:
    return ct_fields_put(p, vt, field, v);
  case CT_V_STRING:
    if (ct_check_value(field, s, len, &v, ct_err_of(p))) return ct_stop(p, vt);
    break;
  case CT_V_NUMBER:
    if (field != CS_PHONE) return ct_wrong_type(p, vt, "a string");
    if (ct_check_phone_number(s, len, &v, ct_err_of(p))) return ct_stop(p, vt);
    break;
  default:
    return ct_wrong_type(
        p, vt, field == CS_PHONE ? "a string or an integer" : "a string");
  }
  if (v.len && !(v.ptr = ct_keep(p, v.ptr, v.len))) {
    ct_fail(ct_err_of(p), 500, "internal", NULL, 0, "out of arena");
    return 0;
  }
  return ct_fields_put(p, vt, field, v);
}

/* Checks the required fields of a create. 0 or -1 with *e written. */
static int ct_fields_complete(const ct_fields *f, ct_err *e) {
  return ct_check_required(f->v.set_mask, e);
}

/* An upsert names its contact by email: it must be given (a null or an
 * empty one was refused as it arrived). 0 or -1 with *e written. */
static int ct_upsert_complete(const ct_fields *f, ct_err *e) {
  if (f->v.set_mask & (1u << CS_EMAIL)) return 0;
  const char *name = cs_field_name(CS_EMAIL);
  return ct_fail(e, 400, "missing_field", name, strlen(name),
                 "%s: required, it names the contact to create or update",
                 name);
}

/* -------------------------------------------------------- batch items */

static ct_fields *ct_item_new(ct_parser *p) {
  ct_body *b = p->b;
  if (b->item_count == CS_BATCH_MAX) {
    ct_fail(&b->err, 400, "invalid_field", "contacts", 8,
            "contacts: at most %d contacts in one batch", CS_BATCH_MAX);
    return NULL;
  }
  if (b->item_count == b->item_cap) {
    size_t cap = b->item_cap ? b->item_cap * 2 : 16;
    if (cap > CS_BATCH_MAX) cap = CS_BATCH_MAX;
    ct_fields *n = realloc(b->items, cap * sizeof *n);
    if (!n) {
      ct_fail(&b->err, 500, "internal", NULL, 0, "out of memory");
      return NULL;
    }
    b->items = n;
    b->item_cap = cap;
  }
  ct_fields *f = &b->items[b->item_count++];
  memset(f, 0, sizeof *f);
  return f;
}

static int ct_items_value(ct_parser *p, ct_vtype vt) {
  ct_fields *f = ct_item_new(p);
  if (!f) return 0;
  if (vt == CT_V_MAP) {
    ct_enter_fields(p, f, p->b->kind == CT_BODY_BATCH_UPSERT, CT_W_ITEMS);
    return 1;
  }
  ct_fail(&f->err, 400, "invalid_body", NULL, 0,
          "contacts[%zu]: must be an object", p->b->item_count - 1);
  if (vt == CT_V_ARRAY) p->skip = 1;
  return 1;
}

/* ------------------------------------------------------- the top object */

static bool ct_key_is(const char *k, size_t len, const char *name) {
  return len == strlen(name) && !memcmp(k, name, len);
}

static int ct_top_key(ct_parser *p, const char *k, size_t len) {
  ct_body *b = p->b;
  ct_fields *top = &b->top; /* its seen bits serve every kind */
  if (b->kind == CT_BODY_POST) {
    int rc = ct_fields_key(p, top, false, k, len);
    if (rc < 0) return -1;
    if (rc == CT_KEY_SERVER) return 0; /* not a field: no stray */
    if (rc == CT_KEY_FIELD) {
      if (!p->stray) p->stray = p->slot_name;
      return 0;
    }
  }
  if ((b->kind == CT_BODY_POST || b->kind == CT_BODY_DELETE) &&
      (ct_key_is(k, len, "contact_id") || ct_key_is(k, len, "contactID"))) {
    p->slot_name = len == 10 ? "contact_id" : "contactID";
    if (ct_see(p, top, CT_K_CONTACT_ID, p->slot_name)) return -1;
    p->slot = CT_S_CONTACT_ID;
    return 0;
  }
  if (b->kind == CT_BODY_POST && (ct_key_is(k, len, "update_fields") ||
                                  ct_key_is(k, len, "updateFields"))) {
    p->slot_name = len == 13 ? "update_fields" : "updateFields";
    if (ct_see(p, top, CT_K_UPDATE_FIELDS, p->slot_name)) return -1;
    p->upd_name = p->slot_name;
    p->slot = CT_S_UPDATE_FIELDS;
    return 0;
  }
  if (b->kind == CT_BODY_DELETE && ct_key_is(k, len, "purge")) {
    p->slot_name = "purge";
    if (ct_see(p, top, CT_K_PURGE, p->slot_name)) return -1;
    p->slot = CT_S_PURGE;
    return 0;
  }
  if ((b->kind == CT_BODY_BATCH || b->kind == CT_BODY_BATCH_UPSERT) &&
      ct_key_is(k, len, "contacts")) {
    p->slot_name = "contacts";
    if (ct_see(p, top, CT_K_CONTACTS, p->slot_name)) return -1;
    p->slot = CT_S_CONTACTS;
    return 0;
  }
  if (b->kind == CT_BODY_SEARCH) {
    for (int i = 0; i < CT_P_COUNT; i++) {
      if (ct_key_is(k, len, ct_param_name[i])) {
        p->slot_name = ct_param_name[i];
        if (ct_see(p, top, CT_K_PARAM0 + i, p->slot_name)) return -1;
        p->slot = CT_S_PARAM;
        p->slot_index = i;
        return 0;
      }
    }
  }
  return ct_unknown_key(p, k, len);
}

static int ct_top_value(ct_parser *p, ct_vtype vt, const char *s, size_t len) {
  ct_body *b = p->b;
  switch (p->slot) {
  case CT_S_FIELD:
  case CT_S_NAME:
    p->cur = &b->top;
    p->cur_patch = false;
    return ct_fields_value(p, vt, s, len);
  case CT_S_CONTACT_ID:
    /* A number is taken too: an id is all digits, and some clients send
     * one unquoted. Anything that cannot be an id is answered like an id
     * that does not exist. */
    if (vt != CT_V_STRING && vt != CT_V_NUMBER)
      return ct_wrong_type(p, vt, "a string");
    b->has_id = true;
    b->id_ok = cs_id_parse(s, len, &b->id) == 0;
    return 1;
  case CT_S_UPDATE_FIELDS:
    if (vt != CT_V_MAP) return ct_wrong_type(p, vt, "an object");
    b->has_upd = true;
    ct_enter_fields(p, &b->upd, true, CT_W_TOP);
    return 1;
  case CT_S_CONTACTS:
    if (vt != CT_V_ARRAY) return ct_wrong_type(p, vt, "an array");
    b->has_items = true;
    p->where = CT_W_ITEMS;
    return 1;
  case CT_S_PURGE:
    if (vt != CT_V_BOOL && vt != CT_V_NULL)
      return ct_wrong_type(p, vt, "true or false");
    b->purge = vt == CT_V_BOOL && p->bool_value;
    return 1;
  case CT_S_PARAM: {
    int i = p->slot_index;
    if (vt == CT_V_NULL) return 1; /* null: as if not given */
    bool number_ok = i == CT_P_SEARCH || i == CT_P_LIMIT;
    if (vt == CT_V_NUMBER && number_ok) {
      /* kept as written: limit checks its digits, a phone search folds
       * to them */
    } else if (vt != CT_V_STRING) {
      return ct_wrong_type(p, vt,
                           number_ok ? "a string or an integer" : "a string");
    }
    const char *kept = len ? ct_keep(p, s, len) : "";
    if (!kept) return 0;
    b->param[i] = (cs_str){kept, len};
    return 1;
  }
  case CT_S_SERVER:
    return ct_server_value(p, vt, s, len);
  case CT_S_IGNORE:
    break;
  }
  return 1;
}

/* ------------------------------------------------------ yajl callbacks */

static int ct_on_value(ct_parser *p, ct_vtype vt, const char *s, size_t len) {
  if (p->skip) {
    if (vt == CT_V_MAP || vt == CT_V_ARRAY) p->skip++;
    return 1;
  }
  switch (p->where) {
  case CT_W_BEGIN:
    if (vt == CT_V_MAP) {
      if (p->b->kind == CT_BODY_PATCH || p->b->kind == CT_BODY_UPSERT)
        ct_enter_fields(p, &p->b->upd, true, CT_W_END);
      else
        p->where = CT_W_TOP;
      return 1;
    }
    ct_fail(&p->b->err, 400, "invalid_body", NULL, 0,
            "the body must be a JSON object");
    return 0;
  case CT_W_TOP:
    return ct_top_value(p, vt, s, len);
  case CT_W_FIELDS:
    return ct_fields_value(p, vt, s, len);
  case CT_W_ITEMS:
    return ct_items_value(p, vt);
  case CT_W_END:
    break;
  }
  return 0;
}

static int ct_cb_null(void *ctx) {
  return ct_on_value(ctx, CT_V_NULL, NULL, 0);
}
static int ct_cb_boolean(void *ctx, int v) {
  ((ct_parser *)ctx)->bool_value = v != 0;
  return ct_on_value(ctx, CT_V_BOOL, NULL, 0);
}
static int ct_cb_number(void *ctx, const char *s, size_t len) {
  return ct_on_value(ctx, CT_V_NUMBER, s, len);
}
static int ct_cb_string(void *ctx, const unsigned char *s, size_t len) {
  if (ct_escape_bad(ctx))
    return ct_on_value(ctx, CT_V_STRING, ct_not_utf8, sizeof ct_not_utf8 - 1);
  return ct_on_value(ctx, CT_V_STRING, (const char *)s, len);
}
static int ct_cb_start_map(void *ctx) {
  return ct_on_value(ctx, CT_V_MAP, NULL, 0);
}
static int ct_cb_start_array(void *ctx) {
  return ct_on_value(ctx, CT_V_ARRAY, NULL, 0);
}

static int ct_cb_map_key(void *ctx, const unsigned char *key, size_t len) {
  ct_parser *p = ctx;
  const char *k = (const char *)key;
  bool bad_escape = ct_escape_bad(p); /* first: it tracks every string */
  if (p->skip) return 1;
  if (p->where == CT_W_FIELDS && p->item_failed) return 1;
  /* A key is echoed in errors: it must be text we can send back. */
  if (bad_escape || cs_utf8_chars(k, len) < 0) {
    ct_fail(ct_err_of(p), 400, "unknown_field", NULL, 0,
            "a field name is not valid UTF-8 or holds a NUL");
    p->slot = CT_S_IGNORE;
    return ct_stop(p, CT_V_NULL);
  }
  int rc;
  if (p->where == CT_W_FIELDS) {
    rc = ct_fields_key(p, p->cur, p->cur_patch, k, len);
    if (rc == CT_KEY_OTHER) rc = ct_unknown_key(p, k, len);
    rc = rc < 0 ? -1 : 0;
  } else {
    rc = ct_top_key(p, k, len);
  }
  if (rc < 0) {
    p->slot = CT_S_IGNORE;
    return ct_stop(p, CT_V_NULL);
  }
  return 1;
}

static int ct_cb_end_map(void *ctx) {
  ct_parser *p = ctx;
  if (p->skip) {
    p->skip--;
    return 1;
  }
  if (p->where == CT_W_FIELDS) {
    if (p->fields_parent == CT_W_ITEMS && !p->item_failed) {
      if (p->b->kind == CT_BODY_BATCH_UPSERT)
        ct_upsert_complete(p->cur, &p->cur->err);
      else
        ct_fields_complete(p->cur, &p->cur->err);
    }
    p->where = p->fields_parent;
  } else if (p->where == CT_W_TOP) {
    p->where = CT_W_END;
  }
  return 1;
}

static int ct_cb_end_array(void *ctx) {
  ct_parser *p = ctx;
  if (p->skip) {
    p->skip--;
    return 1;
  }
  if (p->where == CT_W_ITEMS) p->where = CT_W_TOP;
  return 1;
}

static const yajl_callbacks ct_callbacks = {
    .yajl_null = ct_cb_null,
    .yajl_boolean = ct_cb_boolean,
    .yajl_number = ct_cb_number, /* the text as written: no float rounding */
    .yajl_string = ct_cb_string,
    .yajl_start_map = ct_cb_start_map,
    .yajl_map_key = ct_cb_map_key,
    .yajl_end_map = ct_cb_end_map,
    .yajl_start_array = ct_cb_start_array,
    .yajl_end_array = ct_cb_end_array,
};

/* -------------------------------------------------------- whole bodies */

/* The checks only the whole body can answer. */
static int ct_body_finish(ct_parser *p) {
  ct_body *b = p->b;
  switch (b->kind) {
  case CT_BODY_POST:
    if (b->has_id) {
      b->is_edit = true;
      if (p->stray)
        return ct_fail(
            &b->err, 400, "unknown_field", p->stray, strlen(p->stray),
            "%s: not a field of an edit; put it in update_fields", p->stray);
      if (!b->has_upd)
        return ct_fail(&b->err, 400, "missing_field", "update_fields", 13,
                       "update_fields: required to edit a contact");
      if (!(b->upd.v.set_mask | b->upd.v.clear_mask))
        return ct_fail(&b->err, 400, "empty_update", p->upd_name,
                       strlen(p->upd_name), "%s: no fields to change",
                       p->upd_name);
      return 0;
    }
    if (b->has_upd)
      return ct_fail(
          &b->err, 400, "unknown_field", p->upd_name, strlen(p->upd_name),
          "%s: only an edit (with contact_id) takes it", p->upd_name);
    return ct_fields_complete(&b->top, &b->err);
  case CT_BODY_PATCH:
    if (!(b->upd.v.set_mask | b->upd.v.clear_mask))
      return ct_fail(&b->err, 400, "empty_update", NULL, 0,
                     "no fields to change");
    return 0;
  case CT_BODY_UPSERT:
    return ct_upsert_complete(&b->upd, &b->err);
  case CT_BODY_BATCH:
  case CT_BODY_BATCH_UPSERT:
    if (!b->has_items)
      return ct_fail(&b->err, 400, "missing_field", "contacts", 8,
                     "contacts: required");
    if (b->item_count == 0)
      return ct_fail(&b->err, 400, "invalid_field", "contacts", 8,
                     "contacts: must hold 1 to %d contacts", CS_BATCH_MAX);
    return 0;
  case CT_BODY_DELETE:
    if (!b->has_id)
      return ct_fail(&b->err, 400, "missing_field", "contact_id", 10,
                     "contact_id: required");
    return 0;
  case CT_BODY_SEARCH:
    return 0;
  }
  return 0;
}

static bool ct_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!strchr(" \t\r\n", s[i]) || s[i] == '\0') return false;
  return true;
}

int ct_body_parse(ct_body *b, ct_body_kind kind, const char *json, size_t len) {
  return ct_body_parse_flags(b, kind, 0, json, len);
}

int ct_body_parse_flags(ct_body *b, ct_body_kind kind, unsigned flags,
                        const char *json, size_t len) {
  memset(b, 0, sizeof *b);
  b->kind = kind;
  b->flags = flags;
  if (!json || ct_blank(json, len)) {
    /* A search or a delete by body may come with no body at all; then it
     * is missing its parameters, which the handler reports by name. */
    if (kind == CT_BODY_SEARCH) return 0;
    if (kind == CT_BODY_DELETE)
      return ct_fail(&b->err, 400, "missing_field", "contact_id", 10,
                     "contact_id: required");
    return ct_fail(&b->err, 400, "invalid_json", NULL, 0,
                   "the body is empty; a JSON object is expected");
  }
  b->arena_cap = len + 1;
  b->arena = malloc(b->arena_cap);
  if (!b->arena)
    return ct_fail(&b->err, 500, "internal", NULL, 0, "out of memory");

  ct_parser p = {.b = b,
                 .where = CT_W_BEGIN,
                 .json = json,
                 .json_len = len,
                 .bad_escape_at = ct_escape_next(json, len, 0)};
  yajl_handle h = yajl_alloc(&ct_callbacks, NULL, &p);
  if (!h) return ct_fail(&b->err, 500, "internal", NULL, 0, "out of memory");
  p.h = h;
  /* Strings are checked strictly by ct_check_value (yajl's check is lax). */
  yajl_config(h, yajl_dont_validate_strings, 1);
  yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  int rc = 0;
  if (st == yajl_status_client_canceled) {
    if (!b->err.status)
      ct_fail(&b->err, 500, "internal", NULL, 0, "parse stopped");
    rc = -1;
  } else if (st != yajl_status_ok) {
    unsigned char *why = yajl_get_error(h, 0, NULL, 0);
    char *nl = why ? strchr((char *)why, '\n') : NULL;
    if (nl) *nl = '\0';
    rc = ct_fail(&b->err, 400, "invalid_json", NULL, 0,
                 "the body is not valid JSON (%s at byte %zu)",
                 why ? (const char *)why : "error", yajl_get_bytes_consumed(h));
    if (why) yajl_free_error(h, why);
  } else {
    rc = ct_body_finish(&p);
  }
  yajl_free(h);
  return rc;
}

void ct_body_free(ct_body *b) {
  free(b->arena);
  free(b->items);
  b->arena = NULL;
  b->items = NULL;
}
