/*
 * ix_dict.c: a dictionary as a whole: keys with their posting lists.
 *
 * Why: adding or removing one slot under one key touches up to four
 * structures (entries, arena, hash table, sorted order) and the posting
 * list; this file is the one place that keeps them in step, so that a key
 * exists exactly while its list is non-empty (invariant 1 in ix_int.h), and
 * where bulk mode stages slots of existing keys to apply them in entry
 * order.
 *
 * Invariants kept: a failed add leaves the dictionary as it was (every
 * allocation comes before the first change); in bulk mode staged pairs
 * name live entries and are applied before any erase.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ix_int.h"

typedef struct par_run {
  size_t n;
  int (*fn)(void *ctx, size_t i);
  void *ctx;
  atomic_size_t next;
  atomic_int rc;
} par_run;

static void *par_worker(void *arg) {
  par_run *p = arg;
  for (;;) {
    size_t i = atomic_fetch_add(&p->next, 1);
    if (i >= p->n || atomic_load(&p->rc)) break;
    int r = p->fn(p->ctx, i);
    int zero = 0;
    if (r) atomic_compare_exchange_strong(&p->rc, &zero, r);
  }
  return NULL;
}

int ix_par_each(size_t n, int (*fn)(void *ctx, size_t i), void *ctx) {
  par_run p = {n, fn, ctx, 0, 0};
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  size_t threads = cpus > 0 ? (size_t)cpus : 1;
  if (threads > IX_PAR_THREADS) threads = IX_PAR_THREADS;
  if (threads > n) threads = n;
  pthread_t tid[IX_PAR_THREADS];
  size_t started = 0;
  /* A thread that cannot start leaves its share to the others. */
  while (started + 1 < threads &&
         pthread_create(&tid[started], NULL, par_worker, &p) == 0)
    started++;
  par_worker(&p);
  for (size_t t = 0; t < started; t++)
    pthread_join(tid[t], NULL);
  return atomic_load(&p.rc);
}

void dict_init(ix_dict *d, bool sorted) {
  memset(d, 0, sizeof(*d));
  d->free_head = IX_NONE;
  d->sorted = sorted;
}

void dict_deinit(ix_dict *d) {
  for (uint32_t e = 0; e < d->nents; e++)
    post_free(d, d->ents[e].post);
  for (uint32_t c = 0; c < d->nchunks; c++)
    free(d->chunks[c].v);
  free(d->chunks);
  free(d->ents);
  free(d->tab);
  free(d->arena);
  free(d->pending);
  free(d->big);
  free(d->stage);
  dict_init(d, d->sorted);
}

/* Adds a new key (not present) with a single-slot posting. Everything that
 * can fail happens before anything changes. */
int dict_new_key(ix_dict *d, bool bulk, uint32_t account, const char *text,
                 size_t len, uint32_t h, uint32_t slot) {
  if (len + 4 > IX_KEY_BYTES_MAX) return CS_EINVAL;
  if (d->live == UINT32_MAX - 1) return -ENOMEM;
  int rc = tab_reserve(d, (uint64_t)d->live + 1, bulk);
  if (rc) return rc;
  if ((rc = arena_reserve(d, len + 4, bulk))) return rc;
  if (d->free_head == IX_NONE && d->nents == d->ents_cap) {
    uint64_t grown =
        ix_grow(d->ents_cap, (uint64_t)d->ents_cap + 1, sizeof(ix_ent), bulk);
    if (grown > UINT32_MAX - 1) grown = UINT32_MAX - 1;
    uint32_t cap = d->ents_cap ? (uint32_t)grown : 64;
    if (cap <= d->ents_cap) return -ENOMEM;
    ix_ent *p = ix_huge(realloc(d->ents, (size_t)cap * sizeof(ix_ent)),
                        (size_t)cap * sizeof(ix_ent));
    if (!p) return -ENOMEM;
    d->ents = p;
    d->ents_cap = cap;
  }
  bool pend = d->sorted && bulk;
  if (pend && d->npending == d->pending_cap) {
    uint32_t cap = d->pending_cap ? d->pending_cap * 2 : 1024;
    uint32_t *p = realloc(d->pending, (size_t)cap * 4);
    if (!p) return -ENOMEM;
    d->pending = p;
    d->pending_cap = cap;
  }
  uint32_t e;
  bool reused = d->free_head != IX_NONE;
  if (reused) {
    e = d->free_head;
    CS_ASSERT(e < d->nents && !d->ents[e].post); /* the free chain */
    d->free_head = (uint32_t)d->ents[e].kref;
  } else {
    e = d->nents++;
  }
  uint8_t acct[4];
  acct_be(account, acct);
  memcpy(d->arena + d->arena_len, acct, 4);
  memcpy(d->arena + d->arena_len + 4, text, len);
  d->ents[e].kref = d->arena_len << 24 | (len + 4);
  d->ents[e].post = POST_MAKE_ONE(slot);
  if (d->sorted && !bulk) {
    rc = order_insert(d, e);
    if (rc) {
      d->ents[e].post = 0;
      if (reused) {
        d->ents[e].kref = d->free_head;
        d->free_head = e;
      } else {
        d->nents--;
      }
      return rc;
    }
  }
  d->arena_len += len + 4;
  if (pend) d->pending[d->npending++] = e;
  tab_put(d->tab, d->tab_size, (uint64_t)h << 32 | (e + 1));
  d->live++;
  return 0;
}

static void dict_del_key(ix_dict *d, uint32_t e, uint32_t h) {
  if (d->sorted) order_remove(d, e);
  tab_delete(d, e, h);
  if (POST_IS_RB(d->ents[e].post)) big_remove(d, e);
  post_free(d, d->ents[e].post);
  d->arena_garbage += d->ents[e].kref & IX_KEY_BYTES_MAX;
  d->ents[e].post = 0;
  d->ents[e].kref = d->free_head;
  d->free_head = e;
  d->live--;
  if (d->arena_garbage > (1u << 20) && d->arena_garbage * 2 > d->arena_len)
    arena_compact(d);
}

/* Applies the staged pairs in entry order (a stable sort keeps each
 * entry's slots in arrival order, which is usually ascending). On failure
 * the pairs not applied stay staged. */
int stage_apply(ix_dict *d) {
  if (!d->nstage) return 0;
  size_t n = d->nstage;
  uint64_t *tmp = malloc(n * sizeof(uint64_t));
  if (!tmp) return -ENOMEM;
  uint64_t *sorted = radix_sort(d->stage, tmp, n, 32, log2_ceil(d->nents));
  size_t cap = 0;
  uint32_t *buf = NULL;
  int rc = 0;
  size_t i = 0;
  while (i < n) {
    uint32_t e = (uint32_t)(sorted[i] >> 32);
    CS_ASSERT(e < d->nents && d->ents[e].post); /* staged on a live key */
    size_t j = i + 1;
    while (j < n && (uint32_t)(sorted[j] >> 32) == e)
      j++;
    size_t k = j - i;
    if (cap < k) {
      uint32_t *nb = realloc(buf, (k + IX_ARRAY_MAX) * 4);
      if (!nb) {
        rc = -ENOMEM;
        break;
      }
      buf = nb;
      cap = k;
    }
    uint32_t *slots = buf + IX_ARRAY_MAX;
    for (size_t t = 0; t < k; t++)
      slots[t] = (uint32_t)sorted[i + t];
    if ((rc = post_add_many(d, e, slots, k))) break;
    i = j;
  }
  /* keep what was not applied */
  memmove(d->stage, sorted + i, (n - i) * sizeof(uint64_t));
  d->nstage = n - i;
  free(buf);
  free(tmp);
  return rc;
}

/* Makes room for one more staged pair: applies the stage when it is full,
 * else grows it. 0 or -ENOMEM. */
int stage_reserve(ix_dict *d) {
  if (d->stage_cap == IX_STAGE_MAX) return stage_apply(d);
  size_t cap = d->stage_cap ? d->stage_cap * 2 : 4096;
  uint64_t *p = realloc(d->stage, cap * sizeof(uint64_t));
  if (!p) return -ENOMEM;
  d->stage = p;
  d->stage_cap = cap;
  return 0;
}

void dict_remove(ix_dict *d, uint32_t account, const char *text, size_t len,
                 uint32_t slot) {
  uint32_t h = key_hash(account, text, len);
  uint32_t e = dict_find(d, account, text, len, h);
  if (e == IX_NONE) return;
  post_remove(d, e, slot);
  if (!d->ents[e].post) dict_del_key(d, e, h);
}

size_t dict_memory(const ix_dict *d) {
  size_t b = (size_t)d->ents_cap * sizeof(ix_ent);
  b += (size_t)d->tab_size * sizeof(uint64_t);
  b += (size_t)d->arena_cap;
  b += (size_t)d->chunks_cap * sizeof(ix_chunk);
  b += (size_t)d->nchunks * (IX_CHUNK_BYTES + IX_MALLOC_OVERHEAD);
  b += (size_t)d->pending_cap * 4 + (size_t)d->big_cap * 4;
  b += d->arr_bytes + d->stage_cap * sizeof(uint64_t);
  for (uint32_t i = 0; i < d->nbig; i++)
    b += rb_bytes(POST_RB(d->ents[d->big[i]].post));
  return b;
}

/* Gives back the slack of growth by doubling once a bulk load is over. */
void dict_shrink(ix_dict *d) {
  if (d->arena_cap > d->arena_len + 4096 && !d->arena_garbage) {
    char *p = realloc(d->arena, d->arena_len + 4096);
    if (p) {
      d->arena = p;
      d->arena_cap = d->arena_len + 4096;
    }
  }
  if (d->free_head == IX_NONE && d->ents_cap > d->nents + 64) {
    ix_ent *p = realloc(d->ents, ((size_t)d->nents + 64) * sizeof(ix_ent));
    if (p) {
      d->ents = p;
      d->ents_cap = d->nents + 64;
    }
  }
  tab_fit(d);
  free(d->stage);
  d->stage = NULL;
  d->stage_cap = 0;
  free(d->pending);
  d->pending = NULL;
  d->pending_cap = 0;
}

void ix_clear(ix_index *ix) {
  for (int i = 0; i < IX_NDICTS; i++)
    dict_deinit(ix_dict_at(ix, i));
  ix->ntms = 0;
}
