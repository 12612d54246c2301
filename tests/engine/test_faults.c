/*
 * test_faults.c: failed writes, failed syncs and power loss.
 *
 * Goal: promises 1, 2, 7 and 8. An I/O failure at any call makes the store
 * answer an error and refuse writes from then on, never lie about a write;
 * after reopening, every acknowledged write is there and no half-written
 * one is. A power loss (unsynced data dropped, partly kept, or garbled)
 * after acknowledged writes loses none of them, and what recovers is a
 * prefix of the writes in commit order.
 * Method: the fault_io seam. First count the calls of each kind a workload
 * makes; then, for every N, rerun it failing the Nth call (once, and from
 * then on), and compare the reopened store with a model of what was
 * acknowledged. For power loss, run seeded random workloads (creates,
 * edits, deletes into the trash, upserts, restores, and creates with
 * idempotency keys), "cut the power" at a random moment, drop what was not
 * synced, reopen, and check that the state (versions included) is a prefix
 * of the writes holding every acknowledged one, that the keys of that
 * prefix answer with their first answer, and that no later write's key is
 * taken (a retry is carried out once).
 * A failing seed is printed and can be replayed with FAULT_SEED=n.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cs.h"
#include "fault_io.h"
#include "test_util.h"

static void quiet(void *ctx, const char *line) {}

/* ------------------------------------------------------------- the model */

#define MODEL_MAX 512

typedef struct mcontact {
  uint64_t id;
  bool live;
  bool trashed;
  bool idem; /* created with the idempotency key "k<index>" */
  uint64_t version;
  char email[32];
  char company[32];
} mcontact;

typedef struct model {
  mcontact c[MODEL_MAX];
  int count;
} model;

typedef struct op {
  int kind; /* 0 create, 1 update, 2 delete, 3 upsert, 4 restore,
               5 idempotent create */
  int target;
  char company[32];
  uint64_t id;     /* assigned at submit for creates */
  int rc;          /* completion, or the submit's error */
  bool acked;      /* completed with rc 0 */
  char answer[32]; /* an idempotent create's rendered answer */
  tu_waiter *w;
} op;

static void op_done(void *ctx, int rc, uint64_t id) {
  op *o = ctx;
  o->rc = rc;
  o->acked = rc == 0;
  tu_done(o->w, rc, id);
}

static void model_apply(model *m, const op *o) {
  if (o->kind == 0 || o->kind == 5) {
    mcontact *c = &m->c[o->target];
    c->id = o->id;
    c->live = true;
    c->trashed = false;
    c->idem = o->kind == 5;
    c->version = 1;
    snprintf(c->email, sizeof c->email, "m%d@x.com", o->target);
    snprintf(c->company, sizeof c->company, "%s", o->company);
    if (o->target >= m->count) m->count = o->target + 1;
  } else if (o->kind == 1 || o->kind == 3) {
    snprintf(m->c[o->target].company, sizeof m->c[o->target].company, "%s",
             o->company);
    m->c[o->target].version++;
  } else if (o->kind == 4) {
    m->c[o->target].live = true;
    m->c[o->target].trashed = false;
    m->c[o->target].version++;
  } else {
    m->c[o->target].live = false;
    m->c[o->target].trashed = true;
  }
}

/* The idempotent creates' answer: the id, as a server would render it. */
static void render_id(void *ctx, const cs_outcome *o, cs_answer *out) {
  char *buf = ctx;
  snprintf(buf, 32, "%020llu", (unsigned long long)o->id);
  *out = (cs_answer){200, CS_ANSWER_JSON, {buf, strlen(buf)}};
}

static const uint8_t idem_fp[CS_IDEM_FP_BYTES] = {42};

/* Is the key of model contact i answered (with its id), or free? */
static bool key_state(cs_store *s, int i, uint64_t want_id) {
  char key[16], idtext[32];
  snprintf(key, sizeof key, "k%d", i);
  cs_answer a;
  int rc = cs_idem_begin(s, 1, key, strlen(key), idem_fp, &a, NULL);
  if (rc == 0) {
    cs_idem_release(s, 1, key, strlen(key));
    return want_id == 0;
  }
  if (rc != CS_IDEM_REPLAY) return false;
  snprintf(idtext, sizeof idtext, "%020llu", (unsigned long long)want_id);
  bool same = want_id && a.body.len == strlen(idtext) &&
              memcmp(a.body.ptr, idtext, a.body.len) == 0;
  free((void *)a.body.ptr);
  return same;
}

/* Does the store hold exactly the model's contacts? */
static bool store_matches(cs_store *s, const model *m, char *why,
                          size_t why_len) {
  uint64_t live = 0;
  for (int i = 0; i < m->count; i++) {
    const mcontact *c = &m->c[i];
    if (!c->id) continue;
    cs_contact got;
    int rc = cs_get(s, 1, c->id, &got, NULL);
    if (c->idem && !key_state(s, i, c->id)) {
      snprintf(why, why_len, "contact %d's idempotency key is lost", i);
      return false;
    }
    if (!c->live) {
      if (rc != CS_ENOTFOUND) {
        snprintf(why, why_len, "deleted contact %d is back", i);
        return false;
      }
      continue;
    }
    live++;
    if (rc) {
      snprintf(why, why_len, "contact %d lost (%s)", i, cs_strerror(rc));
      return false;
    }
    if (got.version != c->version) {
      snprintf(why, why_len, "contact %d at version %llu, expected %llu", i,
               (unsigned long long)got.version, (unsigned long long)c->version);
      return false;
    }
    if (strcmp(tu_field(&got, CS_COMPANY), c->company) ||
        strcmp(tu_field(&got, CS_EMAIL), c->email)) {
      snprintf(why, why_len, "contact %d has company %s, expected %s", i,
               tu_field(&got, CS_COMPANY), c->company);
      return false;
    }
  }
  uint64_t have = cs_account_count(s, 1);
  if (have != live) {
    snprintf(why, why_len, "%llu contacts, expected %llu",
             (unsigned long long)have, (unsigned long long)live);
    return false;
  }
  return true;
}

/* ----------------------------------------------- deterministic workload */

/* Runs the fixed workload with each write waited for. Returns the number of
 * ops acknowledged; *failed_op is the op that failed (or -1). */
static int run_workload(cs_store *s, op *ops, int n, model *acked,
                        int *failed_op) {
  *failed_op = -1;
  for (int i = 0; i < n; i++) {
    op *o = &ops[i];
    cs_error err;
    uint64_t target_id = o->kind ? acked->c[o->target].id : 0;
    if (o->kind == 0) {
      char email[32];
      snprintf(email, sizeof email, "m%d@x.com", o->target);
      o->rc = tu_create(
          s, 1,
          tu_contact("Model", NULL, email, NULL, o->company, NULL, "words"),
          &o->id, &err);
    } else if (o->kind == 1) {
      cs_patch p = {.set_mask = 1u << CS_COMPANY};
      p.field[CS_COMPANY] = (cs_str){o->company, strlen(o->company)};
      o->rc = tu_update(s, 1, target_id, p, &err);
    } else {
      o->rc = tu_delete(s, 1, target_id, &err);
    }
    if (o->rc) {
      *failed_op = i;
      return i;
    }
    model_apply(acked, o);
  }
  return n;
}

static int make_workload(op *ops) {
  int n = 0, created = 0;
  bool live[200] = {false};
  for (int i = 0; i < 60; i++) {
    op *o = &ops[n++];
    memset(o, 0, sizeof *o);
    o->target = created++;
    live[o->target] = true;
    snprintf(o->company, sizeof o->company, "Co%d", i % 5);
    if (i % 4 == 3 && live[created - 2]) {
      o = &ops[n++];
      memset(o, 0, sizeof *o);
      o->kind = 1;
      o->target = created - 2;
      snprintf(o->company, sizeof o->company, "Edit%d", i);
    }
    if (i % 5 == 4 && live[created - 4]) {
      o = &ops[n++];
      memset(o, 0, sizeof *o);
      o->kind = 2;
      o->target = created - 4;
      live[o->target] = false;
    }
  }
  return n;
}

static const char *kind_name[FAULT_KINDS] = {"write", "sync",    "rename",
                                             "open",  "dirsync", "truncate"};

static void one_fault_run(int kind, long nth, bool persistent, int e) {
  char *dir = tu_tmpdir();
  fault_io f;
  fault_io_init(&f);
  fault_io_arm(&f, kind, nth, persistent, e);
  cs_options o = {.durability = CS_DURABILITY_FSYNC,
                  .io = &f.io,
                  .segment_bytes_max = 4096,
                  .notice = quiet};
  static op ops[200];
  int n = make_workload(ops);
  model acked;
  memset(&acked, 0, sizeof acked);
  cs_store *s = NULL;
  cs_error err;
  int failed_op = -1;
  int rc = cs_open(dir, &o, &s, &err);
  if (rc == 0) {
    run_workload(s, ops, n, &acked, &failed_op);
    if (failed_op >= 0) {
      int frc = ops[failed_op].rc;
      if (frc != CS_EFAILED && frc != -e && frc != -EIO)
        fail_msg("%s #%ld: failed op answered %s", kind_name[kind], nth,
                 cs_strerror(frc));
      /* From now on the store refuses writes, and says why. */
      cs_contact c =
          tu_contact("X", NULL, "refused@x.com", NULL, NULL, NULL, NULL);
      assert_int_equal(cs_create(s, 1, &c, NULL, NULL, NULL, &err), CS_EFAILED);
      assert_int_equal(cs_health(s, &err), CS_EFAILED);
      assert_true(strlen(err.msg) > 10);
    }
    cs_close(s, &err);
  } else {
    assert_true(rc < 0);
  }
  /* Reopen with real I/O: acknowledged writes all there; the failed one
   * either wholly there or wholly absent. */
  cs_options plain = {.durability = CS_DURABILITY_NONE,
                      .segment_bytes_max = 4096,
                      .no_snapshot_on_close = true,
                      .notice = quiet};
  if (cs_open(dir, &plain, &s, &err) != 0)
    fail_msg("%s #%ld%s: reopen: %s", kind_name[kind], nth,
             persistent ? " (persistent)" : "", err.msg);
  char why[256] = "";
  bool ok = store_matches(s, &acked, why, sizeof why);
  if (!ok && failed_op >= 0) {
    model with = acked;
    model_apply(&with, &ops[failed_op]);
    ok = store_matches(s, &with, why, sizeof why);
  }
  if (!ok)
    fail_msg("%s #%ld%s: %s", kind_name[kind], nth,
             persistent ? " (persistent)" : "", why);
  cs_close(s, NULL);
  tu_rmrf(dir);
  free(dir);
}

static void test_faults_every_call_of_every_kind(void **state) {
  /* Count the calls a clean run makes. */
  char *dir = tu_tmpdir();
  fault_io f;
  fault_io_init(&f);
  cs_options o = {.durability = CS_DURABILITY_FSYNC,
                  .io = &f.io,
                  .segment_bytes_max = 4096,
                  .notice = quiet};
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  static op ops[200];
  int n = make_workload(ops);
  model m;
  memset(&m, 0, sizeof m);
  int failed;
  assert_int_equal(run_workload(s, ops, n, &m, &failed), n);
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(dir);
  free(dir);
  long runs = 0;
  for (int kind = 0; kind < FAULT_KINDS; kind++) {
    if (kind == FAULT_TRUNCATE) continue; /* only used by recovery */
    assert_true(f.calls[kind] > 0);
    for (long nth = 1; nth <= f.calls[kind] + 1; nth++) {
      one_fault_run(kind, nth, false, EIO);
      one_fault_run(kind, nth, true, EIO);
      runs += 2;
    }
  }
  /* A full disk is one more failure like the others. */
  for (long nth = 1; nth <= f.calls[FAULT_WRITE]; nth += 7) {
    one_fault_run(FAULT_WRITE, nth, true, ENOSPC);
    runs++;
  }
  print_message("fault runs: %ld (calls: write %ld, sync %ld, rename %ld, "
                "open %ld, dirsync %ld)\n",
                runs, f.calls[FAULT_WRITE], f.calls[FAULT_SYNC],
                f.calls[FAULT_RENAME], f.calls[FAULT_OPEN],
                f.calls[FAULT_DIRSYNC]);
}

/* ------------------------------------------------------------ power loss */

static unsigned rnd(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return (*seed >> 16) & 0x7fff;
}

/* One round: random batches of concurrent writes, power cut at a random
 * moment. Returns false with why on a broken promise. */
static bool power_round(unsigned seed, char *why, size_t why_len) {
  unsigned r = seed;
  char *dir = tu_tmpdir();
  fault_io f;
  fault_io_init(&f);
  cs_options o = {.durability = CS_DURABILITY_FSYNC,
                  .io = &f.io,
                  .notice = quiet,
                  .segment_bytes_max = 4096 + rnd(&r) % 8192,
                  .no_snapshot_on_close = rnd(&r) % 2};
  /* Half the rounds also take snapshots while writing. */
  o.snapshot_every_bytes = rnd(&r) % 2 ? 1500 + rnd(&r) % 3000 : 0;
  cs_store *s;
  cs_error err;
  bool ok = true;
  /* Some rounds start from a store with a snapshot and history. */
  if (rnd(&r) % 3 == 0) {
    if (cs_open(dir, &o, &s, &err)) abort();
    for (int i = 0; i < 10; i++) {
      char em[32];
      snprintf(em, sizeof em, "pre%d@x.com", i);
      uint64_t id;
      if (tu_create(s, 2, tu_contact("Pre", NULL, em, NULL, NULL, NULL, NULL),
                    &id, &err))
        abort();
    }
    cs_close(s, NULL);
    fault_io_init(&f); /* everything so far is on disk */
  }
  if (cs_open(dir, &o, &s, &err)) {
    snprintf(why, why_len, "open: %.300s", err.msg);
    tu_rmrf(dir);
    free(dir);
    return false;
  }
  static op ops[MODEL_MAX];
  int nops = 0;
  model acked;
  memset(&acked, 0, sizeof acked);
  int batches = 1 + (int)(rnd(&r) % 12);
  int crash_batch = (int)(rnd(&r) % (unsigned)batches);
  int created = 0;
  int applied_prefix_start = 0; /* ops before this are acked */
  for (int b = 0; b <= crash_batch && nops < MODEL_MAX - 16; b++) {
    tu_waiter w;
    tu_waiter_init(&w);
    int k = 1 + (int)(rnd(&r) % 8);
    int first = nops;
    for (int i = 0; i < k; i++) {
      op *o2 = &ops[nops];
      memset(o2, 0, sizeof *o2);
      o2->w = &w;
      unsigned pick = rnd(&r) % 7;
      /* Edits, deletes and upserts only of acknowledged, live contacts,
       * restores of trashed ones, none touched in this batch. */
      int target = -1;
      if (pick && pick != 5 && created) {
        target = (int)(rnd(&r) % (unsigned)created);
        if (pick == 4 ? !acked.c[target].trashed : !acked.c[target].live)
          target = -1;
        for (int j = first; j < nops && target >= 0; j++)
          if (ops[j].target == target) target = -1;
      }
      cs_error e2;
      if (pick == 5) { /* a create with an idempotency key */
        o2->kind = 5;
        o2->target = created++;
        snprintf(o2->company, sizeof o2->company, "I%u", rnd(&r) % 50);
        char email[32], key[16];
        snprintf(email, sizeof email, "m%d@x.com", o2->target);
        snprintf(key, sizeof key, "k%d", o2->target);
        cs_contact c =
            tu_contact("Model", NULL, email, NULL, o2->company, NULL, "words");
        cs_answer a;
        o2->rc = cs_idem_begin(s, 1, key, strlen(key), idem_fp, &a, &e2);
        if (!o2->rc) {
          cs_idem idem = {key, strlen(key), render_id, o2->answer};
          cs_write wr = {.kind = CS_WRITE_CREATE,
                         .account = 1,
                         .contact = &c,
                         .idem = &idem,
                         .done = op_done,
                         .ctx = o2};
          cs_outcome out;
          tu_waiter_add(&w);
          o2->rc = cs_write_apply(s, &wr, &out, &e2);
          o2->id = out.id;
        } else {
          tu_waiter_add(&w);
        }
      } else if (target >= 0 && (pick == 3 || pick == 4)) {
        o2->kind = (int)pick;
        o2->target = target;
        snprintf(o2->company, sizeof o2->company, "U%d", nops);
        char email[32];
        snprintf(email, sizeof email, "m%d@x.com", target);
        cs_patch p = {.set_mask = 1u << CS_COMPANY | 1u << CS_EMAIL};
        p.field[CS_COMPANY] = (cs_str){o2->company, strlen(o2->company)};
        p.field[CS_EMAIL] = (cs_str){email, strlen(email)};
        cs_write wr = {.kind = pick == 3 ? CS_WRITE_UPSERT : CS_WRITE_RESTORE,
                       .account = 1,
                       .id = acked.c[target].id,
                       .patch = &p,
                       .done = op_done,
                       .ctx = o2};
        tu_waiter_add(&w);
        o2->rc = cs_write_apply(s, &wr, NULL, &e2);
      } else if (target < 0) {
        o2->kind = 0;
        o2->target = created++;
        snprintf(o2->company, sizeof o2->company, "C%u", rnd(&r) % 50);
        tu_waiter_add(&w);
        char email[32];
        snprintf(email, sizeof email, "m%d@x.com", o2->target);
        cs_contact c =
            tu_contact("Model", NULL, email, NULL, o2->company, NULL, "words");
        o2->rc = cs_create(s, 1, &c, op_done, o2, &o2->id, &e2);
      } else if (pick == 1) {
        o2->kind = 2;
        o2->target = target;
        tu_waiter_add(&w);
        o2->rc = cs_delete(s, 1, acked.c[target].id, op_done, o2, &e2);
      } else {
        o2->kind = 1;
        o2->target = target;
        snprintf(o2->company, sizeof o2->company, "E%u", rnd(&r) % 50);
        cs_patch p = {.set_mask = 1u << CS_COMPANY};
        p.field[CS_COMPANY] = (cs_str){o2->company, strlen(o2->company)};
        tu_waiter_add(&w);
        o2->rc = cs_update(s, 1, acked.c[target].id, &p, op_done, o2, &e2);
      }
      if (o2->rc) {
        tu_done(&w, 0, 0); /* not accepted: nothing to wait for */
        snprintf(why, why_len, "seed %u: submit failed: %.300s", seed, e2.msg);
        ok = false;
      }
      nops++;
    }
    if (b == crash_batch) fault_io_crash(&f); /* power goes mid-batch */
    tu_waiter_wait(&w);
    if (b < crash_batch) {
      for (int i = first; i < nops; i++)
        model_apply(&acked, &ops[i]);
      applied_prefix_start = nops;
    }
  }
  cs_close(s, NULL);
  fault_io_power_loss(&f, (int)(rnd(&r) % 3), seed);
  /* Writes commit in order: the recovered state must be the state after
   * some prefix of the submitted writes that holds every acknowledged one. */
  int min_prefix = applied_prefix_start;
  for (int i = applied_prefix_start; i < nops; i++)
    if (ops[i].acked) min_prefix = i + 1;
  cs_options plain = {.durability = CS_DURABILITY_NONE,
                      .no_snapshot_on_close = true,
                      .notice = quiet};
  if (cs_open(dir, &plain, &s, &err)) {
    snprintf(why, why_len, "seed %u: reopen failed: %.300s", seed, err.msg);
    tu_rmrf(dir);
    free(dir);
    return false;
  }
  /* Every op acknowledged before the crash batch is there; of the crash
   * batch, a prefix is. */
  bool matched = false;
  model m = acked;
  char w2[256] = "";
  for (int p = applied_prefix_start; p <= nops && !matched; p++) {
    if (p > applied_prefix_start) model_apply(&m, &ops[p - 1]);
    if (p >= min_prefix && store_matches(s, &m, w2, sizeof w2)) {
      matched = true;
      /* No key of a write past the prefix is taken: a retry is carried
       * out afresh, once. */
      for (int i = p; i < nops; i++)
        if (ops[i].kind == 5 && !key_state(s, ops[i].target, 0)) {
          snprintf(w2, sizeof w2, "the key of lost write %d is taken", i);
          matched = false;
        }
    }
  }
  if (!matched) {
    snprintf(why, why_len,
             "seed %u: recovered state is no prefix of the "
             "writes (%s)",
             seed, w2);
    ok = false;
  }
  cs_close(s, NULL);
  tu_rmrf(dir);
  free(dir);
  return ok;
}

static void test_faults_power_loss_keeps_acknowledged_writes(void **state) {
  const char *env = getenv("FAULT_SEED");
  const char *rounds_env = getenv("POWER_ROUNDS");
  int rounds = rounds_env ? atoi(rounds_env) : 400;
  unsigned first = env ? (unsigned)atoi(env) : 1;
  if (env) rounds = 1;
  for (int i = 0; i < rounds; i++) {
    char why[512];
    if (!power_round(first + (unsigned)i, why, sizeof why))
      fail_msg("%s (replay with FAULT_SEED=%u)", why, first + (unsigned)i);
  }
  print_message("power-loss rounds: %d\n", rounds);
}

/* ------------------------------------------- a failed sync, in flight */

#define INFLIGHT_WRITES 3000

typedef struct inflight {
  int rc[INFLIGHT_WRITES];
  int order[INFLIGHT_WRITES]; /* write numbers in completion order */
  _Atomic int done;
} inflight;

typedef struct inflight_ctx {
  inflight *in;
  int k;
} inflight_ctx;

static void inflight_done(void *ctx, int rc, uint64_t id) {
  inflight_ctx *c = ctx;
  (void)id;
  c->in->rc[c->k] = rc;
  /* Completions run on one thread, one after the other. */
  c->in->order[atomic_load(&c->in->done)] = c->k;
  atomic_fetch_add(&c->in->done, 1);
}

/* Writes queued without waiting (after the first, which is the first
 * batch), so that batches are in flight at once (one written and synced
 * while the one before it is applied), and the second batch's fdatasync
 * fails: no fdatasync is tried after it, the
 * writes complete in order, every one acknowledged before the failure is
 * there after reopening and none is acknowledged after it (promise 7). */
static void test_faults_sync_failure_with_batches_in_flight(void **state) {
  char *dir = tu_tmpdir();
  fault_io f;
  fault_io_init(&f);
  cs_options o = {.durability = CS_DURABILITY_FSYNC,
                  .io = &f.io,
                  .notice = quiet,
                  .no_snapshot_on_close = true};
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  long syncs = f.calls[FAULT_SYNC];
  fault_io_arm(&f, FAULT_SYNC, syncs + 2, false, EIO);
  static inflight in;
  static inflight_ctx ctx[INFLIGHT_WRITES];
  static uint64_t ids[INFLIGHT_WRITES];
  memset(&in, 0, sizeof in);
  int accepted = 0;
  for (int k = 0; k < INFLIGHT_WRITES; k++) {
    char email[32];
    snprintf(email, sizeof email, "w%d@x.io", k);
    cs_contact c = {0};
    c.field[CS_FIRST_NAME] = (cs_str){"Ann", 3};
    c.field[CS_EMAIL] = (cs_str){email, strlen(email)};
    ctx[k] = (inflight_ctx){&in, k};
    int rc = cs_create(s, 1, &c, inflight_done, &ctx[k], &ids[k], &err);
    if (rc != 0) {
      assert_int_equal(rc, CS_EFAILED); /* refused once the sync failed */
      in.rc[k] = rc;
      ids[k] = 0;
      continue;
    }
    accepted++;
    /* The first write alone is the first batch, synced before the rest
     * are queued: the second batch, whose sync fails, is the rest. */
    while (k == 0 && atomic_load(&in.done) == 0)
      usleep(1000);
  }
  assert_int_not_equal(cs_flush(s, &err), 0);
  cs_close(s, NULL);
  assert_int_equal(in.done, accepted);
  /* The failed fdatasync was the last one tried. */
  assert_int_equal(f.calls[FAULT_SYNC], syncs + 2);
  assert_int_equal(f.failures, 1);
  /* In order, and every success before every failure. */
  int acked = 0;
  bool failed = false;
  for (int i = 0; i < in.done; i++) {
    int k = in.order[i];
    if (i) assert_true(k > in.order[i - 1]);
    if (in.rc[k] == 0) {
      assert_false(failed);
      acked++;
    } else {
      failed = true;
    }
  }
  assert_true(acked > 0 && failed);
  cs_options plain = {.notice = quiet};
  assert_int_equal(cs_open(dir, &plain, &s, &err), 0);
  for (int k = 0; k < INFLIGHT_WRITES; k++) {
    if (in.rc[k] != 0 || !ids[k]) continue;
    cs_contact got;
    assert_int_equal(cs_get(s, 1, ids[k], &got, &err), 0);
  }
  cs_close(s, NULL);
  tu_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_faults_every_call_of_every_kind),
      cmocka_unit_test(test_faults_power_loss_keeps_acknowledged_writes),
      cmocka_unit_test(test_faults_sync_failure_with_batches_in_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
