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
 * The tool is run as a program (the path is compiled in), as an
 * administrator runs it. Usage:
 *   bench_tools [--contacts N] [--runs R] [--dir DIR] [--seed S]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <yajl/yajl_gen.h>

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
    else
      return -1;
    k++;
  }
  return o->contacts && o->runs > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  options o = {1000000, 3, getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", 42};
  if (parse_args(argc, argv, &o)) {
    fprintf(stderr,
            "usage: %s [--contacts N] [--runs R] [--dir DIR] "
            "[--seed S]\n",
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
  for (int r = 0; r < o.runs && !ex; r++) {
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
  if (!ex) {
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
