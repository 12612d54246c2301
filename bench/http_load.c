/*
 * http_load.c: loads the HTTP benchmark's data set into a running contactd
 * and writes the request lists the load generators replay (bench_http.sh).
 *
 * The contacts are the engine benchmark's (bench/harness.h: contact i is a
 * pure function of the seed and i; unique emails, Zipf-shared companies,
 * names from syllable lists with some non-ASCII ones). They go in through
 * the API itself, POST /contacts/batch with 1000 contacts a request, over
 * a few HTTP/1.1 keep-alive connections (plain blocking sockets, one
 * thread each) so that the store's group commit batches the batches.
 *
 *   http_load --port P --key KEY --count N --out DIR
 *             [--host 127.0.0.1] [--seed 42] [--conns 4] [--batch 1000]
 *             [--sample N]
 *
 * Writes into DIR (paths are percent-encoded, ready for a request line):
 *   ids.txt        ids of --sample contacts spread over the data set, from
 *                  the batch answers, in a shuffled order: GET /contacts/{id}
 *   emails.txt     the same contacts' emails, same order: an exact search
 *                  with exactly one result (emails are unique)
 *   companies.txt  companies with at least 100 contacts, the least common
 *                  first (at most 100 of them), as "count<TAB>name": a
 *                  search that fills one page of 100 contacts
 *   queries.txt    the same contacts as ids.txt, one POST /contacts/query
 *                  body a line: {"filter": email eq the contact's email},
 *                  whose answer is exactly that one contact
 * and prints one summary line. Exit 0 when every contact was stored, 1 when
 * any was refused or a request failed, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define LOAD_BATCH_MAX 1000 /* CS_BATCH_MAX, the API's batch limit */
#define LOAD_CONNS_MAX 32
#define LOAD_PAGE 100 /* the API's default page size */
#define LOAD_COMPANIES_OUT 100
/* A generated contact is about 330 bytes of JSON; escapes may double it. */
#define LOAD_CONTACT_JSON_MAX 2048

typedef struct load_opts {
  const char *host;
  int port;
  const char *key;
  uint64_t count;
  uint64_t seed;
  int conns;
  int batch;
  uint64_t sample;
  const char *out;
} load_opts;

typedef struct load_state {
  const load_opts *o;
  bh_gen *gen;
  atomic_uint_fast64_t next_batch;
  atomic_uint_fast64_t stored;
  atomic_uint_fast64_t refused;
  atomic_int failed;
  uint64_t stride;          /* contact i is sampled when i % stride == 0 */
  uint64_t *ids;            /* ids[i / stride] */
  uint32_t *company_counts; /* per thread: conns * BH_COMPANIES */
} load_state;

typedef struct load_thread {
  load_state *st;
  int index;
  pthread_t tid;
} load_thread;

/* ------------------------------------------------------------- JSON out */

/* Appends s as a JSON string at p (at most end); NULL when it does not fit. */
static char *json_string(char *p, char *end, const char *s) {
  if (end - p < 2) return NULL;
  *p++ = '"';
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (end - p < 8) return NULL;
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      p += sprintf(p, "\\u%04x", c);
    } else {
      *p++ = (char)c;
    }
  }
  if (end - p < 1) return NULL;
  *p++ = '"';
  return p;
}

/* The create body of one contact (no id or timestamps: the server sets
 * them). Returns the end of what was written, or NULL. */
static char *contact_body(char *p, char *end, const bh_contact *c) {
  const char *const *names = bh_field_names;
  const char *values[BH_FIELDS];
  bh_contact_values(c, values);
  for (size_t f = 0; f < BH_FIELDS; f++) {
    if (end - p < 32) return NULL;
    p += sprintf(p, "%s\"%s\":", f == 0 ? "{" : ",", names[f]);
    if ((p = json_string(p, end, values[f])) == NULL) return NULL;
  }
  if (end - p < 1) return NULL;
  *p++ = '}';
  return p;
}

/* Percent-encodes s for a query-string value into out (cap bytes). */
static void url_encode(const char *s, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;
  for (; *s != '\0' && n + 4 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
        c == '~' || c == '@') {
      out[n++] = (char)c;
    } else {
      out[n++] = '%';
      out[n++] = hex[c >> 4];
      out[n++] = hex[c & 15];
    }
  }
  out[n] = '\0';
}

/* ----------------------------------------------------------- HTTP/1.1 */

static int connect_to(const load_opts *o) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)o->port);
  if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1 ||
      connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int write_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads one response with a content-length into *buf (grown as needed).
 * Returns the status, or -1; *body points at the body in *buf. */
static int read_response(int fd, char **buf, size_t *cap, char **body,
                         size_t *body_len) {
  size_t have = 0;
  char *hdr_end = NULL;
  for (;;) {
    if (have + 4096 > *cap) {
      size_t ncap = *cap * 2 + 8192;
      char *nb = realloc(*buf, ncap);
      if (nb == NULL) return -1;
      *buf = nb;
      *cap = ncap;
    }
    ssize_t n = read(fd, *buf + have, *cap - have - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    have += (size_t)n;
    (*buf)[have] = '\0';
    if ((hdr_end = strstr(*buf, "\r\n\r\n")) != NULL) break;
  }
  int status = 0;
  if (sscanf(*buf, "HTTP/1.%*d %d", &status) != 1) return -1;
  size_t clen = 0;
  bool found = false;
  for (char *line = strstr(*buf, "\r\n"); line != NULL && line < hdr_end;
       line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "content-length:", 15) == 0) {
      clen = strtoull(line + 17, NULL, 10);
      found = true;
      break;
    }
  }
  if (!found) return -1;
  size_t hlen = (size_t)(hdr_end + 4 - *buf);
  if (hlen + clen + 1 > *cap) {
    char *nb = realloc(*buf, hlen + clen + 1);
    if (nb == NULL) return -1;
    *buf = nb;
    *cap = hlen + clen + 1;
  }
  while (have < hlen + clen) {
    ssize_t n = read(fd, *buf + have, hlen + clen - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    have += (size_t)n;
  }
  (*buf)[hlen + clen] = '\0';
  *body = *buf + hlen;
  *body_len = clen;
  return status;
}

/* Walks {"results":[...]} in order: for item k, ids[k] is its id, or 0 when
 * the item is an error. Returns the number of items, or -1 when the body is
 * not that shape. Strings are skipped with their escapes so braces inside
 * messages do not count. */
static long parse_results(const char *p, const char *end, uint64_t *ids,
                          long max) {
  const char *r = strstr(p, "\"results\"");
  if (r == NULL) return -1;
  p = strchr(r, '[');
  if (p == NULL) return -1;
  p++;
  long items = 0;
  int depth = 1;
  while (p < end && depth > 0) {
    char c = *p;
    if (c == '"') {
      for (p++; p < end && *p != '"'; p++)
        if (*p == '\\') p++;
      p++;
      continue;
    }
    if (c == '{' || c == '[') {
      depth++;
      if (depth == 2 && c == '{') {
        /* An item: its first key says which it is. */
        const char *k = p + 1;
        while (k < end && (*k == ' ' || *k == '\n'))
          k++;
        if (items >= max) return -1;
        ids[items] = 0;
        if (strncmp(k, "\"id\"", 4) == 0) {
          const char *v = strchr(k + 4, '"');
          if (v != NULL) ids[items] = strtoull(v + 1, NULL, 10);
        }
        items++;
      }
    } else if (c == '}' || c == ']') {
      depth--;
    }
    p++;
  }
  return depth == 0 ? items : -1;
}

/* ------------------------------------------------------------- loading */

static void *load_main(void *arg) {
  load_thread *t = arg;
  load_state *st = t->st;
  const load_opts *o = st->o;
  uint32_t *counts = st->company_counts + (size_t)t->index * BH_COMPANIES;
  size_t body_cap = (size_t)o->batch * LOAD_CONTACT_JSON_MAX + 64;
  char *req = malloc(body_cap + 512);
  char *rbuf = NULL;
  size_t rcap = 0;
  uint64_t *ids = malloc(sizeof(uint64_t) * (size_t)o->batch);
  int fd = connect_to(o);
  if (req == NULL || ids == NULL || fd < 0) {
    fprintf(stderr, "http_load: cannot connect to %s:%d: %s\n", o->host,
            o->port, strerror(errno));
    atomic_store(&st->failed, 1);
    goto out;
  }
  uint64_t batches = (o->count + (uint64_t)o->batch - 1) / (uint64_t)o->batch;
  for (;;) {
    if (atomic_load(&st->failed)) break;
    uint64_t b = atomic_fetch_add(&st->next_batch, 1);
    if (b >= batches) break;
    uint64_t first = b * (uint64_t)o->batch;
    uint64_t last = first + (uint64_t)o->batch;
    if (last > o->count) last = o->count;

    /* The body goes after room for the head, which is written last. */
    char *body = req + 512, *p = body, *end = req + body_cap + 512;
    p += sprintf(p, "{\"contacts\":[");
    for (uint64_t i = first; i < last; i++) {
      bh_contact c;
      bh_gen_contact(st->gen, i, &c);
      counts[c.company_index]++;
      if (i > first) *p++ = ',';
      p = contact_body(p, end - 4, &c);
      if (p == NULL) {
        fprintf(stderr, "http_load: contact %llu does not fit\n",
                (unsigned long long)i);
        atomic_store(&st->failed, 1);
        goto out;
      }
    }
    p += sprintf(p, "]}");
    size_t body_len = (size_t)(p - body);
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "POST /contacts/batch HTTP/1.1\r\nHost: %s:%d\r\n"
                      "x-api-key: %s\r\ncontent-type: application/json\r\n"
                      "content-length: %zu\r\n\r\n",
                      o->host, o->port, o->key, body_len);
    if (hl <= 0 || (size_t)hl >= sizeof(head)) {
      atomic_store(&st->failed, 1);
      break;
    }
    memcpy(body - hl, head, (size_t)hl);
    char *rbody = NULL;
    size_t rlen = 0;
    int status;
    if (write_all(fd, body - hl, body_len + (size_t)hl) != 0 ||
        (status = read_response(fd, &rbuf, &rcap, &rbody, &rlen)) < 0) {
      fprintf(stderr, "http_load: batch %llu: connection failed\n",
              (unsigned long long)b);
      atomic_store(&st->failed, 1);
      break;
    }
    if (status != 200) {
      fprintf(stderr, "http_load: batch %llu: status %d: %.300s\n",
              (unsigned long long)b, status, rbody);
      atomic_store(&st->failed, 1);
      break;
    }
    long n = parse_results(rbody, rbody + rlen, ids, o->batch);
    if (n != (long)(last - first)) {
      fprintf(stderr, "http_load: batch %llu: %ld results for %llu contacts\n",
              (unsigned long long)b, n, (unsigned long long)(last - first));
      atomic_store(&st->failed, 1);
      break;
    }
    uint64_t ok = 0;
    for (long k = 0; k < n; k++) {
      uint64_t i = first + (uint64_t)k;
      if (ids[k] != 0)
        ok++;
      else if (atomic_load(&st->refused) < 3)
        fprintf(stderr, "http_load: contact %llu refused\n",
                (unsigned long long)i);
      if (i % st->stride == 0) st->ids[i / st->stride] = ids[k];
    }
    atomic_fetch_add(&st->stored, ok);
    atomic_fetch_add(&st->refused, (uint64_t)n - ok);
  }
out:
  if (fd >= 0) close(fd);
  free(req);
  free(rbuf);
  free(ids);
  return NULL;
}

/* ------------------------------------------------------------- outputs */

typedef struct company_count {
  uint32_t index;
  uint32_t count;
} company_count;

static int by_count(const void *a, const void *b) {
  const company_count *x = a, *y = b;
  if (x->count != y->count) return x->count < y->count ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

static FILE *open_out(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f == NULL) fprintf(stderr, "http_load: %s: %s\n", path, strerror(errno));
  return f;
}

static int write_outputs(load_state *st) {
  const load_opts *o = st->o;
  uint64_t n = (o->count + st->stride - 1) / st->stride;
  /* A shuffled order, so consecutive requests touch unrelated records. */
  uint64_t *order = malloc(sizeof(uint64_t) * n);
  if (order == NULL) return -1;
  for (uint64_t k = 0; k < n; k++)
    order[k] = k;
  bh_rng rng;
  bh_rng_seed(&rng, o->seed ^ 0x5eedu);
  for (uint64_t k = n; k > 1; k--) {
    uint64_t j = bh_rng_below(&rng, k);
    uint64_t tmp = order[k - 1];
    order[k - 1] = order[j];
    order[j] = tmp;
  }
  FILE *fi = open_out(o->out, "ids.txt");
  FILE *fe = open_out(o->out, "emails.txt");
  FILE *fc = open_out(o->out, "companies.txt");
  FILE *fq = open_out(o->out, "queries.txt");
  int rc = -1;
  if (fi == NULL || fe == NULL || fc == NULL || fq == NULL) goto out;
  for (uint64_t k = 0; k < n; k++) {
    uint64_t slot = order[k];
    if (st->ids[slot] == 0) continue;
    bh_contact c;
    bh_gen_contact(st->gen, slot * st->stride, &c);
    char enc[512];
    url_encode(c.email, enc, sizeof(enc));
    fprintf(fi, "%020llu\n", (unsigned long long)st->ids[slot]);
    fprintf(fe, "%s\n", enc);
    char q[1024], *end = q;
    end += sprintf(end, "{\"filter\":{\"field\":\"email\",\"op\":\"eq\","
                        "\"value\":");
    end = json_string(end, q + sizeof(q) - 3, c.email);
    if (end == NULL) goto out;
    fprintf(fq, "%.*s}}\n", (int)(end - q), q);
  }

  /* Company sizes: summed per-thread counts; names from any member. */
  company_count *cc = calloc(BH_COMPANIES, sizeof(*cc));
  uint64_t *member = calloc(BH_COMPANIES, sizeof(uint64_t));
  if (cc == NULL || member == NULL) {
    free(cc);
    free(member);
    goto out;
  }
  for (uint32_t c = 0; c < BH_COMPANIES; c++) {
    cc[c].index = c;
    for (int t = 0; t < o->conns; t++)
      cc[c].count += st->company_counts[(size_t)t * BH_COMPANIES + c];
  }
  for (uint64_t i = 0; i < o->count; i++) {
    bh_contact c;
    bh_gen_contact(st->gen, i, &c);
    if (member[c.company_index] == 0) member[c.company_index] = i + 1;
  }
  qsort(cc, BH_COMPANIES, sizeof(*cc), by_count);
  int written = 0;
  for (uint32_t k = 0; k < BH_COMPANIES && written < LOAD_COMPANIES_OUT; k++) {
    if (cc[k].count < LOAD_PAGE) continue;
    bh_contact c;
    bh_gen_contact(st->gen, member[cc[k].index] - 1, &c);
    char enc[512];
    url_encode(c.company, enc, sizeof(enc));
    fprintf(fc, "%u\t%s\n", cc[k].count, enc);
    written++;
  }
  free(cc);
  free(member);
  if (written == 0)
    fprintf(stderr, "http_load: no company has %d contacts; load more\n",
            LOAD_PAGE);
  rc = written > 0 ? 0 : -1;
out:
  if (fi != NULL) fclose(fi);
  if (fe != NULL) fclose(fe);
  if (fc != NULL) fclose(fc);
  if (fq != NULL) fclose(fq);
  free(order);
  return rc;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f) {
  fprintf(f, "usage: http_load --port P --key KEY --count N --out DIR\n"
             "                 [--host 127.0.0.1] [--seed 42] [--conns 4]\n"
             "                 [--batch 1000] [--sample 10000]\n");
}

int main(int argc, char **argv) {
  load_opts o = {.host = "127.0.0.1",
                 .seed = 42,
                 .conns = 4,
                 .batch = LOAD_BATCH_MAX,
                 .sample = 10000};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    }
    if (v == NULL) {
      usage(stderr);
      return 2;
    }
    i++;
    if (strcmp(a, "--host") == 0)
      o.host = v;
    else if (strcmp(a, "--port") == 0)
      o.port = atoi(v);
    else if (strcmp(a, "--key") == 0)
      o.key = v;
    else if (strcmp(a, "--count") == 0)
      o.count = strtoull(v, NULL, 10);
    else if (strcmp(a, "--seed") == 0)
      o.seed = strtoull(v, NULL, 10);
    else if (strcmp(a, "--conns") == 0)
      o.conns = atoi(v);
    else if (strcmp(a, "--batch") == 0)
      o.batch = atoi(v);
    else if (strcmp(a, "--sample") == 0)
      o.sample = strtoull(v, NULL, 10);
    else if (strcmp(a, "--out") == 0)
      o.out = v;
    else {
      usage(stderr);
      return 2;
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.key == NULL || o.count == 0 ||
      o.out == NULL || o.conns < 1 || o.conns > LOAD_CONNS_MAX || o.batch < 1 ||
      o.batch > LOAD_BATCH_MAX || o.sample == 0) {
    usage(stderr);
    return 2;
  }

  load_state st;
  memset(&st, 0, sizeof(st));
  st.o = &o;
  st.gen = bh_gen_create(o.seed);
  st.stride = o.count / o.sample > 0 ? o.count / o.sample : 1;
  st.ids = calloc(o.count / st.stride + 1, sizeof(uint64_t));
  st.company_counts = calloc((size_t)o.conns * BH_COMPANIES, sizeof(uint32_t));
  load_thread *threads = calloc((size_t)o.conns, sizeof(*threads));
  if (st.gen == NULL || st.ids == NULL || st.company_counts == NULL ||
      threads == NULL) {
    fprintf(stderr, "http_load: out of memory\n");
    return 1;
  }

  uint64_t t0 = bh_now_ns();
  int started = 0;
  for (int t = 0; t < o.conns; t++) {
    threads[t].st = &st;
    threads[t].index = t;
    if (pthread_create(&threads[t].tid, NULL, load_main, &threads[t]) != 0)
      break;
    started++;
  }
  for (int t = 0; t < started; t++)
    pthread_join(threads[t].tid, NULL);
  double secs = bh_seconds(t0, bh_now_ns());

  uint64_t stored = atomic_load(&st.stored);
  uint64_t refused = atomic_load(&st.refused);
  int rc = atomic_load(&st.failed) || refused > 0 || stored != o.count ? 1 : 0;
  if (write_outputs(&st) != 0) rc = 1;
  printf("loaded %llu contacts (%llu refused) in %.1f s, %.0f contacts/s, "
         "over %d connections, %d a batch\n",
         (unsigned long long)stored, (unsigned long long)refused, secs,
         secs > 0 ? (double)stored / secs : 0.0, o.conns, o.batch);
  bh_gen_destroy(st.gen);
  free(st.ids);
  free(st.company_counts);
  free(threads);
  return rc;
}
