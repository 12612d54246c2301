/*
 * overlay.h: the writes accepted but not applied yet, and email
 * uniqueness (private to the engine).
 */
#ifndef CS_OVERLAY_H
#define CS_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs.h"
#include "fold.h"

/* A pending change, not yet applied (invariant 3 of store_int.h). */
typedef struct ov_entry {
  uint64_t id;
  uint64_t seq; /* its record's; in a dry run, the caller's tag */
  uint32_t account;
  bool deleted;
  bool trashed;        /* deleted into the trash: c holds what it was */
  uint64_t email_hash; /* hash of (account, fold_key(email)), 0 if deleted */
  cs_contact c;        /* strings in blob */
  char *blob;
  struct ov_entry *next_id;    /* chain in by_id */
  struct ov_entry *next_email; /* chain in by_email */
} ov_entry;

/* Entries chained two ways, by id and by email hash, in bucket arrays of
 * one size that double when the entries outnumber the buckets. */
typedef struct ov_table {
  ov_entry **by_id;
  ov_entry **by_email;
  size_t mask; /* buckets - 1 */
  size_t count;
} ov_table;

/* 0 or -ENOMEM. ov_deinit frees every entry. */
int ov_init(ov_table *t);
void ov_deinit(ov_table *t);

/* The pending entry of id, or NULL. Caller holds wmu. */
ov_entry *ov_find(const ov_table *t, uint64_t id);

/* Makes (or replaces) the pending entry of id with a copy of c's strings;
 * c == NULL: a deletion; trashed: a deletion into the trash of contact c
 * (which then holds no email). fb is scratch for folding the email. 0,
 * -ENOMEM or CS_EINVAL (the table is unchanged). Caller holds wmu. */
int ov_set(ov_table *t, fold_buf *fb, uint64_t id, uint32_t account,
           uint64_t seq, const cs_contact *c, bool trashed);

/* The record (id, seq) was applied: drops id's entry unless a later write
 * replaced it. Caller holds wmu. */
void ov_applied(ov_table *t, uint64_t id, uint64_t seq);

/* The id of another contact of account whose email equals email (case
 * insensitively, as fold_case compares), pending or applied, or 0 in
 * *owner. Leaves the email's folded forms in s->fb_key and s->fb_case.
 * Caller holds wmu (not ilock). */
int email_owner(cs_store *s, uint32_t account, const cs_str *email,
                uint64_t exclude, uint64_t *owner, cs_error *err);

/* The answer to an email that owner holds: fills err (the message, id and
 * field) and returns CS_EDUPLICATE. The one wording of every write's
 * duplicate_email. */
int email_taken(uint64_t owner, cs_error *err);

/* In a bulk load: remembers that id now holds the email email_owner just
 * checked (in s->fb_case). 0 or -ENOMEM. Caller holds wmu. */
int email_bulk_note(cs_store *s, uint32_t account, uint64_t id);

#endif
