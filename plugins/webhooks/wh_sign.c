/*
 * wh_sign.c: webhook ids, signing secrets and the signature of a delivery.
 *
 * The signature is the Standard Webhooks one (API.md): the receiver gets
 * webhook-id, webhook-timestamp and webhook-signature: "v1," and the
 * base64 (standard alphabet, padded) of HMAC-SHA256 over
 * "<webhook-id>.<webhook-timestamp>.<body>", keyed with the secret's bytes:
 * the base64-decoded part of "whsec_..." after the prefix. Every receiver
 * library of the specification checks exactly that.
 *
 * Randomness comes from OpenSSL's RAND_bytes (the system's CSPRNG); an id
 * is drawn by rejection so that each base62 character is uniform.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "wh.h"

static const char base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int wh_id_new(char out[WH_ID_BYTES + 1]) {
  size_t n = strlen(WH_ID_PREFIX);
  memcpy(out, WH_ID_PREFIX, n);
  while (n < WH_ID_BYTES) {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1) return -1;
    /* 248 = 4 * 62: bytes at or above it would favour the first
     * characters. */
    for (size_t i = 0; i < sizeof(raw) && n < WH_ID_BYTES; i++)
      if (raw[i] < 248) out[n++] = base62[raw[i] % 62];
  }
  out[n] = '\0';
  return 0;
}

bool wh_id_valid(const char *s, size_t len) {
  size_t p = strlen(WH_ID_PREFIX);
  if (len != WH_ID_BYTES || memcmp(s, WH_ID_PREFIX, p) != 0) return false;
  for (size_t i = p; i < len; i++)
    if (s[i] == '\0' || strchr(base62, s[i]) == NULL) return false;
  return true;
}

int wh_secret_new(uint8_t key[WH_SECRET_BYTES]) {
  return RAND_bytes(key, WH_SECRET_BYTES) == 1 ? 0 : -1;
}

void wh_secret_format(const uint8_t key[WH_SECRET_BYTES],
                      char out[WH_SECRET_TEXT_BYTES + 1]) {
  size_t p = strlen(WH_SECRET_PREFIX);
  memcpy(out, WH_SECRET_PREFIX, p);
  EVP_EncodeBlock((unsigned char *)out + p, key, WH_SECRET_BYTES);
}

int wh_secret_parse(const char *s, size_t len, uint8_t key[WH_SECRET_BYTES]) {
  size_t p = strlen(WH_SECRET_PREFIX);
  if (len != WH_SECRET_TEXT_BYTES || memcmp(s, WH_SECRET_PREFIX, p) != 0)
    return -1;
  /* EVP_DecodeBlock needs the input's length a multiple of 4 and decodes
   * 3 bytes of every 4 characters, padding included: 24 bytes are 32
   * characters with no padding, so it writes exactly 24. */
  unsigned char raw[WH_SECRET_BYTES + 3];
  if (EVP_DecodeBlock(raw, (const unsigned char *)s + p, (int)(len - p)) !=
      WH_SECRET_BYTES)
    return -1;
  /* Only the canonical text: decoding is lenient about some characters
   * (whitespace), encoding is not. */
  char again[WH_SECRET_TEXT_BYTES + 1];
  wh_secret_format(raw, again);
  if (memcmp(again, s, len) != 0) return -1;
  memcpy(key, raw, WH_SECRET_BYTES);
  return 0;
}

int wh_sign(const uint8_t *key, size_t key_len, const char *msg_id,
            int64_t timestamp, const char *body, size_t body_len,
            char out[WH_SIGNATURE_BYTES + 1]) {
  char ts[24];
  int ts_len = snprintf(ts, sizeof(ts), ".%lld.", (long long)timestamp);
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  int rc = -1;
  EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
      OSSL_PARAM_construct_end()};
  if (ctx == NULL || EVP_MAC_init(ctx, key, key_len, params) != 1 ||
      EVP_MAC_update(ctx, (const unsigned char *)msg_id, strlen(msg_id)) != 1 ||
      EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)ts_len) != 1 ||
      (body_len > 0 &&
       EVP_MAC_update(ctx, (const unsigned char *)body, body_len) != 1) ||
      EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) != 1 || mac_len != 32)
    goto out;
  memcpy(out, "v1,", 3);
  EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
  rc = 0;
out:
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(hmac);
  return rc;
}
