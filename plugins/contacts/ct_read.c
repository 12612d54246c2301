/*
 * ct_read.c: the reads: GET /contacts/{id}, GET /contacts (search, from
 * the query string or a JSON body; the query string wins parameter by
 * parameter), POST /contacts/query and the trash. Reads answer before they
 * return. Each contact object shows the members fields= (or a query's
 * "fields") names, id always.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"

/* ---------------------------------------------------------------- reads */

/* GET /contacts/{id}, with its etag; If-None-Match naming the current
 * version (weakly, or "*") is 304 with no body. */
/* The fields= query parameter of req into *members (every member when
 * absent). 0, or -1 with *e (invalid_field, duplicate_field). */
static int ct_members_read(const cd_request *req, uint32_t *members,
                           ct_err *e) {
  const char *name = ct_param_name[CT_P_FIELDS];
  bool seen = false;
  *members = CT_MEMBERS_ALL;
  for (size_t i = 0; i < req->query_count; i++) {
    const cd_pair *qp = &req->query[i];
    if (qp->name_len != strlen(name) || memcmp(qp->name, name, qp->name_len))
      continue;
    if (seen)
      return ct_fail(e, 400, "duplicate_field", name, strlen(name),
                     "%s: given more than once", name);
    seen = true;
    if (ct_members_parse(qp->value ? qp->value : "", qp->value_len, members, e))
      return -1;
  }
  return 0;
}

int ct_handle_get(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  cs_cond none_match;
  bool conditional;
  ct_err e = {0};
  uint32_t members;
  if (ct_cond_read(req, "if-none-match", true, &conditional, &none_match, &e) ||
      ct_members_read(req, &members, &e))
    return ct_send_err(st, res, &e), CD_DONE;
  uint64_t id;
  if (!ct_path_id(req, &id)) return ct_send_not_found(st, res), CD_DONE;
  cs_contact c;
  cs_error err = {0};
  int rc = cs_get(ct_store(st, req), req->account, id, &c, &err);
  if (rc) return ct_send_rc(st, res, "get", rc, &err), CD_DONE;
  char etag[CT_ETAG_BYTES];
  ct_etag_format(c.version, etag);
  st->host->header(res, "etag", etag);
  if (conditional && ct_cond_names(&none_match, c.version)) {
    st->host->respond(res, 304, NULL, NULL, 0);
    return CD_DONE;
  }
  char stack[CT_JSON_STACK_BYTES];
  ct_json j;
  ct_json_init(&j, stack, sizeof stack);
  ct_json_contact(&j, &c, members);
  ct_send_json(st, res, &j);
  return CD_DONE;
}

static int ct_param_fail(ct_err *e, const char *code, int param,
                         const char *why) {
  const char *name = ct_param_name[param];
  return ct_fail(e, 400, code, name, strlen(name), "%s: %s", name, why);
}

/* Checks the merged search parameters into *q (term not yet set for an id
 * that cannot exist: *none is set instead). */
static int ct_search_query(const ct_state *st, const cs_str *prm,
                           const cd_request *req, cs_query *q, bool *none,
                           uint32_t *members, ct_err *e) {
  memset(q, 0, sizeof *q);
  *none = false;
  q->account = req->account;

  cs_str by = prm[CT_P_SEARCHBY];
  if (!by.ptr)
    return ct_fail(e, 400, "missing_field", "searchby", 8,
                   "searchby: required; one of %s", st->searchby_list);
  if (by.len == 2 && !memcmp(by.ptr, "id", 2))
    q->field = CS_SEARCH_BY_ID;
  else if ((q->field = cs_field_from_name(by.ptr, by.len)) < 0 ||
           !cs_field_table[q->field].searchable)
    return ct_fail(e, 400, "invalid_searchby", "searchby", 8,
                   "searchby: must be one of %s", st->searchby_list);

  cs_str term = prm[CT_P_SEARCH];
  if (!term.ptr)
    return ct_param_fail(e, "missing_field", CT_P_SEARCH, "required");
  if (cs_utf8_chars(term.ptr, term.len) < 0)
    return ct_param_fail(e, "invalid_field", CT_P_SEARCH,
                         "not valid UTF-8, or contains a NUL");
  cs_str trimmed = cs_trim(term);
  if (trimmed.len == 0)
    return ct_param_fail(e, "invalid_field", CT_P_SEARCH, "must not be empty");
  if (term.len > CS_SEARCH_TERM_MAX_BYTES)
    return ct_fail(e, 400, "invalid_field", "search", 6,
                   "search: longer than %d bytes", CS_SEARCH_TERM_MAX_BYTES);
  q->term = term.ptr;
  q->term_len = term.len;

  cs_str m = prm[CT_P_MATCH];
  q->match = CS_MATCH_DEFAULT;
  if (m.ptr) {
    static const struct {
      const char *word;
      cs_match match;
    } modes[] = {{"exact", CS_MATCH_EXACT},
                 {"prefix", CS_MATCH_PREFIX},
                 {"words", CS_MATCH_WORDS},
                 {"suffix", CS_MATCH_SUFFIX}};
    size_t count = sizeof modes / sizeof modes[0], i = 0;
    while (i < count && !(m.len == strlen(modes[i].word) &&
                          !memcmp(m.ptr, modes[i].word, m.len)))
      i++;
    if (i == count)
      return ct_param_fail(e, "invalid_field", CT_P_MATCH,
                           "must be exact, prefix, words or suffix");
    q->match = modes[i].match;
  }

  cs_str lim = prm[CT_P_LIMIT];
  q->limit = CS_PAGE_LIMIT_DEFAULT;
  if (lim.ptr && ct_parse_limit(lim.ptr, lim.len, &q->limit))
    return ct_fail(e, 400, "invalid_field", "limit", 5,
                   "limit: must be an integer from 1 to %d", CS_PAGE_LIMIT_MAX);

  cs_str cur = prm[CT_P_CURSOR];
  if (cur.ptr && cur.len && ct_cursor_decode(cur.ptr, cur.len, &q->after_id))
    return ct_param_fail(e, "invalid_cursor", CT_P_CURSOR,
                         "not a cursor this server handed out");

  cs_str fl = prm[CT_P_FIELDS];
  *members = CT_MEMBERS_ALL;
  if (fl.ptr && ct_members_parse(fl.ptr, fl.len, members, e)) return -1;

  if (q->field == CS_SEARCH_BY_ID &&
      (q->match == CS_MATCH_DEFAULT || q->match == CS_MATCH_EXACT)) {
    uint64_t id;
    /* A term that is no id matches nothing, like an id that is not there. */
    if (cs_id_parse(trimmed.ptr, trimmed.len, &id) != 0) *none = true;
    q->term = trimmed.ptr;
    q->term_len = trimmed.len;
  }
  return 0;
}

/* Sends a page of contacts with its next cursor (NULL: the last page). */
static void ct_send_page(const ct_state *st, cd_response *res,
                         const cs_page *page, uint32_t members,
                         const char *next_cursor) {
  char stack[CT_JSON_STACK_BYTES];
  ct_json j;
  ct_json_init(&j, stack, sizeof stack);
  ct_json_page(&j, page, members, next_cursor);
  ct_json_raw(&j, "}", 1);
  ct_send_json(st, res, &j);
}

/* GET /contacts: a search. */
int ct_handle_search(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  ct_body b;
  if (ct_body_parse(&b, CT_BODY_SEARCH, req->body, req->body_len)) {
    ct_send_err(st, res, &b.err);
    ct_body_free(&b);
    return CD_DONE;
  }
  /* The query string wins over the body, parameter by parameter. Unknown
   * query parameters are ignored, as web APIs do (cache busters, tracing). */
  cs_str prm[CT_P_COUNT];
  memcpy(prm, b.param, sizeof prm);
  bool in_query[CT_P_COUNT] = {false};
  ct_err e = {0};
  for (size_t i = 0; i < req->query_count && !e.status; i++) {
    const cd_pair *qp = &req->query[i];
    for (int k = 0; k < CT_P_COUNT; k++) {
      if (qp->name_len != strlen(ct_param_name[k]) ||
          memcmp(qp->name, ct_param_name[k], qp->name_len))
        continue;
      if (in_query[k])
        ct_param_fail(&e, "duplicate_field", k, "given more than once");
      in_query[k] = true;
      prm[k] = (cs_str){qp->value ? qp->value : "", qp->value_len};
    }
  }
  cs_query q;
  bool none = false;
  uint32_t members = CT_MEMBERS_ALL;
  if (!e.status) ct_search_query(st, prm, req, &q, &none, &members, &e);
  if (e.status) {
    ct_send_err(st, res, &e);
    ct_body_free(&b);
    return CD_DONE;
  }
  cs_page page = {0};
  if (!none) {
    cs_error err = {0};
    int rc = cs_search(ct_store(st, req), &q, &page, &err);
    /* A suffix the engine refuses names the field searched; when it names
     * none (searchby=id), the fault is the match asked for. */
    if (rc == CS_EINVAL && q.match == CS_MATCH_SUFFIX && err.field < 0)
      ct_param_fail(&e, "invalid_field", CT_P_MATCH, err.msg);
    if (e.status) {
      ct_send_err(st, res, &e);
    } else if (rc) {
      ct_send_rc(st, res, "search", rc, &err);
    }
    if (rc) {
      ct_body_free(&b);
      return CD_DONE;
    }
  }
  char cursor[CT_CURSOR_CHARS + 1];
  bool more = page.more && page.count > 0;
  if (more) ct_cursor_encode(page.contacts[page.count - 1].id, cursor);
  ct_send_page(st, res, &page, members, more ? cursor : NULL);
  if (!none) cs_page_free(&page);
  ct_body_free(&b);
  return CD_DONE;
}

/* The trash's query parameters: limit and cursor (others ignored, as in
 * search). 0, or -1 with *e. */
static int ct_trash_params(const cd_request *req, uint32_t *limit,
                           uint64_t *before, ct_err *e) {
  bool seen[CT_P_COUNT] = {false};
  *limit = CS_PAGE_LIMIT_DEFAULT;
  *before = 0;
  for (size_t i = 0; i < req->query_count; i++) {
    const cd_pair *qp = &req->query[i];
    int k = qp->name_len == 5 && !memcmp(qp->name, "limit", 5)    ? CT_P_LIMIT
            : qp->name_len == 6 && !memcmp(qp->name, "cursor", 6) ? CT_P_CURSOR
                                                                  : -1;
    if (k < 0) continue;
    if (seen[k])
      return ct_param_fail(e, "duplicate_field", k, "given more than once");
    seen[k] = true;
    const char *v = qp->value ? qp->value : "";
    if (k == CT_P_LIMIT && ct_parse_limit(v, qp->value_len, limit))
      return ct_fail(e, 400, "invalid_field", "limit", 5,
                     "limit: must be an integer from 1 to %d",
                     CS_PAGE_LIMIT_MAX);
    if (k == CT_P_CURSOR && qp->value_len &&
        ct_trash_cursor_decode(v, qp->value_len, before))
      return ct_param_fail(e, "invalid_cursor", k,
                           "not a cursor this server handed out");
  }
  return 0;
}

/* GET /contacts/trash: the trashed contacts, newest deletion first. */
int ct_handle_trash(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  uint32_t limit;
  uint64_t before, next = 0;
  ct_err e = {0};
  if (ct_trash_params(req, &limit, &before, &e))
    return ct_send_err(st, res, &e), CD_DONE;
  cs_page page = {0};
  cs_error err = {0};
  int rc = cs_trash_list(ct_store(st, req), req->account, before, limit, &page,
                         &next, &err);
  if (rc) return ct_send_rc(st, res, "trash", rc, &err), CD_DONE;
  char cursor[CT_CURSOR_CHARS + 1];
  bool more = page.more && next != 0;
  if (more) ct_trash_cursor_encode(next, cursor);
  ct_send_page(st, res, &page, CT_MEMBERS_ALL, more ? cursor : NULL);
  cs_page_free(&page);
  return CD_DONE;
}

/* ---------------------------------------------------------------- query */

/* Writes the facets member: {name: [{"value", "count"}, ...], ...}. A
 * field the query named twice is written once: a JSON object's names are
 * unique. */
static void ct_json_facets(ct_json *j, const cs_qresult *r) {
  ct_json_raw(j, ",\"facets\":{", 11);
  bool first = true;
  for (uint32_t i = 0; i < r->nfacets; i++) {
    const cs_facet *f = &r->facets[i];
    bool again = false;
    for (uint32_t k = 0; k < i; k++)
      again |= r->facets[k].field == f->field;
    if (again) continue;
    const char *name = cs_qfield_name(f->field);
    if (!first) ct_json_raw(j, ",", 1);
    first = false;
    ct_json_str(j, name, strlen(name));
    ct_json_raw(j, ":[", 2);
    for (uint32_t k = 0; k < f->count; k++) {
      ct_json_raw(j, k > 0 ? ",{\"value\":" : "{\"value\":", k > 0 ? 10 : 9);
      ct_json_str(j, f->values[k].value.ptr, f->values[k].value.len);
      ct_json_raw(j, ",\"count\":", 9);
      ct_json_u64(j, f->values[k].count);
      ct_json_raw(j, "}", 1);
    }
    ct_json_raw(j, "]", 1);
  }
  ct_json_raw(j, "}", 1);
}

/* Sends a query's answer: the page, facets when the query asked for any,
 * and as_of, the change feed's position the answer reflects, written as
 * its decimal log sequence (README: the feed takes it as its cursor). */
static void ct_send_query(const ct_state *st, cd_response *res,
                          const ct_query *cq, const cs_qresult *r) {
  char *cursor = NULL;
  if (r->page.more && r->page.count > 0 &&
      !(cursor = ct_query_cursor(cq, &r->next)))
    return ct_send_oom(st, res);
  char stack[CT_JSON_STACK_BYTES];
  ct_json j;
  ct_json_init(&j, stack, sizeof stack);
  ct_json_page(&j, &r->page, cq->members, cursor);
  if (cq->q.nfacets) ct_json_facets(&j, r);
  ct_json_raw(&j, ",\"as_of\":\"", 10);
  ct_json_u64(&j, r->as_of);
  ct_json_raw(&j, "\"}", 2);
  free(cursor);
  ct_send_json(st, res, &j);
}

/* POST /contacts/query. */
int ct_handle_query(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  ct_query cq;
  if (ct_query_parse(&cq, req->body, req->body_len)) {
    ct_send_err(st, res, &cq.err);
    ct_query_free(&cq);
    return CD_DONE;
  }
  cq.q.account = req->account;
  cs_qresult r = {0};
  cs_error err = {0};
  int rc = cs_query_run(ct_store(st, req), &cq.q, &r, &err);
  if (rc)
    ct_send_rc(st, res, "query", rc, &err);
  else
    ct_send_query(st, res, &cq, &r);
  if (!rc) cs_qresult_free(&r);
  ct_query_free(&cq);
  return CD_DONE;
}
