/*
 * ct_codec_int.h: what the codec's readers share and its users never see.
 *
 * Both body readers (ct_parse.c, ct_query.c) drive yajl's event parser over
 * the same strict rules; the scan for \u escapes that are lone surrogates
 * (which yajl would decode into text never sent, see ct_parse.c) is done
 * once, here, for both.
 */
#ifndef CT_CODEC_INT_H
#define CT_CODEC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_codec.h"

/* The offset of the first \u escape at or after from that is a surrogate
 * not in a high-low pair, or SIZE_MAX. */
size_t ct_escape_next(const char *s, size_t len, size_t from);
/* Whether a bad escape lies before end (the bytes yajl has consumed, so
 * in the string token it just decoded), moving *at past every one that
 * does. */
bool ct_escape_passed(const char *json, size_t len, size_t *at, size_t end);
/* What a string with a bad escape is handed on as: one byte that is not
 * UTF-8, refused like any other invalid text. */
extern const char ct_not_utf8[];

/* The members of a contact object (ct_json_contact) without the braces
 * around them, so that an export line can put the account first. */
void ct_json_contact_keys(ct_json *j, const cs_contact *c, uint32_t members);

/* The query reader (ct_query.c) and its cursor (ct_qcursor.c). */
/* n bytes that live as long as cq; NULL when out of memory. */
void *ct_qalloc(ct_query *cq, size_t n);
/* The XXH3-64 of the query's canonical form into *out. 0, or -1 when out
 * of memory. */
int ct_query_hash(const cs_qry *q, uint64_t *out);
/* Reads a cursor into cq->after (and sets cq->q.after). 0, or -1 for
 * anything that is not a cursor at all, -2 for one whose check fails:
 * made for another query, or changed. */
int ct_query_cursor_read(ct_query *cq, cs_str s);

#endif
