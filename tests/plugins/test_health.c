/*
 * test_health.c: GET /healthz, and how a failed store is answered.
 *
 * Goal: 200 {"status":"ok"} while the store accepts writes; 503 with the
 * reason and retry-after once it refuses them; and the contacts API's writes
 * answering 503 store_unavailable at the same time. Method: the store is
 * opened with an I/O table whose writes can be made to fail on demand, a
 * write is sent to make the store fail, and both plugins are asked.
 * Health's status and retry-after must be the host table's row for the
 * failed store, which is the row the contacts plugin answers its writes
 * with (test_fe_errors pins that row to 503 store_unavailable, 30 s), so
 * the two endpoints cannot drift apart.
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

#include "fake_host.h"

extern const cd_plugin contactd_plugin;

static bool hl_fail_writes;
static cs_io hl_io;

static long hl_pwrite(void *ctx, int fd, const void *buf, size_t len,
                      uint64_t off) {
  if (__atomic_load_n(&hl_fail_writes, __ATOMIC_SEQ_CST)) return -EIO;
  return cs_io_posix()->pwrite(ctx, fd, buf, len, off);
}

static int hl_fdatasync(void *ctx, int fd) {
  if (__atomic_load_n(&hl_fail_writes, __ATOMIC_SEQ_CST)) return -EIO;
  return cs_io_posix()->fdatasync(ctx, fd);
}

static void test_health_ok(void **state) {
  (void)state;
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  assert_int_equal(contactd_plugin.route_count, 2);
  assert_string_equal(contactd_plugin.routes[0].pattern, "/healthz");
  assert_string_equal(contactd_plugin.routes[0].method, "GET");
  assert_int_equal(contactd_plugin.routes[0].flags, 0); /* no key */
  assert_string_equal(contactd_plugin.routes[1].pattern, "/healthz/primary");
  assert_int_equal(contactd_plugin.routes[1].flags, 0);
  struct cd_response *r = fh_call(&fx, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->content_type, "application/json");
  assert_string_equal(r->body, "{\"status\":\"ok\"}");
  fh_free(r);
  fh_close(&fx);
}

/* /healthz/primary: 200 on a primary, 503 not_primary with the role on a
 * standby and on a fenced primary. */
static void test_health_primary_by_role(void **state) {
  (void)state;
  fh_fixture fx;
  fh_open(&fx, &contactd_plugin, NULL);
  struct cd_response *r = fh_call(&fx, "GET", "/healthz/primary", NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->body, "{\"role\":\"primary\"}");
  fh_free(r);
  cs_error err;
  assert_int_equal(cs_fence(fx.store, &err), 0);
  r = fh_call(&fx, "GET", "/healthz/primary", NULL, NULL);
  assert_int_equal(r->status, 503);
  assert_non_null(strstr(r->body, "\"code\":\"not_primary\""));
  assert_non_null(strstr(r->body, "\"role\":\"fenced\""));
  fh_free(r);
  fh_close(&fx);
  cs_options so = {.standby = true};
  fh_open(&fx, &contactd_plugin, &so);
  r = fh_call(&fx, "GET", "/healthz/primary", NULL, NULL);
  assert_int_equal(r->status, 503);
  assert_non_null(strstr(r->body, "\"role\":\"standby\""));
  fh_free(r);
  /* /healthz is liveness: a standby is healthy. */
  r = fh_call(&fx, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 200);
  fh_free(r);
  fh_close(&fx);
}

/* The commit result of the write that makes the store fail (1: pending). */
static int hl_done_rc = 1;
static void hl_done(void *ctx, int rc, uint64_t id) {
  (void)ctx;
  (void)id;
  __atomic_store_n(&hl_done_rc, rc, __ATOMIC_SEQ_CST);
}

/* Opens fx on a store whose writes fail, and makes it fail with one
 * durable create. */
static void hl_open_failed(fh_fixture *fx) {
  hl_io = *cs_io_posix();
  hl_io.pwrite = hl_pwrite;
  hl_io.fdatasync = hl_fdatasync;
  hl_fail_writes = false;
  hl_done_rc = 1;
  cs_options opts = {.durability = CS_DURABILITY_FSYNC, .io = &hl_io};
  fh_open(fx, &contactd_plugin, &opts);

  __atomic_store_n(&hl_fail_writes, true, __ATOMIC_SEQ_CST);
  cs_contact c = {0};
  c.field[CS_FIRST_NAME] = (cs_str){"A", 1};
  c.field[CS_EMAIL] = (cs_str){"a@x.io", 6};
  cs_error err = {0};
  uint64_t id;
  int rc = cs_create(fx->store, 1, &c, hl_done, NULL, &id, &err);
  if (rc == 0) {
    cs_flush(fx->store, &err);
    for (int i = 0;
         i < 5000 && __atomic_load_n(&hl_done_rc, __ATOMIC_SEQ_CST) == 1; i++) {
      struct timespec ms = {0, 1000000};
      nanosleep(&ms, NULL);
    }
    assert_true(hl_done_rc < 0);
  }
}

static void test_health_unavailable_after_failed_write(void **state) {
  (void)state;
  fh_fixture fx;
  hl_open_failed(&fx);
  struct cd_response *r = fh_call(&fx, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 503);
  assert_string_equal(r->content_type, "application/json");
  assert_string_equal(fh_str(r, "status", NULL), "unavailable");
  const char *reason = fh_str(r, "reason", NULL);
  assert_non_null(reason);
  assert_true(strlen(reason) > 0);
  assert_non_null(fh_header(r, "retry-after"));
  fh_free(r);
  fh_close(&fx);
}

static void
test_health_answers_a_failed_store_as_the_contacts_api(void **state) {
  (void)state;
  fh_fixture fx;
  hl_open_failed(&fx);
  cs_error err = {0};
  int rc = cs_health(fx.store, &err);
  assert_int_equal(rc, CS_EFAILED);
  /* The row both plugins read: contacts answers a write with it now. */
  const cd_store_error *row = fh_host()->store_error(rc);
  assert_ptr_equal(row, fh_host()->store_error(CS_EFAILED));
  assert_int_equal(row->status, 503);
  assert_string_equal(row->code, "store_unavailable");
  assert_string_equal(row->retry_after, "30");

  struct cd_response *r = fh_call(&fx, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, row->status);
  assert_non_null(fh_header(r, "retry-after"));
  assert_string_equal(fh_header(r, "retry-after"), row->retry_after);
  fh_free(r);
  fh_close(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health_ok),
      cmocka_unit_test(test_health_primary_by_role),
      cmocka_unit_test(test_health_unavailable_after_failed_write),
      cmocka_unit_test(test_health_answers_a_failed_store_as_the_contacts_api),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
