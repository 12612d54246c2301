/*
 * adm_move.c: what moving an account from one server to another needs
 * (plugins/admin/README.md, "Moving an account"):
 *
 *   PUT    /admin/accounts/{name}/moving   the moving mark, kept in the key
 *                                          file (every request of the
 *                                          account's keys outside /admin
 *                                          answers 503 account_moving)
 *   GET    /admin/accounts/{name}/keys     the account's keys with hashes
 *   POST   /admin/accounts/{name}/keys     such entries added as they are
 *   GET    /admin/accounts/{name}/digest   SHA-256 of the account's export
 *   DELETE /admin/accounts/{name}          every contact purged, then the
 *                                          keys and the account removed
 *
 * The mark, the keys and their lists are small answers given on the
 * worker; the digest and the delete read or write the whole account and
 * run on task threads (adm_task: 429 too_many_admin_tasks past
 * ADM_TASKS_MAX) like the export and the import.
 *
 * A delete marks the account moving first and keeps it until the end, so
 * no request of the account writes while its contacts are purged, and a
 * delete that stops half-way (an error, a restart) leaves the account
 * there, marked, for the repeat to finish: the keys and the account go
 * only once no contact is left.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "adm.h"

/* The body as a JSON object, or answers 400 invalid_json (saying what it
 * must be) and returns NULL. The caller frees it. */
static yajl_val body_object(adm_ctx *c, const cd_request *req, cd_response *res,
                            const char *must) {
  char *text = malloc(req->body_len + 1);
  if (!text) return adm_oom(c, res), NULL;
  if (req->body_len) memcpy(text, req->body, req->body_len);
  text[req->body_len] = '\0';
  yajl_val v = req->body_len ? yajl_tree_parse(text, NULL, 0) : NULL;
  free(text);
  if (!v || !YAJL_IS_OBJECT(v)) {
    yajl_tree_free(v);
    c->host->error(res, 400, "invalid_json", must, NULL, 0);
    return NULL;
  }
  return v;
}

/* After a mark: waits for the requests that were past their key check
 * when it came (host->quiesce: their writes are queued by then), then for
 * every write queued to be durable and applied (cs_flush). From then on
 * the store accepts no write of the account. 0, or an error for
 * adm_store_error (err filled). */
static int settle(adm_ctx *c, cs_error *err) {
  if (c->host->quiesce && c->host->quiesce(c->host->ctx) != 0) {
    snprintf(err->msg, sizeof err->msg,
             "requests in flight did not finish in time; repeat the request");
    return CS_ECLOSING; /* answered 503 store_unavailable, retry-after */
  }
  return cs_flush(c->store, err);
}

/* ------------------------------------------------- PUT .../moving */

int adm_moving_put(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  uint32_t id;
  if (adm_account_param(c, req, res, name) != 0 ||
      adm_account(c, res, name, &id) != 0)
    return CD_DONE;
  yajl_val v = body_object(c, req, res,
                           "the body must be a JSON object {\"moving\": true} "
                           "or {\"moving\": false}");
  if (!v) return CD_DONE;
  int have = -1;
  for (size_t i = 0; i < v->u.object.len; i++) {
    const char *f = v->u.object.keys[i];
    yajl_val m = v->u.object.values[i];
    if (strcmp(f, "moving") != 0) {
      char msg[160];
      snprintf(msg, sizeof msg, "%.64s: the body has \"moving\" alone", f);
      c->host->error(res, 400, "unknown_field", msg, f, 0);
      return yajl_tree_free(v), CD_DONE;
    }
    if (have >= 0) {
      c->host->error(res, 400, "duplicate_field", "moving is given twice",
                     "moving", 0);
      return yajl_tree_free(v), CD_DONE;
    }
    if (!YAJL_IS_TRUE(m) && !YAJL_IS_FALSE(m)) {
      c->host->error(res, 400, "invalid_field", "moving: true or false",
                     "moving", 0);
      return yajl_tree_free(v), CD_DONE;
    }
    have = YAJL_IS_TRUE(m);
  }
  yajl_tree_free(v);
  if (have < 0) {
    c->host->error(res, 400, "missing_field", "moving: required", "moving", 0);
    return CD_DONE;
  }
  cs_keyring *k = adm_ring(c, res);
  if (!k) return CD_DONE;
  cs_error err = {0};
  int rc = cs_keys_set_moving(k, name, have == 1, &err);
  if (rc == CS_EACCOUNT) { /* removed meanwhile */
    c->host->error(res, 404, "account_not_found", "no such account", NULL, 0);
    return CD_DONE;
  }
  /* Marked: every write of the account is durable and applied before the
   * answer, so an export taken after it holds them all. */
  if (rc == 0 && have == 1) rc = settle(c, &err);
  if (rc != 0) return adm_store_error(c, res, rc, &err), CD_DONE;
  char line[128];
  snprintf(line, sizeof line, "admin: account %s %s", name,
           have == 1 ? "marked moving" : "no longer marked moving");
  c->host->log(c->host->ctx, res, CD_LOG_INFO, line);
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  yajl_gen_map_open(g);
  adm_gen_str(g, "name");
  adm_gen_str(g, name);
  adm_gen_str(g, "moving");
  yajl_gen_bool(g, have == 1);
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
  return CD_DONE;
}

/* --------------------------------------------------- GET .../keys */

int adm_account_keys(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  uint32_t id;
  if (adm_account_param(c, req, res, name) == 0 &&
      adm_account(c, res, name, &id) == 0)
    adm_send_keys(c, res, &id);
  return CD_DONE;
}

/* -------------------------------------------------- POST .../keys */

/* Reads entry i of the body into *out. 0, or answers 400 and returns -1. */
static int key_entry_read(adm_ctx *c, cd_response *res, yajl_val e, size_t i,
                          cs_key_line *out) {
  static const char *const fields[] = {"key_id",     "account", "role",
                                       "created_at", "revoked", "hash"};
  enum { NFIELDS = sizeof fields / sizeof fields[0] };
  char where[96], msg[256];
  if (!YAJL_IS_OBJECT(e)) {
    snprintf(where, sizeof where, "data[%zu]", i);
    c->host->error(res, 400, "invalid_field",
                   "each entry of data is an object, as GET "
                   "/admin/accounts/{name}/keys lists them",
                   where, 0);
    return -1;
  }
  yajl_val got[NFIELDS] = {0};
  memset(out, 0, sizeof *out);
  for (size_t j = 0; j < e->u.object.len; j++) {
    const char *f = e->u.object.keys[j];
    size_t at = 0;
    while (at < NFIELDS && strcmp(f, fields[at]) != 0)
      at++;
    snprintf(where, sizeof where, "data[%zu].%.64s", i, f);
    if (at == NFIELDS) {
      snprintf(msg, sizeof msg, "%s: not a field of a key's entry", where);
      c->host->error(res, 400, "unknown_field", msg, where, 0);
      return -1;
    }
    if (got[at]) {
      c->host->error(res, 400, "duplicate_field", "a field is given twice",
                     where, 0);
      return -1;
    }
    got[at] = e->u.object.values[j];
  }
  for (size_t at = 0; at < NFIELDS; at++) {
    yajl_val m = got[at];
    snprintf(where, sizeof where, "data[%zu].%s", i, fields[at]);
    const char *why = NULL;
    if (!m) {
      snprintf(msg, sizeof msg, "%s: required", where);
      c->host->error(res, 400, "missing_field", msg, where, 0);
      return -1;
    }
    if (at == 4) { /* revoked */
      if (YAJL_IS_TRUE(m) || YAJL_IS_FALSE(m))
        out->info.revoked = YAJL_IS_TRUE(m);
      else
        why = "true or false";
    } else if (at == 3 && YAJL_IS_NULL(m)) { /* created_at: none kept */
      out->info.created_ms = 0;
    } else if (!YAJL_IS_STRING(m)) {
      why = "a string";
    } else {
      const char *sv = m->u.string;
      size_t len = strlen(sv);
      bool ok = false;
      if (at == 0 && len < sizeof out->info.key_id) {
        memcpy(out->info.key_id, sv, len + 1);
        ok = true;
      } else if (at == 1 && len < sizeof out->info.account) {
        memcpy(out->info.account, sv, len + 1);
        ok = true;
      } else if (at == 2) {
        ok = cs_role_parse(sv, &out->info.role) == 0;
      } else if (at == 3) {
        ok = cs_time_parse(sv, len, &out->info.created_ms) == 0;
      } else if (at == 5 && len < sizeof out->hash) {
        memcpy(out->hash, sv, len + 1);
        ok = true;
      }
      if (!ok)
        why = at == 2   ? "read-write, read-only or admin"
              : at == 3 ? "an RFC 3339 time, or null"
                        : "too long";
    }
    if (why) {
      snprintf(msg, sizeof msg, "%s: %s", where, why);
      c->host->error(res, 400, "invalid_field", msg, where, 0);
      return -1;
    }
  }
  return 0;
}

int adm_account_keys_add(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  if (adm_account_param(c, req, res, name) != 0) return CD_DONE;
  static const char must[] =
      "the body must be a JSON object {\"data\": [...]} with the entries GET "
      "/admin/accounts/{name}/keys lists";
  yajl_val v = body_object(c, req, res, must);
  if (!v) return CD_DONE;
  yajl_val data = NULL;
  for (size_t i = 0; i < v->u.object.len; i++) {
    const char *f = v->u.object.keys[i];
    bool known = strcmp(f, "data") == 0;
    if (!known || data) {
      c->host->error(res, 400, known ? "duplicate_field" : "unknown_field",
                     must, f, 0);
      return yajl_tree_free(v), CD_DONE;
    }
    data = v->u.object.values[i];
  }
  if (!data || !YAJL_IS_ARRAY(data)) {
    c->host->error(res, 400, data ? "invalid_field" : "missing_field",
                   "data: an array of key entries", "data", 0);
    return yajl_tree_free(v), CD_DONE;
  }
  size_t n = data->u.array.len;
  cs_key_line *lines = calloc(n ? n : 1, sizeof *lines);
  if (!lines) return yajl_tree_free(v), adm_oom(c, res), CD_DONE;
  for (size_t i = 0; i < n; i++)
    if (key_entry_read(c, res, data->u.array.values[i], i, &lines[i]) != 0) {
      free(lines);
      return yajl_tree_free(v), CD_DONE;
    }
  yajl_tree_free(v);
  cs_keyring *k = adm_ring(c, res);
  if (!k) return free(lines), CD_DONE;
  size_t added = 0, present = 0, bad = 0;
  cs_error err = {0};
  int rc = cs_keys_import(k, name, lines, n, &added, &present, &bad, &err);
  free(lines);
  char where[32];
  snprintf(where, sizeof where, "data[%zu]", bad);
  if (rc == CS_EKEY) {
    c->host->error(res, 409, "key_id_taken", err.msg, where, 0);
    return CD_DONE;
  }
  if (rc == CS_EINVAL) {
    c->host->error(res, 400, "invalid_field", err.msg, where, 0);
    return CD_DONE;
  }
  if (rc == CS_EACCOUNT) {
    c->host->error(res, 400, "invalid_account", err.msg, NULL, 0);
    return CD_DONE;
  }
  if (rc != 0) return adm_store_error(c, res, rc, &err), CD_DONE;
  char line[200];
  snprintf(line, sizeof line,
           "admin: keys into %s: %zu added, %zu present already", name, added,
           present);
  c->host->log(c->host->ctx, res, CD_LOG_INFO, line);
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  yajl_gen_map_open(g);
  adm_gen_str(g, "name");
  adm_gen_str(g, name);
  adm_gen_str(g, "added");
  adm_gen_u64(g, added);
  adm_gen_str(g, "present");
  adm_gen_u64(g, present);
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
  return CD_DONE;
}

/* ------------------------------------------------- GET .../digest */

typedef struct account_job {
  cd_response *res;
  uint32_t account;
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
} account_job;

/* Starts fn on a task thread for the route's account. */
static int account_task(adm_ctx *c, const cd_request *req, cd_response *res,
                        void (*fn)(adm_ctx *c, void *arg)) {
  account_job *j = calloc(1, sizeof *j);
  if (!j) return adm_oom(c, res), CD_DONE;
  j->res = res;
  if (adm_account_param(c, req, res, j->name) != 0 ||
      adm_account(c, res, j->name, &j->account) != 0 ||
      adm_task(c, res, fn, j) != 0) {
    free(j);
    return CD_DONE;
  }
  return CD_ASYNC;
}

static int digest_put(void *ctx, const void *p, size_t n) {
  return EVP_DigestUpdate(ctx, p, n) == 1 ? 0 : -1;
}

static void digest_main(adm_ctx *c, void *arg) {
  account_job *j = arg;
  cd_response *res = j->res;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
    adm_oom(c, res);
    goto done;
  }
  cs_error err = {0};
  adm_export_counts n;
  int rc = adm_export_write(c, j->account, j->name, digest_put, md, &n, &err);
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned hlen = 0;
  if (rc == 0 && EVP_DigestFinal_ex(md, h, &hlen) != 1) rc = -ENOMEM;
  if (rc != 0) {
    adm_store_error(c, res, rc, &err);
    goto done;
  }
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned i = 0; i < hlen; i++)
    snprintf(hex + 2 * i, 3, "%02x", h[i]);
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) {
    adm_oom(c, res);
    goto done;
  }
  yajl_gen_map_open(g);
  adm_gen_str(g, "name");
  adm_gen_str(g, j->name);
  adm_gen_str(g, "contacts");
  adm_gen_u64(g, n.live);
  adm_gen_str(g, "trash");
  adm_gen_u64(g, n.trash);
  adm_gen_str(g, "hash");
  adm_gen_str(g, hex);
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
done:
  EVP_MD_CTX_free(md);
  free(j);
}

int adm_digest(void *state, const cd_request *req, cd_response *res) {
  return account_task(state, req, res, digest_main);
}

/* ------------------------------------------- DELETE .../{name} */

/* The purges of one batch in flight: done counts them back. */
typedef struct purge_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t pending;
  uint64_t purged;
  int rc; /* the first failure a completion reported */
} purge_wait;

static void purge_done(void *ctx, int rc, uint64_t id) {
  (void)id;
  purge_wait *w = ctx;
  pthread_mutex_lock(&w->mu);
  if (rc == 0)
    w->purged++;
  else if (w->rc == 0)
    w->rc = rc;
  if (--w->pending == 0) pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* The ids of an export, live and trash. */
typedef struct id_list {
  uint64_t *v;
  size_t count, cap;
} id_list;

static int collect_id(void *ctx, const cs_contact *ct) {
  id_list *l = ctx;
  if (l->count == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 1024;
    uint64_t *p = realloc(l->v, cap * sizeof *p);
    if (!p) return -ENOMEM;
    l->v = p;
    l->cap = cap;
  }
  l->v[l->count++] = ct->id;
  return 0;
}

/* Purges ids, at most ADM_PURGE_BATCH in flight, each batch waited for.
 * A contact gone meanwhile is no failure. 0, or the first failure. */
static int purge_ids(adm_ctx *c, uint32_t account, const id_list *ids,
                     purge_wait *w, cs_error *err) {
  int rc = 0;
  for (size_t at = 0; at < ids->count && rc == 0;) {
    size_t end =
        at + ADM_PURGE_BATCH < ids->count ? at + ADM_PURGE_BATCH : ids->count;
    for (; at < end && rc == 0; at++) {
      cs_write cw = {.kind = CS_WRITE_DELETE,
                     .account = account,
                     .id = ids->v[at],
                     .purge = true,
                     .done = purge_done,
                     .ctx = w};
      cs_outcome o;
      pthread_mutex_lock(&w->mu);
      w->pending++;
      pthread_mutex_unlock(&w->mu);
      int wrc = cs_write_apply(c->store, &cw, &o, err);
      if (wrc != 0) { /* not queued: done will not come */
        pthread_mutex_lock(&w->mu);
        w->pending--;
        pthread_mutex_unlock(&w->mu);
        if (wrc != CS_ENOTFOUND) rc = wrc;
      }
    }
    pthread_mutex_lock(&w->mu);
    while (w->pending > 0)
      pthread_cond_wait(&w->cv, &w->mu);
    if (rc == 0) rc = w->rc;
    pthread_mutex_unlock(&w->mu);
  }
  return rc;
}

static void delete_main(adm_ctx *c, void *arg) {
  account_job *j = arg;
  cd_response *res = j->res;
  cs_keyring *k = c->host->keyring(c->host->ctx);
  purge_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER,
                  .cv = PTHREAD_COND_INITIALIZER};
  id_list ids = {0};
  cs_error err = {0};
  int rc = k ? cs_keys_set_moving(k, j->name, true, &err) : -ENOENT;
  if (rc == CS_EACCOUNT) {
    c->host->error(res, 404, "account_not_found", "no such account", NULL, 0);
    goto done;
  }
  /* Writes accepted before the mark land first; then rounds of export
   * and purge until an export finds nothing. */
  if (rc == 0) rc = settle(c, &err);
  int round = 0;
  while (rc == 0) {
    ids.count = 0;
    rc = cs_export(c->store, j->account, collect_id, &ids, &err);
    if (rc != 0 || ids.count == 0) break;
    if (++round > ADM_DELETE_ROUNDS_MAX) {
      snprintf(err.msg, sizeof err.msg,
               "account %s: contacts were still there after %d rounds of "
               "purges",
               j->name, ADM_DELETE_ROUNDS_MAX);
      rc = -EAGAIN;
      break;
    }
    rc = purge_ids(c, j->account, &ids, &w, &err);
  }
  size_t keys_removed = 0;
  if (rc == 0) rc = cs_keys_account_remove(k, j->name, &keys_removed, &err);
  if (rc == CS_EACCOUNT) { /* a delete beside this one finished first */
    c->host->error(res, 404, "account_not_found", "no such account", NULL, 0);
    goto done;
  }
  char line[700];
  if (rc != 0) {
    snprintf(line, sizeof line,
             "admin: delete of account %s stopped after %" PRIu64
             " purges (the account stays, marked moving; repeat the "
             "delete): %s",
             j->name, w.purged, err.msg[0] ? err.msg : cs_strerror(rc));
    c->host->log(c->host->ctx, res, CD_LOG_ERROR, line);
    adm_store_error(c, res, rc, &err);
    goto done;
  }
  snprintf(line, sizeof line,
           "admin: account %s deleted: %" PRIu64 " contacts purged, %zu keys "
           "removed",
           j->name, w.purged, keys_removed);
  c->host->log(c->host->ctx, res, CD_LOG_INFO, line);
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) {
    adm_oom(c, res);
    goto done;
  }
  yajl_gen_map_open(g);
  adm_gen_str(g, "name");
  adm_gen_str(g, j->name);
  adm_gen_str(g, "purged");
  adm_gen_u64(g, w.purged);
  adm_gen_str(g, "keys_removed");
  adm_gen_u64(g, keys_removed);
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
done:
  free(ids.v);
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  free(j);
}

int adm_account_delete(void *state, const cd_request *req, cd_response *res) {
  return account_task(state, req, res, delete_main);
}
