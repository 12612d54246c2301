/*
 * err.h: how the engine reports: an error code with a message for people
 * (cs_err, the table of cs.h's CS_ERRNO_MAP in err.c), a notice (something
 * the store repaired or noticed on its own), and a finding of the offline
 * operations (admin.h). Every module below the public calls uses these.
 */
#ifndef CS_ERR_H
#define CS_ERR_H

#include <stdbool.h>
#include <stdint.h>

#include "admin.h"
#include "cs.h"

/* Fills err (when not NULL: code, field -1, id 0, the message) and returns
 * code. */
int cs_err(cs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Tells the store's owner (opts.notice, or stderr) one line. */
void store_notice(cs_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Passes one finding to fn (when not NULL); file NULL means none. */
void finding_emit(cs_finding_fn fn, void *ctx, bool problem, const char *file,
                  int64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Wall-clock milliseconds since the epoch. */
int64_t cs_now_ms(void);

#endif
