/*
 * fe_hostname.h: what a host name is, for --webhook-allow (fe_options.c)
 * and for a webhook's URL (plugins/webhooks/wh_url.c), which must agree.
 * A header of its own, inline, because a plugin links nothing of the
 * front end.
 *
 * A host name: dot-separated labels of letters, digits and '-', 1 to
 * FE_HOST_LABEL_MAX_BYTES each, none starting or ending with '-', at most
 * FE_HOST_NAME_MAX_BYTES in all, and not all digits ("1.2.3" or
 * "999.1.1.1" would be read as an address by some resolvers and as a name
 * by others: neither is a name).
 */
#ifndef FE_HOSTNAME_H
#define FE_HOSTNAME_H

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>

#include "fe_limits.h"

/* Whether s (len bytes, no NUL needed) is a host name. */
static inline bool fe_host_name_ok(const char *s, size_t len) {
  if (len == 0 || len > FE_HOST_NAME_MAX_BYTES) return false;
  size_t label = 0;
  bool digits_only = true;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || s[i] == '.') {
      if (label == 0 || label > FE_HOST_LABEL_MAX_BYTES || s[i - 1] == '-')
        return false;
      if (i < len) {
        label = 0;
        digits_only = true;
      }
      continue;
    }
    unsigned char c = (unsigned char)s[i];
    if (!isalnum(c) && c != '-') return false;
    if (c == '-' && label == 0) return false;
    if (!isdigit(c)) digits_only = false;
    label++;
  }
  return !digits_only;
}

#endif
