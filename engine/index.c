/*
 * index.c: the inverted indexes behind every field search: the index as a
 * whole (create and destroy, insert and erase, bulk mode, memory).
 *
 * Why this file is small: the structures and their invariants are in
 * ix_int.h, and each part has its own file (posting lists, hash table,
 * sorted order, dictionary, search, snapshot codec, checker). What is left
 * here is what spans all fields at once: folding a contact's values into
 * the keys to add or remove, and the order in which an insert touches
 * memory (see ix_insert).
 *
 * An insert or erase runs on the whole index (part -1) or on one of its
 * IX_PARTS parts (ix_field_part: a field's dictionaries are in one part,
 * meta and the times in part 0), each with a scratch of its own, so that
 * a replay's index threads may run the parts at once (ix_queue.c). Part 0
 * decides the meta keys of every field: for a field of another part it
 * only asks whether the value has a key (fold_key_empty), folding nothing
 * when it is ASCII.
 *
 * Invariants kept: an insert that fails leaves the index (or its part) as
 * it was (what it added is erased again); bulk mode ends only when every
 * staged slot and pending key is in place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ix_int.h"

ix_index *ix_create(void) {
  ix_index *ix = calloc(1, sizeof(*ix));
  if (!ix) return NULL;
  for (int i = 0; i < IX_NDICTS; i++)
    dict_init(ix_dict_at(ix, i), ix_dict_at(ix, i) != &ix->meta);
  return ix;
}

static void scratch_free(ix_scratch *sc) {
  fold_buf_free(&sc->fb);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    fold_buf_free(&sc->ff[f]);
  for (int r = 0; r < IX_NREV; r++)
    fold_buf_free(&sc->rb[r]);
  free(sc->jobs);
}

static size_t scratch_bytes(const ix_scratch *sc) {
  size_t b = sc->fb.cap + sc->jobs_cap * sizeof(ix_job);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    b += sc->ff[f].cap;
  for (int r = 0; r < IX_NREV; r++)
    b += sc->rb[r].cap;
  return b;
}

void ix_destroy(ix_index *ix) {
  if (!ix) return;
  ix_clear(ix);
  for (int p = 0; p < IX_PARTS; p++)
    scratch_free(&ix->sc[p]);
  free(ix->tms);
  free(ix);
}

/* The part of dictionary i of ix_dict_at (below IX_NDICTS): its field's,
 * and meta's is 0. */
static int dict_part(int i) {
  if (i < CS_FIELD_COUNT) return ix_field_part(i);
  if (i < 2 * CS_FIELD_COUNT) return ix_field_part(i - CS_FIELD_COUNT);
  if (i == 2 * CS_FIELD_COUNT + IX_REV_EMAIL) return ix_field_part(CS_EMAIL);
  if (i == 2 * CS_FIELD_COUNT + IX_REV_PHONE) return ix_field_part(CS_PHONE);
  return 0;
}

typedef struct word_ctx {
  ix_index *ix;
  int field;
  uint32_t account, slot;
} word_ctx;

typedef struct job_ctx {
  ix_scratch *sc;
  ix_dict *d;
} job_ctx;

static int job_push(ix_scratch *sc, ix_dict *d, const char *text, size_t len) {
  if (sc->njobs == sc->jobs_cap) {
    size_t cap = sc->jobs_cap ? sc->jobs_cap * 2 : 64;
    ix_job *p = realloc(sc->jobs, cap * sizeof(ix_job));
    if (!p) return -ENOMEM;
    sc->jobs = p;
    sc->jobs_cap = cap;
  }
  sc->jobs[sc->njobs++] = (ix_job){d, text, len, 0, IX_NONE};
  return 0;
}

static int word_job_cb(void *ctx, const char *w, size_t n) {
  job_ctx *c = ctx;
  return job_push(c->sc, c->d, w, n);
}

/* What a part does with field f: owns its dictionaries (own), and, for
 * part 0 (or the whole index, part -1), keeps its meta keys. */
static bool part_owns(int part, int f) {
  return part < 0 || ix_field_part(f) == part;
}

/* Whether field f of a part (or of the whole index) has a key: folded into
 * fb when the part owns the field; only looked at when it keeps the meta
 * keys alone (part 0 for another part's field). 1 keyed, 0 not, or a
 * folding error. */
static int field_keyed(int part, int f, const cs_str *v, fold_buf *fb) {
  if (!v->ptr) return 0;
  if (part_owns(part, f)) {
    int rc = fold_key(f, v->ptr, v->len, fb);
    return rc ? rc : fb->len > 0;
  }
  int rc = fold_key_empty(f, v->ptr, v->len, fb);
  return rc < 0 ? rc : !rc;
}

static int word_remove_cb(void *ctx, const char *w, size_t n) {
  word_ctx *c = ctx;
  ix_dict *d = &c->ix->words[c->field];
  if (!ix_typo_field(c->field) || c->ix->bulk) {
    dict_remove(d, c->account, w, n, c->slot);
    return 0;
  }
  /* the word's entry, for its typo variants should the key go */
  uint32_t live = d->live;
  uint32_t e = dict_find(d, c->account, w, n, key_hash(c->account, w, n));
  dict_remove(d, c->account, w, n, c->slot);
  if (d->live < live) typo_word_removed(c->ix, c->field, c->account, w, n, e);
  return 0;
}

/* key reversed bytewise into out: a byte suffix of valid UTF-8 that is
 * itself valid starts at a character, so prefixes of the reversed keys are
 * exactly the suffixes of the keys. */
int ix_reverse(const char *key, size_t len, fold_buf *out) {
  if (out->cap < len + 1) {
    char *p = realloc(out->ptr, len + 1);
    if (!p) return -ENOMEM;
    out->ptr = p;
    out->cap = len + 1;
  }
  for (size_t i = 0; i < len; i++)
    out->ptr[i] = key[len - 1 - i];
  out->ptr[len] = 0;
  out->len = len;
  return 0;
}

/* Removes the keys of the fields not in skip, and the live key, of a part
 * of the index (or of all of it: part -1). A field with no value (or an
 * empty key) loses its absent key instead; what is not there is skipped,
 * so this also undoes a half-done insert. */
static void ix_erase_fields(ix_index *ix, int part, uint32_t account,
                            uint32_t slot, const cs_str field[CS_FIELD_COUNT],
                            uint32_t skip) {
  ix_scratch *sc = &ix->sc[part < 0 ? 0 : part];
  bool meta = part <= 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if ((skip & (1u << f)) || (!meta && !part_owns(part, f))) continue;
    if (field_keyed(part, f, &field[f], &sc->fb) != 1) {
      if (!meta) continue;
      dict_remove(&ix->meta, account, &IX_META_ABSENT[f], 1, slot);
      if (field[f].ptr)
        dict_remove(&ix->meta, account, &IX_META_EMPTY[f], 1, slot);
      continue;
    }
    if (!part_owns(part, f)) continue;
    dict_remove(&ix->exact[f], account, sc->fb.ptr, sc->fb.len, slot);
    int r = ix_rev_of(f);
    cs_str tail = ix_tail(f, sc->fb.ptr, sc->fb.len);
    if (r >= 0 && tail.len && !ix_reverse(tail.ptr, tail.len, &sc->rb[r]))
      dict_remove(&ix->rev[r], account, sc->rb[r].ptr, sc->rb[r].len, slot);
    if (f == CS_PHONE) continue;
    word_ctx c = {ix, f, account, slot};
    fold_words(sc->fb.ptr, sc->fb.len, word_remove_cb, &c);
  }
  if (meta) dict_remove(&ix->meta, account, IX_META_LIVE, 1, slot);
}

/* Lists the keys an insert adds to a part of the index (or to all of it:
 * part -1) into its scratch: per field not in skip, its exact key, words
 * and reversed key, or its absent key; and the live key. */
static int list_jobs(ix_index *ix, int part, const cs_str field[CS_FIELD_COUNT],
                     uint32_t skip) {
  ix_scratch *sc = &ix->sc[part < 0 ? 0 : part];
  bool meta = part <= 0;
  int rc;
  sc->njobs = 0;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if ((skip & (1u << f)) || (!meta && !part_owns(part, f))) continue;
    fold_buf *fb = &sc->ff[f];
    int keyed = field_keyed(part, f, &field[f], fb);
    if (keyed < 0) return keyed;
    if (!keyed) {
      if (meta && ((rc = job_push(sc, &ix->meta, &IX_META_ABSENT[f], 1)) ||
                   (field[f].ptr &&
                    (rc = job_push(sc, &ix->meta, &IX_META_EMPTY[f], 1)))))
        return rc;
      continue;
    }
    if (!part_owns(part, f)) continue;
    if ((rc = job_push(sc, &ix->exact[f], fb->ptr, fb->len))) return rc;
    int r = ix_rev_of(f);
    cs_str tail = ix_tail(f, fb->ptr, fb->len);
    if (r >= 0 && tail.len &&
        ((rc = ix_reverse(tail.ptr, tail.len, &sc->rb[r])) ||
         (rc = job_push(sc, &ix->rev[r], sc->rb[r].ptr, tail.len))))
      return rc;
    if (f == CS_PHONE) continue;
    job_ctx c = {sc, &ix->words[f]};
    if ((rc = fold_words(fb->ptr, fb->len, word_job_cb, &c))) return rc;
  }
  return meta ? job_push(sc, &ix->meta, IX_META_LIVE, 1) : 0;
}

static int times_set(ix_index *ix, uint32_t slot, int64_t created_ms,
                     int64_t updated_ms) {
  if (slot >= ix->tms_cap) {
    /* grown by an eighth once large (ix_grow): 16 bytes a contact, so
     * slack would show in the index's bytes per contact (bulk mode gives
     * it back at its end) */
    uint64_t cap = ix_grow(ix->tms_cap, (uint64_t)slot + 1024, 16, ix->bulk);
    if (cap > UINT32_MAX) cap = UINT32_MAX;
    int64_t *p = realloc(ix->tms, (size_t)cap * 2 * sizeof(int64_t));
    if (!p) return -ENOMEM;
    memset(p + 2 * (size_t)ix->tms_cap, 0,
           (size_t)(cap - ix->tms_cap) * 2 * sizeof(int64_t));
    ix->tms = ix_huge(p, (size_t)cap * 2 * sizeof(int64_t));
    ix->tms_cap = (uint32_t)cap;
  }
  ix->tms[2 * (size_t)slot] = created_ms;
  ix->tms[2 * (size_t)slot + 1] = updated_ms;
  if (slot >= ix->ntms) ix->ntms = slot + 1;
  return 0;
}

/* A words key an insert made: its one-typo variants too (outside bulk
 * mode, whose end builds them all at once). */
static int typo_key_added(ix_index *ix, uint32_t account, const ix_job *jb) {
  ptrdiff_t f = jb->d - ix->words;
  if (ix->bulk || f < 0 || f >= CS_FIELD_COUNT || !ix_typo_field((int)f))
    return 0;
  uint32_t e = dict_find(jb->d, account, jb->text, jb->len, jb->h);
  return typo_word_added(ix, (int)f, account, jb->text, jb->len, e);
}

/*
 * Folds every field first and lists the keys to add, then walks the list in
 * rounds that each only prefetch: the hash cells, then the entries those
 * cells name, then the entries' key bytes. A contact has some twenty keys
 * in a dozen large tables; looking them up one after the other costs three
 * dependent cache misses each, while the rounds overlap them. The adds
 * then run in order over warm lines (a word met twice in one value is
 * found the second time, since the adds, not the rounds, decide).
 */
int ix_insert_part(ix_index *ix, int part, uint32_t account, uint32_t slot,
                   const cs_str field[CS_FIELD_COUNT], uint32_t skip,
                   int64_t created_ms, int64_t updated_ms) {
  int rc = list_jobs(ix, part, field, skip);
  if (!rc && part <= 0) rc = times_set(ix, slot, created_ms, updated_ms);
  if (rc) return rc; /* nothing added yet */
  ix_scratch *sc = &ix->sc[part < 0 ? 0 : part];
  ix_job *jobs = sc->jobs;
  size_t n = sc->njobs;
  for (size_t j = 0; j < n; j++) {
    ix_job *jb = &jobs[j];
    jb->h = key_hash(account, jb->text, jb->len);
    if (jb->d->tab_size)
      __builtin_prefetch(&jb->d->tab[tab_home(jb->h, jb->d->tab_size)]);
  }
  for (size_t j = 0; j < n; j++) {
    ix_job *jb = &jobs[j];
    const ix_dict *d = jb->d;
    if (!d->tab_size) continue;
    for (uint64_t i = tab_home(jb->h, d->tab_size), k = 0; k < 4;
         i = tab_next(i, d->tab_size), k++) {
      uint64_t c = d->tab[i];
      if (!c) break;
      if ((uint32_t)(c >> 32) == jb->h) {
        jb->e = (uint32_t)c - 1;
        __builtin_prefetch(&d->ents[jb->e]);
        break;
      }
    }
  }
  for (size_t j = 0; j < n; j++) {
    if (jobs[j].e == IX_NONE) continue;
    const ix_ent *en = &jobs[j].d->ents[jobs[j].e];
    __builtin_prefetch(jobs[j].d->arena + (en->kref >> 24));
    /* and the list the slot will join, when it is not inline */
    if (en->post && !POST_IS_ONE(en->post))
      __builtin_prefetch(POST_IS_RB(en->post)
                             ? (const void *)POST_RB(en->post)
                             : (const void *)POST_ARR(en->post));
  }
  for (size_t j = 0; j < n; j++) {
    ix_job *jb = &jobs[j];
    uint32_t live = jb->d->live;
    if ((rc = dict_add(jb->d, ix->bulk, account, jb->text, jb->len, jb->h,
                       slot)) ||
        (jb->d->live > live && (rc = typo_key_added(ix, account, jb))))
      goto fail;
  }
  return 0;
fail:
  /* Every staged pair with this slot is this insert's: the slot was not
   * indexed before, and an erase applies the stages. Those already applied
   * and the new keys it made are removed by the erase below. */
  for (int g = 0; g < IX_NDICTS; g++) {
    if (part >= 0 && dict_part(g) != part) continue;
    ix_dict *d = ix_dict_at(ix, g);
    size_t k = 0;
    for (size_t i = 0; i < d->nstage; i++)
      if ((uint32_t)d->stage[i] != slot) d->stage[k++] = d->stage[i];
    d->nstage = k;
  }
  ix_erase_fields(ix, part, account, slot, field, skip);
  return rc;
}

int ix_insert(ix_index *ix, uint32_t account, uint32_t slot,
              const cs_str field[CS_FIELD_COUNT], uint32_t skip,
              int64_t created_ms, int64_t updated_ms) {
  return ix_insert_part(ix, -1, account, slot, field, skip, created_ms,
                        updated_ms);
}

/* Applies every staged pair of a part (bulk mode). */
static int ix_stage_flush(ix_index *ix, int part) {
  for (int i = 0; i < IX_NDICTS; i++) {
    if (part >= 0 && dict_part(i) != part) continue;
    int rc = stage_apply(ix_dict_at(ix, i));
    if (rc) return rc;
  }
  return 0;
}

int ix_erase_part(ix_index *ix, int part, uint32_t account, uint32_t slot,
                  const cs_str field[CS_FIELD_COUNT], uint32_t skip) {
  /* In bulk mode (a replay's edits and deletes) kept exact: the slot's
   * staged pairs first. */
  int rc = ix_stage_flush(ix, part);
  if (rc) return rc;
  ix_erase_fields(ix, part, account, slot, field, skip);
  return 0;
}

int ix_erase(ix_index *ix, uint32_t account, uint32_t slot,
             const cs_str field[CS_FIELD_COUNT], uint32_t skip) {
  return ix_erase_part(ix, -1, account, slot, field, skip);
}

void ix_bulk_begin(ix_index *ix) {
  ix->bulk = true;
}

bool ix_in_bulk(const ix_index *ix) {
  return ix->bulk;
}

/* The dictionaries of ix_bulk_end's first part, largest first. */
typedef struct bulk_end_ctx {
  ix_index *ix;
  int order[IX_NDICTS];
} bulk_end_ctx;

/* One dictionary's part of ix_bulk_end (a task of ix_par_each: it touches
 * that dictionary alone): its staged slots and pending keys in place, then
 * the slack of growth given back. A failure leaves what is not done staged
 * or pending, for a retry. */
static int bulk_end_dict(void *ctx, size_t i) {
  bulk_end_ctx *c = ctx;
  ix_dict *d = ix_dict_at(c->ix, c->order[i]);
  int rc = stage_apply(d);
  if (!rc) rc = order_merge_pending(d);
  if (rc) return rc;
  dict_shrink(d);
  for (uint32_t e = 0; e < d->nents; e++)
    post_fit(d, e);
  return 0;
}

static size_t bulk_work(const ix_dict *d) {
  return (size_t)d->npending * 8 + d->nstage + d->nents;
}

int ix_bulk_end(ix_index *ix) {
  /* The dictionaries are independent: a few threads take them, the
   * largest first, and then the typo dictionaries (built from the words
   * ones) the same way. */
  bulk_end_ctx c = {.ix = ix};
  for (int i = 0; i < IX_NDICTS; i++) {
    int j = i;
    while (j > 0 && bulk_work(ix_dict_at(ix, c.order[j - 1])) <
                        bulk_work(ix_dict_at(ix, i))) {
      c.order[j] = c.order[j - 1];
      j--;
    }
    c.order[j] = i;
  }
  int rc = ix_par_each(IX_NDICTS, bulk_end_dict, &c);
  if (rc) return rc; /* still in bulk mode: the caller may retry */
  if ((rc = typo_rebuild(ix))) return rc;
  ix->bulk = false;
  if (ix->ntms && ix->tms_cap > ix->ntms) {
    int64_t *p = realloc(ix->tms, (size_t)ix->ntms * 2 * sizeof(int64_t));
    if (p) {
      ix->tms = p;
      ix->tms_cap = ix->ntms;
    }
  }
  return 0;
}

size_t ix_memory_bytes(const ix_index *ix) {
  size_t b = sizeof(*ix);
  for (int p = 0; p < IX_PARTS; p++)
    b += scratch_bytes(&ix->sc[p]);
  for (int i = 0; i < IX_NDICTS; i++)
    b += dict_memory(ix_dict_at(ix, i));
  b += (size_t)ix->tms_cap * 2 * sizeof(int64_t);
  return b;
}

_Static_assert(IX_MEM_DICTS == IX_NDICTS + 1, "one part per dictionary");

void ix_memory_parts(const ix_index *ix, ix_mem_part out[IX_MEM_DICTS]) {
  static const char *const kind[] = {"exact", "words", "rev", "meta", "typo"};
  static const char *const rev[] = {"email", "phone"};
  for (int i = 0; i < IX_NDICTS; i++) {
    const ix_dict *d = ix_dict_at(ix, i);
    ix_mem_part *p = &out[i];
    int k = i < CS_FIELD_COUNT                  ? 0
            : i < 2 * CS_FIELD_COUNT            ? 1
            : i < 2 * CS_FIELD_COUNT + IX_NREV  ? 2
            : i == 2 * CS_FIELD_COUNT + IX_NREV ? 3
                                                : 4;
    int f = k == 0   ? i
            : k == 1 ? i - CS_FIELD_COUNT
            : k == 4 ? i - 2 * CS_FIELD_COUNT - IX_NREV - 1
                     : -1;
    snprintf(p->name, sizeof p->name, "%s %s", kind[k],
             k == 2   ? rev[i - 2 * CS_FIELD_COUNT]
             : k == 3 ? ""
                      : cs_field_name(f));
    p->keys = d->live;
    p->ents = (size_t)d->ents_cap * sizeof(ix_ent);
    p->tab = (size_t)d->tab_size * sizeof(uint64_t);
    p->arena = d->arena_cap;
    p->order = (size_t)d->chunks_cap * sizeof(ix_chunk) +
               (size_t)d->nchunks * (IX_CHUNK_BYTES + IX_MALLOC_OVERHEAD);
    p->post = d->arr_bytes;
    for (uint32_t j = 0; j < d->nbig; j++)
      p->post += rb_bytes(POST_RB(d->ents[d->big[j]].post));
    p->other =
        dict_memory(d) - p->ents - p->tab - p->arena - p->order - p->post;
  }
  ix_mem_part *t = &out[IX_NDICTS];
  snprintf(t->name, sizeof t->name, "times");
  memset(&t->keys, 0, sizeof *t - sizeof t->name);
  t->other = (size_t)ix->tms_cap * 2 * sizeof(int64_t);
}
