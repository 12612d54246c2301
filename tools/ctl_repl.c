/*
 * ctl_repl.c: contactctl promote and fence, the friendly face of the
 * server's POST /admin/promote and POST /admin/fence (plugins/admin/
 * README.md "Replication").
 *
 *   promote --url URL [--admin-key-file FILE]   the standby at URL stops
 *       following, applies what it has and takes writes;
 *   fence --url URL [--admin-key-file FILE]     the primary at URL refuses
 *       writes from then on, across restarts.
 *
 * The answer's JSON is printed on standard output; a refusal prints the
 * server's error on stderr and exits 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl.h"

typedef struct answer {
  char body[4096];
  size_t len;
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
  answer *a = ctx;
  size_t len = size * n, room = sizeof a->body - 1 - a->len;
  size_t take = len < room ? len : room;
  memcpy(a->body + a->len, p, take);
  a->len += take;
  a->body[a->len] = '\0';
  return len;
}

static int post_admin(const char *cmd, const char *route, int argc,
                      char **argv) {
  const char *url = NULL, *key_file = NULL;
  static const struct option opts[] = {
      {"url", required_argument, 0, 'u'},
      {"admin-key-file", required_argument, 0, 'k'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    switch (c) {
    case 'u':
      url = optarg;
      break;
    case 'k':
      key_file = optarg;
      break;
    case 'h':
      return usage(stdout, cmd), EXIT_OK;
    default:
      return bad_usage(cmd, "bad option");
    }
  }
  if (optind < argc) return bad_usage(cmd, "unexpected %s", argv[optind]);
  if (!url) return bad_usage(cmd, "--url URL is required");
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return bad_usage(cmd, "--url %s: expected http://HOST:PORT", url);
  char key[CTL_KEY_FILE_MAX];
  int ex = ctl_read_key(cmd, key_file, key, sizeof key);
  if (ex) return ex;
  char full[2048], keyhdr[CTL_KEY_FILE_MAX + 16];
  size_t ulen = strlen(url);
  while (ulen && url[ulen - 1] == '/')
    ulen--;
  if (snprintf(full, sizeof full, "%.*s%s", (int)ulen, url, route) >=
      (int)sizeof full)
    return bad_usage(cmd, "--url: URL too long");
  snprintf(keyhdr, sizeof keyhdr, "x-api-key: %s", key);
  memset(key, 0, sizeof key);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "%s: libcurl failed to start\n", prog);
    return EXIT_PROBLEM;
  }
  CURL *h = curl_easy_init();
  struct curl_slist *hdr = curl_slist_append(NULL, keyhdr);
  answer a = {.len = 0};
  char cerr[CURL_ERROR_SIZE] = "";
  CURLcode cc = CURLE_OUT_OF_MEMORY;
  long status = 0;
  if (h && hdr) {
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  }
  memset(keyhdr, 0, sizeof keyhdr);
  curl_slist_free_all(hdr);
  if (h) curl_easy_cleanup(h);
  curl_global_cleanup();
  if (cc != CURLE_OK) {
    fprintf(stderr, "%s: %s %s: %s\n", prog, cmd, full,
            cerr[0] ? cerr : curl_easy_strerror(cc));
    return EXIT_PROBLEM;
  }
  if (status != 200) {
    fprintf(stderr, "%s: %s: %s answered %ld: %s\n", prog, cmd, full, status,
            a.body);
    return EXIT_PROBLEM;
  }
  printf("%s\n", a.body);
  return EXIT_OK;
}

int cmd_promote(const char *dir, int argc, char **argv) {
  (void)dir;
  return post_admin("promote", "/admin/promote", argc, argv);
}

int cmd_fence(const char *dir, int argc, char **argv) {
  (void)dir;
  return post_admin("fence", "/admin/fence", argc, argv);
}
