/*
 * fe_metrics.h: request counts and latency histograms per route.
 *
 * One slot per route plus one for requests that matched none (404, 405, and
 * errors h2o answered itself). Observing is a few relaxed atomic adds, safe
 * from any thread; rendering reads the counters without stopping writers, so
 * a scrape may see one request counted in the totals and not yet in a bucket.
 */
#ifndef FE_METRICS_H
#define FE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "fe_process.h"

typedef struct fe_metrics fe_metrics;

/* The slot for requests that matched no route. */
#define FE_METRICS_UNMATCHED SIZE_MAX

/* methods[i] and patterns[i] label route i; both are copied. */
int fe_metrics_create(size_t route_count, const char *const *methods,
                      const char *const *patterns, fe_metrics **out);
void fe_metrics_destroy(fe_metrics *m);

/* Counts one answered request of route (an index, or FE_METRICS_UNMATCHED)
 * with its status and its latency in microseconds. */
void fe_metrics_observe(fe_metrics *m, size_t route, int status,
                        uint64_t micros);

/*
 * Appends the Prometheus text format of every counter to *buf: *buf is NULL
 * (a new buffer) or a malloc'd NUL-terminated string to append to. On
 * success *buf is malloc'd and NUL-terminated, and the return value is its
 * whole length; on failure *buf is left as it was and 0 is returned.
 */
size_t fe_metrics_render(const fe_metrics *m, char **buf);

/* What contactd_build_info says; every string non-NULL ("unknown" when the
 * build does not know). */
typedef struct fe_build_info {
  const char *version; /* the CMake project version */
  const char *commit;  /* git describe at configure time */
  const char *h2o;     /* H2O_VERSION */
  int plugin_api;      /* CD_PLUGIN_API_VERSION */
} fe_build_info;

/* Appends, as fe_metrics_render does, the process_* metrics p has (each
 * group only when read) and contactd_build_info{...} 1. */
size_t fe_metrics_render_process(const fe_process_stats *p,
                                 const fe_build_info *info, char **buf);

#endif
