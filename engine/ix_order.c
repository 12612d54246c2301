/*
 * ix_order.c: the sorted order of an exact dictionary, for prefix search.
 *
 * Why: a prefix search must find the first key >= its term in a million
 * keys and walk on in key order, while inserts and erases keep the order
 * current at a cost of a few hundred bytes moved. The order is a two-level
 * B-tree of chunks of entry numbers (layout and the prefixes kept beside
 * each entry: see ix_chunk in ix_int.h); a bulk load instead collects new
 * keys as pending and merges them once, after one sort.
 *
 * Invariants kept: outside bulk mode every key of an exact dictionary is in
 * the order exactly once, in memcmp-then-length order of its whole key
 * (account first); in bulk mode a key is either there or pending. No chunk
 * is empty; a chunk's header (first prefix, first and last accounts) and
 * its prefixes agree with its keys.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"

/* Moves n entries of ch from index from to index to (memmove). */
static void chunk_move(ix_chunk *ch, uint32_t to, uint32_t from, uint32_t n) {
  memmove(ch->v + to, ch->v + from, (size_t)n * 4);
  memmove(chunk_pb(ch) + to, chunk_pb(ch) + from, (size_t)n * 4);
  memmove(chunk_pa(ch) + to, chunk_pa(ch) + from, (size_t)n * 8);
}

/* Copies n entries from src at from to dst at to (distinct chunks). */
static void chunk_copy(ix_chunk *dst, uint32_t to, const ix_chunk *src,
                       uint32_t from, uint32_t n) {
  memcpy(dst->v + to, src->v + from, (size_t)n * 4);
  memcpy(chunk_pb(dst) + to, chunk_pb(src) + from, (size_t)n * 4);
  memcpy(chunk_pa(dst) + to, chunk_pa(src) + from, (size_t)n * 8);
}

/* Refreshes chunk c's header from its body (after its ends changed). */
void chunk_fix(ix_dict *d, uint32_t c) {
  ix_chunk *ch = &d->chunks[c];
  CS_ASSERT(ch->n > 0);
  size_t len;
  ch->pa0 = chunk_pa(ch)[0];
  ch->pb0 = chunk_pb(ch)[0];
  ch->acct0 = key_acct(ent_key(d, ch->v[0], &len));
  ch->acct1 = key_acct(ent_key(d, ch->v[ch->n - 1], &len));
}

/* A key being looked for in the order. */
typedef struct order_target {
  uint32_t acct;
  uint8_t acct_be[4];
  const char *text;
  size_t tlen;
  ix_pfx pk;
} order_target;

static void target_init(order_target *t, uint32_t account, const char *text,
                        size_t tlen) {
  t->acct = account;
  acct_be(account, t->acct_be);
  t->text = text;
  t->tlen = tlen;
  t->pk = text_pk((const uint8_t *)text, tlen);
}

/* Compares entry e (of account acct, prefix pk) with the target. */
static inline int order_cmp(const ix_dict *d, uint32_t e, uint32_t acct,
                            uint64_t pa, uint32_t pb, const order_target *t) {
  if (acct != t->acct) return acct < t->acct ? -1 : 1;
  int c = pfx_cmp(pa, pb, &t->pk);
  if (c) return c;
  size_t klen;
  const uint8_t *k = ent_key(d, e, &klen);
  return key_cmp(k, klen, t->acct_be, t->text, t->tlen);
}

/* The position of the first key >= the target: chunk *c, index *i
 * (*c == nchunks at the end). */
static void order_lower_t(const ix_dict *d, const order_target *t,
                          uint32_t *c_out, uint32_t *i_out) {
  /* k = number of chunks whose first key is < target */
  uint32_t lo = 0, hi = d->nchunks;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    const ix_chunk *ch = &d->chunks[mid];
    if (order_cmp(d, ch->v[0], ch->acct0, ch->pa0, ch->pb0, t) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) {
    *c_out = 0;
    *i_out = 0;
    return;
  }
  uint32_t c = lo - 1;
  const ix_chunk *ch = &d->chunks[c];
  const uint64_t *pa = chunk_pa(ch);
  const uint32_t *pb = chunk_pb(ch);
  uint32_t a = 1, b = ch->n; /* v[0] < target already */
  if (ch->acct1 < t->acct) {
    a = b; /* the whole chunk is of smaller accounts */
  } else if (ch->acct0 == ch->acct1) {
    /* one account, the target's (acct0 <= t->acct <= acct1) */
    while (a < b) {
      uint32_t mid = a + (b - a) / 2;
      if (order_cmp(d, ch->v[mid], t->acct, pa[mid], pb[mid], t) < 0)
        a = mid + 1;
      else
        b = mid;
    }
  } else {
    /* a chunk across accounts (rare): whole keys */
    while (a < b) {
      uint32_t mid = a + (b - a) / 2;
      size_t klen;
      const uint8_t *k = ent_key(d, ch->v[mid], &klen);
      if (key_cmp(k, klen, t->acct_be, t->text, t->tlen) < 0)
        a = mid + 1;
      else
        b = mid;
    }
  }
  if (a == ch->n) {
    *c_out = c + 1;
    *i_out = 0;
  } else {
    *c_out = c;
    *i_out = a;
  }
}

void order_lower(const ix_dict *d, uint32_t account, const char *text,
                 size_t tlen, uint32_t *c_out, uint32_t *i_out) {
  order_target t;
  target_init(&t, account, text, tlen);
  order_lower_t(d, &t, c_out, i_out);
}

static int chunks_reserve(ix_dict *d, uint32_t n) {
  if (n <= d->chunks_cap) return 0;
  uint32_t cap = d->chunks_cap ? d->chunks_cap * 2 : 16;
  while (cap < n)
    cap *= 2;
  ix_chunk *p = realloc(d->chunks, (size_t)cap * sizeof(ix_chunk));
  if (!p) return -ENOMEM;
  d->chunks = p;
  d->chunks_cap = cap;
  return 0;
}

/* Makes room in the full chunk *c for an insert at *i by moving some of
 * its entries to a neighbour with room (the rotation of a B*-tree), and
 * points (*c, *i) at where the insert now goes. false when neither
 * neighbour has IX_SPILL_MIN free entries (then the chunk splits). Splits
 * alone leave chunks about 73% full under random inserts (82% with it), and
 * their bodies are 16 bytes an entry of a million-key dictionary. */
static bool order_spill(ix_dict *d, uint32_t *c, uint32_t *i) {
  ix_chunk *ch = &d->chunks[*c];
  if (*c + 1 < d->nchunks &&
      d->chunks[*c + 1].n <= IX_CHUNK_CAP - IX_SPILL_MIN) {
    ix_chunk *nx = &d->chunks[*c + 1];
    uint32_t m = (IX_CHUNK_CAP - nx->n) / 2;
    chunk_move(nx, m, 0, nx->n);
    chunk_copy(nx, 0, ch, ch->n - m, m);
    nx->n += m;
    ch->n -= m;
    chunk_fix(d, *c);
    chunk_fix(d, *c + 1);
    if (*i > ch->n) {
      *i -= ch->n;
      (*c)++;
    }
    return true;
  }
  if (*c > 0 && d->chunks[*c - 1].n <= IX_CHUNK_CAP - IX_SPILL_MIN) {
    ix_chunk *pv = &d->chunks[*c - 1];
    uint32_t m = (IX_CHUNK_CAP - pv->n) / 2, pn = pv->n;
    chunk_copy(pv, pn, ch, 0, m);
    pv->n += m;
    chunk_move(ch, 0, m, ch->n - m);
    ch->n -= m;
    chunk_fix(d, *c - 1);
    chunk_fix(d, *c);
    if (*i < m) {
      *i += pn;
      (*c)--;
    } else {
      *i -= m;
    }
    return true;
  }
  return false;
}

int order_insert(ix_dict *d, uint32_t e) {
  size_t klen;
  const uint8_t *k = ent_key(d, e, &klen);
  order_target t;
  target_init(&t, key_acct(k), (const char *)k + 4, klen - 4);
  if (d->nchunks == 0) {
    if (chunks_reserve(d, 1)) return -ENOMEM;
    uint32_t *v = malloc(IX_CHUNK_BYTES);
    if (!v) return -ENOMEM;
    d->chunks[0] = (ix_chunk){0, 0, 0, 0, 1, v};
    chunk_set(&d->chunks[0], 0, e, t.pk);
    d->nchunks = 1;
    chunk_fix(d, 0);
    return 0;
  }
  uint32_t c, i;
  order_lower_t(d, &t, &c, &i);
  if (c == d->nchunks ||
      (i == 0 && c > 0 && d->chunks[c - 1].n < IX_CHUNK_CAP)) {
    c--;
    i = d->chunks[c].n;
  }
  ix_chunk *ch = &d->chunks[c];
  if (ch->n == IX_CHUNK_CAP && order_spill(d, &c, &i)) ch = &d->chunks[c];
  if (ch->n == IX_CHUNK_CAP) {
    if (chunks_reserve(d, d->nchunks + 1)) return -ENOMEM;
    uint32_t *v = malloc(IX_CHUNK_BYTES);
    if (!v) return -ENOMEM;
    ch = &d->chunks[c];
    uint32_t half = IX_CHUNK_CAP / 2;
    memmove(d->chunks + c + 2, d->chunks + c + 1,
            (size_t)(d->nchunks - c - 1) * sizeof(ix_chunk));
    ix_chunk *nx = &d->chunks[c + 1];
    *nx = (ix_chunk){0, 0, 0, 0, IX_CHUNK_CAP - half, v};
    chunk_copy(nx, 0, ch, half, IX_CHUNK_CAP - half);
    d->nchunks++;
    ch->n = half;
    chunk_fix(d, c);
    chunk_fix(d, c + 1);
    if (i > half) {
      ch = nx;
      c++;
      i -= half;
    }
  }
  CS_ASSERT(ch->n < IX_CHUNK_CAP && i <= ch->n);
  chunk_move(ch, i + 1, i, ch->n - i);
  chunk_set(ch, i, e, t.pk);
  ch->n++;
  if (i == 0) {
    ch->pa0 = t.pk.a;
    ch->pb0 = t.pk.b;
    ch->acct0 = t.acct;
  }
  if (i == ch->n - 1) ch->acct1 = t.acct;
  return 0;
}

void order_remove(ix_dict *d, uint32_t e) {
  size_t klen;
  const uint8_t *k = ent_key(d, e, &klen);
  uint32_t c, i;
  order_lower(d, key_acct(k), (const char *)k + 4, klen - 4, &c, &i);
  if (c >= d->nchunks || d->chunks[c].v[i] != e) {
    /* Not in the order: a key added in bulk mode and not yet merged. It
     * stays in the pending list, where the merge drops it (its entry is
     * free by then, or named twice once reused): finding it there here
     * would cost a scan of every pending key, per removal (a replay that
     * deletes many of the keys it added in bulk mode). */
    CS_ASSERT(d->npending > 0);
    return;
  }
  ix_chunk *ch = &d->chunks[c];
  chunk_move(ch, i, i + 1, ch->n - i - 1);
  ch->n--;
  if (ch->n == 0) {
    free(ch->v);
    memmove(d->chunks + c, d->chunks + c + 1,
            (size_t)(d->nchunks - c - 1) * sizeof(ix_chunk));
    d->nchunks--;
    return;
  }
  /* Merge a thin chunk into its right neighbour when both fit in 3/4 of a
   * chunk, so the chunk count tracks the key count. */
  if (c + 1 < d->nchunks && ch->n < IX_CHUNK_CAP / 4 &&
      ch->n + d->chunks[c + 1].n <= IX_CHUNK_CAP * 3 / 4) {
    ix_chunk *nx = &d->chunks[c + 1];
    chunk_copy(ch, ch->n, nx, 0, nx->n);
    ch->n += nx->n;
    free(nx->v);
    memmove(d->chunks + c + 1, d->chunks + c + 2,
            (size_t)(d->nchunks - c - 2) * sizeof(ix_chunk));
    d->nchunks--;
    chunk_fix(d, c);
    return;
  }
  if (i == 0 || i == ch->n) chunk_fix(d, c);
}

/* ------------------------------------------------- bulk sort and merge */

typedef struct ix_sitem {
  uint64_t k0, k1;
  uint32_t e;
} ix_sitem;

/* 8 bytes of key from off, big-endian, zero-padded past the end. Keys
 * never hold a NUL past their account prefix, so padding sorts a shorter
 * key before any longer one sharing its bytes, as memcmp order wants. */
static uint64_t key_word(const uint8_t *k, size_t len, size_t off) {
  uint64_t w = 0;
  for (size_t i = 0; i < 8; i++)
    w = w << 8 | (off + i < len ? k[off + i] : 0);
  return w;
}

static void sitem_load(const ix_dict *d, ix_sitem *it, size_t off) {
  size_t len;
  const uint8_t *k = ent_key(d, it->e, &len);
  it->k0 = key_word(k, len, off);
  it->k1 = key_word(k, len, off + 8);
}

static inline int sitem_cmp(const ix_sitem *a, const ix_sitem *b) {
  if (a->k0 != b->k0) return a->k0 < b->k0 ? -1 : 1;
  if (a->k1 != b->k1) return a->k1 < b->k1 ? -1 : 1;
  return 0;
}

static uint64_t sort_rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Three-way quicksort on (k0, k1) with random pivots: expected n log n
 * whatever order the keys arrived in. */
static void sitem_qsort(ix_sitem *a, size_t n, uint64_t *rng) {
  while (n > 16) {
    ix_sitem p = a[sort_rng(rng) % n];
    size_t lt = 0, i = 0, gt = n;
    while (i < gt) {
      int c = sitem_cmp(&a[i], &p);
      if (c < 0) {
        ix_sitem t = a[lt];
        a[lt++] = a[i];
        a[i++] = t;
      } else if (c > 0) {
        ix_sitem t = a[--gt];
        a[gt] = a[i];
        a[i] = t;
      } else {
        i++;
      }
    }
    /* recurse into the smaller side, loop on the larger */
    if (lt < n - gt) {
      sitem_qsort(a, lt, rng);
      a += gt;
      n -= gt;
    } else {
      sitem_qsort(a + gt, n - gt, rng);
      n = lt;
    }
  }
  for (size_t i = 1; i < n; i++) {
    ix_sitem t = a[i];
    size_t j = i;
    while (j > 0 && sitem_cmp(&t, &a[j - 1]) < 0) {
      a[j] = a[j - 1];
      j--;
    }
    a[j] = t;
  }
}

/* Sorts by whole keys: 16 bytes at a time from off, then each run that
 * ties on those 16 bytes by the next 16. */
static void sitem_sort(const ix_dict *d, ix_sitem *a, size_t n, size_t off,
                       uint64_t *rng) {
  sitem_qsort(a, n, rng);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && !sitem_cmp(&a[i], &a[j]))
      j++;
    if (j - i > 1) {
      bool longer = false;
      for (size_t t = i; t < j; t++) {
        size_t len;
        ent_key(d, a[t].e, &len);
        longer |= len > off + 16;
        sitem_load(d, &a[t], off + 16);
      }
      if (longer) sitem_sort(d, a + i, j - i, off + 16, rng);
    }
    i = j;
  }
}

/* Merges the pending keys into the order: one sort, one linear merge. */
int order_merge_pending(ix_dict *d) {
  if (!d->npending) return 0;
  ix_sitem *s = malloc((size_t)d->npending * sizeof(ix_sitem));
  uint8_t *seen = calloc((size_t)d->nents / 8 + 1, 1);
  if (!s || !seen) {
    free(s);
    free(seen);
    return -ENOMEM;
  }
  /* The pending keys that are still keys, each once (order_remove leaves
   * a removed one here: free now, or reused and so named twice). */
  size_t np = 0;
  for (uint32_t i = 0; i < d->npending; i++) {
    uint32_t e = d->pending[i];
    if (!d->ents[e].post || (seen[e / 8] & (1u << (e % 8)))) continue;
    seen[e / 8] |= (uint8_t)(1u << (e % 8));
    s[np].e = e;
    sitem_load(d, &s[np++], 0);
  }
  free(seen);
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  sitem_sort(d, s, np, 0, &rng);

  uint64_t total = (uint64_t)d->live;
  uint32_t nch = (uint32_t)((total + IX_CHUNK_FILL - 1) / IX_CHUNK_FILL);
  ix_chunk *out = calloc(nch ? nch : 1, sizeof(ix_chunk));
  if (!out) {
    free(s);
    return -ENOMEM;
  }
  for (uint32_t c = 0; c < nch; c++) {
    out[c].v = malloc(IX_CHUNK_BYTES);
    if (!out[c].v) {
      for (uint32_t j = 0; j < c; j++)
        free(out[j].v);
      free(out);
      free(s);
      return -ENOMEM;
    }
  }
  uint32_t oc = 0, oi = 0;
  size_t pi = 0;
  uint32_t cc = 0, ci = 0;
#define IX_EMIT(ent, pk)                                                       \
  do {                                                                         \
    if (oi == IX_CHUNK_FILL) {                                                 \
      out[oc++].n = oi;                                                        \
      oi = 0;                                                                  \
    }                                                                          \
    chunk_set(&out[oc], oi++, (ent), (pk));                                    \
  } while (0)
  while (cc < d->nchunks || pi < np) {
    uint32_t take;
    ix_pfx tpk;
    if (cc == d->nchunks) {
      size_t lb;
      const uint8_t *kb = ent_key(d, s[pi].e, &lb);
      tpk = text_pk(kb + 4, lb - 4);
      take = s[pi++].e;
    } else if (pi == np) {
      tpk =
          (ix_pfx){chunk_pa(&d->chunks[cc])[ci], chunk_pb(&d->chunks[cc])[ci]};
      take = d->chunks[cc].v[ci];
      if (++ci == d->chunks[cc].n) {
        cc++;
        ci = 0;
      }
    } else {
      size_t la, lb;
      const uint8_t *ka = ent_key(d, d->chunks[cc].v[ci], &la);
      const uint8_t *kb = ent_key(d, s[pi].e, &lb);
      if (key_cmp_raw(ka, la, kb, lb) < 0) {
        tpk = (ix_pfx){chunk_pa(&d->chunks[cc])[ci],
                       chunk_pb(&d->chunks[cc])[ci]};
        take = d->chunks[cc].v[ci];
        if (++ci == d->chunks[cc].n) {
          cc++;
          ci = 0;
        }
      } else {
        tpk = text_pk(kb + 4, lb - 4);
        take = s[pi++].e;
      }
    }
    IX_EMIT(take, tpk);
  }
#undef IX_EMIT
  if (oi) out[oc++].n = oi;
  for (uint32_t c = oc; c < nch; c++)
    free(out[c].v);
  for (uint32_t c = 0; c < d->nchunks; c++)
    free(d->chunks[c].v);
  free(d->chunks);
  d->chunks = out;
  d->nchunks = oc;
  d->chunks_cap = nch ? nch : 1;
  d->npending = 0;
  for (uint32_t c = 0; c < oc; c++)
    chunk_fix(d, c);
  free(s);
  return 0;
}
