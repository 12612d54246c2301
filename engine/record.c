/*
 * record.c: framing, checking and msgpack coding of log records.
 *
 * The layout is written down in record.h. Everything read from disk is
 * checked here before any decoder sees it: the length against
 * REC_PAYLOAD_MAX and the bytes available, then the XXH3 checksum, and only
 * then msgpack; after msgpack every value's type and range is checked too.
 */
#include "record.h"

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
  if (le_get32(p + 8) != REC_FORMAT_VERSION) return CS_EFORMAT;
  if (le_get32(p + 12) != seg_no) return CS_ECORRUPT;
  return 0;
}

/* The checksum covers the header's first 16 bytes and the payload: the
 * payload's XXH3 seeded with the header's. */
static uint64_t rec_sum(const uint8_t *hdr, const uint8_t *payload,
                        uint32_t len) {
  return XXH3_64bits_withSeed(payload, len, XXH3_64bits(hdr, 16));
}

void rec_frame(uint8_t *dst, uint8_t type, uint64_t seq, uint32_t len) {
  le_put32(dst, len);
  dst[4] = type;
  dst[5] = dst[6] = dst[7] = 0;
  le_put64(dst + 8, seq);
  le_put64(dst + 16, rec_sum(dst, dst + REC_HEADER_BYTES, len));
}

int rec_check(const uint8_t *p, size_t avail, rec_view *out) {
  if (avail < REC_HEADER_BYTES) return REC_TRUNCATED;
  uint32_t len = le_get32(p);
  uint8_t type = p[4];
  if (len > REC_PAYLOAD_MAX || type < REC_PUT || type > REC_META || p[5] ||
      p[6] || p[7])
    return REC_BAD;
  if (avail - REC_HEADER_BYTES < len) return REC_TRUNCATED;
  uint64_t sum = le_get64(p + 16);
  if (sum != rec_sum(p, p + REC_HEADER_BYTES, len)) return REC_BAD;
  out->type = type;
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

static void fill_put(msgpack_packer *pk, const void *arg) {
  const cs_contact *c = arg;
  size_t n = 4;
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
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr) continue;
    mp_pack_cstr(pk, cs_field_name(f));
    msgpack_pack_str(pk, c->field[f].len);
    msgpack_pack_str_body(pk, c->field[f].ptr, c->field[f].len);
  }
}

struct del_arg {
  uint64_t id;
  uint32_t account;
};

static void fill_delete(msgpack_packer *pk, const void *arg) {
  const struct del_arg *d = arg;
  msgpack_pack_map(pk, 2);
  mp_pack_cstr(pk, "id");
  msgpack_pack_uint64(pk, d->id);
  mp_pack_cstr(pk, "account");
  msgpack_pack_uint32(pk, d->account);
}

static void fill_meta(msgpack_packer *pk, const void *arg) {
  msgpack_pack_map(pk, 1);
  mp_pack_cstr(pk, "next_id");
  msgpack_pack_uint64(pk, *(const uint64_t *)arg);
}

int rec_append_put(rec_buf *b, uint64_t seq, const cs_contact *c) {
  return rec_append(b, REC_PUT, seq, fill_put, c);
}

int rec_append_delete(rec_buf *b, uint64_t seq, uint64_t id, uint32_t account) {
  struct del_arg d = {id, account};
  return rec_append(b, REC_DELETE, seq, fill_delete, &d);
}

int rec_append_meta(rec_buf *b, uint64_t seq, uint64_t next_id) {
  return rec_append(b, REC_META, seq, fill_meta, &next_id);
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
  bool have_id = false, have_account = false, have_next = false;
  bool have_created = false, have_updated = false;
  uint32_t seen = 0;
  for (uint32_t i = 0; i < root.via.map.size; i++) {
    const msgpack_object *k = &root.via.map.ptr[i].key;
    const msgpack_object *v = &root.via.map.ptr[i].val;
    uint64_t u;
    if (MP_KEY_IS(k, "id")) {
      if (!as_u64(v, &u) || u < CS_ID_MIN) goto bad_value;
      out->contact.id = u;
      have_id = true;
    } else if (MP_KEY_IS(k, "account")) {
      if (!as_u64(v, &u) || u >= CS_ALL_ACCOUNTS) goto bad_value;
      out->contact.account = (uint32_t)u;
      have_account = true;
    } else if (MP_KEY_IS(k, "next_id")) {
      if (!as_u64(v, &u) || u < CS_ID_MIN) goto bad_value;
      out->next_id = u;
      have_next = true;
    } else if (MP_KEY_IS(k, "created_at")) {
      if (!as_i64(v, &out->contact.created_ms)) goto bad_value;
      have_created = true;
    } else if (MP_KEY_IS(k, "updated_at")) {
      if (!as_i64(v, &out->contact.updated_ms)) goto bad_value;
      have_updated = true;
    } else {
      int f = k->type == MSGPACK_OBJECT_STR
                  ? cs_field_from_name(k->via.str.ptr, k->via.str.size)
                  : -1;
      if (f < 0 || (seen & (1u << f)) || v->type != MSGPACK_OBJECT_STR) {
        *why = "unknown or repeated key, or a field that is not a string";
        return CS_ECORRUPT;
      }
      seen |= 1u << f;
      out->contact.field[f].ptr = v->via.str.size ? v->via.str.ptr : "";
      out->contact.field[f].len = v->via.str.size;
    }
  }
  switch (r->type) {
  case REC_PUT:
    if (!have_id || !have_account || !have_created || !have_updated ||
        cs_field_first_missing(seen) >= 0) {
      *why = "put record lacks a required key";
      return CS_ECORRUPT;
    }
    return 0;
  case REC_DELETE:
    if (!have_id || !have_account || seen) {
      *why = "delete record lacks id or account";
      return CS_ECORRUPT;
    }
    return 0;
  default:
    if (!have_next) {
      *why = "meta record lacks next_id";
      return CS_ECORRUPT;
    }
    return 0;
  }
bad_value:
  *why = "a value has the wrong type or range";
  return CS_ECORRUPT;
}
