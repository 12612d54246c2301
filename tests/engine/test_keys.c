/*
 * test_keys.c: the keyring (engine/keys.c) as a running server uses it.
 *
 * Goal: admin keys are kept in the key file and read back, and files
 * written before the role existed still load; cs_keys_get copies and stops
 * at the end; cs_keys_reload takes in what another writer of the file did
 * (a new key checks, a revoked one is refused, an info a check handed out
 * stays readable and shows the revocation), and refuses a damaged,
 * unreadable or missing file with the old ring left in force. Under
 * concurrency: checker threads never see a key refused that was added
 * (its cs_keys_add returned) and not revoked, nor accepted once its
 * cs_keys_revoke returned, while a writer adds, revokes and reloads.
 * Method: real key files in temporary directories; two rings on one
 * directory stand for the server and contactctl; the concurrency test
 * publishes each change with an atomic counter after its call returned and
 * the checkers read the counter before they check (run it under TSan with
 * tools/test.sh to see races as well as wrong answers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs.h"
#include "test_util.h"

static char *dir;

static int setup(void **state) {
  dir = tu_tmpdir();
  return 0;
}

static int teardown(void **state) {
  tu_rmrf(dir);
  free(dir);
  return 0;
}

static char *keys_file(void) {
  char *p;
  assert_true(asprintf(&p, "%s/keys", dir) > 0);
  return p;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static void add(cs_keyring *k, const char *account, cs_role role,
                char key[CS_KEY_BYTES + 1]) {
  cs_error err = {0};
  cs_key_info info;
  assert_int_equal(cs_keys_add(k, account, role, key, &info, &err), 0);
  assert_int_equal(info.role, role);
}

static bool checks(const cs_keyring *k, const char *key) {
  const cs_key_info *info = NULL;
  return cs_keys_check(k, key, strlen(key), &info) == 0;
}

static void test_admin_role_is_kept_and_read_back(void **state) {
  cs_keyring *k = NULL;
  cs_error err = {0};
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  char admin[CS_KEY_BYTES + 1], rw[CS_KEY_BYTES + 1], ro[CS_KEY_BYTES + 1];
  add(k, "ops", CS_ROLE_ADMIN, admin);
  add(k, "acme", CS_ROLE_READ_WRITE, rw);
  add(k, "acme", CS_ROLE_READ_ONLY, ro);
  cs_keys_close(k);
  char *path = keys_file();
  const char *text = read_file(path);
  assert_non_null(strstr(text, "\tops\t1\tadmin\t"));
  assert_non_null(strstr(text, "\tacme\t2\trw\t"));
  assert_non_null(strstr(text, "\tacme\t2\tro\t"));
  free(path);

  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  const cs_key_info *info = NULL;
  assert_int_equal(cs_keys_check(k, admin, CS_KEY_BYTES, &info), 0);
  assert_int_equal(info->role, CS_ROLE_ADMIN);
  assert_string_equal(info->account, "ops");
  cs_key_info got;
  assert_int_equal(cs_keys_get(k, 0, &got), 0);
  assert_int_equal(got.role, CS_ROLE_ADMIN);
  assert_int_equal(cs_keys_get(k, 2, &got), 0);
  assert_int_equal(got.role, CS_ROLE_READ_ONLY);
  assert_int_equal(cs_keys_get(k, 3, &got), CS_EKEY);
  assert_int_equal(cs_keys_count(k), 3);
  cs_keys_close(k);
}

static void test_role_words(void **state) {
  cs_role r;
  const char *words[] = {"read-write", "read-only", "admin"};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(cs_role_parse(words[i], &r), 0);
    assert_string_equal(cs_role_name(r), words[i]);
  }
  assert_int_equal(cs_role_parse("root", &r), CS_EKEY);
  assert_int_equal(cs_role_parse("Admin", &r), CS_EKEY);
  assert_int_equal(cs_role_parse(NULL, &r), CS_EKEY);
  assert_null(cs_role_name((cs_role)7));
  cs_keyring *k = NULL;
  cs_error err = {0};
  char key[CS_KEY_BYTES + 1];
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  cs_key_info info;
  assert_int_equal(cs_keys_add(k, "a", (cs_role)7, key, &info, &err), CS_EKEY);
  assert_int_equal(cs_keys_count(k), 0);
  cs_keys_close(k);
}

static void test_a_file_from_before_admin_keys_loads(void **state) {
  char *path = keys_file();
  /* The format as version 1 wrote it: rw and ro only. */
  write_file(path, "# contactd keys v1\n"
                   "ck_AAAAAAAA\t"
                   "00000000000000000000000000000000"
                   "00000000000000000000000000000000\tacme\t1\trw\t"
                   "1700000000000\t0\n"
                   "ck_BBBBBBBB\t"
                   "11111111111111111111111111111111"
                   "11111111111111111111111111111111\tacme\t1\tro\t"
                   "1700000000001\t1\n");
  cs_keyring *k = NULL;
  cs_error err = {0};
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  cs_key_info a, b;
  assert_int_equal(cs_keys_get(k, 0, &a), 0);
  assert_int_equal(cs_keys_get(k, 1, &b), 0);
  assert_int_equal(a.role, CS_ROLE_READ_WRITE);
  assert_int_equal(b.role, CS_ROLE_READ_ONLY);
  assert_true(b.revoked);
  cs_keys_close(k);
  /* A role word it does not know is a damaged file, not a read-write key. */
  write_file(path, "# contactd keys v1\n"
                   "ck_AAAAAAAA\t"
                   "00000000000000000000000000000000"
                   "00000000000000000000000000000000\tacme\t1\troot\t"
                   "1700000000000\t0\n");
  assert_int_equal(cs_keys_open(dir, &k, &err), CS_ECORRUPT);
  assert_null(k);
  free(path);
}

static void test_reload_takes_in_another_writer(void **state) {
  cs_keyring *srv = NULL, *ctl = NULL;
  cs_error err = {0};
  char k1[CS_KEY_BYTES + 1], k2[CS_KEY_BYTES + 1], k3[CS_KEY_BYTES + 1];
  assert_int_equal(cs_keys_open(dir, &srv, &err), 0);
  add(srv, "acme", CS_ROLE_READ_WRITE, k1);
  add(srv, "acme", CS_ROLE_READ_WRITE, k2);
  const cs_key_info *held = NULL;
  assert_int_equal(cs_keys_check(srv, k1, CS_KEY_BYTES, &held), 0);

  /* The tool changes the file behind the server's back. */
  assert_int_equal(cs_keys_open(dir, &ctl, &err), 0);
  add(ctl, "other", CS_ROLE_ADMIN, k3);
  char id[CS_KEY_ID_BYTES + 1];
  memcpy(id, k1, CS_KEY_ID_BYTES);
  id[CS_KEY_ID_BYTES] = 0;
  assert_int_equal(cs_keys_revoke(ctl, id, &err), 0);
  cs_keys_close(ctl);

  assert_false(checks(srv, k3)); /* not before the reload */
  assert_true(checks(srv, k1));
  assert_int_equal(cs_keys_reload(srv, &err), 0);
  assert_true(checks(srv, k3));
  assert_false(checks(srv, k1));
  assert_true(checks(srv, k2));
  assert_int_equal(cs_keys_count(srv), 3);
  /* The info handed out before is the same entry, and says revoked. */
  assert_string_equal(held->account, "acme");
  assert_true(held->revoked);
  uint32_t id_other = 0;
  assert_int_equal(cs_keys_account_id(srv, "other", &id_other), 0);
  assert_int_equal(id_other, 2);
  cs_keys_close(srv);
}

static void test_reload_refuses_a_bad_file_and_keeps_the_ring(void **state) {
  cs_keyring *k = NULL;
  cs_error err = {0};
  char key[CS_KEY_BYTES + 1];
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  add(k, "acme", CS_ROLE_READ_WRITE, key);
  char *path = keys_file();
  char *good = strdup(read_file(path));

  write_file(path, "# contactd keys v1\nnot a key line\n");
  assert_int_equal(cs_keys_reload(k, &err), CS_ECORRUPT);
  assert_non_null(strstr(err.msg, "malformed"));
  assert_true(checks(k, key));

  write_file(path, "something else\n");
  assert_int_equal(cs_keys_reload(k, &err), CS_EFORMAT);
  assert_true(checks(k, key));

  assert_int_equal(unlink(path), 0);
  assert_int_equal(cs_keys_reload(k, &err), -ENOENT);
  assert_true(checks(k, key));

  assert_int_equal(mkdir(path, 0700), 0); /* read errors, even as root */
  assert_true(cs_keys_reload(k, &err) < 0);
  assert_true(checks(k, key));
  assert_int_equal(rmdir(path), 0);

  write_file(path, good);
  assert_int_equal(cs_keys_reload(k, &err), 0);
  assert_true(checks(k, key));
  assert_int_equal(cs_keys_count(k), 1);
  free(good);
  free(path);
  cs_keys_close(k);
}

/* ---------------------------------------------------------- concurrency */

#define CONC_KEYS 120
#define CONC_CHECKERS 4

static char conc_key[CONC_KEYS][CS_KEY_BYTES + 1];
static char stable_key[CS_KEY_BYTES + 1];
static atomic_int added_upto;   /* keys [0, added_upto) were added */
static atomic_int revoked_upto; /* even keys below it were revoked */
static atomic_bool conc_done;
static atomic_int conc_wrong;
static atomic_long conc_checks;

static void *checker(void *arg) {
  cs_keyring *k = arg;
  unsigned seed = 1;
  while (!atomic_load(&conc_done)) {
    int added = atomic_load(&added_upto);
    int revoked = atomic_load(&revoked_upto);
    const cs_key_info *info = NULL;
    if (cs_keys_check(k, stable_key, CS_KEY_BYTES, &info) != 0 ||
        info->role != CS_ROLE_READ_ONLY)
      atomic_fetch_add(&conc_wrong, 1);
    if (added > 0) {
      int i = (int)(rand_r(&seed) % (unsigned)added);
      bool ok = cs_keys_check(k, conc_key[i], CS_KEY_BYTES, &info) == 0;
      bool revoked_now = i % 2 == 0 && i < revoked;
      bool never_revoked = i % 2 == 1;
      if ((revoked_now && ok) || (never_revoked && !ok))
        atomic_fetch_add(&conc_wrong, 1);
      if (ok && strcmp(info->account, "acme") != 0)
        atomic_fetch_add(&conc_wrong, 1);
    }
    cs_key_info copy;
    size_t n = cs_keys_count(k);
    if (n > 0 && cs_keys_get(k, n - 1, &copy) != 0)
      atomic_fetch_add(&conc_wrong, 1);
    atomic_fetch_add(&conc_checks, 1);
  }
  return NULL;
}

static void test_checks_while_keys_change(void **state) {
  cs_keyring *k = NULL;
  cs_error err = {0};
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  add(k, "acme", CS_ROLE_READ_ONLY, stable_key);
  atomic_store(&added_upto, 0);
  atomic_store(&revoked_upto, 0);
  atomic_store(&conc_done, false);
  atomic_store(&conc_wrong, 0);
  pthread_t t[CONC_CHECKERS];
  for (int i = 0; i < CONC_CHECKERS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, checker, k), 0);
  for (int i = 0; i < CONC_KEYS; i++) {
    add(k, "acme", CS_ROLE_READ_WRITE, conc_key[i]);
    atomic_store(&added_upto, i + 1);
    if (i % 2 == 0) {
      char id[CS_KEY_ID_BYTES + 1];
      memcpy(id, conc_key[i], CS_KEY_ID_BYTES);
      id[CS_KEY_ID_BYTES] = 0;
      assert_int_equal(cs_keys_revoke(k, id, &err), 0);
      atomic_store(&revoked_upto, i + 1);
    }
    if (i % 10 == 9) assert_int_equal(cs_keys_reload(k, &err), 0);
  }
  atomic_store(&conc_done, true);
  for (int i = 0; i < CONC_CHECKERS; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(atomic_load(&conc_wrong), 0);
  assert_true(atomic_load(&conc_checks) > CONC_CHECKERS);
  assert_int_equal(cs_keys_count(k), CONC_KEYS + 1);
  cs_keys_close(k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_admin_role_is_kept_and_read_back,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_role_words, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_file_from_before_admin_keys_loads,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_takes_in_another_writer,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_reload_refuses_a_bad_file_and_keeps_the_ring, setup, teardown),
      cmocka_unit_test_setup_teardown(test_checks_while_keys_change, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
