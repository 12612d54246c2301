/*
 * fold.h: the text folding every search compares on (private to the engine).
 *
 * Folding, as the API defines it: Unicode NFKC, case folded, diacritics
 * (combining marks) removed, runs of whitespace collapsed to one space,
 * leading and trailing whitespace trimmed. "  JOSÉ  " folds to "jose";
 * "Straße" to "strasse". Phone numbers fold to their digits only. A word is
 * a run of letters and digits in the folded text.
 *
 * Input must be valid UTF-8 without NUL (the engine validates before it
 * folds); folding invalid input returns CS_EINVAL.
 */
#ifndef CS_FOLD_H
#define CS_FOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable output buffer the caller owns and may reuse across calls.
 * Initialise with {0}; free ptr with free(). ptr is NUL-terminated after a
 * successful fold. */
typedef struct fold_buf {
  char *ptr;
  size_t len;
  size_t cap;
} fold_buf;

/* Folds UTF-8 text into *out (replacing its contents). 0, CS_EINVAL, -ENOMEM.
 */
int fold_text(const char *s, size_t len, fold_buf *out);

/* The exact-match key of a field's value: fold_text, or the digits only for
 * CS_PHONE. Used both for stored values and for search terms. */
int fold_key(int field, const char *s, size_t len, fold_buf *out);

/* Whether fold_key of the value is empty: 1 or 0, or fold_key's error.
 * ASCII is only scanned (nothing written); other text is folded into
 * scratch. */
int fold_key_empty(int field, const char *s, size_t len, fold_buf *scratch);

/* Calls fn for every word of already folded text, in order (duplicates
 * included), stopping when fn returns non-zero, which it then returns. */
int fold_words(const char *folded, size_t len,
               int (*fn)(void *ctx, const char *word, size_t word_len),
               void *ctx);

/* A digit, as words count them: Unicode numbers (Nd, Nl, No). */
bool fold_is_digit_cp(int32_t cp);
/* Decodes the code point at s (valid UTF-8) into *cp; its bytes, or 0 at
 * the end or on invalid input. */
size_t fold_next_cp(const char *s, size_t len, int32_t *cp);
/* A folded word's length in code points, and whether it holds a digit
 * (the typo allowance of a query word depends on both). */
void fold_word_info(const char *w, size_t len, size_t *chars, bool *digit);

/* Case folding only (no NFKC, no mark stripping): how email uniqueness is
 * compared. */
int fold_case(const char *s, size_t len, fold_buf *out);

void fold_buf_free(fold_buf *b);

/* fold_text without its ASCII fast path: every input goes through the
 * Unicode normaliser. fold_text must give byte-identical results; this is
 * exposed so tests can hold it to that. */
int fold_text_unicode(const char *s, size_t len, fold_buf *out);

#endif
