/*
 * ct.h: the contacts plugin's private header.
 *
 *   contacts.c  the plugin table: state, routes
 *   ct_answer.c answers: JSON bodies, errors, store failures, the path id
 *   ct_safe.c   safe writes' headers: If-Match, If-None-Match,
 *               Idempotency-Key, the request's fingerprint
 *   ct_write.c  the single writes: create, edit, delete, upsert, restore
 *   ct_batch.c  the batch create and the batch upsert
 *   ct_read.c   get one, search, the trash, the query
 *   ct_changes.c the change feed and its long-poll
 *   codec/      the contact's JSON codec (ct_codec.h, its manual): bodies
 *               read into contacts and patches, values checked, answers
 *               written; a library of its own, shared with contactctl
 *
 * The codec knows nothing of the plugin API; this header is where the two
 * meet, and holds what only the plugin needs.
 */
#ifndef CT_H
#define CT_H

#include "cd_plugin.h"
#include "cs.h"
#include "ct_codec.h"

/* Room for the list of searchable fields an invalid searchby answer names
 * (ct_searchby_names): every field name and its separator, with margin. */
#define CT_SEARCHBY_LIST_BYTES 256

typedef struct ct_feed ct_feed;

/* The plugin's state, made once at start and only read after (the
 * long-poll waiters have a lock of their own, in feed). */
typedef struct ct_state {
  const cd_host *host;
  cs_store *store;
  ct_feed *feed;
  /* What searchby may be, from the engine's field table, for its error. */
  char searchby_list[CT_SEARCHBY_LIST_BYTES];
} ct_state;

/* ------------------------------------------------- answers (ct_answer.c) */

extern const char ct_json_type[]; /* "application/json" */
extern const char ct_text_type[]; /* "text/plain; charset=utf-8" */
/* A delete's answer body (API.md). */
#define CT_DELETED "Document deleted successfully"

/* Sends *e; a store failure's retry-after is ct_send_rc's to add. */
void ct_send_err(const ct_state *st, cd_response *res, const ct_err *e);
/* Sends what g holds as a 200 JSON answer and frees g. */
void ct_send_gen(const ct_state *st, cd_response *res, yajl_gen g);
/* Sends what j holds as a 200 JSON answer (500 when it ran out of memory)
 * and frees its heap buffer. */
void ct_send_json(const ct_state *st, cd_response *res, ct_json *j);
void ct_send_oom(const ct_state *st, cd_response *res);
void ct_send_not_found(const ct_state *st, cd_response *res);
/*
 * Turns a store failure into the API's answer in *e, as the host's table
 * (host->store_error) says, and returns that row. The failures that are not
 * the client's fault are logged with what a person needs (err->msg may name
 * files; it goes to the log, never to the client). err may be NULL.
 */
const cd_store_error *ct_err_from_rc(const ct_state *st, cd_response *res,
                                     const char *op, int rc,
                                     const cs_error *err, ct_err *e);
/* Sends the answer to a failed store call, with its retry-after. */
void ct_send_rc(const ct_state *st, cd_response *res, const char *op, int rc,
                const cs_error *err);
/* The code to answer a write the store accepted and then could not commit
 * with (the failed store's, unless rc already answers that way). */
int ct_commit_rc(const ct_state *st, int rc);
/* Adds x-change-cursor: the feed's position seq just after a write, or
 * (seq 0) the feed's end now, for a write that changed nothing. */
void ct_change_cursor_header(const ct_state *st, cd_response *res,
                             cs_store *store, uint64_t seq);
/* The {id} path parameter as an id; false when it cannot be one. */
bool ct_path_id(const cd_request *req, uint64_t *id);
/* The store a request goes to. */
cs_store *ct_store(const ct_state *st, const cd_request *req);

/* ---------------------------------------------- safe writes (ct_safe.c) */

/*
 * Reads one If-Match or If-None-Match value (name, for errors) into *c,
 * adding to what earlier values of the header put there: "*" sets any, each
 * entity tag adds its version (0 for a tag that is no version of ours).
 * weak_ok lets W/ tags through (If-None-Match). 0, or -1 with *e a 400
 * invalid_field naming the header (malformed, or more than CS_IF_MATCH_MAX
 * tags).
 */
int ct_cond_parse(const char *name, const char *v, size_t len, bool weak_ok,
                  cs_cond *c, ct_err *e);
/* Every value of header name (lower case) of req into *c (zeroed first);
 * *given says whether there was one. 0 or -1 as ct_cond_parse. */
int ct_cond_read(const cd_request *req, const char *name, bool weak_ok,
                 bool *given, cs_cond *c, ct_err *e);
/* Whether *c names version (or is "*"). */
bool ct_cond_names(const cs_cond *c, uint64_t version);
/* The Idempotency-Key header of req, without the whitespace around it, in
 * *key (ptr NULL when absent; it points into req). 0, or -1 with *e a 400
 * invalid_field "idempotency-key" (empty, too long, not printable ASCII,
 * given twice). */
int ct_idem_key_read(const cd_request *req, cs_str *key, ct_err *e);
/* The request's SHA-256 fingerprint (the framing is at the top of
 * ct_safe.c). 0, or -1 when OpenSSL fails. */
int ct_fingerprint(const cd_request *req, uint8_t fp[CS_IDEM_FP_BYTES]);

/* What a write route knows of its safe-write headers, copied out of the
 * request so that it outlives the handler. */
typedef struct ct_safe {
  cs_store *store;
  uint32_t account;
  bool has_cond; /* If-Match given (and read into cond) */
  cs_cond cond;
  bool has_key; /* an idempotency key is reserved for this request */
  char key[CS_IDEM_KEY_MAX_BYTES + 1];
  size_t key_len;
} ct_safe;

/* Flags of ct_safe_begin. */
enum { CT_SAFE_IF_MATCH = 1u << 0 /* the route takes If-Match */ };

/*
 * What every write route does first: reads If-Match (with CT_SAFE_IF_MATCH)
 * and the Idempotency-Key, and reserves the key (cs_idem_begin). 0 to go
 * on (sf->has_key when a key is now reserved: the request must end it by a
 * write that carries it, ct_safe_release or cs_idem_finish); -1 when it has
 * answered: a malformed header (400), a replay (the kept answer with
 * idempotent-replayed: true), a key reused (422) or in flight (409).
 */
int ct_safe_begin(const ct_state *st, const cd_request *req, cd_response *res,
                  unsigned flags, ct_safe *sf);
/* Gives up the reservation, if any (a refused or unchanged write). */
void ct_safe_release(ct_safe *sf);
/* Releases and sends *e; returns CD_DONE. */
int ct_safe_refuse(const ct_state *st, cd_response *res, ct_safe *sf,
                   const ct_err *e);
/* A contact that cannot exist (an id that is no id): 404, or 412 when
 * If-Match was given, which such a contact fails. Releases; CD_DONE. */
int ct_safe_missing(const ct_state *st, cd_response *res, ct_safe *sf);
/* Sends a kept (or just rendered) answer, with idempotent-replayed: true
 * when replayed. */
void ct_send_answer(const ct_state *st, cd_response *res, const cs_answer *a,
                    bool replayed);

/* ------------------------------------------------- the handlers (routes) */

/* ct_write.c */
/* A create's contact from the fields a body gave. */
void ct_contact_from(const ct_fields *f, cs_contact *c);
int ct_handle_post(void *state, const cd_request *req, cd_response *res);
int ct_handle_patch(void *state, const cd_request *req, cd_response *res);
int ct_handle_delete_body(void *state, const cd_request *req, cd_response *res);
int ct_handle_delete_id(void *state, const cd_request *req, cd_response *res);
int ct_handle_upsert(void *state, const cd_request *req, cd_response *res);
int ct_handle_restore(void *state, const cd_request *req, cd_response *res);
/* ct_batch.c */
int ct_handle_batch(void *state, const cd_request *req, cd_response *res);
int ct_handle_batch_upsert(void *state, const cd_request *req,
                           cd_response *res);
/* ct_read.c */
int ct_handle_get(void *state, const cd_request *req, cd_response *res);
int ct_handle_search(void *state, const cd_request *req, cd_response *res);
int ct_handle_trash(void *state, const cd_request *req, cd_response *res);
int ct_handle_query(void *state, const cd_request *req, cd_response *res);
/* ct_changes.c: GET /contacts/changes, and its long-poll waiters with
 * their thread (woken by the store's commit watcher). */
int ct_handle_changes(void *state, const cd_request *req, cd_response *res);
/* Starts the waiters' thread and watcher. 0, or -1 with errbuf. */
int ct_feed_start(ct_state *st, char *errbuf, size_t errlen);
/* Answers every waiter now, stops the thread and the watcher; later
 * requests are answered without waiting. Idempotent. */
void ct_feed_drain(ct_state *st);
/* Drains, then frees. */
void ct_feed_free(ct_state *st);
/* The feed's metrics (Prometheus text) appended to *out. */
size_t ct_feed_metrics(ct_state *st, char **out);

/* ------------------------------------------- rendering (ct_write.c) */

/* The word of an upsert's result ("created", "updated", "unchanged"). */
const char *ct_result_word(cs_result r);
/* Writes {"id": ..., "result": ...} (an upsert's answer and a batch
 * upsert's item). */
void ct_gen_upsert_result(yajl_gen g, const cs_outcome *o);
/* An upsert refused with CS_EINVAL for a required field its patch p does
 * not give would have created a contact without it: *e becomes the
 * missing_field a create's body without it gets. Any other rc: unchanged. */
void ct_upsert_missing(const cs_patch *p, int rc, const cs_error *err,
                       ct_err *e);

#endif
