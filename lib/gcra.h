/*
 * GCRA, the token bucket of one word: the arithmetic shared by the
 * admission throttles (throttle.c) and the compliance kit's per-account
 * throttle (compliance.c), each of which keeps its own words and memory
 * order.
 *
 * A bucket is one 64-bit word, its "theoretical arrival time" (tat), in ns
 * on its clock.  With emission interval T = ceil(1e9 / rate) ns and limit
 * L = T * burst, the bucket at time now holds
 *
 *     tokens(now) = burst - (max(tat, now) - now) / T
 *
 * i.e. max(tat, now) - now is the bucket's debt in ns: T per token taken,
 * paid off at 1 ns per ns of time (one token per T ns, the rate), and
 * never below 0 (the max: a bucket never holds more than burst).  Taking n
 * tokens is tat' = max(tat, now) + T * n, and it is allowed when the debt
 * stays within the capacity:
 *
 *     tat' - now <= L          <=>   tokens(now) >= n
 *
 * which is exactly a token bucket of that rate and burst, refilled
 * continuously at ns resolution, with no timer and one word of state.
 * (For n = 1 this is the textbook test now >= tat - tau with
 * tau = T * (burst - 1); for n > 1 the textbook form would admit n orders
 * when only one token is left, so we test the whole debt instead.)  A
 * fresh or reset bucket has tat = 0: full.  Bounds: T <= 1e9 and
 * n <= burst <= 1e9, so T * n <= L <= 1e18, and tat' <= now + 1e18 cannot
 * overflow while now < 2^63.
 */
#ifndef FE_GCRA_H
#define FE_GCRA_H

#include <stdint.h>

/* The emission interval T of rate per second, in ns: ceil(1e9 / rate), so
 * never faster than the rate; 0 for rate 0 (no limit). */
static inline uint64_t fe__gcra_interval(uint64_t rate) {
  return rate == 0 ? 0 : (UINT64_C(1000000000) + rate - 1) / rate;
}

/* The tat after taking cost ns of tokens (T * n) at now from a bucket of
 * capacity limit (T * burst), or 0 when it holds too few (a valid tat is
 * always > now >= 0). */
static inline uint64_t fe__gcra_take(uint64_t tat, uint64_t now, uint64_t cost,
                                     uint64_t limit) {
  uint64_t next = (tat > now ? tat : now) + cost;
  return next - now <= limit ? next : 0;
}

#endif /* FE_GCRA_H */
