/*
 * wh_retry.c: the pause before a failed delivery is tried again.
 *
 * API.md: the first about 1 s, each next about twice the last, at most an
 * hour, with up to 20% jitter. The base doubles from WH_RETRY_FIRST_MS and
 * stops growing at WH_RETRY_MAX_MS; the jitter multiplies it by a factor
 * drawn uniformly from [1 - J, 1 + J] (J = WH_RETRY_JITTER_PERCENT), in
 * steps of a thousandth of a percent; the result is never above
 * WH_RETRY_MAX_MS, so a webhook that fails for days is tried about once an
 * hour, never less often. How long the retries go on is the caller's
 * business (the retry window).
 */
#include "wh.h"

/* The jitter's resolution: the factor moves in steps of 1/WH_JITTER_STEPS
 * of the base. */
#define WH_JITTER_STEPS 100000

int64_t wh_retry_delay_ms(uint32_t failures, uint32_t rnd) {
  int64_t base = WH_RETRY_FIRST_MS;
  for (uint32_t i = 1; i < failures && base < WH_RETRY_MAX_MS; i++)
    base *= 2;
  if (base > WH_RETRY_MAX_MS) base = WH_RETRY_MAX_MS;
  /* Up to span steps either way; 2^32 is no multiple of 2 * span + 1, which
   * favours some steps by less than one part in 10^5. */
  const int64_t span = (int64_t)WH_JITTER_STEPS * WH_RETRY_JITTER_PERCENT / 100;
  int64_t step = (int64_t)(rnd % (uint32_t)(2 * span + 1)) - span;
  int64_t delay = base + base * step / WH_JITTER_STEPS;
  return delay > WH_RETRY_MAX_MS ? WH_RETRY_MAX_MS : delay;
}
