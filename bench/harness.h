/*
 * harness.h: what every benchmark in bench/ shares.
 *
 * A benchmark here is a program that measures contactd beside a baseline in
 * the same run on the same machine, repeats each measurement, and prints one
 * table of medians with the ratio and the target it is held to. These
 * machines are shared and noisy, so only numbers measured side by side in one
 * run are compared, and only medians are reported.
 *
 * The harness gives each program:
 *   - a monotonic clock, medians, and the process's resident memory;
 *   - the bytes a directory takes on disk (what du reports);
 *   - a small, fast, seedable random generator;
 *   - the contact generator: contact number i of a data set is a pure
 *     function of (seed, i), so any thread can make any contact without
 *     shared state and two runs with one seed load identical data;
 *   - JSON serialization of a generated contact (the raw size the stored
 *     bytes are compared against);
 *   - the result table, printed as Markdown so it can be pasted into a
 *     README as it is.
 */
#ifndef BENCH_HARNESS_H
#define BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------- measuring */

/* Nanoseconds on the monotonic clock. */
uint64_t bh_now_ns(void);
/* Seconds between two bh_now_ns readings. */
double bh_seconds(uint64_t from_ns, uint64_t to_ns);

/* The median of n values (n > 0); v is sorted in place. */
double bh_median(double *v, size_t n);

/* Resident set of this process in bytes (VmRSS of /proc/self/status), its
 * anonymous part (RssAnon), or 0 when /proc cannot be read. */
uint64_t bh_rss_bytes(void);
uint64_t bh_rss_anon_bytes(void);

/* Bytes allocated on disk to the files under path (st_blocks * 512, summed,
 * as du does), or 0 when path is absent. */
uint64_t bh_dir_bytes(const char *path);

/* Removes path and everything under it. 0 or -errno. */
int bh_rm_rf(const char *path);

/* ------------------------------------------------------------ randomness */

/* xoshiro256** seeded through splitmix64: fast, good enough for picking
 * keys, and identical on every machine. */
typedef struct bh_rng {
  uint64_t s[4];
} bh_rng;

void bh_rng_seed(bh_rng *r, uint64_t seed);
uint64_t bh_rng_next(bh_rng *r);
/* Uniform in [0, n), n > 0. */
uint64_t bh_rng_below(bh_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double bh_rng_unit(bh_rng *r);

/* ------------------------------------------------------------- contacts */

/*
 * The generated data set. It is meant to look like a real CRM's contacts so
 * that index sizes and result counts are realistic:
 *   - first and last names built from syllable lists (a few thousand of each),
 *     with a small share of real names holding non-ASCII letters (José,
 *     Müller, Straße, ...);
 *   - a unique email first.last.i@domain over a few hundred domains, some of
 *     them with capitals;
 *   - a unique phone number in one of several national formats;
 *   - one of BH_COMPANIES companies, Zipf-distributed (a few very large
 *     customers, a long tail of small ones);
 *   - one of about 500 job titles, also skewed;
 *   - notes of 3 to 8 words from a vocabulary of about 2000 words, Zipf.
 * Every field is filled; lengths stay within the API's limits.
 */
#define BH_COMPANIES 20000
#define BH_VOCABULARY 2000

typedef struct bh_gen bh_gen;

/* Builds the lists and distributions for one seed. NULL on out of memory. */
bh_gen *bh_gen_create(uint64_t seed);
void bh_gen_destroy(bh_gen *g);

/* Field buffers are large enough for anything the generator makes. */
typedef struct bh_contact {
  char first_name[64];
  char last_name[64];
  char email[160];
  char phone[32];
  char company[64];
  char job_title[64];
  char notes[512];
  uint32_t company_index; /* 0 .. BH_COMPANIES-1: which company it is */
} bh_contact;

/* A generated contact's fields in the API's order, by name and value (the
 * API's field names; the benchmarks do not link the engine's table). */
#define BH_FIELDS 7
extern const char *const bh_field_names[BH_FIELDS];
void bh_contact_values(const bh_contact *c, const char *out[BH_FIELDS]);

/* Makes contact number i. Pure and thread-safe: the same (seed, i) always
 * gives the same contact, and emails and phones differ for different i. */
void bh_gen_contact(const bh_gen *g, uint64_t i, bh_contact *out);

/* Serializes c as the JSON object the API returns for it (with a 20-digit
 * id and two RFC 3339 timestamps standing in for the server's), into buf of
 * cap bytes. Returns the length, or 0 when it does not fit. */
size_t bh_contact_json(const bh_contact *c, uint64_t id, char *buf, size_t cap);

/* ---------------------------------------------------------------- tables */

/* One row of results: a metric, our number, the baseline's, their ratio,
 * the target it is held to and whether it is met. Cells are text already
 * formatted by the caller (bh_fmt_*). */
typedef struct bh_row {
  char metric[96];
  char ours[40];
  char base[40];
  char ratio[24];
  char target[24];
  char met[12];
} bh_row;

typedef struct bh_table {
  bh_row *rows;
  size_t count;
  size_t cap;
  char ours_name[24];
  char base_name[24];
} bh_table;

void bh_table_init(bh_table *t, const char *ours_name, const char *base_name);
/* Adds a row; any cell may be NULL (printed as "-"). */
void bh_table_add(bh_table *t, const char *metric, const char *ours,
                  const char *base, const char *ratio, const char *target,
                  const char *met);
/* Prints the table as Markdown with aligned columns. */
void bh_table_print(const bh_table *t, void *file);
void bh_table_free(bh_table *t);

/* Number formatting into a caller's buffer, returning it: "12,345",
 * "1.23 M", "0.42 s", "3.1x", "512 B". */
char *bh_fmt_count(char *buf, size_t cap, double v);
char *bh_fmt_rate(char *buf, size_t cap, double per_second);
char *bh_fmt_seconds(char *buf, size_t cap, double s);
char *bh_fmt_ratio(char *buf, size_t cap, double r);
char *bh_fmt_bytes(char *buf, size_t cap, double bytes);

#endif
