/*
 * harness.c: clock, medians, memory and disk sizes, the random generator,
 * the contact generator and the result table shared by the benchmarks.
 *
 * The contact generator's only invariants: contact i depends on (seed, i)
 * alone; emails and phone numbers are unique across i (the email carries i,
 * the phone's last nine digits are a bijection of i); every value is valid
 * for the API (lengths, email and phone shapes, UTF-8).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ------------------------------------------------------------- measuring */

uint64_t bh_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double bh_seconds(uint64_t from_ns, uint64_t to_ns) {
  return (double)(to_ns - from_ns) / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bh_median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  if (n % 2) return v[n / 2];
  return (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Reads one "Name:   123 kB" line of /proc/self/status. */
static uint64_t status_kb(const char *name) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t name_len = strlen(name);
  uint64_t kb = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, name, name_len) == 0 && line[name_len] == ':') {
      kb = strtoull(line + name_len + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb * 1024;
}

uint64_t bh_rss_bytes(void) {
  return status_kb("VmRSS");
}
uint64_t bh_rss_anon_bytes(void) {
  return status_kb("RssAnon");
}

/* nftw offers no context pointer; the walks below are not run concurrently. */
static uint64_t du_total;

static int du_visit(const char *path, const struct stat *st, int type,
                    struct FTW *ftw) {
  (void)path, (void)type, (void)ftw;
  du_total += (uint64_t)st->st_blocks * 512;
  return 0;
}

uint64_t bh_dir_bytes(const char *path) {
  du_total = 0;
  if (nftw(path, du_visit, 16, FTW_PHYS) != 0) return 0;
  return du_total;
}

static int rm_visit(const char *path, const struct stat *st, int type,
                    struct FTW *ftw) {
  (void)st, (void)type, (void)ftw;
  return remove(path) == 0 ? 0 : -errno;
}

int bh_rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -errno;
  return nftw(path, rm_visit, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ randomness */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void bh_rng_seed(bh_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t bh_rng_next(bh_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t bh_rng_below(bh_rng *r, uint64_t n) {
  /* The modulo bias is below 2^-40 for every n used here. */
  return bh_rng_next(r) % n;
}

double bh_rng_unit(bh_rng *r) {
  return (double)(bh_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ------------------------------------------------------------- word lists */

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* First names: a start and an ending, 60 x 50 = 3000 of them. */
static const char *const first_start[] = {
    "Al",  "Ben", "Car", "Da",  "El",  "Fe",  "Ga",  "Ha",  "I",   "Ja",
    "Ka",  "Le",  "Ma",  "Na",  "O",   "Pa",  "Ra",  "Sa",  "Ta",  "Va",
    "Wi",  "Xa",  "Ya",  "Za",  "Bri", "Cla", "Dro", "Fra", "Gre", "Jo",
    "Lu",  "Mi",  "No",  "Ro",  "Su",  "Tho", "Vi",  "Ari", "Bel", "Cor",
    "Den", "Eli", "Fin", "Gil", "Hel", "Iva", "Jul", "Kel", "Lor", "Mar",
    "Nel", "Ol",  "Pet", "Qui", "Ros", "Sam", "Ter", "Ul",  "Vic", "Wen"};
static const char *const first_end[] = {
    "a",   "ah",  "an",   "ana",  "as",   "el",  "ella", "en",   "er",  "ia",
    "ian", "ie",  "in",   "ina",  "io",   "is",  "ius",  "o",    "on",  "or",
    "os",  "us",  "y",    "yn",   "ette", "ine", "ard",  "bert", "dan", "do",
    "ric", "ton", "lyn",  "na",   "ra",   "ro",  "sa",   "ta",   "va",  "win",
    "ley", "lie", "mond", "rick", "ias",  "ila", "olt",  "ren",  "sha", "vin"};

/* Last names: a root and a suffix, 70 x 50 = 3500 of them. */
static const char *const last_root[] = {
    "Ander", "Bark", "Black", "Brad",  "Brook", "Cald", "Carl",  "Chap",
    "Clay",  "Cor",  "Dal",   "Dun",   "Ed",    "Fair", "Fitz",  "Gar",
    "Glen",  "Gold", "Hal",   "Ham",   "Hart",  "Hol",  "Kel",   "Kings",
    "Lang",  "Lind", "Mac",   "Mar",   "Mer",   "Mont", "Mor",   "Nor",
    "Oak",   "Pem",  "Ral",   "Red",   "Ros",   "Rut",  "Sal",   "Sand",
    "Shel",  "Stan", "Stock", "Strat", "Sut",   "Tal",  "Thorn", "Tom",
    "Val",   "Wal",  "War",   "West",  "Whit",  "Wick", "Wil",   "Win",
    "Wood",  "Yar",  "Ash",   "Bel",   "Crom",  "Dor",  "Ever",  "Fen",
    "Grim",  "Hay",  "Ives",  "Jar",   "Kirk",  "Lock"};
static const char *const last_suffix[] = {
    "son",   "sen",   "man",  "mann",  "berg",  "burg",  "ley",  "ford", "ton",
    "wood",  "field", "well", "worth", "stone", "by",    "dale", "er",   "ers",
    "ing",   "ins",   "ham",  "hurst", "more",  "ridge", "shaw", "ston", "wick",
    "land",  "ock",   "en",   "ez",    "ini",   "ov",    "ova",  "ski",  "sky",
    "stein", "feld",  "mont", "ard",   "ell",   "es",    "is",   "lin",  "low",
    "ner",   "rup",   "vik",  "ows",   "ant"};

/* Real names, some with letters outside ASCII; the email uses the ASCII
 * spelling beside each. About one contact in 60 takes one of these. */
typedef struct named {
  const char *name;
  const char *ascii;
} named;
static const named first_real[] = {
    {"José", "jose"},     {"Zoë", "zoe"},        {"François", "francois"},
    {"Björn", "bjorn"},   {"Søren", "soren"},    {"Łukasz", "lukasz"},
    {"Renée", "renee"},   {"Jürgen", "juergen"}, {"Chloé", "chloe"},
    {"Ömer", "omer"},     {"Inés", "ines"},      {"Ana", "ana"},
    {"Mary", "mary"},     {"John", "john"},      {"Wei", "wei"},
    {"Fatima", "fatima"}, {"Olga", "olga"},      {"Hiroshi", "hiroshi"},
    {"Aoife", "aoife"},   {"Nuño", "nuno"}};
static const named last_real[] = {
    {"Müller", "mueller"},     {"Straße", "strasse"},
    {"García", "garcia"},      {"Núñez", "nunez"},
    {"Ødegaard", "odegaard"},  {"Dvořák", "dvorak"},
    {"Schröder", "schroeder"}, {"Gonçalves", "goncalves"},
    {"Ångström", "angstrom"},  {"O'Brien", "obrien"},
    {"Smith", "smith"},        {"Kowalczyk", "kowalczyk"},
    {"Nguyen", "nguyen"},      {"Papadopoulos", "papadopoulos"},
    {"Lefèvre", "lefevre"},    {"Öztürk", "ozturk"}};

/* Companies: a two-part made-up name and a kind, 40 x 30 x 17 >= 20000. */
static const char *const company_a[] = {
    "Nor", "Ac",  "Bel", "Cen", "Dyn", "Ev",  "Flu", "Gal",  "Hex", "In",
    "Jun", "Kap", "Lum", "Mag", "Nex", "Om",  "Pol", "Quan", "Rex", "Syn",
    "Tri", "Ul",  "Ver", "Wav", "Xen", "Yor", "Zen", "Alt",  "Bri", "Cor",
    "Del", "Eco", "Fer", "Glo", "Hal", "Ion", "Kor", "Lin",  "Mer", "Nov"};
static const char *const company_b[] = {
    "vex",  "tron",  "ix",     "ara",    "ion",  "ify",  "sys", "on",
    "tek",  "ra",    "lytics", "ware",   "corp", "nova", "dex", "gen",
    "well", "path",  "mark",   "point",  "ly",   "ico",  "era", "forge",
    "line", "scape", "io",     "sphere", "loop", "base"};
static const char *const company_kind[] = {
    "Inc.",         "LLC",        "Ltd",      "GmbH",     "Systems",
    "Labs",         "Group",      "Partners", "Holdings", "Solutions",
    "Technologies", "Consulting", "S.A.",     "& Co.",    "Industries",
    "Networks",     "AG"};

/* Email domains: 20 x 15 = 300. */
static const char *const domain_name[] = {
    "example",    "mailbox",   "inbox",     "postal",    "corpmail",
    "netmail",    "zmail",     "webpost",   "letterbox", "quickmail",
    "brightmail", "openmail",  "cloudpost", "primemail", "safemail",
    "swiftmail",  "northmail", "bluemail",  "citymail",  "homepost"};
static const char *const domain_tld[] = {"com", "net", "org",   "io",     "co",
                                         "de",  "fr",  "co.uk", "es",     "it",
                                         "nl",  "se",  "ca",    "com.au", "ch"};

/* Job titles: a level and a role, 10 x 50 = 500. */
static const char *const title_level[] = {
    "",           "Senior ", "Junior ",   "Lead ",   "Principal ",
    "Associate ", "Staff ",  "Regional ", "Global ", "Assistant "};
static const char *const title_role[] = {"Software Engineer",
                                         "Account Executive",
                                         "Sales Manager",
                                         "Product Manager",
                                         "Data Analyst",
                                         "Marketing Specialist",
                                         "Recruiter",
                                         "Accountant",
                                         "Designer",
                                         "Consultant",
                                         "Project Manager",
                                         "Support Engineer",
                                         "Operations Manager",
                                         "Financial Analyst",
                                         "Business Analyst",
                                         "Architect",
                                         "Researcher",
                                         "Copywriter",
                                         "Legal Counsel",
                                         "HR Generalist",
                                         "Office Manager",
                                         "Buyer",
                                         "Controller",
                                         "Developer",
                                         "DevOps Engineer",
                                         "QA Engineer",
                                         "Scientist",
                                         "Editor",
                                         "Producer",
                                         "Trainer",
                                         "Strategist",
                                         "Administrator",
                                         "Coordinator",
                                         "Auditor",
                                         "Planner",
                                         "Technician",
                                         "Nurse",
                                         "Pharmacist",
                                         "Teacher",
                                         "Advisor",
                                         "Broker",
                                         "Underwriter",
                                         "Engineer",
                                         "Director",
                                         "Partner",
                                         "Officer",
                                         "Representative",
                                         "Agent",
                                         "Economist",
                                         "Buyer Liaison"};

/* The common words of notes; the rest of the vocabulary is made of
 * syllables, rarer the later it comes. */
static const char *const note_words[] = {
    "meeting",     "call",       "follow",
    "up",          "contract",   "renewal",
    "budget",      "quarter",    "demo",
    "pricing",     "proposal",   "signed",
    "interested",  "product",    "team",
    "next",        "week",       "month",
    "email",       "sent",       "asked",
    "about",       "discount",   "trial",
    "onboarding",  "support",    "ticket",
    "issue",       "resolved",   "pending",
    "decision",    "maker",      "champion",
    "budgeting",   "approval",   "legal",
    "review",      "security",   "questionnaire",
    "invoice",     "payment",    "overdue",
    "upgrade",     "downgrade",  "churn",
    "risk",        "happy",      "unhappy",
    "referral",    "partner",    "conference",
    "booth",       "lunch",      "dinner",
    "coffee",      "introduced", "by",
    "via",         "linkedin",   "webinar",
    "attended",    "download",   "whitepaper",
    "case",        "study",      "pilot",
    "rollout",     "expansion",  "seats",
    "license",     "enterprise", "plan",
    "starter",     "annual",     "monthly",
    "billing",     "migration",  "integration",
    "api",         "sso",        "compliance",
    "gdpr",        "audit",      "deadline",
    "friday",      "monday",     "tuesday",
    "wednesday",   "thursday",   "morning",
    "afternoon",   "urgent",     "later",
    "reschedule",  "cancelled",  "confirmed",
    "prefers",     "phone",      "text",
    "slack",       "zoom",       "onsite",
    "visit",       "office",     "berlin",
    "london",      "paris",      "madrid",
    "new",         "york",       "tokyo",
    "toronto",     "sydney",     "remote",
    "hiring",      "reorg",      "acquired",
    "merger",      "funding",    "series",
    "startup",     "growth",     "pipeline",
    "forecast",    "closed",     "won",
    "lost",        "competitor", "evaluation",
    "shortlist",   "vendor",     "procurement",
    "café",        "naïve",      "résumé",
    "déjà",        "vu",         "über",
    "smörgåsbord", "fiancée",    "façade",
    "jalapeño",    "crème",      "brûlée",
    "2024",        "2025",       "q1",
    "q2",          "q3",         "q4",
    "10k",         "50k",        "100k",
    "v2",          "roadmap",    "feedback"};

static const char *const word_a[] = {
    "ba",  "ke",  "lo",  "mi",  "nu",  "po",  "ra",  "se",  "ti",  "vu",
    "da",  "fe",  "gi",  "ho",  "ju",  "ka",  "le",  "mo",  "ne",  "pi",
    "ro",  "su",  "ta",  "ve",  "wo",  "ya",  "ze",  "bri", "cla", "dro",
    "fla", "gre", "kro", "pla", "sta", "tre", "vla", "zo",  "chi", "sha"};
static const char *const word_b[] = {
    "lor", "ment", "vat", "nix", "dor", "mak", "ster", "bin", "cal", "dex",
    "fen", "gor",  "han", "jit", "kel", "lum", "mor",  "nap", "pex", "quin",
    "rid", "sol",  "tup", "vor", "wex", "yon", "zil",  "bra", "cor", "dun",
    "fal", "gan",  "hex", "ish", "jor", "kan", "lis",  "mun", "nor", "pol",
    "rax", "sen",  "tor", "ule", "var", "wen", "xis",  "yer", "zor", "tal"};

/* ---------------------------------------------------------- the generator */

struct bh_gen {
  uint64_t seed;
  double *company_cdf; /* Zipf over company ranks */
  double *title_cdf;
  double *word_cdf;
  double *first_cdf;
  double *last_cdf;
  char (*words)[24]; /* the vocabulary, most common first */
};

/* Cumulative Zipf weights 1/(rank+1)^s, normalised to end at 1. */
static double *zipf_cdf(size_t n, double s) {
  double *cdf = malloc(n * sizeof *cdf);
  if (!cdf) return NULL;
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    sum += 1.0 / pow((double)(i + 1), s);
    cdf[i] = sum;
  }
  for (size_t i = 0; i < n; i++)
    cdf[i] /= sum;
  cdf[n - 1] = 1.0;
  return cdf;
}

static size_t zipf_pick(const double *cdf, size_t n, bh_rng *r) {
  double u = bh_rng_unit(r);
  size_t lo = 0, hi = n - 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cdf[mid] < u)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

#define FIRST_NAMES (COUNT_OF(first_start) * COUNT_OF(first_end))
#define LAST_NAMES (COUNT_OF(last_root) * COUNT_OF(last_suffix))
#define TITLES (COUNT_OF(title_level) * COUNT_OF(title_role))

bh_gen *bh_gen_create(uint64_t seed) {
  bh_gen *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->seed = seed;
  g->company_cdf = zipf_cdf(BH_COMPANIES, 1.0);
  g->title_cdf = zipf_cdf(TITLES, 0.8);
  g->word_cdf = zipf_cdf(BH_VOCABULARY, 1.0);
  g->first_cdf = zipf_cdf(FIRST_NAMES, 0.6);
  g->last_cdf = zipf_cdf(LAST_NAMES, 0.6);
  g->words = calloc(BH_VOCABULARY, sizeof *g->words);
  if (!g->company_cdf || !g->title_cdf || !g->word_cdf || !g->first_cdf ||
      !g->last_cdf || !g->words) {
    bh_gen_destroy(g);
    return NULL;
  }
  size_t n = 0;
  for (; n < COUNT_OF(note_words); n++)
    snprintf(g->words[n], sizeof g->words[n], "%s", note_words[n]);
  for (size_t j = 0; n < BH_VOCABULARY; j++, n++)
    snprintf(g->words[n], sizeof g->words[n], "%s%s",
             word_a[j % COUNT_OF(word_a)],
             word_b[(j / COUNT_OF(word_a)) % COUNT_OF(word_b)]);
  return g;
}

void bh_gen_destroy(bh_gen *g) {
  if (!g) return;
  free(g->company_cdf);
  free(g->title_cdf);
  free(g->word_cdf);
  free(g->first_cdf);
  free(g->last_cdf);
  free(g->words);
  free(g);
}

/* Appends the ASCII lower case of s to the email local part at *p. */
static char *put_lower(char *p, const char *s) {
  for (; *s; s++)
    *p++ = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
  return p;
}

void bh_gen_contact(const bh_gen *g, uint64_t i, bh_contact *out) {
  bh_rng r;
  bh_rng_seed(&r,
              g->seed ^ (i * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull));

  /* Names, and the ASCII spellings the email is made of. */
  char first_ascii[64], last_ascii[64];
  if (bh_rng_below(&r, 60) == 0) {
    const named *n = &first_real[bh_rng_below(&r, COUNT_OF(first_real))];
    snprintf(out->first_name, sizeof out->first_name, "%s", n->name);
    snprintf(first_ascii, sizeof first_ascii, "%s", n->ascii);
  } else {
    size_t k = zipf_pick(g->first_cdf, FIRST_NAMES, &r);
    /* Rank k to a name: spread the common ranks over different starts. */
    k = (k * 2029) % FIRST_NAMES;
    snprintf(out->first_name, sizeof out->first_name, "%s%s",
             first_start[k % COUNT_OF(first_start)],
             first_end[k / COUNT_OF(first_start)]);
    snprintf(first_ascii, sizeof first_ascii, "%s", out->first_name);
  }
  if (bh_rng_below(&r, 60) == 0) {
    const named *n = &last_real[bh_rng_below(&r, COUNT_OF(last_real))];
    snprintf(out->last_name, sizeof out->last_name, "%s", n->name);
    snprintf(last_ascii, sizeof last_ascii, "%s", n->ascii);
  } else {
    size_t k = zipf_pick(g->last_cdf, LAST_NAMES, &r);
    k = (k * 1999) % LAST_NAMES;
    snprintf(out->last_name, sizeof out->last_name, "%s%s",
             last_root[k % COUNT_OF(last_root)],
             last_suffix[k / COUNT_OF(last_root)]);
    snprintf(last_ascii, sizeof last_ascii, "%s", out->last_name);
  }

  /* Email: first.last.i@domain, one in eight keeping the capitals. */
  {
    const char *dn = domain_name[bh_rng_below(&r, COUNT_OF(domain_name))];
    const char *tld = domain_tld[bh_rng_below(&r, COUNT_OF(domain_tld))];
    int keep_case = bh_rng_below(&r, 8) == 0;
    char local[140], *p = local;
    if (keep_case) {
      p += sprintf(p, "%s.%s", first_ascii, last_ascii);
    } else {
      p = put_lower(p, first_ascii);
      *p++ = '.';
      p = put_lower(p, last_ascii);
    }
    *p = 0;
    snprintf(out->email, sizeof out->email, "%s.%llu@%s.%s", local,
             (unsigned long long)i, dn, tld);
  }

  /* Phone: ten national digits whose last nine are a bijection of i (so
   * unique), in one of eight formats, some with a country code. */
  {
    uint64_t low = (i * 387420489ull + 123456789ull) % 1000000000ull;
    uint64_t n = (2 + bh_rng_below(&r, 8)) * 1000000000ull + low;
    unsigned a = (unsigned)(n / 10000000), b = (unsigned)(n / 10000 % 1000),
             c = (unsigned)(n % 10000);
    char d[11];
    snprintf(d, sizeof d, "%010llu", (unsigned long long)n);
    switch (bh_rng_below(&r, 8)) {
    case 0:
      snprintf(out->phone, sizeof out->phone, "+1 (%03u) %03u-%04u", a, b, c);
      break;
    case 1:
      snprintf(out->phone, sizeof out->phone, "(%03u) %03u-%04u", a, b, c);
      break;
    case 2:
      snprintf(out->phone, sizeof out->phone, "%03u-%03u-%04u", a, b, c);
      break;
    case 3:
      snprintf(out->phone, sizeof out->phone, "%03u.%03u.%04u", a, b, c);
      break;
    case 4:
      snprintf(out->phone, sizeof out->phone, "+44 %.4s %.6s", d, d + 4);
      break;
    case 5:
      snprintf(out->phone, sizeof out->phone, "+49 %.3s %.7s", d, d + 3);
      break;
    case 6:
      snprintf(out->phone, sizeof out->phone, "+33 %.2s %.2s %.2s %.2s %.2s", d,
               d + 2, d + 4, d + 6, d + 8);
      break;
    default:
      snprintf(out->phone, sizeof out->phone, "%s", d);
      break;
    }
  }

  /* Company: Zipf rank, spread over the name space by a bijection. */
  {
    size_t rank = zipf_pick(g->company_cdf, BH_COMPANIES, &r);
    size_t k = (rank * 7919) % BH_COMPANIES;
    out->company_index = (uint32_t)k;
    snprintf(out->company, sizeof out->company, "%s%s %s",
             company_a[k % COUNT_OF(company_a)],
             company_b[(k / COUNT_OF(company_a)) % COUNT_OF(company_b)],
             company_kind[k / (COUNT_OF(company_a) * COUNT_OF(company_b))]);
  }

  {
    size_t k = (zipf_pick(g->title_cdf, TITLES, &r) * 263) % TITLES;
    snprintf(out->job_title, sizeof out->job_title, "%s%s",
             title_level[k % COUNT_OF(title_level)],
             title_role[k / COUNT_OF(title_level)]);
  }

  /* Notes: 3 to 8 words, a capital first letter and a full stop. */
  {
    int words = 3 + (int)bh_rng_below(&r, 6);
    char *p = out->notes;
    for (int w = 0; w < words; w++) {
      const char *word = g->words[zipf_pick(g->word_cdf, BH_VOCABULARY, &r)];
      if (w > 0) *p++ = ' ';
      size_t len = strlen(word);
      memcpy(p, word, len);
      if (w == 0 && p[0] >= 'a' && p[0] <= 'z') p[0] = (char)(p[0] - 'a' + 'A');
      p += len;
    }
    *p++ = '.';
    *p = 0;
  }
}

/* Appends s as a JSON string; returns the new end or NULL when out of room. */
static char *json_str(char *p, char *end, const char *s) {
  if (p >= end) return NULL;
  *p++ = '"';
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (end - p < 8) return NULL;
    if (ch == '"' || ch == '\\') {
      *p++ = '\\';
      *p++ = (char)ch;
    } else if (ch < 0x20) {
      p += sprintf(p, "\\u%04x", ch);
    } else {
      *p++ = (char)ch;
    }
  }
  if (p >= end) return NULL;
  *p++ = '"';
  return p;
}

const char *const bh_field_names[BH_FIELDS] = {
    "first_name", "last_name", "email", "phone",
    "company",    "job_title", "notes"};

void bh_contact_values(const bh_contact *c, const char *out[BH_FIELDS]) {
  const char *v[BH_FIELDS] = {c->first_name, c->last_name, c->email, c->phone,
                              c->company,    c->job_title, c->notes};
  memcpy(out, v, sizeof v);
}

size_t bh_contact_json(const bh_contact *c, uint64_t id, char *buf,
                       size_t cap) {
  static const char stamp[] = "\"2026-01-01T00:00:00.000Z\"";
  const char *const *names = bh_field_names;
  const char *values[BH_FIELDS];
  bh_contact_values(c, values);
  char *p = buf, *end = buf + cap;
  int n = snprintf(p, cap, "{\"id\":\"%020llu\"", (unsigned long long)id);
  if (n < 0 || (size_t)n >= cap) return 0;
  p += n;
  for (size_t f = 0; f < BH_FIELDS; f++) {
    if (end - p < 32) return 0;
    p += sprintf(p, ",\"%s\":", names[f]);
    if (!(p = json_str(p, end, values[f]))) return 0;
  }
  n = snprintf(p, (size_t)(end - p), ",\"created_at\":%s,\"updated_at\":%s}",
               stamp, stamp);
  if (n < 0 || n >= end - p) return 0;
  return (size_t)(p + n - buf);
}

/* ---------------------------------------------------------------- tables */

void bh_table_init(bh_table *t, const char *ours_name, const char *base_name) {
  memset(t, 0, sizeof *t);
  snprintf(t->ours_name, sizeof t->ours_name, "%s", ours_name);
  snprintf(t->base_name, sizeof t->base_name, "%s", base_name);
}

static void cell(char *dst, size_t cap, const char *s) {
  snprintf(dst, cap, "%s", s ? s : "-");
}

void bh_table_add(bh_table *t, const char *metric, const char *ours,
                  const char *base, const char *ratio, const char *target,
                  const char *met) {
  if (t->count == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 32;
    bh_row *rows = realloc(t->rows, cap * sizeof *rows);
    if (!rows) return;
    t->rows = rows;
    t->cap = cap;
  }
  bh_row *r = &t->rows[t->count++];
  cell(r->metric, sizeof r->metric, metric);
  cell(r->ours, sizeof r->ours, ours);
  cell(r->base, sizeof r->base, base);
  cell(r->ratio, sizeof r->ratio, ratio);
  cell(r->target, sizeof r->target, target);
  cell(r->met, sizeof r->met, met);
}

/* Width in code points, so that UTF-8 cells line up. */
static int text_width(const char *s) {
  int w = 0;
  for (; *s; s++)
    w += ((unsigned char)*s & 0xc0) != 0x80;
  return w;
}

static void print_cell(FILE *f, const char *s, int width, int right) {
  int pad = width - text_width(s);
  if (pad < 0) pad = 0;
  if (right)
    fprintf(f, " %*s%s |", pad, "", s);
  else
    fprintf(f, " %s%*s |", s, pad, "");
}

void bh_table_print(const bh_table *t, void *file) {
  FILE *f = file;
  const char *head[6] = {"metric", t->ours_name, t->base_name,
                         "ratio",  "target",     "met"};
  int w[6];
  for (int c = 0; c < 6; c++)
    w[c] = text_width(head[c]);
  for (size_t i = 0; i < t->count; i++) {
    const bh_row *r = &t->rows[i];
    const char *cells[6] = {r->metric, r->ours,   r->base,
                            r->ratio,  r->target, r->met};
    for (int c = 0; c < 6; c++)
      if (text_width(cells[c]) > w[c]) w[c] = text_width(cells[c]);
  }
  fputc('|', f);
  for (int c = 0; c < 6; c++)
    print_cell(f, head[c], w[c], 0);
  fputs("\n|", f);
  for (int c = 0; c < 6; c++) {
    fputc(c == 0 ? ':' : '-', f);
    for (int k = 0; k < w[c]; k++)
      fputc('-', f);
    fputs(c == 0 ? "-|" : ":|", f);
  }
  fputc('\n', f);
  for (size_t i = 0; i < t->count; i++) {
    const bh_row *r = &t->rows[i];
    const char *cells[6] = {r->metric, r->ours,   r->base,
                            r->ratio,  r->target, r->met};
    fputc('|', f);
    for (int c = 0; c < 6; c++)
      print_cell(f, cells[c], w[c], c > 0);
    fputc('\n', f);
  }
  fflush(f);
}

void bh_table_free(bh_table *t) {
  free(t->rows);
  memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ formatting */

char *bh_fmt_count(char *buf, size_t cap, double v) {
  char digits[32];
  snprintf(digits, sizeof digits, "%.0f", v);
  size_t n = strlen(digits), o = 0;
  for (size_t k = 0; k < n && o + 2 < cap; k++) {
    if (k > 0 && (n - k) % 3 == 0 && digits[k - 1] != '-') buf[o++] = ',';
    buf[o++] = digits[k];
  }
  buf[o] = 0;
  return buf;
}

char *bh_fmt_rate(char *buf, size_t cap, double per_second) {
  char n[32];
  if (per_second >= 100)
    bh_fmt_count(n, sizeof n, per_second);
  else
    snprintf(n, sizeof n, "%.1f", per_second);
  snprintf(buf, cap, "%s/s", n);
  return buf;
}

char *bh_fmt_seconds(char *buf, size_t cap, double s) {
  if (s >= 1)
    snprintf(buf, cap, "%.2f s", s);
  else if (s >= 1e-3)
    snprintf(buf, cap, "%.1f ms", s * 1e3);
  else
    snprintf(buf, cap, "%.1f us", s * 1e6);
  return buf;
}

char *bh_fmt_ratio(char *buf, size_t cap, double r) {
  if (r >= 10)
    snprintf(buf, cap, "%.0fx", r);
  else
    snprintf(buf, cap, "%.2fx", r);
  return buf;
}

char *bh_fmt_bytes(char *buf, size_t cap, double bytes) {
  if (bytes >= 1024.0 * 1024 * 1024)
    snprintf(buf, cap, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
  else if (bytes >= 1024.0 * 1024)
    snprintf(buf, cap, "%.1f MiB", bytes / (1024.0 * 1024));
  else if (bytes >= 10 * 1024.0)
    snprintf(buf, cap, "%.1f KiB", bytes / 1024.0);
  else
    snprintf(buf, cap, "%.0f B", bytes);
  return buf;
}
