/*
 * ctl.h: what the commands of contactctl share (contactctl.c) with those
 * kept in files of their own (ctl_load.c): exit statuses, usage and error
 * reporting, progress on a terminal, account lookup.
 */
#ifndef CTL_H
#define CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cs.h"

enum { EXIT_OK = 0, EXIT_PROBLEM = 1, EXIT_USAGE = 2 };

/* The program's name, for messages. */
extern const char *prog;

/* The help of one command (cmd NULL: of all) to f. */
void usage(FILE *f, const char *cmd);
/* A usage error: the message and cmd's help on stderr; EXIT_USAGE. */
int bad_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* An engine error, with the exit status it maps to (EXIT_PROBLEM). */
int fail(const char *what, int rc, const cs_error *err);

/* Progress of a long command, drawn on stderr when it is a terminal. */
typedef struct progress {
  bool on;
  const char *what;
  uint64_t start_ns;
  uint64_t last_ns;
  const char *unit;
} progress;

uint64_t now_ns(void);
void progress_begin(progress *p, const char *what, const char *unit);
/* A cs_progress_fn: at most five redraws a second. */
void progress_show(void *ctx, uint64_t done, uint64_t total);
void progress_end(progress *p);

/* A cs_options.notice printing the store's notices on stderr. */
void notice_print(void *ctx, const char *line);

/* The account's number, or an exit status (2 when it does not exist). */
int account_lookup(const char *dir, const char *name, uint32_t *id);

/* A cs_finding_fn printing a problem or note on stderr (ctx: a progress
 * to clear first, or NULL). */
struct cs_finding;
void finding_print(void *ctx, const struct cs_finding *f);

/* Opens the store for a command that only reads (dump, stats): no search
 * indexes, no snapshot at close. */
int store_open_ro(const char *dir, cs_store **s, cs_error *err);

/* Whether dir is a directory with nothing in it (false when it is not
 * there: restore and init make it first, or look). */
bool dir_empty(const char *dir);

/* contactctl load (ctl_load.c) and dump (ctl_dump.c). */
int cmd_load(const char *dir, int argc, char **argv);
int cmd_dump(const char *dir, int argc, char **argv);
/* contactctl backup and restore (ctl_backup.c). */
int cmd_backup(const char *dir, int argc, char **argv);
/* contactctl promote and fence (ctl_repl.c). */
int cmd_promote(const char *dir, int argc, char **argv);
int cmd_fence(const char *dir, int argc, char **argv);

/* An admin key is "ck_" and 40 characters; a key file may end in a
 * newline. Anything longer is not a key file. */
#define CTL_KEY_FILE_MAX 256
/* The admin key for command what: the first line of path, or (path NULL)
 * CONTACTD_ADMIN_KEY. 0, or an exit status with the reason on stderr. */
int ctl_read_key(const char *what, const char *path, char *key, size_t cap);
int cmd_restore(const char *dir, int argc, char **argv);

/* The columns of a CSV dump, in order, which load reads back: the
 * account, then the members of a contact object (id, the fields in table
 * order, created_at, updated_at, version), then deleted_at. */
#define CTL_CSV_ACCOUNT "account"
#define CTL_CSV_DELETED_AT "deleted_at"

#endif
