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
