/*
 * ct_answer.c: how the contacts plugin answers: JSON bodies, errors, store
 * failures (through the host's table, host->store_error), and the path
 * parameter every /contacts/{id} route reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"

const char ct_json_type[] = "application/json";
const char ct_text_type[] = "text/plain; charset=utf-8";

void ct_send_err(const ct_state *st, cd_response *res, const ct_err *e) {
  if (!e->version && !e->has_oldest) {
    st->host->error(res, e->status, e->code, e->msg,
                    e->field[0] ? e->field : NULL, e->id);
    return;
  }
  /* The host's error object has no "etag" and no "oldest_cursor": the
   * codec writes this one. */
  yajl_gen g = ct_gen_new();
  const unsigned char *buf;
  size_t len;
  if (!g) return ct_send_oom(st, res);
  ct_gen_error(g, e);
  if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
    st->host->respond(res, e->status, ct_json_type, (const char *)buf, len);
  else
    ct_send_oom(st, res);
  yajl_gen_free(g);
}

void ct_send_gen(const ct_state *st, cd_response *res, yajl_gen g) {
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

void ct_send_json(const ct_state *st, cd_response *res, ct_json *j) {
  if (j->failed)
    ct_send_oom(st, res);
  else
    st->host->respond(res, 200, ct_json_type, j->p, j->len);
  ct_json_free(j);
}

void ct_send_oom(const ct_state *st, cd_response *res) {
  st->host->log(st->host->ctx, res, CD_LOG_ERROR, "contacts: out of memory");
  st->host->error(res, 500, "internal", "internal error", NULL, 0);
}

void ct_send_not_found(const ct_state *st, cd_response *res) {
  st->host->error(res, 404, "not_found", "no such contact", NULL, 0);
}

const cd_store_error *ct_err_from_rc(const ct_state *st, cd_response *res,
                                     const char *op, int rc,
                                     const cs_error *err, ct_err *e) {
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
  } else if (rc == CS_EPRECONDITION) {
    ct_fail(e, m->status, m->code, NULL, 0, "%s", m->message);
    e->version = err ? err->version : 0;
  } else {
    ct_fail(e, m->status, m->code, NULL, 0, "%s", m->message);
  }
  return m;
}

void ct_send_rc(const ct_state *st, cd_response *res, const char *op, int rc,
                const cs_error *err) {
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
int ct_commit_rc(const ct_state *st, int rc) {
  int failed_status = st->host->store_error(CS_EFAILED)->status;
  return st->host->store_error(rc)->status == failed_status ? rc : CS_EFAILED;
}

bool ct_path_id(const cd_request *req, uint64_t *id) {
  for (size_t i = 0; i < req->param_count; i++) {
    const cd_pair *pr = &req->params[i];
    if (pr->name_len == 2 && !memcmp(pr->name, "id", 2))
      return cs_id_parse(pr->value, pr->value_len, id) == 0;
  }
  return false;
}

cs_store *ct_store(const ct_state *st, const cd_request *req) {
  return req->store ? req->store : st->store;
}

void ct_change_cursor_header(const ct_state *st, cd_response *res,
                             cs_store *store, uint64_t seq) {
  char cursor[CT_CHANGE_CURSOR_CHARS + 1];
  ct_change_cursor_format(seq ? seq : cs_changes_end(store), cursor);
  st->host->header(res, "x-change-cursor", cursor);
}
