/*
 * test_util.c: see test_util.h.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *tu_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/cstest-XXXXXX", base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  if (!d) {
    perror("mkdtemp");
    abort();
  }
  return strdup(d);
}

static int run(const char *fmt, const char *a, const char *b) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  return system(cmd);
}

void tu_rmrf(const char *dir) {
  if (dir && strlen(dir) > 5) run("rm -rf '%s'%s", dir, "");
}

void tu_copy_dir(const char *from, const char *to) {
  if (run("cp -a '%s' '%s'", from, to) != 0) abort();
}

static cs_str S(const char *p) {
  return p ? (cs_str){p, strlen(p)} : (cs_str){NULL, 0};
}

cs_contact tu_contact(const char *first, const char *last, const char *email,
                      const char *phone, const char *company,
                      const char *job_title, const char *notes) {
  cs_contact c;
  memset(&c, 0, sizeof c);
  c.field[CS_FIRST_NAME] = S(first);
  c.field[CS_LAST_NAME] = S(last);
  c.field[CS_EMAIL] = S(email);
  c.field[CS_PHONE] = S(phone);
  c.field[CS_COMPANY] = S(company);
  c.field[CS_JOB_TITLE] = S(job_title);
  c.field[CS_NOTES] = S(notes);
  return c;
}

void tu_waiter_init(tu_waiter *w) {
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->pending = 0;
  w->first_rc = 0;
}

void tu_waiter_add(tu_waiter *w) {
  pthread_mutex_lock(&w->mu);
  w->pending++;
  pthread_mutex_unlock(&w->mu);
}

void tu_done(void *ctx, int rc, uint64_t id) {
  tu_waiter *w = ctx;
  pthread_mutex_lock(&w->mu);
  if (rc && !w->first_rc) w->first_rc = rc;
  w->pending--;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

int tu_waiter_wait(tu_waiter *w) {
  pthread_mutex_lock(&w->mu);
  while (w->pending > 0)
    pthread_cond_wait(&w->cv, &w->mu);
  int rc = w->first_rc;
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int tu_create(cs_store *s, uint32_t account, cs_contact c, uint64_t *id,
              cs_error *err) {
  tu_waiter w;
  tu_waiter_init(&w);
  tu_waiter_add(&w);
  int rc = cs_create(s, account, &c, tu_done, &w, id, err);
  if (rc) return rc;
  return tu_waiter_wait(&w);
}

int tu_update(cs_store *s, uint32_t account, uint64_t id, cs_patch p,
              cs_error *err) {
  tu_waiter w;
  tu_waiter_init(&w);
  tu_waiter_add(&w);
  int rc = cs_update(s, account, id, &p, tu_done, &w, err);
  if (rc) return rc;
  return tu_waiter_wait(&w);
}

int tu_write(cs_store *s, cs_write *w, cs_outcome *o, cs_error *err) {
  tu_waiter wt;
  tu_waiter_init(&wt);
  tu_waiter_add(&wt);
  w->done = tu_done;
  w->ctx = &wt;
  cs_outcome mine;
  if (!o) o = &mine;
  int rc = cs_write_apply(s, w, o, err);
  if (rc) return rc;
  if (o->result == CS_RESULT_UNCHANGED) return 0; /* nothing queued */
  return tu_waiter_wait(&wt);
}

int tu_delete(cs_store *s, uint32_t account, uint64_t id, cs_error *err) {
  tu_waiter w;
  tu_waiter_init(&w);
  tu_waiter_add(&w);
  int rc = cs_delete(s, account, id, tu_done, &w, err);
  if (rc) return rc;
  return tu_waiter_wait(&w);
}

const char *tu_field(const cs_contact *c, int field) {
  static __thread char bufs[4][CS_NOTES_MAX_BYTES + 1];
  static __thread int next;
  char *b = bufs[next++ & 3];
  const cs_str *v = &c->field[field];
  size_t n = v->ptr ? v->len : 0;
  if (n) memcpy(b, v->ptr, n);
  b[n] = 0;
  return b;
}

struct dump_ctx {
  char *buf;
  size_t len, cap;
};

static int dump_one(void *ctx, const cs_contact *c) {
  struct dump_ctx *d = ctx;
  size_t need = 256;
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    need += c->field[f].len + 16;
  if (d->len + need > d->cap) {
    d->cap = (d->len + need) * 2;
    d->buf = realloc(d->buf, d->cap);
  }
  d->len += (size_t)sprintf(d->buf + d->len, "%llu a%u c%lld u%lld",
                            (unsigned long long)c->id, c->account,
                            (long long)c->created_ms, (long long)c->updated_ms);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr) {
      d->len += (size_t)sprintf(d->buf + d->len, " -");
      continue;
    }
    d->buf[d->len++] = ' ';
    d->buf[d->len++] = '[';
    memcpy(d->buf + d->len, c->field[f].ptr, c->field[f].len);
    d->len += c->field[f].len;
    d->buf[d->len++] = ']';
  }
  d->buf[d->len++] = '\n';
  d->buf[d->len] = 0;
  return 0;
}

char *tu_dump(cs_store *s) {
  struct dump_ctx d = {malloc(1), 0, 1};
  d.buf[0] = 0;
  cs_iterate(s, CS_ALL_ACCOUNTS, dump_one, &d, NULL);
  return d.buf;
}
