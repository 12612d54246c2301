/*
 * ct_batch.c: POST /contacts/batch, up to CS_BATCH_MAX creates, each stored
 * or refused on its own, answered once the last accepted one committed.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"

/* ---------------------------------------------------------------- batch */

struct ct_batch;

typedef struct ct_batch_item {
  struct ct_batch *batch;
  uint64_t id;
  ct_err err; /* status 0: created with id */
} ct_batch_item;

/*
 * A batch answers once every accepted item's commit has completed. pending
 * counts the commits outstanding plus one for the handler while it is still
 * submitting; whoever brings it to zero answers.
 */
typedef struct ct_batch {
  const ct_state *st;
  cd_response *res;
  atomic_size_t pending;
  size_t count;
  ct_batch_item items[];
} ct_batch;

static void ct_batch_answer(ct_batch *bt) {
  yajl_gen g = ct_gen_new();
  if (!g) {
    ct_send_oom(bt->st, bt->res);
  } else {
    yajl_gen_map_open(g);
    ct_gen_str(g, "results", 7);
    yajl_gen_array_open(g);
    for (size_t i = 0; i < bt->count; i++) {
      const ct_batch_item *it = &bt->items[i];
      if (it->err.status) {
        ct_gen_error(g, &it->err);
      } else {
        yajl_gen_map_open(g);
        ct_gen_str(g, "id", 2);
        ct_gen_id(g, it->id);
        yajl_gen_map_close(g);
      }
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    ct_send_gen(bt->st, bt->res, g);
  }
  free(bt);
}

/* Drops one reference; true when it was the last (and answered). */
static bool ct_batch_release(ct_batch *bt) {
  if (atomic_fetch_sub_explicit(&bt->pending, 1, memory_order_acq_rel) != 1)
    return false;
  ct_batch_answer(bt);
  return true;
}

static void ct_batch_done(void *ctx, int rc, uint64_t id) {
  ct_batch_item *it = ctx;
  ct_batch *bt = it->batch;
  (void)id; /* known since cs_create returned */
  if (rc != 0)
    ct_err_from_rc(bt->st, bt->res, "batch create", ct_commit_rc(bt->st, rc),
                   NULL, &it->err);
  ct_batch_release(bt);
}

int ct_handle_batch(void *state, const cd_request *req,
                           cd_response *res) {
  const ct_state *st = state;
  ct_body b;
  if (ct_body_parse(&b, CT_BODY_BATCH, req->body, req->body_len)) {
    ct_send_err(st, res, &b.err);
    ct_body_free(&b);
    return CD_DONE;
  }
  ct_batch *bt = calloc(1, sizeof *bt + b.item_count * sizeof bt->items[0]);
  if (!bt) {
    ct_body_free(&b);
    return ct_send_oom(st, res), CD_DONE;
  }
  bt->st = st;
  bt->res = res;
  bt->count = b.item_count;
  atomic_init(&bt->pending, 1);
  for (size_t i = 0; i < b.item_count; i++) {
    ct_batch_item *it = &bt->items[i];
    it->batch = bt;
    if (b.items[i].err.status) {
      it->err = b.items[i].err;
      continue;
    }
    cs_contact c;
    ct_contact_from(&b.items[i], &c);
    cs_error err = {0};
    uint64_t id = 0;
    atomic_fetch_add_explicit(&bt->pending, 1, memory_order_relaxed);
    int rc = cs_create(ct_store(st, req), req->account, &c, ct_batch_done, it,
                       &id, &err);
    if (rc == 0) {
      it->id = id;
    } else {
      /* Never the last reference: the handler still holds its own. */
      atomic_fetch_sub_explicit(&bt->pending, 1, memory_order_relaxed);
      ct_err_from_rc(st, res, "batch create", rc, &err, &it->err);
    }
  }
  ct_body_free(&b);
  return ct_batch_release(bt) ? CD_DONE : CD_ASYNC;
}

