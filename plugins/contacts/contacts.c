/*
 * contacts.c: the contacts plugin, every /contacts route of API.md: its
 * state and its route table (the handlers are in the ct_*.c files, ct.h).
 *
 *   POST   /contacts                create, or edit when the body has
 *                                   contact_id
 *   POST   /contacts/batch          create up to CS_BATCH_MAX contacts,
 *                                   each on its own
 *   POST   /contacts/upsert         create or update by email
 *   POST   /contacts/batch/upsert   up to CS_BATCH_MAX upserts, in order
 *   GET    /contacts                search (query string, or a JSON body;
 *                                   the query string wins parameter by
 *                                   parameter)
 *   POST   /contacts/query          free text, conditions, typo tolerance,
 *                                   sort, projection and facets (a read)
 *   GET    /contacts/trash          the deleted contacts, newest first
 *   GET    /contacts/changes        the change feed, in commit order
 *                                   (wait=: a long-poll)
 *   GET    /contacts/{id}           one contact, with its etag (fields=
 *                                   on it and on search: a projection)
 *   PATCH  /contacts/{id}           edit with the fields object as the body
 *   DELETE /contacts                delete (or purge), the id in the body
 *   DELETE /contacts/{id}           delete (?purge=true: for good)
 *   POST   /contacts/{id}/restore   back from the trash
 *
 * Every write takes an Idempotency-Key, and every write to one contact
 * If-Match (ct_safe.c).
 *
 * Each handler rejects bad input before it touches the store. Reads answer
 * before they return. Writes are handed to the store with a completion
 * callback and answered from it, on the store's commit thread, once the
 * record is durable; the handler returns CD_ASYNC and never waits.
 *
 * Existence never leaks across accounts: every store call is made with the
 * caller's account, the store answers another account's id exactly like a
 * missing one, and an id that cannot exist (not 20 digits) is answered the
 * same way too.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ct.h"

static int ct_create_state(const cd_host *host, cs_store *store,
                           void **state_out, char *errbuf, size_t errlen) {
  ct_state *st = malloc(sizeof *st);
  if (!st) {
    snprintf(errbuf, errlen, "contacts: out of memory");
    return -1;
  }
  st->host = host;
  st->store = store;
  st->feed = NULL;
  if (ct_searchby_names(st->searchby_list, sizeof st->searchby_list) >=
      sizeof st->searchby_list) {
    snprintf(errbuf, errlen, "contacts: the searchby list outgrew its room");
    free(st);
    return -1;
  }
  if (ct_feed_start(st, errbuf, errlen)) {
    ct_feed_free(st);
    free(st);
    return -1;
  }
  *state_out = st;
  return 0;
}

static void ct_destroy_state(void *state) {
  ct_feed_free(state);
  free(state);
}

static void ct_drain(void *state) {
  ct_feed_drain(state);
}

static size_t ct_metrics(void *state, char **out) {
  return ct_feed_metrics(state, out);
}

#define CT_READ CD_ROUTE_AUTH
#define CT_WRITE (CD_ROUTE_AUTH | CD_ROUTE_WRITE)

static const cd_route ct_routes[] = {
    {"POST", "/contacts", CT_WRITE, ct_handle_post},
    {"POST", "/contacts/batch", CT_WRITE, ct_handle_batch},
    {"POST", "/contacts/upsert", CT_WRITE, ct_handle_upsert},
    {"POST", "/contacts/batch/upsert", CT_WRITE, ct_handle_batch_upsert},
    {"GET", "/contacts", CT_READ, ct_handle_search},
    {"POST", "/contacts/query", CT_READ, ct_handle_query},
    {"GET", "/contacts/trash", CT_READ, ct_handle_trash},
    {"GET", "/contacts/changes", CT_READ, ct_handle_changes},
    {"GET", "/contacts/{id}", CT_READ, ct_handle_get},
    {"POST", "/contacts/{id}/restore", CT_WRITE, ct_handle_restore},
    {"PATCH", "/contacts/{id}", CT_WRITE, ct_handle_patch},
    {"DELETE", "/contacts", CT_WRITE, ct_handle_delete_body},
    {"DELETE", "/contacts/{id}", CT_WRITE, ct_handle_delete_id},
};

__attribute__((visibility("default"))) const cd_plugin contactd_plugin = {
    .api_version = CD_PLUGIN_API_VERSION,
    .name = "contacts",
    .create = ct_create_state,
    .destroy = ct_destroy_state,
    .routes = ct_routes,
    .route_count = sizeof ct_routes / sizeof ct_routes[0],
    .drain = ct_drain,
    .metrics = ct_metrics,
};
