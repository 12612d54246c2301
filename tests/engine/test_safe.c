/*
 * test_safe.c: the safe writes of cs.h: versions, If-Match conditions,
 * upsert, the trash (delete, list, restore, purge, its window), and
 * idempotency keys, across reopen and compaction, and under concurrency.
 *
 * Method: a real store in a temporary directory per test, driven through
 * the public API (and admin.h for compaction), with a clock the test moves
 * on; each test checks what later reads see.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "cs.h"
#include "test_util.h"

#define DAY CS_DAY_MS
#define T0 1800000000000ll /* the test clock's start, Unix ms */

typedef struct fixture {
  char *dir;
  cs_store *s;
  int64_t now;
  cs_options o;
} fixture;

static int64_t clock_of(void *ctx) {
  return __atomic_load_n(&((fixture *)ctx)->now, __ATOMIC_RELAXED);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tmpdir();
  f->now = T0;
  f->o = (cs_options){.durability = CS_DURABILITY_NONE,
                      .trash_ms = 7 * DAY,
                      .now_ms = clock_of,
                      .now_ctx = f};
  cs_error err;
  if (cs_open(f->dir, &f->o, &f->s, &err) != 0) {
    fprintf(stderr, "open: %s\n", err.msg);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->s) cs_close(f->s, NULL);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* Closes (writing a snapshot) and opens again, from the snapshot or by
 * replaying the whole log. */
static void reopen(fixture *f, bool from_snapshot) {
  cs_error err;
  assert_int_equal(cs_close(f->s, &err), 0);
  f->s = NULL;
  cs_options o = f->o;
  o.no_snapshot_load = !from_snapshot;
  if (cs_open(f->dir, &o, &f->s, &err)) fail_msg("reopen: %s", err.msg);
}

static uint64_t make(fixture *f, uint32_t acct, const char *first,
                     const char *email) {
  uint64_t id = 0;
  cs_error err;
  int rc = tu_create(f->s, acct,
                     tu_contact(first, NULL, email, NULL, NULL, NULL, NULL),
                     &id, &err);
  if (rc) fail_msg("create %s: %s", email, err.msg);
  return id;
}

static uint64_t version_of(fixture *f, uint32_t acct, uint64_t id) {
  cs_contact c;
  cs_error err;
  if (cs_get(f->s, acct, id, &c, &err)) return 0;
  return c.version;
}

static cs_patch set_one(int field, const char *v) {
  cs_patch p = {0};
  p.set_mask = 1u << field;
  p.field[field] = (cs_str){v, strlen(v)};
  return p;
}

static int edit(fixture *f, uint64_t id, cs_patch p, const cs_cond *c,
                cs_outcome *o, cs_error *err) {
  cs_write w = {.kind = CS_WRITE_UPDATE,
                .account = 1,
                .id = id,
                .patch = &p,
                .if_match = c};
  return tu_write(f->s, &w, o, err);
}

static int del(fixture *f, uint64_t id, bool purge, const cs_cond *c,
               cs_error *err) {
  cs_write w = {.kind = CS_WRITE_DELETE,
                .account = 1,
                .id = id,
                .purge = purge,
                .if_match = c};
  return tu_write(f->s, &w, NULL, err);
}

static int restore(fixture *f, uint64_t id, const cs_cond *c, cs_outcome *o,
                   cs_error *err) {
  cs_write w = {
      .kind = CS_WRITE_RESTORE, .account = 1, .id = id, .if_match = c};
  return tu_write(f->s, &w, o, err);
}

static int upsert(fixture *f, cs_patch p, cs_outcome *o, cs_error *err) {
  cs_write w = {.kind = CS_WRITE_UPSERT, .account = 1, .patch = &p};
  return tu_write(f->s, &w, o, err);
}

/* The ids of account 1's trash, newest deletion first, walked by pages
 * of limit; their count in *n. */
static void trash_ids(fixture *f, uint32_t limit, uint64_t *ids, size_t *n,
                      uint64_t *total) {
  uint64_t before = 0;
  *n = 0;
  for (;;) {
    cs_page pg;
    uint64_t next;
    cs_error err;
    if (cs_trash_list(f->s, 1, before, limit, &pg, &next, &err))
      fail_msg("trash list: %s", err.msg);
    *total = pg.total;
    for (uint32_t i = 0; i < pg.count; i++) {
      assert_true(pg.contacts[i].deleted_ms > 0);
      ids[(*n)++] = pg.contacts[i].id;
    }
    bool more = pg.more;
    cs_page_free(&pg);
    if (!more) break;
    assert_true(next != 0);
    before = next;
  }
}

static uint64_t search_total(fixture *f, int field, const char *term) {
  cs_query q = {.account = 1,
                .field = field,
                .match = CS_MATCH_EXACT,
                .term = term,
                .term_len = strlen(term)};
  cs_page pg;
  cs_error err;
  if (cs_search(f->s, &q, &pg, &err)) fail_msg("search: %s", err.msg);
  uint64_t t = pg.total;
  cs_page_free(&pg);
  return t;
}

/* ------------------------------------------------------------ versions */

static void test_safe_versions_count_applied_changes(void **state) {
  fixture *f = *state;
  uint64_t id = make(f, 1, "Ann", "ann@example.com");
  assert_int_equal(version_of(f, 1, id), 1);
  cs_outcome o;
  cs_error err;
  assert_int_equal(edit(f, id, set_one(CS_COMPANY, "Acme"), NULL, &o, &err), 0);
  assert_int_equal(o.version, 2);
  assert_int_equal(o.result, CS_RESULT_UPDATED);
  assert_int_equal(version_of(f, 1, id), 2);
  /* A refused edit changes nothing, the version neither. */
  assert_int_equal(edit(f, id, set_one(CS_EMAIL, "bad"), NULL, &o, &err),
                   CS_EINVAL);
  assert_int_equal(version_of(f, 1, id), 2);
  reopen(f, true);
  assert_int_equal(version_of(f, 1, id), 2);
  reopen(f, false);
  assert_int_equal(version_of(f, 1, id), 2);
}

static void test_safe_if_match_names_the_version(void **state) {
  fixture *f = *state;
  uint64_t id = make(f, 1, "Bob", "bob@example.com");
  cs_outcome o;
  cs_error err;
  cs_cond wrong = {.count = 2, .versions = {5, 7}};
  assert_int_equal(edit(f, id, set_one(CS_COMPANY, "X"), &wrong, &o, &err),
                   CS_EPRECONDITION);
  assert_int_equal(err.version, 1);
  assert_int_equal(version_of(f, 1, id), 1);
  cs_cond right = {.count = 2, .versions = {9, 1}};
  assert_int_equal(edit(f, id, set_one(CS_COMPANY, "X"), &right, &o, &err), 0);
  assert_int_equal(o.version, 2);
  cs_cond any = {.any = true};
  assert_int_equal(edit(f, id, set_one(CS_COMPANY, "Y"), &any, &o, &err), 0);
  assert_int_equal(o.version, 3);
  /* Deletes are conditional too; a missing contact fails every
   * condition, with no version to name. */
  cs_cond old = {.count = 1, .versions = {2}};
  assert_int_equal(del(f, id, false, &old, &err), CS_EPRECONDITION);
  assert_int_equal(err.version, 3);
  assert_int_equal(edit(f, id + 100, set_one(CS_COMPANY, "Z"), &any, &o, &err),
                   CS_EPRECONDITION);
  assert_int_equal(err.version, 0);
  cs_cond three = {.count = 1, .versions = {3}};
  assert_int_equal(del(f, id, false, &three, &err), 0);
  assert_int_equal(version_of(f, 1, id), 0); /* gone from reads */
}

/* -------------------------------------------------------------- upsert */

static void test_safe_upsert_creates_updates_or_leaves_alone(void **state) {
  fixture *f = *state;
  cs_patch p = set_one(CS_EMAIL, "Cy@Example.com");
  p.set_mask |= 1u << CS_FIRST_NAME;
  p.field[CS_FIRST_NAME] = (cs_str){"Cy", 2};
  cs_outcome o;
  cs_error err;
  assert_int_equal(upsert(f, p, &o, &err), 0);
  assert_int_equal(o.result, CS_RESULT_CREATED);
  assert_int_equal(o.version, 1);
  uint64_t id = o.id;
  cs_stats s0, s1;
  cs_stats_get(f->s, &s0);
  assert_int_equal(upsert(f, p, &o, &err), 0);
  assert_int_equal(o.result, CS_RESULT_UNCHANGED);
  assert_int_equal(o.id, id);
  assert_int_equal(o.version, 1);
  cs_stats_get(f->s, &s1);
  assert_int_equal(s1.commits, s0.commits); /* nothing written */
  /* The same address in another case finds the contact, and changes it. */
  cs_patch q = set_one(CS_EMAIL, "cy@example.com");
  assert_int_equal(upsert(f, q, &o, &err), 0);
  assert_int_equal(o.result, CS_RESULT_UPDATED);
  assert_int_equal(o.id, id);
  assert_int_equal(o.version, 2);
  /* Without first_name a new email cannot be created; without email
   * nothing can be matched. */
  cs_patch r = set_one(CS_EMAIL, "new@example.com");
  assert_int_equal(upsert(f, r, &o, &err), CS_EINVAL);
  assert_int_equal(err.field, CS_FIRST_NAME);
  cs_patch no_email = set_one(CS_FIRST_NAME, "Dee");
  assert_int_equal(upsert(f, no_email, &o, &err), CS_EINVAL);
  assert_int_equal(err.field, CS_EMAIL);
  /* null removes an optional field; then the same again is unchanged. */
  cs_patch c = set_one(CS_EMAIL, "cy@example.com");
  c.clear_mask = 1u << CS_COMPANY;
  assert_int_equal(upsert(f, c, &o, &err), 0);
  assert_int_equal(o.result, CS_RESULT_UNCHANGED); /* had no company */
  assert_int_equal(search_total(f, CS_EMAIL, "cy@example.com"), 1);
}

typedef struct racer {
  fixture *f;
  pthread_barrier_t *go;
  int kind; /* 0 upsert of one new email, 1 If-Match edit of version 1 */
  uint64_t id;
  int rc;
  cs_outcome o;
} racer;

static void *race(void *arg) {
  racer *r = arg;
  cs_error err;
  pthread_barrier_wait(r->go);
  if (r->kind == 0) {
    cs_patch p = set_one(CS_EMAIL, "race@example.com");
    p.set_mask |= 1u << CS_FIRST_NAME;
    p.field[CS_FIRST_NAME] = (cs_str){"Ray", 3};
    r->rc = upsert(r->f, p, &r->o, &err);
  } else {
    cs_cond one = {.count = 1, .versions = {1}};
    char v[32];
    snprintf(v, sizeof v, "Co %p", (void *)r);
    r->rc = edit(r->f, r->id, set_one(CS_COMPANY, v), &one, &r->o, &err);
  }
  return NULL;
}

static void run_race(fixture *f, int kind, uint64_t id, racer *rs, int n) {
  pthread_t th[64];
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, (unsigned)n);
  for (int i = 0; i < n; i++) {
    rs[i] = (racer){f, &go, kind, id, 0, {0}};
    pthread_create(&th[i], NULL, race, &rs[i]);
  }
  for (int i = 0; i < n; i++)
    pthread_join(th[i], NULL);
  pthread_barrier_destroy(&go);
}

static void test_safe_concurrent_upserts_create_one(void **state) {
  fixture *f = *state;
  racer rs[50];
  run_race(f, 0, 0, rs, 50);
  int created = 0;
  for (int i = 0; i < 50; i++) {
    assert_int_equal(rs[i].rc, 0);
    created += rs[i].o.result == CS_RESULT_CREATED;
    assert_int_equal(rs[i].o.id, rs[0].o.id);
  }
  assert_int_equal(created, 1);
  assert_int_equal(search_total(f, CS_EMAIL, "race@example.com"), 1);
}

static void test_safe_concurrent_if_match_edits_win_once(void **state) {
  fixture *f = *state;
  uint64_t id = make(f, 1, "Eve", "eve@example.com");
  racer rs[50];
  run_race(f, 1, id, rs, 50);
  int won = 0;
  for (int i = 0; i < 50; i++) {
    if (rs[i].rc == 0)
      won++;
    else
      assert_int_equal(rs[i].rc, CS_EPRECONDITION);
  }
  assert_int_equal(won, 1);
  assert_int_equal(version_of(f, 1, id), 2);
}

/* --------------------------------------------------------------- trash */

static void test_safe_trash_lists_restores_and_purges(void **state) {
  fixture *f = *state;
  uint64_t a = make(f, 1, "Al", "al@example.com");
  uint64_t b = make(f, 1, "Bo", "bo@example.com");
  uint64_t c = make(f, 1, "Cid", "cid@example.com");
  uint64_t other = make(f, 2, "Oz", "oz@example.com");
  cs_error err;
  cs_outcome o;
  assert_int_equal(edit(f, b, set_one(CS_COMPANY, "Bee"), NULL, &o, &err), 0);
  f->now += 1000;
  assert_int_equal(del(f, b, false, NULL, &err), 0);
  f->now += 1000;
  assert_int_equal(del(f, a, false, NULL, &err), 0);
  f->now += 1000;
  assert_int_equal(del(f, c, false, NULL, &err), 0);
  assert_int_equal(tu_delete(f->s, 2, other, &err), 0);
  /* Gone from reads and searches; in the trash, newest first, by pages. */
  assert_int_equal(version_of(f, 1, b), 0);
  assert_int_equal(search_total(f, CS_EMAIL, "bo@example.com"), 0);
  uint64_t ids[8], total;
  size_t n;
  cs_stats st;
  cs_stats_get(f->s, &st);
  assert_int_equal(st.trash_contacts, 4); /* three of account 1, one of 2 */
  trash_ids(f, 2, ids, &n, &total);
  assert_int_equal(n, 3);
  assert_int_equal(total, 3);
  assert_true(ids[0] == c && ids[1] == a && ids[2] == b);
  /* A deleted contact cannot be deleted or edited again. */
  assert_int_equal(del(f, b, false, NULL, &err), CS_ENOTFOUND);
  /* Restore: live again with its fields and the next version, and the
   * restore names the trashed version in If-Match. */
  cs_cond stale = {.count = 1, .versions = {1}};
  assert_int_equal(restore(f, b, &stale, &o, &err), CS_EPRECONDITION);
  assert_int_equal(err.version, 2);
  assert_int_equal(restore(f, b, NULL, &o, &err), 0);
  assert_int_equal(o.version, 3);
  assert_int_equal(o.result, CS_RESULT_RESTORED);
  cs_contact got;
  assert_int_equal(cs_get(f->s, 1, b, &got, &err), 0);
  assert_string_equal(tu_field(&got, CS_COMPANY), "Bee");
  assert_int_equal(search_total(f, CS_COMPANY, "bee"), 1);
  assert_int_equal(restore(f, b, NULL, &o, &err), CS_ENOTFOUND);
  /* Another account's trash is not ours. */
  assert_int_equal(restore(f, other, NULL, &o, &err), CS_ENOTFOUND);
  /* The email was taken meanwhile: 409 naming the holder. */
  uint64_t taker = make(f, 1, "Al2", "AL@example.com");
  assert_int_equal(restore(f, a, NULL, &o, &err), CS_EDUPLICATE);
  assert_int_equal(err.id, taker);
  /* Purge, from the trash and of a live contact: never restorable. */
  assert_int_equal(del(f, a, true, NULL, &err), 0);
  assert_int_equal(restore(f, a, NULL, &o, &err), CS_ENOTFOUND);
  assert_int_equal(del(f, taker, true, NULL, &err), 0);
  assert_int_equal(restore(f, taker, NULL, &o, &err), CS_ENOTFOUND);
  trash_ids(f, 100, ids, &n, &total);
  assert_int_equal(n, 1);
  assert_int_equal(ids[0], c);
  /* All of it survives a reopen, from the snapshot and from the log. */
  for (int from_snapshot = 1; from_snapshot >= 0; from_snapshot--) {
    reopen(f, from_snapshot);
    trash_ids(f, 100, ids, &n, &total);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], c);
    assert_int_equal(version_of(f, 1, b), 3);
    assert_int_equal(restore(f, a, NULL, &o, &err), CS_ENOTFOUND);
  }
  assert_int_equal(restore(f, c, NULL, &o, &err), 0);
  assert_int_equal(o.version, 2);
}

static void test_safe_trash_window_ends(void **state) {
  fixture *f = *state;
  uint64_t a = make(f, 1, "Al", "al@example.com");
  cs_error err;
  cs_outcome o;
  assert_int_equal(del(f, a, false, NULL, &err), 0);
  f->now += 7 * DAY - 1;
  uint64_t ids[4], total;
  size_t n;
  trash_ids(f, 10, ids, &n, &total);
  assert_int_equal(n, 1);
  f->now += 1; /* exactly the window: gone */
  trash_ids(f, 10, ids, &n, &total);
  assert_int_equal(n, 0);
  assert_int_equal(restore(f, a, NULL, &o, &err), CS_ENOTFOUND);
}

/* ---------------------------------------------------- idempotency keys */

static void render(void *ctx, const cs_outcome *o, cs_answer *out) {
  char *buf = ctx;
  snprintf(buf, 64, "{\"id\": \"%020llu\"}", (unsigned long long)o->id);
  *out = (cs_answer){200, CS_ANSWER_JSON, {buf, strlen(buf)}};
}

static int idem_create(fixture *f, const char *key, const uint8_t *fp,
                       const char *email, cs_answer *replay, char *body) {
  cs_error err;
  int rc = cs_idem_begin(f->s, 1, key, strlen(key), fp, replay, &err);
  if (rc) return rc;
  cs_contact c = tu_contact("Ida", NULL, email, NULL, NULL, NULL, NULL);
  cs_idem idem = {key, strlen(key), render, body};
  cs_write w = {
      .kind = CS_WRITE_CREATE, .account = 1, .contact = &c, .idem = &idem};
  rc = tu_write(f->s, &w, NULL, &err);
  if (rc) cs_idem_release(f->s, 1, key, strlen(key));
  return rc;
}

static void test_safe_idempotency_keys_replay(void **state) {
  fixture *f = *state;
  uint8_t fp[CS_IDEM_FP_BYTES] = {1, 2, 3}, fp2[CS_IDEM_FP_BYTES] = {9};
  cs_answer a;
  char body[64];
  assert_int_equal(idem_create(f, "k-1", fp, "ida@example.com", &a, body), 0);
  char first[64];
  snprintf(first, sizeof first, "%s", body);
  cs_stats st;
  cs_stats_get(f->s, &st);
  assert_int_equal(st.idem_keys, 1);
  assert_true(st.idem_bytes >= strlen(first) + 3);
  /* The same request again: the first answer, nothing written. */
  for (int round = 0; round < 3; round++) {
    if (round == 1) reopen(f, true);
    if (round == 2) reopen(f, false);
    assert_int_equal(idem_create(f, "k-1", fp, "ida@example.com", &a, body),
                     CS_IDEM_REPLAY);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.body.len, strlen(first));
    assert_memory_equal(a.body.ptr, first, a.body.len);
    free((void *)a.body.ptr);
    assert_int_equal(idem_create(f, "k-1", fp2, "ida@example.com", &a, body),
                     CS_EIDEM_REUSED);
    assert_int_equal(cs_account_count(f->s, 1), 1);
  }
  /* Keys are per account; in flight is busy; release frees it. */
  cs_error err;
  assert_int_equal(cs_idem_begin(f->s, 2, "k-1", 3, fp, &a, &err), 0);
  assert_int_equal(cs_idem_begin(f->s, 2, "k-1", 3, fp, &a, &err),
                   CS_EIDEM_BUSY);
  cs_idem_release(f->s, 2, "k-1", 3);
  assert_int_equal(cs_idem_begin(f->s, 2, "k-1", 3, fp, &a, &err), 0);
  cs_idem_release(f->s, 2, "k-1", 3);
  /* A refused write leaves the key free to be judged afresh. */
  assert_int_equal(idem_create(f, "k-2", fp, "not an email", &a, body),
                   CS_EINVAL);
  assert_int_equal(idem_create(f, "k-2", fp, "ida2@example.com", &a, body), 0);
  /* Malformed keys. */
  char longkey[CS_IDEM_KEY_MAX_BYTES + 2];
  memset(longkey, 'k', sizeof longkey);
  assert_int_equal(
      cs_idem_begin(f->s, 1, longkey, CS_IDEM_KEY_MAX_BYTES + 1, fp, &a, &err),
      CS_EINVAL);
  assert_int_equal(cs_idem_begin(f->s, 1, "", 0, fp, &a, &err), CS_EINVAL);
  assert_int_equal(cs_idem_begin(f->s, 1, "a b", 3, fp, &a, &err), CS_EINVAL);
  assert_int_equal(
      cs_idem_begin(f->s, 1, longkey, CS_IDEM_KEY_MAX_BYTES, fp, &a, &err), 0);
  cs_idem_release(f->s, 1, longkey, CS_IDEM_KEY_MAX_BYTES);
  /* Kept a day at least, then forgotten. */
  f->now += CS_IDEM_KEEP_MS - 1;
  assert_int_equal(idem_create(f, "k-1", fp, "ida@example.com", &a, body),
                   CS_IDEM_REPLAY);
  free((void *)a.body.ptr);
  f->now += 1;
  assert_int_equal(idem_create(f, "k-1", fp, "ida3@example.com", &a, body), 0);
}

static void test_safe_idempotent_batch_answer_is_its_own_record(void **state) {
  fixture *f = *state;
  uint8_t fp[CS_IDEM_FP_BYTES] = {7};
  cs_answer a;
  cs_error err;
  assert_int_equal(cs_idem_begin(f->s, 1, "batch", 5, fp, &a, &err), 0);
  make(f, 1, "B1", "b1@example.com");
  make(f, 1, "B2", "b2@example.com");
  const char *ans = "{\"results\": [1, 2]}";
  tu_waiter w;
  tu_waiter_init(&w);
  tu_waiter_add(&w);
  cs_answer mine = {200, CS_ANSWER_JSON, {ans, strlen(ans)}};
  assert_int_equal(
      cs_idem_finish(f->s, 1, "batch", 5, &mine, tu_done, &w, &err), 0);
  assert_int_equal(tu_waiter_wait(&w), 0);
  reopen(f, false);
  assert_int_equal(cs_idem_begin(f->s, 1, "batch", 5, fp, &a, &err),
                   CS_IDEM_REPLAY);
  assert_memory_equal(a.body.ptr, ans, strlen(ans));
  free((void *)a.body.ptr);
}

/* ----------------------------------------------------------- compaction */

static bool dir_holds(const char *dir, const char *marker) {
  DIR *d = opendir(dir);
  struct dirent *e;
  bool found = false;
  size_t mlen = strlen(marker);
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *fp = fopen(path, "rb");
    if (!fp) continue;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    found = memmem(buf, got, marker, mlen) != NULL;
    free(buf);
  }
  closedir(d);
  return found;
}

static void compact(fixture *f) {
  cs_error err;
  assert_int_equal(cs_close(f->s, &err), 0);
  f->s = NULL;
  cs_compact_opts o = {
      .trash_ms = f->o.trash_ms, .now_ms = clock_of, .now_ctx = f};
  cs_compact_result res;
  if (cs_admin_compact(f->dir, &o, NULL, NULL, &res, &err))
    fail_msg("compact: %s", err.msg);
  if (cs_open(f->dir, &f->o, &f->s, &err)) fail_msg("open: %s", err.msg);
}

static void test_safe_compaction_keeps_the_trash_window(void **state) {
  fixture *f = *state;
  uint64_t old = make(f, 1, "Old", "old@example.com");
  uint64_t young = make(f, 1, "Young", "young@example.com");
  uint64_t purged = make(f, 1, "Zq7PurgeMarker", "purge@example.com");
  cs_error err;
  assert_int_equal(del(f, old, false, NULL, &err), 0);
  f->now += 5 * DAY;
  assert_int_equal(del(f, young, false, NULL, &err), 0);
  assert_int_equal(del(f, purged, true, NULL, &err), 0);
  assert_true(dir_holds(f->dir, "Zq7PurgeMarker"));
  f->now += 3 * DAY; /* old is 8 days in the trash, young 3 */
  uint8_t fp[CS_IDEM_FP_BYTES] = {5};
  cs_answer a;
  char body[64];
  assert_int_equal(idem_create(f, "keep", fp, "kept@example.com", &a, body), 0);
  compact(f);
  assert_false(dir_holds(f->dir, "Zq7PurgeMarker"));
  assert_false(dir_holds(f->dir, "old@example.com"));
  uint64_t ids[4], total;
  size_t n;
  trash_ids(f, 10, ids, &n, &total);
  assert_int_equal(n, 1);
  assert_int_equal(ids[0], young);
  cs_outcome o;
  assert_int_equal(restore(f, young, NULL, &o, &err), 0);
  assert_int_equal(o.version, 2);
  assert_int_equal(restore(f, old, NULL, &o, &err), CS_ENOTFOUND);
  /* The idempotency entry came over; ids are never given again. */
  assert_int_equal(idem_create(f, "keep", fp, "kept@example.com", &a, body),
                   CS_IDEM_REPLAY);
  free((void *)a.body.ptr);
  uint64_t next = make(f, 1, "New", "new@example.com");
  assert_true(next > purged);
  reopen(f, false);
  assert_int_equal(version_of(f, 1, young), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_safe_versions_count_applied_changes),
      T(test_safe_if_match_names_the_version),
      T(test_safe_upsert_creates_updates_or_leaves_alone),
      T(test_safe_concurrent_upserts_create_one),
      T(test_safe_concurrent_if_match_edits_win_once),
      T(test_safe_trash_lists_restores_and_purges),
      T(test_safe_trash_window_ends),
      T(test_safe_idempotency_keys_replay),
      T(test_safe_idempotent_batch_answer_is_its_own_record),
      T(test_safe_compaction_keeps_the_trash_window),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
