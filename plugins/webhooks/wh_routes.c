/*
 * wh_routes.c: the webhooks API's routes (API.md "Webhooks").
 *
 * Every route works on the caller's account only: another account's
 * webhook answers 404 not_found exactly as one that does not exist, and an
 * id that cannot be one is answered the same way. Each handler refuses bad
 * input before it changes anything; a change (create, delete, enable) is
 * answered only once the side file holding it is on disk (wh_save), so an
 * answered create survives a crash, and a failed write changes nothing.
 * That write syncs the disk, which a worker thread never waits for: the
 * handler queues it as a job for the delivery thread and returns
 * CD_ASYNC, and the thread writes and answers (wh_jobs_run). Once the
 * plugin drains, jobs run on the caller's thread. The handlers themselves
 * do memory work only; the network is the delivery thread's alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ------------------------------------------------------------- jobs */

/* One change to the side file waiting for the delivery thread: the edit,
 * what it points to, and the answer to give once it is on disk. */
struct wh_job {
  struct wh_job *next;
  wh_edit edit;
  wh_rec rec;               /* a create's new webhook */
  char id[WH_ID_BYTES + 1]; /* a delete's or an enable's */
  cd_response *res;
};

/* Writes the job's edit and answers its request; frees the job. */
static void wh_job_run(wh_ctx *c, struct wh_job *j) {
  cs_error err = {0};
  const char *op = j->edit.add         ? "create"
                   : j->edit.enable_id ? "enable"
                                       : "delete";
  int rc = wh_save(c, &j->edit, &err);
  if (rc != 0) {
    wh_send_save_rc(c, j->res, op, rc, &err);
  } else {
    yajl_gen g = ct_gen_new();
    if (g == NULL) {
      wh_send_oom(c, j->res);
    } else {
      if (j->edit.add)
        wh_gen_id(g, j->rec.id, j->rec.secret);
      else
        wh_gen_id(g, j->id, NULL);
      wh_send_gen(c, j->res, g);
    }
  }
  free(j);
}

void wh_jobs_run(wh_ctx *c) {
  pthread_mutex_lock(&c->mu);
  struct wh_job *j = c->jobs;
  c->jobs = NULL;
  c->jobs_tail = &c->jobs;
  pthread_mutex_unlock(&c->mu);
  while (j != NULL) {
    struct wh_job *next = j->next;
    wh_job_run(c, j);
    j = next;
  }
}

/* Hands a job to the delivery thread (the write syncs the disk, which a
 * worker never waits for) and answers CD_ASYNC; once the plugin is
 * draining, runs it here instead. */
static int wh_submit(wh_ctx *c, struct wh_job *j) {
  pthread_mutex_lock(&c->mu);
  bool queued = c->accepting;
  if (queued) {
    *c->jobs_tail = j;
    c->jobs_tail = &j->next;
  }
  pthread_mutex_unlock(&c->mu);
  if (!queued) {
    wh_job_run(c, j);
    return CD_DONE;
  }
  wh_deliver_wake(c);
  return CD_ASYNC;
}

/* ----------------------------------------------------------- handlers */

int wh_handle_create(void *state, const cd_request *req, cd_response *res) {
  wh_ctx *c = state;
  struct wh_job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    wh_send_oom(c, res);
    return CD_DONE;
  }
  wh_rec *r = &j->rec;
  ct_err e;
  if (wh_body_parse(req->body, req->body_len, c->allow, c->allow_count, r->url,
                    &r->types, &e) != 0) {
    free(j);
    c->host->error(res, e.status, e.code, e.msg, e.field[0] ? e.field : NULL,
                   0);
    return CD_DONE;
  }
  if (wh_id_new(r->id) != 0 || wh_secret_new(r->secret) != 0) {
    free(j);
    c->host->log(c->host->ctx, res, CD_LOG_ERROR,
                 "webhooks: the random source failed");
    c->host->error(res, 500, "internal", "internal error", NULL, 0);
    return CD_DONE;
  }
  r->account = req->account;
  r->created_ms = wh_now_ms();
  /* It receives the changes committed after it was created. */
  r->position = cs_changes_end(c->store);
  r->state = WH_ACTIVE;
  j->edit.add = r;
  j->res = res;
  return wh_submit(c, j);
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
  struct wh_job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    wh_send_oom(c, res);
    return CD_DONE;
  }
  if (!wh_path_id(req, j->id)) {
    free(j);
    wh_send_not_found(c, res);
    return CD_DONE;
  }
  j->edit.account = req->account;
  if (enable)
    j->edit.enable_id = j->id;
  else
    j->edit.remove_id = j->id;
  j->res = res;
  return wh_submit(c, j);
}

int wh_handle_delete(void *state, const cd_request *req, cd_response *res) {
  return wh_handle_edit(state, req, res, false);
}

int wh_handle_enable(void *state, const cd_request *req, cd_response *res) {
  return wh_handle_edit(state, req, res, true);
}
