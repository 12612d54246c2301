/*
 * test_import.c: contacts out and in with their identity (cs.h's cs_export
 * and cs_import) and the bulk load (admin.h's cs_load_*).
 *
 * Goal: an export holds every contact of the account (live ones in id
 * order, then the trash) with its id, version and times, as of one commit,
 * even while writers run, and never a contact half written; an import
 * writes them back with the same identity, durably (it survives a reopen),
 * in the change feed (created, then deleted for the trash), moving the id
 * floor past them, and refuses per item an id the store gave or a taken
 * email; a load keeps identity the same way, and a load that fails at any
 * write or at the switch leaves the store exactly as it was.
 * Method: two stores in temporary directories; an account exported from
 * one and imported into the other, compared field by field; writer
 * threads editing contacts so that a torn state would show (first and
 * last name always equal); the fault I/O seam failing the load's writes.
 */
#include <pthread.h>
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
#include "fault_io.h"
#include "test_util.h"

/* ------------------------------------------------------------- helpers */

/* Exported contacts, deep-copied. */
typedef struct got {
  cs_contact v[512];
  char *mem[512];
  size_t n;
} got;

static int keep(void *ctx, const cs_contact *c) {
  got *g = ctx;
  if (g->n == 512) return 1;
  size_t bytes = 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    bytes += c->field[f].ptr ? c->field[f].len : 0;
  char *m = malloc(bytes + 1), *p = m;
  cs_contact k = *c;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr) continue;
    memcpy(p, c->field[f].ptr, c->field[f].len);
    k.field[f].ptr = p;
    p += c->field[f].len;
  }
  g->mem[g->n] = m;
  g->v[g->n++] = k;
  return 0;
}

static void got_free(got *g) {
  for (size_t i = 0; i < g->n; i++)
    free(g->mem[i]);
  g->n = 0;
}

static void same_contacts(const got *a, const got *b) {
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++) {
    const cs_contact *x = &a->v[i], *y = &b->v[i];
    assert_true(x->id == y->id);
    assert_true(x->version == y->version);
    assert_true(x->created_ms == y->created_ms);
    assert_true(x->updated_ms == y->updated_ms);
    assert_true(x->deleted_ms == y->deleted_ms);
    for (int f = 0; f < CS_FIELD_COUNT; f++) {
      assert_int_equal(!x->field[f].ptr, !y->field[f].ptr);
      if (!x->field[f].ptr) continue;
      assert_int_equal(x->field[f].len, y->field[f].len);
      assert_memory_equal(x->field[f].ptr, y->field[f].ptr, x->field[f].len);
    }
  }
}

static cs_store *open_store(const char *dir) {
  cs_store *s = NULL;
  cs_error err;
  assert_int_equal(cs_open(dir, NULL, &s, &err), 0);
  return s;
}

/* Account 1 of a store: 6 contacts, one edited twice, two deleted (one of
 * them purged); account 2: one contact. */
static void fill_source(cs_store *s, uint64_t ids[6]) {
  cs_error err;
  char first[32], email[64];
  for (int i = 0; i < 6; i++) {
    snprintf(first, sizeof first, "First%d", i);
    snprintf(email, sizeof email, "c%d@example.com", i);
    assert_int_equal(tu_create(s, 1,
                               tu_contact(first, "Last", email, NULL, "Acme",
                                          NULL, "some notes"),
                               &ids[i], &err),
                     0);
  }
  cs_patch p = {.set_mask = 1u << CS_JOB_TITLE};
  p.field[CS_JOB_TITLE] = (cs_str){"Boss", 4};
  assert_int_equal(tu_update(s, 1, ids[1], p, &err), 0);
  p.field[CS_JOB_TITLE] = (cs_str){"Chief", 5};
  assert_int_equal(tu_update(s, 1, ids[1], p, &err), 0);
  assert_int_equal(tu_delete(s, 1, ids[2], &err), 0);
  cs_write w = {
      .kind = CS_WRITE_DELETE, .account = 1, .id = ids[4], .purge = true};
  assert_int_equal(tu_write(s, &w, NULL, &err), 0);
  uint64_t other;
  assert_int_equal(tu_create(s, 2,
                             tu_contact("Other", NULL, "c0@example.com", NULL,
                                        NULL, NULL, NULL),
                             &other, &err),
                   0);
}

/* The real clock, which the store uses when no test clock is given. */
static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- tests */

static void test_import_round_trip_keeps_identity(void **state) {
  (void)state;
  char *da = tu_tmpdir(), *db = tu_tmpdir();
  cs_store *a = open_store(da);
  uint64_t ids[6];
  fill_source(a, ids);
  cs_error err;
  got ga = {0};
  assert_int_equal(cs_export(a, 1, keep, &ga, &err), 0);
  /* 4 live in id order, then the one in the trash; the purged one gone */
  assert_int_equal(ga.n, 5);
  assert_true(ga.v[0].id == ids[0] && ga.v[3].id == ids[5]);
  assert_true(ga.v[4].id == ids[2] && ga.v[4].deleted_ms != 0);
  assert_true(ga.v[1].version == 3);
  for (size_t i = 0; i < 4; i++)
    assert_true(ga.v[i].deleted_ms == 0);

  cs_store *b = open_store(db);
  cs_contact items[5];
  int rc[5];
  cs_error errs[5];
  memcpy(items, ga.v, sizeof items);
  cs_import_result res;
  assert_int_equal(cs_import(b, 7, items, 5, rc, errs, &res, &err), 0);
  assert_int_equal(res.imported, 5);
  assert_int_equal(res.refused, 0);
  got gb = {0};
  assert_int_equal(cs_export(b, 7, keep, &gb, &err), 0);
  same_contacts(&ga, &gb);
  got_free(&gb);
  cs_stats st;
  cs_stats_get(b, &st);
  assert_true(st.next_id == ids[5] + 1);
  assert_int_equal(cs_account_count(b, 7), 4);

  /* the feed: created for each, then deleted for the trashed one */
  cs_change ch[16];
  cs_changes got_ch;
  assert_int_equal(cs_changes_read(b, 7, 0, 0, ch, 16, &got_ch, NULL, &err), 0);
  assert_int_equal(got_ch.count, 6);
  int created = 0, deleted = 0;
  for (uint32_t i = 0; i < got_ch.count; i++) {
    created += ch[i].type == CS_CHANGE_CREATED;
    deleted += ch[i].type == CS_CHANGE_DELETED && ch[i].id == ids[2];
  }
  assert_int_equal(created, 5);
  assert_int_equal(deleted, 1);

  /* durable: the same after a reopen */
  assert_int_equal(cs_close(b, &err), 0);
  b = open_store(db);
  assert_int_equal(cs_export(b, 7, keep, &gb, &err), 0);
  same_contacts(&ga, &gb);
  cs_stats_get(b, &st);
  assert_true(st.next_id == ids[5] + 1);

  /* the same items again: every id is below the floor now */
  memcpy(items, ga.v, sizeof items);
  assert_int_equal(cs_import(b, 7, items, 5, rc, errs, &res, &err), 0);
  assert_int_equal(res.imported, 0);
  assert_int_equal(res.refused, 5);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(rc[i], CS_EINVAL);
    assert_non_null(strstr(errs[i].msg, "given by this store already"));
  }
  assert_int_equal(cs_account_count(b, 7), 4);

  /* a new id past the floor goes in; a taken email does not */
  cs_contact fresh[2] = {ga.v[0], ga.v[3]};
  fresh[0].id = ids[5] + 10;
  fresh[1].id = ids[5] + 11;
  fresh[1].field[CS_EMAIL] = (cs_str){"new@example.com", 15};
  fresh[0].field[CS_EMAIL] = (cs_str){"C0@EXAMPLE.COM", 14};
  assert_int_equal(cs_import(b, 7, fresh, 2, rc, errs, &res, &err), 0);
  assert_int_equal(rc[0], CS_EDUPLICATE);
  assert_true(errs[0].id == ids[0]);
  assert_int_equal(rc[1], 0);
  cs_stats_get(b, &st);
  assert_true(st.next_id == ids[5] + 12);

  got_free(&ga);
  got_free(&gb);
  assert_int_equal(cs_close(a, &err), 0);
  assert_int_equal(cs_close(b, &err), 0);
  tu_rmrf(da);
  tu_rmrf(db);
  free(da);
  free(db);
}

static void test_import_refuses_bad_identity_alone(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_store *s = open_store(d);
  cs_error err;
  cs_contact items[4];
  for (int i = 0; i < 4; i++) {
    char email[32];
    snprintf(email, sizeof email, "x%d@example.com", i);
    items[i] = tu_contact("X", NULL, strdup(email), NULL, NULL, NULL, NULL);
    items[i].id = CS_ID_MIN + 100 + (uint64_t)i;
    items[i].version = 2;
    items[i].created_ms = 1000;
    items[i].updated_ms = 2000;
  }
  items[0].version = 0;      /* no version */
  items[1].updated_ms = 500; /* before created */
  items[2].id = 42;          /* not an id */
  int rc[4];
  cs_import_result res;
  assert_int_equal(cs_import(s, 1, items, 4, rc, NULL, &res, &err), 0);
  assert_int_equal(rc[0], CS_EINVAL);
  assert_int_equal(rc[1], CS_EINVAL);
  assert_int_equal(rc[2], CS_EINVAL);
  assert_int_equal(rc[3], 0);
  assert_int_equal(res.imported, 1);
  cs_contact c;
  assert_int_equal(cs_get(s, 1, CS_ID_MIN + 103, &c, &err), 0);
  assert_true(c.version == 2 && c.created_ms == 1000 && c.updated_ms == 2000);
  for (int i = 0; i < 4; i++)
    free((char *)items[i].field[CS_EMAIL].ptr);
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(d);
  free(d);
}

/* Writers edit contacts so that first and last name are always equal in
 * every committed version; an export must show them equal, and hold every
 * contact created before it began. */
typedef struct writer_arg {
  cs_store *s;
  uint64_t first_id;
  int count;
  volatile int stop;
  int seed;
} writer_arg;

static void *writer(void *arg) {
  writer_arg *w = arg;
  unsigned r = (unsigned)w->seed;
  char v[32];
  while (!w->stop) {
    r = r * 1103515245u + 12345u;
    uint64_t id = w->first_id + (r >> 8) % (unsigned)w->count;
    snprintf(v, sizeof v, "v%u", r >> 4);
    cs_patch p = {.set_mask = 1u << CS_FIRST_NAME | 1u << CS_LAST_NAME};
    p.field[CS_FIRST_NAME] = p.field[CS_LAST_NAME] = (cs_str){v, strlen(v)};
    cs_error err;
    tu_update(w->s, 1, id, p, &err);
    uint64_t nid;
    snprintf(v, sizeof v, "n%u@example.com", r);
    tu_create(w->s, 1, tu_contact("N", "N", v, NULL, NULL, NULL, NULL), &nid,
              &err);
  }
  return NULL;
}

typedef struct check_ctx {
  uint64_t seen_below; /* contacts with id < limit seen */
  uint64_t limit;
  int torn;
} check_ctx;

static int check_one(void *ctx, const cs_contact *c) {
  check_ctx *k = ctx;
  if (c->id < k->limit) k->seen_below++;
  const cs_str *a = &c->field[CS_FIRST_NAME], *b = &c->field[CS_LAST_NAME];
  if (!b->ptr || a->len != b->len || memcmp(a->ptr, b->ptr, a->len)) k->torn++;
  return 0;
}

static void test_export_is_consistent_while_writers_run(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_store *s = open_store(d);
  cs_error err;
  enum { N = 300 };
  uint64_t first = 0;
  for (int i = 0; i < N; i++) {
    char email[32];
    snprintf(email, sizeof email, "w%d@example.com", i);
    uint64_t id;
    assert_int_equal(
        tu_create(s, 1, tu_contact("A", "A", email, NULL, NULL, NULL, NULL),
                  &id, &err),
        0);
    if (!first) first = id;
  }
  writer_arg w[2] = {{s, first, N, 0, 1}, {s, first, N, 0, 2}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, writer, &w[i]);
  for (int round = 0; round < 30; round++) {
    cs_stats st;
    cs_stats_get(s, &st); /* every id below next_id is committed or gone */
    uint64_t live_before = cs_account_count(s, 1);
    check_ctx k = {0, st.next_id, 0};
    assert_int_equal(cs_export(s, 1, check_one, &k, &err), 0);
    assert_int_equal(k.torn, 0);
    /* nothing is deleted here: every contact committed before is in it */
    assert_true(k.seen_below >= live_before);
  }
  for (int i = 0; i < 2; i++) {
    w[i].stop = 1;
    pthread_join(t[i], NULL);
  }
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(d);
  free(d);
}

/* A load through the fault seam, failing the kind-th call of kind during
 * the commit: the store must be as it was, after a reopen too. */
static void load_fails_cleanly(int kind) {
  char *d = tu_tmpdir();
  fault_io f;
  fault_io_init(&f);
  cs_options o = {.io = &f.io, .durability = CS_DURABILITY_NONE};
  cs_store *s = NULL;
  cs_error err;
  assert_int_equal(cs_open(d, &o, &s, &err), 0);
  uint64_t id;
  assert_int_equal(tu_create(s, 1,
                             tu_contact("Before", NULL, "b@example.com", NULL,
                                        NULL, NULL, NULL),
                             &id, &err),
                   0);
  assert_int_equal(cs_flush(s, &err), 0);
  char *before = tu_dump(s);
  cs_load *l;
  assert_int_equal(cs_load_begin(s, &l, &err), 0);
  for (int i = 0; i < 50; i++) {
    char email[32];
    snprintf(email, sizeof email, "l%d@example.com", i);
    cs_contact c = tu_contact("L", NULL, email, NULL, NULL, NULL, NULL);
    uint64_t dup;
    assert_int_equal(cs_load_add(l, 1, &c, (uint64_t)i + 1, &dup, &err), 0);
  }
  fault_io_arm(&f, kind, f.calls[kind] + 1, false, 0);
  cs_load_result res;
  assert_int_not_equal(cs_load_commit(l, NULL, NULL, &res, &err), 0);
  cs_load_free(l);
  char *after = tu_dump(s);
  assert_string_equal(before, after);
  free(after);
  cs_close(s, &err);
  s = open_store(d);
  after = tu_dump(s);
  assert_string_equal(before, after);
  cs_stats st;
  cs_stats_get(s, &st);
  assert_true(st.next_id == id + 1);
  assert_int_equal(cs_close(s, &err), 0);
  cs_verify_result vr;
  assert_int_equal(cs_admin_verify(d, NULL, NULL, NULL, &vr, &err), 0);
  assert_int_equal(vr.problems, 0);
  free(before);
  free(after);
  tu_rmrf(d);
  free(d);
}

static void test_load_failing_write_leaves_store(void **state) {
  (void)state;
  load_fails_cleanly(FAULT_WRITE);
}
static void test_load_failing_sync_leaves_store(void **state) {
  (void)state;
  load_fails_cleanly(FAULT_SYNC);
}
static void test_load_failing_switch_leaves_store(void **state) {
  (void)state;
  load_fails_cleanly(FAULT_RENAME);
}

static void test_load_keeps_identity_and_moves_floor(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_store *s = open_store(d);
  cs_error err;
  uint64_t first;
  assert_int_equal(tu_create(s, 1,
                             tu_contact("Old", NULL, "old@example.com", NULL,
                                        NULL, NULL, NULL),
                             &first, &err),
                   0);
  cs_load *l;
  assert_int_equal(cs_load_begin(s, &l, &err), 0);
  int64_t now = wall_ms();
  cs_contact kept =
      tu_contact("Kept", NULL, "kept@example.com", NULL, NULL, NULL, NULL);
  kept.id = CS_ID_MIN + 1000;
  kept.version = 9;
  kept.created_ms = 1000;
  kept.updated_ms = 5000;
  cs_contact trash =
      tu_contact("Trash", NULL, "old@example.com", NULL, NULL, NULL, NULL);
  trash.id = CS_ID_MIN + 900;
  trash.version = 2;
  trash.created_ms = 1000;
  trash.updated_ms = 2000;
  trash.deleted_ms = now - 1000;
  cs_contact plain =
      tu_contact("Plain", NULL, "plain@example.com", NULL, NULL, NULL, NULL);
  cs_contact low = kept;
  low.id = first; /* given by the store */
  low.field[CS_EMAIL] = (cs_str){"low@example.com", 15};
  cs_contact twice = kept;
  twice.field[CS_EMAIL] = (cs_str){"twice@example.com", 17};
  cs_contact dupmail = plain;
  uint64_t dup;
  assert_int_equal(cs_load_add(l, 1, &plain, 1, &dup, &err), 0);
  assert_int_equal(cs_load_add(l, 1, &kept, 2, &dup, &err), 0);
  assert_int_equal(cs_load_add(l, 1, &trash, 3, &dup, &err), 0);
  assert_int_equal(cs_load_add(l, 1, &low, 4, &dup, &err), CS_EINVAL);
  assert_int_equal(dup, 0);
  assert_int_equal(cs_load_add(l, 1, &twice, 5, &dup, &err), CS_EINVAL);
  assert_int_equal(dup, 2);
  assert_int_equal(cs_load_add(l, 1, &dupmail, 6, &dup, &err), CS_EDUPLICATE);
  assert_int_equal(dup, 1);
  cs_load_result res;
  assert_int_equal(cs_load_commit(l, NULL, NULL, &res, &err), 0);
  cs_load_free(l);
  assert_int_equal(res.loaded, 3);
  assert_int_equal(res.trashed, 1);
  /* the plain contact follows every id kept */
  assert_true(res.next_id == CS_ID_MIN + 1002);
  for (int round = 0; round < 2; round++) {
    cs_contact c;
    assert_int_equal(cs_get(s, 1, CS_ID_MIN + 1000, &c, &err), 0);
    assert_true(c.version == 9 && c.created_ms == 1000 && c.updated_ms == 5000);
    assert_int_equal(cs_get(s, 1, CS_ID_MIN + 1001, &c, &err), 0);
    assert_string_equal(tu_field(&c, CS_FIRST_NAME), "Plain");
    assert_int_equal(cs_get(s, 1, CS_ID_MIN + 900, &c, &err), CS_ENOTFOUND);
    cs_page p;
    uint64_t next;
    assert_int_equal(cs_trash_list(s, 1, 0, 10, &p, &next, &err), 0);
    assert_int_equal(p.count, 1);
    assert_true(p.contacts[0].id == CS_ID_MIN + 900);
    assert_true(p.contacts[0].deleted_ms == now - 1000);
    cs_page_free(&p);
    cs_query q = {.account = 1,
                  .field = CS_EMAIL,
                  .term = "kept@example.com",
                  .term_len = 16};
    assert_int_equal(cs_search(s, &q, &p, &err), 0); /* indexed */
    assert_int_equal(p.count, 1);
    cs_page_free(&p);
    cs_stats st;
    cs_stats_get(s, &st);
    assert_true(st.next_id == CS_ID_MIN + 1002 + (uint64_t)round);
    /* writes go on after a load */
    if (round == 0) {
      uint64_t after;
      assert_int_equal(tu_create(s, 1,
                                 tu_contact("After", NULL, "after@example.com",
                                            NULL, NULL, NULL, NULL),
                                 &after, &err),
                       0);
      assert_true(after == CS_ID_MIN + 1002);
      assert_int_equal(cs_close(s, &err), 0);
      s = open_store(d);
      cs_stats_get(s, &st);
      assert_true(st.next_id == CS_ID_MIN + 1003);
      assert_int_equal(cs_close(s, &err), 0);
      cs_verify_result vr;
      assert_int_equal(cs_admin_verify(d, NULL, NULL, NULL, &vr, &err), 0);
      assert_int_equal(vr.problems, 0);
      s = open_store(d);
    }
  }
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(d);
  free(d);
}

static void test_keys_account_ensure_makes_accounts_without_keys(void **state) {
  (void)state;
  char *d = tu_tmpdir();
  cs_keyring *k;
  cs_error err;
  assert_int_equal(cs_keys_open(d, &k, &err), 0);
  char key[CS_KEY_BYTES + 1];
  cs_key_info info;
  assert_int_equal(cs_keys_add(k, "acme", CS_ROLE_READ_WRITE, key, &info, &err),
                   0);
  uint32_t id = 0, again = 0;
  assert_int_equal(cs_keys_account_ensure(k, "moved", &id, &err), 0);
  assert_int_equal(id, info.account_id + 1);
  assert_int_equal(cs_keys_account_ensure(k, "moved", &again, &err), 0);
  assert_int_equal(again, id);
  assert_int_equal(cs_keys_account_ensure(k, "acme", &again, &err), 0);
  assert_int_equal(again, info.account_id);
  assert_int_equal(cs_keys_account_ensure(k, "bad name", &again, &err),
                   CS_EACCOUNT);
  assert_int_equal(cs_keys_count(k), 1); /* no key made */
  cs_keys_close(k);
  /* kept in the file, and a key made later joins the same number */
  assert_int_equal(cs_keys_open(d, &k, &err), 0);
  assert_int_equal(cs_keys_account_id(k, "moved", &again), 0);
  assert_int_equal(again, id);
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  assert_int_equal(cs_keys_account_name(k, id, name), 0);
  assert_string_equal(name, "moved");
  uint32_t ids[4];
  assert_int_equal(cs_keys_account_list(k, ids, 4), 2);
  assert_true(ids[0] == info.account_id && ids[1] == id);
  assert_int_equal(cs_keys_add(k, "moved", CS_ROLE_READ_ONLY, key, &info, &err),
                   0);
  assert_int_equal(info.account_id, id);
  assert_int_equal(cs_keys_account_ensure(k, "third", &again, &err), 0);
  assert_int_equal(again, id + 1);
  cs_keys_close(k);
  tu_rmrf(d);
  free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_import_round_trip_keeps_identity),
      cmocka_unit_test(test_import_refuses_bad_identity_alone),
      cmocka_unit_test(test_export_is_consistent_while_writers_run),
      cmocka_unit_test(test_load_failing_write_leaves_store),
      cmocka_unit_test(test_load_failing_sync_leaves_store),
      cmocka_unit_test(test_load_failing_switch_leaves_store),
      cmocka_unit_test(test_load_keeps_identity_and_moves_floor),
      cmocka_unit_test(test_keys_account_ensure_makes_accounts_without_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
