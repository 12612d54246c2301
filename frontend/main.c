/*
 * main.c: contactd, the contacts server.
 *
 * Start-up order matters: options, then everything that can be checked
 * without side effects on the data (TLS files, listening addresses, the
 * access log), then the store and its keys, then the plugins, and only then
 * the worker threads. A failure at any step is one line on stderr naming
 * what was wrong and a non-zero exit (2 for a usage error). SIGTERM and
 * SIGINT drain the plugins (their own threads stop, their state is saved),
 * stop accepting, let in-flight requests and pending commits finish, close
 * the store (which commits and writes a snapshot) and exit 0. SIGHUP
 * reopens the access log and re-reads the key file, and the server goes on.
 * Under systemd (NOTIFY_SOCKET set) the service manager is told READY=1
 * once every listener serves, STOPPING=1 when the stop begins, and STATUS=
 * lines on the way; elsewhere sd_notify does nothing.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "cd_plugin.h"
#include "cs.h"
#include "fe_keys.h"
#include "fe_limits.h"
#include "fe_log.h"
#include "fe_options.h"
#include "fe_plugins.h"
#include "fe_router.h"
#include "fe_server.h"
#include "h2o/version.h"

#ifndef CONTACTD_VERSION
#define CONTACTD_VERSION "0.0.0"
#endif
#ifndef CONTACTD_PLUGIN_DIR
#define CONTACTD_PLUGIN_DIR "/usr/local/lib/contactd/plugins"
#endif
#ifndef CONTACTD_PLUGIN_RELDIR
#define CONTACTD_PLUGIN_RELDIR "../lib/contactd/plugins"
#endif

extern char **environ;

/*
 * Where plugins are when --plugins is not given. The build tree's own
 * binary (CONTACTD_BUILD_EXE, compared as the kernel names the running
 * executable) loads the build's plugins; every other copy is an installed
 * one and loads the plugin directory installed beside it:
 * CONTACTD_PLUGIN_RELDIR from the directory of its executable (so an
 * installation under any prefix, or a package unpacked anywhere, finds
 * its own plugins, and never the build tree's). Without /proc, the
 * configured CONTACTD_PLUGIN_DIR. buf holds what is returned.
 */
static const char *default_plugins_dir(char *buf, size_t len) {
  char exe[FE_PATH_MAX_BYTES];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return CONTACTD_PLUGIN_DIR;
  exe[n] = '\0';
#if defined(CONTACTD_BUILD_EXE) && defined(CONTACTD_BUILD_PLUGIN_DIR)
  char build[FE_PATH_MAX_BYTES];
  if (realpath(CONTACTD_BUILD_EXE, build) != NULL && strcmp(build, exe) == 0)
    return CONTACTD_BUILD_PLUGIN_DIR;
#endif
  *strrchr(exe, '/') = '\0'; /* the kernel's path is absolute */
  int w = snprintf(buf, len, "%s/%s", exe, CONTACTD_PLUGIN_RELDIR);
  if (w < 0 || (size_t)w >= len) return CONTACTD_PLUGIN_DIR;
  char real[FE_PATH_MAX_BYTES]; /* without the "..", when it exists */
  if (realpath(buf, real) != NULL && strlen(real) < len)
    memcpy(buf, real, strlen(real) + 1);
  return buf;
}

static void store_notice(void *ctx, const char *line) {
  fe_log_printf(CD_LOG_WARN, NULL, "store: %s", line);
}

/* SIGHUP: the access log reopened (after a rotation by mv) and the key file
 * re-read (after it was replaced); either failing leaves the old one in
 * use. One line says what was done. */
static void reload(fe_server *srv, cs_keyring *keys, const fe_options *o) {
  char lerr[FE_STARTUP_ERR_MAX_BYTES] = "", line[FE_LOG_LINE_MAX_BYTES];
  char logpart[FE_LOG_LINE_MAX_BYTES / 2 - 8],
      keypart[FE_LOG_LINE_MAX_BYTES / 2 - 8];
  cs_error ke = {0};
  int lrc = fe_server_reopen_access_log(srv, lerr, sizeof(lerr));
  int krc = cs_keys_reload(keys, &ke);
  if (o->access_log == NULL || strcmp(o->access_log, "-") == 0)
    snprintf(logpart, sizeof(logpart), "no access log file to reopen");
  else if (lrc != 0)
    snprintf(logpart, sizeof(logpart),
             "access log NOT reopened (%.300s), still writing the old file",
             lerr);
  else
    snprintf(logpart, sizeof(logpart), "access log %.300s reopened",
             o->access_log);
  if (krc != 0)
    snprintf(keypart, sizeof(keypart),
             "keys NOT reloaded (%.300s), the old keys stay in force",
             ke.msg[0] != '\0' ? ke.msg : cs_strerror(krc));
  else
    snprintf(keypart, sizeof(keypart), "keys reloaded from %.300s (%zu keys)",
             cs_keys_path(keys), cs_keys_count(keys));
  snprintf(line, sizeof(line), "SIGHUP: %s; %s", logpart, keypart);
  fe_log_line(lrc != 0 || krc != 0 ? CD_LOG_ERROR : CD_LOG_INFO, NULL, line);
}

int main(int argc, char **argv) {
  char err[FE_STARTUP_ERR_MAX_BYTES] = "";
  static fe_options opts; /* large (the environment's options) */
  char plugins_buf[FE_PATH_MAX_BYTES];
  const char *plugins_default =
      default_plugins_dir(plugins_buf, sizeof(plugins_buf));
  int status = 1;
  fe_server *srv = NULL;
  cs_store *store = NULL;
  cs_keyring *keys = NULL;
  fe_router *router = NULL;
  fe_plugin_set *plugins = NULL;
  cs_error ce = {0};
  int rc;

  fe_options_init(&opts, plugins_default);
  if (fe_options_load(&opts, argc, argv, environ, err, sizeof(err)) != 0) {
    fprintf(stderr, "contactd: %s (see contactd --help)\n", err);
    return 2;
  }
  if (opts.help) {
    static char usage[FE_USAGE_MAX_BYTES];
    fe_options_usage(usage, sizeof(usage), plugins_default);
    fputs(usage, stdout);
    return 0;
  }
  if (opts.version) {
    printf("contactd %s (h2o %s, plugin API %d)\n", CONTACTD_VERSION,
           H2O_VERSION, CD_PLUGIN_API_VERSION);
    return 0;
  }
  for (size_t i = 0; i < opts.env_ignored_count; i++)
    fe_log_printf(CD_LOG_WARN, NULL, "%.*s names no option; ignored",
                  (int)strcspn(opts.env_ignored[i], "="), opts.env_ignored[i]);

  /* Every thread, the store's included, inherits this mask; the signals are
   * taken by sigwait below, never by a handler in a random thread. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (fe_server_create(&opts, &srv, err, sizeof(err)) != 0) {
    fe_log_line(CD_LOG_ERROR, NULL, err);
    return 1;
  }

  if (opts.durability == CS_DURABILITY_NONE)
    fe_log_line(CD_LOG_WARN, NULL,
                "--durability none: writes are answered before they reach the "
                "disk; a power loss or kernel crash LOSES recently "
                "acknowledged writes");

  cs_options so;
  memset(&so, 0, sizeof(so));
  so.durability = opts.durability;
  so.segment_bytes_max = opts.segment_bytes;
  so.snapshot_every_bytes = opts.snapshot_every_bytes;
  so.trash_ms = (int64_t)opts.trash_days * CS_DAY_MS;     /* 0: the default */
  so.changes_ms = (int64_t)opts.changes_days * CS_DAY_MS; /* 0: the default */
  so.shard = opts.shard;
  so.shard_set = opts.shard_set;
  so.standby = opts.follow != NULL;
  so.standby_ack = opts.standby_ack;
  so.standby_timeout_ms = opts.standby_timeout_ms;
  so.notice = store_notice;
  rc = cs_open(opts.data_dir, &so, &store, &ce);
  if (rc != 0) {
    fe_log_printf(CD_LOG_ERROR, NULL, "--data %s: %s", opts.data_dir,
                  ce.msg[0] != '\0' ? ce.msg : cs_strerror(rc));
    goto out;
  }
  rc = cs_keys_open(opts.data_dir, &keys, &ce);
  if (rc != 0) {
    fe_log_printf(CD_LOG_ERROR, NULL, "--data %s: keys: %s", opts.data_dir,
                  ce.msg[0] != '\0' ? ce.msg : cs_strerror(rc));
    goto out;
  }
  if (fe_keys_bootstrap(keys, opts.data_dir, err, sizeof(err)) != 0) {
    fe_log_line(CD_LOG_ERROR, NULL, err);
    goto out;
  }

  if (fe_router_create(&router) != 0 || fe_plugins_create(&plugins) != 0) {
    fe_log_line(CD_LOG_ERROR, NULL, "out of memory");
    goto out;
  }
  if (fe_plugins_load_dir(plugins, opts.plugins_dir, fe_server_host(srv), store,
                          router, err, sizeof(err)) != 0) {
    fe_log_line(CD_LOG_ERROR, NULL, err);
    goto out;
  }
  if (fe_plugins_count(plugins) == 0)
    fe_log_printf(CD_LOG_WARN, NULL,
                  "no plugins in %s; every request will be answered 404",
                  opts.plugins_dir);
  fe_server_set_plugins(srv, plugins);
  if (fe_server_set_routes(srv, router, keys, store, err, sizeof(err)) != 0 ||
      fe_server_start(srv, err, sizeof(err)) != 0) {
    fe_log_line(CD_LOG_ERROR, NULL, err);
    goto out;
  }

  for (size_t i = 0; i < fe_plugins_count(plugins); i++)
    fe_log_printf(CD_LOG_INFO, NULL, "plugin %s loaded",
                  fe_plugins_name(plugins, i));
  for (size_t i = 0; i < fe_server_listener_count(srv); i++)
    fe_log_printf(CD_LOG_INFO, NULL, "listening on %s",
                  fe_server_listener_url(srv, i));
  fe_log_printf(CD_LOG_INFO, NULL,
                "contactd %s ready (data %s, durability %s, %zu plugins)",
                CONTACTD_VERSION, opts.data_dir,
                opts.durability == CS_DURABILITY_FSYNC ? "fsync" : "none",
                fe_plugins_count(plugins));
  sd_notifyf(0, "READY=1\nSTATUS=serving on %s, data %s",
             fe_server_listener_url(srv, 0), opts.data_dir);

  int sig = 0;
  for (;;) {
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    reload(srv, keys, &opts);
  }
  fe_log_printf(CD_LOG_INFO, NULL,
                "%s: finishing in-flight requests (at most %u s)",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", opts.shutdown_timeout_s);
  sd_notifyf(0,
             "STOPPING=1\nSTATUS=stopping: finishing requests in flight "
             "(at most %u s)",
             opts.shutdown_timeout_s);
  status = 0;

out:
  /* Streamed answers end first, so that plugin threads making one are not
   * held by a slow client; then the plugins drain: held answers go out and
   * their own threads, which use the store, stop before the workers and the
   * store do. */
  fe_server_abort_streams(srv);
  fe_plugins_drain(plugins);
  fe_server_stop(srv);
  if (status == 0) sd_notify(0, "STATUS=stopping: closing the store");
  /* The store closes before the plugins go: closing joins the commit
   * thread, and a completion callback is plugin code that may still be
   * running (after its answer went out) when the last request is done. */
  if (store != NULL) {
    rc = cs_close(store, &ce);
    if (rc != 0) {
      fe_log_printf(CD_LOG_ERROR, NULL, "closing the store: %s",
                    ce.msg[0] != '\0' ? ce.msg : cs_strerror(rc));
      status = 1;
    } else if (status == 0) {
      fe_log_line(CD_LOG_INFO, NULL, "store closed; bye");
    }
  }
  fe_plugins_destroy(plugins);
  fe_router_destroy(router);
  if (keys != NULL) cs_keys_close(keys);
  fe_server_destroy(srv);
  return status;
}
