/*
 * contactctl.c: the offline administration tool of a contactd data
 * directory: compaction, dump, load, verify, stats and API keys.
 *
 * It runs while the server is stopped: every command takes the directory's
 * lock (opening the store takes it; the keys commands take it alone) and
 * refuses, naming the holder's pid, while contactd or another contactctl
 * has it.
 *
 * Exit status: 0 success; 1 a problem found or an operation failed (a
 * damaged store, a rejected line, a locked directory, an I/O error); 2 bad
 * usage (unknown command or option, a missing argument, an account that
 * does not exist).
 *
 * load validates exactly as the API does because it runs the API's own
 * code: the contact's JSON codec (plugins/contacts/codec, ct_codec.h) reads
 * each line as an export line (ct_export_line_parse: a POST /contacts body
 * that may also carry the account, id, created_at, updated_at, version and
 * deleted_at a dump writes), and the engine's bulk load (admin.h,
 * cs_load_add) checks each contact as cs_create would, plus its identity:
 * a line with an id keeps it with its version and times, and an id the
 * store ever gave is refused, since ids are never reused. Once every line
 * is read, cs_load_commit writes the kept contacts straight into new
 * segments, syncs them, switches the manifest (the one atomic step: a
 * load killed before it leaves the store as it was) and indexes them as a
 * replay does. dump writes each contact as the same export line
 * (ct_gen_export_line), account by account, live contacts then the trash
 * (cs_export), so that a dump and a load round-trip a store exactly: ids,
 * versions, times, the trash, the accounts and the id high-water mark.
 * Field names, which are required and which the server sets come from the
 * engine's field table (cs.h), for CSV as for JSON.
 *
 * Long commands show progress on standard error when it is a terminal.
 * load and dump are in ctl_load.c and ctl_dump.c; what the commands share
 * is in ctl.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "cs.h"
#include "ct_codec.h"
#include "ctl.h"

const char *prog = "contactctl";

/* ------------------------------------------------------------------ usage */

static const char *const usage_text[][2] = {
    {"compact",
     "compact [--salvage] [--trash-days N] [--changes-days N]\n"
     "  Rewrites the live contacts into new segments, writes a fresh\n"
     "  snapshot, switches the manifest atomically and removes the old\n"
     "  files; prints the sizes before and after. Deleted contacts stay\n"
     "  while inside the trash window (--trash-days, as the server's: 1 to\n"
     "  3650, default 30) and leave the disk after it; purged ones leave\n"
     "  it now. The change feed's entries younger than --changes-days (as\n"
     "  the server's: 1 to 3650, default 30) are carried over, older ones\n"
     "  dropped. --salvage rewrites a damaged store, skipping records that\n"
     "  fail their checksum and reporting each damaged range (file and\n"
     "  offset).\n"},
    {"dump",
     "dump [--format jsonl|csv] [--account NAME] [--output FILE] [--raw]\n"
     "  Writes every contact of one account, or of all, to standard output\n"
     "  or FILE with its identity, so that load brings it back as it was:\n"
     "  JSON Lines (the default; the API's contact object with \"account\"\n"
     "  first) or CSV (RFC 4180, a header row: account, id, the fields,\n"
     "  created_at, updated_at, version, deleted_at). The trash is included:\n"
     "  after each account's live contacts (in id order) come its contacts\n"
     "  in the trash, with deleted_at. --raw lists every record instead:\n"
     "  segment, offset, type, seq, length, checksum status, id, account.\n"},
    {"load",
     "load [--format jsonl|csv] [--account NAME] [--new-ids] [--dry-run]\n"
     "       FILE|-\n"
     "  Loads contacts: a dump (each line with its account, id, version and\n"
     "  times, kept as they are; deleted_at puts it in the trash, deleted\n"
     "  then) or plain contact objects (no id: a new id, created now, the\n"
     "  version kept or 1). Each line goes to its \"account\" (made when\n"
     "  new), or every line to --account NAME, which must exist. Each line\n"
     "  is validated as the API validates a create, and emails are unique\n"
     "  per account; an id this store ever gave (ids are never reused) or\n"
     "  one given twice is refused. Each rejected line is reported with its\n"
     "  number and reason and the rest are loaded, all at once: written to\n"
     "  new segments, synced, and made part of the store in one atomic\n"
     "  step (a load stopped or killed midway leaves the store as it was),\n"
     "  then indexed. The id high-water mark moves past every id loaded.\n"
     "  --new-ids gives every line a new id and new times. --dry-run checks\n"
     "  only and changes nothing. A missing data directory is created.\n"
     "  Exit status 1 when any line was rejected.\n"},
    {"init",
     "init [--shard K]\n"
     "  Makes an empty data directory at --data (absent or empty) for shard\n"
     "  K (0 to 116, default 0). Shard K gives ids from 10^19 + K * 2^56 + 1\n"
     "  on, which no other shard gives, so shards behind one proxy never\n"
     "  hand out the same id, and an account moved to a shard numbered\n"
     "  higher keeps ids that increase. contactd --shard K makes the same\n"
     "  directory on its first start; a directory made for one shard is\n"
     "  refused by a server started with another.\n"},
    {"verify",
     "verify\n"
     "  Checks every segment header and record checksum, the manifest, and\n"
     "  the snapshot against a replay of the whole log (every index entry,\n"
     "  every contact, searches on a sample of values). Names each problem\n"
     "  by file and offset. Exit status 1 when any is found.\n"},
    {"stats",
     "stats\n"
     "  Contacts per account, segments, live and garbage bytes, snapshot\n"
     "  age, the id high-water mark.\n"},
    {"backup",
     "backup --from URL [--key-file FILE] [--output FILE|-]\n"
     "  Fetches a consistent backup of a running server's whole store\n"
     "  (GET /admin/backup) as a tar, with the admin key in\n"
     "  CONTACTD_ADMIN_KEY or the first line of --key-file. FILE appears\n"
     "  only once the whole backup has arrived; - writes to standard\n"
     "  output (not a terminal). --data is not used.\n"},
    {"restore",
     "restore FILE|-\n"
     "  Unpacks a backup into --data, which must be absent or empty, and\n"
     "  verifies it; start the server on that directory.\n"},
    {"promote",
     "promote --url URL [--admin-key-file FILE]\n"
     "  Makes the standby at URL the primary (POST /admin/promote): it stops\n"
     "  following, applies what it has and takes writes, its ids past every\n"
     "  id it has seen. The admin key is the first line of FILE, or\n"
     "  CONTACTD_ADMIN_KEY. Prints the answer. --data is not used.\n"},
    {"fence",
     "fence --url URL [--admin-key-file FILE]\n"
     "  Fences the primary at URL (POST /admin/fence): it refuses writes\n"
     "  from then on, across restarts, until started as a standby.\n"},
    {"keys",
     "keys add --account NAME [--read-only | --admin]\n"
     "  keys list\n"
     "  keys revoke KEY_ID\n"
     "  keys moving --account NAME on|off\n"
     "  API keys: add creates a key (and the account when new) and prints\n"
     "  it once (--admin: a key for the server's /admin/... requests\n"
     "  only); list shows key ids, accounts, roles, creation times,\n"
     "  revocations and whether the account is marked moving, never keys;\n"
     "  revoke revokes a key by its key id (its first 11 characters\n"
     "  exactly, as list shows it) or by the whole key; moving sets or\n"
     "  clears an account's moving mark (while set, the server answers\n"
     "  every request of the account's keys outside /admin/... with 503\n"
     "  account_moving), as PUT /admin/accounts/NAME/moving does on a\n"
     "  running server.\n"},
};

void usage(FILE *out, const char *cmd) {
  size_t n = sizeof usage_text / sizeof *usage_text;
  for (size_t i = 0; cmd && i < n; i++) {
    if (strcmp(cmd, usage_text[i][0]) == 0) {
      fprintf(out, "usage: %s [--data DIR] %s", prog, usage_text[i][1]);
      return;
    }
  }
  fprintf(out,
          "usage: %s [--data DIR] COMMAND [OPTIONS]\n"
          "       %s --version\n"
          "\n"
          "Administers a contactd data directory (default ./data) while the\n"
          "server is stopped (backup asks a running one). --data may stand\n"
          "before or after the command; compact, dump, verify and stats\n"
          "refuse a directory that is not a store.\n\ncommands:\n",
          prog, prog);
  for (size_t i = 0; i < n; i++)
    fprintf(out, "  %s", usage_text[i][1]);
  fprintf(out,
          "\n%s COMMAND --help shows one command's usage.\n"
          "Exit status: 0 success, 1 problem found or operation failed, "
          "2 bad usage.\n",
          prog);
}

int bad_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int bad_usage(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  usage(stderr, cmd);
  return EXIT_USAGE;
}

/* An engine error, with the exit status it maps to. */
int fail(const char *what, int rc, const cs_error *err) {
  fprintf(stderr, "%s: %s: %s\n", prog, what,
          err && err->msg[0] ? err->msg : cs_strerror(rc));
  return EXIT_PROBLEM;
}

/* -------------------------------------------------------------- progress */

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void progress_begin(progress *p, const char *what, const char *unit) {
  p->on = isatty(STDERR_FILENO);
  p->what = what;
  p->unit = unit;
  p->start_ns = p->last_ns = now_ns();
}

/* A cs_progress_fn: at most five redraws a second. */
void progress_show(void *ctx, uint64_t done, uint64_t total) {
  progress *p = ctx;
  if (!p->on) return;
  uint64_t t = now_ns();
  if (t - p->last_ns < 200000000u && done < total) return;
  p->last_ns = t;
  double secs = (double)(t - p->start_ns) / 1e9;
  double rate = secs > 0 ? (double)done / secs : 0;
  if (total) {
    double left =
        rate > 0 ? (double)(total - (done < total ? done : total)) / rate : 0;
    fprintf(stderr,
            "\r%s: %5.1f%% %" PRIu64 "/%" PRIu64 " %s, %.0f/s, %.0f s "
            "left   ",
            p->what, 100.0 * (double)done / (double)total, done, total, p->unit,
            rate, left);
  } else {
    fprintf(stderr, "\r%s: %" PRIu64 " %s, %.0f/s   ", p->what, done, p->unit,
            rate);
  }
}

void progress_end(progress *p) {
  if (p->on) fputs("\r\033[K", stderr);
}

/* Notices of the store's open (a torn tail cut, a snapshot ignored). */
void notice_print(void *ctx, const char *line) {
  fprintf(stderr, "%s: note: %s\n", prog, line);
}

static void human_bytes(uint64_t n, char out[32]) {
  const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  int u = 0;
  while (v >= 1024 && u < 4)
    v /= 1024, u++;
  if (u == 0)
    snprintf(out, 32, "%" PRIu64 " B", n);
  else
    snprintf(out, 32, "%.1f %s", v, unit[u]);
}

/* ----------------------------------------------------------------- stores */

/* Opens the store for a command that only reads (dump, stats): no search
 * indexes, no snapshot at close. */
int store_open_ro(const char *dir, cs_store **s, cs_error *err) {
  struct stat st;
  if (stat(dir, &st) < 0) {
    snprintf(err->msg, sizeof err->msg, "%s: %s", dir, strerror(errno));
    return -errno;
  }
  cs_options o = {
      .no_snapshot_on_close = true, .no_indexes = true, .notice = notice_print};
  return cs_open(dir, &o, s, err);
}

bool dir_empty(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return false;
  struct dirent *e;
  bool empty = true;
  while (empty && (e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
  closedir(d);
  return empty;
}

/* The account's number, or an exit status (2 when it does not exist). */
int account_lookup(const char *dir, const char *name, uint32_t *id) {
  cs_keyring *k = NULL;
  cs_error err = {0};
  int rc = cs_keys_open(dir, &k, &err);
  if (rc) return fail("cannot read the key file", rc, &err);
  rc = cs_keys_account_id(k, name, id);
  cs_keys_close(k);
  if (rc) {
    fprintf(stderr,
            "%s: no account named \"%s\"; accounts exist through their keys: "
            "contactctl keys add --account %s\n",
            prog, name, name);
    return EXIT_USAGE;
  }
  return EXIT_OK;
}

/* ----------------------------------------------------------------- stats */

static int cmd_stats(const char *dir, int argc, char **argv) {
  if (argc > 1)
    return strcmp(argv[1], "--help") == 0
               ? (usage(stdout, "stats"), EXIT_OK)
               : bad_usage("stats", "unexpected %s", argv[1]);
  cs_store *s = NULL;
  cs_keyring *k = NULL;
  cs_error err = {0};
  int ex = EXIT_OK;
  int rc = store_open_ro(dir, &s, &err);
  if (rc) {
    ex = fail("cannot open the store", rc, &err);
    goto out;
  }
  rc = cs_keys_open(dir, &k, &err);
  if (rc) {
    ex = fail("cannot read the key file", rc, &err);
    goto out;
  }
  cs_stats st;
  cs_stats_get(s, &st);
  char b1[32], b2[32], b3[32];
  human_bytes(st.disk_bytes, b1);
  human_bytes(st.live_bytes, b2);
  human_bytes(st.garbage_bytes, b3);
  uint64_t log = st.live_bytes + st.garbage_bytes;
  printf("data directory    %s\n", dir);
  printf("shard             %" PRIu32 " (ids from %020" PRIu64 ")\n", st.shard,
         cs_shard_floor(st.shard) + 1);
  printf("contacts          %" PRIu64 "\n", st.contacts);
  printf("segments          %" PRIu64 "\n", st.segments);
  printf("disk bytes        %" PRIu64 " (%s)\n", st.disk_bytes, b1);
  printf("live bytes        %" PRIu64 " (%s)\n", st.live_bytes, b2);
  printf("garbage bytes     %" PRIu64 " (%s, %.1f%% of the log)\n",
         st.garbage_bytes, b3,
         log ? 100.0 * (double)st.garbage_bytes / (double)log : 0.0);
  /* stats opens the store without its indexes (faster, smaller): their
   * memory is not known here; the server's /metrics has it. */
  printf("index memory      not loaded (stats reads the log and the snapshot "
         "without building the indexes; see the server's /metrics)\n");
  printf("next id           %020" PRIu64 "\n", st.next_id);
  printf("highest id given  %020" PRIu64 "\n", st.next_id - 1);
  if (st.snapshot_time_ms) {
    char when[32];
    cs_time_format(st.snapshot_time_ms, when);
    int64_t age = (int64_t)time(NULL) - st.snapshot_time_ms / 1000;
    printf("snapshot          seq %" PRIu64 ", written %s (%" PRId64
           " s ago)\n",
           st.snapshot_seq, when, age < 0 ? 0 : age);
  } else {
    printf("snapshot          none\n");
  }
  printf("accounts\n");
  printf("  %-24s %10s %12s\n", "name", "number", "contacts");
  uint64_t named = 0;
  char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
  size_t n = cs_keys_account_list(k, NULL, 0);
  uint32_t *ids = calloc(n ? n : 1, sizeof *ids);
  n = ids ? cs_keys_account_list(k, ids, n) : 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t a = ids[i];
    if (cs_keys_account_name(k, a, name) != 0) continue;
    uint64_t c = cs_account_count(s, a);
    named += c;
    printf("  %-24s %10u %12" PRIu64 "\n", name, a, c);
  }
  free(ids);
  if (named < st.contacts)
    printf("  %-24s %10s %12" PRIu64 "\n", "(no key names them)", "-",
           st.contacts - named);
out:
  cs_keys_close(k);
  if (s && cs_close(s, &err) && ex == EXIT_OK)
    ex = fail("closing the store failed", err.code, &err);
  return ex;
}

/* ------------------------------------------------------------------ keys */

static int cmd_keys(const char *dir, int argc, char **argv) {
  if (argc < 2)
    return bad_usage("keys", "keys needs add, list, revoke or moving");
  const char *sub = argv[1];
  if (strcmp(sub, "--help") == 0) return usage(stdout, "keys"), EXIT_OK;
  const char *account = NULL;
  const char *key_id = NULL;
  bool read_only = false, admin = false, moving = false;
  static const struct option opts[] = {{"account", required_argument, 0, 'a'},
                                       {"read-only", no_argument, 0, 'r'},
                                       {"admin", no_argument, 0, 'A'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  optind = 1;
  int c;
  while ((c = getopt_long(argc - 1, argv + 1, "+", opts, NULL)) != -1) {
    switch (c) {
    case 'a':
      account = optarg;
      break;
    case 'r':
      read_only = true;
      break;
    case 'A':
      admin = true;
      break;
    case 'h':
      return usage(stdout, "keys"), EXIT_OK;
    default:
      return bad_usage("keys", "bad option");
    }
  }
  int rest = argc - 1 - optind;
  char **args = argv + 1 + optind;
  if (strcmp(sub, "add") == 0) {
    if (!account) return bad_usage("keys", "keys add needs --account NAME");
    if (rest) return bad_usage("keys", "unexpected %s", args[0]);
    if (read_only && admin)
      return bad_usage("keys", "--read-only and --admin exclude each other");
  } else if (strcmp(sub, "list") == 0) {
    if (account || read_only || admin || rest)
      return bad_usage("keys", "keys list takes no arguments");
  } else if (strcmp(sub, "revoke") == 0) {
    if (rest != 1 || account || read_only || admin)
      return bad_usage("keys", "keys revoke needs one KEY_ID");
    key_id = args[0];
  } else if (strcmp(sub, "moving") == 0) {
    if (!account || read_only || admin || rest != 1 ||
        (strcmp(args[0], "on") != 0 && strcmp(args[0], "off") != 0))
      return bad_usage("keys",
                       "keys moving needs --account NAME and on or off");
    moving = strcmp(args[0], "on") == 0;
  } else {
    return bad_usage("keys", "unknown keys command %s", sub);
  }

  cs_dirlock *lock = NULL;
  cs_keyring *k = NULL;
  cs_error err = {0};
  int ex = EXIT_OK;
  /* A first key may be made before the server ever ran. */
  if (strcmp(sub, "add") == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "%s: cannot create %s: %s\n", prog, dir, strerror(errno));
    return EXIT_PROBLEM;
  }
  int rc = cs_dir_lock(dir, &lock, &err);
  if (rc) {
    ex = fail("cannot lock the data directory", rc, &err);
    goto out;
  }
  rc = cs_keys_open(dir, &k, &err);
  if (rc) {
    ex = fail("cannot read the key file", rc, &err);
    goto out;
  }
  if (strcmp(sub, "add") == 0) {
    char key[CS_KEY_BYTES + 1];
    cs_key_info info;
    cs_role role = admin       ? CS_ROLE_ADMIN
                   : read_only ? CS_ROLE_READ_ONLY
                               : CS_ROLE_READ_WRITE;
    rc = cs_keys_add(k, account, role, key, &info, &err);
    if (rc == CS_EACCOUNT) {
      ex = bad_usage("keys", "%s", err.msg);
      goto out;
    }
    if (rc) {
      ex = fail("cannot add the key", rc, &err);
      goto out;
    }
    printf("key      %s\nkey_id   %s\naccount  %s\nrole     %s\n", key,
           info.key_id, info.account, cs_role_name(info.role));
    fprintf(stderr,
            "%s: the key is shown this once; only its hash is kept "
            "in %s\n",
            prog, cs_keys_path(k));
  } else if (strcmp(sub, "list") == 0) {
    printf("%-12s %-24s %-10s %-25s %-8s %s\n", "key_id", "account", "role",
           "created", "revoked", "moving");
    cs_key_info ki;
    for (size_t i = 0; cs_keys_get(k, i, &ki) == 0; i++) {
      char when[32];
      cs_time_format(ki.created_ms, when);
      printf("%-12s %-24s %-10s %-25s %-8s %s\n", ki.key_id, ki.account,
             cs_role_name(ki.role), when, ki.revoked ? "yes" : "no",
             cs_keys_moving(k, ki.account_id) ? "yes" : "no");
    }
  } else if (strcmp(sub, "moving") == 0) {
    rc = cs_keys_set_moving(k, account, moving, &err);
    if (rc == CS_EACCOUNT) {
      ex = bad_usage("keys", "no account named %s", account);
      goto out;
    }
    if (rc) {
      ex = fail("cannot change the moving mark", rc, &err);
      goto out;
    }
    printf("account %s %s\n", account,
           moving ? "marked moving" : "not marked moving");
  } else {
    rc = cs_keys_revoke(k, key_id, &err);
    if (rc) {
      ex = fail("cannot revoke", rc, &err);
      goto out;
    }
    printf("revoked %s\n", key_id);
  }
out:
  cs_keys_close(k);
  cs_dir_unlock(lock);
  return ex;
}

/* ----------------------------------------------------------------- verify */

void finding_print(void *ctx, const cs_finding *f) {
  progress *p = ctx;
  if (p) progress_end(p);
  const char *kind = f->problem ? "problem" : "note";
  if (f->file[0] && f->offset >= 0)
    fprintf(stderr, "%s: %s at offset %" PRId64 ": %s\n", kind, f->file,
            f->offset, f->msg);
  else if (f->file[0])
    fprintf(stderr, "%s: %s: %s\n", kind, f->file, f->msg);
  else
    fprintf(stderr, "%s: %s\n", kind, f->msg);
}

static int cmd_verify(const char *dir, int argc, char **argv) {
  if (argc > 1)
    return strcmp(argv[1], "--help") == 0
               ? (usage(stdout, "verify"), EXIT_OK)
               : bad_usage("verify", "unexpected %s", argv[1]);
  progress pg;
  progress_begin(&pg, "verify", "bytes");
  cs_verify_opts o = {.progress = progress_show, .progress_ctx = &pg};
  cs_verify_result res;
  cs_error err = {0};
  int rc = cs_admin_verify(dir, &o, finding_print, &pg, &res, &err);
  progress_end(&pg);
  if (rc) return fail("cannot verify", rc, &err);
  printf("%s: %" PRIu64 " segments, %" PRIu64 " records, %" PRIu64
         " contacts, %" PRIu64 " searches compared: %" PRIu64
         " problems, %" PRIu64 " notes\n",
         dir, res.segments, res.records, res.contacts, res.searches,
         res.problems, res.notes);
  return res.problems ? EXIT_PROBLEM : EXIT_OK;
}

/* ------------------------------------------------------------------- init */

static int cmd_init(const char *dir, int argc, char **argv) {
  uint64_t shard = 0;
  static const struct option opts[] = {{"shard", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      if (cs_decimal_parse(optarg, strlen(optarg), 0, CS_SHARD_MAX, &shard))
        return bad_usage("init",
                         "--shard %s: expected a shard number from 0 "
                         "to %u",
                         optarg, CS_SHARD_MAX);
      break;
    case 'h':
      return usage(stdout, "init"), EXIT_OK;
    default:
      return bad_usage("init", "bad option");
    }
  }
  if (optind < argc) return bad_usage("init", "unexpected %s", argv[optind]);
  struct stat st;
  if (stat(dir, &st) == 0 && !dir_empty(dir)) {
    fprintf(stderr,
            "%s: init: %s is not an empty directory (%s); nothing changed\n",
            prog, dir,
            cs_dir_is_store(dir) ? "it holds a store" : "it holds files");
    return EXIT_USAGE;
  }
  cs_options o = {.shard = (uint32_t)shard,
                  .shard_set = true,
                  .no_snapshot_on_close = true};
  cs_store *s = NULL;
  cs_error err = {0};
  int rc = cs_open(dir, &o, &s, &err);
  if (!rc) rc = cs_close(s, &err);
  if (rc) return fail("cannot make the store", rc, &err);
  printf("%s: a store of shard %" PRIu64 ", its first id %020" PRIu64 "\n", dir,
         shard, cs_shard_floor((uint32_t)shard) + 1);
  return EXIT_OK;
}

/* ---------------------------------------------------------------- compact */

static int cmd_compact(const char *dir, int argc, char **argv) {
  bool salvage = false;
  uint64_t trash_days = CS_TRASH_DAYS_DEFAULT;
  uint64_t changes_days = CS_CHANGES_DAYS_DEFAULT;
  static const struct option opts[] = {
      {"salvage", no_argument, 0, 's'},
      {"trash-days", required_argument, 0, 't'},
      {"changes-days", required_argument, 0, 'c'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      salvage = true;
      break;
    case 't':
      if (cs_decimal_parse(optarg, strlen(optarg), 1, CS_TRASH_DAYS_MAX,
                           &trash_days))
        return bad_usage("compact", "--trash-days %s: expected 1 to %d days",
                         optarg, CS_TRASH_DAYS_MAX);
      break;
    case 'c':
      if (cs_decimal_parse(optarg, strlen(optarg), 1, CS_CHANGES_DAYS_MAX,
                           &changes_days))
        return bad_usage("compact", "--changes-days %s: expected 1 to %d days",
                         optarg, CS_CHANGES_DAYS_MAX);
      break;
    case 'h':
      return usage(stdout, "compact"), EXIT_OK;
    default:
      return bad_usage("compact", "bad option");
    }
  }
  if (optind < argc) return bad_usage("compact", "unexpected %s", argv[optind]);
  struct stat st;
  if (stat(dir, &st) < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
    return EXIT_PROBLEM;
  }
  progress pg;
  progress_begin(&pg, "compact", "contacts");
  cs_compact_opts o = {.salvage = salvage,
                       .trash_ms = (int64_t)trash_days * CS_DAY_MS,
                       .changes_ms = (int64_t)changes_days * CS_DAY_MS,
                       .progress = progress_show,
                       .progress_ctx = &pg};
  cs_compact_result res;
  cs_error err = {0};
  int rc = cs_admin_compact(dir, &o, finding_print, &pg, &res, &err);
  progress_end(&pg);
  if (rc) return fail("compaction failed", rc, &err);
  char before[32], after[32];
  human_bytes(res.bytes_before, before);
  human_bytes(res.bytes_after, after);
  printf("compacted %s: %" PRIu64 " contacts, %" PRIu64
         " in the trash, %" PRIu64 " idempotency keys, %" PRIu64
         " changes kept; %u segments, %" PRIu64
         " bytes (%s) before; %u segments, %" PRIu64 " bytes (%s) after\n",
         dir, res.contacts, res.trashed, res.idem_keys, res.changes,
         res.segments_before, res.bytes_before, before, res.segments_after,
         res.bytes_after, after);
  if (salvage)
    printf("salvage skipped %" PRIu64 " damaged ranges, %" PRIu64
           " bytes (each reported above)\n",
           res.skipped_ranges, res.skipped_bytes);
  return EXIT_OK;
}

/* ------------------------------------------------------------------- main */

/* The commands, for dispatch and for "did you mean". */
typedef struct ctl_cmd {
  const char *name;
  int (*run)(const char *dir, int argc, char **argv);
  bool needs_store; /* refuses a directory that is not a store */
} ctl_cmd;

static const ctl_cmd commands[] = {
    {"compact", cmd_compact, true},  {"dump", cmd_dump, true},
    {"load", cmd_load, false},       {"verify", cmd_verify, true},
    {"stats", cmd_stats, true},      {"keys", cmd_keys, false},
    {"backup", cmd_backup, false},   {"restore", cmd_restore, false},
    {"promote", cmd_promote, false}, {"fence", cmd_fence, false},
    {"init", cmd_init, false},
};

/* Edit distance of two short words (insertions, deletions, substitutions),
 * for suggesting a command; words past 31 bytes count as far apart. */
static size_t word_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 31 || m > 31) return SIZE_MAX;
  size_t row[32];
  for (size_t j = 0; j <= m; j++)
    row[j] = j;
  for (size_t i = 1; i <= n; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= m; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[m];
}

static int unknown_command(const char *cmd) {
  const char *near = NULL;
  size_t best = 3; /* suggest at most two edits away */
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    size_t d = word_distance(cmd, commands[i].name);
    if (d < best) best = d, near = commands[i].name;
  }
  if (near)
    return bad_usage(NULL, "unknown command %s; did you mean %s?", cmd, near);
  return bad_usage(NULL, "unknown command %s", cmd);
}

/* The global options (--data DIR, --data=DIR) may stand anywhere: they are
 * taken out of argv here, which keeps the rest in order. Returns 0, or an
 * exit status for a --data without its value. */
static int take_global_options(int *argc, char **argv, const char **dir) {
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    if (strcmp(argv[i], "--data") == 0) {
      if (i + 1 == *argc) return bad_usage(NULL, "--data needs a directory");
      *dir = argv[++i];
    } else if (strncmp(argv[i], "--data=", 7) == 0) {
      *dir = argv[i] + 7;
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  argv[out] = NULL;
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = "./data";
  int rc = take_global_options(&argc, argv, &dir);
  if (rc) return rc;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, NULL);
      return EXIT_OK;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("%s %s\n", prog, CONTACTD_VERSION);
      return EXIT_OK;
    }
    return bad_usage(NULL, "unknown option %s", argv[i]);
  }
  if (i == argc) return bad_usage(NULL, "no command given");
  const char *cmd = argv[i];
  int cargc = argc - i;
  char **cargv = argv + i;
  if (strcmp(cmd, "help") == 0) {
    usage(stdout, i + 1 < argc ? argv[i + 1] : NULL);
    return EXIT_OK;
  }
  for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
    if (strcmp(cmd, commands[c].name) != 0) continue;
    bool help = cargc > 1 && (strcmp(cargv[1], "--help") == 0 ||
                              strcmp(cargv[1], "-h") == 0);
    if (commands[c].needs_store && !help && !cs_dir_is_store(dir)) {
      fprintf(stderr,
              "%s: %s is not a contactd data directory (no MANIFEST); "
              "give the server's --data\n",
              prog, dir);
      return EXIT_USAGE;
    }
    return commands[c].run(dir, cargc, cargv);
  }
  return unknown_command(cmd);
}
