/*
 * test_query.c: the query API's edges: every limit of cs_query_check at
 * and past its edge and the fault it names, the typo allowance word by
 * word, orders worked out by hand, and a cursor walk while other threads
 * write.
 *
 * Goal: the rules of cs_query.h that a random oracle rarely lands on
 * exactly: a query one past a limit is refused with the part, node and
 * index the codec turns into a JSON path, and query_too_complex only for
 * depth, count and word limits; a word of 4 characters never matches with
 * a typo, of 5 to 8 with one and not two, of 9 to CS_FUZZY_MAX_CHARS with
 * two and never three, words with digits never, emails and phones never, a
 * prefix never; relevance by typos, whole words and field groups, missing
 * keys last, ties by id; exists on a value that folds to nothing; and a
 * keyset walk under concurrent creates, deletes and edits returns no
 * contact twice (but one whose sort field moved) and skips none that
 * matched throughout.
 * Method: hand-built queries on small stores; the walk runs against writer
 * threads and checks what it saw against what the writers touched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs.h"
#include "cs_query.h"
#include "test_util.h"

static cs_str S(const char *s) {
  return (cs_str){s, strlen(s)};
}

static cs_qnode cond_text(int field, cs_op op, const cs_str *v) {
  return (cs_qnode){
      .kind = CS_Q_COND, .field = field, .op = op, .values = v, .nvalues = 1};
}

/* ---------------------------------------------------- cs_query_check */

/* cs_query_check and cs_query_run both refuse q with this fault. */
static void expect_fault(cs_store *s, const cs_qry *q, cs_qpart part,
                         const cs_qnode *node, uint32_t index,
                         bool too_complex) {
  cs_qfault where;
  memset(&where, 0xee, sizeof where);
  cs_error err = {0};
  int rc = cs_query_check(q, &where, &err);
  if (rc != CS_EINVAL || where.part != part || where.node != node ||
      where.index != index || where.too_complex != too_complex)
    fail_msg("check: rc %d part %d node %p index %u too_complex %d "
             "(expected part %d node %p index %u too_complex %d): %s",
             rc, where.part, (const void *)where.node, where.index,
             where.too_complex, part, (const void *)node, index, too_complex,
             err.msg);
  assert_true(err.msg[0] != 0);
  cs_qresult r;
  cs_error err2 = {0};
  assert_int_equal(cs_query_run(s, q, &r, &err2), CS_EINVAL);
  assert_true(err2.msg[0] != 0);
}

static void expect_ok(cs_store *s, const cs_qry *q) {
  cs_qfault where;
  cs_error err = {0};
  int rc = cs_query_check(q, &where, &err);
  if (rc)
    fail_msg("check refused (part %d index %u): %s", where.part, where.index,
             err.msg);
  cs_qresult r;
  rc = cs_query_run(s, q, &r, &err);
  if (rc) fail_msg("run refused: %s", err.msg);
  cs_qresult_free(&r);
}

static cs_store *open_store(char **dir) {
  *dir = tu_tmpdir();
  cs_options o = {.durability = CS_DURABILITY_NONE};
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(*dir, &o, &s, &err), 0);
  return s;
}

static void close_store(cs_store *s, char *dir) {
  assert_int_equal(cs_close(s, NULL), 0);
  tu_rmrf(dir);
  free(dir);
}

static const cs_str val_a = {"a", 1};

/* A chain of depth d: d - 1 nots above one condition. */
static void not_chain(cs_qnode *n, int d) {
  for (int i = 0; i < d - 1; i++)
    n[i] = (cs_qnode){.kind = CS_Q_NOT, .kids = &n[i + 1], .nkids = 1};
  n[d - 1] = cond_text(CS_FIRST_NAME, CS_OP_EQ, &val_a);
}

static void test_query_check_depth(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  cs_qnode n[CS_QUERY_DEPTH_MAX + 2];
  not_chain(n, CS_QUERY_DEPTH_MAX);
  cs_qry q = {.account = 1, .filter = n};
  expect_ok(s, &q);
  not_chain(n, CS_QUERY_DEPTH_MAX + 1);
  /* The node past the depth: the condition at depth 5. */
  expect_fault(s, &q, CS_QPART_NODE, &n[CS_QUERY_DEPTH_MAX], 0, true);

  /* and/or count as not does: and(or(and(cond))) is 4 deep. */
  cs_qnode m[6];
  m[0] = (cs_qnode){.kind = CS_Q_AND, .kids = &m[1], .nkids = 1};
  m[1] = (cs_qnode){.kind = CS_Q_OR, .kids = &m[2], .nkids = 2};
  m[2] = cond_text(CS_LAST_NAME, CS_OP_EQ, &val_a);
  m[3] = (cs_qnode){.kind = CS_Q_AND, .kids = &m[4], .nkids = 1};
  m[4] = cond_text(CS_COMPANY, CS_OP_EQ, &val_a);
  q.filter = m;
  expect_ok(s, &q);
  m[4] = (cs_qnode){.kind = CS_Q_NOT, .kids = &m[5], .nkids = 1};
  m[5] = cond_text(CS_COMPANY, CS_OP_EQ, &val_a);
  expect_fault(s, &q, CS_QPART_NODE, &m[5], 0, true);
  close_store(s, dir);
}

static void test_query_check_conditions(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  cs_qnode kids[CS_QUERY_CONDS_MAX + 1];
  for (int i = 0; i <= CS_QUERY_CONDS_MAX; i++)
    kids[i] = cond_text(CS_FIRST_NAME, CS_OP_PREFIX, &val_a);
  cs_qnode root = {.kind = CS_Q_OR, .kids = kids, .nkids = CS_QUERY_CONDS_MAX};
  cs_qry q = {.account = 1, .filter = &root};
  expect_ok(s, &q);
  root.nkids = CS_QUERY_CONDS_MAX + 1;
  /* The condition past the count. */
  expect_fault(s, &q, CS_QPART_NODE, &kids[CS_QUERY_CONDS_MAX], 0, true);

  /* Counted over the whole tree: and(or(16), or(17)). */
  cs_qnode two[2] = {
      {.kind = CS_Q_OR, .kids = kids, .nkids = 16},
      {.kind = CS_Q_OR, .kids = kids + 16, .nkids = 16},
  };
  cs_qnode top = {.kind = CS_Q_AND, .kids = two, .nkids = 2};
  q.filter = &top;
  expect_ok(s, &q);
  two[1].nkids = 17;
  expect_fault(s, &q, CS_QPART_NODE, &kids[CS_QUERY_CONDS_MAX], 0, true);

  /* An empty and/or, a not of two: the node, not too complex. */
  root.nkids = 0;
  q.filter = &root;
  expect_fault(s, &q, CS_QPART_NODE, &root, 0, false);
  root.kind = CS_Q_AND;
  expect_fault(s, &q, CS_QPART_NODE, &root, 0, false);
  root.kind = CS_Q_NOT;
  root.nkids = 2;
  expect_fault(s, &q, CS_QPART_NODE, &root, 0, false);
  close_store(s, dir);
}

static void test_query_check_in(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  static cs_str vals[CS_QUERY_IN_MAX + 1];
  static uint64_t nums[CS_QUERY_IN_MAX + 1];
  for (int i = 0; i <= CS_QUERY_IN_MAX; i++) {
    vals[i] = S("Acme");
    nums[i] = CS_ID_MIN + (uint64_t)i;
  }
  cs_qnode n = {.kind = CS_Q_COND,
                .field = CS_COMPANY,
                .op = CS_OP_IN,
                .values = vals,
                .nvalues = CS_QUERY_IN_MAX};
  cs_qry q = {.account = 1, .filter = &n};
  expect_ok(s, &q);
  /* The list's length is the node's value at fault: index 0. */
  n.nvalues = CS_QUERY_IN_MAX + 1;
  expect_fault(s, &q, CS_QPART_VALUE, &n, 0, false);
  n.nvalues = 0; /* an empty list */
  expect_fault(s, &q, CS_QPART_VALUE, &n, 0, false);

  int numeric[] = {CS_QF_ID, CS_QF_CREATED_AT, CS_QF_UPDATED_AT};
  for (int i = 0; i < 3; i++) {
    n = (cs_qnode){.kind = CS_Q_COND,
                   .field = numeric[i],
                   .op = CS_OP_IN,
                   .nums = nums,
                   .nvalues = CS_QUERY_IN_MAX};
    expect_ok(s, &q);
    n.nvalues = CS_QUERY_IN_MAX + 1;
    expect_fault(s, &q, CS_QPART_VALUE, &n, 0, false);
    n.nvalues = 0;
    expect_fault(s, &q, CS_QPART_VALUE, &n, 0, false);
  }
  close_store(s, dir);
}

static void test_query_check_sort_and_facets(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  cs_qry q = {.account = 1};
  q.sort[0] = (cs_sort_key){CS_LAST_NAME, false};
  q.sort[1] = (cs_sort_key){CS_QF_CREATED_AT, true};
  q.sort[2] = (cs_sort_key){CS_QF_ID, true};
  q.nsort = CS_QUERY_SORT_MAX;
  expect_ok(s, &q);
  q.nsort = CS_QUERY_SORT_MAX + 1;
  expect_fault(s, &q, CS_QPART_SORT, NULL, CS_QUERY_SORT_MAX, false);
  /* relevance only with q */
  q.nsort = 2;
  q.sort[1] = (cs_sort_key){CS_QF_RELEVANCE, true};
  expect_fault(s, &q, CS_QPART_SORT, NULL, 1, false);
  q.q = S("acme");
  expect_ok(s, &q);
  q.sort[1] = (cs_sort_key){-1, false};
  expect_fault(s, &q, CS_QPART_SORT, NULL, 1, false);
  q.sort[1] = (cs_sort_key){CS_QF_COUNT, false};
  expect_fault(s, &q, CS_QPART_SORT, NULL, 1, false);
  q.nsort = 0;
  q.q = (cs_str){NULL, 0};

  /* Facets: first_name, last_name, company, job_title; up to 5. */
  int ok[] = {CS_FIRST_NAME, CS_LAST_NAME, CS_COMPANY,
              CS_JOB_TITLE,  CS_COMPANY,   CS_LAST_NAME};
  memcpy(q.facets, ok, sizeof q.facets);
  q.nfacets = CS_QUERY_FACETS_MAX;
  expect_ok(s, &q);
  q.nfacets = CS_QUERY_FACETS_MAX + 1;
  expect_fault(s, &q, CS_QPART_FACET, NULL, CS_QUERY_FACETS_MAX, false);
  int bad[] = {CS_EMAIL,         CS_PHONE,         CS_NOTES,        CS_QF_ID,
               CS_QF_CREATED_AT, CS_QF_UPDATED_AT, CS_QF_RELEVANCE, -1,
               CS_QF_COUNT};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    q.nfacets = 3;
    q.facets[2] = bad[i];
    expect_fault(s, &q, CS_QPART_FACET, NULL, 2, false);
  }
  close_store(s, dir);
}

static void test_query_check_words_and_q(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  /* CS_QUERY_WORDS_MAX words of q, then one more. */
  char text[CS_QUERY_WORDS_MAX * 4 + 8] = "";
  for (int i = 0; i < CS_QUERY_WORDS_MAX; i++)
    strcat(text, "ab, ");
  cs_qry q = {.account = 1, .q = S(text)};
  expect_ok(s, &q);
  strcat(text, "c");
  q.q = S(text);
  expect_fault(s, &q, CS_QPART_Q, NULL, 0, true);
  /* No word at all. */
  const char *none[] = {"", "   ", "...", "-- ,", "\xcc\x81"};
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    q.q = S(none[i]);
    expect_fault(s, &q, CS_QPART_Q, NULL, 0, false);
  }
  q.q = (cs_str){NULL, 0};

  /* The value of words and fuzzy conditions. */
  text[strlen(text) - 1] = 0;
  cs_op ops[] = {CS_OP_WORDS, CS_OP_FUZZY};
  for (int i = 0; i < 2; i++) {
    cs_str v = S(text);
    cs_qnode n = cond_text(CS_NOTES, ops[i], &v);
    q.filter = &n;
    expect_ok(s, &q);
    strcat(text, "c");
    v = S(text);
    expect_fault(s, &q, CS_QPART_VALUE, &n, 0, true);
    text[strlen(text) - 1] = 0;
  }
  close_store(s, dir);
}

static void test_query_check_suffix(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  cs_str v;
  cs_qnode n = cond_text(CS_EMAIL, CS_OP_SUFFIX, &v);
  cs_qry q = {.account = 1, .filter = &n};
  /* Email: folded characters (code points, not bytes). */
  const char *email_ok[] = {"x.co", "@x.c", "É.CO", "ée.c", "  x.co  "};
  const char *email_short[] = {".co", "é.c", "É.C", "  x.c  "};
  for (size_t i = 0; i < sizeof email_ok / sizeof email_ok[0]; i++) {
    v = S(email_ok[i]);
    expect_ok(s, &q);
  }
  for (size_t i = 0; i < sizeof email_short / sizeof email_short[0]; i++) {
    v = S(email_short[i]);
    expect_fault(s, &q, CS_QPART_VALUE, &n, 0, false);
  }
  /* Phone: digits. */
  n.field = CS_PHONE;
  const char *phone_ok[] = {"7654", "+7 (6) 5-4", "0000"};
  const char *phone_short[] = {"765", "7-6-5", "+1 (2) 3", "abcd"};
  for (size_t i = 0; i < sizeof phone_ok / sizeof phone_ok[0]; i++) {
    v = S(phone_ok[i]);
    expect_ok(s, &q);
  }
  for (size_t i = 0; i < sizeof phone_short / sizeof phone_short[0]; i++) {
    v = S(phone_short[i]);
    expect_fault(s, &q, CS_QPART_VALUE, &n, 0, false);
  }
  /* No other field takes suffix. */
  v = S("abcdef");
  int others[] = {CS_FIRST_NAME,    CS_LAST_NAME,    CS_COMPANY,
                  CS_JOB_TITLE,     CS_NOTES,        CS_QF_ID,
                  CS_QF_CREATED_AT, CS_QF_UPDATED_AT};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    assert_int_equal(cs_op_arg(others[i], CS_OP_SUFFIX), -1);
    n.field = others[i];
    expect_fault(s, &q, CS_QPART_OP, &n, 0, false);
  }
  close_store(s, dir);
}

static void test_query_check_fields_ops_values(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  cs_str v = S("acme");
  uint64_t num = CS_ID_MIN;
  cs_qnode n = cond_text(CS_COMPANY, CS_OP_EQ, &v);
  cs_qry q = {.account = 1, .filter = &n};
  expect_ok(s, &q);
  /* Fields a condition cannot name. */
  int bad_fields[] = {-1, CS_QF_RELEVANCE, CS_QF_COUNT, 1000};
  for (size_t i = 0; i < sizeof bad_fields / sizeof bad_fields[0]; i++) {
    n.field = bad_fields[i];
    expect_fault(s, &q, CS_QPART_FIELD, &n, 0, false);
  }
  /* Every op the table refuses is refused, and every op it takes with a
   * well-formed value passes. */
  for (int f = 0; f < CS_QF_RELEVANCE; f++)
    for (int op = 0; op < CS_OP_COUNT; op++) {
      int arg = cs_op_arg(f, (cs_op)op);
      n = (cs_qnode){.kind = CS_Q_COND, .field = f, .op = (cs_op)op};
      static const cs_str digits = {"12345", 5};
      if (arg == CS_QARG_TEXT || arg == CS_QARG_TEXTS) {
        n.values =
            f == CS_QF_ID || f == CS_PHONE || op == CS_OP_SUFFIX ? &digits : &v;
        n.nvalues = 1;
      } else if (arg == CS_QARG_NUM || arg == CS_QARG_NUMS) {
        n.nums = &num;
        n.nvalues = 1;
      }
      if (op == CS_OP_SUFFIX && f == CS_EMAIL) n.values = &v;
      if (arg < 0)
        expect_fault(s, &q, CS_QPART_OP, &n, 0, false);
      else
        expect_ok(s, &q);
    }
  /* Ops past the enum. */
  n = cond_text(CS_COMPANY, (cs_op)CS_OP_COUNT, &v);
  expect_fault(s, &q, CS_QPART_OP, &n, 0, false);
  /* The table: text fields take no numbers, numbers no text. */
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    assert_int_equal(cs_op_arg(f, CS_OP_GT), -1);
    assert_int_equal(cs_op_arg(f, CS_OP_EQ), CS_QARG_TEXT);
    assert_int_equal(cs_op_arg(f, CS_OP_IN), CS_QARG_TEXTS);
    assert_int_equal(cs_op_arg(f, CS_OP_EXISTS), CS_QARG_NONE);
  }
  for (int f = CS_QF_ID; f <= CS_QF_UPDATED_AT; f++) {
    assert_int_equal(cs_op_arg(f, CS_OP_GTE), CS_QARG_NUM);
    assert_int_equal(cs_op_arg(f, CS_OP_EQ), CS_QARG_NUM);
    assert_int_equal(cs_op_arg(f, CS_OP_IN), CS_QARG_NUMS);
  }
  assert_int_equal(cs_op_arg(CS_QF_ID, CS_OP_PREFIX), CS_QARG_TEXT);
  assert_int_equal(cs_op_arg(CS_EMAIL, CS_OP_SUFFIX), CS_QARG_TEXT);
  assert_int_equal(cs_op_arg(CS_PHONE, CS_OP_SUFFIX), CS_QARG_TEXT);
  assert_int_equal(cs_op_arg(CS_QF_RELEVANCE, CS_OP_EQ), -1);

  /* A text value that is not text: absent, invalid UTF-8, a NUL. */
  cs_str in[3] = {S("acme"), S("globex"), S("initech")};
  n = (cs_qnode){.kind = CS_Q_COND,
                 .field = CS_COMPANY,
                 .op = CS_OP_IN,
                 .values = in,
                 .nvalues = 3};
  expect_ok(s, &q);
  in[2] = (cs_str){NULL, 3};
  expect_fault(s, &q, CS_QPART_VALUE, &n, 2, false);
  in[2] = (cs_str){"\xff\xfe", 2};
  expect_fault(s, &q, CS_QPART_VALUE, &n, 2, false);
  in[2] = (cs_str){"a\0b", 3};
  expect_fault(s, &q, CS_QPART_VALUE, &n, 2, false);
  n = (cs_qnode){.kind = CS_Q_COND,
                 .field = CS_COMPANY,
                 .op = CS_OP_EQ,
                 .values = NULL,
                 .nvalues = 1};
  expect_fault(s, &q, CS_QPART_VALUE, &n, 0, false);
  /* q that is not text */
  q.filter = NULL;
  q.q = (cs_str){"\xc3", 1};
  expect_fault(s, &q, CS_QPART_Q, NULL, 0, false);
  close_store(s, dir);
}

static void test_query_check_limit_and_cursor(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  cs_error err;
  for (int i = 0; i < 3; i++) {
    uint64_t id;
    char email[32];
    snprintf(email, sizeof email, "p%d@x.org", i);
    assert_int_equal(tu_create(s, 1,
                               tu_contact("Ann", i ? "Lee" : NULL, email, NULL,
                                          NULL, NULL, NULL),
                               &id, &err),
                     0);
  }
  cs_qry q = {.account = 1};
  uint32_t good[] = {0, 1, CS_PAGE_LIMIT_MAX};
  for (int i = 0; i < 3; i++) {
    q.limit = good[i];
    expect_ok(s, &q);
  }
  uint32_t bad[] = {CS_PAGE_LIMIT_MAX + 1, UINT32_MAX};
  for (int i = 0; i < 2; i++) {
    q.limit = bad[i];
    expect_fault(s, &q, CS_QPART_LIMIT, NULL, 0, false);
  }
  /* A position with the sort keys of another query. */
  q.limit = 1;
  q.sort[0] = (cs_sort_key){CS_LAST_NAME, false};
  q.sort[1] = (cs_sort_key){CS_QF_CREATED_AT, true};
  q.nsort = 2;
  cs_qresult r;
  assert_int_equal(cs_query_run(s, &q, &r, &err), 0);
  assert_true(r.page.more);
  assert_int_equal(r.next.nkeys, 2);
  cs_qpos pos = r.next;
  char text[16];
  snprintf(text, sizeof text, "%.*s", (int)pos.key[0].text.len,
           pos.key[0].text.ptr ? pos.key[0].text.ptr : "");
  pos.key[0].text = (cs_str){text, strlen(text)};
  assert_string_equal(text, "lee");
  cs_qresult_free(&r);
  q.after = &pos;
  expect_ok(s, &q);
  pos.nkeys = 1;
  expect_fault(s, &q, CS_QPART_CURSOR, NULL, 0, false);
  pos.nkeys = 3;
  expect_fault(s, &q, CS_QPART_CURSOR, NULL, 0, false);
  pos.nkeys = CS_QUERY_SORT_MAX + 1;
  expect_fault(s, &q, CS_QPART_CURSOR, NULL, 0, false);
  close_store(s, dir);
}

/* ------------------------------------------------------------- typos */

static void test_query_typo_allowance_edges(void **state) {
  (void)state;
  assert_int_equal(cs_typo_allowance(0, false), 0);
  assert_int_equal(cs_typo_allowance(1, false), 0);
  assert_int_equal(cs_typo_allowance(CS_FUZZY_ONE_MIN_CHARS - 1, false), 0);
  assert_int_equal(cs_typo_allowance(CS_FUZZY_ONE_MIN_CHARS, false), 1);
  assert_int_equal(cs_typo_allowance(CS_FUZZY_TWO_MIN_CHARS - 1, false), 1);
  assert_int_equal(cs_typo_allowance(CS_FUZZY_TWO_MIN_CHARS, false), 2);
  /* Past CS_FUZZY_MAX_CHARS a word matches without typos. */
  assert_int_equal(cs_typo_allowance(CS_FUZZY_MAX_CHARS, false), 2);
  assert_int_equal(cs_typo_allowance(CS_FUZZY_MAX_CHARS + 1, false), 0);
  assert_int_equal(cs_typo_allowance(SIZE_MAX, false), 0);
  assert_int_equal(cs_typo_allowance(CS_FUZZY_ONE_MIN_CHARS, true), 0);
  assert_int_equal(cs_typo_allowance(CS_FUZZY_TWO_MIN_CHARS, true), 0);
  assert_int_equal(cs_typo_allowance(SIZE_MAX, true), 0);
}

/* The contacts' totals for q (fuzzy on) in an account. */
static uint64_t q_total(cs_store *s, uint32_t account, const char *text,
                        bool fuzzy) {
  cs_qry q = {.account = account, .q = S(text), .fuzzy = fuzzy};
  cs_qresult r;
  cs_error err;
  if (cs_query_run(s, &q, &r, &err)) fail_msg("'%s': %s", text, err.msg);
  uint64_t n = r.page.total;
  cs_qresult_free(&r);
  return n;
}

static uint64_t fuzzy_total(cs_store *s, uint32_t account, int field,
                            const char *value) {
  cs_str v = S(value);
  cs_qnode n = cond_text(field, CS_OP_FUZZY, &v);
  cs_qry q = {.account = account, .filter = &n};
  cs_qresult r;
  cs_error err;
  if (cs_query_run(s, &q, &r, &err)) fail_msg("'%s': %s", value, err.msg);
  uint64_t t = r.page.total;
  cs_qresult_free(&r);
  return t;
}

/* One word stored in a field of a contact alone in its account: the
 * words that must and must not find it. The typo word comes first in q,
 * before "pivot" (the contact's other word), so it is never the prefix. */
typedef struct typo_case {
  int field;
  const char *stored;
  const char *hit[6];
  const char *miss[6];
} typo_case;

static const typo_case typo_cases[] = {
    /* 4 characters: no typo at all (q's word is what counts) */
    {CS_LAST_NAME, "anna", {"anna", "ANNA"}, {"anba", "anan", "ann"}},
    /* the allowance is the word of q's: 5 characters, one typo */
    {CS_COMPANY, "anna", {"xanna", "annas"}, {"xannax"}},
    {CS_LAST_NAME, "annas", {"annas"}, {"anna", "nnas", "anas"}},
    {CS_COMPANY, "ann", {"ann"}, {"anna", "annb", "xann"}},
    /* 5: one typo of each kind, not two */
    {CS_LAST_NAME,
     "smith",
     {"smiht", "smitx", "msith", "ssmith"},
     {"msiht", "smxtx", "mitx", "smithxy", "smth"}},
    {CS_JOB_TITLE,
     "smth",
     {"smth", "smith", "xsmth", "smyth"},
     {"smthxx", "smtx"}},
    {CS_COMPANY, "smithe", {"smith", "smithe", "smithy"}, {"smi", "smit"}},
    /* 8: one, not two */
    {CS_COMPANY,
     "umbrella",
     {"umbrelal", "umbrelxa", "umbrela", "mubrella", "uumbrella"},
     {"mubrelal", "umbrxlxa", "umbrelax", "umbrel"}},
    {CS_COMPANY, "umbrellas", {"umbrella"}, {"umbrela"}},
    {CS_NOTES, "umbrela", {"umbrella", "umbrela"}, {"umbrxlo"}},
    /* 9 and more: two (two swaps too), never three */
    {CS_JOB_TITLE,
     "developer",
     {"develpoer", "edvelopre", "devxlopxr", "developerss", "deeloper"},
     {"edvleopre", "dxvxlxper", "developersss", "dvloper"}},
    {CS_NOTES,
     "christopher",
     {"christpher", "chirstopehr", "xhristophex"},
     {"xhrixtophex", "hcirstopehr"}},
    /* accents fold away before distances are counted */
    {CS_FIRST_NAME, "Zoë Müller", {"muller", "mullre", "MÜLLRE"}, {"mlulre"}},
};

static void test_query_typos_exactly(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  cs_error err;
  size_t ncases = sizeof typo_cases / sizeof typo_cases[0];
  for (size_t i = 0; i < ncases; i++) {
    const typo_case *t = &typo_cases[i];
    const char *v[CS_FIELD_COUNT] = {"Pivot", NULL, "p@x.org"};
    char notes[64];
    if (t->field == CS_FIRST_NAME) {
      v[CS_NOTES] = "pivot";
    }
    if (t->field == CS_NOTES) {
      snprintf(notes, sizeof notes, "%s pivot", t->stored);
      v[CS_NOTES] = notes;
    }
    if (t->field != CS_NOTES) v[t->field] = t->stored;
    uint64_t id;
    assert_int_equal(
        tu_create(s, (uint32_t)(i + 1),
                  tu_contact(v[0], v[1], v[2], v[3], v[4], v[5], v[6]), &id,
                  &err),
        0);
  }
  for (size_t i = 0; i < ncases; i++) {
    const typo_case *t = &typo_cases[i];
    uint32_t acct = (uint32_t)(i + 1);
    char q[96];
    for (int j = 0; j < 6 && t->hit[j]; j++) {
      snprintf(q, sizeof q, "%s pivot", t->hit[j]);
      if (q_total(s, acct, q, true) != 1)
        fail_msg("q '%s' fuzzy should find '%s'", q, t->stored);
      bool exact = strcasecmp(t->hit[j], t->stored) == 0 ||
                   strcmp(t->hit[j], "muller") == 0;
      if (q_total(s, acct, q, false) != (exact ? 1u : 0u))
        fail_msg("q '%s' without fuzzy: %s '%s'", q,
                 exact ? "should find" : "should not find", t->stored);
      if (fuzzy_total(s, acct, t->field, t->hit[j]) != 1)
        fail_msg("%s fuzzy '%s' should find '%s'", cs_field_name(t->field),
                 t->hit[j], t->stored);
    }
    for (int j = 0; j < 6 && t->miss[j]; j++) {
      snprintf(q, sizeof q, "%s pivot", t->miss[j]);
      if (q_total(s, acct, q, true) != 0)
        fail_msg("q '%s' fuzzy should not find '%s'", q, t->stored);
      if (fuzzy_total(s, acct, t->field, t->miss[j]) != 0)
        fail_msg("%s fuzzy '%s' should not find '%s'", cs_field_name(t->field),
                 t->miss[j], t->stored);
    }
  }
  close_store(s, dir);
}

/* Words with digits, emails, phones and prefixes take no typo. */
static void test_query_typos_never(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  cs_error err;
  uint64_t id;
  assert_int_equal(
      tu_create(s, 1,
                tu_contact("Pivot", "abc12", "jonathan@example.org",
                           "+1 555 123 4567", "smith1", "Christopher",
                           "r2d2x unit"),
                &id, &err),
      0);
  struct {
    const char *q;
    uint64_t total;
  } cases[] = {
      {"abc12 pivot", 1},       {"abc13 pivot", 0},    {"abc1 pivot", 0},
      {"abc123 pivot", 0},      {"r2d2y pivot", 0},    {"r2d2x pivot", 1},
      {"smith pivot", 0},       {"smith1 pivot", 1},   /* a digit word */
      {"jonathan pivot", 1},    {"jonatahn pivot", 0}, /* email */
      {"jonathn pivot", 0},     {"exampel pivot", 0},  {"15551234567 pivot", 1},
      {"15551234568 pivot", 0},                     /* phone */
      {"1555123456 pivot", 0},  {"pivot 1555", 1},  /* phone prefix */
      {"pivot 1556", 0},        {"pivot chris", 1}, /* a prefix */
      {"pivot chirs", 0},       {"pivot xhris", 0},    {"pivot christpher", 1},
      {"pivot chrisx", 0},      {"pivot jonat", 1},    {"pivot jnoat", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (q_total(s, 1, cases[i].q, true) != cases[i].total)
      fail_msg("q '%s' fuzzy: expected %llu", cases[i].q,
               (unsigned long long)cases[i].total);
  /* The fuzzy op: digits equal, and none inside emails or phones. */
  assert_int_equal(fuzzy_total(s, 1, CS_LAST_NAME, "abc12"), 1);
  assert_int_equal(fuzzy_total(s, 1, CS_LAST_NAME, "abc13"), 0);
  assert_int_equal(fuzzy_total(s, 1, CS_COMPANY, "smith"), 0);
  assert_int_equal(fuzzy_total(s, 1, CS_NOTES, "r2d2y unit"), 0);
  assert_int_equal(fuzzy_total(s, 1, CS_NOTES, "r2d2x unit"), 1);
  assert_int_equal(fuzzy_total(s, 1, CS_NOTES, "r2d2x unti"), 0);
  assert_int_equal(fuzzy_total(s, 1, CS_JOB_TITLE, "chris"), 0);
  /* Words of CS_FUZZY_MAX_CHARS characters take two typos, longer ones
   * none. */
  char at_max[CS_FUZZY_MAX_CHARS * 2 + 1], past[CS_FUZZY_MAX_CHARS * 2 + 3];
  memset(at_max, 'a', CS_FUZZY_MAX_CHARS);
  at_max[CS_FUZZY_MAX_CHARS] = 0;
  memset(past, 'a', CS_FUZZY_MAX_CHARS + 1);
  past[CS_FUZZY_MAX_CHARS + 1] = 0;
  cs_patch p = {.set_mask = (1u << CS_JOB_TITLE) | (1u << CS_LAST_NAME)};
  p.field[CS_JOB_TITLE] = S(at_max);
  p.field[CS_LAST_NAME] = S(past);
  assert_int_equal(tu_update(s, 1, id, p, &err), 0);
  char qs[CS_FUZZY_MAX_CHARS * 2 + 16];
  /* two substitutions in each */
  at_max[3] = at_max[10] = 'b';
  snprintf(qs, sizeof qs, "%s pivot", at_max);
  assert_int_equal(q_total(s, 1, qs, true), 1);
  assert_int_equal(fuzzy_total(s, 1, CS_JOB_TITLE, at_max), 1);
  past[3] = past[10] = 'b';
  snprintf(qs, sizeof qs, "%s pivot", past);
  assert_int_equal(q_total(s, 1, qs, true), 0);
  assert_int_equal(fuzzy_total(s, 1, CS_LAST_NAME, past), 0);
  past[3] = past[10] = 'a';
  snprintf(qs, sizeof qs, "%s pivot", past);
  assert_int_equal(q_total(s, 1, qs, true), 1);
  /* Characters are code points: 63 a and a "zh" (two bytes, and still
   * two after folding) are 64 characters, one substitution away. */
  memset(at_max, 'a', CS_FUZZY_MAX_CHARS - 1);
  memcpy(at_max + CS_FUZZY_MAX_CHARS - 1, "\xd0\xb6", 3);
  snprintf(qs, sizeof qs, "%s pivot", at_max);
  assert_int_equal(q_total(s, 1, qs, true), 1);
  if (cs_op_arg(CS_EMAIL, CS_OP_FUZZY) >= 0) {
    assert_int_equal(fuzzy_total(s, 1, CS_EMAIL, "jonathan"), 1);
    assert_int_equal(fuzzy_total(s, 1, CS_EMAIL, "jonatahn"), 0);
  }
  if (cs_op_arg(CS_PHONE, CS_OP_FUZZY) >= 0) {
    assert_int_equal(fuzzy_total(s, 1, CS_PHONE, "15551234567"), 1);
    assert_int_equal(fuzzy_total(s, 1, CS_PHONE, "15551234568"), 0);
  }
  close_store(s, dir);
}

/* ------------------------------------------------- order by hand */

/* The ids of q's whole answer, in order, into ids; their count. */
static int q_order(cs_store *s, cs_qry *q, uint64_t *ids, int cap) {
  cs_qresult r;
  cs_error err;
  q->limit = CS_PAGE_LIMIT_MAX;
  if (cs_query_run(s, q, &r, &err)) fail_msg("query: %s", err.msg);
  int n = (int)r.page.count;
  assert_true(n <= cap && !r.page.more);
  for (int i = 0; i < n; i++)
    ids[i] = r.page.contacts[i].id;
  cs_qresult_free(&r);
  return n;
}

static void expect_order(cs_store *s, cs_qry *q, const uint64_t *want, int n,
                         const char *what) {
  uint64_t got[16];
  int k = q_order(s, q, got, 16);
  bool ok = k == n;
  for (int i = 0; ok && i < n; i++)
    ok = got[i] == want[i];
  if (!ok) {
    char b[512] = "";
    for (int i = 0; i < k; i++)
      snprintf(b + strlen(b), sizeof b - strlen(b), " %llu",
               (unsigned long long)(got[i] % 1000));
    fail_msg("%s: got%s (ids mod 1000)", what, b);
  }
}

static uint64_t mk(cs_store *s, uint32_t account, const char *first,
                   const char *last, const char *company, const char *job_title,
                   const char *notes) {
  static int serial;
  char email[32];
  snprintf(email, sizeof email, "e%d@x.org", serial++);
  uint64_t id;
  cs_error err;
  if (tu_create(s, account,
                tu_contact(first, last, email, NULL, company, job_title, notes),
                &id, &err))
    fail_msg("create: %s", err.msg);
  return id;
}

/* Relevance: fewest typos, then most whole words, then the field groups
 * (names, email, company, job title, phone, notes); ties by id. */
static void test_query_relevance_by_hand(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  /* One word, the last: whole words by field group, then prefixes. */
  uint64_t c1 = mk(s, 1, "Ann", NULL, NULL, NULL, "jon");
  uint64_t c2 = mk(s, 1, "Jonathan", NULL, NULL, NULL, NULL);
  uint64_t c3 = mk(s, 1, "Ann", NULL, "Jon", NULL, NULL);
  uint64_t c4 = mk(s, 1, "Jon", NULL, NULL, NULL, NULL);
  uint64_t c6 = mk(s, 1, "Ann", NULL, NULL, "Jones", NULL);
  uint64_t c7 = mk(s, 1, "Ann", NULL, NULL, NULL, "jonathon");
  uint64_t c8 = mk(s, 1, "Ann", "JON", NULL, NULL, NULL);
  cs_qry q = {.account = 1, .q = S("jon"), .nsort = 1};
  q.sort[0] = (cs_sort_key){CS_QF_RELEVANCE, true};
  uint64_t want1[] = {c4, c8, c3, c1, c2, c6, c7};
  expect_order(s, &q, want1, 7, "jon, relevance desc");
  q.sort[0].desc = false; /* least relevant first; ties still by id */
  uint64_t want2[] = {c7, c6, c2, c1, c3, c4, c8};
  expect_order(s, &q, want2, 7, "jon, relevance asc");
  /* Typos count first: the exact word in notes before the names' typo. */
  q.q = S("jonathon");
  q.fuzzy = true;
  q.sort[0].desc = true;
  uint64_t want3[] = {c7, c2};
  expect_order(s, &q, want3, 2, "jonathon fuzzy");

  /* Summed over the words. */
  uint64_t d1 = mk(s, 2, "Ann", "Smith", NULL, NULL, NULL);
  uint64_t d2 = mk(s, 2, "Ann", NULL, NULL, NULL, "smith");
  uint64_t d3 = mk(s, 2, "Ann", "Smithers", NULL, NULL, NULL);
  uint64_t d4 = mk(s, 2, "Ann", "Smith", NULL, NULL, NULL);
  uint64_t d5 = mk(s, 2, "Anna", "Smith", NULL, NULL, NULL);
  q = (cs_qry){.account = 2, .q = S("ann smith"), .nsort = 1};
  q.sort[0] = (cs_sort_key){CS_QF_RELEVANCE, true};
  uint64_t want4[] = {d1, d4, d2, d3};
  expect_order(s, &q, want4, 4, "ann smith");
  q.sort[0].desc = false;
  uint64_t want5[] = {d3, d2, d1, d4};
  expect_order(s, &q, want5, 4, "ann smith asc");
  /* With fuzzy, "annaa" (5 characters: one typo) reaches "anna", not
   * "ann" (two). */
  q.q = S("annaa smith");
  q.fuzzy = true;
  q.sort[0].desc = true;
  uint64_t want6[] = {d5};
  expect_order(s, &q, want6, 1, "annaa smith fuzzy");
  close_store(s, dir);
}

/* A missing or empty key sorts last in either order; ties by id. */
static void test_query_sort_missing_last(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  uint64_t a = mk(s, 1, "A", "beta", NULL, NULL, NULL);
  uint64_t b = mk(s, 1, "B", NULL, NULL, NULL, NULL);
  uint64_t c = mk(s, 1, "C", "Alpha", NULL, NULL, NULL);
  uint64_t d = mk(s, 1, "D", "\xcc\x81", NULL, NULL, NULL); /* folds to "" */
  uint64_t e = mk(s, 1, "E", "BETA", NULL, NULL, NULL);
  uint64_t f = mk(s, 1, "F", "alpha", NULL, NULL, NULL);
  uint64_t g = mk(s, 1, "G", "Älpha", NULL, NULL, NULL);
  cs_qry q = {.account = 1, .nsort = 1};
  q.sort[0] = (cs_sort_key){CS_LAST_NAME, false};
  uint64_t asc[] = {c, f, g, a, e, b, d};
  expect_order(s, &q, asc, 7, "last_name asc");
  q.sort[0].desc = true;
  uint64_t desc[] = {a, e, c, f, g, b, d};
  expect_order(s, &q, desc, 7, "last_name desc");
  /* A second key orders the ties, the missing among them too. */
  q.sort[1] = (cs_sort_key){CS_FIRST_NAME, true};
  q.nsort = 2;
  uint64_t two[] = {e, a, g, f, c, d, b};
  expect_order(s, &q, two, 7, "last_name desc, first_name desc");
  q.sort[0] = (cs_sort_key){CS_QF_ID, true};
  q.nsort = 1;
  uint64_t by_id[] = {g, f, e, d, c, b, a};
  expect_order(s, &q, by_id, 7, "id desc");
  close_store(s, dir);
}

/* A value whose key is empty (a lone combining mark folds to nothing) is
 * still a present field: exists holds, neq holds, eq of anything does
 * not, and it sorts last. */
static void test_query_exists_on_an_empty_key(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  uint64_t mark = mk(s, 1, "A", NULL, "\xcc\x81", NULL, NULL);
  uint64_t none = mk(s, 1, "B", NULL, NULL, NULL, NULL);
  uint64_t acme = mk(s, 1, "C", NULL, "Acme", NULL, NULL);
  cs_qnode ex = {.kind = CS_Q_COND, .field = CS_COMPANY, .op = CS_OP_EXISTS};
  cs_qry q = {.account = 1, .filter = &ex};
  uint64_t present[] = {mark, acme};
  expect_order(s, &q, present, 2, "company exists");
  cs_qnode not_ex = {.kind = CS_Q_NOT, .kids = &ex, .nkids = 1};
  q.filter = &not_ex;
  uint64_t absent[] = {none};
  expect_order(s, &q, absent, 1, "not company exists");
  cs_str v = S("Acme");
  cs_qnode neq = cond_text(CS_COMPANY, CS_OP_NEQ, &v);
  q.filter = &neq;
  uint64_t other[] = {mark, none};
  expect_order(s, &q, other, 2, "company neq Acme");
  close_store(s, dir);
}

/* match=suffix by id is refused too (the oracle of test_oracle.c holds
 * the seven fields); the term's length counts after folding. */
static void test_query_search_suffix_by_id(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  uint64_t id = mk(s, 1, "A", NULL, NULL, NULL, NULL);
  char digits[CS_ID_DIGITS + 1];
  cs_id_format(id, digits);
  cs_query q = {.account = 1,
                .field = CS_SEARCH_BY_ID,
                .match = CS_MATCH_SUFFIX,
                .term = digits + 10,
                .term_len = 10};
  cs_page page;
  cs_error err = {0};
  assert_int_equal(cs_search(s, &q, &page, &err), CS_EINVAL);
  assert_true(err.msg[0] != 0);
  /* "  X.ORG  " folds to "x.org": found; " .OR " to ".or": refused. */
  q = (cs_query){.account = 1,
                 .field = CS_EMAIL,
                 .match = CS_MATCH_SUFFIX,
                 .term = "  X.ORG  ",
                 .term_len = 9};
  assert_int_equal(cs_search(s, &q, &page, &err), 0);
  assert_int_equal(page.total, 1);
  cs_page_free(&page);
  q.term = " .OR ";
  q.term_len = 5;
  assert_int_equal(cs_search(s, &q, &page, &err), CS_EINVAL);
  assert_int_equal(err.field, CS_EMAIL);
  close_store(s, dir);
}

/* A store opened without indexes answers queries and suffix searches
 * CS_EINVAL, as every search. */
static void test_query_without_indexes(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  mk(s, 1, "Ann", NULL, "Acme", NULL, NULL);
  assert_int_equal(cs_close(s, NULL), 0);
  cs_options o = {.durability = CS_DURABILITY_NONE, .no_indexes = true};
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  cs_qry q = {
      .account = 1, .q = S("ann"), .nfacets = 1, .facets = {CS_COMPANY}};
  cs_qresult r;
  assert_int_equal(cs_query_run(s, &q, &r, &err), CS_EINVAL);
  assert_true(err.msg[0] != 0);
  cs_query sq = {.account = 1,
                 .field = CS_EMAIL,
                 .match = CS_MATCH_SUFFIX,
                 .term = "x.org",
                 .term_len = 5};
  cs_page pg;
  assert_int_equal(cs_search(s, &sq, &pg, &err), CS_EINVAL);
  close_store(s, dir);
}

/* -------------------------------------------- a walk under writes */

#define WALK_N 600
#define WALK_VICTIMS 120
#define WALK_MOVERS 60

typedef struct walk {
  cs_store *s;
  uint64_t ids[WALK_N];
  /* Contacts the writers may make not match or move: never required. */
  bool unstable[WALK_N];
  pthread_mutex_t mu;
  volatile bool stop;
  unsigned seed;
  int writes;
} walk;

/* The last name of initial contact i into buf, or NULL: some have none
 * (they sort last). Many share one (ties end in id order). */
static const char *walk_last(unsigned i, char buf[16]) {
  unsigned k = i % 40;
  if (k >= 35) return NULL;
  snprintf(buf, 16, "Name%02u", k % 30);
  return buf;
}

static void mark_unstable(walk *w, int i) {
  pthread_mutex_lock(&w->mu);
  w->unstable[i] = true;
  pthread_mutex_unlock(&w->mu);
}

/* Creates and deletes contacts of its own, deletes victims (the first
 * WALK_VICTIMS), moves movers (the next WALK_MOVERS) to another last
 * name: the walk's sort field, so neither is required, and a mover may
 * come twice. */
static void *walk_churn(void *arg) {
  walk *w = arg;
  unsigned seed = w->seed;
  uint64_t mine[4096];
  int nmine = 0, serial = 0;
  cs_error err;
  while (!w->stop) {
    unsigned r = (unsigned)rand_r(&seed) % 4;
    if (r == 0 || nmine == 0) {
      char email[40];
      snprintf(email, sizeof email, "new%d@x.org", serial++);
      uint64_t id;
      char ln[16];
      if (tu_create(w->s, 1,
                    tu_contact("Walk", walk_last((unsigned)rand_r(&seed), ln),
                               email, NULL, NULL, NULL, NULL),
                    &id, &err))
        fail_msg("create: %s", err.msg);
      if (nmine < 4096) mine[nmine++] = id;
    } else if (r == 1) {
      int k = rand_r(&seed) % nmine;
      if (tu_delete(w->s, 1, mine[k], &err)) fail_msg("delete: %s", err.msg);
      mine[k] = mine[--nmine];
    } else if (r == 2) {
      int v = rand_r(&seed) % WALK_VICTIMS;
      mark_unstable(w, v);
      int rc = tu_delete(w->s, 1, w->ids[v], &err);
      if (rc && rc != CS_ENOTFOUND) fail_msg("delete: %s", err.msg);
    } else {
      int m = WALK_VICTIMS + rand_r(&seed) % WALK_MOVERS;
      mark_unstable(w, m);
      cs_patch p = {.set_mask = 1u << CS_LAST_NAME};
      char ln[16];
      p.field[CS_LAST_NAME] = S(walk_last((unsigned)rand_r(&seed) % 30, ln));
      if (tu_update(w->s, 1, w->ids[m], p, &err)) fail_msg("move: %s", err.msg);
    }
    __atomic_fetch_add(&w->writes, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

/* Edits other fields of every initial contact; sets company "Skip" (which
 * the walk's filter excludes) on some, marking them. */
static void *walk_edit(void *arg) {
  walk *w = arg;
  unsigned seed = w->seed * 7 + 1;
  cs_error err;
  static const char *companies[] = {"Acme", "Globex", "Initech", "Skip"};
  while (!w->stop) {
    int i = WALK_VICTIMS + WALK_MOVERS +
            rand_r(&seed) % (WALK_N - WALK_VICTIMS - WALK_MOVERS);
    cs_patch p = {.set_mask = (1u << CS_COMPANY) | (1u << CS_NOTES)};
    const char *c = companies[rand_r(&seed) % 4];
    if (strcmp(c, "Skip") == 0 && rand_r(&seed) % 4) c = "Hooli";
    if (strcmp(c, "Skip") == 0) mark_unstable(w, i);
    p.field[CS_COMPANY] = S(c);
    p.field[CS_NOTES] = S(rand_r(&seed) % 2 ? "edited" : "edited again");
    if (tu_update(w->s, 1, w->ids[i], p, &err)) fail_msg("edit: %s", err.msg);
    __atomic_fetch_add(&w->writes, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

static int index_of(const walk *w, uint64_t id) {
  for (int i = 0; i < WALK_N; i++)
    if (w->ids[i] == id) return i;
  return -1;
}

/* The folded key of the last name the stable contact i has throughout
 * into k ("" for none). */
static void stable_key(int i, char k[16]) {
  char buf[16];
  const char *l = walk_last((unsigned)i, buf);
  snprintf(k, 16, "%s%s", l ? "name" : "", l ? l + 4 : "");
}

static void walk_once(walk *w, bool desc, uint32_t limit) {
  static const cs_str walk_v = {"walk", 4}, skip_v = {"skip", 4};
  cs_qnode kids[3] = {
      cond_text(CS_FIRST_NAME, CS_OP_EQ, &walk_v),
      {.kind = CS_Q_NOT, .kids = &kids[2], .nkids = 1},
      cond_text(CS_COMPANY, CS_OP_EQ, &skip_v),
  };
  cs_qnode root = {.kind = CS_Q_AND, .kids = kids, .nkids = 2};
  cs_qry q = {.account = 1, .filter = &root, .limit = limit, .nsort = 1};
  q.sort[0] = (cs_sort_key){CS_LAST_NAME, desc};
  cs_qpos pos;
  char text[64];
  static uint64_t seen_ids[1 << 16];
  int nseen = 0;
  bool seen[WALK_N] = {false};
  int last_stable = -1;
  for (;;) {
    cs_qresult r;
    cs_error err;
    if (cs_query_run(w->s, &q, &r, &err)) fail_msg("walk: %s", err.msg);
    for (uint32_t i = 0; i < r.page.count; i++) {
      uint64_t id = r.page.contacts[i].id;
      int k = index_of(w, id);
      /* A mover whose last name moves past the cursor comes again: a
       * keyset walk follows the sort value. Every other contact comes at
       * most once. */
      bool mover = k >= WALK_VICTIMS && k < WALK_VICTIMS + WALK_MOVERS;
      for (int j = 0; j < nseen && !mover; j++)
        if (seen_ids[j] == id)
          fail_msg("walk %s: %llu (initial %d) returned twice",
                   desc ? "desc" : "asc", (unsigned long long)id, k);
      if (nseen < (int)(sizeof seen_ids / sizeof seen_ids[0]))
        seen_ids[nseen++] = id;
      if (k < 0) continue;
      seen[k] = true;
      pthread_mutex_lock(&w->mu);
      bool unstable = w->unstable[k];
      pthread_mutex_unlock(&w->mu);
      if (unstable || k < WALK_VICTIMS + WALK_MOVERS) continue;
      /* Stable contacts come in the query's order. */
      if (last_stable >= 0) {
        char ak[16], b[16];
        stable_key(last_stable, ak);
        stable_key(k, b);
        int c;
        if (!ak[0] || !b[0])
          c = !ak[0] && !b[0] ? 0 : !ak[0] ? 1 : -1;
        else
          c = desc ? strcmp(b, ak) : strcmp(ak, b);
        if (c > 0 || (c == 0 && w->ids[last_stable] > id))
          fail_msg("walk %s: %llu ('%s') after %llu ('%s')",
                   desc ? "desc" : "asc", (unsigned long long)id, b,
                   (unsigned long long)w->ids[last_stable], ak);
      }
      last_stable = k;
    }
    bool more = r.page.more;
    if (more) {
      pos = r.next;
      if (pos.key[0].text.ptr) {
        assert_true(pos.key[0].text.len < sizeof text);
        memcpy(text, pos.key[0].text.ptr, pos.key[0].text.len);
        pos.key[0].text.ptr = text;
      }
    }
    cs_qresult_free(&r);
    if (!more) break;
    q.after = &pos;
  }
  for (int i = WALK_VICTIMS + WALK_MOVERS; i < WALK_N; i++) {
    pthread_mutex_lock(&w->mu);
    bool unstable = w->unstable[i];
    pthread_mutex_unlock(&w->mu);
    if (!unstable && !seen[i])
      fail_msg("walk %s: %llu matched throughout and was skipped",
               desc ? "desc" : "asc", (unsigned long long)w->ids[i]);
  }
}

static void test_query_cursor_walk_under_writes(void **state) {
  (void)state;
  char *dir;
  cs_store *s = open_store(&dir);
  static walk w;
  memset(&w, 0, sizeof w);
  w.s = s;
  w.seed = 20261201;
  pthread_mutex_init(&w.mu, NULL);
  cs_error err;
  for (int i = 0; i < WALK_N; i++) {
    char email[32];
    snprintf(email, sizeof email, "w%d@x.org", i);
    char ln[16];
    assert_int_equal(tu_create(s, 1,
                               tu_contact("Walk", walk_last((unsigned)i, ln),
                                          email, NULL, "Acme", NULL, NULL),
                               &w.ids[i], &err),
                     0);
  }
  pthread_t t[2];
  pthread_create(&t[0], NULL, walk_churn, &w);
  pthread_create(&t[1], NULL, walk_edit, &w);
  /* Walks until the writers have written a good deal meanwhile. */
  for (int round = 0;
       round < 12 ||
       (round < 400 && __atomic_load_n(&w.writes, __ATOMIC_RELAXED) < 3000);
       round++)
    walk_once(&w, round % 2 == 1, 1 + (uint32_t)(round % 6) * 3);
  w.stop = true;
  pthread_join(t[0], NULL);
  pthread_join(t[1], NULL);
  /* The writers wrote while the walks ran. */
  assert_true(w.writes >= 3000);
  pthread_mutex_destroy(&w.mu);
  close_store(s, dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_query_check_depth),
      cmocka_unit_test(test_query_check_conditions),
      cmocka_unit_test(test_query_check_in),
      cmocka_unit_test(test_query_check_sort_and_facets),
      cmocka_unit_test(test_query_check_words_and_q),
      cmocka_unit_test(test_query_check_suffix),
      cmocka_unit_test(test_query_check_fields_ops_values),
      cmocka_unit_test(test_query_check_limit_and_cursor),
      cmocka_unit_test(test_query_typo_allowance_edges),
      cmocka_unit_test(test_query_typos_exactly),
      cmocka_unit_test(test_query_typos_never),
      cmocka_unit_test(test_query_relevance_by_hand),
      cmocka_unit_test(test_query_sort_missing_last),
      cmocka_unit_test(test_query_exists_on_an_empty_key),
      cmocka_unit_test(test_query_search_suffix_by_id),
      cmocka_unit_test(test_query_without_indexes),
      cmocka_unit_test(test_query_cursor_walk_under_writes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
