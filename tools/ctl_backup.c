/*
 * ctl_backup.c: contactctl backup and restore, the friendly face of the
 * server's GET /admin/backup.
 *
 *   backup --from URL [--output FILE|-]    fetches a backup from a running
 *       server (libcurl) with the admin key of CONTACTD_ADMIN_KEY or
 *       --key-file, into FILE (written beside it under a temporary name,
 *       fsynced and renamed only once the whole stream has arrived, so a
 *       broken transfer never leaves a file that looks whole);
 *   restore FILE|-                         unpacks a backup (libarchive)
 *       into --data, which must be absent or empty, then verifies it.
 *
 * restore takes regular files with plain names only (no directory, no
 * "..", no link): a backup holds the files of one data directory and
 * nothing else, and anything else is refused before a byte is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>

#include "admin.h"
#include "cs.h"
#include "ctl.h"

/* ----------------------------------------------------------------- backup */

typedef struct fetch {
  FILE *f;
  int fd;
  uint64_t bytes;
  long status;
  char errbody[512]; /* the start of a non-200 answer's body */
  size_t errlen;
  progress pg;
} fetch;

static size_t fetch_write(char *p, size_t size, size_t n, void *ctx) {
  fetch *x = ctx;
  size_t len = size * n;
  if (x->status == 0) {
    /* libcurl has the status once the body starts. */
    return len;
  }
  if (x->status != 200) {
    size_t room = sizeof x->errbody - 1 - x->errlen;
    size_t take = len < room ? len : room;
    memcpy(x->errbody + x->errlen, p, take);
    x->errlen += take;
    x->errbody[x->errlen] = '\0';
    return len;
  }
  if (fwrite(p, 1, len, x->f) != len) return 0;
  x->bytes += len;
  progress_show(&x->pg, x->bytes, 0);
  return len;
}

static size_t fetch_header(char *p, size_t size, size_t n, void *ctx) {
  fetch *x = ctx;
  if (size * n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    /* a status line: "HTTP/1.1 200 OK" or "HTTP/2 200" */
    const char *sp = memchr(p, ' ', size * n);
    x->status = sp ? strtol(sp + 1, NULL, 10) : -1;
  }
  return size * n;
}

/* Reads the admin key: CONTACTD_ADMIN_KEY, or the first line of path. */
int ctl_read_key(const char *what, const char *path, char *key, size_t cap) {
  const char *env = getenv("CONTACTD_ADMIN_KEY");
  if (!path && env && env[0]) {
    snprintf(key, cap, "%s", env);
    return 0;
  }
  if (!path) {
    fprintf(stderr,
            "%s: %s needs an admin key: set CONTACTD_ADMIN_KEY or give "
            "a key file (contactctl keys add --admin makes one)\n",
            prog, what);
    return EXIT_USAGE;
  }
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
    return EXIT_USAGE;
  }
  size_t n = fread(key, 1, cap - 1, f);
  fclose(f);
  key[n] = '\0';
  key[strcspn(key, "\r\n")] = '\0';
  if (n == cap - 1 || !key[0]) {
    fprintf(stderr, "%s: %s holds no key (one line, the key)\n", prog, path);
    return EXIT_USAGE;
  }
  return 0;
}

int cmd_backup(const char *dir, int argc, char **argv) {
  (void)dir;
  const char *from = NULL, *output = NULL, *key_file = NULL;
  static const struct option opts[] = {{"from", required_argument, 0, 'f'},
                                       {"output", required_argument, 0, 'o'},
                                       {"key-file", required_argument, 0, 'k'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      from = optarg;
      break;
    case 'o':
      output = optarg;
      break;
    case 'k':
      key_file = optarg;
      break;
    case 'h':
      return usage(stdout, "backup"), EXIT_OK;
    default:
      return bad_usage("backup", "bad option");
    }
  }
  if (optind < argc) return bad_usage("backup", "unexpected %s", argv[optind]);
  if (!from) return bad_usage("backup", "--from URL is required");
  if (strncmp(from, "http://", 7) != 0 && strncmp(from, "https://", 8) != 0)
    return bad_usage("backup", "--from %s: expected http://HOST:PORT", from);
  if (!output) output = "-";
  bool to_stdout = strcmp(output, "-") == 0;
  if (to_stdout && isatty(STDOUT_FILENO))
    return bad_usage("backup", "will not write a tar to a terminal; give "
                               "--output FILE");
  char key[CTL_KEY_FILE_MAX];
  int ex = ctl_read_key("backup", key_file, key, sizeof key);
  if (ex) return ex;

  char url[2048];
  size_t flen = strlen(from);
  while (flen && from[flen - 1] == '/')
    flen--;
  if (snprintf(url, sizeof url, "%.*s/admin/backup", (int)flen, from) >=
      (int)sizeof url)
    return bad_usage("backup", "--from: URL too long");

  fetch x = {.fd = -1};
  char tmp[4096] = "";
  if (to_stdout) {
    x.f = stdout;
  } else {
    if (snprintf(tmp, sizeof tmp, "%s.partial", output) >= (int)sizeof tmp)
      return bad_usage("backup", "--output: path too long");
    x.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (x.fd < 0 || !(x.f = fdopen(x.fd, "wb"))) {
      fprintf(stderr, "%s: %s: %s\n", prog, tmp, strerror(errno));
      if (x.fd >= 0) close(x.fd);
      return EXIT_PROBLEM;
    }
  }
  progress_begin(&x.pg, "backup", "bytes");
  CURL *h = curl_easy_init();
  struct curl_slist *hdr = NULL;
  char keyhdr[CTL_KEY_FILE_MAX + 16];
  snprintf(keyhdr, sizeof keyhdr, "x-api-key: %s", key);
  hdr = curl_slist_append(hdr, keyhdr);
  memset(keyhdr, 0, sizeof keyhdr);
  memset(key, 0, sizeof key);
  char cerr[CURL_ERROR_SIZE] = "";
  CURLcode cc = CURLE_FAILED_INIT;
  if (h && hdr) {
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fetch_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    cc = curl_easy_perform(h);
  }
  curl_slist_free_all(hdr);
  if (h) curl_easy_cleanup(h);
  progress_end(&x.pg);
  ex = EXIT_OK;
  if (cc != CURLE_OK) {
    fprintf(stderr, "%s: backup from %s failed: %s\n", prog, url,
            cerr[0] ? cerr : curl_easy_strerror(cc));
    ex = EXIT_PROBLEM;
  } else if (x.status != 200) {
    fprintf(stderr, "%s: backup from %s: the server answered %ld: %s\n", prog,
            url, x.status, x.errlen ? x.errbody : "(no body)");
    ex = EXIT_PROBLEM;
  }
  if (fflush(x.f) != 0 || (!to_stdout && fsync(fileno(x.f)) != 0)) {
    if (!ex) fprintf(stderr, "%s: %s: %s\n", prog, tmp, strerror(errno));
    ex = EXIT_PROBLEM;
  }
  if (!to_stdout) {
    fclose(x.f);
    if (ex) {
      unlink(tmp);
    } else if (rename(tmp, output) != 0) {
      fprintf(stderr, "%s: %s: %s\n", prog, output, strerror(errno));
      unlink(tmp);
      ex = EXIT_PROBLEM;
    }
  }
  if (!ex)
    fprintf(stderr, "%s: backup of %s: %" PRIu64 " bytes to %s\n", prog, from,
            x.bytes, to_stdout ? "standard output" : output);
  return ex;
}

/* ---------------------------------------------------------------- restore */

/* A name a data directory's file may have: no '/', not "." or "..",
 * not hidden, printable ASCII. */
static bool plain_name(const char *n) {
  if (!n[0] || n[0] == '.' || strlen(n) > 255) return false;
  for (const char *p = n; *p; p++)
    if (*p == '/' || *p < 0x21 || *p > 0x7e) return false;
  return true;
}

/* Unpacks archive a into the directory dfd. 0 or an exit status. */
static int unpack(struct archive *a, int dfd, const char *dir, uint64_t *files,
                  uint64_t *bytes) {
  struct archive_entry *e;
  int ar;
  char buf[1 << 16];
  while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    const char *name = archive_entry_pathname(e);
    if (!name || !plain_name(name) || archive_entry_filetype(e) != AE_IFREG) {
      fprintf(stderr,
              "%s: restore: %s is not a file of a data directory (a backup "
              "holds plain files only); stopped\n",
              prog, name ? name : "(no name)");
      return EXIT_PROBLEM;
    }
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                    archive_entry_perm(e) & 0600 ? archive_entry_perm(e) & 0777
                                                 : 0600);
    if (fd < 0) {
      fprintf(stderr, "%s: restore: %s/%s: %s\n", prog, dir, name,
              strerror(errno));
      return EXIT_PROBLEM;
    }
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
      if (write(fd, buf, (size_t)n) != n) {
        fprintf(stderr, "%s: restore: %s/%s: %s\n", prog, dir, name,
                strerror(errno));
        close(fd);
        return EXIT_PROBLEM;
      }
      *bytes += (uint64_t)n;
    }
    if (n < 0 || fsync(fd) != 0) {
      fprintf(stderr, "%s: restore: %s: %s\n", prog, name,
              n < 0 ? archive_error_string(a) : strerror(errno));
      close(fd);
      return EXIT_PROBLEM;
    }
    close(fd);
    (*files)++;
  }
  if (ar != ARCHIVE_EOF) {
    fprintf(stderr, "%s: restore: not a whole backup: %s\n", prog,
            archive_error_string(a));
    return EXIT_PROBLEM;
  }
  if (fsync(dfd) != 0) {
    fprintf(stderr, "%s: restore: %s: %s\n", prog, dir, strerror(errno));
    return EXIT_PROBLEM;
  }
  return 0;
}

int cmd_restore(const char *dir, int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--help") == 0)
    return usage(stdout, "restore"), EXIT_OK;
  if (argc != 2) return bad_usage("restore", "expected one FILE (or -)");
  const char *file = argv[1];
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "%s: restore: %s: %s\n", prog, dir, strerror(errno));
    return EXIT_PROBLEM;
  }
  if (!dir_empty(dir)) {
    fprintf(stderr,
            "%s: restore: %s is not empty; restore into a new directory and "
            "point the server's --data at it\n",
            prog, dir);
    return EXIT_USAGE;
  }
  struct archive *a = archive_read_new();
  if (!a) return fail("restore", -ENOMEM, NULL);
  archive_read_support_format_tar(a);
  int ar = strcmp(file, "-") == 0
               ? archive_read_open_fd(a, STDIN_FILENO, 1 << 16)
               : archive_read_open_filename(a, file, 1 << 16);
  if (ar != ARCHIVE_OK) {
    fprintf(stderr, "%s: restore: %s: %s\n", prog, file,
            archive_error_string(a));
    archive_read_free(a);
    return EXIT_PROBLEM;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  uint64_t files = 0, bytes = 0;
  int ex = dfd < 0 ? EXIT_PROBLEM : unpack(a, dfd, dir, &files, &bytes);
  if (dfd >= 0) close(dfd);
  archive_read_free(a);
  if (ex) {
    fprintf(stderr,
            "%s: restore: %s is incomplete; remove it before trying again\n",
            prog, dir);
    return ex;
  }
  if (!cs_dir_is_store(dir)) {
    fprintf(stderr, "%s: restore: %s holds no MANIFEST: not a backup\n", prog,
            file);
    return EXIT_PROBLEM;
  }
  cs_verify_opts o = {0};
  cs_verify_result res;
  cs_error err = {0};
  int rc = cs_admin_verify(dir, &o, finding_print, NULL, &res, &err);
  if (rc) return fail("restore: cannot verify", rc, &err);
  printf("restored %s into %s: %" PRIu64 " files, %" PRIu64
         " bytes; verify: %" PRIu64 " contacts, %" PRIu64 " problems\n",
         file, dir, files, bytes, res.contacts, res.problems);
  return res.problems ? EXIT_PROBLEM : EXIT_OK;
}
