/*
 * adm_repl.c: replication over HTTP (plugins/admin/README.md
 * "Replication"):
 *
 *   GET  /admin/replication?after=SEQ   the log's records after SEQ,
 *        exactly as framed (engine/record.h), streamed as each batch is
 *        durable here: application/octet-stream, never ending while the
 *        server serves. 410 replication_gone when the log does not hold
 *        SEQ (the standby starts again from GET /admin/backup).
 *   POST /admin/replication/ack {"seq": N}   a standby holds every record
 *        up to N durably: 200 {"acked": N}.
 *   POST /admin/promote   a standby stops following, applies what it
 *        has, takes writes: 200 {"role": "primary", "seq", "next_id"}.
 *   POST /admin/fence     a primary refuses writes from now on, across
 *        restarts: 200 {"role": "fenced"}.
 *
 * A stream runs on a thread of its own (at most ADM_SHIP_STREAMS_MAX),
 * counted in c->tasks so that drain waits for it; it ends when the
 * client goes, the server stops, or the store fails.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "adm.h"

typedef struct ship_job {
  adm_ctx *c;
  cd_response *res;
  cs_ship *sh;
  uint64_t after;
} ship_job;

static void log_line(adm_ctx *c, cd_response *res, int level, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
static void log_line(adm_ctx *c, cd_response *res, int level, const char *fmt,
                     ...) {
  char line[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  c->host->log(c->host->ctx, res, level, line);
}

static bool draining(adm_ctx *c) {
  pthread_mutex_lock(&c->mu);
  bool d = c->draining;
  pthread_mutex_unlock(&c->mu);
  return d;
}

static void *ship_main(void *arg) {
  ship_job *j = arg;
  adm_ctx *c = j->c;
  uint8_t *buf = malloc(ADM_SHIP_READ_BYTES);
  char hdr[24];
  snprintf(hdr, sizeof hdr, "%" PRIu64, j->after);
  c->host->header(j->res, "x-replication-after", hdr);
  cd_stream *st =
      buf ? c->host->stream_begin(j->res, 200, "application/octet-stream")
          : NULL;
  if (!buf && !st) adm_oom(c, j->res);
  bool ok = st != NULL;
  uint64_t bytes = 0;
  log_line(c, NULL, CD_LOG_INFO,
           "admin: a standby reads the log after %" PRIu64, j->after);
  while (ok && !draining(c)) {
    size_t len = 0;
    cs_error err = {0};
    int rc = cs_ship_read(j->sh, buf, ADM_SHIP_READ_BYTES, &len,
                          ADM_SHIP_WAIT_MS, &err);
    if (rc) {
      if (rc != CS_ECLOSING)
        log_line(c, NULL, CD_LOG_ERROR, "admin: replication stream: %s",
                 err.msg[0] ? err.msg : cs_strerror(rc));
      ok = false;
      break;
    }
    if (len && c->host->stream_write(st, buf, len) != 0) break; /* gone */
    bytes += len;
  }
  log_line(c, NULL, CD_LOG_INFO,
           "admin: a standby's read ended at record %" PRIu64 " (%" PRIu64
           " bytes sent)",
           cs_ship_position(j->sh), bytes);
  if (st) c->host->stream_end(st, ok);
  cs_ship_close(j->sh);
  free(buf);
  pthread_mutex_lock(&c->mu);
  c->ship_streams--;
  if (--c->tasks == 0) pthread_cond_broadcast(&c->idle);
  pthread_mutex_unlock(&c->mu);
  free(j);
  return NULL;
}

static bool query_u64(const cd_request *req, const char *name, uint64_t *out) {
  for (size_t i = 0; i < req->query_count; i++) {
    const cd_pair *q = &req->query[i];
    if (q->name_len == strlen(name) && memcmp(q->name, name, q->name_len) == 0)
      return cs_decimal_parse(q->value, q->value_len, 0, UINT64_MAX, out) == 0;
  }
  return false;
}

int adm_replication(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  uint64_t after;
  if (!query_u64(req, "after", &after)) {
    c->host->error(res, 400, "invalid_query",
                   "after: the sequence number of the standby's last record "
                   "(0 for an empty store), in decimal",
                   "after", 0);
    return CD_DONE;
  }
  pthread_mutex_lock(&c->mu);
  int refuse = c->draining                               ? 503
               : c->ship_streams >= ADM_SHIP_STREAMS_MAX ? 429
                                                         : 0;
  if (!refuse) c->ship_streams++, c->tasks++;
  pthread_mutex_unlock(&c->mu);
  if (refuse) {
    c->host->header(res, "retry-after", "1");
    if (refuse == 429)
      c->host->error(res, 429, "too_many_standbys",
                     "as many standbys as the server serves at once are "
                     "reading its log",
                     NULL, 0);
    else
      c->host->error(res, 503, "shutting_down", "the server is stopping", NULL,
                     0);
    return CD_DONE;
  }
  cs_error err = {0};
  cs_ship *sh = NULL;
  int rc = cs_ship_open(c->store, after, &sh, &err);
  ship_job *j = rc ? NULL : malloc(sizeof *j);
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (j) *j = (ship_job){c, res, sh, after};
  int trc = j ? pthread_create(&th, &attr, ship_main, j) : -1;
  pthread_attr_destroy(&attr);
  if (trc == 0) return CD_ASYNC;
  free(j);
  cs_ship_close(sh);
  pthread_mutex_lock(&c->mu);
  c->ship_streams--;
  if (--c->tasks == 0) pthread_cond_broadcast(&c->idle);
  pthread_mutex_unlock(&c->mu);
  if (rc) {
    /* The engine's message says why (which record, which end). */
    const cd_store_error *e = c->host->store_error(rc);
    if (e->log_level != CD_LOG_NONE)
      log_line(c, res, e->log_level, "admin: replication: %s", err.msg);
    if (e->retry_after) c->host->header(res, "retry-after", e->retry_after);
    c->host->error(res, e->status, e->code,
                   rc == CS_ESHIP_GONE ? err.msg : e->message, NULL, 0);
  } else {
    c->host->error(res, 500, "internal", "cannot start a thread", NULL, 0);
  }
  return CD_DONE;
}

int adm_replication_ack(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  char why[128] = "";
  char text[256];
  yajl_val v = NULL;
  if (req->body_len && req->body_len < sizeof text) {
    memcpy(text, req->body, req->body_len);
    text[req->body_len] = '\0';
    v = yajl_tree_parse(text, why, sizeof why);
  }
  const char *path[] = {"seq", NULL};
  yajl_val seq = v ? yajl_tree_get(v, path, yajl_t_number) : NULL;
  if (!seq || !YAJL_IS_INTEGER(seq) || YAJL_GET_INTEGER(seq) < 0) {
    yajl_tree_free(v);
    c->host->error(res, 400, "invalid_body",
                   "expected {\"seq\": N}, N the standby's last durable "
                   "record",
                   "seq", 0);
    return CD_DONE;
  }
  uint64_t n = (uint64_t)YAJL_GET_INTEGER(seq);
  yajl_tree_free(v);
  cs_error err = {0};
  int rc = cs_ship_ack(c->store, n, &err);
  if (rc) {
    c->host->error(res, 400, "invalid_field", err.msg, "seq", 0);
    return CD_DONE;
  }
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  yajl_gen_map_open(g);
  adm_gen_str(g, "acked");
  adm_gen_u64(g, n);
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
  return CD_DONE;
}

static void role_answer(adm_ctx *c, cd_response *res) {
  cs_repl_info r;
  cs_repl_get(c->store, &r);
  cs_stats st;
  cs_stats_get(c->store, &st);
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res);
  yajl_gen_map_open(g);
  adm_gen_str(g, "role");
  adm_gen_str(g, cs_repl_role_name(r.role));
  adm_gen_str(g, "seq");
  adm_gen_u64(g, r.last_seq);
  adm_gen_str(g, "next_id");
  char id[CS_ID_DIGITS + 1];
  cs_id_format(st.next_id, id);
  adm_gen_str(g, id);
  yajl_gen_map_close(g);
  adm_send_json(c, res, 200, g);
}

typedef struct promote_job {
  cd_response *res;
} promote_job;

static void promote_main(adm_ctx *c, void *arg) {
  promote_job *j = arg;
  adm_follow_stop(c); /* nothing more is taken from the old primary */
  cs_error err = {0};
  int rc = cs_promote(c->store, &err);
  if (rc) {
    adm_store_error(c, j->res, rc, &err);
  } else {
    log_line(c, NULL, CD_LOG_INFO,
             "admin: promoted: this server is the "
             "primary and takes writes");
    role_answer(c, j->res);
  }
  free(j);
}

int adm_promote(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  (void)req;
  if (cs_store_role(c->store) == CS_REPL_PRIMARY) {
    role_answer(c, res);
    return CD_DONE;
  }
  promote_job *j = malloc(sizeof *j);
  if (!j) return adm_oom(c, res), CD_DONE;
  j->res = res;
  if (adm_task(c, res, promote_main, j) != 0) {
    free(j);
    return CD_DONE;
  }
  return CD_ASYNC;
}

int adm_fence(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  (void)req;
  cs_error err = {0};
  int rc = cs_fence(c->store, &err);
  if (rc) {
    adm_store_error(c, res, rc, &err);
    return CD_DONE;
  }
  log_line(c, res, CD_LOG_WARN,
           "admin: fenced: this server refuses writes from now on");
  role_answer(c, res);
  return CD_DONE;
}

void adm_repl_gen(adm_ctx *c, yajl_gen g) {
  cs_repl_info r;
  cs_repl_get(c->store, &r);
  yajl_gen_map_open(g);
  adm_gen_str(g, "role");
  adm_gen_str(g, cs_repl_role_name(r.role));
  adm_gen_str(g, "standby_ack");
  adm_gen_str(g,
              r.standby_ack == CS_STANDBY_ACK_REQUIRED ? "required" : "async");
  adm_gen_str(g, "standby_timeout_ms");
  adm_gen_u64(g, r.standby_timeout_ms);
  adm_gen_str(g, "standbys_reading");
  adm_gen_u64(g, r.readers);
  adm_gen_str(g, "last_seq");
  adm_gen_u64(g, r.last_seq);
  adm_gen_str(g, "durable_seq");
  adm_gen_u64(g, r.durable_seq);
  adm_gen_str(g, "acked_seq");
  adm_gen_u64(g, r.acked_seq);
  adm_gen_str(g, "lag_records");
  adm_gen_u64(g, r.lag_records);
  adm_gen_str(g, "lag_ms");
  adm_gen_u64(g, (uint64_t)r.lag_ms);
  adm_gen_str(g, "acked_at");
  adm_gen_time(g, r.acked_ms);
  adm_gen_str(g, "standby_unavailable");
  yajl_gen_bool(g, r.unavailable);
  adm_follow_gen(c, g);
  yajl_gen_map_close(g);
}
