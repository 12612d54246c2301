/*
 * bench_peer.c: the fold, the contact as cs_contact, SQLite's schema and the
 * engine's bulk load and waiting create, shared by bench_engine and bench_pg
 * (bench_peer.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_peer.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

/* ------------------------------------------------------------ the fold */

/*
 * The API's folding, done here for SQLite's folded columns and terms. ASCII
 * text (nearly all of it) takes a fast path: lower case and whitespace
 * collapsed. Anything else goes through utf8proc: NFKC, case fold, marks
 * stripped, then the same collapse. Output is NUL-terminated; returns its
 * length (0 when the text folds to nothing or does not fit).
 */
static bool is_space(unsigned char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
         ch == '\f';
}

static size_t collapse(const char *s, size_t len, bool lower, char *out,
                       size_t cap) {
  size_t o = 0;
  bool gap = false;
  for (size_t k = 0; k < len; k++) {
    unsigned char ch = (unsigned char)s[k];
    if (is_space(ch)) {
      gap = o > 0;
      continue;
    }
    if (o + 2 >= cap) return 0;
    if (gap) out[o++] = ' ';
    gap = false;
    if (lower && ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch - 'A' + 'a');
    out[o++] = (char)ch;
  }
  out[o] = 0;
  return o;
}

size_t fold_text_into(const char *s, size_t len, char *out, size_t cap) {
  bool ascii = true;
  for (size_t k = 0; k < len; k++)
    if ((unsigned char)s[k] & 0x80) {
      ascii = false;
      break;
    }
  if (ascii) return collapse(s, len, true, out, cap);
  utf8proc_uint8_t *mapped = NULL;
  utf8proc_ssize_t n =
      utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &mapped,
                   UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                       UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK);
  if (n < 0) return 0;
  size_t o = collapse((const char *)mapped, (size_t)n, false, out, cap);
  free(mapped);
  return o;
}

/* The exact key of a field: the folded text, or its digits for a phone. */
size_t fold_key_into(int field, const char *s, size_t len, char *out,
                     size_t cap) {
  size_t n = fold_text_into(s, len, out, cap);
  if (field != CS_PHONE) return n;
  size_t o = 0;
  for (size_t k = 0; k < n; k++)
    if (out[k] >= '0' && out[k] <= '9') out[o++] = out[k];
  out[o] = 0;
  return o;
}

/* ---------------------------------------------------------- the data set */

/* A field of a generated contact by cs_field. */
const char *bc_field(const bh_contact *b, int field) {
  switch (field) {
  case CS_FIRST_NAME:
    return b->first_name;
  case CS_LAST_NAME:
    return b->last_name;
  case CS_EMAIL:
    return b->email;
  case CS_PHONE:
    return b->phone;
  case CS_COMPANY:
    return b->company;
  case CS_JOB_TITLE:
    return b->job_title;
  default:
    return b->notes;
  }
}

void bc_to_cs(const bh_contact *b, cs_contact *c) {
  memset(c, 0, sizeof *c);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    c->field[f].ptr = bc_field(b, f);
    c->field[f].len = strlen(c->field[f].ptr);
  }
}

const char sql_schema[] =
    "CREATE TABLE contacts(\n"
    "  id INTEGER PRIMARY KEY, account INTEGER NOT NULL,\n"
    "  first_name TEXT NOT NULL, last_name TEXT, email TEXT NOT NULL,\n"
    "  phone TEXT, company TEXT, job_title TEXT, notes TEXT,\n"
    "  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,\n"
    "  f_first TEXT, f_last TEXT, f_email TEXT NOT NULL, f_phone TEXT,\n"
    "  f_company TEXT, f_job TEXT);\n"
    "CREATE UNIQUE INDEX c_email ON contacts(account, f_email);\n"
    "CREATE INDEX c_first ON contacts(account, f_first);\n"
    "CREATE INDEX c_last ON contacts(account, f_last);\n"
    "CREATE INDEX c_phone ON contacts(account, f_phone);\n"
    "CREATE INDEX c_company ON contacts(account, f_company);\n"
    "CREATE INDEX c_job ON contacts(account, f_job);\n"
    "CREATE VIRTUAL TABLE notes_fts USING fts5(notes, content='');\n";

int64_t bp_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bp_sql_bind_insert(sqlite3_stmt *ins, uint32_t account,
                        const bh_contact *b, int64_t want_rowid, bp_folded *f) {
  sqlite3_bind_int64(ins, 1, account);
  for (int k = 0; k < CS_FIELD_COUNT; k++)
    sqlite3_bind_text(ins, 2 + k, bc_field(b, k), -1, SQLITE_STATIC);
  sqlite3_bind_int64(ins, 9, bp_wall_ms());
  if (want_rowid)
    sqlite3_bind_int64(ins, 16, want_rowid);
  else
    sqlite3_bind_null(ins, 16);
  for (int k = 0; k < CS_NOTES; k++) {
    const char *v = bc_field(b, k);
    size_t n = fold_key_into(k, v, strlen(v), f->v[k], sizeof f->v[k]);
    sqlite3_bind_text(ins, 10 + k, f->v[k], (int)n, SQLITE_STATIC);
  }
}

void bp_sql_bind_fts(sqlite3_stmt *ins_fts, int64_t rowid, const bh_contact *b,
                     bp_folded *f) {
  size_t n = fold_text_into(b->notes, strlen(b->notes), f->v[CS_NOTES],
                            sizeof f->v[CS_NOTES]);
  sqlite3_bind_int64(ins_fts, 1, rowid);
  sqlite3_bind_text(ins_fts, 2, f->v[CS_NOTES], (int)n, SQLITE_STATIC);
}

/* ======================================================== engine loading */

/* Creates in flight per producer of the bulk load. */
#define BP_WINDOW 1024

typedef struct bp_loader {
  cs_store *s;
  const bh_gen *g;
  uint32_t account;
  uint64_t from, to, stride;
  uint64_t *ids;
  sem_t window;
  _Atomic int failed_rc; /* first failure seen by a callback */
  uint64_t errors;
  char first_error[600];
} bp_loader;

static void bp_load_done(void *ctx, int rc, uint64_t id) {
  bp_loader *l = ctx;
  (void)id;
  int none = 0;
  if (rc != 0) atomic_compare_exchange_strong(&l->failed_rc, &none, rc);
  sem_post(&l->window);
}

static void *bp_load_thread(void *arg) {
  bp_loader *l = arg;
  bh_contact bc;
  cs_contact c;
  uint64_t sink;
  for (uint64_t i = l->from; i < l->to; i += l->stride) {
    bh_gen_contact(l->g, i, &bc);
    bc_to_cs(&bc, &c);
    sem_wait(&l->window);
    cs_error err = {0};
    int rc = cs_create(l->s, l->account, &c, bp_load_done, l,
                       l->ids ? &l->ids[i] : &sink, &err);
    if (rc != 0) {
      sem_post(&l->window);
      if (l->errors++ == 0)
        snprintf(l->first_error, sizeof l->first_error, "contact %llu: %s",
                 (unsigned long long)i, err.msg);
    }
  }
  for (int k = 0; k < BP_WINDOW; k++)
    sem_wait(&l->window);
  return NULL;
}

int bp_engine_load(cs_store *s, const bh_gen *g, uint32_t account,
                   uint64_t from, uint64_t to, int threads, uint64_t *ids) {
  bp_loader *ls = calloc((size_t)threads, sizeof *ls);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  int rc = 0;
  if (!ls || !th) {
    fprintf(stderr, "engine: bulk load: out of memory\n");
    rc = -1;
    goto done;
  }
  for (int t = 0; t < threads; t++) {
    ls[t] = (bp_loader){.s = s,
                        .g = g,
                        .account = account,
                        .from = from + (uint64_t)t,
                        .to = to,
                        .stride = (uint64_t)threads,
                        .ids = ids};
    sem_init(&ls[t].window, 0, BP_WINDOW);
    pthread_create(&th[t], NULL, bp_load_thread, &ls[t]);
  }
  for (int t = 0; t < threads; t++) {
    pthread_join(th[t], NULL);
    if (ls[t].errors) {
      fprintf(stderr, "engine: %llu creates refused, first: %s\n",
              (unsigned long long)ls[t].errors, ls[t].first_error);
      rc = -1;
    }
    if (ls[t].failed_rc) {
      fprintf(stderr, "engine: a commit failed: %s\n",
              cs_strerror(ls[t].failed_rc));
      rc = -1;
    }
    sem_destroy(&ls[t].window);
  }
  cs_error err = {0};
  if (cs_flush(s, &err) != 0) {
    fprintf(stderr, "engine: flush: %s\n", err.msg);
    rc = -1;
  }
done:
  free(ls);
  free(th);
  return rc;
}

typedef struct bp_wait {
  sem_t done;
  int rc;
} bp_wait;

static void bp_wait_done(void *ctx, int rc, uint64_t id) {
  bp_wait *w = ctx;
  (void)id;
  w->rc = rc;
  sem_post(&w->done);
}

int bp_engine_create_wait(cs_store *s, uint32_t account, const bh_contact *b,
                          uint64_t *id_out, cs_error *err) {
  cs_contact c;
  bc_to_cs(b, &c);
  bp_wait w = {.rc = 0};
  sem_init(&w.done, 0, 0);
  int rc = cs_create(s, account, &c, bp_wait_done, &w, id_out, err);
  if (rc == 0) {
    while (sem_wait(&w.done) != 0 && errno == EINTR) {
    }
    rc = w.rc;
  }
  sem_destroy(&w.done);
  return rc;
}
