/*
 * adm_limits.h: every limit of the admin plugin, named once.
 *
 * Each bound says why it is what it is; tests/e2e/e2e_admin.py exercises
 * each at and past its edge.
 */
#ifndef ADM_LIMITS_H
#define ADM_LIMITS_H

/* Long admin requests (backups, exports, imports) running at once. Each
 * holds a thread and, for a backup, the open files of a whole store; an
 * operator needs one or two. Past it: 429 with retry-after. */
#define ADM_TASKS_MAX 4

/* Jobs (online compactions) remembered for GET /admin/jobs/{id}, the
 * newest kept: one compaction runs at a time, so this is a long history. */
#define ADM_JOBS_KEPT 32

/* A job id: "job_" and 16 hex digits. */
#define ADM_JOB_ID_PREFIX "job_"
#define ADM_JOB_ID_BYTES (4 + 16)

/* Bytes gathered before one stream write: large enough that a write is
 * cheap per contact, small against the host's own buffer. */
#define ADM_STREAM_CHUNK_BYTES (256u * 1024u)

/* Contacts handed to the store in one cs_import call: one commit each,
 * small enough that an import does not hold the commit queue long. */
#define ADM_IMPORT_BATCH 4096

/* Refused lines an import's answer lists (all are counted). */
#define ADM_IMPORT_ERRORS_LISTED 100

/* Purges a DELETE /admin/accounts/{name} has in flight before it waits
 * for them: as an import's batch, enough that group commit writes many in
 * one sync, few enough that other writers' requests pass between. */
#define ADM_PURGE_BATCH 4096

/* Rounds of "export the account's ids, purge them" a delete makes before
 * it gives up (500; the account stays, marked moving, for a repeat). The
 * account is marked moving first, so one round finds everything but a
 * write that was past its key check when the mark came; the bound only
 * keeps a delete from looping should writes go on regardless. */
#define ADM_DELETE_ROUNDS_MAX 8

/* Replication (adm_repl.c, adm_follow.c). Standbys reading the log at
 * once (each a thread of its own, outside ADM_TASKS_MAX). */
#define ADM_SHIP_STREAMS_MAX 4
/* What one read of the log hands a stream at most (at least the largest
 * record), and how long it waits for a new batch before it looks whether
 * the server is stopping. */
#define ADM_SHIP_READ_BYTES (2u * 1024 * 1024)
#define ADM_SHIP_WAIT_MS 200
/* The follower's reconnection back-off: doubled after each failure from
 * the first to the last, and back to the first once records arrive. */
#define ADM_FOLLOW_BACKOFF_MIN_MS 50
#define ADM_FOLLOW_BACKOFF_MAX_MS 2000
/* Connecting to the primary, and an acknowledgement's whole exchange. */
#define ADM_FOLLOW_CONNECT_TIMEOUT_MS 2000
#define ADM_FOLLOW_ACK_TIMEOUT_MS 5000
/* The primary's URL (without the route), and the key file's bytes. */
#define ADM_FOLLOW_URL_MAX_BYTES 1024
#define ADM_FOLLOW_KEY_MAX_BYTES 256

#endif
