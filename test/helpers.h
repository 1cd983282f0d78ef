/*
 * test/helpers.h: shared helpers for the bus suites, header-only.
 *
 * Include it first in every suite: it defines _GNU_SOURCE (the build uses
 * -std=c11) and pulls in cmocka and the public headers.
 *
 * Rules the helpers enforce:
 *   - cmocka assertions run on the test's main thread only.  Handlers and
 *     helper threads record failures in an fe_t_errs_t (FE_T_CHECK...), and
 *     the main thread asserts it clean (fe_t_assert_clean) after joining.
 *   - Every wait is bounded (FE_T_WAIT_UNTIL, timeouts on claims and
 *     drains), and a per-test watchdog (FE_T_TEST) turns a hang into a
 *     failure instead of a CI timeout.
 *   - Timing bounds are generous: they catch "never" and "spins a core",
 *     not "slower than expected".
 */
#ifndef FE_TEST_HELPERS_H
#define FE_TEST_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "finevent/finevent.h"
#include "internal.h" /* fe__splitmix64 */

/* ------------------------------------------------------------------ time */

#define FE_T_US UINT64_C(1000)
#define FE_T_MS UINT64_C(1000000)
#define FE_T_SEC UINT64_C(1000000000)

/* Generous bound for "this must happen": long enough for a loaded CI box
 * running under TSan, short enough that a hang fails the test. */
#define FE_T_LONG_NS (20 * FE_T_SEC)
#define FE_T_LONG_MS 20000

static inline uint64_t fe_t_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * FE_T_SEC + (uint64_t)ts.tv_nsec;
}

static inline void fe_t_sleep_ns(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / FE_T_SEC);
  ts.tv_nsec = (long)(ns % FE_T_SEC);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static inline void fe_t_sleep_ms(unsigned ms) {
  fe_t_sleep_ns((uint64_t)ms * FE_T_MS);
}

/* Evaluates cond until it holds or timeout_ms passes, sleeping 100 us
 * between checks (no spinning: some tests measure CPU).  Stores 1 in ok
 * when cond held, else 0. */
#define FE_T_WAIT_UNTIL(ok, cond, timeout_ms)                                 \
  do {                                                                        \
    uint64_t fe_t_deadline_ = fe_t_now_ns() + (uint64_t)(timeout_ms) * FE_T_MS; \
    (ok) = 0;                                                                 \
    for (;;) {                                                                \
      if (cond) {                                                             \
        (ok) = 1;                                                             \
        break;                                                                \
      }                                                                       \
      if (fe_t_now_ns() > fe_t_deadline_)                                     \
        break;                                                                \
      fe_t_sleep_ns(100 * FE_T_US);                                           \
    }                                                                         \
  } while (0)

/* ------------------------------------------------------------- watchdog */

#ifndef FE_T_TEST_TIMEOUT_S
#define FE_T_TEST_TIMEOUT_S 180
#endif

static inline void fe_t_watchdog_fire(int sig) {
  static const char msg[] = "\nwatchdog: test did not finish in time\n";
  (void)sig;
  if (write(2, msg, sizeof msg - 1) < 0) {
  }
  _exit(124);
}

/* cmocka setup: arms (re-arms) a per-test alarm.  cmocka 1.1.5 runs every
 * test in one process, so a hang would otherwise stall the whole suite. */
static inline int fe_t_watchdog(void **state) {
  (void)state;
  signal(SIGALRM, fe_t_watchdog_fire);
  alarm(FE_T_TEST_TIMEOUT_S);
  return 0;
}

#define FE_T_TEST(f) cmocka_unit_test_setup(f, fe_t_watchdog)

/* ------------------------------------------------------------------ PRNG */

/* splitmix64: deterministic, seedable, good enough for test inputs. */
typedef struct fe_t_rng {
  uint64_t s;
} fe_t_rng_t;

static inline void fe_t_rng_seed(fe_t_rng_t *r, uint64_t seed) { r->s = seed; }

static inline uint64_t fe_t_rng_next(fe_t_rng_t *r) {
  return fe__splitmix64(&r->s);
}

/* Uniform-enough value in [lo, hi] (inclusive). */
static inline uint32_t fe_t_rng_range(fe_t_rng_t *r, uint32_t lo, uint32_t hi) {
  return lo + (uint32_t)(fe_t_rng_next(r) % ((uint64_t)hi - lo + 1));
}

/* ------------------------------------------------ errors from threads */

/* Failures seen off the main thread: a count and the first message. */
typedef struct fe_t_errs {
  _Atomic uint64_t count;
  atomic_int claimed; /* someone is writing msg */
  atomic_int ready;   /* msg is complete (release) */
  char msg[512];
} fe_t_errs_t;

static inline void fe_t_errf(fe_t_errs_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void fe_t_errf(fe_t_errs_t *e, const char *fmt, ...) {
  int expected = 0;
  if (atomic_compare_exchange_strong(&e->claimed, &expected, 1)) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    atomic_store_explicit(&e->ready, 1, memory_order_release);
  }
  atomic_fetch_add_explicit(&e->count, 1, memory_order_relaxed);
}

static inline uint64_t fe_t_errs_count(fe_t_errs_t *e) {
  return atomic_load_explicit(&e->count, memory_order_relaxed);
}

#define FE_T_CHECK(e, cond)                                                   \
  do {                                                                        \
    if (!(cond))                                                              \
      fe_t_errf((e), "%s:%d: check failed: %s", __FILE__, __LINE__, #cond);   \
  } while (0)

#define FE_T_CHECK_EQ(e, a, b)                                                \
  do {                                                                        \
    uint64_t fe_t_a_ = (uint64_t)(a), fe_t_b_ = (uint64_t)(b);                \
    if (fe_t_a_ != fe_t_b_)                                                   \
      fe_t_errf((e), "%s:%d: %s == %s failed: %" PRIu64 " != %" PRIu64,       \
                __FILE__, __LINE__, #a, #b, fe_t_a_, fe_t_b_);                \
  } while (0)

/* Main thread only: fails the test if any thread recorded a failure. */
#define fe_t_assert_clean(e)                                                  \
  do {                                                                        \
    uint64_t fe_t_n_ = fe_t_errs_count(e);                                    \
    if (fe_t_n_ != 0)                                                         \
      fail_msg("%" PRIu64 " failure(s) off the main thread; first: %s",       \
               fe_t_n_,                                                       \
               atomic_load_explicit(&(e)->ready, memory_order_acquire)        \
                   ? (e)->msg                                                 \
                   : "(message not recorded yet)");                           \
  } while (0)

/* Main thread: asserts a libfinevent return code, printing names. */
#define assert_fe(rc, expected)                                               \
  do {                                                                        \
    int fe_t_rc_ = (rc), fe_t_ex_ = (expected);                               \
    if (fe_t_rc_ != fe_t_ex_)                                                 \
      fail_msg("%s: got %s (%d), expected %s (%d)", #rc,                      \
               fe_err_name(fe_t_rc_), fe_t_rc_, fe_err_name(fe_t_ex_),        \
               fe_t_ex_);                                                     \
  } while (0)

#define assert_fe_ok(rc) assert_fe((rc), 0)

/* ------------------------------------------------------ bus definition */

/* A config plus the stage table it points at.  Do not copy it (cfg.stages
 * points into it); build it in place with fe_t_def_init(). */
typedef struct fe_t_def {
  fe_bus_config_t cfg;
  fe_stage_def_t st[FE_BUS_MAX_STAGES + 1];
} fe_t_def_t;

/* Defaults, the given capacity, max_batch clamped to it, no stages. */
static inline void fe_t_def_init(fe_t_def_t *d, uint32_t capacity) {
  memset(d, 0, sizeof *d);
  fe_bus_config_init(&d->cfg);
  d->cfg.capacity = capacity;
  if (d->cfg.max_batch > capacity)
    d->cfg.max_batch = capacity;
  d->cfg.stages = d->st;
  d->cfg.n_stages = 0;
}

/* Appends a stage (defaults + name, handler, user, worker); returns its id. */
static inline uint32_t fe_t_add_stage(fe_t_def_t *d, const char *name,
                                      fe_stage_fn fn, void *user,
                                      uint32_t worker) {
  uint32_t i = d->cfg.n_stages++;
  fe_stage_def_init(&d->st[i]);
  d->st[i].name = name;
  d->st[i].handler = fn;
  d->st[i].user = user;
  d->st[i].worker = worker;
  return i;
}

static inline void fe_t_add_dep(fe_t_def_t *d, uint32_t stage, uint32_t dep) {
  d->st[stage].deps[d->st[stage].n_deps++] = dep;
}

/* Main thread: creates the bus or fails the test with the diagnostic. */
static inline fe_bus_t *fe_t_create(const fe_t_def_t *d) {
  fe_bus_t *bus = NULL;
  fe_diag_t diag;
  memset(&diag, 0, sizeof diag);
  int rc = fe_bus_create(&d->cfg, &bus, &diag);
  if (rc != 0)
    fail_msg("fe_bus_create: %s (%d): %s", fe_err_name(rc), rc, diag.msg);
  assert_non_null(bus);
  return bus;
}

static inline void fe_t_start(fe_bus_t *bus) {
  fe_diag_t diag;
  memset(&diag, 0, sizeof diag);
  int rc = fe_bus_start(bus, &diag);
  if (rc != 0)
    fail_msg("fe_bus_start: %s (%d): %s", fe_err_name(rc), rc, diag.msg);
}

static inline fe_bus_stats_t fe_t_stats(const fe_bus_t *bus) {
  fe_bus_stats_t s;
  memset(&s, 0xa5, sizeof s);
  assert_fe_ok(fe_bus_stats(bus, &s));
  return s;
}

static inline fe_stage_stats_t fe_t_stage_stats(const fe_bus_t *bus,
                                                uint32_t stage) {
  fe_stage_stats_t s;
  memset(&s, 0xa5, sizeof s);
  assert_fe_ok(fe_bus_stage_stats(bus, stage, &s));
  return s;
}

/* --------------------------------------------------- deterministic payload */

#define FE_T_ACCOUNTS 64

/* The payload a publisher writes for sequence seq, so any reader can check
 * the slot still holds that event. */
static inline int64_t fe_t_qty_of(uint64_t seq) {
  return (int64_t)((seq * UINT64_C(2654435761)) % UINT64_C(1000003)) + 1;
}

static inline uint64_t fe_t_trace_of(uint64_t seq) {
  return seq ^ UINT64_C(0x5eed5eed5eed5eed);
}

/* Reject property used by the short-circuit tests: a payload property, not
 * the sequence itself. */
static inline int fe_t_reject_prop(const fe_event_t *ev) {
  return ev->order.quantity % 10 == 7;
}

static inline int fe_t_reject_prop_seq(uint64_t seq) {
  return fe_t_qty_of(seq) % 10 == 7;
}

static inline void fe_t_fill(fe_event_t *ev) {
  uint64_t seq = ev->seq;
  ev->trace_id = fe_t_trace_of(seq);
  ev->order.account = seq % FE_T_ACCOUNTS;
  ev->order.quantity = fe_t_qty_of(seq);
  ev->order.price = (int64_t)seq * 100;
  ev->order.side = FE_SIDE_BUY;
  ev->order.type = FE_ORD_LIMIT;
  ev->order.tif = FE_TIF_DAY;
}

static inline int fe_t_payload_ok(const fe_event_t *ev) {
  uint64_t seq = ev->seq;
  return ev->trace_id == fe_t_trace_of(seq) &&
         ev->order.account == seq % FE_T_ACCOUNTS &&
         ev->order.quantity == fe_t_qty_of(seq) &&
         ev->order.price == (int64_t)seq * 100;
}

/* Claims with a long timeout; fails (returns rc) rather than hang. */
static inline int fe_t_claim(fe_bus_t *bus, fe_event_t **ev) {
  return fe_bus_claim(bus, ev, FE_T_LONG_NS);
}

/* Publishes n events carrying fe_t_fill() payloads, in claims of random
 * sizes 1..max_chunk (max_chunk 1: single claims only).  Returns 0 or the
 * first failing code. */
static inline int fe_t_publish_filled(fe_bus_t *bus, uint64_t n,
                                      uint32_t max_chunk, fe_t_rng_t *rng) {
  uint64_t done = 0;
  while (done < n) {
    uint32_t k = max_chunk > 1 ? fe_t_rng_range(rng, 1, max_chunk) : 1;
    if (k > n - done)
      k = (uint32_t)(n - done);
    if (k == 1 && (max_chunk == 1 || (fe_t_rng_next(rng) & 1))) {
      fe_event_t *ev = NULL;
      int rc = fe_t_claim(bus, &ev);
      if (rc != 0)
        return rc;
      fe_t_fill(ev);
      rc = fe_bus_publish(bus, ev);
      if (rc != 0)
        return rc;
    } else {
      uint64_t first = 0;
      int rc = fe_bus_claim_n(bus, k, &first, FE_T_LONG_NS);
      if (rc != 0)
        return rc;
      for (uint32_t i = 0; i < k; i++)
        fe_t_fill(fe_bus_event_at(bus, first + i));
      rc = fe_bus_publish_n(bus, first, k);
      if (rc != 0)
        return rc;
    }
    done += k;
  }
  return 0;
}

/* ------------------------------------------------------- stage tracker */

/*
 * A generic checking stage.  The tracker owns, per stage, a row of "seen"
 * counters indexed by sequence.  Each tracked handler checks, for the
 * event it gets:
 *   - the context (bus, stage id, shard 0, expected worker);
 *   - sequence order (strictly increasing; consecutive unless some stage
 *     upstream rejects);
 *   - the payload is still the one published for that sequence;
 *   - every upstream stage listed in `up` already handled it (both by the
 *     seen row and by a stamp the upstream handler wrote in the user area,
 *     read with plain loads so TSan checks the bus's ordering);
 *   - it runs on the same thread as every earlier call of the stage.
 * Then marks it seen (a second sighting is a failure) and, if the stage
 * rejects, rejects events with fe_t_reject_prop().
 */
#define FE_T_MAX_TRACKED 16

typedef struct fe_t_track fe_t_track_t;

typedef struct fe_t_tstage {
  fe_t_track_t *tr;
  uint32_t id;              /* stage index in the config */
  uint32_t worker;          /* worker the stage was configured on */
  uint32_t n_up;
  uint32_t up[FE_BUS_MAX_DEPS];
  int rejects;              /* rejects events with fe_t_reject_prop() */
  uint32_t reject_reason;
  int sees_all;             /* no upstream rejects: sequences consecutive */
  uint32_t yield_every;     /* slow stage: sched_yield() every n-th event */
  /* written by the stage's worker only */
  uint64_t next_seq;
  pthread_t thread;
  int have_thread;
  /* read by the main thread */
  _Atomic uint64_t handled;
  _Atomic uint64_t rejected;
} fe_t_tstage_t;

struct fe_t_track {
  fe_t_errs_t errs;
  fe_bus_t *bus;            /* set before start; read by handlers */
  uint64_t n;               /* sequences tracked: 0..n-1 */
  uint32_t user_words;      /* stamp words available in the user area */
  uint32_t n_stages;
  fe_t_tstage_t st[FE_T_MAX_TRACKED];
  _Atomic unsigned char *seen; /* [FE_T_MAX_TRACKED][n] */
};

static inline _Atomic unsigned char *fe_t_seen(fe_t_track_t *t, uint32_t stage,
                                               uint64_t seq) {
  return &t->seen[(uint64_t)stage * t->n + seq];
}

static inline uint64_t fe_t_stamp_of(uint32_t stage, uint64_t seq) {
  return seq * 131 + stage + 1;
}

static inline fe_verdict_t fe_t_track_handler(fe_stage_ctx_t *ctx,
                                              fe_event_t *ev, void *user) {
  fe_t_tstage_t *s = user;
  fe_t_track_t *t = s->tr;
  uint64_t seq = ev->seq;

  if (ctx->bus != t->bus || ctx->stage != s->id || ctx->shard != 0 ||
      ctx->worker != s->worker)
    fe_t_errf(&t->errs,
              "stage %u: bad ctx: bus %p/%p stage %u shard %u worker %u/%u",
              s->id, (void *)ctx->bus, (void *)t->bus, ctx->stage, ctx->shard,
              ctx->worker, s->worker);
  if (!s->have_thread) {
    s->thread = pthread_self();
    s->have_thread = 1;
  } else if (!pthread_equal(s->thread, pthread_self())) {
    fe_t_errf(&t->errs, "stage %u: handler moved to another thread", s->id);
  }
  if (seq >= t->n) {
    fe_t_errf(&t->errs, "stage %u: seq %" PRIu64 " beyond the %" PRIu64
              " published", s->id, seq, t->n);
    return FE_CONTINUE;
  }
  if (seq < s->next_seq || (s->sees_all && seq != s->next_seq))
    fe_t_errf(&t->errs, "stage %u: got seq %" PRIu64 ", expected %s%" PRIu64,
              s->id, seq, s->sees_all ? "" : ">= ", s->next_seq);
  s->next_seq = seq + 1;
  if (fe_bus_event_at(t->bus, seq) != ev)
    fe_t_errf(&t->errs, "stage %u: fe_bus_event_at(%" PRIu64 ") != ev", s->id,
              seq);
  if (!fe_t_payload_ok(ev))
    fe_t_errf(&t->errs, "stage %u: seq %" PRIu64 ": payload is not the one "
              "published (qty %" PRId64 ")", s->id, seq, ev->order.quantity);

  uint64_t *stamp = fe_event_user(ev);
  for (uint32_t i = 0; i < s->n_up; i++) {
    uint32_t u = s->up[i];
    if (u < t->user_words && stamp[u] != fe_t_stamp_of(u, seq))
      fe_t_errf(&t->errs, "stage %u: seq %" PRIu64 ": upstream stage %u's "
                "stamp missing", s->id, seq, u);
    if (atomic_load_explicit(fe_t_seen(t, u, seq), memory_order_acquire) == 0)
      fe_t_errf(&t->errs, "stage %u: seq %" PRIu64 " before upstream stage %u"
                " handled it", s->id, seq, u);
  }
  if (s->yield_every && seq % s->yield_every == 0)
    sched_yield();
  if (!fe_t_payload_ok(ev))
    fe_t_errf(&t->errs, "stage %u: seq %" PRIu64 ": slot overwritten while "
              "the stage was handling it", s->id, seq);
  if (s->id < t->user_words)
    stamp[s->id] = fe_t_stamp_of(s->id, seq);
  if (atomic_fetch_add_explicit(fe_t_seen(t, s->id, seq), 1,
                                memory_order_release) != 0)
    fe_t_errf(&t->errs, "stage %u: seq %" PRIu64 " handled twice", s->id, seq);
  atomic_fetch_add_explicit(&s->handled, 1, memory_order_relaxed);
  if (s->rejects && fe_t_reject_prop(ev)) {
    atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    return fe_reject(ctx, s->reject_reason);
  }
  return FE_CONTINUE;
}

/* Allocates a tracker for sequences 0..n-1. */
static inline fe_t_track_t *fe_t_track_new(uint64_t n) {
  fe_t_track_t *t = calloc(1, sizeof *t);
  assert_non_null(t);
  t->n = n;
  t->seen = calloc(FE_T_MAX_TRACKED * n, 1);
  assert_non_null(t->seen);
  return t;
}

static inline void fe_t_track_free(fe_t_track_t *t) {
  if (t) {
    free((void *)t->seen);
    free(t);
  }
}

/* Adds a tracked stage to d (and to t, at the same index); deps are given
 * with fe_t_track_dep() so that the stage checks them too. */
static inline uint32_t fe_t_track_stage(fe_t_track_t *t, fe_t_def_t *d,
                                        const char *name, uint32_t worker) {
  uint32_t id = t->n_stages++;
  fe_t_tstage_t *s = &t->st[id];
  s->tr = t;
  s->id = id;
  s->worker = worker;
  s->sees_all = 1;
  uint32_t got = fe_t_add_stage(d, name, fe_t_track_handler, s, worker);
  assert_int_equal(got, id);
  return id;
}

static inline void fe_t_track_dep(fe_t_track_t *t, fe_t_def_t *d,
                                  uint32_t stage, uint32_t dep) {
  fe_t_add_dep(d, stage, dep);
  t->st[stage].up[t->st[stage].n_up++] = dep;
}

/* Call after create, before start or any publish. */
static inline void fe_t_track_bind(fe_t_track_t *t, fe_bus_t *bus) {
  t->bus = bus;
  uint32_t words = fe_bus_user_size(bus) / 8;
  t->user_words = words < FE_T_MAX_TRACKED ? words : FE_T_MAX_TRACKED;
}

static inline uint64_t fe_t_handled(fe_t_track_t *t, uint32_t stage) {
  return atomic_load_explicit(&t->st[stage].handled, memory_order_relaxed);
}

/* Main thread, after the bus stopped: every sequence 0..n-1 was seen
 * exactly `expect(seq)` times by stage (1, or 0 when rejected upstream). */
static inline void fe_t_assert_seen_all(fe_t_track_t *t, uint32_t stage,
                                        int skip_rejected) {
  for (uint64_t seq = 0; seq < t->n; seq++) {
    unsigned got = atomic_load(fe_t_seen(t, stage, seq));
    unsigned want = skip_rejected && fe_t_reject_prop_seq(seq) ? 0u : 1u;
    if (got != want)
      fail_msg("stage %u saw seq %" PRIu64 " %u time(s), expected %u", stage,
               seq, got, want);
  }
}

/* --------------------------------------------------- host-driven pollers */

/* A host thread that polls one worker until told to stop (and then finds
 * it idle) or until fe_bus_poll() returns FE_ESTOPPED. */
typedef struct fe_t_poller {
  fe_bus_t *bus;
  uint32_t worker;
  fe_t_errs_t *errs;
  atomic_int stop;      /* main -> poller: exit once idle */
  pthread_t th;
  /* results, read after join */
  uint64_t advanced;    /* sum of positive poll results */
  uint64_t polls;
  int last_rc;
} fe_t_poller_t;

static inline void *fe_t_poller_main(void *arg) {
  fe_t_poller_t *p = arg;
  unsigned idle = 0;
  for (;;) {
    int rc = fe_bus_poll(p->bus, p->worker);
    p->polls++;
    p->last_rc = rc;
    if (rc > 0) {
      p->advanced += (uint64_t)rc;
      idle = 0;
      continue;
    }
    if (rc == FE_ESTOPPED)
      break;
    if (rc < 0) {
      fe_t_errf(p->errs, "fe_bus_poll(worker %u) returned %s", p->worker,
                fe_err_name(rc));
      break;
    }
    if (atomic_load_explicit(&p->stop, memory_order_acquire))
      break;
    if (++idle > 64)
      fe_t_sleep_ns(50 * FE_T_US);
    else
      sched_yield();
  }
  return NULL;
}

static inline void fe_t_poller_start(fe_t_poller_t *p, fe_bus_t *bus,
                                     uint32_t worker, fe_t_errs_t *errs) {
  memset(p, 0, sizeof *p);
  p->bus = bus;
  p->worker = worker;
  p->errs = errs;
  assert_int_equal(pthread_create(&p->th, NULL, fe_t_poller_main, p), 0);
}

static inline void fe_t_poller_join(fe_t_poller_t *p) {
  atomic_store_explicit(&p->stop, 1, memory_order_release);
  assert_int_equal(pthread_join(p->th, NULL), 0);
}

/* Main thread: polls worker until it returns 0 (idle); returns the sum. */
static inline uint64_t fe_t_poll_idle(fe_bus_t *bus, uint32_t worker) {
  uint64_t sum = 0;
  for (;;) {
    int rc = fe_bus_poll(bus, worker);
    if (rc < 0)
      fail_msg("fe_bus_poll(%u): %s", worker, fe_err_name(rc));
    if (rc == 0)
      return sum;
    sum += (uint64_t)rc;
  }
}

/* Main thread, host-driven bus: fe_bus_stop(), then polls every worker
 * until each returns FE_ESTOPPED (bounded).  Returns the sequences the
 * polls advanced meanwhile. */
static inline uint64_t fe_t_host_finish(fe_bus_t *bus) {
  uint32_t n = fe_bus_workers(bus);
  int done[FE_BUS_MAX_WORKERS] = {0};
  uint32_t left = n;
  uint64_t sum = 0;
  assert_fe_ok(fe_bus_stop(bus));
  uint64_t deadline = fe_t_now_ns() + FE_T_LONG_NS;
  while (left > 0) {
    for (uint32_t w = 0; w < n; w++) {
      if (done[w])
        continue;
      int rc = fe_bus_poll(bus, w);
      if (rc == FE_ESTOPPED) {
        done[w] = 1;
        left--;
      } else if (rc < 0) {
        fail_msg("fe_bus_poll(%u) after stop: %s", w, fe_err_name(rc));
      } else {
        sum += (uint64_t)rc;
      }
    }
    if (fe_t_now_ns() > deadline)
      fail_msg("host-driven bus: poll never returned FE_ESTOPPED after stop");
  }
  return sum;
}

/* ------------------------------------------------- process introspection */

/* Threads of this process (entries of /proc/self/task). */
static inline int fe_t_thread_count(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* Waits (bounded) for the thread count to reach want: exiting threads
 * leave /proc/self/task a little after pthread_join() returns. */
static inline int fe_t_thread_count_settles(int want) {
  int ok;
  FE_T_WAIT_UNTIL(ok, fe_t_thread_count() == want, 2000);
  return ok ? want : fe_t_thread_count();
}

/* CPU time (user + system) used by the whole process, in ns. */
static inline uint64_t fe_t_cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
             FE_T_SEC +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
             FE_T_US;
}

/* Lowest CPU this process may run on, or -1. */
static inline int fe_t_first_allowed_cpu(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return -1;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set))
      return c;
  return -1;
}

/* Environment override for an unsigned count. */
static inline uint64_t fe_t_env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  if (!v || !*v)
    return dflt;
  char *end = NULL;
  unsigned long long x = strtoull(v, &end, 10);
  return (end && *end == '\0' && x > 0) ? (uint64_t)x : dflt;
}

#endif /* FE_TEST_HELPERS_H */
