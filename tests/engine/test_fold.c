/*
 * test_fold.c: unit tests of the text folding (engine/fold.c).
 *
 * Goal: every search compares folded text, so folding must give exactly the
 * API's semantics (NFKC, case fold, marks stripped, whitespace collapsed and
 * trimmed; phone digits only; words as runs of letters and digits), reject
 * invalid input, and its ASCII fast path must never differ from the Unicode
 * path.
 *
 * Method: table-driven cases for the documented examples and edge cases;
 * the fast path is compared byte for byte with fold_text_unicode over every
 * short string of a small ASCII alphabet and over many seeded random
 * strings of all printable ASCII and whitespace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cs.h"
#include "fold.h"

static void expect_fold(const char *in, const char *want) {
  fold_buf b = {0};
  assert_int_equal(fold_text(in, strlen(in), &b), 0);
  assert_string_equal(b.ptr, want);
  assert_int_equal(b.len, strlen(want));
  fold_buf_free(&b);
}

static void expect_key(int field, const char *in, const char *want) {
  fold_buf b = {0};
  assert_int_equal(fold_key(field, in, strlen(in), &b), 0);
  assert_string_equal(b.ptr, want);
  assert_int_equal(b.len, strlen(want));
  fold_buf_free(&b);
}

static void test_fold_case_and_diacritics(void **state) {
  (void)state;
  expect_fold("  JOSÉ  ", "jose");
  expect_fold("José", "jose");
  expect_fold("Müller", "muller");
  expect_fold("MULLER", "muller");
  expect_fold("MÜLLER", "muller");
  expect_fold("Straße", "strasse");
  expect_fold("STRASSE", "strasse");
  expect_fold("Ångström", "angstrom");
  /* Decomposed input (e + combining acute) folds like the composed one. */
  expect_fold("Jose\xcc\x81", "jose");
  expect_fold("ΣΊΣΥΦΟΣ", "σισυφοσ");
}

static void test_fold_whitespace_collapsed_and_trimmed(void **state) {
  (void)state;
  expect_fold("  a  b\t\tc \n d  ", "a b c d");
  expect_fold("\t\r\n\v\fx", "x");
  expect_fold("x\xc2\xa0\xc2\xa0y", "x y");         /* NBSP */
  expect_fold("x\xe3\x80\x80y", "x y");             /* ideographic space */
  expect_fold("x\xe2\x80\xa8\xe2\x80\xa9y", "x y"); /* line/para separator */
  expect_fold("x\xc2\x85y", "x y");                 /* NEL */
  expect_fold("\xe2\x80\x83 é \xe2\x80\x83", "e");  /* em space, trimmed */
  expect_fold("a b", "a b");
}

static void test_fold_empty_after_fold(void **state) {
  (void)state;
  expect_fold("", "");
  expect_fold("   ", "");
  expect_fold(" \t\n ", "");
  expect_fold("\xc2\xa0\xe3\x80\x80", "");
  /* A lone combining mark is stripped to nothing. */
  expect_fold("\xcc\x81", "");
  expect_fold(" \xcc\x81 ", "");
  fold_buf b = {0};
  assert_int_equal(fold_text(NULL, 0, &b), 0);
  assert_int_equal(b.len, 0);
  fold_buf_free(&b);
}

static void test_fold_nfkc_compatibility(void **state) {
  (void)state;
  expect_fold("\xef\xac\x81nance", "finance"); /* U+FB01 fi ligature */
  expect_fold("\xef\xbc\xa1\xef\xbc\xa2\xef\xbd\x83", "abc"); /* fullwidth */
  expect_fold("\xe2\x84\xab", "a"); /* Angstrom sign */
  expect_fold("\xe2\x91\xa0", "1"); /* circled one */
  expect_fold("x\xc2\xb2", "x2");   /* superscript two */
}

static void test_fold_invalid_utf8_is_einval(void **state) {
  (void)state;
  static const char *bad[] = {
      "\xff",     "abc\x80",          "\xc3",
      "\xc3\x28", "\xe2\x82",         "\xed\xa0\x80",
      "\xc0\xaf", "\xf8\x88\x80\x80", "ok \xfe ok",
  };
  fold_buf b = {0};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = strlen(bad[i]);
    assert_int_equal(fold_text(bad[i], n, &b), CS_EINVAL);
    assert_int_equal(fold_text_unicode(bad[i], n, &b), CS_EINVAL);
    assert_int_equal(fold_key(CS_PHONE, bad[i], n, &b), CS_EINVAL);
    assert_int_equal(fold_key(CS_EMAIL, bad[i], n, &b), CS_EINVAL);
    assert_int_equal(fold_case(bad[i], n, &b), CS_EINVAL);
  }
  /* NUL is refused on the fast path and the Unicode path alike. */
  assert_int_equal(fold_text("a\0b", 3, &b), CS_EINVAL);
  assert_int_equal(fold_text("\xc3\xa9\0", 3, &b), CS_EINVAL);
  assert_int_equal(fold_key(CS_PHONE, "12\0003", 4, &b), CS_EINVAL);
  assert_int_equal(fold_case("A\0", 2, &b), CS_EINVAL);
  fold_buf_free(&b);
}

static void test_fold_phone_digits_only(void **state) {
  (void)state;
  expect_key(CS_PHONE, "+1 (234) 567-890", "1234567890");
  expect_key(CS_PHONE, "1234567890", "1234567890");
  expect_key(CS_PHONE, "555.123.4567", "5551234567");
  expect_key(CS_PHONE, "+-() .", "");
  /* Fullwidth digits are folded by NFKC first. */
  expect_key(CS_PHONE, "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93-4", "1234");
  expect_key(CS_PHONE, "\xc2\xa0 12 \xc2\xa0", "12");
  /* Other fields keep the folded text. */
  expect_key(CS_EMAIL, "John.Doe@Example.COM", "john.doe@example.com");
  expect_key(CS_FIRST_NAME, "  JOSÉ  ", "jose");
}

static void test_fold_case_only(void **state) {
  (void)state;
  fold_buf b = {0};
  assert_int_equal(fold_case("John.DOE@Example.com", 20, &b), 0);
  assert_string_equal(b.ptr, "john.doe@example.com");
  /* No trimming, no mark stripping, no NFKC. */
  const char *s = " Jos\xc3\x89 \xef\xbc\x91";
  assert_int_equal(fold_case(s, strlen(s), &b), 0);
  assert_string_equal(b.ptr, " jos\xc3\xa9 \xef\xbc\x91");
  assert_int_equal(fold_case("STRASSE", 7, &b), 0);
  assert_string_equal(b.ptr, "strasse");
  assert_int_equal(fold_case("Stra\xc3\x9f"
                             "e",
                             7, &b),
                   0);
  assert_string_equal(b.ptr, "strasse");
  fold_buf_free(&b);
}

typedef struct words_acc {
  char out[512];
  int count;
  int stop_after;
} words_acc;

static int words_collect(void *ctx, const char *w, size_t n) {
  words_acc *a = ctx;
  if (a->count) strcat(a->out, "|");
  strncat(a->out, w, n);
  a->count++;
  return a->count == a->stop_after ? 42 : 0;
}

static void expect_words(const char *in, const char *want, int count) {
  fold_buf b = {0};
  assert_int_equal(fold_text(in, strlen(in), &b), 0);
  words_acc a = {{0}, 0, 0};
  assert_int_equal(fold_words(b.ptr, b.len, words_collect, &a), 0);
  assert_string_equal(a.out, want);
  assert_int_equal(a.count, count);
  fold_buf_free(&b);
}

static void test_fold_words_split(void **state) {
  (void)state;
  expect_words("john.doe@example.com", "john|doe|example|com", 4);
  expect_words("  Hello,  World!  ", "hello|world", 2);
  expect_words("a-b_c d42 42", "a|b|c|d42|42", 5);
  expect_words("...", "", 0);
  expect_words("", "", 0);
  expect_words("Müller-Lüdenscheid GmbH", "muller|ludenscheid|gmbh", 3);
  expect_words("東京 タワー", "東京|タワー", 2);
  expect_words("x\xc2\xb2y", "x2y", 1);
  expect_words("call me maybe call", "call|me|maybe|call", 4);
  /* A non-zero return from the callback stops the walk and is returned. */
  words_acc a = {{0}, 0, 2};
  assert_int_equal(fold_words("a b c d", 7, words_collect, &a), 42);
  assert_int_equal(a.count, 2);
  /* Invalid UTF-8 in the text is refused. */
  words_acc z = {{0}, 0, 0};
  assert_int_equal(fold_words("ab \xff", 4, words_collect, &z), CS_EINVAL);
}

static void check_same(const char *s, size_t n, fold_buf *fast,
                       fold_buf *slow) {
  int a = fold_text(s, n, fast);
  int b = fold_text_unicode(s, n, slow);
  assert_int_equal(a, b);
  if (a == 0) {
    if (fast->len != slow->len || memcmp(fast->ptr, slow->ptr, fast->len)) {
      print_error("fast path differs on \"%.*s\": \"%s\" vs \"%s\"\n", (int)n,
                  s, fast->ptr, slow->ptr);
      fail();
    }
  }
}

static void test_fold_ascii_fast_path_equals_unicode_path(void **state) {
  (void)state;
  fold_buf fast = {0}, slow = {0};
  /* Every string of length <= 4 over an alphabet with each byte class. */
  static const char alpha[] = "aZ0 \t\n.@-_\v\r~";
  const size_t k = sizeof alpha - 1;
  char s[8];
  for (size_t len = 0; len <= 4; len++) {
    size_t total = 1;
    for (size_t i = 0; i < len; i++)
      total *= k;
    for (size_t v = 0; v < total; v++) {
      size_t x = v;
      for (size_t i = 0; i < len; i++, x /= k)
        s[i] = alpha[x % k];
      check_same(s, len, &fast, &slow);
    }
  }
  /* Every single byte 1..127, then random strings of all of them. */
  for (int c = 1; c < 128; c++) {
    s[0] = (char)c;
    check_same(s, 1, &fast, &slow);
  }
  unsigned seed = 12345;
  char buf[200];
  for (int iter = 0; iter < 100000; iter++) {
    seed = seed * 1103515245u + 12345u;
    size_t n = (seed >> 16) % sizeof buf;
    for (size_t i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      unsigned r = (seed >> 16) % 110;
      /* Mostly printable ASCII, with whitespace runs and controls mixed in. */
      buf[i] =
          r < 95 ? (char)(' ' + r) : "\t\n\v\f\r  \x01\x1f\x7f    "[r - 95];
    }
    check_same(buf, n, &fast, &slow);
  }
  fold_buf_free(&fast);
  fold_buf_free(&slow);
}

static void test_fold_key_empty_agrees_with_fold_key(void **state) {
  (void)state;
  /* For every field kind, over every short string of an alphabet of each
   * byte class (with a NUL, a non-ASCII space, a fullwidth digit and a
   * byte that is not UTF-8): empty exactly when fold_key's key is, and the
   * same error when fold_key refuses the value. */
  static const char *const atoms[] = {"a",
                                      "7",
                                      " ",
                                      "\t",
                                      ".",
                                      "\0",
                                      "-",
                                      "\xe3\x80\x80",
                                      "\xef\xbc\x95",
                                      "\xff",
                                      "\xc3\xa9"};
  const size_t k = sizeof atoms / sizeof atoms[0];
  fold_buf key = {0}, scratch = {0};
  char s[32];
  for (int field = 0; field < CS_FIELD_COUNT; field++)
    for (size_t len = 0; len <= 3; len++) {
      size_t total = 1;
      for (size_t i = 0; i < len; i++)
        total *= k;
      for (size_t v = 0; v < total; v++) {
        size_t n = 0;
        for (size_t i = 0, x = v; i < len; i++, x /= k) {
          const char *a = atoms[x % k];
          size_t al = a[0] ? strlen(a) : 1; /* "\0" is one NUL byte */
          memcpy(s + n, a, al);
          n += al;
        }
        int want = fold_key(field, s, n, &key);
        int got = fold_key_empty(field, s, n, &scratch);
        if (want)
          assert_int_equal(got, want);
        else
          assert_int_equal(got, key.len == 0);
      }
    }
  fold_buf_free(&key);
  fold_buf_free(&scratch);
}

static void test_fold_buffer_reused_without_growth(void **state) {
  (void)state;
  fold_buf b = {0};
  assert_int_equal(fold_text("Hello World", 11, &b), 0);
  char *p = b.ptr;
  size_t cap = b.cap;
  assert_int_equal(fold_text("Other", 5, &b), 0);
  assert_ptr_equal(b.ptr, p);
  assert_int_equal(b.cap, cap);
  assert_string_equal(b.ptr, "other");
  /* A long input grows it; the result is still right. */
  char big[5000];
  memset(big, 'A', sizeof big);
  big[2500] = ' ';
  assert_int_equal(fold_text(big, sizeof big, &b), 0);
  assert_int_equal(b.len, sizeof big);
  assert_true(b.ptr[0] == 'a' && b.ptr[2500] == ' ' && b.ptr[4999] == 'a');
  /* Unicode input that expands past the code point guess (U+FDFA is one
   * code point that decomposes to eighteen). */
  char ex[3 * 40 + 1];
  for (int i = 0; i < 40; i++)
    memcpy(ex + 3 * i, "\xef\xb7\xba", 3);
  ex[120] = 0;
  fold_buf e = {0};
  assert_int_equal(fold_text(ex, 120, &e), 0);
  assert_true(e.len > 120 * 3);
  fold_buf_free(&e);
  fold_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fold_case_and_diacritics),
      cmocka_unit_test(test_fold_whitespace_collapsed_and_trimmed),
      cmocka_unit_test(test_fold_empty_after_fold),
      cmocka_unit_test(test_fold_nfkc_compatibility),
      cmocka_unit_test(test_fold_invalid_utf8_is_einval),
      cmocka_unit_test(test_fold_phone_digits_only),
      cmocka_unit_test(test_fold_case_only),
      cmocka_unit_test(test_fold_words_split),
      cmocka_unit_test(test_fold_ascii_fast_path_equals_unicode_path),
      cmocka_unit_test(test_fold_key_empty_agrees_with_fold_key),
      cmocka_unit_test(test_fold_buffer_reused_without_growth),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
