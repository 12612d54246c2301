/*
 * ix_snap.c: the index's snapshot codec (ix_save, ix_load).
 *
 * Why: loading a snapshot must rebuild a million contacts' indexes in a
 * fraction of a second, far faster than replaying the log, and must never
 * trust the bytes it reads: the snapshot's checksum was verified, but its
 * shape is checked here as if it had not been.
 *
 * Snapshot (ix_save / ix_load): one msgpack array
 *     ["csix", 2, [field0 .. field6], [rev email, rev phone], meta, times]
 *     field = [exact dict, words dict or nil (phone)]
 *     dict  = [key count, keys bin, postings bin]
 *     times = bin of created_ms, updated_ms per slot (16 bytes, little
 *             endian), for the slots below the last one indexed
 * keys bin: per key, varint length then the key bytes (account + text);
 * sorted dictionaries (all but meta) in sorted order, so loading rebuilds
 * the order without sorting. Version 1 (no reversed, meta or times, words
 * unsorted) is refused as unusable: the store then rebuilds the index
 * from the log, and the next snapshot is version 2. postings bin: per key, in
 * the same order, varint count n >= 1, varint first slot, then n - 1 varints of
 * (gap - 1). Varints are LEB128, at most 5 bytes. A few large bins instead of
 * millions of msgpack objects keep both the unpacker's and our load work to a
 * linear scan. Hashes are not saved: recomputing them is about 1% of a load's
 * time, while 4 more bytes a key would be read (and faulted in) from the file.
 * ix_load checks every length, count, order, slot (< slot_limit),
 * duplicate and the disjointness of invariant 3, and never trusts a size
 * before checking it against the bytes that remain.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ix_int.h"
#include "le.h"
#include "mp.h"

#define IX_MAGIC "csix"
#define IX_VERSION 2

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static size_t varint_put(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

/* Reads a varint of at most 32 bits. false on truncation or overflow. */
static bool varint_get(const uint8_t *p, size_t len, size_t *pos,
                       uint32_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (*pos >= len) return false;
    uint8_t b = p[(*pos)++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      if (v > UINT32_MAX) return false;
      *out = (uint32_t)v;
      return true;
    }
  }
  return false;
}

/* Streams bytes into a msgpack bin body through a buffer. */
typedef struct save_out {
  msgpack_packer *pk;
  uint8_t buf[1 << 16];
  size_t n;
  int rc;
} save_out;

static void save_flush(save_out *o) {
  if (o->n && !o->rc && msgpack_pack_bin_body(o->pk, o->buf, o->n))
    o->rc = -EIO;
  o->n = 0;
}

static void save_bytes(save_out *o, const void *p, size_t n) {
  const uint8_t *s = p;
  while (n) {
    if (o->n == sizeof o->buf) save_flush(o);
    size_t k = sizeof o->buf - o->n;
    if (k > n) k = n;
    memcpy(o->buf + o->n, s, k);
    o->n += k;
    s += k;
    n -= k;
  }
}

static void save_varint(save_out *o, uint64_t v) {
  if (sizeof o->buf - o->n < 10) save_flush(o);
  o->n += varint_put(o->buf + o->n, v);
}

/* The entries of d in saved order: the sorted order for exact
 * dictionaries, entry order for words. Calls fn(e) for each. */
#define DICT_FOREACH(d, e, body)                                               \
  do {                                                                         \
    if ((d)->sorted) {                                                         \
      for (uint32_t c_ = 0; c_ < (d)->nchunks; c_++)                           \
        for (uint32_t i_ = 0; i_ < (d)->chunks[c_].n; i_++) {                  \
          const uint32_t *v_ = (d)->chunks[c_].v;                              \
          /* key order is not memory order: fetch ahead */                     \
          if (i_ + 16 < (d)->chunks[c_].n)                                     \
            __builtin_prefetch(&(d)->ents[v_[i_ + 16]]);                       \
          if (i_ + 8 < (d)->chunks[c_].n)                                      \
            __builtin_prefetch((d)->arena +                                    \
                               ((d)->ents[v_[i_ + 8]].kref >> 24));            \
          uint32_t e = v_[i_];                                                 \
          body;                                                                \
        }                                                                      \
    } else {                                                                   \
      for (uint32_t e = 0; e < (d)->nents; e++) {                              \
        if (!(d)->ents[e].post) continue;                                      \
        body;                                                                  \
      }                                                                        \
    }                                                                          \
  } while (0)

/* Bytes of one posting's encoding; with o set, writes it. */
static uint64_t post_encode(ix_post p, save_out *o) {
  uint64_t n = post_card(p), bytes = varint_len(n);
  if (o) save_varint(o, n);
  post_iter it;
  post_iter_init(&it, p, 0);
  uint32_t s, prev = 0;
  bool first = true;
  while (post_iter_next(&it, &s)) {
    uint32_t v = first ? s : s - prev - 1;
    bytes += varint_len(v);
    if (o) save_varint(o, v);
    prev = s;
    first = false;
  }
  return bytes;
}

static int save_dict(const ix_dict *d, save_out *o) {
  msgpack_packer *pk = o->pk;
  if (d->npending || d->nstage)
    return CS_EINVAL; /* in bulk mode: the order is incomplete */
  uint64_t kbytes = 0, pbytes = 0;
  DICT_FOREACH(d, e, {
    size_t len;
    ent_key(d, e, &len);
    kbytes += varint_len(len) + len;
    pbytes += post_encode(d->ents[e].post, NULL);
  });
  if (kbytes > UINT32_MAX || pbytes > UINT32_MAX) return -EFBIG;
  if (msgpack_pack_array(pk, 3) || msgpack_pack_uint32(pk, d->live) ||
      msgpack_pack_bin(pk, (size_t)kbytes))
    return -EIO;
  DICT_FOREACH(d, e, {
    size_t len;
    const uint8_t *k = ent_key(d, e, &len);
    save_varint(o, len);
    save_bytes(o, k, len);
  });
  save_flush(o);
  if (o->rc) return o->rc;
  if (msgpack_pack_bin(pk, (size_t)pbytes)) return -EIO;
  DICT_FOREACH(d, e, { post_encode(d->ents[e].post, o); });
  save_flush(o);
  return o->rc;
}

int ix_save(const ix_index *ix, msgpack_packer *pk) {
  save_out *o = malloc(sizeof(*o));
  if (!o) return -ENOMEM;
  o->pk = pk;
  o->n = 0;
  o->rc = 0;
  int rc = -EIO;
  if (msgpack_pack_array(pk, 6) ||
      msgpack_pack_str_with_body(pk, IX_MAGIC, strlen(IX_MAGIC)) ||
      msgpack_pack_uint32(pk, IX_VERSION) ||
      msgpack_pack_array(pk, CS_FIELD_COUNT))
    goto out;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (msgpack_pack_array(pk, 2)) goto out;
    if ((rc = save_dict(&ix->exact[f], o))) goto out;
    if (f == CS_PHONE) {
      rc = msgpack_pack_nil(pk) ? -EIO : 0;
    } else {
      rc = save_dict(&ix->words[f], o);
    }
    if (rc) goto out;
  }
  rc = -EIO;
  if (msgpack_pack_array(pk, IX_NREV)) goto out;
  for (int r = 0; r < IX_NREV; r++)
    if ((rc = save_dict(&ix->rev[r], o))) goto out;
  if ((rc = save_dict(&ix->meta, o))) goto out;
  rc = -EIO;
  if (msgpack_pack_bin(pk, (size_t)ix->ntms * 16)) goto out;
  for (uint32_t i = 0; i < 2 * ix->ntms; i++) {
    uint8_t b[8];
    le_put64(b, (uint64_t)ix->tms[i]);
    save_bytes(o, b, 8);
  }
  save_flush(o);
  rc = o->rc;
out:
  free(o);
  return rc;
}

typedef struct load_ctx {
  char *errbuf;
  size_t errlen;
  uint32_t slot_limit;
  uint64_t *seen; /* slots met in the current exact dictionary */
  uint32_t *scratch;
  size_t scratch_cap;
} load_ctx;

__attribute__((format(printf, 2, 3))) static int
load_err(load_ctx *lc, const char *fmt, ...) {
  if (lc->errbuf && lc->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lc->errbuf, lc->errlen, fmt, ap);
    va_end(ap);
  }
  return CS_ECORRUPT;
}

/* Decodes one posting list at *pos into entry e. */
static int load_post(load_ctx *lc, ix_dict *d, uint32_t e, const uint8_t *p,
                     size_t len, size_t *pos, const char *what) {
  uint32_t n, s;
  if (!varint_get(p, len, pos, &n) || n == 0 || n > lc->slot_limit)
    return load_err(lc, "index %s: bad posting count at byte %zu", what, *pos);
  if (n > len - *pos) /* each slot takes at least one byte */
    return load_err(lc, "index %s: posting of %u slots overruns its bin", what,
                    n);
  if (lc->scratch_cap < n) {
    size_t cap = lc->scratch_cap ? lc->scratch_cap : 1024;
    while (cap < n)
      cap *= 2;
    uint32_t *sc = realloc(lc->scratch, cap * 4);
    if (!sc) return -ENOMEM;
    lc->scratch = sc;
    lc->scratch_cap = cap;
  }
  uint64_t cur = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!varint_get(p, len, pos, &s))
      return load_err(lc, "index %s: truncated posting at byte %zu", what,
                      *pos);
    cur = i == 0 ? s : cur + (uint64_t)s + 1;
    if (cur >= lc->slot_limit)
      return load_err(lc, "index %s: slot %llu out of range (limit %u)", what,
                      (unsigned long long)cur, lc->slot_limit);
    lc->scratch[i] = (uint32_t)cur;
  }
  if (lc->seen) {
    for (uint32_t i = 0; i < n; i++) {
      uint32_t x = lc->scratch[i];
      if (lc->seen[x >> 6] & (1ull << (x & 63)))
        return load_err(lc, "index %s: slot %u under two keys", what, x);
      lc->seen[x >> 6] |= 1ull << (x & 63);
    }
  }
  if (n == 1) {
    d->ents[e].post = POST_MAKE_ONE(lc->scratch[0]);
  } else if (n <= IX_ARRAY_MAX) {
    ix_arr *a = arr_new(d, n);
    if (!a) return -ENOMEM;
    memcpy(a->v, lc->scratch, (size_t)n * 4);
    a->n = n;
    d->ents[e].post = (uint64_t)(uintptr_t)a;
  } else {
    if (big_add(d, e)) return -ENOMEM;
    roaring_bitmap_t *r = roaring_bitmap_of_ptr(n, lc->scratch);
    if (!r) {
      d->nbig--;
      return -ENOMEM;
    }
    roaring_bitmap_run_optimize(r);
    roaring_bitmap_shrink_to_fit(r);
    d->ents[e].post = (uint64_t)(uintptr_t)r | 2u;
  }
  return 0;
}

static int load_dict(load_ctx *lc, ix_dict *d, const msgpack_object *o,
                     const char *what) {
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
    return load_err(lc, "index %s: not a [count, keys, postings] array", what);
  const msgpack_object *a = o->via.array.ptr;
  if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      a[0].via.u64 >= UINT32_MAX - 1)
    return load_err(lc, "index %s: bad key count", what);
  if (a[1].type != MSGPACK_OBJECT_BIN || a[2].type != MSGPACK_OBJECT_BIN)
    return load_err(lc, "index %s: keys or postings not a bin", what);
  uint32_t nkeys = (uint32_t)a[0].via.u64;
  const uint8_t *kp = (const uint8_t *)a[1].via.bin.ptr;
  size_t klen = a[1].via.bin.size;
  const uint8_t *pp = (const uint8_t *)a[2].via.bin.ptr;
  size_t plen = a[2].via.bin.size;
  /* a key takes at least 6 bytes (length, account, one byte of text) and a
   * posting at least 2 */
  if ((uint64_t)nkeys * 6 > klen || (uint64_t)nkeys * 2 > plen)
    return load_err(lc, "index %s: %u keys cannot fit in %zu + %zu bytes", what,
                    nkeys, klen, plen);
  if (nkeys == 0) {
    if (klen || plen)
      return load_err(lc, "index %s: bytes after the last key", what);
    return 0;
  }
  d->ents = ix_huge(calloc(nkeys, sizeof(ix_ent)), nkeys * sizeof(ix_ent));
  d->arena = ix_huge(malloc(klen), klen);
  uint64_t ts = tab_size_for(nkeys);
  d->tab = ix_huge(calloc(ts, sizeof(uint64_t)), ts * 8);
  uint32_t nch = d->sorted ? (nkeys + IX_CHUNK_FILL - 1) / IX_CHUNK_FILL : 0;
  if (nch) d->chunks = calloc(nch, sizeof(ix_chunk));
  if (!d->ents || !d->arena || !d->tab || (nch && !d->chunks)) return -ENOMEM;
  d->ents_cap = d->nents = nkeys;
  d->arena_cap = klen;
  d->tab_size = ts;
  d->chunks_cap = nch;
  for (uint32_t c = 0; c < nch; c++) {
    if (!(d->chunks[c].v = malloc(IX_CHUNK_BYTES))) return -ENOMEM;
    d->nchunks++;
  }

  uint64_t *cells = malloc((size_t)nkeys * sizeof(uint64_t));
  if (!cells) return -ENOMEM;
  size_t pos = 0;
  const uint8_t *prev = NULL;
  size_t prev_len = 0;
  for (uint32_t e = 0; e < nkeys; e++) {
    uint32_t len;
    if (!varint_get(kp, klen, &pos, &len) || len < 5 ||
        len > IX_KEY_BYTES_MAX || len > klen - pos) {
      free(cells);
      return load_err(lc, "index %s: bad key length at byte %zu", what, pos);
    }
    const uint8_t *k = kp + pos;
    pos += len;
    if (d->sorted) {
      if (prev && key_cmp_raw(prev, prev_len, k, len) >= 0) {
        free(cells);
        return load_err(lc, "index %s: key %u out of order", what, e);
      }
      prev = k;
      prev_len = len;
      ix_chunk *ch = &d->chunks[e / IX_CHUNK_FILL];
      chunk_set(ch, ch->n++, e, text_pk(k + 4, len - 4));
    }
    memcpy(d->arena + d->arena_len, k, len);
    d->ents[e].kref = d->arena_len << 24 | len;
    d->arena_len += len;
    uint32_t account = (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 |
                       (uint32_t)k[2] << 8 | k[3];
    uint32_t h = key_hash(account, (const char *)k + 4, len - 4);
    cells[e] = (uint64_t)h << 32 | (e + 1);
  }
  if (pos != klen) {
    free(cells);
    return load_err(lc, "index %s: %zu stray bytes after the keys", what,
                    klen - pos);
  }
  for (uint32_t c = 0; c < d->nchunks; c++)
    chunk_fix(d, c);
  /* Sorted dictionaries cannot hold a key twice (checked above). */
  int brc = tab_build(d, cells, nkeys, !d->sorted);
  free(cells);
  if (brc == -EEXIST)
    return load_err(lc, "index %s: a key appears twice", what);
  if (brc) return brc;
  d->live = nkeys;
  pos = 0;
  for (uint32_t e = 0; e < nkeys; e++) {
    int rc = load_post(lc, d, e, pp, plen, &pos, what);
    if (rc) return rc;
  }
  if (pos != plen)
    return load_err(lc, "index %s: %zu stray bytes after the postings", what,
                    plen - pos);
  return 0;
}

/* One dictionary to load: a task of ix_par_each, with its own load_ctx
 * (scratch, the slots seen for invariant 3, the message) so that tasks on
 * different threads share nothing but the image they read. */
typedef struct load_task {
  ix_dict *d;
  const msgpack_object *o;
  bool disjoint; /* an exact or reversed dictionary: lists disjoint */
  char what[48];
  size_t bytes;
  int rc;
  char err[256];
} load_task;

typedef struct load_run {
  load_task t[IX_NDICTS];
  int n;
  uint32_t slot_limit;
} load_run;

static int load_task_run(void *ctx, size_t i) {
  load_run *lr = ctx;
  load_task *t = &lr->t[i];
  load_ctx lc = {t->err, sizeof t->err, lr->slot_limit, NULL, NULL, 0};
  if (t->disjoint) {
    size_t words = ((size_t)lr->slot_limit + 63) / 64;
    lc.seen = calloc(words ? words : 1, sizeof(uint64_t));
    if (!lc.seen) return t->rc = -ENOMEM;
  }
  t->rc = load_dict(&lc, t->d, t->o, t->what);
  free(lc.seen);
  free(lc.scratch);
  return t->rc;
}

static void load_add(load_run *lr, ix_dict *d, const msgpack_object *o,
                     bool disjoint, const char *fmt, const char *name) {
  load_task *t = &lr->t[lr->n++];
  *t = (load_task){.d = d, .o = o, .disjoint = disjoint};
  snprintf(t->what, sizeof t->what, fmt, name);
  if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3 &&
      o->via.array.ptr[1].type == MSGPACK_OBJECT_BIN)
    t->bytes = o->via.array.ptr[1].via.bin.size;
}

static int load_times(ix_index *ix, const msgpack_object *o, load_ctx *lc);

/* Checks the image's outline, then loads its dictionaries, the largest
 * first, a few at once (ix_par_each), then the times. */
static int ix_load_fields(ix_index *ix, const msgpack_object *obj,
                          load_ctx *lc) {
  if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size < 3 ||
      !MP_KEY_IS(&obj->via.array.ptr[0], IX_MAGIC))
    return load_err(lc, "index: not an index image");
  const msgpack_object *v = &obj->via.array.ptr[1];
  if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 == 1) {
    load_err(lc, "index: format 1, without the query structures");
    return CS_EFORMAT;
  }
  if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != IX_VERSION ||
      obj->via.array.size != 6)
    return load_err(lc, "index: unknown version");
  const msgpack_object *fs = &obj->via.array.ptr[2];
  if (fs->type != MSGPACK_OBJECT_ARRAY || fs->via.array.size != CS_FIELD_COUNT)
    return load_err(lc, "index: expected %d fields", CS_FIELD_COUNT);
  load_run *lr = calloc(1, sizeof *lr);
  if (!lr) return -ENOMEM;
  lr->slot_limit = lc->slot_limit;
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    const msgpack_object *fo = &fs->via.array.ptr[f];
    if (fo->type != MSGPACK_OBJECT_ARRAY || fo->via.array.size != 2) {
      free(lr);
      return load_err(lc, "index: field %s is not [exact, words]",
                      cs_field_name(f));
    }
    load_add(lr, &ix->exact[f], &fo->via.array.ptr[0], true, "%s exact",
             cs_field_name(f));
    const msgpack_object *wo = &fo->via.array.ptr[1];
    if (f == CS_PHONE) {
      if (wo->type != MSGPACK_OBJECT_NIL) {
        free(lr);
        return load_err(lc, "index: phone has a words dictionary");
      }
    } else {
      load_add(lr, &ix->words[f], wo, false, "%s words", cs_field_name(f));
    }
  }
  const msgpack_object *o = obj->via.array.ptr + 3;
  if (o[0].type != MSGPACK_OBJECT_ARRAY || o[0].via.array.size != IX_NREV) {
    free(lr);
    return load_err(lc, "index: expected %d reversed dictionaries", IX_NREV);
  }
  for (int r = 0; r < IX_NREV; r++)
    load_add(lr, &ix->rev[r], &o[0].via.array.ptr[r], true, "%s reversed",
             r == IX_REV_EMAIL ? "email" : "phone");
  load_add(lr, &ix->meta, &o[1], false, "%s", "meta");
  /* largest first, so that the threads end together */
  for (int i = 1; i < lr->n; i++)
    for (int j = i; j > 0 && lr->t[j - 1].bytes < lr->t[j].bytes; j--) {
      load_task t = lr->t[j];
      lr->t[j] = lr->t[j - 1];
      lr->t[j - 1] = t;
    }
  int rc = ix_par_each((size_t)lr->n, load_task_run, lr);
  if (rc) {
    /* a task that failed names the problem */
    for (int i = 0; i < lr->n; i++)
      if (lr->t[i].rc && lr->t[i].err[0]) {
        load_err(lc, "%s", lr->t[i].err);
        break;
      }
    for (int i = 0; i < lr->n; i++)
      if (lr->t[i].rc == CS_ECORRUPT) rc = CS_ECORRUPT;
  }
  free(lr);
  if (!rc) rc = load_times(ix, &o[2], lc);
  return rc;
}

/* The times (version 2). */
static int load_times(ix_index *ix, const msgpack_object *o, load_ctx *lc) {
  if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size % 16 ||
      o->via.bin.size / 16 > lc->slot_limit)
    return load_err(lc, "index: times are not 16 bytes for each slot");
  uint32_t n = (uint32_t)(o->via.bin.size / 16);
  free(ix->tms);
  ix->tms = NULL;
  if (n) {
    ix->tms = ix_huge(malloc((size_t)n * 16), (size_t)n * 16);
    if (!ix->tms) return -ENOMEM;
    const uint8_t *p = (const uint8_t *)o->via.bin.ptr;
    for (uint32_t i = 0; i < 2 * n; i++)
      ix->tms[i] = (int64_t)le_get64(p + 8 * (size_t)i);
  }
  ix->ntms = ix->tms_cap = n;
  return 0;
}

int ix_load(ix_index *ix, const msgpack_object *obj, uint32_t slot_limit,
            char *errbuf, size_t errlen) {
  load_ctx lc = {errbuf, errlen, slot_limit, NULL, NULL, 0};
  for (int i = 0; i < IX_NDICTS; i++)
    if (ix_dict_at(ix, i)->live)
      return load_err(&lc, "index: load into a non-empty index");
  int rc = ix_load_fields(ix, obj, &lc);
  if (!rc) rc = typo_rebuild(ix); /* not saved: built from the words */
  free(lc.scratch);
  if (rc) {
    if (rc == -ENOMEM) load_err(&lc, "index: out of memory while loading");
    ix_clear(ix);
  }
  return rc;
}
