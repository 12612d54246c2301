/*
 * import.h: the identity a contact brings when it is written with its own
 * id, version and times (private to the engine): the one check cs_import
 * (import.c) and the bulk load (load.c) share.
 */
#ifndef CS_IMPORT_H
#define CS_IMPORT_H

#include "cs.h"

/* Checks c's identity: an id of 20 digits, a version from 1, created_ms
 * and updated_ms from the epoch to CS_TIME_MS_MAX with created_ms <=
 * updated_ms, and deleted_ms 0 (live) or from created_ms to CS_TIME_MS_MAX
 * (in the trash). 0 or CS_EINVAL naming what is wrong (err->field -1). */
int import_identity_check(const cs_contact *c, cs_error *err);

/* Whether a store of shard `shard` whose next id is floor may take id with
 * its identity kept: never an id it gave (below floor: ids are never
 * reused), and only ids of its own shard (cs_shard_floor). 0 or CS_EINVAL
 * saying which (err->field -1). */
int import_id_check(uint32_t shard, uint64_t floor, uint64_t id, cs_error *err);

#endif
