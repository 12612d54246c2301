/*
 * bench_peer.h: what the benchmarks that put the engine beside a SQL
 * database (bench_engine, bench_pg) share, so that each peer stores and
 * searches the same data the same way in every program:
 *   - the API's folding of values and terms (NFKC, case fold, marks
 *     stripped, whitespace collapsed; digits only for a phone), done by the
 *     benchmark for the peers' folded columns;
 *   - a generated contact as the engine's cs_contact, and its fields by
 *     cs_field;
 *   - SQLite's schema, settings and insert statements (WAL, synchronous=FULL,
 *     an index on (account, folded value) per searchable field, FTS5 over the
 *     folded notes);
 *   - the engine's bulk load and one durable create that waits for its sync.
 */
#ifndef BENCH_PEER_H
#define BENCH_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "cs.h"
#include "harness.h"

/* Folds s[0..len) into out (cap bytes, NUL-terminated): the folded text,
 * or for fold_key_into of CS_PHONE its digits. Returns the length (0 when
 * the text folds to nothing or does not fit). */
size_t fold_text_into(const char *s, size_t len, char *out, size_t cap);
size_t fold_key_into(int field, const char *s, size_t len, char *out,
                     size_t cap);

/* A field of a generated contact by cs_field, and the contact as the
 * engine's cs_contact (pointing into b). */
const char *bc_field(const bh_contact *b, int field);
void bc_to_cs(const bh_contact *b, cs_contact *c);

/* SQLite: the schema (table contacts, its folded columns f_first .. f_job,
 * their indexes and notes_fts), the settings every connection takes, and
 * the inserts: ?1 account, ?2..?8 the fields in cs_field order, ?9 the
 * time (created and updated), ?10..?15 the folded searchable fields, ?16
 * the id (NULL: SQLite's); the FTS row: ?1 rowid, ?2 the folded notes. */
extern const char sql_schema[];
#define SQL_SETTINGS                                                           \
  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"                          \
  "PRAGMA cache_size=-262144; PRAGMA mmap_size=2147483648;"                    \
  "PRAGMA temp_store=MEMORY;"
#define SQL_INSERT                                                             \
  "INSERT INTO contacts(account, first_name, last_name, "                      \
  "email, phone, company, job_title, notes, created_ms, "                      \
  "updated_ms, f_first, f_last, f_email, f_phone, "                            \
  "f_company, f_job, id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "                     \
  "?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
#define SQL_INSERT_FTS "INSERT INTO notes_fts(rowid, notes) VALUES (?1, ?2)"

/* The wall clock in milliseconds: the rows' created and updated times. */
int64_t bp_wall_ms(void);

/* The folded values a row's statements point at (SQLITE_STATIC): they must
 * outlive the steps of the statements bound with them. */
typedef struct bp_folded {
  char v[CS_FIELD_COUNT][512];
} bp_folded;

/* Binds contact b to SQL_INSERT's statement ins: account, the fields, now,
 * the folded searchable fields (into f), and the id want_rowid (0: NULL,
 * SQLite's own). */
void bp_sql_bind_insert(sqlite3_stmt *ins, uint32_t account,
                        const bh_contact *b, int64_t want_rowid, bp_folded *f);

/* Binds the FTS row of b, the contact just inserted as rowid, to
 * SQL_INSERT_FTS's statement ins_fts (its folded notes into f). */
void bp_sql_bind_fts(sqlite3_stmt *ins_fts, int64_t rowid, const bh_contact *b,
                     bp_folded *f);

/* The engine's bulk load of contacts [from, to) of g into account from
 * threads producers, each keeping up to 1024 creates in flight (for a store
 * opened with CS_DURABILITY_NONE), then cs_flush. ids (NULL: not kept)
 * gets contact i's id at ids[i]. 0, or -1 after printing why. */
int bp_engine_load(cs_store *s, const bh_gen *g, uint32_t account,
                   uint64_t from, uint64_t to, int threads, uint64_t *ids);

/* One create that returns once its completion callback has run (durable
 * with CS_DURABILITY_FSYNC): 0 or the error, err filled as cs_create does. */
int bp_engine_create_wait(cs_store *s, uint32_t account, const bh_contact *b,
                          uint64_t *id_out, cs_error *err);

#endif
