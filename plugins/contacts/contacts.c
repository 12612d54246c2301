/*
 * contacts.c: the contacts plugin, every /contacts route of API.md.
 *
 *   POST   /contacts        create, or edit when the body has contact_id
 *   POST   /contacts/batch  create up to CS_BATCH_MAX contacts, each on its own
 *   GET    /contacts        search (query string, or a JSON body; the query
 *                           string wins parameter by parameter)
 *   GET    /contacts/{id}   one contact
 *   PATCH  /contacts/{id}   edit with the fields object as the body
 *   DELETE /contacts        delete, the id in the body
 *   DELETE /contacts/{id}   delete
 *
 * Each handler rejects bad input before it touches the store. Reads answer
 * before they return. Writes are handed to the store with a completion
 * callback and answered from it, on the store's commit thread, once the
 * record is durable; the handler returns CD_ASYNC and never waits.
 *
 * Existence never leaks across accounts: every store call is made with the
 * caller's account, the store answers another account's id exactly like a
 * missing one, and an id that cannot exist (not 20 digits) is answered the
 * same way too.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"

typedef struct ct_state {
  const cd_host *host;
  cs_store *store;
  /* What searchby may be, from the engine's field table, for its error. */
  char searchby_list[CT_SEARCHBY_LIST_BYTES];
} ct_state;

static const char ct_json_type[] = "application/json";
static const char ct_text_type[] = "text/plain; charset=utf-8";
static const char ct_deleted[] = "Document deleted successfully";

/* ------------------------------------------------------------- answers */

/* Sends *e; a store failure's retry-after is ct_send_rc's to add. */
static void ct_send_err(const ct_state *st, cd_response *res, const ct_err *e) {
  st->host->error(res, e->status, e->code, e->msg,
                  e->field[0] ? e->field : NULL, e->id);
}

/* Sends what g holds as a 200 JSON answer and frees g. */
static void ct_send_gen(const ct_state *st, cd_response *res, yajl_gen g) {
  const unsigned char *buf;
  size_t len;
  if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
    st->host->log(st->host->ctx, res, CD_LOG_ERROR,
                  "contacts: generating JSON failed");
    st->host->error(res, 500, "internal", "internal error", NULL, 0);
  } else {
    st->host->respond(res, 200, ct_json_type, (const char *)buf, len);
  }
  yajl_gen_free(g);
}

static void ct_send_oom(const ct_state *st, cd_response *res) {
  st->host->log(st->host->ctx, res, CD_LOG_ERROR, "contacts: out of memory");
  st->host->error(res, 500, "internal", "internal error", NULL, 0);
}

static void ct_send_id(const ct_state *st, cd_response *res, uint64_t id) {
  yajl_gen g = ct_gen_new();
  if (!g) return ct_send_oom(st, res);
  yajl_gen_map_open(g);
  ct_gen_str(g, "id", 2);
  ct_gen_id(g, id);
  yajl_gen_map_close(g);
  ct_send_gen(st, res, g);
}

static void ct_send_not_found(const ct_state *st, cd_response *res) {
  st->host->error(res, 404, "not_found", "no such contact", NULL, 0);
}

/*
 * Turns a store failure into the API's answer in *e, as the host's table
 * (host->store_error) says, and returns that row. The failures that are not
 * the client's fault are logged with what a person needs (err->msg may name
 * files; it goes to the log, never to the client). err may be NULL.
 */
static const cd_store_error *ct_err_from_rc(const ct_state *st,
                                            cd_response *res, const char *op,
                                            int rc, const cs_error *err,
                                            ct_err *e) {
  const cd_store_error *m = st->host->store_error(rc);
  const char *detail = err && err->msg[0] ? err->msg : cs_strerror(rc);
  if (m->log_level != CD_LOG_NONE) {
    char line[768];
    snprintf(line, sizeof line, "contacts: %s failed: %s (%s): %s", op,
             cs_strcode(rc), cs_strerror(rc), detail);
    st->host->log(st->host->ctx, res, m->log_level, line);
  }
  if (rc == CS_EINVAL) {
    /* The engine's detail says what is wrong with which field. */
    int field = err ? err->field : -1;
    const char *name = field >= 0 ? cs_field_name(field) : NULL;
    ct_fail(e, m->status, m->code, name, name ? strlen(name) : 0, "%s", detail);
  } else if (rc == CS_EDUPLICATE) {
    ct_fail(e, m->status, m->code, "email", 5, "%s", m->message);
    e->id = err ? err->id : 0;
  } else {
    ct_fail(e, m->status, m->code, NULL, 0, "%s", m->message);
  }
  return m;
}

static void ct_send_rc(const ct_state *st, cd_response *res, const char *op,
                       int rc, const cs_error *err) {
  ct_err e;
  const cd_store_error *m = ct_err_from_rc(st, res, op, rc, err, &e);
  if (m->retry_after) st->host->header(res, "retry-after", m->retry_after);
  ct_send_err(st, res, &e);
}

/*
 * The code to answer a write the store accepted and then could not commit
 * with: whatever went wrong, the store now refuses writes, so the answer is
 * the failed store's unless the table already answers rc that way (rc is
 * kept then, for the log).
 */
static int ct_commit_rc(const ct_state *st, int rc) {
  int failed_status = st->host->store_error(CS_EFAILED)->status;
  return st->host->store_error(rc)->status == failed_status ? rc : CS_EFAILED;
}

/* The {id} path parameter as an id; false when it cannot be one. */
static bool ct_path_id(const cd_request *req, uint64_t *id) {
  for (size_t i = 0; i < req->param_count; i++) {
    const cd_pair *pr = &req->params[i];
    if (pr->name_len == 2 && !memcmp(pr->name, "id", 2))
      return cs_id_parse(pr->value, pr->value_len, id) == 0;
  }
  return false;
}

static cs_store *ct_store(const ct_state *st, const cd_request *req) {
  return req->store ? req->store : st->store;
}

/* --------------------------------------------------------------- writes */

typedef enum ct_write_kind { CT_WRITE_ID, CT_WRITE_DELETE } ct_write_kind;

/* One pending single write: what its completion needs to answer. */
typedef struct ct_write {
  const ct_state *st;
  cd_response *res;
  ct_write_kind kind;
  const char *op;
} ct_write;

static void ct_write_done(void *ctx, int rc, uint64_t id) {
  ct_write *w = ctx;
  if (rc != 0)
    ct_send_rc(w->st, w->res, w->op, ct_commit_rc(w->st, rc), NULL);
  else if (w->kind == CT_WRITE_DELETE)
    w->st->host->respond(w->res, 200, ct_text_type, ct_deleted,
                         sizeof ct_deleted - 1);
  else
    ct_send_id(w->st, w->res, id);
  free(w);
}

static ct_write *ct_write_new(const ct_state *st, cd_response *res,
                              ct_write_kind kind, const char *op) {
  ct_write *w = malloc(sizeof *w);
  if (w) *w = (ct_write){st, res, kind, op};
  return w;
}

/* After a write call: CD_ASYNC when accepted, or the answer sent now. */
static int ct_write_started(const ct_state *st, cd_response *res, ct_write *w,
                            int rc, const cs_error *err) {
  if (rc == 0) return CD_ASYNC; /* w belongs to ct_write_done now */
  const char *op = w->op;
  free(w);
  ct_send_rc(st, res, op, rc, err);
  return CD_DONE;
}

static void ct_contact_from(const ct_fields *f, cs_contact *c) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < CS_FIELD_COUNT; i++)
    if (f->v.set_mask & (1u << i)) c->field[i] = f->v.field[i];
}

static int ct_create(const ct_state *st, const cd_request *req,
                     cd_response *res, const ct_fields *f) {
  cs_contact c;
  ct_contact_from(f, &c);
  ct_write *w = ct_write_new(st, res, CT_WRITE_ID, "create");
  if (!w) return ct_send_oom(st, res), CD_DONE;
  cs_error err = {0};
  uint64_t id = 0;
  int rc = cs_create(ct_store(st, req), req->account, &c, ct_write_done, w, &id,
                     &err);
  return ct_write_started(st, res, w, rc, &err);
}

static int ct_update(const ct_state *st, const cd_request *req,
                     cd_response *res, uint64_t id, const ct_fields *f) {
  cs_patch p = f->v; /* cs_update takes a patch it may change */
  ct_write *w = ct_write_new(st, res, CT_WRITE_ID, "update");
  if (!w) return ct_send_oom(st, res), CD_DONE;
  cs_error err = {0};
  int rc = cs_update(ct_store(st, req), req->account, id, &p, ct_write_done, w,
                     &err);
  return ct_write_started(st, res, w, rc, &err);
}

static int ct_delete(const ct_state *st, const cd_request *req,
                     cd_response *res, uint64_t id) {
  ct_write *w = ct_write_new(st, res, CT_WRITE_DELETE, "delete");
  if (!w) return ct_send_oom(st, res), CD_DONE;
  cs_error err = {0};
  int rc =
      cs_delete(ct_store(st, req), req->account, id, ct_write_done, w, &err);
  return ct_write_started(st, res, w, rc, &err);
}

/* POST /contacts: a create, or an edit when the body names a contact. */
static int ct_handle_post(void *state, const cd_request *req,
                          cd_response *res) {
  const ct_state *st = state;
  ct_body b;
  int rc = CD_DONE;
  if (ct_body_parse(&b, CT_BODY_POST, req->body, req->body_len))
    ct_send_err(st, res, &b.err);
  else if (!b.is_edit)
    rc = ct_create(st, req, res, &b.top);
  else if (!b.id_ok)
    ct_send_not_found(st, res);
  else
    rc = ct_update(st, req, res, b.id, &b.upd);
  ct_body_free(&b);
  return rc;
}

/* PATCH /contacts/{id}: the body is the fields object. */
static int ct_handle_patch(void *state, const cd_request *req,
                           cd_response *res) {
  const ct_state *st = state;
  uint64_t id;
  if (!ct_path_id(req, &id)) return ct_send_not_found(st, res), CD_DONE;
  ct_body b;
  int rc = CD_DONE;
  if (ct_body_parse(&b, CT_BODY_PATCH, req->body, req->body_len))
    ct_send_err(st, res, &b.err);
  else
    rc = ct_update(st, req, res, id, &b.upd);
  ct_body_free(&b);
  return rc;
}

/* DELETE /contacts with {"contact_id": ...}. */
static int ct_handle_delete_body(void *state, const cd_request *req,
                                 cd_response *res) {
  const ct_state *st = state;
  ct_body b;
  int rc = CD_DONE;
  if (ct_body_parse(&b, CT_BODY_DELETE, req->body, req->body_len))
    ct_send_err(st, res, &b.err);
  else if (!b.id_ok)
    ct_send_not_found(st, res);
  else
    rc = ct_delete(st, req, res, b.id);
  ct_body_free(&b);
  return rc;
}

/* DELETE /contacts/{id}; a body, if any, is not looked at. */
static int ct_handle_delete_id(void *state, const cd_request *req,
                               cd_response *res) {
  const ct_state *st = state;
  uint64_t id;
  if (!ct_path_id(req, &id)) return ct_send_not_found(st, res), CD_DONE;
  return ct_delete(st, req, res, id);
}

/* ---------------------------------------------------------------- batch */

struct ct_batch;

typedef struct ct_batch_item {
  struct ct_batch *batch;
  uint64_t id;
  ct_err err; /* status 0: created with id */
} ct_batch_item;

/*
 * A batch answers once every accepted item's commit has completed. pending
 * counts the commits outstanding plus one for the handler while it is still
 * submitting; whoever brings it to zero answers.
 */
typedef struct ct_batch {
  const ct_state *st;
  cd_response *res;
  atomic_size_t pending;
  size_t count;
  ct_batch_item items[];
} ct_batch;

static void ct_batch_answer(ct_batch *bt) {
  yajl_gen g = ct_gen_new();
  if (!g) {
    ct_send_oom(bt->st, bt->res);
  } else {
    yajl_gen_map_open(g);
    ct_gen_str(g, "results", 7);
    yajl_gen_array_open(g);
    for (size_t i = 0; i < bt->count; i++) {
      const ct_batch_item *it = &bt->items[i];
      if (it->err.status) {
        ct_gen_error(g, &it->err);
      } else {
        yajl_gen_map_open(g);
        ct_gen_str(g, "id", 2);
        ct_gen_id(g, it->id);
        yajl_gen_map_close(g);
      }
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    ct_send_gen(bt->st, bt->res, g);
  }
  free(bt);
}

/* Drops one reference; true when it was the last (and answered). */
static bool ct_batch_release(ct_batch *bt) {
  if (atomic_fetch_sub_explicit(&bt->pending, 1, memory_order_acq_rel) != 1)
    return false;
  ct_batch_answer(bt);
  return true;
}

static void ct_batch_done(void *ctx, int rc, uint64_t id) {
  ct_batch_item *it = ctx;
  ct_batch *bt = it->batch;
  (void)id; /* known since cs_create returned */
  if (rc != 0)
    ct_err_from_rc(bt->st, bt->res, "batch create", ct_commit_rc(bt->st, rc),
                   NULL, &it->err);
  ct_batch_release(bt);
}

static int ct_handle_batch(void *state, const cd_request *req,
                           cd_response *res) {
  const ct_state *st = state;
  ct_body b;
  if (ct_body_parse(&b, CT_BODY_BATCH, req->body, req->body_len)) {
    ct_send_err(st, res, &b.err);
    ct_body_free(&b);
    return CD_DONE;
  }
  ct_batch *bt = calloc(1, sizeof *bt + b.item_count * sizeof bt->items[0]);
  if (!bt) {
    ct_body_free(&b);
    return ct_send_oom(st, res), CD_DONE;
  }
  bt->st = st;
  bt->res = res;
  bt->count = b.item_count;
  atomic_init(&bt->pending, 1);
  for (size_t i = 0; i < b.item_count; i++) {
    ct_batch_item *it = &bt->items[i];
    it->batch = bt;
    if (b.items[i].err.status) {
      it->err = b.items[i].err;
      continue;
    }
    cs_contact c;
    ct_contact_from(&b.items[i], &c);
    cs_error err = {0};
    uint64_t id = 0;
    atomic_fetch_add_explicit(&bt->pending, 1, memory_order_relaxed);
    int rc = cs_create(ct_store(st, req), req->account, &c, ct_batch_done, it,
                       &id, &err);
    if (rc == 0) {
      it->id = id;
    } else {
      /* Never the last reference: the handler still holds its own. */
      atomic_fetch_sub_explicit(&bt->pending, 1, memory_order_relaxed);
      ct_err_from_rc(st, res, "batch create", rc, &err, &it->err);
    }
  }
  ct_body_free(&b);
  return ct_batch_release(bt) ? CD_DONE : CD_ASYNC;
}

/* ---------------------------------------------------------------- reads */

static int ct_handle_get(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  uint64_t id;
  if (!ct_path_id(req, &id)) return ct_send_not_found(st, res), CD_DONE;
  cs_contact c;
  cs_error err = {0};
  int rc = cs_get(ct_store(st, req), req->account, id, &c, &err);
  if (rc) return ct_send_rc(st, res, "get", rc, &err), CD_DONE;
  yajl_gen g = ct_gen_new();
  if (!g) return ct_send_oom(st, res), CD_DONE;
  ct_gen_contact(g, &c);
  ct_send_gen(st, res, g);
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
                           ct_err *e) {
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
                 {"words", CS_MATCH_WORDS}};
    size_t i = 0;
    while (i < 3 && !(m.len == strlen(modes[i].word) &&
                      !memcmp(m.ptr, modes[i].word, m.len)))
      i++;
    if (i == 3)
      return ct_param_fail(e, "invalid_field", CT_P_MATCH,
                           "must be exact, prefix or words");
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

static void ct_send_page(const ct_state *st, cd_response *res,
                         const cs_page *page) {
  yajl_gen g = ct_gen_new();
  if (!g) return ct_send_oom(st, res);
  yajl_gen_map_open(g);
  ct_gen_str(g, "contacts", 8);
  yajl_gen_array_open(g);
  for (uint32_t i = 0; i < page->count; i++)
    ct_gen_contact(g, &page->contacts[i]);
  yajl_gen_array_close(g);
  ct_gen_str(g, "count", 5);
  yajl_gen_integer(g, page->count);
  ct_gen_str(g, "total", 5);
  yajl_gen_integer(g, (long long)page->total);
  ct_gen_str(g, "next_cursor", 11);
  if (page->more && page->count > 0) {
    char cursor[CT_CURSOR_CHARS + 1];
    ct_cursor_encode(page->contacts[page->count - 1].id, cursor);
    ct_gen_str(g, cursor, CT_CURSOR_CHARS);
  } else {
    yajl_gen_null(g);
  }
  yajl_gen_map_close(g);
  ct_send_gen(st, res, g);
}

/* GET /contacts: a search. */
static int ct_handle_search(void *state, const cd_request *req,
                            cd_response *res) {
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
  if (!e.status) ct_search_query(st, prm, req, &q, &none, &e);
  if (e.status) {
    ct_send_err(st, res, &e);
    ct_body_free(&b);
    return CD_DONE;
  }
  cs_page page = {0};
  if (!none) {
    cs_error err = {0};
    int rc = cs_search(ct_store(st, req), &q, &page, &err);
    if (rc) {
      ct_send_rc(st, res, "search", rc, &err);
      ct_body_free(&b);
      return CD_DONE;
    }
  }
  ct_send_page(st, res, &page);
  if (!none) cs_page_free(&page);
  ct_body_free(&b);
  return CD_DONE;
}

/* --------------------------------------------------------------- plugin */

static int ct_create_state(const cd_host *host, cs_store *store,
                           void **state_out, char *errbuf, size_t errlen) {
  ct_state *st = malloc(sizeof *st);
  if (!st) {
    snprintf(errbuf, errlen, "contacts: out of memory");
    return -1;
  }
  st->host = host;
  st->store = store;
  if (ct_searchby_names(st->searchby_list, sizeof st->searchby_list) >=
      sizeof st->searchby_list) {
    snprintf(errbuf, errlen, "contacts: the searchby list outgrew its room");
    free(st);
    return -1;
  }
  *state_out = st;
  return 0;
}

static void ct_destroy_state(void *state) {
  free(state);
}

#define CT_READ CD_ROUTE_AUTH
#define CT_WRITE (CD_ROUTE_AUTH | CD_ROUTE_WRITE)

static const cd_route ct_routes[] = {
    {"POST", "/contacts", CT_WRITE, ct_handle_post},
    {"POST", "/contacts/batch", CT_WRITE, ct_handle_batch},
    {"GET", "/contacts", CT_READ, ct_handle_search},
    {"GET", "/contacts/{id}", CT_READ, ct_handle_get},
    {"PATCH", "/contacts/{id}", CT_WRITE, ct_handle_patch},
    {"DELETE", "/contacts", CT_WRITE, ct_handle_delete_body},
    {"DELETE", "/contacts/{id}", CT_WRITE, ct_handle_delete_id},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "contacts",
    .create = ct_create_state,
    .destroy = ct_destroy_state,
    .routes = ct_routes,
    .route_count = sizeof ct_routes / sizeof ct_routes[0],
};
