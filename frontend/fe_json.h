/*
 * fe_json.h: the JSON the front end writes itself: the API's error body.
 */
#ifndef FE_JSON_H
#define FE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>

/*
 * Builds {"error":{"code":...,"message":...,"field":...,"id":...}}: field is
 * left out when NULL, id when 0 (and written as its 20 decimal digits, a
 * string, like every id in the API). Strings are escaped; bytes that are not
 * valid UTF-8 become U+FFFD so the body is always valid JSON. Returns a
 * malloc'd, NUL-terminated body (its length in *len_out), or NULL when out
 * of memory.
 */
char *fe_json_error(const char *code, const char *message, const char *field,
                    uint64_t id, size_t *len_out);

/* Generates the string s (len bytes, NUL bytes included) with every byte
 * that is not part of valid UTF-8 written as U+FFFD, so that the output is
 * valid JSON whatever a client sent. 0, or -1 (out of memory, or the
 * generator refused). */
int fe_json_gen_string(yajl_gen g, const char *s, size_t len);

/* The API's error code for a status h2o answered on its own (a 413 before
 * our handler ran, a malformed request): "payload_too_large", ... */
const char *fe_json_code_for_status(int status);

#endif
