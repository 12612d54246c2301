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
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* The build's own plugin directory when it exists (running from the build
 * tree), else the installed one. */
static const char *default_plugins_dir(void) {
#ifdef CONTACTD_BUILD_PLUGIN_DIR
  struct stat st;
  if (stat(CONTACTD_BUILD_PLUGIN_DIR, &st) == 0 && S_ISDIR(st.st_mode))
    return CONTACTD_BUILD_PLUGIN_DIR;
#endif
  return CONTACTD_PLUGIN_DIR;
}

static void store_notice(void *ctx, const char *line) {
  fprintf(stderr, "contactd: store: %s\n", line);
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
  fe_options opts;
  const char *plugins_default = default_plugins_dir();
  int status = 1;
  fe_server *srv = NULL;
  cs_store *store = NULL;
  cs_keyring *keys = NULL;
  fe_router *router = NULL;
  fe_plugin_set *plugins = NULL;
  cs_error ce = {0};
  int rc;

  fe_options_init(&opts, plugins_default);
  if (fe_options_parse(&opts, argc, argv, err, sizeof(err)) != 0) {
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
    fprintf(stderr, "contactd: %s\n", err);
    return 1;
  }

  if (opts.durability == CS_DURABILITY_NONE)
    fprintf(stderr,
            "contactd: WARNING: --durability none: writes are answered before "
            "they reach the disk; a power loss or kernel crash LOSES recently "
            "acknowledged writes\n");

  cs_options so;
  memset(&so, 0, sizeof(so));
  so.durability = opts.durability;
  so.segment_bytes_max = opts.segment_bytes;
  so.snapshot_every_bytes = opts.snapshot_every_bytes;
  so.trash_ms = (int64_t)opts.trash_days * CS_DAY_MS;     /* 0: the default */
  so.changes_ms = (int64_t)opts.changes_days * CS_DAY_MS; /* 0: the default */
  so.notice = store_notice;
  rc = cs_open(opts.data_dir, &so, &store, &ce);
  if (rc != 0) {
    fprintf(stderr, "contactd: --data %s: %s\n", opts.data_dir,
            ce.msg[0] != '\0' ? ce.msg : cs_strerror(rc));
    goto out;
  }
  rc = cs_keys_open(opts.data_dir, &keys, &ce);
  if (rc != 0) {
    fprintf(stderr, "contactd: --data %s: keys: %s\n", opts.data_dir,
            ce.msg[0] != '\0' ? ce.msg : cs_strerror(rc));
    goto out;
  }
  if (fe_keys_bootstrap(keys, opts.data_dir, err, sizeof(err)) != 0) {
    fprintf(stderr, "contactd: %s\n", err);
    goto out;
  }

  if (fe_router_create(&router) != 0 || fe_plugins_create(&plugins) != 0) {
    fprintf(stderr, "contactd: out of memory\n");
    goto out;
  }
  if (fe_plugins_load_dir(plugins, opts.plugins_dir, fe_server_host(srv), store,
                          router, err, sizeof(err)) != 0) {
    fprintf(stderr, "contactd: %s\n", err);
    goto out;
  }
  if (fe_plugins_count(plugins) == 0)
    fprintf(stderr,
            "contactd: warning: no plugins in %s; every request "
            "will be answered 404\n",
            opts.plugins_dir);
  fe_server_set_plugins(srv, plugins);
  if (fe_server_set_routes(srv, router, keys, store, err, sizeof(err)) != 0 ||
      fe_server_start(srv, err, sizeof(err)) != 0) {
    fprintf(stderr, "contactd: %s\n", err);
    goto out;
  }

  for (size_t i = 0; i < fe_plugins_count(plugins); i++)
    fprintf(stderr, "contactd: plugin %s loaded\n",
            fe_plugins_name(plugins, i));
  for (size_t i = 0; i < fe_server_listener_count(srv); i++)
    fprintf(stderr, "contactd: listening on %s\n",
            fe_server_listener_url(srv, i));
  fprintf(stderr, "contactd %s ready (data %s, durability %s, %zu plugins)\n",
          CONTACTD_VERSION, opts.data_dir,
          opts.durability == CS_DURABILITY_FSYNC ? "fsync" : "none",
          fe_plugins_count(plugins));

  int sig = 0;
  for (;;) {
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    reload(srv, keys, &opts);
  }
  fprintf(stderr, "contactd: %s: finishing in-flight requests\n",
          sig == SIGTERM ? "SIGTERM" : "SIGINT");
  status = 0;

out:
  /* Streamed answers end first, so that plugin threads making one are not
   * held by a slow client; then the plugins drain: held answers go out and
   * their own threads, which use the store, stop before the workers and the
   * store do. */
  fe_server_abort_streams(srv);
  fe_plugins_drain(plugins);
  fe_server_stop(srv);
  /* The store closes before the plugins go: closing joins the commit
   * thread, and a completion callback is plugin code that may still be
   * running (after its answer went out) when the last request is done. */
  if (store != NULL) {
    rc = cs_close(store, &ce);
    if (rc != 0) {
      fprintf(stderr, "contactd: closing the store: %s\n",
              ce.msg[0] != '\0' ? ce.msg : cs_strerror(rc));
      status = 1;
    } else if (status == 0) {
      fprintf(stderr, "contactd: store closed; bye\n");
    }
  }
  fe_plugins_destroy(plugins);
  fe_router_destroy(router);
  if (keys != NULL) cs_keys_close(keys);
  fe_server_destroy(srv);
  return status;
}
