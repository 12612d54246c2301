/*
 * ct_codec.h: the contact's JSON codec, a leaf library of its own (ctcodec).
 *
 * It reads the JSON bodies of the contacts API (a contact, a patch, a batch,
 * a delete, search parameters) straight into the engine's cs_contact /
 * cs_patch values, checks each value against the contact's rules as it
 * arrives, and writes contact objects and error objects back out. The
 * contacts plugin answers requests with it, and contactctl loads and dumps
 * with it, so that a loaded line is read exactly as a POST /contacts and a
 * dumped line is exactly the API's contact object.
 *
 *   ct_parse.c  bodies read with yajl's event parser (no tree)
 *   ct_text.c   the per-value rules applied while reading: strict UTF-8,
 *               trimming, lengths, phone digits, name splitting, cursors
 *   ct_out.c    error objects and changes written with yajl_gen (no tree)
 *   ct_json.c   contact objects, pages and export lines written into one
 *               buffer, byte for byte as yajl_gen writes them
 *   ct_query.c  POST /contacts/query's body read into a cs_qry, its
 *               cursors (ct_qcursor.c) and its memory (ct_qmem.c)
 *
 * It needs only the engine's public headers (cs.h, whose field table it
 * reads for every name, rule and required field, and cs_query.h), yajl,
 * xxhash and libcrypto's base64 (EVP_EncodeBlock); nothing of the
 * server or the plugin API. Its errors are its own ct_err, carrying the
 * HTTP status the API answers with, so that every user gives the same code
 * word and message for the same fault.
 *
 * Invariants: a ct_err with status 0 means "no error"; every string a
 * ct_body hands out points into the body's arena or into the parsed text
 * and stays valid until ct_body_free (and as long as the text); every value
 * the parser accepts has already been trimmed and checked against its
 * field's limits, so the engine's own validation (cs_contact_validate, run
 * again by cs_create/cs_update) only adds the shape checks it owns (email
 * syntax).
 *
 * Thread safety: no global state; any number of bodies may be parsed and
 * generators used at once from different threads.
 */
#ifndef CT_CODEC_H
#define CT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>

#include "cs.h"
#include "cs_query.h"

/* A field or key named in an error is cut to this many bytes, so a hostile
 * megabyte-long key is not echoed back whole. */
#define CT_ECHO_MAX_BYTES 64

/* The cursor: base64url (no padding) of a kind byte and a 64-bit value,
 * big-endian. 9 bytes make 12 characters. A search cursor's kind is
 * CT_CURSOR_VERSION and its value the last id of the page; a trash
 * cursor's kind is CT_CURSOR_TRASH and its value what cs_trash_list gave
 * as next. Each decodes only as its own kind. */
#define CT_CURSOR_VERSION 1
#define CT_CURSOR_TRASH 2
#define CT_CURSOR_CHARS 12

/* An entity tag, "<version>" with its quotes: 20 digits at most, two
 * quotes and a NUL. */
#define CT_ETAG_BYTES 24

/* ---------------------------------------------------------------- errors */

/* An answer that is not a success, before it is sent or printed. */
typedef struct ct_err {
  int status;                        /* HTTP status; 0: no error */
  const char *code;                  /* a static snake_case word */
  char field[CT_ECHO_MAX_BYTES + 1]; /* "" when no one field is to blame */
  char msg[256];
  uint64_t id; /* duplicate_email: the contact holding the email */
  /* precondition_failed: the contact's current version, written as the
   * error object's "etag"; 0: none (the contact is not live). */
  uint64_t version;
  /* cursor_expired: the oldest cursor still valid, written as the error
   * object's "oldest_cursor" when has_oldest. */
  bool has_oldest;
  uint64_t oldest;
} ct_err;

/* Fills *e (printf-style message) and returns -1, so callers can write
 * `return ct_fail(...)`. field may be NULL or not NUL-terminated (flen); it
 * is cut to CT_ECHO_MAX_BYTES on a code point boundary. */
int ct_fail(ct_err *e, int status, const char *code, const char *field,
            size_t flen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* ---------------------------------------------------------------- bodies */

/*
 * The fields a body gave, as the engine's patch: for a create, absent
 * fields are simply not in v.set_mask; for an edit, v.clear_mask names the
 * fields to remove. Masks have bit (1 << cs_field).
 */
typedef struct ct_fields {
  uint32_t seen; /* keys met in this object (duplicate detection) */
  cs_patch v;    /* the values, read straight in; for a create, set_mask */
  ct_err err;    /* batch items: this item's error; elsewhere unused */
} ct_fields;

/* Search parameters as given, before their values are checked. A parameter
 * absent has ptr == NULL. */
enum {
  CT_P_SEARCHBY = 0,
  CT_P_SEARCH,
  CT_P_MATCH,
  CT_P_LIMIT,
  CT_P_CURSOR,
  CT_P_FIELDS, /* a projection, "id,email" (ct_members_parse) */
  CT_P_COUNT
};
extern const char *const ct_param_name[CT_P_COUNT];

typedef enum ct_body_kind {
  CT_BODY_POST,   /* POST /contacts: a create, or an edit with contact_id */
  CT_BODY_PATCH,  /* PATCH /contacts/{id}: the fields object itself */
  CT_BODY_BATCH,  /* POST /contacts/batch: {"contacts": [...]} */
  CT_BODY_SEARCH, /* GET /contacts: the search parameters */
  CT_BODY_DELETE, /* DELETE /contacts: {"contact_id": ..., "purge"?} */
  CT_BODY_UPSERT, /* POST /contacts/upsert: a fields object, email required */
  CT_BODY_BATCH_UPSERT, /* POST /contacts/batch/upsert: {"contacts": [...]},
                           each a fields object with email */
} ct_body_kind;

/* Flags of ct_body_parse_flags. */
enum {
  /* The body's own object may carry the keys the server sets and a contact
   * object (a dump's line) carries: id, created_at, updated_at and version.
   * Each is then taken whatever its value, any number of times, and not as
   * a field: a string or number value is handed back in ct_body.server,
   * anything else is skipped (its kind noted). Without the flag (the API) each
   * is refused as invalid_field
   * ("set by the server"). Keys of nested objects (update_fields, batch
   * items) are refused either way. */
  CT_PARSE_SERVER_FIELDS = 1u << 0,
  /* CT_PARSE_SERVER_FIELDS, and the two keys only an export line carries
   * (ct_export_line_parse): account and deleted_at, handed back in
   * ct_body.server at CT_X_ACCOUNT and CT_X_DELETED_AT in the same way. */
  CT_PARSE_EXPORT_FIELDS = 1u << 1,
};

/* Where ct_body.server keeps an export line's own keys, after the
 * server-set ones. */
enum { CT_X_ACCOUNT = CS_SERVER_FIELD_COUNT, CT_X_DELETED_AT, CT_X_COUNT };

typedef struct ct_body {
  ct_body_kind kind;
  unsigned flags;
  ct_err err;
  /* POST and DELETE: contact_id/contactID. id_ok is false when it was given
   * but cannot be an id (the handler answers 404, as for a missing one). */
  bool has_id;
  bool id_ok;
  uint64_t id;
  /* DELETE: "purge": true (a JSON boolean; absent or null is false). */
  bool purge;
  /* POST: is_edit when contact_id was given; then upd holds update_fields
   * (has_upd says it was given) and top is unused. PATCH and UPSERT: upd
   * (for UPSERT, email is in upd.v.set_mask). */
  bool is_edit;
  bool has_upd;
  ct_fields top;
  ct_fields upd;
  /* BATCH, BATCH_UPSERT: the items in order, each with its own err (an
   * upsert item's fields are a patch, as UPSERT's upd). */
  bool has_items;
  ct_fields *items;
  size_t item_count;
  size_t item_cap;
  /* SEARCH */
  cs_str param[CT_P_COUNT];
  /* CT_PARSE_SERVER_FIELDS: the last value given for each server-set key:
   * a string or number as written (not checked), ptr NULL when none was,
   * or when it was null or another kind. Bits (1 << cs_server_field):
   * server_number when that value was a JSON number, server_other when it
   * was a boolean, an object or an array. */
  cs_str server[CT_X_COUNT];
  uint32_t server_number;
  uint32_t server_other;
  /* Decoded strings live here; one allocation as large as the body, which
   * no decoded string can outgrow. */
  char *arena;
  size_t arena_used;
  size_t arena_cap;
} ct_body;

/*
 * Reads a JSON body of the given kind into *b (which it initialises). 0, or
 * -1 with b->err filled (invalid_json, invalid_body, unknown_field,
 * invalid_field, duplicate_field, missing_field, empty_update, ...). Batch
 * items' own errors are in their err and do not fail the whole parse. When
 * a body has several faults, the first met in document order is the one
 * reported. Call ct_body_free in every case.
 */
int ct_body_parse(ct_body *b, ct_body_kind kind, const char *json, size_t len);
/* The same, with CT_PARSE_* flags. */
int ct_body_parse_flags(ct_body *b, ct_body_kind kind, unsigned flags,
                        const char *json, size_t len);
void ct_body_free(ct_body *b);

/* ------------------------------------------------------- values, cursors */

/*
 * Checks a string value given for field with the engine's cs_field_check:
 * no NUL, valid UTF-8, and within the field's limits after trimming. On
 * success *out is the trimmed value (len 0 for an empty optional field,
 * which callers treat as null). -1 with *e filled otherwise (invalid_field
 * naming the field; unknown_field for a field number out of range).
 */
int ct_check_value(int field, const char *s, size_t len, cs_str *out,
                   ct_err *e);

/* Checks a JSON number given as a phone: a non-negative integer, kept as
 * its decimal digits. */
int ct_check_phone_number(const char *s, size_t len, cs_str *out, ct_err *e);

/* 0 when present_mask (bits 1 << cs_field) holds every required field, or
 * -1 with *e a missing_field naming the first one missing. */
int ct_check_required(uint32_t present_mask, ct_err *e);

/* Splits a (checked, trimmed, non-empty) name at its first whitespace run:
 * first word in *first, the rest trimmed in *rest (len 0 when none). */
void ct_name_split(cs_str name, cs_str *first, cs_str *rest);

/* Writes "id, " and the names of every searchable field, comma-separated
 * and NUL-terminated, into out (cut to cap): the list an invalid searchby
 * answer gives. Returns the length it needed, as snprintf does. */
size_t ct_searchby_names(char *out, size_t cap);

/* Cursor of the page ending at id; out gets CT_CURSOR_CHARS and a NUL. */
void ct_cursor_encode(uint64_t id, char out[CT_CURSOR_CHARS + 1]);
/* 0 with the id, or -1 for anything this server did not hand out. */
int ct_cursor_decode(const char *s, size_t len, uint64_t *id_out);

/* The same for the trash's cursors (any value, kind CT_CURSOR_TRASH). */
void ct_trash_cursor_encode(uint64_t next, char out[CT_CURSOR_CHARS + 1]);
int ct_trash_cursor_decode(const char *s, size_t len, uint64_t *next_out);

/* base64url without padding (RFC 4648 section 5), the alphabet of every
 * cursor: len bytes make CT_B64URL_CHARS(len) characters. Encoding writes
 * them and a NUL into out and returns their count; decoding takes only the
 * canonical text of some bytes (no padding, no other character, unused
 * bits zero) and writes at most len * 3 / 4 bytes into out, their count in
 * *out_len. 0, or -1 for anything else. */
#define CT_B64URL_CHARS(len) (((len) / 3) * 4 + ((len) % 3 ? (len) % 3 + 1 : 0))
size_t ct_b64url_encode(const unsigned char *raw, size_t len, char *out);
int ct_b64url_decode(const char *s, size_t len, unsigned char *out,
                     size_t *out_len);

/* Writes a version's entity tag, "\"<version>\"" and a NUL, into out. */
void ct_etag_format(uint64_t version, char out[CT_ETAG_BYTES]);

/* Parses a decimal page size. -1 for anything that is not 1..max. */
int ct_parse_limit(const char *s, size_t len, uint32_t *out);

/* Parses a contact's version as written: decimal digits without a sign,
 * a leading zero or an exponent, 1 to UINT64_MAX. 0 with *out, or -1. */
int ct_parse_version(const char *s, size_t len, uint64_t *out);

/* ---------------------------------------------------------- projections */

/*
 * The members of a contact object a client may ask for (fields= on GET
 * /contacts and GET /contacts/{id}, "fields" of a query), as bits: a
 * contact field f is bit f, a server-set key sf (id, created_at,
 * updated_at, version) bit CS_FIELD_COUNT + sf. id always comes.
 */
#define CT_MEMBERS_ALL ((1u << (CS_FIELD_COUNT + CS_SERVER_FIELD_COUNT)) - 1)
#define CT_MEMBER_ID (1u << (CS_FIELD_COUNT + CS_SERVER_ID))
/* The bit of the member with that name (not NUL-terminated), or 0. */
uint32_t ct_member_bit(const char *name, size_t len);
/* Reads a comma-separated list of members (a query string's fields=) into
 * *members (id added). 0, or -1 with *e a 400 invalid_field naming
 * "fields" for an empty list, an empty item or a name that is no member. */
int ct_members_parse(const char *s, size_t len, uint32_t *members, ct_err *e);

/* ---------------------------------------------------------------- queries */

/*
 * POST /contacts/query's body read into the engine's cs_qry (cs_query.h),
 * every member optional, and checked: each value as it arrives (types,
 * names, counts the struct holds, texts, ids, times read with
 * cs_time_parse), then the whole query by cs_query_check, whose fault is
 * turned into the JSON path at fault ("filter.and[1].or[0].op",
 * "sort[1]", "facets[0]", "q", "limit", "cursor"). Which op a field takes
 * is the engine's (cs_op_arg); the codec only reads each value as that
 * says.
 *
 * Errors (ct_query.err, 400 unless 500 internal when out of memory):
 * invalid_json; unknown_field for a member the body, a condition or a
 * sort key may not have (field: its path);
 * query_too_complex (a condition tree deeper than CS_QUERY_DEPTH_MAX, or
 * any fault the engine counts as too complex); invalid_sort (field:
 * "sort" or "sort[i]"); invalid_cursor (field: "cursor"): not a cursor
 * this server handed out, or one of another query; invalid_query for
 * every other fault, with its path.
 *
 * The cursor binds a page's position to its query: base64url of a format
 * byte (CT_CURSOR_QUERY), a 64-bit XXH3 check and the position (cs_qpos),
 * the check seeded with the XXH3-64 of the query's canonical form (q,
 * fuzzy, the filter tree with its values, the sort keys with their
 * orders; not limit, fields or facets, which may change between pages),
 * so a cursor used with another query, or changed, is refused. See
 * ct_query.c for the layout.
 *
 * Everything the parsed query points to (nodes, values, the cursor's
 * position) lives in memory the ct_query owns until ct_query_free.
 */
#define CT_CURSOR_QUERY 3

typedef struct ct_qmem ct_qmem;
/* What a query's parse allocates inside its ct_query before it allocates
 * from the heap: a filter of a few conditions fits. */
#define CT_QUERY_ARENA_BYTES 1024

typedef struct ct_query {
  cs_qry q;         /* account left 0: the caller's to set */
  uint32_t members; /* "fields": the members each contact shows */
  uint64_t hash;    /* of the canonical query (the cursor's binding) */
  cs_qpos after;    /* the cursor's position, when q.after is set */
  ct_err err;
  ct_qmem *mem; /* every allocation of the parse past the arena */
  /* The parse's first allocations (ct_qalloc), in max_align_t units. */
  size_t arena_used;
  max_align_t arena[CT_QUERY_ARENA_BYTES / sizeof(max_align_t)];
} ct_query;

/* Reads and checks a query body (NULL or blank: {}). 0, or -1 with
 * cq->err. Call ct_query_free in every case. */
int ct_query_parse(ct_query *cq, const char *json, size_t len);
void ct_query_free(ct_query *cq);
/* The cursor of the page ending at pos for the query cq: a NUL-terminated
 * string to free(), or NULL when out of memory. */
char *ct_query_cursor(const ct_query *cq, const cs_qpos *pos);

/* ---------------------------------------------------------- export lines */

/*
 * One line of an export or a dump (JSON Lines): the contact object of the
 * API with the account's name first and, for a contact in the trash,
 * deleted_at:
 *   {"account": "acme", "id": "10000000000000000042", "first_name": ...,
 *    "created_at": ..., "updated_at": ..., "version": 3,
 *    "deleted_at": ...?}
 * GET /admin/accounts/{name}/export writes these, POST .../import and
 * contactctl load read them, contactctl dump writes them.
 */
void ct_gen_export_line(yajl_gen g, const char *account, const cs_contact *c);

/* An export line as read: the contact with its identity. */
typedef struct ct_export_line {
  /* The fields (checked and trimmed as a POST /contacts body's), and when
   * has_identity its id, version, created_ms, updated_ms and deleted_ms
   * (0: live); without identity id is 0, the times 0, version the line's
   * (0 when it gave none) and deleted_ms 0. Strings live in body. */
  cs_contact c;
  bool has_identity;
  cs_str account; /* ptr NULL when the line names none */
  ct_err err;
  ct_body body;
} ct_export_line;

/*
 * Reads one line. A line with an id has identity: then created_at and
 * updated_at are required, RFC 3339 (cs_time_parse), version an integer
 * from 1 (absent: 1), deleted_at an RFC 3339 time when present. A line
 * without an id is a plain contact (as a POST /contacts body, whose
 * created_at and updated_at are ignored, whose version is kept); it may
 * not carry deleted_at. account, when present, is a string. 0, or -1 with
 * l->err (invalid_json, unknown_field, invalid_field naming the key,
 * missing_field, ...). Call ct_export_line_free in every case.
 */
int ct_export_line_parse(ct_export_line *l, const char *json, size_t len);
void ct_export_line_free(ct_export_line *l);

/* ---------------------------------------------------------------- output */

/* A generator configured for answers and dumps (no UTF-8 re-validation:
 * everything written was validated on the way in); NULL on allocation
 * failure. The caller frees it with yajl_gen_free. */
yajl_gen ct_gen_new(void);
/* Writes the API's contact object: id, the fields present in table order
 * (absent ones omitted), created_at, updated_at, version, and deleted_at
 * for a contact in the trash (deleted_ms not 0). */
void ct_gen_contact(yajl_gen g, const cs_contact *c);
/* The same with only the members (ct_member_bit) in members; id always. */
void ct_gen_contact_members(yajl_gen g, const cs_contact *c, uint32_t members);
/* Writes one change of the feed (GET /contacts/changes, a webhook's
 * delivery): {"cursor", "type", "id", "version", "at", "changed_fields",
 * "contact"}, where contact is the contact as it is now or null when it
 * is not live; with_contact false leaves the member out (include=none). */
void ct_gen_change(yajl_gen g, const cs_change *ch, const cs_contact *now,
                   bool with_contact);
/* A feed position as the API writes it (its decimal digits), and back:
 * 0, or -1 when s is not 1..20 decimal digits of a u64. */
#define CT_CHANGE_CURSOR_CHARS 20
void ct_change_cursor_format(uint64_t seq,
                             char out[CT_CHANGE_CURSOR_CHARS + 1]);
int ct_change_cursor_parse(const char *s, size_t len, uint64_t *seq);
/* Writes an id as its 20-digit string. */
void ct_gen_id(yajl_gen g, uint64_t id);
/* Writes a string given by pointer and length. */
void ct_gen_str(yajl_gen g, const char *s, size_t len);
/* Writes the error object {"error": {"code", "message", "field"?, "id"?,
 * "etag"?}}. */
void ct_gen_error(yajl_gen g, const ct_err *e);

/* ------------------------------------------------------ the JSON writer */

/*
 * The answers that carry contacts (a contact, a page, a query's answer) are
 * written into one buffer by ct_json.c, byte for byte what yajl_gen writes
 * for the same values, without a generator's state and with the values
 * escaped a clean run at a time. A ct_json starts on a buffer the caller
 * gives (or none) and grows on the heap; it can be reset and reused, so a
 * worker thread keeps one for all its answers. Out of memory sets failed
 * and drops what follows: check failed before using the text.
 */
#define CT_JSON_START_BYTES 4096 /* the first heap buffer, doubled after */
#define CT_JSON_STACK_BYTES 4096 /* the stack buffer of one answer */
typedef struct ct_json {
  char *p;
  size_t len, cap;
  bool owned; /* p is the writer's heap buffer */
  bool failed;
} ct_json;

/* Starts on buf (cap bytes, the caller's; NULL for none). */
void ct_json_init(ct_json *j, char *buf, size_t cap);
/* Empties it, keeping its buffer. */
void ct_json_reset(ct_json *j);
/* Frees its heap buffer (it is empty again, with no buffer). */
void ct_json_free(ct_json *j);
/* Text as it is, a JSON string of any bytes (escaped as yajl does: \",
 * \\, \b \f \n \r \t, the other control characters as \u00XX), and a
 * decimal number. */
void ct_json_raw(ct_json *j, const char *s, size_t n);
void ct_json_str(ct_json *j, const char *s, size_t n);
void ct_json_u64(ct_json *j, uint64_t v);
/* The contact object of ct_gen_contact_members. */
void ct_json_contact(ct_json *j, const cs_contact *c, uint32_t members);
/* A page's answer object without its closing brace (ct_gen_page's text):
 * {"contacts":[...],"count":n,"total":n,"next_cursor":"..." or null */
void ct_json_page(ct_json *j, const cs_page *page, uint32_t members,
                  const char *next_cursor);

#endif
