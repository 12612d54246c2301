/*
 * fe_metrics.c: per-route request counters and latency histograms, in
 * Prometheus text format.
 *
 * Statuses are counted in a flat array indexed by status - 100, so that
 * counting needs no lookup and no lock; only non-zero statuses are written
 * out. Latency buckets are fixed, in whole microseconds so that counting
 * is exact: from 10 us (a read served from memory takes about 20) to ten
 * seconds (a write stuck behind a slow disk), in 1-2.5-5 steps.
 *
 * The counters are kept in FE_METRICS_SHARDS copies, each thread counting
 * into its own (threads take shards in turn at their first request), so
 * that workers answering at once do not fight over the same cache lines;
 * a scrape sums the copies. Each counter is still atomic: threads past
 * FE_METRICS_SHARDS share.
 *
 * fe_metrics_render_process adds the process's own figures (fe_process.h)
 * and contactd_build_info, under the names Prometheus's client libraries
 * use, so that dashboards made for them work unchanged.
 */
#include "fe_metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_limits.h"

#define STATUS_FIRST 100
#define STATUS_COUNT 500 /* 100..599 */

static const uint64_t bucket_micros[] = {
    10,     25,      50,      100,     250,     500,    1000,
    2500,   5000,    10000,   25000,   50000,   100000, 250000,
    500000, 1000000, 2500000, 5000000, 10000000};
enum { BUCKET_COUNT = sizeof(bucket_micros) / sizeof(bucket_micros[0]) };

typedef struct slot {
  char *labels; /* method="...",route="...", escaped once at create; in
                   shard 0's slots only */
  _Atomic uint64_t status[STATUS_COUNT];
  _Atomic uint64_t other_status; /* outside 100..599: never, but counted */
  _Atomic uint64_t bucket[BUCKET_COUNT]; /* not cumulative; summed at render */
  _Atomic uint64_t count;
  _Atomic uint64_t sum_micros;
} slot;

struct fe_metrics {
  size_t route_count;
  /* Per shard, route_count + 1, the last for unmatched requests. */
  slot *slots[FE_METRICS_SHARDS];
  char edges[BUCKET_COUNT][FE_METRICS_EDGE_MAX_BYTES]; /* le="..." values */
};

typedef struct strbuf {
  char *p;
  size_t len, cap;
  bool failed;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(strbuf *b, const char *fmt, ...) {
  if (b->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = true;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap * 2 + (size_t)n + 1;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      b->failed = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
}

/* A label value with \, " and newline escaped, as the text format says;
 * the runs between them are copied whole. */
static void sb_label(strbuf *b, const char *v) {
  while (*v != '\0') {
    size_t run = strcspn(v, "\\\"\n");
    if (run > 0) sb_printf(b, "%.*s", (int)run, v);
    v += run;
    if (*v == '\0') break;
    sb_printf(b, "%s", *v == '\n' ? "\\n" : *v == '"' ? "\\\"" : "\\\\");
    v++;
  }
}

/* The label text of a slot, escaped; NULL when out of memory. */
static char *slot_labels(const char *method, const char *route) {
  strbuf b = {.cap = 64};
  b.p = malloc(b.cap);
  if (b.p == NULL) return NULL;
  sb_printf(&b, "method=\"");
  sb_label(&b, method);
  sb_printf(&b, "\",route=\"");
  sb_label(&b, route);
  sb_printf(&b, "\"");
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

int fe_metrics_create(size_t route_count, const char *const *methods,
                      const char *const *patterns, fe_metrics **out) {
  fe_metrics *m = calloc(1, sizeof(*m));
  if (m == NULL) return -1;
  m->route_count = route_count;
  for (int sh = 0; sh < FE_METRICS_SHARDS; sh++) {
    m->slots[sh] = calloc(route_count + 1, sizeof(slot));
    if (m->slots[sh] == NULL) {
      fe_metrics_destroy(m);
      return -1;
    }
  }
  for (size_t i = 0; i <= route_count; i++) {
    slot *s = &m->slots[0][i];
    s->labels = slot_labels(i < route_count ? methods[i] : "-",
                            i < route_count ? patterns[i] : "unmatched");
    if (s->labels == NULL) {
      fe_metrics_destroy(m);
      return -1;
    }
  }
  for (int bk = 0; bk < BUCKET_COUNT; bk++)
    snprintf(m->edges[bk], sizeof(m->edges[bk]), "%g",
             (double)bucket_micros[bk] / 1e6);
  *out = m;
  return 0;
}

void fe_metrics_destroy(fe_metrics *m) {
  if (m == NULL) return;
  for (size_t i = 0; m->slots[0] != NULL && i <= m->route_count; i++)
    free(m->slots[0][i].labels);
  for (int sh = 0; sh < FE_METRICS_SHARDS; sh++)
    free(m->slots[sh]);
  free(m);
}

/* The calling thread's shard, taken in turn at its first count. */
static unsigned my_shard(void) {
  static atomic_uint next_shard;
  static _Thread_local unsigned shard_plus_one;
  if (shard_plus_one == 0)
    shard_plus_one =
        atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) %
            FE_METRICS_SHARDS +
        1;
  return shard_plus_one - 1;
}

void fe_metrics_observe(fe_metrics *m, size_t route, int status,
                        uint64_t micros) {
  slot *s =
      &m->slots[my_shard()][route < m->route_count ? route : m->route_count];
  if (status >= STATUS_FIRST && status < STATUS_FIRST + STATUS_COUNT)
    atomic_fetch_add_explicit(&s->status[status - STATUS_FIRST], 1,
                              memory_order_relaxed);
  else
    atomic_fetch_add_explicit(&s->other_status, 1, memory_order_relaxed);
  for (int b = 0; b < BUCKET_COUNT; b++) {
    if (micros <= bucket_micros[b]) {
      atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
      break;
    }
  }
  atomic_fetch_add_explicit(&s->sum_micros, micros, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

static uint64_t load(const _Atomic uint64_t *v) {
  return atomic_load_explicit(v, memory_order_relaxed);
}

/* A counter of slot i summed over the shards: at is its offset in a
 * slot. */
static uint64_t sum(const fe_metrics *m, size_t i, size_t at) {
  uint64_t n = 0;
  for (int sh = 0; sh < FE_METRICS_SHARDS; sh++)
    n += load((const _Atomic uint64_t *)((const char *)&m->slots[sh][i] + at));
  return n;
}

/* A buffer holding *buf's text, to append to; false when out of memory. */
static bool sb_begin(strbuf *b, char *const *buf) {
  memset(b, 0, sizeof(*b));
  size_t had = *buf != NULL ? strlen(*buf) : 0;
  b->cap = had + FE_METRICS_CHUNK_BYTES;
  b->p = malloc(b->cap);
  if (b->p == NULL) return false;
  if (had > 0) memcpy(b->p, *buf, had);
  b->len = had;
  b->p[b->len] = '\0';
  return true;
}

/* Hands the text to *buf (freeing the old one) and returns its length; 0
 * with *buf untouched when a step failed. */
static size_t sb_end(strbuf *b, char **buf) {
  if (b->failed) {
    free(b->p);
    return 0;
  }
  free(*buf);
  *buf = b->p;
  return b->len;
}

size_t fe_metrics_render(const fe_metrics *m, char **buf) {
  strbuf b;
  if (!sb_begin(&b, buf)) return 0;

  sb_printf(&b, "# HELP contactd_http_requests_total HTTP requests answered, "
                "by route and status.\n"
                "# TYPE contactd_http_requests_total counter\n");
  for (size_t i = 0; i <= m->route_count; i++) {
    const slot *s = &m->slots[0][i];
    for (int st = 0; st < STATUS_COUNT; st++) {
      uint64_t n = sum(m, i, offsetof(slot, status) + st * sizeof(uint64_t));
      if (n == 0) continue;
      sb_printf(&b,
                "contactd_http_requests_total{%s,status=\"%d\"} %" PRIu64 "\n",
                s->labels, st + STATUS_FIRST, n);
    }
    uint64_t other = sum(m, i, offsetof(slot, other_status));
    if (other != 0) {
      sb_printf(
          &b, "contactd_http_requests_total{%s,status=\"other\"} %" PRIu64 "\n",
          s->labels, other);
    }
  }

  sb_printf(&b, "# HELP contactd_http_request_duration_seconds Time from "
                "request to answer, by route.\n"
                "# TYPE contactd_http_request_duration_seconds histogram\n");
  for (size_t i = 0; i <= m->route_count; i++) {
    const slot *s = &m->slots[0][i];
    uint64_t cumulative = 0;
    uint64_t count = sum(m, i, offsetof(slot, count));
    for (int bk = 0; bk < BUCKET_COUNT; bk++) {
      cumulative += sum(m, i, offsetof(slot, bucket) + bk * sizeof(uint64_t));
      sb_printf(&b,
                "contactd_http_request_duration_seconds_bucket{%s,le=\"%s\"} "
                "%" PRIu64 "\n",
                s->labels, m->edges[bk], cumulative);
    }
    /* +Inf equals _count by definition; read count once for both. */
    if (count < cumulative) count = cumulative;
    sb_printf(&b,
              "contactd_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} "
              "%" PRIu64 "\n"
              "contactd_http_request_duration_seconds_sum{%s} %.6f\n"
              "contactd_http_request_duration_seconds_count{%s} %" PRIu64 "\n",
              s->labels, count, s->labels,
              (double)sum(m, i, offsetof(slot, sum_micros)) / 1e6, s->labels,
              count);
  }

  return sb_end(&b, buf);
}

static void sb_metric(strbuf *b, const char *name, const char *type,
                      const char *help) {
  sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

size_t fe_metrics_render_process(const fe_process_stats *p,
                                 const fe_build_info *info, char **buf) {
  strbuf b;
  if (!sb_begin(&b, buf)) return 0;
  if (p->have_stat) {
    sb_metric(&b, "process_cpu_seconds_total", "counter",
              "Total user and system CPU time spent in seconds.");
    sb_printf(&b, "process_cpu_seconds_total %.2f\n", p->cpu_seconds);
    sb_metric(&b, "process_resident_memory_bytes", "gauge",
              "Resident memory size in bytes.");
    sb_printf(&b, "process_resident_memory_bytes %" PRIu64 "\n",
              p->resident_bytes);
    sb_metric(&b, "process_virtual_memory_bytes", "gauge",
              "Virtual memory size in bytes.");
    sb_printf(&b, "process_virtual_memory_bytes %" PRIu64 "\n",
              p->virtual_bytes);
    sb_metric(&b, "process_start_time_seconds", "gauge",
              "Start time of the process since unix epoch in seconds.");
    sb_printf(&b, "process_start_time_seconds %.2f\n", p->start_time_seconds);
  }
  if (p->have_fds) {
    sb_metric(&b, "process_open_fds", "gauge",
              "Number of open file descriptors.");
    sb_printf(&b, "process_open_fds %" PRIu64 "\n", p->open_fds);
  }
  if (p->have_max_fds) {
    sb_metric(&b, "process_max_fds", "gauge",
              "Maximum number of open file descriptors.");
    if (p->max_fds == UINT64_MAX)
      sb_printf(&b, "process_max_fds +Inf\n");
    else
      sb_printf(&b, "process_max_fds %" PRIu64 "\n", p->max_fds);
  }
  sb_metric(&b, "contactd_build_info", "gauge",
            "The running build: its version, commit, plugin API and h2o; "
            "always 1.");
  sb_printf(&b, "contactd_build_info{version=\"");
  sb_label(&b, info->version);
  sb_printf(&b, "\",commit=\"");
  sb_label(&b, info->commit);
  sb_printf(&b, "\",plugin_api=\"%d\",h2o=\"", info->plugin_api);
  sb_label(&b, info->h2o);
  sb_printf(&b, "\"} 1\n");
  return sb_end(&b, buf);
}
