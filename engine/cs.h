/*
 * cs.h: the contacts store, the engine's one public header.
 *
 * A store is a data directory holding an append-only log of numbered segment
 * files, a manifest naming the files that make up the store, an optional
 * snapshot of the indexes, a key file and a lock file. In memory it keeps a
 * hashed primary index (id -> record location) and per-field inverted indexes
 * answering exact, prefix and words searches over folded text.
 *
 * Concurrency: every function may be called from any thread. Reads (cs_get,
 * cs_search, cs_iterate, cs_stats_get) run in parallel and never wait for a
 * sync. Writes (cs_write_apply, and cs_create, cs_update, cs_delete, its
 * three original cases) are validated at once and
 * either rejected synchronously or accepted; an accepted write's completion
 * callback fires from the store's commit thread once its record is durable
 * (durability CS_DURABILITY_FSYNC) or written (CS_DURABILITY_NONE). Many
 * concurrent writes share one fdatasync (group commit). A write is visible to
 * reads before its callback fires and never before it is durable.
 *
 * Errors: a function that can fail returns 0 or a negative code: -errno for a
 * system error, or one of the CS_E* codes below; when err is not NULL it is
 * filled with the code and a message a person can act on (naming the file
 * and offset where it applies).
 *
 * Memory: strings in a cs_contact returned by the store point into memory the
 * store owns and never changes; they stay valid until cs_close.
 */
#ifndef CS_H
#define CS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_limits.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

/* The engine's own codes, in a range no errno reaches. */
#define CS_ERRNO_MAP(X)                                                        \
  X(CS_EINVAL, -10001, "invalid_field", "invalid value")                       \
  X(CS_ENOTFOUND, -10002, "not_found", "no such contact")                      \
  X(CS_EDUPLICATE, -10003, "duplicate_email", "email already in use")          \
  X(CS_ECORRUPT, -10004, "corrupt", "data is damaged")                         \
  X(CS_EFAILED, -10005, "store_failed",                                        \
    "the store refuses writes after an I/O failure; reopen it")                \
  X(CS_ELOCKED, -10006, "locked", "data directory is in use")                  \
  X(CS_EFORMAT, -10007, "bad_format", "unknown file format or version")        \
  X(CS_ECLOSING, -10008, "closing", "the store is closing")                    \
  X(CS_EKEY, -10009, "invalid_key", "no such key")                             \
  X(CS_EACCOUNT, -10010, "invalid_account", "invalid account name")            \
  X(CS_EPRECONDITION, -10011, "precondition_failed",                           \
    "the contact's version is not one the condition names")                    \
  X(CS_EIDEM_REUSED, -10012, "idempotency_key_reused",                         \
    "the idempotency key was used for another request")                        \
  X(CS_EIDEM_BUSY, -10013, "idempotency_key_in_use",                           \
    "a request with this idempotency key is in flight")                        \
  X(CS_EEXPIRED, -10014, "cursor_expired",                                     \
    "the changes after this cursor are no longer kept")                        \
  X(CS_ECURSOR, -10015, "invalid_cursor",                                      \
    "not a cursor this store handed out")                                      \
  X(CS_EBUSY, -10016, "busy", "another compaction of this store is running")   \
  X(CS_EMOVING, -10017, "account_moving",                                      \
    "the account is marked moving to another store")                           \
  X(CS_EIDS_SPENT, -10018, "ids_exhausted",                                    \
    "the store's shard has given every id of its span")                        \
  X(CS_ESTANDBY, -10019, "standby",                                            \
    "a standby takes no writes: it follows its primary")                       \
  X(CS_EFENCED, -10020, "fenced",                                              \
    "this store was fenced: another store is the primary")                     \
  X(CS_ESTANDBY_DOWN, -10021, "standby_unavailable",                           \
    "no standby acknowledged the write in time")                               \
  X(CS_ESHIP_GONE, -10022, "replication_gone",                                 \
    "the log no longer continues from that position")

enum {
#define CS_ERRNO_ENUM(name, value, word, text) name = value,
  CS_ERRNO_MAP(CS_ERRNO_ENUM)
#undef CS_ERRNO_ENUM
};

typedef struct cs_error {
  int code;    /* the return code, 0 when none */
  int field;   /* the field to blame (cs_field), or -1 */
  uint64_t id; /* CS_EDUPLICATE: the id holding the email; else 0 */
  /* CS_EPRECONDITION: the contact's current version, 0 when it is not
   * live (then no entity tag is named). */
  uint64_t version;
  char msg[512]; /* for people; never a key */
} cs_error;

/* A stable snake_case word for a code ("not_found"), or "internal". */
const char *cs_strcode(int rc);
/* A short description of a code, including strerror for -errno. */
const char *cs_strerror(int rc);

/* ------------------------------------------------------------ contacts */

typedef enum cs_field {
  CS_FIRST_NAME = 0,
  CS_LAST_NAME,
  CS_EMAIL,
  CS_PHONE,
  CS_COMPANY,
  CS_JOB_TITLE,
  CS_NOTES,
  CS_FIELD_COUNT
} cs_field;

/* Searches may also look a contact up by id. */
#define CS_SEARCH_BY_ID CS_FIELD_COUNT

/* The API's name of a field ("first_name"), or "id" for CS_SEARCH_BY_ID. */
const char *cs_field_name(int field);
/* The field with that name (not NUL-terminated), or -1. "id" is not a field. */
int cs_field_from_name(const char *name, size_t len);

/*
 * The contact's rules, one row per field, in cs_field order: the one place
 * that says what a field is called, what kind of value it holds, its limit,
 * whether a contact must have it and whether it can be searched. Everything
 * that lists fields, maps names or checks "required" (validation here, the
 * API's parser, the load tool, the record and index code) reads this table,
 * so a new field is one row here (and its cs_field) and nothing else.
 */
typedef enum cs_kind {
  CS_KIND_NAME,  /* a name-like line of text, limited in code points */
  CS_KIND_EMAIL, /* an address: one '@', a dotted domain, no whitespace */
  CS_KIND_PHONE, /* digits and + ( ) - . or spaces */
  CS_KIND_TEXT,  /* free text, limited in bytes */
} cs_kind;

typedef enum cs_unit { CS_UNIT_CHARS, CS_UNIT_BYTES } cs_unit;

typedef struct cs_field_info {
  const char *name;   /* the API's key, also the record's map key */
  cs_kind kind;       /* which shape check applies */
  cs_unit unit;       /* what limit counts */
  unsigned limit;     /* at most this many units, after trimming */
  unsigned min_chars; /* a present value holds at least this many */
  bool required;      /* a contact cannot be without it */
  bool searchable;    /* GET /contacts?searchby= takes it */
} cs_field_info;

/* The table itself, CS_FIELD_COUNT rows indexed by cs_field. */
extern const cs_field_info cs_field_table[CS_FIELD_COUNT];

/* The row of field, or NULL when field is not a cs_field. */
const cs_field_info *cs_field_info_of(int field);
/* Whether field is required (false for anything that is not a field). */
bool cs_field_required(int field);
/* Bits (1 << cs_field) of the required fields. */
uint32_t cs_field_required_mask(void);
/* The first required field (in cs_field order) whose bit is not in
 * present_mask, or -1 when none is missing: "which required field does
 * this contact or record lack". */
int cs_field_first_missing(uint32_t present_mask);

/*
 * The keys the server sets on every contact and writes in every contact
 * object (and so in every dump), which a client may not send: a create or
 * an edit that gives one is refused, a load ignores them.
 */
typedef enum cs_server_field {
  CS_SERVER_ID = 0,
  CS_SERVER_CREATED_AT,
  CS_SERVER_UPDATED_AT,
  CS_SERVER_VERSION,
  CS_SERVER_FIELD_COUNT
} cs_server_field;

/* "id", "created_at", "updated_at", "version"; "?" for anything else. */
const char *cs_server_field_name(int sf);
/* The cs_server_field with that name (not NUL-terminated), or -1. */
int cs_server_field_from_name(const char *name, size_t len);

/* A string that need not be NUL-terminated. ptr == NULL means absent. */
typedef struct cs_str {
  const char *ptr;
  size_t len;
} cs_str;

/* Ids are exactly 20 decimal digits with a non-zero first digit. */
#define CS_ID_MIN 10000000000000000000ull
#define CS_ID_DIGITS 20

typedef struct cs_contact {
  uint64_t id;
  uint32_t account;
  int64_t created_ms; /* Unix time in milliseconds */
  int64_t updated_ms;
  /* 1 at creation, one more at every change applied (edit, upsert that
   * changes something, restore); a delete keeps it. Set by the store: what
   * a caller puts here on a create is ignored, except between
   * cs_bulk_begin and cs_bulk_end, where a non-zero version is kept (a
   * load keeps its dump's versions). */
  uint64_t version;
  int64_t deleted_ms; /* contacts in the trash (cs_trash_list): when */
  cs_str field[CS_FIELD_COUNT];
} cs_contact;

/* Shard K's ids (cs_limits.h CS_SHARD_MAX, CS_SHARD_ID_SPAN): the ids
 * after cs_shard_floor(K), up to and including cs_shard_floor(K + 1). A
 * store gives only its own shard's ids, so no two shards ever give the
 * same one, and an account's ids keep increasing when it moves to a shard
 * numbered higher. */
uint64_t cs_shard_floor(uint32_t shard);
/* The shard whose span holds id (an id from cs_id_parse). */
uint32_t cs_id_shard(uint64_t id);

/* Formats an id as its 20 digits and a NUL into out. */
void cs_id_format(uint64_t id, char out[CS_ID_DIGITS + 1]);
/* Parses decimal digits only (no sign, no space) into a value in
 * min..max. 0 or CS_EINVAL. */
int cs_decimal_parse(const char *s, size_t len, uint64_t min, uint64_t max,
                     uint64_t *out);
/* Parses exactly 20 digits with a non-zero first one. 0 or CS_EINVAL. */
int cs_id_parse(const char *s, size_t len, uint64_t *id_out);
/* Formats Unix ms as RFC 3339 UTC with milliseconds
 * ("2026-11-26T08:58:00.123Z"). */
void cs_time_format(int64_t ms, char out[32]);
/* Parses an RFC 3339 date-time ("2026-11-26T08:58:00.123Z"; T or t, Z or z
 * or a numeric offset such as +01:00; no fraction, or 1 to 9 fraction
 * digits, cut to milliseconds) of a year 1970..9999 into Unix ms at or
 * after the epoch. No leap second, no whitespace. 0 or CS_EINVAL. */
int cs_time_parse(const char *s, size_t len, int64_t *ms_out);

/*
 * Checks a contact as the API's rules say (required fields, lengths, UTF-8,
 * no NUL, email and phone shapes) after trimming leading and trailing
 * whitespace from every present field, which it does in place on *c.
 * Returns 0 or CS_EINVAL with err->field naming the field.
 */
int cs_contact_validate(cs_contact *c, cs_error *err);

/*
 * Checks one present value of field as cs_contact_validate does, trimming
 * *v in place first: valid UTF-8 without NUL, the field's length and shape
 * (required-ness is the contact's business, not the value's). 0 or
 * CS_EINVAL with err->field and a message "field: why".
 */
int cs_field_check(int field, cs_str *v, cs_error *err);

/* Text helpers with the rules above: code points in s (-1 for invalid
 * UTF-8 or a NUL); bytes of the whitespace code point at s (0 when s does
 * not start with whitespace); s without leading and trailing whitespace. */
long cs_utf8_chars(const char *s, size_t len);
size_t cs_space_len(const char *s, size_t len);
cs_str cs_trim(cs_str v);

/* -------------------------------------------------------------- I/O seam */

/*
 * Every file operation the store makes that changes the disk goes through
 * this table, so that tests can fail the Nth call or simulate a power loss.
 * Each function returns 0 (or a count) or -errno. cs_io_posix() is the real
 * one. Reads go through mmap and are not part of the seam.
 */
typedef struct cs_io {
  void *ctx;
  int (*open)(void *ctx, const char *path, int flags,
              int mode); /* fd or -errno */
  int (*close)(void *ctx, int fd);
  long (*pwrite)(void *ctx, int fd, const void *buf, size_t len, uint64_t off);
  int (*fdatasync)(void *ctx, int fd);
  int (*fsync)(void *ctx, int fd);
  int (*ftruncate)(void *ctx, int fd, uint64_t len);
  int (*rename)(void *ctx, const char *from, const char *to);
  int (*unlink)(void *ctx, const char *path);
  int (*fsync_dir)(void *ctx, const char *dir);
} cs_io;

const cs_io *cs_io_posix(void);

/* ----------------------------------------------------------------- store */

typedef struct cs_store cs_store;

typedef enum cs_durability {
  CS_DURABILITY_FSYNC = 0, /* answer a write only once its record is synced */
  CS_DURABILITY_NONE = 1,  /* answer once written to the page cache */
} cs_durability;

typedef struct cs_options {
  cs_durability durability;
  uint32_t segment_bytes_max; /* 0: CS_SEGMENT_BYTES_DEFAULT */
  const cs_io *io;            /* NULL: cs_io_posix() */
  bool no_snapshot_on_close;  /* tests: close without writing a snapshot */
  bool no_snapshot_load;      /* open by replaying the whole log */
  /* Write a snapshot from the commit thread after this many bytes of log
   * since the last one. 0: CS_SNAPSHOT_EVERY_BYTES; UINT64_MAX: never. */
  uint64_t snapshot_every_bytes;
  /* For reading contacts only (dumps, stats): the search indexes are
   * neither loaded nor built, so open is faster and smaller; searches and
   * writes then answer CS_EINVAL, and close writes no snapshot. */
  bool no_indexes;
  /* Called with one line for each thing open noticed and repaired (a torn
   * tail cut, a damaged snapshot ignored). NULL: print to stderr. */
  void (*notice)(void *ctx, const char *line);
  void *notice_ctx;
  /* How long a deleted contact stays in the trash. 0: CS_TRASH_MS_DEFAULT. */
  int64_t trash_ms;
  /* How long the change feed keeps a change. 0: CS_CHANGES_MS_DEFAULT. */
  int64_t changes_ms;
  /* The clock for trash windows and idempotency expiry (Unix ms); NULL:
   * the real one. Tests move time on. */
  int64_t (*now_ms)(void *ctx);
  void *now_ctx;
  /* The store's shard (0 .. CS_SHARD_MAX), when shard_set: a new store is
   * made for it, and an existing store of another shard is refused
   * (CS_EINVAL, naming both). Without shard_set a new store is shard 0 and
   * an existing one is what its manifest says. */
  uint32_t shard;
  bool shard_set;
  /* Replication (ship.c, follow.c; engine/README.md "Standby"). standby:
   * open as a standby, which takes records only through cs_follow_append
   * and refuses every write (CS_ESTANDBY) until cs_promote. standby_ack:
   * CS_STANDBY_ACK_REQUIRED applies and answers a write only once a
   * standby acknowledged it (cs_ship_ack); standby_timeout_ms bounds that
   * wait (0: CS_STANDBY_TIMEOUT_MS_DEFAULT). */
  bool standby;
  int standby_ack; /* cs_standby_ack */
  uint32_t standby_timeout_ms;
} cs_options;

/*
 * Opens (creating when empty or missing) the store in dir and locks it.
 * A second opener of the same directory gets CS_ELOCKED with the holder's
 * pid in the message. Loads the newest valid snapshot and replays the log
 * after it; a torn tail on the last segment is cut and reported through
 * opts->notice; damage anywhere else is CS_ECORRUPT naming file and offset.
 * opts may be NULL for defaults. On failure *out is NULL and nothing is left
 * locked.
 */
int cs_open(const char *dir, const cs_options *opts, cs_store **out,
            cs_error *err);

/*
 * Waits for every accepted write to complete, syncs, writes a snapshot
 * (unless the store failed or opts said not to; a snapshot that cannot be
 * written is only reported through opts->notice, since the log holds
 * everything), unlocks and frees. Returns the first error met (a failed
 * store, a failed final sync); the store is freed either way.
 */
int cs_close(cs_store *s, cs_error *err);

/*
 * Completion of an accepted write, called once from the commit thread.
 * rc is 0 when the write is durable (its id in id), or negative when the
 * commit failed: the write may or may not be on disk and the store now
 * refuses writes (CS_EFAILED) until reopened. The callback must not call
 * back into the store's write functions and should return quickly.
 */
typedef void (*cs_done_fn)(void *ctx, int rc, uint64_t id);

/*
 * Creates a contact in account. Validates (trimming *c in place), checks the
 * email is unused in the account, assigns an id (*id_out) and queues the
 * record. Returns 0 when accepted (done, if not NULL, will be called),
 * CS_EINVAL, CS_EDUPLICATE (err->id holds the existing contact), CS_EFAILED,
 * CS_ECLOSING, or -errno; then done is not called and nothing changed.
 * c's strings are copied before return.
 */
int cs_create(cs_store *s, uint32_t account, cs_contact *c, cs_done_fn done,
              void *ctx, uint64_t *id_out, cs_error *err);

/* A change to a contact: fields in set_mask (bit 1 << field) take the values
 * in field[]; fields in clear_mask are removed. */
typedef struct cs_patch {
  uint32_t set_mask;
  uint32_t clear_mask;
  cs_str field[CS_FIELD_COUNT];
} cs_patch;

/*
 * Applies a patch atomically to contact id of account (a contact of another
 * account is CS_ENOTFOUND). The result is validated as a whole; removing a
 * required field, an empty patch or a bad value is CS_EINVAL; a new email in
 * use by another contact of the account is CS_EDUPLICATE. Return and done as
 * for cs_create. The patch's strings are copied before return.
 */
int cs_update(cs_store *s, uint32_t account, uint64_t id, cs_patch *p,
              cs_done_fn done, void *ctx, cs_error *err);

/* Deletes contact id of account. CS_ENOTFOUND when absent (or another
 * account's). Return and done as for cs_create. */
int cs_delete(cs_store *s, uint32_t account, uint64_t id, cs_done_fn done,
              void *ctx, cs_error *err);

/* ------------------------------------------------------------ safe writes */

/*
 * Every write, also the three above, is one cs_write: a kind, its target,
 * and optionally a condition on the target's version and an idempotency
 * entry to keep with its record. The condition, the email match of an
 * upsert and the write itself are one atomic step in the writer: no other
 * write to the account's contacts comes between them.
 */
typedef enum cs_write_kind {
  CS_WRITE_CREATE = 0, /* contact: a new contact */
  CS_WRITE_UPDATE,     /* id, patch: change a live contact */
  CS_WRITE_DELETE,     /* id: move a live contact to the trash (purge: or
                          remove it for good, also from the trash) */
  CS_WRITE_UPSERT,     /* patch with email set: update the account's contact
                          with that email (folded), or create one */
  CS_WRITE_RESTORE,    /* id: bring a contact back from the trash */
} cs_write_kind;

/* If-Match: the versions a write may apply to. An empty list with any set
 * is "*": any live contact. A contact that is not live (or, for restore,
 * not in the trash) fails every condition. */
typedef struct cs_cond {
  bool any;
  uint32_t count;
  uint64_t versions[CS_IF_MATCH_MAX];
} cs_cond;

/* What a write did. */
typedef enum cs_result {
  CS_RESULT_NONE = 0,
  CS_RESULT_CREATED,
  CS_RESULT_UPDATED,
  CS_RESULT_UNCHANGED, /* an upsert whose every given value was stored
                          already: nothing written, done not called */
  CS_RESULT_DELETED,
  CS_RESULT_PURGED,
  CS_RESULT_RESTORED,
} cs_result;

typedef struct cs_outcome {
  uint64_t id;
  uint64_t version; /* the contact's version after the write */
  cs_result result;
  /* The change feed's position just after the write (its record's
   * sequence number); for CS_RESULT_UNCHANGED the feed's end then. */
  uint64_t seq;
} cs_outcome;

/* The answer an idempotent request gave, kept to be given again. */
typedef enum cs_answer_type {
  CS_ANSWER_JSON = 0, /* application/json */
  CS_ANSWER_TEXT = 1, /* text/plain; charset=utf-8 */
} cs_answer_type;

typedef struct cs_answer {
  uint16_t status;
  uint8_t type; /* cs_answer_type */
  cs_str body;
} cs_answer;

/*
 * Renders the answer of an accepted write from its outcome, into memory
 * the caller owns until cs_write returns. Called with the writer held:
 * quick, and never calling back into the store.
 */
typedef void (*cs_render_fn)(void *ctx, const cs_outcome *o, cs_answer *out);

/* The idempotency entry a write carries: a key reserved with
 * cs_idem_begin, and how to render the answer kept with it. */
typedef struct cs_idem {
  const char *key;
  size_t key_len;
  cs_render_fn render;
  void *render_ctx;
} cs_idem;

typedef struct cs_write {
  cs_write_kind kind;
  uint32_t account;
  uint64_t id;             /* update, delete, restore */
  cs_contact *contact;     /* create (trimmed in place) */
  cs_patch *patch;         /* update, upsert (values trimmed in place) */
  bool purge;              /* delete */
  const cs_cond *if_match; /* NULL: unconditional */
  const cs_idem *idem;     /* NULL: none */
  cs_done_fn done;         /* as for cs_create; NULL: no callback */
  void *ctx;
} cs_write;

/*
 * Validates and queues one write. 0 when accepted (*out says what it does;
 * done fires once it is durable) or when an upsert changes nothing
 * (result CS_RESULT_UNCHANGED, nothing queued, done not called, an idem
 * reservation stays to be released). Errors as for cs_create and cs_update,
 * and: CS_ENOTFOUND (restore: not in the trash), CS_EDUPLICATE (restore:
 * the email was taken meanwhile; err->id holds it), CS_EPRECONDITION
 * (err->version holds the current version, 0 when there is no live
 * contact; for a restore, the trashed contact's version, which the API
 * does not name as an entity tag). A write that fails changes nothing.
 */
int cs_write_apply(cs_store *s, cs_write *w, cs_outcome *out, cs_error *err);

/* ----------------------------------------------------------- change feed */

/*
 * Every change of an account, in commit order. A change is one applied
 * write to one contact: a create, an update that changed something, a
 * delete to the trash, a restore, a purge (an upsert that changed nothing
 * is none). Its position is its record's sequence number: positions grow
 * through the store and are never reused, also not across compaction, so
 * a position handed out (a change's seq, a write's cs_outcome.seq, a
 * query's as_of, cs_changes_end) stays a valid cursor as long as the
 * changes after it are kept. Changes are kept cs_options.changes_ms after
 * they committed, across restarts and compactions; a change is visible
 * here exactly when its write's completion may run (after it is durable).
 */
typedef enum cs_change_type {
  CS_CHANGE_CREATED = 0,
  CS_CHANGE_UPDATED,
  CS_CHANGE_DELETED,
  CS_CHANGE_RESTORED,
  CS_CHANGE_PURGED,
  CS_CHANGE_TYPE_COUNT
} cs_change_type;
#define CS_CHANGE_TYPES_ALL ((1u << CS_CHANGE_TYPE_COUNT) - 1)

/* The API's name of a change type ("created"), and back (-1: none). */
const char *cs_change_type_name(int type);
int cs_change_type_from_name(const char *name, size_t len);

typedef struct cs_change {
  uint64_t seq;     /* its position: the cursor just after it */
  uint64_t id;      /* the contact */
  uint64_t version; /* after the change (deleted, purged: the one it had) */
  int64_t at_ms;    /* when it was made (Unix ms) */
  uint32_t account;
  uint8_t type;   /* cs_change_type */
  uint8_t fields; /* the fields whose stored value changed (bit 1 << field);
                     created: those set; deleted, restored, purged: none */
} cs_change;

/* What one read of the feed found. */
typedef struct cs_changes {
  uint32_t count;
  /* Where the next read starts: the last change read, or, when the read
   * reached the end, the feed's end (so a reader filtering by type does
   * not scan the same changes again). */
  uint64_t next;
  bool more; /* changes of the asked types follow next */
} cs_changes;

/*
 * Reads up to max changes of account after position after, of the types
 * in the mask types (bit 1 << cs_change_type; 0 means all), into out[].
 * CS_EEXPIRED when changes after `after` are no longer kept (*oldest then
 * holds the oldest position still valid for the account); CS_ECURSOR when
 * after is past the feed's end. Never blocks on a commit.
 */
int cs_changes_read(cs_store *s, uint32_t account, uint64_t after,
                    unsigned types, cs_change *out, uint32_t max,
                    cs_changes *got, uint64_t *oldest, cs_error *err);

/* The feed's end: the position after every change visible now. */
uint64_t cs_changes_end(cs_store *s);

/* The oldest position still valid as a cursor for account. */
uint64_t cs_changes_oldest(cs_store *s, uint32_t account);

/*
 * Commit watchers: fn(ctx, end) is called on the commit thread after every
 * batch of changes becomes visible, with the feed's new end. It must only
 * wake someone (signal a condition, write an eventfd) and return: it runs
 * while the commit thread waits. At most CS_WATCHERS_MAX; CS_EINVAL past
 * that. cs_watch_remove returns only when fn is no longer running, so a
 * watcher's ctx may be freed after it; both must be called before
 * cs_close.
 */
typedef void (*cs_watch_fn)(void *ctx, uint64_t end);
int cs_watch_add(cs_store *s, cs_watch_fn fn, void *ctx);
void cs_watch_remove(cs_store *s, cs_watch_fn fn, void *ctx);

/* ------------------------------------------------------- side files */

/*
 * Small files kept in the store's directory for the server's own state
 * (webhooks and their positions): name is 1..CS_SIDE_NAME_MAX_BYTES of
 * [a-z0-9_-] and ends ".side" (so no store file is ever named). Written
 * atomically and durably, through the store's cs_io (mode 0600); read
 * whole (CS_ENOTFOUND when absent; at most CS_SIDE_FILE_MAX_BYTES).
 */
int cs_side_write(cs_store *s, const char *name, const void *data, size_t len,
                  cs_error *err);
int cs_side_read(cs_store *s, const char *name, uint8_t **data, size_t *len,
                 cs_error *err);

/* ------------------------------------------------- online administration */

/*
 * Backup as of one commit, while the store serves and writes. Begin pins,
 * in one short moment between commit batches (the commit thread waits for
 * it, nothing else does), the files that make the store as of its last
 * applied commit: the segments the manifest names up to the one that
 * commit ends in (open file descriptors, so a compaction removing them
 * later changes nothing), that one's length at the commit's end, the
 * snapshot (never one past that commit), the key file "keys" and the side
 * files ("*.side"); and a manifest made for exactly these. Never the lock
 * file, and never "default.key" (a plain-text key a server may leave for
 * its operator: a backup is a file that travels, and the key file's
 * hashes are enough to restore every key). Next hands them out one by one
 * (1: f is the next file, its name valid until the next call; 0: no more;
 * <0: error), read gives the current file's bytes (>0, 0 at its end, <0
 * error). Written into an empty directory, the files are a store that
 * cs_open opens without a notice and cs_admin_verify passes, holding
 * exactly the commits up to cs_backup_seq. A backup must end before
 * cs_close of its store. Any thread but a commit completion.
 */
typedef struct cs_backup cs_backup;
typedef struct cs_backup_file {
  const char *name;
  uint64_t size;
  uint32_t mode;
  int64_t mtime_s;
} cs_backup_file;
int cs_backup_begin(cs_store *s, cs_backup **out, cs_error *err);
uint64_t cs_backup_seq(const cs_backup *b);
int cs_backup_next(cs_backup *b, cs_backup_file *f, cs_error *err);
long cs_backup_read(cs_backup *b, void *buf, size_t cap, cs_error *err);
void cs_backup_end(cs_backup *b);

/*
 * Online compaction (the options and the result are admin.h's): the live
 * and trashed contacts, idempotency entries and the change feed, as
 * cs_admin_compact carries them, into new segments beside the live ones,
 * then the writes made meanwhile copied after them, then one atomic switch
 * (writes and reads wait for it alone), the old files removed and a fresh
 * snapshot written. Blocks the calling thread (one of the caller's own,
 * never a commit completion) until done, the work running meanwhile on a
 * thread of the store's at a lower priority (o->progress is called from
 * there). o may be NULL (the store's own trash and changes windows and
 * clock); o->io, o->segment_bytes_max and o->salvage are not used (the
 * store's own seam and segment size; a live store is never damaged).
 * CS_EBUSY when one is running in this store or a bulk load is (and
 * cs_bulk_begin answers CS_EBUSY while one runs), CS_EFAILED on a store
 * that refuses writes. A failure before the switch leaves the store
 * serving as it was, the new files removed; a crash at any moment leaves
 * the old store or the new one, whole. It must end before cs_close.
 */
typedef struct cs_compact_opts cs_compact_opts;
typedef struct cs_compact_result cs_compact_result;
int cs_compact_online(cs_store *s, const cs_compact_opts *o,
                      cs_compact_result *res, cs_error *err);

/*
 * Idempotency keys, per account, kept CS_IDEM_KEEP_MS after the write
 * that carried them committed. cs_idem_begin looks key up with the
 * SHA-256 fingerprint of the request (method, path, body):
 *   0                 unknown: now reserved (in flight) for this request,
 *                     which ends it by a write carrying it (cs_write.idem),
 *                     by cs_idem_finish, or by cs_idem_release;
 *   CS_IDEM_REPLAY    answered before, same fingerprint: *replay is a copy
 *                     (free body.ptr with free());
 *   CS_EIDEM_REUSED   answered before, other fingerprint;
 *   CS_EIDEM_BUSY     in flight;
 * or CS_EINVAL for a malformed key (1..CS_IDEM_KEY_MAX_BYTES printable
 * ASCII).
 */
#define CS_IDEM_REPLAY 1
#define CS_IDEM_FP_BYTES 32
int cs_idem_begin(cs_store *s, uint32_t account, const char *key,
                  size_t key_len, const uint8_t fp[CS_IDEM_FP_BYTES],
                  cs_answer *replay, cs_error *err);
/* Forgets a reservation that no write carried (a refused request). */
void cs_idem_release(cs_store *s, uint32_t account, const char *key,
                     size_t key_len);
/* Ends a reservation with an answer of its own record, queued after every
 * write accepted before it (a batch's answer, after the batch's writes).
 * Return and done as for cs_create. */
int cs_idem_finish(cs_store *s, uint32_t account, const char *key,
                   size_t key_len, const cs_answer *a, cs_done_fn done,
                   void *ctx, cs_error *err);

/*
 * A bulk load: many creates and nothing else, as contactctl load does.
 * cs_bulk_begin waits for accepted writes, then puts the indexes in their
 * bulk mode (their sorted orders are built once, at cs_bulk_end, instead of
 * kept up to date at every create). Until cs_bulk_end (or cs_close), only
 * cs_create, cs_get, cs_iterate and cs_flush may be used: searches, edits
 * and deletes answer CS_EINVAL. Email uniqueness holds as always.
 */
int cs_bulk_begin(cs_store *s, cs_error *err);
int cs_bulk_end(cs_store *s, cs_error *err);

/*
 * Waits until every write accepted before the call is durable, forcing a
 * sync even under CS_DURABILITY_NONE. Returns 0, or the failure that made
 * the store refuse writes.
 */
int cs_flush(cs_store *s, cs_error *err);

/*
 * Reads contact id of account into *out (strings owned by the store, see
 * top). CS_ENOTFOUND when absent or another account's; CS_ECORRUPT when its
 * record fails its checksum.
 */
int cs_get(cs_store *s, uint32_t account, uint64_t id, cs_contact *out,
           cs_error *err);

typedef enum cs_match {
  CS_MATCH_DEFAULT = 0, /* exact, or words for notes */
  CS_MATCH_EXACT,
  CS_MATCH_PREFIX,
  CS_MATCH_WORDS,
  /* email, phone: the folded field ends with the folded term, which holds
   * at least CS_QUERY_SUFFIX_MIN characters (phone: digits); any other
   * field, or a shorter term, is CS_EINVAL naming the field */
  CS_MATCH_SUFFIX,
} cs_match;

typedef struct cs_query {
  uint32_t account;
  int field; /* a cs_field, or CS_SEARCH_BY_ID */
  cs_match match;
  const char *term; /* need not be NUL-terminated */
  size_t term_len;
  uint64_t after_id; /* only contacts with a larger id; 0: from the start */
  uint32_t limit;    /* 1..CS_PAGE_LIMIT_MAX; 0: CS_PAGE_LIMIT_DEFAULT */
} cs_query;

typedef struct cs_page {
  uint64_t total;       /* all matches in the account, this page's or not */
  uint32_t count;       /* contacts on this page */
  bool more;            /* another page follows (after the last id here) */
  cs_contact *contacts; /* count of them, in id order (NULL when count is 0);
                           free with cs_page_free */
} cs_page;

/*
 * Searches the account: every live contact whose folded field matches the
 * folded term, in id order, after q->after_id, at most limit of them, with
 * the exact total. The page is consistent with itself. A term that folds to
 * nothing matches nothing. Returns 0, CS_EINVAL (bad field or limit),
 * CS_ECORRUPT, or -ENOMEM.
 */
int cs_search(cs_store *s, const cs_query *q, cs_page *out, cs_error *err);
void cs_page_free(cs_page *p);

/*
 * The account's trash, newest deletion first: contacts deleted (not
 * purged) less than the trash window ago, each with deleted_ms. before
 * is 0 for the first page, else the previous page's next; out->more says
 * whether another follows. Returns as cs_search.
 */
int cs_trash_list(cs_store *s, uint32_t account, uint64_t before,
                  uint32_t limit, cs_page *out, uint64_t *next, cs_error *err);

/*
 * Calls fn for every live contact (of account, or of every account when
 * account is CS_ALL_ACCOUNTS) in id order (each account's in id order, and
 * the accounts interleaved by the order their contacts came to the store,
 * which is id order unless an account came from a shard numbered lower),
 * stopping early when fn returns
 * non-zero (which cs_iterate then returns). Writes wait while it runs.
 */
#define CS_ALL_ACCOUNTS UINT32_MAX
int cs_iterate(cs_store *s, uint32_t account,
               int (*fn)(void *ctx, const cs_contact *c), void *ctx,
               cs_error *err);

/*
 * An account's contacts with their identity, as of one commit: fn is
 * called for every live contact of account in id order, then for every
 * contact in its trash (inside the trash window; c->deleted_ms != 0) in the
 * order they were deleted. Writes go on meanwhile: they wait only while
 * the account's slot list is copied, never while fn runs. fn returning
 * non-zero stops the export (returned). Strings are valid during the call
 * only. Call it from any thread but a commit completion. 0, CS_EINVAL (bad
 * account number), CS_ECORRUPT (a record fails its checksum), or -ENOMEM.
 */
int cs_export(cs_store *s, uint32_t account,
              int (*fn)(void *ctx, const cs_contact *c), void *ctx,
              cs_error *err);

/*
 * Writes items into account with their own id, version, created_ms and
 * updated_ms, and for deleted_ms != 0 into the trash, deleted at that
 * time, through the commit path (durable, in the change feed as created,
 * then deleted for trash items), and returns when they are committed:
 * call it from a thread of your own, never a worker's loop or a
 * completion. Each item is validated as a create is (trimmed in place)
 * and its identity checked (id of 20 digits, version >= 1, times from the
 * epoch to CS_TIME_MS_MAX, created <= updated, deleted >= created). Items
 * are written in id order, and each id must be one the store may take
 * (else CS_EINVAL for that item alone):
 *   - an id of the store's own shard (cs_options.shard) at or past its id
 *     floor (below it are the ids it has ever given, live, trashed, purged
 *     or compacted away, and every id an earlier item of this call took):
 *     ids are never reused; the floor moves past it;
 *   - an id of a shard numbered lower (an account moving in): one no slot
 *     of the store holds, above every id the account holds already
 *     (applied or queued), so that an account's contacts stay in id order;
 *     the floor does not move (those ids are below it);
 *   - never an id of a shard numbered higher (an account moves only to a
 *     shard numbered higher, so that its ids keep increasing).
 * So pass an account's export whole, or in pieces of increasing ids: a
 * piece holding ids below an earlier piece's largest has those refused.
 * Email uniqueness holds for live items (CS_EDUPLICATE, errs[i].id the
 * holder). rc[i] is 0 or the item's error
 * code; errs may be NULL or an array of n. Returns 0 when it could run
 * (even if some items were refused), or the store's error for all
 * (CS_EFAILED, CS_ECLOSING, CS_EINVAL for a store opened without indexes
 * or in a bulk load, -ENOMEM).
 */
typedef struct cs_import_result {
  uint64_t imported;
  uint64_t refused;
} cs_import_result;
int cs_import(cs_store *s, uint32_t account, cs_contact *items, size_t n,
              int *rc, cs_error *errs, cs_import_result *res, cs_error *err);

typedef struct cs_stats {
  uint64_t contacts;       /* live contacts, all accounts */
  uint64_t segments;       /* segment files in the store */
  uint64_t disk_bytes;     /* segments + snapshot + manifest */
  uint64_t live_bytes;     /* bytes of records that are current */
  uint64_t garbage_bytes;  /* bytes of records superseded or deleted */
  uint64_t next_id;        /* the id the next create gets */
  uint64_t commits;        /* records committed since open */
  uint64_t fsyncs;         /* log syncs since open */
  uint64_t index_bytes;    /* memory held by the indexes, as allocated
                             (capacity, not use): every dictionary with its
                             postings, sorted order and typo variants, the
                             times array, the slot table and the trash list */
  uint64_t trash_contacts; /* in the trash, any window (until compaction) */
  uint64_t idem_keys;      /* idempotency keys kept or in flight */
  uint64_t idem_bytes;     /* the memory they hold */
  uint64_t changes;        /* change feed entries kept, all accounts */
  uint64_t changes_bytes;  /* the memory they hold */
  uint64_t snapshot_seq;   /* log sequence the newest snapshot covers, 0 none */
  int64_t snapshot_time_ms; /* when it was written, 0 none */
  int failed;     /* 0, or the error that made the store refuse writes */
  uint32_t shard; /* the store's shard (cs_options.shard) */
} cs_stats;

void cs_stats_get(cs_store *s, cs_stats *out);

/* Live contacts of one account. */
uint64_t cs_account_count(cs_store *s, uint32_t account);

/*
 * 0 when the store accepts writes; otherwise the failure's code with the
 * reason in err (the server's /healthz and 503 answers).
 */
int cs_health(cs_store *s, cs_error *err);

/* Writes a snapshot of the indexes now (open and close do it too). */
int cs_snapshot(cs_store *s, cs_error *err);

/* The directory the store was opened on. */
const char *cs_dir(const cs_store *s);

#ifdef __cplusplus
}
#endif

/* API keys and accounts (cs_keys.h); replication: shipping, following,
 * roles (cs_repl.h). */
#include "cs_keys.h"
#include "cs_repl.h"
#endif
