/* Retry policies: stateless backoff arithmetic in integers. */
#include "internal.h"

#include "finevent/retry.h"

#include <string.h>

void fe_retry_policy_init(fe_retry_policy_t *p) {
  if (p == NULL)
    return;
  memset(p, 0, sizeof *p);
  p->initial_ns = 1000000;
  p->coefficient_milli = 2000;
  p->jitter_milli = 100;
  p->max_interval_ns = 100 * p->initial_ns;
  p->max_attempts = 5;
}

int fe_retry_policy_non_retryable(fe_retry_policy_t *p, uint32_t reason) {
  if (p == NULL)
    return FE_EINVAL;
  if (reason >= FE_RETRY_REASONS)
    return FE_ERANGE;
  p->non_retryable[reason / 64] |= 1ull << (reason % 64);
  return 0;
}

int fe_retry_policy_check(const fe_retry_policy_t *p, fe_diag_t *d) {
  if (p == NULL)
    return fe__diag(d, FE_EINVAL, "retry policy is NULL");
  if (p->initial_ns == 0)
    return fe__diag(d, FE_ERANGE, "retry: initial_ns is 0; must be >= 1");
  if (p->coefficient_milli < 1000)
    return fe__diag(d, FE_ERANGE, "retry: coefficient_milli %u is below 1000 "
                    "(a backoff factor below 1.0)", p->coefficient_milli);
  if (p->jitter_milli > 1000)
    return fe__diag(d, FE_ERANGE, "retry: jitter_milli %u is above 1000",
                    p->jitter_milli);
  if (p->max_interval_ns < p->initial_ns)
    return fe__diag(d, FE_ERANGE, "retry: max_interval_ns %llu is below "
                    "initial_ns %llu", (unsigned long long)p->max_interval_ns,
                    (unsigned long long)p->initial_ns);
  return 0;
}

typedef unsigned __int128 u128;

/* initial * (c/1000)^e, saturating at cap (cap >= initial).  Square and
 * multiply in x1000 fixed point; once a factor alone would reach cap the
 * answer is cap, so no intermediate overflows. */
static uint64_t backoff(uint64_t initial, uint64_t c, uint32_t e, uint64_t cap) {
  u128 limit = (u128)cap * 1000 / initial + 1000; /* factor (x1000) at cap */
  if (limit > ((u128)1 << 60)) /* keeps base * base inside 128 bits */
    limit = (u128)1 << 60;
  u128 factor = 1000, base = c;
  while (e != 0 && factor < limit) {
    if (e & 1) {
      factor = factor * base / 1000;
      if (factor > limit)
        factor = limit;
    }
    e >>= 1;
    base = base * base / 1000;
    if (base > limit)
      base = limit;
  }
  u128 d = (u128)initial * factor / 1000;
  return d > cap ? cap : (uint64_t)d;
}

int fe_retry_next(const fe_retry_policy_t *p, uint32_t attempt,
                  uint32_t reason, uint64_t rnd, uint64_t *delay_ns) {
  if (p == NULL || delay_ns == NULL || attempt == 0)
    return FE_EINVAL;
  if (reason < FE_RETRY_REASONS &&
      (p->non_retryable[reason / 64] >> (reason % 64)) & 1)
    return FE_ENORETRY;
  if (p->max_attempts != 0 && attempt >= p->max_attempts)
    return FE_EEXHAUSTED;
  uint64_t d = backoff(p->initial_ns, p->coefficient_milli, attempt - 1,
                       p->max_interval_ns);
  uint64_t spread = (uint64_t)((u128)d * p->jitter_milli / 1000);
  /* d - spread + uniform [0, 2*spread]; d >= spread since jitter <= 1. */
  *delay_ns = d - spread + (spread ? rnd % (2 * spread + 1) : 0);
  return 0;
}
