/*
 * test_ship.c: replication in the engine (ship.c, follow.c): a primary's
 * records read and appended by a standby until both stores are the same;
 * damaged, cut and out-of-sequence records refused without changing the
 * standby; --standby-ack required's wait, timeout and refusal; positions
 * a log no longer holds; promotion's ids; fencing across restarts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "cs.h"
#include "test_util.h"

#define BUF_BYTES (2 * CS_RECORD_BYTES_MAX)

static cs_store *open_store(const char *dir, bool standby, int ack,
                            uint32_t timeout_ms) {
  cs_options o = {
      .standby = standby, .standby_ack = ack, .standby_timeout_ms = timeout_ms};
  cs_store *s = NULL;
  cs_error err;
  int rc = cs_open(dir, &o, &s, &err);
  if (rc) fprintf(stderr, "open %s: %s\n", dir, err.msg);
  assert_int_equal(rc, 0);
  return s;
}

static void make_contacts(cs_store *s, int n, int from, uint64_t *ids) {
  for (int i = 0; i < n; i++) {
    char first[32], email[64];
    snprintf(first, sizeof first, "First%d", from + i);
    snprintf(email, sizeof email, "p%d@example.com", from + i);
    cs_contact c = tu_contact(first, "Last", email, NULL, "Acme", NULL, NULL);
    cs_error err;
    assert_int_equal(tu_create(s, 1, c, ids ? &ids[i] : NULL, &err), 0);
  }
}

/* Ships everything p has durable to f; returns the bytes moved. */
static size_t ship_all(cs_store *p, cs_store *f) {
  cs_ship *sh;
  cs_error err;
  assert_int_equal(cs_ship_open(p, cs_follow_last(f), &sh, &err), 0);
  uint8_t *buf = malloc(BUF_BYTES);
  size_t total = 0;
  for (;;) {
    size_t len = 0;
    assert_int_equal(cs_ship_read(sh, buf, BUF_BYTES, &len, 0, &err), 0);
    if (!len) break;
    size_t used;
    uint64_t last;
    int rc = cs_follow_append(f, buf, len, &used, &last, &err);
    if (rc) fprintf(stderr, "append: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(used, len);
    assert_int_equal(cs_ship_ack(p, last, &err), 0);
    total += len;
  }
  free(buf);
  cs_ship_close(sh);
  return total;
}

static void assert_same(cs_store *a, cs_store *b) {
  char *da = tu_dump(a), *db = tu_dump(b);
  assert_string_equal(da, db);
  free(da);
  free(db);
}

static void test_ship_follow_promote_fence(void **state) {
  (void)state;
  char *pd = tu_tmpdir(), *sd = tu_tmpdir();
  cs_store *p = open_store(pd, false, CS_STANDBY_ACK_ASYNC, 0);
  cs_store *f = open_store(sd, true, CS_STANDBY_ACK_ASYNC, 0);
  assert_int_equal(cs_store_role(p), CS_REPL_PRIMARY);
  assert_int_equal(cs_store_role(f), CS_REPL_STANDBY);
  uint64_t ids[40];
  make_contacts(p, 40, 0, ids);
  cs_error err;
  cs_patch patch = {0};
  patch.set_mask = 1u << CS_COMPANY;
  patch.field[CS_COMPANY] = (cs_str){"Initech", 7};
  assert_int_equal(tu_update(p, 1, ids[3], patch, &err), 0);
  assert_int_equal(tu_delete(p, 1, ids[5], &err), 0);
  assert_true(ship_all(p, f) > 0);
  assert_same(p, f);
  assert_int_equal(cs_follow_last(f), cs_follow_last(p));

  /* A standby takes no write. */
  cs_contact c =
      tu_contact("No", "Write", "nw@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(tu_create(f, 1, c, NULL, &err), CS_ESTANDBY);
  cs_compact_result cr;
  assert_int_equal(cs_compact_online(f, NULL, &cr, &err), CS_ESTANDBY);

  /* Restarted, it goes on from its own last record (no seal of its own). */
  assert_int_equal(cs_close(f, &err), 0);
  f = open_store(sd, true, CS_STANDBY_ACK_ASYNC, 0);
  assert_same(p, f);
  make_contacts(p, 10, 100, NULL);
  assert_true(ship_all(p, f) > 0);
  assert_same(p, f);

  /* Promoted: ids past every id it has seen. */
  assert_int_equal(cs_promote(f, &err), 0);
  assert_int_equal(cs_store_role(f), CS_REPL_PRIMARY);
  uint64_t nid;
  c = tu_contact("After", "Promotion", "ap@example.com", NULL, NULL, NULL,
                 NULL);
  assert_int_equal(tu_create(f, 1, c, &nid, &err), 0);
  cs_stats st;
  cs_stats_get(p, &st);
  assert_true(nid >= st.next_id + CS_PROMOTE_ID_SKIP);
  /* And the ids go on from there after a restart. */
  cs_stats_get(f, &st);
  uint64_t want = st.next_id;
  assert_int_equal(cs_close(f, &err), 0);
  f = open_store(sd, false, CS_STANDBY_ACK_ASYNC, 0);
  cs_stats_get(f, &st);
  assert_int_equal(st.next_id, want);

  /* The old primary fenced: refuses writes, also after a restart, until
   * opened as a standby. */
  assert_int_equal(cs_fence(p, &err), 0);
  assert_int_equal(tu_create(p, 1, c, NULL, &err), CS_EFENCED);
  assert_int_equal(cs_promote(p, &err), CS_EFENCED);
  assert_int_equal(cs_close(p, &err), 0);
  p = open_store(pd, false, CS_STANDBY_ACK_ASYNC, 0);
  assert_int_equal(cs_store_role(p), CS_REPL_FENCED);
  assert_int_equal(tu_create(p, 1, c, NULL, &err), CS_EFENCED);
  assert_int_equal(cs_close(p, &err), 0);
  p = open_store(pd, true, CS_STANDBY_ACK_ASYNC, 0);
  assert_int_equal(cs_store_role(p), CS_REPL_STANDBY);
  assert_int_equal(cs_close(p, &err), 0);
  p = open_store(pd, false, CS_STANDBY_ACK_ASYNC, 0);
  assert_int_equal(cs_store_role(p), CS_REPL_PRIMARY);

  assert_int_equal(cs_close(p, &err), 0);
  assert_int_equal(cs_close(f, &err), 0);
  tu_rmrf(pd);
  tu_rmrf(sd);
  free(pd);
  free(sd);
}

static void test_ship_refuses_damage(void **state) {
  (void)state;
  char *pd = tu_tmpdir(), *sd = tu_tmpdir();
  cs_store *p = open_store(pd, false, CS_STANDBY_ACK_ASYNC, 0);
  /* A standby started with the primary's options: waits for no one. */
  cs_store *f = open_store(sd, true, CS_STANDBY_ACK_REQUIRED, 100);
  make_contacts(p, 5, 0, NULL);
  assert_true(ship_all(p, f) > 0);
  make_contacts(p, 5, 10, NULL);
  cs_ship *sh;
  cs_error err;
  assert_int_equal(cs_ship_open(p, cs_follow_last(f), &sh, &err), 0);
  uint8_t *buf = malloc(BUF_BYTES), *bad = malloc(BUF_BYTES);
  size_t len = 0;
  assert_int_equal(cs_ship_read(sh, buf, BUF_BYTES, &len, 0, &err), 0);
  assert_true(len > 100);
  char *before = tu_dump(f);
  uint64_t last_before = cs_follow_last(f);
  size_t used;
  uint64_t last;

  /* A flipped bit anywhere: nothing taken. */
  size_t spots[] = {3, 12, 30, len / 2, len - 1};
  for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
    memcpy(bad, buf, len);
    bad[spots[i]] ^= 0x10;
    assert_int_equal(cs_follow_append(f, bad, len, &used, &last, &err),
                     CS_ECORRUPT);
    assert_int_equal(used, 0);
    assert_int_equal(cs_follow_last(f), last_before);
  }
  /* A record cut short: taken up to the last whole one, the rest left. */
  assert_int_equal(cs_follow_append(f, buf, 10, &used, &last, &err), 0);
  assert_int_equal(used, 0);
  char *same = tu_dump(f);
  assert_string_equal(before, same);
  free(same);

  /* Out of sequence: what the standby has already, or a gap back. */
  assert_int_equal(cs_follow_append(f, buf, len, &used, &last, &err), 0);
  assert_int_equal(used, len);
  uint64_t after_ok = cs_follow_last(f);
  assert_int_equal(cs_follow_append(f, buf, len, &used, &last, &err),
                   CS_ECORRUPT);
  assert_int_equal(cs_follow_last(f), after_ok);
  assert_same(p, f);

  /* Ack past the durable end; positions the log does not hold. */
  assert_int_equal(cs_ship_ack(p, cs_follow_last(p) + 5, &err), CS_EINVAL);
  cs_ship *x;
  assert_int_equal(cs_ship_open(p, cs_follow_last(p) + 1, &x, &err),
                   CS_ESHIP_GONE);
  assert_null(x);

  /* After a compaction the early records are gone: start from a backup. */
  cs_ship_close(sh);
  cs_compact_result cr;
  assert_int_equal(cs_compact_online(p, NULL, &cr, &err), 0);
  /* Through the batches kept in memory, a standby goes on across it. */
  assert_int_equal(cs_ship_open(p, 2, &x, &err), 0);
  cs_ship_close(x);
  make_contacts(p, 3, 50, NULL);
  assert_true(ship_all(p, f) > 0);
  assert_same(p, f);
  /* Once they are gone (a restart), only the files speak: a position
   * before the compaction is gone, the end is not. */
  assert_int_equal(cs_close(p, &err), 0);
  p = open_store(pd, false, CS_STANDBY_ACK_ASYNC, 0);
  assert_int_equal(cs_ship_open(p, 2, &x, &err), CS_ESHIP_GONE);
  assert_int_equal(cs_ship_open(p, cs_follow_last(p), &x, &err), 0);
  cs_ship_close(x);
  make_contacts(p, 2, 60, NULL);
  assert_true(ship_all(p, f) > 0);
  assert_same(p, f);

  free(before);
  free(buf);
  free(bad);
  assert_int_equal(cs_close(p, &err), 0);
  assert_int_equal(cs_close(f, &err), 0);
  tu_rmrf(pd);
  tu_rmrf(sd);
  free(pd);
  free(sd);
}

typedef struct follower {
  cs_store *p, *f;
  volatile bool stop;
  pthread_t th;
} follower;

static void *follow_main(void *arg) {
  follower *fl = arg;
  cs_ship *sh;
  cs_error err;
  assert_int_equal(cs_ship_open(fl->p, cs_follow_last(fl->f), &sh, &err), 0);
  uint8_t *buf = malloc(BUF_BYTES);
  while (!fl->stop) {
    size_t len = 0, used;
    uint64_t last;
    assert_int_equal(cs_ship_read(sh, buf, BUF_BYTES, &len, 20, &err), 0);
    if (!len) continue;
    assert_int_equal(cs_follow_append(fl->f, buf, len, &used, &last, &err), 0);
    assert_int_equal(cs_ship_ack(fl->p, last, &err), 0);
  }
  free(buf);
  cs_ship_close(sh);
  return NULL;
}

static void test_ship_required(void **state) {
  (void)state;
  char *pd = tu_tmpdir(), *sd = tu_tmpdir();
  cs_store *p = open_store(pd, false, CS_STANDBY_ACK_REQUIRED, 1000);
  cs_store *f = open_store(sd, true, CS_STANDBY_ACK_ASYNC, 0);
  cs_error err;

  /* No standby: the write times out unanswered-for, is not visible, and
   * the next is refused at once. */
  cs_contact c =
      tu_contact("Wait", "Ing", "w@example.com", NULL, NULL, NULL, NULL);
  uint64_t id = 0;
  assert_int_equal(tu_create(p, 1, c, &id, &err), CS_ESTANDBY_DOWN);
  cs_contact got;
  assert_int_equal(cs_get(p, 1, id, &got, &err), CS_ENOTFOUND);
  cs_contact c2 =
      tu_contact("Two", "Ing", "w2@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(cs_create(p, 1, &c2, tu_done, NULL, NULL, &err),
                   CS_ESTANDBY_DOWN);
  cs_repl_info ri;
  cs_repl_get(p, &ri);
  assert_true(ri.unavailable);
  assert_true(ri.lag_records >= 1);

  /* A standby takes it and acknowledges: it is applied, writes go on. */
  follower fl = {.p = p, .f = f};
  assert_int_equal(pthread_create(&fl.th, NULL, follow_main, &fl), 0);
  int rc = CS_ENOTFOUND;
  for (int i = 0; i < 200 && rc == CS_ENOTFOUND; i++) {
    rc = cs_get(p, 1, id, &got, &err);
    if (rc) usleep(10000);
  }
  assert_int_equal(rc, 0);
  uint64_t ids[20];
  make_contacts(p, 20, 0, ids);
  cs_repl_get(p, &ri);
  assert_false(ri.unavailable);
  assert_true(ri.acked_seq >= ri.durable_seq - 0);
  assert_int_equal(cs_get(f, 1, ids[19], &got, &err), 0);
  fl.stop = true;
  pthread_join(fl.th, NULL);
  assert_same(p, f);

  /* Closed while a write waits past its timeout: the record is in the
   * log, and the next open has it. */
  c = tu_contact("Late", "Close", "lc@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(tu_create(p, 1, c, &id, &err), CS_ESTANDBY_DOWN);
  assert_int_equal(cs_close(p, &err), 0);
  p = open_store(pd, false, CS_STANDBY_ACK_ASYNC, 0);
  assert_int_equal(cs_get(p, 1, id, &got, &err), 0);

  assert_int_equal(cs_close(p, &err), 0);
  assert_int_equal(cs_close(f, &err), 0);
  tu_rmrf(pd);
  tu_rmrf(sd);
  free(pd);
  free(sd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ship_follow_promote_fence),
      cmocka_unit_test(test_ship_refuses_damage),
      cmocka_unit_test(test_ship_required),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
