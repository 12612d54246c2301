/*
 * test_query_oracle.c: a query answers exactly what a brute-force scan of
 * the meaning in cs_query.h answers.
 *
 * Goal: cs_query_run holds to the meaning written at the top of
 * cs_query.h: q with and without typos, every op on every field that takes
 * it, and/or/not trees, sorts of one to three keys (relevance among them),
 * facets, and keyset paging through the whole result; the same after
 * reopening.
 * Method: seeded random creates, edits, deletes into the trash, restores
 * and purges over three accounts with small vocabularies (so values
 * collide, share prefixes and words, sit one or two typos apart, and fields
 * are often missing), on a clock the test moves (so times tie); a plain
 * table in the test holds the contacts. Random queries are evaluated here
 * from the meaning alone (folding with fold.h, optimal string alignment
 * distance over code points written here) and compared with the engine's
 * answer walked page by page with its cursor: total, order, count, more,
 * every contact's fields, each page's next position and the facets; now
 * and then the walk has random writes between its pages, and the contacts
 * no write touched must come once each, in order. Reopening: from a
 * snapshot written along the way and the log after it, from a snapshot of
 * everything, from the log alone. A failing seed is printed with the query
 * and the account's contacts; QORACLE_SEED=n replays it, QORACLE_STEPS=n
 * runs longer (fewer steps under AddressSanitizer). A second run with one
 * account of many distinct values holds the facets' cut at
 * CS_QUERY_FACET_VALUES. A third run is a store of shard 2 into which an
 * account of shard 1 moves (cs_import of lower ids) while the others
 * write, so that its slot table is several runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs.h"
#include "cs_query.h"
#include "fold.h"
#include "store_int.h"
#include "test_util.h"

/* Sanitizer builds run fewer steps (each is several times slower). */
#if defined(__SANITIZE_ADDRESS__)
#define QO_SLOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QO_SLOW 1
#endif
#endif
#ifndef QO_SLOW
#define QO_SLOW 0
#endif

#define MAXC 720
#define NACCT 3
#define VMAX 96  /* bytes of a value */
#define KMAX 192 /* bytes of a folded key */
#define WMAX 24  /* words of a key */

/* ------------------------------------------------------------- the model */

typedef struct words {
  uint16_t off[WMAX];
  uint16_t len[WMAX];
  int n;
} words;

typedef struct entry {
  uint64_t id;
  uint32_t account;
  bool live;
  bool trashed;
  bool touched; /* written during a walk (walk_under_writes) */
  int64_t created, updated;
  char v[CS_FIELD_COUNT][VMAX];   /* as stored; "" = absent */
  char key[CS_FIELD_COUNT][KMAX]; /* fold_key of v; "" = no key */
  size_t klen[CS_FIELD_COUNT];
  words w[CS_FIELD_COUNT];
} entry;

static entry table[MAXC];
static int table_count;
static int64_t clock_ms;
static unsigned email_serial;
static bool wide_vocab; /* the facet run: many distinct companies */
/* The moved-account run: account MOVED_ACCOUNT's creates of the first
 * half are imports of ids of a shard numbered lower (the next is
 * import_next), so the slot table is several runs (pindex.h). */
#define MOVED_ACCOUNT 3
static uint64_t import_next;

static int64_t test_now(void *ctx) {
  (void)ctx;
  return clock_ms;
}

static unsigned rng;
static unsigned rnd(void) {
  rng = rng * 1103515245u + 12345u;
  return (rng >> 16) & 0x7fff;
}

static int add_word(void *ctx, const char *w, size_t len) {
  words *ws = ctx;
  (void)w;
  if (ws->n >= WMAX) abort();
  ws->off[ws->n] = 0; /* set by the caller, which knows the base */
  ws->len[ws->n] = (uint16_t)len;
  ws->n++;
  return 0;
}

typedef struct wctx {
  const char *base;
  words *ws;
} wctx;

static int add_word_at(void *ctx, const char *w, size_t len) {
  wctx *c = ctx;
  add_word(c->ws, w, len);
  c->ws->off[c->ws->n - 1] = (uint16_t)(w - c->base);
  return 0;
}

static void split_words(const char *key, size_t len, words *out) {
  out->n = 0;
  wctx c = {key, out};
  if (fold_words(key, len, add_word_at, &c)) abort();
}

/* fold_key of a value into buf (NUL-terminated); its length. */
static size_t key_of(int field, const char *v, size_t vlen, char *buf,
                     size_t cap) {
  fold_buf fb = {0};
  if (fold_key(field, v, vlen, &fb)) abort();
  if (fb.len >= cap) abort();
  memcpy(buf, fb.ptr ? fb.ptr : "", fb.len);
  buf[fb.len] = 0;
  size_t n = fb.len;
  fold_buf_free(&fb);
  return n;
}

static void entry_refold(entry *e) {
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    e->klen[f] = key_of(f, e->v[f], strlen(e->v[f]), e->key[f], KMAX);
    split_words(e->key[f], e->klen[f], &e->w[f]);
  }
}

/* ----------------------------------------------------------- vocabulary */

static const char *first_names[] = {
    "Jon",   "John",     "Jonathan",    "Joan",       "José",       "jose",
    "Anna",  "Anne",     "Ann",         "Zoë",        "Zoe",        "Maria",
    "Mario", "Marie",    "Christopher", "Christophe", "Kristopher", "Bob",
    "Bo",    "Ann  Lee", "JOSÉ",        "Дмитрий",    "Дмитри",     "Ольга",
    "Σοφία", "ΣΟΦΙΑ",    "Sofia"};
static const char *last_names[] = {
    "Müller",   "Muller",  "Mueller", "Miller",  "Smith",        "Smyth",
    "Schmidt",  "Lee",     "Li",      "O'Brien", "van der Berg", "Vanderberg",
    "Straße",   "Strasse", "Johnson", "Jonsson", "\xcc\x81",     "Anderson",
    "Andersen", "Ковалёв", "Ковалев", "Коваль"};
static const char *companies[] = {
    "Acme",    "ACME Corp",    "Acme Corporation", "Globex",   "Globex 2",
    "Initech", "Example Inc.", "example inc",      "Umbrella", "Umbrela",
    "Hooli",   "Café Noir",    "Cafe Noir",        "\xcc\x81"};
static const char *titles[] = {"Engineer", "Senior Engineer", "Enginer",
                               "Manager",  "Sales Manager",   "CEO",
                               "CTO",      "Developer",       "Devloper",
                               "Sales",    "Director",        "Directors"};
static const char *note_words[] = {
    "green", "tea",    "coffee", "Café",     "met",      "fair",     "call",
    "back",  "TEA",    "vip",    "callback", "meeting",  "meetings", "x1",
    "2024",  "urgent", "urgnet", "a1b2c",    "meeting2", "urgent1",  "coffee9"};
static const char *phones[] = {
    "+1 (234) 567-890", "1234567890",  "555 0100", "555-0101",
    "(555) 010 0",      "030 7654321", "7654321",  "+49 30 7654321"};
static const char *locals[] = {"jon",   "john", "anna",    "ann",
                               "maria", "bob",  "j.smith", "zoe"};
static const char *domains[] = {"example.com", "EXAMPLE.com",
                                "mail.io",     "x.org",
                                "acme.co",     "mail.example.com"};

static const char *pick(const char **list, size_t n) {
  return list[rnd() % n];
}
#define PICK(l) pick(l, sizeof l / sizeof l[0])

static void set_v(entry *e, int f, const char *s) {
  snprintf(e->v[f], VMAX, "%s", s ? s : "");
}

static void random_field(entry *e, int f) {
  char buf[VMAX];
  switch (f) {
  case CS_FIRST_NAME:
    set_v(e, f, PICK(first_names));
    break;
  case CS_LAST_NAME:
    set_v(e, f, rnd() % 4 ? PICK(last_names) : NULL);
    break;
  case CS_EMAIL:
    snprintf(buf, sizeof buf, "%s%u@%s", PICK(locals), email_serial++,
             PICK(domains));
    set_v(e, f, buf);
    break;
  case CS_PHONE:
    set_v(e, f, rnd() % 2 ? PICK(phones) : NULL);
    break;
  case CS_COMPANY:
    if (wide_vocab && rnd() % 4) {
      /* Many distinct keys, with skewed counts and ties. */
      unsigned n = rnd() % 1000;
      if (rnd() % 4 == 0) n %= 20;
      snprintf(buf, sizeof buf, "%s %u", rnd() % 2 ? "Firm" : "FIRM", n);
      set_v(e, f, buf);
    } else {
      set_v(e, f, rnd() % 4 ? PICK(companies) : NULL);
    }
    break;
  case CS_JOB_TITLE:
    set_v(e, f, rnd() % 2 ? PICK(titles) : NULL);
    break;
  case CS_NOTES:
    if (rnd() % 3) {
      int n = 1 + rnd() % 4;
      buf[0] = 0;
      for (int i = 0; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s%s", i ? " " : "",
                 PICK(note_words));
      }
      set_v(e, f, buf);
    } else {
      set_v(e, f, NULL);
    }
    break;
  }
}

static cs_contact to_contact(const entry *e) {
  cs_contact c;
  memset(&c, 0, sizeof c);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (e->v[f][0]) c.field[f] = (cs_str){e->v[f], strlen(e->v[f])};
  return c;
}

/* ---------------------------------------------------------------- steps */

static int entries_where(bool trashed, int *out) {
  int n = 0;
  for (int i = 0; i < table_count; i++)
    if (trashed ? table[i].trashed : table[i].live) out[n++] = i;
  return n;
}

static void do_write(cs_store *s, cs_write *w, cs_outcome *o) {
  cs_error err;
  if (tu_write(s, w, o, &err)) fail_msg("write kind %d: %s", w->kind, err.msg);
}

static void step(cs_store *s) {
  clock_ms += rnd() % 3; /* 0: times tie */
  int live[MAXC], trashed[MAXC];
  int nl = entries_where(false, live), nt = entries_where(true, trashed);
  unsigned r = rnd() % 20;
  cs_outcome o;
  if (r < (wide_vocab ? 14u : 9u) || nl == 0) { /* create */
    if (table_count == MAXC) return;
    entry *e = &table[table_count];
    memset(e, 0, sizeof *e);
    for (int f = 0; f < CS_FIELD_COUNT; f++)
      random_field(e, f);
    e->account = wide_vocab ? 1 : 1 + rnd() % NACCT;
    cs_contact c = to_contact(e);
    if (import_next && e->account == MOVED_ACCOUNT && table_count < MAXC / 2) {
      c.id = import_next;
      c.version = 1;
      c.created_ms = c.updated_ms = clock_ms;
      int rc;
      cs_error ierr;
      cs_import_result res;
      if (cs_import(s, e->account, &c, 1, &rc, &ierr, &res, &ierr) || rc)
        fail_msg("import %llu: %s", (unsigned long long)c.id, ierr.msg);
      o.id = c.id;
      import_next += 1 + rnd() % 5;
    } else {
      cs_write w = {
          .kind = CS_WRITE_CREATE, .account = e->account, .contact = &c};
      do_write(s, &w, &o);
    }
    e->touched = true;
    e->id = o.id;
    e->live = true;
    e->created = e->updated = clock_ms;
    entry_refold(e);
    table_count++;
  } else if (r < 14) { /* edit some fields */
    entry *e = &table[live[rnd() % (unsigned)nl]];
    entry next = *e;
    cs_patch p = {0};
    for (int f = 0; f < CS_FIELD_COUNT; f++) {
      if (rnd() % 3) continue;
      random_field(&next, f);
      if (next.v[f][0]) {
        p.set_mask |= 1u << f;
        p.field[f] = (cs_str){next.v[f], strlen(next.v[f])};
      } else {
        p.clear_mask |= 1u << f;
      }
    }
    if (!(p.set_mask | p.clear_mask)) {
      set_v(&next, CS_COMPANY, "Globex");
      p.set_mask = 1u << CS_COMPANY;
      p.field[CS_COMPANY] = (cs_str){next.v[CS_COMPANY], 6};
    }
    cs_write w = {.kind = CS_WRITE_UPDATE,
                  .account = e->account,
                  .id = e->id,
                  .patch = &p};
    do_write(s, &w, &o);
    e->touched = true;
    memcpy(e->v, next.v, sizeof e->v);
    e->updated = clock_ms > e->created ? clock_ms : e->created;
    entry_refold(e);
  } else if (r < 17) { /* delete into the trash */
    entry *e = &table[live[rnd() % (unsigned)nl]];
    cs_write w = {.kind = CS_WRITE_DELETE, .account = e->account, .id = e->id};
    do_write(s, &w, &o);
    e->touched = true;
    e->live = false;
    e->trashed = true;
  } else if (r < 19 && nt) { /* restore */
    entry *e = &table[trashed[rnd() % (unsigned)nt]];
    cs_write w = {.kind = CS_WRITE_RESTORE, .account = e->account, .id = e->id};
    do_write(s, &w, &o);
    e->touched = true;
    e->live = true;
    e->trashed = false;
    e->updated = clock_ms > e->created ? clock_ms : e->created;
  } else if (nl || nt) { /* purge, live or from the trash */
    bool from_trash = nt && (!nl || rnd() % 2);
    entry *e = &table[from_trash ? trashed[rnd() % (unsigned)nt]
                                 : live[rnd() % (unsigned)nl]];
    cs_write w = {.kind = CS_WRITE_DELETE,
                  .account = e->account,
                  .id = e->id,
                  .purge = true};
    do_write(s, &w, &o);
    e->touched = true;
    e->live = e->trashed = false;
  }
}

/* ------------------------------------------------------ text and typos */

static int utf8_decode(const char *s, size_t len, uint32_t *out, int cap) {
  const unsigned char *u = (const unsigned char *)s;
  int n = 0;
  for (size_t i = 0; i < len && n < cap;) {
    uint32_t c = u[i];
    int k = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (k > 1) c &= 0x3fu >> (k - 1);
    for (int j = 1; j < k; j++)
      c = (c << 6) | (u[i + j] & 0x3f);
    out[n++] = c;
    i += (size_t)k;
  }
  return n;
}

static size_t utf8_encode(const uint32_t *cp, int n, char *out) {
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    uint32_t c = cp[i];
    if (c < 0x80) {
      out[o++] = (char)c;
    } else if (c < 0x800) {
      out[o++] = (char)(0xc0 | (c >> 6));
      out[o++] = (char)(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out[o++] = (char)(0xe0 | (c >> 12));
      out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
      out[o++] = (char)(0x80 | (c & 0x3f));
    } else {
      out[o++] = (char)(0xf0 | (c >> 18));
      out[o++] = (char)(0x80 | ((c >> 12) & 0x3f));
      out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
      out[o++] = (char)(0x80 | (c & 0x3f));
    }
  }
  out[o] = 0;
  return o;
}

static size_t cp_count(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (((unsigned char)s[i] & 0xc0) != 0x80) n++;
  return n;
}

static bool has_digit(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] >= '0' && s[i] <= '9') return true;
  return false;
}

/* Optimal string alignment distance over code points. */
static int osa(const char *a, size_t alen, const char *b, size_t blen) {
  enum { N = 80 };
  uint32_t x[N], y[N];
  int n = utf8_decode(a, alen, x, N), m = utf8_decode(b, blen, y, N);
  static int d[N + 1][N + 1];
  for (int i = 0; i <= n; i++)
    d[i][0] = i;
  for (int j = 0; j <= m; j++)
    d[0][j] = j;
  for (int i = 1; i <= n; i++)
    for (int j = 1; j <= m; j++) {
      int cost = x[i - 1] != y[j - 1];
      int best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[n][m];
}

/* The allowance of the meaning: 0 below 5 code points, 1 below 9, else 2
 * up to CS_FUZZY_MAX_CHARS, 0 past it; 0 with a digit. Written here, not
 * taken from the engine. */
static int allowance(const char *w, size_t len) {
  if (has_digit(w, len)) return 0;
  size_t c = cp_count(w, len);
  if (c > CS_FUZZY_MAX_CHARS) return 0;
  return c < CS_FUZZY_ONE_MIN_CHARS ? 0 : c < CS_FUZZY_TWO_MIN_CHARS ? 1 : 2;
}

/* A word with one random typo (insert, delete, substitute, swap). */
static void add_typo(char *w, size_t cap) {
  /* Letters of one byte and of two (that fold to one, or stay two). */
  static const uint32_t alpha[] = {'a', 'e',  'o', 'n',   'r',
                                   's', 0xe9, 'x', 0x434, 0x3b1};
  uint32_t cp[VMAX + 2];
  int n = utf8_decode(w, strlen(w), cp, VMAX);
  if (n == 0 || (size_t)(n + 2) * 4 >= cap) return;
  int kind = (int)(rnd() % 4);
  int at = (int)(rnd() % (unsigned)n);
  uint32_t c = alpha[rnd() % (sizeof alpha / sizeof alpha[0])];
  if (kind == 0) {
    memmove(cp + at + 1, cp + at, (size_t)(n - at) * sizeof *cp);
    cp[at] = c;
    n++;
  } else if (kind == 1 && n > 1) {
    memmove(cp + at, cp + at + 1, (size_t)(n - at - 1) * sizeof *cp);
    n--;
  } else if (kind == 3 && n > 1) {
    if (at == n - 1) at--;
    uint32_t t = cp[at];
    cp[at] = cp[at + 1];
    cp[at + 1] = t;
  } else {
    cp[at] = c;
  }
  utf8_encode(cp, n, w);
}

static bool word_in(const entry *e, int f, const char *w, size_t len) {
  const words *ws = &e->w[f];
  for (int i = 0; i < ws->n; i++)
    if (ws->len[i] == len && memcmp(e->key[f] + ws->off[i], w, len) == 0)
      return true;
  return false;
}

/* ----------------------------------------------------------- queries */

typedef struct gq {
  cs_qry q;
  cs_qnode nodes[96];
  int nn;
  cs_str strs[400];
  int ns;
  uint64_t nums[400];
  int nnum;
  char pool[65536];
  size_t np;
} gq;

static const char *gq_str(gq *g, const char *s, size_t len) {
  if (g->np + len + 1 > sizeof g->pool) abort();
  char *p = g->pool + g->np;
  memcpy(p, s, len);
  p[len] = 0;
  g->np += len + 1;
  return p;
}

/* ------------------------------------------------------ the evaluator */

static int field_group(int f) {
  switch (f) {
  case CS_FIRST_NAME:
  case CS_LAST_NAME:
    return 0;
  case CS_EMAIL:
    return 1;
  case CS_COMPANY:
    return 2;
  case CS_JOB_TITLE:
    return 3;
  case CS_PHONE:
    return 4;
  default:
    return 5;
  }
}

static bool key_eq(const entry *e, int f, const char *k, size_t kl) {
  return kl && e->klen[f] == kl && memcmp(e->key[f], k, kl) == 0;
}

static int64_t num_of(const entry *e, int qf) {
  return qf == CS_QF_ID           ? (int64_t)e->id
         : qf == CS_QF_CREATED_AT ? e->created
                                  : e->updated;
}

static bool cmp_num(int64_t a, cs_op op, uint64_t bu) {
  uint64_t au = (uint64_t)a;
  switch (op) {
  case CS_OP_EQ:
    return au == bu;
  case CS_OP_NEQ:
    return au != bu;
  case CS_OP_GT:
    return au > bu;
  case CS_OP_GTE:
    return au >= bu;
  case CS_OP_LT:
    return au < bu;
  case CS_OP_LTE:
    return au <= bu;
  default:
    abort();
  }
}

/* Every word of the value's key is a word of the field (fuzzy: or within
 * its allowance of a word without digits of a field that takes typos). */
static bool words_match(const entry *e, int f, const char *k, size_t kl,
                        bool fuzzy) {
  words vw;
  split_words(k, kl, &vw);
  if (vw.n == 0) return false;
  bool typos = fuzzy && f != CS_EMAIL && f != CS_PHONE;
  for (int i = 0; i < vw.n; i++) {
    const char *w = k + vw.off[i];
    size_t wl = vw.len[i];
    bool ok = word_in(e, f, w, wl);
    int allow = typos ? allowance(w, wl) : 0;
    for (int j = 0; !ok && allow && j < e->w[f].n; j++) {
      const char *x = e->key[f] + e->w[f].off[j];
      size_t xl = e->w[f].len[j];
      ok = !has_digit(x, xl) && osa(w, wl, x, xl) <= allow;
    }
    if (!ok) return false;
  }
  return true;
}

static bool eval_text_cond(const entry *e, const cs_qnode *n, const char *v,
                           size_t vl) {
  int f = n->field;
  char k[KMAX];
  size_t kl = key_of(f, v, vl, k, sizeof k);
  switch (n->op) {
  case CS_OP_EQ:
  case CS_OP_IN:
    return key_eq(e, f, k, kl);
  case CS_OP_NEQ:
    return !key_eq(e, f, k, kl);
  case CS_OP_PREFIX:
    return kl && e->klen[f] >= kl && memcmp(e->key[f], k, kl) == 0;
  case CS_OP_SUFFIX:
    return kl && e->klen[f] >= kl &&
           memcmp(e->key[f] + e->klen[f] - kl, k, kl) == 0;
  case CS_OP_WORDS:
    if (f == CS_PHONE) return key_eq(e, f, k, kl);
    return kl && words_match(e, f, k, kl, false);
  case CS_OP_FUZZY:
    return kl && words_match(e, f, k, kl, true);
  default:
    abort();
  }
}

static bool eval_node(const entry *e, const cs_qnode *n) {
  switch (n->kind) {
  case CS_Q_AND:
    for (uint32_t i = 0; i < n->nkids; i++)
      if (!eval_node(e, &n->kids[i])) return false;
    return true;
  case CS_Q_OR:
    for (uint32_t i = 0; i < n->nkids; i++)
      if (eval_node(e, &n->kids[i])) return true;
    return false;
  case CS_Q_NOT:
    return !eval_node(e, &n->kids[0]);
  case CS_Q_COND:
    break;
  }
  if (n->op == CS_OP_EXISTS)
    return n->field >= CS_FIELD_COUNT || e->v[n->field][0];
  if (n->field >= CS_FIELD_COUNT) {
    int64_t x = num_of(e, n->field);
    if (n->op == CS_OP_PREFIX) {
      char id[CS_ID_DIGITS + 1], d[64];
      size_t dl = 0;
      cs_id_format(e->id, id);
      for (size_t i = 0; i < n->values[0].len && dl < sizeof d - 1; i++)
        if (n->values[0].ptr[i] >= '0' && n->values[0].ptr[i] <= '9')
          d[dl++] = n->values[0].ptr[i];
      return dl && dl <= CS_ID_DIGITS && memcmp(id, d, dl) == 0;
    }
    if (n->op == CS_OP_IN) {
      for (uint32_t i = 0; i < n->nvalues; i++)
        if ((uint64_t)x == n->nums[i]) return true;
      return false;
    }
    return cmp_num(x, n->op, n->nums[0]);
  }
  if (n->op == CS_OP_IN) {
    for (uint32_t i = 0; i < n->nvalues; i++)
      if (eval_text_cond(e, n, n->values[i].ptr, n->values[i].len)) return true;
    return false;
  }
  return eval_text_cond(e, n, n->values[0].ptr, n->values[0].len);
}

/* How a contact matches q: false when it does not; else the summed
 * relevance (typos, whole words, field ranks). */
typedef struct rel {
  int typos, whole, rank;
} rel;

typedef struct qwords {
  char key[512];
  words w;
} qwords;

static bool eval_q(const entry *e, const qwords *qw, bool fuzzy, rel *out) {
  *out = (rel){0, 0, 0};
  for (int i = 0; i < qw->w.n; i++) {
    const char *w = qw->key + qw->w.off[i];
    size_t wl = qw->w.len[i];
    bool last = i == qw->w.n - 1;
    int allow = fuzzy ? allowance(w, wl) : 0;
    /* best: typos, prefix (1) or whole (0), group */
    int bt = 99, bp = 99, bg = 99;
    for (int f = 0; f < CS_FIELD_COUNT; f++) {
      int g = field_group(f);
      bool typos_here = f != CS_EMAIL && f != CS_PHONE;
      for (int j = 0; j < e->w[f].n; j++) {
        const char *x = e->key[f] + e->w[f].off[j];
        size_t xl = e->w[f].len[j];
        int t = -1, p = 0;
        if (xl == wl && memcmp(x, w, wl) == 0) {
          t = 0;
        } else if (last && xl > wl && memcmp(x, w, wl) == 0) {
          t = 0;
          p = 1;
        }
        if (t < 0 && allow && typos_here && !has_digit(x, xl)) {
          int d = osa(w, wl, x, xl);
          if (d <= allow) t = d;
        }
        if (t < 0) continue;
        if (t < bt || (t == bt && (p < bp || (p == bp && g < bg)))) {
          bt = t;
          bp = p;
          bg = g;
        }
      }
    }
    if (bt == 99) return false;
    out->typos += bt;
    out->whole += bp == 0;
    out->rank += bg;
  }
  return true;
}

typedef struct hit {
  const entry *e;
  rel r;
} hit;

static const cs_qry *sort_q;

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  if (c) return c < 0 ? -1 : 1;
  return al < bl ? -1 : al > bl;
}

/* -1 when a is more relevant. */
static int cmp_rel(const rel *a, const rel *b) {
  if (a->typos != b->typos) return a->typos < b->typos ? -1 : 1;
  if (a->whole != b->whole) return a->whole > b->whole ? -1 : 1;
  if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
  return 0;
}

static int cmp_hit(const void *pa, const void *pb) {
  const hit *a = pa, *b = pb;
  for (uint32_t i = 0; i < sort_q->nsort; i++) {
    const cs_sort_key *k = &sort_q->sort[i];
    int c = 0;
    if (k->field == CS_QF_RELEVANCE) {
      c = -cmp_rel(&a->r, &b->r); /* ascending: least relevant first */
    } else if (k->field >= CS_FIELD_COUNT) {
      int64_t x = num_of(a->e, k->field), y = num_of(b->e, k->field);
      c = (uint64_t)x < (uint64_t)y ? -1 : (uint64_t)x > (uint64_t)y;
    } else {
      size_t al = a->e->klen[k->field], bl = b->e->klen[k->field];
      if (!al || !bl) { /* missing last, in either order */
        if (al || bl) return al ? -1 : 1;
        continue;
      }
      c = cmp_bytes(a->e->key[k->field], al, b->e->key[k->field], bl);
    }
    if (k->desc) c = -c;
    if (c) return c;
  }
  return a->e->id < b->e->id ? -1 : a->e->id > b->e->id;
}

typedef struct fval {
  const char *key;
  size_t klen;
  uint64_t count;
} fval;

static int cmp_fval(const void *pa, const void *pb) {
  const fval *a = pa, *b = pb;
  if (a->count != b->count) return a->count > b->count ? -1 : 1;
  return cmp_bytes(a->key, a->klen, b->key, b->klen);
}

typedef struct expect {
  hit hits[MAXC];
  int n;
  fval facet[CS_QUERY_FACETS_MAX][MAXC];
  int nfacet[CS_QUERY_FACETS_MAX];
} expect;

static void evaluate(const cs_qry *q, expect *x) {
  qwords qw;
  qw.w.n = 0;
  if (q->q.ptr) {
    fold_buf fb = {0};
    if (fold_text(q->q.ptr, q->q.len, &fb) || fb.len >= sizeof qw.key) abort();
    memcpy(qw.key, fb.ptr, fb.len);
    split_words(qw.key, fb.len, &qw.w);
    fold_buf_free(&fb);
  }
  x->n = 0;
  for (int i = 0; i < table_count; i++) {
    const entry *e = &table[i];
    if (!e->live || e->account != q->account) continue;
    if (q->filter && !eval_node(e, q->filter)) continue;
    rel r = {0, 0, 0};
    if (q->q.ptr && !eval_q(e, &qw, q->fuzzy, &r)) continue;
    x->hits[x->n++] = (hit){e, r};
  }
  sort_q = q;
  qsort(x->hits, (size_t)x->n, sizeof x->hits[0], cmp_hit);
  for (uint32_t fi = 0; fi < q->nfacets; fi++) {
    int f = q->facets[fi], nv = 0;
    fval *fv = x->facet[fi];
    for (int h = 0; h < x->n; h++) {
      const entry *e = x->hits[h].e;
      if (!e->klen[f]) continue;
      int j = 0;
      while (j < nv &&
             cmp_bytes(fv[j].key, fv[j].klen, e->key[f], e->klen[f]) != 0)
        j++;
      if (j == nv) fv[nv++] = (fval){e->key[f], e->klen[f], 0};
      fv[j].count++;
    }
    qsort(fv, (size_t)nv, sizeof *fv, cmp_fval);
    x->nfacet[fi] = nv < CS_QUERY_FACET_VALUES ? nv : CS_QUERY_FACET_VALUES;
  }
}

/* The value shown for a facet key: as stored on the account's live contact
 * with the lowest id holding it. */
static const char *facet_shown(uint32_t account, int f, const char *k,
                               size_t kl) {
  const entry *best = NULL;
  for (int i = 0; i < table_count; i++) {
    const entry *e = &table[i];
    if (e->live && e->account == account && key_eq(e, f, k, kl) &&
        (!best || e->id < best->id))
      best = e;
  }
  return best ? best->v[f] : "";
}

/* ----------------------------------------------------------- printing */

static void put(char *out, size_t cap, const char *fmt, ...) {
  size_t l = strlen(out);
  if (l >= cap - 1) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out + l, cap - l, fmt, ap);
  va_end(ap);
}

static void print_node(const cs_qnode *n, char *out, size_t cap) {
  if (n->kind != CS_Q_COND) {
    put(out, cap, "%s(",
        n->kind == CS_Q_AND  ? "and"
        : n->kind == CS_Q_OR ? "or"
                             : "not");
    for (uint32_t i = 0; i < n->nkids; i++) {
      if (i) put(out, cap, ", ");
      print_node(&n->kids[i], out, cap);
    }
    put(out, cap, ")");
    return;
  }
  put(out, cap, "%s %s", cs_qfield_name(n->field), cs_op_name(n->op));
  int arg = cs_op_arg(n->field, n->op);
  if (arg == CS_QARG_TEXT || arg == CS_QARG_TEXTS)
    for (uint32_t i = 0; i < (arg == CS_QARG_TEXT ? 1 : n->nvalues); i++)
      put(out, cap, " \"%.*s\"", (int)n->values[i].len, n->values[i].ptr);
  if (arg == CS_QARG_NUM || arg == CS_QARG_NUMS)
    for (uint32_t i = 0; i < (arg == CS_QARG_NUM ? 1 : n->nvalues); i++)
      put(out, cap, " %llu", (unsigned long long)n->nums[i]);
}

static void print_query(const cs_qry *q, char *out, size_t cap) {
  out[0] = 0;
  put(out, cap, "account %u", q->account);
  if (q->q.ptr)
    put(out, cap, " q \"%.*s\"%s", (int)q->q.len, q->q.ptr,
        q->fuzzy ? " fuzzy" : "");
  if (q->filter) {
    put(out, cap, " filter ");
    print_node(q->filter, out, cap);
  }
  for (uint32_t i = 0; i < q->nsort; i++)
    put(out, cap, "%s%s %s", i ? ", " : " sort ",
        cs_qfield_name(q->sort[i].field), q->sort[i].desc ? "desc" : "asc");
  for (uint32_t i = 0; i < q->nfacets; i++)
    put(out, cap, "%s%s", i ? ", " : " facets ", cs_qfield_name(q->facets[i]));
  put(out, cap, " limit %u", q->limit);
}

static void print_entry(const entry *e, char *out, size_t cap) {
  put(out, cap, "\n  %llu c%lld u%lld", (unsigned long long)e->id,
      (long long)e->created, (long long)e->updated);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (e->v[f][0]) put(out, cap, " %s=\"%s\"", cs_field_name(f), e->v[f]);
}

/* ------------------------------------------------------- the generator */

/* Most values of one query come from one contact, so that its conditions
 * and words often hold together. */
static const entry *anchor;

static const entry *any_entry(uint32_t account) {
  if (anchor && rnd() % 5 < 3) return anchor;
  /* Mostly the account's own contacts, live or not. */
  for (int tries = 0; tries < 8; tries++) {
    const entry *e = &table[rnd() % (unsigned)table_count];
    if (e->account == account || tries == 7) return e;
  }
  return &table[0];
}

/* A text value for field f drawn from what is stored: whole, a prefix, a
 * suffix, a word, a misspelling, another case, or nothing like it. */
static void text_value(int f, cs_op op, uint32_t account, char *out,
                       size_t cap) {
  const entry *e = any_entry(account);
  const char *v = e->v[f];
  unsigned r = rnd() % 10;
  if (!v[0] || r == 9) {
    static const char *none[] = {"zzzz", "qq",       "nobody", "\xcc\x81",
                                 "x",    "Jonathon", "Smiht"};
    snprintf(out, cap, "%s", f == CS_PHONE ? "99999" : PICK(none));
    if (op == CS_OP_WORDS || op == CS_OP_FUZZY || op == CS_OP_SUFFIX)
      snprintf(out, cap, "%s", f == CS_PHONE ? "99999" : "zzzz");
    return;
  }
  snprintf(out, cap, "%s", v);
  if (op == CS_OP_SUFFIX) {
    size_t l = strlen(out), k = CS_QUERY_SUFFIX_MIN + rnd() % 6;
    if (f == CS_PHONE) { /* keep the last k digits, and what is between */
      size_t digits = 0, i = l;
      while (i > 0 && digits < k) {
        i--;
        if (out[i] >= '0' && out[i] <= '9') digits++;
      }
      if (digits < CS_QUERY_SUFFIX_MIN) {
        snprintf(out, cap, "7654321");
        return;
      }
      memmove(out, out + i, l - i + 1);
    } else if (rnd() % 3) { /* the domain */
      char *at = strchr(out, '@');
      if (at) memmove(out, at, strlen(at) + 1);
    } else if (l > k) {
      memmove(out, out + l - k, k + 1);
    }
    if (rnd() % 3 == 0)
      for (char *p = out; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
    return;
  }
  if (r < 3) return; /* as stored */
  if (r < 5) {       /* another case */
    for (char *p = out; *p; p++)
      if (*p >= 'a' && *p <= 'z')
        *p = (char)(*p - 32);
      else if (*p >= 'A' && *p <= 'Z')
        *p = (char)(*p + 32);
    return;
  }
  if (r < 7 && op != CS_OP_WORDS && op != CS_OP_FUZZY) { /* a prefix */
    size_t l = strlen(out), k = 1 + rnd() % (l > 1 ? l - 1 : 1);
    while (k < l && ((unsigned char)out[k] & 0xc0) == 0x80)
      k++;
    out[k] = 0;
    return;
  }
  /* a word of it, maybe misspelt */
  const words *ws = &e->w[f];
  if (ws->n == 0) return;
  int wi = (int)(rnd() % (unsigned)ws->n);
  snprintf(out, cap, "%.*s", (int)ws->len[wi], e->key[f] + ws->off[wi]);
  if (r == 8) add_typo(out, cap);
  if (rnd() % 4 == 0 && ws->n > 1) { /* two words */
    int wj = (int)(rnd() % (unsigned)ws->n);
    size_t l = strlen(out);
    snprintf(out + l, cap - l, " %.*s", (int)ws->len[wj],
             e->key[f] + ws->off[wj]);
  }
}

static uint64_t num_value(int qf, uint32_t account) {
  const entry *e = any_entry(account);
  int64_t x = num_of(e, qf);
  switch (rnd() % 8) {
  case 0:
    return (uint64_t)x + 1;
  case 1:
    return (uint64_t)x - 1;
  case 2:
    return qf == CS_QF_ID ? CS_ID_MIN : 0;
  case 3:
    return UINT64_MAX / (1 + rnd() % 2);
  default:
    return (uint64_t)x;
  }
}

static void gen_cond(gq *g, cs_qnode *n, uint32_t account) {
  for (;;) {
    int qf = (int)(rnd() % (CS_FIELD_COUNT + 3));
    cs_op op = (cs_op)(rnd() % CS_OP_COUNT);
    int arg = cs_op_arg(qf, op);
    if (arg < 0) continue;
    *n = (cs_qnode){.kind = CS_Q_COND, .field = qf, .op = op};
    char buf[VMAX * 2];
    if (arg == CS_QARG_TEXT || arg == CS_QARG_TEXTS) {
      uint32_t k = arg == CS_QARG_TEXT ? 1 : 1 + rnd() % 4;
      n->values = &g->strs[g->ns];
      n->nvalues = arg == CS_QARG_TEXT ? 0 : k;
      for (uint32_t i = 0; i < k; i++) {
        if (qf == CS_QF_ID) { /* digits of an id */
          char id[CS_ID_DIGITS + 1];
          cs_id_format(any_entry(account)->id, id);
          snprintf(buf, sizeof buf, "%.*s", (int)(1 + rnd() % CS_ID_DIGITS),
                   id);
        } else {
          text_value(qf, op, account, buf, sizeof buf);
        }
        const char *p = gq_str(g, buf, strlen(buf));
        g->strs[g->ns++] = (cs_str){p, strlen(p)};
      }
      if (arg == CS_QARG_TEXT) n->nvalues = 1;
    } else if (arg == CS_QARG_NUM || arg == CS_QARG_NUMS) {
      uint32_t k = arg == CS_QARG_NUM ? 1 : 1 + rnd() % 4;
      n->nums = &g->nums[g->nnum];
      n->nvalues = k;
      for (uint32_t i = 0; i < k; i++)
        g->nums[g->nnum++] = num_value(qf, account);
    }
    return;
  }
}

static void gen_node(gq *g, cs_qnode *n, int depth_left, int *conds,
                     uint32_t account) {
  if (depth_left <= 1 || *conds <= 1 || rnd() % 5 < 2) {
    (*conds)--;
    gen_cond(g, n, account);
    return;
  }
  unsigned r = rnd() % 3;
  cs_qkind kind = r == 0 ? CS_Q_AND : r == 1 ? CS_Q_OR : CS_Q_NOT;
  uint32_t k = kind == CS_Q_NOT ? 1 : 1 + rnd() % 3;
  cs_qnode *kids = &g->nodes[g->nn];
  g->nn += (int)k;
  *n = (cs_qnode){.kind = kind, .kids = kids, .nkids = k};
  for (uint32_t i = 0; i < k; i++)
    gen_node(g, &kids[i], depth_left - 1, conds, account);
}

/* A word for q: of a stored value, maybe cut to a prefix, misspelt, in
 * other case, or nothing like it. */
static void q_word(uint32_t account, bool last, char *out, size_t cap) {
  const entry *e = anchor && rnd() % 8 ? anchor : any_entry(account);
  int f = (int)(rnd() % CS_FIELD_COUNT);
  for (int tries = 0; tries < 6 && e->w[f].n == 0; tries++)
    f = (int)(rnd() % CS_FIELD_COUNT);
  const words *ws = &e->w[f];
  if (ws->n == 0 || rnd() % 16 == 0) {
    static const char *none[] = {"zzzz", "nobody", "jonn", "smiht", "x"};
    snprintf(out, cap, "%s", PICK(none));
    return;
  }
  int wi = (int)(rnd() % (unsigned)ws->n);
  snprintf(out, cap, "%.*s", (int)ws->len[wi], e->key[f] + ws->off[wi]);
  unsigned r = rnd() % 8;
  if (last && r < 3) { /* a prefix */
    size_t l = strlen(out), k = 1 + rnd() % l;
    while (k < l && ((unsigned char)out[k] & 0xc0) == 0x80)
      k++;
    out[k] = 0;
  } else if (r == 3 || r == 4) {
    add_typo(out, cap);
    if (rnd() % 4 == 0) add_typo(out, cap);
    if (rnd() % 8 == 0) add_typo(out, cap);
  }
  if (rnd() % 4 == 0)
    for (char *p = out; *p; p++)
      if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
}

static const int facet_fields[] = {CS_FIRST_NAME, CS_LAST_NAME, CS_COMPANY,
                                   CS_JOB_TITLE};

static void gen_query(gq *g, uint32_t account) {
  memset(g, 0, sizeof *g);
  anchor = NULL;
  for (int tries = 0; tries < 16 && !anchor; tries++) {
    const entry *e = &table[rnd() % (unsigned)table_count];
    if (e->live && e->account == account) anchor = e;
  }
  cs_qry *q = &g->q;
  q->account = account;
  if (rnd() % 3) {
    char buf[512] = "";
    int nw = 1 + (int)(rnd() % 3);
    for (int i = 0; i < nw; i++) {
      char w[VMAX * 2];
      q_word(account, i == nw - 1, w, sizeof w);
      size_t l = strlen(buf);
      snprintf(buf + l, sizeof buf - l, "%s%s",
               i ? (rnd() % 2 ? " " : ", ") : "", w);
    }
    q->q = (cs_str){gq_str(g, buf, strlen(buf)), strlen(buf)};
    q->fuzzy = rnd() % 2;
  }
  if (rnd() % 2) {
    int conds = 1 + (int)(rnd() % 8);
    cs_qnode *root = &g->nodes[g->nn++];
    gen_node(g, root, 1 + (int)(rnd() % CS_QUERY_DEPTH_MAX), &conds, account);
    q->filter = root;
  }
  q->nsort = rnd() % 4;
  bool used[CS_QF_COUNT] = {false};
  for (uint32_t i = 0; i < q->nsort; i++) {
    int f;
    do {
      f = (int)(rnd() % CS_QF_COUNT);
    } while (used[f] || (f == CS_QF_RELEVANCE && !q->q.ptr));
    if (q->q.ptr && i == 0 && rnd() % 3 == 0 && !used[CS_QF_RELEVANCE])
      f = CS_QF_RELEVANCE;
    used[f] = true;
    q->sort[i] = (cs_sort_key){f, rnd() % 2};
  }
  q->nfacets = rnd() % 3;
  for (uint32_t i = 0; i < q->nfacets; i++)
    q->facets[i] = facet_fields[rnd() % 4];
  static const uint32_t limits[] = {1, 2, 3, 5, 8, 0, 100, 1000};
  q->limit = limits[rnd() % 8];
}

/* ------------------------------------------------------------ checking */

static bool str_eq(cs_str a, const char *b) {
  size_t bl = strlen(b);
  if (!a.ptr) return bl == 0;
  return a.len == bl && memcmp(a.ptr, b, bl) == 0;
}

static bool check_facets(const cs_qry *q, const expect *x, const cs_qresult *r,
                         char *why, size_t cap) {
  if (r->nfacets != q->nfacets) {
    snprintf(why, cap, "%u facets, expected %u", r->nfacets, q->nfacets);
    return false;
  }
  for (uint32_t fi = 0; fi < q->nfacets; fi++) {
    const cs_facet *f = &r->facets[fi];
    int fld = q->facets[fi];
    if (f->field != fld || f->count != (uint32_t)x->nfacet[fi]) {
      snprintf(why, cap, "facet %u (%s): %u values, expected %d", fi,
               cs_qfield_name(fld), f->count, x->nfacet[fi]);
      return false;
    }
    for (uint32_t j = 0; j < f->count; j++) {
      const fval *e = &x->facet[fi][j];
      const cs_facet_value *g = &f->values[j];
      const char *shown = facet_shown(q->account, fld, e->key, e->klen);
      if (g->count != e->count || g->key.len != e->klen ||
          memcmp(g->key.ptr, e->key, e->klen) != 0 ||
          !str_eq(g->value, shown)) {
        snprintf(why, cap,
                 "facet %s value %u: got \"%.*s\" key \"%.*s\" count %llu, "
                 "expected \"%s\" key \"%.*s\" count %llu",
                 cs_qfield_name(fld), j, (int)g->value.len,
                 g->value.ptr ? g->value.ptr : "", (int)g->key.len,
                 g->key.ptr ? g->key.ptr : "", (unsigned long long)g->count,
                 shown, (int)e->klen, e->key, (unsigned long long)e->count);
        return false;
      }
    }
  }
  return true;
}

static bool check_contact(const cs_contact *c, const entry *e) {
  if (c->id != e->id || c->account != e->account ||
      c->created_ms != e->created || c->updated_ms != e->updated)
    return false;
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    if (!str_eq(c->field[f], e->v[f])) return false;
  return true;
}

/* A position copied out of a result (its strings live in the result). */
typedef struct poscopy {
  cs_qpos p;
  char text[CS_QUERY_SORT_MAX][KMAX];
} poscopy;

static void pos_copy(poscopy *dst, const cs_qpos *src) {
  dst->p = *src;
  for (uint32_t i = 0; i < src->nkeys && i < CS_QUERY_SORT_MAX; i++) {
    const cs_str t = src->key[i].text;
    if (!t.ptr) continue;
    if (t.len >= KMAX) abort();
    memcpy(dst->text[i], t.ptr, t.len);
    dst->text[i][t.len] = 0;
    dst->p.key[i].text = (cs_str){dst->text[i], t.len};
  }
}

/* A page's next position holds its last contact's sort values and id. */
static bool check_next(const cs_qry *q, const cs_qresult *r, char *why,
                       size_t cap) {
  const cs_contact *c = &r->page.contacts[r->page.count - 1];
  const entry *e = NULL;
  for (int i = 0; i < table_count && !e; i++)
    if (table[i].id == c->id) e = &table[i];
  bool ok = e && r->next.id == c->id && r->next.nkeys >= q->nsort &&
            r->next.nkeys <= CS_QUERY_SORT_MAX;
  /* Keys after id never order anything: not compared. */
  for (uint32_t i = 0;
       ok && i < q->nsort && (i == 0 || q->sort[i - 1].field != CS_QF_ID);
       i++) {
    int f = q->sort[i].field;
    const cs_qpos_key *k = &r->next.key[i];
    if (f < CS_FIELD_COUNT)
      ok = k->missing == (e->klen[f] == 0) &&
           (k->missing || (k->text.len == e->klen[f] &&
                           memcmp(k->text.ptr, e->key[f], e->klen[f]) == 0));
    else if (f != CS_QF_RELEVANCE)
      ok = !k->missing && k->num == (uint64_t)num_of(e, f);
  }
  if (!ok)
    snprintf(why, cap, "next position (id %llu, %u keys) is not that of %llu",
             (unsigned long long)r->next.id, r->next.nkeys,
             (unsigned long long)c->id);
  return ok;
}

static expect ex; /* large: static */
static uint64_t last_as_of;

/* Runs q page by page and compares with the evaluator. */
static bool check_query(cs_store *s, cs_qry *q, char *why, size_t cap) {
  evaluate(q, &ex);
  uint32_t limit = q->limit ? q->limit : CS_PAGE_LIMIT_DEFAULT;
  int got = 0;
  poscopy pos;
  q->after = NULL;
  for (int page = 0;; page++) {
    cs_qresult r;
    cs_error err;
    int rc = cs_query_run(s, q, &r, &err);
    if (rc) {
      snprintf(why, cap, "page %d: cs_query_run %d: %.300s", page, rc, err.msg);
      q->after = NULL;
      return false;
    }
    bool ok = true;
    uint64_t remaining = (uint64_t)(ex.n - got);
    uint32_t want = remaining < limit ? (uint32_t)remaining : limit;
    if (r.page.total != (uint64_t)ex.n) {
      snprintf(why, cap, "page %d: total %llu, expected %d", page,
               (unsigned long long)r.page.total, ex.n);
      ok = false;
    } else if (r.page.count != want || r.page.more != (remaining > want)) {
      snprintf(why, cap, "page %d: count %u more %d, expected %u %d", page,
               r.page.count, r.page.more, want, remaining > want);
      ok = false;
    } else if (r.as_of < last_as_of) {
      snprintf(why, cap, "as_of went back from %llu to %llu",
               (unsigned long long)last_as_of, (unsigned long long)r.as_of);
      ok = false;
    }
    for (uint32_t i = 0; ok && i < r.page.count; i++) {
      const entry *e = ex.hits[got + (int)i].e;
      if (!check_contact(&r.page.contacts[i], e)) {
        snprintf(why, cap, "position %d: got %llu, expected %llu", got + (int)i,
                 (unsigned long long)r.page.contacts[i].id,
                 (unsigned long long)e->id);
        ok = false;
      }
    }
    if (ok) ok = check_facets(q, &ex, &r, why, cap);
    if (ok && r.page.more) ok = check_next(q, &r, why, cap);
    last_as_of = r.as_of;
    got += (int)r.page.count;
    bool more = r.page.more;
    if (ok && more) pos_copy(&pos, &r.next);
    cs_qresult_free(&r);
    if (!ok || !more) break;
    q->after = &pos.p;
  }
  q->after = NULL;
  return why[0] == 0;
}

/* The whole picture of a mismatch: the query, what the meaning gives (ids
 * and the contacts), for the log. */
static char report[65536];

/* Walks q page by page with a random write between pages. A contact no
 * write touched during the walk keeps its sort values and whether it
 * matches: each that matched comes exactly once, in the query's order;
 * none comes twice. */
static bool walk_under_writes(cs_store *s, cs_qry *q, char *why, size_t cap) {
  for (int i = 0; i < table_count; i++)
    table[i].touched = false;
  evaluate(q, &ex);
  static int rank[MAXC]; /* of table[i] in the first order, or -1 */
  for (int i = 0; i < table_count; i++)
    rank[i] = -1;
  for (int h = 0; h < ex.n; h++)
    rank[ex.hits[h].e - table] = h;
  static int times[MAXC];
  memset(times, 0, sizeof times);
  poscopy pos;
  int last_rank = -1;
  q->after = NULL;
  for (int page = 0; page < 4 * MAXC; page++) {
    cs_qresult r;
    cs_error err;
    if (cs_query_run(s, q, &r, &err)) {
      snprintf(why, cap, "walk page %d: %.300s", page, err.msg);
      q->after = NULL;
      return false;
    }
    for (uint32_t i = 0; i < r.page.count && !why[0]; i++) {
      int k = -1;
      for (int j = 0; j < table_count && k < 0; j++)
        if (table[j].id == r.page.contacts[i].id) k = j;
      if (k < 0 || table[k].touched) continue;
      if (++times[k] > 1 || rank[k] < 0 || rank[k] < last_rank)
        snprintf(why, cap, "walk page %d: untouched %llu %s", page,
                 (unsigned long long)table[k].id,
                 times[k] > 1  ? "came twice"
                 : rank[k] < 0 ? "does not match"
                               : "out of order");
      last_rank = rank[k];
    }
    bool more = r.page.more;
    if (more) pos_copy(&pos, &r.next);
    cs_qresult_free(&r);
    if (!more || why[0]) break;
    q->after = &pos.p;
    if (rnd() % 3) step(s);
  }
  q->after = NULL;
  for (int i = 0; i < table_count && !why[0]; i++)
    if (rank[i] >= 0 && !table[i].touched && times[i] != 1)
      snprintf(why, cap, "walk: untouched %llu skipped",
               (unsigned long long)table[i].id);
  return why[0] == 0;
}

static cs_store *cur_store; /* for the report */

static void fail_query(const char *when, unsigned seed, cs_qry *q,
                       const char *why) {
  char qs[4096];
  print_query(q, qs, sizeof qs);
  report[0] = 0;
  put(report, sizeof report, "expected %d:", ex.n);
  for (int i = 0; i < ex.n && i < 40; i++)
    put(report, sizeof report, " %llu", (unsigned long long)ex.hits[i].e->id);
  /* What the engine gives on one page of all. */
  cs_qry all = *q;
  all.limit = CS_PAGE_LIMIT_MAX;
  all.after = NULL;
  cs_qresult r;
  cs_error err;
  if (cur_store && cs_query_run(cur_store, &all, &r, &err) == 0) {
    put(report, sizeof report,
        "\nengine %llu:", (unsigned long long)r.page.total);
    for (uint32_t i = 0; i < r.page.count && i < 40; i++)
      put(report, sizeof report, " %llu",
          (unsigned long long)r.page.contacts[i].id);
    cs_qresult_free(&r);
  }
  put(report, sizeof report, "\naccount %u contacts:", q->account);
  for (int i = 0; i < table_count; i++)
    if (table[i].live && table[i].account == q->account)
      print_entry(&table[i], report, sizeof report);
  printf("%s\n", report);
  fflush(stdout);
  fail_msg("seed %u %s: %s\n  query: %s\n  (replay with QORACLE_SEED=%u)", seed,
           when, why, qs, seed);
}

static gq gen; /* large: static */

static void check_random_queries(cs_store *s, int n, unsigned seed,
                                 const char *when, bool walks) {
  if (table_count == 0) return;
  cur_store = s;
  char why[1024];
  for (int i = 0; i < n; i++) {
    gen_query(&gen, 1 + rnd() % (wide_vocab ? 1 : NACCT));
    why[0] = 0;
    cs_qfault where;
    cs_error err;
    if (cs_query_check(&gen.q, &where, &err) != 0) {
      snprintf(why, sizeof why, "a valid query refused: part %d: %s",
               where.part, err.msg);
      fail_query(when, seed, &gen.q, why);
    }
    if (!check_query(s, &gen.q, why, sizeof why))
      fail_query(when, seed, &gen.q, why);
    /* Now and then the same query walked with writes between its pages
     * (not after reopening: the queries there repeat the same writes). */
    if (walks && rnd() % 16 == 0) {
      uint32_t limit = gen.q.limit;
      gen.q.limit = 2 + rnd() % 8;
      if (!walk_under_writes(s, &gen.q, why, sizeof why))
        fail_query(when, seed, &gen.q, why);
      gen.q.limit = limit;
    }
  }
}

/* Reopens the store with opts and asks the queries that followed at
 * again. */
static cs_store *reopen_and_check(cs_store *s, const char *dir,
                                  const cs_options *opts, unsigned at, int n,
                                  unsigned seed, const char *when) {
  cs_error err;
  assert_int_equal(cs_close(s, &err), 0);
  if (cs_open(dir, opts, &s, &err)) fail_msg("%s: open: %s", when, err.msg);
  rng = at;
  last_as_of = 0;
  check_random_queries(s, n, seed, when, false);
  return s;
}

/* moved: the store is shard 2's, and an account moves in from shard 1
 * during the first half (import_next). */
static void run_oracle(unsigned seed, int steps, int every, int per_check,
                       bool wide, bool moved) {
  rng = seed;
  import_next = moved ? cs_shard_floor(1) + 1000 : 0;
  table_count = 0;
  email_serial = 0;
  clock_ms = 1795000000000ll;
  wide_vocab = wide;
  last_as_of = 0;
  char *dir = tu_tmpdir();
  /* Snapshots along the way, none at close: the first reopening loads the
   * last one and replays the log after it. */
  cs_options o = {.durability = CS_DURABILITY_NONE,
                  .now_ms = test_now,
                  .snapshot_every_bytes = CS_SNAPSHOT_EVERY_BYTES_MIN * 4,
                  .no_snapshot_on_close = true,
                  .shard = moved ? 2 : 0,
                  .shard_set = moved};
  cs_store *s;
  cs_error err;
  assert_int_equal(cs_open(dir, &o, &s, &err), 0);
  char when[64], why[512];
  for (int i = 0; i < steps; i++) {
    step(s);
    if (i % every == every - 1 || i < 10) {
      if (store_check(s, why, sizeof why) != 0)
        fail_msg("seed %u step %d: store_check: %s", seed, i, why);
      snprintf(when, sizeof when, "step %d", i);
      check_random_queries(s, per_check, seed, when, true);
    }
  }
  cs_stats st;
  cs_stats_get(s, &st);
  assert_true(st.snapshot_seq > 0);
  if (moved) /* the moved account made the table several runs */
    assert_true(s->slots.run_count > 1);
  /* The same answers from a snapshot with the log after it, from a
   * snapshot of everything and from the log alone: the same queries each
   * time (the generator restarts from the same state). */
  unsigned at = rng;
  int n = per_check * 4;
  check_random_queries(s, n, seed, "before reopening", false);
  cs_options plain = {.durability = CS_DURABILITY_NONE, .now_ms = test_now};
  s = reopen_and_check(s, dir, &plain, at, n, seed,
                       "from a snapshot and the log after it");
  s = reopen_and_check(s, dir, &plain, at, n, seed, "from the snapshot");
  cs_options replay = plain;
  replay.no_snapshot_load = true;
  replay.no_snapshot_on_close = true;
  s = reopen_and_check(s, dir, &replay, at, n, seed, "from the log");
  assert_int_equal(cs_close(s, &err), 0);
  tu_rmrf(dir);
  free(dir);
}

static int env_int(const char *name, int dflt) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : dflt;
}

static void test_query_oracle_equals_brute_force(void **state) {
  (void)state;
  unsigned seed = (unsigned)env_int("QORACLE_SEED", 20261201);
  int steps = env_int("QORACLE_STEPS", QO_SLOW ? 600 : 1000);
  run_oracle(seed, steps, 8, QO_SLOW ? 25 : 40, false, false);
}

/* The same on a store of shard 2 into which an account of shard 1 moves
 * while the others write: its ids lie below the store's own, so the slot
 * table is several runs (pindex.h), and every order, cursor and id range
 * must still answer as the scan does. */
static void test_query_oracle_moved_account(void **state) {
  (void)state;
  unsigned seed = (unsigned)env_int("QORACLE_SEED", 20261203);
  int steps = env_int("QORACLE_STEPS", QO_SLOW ? 400 : 700);
  run_oracle(seed, steps, 8, QO_SLOW ? 20 : 30, false, true);
}

/* One account of many distinct companies: the facet keeps the
 * CS_QUERY_FACET_VALUES most common, by count then key. */
static void test_query_oracle_facet_cut(void **state) {
  (void)state;
  unsigned seed = (unsigned)env_int("QORACLE_SEED", 20261202);
  int steps = env_int("QORACLE_STEPS", 400);
  run_oracle(seed, steps, 50, QO_SLOW ? 15 : 20, true, false);
  /* The run reached past the cut: more distinct companies than it keeps. */
  fval seen[MAXC];
  int n = 0;
  for (int i = 0; i < table_count; i++) {
    const entry *e = &table[i];
    if (!e->live || !e->klen[CS_COMPANY]) continue;
    int j = 0;
    while (j < n && cmp_bytes(seen[j].key, seen[j].klen, e->key[CS_COMPANY],
                              e->klen[CS_COMPANY]))
      j++;
    if (j == n) seen[n++] = (fval){e->key[CS_COMPANY], e->klen[CS_COMPANY], 1};
  }
  if (!getenv("QORACLE_STEPS")) assert_true(n > CS_QUERY_FACET_VALUES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_query_oracle_equals_brute_force),
      cmocka_unit_test(test_query_oracle_facet_cut),
      cmocka_unit_test(test_query_oracle_moved_account),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
