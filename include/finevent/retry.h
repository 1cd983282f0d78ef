/*
 * libfinevent: retry policies (Temporal's RetryPolicy semantics, in integer
 * arithmetic).
 *
 * A policy answers one question: after attempt `attempt` failed with reason
 * `reason`, may the work be tried again, and after how long?  It holds no
 * state and never sleeps; the stage cascade and the saga coordinator keep
 * the attempt counts and the timers.
 *
 *   delay(n) = min(initial * coefficient^(n-1), max_interval)   for retry n
 *
 * (the factor saturates at 2^60/1000, about 1.15e15, so no arithmetic
 * overflows) then spread by +/- jitter so that retries of many orders that failed
 * together do not come back together.  max_attempts counts every attempt,
 * the first included (1 means "never retry"; 0 means "no limit"), as in
 * Temporal.
 */
#ifndef FINEVENT_RETRY_H
#define FINEVENT_RETRY_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FE_RETRY_REASONS 256 /* reasons 0..255 (the bus's FE_REASON_MAX) */

typedef struct fe_retry_policy {
  uint64_t initial_ns;      /* delay before the first retry (default 1 ms) */
  uint32_t coefficient_milli; /* backoff factor x1000, >= 1000 (default
                                 2000: each delay doubles) */
  uint32_t jitter_milli;    /* spread, 0..1000: the delay is drawn from
                               [d - d*j, d + d*j] (default 100: +/- 10 %) */
  uint64_t max_interval_ns; /* cap on a delay before jitter, >= initial
                               (default 100 * initial) */
  uint32_t max_attempts;    /* attempts in all, first included; 0: no limit
                               (default 5) */
  uint32_t reserved;
  uint64_t non_retryable[FE_RETRY_REASONS / 64]; /* bit r: reason r is never
                                                    retried */
} fe_retry_policy_t;

/* Fills p with the defaults above.  Cannot fail. */
FE_API void fe_retry_policy_init(fe_retry_policy_t *p);

/* Marks reason (0..FE_RETRY_REASONS-1) as never retried.  Returns 0,
 * FE_EINVAL (p NULL) or FE_ERANGE (reason too large).  Not thread-safe
 * against concurrent readers of p: configure before sharing. */
FE_API int fe_retry_policy_non_retryable(fe_retry_policy_t *p, uint32_t reason);

/* Validates p.  Returns 0, FE_EINVAL (p NULL), FE_ERANGE (initial_ns 0,
 * coefficient below 1000, jitter above 1000, max_interval below initial),
 * with a message naming the field in diag (may be NULL).  Thread-safe. */
FE_API int fe_retry_policy_check(const fe_retry_policy_t *p, fe_diag_t *diag);

/* After attempt `attempt` (1 = the first try) failed with `reason`: stores
 * in *delay_ns how long to wait before the next attempt and returns 0, or
 * returns FE_ENORETRY (reason is non-retryable) or FE_EEXHAUSTED (that was
 * the last attempt max_attempts allows), leaving *delay_ns untouched.
 * `rnd` is any 64-bit random value (the caller's generator: keeps the
 * policy stateless and tests deterministic); it only places the delay
 * inside the jitter range.  FE_EINVAL for NULL pointers or attempt 0.
 * p must have passed fe_retry_policy_check().  Thread-safe, wait-free, no
 * allocation: O(log attempt). */
FE_API int fe_retry_next(const fe_retry_policy_t *p, uint32_t attempt,
                         uint32_t reason, uint64_t rnd, uint64_t *delay_ns);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_RETRY_H */
