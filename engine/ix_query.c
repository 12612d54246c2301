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
  post_or(dict_post(&ix->meta, account, &IX_META_ABSENT[field], 1), out);
  return 0;
}

int ixq_empty(const ix_index *ix, uint32_t account, int field,
              roaring_bitmap_t *out) {
  post_or(dict_post(&ix->meta, account, &IX_META_EMPTY[field], 1), out);
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

/* ----------------------------------------------------- one condition */

static void or_cb(void *ctx, ix_post p, int typos) {
  (void)typos;
  post_or(p, ctx);
}

/* The intersection of the sets of each word (fuzzy: with typos, on field's
 * words), added to out. */
static int words_and(const ix_index *ix, uint32_t account, int field,
                     const word_list *wl, bool fuzzy, roaring_bitmap_t *out) {
  roaring_bitmap_t *acc = NULL;
  int rc = 0;
  fuzzy_walk *z = fuzzy ? fuzzy_new() : NULL;
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

/* One way a word of q matches: a posting list and the tier it gives. */
typedef struct tref {
  ix_post p;
  int tier;
} tref;

/* Every way one word matches, gathered before any set is built, so that
 * the rarest word's set is built first and the others only within it. */
typedef struct word_refs {
  tref *v;
  size_t n, cap;
  uint64_t est; /* the sum of the lists' sizes: at least the set's size */
  int tier;     /* the tier of what is being added */
  int rc;
} word_refs;

static void refs_add(word_refs *w, ix_post p, int tier) {
  if (!p || w->rc) return;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 32;
    tref *v = realloc(w->v, cap * sizeof(tref));
    if (!v) {
      w->rc = -ENOMEM;
      return;
    }
    w->v = v;
    w->cap = cap;
  }
  w->v[w->n++] = (tref){p, tier};
  w->est += post_card(p);
}

static void refs_range(word_refs *w, const ix_dict *d, uint32_t account,
                       const char *t, size_t len, int tier) {
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
      refs_add(w, d->ents[ch->v[i]].post, tier);
    }
  }
}

static void typo_ref(void *ctx, ix_post p, int typos) {
  word_refs *w = ctx;
  refs_add(w, p, w->tier + typos * 12);
}

/* Every way word w (the last one: also as a prefix) matches. */
static void word_refs_of(const ix_index *ix, uint32_t account, const char *w,
                         size_t len, bool last, bool fuzzy, fuzzy_walk *z,
                         word_refs *out) {
  int k = fuzzy ? word_allowance(w, len) : 0;
  bool typos = k && fuzzy_init(z, w, len, k);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    int g = field_group(f);
    const ix_dict *d = f == CS_PHONE ? &ix->exact[f] : &ix->words[f];
    refs_add(out, dict_post(d, account, w, len), tier_of(0, false, g));
    if (last) refs_range(out, d, account, w, len, tier_of(0, true, g));
    if (typos && f != CS_PHONE && f != CS_EMAIL) {
      out->tier = tier_of(0, false, g);
      fuzzy_each(d, account, z, typo_ref, out);
    }
  }
}

/* A set as a sorted array, for intersecting many posting lists with it. */
typedef struct uset {
  const roaring_bitmap_t *b;
  uint32_t *v;
  uint32_t n;
} uset;

/* Adds the slots of v[0..n) that are in u to out: a merge that gallops
 * over the longer side. */
static void arr_and_into(const uint32_t *v, uint32_t n, const uset *u,
                         roaring_bitmap_t *out) {
  const uint32_t *x = v, *y = u->v;
  uint32_t nx = n, ny = u->n, i = 0, j = 0;
  if (nx > ny) {
    const uint32_t *t = x;
    x = y, y = t;
    uint32_t tn = nx;
    nx = ny, ny = tn;
  }
  while (i < nx && j < ny) {
    uint32_t want = x[i];
    if (y[j] < want) {
      /* gallop: the first y >= want */
      uint32_t step = 1, lo = j;
      while (j + step < ny && y[j + step] < want)
        lo = j + step, step *= 2;
      uint32_t hi = j + step < ny ? j + step : ny;
      j = lo + lower_u32(y + lo, hi - lo, want);
      if (j >= ny) break;
    }
    if (y[j] == want) {
      roaring_bitmap_add(out, want);
      j++;
    }
    i++;
  }
}

/* Adds the slots of p that are in u (NULL: all of them) to out. */
static int post_and_into(ix_post p, const uset *u, roaring_bitmap_t *out) {
  if (!u) {
    post_or(p, out);
    return 0;
  }
  if (POST_IS_ONE(p)) {
    uint32_t s = POST_ONE(p), j = lower_u32(u->v, u->n, s);
    if (j < u->n && u->v[j] == s) roaring_bitmap_add(out, s);
    return 0;
  }
  if (POST_IS_RB(p)) {
    roaring_bitmap_t *x = roaring_bitmap_and(POST_RB(p), u->b);
    if (!x) return -ENOMEM;
    roaring_bitmap_or_inplace(out, x);
    ixq_set_free(x);
    return 0;
  }
  arr_and_into(POST_ARR(p)->v, POST_ARR(p)->n, u, out);
  return 0;
}

/* The set of one word within u (NULL: all), and with tiers its slots per
 * tier. */
static int word_set(const word_refs *w, const roaring_bitmap_t *u,
                    roaring_bitmap_t **tier, roaring_bitmap_t **out) {
  roaring_bitmap_t *all = roaring_bitmap_create();
  uset us = {u, NULL, 0};
  int rc = all ? 0 : -ENOMEM;
  if (!rc && u) {
    us.n = (uint32_t)roaring_bitmap_get_cardinality(u);
    if (!(us.v = malloc(((size_t)us.n + 1) * sizeof(uint32_t))))
      rc = -ENOMEM;
    else
      roaring_bitmap_to_uint32_array(u, us.v);
  }
  for (size_t i = 0; i < w->n && !rc; i++) {
    roaring_bitmap_t *into = all;
    if (tier) {
      int t = w->v[i].tier;
      if (!tier[t] && !(tier[t] = roaring_bitmap_create())) {
        rc = -ENOMEM;
        break;
      }
      into = tier[t];
    }
    rc = post_and_into(w->v[i].p, u ? &us : NULL, into);
  }
  for (int t = 0; tier && t < IXQ_TIERS && !rc; t++)
    if (tier[t]) roaring_bitmap_or_inplace(all, tier[t]);
  free(us.v);
  if (rc) {
    ixq_set_free(all);
    return rc;
  }
  *out = all;
  return 0;
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

static int est_cmp(const void *a, const void *b) {
  const word_refs *const *x = a, *const *y = b;
  return ((*x)->est > (*y)->est) - ((*x)->est < (*y)->est);
}

/* The words' sets, rarest first, each within the ones before. */
static int text_sets(word_refs *w, uint32_t n, bool tiers, ixq_text *out) {
  word_refs *order[CS_QUERY_WORDS_MAX];
  for (uint32_t i = 0; i < n; i++)
    order[i] = &w[i];
  qsort(order, n, sizeof order[0], est_cmp);
  int rc = 0;
  for (uint32_t i = 0; i < n && !rc; i++) {
    uint32_t wi = (uint32_t)(order[i] - w);
    roaring_bitmap_t *set;
    rc = word_set(order[i], out->set, tiers ? out->tier[wi] : NULL, &set);
    if (rc) break;
    ixq_set_free(out->set);
    out->set = set; /* within the last one: the intersection so far */
    if (roaring_bitmap_is_empty(set)) break; /* no match: done */
  }
  return rc;
}

int ixq_text_eval(const ix_index *ix, uint32_t account, const char *q,
                  size_t qlen, bool fuzzy, bool tiers, ixq_text *out) {
  memset(out, 0, sizeof *out);
  fold_buf fb = {0};
  int rc = fold_text(q, qlen, &fb);
  word_list wl = {.n = 0};
  if (!rc) fold_words(fb.ptr, fb.len, word_list_cb, &wl);
  fuzzy_walk *z = fuzzy_new();
  word_refs *w = calloc(wl.n ? wl.n : 1, sizeof *w);
  if (!rc && (wl.over || !wl.n)) rc = CS_EINVAL;
  if (!rc && (!z || !w)) rc = -ENOMEM;
  if (!rc && tiers && !(out->tier = calloc(wl.n, sizeof *out->tier)))
    rc = -ENOMEM;
  if (!rc && tiers) out->nwords = wl.n;
  for (uint32_t i = 0; i < wl.n && !rc; i++) {
    word_refs_of(ix, account, wl.w[i], wl.len[i], i + 1 == wl.n, fuzzy, z,
                 &w[i]);
    rc = w[i].rc;
  }
  if (!rc) rc = text_sets(w, wl.n, tiers, out);
  if (!rc && !out->set && !(out->set = roaring_bitmap_create())) rc = -ENOMEM;
  if (!tiers) out->nwords = wl.n;
  for (uint32_t i = 0; w && i < wl.n; i++)
    free(w[i].v);
  free(w);
  free(z);
  fold_buf_free(&fb);
  if (rc) ixq_text_free(out);
  return rc;
}
