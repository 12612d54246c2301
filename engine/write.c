/*
 * write.c: the safe writes (cs_write_apply), idempotency keys and the
 * trash. Being built: every call answers -ENOSYS for now.
 */
#include <errno.h>

#include "cs.h"
#include "err.h"

int cs_write_apply(cs_store *s, cs_write *w, cs_outcome *out, cs_error *err) {
  (void)s, (void)w, (void)out;
  return cs_err(err, -ENOSYS, "not built yet");
}

int cs_idem_begin(cs_store *s, uint32_t account, const char *key,
                  size_t key_len, const uint8_t fp[CS_IDEM_FP_BYTES],
                  cs_answer *replay, cs_error *err) {
  (void)s, (void)account, (void)key, (void)key_len, (void)fp, (void)replay;
  return cs_err(err, -ENOSYS, "not built yet");
}

void cs_idem_release(cs_store *s, uint32_t account, const char *key,
                     size_t key_len) {
  (void)s, (void)account, (void)key, (void)key_len;
}

int cs_idem_finish(cs_store *s, uint32_t account, const char *key,
                   size_t key_len, const cs_answer *a, cs_done_fn done,
                   void *ctx, cs_error *err) {
  (void)s, (void)account, (void)key, (void)key_len, (void)a, (void)done;
  (void)ctx;
  return cs_err(err, -ENOSYS, "not built yet");
}

int cs_trash_list(cs_store *s, uint32_t account, uint64_t before,
                  uint32_t limit, cs_page *out, uint64_t *next,
                  cs_error *err) {
  (void)s, (void)account, (void)before, (void)limit, (void)out, (void)next;
  return cs_err(err, -ENOSYS, "not built yet");
}
