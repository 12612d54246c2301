/*
 * adm_copy.c: the admin API's copies of the store, each on a task thread
 * of its own (adm_task), so that a slow client or a long commit never
 * holds a worker:
 *
 *   GET /admin/backup                    the whole store as of one commit,
 *                                        as a tar stream (libarchive)
 *   GET /admin/accounts/{name}/export    one account's contacts and trash
 *                                        as JSON Lines, as of one commit
 *   POST /admin/accounts/{name}/import   such lines written back with
 *                                        their ids, versions and times
 *
 * A backup pins its files first (cs_backup_begin holds writes only for
 * that moment); the stream then reads them while the server writes on.
 * The tar holds the data directory's files at its top level: unpacked
 * into an empty directory, it is a data directory.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "adm.h"
#include "ct_codec.h"

/* ------------------------------------------------------------- stream */

/* A streamed answer with a buffer in front of it. */
typedef struct out {
  adm_ctx *c;
  cd_stream *st;
  char *buf;
  size_t len;
  bool gone; /* the client went away: stop producing */
} out;

static int out_flush(out *o) {
  if (o->len && !o->gone &&
      o->c->host->stream_write(o->st, o->buf, o->len) != 0)
    o->gone = true;
  o->len = 0;
  return o->gone ? -1 : 0;
}

static int out_put(out *o, const void *p, size_t n) {
  if (o->len + n > ADM_STREAM_CHUNK_BYTES && out_flush(o) != 0) return -1;
  if (n > ADM_STREAM_CHUNK_BYTES) /* one piece larger than the buffer */
    return o->c->host->stream_write(o->st, p, n) == 0 ? 0
                                                      : (o->gone = true, -1);
  memcpy(o->buf + o->len, p, n);
  o->len += n;
  return 0;
}

/* ------------------------------------------------------ GET /admin/backup */

static la_ssize_t tar_write(struct archive *a, void *ctx, const void *p,
                            size_t n) {
  if (out_put(ctx, p, n) != 0) {
    archive_set_error(a, EPIPE, "the client went away");
    return -1;
  }
  return (la_ssize_t)n;
}

/* Writes every file of b into the tar a. 0, or -1 with why filled. */
static int tar_files(cs_backup *b, struct archive *a, char *chunk, char *why,
                     size_t why_len) {
  cs_backup_file f;
  cs_error err = {0};
  int rc;
  while ((rc = cs_backup_next(b, &f, &err)) == 1) {
    struct archive_entry *e = archive_entry_new();
    if (!e) return snprintf(why, why_len, "out of memory"), -1;
    archive_entry_set_pathname(e, f.name);
    archive_entry_set_size(e, (la_int64_t)f.size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, f.mode & 0777);
    archive_entry_set_mtime(e, f.mtime_s, 0);
    int ar = archive_write_header(a, e);
    archive_entry_free(e);
    if (ar != ARCHIVE_OK)
      return snprintf(why, why_len, "%s", archive_error_string(a)), -1;
    uint64_t sent = 0;
    long got;
    while ((got = cs_backup_read(b, chunk, ADM_STREAM_CHUNK_BYTES, &err)) > 0) {
      if (archive_write_data(a, chunk, (size_t)got) != got)
        return snprintf(why, why_len, "%s", archive_error_string(a)), -1;
      sent += (uint64_t)got;
    }
    if (got < 0)
      return snprintf(why, why_len, "%.200s: %.300s", f.name, err.msg), -1;
    if (sent != f.size)
      return snprintf(why, why_len, "%s: %" PRIu64 " bytes read of %" PRIu64,
                      f.name, sent, f.size),
             -1;
  }
  if (rc < 0) return snprintf(why, why_len, "%s", err.msg), -1;
  return 0;
}

typedef struct backup_job {
  cd_response *res;
} backup_job;

static void backup_main(adm_ctx *c, void *arg) {
  backup_job *j = arg;
  cd_response *res = j->res;
  free(j);
  cs_backup *b = NULL;
  cs_error err = {0};
  int rc = cs_backup_begin(c->store, &b, &err);
  if (rc != 0) {
    adm_store_error(c, res, rc, &err);
    return;
  }
  uint64_t seq = cs_backup_seq(b);
  char v[96];
  snprintf(v, sizeof v,
           "attachment; filename=\"contactd-backup-%" PRIu64 ".tar\"", seq);
  c->host->header(res, "content-disposition", v);
  snprintf(v, sizeof v, "%" PRIu64, seq);
  c->host->header(res, "x-backup-seq", v);
  out o = {.c = c, .buf = malloc(ADM_STREAM_CHUNK_BYTES)};
  char *chunk = malloc(ADM_STREAM_CHUNK_BYTES);
  struct archive *a = archive_write_new();
  if (!o.buf || !chunk || !a) {
    adm_oom(c, res);
    goto done;
  }
  o.st = c->host->stream_begin(res, 200, "application/x-tar");
  if (!o.st) goto done;
  char why[512] = "";
  bool ok = archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
            archive_write_open(a, &o, NULL, tar_write, NULL) == ARCHIVE_OK;
  if (!ok) snprintf(why, sizeof why, "%s", archive_error_string(a));
  ok = ok && tar_files(b, a, chunk, why, sizeof why) == 0;
  ok = ok && archive_write_close(a) == ARCHIVE_OK && out_flush(&o) == 0;
  if (!ok && !o.gone) {
    char line[600];
    snprintf(line, sizeof line, "admin: backup at seq %" PRIu64 " failed: %s",
             seq, why[0] ? why : archive_error_string(a));
    c->host->log(c->host->ctx, res, CD_LOG_ERROR, line);
  }
  if (ok) {
    char line[96];
    snprintf(line, sizeof line, "admin: backup at seq %" PRIu64 " sent", seq);
    c->host->log(c->host->ctx, res, CD_LOG_INFO, line);
  }
  c->host->stream_end(o.st, ok);
done:
  if (a) archive_write_free(a);
  free(chunk);
  free(o.buf);
  cs_backup_end(b);
}

int adm_backup(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  (void)req;
  backup_job *j = malloc(sizeof *j);
  if (!j) return adm_oom(c, res), CD_DONE;
  j->res = res;
  if (adm_task(c, res, backup_main, j) != 0) {
    free(j);
    return CD_DONE;
  }
  return CD_ASYNC;
}

/* ------------------------------------------ GET /admin/accounts/{}/export */

/* One adm_export_write: where its bytes go, and what it counted. */
typedef struct export_walk {
  const char *name;
  yajl_gen g;
  int (*put)(void *ctx, const void *p, size_t n);
  void *ctx;
  adm_export_counts *counts;
} export_walk;

static int export_one(void *ctx, const cs_contact *ct) {
  export_walk *w = ctx;
  yajl_gen_clear(w->g);
  yajl_gen_reset(w->g, NULL);
  ct_gen_export_line(w->g, w->name, ct);
  const unsigned char *p;
  size_t n;
  yajl_gen_get_buf(w->g, &p, &n);
  if (w->put(w->ctx, p, n) != 0 || w->put(w->ctx, "\n", 1) != 0) return 1;
  if (ct->deleted_ms)
    w->counts->trash++;
  else
    w->counts->live++;
  return 0;
}

int adm_export_write(adm_ctx *c, uint32_t account, const char *name,
                     int (*put)(void *ctx, const void *p, size_t n), void *ctx,
                     adm_export_counts *counts, cs_error *err) {
  *counts = (adm_export_counts){0};
  export_walk w = {name, ct_gen_new(), put, ctx, counts};
  if (!w.g) {
    snprintf(err->msg, sizeof err->msg, "out of memory");
    return -ENOMEM;
  }
  int rc = cs_export(c->store, account, export_one, &w, err);
  yajl_gen_free(w.g);
  return rc;
}

typedef struct export_job {
  cd_response *res;
  uint32_t account;
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  out o;
} export_job;

static int export_put(void *ctx, const void *p, size_t n) {
  return out_put(ctx, p, n);
}

static void export_main(adm_ctx *c, void *arg) {
  export_job *j = arg;
  cd_response *res = j->res;
  j->o = (out){.c = c, .buf = malloc(ADM_STREAM_CHUNK_BYTES)};
  if (!j->o.buf) {
    adm_oom(c, res);
    goto done;
  }
  char v[160];
  snprintf(v, sizeof v, "attachment; filename=\"%s.jsonl\"", j->name);
  c->host->header(res, "content-disposition", v);
  j->o.st = c->host->stream_begin(res, 200, "application/x-ndjson");
  if (!j->o.st) goto done;
  cs_error err = {0};
  adm_export_counts n;
  int rc =
      adm_export_write(c, j->account, j->name, export_put, &j->o, &n, &err);
  bool ok = (rc == 0 && out_flush(&j->o) == 0);
  if (!ok && !j->o.gone) {
    char line[700];
    snprintf(line, sizeof line, "admin: export of %s stopped: %s", j->name,
             err.msg[0] ? err.msg : cs_strerror(rc));
    c->host->log(c->host->ctx, res, CD_LOG_ERROR, line);
  } else if (ok) {
    char line[160];
    snprintf(line, sizeof line, "admin: export of %s sent, %" PRIu64 " lines",
             j->name, n.live + n.trash);
    c->host->log(c->host->ctx, res, CD_LOG_INFO, line);
  }
  c->host->stream_end(j->o.st, ok);
done:
  free(j->o.buf);
  free(j);
}

int adm_export(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  export_job *j = calloc(1, sizeof *j);
  if (!j) return adm_oom(c, res), CD_DONE;
  j->res = res;
  if (adm_account_param(c, req, res, j->name) != 0 ||
      adm_account(c, res, j->name, &j->account) != 0 ||
      adm_task(c, res, export_main, j) != 0) {
    free(j);
    return CD_DONE;
  }
  return CD_ASYNC;
}

/* ----------------------------------------- POST /admin/accounts/{}/import */

typedef struct import_job {
  cd_response *res;
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  char *body; /* a copy: the request's memory ends with the handler */
  size_t len;
  /* One batch: the parsed lines, their contacts and line numbers. */
  ct_export_line *lines;
  cs_contact *items;
  uint64_t *lineno;
  int *rc;
  cs_error *errs;
  size_t n;
  uint64_t imported, refused;
  struct refused_line {
    uint64_t line;
    const char *code; /* static */
    char field[64];
    char msg[256];
  } listed[ADM_IMPORT_ERRORS_LISTED]; /* the first refusals */
} import_job;

static void refusal(import_job *j, uint64_t line, const char *code,
                    const char *field, const char *msg) {
  if (j->refused < ADM_IMPORT_ERRORS_LISTED) {
    struct refused_line *r = &j->listed[j->refused];
    r->line = line;
    r->code = code;
    snprintf(r->field, sizeof r->field, "%.*s", (int)sizeof r->field - 1,
             field ? field : "");
    snprintf(r->msg, sizeof r->msg, "%.*s", (int)sizeof r->msg - 1, msg);
  }
  j->refused++;
}

/* Writes the batch; 0, or the store's error for all (err filled). */
static int import_flush(adm_ctx *c, import_job *j, uint32_t account,
                        cs_error *err) {
  if (j->n == 0) return 0;
  for (size_t i = 0; i < j->n; i++)
    j->items[i] = j->lines[i].c;
  memset(j->errs, 0, j->n * sizeof *j->errs);
  cs_import_result r = {0};
  int rc =
      cs_import(c->store, account, j->items, j->n, j->rc, j->errs, &r, err);
  if (rc == 0) {
    j->imported += r.imported;
    for (size_t i = 0; i < j->n; i++) {
      if (j->rc[i] == 0) continue;
      const cd_store_error *e = c->host->store_error(j->rc[i]);
      const char *why = j->errs[i].msg[0] ? j->errs[i].msg : e->message;
      if (j->rc[i] == CS_EINVAL && !j->errs[i].msg[0])
        why = "the id is below the store's id floor (ids are never reused)";
      refusal(j, j->lineno[i], e->status < 500 ? e->code : "internal", NULL,
              why);
    }
  }
  for (size_t i = 0; i < j->n; i++)
    ct_export_line_free(&j->lines[i]);
  j->n = 0;
  return rc;
}

/* A line read and checked, waiting to be written in id order. */
typedef struct pending {
  uint64_t id, line;
  size_t at, len; /* in the body, the '\r' left out */
} pending;

static int pending_cmp(const void *a, const void *b) {
  uint64_t x = ((const pending *)a)->id, y = ((const pending *)b)->id;
  return x < y ? -1 : x > y;
}

/* Doubles the array, or frees it and answers NULL. */
static pending *grow(pending *v, size_t *cap) {
  pending *p = realloc(v, 2 * *cap * sizeof *v);
  if (!p) {
    free(v);
    return NULL;
  }
  *cap *= 2;
  return p;
}

static void import_main(adm_ctx *c, void *arg) {
  import_job *j = arg;
  cd_response *res = j->res;
  cs_error err = {0};
  uint32_t account = 0;
  pending *todo = NULL;
  cs_keyring *k = c->host->keyring(c->host->ctx);
  j->lines = calloc(ADM_IMPORT_BATCH, sizeof *j->lines);
  j->items = calloc(ADM_IMPORT_BATCH, sizeof *j->items);
  j->lineno = calloc(ADM_IMPORT_BATCH, sizeof *j->lineno);
  j->rc = calloc(ADM_IMPORT_BATCH, sizeof *j->rc);
  j->errs = calloc(ADM_IMPORT_BATCH, sizeof *j->errs);
  if (!j->lines || !j->items || !j->lineno || !j->rc || !j->errs) {
    adm_oom(c, res);
    goto done;
  }
  /* An account moving in is new here: made without a key. */
  int rc = k ? cs_keys_account_ensure(k, j->name, &account, &err) : -ENOENT;
  if (rc != 0) {
    if (rc == CS_EACCOUNT)
      c->host->error(res, 400, "invalid_account",
                     "an account name is 1 to 64 letters, digits, '-', '_' "
                     "or '.'",
                     NULL, 0);
    else
      adm_store_error(c, res, rc, &err);
    goto done;
  }
  /* First every line is read and checked, then the good ones are written
   * in id order: the store places only ids above its floor, and an export
   * lists the live contacts before the trash. */
  size_t cap = 1024, count = 0;
  todo = malloc(cap * sizeof *todo);
  if (!todo) {
    adm_oom(c, res);
    goto done;
  }
  uint64_t line = 0;
  size_t namelen = strlen(j->name);
  for (size_t at = 0; at < j->len;) {
    const char *s = j->body + at;
    const char *nl = memchr(s, '\n', j->len - at);
    size_t n = nl ? (size_t)(nl - s) : j->len - at;
    size_t from = at;
    at += n + (nl != NULL);
    line++;
    if (n && s[n - 1] == '\r') n--;
    if (n == 0) continue; /* a blank line, as JSON Lines readers allow */
    ct_export_line *l = &j->lines[0];
    if (ct_export_line_parse(l, s, n) != 0)
      refusal(j, line, l->err.code, l->err.field, l->err.msg);
    else if (!l->has_identity)
      refusal(j, line, "missing_field", "id",
              "id: an import keeps identity; each line needs the id, "
              "version and times it was exported with");
    else if (l->account.ptr && (l->account.len != namelen ||
                                memcmp(l->account.ptr, j->name, namelen)))
      refusal(j, line, "invalid_field", "account",
              "account: the line belongs to another account than the one "
              "imported into");
    else if (count == cap && !(todo = grow(todo, &cap))) {
      ct_export_line_free(l);
      adm_oom(c, res);
      goto done;
    } else
      todo[count++] = (pending){l->c.id, line, from, n};
    ct_export_line_free(l);
  }
  qsort(todo, count, sizeof *todo, pending_cmp);
  for (size_t i = 0; i < count && rc == 0; i++) {
    ct_export_line *l = &j->lines[j->n];
    if (ct_export_line_parse(l, j->body + todo[i].at, todo[i].len) != 0) {
      /* Read once already: only memory can fail now. */
      refusal(j, todo[i].line, l->err.code, l->err.field, l->err.msg);
      ct_export_line_free(l);
      continue;
    }
    j->lineno[j->n++] = todo[i].line;
    if (j->n == ADM_IMPORT_BATCH) rc = import_flush(c, j, account, &err);
  }
  if (rc == 0) rc = import_flush(c, j, account, &err);
  if (rc != 0) {
    char msg[600];
    snprintf(msg, sizeof msg,
             "the import stopped after %" PRIu64 " contacts were written: %s",
             j->imported, err.msg[0] ? err.msg : cs_strerror(rc));
    c->host->log(c->host->ctx, res, CD_LOG_ERROR, msg);
    adm_store_error(c, res, rc, &err);
    goto done;
  }
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) {
    adm_oom(c, res);
    goto done;
  }
  yajl_gen_map_open(g);
  adm_gen_str(g, "account");
  adm_gen_str(g, j->name);
  adm_gen_str(g, "imported");
  adm_gen_u64(g, j->imported);
  adm_gen_str(g, "refused");
  adm_gen_u64(g, j->refused);
  adm_gen_str(g, "errors");
  yajl_gen_array_open(g);
  for (uint64_t i = 0; i < j->refused && i < ADM_IMPORT_ERRORS_LISTED; i++) {
    const struct refused_line *r = &j->listed[i];
    yajl_gen_map_open(g);
    adm_gen_str(g, "line");
    adm_gen_u64(g, r->line);
    adm_gen_str(g, "code");
    adm_gen_str(g, r->code);
    adm_gen_str(g, "message");
    adm_gen_str(g, r->msg);
    if (r->field[0]) {
      adm_gen_str(g, "field");
      adm_gen_str(g, r->field);
    }
    yajl_gen_map_close(g);
  }
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  /* Logged first: the handle is the host's once answered. */
  char info[200];
  snprintf(info, sizeof info,
           "admin: import into %s: %" PRIu64 " imported, %" PRIu64 " refused",
           j->name, j->imported, j->refused);
  c->host->log(c->host->ctx, res, CD_LOG_INFO, info);
  adm_send_json(c, res, 200, g);
done:
  for (size_t i = 0; i < j->n; i++)
    ct_export_line_free(&j->lines[i]);
  free(todo);
  free(j->lines);
  free(j->items);
  free(j->lineno);
  free(j->rc);
  free(j->errs);
  free(j->body);
  free(j);
}

int adm_import(void *state, const cd_request *req, cd_response *res) {
  adm_ctx *c = state;
  import_job *j = calloc(1, sizeof *j);
  if (!j) return adm_oom(c, res), CD_DONE;
  j->res = res;
  if (adm_account_param(c, req, res, j->name) != 0) {
    free(j);
    return CD_DONE;
  }
  if (req->body_len == 0) {
    free(j);
    c->host->error(
        res, 400, "invalid_body",
        "the body is JSON Lines as GET /admin/accounts/{name}/export "
        "writes them",
        NULL, 0);
    return CD_DONE;
  }
  j->body = malloc(req->body_len);
  if (!j->body) {
    free(j);
    return adm_oom(c, res), CD_DONE;
  }
  memcpy(j->body, req->body, req->body_len);
  j->len = req->body_len;
  if (adm_task(c, res, import_main, j) != 0) {
    free(j->body);
    free(j);
    return CD_DONE;
  }
  return CD_ASYNC;
}
