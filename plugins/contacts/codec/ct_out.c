/*
 * ct_out.c: the contacts API's JSON answers, written with yajl_gen.
 *
 * Everything is streamed into the generator's buffer; no tree is built. A
 * contact object lists id, the fields it has in the engine's table order
 * (absent optional fields are left out rather than written as null, so that
 * an object shows what is stored), then created_at, updated_at and version
 * (and deleted_at for a contact in the trash). The plugin sends these
 * answers; contactctl dump writes the same objects.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ct_codec.h"

yajl_gen ct_gen_new(void) {
  yajl_gen g = yajl_gen_alloc(NULL);
  /* Stored strings were validated on the way in; a corrupted one would
   * have failed its record checksum before it got here. */
  if (g) yajl_gen_config(g, yajl_gen_validate_utf8, 0);
  return g;
}

void ct_gen_str(yajl_gen g, const char *s, size_t len) {
  yajl_gen_string(g, (const unsigned char *)s, len);
}

static void ct_gen_key(yajl_gen g, const char *key) {
  ct_gen_str(g, key, strlen(key));
}

void ct_gen_id(yajl_gen g, uint64_t id) {
  char digits[CS_ID_DIGITS + 1];
  cs_id_format(id, digits);
  ct_gen_str(g, digits, CS_ID_DIGITS);
}

void ct_gen_contact(yajl_gen g, const cs_contact *c) {
  char when[32];
  yajl_gen_map_open(g);
  ct_gen_key(g, cs_server_field_name(CS_SERVER_ID));
  ct_gen_id(g, c->id);
  for (int f = 0; f < CS_FIELD_COUNT; f++) {
    if (!c->field[f].ptr) continue;
    ct_gen_key(g, cs_field_name(f));
    ct_gen_str(g, c->field[f].ptr, c->field[f].len);
  }
  ct_gen_key(g, cs_server_field_name(CS_SERVER_CREATED_AT));
  cs_time_format(c->created_ms, when);
  ct_gen_key(g, when);
  ct_gen_key(g, cs_server_field_name(CS_SERVER_UPDATED_AT));
  cs_time_format(c->updated_ms, when);
  ct_gen_key(g, when);
  ct_gen_key(g, cs_server_field_name(CS_SERVER_VERSION));
  int n = snprintf(when, sizeof when, "%" PRIu64, c->version);
  yajl_gen_number(g, when, (size_t)n);
  if (c->deleted_ms) {
    ct_gen_key(g, "deleted_at");
    cs_time_format(c->deleted_ms, when);
    ct_gen_key(g, when);
  }
  yajl_gen_map_close(g);
}

void ct_gen_error(yajl_gen g, const ct_err *e) {
  yajl_gen_map_open(g);
  ct_gen_key(g, "error");
  yajl_gen_map_open(g);
  ct_gen_key(g, "code");
  ct_gen_key(g, e->code);
  ct_gen_key(g, "message");
  ct_gen_key(g, e->msg);
  if (e->field[0]) {
    ct_gen_key(g, "field");
    ct_gen_key(g, e->field);
  }
  if (e->id) {
    ct_gen_key(g, "id");
    ct_gen_id(g, e->id);
  }
  if (e->version) {
    char etag[CT_ETAG_BYTES];
    ct_etag_format(e->version, etag);
    ct_gen_key(g, "etag");
    ct_gen_key(g, etag);
  }
  yajl_gen_map_close(g);
  yajl_gen_map_close(g);
}
