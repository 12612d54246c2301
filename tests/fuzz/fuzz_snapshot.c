/*
 * fuzz_snapshot.c: a snapshot file named by a valid manifest.
 *
 * Goal: a snapshot is only a speed-up (promise 6). Whatever the snapshot
 * file holds, open never crashes and never fails because of it, and the
 * store it opens is exactly what a full replay of the log gives.
 * Method: the log is fixed, tests/fuzz/data/snapshot-store/00000001.seg
 * (made by fuzz_seedgen: creates, edits and deletes in two accounts); a
 * full replay of it is computed once. Each input becomes the snapshot file
 * of a fresh data directory holding that log and a manifest naming the
 * snapshot. The first input byte holds flags:
 *   bit 0  forge the header: magic, version, length and checksum made right
 *          for the rest, so the msgpack decoder and the range checks see
 *          hostile contents instead of stopping at the checksum.
 * Checked: open succeeds; without forging, the store's contents (every
 * contact, and exact, prefix and words searches over the replay's own
 * values) equal the full replay's. A forged snapshot is no accident but a
 * deliberately consistent lie, which no checksum can catch; for it the check
 * is that open and reading every contact and search stay safe (no crash, no
 * read out of bounds), which is what promise 10 asks of bytes from disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "fuzz_util.h"
#include "store_int.h"
#include "test_util.h"

#ifndef FUZZ_DATA_DIR
#error "FUZZ_DATA_DIR names tests/fuzz/data"
#endif

#define SNAP_NAME "snap-00000000000000ff.snap"

static char *g_log_dir;  /* the fixed log */
static char *g_replay;   /* tu_dump of the full replay */
static char *g_searches; /* search answers of the full replay */
static uint8_t *g_seg;
static size_t g_seg_len;

/* Search answers over terms taken from the store itself: for every
 * contact, exact on email, prefix on the first 2 bytes of last_name, words
 * on company; ids of every page, one line per query. */
typedef struct sctx {
  cs_store *s;
  char *out;
  size_t len, cap;
} sctx;

static void emit(sctx *x, const char *line) {
  size_t n = strlen(line);
  if (x->len + n + 1 > x->cap) {
    x->cap = (x->len + n + 1) * 2;
    x->out = realloc(x->out, x->cap);
  }
  memcpy(x->out + x->len, line, n + 1);
  x->len += n;
}

static void query(sctx *x, uint32_t account, int field, cs_match m, cs_str t) {
  if (!t.ptr || !t.len) return;
  cs_query q = {.account = account,
                .field = field,
                .match = m,
                .term = t.ptr,
                .term_len = t.len,
                .limit = 50};
  cs_page pg = {0};
  cs_error err;
  int rc = cs_search(x->s, &q, &pg, &err);
  char line[64];
  snprintf(line, sizeof line, "q%d/%d rc%d total%llu:", field, (int)m, rc,
           (unsigned long long)(rc ? 0 : pg.total));
  emit(x, line);
  for (uint32_t i = 0; rc == 0 && i < pg.count; i++) {
    snprintf(line, sizeof line, " %llu", (unsigned long long)pg.contacts[i].id);
    emit(x, line);
  }
  emit(x, "\n");
  if (rc == 0) cs_page_free(&pg);
}

static int search_one(void *ctx, const cs_contact *c) {
  sctx *x = ctx;
  query(x, c->account, CS_EMAIL, CS_MATCH_EXACT, c->field[CS_EMAIL]);
  cs_str ln = c->field[CS_LAST_NAME];
  if (ln.len > 2) ln.len = 2;
  query(x, c->account, CS_LAST_NAME, CS_MATCH_PREFIX, ln);
  query(x, c->account, CS_COMPANY, CS_MATCH_WORDS, c->field[CS_COMPANY]);
  query(x, c->account, CS_SEARCH_BY_ID, CS_MATCH_DEFAULT, (cs_str){"1", 1});
  return 0;
}

/* The searches are driven by the replay's contacts, so a store that lost
 * or invented one answers differently. */
static char *searches(cs_store *s, cs_store *driver) {
  sctx x = {.s = s};
  emit(&x, "");
  cs_iterate(driver, CS_ALL_ACCOUNTS, search_one, &x, NULL);
  return x.out;
}

static void setup(void) {
  if (g_log_dir) return;
  g_log_dir = strdup(FUZZ_DATA_DIR "/snapshot-store");
  g_seg = fz_read(g_log_dir, "00000001.seg", &g_seg_len);
  if (!g_seg) fz_fail("no %s/00000001.seg: run fuzz_seedgen", g_log_dir);
  char *dir = fz_tmpdir();
  fz_manifest(dir, 1, 1, NULL);
  fz_write(dir, "00000001.seg", g_seg, g_seg_len);
  cs_options o = fz_options();
  o.no_snapshot_load = true;
  cs_store *s;
  cs_error err;
  if (cs_open(dir, &o, &s, &err))
    fz_fail("the fixed log does not open (%s): regenerate it with fuzz_seedgen",
            err.msg);
  g_replay = tu_dump(s);
  g_searches = searches(s, s);
  if (!strchr(g_replay, '\n')) fz_fail("the fixed log holds no contact");
  cs_close(s, &err);
  fz_rmrf(dir);
  free(dir);
}

/* The replay's store, kept open to drive the searches of every input. */
static cs_store *replay_store(void) {
  static cs_store *s;
  static char *dir;
  if (s) return s;
  dir = fz_tmpdir();
  fz_manifest(dir, 1, 1, NULL);
  fz_write(dir, "00000001.seg", g_seg, g_seg_len);
  cs_options o = fz_options();
  o.no_snapshot_load = true;
  cs_error err;
  if (cs_open(dir, &o, &s, &err)) fz_fail("replay store: %s", err.msg);
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 8u << 20) return 0;
  setup();
  bool forged = data[0] & 1;
  size_t len = size - 1;
  uint8_t *snap = malloc(len ? len : 1);
  memcpy(snap, data + 1, len);
  if (forged && len >= SNAP_HEADER_BYTES) {
    memcpy(snap, SNAP_MAGIC, 8);
    uint32_t ver = SNAP_FORMAT_VERSION;
    memcpy(snap + 8, &ver, 4);
    memset(snap + 12, 0, 4);
    uint64_t plen = len - SNAP_HEADER_BYTES;
    uint64_t sum = XXH3_64bits(snap + SNAP_HEADER_BYTES, plen);
    memcpy(snap + 16, &plen, 8);
    memcpy(snap + 24, &sum, 8);
  }
  char *dir = fz_tmpdir();
  fz_manifest(dir, 1, 1, SNAP_NAME);
  fz_write(dir, "00000001.seg", g_seg, g_seg_len);
  fz_write(dir, SNAP_NAME, snap, len);
  cs_options o = fz_options();
  cs_store *s = NULL;
  cs_error err = {0};
  int rc = cs_open(dir, &o, &s, &err);
  FZ_CHECK(rc == 0, "a snapshot stopped open: %s", err.msg);
  char *d = tu_dump(s);
  char *q = searches(s, replay_store());
  if (!forged) {
    FZ_CHECK(strcmp(d, g_replay) == 0,
             "opening from the snapshot differs from a full replay");
    FZ_CHECK(
        strcmp(q, g_searches) == 0,
        "searches after opening from the snapshot differ from a full replay");
  }
  free(d);
  free(q);
  cs_close(s, &err);
  fz_rmrf(dir);
  free(dir);
  free(snap);
  return 0;
}
