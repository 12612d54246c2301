/*
 * ct_batch.c: POST /contacts/batch and POST /contacts/batch/upsert: up to
 * CS_BATCH_MAX creates (or upserts), each stored or refused on its own, in
 * order, answered once the last accepted one committed.
 *
 * With an Idempotency-Key the key is reserved first (ct_safe_begin); once
 * every item has been handed to the store, the whole answer is rendered
 * from the items' outcomes and kept with the key by cs_idem_finish, whose
 * record the engine queues after the items' records; the answer goes out
 * after that record's completion too, and is the kept bytes. When no item
 * was written (all refused, or every upsert unchanged) nothing is kept:
 * the reservation is given up, and a retry is judged afresh.
 *
 * A commit that fails gives its item store_unavailable; then the store
 * refuses every later record too, the kept answer is not what happened,
 * and the answer sent is rendered again from the items (the kept record
 * failed with them, so nothing replays the first rendering).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"

struct ct_batch;

typedef struct ct_batch_item {
  struct ct_batch *batch;
  cs_outcome out; /* stored (or unchanged) with this id and result */
  ct_err err;     /* status 0: stored, or an unchanged upsert */
  /* The completion's code, written by it alone and read only by whoever
   * answers (after the last reference, which orders the two). */
  int commit_rc;
} ct_batch_item;

/*
 * A batch answers once every accepted item's commit, and the kept answer's
 * record, have completed. pending counts the completions outstanding plus
 * one for the handler while it is still submitting; whoever brings it to
 * zero answers.
 */
typedef struct ct_batch {
  const ct_state *st;
  cd_response *res;
  bool upsert;
  const char *op;
  ct_safe safe;
  atomic_size_t pending;
  bool keeping; /* cs_idem_finish took the answer */
  int kept_rc;  /* its record's completion code */
  char *kept;   /* the kept answer's bytes */
  size_t kept_len;
  size_t count;
  ct_batch_item items[];
} ct_batch;

/* Renders {"results": [...]} into a malloc'd buffer; NULL when out of
 * memory. */
static char *ct_batch_render(const ct_batch *bt, size_t *len_out) {
  yajl_gen g = ct_gen_new();
  if (!g) return NULL;
  yajl_gen_map_open(g);
  ct_gen_str(g, "results", 7);
  yajl_gen_array_open(g);
  for (size_t i = 0; i < bt->count; i++) {
    const ct_batch_item *it = &bt->items[i];
    if (it->err.status) {
      ct_gen_error(g, &it->err);
    } else if (bt->upsert) {
      ct_gen_upsert_result(g, &it->out);
    } else {
      yajl_gen_map_open(g);
      ct_gen_str(g, "id", 2);
      ct_gen_id(g, it->out.id);
      yajl_gen_map_close(g);
    }
  }
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  const unsigned char *buf;
  size_t len;
  char *out = NULL;
  if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok &&
      (out = malloc(len ? len : 1))) {
    memcpy(out, buf, len);
    *len_out = len;
  }
  yajl_gen_free(g);
  return out;
}

static void ct_batch_answer(ct_batch *bt) {
  const ct_state *st = bt->st;
  bool failed = false;
  for (size_t i = 0; i < bt->count; i++) {
    ct_batch_item *it = &bt->items[i];
    if (!it->commit_rc) continue;
    ct_err_from_rc(st, bt->res, bt->op, ct_commit_rc(st, it->commit_rc), NULL,
                   &it->err);
    failed = true;
  }
  /* The feed's position after the batch's last write (or its end, when
   * the batch wrote nothing). */
  uint64_t seq = 0;
  for (size_t i = 0; i < bt->count; i++)
    if (!bt->items[i].err.status && bt->items[i].out.seq > seq)
      seq = bt->items[i].out.seq;
  ct_change_cursor_header(st, bt->res, bt->safe.store, seq);
  if (bt->keeping && bt->kept_rc == 0 && !failed) {
    cs_answer a = {200, CS_ANSWER_JSON, {bt->kept, bt->kept_len}};
    ct_send_answer(st, bt->res, &a, false);
  } else {
    size_t len = 0;
    char *body = ct_batch_render(bt, &len);
    if (body) {
      cs_answer a = {200, CS_ANSWER_JSON, {body, len}};
      ct_send_answer(st, bt->res, &a, false);
      free(body);
    } else {
      ct_send_oom(st, bt->res);
    }
  }
  free(bt->kept);
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
  (void)id; /* in the outcome since cs_write_apply returned */
  it->commit_rc = rc;
  ct_batch_release(bt);
}

static void ct_batch_kept(void *ctx, int rc, uint64_t id) {
  ct_batch *bt = ctx;
  (void)id;
  if (rc != 0)
    bt->st->host->log(bt->st->host->ctx, bt->res, CD_LOG_WARN,
                      "contacts: a batch's idempotency record did not commit");
  bt->kept_rc = rc;
  ct_batch_release(bt);
}

/* Hands item i to the store; true when it was written (not refused, not an
 * unchanged upsert). */
static bool ct_batch_item_apply(ct_batch *bt, ct_fields *f, size_t i) {
  ct_batch_item *it = &bt->items[i];
  it->batch = bt;
  if (f->err.status) {
    it->err = f->err;
    return false;
  }
  cs_contact c;
  cs_patch p = f->v;
  cs_write cw = {.account = bt->safe.account, .done = ct_batch_done, .ctx = it};
  if (bt->upsert) {
    cw.kind = CS_WRITE_UPSERT;
    cw.patch = &p;
  } else {
    ct_contact_from(f, &c);
    cw.kind = CS_WRITE_CREATE;
    cw.contact = &c;
  }
  cs_error err = {0};
  atomic_fetch_add_explicit(&bt->pending, 1, memory_order_relaxed);
  int rc = cs_write_apply(bt->safe.store, &cw, &it->out, &err);
  if (rc == 0 && it->out.result != CS_RESULT_UNCHANGED) return true;
  /* Never the last reference: the handler still holds its own. */
  atomic_fetch_sub_explicit(&bt->pending, 1, memory_order_relaxed);
  if (rc != 0) {
    ct_err_from_rc(bt->st, bt->res, bt->op, rc, &err, &it->err);
    if (bt->upsert) ct_upsert_missing(&p, rc, &err, &it->err);
  }
  return false;
}

/* Keeps the answer with the key (or gives the key up when nothing was
 * written). */
static void ct_batch_keep(ct_batch *bt, size_t written) {
  if (!bt->safe.has_key) return;
  if (written == 0 || !(bt->kept = ct_batch_render(bt, &bt->kept_len))) {
    ct_safe_release(&bt->safe);
    return;
  }
  cs_answer a = {200, CS_ANSWER_JSON, {bt->kept, bt->kept_len}};
  cs_error err = {0};
  atomic_fetch_add_explicit(&bt->pending, 1, memory_order_relaxed);
  int rc = cs_idem_finish(bt->safe.store, bt->safe.account, bt->safe.key,
                          bt->safe.key_len, &a, ct_batch_kept, bt, &err);
  if (rc == 0) {
    bt->keeping = true;
    return;
  }
  atomic_fetch_sub_explicit(&bt->pending, 1, memory_order_relaxed);
  char line[640];
  snprintf(line, sizeof line,
           "contacts: %s: the answer was not kept with its key: %s", bt->op,
           err.msg[0] ? err.msg : cs_strerror(rc));
  bt->st->host->log(bt->st->host->ctx, bt->res, CD_LOG_WARN, line);
  ct_safe_release(&bt->safe);
}

static int ct_batch_run(void *state, const cd_request *req, cd_response *res,
                        bool upsert) {
  const ct_state *st = state;
  ct_safe sf;
  /* A batch writes to many contacts: If-Match names none of them. */
  if (ct_safe_begin(st, req, res, 0, &sf)) return CD_DONE;
  ct_body b;
  if (ct_body_parse(&b, upsert ? CT_BODY_BATCH_UPSERT : CT_BODY_BATCH,
                    req->body, req->body_len)) {
    ct_safe_refuse(st, res, &sf, &b.err);
    ct_body_free(&b);
    return CD_DONE;
  }
  ct_batch *bt = calloc(1, sizeof *bt + b.item_count * sizeof bt->items[0]);
  if (!bt) {
    ct_safe_release(&sf);
    ct_body_free(&b);
    return ct_send_oom(st, res), CD_DONE;
  }
  bt->st = st;
  bt->res = res;
  bt->upsert = upsert;
  bt->op = upsert ? "batch upsert" : "batch create";
  bt->safe = sf;
  bt->count = b.item_count;
  atomic_init(&bt->pending, 1);
  size_t written = 0;
  for (size_t i = 0; i < b.item_count; i++)
    written += ct_batch_item_apply(bt, &b.items[i], i);
  ct_body_free(&b);
  ct_batch_keep(bt, written);
  return ct_batch_release(bt) ? CD_DONE : CD_ASYNC;
}

int ct_handle_batch(void *state, const cd_request *req, cd_response *res) {
  return ct_batch_run(state, req, res, false);
}

int ct_handle_batch_upsert(void *state, const cd_request *req,
                           cd_response *res) {
  return ct_batch_run(state, req, res, true);
}
