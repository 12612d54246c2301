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

int fe_options_parse(fe_options *o, int argc, char **argv, char *err,
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
    } else if (IS("--plugins")) {
      VALUE();
      o->plugins_dir = value;
    } else if (IS("--access-log")) {
      VALUE();
      o->access_log = value;
    } else if (IS("--access-log-format")) {
      VALUE();
      if (fe_access_format_parse(value, &o->access_log_format) != 0) {
        snprintf(err, errlen,
                 "--access-log-format %s: expected default or json", value);
        return -1;
      }
    } else if (arg[0] == '-') {
      snprintf(err, errlen, "unknown option %.*s", (int)name_len, arg);
      return -1;
    } else {
      snprintf(err, errlen, "unexpected argument '%s'", arg);
      return -1;
    }
    if (eq != NULL && value == NULL) {
      snprintf(err, errlen, "%.*s takes no value", (int)name_len, arg);
      return -1;
    }
#undef IS
#undef VALUE
  }

  if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
    snprintf(err, errlen, "%s given without %s",
             o->tls_cert != NULL ? "--tls-cert" : "--tls-key",
             o->tls_cert != NULL ? "--tls-key" : "--tls-cert");
    return -1;
  }
  return 0;
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
      "  --data DIR              data directory (default ./data)\n"
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
      "  --webhook-allow HOST[:PORT]  a host webhooks may call (any port\n"
      "                          when none is given); repeat for several,\n"
      "                          up to %d (default: none, so no webhook\n"
      "                          can be created)\n"
      "  --webhook-retry-seconds N  retry a failing webhook N seconds, then\n"
      "                          disable it (default %d; %d to %d)\n"
      "  --plugins DIR           directory of plugins (*.so) to load\n"
      "                          (default %s)\n"
      "  --access-log FILE|-     one line per request to FILE, or - for\n"
      "                          standard output (default: none)\n"
      "  --access-log-format F   default: fields split by spaces, the\n"
      "                          client's quoted and escaped; json: one\n"
      "                          object per line (default: default)\n"
      "  --version               print the version and exit\n"
      "  --help                  print this help and exit\n",
      CS_TRASH_DAYS_DEFAULT, CS_TRASH_DAYS_MAX, CS_CHANGES_DAYS_DEFAULT,
      CS_CHANGES_DAYS_MAX, FE_WEBHOOK_ALLOW_MAX,
      FE_WEBHOOK_RETRY_SECONDS_DEFAULT, FE_WEBHOOK_RETRY_SECONDS_MIN,
      FE_WEBHOOK_RETRY_SECONDS_MAX, default_plugins_dir);
}
