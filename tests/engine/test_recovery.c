/*
 * test_recovery.c: opening a store after crashes and damage.
 *
 * Goal: a torn tail is cut and nothing before it lost (promise 3); damage
 * anywhere else is reported with file and offset, never skipped (promise
 * 4); a damaged or missing snapshot only costs time (promise 6).
 * Method: build a store, close it, damage its files the way a crash or a
 * bad disk would (truncate at every offset, flip bytes, cut or garble the
 * snapshot), reopen, and compare with what was there before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs.h"
#include "test_util.h"

static const cs_options fast = {.durability = CS_DURABILITY_NONE,
                                .no_snapshot_on_close = true};

/* The seal close writes: a meta record {"next_id": u64}, 24 + 18 bytes. */
#define REC_SEAL_BYTES 42

struct notices {
  int count;
  char last[600];
};

static void on_notice(void *ctx, const char *line) {
  struct notices *n = ctx;
  n->count++;
  snprintf(n->last, sizeof n->last, "%s", line);
}

/* Makes a store with n contacts (every third edited) and returns its dump. */
static char *build(const char *dir, int n, uint32_t seg_bytes, bool snapshot) {
  cs_options o = fast;
  o.segment_bytes_max = seg_bytes;
  o.no_snapshot_on_close = !snapshot;
  cs_store *s;
  cs_error err;
  if (cs_open(dir, &o, &s, &err)) fail_msg("open: %s", err.msg);
  for (int i = 0; i < n; i++) {
    char em[32], note[64];
    snprintf(em, sizeof em, "c%d@x.com", i);
    snprintf(note, sizeof note, "note number %d", i);
    uint64_t id;
    if (tu_create(s, 1,
                  tu_contact("Name", "Last", em, "555 0100", "Co", NULL, note),
                  &id, &err))
      fail_msg("create: %s", err.msg);
    if (i % 3 == 2) {
      cs_patch p = {.set_mask = 1u << CS_COMPANY};
      p.field[CS_COMPANY] = (cs_str){"Edited", 6};
      if (tu_update(s, 1, id, p, &err)) fail_msg("update: %s", err.msg);
    }
  }
  char *d = tu_dump(s);
  assert_int_equal(cs_close(s, &err), 0);
  return d;
}

/* Creates n contacts "<prefix><i>@x.com" in account, deleting every
 * delete_every-th one right after (0: none). */
static void add_contacts(cs_store *s, uint32_t account, const char *prefix,
                         int n, int delete_every) {
  cs_error err;
  for (int i = 0; i < n; i++) {
    char em[64];
    snprintf(em, sizeof em, "%s%d@x.com", prefix, i);
    uint64_t id;
    if (tu_create(s, account,
                  tu_contact("Added", NULL, em, NULL, NULL, NULL, NULL), &id,
                  &err))
      fail_msg("create %s: %s", em, err.msg);
    if (delete_every && i % delete_every == 0 &&
        tu_delete(s, account, id, &err))
      fail_msg("delete %s: %s", em, err.msg);
  }
}

static off_t file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_size;
}

/* Lines of a dump (contacts). */
static int lines(const char *d) {
  int n = 0;
  for (; *d; d++)
    n += *d == '\n';
  return n;
}

static void test_recovery_torn_tail_is_cut_at_every_offset(void **state) {
  char *dir = tu_tmpdir();
  char *full = build(dir, 5, 0, false);
  char seg[1024];
  snprintf(seg, sizeof seg, "%s/00000001.seg", dir);
  off_t size = file_size(seg);
  /* The last record is the edit of contact 2... find where the last record
   * starts: the dump without it is a store of the first n records. Every cut
   * inside the last record must open with one record fewer applied. */
  char *work = tu_tmpdir();
  tu_rmrf(work);
  int cuts = 0;
  for (off_t cut = size - 1; cut >= 32; cut--) {
    tu_copy_dir(dir, work);
    char wseg[1024];
    snprintf(wseg, sizeof wseg, "%s/00000001.seg", work);
    assert_int_equal(truncate(wseg, cut), 0);
    struct notices n = {0};
    cs_options o = fast;
    o.notice = on_notice;
    o.notice_ctx = &n;
    cs_store *s;
    cs_error err;
    int rc = cs_open(work, &o, &s, &err);
    if (rc) fail_msg("cut at %lld: %s", (long long)cut, err.msg);
    char *d = tu_dump(s);
    /* Everything before the cut is there: the state is a prefix. */
    assert_true(lines(d) <= lines(full));
    if (n.count) {
      assert_non_null(strstr(n.last, "torn tail"));
      cuts++;
    }
    /* The store is writable again after the cut. */
    uint64_t id;
    assert_int_equal(tu_create(s, 1,
                               tu_contact("After", NULL, "after@x.com", NULL,
                                          NULL, NULL, NULL),
                               &id, &err),
                     0);
    free(d);
    cs_close(s, NULL);
    tu_rmrf(work);
    if (cut < size - 400) break; /* the last few records are enough */
  }
  assert_true(cuts > 300);
  free(full);
  tu_rmrf(dir);
  free(dir);
  free(work);
}

static void test_recovery_cut_keeps_every_whole_record(void **state) {
  /* Cutting exactly at record boundaries loses nothing before the cut:
   * compare the contact count with the records that remain. */
  char *dir = tu_tmpdir();
  char *full = build(dir, 29, 0, false);
  char seg[1024];
  snprintf(seg, sizeof seg, "%s/00000001.seg", dir);
  /* Truncate by one byte: only the last record goes. The first time that
   * is the seal close wrote (a meta record): nothing is lost; the second
   * time (an open that wrote nothing seals nothing) the create of the last
   * contact. */
  assert_int_equal(truncate(seg, file_size(seg) - 1), 0);
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &fast, &s, &err), 0);
  assert_int_equal(cs_account_count(s, 1), 29);
  assert_int_equal(cs_close(s, &err), 0);
  assert_int_equal(truncate(seg, file_size(seg) - 1), 0);
  assert_int_equal(cs_open(dir, &fast, &s, &err), 0);
  char *d = tu_dump(s);
  /* 29 contacts; the last record was the create of contact 28. */
  assert_int_equal(lines(d), 28);
  assert_int_equal(strncmp(d, full, strlen(d)), 0);
  free(d);
  cs_close(s, NULL);
  free(full);
  tu_rmrf(dir);
  free(dir);
}

static void flip(const char *path, off_t at) {
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  unsigned char b;
  assert_int_equal(pread(fd, &b, 1, at), 1);
  b ^= 0x10;
  assert_int_equal(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

static void
test_recovery_flipped_byte_in_sealed_segment_is_reported(void **state) {
  char *dir = tu_tmpdir();
  free(build(dir, 60, 4096, false)); /* several small segments */
  char seg[1024];
  snprintf(seg, sizeof seg, "%s/00000001.seg", dir);
  char seg3[1024];
  snprintf(seg3, sizeof seg3, "%s/00000003.seg", dir);
  assert_int_equal(access(seg3, F_OK), 0);
  for (off_t at = 100; at < 3000; at += 700) {
    char *work = tu_tmpdir();
    tu_rmrf(work);
    tu_copy_dir(dir, work);
    char wseg[1024];
    snprintf(wseg, sizeof wseg, "%s/00000001.seg", work);
    flip(wseg, at);
    cs_store *s = NULL;
    cs_error err;
    assert_int_equal(cs_open(work, &fast, &s, &err), CS_ECORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "00000001.seg"));
    assert_non_null(strstr(err.msg, "offset"));
    assert_non_null(strstr(err.msg, "verify"));
    tu_rmrf(work);
    free(work);
  }
  tu_rmrf(dir);
  free(dir);
}

/* n contacts, each create synced before the next (durability fsync):
 * every batch but the first is marked synced. */
static void build_synced(const char *dir, int n) {
  cs_options o = {.durability = CS_DURABILITY_FSYNC,
                  .no_snapshot_on_close = true};
  cs_store *s;
  cs_error err;
  if (cs_open(dir, &o, &s, &err)) fail_msg("open: %s", err.msg);
  add_contacts(s, 1, "s", n, 0);
  assert_int_equal(cs_close(s, &err), 0);
}

static void
test_recovery_flip_in_last_segment_middle_is_corruption(void **state) {
  char *dir = tu_tmpdir();
  build_synced(dir, 20);
  char seg[1024];
  snprintf(seg, sizeof seg, "%s/00000001.seg", dir);
  flip(seg, 200); /* inside an early record, with synced records after */
  cs_store *s = NULL;
  cs_error err;
  assert_int_equal(cs_open(dir, &fast, &s, &err), CS_ECORRUPT);
  assert_non_null(strstr(err.msg, "with data after it"));
  tu_rmrf(dir);
  free(dir);
}

/* Zeroes len bytes at off: a page a power cut never wrote. */
static void hole(const char *path, off_t off, size_t len) {
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  char *z = calloc(1, len);
  assert_int_equal(pwrite(fd, z, len, off), (ssize_t)len);
  free(z);
  close(fd);
}

static void test_recovery_hole_in_unsynced_writes_is_a_torn_tail(void **state) {
  /* The last writes were never synced (durability none, no close sync
   * marks them): a hole among them, with whole records after it, is what a
   * power cut leaves when pages reach the disk out of order. The tail from
   * the hole on is cut, with a notice; everything before it stays. */
  char *dir = tu_tmpdir(), *cut = tu_tmpdir();
  cs_store *s = NULL;
  cs_error err;
  assert_int_equal(cs_open(dir, &fast, &s, &err), 0);
  add_contacts(s, 1, "u", 20, 0);
  tu_rmrf(cut);
  tu_copy_dir(dir, cut); /* the disk as a power cut finds it: no seal */
  cs_close(s, NULL);
  char seg[1024];
  snprintf(seg, sizeof seg, "%s/00000001.seg", cut);
  off_t size = file_size(seg);
  hole(seg, size / 2, 64);
  struct notices n = {0};
  cs_options o = fast;
  o.notice = on_notice;
  o.notice_ctx = &n;
  assert_int_equal(cs_open(cut, &o, &s, &err), 0);
  assert_true(n.count >= 1);
  assert_non_null(strstr(n.last, "torn tail"));
  uint64_t kept = cs_account_count(s, 1);
  assert_true(kept > 0 && kept < 20);
  cs_close(s, NULL);
  assert_true(file_size(seg) < size / 2 + 64);
  tu_rmrf(cut);
  free(cut);
  /* The same hole in a store that was closed is damage: the seal close
   * wrote vouches for every byte before it. */
  snprintf(seg, sizeof seg, "%s/00000001.seg", dir);
  hole(seg, file_size(seg) / 2, 64);
  assert_int_equal(cs_open(dir, &fast, &s, &err), CS_ECORRUPT);
  snprintf(seg, sizeof seg, "%s/00000001.seg", dir);
  /* After synced writes, the same hole in the last batch alone is a torn
   * tail too; earlier, with a synced record after it, it is damage. */
  tu_rmrf(dir);
  build_synced(dir, 20);
  /* Without the seal close wrote, as if the power went after the last
   * answer. */
  off_t sealed = file_size(seg);
  assert_int_equal(truncate(seg, sealed - REC_SEAL_BYTES), 0);
  size = file_size(seg);
  char *work = tu_tmpdir();
  tu_rmrf(work);
  tu_copy_dir(dir, work);
  char wseg[1024];
  snprintf(wseg, sizeof wseg, "%s/00000001.seg", work);
  hole(wseg, size - 40, 20); /* inside the last record */
  assert_int_equal(cs_open(work, &fast, &s, &err), 0);
  assert_int_equal(cs_account_count(s, 1), 19);
  cs_close(s, NULL);
  tu_rmrf(work);
  hole(seg, size / 2, 64);
  assert_int_equal(cs_open(dir, &fast, &s, &err), CS_ECORRUPT);
  assert_non_null(strstr(err.msg, "with data after it"));
  tu_rmrf(dir);
  free(dir);
  free(work);
}

static char *snapshot_path(const char *dir) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "ls %s/snap-*.snap 2>/dev/null | head -1", dir);
  FILE *p = popen(cmd, "r");
  static char path[1024];
  path[0] = 0;
  if (fgets(path, sizeof path, p)) path[strcspn(path, "\n")] = 0;
  pclose(p);
  return path[0] ? path : NULL;
}

static void
test_recovery_damaged_snapshot_is_rebuilt_from_the_log(void **state) {
  char *dir = tu_tmpdir();
  char *full = build(dir, 50, 0, true);
  const char *snap = snapshot_path(dir);
  assert_non_null(snap);
  char saved[1024];
  snprintf(saved, sizeof saved, "%s", snap);
  off_t size = file_size(saved);
  /* A flipped byte in the header, in the middle, at the end; a truncation;
   * and a missing file. */
  off_t flips[] = {3, 20, size / 2, size - 1};
  for (int i = 0; i < 6; i++) {
    char *work = tu_tmpdir();
    tu_rmrf(work);
    tu_copy_dir(dir, work);
    char wsnap[1024];
    snprintf(wsnap, sizeof wsnap, "%s/%s", work, strrchr(saved, '/') + 1);
    if (i < 4)
      flip(wsnap, flips[i]);
    else if (i == 4)
      assert_int_equal(truncate(wsnap, size / 3), 0);
    else
      assert_int_equal(unlink(wsnap), 0);
    struct notices n = {0};
    cs_options o = fast;
    o.notice = on_notice;
    o.notice_ctx = &n;
    cs_store *s;
    cs_error err;
    assert_int_equal(cs_open(work, &o, &s, &err), 0);
    assert_true(n.count >= 1);
    char *d = tu_dump(s);
    assert_string_equal(d, full);
    free(d);
    /* Searches work after the rebuild. */
    cs_query q = {
        .account = 1, .field = CS_COMPANY, .term = "edited", .term_len = 6};
    cs_page page;
    assert_int_equal(cs_search(s, &q, &page, &err), 0);
    assert_int_equal(page.total, 16);
    cs_page_free(&page);
    cs_close(s, NULL);
    tu_rmrf(work);
    free(work);
  }
  free(full);
  tu_rmrf(dir);
  free(dir);
}

static void test_recovery_snapshot_then_log_equals_full_replay(void **state) {
  char *dir = tu_tmpdir();
  free(build(dir, 40, 4096, true)); /* snapshot at close */
  /* More writes after the snapshot, no new snapshot. */
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &fast, &s, &err), 0);
  add_contacts(s, 2, "late", 25, 4);
  char *expect = tu_dump(s);
  cs_close(s, NULL);
  assert_int_equal(cs_open(dir, &fast, &s, &err), 0);
  char *from_snap = tu_dump(s);
  cs_close(s, NULL);
  cs_options replay = fast;
  replay.no_snapshot_load = true;
  assert_int_equal(cs_open(dir, &replay, &s, &err), 0);
  char *from_log = tu_dump(s);
  cs_close(s, NULL);
  assert_string_equal(expect, from_snap);
  assert_string_equal(expect, from_log);
  free(expect);
  free(from_snap);
  free(from_log);
  tu_rmrf(dir);
  free(dir);
}

static void test_recovery_periodic_snapshot_bounds_the_replay(void **state) {
  char *dir = tu_tmpdir();
  cs_options o = fast;
  o.snapshot_every_bytes = 2000;
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  add_contacts(s, 1, "p", 40, 0);
  cs_stats st;
  cs_stats_get(s, &st);
  /* Taken while running, not at close (no_snapshot_on_close is set). */
  assert_true(st.snapshot_seq > 20);
  char *expect = tu_dump(s);
  cs_close(s, NULL);
  assert_non_null(snapshot_path(dir));
  assert_int_equal(cs_open(dir, &fast, &s, &err), 0);
  char *got = tu_dump(s);
  assert_string_equal(expect, got);
  cs_close(s, NULL);
  free(expect);
  free(got);
  tu_rmrf(dir);
  free(dir);
}

static void test_recovery_damaged_manifest_stops_open(void **state) {
  char *dir = tu_tmpdir();
  free(build(dir, 3, 0, false));
  char man[1024];
  snprintf(man, sizeof man, "%s/MANIFEST", dir);
  flip(man, 30);
  cs_store *s = NULL;
  cs_error err;
  assert_int_equal(cs_open(dir, &fast, &s, &err), CS_ECORRUPT);
  assert_non_null(strstr(err.msg, "MANIFEST"));
  /* Segments without a manifest are not mistaken for a new store. */
  assert_int_equal(unlink(man), 0);
  assert_int_equal(cs_open(dir, &fast, &s, &err), CS_ECORRUPT);
  assert_non_null(strstr(err.msg, "no manifest"));
  tu_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_recovery_torn_tail_is_cut_at_every_offset),
      cmocka_unit_test(test_recovery_cut_keeps_every_whole_record),
      cmocka_unit_test(
          test_recovery_flipped_byte_in_sealed_segment_is_reported),
      cmocka_unit_test(test_recovery_flip_in_last_segment_middle_is_corruption),
      cmocka_unit_test(test_recovery_hole_in_unsynced_writes_is_a_torn_tail),
      cmocka_unit_test(test_recovery_damaged_snapshot_is_rebuilt_from_the_log),
      cmocka_unit_test(test_recovery_snapshot_then_log_equals_full_replay),
      cmocka_unit_test(test_recovery_periodic_snapshot_bounds_the_replay),
      cmocka_unit_test(test_recovery_damaged_manifest_stops_open),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
