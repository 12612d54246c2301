/*
 * test_admin.c: the offline operations behind contactctl (engine/admin.c).
 *
 * Goal: DESIGN promises 4, 5 and 6 as the admin tool sees them. Compaction
 * keeps every live contact, brings back no deleted one, never lets an id be
 * given twice, and shrinks a store full of garbage; a crash or an I/O
 * failure at any step of it leaves the old store or the new one, whole.
 * Verify finds a flipped byte, a truncated snapshot and an index entry
 * pointing at the wrong record, and a contact's version going back along
 * the log, naming file and offset; salvage rewrites a damaged store around
 * the damage and says where it was. Every operation
 * refuses a directory another process holds.
 * Method: real stores in temporary directories with small segments; the
 * fault_io seam, wrapped so that "crash at call N" counts calls of every
 * kind, for every N a compaction makes; after each, a power loss drops what
 * was not synced, and the reopened store is compared with tu_dump of the
 * original and verified.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin.h"
#include "cs.h"
#include "dir.h"
#include "fault_io.h"
#include "record.h"
#include "store_int.h"
#include "test_util.h"

#define SEG_BYTES (8 * 1024)

static void quiet(void *ctx, const char *line) {}

/* Findings collected as text, one a line. */
typedef struct found {
  char text[16384];
  int problems;
  int notes;
} found;

static void collect(void *ctx, const cs_finding *f) {
  found *fd = ctx;
  size_t n = strlen(fd->text);
  snprintf(fd->text + n, sizeof fd->text - n, "%s %s@%lld: %s\n",
           f->problem ? "P" : "N", f->file, (long long)f->offset, f->msg);
  if (f->problem)
    fd->problems++;
  else
    fd->notes++;
}

static cs_store *open_store(const char *dir, const cs_io *io) {
  cs_options o = {.segment_bytes_max = SEG_BYTES,
                  .io = io,
                  .notice = quiet,
                  .durability = CS_DURABILITY_NONE};
  cs_store *s = NULL;
  cs_error err;
  if (cs_open(dir, &o, &s, &err) != 0) {
    fprintf(stderr, "open %s: %s\n", dir, err.msg);
    return NULL;
  }
  return s;
}

/* A store with garbage: n contacts, every third edited twice, every other
 * one deleted, and the highest id deleted (so only the meta record keeps
 * the id floor). Returns the highest id ever given. */
static uint64_t fill(const char *dir, int n) {
  cs_store *s = open_store(dir, NULL);
  assert_non_null(s);
  uint64_t *ids = calloc((size_t)n, sizeof *ids);
  cs_error err;
  for (int i = 0; i < n; i++) {
    char first[32], email[64], notes[64];
    snprintf(first, sizeof first, "Name%d", i);
    snprintf(email, sizeof email, "p%d@example.com", i);
    snprintf(notes, sizeof notes, "note word%d, \"quoted\"\nline", i % 7);
    cs_contact c = tu_contact(first, i % 2 ? "Müller" : NULL, email,
                              "+1 555 0100", "Acme, Inc.", NULL, notes);
    assert_int_equal(tu_create(s, 1 + (uint32_t)(i % 2), c, &ids[i], &err), 0);
  }
  for (int i = 0; i < n; i += 3) {
    for (int k = 0; k < 2; k++) {
      cs_patch p = {.set_mask = 1u << CS_COMPANY};
      p.field[CS_COMPANY] = (cs_str){k ? "Other" : "Edited", k ? 5 : 6};
      assert_int_equal(tu_update(s, 1 + (uint32_t)(i % 2), ids[i], p, &err), 0);
    }
  }
  for (int i = 0; i < n; i += 2)
    assert_int_equal(tu_delete(s, 1 + (uint32_t)(i % 2), ids[i], &err), 0);
  if ((n - 1) % 2)
    assert_int_equal(
        tu_delete(s, 1 + (uint32_t)((n - 1) % 2), ids[n - 1], &err), 0);
  uint64_t top = ids[n - 1];
  free(ids);
  assert_int_equal(cs_close(s, &err), 0);
  return top;
}

static char *dump_of(const char *dir) {
  cs_store *s = open_store(dir, NULL);
  if (!s) return NULL;
  char *d = tu_dump(s);
  cs_error err;
  cs_close(s, &err);
  return d;
}

static uint64_t dir_bytes(const char *dir) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "du -sb %s", dir);
  FILE *p = popen(cmd, "r");
  unsigned long long n = 0;
  if (p) {
    if (fscanf(p, "%llu", &n) != 1) n = 0;
    pclose(p);
  }
  return n;
}

static int verify_dir(const char *dir, found *fd) {
  cs_verify_result res;
  cs_error err;
  memset(fd, 0, sizeof *fd);
  int rc = cs_admin_verify(dir, NULL, collect, fd, &res, &err);
  if (rc) return rc;
  return (int)res.problems;
}

/* ------------------------------------------------------------ compaction */

static void test_admin_compact_keeps_live_drops_dead_and_shrinks(void **st) {
  char *dir = tu_tmpdir();
  uint64_t top = fill(dir, 400);
  char *before = dump_of(dir);
  uint64_t bytes_before = dir_bytes(dir);
  cs_compact_opts o = {.segment_bytes_max = SEG_BYTES};
  cs_compact_result res;
  cs_error err;
  found fd = {0};
  assert_int_equal(cs_admin_compact(dir, &o, collect, &fd, &res, &err), 0);
  assert_int_equal(res.contacts, 400 / 2 - 1);
  assert_true(res.bytes_after < res.bytes_before);
  assert_true(dir_bytes(dir) < bytes_before);
  char *after = dump_of(dir);
  assert_string_equal(before, after);
  assert_int_equal(verify_dir(dir, &fd), 0);

  /* The deleted highest id is never given again. */
  cs_store *s = open_store(dir, NULL);
  assert_non_null(s);
  uint64_t id;
  cs_contact c =
      tu_contact("New", NULL, "new@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(tu_create(s, 1, c, &id, &err), 0);
  assert_true(id > top);
  /* And without the snapshot, the meta record alone keeps the floor. */
  assert_int_equal(cs_close(s, &err), 0);
  free(after);
  tu_rmrf(dir);
  free(dir);

  dir = tu_tmpdir();
  top = fill(dir, 50);
  assert_int_equal(cs_admin_compact(dir, &o, NULL, NULL, &res, &err), 0);
  cs_options no_snap = {.segment_bytes_max = SEG_BYTES,
                        .notice = quiet,
                        .no_snapshot_load = true};
  assert_int_equal(cs_open(dir, &no_snap, &s, &err), 0);
  assert_int_equal(tu_create(s, 1, c, &id, &err), 0);
  assert_true(id > top);
  assert_int_equal(cs_close(s, &err), 0);
  free(before);
  tu_rmrf(dir);
  free(dir);
}

static void test_admin_compact_twice_and_empty(void **st) {
  char *dir = tu_tmpdir();
  cs_store *s = open_store(dir, NULL);
  cs_error err;
  assert_int_equal(cs_close(s, &err), 0);
  cs_compact_result res;
  assert_int_equal(cs_admin_compact(dir, NULL, NULL, NULL, &res, &err), 0);
  assert_int_equal(res.contacts, 0);
  fill(dir, 40);
  char *before = dump_of(dir);
  assert_int_equal(cs_admin_compact(dir, NULL, NULL, NULL, &res, &err), 0);
  assert_int_equal(cs_admin_compact(dir, NULL, NULL, NULL, &res, &err), 0);
  char *after = dump_of(dir);
  assert_string_equal(before, after);
  found fd;
  assert_int_equal(verify_dir(dir, &fd), 0);
  free(before);
  free(after);
  tu_rmrf(dir);
  free(dir);
}

/* A seam that crashes (every later call fails) at its Nth call of any
 * kind, or fails just that call, forwarding to fault_io otherwise. */
typedef struct crash_io {
  cs_io io;
  fault_io *f;
  long calls;
  long at;
  bool once; /* fail only call `at`, not everything after it */
} crash_io;

static int ci_hit(crash_io *c) {
  long n = ++c->calls;
  if (!c->at || n < c->at) return 0;
  if (n == c->at && !c->once) fault_io_crash(c->f);
  return n == c->at || !c->once ? -EIO : 0;
}

#define CI(ctx) ((crash_io *)(ctx))
static int ci_open(void *ctx, const char *p, int fl, int m) {
  int rc = ci_hit(CI(ctx));
  return rc ? rc : CI(ctx)->f->io.open(CI(ctx)->f, p, fl, m);
}
static int ci_close(void *ctx, int fd) {
  return CI(ctx)->f->io.close(CI(ctx)->f, fd); /* a close cannot lose data */
}
static long ci_pwrite(void *ctx, int fd, const void *b, size_t n,
                      uint64_t off) {
  int rc = ci_hit(CI(ctx));
  return rc ? rc : CI(ctx)->f->io.pwrite(CI(ctx)->f, fd, b, n, off);
}
static int ci_fdatasync(void *ctx, int fd) {
  int rc = ci_hit(CI(ctx));
  return rc ? rc : CI(ctx)->f->io.fdatasync(CI(ctx)->f, fd);
}
static int ci_fsync(void *ctx, int fd) {
  int rc = ci_hit(CI(ctx));
  return rc ? rc : CI(ctx)->f->io.fsync(CI(ctx)->f, fd);
}
static int ci_ftruncate(void *ctx, int fd, uint64_t n) {
  int rc = ci_hit(CI(ctx));
  return rc ? rc : CI(ctx)->f->io.ftruncate(CI(ctx)->f, fd, n);
}
static int ci_rename(void *ctx, const char *a, const char *b) {
  int rc = ci_hit(CI(ctx));
  return rc ? rc : CI(ctx)->f->io.rename(CI(ctx)->f, a, b);
}
static int ci_unlink(void *ctx, const char *p) {
  int rc = ci_hit(CI(ctx));
  return rc ? rc : CI(ctx)->f->io.unlink(CI(ctx)->f, p);
}
static int ci_fsync_dir(void *ctx, const char *d) {
  int rc = ci_hit(CI(ctx));
  return rc ? rc : CI(ctx)->f->io.fsync_dir(CI(ctx)->f, d);
}

static void crash_io_init(crash_io *c, fault_io *f, long at, bool once) {
  memset(c, 0, sizeof *c);
  fault_io_init(f);
  c->f = f;
  c->at = at;
  c->once = once;
  c->io = (cs_io){c,        ci_open,      ci_close,  ci_pwrite, ci_fdatasync,
                  ci_fsync, ci_ftruncate, ci_rename, ci_unlink, ci_fsync_dir};
}

static void compact_faults(bool once) {
  char *tmpl = tu_tmpdir();
  uint64_t top = fill(tmpl, 120);
  char *expect = dump_of(tmpl);
  assert_non_null(expect);

  /* How many calls a whole compaction makes. */
  char *dir = tu_tmpdir();
  tu_rmrf(dir);
  tu_copy_dir(tmpl, dir);
  fault_io f;
  crash_io c;
  crash_io_init(&c, &f, 0, false);
  cs_compact_opts o = {.io = &c.io, .segment_bytes_max = SEG_BYTES};
  cs_compact_result res;
  cs_error err;
  assert_int_equal(cs_admin_compact(dir, &o, NULL, NULL, &res, &err), 0);
  long total = c.calls;
  assert_true(total > 10);
  tu_rmrf(dir);

  for (long n = 1; n <= total + 1; n++) {
    tu_copy_dir(tmpl, dir);
    crash_io_init(&c, &f, n, once);
    o.io = &c.io;
    int rc = cs_admin_compact(dir, &o, NULL, NULL, &res, &err);
    if (n <= total && !once) assert_int_not_equal(rc, 0);
    fault_io_power_loss(&f, POWER_DROP_UNSYNCED, (unsigned)n);

    char *got = dump_of(dir);
    if (!got || strcmp(got, expect) != 0)
      fail_msg("%s at call %ld of %ld: the store %s",
               once ? "failure" : "crash", n, total,
               got ? "differs" : "does not open");
    free(got);
    found fd;
    int problems = verify_dir(dir, &fd);
    if (problems)
      fail_msg("call %ld: verify finds %d problems:\n%s", n, problems, fd.text);
    /* No id given again, whichever store survived. */
    cs_store *s = open_store(dir, NULL);
    assert_non_null(s);
    uint64_t id;
    cs_contact nc =
        tu_contact("Late", NULL, "late@example.com", NULL, NULL, NULL, NULL);
    assert_int_equal(tu_create(s, 1, nc, &id, &err), 0);
    assert_true(id > top);
    cs_close(s, &err);
    tu_rmrf(dir);
  }
  free(expect);
  free(dir);
  tu_rmrf(tmpl);
  free(tmpl);
}

static void test_admin_compact_crash_at_every_call(void **st) {
  compact_faults(false);
}

static void test_admin_compact_failure_at_every_call(void **st) {
  compact_faults(true);
}

/* ---------------------------------------------------------------- verify */

/* The name and size of the store's first segment, and its snapshot's. */
static void store_files(const char *dir, char *seg, char *snap, size_t len) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "ls %s | grep -m1 '\\.seg$'", dir);
  FILE *p = popen(cmd, "r");
  seg[0] = 0;
  if (p && fgets(seg, (int)len, p)) seg[strcspn(seg, "\n")] = 0;
  if (p) pclose(p);
  snprintf(cmd, sizeof cmd, "ls %s | grep -m1 '^snap-'", dir);
  p = popen(cmd, "r");
  snap[0] = 0;
  if (p && fgets(snap, (int)len, p)) snap[strcspn(snap, "\n")] = 0;
  if (p) pclose(p);
}

static void flip_byte(const char *path, long off) {
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  unsigned char b;
  assert_int_equal(pread(fd, &b, 1, off), 1);
  b ^= 0x20;
  assert_int_equal(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

static void test_admin_verify_finds_flipped_byte(void **st) {
  char *dir = tu_tmpdir();
  fill(dir, 60);
  found fd;
  assert_int_equal(verify_dir(dir, &fd), 0);
  char seg[256], snap[256], path[4400];
  store_files(dir, seg, snap, sizeof seg);
  snprintf(path, sizeof path, "%s/%s", dir, seg);
  flip_byte(path, 32 + 24 + 10); /* inside the first record's payload */
  int problems = verify_dir(dir, &fd);
  assert_true(problems >= 1);
  char want[300];
  snprintf(want, sizeof want, "P %s@32:", seg);
  if (!strstr(fd.text, want)) fail_msg("no finding at %s:\n%s", want, fd.text);
  tu_rmrf(dir);
  free(dir);
}

static void test_admin_verify_finds_truncated_snapshot(void **st) {
  char *dir = tu_tmpdir();
  fill(dir, 60);
  char seg[256], snap[256], path[4400];
  store_files(dir, seg, snap, sizeof seg);
  assert_true(snap[0]);
  snprintf(path, sizeof path, "%s/%s", dir, snap);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(truncate(path, sb.st_size - 100), 0);
  found fd;
  assert_int_equal(verify_dir(dir, &fd), 1);
  assert_non_null(strstr(fd.text, snap));
  assert_non_null(strstr(fd.text, "truncated"));
  tu_rmrf(dir);
  free(dir);
}

static void test_admin_verify_finds_wrong_index_entry(void **st) {
  char *dir = tu_tmpdir();
  fill(dir, 60);
  /* A snapshot written by the engine's own snap code from slots of which
   * one live entry points at another live contact's record. */
  cs_store *s = open_store(dir, NULL);
  assert_non_null(s);
  uint32_t a = UINT32_MAX, b = UINT32_MAX;
  for (uint32_t i = 0; i < s->slots.count; i++) {
    if (!slot_live(&s->slots.v[i])) continue;
    if (a == UINT32_MAX)
      a = i;
    else if (b == UINT32_MAX && s->slots.v[i].seg == s->slots.v[a].seg)
      b = i;
  }
  assert_true(b != UINT32_MAX);
  cs_error err;
  cs_contact c =
      tu_contact("Bump", NULL, "bump@example.com", NULL, NULL, NULL, NULL);
  uint64_t id;
  assert_int_equal(tu_create(s, 1, c, &id, &err), 0); /* a new position */
  s->slots.v[a].off = s->slots.v[b].off;
  s->slots.v[a].len = s->slots.v[b].len;
  assert_int_equal(cs_snapshot(s, &err), 0);
  s->opts.no_snapshot_on_close = true;
  assert_int_equal(cs_close(s, &err), 0);

  found fd;
  int problems = verify_dir(dir, &fd);
  assert_true(problems >= 1);
  if (!strstr(fd.text, "points here") && !strstr(fd.text, "index entry"))
    fail_msg("no index finding:\n%s", fd.text);
  tu_rmrf(dir);
  free(dir);
}

/* -------------------------------------------------------------- versions */

/* Whether the engine's safe writes are built (the stub answers -ENOSYS). */
static bool safe_writes_built(cs_store *s) {
  cs_write w = {.kind = CS_WRITE_DELETE, .account = 1, .id = CS_ID_MIN};
  cs_outcome out;
  return cs_write_apply(s, &w, &out, NULL) != -ENOSYS;
}

/* A synchronous cs_write_apply: the submit's error or the commit's. */
static int write_wait(cs_store *s, cs_write *w, cs_outcome *out) {
  tu_waiter wt;
  tu_waiter_init(&wt);
  tu_waiter_add(&wt);
  w->done = tu_done;
  w->ctx = &wt;
  cs_error err;
  int rc = cs_write_apply(s, w, out, &err);
  if (rc || out->result == CS_RESULT_UNCHANGED) return rc;
  return tu_waiter_wait(&wt);
}

/* A store whose versions go up as they should: contact *x created and
 * edited twice (version 3), another deleted and restored (version 2).
 * False when the engine has no safe writes. */
static bool versioned_store(const char *dir, cs_contact *x) {
  cs_store *s = open_store(dir, NULL);
  assert_non_null(s);
  if (!safe_writes_built(s)) {
    cs_error err;
    cs_close(s, &err);
    return false;
  }
  cs_error err;
  *x = tu_contact("Vera", "Versions", "vera@example.com", NULL, NULL, NULL,
                  NULL);
  assert_int_equal(tu_create(s, 1, *x, &x->id, &err), 0);
  for (int k = 0; k < 2; k++) {
    cs_patch p = {.set_mask = 1u << CS_COMPANY};
    p.field[CS_COMPANY] = (cs_str){k ? "Two" : "One", 3};
    assert_int_equal(tu_update(s, 1, x->id, p, &err), 0);
  }
  uint64_t y;
  cs_contact c =
      tu_contact("Yann", NULL, "yann@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(tu_create(s, 1, c, &y, &err), 0);
  cs_outcome out;
  cs_write d = {.kind = CS_WRITE_DELETE, .account = 1, .id = y};
  assert_int_equal(write_wait(s, &d, &out), 0);
  cs_write r = {.kind = CS_WRITE_RESTORE, .account = 1, .id = y};
  assert_int_equal(write_wait(s, &r, &out), 0);
  assert_int_equal(out.version, 2);
  cs_contact got;
  assert_int_equal(cs_get(s, 1, x->id, &got, &err), 0);
  assert_int_equal(got.version, 3);
  x->account = 1;
  x->created_ms = got.created_ms;
  x->updated_ms = got.updated_ms;
  x->field[CS_COMPANY] = (cs_str){"Two", 3};
  assert_int_equal(cs_close(s, &err), 0);
  return true;
}

typedef struct last_rec {
  uint32_t seg;
  uint64_t end; /* offset just past the last record */
  uint64_t seq;
} last_rec;

static int note_last(void *ctx, const cs_raw_record *r) {
  last_rec *l = ctx;
  if (r->status != CS_RAW_OK) return 0;
  *l = (last_rec){r->seg, r->offset + r->len, r->seq};
  return 0;
}

/* Appends a put of c, framed by the engine's own encoder, as the log's
 * next record at the end of its last segment; its segment's name into
 * seg, and its offset is returned. */
static uint64_t append_put(const char *dir, const cs_contact *c, char *seg,
                           size_t seg_len) {
  last_rec l = {0};
  cs_error err;
  assert_int_equal(cs_admin_scan(dir, note_last, &l, &err), 0);
  rec_buf b = {0};
  assert_int_equal(rec_append_put(&b, l.seq + 1, c, NULL, 0), 0);
  seg_name(seg, seg_len, l.seg);
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", dir, seg);
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, b.ptr, b.len, (off_t)l.end), (ssize_t)b.len);
  close(fd);
  rec_buf_free(&b);
  return l.end;
}

/* Verify of a copy of base with one more put of x at version: clean when
 * the version goes up, else the problem names segment and offset. */
static void expect_put_verified(const char *base, cs_contact x,
                                uint64_t version, bool clean) {
  char *tmp = tu_tmpdir();
  char dir[4200], seg[64];
  snprintf(dir, sizeof dir, "%s/s", tmp);
  tu_copy_dir(base, dir);
  x.version = version;
  uint64_t off = append_put(dir, &x, seg, sizeof seg);
  found fd;
  int problems = verify_dir(dir, &fd);
  if (clean) {
    if (problems) fail_msg("version %" PRIu64 ":\n%s", version, fd.text);
  } else {
    char want[300];
    snprintf(want, sizeof want,
             "P %s@%" PRIu64 ": contact %020" PRIu64 " goes back", seg, off,
             x.id);
    if (problems != 1 || !strstr(fd.text, want))
      fail_msg("version %" PRIu64 ": want \"%s\" alone, got:\n%s", version,
               want, fd.text);
  }
  tu_rmrf(tmp);
  free(tmp);
}

static void test_admin_verify_finds_a_version_going_back(void **st) {
  char *dir = tu_tmpdir();
  cs_contact x;
  if (!versioned_store(dir, &x)) {
    tu_rmrf(dir);
    free(dir);
    print_message("safe writes not built in the engine: skipped\n");
    skip();
  }
  found fd;
  if (verify_dir(dir, &fd)) fail_msg("a clean store:\n%s", fd.text);
  expect_put_verified(dir, x, 4, true);  /* up: fine */
  expect_put_verified(dir, x, 3, false); /* the same: not greater */
  expect_put_verified(dir, x, 1, false); /* back */
  tu_rmrf(dir);
  free(dir);
}

/* Verify raises nothing on versions a store made itself: edits, a trashed
 * contact, a purged one, compaction (which carries the trashed contact
 * over), and a restore after it. */
static void
test_admin_verify_versions_clean_through_trash_and_compaction(void **st) {
  char *dir = tu_tmpdir();
  cs_contact x;
  if (!versioned_store(dir, &x)) {
    tu_rmrf(dir);
    free(dir);
    skip();
  }
  cs_store *s = open_store(dir, NULL);
  assert_non_null(s);
  cs_error err;
  uint64_t z, p;
  cs_contact c =
      tu_contact("Zora", NULL, "zora@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(tu_create(s, 1, c, &z, &err), 0);
  cs_patch edit = {.set_mask = 1u << CS_COMPANY};
  edit.field[CS_COMPANY] = (cs_str){"Z Co", 4};
  assert_int_equal(tu_update(s, 1, z, edit, &err), 0);
  c = tu_contact("Pia", NULL, "pia@example.com", NULL, NULL, NULL, NULL);
  assert_int_equal(tu_create(s, 1, c, &p, &err), 0);
  cs_outcome out;
  cs_write dz = {.kind = CS_WRITE_DELETE, .account = 1, .id = z};
  assert_int_equal(write_wait(s, &dz, &out), 0);
  cs_write dp = {.kind = CS_WRITE_DELETE, .account = 1, .id = p, .purge = true};
  assert_int_equal(write_wait(s, &dp, &out), 0);
  assert_int_equal(cs_close(s, &err), 0);

  found fd;
  if (verify_dir(dir, &fd)) fail_msg("before compaction:\n%s", fd.text);
  cs_compact_result res;
  assert_int_equal(cs_admin_compact(dir, NULL, NULL, NULL, &res, &err), 0);
  if (verify_dir(dir, &fd)) fail_msg("after compaction:\n%s", fd.text);

  s = open_store(dir, NULL);
  assert_non_null(s);
  cs_write rz = {.kind = CS_WRITE_RESTORE, .account = 1, .id = z};
  assert_int_equal(write_wait(s, &rz, &out), 0);
  assert_int_equal(out.version, 3);
  cs_contact got;
  assert_int_equal(cs_get(s, 1, x.id, &got, &err), 0);
  assert_int_equal(got.version, 3);
  assert_int_equal(cs_close(s, &err), 0);
  if (verify_dir(dir, &fd)) fail_msg("after the restore:\n%s", fd.text);
  tu_rmrf(dir);
  free(dir);
}

/* --------------------------------------------------------------- salvage */

static void test_admin_salvage_skips_damage_and_reports_it(void **st) {
  char *dir = tu_tmpdir();
  cs_store *s = open_store(dir, NULL);
  cs_error err;
  for (int i = 0; i < 30; i++) {
    char email[64];
    snprintf(email, sizeof email, "s%d@example.com", i);
    cs_contact c = tu_contact("Sal", NULL, email, NULL, NULL, NULL, NULL);
    uint64_t id;
    assert_int_equal(tu_create(s, 1, c, &id, &err), 0);
  }
  assert_int_equal(cs_close(s, &err), 0);
  char seg[256], snap[256], path[4400];
  store_files(dir, seg, snap, sizeof seg);
  snprintf(path, sizeof path, "%s/%s", dir, seg);
  flip_byte(path, 32 + 24 + 5);
  /* Without its snapshot open must replay, and meets the damage. */
  snprintf(path, sizeof path, "%s/%s", dir, snap);
  unlink(path);
  cs_options o = {.notice = quiet};
  assert_int_equal(cs_open(dir, &o, &s, &err), CS_ECORRUPT);
  cs_compact_result res;
  assert_int_equal(cs_admin_compact(dir, NULL, NULL, NULL, &res, &err),
                   CS_ECORRUPT);
  cs_compact_opts so = {.salvage = true};
  found fd = {0};
  assert_int_equal(cs_admin_compact(dir, &so, collect, &fd, &res, &err), 0);
  assert_int_equal(res.skipped_ranges, 1);
  assert_int_equal(res.contacts, 29);
  char want[300];
  snprintf(want, sizeof want, "P %s@32:", seg);
  if (!strstr(fd.text, want)) fail_msg("no finding at %s:\n%s", want, fd.text);
  assert_int_equal(verify_dir(dir, &fd), 0);
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  cs_stats stt;
  cs_stats_get(s, &stt);
  assert_int_equal(stt.contacts, 29);
  assert_true(stt.next_id > CS_ID_MIN + 30);
  cs_close(s, &err);
  tu_rmrf(dir);
  free(dir);
}

/* ------------------------------------------------------------------ lock */

static void test_admin_refuses_a_held_directory(void **st) {
  char *dir = tu_tmpdir();
  fill(dir, 10);
  int go[2], done[2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(done), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    cs_store *s = open_store(dir, NULL);
    char b = s ? 'y' : 'n';
    if (write(go[1], &b, 1) != 1) _exit(1);
    if (read(done[0], &b, 1) < 0) _exit(1);
    cs_error err;
    cs_close(s, &err);
    _exit(0);
  }
  char b;
  assert_int_equal(read(go[0], &b, 1), 1);
  assert_int_equal(b, 'y');
  char pidtext[32];
  snprintf(pidtext, sizeof pidtext, "process %d", (int)pid);
  cs_error err;
  cs_compact_result res;
  assert_int_equal(cs_admin_compact(dir, NULL, NULL, NULL, &res, &err),
                   CS_ELOCKED);
  assert_non_null(strstr(err.msg, pidtext));
  cs_verify_result vr;
  assert_int_equal(cs_admin_verify(dir, NULL, NULL, NULL, &vr, &err),
                   CS_ELOCKED);
  cs_compact_opts so = {.salvage = true};
  assert_int_equal(cs_admin_compact(dir, &so, NULL, NULL, &res, &err),
                   CS_ELOCKED);
  cs_dirlock *l;
  assert_int_equal(cs_dir_lock(dir, &l, &err), CS_ELOCKED);
  assert_non_null(strstr(err.msg, pidtext));
  assert_int_equal(write(done[1], "x", 1), 1);
  int status;
  waitpid(pid, &status, 0);
  assert_int_equal(cs_dir_lock(dir, &l, &err), 0);
  cs_dir_unlock(l);
  close(go[0]);
  close(go[1]);
  close(done[0]);
  close(done[1]);
  tu_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_admin_compact_keeps_live_drops_dead_and_shrinks),
      cmocka_unit_test(test_admin_compact_twice_and_empty),
      cmocka_unit_test(test_admin_compact_crash_at_every_call),
      cmocka_unit_test(test_admin_compact_failure_at_every_call),
      cmocka_unit_test(test_admin_verify_finds_flipped_byte),
      cmocka_unit_test(test_admin_verify_finds_truncated_snapshot),
      cmocka_unit_test(test_admin_verify_finds_wrong_index_entry),
      cmocka_unit_test(test_admin_verify_finds_a_version_going_back),
      cmocka_unit_test(
          test_admin_verify_versions_clean_through_trash_and_compaction),
      cmocka_unit_test(test_admin_salvage_skips_damage_and_reports_it),
      cmocka_unit_test(test_admin_refuses_a_held_directory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
