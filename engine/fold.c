/*
 * fold.c: the text folding every search compares on.
 *
 * Why: a search must find "José" from "  JOSE ", "Müller" from "MULLER" and
 * "Straße" from "strasse", so stored values and search terms are both
 * reduced to one canonical form before they are compared. Folding runs on
 * every indexed field of every contact at replay (millions of calls) and on
 * every search term, so it is written to be cheap:
 *
 *  - Pure ASCII input takes a fast path. On ASCII, NFKC and mark stripping
 *    are the identity and case folding is A-Z -> a-z, so the fast path only
 *    lowercases and collapses whitespace. Its output must be byte-identical
 *    to the Unicode path's (fold_text_unicode); the unit tests hold it to
 *    that.
 *  - Everything else goes through utf8proc: decompose (with compatibility
 *    mappings, case folding and mark stripping) into 32-bit code points,
 *    recompose and re-encode to UTF-8 in place (utf8proc_reencode), then
 *    collapse whitespace in place. The caller's fold_buf serves as the
 *    code point scratch, so a call allocates only when the buffer is too
 *    small, never otherwise.
 *
 * Invariants:
 *  - Output is NUL-terminated, has no leading or trailing whitespace and no
 *    two whitespace characters in a row; the only whitespace left is the
 *    single ASCII space.
 *  - Whitespace is: ASCII \t \n \v \f \r and space, U+0085, and every code
 *    point of category Zs, Zl or Zp (most of which NFKC maps to a space).
 *  - A NUL byte or invalid UTF-8 anywhere is CS_EINVAL, on both paths.
 *  - A word is a maximal run of code points of category L* or N*.
 *  - Phone keys keep only ASCII digits after folding, so fullwidth digits
 *    (which NFKC maps to ASCII) count and other scripts' digits do not.
 */
#include "fold.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "cs.h"

#define FOLD_OPTIONS                                                           \
  (UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD |  \
   UTF8PROC_STRIPMARK)

/* Byte classes for the ASCII paths. */
enum { FC_SPACE = 1, FC_UPPER = 2, FC_WORD = 4, FC_DIGIT = 8 };

static const uint8_t fold_class[128] = {
    ['\t'] = FC_SPACE,
    ['\n'] = FC_SPACE,
    ['\v'] = FC_SPACE,
    ['\f'] = FC_SPACE,
    ['\r'] = FC_SPACE,
    [' '] = FC_SPACE,
    ['0'] = FC_WORD | FC_DIGIT,
    ['1'] = FC_WORD | FC_DIGIT,
    ['2'] = FC_WORD | FC_DIGIT,
    ['3'] = FC_WORD | FC_DIGIT,
    ['4'] = FC_WORD | FC_DIGIT,
    ['5'] = FC_WORD | FC_DIGIT,
    ['6'] = FC_WORD | FC_DIGIT,
    ['7'] = FC_WORD | FC_DIGIT,
    ['8'] = FC_WORD | FC_DIGIT,
    ['9'] = FC_WORD | FC_DIGIT,
    ['A'] = FC_WORD | FC_UPPER,
    ['B'] = FC_WORD | FC_UPPER,
    ['C'] = FC_WORD | FC_UPPER,
    ['D'] = FC_WORD | FC_UPPER,
    ['E'] = FC_WORD | FC_UPPER,
    ['F'] = FC_WORD | FC_UPPER,
    ['G'] = FC_WORD | FC_UPPER,
    ['H'] = FC_WORD | FC_UPPER,
    ['I'] = FC_WORD | FC_UPPER,
    ['J'] = FC_WORD | FC_UPPER,
    ['K'] = FC_WORD | FC_UPPER,
    ['L'] = FC_WORD | FC_UPPER,
    ['M'] = FC_WORD | FC_UPPER,
    ['N'] = FC_WORD | FC_UPPER,
    ['O'] = FC_WORD | FC_UPPER,
    ['P'] = FC_WORD | FC_UPPER,
    ['Q'] = FC_WORD | FC_UPPER,
    ['R'] = FC_WORD | FC_UPPER,
    ['S'] = FC_WORD | FC_UPPER,
    ['T'] = FC_WORD | FC_UPPER,
    ['U'] = FC_WORD | FC_UPPER,
    ['V'] = FC_WORD | FC_UPPER,
    ['W'] = FC_WORD | FC_UPPER,
    ['X'] = FC_WORD | FC_UPPER,
    ['Y'] = FC_WORD | FC_UPPER,
    ['Z'] = FC_WORD | FC_UPPER,
    ['a'] = FC_WORD,
    ['b'] = FC_WORD,
    ['c'] = FC_WORD,
    ['d'] = FC_WORD,
    ['e'] = FC_WORD,
    ['f'] = FC_WORD,
    ['g'] = FC_WORD,
    ['h'] = FC_WORD,
    ['i'] = FC_WORD,
    ['j'] = FC_WORD,
    ['k'] = FC_WORD,
    ['l'] = FC_WORD,
    ['m'] = FC_WORD,
    ['n'] = FC_WORD,
    ['o'] = FC_WORD,
    ['p'] = FC_WORD,
    ['q'] = FC_WORD,
    ['r'] = FC_WORD,
    ['s'] = FC_WORD,
    ['t'] = FC_WORD,
    ['u'] = FC_WORD,
    ['v'] = FC_WORD,
    ['w'] = FC_WORD,
    ['x'] = FC_WORD,
    ['y'] = FC_WORD,
    ['z'] = FC_WORD,
};

void fold_buf_free(fold_buf *b) {
  if (!b) return;
  free(b->ptr);
  b->ptr = NULL;
  b->len = b->cap = 0;
}

/* Makes room for cap bytes. The old contents need not survive. */
static int fold_reserve(fold_buf *b, size_t cap) {
  if (b->cap >= cap) return 0;
  size_t n = b->cap ? b->cap : 64;
  while (n < cap) {
    if (n > SIZE_MAX / 2) return -ENOMEM;
    n *= 2;
  }
  /* free + malloc rather than realloc: nothing needs copying. */
  char *p = malloc(n);
  if (!p) return -ENOMEM;
  free(b->ptr);
  b->ptr = p;
  b->cap = n;
  return 0;
}

static bool fold_is_space_cp(int32_t cp) {
  if (cp < 0x80) return fold_class[cp] & FC_SPACE;
  if (cp == 0x85) return true;
  utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL ||
         c == UTF8PROC_CATEGORY_ZP;
}

static bool fold_is_word_cp(int32_t cp) {
  if (cp < 0x80) return fold_class[cp] & FC_WORD;
  utf8proc_category_t c = utf8proc_category(cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
         (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/*
 * Runs utf8proc over s with options, leaving UTF-8 in out->ptr and its byte
 * length in *len_out. When spaces is set, every whitespace code point is
 * turned into an ASCII space first (before recomposition, which never
 * combines whitespace). The fold_buf doubles as the code point buffer.
 */
static int fold_utf8proc(const char *s, size_t len, utf8proc_option_t options,
                         bool spaces, fold_buf *out, size_t *len_out) {
  if (len > (size_t)INT32_MAX) return CS_EINVAL;
  if (memchr(s, 0, len)) return CS_EINVAL;
  /* Most text keeps its code point count through folding; the count is at
   * most the byte count plus a few expansions. Retry once with the exact
   * size when that guess is short. */
  size_t want = len + 16;
  utf8proc_ssize_t n;
  for (;;) {
    if (want > SIZE_MAX / 4 - 1) return -ENOMEM;
    int rc = fold_reserve(out, (want + 1) * sizeof(int32_t));
    if (rc) return rc;
    size_t room = out->cap / sizeof(int32_t) - 1; /* one spare for the NUL */
    n = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len,
                           (utf8proc_int32_t *)(void *)out->ptr,
                           (utf8proc_ssize_t)room, options);
    if (n < 0) return n == UTF8PROC_ERROR_NOMEM ? -ENOMEM : CS_EINVAL;
    if ((size_t)n <= room) break;
    want = (size_t)n;
  }
  int32_t *cp = (int32_t *)(void *)out->ptr;
  if (spaces)
    for (utf8proc_ssize_t i = 0; i < n; i++)
      if (fold_is_space_cp(cp[i])) cp[i] = ' ';
  utf8proc_ssize_t bytes = utf8proc_reencode(cp, n, options);
  if (bytes < 0) return bytes == UTF8PROC_ERROR_NOMEM ? -ENOMEM : CS_EINVAL;
  *len_out = (size_t)bytes;
  return 0;
}

/* Collapses runs of ASCII spaces to one and trims, in place. */
static size_t fold_collapse(char *p, size_t len) {
  size_t o = 0;
  bool pending = false;
  for (size_t i = 0; i < len; i++) {
    char c = p[i];
    if (c == ' ') {
      pending = o > 0;
      continue;
    }
    if (pending) {
      p[o++] = ' ';
      pending = false;
    }
    p[o++] = c;
  }
  p[o] = '\0';
  return o;
}

int fold_text_unicode(const char *s, size_t len, fold_buf *out) {
  if (!s && len) return CS_EINVAL;
  size_t n;
  int rc = fold_utf8proc(s ? s : "", len, FOLD_OPTIONS, true, out, &n);
  if (rc) return rc;
  out->len = fold_collapse(out->ptr, n);
  return 0;
}

/*
 * The ASCII fast path: 1 when s is not pure ASCII (nothing written, the
 * caller takes the Unicode path), else 0 or an error.
 */
static int fold_text_ascii(const char *s, size_t len, fold_buf *out) {
  int rc = fold_reserve(out, len + 1);
  if (rc) return rc;
  const unsigned char *u = (const unsigned char *)s;
  char *o = out->ptr;
  size_t n = 0;
  bool pending = false;
  for (size_t i = 0; i < len; i++) {
    unsigned c = u[i];
    if (c >= 0x80) return 1;
    uint8_t k = fold_class[c];
    if (k & FC_SPACE) {
      pending = n > 0;
      continue;
    }
    if (c == 0) return CS_EINVAL;
    if (pending) {
      o[n++] = ' ';
      pending = false;
    }
    o[n++] = (char)((k & FC_UPPER) ? c + 32 : c);
  }
  o[n] = '\0';
  out->len = n;
  return 0;
}

int fold_text(const char *s, size_t len, fold_buf *out) {
  if (!s && len) return CS_EINVAL;
  int rc = fold_text_ascii(s, len, out);
  if (rc <= 0) return rc;
  return fold_text_unicode(s, len, out);
}

/* Keeps ASCII digits only, in place. */
static void fold_digits_only(fold_buf *b) {
  size_t o = 0;
  for (size_t i = 0; i < b->len; i++)
    if (b->ptr[i] >= '0' && b->ptr[i] <= '9') b->ptr[o++] = b->ptr[i];
  b->ptr[o] = '\0';
  b->len = o;
}

int fold_key(int field, const char *s, size_t len, fold_buf *out) {
  if (field != CS_PHONE) return fold_text(s, len, out);
  if (!s && len) return CS_EINVAL;
  int rc = fold_reserve(out, len + 1);
  if (rc) return rc;
  const unsigned char *u = (const unsigned char *)s;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned c = u[i];
    if (c >= 0x80 || c == 0) {
      /* Fullwidth and other compatibility digits need NFKC first. */
      rc = fold_text_unicode(s, len, out);
      if (rc) return rc;
      fold_digits_only(out);
      return 0;
    }
    if (fold_class[c] & FC_DIGIT) out->ptr[n++] = (char)c;
  }
  out->ptr[n] = '\0';
  out->len = n;
  return 0;
}

int fold_key_empty(int field, const char *s, size_t len, fold_buf *scratch) {
  if (!s && len) return CS_EINVAL;
  /* On ASCII a text key keeps every byte but whitespace, a phone key its
   * digits; a NUL is an error either way (fold_key's). */
  uint8_t keeps = field == CS_PHONE ? FC_DIGIT : 0;
  bool empty = true;
  for (size_t i = 0; i < len; i++) {
    unsigned c = (unsigned char)s[i];
    if (c >= 0x80 || c == 0) {
      int rc = fold_key(field, s, len, scratch);
      return rc ? rc : scratch->len == 0;
    }
    if (keeps ? (fold_class[c] & keeps) : !(fold_class[c] & FC_SPACE))
      empty = false;
  }
  return empty;
}

bool fold_is_digit_cp(int32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  utf8proc_category_t c = utf8proc_category(cp);
  return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

size_t fold_next_cp(const char *s, size_t len, int32_t *cp) {
  const unsigned char *u = (const unsigned char *)s;
  if (!len) return 0;
  if (u[0] < 0x80) {
    *cp = u[0];
    return 1;
  }
  utf8proc_int32_t c;
  utf8proc_ssize_t n = utf8proc_iterate(u, (utf8proc_ssize_t)len, &c);
  if (n <= 0) return 0;
  *cp = c;
  return (size_t)n;
}

void fold_word_info(const char *w, size_t len, size_t *chars, bool *digit) {
  *chars = 0;
  *digit = false;
  int32_t cp;
  for (size_t i = 0, n; i < len && (n = fold_next_cp(w + i, len - i, &cp));
       i += n) {
    (*chars)++;
    *digit |= fold_is_digit_cp(cp);
  }
}

int fold_case(const char *s, size_t len, fold_buf *out) {
  if (!s && len) return CS_EINVAL;
  int rc = fold_reserve(out, len + 1);
  if (rc) return rc;
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < len; i++) {
    unsigned c = u[i];
    if (c >= 0x80 || c == 0) {
      size_t n;
      rc = fold_utf8proc(s, len, UTF8PROC_CASEFOLD, false, out, &n);
      if (rc) return rc;
      out->len = n;
      return 0;
    }
    out->ptr[i] = (char)((fold_class[c] & FC_UPPER) ? c + 32 : c);
  }
  out->ptr[len] = '\0';
  out->len = len;
  return 0;
}

int fold_words(const char *folded, size_t len,
               int (*fn)(void *ctx, const char *word, size_t word_len),
               void *ctx) {
  if (!folded && len) return CS_EINVAL;
  const unsigned char *u = (const unsigned char *)folded;
  size_t i = 0, start = 0;
  bool in_word = false;
  while (i < len) {
    size_t step = 1;
    bool word;
    if (u[i] < 0x80) {
      word = fold_class[u[i]] & FC_WORD;
    } else {
      utf8proc_int32_t cp;
      utf8proc_ssize_t k =
          utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
      if (k <= 0) return CS_EINVAL;
      step = (size_t)k;
      word = fold_is_word_cp(cp);
    }
    if (word && !in_word) {
      start = i;
      in_word = true;
    } else if (!word && in_word) {
      in_word = false;
      int rc = fn(ctx, folded + start, i - start);
      if (rc) return rc;
    }
    i += step;
  }
  if (in_word) return fn(ctx, folded + start, len - start);
  return 0;
}
