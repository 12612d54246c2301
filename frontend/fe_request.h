/*
 * fe_request.h: the pure pieces of reading a request: percent-decoding,
 * the query string, the request id.
 *
 * None of these allocate or touch h2o, so that they can be unit tested and
 * reused by the router.
 */
#ifndef FE_REQUEST_H
#define FE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cd_plugin.h"
#include "fe_limits.h"

/*
 * Percent-decodes len bytes of src into dst (which may be src: decoding
 * never grows). plus_as_space turns '+' into ' ' (query strings). A '%' not
 * followed by two hex digits is kept as it is. Returns the decoded length.
 */
size_t fe_percent_decode(char *dst, const char *src, size_t len,
                         bool plus_as_space);

/* Number of pairs fe_query_parse can produce from a query of len bytes: an
 * upper bound to size the pairs array. */
size_t fe_query_pairs_max(const char *query, size_t len);

/*
 * Splits a query string (without the '?') on '&' into name=value pairs,
 * percent-decoding both with '+' as space into scratch (len + count bytes:
 * each name and value is NUL-terminated there too). Empty pieces ("a&&b")
 * are skipped; a piece without '=' is a name with an empty value. Returns
 * the number of pairs written (at most max_pairs), in request order.
 */
size_t fe_query_parse(const char *query, size_t len, char *scratch,
                      cd_pair *pairs, size_t max_pairs);

/* Bytes of scratch fe_query_parse needs. */
#define FE_QUERY_SCRATCH_BYTES(len) (2 * (len) + 2)

/* True when a client's x-request-id may be echoed: 1 to
 * CS_REQUEST_ID_MAX_BYTES printable ASCII characters (0x20-0x7e). */
bool fe_request_id_valid(const char *s, size_t len);

/* Writes a fresh request id (FE_REQUEST_ID_GEN_CHARS hex digits and a NUL)
 * from the caller's random state, which must be seeded non-zero. */
void fe_request_id_generate(uint64_t *state,
                            char out[FE_REQUEST_ID_GEN_CHARS + 1]);

/* A random 64-bit seed from the kernel (falls back to time and address). */
uint64_t fe_random_seed(void);

/* The reason phrase for an HTTP status ("Not Found"), "Unknown" if none. */
const char *fe_status_reason(int status);

#endif
