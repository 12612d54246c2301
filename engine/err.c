/*
 * err.c: the engine's error table and its reporting helpers.
 *
 * Codes and messages come from one table, CS_ERRNO_MAP in cs.h: the enum,
 * cs_strcode's stable words and cs_strerror's texts are all generated from
 * it, so a new code is one line there. System errors are -errno and read
 * as strerror.
 *
 * Invariants: nothing here takes a lock or allocates, so any module may
 * report from any thread, holding any lock.
 */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

/* A notice or finding is one line for a person: file name, offset and a
 * reason fit well within this; longer ones are cut. */
#define ERR_LINE_BYTES 600

const char *cs_strcode(int rc) {
  switch (rc) {
#define CS_ERRNO_WORD(name, value, word, text)                                 \
  case name:                                                                   \
    return word;
    CS_ERRNO_MAP(CS_ERRNO_WORD)
#undef CS_ERRNO_WORD
  case 0:
    return "ok";
  case -ENOSPC:
    return "disk_full";
  default:
    return "internal";
  }
}

const char *cs_strerror(int rc) {
  switch (rc) {
#define CS_ERRNO_TEXT(name, value, word, text)                                 \
  case name:                                                                   \
    return text;
    CS_ERRNO_MAP(CS_ERRNO_TEXT)
#undef CS_ERRNO_TEXT
  case 0:
    return "success";
  default:
    return rc < 0 ? strerror(-rc) : "unknown error";
  }
}

int cs_err(cs_error *err, int code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    err->field = -1;
    err->id = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void store_notice(cs_store *s, const char *fmt, ...) {
  char line[ERR_LINE_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (s->opts.notice)
    s->opts.notice(s->opts.notice_ctx, line);
  else
    fprintf(stderr, "contactstore: %s\n", line);
}

void finding_emit(cs_finding_fn fn, void *ctx, bool problem, const char *file,
                  int64_t offset, const char *fmt, ...) {
  if (!fn) return;
  char msg[ERR_LINE_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cs_finding f = {problem, file ? file : "", offset, msg};
  fn(ctx, &f);
}

int64_t cs_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
