/*
 * admin.c: the admin plugin (API.md "Administration over HTTP"): its table,
 * its state, the task threads long requests run on, and online
 * compaction's jobs (POST /admin/compact, GET /admin/jobs/{id}).
 *
 * A compaction runs cs_compact_online on a task thread; the store keeps
 * serving reads and writes and switches to the new files in one step at
 * the end. Its job records the engine's progress callbacks and the
 * result; the newest ADM_JOBS_KEPT jobs are kept in memory (a restart
 * forgets them: the store itself says what it holds, GET /admin/stats).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "adm.h"

/* ------------------------------------------------------------ answers */

void adm_store_error(adm_ctx *c, cd_response *res, int rc,
                     const cs_error *err) {
  const cd_store_error *e = c->host->store_error(rc);
  if (e->log_level != CD_LOG_NONE && err && err->msg[0]) {
    char line[600];
    snprintf(line, sizeof line, "admin: %s", err->msg);
    c->host->log(c->host->ctx, res, e->log_level, line);
  }
  if (e->retry_after) c->host->header(res, "retry-after", e->retry_after);
  c->host->error(res, e->status, e->code, e->message, NULL, 0);
}

void adm_oom(adm_ctx *c, cd_response *res) {
  c->host->error(res, 500, "internal", "out of memory", NULL, 0);
}

void adm_send_json(adm_ctx *c, cd_response *res, int status, yajl_gen g) {
  const unsigned char *buf;
  size_t len;
  if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
    adm_oom(c, res);
  else
    c->host->respond(res, status, "application/json", (const char *)buf, len);
  yajl_gen_free(g);
}

void adm_gen_str(yajl_gen g, const char *s) {
  yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void adm_gen_time(yajl_gen g, int64_t ms) {
  if (ms == 0) {
    yajl_gen_null(g);
    return;
  }
  char t[32];
  cs_time_format(ms, t);
  adm_gen_str(g, t);
}

void adm_gen_u64(yajl_gen g, uint64_t v) {
  char n[24];
  int len = snprintf(n, sizeof n, "%" PRIu64, v);
  yajl_gen_number(g, n, (size_t)len);
}

int adm_account(adm_ctx *c, cd_response *res, const char *name, uint32_t *id) {
  cs_keyring *k = c->host->keyring(c->host->ctx);
  if (k && cs_keys_account_id(k, name, id) == 0) return 0;
  c->host->error(res, 404, "account_not_found", "no such account", NULL, 0);
  return -1;
}

int adm_account_param(adm_ctx *c, const cd_request *req, cd_response *res,
                      char name[CS_ACCOUNT_NAME_MAX_BYTES + 1]) {
  const cd_pair *p = &req->params[0];
  if (p->value_len == 0 || p->value_len > CS_ACCOUNT_NAME_MAX_BYTES ||
      memchr(p->value, '\0', p->value_len)) {
    c->host->error(res, 404, "account_not_found", "no such account", NULL, 0);
    return -1;
  }
  memcpy(name, p->value, p->value_len);
  name[p->value_len] = '\0';
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -------------------------------------------------------------- tasks */

typedef struct task {
  adm_ctx *c;
  void (*fn)(adm_ctx *c, void *arg);
  void *arg;
} task;

static void *task_main(void *p) {
  task t = *(task *)p;
  free(p);
  t.fn(t.c, t.arg);
  pthread_mutex_lock(&t.c->mu);
  if (--t.c->tasks == 0) pthread_cond_broadcast(&t.c->idle);
  pthread_mutex_unlock(&t.c->mu);
  return NULL;
}

int adm_task(adm_ctx *c, cd_response *res, void (*fn)(adm_ctx *c, void *arg),
             void *arg) {
  task *t = malloc(sizeof *t);
  if (!t) {
    adm_oom(c, res);
    return -1;
  }
  *t = (task){c, fn, arg};
  pthread_mutex_lock(&c->mu);
  int refuse = c->draining ? 503 : c->tasks >= ADM_TASKS_MAX ? 429 : 0;
  if (!refuse) c->tasks++;
  pthread_mutex_unlock(&c->mu);
  if (refuse) {
    free(t);
    c->host->header(res, "retry-after", refuse == 429 ? "5" : "1");
    if (refuse == 429)
      c->host->error(res, 429, "too_many_admin_tasks",
                     "as many backups, exports, imports and compactions as "
                     "the server runs at once are running; retry later",
                     NULL, 0);
    else
      c->host->error(res, 503, "shutting_down", "the server is stopping", NULL,
                     0);
    return -1;
  }
  pthread_attr_t attr;
  pthread_t th;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&th, &attr, task_main, t);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    free(t);
    pthread_mutex_lock(&c->mu);
    if (--c->tasks == 0) pthread_cond_broadcast(&c->idle);
    pthread_mutex_unlock(&c->mu);
    c->host->error(res, 500, "internal", "cannot start a thread", NULL, 0);
    return -1;
  }
  return 0;
}

/* --------------------------------------------------------------- jobs */

static const char *job_state_name(adm_job_state s) {
  switch (s) {
  case ADM_JOB_RUNNING:
    return "running";
  case ADM_JOB_SUCCEEDED:
    return "succeeded";
  default:
    return "failed";
  }
}

/* The job with this id, or NULL. Under mu. */
static adm_job *job_find(adm_ctx *c, const char *id, size_t len) {
  uint64_t first = c->job_seq > ADM_JOBS_KEPT ? c->job_seq - ADM_JOBS_KEPT : 0;
  for (uint64_t n = first; n < c->job_seq; n++) {
    adm_job *j = &c->jobs[n % ADM_JOBS_KEPT];
    if (strlen(j->id) == len && memcmp(j->id, id, len) == 0) return j;
  }
  return NULL;
}

/* A copy of job j's report into g. Under mu. */
static void job_gen(yajl_gen g, const adm_job *j) {
  yajl_gen_map_open(g);
  adm_gen_str(g, "id");
  adm_gen_str(g, j->id);
  adm_gen_str(g, "kind");
  adm_gen_str(g, "compact");
  adm_gen_str(g, "state");
  adm_gen_str(g, job_state_name(j->state));
  adm_gen_str(g, "progress");
  yajl_gen_map_open(g);
  adm_gen_str(g, "done");
  adm_gen_u64(g, j->done);
  adm_gen_str(g, "total");
  adm_gen_u64(g, j->total);
  adm_gen_str(g, "fraction");
  double f = j->state == ADM_JOB_SUCCEEDED ? 1.0
             : j->total                    ? (double)j->done / (double)j->total
                                           : 0.0;
  yajl_gen_double(g, f > 1.0 ? 1.0 : f);
  yajl_gen_map_close(g);
  adm_gen_str(g, "started_at");
  adm_gen_time(g, j->started_ms);
  adm_gen_str(g, "finished_at");
  adm_gen_time(g, j->finished_ms);
  if (j->state == ADM_JOB_SUCCEEDED) {
    const cs_compact_result *r = &j->result;
    adm_gen_str(g, "result");
    yajl_gen_map_open(g);
    const struct {
      const char *name;
      uint64_t v;
    } rows[] = {
        {"bytes_before", r->bytes_before},
        {"bytes_after", r->bytes_after},
        {"contacts", r->contacts},
        {"trashed", r->trashed},
        {"idempotency_keys", r->idem_keys},
        {"changes", r->changes},
        {"segments_before", r->segments_before},
        {"segments_after", r->segments_after},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
      adm_gen_str(g, rows[i].name);
      adm_gen_u64(g, rows[i].v);
    }
    yajl_gen_map_close(g);
  }
  if (j->state == ADM_JOB_FAILED) {
    adm_gen_str(g, "error");
    yajl_gen_map_open(g);
    adm_gen_str(g, "code");
    adm_gen_str(g, cs_strcode(j->rc));
    adm_gen_str(g, "message");
    adm_gen_str(g, j->msg);
    yajl_gen_map_close(g);
  }
  yajl_gen_map_close(g);
}

static void job_progress(void *ctx, uint64_t done, uint64_t total) {
  adm_job *j = ctx;
  /* The job's slot is not reused while it runs (one compaction runs at a
   * time, and the ring moves one slot per job); adm_job_get reads the two
   * counters atomically, without mu, which this thread never takes here. */
  __atomic_store_n(&j->done, done, __ATOMIC_RELAXED);
  __atomic_store_n(&j->total, total, __ATOMIC_RELAXED);
}

static void job_main(adm_ctx *c, void *arg) {
  adm_job *j = arg;
  cs_compact_opts o = {.progress = job_progress, .progress_ctx = j};
  cs_compact_result r = {0};
  cs_error err = {0};
  int rc = cs_compact_online(c->store, &o, &r, &err);
  char line[700];
  pthread_mutex_lock(&c->mu);
  j->finished_ms = now_ms();
  if (rc == 0) {
    j->state = ADM_JOB_SUCCEEDED;
    j->result = r;
  } else {
    j->state = ADM_JOB_FAILED;
    j->rc = rc;
    snprintf(j->msg, sizeof j->msg, "%s",
             err.msg[0] ? err.msg : cs_strerror(rc));
  }
  c->compacting = false;
  if (rc == 0)
    snprintf(line, sizeof line,
             "admin: compaction %s done: %" PRIu64 " contacts, %" PRIu64
             " bytes -> %" PRIu64,
             j->id, r.contacts, r.bytes_before, r.bytes_after);
  else
    snprintf(line, sizeof line, "admin: compaction %s failed: %s", j->id,
             j->msg);
  pthread_mutex_unlock(&c->mu);
  c->host->log(c->host->ctx, NULL, rc == 0 ? CD_LOG_INFO : CD_LOG_ERROR, line);
}

int adm_compact(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  if (req->body_len != 0) {
    /* The compaction takes no options over HTTP: the server's own trash
     * and change windows are what it keeps. */
    c->host->error(res, 400, "invalid_body",
                   "POST /admin/compact takes no body", NULL, 0);
    return CD_DONE;
  }
  pthread_mutex_lock(&c->mu);
  if (c->compacting) {
    adm_job *run = &c->jobs[(c->job_seq - 1) % ADM_JOBS_KEPT];
    char msg[128];
    snprintf(msg, sizeof msg, "compaction %s is running", run->id);
    pthread_mutex_unlock(&c->mu);
    c->host->error(res, 409, "compaction_running", msg, NULL, 0);
    return CD_DONE;
  }
  adm_job *j = &c->jobs[c->job_seq % ADM_JOBS_KEPT];
  memset(j, 0, sizeof *j);
  /* Random, so that a restarted server never answers an old job's id with
   * a new job's report. */
  uint64_t rnd = 0;
  if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
    rnd = (uint64_t)now_ms();
  snprintf(j->id, sizeof j->id, ADM_JOB_ID_PREFIX "%016" PRIx64, rnd);
  j->state = ADM_JOB_RUNNING;
  j->started_ms = now_ms();
  c->job_seq++;
  c->compacting = true;
  pthread_mutex_unlock(&c->mu);

  if (adm_task(c, res, job_main, j) != 0) {
    pthread_mutex_lock(&c->mu);
    c->job_seq--;
    c->compacting = false;
    pthread_mutex_unlock(&c->mu);
    return CD_DONE;
  }
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  pthread_mutex_lock(&c->mu);
  job_gen(g, j);
  char where[64];
  snprintf(where, sizeof where, "/admin/jobs/%s", j->id);
  pthread_mutex_unlock(&c->mu);
  c->host->header(res, "location", where);
  adm_send_json(c, res, 202, g);
  return CD_DONE;
}

int adm_job_get(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  const cd_pair *id = &req->params[0];
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) return adm_oom(c, res), CD_DONE;
  pthread_mutex_lock(&c->mu);
  adm_job *j = job_find(c, id->value, id->value_len);
  if (j) {
    adm_job copy = *j;
    copy.done = __atomic_load_n(&j->done, __ATOMIC_RELAXED);
    copy.total = __atomic_load_n(&j->total, __ATOMIC_RELAXED);
    job_gen(g, &copy);
  }
  pthread_mutex_unlock(&c->mu);
  if (!j) {
    yajl_gen_free(g);
    c->host->error(res, 404, "job_not_found", "no such job", NULL, 0);
    return CD_DONE;
  }
  adm_send_json(c, res, 200, g);
  return CD_DONE;
}

/* -------------------------------------------------------------- table */

static int adm_create(const cd_host *host, cs_store *store, void **state_out,
                      char *errbuf, size_t errlen) {
  adm_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(errbuf, errlen, "admin: out of memory");
    return -1;
  }
  c->host = host;
  c->store = store;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->idle, NULL);
  /* --follow: this server is a standby of that primary. */
  const char *follow =
      host->option ? host->option(host->ctx, "follow", 0) : NULL;
  if (follow) {
    const char *key_file = host->option(host->ctx, "follow-key-file", 0);
    if (!key_file ||
        adm_follow_start(c, follow, key_file, errbuf, errlen) != 0) {
      if (!key_file)
        snprintf(errbuf, errlen, "--follow needs --follow-key-file");
      pthread_cond_destroy(&c->idle);
      pthread_mutex_destroy(&c->mu);
      free(c);
      return -1;
    }
  }
  *state_out = c;
  return 0;
}

/* Streams end when the host aborts them at shutdown (stream_write then
 * fails); an import ends with its commit; a compaction runs to its end,
 * since stopping it half-way would only throw its work away. */
static void adm_drain(void *state) {
  adm_ctx *c = state;
  adm_follow_stop(c); /* it appends to the store */
  pthread_mutex_lock(&c->mu);
  c->draining = true;
  if (c->compacting)
    c->host->log(c->host->ctx, NULL, CD_LOG_INFO,
                 "admin: waiting for the running compaction to finish");
  while (c->tasks > 0)
    pthread_cond_wait(&c->idle, &c->mu);
  pthread_mutex_unlock(&c->mu);
}

static void adm_destroy(void *state) {
  adm_ctx *c = state;
  if (!c) return;
  adm_drain(c);
  adm_follow_free(c);
  pthread_cond_destroy(&c->idle);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

#define ADM CD_ROUTE_ADMIN

static const cd_route adm_routes[] = {
    {"GET", "/admin/backup", ADM, adm_backup},
    {"POST", "/admin/keys", ADM, adm_keys_create},
    {"GET", "/admin/keys", ADM, adm_keys_list},
    {"DELETE", "/admin/keys/{key_id}", ADM, adm_keys_revoke},
    {"GET", "/admin/accounts", ADM, adm_accounts_list},
    {"DELETE", "/admin/accounts/{name}", ADM, adm_account_delete},
    {"PUT", "/admin/accounts/{name}/moving", ADM, adm_moving_put},
    {"GET", "/admin/accounts/{name}/keys", ADM, adm_account_keys},
    {"POST", "/admin/accounts/{name}/keys", ADM, adm_account_keys_add},
    {"GET", "/admin/accounts/{name}/digest", ADM, adm_digest},
    {"GET", "/admin/accounts/{name}/export", ADM, adm_export},
    {"POST", "/admin/accounts/{name}/import", ADM | CD_ROUTE_BULK, adm_import},
    {"POST", "/admin/compact", ADM, adm_compact},
    {"GET", "/admin/jobs/{id}", ADM, adm_job_get},
    {"GET", "/admin/stats", ADM, adm_stats},
    {"GET", "/admin/replication", ADM, adm_replication},
    {"POST", "/admin/replication/ack", ADM, adm_replication_ack},
    {"POST", "/admin/promote", ADM, adm_promote},
    {"POST", "/admin/fence", ADM, adm_fence},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "admin",
    .create = adm_create,
    .destroy = adm_destroy,
    .routes = adm_routes,
    .route_count = sizeof adm_routes / sizeof adm_routes[0],
    .drain = adm_drain,
};
