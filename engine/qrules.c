/*
 * qrules.c: the rules of a query that the codec and the engine share:
 * the names of ops and query fields, which op a field takes and with what
 * value (cs_op_arg), and the typo allowance. A leaf: it calls nothing of
 * the query's, so the index (ix_query.c) and the checks (query.c) both
 * read the one copy.
 */
#include <string.h>

#include "cs_query.h"

/* ------------------------------------------------------------- names */

static const char *const op_names[CS_OP_COUNT] = {
#define CS_OP_NAME(name, word) word,
    CS_OP_MAP(CS_OP_NAME)
#undef CS_OP_NAME
};

const char *cs_op_name(cs_op op) {
  return op >= 0 && op < CS_OP_COUNT ? op_names[op] : "?";
}

int cs_op_from_name(const char *name, size_t len) {
  for (int i = 0; i < CS_OP_COUNT; i++)
    if (strlen(op_names[i]) == len && !memcmp(op_names[i], name, len)) return i;
  return -1;
}

static const char *const qf_names[] = {"id", "created_at", "updated_at",
                                       "relevance"};

const char *cs_qfield_name(int qf) {
  if (qf >= 0 && qf < CS_FIELD_COUNT) return cs_field_name(qf);
  if (qf >= CS_QF_ID && qf < CS_QF_COUNT) return qf_names[qf - CS_QF_ID];
  return "?";
}

int cs_qfield_from_name(const char *name, size_t len) {
  int f = cs_field_from_name(name, len);
  if (f >= 0) return f;
  for (int i = CS_QF_ID; i < CS_QF_COUNT; i++) {
    const char *n = qf_names[i - CS_QF_ID];
    if (strlen(n) == len && !memcmp(n, name, len)) return i;
  }
  return -1;
}

/* ------------------------------------------------------------- rules */

int cs_op_arg(int qf, cs_op op) {
  bool text = qf >= 0 && qf < CS_FIELD_COUNT;
  bool id = qf == CS_QF_ID;
  bool time = qf == CS_QF_CREATED_AT || qf == CS_QF_UPDATED_AT;
  if (!text && !id && !time) return -1;
  bool addr = qf == CS_EMAIL || qf == CS_PHONE;
  switch (op) {
  case CS_OP_EQ:
  case CS_OP_NEQ:
    return text ? CS_QARG_TEXT : CS_QARG_NUM;
  case CS_OP_IN:
    return text ? CS_QARG_TEXTS : CS_QARG_NUMS;
  case CS_OP_EXISTS:
    return CS_QARG_NONE;
  case CS_OP_PREFIX:
    return text || id ? CS_QARG_TEXT : -1;
  case CS_OP_WORDS:
    return text ? CS_QARG_TEXT : -1;
  case CS_OP_SUFFIX:
    return addr ? CS_QARG_TEXT : -1;
  case CS_OP_FUZZY:
    return text && !addr ? CS_QARG_TEXT : -1;
  case CS_OP_GT:
  case CS_OP_GTE:
  case CS_OP_LT:
  case CS_OP_LTE:
    return id || time ? CS_QARG_NUM : -1;
  default:
    return -1;
  }
}

int cs_typo_allowance(size_t chars, bool has_digit) {
  if (has_digit || chars < CS_FUZZY_ONE_MIN_CHARS || chars > CS_FUZZY_MAX_CHARS)
    return 0;
  return chars < CS_FUZZY_TWO_MIN_CHARS ? 1 : 2;
}
