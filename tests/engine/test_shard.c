/*
 * test_shard.c: a store's shard (cs_options.shard) and the ids it gives.
 *
 * Goal: shard K gives ids from cs_shard_floor(K) + 1 on and no id of any
 * other shard; the shard is written in the manifest and kept by a reopen,
 * an offline and an online compaction and a bulk load; a store of one
 * shard opened as another is refused and left as it was; an import or a
 * load with an id of another shard is refused, naming both shards; the
 * edges of the limits (CS_SHARD_MAX, the last id of a shard's span) hold
 * at and past them.
 * Method: stores in temporary directories, written through cs.h and
 * admin.h, compared through cs_stats and the ids the writes report.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "admin.h"
#include "cs.h"
#include "store_int.h"
#include "test_util.h"

static cs_store *open_shard(const char *dir, uint32_t shard, bool set,
                            int want_rc) {
  cs_options o = {.shard = shard, .shard_set = set};
  cs_store *s = NULL;
  cs_error err = {0};
  int rc = cs_open(dir, &o, &s, &err);
  if (rc != want_rc) fail_msg("open %s: %d %s", dir, rc, err.msg);
  return s;
}

static uint64_t create_one(cs_store *s, const char *email) {
  uint64_t id = 0;
  cs_error err = {0};
  int rc = tu_create(
      s, 1, tu_contact("Ann", NULL, email, NULL, NULL, NULL, NULL), &id, &err);
  if (rc) fail_msg("create %s: %d %s", email, rc, err.msg);
  return id;
}

static uint32_t shard_of(cs_store *s) {
  cs_stats st;
  cs_stats_get(s, &st);
  return st.shard;
}

static void test_floor_and_span(void **state) {
  (void)state;
  assert_true(cs_shard_floor(0) == CS_ID_MIN);
  assert_true(cs_shard_floor(1) - cs_shard_floor(0) == CS_SHARD_ID_SPAN);
  for (uint32_t k = 0; k <= CS_SHARD_MAX; k++) {
    assert_int_equal(cs_id_shard(cs_shard_floor(k) + 1), k);
    assert_int_equal(cs_id_shard(cs_shard_floor(k + 1)), k); /* its last */
    assert_int_equal(cs_id_shard(cs_shard_floor(k + 1) + 1), k + 1);
  }
  /* The last shard's span ends below 2^64; one more would not. */
  unsigned __int128 end =
      (unsigned __int128)CS_ID_MIN +
      (unsigned __int128)(CS_SHARD_MAX + 1) * CS_SHARD_ID_SPAN;
  assert_true(end <= UINT64_MAX);
  assert_true(end + CS_SHARD_ID_SPAN > UINT64_MAX);
}

static void test_new_store_of_a_shard(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_error err = {0};
  cs_store *s = open_shard(d, 3, true, 0);
  assert_int_equal(shard_of(s), 3);
  uint64_t a = create_one(s, "a@example.com");
  uint64_t b = create_one(s, "b@example.com");
  assert_true(a == cs_shard_floor(3) + 1);
  assert_true(b == a + 1);
  assert_int_equal(cs_close(s, &err), 0);

  /* Reopened without a shard: its own. With its own: fine. */
  s = open_shard(d, 0, false, 0);
  assert_int_equal(shard_of(s), 3);
  assert_true(create_one(s, "c@example.com") == b + 1);
  assert_int_equal(cs_close(s, &err), 0);
  s = open_shard(d, 3, true, 0);
  assert_int_equal(cs_close(s, &err), 0);

  /* Another shard is refused, naming both, and changes nothing. */
  cs_options o = {.shard = 0, .shard_set = true};
  s = NULL;
  assert_int_equal(cs_open(d, &o, &s, &err), CS_EINVAL);
  assert_null(s);
  assert_non_null(strstr(err.msg, "shard 3, not of shard 0"));
  s = open_shard(d, 0, false, 0);
  assert_int_equal(shard_of(s), 3);
  cs_stats st;
  cs_stats_get(s, &st);
  assert_int_equal(st.contacts, 3);
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(d);
  free(d);

  /* A store made without a shard is shard 0, as before shards. */
  d = tu_tmpdir();
  s = open_shard(d, 0, false, 0);
  assert_int_equal(shard_of(s), 0);
  assert_true(create_one(s, "z@example.com") == CS_ID_MIN + 1);
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(d);
  free(d);
}

static void test_shard_limit(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_error err = {0};
  cs_options o = {.shard = CS_SHARD_MAX + 1, .shard_set = true};
  cs_store *s = NULL;
  assert_int_equal(cs_open(d, &o, &s, &err), CS_EINVAL);
  assert_non_null(strstr(err.msg, "past the last"));
  assert_false(cs_dir_is_store(d));
  s = open_shard(d, CS_SHARD_MAX, true, 0);
  assert_true(create_one(s, "last@example.com") ==
              cs_shard_floor(CS_SHARD_MAX) + 1);
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(d);
  free(d);
}

/* Kept by every rewrite of the manifest: compactions, a load. */
static void test_shard_survives_rewrites(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_error err = {0};
  cs_store *s = open_shard(d, 5, true, 0);
  uint64_t a = create_one(s, "a@example.com");
  cs_compact_result res;
  assert_int_equal(cs_compact_online(s, NULL, &res, &err), 0);
  assert_int_equal(shard_of(s), 5);
  assert_int_equal(cs_close(s, &err), 0);
  s = open_shard(d, 5, true, 0);
  assert_int_equal(cs_close(s, &err), 0);

  assert_int_equal(cs_admin_compact(d, NULL, NULL, NULL, &res, &err), 0);
  s = open_shard(d, 5, true, 0);
  cs_load *l;
  assert_int_equal(cs_load_begin(s, &l, &err), 0);
  cs_contact c = tu_contact("L", NULL, "l@example.com", NULL, NULL, NULL, NULL);
  uint64_t dup;
  assert_int_equal(cs_load_add(l, 1, &c, 1, &dup, &err), 0);
  cs_load_result lres;
  assert_int_equal(cs_load_commit(l, NULL, NULL, &lres, &err), 0);
  cs_load_free(l);
  assert_int_equal(cs_close(s, &err), 0);
  s = open_shard(d, 5, true, 0);
  assert_true(create_one(s, "b@example.com") == a + 2); /* the load took one */
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(d);
  free(d);
}

/* An import takes ids of the store's shard and of lower ones, never of a
 * higher one; a load only its own shard's; the last id of the span goes
 * in, and after it a create is refused. */
static void test_ids_of_other_shards(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_error err = {0};
  cs_store *s = open_shard(d, 2, true, 0);
  cs_contact items[4];
  uint64_t ids[4] = {cs_shard_floor(1) + 7, cs_shard_floor(3) + 1,
                     cs_shard_floor(2) + 10, cs_shard_floor(3)};
  static const char *const emails[4] = {"i0@example.com", "i1@example.com",
                                        "i2@example.com", "i3@example.com"};
  for (int i = 0; i < 4; i++) {
    items[i] = tu_contact("I", NULL, emails[i], NULL, NULL, NULL, NULL);
    items[i].id = ids[i];
    items[i].version = 1;
    items[i].created_ms = items[i].updated_ms = 1700000000000;
  }
  int rc[4];
  cs_error errs[4];
  cs_import_result res;
  assert_int_equal(cs_import(s, 1, items, 4, rc, errs, &res, &err), 0);
  assert_int_equal(res.imported, 3);
  assert_int_equal(rc[0], 0); /* shard 1's */
  assert_int_equal(rc[1], CS_EINVAL);
  assert_non_null(strstr(errs[1].msg, "an id of shard 3, above this store's "
                                      "shard 2"));
  assert_int_equal(rc[2], 0);
  assert_int_equal(rc[3], 0); /* the span's last id */

  cs_contact c = tu_contact("N", NULL, "n@example.com", NULL, NULL, NULL, NULL);
  uint64_t id = 0;
  assert_int_equal(tu_create(s, 1, c, &id, &err), CS_EIDS_SPENT);
  assert_non_null(strstr(err.msg, "every id of its span"));
  cs_stats st;
  cs_stats_get(s, &st);
  assert_int_equal(st.contacts, 3);

  /* A load takes no other shard's ids. */
  cs_load *l;
  assert_int_equal(cs_load_begin(s, &l, &err), 0);
  cs_contact lc = items[0];
  lc.field[CS_EMAIL] = (cs_str){"l@example.com", 13};
  uint64_t dup;
  lc.id = cs_shard_floor(1) + 8;
  assert_int_equal(cs_load_add(l, 1, &lc, 1, &dup, &err), CS_EINVAL);
  assert_non_null(strstr(err.msg, "a load takes only ids of this store's"));
  lc.id = cs_shard_floor(3) + 1;
  assert_int_equal(cs_load_add(l, 1, &lc, 2, &dup, &err), CS_EINVAL);
  assert_non_null(strstr(err.msg, "above this store's shard 2"));
  cs_load_free(l);
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(d);
  free(d);
}

/* ---------------------------------------------- an account moving in */

static void check_store(cs_store *s) {
  char why[256];
  if (store_check(s, why, sizeof why)) fail_msg("store_check: %s", why);
}

static int import_one(cs_store *s, uint32_t account, uint64_t id,
                      const char *email, int64_t deleted_ms, char *msg) {
  cs_contact c = tu_contact("Moved", NULL, email, NULL, NULL, NULL, NULL);
  c.id = id;
  c.version = 2;
  c.created_ms = (int64_t)time(NULL) * 1000 - 10000;
  c.updated_ms = c.created_ms + 500;
  c.deleted_ms = deleted_ms;
  int rc;
  cs_error e = {0}, err = {0};
  cs_import_result res;
  assert_int_equal(cs_import(s, account, &c, 1, &rc, &e, &res, &err), 0);
  if (msg) memcpy(msg, e.msg, sizeof e.msg);
  return rc;
}

typedef struct ids {
  uint64_t v[64];
  size_t n;
} ids;

static int note_id(void *ctx, const cs_contact *c) {
  ids *l = ctx;
  l->v[l->n++] = c->id;
  return 0;
}

/* Account 1's live contacts, in the order the store gives them. */
static ids account_ids(cs_store *s, uint32_t account) {
  ids l = {0};
  cs_error err;
  assert_int_equal(cs_iterate(s, account, note_id, &l, &err), 0);
  return l;
}

/* A store of shard 2 takes an account of shard 1 with its ids, below its
 * own: reads, the order and cursors hold, before and after a reopen, a
 * full replay and both compactions, and verify finds nothing. */
static void test_account_from_a_lower_shard(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_error err = {0};
  cs_store *s = open_shard(d, 2, true, 0);
  uint64_t f1 = cs_shard_floor(1), f2 = cs_shard_floor(2);
  uint64_t own = 0;
  char email[32], msg[sizeof err.msg];
  for (int i = 0; i < 5; i++) {
    snprintf(email, sizeof email, "own%d@example.com", i);
    cs_contact c = tu_contact("Own", NULL, email, NULL, NULL, NULL, NULL);
    assert_int_equal(tu_create(s, 2, c, &own, &err), 0);
  }
  assert_true(own == f2 + 5);
  /* Account 1 moves in: three live, one into the trash. */
  assert_int_equal(import_one(s, 1, f1 + 10, "m10@example.com", 0, NULL), 0);
  assert_int_equal(import_one(s, 1, f1 + 20, "m20@example.com", 0, NULL), 0);
  assert_int_equal(import_one(s, 1, f1 + 25, "m25@example.com",
                              (int64_t)time(NULL) * 1000, NULL),
                   0);
  assert_int_equal(import_one(s, 1, f1 + 30, "m30@example.com", 0, NULL), 0);
  check_store(s);
  cs_stats st;
  cs_stats_get(s, &st);
  assert_true(st.next_id == own + 1); /* lower ids leave the floor */
  cs_contact got;
  assert_int_equal(cs_get(s, 1, f1 + 20, &got, &err), 0);
  assert_true(got.version == 2);
  assert_int_equal(cs_get(s, 2, f1 + 20, &got, &err), CS_ENOTFOUND);
  /* Its new contacts get the store's ids, above its old ones. */
  uint64_t mine = 0;
  cs_contact c =
      tu_contact("New", NULL, "new@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(tu_create(s, 1, c, &mine, &err), 0);
  assert_true(mine == own + 1);
  /* Refused: below the account's largest; held already; a higher shard. */
  assert_int_equal(import_one(s, 1, f1 + 40, "m40@example.com", 0, msg),
                   CS_EINVAL);
  assert_non_null(strstr(msg, "not above"));
  assert_int_equal(import_one(s, 3, f1 + 20, "x@example.com", 0, msg),
                   CS_EINVAL);
  assert_non_null(strstr(msg, "held by this store already"));
  assert_int_equal(
      import_one(s, 3, cs_shard_floor(3) + 1, "y@example.com", 0, msg),
      CS_EINVAL);
  assert_non_null(strstr(msg, "above this store's shard 2"));
  /* Another account moves in after: a run of its own. */
  assert_int_equal(import_one(s, 3, f1 + 5, "z@example.com", 0, NULL), 0);
  check_store(s);

  uint64_t want[4] = {f1 + 10, f1 + 20, f1 + 30, mine};
  for (int round = 0; round < 4; round++) {
    ids l = account_ids(s, 1);
    assert_int_equal(l.n, 4);
    for (size_t i = 0; i < 4; i++)
      assert_true(l.v[i] == want[i]);
    assert_int_equal(cs_account_count(s, 3), 1);
    cs_stats_get(s, &st);
    assert_int_equal(st.trash_contacts, 1);
    check_store(s);
    /* Reopened from the snapshot, by a full replay, after an online and
     * an offline compaction: the same, and the next id the same. */
    cs_compact_result cres;
    if (round == 2)
      assert_int_equal(cs_compact_online(s, NULL, &cres, &err), 0);
    assert_int_equal(cs_close(s, &err), 0);
    if (round == 3)
      assert_int_equal(cs_admin_compact(d, NULL, NULL, NULL, &cres, &err), 0);
    cs_options o = {.no_snapshot_load = round == 1};
    assert_int_equal(cs_open(d, &o, &s, &err), 0);
    cs_stats_get(s, &st);
    assert_true(st.next_id == mine + 1);
  }
  cs_verify_result vr;
  assert_int_equal(cs_close(s, &err), 0);
  assert_int_equal(cs_admin_verify(d, NULL, NULL, NULL, &vr, &err), 0);
  assert_int_equal(vr.problems, 0);
  tu_rmrf(d);
  free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_floor_and_span),
      cmocka_unit_test(test_new_store_of_a_shard),
      cmocka_unit_test(test_shard_limit),
      cmocka_unit_test(test_shard_survives_rewrites),
      cmocka_unit_test(test_ids_of_other_shards),
      cmocka_unit_test(test_account_from_a_lower_shard),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
