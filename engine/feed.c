/*
 * feed.c: the change feed's lists (feed.h): appending, carrying over,
 * dropping by age, reading after a cursor, and the snapshot's image.
 */
#include "feed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cs_assert.h"
#include "mp.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "feed entries are stored little endian as in memory"
#endif

static feed_list *list_of(const feed *f, uint32_t account) {
  uint64_t *i = u64map_get(&f->where, (uint64_t)account + 1);
  return i ? &f->lists[*i - 1] : NULL;
}

static feed_list *list_make(feed *f, uint32_t account) {
  feed_list *l = list_of(f, account);
  if (l) return l;
  if (f->n == f->cap) {
    uint32_t cap = f->cap ? f->cap * 2 : 8;
    feed_list *v = realloc(f->lists, cap * sizeof *v);
    if (!v) return NULL;
    f->lists = v;
    f->cap = cap;
  }
  if (u64map_put(&f->where, (uint64_t)account + 1, f->n + 1)) return NULL;
  l = &f->lists[f->n++];
  memset(l, 0, sizeof *l);
  l->account = account;
  return l;
}

/* Room for n more entries at the end of l, moving the kept ones down
 * first when the dropped head is at least half of the array. */
static int list_room(feed_list *l, uint32_t n) {
  if (l->head && l->head >= l->count / 2) {
    memmove(l->v, l->v + l->head, (size_t)(l->count - l->head) * sizeof *l->v);
    l->count -= l->head;
    l->head = 0;
  }
  if (l->count + n <= l->cap) return 0;
  uint64_t cap = l->cap ? l->cap : 16;
  while (cap < (uint64_t)l->count + n)
    cap *= 2;
  if (cap > UINT32_MAX) return -ENOMEM;
  feed_ent *v = realloc(l->v, cap * sizeof *v);
  if (!v) return -ENOMEM;
  l->v = v;
  l->cap = (uint32_t)cap;
  return 0;
}

static void list_trim(feed *f, feed_list *l, int64_t cutoff) {
  while (l->head < l->count && feed_at(&l->v[l->head]) < cutoff) {
    l->floor = l->v[l->head].seq;
    l->head++;
    f->entries--;
  }
}

int feed_add(feed *f, uint32_t account, const feed_ent *e) {
  feed_list *l = list_make(f, account);
  if (!l || list_room(l, 1)) return -ENOMEM;
  CS_ASSERT(l->head == l->count || l->v[l->count - 1].seq < e->seq);
  l->v[l->count++] = *e;
  f->entries++;
  list_trim(f, l, f->cutoff);
  return 0;
}

int feed_carry(feed *f, uint32_t account, uint64_t floor, const uint8_t *ents,
               uint32_t n, uint64_t below_seq, const char **why) {
  feed_list *l = list_make(f, account);
  if (!l || list_room(l, n)) return -ENOMEM;
  uint64_t last = l->head < l->count ? l->v[l->count - 1].seq : 0;
  if (floor >= below_seq || (l->head < l->count && floor > l->floor)) {
    *why = "a changes record's floor is past the record or its list";
    return CS_ECORRUPT;
  }
  if (floor > l->floor) l->floor = floor;
  for (uint32_t i = 0; i < n; i++) {
    feed_ent e;
    memcpy(&e, ents + (size_t)i * sizeof e, sizeof e);
    if (e.seq <= last || e.seq <= l->floor || e.seq >= below_seq ||
        feed_type(&e) >= CS_CHANGE_TYPE_COUNT ||
        feed_fields(&e) >= 1u << CS_FIELD_COUNT || e.id < CS_ID_MIN) {
      *why = "a carried change is out of order or out of range";
      return CS_ECORRUPT;
    }
    l->v[l->count++] = e;
    last = e.seq;
    f->entries++;
  }
  return 0;
}

void feed_trim(feed *f, int64_t cutoff) {
  for (uint32_t i = 0; i < f->n; i++)
    list_trim(f, &f->lists[i], cutoff);
}

/* The first entry of l whose seq is above after. */
static uint32_t first_after(const feed_list *l, uint64_t after) {
  uint32_t lo = l->head, hi = l->count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (l->v[mid].seq <= after)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int feed_read(const feed *f, uint32_t account, uint64_t after, uint64_t end,
              unsigned types, cs_change *out, uint32_t max, cs_changes *got,
              uint64_t *oldest) {
  const feed_list *l = list_of(f, account);
  memset(got, 0, sizeof *got);
  if (!types) types = CS_CHANGE_TYPES_ALL;
  if (after > end) return CS_ECURSOR;
  if (l && after < l->floor) {
    if (oldest) *oldest = l->floor;
    return CS_EEXPIRED;
  }
  got->next = end;
  if (!l) return 0;
  uint32_t i = first_after(l, after);
  for (; i < l->count; i++) {
    const feed_ent *e = &l->v[i];
    if (!(types & (1u << feed_type(e)))) continue;
    if (got->count == max) {
      got->more = true;
      break;
    }
    out[got->count++] = (cs_change){.seq = e->seq,
                                    .id = e->id,
                                    .version = e->version,
                                    .at_ms = feed_at(e),
                                    .account = account,
                                    .type = (uint8_t)feed_type(e),
                                    .fields = (uint8_t)feed_fields(e)};
  }
  if (got->more) got->next = out[got->count - 1].seq;
  return 0;
}

uint64_t feed_oldest(const feed *f, uint32_t account) {
  const feed_list *l = list_of(f, account);
  return l ? l->floor : 0;
}

size_t feed_bytes(const feed *f) {
  size_t n = (size_t)f->cap * sizeof(feed_list) +
             (f->where.keys ? (f->where.mask + 1) * 2 * sizeof(uint64_t) : 0);
  for (uint32_t i = 0; i < f->n; i++)
    n += (size_t)f->lists[i].cap * sizeof(feed_ent);
  return n;
}

void feed_free(feed *f) {
  for (uint32_t i = 0; i < f->n; i++)
    free(f->lists[i].v);
  free(f->lists);
  u64map_free(&f->where);
  memset(f, 0, sizeof *f);
}

void feed_pack(const feed *f, msgpack_packer *pk) {
  msgpack_pack_array(pk, f->n);
  for (uint32_t i = 0; i < f->n; i++) {
    const feed_list *l = &f->lists[i];
    uint32_t n = l->count - l->head;
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, l->account);
    msgpack_pack_uint64(pk, l->floor);
    msgpack_pack_bin(pk, (size_t)n * sizeof(feed_ent));
    msgpack_pack_bin_body(pk, n ? (const void *)(l->v + l->head) : "",
                          (size_t)n * sizeof(feed_ent));
  }
}

int feed_unpack(feed *f, const msgpack_object *o, uint64_t seq_max,
                const char **why) {
  *why = "the change feed is not an array of [account, floor, entries]";
  if (o->type != MSGPACK_OBJECT_ARRAY) return CS_ECORRUPT;
  for (uint32_t i = 0; i < o->via.array.size; i++) {
    const msgpack_object *a = &o->via.array.ptr[i];
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 3)
      return CS_ECORRUPT;
    const msgpack_object *acc = &a->via.array.ptr[0];
    const msgpack_object *floor = &a->via.array.ptr[1];
    const msgpack_object *bin = &a->via.array.ptr[2];
    if (acc->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        acc->via.u64 >= CS_ALL_ACCOUNTS ||
        floor->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        bin->type != MSGPACK_OBJECT_BIN ||
        bin->via.bin.size % sizeof(feed_ent) ||
        list_of(f, (uint32_t)acc->via.u64))
      return CS_ECORRUPT;
    uint32_t n = bin->via.bin.size / sizeof(feed_ent);
    int rc = feed_carry(f, (uint32_t)acc->via.u64, floor->via.u64,
                        (const uint8_t *)bin->via.bin.ptr, n, seq_max + 1, why);
    if (rc) return rc;
  }
  *why = NULL;
  return 0;
}
