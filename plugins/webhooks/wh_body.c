/*
 * wh_body.c: the JSON of the webhooks API: POST /webhooks's body read,
 * GET /webhooks's objects and the {"id"} answers written.
 *
 * The body is read with yajl's event parser, not its tree: a member that
 * is not of its type stops the parse at once, so nesting never goes
 * deeper than the types list and a hostile megabyte of brackets costs no
 * stack. The first fault met in document order is the one reported.
 */
#include <stdio.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "wh.h"

enum { M_NONE = 0, M_URL, M_TYPES };

typedef struct body_parse {
  const wh_allow *allow;
  size_t allow_count;
  ct_err *e;
  int depth;  /* 0 outside, 1 in the object, 2 in the types list */
  int member; /* the member whose value comes next (M_*) */
  bool seen_url, seen_types;
  char *url;
  unsigned *types;
  size_t type_items;
} body_parse;

static int fail_type(body_parse *p, const char *what) {
  if (p->depth == 0) {
    ct_fail(p->e, 400, "invalid_json", NULL, 0, "the body is not an object");
  } else if (p->member == M_URL) {
    ct_fail(p->e, 400, "invalid_field", "url", 3, "url: %s, not a string",
            what);
  } else if (p->depth == 2) {
    ct_fail(p->e, 400, "invalid_field", "types", 5,
            "types: each item is a change type word, not %s", what);
  } else {
    ct_fail(p->e, 400, "invalid_field", "types", 5,
            "types: %s, not a list of change types", what);
  }
  return 0;
}

static int on_null(void *ctx) {
  body_parse *p = ctx;
  if (p->depth == 1 && p->member == M_TYPES) {
    p->member = M_NONE; /* null: every type, as when absent */
    return 1;
  }
  return fail_type(p, "null");
}

static int on_boolean(void *ctx, int v) {
  return fail_type(ctx, "a boolean");
}

static int on_number(void *ctx, const char *s, size_t len) {
  return fail_type(ctx, "a number");
}

static int on_url(body_parse *p, const char *s, size_t len) {
  char why[256];
  wh_url u;
  if (wh_url_parse(s, len, &u, why, sizeof(why)) != 0)
    return ct_fail(p->e, 400, "invalid_field", "url", 3, "url: %s", why), 0;
  if (!wh_allowed(p->allow, p->allow_count, &u))
    return ct_fail(p->e, 400, "invalid_field", "url", 3,
                   "url: this server does not call %s%s%s port %u "
                   "(its --webhook-allow list does not name it)",
                   strchr(u.host, ':') ? "[" : "", u.host,
                   strchr(u.host, ':') ? "]" : "", u.port),
           0;
  memcpy(p->url, s, len);
  p->url[len] = '\0';
  return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t len) {
  body_parse *p = ctx;
  const char *t = (const char *)s;
  if (p->depth == 1 && p->member == M_URL) {
    p->member = M_NONE;
    return on_url(p, t, len);
  }
  if (p->depth == 2) {
    int type = cs_change_type_from_name(t, len);
    if (type < 0)
      return ct_fail(p->e, 400, "invalid_field", "types", 5,
                     "types: not a change type (created, updated, deleted, "
                     "restored, purged)"),
             0;
    *p->types |= 1u << type;
    p->type_items++;
    return 1;
  }
  return fail_type(p, "a string");
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len) {
  body_parse *p = ctx;
  const char *k = (const char *)s;
  bool *seen;
  if (len == 3 && memcmp(k, "url", 3) == 0) {
    p->member = M_URL;
    seen = &p->seen_url;
  } else if (len == 5 && memcmp(k, "types", 5) == 0) {
    p->member = M_TYPES;
    seen = &p->seen_types;
  } else {
    return ct_fail(p->e, 400, "unknown_field", k, len,
                   "a webhook has url and types, not this member"),
           0;
  }
  if (*seen)
    return ct_fail(p->e, 400, "duplicate_field", k, len, "%.*s: given twice",
                   (int)len, k),
           0;
  *seen = true;
  return 1;
}

static int on_start_map(void *ctx) {
  body_parse *p = ctx;
  if (p->depth != 0) return fail_type(p, "an object");
  p->depth = 1;
  return 1;
}

static int on_end_map(void *ctx) {
  body_parse *p = ctx;
  p->depth = 0;
  return 1;
}

static int on_start_array(void *ctx) {
  body_parse *p = ctx;
  if (p->depth != 1 || p->member != M_TYPES) return fail_type(p, "a list");
  p->depth = 2;
  return 1;
}

static int on_end_array(void *ctx) {
  body_parse *p = ctx;
  p->depth = 1;
  p->member = M_NONE;
  if (p->type_items == 0)
    return ct_fail(p->e, 400, "invalid_field", "types", 5,
                   "types: an empty list (leave it out for every type)"),
           0;
  return 1;
}

static const yajl_callbacks body_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

int wh_body_parse(const char *body, size_t len, const wh_allow *allow,
                  size_t allow_count, char url[WH_URL_MAX_BYTES + 1],
                  unsigned *types, ct_err *e) {
  body_parse p = {.allow = allow,
                  .allow_count = allow_count,
                  .e = e,
                  .url = url,
                  .types = types};
  memset(e, 0, sizeof(*e));
  *types = 0;
  url[0] = '\0';
  yajl_handle h = yajl_alloc(&body_callbacks, NULL, &p);
  if (h == NULL) return ct_fail(e, 500, "internal", NULL, 0, "out of memory");
  yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  yajl_free(h);
  if (e->status != 0) return -1;
  if (st != yajl_status_ok)
    return ct_fail(e, 400, "invalid_json", NULL, 0,
                   "the body is not a JSON object");
  if (!p.seen_url)
    return ct_fail(e, 400, "missing_field", "url", 3,
                   "url: a webhook needs the URL to call");
  if (*types == 0) *types = CS_CHANGE_TYPES_ALL;
  return 0;
}

/* ---------------------------------------------------------------- output */

static void gen_key(yajl_gen g, const char *k) {
  yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

static void gen_time_or_null(yajl_gen g, int64_t ms) {
  if (ms == 0) {
    yajl_gen_null(g);
    return;
  }
  char text[32];
  cs_time_format(ms, text);
  ct_gen_str(g, text, strlen(text));
}

void wh_gen_hook(yajl_gen g, const wh_rec *r) {
  yajl_gen_map_open(g);
  gen_key(g, "id");
  ct_gen_str(g, r->id, strlen(r->id));
  gen_key(g, "url");
  ct_gen_str(g, r->url, strlen(r->url));
  gen_key(g, "types");
  yajl_gen_array_open(g);
  for (int t = 0; t < CS_CHANGE_TYPE_COUNT; t++)
    if (r->types & (1u << t)) gen_key(g, cs_change_type_name(t));
  yajl_gen_array_close(g);
  gen_key(g, "state");
  gen_key(g, wh_state_name(r->state));
  gen_key(g, "created_at");
  gen_time_or_null(g, r->created_ms);
  gen_key(g, "last_delivery_at");
  gen_time_or_null(g, r->last_delivery_ms);
  gen_key(g, "last_error");
  if (r->last_error[0] == '\0')
    yajl_gen_null(g);
  else
    ct_gen_str(g, r->last_error, strlen(r->last_error));
  yajl_gen_map_close(g);
}

void wh_gen_id(yajl_gen g, const char *id, const uint8_t *key) {
  yajl_gen_map_open(g);
  gen_key(g, "id");
  ct_gen_str(g, id, strlen(id));
  if (key != NULL) {
    char text[WH_SECRET_TEXT_BYTES + 1];
    wh_secret_format(key, text);
    gen_key(g, "secret");
    ct_gen_str(g, text, strlen(text));
  }
  yajl_gen_map_close(g);
}

static const char *const state_names[WH_STATE_COUNT] = {"active", "failing",
                                                        "disabled"};

const char *wh_state_name(int state) {
  return state >= 0 && state < WH_STATE_COUNT ? state_names[state] : "?";
}

int wh_state_from_name(const char *s, size_t len) {
  for (int i = 0; i < WH_STATE_COUNT; i++)
    if (strlen(state_names[i]) == len && memcmp(state_names[i], s, len) == 0)
      return i;
  return -1;
}
