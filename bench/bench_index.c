/*
 * bench_index.c: CPU cost of the inverted indexes (engine/index.c, ix_*.c) at a
 * given size, phase by phase: a bulk load (replay), ix_bulk_end, ix_save,
 * ix_load, then live (non-bulk) inserts into the loaded index, and
 * ix_memory_bytes.
 *
 * Why CPU time: the machines these run on are shared and their memory is
 * slow, so wall time mostly measures the neighbours; process CPU time
 * (page faults included) is what the index itself costs. Compare two
 * builds side by side in one run. ix_bulk_end and ix_load spread their
 * dictionaries over a few threads, so they also show wall time.
 *
 * Usage: bench_index [contacts (default 1000000)] [live inserts (20000)]
 *                    [harness] [live]
 * Data: unique emails and phones, 5000 first names, 10000 last names,
 * 20000 companies (skewed), 500 job titles, notes of 3-8 words from a
 * 2000-word vocabulary; one account. With "harness", bench_engine's
 * contacts instead (bh_gen_contact, seed 42), so the memory breakdown it
 * prints structure by structure (ix_memory_parts) is bench_engine's. With
 * "live" too, the first phase inserts outside bulk mode, as a running
 * server (and bench_engine's setup load) does, so the breakdown shows what
 * growth leaves unused.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs.h"
#include "harness.h"
#include "index.h"

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double wall_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Cubed uniform: a few companies hold most contacts. */
static uint32_t skewed(uint32_t n) {
  double u = (double)(rnd() >> 11) * (1.0 / 9007199254740992.0);
  return (uint32_t)(n * u * u * u) % n;
}

static char vocab[2000][12];

typedef struct rec {
  char *v[CS_FIELD_COUNT];
} rec;

static char *dup(const char *s) {
  char *p = strdup(s);
  if (!p) abort();
  return p;
}

static void gen(rec *r, uint32_t i) {
  char b[512];
  uint32_t fn = (uint32_t)(rnd() % 5000), ln = (uint32_t)(rnd() % 10000);
  uint32_t co = skewed(20000);
  snprintf(b, sizeof b, "First%u", fn);
  r->v[CS_FIRST_NAME] = dup(b);
  snprintf(b, sizeof b, "Last%u", ln);
  r->v[CS_LAST_NAME] = dup(b);
  snprintf(b, sizeof b, "first%u.last%u.%u@company%u.com", fn, ln, i, co);
  r->v[CS_EMAIL] = dup(b);
  snprintf(b, sizeof b, "+1 555 %07u", i * 7u + 13u);
  r->v[CS_PHONE] = dup(b);
  snprintf(b, sizeof b, "Company %u Inc", co);
  r->v[CS_COMPANY] = dup(b);
  snprintf(b, sizeof b, "Title %u", (uint32_t)(rnd() % 500));
  r->v[CS_JOB_TITLE] = dup(b);
  int nw = 3 + (int)(rnd() % 6);
  size_t o = 0;
  for (int w = 0; w < nw; w++)
    o += (size_t)snprintf(b + o, sizeof b - o, "%s%s", w ? " " : "",
                          vocab[rnd() % 2000]);
  r->v[CS_NOTES] = dup(b);
}

static void gen_harness(const bh_gen *g, rec *r, uint32_t i) {
  bh_contact c;
  bh_gen_contact(g, i, &c);
  const char *v[BH_FIELDS];
  bh_contact_values(&c, v);
  for (int k = 0; k < CS_FIELD_COUNT; k++)
    r->v[k] = dup(v[k] ? v[k] : "");
}

static void parts_print(const char *title, const ix_index *ix, uint32_t n) {
  ix_mem_part p[IX_MEM_DICTS], t = {.name = "total"};
  ix_memory_parts(ix, p);
  double d = n ? n : 1;
  printf("%s, bytes a contact:\n%-18s %9s %6s %6s %6s %6s %6s %6s %6s\n", title,
         "structure", "keys", "ents", "tab", "arena", "order", "post", "other",
         "sum");
  for (int i = 0; i <= IX_MEM_DICTS; i++) {
    ix_mem_part *q = i < IX_MEM_DICTS ? &p[i] : &t;
    size_t sum = q->ents + q->tab + q->arena + q->order + q->post + q->other;
    if (i < IX_MEM_DICTS) {
      if (!sum) continue;
      t.keys += q->keys, t.ents += q->ents, t.tab += q->tab;
      t.arena += q->arena, t.order += q->order, t.post += q->post;
      t.other += q->other;
    }
    printf("%-18s %9zu %6.1f %6.1f %6.1f %6.1f %6.1f %6.1f %6.1f\n", q->name,
           q->keys, q->ents / d, q->tab / d, q->arena / d, q->order / d,
           q->post / d, q->other / d, sum / d);
  }
}

static void fields(const rec *r, cs_str f[CS_FIELD_COUNT]) {
  for (int k = 0; k < CS_FIELD_COUNT; k++)
    f[k] = (cs_str){r->v[k], strlen(r->v[k])};
}

int main(int argc, char **argv) {
  uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000;
  uint32_t extra = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 20000;
  for (int i = 0; i < 2000; i++) {
    int l = 4 + i % 6;
    for (int j = 0; j < l; j++)
      vocab[i][j] = (char)('a' + rnd() % 26);
  }
  bool harness = argc > 3 && !strcmp(argv[3], "harness");
  bool live = argc > 4 && !strcmp(argv[4], "live");
  bh_gen *g = harness ? bh_gen_create(42) : NULL;
  rec *rs = malloc(sizeof(rec) * ((size_t)n + extra));
  if (!rs || (harness && !g)) return 1;
  for (uint32_t i = 0; i < n + extra; i++) {
    if (harness)
      gen_harness(g, &rs[i], i);
    else
      gen(&rs[i], i);
  }
  bh_gen_destroy(g);

  cs_str f[CS_FIELD_COUNT];
  ix_index *ix = ix_create();
  if (!ix) return 1;
  double t0 = cpu_now();
  if (!live) ix_bulk_begin(ix);
  for (uint32_t i = 0; i < n; i++) {
    fields(&rs[i], f);
    if (ix_insert(ix, 1, i, f, 0, 0, 0)) return 1;
  }
  double t1 = cpu_now(), w1 = wall_now();
  if (!live && ix_bulk_end(ix)) return 1;
  double t2 = cpu_now(), w2 = wall_now();
  size_t mem = ix_memory_bytes(ix);
  parts_print(live ? "after live inserts" : "after bulk load", ix, n);

  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  double t3 = cpu_now();
  if (ix_save(ix, &pk)) return 1;
  double t4 = cpu_now();
  ix_destroy(ix);

  msgpack_zone z;
  msgpack_zone_init(&z, 1 << 16);
  msgpack_object obj;
  size_t off = 0;
  if (msgpack_unpack(sb.data, sb.size, &off, &z, &obj) !=
      MSGPACK_UNPACK_SUCCESS)
    return 1;
  ix_index *lx = ix_create();
  char err[256];
  double t5 = cpu_now(), w5 = wall_now();
  if (!lx || ix_load(lx, &obj, n + extra, err, sizeof err)) {
    fprintf(stderr, "load: %s\n", err);
    return 1;
  }
  double t6 = cpu_now(), w6 = wall_now();
  size_t mem_loaded = ix_memory_bytes(lx);
  parts_print("after ix_load", lx, n);

  double t7 = cpu_now();
  for (uint32_t i = n; i < n + extra; i++) {
    fields(&rs[i], f);
    if (ix_insert(lx, 1, i, f, 0, 0, 0)) return 1;
  }
  double t8 = cpu_now();

  printf("contacts %u\n", n);
  printf("%s      %8.3f s CPU\n", live ? "live insert" : "bulk insert",
         t1 - t0);
  printf("ix_bulk_end      %8.3f s CPU %8.3f s wall\n", t2 - t1, w2 - w1);
  printf("ix_save          %8.3f s CPU (%zu bytes)\n", t4 - t3, sb.size);
  printf("ix_load          %8.3f s CPU %8.3f s wall\n", t6 - t5, w6 - w5);
  printf("live insert      %8.2f us CPU a contact (%u)\n",
         (t8 - t7) / (extra ? extra : 1) * 1e6, extra);
  printf("ix_memory_bytes  %8.1f MB (loaded %.1f MB)\n", (double)mem / 1e6,
         (double)mem_loaded / 1e6);
  ix_destroy(lx);
  msgpack_zone_destroy(&z);
  msgpack_sbuffer_destroy(&sb);
  for (uint32_t i = 0; i < n + extra; i++)
    for (int k = 0; k < CS_FIELD_COUNT; k++)
      free(rs[i].v[k]);
  free(rs);
  return 0;
}
