/*
 * fe_log.h: the access log and the server's own log lines.
 *
 * Access log: one line per answered request, in one of two formats
 * (--access-log-format). "default":
 *   TIME CLIENT "REQUEST_ID" ACCOUNT METHOD "PATH" PROTOCOL STATUS BYTES
 *   MICROSECONDS "USER_AGENT"
 * with TIME in RFC 3339 UTC with milliseconds, CLIENT the peer's numeric
 * address, ACCOUNT the key's account, PATH without the query string (which
 * may hold search terms), PROTOCOL "HTTP/1.0", "HTTP/1.1" or "HTTP/2". Every
 * field is escaped: a byte outside printable ASCII, a '"' or a '\' is
 * written \xNN (so is a space in a field without quotes), so that nothing a
 * client sends can end a field or a line; a value that is absent (no key, no
 * user agent) is a bare "-", never a quoted one. "json": one object per line
 * with the same fields (fe_access_log_json). Keys never appear.
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

typedef enum fe_access_format {
  FE_ACCESS_FORMAT_DEFAULT = 0,
  FE_ACCESS_FORMAT_JSON,
} fe_access_format;

typedef struct fe_access_entry {
  int64_t time_ms;    /* Unix time of the answer, in milliseconds */
  const char *client; /* numeric address; NULL: absent */
  const char *request_id;
  const char *account; /* NULL: absent (no key) */
  const char *method;
  const char *path; /* path_len bytes */
  size_t path_len;
  const char *protocol; /* "HTTP/1.1", "HTTP/2"; NULL: absent */
  int status;
  uint64_t bytes;         /* body bytes sent */
  uint64_t micros;        /* from request to answer */
  const char *user_agent; /* user_agent_len bytes; NULL: absent */
  size_t user_agent_len;
} fe_access_entry;

typedef struct fe_access_log fe_access_log;

/* Opens path for appending ("-": standard output). 0, or -1 with err. */
int fe_access_log_open(const char *path, fe_access_log **out, char *err,
                       size_t errlen);
void fe_access_log_close(fe_access_log *log);
/* The format lines are written in from now on (the default until set). */
void fe_access_log_set_format(fe_access_log *log, fe_access_format format);
/* Opens the log's path again (it was moved away: log rotation) and writes
 * the next lines there. 0 (also on standard output), or -1 with err and the
 * old file still in use. */
int fe_access_log_reopen(fe_access_log *log, char *err, size_t errlen);
void fe_access_log_write(fe_access_log *log, const fe_access_entry *e);

/* Parses "default" or "json"; 0, or -1 for any other word. */
int fe_access_format_parse(const char *word, fe_access_format *out);

/* fe_logfmt.c. The default format: one line with its '\n' into buf
 * (cutting a very long path or user agent, never a field's closing quote);
 * returns its length, less than len. */
size_t fe_access_log_format(char *buf, size_t len, const fe_access_entry *e);

/* The json format: a malloc'd line, one JSON object and '\n', its length in
 * *len_out; NULL when out of memory. Keys: time, client, request_id,
 * account, method, path, protocol, status, bytes, duration_us, user_agent;
 * an absent value is null. Strings are escaped by yajl's generator, bytes
 * that are not valid UTF-8 written as U+FFFD; the path and the user agent
 * are cut at FE_ACCESS_FIELD_MAX_BYTES. */
char *fe_access_log_json(const fe_access_entry *e, size_t *len_out);

/* RFC 3339 UTC with milliseconds: "2026-11-26T08:58:00.123Z". */
void fe_time_format(int64_t ms, char out[FE_TIME_MAX_BYTES]);

/* Unix time now, in milliseconds. */
int64_t fe_now_ms(void);

/* Writes "TIME LEVEL [request_id] line" to stderr; request_id may be NULL.
 * level: CD_LOG_INFO, CD_LOG_WARN or CD_LOG_ERROR; any other value is
 * written as an error, so a plugin's bad level never hides a line. A
 * control character in line or request_id (a newline in a message that
 * quotes a client) is written \xNN: one call, one line. Every line the
 * server writes once its options are read goes through here, so all have
 * the same time stamp. */
void fe_log_line(int level, const char *request_id, const char *line);

/* fe_log_line with a printf format; a line past FE_LOG_LINE_MAX_BYTES is
 * cut. */
void fe_log_printf(int level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats fe_log_line's line (without the newline) into buf, for tests;
 * returns its length, less than len. */
size_t fe_log_format_line(char *buf, size_t len, int64_t time_ms, int level,
                          const char *request_id, const char *line);

#endif
