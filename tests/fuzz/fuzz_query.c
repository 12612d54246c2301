/*
 * fuzz_query.c: the front end's query-string decoder (fe_request.c).
 *
 * Goal: no query string makes fe_query_parse or fe_percent_decode write or
 * read outside the buffers their contract sizes, and what they produce is
 * what the contract says.
 * Method: the input is the query string (without '?'). It is parsed with a
 * pairs array of exactly fe_query_pairs_max entries and a scratch buffer of
 * exactly FE_QUERY_SCRATCH_BYTES, both heap blocks of that size so ASan sees
 * one byte too far. Checked: every pair lies in the scratch and is
 * NUL-terminated there; decoding never grows; the pair count equals the
 * non-empty '&'-separated pieces; each pair equals an independent, naive
 * decoding of its piece; and the request-id check accepts exactly 1 to
 * CS_REQUEST_ID_MAX_BYTES printable ASCII bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "fe_request.h"
#include "fuzz_util.h"

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The oracle: the obvious decoding, written apart from the code under test. */
static size_t naive_decode(char *out, const char *s, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '%' && i + 2 < len && hexv(s[i + 1]) >= 0 &&
        hexv(s[i + 2]) >= 0) {
      out[o++] = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
      i += 2;
    } else {
      out[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  return o;
}

static void check_pair(const char *piece, size_t plen, const cd_pair *p,
                       const char *scratch, size_t scratch_len) {
  const char *eq = memchr(piece, '=', plen);
  size_t nlen = eq ? (size_t)(eq - piece) : plen;
  const char *v = eq ? eq + 1 : piece + plen;
  size_t vlen = eq ? plen - nlen - 1 : 0;
  char *want = malloc(plen + 1);
  FZ_CHECK(p->name >= scratch && p->name + p->name_len < scratch + scratch_len,
           "name outside the scratch");
  FZ_CHECK(p->value >= scratch &&
               p->value + p->value_len < scratch + scratch_len,
           "value outside the scratch");
  FZ_CHECK(p->name[p->name_len] == '\0' && p->value[p->value_len] == '\0',
           "pair not NUL-terminated");
  size_t n = naive_decode(want, piece, nlen);
  FZ_CHECK(n == p->name_len && memcmp(want, p->name, n) == 0,
           "name decoded differently");
  n = naive_decode(want, v, vlen);
  FZ_CHECK(n == p->value_len && memcmp(want, p->value, n) == 0,
           "value decoded differently");
  free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *q = malloc(size ? size : 1);
  memcpy(q, data, size);

  size_t max = fe_query_pairs_max(q, size);
  size_t scratch_len = FE_QUERY_SCRATCH_BYTES(size);
  char *scratch = malloc(scratch_len);
  cd_pair *pairs = malloc(max * sizeof *pairs);
  size_t count = fe_query_parse(q, size, scratch, pairs, max);
  FZ_CHECK(count <= max, "%zu pairs, at most %zu announced", count, max);

  /* Walk the pieces independently and compare one by one. */
  size_t pieces = 0, pos = 0;
  while (pos <= size) {
    const char *amp = memchr(q + pos, '&', size - pos);
    size_t plen = amp ? (size_t)(amp - (q + pos)) : size - pos;
    if (plen) {
      FZ_CHECK(pieces < count, "a piece was dropped");
      check_pair(q + pos, plen, &pairs[pieces], scratch, scratch_len);
      pieces++;
    }
    pos += plen + 1;
  }
  FZ_CHECK(pieces == count, "%zu pairs for %zu pieces", count, pieces);

  /* In-place decoding (dst == src) never grows and matches the oracle. */
  char *dup = malloc(size ? size : 1), *want = malloc(size ? size : 1);
  memcpy(dup, q, size);
  size_t n = fe_percent_decode(dup, dup, size, true);
  size_t wn = naive_decode(want, q, size);
  FZ_CHECK(n <= size && n == wn && memcmp(dup, want, n) == 0,
           "in-place decoding differs");
  n = fe_percent_decode(dup, q, size, false);
  FZ_CHECK(n <= size, "decoding grew");

  bool printable = size >= 1 && size <= CS_REQUEST_ID_MAX_BYTES;
  for (size_t i = 0; i < size && printable; i++)
    printable = data[i] >= 0x20 && data[i] <= 0x7e;
  FZ_CHECK(fe_request_id_valid(q, size) == printable, "request id check");

  free(dup);
  free(want);
  free(pairs);
  free(scratch);
  free(q);
  return 0;
}
