/*
 * ctl_load.c: contactctl load, a bulk import of JSON Lines or CSV (the
 * rules are at the top of contactctl.c). Each line is read by the codec
 * (an export line, ct_export_line_parse, or a CSV row through the same
 * value checks) and checked by the engine's bulk load (cs_load_add), which
 * keeps it; once every line is read, cs_load_commit writes the kept
 * contacts into new segments in one atomic step and indexes them.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csv.h>

#include "admin.h"
#include "cs.h"
#include "ct_codec.h"
#include "ctl.h"

/* ------------------------------------------------------------------- load */

/* Accounts a dry run would create: names not in the key file get the
 * numbers cs_keys_account_ensure would give, without writing the file. */
#define DRY_ACCOUNTS_MAX 256

typedef struct loader {
  cs_store *s;
  cs_keyring *k;
  cs_load *load;
  bool dry;
  bool new_ids;
  bool has_account; /* --account: every line goes there */
  uint32_t account;
  uint64_t loaded;
  uint64_t rejected;
  char dry_names[DRY_ACCOUNTS_MAX][CS_ACCOUNT_NAME_MAX_BYTES + 1];
  uint32_t dry_ids[DRY_ACCOUNTS_MAX];
  size_t dry_count;
  uint32_t dry_next;
  int fatal; /* a store failure: stop */
  cs_error fatal_err;
} loader;

static void reject(loader *L, uint64_t line, const char *code, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void reject(loader *L, uint64_t line, const char *code, const char *fmt,
                   ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "line %" PRIu64 ": %s: ", line, code);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  L->rejected++;
}

/* The number of the account a line names (created when new, or in a dry
 * run given the number it would get). false after rejecting the line. */
static bool line_account(loader *L, uint64_t line, cs_str name, uint32_t *id) {
  if (L->has_account) {
    *id = L->account;
    return true;
  }
  char buf[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  if (!name.ptr) {
    reject(L, line, "missing_field",
           "account: the line names no account; give --account NAME");
    return false;
  }
  if (name.len >= sizeof buf || memchr(name.ptr, 0, name.len)) {
    reject(L, line, "invalid_account", "account: not an account name");
    return false;
  }
  memcpy(buf, name.ptr, name.len);
  buf[name.len] = 0;
  if (cs_keys_account_id(L->k, buf, id) == 0) return true;
  cs_error err = {0};
  if (!L->dry) {
    int rc = cs_keys_account_ensure(L->k, buf, id, &err);
    if (rc == CS_EACCOUNT) {
      reject(L, line, "invalid_account", "account: %s", err.msg);
      return false;
    }
    if (rc) {
      L->fatal = rc;
      L->fatal_err = err;
      return false;
    }
    return true;
  }
  for (size_t i = 0; i < L->dry_count; i++)
    if (strcmp(L->dry_names[i], buf) == 0) return *id = L->dry_ids[i], true;
  if (!cs_keys_account_name_ok(buf) || L->dry_count == DRY_ACCOUNTS_MAX) {
    reject(L, line, "invalid_account", "account: %s",
           L->dry_count == DRY_ACCOUNTS_MAX ? "too many new accounts to check"
                                            : "not an account name");
    return false;
  }
  snprintf(L->dry_names[L->dry_count], sizeof L->dry_names[0], "%s", buf);
  *id = L->dry_ids[L->dry_count++] = L->dry_next++;
  return true;
}

/* Checks (and keeps for the commit) one contact read from line. */
static void load_one(loader *L, uint64_t line, uint32_t account,
                     cs_contact *c) {
  cs_error err = {0};
  uint64_t dup = 0;
  if (L->new_ids) {
    c->id = 0;
    c->created_ms = c->updated_ms = 0;
  }
  int rc = cs_load_add(L->load, account, c, line, &dup, &err);
  if (rc == CS_EDUPLICATE && dup) {
    reject(L, line, "duplicate_email", "email: already used on line %" PRIu64,
           dup);
    return;
  }
  if (rc == CS_EINVAL && dup) {
    reject(L, line, "duplicate_id",
           "id: %020" PRIu64 " is also on line %" PRIu64, c->id, dup);
    return;
  }
  if (rc == CS_EINVAL || rc == CS_EDUPLICATE) {
    reject(L, line, cs_strcode(rc), "%s", err.msg);
    return;
  }
  if (rc) {
    L->fatal = rc;
    L->fatal_err = err;
    return;
  }
  L->loaded++;
}

/* ----- JSON lines */

/* One line, an export line of the codec (ct_export_line_parse): a contact
 * with its identity (a dump's line) or a plain contact (a create body). */
static void load_json_line(loader *L, uint64_t line, const char *json,
                           size_t len) {
  ct_export_line x;
  uint32_t account;
  if (ct_export_line_parse(&x, json, len) != 0)
    reject(L, line, x.err.code, "%s", x.err.msg);
  else if (line_account(L, line, x.account, &account))
    load_one(L, line, account, &x.c);
  ct_export_line_free(&x);
}

static bool blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return false;
  return true;
}

/* ----- CSV */

#define CSV_COLUMNS_MAX 64

/* Columns that are not contact fields: the account and the identity a
 * dump writes (ctl.h), read back as an export line's keys are. */
enum {
  COL_FIELD = 0,
  COL_ACCOUNT,
  COL_ID,
  COL_CREATED,
  COL_UPDATED,
  COL_VERSION,
  COL_DELETED,
  COL_KINDS
};

typedef struct csv_load {
  loader *L;
  uint64_t cur_line; /* the physical line being fed */
  uint64_t row_line; /* where the current row started */
  bool in_row;
  bool header_done;
  int col; /* column of the next field */
  int ncols;
  int map[CSV_COLUMNS_MAX];  /* column -> cs_field, or -1 */
  int kind[CSV_COLUMNS_MAX]; /* column -> COL_* */
  int at[COL_KINDS];         /* COL_* -> its column, -1 when none */
  char *vals[CSV_COLUMNS_MAX];
  size_t lens[CSV_COLUMNS_MAX];
  size_t caps[CSV_COLUMNS_MAX];
  bool bad_header;
  char header_err[300];
} csv_load;

static void csv_on_field(void *s, size_t len, void *data) {
  csv_load *cl = data;
  if (!cl->in_row) {
    cl->in_row = true;
    cl->row_line = cl->cur_line;
  }
  int i = cl->col++;
  if (i >= CSV_COLUMNS_MAX) return;
  if (cl->caps[i] < len + 1) {
    size_t cap = len + 64;
    char *p = realloc(cl->vals[i], cap);
    if (!p) return; /* leaves the old (short) value: caught as invalid */
    cl->vals[i] = p;
    cl->caps[i] = cap;
  }
  if (len) memcpy(cl->vals[i], s, len);
  cl->vals[i][len] = 0;
  cl->lens[i] = len;
}

/* The COL_* a header name is, COL_FIELD with *field for a field, or -1. */
static int column_kind(cs_str name, int *field) {
  *field = cs_field_from_name(name.ptr, name.len);
  if (*field >= 0) return COL_FIELD;
  static const struct {
    int sf;
    int kind;
  } server[] = {{CS_SERVER_ID, COL_ID},
                {CS_SERVER_CREATED_AT, COL_CREATED},
                {CS_SERVER_UPDATED_AT, COL_UPDATED},
                {CS_SERVER_VERSION, COL_VERSION}};
  int sf = cs_server_field_from_name(name.ptr, name.len);
  for (size_t i = 0; i < sizeof server / sizeof server[0]; i++)
    if (server[i].sf == sf) return server[i].kind;
  if (name.len == strlen(CTL_CSV_ACCOUNT) &&
      !memcmp(name.ptr, CTL_CSV_ACCOUNT, name.len))
    return COL_ACCOUNT;
  if (name.len == strlen(CTL_CSV_DELETED_AT) &&
      !memcmp(name.ptr, CTL_CSV_DELETED_AT, name.len))
    return COL_DELETED;
  return -1;
}

static void csv_header(csv_load *cl, int cols) {
  cl->header_done = true;
  cl->ncols = cols;
  for (int k = 0; k < COL_KINDS; k++)
    cl->at[k] = -1;
  if (cl->ncols > CSV_COLUMNS_MAX) {
    cl->bad_header = true;
    snprintf(cl->header_err, sizeof cl->header_err, "more than %d columns",
             CSV_COLUMNS_MAX);
    return;
  }
  uint32_t seen = 0;
  for (int i = 0; i < cl->ncols; i++) {
    cs_str name = cs_trim((cs_str){cl->vals[i], cl->lens[i]});
    int f;
    int kind = column_kind(name, &f);
    bool twice = kind == COL_FIELD ? (seen & (1u << f)) != 0
                 : kind > 0        ? cl->at[kind] >= 0
                                   : false;
    if (kind < 0 || twice) {
      cl->bad_header = true;
      snprintf(cl->header_err, sizeof cl->header_err,
               "column %d (\"%.*s\"): %s", i + 1,
               (int)(name.len > 64 ? 64 : name.len), name.ptr,
               kind < 0 ? "not a field" : "given twice");
      return;
    }
    cl->kind[i] = kind;
    cl->map[i] = kind == COL_FIELD ? f : -1;
    if (kind == COL_FIELD) seen |= 1u << f;
    if (kind > 0) cl->at[kind] = i;
  }
}

/* The trimmed cell of column kind k, ptr NULL when none or empty. */
static cs_str csv_cell(const csv_load *cl, int k) {
  if (cl->at[k] < 0) return (cs_str){NULL, 0};
  cs_str v = cs_trim((cs_str){cl->vals[cl->at[k]], cl->lens[cl->at[k]]});
  if (!v.len) v.ptr = NULL;
  return v;
}

/* A time cell into *ms: false after rejecting the line. */
static bool csv_time(loader *L, uint64_t line, cs_str v, const char *name,
                     bool required, int64_t *ms) {
  *ms = 0;
  if (!v.ptr && !required) return true;
  if (v.ptr && cs_time_parse(v.ptr, v.len, ms) == 0) return true;
  if (!v.ptr)
    reject(L, line, "missing_field", "%s: required with an id", name);
  else
    reject(L, line, "invalid_field",
           "%s: not an RFC 3339 time (2026-11-26T08:58:00.123Z)", name);
  return false;
}

/* The identity cells of a row into *c: false after rejecting the line. */
static bool csv_identity(csv_load *cl, uint64_t line, cs_contact *c) {
  loader *L = cl->L;
  cs_str id = csv_cell(cl, COL_ID), version = csv_cell(cl, COL_VERSION);
  cs_str deleted = csv_cell(cl, COL_DELETED);
  if (version.ptr && ct_parse_version(version.ptr, version.len, &c->version)) {
    reject(L, line, "invalid_field",
           "version: must be an integer from 1 to %" PRIu64, UINT64_MAX);
    return false;
  }
  if (!id.ptr) {
    if (deleted.ptr)
      reject(L, line, "invalid_field",
             "deleted_at: only with an id (a dump's trash entry)");
    return !deleted.ptr;
  }
  if (cs_id_parse(id.ptr, id.len, &c->id) != 0) {
    reject(L, line, "invalid_field",
           "id: not an id (20 digits, the first not 0)");
    return false;
  }
  if (!c->version) c->version = 1;
  return csv_time(L, line, csv_cell(cl, COL_CREATED), "created_at", true,
                  &c->created_ms) &&
         csv_time(L, line, csv_cell(cl, COL_UPDATED), "updated_at", true,
                  &c->updated_ms) &&
         csv_time(L, line, deleted, "deleted_at", false, &c->deleted_ms);
}

static void csv_on_row(int term, void *data) {
  (void)term;
  csv_load *cl = data;
  loader *L = cl->L;
  uint64_t line = cl->in_row ? cl->row_line : cl->cur_line;
  int cols = cl->col;
  cl->col = 0;
  cl->in_row = false;
  if (cl->bad_header || L->fatal) return;
  if (!cl->header_done) {
    csv_header(cl, cols);
    return;
  }
  if (cols != cl->ncols) {
    reject(L, line, "invalid_body", "%d fields where the header names %d", cols,
           cl->ncols);
    return;
  }
  cs_contact c = {0};
  uint32_t present = 0;
  ct_err e;
  for (int i = 0; i < cols; i++) {
    int f = cl->map[i];
    if (f < 0) continue;
    cs_str v;
    if (ct_check_value(f, cl->vals[i], cl->lens[i], &v, &e)) {
      reject(L, line, e.code, "%s", e.msg);
      return;
    }
    if (v.len) { /* an empty optional value is null */
      c.field[f] = v;
      present |= 1u << f;
    }
  }
  if (ct_check_required(present, &e)) {
    reject(L, line, e.code, "%s", e.msg);
    return;
  }
  uint32_t account;
  if (csv_identity(cl, line, &c) &&
      line_account(L, line, csv_cell(cl, COL_ACCOUNT), &account))
    load_one(L, line, account, &c);
}

/* ----- the command */

typedef struct load_opts {
  bool csv;
  bool dry;
  bool new_ids;
  const char *account;
  const char *path;
} load_opts;

/* Reads load's options into *o: -1 to go on, or the exit status. */
static int load_options(int argc, char **argv, load_opts *o) {
  const char *format = "jsonl";
  static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                       {"account", required_argument, 0, 'a'},
                                       {"dry-run", no_argument, 0, 'n'},
                                       {"new-ids", no_argument, 0, 'i'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  *o = (load_opts){0};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      format = optarg;
      break;
    case 'a':
      o->account = optarg;
      break;
    case 'n':
      o->dry = true;
      break;
    case 'i':
      o->new_ids = true;
      break;
    case 'h':
      return usage(stdout, "load"), EXIT_OK;
    default:
      return bad_usage("load", "bad option");
    }
  }
  o->csv = strcmp(format, "csv") == 0;
  if (!o->csv && strcmp(format, "jsonl") != 0)
    return bad_usage("load", "--format is jsonl or csv, not %s", format);
  if (argc - optind != 1)
    return bad_usage("load", "load needs one FILE (or -)");
  o->path = argv[optind];
  return -1;
}

/* Opens the store for the load (L->s, closed by the caller even on
 * failure) and its key file, finds --account's number and starts the load
 * (a dry run checks every line the same way and never commits). The exit
 * status. */
static int load_open(const char *dir, const load_opts *o, loader *L,
                     cs_error *err) {
  /* No sync per write and no periodic snapshot: the load syncs what it
   * writes, and the snapshot at close covers the whole load. */
  cs_options opts = {.durability = CS_DURABILITY_NONE,
                     .snapshot_every_bytes = UINT64_MAX,
                     .no_snapshot_on_close = o->dry,
                     .notice = notice_print};
  int rc = cs_open(dir, &opts, &L->s, err);
  if (rc) return fail("cannot open the store", rc, err);
  rc = cs_keys_open(dir, &L->k, err);
  if (rc) return fail("cannot read the key file", rc, err);
  L->dry = o->dry;
  L->new_ids = o->new_ids;
  if (o->account) {
    int ex = account_lookup(dir, o->account, &L->account);
    if (ex != EXIT_OK) return ex;
    L->has_account = true;
  }
  /* A dry run's new accounts get the numbers the key file would give. */
  size_t n = cs_keys_account_list(L->k, NULL, 0);
  uint32_t last = 0;
  if (n) {
    uint32_t *ids = calloc(n, sizeof *ids);
    if (!ids) return fail("out of memory", -ENOMEM, NULL);
    cs_keys_account_list(L->k, ids, n);
    last = ids[n - 1];
    free(ids);
  }
  L->dry_next = last + 1;
  rc = cs_load_begin(L->s, &L->load, err);
  if (rc) return fail("cannot start the load", rc, err);
  return EXIT_OK;
}

/* Reads every line of in (named path) and loads it, starting *pg. The exit
 * status of what reading met (the lines rejected are counted in L). */
static int load_read(loader *L, const load_opts *o, FILE *in, progress *pg) {
  struct stat st;
  uint64_t in_bytes = 0;
  if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode))
    in_bytes = (uint64_t)st.st_size;
  struct csv_parser parser;
  csv_load cl = {.L = L};
  if (o->csv && csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI) != 0)
    return fail("out of memory", -ENOMEM, NULL);
  int ex = EXIT_OK;
  char *line = NULL;
  size_t line_cap = 0;
  progress_begin(pg, o->dry ? "check" : "load", "bytes");
  uint64_t lineno = 0, read_bytes = 0;
  ssize_t n;
  while (!L->fatal && (n = getline(&line, &line_cap, in)) >= 0) {
    lineno++;
    read_bytes += (uint64_t)n;
    if ((lineno & 0x3fff) == 0) progress_show(pg, read_bytes, in_bytes);
    if (o->csv) {
      cl.cur_line = lineno;
      if (csv_parse(&parser, line, (size_t)n, csv_on_field, csv_on_row, &cl) !=
          (size_t)n) {
        progress_end(pg);
        fprintf(stderr, "line %" PRIu64 ": invalid_csv: %s; stopped here\n",
                lineno, csv_strerror(csv_error(&parser)));
        L->rejected++;
        break;
      }
      if (cl.bad_header) break;
      continue;
    }
    if (blank(line, (size_t)n)) continue;
    load_json_line(L, lineno, line, (size_t)n);
  }
  if (ferror(in)) {
    progress_end(pg);
    fprintf(stderr, "%s: reading %s failed: %s\n", prog, o->path,
            strerror(errno));
    ex = EXIT_PROBLEM;
  }
  if (o->csv && !cl.bad_header && csv_error(&parser) == CSV_SUCCESS &&
      csv_fini(&parser, csv_on_field, csv_on_row, &cl) != 0) {
    fprintf(stderr, "line %" PRIu64 ": invalid_csv: %s\n", lineno,
            csv_strerror(csv_error(&parser)));
    L->rejected++;
  }
  progress_end(pg);
  if (cl.bad_header) {
    fprintf(stderr, "%s: line 1: %s; nothing loaded\n", prog, cl.header_err);
    ex = EXIT_PROBLEM;
  }
  if (o->csv) csv_free(&parser);
  for (int i = 0; i < CSV_COLUMNS_MAX; i++)
    free(cl.vals[i]);
  free(line);
  return ex;
}

/* After reading: the store's failure, or the commit (the load written,
 * synced and indexed) and the summary. ex is what reading returned; the
 * exit status. */
static int load_finish(loader *L, const load_opts *o, const progress *pg,
                       int ex, cs_error *err) {
  if (L->fatal)
    return fail("the store failed; stopped", L->fatal, &L->fatal_err);
  cs_load_result res = {0};
  if (!o->dry && L->loaded) {
    progress wp;
    progress_begin(&wp, "write", "contacts");
    int rc = cs_load_commit(L->load, progress_show, &wp, &res, err);
    progress_end(&wp);
    if (rc) return fail("the load failed; the store is as it was", rc, err);
  }
  double secs = (double)(now_ns() - pg->start_ns) / 1e9;
  fprintf(stderr,
          "%s: %s %" PRIu64 " contacts, rejected %" PRIu64 " lines (%" PRIu64
          " into the trash; %.2f s, %.0f/s)%s\n",
          prog, o->dry ? "would load" : "loaded", L->loaded, L->rejected,
          res.trashed, secs, secs > 0 ? (double)L->loaded / secs : 0.0,
          o->dry ? "; nothing was changed" : "");
  if (L->rejected && ex == EXIT_OK) ex = EXIT_PROBLEM;
  return ex;
}

int cmd_load(const char *dir, int argc, char **argv) {
  load_opts o;
  int ex = load_options(argc, argv, &o);
  if (ex >= 0) return ex;

  /* A restore goes into a new directory as often as not (a first key may
   * be made there the same way, keys add). */
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "%s: cannot create %s: %s\n", prog, dir, strerror(errno));
    return EXIT_PROBLEM;
  }
  loader L = {0};
  cs_error err = {0};
  FILE *in = NULL;
  progress pg;
  if ((ex = load_open(dir, &o, &L, &err)) != EXIT_OK) goto out;
  in = strcmp(o.path, "-") == 0 ? stdin : fopen(o.path, "r");
  if (!in) {
    fprintf(stderr, "%s: cannot open %s: %s\n", prog, o.path, strerror(errno));
    ex = EXIT_PROBLEM;
    goto out;
  }
  ex = load_read(&L, &o, in, &pg);
  ex = load_finish(&L, &o, &pg, ex, &err);
out:
  if (in && in != stdin) fclose(in);
  cs_load_free(L.load);
  cs_keys_close(L.k);
  if (L.s && cs_close(L.s, &err) != 0 && ex == EXIT_OK)
    ex = fail("closing the store failed", err.code, &err);
  return ex;
}
