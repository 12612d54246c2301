/*
 * ct_write.c: the single writes: POST /contacts (create, or edit with
 * contact_id), PATCH /contacts/{id}, DELETE /contacts and DELETE
 * /contacts/{id}.
 *
 * Each is handed to the store with a completion callback and answered from
 * it, on the store's commit thread, once the record is durable; the handler
 * returns CD_ASYNC and never waits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"

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
    w->st->host->respond(w->res, 200, ct_text_type, CT_DELETED,
                         sizeof CT_DELETED - 1);
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

void ct_contact_from(const ct_fields *f, cs_contact *c) {
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
int ct_handle_post(void *state, const cd_request *req,
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
int ct_handle_patch(void *state, const cd_request *req,
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
int ct_handle_delete_body(void *state, const cd_request *req,
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
int ct_handle_delete_id(void *state, const cd_request *req,
                               cd_response *res) {
  const ct_state *st = state;
  uint64_t id;
  if (!ct_path_id(req, &id)) return ct_send_not_found(st, res), CD_DONE;
  return ct_delete(st, req, res, id);
}

