/*
 * fe_refuse.h: request heads that contactd refuses before h2o acts on them
 * (fe_refuse.c says why and how).
 */
#ifndef FE_REFUSE_H
#define FE_REFUSE_H

#include <stdbool.h>
#include <stddef.h>

#include "h2o.h"

/* Why req was refused (a phrase for the error message), with the status to
 * answer in *status (400, or 413 for an HTTP/2 body over the limit); NULL
 * for an ordinary request. A refused HTTP/1.x request has no headers and
 * no body, and its connection closes after the answer. */
const char *fe_refusal(const h2o_req_t *req, int *status);

/* Whether a request (method, and path with its query string, neither
 * NUL-terminated) is for a CD_ROUTE_BULK route, whose body may pass
 * FE_BODY_BUFFER_MAX_BYTES: asked from the head of every request whose
 * content-length does, on the worker reading it. */
typedef bool (*fe_bulk_fn)(void *ctx, const char *method, size_t method_len,
                           const char *path, size_t path_len);

/* Sets the question above for every later request (the server sets it
 * once its routes are known; before, no body may pass
 * FE_BODY_BUFFER_MAX_BYTES). */
void fe_refuse_set_bulk(fe_bulk_fn fn, void *ctx);

#endif
