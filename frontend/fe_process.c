/*
 * fe_process.c: this process's memory, CPU time, start time and file
 * descriptors, read from /proc when /metrics is scraped.
 */
#include "fe_process.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fe_limits.h"

/* Fields of /proc/PID/stat after the command name, counted from the state
 * (field 3 of proc(5)) as 0. */
enum {
  STAT_UTIME = 14 - 3,
  STAT_STIME = 15 - 3,
  STAT_STARTTIME = 22 - 3,
  STAT_VSIZE = 23 - 3,
  STAT_RSS = 24 - 3,
  STAT_FIELDS = STAT_RSS + 1,
};

int fe_process_parse_stat(const char *text, long ticks_per_second,
                          long page_bytes, uint64_t boot_time_s,
                          fe_process_stats *out) {
  const char *p = strrchr(text, ')');
  if (p == NULL || ticks_per_second <= 0 || page_bytes <= 0) return -1;
  p++;
  unsigned long long field[STAT_FIELDS];
  for (int i = 0; i < STAT_FIELDS; i++) {
    while (*p == ' ')
      p++;
    if (*p == '\0' || *p == '\n') return -1;
    if (i == 0) { /* the state, a letter */
      field[i] = 0;
      while (*p != ' ' && *p != '\0')
        p++;
      continue;
    }
    char *end;
    errno = 0;
    /* rss may be negative in odd kernels; strtoll then clamps below. */
    long long v = strtoll(p, &end, 10);
    if (end == p || errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
      return -1;
    field[i] = v < 0 ? 0 : (unsigned long long)v;
    p = end;
  }
  out->have_stat = true;
  out->cpu_seconds = (double)(field[STAT_UTIME] + field[STAT_STIME]) /
                     (double)ticks_per_second;
  out->start_time_seconds =
      (double)boot_time_s +
      (double)field[STAT_STARTTIME] / (double)ticks_per_second;
  out->virtual_bytes = field[STAT_VSIZE];
  out->resident_bytes = field[STAT_RSS] * (uint64_t)page_bytes;
  return 0;
}

int fe_process_parse_btime(const char *text, uint64_t *out) {
  for (const char *line = text; line != NULL && *line != '\0';) {
    unsigned long long v;
    if (sscanf(line, "btime %llu", &v) == 1) {
      *out = v;
      return 0;
    }
    line = strchr(line, '\n');
    if (line != NULL) line++;
  }
  return -1;
}

/* The whole of a small /proc file as a string, cut at n - 1 bytes. */
static int read_small(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "re");
  if (f == NULL) return -1;
  size_t got = fread(buf, 1, n - 1, f);
  fclose(f);
  buf[got] = '\0';
  return got > 0 ? 0 : -1;
}

static int count_fds(uint64_t *out) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  int own = dirfd(d);
  uint64_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (atoi(e->d_name) == own) continue; /* the listing's own descriptor */
    n++;
  }
  closedir(d);
  *out = n;
  return 0;
}

/* /proc/stat's btime, read a line at a time: the lines before it (one per
 * CPU, every interrupt's count) can be long. */
static int boot_time(uint64_t *out) {
  FILE *f = fopen("/proc/stat", "re");
  if (f == NULL) return -1;
  char *line = NULL;
  size_t cap = 0;
  int rc = -1;
  while (rc != 0 && getline(&line, &cap, f) > 0)
    rc = fe_process_parse_btime(line, out);
  free(line);
  fclose(f);
  return rc;
}

void fe_process_read(fe_process_stats *out) {
  memset(out, 0, sizeof(*out));
  char stat[FE_PROC_STAT_MAX_BYTES];
  uint64_t btime;
  if (read_small("/proc/self/stat", stat, sizeof(stat)) == 0 &&
      boot_time(&btime) == 0)
    fe_process_parse_stat(stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE),
                          btime, out);
  out->have_fds = count_fds(&out->open_fds) == 0;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    out->have_max_fds = true;
    out->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
  }
}
