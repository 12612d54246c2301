/*
 * cs_query.h: queries over a store (POST /contacts/query), the engine's
 * public query API.
 *
 * A query combines free text (q), a tree of conditions on several fields,
 * typo tolerance, a sort of up to three keys, facets and keyset paging,
 * with the guarantees of cs_search: read-your-writes, an exact total, no
 * cap on paging, a page consistent with itself. The JSON form of a query
 * lives in the contacts codec; this header is the parsed form, and the one
 * home of its rules (which op a field takes, what a sort or a facet may
 * name, the typo allowance): cs_query_check says what is wrong and where,
 * so the codec can name the JSON path at fault.
 *
 * Meaning, exactly (the oracle tests hold the engine to it):
 *
 *  - Folding and words are those of search (fold.h): a value's key is
 *    fold_key of it (phone: its digits), its words the runs of letters and
 *    digits of its key. A value whose key is empty has no key and no words.
 *  - q: the words of fold_text(q). Each must match the contact, the last
 *    may do so as a prefix. Word w matches a contact when w is a word of
 *    first_name, last_name, email, company, job_title or notes, or equals
 *    the phone's digit string; the last word also when it begins a word of
 *    those fields or the phone's digits; and, with fuzzy, when w has no
 *    digit and is within cs_typo_allowance(w) typos of a word without
 *    digits of first_name, last_name, company, job_title or notes (never
 *    email or phone). A typo is an insertion, a deletion, a substitution or
 *    a swap of two neighbouring characters (optimal string alignment
 *    distance over code points). A prefix match allows no typo.
 *  - Conditions (cs_qnode, op on field):
 *      eq      the value's key equals the field's key (id, times: equal)
 *      neq     not eq; also true when the field is absent
 *      prefix  the field's key begins with the value's key (id: its
 *              digits begin with the value, 1 to 20 digits)
 *      words   every word of the value's key is a word of the field's key
 *              (phone: eq)
 *      suffix  email, phone: the field's key ends with the value's key,
 *              which holds at least CS_QUERY_SUFFIX_MIN characters (phone:
 *              digits)
 *      exists  the field is present, even with a value whose key is
 *              empty (id and times always are)
 *      in      eq for one of the values
 *      gt gte lt lte  id, created_at, updated_at against nums[0]
 *      fuzzy   every word of the value's key is within its typo allowance
 *              of a word of the field (words with digits: equal)
 *    A value whose key is empty matches nothing (neq: everything). and/or
 *    are the intersection and union of their children, not the complement
 *    within the account's live contacts.
 *  - Sort keys: a field (its key; absent or empty sorts last in either
 *    order), created_at, updated_at, id, or relevance (only with q). Text
 *    compares bytewise (code point order of the folded value). Ties end in
 *    ascending id, also under desc. Relevance is, per contact, for each
 *    word of q its best way of matching (fewest typos, then a whole word
 *    before a prefix, then the earliest field group: names, email,
 *    company, job title, phone, notes); summed over the words: typos
 *    (fewer first), then whole words (more first), then field groups'
 *    ranks (0..5, smaller first). desc (the default for relevance) is the
 *    most relevant first.
 *  - Facets: per facet field, the matches' keys with their counts (a
 *    contact without a key is not counted), the CS_QUERY_FACET_VALUES
 *    highest counts, ties by key bytewise; each shown as the value stored
 *    on the live contact of the account with the lowest id having that
 *    key (matching or not).
 */
#ifndef CS_QUERY_H
#define CS_QUERY_H

#include "cs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What conditions and sort keys name beyond the contact fields. */
enum {
  CS_QF_ID = CS_FIELD_COUNT, /* == CS_SEARCH_BY_ID */
  CS_QF_CREATED_AT,
  CS_QF_UPDATED_AT,
  CS_QF_RELEVANCE, /* sort keys only */
  CS_QF_COUNT
};

/* "id", "created_at", "updated_at", "relevance", or a field's name; "?". */
const char *cs_qfield_name(int qf);
/* The CS_QF_ or cs_field with that name (not NUL-terminated), or -1. */
int cs_qfield_from_name(const char *name, size_t len);

#define CS_OP_MAP(X)                                                           \
  X(CS_OP_EQ, "eq")                                                            \
  X(CS_OP_NEQ, "neq")                                                          \
  X(CS_OP_PREFIX, "prefix")                                                    \
  X(CS_OP_WORDS, "words")                                                      \
  X(CS_OP_SUFFIX, "suffix")                                                    \
  X(CS_OP_EXISTS, "exists")                                                    \
  X(CS_OP_IN, "in")                                                            \
  X(CS_OP_GT, "gt")                                                            \
  X(CS_OP_GTE, "gte")                                                          \
  X(CS_OP_LT, "lt")                                                            \
  X(CS_OP_LTE, "lte")                                                          \
  X(CS_OP_FUZZY, "fuzzy")

typedef enum cs_op {
#define CS_OP_ENUM(name, word) name,
  CS_OP_MAP(CS_OP_ENUM)
#undef CS_OP_ENUM
      CS_OP_COUNT
} cs_op;

const char *cs_op_name(cs_op op);
/* The op of that name, or -1. */
int cs_op_from_name(const char *name, size_t len);

/* How an op takes its value: none (exists), one string, 1 to
 * CS_QUERY_IN_MAX strings (in on a text field), one number, or 1 to
 * CS_QUERY_IN_MAX numbers (in on id or a time). Numbers are ids, or Unix
 * milliseconds for created_at and updated_at. */
typedef enum cs_qarg {
  CS_QARG_NONE,
  CS_QARG_TEXT,
  CS_QARG_TEXTS,
  CS_QARG_NUM,
  CS_QARG_NUMS,
} cs_qarg;

/* What op on qf (a CS_QF_ or cs_field) takes, or -1 when the field does
 * not take the op (gt on a text field, suffix on a name, ...). id takes
 * prefix as text (digits), its other ops as numbers. */
int cs_op_arg(int qf, cs_op op);

typedef enum cs_qkind { CS_Q_COND, CS_Q_AND, CS_Q_OR, CS_Q_NOT } cs_qkind;

typedef struct cs_qnode {
  cs_qkind kind;
  /* CS_Q_COND */
  int field; /* a cs_field, CS_QF_ID, CS_QF_CREATED_AT or CS_QF_UPDATED_AT */
  cs_op op;
  const cs_str *values; /* CS_QARG_TEXT: 1, TEXTS: nvalues */
  const uint64_t *nums; /* CS_QARG_NUM: 1, NUMS: nvalues */
  uint32_t nvalues;
  /* CS_Q_AND, CS_Q_OR: nkids >= 1 children; CS_Q_NOT: one */
  const struct cs_qnode *kids;
  uint32_t nkids;
} cs_qnode;

typedef struct cs_sort_key {
  int field; /* a cs_field, CS_QF_ID, _CREATED_AT, _UPDATED_AT, _RELEVANCE */
  bool desc;
} cs_sort_key;

/* A position in a query's order: the sort values of a contact and its id.
 * A page after a position holds the contacts that come strictly later. */
typedef struct cs_qpos_key {
  bool missing; /* the field is absent (sorts last) */
  cs_str text;  /* a field's key (folded) */
  uint64_t num; /* id, time (ms), or relevance (smaller is better) */
} cs_qpos_key;

typedef struct cs_qpos {
  uint32_t nkeys; /* the query's sort keys, id last when it is not one */
  cs_qpos_key key[CS_QUERY_SORT_MAX];
  uint64_t id;
} cs_qpos;

typedef struct cs_qry {
  uint32_t account;
  cs_str q; /* ptr NULL: no free text */
  bool fuzzy;
  const cs_qnode *filter; /* NULL: every live contact */
  cs_sort_key sort[CS_QUERY_SORT_MAX];
  uint32_t nsort; /* 0: id ascending */
  int facets[CS_QUERY_FACETS_MAX];
  uint32_t nfacets;
  uint32_t limit;       /* 1..CS_PAGE_LIMIT_MAX; 0: CS_PAGE_LIMIT_DEFAULT */
  const cs_qpos *after; /* NULL: the first page */
} cs_qry;

/* Where cs_query_check found a fault. */
typedef enum cs_qpart {
  CS_QPART_Q,     /* the free text: no word, or too many */
  CS_QPART_NODE,  /* node itself: too deep, too many conditions, empty */
  CS_QPART_FIELD, /* node's field */
  CS_QPART_OP,    /* node's op for its field */
  CS_QPART_VALUE, /* node's value (index: which of values or nums) */
  CS_QPART_SORT,  /* sort key index */
  CS_QPART_FACET, /* facet index */
  CS_QPART_LIMIT,
  CS_QPART_CURSOR, /* the position does not fit the sort keys */
} cs_qpart;

typedef struct cs_qfault {
  cs_qpart part;
  const cs_qnode *node; /* CS_QPART_NODE .. CS_QPART_VALUE */
  uint32_t index;
  bool too_complex; /* a depth, count or word limit (query_too_complex) */
} cs_qfault;

/*
 * Checks a query against the rules above and the limits of cs_limits.h.
 * 0, or CS_EINVAL with *where saying where and err a message for people
 * ("suffix needs at least 4 digits"). cs_query_run checks the same.
 */
int cs_query_check(const cs_qry *q, cs_qfault *where, cs_error *err);

/* The typo allowance of a folded word of chars code points: 0 below
 * CS_FUZZY_ONE_MIN_CHARS, 1 below CS_FUZZY_TWO_MIN_CHARS, 2 up to
 * CS_FUZZY_MAX_CHARS, and 0 past it. Words with digits get 0 (the caller
 * says). */
int cs_typo_allowance(size_t chars, bool has_digit);

typedef struct cs_facet_value {
  cs_str value; /* as stored on the lowest live id with this key */
  cs_str key;   /* the folded key */
  uint64_t count;
} cs_facet_value;

typedef struct cs_facet {
  int field;
  uint32_t count;
  cs_facet_value *values; /* count of them, highest count first */
} cs_facet;

typedef struct cs_qresult {
  cs_page page; /* contacts in the query's order, total, more */
  cs_qpos next; /* page.more: the position of the page's last contact */
  cs_facet facets[CS_QUERY_FACETS_MAX]; /* in the query's facet order */
  uint32_t nfacets;
  uint64_t as_of; /* the log sequence the answer reflects (changes cursor) */
  void *mem;      /* what the result's strings live in */
} cs_qresult;

/*
 * Runs a query over the account's live contacts. 0; CS_EINVAL (the query
 * fails cs_query_check, err says why); CS_ECORRUPT; -ENOMEM. Strings in the
 * result live until cs_qresult_free (the contacts' until cs_close).
 */
int cs_query_run(cs_store *s, const cs_qry *q, cs_qresult *out, cs_error *err);
void cs_qresult_free(cs_qresult *r);

#ifdef __cplusplus
}
#endif
#endif
