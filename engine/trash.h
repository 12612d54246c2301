/*
 * trash.h: the deleted contacts that can still be restored (private to
 * the engine). A trashed contact's slot is dead but still points at its
 * last put (pindex.h), which is what a restore brings back; this list says
 * which dead slots are in the trash, since when, and in which order they
 * went there. Under ilock, changed only where records are applied.
 */
#ifndef CS_TRASH_H
#define CS_TRASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "u64map.h"

/* One deletion, 32 bytes; snapshots store the array as it is in memory. */
typedef struct trash_ent {
  uint64_t id;
  uint64_t seq;       /* of the delete record: the list's order */
  int64_t deleted_ms; /* when it was deleted */
  uint32_t account;
  uint32_t gone; /* restored or purged since: skipped, dropped at rebuild */
} trash_ent;
_Static_assert(sizeof(trash_ent) == 32, "a trash entry is 32 bytes");

typedef struct trash_list {
  trash_ent *v; /* in seq order */
  size_t count;
  size_t cap;
  size_t gone;
  u64map where; /* id -> index + 1; 0 once gone */
} trash_list;

/* Adds a deletion (seq above every entry's). 0 or -ENOMEM. */
int trash_add(trash_list *t, uint64_t id, uint32_t account, uint64_t seq,
              int64_t deleted_ms);
/* The live entry of id, or NULL. */
const trash_ent *trash_find(const trash_list *t, uint64_t id);
/* id leaves the trash (restored or purged); nothing when not there. */
void trash_drop(trash_list *t, uint64_t id);
/* Replaces the list with n entries (a snapshot's). 0, -ENOMEM, or
 * CS_ECORRUPT when out of seq order. */
int trash_load(trash_list *t, const trash_ent *v, size_t n);
void trash_free(trash_list *t);

#endif
