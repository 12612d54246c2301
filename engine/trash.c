/*
 * trash.c: the list of trashed contacts (see trash.h).
 */
#include "trash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cs.h"

#define TRASH_CAP_MIN 64

/* Drops the gone entries when they are most of the list. */
static int rebuild(trash_list *t) {
  u64map where = {0};
  size_t n = 0;
  for (size_t i = 0; i < t->count; i++) {
    if (t->v[i].gone) continue;
    if (u64map_put(&where, t->v[i].id, n + 1)) {
      u64map_free(&where);
      return -ENOMEM;
    }
    t->v[n++] = t->v[i];
  }
  u64map_free(&t->where);
  t->where = where;
  t->count = n;
  t->gone = 0;
  return 0;
}

int trash_add(trash_list *t, uint64_t id, uint32_t account, uint64_t seq,
              int64_t deleted_ms) {
  if (t->gone > TRASH_CAP_MIN && t->gone * 2 > t->count && rebuild(t))
    return -ENOMEM;
  if (t->count == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : TRASH_CAP_MIN;
    trash_ent *p = realloc(t->v, cap * sizeof *p);
    if (!p) return -ENOMEM;
    t->v = p;
    t->cap = cap;
  }
  if (u64map_put(&t->where, id, t->count + 1)) return -ENOMEM;
  t->v[t->count++] = (trash_ent){id, seq, deleted_ms, account, 0};
  return 0;
}

const trash_ent *trash_find(const trash_list *t, uint64_t id) {
  uint64_t *w = u64map_get(&t->where, id);
  return w && *w ? &t->v[*w - 1] : NULL;
}

void trash_drop(trash_list *t, uint64_t id) {
  uint64_t *w = u64map_get(&t->where, id);
  if (!w || !*w) return;
  t->v[*w - 1].gone = 1;
  *w = 0;
  t->gone++;
}

int trash_load(trash_list *t, const trash_ent *v, size_t n) {
  trash_free(t);
  for (size_t i = 0; i < n; i++) {
    if ((i && v[i].seq <= v[i - 1].seq) || v[i].gone || v[i].id < CS_ID_MIN)
      return CS_ECORRUPT;
    int rc = trash_add(t, v[i].id, v[i].account, v[i].seq, v[i].deleted_ms);
    if (rc) return rc;
  }
  return 0;
}

void trash_free(trash_list *t) {
  free(t->v);
  u64map_free(&t->where);
  memset(t, 0, sizeof *t);
}
