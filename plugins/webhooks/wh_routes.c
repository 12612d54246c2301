/*
 * wh_routes.c: the webhooks API's routes (API.md "Webhooks").
 *
 * Every route works on the caller's account only: another account's
 * webhook answers 404 not_found exactly as one that does not exist, and an
 * id that cannot be one is answered the same way. Each handler refuses bad
 * input before it changes anything; a change (create, delete, enable) is
 * answered only once the side file holding it is on disk (wh_save), so an
 * answered create survives a crash, and a failed write changes nothing.
 * The handlers do memory work and one file write; the network is the
 * delivery thread's alone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wh.h"

static const char wh_json_type[] = "application/json";

static void wh_send_gen(wh_ctx *c, cd_response *res, yajl_gen g) {
  const unsigned char *buf;
  size_t len;
  if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
    c->host->respond(res, 200, wh_json_type, (const char *)buf, len);
  } else {
    c->host->log(c->host->ctx, res, CD_LOG_ERROR,
                 "webhooks: generating JSON failed");
    c->host->error(res, 500, "internal", "internal error", NULL, 0);
  }
  yajl_gen_free(g);
}

static void wh_send_oom(wh_ctx *c, cd_response *res) {
  c->host->log(c->host->ctx, res, CD_LOG_ERROR, "webhooks: out of memory");
  c->host->error(res, 500, "internal", "internal error", NULL, 0);
}

static void wh_send_not_found(wh_ctx *c, cd_response *res) {
  c->host->error(res, 404, "not_found", "no such webhook", NULL, 0);
}

/* Answers what wh_save returned when it was not 0. */
static void wh_send_save_rc(wh_ctx *c, cd_response *res, const char *op, int rc,
                            const cs_error *err) {
  char msg[160];
  switch (rc) {
  case WH_ENOTFOUND:
    wh_send_not_found(c, res);
    return;
  case WH_EACCOUNT_FULL:
    snprintf(msg, sizeof(msg),
             "an account has at most %d webhooks; delete one first",
             WH_PER_ACCOUNT_MAX);
    c->host->error(res, 400, "too_many_webhooks", msg, NULL, 0);
    return;
  case WH_ESERVER_FULL:
    snprintf(msg, sizeof(msg), "this server keeps at most %d webhooks",
             WH_TOTAL_MAX);
    c->host->error(res, 400, "too_many_webhooks", msg, NULL, 0);
    return;
  }
  /* The store's failure, as every plugin answers one; CS_EINVAL from the
   * side file's write would be this plugin's fault, not the client's. */
  int as = rc == CS_EINVAL || rc == -ENOMEM ? CS_ECORRUPT : rc;
  const cd_store_error *m = c->host->store_error(as);
  char line[768];
  snprintf(line, sizeof(line), "webhooks: %s: writing %s failed: %s (%s): %s",
           op, WH_SIDE_FILE, cs_strcode(rc), cs_strerror(rc),
           err->msg[0] ? err->msg : cs_strerror(rc));
  c->host->log(c->host->ctx, res,
               m->log_level != CD_LOG_NONE ? m->log_level : CD_LOG_ERROR, line);
  if (m->retry_after) c->host->header(res, "retry-after", m->retry_after);
  c->host->error(res, m->status, m->code, m->message, NULL, 0);
}

/* The {id} path parameter, NUL-terminated into id; false when it cannot be
 * an id (then no webhook has it). */
static bool wh_path_id(const cd_request *req, char id[WH_ID_BYTES + 1]) {
  for (size_t i = 0; i < req->param_count; i++) {
    const cd_pair *p = &req->params[i];
    if (p->name_len != 2 || memcmp(p->name, "id", 2) != 0) continue;
    if (!wh_id_valid(p->value, p->value_len)) return false;
    memcpy(id, p->value, p->value_len);
    id[p->value_len] = '\0';
    return true;
  }
  return false;
}

int wh_handle_create(void *state, const cd_request *req, cd_response *res) {
  wh_ctx *c = state;
  wh_rec r;
  ct_err e;
  memset(&r, 0, sizeof(r));
  if (wh_body_parse(req->body, req->body_len, c->allow, c->allow_count, r.url,
                    &r.types, &e) != 0) {
    c->host->error(res, e.status, e.code, e.msg, e.field[0] ? e.field : NULL,
                   0);
    return CD_DONE;
  }
  if (wh_id_new(r.id) != 0 || wh_secret_new(r.secret) != 0) {
    c->host->log(c->host->ctx, res, CD_LOG_ERROR,
                 "webhooks: the random source failed");
    c->host->error(res, 500, "internal", "internal error", NULL, 0);
    return CD_DONE;
  }
  r.account = req->account;
  r.created_ms = wh_now_ms();
  /* It receives the changes committed after it was created. */
  r.position = cs_changes_end(c->store);
  r.state = WH_ACTIVE;
  wh_edit edit = {.add = &r};
  cs_error err = {0};
  int rc = wh_save(c, &edit, &err);
  if (rc != 0) {
    wh_send_save_rc(c, res, "create", rc, &err);
    return CD_DONE;
  }
  wh_deliver_wake(c);
  yajl_gen g = ct_gen_new();
  if (g == NULL) {
    wh_send_oom(c, res);
    return CD_DONE;
  }
  wh_gen_id(g, r.id, r.secret);
  wh_send_gen(c, res, g);
  return CD_DONE;
}

int wh_handle_list(void *state, const cd_request *req, cd_response *res) {
  wh_ctx *c = state;
  yajl_gen g = ct_gen_new();
  if (g == NULL) {
    wh_send_oom(c, res);
    return CD_DONE;
  }
  yajl_gen_map_open(g);
  ct_gen_str(g, "webhooks", 8);
  yajl_gen_array_open(g);
  pthread_mutex_lock(&c->mu);
  for (const wh_hook *h = c->head; h != NULL; h = h->next)
    if (!h->removed && h->rec.account == req->account) wh_gen_hook(g, &h->rec);
  pthread_mutex_unlock(&c->mu);
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  wh_send_gen(c, res, g);
  return CD_DONE;
}

/* Delete and enable: the same shape, one edit of one webhook. */
static int wh_handle_edit(wh_ctx *c, const cd_request *req, cd_response *res,
                          bool enable) {
  char id[WH_ID_BYTES + 1];
  if (!wh_path_id(req, id)) {
    wh_send_not_found(c, res);
    return CD_DONE;
  }
  wh_edit edit = {.account = req->account};
  if (enable)
    edit.enable_id = id;
  else
    edit.remove_id = id;
  cs_error err = {0};
  int rc = wh_save(c, &edit, &err);
  if (rc != 0) {
    wh_send_save_rc(c, res, enable ? "enable" : "delete", rc, &err);
    return CD_DONE;
  }
  wh_deliver_wake(c);
  yajl_gen g = ct_gen_new();
  if (g == NULL) {
    wh_send_oom(c, res);
    return CD_DONE;
  }
  wh_gen_id(g, id, NULL);
  wh_send_gen(c, res, g);
  return CD_DONE;
}

int wh_handle_delete(void *state, const cd_request *req, cd_response *res) {
  return wh_handle_edit(state, req, res, false);
}

int wh_handle_enable(void *state, const cd_request *req, cd_response *res) {
  return wh_handle_edit(state, req, res, true);
}
