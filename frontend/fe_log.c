/*
 * fe_log.c: the access log's file and the server's own log lines on
 * stderr; the access log's two line formats are fe_logfmt.c's.
 */
#include "fe_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fe_access_log {
  FILE *f;
  int owned; /* fclose at the end (not stdout) */
  fe_access_format format;
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
  /* Every access log line formats the time: the part up to the seconds is
   * kept for the second it names, per thread, so that most lines pay for
   * three digits, not for gmtime_r and a formatted print. */
  static _Thread_local bool cached;
  static _Thread_local time_t cached_secs;
  static _Thread_local char head[FE_TIME_MAX_BYTES];
  static _Thread_local size_t head_len;
  if (!cached || cached_secs != secs) {
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Formatted at full width first: the compiler cannot know the fields
     * are small, and a year past 9999 is no reason to overflow. */
    char wide[96];
    int n = snprintf(wide, sizeof(wide), "%04d-%02d-%02dT%02d:%02d:%02d",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
    /* Room for ".mmmZ" and the NUL. */
    size_t room = FE_TIME_MAX_BYTES - 6;
    head_len = n < 0 ? 0 : (size_t)n > room ? room : (size_t)n;
    memcpy(head, wide, head_len);
    cached_secs = secs;
    cached = true;
  }
  memcpy(out, head, head_len);
  char *p = out + head_len;
  *p++ = '.';
  *p++ = (char)('0' + millis / 100);
  *p++ = (char)('0' + millis / 10 % 10);
  *p++ = (char)('0' + millis % 10);
  *p++ = 'Z';
  *p = '\0';
}

int64_t fe_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fe_access_log_set_format(fe_access_log *log, fe_access_format format) {
  log->format = format;
}

int fe_access_format_parse(const char *word, fe_access_format *out) {
  if (strcmp(word, "default") == 0)
    *out = FE_ACCESS_FORMAT_DEFAULT;
  else if (strcmp(word, "json") == 0)
    *out = FE_ACCESS_FORMAT_JSON;
  else
    return -1;
  return 0;
}

void fe_access_log_write(fe_access_log *log, const fe_access_entry *e) {
  if (log->format == FE_ACCESS_FORMAT_JSON) {
    size_t n = 0;
    char *line = fe_access_log_json(e, &n);
    if (line != NULL) fwrite(line, 1, n, log->f);
    free(line);
    return;
  }
  char line[FE_ACCESS_LINE_MAX_BYTES];
  size_t n = fe_access_log_format(line, sizeof(line), e);
  fwrite(line, 1, n, log->f);
}

/* Appends s to buf at *used with control characters as \xNN, stopping
 * before an escape that would not fit (keeping one byte for the NUL). */
static void put_escaped(char *buf, size_t len, size_t *used, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    bool plain = c >= 0x20 && c != 0x7f;
    size_t need = plain ? 1 : 4;
    if (*used + need >= len) break;
    if (plain) {
      buf[(*used)++] = (char)c;
    } else {
      buf[(*used)++] = '\\';
      buf[(*used)++] = 'x';
      buf[(*used)++] = hex[c >> 4];
      buf[(*used)++] = hex[c & 15];
    }
  }
  buf[*used] = '\0';
}

size_t fe_log_format_line(char *buf, size_t len, int64_t time_ms, int level,
                          const char *request_id, const char *line) {
  static const char *const names[] = {[CD_LOG_INFO] = "info",
                                      [CD_LOG_WARN] = "warning",
                                      [CD_LOG_ERROR] = "error"};
  if (level < CD_LOG_INFO || level > CD_LOG_ERROR) level = CD_LOG_ERROR;
  char when[FE_TIME_MAX_BYTES];
  fe_time_format(time_ms, when);
  size_t used = 0;
  buf[0] = '\0';
  put_escaped(buf, len, &used, when);
  put_escaped(buf, len, &used, " ");
  put_escaped(buf, len, &used, names[level]);
  if (request_id != NULL) {
    put_escaped(buf, len, &used, " [");
    put_escaped(buf, len, &used, request_id);
    put_escaped(buf, len, &used, "]");
  }
  put_escaped(buf, len, &used, " ");
  put_escaped(buf, len, &used, line);
  return used;
}

void fe_log_line(int level, const char *request_id, const char *line) {
  char out[FE_LOG_OUT_MAX_BYTES];
  size_t n = fe_log_format_line(out, sizeof(out) - 1, fe_now_ms(), level,
                                request_id, line);
  out[n++] = '\n';
  fwrite(out, 1, n, stderr);
}

void fe_log_printf(int level, const char *request_id, const char *fmt, ...) {
  char line[FE_LOG_LINE_MAX_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fe_log_line(level, request_id, line);
}
