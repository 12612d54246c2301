/*
 * ix_search.c: exact, prefix and words search, and the exact lookups.
 *
 * Why: searches run in many threads at once under the store's read lock
 * and must never write (invariant 4 in ix_int.h): each thread folds its
 * term into a buffer of its own, and all other state lives on the stack.
 * Results are the first slots >= a minimum in slot order, with the total
 * count, so a page costs the page, not the whole match: a prefix search
 * keeps the limit smallest slots in a heap over the output array, and a
 * words search walks the smallest list, probing the others.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"

/* How many slots of p are >= min. */
static uint64_t post_count_ge(ix_post p, uint32_t min) {
  if (POST_IS_ONE(p)) return POST_ONE(p) >= min;
  if (POST_IS_RB(p)) {
    const roaring_bitmap_t *r = POST_RB(p);
    uint64_t c = roaring_bitmap_get_cardinality(r);
    return min == 0 ? c : c - roaring_bitmap_rank(r, min - 1);
  }
  const ix_arr *a = POST_ARR(p);
  return a->n - lower_u32(a->v, a->n, min);
}

/* Writes up to limit slots >= min of p to out; returns how many. */
static uint32_t post_first_ge(ix_post p, uint32_t min, uint32_t *out,
                              uint32_t limit) {
  if (limit == 0) return 0;
  if (POST_IS_ONE(p)) {
    if (POST_ONE(p) < min) return 0;
    out[0] = POST_ONE(p);
    return 1;
  }
  if (POST_IS_RB(p)) {
    roaring_uint32_iterator_t it;
    roaring_init_iterator(POST_RB(p), &it);
    if (!roaring_move_uint32_iterator_equalorlarger(&it, min)) return 0;
    return roaring_read_uint32_iterator(&it, out, limit);
  }
  const ix_arr *a = POST_ARR(p);
  uint32_t i = lower_u32(a->v, a->n, min);
  uint32_t k = a->n - i < limit ? a->n - i : limit;
  memcpy(out, a->v + i, (size_t)k * 4);
  return k;
}

int ix_exact_slots(const ix_index *ix, uint32_t account, int field,
                   const char *key, size_t key_len,
                   int (*fn)(void *ctx, uint32_t slot), void *ctx) {
  if (field < 0 || field >= CS_FIELD_COUNT || (!key && key_len))
    return CS_EINVAL;
  const ix_dict *d = &ix->exact[field];
  uint32_t e = dict_find(d, account, key ? key : "", key_len,
                         key_hash(account, key ? key : "", key_len));
  if (e == IX_NONE) return 0;
  post_iter it;
  post_iter_init(&it, d->ents[e].post, 0);
  uint32_t s;
  while (post_iter_next(&it, &s)) {
    int rc = fn(ctx, s);
    if (rc) return rc;
  }
  return 0;
}

int ix_posting_kind(const ix_index *ix, uint32_t account, int field,
                    const char *key, size_t key_len) {
  if (field < 0 || field >= CS_FIELD_COUNT || (!key && key_len))
    return CS_EINVAL;
  const ix_dict *d = &ix->exact[field];
  key = key ? key : "";
  uint32_t e =
      dict_find(d, account, key, key_len, key_hash(account, key, key_len));
  if (e == IX_NONE) return 0;
  ix_post p = d->ents[e].post;
  return POST_IS_ONE(p) ? 1 : POST_IS_RB(p) ? 3 : 2;
}

/* Each searching thread folds its term into its own buffer, kept for the
 * thread's life and freed when it exits. */
static pthread_key_t ix_tls_key;
static pthread_once_t ix_tls_once = PTHREAD_ONCE_INIT;
static __thread fold_buf *ix_tls_buf;

static void ix_tls_free(void *p) {
  fold_buf_free(p);
  free(p);
}

static void ix_tls_init(void) {
  pthread_key_create(&ix_tls_key, ix_tls_free);
}

static fold_buf *ix_term_buf(void) {
  if (ix_tls_buf) return ix_tls_buf;
  pthread_once(&ix_tls_once, ix_tls_init);
  fold_buf *b = calloc(1, sizeof(*b));
  if (!b) return NULL;
  pthread_setspecific(ix_tls_key, b);
  ix_tls_buf = b;
  return b;
}

typedef struct ix_result {
  uint32_t *out;
  uint32_t limit, count;
  uint64_t total, ge;
} ix_result;

static void answer_one(ix_post p, uint32_t min, ix_result *r) {
  r->total = post_card(p);
  r->ge = post_count_ge(p, min);
  r->count = post_first_ge(p, min, r->out, r->limit);
}

/* Max-heap of the limit smallest slots seen, kept in the output array. */
static void heap_sift_down(uint32_t *h, uint32_t n, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, m = i;
    if (l < n && h[l] > h[m]) m = l;
    if (l + 1 < n && h[l + 1] > h[m]) m = l + 1;
    if (m == i) return;
    uint32_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static void heap_push(uint32_t *h, uint32_t n, uint32_t x) {
  uint32_t i = n;
  h[i] = x;
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (h[p] >= h[i]) break;
    uint32_t t = h[p];
    h[p] = h[i];
    h[i] = t;
    i = p;
  }
}

static void search_prefix(const ix_dict *d, uint32_t account, const char *t,
                          size_t tlen, uint32_t min, ix_result *r) {
  uint8_t acct[4];
  acct_be(account, acct);
  uint32_t c, i;
  order_lower(d, account, t, tlen, &c, &i);
  uint32_t *h = r->out, hn = 0;
  for (; c < d->nchunks; c++, i = 0) {
    const ix_chunk *ch = &d->chunks[c];
    for (; i < ch->n; i++) {
      size_t klen;
      const uint8_t *k = ent_key(d, ch->v[i], &klen);
      if (klen < tlen + 4 || memcmp(k, acct, 4) || memcmp(k + 4, t, tlen))
        goto done;
      ix_post p = d->ents[ch->v[i]].post;
      if (POST_IS_ONE(p)) {
        /* the common case: a unique value */
        uint32_t s = POST_ONE(p);
        r->total++;
        if (s < min) continue;
        r->ge++;
        if (hn < r->limit) {
          heap_push(h, hn++, s);
        } else if (r->limit && s < h[0]) {
          h[0] = s;
          heap_sift_down(h, hn, 0);
        }
        continue;
      }
      r->total += post_card(p);
      uint64_t g = post_count_ge(p, min);
      r->ge += g;
      if (!g || !r->limit) continue;
      post_iter it;
      post_iter_init(&it, p, min);
      uint32_t s;
      while (post_iter_next(&it, &s)) {
        if (hn < r->limit) {
          heap_push(h, hn++, s);
        } else if (s < h[0]) {
          h[0] = s;
          heap_sift_down(h, hn, 0);
        } else {
          break;
        }
      }
    }
  }
done:
  /* heap sort in place: ascending */
  r->count = hn;
  for (uint32_t n = hn; n > 1; n--) {
    uint32_t tmp = h[0];
    h[0] = h[n - 1];
    h[n - 1] = tmp;
    heap_sift_down(h, n - 1, 0);
  }
}

typedef struct term_words {
  const char **w;
  size_t *len;
  size_t n, cap;
  const char *w_stack[16];
  size_t len_stack[16];
} term_words;

static int term_word_cb(void *ctx, const char *w, size_t n) {
  term_words *tw = ctx;
  for (size_t i = 0; i < tw->n && i < 16; i++)
    if (tw->len[i] == n && !memcmp(tw->w[i], w, n))
      return 0; /* cheap duplicate check; the rest is done after sorting */
  if (tw->n == tw->cap) {
    size_t cap = tw->cap * 2;
    const char **a = malloc(cap * sizeof(*a));
    size_t *b = malloc(cap * sizeof(*b));
    if (!a || !b) {
      free(a);
      free(b);
      return -ENOMEM;
    }
    memcpy(a, tw->w, tw->n * sizeof(*a));
    memcpy(b, tw->len, tw->n * sizeof(*b));
    if (tw->w != tw->w_stack) {
      free(tw->w);
      free(tw->len);
    }
    tw->w = a;
    tw->len = b;
    tw->cap = cap;
  }
  tw->w[tw->n] = w;
  tw->len[tw->n] = n;
  tw->n++;
  return 0;
}

typedef struct post_ref {
  ix_post p;
  uint64_t card;
} post_ref;

static int post_ref_cmp(const void *a, const void *b) {
  const post_ref *x = a, *y = b;
  if (x->p != y->p) {
    if (x->card != y->card) return x->card < y->card ? -1 : 1;
    return x->p < y->p ? -1 : 1;
  }
  return 0;
}

static int search_words(const ix_dict *d, uint32_t account, const char *t,
                        size_t tlen, uint32_t min, ix_result *r) {
  term_words tw = {0};
  tw.w = tw.w_stack;
  tw.len = tw.len_stack;
  tw.cap = 16;
  int rc = fold_words(t, tlen, term_word_cb, &tw);
  post_ref refs_stack[16], *refs = refs_stack;
  if (rc) goto out;
  if (tw.n == 0) goto out;
  if (tw.n > 16 && !(refs = malloc(tw.n * sizeof(post_ref)))) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < tw.n; i++) {
    uint32_t e = dict_find(d, account, tw.w[i], tw.len[i],
                           key_hash(account, tw.w[i], tw.len[i]));
    if (e == IX_NONE) goto out; /* a word no value has: no match */
    refs[i].p = d->ents[e].post;
    refs[i].card = post_card(refs[i].p);
  }
  /* Smallest list first; the same word twice is the same list: drop it. */
  qsort(refs, tw.n, sizeof(post_ref), post_ref_cmp);
  size_t k = 1;
  for (size_t i = 1; i < tw.n; i++)
    if (refs[i].p != refs[k - 1].p) refs[k++] = refs[i];
  if (k == 1) {
    answer_one(refs[0].p, min, r);
    goto out;
  }
  bool all_rb = true;
  for (size_t i = 0; i < k; i++)
    all_rb &= POST_IS_RB(refs[i].p);
  if (!all_rb) {
    /* Probe each slot of the smallest list in the others. */
    post_iter it;
    post_iter_init(&it, refs[0].p, 0);
    uint32_t s;
    while (post_iter_next(&it, &s)) {
      size_t j = 1;
      while (j < k && post_contains(refs[j].p, s))
        j++;
      if (j < k) continue;
      r->total++;
      if (s < min) continue;
      r->ge++;
      if (r->count < r->limit) r->out[r->count++] = s;
    }
    goto out;
  }
  roaring_bitmap_t *acc =
      roaring_bitmap_and(POST_RB(refs[0].p), POST_RB(refs[1].p));
  if (!acc) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 2; i < k; i++)
    roaring_bitmap_and_inplace(acc, POST_RB(refs[i].p));
  answer_one((uint64_t)(uintptr_t)acc | 2u, min, r);
  roaring_bitmap_free(acc);
out:
  if (refs != refs_stack) free(refs);
  if (tw.w != tw.w_stack) {
    free(tw.w);
    free(tw.len);
  }
  return rc;
}

int ix_search(const ix_index *ix, uint32_t account, int field, cs_match match,
              const char *term, size_t term_len, uint32_t min_slot,
              uint32_t limit, uint32_t *slots_out, uint32_t *count_out,
              uint64_t *total_out, bool *more_out) {
  *count_out = 0;
  *total_out = 0;
  *more_out = false;
  if (field < 0 || field >= CS_FIELD_COUNT || (!term && term_len) ||
      (limit && !slots_out))
    return CS_EINVAL;
  if (match == CS_MATCH_DEFAULT)
    match = field == CS_NOTES ? CS_MATCH_WORDS : CS_MATCH_EXACT;
  if (match != CS_MATCH_EXACT && match != CS_MATCH_PREFIX &&
      match != CS_MATCH_WORDS)
    return CS_EINVAL; /* suffix: cs_search runs it as a query */
  /* A phone folds to one word of digits: words is exact there. */
  if (field == CS_PHONE && match == CS_MATCH_WORDS) match = CS_MATCH_EXACT;
  fold_buf *fb = ix_term_buf();
  if (!fb) return -ENOMEM;
  int rc = fold_key(field, term ? term : "", term_len, fb);
  if (rc) return rc;
  if (!fb->len) return 0;
  ix_result r = {slots_out, limit, 0, 0, 0};
  const ix_dict *d = &ix->exact[field];
  if (match == CS_MATCH_EXACT) {
    uint32_t e = dict_find(d, account, fb->ptr, fb->len,
                           key_hash(account, fb->ptr, fb->len));
    if (e != IX_NONE) answer_one(d->ents[e].post, min_slot, &r);
  } else if (match == CS_MATCH_PREFIX) {
    search_prefix(d, account, fb->ptr, fb->len, min_slot, &r);
  } else {
    rc = search_words(&ix->words[field], account, fb->ptr, fb->len, min_slot,
                      &r);
    if (rc) return rc;
  }
  *count_out = r.count;
  *total_out = r.total;
  *more_out = r.ge > r.count;
  return 0;
}
