/*
 * fe_log.c: access log lines and the server's own log lines on stderr.
 */
#include "fe_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fe_access_log {
  FILE *f;
  int owned;  /* fclose at the end (not stdout) */
  char *path; /* for a reopen; NULL on stdout */
};

int fe_access_log_open(const char *path, fe_access_log **out, char *err,
                       size_t errlen) {
  fe_access_log *log = calloc(1, sizeof(*log));
  if (log == NULL) {
    snprintf(err, errlen, "--access-log %s: out of memory", path);
    return -1;
  }
  if (strcmp(path, "-") == 0) {
    log->f = stdout;
  } else {
    log->f = fopen(path, "ae");
    if (log->f == NULL) {
      snprintf(err, errlen, "--access-log %s: %s", path, strerror(errno));
      free(log);
      return -1;
    }
    log->owned = 1;
    log->path = strdup(path);
  }
  /* Line buffered: a line reaches the file when the request is answered,
   * so tail -f and a crash both see every answered request. */
  setvbuf(log->f, NULL, _IOLBF, 0);
  *out = log;
  return 0;
}

void fe_access_log_close(fe_access_log *log) {
  if (log == NULL) return;
  fflush(log->f);
  if (log->owned) fclose(log->f);
  free(log->path);
  free(log);
}

/* The new file takes the stream's descriptor under the stream's lock, so
 * a line being written goes whole to the old file or the new one. */
int fe_access_log_reopen(fe_access_log *log, char *err, size_t errlen) {
  if (log->path == NULL) return 0;
  int fd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    snprintf(err, errlen, "--access-log %s: %s", log->path, strerror(errno));
    return -1;
  }
  flockfile(log->f);
  fflush(log->f);
  int rc = dup3(fd, fileno(log->f), O_CLOEXEC);
  int e = errno;
  funlockfile(log->f);
  close(fd);
  if (rc < 0) {
    snprintf(err, errlen, "--access-log %s: %s", log->path, strerror(e));
    return -1;
  }
  return 0;
}

void fe_time_format(int64_t ms, char out[FE_TIME_MAX_BYTES]) {
  time_t secs = (time_t)(ms / 1000);
  int millis = (int)(ms % 1000);
  if (millis < 0) {
    millis += 1000;
    secs--;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  /* Formatted at full width first: the compiler cannot know the fields are
   * small, and a year past 9999 is no reason to overflow. */
  char wide[96];
  int n = snprintf(wide, sizeof(wide), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, millis);
  size_t len = n < 0                               ? 0
               : (size_t)n > FE_TIME_MAX_BYTES - 1 ? FE_TIME_MAX_BYTES - 1
                                                   : (size_t)n;
  memcpy(out, wide, len);
  out[len] = '\0';
}

int64_t fe_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t fe_access_log_format(char *buf, size_t len, const fe_access_entry *e) {
  char when[FE_TIME_MAX_BYTES];
  fe_time_format(e->time_ms, when);
  int n = snprintf(buf, len, "%s %s %s %s ", when,
                   e->request_id != NULL ? e->request_id : "-",
                   e->account != NULL ? e->account : "-", e->method);
  size_t used = n < 0 ? 0 : (size_t)n;
  if (used >= len) used = len - 1;

  /* The tail (status, bytes, micros, newline) needs at most ~64 bytes;
   * keep room for it and cut a long path. */
  char tail[96];
  int tn = snprintf(tail, sizeof(tail), " %d %" PRIu64 " %" PRIu64 "\n",
                    e->status, e->bytes, e->micros);
  size_t tail_len = tn < 0 ? 0 : (size_t)tn;
  size_t room = len > used + tail_len + 1 ? len - used - tail_len - 1 : 0;

  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < e->path_len; i++) {
    unsigned char c = (unsigned char)e->path[i];
    if (c > 0x20 && c < 0x7f && c != '\\') {
      if (room < 1) break;
      buf[used++] = (char)c;
      room--;
    } else {
      if (room < 4) break;
      buf[used++] = '\\';
      buf[used++] = 'x';
      buf[used++] = hex[c >> 4];
      buf[used++] = hex[c & 15];
      room -= 4;
    }
  }
  if (e->path_len == 0 && room > 0) {
    buf[used++] = '-';
  }
  if (used + tail_len < len) {
    memcpy(buf + used, tail, tail_len);
    used += tail_len;
  }
  buf[used] = '\0';
  return used;
}

void fe_access_log_write(fe_access_log *log, const fe_access_entry *e) {
  char line[FE_ACCESS_LINE_MAX_BYTES];
  size_t n = fe_access_log_format(line, sizeof(line), e);
  fwrite(line, 1, n, log->f);
}

void fe_log_line(int level, const char *request_id, const char *line) {
  static const char *const names[] = {[CD_LOG_INFO] = "info",
                                      [CD_LOG_WARN] = "warning",
                                      [CD_LOG_ERROR] = "error"};
  char when[FE_TIME_MAX_BYTES];
  fe_time_format(fe_now_ms(), when);
  if (level < CD_LOG_INFO || level > CD_LOG_ERROR) level = CD_LOG_ERROR;
  if (request_id != NULL)
    fprintf(stderr, "%s %s [%s] %s\n", when, names[level], request_id, line);
  else
    fprintf(stderr, "%s %s %s\n", when, names[level], line);
}
