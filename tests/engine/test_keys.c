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
 * Moving an account: the moving mark answers CS_EMOVING for that
 * account's keys alone, is kept across a reopen and cleared, and its
 * lines (and the account floor's) are refused when malformed; keys
 * exported with their hashes and imported into another ring work there,
 * a repeat is "present", a clash or a malformed entry adds nothing; an
 * account removed takes its keys and mark, and its number is never given
 * again.
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

/* ------------------------------------------------ moving an account */

static void test_keys_moving_mark_is_kept_and_answers_moving(void **state) {
  cs_keyring *k = NULL;
  cs_error err = {0};
  char a[CS_KEY_BYTES + 1], b[CS_KEY_BYTES + 1], ops[CS_KEY_BYTES + 1];
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  add(k, "acme", CS_ROLE_READ_WRITE, a);
  add(k, "beta", CS_ROLE_READ_WRITE, b);
  add(k, "ops", CS_ROLE_ADMIN, ops);
  char *path = keys_file();
  /* A file that never had a mark keeps the format older servers read. */
  assert_null(strstr(read_file(path), "moving"));
  assert_int_equal(cs_keys_set_moving(k, "acme", true, &err), 0);
  const cs_key_info *info = NULL;
  assert_int_equal(cs_keys_check(k, a, CS_KEY_BYTES, &info), CS_EMOVING);
  assert_non_null(info); /* the caller still learns whose key it is */
  assert_string_equal(info->account, "acme");
  assert_int_equal(cs_keys_check(k, b, CS_KEY_BYTES, &info), 0);
  assert_int_equal(cs_keys_check(k, ops, CS_KEY_BYTES, &info), 0);
  assert_non_null(strstr(read_file(path), "\nmoving\tacme\n"));
  uint32_t acme = 0, beta = 0;
  assert_int_equal(cs_keys_account_id(k, "acme", &acme), 0);
  assert_int_equal(cs_keys_account_id(k, "beta", &beta), 0);
  assert_true(cs_keys_moving(k, acme));
  assert_false(cs_keys_moving(k, beta));
  /* Marking twice changes nothing; an unknown account is refused. */
  char *before = strdup(read_file(path));
  assert_int_equal(cs_keys_set_moving(k, "acme", true, &err), 0);
  assert_string_equal(read_file(path), before);
  assert_int_equal(cs_keys_set_moving(k, "nobody", true, &err), CS_EACCOUNT);
  assert_string_equal(read_file(path), before);
  free(before);
  cs_keys_close(k);

  /* Across a restart, and a second mark beside it. */
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  assert_int_equal(cs_keys_check(k, a, CS_KEY_BYTES, &info), CS_EMOVING);
  assert_int_equal(cs_keys_set_moving(k, "beta", true, &err), 0);
  assert_int_equal(cs_keys_set_moving(k, "acme", false, &err), 0);
  assert_int_equal(cs_keys_check(k, a, CS_KEY_BYTES, &info), 0);
  assert_int_equal(cs_keys_check(k, b, CS_KEY_BYTES, &info), CS_EMOVING);
  assert_int_equal(cs_keys_set_moving(k, "beta", false, &err), 0);
  assert_int_equal(cs_keys_check(k, b, CS_KEY_BYTES, &info), 0);
  assert_null(strstr(read_file(path), "moving"));
  /* A revoked key of a moving account is refused as revoked. */
  assert_int_equal(cs_keys_set_moving(k, "acme", true, &err), 0);
  assert_int_equal(cs_keys_revoke(k, a, &err), 0);
  assert_int_equal(cs_keys_check(k, a, CS_KEY_BYTES, &info), CS_EKEY);
  cs_keys_close(k);
  free(path);
}

/* A key line of the oldest format, for account acme number 1. */
#define OLD_KEY_LINE                                                           \
  "ck_AAAAAAAA\t"                                                              \
  "00000000000000000000000000000000"                                           \
  "00000000000000000000000000000000\tacme\t1\trw\t1700000000000\t0\n"

static void test_keys_moving_and_floor_lines_are_checked(void **state) {
  char *path = keys_file();
  cs_keyring *k = NULL;
  cs_error err = {0};
  const char *bad[] = {
      "# contactd keys v1\n" OLD_KEY_LINE "moving\tnobody\n",
      "# contactd keys v1\nmoving\tacme\n" OLD_KEY_LINE, /* named after */
      "# contactd keys v1\n" OLD_KEY_LINE "moving\tacme\nmoving\tacme\n",
      "# contactd keys v1\n" OLD_KEY_LINE "moving\tacme\textra\n",
      "# contactd keys v1\n" OLD_KEY_LINE "account_floor\t0\n",
      "# contactd keys v1\n" OLD_KEY_LINE "account_floor\t65538\n",
      "# contactd keys v1\n" OLD_KEY_LINE "account_floor\t7x\n",
      "# contactd keys v1\n" OLD_KEY_LINE
      "account_floor\t3\naccount_floor\t4\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_file(path, bad[i]);
    assert_int_equal(cs_keys_open(dir, &k, &err), CS_ECORRUPT);
    assert_null(k);
  }
  write_file(path, "# contactd keys v1\n" OLD_KEY_LINE
                   "account\tquiet\t2\nmoving\tquiet\nmoving\tacme\n"
                   "account_floor\t65537\n");
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  assert_true(cs_keys_moving(k, 1));
  assert_true(cs_keys_moving(k, 2));
  /* The floor is past the last number: no account can be made. */
  uint32_t id;
  assert_int_equal(cs_keys_account_ensure(k, "new", &id, &err), CS_EACCOUNT);
  cs_keys_close(k);
  free(path);
}

/* Every key of account in k, with hashes, into v (at most cap). */
static size_t lines_of(const cs_keyring *k, const char *account, cs_key_line *v,
                       size_t cap) {
  size_t n = 0;
  cs_key_line l;
  for (size_t i = 0; cs_keys_get_line(k, i, &l) == 0; i++)
    if (strcmp(l.info.account, account) == 0 && n < cap) v[n++] = l;
  return n;
}

static void
test_keys_import_adds_keys_as_they_are_all_or_nothing(void **state) {
  cs_keyring *src = NULL, *dst = NULL;
  cs_error err = {0};
  char *dir2 = tu_tmpdir();
  char rw[CS_KEY_BYTES + 1], ro[CS_KEY_BYTES + 1], gone[CS_KEY_BYTES + 1];
  char here[CS_KEY_BYTES + 1];
  assert_int_equal(cs_keys_open(dir, &src, &err), 0);
  add(src, "acme", CS_ROLE_READ_WRITE, rw);
  add(src, "acme", CS_ROLE_READ_ONLY, ro);
  add(src, "acme", CS_ROLE_READ_WRITE, gone);
  assert_int_equal(cs_keys_revoke(src, gone, &err), 0);
  cs_key_line v[8];
  size_t n = lines_of(src, "acme", v, 8);
  assert_int_equal(n, 3);
  assert_int_equal(strlen(v[0].hash), CS_KEY_HASH_HEX_BYTES);
  /* The hash is the key's SHA-256, as the file keeps it. */
  assert_non_null(strstr(read_file(cs_keys_path(src)), v[0].hash));

  assert_int_equal(cs_keys_open(dir2, &dst, &err), 0);
  add(dst, "other", CS_ROLE_READ_WRITE, here); /* number 1 here */
  size_t added, present, bad;
  assert_int_equal(
      cs_keys_import(dst, "acme", v, n, &added, &present, &bad, &err), 0);
  assert_int_equal(added, 3);
  assert_int_equal(present, 0);
  /* The same keys work, as the same account, role, time and revocation;
   * the account has this ring's number. */
  const cs_key_info *info = NULL;
  assert_int_equal(cs_keys_check(dst, rw, CS_KEY_BYTES, &info), 0);
  assert_string_equal(info->account, "acme");
  assert_int_equal(info->account_id, 2);
  assert_int_equal(info->created_ms, v[0].info.created_ms);
  assert_int_equal(cs_keys_check(dst, ro, CS_KEY_BYTES, &info), 0);
  assert_int_equal(info->role, CS_ROLE_READ_ONLY);
  assert_int_equal(cs_keys_check(dst, gone, CS_KEY_BYTES, &info), CS_EKEY);
  /* A repeat is "present" and writes nothing. */
  char *before = strdup(read_file(cs_keys_path(dst)));
  assert_int_equal(
      cs_keys_import(dst, "acme", v, n, &added, &present, &bad, &err), 0);
  assert_int_equal(added, 0);
  assert_int_equal(present, 3);
  assert_string_equal(read_file(cs_keys_path(dst)), before);

  /* A clash anywhere adds nothing, not even the good entries before it. */
  cs_key_line more[3];
  char fresh[CS_KEY_BYTES + 1];
  add(src, "acme", CS_ROLE_READ_WRITE, fresh);
  cs_key_line all[8];
  assert_int_equal(lines_of(src, "acme", all, 8), 4);
  more[0] = all[3]; /* new here */
  more[1] = v[0];
  more[1].hash[0] = more[1].hash[0] == 'a' ? 'b' : 'a'; /* same id */
  assert_int_equal(
      cs_keys_import(dst, "acme", more, 2, &added, &present, &bad, &err),
      CS_EKEY);
  assert_int_equal(bad, 1);
  more[1] = v[0];
  memcpy(more[1].info.key_id, "ck_zzzzzzzz", CS_KEY_ID_BYTES); /* same key */
  assert_int_equal(
      cs_keys_import(dst, "acme", more, 2, &added, &present, &bad, &err),
      CS_EKEY);
  /* A key of another account with that id and hash is a clash too. */
  cs_key_line theirs;
  assert_int_equal(lines_of(dst, "other", &theirs, 1), 1);
  snprintf(theirs.info.account, sizeof theirs.info.account, "acme");
  more[1] = theirs;
  assert_int_equal(
      cs_keys_import(dst, "acme", more, 2, &added, &present, &bad, &err),
      CS_EKEY);
  assert_string_equal(read_file(cs_keys_path(dst)), before);
  assert_false(checks(dst, fresh));

  /* Malformed entries, each refused with its index, nothing added. */
  for (int t = 0; t < 7; t++) {
    more[1] = all[3];
    memcpy(more[1].info.key_id, "ck_newkey12", CS_KEY_ID_BYTES);
    cs_key_line *e = &more[1];
    switch (t) {
    case 0:
      memcpy(e->info.key_id, "xx_AAAAAAAA", CS_KEY_ID_BYTES);
      break;
    case 1:
      e->info.key_id[5] = '-';
      break;
    case 2:
      e->hash[10] = 'g';
      break;
    case 3:
      e->hash[63] = 0;
      break;
    case 4:
      e->info.role = (cs_role)9;
      break;
    case 5:
      e->info.created_ms = -1;
      break;
    case 6:
      snprintf(e->info.account, sizeof e->info.account, "beta");
      break;
    }
    assert_int_equal(
        cs_keys_import(dst, "acme", more, 2, &added, &present, &bad, &err),
        CS_EINVAL);
    assert_int_equal(bad, 1);
  }
  more[1] = more[0]; /* the same key id twice */
  assert_int_equal(
      cs_keys_import(dst, "acme", more, 2, &added, &present, &bad, &err),
      CS_EINVAL);
  memcpy(more[1].info.key_id, "ck_newkey12", CS_KEY_ID_BYTES); /* hash */
  assert_int_equal(
      cs_keys_import(dst, "acme", more, 2, &added, &present, &bad, &err),
      CS_EINVAL);
  assert_int_equal(
      cs_keys_import(dst, "a b", more, 1, &added, &present, &bad, &err),
      CS_EACCOUNT);
  assert_string_equal(read_file(cs_keys_path(dst)), before);
  /* No entries: the account is made, with no key. */
  uint32_t id = 0;
  assert_int_equal(
      cs_keys_import(dst, "empty", NULL, 0, &added, &present, &bad, &err), 0);
  assert_int_equal(cs_keys_account_id(dst, "empty", &id), 0);
  free(before);
  cs_keys_close(dst);
  /* What was added is in the file. */
  assert_int_equal(cs_keys_open(dir2, &dst, &err), 0);
  assert_true(checks(dst, rw));
  assert_int_equal(cs_keys_account_id(dst, "empty", &id), 0);
  cs_keys_close(dst);
  cs_keys_close(src);
  tu_rmrf(dir2);
  free(dir2);
}

static void
test_keys_account_remove_takes_keys_and_keeps_the_number(void **state) {
  cs_keyring *k = NULL;
  cs_error err = {0};
  char a1[CS_KEY_BYTES + 1], a2[CS_KEY_BYTES + 1], b[CS_KEY_BYTES + 1];
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  add(k, "beta", CS_ROLE_READ_WRITE, b);
  add(k, "acme", CS_ROLE_READ_WRITE, a1);
  add(k, "acme", CS_ROLE_READ_ONLY, a2);
  assert_int_equal(cs_keys_revoke(k, a2, &err), 0);
  assert_int_equal(cs_keys_set_moving(k, "acme", true, &err), 0);
  const cs_key_info *held = NULL;
  assert_int_equal(cs_keys_check(k, a1, CS_KEY_BYTES, &held), CS_EMOVING);
  size_t removed = 0;
  assert_int_equal(cs_keys_account_remove(k, "acme", &removed, &err), 0);
  assert_int_equal(removed, 2); /* the revoked one too */
  assert_false(checks(k, a1));
  assert_true(checks(k, b));
  assert_string_equal(held->account, "acme"); /* still readable */
  uint32_t id = 0;
  assert_int_equal(cs_keys_account_id(k, "acme", &id), CS_EACCOUNT);
  assert_false(cs_keys_moving(k, 2));
  assert_int_equal(cs_keys_count(k), 1);
  assert_int_equal(cs_keys_account_list(k, NULL, 0), 1);
  assert_int_equal(cs_keys_account_remove(k, "acme", &removed, &err),
                   CS_EACCOUNT);
  char *path = keys_file();
  const char *text = read_file(path);
  assert_null(strstr(text, "acme"));
  assert_non_null(strstr(text, "\naccount_floor\t3\n"));
  /* A new account never gets the removed number, also after a restart. */
  char c[CS_KEY_BYTES + 1];
  cs_key_info info;
  assert_int_equal(cs_keys_add(k, "gamma", CS_ROLE_READ_WRITE, c, &info, &err),
                   0);
  assert_int_equal(info.account_id, 3);
  cs_keys_close(k);
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  assert_int_equal(cs_keys_account_ensure(k, "acme", &id, &err), 0);
  assert_int_equal(id, 4);
  /* An account without keys goes too. */
  assert_int_equal(cs_keys_account_remove(k, "acme", &removed, &err), 0);
  assert_int_equal(removed, 0);
  assert_int_equal(cs_keys_account_id(k, "acme", &id), CS_EACCOUNT);
  assert_non_null(strstr(read_file(path), "\naccount_floor\t5\n"));
  cs_keys_close(k);
  free(path);
}

static void key_id_of(const char *key, char id[CS_KEY_ID_BYTES + 1]) {
  memcpy(id, key, CS_KEY_ID_BYTES);
  id[CS_KEY_ID_BYTES] = 0;
}

/* A thread answers a key it checked before from its cache (keys_cache.c)
 * only while the ring is as it was: every change is seen by the next
 * check, as without the cache. */
static void test_a_cached_check_sees_every_change(void **state) {
  cs_keyring *k = NULL;
  cs_error err = {0};
  char a[CS_KEY_BYTES + 1], b[CS_KEY_BYTES + 1], id[CS_KEY_ID_BYTES + 1];
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  add(k, "acme", CS_ROLE_READ_WRITE, a);
  add(k, "beta", CS_ROLE_READ_WRITE, b);
  const cs_key_info *first = NULL, *again = NULL;
  assert_int_equal(cs_keys_check(k, a, CS_KEY_BYTES, &first), 0);
  assert_int_equal(cs_keys_check(k, a, CS_KEY_BYTES, &again), 0);
  assert_ptr_equal(first, again);
  assert_string_equal(again->account, "acme");
  /* A key one byte off, or a prefix, is not the cached one. */
  char near[CS_KEY_BYTES + 1];
  memcpy(near, a, sizeof near);
  near[CS_KEY_BYTES - 1] = near[CS_KEY_BYTES - 1] == 'x' ? 'y' : 'x';
  assert_false(checks(k, near));
  const cs_key_info *info = NULL;
  assert_int_equal(cs_keys_check(k, a, CS_KEY_BYTES - 1, &info), CS_EKEY);

  key_id_of(a, id);
  assert_int_equal(cs_keys_revoke(k, id, &err), 0);
  assert_false(checks(k, a));

  assert_true(checks(k, b));
  assert_int_equal(cs_keys_set_moving(k, "beta", true, &err), 0);
  assert_int_equal(cs_keys_check(k, b, CS_KEY_BYTES, &info), CS_EMOVING);
  assert_int_equal(cs_keys_check(k, b, CS_KEY_BYTES, &info), CS_EMOVING);
  assert_int_equal(cs_keys_set_moving(k, "beta", false, &err), 0);
  assert_true(checks(k, b));
  size_t removed = 0;
  assert_int_equal(cs_keys_account_remove(k, "beta", &removed, &err), 0);
  assert_int_equal(removed, 1);
  assert_false(checks(k, b));

  /* A reload that takes in another writer's revocation. */
  char c[CS_KEY_BYTES + 1];
  add(k, "gamma", CS_ROLE_READ_ONLY, c);
  assert_true(checks(k, c));
  cs_keyring *ctl = NULL;
  assert_int_equal(cs_keys_open(dir, &ctl, &err), 0);
  key_id_of(c, id);
  assert_int_equal(cs_keys_revoke(ctl, id, &err), 0);
  cs_keys_close(ctl);
  assert_true(checks(k, c)); /* not before the reload */
  assert_int_equal(cs_keys_reload(k, &err), 0);
  assert_false(checks(k, c));
  cs_keys_close(k);

  /* A ring opened after one closed never answers from the closed one's
   * entries (ASan would see a freed info): its own, as its file says. */
  char d[CS_KEY_BYTES + 1];
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  add(k, "delta", CS_ROLE_READ_WRITE, d);
  assert_true(checks(k, d));
  cs_keys_close(k);
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  assert_int_equal(cs_keys_check(k, d, CS_KEY_BYTES, &info), 0);
  assert_string_equal(info->account, "delta");
  assert_false(checks(k, c));
  cs_keys_close(k);
}

/* More keys than a thread's cache holds, checked in turn and half of them
 * revoked: every answer is the ring's. */
static void test_more_keys_than_the_cache_holds(void **state) {
  enum { N = 3 * CS_KEYS_CACHE_SLOTS };
  static char key[N][CS_KEY_BYTES + 1];
  cs_keyring *k = NULL;
  cs_error err = {0};
  assert_int_equal(cs_keys_open(dir, &k, &err), 0);
  for (int i = 0; i < N; i++)
    add(k, "acme", CS_ROLE_READ_WRITE, key[i]);
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < N; i++)
      assert_true(checks(k, key[i]));
  char id[CS_KEY_ID_BYTES + 1];
  for (int i = 0; i < N; i += 2) {
    key_id_of(key[i], id);
    assert_int_equal(cs_keys_revoke(k, id, &err), 0);
  }
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < N; i++)
      assert_int_equal(checks(k, key[i]), i % 2);
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
      cmocka_unit_test_setup_teardown(
          test_keys_moving_mark_is_kept_and_answers_moving, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_keys_moving_and_floor_lines_are_checked, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_keys_import_adds_keys_as_they_are_all_or_nothing, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_keys_account_remove_takes_keys_and_keeps_the_number, setup,
          teardown),
      cmocka_unit_test_setup_teardown(test_a_cached_check_sees_every_change,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_more_keys_than_the_cache_holds,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
