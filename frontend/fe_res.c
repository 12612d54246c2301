/*
 * fe_res.c: the answer handles' memory. A worker keeps the handles it
 * frees (up to FE_RES_SPARE_MAX) for its next requests, so that a request
 * costs no allocation of its own; everything here runs on the worker's
 * thread (fe_server.c's invariants).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fe_server_int.h"

/* A zeroed answer handle with room for extra bytes after it (path and
 * user agent): a spare of the worker's when it fits one, so that a request
 * costs no allocation. Worker's thread. */
cd_response *fe_res_alloc(fe_worker *w, size_t extra) {
  cd_response *res;
  if (extra > FE_RES_INLINE_BYTES) return calloc(1, sizeof(*res) + extra);
  res = w->spare;
  if (res != NULL) {
    w->spare = res->spare_next;
    w->spare_count--;
  } else {
    res = malloc(sizeof(*res) + FE_RES_INLINE_BYTES);
    if (res == NULL) return NULL;
  }
  memset(res, 0, offsetof(cd_response, path));
  res->reusable = true;
  return res;
}

static void res_free(cd_response *res) {
  fe_worker *w = res->worker;
  if (res->guard != NULL) res->guard->res = NULL;
  for (fe_header *h = res->headers, *next; h != NULL; h = next) {
    next = h->next;
    free(h);
  }
  if (res->body != NULL && !res->body_pooled) h2o_mem_release_shared(res->body);
  if (res->content_type != res->content_type_buf) free(res->content_type);
  w->pending--;
  if (res->reusable && !w->spare_closed && w->spare_count < FE_RES_SPARE_MAX) {
    res->spare_next = w->spare;
    w->spare = res;
    w->spare_count++;
    return;
  }
  free(res);
}

/* Frees the worker's spare handles, for good (its loop has ended). */
void fe_res_spares_free(fe_worker *w) {
  w->spare_closed = true;
  while (w->spare != NULL) {
    cd_response *next = w->spare->spare_next;
    free(w->spare);
    w->spare = next;
  }
  w->spare_count = 0;
}

void fe_res_maybe_free(cd_response *res) {
  if (res->sent && !res->handler_running) res_free(res);
}
