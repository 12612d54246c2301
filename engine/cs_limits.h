/*
 * cs_limits.h: every limit of the contacts store and its API, named once.
 *
 * Each bound says why it is what it is. The engine enforces the field limits
 * on every write whoever the caller is (server, load tool, tests); the front
 * end enforces the request limits. Tests exercise each one at and past its
 * edge.
 */
#ifndef CS_LIMITS_H
#define CS_LIMITS_H

/* first_name, last_name, company, job_title: in Unicode code points (what a
 * person calls characters), after trimming. 256 is generous for any name. */
#define CS_NAME_MAX_CHARS 256

/* first_name must hold at least this many code points after trimming. */
#define CS_FIRST_NAME_MIN_CHARS 1

/* RFC 5321 limits a forward path to 256 octets including the angle
 * brackets, leaving 254 for the address itself. */
#define CS_EMAIL_MAX_BYTES 254

/* A phone number holds 3 to 20 digits (E.164 allows 15; extensions and
 * national prefixes take more), plus + ( ) - . and spaces. */
#define CS_PHONE_MIN_DIGITS 3
#define CS_PHONE_MAX_DIGITS 20
/* Bytes of the whole phone string, punctuation included. The API bounds
 * the digits, not the separators, so the string has the bound of every
 * other short field (names, company, job title: 256 characters; a phone's
 * characters are one byte each). */
#define CS_PHONE_MAX_BYTES 256

/* Free text notes: 64 KiB, in bytes of UTF-8. */
#define CS_NOTES_MAX_BYTES (64 * 1024)

/* One encoded record can never exceed this: the largest contact (notes at
 * their limit, every name at 256 four-byte code points, email, phone) with
 * its map keys and framing is under 72 KiB; an idempotency entry adds its
 * kept answer (CS_IDEM_ANSWER_MAX_BYTES at most). A length field read from disk
 * above this bound is corruption, not a record. */
#define CS_RECORD_BYTES_MAX (1024 * 1024)

/* A segment is sealed when the next record would take it past this size.
 * 64 MiB keeps a million contacts in a handful of files while each one maps
 * comfortably. Tests open stores with much smaller segments. */
#define CS_SEGMENT_BYTES_DEFAULT (64u * 1024 * 1024)
#define CS_SEGMENT_BYTES_MIN (4u * 1024)
#define CS_SEGMENT_BYTES_MAX (1024u * 1024 * 1024)

/* A snapshot file larger than this is refused before it is read: 16 GiB is
 * far beyond what the indexes of any store this engine serves would need. */
#define CS_SNAPSHOT_BYTES_MAX (16ull * 1024 * 1024 * 1024)

/* The commit thread writes a new snapshot once this many bytes of log have
 * been applied since the last one, so that a crash never leaves more than
 * this to replay at the next start (about a second of replay). */
#define CS_SNAPSHOT_EVERY_BYTES (256ull * 1024 * 1024)
/* What an operator may choose instead (contactd --snapshot-every-bytes):
 * from every 4 KiB of log (tests) to every TiB (a snapshot only at close,
 * in effect). */
#define CS_SNAPSHOT_EVERY_BYTES_MIN (4ull * 1024)
#define CS_SNAPSHOT_EVERY_BYTES_MAX (1ull << 40)

/* Search pages. */
#define CS_PAGE_LIMIT_DEFAULT 100
#define CS_PAGE_LIMIT_MAX 1000

/* A search term is folded before use; terms longer than the longest field
 * (notes) can match nothing. */
#define CS_SEARCH_TERM_MAX_BYTES CS_NOTES_MAX_BYTES

/* Queries (POST /contacts/query). A condition tree at most 4 deep (a
 * condition alone is depth 1; and/or/not add 1) with at most 32 conditions
 * in all, an in of at most 100 values: what HubSpot's 5 x 10 filter groups
 * hold, with room. Up to 3 sort keys, 5 facets of the 100 most common
 * values each. */
#define CS_QUERY_DEPTH_MAX 4
#define CS_QUERY_CONDS_MAX 32
#define CS_QUERY_IN_MAX 100
#define CS_QUERY_SORT_MAX 3
#define CS_QUERY_FACETS_MAX 5
#define CS_QUERY_FACET_VALUES 100
/* Words in q, or in the value of one words or fuzzy condition: each costs a
 * dictionary walk (with typos, a bounded automaton over the words), and no
 * person types more into a search box. */
#define CS_QUERY_WORDS_MAX 32
/* A suffix (match=suffix, op suffix) holds at least this many characters
 * after folding (phone: digits): shorter ones match half the store. */
#define CS_QUERY_SUFFIX_MIN 4
/* Typo tolerance: a folded word of 5 to 8 code points may be one typo away,
 * of 9 or more two (what Meilisearch allows). */
#define CS_FUZZY_ONE_MIN_CHARS 5
#define CS_FUZZY_TWO_MIN_CHARS 9
/* A query word longer than this (in code points) matches without typos:
 * no name or word of a note is that long, and the walk over the words
 * keeps a row per character. */
#define CS_FUZZY_MAX_CHARS 64

/* Request limits of the HTTP API. */
#define CS_BODY_MAX_BYTES (1024 * 1024) /* 413 past this */
#define CS_BATCH_MAX 1000               /* contacts in one batch create */
#define CS_REQUEST_ID_MAX_BYTES 128     /* longest client x-request-id echoed */

/* Safe writes. If-Match may name this many entity tags (a client names
 * one, or a few it has seen). */
#define CS_IF_MATCH_MAX 8
/* Idempotency keys: 1 to 255 printable ASCII characters (what Stripe
 * allows), kept at least a day after their write committed: the expiry is
 * set when the write is accepted, a moment before its commit, so a day and
 * an hour from then. */
#define CS_IDEM_KEY_MAX_BYTES 255
#define CS_IDEM_KEEP_MS (25ll * 3600 * 1000)
/* The answer kept with a key: a batch's answer at its largest (1000
 * results with errors) stays far under this. */
#define CS_IDEM_ANSWER_MAX_BYTES (512 * 1024)
/* The trash keeps a deleted contact 30 days unless told otherwise
 * (contactd --trash-days 1..CS_TRASH_DAYS_MAX). */
#define CS_DAY_MS (24ll * 3600 * 1000)
#define CS_TRASH_DAYS_DEFAULT 30
#define CS_TRASH_DAYS_MAX 3650
#define CS_TRASH_MS_DEFAULT (CS_TRASH_DAYS_DEFAULT * CS_DAY_MS)

/* The change feed keeps a change 30 days unless told otherwise
 * (contactd --changes-days 1..CS_CHANGES_DAYS_MAX). */
#define CS_CHANGES_DAYS_DEFAULT 30
#define CS_CHANGES_DAYS_MAX 3650
#define CS_CHANGES_MS_DEFAULT (CS_CHANGES_DAYS_DEFAULT * CS_DAY_MS)
/* GET /contacts/changes: a page holds 1..CS_PAGE_LIMIT_MAX changes, as
 * a search's, and a long-poll waits at most CS_CHANGES_WAIT_MAX_S seconds;
 * at most CS_CHANGES_WAITERS_MAX readers wait at once (one more is
 * answered at once, as with wait=0). */
#define CS_CHANGES_WAIT_MAX_S 60
#define CS_CHANGES_WAITERS_MAX 10000
/* Commit watchers (cs_watch_add): the long-poll thread and the webhook
 * deliverer, with room. */
#define CS_WATCHERS_MAX 8
/* Side files (cs_side_write): a name, and the file at its largest. */
#define CS_SIDE_NAME_MAX_BYTES 64
#define CS_SIDE_FILE_MAX_BYTES (16u * 1024 * 1024)

/* The latest time a contact may carry (cs_import, a load that keeps
 * times): 9999-12-31T23:59:59.999Z, the last instant RFC 3339 (and
 * cs_time_parse) can write. */
#define CS_TIME_MS_MAX 253402300799999ll

/* Account numbers fit in 31 bits: a slot keeps the account and a live bit
 * in one 32-bit word. */
#define CS_ACCOUNT_ID_MAX 0x7fffffffu

/* Accounts: names are short identifiers (letters, digits, '-', '_', '.'). */
#define CS_ACCOUNT_NAME_MAX_BYTES 64

/* Shards (DESIGN "Past one machine"): a store is made for shard 0 ..
 * CS_SHARD_MAX, and shard K hands out the ids after its floor,
 * CS_ID_MIN + K * CS_SHARD_ID_SPAN, up to the next shard's floor (cs.h
 * cs_shard_floor). The span is 2^56 (7.2e16 ids a shard: two hundred
 * million creates a day for a million years), and CS_SHARD_MAX is the last
 * shard whose whole span stays below 2^64: 10^19 + 117 * 2^56 < 2^64 <
 * 10^19 + 118 * 2^56. Shard 0 is a store made before shards existed. */
#define CS_SHARD_ID_SPAN (1ull << 56)
#define CS_SHARD_MAX 116u
/* A store holds at most this many accounts (ids are 32-bit, and the key
 * file is read whole at start). */
#define CS_ACCOUNTS_MAX 65536
/* Each thread that checks keys remembers this many it found (a power of
 * two; 56 bytes each), so a client's next request with its key skips the
 * SHA-256 (keys_cache.c). */
#define CS_KEYS_CACHE_SLOTS 64

/* Online compaction numbers its new segments this far past the live log's
 * last, so that the live log can roll this many times while it runs; it
 * fails (changing nothing) if the live log grows more. */
#define CS_ONLINE_SEGMENT_GAP 4096u
/* Its catch-up without the lock ends when a round copied fewer bytes than
 * this (the rest is copied under the switch), or after so many rounds. */
#define CS_ONLINE_SWITCH_LAG_BYTES (256u * 1024)
#define CS_ONLINE_CATCHUP_ROUNDS_MAX 16
/* The nice value its work runs at (a thread of its own), so that writers
 * and readers come first when the CPUs are busy. */
#define CS_ONLINE_COMPACT_NICE 10

/* Replication (ship.c). How long a write waits for a standby's
 * acknowledgement under CS_STANDBY_ACK_REQUIRED by default, and the
 * bounds of --standby-timeout. */
#define CS_STANDBY_TIMEOUT_MS_DEFAULT 2000u
#define CS_STANDBY_TIMEOUT_MS_MIN 10u
#define CS_STANDBY_TIMEOUT_MS_MAX 600000u
/* The records of recent batches kept in memory for standbys, past those
 * not yet applied (always kept): a standby further behind reads the log's
 * files instead. */
#define CS_SHIP_KEEP_BYTES (8u * 1024 * 1024)
/* A promoted standby hands out ids this far past every id it has seen:
 * the old primary may have given ids in records that never reached the
 * standby (under async, its lag; under required, writes in flight, never
 * answered), and none may be handed out twice. A shard's range holds 2^56
 * ids, so a promotion costs 2^-32 of it. */
#define CS_PROMOTE_ID_SKIP (1ull << 24)

#endif
