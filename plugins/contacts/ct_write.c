/*
 * ct_write.c: the single writes: POST /contacts (create, or edit with
 * contact_id), PATCH /contacts/{id}, DELETE /contacts and DELETE
 * /contacts/{id} (with purge), POST /contacts/upsert and POST
 * /contacts/{id}/restore.
 *
 * Every one is a cs_write handed to cs_write_apply, with If-Match as its
 * condition and its idempotency key, when the request has one, as its
 * idempotency entry (ct_safe.c reads and reserves both first). Its answer
 * is rendered from the write's outcome by one function, ct_write_render:
 * the engine calls it while it holds the writer when the write carries a
 * key (the bytes are kept with the record, to be replayed), and the
 * handler calls it after cs_write_apply returns otherwise; the bytes sent
 * are those bytes either way.
 *
 * An accepted write answers once its record is durable, from the store's
 * completion callback, never before cs_write_apply has returned (the
 * outcome is the handler's to read then): a reference count of two, the
 * handler's and the callback's, and whoever drops the last one answers. A
 * refused write, and an upsert that changes nothing, answer at once and
 * give up the key's reservation.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"

/* What a write answers with on success. */
typedef enum ct_answer_kind {
  CT_ANSWER_ID,      /* {"id"} and an etag: create, edit, restore */
  CT_ANSWER_DELETED, /* the text of a delete, no etag */
  CT_ANSWER_UPSERT,  /* {"id", "result"} and an etag */
} ct_answer_kind;

/* One single write in flight: what its answer needs. */
typedef struct ct_write {
  const ct_state *st;
  cd_response *res;
  ct_answer_kind kind;
  const char *op;
  ct_safe safe;
  cs_idem idem;
  cs_outcome out;
  atomic_int refs; /* the handler's and the completion's */
  int rc;          /* the completion's code */
  bool rendered;
  cs_answer answer; /* its body is answer_buf's, or static text */
  char *answer_buf;
} ct_write;

const char *ct_result_word(cs_result r) {
  switch (r) {
  case CS_RESULT_CREATED:
    return "created";
  case CS_RESULT_UPDATED:
    return "updated";
  case CS_RESULT_UNCHANGED:
    return "unchanged";
  default:
    return "?";
  }
}

void ct_gen_upsert_result(yajl_gen g, const cs_outcome *o) {
  const char *word = ct_result_word(o->result);
  yajl_gen_map_open(g);
  ct_gen_str(g, "id", 2);
  ct_gen_id(g, o->id);
  ct_gen_str(g, "result", 6);
  ct_gen_str(g, word, strlen(word));
  yajl_gen_map_close(g);
}

/* Renders the answer of w's write from o into w->answer (once). When
 * memory runs out the answer is a 500 of static text. */
static void ct_write_render_into(ct_write *w, const cs_outcome *o) {
  static const char oom[] =
      "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";
  if (w->rendered) return;
  w->rendered = true;
  if (w->kind == CT_ANSWER_DELETED) {
    w->answer =
        (cs_answer){200, CS_ANSWER_TEXT, {CT_DELETED, sizeof CT_DELETED - 1}};
    return;
  }
  w->answer = (cs_answer){500, CS_ANSWER_JSON, {oom, sizeof oom - 1}};
  yajl_gen g = ct_gen_new();
  if (!g) return;
  if (w->kind == CT_ANSWER_UPSERT) {
    ct_gen_upsert_result(g, o);
  } else {
    yajl_gen_map_open(g);
    ct_gen_str(g, "id", 2);
    ct_gen_id(g, o->id);
    yajl_gen_map_close(g);
  }
  const unsigned char *buf;
  size_t len;
  if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok &&
      (w->answer_buf = malloc(len ? len : 1))) {
    memcpy(w->answer_buf, buf, len);
    w->answer = (cs_answer){200, CS_ANSWER_JSON, {w->answer_buf, len}};
  }
  yajl_gen_free(g);
}

/* cs_render_fn: the engine asks for the answer to keep with the key. */
static void ct_write_render(void *ctx, const cs_outcome *o, cs_answer *out) {
  ct_write *w = ctx;
  ct_write_render_into(w, o);
  *out = w->answer;
}

static void ct_write_free(ct_write *w) {
  free(w->answer_buf);
  free(w);
}

/* Sends the rendered answer, with the contact's etag when it is live. */
static void ct_write_send(ct_write *w) {
  if (w->kind != CT_ANSWER_DELETED && w->answer.status == 200) {
    char etag[CT_ETAG_BYTES];
    ct_etag_format(w->out.version, etag);
    w->st->host->header(w->res, "etag", etag);
  }
  if (w->answer.status == 200)
    ct_change_cursor_header(w->st, w->res, w->safe.store, w->out.seq);
  ct_send_answer(w->st, w->res, &w->answer, false);
}

/* Drops one reference; the last one answers and frees. */
static bool ct_write_release(ct_write *w) {
  if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
    return false;
  if (w->rc != 0)
    ct_send_rc(w->st, w->res, w->op, ct_commit_rc(w->st, w->rc), NULL);
  else
    ct_write_send(w);
  ct_write_free(w);
  return true;
}

static void ct_write_done(void *ctx, int rc, uint64_t id) {
  ct_write *w = ctx;
  (void)id; /* in the outcome */
  w->rc = rc;
  ct_write_release(w);
}

void ct_upsert_missing(const cs_patch *p, int rc, const cs_error *err,
                       ct_err *e) {
  if (rc != CS_EINVAL || !err || err->field < 0 ||
      !cs_field_required(err->field) || (p->set_mask & (1u << err->field)))
    return;
  const char *name = cs_field_name(err->field);
  ct_fail(e, 400, "missing_field", name, strlen(name),
          "%s: required to create a contact", name);
}

/* Sends the answer to a write cs_write_apply refused. */
static void ct_write_refused(ct_write *w, const cs_write *cw, int rc,
                             const cs_error *err) {
  ct_err e;
  const cd_store_error *m = ct_err_from_rc(w->st, w->res, w->op, rc, err, &e);
  if (cw->kind == CS_WRITE_UPSERT) ct_upsert_missing(cw->patch, rc, err, &e);
  /* A restore's contact is in the trash, not live: its 412 names no etag
   * (API.md), whatever version the engine reports. */
  if (cw->kind == CS_WRITE_RESTORE) e.version = 0;
  if (m->retry_after)
    w->st->host->header(w->res, "retry-after", m->retry_after);
  ct_change_cursor_header(w->st, w->res, w->safe.store, 0);
  ct_send_err(w->st, w->res, &e);
}

/*
 * Applies cw (its account, condition, key and callback set here) for the
 * request sf was read from; takes w (made by ct_write_new) in every case.
 * CD_ASYNC when the answer will come from the completion, CD_DONE when it
 * was sent.
 */
static int ct_write_apply(ct_write *w, cs_write *cw) {
  cw->account = w->safe.account;
  cw->if_match = w->safe.has_cond ? &w->safe.cond : NULL;
  cw->done = ct_write_done;
  cw->ctx = w;
  if (w->safe.has_key) {
    w->idem = (cs_idem){w->safe.key, w->safe.key_len, ct_write_render, w};
    cw->idem = &w->idem;
  }
  cs_error err = {0};
  int rc = cs_write_apply(w->safe.store, cw, &w->out, &err);
  if (rc != 0) {
    ct_safe_release(&w->safe);
    ct_write_refused(w, cw, rc, &err);
    ct_write_free(w);
    return CD_DONE;
  }
  ct_write_render_into(w, &w->out);
  if (w->out.result == CS_RESULT_UNCHANGED) {
    /* Nothing written, nothing to remember, no completion to wait for. */
    ct_safe_release(&w->safe);
    ct_write_send(w);
    ct_write_free(w);
    return CD_DONE;
  }
  return ct_write_release(w) ? CD_DONE : CD_ASYNC;
}

/* A write for the request, its safe-write headers read (and its key
 * reserved) by ct_safe_begin: NULL when it has answered (or out of memory,
 * answered too). */
static ct_write *ct_write_new(const ct_state *st, const cd_request *req,
                              cd_response *res, ct_answer_kind kind,
                              const char *op, unsigned safe_flags) {
  ct_write *w = calloc(1, sizeof *w);
  if (!w) return ct_send_oom(st, res), NULL;
  w->st = st;
  w->res = res;
  w->kind = kind;
  w->op = op;
  atomic_init(&w->refs, 2);
  if (ct_safe_begin(st, req, res, safe_flags, &w->safe)) {
    free(w);
    return NULL;
  }
  return w;
}

/* Refuses w's request with *e (giving up its key) and frees w. */
static int ct_write_refuse(ct_write *w, const ct_err *e) {
  ct_safe_refuse(w->st, w->res, &w->safe, e);
  ct_write_free(w);
  return CD_DONE;
}

/* Answers w's request as for a contact that cannot exist and frees w. */
static int ct_write_missing(ct_write *w) {
  ct_safe_missing(w->st, w->res, &w->safe);
  ct_write_free(w);
  return CD_DONE;
}

void ct_contact_from(const ct_fields *f, cs_contact *c) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < CS_FIELD_COUNT; i++)
    if (f->v.set_mask & (1u << i)) c->field[i] = f->v.field[i];
}

/* POST /contacts: a create, or an edit when the body names a contact. */
int ct_handle_post(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  ct_write *w =
      ct_write_new(st, req, res, CT_ANSWER_ID, "create", CT_SAFE_IF_MATCH);
  if (!w) return CD_DONE;
  ct_body b;
  int rc;
  if (ct_body_parse(&b, CT_BODY_POST, req->body, req->body_len)) {
    rc = ct_write_refuse(w, &b.err);
  } else if (!b.is_edit) {
    if (w->safe.has_cond) {
      /* A contact not made yet has no version to match. */
      rc = ct_write_missing(w);
    } else {
      cs_contact c;
      ct_contact_from(&b.top, &c);
      cs_write cw = {.kind = CS_WRITE_CREATE, .contact = &c};
      rc = ct_write_apply(w, &cw);
    }
  } else if (!b.id_ok) {
    rc = ct_write_missing(w);
  } else {
    w->op = "update";
    cs_patch p = b.upd.v; /* the engine trims it in place */
    cs_write cw = {.kind = CS_WRITE_UPDATE, .id = b.id, .patch = &p};
    rc = ct_write_apply(w, &cw);
  }
  ct_body_free(&b);
  return rc;
}

/* PATCH /contacts/{id}: the body is the fields object. */
int ct_handle_patch(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  ct_write *w =
      ct_write_new(st, req, res, CT_ANSWER_ID, "update", CT_SAFE_IF_MATCH);
  if (!w) return CD_DONE;
  uint64_t id;
  if (!ct_path_id(req, &id)) return ct_write_missing(w);
  ct_body b;
  int rc;
  if (ct_body_parse(&b, CT_BODY_PATCH, req->body, req->body_len)) {
    rc = ct_write_refuse(w, &b.err);
  } else {
    cs_patch p = b.upd.v;
    cs_write cw = {.kind = CS_WRITE_UPDATE, .id = id, .patch = &p};
    rc = ct_write_apply(w, &cw);
  }
  ct_body_free(&b);
  return rc;
}

static int ct_delete(ct_write *w, uint64_t id, bool purge) {
  w->op = purge ? "purge" : "delete";
  cs_write cw = {.kind = CS_WRITE_DELETE, .id = id, .purge = purge};
  return ct_write_apply(w, &cw);
}

/* DELETE /contacts with {"contact_id": ..., "purge"?: true}. */
int ct_handle_delete_body(void *state, const cd_request *req,
                          cd_response *res) {
  const ct_state *st = state;
  ct_write *w =
      ct_write_new(st, req, res, CT_ANSWER_DELETED, "delete", CT_SAFE_IF_MATCH);
  if (!w) return CD_DONE;
  ct_body b;
  int rc;
  if (ct_body_parse(&b, CT_BODY_DELETE, req->body, req->body_len))
    rc = ct_write_refuse(w, &b.err);
  else if (!b.id_ok)
    rc = ct_write_missing(w);
  else
    rc = ct_delete(w, b.id, b.purge);
  ct_body_free(&b);
  return rc;
}

/* The purge query parameter: absent, "true" or "false". 0, or -1 with *e. */
static int ct_purge_param(const cd_request *req, bool *purge, ct_err *e) {
  static const char name[] = "purge";
  bool seen = false;
  *purge = false;
  for (size_t i = 0; i < req->query_count; i++) {
    const cd_pair *q = &req->query[i];
    if (q->name_len != sizeof name - 1 || memcmp(q->name, name, q->name_len))
      continue;
    if (seen)
      return ct_fail(e, 400, "duplicate_field", name, sizeof name - 1,
                     "%s: given more than once", name);
    seen = true;
    if (q->value_len == 4 && !memcmp(q->value, "true", 4))
      *purge = true;
    else if (!(q->value_len == 5 && !memcmp(q->value, "false", 5)))
      return ct_fail(e, 400, "invalid_field", name, sizeof name - 1,
                     "%s: must be true or false", name);
  }
  return 0;
}

/* DELETE /contacts/{id}[?purge=true]; a body, if any, is not looked at. */
int ct_handle_delete_id(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  ct_write *w =
      ct_write_new(st, req, res, CT_ANSWER_DELETED, "delete", CT_SAFE_IF_MATCH);
  if (!w) return CD_DONE;
  ct_err e = {0};
  bool purge;
  if (ct_purge_param(req, &purge, &e)) return ct_write_refuse(w, &e);
  uint64_t id;
  if (!ct_path_id(req, &id)) return ct_write_missing(w);
  return ct_delete(w, id, purge);
}

/* POST /contacts/upsert: create or update the contact the email names. */
int ct_handle_upsert(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  ct_write *w =
      ct_write_new(st, req, res, CT_ANSWER_UPSERT, "upsert", CT_SAFE_IF_MATCH);
  if (!w) return CD_DONE;
  ct_body b;
  int rc;
  if (ct_body_parse(&b, CT_BODY_UPSERT, req->body, req->body_len)) {
    rc = ct_write_refuse(w, &b.err);
  } else {
    cs_patch p = b.upd.v;
    cs_write cw = {.kind = CS_WRITE_UPSERT, .patch = &p};
    rc = ct_write_apply(w, &cw);
  }
  ct_body_free(&b);
  return rc;
}

/* POST /contacts/{id}/restore: back from the trash; a body is not read. */
int ct_handle_restore(void *state, const cd_request *req, cd_response *res) {
  const ct_state *st = state;
  ct_write *w =
      ct_write_new(st, req, res, CT_ANSWER_ID, "restore", CT_SAFE_IF_MATCH);
  if (!w) return CD_DONE;
  uint64_t id;
  if (!ct_path_id(req, &id)) return ct_write_missing(w);
  cs_write cw = {.kind = CS_WRITE_RESTORE, .id = id};
  return ct_write_apply(w, &cw);
}
