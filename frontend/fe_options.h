/*
 * fe_options.h: contactd's command line.
 *
 * Parsing is pure (no I/O, no exit) so that it can be unit tested: it fills
 * an fe_options from argv and reports the first problem as one line naming
 * the option. main() turns a failure into exit status 2.
 */
#ifndef FE_OPTIONS_H
#define FE_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cs.h"
#include "fe_limits.h"
#include "fe_log.h"

typedef struct fe_listen_addr {
  const char *text; /* as given, "127.0.0.1:8080" */
  char host[256];   /* "127.0.0.1", "::1", "" for any */
  unsigned port;    /* 0: any free port */
} fe_listen_addr;

typedef struct fe_options {
  fe_listen_addr listen[FE_LISTEN_MAX];
  size_t listen_count;
  const char *data_dir;
  unsigned threads; /* 0: one per core */
  const char *tls_cert;
  const char *tls_key;
  cs_durability durability;
  uint32_t segment_bytes;        /* 0: the engine's default */
  uint64_t snapshot_every_bytes; /* 0: the engine's default */
  unsigned trash_days; /* 1..CS_TRASH_DAYS_MAX; 0: CS_TRASH_DAYS_DEFAULT */
  /* 1..CS_CHANGES_DAYS_MAX; 0: CS_CHANGES_DAYS_DEFAULT */
  unsigned changes_days;
  uint32_t shard; /* --shard, when shard_set */
  bool shard_set;
  /* Options taken on the plugins' behalf (fe_options_plugin_value), each
   * checked here and kept as given. */
  const char *webhook_allow[FE_WEBHOOK_ALLOW_MAX]; /* HOST[:PORT] */
  size_t webhook_allow_count;
  const char *webhook_retry_seconds; /* NULL: not given */
  /* --follow URL and --follow-key-file FILE: a standby of the primary at
   * URL (the admin plugin follows it, with the admin key in FILE); the
   * store opens as a standby (cs_options.standby). */
  const char *follow;
  const char *follow_key_file;
  /* --standby-ack required|async (cs_standby_ack) and --standby-timeout
   * MS (0: the engine's default). */
  int standby_ack;
  uint32_t standby_timeout_ms;
  const char *plugins_dir;
  const char *access_log;             /* NULL: none; "-": stdout */
  fe_access_format access_log_format; /* --access-log-format default|json */
  /* --shutdown-timeout: FE_SHUTDOWN_TIMEOUT_S_MIN..MAX */
  unsigned shutdown_timeout_s;
  bool help;
  bool version;
  /* Options given so far (their names, "--data", once each), so that the
   * environment never overrides the command line. */
  const char *given[FE_OPTION_NAMES_MAX];
  size_t given_len[FE_OPTION_NAMES_MAX];
  size_t given_count;
  /* fe_options_load: the "--option=value" arguments made from CONTACTD_*
   * variables (values point into env_bytes), and the variables that name
   * no option (ignored; main warns, pointing into the environment). */
  char env_bytes[FE_ENV_BYTES_MAX];
  size_t env_used;
  const char *env_ignored[FE_ENV_ARGS_MAX];
  size_t env_ignored_count;
} fe_options;

/* Defaults before parsing: listen 127.0.0.1:8080, data ./data, durability
 * fsync, plugins in default_plugins_dir. */
void fe_options_init(fe_options *o, const char *default_plugins_dir);

/*
 * Parses argv[1..argc-1] ("--opt value" or "--opt=value"). Strings in *o
 * point into argv. Returns 0, or -1 with one line in err naming the option
 * at fault (an unknown option, a missing or bad value, --tls-cert without
 * --tls-key). The first --listen replaces the default address.
 */
int fe_options_parse(fe_options *o, int argc, char **argv, char *err,
                     size_t errlen);

/*
 * fe_options_parse, then the environment: every option not on the command
 * line may come from CONTACTD_<OPTION> (upper case, dashes as underscores:
 * --changes-days from CONTACTD_CHANGES_DAYS), a repeatable option's
 * values as a comma-separated list; an empty variable counts as unset; a
 * CONTACTD_ variable that names no option, or names --help or --version,
 * is ignored and listed in env_ignored. Without --data and CONTACTD_DATA, the
 * data directory is $STATE_DIRECTORY (its first path) when set. envp is
 * NULL-terminated
 * ("NAME=value"; main passes environ). 0, or -1 with one line in err
 * naming the option, or the variable when the value came from one.
 */
int fe_options_load(fe_options *o, int argc, char **argv, char *const *envp,
                    char *err, size_t errlen);

/* Splits "host:port", "[v6]:port" or ":port" into *out. 0 or -1 with err. */
int fe_listen_parse(const char *text, fe_listen_addr *out, char *err,
                    size_t errlen);

/*
 * Checks "HOST[:PORT]" as --webhook-allow takes it: HOST a host name
 * (letters, digits and '-' in dot-separated labels of 1 to
 * FE_HOST_LABEL_MAX_BYTES, no label starting or ending with '-', at most
 * FE_HOST_NAME_MAX_BYTES, the last label not all digits), an IPv4 address
 * in dotted decimal, or an IPv6 address in brackets; PORT 1 to 65535. 0, or
 * -1 with one line in err naming the option.
 */
int fe_hostport_check(const char *text, char *err, size_t errlen);

/* The i-th value (0, 1, ...) of the plugin option called name (without the
 * dashes: "webhook-allow", "webhook-retry-seconds"), or NULL past the last
 * one given or for a name that is no such option. Points into argv. */
const char *fe_options_plugin_value(const fe_options *o, const char *name,
                                    size_t i);

/* Writes the usage text (every option with its default) to buf; returns
 * what snprintf returns. */
int fe_options_usage(char *buf, size_t len, const char *default_plugins_dir);

#endif
