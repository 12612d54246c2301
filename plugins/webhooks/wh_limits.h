/*
 * wh_limits.h: every limit of the webhooks plugin, named once.
 *
 * Each bound says why it is what it is; tests/plugins/test_webhooks*.c
 * exercise each at and past its edge. The retry window's bounds belong to
 * the option that sets it (--webhook-retry-seconds) and live with the
 * front end's limits (frontend/fe_limits.h), as does the longest host name.
 */
#ifndef WH_LIMITS_H
#define WH_LIMITS_H

#include "cs_limits.h"
#include "fe_limits.h"

/* Webhooks one account may have: what Stripe allows an account (16
 * endpoints). A CRM integration needs one or two; more is a client that
 * creates one per sync and forgets to delete them. */
#define WH_PER_ACCOUNT_MAX 16

/* Webhooks the whole server keeps. Every one is in the side file, which
 * the engine bounds (CS_SIDE_FILE_MAX_BYTES, 16 MiB): 4096 records at
 * their largest (WH_RECORD_JSON_MAX_BYTES) stay under it; see the
 * static_assert in wh_file.c. */
#define WH_TOTAL_MAX 4096

/* A webhook's URL, in bytes: 2048 is what browsers, CDNs and most HTTP
 * servers take in a request line; a receiver's URL needs far less. */
#define WH_URL_MAX_BYTES 2048

/* A webhook's id: "wh_" and 24 base62 characters (142 random bits). */
#define WH_ID_PREFIX "wh_"
#define WH_ID_RANDOM_CHARS 24
#define WH_ID_BYTES (3 + WH_ID_RANDOM_CHARS)

/* The signing secret: 24 random bytes (API.md), shown as "whsec_" and
 * their base64 (32 characters), as the Standard Webhooks specification
 * writes secrets. */
#define WH_SECRET_BYTES 24
#define WH_SECRET_PREFIX "whsec_"
#define WH_SECRET_TEXT_BYTES (6 + 4 * ((WH_SECRET_BYTES + 2) / 3))

/* A delivery's webhook-signature header, "v1," and the base64 of a
 * SHA-256 (44 characters). */
#define WH_SIGNATURE_BYTES (3 + 44)

/* A webhook's last_error: a line for a person, cut to this many bytes
 * (an HTTP status, curl's error text, the retry window). */
#define WH_ERROR_MAX_BYTES 256

/* A delivery is acknowledged by a 2xx within 10 s (API.md); past it the
 * attempt is a timeout and is retried. */
#define WH_DELIVERY_TIMEOUT_MS 10000

/* Retries (API.md): the first about 1 s after the failure, each next about
 * twice the last, at most an hour, each pause moved by up to 20% either way
 * so that many webhooks failing together do not retry together. */
#define WH_RETRY_FIRST_MS 1000
#define WH_RETRY_MAX_MS (3600 * 1000)
#define WH_RETRY_JITTER_PERCENT 20

/* Positions reached by deliveries are written to the side file at most
 * this often (and at every create, delete, enable, disable and at drain):
 * a crash redelivers at most this much, and a busy feed costs at most
 * five file writes a second. */
#define WH_SAVE_INTERVAL_MS 200

/* Changes read from the feed at once for one webhook, then delivered one
 * by one: a read per change would walk the feed for every delivery. */
#define WH_READ_BATCH 64

/* When a store read fails for a reason that is not the receiver's (the
 * store is closing, out of memory), the webhook tries again this much
 * later, with no change to its state. */
#define WH_STORE_RETRY_MS 1000

/* The delivery thread sleeps until a commit, a retry or a save is due; it
 * also wakes this often with nothing to do, so that a wake-up lost to a
 * bug costs a minute, never a webhook. It is not a poll: an idle wake
 * reads nothing when no webhook is behind the feed's end. */
#define WH_IDLE_WAKE_MS 60000

#endif
