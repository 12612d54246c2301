/*
 * qrun.c: what the steps of a query run share: the arena the result's
 * strings live in, and a match's folded key, read from its record (for
 * sorts and facets over few matches). Called by query.c, qorder.c and
 * qfacet.c, calling none of them.
 */
#include <errno.h>
#include <string.h>

#include "err.h"
#include "pindex.h"
#include "qry_int.h"

const char *qrun_dup(qrun *r, const char *p, size_t len) {
  char *d = msgpack_zone_malloc(r->mem, len ? len : 1);
  if (d && len) memcpy(d, p, len);
  return d;
}

int qrun_key(qrun *r, uint32_t slot, int field, cs_str *key, bool *missing) {
  rec_body b;
  msgpack_zone_clear(&r->rz);
  int rc = store_read_slot(r->s, slot, &r->rz, &b, r->err);
  if (rc) return rc;
  const cs_str *v = &b.contact.field[field];
  *missing = true;
  *key = (cs_str){"", 0};
  if (!v->ptr) return 0;
  if ((rc = fold_key(field, v->ptr, v->len, &r->fb)))
    return cs_err(r->err, rc, "cannot fold: %s", cs_strerror(rc));
  if (!r->fb.len) return 0;
  const char *d = qrun_dup(r, r->fb.ptr, r->fb.len);
  if (!d) return cs_err(r->err, -ENOMEM, "out of memory");
  *key = (cs_str){d, r->fb.len};
  *missing = false;
  return 0;
}
