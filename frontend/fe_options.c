/*
 * fe_options.c: contactd's command line, parsed without side effects.
 *
 * Every option has a default, every value is checked here (numbers, the
 * durability word, address syntax) so that the server starts only with a
 * configuration that makes sense; what can only be checked by trying
 * (binding an address, reading a certificate) is main()'s job.
 */
#include "fe_options.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_hostname.h"

void fe_options_init(fe_options *o, const char *default_plugins_dir) {
  memset(o, 0, sizeof(*o));
  o->listen[0].text = "127.0.0.1:8080";
  snprintf(o->listen[0].host, sizeof(o->listen[0].host), "127.0.0.1");
  o->listen[0].port = 8080;
  o->listen_count = 1;
  o->data_dir = "./data";
  o->threads = 0;
  o->durability = CS_DURABILITY_FSYNC;
  o->plugins_dir = default_plugins_dir;
  o->shutdown_timeout_s = FE_SHUTDOWN_TIMEOUT_S_DEFAULT;
}

int fe_listen_parse(const char *text, fe_listen_addr *out, char *err,
                    size_t errlen) {
  const char *colon, *host = text, *port_text;
  size_t host_len;

  memset(out, 0, sizeof(*out));
  out->text = text;
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL || close[1] != ':') {
      snprintf(err, errlen, "--listen %s: expected [ADDRESS]:PORT", text);
      return -1;
    }
    host = text + 1;
    host_len = (size_t)(close - host);
    port_text = close + 2;
    if (host_len == 0) {
      snprintf(err, errlen, "--listen %s: empty address", text);
      return -1;
    }
  } else {
    colon = strrchr(text, ':');
    if (colon == NULL) {
      snprintf(err, errlen, "--listen %s: expected ADDRESS:PORT", text);
      return -1;
    }
    if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
      snprintf(err, errlen,
               "--listen %s: write an IPv6 address in brackets, [::1]:8080",
               text);
      return -1;
    }
    host_len = (size_t)(colon - text);
    port_text = colon + 1;
  }
  if (host_len >= sizeof(out->host)) {
    snprintf(err, errlen, "--listen %s: address too long", text);
    return -1;
  }
  memcpy(out->host, host, host_len);
  out->host[host_len] = '\0';

  char *end;
  errno = 0;
  unsigned long port = strtoul(port_text, &end, 10);
  if (port_text[0] < '0' || port_text[0] > '9' || *end != '\0' || errno != 0 ||
      port > FE_PORT_MAX) {
    snprintf(err, errlen, "--listen %s: bad port '%s' (0-65535)", text,
             port_text);
    return -1;
  }
  out->port = (unsigned)port;
  return 0;
}

int fe_hostport_check(const char *text, char *err, size_t errlen) {
  const char *host = text, *port = NULL;
  size_t host_len;
  char buf[FE_HOST_NAME_MAX_BYTES + 1];
  unsigned char addr[16];

  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
      snprintf(err, errlen,
               "--webhook-allow %s: expected [IPV6]:PORT or "
               "[IPV6]",
               text);
      return -1;
    }
    host = text + 1;
    host_len = (size_t)(close - host);
    if (close[1] == ':') port = close + 2;
    if (host_len == 0 || host_len >= sizeof(buf)) goto bad_host;
    memcpy(buf, host, host_len);
    buf[host_len] = '\0';
    if (inet_pton(AF_INET6, buf, addr) != 1) goto bad_host;
  } else {
    const char *colon = strchr(text, ':');
    host_len = colon != NULL ? (size_t)(colon - text) : strlen(text);
    if (colon != NULL) port = colon + 1;
    if (port != NULL && strchr(port, ':') != NULL) {
      snprintf(err, errlen,
               "--webhook-allow %s: write an IPv6 address in brackets, "
               "[::1]:8080",
               text);
      return -1;
    }
    if (host_len == 0 || host_len >= sizeof(buf)) goto bad_host;
    memcpy(buf, host, host_len);
    buf[host_len] = '\0';
    if (inet_pton(AF_INET, buf, addr) != 1 && !fe_host_name_ok(buf, host_len))
      goto bad_host;
  }
  if (port != NULL) {
    uint64_t n;
    if (cs_decimal_parse(port, strlen(port), 1, FE_PORT_MAX, &n) != 0) {
      snprintf(err, errlen, "--webhook-allow %s: bad port '%s' (1-%d)", text,
               port, FE_PORT_MAX);
      return -1;
    }
  }
  return 0;

bad_host:
  snprintf(err, errlen,
           "--webhook-allow %s: expected HOST[:PORT], HOST a host name, an "
           "IPv4 address or an [IPv6] address",
           text);
  return -1;
}

const char *fe_options_plugin_value(const fe_options *o, const char *name,
                                    size_t i) {
  if (strcmp(name, "webhook-allow") == 0)
    return i < o->webhook_allow_count ? o->webhook_allow[i] : NULL;
  if (strcmp(name, "webhook-retry-seconds") == 0)
    return i == 0 ? o->webhook_retry_seconds : NULL;
  if (strcmp(name, "follow") == 0) return i == 0 ? o->follow : NULL;
  if (strcmp(name, "follow-key-file") == 0)
    return i == 0 ? o->follow_key_file : NULL;
  return NULL;
}

/* The value of an option: "--name=value" or the next argument. */
static int option_value(int argc, char **argv, int *i, const char *arg,
                        const char *eq, const char **value, char *err,
                        size_t errlen) {
  if (eq != NULL) {
    *value = eq + 1;
  } else if (*i + 1 < argc) {
    *value = argv[++*i];
  } else {
    snprintf(err, errlen, "%s needs a value", arg);
    return -1;
  }
  if (**value == '\0') {
    snprintf(err, errlen, "%.*s: empty value",
             (int)(eq != NULL ? (size_t)(eq - arg) : strlen(arg)), arg);
    return -1;
  }
  return 0;
}

/* A count of unit ("bytes", "days") in decimal digits, min..max. 0, or -1
 * with err written. */
static int parse_count(const char *name, const char *value, uint64_t min,
                       uint64_t max, const char *unit, uint64_t *out, char *err,
                       size_t errlen) {
  uint64_t n;
  if (cs_decimal_parse(value, strlen(value), min, max, &n) != 0) {
    snprintf(err, errlen, "%s %s: expected a number of %s from %llu to %llu",
             name, value, unit, (unsigned long long)min,
             (unsigned long long)max);
    return -1;
  }
  *out = n;
  return 0;
}

/* A byte count in decimal digits, min..max. */
static int parse_bytes(const char *name, const char *value, uint64_t min,
                       uint64_t max, uint64_t *out, char *err, size_t errlen) {
  return parse_count(name, value, min, max, "bytes", out, err, errlen);
}

/* Whether an option called name (name_len bytes, "--data") was given. */
static bool option_given(const fe_options *o, const char *name,
                         size_t name_len) {
  for (size_t i = 0; i < o->given_count; i++)
    if (o->given_len[i] == name_len && memcmp(o->given[i], name, name_len) == 0)
      return true;
  return false;
}

static void option_record(fe_options *o, const char *name, size_t name_len) {
  if (option_given(o, name, name_len) || o->given_count == FE_OPTION_NAMES_MAX)
    return;
  o->given[o->given_count] = name;
  o->given_len[o->given_count++] = name_len;
}

/* The options in argv[1..argc-1], into *o. 0; -1 with err written; -2
 * for an unknown option (err written too). */
static int parse_args(fe_options *o, int argc, char **argv, char *err,
                      size_t errlen) {
  bool listen_given = false;

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *eq = strchr(arg, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    const char *value = NULL;

#define IS(name)                                                               \
  (name_len == sizeof(name) - 1 && memcmp(arg, name, name_len) == 0)
#define VALUE()                                                                \
  do {                                                                         \
    if (option_value(argc, argv, &i, arg, eq, &value, err, errlen) != 0)       \
      return -1;                                                               \
  } while (0)

    if (IS("--help") || IS("-h")) {
      o->help = true;
    } else if (IS("--version")) {
      o->version = true;
    } else if (IS("--listen")) {
      VALUE();
      if (!listen_given) o->listen_count = 0;
      listen_given = true;
      if (o->listen_count == FE_LISTEN_MAX) {
        snprintf(err, errlen, "--listen: at most %d addresses", FE_LISTEN_MAX);
        return -1;
      }
      if (fe_listen_parse(value, &o->listen[o->listen_count], err, errlen) != 0)
        return -1;
      o->listen_count++;
    } else if (IS("--data")) {
      VALUE();
      o->data_dir = value;
    } else if (IS("--threads")) {
      VALUE();
      char *end;
      errno = 0;
      unsigned long n = strtoul(value, &end, 10);
      if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0 ||
          n < 1 || n > FE_THREADS_MAX) {
        snprintf(err, errlen, "--threads %s: expected a number from 1 to %d",
                 value, FE_THREADS_MAX);
        return -1;
      }
      o->threads = (unsigned)n;
    } else if (IS("--tls-cert")) {
      VALUE();
      o->tls_cert = value;
    } else if (IS("--tls-key")) {
      VALUE();
      o->tls_key = value;
    } else if (IS("--durability")) {
      VALUE();
      if (strcmp(value, "fsync") == 0) {
        o->durability = CS_DURABILITY_FSYNC;
      } else if (strcmp(value, "none") == 0) {
        o->durability = CS_DURABILITY_NONE;
      } else {
        snprintf(err, errlen, "--durability %s: expected fsync or none", value);
        return -1;
      }
    } else if (IS("--segment-bytes")) {
      VALUE();
      uint64_t n;
      if (parse_bytes("--segment-bytes", value, CS_SEGMENT_BYTES_MIN,
                      CS_SEGMENT_BYTES_MAX, &n, err, errlen) != 0)
        return -1;
      o->segment_bytes = (uint32_t)n;
    } else if (IS("--snapshot-every-bytes")) {
      VALUE();
      if (parse_bytes("--snapshot-every-bytes", value,
                      CS_SNAPSHOT_EVERY_BYTES_MIN, CS_SNAPSHOT_EVERY_BYTES_MAX,
                      &o->snapshot_every_bytes, err, errlen) != 0)
        return -1;
    } else if (IS("--trash-days")) {
      VALUE();
      uint64_t n;
      if (parse_count("--trash-days", value, 1, CS_TRASH_DAYS_MAX, "days", &n,
                      err, errlen) != 0)
        return -1;
      o->trash_days = (unsigned)n;
    } else if (IS("--changes-days")) {
      VALUE();
      uint64_t n;
      if (parse_count("--changes-days", value, 1, CS_CHANGES_DAYS_MAX, "days",
                      &n, err, errlen) != 0)
        return -1;
      o->changes_days = (unsigned)n;
    } else if (IS("--shard")) {
      VALUE();
      uint64_t n;
      if (cs_decimal_parse(value, strlen(value), 0, CS_SHARD_MAX, &n) != 0) {
        snprintf(err, errlen,
                 "--shard %s: expected a shard number from 0 to %u", value,
                 CS_SHARD_MAX);
        return -1;
      }
      o->shard = (uint32_t)n;
      o->shard_set = true;
    } else if (IS("--webhook-allow")) {
      VALUE();
      if (o->webhook_allow_count == FE_WEBHOOK_ALLOW_MAX) {
        snprintf(err, errlen, "--webhook-allow: at most %d hosts",
                 FE_WEBHOOK_ALLOW_MAX);
        return -1;
      }
      if (fe_hostport_check(value, err, errlen) != 0) return -1;
      o->webhook_allow[o->webhook_allow_count++] = value;
    } else if (IS("--webhook-retry-seconds")) {
      VALUE();
      uint64_t n;
      if (parse_count(
              "--webhook-retry-seconds", value, FE_WEBHOOK_RETRY_SECONDS_MIN,
              FE_WEBHOOK_RETRY_SECONDS_MAX, "seconds", &n, err, errlen) != 0)
        return -1;
      o->webhook_retry_seconds = value;
    } else if (IS("--follow")) {
      VALUE();
      if (strncmp(value, "http://", 7) != 0 &&
          strncmp(value, "https://", 8) != 0) {
        snprintf(err, errlen,
                 "--follow %s: expected the primary's http:// or https:// URL",
                 value);
        return -1;
      }
      o->follow = value;
    } else if (IS("--follow-key-file")) {
      VALUE();
      o->follow_key_file = value;
    } else if (IS("--standby-ack")) {
      VALUE();
      if (strcmp(value, "required") == 0) {
        o->standby_ack = CS_STANDBY_ACK_REQUIRED;
      } else if (strcmp(value, "async") == 0) {
        o->standby_ack = CS_STANDBY_ACK_ASYNC;
      } else {
        snprintf(err, errlen, "--standby-ack %s: expected required or async",
                 value);
        return -1;
      }
    } else if (IS("--standby-timeout")) {
      VALUE();
      uint64_t n;
      if (parse_count("--standby-timeout", value, CS_STANDBY_TIMEOUT_MS_MIN,
                      CS_STANDBY_TIMEOUT_MS_MAX, "ms", &n, err, errlen) != 0)
        return -1;
      o->standby_timeout_ms = (uint32_t)n;
    } else if (IS("--plugins")) {
      VALUE();
      o->plugins_dir = value;
    } else if (IS("--access-log")) {
      VALUE();
      o->access_log = value;
    } else if (IS("--shutdown-timeout")) {
      VALUE();
      uint64_t n;
      if (parse_count("--shutdown-timeout", value, FE_SHUTDOWN_TIMEOUT_S_MIN,
                      FE_SHUTDOWN_TIMEOUT_S_MAX, "seconds", &n, err,
                      errlen) != 0)
        return -1;
      o->shutdown_timeout_s = (unsigned)n;
    } else if (IS("--access-log-format")) {
      VALUE();
      if (fe_access_format_parse(value, &o->access_log_format) != 0) {
        snprintf(err, errlen,
                 "--access-log-format %s: expected default or json", value);
        return -1;
      }
    } else if (arg[0] == '-') {
      snprintf(err, errlen, "unknown option %.*s", (int)name_len, arg);
      return -2;
    } else {
      snprintf(err, errlen, "unexpected argument '%s'", arg);
      return -1;
    }
    if (eq != NULL && value == NULL) {
      snprintf(err, errlen, "%.*s takes no value", (int)name_len, arg);
      return -1;
    }
    option_record(o, arg, name_len);
#undef IS
#undef VALUE
  }
  return 0;
}

/* What holds whatever order the options came in. */
static int options_check(const fe_options *o, char *err, size_t errlen) {
  if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
    snprintf(err, errlen, "%s given without %s",
             o->tls_cert != NULL ? "--tls-cert" : "--tls-key",
             o->tls_cert != NULL ? "--tls-key" : "--tls-cert");
    return -1;
  }
  if ((o->follow == NULL) != (o->follow_key_file == NULL)) {
    snprintf(err, errlen, "%s given without %s",
             o->follow != NULL ? "--follow" : "--follow-key-file",
             o->follow != NULL ? "--follow-key-file" : "--follow");
    return -1;
  }
  return 0;
}

/* Options whose variable holds a comma-separated list of values. */
static bool option_repeatable(const char *name, size_t len) {
  return (len == strlen("--listen") && memcmp(name, "--listen", len) == 0) ||
         (len == strlen("--webhook-allow") &&
          memcmp(name, "--webhook-allow", len) == 0);
}

/* Copies a, then b (b_len bytes) and a NUL into the room for the
 * environment's options: where the copy starts, or NULL when the room is
 * full. */
static char *env_append(fe_options *o, const char *a, size_t a_len,
                        const char *b, size_t b_len) {
  if (a_len + b_len + 1 > sizeof(o->env_bytes) - o->env_used) return NULL;
  char *at = o->env_bytes + o->env_used;
  memcpy(at, a, a_len);
  memcpy(at + a_len, b, b_len);
  at[a_len + b_len] = '\0';
  o->env_used += a_len + b_len + 1;
  return at;
}

/* One variable, "CONTACTD_NAME=value", as the option --name. */
static int env_apply(fe_options *o, const char *var, char *err, size_t errlen) {
  const char *key = var + strlen(FE_ENV_PREFIX);
  const char *eq = strchr(key, '=');
  size_t key_len = (size_t)(eq - key), var_len = (size_t)(eq - var);
  const char *value = eq + 1;
  size_t mark = o->env_used;
  char name[FE_OPTION_NAME_MAX_BYTES + 1]; /* "--name=" */

  if (key_len == 0 || key_len + 3 > sizeof(name)) goto ignored;
  name[0] = name[1] = '-';
  for (size_t i = 0; i < key_len; i++) {
    char c = key[i];
    if (c == '_')
      c = '-';
    else if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    else if (c < '0' || c > '9')
      goto ignored;
    name[2 + i] = c;
  }
  size_t name_len = key_len + 2;
  name[name_len] = '=';
  /* --help and --version are commands, not settings: a CONTACTD_VERSION
   * left by some build script must not turn the server into a printer. */
  if ((name_len == strlen("--help") && memcmp(name, "--help", name_len) == 0) ||
      (name_len == strlen("--version") &&
       memcmp(name, "--version", name_len) == 0))
    goto ignored;
  if (option_given(o, name, name_len) || *value == '\0') return 0;

  /* argv for parse_args: a program name, then --name=item for each item
   * of a list, or --name=value. */
  char *args[FE_ENV_ARGS_MAX + 1] = {"contactd"};
  int n = 1;
  bool list = option_repeatable(name, name_len);
  for (const char *item = value;;) {
    size_t item_len = list ? strcspn(item, ",") : strlen(item);
    char *arg = n <= FE_ENV_ARGS_MAX
                    ? env_append(o, name, name_len + 1, item, item_len)
                    : NULL;
    if (arg == NULL) {
      o->env_used = mark;
      snprintf(err, errlen,
               "%.*s: too long (the environment's options take "
               "at most %d bytes and %d values)",
               (int)var_len, var, FE_ENV_BYTES_MAX, FE_ENV_ARGS_MAX);
      return -1;
    }
    args[n++] = arg;
    if (item[item_len] != ',') break;
    item += item_len + 1;
  }

  char why[FE_STARTUP_ERR_MAX_BYTES];
  int rc = parse_args(o, n, args, why, sizeof(why));
  if (rc == -2) {
    o->env_used = mark;
    goto ignored;
  }
  if (rc != 0) {
    snprintf(err, errlen, "%.*s (environment): %s", (int)var_len, var, why);
    return -1;
  }
  return 0;

ignored:
  if (o->env_ignored_count < FE_ENV_ARGS_MAX)
    o->env_ignored[o->env_ignored_count++] = var;
  return 0;
}

/* $STATE_DIRECTORY's first path, when the data directory was not given. */
static int env_state_directory(fe_options *o, char *const *envp, char *err,
                               size_t errlen) {
  static const char var[] = "STATE_DIRECTORY=";
  if (option_given(o, "--data", strlen("--data"))) return 0;
  for (char *const *e = envp; *e != NULL; e++) {
    if (strncmp(*e, var, sizeof(var) - 1) != 0) continue;
    const char *dir = *e + sizeof(var) - 1;
    size_t len = strcspn(dir, ":");
    if (len == 0) return 0;
    const char *copy = env_append(o, "", 0, dir, len);
    if (copy == NULL) {
      snprintf(err, errlen, "STATE_DIRECTORY: longer than %d bytes",
               FE_ENV_BYTES_MAX);
      return -1;
    }
    o->data_dir = copy;
    return 0;
  }
  return 0;
}

int fe_options_load(fe_options *o, int argc, char **argv, char *const *envp,
                    char *err, size_t errlen) {
  if (parse_args(o, argc, argv, err, errlen) != 0) return -1;
  if (envp != NULL) {
    for (char *const *e = envp; *e != NULL; e++)
      if (strncmp(*e, FE_ENV_PREFIX, strlen(FE_ENV_PREFIX)) == 0 &&
          strchr(*e, '=') != NULL && env_apply(o, *e, err, errlen) != 0)
        return -1;
    if (env_state_directory(o, envp, err, errlen) != 0) return -1;
  }
  return options_check(o, err, errlen);
}

int fe_options_parse(fe_options *o, int argc, char **argv, char *err,
                     size_t errlen) {
  return fe_options_load(o, argc, argv, NULL, err, errlen);
}

int fe_options_usage(char *buf, size_t len, const char *default_plugins_dir) {
  return snprintf(
      buf, len,
      "usage: contactd [options]\n"
      "\n"
      "Serves the contacts API over HTTP/1.1 and HTTP/2 (cleartext, or TLS\n"
      "with ALPN when given a certificate).\n"
      "\n"
      "  --listen ADDR:PORT      address to listen on; repeat for several\n"
      "                          (default 127.0.0.1:8080; [::1]:8080 for "
      "IPv6,\n"
      "                          port 0 picks a free port)\n"
      "  --data DIR              data directory (default $STATE_DIRECTORY\n"
      "                          when set, as systemd sets it, else ./data)\n"
      "  --threads N             worker threads (default: one per core)\n"
      "  --tls-cert FILE         PEM certificate chain: serve TLS on every\n"
      "                          address (needs --tls-key; default: no TLS)\n"
      "  --tls-key FILE          PEM private key for --tls-cert\n"
      "  --durability MODE       fsync: answer a write once it is on disk\n"
      "                          (default); none: once it is written, which\n"
      "                          loses recent writes on power loss\n"
      "  --segment-bytes N       seal a log segment at N bytes (default\n"
      "                          64 MiB; 4 KiB to 1 GiB)\n"
      "  --snapshot-every-bytes N  write a snapshot after N bytes of log\n"
      "                          (default 256 MiB; 4 KiB to 1 TiB)\n"
      "  --trash-days N          keep a deleted contact in the trash N days\n"
      "                          (default %d; 1 to %d)\n"
      "  --changes-days N        keep the change feed's changes N days\n"
      "                          (default %d; 1 to %d)\n"
      "  --shard K               the shard a new data directory is made\n"
      "                          for (0 to %u: it gives ids from\n"
      "                          10^19 + K * 2^56 on, which no other shard\n"
      "                          gives); an existing one must be of shard K\n"
      "                          (default: 0 for a new one, else its own)\n"
      "  --webhook-allow HOST[:PORT]  a host webhooks may call (any port\n"
      "                          when none is given); repeat for several,\n"
      "                          up to %d (default: none, so no webhook\n"
      "                          can be created)\n"
      "  --webhook-retry-seconds N  retry a failing webhook N seconds, then\n"
      "                          disable it (default %d; %d to %d)\n"
      "  --follow URL            be a standby of the primary at URL: take\n"
      "                          its records, refuse writes (needs\n"
      "                          --follow-key-file; default: a primary)\n"
      "  --follow-key-file FILE  the primary's admin key, for --follow\n"
      "  --standby-ack MODE      required: answer a write only once a\n"
      "                          standby has it (503 standby_unavailable\n"
      "                          after --standby-timeout); async: do not\n"
      "                          wait, measure the lag (default async)\n"
      "  --standby-timeout MS    how long a write waits for a standby\n"
      "                          (default %u; %u to %u)\n"
      "  --plugins DIR           directory of plugins (*.so) to load\n"
      "                          (default %s)\n"
      "  --access-log FILE|-     one line per request to FILE, or - for\n"
      "                          standard output (default: none)\n"
      "  --shutdown-timeout SECONDS  on SIGTERM, wait this long for requests\n"
      "                          in flight, then close them (default %d;\n"
      "                          %d to %d)\n"
      "  --access-log-format F   default: fields split by spaces, the\n"
      "                          client's quoted and escaped; json: one\n"
      "                          object per line (default: default)\n"
      "  --version               print the version and exit\n"
      "  --help                  print this help and exit\n"
      "\n"
      "Every option can also be set in the environment as CONTACTD_<OPTION>,\n"
      "upper case with dashes as underscores (--changes-days 7 is\n"
      "CONTACTD_CHANGES_DAYS=7); a repeatable option takes a comma-separated\n"
      "list (CONTACTD_LISTEN=127.0.0.1:8080,[::1]:8080). An empty variable is\n"
      "unset; the command line wins over the environment.\n",
      CS_TRASH_DAYS_DEFAULT, CS_TRASH_DAYS_MAX, CS_CHANGES_DAYS_DEFAULT,
      CS_CHANGES_DAYS_MAX, CS_SHARD_MAX, FE_WEBHOOK_ALLOW_MAX,
      FE_WEBHOOK_RETRY_SECONDS_DEFAULT, FE_WEBHOOK_RETRY_SECONDS_MIN,
      FE_WEBHOOK_RETRY_SECONDS_MAX, CS_STANDBY_TIMEOUT_MS_DEFAULT,
      CS_STANDBY_TIMEOUT_MS_MIN, CS_STANDBY_TIMEOUT_MS_MAX, default_plugins_dir,
      FE_SHUTDOWN_TIMEOUT_S_DEFAULT, FE_SHUTDOWN_TIMEOUT_S_MIN,
      FE_SHUTDOWN_TIMEOUT_S_MAX);
}
