/*
 * fe_plugins.c: the plugin loader.
 *
 * A plugin's engine calls (cs_get, cs_search, ...) resolve against the
 * contactd executable, which exports the engine, so that every plugin works
 * on the one engine that opened the store.
 *
 * Versions: a plugin's table is as long as the cd_plugin of the header it
 * was built against, so a version-1 table ends before drain and metrics.
 * The loader reads api_version (the first member of every version), then
 * copies exactly the members that version has into a full-size cd_plugin
 * of its own, the rest zeroed; nothing else ever reads the plugin's table.
 */
#include "fe_plugins.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_limits.h"

typedef struct loaded {
  cd_plugin plugin; /* the table, copied by its version (see the top) */
  void *state;
  void *dl; /* NULL for a table added directly */
  char *origin;
  fe_target *targets;
  size_t target_count;
} loaded;

struct fe_plugin_set {
  loaded items[FE_PLUGINS_MAX];
  size_t count;
};

int fe_plugins_create(fe_plugin_set **out) {
  *out = calloc(1, sizeof(**out));
  return *out != NULL ? 0 : -1;
}

size_t fe_plugins_count(const fe_plugin_set *set) {
  return set->count;
}

const char *fe_plugins_name(const fe_plugin_set *set, size_t i) {
  return i < set->count ? set->items[i].plugin.name : NULL;
}

/* The bytes of a table of version v: its members end before drain in
 * version 1. */
static size_t table_bytes(uint32_t v) {
  return v == 1 ? offsetof(cd_plugin, drain) : sizeof(cd_plugin);
}

/* The route flags a table of version v may use. */
static unsigned route_flags_known(uint32_t v) {
  unsigned f = CD_ROUTE_AUTH | CD_ROUTE_WRITE;
  if (v >= 3) f |= CD_ROUTE_ADMIN | CD_ROUTE_BULK;
  return f;
}

int fe_plugins_add(fe_plugin_set *set, const cd_plugin *table,
                   const char *origin, const cd_host *host, cs_store *store,
                   fe_router *router, char *err, size_t errlen) {
  uint32_t version = table->api_version;
  if (version < CD_PLUGIN_API_OLDEST || version > CD_PLUGIN_API_VERSION) {
    snprintf(err, errlen,
             "plugin %s: built for plugin API version %u, this contactd "
             "loads versions %d to %d; rebuild it against this cd_plugin.h",
             origin, version, CD_PLUGIN_API_OLDEST, CD_PLUGIN_API_VERSION);
    return -1;
  }
  cd_plugin copy;
  memset(&copy, 0, sizeof(copy));
  memcpy(&copy, table, table_bytes(version));
  const cd_plugin *p = &copy;
  if (p->name == NULL || p->name[0] == '\0') {
    snprintf(err, errlen, "plugin %s: its table has no name", origin);
    return -1;
  }
  if (p->route_count > 0 && p->routes == NULL) {
    snprintf(err, errlen, "plugin %s (%s): route_count %zu but no routes",
             origin, p->name, p->route_count);
    return -1;
  }
  for (size_t i = 0; i < p->route_count; i++) {
    const cd_route *r = &p->routes[i];
    const char *why = NULL;
    if (r->handle == NULL)
      why = "has no handler";
    else if (r->flags & ~route_flags_known(version))
      why = "has a flag its plugin API version does not know";
    else if ((r->flags & CD_ROUTE_ADMIN) && (r->flags & CD_ROUTE_WRITE))
      why = "is both CD_ROUTE_ADMIN and CD_ROUTE_WRITE (an admin key is not "
            "a read-write key)";
    if (why != NULL) {
      snprintf(err, errlen, "plugin %s (%s): route %s %s %s", origin, p->name,
               r->method ? r->method : "?", r->pattern ? r->pattern : "?", why);
      return -1;
    }
  }
  if (set->count == FE_PLUGINS_MAX) {
    snprintf(err, errlen, "plugin %s: more than %d plugins", origin,
             FE_PLUGINS_MAX);
    return -1;
  }
  for (size_t i = 0; i < set->count; i++) {
    if (strcmp(set->items[i].plugin.name, p->name) == 0) {
      snprintf(err, errlen,
               "plugin %s: a plugin named %s is already loaded "
               "from %s",
               origin, p->name, set->items[i].origin);
      return -1;
    }
  }

  loaded *l = &set->items[set->count];
  memset(l, 0, sizeof(*l));
  l->plugin = copy;
  p = &l->plugin;
  l->origin = strdup(origin);
  l->targets =
      calloc(p->route_count > 0 ? p->route_count : 1, sizeof(fe_target));
  if (l->origin == NULL || l->targets == NULL) {
    snprintf(err, errlen, "plugin %s: out of memory", origin);
    goto fail;
  }

  if (p->create != NULL) {
    char msg[FE_PLUGIN_ERR_MAX_BYTES] = "";
    if (p->create(host, store, &l->state, msg, sizeof(msg)) != 0) {
      snprintf(err, errlen, "plugin %s (%s) failed to start: %s", origin,
               p->name, msg[0] != '\0' ? msg : "no reason given");
      goto fail;
    }
  }

  for (size_t i = 0; i < p->route_count; i++) {
    const cd_route *r = &p->routes[i];
    fe_target *t = &l->targets[i];
    t->handle = r->handle;
    t->state = l->state;
    t->plugin = p->name;
    char why[FE_ROUTE_ERR_MAX_BYTES];
    unsigned flags = r->flags;
    if (flags & (CD_ROUTE_WRITE | CD_ROUTE_ADMIN)) flags |= CD_ROUTE_AUTH;
    if (fe_router_add(router, r->method, r->pattern, flags, t, why,
                      sizeof(why)) != 0) {
      snprintf(err, errlen, "plugin %s (%s): %s", origin, p->name, why);
      /* Routes added before stay in the router pointing at targets we are
       * about to free; the caller gives up on the whole start then. */
      if (p->destroy != NULL) p->destroy(l->state);
      goto fail;
    }
  }
  l->target_count = p->route_count;
  set->count++;
  return 0;

fail:
  free(l->origin);
  free(l->targets);
  memset(l, 0, sizeof(*l));
  return -1;
}

static int is_plugin_file(const struct dirent *d) {
  size_t len = strlen(d->d_name);
  return d->d_name[0] != '.' && len > 3 &&
         strcmp(d->d_name + len - 3, ".so") == 0;
}

int fe_plugins_load_dir(fe_plugin_set *set, const char *dir,
                        const cd_host *host, cs_store *store, fe_router *router,
                        char *err, size_t errlen) {
  struct dirent **names = NULL;
  int n = scandir(dir, &names, is_plugin_file, alphasort);
  if (n < 0) {
    snprintf(err, errlen, "--plugins %s: %s", dir, strerror(errno));
    return -1;
  }

  int rc = 0;
  for (int i = 0; i < n; i++) {
    char path[FE_PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
    if (rc != 0) continue;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
      snprintf(err, errlen, "plugin %s: %s", path, dlerror());
      rc = -1;
      continue;
    }
    const cd_plugin *p = dlsym(dl, CD_PLUGIN_SYMBOL);
    if (p == NULL) {
      snprintf(err, errlen, "plugin %s: no symbol %s (not a contactd plugin)",
               path, CD_PLUGIN_SYMBOL);
      dlclose(dl);
      rc = -1;
      continue;
    }
    if (fe_plugins_add(set, p, path, host, store, router, err, errlen) != 0) {
      dlclose(dl);
      rc = -1;
      continue;
    }
    set->items[set->count - 1].dl = dl;
  }
  for (int i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

void fe_plugins_drain(fe_plugin_set *set) {
  if (set == NULL) return;
  for (size_t i = set->count; i-- > 0;) {
    loaded *l = &set->items[i];
    if (l->plugin.drain != NULL) l->plugin.drain(l->state);
  }
}

size_t fe_plugins_metrics(const fe_plugin_set *set, char **out) {
  size_t len = *out != NULL ? strlen(*out) : 0;
  if (set == NULL) return len;
  for (size_t i = 0; i < set->count; i++) {
    const loaded *l = &set->items[i];
    if (l->plugin.metrics == NULL) continue;
    /* A plugin out of memory returns 0 and leaves *out as it was: the
     * others still show. */
    size_t n = l->plugin.metrics(l->state, out);
    if (n != 0) len = n;
  }
  return len;
}

void fe_plugins_destroy(fe_plugin_set *set) {
  if (set == NULL) return;
  for (size_t i = set->count; i-- > 0;) {
    loaded *l = &set->items[i];
    if (l->plugin.destroy != NULL) l->plugin.destroy(l->state);
    free(l->targets);
    free(l->origin);
    if (l->dl != NULL) dlclose(l->dl);
  }
  free(set);
}
