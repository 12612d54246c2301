/*
 * cs_repl.h: the engine's replication calls (ship.c, follow.c), part of
 * the public API. engine/README.md "Standby" says what they promise.
 */
#ifndef CS_REPL_H
#define CS_REPL_H

/* A part of cs.h, which includes it after its own declarations (they
 * are used here): include cs.h, not this. */
#ifndef CS_H
#error "include cs.h, which includes this header"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------- replication
 *
 * A primary ships its records, exactly as its log holds them (record.h's
 * frames), to standbys; a standby appends them to its own log with the
 * same sequence numbers, syncs, applies and acknowledges them. The engine
 * moves bytes only: the transport is the caller's (engine/README.md
 * "Standby"). */

typedef enum cs_repl_role {
  CS_REPL_PRIMARY = 0, /* takes writes */
  CS_REPL_STANDBY = 1, /* follows a primary: cs_follow_append only */
  CS_REPL_FENCED = 2,  /* was a primary; refuses writes, across restarts */
} cs_repl_role;

typedef enum cs_standby_ack {
  CS_STANDBY_ACK_ASYNC = 0,    /* answer once durable here; lag measured */
  CS_STANDBY_ACK_REQUIRED = 1, /* and once a standby acknowledged it */
} cs_standby_ack;

cs_repl_role cs_store_role(cs_store *s);
const char *
cs_repl_role_name(cs_repl_role r); /* "primary", "standby", "fenced" */

/* One standby's read of the log. */
typedef struct cs_ship cs_ship;

/* Starts a read of the records after sequence number after, which must be
 * a record of this log (the standby's last), or 0 for a log that starts at
 * its beginning. CS_ESHIP_GONE when the log does not hold it (a compaction
 * removed it, or the standby is past this log's end: either way it starts
 * again from a backup). */
int cs_ship_open(cs_store *s, uint64_t after, cs_ship **out, cs_error *err);
/* Copies whole records (at least CS_RECORD_BYTES_MAX of room) into buf,
 * in log order, each durable here; waits up to wait_ms for one when there
 * is none yet (0 with *len 0 then). CS_ECLOSING once the store closes. */
int cs_ship_read(cs_ship *sh, void *buf, size_t cap, size_t *len, int wait_ms,
                 cs_error *err);
/* The sequence number of the last record handed out. */
uint64_t cs_ship_position(const cs_ship *sh);
void cs_ship_close(cs_ship *sh);
/* A standby holds every record up to seq durably: writes waiting for it
 * (CS_STANDBY_ACK_REQUIRED) go on. CS_EINVAL past the durable end. */
int cs_ship_ack(cs_store *s, uint64_t seq, cs_error *err);

typedef struct cs_repl_info {
  cs_repl_role role;
  int standby_ack; /* cs_standby_ack */
  uint32_t standby_timeout_ms;
  uint32_t readers;     /* cs_ship reads open (connected standbys) */
  uint64_t last_seq;    /* the last record of the log, durable or queued */
  uint64_t durable_seq; /* the last one durable here */
  uint64_t acked_seq;   /* the highest a standby acknowledged (0: none) */
  uint64_t lag_records; /* durable here and not acknowledged */
  int64_t lag_ms;       /* age of the oldest such record, 0 when none */
  int64_t acked_ms;     /* when the last acknowledgement came, 0 never */
  bool unavailable;     /* required: writes refused until an ack */
} cs_repl_info;
void cs_repl_get(cs_store *s, cs_repl_info *out);

/* On a standby: checks the records in buf (whole frames; a record cut
 * short at the end is left for the next call, *used says how far it
 * went), each by its checksum and with sequence numbers strictly above
 * the log's last, then appends them to this log with their numbers,
 * syncs, applies them, and returns once they are applied (readers see
 * them): the caller then acknowledges *last_seq. A damaged, undecodable
 * or out-of-sequence record is CS_ECORRUPT and nothing of buf is taken.
 * CS_ESTANDBY when the store is not a standby. */
int cs_follow_append(cs_store *s, const void *buf, size_t len, size_t *used,
                     uint64_t *last_seq, cs_error *err);
/* The last record of the log: where a standby asks to continue from. */
uint64_t cs_follow_last(cs_store *s);
/* A standby becomes the primary: what it took is applied, ids are handed
 * out past every id it has seen, writes are taken. 0 on a primary. */
int cs_promote(cs_store *s, cs_error *err);
/* A primary refuses writes from now on (CS_EFENCED), across restarts (a
 * file "fenced" in its directory), until opened as a standby. */
int cs_fence(cs_store *s, cs_error *err);

#ifdef __cplusplus
}
#endif
#endif
