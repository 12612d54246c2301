/*
 * write.h: what write.c lends the other writers of the engine (private):
 * queueing one record of a contact through the commit path, the way every
 * write of cs.h does, for cs_import (import.c), which brings contacts with
 * their own ids, versions and times.
 */
#ifndef CS_WRITE_H
#define CS_WRITE_H

#include "cs.h"
#include "record.h"

/* The checks every write makes first: a store that accepts writes (opened
 * with indexes, not failed, not closing) and no bulk load in progress.
 * 0, CS_EINVAL, CS_EFAILED or CS_ECLOSING. Caller holds wmu. */
int write_check_open(cs_store *s, cs_error *err);

/* Frames and queues a put of c (its id, account, times and version as
 * they are) for the next sequence number, with no idempotency entry, and
 * records it as pending (the overlay), as a create does; done fires once
 * it is durable. 0, CS_EINVAL (too large), or CS_EFAILED after running out
 * of memory midway (the store then refuses writes). Caller holds wmu. */
int write_queue_put(cs_store *s, const cs_contact *c, cs_done_fn done,
                    void *ctx, cs_error *err);

/* The same for a delete d of contact was (into the trash unless d->purge). */
int write_queue_delete(cs_store *s, const rec_del *d, const cs_contact *was,
                       cs_done_fn done, void *ctx, cs_error *err);

#endif
