/*
 * test_online.c: the online operations of cs.h: cs_backup_* and
 * cs_compact_online, while writers write.
 *
 * Method: writer threads make creates, updates and deletes of their own
 * contacts through cs_write_apply and log every acknowledged write with
 * its sequence number (cs_outcome.seq). Since every write ends up
 * acknowledged, the log folded up to a position is the exact state of the
 * store as of that commit: a backup must hold exactly the log folded up to
 * cs_backup_seq, and a store after an online compaction exactly the whole
 * log, with its change feed equal to the log's entries in order. Crashes
 * are a child process killed with SIGKILL at random moments while it
 * compacts again and again, its acknowledgements written to a pipe, and
 * power lost at random moments through the fault seam (fault_io.h); I/O
 * faults fail each call of each kind in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "cs.h"
#include "fault_io.h"
#include "test_util.h"

#define SEG_BYTES (64u * 1024)
#define OPS_MAX 100000 /* per writer */

/* ------------------------------------------------------------ writers */

enum { OP_CREATE, OP_UPDATE, OP_DELETE };

typedef struct op_rec {
  uint64_t seq, id, version;
  uint32_t account;
  uint8_t kind;
} op_rec;

typedef struct writer {
  cs_store *s;
  int idx;
  int *stop;
  op_rec *ops;
  size_t n; /* acknowledged so far (atomic) */
  uint64_t live[256];
  size_t live_n;
  unsigned seed;
  unsigned tag;       /* in its emails: unique across crews on one store */
  int fd;             /* the crash test's acknowledgements, or -1 */
  uint64_t failed_id; /* the id of a write that failed (0: a create) */
} writer;

static void ack_line(writer *w, const char *fmt, ...) {
  if (w->fd < 0) return;
  char line[160];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  assert_int_equal(write(w->fd, line, (size_t)n), n); /* a pipe: atomic */
}

/* One write: 0 and *o, or the store's refusal. */
static int writer_step(writer *w, size_t k) {
  cs_write wr = {.account = 1 + (uint32_t)(w->idx % 2)};
  cs_contact c;
  cs_patch p = {0};
  char email[64], note[64];
  unsigned r = (unsigned)rand_r(&w->seed) % 10;
  size_t pick = w->live_n ? (size_t)rand_r(&w->seed) % w->live_n : 0;
  if (w->live_n < 4 || r < 6 || (r >= 9 && w->live_n < 8)) {
    snprintf(email, sizeof email, "w%d-%u-%zu@example.com", w->idx, w->tag, k);
    c = tu_contact("Ann", "Writer", email, NULL, "Acme", NULL, NULL);
    wr.kind = CS_WRITE_CREATE;
    wr.contact = &c;
  } else if (r < 9) {
    snprintf(note, sizeof note, "note %zu", k);
    p.set_mask = 1u << CS_NOTES;
    p.field[CS_NOTES] = (cs_str){note, strlen(note)};
    wr.kind = CS_WRITE_UPDATE;
    wr.id = w->live[pick];
    wr.patch = &p;
  } else {
    wr.kind = CS_WRITE_DELETE;
    wr.id = w->live[pick];
  }
  ack_line(w, "I %d %" PRIu64 "\n", (int)wr.kind, wr.id);
  cs_outcome o;
  cs_error err;
  int rc = tu_write(w->s, &wr, &o, &err);
  if (rc) {
    w->failed_id = wr.id;
    return rc;
  }
  op_rec *op = &w->ops[k];
  *op = (op_rec){o.seq, o.id, o.version, wr.account, 0};
  op->kind = wr.kind == CS_WRITE_CREATE   ? OP_CREATE
             : wr.kind == CS_WRITE_UPDATE ? OP_UPDATE
                                          : OP_DELETE;
  if (op->kind == OP_CREATE && w->live_n < 256) w->live[w->live_n++] = o.id;
  if (op->kind == OP_DELETE) w->live[pick] = w->live[--w->live_n];
  ack_line(w, "A %d %" PRIu64 " %" PRIu64 "\n", op->kind, o.id, o.version);
  return 0;
}

static void *writer_main(void *arg) {
  writer *w = arg;
  size_t k = w->n;
  while (!__atomic_load_n(w->stop, __ATOMIC_ACQUIRE) && k < OPS_MAX) {
    if (writer_step(w, k) != 0) break;
    __atomic_store_n(&w->n, ++k, __ATOMIC_RELEASE);
  }
  return NULL;
}

typedef struct crew {
  writer *w;
  pthread_t *t;
  int n;
  int stop;
} crew;

/* Starts n writers on s (again: the same ones go on), their
 * acknowledgements also to fd when it is not -1. */
static void crew_start(crew *c, cs_store *s, int n, unsigned seed, int fd) {
  if (!c->w) {
    c->w = calloc((size_t)n, sizeof *c->w);
    c->t = calloc((size_t)n, sizeof *c->t);
    for (int i = 0; i < n; i++) {
      c->w[i].ops = calloc(OPS_MAX, sizeof(op_rec));
      c->w[i].idx = i;
      c->w[i].seed = seed + (unsigned)i;
      c->w[i].tag = seed;
      c->w[i].fd = fd;
    }
    c->n = n;
  }
  c->stop = 0;
  for (int i = 0; i < c->n; i++) {
    c->w[i].s = s;
    c->w[i].stop = &c->stop;
    assert_int_equal(pthread_create(&c->t[i], NULL, writer_main, &c->w[i]), 0);
  }
}

static void crew_stop(crew *c) {
  __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < c->n; i++)
    pthread_join(c->t[i], NULL);
}

static void crew_free(crew *c) {
  for (int i = 0; i < c->n; i++)
    free(c->w[i].ops);
  free(c->w);
  free(c->t);
}

/* ------------------------------------------------------------ the oracle */

typedef struct expect {
  uint64_t id, version;
  bool live;
} expect;

static int by_seq(const void *a, const void *b) {
  const op_rec *x = a, *y = b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}
static int by_id(const void *a, const void *b) {
  const expect *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Every acknowledged write of the crew, in commit order. */
static op_rec *crew_log(const crew *c, size_t *n) {
  size_t total = 0;
  for (int i = 0; i < c->n; i++)
    total += c->w[i].n;
  op_rec *all = malloc((total + 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < c->n; i++)
    for (size_t j = 0; j < c->w[i].n; j++)
      all[k++] = c->w[i].ops[j];
  qsort(all, total, sizeof *all, by_seq);
  for (size_t i = 1; i < total; i++)
    assert_true(all[i].seq > all[i - 1].seq);
  *n = total;
  return all;
}

typedef struct check_ctx {
  expect *e;
  size_t n;
  uint64_t seen;
} check_ctx;

static int check_one(void *ctx, const cs_contact *c) {
  check_ctx *k = ctx;
  expect key = {.id = c->id};
  expect *e = bsearch(&key, k->e, k->n, sizeof *e, by_id);
  if (!e || !e->live || e->version != c->version) {
    fprintf(stderr,
            "contact %" PRIu64 " v%" PRIu64 ": expected %s v%" PRIu64 "\n",
            c->id, c->version, e ? (e->live ? "live" : "deleted") : "none",
            e ? e->version : 0);
    return 1;
  }
  k->seen++;
  return 0;
}

/* st holds exactly the log's writes up to upto: every contact the log
 * leaves live with its version, nothing else. */
static void expect_state(cs_store *st, const op_rec *log, size_t n,
                         uint64_t upto) {
  expect *e = calloc(n + 1, sizeof *e);
  size_t m = 0;
  for (size_t i = 0; i < n && log[i].seq <= upto; i++)
    if (log[i].kind == OP_CREATE)
      e[m++] = (expect){log[i].id, log[i].version, true};
  qsort(e, m, sizeof *e, by_id);
  uint64_t live = 0;
  for (size_t i = 0; i < n && log[i].seq <= upto; i++) {
    expect key = {.id = log[i].id};
    expect *x = bsearch(&key, e, m, sizeof *x, by_id);
    assert_non_null(x);
    x->version = log[i].version;
    x->live = log[i].kind != OP_DELETE;
  }
  for (size_t i = 0; i < m; i++)
    live += e[i].live;
  check_ctx k = {e, m, 0};
  cs_error err;
  assert_int_equal(cs_iterate(st, CS_ALL_ACCOUNTS, check_one, &k, &err), 0);
  assert_int_equal(k.seen, live);
  free(e);
}

/* The feed of both accounts equals the log's writes, in order. */
static void expect_feed(cs_store *st, const op_rec *log, size_t n) {
  static cs_change got[512];
  for (uint32_t account = 1; account <= 2; account++) {
    size_t at = 0;
    uint64_t after = cs_changes_oldest(st, account);
    for (;;) {
      cs_changes c;
      uint64_t oldest;
      cs_error err;
      assert_int_equal(
          cs_changes_read(st, account, after, 0, got, 512, &c, &oldest, &err),
          0);
      for (uint32_t i = 0; i < c.count; i++) {
        while (at < n && log[at].account != account)
          at++;
        assert_true(at < n);
        assert_int_equal(got[i].seq, log[at].seq);
        assert_int_equal(got[i].id, log[at].id);
        assert_int_equal(got[i].version, log[at].version);
        at++;
      }
      after = c.next;
      if (!c.more) break;
    }
    while (at < n && log[at].account != account)
      at++;
    assert_int_equal(at, n); /* none missing */
  }
}

/* --------------------------------------------------------------- helpers */

static cs_options store_opts(void) {
  return (cs_options){.durability = CS_DURABILITY_FSYNC,
                      .segment_bytes_max = SEG_BYTES,
                      .snapshot_every_bytes = 256 * 1024};
}

static int notices;
static void count_notice(void *ctx, const char *line) {
  (void)ctx;
  fprintf(stderr, "notice: %s\n", line);
  notices++;
}

/* Writes backup b into the new directory dir; returns its seq. */
static uint64_t backup_to(cs_backup *b, const char *dir) {
  assert_int_equal(mkdir(dir, 0700), 0);
  static char buf[65536];
  cs_backup_file f;
  cs_error err;
  int rc, files = 0;
  bool manifest = false;
  while ((rc = cs_backup_next(b, &f, &err)) == 1) {
    assert_null(strchr(f.name, '/'));
    assert_string_not_equal(f.name, "LOCK");
    assert_false(manifest); /* the manifest comes last */
    manifest = strcmp(f.name, "MANIFEST") == 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, f.name);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, f.mode);
    assert_true(fd >= 0);
    uint64_t got = 0;
    long n;
    while ((n = cs_backup_read(b, buf, sizeof buf, &err)) > 0) {
      assert_int_equal(write(fd, buf, (size_t)n), n);
      got += (uint64_t)n;
    }
    assert_int_equal(n, 0);
    assert_int_equal(got, f.size);
    close(fd);
    files++;
  }
  assert_int_equal(rc, 0);
  assert_true(manifest);
  assert_true(files >= 2);
  return cs_backup_seq(b);
}

static void expect_verifies(const char *dir) {
  cs_verify_result vr;
  cs_error err;
  assert_int_equal(cs_admin_verify(dir, NULL, NULL, NULL, &vr, &err), 0);
  assert_int_equal(vr.problems, 0);
}

/* A backup in dir opens without a notice, verifies, and holds exactly the
 * log up to its seq. */
static void expect_backup(const char *dir, uint64_t seq, const op_rec *log,
                          size_t n) {
  cs_options o = store_opts();
  o.notice = count_notice;
  notices = 0;
  cs_store *b;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &b, &err), 0);
  assert_int_equal(notices, 0);
  assert_int_equal(cs_changes_end(b), seq);
  expect_state(b, log, n, seq);
  assert_int_equal(cs_close(b, &err), 0);
  expect_verifies(dir);
}

/* Files in dir whose name ends with suffix. */
static int count_files(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  size_t sl = strlen(suffix);
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    n += l >= sl && strcmp(e->d_name + l - sl, suffix) == 0;
  }
  closedir(d);
  return n;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ backup */

static void test_backup_under_32_writers(void **state) {
  (void)state;
  char *dir = tu_tmpdir();
  cs_options o = store_opts();
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  assert_int_equal(cs_side_write(s, "hooks.side", "x", 1, &err), 0);
  crew c = {0};
  crew_start(&c, s, 32, 1, -1);
  sleep_ms(300);
  /* Everything acknowledged before begin must be in the backup. */
  size_t before[32];
  for (int i = 0; i < 32; i++)
    before[i] = __atomic_load_n(&c.w[i].n, __ATOMIC_ACQUIRE);
  cs_backup *b;
  assert_int_equal(cs_backup_begin(s, &b, &err), 0);
  sleep_ms(200); /* writes go on; the backup does not change */
  char *bdir;
  assert_true(asprintf(&bdir, "%s.backup", dir) > 0);
  uint64_t seq = backup_to(b, bdir);
  cs_backup_end(b);
  crew_stop(&c);
  for (int i = 0; i < 32; i++)
    for (size_t j = 0; j < before[i]; j++)
      assert_true(c.w[i].ops[j].seq <= seq);
  size_t n;
  op_rec *log = crew_log(&c, &n);
  assert_true(log[n - 1].seq > seq); /* writes went on after the pin */
  struct stat st;
  char path[4096];
  snprintf(path, sizeof path, "%s/hooks.side", bdir);
  assert_int_equal(stat(path, &st), 0);
  snprintf(path, sizeof path, "%s/LOCK", bdir);
  assert_int_not_equal(stat(path, &st), 0);
  expect_backup(bdir, seq, log, n);
  expect_state(s, log, n, UINT64_MAX);
  assert_int_equal(cs_close(s, &err), 0);
  free(log);
  crew_free(&c);
  tu_rmrf(bdir);
  tu_rmrf(dir);
  free(bdir);
  free(dir);
}

/* ------------------------------------------------------- online compaction */

typedef struct compact_ctx {
  cs_store *s;
  int rc;
  cs_compact_result res;
  cs_error err;
  int done;
} compact_ctx;

static void *compact_main(void *arg) {
  compact_ctx *k = arg;
  k->rc = cs_compact_online(k->s, NULL, &k->res, &k->err);
  __atomic_store_n(&k->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void test_online_compaction_under_writers(void **state) {
  (void)state;
  char *dir = tu_tmpdir();
  cs_options o = store_opts();
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  crew c = {0};
  crew_start(&c, s, 16, 7, -1);
  sleep_ms(400);
  for (int round = 0; round < 2; round++) {
    /* A backup taken while it runs is whole too. */
    compact_ctx k = {.s = s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, compact_main, &k), 0);
    int backups = 0;
    uint64_t seqs[8];
    char *bdir;
    while (backups < 8 &&
           (!__atomic_load_n(&k.done, __ATOMIC_ACQUIRE) || backups == 0)) {
      cs_backup *b;
      assert_int_equal(cs_backup_begin(s, &b, &err), 0);
      assert_true(asprintf(&bdir, "%s.b%d.%d", dir, round, backups) > 0);
      seqs[backups++] = backup_to(b, bdir);
      cs_backup_end(b);
      free(bdir);
      sleep_ms(30);
    }
    pthread_join(t, NULL);
    if (k.rc) fprintf(stderr, "compaction: %s\n", k.err.msg);
    assert_int_equal(k.rc, 0);
    assert_true(k.res.contacts > 0);
    assert_true(k.res.segments_before > 0 && k.res.segments_after > 0);
    sleep_ms(150);
    crew_stop(&c);
    size_t n;
    op_rec *log = crew_log(&c, &n);
    /* Every acknowledged write is there, with its version; deletes stay
     * deleted; the feed has every change once, in order. */
    expect_state(s, log, n, UINT64_MAX);
    expect_feed(s, log, n);
    for (int i = 0; i < backups; i++) {
      assert_true(asprintf(&bdir, "%s.b%d.%d", dir, round, i) > 0);
      expect_backup(bdir, seqs[i], log, n);
      tu_rmrf(bdir);
      free(bdir);
    }
    assert_int_equal(count_files(dir, ".seg.tmp"), 0);
    char *before = tu_dump(s);
    assert_int_equal(cs_close(s, &err), 0);
    expect_verifies(dir);
    assert_int_equal(cs_open(dir, &o, &s, &err), 0);
    char *after = tu_dump(s);
    assert_string_equal(before, after);
    expect_feed(s, log, n);
    free(before);
    free(after);
    free(log);
    crew_start(&c, s, 16, 0, -1);
    sleep_ms(200);
  }
  crew_stop(&c);
  assert_int_equal(cs_close(s, &err), 0);
  crew_free(&c);
  tu_rmrf(dir);
  free(dir);
}

/* A second compaction while one runs is CS_EBUSY; a failed store refuses. */
typedef struct busy_ctx {
  cs_store *s;
  int rc;
} busy_ctx;

static void busy_progress(void *ctx, uint64_t done, uint64_t total) {
  busy_ctx *b = ctx;
  (void)done;
  (void)total;
  cs_compact_result res;
  cs_error err;
  b->rc = cs_compact_online(b->s, NULL, &res, &err);
}

static void test_online_compaction_busy_and_failed(void **state) {
  (void)state;
  char *dir = tu_tmpdir();
  fault_io f;
  fault_io_init(&f);
  cs_options o = store_opts();
  o.io = &f.io;
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  uint64_t id;
  cs_contact c =
      tu_contact("Bo", NULL, "bo@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(tu_create(s, 1, c, &id, &err), 0);
  busy_ctx b = {s, 0};
  cs_compact_opts co = {.progress = busy_progress, .progress_ctx = &b};
  cs_compact_result res;
  int rc = cs_compact_online(s, &co, &res, &err);
  if (rc) fprintf(stderr, "compaction: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(b.rc, CS_EBUSY);
  /* A contact deleted before it can be restored after it. */
  assert_int_equal(tu_delete(s, 1, id, &err), 0);
  assert_int_equal(cs_compact_online(s, NULL, &res, &err), 0); /* free again */
  assert_int_equal(res.trashed, 1);
  cs_write rw = {.kind = CS_WRITE_RESTORE, .account = 1, .id = id};
  assert_int_equal(tu_write(s, &rw, NULL, &err), 0);
  cs_contact got;
  assert_int_equal(cs_get(s, 1, id, &got, &err), 0);
  /* No bulk load while one runs, and none runs beside a bulk load. */
  assert_int_equal(cs_bulk_begin(s, &err), 0);
  assert_int_equal(cs_compact_online(s, NULL, &res, &err), CS_EBUSY);
  assert_int_equal(cs_bulk_end(s, &err), 0);
  fault_io_arm(&f, FAULT_SYNC, f.calls[FAULT_SYNC] + 1, true, EIO);
  c = tu_contact("Cy", NULL, "cy@example.com", NULL, NULL, NULL, NULL);
  assert_int_not_equal(tu_create(s, 1, c, &id, &err), 0);
  assert_int_equal(cs_compact_online(s, NULL, &res, &err), CS_EFAILED);
  cs_close(s, &err);
  tu_rmrf(dir);
  free(dir);
}

/* A failing call at each step: before the switch the store serves on,
 * unchanged, with the new files gone; at the switch's manifest it refuses
 * writes; either way it reopens whole. */
static void test_online_compaction_faults(void **state) {
  (void)state;
  static const int kinds[] = {FAULT_WRITE, FAULT_SYNC, FAULT_RENAME, FAULT_OPEN,
                              FAULT_DIRSYNC};
  int failed_runs = 0, switched_runs = 0;
  for (size_t ki = 0; ki < sizeof kinds / sizeof *kinds; ki++) {
    for (long nth = 1;; nth++) {
      char *dir = tu_tmpdir();
      fault_io f;
      fault_io_init(&f);
      cs_options o = store_opts();
      o.io = &f.io;
      o.durability = CS_DURABILITY_NONE;
      cs_store *s;
      cs_error err;
      assert_int_equal(cs_open(dir, &o, &s, &err), 0);
      for (int i = 0; i < 300; i++) {
        char email[64];
        snprintf(email, sizeof email, "f%d@example.com", i);
        cs_contact c = tu_contact("Fay", NULL, email, NULL, NULL, NULL, NULL);
        uint64_t id;
        assert_int_equal(tu_create(s, 1, c, &id, &err), 0);
        if (i % 3 == 0) assert_int_equal(tu_delete(s, 1, id, &err), 0);
      }
      char *before = tu_dump(s);
      long base = f.calls[kinds[ki]];
      fault_io_arm(&f, kinds[ki], base + nth, false, EIO);
      cs_compact_result res;
      int rc = cs_compact_online(s, NULL, &res, &err);
      bool reached = f.failures > 0;
      fault_io_arm(&f, -1, 0, false, 0);
      char *now = tu_dump(s);
      assert_string_equal(before, now);
      free(now);
      cs_contact c =
          tu_contact("Gus", NULL, "gus@example.com", NULL, NULL, NULL, NULL);
      uint64_t id;
      int wrc = tu_create(s, 1, c, &id, &err);
      if (rc) {
        failed_runs++;
        if (wrc == 0) { /* the store serves: the new files are gone */
          assert_int_equal(count_files(dir, ".seg.tmp"), 0);
        } else {
          assert_int_equal(wrc, CS_EFAILED); /* the manifest's write */
        }
      } else {
        /* A fault after the switch is reported, or hit the commit
         * thread's write of the queued marker: then the store refuses. */
        if (reached) switched_runs++;
        assert_true(wrc == 0 || wrc == CS_EFAILED);
      }
      cs_close(s, &err);
      expect_verifies(dir);
      o.io = NULL;
      assert_int_equal(cs_open(dir, &o, &s, &err), 0);
      now = tu_dump(s);
      if (wrc == 0) {
        /* before, and Gus */
        assert_non_null(strstr(now, "gus@example.com"));
      } else {
        assert_string_equal(before, now);
      }
      assert_int_equal(count_files(dir, ".seg.tmp"), 0);
      cs_close(s, &err);
      free(now);
      free(before);
      tu_rmrf(dir);
      free(dir);
      if (!reached) break; /* the compaction made fewer calls than nth */
    }
  }
  assert_true(failed_runs > 5);
  (void)switched_runs;
}

/* -------------------------------------------------------------- kill -9 */

/* The child: writers and compaction after compaction until killed. */
static void crash_child(const char *dir, int fd, unsigned seed) {
  cs_options o = store_opts();
  cs_store *s;
  cs_error err;
  if (cs_open(dir, &o, &s, &err) != 0) _exit(3);
  crew c = {0};
  crew_start(&c, s, 8, seed, fd);
  for (;;) {
    cs_compact_result res;
    if (cs_compact_online(s, NULL, &res, &err) != 0) _exit(4);
  }
}

typedef struct acked {
  uint64_t id, version;
  int kind;   /* the last acknowledged write */
  bool later; /* another write of it was sent after */
} acked;

/* The acknowledgements read so far: an open-addressing table by id. */
#define ACKED_SLOTS (1u << 20)
typedef struct acks {
  acked *v;
  char buf[1 << 16];
  size_t have;
} acks;

static acked *acked_at(acks *k, uint64_t id) {
  size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull >> 44) & (ACKED_SLOTS - 1);
  while (k->v[i].id && k->v[i].id != id)
    i = (i + 1) & (ACKED_SLOTS - 1);
  return &k->v[i];
}

/* Takes the whole lines of what fd gave; -1 at its end. */
static int acks_read(acks *k, int fd) {
  ssize_t r = read(fd, k->buf + k->have, sizeof k->buf - 1 - k->have);
  if (r <= 0) return r == 0 ? -1 : 0;
  k->have += (size_t)r;
  k->buf[k->have] = 0;
  char *line = k->buf, *nl;
  while ((nl = strchr(line, '\n'))) {
    *nl = 0;
    int kind;
    uint64_t id, version;
    if (sscanf(line, "A %d %" SCNu64 " %" SCNu64, &kind, &id, &version) == 3) {
      acked *x = acked_at(k, id);
      *x = (acked){id, version, kind, false};
    } else if (sscanf(line, "I %d %" SCNu64, &kind, &id) == 2 && id) {
      acked *x = acked_at(k, id);
      if (x->id) x->later = true;
    }
    line = nl + 1;
  }
  k->have = strlen(line);
  memmove(k->buf, line, k->have);
  return 1;
}

static void test_online_compaction_kill9(void **state) {
  (void)state;
  char *dir = tu_tmpdir();
  unsigned seed = (unsigned)time(NULL);
  fprintf(stderr, "seed %u\n", seed);
  srand(seed);
  acks k = {.v = calloc(ACKED_SLOTS, sizeof(acked))};
  for (int round = 0; round < 6; round++) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      crash_child(dir, p[1], seed * 31u + (unsigned)round * 1000u);
    }
    close(p[1]);
    long ms = 100 + rand() % 900;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    for (long el = 0; el < ms;) {
      if (acks_read(&k, p[0]) == 0) sleep_ms(1);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st)); /* not an early exit of its own */
    fcntl(p[0], F_SETFL, 0);
    while (acks_read(&k, p[0]) >= 0) {
    }
    close(p[0]);
    /* Reopened: whole, and every acknowledged write there. */
    expect_verifies(dir);
    cs_options o = store_opts();
    cs_store *s;
    cs_error err;
    assert_int_equal(cs_open(dir, &o, &s, &err), 0);
    assert_int_equal(count_files(dir, ".seg.tmp"), 0);
    size_t n = 0;
    for (size_t i = 0; i < ACKED_SLOTS; i++) {
      const acked *a = &k.v[i];
      if (!a->id) continue;
      n++;
      cs_contact got;
      int rc = CS_ENOTFOUND;
      for (uint32_t account = 1; account <= 2 && rc == CS_ENOTFOUND; account++)
        rc = cs_get(s, account, a->id, &got, &err);
      if (a->kind == OP_DELETE) {
        assert_int_equal(rc, CS_ENOTFOUND); /* nothing deleted revived */
      } else if (rc == 0) {
        assert_true(got.version >= a->version);
      } else {
        assert_true(a->later); /* deleted after, unacknowledged */
      }
    }
    assert_int_equal(cs_close(s, &err), 0);
    fprintf(stderr, "round %d: killed after %ld ms, %zu contacts acked\n",
            round, ms, n);
  }
  free(k.v);
  tu_rmrf(dir);
  free(dir);
}

/* ------------------------------------------------------------ power cut */

typedef struct loop_ctx {
  cs_store *s;
  int stop;
  int runs;
} loop_ctx;

static void *compact_loop(void *arg) {
  loop_ctx *k = arg;
  while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
    cs_compact_result res;
    cs_error err;
    if (cs_compact_online(k->s, NULL, &res, &err) != 0) break;
    k->runs++;
  }
  return NULL;
}

/* Power lost at a random moment while writers write, compactions run one
 * after the other and a backup is taken: every file cut back to what was
 * synced (and, in two modes, some of the rest kept, or garbage). The store
 * reopens whole with every acknowledged write. */
static void test_online_compaction_power_cut(void **state) {
  (void)state;
  unsigned seed = (unsigned)time(NULL) ^ 0x5bd1e995u;
  fprintf(stderr, "seed %u\n", seed);
  srand(seed);
  for (int round = 0; round < 6; round++) {
    char *dir = tu_tmpdir();
    fault_io f;
    fault_io_init(&f);
    cs_options o = store_opts();
    o.segment_bytes_max = 256 * 1024; /* fewer files than fault_io tracks */
    o.io = &f.io;
    cs_store *s;
    cs_error err;
    assert_int_equal(cs_open(dir, &o, &s, &err), 0);
    crew c = {0};
    crew_start(&c, s, 8, seed + (unsigned)round, -1);
    loop_ctx k = {.s = s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, compact_loop, &k), 0);
    sleep_ms(100 + rand() % 700);
    cs_backup *b;
    if (cs_backup_begin(s, &b, &err) == 0) cs_backup_end(b);
    fault_io_crash(&f);
    __atomic_store_n(&k.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    crew_stop(&c);
    cs_close(s, &err);
    fault_io_power_loss(&f, round % 3, seed + (unsigned)round);
    expect_verifies(dir);
    o.io = NULL;
    assert_int_equal(cs_open(dir, &o, &s, &err), 0);
    size_t n;
    op_rec *log = crew_log(&c, &n);
    /* The last acknowledged write of each id holds, unless the write
     * under way at the cut (not acknowledged) was of it. */
    for (size_t i = n; i-- > 0;) {
      bool newer = false;
      for (size_t j = i + 1; j < n && !newer; j++)
        newer = log[j].id == log[i].id;
      if (newer) continue;
      bool trying = false; /* a write of it failed at the cut */
      for (int w = 0; w < c.n; w++)
        trying |= c.w[w].failed_id == log[i].id;
      cs_contact got;
      int rc = cs_get(s, log[i].account, log[i].id, &got, &err);
      if (log[i].kind == OP_DELETE) {
        if (!trying) assert_int_equal(rc, CS_ENOTFOUND);
      } else if (!trying) {
        assert_int_equal(rc, 0);
        assert_int_equal(got.version, log[i].version);
      }
    }
    assert_int_equal(cs_close(s, &err), 0);
    fprintf(stderr, "round %d: %zu writes, %d compactions before the cut\n",
            round, n, k.runs);
    free(log);
    crew_free(&c);
    tu_rmrf(dir);
    free(dir);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backup_under_32_writers),
      cmocka_unit_test(test_online_compaction_under_writers),
      cmocka_unit_test(test_online_compaction_busy_and_failed),
      cmocka_unit_test(test_online_compaction_faults),
      cmocka_unit_test(test_online_compaction_kill9),
      cmocka_unit_test(test_online_compaction_power_cut),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
