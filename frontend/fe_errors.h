/*
 * fe_errors.h: the one table that turns an engine code into the API's
 * answer, handed to plugins as host->store_error.
 *
 * Every plugin that answers a failed store call (contacts for every route,
 * health for /healthz) reads its status, code word, message, retry-after
 * and log level here, so two endpoints cannot answer one failure in two
 * ways. The rows follow CS_ERRNO_MAP in engine/cs.h, plus the -errno values
 * that mean the disk refuses writes; anything else is 500 internal.
 *
 * Why the words differ. The engine names the cause: "store_failed"
 * (cs_strcode of CS_EFAILED) says a write or an fsync failed and the store
 * now refuses writes until it is reopened; that is what an operator reads in
 * the log. The API names what a client should do: "store_unavailable" with
 * retry-after says "try again later, it is not your request", and it covers
 * several causes (failed, closing, disk full, read-only) that a client need
 * not tell apart. /healthz says "unavailable" as its status word (its body is
 * no error object), the word the front end also uses for a bare 503 it makes
 * itself (fe_json_code_for_status); its status and retry-after come from
 * this table all the same.
 *
 * Invariants: every row with status 503 carries retry-after and every other
 * row carries none; only rows that are not the client's fault are logged,
 * and account_moving, which is nobody's fault (an operator moves the
 * account; the front end answers it to every request of the account
 * meanwhile), is not either.
 * The table is constant data, safe from any thread.
 *
 * Header-only (static inline over a static table) so that the server and a
 * test host serve the very same rows without linking the front end.
 */
#ifndef FE_ERRORS_H
#define FE_ERRORS_H

#include <errno.h>
#include <stddef.h>

#include "cd_plugin.h"
#include "fe_limits.h"

#define FE_STR_(x) #x
#define FE_STR(x) FE_STR_(x)

/* The answers several rows share. */
#define FE_ERR_UNAVAILABLE_ANSWER                                              \
  {                                                                            \
    503, "store_unavailable", "the store cannot accept writes now",            \
        FE_RETRY_AFTER_S, FE_STR(FE_RETRY_AFTER_S), CD_LOG_WARN                \
  }
#define FE_ERR_INTERNAL_ANSWER                                                 \
  { 500, "internal", "internal error", 0, NULL, CD_LOG_ERROR }
#define FE_ERR_UNAVAILABLE(rc)                                                 \
  { rc, FE_ERR_UNAVAILABLE_ANSWER }
#define FE_ERR_INTERNAL(rc)                                                    \
  { rc, FE_ERR_INTERNAL_ANSWER }

typedef struct fe_store_error_row {
  int rc;
  cd_store_error answer;
} fe_store_error_row;

/*
 * The answer for rc (non-zero). The 4xx rows are the client's: an invalid
 * value (the plugin puts the engine's detail and field in the message), a
 * missing or another account's contact, an email in use. The 503 rows are a
 * store that cannot take writes now. The 500 rows are bugs or damage the
 * client cannot help: corrupt data, a locked or unknown-format directory
 * (which cs_open reports, not a request), a key or account code a contact
 * call never returns.
 */
static inline const cd_store_error *fe_store_error(int rc) {
  static const fe_store_error_row rows[] = {
      {CS_EINVAL,
       {400, "invalid_field", "invalid value", 0, NULL, CD_LOG_NONE}},
      {CS_ENOTFOUND,
       {404, "not_found", "no such contact", 0, NULL, CD_LOG_NONE}},
      {CS_EDUPLICATE,
       {409, "duplicate_email", "email: another contact of the account has it",
        0, NULL, CD_LOG_NONE}},
      {CS_EPRECONDITION,
       {412, "precondition_failed",
        "the contact's version is not one If-Match names", 0, NULL,
        CD_LOG_NONE}},
      {CS_EIDEM_REUSED,
       {422, "idempotency_key_reused",
        "the idempotency key was used with another request", 0, NULL,
        CD_LOG_NONE}},
      {CS_EIDEM_BUSY,
       {409, "idempotency_key_in_use",
        "a request with this idempotency key is in flight",
        FE_IDEM_RETRY_AFTER_S, FE_STR(FE_IDEM_RETRY_AFTER_S), CD_LOG_NONE}},
      {CS_EEXPIRED,
       {410, "cursor_expired",
        "the changes after this cursor are no longer kept", 0, NULL,
        CD_LOG_NONE}},
      {CS_ECURSOR,
       {400, "invalid_cursor", "not a cursor this server handed out", 0, NULL,
        CD_LOG_NONE}},
      /* Only POST /admin/compact meets it, when another compaction (or a
       * bulk load) holds the store. */
      {CS_EBUSY,
       {409, "compaction_running", "another compaction of the store is running",
        0, NULL, CD_LOG_NONE}},
      /* Every request of an account marked moving (the front end's key
       * check, fe_server.c req_authenticate). */
      {CS_EMOVING,
       {503, "account_moving",
        "the account is moving to another server; retry shortly",
        FE_MOVING_RETRY_AFTER_S, FE_STR(FE_MOVING_RETRY_AFTER_S), CD_LOG_NONE}},
      /* A shard's 2^56 ids are spent (cs_limits.h CS_SHARD_ID_SPAN): its
       * accounts must move to a shard numbered higher. */
      {CS_EIDS_SPENT,
       {503, "ids_exhausted",
        "this shard has given every id it may; its accounts must move to a "
        "shard numbered higher",
        FE_RETRY_AFTER_S, FE_STR(FE_RETRY_AFTER_S), CD_LOG_WARN}},
      /* Replication (engine/README.md "Standby"): a standby or a fenced
       * primary takes no writes (the client goes to the primary); under
       * --standby-ack required, no standby acknowledged in time: the
       * write's outcome is unknown, as after a timeout. */
      {CS_ESTANDBY,
       {503, "standby", "this server is a standby: writes go to the primary",
        FE_STANDBY_RETRY_AFTER_S, FE_STR(FE_STANDBY_RETRY_AFTER_S),
        CD_LOG_NONE}},
      {CS_EFENCED,
       {503, "fenced", "this server was fenced: another server is the primary",
        FE_STANDBY_RETRY_AFTER_S, FE_STR(FE_STANDBY_RETRY_AFTER_S),
        CD_LOG_NONE}},
      {CS_ESTANDBY_DOWN,
       {503, "standby_unavailable",
        "no standby acknowledged the write in time; its outcome is unknown: "
        "retry with the same Idempotency-Key",
        FE_STANDBY_RETRY_AFTER_S, FE_STR(FE_STANDBY_RETRY_AFTER_S),
        CD_LOG_WARN}},
      {CS_ESHIP_GONE,
       {410, "replication_gone",
        "the log no longer continues from that position: start the standby "
        "again from a backup",
        0, NULL, CD_LOG_NONE}},
      FE_ERR_INTERNAL(CS_ECORRUPT),
      FE_ERR_UNAVAILABLE(CS_EFAILED),
      FE_ERR_INTERNAL(CS_ELOCKED),
      FE_ERR_INTERNAL(CS_EFORMAT),
      FE_ERR_UNAVAILABLE(CS_ECLOSING),
      FE_ERR_INTERNAL(CS_EKEY),
      FE_ERR_INTERNAL(CS_EACCOUNT),
      /* The disk refuses writes: full, over quota, read-only, failing. */
      FE_ERR_UNAVAILABLE(-ENOSPC),
      FE_ERR_UNAVAILABLE(-EDQUOT),
      FE_ERR_UNAVAILABLE(-EROFS),
      FE_ERR_UNAVAILABLE(-EIO),
  };
  static const cd_store_error other = FE_ERR_INTERNAL_ANSWER;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    if (rows[i].rc == rc) return &rows[i].answer;
  return &other;
}

#endif
