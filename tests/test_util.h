/*
 * test_util.h: small helpers shared by the engine's tests: temporary data
 * directories, contacts built in one line, and writes that wait for their
 * completion.
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cs.h"

/* A fresh directory under $TMPDIR (or /tmp); malloc'd path. */
char *tu_tmpdir(void);
/* rm -rf dir. */
void tu_rmrf(const char *dir);
/* cp -a from to (to must not exist). */
void tu_copy_dir(const char *from, const char *to);

/* A contact from NUL-terminated strings (NULL = absent). */
cs_contact tu_contact(const char *first, const char *last, const char *email,
                      const char *phone, const char *company,
                      const char *job_title, const char *notes);

/* Waits for completions. */
typedef struct tu_waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int pending;
  int first_rc;
} tu_waiter;

void tu_waiter_init(tu_waiter *w);
void tu_waiter_add(tu_waiter *w);
/* A cs_done_fn whose ctx is a tu_waiter. */
void tu_done(void *ctx, int rc, uint64_t id);
/* Waits until nothing is pending; returns the first failure, or 0. */
int tu_waiter_wait(tu_waiter *w);

/* Writes that return once complete: the submit's error, or the commit's. */
int tu_create(cs_store *s, uint32_t account, cs_contact c, uint64_t *id,
              cs_error *err);
int tu_update(cs_store *s, uint32_t account, uint64_t id, cs_patch p,
              cs_error *err);
int tu_delete(cs_store *s, uint32_t account, uint64_t id, cs_error *err);
/* cs_write_apply, waiting for the commit when something was queued. */
int tu_write(cs_store *s, cs_write *w, cs_outcome *o, cs_error *err);

/* Text of a contact's field, "" when absent, NUL-terminated in a static
 * rotating buffer. */
const char *tu_field(const cs_contact *c, int field);

/* A dump of every live contact, one line each, in id order: for comparing
 * two stores (or a store before and after reopening). malloc'd. */
char *tu_dump(cs_store *s);

#endif
