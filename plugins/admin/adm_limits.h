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

#endif
