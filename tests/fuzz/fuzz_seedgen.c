/*
 * fuzz_seedgen.c: writes the engine-made seed inputs of the fuzz targets.
 *
 * Usage: fuzz_seedgen DIR   (DIR is tests/fuzz; run it again only when an
 * on-disk format changes, and commit what it writes)
 *
 * It builds a small store with the engine itself (creates in two accounts,
 * Unicode values, edits, deletes, a snapshot half way and one at the end)
 * and writes:
 *   DIR/data/snapshot-store/00000001.seg   the fixed log of fuzz_snapshot
 *   DIR/corpus/snapshot/   both snapshots, as they are and as forged
 *                           (flag byte 1), and one cut short
 *   DIR/corpus/segment/    the segment whole, without its header (flag 2),
 *                           re-framed (flag 1), followed by a segment 2
 *                           (flag 4), cut in its last record, with a garbage
 *                           tail, and an empty one
 *   DIR/corpus/record/     every record of the segment, and a meta record
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "record.h"
#include "test_util.h"

static const char *g_out;

static void put(const char *sub, const char *name, uint8_t flags, const void *p,
                size_t len) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", g_out, sub);
  mkdir(dir, 0755);
  uint8_t *buf = malloc(len + 1);
  size_t off = 0;
  if (strncmp(sub, "corpus/record", 13) != 0 && strncmp(sub, "data", 4) != 0)
    buf[off++] = flags;
  memcpy(buf + off, p, len);
  fz_write(dir, name, buf, len + off);
  free(buf);
}

static void must(int rc, const cs_error *err, const char *what) {
  if (rc) fz_fail("%s: %s", what, err->msg);
}

/* The newest snap-*.snap in dir, read whole. */
static uint8_t *read_snapshot(const char *dir, size_t *len) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char best[256] = "";
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, "snap-", 5) && strcmp(e->d_name, best) > 0)
      snprintf(best, sizeof best, "%s", e->d_name);
  closedir(d);
  if (!best[0]) fz_fail("no snapshot in %s", dir);
  return fz_read(dir, best, len);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_seedgen DIR (tests/fuzz)\n");
    return 2;
  }
  g_out = argv[1];
  char path[4096];
  snprintf(path, sizeof path, "%s/corpus", g_out);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/data", g_out);
  mkdir(path, 0755);

  char *dir = fz_tmpdir();
  cs_options o = fz_options();
  cs_store *s;
  cs_error err;
  must(cs_open(dir, &o, &s, &err), &err, "open");
  static const char *const people[][6] = {
      {"Ada", "Lovelace", "ada@example.com", "+44 20 7946 0000",
       "Analytical Engines", "Countess"},
      {"Grace", "Hopper", "grace@navy.example", "(703) 555-0100", "US Navy",
       "Rear Admiral"},
      {"José", "Müller", "jose@example.com", "1234567890", "Exámple Inc.",
       NULL},
      {"Straße", "Ünïcödé", "strasse@example.de", NULL, "Großhandel GmbH",
       "Verkäufer"},
      {"李", "小龙", "li@example.cn", "+86 10 5555 0100", "功夫", NULL},
      {"Alan", "Turing", "alan@example.co.uk", NULL, "Bletchley Park",
       "Cryptanalyst"},
      {"Edsger", "Dijkstra", "ewd@example.nl", "+31 40 555 0100", NULL, NULL},
      {"Barbara", "Liskov", "liskov@example.edu", NULL, "MIT", "Professor"},
      {"Ken", "Thompson", "ken@example.com", "555 0101", "Bell Labs", NULL},
      {"Dennis", "Ritchie", "dmr@example.com", "555 0102", "Bell Labs", NULL},
  };
  uint64_t ids[16];
  int n = 0;
  for (int i = 0; i < 10; i++) {
    cs_contact c = tu_contact(
        people[i][0], people[i][1], people[i][2], people[i][3], people[i][4],
        people[i][5],
        i % 3 == 0 ? "met at the conference; follow up in spring" : NULL);
    must(tu_create(s, i < 7 ? 1 : 2, c, &ids[n++], &err), &err, "create");
    if (i == 5) {
      must(cs_snapshot(s, &err), &err, "snapshot");
      size_t len;
      uint8_t *snap = read_snapshot(dir, &len);
      put("corpus/snapshot", "mid", 0, snap, len);
      put("corpus/snapshot", "mid-forged", 1, snap, len);
      free(snap);
    }
  }
  cs_patch p = {.set_mask = 1u << CS_COMPANY, .clear_mask = 1u << CS_PHONE};
  p.field[CS_COMPANY] = (cs_str){"Navy Reserve", 12};
  must(tu_update(s, 1, ids[1], p, &err), &err, "update");
  must(tu_delete(s, 1, ids[4], &err), &err, "delete");
  must(tu_delete(s, 2, ids[8], &err), &err, "delete");
  cs_contact again =
      tu_contact("Li", "Xiaolong", "li@example.cn", NULL, NULL, NULL, NULL);
  must(tu_create(s, 1, again, &ids[n++], &err), &err, "create again");
  must(cs_snapshot(s, &err), &err, "snapshot");
  size_t snap_len;
  uint8_t *snap = read_snapshot(dir, &snap_len);
  put("corpus/snapshot", "end", 0, snap, snap_len);
  put("corpus/snapshot", "end-forged", 1, snap, snap_len);
  put("corpus/snapshot", "end-cut", 0, snap, snap_len / 2);
  put("corpus/snapshot", "empty", 0, "", 0);
  free(snap);
  must(cs_close(s, &err), &err, "close");

  size_t seg_len;
  uint8_t *seg = fz_read(dir, "00000001.seg", &seg_len);
  put("data/snapshot-store", "00000001.seg", 0, seg, seg_len);

  /* Segments. */
  put("corpus/segment", "whole", 0, seg, seg_len);
  put("corpus/segment", "records-only", 2, seg + SEG_HEADER_BYTES,
      seg_len - SEG_HEADER_BYTES);
  put("corpus/segment", "reframed", 1 | 2, seg + SEG_HEADER_BYTES,
      seg_len - SEG_HEADER_BYTES);
  put("corpus/segment", "then-segment-2", 4, seg, seg_len);
  put("corpus/segment", "torn", 0, seg, seg_len - 7);
  put("corpus/segment", "torn-then-segment-2", 4, seg, seg_len - 7);
  put("corpus/segment", "header-only", 0, seg, SEG_HEADER_BYTES);
  uint8_t *junk = malloc(seg_len + 40);
  memcpy(junk, seg, seg_len);
  for (int i = 0; i < 40; i++)
    junk[seg_len + i] = (uint8_t)(i * 37 + 11);
  put("corpus/segment", "garbage-tail", 0, junk, seg_len + 40);
  free(junk);

  /* Records. */
  size_t off = SEG_HEADER_BYTES;
  int k = 0;
  while (off + REC_HEADER_BYTES <= seg_len) {
    rec_view v;
    if (rec_check(seg + off, seg_len - off, &v)) break;
    char name[32];
    snprintf(name, sizeof name, "%s-%02d",
             v.type == REC_PUT      ? "put"
             : v.type == REC_DELETE ? "delete"
                                    : "meta",
             k++);
    put("corpus/record", name, 0, seg + off, REC_HEADER_BYTES + v.len);
    off += REC_HEADER_BYTES + v.len;
  }
  rec_buf b = {0};
  if (rec_append_meta(&b, 99, CS_ID_MIN + 100)) fz_fail("meta");
  put("corpus/record", "meta", 0, b.ptr, b.len);
  rec_buf_free(&b);
  free(seg);
  fz_rmrf(dir);
  free(dir);
  printf("seeds written under %s (%d records)\n", g_out, k);
  return 0;
}
