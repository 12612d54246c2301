/*
 * bench_open: how long a store takes to open, by full replay of its log or
 * from its snapshot, beside another build's bench_open on the same store.
 *
 *   bench_open [--snapshot] [--reps N] [--baseline PATH] DIR
 *
 * DIR is a store: `bench_engine --keep --dir D` leaves one of a million
 * contacts in D/contactd-bench-XXXXXX/engine. Each rep opens it (the snapshot
 * ignored unless --snapshot), reads its stats and closes it without
 * writing a snapshot, so the store is the same for every rep. With
 * --baseline, each rep also runs PATH (another build's bench_open) on the
 * same store, alternating which goes first (ABBA), and the table gives
 * both and the ratio. Wall and CPU seconds of the open alone; medians.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs.h"
#include "harness.h"

#define REPS_MAX 99

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One open of dir here: wall and CPU seconds, the contacts it holds. */
static int open_once(const char *dir, bool snapshot, double *wall, double *cpu,
                     uint64_t *contacts) {
  cs_options o = {.durability = CS_DURABILITY_FSYNC,
                  .no_snapshot_load = !snapshot,
                  .no_snapshot_on_close = true};
  cs_store *s = NULL;
  cs_error err = {0};
  double c0 = cpu_seconds();
  uint64_t t0 = bh_now_ns();
  if (cs_open(dir, &o, &s, &err) != 0) {
    fprintf(stderr, "bench_open: %s: %s\n", dir, err.msg);
    return -1;
  }
  *wall = bh_seconds(t0, bh_now_ns());
  *cpu = cpu_seconds() - c0;
  cs_stats st;
  cs_stats_get(s, &st);
  *contacts = st.contacts;
  if (cs_close(s, &err) != 0) {
    fprintf(stderr, "bench_open: close: %s\n", err.msg);
    return -1;
  }
  return 0;
}

/* One open by the baseline program: its --one line "wall cpu contacts". */
static int open_baseline(const char *path, const char *dir, bool snapshot,
                         double *wall, double *cpu, uint64_t *contacts) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "'%s' --one %s '%s'", path,
           snapshot ? "--snapshot" : "", dir);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  int n = fscanf(p, "%lf %lf %" SCNu64, wall, cpu, contacts);
  int st = pclose(p);
  if (n != 3 || st != 0) {
    fprintf(stderr, "bench_open: %s gave no measurement\n", path);
    return -1;
  }
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_open [--snapshot] [--reps N] [--baseline PATH] "
          "DIR\n"
          "  --snapshot       open from the snapshot (default: full replay)\n"
          "  --reps N         opens of each build (default 5, at most 99)\n"
          "  --baseline PATH  another build's bench_open, run in turn\n");
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"snapshot", no_argument, 0, 's'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"baseline", required_argument, 0, 'b'},
                                       {"one", no_argument, 0, '1'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  bool snapshot = false, one = false;
  int reps = 5;
  const char *baseline = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      snapshot = true;
      break;
    case 'r':
      reps = atoi(optarg);
      if (reps < 1 || reps > REPS_MAX) {
        fprintf(stderr, "bench_open: --reps takes 1 to %d\n", REPS_MAX);
        return 2;
      }
      break;
    case 'b':
      baseline = optarg;
      break;
    case '1':
      one = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind + 1 != argc) {
    usage(stderr);
    return 2;
  }
  const char *dir = argv[optind];
  double wall, cpu;
  uint64_t contacts;
  if (one) { /* what a --baseline run reads */
    if (open_once(dir, snapshot, &wall, &cpu, &contacts)) return 1;
    printf("%.6f %.6f %" PRIu64 "\n", wall, cpu, contacts);
    return 0;
  }
  double w[2][REPS_MAX], u[2][REPS_MAX];
  uint64_t n[2] = {0, 0};
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < (baseline ? 2 : 1); k++) {
      int side = baseline ? (r + k) % 2 : 0; /* ABBA */
      int rc = side == 0 ? open_once(dir, snapshot, &w[0][r], &u[0][r], &n[0])
                         : open_baseline(baseline, dir, snapshot, &w[1][r],
                                         &u[1][r], &n[1]);
      if (rc) return 1;
      fprintf(stderr, "rep %d %s: %.3f s wall, %.3f s CPU\n", r + 1,
              side ? "baseline" : "this build", w[side][r], u[side][r]);
    }
  if (baseline && n[0] != n[1]) {
    fprintf(stderr,
            "bench_open: the builds found %" PRIu64 " and %" PRIu64
            " contacts\n",
            n[0], n[1]);
    return 1;
  }
  const char *how = snapshot ? "from the snapshot" : "by full replay";
  printf("| open %s, %" PRIu64 " contacts, median of %d | this build |%s\n",
         how, n[0], reps, baseline ? " baseline | ratio |" : "");
  printf("|:--|--:|%s\n", baseline ? "--:|--:|" : "");
  double mw = bh_median(w[0], (size_t)reps), mu = bh_median(u[0], (size_t)reps);
  if (!baseline) {
    printf("| wall | %.3f s |\n| CPU | %.3f s |\n", mw, mu);
    return 0;
  }
  double bw = bh_median(w[1], (size_t)reps), bu = bh_median(u[1], (size_t)reps);
  printf("| wall | %.3f s | %.3f s | %.2f |\n", mw, bw, mw / bw);
  printf("| CPU | %.3f s | %.3f s | %.2f |\n", mu, bu, mu / bu);
  return 0;
}
