/*
 * libfinevent: circuit breakers (resilience4j's CircuitBreaker semantics).
 *
 * A breaker sits in front of a call that can fail or hang (an execution
 * gateway, one breaker per venue) and stops sending it work while it is
 * sick.  States:
 *
 *   CLOSED     calls pass; their outcomes go into a sliding window.  Once
 *              the window holds at least minimum_calls outcomes, a failure
 *              rate >= failure_rate_threshold % or a slow-call rate >=
 *              slow_call_rate_threshold % opens the breaker.  A call is slow
 *              when it took >= slow_call_duration_ns (failed or not).
 *   OPEN       every call is rejected (FE_EBREAKER).  The first permission
 *              request at least wait_open_ns after opening moves it to
 *              HALF_OPEN (lazily: there is no timer thread).
 *   HALF_OPEN  permitted_calls_half_open trial calls pass, the rest are
 *              rejected.  When all trial outcomes are in, the same two rates
 *              (over the trial calls only) close the breaker again or open
 *              it.  With max_wait_half_open_ns > 0, a breaker still half-open
 *              that long after entering HALF_OPEN goes back to OPEN at the
 *              next call on it, so lost trial calls cannot keep it half-open.
 *   DISABLED      manual: every call passes, nothing is recorded.
 *   FORCED_OPEN   manual: every call is rejected.
 *   METRICS_ONLY  manual: every call passes and is recorded; the state never
 *                 changes by itself.
 *   fe_breaker_reset() returns to CLOSED with an empty window.
 *
 * Sliding windows.  FE_BREAKER_WINDOW_COUNT keeps the last window_size
 * outcomes (the oldest leaves when a new one arrives); there the trip needs
 * min(minimum_calls, window_size) outcomes, as in resilience4j.
 * FE_BREAKER_WINDOW_TIME keeps the outcomes of the last window_size seconds
 * of the breaker's clock, in one bucket per whole second (now_ns / 10^9);
 * a bucket that falls out of the window is cleared when the window is next
 * touched (a call, an outcome, fe_breaker_metrics()).
 *
 * Call protocol.  For each call:
 *
 *     uint64_t permit;
 *     if (fe_breaker_acquire(b, &permit) != 0)   FE_EBREAKER: do not call
 *       reject the order;
 *     else if (call the gateway) succeeded
 *       fe_breaker_on_success(b, permit);
 *     else
 *       fe_breaker_on_error(b, permit);
 *
 * Each permit is finished exactly once, by on_success, on_error, or
 * fe_breaker_release() when the call was not made after all.  The duration
 * of a call runs from its fe_breaker_acquire() to its outcome, on the
 * breaker's clock.  The permit remembers the state epoch it was issued in:
 * an outcome of a call permitted before a later transition (of any kind,
 * reset included) is not counted, so a slow straggler from the old CLOSED
 * state cannot reopen a breaker that has since closed again.  Limits of the
 * 64-bit permit: durations are measured modulo 2^48 ns (about 78 hours,
 * hence the bound on slow_call_duration_ns), and the epoch modulo 2^16 (an
 * outcome reported after exactly a multiple of 65536 further transitions
 * would be taken for current).
 *
 * Threads.  Every call may be made from any thread, concurrently, on the
 * same breaker, except fe_breaker_destroy().  A breaker holds one small
 * spinlock (test-and-test-and-set on __atomic, spinning then yielding the
 * CPU) over its window and state; it is held for O(1) work (O(buckets
 * expired) to advance a time window, at most window_size), with no
 * allocation, no system call and no user callback inside.  The calls that
 * take it are "blocking" in the strict sense (a preempted holder delays
 * the others); the fast paths named below take no lock and are wait-free.
 * The clock callback is called outside the lock.
 *
 * Lifecycle:
 *     fe_breaker_config_init(&cfg);   set name, thresholds, window, hooks
 *     fe_breaker_create(&cfg, &b, &diag);
 *     fe_breaker_acquire / on_success / on_error / release ... any thread
 *     fe_breaker_destroy(b);
 */
#ifndef FINEVENT_BREAKER_H
#define FINEVENT_BREAKER_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest name, terminating NUL included. */
#define FE_BREAKER_NAME_MAX 32
/* Largest window_size and permitted_calls_half_open accepted. */
#define FE_BREAKER_SIZE_MAX (UINT32_C(1) << 20)
/* slow_call_duration_ns must be below this (durations are measured modulo
 * 2^48 ns, see above). */
#define FE_BREAKER_DURATION_LIMIT (UINT64_C(1) << 48)

typedef struct fe_breaker fe_breaker_t;

/* Breaker states.  Values are stable. */
typedef enum fe_breaker_state {
  FE_BREAKER_CLOSED = 0,
  FE_BREAKER_OPEN = 1,
  FE_BREAKER_HALF_OPEN = 2,
  FE_BREAKER_DISABLED = 3,
  FE_BREAKER_FORCED_OPEN = 4,
  FE_BREAKER_METRICS_ONLY = 5
} fe_breaker_state_t;

/* Kinds of sliding window. */
typedef enum fe_breaker_window {
  FE_BREAKER_WINDOW_COUNT = 0, /* the last window_size calls */
  FE_BREAKER_WINDOW_TIME = 1   /* the last window_size seconds */
} fe_breaker_window_t;

/* Called once per state transition, on the thread whose call caused it,
 * after the transition took effect and with no lock held.
 *   name  the breaker's name (valid until fe_breaker_destroy()).
 *   from, to  the states before and after (always different).
 *   user  fe_breaker_config_t.user.
 * It may call any fe_breaker_ function on any breaker, this one included
 * (a transition it causes is reported by a nested call), but must not
 * destroy this breaker.  It runs inside the caller's acquire/outcome/manual
 * call, so keep it short (count, log to a queue).  Transitions made by
 * different threads may be reported in a different order than they
 * happened, and `to` may already be stale when it runs: read
 * fe_breaker_state() for the present. */
typedef void (*fe_breaker_on_state_fn)(const char *name,
                                       fe_breaker_state_t from,
                                       fe_breaker_state_t to, void *user);

/* Breaker configuration.  Initialise with fe_breaker_config_init(). */
typedef struct fe_breaker_config {
  const char *name;                   /* 1..31 bytes of [A-Za-z0-9_.:-],
                                         copied at create (default
                                         "default") */
  uint32_t failure_rate_threshold;    /* percent, 1..100 (default 50) */
  uint32_t slow_call_rate_threshold;  /* percent, 1..100 (default 100) */
  uint64_t slow_call_duration_ns;     /* 1..FE_BREAKER_DURATION_LIMIT-1
                                         (default 60 s) */
  fe_breaker_window_t window_type;    /* default FE_BREAKER_WINDOW_COUNT */
  uint32_t window_size;               /* calls or seconds,
                                         1..FE_BREAKER_SIZE_MAX (default
                                         100) */
  uint32_t minimum_calls;             /* >= 1 (default 100) */
  uint32_t permitted_calls_half_open; /* 1..FE_BREAKER_SIZE_MAX (default
                                         10) */
  uint64_t wait_open_ns;              /* >= 1 (default 60 s) */
  uint64_t max_wait_half_open_ns;     /* 0: unlimited (default 0) */
  /* Clock in nanoseconds, non-decreasing; NULL: fe_clock_now_ns().  Called
   * from every thread that uses the breaker, outside any lock, so it must
   * be thread-safe. */
  uint64_t (*now_ns)(void *clock_user);
  void *clock_user;
  fe_breaker_on_state_fn on_state;    /* may be NULL */
  void *user;                         /* passed to on_state */
} fe_breaker_config_t;

/* A snapshot taken under the breaker's lock: consistent with itself. */
typedef struct fe_breaker_metrics {
  fe_breaker_state_t state;
  /* Over the window that decides the current state: the sliding window in
   * CLOSED and METRICS_ONLY (and in OPEN when CLOSED opened it), the trial
   * calls in HALF_OPEN (and in OPEN when HALF_OPEN reopened it); empty in
   * DISABLED and FORCED_OPEN. */
  int32_t failure_rate_permille;  /* failed * 1000 / buffered, truncated;
                                     -1 below the minimum number of calls
                                     that a decision needs */
  int32_t slow_rate_permille;     /* likewise for slow calls */
  uint64_t buffered_calls;        /* outcomes in the window */
  uint64_t failed_calls;
  uint64_t slow_calls;            /* slow calls, failed or not */
  /* Since create, never reset (Prometheus-style counters). */
  uint64_t not_permitted_calls;   /* acquires that returned FE_EBREAKER */
  uint64_t transitions;           /* state transitions, manual included */
} fe_breaker_metrics_t;

/* Fills cfg with resilience4j's defaults: name "default", failure 50 %,
 * slow 100 % at 60 s, COUNT window of 100 calls, minimum 100 calls, 60 s
 * open, 10 trial calls, no half-open limit, fe_clock_now_ns, no callback.
 * cfg NULL: does nothing.  Cannot fail; thread-safe (touches only cfg). */
FE_API void fe_breaker_config_init(fe_breaker_config_t *cfg);

/* Checks cfg without allocating anything.
 *   cfg   in: read during the call only.
 *   diag  out, may be NULL: on failure, the code and a message naming the
 *         offending field and value.
 * Returns 0, FE_EINVAL (cfg NULL, unknown window_type), FE_ENAME (name
 * NULL, empty, too long or with a character outside [A-Za-z0-9_.:-]),
 * FE_ERANGE (a threshold outside 1..100, slow_call_duration_ns 0 or >=
 * FE_BREAKER_DURATION_LIMIT, window_size or permitted_calls_half_open 0 or
 * above FE_BREAKER_SIZE_MAX, minimum_calls 0, wait_open_ns 0).
 * Thread-safe, wait-free. */
FE_API int fe_breaker_config_check(const fe_breaker_config_t *cfg,
                                   fe_diag_t *diag);

/* Validates cfg (as fe_breaker_config_check()) and allocates a CLOSED
 * breaker with an empty window; nothing is allocated later.
 *   cfg   in: read during the call only (name is copied; the callbacks and
 *         their user pointers are kept and must stay valid until destroy).
 *   out   out: the breaker, owned by the caller, freed with
 *         fe_breaker_destroy(); untouched on failure.
 *   diag  out, may be NULL: on failure, the code and a message.
 * Returns 0, FE_EINVAL (cfg or out NULL, or as the check), FE_ENAME,
 * FE_ERANGE (as the check), FE_ENOMEM.  On failure nothing is allocated and
 * no callback runs.  Thread-safe; blocking (allocates). */
FE_API int fe_breaker_create(const fe_breaker_config_t *cfg,
                             fe_breaker_t **out, fe_diag_t *diag);

/* Frees b.  Accepts NULL.  No other call on b may be in progress or follow
 * (outstanding permits are simply forgotten).  Cannot fail. */
FE_API void fe_breaker_destroy(fe_breaker_t *b);

/* Asks permission for one call.  In OPEN, first moves to HALF_OPEN if
 * wait_open_ns has passed; in HALF_OPEN, first moves back to OPEN if
 * max_wait_half_open_ns has passed.  Either transition runs on_state.
 *   permit  out: on success, the token to pass to exactly one of
 *           fe_breaker_on_success(), fe_breaker_on_error(),
 *           fe_breaker_release() (start time and state epoch; opaque).
 *           Untouched on failure.
 * Returns 0 (make the call), FE_EBREAKER (do not: OPEN, FORCED_OPEN, or
 * HALF_OPEN with every trial slot taken; counted in not_permitted_calls),
 * FE_EINVAL (b or permit NULL).  Any thread.  Reads the clock once.
 * CLOSED, DISABLED, METRICS_ONLY and FORCED_OPEN: wait-free, no lock; OPEN
 * and HALF_OPEN: takes the lock, O(1). */
FE_API int fe_breaker_acquire(fe_breaker_t *b, uint64_t *permit);

/* Records that the call of permit succeeded, with its duration (slow or
 * not), and applies the transition it triggers (CLOSED -> OPEN; HALF_OPEN
 * -> CLOSED or OPEN when it is the last trial outcome), running on_state.
 * Ignored (returns 0, records nothing) when the permit is from an earlier
 * state epoch, or in DISABLED.  A HALF_OPEN breaker past
 * max_wait_half_open_ns first goes back to OPEN (the outcome is then from
 * an earlier epoch).
 *   permit  in: from fe_breaker_acquire() on b, not yet finished.
 * Returns 0, or FE_EINVAL (b NULL; nothing recorded).  Any thread.  Reads
 * the clock once.  Takes the lock (O(1), see the top) except when the
 * state is OPEN, FORCED_OPEN or DISABLED, where it is wait-free. */
FE_API int fe_breaker_on_success(fe_breaker_t *b, uint64_t permit);

/* As fe_breaker_on_success(), for a call that failed. */
FE_API int fe_breaker_on_error(fe_breaker_t *b, uint64_t permit);

/* Finishes a permit whose call was never made: records nothing, and in
 * HALF_OPEN (same epoch) frees the trial slot for another call.
 * Returns 0 or FE_EINVAL (b NULL).  Any thread; takes the lock only in
 * HALF_OPEN, O(1); otherwise wait-free.  May move HALF_OPEN back to OPEN
 * past max_wait_half_open_ns, as fe_breaker_on_success(). */
FE_API int fe_breaker_release(fe_breaker_t *b, uint64_t permit);

/* Manual transitions: to FORCED_OPEN, DISABLED, METRICS_ONLY, or (reset)
 * to CLOSED.  Each empties the window and the trial counts, starts a new
 * epoch (outstanding permits become stale) and, if the state changed,
 * counts a transition and runs on_state.  Reset always empties the window,
 * even from CLOSED.  Returns 0 or FE_EINVAL (b NULL).  Any thread; takes
 * the lock, O(1). */
FE_API int fe_breaker_force_open(fe_breaker_t *b);
FE_API int fe_breaker_disable(fe_breaker_t *b);
FE_API int fe_breaker_metrics_only(fe_breaker_t *b);
FE_API int fe_breaker_reset(fe_breaker_t *b);

/* The current state as an fe_breaker_state_t value (>= 0), or FE_EINVAL
 * when b is NULL.  The time-driven transitions (OPEN -> HALF_OPEN,
 * HALF_OPEN -> OPEN) happen at the next acquire or outcome, so an OPEN
 * breaker past its wait still reads OPEN here.  Any thread; wait-free (one
 * relaxed load, no lock). */
FE_API int fe_breaker_state(const fe_breaker_t *b);

/* The breaker's name (the copy made at create), or NULL when b is NULL.
 * Valid until fe_breaker_destroy().  Any thread; wait-free. */
FE_API const char *fe_breaker_name(const fe_breaker_t *b);

/* "CLOSED", "OPEN", "HALF_OPEN", "DISABLED", "FORCED_OPEN",
 * "METRICS_ONLY", or "UNKNOWN" for another value.  Static string; cannot
 * fail; thread-safe. */
FE_API const char *fe_breaker_state_name(int state);

/* Fills *m with a consistent snapshot (see fe_breaker_metrics_t).
 * Advances a time window to the present (clearing expired buckets) but
 * makes no transition.  Returns 0 or FE_EINVAL (b or m NULL; *m untouched).
 * Any thread; reads the clock once; takes the lock, O(1) plus the time
 * window advance. */
FE_API int fe_breaker_metrics(fe_breaker_t *b, fe_breaker_metrics_t *m);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_BREAKER_H */
