/*
 * test_index_mem.c: the inverted indexes' memory as ix_memory_parts counts
 * it, and the threads that build a whole index (ix_par_each).
 *
 * Goal: live inserts after a load (a snapshot, then the writes of a
 * running server) leave little unused capacity: each large array (key
 * arena, entries, hash table, times) ends within about an eighth of what
 * a bulk build of the same contacts holds, posting arrays within about a
 * quarter; the parts add up to ix_memory_bytes; ix_par_each runs every
 * task once and returns a failure of one of them; an index built or
 * loaded on several threads answers as one built on one.
 *
 * Method: a few hundred thousand generated contacts (unique emails and
 * phones, a thousand first names so that their lists are arrays), built
 * in bulk, saved and loaded, then a twentieth more inserted live,
 * compared part by part with a bulk build of all of them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "cs.h"
#include "fold.h"
#include "index.h"
#include "ix_int.h"

#define NF CS_FIELD_COUNT

/* Contacts of the growth test: the live inserts are a twentieth more, so
 * every large array must grow once at least. 300,000 puts the entry
 * arrays (16 bytes a key) past IX_HUGE_MIN, where growth is by an eighth. */
#define BASE_CONTACTS 300000u
#define LIVE_CONTACTS (BASE_CONTACTS / 20)

static void contact(uint32_t i, char email[64], char phone[32], char first[32],
                    cs_str f[NF]) {
  snprintf(email, 64, "someone.%u@company%u.example", i, i % 97);
  snprintf(phone, 32, "+1 555 %07u", i);
  snprintf(first, 32, "Name%u", i % 1000);
  memset(f, 0, sizeof(cs_str) * NF);
  f[CS_EMAIL] = (cs_str){email, strlen(email)};
  f[CS_PHONE] = (cs_str){phone, strlen(phone)};
  f[CS_FIRST_NAME] = (cs_str){first, strlen(first)};
}

static void insert_range(ix_index *ix, uint32_t from, uint32_t to) {
  char email[64], phone[32], first[32];
  cs_str f[NF];
  for (uint32_t i = from; i < to; i++) {
    contact(i, email, phone, first, f);
    assert_int_equal(ix_insert(ix, 1, i, f, 0, 1000 + i, 2000 + i), 0);
  }
}

static ix_index *bulk_built(uint32_t n) {
  ix_index *ix = ix_create();
  assert_non_null(ix);
  ix_bulk_begin(ix);
  assert_true(ix_in_bulk(ix));
  insert_range(ix, 0, n);
  assert_int_equal(ix_bulk_end(ix), 0);
  assert_false(ix_in_bulk(ix));
  return ix;
}

static void check_sound(const ix_index *ix, uint32_t slot_limit) {
  char err[256] = "";
  int rc = ix_check(ix, slot_limit, err, sizeof err);
  if (rc) fail_msg("ix_check: %s", err);
}

static const ix_mem_part *part(const ix_mem_part *p, const char *name) {
  for (int i = 0; i < IX_MEM_DICTS; i++)
    if (!strcmp(p[i].name, name)) return &p[i];
  fail_msg("no part named %s", name);
  return NULL;
}

/* got within want * (1 + num/den) and a little (the fixed minimums) */
static void within(const char *what, size_t got, size_t want, unsigned num,
                   unsigned den) {
  size_t limit = want + want / den * num + 64 * 1024;
  if (got > limit)
    fail_msg("%s: %zu bytes, more than %zu (bulk build: %zu)", what, got, limit,
             want);
}

static void test_mem_growth_after_load_bounded(void **state) {
  (void)state;
  const uint32_t n = BASE_CONTACTS, all = BASE_CONTACTS + LIVE_CONTACTS;
  ix_index *ix = bulk_built(n);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  assert_int_equal(ix_save(ix, &pk), 0);
  ix_destroy(ix);
  msgpack_zone z;
  msgpack_zone_init(&z, 1 << 16);
  msgpack_object obj;
  size_t off = 0;
  assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &z, &obj),
                   MSGPACK_UNPACK_SUCCESS);
  ix_index *lx = ix_create();
  assert_non_null(lx);
  char err[256] = "";
  assert_int_equal(ix_load(lx, &obj, all, err, sizeof err), 0);
  insert_range(lx, n, all);
  check_sound(lx, all);

  ix_index *fresh = bulk_built(all);
  ix_mem_part got[IX_MEM_DICTS], want[IX_MEM_DICTS];
  ix_memory_parts(lx, got);
  ix_memory_parts(fresh, want);
  const char *big[] = {"exact email", "exact phone", "words email"};
  for (int b = 0; b < 3; b++) {
    const ix_mem_part *g = part(got, big[b]), *w = part(want, big[b]);
    char what[64];
    assert_int_equal(g->keys, w->keys);
    snprintf(what, sizeof what, "%s entries", big[b]);
    within(what, g->ents, w->ents, 1, 8);
    snprintf(what, sizeof what, "%s arena", big[b]);
    within(what, g->arena, w->arena, 1, 8);
    /* a table grows to load 0.56 where a bulk build makes 0.7 */
    snprintf(what, sizeof what, "%s hash table", big[b]);
    within(what, g->tab, w->tab, 3, 8);
  }
  /* a thousand first names, 300 slots each: arrays, grown by a quarter */
  within("first_name postings", part(got, "exact first_name")->post,
         part(want, "exact first_name")->post, 2, 8);
  within("times", part(got, "times")->other, part(want, "times")->other, 1, 8);

  /* the parts add up to ix_memory_bytes less the writer's scratch */
  size_t sum = 0;
  for (int i = 0; i < IX_MEM_DICTS; i++)
    sum += got[i].ents + got[i].tab + got[i].arena + got[i].order +
           got[i].post + got[i].other;
  size_t total = ix_memory_bytes(lx);
  assert_true(sum <= total);
  assert_true(total - sum < 64 * 1024);

  /* and the loaded, grown index answers as the fresh one */
  char email[64], phone[32], first[32];
  cs_str f[NF];
  for (uint32_t i = 0; i < all; i += 997) {
    contact(i, email, phone, first, f);
    assert_int_equal(ix_posting_kind(lx, 1, CS_EMAIL, email, strlen(email)),
                     ix_posting_kind(fresh, 1, CS_EMAIL, email, strlen(email)));
    uint32_t a[4], b[4], ca, cb;
    uint64_t ta, tb;
    bool ma, mb;
    assert_int_equal(ix_search(lx, 1, CS_FIRST_NAME, CS_MATCH_EXACT, first,
                               strlen(first), 0, 4, a, &ca, &ta, &ma),
                     0);
    assert_int_equal(ix_search(fresh, 1, CS_FIRST_NAME, CS_MATCH_EXACT, first,
                               strlen(first), 0, 4, b, &cb, &tb, &mb),
                     0);
    assert_int_equal(ta, tb);
    assert_int_equal(ca, cb);
    assert_memory_equal(a, b, ca * sizeof *a);
  }
  ix_destroy(fresh);
  ix_destroy(lx);
  msgpack_zone_destroy(&z);
  msgpack_sbuffer_destroy(&sb);
}

/* Live inserts in random order keep the sorted order's chunks over 80%
 * full (a full chunk spills into a neighbour with room before it splits;
 * splits alone leave about 73%), and the order stays sound: ix_check, and
 * every prefix of a key finds it. */
static void test_mem_live_inserts_keep_chunks_full(void **state) {
  (void)state;
  enum { N = 60000 };
  ix_index *ix = ix_create();
  assert_non_null(ix);
  char email[64];
  static uint32_t perm[N];
  uint64_t r = 88172645463325252ull;
  for (uint32_t k = 0; k < N; k++)
    perm[k] = k;
  for (uint32_t k = N - 1; k > 0; k--) { /* shuffled (xorshift) */
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    uint32_t j = (uint32_t)(r % (k + 1)), t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
  }
  for (uint32_t k = 0; k < N; k++) {
    uint32_t i = perm[k];
    cs_str f[NF] = {{0}};
    snprintf(email, sizeof email, "person%u.%u@x.example", i % 7, i);
    f[CS_EMAIL] = (cs_str){email, strlen(email)};
    assert_int_equal(ix_insert(ix, 1, k, f, 0, 0, 0), 0);
  }
  check_sound(ix, N);
  const ix_dict *d = &ix->exact[CS_EMAIL];
  assert_int_equal(d->live, N);
  double fill = (double)N / ((double)d->nchunks * IX_CHUNK_CAP);
  if (fill < 0.8) fail_msg("chunks %.0f%% full", fill * 100);
  print_message("chunks %.0f%% full\n", fill * 100);
  for (uint32_t i = 0; i < N; i += 541) {
    snprintf(email, sizeof email, "person%u.%u@x.example", i % 7, i);
    uint32_t out[4], count;
    uint64_t total;
    bool more;
    assert_int_equal(ix_search(ix, 1, CS_EMAIL, CS_MATCH_PREFIX, email,
                               strlen(email), 0, 4, out, &count, &total, &more),
                     0);
    assert_int_equal(total, 1);
  }
  ix_destroy(ix);
}

/* ------------------------------------------------------ ix_par_each */

typedef struct par_ctx {
  atomic_int runs[64];
  int fail_at; /* the task that fails, or -1 */
} par_ctx;

static int par_task(void *ctx, size_t i) {
  par_ctx *c = ctx;
  atomic_fetch_add(&c->runs[i], 1);
  return (int)i == c->fail_at ? -ENOMEM : 0;
}

static void test_mem_par_each_runs_each_task_once(void **state) {
  (void)state;
  for (size_t n = 0; n <= 64; n += 7) {
    par_ctx c = {.fail_at = -1};
    assert_int_equal(ix_par_each(n, par_task, &c), 0);
    for (size_t i = 0; i < 64; i++)
      assert_int_equal(atomic_load(&c.runs[i]), i < n ? 1 : 0);
  }
}

static void test_mem_par_each_returns_a_failure(void **state) {
  (void)state;
  for (int at = 0; at < 24; at += 5) {
    par_ctx c = {.fail_at = at};
    assert_int_equal(ix_par_each(24, par_task, &c), -ENOMEM);
    /* no task ran twice, and the failing one ran */
    for (int i = 0; i < 24; i++)
      assert_true(atomic_load(&c.runs[i]) <= 1);
    assert_int_equal(atomic_load(&c.runs[at]), 1);
  }
}

/* A bulk build (its dictionaries on several threads) holds what inserts
 * one by one hold, search for search, and passes ix_check; so does its
 * image loaded (also on several threads). */
static void test_mem_parallel_build_equals_serial(void **state) {
  (void)state;
  enum { N = 20000 };
  ix_index *bulk = bulk_built(N);
  ix_index *one = ix_create();
  assert_non_null(one);
  insert_range(one, 0, N);
  check_sound(bulk, N);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  assert_int_equal(ix_save(bulk, &pk), 0);
  msgpack_zone z;
  msgpack_zone_init(&z, 1 << 16);
  msgpack_object obj;
  size_t off = 0;
  assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &z, &obj),
                   MSGPACK_UNPACK_SUCCESS);
  ix_index *lx = ix_create();
  assert_non_null(lx);
  char err[256] = "";
  assert_int_equal(ix_load(lx, &obj, N, err, sizeof err), 0);
  check_sound(lx, N);
  const ix_index *ixs[3] = {bulk, lx, one};
  const char *terms[] = {"someone.1", "company3", "name12", "+1 555 00001",
                         "someone.19999@company17.example"};
  const int fields[] = {CS_EMAIL, CS_EMAIL, CS_FIRST_NAME, CS_PHONE, CS_EMAIL};
  const cs_match modes[] = {CS_MATCH_PREFIX, CS_MATCH_WORDS, CS_MATCH_PREFIX,
                            CS_MATCH_PREFIX, CS_MATCH_EXACT};
  for (int t = 0; t < 5; t++) {
    uint32_t ref[64], refc = 0;
    uint64_t reft = 0;
    for (int k = 0; k < 3; k++) {
      uint32_t out[64], count;
      uint64_t total;
      bool more;
      assert_int_equal(ix_search(ixs[k], 1, fields[t], modes[t], terms[t],
                                 strlen(terms[t]), 0, 64, out, &count, &total,
                                 &more),
                       0);
      if (!total) fail_msg("no match for %s", terms[t]);
      if (k == 0) {
        memcpy(ref, out, count * sizeof *out);
        refc = count;
        reft = total;
      } else {
        assert_int_equal(total, reft);
        assert_int_equal(count, refc);
        assert_memory_equal(out, ref, count * sizeof *out);
      }
    }
  }
  ix_destroy(lx);
  ix_destroy(one);
  ix_destroy(bulk);
  msgpack_zone_destroy(&z);
  msgpack_sbuffer_destroy(&sb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mem_par_each_runs_each_task_once),
      cmocka_unit_test(test_mem_par_each_returns_a_failure),
      cmocka_unit_test(test_mem_parallel_build_equals_serial),
      cmocka_unit_test(test_mem_live_inserts_keep_chunks_full),
      cmocka_unit_test(test_mem_growth_after_load_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
