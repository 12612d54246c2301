/*
 * fe_plugins.h: finding, checking, starting and stopping plugins.
 *
 * Every *.so in the plugin directory is loaded, in name order, with
 * dlopen(RTLD_NOW | RTLD_LOCAL): an unresolved symbol is an error at start,
 * not a crash at the first request. A plugin whose table's api_version is
 * not one of CD_PLUGIN_API_OLDEST..CD_PLUGIN_API_VERSION is refused with
 * its version and the ones loaded named, and the server does not start; an
 * older table is read only as far as its version reaches (fe_plugins.c).
 * Routes go into the router with an fe_target as their payload.
 *
 * Life cycle: add (create), then, when the server begins to stop, drain;
 * destroy once no request and no store callback can reach a plugin.
 */
#ifndef FE_PLUGINS_H
#define FE_PLUGINS_H

#include <stddef.h>

#include "cd_plugin.h"
#include "fe_router.h"

/* What a route runs: the payload of every route in the router. */
typedef struct fe_target {
  cd_handler_fn handle;
  void *state;
  const char *plugin; /* the plugin's name */
} fe_target;

typedef struct fe_plugin_set fe_plugin_set;

int fe_plugins_create(fe_plugin_set **out);

/*
 * Starts one plugin from its table: checks the version and the table, calls
 * create(host, store), adds its routes to router. origin names where it came
 * from in messages (the file). On failure returns -1 with one line in err,
 * and the plugin is not part of the set (create is undone by destroy).
 */
int fe_plugins_add(fe_plugin_set *set, const cd_plugin *p, const char *origin,
                   const cd_host *host, cs_store *store, fe_router *router,
                   char *err, size_t errlen);

/* Loads every *.so of dir with fe_plugins_add. Stops at the first failure:
 * -1 with err naming the file. Plugins loaded before stay in the set. */
int fe_plugins_load_dir(fe_plugin_set *set, const char *dir,
                        const cd_host *host, cs_store *store, fe_router *router,
                        char *err, size_t errlen);

size_t fe_plugins_count(const fe_plugin_set *set);
const char *fe_plugins_name(const fe_plugin_set *set, size_t i);

/* Calls every plugin's drain (those that have one), in reverse order of
 * creation. Once, from the main thread, when the server begins to stop and
 * before the store closes. */
void fe_plugins_drain(fe_plugin_set *set);

/*
 * Appends every plugin's metrics (those that have the callback), in order
 * of creation, to *out as fe_metrics_render does: *out NULL or a malloc'd
 * NUL-terminated string; the result is its whole length. A plugin that
 * fails (out of memory) adds nothing and the others still add theirs.
 * Safe from any thread while the set lives.
 */
size_t fe_plugins_metrics(const fe_plugin_set *set, char **out);

/* Calls every destroy in reverse order of creation, unloads the files and
 * frees the set. The router's payloads point into the set: destroy the
 * router's users first. */
void fe_plugins_destroy(fe_plugin_set *set);

#endif
