/*
 * adm.h: the admin plugin's private header.
 *
 *   admin.c     the plugin table: state, create, drain, destroy; the
 *               threads long requests run on; online compaction's jobs
 *   adm_keys.c  /admin/keys, /admin/accounts and /admin/stats: small
 *               answers given on the worker thread
 *   adm_copy.c  /admin/backup, /admin/accounts/{name}/export and
 *               /import: the streams and the import, each on a thread of
 *               its own (adm_task); the export's byte stream
 *               (adm_export_write), which the digest hashes
 *   adm_move.c  what moving an account between servers needs: the
 *               moving mark, the account's keys out and in with their
 *               hashes, its digest, and DELETE /admin/accounts/{name}
 *               its own (adm_task)
 *   adm_repl.c  /admin/replication (the log to a standby, a stream on a
 *               thread of its own), /admin/replication/ack,
 *               /admin/promote, /admin/fence
 *   adm_follow.c  a standby's client loop (--follow): reads the
 *               primary's stream, appends, acknowledges, reconnects
 *
 * Every route is CD_ROUTE_ADMIN: the front end has checked that the
 * caller holds an admin key before a handler runs.
 *
 * Concurrency: adm_ctx.mu guards the task count, the draining flag and
 * the job table; it is held only for memory work. A task thread never
 * runs on a worker's loop, so it may block on the store (cs_import waits
 * for its commit, cs_compact_online for the whole compaction) and on the
 * client (stream_write waits while the client is behind).
 */
#ifndef ADM_H
#define ADM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>

#include "adm_limits.h"
#include "cd_plugin.h"
#include "cs.h"
#include "admin.h"

typedef enum adm_job_state {
  ADM_JOB_RUNNING = 0,
  ADM_JOB_SUCCEEDED,
  ADM_JOB_FAILED
} adm_job_state;

/* One online compaction, as GET /admin/jobs/{id} reports it. */
typedef struct adm_job {
  char id[ADM_JOB_ID_BYTES + 1];
  adm_job_state state;
  uint64_t done, total; /* progress, in the engine's units */
  int64_t started_ms, finished_ms;
  cs_compact_result result;          /* when succeeded */
  int rc;                            /* when failed: the engine's code */
  char msg[sizeof(cs_error){0}.msg]; /* and its message for people */
} adm_job;

typedef struct adm_ctx {
  const cd_host *host;
  cs_store *store;
  pthread_mutex_t mu;
  pthread_cond_t idle;         /* signalled when tasks drops to 0 */
  int tasks;                   /* task threads running */
  bool draining;               /* no new task starts */
  adm_job jobs[ADM_JOBS_KEPT]; /* a ring: the newest ADM_JOBS_KEPT */
  uint64_t job_seq;            /* jobs ever started */
  bool compacting;             /* a compaction job is running */
  int ship_streams;            /* GET /admin/replication streams open */
  struct adm_follow *follow;   /* --follow: the client loop, or NULL */
} adm_ctx;

/* Runs fn(c, arg) on a thread of its own, counted in c->tasks. Returns 0,
 * or answers res itself (429 when ADM_TASKS_MAX run, 503 when the server
 * is stopping, 500 when no thread can start) and returns -1; arg is then
 * the caller's to free. */
int adm_task(adm_ctx *c, cd_response *res, void (*fn)(adm_ctx *c, void *arg),
             void *arg);

/* Answers a failed store call as the host's table says. */
void adm_store_error(adm_ctx *c, cd_response *res, int rc, const cs_error *err);
/* Answers 500 "out of memory". */
void adm_oom(adm_ctx *c, cd_response *res);
/* Sends the JSON in g (complete) with status, and frees g. */
void adm_send_json(adm_ctx *c, cd_response *res, int status, yajl_gen g);
/* A string or a key, NUL-terminated, into g. */
void adm_gen_str(yajl_gen g, const char *s);
/* RFC 3339 UTC with milliseconds, or null for 0. */
void adm_gen_time(yajl_gen g, int64_t ms);
void adm_gen_u64(yajl_gen g, uint64_t v);

/* Looks account name up in the server's keyring: 0 and *id, or answers
 * 404 account_not_found (or 400 for a malformed name) and returns -1. */
int adm_account(adm_ctx *c, cd_response *res, const char *name, uint32_t *id);
/* The route's {name} parameter (its first) as a C string into name, or
 * answers 404 account_not_found (no name could be one) and returns -1. */
int adm_account_param(adm_ctx *c, const cd_request *req, cd_response *res,
                      char name[CS_ACCOUNT_NAME_MAX_BYTES + 1]);

/* The server's keyring, or answers 500 and returns NULL. */
cs_keyring *adm_ring(adm_ctx *c, cd_response *res);
/* Answers 200 {"data": [...]} with the keys as the admin API lists them
 * (key_id, account, role, created_at, revoked): every key, or, when account
 * is not NULL, that account's keys with their hashes (what a move copies). */
void adm_send_keys(adm_ctx *c, cd_response *res, const uint32_t *account);

/* What an account's export held. */
typedef struct adm_export_counts {
  uint64_t live;  /* lines of live contacts */
  uint64_t trash; /* lines of contacts in the trash */
} adm_export_counts;

/*
 * The bytes GET /admin/accounts/{name}/export sends, as of one commit
 * (cs_export): for each contact its line (ct_gen_export_line, named name)
 * and a '\n', handed to put in order; put returning non-zero stops it
 * (returned). *counts says how many lines. 0, or cs_export's error (err
 * filled), -ENOMEM. From a task thread only.
 */
int adm_export_write(adm_ctx *c, uint32_t account, const char *name,
                     int (*put)(void *ctx, const void *p, size_t n), void *ctx,
                     adm_export_counts *counts, cs_error *err);

/* The route handlers. */
int adm_keys_create(void *state, const cd_request *req, cd_response *res);
int adm_keys_list(void *state, const cd_request *req, cd_response *res);
int adm_keys_revoke(void *state, const cd_request *req, cd_response *res);
int adm_accounts_list(void *state, const cd_request *req, cd_response *res);
int adm_stats(void *state, const cd_request *req, cd_response *res);
int adm_backup(void *state, const cd_request *req, cd_response *res);
int adm_export(void *state, const cd_request *req, cd_response *res);
int adm_import(void *state, const cd_request *req, cd_response *res);
int adm_compact(void *state, const cd_request *req, cd_response *res);
int adm_job_get(void *state, const cd_request *req, cd_response *res);
int adm_moving_put(void *state, const cd_request *req, cd_response *res);
int adm_account_keys(void *state, const cd_request *req, cd_response *res);
int adm_account_keys_add(void *state, const cd_request *req, cd_response *res);
int adm_digest(void *state, const cd_request *req, cd_response *res);
int adm_account_delete(void *state, const cd_request *req, cd_response *res);
int adm_replication(void *state, const cd_request *req, cd_response *res);
int adm_replication_ack(void *state, const cd_request *req, cd_response *res);
int adm_promote(void *state, const cd_request *req, cd_response *res);
int adm_fence(void *state, const cd_request *req, cd_response *res);

/* The "replication" member of GET /admin/stats. */
void adm_repl_gen(adm_ctx *c, yajl_gen g);

/* adm_follow.c: with --follow URL --follow-key-file FILE, a thread that
 * follows the primary (c->follow). start: 0, or -1 with errbuf (a bad key
 * file, no thread). stop: ends and joins it (promotion, drain); safe to
 * call again. */
int adm_follow_start(adm_ctx *c, const char *url, const char *key_file,
                     char *errbuf, size_t errlen);
void adm_follow_stop(adm_ctx *c);
void adm_follow_free(adm_ctx *c);
/* The follower's state for GET /admin/stats, into g (a map's members). */
void adm_follow_gen(adm_ctx *c, yajl_gen g);

#endif
