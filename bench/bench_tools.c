/*
 * bench_tools.c: contactctl's bulk operations on a large store, beside
 * SQLite importing the same rows.
 *
 * What it measures, each run on a fresh data directory, medians over runs:
 *   load     contactctl load of N generated contacts (JSON Lines, the API's
 *            create bodies), wall time including the final sync and the
 *            snapshot written at close; target >= 250,000 contacts/s;
 *   dump     contactctl dump of them as JSON Lines to a file;
 *            target >= 500,000 contacts/s;
 *   reload   contactctl load of that dump into a fresh data directory
 *            (every id, version and time kept), the rate beside dump's in
 *            the same run: load / dump, target >= 0.5 (DESIGN.md "Bulk");
 *   compact  contactctl compact after half of the contacts were deleted;
 *            target < 10 s;
 *   verify   contactctl verify of the compacted store (every checksum, and
 *            the snapshot against a full replay);
 * and SQLite (WAL, synchronous=FULL, a unique (account, email) index as the
 * store has, an index per searchable field as bench_engine gives it)
 * importing the same lines in one transaction, parsing each with its own
 * json_extract, so both sides read the same text.
 *
 * and, once on a freshly loaded store of the same N (bench_online, in its
 * own functions below; --online no skips it, --online only runs it alone):
 *   durable creates by 64 writers (CS_DURABILITY_FSYNC, each waiting for
 *            its own completion) for 5 s with nothing else, then during
 *            cs_compact_online of the whole store (target: at least 50% of
 *            the rate without; p99 latency and the compaction's time
 *            reported), then during back-to-back cs_backup_* streamed as a
 *            tar (libarchive, pax) to /dev/null for 3 s; and the stream's
 *            bytes/s with those writers and, first, with none.
 *
 * The tool is run as a program (the path is compiled in), as an
 * administrator runs it. Usage:
 *   bench_tools [--contacts N] [--runs R] [--dir DIR] [--seed S]
 *               [--online yes|no|only]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>
#include <sqlite3.h>
#include <yajl/yajl_gen.h>

#include "admin.h"
#include "cs.h"
#include "harness.h"

#ifndef CONTACTCTL_PATH
#error "CONTACTCTL_PATH must name the built contactctl"
#endif

typedef struct options {
  uint64_t contacts;
  int runs;
  const char *dir;
  uint64_t seed;
  int online; /* 0: skip the online part, 1: run it too, 2: only it */
} options;

/* Writes N generated contacts as create bodies, one a line. */
static int write_input(const char *path, uint64_t n, uint64_t seed) {
  bh_gen *g = bh_gen_create(seed);
  FILE *f = fopen(path, "w");
  yajl_gen y = yajl_gen_alloc(NULL);
  int rc = 0;
  if (!g || !f || !y) {
    rc = -ENOMEM;
    goto out;
  }
  for (uint64_t i = 0; i < n; i++) {
    bh_contact c;
    bh_gen_contact(g, i, &c);
    const char *const *k = bh_field_names;
    const char *v[BH_FIELDS];
    bh_contact_values(&c, v);
    yajl_gen_map_open(y);
    for (int j = 0; j < BH_FIELDS; j++) {
      yajl_gen_string(y, (const unsigned char *)k[j], strlen(k[j]));
      yajl_gen_string(y, (const unsigned char *)v[j], strlen(v[j]));
    }
    yajl_gen_map_close(y);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(y, &buf, &len);
    fwrite(buf, 1, len, f);
    fputc('\n', f);
    yajl_gen_clear(y);
    yajl_gen_reset(y, NULL);
  }
  if (ferror(f)) rc = -EIO;
out:
  if (y) yajl_gen_free(y);
  if (f && fclose(f) != 0) rc = -EIO;
  if (g) bh_gen_destroy(g);
  return rc;
}

/* Runs contactctl with args; the wall seconds, or -1 when it failed. */
static double run_ctl(const char *args) {
  char cmd[16384]; /* the args (up to 9000 bytes) and the binary's path */
  snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>/tmp/bench_tools.err",
           CONTACTCTL_PATH, args);
  uint64_t t0 = bh_now_ns();
  int rc = system(cmd);
  double s = bh_seconds(t0, bh_now_ns());
  if (rc != 0) {
    fprintf(stderr, "bench_tools: failed (%d): %s\n", rc, cmd);
    return -1;
  }
  return s;
}

/* Deletes every other contact (what compaction then has to drop). */
static int delete_half(const char *dir) {
  cs_options o = {.durability = CS_DURABILITY_NONE};
  cs_store *s;
  cs_error err;
  int rc = cs_open(dir, &o, &s, &err);
  if (rc) {
    fprintf(stderr, "bench_tools: %s\n", err.msg);
    return rc;
  }
  cs_stats st;
  cs_stats_get(s, &st);
  for (uint64_t id = CS_ID_MIN + 1; id < st.next_id && !rc; id += 2) {
    rc = cs_delete(s, 1, id, NULL, NULL, &err);
    if (rc == CS_ENOTFOUND) rc = 0;
  }
  if (!rc) rc = cs_flush(s, &err);
  int crc = cs_close(s, &err);
  return rc ? rc : crc;
}

/* SQLite importing the same lines in one transaction. */
static double sqlite_import(const char *dbpath, const char *input) {
  sqlite3 *db = NULL;
  sqlite3_stmt *ins = NULL;
  FILE *in = fopen(input, "r");
  char *line = NULL;
  size_t cap = 0;
  double secs = -1;
  unlink(dbpath);
  uint64_t t0 = bh_now_ns();
  if (!in || sqlite3_open(dbpath, &db) != SQLITE_OK) goto out;
  const char *schema =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "PRAGMA cache_size=-262144;"
      "CREATE TABLE contacts(id INTEGER PRIMARY KEY, account INTEGER NOT NULL,"
      " first_name TEXT NOT NULL, last_name TEXT, email TEXT NOT NULL,"
      " phone TEXT, company TEXT, job_title TEXT, notes TEXT,"
      " created_ms INTEGER, updated_ms INTEGER);"
      "CREATE UNIQUE INDEX c_email ON contacts(account, email COLLATE NOCASE);"
      "CREATE INDEX c_first ON contacts(account, first_name COLLATE NOCASE);"
      "CREATE INDEX c_last ON contacts(account, last_name COLLATE NOCASE);"
      "CREATE INDEX c_phone ON contacts(account, phone);"
      "CREATE INDEX c_company ON contacts(account, company COLLATE NOCASE);"
      "CREATE INDEX c_job ON contacts(account, job_title COLLATE NOCASE);";
  if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) goto out;
  if (sqlite3_prepare_v2(
          db,
          "INSERT INTO contacts(account, first_name, last_name, email, phone,"
          " company, job_title, notes, created_ms, updated_ms)"
          " SELECT 1, json_extract(?1,'$.first_name'),"
          " json_extract(?1,'$.last_name'), json_extract(?1,'$.email'),"
          " json_extract(?1,'$.phone'), json_extract(?1,'$.company'),"
          " json_extract(?1,'$.job_title'), json_extract(?1,'$.notes'), ?2, ?2",
          -1, &ins, NULL) != SQLITE_OK)
    goto out;
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  ssize_t n;
  while ((n = getline(&line, &cap, in)) > 0) {
    sqlite3_bind_text(ins, 1, line, (int)n, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 2, 1700000000000);
    if (sqlite3_step(ins) != SQLITE_DONE) goto out;
    sqlite3_reset(ins);
  }
  if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto out;
  secs = bh_seconds(t0, bh_now_ns());
out:
  if (secs < 0 && db) fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
  sqlite3_finalize(ins);
  sqlite3_close(db);
  if (in) fclose(in);
  free(line);
  return secs;
}

/* ------------------------------------------------- online administration */

/* Online compaction and backup while 64 writers make durable creates:
 * their rate and p99 latency without either, during a compaction of the
 * whole store, and during back-to-back backups streamed as a tar
 * (libarchive) to /dev/null; the compaction's time, the backup stream's
 * bytes/s. */
#define ONL_WRITERS 64
#define ONL_SAMPLES_MAX 400000 /* latencies kept per phase */

typedef struct onl_writer {
  cs_store *s;
  int idx;
  int *stop;
  uint64_t made;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int pending, rc;
} onl_writer;

typedef struct onl_phase {
  uint64_t *lat_ns; /* one per create, all writers (atomic index) */
  size_t lat_n;
  uint64_t creates;
} onl_phase;

static onl_phase *onl_cur; /* the phase the writers count into, or NULL */

static void onl_done(void *ctx, int rc, uint64_t id) {
  onl_writer *w = ctx;
  (void)id;
  pthread_mutex_lock(&w->mu);
  w->pending = 0;
  w->rc = rc;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void *onl_writer_main(void *arg) {
  onl_writer *w = arg;
  char email[96];
  while (!__atomic_load_n(w->stop, __ATOMIC_ACQUIRE)) {
    snprintf(email, sizeof email, "online.%d.%" PRIu64 "@bench.example", w->idx,
             w->made++);
    cs_contact c = {0};
    c.field[CS_FIRST_NAME] = (cs_str){"Olive", 5};
    c.field[CS_EMAIL] = (cs_str){email, strlen(email)};
    cs_error err;
    w->pending = 1;
    uint64_t t0 = bh_now_ns();
    uint64_t id;
    if (cs_create(w->s, 1, &c, onl_done, w, &id, &err) != 0) {
      fprintf(stderr, "bench_tools: create: %s\n", err.msg);
      return NULL;
    }
    pthread_mutex_lock(&w->mu);
    while (w->pending)
      pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    if (w->rc) return NULL;
    onl_phase *ph = __atomic_load_n(&onl_cur, __ATOMIC_ACQUIRE);
    if (ph) {
      size_t i = __atomic_fetch_add(&ph->lat_n, 1, __ATOMIC_RELAXED);
      if (i < ONL_SAMPLES_MAX) ph->lat_ns[i] = bh_now_ns() - t0;
      __atomic_fetch_add(&ph->creates, 1, __ATOMIC_RELAXED);
    }
  }
  return NULL;
}

static int onl_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The phase's p99 latency in ms. */
static double onl_p99_ms(onl_phase *ph) {
  size_t n = ph->lat_n < ONL_SAMPLES_MAX ? ph->lat_n : ONL_SAMPLES_MAX;
  if (!n) return 0;
  qsort(ph->lat_ns, n, sizeof *ph->lat_ns, onl_cmp_u64);
  return (double)ph->lat_ns[n * 99 / 100] / 1e6;
}

/* Streams one backup of s as a tar to /dev/null: its bytes, or -1. */
static int64_t onl_backup_tar(cs_store *s) {
  static char buf[1 << 20];
  cs_backup *b;
  cs_error err;
  if (cs_backup_begin(s, &b, &err) != 0) {
    fprintf(stderr, "bench_tools: backup: %s\n", err.msg);
    return -1;
  }
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  int64_t total = 0;
  int rc = archive_write_open_filename(a, "/dev/null") == ARCHIVE_OK ? 0 : -1;
  cs_backup_file f;
  while (!rc && cs_backup_next(b, &f, &err) == 1) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, f.name);
    archive_entry_set_size(e, (la_int64_t)f.size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, f.mode);
    archive_entry_set_mtime(e, f.mtime_s, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK) rc = -1;
    archive_entry_free(e);
    long n;
    while (!rc && (n = cs_backup_read(b, buf, sizeof buf, &err)) > 0) {
      if (archive_write_data(a, buf, (size_t)n) != n) rc = -1;
      total += n;
    }
  }
  if (archive_write_close(a) != ARCHIVE_OK) rc = -1;
  archive_write_free(a);
  cs_backup_end(b);
  return rc ? -1 : total;
}

typedef struct onl_compact {
  cs_store *s;
  int rc;
  double secs;
  int done;
} onl_compact;

static void *onl_compact_main(void *arg) {
  onl_compact *k = arg;
  cs_compact_result res;
  cs_error err;
  uint64_t t0 = bh_now_ns();
  k->rc = cs_compact_online(k->s, NULL, &res, &err);
  k->secs = bh_seconds(t0, bh_now_ns());
  if (k->rc) fprintf(stderr, "bench_tools: compact: %s\n", err.msg);
  __atomic_store_n(&k->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* Runs the writers' phase ph while during() works (or for secs when
 * during is NULL); its wall seconds. */
static double onl_phase_run(onl_phase *ph, double secs,
                            int (*during)(cs_store *s, void *ctx), cs_store *s,
                            void *ctx) {
  ph->lat_n = 0;
  ph->creates = 0;
  uint64_t t0 = bh_now_ns();
  __atomic_store_n(&onl_cur, ph, __ATOMIC_RELEASE);
  int rc = 0;
  if (during)
    rc = during(s, ctx);
  else
    while (bh_seconds(t0, bh_now_ns()) < secs)
      usleep(10000);
  __atomic_store_n(&onl_cur, NULL, __ATOMIC_RELEASE);
  double d = bh_seconds(t0, bh_now_ns());
  return rc ? -1 : d;
}

static int onl_during_compact(cs_store *s, void *ctx) {
  onl_compact *k = ctx;
  k->s = s;
  pthread_t t;
  if (pthread_create(&t, NULL, onl_compact_main, k)) return -1;
  pthread_join(t, NULL);
  return k->rc;
}

typedef struct onl_backups {
  double secs;   /* at least this long */
  int64_t bytes; /* streamed */
  double stream_secs;
} onl_backups;

static int onl_during_backups(cs_store *s, void *ctx) {
  onl_backups *k = ctx;
  uint64_t t0 = bh_now_ns();
  k->bytes = 0;
  do {
    int64_t n = onl_backup_tar(s);
    if (n < 0) return -1;
    k->bytes += n;
  } while (bh_seconds(t0, bh_now_ns()) < k->secs);
  k->stream_secs = bh_seconds(t0, bh_now_ns());
  return 0;
}

/* The online part of the run, on the store loaded into data. */
static int bench_online(const char *data, uint64_t contacts) {
  cs_options so = {.durability = CS_DURABILITY_FSYNC};
  cs_store *s;
  cs_error err;
  if (cs_open(data, &so, &s, &err) != 0) {
    fprintf(stderr, "bench_tools: %s\n", err.msg);
    return 1;
  }
  /* The stream alone first, with no writers. */
  onl_backups quiet = {.secs = 2};
  int ex = onl_during_backups(s, &quiet) != 0;
  int stop = 0;
  onl_writer *w = calloc(ONL_WRITERS, sizeof *w);
  pthread_t *t = calloc(ONL_WRITERS, sizeof *t);
  for (int i = 0; i < ONL_WRITERS; i++) {
    w[i] = (onl_writer){.s = s, .idx = i, .stop = &stop};
    pthread_mutex_init(&w[i].mu, NULL);
    pthread_cond_init(&w[i].cv, NULL);
    pthread_create(&t[i], NULL, onl_writer_main, &w[i]);
  }
  onl_phase base = {calloc(ONL_SAMPLES_MAX, 8), 0, 0};
  onl_phase comp = {calloc(ONL_SAMPLES_MAX, 8), 0, 0};
  onl_phase back = {calloc(ONL_SAMPLES_MAX, 8), 0, 0};
  onl_compact k = {0};
  onl_backups busy = {.secs = 3};
  usleep(300000); /* warm */
  double bs = ex ? -1 : onl_phase_run(&base, 5, NULL, s, NULL);
  double cs = bs < 0 ? -1 : onl_phase_run(&comp, 0, onl_during_compact, s, &k);
  double ks =
      cs < 0 ? -1 : onl_phase_run(&back, 0, onl_during_backups, s, &busy);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < ONL_WRITERS; i++)
    pthread_join(t[i], NULL);
  if (bs < 0 || cs < 0 || ks < 0) ex = 1;
  if (!ex) {
    double rb = (double)base.creates / bs, rc = (double)comp.creates / cs,
           rk = (double)back.creates / ks;
    bh_table tb;
    bh_table_init(&tb, "contactd", "without");
    char a[40], b[40], r[24], m[40];
    snprintf(m, sizeof m, "%.1f ms vs %.1f ms", onl_p99_ms(&comp),
             onl_p99_ms(&base));
    bh_table_add(&tb, "durable creates (64 writers) during online compaction",
                 bh_fmt_rate(a, sizeof a, rc), bh_fmt_rate(b, sizeof b, rb),
                 bh_fmt_ratio(r, sizeof r, rc / rb), ">= 50%",
                 rc >= 0.5 * rb ? "yes" : "no");
    bh_table_add(&tb, "p99 create latency, during compaction vs without", m,
                 NULL, NULL, NULL, NULL);
    char cc[64];
    snprintf(cc, sizeof cc, "%s (%s contacts)",
             bh_fmt_seconds(a, sizeof a, k.secs),
             bh_fmt_count(b, sizeof b, (double)contacts));
    bh_table_add(&tb, "online compaction time, under the writers", cc, NULL,
                 NULL, NULL, NULL);
    snprintf(m, sizeof m, "%.1f ms vs %.1f ms", onl_p99_ms(&back),
             onl_p99_ms(&base));
    bh_table_add(&tb, "durable creates (64 writers) during backups",
                 bh_fmt_rate(a, sizeof a, rk), bh_fmt_rate(b, sizeof b, rb),
                 bh_fmt_ratio(r, sizeof r, rk / rb), NULL, NULL);
    bh_table_add(&tb, "p99 create latency, during backups vs without", m, NULL,
                 NULL, NULL, NULL);
    snprintf(cc, sizeof cc, "%s/s",
             bh_fmt_bytes(a, sizeof a, (double)busy.bytes / busy.stream_secs));
    snprintf(
        m, sizeof m, "%s/s",
        bh_fmt_bytes(b, sizeof b, (double)quiet.bytes / quiet.stream_secs));
    bh_table_add(&tb, "backup as tar to /dev/null, bytes/s (with writers)", cc,
                 m, NULL, NULL, NULL);
    bh_table_print(&tb, stdout);
    bh_table_free(&tb);
  }
  free(base.lat_ns);
  free(comp.lat_ns);
  free(back.lat_ns);
  free(w);
  free(t);
  if (cs_close(s, &err) != 0) ex = 1;
  return ex;
}

/* A fresh store of the input, loaded by contactctl, then bench_online. */
static int online_part(const char *data, const char *input, uint64_t n) {
  char args[9000];
  bh_rm_rf(data);
  snprintf(args, sizeof args, "--data %s keys add --account bench", data);
  if (run_ctl(args) < 0) return 1;
  snprintf(args, sizeof args, "--data %s load --account bench %s", data, input);
  if (run_ctl(args) < 0) return 1;
  return bench_online(data, n);
}

static int parse_args(int argc, char **argv, options *o) {
  for (int k = 1; k < argc; k++) {
    const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
    if (!v) return -1;
    if (!strcmp(a, "--contacts"))
      o->contacts = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--runs"))
      o->runs = atoi(v);
    else if (!strcmp(a, "--dir"))
      o->dir = v;
    else if (!strcmp(a, "--seed"))
      o->seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--online"))
      o->online = !strcmp(v, "only") ? 2 : !strcmp(v, "no") ? 0 : 1;
    else
      return -1;
    k++;
  }
  return o->contacts && o->runs > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  options o = {1000000, 3, getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", 42, 1};
  if (parse_args(argc, argv, &o)) {
    fprintf(stderr,
            "usage: %s [--contacts N] [--runs R] [--dir DIR] "
            "[--seed S] [--online yes|no|only]\n",
            argv[0]);
    return 2;
  }
  char base[4096], input[4200], data[4200], data2[4200], out[4200], db[4200],
      args[9000];
  snprintf(base, sizeof base, "%s/bench_tools.%d", o.dir, (int)getpid());
  if (mkdir(base, 0700) < 0) {
    perror(base);
    return 1;
  }
  snprintf(input, sizeof input, "%s/contacts.jsonl", base);
  snprintf(data, sizeof data, "%s/data", base);
  snprintf(data2, sizeof data2, "%s/data2", base);
  snprintf(out, sizeof out, "%s/dump.jsonl", base);
  snprintf(db, sizeof db, "%s/sqlite.db", base);
  printf("bench_tools: %" PRIu64 " contacts, %d runs, seed %" PRIu64
         ", in %s\n",
         o.contacts, o.runs, o.seed, base);
  if (write_input(input, o.contacts, o.seed)) {
    fprintf(stderr, "cannot write %s\n", input);
    return 1;
  }
  double *load = calloc((size_t)o.runs, sizeof *load);
  double *dump = calloc((size_t)o.runs, sizeof *dump);
  double *reload = calloc((size_t)o.runs, sizeof *reload);
  double *compact = calloc((size_t)o.runs, sizeof *compact);
  double *verify = calloc((size_t)o.runs, sizeof *verify);
  double *sql = calloc((size_t)o.runs, sizeof *sql);
  uint64_t bytes_before = 0, bytes_after = 0;
  int ex = 0;
  for (int r = 0; r < o.runs && !ex && o.online < 2; r++) {
    bh_rm_rf(data);
    snprintf(args, sizeof args, "--data %s keys add --account bench", data);
    if (run_ctl(args) < 0) ex = 1;
    snprintf(args, sizeof args, "--data %s load --account bench %s", data,
             input);
    if (!ex && (load[r] = run_ctl(args)) < 0) ex = 1;
    snprintf(args, sizeof args, "--data %s dump --output %s", data, out);
    if (!ex && (dump[r] = run_ctl(args)) < 0) ex = 1;
    bh_rm_rf(data2);
    snprintf(args, sizeof args, "--data %s load %s", data2, out);
    if (!ex && (reload[r] = run_ctl(args)) < 0) ex = 1;
    bh_rm_rf(data2);
    if (!ex && delete_half(data) != 0) ex = 1;
    bytes_before = bh_dir_bytes(data);
    snprintf(args, sizeof args, "--data %s compact", data);
    if (!ex && (compact[r] = run_ctl(args)) < 0) ex = 1;
    bytes_after = bh_dir_bytes(data);
    snprintf(args, sizeof args, "--data %s verify", data);
    if (!ex && (verify[r] = run_ctl(args)) < 0) ex = 1;
    if (!ex && (sql[r] = sqlite_import(db, input)) < 0) ex = 1;
    if (!ex)
      fprintf(stderr,
              "run %d: load %.2f s, dump %.2f s, load of the dump %.2f s, "
              "compact %.2f s, verify %.2f s, sqlite import %.2f s\n",
              r + 1, load[r], dump[r], reload[r], compact[r], verify[r],
              sql[r]);
  }
  if (!ex && o.online) ex = online_part(data, input, o.contacts);
  if (!ex && o.online < 2) {
    double n = (double)o.contacts;
    double l = bh_median(load, (size_t)o.runs),
           d = bh_median(dump, (size_t)o.runs);
    double rl = bh_median(reload, (size_t)o.runs);
    double c = bh_median(compact, (size_t)o.runs);
    double v = bh_median(verify, (size_t)o.runs);
    double q = bh_median(sql, (size_t)o.runs);
    bh_table t;
    bh_table_init(&t, "contactctl", "SQLite");
    char a[40], b[40], ra[24];
    bh_table_add(&t, "load, contacts/s (one sync, snapshot at close)",
                 bh_fmt_rate(a, sizeof a, n / l),
                 bh_fmt_rate(b, sizeof b, n / q),
                 bh_fmt_ratio(ra, sizeof ra, q / l), ">= 250 k/s",
                 n / l >= 250000 ? "yes" : "no");
    bh_table_add(&t, "dump JSONL, contacts/s", bh_fmt_rate(a, sizeof a, n / d),
                 NULL, NULL, ">= 500 k/s", n / d >= 500000 ? "yes" : "no");
    bh_table_add(&t, "load of the dump (ids, times kept), contacts/s",
                 bh_fmt_rate(a, sizeof a, n / rl), NULL, NULL, NULL, NULL);
    snprintf(ra, sizeof ra, "%.2f", d / rl);
    bh_table_add(&t, "load of the dump / dump (same run)", ra, NULL, NULL,
                 ">= 0.5", d / rl >= 0.5 ? "yes" : "no");
    bh_table_add(&t, "compact, half the contacts deleted",
                 bh_fmt_seconds(a, sizeof a, c), NULL, NULL, "< 10 s",
                 c < 10 ? "yes" : "no");
    char sz[40], sz2[40], szc[96];
    snprintf(szc, sizeof szc, "%s -> %s",
             bh_fmt_bytes(sz, sizeof sz, (double)bytes_before),
             bh_fmt_bytes(sz2, sizeof sz2, (double)bytes_after));
    bh_table_add(&t, "data directory before -> after compaction", szc, NULL,
                 NULL, NULL, NULL);
    bh_table_add(&t, "verify (after compaction)",
                 bh_fmt_seconds(a, sizeof a, v), NULL, NULL, NULL, NULL);
    bh_table_print(&t, stdout);
    bh_table_free(&t);
  }
  bh_rm_rf(base);
  free(load);
  free(dump);
  free(reload);
  free(compact);
  free(verify);
  free(sql);
  return ex;
}
