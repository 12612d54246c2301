/*
 * ctl_load.c: contactctl load, a bulk import of JSON Lines or CSV, each line
 * read by the API's own codec and created as a POST /contacts would be (the
 * rules are at the top of contactctl.c).
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

typedef struct loader {
  cs_store *s;
  cs_dryrun *dry;
  uint32_t account;
  uint64_t loaded;
  uint64_t rejected;
  uint64_t first_id; /* of this run's creates, which are consecutive */
  uint64_t *lines;   /* line of each of this run's creates, by id - first_id */
  size_t line_cap;
  bool version_checked; /* a kept version (not 1) was read back once */
  int fatal;            /* a store failure, or versions not kept: stop */
  const char *fatal_what;
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

/* How a line gave its version. */
enum { VERSION_NUMBER, VERSION_STRING, VERSION_OTHER };

/* The version a line gives in v, written as kind (none given: 1), into
 * *out, or false after rejecting the line. */
static bool load_version(loader *L, uint64_t line, cs_str v, int kind,
                         uint64_t *out) {
  *out = 1;
  if (kind == VERSION_OTHER) {
    reject(L, line, "invalid_field",
           "version: must be an integer from 1 to %" PRIu64
           ", not a boolean, an object or an array",
           UINT64_MAX);
    return false;
  }
  if (!v.ptr) return true;
  if (kind == VERSION_NUMBER && ct_parse_version(v.ptr, v.len, out) == 0)
    return true;
  const char *q = kind == VERSION_STRING ? "\"" : "";
  reject(L, line, "invalid_field",
         "version: must be an integer from 1 to %" PRIu64 ", not %s%.*s%s",
         UINT64_MAX, q,
         (int)(v.len > CT_ECHO_MAX_BYTES ? CT_ECHO_MAX_BYTES : v.len), v.ptr,
         q);
  return false;
}

/* Reads back the first contact loaded with a version other than 1: a store
 * that does not keep a bulk create's version would make versions go back,
 * so the load stops at once rather than loading them all wrong. */
static void load_check_version(loader *L, uint64_t id, uint64_t version) {
  L->version_checked = true;
  cs_contact got;
  int rc = cs_flush(L->s, &L->fatal_err);
  if (!rc) rc = cs_get(L->s, L->account, id, &got, &L->fatal_err);
  if (!rc && got.version != version) {
    rc = CS_EINVAL;
    L->fatal_what = "stopped";
    snprintf(L->fatal_err.msg, sizeof L->fatal_err.msg,
             "this store does not keep the versions a load gives (contact "
             "%020" PRIu64 ": version %" PRIu64 " given, %" PRIu64 " stored)",
             id, version, got.version);
  }
  if (rc) L->fatal = rc;
}

/* Creates (or, in a dry run, checks) one contact read from line. */
static void load_one(loader *L, uint64_t line, cs_contact *c) {
  cs_error err = {0};
  uint64_t id = 0, dup_line = 0;
  int rc;
  if (L->dry) {
    rc = cs_dryrun_check(L->dry, L->account, c, line, &dup_line, &err);
  } else {
    rc = cs_create(L->s, L->account, c, NULL, NULL, &id, &err);
    if (rc == CS_EDUPLICATE && L->first_id && err.id >= L->first_id &&
        err.id - L->first_id < L->loaded)
      dup_line = L->lines[err.id - L->first_id];
  }
  if (rc == CS_EDUPLICATE && dup_line) {
    reject(L, line, "duplicate_email", "email: already used on line %" PRIu64,
           dup_line);
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
  if (!L->dry) {
    if (!L->first_id) L->first_id = id;
    if (L->loaded == L->line_cap) {
      size_t cap = L->line_cap ? L->line_cap * 2 : 4096;
      uint64_t *p = realloc(L->lines, cap * sizeof *p);
      if (!p) {
        L->fatal = -ENOMEM;
        snprintf(L->fatal_err.msg, sizeof L->fatal_err.msg, "out of memory");
        return;
      }
      L->lines = p;
      L->line_cap = cap;
    }
    L->lines[L->loaded] = line;
  }
  L->loaded++;
  if (!L->dry && !L->version_checked && c->version != 1)
    load_check_version(L, id, c->version);
}

/* ----- JSON lines */

/* One line read as a POST /contacts body, except that the keys a dump
 * writes and the server sets are let through: the version is kept, the
 * rest ignored (the contact gets a new id and new times). */
static void load_json_line(loader *L, uint64_t line, const char *json,
                           size_t len) {
  ct_body b;
  int rc =
      ct_body_parse_flags(&b, CT_BODY_POST, CT_PARSE_SERVER_FIELDS, json, len);
  if (rc) {
    reject(L, line, b.err.code, "%s", b.err.msg);
  } else if (b.is_edit) {
    reject(L, line, "unknown_field",
           "contact_id: load creates contacts; edits go through the API");
  } else {
    cs_contact c = {0};
    for (int f = 0; f < CS_FIELD_COUNT; f++)
      if (b.top.v.set_mask & (1u << f)) c.field[f] = b.top.v.field[f];
    uint32_t bit = 1u << CS_SERVER_VERSION;
    int kind = b.server_other & bit    ? VERSION_OTHER
               : b.server_number & bit ? VERSION_NUMBER
                                       : VERSION_STRING;
    if (load_version(L, line, b.server[CS_SERVER_VERSION], kind, &c.version))
      load_one(L, line, &c);
  }
  ct_body_free(&b);
}

static bool blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return false;
  return true;
}

/* ----- CSV */

#define CSV_COLUMNS_MAX 64

typedef struct csv_load {
  loader *L;
  uint64_t cur_line; /* the physical line being fed */
  uint64_t row_line; /* where the current row started */
  bool in_row;
  bool header_done;
  int col; /* column of the next field */
  int ncols;
  int map[CSV_COLUMNS_MAX]; /* column -> cs_field, -1 ignored */
  bool has_version;
  int version_col; /* the version column, when has_version */
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

static void csv_header(csv_load *cl, int cols) {
  cl->header_done = true;
  cl->ncols = cols;
  if (cl->ncols > CSV_COLUMNS_MAX) {
    cl->bad_header = true;
    snprintf(cl->header_err, sizeof cl->header_err, "more than %d columns",
             CSV_COLUMNS_MAX);
    return;
  }
  uint32_t seen = 0;
  for (int i = 0; i < cl->ncols; i++) {
    cs_str name = cs_trim((cs_str){cl->vals[i], cl->lens[i]});
    int f = cs_field_from_name(name.ptr, name.len);
    cl->map[i] = f;
    int sf = f < 0 ? cs_server_field_from_name(name.ptr, name.len) : -1;
    if (sf == CS_SERVER_VERSION && !cl->has_version) {
      cl->has_version = true; /* kept */
      cl->version_col = i;
      continue;
    }
    if (sf >= 0 && sf != CS_SERVER_VERSION) continue; /* a dump's; ignored */
    if (f < 0 || (seen & (1u << f))) {
      cl->bad_header = true;
      snprintf(cl->header_err, sizeof cl->header_err,
               "column %d (\"%.*s\"): %s", i + 1,
               (int)(name.len > 64 ? 64 : name.len), name.ptr,
               f < 0 && sf < 0 ? "not a field" : "given twice");
      return;
    }
    seen |= 1u << f;
  }
}

static void csv_on_row(int term, void *data) {
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
  cs_str v = {NULL, 0};
  if (cl->has_version) {
    v = cs_trim((cs_str){cl->vals[cl->version_col], cl->lens[cl->version_col]});
    if (!v.len) v.ptr = NULL; /* an empty cell: none given */
  }
  if (load_version(L, line, v, VERSION_NUMBER, &c.version))
    load_one(L, line, &c);
}

/* ----- the command */

typedef struct load_opts {
  bool csv;
  bool dry;
  const char *account;
  const char *path;
} load_opts;

/* Reads load's options into *o: -1 to go on, or the exit status. */
static int load_options(int argc, char **argv, load_opts *o) {
  const char *format = "jsonl";
  static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                       {"account", required_argument, 0, 'a'},
                                       {"dry-run", no_argument, 0, 'n'},
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
    case 'h':
      return usage(stdout, "load"), EXIT_OK;
    default:
      return bad_usage("load", "bad option");
    }
  }
  o->csv = strcmp(format, "csv") == 0;
  if (!o->csv && strcmp(format, "jsonl") != 0)
    return bad_usage("load", "--format is jsonl or csv, not %s", format);
  if (!o->account) return bad_usage("load", "load needs --account NAME");
  if (argc - optind != 1)
    return bad_usage("load", "load needs one FILE (or -)");
  o->path = argv[optind];
  return -1;
}

/* Opens the store for the load (L->s, closed by the caller even on
 * failure), finds the account and enters the bulk mode, or in a dry run
 * the checker. The exit status. */
static int load_open(const char *dir, const load_opts *o, loader *L,
                     cs_error *err) {
  /* No sync per write and no periodic snapshot: one sync at the end, and
   * the snapshot at close covers the whole load. */
  cs_options opts = {.durability = CS_DURABILITY_NONE,
                     .snapshot_every_bytes = UINT64_MAX,
                     .no_snapshot_on_close = o->dry,
                     .notice = notice_print};
  int rc = cs_open(dir, &opts, &L->s, err);
  if (rc) return fail("cannot open the store", rc, err);
  int ex = account_lookup(dir, o->account, &L->account);
  if (ex != EXIT_OK) return ex;
  /* Creates only: the indexes are built once at the end (cs_bulk_end)
   * rather than kept sorted at every contact. */
  if (!o->dry && (rc = cs_bulk_begin(L->s, err)) != 0)
    return fail("cannot start the load", rc, err);
  if (o->dry && cs_dryrun_create(L->s, &L->dry) != 0)
    return fail("out of memory", -ENOMEM, NULL);
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

/* After reading: the store's failure, or the final sync and the summary.
 * ex is what reading returned; the exit status. */
static int load_finish(loader *L, const load_opts *o, const progress *pg,
                       int ex, cs_error *err) {
  if (L->fatal)
    return fail(L->fatal_what ? L->fatal_what : "the store failed; stopped",
                L->fatal, &L->fatal_err);
  /* One sync for everything (the store was opened without per-write
   * syncs), the indexes built; the snapshot is written at close. */
  int rc;
  if (!o->dry &&
      ((rc = cs_flush(L->s, err)) != 0 || (rc = cs_bulk_end(L->s, err)) != 0))
    return fail("the final sync failed", rc, err);
  double secs = (double)(now_ns() - pg->start_ns) / 1e9;
  fprintf(stderr,
          "%s: %s %" PRIu64 " contacts, rejected %" PRIu64
          " lines (%.2f s, %.0f/s)%s\n",
          prog, o->dry ? "would load" : "loaded", L->loaded, L->rejected, secs,
          secs > 0 ? (double)L->loaded / secs : 0.0,
          o->dry ? "; nothing was changed" : "");
  if (L->rejected && ex == EXIT_OK) ex = EXIT_PROBLEM;
  return ex;
}

int cmd_load(const char *dir, int argc, char **argv) {
  load_opts o;
  int ex = load_options(argc, argv, &o);
  if (ex >= 0) return ex;

  struct stat st;
  if (stat(dir, &st) < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
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
  cs_dryrun_destroy(L.dry);
  if (L.s && cs_close(L.s, &err) != 0 && ex == EXIT_OK)
    ex = fail("closing the store failed", err.code, &err);
  free(L.lines);
  return ex;
}
