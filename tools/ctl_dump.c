/*
 * ctl_dump.c: contactctl dump, every contact of one account or of the
 * whole store with its identity, so that load brings it back as it was:
 * each line carries the account's name, the id, the version, both times
 * and, for a contact in the trash, deleted_at (the export line of the
 * codec, ct_gen_export_line, the same the admin API's account export
 * writes). Each account's live contacts come in id order, then its trash,
 * as cs_export gives them, as of one moment (the store is locked).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csv.h>
#include <yajl/yajl_gen.h>

#include "admin.h"
#include "cs.h"
#include "ct_codec.h"
#include "ctl.h"

typedef struct dumper {
  FILE *out;
  bool csv;
  yajl_gen g;
  const char *account; /* the name of the account being dumped */
  uint64_t count;
  uint64_t total;
  progress *prog;
} dumper;

/* One CSV field: quoted only when it must be (RFC 4180). */
static void csv_field(FILE *out, const char *s, size_t len) {
  if (len &&
      (memchr(s, ',', len) || memchr(s, '"', len) || memchr(s, '\n', len) ||
       memchr(s, '\r', len) || s[0] == ' ' || s[len - 1] == ' '))
    csv_fwrite(out, s, len);
  else
    fwrite(s, 1, len, out);
}

/* The header row: the columns of ctl.h's CSV dump. */
static void csv_header_write(FILE *out) {
  fprintf(out, "%s,%s", CTL_CSV_ACCOUNT, cs_server_field_name(CS_SERVER_ID));
  for (int f = 0; f < CS_FIELD_COUNT; f++)
    fprintf(out, ",%s", cs_field_name(f));
  fprintf(out, ",%s,%s,%s,%s\r\n", cs_server_field_name(CS_SERVER_CREATED_AT),
          cs_server_field_name(CS_SERVER_UPDATED_AT),
          cs_server_field_name(CS_SERVER_VERSION), CTL_CSV_DELETED_AT);
}

static void csv_row_write(FILE *out, const char *account, const cs_contact *c) {
  char id[CS_ID_DIGITS + 1], when[32];
  cs_id_format(c->id, id);
  fprintf(out, "%s,%s", account, id);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    fputc(',', out);
    if (c->field[f].ptr) csv_field(out, c->field[f].ptr, c->field[f].len);
  }
  cs_time_format(c->created_ms, when);
  fprintf(out, ",%s,", when);
  cs_time_format(c->updated_ms, when);
  fprintf(out, "%s,%" PRIu64 ",", when, c->version);
  if (c->deleted_ms) {
    cs_time_format(c->deleted_ms, when);
    fputs(when, out);
  }
  fputs("\r\n", out);
}

static int dump_one(void *ctx, const cs_contact *c) {
  dumper *d = ctx;
  if (d->csv) {
    csv_row_write(d->out, d->account, c);
  } else {
    const unsigned char *buf;
    size_t len;
    ct_gen_export_line(d->g, d->account, c);
    yajl_gen_get_buf(d->g, &buf, &len);
    fwrite(buf, 1, len, d->out);
    fputc('\n', d->out);
    yajl_gen_clear(d->g);
    yajl_gen_reset(d->g, NULL);
  }
  if ((++d->count & 0x3fff) == 0) progress_show(d->prog, d->count, d->total);
  return ferror(d->out) ? -EIO : 0;
}

static int dump_raw_one(void *ctx, const cs_raw_record *r) {
  uint64_t *bad = ctx;
  static const char *const types[] = {"?", "put", "delete", "meta"};
  static const char *const status[] = {"ok", "BAD", "torn", "undecodable"};
  printf("%08u\t%" PRIu64 "\t%s\t", r->seg, r->offset,
         r->status == CS_RAW_OK || r->status == CS_RAW_UNDECODABLE
             ? types[r->type <= 3 ? r->type : 0]
             : "-");
  if (r->status == CS_RAW_OK || r->status == CS_RAW_UNDECODABLE)
    printf("%" PRIu64 "\t%" PRIu64 "\t%016" PRIx64 " %s\t", r->seq, r->len,
           r->checksum, status[r->status]);
  else
    printf("-\t%" PRIu64 "\t%s\t", r->len, status[r->status]);
  if (r->status == CS_RAW_OK && r->type != 3)
    printf("%020" PRIu64 "\t%u\n", r->id, r->account);
  else if (r->status == CS_RAW_OK)
    printf("next_id=%020" PRIu64 "\t-\n", r->next_id);
  else
    printf("-\t-\n");
  if (r->status == CS_RAW_BAD || r->status == CS_RAW_UNDECODABLE) (*bad)++;
  return ferror(stdout) ? -EIO : 0;
}

static int dump_raw(const char *dir) {
  cs_error err = {0};
  uint64_t bad = 0;
  printf("segment\toffset\ttype\tseq\tlength\tchecksum\tid\taccount\n");
  int rc = cs_admin_scan(dir, dump_raw_one, &bad, &err);
  if (rc) return fail("cannot scan the store", rc, &err);
  if (bad) fprintf(stderr, "%s: %" PRIu64 " damaged ranges\n", prog, bad);
  return bad ? EXIT_PROBLEM : EXIT_OK;
}

/* Contacts of account in its trash (inside the window). */
static uint64_t trash_count(cs_store *s, uint32_t account) {
  cs_page page;
  uint64_t next;
  if (cs_trash_list(s, account, 0, 1, &page, &next, NULL) != 0) return 0;
  uint64_t n = page.total;
  cs_page_free(&page);
  return n;
}

/* Dumps account number acct (named name) through d. */
static int dump_account(cs_store *s, dumper *d, uint32_t acct, const char *name,
                        cs_error *err) {
  d->account = name;
  return cs_export(s, acct, dump_one, d, err);
}

/* Every account holding contacts, in number order: those the key file
 * names (live contacts, then the trash), and any number no key or account
 * line names (a key file lost or edited) that holds live contacts, dumped
 * as "unnamed-N" with a warning, so that its contacts are kept, not
 * dropped (its trash with them). */
static int dump_all(cs_store *s, cs_keyring *k, dumper *d, cs_error *err) {
  size_t n = cs_keys_account_list(k, NULL, 0);
  uint32_t *named = calloc(n ? n : 1, sizeof *named);
  if (!named) {
    snprintf(err->msg, sizeof err->msg, "out of memory");
    return err->code = -ENOMEM;
  }
  n = cs_keys_account_list(k, named, n);
  int rc = 0;
  size_t next = 0; /* the first named account not passed yet */
  for (uint32_t a = 0; a <= CS_ACCOUNTS_MAX && !rc; a++) {
    bool is_named = next < n && named[next] == a;
    if (is_named) next++;
    char name[CS_ACCOUNT_NAME_MAX_BYTES + 1];
    if (is_named) {
      if (cs_keys_account_name(k, a, name) != 0) continue;
      if (!cs_account_count(s, a) && !trash_count(s, a)) continue;
    } else {
      if (!cs_account_count(s, a)) continue;
      snprintf(name, sizeof name, "unnamed-%u", a);
      progress_end(d->prog);
      fprintf(stderr,
              "%s: warning: account number %u has no name in the key "
              "file; its contacts are written as account \"%s\"\n",
              prog, a, name);
    }
    rc = dump_account(s, d, a, name, err);
  }
  free(named);
  return rc;
}

int cmd_dump(const char *dir, int argc, char **argv) {
  const char *format = "jsonl", *account = NULL, *output = NULL;
  bool raw = false;
  static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                       {"account", required_argument, 0, 'a'},
                                       {"output", required_argument, 0, 'o'},
                                       {"raw", no_argument, 0, 'r'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      format = optarg;
      break;
    case 'a':
      account = optarg;
      break;
    case 'o':
      output = optarg;
      break;
    case 'r':
      raw = true;
      break;
    case 'h':
      return usage(stdout, "dump"), EXIT_OK;
    default:
      return bad_usage("dump", "bad option");
    }
  }
  if (optind < argc) return bad_usage("dump", "unexpected %s", argv[optind]);
  bool csv = strcmp(format, "csv") == 0;
  if (!csv && strcmp(format, "jsonl") != 0)
    return bad_usage("dump", "--format is jsonl or csv, not %s", format);
  if (raw && (account || output || csv))
    return bad_usage("dump", "--raw takes no other option");
  if (raw) return dump_raw(dir);

  cs_error err = {0};
  cs_store *s = NULL;
  cs_keyring *k = NULL;
  FILE *out = NULL;
  dumper d = {.csv = csv};
  progress pg;
  int ex = EXIT_OK;
  uint32_t acct = CS_ALL_ACCOUNTS;
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
  if (account && cs_keys_account_id(k, account, &acct) != 0) {
    fprintf(stderr, "%s: no account named \"%s\"\n", prog, account);
    ex = EXIT_USAGE;
    goto out;
  }
  out = output ? fopen(output, "w") : stdout;
  if (!out) {
    fprintf(stderr, "%s: cannot create %s: %s\n", prog, output,
            strerror(errno));
    ex = EXIT_PROBLEM;
    goto out;
  }
  static char obuf[1 << 20];
  setvbuf(out, obuf, _IOFBF, sizeof obuf);
  d.out = out;
  d.g = csv ? NULL : ct_gen_new();
  if (!csv && !d.g) {
    ex = fail("out of memory", -ENOMEM, NULL);
    goto out;
  }
  cs_stats st;
  cs_stats_get(s, &st);
  d.total = acct == CS_ALL_ACCOUNTS
                ? st.contacts + st.trash_contacts
                : cs_account_count(s, acct) + trash_count(s, acct);
  progress_begin(&pg, "dump", "contacts");
  d.prog = &pg;
  if (csv) csv_header_write(out);
  rc = acct == CS_ALL_ACCOUNTS ? dump_all(s, k, &d, &err)
                               : dump_account(s, &d, acct, account, &err);
  progress_end(&pg);
  if (rc == -EIO || fflush(out) != 0 || ferror(out)) {
    fprintf(stderr, "%s: writing %s failed: %s\n", prog,
            output ? output : "standard output", strerror(errno));
    ex = EXIT_PROBLEM;
  } else if (rc) {
    ex = fail("dump stopped", rc, &err);
  }
out:
  if (d.g) yajl_gen_free(d.g);
  if (out && out != stdout && fclose(out) != 0 && ex == EXIT_OK) {
    fprintf(stderr, "%s: writing %s failed: %s\n", prog, output,
            strerror(errno));
    ex = EXIT_PROBLEM;
  }
  cs_keys_close(k);
  if (s) cs_close(s, &err);
  return ex;
}
