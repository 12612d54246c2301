/*
 * bench_pg.c: durable creates from 64 concurrent writers, the engine beside
 * PostgreSQL 15 and SQLite, in one run.
 *
 * DESIGN.md holds the engine's durable creates from 64 concurrent writers to
 * at least 3x PostgreSQL 15's with synchronous_commit=on, and at least 20x
 * SQLite's (WAL, synchronous=FULL), with the same durability: every
 * acknowledged create is synced (the engine with CS_DURABILITY_FSYNC and
 * group commit; PostgreSQL's commit flushes its WAL, and concurrent commits
 * share a flush; SQLite syncs its WAL at every commit).
 *
 * Each side holds the same generated data set (harness.h) in the same table
 * with the same indexes, bulk loaded untimed, and then creates more of the
 * same generator's contacts from 64 threads, each waiting for its create to
 * be acknowledged before the next:
 *   - engine: cs_create in CS_DURABILITY_FSYNC, the thread waiting for the
 *     completion callback (bench_peer.h);
 *   - SQLite: bench_engine's schema and statements (bench_peer.h), one
 *     connection a thread, BEGIN IMMEDIATE; INSERT; INSERT fts; COMMIT;
 *   - PostgreSQL 15: one libpq connection a thread over the server's Unix
 *     socket, a prepared INSERT ... RETURNING id in its own transaction
 *     (autocommit) into a table with the same columns, a b-tree index on
 *     (account, folded value) for each searchable field (unique for the
 *     email, as SQLite's) and, for SQLite's FTS5 over the folded notes, a
 *     GIN index on to_tsvector('simple', f_notes) (the folded notes, kept in
 *     a column since an expression index needs one; 'simple' splits words
 *     and lowercases, no stemming or stop words, as FTS5's default unicode61
 *     tokenizer), GIN's default fastupdate (a pending list merged later);
 *     ids from an identity column, the primary key.
 * The benchmark folds values on the SQL sides (timed: the engine folds
 * inside cs_create). A repetition gives each side the same number of seconds,
 * one side after the other in turn; reported are the medians over
 * repetitions of the rate, of the median and 99th percentile of a create's
 * latency (from the call to its acknowledgement) and of the CPU time a
 * create takes (the whole process: the writers, the engine's commit thread,
 * the folding and generating of contacts; for PostgreSQL also every server
 * process, read from /proc), and for the engine the contacts per fsync.
 *
 * The PostgreSQL server is the benchmark's own: initdb into a temporary
 * directory as an unprivileged user (--pg-user, default nobody, run through
 * runuser since the machine runs as root), started with pg_ctl listening on
 * no TCP address, only a Unix socket in that directory; fsync=on,
 * synchronous_commit=on, full_page_writes=on, wal_sync_method its default
 * (fdatasync on Linux), shared_buffers 256 MB (SQLite's page cache),
 * max_wal_size 8 GB so that the bulk load's checkpoints are over before the
 * creates (a checkpoint is taken after the load). The server is stopped and
 * the directory (with the engine's store and SQLite's file) removed at the
 * end, on an error and on a signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT and the
 * crash signals exec a shell that stops the server and removes the tree).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "bench_peer.h"
#include "cs.h"
#include "harness.h"

/* Every contact goes to one account. */
#define ACCOUNT 1u
#define MAX_REPS 15
#define MAX_WRITERS 256

enum { SIDE_ENGINE, SIDE_PG, SIDE_SQLITE, SIDES };
static const char *const side_name[SIDES] = {"contactd", "PostgreSQL 15",
                                             "SQLite"};
/* The ratio each peer is held to (engine rate over the peer's). */
static const double side_target[SIDES] = {0, 3, 20};

typedef struct options {
  uint64_t count, seed;
  int writers, reps, load_threads;
  double seconds;
  bool only[SIDES], any_only;
  const char *dir, *pg_bin, *pg_user;
} options;

/* A side's results, one value a repetition. */
typedef struct side {
  bool on;
  _Atomic uint64_t next; /* the next contact number to create */
  int reps;
  double rate[MAX_REPS], p50_us[MAX_REPS], p99_us[MAX_REPS], cpu_us[MAX_REPS];
  uint64_t creates, fsyncs; /* engine: over every repetition */
} side;

typedef struct run {
  options o;
  bh_gen *gen;
  char root[1024], eng_dir[PATH_MAX], sql_path[PATH_MAX];
  char pg_dir[PATH_MAX], pg_data[PATH_MAX], pg_conninfo[PATH_MAX + 64];
  cs_store *store;
  side sd[SIDES];
} run;

/* ============================================================= cleanup */

/* What removes everything the run made (and stops the server), prepared
 * before anything is made, so that a signal handler only has to exec it. */
static char cleanup_cmd[3 * PATH_MAX + 512];
static volatile sig_atomic_t cleanup_armed;

static void on_fatal_signal(int sig) {
  if (cleanup_armed) execl("/bin/sh", "sh", "-c", cleanup_cmd, (char *)NULL);
  _exit(128 + sig);
}

/* Runs cmd with /bin/sh and waits: its exit status, or -1. Not system(),
 * which ignores SIGINT and SIGQUIT while the command runs, so that a ^C
 * during initdb or the server's start would be lost instead of cleaning
 * up. */
static int sh_run(const char *cmd) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void cleanup_now(void) {
  if (!cleanup_armed) return;
  cleanup_armed = 0;
  if (sh_run(cleanup_cmd) != 0)
    fprintf(stderr, "bench_pg: could not run: %s\n", cleanup_cmd);
}

static void cleanup_arm(run *r) {
  snprintf(cleanup_cmd, sizeof cleanup_cmd,
           "if [ -f '%s/postmaster.pid' ]; then runuser -u '%s' -- "
           "'%s/pg_ctl' -D '%s' -m immediate -w stop >/dev/null 2>&1; fi; "
           "rm -rf '%s'",
           r->pg_data, r->o.pg_user, r->o.pg_bin, r->pg_data, r->root);
  cleanup_armed = 1;
  atexit(cleanup_now);
  struct sigaction sa = {.sa_handler = on_fatal_signal};
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                SIGSEGV, SIGBUS,  SIGABRT, SIGFPE};
  for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++)
    sigaction(sigs[k], &sa, NULL);
}

/* ============================================================ helpers */

/* CPU seconds of this process (every thread). */
static double self_cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds of the postmaster and its children (the backends, the WAL
 * writer, the checkpointer, ...), from /proc; 0 when unreadable. */
static double server_cpu_seconds(const run *r) {
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/postmaster.pid", r->pg_data);
  FILE *f = fopen(path, "r");
  long pm = 0;
  if (!f) return 0;
  if (fscanf(f, "%ld", &pm) != 1) pm = 0;
  fclose(f);
  if (pm <= 0) return 0;
  char cmd[160];
  /* The pid and the parent pid, then user and system ticks (fields 14,
   * 15); comm (field 2) never holds a space for postgres processes. */
  snprintf(cmd, sizeof cmd,
           "cat /proc/[0-9]*/stat 2>/dev/null | awk '$1==%ld||$4==%ld"
           "{t+=$14+$15} END{print t+0}'",
           pm, pm);
  FILE *p = popen(cmd, "r");
  double ticks = 0;
  if (!p) return 0;
  if (fscanf(p, "%lf", &ticks) != 1) ticks = 0;
  pclose(p);
  return ticks / (double)sysconf(_SC_CLK_TCK);
}

static int run_cmd(const char *cmd) {
  int rc = sh_run(cmd);
  if (rc != 0) fprintf(stderr, "bench_pg: failed (%d): %s\n", rc, cmd);
  return rc == 0 ? 0 : -1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* ========================================================= PostgreSQL */

static const char pg_table[] =
    "CREATE TABLE contacts(\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY, account bigint NOT NULL,\n"
    "  first_name text NOT NULL, last_name text, email text NOT NULL,\n"
    "  phone text, company text, job_title text, notes text,\n"
    "  created_ms bigint NOT NULL, updated_ms bigint NOT NULL,\n"
    "  f_first text, f_last text, f_email text NOT NULL, f_phone text,\n"
    "  f_company text, f_job text, f_notes text)";

/* Built after the bulk load, as a bulk load into PostgreSQL is done; one
 * statement each (VACUUM runs outside a transaction). */
static const char *const pg_indexes[] = {
    "SET maintenance_work_mem = '512MB'",
    "ALTER TABLE contacts ADD PRIMARY KEY (id)",
    "CREATE UNIQUE INDEX c_email ON contacts(account, f_email)",
    "CREATE INDEX c_first ON contacts(account, f_first)",
    "CREATE INDEX c_last ON contacts(account, f_last)",
    "CREATE INDEX c_phone ON contacts(account, f_phone)",
    "CREATE INDEX c_company ON contacts(account, f_company)",
    "CREATE INDEX c_job ON contacts(account, f_job)",
    "CREATE INDEX c_notes ON contacts USING gin "
    "(to_tsvector('simple', f_notes))",
    "VACUUM ANALYZE contacts",
    "CHECKPOINT"};

#define PG_COLUMNS                                                             \
  "account, first_name, last_name, email, phone, company, job_title, notes, "  \
  "created_ms, updated_ms, f_first, f_last, f_email, f_phone, f_company, "     \
  "f_job, f_notes"
#define PG_PARAMS 17

static const char pg_insert[] =
    "INSERT INTO contacts(" PG_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, "
    "$7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id";

/* A contact's row as PostgreSQL takes it: the values in PG_COLUMNS order
 * (pointing into b and buf). */
typedef struct pg_row {
  const char *v[PG_PARAMS];
  char ms[24], folded[CS_FIELD_COUNT][512];
} pg_row;

static void pg_row_make(const bh_contact *b, pg_row *row) {
  snprintf(row->ms, sizeof row->ms, "%lld", (long long)bp_wall_ms());
  row->v[0] = "1";
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    const char *v = bc_field(b, f);
    row->v[1 + f] = v;
    if (f == CS_NOTES)
      fold_text_into(v, strlen(v), row->folded[f], sizeof row->folded[f]);
    else
      fold_key_into(f, v, strlen(v), row->folded[f], sizeof row->folded[f]);
    row->v[10 + f] = row->folded[f];
  }
  row->v[8] = row->v[9] = row->ms;
}

static PGconn *pg_connect(const run *r) {
  PGconn *c = PQconnectdb(r->pg_conninfo);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "postgres: connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  return c;
}

static int pg_exec(PGconn *c, const char *sql) {
  PGresult *res = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(res);
  int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
  if (rc) fprintf(stderr, "postgres: %s: %s", sql, PQerrorMessage(c));
  PQclear(res);
  return rc;
}

/* initdb, the settings, pg_ctl start; 0 or -1 after printing why. */
static int pg_start(run *r) {
  struct passwd *pw = getpwnam(r->o.pg_user);
  if (!pw) {
    fprintf(stderr, "bench_pg: no user %s (--pg-user)\n", r->o.pg_user);
    return -1;
  }
  if (mkdir(r->pg_dir, 0700) != 0 ||
      chown(r->pg_dir, pw->pw_uid, pw->pw_gid) != 0) {
    fprintf(stderr, "bench_pg: %s: %s\n", r->pg_dir, strerror(errno));
    return -1;
  }
  char cmd[3 * PATH_MAX + 256];
  snprintf(cmd, sizeof cmd,
           "runuser -u '%s' -- '%s/initdb' -D '%s' -U bench -A trust "
           "-E UTF8 --locale=C -N >'%s/initdb.log' 2>&1",
           r->o.pg_user, r->o.pg_bin, r->pg_data, r->pg_dir);
  if (run_cmd(cmd) != 0) return -1;
  char conf[PATH_MAX + 32];
  snprintf(conf, sizeof conf, "%s/postgresql.conf", r->pg_data);
  FILE *f = fopen(conf, "a");
  if (!f) {
    fprintf(stderr, "bench_pg: %s: %s\n", conf, strerror(errno));
    return -1;
  }
  fprintf(f,
          "\n# bench_pg\nlisten_addresses = ''\n"
          "unix_socket_directories = '%s'\nport = 5432\n"
          "max_connections = %d\nshared_buffers = 256MB\n"
          "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n"
          "max_wal_size = 8GB\ncheckpoint_timeout = 30min\n",
          r->pg_dir, r->o.writers + 10);
  fclose(f);
  snprintf(cmd, sizeof cmd,
           "runuser -u '%s' -- '%s/pg_ctl' -D '%s' -l '%s/server.log' -w "
           "-t 120 start >/dev/null",
           r->o.pg_user, r->o.pg_bin, r->pg_data, r->pg_dir);
  if (run_cmd(cmd) != 0) {
    snprintf(cmd, sizeof cmd, "tail -n 20 '%s/server.log' >&2", r->pg_dir);
    run_cmd(cmd);
    return -1;
  }
  snprintf(r->pg_conninfo, sizeof r->pg_conninfo,
           "host=%s port=5432 dbname=postgres user=bench", r->pg_dir);
  return 0;
}

/* COPY text format: backslash, tab, newline and carriage return escaped. */
static size_t pg_copy_field(char *out, const char *v) {
  size_t o = 0;
  for (const char *p = v; *p; p++) {
    char ch = *p;
    if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
      out[o++] = '\\';
      ch = ch == '\t' ? 't' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch;
    }
    out[o++] = ch;
  }
  return o;
}

static int pg_load(run *r, uint64_t from, uint64_t to) {
  PGconn *c = pg_connect(r);
  if (!c) return -1;
  int rc = -1;
  char *buf = malloc(1 << 21);
  if (!buf || pg_exec(c, pg_table) != 0) goto done;
  PGresult *res = PQexec(c, "COPY contacts(" PG_COLUMNS ") FROM STDIN");
  if (PQresultStatus(res) != PGRES_COPY_IN) {
    fprintf(stderr, "postgres: COPY: %s", PQerrorMessage(c));
    PQclear(res);
    goto done;
  }
  PQclear(res);
  size_t n = 0;
  bh_contact bc;
  pg_row row;
  for (uint64_t i = from; i < to; i++) {
    bh_gen_contact(r->gen, i, &bc);
    pg_row_make(&bc, &row);
    for (int k = 0; k < PG_PARAMS; k++) {
      n += pg_copy_field(buf + n, row.v[k]);
      buf[n++] = k + 1 < PG_PARAMS ? '\t' : '\n';
    }
    if (n > (1 << 21) - 8192 || i + 1 == to) {
      if (PQputCopyData(c, buf, (int)n) != 1) {
        fprintf(stderr, "postgres: COPY data: %s", PQerrorMessage(c));
        goto done;
      }
      n = 0;
    }
  }
  if (PQputCopyEnd(c, NULL) != 1) goto done;
  res = PQgetResult(c);
  bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok) fprintf(stderr, "postgres: COPY end: %s", PQerrorMessage(c));
  PQclear(res);
  while ((res = PQgetResult(c)))
    PQclear(res);
  for (size_t k = 0; ok && k < sizeof pg_indexes / sizeof pg_indexes[0]; k++)
    ok = pg_exec(c, pg_indexes[k]) == 0;
  if (ok) rc = 0;
done:
  free(buf);
  PQfinish(c);
  return rc;
}

/* ============================================================= SQLite */

typedef struct sql_conn {
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *ins, *ins_fts;
} sql_conn;

static void sql_conn_close(sql_conn *c) {
  sqlite3_finalize(c->begin);
  sqlite3_finalize(c->commit);
  sqlite3_finalize(c->ins);
  sqlite3_finalize(c->ins_fts);
  sqlite3_close(c->db);
  memset(c, 0, sizeof *c);
}

static int sql_conn_open(const run *r, bool create, sql_conn *c) {
  memset(c, 0, sizeof *c);
  int rc = sqlite3_open_v2(
      r->sql_path, &c->db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(c->db, 60000);
    rc = sqlite3_exec(c->db, SQL_SETTINGS, NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK && create)
    rc = sqlite3_exec(c->db, sql_schema, NULL, NULL, NULL);
  const char *sql[4] = {"BEGIN IMMEDIATE", "COMMIT", SQL_INSERT,
                        SQL_INSERT_FTS};
  sqlite3_stmt **st[4] = {&c->begin, &c->commit, &c->ins, &c->ins_fts};
  for (int k = 0; k < 4 && rc == SQLITE_OK; k++)
    rc = sqlite3_prepare_v3(c->db, sql[k], -1, SQLITE_PREPARE_PERSISTENT, st[k],
                            NULL);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "sqlite: open %s: %s\n", r->sql_path,
            c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    sql_conn_close(c);
    return -1;
  }
  return 0;
}

/* Steps a statement that returns no rows, waiting out a busy database. */
static int sql_step(sql_conn *c, sqlite3_stmt *st) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_BUSY)
    sqlite3_reset(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) return 0;
  fprintf(stderr, "sqlite: %s: %s\n", sqlite3_sql(st), sqlite3_errmsg(c->db));
  return -1;
}

/* Inserts b, in its own durable transaction when own_txn. */
static int sql_create(sql_conn *c, const bh_contact *b, bool own_txn) {
  bp_folded folded;
  if (own_txn && sql_step(c, c->begin) != 0) return -1;
  bp_sql_bind_insert(c->ins, ACCOUNT, b, 0, &folded);
  int rc = sql_step(c, c->ins);
  if (rc == 0) {
    bp_sql_bind_fts(c->ins_fts, sqlite3_last_insert_rowid(c->db), b, &folded);
    rc = sql_step(c, c->ins_fts);
  }
  if (!own_txn) return rc;
  if (rc != 0) {
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  return sql_step(c, c->commit);
}

static int sql_load(run *r, uint64_t from, uint64_t to) {
  sql_conn c;
  if (sql_conn_open(r, true, &c) != 0) return -1;
  int rc = sqlite3_exec(c.db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
  bh_contact bc;
  for (uint64_t i = from; i < to && rc == 0; i++) {
    bh_gen_contact(r->gen, i, &bc);
    rc = sql_create(&c, &bc, false);
  }
  if (rc == 0 && (sqlite3_exec(c.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK ||
                  sqlite3_exec(c.db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL,
                               NULL, NULL) != SQLITE_OK))
    rc = -1;
  sql_conn_close(&c);
  return rc;
}

/* ===================================================== durable creates */

/* One writer of a repetition: its connection, and the latency of each of
 * its creates (ns). */
typedef struct writer {
  run *r;
  int kind;
  side *sd;
  uint64_t deadline_ns;
  pthread_barrier_t *start;
  PGconn *pg;
  sql_conn sql;
  uint64_t *lat;
  size_t n, cap;
  uint64_t errors;
  char first_error[600];
} writer;

static int writer_create(writer *w, const bh_contact *b) {
  if (w->kind == SIDE_ENGINE) {
    cs_error err = {0};
    uint64_t id;
    int rc = bp_engine_create_wait(w->r->store, ACCOUNT, b, &id, &err);
    if (rc != 0 && w->errors == 0)
      snprintf(w->first_error, sizeof w->first_error, "%s",
               err.msg[0] ? err.msg : cs_strerror(rc));
    return rc;
  }
  if (w->kind == SIDE_SQLITE) return sql_create(&w->sql, b, true);
  pg_row row;
  pg_row_make(b, &row);
  PGresult *res = PQexecPrepared(w->pg, "ins", PG_PARAMS, row.v, NULL, NULL, 0);
  int rc =
      PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? 0 : -1;
  if (rc != 0 && w->errors == 0)
    snprintf(w->first_error, sizeof w->first_error, "%s",
             PQerrorMessage(w->pg));
  PQclear(res);
  return rc;
}

static void *writer_thread(void *arg) {
  writer *w = arg;
  bh_contact bc;
  pthread_barrier_wait(w->start);
  while (bh_now_ns() < w->deadline_ns) {
    uint64_t i = atomic_fetch_add(&w->sd->next, 1);
    bh_gen_contact(w->r->gen, i, &bc);
    uint64_t t0 = bh_now_ns();
    if (writer_create(w, &bc) != 0) {
      w->errors++;
      continue;
    }
    if (w->n == w->cap) {
      size_t cap = w->cap ? 2 * w->cap : 1024;
      uint64_t *lat = realloc(w->lat, cap * sizeof *lat);
      if (!lat) {
        w->errors++;
        break;
      }
      w->lat = lat;
      w->cap = cap;
    }
    w->lat[w->n++] = bh_now_ns() - t0;
  }
  return NULL;
}

static int writer_connect(run *r, writer *w) {
  if (w->kind == SIDE_SQLITE) return sql_conn_open(r, false, &w->sql);
  if (w->kind != SIDE_PG) return 0;
  if (!(w->pg = pg_connect(r))) return -1;
  PGresult *res = PQprepare(w->pg, "ins", pg_insert, PG_PARAMS, NULL);
  int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
  if (rc) fprintf(stderr, "postgres: prepare: %s", PQerrorMessage(w->pg));
  PQclear(res);
  return rc;
}

static void writer_disconnect(writer *w) {
  if (w->pg) PQfinish(w->pg);
  if (w->sql.db) sql_conn_close(&w->sql);
  free(w->lat);
}

/* One repetition of one side: the writers (connected first, untimed) create
 * for o.seconds. Fills the side's values for repetition rep. */
static int creates_rep(run *r, int kind, int rep) {
  int n = r->o.writers;
  side *sd = &r->sd[kind];
  writer *ws = calloc((size_t)n, sizeof *ws);
  pthread_t *th = calloc((size_t)n, sizeof *th);
  pthread_barrier_t start;
  int rc = -1;
  if (!ws || !th) goto out;
  pthread_barrier_init(&start, NULL, (unsigned)n + 1);
  for (int t = 0; t < n; t++) {
    ws[t] = (writer){.r = r, .kind = kind, .sd = sd, .start = &start};
    if (writer_connect(r, &ws[t]) != 0) goto done;
  }
  cs_stats s0 = {0}, s1 = {0};
  if (kind == SIDE_ENGINE) cs_stats_get(r->store, &s0);
  double cpu0 = self_cpu_seconds();
  double srv0 = kind == SIDE_PG ? server_cpu_seconds(r) : 0;
  uint64_t deadline = bh_now_ns() + (uint64_t)(r->o.seconds * 1e9);
  for (int t = 0; t < n; t++) {
    ws[t].deadline_ns = deadline;
    pthread_create(&th[t], NULL, writer_thread, &ws[t]);
  }
  pthread_barrier_wait(&start);
  uint64_t t0 = bh_now_ns();
  for (int t = 0; t < n; t++)
    pthread_join(th[t], NULL);
  double secs = bh_seconds(t0, bh_now_ns());
  double cpu = self_cpu_seconds() - cpu0;
  if (kind == SIDE_PG) cpu += server_cpu_seconds(r) - srv0;
  if (kind == SIDE_ENGINE) cs_stats_get(r->store, &s1);
  size_t total = 0;
  uint64_t errors = 0;
  for (int t = 0; t < n; t++) {
    total += ws[t].n;
    if (ws[t].errors && !errors)
      fprintf(stderr, "%s: %llu creates failed, first: %s\n", side_name[kind],
              (unsigned long long)ws[t].errors, ws[t].first_error);
    errors += ws[t].errors;
  }
  uint64_t *all = malloc((total ? total : 1) * sizeof *all);
  if (errors || !total || !all) {
    free(all);
    goto done;
  }
  size_t k = 0;
  for (int t = 0; t < n; t++) {
    memcpy(all + k, ws[t].lat, ws[t].n * sizeof *all);
    k += ws[t].n;
  }
  qsort(all, total, sizeof *all, cmp_u64);
  sd->rate[rep] = (double)total / secs;
  sd->p50_us[rep] = (double)all[total / 2] / 1e3;
  sd->p99_us[rep] = (double)all[(total * 99) / 100] / 1e3;
  sd->cpu_us[rep] = cpu * 1e6 / (double)total;
  sd->reps = rep + 1;
  if (kind == SIDE_ENGINE) {
    sd->creates += s1.commits - s0.commits;
    sd->fsyncs += s1.fsyncs - s0.fsyncs;
  }
  free(all);
  fprintf(stderr,
          "rep %d %s: %zu creates in %.2f s, %.0f/s, p50 %.0f us, p99 %.0f "
          "us, CPU %.1f us a create\n",
          rep + 1, side_name[kind], total, secs, sd->rate[rep], sd->p50_us[rep],
          sd->p99_us[rep], sd->cpu_us[rep]);
  rc = 0;
done:
  for (int t = 0; t < n; t++)
    writer_disconnect(&ws[t]);
  pthread_barrier_destroy(&start);
out:
  free(ws);
  free(th);
  return rc;
}

/* ============================================================== report */

static double median(const double *v, int n) {
  double c[MAX_REPS];
  memcpy(c, v, (size_t)n * sizeof *c);
  return bh_median(c, (size_t)n);
}

static void report(const run *r) {
  const side *e = &r->sd[SIDE_ENGINE];
  printf("\n| side | durable creates/s | p50 latency | p99 latency | CPU a "
         "create | contactd's ratio | target | met |\n"
         "|:--|--:|--:|--:|--:|--:|--:|:-:|\n");
  for (int k = 0; k < SIDES; k++) {
    const side *sd = &r->sd[k];
    if (!sd->on || !sd->reps) continue;
    double rate = median(sd->rate, sd->reps);
    char ratio[32] = "-", target[32] = "-", met[16] = "-";
    if (k != SIDE_ENGINE && e->on && e->reps) {
      double x = median(e->rate, e->reps) / rate;
      snprintf(ratio, sizeof ratio, "%.2fx", x);
      snprintf(target, sizeof target, ">= %.0fx", side_target[k]);
      snprintf(met, sizeof met, "%s", x >= side_target[k] ? "yes" : "**NO**");
    }
    char rbuf[40];
    printf("| %s | %s | %.0f us | %.0f us | %.1f us | %s | %s | %s |\n",
           side_name[k], bh_fmt_count(rbuf, sizeof rbuf, rate),
           median(sd->p50_us, sd->reps), median(sd->p99_us, sd->reps),
           median(sd->cpu_us, sd->reps), ratio, target, met);
  }
  if (e->on && e->fsyncs)
    printf("\ncontactd: %.1f contacts per fsync (%llu creates, %llu "
           "fsyncs)\n",
           (double)e->creates / (double)e->fsyncs,
           (unsigned long long)e->creates, (unsigned long long)e->fsyncs);
  for (int k = 0; k < SIDES; k++) {
    const side *sd = &r->sd[k];
    if (!sd->on) continue;
    printf("%s per rep:", side_name[k]);
    for (int i = 0; i < sd->reps; i++)
      printf(" %.0f", sd->rate[i]);
    printf("\n");
  }
  double load[3] = {0};
  if (getloadavg(load, 3) == 3)
    printf("load average at the end: %.2f %.2f %.2f\n", load[0], load[1],
           load[2]);
}

/* =============================================================== main */

static void usage(FILE *f) {
  fprintf(f, "usage: bench_pg [--count N] [--writers N] [--reps N] "
             "[--seconds S]\n"
             "                [--seed N] [--dir DIR] [--pg-bin DIR] "
             "[--pg-user USER]\n"
             "                [--only engine|postgres|sqlite]... [--quick]\n"
             "Durable creates from N writers (64), the engine beside "
             "PostgreSQL 15 and\n"
             "SQLite, each holding --count contacts (1,000,000) first; reps "
             "(5) of\n"
             "--seconds (3) a side, in turn. PostgreSQL's binaries from "
             "--pg-bin\n"
             "(/usr/lib/postgresql/15/bin), run as --pg-user (nobody).\n");
}

static int parse_args(int argc, char **argv, options *o) {
  *o = (options){.count = 1000000,
                 .seed = 42,
                 .writers = 64,
                 .reps = 5,
                 .load_threads = 2,
                 .seconds = 3,
                 .dir = "/tmp",
                 .pg_bin = "/usr/lib/postgresql/15/bin",
                 .pg_user = "nobody"};
  for (int k = 1; k < argc; k++) {
    const char *a = argv[k];
    if (!strcmp(a, "--quick")) {
      o->count = 20000;
      o->reps = 3;
      o->seconds = 1;
      continue;
    }
    if (!strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    }
    const char *v = k + 1 < argc ? argv[++k] : NULL;
    if (!v) {
      fprintf(stderr, "bench_pg: %s takes a value\n", a);
      return -1;
    }
    if (!strcmp(a, "--count")) {
      o->count = strtoull(v, NULL, 10);
    } else if (!strcmp(a, "--writers")) {
      o->writers = atoi(v);
    } else if (!strcmp(a, "--reps")) {
      o->reps = atoi(v);
    } else if (!strcmp(a, "--seconds")) {
      o->seconds = atof(v);
    } else if (!strcmp(a, "--seed")) {
      o->seed = strtoull(v, NULL, 10);
    } else if (!strcmp(a, "--dir")) {
      o->dir = v;
    } else if (!strcmp(a, "--pg-bin")) {
      o->pg_bin = v;
    } else if (!strcmp(a, "--pg-user")) {
      o->pg_user = v;
    } else if (!strcmp(a, "--only")) {
      int s = !strcmp(v, "engine")     ? SIDE_ENGINE
              : !strcmp(v, "postgres") ? SIDE_PG
              : !strcmp(v, "sqlite")   ? SIDE_SQLITE
                                       : -1;
      if (s < 0) {
        fprintf(stderr, "bench_pg: --only engine, postgres or sqlite\n");
        return -1;
      }
      o->only[s] = o->any_only = true;
    } else {
      fprintf(stderr, "bench_pg: unknown option %s\n", a);
      return -1;
    }
  }
  if (o->count < 1000 || o->writers < 1 || o->writers > MAX_WRITERS ||
      o->reps < 1 || o->reps > MAX_REPS || !(o->seconds > 0)) {
    fprintf(stderr,
            "bench_pg: --count at least 1000, --writers 1 to %d, "
            "--reps 1 to %d, --seconds above 0\n",
            MAX_WRITERS, MAX_REPS);
    return -1;
  }
  return 0;
}

static int setup(run *r) {
  const uint64_t N = r->o.count;
  char tmpl[1024];
  snprintf(tmpl, sizeof tmpl, "%s/bench_pg.XXXXXX", r->o.dir);
  if (!mkdtemp(tmpl) || chmod(tmpl, 0711) != 0) {
    fprintf(stderr, "bench_pg: mkdtemp %s: %s\n", tmpl, strerror(errno));
    return -1;
  }
  snprintf(r->root, sizeof r->root, "%s", tmpl);
  snprintf(r->eng_dir, sizeof r->eng_dir, "%s/engine", r->root);
  snprintf(r->sql_path, sizeof r->sql_path, "%s/sqlite.db", r->root);
  snprintf(r->pg_dir, sizeof r->pg_dir, "%s/pg", r->root);
  snprintf(r->pg_data, sizeof r->pg_data, "%s/pg/data", r->root);
  cleanup_arm(r);
  for (int k = 0; k < SIDES; k++)
    atomic_store(&r->sd[k].next, N);
  uint64_t t0 = bh_now_ns();
  if (r->sd[SIDE_ENGINE].on) {
    cs_options opts = {.durability = CS_DURABILITY_NONE};
    cs_error err = {0};
    if (cs_open(r->eng_dir, &opts, &r->store, &err) != 0) {
      fprintf(stderr, "engine: open: %s\n", err.msg);
      return -1;
    }
    int rc = bp_engine_load(r->store, r->gen, ACCOUNT, 0, N, r->o.load_threads,
                            NULL);
    if (cs_close(r->store, &err) != 0 || rc != 0) return -1;
    opts.durability = CS_DURABILITY_FSYNC;
    if (cs_open(r->eng_dir, &opts, &r->store, &err) != 0) {
      fprintf(stderr, "engine: reopen: %s\n", err.msg);
      return -1;
    }
    fprintf(stderr, "engine: %llu contacts loaded in %.1f s\n",
            (unsigned long long)N, bh_seconds(t0, bh_now_ns()));
  }
  if (r->sd[SIDE_PG].on) {
    t0 = bh_now_ns();
    if (pg_start(r) != 0 || pg_load(r, 0, N) != 0) return -1;
    fprintf(stderr, "postgres: %llu contacts loaded and indexed in %.1f s\n",
            (unsigned long long)N, bh_seconds(t0, bh_now_ns()));
  }
  if (r->sd[SIDE_SQLITE].on) {
    t0 = bh_now_ns();
    if (sql_load(r, 0, N) != 0) return -1;
    fprintf(stderr, "sqlite: %llu contacts loaded in %.1f s\n",
            (unsigned long long)N, bh_seconds(t0, bh_now_ns()));
  }
  return 0;
}

int main(int argc, char **argv) {
  static run r;
  if (parse_args(argc, argv, &r.o) != 0) {
    usage(stderr);
    return 2;
  }
  for (int k = 0; k < SIDES; k++)
    r.sd[k].on = !r.o.any_only || r.o.only[k];
  if (!(r.gen = bh_gen_create(r.o.seed))) return 1;
  time_t now = time(NULL);
  char date[64];
  strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  printf("bench_pg: %s, %ld CPUs, SQLite %s, libpq %d\ncommand:", date,
         sysconf(_SC_NPROCESSORS_ONLN), sqlite3_libversion(), PQlibVersion());
  for (int k = 0; k < argc; k++)
    printf(" %s", argv[k]);
  double load[3] = {0};
  if (getloadavg(load, 3) == 3)
    printf("\nload average at start: %.2f %.2f %.2f", load[0], load[1],
           load[2]);
  printf("\n%llu contacts in each store, %d writers, %d reps of %.1f s a "
         "side\n",
         (unsigned long long)r.o.count, r.o.writers, r.o.reps, r.o.seconds);
  fflush(stdout);
  int rc = setup(&r);
  for (int rep = 0; rep < r.o.reps && rc == 0; rep++)
    for (int k = 0; k < SIDES && rc == 0; k++)
      if (r.sd[k].on) rc = creates_rep(&r, k, rep);
  if (rc == 0) report(&r);
  if (r.store) {
    cs_error err = {0};
    if (cs_close(r.store, &err) != 0)
      fprintf(stderr, "engine: close: %s\n", err.msg);
  }
  cleanup_now();
  bh_gen_destroy(r.gen);
  return rc == 0 ? 0 : 1;
}
