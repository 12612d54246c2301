/*
 * ct_qcursor.c: a query's cursor, and the canonical hash that binds it to
 * its query.
 *
 * A query cursor is base64url (ct_b64url_encode) of:
 *
 *   offset size  field
 *   0      1     CT_CURSOR_QUERY
 *   1      8     check, big-endian: XXH3-64 of the bytes from offset 9 to
 *                the end, seeded with the XXH3-64 of the query's canonical
 *                form (so another query, or any byte changed, fails it)
 *   9      1     nkeys, 0..CS_QUERY_SORT_MAX
 *   then per key:
 *          1     flags: 1 missing, 2 text follows (no other bit)
 *          4     text length, big-endian   } only with flag 2
 *          n     text bytes                }
 *          8     num, big-endian
 *   then   8     id, big-endian, and nothing after it
 *
 * The canonical form (ct_query_hash) is q, fuzzy, the filter tree in
 * pre-order with every value, and the sort keys with their orders after
 * defaults; a cursor decodes only when it was made for a query with the
 * same form.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ct_codec.h"
#include "ct_codec_int.h"

static void ct_hash_u64(XXH3_state_t *h, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(v >> (8 * i));
  XXH3_64bits_update(h, b, sizeof b);
}

/* A string with its presence and length, so that no two differ only in
 * where one ends and the next begins. */
static void ct_hash_str(XXH3_state_t *h, cs_str s) {
  ct_hash_u64(h, s.ptr ? s.len + 1 : 0);
  if (s.ptr) XXH3_64bits_update(h, s.ptr, s.len);
}

static void ct_hash_node(XXH3_state_t *h, const cs_qnode *n) {
  ct_hash_u64(h, (uint64_t)n->kind);
  if (n->kind != CS_Q_COND) {
    ct_hash_u64(h, n->nkids);
    for (uint32_t i = 0; i < n->nkids; i++)
      ct_hash_node(h, &n->kids[i]);
    return;
  }
  ct_hash_u64(h, (uint64_t)n->field);
  ct_hash_u64(h, (uint64_t)n->op);
  ct_hash_u64(h, n->nvalues);
  ct_hash_u64(h, (n->values ? 1 : 0) | (n->nums ? 2 : 0));
  for (uint32_t i = 0; i < n->nvalues; i++) {
    if (n->values) ct_hash_str(h, n->values[i]);
    if (n->nums) ct_hash_u64(h, n->nums[i]);
  }
}

/* The XXH3-64 of the canonical form of the query (see the top). */
int ct_query_hash(const cs_qry *q, uint64_t *out) {
  XXH3_state_t *h = XXH3_createState();
  if (!h) return -1;
  XXH3_64bits_reset(h);
  ct_hash_u64(h, CT_CURSOR_QUERY);
  ct_hash_str(h, q->q);
  ct_hash_u64(h, q->fuzzy);
  ct_hash_u64(h, q->filter ? 1 : 0);
  if (q->filter) ct_hash_node(h, q->filter);
  ct_hash_u64(h, q->nsort);
  for (uint32_t i = 0; i < q->nsort; i++) {
    ct_hash_u64(h, (uint64_t)q->sort[i].field);
    ct_hash_u64(h, q->sort[i].desc);
  }
  *out = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  return 0;
}

static void ct_put_be(unsigned char *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t ct_get_be(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v = v << 8 | p[i];
  return v;
}

enum { CT_QPOS_MISSING = 1, CT_QPOS_TEXT = 2 };

char *ct_query_cursor(const ct_query *cq, const cs_qpos *pos) {
  size_t len = 1 + 8 + 1 + 8;
  uint32_t nkeys = pos->nkeys <= CS_QUERY_SORT_MAX ? pos->nkeys : 0;
  for (uint32_t i = 0; i < nkeys; i++)
    len += 1 + (pos->key[i].text.ptr ? 4 + pos->key[i].text.len : 0) + 8;
  unsigned char *raw = malloc(len);
  char *out = malloc(CT_B64URL_CHARS(len) + 1);
  if (!raw || !out) {
    free(raw);
    free(out);
    return NULL;
  }
  unsigned char *w = raw;
  *w++ = CT_CURSOR_QUERY;
  ct_put_be(w, cq->hash, 8);
  w += 8;
  *w++ = (unsigned char)nkeys;
  for (uint32_t i = 0; i < nkeys; i++) {
    const cs_qpos_key *k = &pos->key[i];
    *w++ = (unsigned char)((k->missing ? CT_QPOS_MISSING : 0) |
                           (k->text.ptr ? CT_QPOS_TEXT : 0));
    if (k->text.ptr) {
      ct_put_be(w, k->text.len, 4);
      memcpy(w + 4, k->text.ptr, k->text.len);
      w += 4 + k->text.len;
    }
    ct_put_be(w, k->num, 8);
    w += 8;
  }
  ct_put_be(w, pos->id, 8);
  ct_put_be(raw + 1, XXH3_64bits_withSeed(raw + 9, len - 9, cq->hash), 8);
  ct_b64url_encode(raw, len, out);
  free(raw);
  return out;
}

/* Reads a cursor into cq->after. 0, or -1 for anything that is not a
 * cursor at all, -2 for one whose check fails: made for another query, or
 * changed. */
int ct_query_cursor_read(ct_query *cq, cs_str s) {
  unsigned char *raw = ct_qalloc(cq, s.len / 4 * 3 + 3);
  size_t len;
  if (!raw || ct_b64url_decode(s.ptr, s.len, raw, &len)) return -1;
  const unsigned char *r = raw, *end = raw + len;
  if (end - r < 10 || r[0] != CT_CURSOR_QUERY) return -1;
  if (ct_get_be(r + 1, 8) !=
      XXH3_64bits_withSeed(r + 9, (size_t)(end - r - 9), cq->hash))
    return -2;
  cs_qpos *pos = &cq->after;
  memset(pos, 0, sizeof *pos);
  pos->nkeys = r[9];
  r += 10;
  if (pos->nkeys > CS_QUERY_SORT_MAX) return -1;
  for (uint32_t i = 0; i < pos->nkeys; i++) {
    cs_qpos_key *k = &pos->key[i];
    if (end - r < 1 || (r[0] & ~(CT_QPOS_MISSING | CT_QPOS_TEXT))) return -1;
    k->missing = r[0] & CT_QPOS_MISSING;
    bool text = r[0] & CT_QPOS_TEXT;
    r++;
    if (text) {
      if (end - r < 4) return -1;
      size_t tlen = (size_t)ct_get_be(r, 4);
      r += 4;
      if ((size_t)(end - r) < tlen) return -1;
      k->text = (cs_str){(const char *)r, tlen};
      r += tlen;
    }
    if (end - r < 8) return -1;
    k->num = ct_get_be(r, 8);
    r += 8;
  }
  if (end - r != 8) return -1;
  pos->id = ct_get_be(r, 8);
  cq->q.after = pos;
  return 0;
}
