/*
 * metrics.c: GET /metrics, Prometheus text exposition format 0.0.4.
 *
 * The front end renders its request counts and latencies, the process's
 * figures (process_*) and contactd_build_info (host->metrics); this plugin
 * adds the store's own figures from cs_stats_get, which is cheap and never
 * waits for a write, so a scrape cannot slow the API down. Counters end in
 * _total; sizes are in bytes, as Prometheus names want.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_plugin.h"

typedef struct mt_state {
  const cd_host *host;
  cs_store *store;
} mt_state;

static void mt_metric(FILE *f, const char *name, const char *type,
                      const char *help, uint64_t value) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name,
          type, name, value);
}

/* Writes the store's figures to f. */
static void mt_store(FILE *f, cs_store *store) {
  cs_stats s;
  memset(&s, 0, sizeof s);
  cs_stats_get(store, &s);
  mt_metric(f, "contactd_contacts", "gauge", "Live contacts stored.",
            s.contacts);
  mt_metric(f, "contactd_store_segments", "gauge",
            "Segment files in the store.", s.segments);
  mt_metric(f, "contactd_store_disk_bytes", "gauge",
            "Bytes on disk: segments, snapshot and manifest.", s.disk_bytes);
  mt_metric(f, "contactd_store_live_bytes", "gauge",
            "Bytes of log records that are current.", s.live_bytes);
  mt_metric(f, "contactd_store_garbage_bytes", "gauge",
            "Bytes of log records superseded or deleted.", s.garbage_bytes);
  uint64_t records = s.live_bytes + s.garbage_bytes;
  fprintf(f,
          "# HELP contactd_store_garbage_ratio Share of log bytes that "
          "compaction would reclaim.\n"
          "# TYPE contactd_store_garbage_ratio gauge\n"
          "contactd_store_garbage_ratio %.6f\n",
          records ? (double)s.garbage_bytes / (double)records : 0.0);
  mt_metric(f, "contactd_store_commits_total", "counter",
            "Records committed since the store was opened.", s.commits);
  mt_metric(f, "contactd_store_fsyncs_total", "counter",
            "Log syncs since the store was opened.", s.fsyncs);
  mt_metric(f, "contactd_store_index_bytes", "gauge",
            "Memory held by the indexes.", s.index_bytes);
  mt_metric(f, "contactd_store_trash_contacts", "gauge",
            "Deleted contacts kept in the trash.", s.trash_contacts);
  mt_metric(f, "contactd_store_idempotency_keys", "gauge",
            "Idempotency keys kept or in flight.", s.idem_keys);
  mt_metric(f, "contactd_store_idempotency_bytes", "gauge",
            "Memory held by the idempotency keys and their answers.",
            s.idem_bytes);
  mt_metric(f, "contactd_feed_changes", "gauge",
            "Changes the change feed keeps, all accounts.", s.changes);
  mt_metric(f, "contactd_feed_bytes", "gauge",
            "Memory held by the change feed.", s.changes_bytes);
  mt_metric(f, "contactd_store_snapshot_seq", "gauge",
            "Log sequence the newest snapshot covers (0: none).",
            s.snapshot_seq);
  mt_metric(f, "contactd_store_failed", "gauge",
            "1 when the store refuses writes after an I/O failure.",
            s.failed != 0);
  cs_repl_info r;
  cs_repl_get(store, &r);
  mt_metric(f, "contactd_role", "gauge",
            "0 primary, 1 standby, 2 fenced (engine/README.md Standby).",
            (uint64_t)r.role);
  mt_metric(f, "contactd_standby_readers", "gauge",
            "Standbys reading this store's log now.", r.readers);
  mt_metric(f, "contactd_standby_acked_seq", "gauge",
            "The highest record a standby acknowledged (0: none).",
            r.acked_seq);
  mt_metric(f, "contactd_standby_lag_records", "gauge",
            "Records durable here that no standby acknowledged yet.",
            r.lag_records);
  fprintf(f,
          "# HELP contactd_standby_lag_seconds Age of the oldest record no "
          "standby acknowledged.\n"
          "# TYPE contactd_standby_lag_seconds gauge\n"
          "contactd_standby_lag_seconds %.3f\n",
          (double)r.lag_ms / 1000.0);
  mt_metric(f, "contactd_standby_unavailable", "gauge",
            "1 while writes are refused: no standby acknowledged in time.",
            r.unavailable);
}

static int mt_handle(void *state, const cd_request *req, cd_response *res) {
  const mt_state *st = state;
  cs_store *store = req->store ? req->store : st->store;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) {
    st->host->error(res, 500, "internal", "internal error", NULL, 0);
    return CD_DONE;
  }
  if (st->host->metrics) {
    char *front = NULL;
    size_t front_len = st->host->metrics(st->host->ctx, &front);
    if (front) {
      fwrite(front, 1, front_len, f);
      if (front_len && front[front_len - 1] != '\n') fputc('\n', f);
      free(front);
    }
  }
  if (store) mt_store(f, store);
  if (fclose(f) != 0 || !buf) {
    free(buf);
    st->host->error(res, 500, "internal", "internal error", NULL, 0);
    return CD_DONE;
  }
  st->host->respond(res, 200, "text/plain; version=0.0.4; charset=utf-8", buf,
                    len);
  free(buf);
  return CD_DONE;
}

static int mt_create(const cd_host *host, cs_store *store, void **state_out,
                     char *errbuf, size_t errlen) {
  mt_state *st = malloc(sizeof *st);
  if (!st) {
    snprintf(errbuf, errlen, "metrics: out of memory");
    return -1;
  }
  st->host = host;
  st->store = store;
  *state_out = st;
  return 0;
}

static void mt_destroy(void *state) {
  free(state);
}

static const cd_route mt_routes[] = {
    {"GET", "/metrics", 0, mt_handle},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "metrics",
    .create = mt_create,
    .destroy = mt_destroy,
    .routes = mt_routes,
    .route_count = sizeof mt_routes / sizeof mt_routes[0],
};
