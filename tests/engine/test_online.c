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
 * compacts again and again, its acknowledgements written to a pipe.
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
  unsigned tag; /* in its emails: unique across crews on one store */
  int fd;       /* the crash test's acknowledgements, or -1 */
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
  if (rc) return rc;
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

static void crew_start(crew *c, cs_store *s, int n, unsigned seed) {
  if (!c->w) {
    c->w = calloc((size_t)n, sizeof *c->w);
    c->t = calloc((size_t)n, sizeof *c->t);
    for (int i = 0; i < n; i++) {
      c->w[i].ops = calloc(OPS_MAX, sizeof(op_rec));
      c->w[i].idx = i;
      c->w[i].seed = seed + (unsigned)i;
      c->w[i].tag = seed;
      c->w[i].fd = -1;
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
  crew_start(&c, s, 32, 1);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backup_under_32_writers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
