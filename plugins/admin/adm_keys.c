/*
 * adm_keys.c: the admin API's small answers, given on the worker thread:
 * POST/GET /admin/keys and DELETE /admin/keys/{key_id} on the server's
 * live keyring (in force at the next request), GET /admin/accounts, and
 * GET /admin/stats (what contactctl stats prints, as JSON).
 *
 * A key is shown once, in the answer that made it; lists show its key_id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "adm.h"

static const char *const role_names[] = {
    [CS_ROLE_READ_WRITE] = "read-write",
    [CS_ROLE_READ_ONLY] = "read-only",
    [CS_ROLE_ADMIN] = "admin",
};

static const char *role_name(cs_role r) {
  return (size_t)r < sizeof role_names / sizeof role_names[0] && role_names[r]
             ? role_names[r]
             : "unknown";
}

static void gen_key(yajl_gen g, const cs_key_info *k, const char *hash) {
  yajl_gen_map_open(g);
  adm_gen_str(g, "key_id");
  adm_gen_str(g, k->key_id);
  adm_gen_str(g, "account");
  adm_gen_str(g, k->account);
  adm_gen_str(g, "role");
  adm_gen_str(g, role_name(k->role));
  adm_gen_str(g, "created_at");
  adm_gen_time(g, k->created_ms);
  adm_gen_str(g, "revoked");
  yajl_gen_bool(g, k->revoked);
  if (hash) {
    adm_gen_str(g, "hash");
    adm_gen_str(g, hash);
  }
  yajl_gen_map_close(g);
}

cs_keyring *adm_ring(adm_ctx *c, cd_response *res) {
  cs_keyring *k = c->host->keyring(c->host->ctx);
  if (!k)
    c->host->error(res, 500, "internal", "the server has no keyring", NULL, 0);
  return k;
}

/* ------------------------------------------------------ POST /admin/keys */

/* Reads {"account": "...", "role": "..."} (role optional: read-write).
 * 0, or answers 400 and returns -1. */
static int read_key_body(adm_ctx *c, const cd_request *req, cd_response *res,
                         char *account, size_t account_cap, cs_role *role) {
  char *text = malloc(req->body_len + 1);
  if (!text) return adm_oom(c, res), -1;
  if (req->body_len) memcpy(text, req->body, req->body_len);
  text[req->body_len] = '\0';
  char why[256];
  yajl_val v = req->body_len ? yajl_tree_parse(text, why, sizeof why) : NULL;
  free(text);
  if (!v || !YAJL_IS_OBJECT(v)) {
    yajl_tree_free(v);
    c->host->error(res, 400, "invalid_json",
                   "the body must be a JSON object with \"account\" and "
                   "optionally \"role\"",
                   NULL, 0);
    return -1;
  }
  bool have_account = false, have_role = false;
  int rc = 0;
  *role = CS_ROLE_READ_WRITE;
  for (size_t i = 0; i < v->u.object.len && rc == 0; i++) {
    const char *name = v->u.object.keys[i];
    yajl_val m = v->u.object.values[i];
    bool is_account = strcmp(name, "account") == 0;
    bool is_role = strcmp(name, "role") == 0;
    if (!is_account && !is_role) {
      char msg[160];
      snprintf(msg, sizeof msg, "%.64s: not a field of a key", name);
      c->host->error(res, 400, "unknown_field", msg, name, 0);
      rc = -1;
    } else if ((is_account && have_account) || (is_role && have_role)) {
      c->host->error(res, 400, "duplicate_field", "a field is given twice",
                     name, 0);
      rc = -1;
    } else if (!YAJL_IS_STRING(m)) {
      c->host->error(res, 400, "invalid_field", "must be a string", name, 0);
      rc = -1;
    } else if (is_account) {
      have_account = true;
      if (strlen(m->u.string) >= account_cap) {
        c->host->error(res, 400, "invalid_field",
                       "account: too long an account name", "account", 0);
        rc = -1;
      } else {
        strcpy(account, m->u.string);
      }
    } else {
      have_role = true;
      size_t r = 0;
      while (r < sizeof role_names / sizeof role_names[0] &&
             strcmp(m->u.string, role_names[r]) != 0)
        r++;
      if (r == sizeof role_names / sizeof role_names[0]) {
        c->host->error(res, 400, "invalid_field",
                       "role: read-write, read-only or admin", "role", 0);
        rc = -1;
      } else {
        *role = (cs_role)r;
      }
    }
  }
  yajl_tree_free(v);
  if (rc == 0 && !have_account) {
    c->host->error(res, 400, "missing_field", "account: required", "account",
                   0);
    rc = -1;
  }
  return rc;
}

int adm_keys_create(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  char account[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  cs_role role;
  if (read_key_body(c, req, res, account, sizeof account, &role) != 0)
    return CD_DONE;
  cs_keyring *k = adm_ring(c, res);
  if (!k) return CD_DONE;
  char key[CS_KEY_BYTES + 1];
  cs_key_info info;
  cs_error err = {0};
  int rc = cs_keys_add(k, account, role, key, &info, &err);
  if (rc == CS_EACCOUNT) {
    c->host->error(res, 400, "invalid_field",
                   "account: 1 to 64 letters, digits, '-', '_' or '.'",
                   "account", 0);
    return CD_DONE;
  }
  if (rc != 0) return adm_store_error(c, res, rc, &err), CD_DONE;
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  yajl_gen_map_open(g);
  adm_gen_str(g, "key");
  adm_gen_str(g, key);
  adm_gen_str(g, "key_id");
  adm_gen_str(g, info.key_id);
  adm_gen_str(g, "account");
  adm_gen_str(g, info.account);
  adm_gen_str(g, "role");
  adm_gen_str(g, role_name(info.role));
  adm_gen_str(g, "created_at");
  adm_gen_time(g, info.created_ms);
  yajl_gen_map_close(g);
  memset(key, 0, sizeof key);
  char line[160];
  snprintf(line, sizeof line, "admin: key %s made for account %s (%s)",
           info.key_id, info.account, role_name(info.role));
  c->host->log(c->host->ctx, res, CD_LOG_INFO, line);
  adm_send_json(c, res, 201, g);
  return CD_DONE;
}

/* ------------------------------------------------------- GET /admin/keys */

void adm_send_keys(adm_ctx *c, cd_response *res, const uint32_t *account) {
  cs_keyring *k = adm_ring(c, res);
  if (!k) return;
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) {
    adm_oom(c, res);
    return;
  }
  yajl_gen_map_open(g);
  adm_gen_str(g, "data");
  yajl_gen_array_open(g);
  cs_key_line kl;
  for (size_t i = 0; cs_keys_get_line(k, i, &kl) == 0; i++)
    if (!account)
      gen_key(g, &kl.info, NULL);
    else if (kl.info.account_id == *account)
      gen_key(g, &kl.info, kl.hash);
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
}

int adm_keys_list(void *state, const cd_request *req, cd_response *res) {
  (void)req;
  adm_send_keys(state, res, NULL);
  return CD_DONE;
}

/* ---------------------------------------------- DELETE /admin/keys/{id} */

int adm_keys_revoke(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  const cd_pair *p = &req->params[0];
  cs_keyring *k = adm_ring(c, res);
  if (!k) return CD_DONE;
  char id[CS_KEY_BYTES + 1];
  if (p->value_len != CS_KEY_ID_BYTES) {
    c->host->error(res, 404, "key_not_found", "no such key", NULL, 0);
    return CD_DONE;
  }
  memcpy(id, p->value, p->value_len);
  id[p->value_len] = '\0';
  cs_error err = {0};
  int rc = cs_keys_revoke(k, id, &err);
  if (rc == CS_EKEY) {
    c->host->error(res, 404, "key_not_found", "no such key", NULL, 0);
    return CD_DONE;
  }
  if (rc != 0) return adm_store_error(c, res, rc, &err), CD_DONE;
  char line[96];
  snprintf(line, sizeof line, "admin: key %s revoked", id);
  c->host->log(c->host->ctx, res, CD_LOG_INFO, line);
  cs_key_info info;
  for (size_t i = 0; cs_keys_get(k, i, &info) == 0; i++)
    if (strcmp(info.key_id, id) == 0) break;
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  gen_key(g, &info, NULL);
  adm_send_json(c, res, 200, g);
  return CD_DONE;
}

/* --------------------------------------------------- GET /admin/accounts */

int adm_accounts_list(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  (void)req;
  cs_keyring *k = adm_ring(c, res);
  if (!k) return CD_DONE;
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  yajl_gen_map_open(g);
  adm_gen_str(g, "data");
  yajl_gen_array_open(g);
  size_t n = cs_keys_account_list(k, NULL, 0);
  uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
  if (!ids) {
    yajl_gen_free(g);
    return adm_oom(c, res), CD_DONE;
  }
  n = cs_keys_account_list(k, ids, n);
  for (size_t i = 0; i < n; i++) {
    char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
    if (cs_keys_account_name(k, ids[i], name) != 0) continue;
    uint64_t keys = 0;
    cs_key_info info;
    for (size_t j = 0; cs_keys_get(k, j, &info) == 0; j++)
      keys += info.account_id == ids[i] && !info.revoked;
    yajl_gen_map_open(g);
    adm_gen_str(g, "name");
    adm_gen_str(g, name);
    adm_gen_str(g, "contacts");
    adm_gen_u64(g, cs_account_count(c->store, ids[i]));
    adm_gen_str(g, "keys");
    adm_gen_u64(g, keys);
    adm_gen_str(g, "moving");
    yajl_gen_bool(g, cs_keys_moving(k, ids[i]));
    yajl_gen_map_close(g);
  }
  free(ids);
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
  return CD_DONE;
}

/* ------------------------------------------------------ GET /admin/stats */

int adm_stats(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  (void)req;
  cs_stats st;
  cs_stats_get(c->store, &st);
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  yajl_gen_map_open(g);
  adm_gen_str(g, "data_directory");
  adm_gen_str(g, cs_dir(c->store));
  const struct {
    const char *name;
    uint64_t v;
  } rows[] = {
      {"contacts", st.contacts},
      {"trash_contacts", st.trash_contacts},
      {"segments", st.segments},
      {"disk_bytes", st.disk_bytes},
      {"live_bytes", st.live_bytes},
      {"garbage_bytes", st.garbage_bytes},
      {"index_bytes", st.index_bytes},
      {"idempotency_keys", st.idem_keys},
      {"idempotency_bytes", st.idem_bytes},
      {"changes", st.changes},
      {"changes_bytes", st.changes_bytes},
      {"commits", st.commits},
      {"fsyncs", st.fsyncs},
      {"shard", st.shard},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    adm_gen_str(g, rows[i].name);
    adm_gen_u64(g, rows[i].v);
  }
  char id[CS_ID_DIGITS + 1];
  adm_gen_str(g, "next_id");
  cs_id_format(st.next_id, id);
  adm_gen_str(g, id);
  adm_gen_str(g, "snapshot");
  if (st.snapshot_time_ms) {
    yajl_gen_map_open(g);
    adm_gen_str(g, "seq");
    adm_gen_u64(g, st.snapshot_seq);
    adm_gen_str(g, "written_at");
    adm_gen_time(g, st.snapshot_time_ms);
    yajl_gen_map_close(g);
  } else {
    yajl_gen_null(g);
  }
  adm_gen_str(g, "replication");
  adm_repl_gen(c, g);
  adm_gen_str(g, "writable");
  yajl_gen_bool(g, st.failed == 0);
  if (st.failed) {
    adm_gen_str(g, "failure");
    adm_gen_str(g, cs_strcode(st.failed));
  }
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
  return CD_DONE;
}
