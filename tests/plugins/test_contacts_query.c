/*
 * test_contacts_query.c: POST /contacts/query, fields= on the reads and
 * match=suffix on search (API.md "Query" and "Read / search").
 *
 * Goal: the codec reads every member of a query body into the cs_qry the
 * engine documents (values as each op takes them, ids, times, phones as
 * integers, relevance's default order), every fault is answered with its
 * code and its exact JSON path, every limit holds at its edge and is
 * refused one past it, a cursor belongs to its query (another q, filter,
 * fuzzy or sort is invalid_cursor; limit, fields and facets may change),
 * a walk with cursors meets every match once, and a projection shows just
 * the members asked for on all three read routes. The base64url the
 * cursors use is libcrypto's, and the search cursor is byte for byte what
 * it was.
 * Method: the codec is called directly for what a body becomes; routes go
 * through the plugin's table with fake_host.c over a real store.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ct.h"
#include "fake_host.h"

extern const cd_plugin contactd_plugin;

typedef struct cd_response res_t;

static int setup(void **state) {
  fh_fixture *fx = calloc(1, sizeof *fx);
  fh_open(fx, &contactd_plugin, NULL);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fh_fixture *fx = *state;
  fh_close(fx);
  free(fx);
  return 0;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *s = NULL;
  assert_true(vasprintf(&s, f, ap) >= 0);
  va_end(ap);
  return s;
}

/* A query answered 200 (the body printed when not). */
static res_t *query_ok(fh_fixture *fx, const char *body) {
  res_t *r = fh_call(fx, "POST", "/contacts/query", NULL, body);
  if (r->status != 200) fprintf(stderr, "%s\n-> %s\n", body, r->body);
  assert_int_equal(r->status, 200);
  return r;
}

static void query_fails(fh_fixture *fx, const char *body, const char *code,
                        const char *field) {
  res_t *r = fh_call(fx, "POST", "/contacts/query", NULL, body);
  if (r->status != 400 || strcmp(r->code, code) ||
      strcmp(r->field, field ? field : ""))
    fprintf(stderr, "body: %s\n", body);
  fh_assert_error(r, 400, code, field);
  fh_free(r);
}

static yajl_val at(yajl_val v, const char *key) {
  const char *path[] = {key, NULL};
  return yajl_tree_get(v, path, yajl_t_any);
}

static long long int_at(yajl_val v, const char *key) {
  yajl_val n = at(v, key);
  assert_non_null(n);
  assert_true(YAJL_IS_INTEGER(n));
  return YAJL_GET_INTEGER(n);
}

static const char *str_at(yajl_val v, const char *key) {
  yajl_val s = at(v, key);
  return s && YAJL_IS_STRING(s) ? YAJL_GET_STRING(s) : NULL;
}

static size_t len_of(yajl_val v) {
  assert_non_null(v);
  assert_true(YAJL_IS_ARRAY(v));
  return YAJL_GET_ARRAY(v)->len;
}

static yajl_val item(yajl_val v, size_t i) {
  assert_true(i < len_of(v));
  return YAJL_GET_ARRAY(v)->values[i];
}

/* The members an object has, in order, as "a,b,c". */
static void keys_of(yajl_val obj, char *out, size_t cap) {
  assert_true(YAJL_IS_OBJECT(obj));
  out[0] = '\0';
  for (size_t i = 0; i < YAJL_GET_OBJECT(obj)->len; i++) {
    size_t used = strlen(out);
    snprintf(out + used, cap - used, "%s%s", i ? "," : "",
             YAJL_GET_OBJECT(obj)->keys[i]);
  }
}

static char *id_text(uint64_t id) {
  char digits[CS_ID_DIGITS + 1];
  cs_id_format(id, digits);
  return strdup(digits);
}

/* The ids of a page, in order. */
static size_t page_ids(res_t *r, uint64_t *ids, size_t cap) {
  yajl_val list = at(fh_json(r), "contacts");
  size_t n = len_of(list);
  assert_true(n <= cap);
  for (size_t i = 0; i < n; i++) {
    const char *s = str_at(item(list, i), "id");
    assert_non_null(s);
    assert_int_equal(cs_id_parse(s, strlen(s), &ids[i]), 0);
  }
  return n;
}

/* -------------------------------------------------- the codec, no store */

static void parse_ok(const char *json, ct_query *cq) {
  if (ct_query_parse(cq, json, strlen(json)))
    fail_msg("%s: %s %s %s", json, cq->err.code, cq->err.field, cq->err.msg);
}

static void test_query_empty_body_lists_everything(void **state) {
  (void)state;
  ct_query cq;
  static const char *const bodies[] = {"{}", "", " \n",
                                       "{\"q\": null, \"filter\": null, "
                                       "\"sort\": null, \"cursor\": null, "
                                       "\"fields\": null, \"limit\": null}"};
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    parse_ok(bodies[i], &cq);
    assert_null(cq.q.q.ptr);
    assert_null(cq.q.filter);
    assert_false(cq.q.fuzzy);
    assert_int_equal(cq.q.nsort, 0);
    assert_int_equal(cq.q.nfacets, 0);
    assert_int_equal(cq.q.limit, 0); /* the engine's default */
    assert_null(cq.q.after);
    assert_int_equal(cq.members, CT_MEMBERS_ALL);
    ct_query_free(&cq);
  }
  assert_int_equal(ct_query_parse(&cq, NULL, 0), 0);
  ct_query_free(&cq);
}

static void test_query_body_becomes_the_engines_query(void **state) {
  (void)state;
  ct_query cq;
  parse_ok("{\"q\": \"jon acme\","
           " \"filter\": {\"and\": ["
           "   {\"field\": \"company\", \"op\": \"eq\", \"value\": \"Acme\"},"
           "   {\"or\": [{\"value\": \"@example.com\", \"op\": \"suffix\","
           "              \"field\": \"email\"},"
           "             {\"field\": \"phone\", \"op\": \"suffix\","
           "              \"value\": 7654321}]},"
           "   {\"not\": {\"field\": \"job_title\", \"op\": \"exists\"}}]},"
           " \"fuzzy\": \"auto\","
           " \"sort\": [{\"field\": \"last_name\", \"order\": \"asc\"},"
           "          {\"field\": \"relevance\"},"
           "          {\"field\": \"created_at\", \"order\": \"desc\"}],"
           " \"fields\": [\"id\", \"first_name\", \"email\", \"version\"],"
           " \"facets\": [\"company\", \"job_title\"],"
           " \"limit\": 100, \"cursor\": null}",
           &cq);
  assert_int_equal(cq.q.q.len, 8);
  assert_memory_equal(cq.q.q.ptr, "jon acme", 8);
  assert_true(cq.q.fuzzy);
  const cs_qnode *f = cq.q.filter;
  assert_non_null(f);
  assert_int_equal(f->kind, CS_Q_AND);
  assert_int_equal(f->nkids, 3);
  const cs_qnode *eq = &f->kids[0];
  assert_int_equal(eq->kind, CS_Q_COND);
  assert_int_equal(eq->field, CS_COMPANY);
  assert_int_equal(eq->op, CS_OP_EQ);
  assert_int_equal(eq->nvalues, 1);
  assert_null(eq->nums);
  assert_memory_equal(eq->values[0].ptr, "Acme", 4);
  const cs_qnode * or = &f->kids[1];
  assert_int_equal(or->kind, CS_Q_OR);
  assert_int_equal(or->nkids, 2);
  assert_int_equal(or->kids[0].field, CS_EMAIL);
  assert_int_equal(or->kids[0].op, CS_OP_SUFFIX);
  assert_int_equal(or->kids[0].values[0].len, 12);
  assert_int_equal(or->kids[1].field, CS_PHONE);
  /* A phone given as an integer is its digits. */
  assert_int_equal(or->kids[1].values[0].len, 7);
  assert_memory_equal(or->kids[1].values[0].ptr, "7654321", 7);
  const cs_qnode *not = &f->kids[2];
  assert_int_equal(not ->kind, CS_Q_NOT);
  assert_int_equal(not ->nkids, 1);
  assert_int_equal(not ->kids[0].field, CS_JOB_TITLE);
  assert_int_equal(not ->kids[0].op, CS_OP_EXISTS);
  assert_null(not ->kids[0].values);
  assert_int_equal(cq.q.nsort, 3);
  assert_int_equal(cq.q.sort[0].field, CS_LAST_NAME);
  assert_false(cq.q.sort[0].desc);
  /* Relevance without an order is the most relevant first. */
  assert_int_equal(cq.q.sort[1].field, CS_QF_RELEVANCE);
  assert_true(cq.q.sort[1].desc);
  assert_int_equal(cq.q.sort[2].field, CS_QF_CREATED_AT);
  assert_true(cq.q.sort[2].desc);
  assert_int_equal(cq.q.nfacets, 2);
  assert_int_equal(cq.q.facets[0], CS_COMPANY);
  assert_int_equal(cq.q.facets[1], CS_JOB_TITLE);
  assert_int_equal(cq.q.limit, 100);
  assert_int_equal(cq.members, CT_MEMBER_ID | 1u << CS_FIRST_NAME |
                                   1u << CS_EMAIL |
                                   1u << (CS_FIELD_COUNT + CS_SERVER_VERSION));
  ct_query_free(&cq);

  /* An explicit asc on relevance is the least relevant first; "fields": []
   * is id alone. */
  parse_ok("{\"q\": \"x\", \"sort\": [{\"field\": \"relevance\", \"order\": "
           "\"asc\"}], \"fields\": []}",
           &cq);
  assert_false(cq.q.sort[0].desc);
  assert_int_equal(cq.members, CT_MEMBER_ID);
  ct_query_free(&cq);
}

static void test_query_values_as_each_op_takes_them(void **state) {
  (void)state;
  ct_query cq;
  parse_ok("{\"filter\": {\"or\": ["
           " {\"field\": \"id\", \"op\": \"gte\", \"value\": "
           "\"10000000000000000005\"},"
           " {\"field\": \"id\", \"op\": \"prefix\", \"value\": \"1000\"},"
           " {\"field\": \"id\", \"op\": \"in\", \"value\": "
           "[\"10000000000000000001\", \"18446744073709551615\"]},"
           " {\"field\": \"created_at\", \"op\": \"lt\", \"value\": "
           "\"2026-11-26T09:58:00.123+01:00\"},"
           " {\"field\": \"updated_at\", \"op\": \"in\", \"value\": "
           "[\"1970-01-01T00:00:00Z\", \"2026-11-26T08:58:00.1234Z\"]},"
           " {\"field\": \"phone\", \"op\": \"in\", \"value\": [\"030 1\", "
           "12345]},"
           " {\"field\": \"notes\", \"op\": \"fuzzy\", \"value\": \"jazz\"}]}}",
           &cq);
  const cs_qnode *k = cq.q.filter->kids;
  assert_int_equal(cq.q.filter->nkids, 7);
  assert_null(k[0].values);
  assert_int_equal(k[0].nvalues, 1);
  assert_true(k[0].nums[0] == 10000000000000000005ull);
  assert_null(k[1].nums);
  assert_memory_equal(k[1].values[0].ptr, "1000", 4);
  assert_int_equal(k[2].nvalues, 2);
  assert_true(k[2].nums[1] == UINT64_MAX);
  assert_true(k[3].nums[0] == 1795683480123ull);
  assert_int_equal(k[4].nvalues, 2);
  assert_true(k[4].nums[0] == 0);
  assert_true(k[4].nums[1] == 1795683480123ull);
  assert_int_equal(k[5].nvalues, 2);
  assert_memory_equal(k[5].values[1].ptr, "12345", 5);
  assert_int_equal(k[6].op, CS_OP_FUZZY);
  ct_query_free(&cq);
}

/* Every fault of a body, with its code and the exact JSON path at fault.
 * Through the route, so that the status and the error object are checked
 * too. */
static void test_query_faults_name_their_path(void **state) {
  fh_fixture *fx = *state;
  static const struct {
    const char *body, *code, *field;
  } bad[] = {
      /* the body itself */
      {"[]", "invalid_query", NULL},
      {"\"q\"", "invalid_query", NULL},
      {"{\"q\": ", "invalid_json", NULL},
      {"{\"q\": \"a\"} x", "invalid_json", NULL},
      {"{/* no */ \"q\": \"a\"}", "invalid_json", NULL},
      {"{\"qq\": 1}", "unknown_field", "qq"},
      {"{\"contacts\": []}", "unknown_field", "contacts"},
      {"{\"q\": \"a\", \"q\": \"b\"}", "invalid_query", "q"},
      {"{\"\\ud800x\": 1}", "unknown_field", NULL},
      /* q */
      {"{\"q\": 5}", "invalid_query", "q"},
      {"{\"q\": [\"a\"]}", "invalid_query", "q"},
      {"{\"q\": \"\"}", "invalid_query", "q"},
      {"{\"q\": \"  ,;- \"}", "invalid_query", "q"},
      {"{\"q\": \"a\\u0000b\"}", "invalid_query", "q"},
      {"{\"q\": \"\\udc00\"}", "invalid_query", "q"},
      /* fuzzy */
      {"{\"fuzzy\": \"on\"}", "invalid_query", "fuzzy"},
      {"{\"fuzzy\": true}", "invalid_query", "fuzzy"},
      /* limit */
      {"{\"limit\": \"10\"}", "invalid_query", "limit"},
      {"{\"limit\": 1.5}", "invalid_query", "limit"},
      {"{\"limit\": -1}", "invalid_query", "limit"},
      {"{\"limit\": 1e2}", "invalid_query", "limit"},
      /* cursor */
      {"{\"cursor\": 5}", "invalid_cursor", "cursor"},
      {"{\"cursor\": \"AYrHIwSJ6AAA\"}", "invalid_cursor", "cursor"},
      {"{\"cursor\": \"not a cursor\"}", "invalid_cursor", "cursor"},
      /* filter nodes */
      {"{\"filter\": []}", "invalid_query", "filter"},
      {"{\"filter\": {}}", "invalid_query", "filter"},
      {"{\"filter\": {\"and\": {}}}", "invalid_query", "filter.and"},
      {"{\"filter\": {\"and\": [5]}}", "invalid_query", "filter.and[0]"},
      {"{\"filter\": {\"not\": []}}", "invalid_query", "filter.not"},
      {"{\"filter\": {\"and\": [], \"or\": []}}", "invalid_query", "filter.or"},
      {"{\"filter\": {\"field\": \"email\", \"and\": []}}", "invalid_query",
       "filter.and"},
      {"{\"filter\": {\"not\": {\"field\": \"email\", \"op\": "
       "\"exists\"}, \"op\": \"eq\"}}",
       "invalid_query", "filter.op"},
      {"{\"filter\": {\"not\": {}}}", "invalid_query", "filter.not"},
      {"{\"filter\": {\"field\": \"email\", \"field\": \"email\"}}",
       "invalid_query", "filter.field"},
      {"{\"filter\": {\"and\": [{\"field\": \"email\", \"op\": \"eq\", "
       "\"value\": \"a\", \"vaule\": 1}]}}",
       "unknown_field", "filter.and[0].vaule"},
      {"{\"filter\": {\"or\": [{\"field\": \"email\", \"op\": \"eq\", "
       "\"value\": \"a\"}, {\"op\": \"eq\", \"value\": \"a\"}]}}",
       "invalid_query", "filter.or[1].field"},
      {"{\"filter\": {\"field\": \"email\", \"value\": \"a\"}}",
       "invalid_query", "filter.op"},
      {"{\"filter\": {\"field\": \"e-mail\", \"op\": \"eq\", \"value\": "
       "\"a\"}}",
       "invalid_query", "filter.field"},
      {"{\"filter\": {\"field\": 7, \"op\": \"eq\", \"value\": \"a\"}}",
       "invalid_query", "filter.field"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"like\", \"value\": "
       "\"a\"}}",
       "invalid_query", "filter.op"},
      {"{\"filter\": {\"and\": [{\"not\": {\"field\": \"email\", \"op\": "
       "[\"eq\"], \"value\": \"a\"}}]}}",
       "invalid_query", "filter.and[0].not.op"},
      /* an op the field does not take: the engine's rule */
      {"{\"filter\": {\"field\": \"company\", \"op\": \"gt\", \"value\": "
       "\"a\"}}",
       "invalid_query", "filter.op"},
      {"{\"filter\": {\"and\": [{\"field\": \"email\", \"op\": \"eq\", "
       "\"value\": \"a\"}, {\"or\": [{\"field\": \"first_name\", \"op\": "
       "\"suffix\", \"value\": \"abcd\"}]}]}}",
       "invalid_query", "filter.and[1].or[0].op"},
      {"{\"filter\": {\"field\": \"relevance\", \"op\": \"eq\", \"value\": "
       "\"a\"}}",
       "invalid_query", "filter.field"},
      /* values */
      {"{\"filter\": {\"field\": \"email\", \"op\": \"eq\"}}", "invalid_query",
       "filter.value"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"eq\", \"value\": null}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"eq\", \"value\": 5}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"eq\", \"value\": "
       "true}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"eq\", \"value\": {}}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"eq\", \"value\": "
       "[\"a\"]}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"phone\", \"op\": \"eq\", \"value\": -5}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"phone\", \"op\": \"eq\", \"value\": 1.5}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"exists\", \"value\": "
       "\"a\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"in\", \"value\": "
       "\"a\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"in\", \"value\": "
       "[\"a\", 5]}}",
       "invalid_query", "filter.value[1]"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"in\", \"value\": "
       "[\"a\", [\"b\"]]}}",
       "invalid_query", "filter.value[1]"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"in\", \"value\": "
       "[\"a\", null]}}",
       "invalid_query", "filter.value[1]"},
      {"{\"filter\": {\"field\": \"email\", \"op\": \"eq\", \"value\": "
       "\"a\\u0000\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"id\", \"op\": \"eq\", \"value\": \"123\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"id\", \"op\": \"eq\", \"value\": "
       "10000000000000000001}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"id\", \"op\": \"gt\", \"value\": "
       "\"00000000000000000001\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"id\", \"op\": \"prefix\", \"value\": "
       "\"12a\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"id\", \"op\": \"prefix\", \"value\": "
       "\"123456789012345678901\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"id\", \"op\": \"in\", \"value\": "
       "[\"10000000000000000001\", \"1\"]}}",
       "invalid_query", "filter.value[1]"},
      {"{\"filter\": {\"field\": \"created_at\", \"op\": \"gt\", \"value\": "
       "\"2026-11-26\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"updated_at\", \"op\": \"lte\", \"value\": "
       "1795683480123}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"field\": \"created_at\", \"op\": \"gt\", \"value\": "
       "\"1969-12-31T23:59:59Z\"}}",
       "invalid_query", "filter.value"},
      {"{\"filter\": {\"not\": {\"field\": \"created_at\", \"op\": \"in\", "
       "\"value\": [\"2026-11-26T08:58:00Z\", \"yesterday\"]}}}",
       "invalid_query", "filter.not.value[1]"},
      /* sort */
      {"{\"sort\": {\"field\": \"id\"}}", "invalid_sort", "sort"},
      {"{\"sort\": [\"id\"]}", "invalid_sort", "sort[0]"},
      {"{\"sort\": [{\"order\": \"asc\"}]}", "invalid_sort", "sort[0]"},
      {"{\"sort\": [{\"field\": \"id\"}, {\"field\": \"nope\"}]}",
       "invalid_sort", "sort[1]"},
      {"{\"sort\": [{\"field\": \"id\", \"order\": \"up\"}]}", "invalid_sort",
       "sort[0]"},
      {"{\"sort\": [{\"field\": \"id\", \"order\": 1}]}", "invalid_sort",
       "sort[0]"},
      {"{\"sort\": [{\"field\": \"id\", \"dir\": \"asc\"}]}", "unknown_field",
       "sort[0].dir"},
      {"{\"sort\": [{\"field\": \"relevance\"}]}", "invalid_sort", "sort[0]"},
      {"{\"sort\": [{\"field\": \"email\"}, {\"field\": \"relevance\"}]}",
       "invalid_sort", "sort[1]"},
      {"{\"sort\": [{\"field\": \"email\"}, {\"field\": \"email\", "
       "\"order\": \"desc\"}]}",
       "invalid_sort", "sort[1]"},
      {"{\"q\": \"a\", \"sort\": [{\"field\": \"relevance\"}, "
       "{\"field\": \"id\"}, {\"field\": \"relevance\", \"order\": "
       "\"asc\"}]}",
       "invalid_sort", "sort[2]"},
      /* a fuzzy condition takes no email or phone */
      {"{\"filter\": {\"field\": \"email\", \"op\": \"fuzzy\", "
       "\"value\": \"a\"}}",
       "invalid_query", "filter.op"},
      {"{\"filter\": {\"field\": \"id\", \"op\": \"words\", "
       "\"value\": \"1\"}}",
       "invalid_query", "filter.op"},
      /* fields */
      {"{\"fields\": \"id,email\"}", "invalid_query", "fields"},
      {"{\"fields\": [\"id\", \"mail\"]}", "invalid_query", "fields[1]"},
      {"{\"fields\": [\"id\", 5]}", "invalid_query", "fields[1]"},
      {"{\"fields\": [\"deleted_at\"]}", "invalid_query", "fields[0]"},
      /* facets */
      {"{\"facets\": \"company\"}", "invalid_query", "facets"},
      {"{\"facets\": [\"company\", \"nope\"]}", "invalid_query", "facets[1]"},
      {"{\"facets\": [\"email\"]}", "invalid_query", "facets[0]"},
      {"{\"facets\": [\"company\", \"notes\"]}", "invalid_query", "facets[1]"},
      {"{\"facets\": [\"company\", \"id\"]}", "invalid_query", "facets[1]"},
      {"{\"facets\": [null]}", "invalid_query", "facets[0]"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    query_fails(fx, bad[i].body, bad[i].code, bad[i].field);
}

/* A tree nested depth deep: conditions inside "and"s and "not"s, the
 * innermost a condition. */
static char *nested(int depth, bool use_not) {
  char *s = strdup("{\"field\": \"email\", \"op\": \"exists\"}");
  for (int d = 1; d < depth; d++) {
    char *t =
        use_not && d % 2 ? fmt("{\"not\": %s}", s) : fmt("{\"and\": [%s]}", s);
    free(s);
    s = t;
  }
  char *body = fmt("{\"filter\": %s}", s);
  free(s);
  return body;
}

static void test_query_depth_limit(void **state) {
  fh_fixture *fx = *state;
  fh_create(fx, "{\"first_name\": \"A\", \"email\": \"a@example.com\"}");
  for (int depth = 1; depth <= CS_QUERY_DEPTH_MAX; depth++) {
    for (int use_not = 0; use_not <= 1; use_not++) {
      char *body = nested(depth, use_not);
      res_t *r = query_ok(fx, body);
      /* depth / 2 nots: an odd count turns the match away. */
      assert_int_equal(int_at(fh_json(r), "total"),
                       use_not && (depth / 2) % 2 ? 0 : 1);
      fh_free(r);
      free(body);
    }
  }
  char *body = nested(CS_QUERY_DEPTH_MAX + 1, false);
  query_fails(fx, body, "query_too_complex",
              "filter.and[0].and[0].and[0].and[0]");
  free(body);
  body = nested(CS_QUERY_DEPTH_MAX + 1, true);
  query_fails(fx, body, "query_too_complex", "filter.and[0].not.and[0].not");
  free(body);
  /* Far past it: refused at the fifth level, never nested further. */
  enum { DEEP = 100000 };
  static const char open[] = "{\"not\": ", cond[] = "{\"op\": \"exists\"}";
  char *deep = malloc(16 + DEEP * (sizeof open - 1) + sizeof cond + DEEP);
  size_t used = (size_t)sprintf(deep, "{\"filter\": ");
  for (int d = 0; d < DEEP; d++)
    used += (size_t)sprintf(deep + used, "%s", open);
  used += (size_t)sprintf(deep + used, "%s", cond);
  for (int d = 0; d <= DEEP; d++)
    deep[used++] = '}';
  deep[used] = '\0';
  query_fails(fx, deep, "query_too_complex", "filter.not.not.not.not");
  free(deep);
}

/* {"filter": {"and": [n conditions]}} */
static char *conditions(int n) {
  size_t cap = 64 + (size_t)n * 64;
  char *s = malloc(cap);
  size_t used = (size_t)snprintf(s, cap, "{\"filter\": {\"and\": [");
  for (int i = 0; i < n; i++)
    used += (size_t)snprintf(s + used, cap - used,
                             "%s{\"field\": \"email\", \"op\": \"exists\"}",
                             i ? "," : "");
  snprintf(s + used, cap - used, "]}}");
  return s;
}

static void test_query_conditions_limit(void **state) {
  fh_fixture *fx = *state;
  fh_create(fx, "{\"first_name\": \"A\", \"email\": \"a@example.com\"}");
  char *body = conditions(CS_QUERY_CONDS_MAX);
  res_t *r = query_ok(fx, body);
  assert_int_equal(int_at(fh_json(r), "total"), 1);
  fh_free(r);
  free(body);
  /* Refused at the first condition past the count. */
  body = conditions(CS_QUERY_CONDS_MAX + 1);
  query_fails(fx, body, "query_too_complex", "filter.and[32]");
  free(body);
  /* Counted over the whole tree, not per list. */
  char *half = conditions(CS_QUERY_CONDS_MAX / 2 + 1);
  char *inner = half + strlen("{\"filter\": ");
  inner[strlen(inner) - 1] = '\0';
  body = fmt("{\"filter\": {\"or\": [%s, %s]}}", inner, inner);
  query_fails(fx, body, "query_too_complex", "filter.or[1].and[15]");
  free(body);
  free(half);
  query_fails(fx, "{\"filter\": {\"and\": []}}", "invalid_query", "filter");
  query_fails(fx, "{\"filter\": {\"or\": [{\"and\": []}]}}", "invalid_query",
              "filter.or[0]");
}

/* An in of n values on field (strings, or ids when ids is set). */
static char *in_of(int n, bool ids) {
  size_t cap = 64 + (size_t)n * 32;
  char *s = malloc(cap);
  size_t used = (size_t)snprintf(
      s, cap, "{\"filter\": {\"field\": \"%s\", \"op\": \"in\", \"value\": [",
      ids ? "id" : "company");
  for (int i = 0; i < n; i++)
    used += (size_t)(ids ? snprintf(s + used, cap - used, "%s\"%llu\"",
                                    i ? "," : "",
                                    10000000000000000000ull + (unsigned)i)
                         : snprintf(s + used, cap - used, "%s\"c%d\"",
                                    i ? "," : "", i));
  snprintf(s + used, cap - used, "]}}");
  return s;
}

static void test_query_in_limit(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = fh_create(
      fx, "{\"first_name\": \"A\", \"email\": \"a@example.com\", \"company\": "
          "\"c99\"}");
  for (int ids = 0; ids <= 1; ids++) {
    char *body = in_of(CS_QUERY_IN_MAX, ids);
    res_t *r = query_ok(fx, body);
    /* The first id is below every id handed out but the first. */
    assert_int_equal(int_at(fh_json(r), "total"),
                     ids ? id < 10000000000000000100ull : 1);
    fh_free(r);
    free(body);
    body = in_of(CS_QUERY_IN_MAX + 1, ids);
    query_fails(fx, body, "invalid_query", "filter.value");
    free(body);
    body = in_of(0, ids);
    query_fails(fx, body, "invalid_query", "filter.value");
    free(body);
  }
}

static void test_query_sort_facets_limit_edges(void **state) {
  fh_fixture *fx = *state;
  fh_create(fx, "{\"first_name\": \"A\", \"email\": \"a@example.com\", "
                "\"company\": \"Acme\", \"job_title\": \"CEO\"}");
  res_t *r = query_ok(fx, "{\"sort\": [{\"field\": \"last_name\"}, "
                          "{\"field\": \"company\", \"order\": \"desc\"}, "
                          "{\"field\": \"id\", \"order\": \"desc\"}]}");
  fh_free(r);
  query_fails(fx,
              "{\"sort\": [{\"field\": \"last_name\"}, {\"field\": "
              "\"company\"}, {\"field\": \"id\"}, {\"field\": \"email\"}]}",
              "invalid_sort", "sort[3]");
  r = query_ok(fx, "{\"facets\": [\"first_name\", \"last_name\", "
                   "\"company\", \"job_title\", \"company\"]}");
  yajl_val facets = at(fh_json(r), "facets");
  assert_non_null(facets);
  assert_int_equal(YAJL_GET_OBJECT(facets)->len, 4);
  fh_free(r);
  query_fails(fx,
              "{\"facets\": [\"first_name\", \"last_name\", \"company\", "
              "\"job_title\", \"company\", \"last_name\"]}",
              "invalid_query", "facets[5]");
  /* 1, 334, 667, 1000: every page size from the least to the most. */
  for (unsigned limit = 1; limit <= CS_PAGE_LIMIT_MAX; limit += 333) {
    char *body = fmt("{\"limit\": %u}", limit);
    r = query_ok(fx, body);
    assert_int_equal(int_at(fh_json(r), "count"), 1);
    fh_free(r);
    free(body);
  }
  query_fails(fx, "{\"limit\": 0}", "invalid_query", "limit");
  query_fails(fx, "{\"limit\": 1001}", "invalid_query", "limit");
  query_fails(fx, "{\"limit\": 99999999999999999999999}", "invalid_query",
              "limit");
}

/* q of n words. */
static char *q_of(int n) {
  size_t cap = 32 + (size_t)n * 4;
  char *s = malloc(cap);
  size_t used = (size_t)snprintf(s, cap, "{\"q\": \"");
  for (int i = 0; i < n; i++)
    used += (size_t)snprintf(s + used, cap - used, "%sa", i ? " " : "");
  snprintf(s + used, cap - used, "\"}");
  return s;
}

static void test_query_words_and_suffix_limits(void **state) {
  fh_fixture *fx = *state;
  fh_create(fx, "{\"first_name\": \"A\", \"email\": \"ann@example.com\", "
                "\"phone\": \"+49 30 7654321\"}");
  char *body = q_of(CS_QUERY_WORDS_MAX);
  res_t *r = query_ok(fx, body);
  assert_int_equal(int_at(fh_json(r), "total"), 1);
  fh_free(r);
  free(body);
  body = q_of(CS_QUERY_WORDS_MAX + 1);
  query_fails(fx, body, "query_too_complex", "q");
  free(body);
  /* A words condition's value is held to the same count. */
  body = q_of(CS_QUERY_WORDS_MAX + 1);
  char *value = strchr(body, ':') + 2;
  value[strlen(value) - 1] = '\0';
  char *cond = fmt("{\"filter\": {\"field\": \"notes\", \"op\": \"words\", "
                   "\"value\": %s}}",
                   value);
  query_fails(fx, cond, "query_too_complex", "filter.value");
  free(cond);
  free(body);

  /* Suffixes: 4 characters (phone: digits) at least. */
  static const struct {
    const char *field, *value;
    int total; /* -1: refused */
  } sfx[] = {
      {"phone", "\"4321\"", 1},       {"phone", "4321", 1},
      {"phone", "\"321\"", -1},       {"phone", "\"3-2-1\"", -1},
      {"phone", "\"4-3-2-1\"", 1},    {"email", "\".com\"", 1},
      {"email", "\"com\"", -1},       {"email", "\"@EXAMPLE.COM\"", 1},
      {"email", "\"@other.com\"", 0},
  };
  for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    body = fmt("{\"filter\": {\"field\": \"%s\", \"op\": \"suffix\", "
               "\"value\": %s}}",
               sfx[i].field, sfx[i].value);
    if (sfx[i].total < 0) {
      query_fails(fx, body, "invalid_query", "filter.value");
    } else {
      r = query_ok(fx, body);
      if (int_at(fh_json(r), "total") != sfx[i].total)
        fail_msg("%s: %s", body, r->body);
      fh_free(r);
    }
    free(body);
  }
}

/* ---------------------------------------------------------------- answers */

static void test_query_answer_shape(void **state) {
  fh_fixture *fx = *state;
  fh_create(fx, "{\"first_name\": \"Jon\", \"last_name\": \"Smith\", "
                "\"email\": \"jon@example.com\", \"company\": \"Acme\"}");
  fh_create(fx, "{\"first_name\": \"Ann\", \"last_name\": \"Jones\", "
                "\"email\": \"ann@example.com\", \"company\": \"ACME\"}");
  fh_create(fx, "{\"first_name\": \"Bob\", \"email\": \"bob@other.org\", "
                "\"company\": \"Other\"}");
  res_t *r =
      query_ok(fx, "{\"filter\": {\"field\": \"email\", \"op\": \"suffix\", "
                   "\"value\": \"@example.com\"},"
                   " \"sort\": [{\"field\": \"first_name\"}],"
                   " \"fields\": [\"first_name\", \"company\"],"
                   " \"facets\": [\"company\"]}");
  yajl_val v = fh_json(r);
  char keys[256];
  keys_of(v, keys, sizeof keys);
  assert_string_equal(keys, "contacts,count,total,next_cursor,facets,as_of");
  assert_int_equal(int_at(v, "count"), 2);
  assert_int_equal(int_at(v, "total"), 2);
  assert_true(YAJL_IS_NULL(at(v, "next_cursor")));
  yajl_val list = at(v, "contacts");
  assert_int_equal(len_of(list), 2);
  assert_string_equal(str_at(item(list, 0), "first_name"), "Ann");
  assert_string_equal(str_at(item(list, 1), "first_name"), "Jon");
  keys_of(item(list, 0), keys, sizeof keys);
  assert_string_equal(keys, "id,first_name,company");
  /* One folded value, shown as the lowest id holding it stores it. */
  const char *fpath[] = {"facets", "company", NULL};
  yajl_val company = yajl_tree_get(v, fpath, yajl_t_array);
  assert_int_equal(len_of(company), 1);
  assert_string_equal(str_at(item(company, 0), "value"), "Acme");
  assert_int_equal(int_at(item(company, 0), "count"), 2);
  /* as_of is the log sequence in decimal. */
  const char *as_of = str_at(v, "as_of");
  assert_non_null(as_of);
  uint64_t seq;
  assert_int_equal(cs_decimal_parse(as_of, strlen(as_of), 1, UINT64_MAX, &seq),
                   0);
  fh_free(r);

  /* No facets asked: no facets member. All members by default. */
  r = query_ok(fx, "{}");
  v = fh_json(r);
  keys_of(v, keys, sizeof keys);
  assert_string_equal(keys, "contacts,count,total,next_cursor,as_of");
  assert_int_equal(int_at(v, "total"), 3);
  keys_of(item(at(v, "contacts"), 0), keys, sizeof keys);
  assert_string_equal(
      keys, "id,first_name,last_name,email,company,created_at,updated_at,"
            "version");
  /* A later write moves as_of on. */
  const char *before = str_at(v, "as_of");
  uint64_t seq0;
  assert_int_equal(
      cs_decimal_parse(before, strlen(before), 1, UINT64_MAX, &seq0), 0);
  fh_free(r);
  fh_create(fx, "{\"first_name\": \"Cy\", \"email\": \"cy@example.com\"}");
  r = query_ok(fx, "");
  const char *after = str_at(fh_json(r), "as_of");
  uint64_t seq1;
  assert_int_equal(cs_decimal_parse(after, strlen(after), 1, UINT64_MAX, &seq1),
                   0);
  assert_true(seq1 > seq0);
  assert_int_equal(int_at(fh_json(r), "total"), 4);
  fh_free(r);

  /* Another account's contacts are never seen. */
  fx->account = 2;
  r = query_ok(fx, "{}");
  assert_int_equal(int_at(fh_json(r), "total"), 0);
  fh_free(r);
  fx->account = 1;
}

/* Each kind of value reaches the engine as the engine reads it: typo
 * tolerance on and off, times, ids, a phone given as an integer. */
static void test_query_values_reach_the_engine(void **state) {
  fh_fixture *fx = *state;
  uint64_t a =
      fh_create(fx, "{\"first_name\": \"Jonathan\", \"email\": "
                    "\"jon@example.com\", \"phone\": \"+30 123 456\"}");
  uint64_t b = fh_create(fx, "{\"first_name\": \"Maria\", \"email\": "
                             "\"maria@example.com\"}");
  char *ida = id_text(a), *idb = id_text(b);
  char now[32];
  cs_contact c;
  assert_int_equal(cs_get(fx->store, fx->account, b, &c, NULL), 0);
  cs_time_format(c.created_ms, now);
  struct {
    char *body;
    long long total;
  } cases[] = {
      {fmt("{\"q\": \"jonathon\"}"), 0},
      {fmt("{\"q\": \"jonathon\", \"fuzzy\": \"auto\"}"), 1},
      {fmt("{\"q\": \"jonathon\", \"fuzzy\": \"off\"}"), 0},
      {fmt("{\"filter\": {\"field\": \"id\", \"op\": \"eq\", \"value\": "
           "\"%s\"}}",
           ida),
       1},
      {fmt("{\"filter\": {\"field\": \"id\", \"op\": \"gt\", \"value\": "
           "\"%s\"}}",
           ida),
       1},
      {fmt("{\"filter\": {\"field\": \"id\", \"op\": \"in\", \"value\": "
           "[\"%s\", \"%s\"]}}",
           ida, idb),
       2},
      {fmt("{\"filter\": {\"field\": \"id\", \"op\": \"prefix\", "
           "\"value\": \"%.19s\"}}",
           ida),
       2},
      {fmt("{\"filter\": {\"field\": \"created_at\", \"op\": \"gte\", "
           "\"value\": \"1970-01-01T00:00:00Z\"}}"),
       2},
      {fmt("{\"filter\": {\"field\": \"created_at\", \"op\": \"lt\", "
           "\"value\": \"2000-01-01T01:00:00+01:00\"}}"),
       0},
      {fmt("{\"filter\": {\"field\": \"updated_at\", \"op\": \"lte\", "
           "\"value\": \"%s\"}}",
           now),
       2},
      {fmt("{\"filter\": {\"field\": \"created_at\", \"op\": \"eq\", "
           "\"value\": \"%s\"}}",
           now),
       -1},
      {fmt("{\"filter\": {\"field\": \"phone\", \"op\": \"eq\", "
           "\"value\": 30123456}}"),
       1},
      {fmt("{\"filter\": {\"not\": {\"field\": \"phone\", \"op\": "
           "\"exists\"}}}"),
       1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    res_t *r = query_ok(fx, cases[i].body);
    long long got = int_at(fh_json(r), "total");
    /* created_at eq: b, and a when both were made in one millisecond */
    if (cases[i].total < 0 ? got < 1 || got > 2 : got != cases[i].total)
      fail_msg("%s: %s", cases[i].body, r->body);
    fh_free(r);
    free(cases[i].body);
  }
  free(ida);
  free(idb);
}

/* The members fields= names, on the three read routes. */
static void test_query_fields_on_every_read(void **state) {
  fh_fixture *fx = *state;
  uint64_t id = fh_create(fx, "{\"first_name\": \"Jon\", \"email\": "
                              "\"jon@example.com\", \"phone\": \"12345\"}");
  char *digits = id_text(id);
  char *path = fmt("/contacts/%s", digits);
  char keys[256];
  res_t *r = fh_call(fx, "GET", path, "fields=email,version", NULL);
  assert_int_equal(r->status, 200);
  keys_of(fh_json(r), keys, sizeof keys);
  assert_string_equal(keys, "id,email,version");
  assert_non_null(fh_header(r, "etag"));
  fh_free(r);
  r = fh_call(fx, "GET", path, "fields=id", NULL);
  keys_of(fh_json(r), keys, sizeof keys);
  assert_string_equal(keys, "id");
  fh_free(r);
  /* An absent member is left out, as it always is. */
  r = fh_call(fx, "GET", path, "fields=company,created_at,updated_at", NULL);
  keys_of(fh_json(r), keys, sizeof keys);
  assert_string_equal(keys, "id,created_at,updated_at");
  fh_free(r);

  r = fh_call(fx, "GET", "/contacts",
              "searchby=email&search=jon@example.com&fields=phone,first_name",
              NULL);
  assert_int_equal(r->status, 200);
  keys_of(item(at(fh_json(r), "contacts"), 0), keys, sizeof keys);
  assert_string_equal(keys, "id,first_name,phone");
  fh_free(r);
  /* In a search's JSON body as a comma list too. */
  r = fh_call(fx, "GET", "/contacts", NULL,
              "{\"searchby\": \"email\", \"search\": \"jon@example.com\", "
              "\"fields\": \"email\"}");
  assert_int_equal(r->status, 200);
  keys_of(item(at(fh_json(r), "contacts"), 0), keys, sizeof keys);
  assert_string_equal(keys, "id,email");
  fh_free(r);

  r = query_ok(fx, "{\"fields\": [\"phone\", \"phone\", \"created_at\"]}");
  keys_of(item(at(fh_json(r), "contacts"), 0), keys, sizeof keys);
  assert_string_equal(keys, "id,phone,created_at");
  fh_free(r);

  static const char *const bad[] = {
      "fields=",      "fields=id,",         "fields=,id",
      "fields=mail",  "fields=id,e%2Cmail", "fields=deleted_at",
      "fields=Email",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = fh_call(fx, "GET", path, bad[i], NULL);
    fh_assert_error(r, 400, "invalid_field", "fields");
    fh_free(r);
    char *q = fmt("searchby=email&search=x&%s", bad[i]);
    r = fh_call(fx, "GET", "/contacts", q, NULL);
    fh_assert_error(r, 400, "invalid_field", "fields");
    fh_free(r);
    free(q);
  }
  r = fh_call(fx, "GET", path, "fields=id&fields=email", NULL);
  fh_assert_error(r, 400, "duplicate_field", "fields");
  fh_free(r);
  r = fh_call(fx, "GET", "/contacts",
              "searchby=email&search=x&fields=id&fields=email", NULL);
  fh_assert_error(r, 400, "duplicate_field", "fields");
  fh_free(r);
  r = fh_call(fx, "GET", "/contacts", NULL,
              "{\"searchby\": \"email\", \"search\": \"x\", \"fields\": "
              "[\"id\"]}");
  fh_assert_error(r, 400, "invalid_field", "fields");
  fh_free(r);
  free(path);
  free(digits);
}

/* match=suffix on GET /contacts: email and phone, 4 characters at least. */
static void test_query_search_match_suffix(void **state) {
  fh_fixture *fx = *state;
  fh_create(fx, "{\"first_name\": \"A\", \"email\": \"a@example.com\", "
                "\"phone\": \"030 7654321\"}");
  fh_create(fx, "{\"first_name\": \"B\", \"email\": \"b@Example.com\", "
                "\"phone\": \"+1 (234) 567-890\"}");
  fh_create(fx, "{\"first_name\": \"C\", \"email\": \"c@other.org\"}");
  static const struct {
    const char *query;
    long long total;
  } ok[] = {
      {"searchby=phone&match=suffix&search=7654321", 1},
      {"searchby=phone&match=suffix&search=4321", 1},
      {"searchby=phone&match=suffix&search=567-890", 1},
      {"searchby=phone&match=suffix&search=0000", 0},
      {"searchby=email&match=suffix&search=%40example.com", 2},
      {"searchby=email&match=suffix&search=.org", 1},
      {"searchby=email&match=suffix&search=.ORG", 1},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    res_t *r = fh_call(fx, "GET", "/contacts", ok[i].query, NULL);
    if (r->status != 200) fprintf(stderr, "%s: %s\n", ok[i].query, r->body);
    assert_int_equal(r->status, 200);
    assert_int_equal(int_at(fh_json(r), "total"), ok[i].total);
    fh_free(r);
  }
  static const struct {
    const char *query, *field;
  } bad[] = {
      {"searchby=phone&match=suffix&search=321", "phone"},
      {"searchby=phone&match=suffix&search=3-2-1", "phone"},
      {"searchby=email&match=suffix&search=org", "email"},
      {"searchby=first_name&match=suffix&search=abcd", "first_name"},
      {"searchby=company&match=suffix&search=acme", "company"},
      {"searchby=id&match=suffix&search=12345", "match"},
      {"searchby=email&match=SUFFIX&search=.org", "match"},
      {"searchby=email&match=suffixes&search=.org", "match"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    res_t *r = fh_call(fx, "GET", "/contacts", bad[i].query, NULL);
    fh_assert_error(r, 400, "invalid_field", bad[i].field);
    fh_free(r);
  }
}

/* -------------------------------------------------------------- cursors */

/* Pages through body (which must end in "}" and hold no cursor) with
 * limit per page; the ids met, in order, into ids. */
static size_t walk(fh_fixture *fx, const char *body, unsigned limit,
                   uint64_t *ids, size_t cap) {
  size_t n = 0;
  char *cursor = NULL;
  size_t pages = 0;
  long long total = -1;
  for (;;) {
    char *b = fmt("%.*s%s\"limit\": %u%s%s%s}", (int)strlen(body) - 1, body,
                  strlen(body) > 2 ? ", " : "", limit,
                  cursor ? ", \"cursor\": \"" : "", cursor ? cursor : "",
                  cursor ? "\"" : "");
    res_t *r = query_ok(fx, b);
    free(b);
    yajl_val v = fh_json(r);
    if (total < 0) total = int_at(v, "total");
    assert_int_equal(int_at(v, "total"), total);
    size_t got = page_ids(r, ids + n, cap - n);
    assert_int_equal(int_at(v, "count"), got);
    n += got;
    pages++;
    free(cursor);
    cursor = NULL;
    const char *next = str_at(v, "next_cursor");
    if (next) {
      assert_int_equal(got, limit);
      cursor = strdup(next);
      /* URL-safe as it is. */
      for (const char *c = cursor; *c; c++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
                               "tuvwxyz0123456789-_",
                               *c));
    }
    fh_free(r);
    if (!cursor) break;
    assert_true(pages < 1000);
  }
  assert_int_equal(n, total);
  return n;
}

static void test_query_cursor_walks_to_the_end(void **state) {
  fh_fixture *fx = *state;
  uint64_t made[23];
  static const char *const companies[] = {"Acme", "Bolt", "Core", NULL};
  for (int i = 0; i < 23; i++) {
    char *b = fmt("{\"first_name\": \"P%02d\", \"last_name\": \"L%d\", "
                  "\"email\": \"p%d@example.com\"%s%s%s}",
                  i, i % 5, i, companies[i % 4] ? ", \"company\": \"" : "",
                  companies[i % 4] ? companies[i % 4] : "",
                  companies[i % 4] ? "\"" : "");
    made[i] = fh_create(fx, b);
    free(b);
  }
  uint64_t ids[64];
  /* id order by default, every limit from 1 to past the total. */
  for (unsigned limit = 1; limit <= 24; limit += 4) {
    size_t n = walk(fx, "{}", limit, ids, 64);
    assert_int_equal(n, 23);
    for (int i = 0; i < 23; i++)
      assert_true(ids[i] == made[i]);
  }
  /* A sort with ties and absent values: each met once, in the order. */
  size_t n = walk(fx,
                  "{\"sort\": [{\"field\": \"company\", \"order\": \"desc\"}, "
                  "{\"field\": \"last_name\"}]}",
                  3, ids, 64);
  assert_int_equal(n, 23);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      assert_true(ids[i] != ids[j]);
  /* The first page of the walk is the first of the whole list. */
  res_t *r = query_ok(fx, "{\"sort\": [{\"field\": \"company\", \"order\": "
                          "\"desc\"}, {\"field\": \"last_name\"}], "
                          "\"limit\": 23}");
  uint64_t whole[23];
  assert_int_equal(page_ids(r, whole, 23), 23);
  fh_free(r);
  assert_memory_equal(whole, ids, sizeof whole);
  /* Companies are absent on every 4th: those come last, under desc too. */
  n = walk(fx,
           "{\"filter\": {\"field\": \"email\", \"op\": \"suffix\", \"value\": "
           "\"example.com\"}, \"q\": \"p\", \"sort\": [{\"field\": "
           "\"relevance\"}, {\"field\": \"created_at\", \"order\": "
           "\"desc\"}]}",
           5, ids, 64);
  assert_int_equal(n, 23);
}

/* The cursor of the first page of body at limit 2. */
static char *first_cursor(fh_fixture *fx, const char *body) {
  char *b = fmt("%.*s%s\"limit\": 2}", (int)strlen(body) - 1, body,
                strlen(body) > 2 ? ", " : "");
  res_t *r = query_ok(fx, b);
  free(b);
  const char *next = str_at(fh_json(r), "next_cursor");
  assert_non_null(next);
  char *c = strdup(next);
  fh_free(r);
  return c;
}

static void test_query_cursor_belongs_to_its_query(void **state) {
  fh_fixture *fx = *state;
  for (int i = 0; i < 6; i++) {
    char *b = fmt("{\"first_name\": \"Jon%d\", \"email\": "
                  "\"jon%d@example.com\", \"company\": \"Acme\"}",
                  i, i);
    fh_create(fx, b);
    free(b);
  }
  static const char base[] =
      "{\"q\": \"acme\", \"filter\": {\"field\": \"company\", \"op\": "
      "\"eq\", \"value\": \"acme\"}, \"sort\": [{\"field\": \"first_name\"}]";
  char *body = fmt("%s}", base);
  char *cur = first_cursor(fx, body);
  /* The same query takes it, whatever its limit, fields and facets, and
   * whatever the order of its members. */
  static const char *const same[] = {
      ", \"limit\": 3",
      ", \"limit\": 1, \"fields\": [\"email\"]",
      ", \"facets\": [\"company\"], \"fuzzy\": \"off\"",
      ", \"sort\": null",
  };
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
    char *b = i == 3 ? fmt("{\"sort\": [{\"order\": \"asc\", \"field\": "
                           "\"first_name\"}], \"cursor\": \"%s\", \"filter\": "
                           "{\"value\": \"acme\", \"op\": \"eq\", \"field\": "
                           "\"company\"}, \"q\": \"acme\"}",
                           cur)
                     : fmt("%s%s, \"cursor\": \"%s\"}", base, same[i], cur);
    if (i == 3) {
      res_t *r = query_ok(fx, b);
      assert_int_equal(len_of(at(fh_json(r), "contacts")), 4);
      fh_free(r);
    } else {
      res_t *r = query_ok(fx, b);
      fh_free(r);
    }
    free(b);
  }
  /* Another q, filter (a value, an op, a field), fuzzy or sort: refused. */
  static const char *const other[] = {
      "{\"q\": \"acm\", \"filter\": {\"field\": \"company\", \"op\": \"eq\", "
      "\"value\": \"acme\"}, \"sort\": [{\"field\": \"first_name\"}]",
      "{\"filter\": {\"field\": \"company\", \"op\": \"eq\", \"value\": "
      "\"acme\"}, \"sort\": [{\"field\": \"first_name\"}]",
      "{\"q\": \"acme\", \"filter\": {\"field\": \"company\", \"op\": \"eq\", "
      "\"value\": \"Acme\"}, \"sort\": [{\"field\": \"first_name\"}]",
      "{\"q\": \"acme\", \"filter\": {\"field\": \"company\", \"op\": "
      "\"prefix\", \"value\": \"acme\"}, \"sort\": [{\"field\": "
      "\"first_name\"}]",
      "{\"q\": \"acme\", \"filter\": {\"field\": \"job_title\", \"op\": "
      "\"eq\", \"value\": \"acme\"}, \"sort\": [{\"field\": \"first_name\"}]",
      "{\"q\": \"acme\", \"filter\": {\"not\": {\"field\": \"company\", "
      "\"op\": \"neq\", \"value\": \"acme\"}}, \"sort\": [{\"field\": "
      "\"first_name\"}]",
      "{\"q\": \"acme\", \"sort\": [{\"field\": \"first_name\"}]",
      "{\"q\": \"acme\", \"filter\": {\"field\": \"company\", \"op\": \"eq\", "
      "\"value\": \"acme\"}, \"sort\": [{\"field\": \"first_name\"}], "
      "\"fuzzy\": \"auto\"",
      "{\"q\": \"acme\", \"filter\": {\"field\": \"company\", \"op\": \"eq\", "
      "\"value\": \"acme\"}, \"sort\": [{\"field\": \"first_name\", "
      "\"order\": \"desc\"}]",
      "{\"q\": \"acme\", \"filter\": {\"field\": \"company\", \"op\": \"eq\", "
      "\"value\": \"acme\"}, \"sort\": [{\"field\": \"last_name\"}]",
      "{\"q\": \"acme\", \"filter\": {\"field\": \"company\", \"op\": \"eq\", "
      "\"value\": \"acme\"}",
      "{\"q\": \"acme\", \"filter\": {\"field\": \"company\", \"op\": \"eq\", "
      "\"value\": \"acme\"}, \"sort\": [{\"field\": \"first_name\"}, "
      "{\"field\": \"id\"}]",
  };
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
    char *b = fmt("%s, \"cursor\": \"%s\"}", other[i], cur);
    query_fails(fx, b, "invalid_cursor", "cursor");
    free(b);
  }
  /* Garbled: every single character changed, cut short, made longer. */
  size_t len = strlen(cur);
  for (size_t i = 0; i < len; i++) {
    char *bad = strdup(cur);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    char *b = fmt("%s, \"cursor\": \"%s\"}", base, bad);
    query_fails(fx, b, "invalid_cursor", "cursor");
    free(b);
    bad[i] = '\0'; /* cut short (cut to nothing: the first page, below) */
    b = fmt("%s, \"cursor\": \"%s\"}", base, bad);
    if (i > 0) query_fails(fx, b, "invalid_cursor", "cursor");
    free(b);
    free(bad);
  }
  char *b = fmt("%s, \"cursor\": \"%sAA\"}", base, cur);
  query_fails(fx, b, "invalid_cursor", "cursor");
  free(b);
  b = fmt("%s, \"cursor\": \"%s=\"}", base, cur);
  query_fails(fx, b, "invalid_cursor", "cursor");
  free(b);
  /* A query's cursor is no search cursor, and a search's no query's. */
  char *q = fmt("searchby=company&search=acme&cursor=%s", cur);
  res_t *r = fh_call(fx, "GET", "/contacts", q, NULL);
  fh_assert_error(r, 400, "invalid_cursor", "cursor");
  fh_free(r);
  free(q);
  r = fh_call(fx, "GET", "/contacts", "searchby=company&search=acme&limit=2",
              NULL);
  const char *scur = str_at(fh_json(r), "next_cursor");
  assert_non_null(scur);
  b = fmt("{\"cursor\": \"%s\"}", scur);
  query_fails(fx, b, "invalid_cursor", "cursor");
  free(b);
  fh_free(r);
  /* An empty cursor is the first page. */
  r = query_ok(fx, "{\"cursor\": \"\", \"limit\": 2}");
  assert_int_equal(len_of(at(fh_json(r), "contacts")), 2);
  fh_free(r);
  free(cur);
  free(body);
}

/* A cursor is bound to its query's hash: the same position under another
 * query decodes as invalid_cursor even when made by ct_query_cursor. */
static void test_query_cursor_codec(void **state) {
  (void)state;
  ct_query a, b;
  parse_ok("{\"sort\": [{\"field\": \"company\"}, {\"field\": \"id\"}]}", &a);
  cs_qpos pos = {.nkeys = 2, .id = 10000000000000000042ull};
  pos.key[0] = (cs_qpos_key){.text = {"acme\0x", 6}};
  pos.key[1] = (cs_qpos_key){.num = 10000000000000000042ull};
  char *cur = ct_query_cursor(&a, &pos);
  assert_non_null(cur);
  ct_query_free(&a);
  char *body =
      fmt("{\"sort\": [{\"field\": \"company\"}, {\"field\": \"id\"}], "
          "\"cursor\": \"%s\"}",
          cur);
  parse_ok(body, &b);
  assert_non_null(b.q.after);
  assert_int_equal(b.q.after->nkeys, 2);
  assert_false(b.q.after->key[0].missing);
  assert_int_equal(b.q.after->key[0].text.len, 6);
  assert_memory_equal(b.q.after->key[0].text.ptr, "acme\0x", 6);
  assert_null(b.q.after->key[1].text.ptr);
  assert_true(b.q.after->key[1].num == 10000000000000000042ull);
  assert_true(b.q.after->id == 10000000000000000042ull);
  ct_query_free(&b);
  free(body);
  body = fmt("{\"sort\": [{\"field\": \"company\"}], \"cursor\": \"%s\"}", cur);
  assert_int_equal(ct_query_parse(&b, body, strlen(body)), -1);
  assert_string_equal(b.err.code, "invalid_cursor");
  assert_string_equal(b.err.field, "cursor");
  ct_query_free(&b);
  free(body);
  free(cur);
  /* A missing key without text. */
  parse_ok("{\"sort\": [{\"field\": \"job_title\", \"order\": \"desc\"}]}", &a);
  pos = (cs_qpos){.nkeys = 1, .id = CS_ID_MIN + 1};
  pos.key[0].missing = true;
  cur = ct_query_cursor(&a, &pos);
  ct_query_free(&a);
  body = fmt("{\"sort\": [{\"field\": \"job_title\", \"order\": \"desc\"}], "
             "\"cursor\": \"%s\"}",
             cur);
  parse_ok(body, &b);
  assert_true(b.q.after->key[0].missing);
  assert_null(b.q.after->key[0].text.ptr);
  assert_true(b.q.after->id == CS_ID_MIN + 1);
  ct_query_free(&b);
  free(body);
  free(cur);
}

/* base64url is libcrypto's, unpadded, canonical only; the search cursor
 * is what it always was. */
static void test_query_base64url(void **state) {
  (void)state;
  unsigned char raw[64] = {0}, back[64];
  char text[CT_B64URL_CHARS(64) + 1];
  for (size_t len = 0; len <= 64; len++) {
    for (size_t i = 0; i < len; i++)
      raw[i] = (unsigned char)(len * 31 + i * 251);
    size_t n = ct_b64url_encode(raw, len, text);
    assert_int_equal(n, CT_B64URL_CHARS(len));
    assert_int_equal(strlen(text), n);
    assert_null(strpbrk(text, "+/="));
    size_t got = 99;
    assert_int_equal(ct_b64url_decode(text, n, back, &got), 0);
    assert_int_equal(got, len);
    assert_memory_equal(back, raw, len);
  }
  size_t got;
  static const char *const bad[] = {"A",    "AB=",   "AB==", "A+B/", "AB C",
                                    "AB\n", "AAAAA", "AB",   "ABC"};
  /* "AB" and "ABC" carry set unused bits; "AA" and "AAE" do not. */
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(ct_b64url_decode(bad[i], strlen(bad[i]), back, &got), -1);
  assert_int_equal(ct_b64url_decode("AA", 2, back, &got), 0);
  assert_int_equal(got, 1);
  assert_int_equal(ct_b64url_decode("AAE", 3, back, &got), 0);
  assert_int_equal(got, 2);
  assert_int_equal(ct_b64url_decode("-_8", 3, back, &got), 0);
  assert_int_equal(back[0], 0xfb);
  assert_int_equal(back[1], 0xff);
  char cur[CT_CURSOR_CHARS + 1];
  ct_cursor_encode(CS_ID_MIN, cur);
  assert_string_equal(cur, "AYrHIwSJ6AAA");
  uint64_t id;
  assert_int_equal(ct_cursor_decode(cur, strlen(cur), &id), 0);
  assert_true(id == CS_ID_MIN);
  ct_cursor_encode(UINT64_MAX, cur);
  assert_string_equal(cur, "Af__________");
}

/* What a query with a bad body changes: nothing, and a read-only key may
 * query (the route needs a key, not a writable one). */
static void test_query_route_is_a_read(void **state) {
  fh_fixture *fx = *state;
  const cd_plugin *pl = &contactd_plugin;
  bool found = false;
  for (size_t i = 0; i < pl->route_count; i++)
    if (!strcmp(pl->routes[i].pattern, "/contacts/query")) {
      assert_string_equal(pl->routes[i].method, "POST");
      assert_int_equal(pl->routes[i].flags, CD_ROUTE_AUTH);
      found = true;
    }
  assert_true(found);
  fh_create(fx, "{\"first_name\": \"A\", \"email\": \"a@example.com\"}");
  query_fails(fx, "{\"filter\": {\"field\": \"email\"}}", "invalid_query",
              "filter.op");
  cs_stats s;
  cs_stats_get(fx->store, &s);
  assert_true(s.contacts == 1);
  res_t *r = query_ok(fx, "{\"q\": \"a\"}");
  assert_int_equal(int_at(fh_json(r), "total"), 1);
  fh_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      cmocka_unit_test(test_query_empty_body_lists_everything),
      cmocka_unit_test(test_query_body_becomes_the_engines_query),
      cmocka_unit_test(test_query_values_as_each_op_takes_them),
      cmocka_unit_test(test_query_cursor_codec),
      cmocka_unit_test(test_query_base64url),
      T(test_query_faults_name_their_path),
      T(test_query_depth_limit),
      T(test_query_conditions_limit),
      T(test_query_in_limit),
      T(test_query_sort_facets_limit_edges),
      T(test_query_words_and_suffix_limits),
      T(test_query_answer_shape),
      T(test_query_values_reach_the_engine),
      T(test_query_fields_on_every_read),
      T(test_query_search_match_suffix),
      T(test_query_cursor_walks_to_the_end),
      T(test_query_cursor_belongs_to_its_query),
      T(test_query_route_is_a_read),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
