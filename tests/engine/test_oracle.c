/*
 * test_oracle.c: search answers exactly what a brute-force scan answers.
 *
 * Goal: promise 9. For every field and match mode (suffix on email and
 * phone; refused with the field named elsewhere and for a term shorter
 * than CS_QUERY_SUFFIX_MIN), a search returns the
 * live contacts of the account whose folded value matches, in id order,
 * with the exact total, immediately after each write, and the same after
 * reopening from a snapshot or from the log.
 * The same for the safe writes: every live contact's version, and each
 * account's trash (newest deletion first) against the table; a restore
 * brings back exactly the old fields (the searches find them again), and
 * neither a trashed nor a purged contact is ever found.
 * Method: seeded random creates, edits, upserts, deletes into the trash,
 * purges and restores over three accounts with
 * a small vocabulary (so values collide, share prefixes and words, and
 * differ only by case and accents); a plain table in the test holds the live
 * contacts. After each step, every probe term is searched in every field
 * and mode (walking all pages with a small limit) and compared with a scan
 * of the table using the same folding rules. A failing seed is printed;
 * ORACLE_SEED=n replays it, ORACLE_STEPS=n runs longer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs.h"
#include "fold.h"
#include "store_int.h"
#include "test_util.h"

#define MAXC 400

typedef struct entry {
  uint64_t id;
  uint32_t account;
  bool live;
  bool trashed;               /* deleted, restorable */
  uint64_t version;           /* of the live or trashed contact */
  uint64_t del_tick;          /* when it went to the trash: the list's order */
  char v[CS_FIELD_COUNT][64]; /* "" = absent */
} entry;

static uint64_t tick;

static entry table[MAXC];
static int table_count;

static unsigned rng;
static unsigned rnd(void) {
  rng = rng * 1103515245u + 12345u;
  return (rng >> 16) & 0x7fff;
}

static const char *names[] = {
    "José", "jose", "JOSE",   "Jo",      "Joseph", "Müller",    "Muller",
    "Ann",  "anne", "Straße", "STRASSE", "Zoë",    "zoe smith", "Ann Lee"};
static const char *companies[] = {"Example Inc.", "example inc", "Acme",
                                  "ACME Corp",    "Globex",      "Initech",
                                  "Umbrella"};
static const char *phones[] = {"+1 (234) 567-890", "1234567890", "555 0100",
                               "555-0101", "(555) 010 0"};
static const char *words[] = {"green", "tea",  "coffee", "Café", "met",
                              "fair",  "call", "back",   "TEA",  "vip"};

static const char *pick(const char **list, size_t n) {
  return list[rnd() % n];
}
#define PICK(l) pick(l, sizeof l / sizeof l[0])

static void random_values(entry *e, int index) {
  memset(e->v, 0, sizeof e->v);
  snprintf(e->v[CS_FIRST_NAME], 64, "%s", PICK(names));
  if (rnd() % 3) snprintf(e->v[CS_LAST_NAME], 64, "%s", PICK(names));
  const char *doms[] = {"example.com", "EXAMPLE.com", "mail.io", "x.org"};
  snprintf(e->v[CS_EMAIL], 64, "%s.%d@%s", rnd() % 2 ? "john" : "Ann", index,
           doms[rnd() % 4]);
  if (rnd() % 2) snprintf(e->v[CS_PHONE], 64, "%s", PICK(phones));
  if (rnd() % 4) snprintf(e->v[CS_COMPANY], 64, "%s", PICK(companies));
  if (rnd() % 2) snprintf(e->v[CS_JOB_TITLE], 64, "%s", PICK(names));
  if (rnd() % 2)
    snprintf(e->v[CS_NOTES], 64, "%s %s %s", PICK(words), PICK(words),
             PICK(words));
}

static cs_contact to_contact(const entry *e) {
  cs_contact c;
  memset(&c, 0, sizeof c);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (e->v[f][0]) c.field[f] = (cs_str){e->v[f], strlen(e->v[f])};
  return c;
}

/* --------------------------------------------------- brute-force matching */

struct wordset {
  char w[32][64];
  int n;
};

static int add_word(void *ctx, const char *w, size_t len) {
  struct wordset *s = ctx;
  if (s->n < 32 && len < 64) {
    memcpy(s->w[s->n], w, len);
    s->w[s->n][len] = 0;
    s->n++;
  }
  return 0;
}

static bool has_word(const struct wordset *s, const char *w) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->w[i], w) == 0) return true;
  return false;
}

static bool matches(int field, cs_match m, const char *value,
                    const char *term) {
  if (!value[0]) return false;
  fold_buf fv = {0}, ft = {0};
  bool ok = false;
  if (fold_key(field, value, strlen(value), &fv) ||
      fold_key(field, term, strlen(term), &ft))
    abort();
  if (m == CS_MATCH_DEFAULT)
    m = field == CS_NOTES ? CS_MATCH_WORDS : CS_MATCH_EXACT;
  if (field == CS_PHONE && m == CS_MATCH_WORDS) m = CS_MATCH_EXACT;
  if (ft.len == 0) {
    ok = false;
  } else if (m == CS_MATCH_EXACT) {
    ok = fv.len == ft.len && memcmp(fv.ptr, ft.ptr, ft.len) == 0;
  } else if (m == CS_MATCH_PREFIX) {
    ok = fv.len >= ft.len && memcmp(fv.ptr, ft.ptr, ft.len) == 0;
  } else if (m == CS_MATCH_SUFFIX) {
    ok = fv.len >= ft.len &&
         memcmp(fv.ptr + fv.len - ft.len, ft.ptr, ft.len) == 0;
  } else {
    struct wordset vw = {.n = 0}, tw = {.n = 0};
    fold_words(fv.ptr, fv.len, add_word, &vw);
    fold_words(ft.ptr, ft.len, add_word, &tw);
    ok = tw.n > 0;
    for (int i = 0; i < tw.n && ok; i++)
      ok = has_word(&vw, tw.w[i]);
  }
  fold_buf_free(&fv);
  fold_buf_free(&ft);
  return ok;
}

/* ------------------------------------------------------------- checking */

static const char *probes[] = {
    "jose",    "JOSÉ",        "jo",      "muller",
    "MÜLLER",  "ann",         "ann lee", "strasse",
    "example", "example inc", "acme",    "1234567890",
    "555",     "+1 234",      "tea",     "green tea",
    "cafe",    "example.com", "mail.io", "john",
    "zoe",     "z",           "a",       "x.org",
    "7890",    "0100",        "567-890", "@example.com",
    ".COM",    "e.io",        ".io",     "1@x.org",
    "0101",    "010 0",       "(234)",   "É.ORG"};

/* Whether suffix takes term on field: email and phone only, with at least
 * CS_QUERY_SUFFIX_MIN folded characters (phone: digits). */
static bool suffix_takes(int field, const char *term) {
  if (field != CS_EMAIL && field != CS_PHONE) return false;
  fold_buf ft = {0};
  if (fold_key(field, term, strlen(term), &ft)) abort();
  size_t chars = 0;
  for (size_t i = 0; i < ft.len; i++)
    chars += ((unsigned char)ft.ptr[i] & 0xc0) != 0x80;
  fold_buf_free(&ft);
  return chars >= CS_QUERY_SUFFIX_MIN;
}

static bool check_all(cs_store *s, char *why, size_t why_len) {
  cs_match modes[] = {CS_MATCH_EXACT, CS_MATCH_PREFIX, CS_MATCH_WORDS,
                      CS_MATCH_DEFAULT, CS_MATCH_SUFFIX};
  for (uint32_t acct = 1; acct <= 3; acct++)
    for (int field = 0; field < CS_FIELD_COUNT; field++)
      for (int mi = 0; mi < 5; mi++)
        for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
          const char *term = probes[p];
          if (modes[mi] == CS_MATCH_SUFFIX && !suffix_takes(field, term)) {
            /* Refused, naming the field. */
            cs_query q = {.account = acct,
                          .field = field,
                          .match = CS_MATCH_SUFFIX,
                          .term = term,
                          .term_len = strlen(term)};
            cs_page page;
            cs_error err = {0};
            int rc = cs_search(s, &q, &page, &err);
            if (rc != CS_EINVAL || err.field != field || !err.msg[0]) {
              snprintf(why, why_len, "%s suffix '%s': rc %d field %d",
                       cs_field_name(field), term, rc, err.field);
              if (rc == 0) cs_page_free(&page);
              return false;
            }
            continue;
          }
          /* The expected answer. */
          uint64_t expect[MAXC];
          int ne = 0;
          for (int i = 0; i < table_count; i++)
            if (table[i].live && table[i].account == acct &&
                matches(field, modes[mi], table[i].v[field], term))
              expect[ne++] = table[i].id;
          /* Walk every page. */
          cs_query q = {.account = acct,
                        .field = field,
                        .match = modes[mi],
                        .term = term,
                        .term_len = strlen(term),
                        .limit = 1 + rnd() % 7};
          int got = 0;
          for (;;) {
            cs_page page;
            cs_error err;
            if (cs_search(s, &q, &page, &err)) {
              snprintf(why, why_len, "search failed: %.300s", err.msg);
              return false;
            }
            if (page.total != (uint64_t)ne) {
              snprintf(why, why_len,
                       "%s %d '%s' acct %u: total %llu, "
                       "expected %d",
                       cs_field_name(field), modes[mi], term, acct,
                       (unsigned long long)page.total, ne);
              cs_page_free(&page);
              return false;
            }
            for (uint32_t i = 0; i < page.count; i++, got++) {
              if (got >= ne || page.contacts[i].id != expect[got]) {
                snprintf(why, why_len,
                         "%s %d '%s' acct %u: result %d is "
                         "%llu, expected %llu",
                         cs_field_name(field), modes[mi], term, acct, got,
                         (unsigned long long)page.contacts[i].id,
                         got < ne ? (unsigned long long)expect[got] : 0ull);
                cs_page_free(&page);
                return false;
              }
            }
            bool more = page.more;
            if (page.count) q.after_id = page.contacts[page.count - 1].id;
            cs_page_free(&page);
            if (!more) break;
          }
          if (got != ne) {
            snprintf(why, why_len, "%s %d '%s': walked %d of %d",
                     cs_field_name(field), modes[mi], term, got, ne);
            return false;
          }
        }
  return true;
}

/* Every live contact's version, and each account's trash, newest first. */
static bool check_safe(cs_store *s, char *why, size_t why_len) {
  for (int i = 0; i < table_count; i++) {
    if (!table[i].live) continue;
    cs_contact c;
    cs_error err;
    if (cs_get(s, table[i].account, table[i].id, &c, &err) ||
        c.version != table[i].version) {
      snprintf(why, why_len, "contact %llu: version %llu, expected %llu",
               (unsigned long long)table[i].id, (unsigned long long)c.version,
               (unsigned long long)table[i].version);
      return false;
    }
  }
  for (uint32_t acct = 1; acct <= 3; acct++) {
    int expect[MAXC], ne = 0;
    for (int i = 0; i < table_count; i++)
      if (table[i].trashed && table[i].account == acct) expect[ne++] = i;
    for (int a = 0; a < ne; a++) /* newest deletion first */
      for (int b = a + 1; b < ne; b++)
        if (table[expect[b]].del_tick > table[expect[a]].del_tick) {
          int t = expect[a];
          expect[a] = expect[b];
          expect[b] = t;
        }
    uint64_t before = 0;
    int got = 0;
    for (;;) {
      cs_page pg;
      uint64_t next;
      cs_error err;
      if (cs_trash_list(s, acct, before, 1 + rnd() % 5, &pg, &next, &err)) {
        snprintf(why, why_len, "trash list: %.300s", err.msg);
        return false;
      }
      bool ok = pg.total == (uint64_t)ne;
      for (uint32_t i = 0; ok && i < pg.count; i++, got++) {
        const entry *e = got < ne ? &table[expect[got]] : NULL;
        ok = e && pg.contacts[i].id == e->id &&
             pg.contacts[i].version == e->version &&
             strcmp(tu_field(&pg.contacts[i], CS_EMAIL), e->v[CS_EMAIL]) == 0;
      }
      bool more = pg.more;
      cs_page_free(&pg);
      if (!ok) {
        snprintf(why, why_len, "account %u: trash differs at %d of %d", acct,
                 got, ne);
        return false;
      }
      if (!more) break;
      before = next;
    }
    if (got != ne) {
      snprintf(why, why_len, "account %u: trash walked %d of %d", acct, got,
               ne);
      return false;
    }
  }
  return true;
}

/* Indexes of the entries in a state: live or trashed. */
static int entries_where(bool trashed, int *out) {
  int n = 0;
  for (int i = 0; i < table_count; i++)
    if (trashed ? table[i].trashed : table[i].live) out[n++] = i;
  return n;
}

static int write_one(cs_store *s, cs_write *w, cs_outcome *o) {
  cs_error err;
  int rc = tu_write(s, w, o, &err);
  if (rc) fail_msg("write kind %d: %s", w->kind, err.msg);
  return rc;
}

/* A safe-write step: upsert, delete into the trash, purge or restore. */
static void safe_step(cs_store *s, unsigned r) {
  int live[MAXC], trashed[MAXC];
  int nl = entries_where(false, live), nt = entries_where(true, trashed);
  cs_outcome o;
  if (r == 0 && nl) { /* upsert of an existing email: some fields */
    entry *e = &table[live[rnd() % (unsigned)nl]];
    entry next = *e;
    random_values(&next, (int)(e - table));
    cs_patch p = {.set_mask = 1u << CS_EMAIL};
    p.field[CS_EMAIL] = (cs_str){e->v[CS_EMAIL], strlen(e->v[CS_EMAIL])};
    cs_contact cur;
    cs_error err;
    assert_int_equal(cs_get(s, e->account, e->id, &cur, &err), 0);
    char was[64];
    snprintf(was, sizeof was, "%s", tu_field(&cur, CS_COMPANY));
    if (rnd() % 2) {
      p.set_mask |= 1u << CS_COMPANY;
      snprintf(e->v[CS_COMPANY], 64, "%s",
               next.v[CS_COMPANY][0] ? next.v[CS_COMPANY] : "Acme");
      p.field[CS_COMPANY] =
          (cs_str){e->v[CS_COMPANY], strlen(e->v[CS_COMPANY])};
    }
    bool same = !(p.set_mask & (1u << CS_COMPANY)) ||
                strcmp(was, e->v[CS_COMPANY]) == 0;
    cs_write w = {.kind = CS_WRITE_UPSERT, .account = e->account, .patch = &p};
    write_one(s, &w, &o);
    assert_int_equal(o.id, e->id);
    assert_int_equal(o.result, same ? CS_RESULT_UNCHANGED : CS_RESULT_UPDATED);
    if (!same) e->version++;
  } else if (r == 1 && nl) { /* delete into the trash */
    entry *e = &table[live[rnd() % (unsigned)nl]];
    cs_write w = {.kind = CS_WRITE_DELETE, .account = e->account, .id = e->id};
    write_one(s, &w, &o);
    e->live = false;
    e->trashed = true;
    e->del_tick = ++tick;
  } else if (r == 2 && (nl || nt)) { /* purge, live or from the trash */
    bool from_trash = nt && (!nl || rnd() % 2);
    entry *e = &table[from_trash ? trashed[rnd() % (unsigned)nt]
                                 : live[rnd() % (unsigned)nl]];
    cs_write w = {.kind = CS_WRITE_DELETE,
                  .account = e->account,
                  .id = e->id,
                  .purge = true};
    write_one(s, &w, &o);
    e->live = e->trashed = false;
  } else if (r == 3 && nt) { /* restore */
    entry *e = &table[trashed[rnd() % (unsigned)nt]];
    cs_write w = {.kind = CS_WRITE_RESTORE, .account = e->account, .id = e->id};
    write_one(s, &w, &o);
    assert_int_equal(o.version, e->version + 1);
    e->version++;
    e->live = true;
    e->trashed = false;
  }
}

/* One random step. */
static void step(cs_store *s) {
  cs_error err;
  unsigned r = rnd() % 14;
  if (r >= 10) {
    safe_step(s, r - 10);
    return;
  }
  int live[MAXC], nl = 0;
  for (int i = 0; i < table_count; i++)
    if (table[i].live) live[nl++] = i;
  if (r < 5 || nl == 0) {
    if (table_count == MAXC) return;
    entry *e = &table[table_count];
    random_values(e, table_count);
    e->account = 1 + rnd() % 3;
    cs_contact c = to_contact(e);
    if (tu_create(s, e->account, c, &e->id, &err))
      fail_msg("create: %s", err.msg);
    e->live = true;
    e->trashed = false;
    e->version = 1;
    table_count++;
  } else if (r < 8) {
    entry *e = &table[live[rnd() % (unsigned)nl]];
    entry next = *e;
    random_values(&next, (int)(e - table));
    cs_patch p = {0};
    for (int f = 0; f < CS_FIELD_COUNT; f++) {
      if (rnd() % 2) continue;
      if (next.v[f][0]) {
        p.set_mask |= 1u << f;
        p.field[f] = (cs_str){next.v[f], strlen(next.v[f])};
        memcpy(e->v[f], next.v[f], sizeof e->v[f]);
      } else if (f != CS_FIRST_NAME && f != CS_EMAIL) {
        p.clear_mask |= 1u << f;
        e->v[f][0] = 0;
      }
    }
    if (!(p.set_mask | p.clear_mask)) {
      p.set_mask = 1u << CS_COMPANY;
      snprintf(e->v[CS_COMPANY], 64, "Globex");
      p.field[CS_COMPANY] = (cs_str){"Globex", 6};
    }
    if (tu_update(s, e->account, e->id, p, &err))
      fail_msg("update: %s", err.msg);
    e->version++;
  } else {
    entry *e = &table[live[rnd() % (unsigned)nl]];
    if (tu_delete(s, e->account, e->id, &err)) fail_msg("delete: %s", err.msg);
    e->live = false;
    e->trashed = true;
    e->del_tick = ++tick;
  }
}

static void test_oracle_search_equals_brute_force(void **state) {
  const char *seed_env = getenv("ORACLE_SEED");
  const char *steps_env = getenv("ORACLE_STEPS");
  unsigned seed = seed_env ? (unsigned)atoi(seed_env) : 20261126u;
  int steps = steps_env ? atoi(steps_env) : 300;
  rng = seed;
  table_count = 0;
  tick = 0;
  char *dir = tu_tmpdir();
  cs_options o = {.durability = CS_DURABILITY_NONE};
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  char why[512];
  for (int i = 0; i < steps; i++) {
    step(s);
    if (store_check(s, why, sizeof why) != 0)
      fail_msg("seed %u step %d: store_check: %s", seed, i, why);
    /* Checking everything after every step is quadratic: check often early,
     * then every few steps, and always at the end. */
    if (i < 40 || i % 10 == 0 || i == steps - 1) {
      if (!check_all(s, why, sizeof why) || !check_safe(s, why, sizeof why))
        fail_msg("seed %u step %d: %s (replay with ORACLE_SEED=%u)", seed, i,
                 why, seed);
    }
  }
  /* The same answers from a snapshot and from a full replay. */
  assert_int_equal(cs_close(s, &err), 0);
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  if (!check_all(s, why, sizeof why) || !check_safe(s, why, sizeof why))
    fail_msg("from snapshot: %s", why);
  cs_options replay = o;
  replay.no_snapshot_load = true;
  replay.no_snapshot_on_close = true;
  assert_int_equal(cs_close(s, &err), 0);
  assert_int_equal(cs_open(dir, &replay, &s, &err), 0);
  if (!check_all(s, why, sizeof why) || !check_safe(s, why, sizeof why))
    fail_msg("from the log: %s", why);
  cs_close(s, NULL);
  tu_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_oracle_search_equals_brute_force),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
