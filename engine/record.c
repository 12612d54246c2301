/*
 * record.c: framing, checking and msgpack coding of log records.
 *
 * The layout is written down in record.h. Everything read from disk is
 * checked here before any decoder sees it: the length against
 * REC_PAYLOAD_MAX and the bytes available, then the XXH3 checksum, and only
 * then msgpack; after msgpack every value's type and range is checked too.
 */
#include "record.h"

#include "cs_assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "le.h"
#include "mp.h"

_Static_assert(SEG_MAGIC_BYTES == 8, "segment magic is 8 bytes");

void seg_header_make(uint8_t out[SEG_HEADER_BYTES], uint32_t seg_no) {
  memset(out, 0, SEG_HEADER_BYTES);
  memcpy(out, SEG_MAGIC, SEG_MAGIC_BYTES);
  le_put32(out + 8, REC_FORMAT_VERSION);
  le_put32(out + 12, seg_no);
  le_put64(out + 24, XXH3_64bits(out, 24));
}

int seg_header_check(const uint8_t *p, size_t avail, uint32_t seg_no) {
  if (avail < SEG_HEADER_BYTES) return CS_ECORRUPT;
  if (memcmp(p, SEG_MAGIC, SEG_MAGIC_BYTES) != 0) return CS_EFORMAT;
  if (le_get64(p + 24) != XXH3_64bits(p, 24)) return CS_ECORRUPT;
  uint32_t format = le_get32(p + 8);
  if (format < REC_FORMAT_OLDEST || format > REC_FORMAT_VERSION)
    return CS_EFORMAT;
  if (le_get32(p + 12) != seg_no) return CS_ECORRUPT;
  return 0;
}

/* The checksum covers the header's first 16 bytes and the payload: the
 * payload's XXH3 seeded with the header's. */
static uint64_t rec_sum(const uint8_t *hdr, const uint8_t *payload,
                        uint32_t len) {
  return XXH3_64bits_withSeed(payload, len, XXH3_64bits(hdr, 16));
}

void rec_frame_flags(uint8_t *dst, uint8_t type, uint64_t seq, uint32_t len,
                     uint8_t flags) {
  le_put32(dst, len);
  dst[4] = type;
  dst[5] = flags;
  dst[6] = dst[7] = 0;
  le_put64(dst + 8, seq);
  le_put64(dst + 16, rec_sum(dst, dst + REC_HEADER_BYTES, len));
}

void rec_mark_synced(uint8_t *rec) {
  rec_frame_flags(rec, rec[4], le_get64(rec + 8), le_get32(rec),
                  rec[5] | REC_FLAG_SYNCED);
}

int rec_check(const uint8_t *p, size_t avail, rec_view *out) {
  if (avail < REC_HEADER_BYTES) return REC_TRUNCATED;
  uint32_t len = le_get32(p);
  uint8_t type = p[4];
  if (len > REC_PAYLOAD_MAX || type < REC_PUT || type > REC_CHANGES ||
      (p[5] & ~(REC_FLAG_SYNCED | REC_FLAG_COPY)) || p[6] || p[7])
    return REC_BAD;
  if (avail - REC_HEADER_BYTES < len) return REC_TRUNCATED;
  uint64_t sum = le_get64(p + 16);
  if (sum != rec_sum(p, p + REC_HEADER_BYTES, len)) return REC_BAD;
  out->type = type;
  out->flags = p[5];
  out->len = len;
  out->seq = le_get64(p + 8);
  out->checksum = sum;
  out->payload = p + REC_HEADER_BYTES;
  return 0;
}

int rec_buf_reserve(rec_buf *b, size_t more) {
  if (b->cap - b->len >= more) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < more)
    cap *= 2;
  uint8_t *p = realloc(b->ptr, cap);
  if (!p) return -ENOMEM;
  b->ptr = p;
  b->cap = cap;
  return 0;
}

void rec_buf_free(rec_buf *b) {
  free(b->ptr);
  memset(b, 0, sizeof *b);
}

int rec_buf_write(void *data, const char *buf, size_t len) {
  rec_buf *b = data;
  if (rec_buf_reserve(b, len)) return -1;
  memcpy(b->ptr + b->len, buf, len);
  b->len += len;
  return 0;
}

/* Reserves the header, lets fill() pack the payload, then frames it. */
static int rec_append(rec_buf *b, uint8_t type, uint64_t seq,
                      void (*fill)(msgpack_packer *, const void *),
                      const void *arg) {
  size_t start = b->len;
  /* Room for the largest record up front, so packing cannot fail midway. */
  if (rec_buf_reserve(b, CS_RECORD_BYTES_MAX)) return -ENOMEM;
  b->len += REC_HEADER_BYTES;
  msgpack_packer pk;
  msgpack_packer_init(&pk, b, rec_buf_write);
  fill(&pk, arg);
  size_t len = b->len - start - REC_HEADER_BYTES;
  if (len > REC_PAYLOAD_MAX) {
    b->len = start;
    return CS_EINVAL;
  }
  rec_frame(b->ptr + start, type, seq, (uint32_t)len);
  return 0;
}

static void pack_idem(msgpack_packer *pk, const rec_idem *e) {
  mp_pack_cstr(pk, "idem");
  msgpack_pack_map(pk, 6);
  mp_pack_cstr(pk, "key");
  msgpack_pack_str(pk, e->key.len);
  msgpack_pack_str_body(pk, e->key.ptr, e->key.len);
  mp_pack_cstr(pk, "fp");
  msgpack_pack_bin(pk, CS_IDEM_FP_BYTES);
  msgpack_pack_bin_body(pk, e->fp, CS_IDEM_FP_BYTES);
  mp_pack_cstr(pk, "status");
  msgpack_pack_uint16(pk, e->status);
  mp_pack_cstr(pk, "type");
  msgpack_pack_uint8(pk, e->type);
  mp_pack_cstr(pk, "body");
  msgpack_pack_bin(pk, e->body.len);
  msgpack_pack_bin_body(pk, e->body.ptr, e->body.len);
  mp_pack_cstr(pk, "expires");
  msgpack_pack_int64(pk, e->expires_ms);
}

static bool has_idem(const rec_idem *e) {
  return e && e->present;
}

struct put_arg {
  const cs_contact *c;
  const rec_idem *idem;
  uint32_t cf;
};

static void fill_put(msgpack_packer *pk, const void *arg) {
  const struct put_arg *a = arg;
  const cs_contact *c = a->c;
  size_t n = 5 + has_idem(a->idem) + (a->cf != 0);
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    n += c->field[f].ptr != NULL;
  msgpack_pack_map(pk, n);
  mp_pack_cstr(pk, "id");
  msgpack_pack_uint64(pk, c->id);
  mp_pack_cstr(pk, "account");
  msgpack_pack_uint32(pk, c->account);
  mp_pack_cstr(pk, "created_at");
  msgpack_pack_int64(pk, c->created_ms);
  mp_pack_cstr(pk, "updated_at");
  msgpack_pack_int64(pk, c->updated_ms);
  mp_pack_cstr(pk, "version");
  msgpack_pack_uint64(pk, c->version ? c->version : 1);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr) continue;
    mp_pack_cstr(pk, cs_field_name(f));
    msgpack_pack_str(pk, c->field[f].len);
    msgpack_pack_str_body(pk, c->field[f].ptr, c->field[f].len);
  }
  if (has_idem(a->idem)) pack_idem(pk, a->idem);
  if (a->cf) {
    mp_pack_cstr(pk, "cf");
    msgpack_pack_uint8(pk, (uint8_t)(a->cf & ~REC_CF_SAID));
  }
}

struct del_arg {
  const rec_del *d;
  const rec_idem *idem;
};

static void fill_delete(msgpack_packer *pk, const void *arg) {
  const struct del_arg *a = arg;
  msgpack_pack_map(pk, 4 + has_idem(a->idem) + (a->d->version != 0));
  mp_pack_cstr(pk, "id");
  msgpack_pack_uint64(pk, a->d->id);
  mp_pack_cstr(pk, "account");
  msgpack_pack_uint32(pk, a->d->account);
  mp_pack_cstr(pk, "deleted_at");
  msgpack_pack_int64(pk, a->d->deleted_ms);
  mp_pack_cstr(pk, "purge");
  if (a->d->purge)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
  if (has_idem(a->idem)) pack_idem(pk, a->idem);
  if (a->d->version) {
    mp_pack_cstr(pk, "version");
    msgpack_pack_uint64(pk, a->d->version);
  }
}

static void fill_meta(msgpack_packer *pk, const void *arg) {
  msgpack_pack_map(pk, 1);
  mp_pack_cstr(pk, "next_id");
  msgpack_pack_uint64(pk, *(const uint64_t *)arg);
}

struct idem_arg {
  uint32_t account;
  const rec_idem *idem;
};

static void fill_idem(msgpack_packer *pk, const void *arg) {
  const struct idem_arg *a = arg;
  msgpack_pack_map(pk, 2);
  mp_pack_cstr(pk, "account");
  msgpack_pack_uint32(pk, a->account);
  pack_idem(pk, a->idem);
}

int rec_append_put(rec_buf *b, uint64_t seq, const cs_contact *c,
                   const rec_idem *idem, uint32_t cf) {
  struct put_arg a = {c, idem, cf};
  return rec_append(b, REC_PUT, seq, fill_put, &a);
}

void rec_put_set_id(uint8_t *rec, uint64_t id) {
  /* fixmap header, fixstr "id" (3 bytes), then the uint64 marker */
  uint8_t *p = rec + REC_HEADER_BYTES;
  CS_ASSERT((p[0] & 0xf0) == 0x80 && p[1] == 0xa2 && p[2] == 'i' &&
            p[3] == 'd' && p[4] == 0xcf && id >= CS_ID_MIN);
  for (int i = 0; i < 8; i++)
    p[5 + i] = (uint8_t)(id >> (56 - 8 * i));
}

int rec_append_delete(rec_buf *b, uint64_t seq, const rec_del *d,
                      const rec_idem *idem) {
  struct del_arg a = {d, idem};
  return rec_append(b, REC_DELETE, seq, fill_delete, &a);
}

int rec_append_meta(rec_buf *b, uint64_t seq, uint64_t next_id) {
  return rec_append(b, REC_META, seq, fill_meta, &next_id);
}

int rec_append_idem(rec_buf *b, uint64_t seq, uint32_t account,
                    const rec_idem *idem) {
  struct idem_arg a = {account, idem};
  return rec_append(b, REC_IDEM, seq, fill_idem, &a);
}

struct changes_arg {
  uint32_t account;
  uint64_t floor;
  const void *ents;
  size_t n;
};

static void fill_changes(msgpack_packer *pk, const void *arg) {
  const struct changes_arg *a = arg;
  msgpack_pack_map(pk, 3);
  mp_pack_cstr(pk, "account");
  msgpack_pack_uint32(pk, a->account);
  mp_pack_cstr(pk, "floor");
  msgpack_pack_uint64(pk, a->floor);
  mp_pack_cstr(pk, "changes");
  msgpack_pack_bin(pk, a->n * 32);
  msgpack_pack_bin_body(pk, a->n ? a->ents : "", a->n * 32);
}

int rec_append_changes(rec_buf *b, uint64_t seq, uint32_t account,
                       uint64_t floor, const void *ents, size_t n) {
  if (n > REC_CHANGES_MAX) return CS_EINVAL;
  struct changes_arg a = {account, floor, ents, n};
  return rec_append(b, REC_CHANGES, seq, fill_changes, &a);
}

static bool as_u64(const msgpack_object *v, uint64_t *out) {
  if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return false;
  *out = v->via.u64;
  return true;
}

static bool as_i64(const msgpack_object *v, int64_t *out) {
  if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
    *out = (int64_t)v->via.u64;
    return true;
  }
  if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = v->via.i64;
    return true;
  }
  return false;
}

/* Big-endian length of w bytes at p. */
static uint64_t be_len(const uint8_t *p, int w) {
  uint64_t v = 0;
  for (int i = 0; i < w; i++)
    v = v << 8 | p[i];
  return v;
}

bool rec_msgpack_fits(const uint8_t *p, size_t n) {
  uint64_t pending = 1; /* objects still to read */
  size_t i = 0;
  while (pending) {
    if (i >= n || pending > n - i) return false;
    pending--;
    uint8_t b = p[i++];
    int lw = 0;         /* width of a length or count that follows */
    uint64_t fixed = 0; /* bytes of payload that follow */
    int kind = 0;       /* 0 scalar, 1 bytes of length, 2 array, 3 map */
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    } else if (b <= 0x8f) {
      pending += 2u * (b & 0x0f);
    } else if (b <= 0x9f) {
      pending += b & 0x0f;
    } else if (b <= 0xbf) {
      fixed = b & 0x1f;
    } else {
      switch (b) {
      case 0xc4:
      case 0xd9:
        lw = 1, kind = 1;
        break; /* bin8, str8 */
      case 0xc5:
      case 0xda:
        lw = 2, kind = 1;
        break;
      case 0xc6:
      case 0xdb:
        lw = 4, kind = 1;
        break;
      case 0xc7:
        lw = 1, kind = 1, fixed = 1;
        break; /* ext: type byte */
      case 0xc8:
        lw = 2, kind = 1, fixed = 1;
        break;
      case 0xc9:
        lw = 4, kind = 1, fixed = 1;
        break;
      case 0xca:
      case 0xce:
      case 0xd2:
        fixed = 4;
        break;
      case 0xcb:
      case 0xcf:
      case 0xd3:
        fixed = 8;
        break;
      case 0xcc:
      case 0xd0:
        fixed = 1;
        break;
      case 0xcd:
      case 0xd1:
        fixed = 2;
        break;
      case 0xd4:
        fixed = 2;
        break; /* fixext: type and data */
      case 0xd5:
        fixed = 3;
        break;
      case 0xd6:
        fixed = 5;
        break;
      case 0xd7:
        fixed = 9;
        break;
      case 0xd8:
        fixed = 17;
        break;
      case 0xdc:
        lw = 2, kind = 2;
        break;
      case 0xdd:
        lw = 4, kind = 2;
        break;
      case 0xde:
        lw = 2, kind = 3;
        break;
      case 0xdf:
        lw = 4, kind = 3;
        break;
      default:
        return false; /* 0xc1 is never used */
      }
    }
    if (lw) {
      if ((size_t)lw > n - i) return false;
      uint64_t v = be_len(p + i, lw);
      i += (size_t)lw;
      if (kind == 1)
        fixed += v;
      else
        pending += kind == 3 ? 2 * v : v;
    }
    if (fixed > n - i) return false;
    i += (size_t)fixed;
  }
  return i == n;
}

/* The idempotency entry map v into *e. false when malformed. */
static bool decode_idem(const msgpack_object *v, rec_idem *e) {
  if (v->type != MSGPACK_OBJECT_MAP || v->via.map.size != 6) return false;
  const msgpack_object *key = mp_map_get(v, "key"), *fp = mp_map_get(v, "fp"),
                       *st = mp_map_get(v, "status"),
                       *ty = mp_map_get(v, "type"),
                       *body = mp_map_get(v, "body"),
                       *exp = mp_map_get(v, "expires");
  uint64_t u;
  if (!key || key->type != MSGPACK_OBJECT_STR || key->via.str.size == 0 ||
      key->via.str.size > CS_IDEM_KEY_MAX_BYTES)
    return false;
  if (!fp || fp->type != MSGPACK_OBJECT_BIN ||
      fp->via.bin.size != CS_IDEM_FP_BYTES)
    return false;
  if (!st || !as_u64(st, &u) || u < 100 || u > 599) return false;
  e->status = (uint16_t)u;
  if (!ty || !as_u64(ty, &u) || u > CS_ANSWER_TEXT) return false;
  e->type = (uint8_t)u;
  if (!body || body->type != MSGPACK_OBJECT_BIN ||
      body->via.bin.size > CS_IDEM_ANSWER_MAX_BYTES)
    return false;
  if (!exp || !as_i64(exp, &e->expires_ms)) return false;
  e->key = (cs_str){key->via.str.ptr, key->via.str.size};
  e->fp = (const uint8_t *)fp->via.bin.ptr;
  e->body =
      (cs_str){body->via.bin.size ? body->via.bin.ptr : "", body->via.bin.size};
  e->present = true;
  return true;
}

/* Which keys a decoded payload had. */
enum {
  HAVE_ID = 1 << 0,
  HAVE_ACCOUNT = 1 << 1,
  HAVE_NEXT = 1 << 2,
  HAVE_CREATED = 1 << 3,
  HAVE_UPDATED = 1 << 4,
  HAVE_VERSION = 1 << 5,
  HAVE_DELETED = 1 << 6,
  HAVE_PURGE = 1 << 7,
  HAVE_IDEM = 1 << 8,
  HAVE_CF = 1 << 9,
  HAVE_FLOOR = 1 << 10,
  HAVE_CHANGES = 1 << 11,
};

/* One key and value of a payload into out; false when it is not one a
 * record may have or its value is wrong. */
static bool decode_pair(const msgpack_object *k, const msgpack_object *v,
                        rec_body *out, unsigned *have, uint32_t *seen) {
  uint64_t u;
  unsigned bit = 0;
  if (MP_KEY_IS(k, "id")) {
    if (!as_u64(v, &u) || u < CS_ID_MIN) return false;
    out->contact.id = u;
    bit = HAVE_ID;
  } else if (MP_KEY_IS(k, "account")) {
    if (!as_u64(v, &u) || u >= CS_ALL_ACCOUNTS) return false;
    out->contact.account = (uint32_t)u;
    bit = HAVE_ACCOUNT;
  } else if (MP_KEY_IS(k, "next_id")) {
    if (!as_u64(v, &u) || u < CS_ID_MIN) return false;
    out->next_id = u;
    bit = HAVE_NEXT;
  } else if (MP_KEY_IS(k, "created_at")) {
    if (!as_i64(v, &out->contact.created_ms)) return false;
    bit = HAVE_CREATED;
  } else if (MP_KEY_IS(k, "updated_at")) {
    if (!as_i64(v, &out->contact.updated_ms)) return false;
    bit = HAVE_UPDATED;
  } else if (MP_KEY_IS(k, "version")) {
    if (!as_u64(v, &u) || u == 0) return false;
    out->contact.version = u;
    bit = HAVE_VERSION;
  } else if (MP_KEY_IS(k, "deleted_at")) {
    if (!as_i64(v, &out->contact.deleted_ms)) return false;
    bit = HAVE_DELETED;
  } else if (MP_KEY_IS(k, "purge")) {
    if (v->type != MSGPACK_OBJECT_BOOLEAN) return false;
    out->purge = v->via.boolean;
    bit = HAVE_PURGE;
  } else if (MP_KEY_IS(k, "idem")) {
    if (!decode_idem(v, &out->idem)) return false;
    bit = HAVE_IDEM;
  } else if (MP_KEY_IS(k, "cf")) {
    if (!as_u64(v, &u) || u >= 1u << CS_FIELD_COUNT) return false;
    out->cf = REC_CF_SAID | (uint32_t)u;
    bit = HAVE_CF;
  } else if (MP_KEY_IS(k, "floor")) {
    if (!as_u64(v, &out->floor)) return false;
    bit = HAVE_FLOOR;
  } else if (MP_KEY_IS(k, "changes")) {
    if (v->type != MSGPACK_OBJECT_BIN || v->via.bin.size % 32 ||
        v->via.bin.size / 32 > REC_CHANGES_MAX)
      return false;
    out->changes = (const uint8_t *)v->via.bin.ptr;
    out->change_count = v->via.bin.size / 32;
    bit = HAVE_CHANGES;
  } else {
    int f = k->type == MSGPACK_OBJECT_STR
                ? cs_field_from_name(k->via.str.ptr, k->via.str.size)
                : -1;
    if (f < 0 || (*seen & (1u << f)) || v->type != MSGPACK_OBJECT_STR)
      return false;
    *seen |= 1u << f;
    out->contact.field[f].ptr = v->via.str.size ? v->via.str.ptr : "";
    out->contact.field[f].len = v->via.str.size;
    return true;
  }
  if (*have & bit) return false; /* repeated */
  *have |= bit;
  return true;
}

/* Are the keys in have (and the fields in seen) exactly what a record of
 * type needs and may have? Fills defaults for format-1 records. */
static const char *check_keys(uint8_t type, unsigned have, uint32_t seen,
                              rec_body *out) {
  const unsigned put_keys = HAVE_ID | HAVE_ACCOUNT | HAVE_CREATED |
                            HAVE_UPDATED | HAVE_VERSION | HAVE_IDEM | HAVE_CF;
  const unsigned del_keys = HAVE_ID | HAVE_ACCOUNT | HAVE_DELETED | HAVE_PURGE |
                            HAVE_IDEM | HAVE_VERSION;
  switch (type) {
  case REC_PUT:
    if ((have & ~put_keys) ||
        (have & (HAVE_ID | HAVE_ACCOUNT | HAVE_CREATED | HAVE_UPDATED)) !=
            (HAVE_ID | HAVE_ACCOUNT | HAVE_CREATED | HAVE_UPDATED) ||
        cs_field_first_missing(seen) >= 0)
      return "put record lacks a required key or has a foreign one";
    if (!(have & HAVE_VERSION)) out->contact.version = 1; /* format 1 */
    return NULL;
  case REC_DELETE:
    if ((have & ~del_keys) || seen ||
        (have & (HAVE_ID | HAVE_ACCOUNT)) != (HAVE_ID | HAVE_ACCOUNT) ||
        !(have & HAVE_DELETED) != !(have & HAVE_PURGE))
      return "delete record lacks id or account, or has a foreign key";
    if (!(have & HAVE_DELETED)) out->purge = true; /* format 1: final */
    return NULL;
  case REC_CHANGES:
    if (have != (HAVE_ACCOUNT | HAVE_FLOOR | HAVE_CHANGES) || seen)
      return "changes record lacks account, floor or changes, or has a "
             "foreign key";
    return NULL;
  case REC_IDEM:
    if (have != (HAVE_ACCOUNT | HAVE_IDEM) || seen)
      return "idem record lacks account or entry, or has a foreign key";
    return NULL;
  default:
    if (have != HAVE_NEXT || seen) return "meta record lacks next_id";
    return NULL;
  }
}

int rec_decode(const rec_view *r, msgpack_zone *zone, rec_body *out,
               const char **why) {
  memset(out, 0, sizeof *out);
  out->type = r->type;
  msgpack_zone_clear(zone);
  msgpack_object root;
  size_t off = 0;
  if (!rec_msgpack_fits(r->payload, r->len)) {
    *why = "payload is not one msgpack object that fits its length";
    return CS_ECORRUPT;
  }
  if (msgpack_unpack((const char *)r->payload, r->len, &off, zone, &root) !=
          MSGPACK_UNPACK_SUCCESS ||
      off != r->len) {
    *why = "payload is not one msgpack object";
    return CS_ECORRUPT;
  }
  if (root.type != MSGPACK_OBJECT_MAP) {
    *why = "payload is not a map";
    return CS_ECORRUPT;
  }
  unsigned have = 0;
  uint32_t seen = 0;
  for (uint32_t i = 0; i < root.via.map.size; i++)
    if (!decode_pair(&root.via.map.ptr[i].key, &root.via.map.ptr[i].val, out,
                     &have, &seen)) {
      *why = "unknown or repeated key, or a value of the wrong type or range";
      return CS_ECORRUPT;
    }
  *why = check_keys(r->type, have, seen, out);
  return *why ? CS_ECORRUPT : 0;
}
