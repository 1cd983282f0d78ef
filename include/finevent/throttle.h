/*
 * libfinevent: admission throttles (token buckets, lock-free).
 *
 * A throttle answers "may these n orders enter now?" at publish time: for
 * example "at most 100 orders per second per account, bursts of 10, and at
 * most 5000 per second overall".  A rejected admission returns the distinct
 * code FE_ETHROTTLED, is counted, and consumes nothing: the caller then
 * does not touch the ring.
 *
 * Buckets.  A throttle has an optional global bucket and optional per-key
 * buckets (the key is the account number; one bucket per distinct key, made
 * on the key's first admission).  Each bucket has a rate (tokens per
 * second) and a burst (capacity, in tokens); it starts full.  An admission
 * of n orders takes n tokens from the global bucket and n from the key's
 * bucket, or, if either holds fewer than n, takes nothing from either.
 *
 * Rate precision.  Time is integer nanoseconds; a token is worth
 * T = ceil(10^9 / rate) ns (the emission interval), so the enforced rate is
 * 10^9 / T: exactly the configured rate when it divides 10^9 (1, 2, 4, 5,
 * 8, 10, ..., 100, 1000, ...), otherwise a little lower, never higher (the
 * shortfall is below rate / 10^9 relative: 0.0000001 % at 1000/s).  Tokens
 * refill continuously at ns resolution, not once per second.
 *
 * Keys.  Per-key buckets live in a fixed table of max_keys entries, all
 * allocated by fe_throttle_create(); a key stays for the throttle's
 * lifetime (there is no deletion: max_keys bounds the memory, and
 * fe_throttle_reset() empties the table).  When max_keys distinct keys are
 * present, the first admission of a new key fails with FE_ETABLEFULL
 * (counted); no key is ever evicted and present keys keep working (see
 * fe_throttle_admit() for the one concurrent subtlety).  Every
 * uint64_t is a valid key, 0 included.
 *
 * Clock.  Admissions read the time from the configured clock (default
 * fe_clock_now_ns()); its readings must stay below 2^63 ns and should not
 * go backwards (if they do, the buckets see no refill until time catches
 * up again, and may throttle meanwhile: never admit more).
 *
 * Threads.  fe_throttle_admit() and fe_throttle_stats() may be called from
 * any number of threads at once; admit is lock-free (compare-and-swap
 * loops that retry only when another admission changed the same bucket),
 * never allocates, locks, or makes a system call of its own (the default
 * clock makes none with the TSC source; see clock.h).  fe_throttle_reset()
 * needs every admission stopped; fe_throttle_destroy() needs every call
 * stopped.
 *
 * Lifecycle:
 *     fe_throttle_config_init(&cfg);   set key_rate, key_burst, max_keys ...
 *     fe_throttle_create(&cfg, &t, &diag);
 *     if (fe_throttle_admit(t, order->account, 1) == 0) publish ...
 *     fe_throttle_destroy(t);
 */
#ifndef FINEVENT_THROTTLE_H
#define FINEVENT_THROTTLE_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest accepted rate (tokens per second): a token is then still >= 1 ns. */
#define FE_THROTTLE_RATE_MAX UINT64_C(1000000000)
/* Largest accepted burst (tokens). */
#define FE_THROTTLE_BURST_MAX UINT64_C(1000000000)
/* Largest accepted max_keys: the table then takes 2 GiB (16 bytes a slot,
 * at most half the slots used). */
#define FE_THROTTLE_MAX_KEYS_MAX (UINT64_C(1) << 26)
/* Default max_keys. */
#define FE_THROTTLE_DEFAULT_MAX_KEYS UINT64_C(65536)

typedef struct fe_throttle fe_throttle_t;

/* Throttle configuration.  Initialise with fe_throttle_config_init(). */
typedef struct fe_throttle_config {
  /* Global bucket, shared by every key: both 0 (the default) for no global
   * limit, else rate 1..FE_THROTTLE_RATE_MAX tokens per second and burst
   * 1..FE_THROTTLE_BURST_MAX tokens. */
  uint64_t global_rate;
  uint64_t global_burst;
  /* Per-key buckets, same ranges: both 0 (the default) for no per-key
   * limit.  At least one of the two limits must be set. */
  uint64_t key_rate;
  uint64_t key_burst;
  /* Distinct keys the table can hold, 1..FE_THROTTLE_MAX_KEYS_MAX (default
   * FE_THROTTLE_DEFAULT_MAX_KEYS).  Ignored (nothing allocated) without a
   * per-key limit. */
  uint64_t max_keys;
  /* Time source in ns, called once per admission from the admitting thread
   * with clock_user; it must be thread-safe and must not call back into
   * the throttle.  NULL (the default): fe_clock_now_ns(). */
  uint64_t (*now_ns)(void *clock_user);
  void *clock_user;
} fe_throttle_config_t;

/* Counters since create or the last reset.  Each counts calls (an
 * admission of n orders counts once).  Every call that gets past argument
 * checking lands in exactly one of the first four, so at rest
 * admitted + throttled_global + throttled_key + table_full = such calls. */
typedef struct fe_throttle_stats {
  uint64_t admitted;         /* returned 0 */
  uint64_t throttled_global; /* FE_ETHROTTLED: the global bucket was short */
  uint64_t throttled_key;    /* FE_ETHROTTLED: the key's bucket was short
                                (checked first: counts also when both were) */
  uint64_t table_full;       /* FE_ETABLEFULL */
  uint64_t rollbacks;        /* admissions that took key tokens, then found
                                the global bucket emptied by a concurrent
                                admission and gave them back (also counted
                                in throttled_global) */
  uint64_t keys;             /* distinct keys in the table (account 0
                                included) */
} fe_throttle_stats_t;

/* Fills cfg with the defaults: no global limit, no per-key limit (set at
 * least one before create), max_keys FE_THROTTLE_DEFAULT_MAX_KEYS, the
 * default clock.  Does nothing when cfg is NULL.  Cannot fail; thread-safe
 * (touches only cfg). */
FE_API void fe_throttle_config_init(fe_throttle_config_t *cfg);

/* Validates cfg, then allocates and pre-faults the throttle and its key
 * table, all buckets full.
 *   cfg   in: read during the call only.
 *   out   out: the new throttle, owned by the caller, freed with
 *         fe_throttle_destroy(); untouched on failure.
 *   diag  out, may be NULL: on failure, the code and a message naming the
 *         offending field and value.
 * Returns 0, FE_EINVAL (cfg or out NULL; a rate set without its burst or
 * the reverse; neither limit set; clock_user set without now_ns),
 * FE_ERANGE (a rate or burst above its maximum; max_keys 0 or above
 * FE_THROTTLE_MAX_KEYS_MAX with a per-key limit), FE_ENOMEM.  On failure
 * nothing is allocated.  Thread-safe; blocking (allocates and touches
 * memory, O(max_keys)). */
FE_API int fe_throttle_create(const fe_throttle_config_t *cfg,
                              fe_throttle_t **out, fe_diag_t *diag);

/* Frees t and its table.  Accepts NULL.  No other call on t may be in
 * progress or follow.  Cannot fail. */
FE_API void fe_throttle_destroy(fe_throttle_t *t);

/* Admits n orders for key now, or rejects them all.
 *   t    in: the throttle.
 *   key  in: the account; any value (ignored without a per-key limit).
 *   n    in: orders to admit at once, 1..the smallest configured burst.
 * Returns 0 (n tokens taken from the global bucket and from key's bucket),
 * FE_ETHROTTLED (one of the buckets holds fewer than n tokens: nothing is
 * taken from either, except in the rare case a rollback describes below),
 * FE_ETABLEFULL (key is new and the table already holds max_keys keys:
 * nothing taken; retrying will fail the same way until a reset), FE_EINVAL
 * (t NULL or n 0), FE_ERANGE (n above a configured burst: it could never
 * be admitted).  The last two are not counted.
 * Rollback: the key's tokens are taken before the global ones; if a
 * concurrent admission empties the global bucket in between, they are
 * given back, less the tokens the bucket regained meanwhile (so a rollback
 * never credits more than was taken, and may credit a fraction of a token
 * less: the nanoseconds between two clock readings).  Only while the
 * tokens are out can another admission of the same key be throttled for
 * lack of them.
 * FE_ETABLEFULL is never spurious: the key was absent and the table held
 * max_keys keys at one moment during the call.  Conversely, threads that
 * insert distinct new keys at the very moment the table reaches max_keys
 * may all succeed: the table can end up to (such threads - 1) keys over
 * max_keys (never beyond its fixed memory; exact with one thread).
 * Any thread, concurrently with other admissions and fe_throttle_stats();
 * lock-free; O(1) expected (one hash and a short probe; a few more probes
 * when the table is nearly full); no allocation, lock, or system call
 * (other than the configured clock's); reads the clock once (twice on a
 * rollback). */
FE_API int fe_throttle_admit(fe_throttle_t *t, uint64_t key, uint32_t n);

/* Refills every bucket, forgets every key and zeroes the counters: t is
 * then as fe_throttle_create() made it.  Returns 0 or FE_EINVAL (t NULL).
 * No fe_throttle_admit() on t may run concurrently (it could leave a
 * half-made key); fe_throttle_stats() may (it sees a mixture).  Wait-free,
 * O(max_keys). */
FE_API int fe_throttle_reset(fe_throttle_t *t);

/* Fills *out with t's counters.  Returns 0 or FE_EINVAL (a NULL argument).
 * Any thread, concurrently with admissions: each counter is read
 * atomically, but they are not one snapshot (they add up once admissions
 * stop).
 * Wait-free. */
FE_API int fe_throttle_stats(const fe_throttle_t *t, fe_throttle_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_THROTTLE_H */
