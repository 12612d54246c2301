/*
 * test_fe_options.c: the command line.
 *
 * Goal: defaults hold with no arguments, every option parses in both
 * spellings, and every bad input fails with a message naming the option.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cs_limits.h"
#include "fe_options.h"

static int parse(fe_options *o, char *err, size_t errlen, ...) {
  char *argv[32] = {"contactd"};
  int argc = 1;
  va_list ap;
  va_start(ap, errlen);
  for (char *a; (a = va_arg(ap, char *)) != NULL;)
    argv[argc++] = a;
  va_end(ap);
  fe_options_init(o, "/plugins");
  return fe_options_parse(o, argc, argv, err, errlen);
}

static void test_fe_options_defaults(void **state) {
  fe_options o;
  char err[256];
  assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
  assert_int_equal(o.listen_count, 1);
  assert_string_equal(o.listen[0].host, "127.0.0.1");
  assert_int_equal(o.listen[0].port, 8080);
  assert_string_equal(o.data_dir, "./data");
  assert_int_equal(o.threads, 0);
  assert_null(o.tls_cert);
  assert_int_equal(o.durability, CS_DURABILITY_FSYNC);
  assert_string_equal(o.plugins_dir, "/plugins");
  assert_null(o.access_log);
  assert_false(o.help);
  assert_false(o.version);
}

static void test_fe_options_every_option(void **state) {
  fe_options o;
  char err[256];
  assert_int_equal(parse(&o, err, sizeof(err), "--listen", "127.0.0.1:9000",
                         "--listen=[::1]:9001", "--data", "/d", "--threads=3",
                         "--tls-cert", "c.pem", "--tls-key=k.pem",
                         "--durability", "none", "--plugins", "/p",
                         "--access-log", "-", "--version", "--help", NULL),
                   0);
  assert_int_equal(o.listen_count, 2);
  assert_int_equal(o.listen[0].port, 9000);
  assert_string_equal(o.listen[1].host, "::1");
  assert_int_equal(o.listen[1].port, 9001);
  assert_string_equal(o.data_dir, "/d");
  assert_int_equal(o.threads, 3);
  assert_string_equal(o.tls_cert, "c.pem");
  assert_string_equal(o.tls_key, "k.pem");
  assert_int_equal(o.durability, CS_DURABILITY_NONE);
  assert_string_equal(o.plugins_dir, "/p");
  assert_string_equal(o.access_log, "-");
  assert_true(o.version);
  assert_true(o.help);
}

static void expect_error(const char *needle, ...) {
  char *argv[32] = {"contactd"};
  int argc = 1;
  va_list ap;
  va_start(ap, needle);
  for (char *a; (a = va_arg(ap, char *)) != NULL;)
    argv[argc++] = a;
  va_end(ap);
  fe_options o;
  char err[256] = "";
  fe_options_init(&o, "/plugins");
  assert_int_equal(fe_options_parse(&o, argc, argv, err, sizeof(err)), -1);
  if (strstr(err, needle) == NULL)
    fail_msg("message '%s' does not name '%s'", err, needle);
}

static void test_fe_options_bad_input_names_the_option(void **state) {
  expect_error("--bogus", "--bogus", NULL);
  expect_error("stray", "stray", NULL);
  expect_error("--data needs a value", "--data", NULL);
  expect_error("--data", "--data=", NULL);
  expect_error("--threads", "--threads", "0", NULL);
  expect_error("--threads", "--threads", "many", NULL);
  expect_error("--threads", "--threads", "100000", NULL);
  expect_error("--threads", "--threads", "-1", NULL);
  expect_error("--durability", "--durability", "sometimes", NULL);
  expect_error("--tls-key", "--tls-cert", "c.pem", NULL);
  expect_error("--tls-cert", "--tls-key", "k.pem", NULL);
  expect_error("--listen", "--listen", "8080", NULL);
  expect_error("--listen", "--listen", "127.0.0.1:http", NULL);
  expect_error("--listen", "--listen", "127.0.0.1:65536", NULL);
  expect_error("--listen", "--listen", "127.0.0.1:", NULL);
  expect_error("--listen", "--listen", "::1:80", NULL);
  expect_error("--listen", "--listen", "[::1]80", NULL);
  expect_error("--help", "--help=yes", NULL);
}

static void test_fe_options_listen_forms(void **state) {
  fe_listen_addr a;
  char err[256];
  assert_int_equal(fe_listen_parse("localhost:80", &a, err, sizeof(err)), 0);
  assert_string_equal(a.host, "localhost");
  assert_int_equal(a.port, 80);
  assert_int_equal(fe_listen_parse(":8080", &a, err, sizeof(err)), 0);
  assert_string_equal(a.host, "");
  assert_int_equal(fe_listen_parse("127.0.0.1:0", &a, err, sizeof(err)), 0);
  assert_int_equal(a.port, 0);
  assert_int_equal(fe_listen_parse("[::]:443", &a, err, sizeof(err)), 0);
  assert_string_equal(a.host, "::");
  assert_int_equal(a.port, 443);
}

static void test_fe_options_listen_limit(void **state) {
  char *argv[2 + 2 * (FE_LISTEN_MAX + 1)];
  int argc = 0;
  argv[argc++] = "contactd";
  for (int i = 0; i <= FE_LISTEN_MAX; i++) {
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
  }
  fe_options o;
  char err[256];
  fe_options_init(&o, "/p");
  assert_int_equal(fe_options_parse(&o, argc - 2, argv, err, sizeof(err)), 0);
  assert_int_equal(o.listen_count, FE_LISTEN_MAX);
  fe_options_init(&o, "/p");
  assert_int_equal(fe_options_parse(&o, argc, argv, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "--listen"));
}

/* The engine's sizes, at and past their named edges. */
static void test_fe_options_segment_and_snapshot_bytes(void **state) {
  char lo[32], hi[32], slo[32], shi[32];
  snprintf(lo, sizeof lo, "%u", CS_SEGMENT_BYTES_MIN);
  snprintf(hi, sizeof hi, "%u", CS_SEGMENT_BYTES_MAX);
  snprintf(slo, sizeof slo, "%llu", CS_SNAPSHOT_EVERY_BYTES_MIN);
  snprintf(shi, sizeof shi, "%llu", CS_SNAPSHOT_EVERY_BYTES_MAX);
  char *argv[] = {"contactd", "--segment-bytes", lo, "--snapshot-every-bytes",
                  shi};
  fe_options o;
  char err[256] = "";
  fe_options_init(&o, "/p");
  assert_int_equal(o.segment_bytes, 0);
  assert_int_equal(o.snapshot_every_bytes, 0);
  assert_int_equal(fe_options_parse(&o, 5, argv, err, sizeof(err)), 0);
  assert_int_equal(o.segment_bytes, CS_SEGMENT_BYTES_MIN);
  assert_true(o.snapshot_every_bytes == CS_SNAPSHOT_EVERY_BYTES_MAX);
  argv[2] = hi;
  argv[4] = slo;
  assert_int_equal(fe_options_parse(&o, 5, argv, err, sizeof(err)), 0);
  assert_int_equal(o.segment_bytes, CS_SEGMENT_BYTES_MAX);
  assert_true(o.snapshot_every_bytes == CS_SNAPSHOT_EVERY_BYTES_MIN);
  char below[32], above[32], sbelow[32], sabove[32];
  snprintf(below, sizeof below, "%u", CS_SEGMENT_BYTES_MIN - 1);
  snprintf(above, sizeof above, "%llu", CS_SEGMENT_BYTES_MAX + 1ull);
  snprintf(sbelow, sizeof sbelow, "%llu", CS_SNAPSHOT_EVERY_BYTES_MIN - 1);
  snprintf(sabove, sizeof sabove, "%llu", CS_SNAPSHOT_EVERY_BYTES_MAX + 1);
  expect_error("--segment-bytes", "--segment-bytes", below, NULL);
  expect_error("--segment-bytes", "--segment-bytes", above, NULL);
  expect_error("--segment-bytes", "--segment-bytes", "64k", NULL);
  expect_error("--snapshot-every-bytes", "--snapshot-every-bytes", sbelow,
               NULL);
  expect_error("--snapshot-every-bytes", "--snapshot-every-bytes", sabove,
               NULL);
}

/* --trash-days: 1 to CS_TRASH_DAYS_MAX, the default left to the engine. */
static void test_fe_options_trash_days(void **state) {
  fe_options o;
  char err[256] = "";
  assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
  assert_int_equal(o.trash_days, 0);
  assert_int_equal(parse(&o, err, sizeof(err), "--trash-days", "1", NULL), 0);
  assert_int_equal(o.trash_days, 1);
  char max[32], above[32];
  snprintf(max, sizeof max, "%d", CS_TRASH_DAYS_MAX);
  snprintf(above, sizeof above, "%d", CS_TRASH_DAYS_MAX + 1);
  assert_int_equal(parse(&o, err, sizeof(err), "--trash-days=7", NULL), 0);
  assert_int_equal(o.trash_days, 7);
  assert_int_equal(parse(&o, err, sizeof(err), "--trash-days", max, NULL), 0);
  assert_int_equal(o.trash_days, CS_TRASH_DAYS_MAX);
  expect_error("--trash-days", "--trash-days", "0", NULL);
  expect_error("--trash-days", "--trash-days", above, NULL);
  expect_error("--trash-days", "--trash-days", "-1", NULL);
  expect_error("--trash-days", "--trash-days", "30d", NULL);
  expect_error("--trash-days", "--trash-days", "", NULL);
  expect_error("--trash-days", "--trash-days", NULL);
  assert_int_equal(parse(&o, err, sizeof(err), "--trash-days", "0", NULL), -1);
  assert_non_null(strstr(err, "days from 1 to"));
}

/* --changes-days: 1 to CS_CHANGES_DAYS_MAX, the default left to the
 * engine. */
static void test_fe_options_changes_days(void **state) {
  fe_options o;
  char err[256] = "";
  assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
  assert_int_equal(o.changes_days, 0);
  char max[32], above[32];
  snprintf(max, sizeof max, "%d", CS_CHANGES_DAYS_MAX);
  snprintf(above, sizeof above, "%d", CS_CHANGES_DAYS_MAX + 1);
  assert_int_equal(parse(&o, err, sizeof(err), "--changes-days", "1", NULL), 0);
  assert_int_equal(o.changes_days, 1);
  assert_int_equal(parse(&o, err, sizeof(err), "--changes-days=7", NULL), 0);
  assert_int_equal(o.changes_days, 7);
  assert_int_equal(parse(&o, err, sizeof(err), "--changes-days", max, NULL), 0);
  assert_int_equal(o.changes_days, CS_CHANGES_DAYS_MAX);
  expect_error("--changes-days", "--changes-days", "0", NULL);
  expect_error("--changes-days", "--changes-days", above, NULL);
  expect_error("--changes-days", "--changes-days", "1w", NULL);
  expect_error("--changes-days", "--changes-days", NULL);
}

/* --webhook-allow: host names, IPv4 and bracketed IPv6 addresses, each
 * with an optional port 1-65535, given up to FE_WEBHOOK_ALLOW_MAX times,
 * and handed to plugins in order. */
static void test_fe_options_webhook_allow(void **state) {
  fe_options o;
  char err[256] = "";
  assert_int_equal(parse(&o, err, sizeof(err), "--webhook-allow", "127.0.0.1",
                         "--webhook-allow=hooks.example.com:8443",
                         "--webhook-allow", "[::1]:1", "--webhook-allow",
                         "a-b.c9:65535", "--webhook-allow", "[fe80::1]", NULL),
                   0);
  assert_int_equal(o.webhook_allow_count, 5);
  assert_string_equal(fe_options_plugin_value(&o, "webhook-allow", 0),
                      "127.0.0.1");
  assert_string_equal(fe_options_plugin_value(&o, "webhook-allow", 1),
                      "hooks.example.com:8443");
  assert_string_equal(fe_options_plugin_value(&o, "webhook-allow", 4),
                      "[fe80::1]");
  assert_null(fe_options_plugin_value(&o, "webhook-allow", 5));
  assert_null(fe_options_plugin_value(&o, "data", 0));
  assert_null(fe_options_plugin_value(&o, "webhook-retry-seconds", 0));

  static const char *const bad[] = {
      "host:0",      "host:65536", "host:",       "host:http", ":80",
      "::1",         "::1:80",     "[::1",        "[::1]80",   "[]:80",
      "[127.0.0.1]", "-a.com",     "a-.com",      "a..com",    "a.com.",
      "a_b.com",     "1.2.3",      "300.1.1.1",   "a.com/x",   "a.com:80:1",
      "user@a.com",  "[::1]:0",    "exa mple.com"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(
        parse(&o, err, sizeof(err), "--webhook-allow", bad[i], NULL), -1);
    if (strstr(err, "--webhook-allow") == NULL || strchr(err, '\n') != NULL)
      fail_msg("%s: message '%s' does not name the option", bad[i], err);
  }
  expect_error("--webhook-allow", "--webhook-allow", NULL);

  /* A host name at its edges: labels of 63 and names of 253 bytes. */
  char label[FE_HOST_LABEL_MAX_BYTES + 2];
  memset(label, 'a', sizeof(label) - 1);
  label[FE_HOST_LABEL_MAX_BYTES] = '\0';
  assert_int_equal(fe_hostport_check(label, err, sizeof(err)), 0);
  label[FE_HOST_LABEL_MAX_BYTES] = 'a';
  label[FE_HOST_LABEL_MAX_BYTES + 1] = '\0';
  assert_int_equal(fe_hostport_check(label, err, sizeof(err)), -1);
  char name[FE_HOST_NAME_MAX_BYTES + 2];
  for (size_t i = 0; i < sizeof(name) - 1; i++)
    name[i] = i % 2 ? '.' : 'a';
  name[FE_HOST_NAME_MAX_BYTES] = '\0'; /* "a.a. ... .a": 253 bytes */
  assert_int_equal(fe_hostport_check(name, err, sizeof(err)), 0);
  name[FE_HOST_NAME_MAX_BYTES - 1] = 'a';
  name[FE_HOST_NAME_MAX_BYTES] = 'a'; /* 254 bytes */
  name[FE_HOST_NAME_MAX_BYTES + 1] = '\0';
  assert_int_equal(fe_hostport_check(name, err, sizeof(err)), -1);
}

static void test_fe_options_webhook_allow_limit(void **state) {
  char *argv[2 + 2 * (FE_WEBHOOK_ALLOW_MAX + 1)];
  int argc = 0;
  argv[argc++] = "contactd";
  for (int i = 0; i <= FE_WEBHOOK_ALLOW_MAX; i++) {
    argv[argc++] = "--webhook-allow";
    argv[argc++] = "127.0.0.1";
  }
  fe_options o;
  char err[256];
  fe_options_init(&o, "/p");
  assert_int_equal(fe_options_parse(&o, argc - 2, argv, err, sizeof(err)), 0);
  assert_int_equal(o.webhook_allow_count, FE_WEBHOOK_ALLOW_MAX);
  fe_options_init(&o, "/p");
  assert_int_equal(fe_options_parse(&o, argc, argv, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "--webhook-allow"));
}

/* --webhook-retry-seconds: FE_WEBHOOK_RETRY_SECONDS_MIN..MAX, kept as
 * given for the plugin. */
static void test_fe_options_webhook_retry_seconds(void **state) {
  fe_options o;
  char err[256] = "";
  char max[32], above[32];
  snprintf(max, sizeof max, "%d", FE_WEBHOOK_RETRY_SECONDS_MAX);
  snprintf(above, sizeof above, "%d", FE_WEBHOOK_RETRY_SECONDS_MAX + 1);
  assert_int_equal(
      parse(&o, err, sizeof(err), "--webhook-retry-seconds", "1", NULL), 0);
  assert_string_equal(fe_options_plugin_value(&o, "webhook-retry-seconds", 0),
                      "1");
  assert_null(fe_options_plugin_value(&o, "webhook-retry-seconds", 1));
  assert_int_equal(
      parse(&o, err, sizeof(err), "--webhook-retry-seconds", max, NULL), 0);
  assert_string_equal(fe_options_plugin_value(&o, "webhook-retry-seconds", 0),
                      max);
  expect_error("--webhook-retry-seconds", "--webhook-retry-seconds", "0", NULL);
  expect_error("--webhook-retry-seconds", "--webhook-retry-seconds", above,
               NULL);
  expect_error("--webhook-retry-seconds", "--webhook-retry-seconds", "3d",
               NULL);
}

static void test_fe_options_usage_shows_defaults(void **state) {
  char buf[FE_USAGE_MAX_BYTES];
  fe_options_usage(buf, sizeof(buf), "/the/plugins");
  const char *needles[] = {"--listen",
                           "127.0.0.1:8080",
                           "--data",
                           "./data",
                           "--threads",
                           "--tls-cert",
                           "--tls-key",
                           "--durability",
                           "fsync",
                           "--plugins",
                           "/the/plugins",
                           "--access-log",
                           "--version",
                           "--help",
                           "--segment-bytes",
                           "--snapshot-every-bytes",
                           "--trash-days",
                           "--changes-days",
                           "--webhook-allow",
                           "--webhook-retry-seconds",
                           "--shutdown-timeout",
                           "--follow",
                           "--follow-key-file",
                           "--standby-ack",
                           "--standby-timeout",
                           "CONTACTD_<OPTION>",
                           "$STATE_DIRECTORY"};
  for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++)
    assert_non_null(strstr(buf, needles[i]));
  /* The whole text fits its buffer. */
  assert_true(fe_options_usage(NULL, 0, "/the/plugins") < FE_USAGE_MAX_BYTES);
}

static void test_fe_options_shutdown_timeout(void **state) {
  fe_options o;
  char err[256];
  char lo[32], hi[32], past[32];
  assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
  assert_int_equal(o.shutdown_timeout_s, FE_SHUTDOWN_TIMEOUT_S_DEFAULT);
  snprintf(lo, sizeof(lo), "%d", FE_SHUTDOWN_TIMEOUT_S_MIN);
  snprintf(hi, sizeof(hi), "%d", FE_SHUTDOWN_TIMEOUT_S_MAX);
  snprintf(past, sizeof(past), "%d", FE_SHUTDOWN_TIMEOUT_S_MAX + 1);
  assert_int_equal(parse(&o, err, sizeof(err), "--shutdown-timeout", lo, NULL),
                   0);
  assert_int_equal(o.shutdown_timeout_s, FE_SHUTDOWN_TIMEOUT_S_MIN);
  assert_int_equal(parse(&o, err, sizeof(err), "--shutdown-timeout", hi, NULL),
                   0);
  assert_int_equal(o.shutdown_timeout_s, FE_SHUTDOWN_TIMEOUT_S_MAX);
  expect_error("--shutdown-timeout", "--shutdown-timeout", past, NULL);
  expect_error("--shutdown-timeout", "--shutdown-timeout", "-1", NULL);
  expect_error("--shutdown-timeout", "--shutdown-timeout", "10s", NULL);
  expect_error("--shutdown-timeout", "--shutdown-timeout=", NULL);
}

static void test_fe_options_standby(void **state) {
  (void)state;
  fe_options o;
  char err[256];
  char lo[32], hi[32], below[32], past[32];
  assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
  assert_int_equal(o.standby_ack, CS_STANDBY_ACK_ASYNC);
  assert_int_equal(o.standby_timeout_ms, 0); /* the engine's default */
  assert_null(o.follow);
  snprintf(lo, sizeof(lo), "%u", CS_STANDBY_TIMEOUT_MS_MIN);
  snprintf(hi, sizeof(hi), "%u", CS_STANDBY_TIMEOUT_MS_MAX);
  snprintf(below, sizeof(below), "%u", CS_STANDBY_TIMEOUT_MS_MIN - 1);
  snprintf(past, sizeof(past), "%u", CS_STANDBY_TIMEOUT_MS_MAX + 1);
  assert_int_equal(parse(&o, err, sizeof(err), "--standby-ack", "required",
                         "--standby-timeout", lo, NULL),
                   0);
  assert_int_equal(o.standby_ack, CS_STANDBY_ACK_REQUIRED);
  assert_int_equal(o.standby_timeout_ms, CS_STANDBY_TIMEOUT_MS_MIN);
  assert_int_equal(parse(&o, err, sizeof(err), "--standby-timeout", hi, NULL),
                   0);
  assert_int_equal(o.standby_timeout_ms, CS_STANDBY_TIMEOUT_MS_MAX);
  expect_error("--standby-timeout", "--standby-timeout", past, NULL);
  expect_error("--standby-timeout", "--standby-timeout", below, NULL);
  expect_error("--standby-ack", "--standby-ack", "sometimes", NULL);
  assert_int_equal(parse(&o, err, sizeof(err), "--follow",
                         "http://127.0.0.1:8080", "--follow-key-file", "/k",
                         NULL),
                   0);
  assert_string_equal(fe_options_plugin_value(&o, "follow", 0),
                      "http://127.0.0.1:8080");
  assert_string_equal(fe_options_plugin_value(&o, "follow-key-file", 0), "/k");
  assert_null(fe_options_plugin_value(&o, "follow", 1));
  expect_error("--follow", "--follow", "ftp://x", "--follow-key-file", "/k",
               NULL);
  expect_error("--follow-key-file", "--follow", "http://127.0.0.1:1", NULL);
  expect_error("--follow", "--follow-key-file", "/k", NULL);
}

/* fe_options_load with a command line (NULL-terminated after envp's
 * NULL) and an environment: the variadic list is the environment's
 * entries, a NULL, then the arguments, a NULL. */
static int load(fe_options *o, char *err, size_t errlen, ...) {
  char *envp[FE_ENV_ARGS_MAX + 8] = {NULL};
  char *argv[32] = {"contactd"};
  int argc = 1;
  size_t n = 0;
  va_list ap;
  va_start(ap, errlen);
  for (char *a; (a = va_arg(ap, char *)) != NULL;)
    envp[n++] = a;
  envp[n] = NULL;
  for (char *a; (a = va_arg(ap, char *)) != NULL;)
    argv[argc++] = a;
  va_end(ap);
  fe_options_init(o, "/plugins");
  err[0] = '\0';
  return fe_options_load(o, argc, argv, envp, err, errlen);
}

static void test_fe_options_from_the_environment(void **state) {
  fe_options o;
  char err[512];
  assert_int_equal(load(&o, err, sizeof(err), "CONTACTD_DATA=/env/data",
                        "CONTACTD_THREADS=3", "CONTACTD_CHANGES_DAYS=7",
                        "CONTACTD_LISTEN=127.0.0.1:9000,[::1]:9001",
                        "CONTACTD_WEBHOOK_ALLOW=a.example,b.example:8443",
                        "CONTACTD_SHUTDOWN_TIMEOUT=0",
                        "CONTACTD_TLS_CERT=", "CONTACTD_ACCESS_LOG=-",
                        "OTHER_THREADS=9", "PATH=/bin", NULL, NULL),
                   0);
  assert_string_equal(o.data_dir, "/env/data");
  assert_int_equal(o.threads, 3);
  assert_int_equal(o.changes_days, 7);
  assert_int_equal(o.listen_count, 2);
  assert_int_equal(o.listen[0].port, 9000);
  assert_string_equal(o.listen[1].host, "::1");
  assert_int_equal(o.webhook_allow_count, 2);
  assert_string_equal(fe_options_plugin_value(&o, "webhook-allow", 1),
                      "b.example:8443");
  assert_int_equal(o.shutdown_timeout_s, 0);
  assert_null(o.tls_cert); /* empty: unset */
  assert_string_equal(o.access_log, "-");
  assert_int_equal(o.env_ignored_count, 0);
}

static void test_fe_options_command_line_wins(void **state) {
  fe_options o;
  char err[512];
  /* A bad value in the environment does not matter when the command line
   * gives the option; a list from it does not add to the command line's. */
  assert_int_equal(load(&o, err, sizeof(err), "CONTACTD_DATA=/env",
                        "CONTACTD_THREADS=zero",
                        "CONTACTD_LISTEN=127.0.0.1:1,127.0.0.1:2",
                        "CONTACTD_WEBHOOK_ALLOW=env.example", NULL, "--data",
                        "/cli", "--threads=2", "--listen", "127.0.0.1:3",
                        "--webhook-allow", "cli.example", NULL),
                   0);
  assert_string_equal(o.data_dir, "/cli");
  assert_int_equal(o.threads, 2);
  assert_int_equal(o.listen_count, 1);
  assert_int_equal(o.listen[0].port, 3);
  assert_int_equal(o.webhook_allow_count, 1);
  assert_string_equal(o.webhook_allow[0], "cli.example");
  /* The pair check sees both sources. */
  assert_int_equal(load(&o, err, sizeof(err), "CONTACTD_TLS_KEY=k.pem", NULL,
                        "--tls-cert", "c.pem", NULL),
                   0);
  assert_string_equal(o.tls_key, "k.pem");
}

static void expect_env_error(const char *var, const char *needle) {
  fe_options o;
  char err[512];
  assert_int_equal(load(&o, err, sizeof(err), var, NULL, NULL), -1);
  if (strstr(err, needle) == NULL)
    fail_msg("message '%s' does not name '%s'", err, needle);
}

static void test_fe_options_bad_environment_names_the_variable(void **state) {
  expect_env_error("CONTACTD_THREADS=0", "CONTACTD_THREADS");
  expect_env_error("CONTACTD_THREADS=many", "--threads many");
  expect_env_error("CONTACTD_SHUTDOWN_TIMEOUT=3601",
                   "CONTACTD_SHUTDOWN_TIMEOUT");
  expect_env_error("CONTACTD_LISTEN=127.0.0.1:1,,127.0.0.1:2",
                   "CONTACTD_LISTEN");
  expect_env_error("CONTACTD_LISTEN=127.0.0.1:1,", "empty value");
  expect_env_error("CONTACTD_WEBHOOK_ALLOW=bad_host", "CONTACTD_WEBHOOK_ALLOW");
  expect_env_error("CONTACTD_DURABILITY=sometimes", "CONTACTD_DURABILITY");
  expect_env_error("CONTACTD_TLS_CERT=c.pem", "--tls-key");
}

static void test_fe_options_unknown_variables_are_ignored(void **state) {
  fe_options o;
  char err[512];
  assert_int_equal(load(&o, err, sizeof(err), "CONTACTD_NO_SUCH=1",
                        "CONTACTD_lower=1", "CONTACTD_=x", "CONTACTD_DATA=/d",
                        "CONTACTD_VERSION=0.1.0", "CONTACTD_HELP=1", NULL,
                        NULL),
                   0);
  assert_int_equal(o.env_ignored_count, 5);
  assert_string_equal(o.env_ignored[0], "CONTACTD_NO_SUCH=1");
  assert_string_equal(o.env_ignored[3], "CONTACTD_VERSION=0.1.0");
  assert_string_equal(o.data_dir, "/d");
  assert_false(o.version);
  assert_false(o.help);
}

static void test_fe_options_state_directory(void **state) {
  fe_options o;
  char err[512];
  assert_int_equal(
      load(&o, err, sizeof(err), "STATE_DIRECTORY=/var/lib/c", NULL, NULL), 0);
  assert_string_equal(o.data_dir, "/var/lib/c");
  assert_int_equal(load(&o, err, sizeof(err),
                        "STATE_DIRECTORY=/var/lib/a:/var/lib/b", NULL, NULL),
                   0);
  assert_string_equal(o.data_dir, "/var/lib/a");
  assert_int_equal(load(&o, err, sizeof(err), "STATE_DIRECTORY=", NULL, NULL),
                   0);
  assert_string_equal(o.data_dir, "./data");
  assert_int_equal(load(&o, err, sizeof(err), "STATE_DIRECTORY=/s",
                        "CONTACTD_DATA=/env", NULL, NULL),
                   0);
  assert_string_equal(o.data_dir, "/env");
  assert_int_equal(load(&o, err, sizeof(err), "STATE_DIRECTORY=/s", NULL,
                        "--data", "/cli", NULL),
                   0);
  assert_string_equal(o.data_dir, "/cli");
  /* fe_options_parse reads no environment. */
  assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
  assert_string_equal(o.data_dir, "./data");
}

/* FE_ENV_BYTES_MAX and FE_ENV_ARGS_MAX, at and past their edges. */
static void test_fe_options_environment_limits(void **state) {
  static fe_options o;
  char err[512];
  static char var[FE_ENV_BYTES_MAX + 64];
  const char *name = "CONTACTD_DATA=";
  size_t arg_overhead = strlen("--data=") + 1;

  /* A value that fills the room exactly, then one byte more. */
  size_t fits = FE_ENV_BYTES_MAX - arg_overhead;
  snprintf(var, sizeof(var), "%s", name);
  memset(var + strlen(name), 'd', fits);
  var[strlen(name) + fits] = '\0';
  assert_int_equal(load(&o, err, sizeof(err), var, NULL, NULL), 0);
  assert_int_equal(strlen(o.data_dir), fits);
  var[strlen(name) + fits] = 'd';
  var[strlen(name) + fits + 1] = '\0';
  assert_int_equal(load(&o, err, sizeof(err), var, NULL, NULL), -1);
  assert_non_null(strstr(err, "CONTACTD_DATA: too long"));

  /* FE_ENV_ARGS_MAX items in a list, then one more (of a list whose
   * items are each checked: the webhook hosts, up to their own limit,
   * then refused by it; the listen addresses by FE_LISTEN_MAX). */
  size_t at = (size_t)snprintf(var, sizeof(var), "CONTACTD_WEBHOOK_ALLOW=");
  for (int i = 0; i < FE_ENV_ARGS_MAX; i++)
    at += (size_t)snprintf(var + at, sizeof(var) - at, "%sh", i ? "," : "");
  assert_int_equal(load(&o, err, sizeof(err), var, NULL, NULL), -1);
  assert_non_null(strstr(err, "at most 64 hosts"));
  snprintf(var + at, sizeof(var) - at, ",h");
  assert_int_equal(load(&o, err, sizeof(err), var, NULL, NULL), -1);
  assert_non_null(strstr(err, "CONTACTD_WEBHOOK_ALLOW: too long"));
}

static void test_fe_options_access_log_format(void **state) {
  fe_options o;
  char err[256];
  assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
  assert_int_equal(o.access_log_format, FE_ACCESS_FORMAT_DEFAULT);
  assert_int_equal(
      parse(&o, err, sizeof(err), "--access-log-format", "json", NULL), 0);
  assert_int_equal(o.access_log_format, FE_ACCESS_FORMAT_JSON);
  assert_int_equal(parse(&o, err, sizeof(err), "--access-log-format=json",
                         "--access-log-format=default", NULL),
                   0);
  assert_int_equal(o.access_log_format, FE_ACCESS_FORMAT_DEFAULT);
  expect_error("--access-log-format xml: expected default or json",
               "--access-log-format", "xml", NULL);
  expect_error("--access-log-format", "--access-log-format", "", NULL);
  expect_error("--access-log-format", "--access-log-format", NULL);
  char usage[FE_USAGE_MAX_BYTES];
  fe_options_usage(usage, sizeof(usage), "/p");
  assert_non_null(strstr(usage, "--access-log-format"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_options_defaults),
      cmocka_unit_test(test_fe_options_every_option),
      cmocka_unit_test(test_fe_options_bad_input_names_the_option),
      cmocka_unit_test(test_fe_options_listen_forms),
      cmocka_unit_test(test_fe_options_listen_limit),
      cmocka_unit_test(test_fe_options_segment_and_snapshot_bytes),
      cmocka_unit_test(test_fe_options_trash_days),
      cmocka_unit_test(test_fe_options_changes_days),
      cmocka_unit_test(test_fe_options_webhook_allow),
      cmocka_unit_test(test_fe_options_webhook_allow_limit),
      cmocka_unit_test(test_fe_options_webhook_retry_seconds),
      cmocka_unit_test(test_fe_options_usage_shows_defaults),
      cmocka_unit_test(test_fe_options_shutdown_timeout),
      cmocka_unit_test(test_fe_options_standby),
      cmocka_unit_test(test_fe_options_from_the_environment),
      cmocka_unit_test(test_fe_options_command_line_wins),
      cmocka_unit_test(test_fe_options_bad_environment_names_the_variable),
      cmocka_unit_test(test_fe_options_unknown_variables_are_ignored),
      cmocka_unit_test(test_fe_options_state_directory),
      cmocka_unit_test(test_fe_options_environment_limits),
      cmocka_unit_test(test_fe_options_access_log_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
