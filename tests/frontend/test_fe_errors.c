/*
 * test_fe_errors.c: the engine-to-HTTP error table (fe_errors.h).
 *
 * Goal: every engine code of CS_ERRNO_MAP, and the -errno values that mean
 * the disk refuses writes, answer the status and code word API.md and the
 * contacts README document; anything else is 500 internal; the table's
 * invariants hold (503 and only 503 carries retry-after, of FE_RETRY_AFTER_S
 * seconds; the client's own mistakes are not logged). Method: the expected
 * answers are written out here a second time, and every code the engine
 * defines must have one, so a new engine code cannot go undecided.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_errors.h"

typedef struct want {
  int rc;
  int status;
  const char *code;
} want;

/* What the API documents for each code. */
static const want wants[] = {
    {CS_EINVAL, 400, "invalid_field"},
    {CS_ENOTFOUND, 404, "not_found"},
    {CS_EDUPLICATE, 409, "duplicate_email"},
    {CS_EPRECONDITION, 412, "precondition_failed"},
    {CS_EIDEM_REUSED, 422, "idempotency_key_reused"},
    {CS_EIDEM_BUSY, 409, "idempotency_key_in_use"},
    {CS_EEXPIRED, 410, "cursor_expired"},
    {CS_ECURSOR, 400, "invalid_cursor"},
    {CS_EBUSY, 409, "compaction_running"},
    {CS_EMOVING, 503, "account_moving"},
    {CS_EIDS_SPENT, 503, "ids_exhausted"},
    {CS_ESTANDBY, 503, "standby"},
    {CS_EFENCED, 503, "fenced"},
    {CS_ESTANDBY_DOWN, 503, "standby_unavailable"},
    {CS_ESHIP_GONE, 410, "replication_gone"},
    {CS_ECORRUPT, 500, "internal"},
    {CS_EFAILED, 503, "store_unavailable"},
    {CS_ELOCKED, 500, "internal"},
    {CS_EFORMAT, 500, "internal"},
    {CS_ECLOSING, 503, "store_unavailable"},
    {CS_EKEY, 500, "internal"},
    {CS_EACCOUNT, 500, "internal"},
    {-ENOSPC, 503, "store_unavailable"},
    {-EDQUOT, 503, "store_unavailable"},
    {-EROFS, 503, "store_unavailable"},
    {-EIO, 503, "store_unavailable"},
    {-ENOMEM, 500, "internal"},
    {-EACCES, 500, "internal"},
    {-EINVAL, 500, "internal"},
    {-10999, 500, "internal"}, /* in the engine's range, but no code */
};

static const want *want_of(int rc) {
  for (size_t i = 0; i < sizeof wants / sizeof wants[0]; i++)
    if (wants[i].rc == rc) return &wants[i];
  return NULL;
}

static void
test_fe_errors_every_engine_code_has_its_documented_answer(void **state) {
  (void)state;
  static const int codes[] = {
#define X(name, value, word, text) name,
      CS_ERRNO_MAP(X)
#undef X
  };
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const want *w = want_of(codes[i]);
    if (w == NULL) fail_msg("engine code %d has no expected answer", codes[i]);
    const cd_store_error *e = fe_store_error(codes[i]);
    assert_int_equal(e->status, w->status);
    assert_string_equal(e->code, w->code);
  }
}

static void test_fe_errors_errno_and_unknown_codes(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof wants / sizeof wants[0]; i++) {
    const cd_store_error *e = fe_store_error(wants[i].rc);
    assert_non_null(e);
    assert_int_equal(e->status, wants[i].status);
    assert_string_equal(e->code, wants[i].code);
  }
}

static bool standby_row(int rc) {
  return rc == CS_ESTANDBY || rc == CS_EFENCED || rc == CS_ESTANDBY_DOWN;
}

static void test_fe_errors_only_503_carries_retry_after(void **state) {
  (void)state;
  char secs[16];
  snprintf(secs, sizeof secs, "%d", FE_RETRY_AFTER_S);
  assert_int_equal(FE_RETRY_AFTER_S, 30); /* what the API has promised */
  /* And an idempotency key in flight: retry after a second. */
  assert_int_equal(FE_IDEM_RETRY_AFTER_S, 1);
  const cd_store_error *busy = fe_store_error(CS_EIDEM_BUSY);
  assert_int_equal(busy->retry_after_s, 1);
  assert_string_equal(busy->retry_after, "1");
  /* And an account marked moving: a move's cut-over is about a second. */
  assert_int_equal(FE_MOVING_RETRY_AFTER_S, 1);
  const cd_store_error *moving = fe_store_error(CS_EMOVING);
  assert_int_equal(moving->retry_after_s, 1);
  assert_string_equal(moving->retry_after, "1");
  for (size_t i = 0; i < sizeof wants / sizeof wants[0]; i++) {
    const cd_store_error *e = fe_store_error(wants[i].rc);
    assert_non_null(e->message);
    assert_true(e->message[0] != '\0');
    if (wants[i].rc == CS_EIDEM_BUSY || wants[i].rc == CS_EMOVING)
      continue;                     /* above */
    if (standby_row(wants[i].rc)) { /* a failover takes about a second */
      assert_int_equal(e->retry_after_s, FE_STANDBY_RETRY_AFTER_S);
      assert_string_equal(e->retry_after, "1");
      continue;
    }
    if (e->status == 503) {
      assert_int_equal(e->retry_after_s, FE_RETRY_AFTER_S);
      assert_non_null(e->retry_after);
      assert_string_equal(e->retry_after, secs);
    } else {
      assert_int_equal(e->retry_after_s, 0);
      assert_null(e->retry_after);
    }
  }
}

static void test_fe_errors_client_mistakes_are_not_logged(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof wants / sizeof wants[0]; i++) {
    const cd_store_error *e = fe_store_error(wants[i].rc);
    /* A write sent to a standby or a fenced primary, or a request of an
     * account moving: the client's routing, nothing for this server's
     * operator. */
    if (wants[i].rc == CS_ESTANDBY || wants[i].rc == CS_EFENCED ||
        wants[i].rc == CS_EMOVING)
      assert_int_equal(e->log_level, CD_LOG_NONE);
    else if (e->status < 500)
      assert_int_equal(e->log_level, CD_LOG_NONE);
    else if (e->status == 503)
      assert_int_equal(e->log_level, CD_LOG_WARN);
    else
      assert_int_equal(e->log_level, CD_LOG_ERROR);
  }
}

/* The engine's word and the API's are the same where the cause is the
 * client's, and differ on purpose for a failed store (see fe_errors.h). */
static void
test_fe_errors_words_agree_with_the_engine_where_they_should(void **state) {
  (void)state;
  static const int same[] = {CS_EINVAL, CS_ENOTFOUND, CS_EDUPLICATE};
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
    assert_string_equal(fe_store_error(same[i])->code, cs_strcode(same[i]));
  assert_string_equal(cs_strcode(CS_EFAILED), "store_failed");
  assert_string_equal(fe_store_error(CS_EFAILED)->code, "store_unavailable");
}

/* The log levels are ABI: plugins built before the names pass numbers. */
static void test_fe_errors_log_levels_keep_their_numbers(void **state) {
  (void)state;
  assert_int_equal(CD_LOG_INFO, 0);
  assert_int_equal(CD_LOG_WARN, 1);
  assert_int_equal(CD_LOG_ERROR, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          test_fe_errors_every_engine_code_has_its_documented_answer),
      cmocka_unit_test(test_fe_errors_errno_and_unknown_codes),
      cmocka_unit_test(test_fe_errors_only_503_carries_retry_after),
      cmocka_unit_test(test_fe_errors_client_mistakes_are_not_logged),
      cmocka_unit_test(
          test_fe_errors_words_agree_with_the_engine_where_they_should),
      cmocka_unit_test(test_fe_errors_log_levels_keep_their_numbers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
