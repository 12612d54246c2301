/*
 * fe_process.h: the process's own figures for /metrics, read at scrape
 * time from /proc/self/stat, /proc/stat, /proc/self/fd and getrlimit, as
 * Prometheus's process_* metrics define them.
 */
#ifndef FE_PROCESS_H
#define FE_PROCESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct fe_process_stats {
  bool have_stat; /* the next five were read */
  uint64_t resident_bytes;
  uint64_t virtual_bytes;
  double cpu_seconds;        /* user and system */
  double start_time_seconds; /* Unix time */
  bool have_fds;
  uint64_t open_fds;
  bool have_max_fds;
  uint64_t max_fds; /* the soft limit, RLIMIT_NOFILE */
} fe_process_stats;

/*
 * Parses the text of /proc/PID/stat into out's have_stat figures: clock
 * ticks per second, the page size and the boot time (Unix seconds, /proc/
 * stat's btime) turn its fields into the metrics' units. The command name
 * may hold spaces and parentheses; fields are counted after the last ')'.
 * 0, or -1 (out untouched) when the text is not such a line.
 */
int fe_process_parse_stat(const char *text, long ticks_per_second,
                          long page_bytes, uint64_t boot_time_s,
                          fe_process_stats *out);

/* The btime line of /proc/stat's text; 0, or -1 without one. */
int fe_process_parse_btime(const char *text, uint64_t *out);

/* Reads this process's figures now. Each group that cannot be read is left
 * out (its have_ flag false), never guessed. */
void fe_process_read(fe_process_stats *out);

#endif
