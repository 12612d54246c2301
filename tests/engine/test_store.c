/*
 * test_store.c: the store's operations and their errors.
 *
 * Goal: every operation of cs.h does what its contract says, and every
 * error path answers with the right code and changes nothing.
 * Method: a real store in a temporary directory per test (durability none
 * where durability is not the point, fsync where it is), driven through the
 * public API only; each test checks what a later read sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cs.h"
#include "test_util.h"

typedef struct fixture {
  char *dir;
  cs_store *s;
} fixture;

static const cs_options fast = {.durability = CS_DURABILITY_NONE};

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tmpdir();
  cs_error err;
  if (cs_open(f->dir, &fast, &f->s, &err) != 0) {
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

static void reopen(fixture *f, const cs_options *o) {
  cs_error err;
  assert_int_equal(cs_close(f->s, &err), 0);
  f->s = NULL;
  int rc = cs_open(f->dir, o ? o : &fast, &f->s, &err);
  if (rc) fail_msg("reopen: %s", err.msg);
}

static uint64_t make(cs_store *s, uint32_t acct, const char *first,
                     const char *email) {
  uint64_t id = 0;
  cs_error err;
  int rc =
      tu_create(s, acct, tu_contact(first, NULL, email, NULL, NULL, NULL, NULL),
                &id, &err);
  if (rc) fail_msg("create %s: %s", email, err.msg);
  return id;
}

static void test_store_create_then_get_returns_every_field(void **state) {
  fixture *f = *state;
  cs_contact c =
      tu_contact("  John ", "Smith", "John.Smith@Example.com",
                 "+1 (234) 567-890", "Example Inc.", "CTO", "met at the fair");
  uint64_t id;
  cs_error err;
  int64_t before = (int64_t)time(NULL) * 1000;
  assert_int_equal(tu_create(f->s, 1, c, &id, &err), 0);
  assert_true(id >= CS_ID_MIN);
  cs_contact got;
  assert_int_equal(cs_get(f->s, 1, id, &got, &err), 0);
  assert_int_equal(got.id, id);
  assert_string_equal(tu_field(&got, CS_FIRST_NAME), "John"); /* trimmed */
  assert_string_equal(tu_field(&got, CS_LAST_NAME), "Smith");
  assert_string_equal(tu_field(&got, CS_EMAIL), "John.Smith@Example.com");
  assert_string_equal(tu_field(&got, CS_PHONE), "+1 (234) 567-890");
  assert_string_equal(tu_field(&got, CS_COMPANY), "Example Inc.");
  assert_string_equal(tu_field(&got, CS_JOB_TITLE), "CTO");
  assert_string_equal(tu_field(&got, CS_NOTES), "met at the fair");
  assert_true(got.created_ms >= before - 1000);
  assert_int_equal(got.created_ms, got.updated_ms);
  char buf[CS_ID_DIGITS + 1];
  cs_id_format(id, buf);
  assert_int_equal(strlen(buf), 20);
  assert_true(buf[0] != '0');
}

static void test_store_ids_increase_and_parse(void **state) {
  fixture *f = *state;
  uint64_t a = make(f->s, 1, "A", "a@x.io");
  uint64_t b = make(f->s, 1, "B", "b@x.io");
  assert_true(b > a);
  char buf[CS_ID_DIGITS + 1];
  cs_id_format(b, buf);
  uint64_t back;
  assert_int_equal(cs_id_parse(buf, 20, &back), 0);
  assert_int_equal(back, b);
  assert_int_equal(cs_id_parse("0000000000000000001", 19, &back), CS_EINVAL);
  assert_int_equal(cs_id_parse("01234567890123456789", 20, &back), CS_EINVAL);
  assert_int_equal(cs_id_parse("1234567890123456789x", 20, &back), CS_EINVAL);
  assert_int_equal(cs_id_parse("99999999999999999999", 20, &back), CS_EINVAL);
  assert_int_equal(cs_id_parse("18446744073709551615", 20, &back), 0);
}

static void test_store_validation_rejects_bad_contacts(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t id;
  struct {
    cs_contact c;
    int field;
  } bad[] = {
      {tu_contact(NULL, "x", "a@b.co", NULL, NULL, NULL, NULL), CS_FIRST_NAME},
      {tu_contact("   ", "x", "a@b.co", NULL, NULL, NULL, NULL), CS_FIRST_NAME},
      {tu_contact("A", NULL, NULL, NULL, NULL, NULL, NULL), CS_EMAIL},
      {tu_contact("A", NULL, "no-at.example.com", NULL, NULL, NULL, NULL),
       CS_EMAIL},
      {tu_contact("A", NULL, "a@nodot", NULL, NULL, NULL, NULL), CS_EMAIL},
      {tu_contact("A", NULL, "a b@x.com", NULL, NULL, NULL, NULL), CS_EMAIL},
      {tu_contact("A", NULL, "@x.com", NULL, NULL, NULL, NULL), CS_EMAIL},
      {tu_contact("A", NULL, "a@x.com.", NULL, NULL, NULL, NULL), CS_EMAIL},
      {tu_contact("A", NULL, "a@b@x.com", NULL, NULL, NULL, NULL), CS_EMAIL},
      {tu_contact("A", NULL, "a@x.com", "12", NULL, NULL, NULL), CS_PHONE},
      {tu_contact("A", NULL, "a@x.com", "123456789012345678901", NULL, NULL,
                  NULL),
       CS_PHONE},
      {tu_contact("A", NULL, "a@x.com", "12a45", NULL, NULL, NULL), CS_PHONE},
      {tu_contact("\xff\xfe", NULL, "a@x.com", NULL, NULL, NULL, NULL),
       CS_FIRST_NAME},
      {tu_contact("A", NULL, "a@x.com", NULL, "\xc3", NULL, NULL), CS_COMPANY},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&err, 0, sizeof err);
    assert_int_equal(cs_create(f->s, 1, &bad[i].c, NULL, NULL, &id, &err),
                     CS_EINVAL);
    assert_int_equal(err.field, bad[i].field);
    assert_non_null(strstr(err.msg, cs_field_name(bad[i].field)));
  }
  /* A NUL inside a value. */
  cs_contact c = tu_contact("A", NULL, "a@x.com", NULL, NULL, NULL, NULL);
  c.field[CS_NOTES] = (cs_str){"ab\0cd", 5};
  assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, &id, &err), CS_EINVAL);
  assert_int_equal(err.field, CS_NOTES);
  assert_int_equal(cs_account_count(f->s, 1), 0); /* nothing changed */
}

/* A string of n copies of a (possibly multi-byte) character. */
static char *repeat(const char *ch, size_t n) {
  size_t k = strlen(ch);
  char *p = malloc(k * n + 1);
  for (size_t i = 0; i < n; i++)
    memcpy(p + i * k, ch, k);
  p[k * n] = 0;
  return p;
}

static void test_store_limits_at_and_past_their_edges(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t id;
  /* Names: characters, not bytes ("é" is two bytes). */
  char *name_ok = repeat("é", CS_NAME_MAX_CHARS);
  char *name_long = repeat("é", CS_NAME_MAX_CHARS + 1);
  int fields[] = {CS_FIRST_NAME, CS_LAST_NAME, CS_COMPANY, CS_JOB_TITLE};
  for (int i = 0; i < 4; i++) {
    char email[64];
    snprintf(email, sizeof email, "n%d@x.com", i);
    cs_contact c = tu_contact("A", NULL, email, NULL, NULL, NULL, NULL);
    c.field[fields[i]] = (cs_str){name_ok, strlen(name_ok)};
    assert_int_equal(tu_create(f->s, 1, c, &id, &err), 0);
    snprintf(email, sizeof email, "m%d@x.com", i);
    c = tu_contact("A", NULL, email, NULL, NULL, NULL, NULL);
    c.field[fields[i]] = (cs_str){name_long, strlen(name_long)};
    assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, &id, &err), CS_EINVAL);
    assert_int_equal(err.field, fields[i]);
  }
  free(name_ok);
  free(name_long);
  /* Email: 254 bytes accepted, 255 refused. */
  char email[300];
  memset(email, 'a', sizeof email);
  memcpy(email + CS_EMAIL_MAX_BYTES - 6, "@x.com", 7);
  assert_int_equal(strlen(email), CS_EMAIL_MAX_BYTES);
  assert_int_equal(
      tu_create(f->s, 1, tu_contact("A", NULL, email, NULL, NULL, NULL, NULL),
                &id, &err),
      0);
  memset(email, 'b', sizeof email);
  memcpy(email + CS_EMAIL_MAX_BYTES + 1 - 6, "@x.com", 7);
  cs_contact c = tu_contact("A", NULL, email, NULL, NULL, NULL, NULL);
  assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, &id, &err), CS_EINVAL);
  /* Phone digits: 3 and 20 accepted, 2 and 21 refused. */
  const char *phones_ok[] = {"123", "12345678901234567890", "+1 (2) 3",
                             "1.2-3"};
  for (int i = 0; i < 4; i++) {
    char em[32];
    snprintf(em, sizeof em, "p%d@x.com", i);
    assert_int_equal(
        tu_create(f->s, 1,
                  tu_contact("A", NULL, em, phones_ok[i], NULL, NULL, NULL),
                  &id, &err),
        0);
  }
  /* Notes: 64 KiB accepted, one byte more refused. */
  char *notes = repeat("n", CS_NOTES_MAX_BYTES);
  assert_int_equal(
      tu_create(f->s, 1,
                tu_contact("A", NULL, "notes@x.com", NULL, NULL, NULL, notes),
                &id, &err),
      0);
  cs_contact got;
  assert_int_equal(cs_get(f->s, 1, id, &got, &err), 0);
  assert_int_equal(got.field[CS_NOTES].len, CS_NOTES_MAX_BYTES);
  free(notes);
  notes = repeat("n", CS_NOTES_MAX_BYTES + 1);
  c = tu_contact("A", NULL, "notes2@x.com", NULL, NULL, NULL, notes);
  assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, &id, &err), CS_EINVAL);
  assert_int_equal(err.field, CS_NOTES);
  free(notes);
}

static void test_store_duplicate_email_is_refused_per_account(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t first = make(f->s, 1, "A", "Dup@Example.com");
  uint64_t id = 0;
  cs_contact c =
      tu_contact("B", NULL, "dup@EXAMPLE.com", NULL, NULL, NULL, NULL);
  assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, &id, &err),
                   CS_EDUPLICATE);
  assert_int_equal(err.id, first);
  assert_int_equal(err.field, CS_EMAIL);
  /* Another account may use it. */
  make(f->s, 2, "C", "dup@example.com");
  /* Case folding only: an accented address is another address. */
  make(f->s, 1, "D", "dúp@example.com");
  /* Two creates queued back to back see each other (pending overlay). */
  tu_waiter w;
  tu_waiter_init(&w);
  tu_waiter_add(&w);
  c = tu_contact("E", NULL, "pending@x.com", NULL, NULL, NULL, NULL);
  assert_int_equal(cs_create(f->s, 1, &c, tu_done, &w, &id, &err), 0);
  c = tu_contact("F", NULL, "PENDING@x.com", NULL, NULL, NULL, NULL);
  assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, NULL, &err),
                   CS_EDUPLICATE);
  assert_int_equal(err.id, id);
  assert_int_equal(tu_waiter_wait(&w), 0);
  /* After a delete the email is free again. */
  assert_int_equal(tu_delete(f->s, 1, first, &err), 0);
  make(f->s, 1, "G", "DUP@example.com");
}

static void test_store_update_changes_fields_atomically(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t id = 0, other = make(f->s, 1, "Other", "other@x.com");
  assert_int_equal(tu_create(f->s, 1,
                             tu_contact("Ann", "Lee", "ann@x.com", "555-1234",
                                        "Acme", "CEO", "n"),
                             &id, &err),
                   0);
  cs_patch p = {0};
  p.set_mask = 1u << CS_COMPANY | 1u << CS_PHONE;
  p.field[CS_COMPANY] = (cs_str){" Globex ", 8};
  p.field[CS_PHONE] = (cs_str){"1234567890", 10};
  p.clear_mask = 1u << CS_NOTES;
  assert_int_equal(tu_update(f->s, 1, id, p, &err), 0);
  cs_contact got;
  assert_int_equal(cs_get(f->s, 1, id, &got, &err), 0);
  assert_string_equal(tu_field(&got, CS_COMPANY), "Globex");
  assert_string_equal(tu_field(&got, CS_PHONE), "1234567890");
  assert_null(got.field[CS_NOTES].ptr);
  assert_string_equal(tu_field(&got, CS_JOB_TITLE), "CEO");
  assert_true(got.updated_ms >= got.created_ms);
  /* One bad value: nothing of the patch applies. */
  memset(&p, 0, sizeof p);
  p.set_mask = 1u << CS_COMPANY | 1u << CS_EMAIL;
  p.field[CS_COMPANY] = (cs_str){"Initech", 7};
  p.field[CS_EMAIL] = (cs_str){"broken", 6};
  assert_int_equal(cs_update(f->s, 1, id, &p, NULL, NULL, &err), CS_EINVAL);
  assert_int_equal(err.field, CS_EMAIL);
  /* A duplicate email: nothing applies, 409 with the holder. */
  p.field[CS_EMAIL] = (cs_str){"OTHER@x.com", 11};
  assert_int_equal(cs_update(f->s, 1, id, &p, NULL, NULL, &err), CS_EDUPLICATE);
  assert_int_equal(err.id, other);
  /* Removing a required field, an empty patch. */
  memset(&p, 0, sizeof p);
  p.clear_mask = 1u << CS_FIRST_NAME;
  assert_int_equal(cs_update(f->s, 1, id, &p, NULL, NULL, &err), CS_EINVAL);
  assert_int_equal(err.field, CS_FIRST_NAME);
  p.clear_mask = 1u << CS_EMAIL;
  assert_int_equal(cs_update(f->s, 1, id, &p, NULL, NULL, &err), CS_EINVAL);
  memset(&p, 0, sizeof p);
  assert_int_equal(cs_update(f->s, 1, id, &p, NULL, NULL, &err), CS_EINVAL);
  assert_int_equal(cs_get(f->s, 1, id, &got, &err), 0);
  assert_string_equal(tu_field(&got, CS_COMPANY), "Globex");
  assert_string_equal(tu_field(&got, CS_EMAIL), "ann@x.com");
  /* Its own email, in another case, is not a duplicate of itself. */
  memset(&p, 0, sizeof p);
  p.set_mask = 1u << CS_EMAIL;
  p.field[CS_EMAIL] = (cs_str){"ANN@x.com", 9};
  assert_int_equal(tu_update(f->s, 1, id, p, &err), 0);
  /* Searches follow the edit at once. */
  cs_query q = {
      .account = 1, .field = CS_COMPANY, .term = "globex", .term_len = 6};
  cs_page page;
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.total, 1);
  cs_page_free(&page);
  q.term = "acme";
  q.term_len = 4;
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.total, 0);
  cs_page_free(&page);
}

static void test_store_delete_then_everything_answers_not_found(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t id = make(f->s, 1, "Gone", "gone@x.com");
  assert_int_equal(tu_delete(f->s, 1, id, &err), 0);
  cs_contact got;
  assert_int_equal(cs_get(f->s, 1, id, &got, &err), CS_ENOTFOUND);
  assert_int_equal(cs_delete(f->s, 1, id, NULL, NULL, &err), CS_ENOTFOUND);
  cs_patch p = {.set_mask = 1u << CS_COMPANY};
  p.field[CS_COMPANY] = (cs_str){"X", 1};
  assert_int_equal(cs_update(f->s, 1, id, &p, NULL, NULL, &err), CS_ENOTFOUND);
  cs_query q = {
      .account = 1, .field = CS_EMAIL, .term = "gone@x.com", .term_len = 10};
  cs_page page;
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.total, 0);
  cs_page_free(&page);
  assert_int_equal(cs_delete(f->s, 1, CS_ID_MIN + 999999, NULL, NULL, &err),
                   CS_ENOTFOUND);
}

static void test_store_other_account_sees_nothing(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t id = make(f->s, 1, "Mine", "mine@x.com");
  cs_contact got;
  assert_int_equal(cs_get(f->s, 2, id, &got, &err), CS_ENOTFOUND);
  assert_int_equal(cs_delete(f->s, 2, id, NULL, NULL, &err), CS_ENOTFOUND);
  cs_patch p = {.set_mask = 1u << CS_COMPANY};
  p.field[CS_COMPANY] = (cs_str){"X", 1};
  assert_int_equal(cs_update(f->s, 2, id, &p, NULL, NULL, &err), CS_ENOTFOUND);
  for (int field = 0; field <= CS_SEARCH_BY_ID; field++) {
    char idbuf[21];
    cs_id_format(id, idbuf);
    const char *term = field == CS_SEARCH_BY_ID ? idbuf
                       : field == CS_EMAIL      ? "mine@x.com"
                                                : "mine";
    cs_query q = {.account = 2,
                  .field = field,
                  .match = CS_MATCH_PREFIX,
                  .term = term,
                  .term_len = strlen(term)};
    cs_page page;
    assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
    assert_int_equal(page.total, 0);
    cs_page_free(&page);
  }
  assert_int_equal(cs_get(f->s, 1, id, &got, &err), 0); /* still there */
}

static void test_store_search_by_id_exact_and_prefix(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t ids[12];
  for (int i = 0; i < 12; i++) {
    char em[32];
    snprintf(em, sizeof em, "id%d@x.com", i);
    ids[i] = make(f->s, 1, "Id", em);
  }
  char buf[21];
  cs_id_format(ids[3], buf);
  cs_query q = {
      .account = 1, .field = CS_SEARCH_BY_ID, .term = buf, .term_len = 20};
  cs_page page;
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.count, 1);
  assert_int_equal(page.contacts[0].id, ids[3]);
  cs_page_free(&page);
  /* Prefix: all 20 digits but the last matches ids sharing the rest. */
  q.match = CS_MATCH_PREFIX;
  q.term_len = 19;
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  uint64_t expect = 0;
  for (int i = 0; i < 12; i++)
    expect += ids[i] / 10 == ids[3] / 10;
  assert_int_equal(page.total, expect);
  cs_page_free(&page);
  q.term = "1";
  q.term_len = 1;
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.total, 12);
  cs_page_free(&page);
}

static void test_store_search_folds_and_pages(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t id;
  assert_int_equal(
      tu_create(f->s, 1,
                tu_contact("José", "Müller", "jm@x.com", "+1 (234) 567-890",
                           "Straße AG", NULL, "Likes green tea"),
                &id, &err),
      0);
  struct {
    int field;
    cs_match match;
    const char *term;
  } hits[] = {
      {CS_FIRST_NAME, CS_MATCH_EXACT, "  JOSE  "},
      {CS_LAST_NAME, CS_MATCH_EXACT, "MULLER"},
      {CS_COMPANY, CS_MATCH_EXACT, "STRASSE ag"},
      {CS_PHONE, CS_MATCH_EXACT, "1234567890"},
      {CS_PHONE, CS_MATCH_PREFIX, "+1 234"},
      {CS_EMAIL, CS_MATCH_EXACT, "JM@X.COM"},
      {CS_EMAIL, CS_MATCH_WORDS, "x.com"},
      {CS_NOTES, CS_MATCH_DEFAULT, "tea GREEN"},
      {CS_LAST_NAME, CS_MATCH_PREFIX, "mü"},
  };
  for (size_t i = 0; i < sizeof hits / sizeof hits[0]; i++) {
    cs_query q = {.account = 1,
                  .field = hits[i].field,
                  .match = hits[i].match,
                  .term = hits[i].term,
                  .term_len = strlen(hits[i].term)};
    cs_page page;
    assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
    if (page.total != 1)
      fail_msg("search %s: %s", cs_field_name(hits[i].field), hits[i].term);
    assert_int_equal(page.contacts[0].id, id);
    cs_page_free(&page);
  }
  /* Paging: 25 contacts of one company, pages of 10, by cursor. */
  for (int i = 0; i < 25; i++) {
    char em[32];
    snprintf(em, sizeof em, "page%d@x.com", i);
    assert_int_equal(
        tu_create(f->s, 1, tu_contact("P", NULL, em, NULL, "Pager", NULL, NULL),
                  &id, &err),
        0);
  }
  cs_query q = {.account = 1,
                .field = CS_COMPANY,
                .term = "pager",
                .term_len = 5,
                .limit = 10};
  uint64_t last = 0;
  int seen = 0, pages = 0;
  for (;;) {
    cs_page page;
    q.after_id = last;
    assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
    assert_int_equal(page.total, 25);
    for (uint32_t i = 0; i < page.count; i++) {
      assert_true(page.contacts[i].id > last);
      last = page.contacts[i].id;
    }
    seen += (int)page.count;
    pages++;
    bool more = page.more;
    cs_page_free(&page);
    if (!more) break;
  }
  assert_int_equal(seen, 25);
  assert_int_equal(pages, 3);
  /* Bad limits and fields. */
  q.limit = CS_PAGE_LIMIT_MAX + 1;
  cs_page page;
  assert_int_equal(cs_search(f->s, &q, &page, &err), CS_EINVAL);
  q.limit = CS_PAGE_LIMIT_MAX;
  q.field = 99;
  assert_int_equal(cs_search(f->s, &q, &page, &err), CS_EINVAL);
}

static void test_store_lock_refuses_a_second_opener(void **state) {
  fixture *f = *state;
  cs_store *two = NULL;
  cs_error err;
  assert_int_equal(cs_open(f->dir, &fast, &two, &err), CS_ELOCKED);
  assert_null(two);
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  assert_non_null(strstr(err.msg, pid));
  assert_non_null(strstr(err.msg, f->dir));
}

static void test_store_files_are_owner_only(void **state) {
  fixture *f = *state;
  make(f->s, 1, "A", "a@x.com");
  reopen(f, NULL);
  char path[1024];
  const char *names[] = {"00000001.seg", "MANIFEST", "LOCK"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", f->dir, names[i]);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
  }
}

static void test_store_ids_never_reused_after_delete_and_reopen(void **state) {
  fixture *f = *state;
  cs_error err;
  make(f->s, 1, "A", "a@x.com");
  uint64_t b = make(f->s, 1, "B", "b@x.com");
  assert_int_equal(tu_delete(f->s, 1, b, &err), 0);
  reopen(f, NULL);
  uint64_t c = make(f->s, 1, "C", "c@x.com");
  assert_true(c > b);
  cs_options replay = fast;
  replay.no_snapshot_load = true;
  assert_int_equal(tu_delete(f->s, 1, c, &err), 0);
  reopen(f, &replay);
  assert_true(make(f->s, 1, "D", "d@x.com") > c);
}

static void test_store_reopen_gives_the_same_state(void **state) {
  fixture *f = *state;
  cs_error err;
  for (int i = 0; i < 200; i++) {
    char em[32];
    snprintf(em, sizeof em, "r%d@x.com", i);
    uint64_t id;
    assert_int_equal(tu_create(f->s, 1 + i % 3,
                               tu_contact("R", "S", em, NULL, "Co", NULL, "w"),
                               &id, &err),
                     0);
    if (i % 7 == 0) assert_int_equal(tu_delete(f->s, 1 + i % 3, id, &err), 0);
  }
  char *before = tu_dump(f->s);
  reopen(f, NULL); /* from the snapshot written at close */
  char *snap = tu_dump(f->s);
  assert_string_equal(before, snap);
  cs_options replay = fast;
  replay.no_snapshot_load = true;
  reopen(f, &replay); /* by replaying everything */
  char *full = tu_dump(f->s);
  assert_string_equal(before, full);
  assert_int_equal(cs_account_count(f->s, 1) + cs_account_count(f->s, 2) +
                       cs_account_count(f->s, 3),
                   200 - 29);
  free(before);
  free(snap);
  free(full);
}

struct writer_arg {
  cs_store *s;
  int thread;
  int count;
  uint64_t *ids;
};

static void *writer(void *p) {
  struct writer_arg *a = p;
  tu_waiter w;
  tu_waiter_init(&w);
  for (int i = 0; i < a->count; i++) {
    char em[64];
    snprintf(em, sizeof em, "t%d-%d@x.com", a->thread, i);
    cs_contact c = tu_contact("T", NULL, em, NULL, "Threads", NULL, NULL);
    tu_waiter_add(&w);
    cs_error err;
    if (cs_create(a->s, 1, &c, tu_done, &w, &a->ids[i], &err) != 0) abort();
    if (i % 8 == 7 && tu_waiter_wait(&w) != 0) abort();
  }
  if (tu_waiter_wait(&w) != 0) abort();
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_store_many_threads_write_at_once(void **state) {
  fixture *f = *state;
  cs_options durable = {.durability = CS_DURABILITY_FSYNC};
  reopen(f, &durable);
  enum { THREADS = 8, EACH = 150 };
  pthread_t t[THREADS];
  struct writer_arg a[THREADS];
  uint64_t *ids = calloc(THREADS * EACH, sizeof *ids);
  for (int i = 0; i < THREADS; i++) {
    a[i] = (struct writer_arg){f->s, i, EACH, ids + i * EACH};
    pthread_create(&t[i], NULL, writer, &a[i]);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  qsort(ids, THREADS * EACH, sizeof *ids, cmp_u64);
  for (int i = 1; i < THREADS * EACH; i++)
    assert_true(ids[i] > ids[i - 1]);
  assert_int_equal(cs_account_count(f->s, 1), THREADS * EACH);
  cs_stats st;
  cs_stats_get(f->s, &st);
  assert_int_equal(st.commits, THREADS * EACH);
  /* Group commit: fewer syncs than writes. */
  assert_true(st.fsyncs < (uint64_t)THREADS * EACH);
  reopen(f, &durable);
  for (int i = 0; i < THREADS * EACH; i++) {
    cs_contact got;
    assert_int_equal(cs_get(f->s, 1, ids[i], &got, NULL), 0);
  }
  free(ids);
}

struct pager_arg {
  cs_store *s;
  volatile int stop;
};

static void *churn(void *p) {
  struct pager_arg *a = p;
  for (int i = 0; !a->stop && i < 4000; i++) {
    char em[64];
    snprintf(em, sizeof em, "churn%d@x.com", i);
    uint64_t id;
    cs_error err;
    if (tu_create(a->s, 1, tu_contact("C", NULL, em, NULL, "Walk", NULL, NULL),
                  &id, &err) != 0)
      abort();
    if (i % 2 && tu_delete(a->s, 1, id, &err) != 0) abort();
  }
  return NULL;
}

static void test_store_cursor_walk_while_others_write(void **state) {
  fixture *f = *state;
  cs_error err;
  enum { STABLE = 300 };
  uint64_t stable[STABLE];
  for (int i = 0; i < STABLE; i++) {
    char em[32];
    snprintf(em, sizeof em, "st%d@x.com", i);
    assert_int_equal(
        tu_create(f->s, 1, tu_contact("S", NULL, em, NULL, "Walk", NULL, NULL),
                  &stable[i], &err),
        0);
  }
  struct pager_arg a = {f->s, 0};
  pthread_t t;
  pthread_create(&t, NULL, churn, &a);
  cs_query q = {.account = 1,
                .field = CS_COMPANY,
                .term = "walk",
                .term_len = 4,
                .limit = 7};
  uint64_t last = 0;
  int found = 0;
  for (;;) {
    cs_page page;
    q.after_id = last;
    assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
    for (uint32_t i = 0; i < page.count; i++) {
      assert_true(page.contacts[i].id > last); /* never twice */
      last = page.contacts[i].id;
      for (int k = 0; k < STABLE; k++)
        found += stable[k] == last;
    }
    bool more = page.more;
    cs_page_free(&page);
    if (!more) break;
  }
  a.stop = 1;
  pthread_join(t, NULL);
  assert_int_equal(found, STABLE); /* none that matched throughout skipped */
}

static void test_store_stats_count_live_and_garbage(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t id = make(f->s, 1, "A", "a@x.com");
  make(f->s, 1, "B", "b@x.com");
  cs_stats st;
  cs_stats_get(f->s, &st);
  assert_int_equal(st.contacts, 2);
  assert_int_equal(st.garbage_bytes, 0);
  assert_true(st.live_bytes > 0);
  assert_true(st.next_id > id);
  assert_int_equal(tu_delete(f->s, 1, id, &err), 0);
  cs_stats_get(f->s, &st);
  assert_int_equal(st.contacts, 1);
  assert_true(st.garbage_bytes > 0);
  assert_int_equal(cs_health(f->s, &err), 0);
}

static void test_store_opened_without_indexes_reads_only(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t id = make(f->s, 1, "Reader", "reader@x.com");
  char *before = tu_dump(f->s);
  cs_options ro = fast;
  ro.no_indexes = true;
  reopen(f, &ro);
  char *got = tu_dump(f->s);
  assert_string_equal(before, got);
  cs_contact c;
  assert_int_equal(cs_get(f->s, 1, id, &c, &err), 0);
  cs_query q = {
      .account = 1, .field = CS_FIRST_NAME, .term = "reader", .term_len = 6};
  cs_page page;
  assert_int_equal(cs_search(f->s, &q, &page, &err), CS_EINVAL);
  c = tu_contact("New", NULL, "new@x.com", NULL, NULL, NULL, NULL);
  assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, NULL, &err), CS_EINVAL);
  assert_int_equal(cs_delete(f->s, 1, id, NULL, NULL, &err), CS_EINVAL);
  /* Its close leaves the snapshot alone: searches work after a normal open. */
  reopen(f, NULL);
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.total, 1);
  cs_page_free(&page);
  free(before);
  free(got);
}

static void test_store_bulk_load_keeps_emails_unique(void **state) {
  fixture *f = *state;
  cs_error err;
  uint64_t before = make(f->s, 1, "Old", "old@x.com");
  assert_int_equal(cs_bulk_begin(f->s, &err), 0);
  /* Accent variants are different addresses; case variants are not, also
   * against a contact created earlier in the same load, and against one
   * made before it. */
  const char *emails[] = {"josé@x.com", "jose@x.com", "jöse@x.com"};
  uint64_t ids[3];
  for (int i = 0; i < 3; i++) {
    cs_contact c = tu_contact("J", NULL, emails[i], NULL, "Bulk", NULL, NULL);
    assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, &ids[i], &err), 0);
  }
  assert_int_equal(cs_flush(f->s, &err), 0); /* applied, in bulk mode */
  const char *dups[] = {"JOSÉ@x.com", "JOSE@X.COM", "JÖSE@x.com", "OLD@x.com"};
  uint64_t owners[] = {ids[0], ids[1], ids[2], before};
  for (int i = 0; i < 4; i++) {
    cs_contact c = tu_contact("J", NULL, dups[i], NULL, NULL, NULL, NULL);
    assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, NULL, &err),
                     CS_EDUPLICATE);
    assert_int_equal(err.id, owners[i]);
  }
  for (int i = 0; i < 200; i++) {
    char em[32];
    snprintf(em, sizeof em, "b%d@x.com", i);
    cs_contact c = tu_contact("B", NULL, em, NULL, "Bulk", NULL, NULL);
    assert_int_equal(cs_create(f->s, 1, &c, NULL, NULL, NULL, &err), 0);
  }
  /* Only creates while it lasts. */
  cs_query q = {
      .account = 1, .field = CS_COMPANY, .term = "bulk", .term_len = 4};
  cs_page page;
  assert_int_equal(cs_search(f->s, &q, &page, &err), CS_EINVAL);
  assert_int_equal(cs_delete(f->s, 1, before, NULL, NULL, &err), CS_EINVAL);
  cs_contact got;
  assert_int_equal(cs_get(f->s, 1, ids[1], &got, &err), 0);
  assert_int_equal(cs_bulk_end(f->s, &err), 0);
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.total, 203);
  cs_page_free(&page);
  q.field = CS_EMAIL;
  q.term = "JOSE@x.com";
  q.term_len = 10;
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.total, 3); /* all three fold alike for search */
  cs_page_free(&page);
  /* The same store from its snapshot and from the log. */
  char *expect = tu_dump(f->s);
  reopen(f, NULL);
  char *snap = tu_dump(f->s);
  assert_string_equal(expect, snap);
  cs_options replay = fast;
  replay.no_snapshot_load = true;
  reopen(f, &replay);
  char *full = tu_dump(f->s);
  assert_string_equal(expect, full);
  /* A bulk load left open is finished by close. */
  assert_int_equal(cs_bulk_begin(f->s, &err), 0);
  make(f->s, 1, "Late", "late@x.com");
  reopen(f, NULL);
  q.field = CS_EMAIL;
  q.term = "late@x.com";
  q.term_len = 10;
  assert_int_equal(cs_search(f->s, &q, &page, &err), 0);
  assert_int_equal(page.total, 1);
  cs_page_free(&page);
  free(expect);
  free(snap);
  free(full);
}

static void test_store_field_check_trims_and_names_the_field(void **state) {
  cs_error err;
  cs_str v = {"  Ann \t", 7};
  assert_int_equal(cs_field_check(CS_FIRST_NAME, &v, &err), 0);
  assert_int_equal(v.len, 3);
  assert_memory_equal(v.ptr, "Ann", 3);
  v = (cs_str){"12", 2};
  assert_int_equal(cs_field_check(CS_PHONE, &v, &err), CS_EINVAL);
  assert_int_equal(err.field, CS_PHONE);
  assert_non_null(strstr(err.msg, "phone:"));
  v = (cs_str){"a\xc0\x80", 3}; /* an overlong NUL */
  assert_int_equal(cs_field_check(CS_NOTES, &v, &err), CS_EINVAL);
  v = (cs_str){"x", 1};
  assert_int_equal(cs_field_check(CS_FIELD_COUNT, &v, &err), CS_EINVAL);
  /* The text helpers agree with it. */
  assert_int_equal(cs_utf8_chars("é\xe2\x80\x83", 5), 2);
  assert_int_equal(cs_utf8_chars("a\0b", 3), -1);
  assert_int_equal(cs_space_len("\xe2\x80\x83x", 4), 3); /* EM SPACE */
  assert_int_equal(cs_space_len("x ", 2), 0);
  cs_str t = cs_trim((cs_str){"\xe3\x80\x80 z \xc2\x85", 8});
  assert_int_equal(t.len, 1);
  assert_int_equal(t.ptr[0], 'z');
}

static void test_store_time_format_matches_gmtime(void **state) {
  unsigned r = 12345;
  for (int i = 0; i < 200000; i++) {
    r = r * 1103515245u + 12345u;
    /* 1970 to about 2230, with every millisecond and day edge drawn. */
    int64_t ms =
        (int64_t)(((uint64_t)r << 13) ^ (uint64_t)i * 7919) % 8200000000000ll;
    if (i % 3 == 0) ms = ms / 86400000 * 86400000 + (i % 2 ? 0 : 86399999);
    char got[32], want[64];
    cs_time_format(ms, got);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    if (strcmp(got, want) != 0)
      fail_msg("%lld: %s, not %s", (long long)ms, got, want);
  }
  char t[32];
  cs_time_format(951782400000, t); /* a leap day of a century year */
  assert_string_equal(t, "2000-02-29T00:00:00.000Z");
  cs_time_format(-1, t);
  assert_string_equal(t, "1969-12-31T23:59:59.999Z");
}

/* cs_time_parse is cs_time_format's inverse on every value drawn, and
 * takes the other forms RFC 3339 allows: no fraction, 1 to 9 fraction
 * digits (cut to ms), z, numeric offsets. */
static void test_store_time_parse_inverts_format(void **state) {
  unsigned r = 777;
  for (int i = 0; i < 100000; i++) {
    r = r * 1103515245u + 12345u;
    int64_t ms = (int64_t)(((uint64_t)r << 17) ^ (uint64_t)i * 104729) %
                 253402300800000ll; /* up to 9999-12-31 */
    char t[32];
    cs_time_format(ms, t);
    int64_t got = -1;
    assert_int_equal(cs_time_parse(t, strlen(t), &got), 0);
    if (got != ms)
      fail_msg("%s: %lld, not %lld", t, (long long)got, (long long)ms);
  }
  static const struct {
    const char *text;
    int64_t ms;
  } ok[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:00.000Z", 0},
      {"2026-11-26T08:58:00.123Z", 1795683480123},
      {"2026-11-26t08:58:00.123z", 1795683480123},
      {"2026-11-26T08:58:00Z", 1795683480000},
      {"2026-11-26T08:58:00.1Z", 1795683480100},
      {"2026-11-26T08:58:00.12Z", 1795683480120},
      {"2026-11-26T08:58:00.123456789Z", 1795683480123},
      {"2026-11-26T09:58:00.123+01:00", 1795683480123},
      {"2026-11-26T03:28:00.123-05:30", 1795683480123},
      {"2026-11-26T08:58:00.123-00:00", 1795683480123},
      {"2000-02-29T00:00:00Z", 951782400000},
      {"1970-01-01T01:00:00+01:00", 0},
      {"9999-12-31T23:59:59.999Z", 253402300799999},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t got = -1;
    if (cs_time_parse(ok[i].text, strlen(ok[i].text), &got) != 0)
      fail_msg("%s: refused", ok[i].text);
    if (got != ok[i].ms)
      fail_msg("%s: %lld, not %lld", ok[i].text, (long long)got,
               (long long)ok[i].ms);
  }
  static const char *const bad[] = {
      "",
      "2026-11-26",
      "2026-11-26T08:58:00",             /* no offset */
      "2026-11-26T08:58:00.Z",           /* a dot without digits */
      "2026-11-26T08:58:00.1234567890Z", /* 10 fraction digits */
      "2026-11-26 08:58:00Z",            /* a space for T */
      "2026-11-26T08:58Z",               /* no seconds */
      "2026-13-01T00:00:00Z",
      "2026-00-01T00:00:00Z",
      "2026-02-29T00:00:00Z", /* not a leap year */
      "1900-02-29T00:00:00Z",
      "2026-04-31T00:00:00Z",
      "2026-11-00T00:00:00Z",
      "2026-11-26T24:00:00Z",
      "2026-11-26T08:60:00Z",
      "2026-11-26T08:58:60Z", /* no leap seconds */
      "2026-11-26T08:58:00+24:00",
      "2026-11-26T08:58:00+01:60",
      "2026-11-26T08:58:00+0100",
      "2026-11-26T08:58:00+01",
      "2026-11-26T08:58:00ZZ",
      "2026-11-26T08:58:00Z ",
      " 2026-11-26T08:58:00Z",
      "1969-12-31T23:59:59.999Z",  /* before 1970 */
      "1970-01-01T00:30:00+01:00", /* before the epoch by its offset */
      "10000-01-01T00:00:00Z",
      "+2026-11-26T08:58:00Z",
      "2026-1a-26T08:58:00Z",
      "2026-11-26T08:58:00.12a4Z",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t got = 42;
    if (cs_time_parse(bad[i], strlen(bad[i]), &got) != CS_EINVAL)
      fail_msg("%s: taken", bad[i]);
    assert_int_equal(got, 42); /* nothing written */
  }
  /* The length is the caller's: the text need not be NUL-terminated. */
  int64_t got = 0;
  assert_int_equal(cs_time_parse("1970-01-01T00:00:01Zjunk", 20, &got), 0);
  assert_int_equal(got, 1000);
}

static void test_store_error_words_are_stable(void **state) {
  assert_string_equal(cs_strcode(CS_ENOTFOUND), "not_found");
  assert_string_equal(cs_strcode(CS_EDUPLICATE), "duplicate_email");
  assert_string_equal(cs_strcode(CS_EINVAL), "invalid_field");
  assert_string_equal(cs_strcode(-5), "internal");
  assert_int_equal(cs_field_from_name("job_title", 9), CS_JOB_TITLE);
  assert_int_equal(cs_field_from_name("id", 2), -1);
  assert_string_equal(cs_field_name(CS_SEARCH_BY_ID), "id");
  char t[32];
  cs_time_format(1700000000123, t);
  assert_string_equal(t, "2023-11-14T22:13:20.123Z");
}

/* The directories fsynced through the seam, in order, for the test below. */
static char synced_dirs[8][512];
static int synced_count;
static int (*posix_fsync_dir)(void *ctx, const char *dir);

static int record_fsync_dir(void *ctx, const char *dir) {
  if (synced_count < 8)
    snprintf(synced_dirs[synced_count++], sizeof synced_dirs[0], "%s", dir);
  return posix_fsync_dir(ctx, dir);
}

static int fail_fsync_dir(void *ctx, const char *dir) {
  (void)ctx;
  (void)dir;
  return -EIO;
}

/* A data directory the store makes is an entry of its parent: the parent is
 * synced before anything is written into it, or a power cut could take the
 * whole store away; a failed sync of it fails the open. */
static void test_store_new_directory_is_synced_in_its_parent(void **state) {
  (void)state;
  char *parent = tu_tmpdir();
  char dir[600];
  snprintf(dir, sizeof dir, "%s/new-store", parent);
  cs_io io = *cs_io_posix();
  posix_fsync_dir = io.fsync_dir;
  io.fsync_dir = record_fsync_dir;
  cs_options o = {.io = &io};
  cs_store *s = NULL;
  cs_error err = {0};
  synced_count = 0;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  assert_true(synced_count >= 1);
  assert_string_equal(synced_dirs[0], parent);
  assert_int_equal(cs_close(s, &err), 0);
  /* an existing directory is not made again, so its parent is not synced */
  synced_count = 0;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  for (int i = 0; i < synced_count; i++)
    assert_string_not_equal(synced_dirs[i], parent);
  assert_int_equal(cs_close(s, &err), 0);
  snprintf(dir, sizeof dir, "%s/other-store", parent);
  io.fsync_dir = fail_fsync_dir;
  assert_int_equal(cs_open(dir, &o, &s, &err), -EIO);
  assert_null(s);
  assert_non_null(strstr(err.msg, "cannot sync"));
  tu_rmrf(parent);
  free(parent);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_new_directory_is_synced_in_its_parent),
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_store_create_then_get_returns_every_field),
      T(test_store_ids_increase_and_parse),
      T(test_store_validation_rejects_bad_contacts),
      T(test_store_limits_at_and_past_their_edges),
      T(test_store_duplicate_email_is_refused_per_account),
      T(test_store_update_changes_fields_atomically),
      T(test_store_delete_then_everything_answers_not_found),
      T(test_store_other_account_sees_nothing),
      T(test_store_search_by_id_exact_and_prefix),
      T(test_store_search_folds_and_pages),
      T(test_store_lock_refuses_a_second_opener),
      T(test_store_files_are_owner_only),
      T(test_store_ids_never_reused_after_delete_and_reopen),
      T(test_store_reopen_gives_the_same_state),
      T(test_store_many_threads_write_at_once),
      T(test_store_cursor_walk_while_others_write),
      T(test_store_stats_count_live_and_garbage),
      T(test_store_opened_without_indexes_reads_only),
      T(test_store_bulk_load_keeps_emails_unique),
      T(test_store_field_check_trims_and_names_the_field),
      T(test_store_time_format_matches_gmtime),
      T(test_store_time_parse_inverts_format),
      T(test_store_error_words_are_stable),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
