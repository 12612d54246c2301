/*
 * test_feed.c: the change feed (cs.h, "change feed") against a model.
 *
 * Method: seeded random writes of every kind (create, edit, upsert, some
 * of them unchanged, delete, purge, restore) on two accounts, each waited
 * for, with a model that records every acknowledged write as the change
 * it must be (its seq from cs_outcome, its type, version and changed
 * fields). Between writes the store is reopened (from its snapshot, or by
 * a full replay), snapshotted, compacted, or its power is cut through the
 * fault seam. After every step:
 *   - reading each account's feed from the start, in pages of random
 *     sizes, gives exactly the model's changes, in order, each once;
 *   - replaying that feed over an empty copy (each change's contact read
 *     now, as include=contact gives it) ends at the live state, and so
 *     does replaying it from a cursor saved earlier over the copy saved
 *     with it.
 * Then retention (changes older than changes_ms expire with a floor,
 * across restarts and compaction), cursors past the end, type filters and
 * the commit watcher.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cs.h"
#include "fault_io.h"
#include "test_util.h"

#define DAY CS_DAY_MS
#define T0 1800000000000ll
#define ACCOUNTS 2
#define CHANGES_MAX 4096
#define IDS_MAX 512

/* What the model says one change is. */
typedef struct want {
  uint64_t seq, id, version;
  uint32_t account;
  uint8_t type, fields;
} want;

/* One contact as the model has it. */
typedef struct mcontact {
  uint64_t id;
  uint32_t account;
  int state; /* 0 live, 1 trashed, 2 purged */
  uint64_t version;
  char field[CS_FIELD_COUNT][40]; /* "" absent */
} mcontact;

typedef struct fixture {
  char *dir;
  cs_store *s;
  int64_t now;
  cs_options o;
  fault_io fio;
  want wants[CHANGES_MAX];
  size_t nwant;
  mcontact m[IDS_MAX];
  size_t nm;
  /* A cursor saved on the way, with the copy (tu_dump per account) that
   * was live then. */
  uint64_t saved_at;
  char *saved[ACCOUNTS];
  unsigned seed;
} fixture;

static int64_t clock_of(void *ctx) {
  return __atomic_load_n(&((fixture *)ctx)->now, __ATOMIC_RELAXED);
}

static unsigned rnd(fixture *f) {
  f->seed = f->seed * 1103515245u + 12345u;
  return (f->seed >> 8) & 0xffffff;
}

static void open_store(fixture *f, bool from_snapshot) {
  cs_options o = f->o;
  o.no_snapshot_load = !from_snapshot;
  cs_error err;
  if (cs_open(f->dir, &o, &f->s, &err)) fail_msg("open: %s", err.msg);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tmpdir();
  f->now = T0;
  fault_io_init(&f->fio);
  f->o = (cs_options){.durability = CS_DURABILITY_FSYNC,
                      .io = &f->fio.io,
                      .changes_ms = 30 * DAY,
                      .segment_bytes_max = 64 * 1024,
                      .now_ms = clock_of,
                      .now_ctx = f};
  f->seed = 1;
  open_store(f, true);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->s) cs_close(f->s, NULL);
  for (int a = 0; a < ACCOUNTS; a++)
    free(f->saved[a]);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* ------------------------------------------------------------ the model */

static uint8_t set_fields(const mcontact *c) {
  uint8_t m = 0;
  for (int k = 0; k < CS_FIELD_COUNT; k++)
    if (c->field[k][0]) m |= 1u << k;
  return m;
}

static void expect(fixture *f, const cs_outcome *o, uint32_t account, int type,
                   uint8_t fields) {
  assert_true(f->nwant < CHANGES_MAX);
  if (f->nwant) assert_true(o->seq > f->wants[f->nwant - 1].seq);
  f->wants[f->nwant++] =
      (want){o->seq, o->id, o->version, account, (uint8_t)type, fields};
}

/* A random live (state 0) or trashed (1) contact of account, or NULL. */
static mcontact *pick(fixture *f, uint32_t account, int state) {
  size_t n = 0;
  for (size_t i = 0; i < f->nm; i++)
    n += f->m[i].account == account && f->m[i].state == state;
  if (!n) return NULL;
  size_t k = rnd(f) % n;
  for (size_t i = 0; i < f->nm; i++)
    if (f->m[i].account == account && f->m[i].state == state && !k--)
      return &f->m[i];
  return NULL;
}

static const char *const values[] = {"Acme", "Globex", "Initech", "Umbrella"};

/* One random write, waited for, and what the model expects of it. */
static void random_write(fixture *f) {
  uint32_t account = rnd(f) % ACCOUNTS;
  unsigned kind = rnd(f) % 10;
  cs_outcome o;
  cs_error err = {0};
  mcontact *c = NULL;
  if (kind < 3 || f->nm == 0) { /* create */
    if (f->nm == IDS_MAX) return;
    char email[40];
    snprintf(email, sizeof email, "p%zu@x%u.io", f->nm, account);
    cs_contact nc = tu_contact("Pat", rnd(f) % 2 ? "Lee" : NULL, email, NULL,
                               values[rnd(f) % 4], NULL, NULL);
    cs_write w = {.kind = CS_WRITE_CREATE, .account = account, .contact = &nc};
    assert_int_equal(tu_write(f->s, &w, &o, &err), 0);
    mcontact *m = &f->m[f->nm++];
    memset(m, 0, sizeof *m);
    m->id = o.id;
    m->account = account;
    m->version = 1;
    snprintf(m->field[CS_FIRST_NAME], sizeof m->field[0], "Pat");
    if (nc.field[CS_LAST_NAME].ptr)
      snprintf(m->field[CS_LAST_NAME], sizeof m->field[0], "Lee");
    snprintf(m->field[CS_EMAIL], sizeof m->field[0], "%s", email);
    snprintf(m->field[CS_COMPANY], sizeof m->field[0], "%.*s",
             (int)nc.field[CS_COMPANY].len, nc.field[CS_COMPANY].ptr);
    expect(f, &o, account, CS_CHANGE_CREATED, set_fields(m));
  } else if (kind < 6 && (c = pick(f, account, 0))) { /* edit or upsert */
    mcontact before = *c;
    cs_patch p = {0};
    const char *v = values[rnd(f) % 4];
    p.set_mask = 1u << CS_COMPANY;
    p.field[CS_COMPANY] = (cs_str){v, strlen(v)};
    if (rnd(f) % 3 == 0) {
      if (c->field[CS_LAST_NAME][0])
        p.clear_mask = 1u << CS_LAST_NAME;
      else
        p.set_mask |= 1u << CS_JOB_TITLE,
            p.field[CS_JOB_TITLE] = (cs_str){"CTO", 3};
    }
    bool upsert = rnd(f) % 2;
    cs_write w = {.kind = upsert ? CS_WRITE_UPSERT : CS_WRITE_UPDATE,
                  .account = account,
                  .id = c->id,
                  .patch = &p};
    if (upsert) {
      p.set_mask |= 1u << CS_EMAIL;
      p.field[CS_EMAIL] =
          (cs_str){c->field[CS_EMAIL], strlen(c->field[CS_EMAIL])};
    }
    assert_int_equal(tu_write(f->s, &w, &o, &err), 0);
    snprintf(c->field[CS_COMPANY], sizeof c->field[0], "%s", v);
    if (p.clear_mask) c->field[CS_LAST_NAME][0] = 0;
    if (p.set_mask & (1u << CS_JOB_TITLE))
      snprintf(c->field[CS_JOB_TITLE], sizeof c->field[0], "CTO");
    uint8_t changed = 0;
    for (int k = 0; k < CS_FIELD_COUNT; k++)
      if (strcmp(before.field[k], c->field[k])) changed |= 1u << k;
    if (upsert && !changed) {
      assert_int_equal(o.result, CS_RESULT_UNCHANGED);
      assert_true(o.seq <= cs_changes_end(f->s)); /* no change: the end */
      return;
    }
    c->version++;
    expect(f, &o, account, CS_CHANGE_UPDATED, changed);
  } else if (kind < 8 && (c = pick(f, account, 0))) { /* delete or purge */
    bool purge = rnd(f) % 3 == 0;
    cs_write w = {.kind = CS_WRITE_DELETE,
                  .account = account,
                  .id = c->id,
                  .purge = purge};
    assert_int_equal(tu_write(f->s, &w, &o, &err), 0);
    c->state = purge ? 2 : 1;
    expect(f, &o, account, purge ? CS_CHANGE_PURGED : CS_CHANGE_DELETED, 0);
  } else if ((c = pick(f, account, 1))) { /* restore or purge the trash */
    bool purge = rnd(f) % 2;
    cs_write w = {.kind = purge ? CS_WRITE_DELETE : CS_WRITE_RESTORE,
                  .account = account,
                  .id = c->id,
                  .purge = purge};
    int rc = tu_write(f->s, &w, &o, &err);
    if (rc == CS_EDUPLICATE) return; /* its email was taken meanwhile */
    assert_int_equal(rc, 0);
    if (purge) {
      c->state = 2;
      expect(f, &o, account, CS_CHANGE_PURGED, 0);
    } else {
      c->state = 0;
      c->version++;
      expect(f, &o, account, CS_CHANGE_RESTORED, 0);
    }
  }
}

/* ------------------------------------------------------------ checking */

/* Every change of account after cursor, in pages of random sizes. */
static size_t read_all(fixture *f, uint32_t account, uint64_t after,
                       cs_change *out, size_t cap) {
  size_t n = 0;
  for (;;) {
    uint32_t limit = 1 + rnd(f) % 50;
    cs_changes got;
    cs_error err;
    assert_true(n + limit <= cap);
    int rc = cs_changes_read(f->s, account, after, 0, out + n, limit, &got,
                             NULL, &err);
    if (rc) fail_msg("read after %llu: %s", (unsigned long long)after, err.msg);
    n += got.count;
    assert_true(got.next >= after);
    after = got.next;
    if (!got.more) return n;
  }
}

/* A copy of the live contacts of account as one text, from the feed: each
 * change's contact as it is now goes in, or out when it is gone. */
typedef struct copy {
  uint64_t ids[IDS_MAX];
  size_t n;
} copy;

static void copy_apply(copy *c, const cs_change *ch, bool live_now) {
  size_t i = 0;
  while (i < c->n && c->ids[i] != ch->id)
    i++;
  if (live_now && i == c->n) c->ids[c->n++] = ch->id;
  if (!live_now && i < c->n) c->ids[i] = c->ids[--c->n];
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The text of the contacts in c, as tu_dump writes a store's. */
static char *copy_text(fixture *f, uint32_t account, copy *c) {
  qsort(c->ids, c->n, sizeof c->ids[0], cmp_u64);
  size_t cap = 1 << 16, len = 0;
  char *out = calloc(1, cap);
  for (size_t i = 0; i < c->n; i++) {
    cs_contact k;
    cs_error err;
    assert_int_equal(cs_get(f->s, account, c->ids[i], &k, &err), 0);
    len += (size_t)snprintf(out + len, cap - len, "%llu v%llu",
                            (unsigned long long)k.id,
                            (unsigned long long)k.version);
    for (int x = 0; x < CS_FIELD_COUNT; x++)
      len += (size_t)snprintf(out + len, cap - len, " %s", tu_field(&k, x));
    len += (size_t)snprintf(out + len, cap - len, "\n");
  }
  return out;
}

static int dump_one(void *ctx, const cs_contact *k) {
  copy *c = ctx;
  c->ids[c->n++] = k->id;
  return 0;
}

/* The live state of account, in copy_text's form. */
static char *live_text(fixture *f, uint32_t account) {
  copy c = {.n = 0};
  cs_error err;
  assert_int_equal(cs_iterate(f->s, account, dump_one, &c, &err), 0);
  return copy_text(f, account, &c);
}

/* Replays account's feed after cursor over the ids in start. */
static char *replayed(fixture *f, uint32_t account, uint64_t after,
                      copy *start) {
  static cs_change got[CHANGES_MAX + 64];
  size_t n = read_all(f, account, after, got, sizeof got / sizeof got[0]);
  for (size_t i = 0; i < n; i++) {
    cs_contact k;
    cs_error err;
    bool live = cs_get(f->s, account, got[i].id, &k, &err) == 0;
    copy_apply(start, &got[i], live);
  }
  return copy_text(f, account, start);
}

static void check_feed(fixture *f, const char *when) {
  static cs_change got[CHANGES_MAX + 64];
  for (uint32_t a = 0; a < ACCOUNTS; a++) {
    size_t n = read_all(f, a, 0, got, sizeof got / sizeof got[0]);
    size_t k = 0;
    for (size_t i = 0; i < f->nwant; i++) {
      const want *w = &f->wants[i];
      if (w->account != a) continue;
      if (k >= n)
        fail_msg("%s: account %u: change seq %llu missing", when, a,
                 (unsigned long long)w->seq);
      const cs_change *c = &got[k++];
      if (c->seq != w->seq || c->id != w->id || c->type != w->type ||
          c->version != w->version || c->fields != w->fields ||
          c->account != a || c->at_ms != f->now)
        fail_msg("%s: account %u: change %zu is seq %llu %s id %llu v%llu "
                 "fields %x; the model says seq %llu %s id %llu v%llu fields "
                 "%x",
                 when, a, k - 1, (unsigned long long)c->seq,
                 cs_change_type_name(c->type), (unsigned long long)c->id,
                 (unsigned long long)c->version, c->fields,
                 (unsigned long long)w->seq, cs_change_type_name(w->type),
                 (unsigned long long)w->id, (unsigned long long)w->version,
                 w->fields);
    }
    if (k != n)
      fail_msg("%s: account %u: %zu changes more than made", when, a, n - k);
    char *live = live_text(f, a);
    copy empty = {.n = 0};
    char *from_start = replayed(f, a, 0, &empty);
    if (strcmp(live, from_start))
      fail_msg("%s: account %u: the feed replayed from the start gives\n%s\n"
               "the store holds\n%s",
               when, a, from_start, live);
    if (f->saved[a]) {
      /* The ids of the copy saved with the cursor, from its text. */
      copy start = {.n = 0};
      for (const char *p = f->saved[a]; *p; p = strchr(p, '\n') + 1)
        start.ids[start.n++] = strtoull(p, NULL, 10);
      char *from_saved = replayed(f, a, f->saved_at, &start);
      if (strcmp(live, from_saved))
        fail_msg("%s: account %u: the feed replayed from cursor %llu gives\n"
                 "%s\nthe store holds\n%s",
                 when, a, (unsigned long long)f->saved_at, from_saved, live);
      free(from_saved);
    }
    free(from_start);
    free(live);
  }
}

static void save_cursor(fixture *f) {
  f->saved_at = cs_changes_end(f->s);
  for (uint32_t a = 0; a < ACCOUNTS; a++) {
    free(f->saved[a]);
    f->saved[a] = live_text(f, a);
  }
}

static void compact(fixture *f) {
  cs_error err;
  assert_int_equal(cs_close(f->s, &err), 0);
  f->s = NULL;
  cs_compact_opts o = {.io = &f->fio.io,
                       .changes_ms = f->o.changes_ms,
                       .now_ms = clock_of,
                       .now_ctx = f};
  cs_compact_result res;
  if (cs_admin_compact(f->dir, &o, NULL, NULL, &res, &err))
    fail_msg("compact: %s", err.msg);
  open_store(f, true);
}

/* Cuts the power: what was synced survives (every acknowledged write). */
static void power_cut(fixture *f) {
  fault_io_crash(&f->fio);
  cs_close(f->s, NULL); /* fails: the seam refuses everything now */
  f->s = NULL;
  fault_io_power_loss(&f->fio, (int)(rnd(f) % 3), f->seed);
  fault_io_init(&f->fio);
  open_store(f, rnd(f) % 2);
}

static void test_feed_oracle(void **state) {
  fixture *f = *state;
  const char *env = getenv("FEED_SEED");
  unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : 20261201u;
  f->seed = seed;
  for (int step = 0; step < 40; step++) {
    int writes = 1 + (int)(rnd(f) % 30);
    for (int i = 0; i < writes; i++)
      random_write(f);
    const char *what;
    switch (rnd(f) % 6) {
    case 0:
      what = "reopen from the snapshot";
      cs_close(f->s, NULL);
      open_store(f, true);
      break;
    case 1:
      what = "reopen by a full replay";
      cs_close(f->s, NULL);
      open_store(f, false);
      break;
    case 2: {
      what = "snapshot";
      cs_error err;
      assert_int_equal(cs_snapshot(f->s, &err), 0);
      break;
    }
    case 3:
      what = "compaction";
      compact(f);
      break;
    case 4:
      what = "power cut";
      power_cut(f);
      break;
    default:
      what = "writes";
      break;
    }
    check_feed(f, what);
    if (rnd(f) % 4 == 0) save_cursor(f);
  }
  print_message("feed oracle: %zu changes, seed %u (FEED_SEED)\n", f->nwant,
                seed);
}

/* -------------------------------------------------------------- retention */

static uint64_t make(fixture *f, uint32_t account, const char *email) {
  cs_contact c = tu_contact("Ann", NULL, email, NULL, NULL, NULL, NULL);
  cs_write w = {.kind = CS_WRITE_CREATE, .account = account, .contact = &c};
  cs_outcome o;
  cs_error err;
  assert_int_equal(tu_write(f->s, &w, &o, &err), 0);
  return o.seq;
}

static void expect_expired(fixture *f, uint64_t after, uint64_t oldest_want) {
  cs_change v[8];
  cs_changes got;
  uint64_t oldest = 0;
  cs_error err;
  assert_int_equal(
      cs_changes_read(f->s, 0, after, 0, v, 8, &got, &oldest, &err),
      CS_EEXPIRED);
  assert_int_equal(oldest, oldest_want);
  assert_int_equal(cs_changes_oldest(f->s, 0), oldest_want);
  assert_int_equal(
      cs_changes_read(f->s, 0, oldest, 0, v, 8, &got, &oldest, &err), 0);
  assert_int_equal(got.count, 2); /* the two inside the window */
  assert_false(got.more);
}

static void test_feed_retention_across_restart_and_compaction(void **state) {
  fixture *f = *state;
  f->o.changes_ms = 3 * DAY;
  cs_close(f->s, NULL);
  open_store(f, true);
  uint64_t old1 = make(f, 0, "a@x.io");
  uint64_t old2 = make(f, 0, "b@x.io");
  make(f, 1, "c@x.io"); /* another account's: its own window */
  f->now += 2 * DAY;
  uint64_t young = make(f, 0, "d@x.io");
  f->now += 2 * DAY;    /* the first two are 4 days old, the third 2 */
  make(f, 0, "e@x.io"); /* the write drops what passed the window */
  /* Within the window a cursor works; before it, it has expired. */
  cs_change v[8];
  cs_changes got;
  cs_error err;
  assert_int_equal(cs_changes_read(f->s, 0, old2, 0, v, 8, &got, NULL, &err),
                   0);
  assert_int_equal(got.count, 2);
  assert_int_equal(v[0].seq, young);
  expect_expired(f, 0, old2);
  expect_expired(f, old1, old2);
  cs_close(f->s, NULL);
  open_store(f, true);
  expect_expired(f, 0, old2);
  cs_close(f->s, NULL);
  open_store(f, false);
  expect_expired(f, old1, old2);
  compact(f);
  expect_expired(f, 0, old2);
  /* Account 1 wrote nothing since: open dropped its change too. */
  assert_int_equal(cs_changes_read(f->s, 1, 0, 0, v, 8, &got, NULL, &err),
                   CS_EEXPIRED);
  /* Past the end is no cursor of ours. */
  uint64_t end = cs_changes_end(f->s);
  assert_int_equal(cs_changes_read(f->s, 0, end + 1, 0, v, 8, &got, NULL, &err),
                   CS_ECURSOR);
  assert_int_equal(cs_changes_read(f->s, 0, end, 0, v, 8, &got, NULL, &err), 0);
  assert_int_equal(got.count, 0);
  assert_int_equal(got.next, end);
}

/* ------------------------------------------------------ types, watchers */

typedef struct seen {
  uint64_t last;
  int calls;
} seen;

static void watch(void *ctx, uint64_t end) {
  seen *s = ctx;
  s->last = end;
  s->calls++;
}

static void test_feed_types_and_watchers(void **state) {
  fixture *f = *state;
  seen w = {0, 0};
  assert_int_equal(cs_watch_add(f->s, watch, &w), 0);
  uint64_t a = make(f, 0, "a@x.io");
  assert_int_equal(w.last, a); /* called before the write's completion */
  cs_outcome o;
  cs_error err;
  cs_write del = {.kind = CS_WRITE_DELETE, .account = 0, .id = 0};
  cs_change v[8];
  cs_changes got;
  assert_int_equal(cs_changes_read(f->s, 0, 0, 0, v, 8, &got, NULL, &err), 0);
  del.id = v[0].id;
  assert_int_equal(tu_write(f->s, &del, &o, &err), 0);
  assert_int_equal(w.last, o.seq);
  make(f, 0, "b@x.io");
  /* Only deletes: one, and the next cursor is the end (nothing to scan
   * again). */
  assert_int_equal(cs_changes_read(f->s, 0, 0, 1u << CS_CHANGE_DELETED, v, 8,
                                   &got, NULL, &err),
                   0);
  assert_int_equal(got.count, 1);
  assert_int_equal(v[0].seq, o.seq);
  assert_int_equal(v[0].version, 1);
  assert_int_equal(got.next, cs_changes_end(f->s));
  /* A page of one with more after it ends at its change. */
  assert_int_equal(cs_changes_read(f->s, 0, 0, 0, v, 1, &got, NULL, &err), 0);
  assert_true(got.more);
  assert_int_equal(got.next, a);
  assert_int_equal(cs_changes_read(f->s, 0, 0, 1u << 7, v, 1, &got, NULL, &err),
                   CS_EINVAL);
  cs_watch_remove(f->s, watch, &w);
  int calls = w.calls;
  make(f, 0, "c@x.io");
  assert_int_equal(w.calls, calls);
  /* The watcher table holds CS_WATCHERS_MAX. */
  seen many[CS_WATCHERS_MAX + 1];
  for (int i = 0; i < CS_WATCHERS_MAX; i++)
    assert_int_equal(cs_watch_add(f->s, watch, &many[i]), 0);
  assert_int_equal(cs_watch_add(f->s, watch, &many[CS_WATCHERS_MAX]),
                   CS_EINVAL);
  for (int i = 0; i < CS_WATCHERS_MAX; i++)
    cs_watch_remove(f->s, watch, &many[i]);
}

/* Side files: names are checked, contents round-trip, absence is said. */
static void test_feed_side_files(void **state) {
  fixture *f = *state;
  cs_error err;
  uint8_t *data;
  size_t len;
  assert_int_equal(cs_side_read(f->s, "hooks.side", &data, &len, &err),
                   CS_ENOTFOUND);
  assert_int_equal(cs_side_write(f->s, "hooks.side", "abc", 3, &err), 0);
  assert_int_equal(cs_side_read(f->s, "hooks.side", &data, &len, &err), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(data, "abc", 3);
  free(data);
  assert_int_equal(cs_side_write(f->s, "manifest", "x", 1, &err), CS_EINVAL);
  assert_int_equal(cs_side_write(f->s, "../x.side", "x", 1, &err), CS_EINVAL);
  assert_int_equal(cs_side_write(f->s, ".side", "x", 1, &err), CS_EINVAL);
  char name[CS_SIDE_NAME_MAX_BYTES + 2];
  memset(name, 'a', sizeof name);
  memcpy(name + CS_SIDE_NAME_MAX_BYTES - 5, ".side", 6); /* at the limit */
  assert_int_equal(cs_side_write(f->s, name, "x", 1, &err), 0);
  memset(name, 'a', sizeof name);
  memcpy(name + CS_SIDE_NAME_MAX_BYTES - 4, ".side", 6); /* one past */
  assert_int_equal(cs_side_write(f->s, name, "x", 1, &err), CS_EINVAL);
  /* A side file survives a reopen and is no stray. */
  cs_close(f->s, NULL);
  open_store(f, true);
  assert_int_equal(cs_side_read(f->s, "hooks.side", &data, &len, &err), 0);
  free(data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_feed_oracle, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_feed_retention_across_restart_and_compaction, setup, teardown),
      cmocka_unit_test_setup_teardown(test_feed_types_and_watchers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_feed_side_files, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
