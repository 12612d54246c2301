/*
 * ct_query.c: POST /contacts/query's body read into the engine's cs_qry,
 * and the query's cursors.
 *
 * The body is read with yajl's event parser, as every other body is
 * (ct_parse.c), with the same strictness: no comments, strings checked by
 * the engine's UTF-8 rules, lone surrogate escapes refused, duplicate keys
 * refused. The condition tree nests, so the reader keeps a stack of frames
 * (the body, a filter node, the list of an and/or, a value list, the sort
 * list, a sort key, a list of names) and a path of where it is
 * ("filter.and[1].or[0]"), which every error names. Since a node's keys
 * may come in any order (value before field and op), a condition's values
 * are kept as written until its object ends, and only then read as the
 * engine says its field and op take them (cs_op_arg).
 *
 * Node nesting is cut at once past CS_QUERY_DEPTH_MAX, so the frame stack
 * is small and fixed and no tree deeper than the engine takes is ever
 * built (a megabyte of "not"s would otherwise nest a hundred thousand
 * deep). Every other rule of the whole query (counts, which op a field
 * takes, empty lists, words of q, sort and facet fields) is cs_query_check's,
 * whose fault names a node; the node's path is found again by walking the
 * finished tree.
 *
 * Memory: nodes, value arrays and kept strings are allocated one by one
 * (ct_qalloc, ct_qmem.c) from the ct_query's own arena, then in a chain it
 * owns; lists being read grow in their frame and are copied there, exactly
 * sized, when they end.
 *
 * The cursor (its format, the query's canonical hash) is ct_qcursor.c's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <yajl/yajl_parse.h>

#include "ct_codec.h"
#include "ct_codec_int.h"

/* ---------------------------------------------------------------- frames */

/* A path is the body's members and indexes down to the value at hand: at
 * most CS_QUERY_DEPTH_MAX nodes deep, each ".and[n]", so far below this. */
#define CT_QPATH_MAX 256
/* The body, then a node and its kids list per level, a value list. */
#define CT_QFRAMES_MAX (2 * CS_QUERY_DEPTH_MAX + 4)

typedef enum ct_qftype {
  CT_QF_TOP,     /* the body's object */
  CT_QF_NODE,    /* a filter node's object */
  CT_QF_KIDS,    /* the list of an and/or */
  CT_QF_VALUES,  /* a condition's value list */
  CT_QF_SORT,    /* the sort list */
  CT_QF_SORTKEY, /* one sort key's object */
  CT_QF_NAMES,   /* the fields or the facets list */
} ct_qftype;

/* The body's members, as bits of a frame's seen. */
enum {
  CT_QK_Q = 0,
  CT_QK_FILTER,
  CT_QK_FUZZY,
  CT_QK_SORT,
  CT_QK_FIELDS,
  CT_QK_FACETS,
  CT_QK_LIMIT,
  CT_QK_CURSOR,
  CT_QK_TOP_COUNT
};
static const char *const ct_qtop_name[CT_QK_TOP_COUNT] = {
    "q", "filter", "fuzzy", "sort", "fields", "facets", "limit", "cursor"};

/* A filter node's members. and, or, not make a node of that kind; field,
 * op, value a condition; the two never meet in one node. */
enum { CT_QN_AND = 0, CT_QN_OR, CT_QN_NOT, CT_QN_FIELD, CT_QN_OP, CT_QN_VALUE };
static const char *const ct_qnode_name[] = {"and",   "or", "not",
                                            "field", "op", "value"};
#define CT_QN_COUNT 6
#define CT_QN_GROUP (1u << CT_QN_AND | 1u << CT_QN_OR | 1u << CT_QN_NOT)

/* A sort key's members. */
enum { CT_QS_FIELD = 0, CT_QS_ORDER };
static const char *const ct_qsort_name[] = {"field", "order"};
#define CT_QS_COUNT 2

typedef enum ct_qv {
  CT_QV_STRING,
  CT_QV_NUMBER,
  CT_QV_NULL,
  CT_QV_BOOL,
  CT_QV_MAP,
  CT_QV_ARRAY,
} ct_qv;

/* A scalar as written: a string decoded, a number's text. */
typedef struct ct_qraw {
  ct_qv type;
  cs_str text;
} ct_qraw;

typedef struct ct_qframe {
  ct_qftype type;
  size_t path_len; /* the path of this frame's value */
  uint32_t seen;   /* objects: the keys met */
  int key;         /* objects: the pending key */
  uint32_t index;  /* arrays: the next element's */
  /* CT_QF_NODE */
  cs_qkind kind;
  cs_str field, op; /* as written */
  bool value_list;
  ct_qraw *vals;
  uint32_t nvals, vals_cap;
  cs_qnode *kids;
  uint32_t nkids, kids_cap;
  /* CT_QF_SORTKEY */
  cs_str sfield, sorder;
  /* CT_QF_NAMES */
  int names; /* CT_QK_FIELDS or CT_QK_FACETS */
} ct_qframe;

typedef struct ct_qparser {
  ct_query *cq;
  ct_qframe f[CT_QFRAMES_MAX];
  int top;   /* the current frame, -1 before the body */
  int depth; /* node frames open */
  char path[CT_QPATH_MAX];
  size_t path_len;
  cs_str cursor; /* as given, decoded once the query is whole */
  cs_qnode *root;
  yajl_handle h;
  const char *json;
  size_t json_len;
  size_t bad_escape_at;
} ct_qparser;

/* Appends n bytes of s to the path (cut, never overrun, when it would not
 * fit), and "[i]": every member and element read extends the path, so
 * these run without printf. */
static void ct_qpath_raw(ct_qparser *p, const char *s, size_t n) {
  size_t room = sizeof p->path - 1 - p->path_len;
  if (n > room) n = room;
  memcpy(p->path + p->path_len, s, n);
  p->path_len += n;
  p->path[p->path_len] = '\0';
}

static void ct_qpath_index(ct_qparser *p, uint32_t i) {
  char text[16], *o = text + sizeof text;
  *--o = ']';
  do {
    *--o = (char)('0' + i % 10);
    i /= 10;
  } while (i != 0);
  *--o = '[';
  ct_qpath_raw(p, o, (size_t)(text + sizeof text - o));
}

/* Appends to the path (cut, never overrun, when it would not fit). */
static void ct_qpath_add(ct_qparser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ct_qpath_add(ct_qparser *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = sizeof p->path - p->path_len;
  int n = vsnprintf(p->path + p->path_len, room, fmt, ap);
  va_end(ap);
  if (n > 0) p->path_len += (size_t)n < room ? (size_t)n : room - 1;
}

/* Fails the parse with code, the current path followed by suffix naming
 * the member at fault. Returns 0, the callback's "stop". */
static int ct_qfail(ct_qparser *p, const char *code, const char *suffix,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int ct_qfail(ct_qparser *p, const char *code, const char *suffix,
                    const char *fmt, ...) {
  char where[CT_QPATH_MAX + 32];
  snprintf(where, sizeof where, "%.*s%s", (int)p->path_len, p->path,
           p->path_len || suffix[0] != '.' ? suffix : suffix + 1);
  char why[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  ct_fail(&p->cq->err, 400, code, where, strlen(where), "%s: %s", where, why);
  return 0;
}

static int ct_qoom(ct_qparser *p) {
  ct_fail(&p->cq->err, 500, "internal", NULL, 0, "out of memory");
  return 0;
}

static ct_qframe *ct_qpush(ct_qparser *p, ct_qftype type) {
  ct_qframe *f = &p->f[++p->top];
  memset(f, 0, sizeof *f);
  f->type = type;
  f->key = -1;
  f->path_len = p->path_len;
  return f;
}

static void ct_qframe_clear(ct_qframe *f) {
  free(f->vals);
  free(f->kids);
  f->vals = NULL;
  f->kids = NULL;
}

/* Leaves the current frame: the path goes back to the parent's. */
static void ct_qpop(ct_qparser *p) {
  ct_qframe_clear(&p->f[p->top]);
  if (p->f[p->top].type == CT_QF_NODE) p->depth--;
  p->top--;
  p->path_len = p->top >= 0 ? p->f[p->top].path_len : 0;
}

/* A copy of s in cq's memory ("" for an empty one); ptr NULL when out of
 * memory. */
static cs_str ct_qkeep(ct_query *cq, const char *s, size_t len) {
  if (!len) return (cs_str){"", 0};
  char *d = ct_qalloc(cq, len);
  if (d) memcpy(d, s, len);
  return (cs_str){d, len};
}

/* Opens a filter node at the current path, refusing one nested past the
 * deepest tree the engine takes. */
static int ct_qnode_open(ct_qparser *p) {
  if (p->depth == CS_QUERY_DEPTH_MAX)
    return ct_qfail(p, "query_too_complex", "",
                    "conditions nest at most %d deep", CS_QUERY_DEPTH_MAX);
  ct_qpush(p, CT_QF_NODE)->kind = CS_Q_COND;
  p->depth++;
  return 1;
}

/* ---------------------------------------------------- condition values */

static bool ct_all_digits(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return len > 0;
}

/* A text value for field qf, at the current path + suffix. */
static int ct_qtext(ct_qparser *p, int qf, const ct_qraw *r, const char *suffix,
                    cs_str *out) {
  if (qf == CS_QF_ID) {
    if (r->type != CT_QV_STRING || !ct_all_digits(r->text.ptr, r->text.len) ||
        r->text.len > CS_ID_DIGITS)
      return ct_qfail(p, "invalid_query", suffix,
                      "must be a string of 1 to %d digits of an id",
                      CS_ID_DIGITS);
  } else if (r->type == CT_QV_NUMBER) {
    /* A phone may be given as an integer, as on create; digits only is a
     * non-negative integer (JSON allows no '+' and no leading zeros). */
    if (qf != CS_PHONE || !ct_all_digits(r->text.ptr, r->text.len))
      return ct_qfail(p, "invalid_query", suffix, "must be a string%s",
                      qf == CS_PHONE ? " or a non-negative integer" : "");
  } else if (r->type != CT_QV_STRING) {
    return ct_qfail(p, "invalid_query", suffix, "must be a string");
  }
  if (cs_utf8_chars(r->text.ptr, r->text.len) < 0)
    return ct_qfail(p, "invalid_query", suffix,
                    "not valid UTF-8, or holds a NUL");
  if (r->text.len > CS_SEARCH_TERM_MAX_BYTES)
    return ct_qfail(p, "invalid_query", suffix, "longer than %d bytes",
                    CS_SEARCH_TERM_MAX_BYTES);
  *out = r->text;
  return 1;
}

/* A number value for qf: an id (20 digits as a string), or a time (RFC
 * 3339) as Unix ms. */
static int ct_qnum(ct_qparser *p, int qf, const ct_qraw *r, const char *suffix,
                   uint64_t *out) {
  if (qf == CS_QF_ID) {
    if (r->type != CT_QV_STRING || cs_id_parse(r->text.ptr, r->text.len, out))
      return ct_qfail(p, "invalid_query", suffix,
                      "must be an id: a string of %d digits", CS_ID_DIGITS);
    return 1;
  }
  int64_t ms;
  if (r->type != CT_QV_STRING || cs_time_parse(r->text.ptr, r->text.len, &ms))
    return ct_qfail(p, "invalid_query", suffix,
                    "must be an RFC 3339 time of the years 1970 to 9999, "
                    "such as 2026-11-26T08:58:00.123Z");
  *out = (uint64_t)ms;
  return 1;
}

/* Reads a condition's kept values as its field and op take them into n. */
static int ct_qcond_values(ct_qparser *p, ct_qframe *f, cs_qnode *n) {
  bool given = f->seen & (1u << CT_QN_VALUE) && (f->value_list || f->nvals);
  int arg = cs_op_arg(n->field, n->op);
  if (arg < 0) return 1; /* the op is not the field's: cs_query_check says */
  const char *op = cs_op_name(n->op);
  if (arg == CS_QARG_NONE) {
    if (given)
      return ct_qfail(p, "invalid_query", ".value", "%s takes no value", op);
    return 1;
  }
  if (!given) return ct_qfail(p, "invalid_query", ".value", "required");
  bool list = arg == CS_QARG_TEXTS || arg == CS_QARG_NUMS;
  if (list != f->value_list)
    return ct_qfail(p, "invalid_query", ".value",
                    list ? "%s takes a list of 1 to %d values"
                         : "%s takes one value, not a list (%d for in)",
                    op, CS_QUERY_IN_MAX);
  bool text = arg == CS_QARG_TEXT || arg == CS_QARG_TEXTS;
  cs_str *texts = text ? ct_qalloc(p->cq, f->nvals * sizeof *texts) : NULL;
  uint64_t *nums = text ? NULL : ct_qalloc(p->cq, f->nvals * sizeof *nums);
  if (!texts && !nums) return ct_qoom(p);
  for (uint32_t i = 0; i < f->nvals; i++) {
    char suffix[32];
    if (list)
      snprintf(suffix, sizeof suffix, ".value[%u]", i);
    else
      memcpy(suffix, ".value", sizeof ".value");
    int ok = text ? ct_qtext(p, n->field, &f->vals[i], suffix, &texts[i])
                  : ct_qnum(p, n->field, &f->vals[i], suffix, &nums[i]);
    if (!ok) return 0;
  }
  n->values = texts;
  n->nums = nums;
  n->nvalues = f->nvals;
  return 1;
}

/* The op names, for the message of an unknown one. */
static void ct_op_names(char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (int op = 0; op < CS_OP_COUNT && used < cap; op++) {
    int n = snprintf(out + used, cap - used, "%s%s", op ? ", " : "",
                     cs_op_name((cs_op)op));
    if (n > 0) used += (size_t)n;
  }
}

/* The node of frame f, finished, into *n. */
static int ct_qnode_finish(ct_qparser *p, ct_qframe *f, cs_qnode *n) {
  memset(n, 0, sizeof *n);
  n->kind = f->kind;
  if (f->seen & CT_QN_GROUP) {
    if (f->nkids) {
      cs_qnode *kids = ct_qalloc(p->cq, f->nkids * sizeof *kids);
      if (!kids) return ct_qoom(p);
      memcpy(kids, f->kids, f->nkids * sizeof *kids);
      n->kids = kids;
    }
    n->nkids = f->nkids; /* an empty and/or: cs_query_check refuses it */
    return 1;
  }
  if (!f->seen)
    return ct_qfail(p, "invalid_query", "",
                    "must be a condition {\"field\", \"op\", \"value\"} or "
                    "one of \"and\", \"or\", \"not\"");
  if (!(f->seen & (1u << CT_QN_FIELD)))
    return ct_qfail(p, "invalid_query", ".field", "required");
  n->field = cs_qfield_from_name(f->field.ptr, f->field.len);
  if (n->field < 0)
    return ct_qfail(p, "invalid_query", ".field",
                    "not a field: id, a contact field, created_at or "
                    "updated_at");
  if (!(f->seen & (1u << CT_QN_OP)))
    return ct_qfail(p, "invalid_query", ".op", "required");
  int op = cs_op_from_name(f->op.ptr, f->op.len);
  if (op < 0) {
    char names[160];
    ct_op_names(names, sizeof names);
    return ct_qfail(p, "invalid_query", ".op", "must be one of %s", names);
  }
  n->op = (cs_op)op;
  return ct_qcond_values(p, f, n);
}

/* Hands a finished node to what holds it: the and/or list below, the not
 * below, or the body. */
static int ct_qnode_give(ct_qparser *p, const cs_qnode *n) {
  if (p->top < 0) return 0;
  ct_qframe *up = &p->f[p->top];
  if (up->type == CT_QF_TOP) {
    p->root = ct_qalloc(p->cq, sizeof *p->root);
    if (!p->root) return ct_qoom(p);
    *p->root = *n;
    p->cq->q.filter = p->root;
    return 1;
  }
  ct_qframe *owner = up->type == CT_QF_KIDS ? &p->f[p->top - 1] : up;
  if (owner->nkids == owner->kids_cap) {
    uint32_t cap = owner->kids_cap ? owner->kids_cap * 2 : 4;
    cs_qnode *k = realloc(owner->kids, cap * sizeof *k);
    if (!k) return ct_qoom(p);
    owner->kids = k;
    owner->kids_cap = cap;
  }
  owner->kids[owner->nkids++] = *n;
  return 1;
}

/* Keeps one scalar of a condition's value (alone, or in its list). */
static int ct_qvalue_keep(ct_qparser *p, ct_qframe *node, ct_qv vt,
                          const char *s, size_t len) {
  if (node->nvals == node->vals_cap) {
    uint32_t cap = node->vals_cap ? node->vals_cap * 2 : 4;
    ct_qraw *v = realloc(node->vals, cap * sizeof *v);
    if (!v) return ct_qoom(p);
    node->vals = v;
    node->vals_cap = cap;
  }
  cs_str t = ct_qkeep(p->cq, s, len);
  if (!t.ptr) return ct_qoom(p);
  node->vals[node->nvals++] = (ct_qraw){vt, t};
  return 1;
}

/* ------------------------------------------------------------- members */

static int ct_qtop_value(ct_qparser *p, ct_qframe *f, ct_qv vt, const char *s,
                         size_t len) {
  ct_query *cq = p->cq;
  if (vt == CT_QV_NULL) return 1; /* every member: null is as if absent */
  switch (f->key) {
  case CT_QK_Q:
    if (vt != CT_QV_STRING)
      return ct_qfail(p, "invalid_query", "", "must be a string");
    if (cs_utf8_chars(s, len) < 0)
      return ct_qfail(p, "invalid_query", "",
                      "not valid UTF-8, or holds a NUL");
    if (len > CS_SEARCH_TERM_MAX_BYTES)
      return ct_qfail(p, "invalid_query", "", "longer than %d bytes",
                      CS_SEARCH_TERM_MAX_BYTES);
    cq->q.q = ct_qkeep(cq, s, len);
    return cq->q.q.ptr ? 1 : ct_qoom(p);
  case CT_QK_FILTER:
    if (vt != CT_QV_MAP)
      return ct_qfail(p, "invalid_query", "", "must be a condition object");
    return ct_qnode_open(p);
  case CT_QK_FUZZY:
    if (vt == CT_QV_STRING && len == 3 && !memcmp(s, "off", 3)) {
      cq->q.fuzzy = false;
      return 1;
    }
    if (vt == CT_QV_STRING && len == 4 && !memcmp(s, "auto", 4)) {
      cq->q.fuzzy = true;
      return 1;
    }
    return ct_qfail(p, "invalid_query", "", "must be \"off\" or \"auto\"");
  case CT_QK_SORT:
    if (vt != CT_QV_ARRAY)
      return ct_qfail(p, "invalid_sort", "",
                      "must be a list of {\"field\", \"order\"}");
    ct_qpush(p, CT_QF_SORT);
    return 1;
  case CT_QK_FIELDS:
  case CT_QK_FACETS:
    if (vt != CT_QV_ARRAY)
      return ct_qfail(p, "invalid_query", "", "must be a list of names");
    if (f->key == CT_QK_FIELDS) cq->members = CT_MEMBER_ID;
    ct_qpush(p, CT_QF_NAMES)->names = f->key;
    return 1;
  case CT_QK_LIMIT:
    if (vt != CT_QV_NUMBER || ct_parse_limit(s, len, &cq->q.limit))
      return ct_qfail(p, "invalid_query", "", "must be an integer from 1 to %d",
                      CS_PAGE_LIMIT_MAX);
    return 1;
  case CT_QK_CURSOR:
    if (vt != CT_QV_STRING)
      return ct_qfail(p, "invalid_cursor", "", "must be a string");
    p->cursor = ct_qkeep(cq, s, len);
    return p->cursor.ptr ? 1 : ct_qoom(p);
  }
  return 0;
}

static int ct_qnode_value(ct_qparser *p, ct_qframe *f, ct_qv vt, const char *s,
                          size_t len) {
  switch (f->key) {
  case CT_QN_AND:
  case CT_QN_OR:
    if (vt != CT_QV_ARRAY)
      return ct_qfail(p, "invalid_query", "", "must be a list of conditions");
    f->kind = f->key == CT_QN_AND ? CS_Q_AND : CS_Q_OR;
    ct_qpush(p, CT_QF_KIDS);
    return 1;
  case CT_QN_NOT:
    if (vt != CT_QV_MAP)
      return ct_qfail(p, "invalid_query", "", "must be a condition object");
    f->kind = CS_Q_NOT;
    return ct_qnode_open(p);
  case CT_QN_FIELD:
  case CT_QN_OP: {
    if (vt != CT_QV_STRING)
      return ct_qfail(p, "invalid_query", "", "must be a string");
    cs_str t = ct_qkeep(p->cq, s, len);
    if (!t.ptr) return ct_qoom(p);
    *(f->key == CT_QN_FIELD ? &f->field : &f->op) = t;
    return 1;
  }
  case CT_QN_VALUE:
    if (vt == CT_QV_NULL) return 1; /* as if absent */
    if (vt == CT_QV_ARRAY) {
      f->value_list = true;
      ct_qpush(p, CT_QF_VALUES);
      return 1;
    }
    if (vt != CT_QV_STRING && vt != CT_QV_NUMBER)
      return ct_qfail(p, "invalid_query", "",
                      "must be a string, a number or a list of them");
    return ct_qvalue_keep(p, f, vt, s, len);
  }
  return 0;
}

static int ct_qsortkey_value(ct_qparser *p, ct_qframe *f, ct_qv vt,
                             const char *s, size_t len) {
  if (vt == CT_QV_NULL) return 1;
  if (vt != CT_QV_STRING) {
    p->path_len = f->path_len; /* a sort fault names its key */
    return ct_qfail(p, "invalid_sort", "", "%s: must be a string",
                    ct_qsort_name[f->key]);
  }
  cs_str t = ct_qkeep(p->cq, s, len);
  if (!t.ptr) return ct_qoom(p);
  *(f->key == CT_QS_FIELD ? &f->sfield : &f->sorder) = t;
  return 1;
}

/* A sort key's object has ended: into the query's sort. */
static int ct_qsortkey_finish(ct_qparser *p, ct_qframe *f) {
  cs_qry *q = &p->cq->q;
  if (!f->sfield.ptr) return ct_qfail(p, "invalid_sort", "", "field: required");
  int qf = cs_qfield_from_name(f->sfield.ptr, f->sfield.len);
  if (qf < 0)
    return ct_qfail(p, "invalid_sort", "",
                    "field: not a sort field: a contact field, created_at, "
                    "updated_at, id or relevance");
  /* Relevance's natural order is the most relevant first (cs_query.h). */
  bool desc = qf == CS_QF_RELEVANCE;
  cs_str o = f->sorder;
  if (o.ptr && o.len == 3 && !memcmp(o.ptr, "asc", 3))
    desc = false;
  else if (o.ptr && o.len == 4 && !memcmp(o.ptr, "desc", 4))
    desc = true;
  else if (o.ptr)
    return ct_qfail(p, "invalid_sort", "", "order: must be asc or desc");
  q->sort[q->nsort].field = qf;
  q->sort[q->nsort].desc = desc;
  q->nsort++;
  return 1;
}

static int ct_qname_value(ct_qparser *p, ct_qframe *f, ct_qv vt, const char *s,
                          size_t len) {
  ct_query *cq = p->cq;
  if (vt != CT_QV_STRING)
    return ct_qfail(p, "invalid_query", "", "must be a string");
  if (f->names == CT_QK_FIELDS) {
    uint32_t bit = ct_member_bit(s, len);
    if (!bit)
      return ct_qfail(p, "invalid_query", "",
                      "not a member of a contact (id, the contact fields, "
                      "created_at, updated_at, version)");
    cq->members |= bit;
    return 1;
  }
  if (cq->q.nfacets == CS_QUERY_FACETS_MAX)
    return ct_qfail(p, "invalid_query", "", "at most %d facets",
                    CS_QUERY_FACETS_MAX);
  int qf = cs_qfield_from_name(s, len);
  if (qf < 0)
    return ct_qfail(p, "invalid_query", "", "not a field to facet on");
  cq->q.facets[cq->q.nfacets++] = qf;
  return 1;
}

/* ------------------------------------------------------ yajl callbacks */

static int ct_qon_value(ct_qparser *p, ct_qv vt, const char *s, size_t len) {
  if (p->top < 0) {
    if (vt != CT_QV_MAP)
      return ct_qfail(p, "invalid_query", "", "the body must be a JSON object");
    ct_qpush(p, CT_QF_TOP);
    return 1;
  }
  ct_qframe *f = &p->f[p->top];
  if (f->type == CT_QF_KIDS || f->type == CT_QF_VALUES ||
      f->type == CT_QF_SORT || f->type == CT_QF_NAMES) {
    p->path_len = f->path_len;
    ct_qpath_index(p, f->index++);
  }
  switch (f->type) {
  case CT_QF_TOP:
    return ct_qtop_value(p, f, vt, s, len);
  case CT_QF_NODE:
    return ct_qnode_value(p, f, vt, s, len);
  case CT_QF_KIDS:
    if (vt != CT_QV_MAP)
      return ct_qfail(p, "invalid_query", "", "must be a condition object");
    return ct_qnode_open(p);
  case CT_QF_VALUES:
    if (vt != CT_QV_STRING && vt != CT_QV_NUMBER)
      return ct_qfail(p, "invalid_query", "", "must be a string or a number");
    return ct_qvalue_keep(p, &p->f[p->top - 1], vt, s, len);
  case CT_QF_SORT:
    if (vt != CT_QV_MAP)
      return ct_qfail(p, "invalid_sort", "",
                      "must be an object {\"field\", \"order\"}");
    if (p->cq->q.nsort == CS_QUERY_SORT_MAX)
      return ct_qfail(p, "invalid_sort", "", "at most %d sort keys",
                      CS_QUERY_SORT_MAX);
    ct_qpush(p, CT_QF_SORTKEY);
    return 1;
  case CT_QF_SORTKEY:
    return ct_qsortkey_value(p, f, vt, s, len);
  case CT_QF_NAMES:
    return ct_qname_value(p, f, vt, s, len);
  }
  return 0;
}

/* The index of key among names, or -1. */
static int ct_qkey_find(const char *const *names, int count, const char *k,
                        size_t len) {
  for (int i = 0; i < count; i++)
    if (strlen(names[i]) == len && !memcmp(names[i], k, len)) return i;
  return -1;
}

static int ct_qcb_map_key(void *ctx, const unsigned char *key, size_t len) {
  ct_qparser *p = ctx;
  const char *k = (const char *)key;
  bool bad = ct_escape_passed(p->json, p->json_len, &p->bad_escape_at,
                              yajl_get_bytes_consumed(p->h));
  ct_qframe *f = &p->f[p->top];
  p->path_len = f->path_len;
  if (bad || cs_utf8_chars(k, len) < 0) {
    ct_fail(&p->cq->err, 400, "unknown_field", NULL, 0,
            "a member name is not valid UTF-8 or holds a NUL");
    return 0;
  }
  const char *const *names = f->type == CT_QF_TOP    ? ct_qtop_name
                             : f->type == CT_QF_NODE ? ct_qnode_name
                                                     : ct_qsort_name;
  int count = f->type == CT_QF_TOP    ? CT_QK_TOP_COUNT
              : f->type == CT_QF_NODE ? CT_QN_COUNT
                                      : CT_QS_COUNT;
  int i = ct_qkey_find(names, count, k, len);
  if (p->path_len) ct_qpath_raw(p, ".", 1);
  ct_qpath_raw(p, k, len);
  if (i < 0) {
    const char *what = f->type == CT_QF_TOP    ? "the query"
                       : f->type == CT_QF_NODE ? "a filter node"
                                               : "a sort key";
    return ct_qfail(p, "unknown_field", "", "not a member of %s", what);
  }
  if (f->seen & (1u << i))
    return ct_qfail(p,
                    f->type == CT_QF_SORTKEY ? "invalid_sort" : "invalid_query",
                    "", "given more than once");
  if (f->type == CT_QF_NODE && f->seen &&
      ((f->seen & CT_QN_GROUP) || (1u << i & CT_QN_GROUP)))
    return ct_qfail(p, "invalid_query", "",
                    "a filter node is either a condition {\"field\", \"op\", "
                    "\"value\"} or one of \"and\", \"or\", \"not\"");
  f->seen |= 1u << i;
  f->key = i;
  return 1;
}

static int ct_qcb_end_map(void *ctx) {
  ct_qparser *p = ctx;
  ct_qframe *f = &p->f[p->top];
  p->path_len = f->path_len;
  if (f->type == CT_QF_NODE) {
    cs_qnode n;
    if (!ct_qnode_finish(p, f, &n)) return 0;
    ct_qpop(p);
    return ct_qnode_give(p, &n);
  }
  if (f->type == CT_QF_SORTKEY) {
    if (!ct_qsortkey_finish(p, f)) return 0;
  }
  ct_qpop(p);
  return 1;
}

static int ct_qcb_end_array(void *ctx) {
  ct_qparser *p = ctx;
  ct_qpop(p);
  return 1;
}

static int ct_qcb_null(void *ctx) {
  return ct_qon_value(ctx, CT_QV_NULL, NULL, 0);
}
static int ct_qcb_boolean(void *ctx, int v) {
  (void)v;
  return ct_qon_value(ctx, CT_QV_BOOL, NULL, 0);
}
static int ct_qcb_number(void *ctx, const char *s, size_t len) {
  return ct_qon_value(ctx, CT_QV_NUMBER, s, len);
}
static int ct_qcb_string(void *ctx, const unsigned char *s, size_t len) {
  ct_qparser *p = ctx;
  if (ct_escape_passed(p->json, p->json_len, &p->bad_escape_at,
                       yajl_get_bytes_consumed(p->h)))
    return ct_qon_value(ctx, CT_QV_STRING, ct_not_utf8, 1);
  return ct_qon_value(ctx, CT_QV_STRING, (const char *)s, len);
}
static int ct_qcb_start_map(void *ctx) {
  return ct_qon_value(ctx, CT_QV_MAP, NULL, 0);
}
static int ct_qcb_start_array(void *ctx) {
  return ct_qon_value(ctx, CT_QV_ARRAY, NULL, 0);
}

static const yajl_callbacks ct_qcallbacks = {
    .yajl_null = ct_qcb_null,
    .yajl_boolean = ct_qcb_boolean,
    .yajl_number = ct_qcb_number,
    .yajl_string = ct_qcb_string,
    .yajl_start_map = ct_qcb_start_map,
    .yajl_map_key = ct_qcb_map_key,
    .yajl_end_map = ct_qcb_end_map,
    .yajl_start_array = ct_qcb_start_array,
    .yajl_end_array = ct_qcb_end_array,
};

/* ----------------------------------------------------- the whole query */

/* The path of node target in the tree under n (path "filter" for the
 * root), appended to p's path; whether it was found. */
static bool ct_qnode_path(ct_qparser *p, const cs_qnode *n,
                          const cs_qnode *target) {
  if (n == target) return true;
  size_t at = p->path_len;
  for (uint32_t i = 0; i < n->nkids; i++) {
    if (n->kind == CS_Q_NOT)
      ct_qpath_add(p, ".not");
    else
      ct_qpath_add(p, ".%s[%u]", n->kind == CS_Q_AND ? "and" : "or", i);
    if (ct_qnode_path(p, &n->kids[i], target)) return true;
    p->path_len = at;
  }
  return false;
}

/* Turns cs_query_check's fault into the error naming its JSON path. */
static void ct_query_fault(ct_qparser *p, const cs_qfault *w,
                           const cs_error *err) {
  const cs_qry *q = &p->cq->q;
  const char *code = "invalid_query";
  char suffix[32] = "";
  p->path_len = 0;
  switch (w->part) {
  case CS_QPART_Q:
    ct_qpath_add(p, "q");
    break;
  case CS_QPART_NODE:
  case CS_QPART_FIELD:
  case CS_QPART_OP:
  case CS_QPART_VALUE:
    ct_qpath_add(p, "filter");
    if (!w->node || !q->filter || !ct_qnode_path(p, q->filter, w->node)) break;
    if (w->part == CS_QPART_FIELD) snprintf(suffix, sizeof suffix, ".field");
    if (w->part == CS_QPART_OP) snprintf(suffix, sizeof suffix, ".op");
    if (w->part == CS_QPART_VALUE) {
      /* One value of a list, or the list as a whole when its length is
       * what is wrong. */
      const cs_qnode *n = w->node;
      int arg = cs_op_arg(n->field, n->op);
      bool list = arg == CS_QARG_TEXTS || arg == CS_QARG_NUMS;
      if (list && n->nvalues >= 1 && n->nvalues <= CS_QUERY_IN_MAX &&
          w->index < n->nvalues)
        snprintf(suffix, sizeof suffix, ".value[%u]", w->index);
      else
        snprintf(suffix, sizeof suffix, ".value");
    }
    break;
  case CS_QPART_SORT:
    code = "invalid_sort";
    ct_qpath_add(p, "sort[%u]", w->index);
    break;
  case CS_QPART_FACET:
    ct_qpath_add(p, "facets[%u]", w->index);
    break;
  case CS_QPART_LIMIT:
    ct_qpath_add(p, "limit");
    break;
  case CS_QPART_CURSOR:
    code = "invalid_cursor";
    ct_qpath_add(p, "cursor");
    break;
  }
  if (w->too_complex) code = "query_too_complex";
  ct_qfail(p, code, suffix, "%s", err->msg[0] ? err->msg : "invalid");
}

/* The checks only the whole query can answer: the cursor against the
 * query, then the engine's rules. */
static int ct_query_finish(ct_qparser *p) {
  ct_query *cq = p->cq;
  if (ct_query_hash(&cq->q, &cq->hash))
    return ct_fail(&cq->err, 500, "internal", NULL, 0, "out of memory");
  if (p->cursor.ptr && p->cursor.len) {
    int rc = ct_query_cursor_read(cq, p->cursor);
    if (rc == -2)
      return ct_fail(&cq->err, 400, "invalid_cursor", "cursor", 6,
                     "cursor: not one this query handed out; q, filter, "
                     "fuzzy and sort must stay the same from page to page");
    if (rc)
      return ct_fail(&cq->err, 400, "invalid_cursor", "cursor", 6,
                     "cursor: not a cursor this server handed out");
  }
  cs_qfault w;
  cs_error err = {0};
  if (cs_query_check(&cq->q, &w, &err)) {
    ct_query_fault(p, &w, &err);
    return -1;
  }
  return 0;
}

static bool ct_qblank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return false;
  return true;
}

int ct_query_parse(ct_query *cq, const char *json, size_t len) {
  memset(cq, 0, sizeof *cq);
  cq->members = CT_MEMBERS_ALL;
  /* No body at all asks what {} asks: every contact. */
  if (!json || ct_qblank(json, len)) {
    json = "{}";
    len = 2;
  }
  ct_qparser parser;
  ct_qparser *p = &parser;
  memset(p, 0, sizeof *p);
  p->cq = cq;
  p->top = -1;
  p->json = json;
  p->json_len = len;
  p->bad_escape_at = ct_escape_next(json, len, 0);
  yajl_handle h = yajl_alloc(&ct_qcallbacks, NULL, p);
  if (!h) return ct_fail(&cq->err, 500, "internal", NULL, 0, "out of memory");
  p->h = h;
  /* Strings are checked strictly by the engine's rules (yajl's is lax). */
  yajl_config(h, yajl_dont_validate_strings, 1);
  yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  int rc = -1;
  if (st == yajl_status_client_canceled) {
    if (!cq->err.status)
      ct_fail(&cq->err, 500, "internal", NULL, 0, "parse stopped");
  } else if (st != yajl_status_ok) {
    unsigned char *why = yajl_get_error(h, 0, NULL, 0);
    char *nl = why ? strchr((char *)why, '\n') : NULL;
    if (nl) *nl = '\0';
    ct_fail(&cq->err, 400, "invalid_json", NULL, 0,
            "the body is not valid JSON (%s at byte %zu)",
            why ? (const char *)why : "error", yajl_get_bytes_consumed(h));
    if (why) yajl_free_error(h, why);
  } else {
    rc = ct_query_finish(p);
  }
  yajl_free(h);
  while (p->top >= 0)
    ct_qpop(p);
  return rc;
}
