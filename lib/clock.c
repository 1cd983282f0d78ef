/* Cheap clocks: see include/finevent/clock.h.
 *
 * The state of each source lives in an immutable clock_state_t; `current`
 * points at the one in use.  The monotonic state is a constant; the TSC
 * state is written once, by the first calibration, before anything
 * publishes a pointer to it, and never again.  So a reader that loaded
 * `current` may use the fields it points at for as long as it likes, even
 * while another thread switches sources, and the read path takes no lock:
 * one acquire load (a plain mov on x86-64), then RDTSC.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */

#include "finevent/clock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#define FE__HAVE_TSC 1
#else
#define FE__HAVE_TSC 0
#endif

#include "internal.h"

#define NS_PER_SEC UINT64_C(1000000000)
#define CALIBRATE_NS UINT64_C(20000000) /* 20 ms: error ~1e-6 */

typedef struct clock_state {
  fe_clock_src_t src;
  uint32_t shift;         /* ns = ticks * mult >> shift */
  uint64_t mult;
  uint32_t inv_shift;     /* ticks = ns * inv_mult >> inv_shift */
  uint64_t inv_mult;
  uint64_t base_ticks;    /* a TSC reading ... */
  uint64_t base_ns;       /* ... and the CLOCK_MONOTONIC time it was taken */
  uint64_t ticks_per_sec;
} clock_state_t;

static const clock_state_t mono_state = {
    FE_CLOCK_SRC_MONOTONIC, 0, 1, 0, 1, 0, 0, NS_PER_SEC};

/* Written by calibrate_tsc() under `lock`, before the first release store
 * of &tsc_state into `current`; read-only afterwards. */
static clock_state_t tsc_state;

/* The source in use.  Written (release, S1) under `lock` by
 * publish(); read (acquire, L1) by every read call.  S1 pairs with L1: a
 * reader that sees &tsc_state sees the calibration written before it. */
static const clock_state_t *current = &mono_state;

/* Set to 1 (release, S2) by fe_clock_init()/fe_clock_init_source() once a
 * source has been chosen successfully; read (acquire, L2) by the
 * fe_clock_init() fast path.  S2 pairs with L2, so a caller returning
 * early also sees the `current` store that preceded S2. */
static int chosen;

/* Serialises choosing and calibrating (never taken by the read calls).
 * Guards tsc_status, tsc_msg and the writes to tsc_state. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
#if FE__HAVE_TSC
static int tsc_status = 1; /* 1 untried, 0 calibrated, < 0 failure code */
static char tsc_msg[FE_DIAG_MAX];
#endif

/* ----------------------------------------------------------------- helpers */

static inline const clock_state_t *state(void) {
  return __atomic_load_n(&current, __ATOMIC_ACQUIRE); /* L1, pairs with S1 */
}

static inline uint64_t scale(uint64_t x, uint64_t mult, uint32_t shift) {
#if defined(__SIZEOF_INT128__)
  __extension__ typedef unsigned __int128 u128;
  return (uint64_t)(((u128)x * mult) >> shift);
#else
  return (x * mult) >> shift; /* only the identity (1, 0) gets here */
#endif
}

static inline uint64_t read_clock(clockid_t id) {
  struct timespec ts;
  if (FE_UNLIKELY(clock_gettime(id, &ts) != 0)) return 0;
  return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

#if FE__HAVE_TSC
static inline uint64_t rdtsc(void) { return __builtin_ia32_rdtsc(); }

static int tsc_invariant(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000007u, &a, &b, &c, &d)) return 0;
  return (d >> 8) & 1u;
}

/* One (TSC, CLOCK_MONOTONIC) pair taken as close together as possible: the
 * TSC is read on both sides of clock_gettime() (fenced, so the reads stay
 * in place) and the narrowest of several tries wins; the pair's error is
 * then half that width, some tens of nanoseconds. */
static int sample_pair(uint64_t *tsc, uint64_t *ns) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 16; i++) {
    __builtin_ia32_lfence();
    uint64_t t0 = rdtsc();
    __builtin_ia32_lfence();
    uint64_t n = read_clock(CLOCK_MONOTONIC);
    __builtin_ia32_lfence();
    uint64_t t1 = rdtsc();
    if (n == 0 || t1 < t0 || t1 - t0 >= best) continue;
    best = t1 - t0;
    *tsc = t0 + best / 2;
    *ns = n;
  }
  return best != UINT64_MAX;
}

static void sleep_until(uint64_t deadline_ns) {
  for (;;) {
    uint64_t now = read_clock(CLOCK_MONOTONIC);
    if (now == 0 || now >= deadline_ns) return;
    struct timespec d = {(time_t)((deadline_ns - now) / NS_PER_SEC),
                         (long)((deadline_ns - now) % NS_PER_SEC)};
    nanosleep(&d, NULL); /* EINTR: the loop sleeps the rest */
  }
}

/* Picks mult and shift with num / den = mult / 2^shift, the largest
 * shift (<= 62) that keeps mult below 2^63: a relative resolution near
 * 1e-18, far below the calibration error, so that ticks->ns->ticks round
 * trips lose under a tick.  x * mult then stays below 2^127 for any x. */
static void pick_scale(uint64_t num, uint64_t den, uint64_t *mult,
                       uint32_t *shift) {
  __extension__ typedef unsigned __int128 u128;
  uint32_t s = 0;
  while (s < 62 && ((u128)num << (s + 1)) / den < ((u128)1 << 63)) s++;
  *shift = s;
  *mult = (uint64_t)((((u128)num << s) + den / 2) / den);
}

/* Fills tsc_state; called with `lock` held, before any publication of
 * &tsc_state. */
static int calibrate_tsc(fe_diag_t *diag) {
  __extension__ typedef unsigned __int128 u128;
  if (!tsc_invariant())
    return fe__diag(diag, FE_ENOTSUP,
                    "clock: the CPU reports no invariant TSC (CPUID "
                    "0x80000007 EDX bit 8)");
  uint64_t t0, n0, t1, n1;
  if (!sample_pair(&t0, &n0))
    return fe__diag(diag, FE_ENOTSUP, "clock: CLOCK_MONOTONIC unreadable");
  sleep_until(n0 + CALIBRATE_NS);
  if (!sample_pair(&t1, &n1))
    return fe__diag(diag, FE_ENOTSUP, "clock: CLOCK_MONOTONIC unreadable");
  uint64_t dt = t1 - t0, dn = n1 - n0;
  if (t1 <= t0 || dn < CALIBRATE_NS / 2)
    return fe__diag(diag, FE_ENOTSUP,
                    "clock: TSC calibration failed (%llu ticks in %llu ns)",
                    (unsigned long long)(t1 - t0), (unsigned long long)dn);
  uint64_t hz = (uint64_t)(((u128)dt * NS_PER_SEC + dn / 2) / dn);
  /* 1 MHz .. 100 GHz: outside that the TSC is not what we think it is. */
  if (hz < UINT64_C(1000000) || hz > UINT64_C(100000000000))
    return fe__diag(diag, FE_ENOTSUP,
                    "clock: implausible TSC frequency %llu Hz",
                    (unsigned long long)hz);
  tsc_state.src = FE_CLOCK_SRC_TSC;
  pick_scale(dn, dt, &tsc_state.mult, &tsc_state.shift);
  pick_scale(dt, dn, &tsc_state.inv_mult, &tsc_state.inv_shift);
  tsc_state.base_ticks = t1;
  tsc_state.base_ns = n1;
  tsc_state.ticks_per_sec = hz;
  return 0;
}
#endif /* FE__HAVE_TSC */

/* Calibrates the TSC the first time; later calls repeat the first
 * outcome (a failed calibration is not retried: it would cost 20 ms per
 * call and fail again).  `lock` held. */
static int tsc_ready(fe_diag_t *diag) {
#if FE__HAVE_TSC
  if (tsc_status == 1) {
    fe_diag_t d = {0, ""};
    tsc_status = calibrate_tsc(&d);
    memcpy(tsc_msg, d.msg, sizeof tsc_msg);
  }
  if (tsc_status == 0) return 0;
  return fe__diag(diag, tsc_status, "%s", tsc_msg);
#else
  return fe__diag(diag, FE_ENOTSUP, "clock: no TSC source on this architecture");
#endif
}

static void publish(const clock_state_t *s) {
  __atomic_store_n(&current, s, __ATOMIC_RELEASE); /* S1, pairs with L1 */
  __atomic_store_n(&chosen, 1, __ATOMIC_RELEASE);  /* S2, pairs with L2 */
}

/* Resolves FE_CLOCK_SRC_AUTO through the environment.  Sets *fallback when
 * a missing TSC should quietly mean monotonic. */
static int resolve_auto(fe_clock_src_t *src, int *fallback, fe_diag_t *diag) {
  const char *env = getenv("FE_CLOCK");
  *fallback = 0;
  if (env == NULL || env[0] == '\0' || strcmp(env, "auto") == 0) {
    *src = FE_CLOCK_SRC_TSC;
    *fallback = 1;
  } else if (strcmp(env, "monotonic") == 0) {
    *src = FE_CLOCK_SRC_MONOTONIC;
  } else if (strcmp(env, "tsc") == 0) {
    *src = FE_CLOCK_SRC_TSC;
  } else {
    return fe__diag(diag, FE_EINVAL,
                    "clock: FE_CLOCK=\"%.64s\": expected auto, tsc or "
                    "monotonic", env);
  }
  return 0;
}

/* Chooses src and publishes it.  `lock` held. */
static int choose(fe_clock_src_t src, fe_diag_t *diag) {
  int fallback = 0;
  if (src == FE_CLOCK_SRC_AUTO) {
    int rc = resolve_auto(&src, &fallback, diag);
    if (rc != 0) return rc;
  }
  if (src == FE_CLOCK_SRC_MONOTONIC) {
    publish(&mono_state);
    return 0;
  }
  if (src != FE_CLOCK_SRC_TSC)
    return fe__diag(diag, FE_EINVAL, "clock: unknown source %d", (int)src);
  int rc = tsc_ready(fallback ? NULL : diag);
  if (rc == 0) {
    publish(&tsc_state);
    return 0;
  }
  if (!fallback) return rc;
  publish(&mono_state);
  return 0;
}

/* -------------------------------------------------------------- public */

int fe_clock_init(fe_diag_t *diag) {
  if (__atomic_load_n(&chosen, __ATOMIC_ACQUIRE)) return 0; /* L2 */
  pthread_mutex_lock(&lock);
  int rc = 0;
  /* Relaxed: `chosen` is only written under the lock we hold. */
  if (!__atomic_load_n(&chosen, __ATOMIC_RELAXED))
    rc = choose(FE_CLOCK_SRC_AUTO, diag);
  pthread_mutex_unlock(&lock);
  return rc;
}

int fe_clock_init_source(fe_clock_src_t src, fe_diag_t *diag) {
  pthread_mutex_lock(&lock);
  int rc = choose(src, diag);
  pthread_mutex_unlock(&lock);
  return rc;
}

fe_clock_src_t fe_clock_source(void) { return state()->src; }

const char *fe_clock_source_name(fe_clock_src_t src) {
  switch (src) {
  case FE_CLOCK_SRC_AUTO: return "auto";
  case FE_CLOCK_SRC_TSC: return "tsc";
  case FE_CLOCK_SRC_MONOTONIC: return "monotonic";
  default: return "unknown";
  }
}

uint64_t fe_clock_ticks(void) {
#if FE__HAVE_TSC
  if (FE_LIKELY(state()->src == FE_CLOCK_SRC_TSC)) return rdtsc();
#endif
  return read_clock(CLOCK_MONOTONIC);
}

uint64_t fe_clock_ticks_to_ns(uint64_t ticks) {
  const clock_state_t *s = state();
  return scale(ticks, s->mult, s->shift);
}

uint64_t fe_clock_ns_to_ticks(uint64_t ns) {
  const clock_state_t *s = state();
  return scale(ns, s->inv_mult, s->inv_shift);
}

uint64_t fe_clock_now_ns(void) {
#if FE__HAVE_TSC
  const clock_state_t *s = state();
  if (FE_LIKELY(s->src == FE_CLOCK_SRC_TSC)) {
    uint64_t d = rdtsc() - s->base_ticks;
    /* A core whose TSC lags the calibrating core's by a few ticks must not
     * wrap to the far future. */
    if (FE_UNLIKELY((int64_t)d < 0)) d = 0;
    return s->base_ns + scale(d, s->mult, s->shift);
  }
#endif
  return read_clock(CLOCK_MONOTONIC);
}

uint64_t fe_clock_realtime_ns(void) { return read_clock(CLOCK_REALTIME); }

uint64_t fe_clock_ticks_per_sec(void) { return state()->ticks_per_sec; }

uint64_t fe_clock_wall_fn(void *unused) {
  (void)unused;
  return fe_clock_realtime_ns();
}
