/*
 * oa_routes.c: prints the route table of every plugin in a directory, for
 * test_openapi.c, which checks each route against the OpenAPI document.
 *
 * Usage: oa_routes DIR. One line a route, "METHOD PATTERN FLAGS PLUGIN",
 * for every *.so in DIR; exit 1 with a message when one cannot be loaded.
 * A process of its own because every plugin defines contactd_plugin, as
 * the openapi plugin linked into the test does; like contactd, it carries
 * the whole engine and exports it, so the plugins' engine symbols resolve.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "cd_plugin.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: oa_routes DIR\n");
    return 2;
  }
  DIR *dir = opendir(argv[1]);
  if (dir == NULL) {
    perror(argv[1]);
    return 1;
  }
  int rc = 0;
  for (struct dirent *e; (e = readdir(dir)) != NULL;) {
    size_t len = strlen(e->d_name);
    if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const cd_plugin *pl = dl ? dlsym(dl, CD_PLUGIN_SYMBOL) : NULL;
    if (pl == NULL) {
      fprintf(stderr, "%s: %s\n", path, dlerror());
      rc = 1;
      continue;
    }
    for (size_t i = 0; i < pl->route_count; i++)
      printf("%s %s %u %s\n", pl->routes[i].method, pl->routes[i].pattern,
             pl->routes[i].flags, pl->name);
    dlclose(dl);
  }
  closedir(dir);
  return rc;
}
