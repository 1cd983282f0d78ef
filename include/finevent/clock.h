/*
 * libfinevent: cheap clocks.
 *
 * Hot events are stamped in "ticks", read from the CPU's time-stamp counter
 * (TSC) where that is safe, and converted to nanoseconds with one integer
 * multiply and shift (no division, no floating point).  Audit records take
 * wall-clock time from fe_clock_realtime_ns().
 *
 * Sources.  FE_CLOCK_SRC_TSC is used only on x86-64 CPUs that report an
 * invariant TSC (CPUID 0x80000007, EDX bit 8: constant rate, not stopped in
 * deep sleep), calibrated against CLOCK_MONOTONIC once, over about 20 ms, by
 * the first fe_clock_init().  Everywhere else - or when the environment
 * variable FE_CLOCK is "monotonic" - the source is FE_CLOCK_SRC_MONOTONIC:
 * ticks are then CLOCK_MONOTONIC nanoseconds read by clock_gettime(), and
 * every call below still works (just slower: roughly 20-30 ns a read
 * instead of under 10).
 *
 * Before the first successful fe_clock_init() or fe_clock_init_source(),
 * the source is FE_CLOCK_SRC_MONOTONIC.  Ticks are only comparable with
 * ticks read under the same source, so call fe_clock_init() at start-up,
 * before any thread keeps ticks.
 *
 * Accuracy.  fe_clock_now_ns() shares CLOCK_MONOTONIC's epoch and agrees
 * with it at calibration to within about a microsecond; afterwards the two
 * drift apart by the calibration error (typically a few parts per million)
 * plus whatever rate correction NTP applies to CLOCK_MONOTONIC.  Use it for
 * latencies, intervals and ordering inside the process; use CLOCK_MONOTONIC
 * itself to compare with other processes and fe_clock_realtime_ns() for
 * timestamps that leave the process.  fe_clock_ticks() is an unserialised
 * RDTSC: the CPU may execute it a few dozen instructions early or late, so
 * it is not a tool for timing a handful of instructions.
 *
 * Threads.  Every call is thread-safe.  The read calls are wait-free, make
 * no allocation and (with the TSC source) no system call.
 */
#ifndef FINEVENT_CLOCK_H
#define FINEVENT_CLOCK_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where ticks come from. */
typedef enum fe_clock_src {
  /* As an argument to fe_clock_init_source() only: choose as fe_clock_init()
   * does (FE_CLOCK, then TSC if invariant, else monotonic). */
  FE_CLOCK_SRC_AUTO = 0,
  /* The x86-64 time-stamp counter, invariant, calibrated at init. */
  FE_CLOCK_SRC_TSC = 1,
  /* clock_gettime(CLOCK_MONOTONIC): ticks are nanoseconds. */
  FE_CLOCK_SRC_MONOTONIC = 2
} fe_clock_src_t;

/* Chooses and calibrates the source, once: the first call that succeeds
 * (of this one and fe_clock_init_source()) fixes it, and later calls return
 * 0 at once and change nothing.  The choice: the environment variable
 * FE_CLOCK = "monotonic" forces FE_CLOCK_SRC_MONOTONIC; "tsc" demands the
 * TSC (and fails where it is not invariant); unset, empty or "auto" takes
 * the TSC where it is invariant and calibrates sanely, else monotonic.
 *   diag  out, may be NULL: on failure, the code and a message.
 * Returns 0, FE_EINVAL (FE_CLOCK holds another value), FE_ENOTSUP
 * (FE_CLOCK=tsc on a machine without an invariant TSC, or its calibration
 * failed).  On failure the source is unchanged (monotonic, unless chosen
 * before) and a later call tries again (rereading FE_CLOCK; a failed TSC
 * calibration is not repeated, it fails the same way).  Any thread, any number at once:
 * concurrent first callers wait for one calibration.  Blocking: the first
 * successful call sleeps about 20 ms when it calibrates the TSC. */
FE_API int fe_clock_init(fe_diag_t *diag);

/* Switches to source src now, whatever was chosen before (calibrating the
 * TSC the first time it is needed).  For start-up code that knows better
 * than the environment, and for tests.  FE_CLOCK_SRC_AUTO chooses exactly
 * as fe_clock_init() does, reading FE_CLOCK again.
 *   src   in: FE_CLOCK_SRC_AUTO, FE_CLOCK_SRC_TSC or FE_CLOCK_SRC_MONOTONIC.
 *   diag  out, may be NULL: on failure, the code and a message.
 * Returns 0, FE_EINVAL (src is none of these, or FE_CLOCK is invalid for
 * AUTO), FE_ENOTSUP (TSC asked for, by src or FE_CLOCK, where it is not
 * x86-64 with an invariant TSC, or its calibration failed).  On failure the
 * source is unchanged.  Thread-safe, but ticks read before the switch are
 * meaningless after it (fe_clock_now_ns() stays continuous to within the
 * calibration error): switch before threads keep ticks.  Blocking as
 * fe_clock_init(). */
FE_API int fe_clock_init_source(fe_clock_src_t src, fe_diag_t *diag);

/* The source in use: FE_CLOCK_SRC_TSC or FE_CLOCK_SRC_MONOTONIC.  Any
 * thread; wait-free. */
FE_API fe_clock_src_t fe_clock_source(void);

/* "auto", "tsc", "monotonic", or "unknown" for another value.  Static
 * string; cannot fail. */
FE_API const char *fe_clock_source_name(fe_clock_src_t src);

/* Raw ticks from the current source: the TSC, or CLOCK_MONOTONIC ns.  Only
 * differences and fe_clock_ticks_to_ns() of them mean anything.  Any
 * thread; wait-free; no system call with the TSC source (and with the
 * monotonic one, only where the vDSO cannot serve clock_gettime). */
FE_API uint64_t fe_clock_ticks(void);

/* Converts a number of ticks (a difference, or a raw reading: the
 * conversion is linear) to nanoseconds: one 64x64->128-bit multiply and a
 * shift, truncating.  Exact (the identity) for the monotonic source.  Any
 * thread; wait-free; cannot fail (a result above 2^64 - 1 ns, 584 years,
 * wraps). */
FE_API uint64_t fe_clock_ticks_to_ns(uint64_t ticks);

/* Converts nanoseconds to ticks, e.g. to turn a timeout into a tick
 * deadline once instead of converting every reading.  Multiply and shift,
 * as fe_clock_ticks_to_ns(), truncating; the two scale factors come from
 * the same calibration with ~1e-18 resolution, so a round trip loses only
 * the truncations: under 1 ns plus one tick.  Any thread; wait-free;
 * cannot fail. */
FE_API uint64_t fe_clock_ns_to_ticks(uint64_t ns);

/* Monotonic nanoseconds in CLOCK_MONOTONIC's epoch (see "Accuracy" above):
 * the TSC converted, or clock_gettime() itself.  Never decreases in one
 * thread (across threads, as far as the TSCs of the cores agree, which the
 * kernel checks at boot).  Returns 0 only if the clock cannot be read.  Any
 * thread; wait-free. */
FE_API uint64_t fe_clock_now_ns(void);

/* Wall-clock time, clock_gettime(CLOCK_REALTIME), in nanoseconds since
 * 1970-01-01 UTC: for audit records.  May jump (settimeofday, NTP steps).
 * Returns 0 only if the clock cannot be read.  Any thread; wait-free (a
 * vDSO read, normally no system call). */
FE_API uint64_t fe_clock_realtime_ns(void);

/* Ticks per second of the current source: the calibrated TSC frequency,
 * or 1000000000 for the monotonic source.  Any thread; wait-free. */
FE_API uint64_t fe_clock_ticks_per_sec(void);

/* fe_clock_realtime_ns() in the shape of the modules' injectable clocks
 * (`now_ns(clock_user)`; the argument is ignored): for tables whose times
 * must survive a restart, e.g. an idempotency table rebuilt from a
 * journal.  Thread-safe. */
FE_API uint64_t fe_clock_wall_fn(void *unused);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_CLOCK_H */
