/*
 * fe_log.h: the access log and the server's own log lines.
 *
 * Access log: one line per answered request,
 *   TIME REQUEST_ID ACCOUNT METHOD PATH STATUS BYTES MICROSECONDS
 * with TIME in RFC 3339 UTC with milliseconds, ACCOUNT "-" when the route
 * needs no key, PATH without the query string (which may hold search terms)
 * and with bytes outside printable ASCII written as \xNN so that a request
 * cannot forge log lines. Keys never appear.
 *
 * Writes are one fwrite of a whole line under the stream's lock, so lines
 * from different threads never interleave.
 */
#ifndef FE_LOG_H
#define FE_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cd_plugin.h"
#include "fe_limits.h"

typedef struct fe_access_entry {
  int64_t time_ms; /* Unix time of the answer, in milliseconds */
  const char *request_id;
  const char *account; /* NULL: "-" */
  const char *method;
  const char *path; /* path_len bytes */
  size_t path_len;
  int status;
  uint64_t bytes;  /* body bytes sent */
  uint64_t micros; /* from request to answer */
} fe_access_entry;

typedef struct fe_access_log fe_access_log;

/* Opens path for appending ("-": standard output). 0, or -1 with err. */
int fe_access_log_open(const char *path, fe_access_log **out, char *err,
                       size_t errlen);
void fe_access_log_close(fe_access_log *log);
/* Opens the log's path again (it was moved away: log rotation) and writes
 * the next lines there. 0 (also on standard output), or -1 with err and the
 * old file still in use. */
int fe_access_log_reopen(fe_access_log *log, char *err, size_t errlen);
void fe_access_log_write(fe_access_log *log, const fe_access_entry *e);

/* Formats one line with its '\n' into buf (truncating a very long path);
 * returns its length, less than len. */
size_t fe_access_log_format(char *buf, size_t len, const fe_access_entry *e);

/* RFC 3339 UTC with milliseconds: "2026-11-26T08:58:00.123Z". */
void fe_time_format(int64_t ms, char out[FE_TIME_MAX_BYTES]);

/* Unix time now, in milliseconds. */
int64_t fe_now_ms(void);

/* Writes "TIME LEVEL [request_id] line" to stderr; request_id may be NULL.
 * level: CD_LOG_INFO, CD_LOG_WARN or CD_LOG_ERROR; any other value is
 * written as an error, so a plugin's bad level never hides a line. */
void fe_log_line(int level, const char *request_id, const char *line);

#endif
