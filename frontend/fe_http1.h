/*
 * fe_http1.h: HTTP/1.x request heads that contactd refuses before h2o
 * acts on them (fe_http1.c says why and how).
 */
#ifndef FE_HTTP1_H
#define FE_HTTP1_H

#include "h2o.h"

/* Why req is a refused HTTP/1.x head (a sentence for the error message), or
 * NULL for an ordinary request. A refused one is to be answered 400 and
 * its connection closed; it has no headers and no body. */
const char *fe_http1_refusal(const h2o_req_t *req);

#endif
