/*
 * ct_safe.c: the request headers of safe writes (API.md "Safe writes"):
 * If-Match and If-None-Match read into the engine's cs_cond, the
 * Idempotency-Key checked, the request's fingerprint, and what every write
 * route does with them before and after it writes.
 *
 * Entity tags. Ours are strong tags made of a contact's version, "7" with
 * its quotes. If-Match is "*" or a comma-separated list of strong tags
 * (RFC 9110 section 13.1.1; a weak tag W/"7" can never match under the
 * strong comparison If-Match uses, so it is refused as malformed rather
 * than silently never matching); If-None-Match also takes weak tags and
 * compares weakly (section 13.1.2). A tag that is no decimal version is
 * well formed but names no version: it becomes version 0, which no contact
 * has. A header given several times is one list (section 5.3).
 *
 * The fingerprint of an idempotent request is SHA-256 (OpenSSL's EVP) over
 * its method, its path as sent, its query parameters as decoded, and its
 * body, each length-prefixed so that no two requests frame alike:
 *
 *   u64 len(method) | method | u64 len(path) | path | u64 query_count |
 *   for each query pair in request order: u64 len(name) | name |
 *                                          u64 len(value) | value |
 *   u64 len(body) | body
 *
 * with every u64 big-endian. Headers are not part of it (If-Match, for one,
 * may change on a retry without making it another request).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ct.h"

/* ------------------------------------------------------------- headers */

/* Spaces and tabs, the optional whitespace of RFC 9110 section 5.6.3. */
static bool ct_ows(char c) {
  return c == ' ' || c == '\t';
}

static cs_str ct_trim_ows(const char *s, size_t len) {
  while (len && ct_ows(*s))
    s++, len--;
  while (len && ct_ows(s[len - 1]))
    len--;
  return (cs_str){s, len};
}

/* The tag's version: its opaque part as decimal digits with no leading
 * zero, 1 to 20 of them, within 64 bits; 0 for anything else. */
static uint64_t ct_tag_version(const char *s, size_t len) {
  if (len == 0 || len > CS_ID_DIGITS || s[0] == '0') return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  return v;
}

static int ct_cond_fail(ct_err *e, const char *name, const char *why) {
  return ct_fail(e, 400, "invalid_field", name, strlen(name), "%s: %s", name,
                 why);
}

int ct_cond_parse(const char *name, const char *v, size_t len, bool weak_ok,
                  cs_cond *c, ct_err *e) {
  cs_str all = ct_trim_ows(v, len);
  if (all.len == 1 && all.ptr[0] == '*') {
    if (c->count) return ct_cond_fail(e, name, "* cannot be given with tags");
    c->any = true;
    return 0;
  }
  size_t i = 0;
  bool any_tag = false;
  while (i < all.len) {
    /* One list member: OWS [W/] DQUOTE etagc* DQUOTE OWS, or empty. */
    while (i < all.len && ct_ows(all.ptr[i]))
      i++;
    if (i < all.len && all.ptr[i] == ',') {
      i++;
      continue;
    }
    if (c->any) return ct_cond_fail(e, name, "* cannot be given with tags");
    if (i + 1 < all.len && all.ptr[i] == 'W' && all.ptr[i + 1] == '/') {
      if (!weak_ok)
        return ct_cond_fail(e, name, "takes strong entity tags, not W/");
      i += 2;
    }
    if (i >= all.len || all.ptr[i] != '"')
      return ct_cond_fail(e, name, "expected a quoted entity tag or *");
    size_t start = ++i;
    /* etagc: %x21 / %x23-7E / obs-text */
    while (i < all.len && all.ptr[i] != '"') {
      unsigned char ch = (unsigned char)all.ptr[i];
      if (ch < 0x21 || ch == 0x7f)
        return ct_cond_fail(e, name, "an entity tag holds a bad character");
      i++;
    }
    if (i >= all.len) return ct_cond_fail(e, name, "an unclosed entity tag");
    size_t end = i++;
    while (i < all.len && ct_ows(all.ptr[i]))
      i++;
    if (i < all.len && all.ptr[i] != ',')
      return ct_cond_fail(e, name, "entity tags are separated by commas");
    if (c->count == CS_IF_MATCH_MAX)
      return ct_fail(e, 400, "invalid_field", name, strlen(name),
                     "%s: at most %d entity tags", name, CS_IF_MATCH_MAX);
    c->versions[c->count++] = ct_tag_version(all.ptr + start, end - start);
    any_tag = true;
  }
  if (!any_tag && !c->any)
    return ct_cond_fail(e, name, "expected entity tags or *");
  return 0;
}

int ct_cond_read(const cd_request *req, const char *name, bool weak_ok,
                 bool *given, cs_cond *c, ct_err *e) {
  memset(c, 0, sizeof *c);
  *given = false;
  size_t nlen = strlen(name);
  for (size_t i = 0; i < req->header_count; i++) {
    const cd_pair *h = &req->headers[i];
    if (h->name_len != nlen || memcmp(h->name, name, nlen)) continue;
    *given = true;
    if (ct_cond_parse(name, h->value, h->value_len, weak_ok, c, e)) return -1;
  }
  return 0;
}

bool ct_cond_names(const cs_cond *c, uint64_t version) {
  if (c->any) return true;
  for (uint32_t i = 0; i < c->count; i++)
    if (c->versions[i] == version) return true;
  return false;
}

int ct_idem_key_read(const cd_request *req, cs_str *key, ct_err *e) {
  static const char name[] = "idempotency-key";
  *key = (cs_str){NULL, 0};
  for (size_t i = 0; i < req->header_count; i++) {
    const cd_pair *h = &req->headers[i];
    if (h->name_len != sizeof name - 1 || memcmp(h->name, name, h->name_len))
      continue;
    if (key->ptr)
      return ct_fail(e, 400, "invalid_field", name, sizeof name - 1,
                     "%s: given more than once", name);
    *key = ct_trim_ows(h->value, h->value_len);
    if (key->len == 0 || key->len > CS_IDEM_KEY_MAX_BYTES)
      return ct_fail(e, 400, "invalid_field", name, sizeof name - 1,
                     "%s: must be 1 to %d characters", name,
                     CS_IDEM_KEY_MAX_BYTES);
    for (size_t k = 0; k < key->len; k++)
      if ((unsigned char)key->ptr[k] < 0x20 ||
          (unsigned char)key->ptr[k] > 0x7e)
        return ct_fail(e, 400, "invalid_field", name, sizeof name - 1,
                       "%s: printable ASCII characters only", name);
  }
  return 0;
}

/* --------------------------------------------------------- fingerprint */

static void ct_fp_put(EVP_MD_CTX *md, const void *p, size_t len) {
  unsigned char be[8];
  for (int i = 0; i < 8; i++)
    be[i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
  EVP_DigestUpdate(md, be, sizeof be);
  if (len) EVP_DigestUpdate(md, p, len);
}

int ct_fingerprint(const cd_request *req, uint8_t fp[CS_IDEM_FP_BYTES]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!md) return -1;
  int rc = -1;
  unsigned int len = 0;
  if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) goto out;
  ct_fp_put(md, req->method, strlen(req->method));
  ct_fp_put(md, req->path, strlen(req->path));
  unsigned char be[8];
  for (int i = 0; i < 8; i++)
    be[i] = (unsigned char)((uint64_t)req->query_count >> (56 - 8 * i));
  EVP_DigestUpdate(md, be, sizeof be);
  for (size_t i = 0; i < req->query_count; i++) {
    ct_fp_put(md, req->query[i].name, req->query[i].name_len);
    ct_fp_put(md, req->query[i].value, req->query[i].value_len);
  }
  ct_fp_put(md, req->body, req->body_len);
  if (EVP_DigestFinal_ex(md, fp, &len) == 1 && len == CS_IDEM_FP_BYTES) rc = 0;
out:
  EVP_MD_CTX_free(md);
  return rc;
}

/* ------------------------------------------------ before and after a write */

void ct_send_answer(const ct_state *st, cd_response *res, const cs_answer *a,
                    bool replayed) {
  if (replayed) st->host->header(res, "idempotent-replayed", "true");
  st->host->respond(res, a->status,
                    a->type == CS_ANSWER_TEXT ? ct_text_type : ct_json_type,
                    a->body.ptr, a->body.len);
}

int ct_safe_begin(const ct_state *st, const cd_request *req, cd_response *res,
                  unsigned flags, ct_safe *sf) {
  memset(sf, 0, sizeof *sf);
  sf->account = req->account;
  sf->store = ct_store(st, req);
  ct_err e = {0};
  if ((flags & CT_SAFE_IF_MATCH) &&
      ct_cond_read(req, "if-match", false, &sf->has_cond, &sf->cond, &e))
    return ct_send_err(st, res, &e), -1;
  cs_str key;
  if (ct_idem_key_read(req, &key, &e)) return ct_send_err(st, res, &e), -1;
  if (!key.ptr) return 0;
  memcpy(sf->key, key.ptr, key.len);
  sf->key_len = key.len;
  uint8_t fp[CS_IDEM_FP_BYTES];
  if (ct_fingerprint(req, fp)) {
    st->host->log(st->host->ctx, res, CD_LOG_ERROR,
                  "contacts: SHA-256 of the request failed");
    st->host->error(res, 500, "internal", "internal error", NULL, 0);
    return -1;
  }
  cs_answer replay = {0};
  cs_error err = {0};
  int rc = cs_idem_begin(sf->store, sf->account, sf->key, sf->key_len, fp,
                         &replay, &err);
  if (rc == CS_IDEM_REPLAY) {
    /* The write is long committed: the feed's end is past it. */
    ct_change_cursor_header(st, res, sf->store, 0);
    ct_send_answer(st, res, &replay, true);
    free((void *)replay.body.ptr);
    return -1;
  }
  if (rc == CS_EINVAL) {
    /* The engine's own check of the key's shape, which ours mirrors. */
    static const char name[] = "idempotency-key";
    ct_fail(&e, 400, "invalid_field", name, sizeof name - 1, "%s: %s", name,
            err.msg[0] ? err.msg : "malformed");
    return ct_send_err(st, res, &e), -1;
  }
  if (rc) return ct_send_rc(st, res, "idempotency key", rc, &err), -1;
  sf->has_key = true;
  return 0;
}

void ct_safe_release(ct_safe *sf) {
  if (!sf->has_key) return;
  cs_idem_release(sf->store, sf->account, sf->key, sf->key_len);
  sf->has_key = false;
}

int ct_safe_refuse(const ct_state *st, cd_response *res, ct_safe *sf,
                   const ct_err *e) {
  ct_safe_release(sf);
  ct_send_err(st, res, e);
  return CD_DONE;
}

int ct_safe_missing(const ct_state *st, cd_response *res, ct_safe *sf) {
  ct_err e;
  /* A contact that does not exist fails every If-Match (API.md). */
  if (sf->has_cond) {
    const cd_store_error *m = st->host->store_error(CS_EPRECONDITION);
    ct_fail(&e, m->status, m->code, NULL, 0, "%s", m->message);
  } else {
    ct_fail(&e, 404, "not_found", NULL, 0, "no such contact");
  }
  return ct_safe_refuse(st, res, sf, &e);
}
