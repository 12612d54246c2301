/*
 * test_webhooks_core.c: the webhooks plugin's pieces that need no store,
 * no thread and no network (whcore).
 *
 * Goal: the signature is the Standard Webhooks one, checked three ways
 * (the specification's published example; a second HMAC made here over
 * the documented string, with libcrypto's one-shot HMAC rather than the
 * plugin's EVP_MAC calls; and a body holding NUL bytes and a secret that
 * round-trips through its text); ids and secrets have their documented
 * shapes; the retry schedule starts near 1 s, doubles, stops at an hour and
 * never leaves its 20% band, for every jitter value at the band's edges;
 * the allow-list matches host and port in canonical form; every URL shape
 * the API refuses is refused, at and past WH_URL_MAX_BYTES; every body
 * fault gets its code and field; the side file round-trips every member
 * and is refused, with a reason, when any byte is changed, when cut at any
 * length, and for each semantic fault (a member missing, unknown, twice,
 * of the wrong type, out of range; ids twice; limits passed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "wh.h"

/* ------------------------------------------------------------- signature */

static void test_webhooks_signature_matches_the_published_example(void **st) {
  /* The Standard Webhooks specification's example (also the reference
   * libraries' test): this secret, id, timestamp and body sign to this. */
  uint8_t key[WH_SECRET_BYTES];
  const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  assert_int_equal(wh_secret_parse(secret, strlen(secret), key), 0);
  const char *body = "{\"test\": 2432232314}";
  char sig[WH_SIGNATURE_BYTES + 1];
  assert_int_equal(wh_sign(key, sizeof(key), "msg_p5jXN8AQM9LWM0D4loKWxJek",
                           1614265330, body, strlen(body), sig),
                   0);
  assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  /* And the key writes back as the same text. */
  char text[WH_SECRET_TEXT_BYTES + 1];
  wh_secret_format(key, text);
  assert_string_equal(text, secret);
}

/* The documented string signed another way: one HMAC() over it, whole. */
static void independent_sign(const uint8_t *key, const char *id, long long ts,
                             const char *body, size_t len, char out[64]) {
  char head[128];
  int n = snprintf(head, sizeof(head), "%s.%lld.", id, ts);
  unsigned char *msg = malloc((size_t)n + len + 1);
  assert_non_null(msg);
  memcpy(msg, head, (size_t)n);
  memcpy(msg + n, body, len);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  assert_non_null(HMAC(EVP_sha256(), key, WH_SECRET_BYTES, msg, (size_t)n + len,
                       mac, &mac_len));
  assert_int_equal(mac_len, 32);
  memcpy(out, "v1,", 3);
  EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
  free(msg);
}

static void test_webhooks_signature_is_hmac_of_the_documented_string(void **s) {
  for (int round = 0; round < 50; round++) {
    uint8_t key[WH_SECRET_BYTES], again[WH_SECRET_BYTES];
    assert_int_equal(wh_secret_new(key), 0);
    char text[WH_SECRET_TEXT_BYTES + 1];
    wh_secret_format(key, text);
    assert_int_equal(strlen(text), WH_SECRET_TEXT_BYTES);
    assert_int_equal(wh_secret_parse(text, strlen(text), again), 0);
    assert_memory_equal(key, again, sizeof(key));
    /* Bodies of every length up to a few blocks, with NUL bytes. */
    char body[300];
    for (size_t i = 0; i < sizeof(body); i++)
      body[i] = (char)((i * 7 + (size_t)round) % 256);
    size_t len = (size_t)round * 6;
    char id[32];
    snprintf(id, sizeof(id), "%020d", round + 1);
    char mine[WH_SIGNATURE_BYTES + 1], theirs[64];
    assert_int_equal(
        wh_sign(key, sizeof(key), id, 1700000000 + round, body, len, mine), 0);
    independent_sign(key, id, 1700000000 + round, body, len, theirs);
    assert_string_equal(mine, theirs);
    assert_int_equal(strlen(mine), WH_SIGNATURE_BYTES);
  }
}

static void test_webhooks_secret_text_is_strict(void **state) {
  uint8_t key[WH_SECRET_BYTES];
  static const char *const bad[] = {
      "",
      "whsec_",
      "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",        /* no prefix */
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",   /* short */
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA", /* long */
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w",  /* not base64 */
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa w",  /* a space */
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa==",  /* padding: fewer bytes */
      "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (wh_secret_parse(bad[i], strlen(bad[i]), key) == 0)
      fail_msg("secret '%s' was taken", bad[i]);
}

static void test_webhooks_ids_have_their_shape(void **state) {
  char a[WH_ID_BYTES + 1], b[WH_ID_BYTES + 1];
  assert_int_equal(wh_id_new(a), 0);
  assert_int_equal(wh_id_new(b), 0);
  assert_int_equal(strlen(a), WH_ID_BYTES);
  assert_memory_equal(a, "wh_", 3);
  assert_true(wh_id_valid(a, strlen(a)));
  assert_string_not_equal(a, b);
  assert_false(wh_id_valid(a, strlen(a) - 1));
  a[5] = '-';
  assert_false(wh_id_valid(a, strlen(a)));
  assert_false(wh_id_valid("xx_000000000000000000000000", WH_ID_BYTES));
}

/* ---------------------------------------------------------------- retries */

static void test_webhooks_retry_schedule_doubles_to_an_hour(void **state) {
  /* The jitter values at the band's two edges and its middle. */
  const uint32_t lo = 0, mid = 20000, hi = 40000;
  assert_int_equal(wh_retry_delay_ms(1, mid), WH_RETRY_FIRST_MS);
  assert_int_equal(wh_retry_delay_ms(1, lo), WH_RETRY_FIRST_MS * 8 / 10);
  assert_int_equal(wh_retry_delay_ms(1, hi), WH_RETRY_FIRST_MS * 12 / 10);
  assert_int_equal(wh_retry_delay_ms(2, mid), 2 * WH_RETRY_FIRST_MS);
  assert_int_equal(wh_retry_delay_ms(3, mid), 4 * WH_RETRY_FIRST_MS);
  /* 2^11 s is past the hour: from the 13th failure on, the base is the
   * cap, and the jitter only ever takes it down. */
  assert_int_equal(wh_retry_delay_ms(12, mid), 2048 * WH_RETRY_FIRST_MS);
  assert_int_equal(wh_retry_delay_ms(13, mid), WH_RETRY_MAX_MS);
  assert_int_equal(wh_retry_delay_ms(13, hi), WH_RETRY_MAX_MS);
  assert_int_equal(wh_retry_delay_ms(13, lo), WH_RETRY_MAX_MS * 8 / 10);
  assert_int_equal(wh_retry_delay_ms(1000000, mid), WH_RETRY_MAX_MS);
  assert_int_equal(wh_retry_delay_ms(UINT32_MAX, UINT32_MAX) <= WH_RETRY_MAX_MS,
                   1);
  /* Every failure count and many jitter values: inside the band around
   * the doubled base, never above the cap, never below 80% of the first. */
  for (uint32_t f = 1; f < 40; f++) {
    int64_t base = WH_RETRY_FIRST_MS;
    for (uint32_t i = 1; i < f && base < WH_RETRY_MAX_MS; i++)
      base *= 2;
    if (base > WH_RETRY_MAX_MS) base = WH_RETRY_MAX_MS;
    for (uint32_t r = 0; r < 200000; r += 997) {
      uint32_t rnd = r * 2654435761u;
      int64_t d = wh_retry_delay_ms(f, rnd);
      assert_true(d >= base * (100 - WH_RETRY_JITTER_PERCENT) / 100);
      assert_true(d <= base * (100 + WH_RETRY_JITTER_PERCENT) / 100);
      assert_true(d <= WH_RETRY_MAX_MS);
    }
  }
  /* Failure 0 (never passed) is treated as the first. */
  assert_int_equal(wh_retry_delay_ms(0, mid), WH_RETRY_FIRST_MS);
}

/* -------------------------------------------------------- URLs, allowing */

static wh_url url_of(const char *s) {
  wh_url u;
  char why[256];
  if (wh_url_parse(s, strlen(s), &u, why, sizeof(why)) != 0)
    fail_msg("'%s' refused: %s", s, why);
  return u;
}

static void test_webhooks_url_shapes(void **state) {
  wh_url u = url_of("http://127.0.0.1:8080/hook");
  assert_false(u.https);
  assert_string_equal(u.host, "127.0.0.1");
  assert_int_equal(u.port, 8080);
  u = url_of("HTTPS://Hooks.Example.COM/a/b?token=x%2Fy&z=1");
  assert_true(u.https);
  assert_string_equal(u.host, "hooks.example.com");
  assert_int_equal(u.port, 443);
  u = url_of("http://example.com");
  assert_int_equal(u.port, 80);
  u = url_of("http://[0:0::1]:9/");
  assert_string_equal(u.host, "::1");
  assert_int_equal(u.port, 9);
  u = url_of("http://x.example:65535/?q");
  assert_int_equal(u.port, 65535);

  static const char *const bad[] = {
      "",
      "ftp://example.com/",
      "file:///etc/passwd",
      "http:/example.com/",
      "http://",
      "http:///x",
      "http://user@example.com/",
      "http://user:pw@example.com/",
      "http://example.com:0/",
      "http://example.com:65536/",
      "http://example.com:/",
      "http://example.com:8o/",
      "http://::1/",
      "http://[::1/",
      "http://[::1]x/",
      "http://[nonsense]/",
      "http://-x.com/",
      "http://x_y.com/",
      "http://1.2.3/",
      "http://256.1.1.1/",
      "http://exa%6dple.com/",
      "http://example.com/a b",
      "http://example.com/a\"b",
      "http://example.com/a\\b",
      "http://example.com/a<b>",
      "http://example.com/#frag",
      "http://example.com/%zz",
      "http://example.com/%4",
      "http://example.com/\x7f",
      "http://example.com/\xc3\xa9",
      "http://example.com\\@evil.com/",
      " http://example.com/",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char why[256] = "";
    if (wh_url_parse(bad[i], strlen(bad[i]), &u, why, sizeof(why)) == 0)
      fail_msg("URL '%s' was taken", bad[i]);
    assert_true(why[0] != '\0');
  }
  /* A NUL inside. */
  char why[256];
  assert_int_equal(wh_url_parse("http://a.com/\0x", 15, &u, why, sizeof(why)),
                   -1);

  /* WH_URL_MAX_BYTES at and past its edge. */
  char big[WH_URL_MAX_BYTES + 2];
  memset(big, 'a', sizeof(big));
  memcpy(big, "http://a.com/", 13);
  assert_int_equal(wh_url_parse(big, WH_URL_MAX_BYTES, &u, why, sizeof(why)),
                   0);
  assert_int_equal(
      wh_url_parse(big, WH_URL_MAX_BYTES + 1, &u, why, sizeof(why)), -1);
  assert_non_null(strstr(why, "longer than"));
}

static void test_webhooks_allow_list_matches_host_and_port(void **state) {
  static const char *const entries[] = {"127.0.0.1:8080", "Hooks.Example.com",
                                        "[::1]:9000", "10.0.0.1:443"};
  wh_allow list[4];
  char why[256];
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(wh_allow_parse(entries[i], &list[i], why, sizeof(why)), 0);
  assert_int_equal(list[1].port, 0);
  struct {
    const char *url;
    bool allowed;
  } cases[] = {
      {"http://127.0.0.1:8080/x", true},
      {"http://127.0.0.1:8081/x", false},
      {"http://127.0.0.1/x", false}, /* port 80 */
      {"http://127.0.0.2:8080/x", false},
      {"http://localhost:8080/x", false},   /* names are not resolved */
      {"https://hooks.example.com/", true}, /* any port */
      {"http://HOOKS.EXAMPLE.COM:1/", true},
      {"http://sub.hooks.example.com/", false}, /* no suffix match */
      {"http://hooks.example.com.evil.com/", false},
      {"http://[::1]:9000/", true},
      {"http://[0::1]:9000/", true}, /* canonical form */
      {"http://[::1]:9001/", false},
      {"https://10.0.0.1/", true}, /* 443 by default */
      {"http://10.0.0.1/", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wh_url u = url_of(cases[i].url);
    if (wh_allowed(list, 4, &u) != cases[i].allowed)
      fail_msg("%s: allowed should be %d", cases[i].url, cases[i].allowed);
  }
  /* No list allows nothing. */
  wh_url u = url_of("http://127.0.0.1:8080/x");
  assert_false(wh_allowed(list, 0, &u));
  wh_allow a;
  assert_int_equal(wh_allow_parse("no_such:host", &a, why, sizeof(why)), -1);
  assert_non_null(strstr(why, "--webhook-allow"));
  assert_int_equal(wh_allow_parse("a.com:0", &a, why, sizeof(why)), -1);
}

/* ------------------------------------------------------------------ body */

static const wh_allow *body_allow(size_t *n) {
  static wh_allow list[1];
  char why[256];
  assert_int_equal(wh_allow_parse("127.0.0.1", &list[0], why, sizeof(why)), 0);
  *n = 1;
  return list;
}

static void body_ok(const char *json, const char *want_url,
                    unsigned want_types) {
  size_t n;
  const wh_allow *allow = body_allow(&n);
  char url[WH_URL_MAX_BYTES + 1];
  unsigned types;
  ct_err e;
  if (wh_body_parse(json, strlen(json), allow, n, url, &types, &e) != 0)
    fail_msg("%s refused: %s %s", json, e.code, e.msg);
  assert_string_equal(url, want_url);
  assert_int_equal(types, want_types);
}

static void body_bad(const char *json, size_t len, int status, const char *code,
                     const char *field) {
  size_t n;
  const wh_allow *allow = body_allow(&n);
  char url[WH_URL_MAX_BYTES + 1];
  unsigned types;
  ct_err e;
  if (wh_body_parse(json, len, allow, n, url, &types, &e) == 0)
    fail_msg("%.*s taken", (int)len, json);
  if (e.status != status || strcmp(e.code, code) != 0 ||
      strcmp(e.field, field ? field : "") != 0)
    fail_msg("%.*s: got %d %s field '%s' (%s)", (int)len, json, e.status,
             e.code, e.field, e.msg);
  assert_true(e.msg[0] != '\0');
}

#define BAD(json, code, field) body_bad(json, strlen(json), 400, code, field)

static void test_webhooks_body_is_read_strictly(void **state) {
  unsigned all = CS_CHANGE_TYPES_ALL;
  body_ok("{\"url\": \"http://127.0.0.1:9/h\"}", "http://127.0.0.1:9/h", all);
  body_ok("{\"types\": null, \"url\": \"http://127.0.0.1/\"}",
          "http://127.0.0.1/", all);
  body_ok("{\"url\": \"http://127.0.0.1/\", \"types\": [\"deleted\", "
          "\"created\", \"deleted\"]}",
          "http://127.0.0.1/",
          (1u << CS_CHANGE_DELETED) | (1u << CS_CHANGE_CREATED));
  body_ok("{\"url\": \"http://127.0.0.1/\", \"types\": [\"created\", "
          "\"updated\", \"deleted\", \"restored\", \"purged\"]}",
          "http://127.0.0.1/", all);

  BAD("", "invalid_json", NULL);
  BAD("nonsense", "invalid_json", NULL);
  BAD("[]", "invalid_json", NULL);
  BAD("\"http://127.0.0.1/\"", "invalid_json", NULL);
  BAD("{\"url\": \"http://127.0.0.1/\"", "invalid_json", NULL);
  BAD("{\"url\": \"http://127.0.0.1/\"} {}", "invalid_json", NULL);
  body_bad("{\"url\": \"http://127.0.0.1/\"}\0", 29, 400, "invalid_json", NULL);
  BAD("{}", "missing_field", "url");
  BAD("{\"types\": [\"created\"]}", "missing_field", "url");
  BAD("{\"url\": 5}", "invalid_field", "url");
  BAD("{\"url\": null}", "invalid_field", "url");
  BAD("{\"url\": [\"http://127.0.0.1/\"]}", "invalid_field", "url");
  BAD("{\"url\": {}}", "invalid_field", "url");
  BAD("{\"url\": \"ftp://127.0.0.1/\"}", "invalid_field", "url");
  BAD("{\"url\": \"127.0.0.1\"}", "invalid_field", "url");
  /* Well formed, but not a host the allow-list names. */
  BAD("{\"url\": \"http://127.0.0.2/\"}", "invalid_field", "url");
  BAD("{\"url\": \"http://localhost/\"}", "invalid_field", "url");
  BAD("{\"url\": \"http://127.0.0.1/\", \"types\": []}", "invalid_field",
      "types");
  BAD("{\"url\": \"http://127.0.0.1/\", \"types\": \"created\"}",
      "invalid_field", "types");
  BAD("{\"url\": \"http://127.0.0.1/\", \"types\": [\"made\"]}",
      "invalid_field", "types");
  BAD("{\"url\": \"http://127.0.0.1/\", \"types\": [\"Created\"]}",
      "invalid_field", "types");
  BAD("{\"url\": \"http://127.0.0.1/\", \"types\": [1]}", "invalid_field",
      "types");
  BAD("{\"url\": \"http://127.0.0.1/\", \"types\": [[\"created\"]]}",
      "invalid_field", "types");
  BAD("{\"url\": \"http://127.0.0.1/\", \"types\": {}}", "invalid_field",
      "types");
  BAD("{\"url\": \"http://127.0.0.1/\", \"secret\": \"x\"}", "unknown_field",
      "secret");
  BAD("{\"url\": \"http://127.0.0.1/\", \"url\": \"http://127.0.0.1/\"}",
      "duplicate_field", "url");
  BAD("{\"types\": null, \"types\": null, \"url\": \"http://127.0.0.1/\"}",
      "duplicate_field", "types");

  /* A megabyte of brackets is refused at the first, with no deep stack. */
  size_t deep = 1 << 20;
  char *brackets = malloc(deep);
  assert_non_null(brackets);
  memset(brackets, '[', deep);
  body_bad(brackets, deep, 400, "invalid_json", NULL);
  memcpy(brackets, "{\"url\":", 7);
  body_bad(brackets, deep, 400, "invalid_field", "url");
  free(brackets);

  /* The URL's limit through the body. */
  char *json = malloc(WH_URL_MAX_BYTES + 64);
  assert_non_null(json);
  int n = snprintf(json, 64, "{\"url\": \"http://127.0.0.1/");
  size_t path = WH_URL_MAX_BYTES - strlen("http://127.0.0.1/");
  memset(json + n, 'p', path);
  strcpy(json + n + path, "\"}");
  char want[WH_URL_MAX_BYTES + 1];
  memcpy(want, json + 9, WH_URL_MAX_BYTES);
  want[WH_URL_MAX_BYTES] = '\0';
  body_ok(json, want, all);
  memset(json + n, 'p', path + 1);
  strcpy(json + n + path + 1, "\"}");
  BAD(json, "invalid_field", "url");
  free(json);
}

static void test_webhooks_list_json_never_shows_the_secret(void **state) {
  wh_rec r;
  memset(&r, 0, sizeof(r));
  snprintf(r.id, sizeof(r.id), "wh_000000000000000000000001");
  snprintf(r.url, sizeof(r.url), "http://127.0.0.1/h");
  r.types = 1u << CS_CHANGE_CREATED | 1u << CS_CHANGE_PURGED;
  memset(r.secret, 0xab, sizeof(r.secret));
  r.created_ms = 1764547200000;
  r.state = WH_FAILING;
  wh_rec_error(&r, "HTTP 500 \"x\"\n\x01");
  yajl_gen g = ct_gen_new();
  wh_gen_hook(g, &r);
  const unsigned char *buf;
  size_t len;
  assert_int_equal(yajl_gen_get_buf(g, &buf, &len), yajl_gen_status_ok);
  assert_string_equal(
      (const char *)buf,
      "{\"id\":\"wh_000000000000000000000001\",\"url\":\"http://127.0.0.1/h\","
      "\"types\":[\"created\",\"purged\"],\"state\":\"failing\","
      "\"created_at\":\"2025-12-01T00:00:00.000Z\",\"last_delivery_at\":null,"
      "\"last_error\":\"HTTP 500 \\\"x\\\"??\"}");
  char secret[WH_SECRET_TEXT_BYTES + 1];
  wh_secret_format(r.secret, secret);
  assert_null(strstr((const char *)buf, secret + 6));
  yajl_gen_free(g);

  g = ct_gen_new();
  wh_gen_id(g, r.id, r.secret);
  assert_int_equal(yajl_gen_get_buf(g, &buf, &len), yajl_gen_status_ok);
  char want[128];
  snprintf(want, sizeof(want), "{\"id\":\"%s\",\"secret\":\"%s\"}", r.id,
           secret);
  assert_string_equal((const char *)buf, want);
  yajl_gen_free(g);
}

/* ------------------------------------------------------------ side file */

static wh_rec sample(int i) {
  wh_rec r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(wh_id_new(r.id), 0);
  r.account = i % 3 == 2 ? CS_ACCOUNT_ID_MAX : (uint32_t)(i % 3);
  snprintf(r.url, sizeof(r.url), "http://127.0.0.1:%d/h%d?x=%%20", 1000 + i, i);
  r.types = (unsigned)(i % CS_CHANGE_TYPES_ALL) + 1;
  assert_int_equal(wh_secret_new(r.secret), 0);
  r.created_ms = 1764547200000 + i;
  r.position = i == 1 ? UINT64_MAX : (uint64_t)i * 1000;
  r.state = (uint8_t)(i % WH_STATE_COUNT);
  r.failures = i == 2 ? UINT32_MAX : (uint32_t)i;
  r.failing_since_ms = i ? 1764547300000 : 0;
  r.last_delivery_ms = i % 2 ? 1764547400000 : 0;
  if (i % 2) wh_rec_error(&r, "HTTP %d \"quoted\" \\ back", 500 + i);
  return r;
}

static void encode(const wh_rec *recs, size_t n, char **buf, size_t *len) {
  const wh_rec *ptrs[64];
  assert_true(n <= 64);
  for (size_t i = 0; i < n; i++)
    ptrs[i] = &recs[i];
  assert_int_equal(wh_file_encode(ptrs, n, buf, len), 0);
}

static void test_webhooks_side_file_round_trips(void **state) {
  wh_rec recs[7];
  for (int i = 0; i < 7; i++)
    recs[i] = sample(i);
  for (size_t n = 0; n <= 7; n++) {
    char *buf;
    size_t len;
    encode(recs, n, &buf, &len);
    wh_rec *back;
    size_t count;
    char why[256] = "";
    if (wh_file_decode((const uint8_t *)buf, len, &back, &count, why,
                       sizeof(why)) != 0)
      fail_msg("%zu records: %s", n, why);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++)
      assert_memory_equal(&back[i], &recs[i], sizeof(wh_rec));
    free(back);
    free(buf);
  }
}

static void expect_refused(const char *buf, size_t len, const char *needle) {
  wh_rec *back = (wh_rec *)1;
  size_t count = 99;
  char why[256] = "";
  if (wh_file_decode((const uint8_t *)buf, len, &back, &count, why,
                     sizeof(why)) == 0)
    fail_msg("taken: %.*s", (int)len, buf);
  assert_null(back);
  assert_int_equal(count, 0);
  assert_true(why[0] != '\0');
  if (needle != NULL && strstr(why, needle) == NULL)
    fail_msg("reason '%s' does not say '%s'", why, needle);
}

static void test_webhooks_side_file_refuses_any_damage(void **state) {
  wh_rec recs[3];
  for (int i = 0; i < 3; i++)
    recs[i] = sample(i);
  char *buf;
  size_t len;
  encode(recs, 3, &buf, &len);
  /* Every byte changed, one at a time, and every cut. */
  for (size_t i = 0; i < len; i++) {
    char was = buf[i];
    buf[i] = (char)(was ^ 0x20);
    expect_refused(buf, len, NULL);
    buf[i] = was;
  }
  for (size_t cut = 0; cut < len; cut++)
    expect_refused(buf, cut, NULL);
  /* Grown by a byte. */
  char *more = malloc(len + 1);
  memcpy(more, buf, len);
  more[len] = ' ';
  expect_refused(more, len + 1, "cut short or grown");
  free(more);
  expect_refused("", 0, "no header");
  expect_refused("{\"webhooks\": []}", 16, "no header");
  free(buf);
}

/* A file whose JSON is given here, with a correct header: the semantic
 * checks, past the checksum. */
static void refused_json(const char *json, const char *needle) {
  unsigned char md[32];
  unsigned int md_len;
  EVP_Digest(json, strlen(json), md, &md_len, EVP_sha256(), NULL);
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  size_t cap = strlen(json) + 128;
  char *buf = malloc(cap);
  int n = snprintf(buf, cap, "contactd-webhooks 1 %zu %s\n%s", strlen(json),
                   hex, json);
  expect_refused(buf, (size_t)n, needle);
  free(buf);
}

static void test_webhooks_side_file_refuses_semantic_faults(void **state) {
  wh_rec r = sample(1);
  char *buf;
  size_t len;
  encode(&r, 1, &buf, &len);
  /* The JSON after the header line, as a string of its own. */
  const char *nl = memchr(buf, '\n', len);
  assert_non_null(nl);
  char *json = strndup(nl + 1, len - (size_t)(nl + 1 - buf));
  assert_non_null(json);

  /* Each member, in turn, renamed, doubled and of another type. */
  static const char *const names[] = {"id",
                                      "account",
                                      "url",
                                      "types",
                                      "secret",
                                      "created_ms",
                                      "position",
                                      "state",
                                      "failures",
                                      "failing_since_ms",
                                      "last_delivery_ms",
                                      "last_error"};
  for (size_t m = 0; m < sizeof(names) / sizeof(names[0]); m++) {
    char key[32], *edit = malloc(strlen(json) + 64);
    snprintf(key, sizeof(key), "\"%s\":", names[m]);
    char *at = strstr(json, key);
    assert_non_null(at);
    /* Renamed: unknown, and this one missing. */
    strcpy(edit, json);
    edit[at - json + 1] = 'Z';
    refused_json(edit, "member");
    /* Given twice. */
    size_t head = (size_t)(at - json);
    memcpy(edit, json, head);
    char *end = strchr(at, ',') ? strchr(at, ',') : strchr(at, '}');
    /* types' list holds commas: take its whole value. */
    if (strcmp(names[m], "types") == 0) end = strchr(at, ']') + 1;
    size_t one = (size_t)(end - at);
    memcpy(edit + head, at, one);
    edit[head + one] = ',';
    strcpy(edit + head + one + 1, at);
    refused_json(edit, "twice");
    /* Of another type: true. */
    memcpy(edit, json, head + strlen(key));
    strcpy(edit + head + strlen(key), "true");
    strcat(edit, end);
    refused_json(edit, names[m]);
    free(edit);
  }

  static const struct {
    const char *from, *to, *why;
  } edits[] = {
      {"\"account\":1", "\"account\":2147483648", "account"},
      {"\"account\":1", "\"account\":-1", "account"},
      {"\"account\":1", "\"account\":1.5", "account"},
      {"\"state\":\"failing\"", "\"state\":\"broken\"", "state"},
      {"\"position\":\"18446744073709551615\"",
       "\"position\":\"18446744073709551616\"", "position"},
      {"\"position\":\"18446744073709551615\"", "\"position\":\"\"",
       "position"},
      {"\"url\":\"http://", "\"url\":\"ftp://", "url"},
      {"\"secret\":\"whsec_", "\"secret\":\"wxsec_", "secret"},
      {"\"id\":\"wh_", "\"id\":\"xx_", "id"},
      {"\"types\":[", "\"types\":[\"made\",", "types"},
      {"\"types\":[", "\"types\":[\"created\",\"created\",", "types"},
      {"\"last_error\":\"", "\"last_error\":\"\\u0001", "last_error"},
      {"\"last_error\":\"", "\"last_error\":\"\\u00e9", "last_error"},
  };
  for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
    char *at = strstr(json, edits[i].from);
    if (at == NULL) fail_msg("no '%s' in %s", edits[i].from, json);
    char *edit = malloc(strlen(json) + 64);
    size_t head = (size_t)(at - json);
    memcpy(edit, json, head);
    strcpy(edit + head, edits[i].to);
    strcat(edit, at + strlen(edits[i].from));
    refused_json(edit, edits[i].why);
    free(edit);
  }

  /* An empty types list; a last_error at and past its limit. */
  char *edit = malloc(strlen(json) + 2 * WH_ERROR_MAX_BYTES);
  char *at = strstr(json, "\"types\":[");
  size_t head = (size_t)(at - json) + 9;
  memcpy(edit, json, head);
  strcpy(edit + head, strchr(at, ']'));
  refused_json(edit, "empty");
  at = strstr(json, "\"last_error\":\"") + 14;
  head = (size_t)(at - json);
  for (int extra = 0; extra < 2; extra++) {
    memcpy(edit, json, head);
    memset(edit + head, 'e', WH_ERROR_MAX_BYTES + (size_t)extra);
    /* last_error is the record's last member: its value ends at "}. */
    strcpy(edit + head + WH_ERROR_MAX_BYTES + extra, strstr(at, "\"}"));
    if (extra == 0) {
      /* At the limit: taken (decode the same way refused_json builds). */
      unsigned char md[32];
      unsigned int md_len;
      EVP_Digest(edit, strlen(edit), md, &md_len, EVP_sha256(), NULL);
      char hex[65], *file = malloc(strlen(edit) + 128);
      for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
      int n = sprintf(file, "contactd-webhooks 1 %zu %s\n%s", strlen(edit), hex,
                      edit);
      wh_rec *back;
      size_t count;
      char why[256];
      assert_int_equal(wh_file_decode((const uint8_t *)file, (size_t)n, &back,
                                      &count, why, sizeof(why)),
                       0);
      assert_int_equal(strlen(back[0].last_error), WH_ERROR_MAX_BYTES);
      free(back);
      free(file);
    } else {
      refused_json(edit, "longer than");
    }
  }
  free(edit);

  /* The document's own shape. */
  refused_json("{}", "no webhooks");
  refused_json("{\"webhooks\": {}}", NULL);
  refused_json("{\"webhooks\": [], \"more\": 1}", "one member");
  refused_json("{\"webhooks\": [], \"webhooks\": []}", "one member");
  refused_json("{\"webhooks\": [1]}", NULL);
  refused_json("{\"webhooks\": [[]]}", NULL);
  refused_json("[]", NULL);
  refused_json("{\"webhooks\": []} []", NULL);

  /* The header: another version, a damaged line. */
  char *other = malloc(len + 8);
  memcpy(other, buf, len);
  other[18] = '2';
  expect_refused(other, len, "version 2");
  memcpy(other, buf, len);
  other[19] = 'x';
  expect_refused(other, len, "header");
  free(other);
  free(json);
  free(buf);
}

static void test_webhooks_side_file_refuses_twice_and_past_limits(void **st) {
  /* The same id twice. */
  wh_rec recs[WH_PER_ACCOUNT_MAX + 1];
  recs[0] = sample(0);
  recs[1] = sample(3);
  memcpy(recs[1].id, recs[0].id, sizeof(recs[0].id));
  char *buf;
  size_t len;
  encode(recs, 2, &buf, &len);
  expect_refused(buf, len, "twice");
  free(buf);
  /* One account at its limit, and past it. */
  for (int i = 0; i <= WH_PER_ACCOUNT_MAX; i++) {
    recs[i] = sample(i);
    recs[i].account = 7;
  }
  encode(recs, WH_PER_ACCOUNT_MAX, &buf, &len);
  wh_rec *back;
  size_t count;
  char why[256];
  assert_int_equal(
      wh_file_decode((const uint8_t *)buf, len, &back, &count, why, 256), 0);
  assert_int_equal(count, WH_PER_ACCOUNT_MAX);
  free(back);
  free(buf);
  encode(recs, WH_PER_ACCOUNT_MAX + 1, &buf, &len);
  expect_refused(buf, len, "more than");
  free(buf);
}

static void test_webhooks_side_file_holds_the_total_limit(void **state) {
  /* WH_TOTAL_MAX records at their largest fit the engine's side file
   * bound, and one more is refused. */
  size_t n = WH_TOTAL_MAX + 1;
  wh_rec *recs = calloc(n, sizeof(*recs));
  const wh_rec **ptrs = calloc(n, sizeof(*ptrs));
  assert_non_null(recs);
  assert_non_null(ptrs);
  for (size_t i = 0; i < n; i++) {
    wh_rec *r = &recs[i];
    assert_int_equal(wh_id_new(r->id), 0);
    r->account = (uint32_t)(i / WH_PER_ACCOUNT_MAX);
    memcpy(r->url, "http://a.com/", 13);
    memset(r->url + 13, 'p', WH_URL_MAX_BYTES - 13);
    r->url[WH_URL_MAX_BYTES] = '\0';
    r->types = CS_CHANGE_TYPES_ALL;
    r->created_ms = INT64_MAX;
    r->position = UINT64_MAX;
    r->failures = UINT32_MAX;
    r->failing_since_ms = INT64_MAX;
    r->last_delivery_ms = INT64_MAX;
    memset(r->last_error, '"', WH_ERROR_MAX_BYTES);
    ptrs[i] = r;
  }
  char *buf;
  size_t len;
  assert_int_equal(wh_file_encode(ptrs, WH_TOTAL_MAX, &buf, &len), 0);
  assert_true(len <= CS_SIDE_FILE_MAX_BYTES);
  wh_rec *back;
  size_t count;
  char why[256];
  assert_int_equal(
      wh_file_decode((const uint8_t *)buf, len, &back, &count, why, 256), 0);
  assert_int_equal(count, WH_TOTAL_MAX);
  free(back);
  free(buf);
  assert_int_equal(wh_file_encode(ptrs, n, &buf, &len), 0);
  expect_refused(buf, len, "more than");
  free(buf);
  free(ptrs);
  free(recs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_webhooks_signature_matches_the_published_example),
      cmocka_unit_test(
          test_webhooks_signature_is_hmac_of_the_documented_string),
      cmocka_unit_test(test_webhooks_secret_text_is_strict),
      cmocka_unit_test(test_webhooks_ids_have_their_shape),
      cmocka_unit_test(test_webhooks_retry_schedule_doubles_to_an_hour),
      cmocka_unit_test(test_webhooks_url_shapes),
      cmocka_unit_test(test_webhooks_allow_list_matches_host_and_port),
      cmocka_unit_test(test_webhooks_body_is_read_strictly),
      cmocka_unit_test(test_webhooks_list_json_never_shows_the_secret),
      cmocka_unit_test(test_webhooks_side_file_round_trips),
      cmocka_unit_test(test_webhooks_side_file_refuses_any_damage),
      cmocka_unit_test(test_webhooks_side_file_refuses_semantic_faults),
      cmocka_unit_test(test_webhooks_side_file_refuses_twice_and_past_limits),
      cmocka_unit_test(test_webhooks_side_file_holds_the_total_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
