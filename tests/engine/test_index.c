/*
 * test_index.c: unit tests of the inverted indexes (engine/index.c and its
 * ix_*.c family), checked after every step by ix_check.
 *
 * Goal: every search the index answers (exact, prefix, words; every field;
 * every account; any page) equals what a brute-force scan of the live
 * contacts answers, through inserts, erases, bulk loads, posting
 * representation changes and snapshot round trips; and a damaged snapshot
 * image is refused with CS_ECORRUPT, never a crash.
 *
 * Method: small hand-checked cases for each behaviour; an oracle test that
 * applies thousands of seeded random inserts and erases over several
 * accounts, with a small alphabet so values collide, and compares every
 * search on every field in every mode with a scan of a plain table folded
 * with fold_key / fold_words; save -> load compared search by search;
 * every truncation and many random byte flips of a saved image fed to
 * ix_load (run under ASan in CI). ix_check runs after every step of the
 * oracle and after every load, so a broken invariant shows at the step
 * that broke it; and an index damaged on purpose through its internals
 * (ix_int.h) proves ix_check sees each kind of damage. The seed is printed;
 * set IX_TEST_SEED to replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "cs.h"
#include "record.h"
#include "fold.h"
#include "index.h"
#include "ix_int.h"

#define NF CS_FIELD_COUNT

/* ------------------------------------------------------------ helpers */

static void vals(cs_str out[NF], const char *const v[NF]) {
  for (int f = 0; f < NF; f++)
    out[f] = (cs_str){v[f], v[f] ? strlen(v[f]) : 0};
}

static void put(ix_index *ix, uint32_t account, uint32_t slot,
                const char *const v[NF]) {
  cs_str s[NF];
  vals(s, v);
  assert_int_equal(ix_insert(ix, account, slot, s, 0, 0, 0), 0);
}

static void del(ix_index *ix, uint32_t account, uint32_t slot,
                const char *const v[NF]) {
  cs_str s[NF];
  vals(s, v);
  assert_int_equal(ix_erase(ix, account, slot, s, 0), 0);
}

typedef struct answer {
  uint32_t slots[2048];
  uint32_t count;
  uint64_t total;
  bool more;
} answer;

static void find(const ix_index *ix, uint32_t account, int field,
                 cs_match match, const char *term, uint32_t min, uint32_t limit,
                 answer *a) {
  assert_true(limit <= 2048);
  int rc = ix_search(ix, account, field, match, term, strlen(term), min, limit,
                     a->slots, &a->count, &a->total, &a->more);
  assert_int_equal(rc, 0);
}

/* The whole answer as "total:s1,s2,...". */
static const char *q(const ix_index *ix, uint32_t account, int field,
                     cs_match match, const char *term) {
  static char out[4096];
  static answer a;
  find(ix, account, field, match, term, 0, 1000, &a);
  int n = snprintf(out, sizeof out, "%llu:", (unsigned long long)a.total);
  for (uint32_t i = 0; i < a.count; i++)
    n += snprintf(out + n, sizeof out - (size_t)n, "%s%u", i ? "," : "",
                  a.slots[i]);
  return out;
}

static uint64_t test_seed(void) {
  const char *e = getenv("IX_TEST_SEED");
  uint64_t s = e ? strtoull(e, NULL, 0) : 0x5eed1234abcdull;
  printf("seed %llu (IX_TEST_SEED to replay)\n", (unsigned long long)s);
  return s ? s : 1;
}

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void save_image(const ix_index *ix, msgpack_sbuffer *sb) {
  msgpack_sbuffer_init(sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  assert_int_equal(ix_save(ix, &pk), 0);
}

/* Fails the test, with ix_check's message, unless the index is sound. */
static void check_sound(const ix_index *ix, uint32_t slot_limit) {
  char err[256] = "";
  int rc = ix_check(ix, slot_limit, err, sizeof err);
  if (rc) fail_msg("ix_check: %d %s", rc, err);
}

/* Loads bytes into a new index: the ix_load code, or 1 when the bytes are
 * not one whole msgpack object. *out gets the index on success. */
static int load_bytes(const char *buf, size_t len, uint32_t slot_limit,
                      ix_index **out) {
  /* As snap_load does: no unpacking of an image whose counts promise
   * more objects than its bytes can hold (msgpack would allocate them). */
  if (!rec_msgpack_fits((const uint8_t *)buf, len)) return 1;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  int ur = msgpack_unpack_next(&u, buf, len, &off);
  if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
    msgpack_unpacked_destroy(&u);
    return 1;
  }
  ix_index *ix = ix_create();
  assert_non_null(ix);
  char err[256] = "";
  int rc = ix_load(ix, &u.data, slot_limit, err, sizeof err);
  msgpack_unpacked_destroy(&u);
  if (rc) {
    assert_true(rc == CS_ECORRUPT || rc == CS_EFORMAT);
    assert_true(err[0] != '\0');
    ix_destroy(ix);
    ix = NULL;
  } else {
    check_sound(ix, slot_limit);
  }
  if (out)
    *out = ix;
  else
    ix_destroy(ix);
  return rc;
}

static const char *const john[NF] = {"John",
                                     "Doe",
                                     "John.Doe@Example.com",
                                     "+1 (234) 567-890",
                                     "Example Inc.",
                                     "Senior Engineer",
                                     "met at the Berlin fair; likes jazz"};
static const char *const jose[NF] = {
    "  JOSÉ  ",  "Müller",   "jose@beispiel.de", "１２３４",
    "Straße AG", "engineer", "Kaffee und Kuchen"};
static const char *const jane[NF] = {
    "Jane", "Doe", "jane@example.com", NULL, "Example Industries", NULL, NULL};

typedef struct slot_list {
  uint32_t v[8192];
  uint32_t n;
} slot_list;

static int slot_collect(void *ctx, uint32_t s) {
  slot_list *l = ctx;
  assert_true(l->n < 8192);
  l->v[l->n++] = s;
  return 0;
}

static int slot_stop(void *ctx, uint32_t s) {
  (void)ctx;
  (void)s;
  return 7;
}

/* -------------------------------------------------------------- cases */

static void test_index_exact_every_field(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  put(ix, 1, 10, john);
  put(ix, 1, 11, jose);
  put(ix, 1, 12, jane);
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_EXACT, "JOHN"), "1:10");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_EXACT, "jose"), "1:11");
  assert_string_equal(q(ix, 1, CS_LAST_NAME, CS_MATCH_EXACT, " doe "),
                      "2:10,12");
  assert_string_equal(q(ix, 1, CS_LAST_NAME, CS_MATCH_EXACT, "MULLER"), "1:11");
  assert_string_equal(
      q(ix, 1, CS_EMAIL, CS_MATCH_EXACT, "JOHN.DOE@EXAMPLE.COM"), "1:10");
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_EXACT, "john.doe"), "0:");
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_EXACT, "1234567890"), "1:10");
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_EXACT, "+1 234-567-890"),
                      "1:10");
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_EXACT, "1234"), "1:11");
  assert_string_equal(q(ix, 1, CS_COMPANY, CS_MATCH_EXACT, "strasse ag"),
                      "1:11");
  assert_string_equal(q(ix, 1, CS_COMPANY, CS_MATCH_EXACT, "Example"), "0:");
  assert_string_equal(q(ix, 1, CS_JOB_TITLE, CS_MATCH_EXACT, "ENGINEER"),
                      "1:11");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_EXACT, "kaffee   und kuchen"),
                      "1:11");
  /* A term that folds to nothing matches nothing. */
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_EXACT, "   "), "0:");
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_EXACT, "+()"), "0:");
  /* ix_exact_slots sees the same postings. */
  slot_list got = {0};
  assert_int_equal(
      ix_exact_slots(ix, 1, CS_LAST_NAME, "doe", 3, slot_collect, &got), 0);
  assert_int_equal(got.n, 2);
  assert_int_equal(got.v[0], 10);
  assert_int_equal(got.v[1], 12);
  assert_int_equal(
      ix_exact_slots(ix, 1, CS_LAST_NAME, "doe", 3, slot_stop, NULL), 7);
  ix_destroy(ix);
}

static void test_index_prefix_every_field(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  put(ix, 1, 10, john);
  put(ix, 1, 11, jose);
  put(ix, 1, 12, jane);
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, "J"),
                      "3:10,11,12");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, "JO"),
                      "2:10,11");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, "josé"), "1:11");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, "josef"), "0:");
  assert_string_equal(q(ix, 1, CS_LAST_NAME, CS_MATCH_PREFIX, "d"), "2:10,12");
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_PREFIX, "j"), "3:10,11,12");
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_PREFIX, "jane@"), "1:12");
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_PREFIX, "+1 (23"), "2:10,11");
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_PREFIX, "12345"), "1:10");
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_PREFIX, "12"), "2:10,11");
  assert_string_equal(q(ix, 1, CS_COMPANY, CS_MATCH_PREFIX, "example in"),
                      "2:10,12");
  assert_string_equal(q(ix, 1, CS_COMPANY, CS_MATCH_PREFIX, "example inc"),
                      "1:10");
  assert_string_equal(q(ix, 1, CS_JOB_TITLE, CS_MATCH_PREFIX, "sen"), "1:10");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_PREFIX, "MET AT"), "1:10");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_PREFIX, "berlin"), "0:");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_PREFIX, " "), "0:");
  ix_destroy(ix);
}

static void test_index_words_every_field(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  put(ix, 1, 10, john);
  put(ix, 1, 11, jose);
  put(ix, 1, 12, jane);
  /* A whole domain, by words. */
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_WORDS, "example.com"),
                      "2:10,12");
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_WORDS, "doe"), "1:10");
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_WORDS, "com example john"),
                      "1:10");
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_WORDS, "exam"), "0:");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_WORDS, "JAZZ berlin"),
                      "1:10");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_DEFAULT, "jazz jazz"),
                      "1:10");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_WORDS, "jazz tokyo"), "0:");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_WORDS, "kuchen"), "1:11");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_WORDS, "!!"), "0:");
  assert_string_equal(q(ix, 1, CS_COMPANY, CS_MATCH_WORDS, "example"),
                      "2:10,12");
  assert_string_equal(q(ix, 1, CS_COMPANY, CS_MATCH_WORDS, "inc"), "1:10");
  assert_string_equal(q(ix, 1, CS_COMPANY, CS_MATCH_WORDS, "STRASSE"), "1:11");
  assert_string_equal(q(ix, 1, CS_JOB_TITLE, CS_MATCH_WORDS, "engineer"),
                      "2:10,11");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_WORDS, "jose"), "1:11");
  assert_string_equal(q(ix, 1, CS_LAST_NAME, CS_MATCH_WORDS, "doe"), "2:10,12");
  /* Phone is one word of digits: words is exact there. */
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_WORDS, "1 234 567 890"),
                      "1:10");
  assert_string_equal(q(ix, 1, CS_PHONE, CS_MATCH_WORDS, "234"), "0:");
  ix_destroy(ix);
}

static void test_index_bad_arguments(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  put(ix, 1, 1, john);
  answer a;
  assert_int_equal(ix_search(ix, 1, CS_SEARCH_BY_ID, CS_MATCH_EXACT, "1", 1, 0,
                             10, a.slots, &a.count, &a.total, &a.more),
                   CS_EINVAL);
  assert_int_equal(ix_search(ix, 1, -1, CS_MATCH_EXACT, "1", 1, 0, 10, a.slots,
                             &a.count, &a.total, &a.more),
                   CS_EINVAL);
  assert_int_equal(ix_search(ix, 1, CS_EMAIL, (cs_match)9, "1", 1, 0, 10,
                             a.slots, &a.count, &a.total, &a.more),
                   CS_EINVAL);
  assert_int_equal(ix_search(ix, 1, CS_EMAIL, CS_MATCH_EXACT, "\xff", 1, 0, 10,
                             a.slots, &a.count, &a.total, &a.more),
                   CS_EINVAL);
  /* An insert whose value cannot be folded changes nothing. */
  msgpack_sbuffer before, after;
  save_image(ix, &before);
  const char *bad[NF] = {"Ann", "Lee",  "ann@x.org",    "123",
                         "Co",  "Boss", "bad \xff note"};
  cs_str s[NF];
  vals(s, bad);
  assert_int_equal(ix_insert(ix, 1, 2, s, 0, 0, 0), CS_EINVAL);
  save_image(ix, &after);
  assert_int_equal(before.size, after.size);
  assert_memory_equal(before.data, after.data, before.size);
  msgpack_sbuffer_destroy(&after);
  /* The same in bulk mode, where slots of existing keys are staged. */
  ix_bulk_begin(ix);
  const char *twin[NF] = {"John", "Doe", "john.doe@example.com", NULL,
                          NULL,   NULL,  "bad \xff note"};
  vals(s, twin);
  assert_int_equal(ix_insert(ix, 1, 3, s, 0, 0, 0), CS_EINVAL);
  assert_int_equal(ix_bulk_end(ix), 0);
  save_image(ix, &after);
  assert_int_equal(before.size, after.size);
  assert_memory_equal(before.data, after.data, before.size);
  assert_string_equal(q(ix, 1, CS_LAST_NAME, CS_MATCH_EXACT, "doe"), "1:1");
  msgpack_sbuffer_destroy(&before);
  msgpack_sbuffer_destroy(&after);
  ix_destroy(ix);
}

static void test_index_account_isolation(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  put(ix, 1, 10, john);
  put(ix, 2, 11, john);
  put(ix, 0x01000000, 12, john); /* differs only in the top byte */
  for (int f = 0; f < NF; f++) {
    answer a;
    find(ix, 1, f, CS_MATCH_EXACT, john[f], 0, 100, &a);
    assert_int_equal(a.total, 1);
    assert_int_equal(a.slots[0], 10);
    find(ix, 2, f, CS_MATCH_PREFIX, john[f], 0, 100, &a);
    assert_int_equal(a.total, 1);
    assert_int_equal(a.slots[0], 11);
    find(ix, 0x01000000, f, CS_MATCH_WORDS, john[f], 0, 100, &a);
    assert_int_equal(a.total, 1);
    assert_int_equal(a.slots[0], 12);
    find(ix, 3, f, CS_MATCH_PREFIX, "", 0, 100, &a);
    assert_int_equal(a.total, 0);
  }
  /* A prefix search of account 1 ends where account 2 begins. */
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_PREFIX, "j"), "1:10");
  assert_string_equal(q(ix, 2, CS_EMAIL, CS_MATCH_PREFIX, "j"), "1:11");
  del(ix, 2, 11, john);
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_PREFIX, "j"), "1:10");
  assert_string_equal(q(ix, 2, CS_EMAIL, CS_MATCH_PREFIX, "j"), "0:");
  ix_destroy(ix);
}

static void test_index_pagination_min_slot_and_limit(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  const char *v[NF] = {"Ann", NULL, "x@y.org", NULL, "Acme", NULL, "red fox"};
  char email[64];
  /* 3000 contacts named Ann: the list passes through every representation.
   * Every third gets company Acme Corp (prefix "acme" takes two keys). */
  for (uint32_t s = 0; s < 3000; s++) {
    snprintf(email, sizeof email, "ann%u@y.org", s);
    v[2] = email;
    v[4] = s % 3 ? "Acme" : "Acme Corp";
    put(ix, 7, s * 2, v);
  }
  int modes[3] = {CS_MATCH_EXACT, CS_MATCH_PREFIX, CS_MATCH_WORDS};
  const char *terms[3] = {"ann", "acme", "fox red"};
  int fields[3] = {CS_FIRST_NAME, CS_COMPANY, CS_NOTES};
  for (int m = 0; m < 3; m++) {
    /* Walk every page of size 7 and 1000: all 3000, in order, once. */
    uint32_t limits[2] = {7, 1000};
    for (int l = 0; l < 2; l++) {
      uint32_t min = 0, seen = 0;
      for (;;) {
        answer a;
        find(ix, 7, fields[m], modes[m], terms[m], min, limits[l], &a);
        assert_int_equal(a.total, 3000);
        for (uint32_t i = 0; i < a.count; i++)
          assert_int_equal(a.slots[i], (seen + i) * 2);
        seen += a.count;
        if (!a.more) break;
        assert_int_equal(a.count, limits[l]);
        min = a.slots[a.count - 1] + 1;
      }
      assert_int_equal(seen, 3000);
    }
    /* The last page: exactly the rest, more false. */
    answer a;
    find(ix, 7, fields[m], modes[m], terms[m], 5990, 5, &a);
    assert_int_equal(a.count, 5);
    assert_false(a.more);
    find(ix, 7, fields[m], modes[m], terms[m], 5990, 4, &a);
    assert_int_equal(a.count, 4);
    assert_true(a.more);
    find(ix, 7, fields[m], modes[m], terms[m], 6000, 5, &a);
    assert_int_equal(a.count, 0);
    assert_int_equal(a.total, 3000);
    assert_false(a.more);
    find(ix, 7, fields[m], modes[m], terms[m], 0, 0, &a);
    assert_int_equal(a.count, 0);
    assert_true(a.more);
  }
  /* Prefix over many single-slot keys. */
  answer a;
  find(ix, 7, CS_EMAIL, CS_MATCH_PREFIX, "ann1", 100, 3, &a);
  assert_int_equal(a.total, 1111);
  assert_int_equal(a.count, 3);
  assert_int_equal(a.slots[0], 2 * 100); /* ann100 */
  assert_int_equal(a.slots[1], 2 * 101);
  assert_true(a.more);
  find(ix, 7, CS_EMAIL, CS_MATCH_PREFIX, "ann1", 0, 3, &a);
  assert_int_equal(a.slots[0], 2);  /* ann1 */
  assert_int_equal(a.slots[1], 20); /* ann10 */
  assert_int_equal(a.slots[2], 22);
  ix_destroy(ix);
}

static void test_index_erase_removes_exactly(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  msgpack_sbuffer empty, now;
  /* Times stay with their slots: the empty image has them up to slot 12. */
  put(ix, 1, 12, jane);
  del(ix, 1, 12, jane);
  save_image(ix, &empty);
  put(ix, 1, 10, john);
  put(ix, 1, 11, jose);
  put(ix, 1, 12, jane);
  del(ix, 1, 10, john);
  assert_string_equal(q(ix, 1, CS_LAST_NAME, CS_MATCH_EXACT, "doe"), "1:12");
  assert_string_equal(q(ix, 1, CS_EMAIL, CS_MATCH_WORDS, "example"), "1:12");
  assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_WORDS, "jazz"), "0:");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, "j"), "2:11,12");
  assert_int_equal(ix_posting_kind(ix, 1, CS_FIRST_NAME, "john", 4), 0);
  assert_int_equal(ix_posting_kind(ix, 1, CS_LAST_NAME, "doe", 3), 1);
  /* Erasing values that are not there changes nothing. */
  del(ix, 1, 10, john);
  del(ix, 1, 99, jose);
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, "j"), "2:11,12");
  del(ix, 1, 11, jose);
  del(ix, 1, 12, jane);
  /* Every key is gone once its list empties: the image is the empty one. */
  save_image(ix, &now);
  assert_int_equal(now.size, empty.size);
  assert_memory_equal(now.data, empty.data, now.size);
  msgpack_sbuffer_destroy(&now);
  /* And again after many keys and an arena compaction. */
  char buf[64];
  const char *v[NF] = {0};
  put(ix, 1, 39999, jane);
  del(ix, 1, 39999, jane);
  msgpack_sbuffer_destroy(&empty);
  save_image(ix, &empty);
  for (uint32_t s = 0; s < 40000; s++) {
    snprintf(buf, sizeof buf, "key number %u with some padding text", s);
    v[CS_NOTES] = buf;
    put(ix, 1, s, v);
  }
  for (uint32_t s = 0; s < 40000; s++) {
    snprintf(buf, sizeof buf, "key number %u with some padding text", s);
    v[CS_NOTES] = buf;
    del(ix, 1, s, v);
    if (s == 20000)
      assert_string_equal(q(ix, 1, CS_NOTES, CS_MATCH_EXACT,
                            "key number 39999 with some padding text"),
                          "1:39999");
  }
  save_image(ix, &now);
  assert_int_equal(now.size, empty.size);
  assert_memory_equal(now.data, empty.data, now.size);
  msgpack_sbuffer_destroy(&now);
  msgpack_sbuffer_destroy(&empty);
  ix_destroy(ix);
}

static void test_index_posting_transitions(void **state) {
  (void)state;
  uint64_t seed = test_seed();
  ix_index *ix = ix_create();
  enum { SPACE = 6000 };
  static bool in[SPACE];
  static uint32_t live[SPACE];
  memset(in, 0, sizeof in);
  uint32_t n = 0;
  const char *v[NF] = {0};
  v[CS_LAST_NAME] = "Smith";
  int kinds_seen = 0;
  /* Grow to ~2500 slots, shrink to 0, grow again, with random slots (not
   * only appends), checking the whole list often. */
  int phases[4] = {2500, 0, 1500, 0};
  for (int ph = 0; ph < 4; ph++) {
    while ((int)n != phases[ph]) {
      bool grow = (int)n < phases[ph];
      bool add = rnd(&seed) % 4 ? grow : !grow;
      if (add) {
        uint32_t s = (uint32_t)(rnd(&seed) % SPACE);
        if (in[s]) continue;
        put(ix, 3, s, v);
        in[s] = true;
        live[n++] = s;
      } else {
        if (!n) continue;
        uint32_t i = (uint32_t)(rnd(&seed) % n);
        uint32_t s = live[i];
        live[i] = live[--n];
        del(ix, 3, s, v);
        in[s] = false;
      }
      int kind = ix_posting_kind(ix, 3, CS_LAST_NAME, "smith", 5);
      kinds_seen |= 1 << kind;
      if (n < 4 || n % 97 == 0 || (n > 500 && n < 530) || n > 1020)
        check_sound(ix, SPACE);
      if (n == 0)
        assert_int_equal(kind, 0);
      else if (n == 1)
        assert_int_equal(kind, 1);
      else if (n <= 512)
        assert_int_equal(kind, 2);
      else if (n > 1024)
        assert_int_equal(kind, 3);
      if (rnd(&seed) % 50 == 0 || n < 4) {
        static slot_list got;
        got.n = 0;
        assert_int_equal(
            ix_exact_slots(ix, 3, CS_LAST_NAME, "smith", 5, slot_collect, &got),
            0);
        assert_int_equal(got.n, n);
        uint32_t j = 0;
        for (uint32_t x = 0; x < SPACE; x++)
          if (in[x]) assert_int_equal(got.v[j++], x);
        answer a;
        find(ix, 3, CS_LAST_NAME, CS_MATCH_WORDS, "smith", 0, 10, &a);
        assert_int_equal(a.total, n);
      }
    }
  }
  assert_int_equal(kinds_seen, 0xf); /* none, inline, array, bitmap */
  ix_destroy(ix);
}

/* ----------------------------------------------------------- oracle */

enum { OR_ACCOUNTS = 3, OR_SLOTS = 4000 };

typedef struct orec {
  bool live;
  uint32_t account;
  char v[NF][48];
  bool has[NF];
} orec;

static const char *const or_words[] = {
    "ann", "Ann", "anna", "ÀNN",    "bob",     "bo", "b",   "Ñu", "nu",
    "x-y", "42",  "4 2",  "Straße", "strasse", "ﬁn", "fin", "é",  "e"};
#define OR_NWORDS (sizeof or_words / sizeof or_words[0])
static const char *const or_seps[] = {" ", "  ", ".", "-", " \t", "@"};
static const char *const or_phones[] = {"12",   "123",    "+1 2", "１２",
                                        "12 3", "(4) 56", "456",  "1-2-3-4"};

static void or_value(uint64_t *rng, int f, char *out) {
  if (f == CS_PHONE) {
    strcpy(out, or_phones[rnd(rng) % 8]);
    return;
  }
  int n = 1 + (int)(rnd(rng) % 3);
  out[0] = 0;
  for (int i = 0; i < n; i++) {
    if (i) strcat(out, or_seps[rnd(rng) % 6]);
    strcat(out, or_words[rnd(rng) % OR_NWORDS]);
  }
}

static void or_fields(const orec *r, cs_str s[NF]) {
  for (int f = 0; f < NF; f++)
    s[f] = r->has[f] ? (cs_str){r->v[f], strlen(r->v[f])} : (cs_str){NULL, 0};
}

typedef struct wordset {
  char w[16][48];
  int n;
} wordset;

static int ws_add(void *ctx, const char *w, size_t n) {
  wordset *ws = ctx;
  assert_true(n < 48 && ws->n < 16);
  memcpy(ws->w[ws->n], w, n);
  ws->w[ws->n][n] = 0;
  ws->n++;
  return 0;
}

static bool ws_has(const wordset *ws, const char *w) {
  for (int i = 0; i < ws->n; i++)
    if (!strcmp(ws->w[i], w)) return true;
  return false;
}

/* Does the value match the term, by the API's definition? */
static bool or_match(int f, cs_match m, const char *value, const char *term) {
  fold_buf a = {0}, b = {0};
  assert_int_equal(fold_key(f, value, strlen(value), &a), 0);
  assert_int_equal(fold_key(f, term, strlen(term), &b), 0);
  bool ok = false;
  if (b.len == 0 || a.len == 0) {
    ok = false;
  } else if (m == CS_MATCH_EXACT) {
    ok = a.len == b.len && !memcmp(a.ptr, b.ptr, a.len);
  } else if (m == CS_MATCH_PREFIX) {
    ok = a.len >= b.len && !memcmp(a.ptr, b.ptr, b.len);
  } else {
    wordset wa = {0}, wb = {0};
    fold_words(a.ptr, a.len, ws_add, &wa);
    fold_words(b.ptr, b.len, ws_add, &wb);
    ok = wb.n > 0;
    for (int i = 0; i < wb.n && ok; i++)
      ok = ws_has(&wa, wb.w[i]);
  }
  fold_buf_free(&a);
  fold_buf_free(&b);
  return ok;
}

static void or_check(const ix_index *ix, const orec *tab, uint32_t account,
                     int f, cs_match m, const char *term, uint64_t *rng) {
  static uint32_t want[OR_SLOTS];
  uint32_t nw = 0;
  for (uint32_t s = 0; s < OR_SLOTS; s++)
    if (tab[s].live && tab[s].account == account && tab[s].has[f] &&
        or_match(f, m, tab[s].v[f], term))
      want[nw++] = s;
  answer a;
  find(ix, account, f, m, term, 0, 2048, &a);
  if (a.total != nw || a.count != nw) {
    print_error("account %u field %d mode %d term \"%s\": %llu/%u, want %u\n",
                account, f, m, term, (unsigned long long)a.total, a.count, nw);
    for (uint32_t i = 0, j = 0; i < a.count || j < nw;) {
      if (j < nw && (i == a.count || want[j] < a.slots[i])) {
        print_error("  missing slot %u \"%s\"\n", want[j], tab[want[j]].v[f]);
        j++;
      } else if (j == nw || a.slots[i] < want[j]) {
        print_error("  extra slot %u \"%s\" live %d acct %u has %d\n",
                    a.slots[i], tab[a.slots[i]].v[f], tab[a.slots[i]].live,
                    tab[a.slots[i]].account, tab[a.slots[i]].has[f]);
        i++;
      } else {
        i++;
        j++;
      }
    }
    fail();
  }
  assert_memory_equal(a.slots, want, (size_t)nw * 4);
  assert_false(a.more);
  /* A random page. */
  uint32_t min = (uint32_t)(rnd(rng) % OR_SLOTS), limit = 1 + rnd(rng) % 20;
  find(ix, account, f, m, term, min, limit, &a);
  assert_int_equal(a.total, nw);
  uint32_t i0 = 0;
  while (i0 < nw && want[i0] < min)
    i0++;
  uint32_t exp = nw - i0 < limit ? nw - i0 : limit;
  assert_int_equal(a.count, exp);
  assert_memory_equal(a.slots, want + i0, (size_t)exp * 4);
  assert_int_equal(a.more, nw - i0 > exp);
}

/* Every field, mode and account, with terms drawn from the alphabet, from
 * prefixes of stored values, and whole stored values. */
static void or_check_all(const ix_index *ix, const orec *tab, uint64_t *rng) {
  char term[64];
  for (uint32_t acc = 0; acc < OR_ACCOUNTS; acc++)
    for (int f = 0; f < NF; f++)
      for (int m = CS_MATCH_EXACT; m <= CS_MATCH_WORDS; m++)
        for (int t = 0; t < 6; t++) {
          const orec *r = &tab[rnd(rng) % OR_SLOTS];
          if (t < 2 || !r->has[f]) {
            or_value(rng, f, term);
          } else if (t < 4) {
            strcpy(term, r->v[f]);
          } else {
            size_t n = strlen(r->v[f]);
            size_t cut = 1 + rnd(rng) % n;
            /* cut on a character boundary */
            while (cut < n && (r->v[f][cut] & 0xc0) == 0x80)
              cut++;
            memcpy(term, r->v[f], cut);
            term[cut] = 0;
          }
          or_check(ix, tab, acc, f, (cs_match)m, term, rng);
        }
}

static void test_index_oracle_random(void **state) {
  (void)state;
  uint64_t seed = test_seed();
  orec *tab = calloc(OR_SLOTS, sizeof(orec));
  ix_index *ix = ix_create();
  uint32_t next = 0;
  for (int step = 1; step <= 12000; step++) {
    uint32_t s;
    uint64_t op = rnd(&seed) % 10;
    if (op < 6 && next < OR_SLOTS) {
      s = next++;
    } else if (!next) {
      continue;
    } else if (op < 7) {
      s = (uint32_t)(rnd(&seed) % next); /* reuse a dead slot */
      if (tab[s].live) continue;
    } else {
      s = (uint32_t)(rnd(&seed) % next);
      if (!tab[s].live) continue;
      cs_str f[NF];
      or_fields(&tab[s], f);
      assert_int_equal(ix_erase(ix, tab[s].account, s, f, 0), 0);
      tab[s].live = false;
      check_sound(ix, OR_SLOTS);
      continue;
    }
    if (s >= OR_SLOTS) continue;
    orec *r = &tab[s];
    r->account = (uint32_t)(rnd(&seed) % OR_ACCOUNTS);
    for (int f = 0; f < NF; f++) {
      r->has[f] = f == CS_FIRST_NAME || f == CS_EMAIL || rnd(&seed) % 4;
      if (r->has[f]) or_value(&seed, f, r->v[f]);
    }
    cs_str f[NF];
    or_fields(r, f);
    assert_int_equal(ix_insert(ix, r->account, s, f, 0, 0, 0), 0);
    r->live = true;
    check_sound(ix, OR_SLOTS);
    if (step % 3000 == 0) or_check_all(ix, tab, &seed);
  }
  or_check_all(ix, tab, &seed);

  /* The same live contacts loaded in bulk answer the same. */
  ix_index *bulk = ix_create();
  ix_bulk_begin(bulk);
  for (uint32_t s = 0; s < OR_SLOTS; s++)
    if (tab[s].live) {
      cs_str f[NF];
      or_fields(&tab[s], f);
      assert_int_equal(ix_insert(bulk, tab[s].account, s, f, 0, 0, 0), 0);
    }
  check_sound(bulk, OR_SLOTS); /* staged and pending, not yet merged */
  assert_int_equal(ix_bulk_end(bulk), 0);
  check_sound(bulk, OR_SLOTS);
  or_check_all(bulk, tab, &seed);

  /* And after a save and load. */
  msgpack_sbuffer sb;
  save_image(ix, &sb);
  ix_index *loaded = NULL;
  assert_int_equal(load_bytes(sb.data, sb.size, OR_SLOTS, &loaded), 0);
  or_check_all(loaded, tab, &seed);
  uint32_t top = 0;
  for (uint32_t s = 0; s < OR_SLOTS; s++)
    if (tab[s].live) top = s;
  /* A loaded index keeps working under writes. */
  for (uint32_t s = 0; s < OR_SLOTS; s += 3)
    if (tab[s].live) {
      cs_str f[NF];
      or_fields(&tab[s], f);
      assert_int_equal(ix_erase(loaded, tab[s].account, s, f, 0), 0);
      tab[s].live = false;
    }
  check_sound(loaded, OR_SLOTS);
  or_check_all(loaded, tab, &seed);
  /* The image's slots must be below slot_limit. */
  char err[128];
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  ix_index *small = ix_create();
  assert_int_equal(ix_load(small, &u.data, top, err, sizeof err), CS_ECORRUPT);
  assert_non_null(strstr(err, "out of range"));
  ix_destroy(small);
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
  ix_destroy(loaded);
  ix_destroy(bulk);
  ix_destroy(ix);
  free(tab);
}

/* Fails unless a and b answer every term alike, on every field, match and
 * account below accounts. */
static void expect_same_answers(const ix_index *a, const ix_index *b,
                                uint32_t accounts, const char *const *terms,
                                size_t nterms) {
  static answer x, y;
  for (uint32_t acc = 0; acc < accounts; acc++)
    for (int f = 0; f < NF; f++)
      for (int m = CS_MATCH_EXACT; m <= CS_MATCH_WORDS; m++)
        for (size_t t = 0; t < nterms; t++) {
          find(a, acc, f, (cs_match)m, terms[t], 0, 2048, &x);
          find(b, acc, f, (cs_match)m, terms[t], 0, 2048, &y);
          assert_int_equal(x.total, y.total);
          assert_int_equal(x.count, y.count);
          assert_memory_equal(x.slots, y.slots, (size_t)x.count * 4);
        }
}

static void test_index_bulk_equals_incremental(void **state) {
  (void)state;
  /* Bulk on top of a non-empty index (as replay after a snapshot does),
   * with keys arriving out of order and sharing long prefixes. */
  ix_index *a = ix_create(), *b = ix_create();
  char buf[NF][80];
  const char *v[NF];
  uint64_t seed = 99;
  for (uint32_t s = 0; s < 5000; s++) {
    uint32_t k = (uint32_t)(rnd(&seed) % 100000);
    snprintf(buf[0], 80, "Name%u", k % 300);
    snprintf(buf[1], 80, "a-very-long-shared-prefix-of-thirty %u", k);
    snprintf(buf[2], 80, "user%u@host%u.example", k, k % 17);
    snprintf(buf[3], 80, "+1 555 %07u", k);
    snprintf(buf[4], 80, "Company %u", k % 50);
    snprintf(buf[5], 80, "%s", k % 2 ? "CEO" : "CTO");
    snprintf(buf[6], 80, "note %u %u", k % 7, k % 11);
    for (int f = 0; f < NF; f++)
      v[f] = buf[f];
    put(a, s % 2, s, v);
    if (s == 1000) ix_bulk_begin(b);
    put(b, s % 2, s, v);
    if (s % 500 == 0) check_sound(b, 5000);
  }
  assert_int_equal(ix_bulk_end(b), 0);
  check_sound(a, 5000);
  check_sound(b, 5000);
  const char *terms[] = {"name1",     "a-very-long-shared-prefix-of-thirty 1",
                         "user1",     "+1 555 00",
                         "company 1", "c",
                         "note 3",    "host3 example",
                         "",          "a"};
  expect_same_answers(a, b, 2, terms, sizeof terms / sizeof terms[0]);
  /* Exact dictionaries save in key order: identical images. */
  msgpack_sbuffer ia, ib;
  save_image(a, &ia);
  save_image(b, &ib);
  assert_true(ia.size == ib.size);
  ix_destroy(a);
  ix_destroy(b);
  msgpack_sbuffer_destroy(&ia);
  msgpack_sbuffer_destroy(&ib);
}

/* Values of contact k, for the queue's test. */
static void queue_vals(uint32_t k, char buf[NF][80], cs_str out[NF]) {
  snprintf(buf[0], 80, "Name%u", k % 300);
  snprintf(buf[1], 80, "Last %u", k % 1000);
  snprintf(buf[2], 80, "user%u@host%u.example", k, k % 17);
  snprintf(buf[3], 80, "+1 555 %07u", k);
  snprintf(buf[4], 80, "Company %u", k % 50);
  snprintf(buf[5], 80, "%s", k % 2 ? "CEO" : "CTO");
  snprintf(buf[6], 80, "note %u %u", k % 7, k % 11);
  const char *v[NF];
  for (int f = 0; f < NF; f++)
    v[f] = buf[f];
  /* absent values and values whose keys fold to nothing, in fields of
   * both parts of the index (their meta keys are part 0's) */
  if (k % 13 == 0) v[CS_COMPANY] = NULL;
  if (k % 23 == 0) v[CS_FIRST_NAME] = NULL;
  if (k % 17 == 0) snprintf(buf[CS_PHONE], 80, "ext.");
  if (k % 19 == 0) snprintf(buf[CS_NOTES], 80, " \t ");
  if (k % 29 == 0) snprintf(buf[CS_LAST_NAME], 80, "  ");
  vals(out, v);
}

static void test_index_queue_equals_direct_calls(void **state) {
  (void)state;
  /* A replay's calls through ixq (more than its ring holds, erases among
   * the inserts, as edits and deletes make them) against the same calls
   * made in place: the same answers and the same image. The values' text
   * stays put until ixq_finish, as the mapped log does. */
  enum { OPS = 6000 };
  static char text[OPS][NF][80];
  static cs_str v[OPS][NF];
  ix_index *a = ix_create(), *b = ix_create();
  ix_bulk_begin(a);
  ix_bulk_begin(b);
  ixq *q = NULL;
  assert_int_equal(ixq_start(b, &q), 0);
  uint64_t seed = 7;
  bool live[OPS] = {false};
  for (uint32_t s = 0; s < OPS; s++) {
    queue_vals((uint32_t)(rnd(&seed) % 100000), text[s], v[s]);
    uint32_t acc = s % 3;
    if (s > 10 && s % 4 == 0) { /* an edit of an earlier slot, or a delete */
      uint32_t old = s - 1 - (uint32_t)(rnd(&seed) % 10);
      if (live[old] && old % 3 == acc) {
        assert_int_equal(ix_erase(a, acc, old, v[old], 0), 0);
        assert_int_equal(q ? ixq_erase(q, acc, old, v[old], 0)
                           : ix_erase(b, acc, old, v[old], 0),
                         0);
        live[old] = false;
      }
    }
    assert_int_equal(ix_insert(a, acc, s, v[s], 0, s, s), 0);
    assert_int_equal(q ? ixq_insert(q, acc, s, v[s], 0, s, s)
                       : ix_insert(b, acc, s, v[s], 0, s, s),
                     0);
    live[s] = true;
  }
  assert_int_equal(ixq_finish(q), 0);
  assert_int_equal(ix_bulk_end(a), 0);
  assert_int_equal(ix_bulk_end(b), 0);
  check_sound(a, OPS);
  check_sound(b, OPS);
  const char *terms[] = {"name1", "last 1", "user1", "+1 555 00", "company 1",
                         "c",     "note 3", "host3", "",          "a"};
  expect_same_answers(a, b, 3, terms, sizeof terms / sizeof terms[0]);
  msgpack_sbuffer ia, ib;
  save_image(a, &ia);
  save_image(b, &ib);
  assert_int_equal(ia.size, ib.size);
  assert_memory_equal(ia.data, ib.data, ia.size);
  msgpack_sbuffer_destroy(&ia);
  msgpack_sbuffer_destroy(&ib);
  ix_destroy(a);
  ix_destroy(b);
}

static void test_index_queue_reports_a_failed_call(void **state) {
  (void)state;
  /* A call the index refuses (a value that is not UTF-8) among good ones:
   * its error comes back from a later call or from ixq_finish, and the
   * thread stops there. */
  enum { OPS = 3000 };
  static char text[OPS][NF][80];
  static cs_str v[OPS][NF];
  ix_index *ix = ix_create();
  ix_bulk_begin(ix);
  ixq *q = NULL;
  assert_int_equal(ixq_start(ix, &q), 0);
  if (!q) skip(); /* one processor: the calls are made in place */
  int seen = 0;
  for (uint32_t s = 0; s < OPS; s++) {
    queue_vals(s, text[s], v[s]);
    if (s == 100) v[s][CS_COMPANY] = (cs_str){"\xff\xfe", 2};
    int rc = ixq_insert(q, 0, s, v[s], 0, 0, 0);
    if (rc) {
      assert_int_equal(rc, CS_EINVAL);
      seen++;
    }
  }
  assert_int_equal(ixq_finish(q), CS_EINVAL);
  assert_true(seen > 0); /* the index thread met it long before the end */
  ix_destroy(ix);
}

static void test_index_save_load_round_trip(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  put(ix, 1, 10, john);
  put(ix, 1, 11, jose);
  put(ix, 2, 12, jane);
  const char *v[NF] = {"Bulk", NULL, "b@c.de", NULL, NULL, NULL, "big list"};
  for (uint32_t s = 100; s < 3100; s++)
    put(ix, 3, s, v); /* a bitmap posting, and an array in the words */
  check_sound(ix, 3100);
  msgpack_sbuffer sb, sb2;
  save_image(ix, &sb);
  ix_index *ld = NULL;
  assert_int_equal(load_bytes(sb.data, sb.size, 3100, &ld), 0);
  assert_int_equal(ix_posting_kind(ld, 3, CS_FIRST_NAME, "bulk", 4), 3);
  assert_int_equal(ix_posting_kind(ld, 1, CS_FIRST_NAME, "john", 4), 1);
  assert_int_equal(ix_posting_kind(ld, 3, CS_EMAIL, "b@c.de", 6), 3);
  const char *terms[] = {"john", "j", "doe", "example.com", "1234", "big",
                         "bulk", "b", "e",   "strasse",     "x"};
  for (uint32_t acc = 0; acc < 4; acc++)
    for (int f = 0; f < NF; f++)
      for (int m = CS_MATCH_EXACT; m <= CS_MATCH_WORDS; m++)
        for (size_t t = 0; t < sizeof terms / sizeof terms[0]; t++) {
          answer x, y;
          find(ix, acc, f, (cs_match)m, terms[t], 50, 1000, &x);
          find(ld, acc, f, (cs_match)m, terms[t], 50, 1000, &y);
          assert_int_equal(x.total, y.total);
          assert_int_equal(x.count, y.count);
          assert_int_equal(x.more, y.more);
          assert_memory_equal(x.slots, y.slots, (size_t)x.count * 4);
        }
  /* Saving the loaded index gives the same bytes. */
  save_image(ld, &sb2);
  assert_int_equal(sb.size, sb2.size);
  assert_memory_equal(sb.data, sb2.data, sb.size);
  /* Loading into a non-empty index is refused. */
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  char err[128];
  assert_int_equal(ix_load(ld, &u.data, 3100, err, sizeof err), CS_ECORRUPT);
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
  msgpack_sbuffer_destroy(&sb2);
  ix_destroy(ld);
  ix_destroy(ix);
}

/* Builds a small index image with every posting representation. */
static void small_image(msgpack_sbuffer *sb) {
  ix_index *ix = ix_create();
  put(ix, 1, 10, john);
  put(ix, 1, 11, jose);
  put(ix, 2, 12, jane);
  const char *v[NF] = {"Ann", NULL, "a@b.cd", NULL, NULL, NULL, NULL};
  for (uint32_t s = 20; s < 20 + 1100; s++)
    put(ix, 1, s, v);
  save_image(ix, sb);
  ix_destroy(ix);
}

static void test_index_load_truncated_fails(void **state) {
  (void)state;
  msgpack_sbuffer sb;
  small_image(&sb);
  for (size_t n = 0; n < sb.size; n++) {
    int rc = load_bytes(sb.data, n, 2000, NULL);
    assert_int_not_equal(rc, 0);
  }
  /* Truncated inside the structure: cut each bin of the parsed object
   * short at every length, and drop elements of every array. */
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  msgpack_object *fields = &u.data.via.array.ptr[2];
  char err[256];
  int cases = 0;
  for (uint32_t f = 0; f < fields->via.array.size; f++) {
    msgpack_object *fo = &fields->via.array.ptr[f];
    for (uint32_t k = 0; k < 2; k++) {
      msgpack_object *d = &fo->via.array.ptr[k];
      if (d->type != MSGPACK_OBJECT_ARRAY) continue;
      for (uint32_t b = 1; b <= 2; b++) {
        msgpack_object_bin *bin = &d->via.array.ptr[b].via.bin;
        uint32_t full = bin->size;
        for (uint32_t n = 0; n < full; n++) {
          bin->size = n;
          ix_index *ix = ix_create();
          assert_int_equal(ix_load(ix, &u.data, 2000, err, sizeof err),
                           CS_ECORRUPT);
          ix_destroy(ix);
          cases++;
        }
        bin->size = full;
      }
      for (uint32_t n = 0; n < 3; n++) {
        uint32_t full = d->via.array.size;
        d->via.array.size = n;
        ix_index *ix = ix_create();
        assert_int_equal(ix_load(ix, &u.data, 2000, err, sizeof err),
                         CS_ECORRUPT);
        ix_destroy(ix);
        d->via.array.size = full;
      }
    }
  }
  assert_true(cases > 100);
  /* The untouched object still loads. */
  ix_index *ix = ix_create();
  assert_int_equal(ix_load(ix, &u.data, 2000, err, sizeof err), 0);
  ix_destroy(ix);
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
}

static void test_index_load_garbled_never_crashes(void **state) {
  (void)state;
  uint64_t seed = test_seed();
  msgpack_sbuffer sb;
  small_image(&sb);
  char *buf = malloc(sb.size);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(buf, sb.data, sb.size);
    int flips = 1 + (int)(rnd(&seed) % 4);
    for (int i = 0; i < flips; i++) {
      size_t at = rnd(&seed) % sb.size;
      if (rnd(&seed) % 2)
        buf[at] ^= (char)(1u << (rnd(&seed) % 8));
      else
        buf[at] = (char)rnd(&seed);
    }
    ix_index *ix = NULL;
    int rc = load_bytes(buf, sb.size, 2000, &ix);
    if (rc == 0) {
      /* Whatever loaded must be searchable and writable without harm. */
      loaded++;
      answer a;
      const char *terms[] = {"ann", "a", "j", "doe", "example com"};
      for (int f = 0; f < NF; f++)
        for (int m = CS_MATCH_EXACT; m <= CS_MATCH_WORDS; m++)
          for (int t = 0; t < 5; t++)
            for (uint32_t acc = 0; acc < 3; acc++) {
              find(ix, acc, f, (cs_match)m, terms[t], 15, 50, &a);
              assert_true(a.count <= 50);
              for (uint32_t i = 1; i < a.count; i++)
                assert_true(a.slots[i - 1] < a.slots[i]);
            }
      put(ix, 1, 1999, john);
      del(ix, 1, 10, john);
      del(ix, 1, 1999, john);
      msgpack_sbuffer again;
      save_image(ix, &again);
      msgpack_sbuffer_destroy(&again);
      ix_destroy(ix);
    } else {
      refused++;
    }
  }
  printf("garbled images: %d refused, %d loaded and searched\n", refused,
         loaded);
  assert_true(refused > 0);
  free(buf);
  msgpack_sbuffer_destroy(&sb);
}

static void pack_empty_dict(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 0);
  msgpack_pack_bin(pk, 0);
  msgpack_pack_bin(pk, 0);
}

/* What follows the fields in a version 2 image: two empty reversed
 * dictionaries, an empty meta dictionary, and times of tms_bytes bytes. */
static void pack_extras(msgpack_packer *pk, size_t tms_bytes) {
  msgpack_pack_array(pk, 2);
  pack_empty_dict(pk);
  pack_empty_dict(pk);
  pack_empty_dict(pk);
  uint8_t zero[64] = {0};
  msgpack_pack_bin(pk, tms_bytes);
  msgpack_pack_bin_body(pk, zero, tms_bytes);
}

/* Hand-made images, each wrong in one way. */
static void test_index_load_rejects_bad_shapes(void **state) {
  (void)state;
  struct {
    const char *name;
    int kind;
  } cases[] = {{"not an array", 0},     {"wrong magic", 1},
               {"wrong version", 2},    {"six fields", 3},
               {"key out of order", 4}, {"slot in two keys", 5},
               {"slot too big", 6},     {"duplicate word", 7},
               {"count too big", 8},    {"gap overflows", 9},
               {"phone has words", 10}, {"overlong varint", 11},
               {"empty key text", 12},  {"zero count posting", 13},
               {"version 1", 14},       {"times not 16 a slot", 15}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int kind = cases[c].kind;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (kind == 0) {
      msgpack_pack_uint32(&pk, 5);
    } else {
      msgpack_pack_array(&pk, kind == 14 ? 3 : 6);
      msgpack_pack_str_with_body(&pk, kind == 1 ? "csiy" : "csix", 4);
      msgpack_pack_uint32(&pk, kind == 2 ? 3 : kind == 14 ? 1 : 2);
      int nf = kind == 3 ? NF - 1 : NF;
      msgpack_pack_array(&pk, (size_t)nf);
      for (int f = 0; f < nf; f++) {
        msgpack_pack_array(&pk, 2);
        /* exact dict of first_name carries the case; others empty */
        uint8_t keys[64], posts[64];
        size_t kn = 0, pn = 0;
        uint32_t nkeys = 0;
        if (f == CS_FIRST_NAME && kind >= 4 && kind != 7 && kind != 10) {
          const char *k1 = kind == 4 ? "zed" : "abe";
          const char *k2 = kind == 12 ? "" : "bob";
          const char *ks[2] = {k1, k2};
          for (int i = 0; i < 2; i++) {
            size_t l = strlen(ks[i]);
            keys[kn++] = (uint8_t)(4 + l);
            memcpy(keys + kn, "\0\0\0\1", 4);
            memcpy(keys + kn + 4, ks[i], l);
            kn += 4 + l;
          }
          nkeys = kind == 8 ? 3 : 2;
          /* postings: [1] 5, then [2] 6,7 */
          uint8_t p1[] = {1, 5, 2, 6, 0};
          memcpy(posts, p1, sizeof p1);
          pn = sizeof p1;
          if (kind == 5) posts[3] = 5;   /* slot 5 under both keys */
          if (kind == 6) posts[3] = 100; /* >= slot_limit 50 */
          if (kind == 9) {
            uint8_t p2[] = {1, 5, 2, 40, 0xff, 0xff, 0xff, 0xff, 0x0f};
            memcpy(posts, p2, sizeof p2);
            pn = sizeof p2;
          }
          if (kind == 11) {
            uint8_t p2[] = {1, 0x85, 0x80, 0x80, 0x80, 0x80, 0x00, 2, 6, 0};
            memcpy(posts, p2, sizeof p2);
            pn = sizeof p2;
          }
          if (kind == 13) posts[0] = 0;
        }
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, nkeys);
        msgpack_pack_bin(&pk, kn);
        msgpack_pack_bin_body(&pk, keys, kn);
        msgpack_pack_bin(&pk, pn);
        msgpack_pack_bin_body(&pk, posts, pn);
        if (f == CS_PHONE && kind != 10) {
          msgpack_pack_nil(&pk);
          continue;
        }
        if (f == CS_LAST_NAME && kind == 7) {
          /* the same word twice in a words dictionary */
          uint8_t wk[] = {7, 0, 0, 0, 1, 'x', 'y', 'z',
                          7, 0, 0, 0, 1, 'x', 'y', 'z'};
          uint8_t wp[] = {1, 3, 1, 4};
          msgpack_pack_array(&pk, 3);
          msgpack_pack_uint32(&pk, 2);
          msgpack_pack_bin(&pk, sizeof wk);
          msgpack_pack_bin_body(&pk, wk, sizeof wk);
          msgpack_pack_bin(&pk, sizeof wp);
          msgpack_pack_bin_body(&pk, wp, sizeof wp);
          continue;
        }
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_bin(&pk, 0);
        msgpack_pack_bin(&pk, 0);
      }
      if (kind != 14) pack_extras(&pk, kind == 15 ? 8 : 0);
    }
    int rc = load_bytes(sb.data, sb.size, 50, NULL);
    if (rc != (kind == 14 ? CS_EFORMAT : CS_ECORRUPT)) {
      print_error("case \"%s\": got %d\n", cases[c].name, rc);
      fail();
    }
    msgpack_sbuffer_destroy(&sb);
  }
  /* The well-formed variant of the same hand-made image loads. */
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 6);
  msgpack_pack_str_with_body(&pk, "csix", 4);
  msgpack_pack_uint32(&pk, 2);
  msgpack_pack_array(&pk, NF);
  for (int f = 0; f < NF; f++) {
    msgpack_pack_array(&pk, 2);
    uint8_t keys[] = {7, 0, 0, 0, 1, 'a', 'b', 'e',
                      7, 0, 0, 0, 1, 'b', 'o', 'b'};
    uint8_t posts[] = {1, 5, 2, 6, 0};
    bool fill = f == CS_FIRST_NAME;
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, fill ? 2 : 0);
    msgpack_pack_bin(&pk, fill ? sizeof keys : 0);
    msgpack_pack_bin_body(&pk, keys, fill ? sizeof keys : 0);
    msgpack_pack_bin(&pk, fill ? sizeof posts : 0);
    msgpack_pack_bin_body(&pk, posts, fill ? sizeof posts : 0);
    if (f == CS_PHONE) {
      msgpack_pack_nil(&pk);
      continue;
    }
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_bin(&pk, 0);
    msgpack_pack_bin(&pk, 0);
  }
  pack_extras(&pk, 32); /* times of slots 0 and 1 */
  ix_index *ix = NULL;
  assert_int_equal(load_bytes(sb.data, sb.size, 50, &ix), 0);
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_EXACT, "bob"), "2:6,7");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, ""), "0:");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, "b"), "2:6,7");
  assert_string_equal(q(ix, 1, CS_FIRST_NAME, CS_MATCH_PREFIX, "a"), "1:5");
  ix_destroy(ix);
  msgpack_sbuffer_destroy(&sb);
}

/* Many keys sharing long prefixes (ties past the 12 bytes kept inline in
 * the sorted order), across accounts, through growth of the hash tables
 * (any size, wrapping probes), erases (backward shift), a bulk load (its
 * tables rebuilt to fit) and a save/load: every key is found exactly when
 * it should be, and prefix searches count what they should. */
static void test_index_many_keys_tables_and_order(void **state) {
  (void)state;
  enum { N = 6000 };
  for (int bulk = 0; bulk < 2; bulk++) {
    ix_index *ix = ix_create();
    assert_non_null(ix);
    if (bulk) ix_bulk_begin(ix);
    char email[64];
    for (uint32_t i = 0; i < N; i++) {
      cs_str f[NF] = {{0}};
      snprintf(email, sizeof email, "averylongcommonprefix.%u@x.io",
               i * 7919u % N);
      f[CS_EMAIL] = (cs_str){email, strlen(email)};
      assert_int_equal(ix_insert(ix, 1 + i % 3, i, f, 0, 0, 0), 0);
    }
    if (bulk) assert_int_equal(ix_bulk_end(ix), 0);
    check_sound(ix, N);
    for (uint32_t i = 0; i < N; i += 2) {
      cs_str f[NF] = {{0}};
      snprintf(email, sizeof email, "averylongcommonprefix.%u@x.io",
               i * 7919u % N);
      f[CS_EMAIL] = (cs_str){email, strlen(email)};
      assert_int_equal(ix_erase(ix, 1 + i % 3, i, f, 0), 0);
    }
    check_sound(ix, N);
    msgpack_sbuffer sb;
    save_image(ix, &sb);
    ix_index *ix2 = NULL;
    assert_int_equal(load_bytes(sb.data, sb.size, N, &ix2), 0);
    const ix_index *both[2] = {ix, ix2};
    for (int k = 0; k < 2; k++) {
      for (uint32_t i = 0; i < N; i++) {
        snprintf(email, sizeof email, "averylongcommonprefix.%u@x.io",
                 i * 7919u % N);
        for (uint32_t a = 1; a <= 3; a++)
          assert_int_equal(
              ix_posting_kind(both[k], a, CS_EMAIL, email, strlen(email)),
              a == 1 + i % 3 && i % 2 ? 1 : 0);
      }
      uint64_t total = 0;
      for (uint32_t a = 1; a <= 3; a++) {
        uint32_t out[4], count;
        uint64_t t;
        bool more;
        assert_int_equal(ix_search(both[k], a, CS_EMAIL, CS_MATCH_PREFIX,
                                   "averylongcommonprefix.1", 23, 0, 4, out,
                                   &count, &t, &more),
                         0);
        total += t;
      }
      /* odd i whose i * 7919 % N starts with 1 */
      uint64_t want = 0;
      for (uint32_t i = 1; i < N; i += 2) {
        snprintf(email, sizeof email, "%u", i * 7919u % N);
        want += email[0] == '1';
      }
      assert_int_equal(total, want);
    }
    ix_destroy(ix2);
    ix_destroy(ix);
    msgpack_sbuffer_destroy(&sb);
  }
}

/* ix_check's verdict on ix, which must be CS_ECORRUPT naming want. */
static void check_damaged(const ix_index *ix, uint32_t slot_limit,
                          const char *want) {
  char err[256] = "";
  assert_int_equal(ix_check(ix, slot_limit, err, sizeof err), CS_ECORRUPT);
  if (!strstr(err, want))
    fail_msg("ix_check said \"%s\", not \"%s\"", err, want);
}

/* The entry of an exact key (folded) of field f in account 1. */
static uint32_t exact_entry(ix_index *ix, int f, const char *key) {
  uint32_t e = dict_find(&ix->exact[f], 1, key, strlen(key),
                         key_hash(1, key, strlen(key)));
  assert_true(e != IX_NONE);
  return e;
}

/* Each kind of damage, made through the internals and undone after, is
 * reported: a posting list out of order, a slot past the limit, one slot
 * under two keys of a field, a hash cell with a wrong hash, the sorted
 * order out of order, a stale chunk prefix, a wrong live count, a bitmap
 * too small, a key missing from the order. */
static void test_index_check_sees_damage(void **state) {
  (void)state;
  ix_index *ix = ix_create();
  const char *v[NF] = {"Zed", NULL, NULL, NULL, "Acme", NULL, NULL};
  char email[32];
  for (uint32_t s = 0; s < 1200; s++) {
    snprintf(email, sizeof email, "u%04u@x.io", s);
    v[CS_FIRST_NAME] = s < 1100 ? "Zed" : "Amy";
    v[CS_COMPANY] = s < 20 ? "Acme" : NULL;
    v[CS_EMAIL] = email;
    put(ix, 1, s, v);
  }
  check_sound(ix, 1200);

  /* a posting list out of order */
  ix_dict *d = &ix->exact[CS_COMPANY];
  uint32_t e = exact_entry(ix, CS_COMPANY, "acme");
  assert_false(POST_IS_ONE(d->ents[e].post) || POST_IS_RB(d->ents[e].post));
  ix_arr *a = POST_ARR(d->ents[e].post);
  uint32_t t = a->v[3];
  a->v[3] = a->v[4];
  a->v[4] = t;
  check_damaged(ix, 1200, "after");
  a->v[4] = a->v[3];
  a->v[3] = t;
  check_sound(ix, 1200);

  /* a slot past the limit */
  check_damaged(ix, 1100, "past the limit");

  /* one slot under two keys of one field */
  d = &ix->exact[CS_EMAIL];
  e = exact_entry(ix, CS_EMAIL, "u0007@x.io");
  ix_post keep = d->ents[e].post;
  d->ents[e].post = POST_MAKE_ONE(8);
  check_damaged(ix, 1200, "two keys");
  d->ents[e].post = keep;

  /* a hash cell with a wrong hash */
  uint64_t i = 0;
  while (!d->tab[i])
    i++;
  d->tab[i] ^= (uint64_t)1 << 40;
  check_damaged(ix, 1200, "wrong hash");
  d->tab[i] ^= (uint64_t)1 << 40;
  check_sound(ix, 1200);

  /* the order out of order: two neighbours swapped with their prefixes */
  ix_chunk *ch = &d->chunks[0];
  assert_true(ch->n > 3);
  uint32_t ve = ch->v[1];
  uint64_t pa = chunk_pa(ch)[1];
  uint32_t pb = chunk_pb(ch)[1];
  ch->v[1] = ch->v[2];
  chunk_pa(ch)[1] = chunk_pa(ch)[2];
  chunk_pb(ch)[1] = chunk_pb(ch)[2];
  ch->v[2] = ve;
  chunk_pa(ch)[2] = pa;
  chunk_pb(ch)[2] = pb;
  check_damaged(ix, 1200, "out of order");
  ch->v[2] = ch->v[1];
  chunk_pa(ch)[2] = chunk_pa(ch)[1];
  chunk_pb(ch)[2] = chunk_pb(ch)[1];
  ch->v[1] = ve;
  chunk_pa(ch)[1] = pa;
  chunk_pb(ch)[1] = pb;
  check_sound(ix, 1200);

  /* a stale prefix beside a key */
  chunk_pb(ch)[2] ^= 1;
  check_damaged(ix, 1200, "stale prefix");
  chunk_pb(ch)[2] ^= 1;

  /* a wrong live count */
  d->live--;
  check_damaged(ix, 1200, "live entries");
  d->live++;

  /* a key missing from the order */
  uint32_t n = ch->n;
  ch->n = n - 1;
  check_damaged(ix, 1200, "in the order");
  ch->n = n;
  check_sound(ix, 1200);

  /* a bitmap too small for one */
  d = &ix->exact[CS_FIRST_NAME];
  e = exact_entry(ix, CS_FIRST_NAME, "zed");
  assert_true(POST_IS_RB(d->ents[e].post));
  roaring_bitmap_t *r = POST_RB(d->ents[e].post);
  roaring_bitmap_remove_range(r, 10, 1100);
  check_damaged(ix, 1200, "a bitmap of 10 slots");
  ix_destroy(ix);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_index_exact_every_field),
      cmocka_unit_test(test_index_prefix_every_field),
      cmocka_unit_test(test_index_words_every_field),
      cmocka_unit_test(test_index_bad_arguments),
      cmocka_unit_test(test_index_account_isolation),
      cmocka_unit_test(test_index_pagination_min_slot_and_limit),
      cmocka_unit_test(test_index_erase_removes_exactly),
      cmocka_unit_test(test_index_posting_transitions),
      cmocka_unit_test(test_index_oracle_random),
      cmocka_unit_test(test_index_bulk_equals_incremental),
      cmocka_unit_test(test_index_queue_equals_direct_calls),
      cmocka_unit_test(test_index_queue_reports_a_failed_call),
      cmocka_unit_test(test_index_save_load_round_trip),
      cmocka_unit_test(test_index_load_truncated_fails),
      cmocka_unit_test(test_index_load_garbled_never_crashes),
      cmocka_unit_test(test_index_load_rejects_bad_shapes),
      cmocka_unit_test(test_index_many_keys_tables_and_order),
      cmocka_unit_test(test_index_check_sees_damage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
