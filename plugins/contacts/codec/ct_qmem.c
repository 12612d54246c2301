/*
 * ct_qmem.c: a query's memory (ct_qalloc, ct_query_free): what its parse
 * keeps lives as long as the ct_query, first in the ct_query's own arena
 * (CT_QUERY_ARENA_BYTES, so that a small query allocates nothing), then in
 * a chain of heap blocks the ct_query owns.
 */
#include <stddef.h>
#include <stdlib.h>

#include "ct_codec.h"
#include "ct_codec_int.h"

struct ct_qmem {
  struct ct_qmem *next;
  max_align_t data[];
};

/* n bytes owned by cq (NULL when out of memory): from its arena while that
 * lasts (a small query allocates nothing), then from the chain. */
void *ct_qalloc(ct_query *cq, size_t n) {
  size_t units = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t);
  size_t room = sizeof cq->arena / sizeof cq->arena[0] - cq->arena_used;
  if (units > 0 && units <= room) {
    void *at = &cq->arena[cq->arena_used];
    cq->arena_used += units;
    return at;
  }
  struct ct_qmem *m = malloc(sizeof *m + (n ? n : 1));
  if (!m) return NULL;
  m->next = cq->mem;
  cq->mem = m;
  return m->data;
}

void ct_query_free(ct_query *cq) {
  while (cq->mem) {
    struct ct_qmem *next = cq->mem->next;
    free(cq->mem);
    cq->mem = next;
  }
}
