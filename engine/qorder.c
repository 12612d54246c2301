/*
 * qorder.c: a query's order and its page after the cursor.
 *
 * Why three ways: the page is the first limit matches after the cursor in
 * the query's order, and what it costs to find them depends on the first
 * sort key and on how many match.
 *
 *  - By id (the default): slot order is id order, so the page is the next
 *    slots of the match set, read off the bitmap from the cursor's id.
 *  - By a field, over many matches: the field's sorted dictionary is
 *    walked from the cursor's key against the match set; each key with
 *    matches is a group in order (ties broken by the next keys, then id),
 *    and the walk stops once the page is full. The contacts without the
 *    field come last, from the meta dictionary's absent list.
 *  - Otherwise (few matches, or times and relevance first): every match
 *    gets its sort values, lazily (a text value means reading the record,
 *    done only when a comparison needs it), and a heap keeps the limit
 *    smallest after the cursor.
 *
 * A position (cs_qpos) is the sort values of the page's last contact and
 * its id: the next page is what comes strictly after it, so a walk never
 * returns a contact twice and skips none whose values did not change.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pindex.h"
#include "qry_int.h"

typedef struct qval {
  bool have, missing;
  cs_str text;
  uint64_t num;
} qval;

typedef struct qcand {
  uint32_t slot;
  uint64_t id;
  qval v[CS_QUERY_SORT_MAX];
} qcand;

typedef struct qsorter {
  qrun *r;
  uint32_t nkeys;
  int field[CS_QUERY_SORT_MAX];
  bool desc[CS_QUERY_SORT_MAX]; /* relevance: desc is the smallest first */
  bool has_cursor;
  qcand cursor;
  int rc; /* the first failure of a lazy value */
} qsorter;

static void val(qsorter *q, qcand *c, uint32_t j) {
  qval *v = &c->v[j];
  if (v->have) return;
  v->have = true;
  v->missing = false;
  int f = q->field[j];
  if (f < CS_FIELD_COUNT) {
    int rc = qrun_key(q->r, c->slot, f, &v->text, &v->missing);
    if (rc && !q->rc) q->rc = rc;
  } else if (f == CS_QF_ID) {
    v->num = c->id;
  } else if (f == CS_QF_RELEVANCE) {
    uint64_t *s = u64map_get(&q->r->score, (uint64_t)c->slot + 1);
    v->num = s ? *s : 0;
  } else {
    int64_t t[2] = {0, 0};
    ixq_times(q->r->s->ix, c->slot, &t[0], &t[1]);
    v->num = (uint64_t)t[f == CS_QF_UPDATED_AT];
  }
}

static int bytes_cmp(cs_str a, cs_str b) {
  size_t m = a.len < b.len ? a.len : b.len;
  int c = m ? memcmp(a.ptr, b.ptr, m) : 0;
  if (c) return c;
  return (a.len > b.len) - (a.len < b.len);
}

/* The query's order: each key (a contact without it last, either way),
 * then ascending id. */
static int cand_cmp(qsorter *q, qcand *a, qcand *b) {
  for (uint32_t j = 0; j < q->nkeys; j++) {
    val(q, a, j);
    val(q, b, j);
    const qval *x = &a->v[j], *y = &b->v[j];
    if (x->missing != y->missing) return x->missing ? 1 : -1;
    if (x->missing) continue;
    int c = q->field[j] < CS_FIELD_COUNT
                ? bytes_cmp(x->text, y->text)
                : (x->num > y->num) - (x->num < y->num);
    if (c) return q->desc[j] ? -c : c;
  }
  return (a->id > b->id) - (a->id < b->id);
}

static qcand cand_of(qsorter *q, uint32_t slot, const qval *first) {
  qcand c;
  memset(&c, 0, sizeof c);
  c.slot = slot;
  c.id = q->r->s->slots.v[slot].id;
  if (first) c.v[0] = *first;
  return c;
}

/* ------------------------------------------------------------ the heap */

typedef struct qheap {
  qcand *v;
  uint32_t n, cap; /* cap: how many are wanted */
} qheap;

static void heap_down(qsorter *q, qheap *h, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, m = i;
    if (l < h->n && cand_cmp(q, &h->v[l], &h->v[m]) > 0) m = l;
    if (l + 1 < h->n && cand_cmp(q, &h->v[l + 1], &h->v[m]) > 0) m = l + 1;
    if (m == i) return;
    qcand t = h->v[i];
    h->v[i] = h->v[m];
    h->v[m] = t;
    i = m;
  }
}

/* Offers c: kept when it is after the cursor and among the cap smallest. */
static void heap_offer(qsorter *q, qheap *h, qcand *c) {
  if (q->has_cursor && cand_cmp(q, c, &q->cursor) <= 0) return;
  if (h->n < h->cap) {
    uint32_t i = h->n++;
    h->v[i] = *c;
    while (i > 0) {
      uint32_t p = (i - 1) / 2;
      if (cand_cmp(q, &h->v[p], &h->v[i]) >= 0) break;
      qcand t = h->v[p];
      h->v[p] = h->v[i];
      h->v[i] = t;
      i = p;
    }
  } else if (h->cap && cand_cmp(q, c, &h->v[0]) < 0) {
    h->v[0] = *c;
    heap_down(q, h, 0);
  }
}

/* Sorts the heap's contents ascending, in place. */
static void heap_sort(qsorter *q, qheap *h) {
  uint32_t n = h->n;
  while (h->n > 1) {
    qcand t = h->v[0];
    h->v[0] = h->v[h->n - 1];
    h->v[h->n - 1] = t;
    h->n--;
    heap_down(q, h, 0);
  }
  h->n = n;
}

/* The need smallest of set (or of slots[0..n)) after the cursor, sorted,
 * appended to out. first: every one's first sort value, when known. */
static int smallest(qsorter *q, const roaring_bitmap_t *set,
                    const uint32_t *slots, uint64_t n, const qval *first,
                    uint32_t need, qcand *out, uint32_t *nout) {
  qheap h = {out + *nout, 0, need};
  if (set) {
    roaring_uint32_iterator_t it;
    roaring_init_iterator(set, &it);
    for (; it.has_value && !q->rc; roaring_advance_uint32_iterator(&it)) {
      qcand c = cand_of(q, it.current_value, first);
      heap_offer(q, &h, &c);
    }
  } else {
    for (uint64_t i = 0; i < n && !q->rc; i++) {
      qcand c = cand_of(q, slots[i], first);
      heap_offer(q, &h, &c);
    }
  }
  heap_sort(q, &h);
  *nout += h.n;
  return q->rc;
}

/* ------------------------------------------------------------ by id */

static void remove_slots(void *ctx, uint32_t a, uint32_t b) {
  roaring_bitmap_remove_range(ctx, a, b);
}

static int page_by_id(qsorter *q, uint32_t need, qcand *out, uint32_t *n) {
  const roaring_bitmap_t *m = q->r->match;
  const slot_table *t = &q->r->s->slots;
  roaring_uint32_iterator_t it;
  /* Up from the cursor: with one run, the matches from the slot after it;
   * with several (pindex.h), the matches left when every slot of an id up
   * to it is taken out. */
  if (!q->desc[0] && (!q->has_cursor || !t->run_count)) {
    roaring_init_iterator(m, &it);
    if (q->has_cursor)
      roaring_move_uint32_iterator_equalorlarger(&it,
                                                 slots_after(t, q->cursor.id));
    for (; it.has_value && *n < need; roaring_advance_uint32_iterator(&it))
      out[(*n)++] = cand_of(q, it.current_value, NULL);
    return 0;
  }
  /* Down from the cursor: the matches of ids below it, so that a deep
   * page does not step over every match before it. */
  roaring_bitmap_t *rest = NULL;
  if (q->has_cursor) {
    if (!(rest = roaring_bitmap_copy(m)))
      return cs_err(q->r->err, -ENOMEM, "out of memory");
    if (q->desc[0])
      slots_id_ranges(t, q->cursor.id, UINT64_MAX, remove_slots, rest);
    else
      slots_id_ranges(t, 0, q->cursor.id, remove_slots, rest);
    m = rest;
  }
  if (!q->desc[0]) {
    roaring_init_iterator(m, &it);
    for (; it.has_value && *n < need; roaring_advance_uint32_iterator(&it))
      out[(*n)++] = cand_of(q, it.current_value, NULL);
    ixq_set_free(rest);
    return 0;
  }
  roaring_init_iterator_last(m, &it);
  for (; it.has_value && *n < need; roaring_previous_uint32_iterator(&it))
    out[(*n)++] = cand_of(q, it.current_value, NULL);
  ixq_set_free(rest);
  return 0;
}

/* --------------------------------------------------- by a dictionary */

typedef struct walk_ctx {
  qsorter *q;
  uint32_t need, *n;
  qcand *out;
  int rc;
} walk_ctx;

static int walk_group(void *ctx, cs_str key, const uint32_t *slots,
                      uint64_t n) {
  walk_ctx *w = ctx;
  qsorter *q = w->q;
  const char *t = qrun_dup(q->r, key.ptr, key.len);
  if (!t) return w->rc = -ENOMEM;
  qval first = {true, false, {t, key.len}, 0};
  if (q->nkeys == 1) {
    /* ties in id order; at the cursor's key, only the ids after it */
    bool at = q->has_cursor && bytes_cmp(key, q->cursor.v[0].text) == 0;
    for (uint64_t i = 0; i < n && *w->n < w->need; i++) {
      qcand c = cand_of(q, slots[i], &first);
      if (at && c.id <= q->cursor.id) continue;
      w->out[(*w->n)++] = c;
    }
  } else if ((w->rc = smallest(q, NULL, slots, n, &first, w->need - *w->n,
                               w->out, w->n))) {
    return w->rc;
  }
  return *w->n >= w->need; /* 1: the page is full, stop */
}

static int page_by_walk(qsorter *q, uint32_t need, qcand *out, uint32_t *n) {
  qrun *r = q->r;
  int f = q->field[0];
  bool past = q->has_cursor && q->cursor.v[0].missing;
  if (!past) {
    walk_ctx w = {q, need, n, out, 0};
    const cs_str *from = q->has_cursor ? &q->cursor.v[0].text : NULL;
    int rc = ixq_walk(r->s->ix, r->q->account, f, q->desc[0], from, r->match,
                      walk_group, &w);
    if (w.rc) return w.rc;
    if (rc) return cs_err(r->err, rc, "out of memory");
  }
  if (*n >= need) return 0;
  roaring_bitmap_t *m = roaring_bitmap_create();
  if (!m) return cs_err(r->err, -ENOMEM, "out of memory");
  ixq_absent(r->s->ix, r->q->account, f, m);
  roaring_bitmap_and_inplace(m, r->match);
  qval none = {true, true, {"", 0}, 0};
  int rc = smallest(q, m, NULL, 0, &none, need - *n, out, n);
  ixq_set_free(m);
  return rc;
}

/* --------------------------------------------------------------- page */

static void sorter_init(qsorter *q, qrun *r) {
  memset(q, 0, sizeof *q);
  q->r = r;
  const cs_qry *qq = r->q;
  for (uint32_t i = 0; i < qq->nsort; i++) {
    q->field[q->nkeys] = qq->sort[i].field;
    q->desc[q->nkeys] = qq->sort[i].field == CS_QF_RELEVANCE ? !qq->sort[i].desc
                                                             : qq->sort[i].desc;
    q->nkeys++;
    if (qq->sort[i].field == CS_QF_ID) break; /* ids are unique */
  }
  if (!q->nkeys) q->field[q->nkeys++] = CS_QF_ID;
  if (qq->after) {
    q->has_cursor = true;
    q->cursor.id = qq->after->id;
    for (uint32_t j = 0; j < q->nkeys && j < qq->after->nkeys; j++) {
      const cs_qpos_key *k = &qq->after->key[j];
      q->cursor.v[j] = (qval){true, k->missing, k->text, k->num};
      if (!k->text.ptr) q->cursor.v[j].text = (cs_str){"", 0};
    }
    if (q->field[0] == CS_QF_ID && !q->cursor.v[0].missing)
      q->cursor.id = qq->after->id;
  }
}

int qorder_page(qrun *r, uint32_t *slots, uint32_t *count, bool *more,
                cs_qpos *next) {
  qsorter q;
  sorter_init(&q, r);
  uint32_t limit = r->q->limit ? r->q->limit : CS_PAGE_LIMIT_DEFAULT;
  uint32_t need = limit + 1, n = 0;
  qcand *out = malloc(need * sizeof(qcand));
  if (!out) return cs_err(r->err, -ENOMEM, "out of memory");
  int f = q.field[0], rc;
  uint64_t card = roaring_bitmap_get_cardinality(r->match);
  if (f == CS_QF_ID)
    rc = page_by_id(&q, need, out, &n);
  else if (f < CS_FIELD_COUNT && card * 16 >= ixq_keys(r->s->ix, f))
    rc = page_by_walk(&q, need, out, &n);
  else
    rc = smallest(&q, r->match, NULL, 0, NULL, need, out, &n);
  if (!rc) rc = q.rc;
  *more = n > limit;
  *count = n > limit ? limit : n;
  for (uint32_t i = 0; i < *count; i++)
    slots[i] = out[i].slot;
  memset(next, 0, sizeof *next);
  if (!rc && *more) {
    qcand *last = &out[*count - 1];
    next->nkeys = r->q->nsort;
    next->id = last->id;
    for (uint32_t j = 0; j < q.nkeys; j++)
      val(&q, last, j);
    for (uint32_t j = 0; j < next->nkeys && j < q.nkeys; j++)
      next->key[j] =
          (cs_qpos_key){last->v[j].missing, last->v[j].text, last->v[j].num};
    rc = q.rc;
  }
  free(out);
  if (rc && rc != -ENOMEM && r->err && !r->err->code)
    cs_err(r->err, rc, "cannot order the matches: %s", cs_strerror(rc));
  return rc;
}
