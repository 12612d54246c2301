/*
 * ct.h: the contacts plugin's private header.
 *
 *   contacts.c  the plugin table: state, routes
 *   ct_answer.c answers: JSON bodies, errors, store failures, the path id
 *   ct_write.c  the single writes: create, edit, delete
 *   ct_batch.c  the batch create
 *   ct_read.c   get one, search
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

/* The plugin's state, made once at start and only read after. */
typedef struct ct_state {
  const cd_host *host;
  cs_store *store;
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
void ct_send_oom(const ct_state *st, cd_response *res);
void ct_send_id(const ct_state *st, cd_response *res, uint64_t id);
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
/* The {id} path parameter as an id; false when it cannot be one. */
bool ct_path_id(const cd_request *req, uint64_t *id);
/* The store a request goes to. */
cs_store *ct_store(const ct_state *st, const cd_request *req);

/* ------------------------------------------------- the handlers (routes) */

/* ct_write.c */
/* A create's contact from the fields a body gave. */
void ct_contact_from(const ct_fields *f, cs_contact *c);
int ct_handle_post(void *state, const cd_request *req, cd_response *res);
int ct_handle_patch(void *state, const cd_request *req, cd_response *res);
int ct_handle_delete_body(void *state, const cd_request *req, cd_response *res);
int ct_handle_delete_id(void *state, const cd_request *req, cd_response *res);
/* ct_batch.c */
int ct_handle_batch(void *state, const cd_request *req, cd_response *res);
/* ct_read.c */
int ct_handle_get(void *state, const cd_request *req, cd_response *res);
int ct_handle_search(void *state, const cd_request *req, cd_response *res);

#endif
