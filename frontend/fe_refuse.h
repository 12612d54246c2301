/*
 * fe_refuse.h: request heads that contactd refuses before h2o acts on them
 * (fe_refuse.c says why and how).
 */
#ifndef FE_REFUSE_H
#define FE_REFUSE_H

#include "h2o.h"

/* Why req was refused (a phrase for the error message), with the status to
 * answer in *status (400, or 413 for an HTTP/2 body over the limit); NULL
 * for an ordinary request. A refused HTTP/1.x request has no headers and
 * no body, and its connection closes after the answer. */
const char *fe_refusal(const h2o_req_t *req, int *status);

#endif
