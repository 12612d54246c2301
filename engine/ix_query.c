/*
 * ix_query.c: the sets a query is made of, taken from the index.
 *
 * Why: a query is set algebra over posting lists (cs_query.h). This file
 * turns each condition on a field and each word of free text into the set
 * of slots that match it, as a CRoaring bitmap, so that and, or and not are
 * bitmap operations with exact cardinalities; it also walks a field's
 * sorted dictionary over an account for the sorts and facets (ixq_walk).
 * Sets are built from the posting lists as they are (a single slot, an
 * array or a bitmap), never by reading records.
 *
 * Like the searches, nothing here writes the index (invariant 4 of
 * ix_int.h): any number of queries run at once under the store's read
 * lock, each with its own folding buffers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"

/* Adds the slots of p to out. */
static void post_or(ix_post p, roaring_bitmap_t *out) {
  if (!p) return;
  if (POST_IS_ONE(p)) {
    roaring_bitmap_add(out, POST_ONE(p));
  } else if (POST_IS_RB(p)) {
    roaring_bitmap_or_inplace(out, POST_RB(p));
  } else {
    const ix_arr *a = POST_ARR(p);
    roaring_bitmap_add_many(out, a->n, a->v);
  }
}

/* The posting of (account, text) in d, or 0. */
static ix_post dict_post(const ix_dict *d, uint32_t account, const char *t,
                         size_t len) {
  uint32_t e = dict_find(d, account, t, len, key_hash(account, t, len));
  return e == IX_NONE ? 0 : d->ents[e].post;
}

/* Adds the slots of every key of account in d that starts with t. */
static void range_or(const ix_dict *d, uint32_t account, const char *t,
                     size_t len, roaring_bitmap_t *out) {
  uint8_t acct[4];
  acct_be(account, acct);
  uint32_t c, i;
  order_lower(d, account, t, len, &c, &i);
  for (; c < d->nchunks; c++, i = 0) {
    const ix_chunk *ch = &d->chunks[c];
    for (; i < ch->n; i++) {
      size_t klen;
      const uint8_t *k = ent_key(d, ch->v[i], &klen);
      if (klen < len + 4 || memcmp(k, acct, 4) || memcmp(k + 4, t, len)) return;
      post_or(d->ents[ch->v[i]].post, out);
    }
  }
}

int ixq_live(const ix_index *ix, uint32_t account, roaring_bitmap_t *out) {
  post_or(dict_post(&ix->meta, account, IX_META_LIVE, 1), out);
  return 0;
}

int ixq_absent(const ix_index *ix, uint32_t account, int field,
               roaring_bitmap_t *out) {
  post_or(dict_post(&ix->meta, account, IX_META_ABSENT + field, 1), out);
  return 0;
}

/* ------------------------------------------------------------- words */

typedef struct word_list {
  const char *w[CS_QUERY_WORDS_MAX];
  size_t len[CS_QUERY_WORDS_MAX];
  uint32_t n;
  bool over; /* more than CS_QUERY_WORDS_MAX */
} word_list;

static int word_list_cb(void *ctx, const char *w, size_t n) {
  word_list *wl = ctx;
  if (wl->n == CS_QUERY_WORDS_MAX) {
    wl->over = true;
    return 1;
  }
  wl->w[wl->n] = w;
  wl->len[wl->n++] = n;
  return 0;
}

int ixq_count_words(const char *text, size_t len, fold_buf *fb, uint32_t *n) {
  int rc = fold_text(text, len, fb);
  if (rc) return rc;
  word_list wl = {.n = 0};
  fold_words(fb->ptr, fb->len, word_list_cb, &wl);
  *n = wl.over ? CS_QUERY_WORDS_MAX + 1 : wl.n;
  return 0;
}

/* ---------------------------------------------------------- typos */

/* Code points of a query word that typo tolerance handles; longer words
 * match exactly only (the allowance would be 2 typos in 65+ letters). */
#define FZ_CHARS_MAX CS_FUZZY_MAX_CHARS
#define FZ_DEPTH_MAX (FZ_CHARS_MAX + 2)
/* The longest seek key of a walk: a prefix of FZ_DEPTH_MAX + 1 code points
 * of 4 bytes, and 0xff. */
#define IX_KEY_SEEK_MAX (4 * (FZ_DEPTH_MAX + 1) + 1)

typedef struct fuzzy_walk {
  int32_t w[FZ_CHARS_MAX];
  int m, k;
  int32_t kc[FZ_DEPTH_MAX]; /* the current key's code points */
  uint8_t rows[FZ_DEPTH_MAX + 1][FZ_CHARS_MAX + 1];
  uint8_t rmin[FZ_DEPTH_MAX + 1];
  char seek[IX_KEY_SEEK_MAX];
} fuzzy_walk;

/* Row j (j >= 1) of the optimal string alignment distance between the
 * key's first j code points and the word, from rows j - 1 and j - 2. */
static void fz_row(fuzzy_walk *z, int j) {
  uint8_t *r = z->rows[j], *p = z->rows[j - 1];
  int32_t c = z->kc[j - 1];
  r[0] = (uint8_t)j;
  uint8_t mn = r[0];
  for (int i = 1; i <= z->m; i++) {
    int v = p[i] + 1;
    if (r[i - 1] + 1 < v) v = r[i - 1] + 1;
    int sub = p[i - 1] + (c != z->w[i - 1]);
    if (sub < v) v = sub;
    if (j > 1 && i > 1 && c == z->w[i - 2] && z->kc[j - 2] == z->w[i - 1] &&
        z->rows[j - 2][i - 2] + 1 < v)
      v = z->rows[j - 2][i - 2] + 1;
    r[i] = (uint8_t)v;
    if (r[i] < mn) mn = r[i];
  }
  z->rmin[j] = mn;
}

/*
 * Calls fn(ctx, post, typos) for every word of account in the sorted
 * dictionary d that has no digit and is 1..k typos from the word (the
 * word itself, 0 typos, is the caller's exact lookup). The walk visits the
 * keys in order as the paths of a trie: a key shares its rows with the
 * previous key for their common prefix, and once a prefix's row is over k
 * (no longer key can come back under k), the prefix holds a digit, or it
 * is longer than the word by more than k, every key below it is skipped
 * with one seek in the sorted order.
 */
static void fuzzy_each(const ix_dict *d, uint32_t account, fuzzy_walk *z,
                       void (*fn)(void *ctx, ix_post p, int typos), void *ctx) {
  uint8_t acct[4];
  acct_be(account, acct);
  for (int i = 0; i <= z->m; i++)
    z->rows[0][i] = (uint8_t)i;
  z->rmin[0] = 0;
  int depth_max = z->m + z->k, pd = 0; /* rows valid up to depth pd */
  uint32_t c, i;
  order_lower(d, account, "", 0, &c, &i);
  while (c < d->nchunks) {
    const ix_chunk *ch = &d->chunks[c];
    if (i >= ch->n) {
      c++, i = 0;
      continue;
    }
    uint32_t e = ch->v[i];
    size_t klen;
    const uint8_t *k = ent_key(d, e, &klen);
    if (memcmp(k, acct, 4)) return;
    const char *t = (const char *)k + 4;
    size_t tl = klen - 4, off = 0, n = 0;
    int j = 0;
    int32_t cp;
    while (j < pd && off < tl && (n = fold_next_cp(t + off, tl - off, &cp)) &&
           cp == z->kc[j])
      off += n, j++;
    bool prune = false;
    while (off < tl) {
      if (!(n = fold_next_cp(t + off, tl - off, &cp))) break;
      if (j == depth_max || fold_is_digit_cp(cp)) {
        prune = true;
        break;
      }
      z->kc[j] = cp;
      fz_row(z, j + 1);
      if (z->rmin[j + 1] > z->k) {
        prune = true;
        break;
      }
      off += n, j++;
    }
    pd = j;
    if (!prune) {
      int dist = off == tl ? z->rows[j][z->m] : 0;
      if (dist >= 1 && dist <= z->k) fn(ctx, d->ents[e].post, dist);
      i++;
      continue;
    }
    /* No key that starts with t's first j + 1 code points can match:
     * seek past them. UTF-8 never holds 0xff, so that prefix and 0xff
     * sorts after every key that starts with it. */
    size_t pl = off + n;
    memcpy(z->seek, t, pl);
    z->seek[pl] = (char)0xff;
    order_lower(d, account, z->seek, pl + 1, &c, &i);
  }
}

/* Sets up a walk for word (folded) with allowance k; false when the word
 * is too long for typo tolerance. */
static bool fuzzy_init(fuzzy_walk *z, const char *w, size_t len, int k) {
  z->m = 0;
  z->k = k;
  int32_t cp;
  for (size_t i = 0, n; i < len && (n = fold_next_cp(w + i, len - i, &cp));
       i += n) {
    if (z->m == FZ_CHARS_MAX) return false;
    z->w[z->m++] = cp;
  }
  return true;
}

static void or_cb(void *ctx, ix_post p, int typos) {
  (void)typos;
  post_or(p, ctx);
}

/* The typo allowance of a folded query word. */
static int word_allowance(const char *w, size_t len) {
  size_t chars;
  bool digit;
  fold_word_info(w, len, &chars, &digit);
  return cs_typo_allowance(chars, digit);
}

/* ----------------------------------------------------- one condition */

/* The intersection of the sets of each word (fuzzy: with typos, on field's
 * words), added to out. */
static int words_and(const ix_index *ix, uint32_t account, int field,
                     const word_list *wl, bool fuzzy, roaring_bitmap_t *out) {
  roaring_bitmap_t *acc = NULL;
  int rc = 0;
  fuzzy_walk *z = fuzzy ? malloc(sizeof *z) : NULL;
  if (fuzzy && !z) return -ENOMEM;
  for (uint32_t i = 0; i < wl->n; i++) {
    roaring_bitmap_t *ws = roaring_bitmap_create();
    if (!ws) {
      rc = -ENOMEM;
      break;
    }
    post_or(dict_post(&ix->words[field], account, wl->w[i], wl->len[i]), ws);
    int k = fuzzy ? word_allowance(wl->w[i], wl->len[i]) : 0;
    if (k && fuzzy_init(z, wl->w[i], wl->len[i], k))
      fuzzy_each(&ix->words[field], account, z, or_cb, ws);
    if (acc) {
      roaring_bitmap_and_inplace(acc, ws);
      ixq_set_free(ws);
    } else {
      acc = ws;
    }
    if (roaring_bitmap_is_empty(acc)) break;
  }
  if (acc && !rc) roaring_bitmap_or_inplace(out, acc);
  ixq_set_free(acc);
  free(z);
  return rc;
}

int ixq_match(const ix_index *ix, uint32_t account, int field, cs_op op,
              const char *raw, size_t len, fold_buf *fb,
              roaring_bitmap_t *out) {
  int rc = fold_key(field, raw, len, fb);
  if (rc || !fb->len) return rc;
  const ix_dict *d = &ix->exact[field];
  if (op == CS_OP_WORDS && field == CS_PHONE) op = CS_OP_EQ;
  switch (op) {
  case CS_OP_EQ:
    post_or(dict_post(d, account, fb->ptr, fb->len), out);
    return 0;
  case CS_OP_PREFIX:
    range_or(d, account, fb->ptr, fb->len, out);
    return 0;
  case CS_OP_WORDS:
  case CS_OP_FUZZY: {
    word_list wl = {.n = 0};
    fold_words(fb->ptr, fb->len, word_list_cb, &wl);
    if (wl.over) return CS_EINVAL;
    if (!wl.n) return 0;
    return words_and(ix, account, field, &wl, op == CS_OP_FUZZY, out);
  }
  default:
    return CS_EINVAL;
  }
}

int ixq_suffix(const ix_index *ix, uint32_t account, int field, const char *raw,
               size_t len, fold_buf *fb, roaring_bitmap_t *out, bool *verify) {
  *verify = false;
  int r = ix_rev_of(field);
  if (r < 0) return CS_EINVAL;
  int rc = fold_key(field, raw, len, fb);
  if (rc) return rc;
  if (cs_utf8_chars(fb->ptr, fb->len) < CS_QUERY_SUFFIX_MIN) return CS_EINVAL;
  const ix_dict *d = &ix->rev[r];
  cs_str tail = {fb->ptr, fb->len};
  bool whole = true; /* the term lies within the tail: a prefix range */
  if (field == CS_EMAIL) {
    const char *at = memrchr(fb->ptr, '@', fb->len);
    if (at) {
      tail = ix_tail(field, fb->ptr, fb->len);
      whole = false;
      *verify = at != fb->ptr; /* a part of the local name too */
    }
  } else if (fb->len > IX_PHONE_TAIL) {
    tail = ix_tail(field, fb->ptr, fb->len);
    whole = false;
    *verify = true;
  }
  fold_buf rb = {0};
  if ((rc = ix_reverse(tail.ptr, tail.len, &rb))) return rc;
  if (whole)
    range_or(d, account, rb.ptr, rb.len, out);
  else if (rb.len)
    post_or(dict_post(d, account, rb.ptr, rb.len), out);
  fold_buf_free(&rb);
  return 0;
}

/* ------------------------------------------------------- free text */

/* Field groups of relevance: names, email, company, job title, phone,
 * notes. */
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

/* A tier: how one word matched, in order of relevance (typos, then whole
 * before prefix, then the field group). */
static int tier_of(int typos, bool prefix, int group) {
  return typos * 12 + (prefix ? 6 : 0) + group;
}

typedef struct tier_sink {
  roaring_bitmap_t *all;   /* every match of the word */
  roaring_bitmap_t **tier; /* NULL: relevance not wanted */
  int group;
  int rc;
} tier_sink;

static roaring_bitmap_t *sink_for(tier_sink *s, int t) {
  if (!s->tier) return s->all;
  if (!s->tier[t] && !(s->tier[t] = roaring_bitmap_create())) {
    s->rc = -ENOMEM;
    return NULL;
  }
  return s->tier[t];
}

static void sink_post(tier_sink *s, int t, ix_post p) {
  if (!p) return;
  roaring_bitmap_t *b = sink_for(s, t);
  if (b) post_or(p, b);
}

static void sink_range(tier_sink *s, int t, const ix_dict *d, uint32_t acct,
                       const char *w, size_t len) {
  roaring_bitmap_t *b = sink_for(s, t);
  if (b) range_or(d, acct, w, len, b);
}

static void typo_cb(void *ctx, ix_post p, int typos) {
  tier_sink *s = ctx;
  sink_post(s, tier_of(typos, false, s->group), p);
}

/* Every way word w (the last one: also as a prefix) matches, into s. */
static void word_sets(const ix_index *ix, uint32_t account, const char *w,
                      size_t len, bool last, bool fuzzy, fuzzy_walk *z,
                      tier_sink *s) {
  int k = fuzzy ? word_allowance(w, len) : 0;
  bool typos = k && fuzzy_init(z, w, len, k);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    s->group = field_group(f);
    const ix_dict *d = f == CS_PHONE ? &ix->exact[f] : &ix->words[f];
    sink_post(s, tier_of(0, false, s->group), dict_post(d, account, w, len));
    if (last) sink_range(s, tier_of(0, true, s->group), d, account, w, len);
    if (typos && f != CS_PHONE && f != CS_EMAIL)
      fuzzy_each(d, account, z, typo_cb, s);
  }
  if (s->tier)
    for (int t = 0; t < IXQ_TIERS; t++)
      if (s->tier[t]) roaring_bitmap_or_inplace(s->all, s->tier[t]);
}

void ixq_text_free(ixq_text *t) {
  if (!t) return;
  for (uint32_t i = 0; t->tier && i < t->nwords; i++)
    for (int k = 0; k < IXQ_TIERS; k++)
      ixq_set_free(t->tier[i][k]);
  free(t->tier);
  ixq_set_free(t->set);
  memset(t, 0, sizeof *t);
}

int ixq_text_eval(const ix_index *ix, uint32_t account, const char *q,
                  size_t qlen, bool fuzzy, bool tiers, ixq_text *out) {
  memset(out, 0, sizeof *out);
  fold_buf fb = {0};
  int rc = fold_text(q, qlen, &fb);
  word_list wl = {.n = 0};
  if (!rc) fold_words(fb.ptr, fb.len, word_list_cb, &wl);
  fuzzy_walk *z = malloc(sizeof *z);
  if (!rc && (wl.over || !wl.n)) rc = CS_EINVAL;
  if (!rc && !z) rc = -ENOMEM;
  if (!rc && tiers && !(out->tier = calloc(wl.n, sizeof *out->tier)))
    rc = -ENOMEM;
  for (uint32_t i = 0; i < wl.n && !rc; i++) {
    roaring_bitmap_t *all = roaring_bitmap_create();
    if (!all) {
      rc = -ENOMEM;
      break;
    }
    if (tiers) out->nwords = i + 1;
    tier_sink s = {all, tiers ? out->tier[i] : NULL, 0, 0};
    word_sets(ix, account, wl.w[i], wl.len[i], i + 1 == wl.n, fuzzy, z, &s);
    rc = s.rc;
    if (!out->set) {
      out->set = all;
    } else {
      roaring_bitmap_and_inplace(out->set, all);
      ixq_set_free(all);
    }
    if (roaring_bitmap_is_empty(out->set)) break; /* no match: done */
  }
  out->nwords = tiers ? out->nwords : wl.n;
  free(z);
  fold_buf_free(&fb);
  if (rc) ixq_text_free(out);
  return rc;
}

/* ------------------------------------------------- dictionary walks */

uint64_t ixq_keys(const ix_index *ix, int field) {
  return ix->exact[field].live;
}

int ixq_times(const ix_index *ix, uint32_t slot, int64_t *created_ms,
              int64_t *updated_ms) {
  if (slot >= ix->ntms) return CS_EINVAL;
  *created_ms = ix->tms[2 * (size_t)slot];
  *updated_ms = ix->tms[2 * (size_t)slot + 1];
  return 0;
}

int ixq_first_slot(const ix_index *ix, uint32_t account, int field,
                   const char *key, size_t len, uint32_t *slot) {
  ix_post p = dict_post(&ix->exact[field], account, key, len);
  if (!p) return CS_ENOTFOUND;
  if (POST_IS_ONE(p))
    *slot = POST_ONE(p);
  else if (POST_IS_RB(p))
    *slot = roaring_bitmap_minimum(POST_RB(p));
  else
    *slot = POST_ARR(p)->v[0];
  return 0;
}

/* The slots of p that are in r, ascending, into *buf (grown); their
 * number. -1 when out of memory. */
static int64_t post_in(ix_post p, const roaring_bitmap_t *r, uint32_t **buf,
                       size_t *cap) {
  uint64_t n = post_card(p);
  if (n > *cap) {
    size_t c = *cap ? *cap : 256;
    while (c < n)
      c *= 2;
    uint32_t *b = realloc(*buf, c * sizeof(uint32_t));
    if (!b) return -1;
    *buf = b;
    *cap = c;
  }
  int64_t k = 0;
  if (POST_IS_ONE(p)) {
    if (roaring_bitmap_contains(r, POST_ONE(p))) (*buf)[k++] = POST_ONE(p);
  } else if (POST_IS_RB(p)) {
    roaring_bitmap_t *x = roaring_bitmap_and(POST_RB(p), r);
    if (!x) return -1;
    roaring_bitmap_to_uint32_array(x, *buf);
    k = (int64_t)roaring_bitmap_get_cardinality(x);
    ixq_set_free(x);
  } else {
    const ix_arr *a = POST_ARR(p);
    for (uint32_t i = 0; i < a->n; i++)
      if (roaring_bitmap_contains(r, a->v[i])) (*buf)[k++] = a->v[i];
  }
  return k;
}

static uint64_t post_count_in(ix_post p, const roaring_bitmap_t *r) {
  if (POST_IS_ONE(p)) return roaring_bitmap_contains(r, POST_ONE(p));
  if (POST_IS_RB(p)) return roaring_bitmap_and_cardinality(POST_RB(p), r);
  const ix_arr *a = POST_ARR(p);
  uint64_t k = 0;
  for (uint32_t i = 0; i < a->n; i++)
    k += roaring_bitmap_contains(r, a->v[i]);
  return k;
}

int ixq_walk(const ix_index *ix, uint32_t account, int field, bool desc,
             const cs_str *from, bool slots, const roaring_bitmap_t *r,
             ixq_walk_fn fn, void *ctx) {
  const ix_dict *d = &ix->exact[field];
  uint8_t acct[4];
  acct_be(account, acct);
  /* (c, i): the next key to visit going up, or the one after the next
   * going down */
  uint32_t c, i;
  if (from)
    order_lower(d, account, from->ptr, from->len, &c, &i);
  else
    order_lower(d, desc ? account + 1 : account, "", 0, &c, &i);
  if (desc && from && c < d->nchunks && i < d->chunks[c].n) {
    /* down from the last key <= from: that one too when it is from */
    size_t klen;
    const uint8_t *k = ent_key(d, d->chunks[c].v[i], &klen);
    if (key_cmp(k, klen, acct, from->ptr, from->len) == 0) i++;
  }
  uint32_t *buf = NULL;
  size_t cap = 0;
  int rc = 0;
  for (;;) {
    uint32_t e;
    if (!desc) {
      while (c < d->nchunks && i >= d->chunks[c].n)
        c++, i = 0;
      if (c >= d->nchunks) break;
      e = d->chunks[c].v[i++];
    } else {
      while (i == 0 && c > 0)
        i = d->chunks[--c].n;
      if (i == 0) break;
      e = d->chunks[c].v[--i];
    }
    size_t klen;
    const uint8_t *k = ent_key(d, e, &klen);
    if (memcmp(k, acct, 4)) break;
    ix_post p = d->ents[e].post;
    int64_t n;
    if (slots) {
      n = post_in(p, r, &buf, &cap);
      if (n < 0) {
        rc = -ENOMEM;
        break;
      }
    } else {
      n = (int64_t)post_count_in(p, r);
    }
    if (!n) continue;
    cs_str key = {(const char *)k + 4, klen - 4};
    if ((rc = fn(ctx, key, buf, (uint64_t)n))) break;
  }
  free(buf);
  return rc > 0 ? 0 : rc;
}
