/*
 * test_format_v1.c: a store written in record format 1 opens and works.
 *
 * Goal: the committed format-1 fixture (tests/fixtures/store-v1, with a
 * snapshot, and store-v1-nosnap, replayed from the log) opens unchanged:
 * every live contact is there exactly as the format-1 engine read it back,
 * each with version 1; the contact deleted in format 1 is gone for good
 * (not in the trash: a format-1 delete is final); verify is clean; and
 * the safe writes work on it: an edit makes version 2, a delete puts the
 * contact in the trash with its version, and both survive a reopen; and
 * compaction rewrites it in today's format with nothing changed.
 * Method: copy a fixture to a temporary directory (never open the
 * committed one), open it, compare a one-line form of every contact with
 * tests/fixtures/store-v1.expected, search, write, reopen, verify.
 * While the engine's safe writes are not built (cs_trash_list answers
 * -ENOSYS) the version and trash checks are skipped, saying so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cs.h"
#include "fixtures/store_v1_data.h"
#include "record.h"
#include "test_util.h"

/* Ids as the fixture's README lists them: the twelve creates, the edit's
 * and the delete's targets, the create after the delete. */
#define FX_ID(n) (CS_ID_MIN + (n))
#define FX_EDITED_ID FX_ID(FX_EDIT + 1)
#define FX_DELETED_ID FX_ID(FX_DELETE + 1)
#define FX_LAST_ID FX_ID(FX_CREATED + 1)
#define FX_LIVE 12

typedef struct fixture {
  char *tmp; /* the temporary directory */
  char *dir; /* the copy of the store inside it */
  uint32_t acct[2];
  int notices;
  char notice[600];
} fixture;

static void on_notice(void *ctx, const char *line) {
  fixture *f = ctx;
  f->notices++;
  snprintf(f->notice, sizeof f->notice, "%s", line);
}

static fixture *fixture_copy(const char *name) {
  fixture *f = calloc(1, sizeof *f);
  f->tmp = tu_tmpdir();
  char from[4096], to[4096];
  snprintf(from, sizeof from, "%s/%s", CS_FIXTURES_DIR, name);
  snprintf(to, sizeof to, "%s/store", f->tmp);
  tu_copy_dir(from, to);
  f->dir = strdup(to);
  cs_keyring *k;
  cs_error err;
  if (cs_keys_open(f->dir, &k, &err)) fail_msg("keys: %s", err.msg);
  for (int i = 0; i < 2; i++)
    if (cs_keys_account_id(k, fx_account_name[i], &f->acct[i]))
      fail_msg("no account %s in the fixture's keys", fx_account_name[i]);
  cs_keys_close(k);
  return f;
}

static void fixture_free(fixture *f) {
  tu_rmrf(f->tmp);
  free(f->tmp);
  free(f->dir);
  free(f);
}

static cs_store *fixture_open(fixture *f) {
  cs_options o = {.notice = on_notice, .notice_ctx = f};
  cs_store *s;
  cs_error err;
  if (cs_open(f->dir, &o, &s, &err)) fail_msg("open: %s", err.msg);
  return s;
}

static void fixture_close(cs_store *s) {
  cs_error err;
  if (cs_close(s, &err)) fail_msg("close: %s", err.msg);
}

/* Whether the engine's safe writes are built (the stub answers -ENOSYS). */
static bool safe_writes_built(cs_store *s, uint32_t account) {
  cs_page p = {0};
  uint64_t next = 0;
  int rc = cs_trash_list(s, account, 0, 1, &p, &next, NULL);
  cs_page_free(&p);
  if (rc == -ENOSYS) {
    print_message("safe writes not built in the engine: version and trash "
                  "checks skipped\n");
    return false;
  }
  assert_int_equal(rc, 0);
  return true;
}

static char *read_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) fail_msg("%s: %s", path, strerror(errno));
  char *buf = calloc(1, 1 << 16);
  size_t n = fread(buf, 1, (1 << 16) - 1, fp);
  fclose(fp);
  buf[n] = 0;
  return buf;
}

struct lines {
  char *buf;
  size_t len, cap;
  bool versions; /* the contact's own version; else 1 (engine not built) */
};

static int add_line(void *ctx, const cs_contact *c) {
  struct lines *l = ctx;
  char line[FX_LINE_MAX];
  size_t n = fx_format(c, l->versions ? c->version : 1, line, sizeof line);
  assert_true(n > 0);
  if (l->len + n + 1 > l->cap) {
    l->cap = (l->len + n + 1) * 2;
    l->buf = realloc(l->buf, l->cap);
  }
  memcpy(l->buf + l->len, line, n + 1);
  l->len += n;
  return 0;
}

/* Every live contact, as fx_format lines, in id order. malloc'd. */
static char *contacts_text(cs_store *s, bool versions) {
  struct lines l = {calloc(1, 1), 0, 1, versions};
  cs_error err;
  if (cs_iterate(s, CS_ALL_ACCOUNTS, add_line, &l, &err))
    fail_msg("iterate: %s", err.msg);
  return l.buf;
}

static void expect_contacts(cs_store *s, bool versions) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", CS_FIXTURES_DIR, FX_EXPECTED_NAME);
  char *want = read_file(path);
  char *got = contacts_text(s, versions);
  assert_string_equal(got, want);
  free(got);
  free(want);
  assert_int_equal(cs_account_count(s, 1) + cs_account_count(s, 2), FX_LIVE);
}

static uint64_t search_count(cs_store *s, uint32_t account, int field,
                             const char *term) {
  cs_query q = {.account = account,
                .field = field,
                .term = term,
                .term_len = strlen(term)};
  cs_page p;
  cs_error err;
  if (cs_search(s, &q, &p, &err)) fail_msg("search: %s", err.msg);
  uint64_t total = p.total;
  cs_page_free(&p);
  return total;
}

/* The deleted contact is gone: not readable, not found, not in the trash,
 * and its email free again. */
static void expect_delete_final(fixture *f, cs_store *s, bool built) {
  uint32_t acme = f->acct[fx_contacts[FX_DELETE].account];
  cs_contact c;
  assert_int_equal(cs_get(s, acme, FX_DELETED_ID, &c, NULL), CS_ENOTFOUND);
  assert_int_equal(
      search_count(s, acme, CS_EMAIL, fx_contacts[FX_DELETE].field[CS_EMAIL]),
      0);
  if (!built) return;
  cs_page p;
  uint64_t next;
  cs_error err;
  if (cs_trash_list(s, acme, 0, CS_PAGE_LIMIT_MAX, &p, &next, &err))
    fail_msg("trash: %s", err.msg);
  assert_int_equal(p.count, 0);
  assert_false(p.more);
  cs_page_free(&p);
  cs_write w = {.kind = CS_WRITE_RESTORE, .account = acme, .id = FX_DELETED_ID};
  cs_outcome out;
  assert_int_equal(cs_write_apply(s, &w, &out, &err), CS_ENOTFOUND);
}

/* Searches see the edit and both accounts' folded text. */
static void expect_searches(fixture *f, cs_store *s) {
  uint32_t acme = f->acct[0], globex = f->acct[1];
  assert_int_equal(search_count(s, acme, CS_LAST_NAME, "MULLER"), 1);
  assert_int_equal(search_count(s, globex, CS_LAST_NAME, "muller"), 1);
  assert_int_equal(search_count(s, acme, CS_LAST_NAME, "olafsdottir"), 1);
  assert_int_equal(search_count(s, acme, CS_LAST_NAME, "Ólafsson"), 0);
  assert_int_equal(search_count(s, acme, CS_EMAIL, "aegir@example.is"), 0);
  assert_int_equal(search_count(s, acme, CS_EMAIL, FX_EDIT_EMAIL), 1);
  assert_int_equal(search_count(s, acme, CS_LAST_NAME, "strasse"), 1);
  assert_int_equal(search_count(s, globex, CS_FIRST_NAME, "太郎"), 1);
  assert_int_equal(search_count(s, globex, CS_NOTES, "emoji"), 1);
  assert_int_equal(search_count(s, acme, CS_FIRST_NAME, "ŁUKASZ"), 1);
}

static void on_finding(void *ctx, const cs_finding *fd) {
  uint64_t *problems = ctx;
  if (!fd->problem) return;
  (*problems)++;
  print_message("verify: %s at %lld: %s\n", fd->file, (long long)fd->offset,
                fd->msg);
}

static void expect_verify_clean(const char *dir, uint64_t contacts) {
  uint64_t problems = 0;
  cs_verify_result res;
  cs_error err;
  if (cs_admin_verify(dir, NULL, on_finding, &problems, &res, &err))
    fail_msg("verify: %s", err.msg);
  assert_int_equal(problems, 0);
  assert_int_equal(res.problems, 0);
  assert_int_equal(res.contacts, contacts);
}

/* A synchronous cs_write_apply: the submit's error or the commit's. */
static int write_wait(cs_store *s, cs_write *w, cs_outcome *out,
                      cs_error *err) {
  tu_waiter wt;
  tu_waiter_init(&wt);
  tu_waiter_add(&wt);
  w->done = tu_done;
  w->ctx = &wt;
  int rc = cs_write_apply(s, w, out, err);
  if (rc || out->result == CS_RESULT_UNCHANGED) return rc;
  return tu_waiter_wait(&wt);
}

/* A format-1 snapshot lacks what queries need (index format 2) and the
 * change feed (snapshot format 3): open says so once and rebuilds the
 * indexes and the feed from the log. */
static void check_opens(const char *name, bool has_snapshot) {
  fixture *f = fixture_copy(name);
  cs_store *s = fixture_open(f);
  if (has_snapshot) {
    assert_int_equal(f->notices, 1);
    assert_non_null(strstr(f->notice, "written before the change feed"));
    assert_non_null(strstr(f->notice, "rebuilding the indexes from the log"));
  } else if (f->notices) {
    fail_msg("open noticed: %s", f->notice);
  }
  cs_stats st;
  cs_stats_get(s, &st);
  assert_int_equal(st.snapshot_seq, 0);
  assert_int_equal(st.next_id, FX_LAST_ID + 1);
  bool built = safe_writes_built(s, f->acct[0]);
  expect_contacts(s, built);
  expect_delete_final(f, s, built);
  expect_searches(f, s);
  fixture_close(s);
  expect_verify_clean(f->dir, FX_LIVE);
  /* Close left a format-2 snapshot in place of the old one (at the same
   * log position): the next open loads it without a word. */
  f->notices = 0;
  s = fixture_open(f);
  if (f->notices) fail_msg("second open noticed: %s", f->notice);
  cs_stats_get(s, &st);
  assert_int_not_equal(st.snapshot_seq, 0);
  expect_searches(f, s);
  fixture_close(s);
  fixture_free(f);
}

static void test_format_v1_opens_past_its_snapshot(void **state) {
  (void)state;
  check_opens("store-v1", true);
}

static void test_format_v1_opens_by_replay_without_snapshot(void **state) {
  (void)state;
  check_opens("store-v1-nosnap", false);
}

/* Edits ...001 (version 2) and deletes ...002 (to the trash, version 1). */
static void edit_and_delete(fixture *f, cs_store *s) {
  uint32_t acme = f->acct[0];
  cs_patch p = {.set_mask = 1u << CS_COMPANY};
  p.field[CS_COMPANY] = (cs_str){"Edited GmbH", 11};
  cs_write w = {
      .kind = CS_WRITE_UPDATE, .account = acme, .id = FX_ID(1), .patch = &p};
  cs_outcome out;
  cs_error err;
  if (write_wait(s, &w, &out, &err)) fail_msg("edit: %s", err.msg);
  assert_int_equal(out.result, CS_RESULT_UPDATED);
  assert_int_equal(out.version, 2);

  cs_write d = {.kind = CS_WRITE_DELETE, .account = acme, .id = FX_ID(2)};
  if (write_wait(s, &d, &out, &err)) fail_msg("delete: %s", err.msg);
  assert_int_equal(out.result, CS_RESULT_DELETED);
  assert_int_equal(out.version, 1);
}

static void expect_after_writes(fixture *f, cs_store *s) {
  uint32_t acme = f->acct[0];
  cs_contact c;
  cs_error err;
  if (cs_get(s, acme, FX_ID(1), &c, &err)) fail_msg("get: %s", err.msg);
  assert_int_equal(c.version, 2);
  assert_string_equal(tu_field(&c, CS_COMPANY), "Edited GmbH");
  assert_string_equal(tu_field(&c, CS_FIRST_NAME), "José");
  if (cs_get(s, acme, FX_ID(4), &c, &err)) fail_msg("get: %s", err.msg);
  assert_int_equal(c.version, 1);
  assert_int_equal(cs_get(s, acme, FX_ID(2), &c, NULL), CS_ENOTFOUND);

  cs_page p;
  uint64_t next;
  if (cs_trash_list(s, acme, 0, CS_PAGE_LIMIT_MAX, &p, &next, &err))
    fail_msg("trash: %s", err.msg);
  assert_int_equal(p.count, 1);
  assert_int_equal(p.contacts[0].id, FX_ID(2));
  assert_int_equal(p.contacts[0].version, 1);
  assert_true(p.contacts[0].deleted_ms > 0);
  assert_string_equal(tu_field(&p.contacts[0], CS_LAST_NAME), "Straße");
  cs_page_free(&p);
  assert_int_equal(search_count(s, acme, CS_LAST_NAME, "strasse"), 0);
}

static void check_writes(const char *name) {
  fixture *f = fixture_copy(name);
  cs_store *s = fixture_open(f);
  if (!safe_writes_built(s, f->acct[0])) {
    fixture_close(s);
    fixture_free(f);
    skip();
  }
  edit_and_delete(f, s);
  expect_after_writes(f, s);
  fixture_close(s);
  s = fixture_open(f);
  expect_after_writes(f, s);
  fixture_close(s);
  expect_verify_clean(f->dir, FX_LIVE - 1);
  /* And by a full replay of the log, old records and new. */
  cs_options o = {.no_snapshot_load = true, .no_snapshot_on_close = true};
  cs_error err;
  if (cs_open(f->dir, &o, &s, &err)) fail_msg("open: %s", err.msg);
  expect_after_writes(f, s);
  fixture_close(s);
  fixture_free(f);
}

static void
test_format_v1_edit_makes_version_2_and_delete_trashes(void **state) {
  (void)state;
  check_writes("store-v1");
}

static void test_format_v1_writes_after_replay_without_snapshot(void **state) {
  (void)state;
  check_writes("store-v1-nosnap");
}

/* The first segment file's format version (bytes 8..11 of its header). */
static uint32_t first_segment_format(const char *dir) {
  char cmd[4200], name[256] = "";
  snprintf(cmd, sizeof cmd, "ls '%s' | grep -m1 '\\.seg$'", dir);
  FILE *p = popen(cmd, "r");
  if (p && fgets(name, sizeof name, p)) name[strcspn(name, "\n")] = 0;
  if (p) pclose(p);
  char path[4600];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("%s: %s", path, strerror(errno));
  uint8_t h[SEG_HEADER_BYTES];
  size_t n = fread(h, 1, sizeof h, f);
  fclose(f);
  assert_int_equal(n, sizeof h);
  return (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 |
         (uint32_t)h[11] << 24;
}

/* Compaction rewrites a format-1 store in the format of today, every
 * contact as it was (version 1 included), and verify stays clean. */
static void
test_format_v1_compaction_rewrites_it_in_todays_format(void **state) {
  (void)state;
  fixture *f = fixture_copy("store-v1");
  assert_int_equal(first_segment_format(f->dir), REC_FORMAT_OLDEST);
  cs_compact_result res;
  cs_error err;
  if (cs_admin_compact(f->dir, NULL, NULL, NULL, &res, &err))
    fail_msg("compact: %s", err.msg);
  assert_int_equal(res.contacts, FX_LIVE);
  assert_int_equal(first_segment_format(f->dir), REC_FORMAT_VERSION);
  expect_verify_clean(f->dir, FX_LIVE);
  cs_store *s = fixture_open(f);
  cs_stats st;
  cs_stats_get(s, &st);
  assert_int_equal(st.next_id, FX_LAST_ID + 1);
  bool built = safe_writes_built(s, f->acct[0]);
  expect_contacts(s, built);
  expect_delete_final(f, s, built);
  expect_searches(f, s);
  fixture_close(s);
  fixture_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_v1_opens_past_its_snapshot),
      cmocka_unit_test(test_format_v1_opens_by_replay_without_snapshot),
      cmocka_unit_test(test_format_v1_edit_makes_version_2_and_delete_trashes),
      cmocka_unit_test(test_format_v1_writes_after_replay_without_snapshot),
      cmocka_unit_test(test_format_v1_compaction_rewrites_it_in_todays_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
