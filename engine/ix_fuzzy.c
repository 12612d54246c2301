/*
 * ix_fuzzy.c: typo tolerance, the walk that finds the words of a sorted
 * words dictionary within a few typos of a query word.
 *
 * Why a walk over the sorted words: they are kept in order already (for
 * the prefix matches of q), so the walk adds no memory, where an index of
 * deletion variants would add a key per variant of every word (measured
 * on the benchmark's million contacts: 81,000 variants, 2.7 bytes a
 * contact, against 0.2 for the order of the dictionaries the walk reads).
 * Typos are optimal string alignment distance over code points (insert,
 * delete, substitute, swap of neighbours), computed a row per character
 * of the key and shared by keys with a common prefix, as on a trie.
 *
 * Reads only (invariant 4 of ix_int.h): each walk has its own state.
 */
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"

/* Code points of a query word that typo tolerance handles; longer words
 * match exactly only (the allowance would be 2 typos in 65+ letters). */
#define FZ_CHARS_MAX CS_FUZZY_MAX_CHARS
#define FZ_DEPTH_MAX (FZ_CHARS_MAX + 2)
/* Keys a walk looks at after a pruned one before it searches the order. */
#define FZ_PROBE 8
/* The longest seek key of a walk: a prefix of FZ_DEPTH_MAX + 1 code points
 * of 4 bytes, and 0xff. */
#define IX_KEY_SEEK_MAX (4 * (FZ_DEPTH_MAX + 1) + 1)

struct fuzzy_walk {
  int32_t w[FZ_CHARS_MAX];
  int m, k;
  int32_t kc[FZ_DEPTH_MAX]; /* the current key's code points */
  uint8_t rows[FZ_DEPTH_MAX + 1][FZ_CHARS_MAX + 1];
  uint8_t rmin[FZ_DEPTH_MAX + 1];
  char seek[IX_KEY_SEEK_MAX];
};

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
void fuzzy_each(const ix_dict *d, uint32_t account, fuzzy_walk *z,
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
    /* Most skipped subtrees hold a few keys: look at the next ones in the
     * chunk before searching the order. */
    uint32_t stop = i + FZ_PROBE < ch->n ? i + FZ_PROBE : ch->n;
    while (++i < stop) {
      size_t kl;
      const uint8_t *kk = ent_key(d, ch->v[i], &kl);
      if (key_cmp(kk, kl, acct, z->seek, pl + 1) >= 0) break;
    }
    if (i == stop) order_lower(d, account, z->seek, pl + 1, &c, &i);
  }
}

/* Sets up a walk for word (folded) with allowance k; false when the word
 * is too long for typo tolerance. */
bool fuzzy_init(fuzzy_walk *z, const char *w, size_t len, int k) {
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

/* The typo allowance of a folded query word. */
int word_allowance(const char *w, size_t len) {
  size_t chars;
  bool digit;
  fold_word_info(w, len, &chars, &digit);
  return cs_typo_allowance(chars, digit);
}

fuzzy_walk *fuzzy_new(void) {
  return malloc(sizeof(fuzzy_walk));
}

/* ------------------------------------------ one typo: deletion variants */

/*
 * Two words are within one typo (an insertion, a deletion, a substitution
 * or a swap of neighbours) only if one is the other, one is the other with
 * one code point deleted, or both give the same word with one deleted. So
 * each word of 4 to 9 code points without a digit (what a query word of 5
 * to 8 can be one typo from) keeps its one-deletion variants in typo[f],
 * each naming the word's entry; a query word's candidates are then a few
 * hash lookups, checked by the distance itself.
 */
#define TYPO_MIN_CHARS (CS_FUZZY_ONE_MIN_CHARS - 1)
#define TYPO_MAX_CHARS CS_FUZZY_TWO_MIN_CHARS

/* The byte offsets of the code points of w (and its end); their number,
 * or -1 when w is not a word the variants are kept for. */
static int typo_cuts(const char *w, size_t len,
                     size_t cut[TYPO_MAX_CHARS + 1]) {
  int n = 0;
  int32_t cp;
  size_t i = 0, k;
  while (i < len) {
    if (n == TYPO_MAX_CHARS || !(k = fold_next_cp(w + i, len - i, &cp)) ||
        fold_is_digit_cp(cp))
      return -1;
    cut[n++] = i;
    i += k;
  }
  cut[n] = len;
  return n >= TYPO_MIN_CHARS ? n : -1;
}

/* Writes w without its j-th code point into out; its length. */
static size_t typo_variant(const char *w, const size_t *cut, int n, int j,
                           char *out) {
  memcpy(out, w, cut[j]);
  memcpy(out + cut[j], w + cut[j + 1], cut[n] - cut[j + 1]);
  return cut[n] - (cut[j + 1] - cut[j]);
}

/* Removes (add false) or adds the variants of w naming entry e. */
static int typo_variants(ix_index *ix, int field, uint32_t account,
                         const char *w, size_t len, uint32_t e, bool add) {
  size_t cut[TYPO_MAX_CHARS + 1];
  int n = typo_cuts(w, len, cut);
  char v[4 * TYPO_MAX_CHARS];
  for (int j = 0; j < n; j++) {
    size_t vl = typo_variant(w, cut, n, j, v);
    if (!add) {
      dict_remove(&ix->typo[field], account, v, vl, e);
      continue;
    }
    int rc = dict_add(&ix->typo[field], false, account, v, vl,
                      key_hash(account, v, vl), e);
    if (rc) {
      typo_variants(ix, field, account, w, len, e, false);
      return rc;
    }
  }
  return 0;
}

void typo_word_removed(ix_index *ix, int field, uint32_t account, const char *w,
                       size_t len, uint32_t e) {
  typo_variants(ix, field, account, w, len, e, false);
}

int typo_word_added(ix_index *ix, int field, uint32_t account, const char *w,
                    size_t len, uint32_t e) {
  return typo_variants(ix, field, account, w, len, e, true);
}

/* One field's typo dictionary from its words (a task of typo_rebuild:
 * it touches typo[f] alone), fitted to its size. */
static int typo_rebuild_field(void *ctx, size_t i) {
  ix_index *ix = ctx;
  int f = (int)i;
  dict_deinit(&ix->typo[f]);
  if (!ix_typo_field(f)) return 0;
  const ix_dict *d = &ix->words[f];
  for (uint32_t e = 0; e < d->nents; e++) {
    if (!d->ents[e].post) continue;
    size_t klen;
    const uint8_t *k = ent_key(d, e, &klen);
    int rc =
        typo_word_added(ix, f, key_acct(k), (const char *)k + 4, klen - 4, e);
    if (rc) return rc;
  }
  dict_shrink(&ix->typo[f]);
  for (uint32_t e = 0; e < ix->typo[f].nents; e++)
    post_fit(&ix->typo[f], e);
  return 0;
}

int typo_rebuild(ix_index *ix) {
  return ix_par_each(CS_FIELD_COUNT, typo_rebuild_field, ix);
}

/* Optimal string alignment distance of two short code point strings. */
static int osa(const int32_t *a, int n, const int32_t *b, int m) {
  int d[TYPO_MAX_CHARS + 2][TYPO_MAX_CHARS + 2];
  for (int i = 0; i <= n; i++)
    d[i][0] = i;
  for (int j = 0; j <= m; j++)
    d[0][j] = j;
  for (int i = 1; i <= n; i++)
    for (int j = 1; j <= m; j++) {
      int v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  return d[n][m];
}

/* The code points of a word of at most TYPO_MAX_CHARS; -1 when longer. */
static int typo_cps(const char *w, size_t len, int32_t *out) {
  int n = 0;
  int32_t cp;
  for (size_t i = 0, k; i < len && (k = fold_next_cp(w + i, len - i, &cp));
       i += k) {
    if (n == TYPO_MAX_CHARS) return -1;
    out[n++] = cp;
  }
  return n;
}

/* Candidate words (entries); more than fit: the walk answers instead. */
#define TYPO_CANDS_MAX 1024

typedef struct typo_cands {
  uint32_t e[TYPO_CANDS_MAX];
  uint32_t n;
  bool over;
} typo_cands;

static void cands_add(typo_cands *c, uint32_t e) {
  if (c->n == TYPO_CANDS_MAX)
    c->over = true;
  else
    c->e[c->n++] = e;
}

static void cands_post(typo_cands *c, ix_post p) {
  if (!p) return;
  post_iter it;
  post_iter_init(&it, p, 0);
  uint32_t e;
  while (!c->over && post_iter_next(&it, &e))
    cands_add(c, e);
}

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* The words one typo from w (5 to 8 code points) by the variants; false
 * when the candidates overflow. */
static bool typo_one(const ix_index *ix, int field, uint32_t account,
                     const char *w, size_t len,
                     void (*fn)(void *ctx, ix_post p, int typos), void *ctx) {
  const ix_dict *wd = &ix->words[field], *td = &ix->typo[field];
  size_t cut[TYPO_MAX_CHARS + 1];
  int32_t wc[TYPO_MAX_CHARS];
  int n = typo_cuts(w, len, cut);
  if (n < 0 || typo_cps(w, len, wc) != n) return false;
  typo_cands *c = malloc(sizeof *c);
  if (!c) return false;
  c->n = 0;
  c->over = false;
  char v[4 * TYPO_MAX_CHARS];
  cands_post(c, dict_post(td, account, w, len)); /* w with one more */
  for (int j = 0; j < n && !c->over; j++) {
    size_t vl = typo_variant(w, cut, n, j, v);
    uint32_t e = dict_find(wd, account, v, vl, key_hash(account, v, vl));
    if (e != IX_NONE) cands_add(c, e);            /* w with one less */
    cands_post(c, dict_post(td, account, v, vl)); /* both with one less */
  }
  bool done = !c->over;
  if (done) qsort(c->e, c->n, sizeof c->e[0], u32_cmp);
  for (uint32_t i = 0; done && i < c->n; i++) {
    if (i && c->e[i] == c->e[i - 1]) continue;
    size_t klen;
    const uint8_t *k = ent_key(wd, c->e[i], &klen);
    int32_t kc[TYPO_MAX_CHARS];
    int m = typo_cps((const char *)k + 4, klen - 4, kc);
    bool digit = m < 0;
    for (int q = 0; q < m; q++)
      digit |= fold_is_digit_cp(kc[q]);
    if (!digit && osa(wc, n, kc, m) == 1) fn(ctx, wd->ents[c->e[i]].post, 1);
  }
  free(c);
  return done;
}

void typo_each(const ix_index *ix, int field, uint32_t account, fuzzy_walk *z,
               const char *w, size_t len, int k,
               void (*fn)(void *ctx, ix_post p, int typos), void *ctx) {
  if (k == 1 && !ix->bulk && typo_one(ix, field, account, w, len, fn, ctx))
    return;
  fuzzy_each(&ix->words[field], account, z, fn, ctx);
}
