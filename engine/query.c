/*
 * query.c: queries (cs_query.h): their rules and checks, the evaluation of
 * the filter tree and free text to a set of slots, and the run that puts
 * a result together.
 *
 * Why sets: every condition is a posting list or a union of a few (from
 * the index, ix_query.c), so and, or and not are bitmap operations whose
 * cardinality is the exact total, however many contacts match; nothing is
 * read from the log but the page itself (and, for some sorts and facets
 * over few matches, their records: qorder.c, qfacet.c).
 *
 * Everything runs under the store's read lock (ilock), so a result
 * reflects one moment of the store: the applied sequence it reports as
 * as_of is that moment's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pindex.h"
#include "qry_int.h"

/* ------------------------------------------------------------- check */

typedef struct qcheck {
  cs_qfault *where;
  cs_error *err;
  uint32_t conds;
  fold_buf fb;
} qcheck;

__attribute__((format(printf, 6, 7))) static int
fault(qcheck *c, cs_qpart part, const cs_qnode *node, uint32_t index,
      bool too_complex, const char *fmt, ...) {
  if (c->where) *c->where = (cs_qfault){part, node, index, too_complex};
  if (c->err) {
    cs_err(c->err, CS_EINVAL, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
    va_end(ap);
  }
  return CS_EINVAL;
}

/* A condition's value, checked for its op. */
static int check_text(qcheck *c, const cs_qnode *n, uint32_t i) {
  const cs_str *v = &n->values[i];
  if (!v->ptr && v->len)
    return fault(c, CS_QPART_VALUE, n, i, false, "no value");
  if (cs_utf8_chars(v->ptr ? v->ptr : "", v->len) < 0)
    return fault(c, CS_QPART_VALUE, n, i, false,
                 "value: not valid UTF-8, or holds a NUL");
  if (n->field == CS_QF_ID) { /* prefix: 1 to 20 digits */
    cs_str t = cs_trim(*v);
    bool digits = t.len >= 1 && t.len <= CS_ID_DIGITS;
    for (size_t k = 0; digits && k < t.len; k++)
      digits = t.ptr[k] >= '0' && t.ptr[k] <= '9';
    if (!digits)
      return fault(c, CS_QPART_VALUE, n, i, false,
                   "an id prefix is 1 to %d digits", CS_ID_DIGITS);
  }
  if (n->op == CS_OP_SUFFIX) {
    if (fold_key(n->field, v->ptr, v->len, &c->fb)) return -ENOMEM;
    long chars = cs_utf8_chars(c->fb.ptr, c->fb.len);
    if (chars < CS_QUERY_SUFFIX_MIN)
      return fault(c, CS_QPART_VALUE, n, i, false,
                   "a suffix needs at least %d %s", CS_QUERY_SUFFIX_MIN,
                   n->field == CS_PHONE ? "digits" : "characters");
  }
  if (n->op == CS_OP_WORDS || n->op == CS_OP_FUZZY) {
    uint32_t words;
    if (ixq_count_words(v->ptr, v->len, &c->fb, &words)) return -ENOMEM;
    if (words > CS_QUERY_WORDS_MAX)
      return fault(c, CS_QPART_VALUE, n, i, true,
                   "more than %d words in one condition", CS_QUERY_WORDS_MAX);
  }
  return 0;
}

static int check_cond(qcheck *c, const cs_qnode *n) {
  if (n->field < 0 || n->field > CS_QF_UPDATED_AT)
    return fault(c, CS_QPART_FIELD, n, 0, false, "no such field");
  if (++c->conds > CS_QUERY_CONDS_MAX)
    return fault(c, CS_QPART_NODE, n, 0, true, "more than %d conditions",
                 CS_QUERY_CONDS_MAX);
  int arg = n->op >= 0 && n->op < CS_OP_COUNT ? cs_op_arg(n->field, n->op) : -1;
  if (arg < 0)
    return fault(c, CS_QPART_OP, n, 0, false, "%s does not take %s",
                 cs_qfield_name(n->field), cs_op_name(n->op));
  bool many = arg == CS_QARG_TEXTS || arg == CS_QARG_NUMS;
  uint32_t want = arg == CS_QARG_NONE ? 0 : 1;
  if (many && (n->nvalues < 1 || n->nvalues > CS_QUERY_IN_MAX))
    return fault(c, CS_QPART_VALUE, n, 0, false, "in takes 1 to %d values",
                 CS_QUERY_IN_MAX);
  if (!many && n->nvalues != want)
    return fault(c, CS_QPART_VALUE, n, 0, false,
                 want ? "one value expected" : "%s takes no value",
                 cs_op_name(n->op));
  bool text = arg == CS_QARG_TEXT || arg == CS_QARG_TEXTS;
  if (n->nvalues && (text ? !n->values : !n->nums))
    return fault(c, CS_QPART_VALUE, n, 0, false, "no value");
  for (uint32_t i = 0; text && i < n->nvalues; i++) {
    int rc = check_text(c, n, i);
    if (rc) return rc;
  }
  return 0;
}

/* n at level (the root is 1): a tree deeper than CS_QUERY_DEPTH_MAX has a
 * node below that level, reported there. */
static int check_node(qcheck *c, const cs_qnode *n, int level) {
  if (level > CS_QUERY_DEPTH_MAX)
    return fault(c, CS_QPART_NODE, n, 0, true, "conditions nest deeper than %d",
                 CS_QUERY_DEPTH_MAX);
  switch (n->kind) {
  case CS_Q_COND:
    return check_cond(c, n);
  case CS_Q_AND:
  case CS_Q_OR:
  case CS_Q_NOT:
    if (!n->kids || n->nkids < 1)
      return fault(c, CS_QPART_NODE, n, 0, false, "an empty list");
    if (n->kind == CS_Q_NOT && n->nkids != 1)
      return fault(c, CS_QPART_NODE, n, 0, false, "not takes one condition");
    for (uint32_t i = 0; i < n->nkids; i++) {
      int rc = check_node(c, &n->kids[i], level + 1);
      if (rc) return rc;
    }
    return 0;
  default:
    return fault(c, CS_QPART_NODE, n, 0, false, "not a condition");
  }
}

static int check_rest(qcheck *c, const cs_qry *q) {
  if (q->limit > CS_PAGE_LIMIT_MAX)
    return fault(c, CS_QPART_LIMIT, NULL, 0, false, "limit must be 1 to %d",
                 CS_PAGE_LIMIT_MAX);
  if (q->nsort > CS_QUERY_SORT_MAX)
    return fault(c, CS_QPART_SORT, NULL, CS_QUERY_SORT_MAX, false,
                 "at most %d sort keys", CS_QUERY_SORT_MAX);
  for (uint32_t i = 0; i < q->nsort; i++) {
    int f = q->sort[i].field;
    if (f < 0 || f >= CS_QF_COUNT)
      return fault(c, CS_QPART_SORT, NULL, i, false, "no such sort field");
    if (f == CS_QF_RELEVANCE && !q->q.ptr)
      return fault(c, CS_QPART_SORT, NULL, i, false,
                   "relevance sorts only a query with q");
    for (uint32_t j = 0; j < i; j++)
      if (q->sort[j].field == f)
        return fault(c, CS_QPART_SORT, NULL, i, false, "%s sorts twice",
                     cs_qfield_name(f));
  }
  if (q->nfacets > CS_QUERY_FACETS_MAX)
    return fault(c, CS_QPART_FACET, NULL, CS_QUERY_FACETS_MAX, false,
                 "at most %d facets", CS_QUERY_FACETS_MAX);
  for (uint32_t i = 0; i < q->nfacets; i++) {
    int f = q->facets[i];
    if (f < 0 || f >= CS_FIELD_COUNT || cs_field_table[f].kind != CS_KIND_NAME)
      return fault(c, CS_QPART_FACET, NULL, i, false,
                   "facets are first_name, last_name, company, job_title");
  }
  if (q->after && (q->after->nkeys != q->nsort))
    return fault(c, CS_QPART_CURSOR, NULL, 0, false,
                 "the cursor belongs to another sort");
  return 0;
}

int cs_query_check(const cs_qry *q, cs_qfault *where, cs_error *err) {
  if (err) memset(err, 0, sizeof *err), err->field = -1;
  qcheck c = {where, err, 0, {0}};
  int rc = 0;
  if (q->q.ptr) {
    uint32_t words;
    if (cs_utf8_chars(q->q.ptr, q->q.len) < 0)
      rc = fault(&c, CS_QPART_Q, NULL, 0, false,
                 "q: not valid UTF-8, or holds a NUL");
    else if ((rc = ixq_count_words(q->q.ptr, q->q.len, &c.fb, &words)))
      rc = cs_err(err, rc, "out of memory");
    else if (!words)
      rc = fault(&c, CS_QPART_Q, NULL, 0, false, "q holds no word");
    else if (words > CS_QUERY_WORDS_MAX)
      rc = fault(&c, CS_QPART_Q, NULL, 0, true, "q holds more than %d words",
                 CS_QUERY_WORDS_MAX);
  }
  if (!rc && q->filter) rc = check_node(&c, q->filter, 1);
  if (rc == -ENOMEM) cs_err(err, rc, "out of memory");
  if (!rc) rc = check_rest(&c, q);
  fold_buf_free(&c.fb);
  return rc;
}

/* ---------------------------------------------------------- evaluation */

static roaring_bitmap_t *live_set(qrun *r) {
  if (!r->live && (r->live = roaring_bitmap_create()))
    ixq_live(r->s->ix, r->q->account, r->live);
  return r->live;
}

/* live minus b, in place in b. */
static int complement(qrun *r, roaring_bitmap_t *b) {
  roaring_bitmap_t *l = live_set(r);
  if (!l) return -ENOMEM;
  roaring_bitmap_t *x = roaring_bitmap_andnot(l, b);
  if (!x) return -ENOMEM;
  roaring_bitmap_clear(b);
  roaring_bitmap_or_inplace(b, x);
  ixq_set_free(x);
  return 0;
}

/* The id range a prefix of digits names, as search by id does. */
static bool id_prefix_range(cs_str v, uint64_t *lo, uint64_t *hi) {
  cs_str t = cs_trim(v);
  if (!t.len || t.len > CS_ID_DIGITS || t.ptr[0] == '0') return false;
  uint64_t x = 0;
  for (size_t i = 0; i < t.len; i++) {
    if (t.ptr[i] < '0' || t.ptr[i] > '9') return false;
    x = x * 10 + (uint64_t)(t.ptr[i] - '0');
  }
  uint64_t scale = 1;
  for (size_t i = t.len; i < CS_ID_DIGITS; i++)
    scale *= 10;
  if (x > UINT64_MAX / scale) return false;
  *lo = x * scale;
  *hi = UINT64_MAX - *lo < scale - 1 ? UINT64_MAX : *lo + (scale - 1);
  return true;
}

static void add_slots(void *ctx, uint32_t a, uint32_t b) {
  roaring_bitmap_add_range(ctx, a, b);
}

/* Adds the live slots of account with ids in [lo, hi]. */
static void add_id_range(qrun *r, uint64_t lo, uint64_t hi,
                         roaring_bitmap_t *out) {
  slots_id_ranges(&r->s->slots, lo, hi, add_slots, out);
  if (roaring_bitmap_is_empty(out)) return;
  roaring_bitmap_t *l = live_set(r);
  if (l) roaring_bitmap_and_inplace(out, l);
}

static bool num_op(cs_op op, uint64_t v, uint64_t x) {
  switch (op) {
  case CS_OP_GT:
    return v > x;
  case CS_OP_GTE:
    return v >= x;
  case CS_OP_LT:
    return v < x;
  case CS_OP_LTE:
    return v <= x;
  default:
    return v == x;
  }
}

static int eval_id(qrun *r, const cs_qnode *n, roaring_bitmap_t *out) {
  const slot_table *t = &r->s->slots;
  uint64_t lo, hi;
  switch (n->op) {
  case CS_OP_EXISTS:
    add_id_range(r, 0, UINT64_MAX, out);
    return 0;
  case CS_OP_PREFIX:
    if (id_prefix_range(n->values[0], &lo, &hi)) add_id_range(r, lo, hi, out);
    return 0;
  case CS_OP_GT:
    if (n->nums[0] < UINT64_MAX)
      add_id_range(r, n->nums[0] + 1, UINT64_MAX, out);
    return 0;
  case CS_OP_GTE:
    add_id_range(r, n->nums[0], UINT64_MAX, out);
    return 0;
  case CS_OP_LT:
    if (n->nums[0] > 0) add_id_range(r, 0, n->nums[0] - 1, out);
    return 0;
  case CS_OP_LTE:
    add_id_range(r, 0, n->nums[0], out);
    return 0;
  default: /* eq, neq, in */
    for (uint32_t i = 0; i < n->nvalues; i++) {
      int64_t sl = slots_find(t, n->nums[i]);
      if (sl >= 0 && t->v[sl].acct_live == (r->q->account << 1 | 1u))
        roaring_bitmap_add(out, (uint32_t)sl);
    }
    return n->op == CS_OP_NEQ ? complement(r, out) : 0;
  }
}

static int eval_time(qrun *r, const cs_qnode *n, roaring_bitmap_t *out) {
  roaring_bitmap_t *l = live_set(r);
  if (!l) return -ENOMEM;
  cs_op op = n->op == CS_OP_NEQ || n->op == CS_OP_IN ? CS_OP_EQ : n->op;
  roaring_uint32_iterator_t it;
  roaring_init_iterator(l, &it);
  for (; it.has_value; roaring_advance_uint32_iterator(&it)) {
    int64_t t[2];
    if (ixq_times(r->s->ix, it.current_value, &t[0], &t[1])) continue;
    uint64_t v = (uint64_t)t[n->field == CS_QF_UPDATED_AT];
    bool hit = false;
    for (uint32_t i = 0; i < n->nvalues && !hit; i++)
      hit = num_op(op, v, n->nums[i]);
    if (n->op == CS_OP_EXISTS || hit) roaring_bitmap_add(out, it.current_value);
  }
  return n->op == CS_OP_NEQ ? complement(r, out) : 0;
}

/* Narrows the candidates of a suffix (ixq_suffix, its folded term in
 * r->fb) to the contacts whose key ends with it. */
static int keep_suffix(qrun *r, int field, roaring_bitmap_t *cands) {
  size_t tl = r->fb.len;
  char *t = malloc(tl + 1);
  roaring_bitmap_t *drop = roaring_bitmap_create();
  int rc = t && drop ? 0 : -ENOMEM;
  if (!rc) memcpy(t, r->fb.ptr, tl);
  roaring_uint32_iterator_t it;
  roaring_init_iterator(cands, &it);
  for (; !rc && it.has_value; roaring_advance_uint32_iterator(&it)) {
    cs_str key;
    bool missing;
    if ((rc = qrun_key(r, it.current_value, field, &key, &missing))) break;
    if (missing || key.len < tl || memcmp(key.ptr + key.len - tl, t, tl))
      roaring_bitmap_add(drop, it.current_value);
  }
  if (!rc) roaring_bitmap_andnot_inplace(cands, drop);
  ixq_set_free(drop);
  free(t);
  return rc;
}

static int eval_text(qrun *r, const cs_qnode *n, roaring_bitmap_t *out) {
  const ix_index *ix = r->s->ix;
  uint32_t a = r->q->account;
  int rc = 0;
  switch (n->op) {
  case CS_OP_EXISTS: {
    /* present: not absent (a value with an empty key is present) */
    roaring_bitmap_t *e = roaring_bitmap_create();
    if (!e) return -ENOMEM;
    ixq_absent(ix, a, n->field, out);
    ixq_empty(ix, a, n->field, e);
    roaring_bitmap_andnot_inplace(out, e);
    ixq_set_free(e);
    return complement(r, out);
  }
  case CS_OP_NEQ:
  case CS_OP_IN:
  case CS_OP_EQ:
    for (uint32_t i = 0; i < n->nvalues && !rc; i++)
      rc = ixq_match(ix, a, n->field, CS_OP_EQ, n->values[i].ptr,
                     n->values[i].len, &r->fb, out);
    if (!rc && n->op == CS_OP_NEQ) rc = complement(r, out);
    return rc;
  case CS_OP_SUFFIX: {
    bool verify;
    rc = ixq_suffix(ix, a, n->field, n->values[0].ptr, n->values[0].len, &r->fb,
                    out, &verify);
    return rc || !verify ? rc : keep_suffix(r, n->field, out);
  }
  default:
    return ixq_match(ix, a, n->field, n->op, n->values[0].ptr, n->values[0].len,
                     &r->fb, out);
  }
}

/* The set of n, a new bitmap in *out. */
static int eval_node(qrun *r, const cs_qnode *n, roaring_bitmap_t **out) {
  roaring_bitmap_t *b = roaring_bitmap_create();
  if (!b) return -ENOMEM;
  int rc = 0;
  if (n->kind == CS_Q_COND) {
    rc = n->field == CS_QF_ID        ? eval_id(r, n, b)
         : n->field < CS_FIELD_COUNT ? eval_text(r, n, b)
                                     : eval_time(r, n, b);
  } else {
    for (uint32_t i = 0; i < n->nkids && !rc; i++) {
      roaring_bitmap_t *k;
      if ((rc = eval_node(r, &n->kids[i], &k))) break;
      if (i == 0 || n->kind != CS_Q_AND)
        roaring_bitmap_or_inplace(b, k);
      else
        roaring_bitmap_and_inplace(b, k);
      ixq_set_free(k);
      if (n->kind == CS_Q_AND && roaring_bitmap_is_empty(b)) break;
    }
    if (!rc && n->kind == CS_Q_NOT) rc = complement(r, b);
  }
  if (rc) {
    ixq_set_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

static bool sorts_by_relevance(const cs_qry *q) {
  for (uint32_t i = 0; i < q->nsort; i++)
    if (q->sort[i].field == CS_QF_RELEVANCE) return true;
  return false;
}

/* Each match's relevance: per word its best tier (the first that holds
 * it), summed as typos, prefixes and field groups (cs_query.h). */
static int score_matches(qrun *r) {
  roaring_bitmap_t *left = NULL;
  int rc = 0;
  for (uint32_t w = 0; w < r->text.nwords && !rc; w++) {
    ixq_set_free(left);
    if (!(left = roaring_bitmap_copy(r->match))) return -ENOMEM;
    for (int t = 0; t < IXQ_TIERS && !rc; t++) {
      const roaring_bitmap_t *tb = r->text.tier[w][t];
      if (!tb) continue;
      roaring_bitmap_t *hit = roaring_bitmap_and(left, tb);
      if (!hit) {
        rc = -ENOMEM;
        break;
      }
      uint64_t add = (uint64_t)IXQ_TIER_TYPOS(t) << 40 |
                     (uint64_t)IXQ_TIER_PREFIX(t) << 20 | IXQ_TIER_GROUP(t);
      roaring_uint32_iterator_t it;
      roaring_init_iterator(hit, &it);
      for (; it.has_value && !rc; roaring_advance_uint32_iterator(&it)) {
        uint64_t k = (uint64_t)it.current_value + 1,
                 *v = u64map_get(&r->score, k);
        if (v)
          *v += add;
        else
          rc = u64map_put(&r->score, k, add);
      }
      roaring_bitmap_andnot_inplace(left, hit);
      ixq_set_free(hit);
    }
  }
  ixq_set_free(left);
  return rc;
}

/* The matches: filter, then free text. */
static int eval_matches(qrun *r) {
  const cs_qry *q = r->q;
  int rc;
  if (q->filter && (rc = eval_node(r, q->filter, &r->match))) return rc;
  if (q->q.ptr) {
    bool tiers = sorts_by_relevance(q);
    rc = ixq_text_eval(r->s->ix, q->account, q->q.ptr, q->q.len, q->fuzzy,
                       tiers, &r->text);
    if (rc) return rc;
    if (r->match) {
      roaring_bitmap_and_inplace(r->match, r->text.set);
    } else {
      r->match = r->text.set; /* postings hold live slots only */
      r->text.set = NULL;
    }
    return tiers ? score_matches(r) : 0;
  }
  if (!r->match && (!live_set(r) || !(r->match = roaring_bitmap_copy(r->live))))
    return -ENOMEM;
  return 0;
}

/* ---------------------------------------------------------------- run */

static void qrun_free(qrun *r) {
  ixq_set_free(r->live);
  ixq_set_free(r->match);
  ixq_text_free(&r->text);
  u64map_free(&r->score);
  msgpack_zone_destroy(&r->rz);
  fold_buf_free(&r->fb);
}

static int run_locked(qrun *r, cs_qresult *out) {
  int rc = eval_matches(r);
  if (rc) return rc == -ENOMEM ? cs_err(r->err, rc, "out of memory") : rc;
  out->page.total = roaring_bitmap_get_cardinality(r->match);
  if ((rc = qfacet_count(r, out->facets))) return rc;
  out->nfacets = r->q->nfacets;
  uint32_t slots[CS_PAGE_LIMIT_MAX], count = 0;
  if ((rc = qorder_page(r, slots, &count, &out->page.more, &out->next)))
    return rc;
  if (count && !(out->page.contacts = malloc(count * sizeof(cs_contact))))
    return cs_err(r->err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < count; i++) {
    rec_body b;
    msgpack_zone_clear(&r->rz);
    if ((rc = store_read_slot(r->s, slots[i], &r->rz, &b, r->err))) return rc;
    out->page.contacts[out->page.count++] = b.contact;
  }
  out->as_of = r->s->applied_seq;
  return 0;
}

int cs_query_run(cs_store *s, const cs_qry *q, cs_qresult *out, cs_error *err) {
  memset(out, 0, sizeof *out);
  cs_qfault where;
  int rc = cs_query_check(q, &where, err);
  if (rc) return rc;
  if (s->opts.no_indexes)
    return cs_err(err, CS_EINVAL, "the store was opened without indexes");
  qrun r = {.s = s, .q = q, .err = err};
  if (!(r.mem = msgpack_zone_new(REC_ZONE_CHUNK_BYTES)) ||
      !msgpack_zone_init(&r.rz, REC_ZONE_CHUNK_BYTES)) {
    if (r.mem) msgpack_zone_free(r.mem);
    return cs_err(err, -ENOMEM, "out of memory");
  }
  pthread_rwlock_rdlock(&s->ilock);
  if (s->bulk)
    rc = cs_err(err, CS_EINVAL, "a bulk load is in progress");
  else
    rc = run_locked(&r, out);
  pthread_rwlock_unlock(&s->ilock);
  qrun_free(&r);
  out->mem = r.mem;
  if (rc) cs_qresult_free(out);
  return rc;
}

void cs_qresult_free(cs_qresult *r) {
  free(r->page.contacts);
  if (r->mem) msgpack_zone_free(r->mem);
  memset(r, 0, sizeof *r);
}
