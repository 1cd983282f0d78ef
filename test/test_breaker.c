/* Circuit breakers: every transition, both windows, stale permits, release,
 * the state callback, validation, NULL arguments, and two threads at once.
 * All timing comes from an injected fake clock: nothing sleeps. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "finevent/finevent.h"
#include "finevent/breaker.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

/* ------------------------------------------------------------ fixtures */

/* Fake clock: each read returns ns and then adds step (atomically, for the
 * threaded tests; step 0 in the others, which move it by hand). */
typedef struct fake_clock {
  uint64_t ns;
  uint64_t step;
} fake_clock_t;

static uint64_t fake_now(void *user) {
  fake_clock_t *c = user;
  return __atomic_fetch_add(&c->ns, __atomic_load_n(&c->step, __ATOMIC_RELAXED),
                            __ATOMIC_RELAXED);
}

static void advance(fake_clock_t *c, uint64_t ns) {
  __atomic_fetch_add(&c->ns, ns, __ATOMIC_RELAXED);
}

#define MAX_SEEN 64
typedef struct seen {
  int n; /* atomic in the threaded test */
  char name[FE_BREAKER_NAME_MAX];
  fe_breaker_state_t from[MAX_SEEN], to[MAX_SEEN];
} seen_t;

static void record_state(const char *name, fe_breaker_state_t from,
                         fe_breaker_state_t to, void *user) {
  seen_t *s = user;
  int i = __atomic_fetch_add(&s->n, 1, __ATOMIC_RELAXED);
  if (i < MAX_SEEN) {
    s->from[i] = from;
    s->to[i] = to;
  }
  if (i == 0)
    strncpy(s->name, name, sizeof s->name - 1);
}

typedef struct fx {
  fake_clock_t clock;
  seen_t seen;
  fe_breaker_config_t cfg;
  fe_breaker_t *b;
} fx_t;

/* Small, fast configuration: COUNT window 10, minimum 5, failure 50 %,
 * slow 100 % at 100 ms, 1 s open, 3 trial calls. */
static void fx_config(fx_t *f) {
  memset(f, 0, sizeof *f);
  f->clock.ns = 1000 * SEC;
  fe_breaker_config_init(&f->cfg);
  f->cfg.name = "XNAS";
  f->cfg.window_size = 10;
  f->cfg.minimum_calls = 5;
  f->cfg.slow_call_duration_ns = 100 * MS;
  f->cfg.wait_open_ns = SEC;
  f->cfg.permitted_calls_half_open = 3;
  f->cfg.now_ns = fake_now;
  f->cfg.clock_user = &f->clock;
  f->cfg.on_state = record_state;
  f->cfg.user = &f->seen;
}

static void fx_create(fx_t *f) {
  fe_diag_t d;
  assert_int_equal(fe_breaker_create(&f->cfg, &f->b, &d), 0);
}

/* One call that succeeds (ok = 1) or fails, taking dur ns. */
static void call(fx_t *f, int ok, uint64_t dur) {
  uint64_t p;
  assert_int_equal(fe_breaker_acquire(f->b, &p), 0);
  advance(&f->clock, dur);
  if (ok)
    assert_int_equal(fe_breaker_on_success(f->b, p), 0);
  else
    assert_int_equal(fe_breaker_on_error(f->b, p), 0);
}

static fe_breaker_metrics_t metrics(fe_breaker_t *b) {
  fe_breaker_metrics_t m;
  assert_int_equal(fe_breaker_metrics(b, &m), 0);
  return m;
}

static void expect_seen(const seen_t *s, int i, fe_breaker_state_t from,
                        fe_breaker_state_t to) {
  assert_true(i < s->n);
  assert_int_equal(s->from[i], from);
  assert_int_equal(s->to[i], to);
}

/* Trips f's breaker with failures; it must be CLOSED and empty. */
static void trip(fx_t *f) {
  for (uint32_t i = 0; i < f->cfg.minimum_calls; i++)
    call(f, 0, 0);
  assert_int_equal(fe_breaker_state(f->b), FE_BREAKER_OPEN);
}

/* Trips, waits, and takes the first trial permit into *p. */
static void to_half_open(fx_t *f, uint64_t *p) {
  trip(f);
  advance(&f->clock, f->cfg.wait_open_ns);
  assert_int_equal(fe_breaker_acquire(f->b, p), 0);
  assert_int_equal(fe_breaker_state(f->b), FE_BREAKER_HALF_OPEN);
}

/* ---------------------------------------------------------------- tests */

static void test_defaults(void **state) {
  (void)state;
  fe_breaker_config_t c;
  fe_breaker_config_init(&c);
  assert_string_equal(c.name, "default");
  assert_int_equal(c.failure_rate_threshold, 50);
  assert_int_equal(c.slow_call_rate_threshold, 100);
  assert_int_equal(c.slow_call_duration_ns, 60 * SEC);
  assert_int_equal(c.window_type, FE_BREAKER_WINDOW_COUNT);
  assert_int_equal(c.window_size, 100);
  assert_int_equal(c.minimum_calls, 100);
  assert_int_equal(c.wait_open_ns, 60 * SEC);
  assert_int_equal(c.permitted_calls_half_open, 10);
  assert_int_equal(c.max_wait_half_open_ns, 0);
  assert_null(c.now_ns);
  assert_null(c.on_state);
  assert_int_equal(fe_breaker_config_check(&c, NULL), 0);
  /* The real clock works too. */
  fe_breaker_t *b;
  assert_int_equal(fe_breaker_create(&c, &b, NULL), 0);
  assert_int_equal(fe_breaker_state(b), FE_BREAKER_CLOSED);
  uint64_t p;
  assert_int_equal(fe_breaker_acquire(b, &p), 0);
  assert_int_equal(fe_breaker_on_success(b, p), 0);
  assert_int_equal(metrics(b).buffered_calls, 1);
  fe_breaker_destroy(b);
  fe_breaker_destroy(NULL);
}

static void test_state_names(void **state) {
  (void)state;
  assert_string_equal(fe_breaker_state_name(FE_BREAKER_CLOSED), "CLOSED");
  assert_string_equal(fe_breaker_state_name(FE_BREAKER_OPEN), "OPEN");
  assert_string_equal(fe_breaker_state_name(FE_BREAKER_HALF_OPEN), "HALF_OPEN");
  assert_string_equal(fe_breaker_state_name(FE_BREAKER_DISABLED), "DISABLED");
  assert_string_equal(fe_breaker_state_name(FE_BREAKER_FORCED_OPEN),
                      "FORCED_OPEN");
  assert_string_equal(fe_breaker_state_name(FE_BREAKER_METRICS_ONLY),
                      "METRICS_ONLY");
  assert_string_equal(fe_breaker_state_name(6), "UNKNOWN");
  assert_string_equal(fe_breaker_state_name(-1), "UNKNOWN");
}

static void test_not_before_minimum_calls(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  for (int i = 0; i < 4; i++)
    call(&f, 0, 0);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_CLOSED);
  assert_int_equal(m.buffered_calls, 4);
  assert_int_equal(m.failed_calls, 4);
  assert_int_equal(m.failure_rate_permille, -1); /* below minimum */
  assert_int_equal(f.seen.n, 0);
  call(&f, 1, 0); /* 5th call: 4/5 = 80 % >= 50 % */
  m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_OPEN);
  assert_int_equal(m.failure_rate_permille, 800);
  assert_int_equal(m.transitions, 1);
  assert_int_equal(f.seen.n, 1);
  expect_seen(&f.seen, 0, FE_BREAKER_CLOSED, FE_BREAKER_OPEN);
  assert_string_equal(f.seen.name, "XNAS");
  fe_breaker_destroy(f.b);
}

static void test_open_by_failure_rate_threshold(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.minimum_calls = 10;
  fx_create(&f);
  for (int i = 0; i < 5; i++)
    call(&f, 1, 0);
  for (int i = 0; i < 4; i++)
    call(&f, 0, 0);
  call(&f, 1, 0); /* 10 calls, 4 failed: 40 % */
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_CLOSED);
  assert_int_equal(m.failure_rate_permille, 400);
  /* The 11th evicts the oldest success: 10 calls, 5 failed = 50 %. */
  call(&f, 0, 0);
  m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_OPEN);
  assert_int_equal(m.buffered_calls, 10);
  assert_int_equal(m.failed_calls, 5);
  assert_int_equal(m.failure_rate_permille, 500);
  fe_breaker_destroy(f.b);
}

static void test_open_by_slow_rate(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.minimum_calls = 4;
  f.cfg.failure_rate_threshold = 100;
  f.cfg.slow_call_rate_threshold = 50;
  fx_create(&f);
  call(&f, 1, 99 * MS);  /* just under the slow duration */
  call(&f, 1, 0);
  call(&f, 1, 100 * MS); /* slow: duration >= slow_call_duration_ns */
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_CLOSED);
  call(&f, 0, 5 * SEC);  /* slow and failed: 2/4 slow, 1/4 failed */
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_OPEN);
  assert_int_equal(m.slow_calls, 2);
  assert_int_equal(m.failed_calls, 1);
  assert_int_equal(m.slow_rate_permille, 500);
  assert_int_equal(m.failure_rate_permille, 250);
  expect_seen(&f.seen, 0, FE_BREAKER_CLOSED, FE_BREAKER_OPEN);
  fe_breaker_destroy(f.b);
}

static void test_count_window_eviction(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.window_size = 4;
  f.cfg.minimum_calls = 100; /* clamped to the window: 4 */
  f.cfg.failure_rate_threshold = 75;
  fx_create(&f);
  call(&f, 0, 0);
  call(&f, 1, 200 * MS); /* slow */
  call(&f, 1, 0);
  call(&f, 1, 0);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.buffered_calls, 4);
  assert_int_equal(m.failed_calls, 1);
  assert_int_equal(m.slow_calls, 1);
  assert_int_equal(m.failure_rate_permille, 250); /* minimum clamped to 4 */
  call(&f, 1, 0); /* the failure leaves */
  m = metrics(f.b);
  assert_int_equal(m.buffered_calls, 4);
  assert_int_equal(m.failed_calls, 0);
  assert_int_equal(m.slow_calls, 1);
  call(&f, 1, 0); /* the slow call leaves */
  m = metrics(f.b);
  assert_int_equal(m.slow_calls, 0);
  /* Three failures on top: 3/4 = 75 % trips. */
  call(&f, 0, 0);
  call(&f, 0, 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_CLOSED);
  call(&f, 0, 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_OPEN);
  fe_breaker_destroy(f.b);
}

static void test_open_rejects_then_half_open(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  trip(&f);
  uint64_t p;
  for (int i = 0; i < 3; i++)
    assert_int_equal(fe_breaker_acquire(f.b, &p), FE_EBREAKER);
  assert_int_equal(metrics(f.b).not_permitted_calls, 3);
  advance(&f.clock, SEC - 1);
  assert_int_equal(fe_breaker_acquire(f.b, &p), FE_EBREAKER);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_OPEN);
  advance(&f.clock, 1);
  /* state() is lazy: still OPEN until somebody asks for permission. */
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_OPEN);
  assert_int_equal(fe_breaker_acquire(f.b, &p), 0);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_HALF_OPEN);
  assert_int_equal(m.not_permitted_calls, 4);
  assert_int_equal(m.transitions, 2);
  assert_int_equal(m.buffered_calls, 0); /* the trial's, so far */
  assert_int_equal(f.seen.n, 2);
  expect_seen(&f.seen, 1, FE_BREAKER_OPEN, FE_BREAKER_HALF_OPEN);
  fe_breaker_destroy(f.b);
}

static void test_half_open_permits_n_then_closes(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  uint64_t p[4];
  to_half_open(&f, &p[0]);
  assert_int_equal(fe_breaker_acquire(f.b, &p[1]), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &p[2]), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &p[3]), FE_EBREAKER);
  assert_int_equal(metrics(f.b).not_permitted_calls, 1);
  /* 1 failure in 3 is 33 % < 50 %: closes once all three are in. */
  assert_int_equal(fe_breaker_on_success(f.b, p[0]), 0);
  assert_int_equal(fe_breaker_on_error(f.b, p[1]), 0);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_HALF_OPEN);
  assert_int_equal(m.buffered_calls, 2);
  assert_int_equal(m.failure_rate_permille, -1); /* trial not complete */
  assert_int_equal(fe_breaker_acquire(f.b, &p[3]), FE_EBREAKER);
  assert_int_equal(fe_breaker_on_success(f.b, p[2]), 0);
  m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_CLOSED);
  assert_int_equal(m.buffered_calls, 0); /* a fresh window */
  assert_int_equal(m.transitions, 3);
  assert_int_equal(f.seen.n, 3);
  expect_seen(&f.seen, 2, FE_BREAKER_HALF_OPEN, FE_BREAKER_CLOSED);
  call(&f, 1, 0);
  fe_breaker_destroy(f.b);
}

static void test_half_open_bad_trial_reopens(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  uint64_t p[3];
  to_half_open(&f, &p[0]);
  assert_int_equal(fe_breaker_acquire(f.b, &p[1]), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &p[2]), 0);
  fe_breaker_on_error(f.b, p[0]);
  fe_breaker_on_success(f.b, p[1]);
  fe_breaker_on_error(f.b, p[2]); /* 2/3 failed */
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_OPEN);
  assert_int_equal(m.buffered_calls, 3); /* the trial that reopened it */
  assert_int_equal(m.failure_rate_permille, 666);
  expect_seen(&f.seen, 2, FE_BREAKER_HALF_OPEN, FE_BREAKER_OPEN);
  /* A new wait starts from the reopening. */
  uint64_t q;
  assert_int_equal(fe_breaker_acquire(f.b, &q), FE_EBREAKER);
  advance(&f.clock, SEC);
  assert_int_equal(fe_breaker_acquire(f.b, &q), 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_HALF_OPEN);
  fe_breaker_destroy(f.b);
}

static void test_half_open_slow_trial_reopens(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.slow_call_rate_threshold = 60;
  f.cfg.permitted_calls_half_open = 2;
  fx_create(&f);
  uint64_t p[2];
  to_half_open(&f, &p[0]);
  assert_int_equal(fe_breaker_acquire(f.b, &p[1]), 0);
  advance(&f.clock, 100 * MS);
  fe_breaker_on_success(f.b, p[0]); /* slow */
  fe_breaker_on_success(f.b, p[1]); /* slow */
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_OPEN);
  assert_int_equal(metrics(f.b).slow_rate_permille, 1000);
  fe_breaker_destroy(f.b);
}

static void test_max_wait_half_open(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.max_wait_half_open_ns = 5 * SEC;
  fx_create(&f);
  uint64_t p, q;
  to_half_open(&f, &p); /* one of three trial calls issued, never finished */
  advance(&f.clock, 5 * SEC - 1);
  assert_int_equal(fe_breaker_acquire(f.b, &q), 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_HALF_OPEN);
  advance(&f.clock, 1);
  assert_int_equal(fe_breaker_acquire(f.b, &q), FE_EBREAKER);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_OPEN);
  assert_int_equal(f.seen.n, 3);
  expect_seen(&f.seen, 2, FE_BREAKER_HALF_OPEN, FE_BREAKER_OPEN);
  /* The late trial outcome belongs to the old epoch. */
  fe_breaker_on_success(f.b, p);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_OPEN);
  /* And the cycle goes on. */
  advance(&f.clock, SEC);
  assert_int_equal(fe_breaker_acquire(f.b, &q), 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_HALF_OPEN);
  fe_breaker_destroy(f.b);
}

static void test_max_wait_half_open_on_outcome(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.max_wait_half_open_ns = 5 * SEC;
  f.cfg.permitted_calls_half_open = 1;
  f.cfg.slow_call_duration_ns = 60 * SEC; /* only the limit may reopen it */
  fx_create(&f);
  uint64_t p;
  to_half_open(&f, &p);
  advance(&f.clock, 5 * SEC); /* the one trial outcome comes too late */
  fe_breaker_on_success(f.b, p);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_OPEN);
  assert_int_equal(f.seen.n, 3);
  expect_seen(&f.seen, 2, FE_BREAKER_HALF_OPEN, FE_BREAKER_OPEN);
  fe_breaker_destroy(f.b);
}

static void test_manual_states(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  uint64_t p;
  call(&f, 0, 0);

  assert_int_equal(fe_breaker_force_open(f.b), 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_FORCED_OPEN);
  advance(&f.clock, 100 * SEC); /* no wait ends a forced open */
  assert_int_equal(fe_breaker_acquire(f.b, &p), FE_EBREAKER);
  assert_int_equal(fe_breaker_acquire(f.b, &p), FE_EBREAKER);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.not_permitted_calls, 2);
  assert_int_equal(m.buffered_calls, 0);
  assert_int_equal(m.failure_rate_permille, -1);
  assert_int_equal(fe_breaker_force_open(f.b), 0); /* same state: no event */
  assert_int_equal(f.seen.n, 1);

  assert_int_equal(fe_breaker_disable(f.b), 0);
  for (int i = 0; i < 20; i++)
    call(&f, 0, SEC);
  m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_DISABLED);
  assert_int_equal(m.buffered_calls, 0);

  assert_int_equal(fe_breaker_metrics_only(f.b), 0);
  for (int i = 0; i < 20; i++)
    call(&f, 0, SEC);
  m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_METRICS_ONLY);
  assert_int_equal(m.buffered_calls, 10);
  assert_int_equal(m.failed_calls, 10);
  assert_int_equal(m.slow_calls, 10);
  assert_int_equal(m.failure_rate_permille, 1000);

  assert_int_equal(fe_breaker_reset(f.b), 0);
  m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_CLOSED);
  assert_int_equal(m.buffered_calls, 0);
  assert_int_equal(m.transitions, 4);
  call(&f, 0, 0);
  assert_int_equal(metrics(f.b).buffered_calls, 1);
  /* Reset from CLOSED empties the window but is no transition. */
  assert_int_equal(fe_breaker_reset(f.b), 0);
  m = metrics(f.b);
  assert_int_equal(m.buffered_calls, 0);
  assert_int_equal(m.transitions, 4);

  assert_int_equal(f.seen.n, 4);
  expect_seen(&f.seen, 0, FE_BREAKER_CLOSED, FE_BREAKER_FORCED_OPEN);
  expect_seen(&f.seen, 1, FE_BREAKER_FORCED_OPEN, FE_BREAKER_DISABLED);
  expect_seen(&f.seen, 2, FE_BREAKER_DISABLED, FE_BREAKER_METRICS_ONLY);
  expect_seen(&f.seen, 3, FE_BREAKER_METRICS_ONLY, FE_BREAKER_CLOSED);

  /* Reset out of OPEN and HALF_OPEN too. */
  trip(&f);
  assert_int_equal(fe_breaker_reset(f.b), 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_CLOSED);
  to_half_open(&f, &p);
  assert_int_equal(fe_breaker_reset(f.b), 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_CLOSED);
  fe_breaker_destroy(f.b);
}

static void test_time_window(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.window_type = FE_BREAKER_WINDOW_TIME;
  f.cfg.window_size = 3; /* seconds */
  f.cfg.minimum_calls = 2;
  f.cfg.failure_rate_threshold = 100;
  f.clock.ns = 10 * SEC; /* second 10 */
  fx_create(&f);
  call(&f, 1, 0);
  call(&f, 0, 0);
  advance(&f.clock, SEC);       /* second 11 */
  call(&f, 1, 0);
  advance(&f.clock, SEC + 999 * MS); /* 12.999 */
  call(&f, 1, 0);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.buffered_calls, 4);
  assert_int_equal(m.failed_calls, 1);
  assert_int_equal(m.failure_rate_permille, 250);
  advance(&f.clock, 1 * MS);     /* second 13: second 10 leaves */
  m = metrics(f.b);
  assert_int_equal(m.buffered_calls, 2);
  assert_int_equal(m.failed_calls, 0);
  advance(&f.clock, SEC);       /* second 14: second 11 leaves */
  assert_int_equal(metrics(f.b).buffered_calls, 1);
  advance(&f.clock, 100 * SEC); /* everything leaves at once */
  m = metrics(f.b);
  assert_int_equal(m.buffered_calls, 0);
  assert_int_equal(m.failure_rate_permille, -1);
  assert_int_equal(m.state, FE_BREAKER_CLOSED);
  fe_breaker_destroy(f.b);
}

static void test_time_window_rates_recent_only(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.window_type = FE_BREAKER_WINDOW_TIME;
  f.cfg.window_size = 3;
  f.cfg.minimum_calls = 2;
  f.cfg.failure_rate_threshold = 50;
  f.clock.ns = 20 * SEC;
  fx_create(&f);
  for (int i = 0; i < 6; i++)
    call(&f, 1, 0);
  call(&f, 0, 0);
  advance(&f.clock, 3 * SEC); /* second 23: second 20 has left */
  /* Counting second 20, 3 failures in 9 would be 33 %: still closed.
   * Over seconds 21..23, 2 failures in 2 are 100 %. */
  call(&f, 0, 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_CLOSED); /* 1 < min */
  call(&f, 0, 0);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_OPEN);
  assert_int_equal(m.buffered_calls, 2);
  assert_int_equal(m.failed_calls, 2);
  fe_breaker_destroy(f.b);
}

static void test_stale_epoch_ignored(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  /* A straggler from CLOSED, finished in HALF_OPEN, is not a trial call. */
  uint64_t old, p;
  assert_int_equal(fe_breaker_acquire(f.b, &old), 0);
  to_half_open(&f, &p);
  assert_int_equal(fe_breaker_on_error(f.b, old), 0);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_HALF_OPEN);
  assert_int_equal(m.buffered_calls, 0);
  /* Nor can its release free a trial slot. */
  uint64_t p2, p3, p4;
  assert_int_equal(fe_breaker_acquire(f.b, &p2), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &p3), 0);
  assert_int_equal(fe_breaker_release(f.b, old), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &p4), FE_EBREAKER);
  /* The trial closes it; then the straggler from the first CLOSED epoch,
   * slow and failed, must not count in the new CLOSED window (same state,
   * later epoch). */
  fe_breaker_on_success(f.b, p);
  fe_breaker_on_success(f.b, p2);
  fe_breaker_on_success(f.b, p3);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_CLOSED);
  advance(&f.clock, 10 * SEC);
  assert_int_equal(fe_breaker_on_error(f.b, old), 0);
  assert_int_equal(metrics(f.b).buffered_calls, 0);
  /* Manual transitions start epochs too. */
  assert_int_equal(fe_breaker_acquire(f.b, &old), 0);
  assert_int_equal(fe_breaker_reset(f.b), 0);
  assert_int_equal(fe_breaker_on_error(f.b, old), 0);
  assert_int_equal(metrics(f.b).buffered_calls, 0);
  assert_int_equal(fe_breaker_acquire(f.b, &old), 0);
  assert_int_equal(fe_breaker_metrics_only(f.b), 0);
  assert_int_equal(fe_breaker_on_error(f.b, old), 0);
  assert_int_equal(metrics(f.b).buffered_calls, 0);
  fe_breaker_destroy(f.b);
}

static void test_release_frees_half_open_slot(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  uint64_t p[3], q;
  to_half_open(&f, &p[0]);
  assert_int_equal(fe_breaker_acquire(f.b, &p[1]), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &p[2]), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &q), FE_EBREAKER);
  assert_int_equal(fe_breaker_release(f.b, p[1]), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &q), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &p[1]), FE_EBREAKER);
  /* Released calls record nothing: the trial completes with three real
   * outcomes. */
  fe_breaker_on_success(f.b, p[0]);
  fe_breaker_on_success(f.b, p[2]);
  assert_int_equal(metrics(f.b).buffered_calls, 2);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_HALF_OPEN);
  fe_breaker_on_success(f.b, q);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_CLOSED);
  /* Release in CLOSED is harmless. */
  assert_int_equal(fe_breaker_acquire(f.b, &q), 0);
  assert_int_equal(fe_breaker_release(f.b, q), 0);
  assert_int_equal(metrics(f.b).buffered_calls, 0);
  fe_breaker_destroy(f.b);
}

static void test_callback_full_cycle(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  uint64_t p[3];
  to_half_open(&f, &p[0]);         /* CLOSED->OPEN->HALF_OPEN */
  assert_int_equal(fe_breaker_acquire(f.b, &p[1]), 0);
  assert_int_equal(fe_breaker_acquire(f.b, &p[2]), 0);
  for (int i = 0; i < 3; i++)
    fe_breaker_on_error(f.b, p[i]); /* ->OPEN */
  advance(&f.clock, SEC);
  for (int i = 0; i < 3; i++)      /* ->HALF_OPEN */
    assert_int_equal(fe_breaker_acquire(f.b, &p[i]), 0);
  for (int i = 0; i < 3; i++)
    fe_breaker_on_success(f.b, p[i]); /* ->CLOSED */
  const fe_breaker_state_t want[][2] = {
      {FE_BREAKER_CLOSED, FE_BREAKER_OPEN},
      {FE_BREAKER_OPEN, FE_BREAKER_HALF_OPEN},
      {FE_BREAKER_HALF_OPEN, FE_BREAKER_OPEN},
      {FE_BREAKER_OPEN, FE_BREAKER_HALF_OPEN},
      {FE_BREAKER_HALF_OPEN, FE_BREAKER_CLOSED}};
  assert_int_equal(f.seen.n, 5);
  for (int i = 0; i < 5; i++)
    expect_seen(&f.seen, i, want[i][0], want[i][1]);
  assert_int_equal(metrics(f.b).transitions, 5);
  fe_breaker_destroy(f.b);
}

/* A callback that calls back into the breaker it reports on. */
static void reentrant_state(const char *name, fe_breaker_state_t from,
                            fe_breaker_state_t to, void *user) {
  (void)name;
  (void)from;
  fe_breaker_t **b = user;
  fe_breaker_metrics_t m;
  assert_int_equal(fe_breaker_metrics(*b, &m), 0);
  assert_int_equal(m.state, to);
  if (to == FE_BREAKER_OPEN)
    assert_int_equal(fe_breaker_force_open(*b), 0); /* nested transition */
}

static void test_callback_may_reenter(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.on_state = reentrant_state;
  f.cfg.user = &f.b;
  fx_create(&f);
  for (uint32_t i = 0; i < f.cfg.minimum_calls; i++)
    call(&f, 0, 0);
  /* The trip reached OPEN; the callback then forced it open. */
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_FORCED_OPEN);
  fe_breaker_destroy(f.b);
}

typedef struct bad_case {
  const char *what;
  int code;
  const char *needle; /* in the message */
} bad_case_t;

static void mutate(fe_breaker_config_t *c, int i) {
  switch (i) {
  case 0: c->name = NULL; break;
  case 1: c->name = ""; break;
  case 2: c->name = "abcdefghijklmnopqrstuvwxyz012345"; break; /* 32 bytes */
  case 3: c->name = "bad name"; break;
  case 4: c->failure_rate_threshold = 0; break;
  case 5: c->failure_rate_threshold = 101; break;
  case 6: c->slow_call_rate_threshold = 0; break;
  case 7: c->slow_call_rate_threshold = 101; break;
  case 8: c->slow_call_duration_ns = 0; break;
  case 9: c->slow_call_duration_ns = FE_BREAKER_DURATION_LIMIT; break;
  case 10: c->window_type = (fe_breaker_window_t)7; break;
  case 11: c->window_size = 0; break;
  case 12: c->window_size = FE_BREAKER_SIZE_MAX + 1; break;
  case 13: c->minimum_calls = 0; break;
  case 14: c->permitted_calls_half_open = 0; break;
  case 15: c->permitted_calls_half_open = FE_BREAKER_SIZE_MAX + 1; break;
  case 16: c->wait_open_ns = 0; break;
  default: break;
  }
}

static void test_invalid_configs(void **state) {
  (void)state;
  static const bad_case_t cases[] = {
      {"name NULL", FE_ENAME, "name is NULL"},
      {"name empty", FE_ENAME, "name is empty"},
      {"name long", FE_ENAME, "at most 31"},
      {"name char", FE_ENAME, "byte 0x20 at offset 3"},
      {"fail 0", FE_ERANGE, "failure_rate_threshold 0 "},
      {"fail 101", FE_ERANGE, "failure_rate_threshold 101 "},
      {"slow 0", FE_ERANGE, "slow_call_rate_threshold 0 "},
      {"slow 101", FE_ERANGE, "slow_call_rate_threshold 101 "},
      {"dur 0", FE_ERANGE, "slow_call_duration_ns 0 "},
      {"dur big", FE_ERANGE, "slow_call_duration_ns 281474976710656 "},
      {"window type", FE_EINVAL, "window_type 7 "},
      {"window 0", FE_ERANGE, "window_size 0 "},
      {"window big", FE_ERANGE, "window_size 1048577 "},
      {"min 0", FE_ERANGE, "minimum_calls is 0"},
      {"half 0", FE_ERANGE, "permitted_calls_half_open 0 "},
      {"half big", FE_ERANGE, "permitted_calls_half_open 1048577 "},
      {"wait 0", FE_ERANGE, "wait_open_ns is 0"},
  };
  const int n = (int)(sizeof cases / sizeof cases[0]);
  char msgs[sizeof cases / sizeof cases[0]][FE_DIAG_MAX];
  for (int i = 0; i < n; i++) {
    fe_breaker_config_t c;
    fe_breaker_config_init(&c);
    mutate(&c, i);
    fe_diag_t d;
    memset(&d, 0, sizeof d);
    fe_breaker_t *b = (fe_breaker_t *)&c; /* must stay untouched */
    int rc = fe_breaker_create(&c, &b, &d);
    if (rc != cases[i].code || strstr(d.msg, cases[i].needle) == NULL)
      fail_msg("%s: rc %d (%s), message \"%s\"", cases[i].what, rc,
               fe_err_name(rc), d.msg);
    assert_int_equal(d.code, cases[i].code);
    assert_ptr_equal(b, (fe_breaker_t *)&c);
    assert_int_equal(fe_breaker_config_check(&c, NULL), cases[i].code);
    strcpy(msgs[i], d.msg);
    for (int j = 0; j < i; j++)
      assert_string_not_equal(msgs[i], msgs[j]);
  }
  /* The boundaries themselves are fine; the name is copied. */
  fe_breaker_config_t c;
  fe_breaker_config_init(&c);
  char name[FE_BREAKER_NAME_MAX];
  memset(name, 'a', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  c.name = name;
  c.failure_rate_threshold = 100;
  c.slow_call_rate_threshold = 1;
  c.slow_call_duration_ns = FE_BREAKER_DURATION_LIMIT - 1;
  c.window_type = FE_BREAKER_WINDOW_TIME;
  c.window_size = 1;
  c.minimum_calls = 1;
  c.permitted_calls_half_open = 1;
  c.wait_open_ns = 1;
  fe_breaker_t *b;
  assert_int_equal(fe_breaker_create(&c, &b, NULL), 0);
  name[0] = 'z';
  seen_t s;
  memset(&s, 0, sizeof s);
  fe_breaker_destroy(b);
  c.name = "venue-1.XLON:fix_gw";
  c.on_state = record_state;
  c.user = &s;
  assert_int_equal(fe_breaker_create(&c, &b, NULL), 0);
  name[0] = 'y';
  assert_int_equal(fe_breaker_force_open(b), 0);
  assert_string_equal(s.name, "venue-1.XLON:fix_gw");
  fe_breaker_destroy(b);
}

static void test_null_args(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  fx_create(&f);
  fe_diag_t d;
  fe_breaker_t *b = NULL;
  uint64_t p = 0;
  fe_breaker_metrics_t m;
  assert_int_equal(fe_breaker_create(NULL, &b, &d), FE_EINVAL);
  assert_int_equal(d.code, FE_EINVAL);
  assert_non_null(strstr(d.msg, "config is NULL"));
  assert_int_equal(fe_breaker_create(&f.cfg, NULL, &d), FE_EINVAL);
  assert_non_null(strstr(d.msg, "out is NULL"));
  assert_int_equal(fe_breaker_create(NULL, NULL, NULL), FE_EINVAL);
  assert_int_equal(fe_breaker_config_check(NULL, NULL), FE_EINVAL);
  assert_int_equal(fe_breaker_acquire(NULL, &p), FE_EINVAL);
  assert_int_equal(fe_breaker_acquire(f.b, NULL), FE_EINVAL);
  assert_int_equal(fe_breaker_on_success(NULL, p), FE_EINVAL);
  assert_int_equal(fe_breaker_on_error(NULL, p), FE_EINVAL);
  assert_int_equal(fe_breaker_release(NULL, p), FE_EINVAL);
  assert_int_equal(fe_breaker_force_open(NULL), FE_EINVAL);
  assert_int_equal(fe_breaker_disable(NULL), FE_EINVAL);
  assert_int_equal(fe_breaker_metrics_only(NULL), FE_EINVAL);
  assert_int_equal(fe_breaker_reset(NULL), FE_EINVAL);
  assert_int_equal(fe_breaker_state(NULL), FE_EINVAL);
  assert_int_equal(fe_breaker_metrics(NULL, &m), FE_EINVAL);
  assert_int_equal(fe_breaker_metrics(f.b, NULL), FE_EINVAL);
  assert_int_equal(f.seen.n, 0);
  assert_int_equal(fe_breaker_state(f.b), FE_BREAKER_CLOSED);
  fe_breaker_destroy(f.b);
}

/* ------------------------------------------------------- two threads */

#define ITERS 20000

typedef struct worker {
  fe_breaker_t *b;
  int id;
  uint64_t permitted, rejected, errors, released;
} worker_t;

/* Never trips: every third call fails, threshold 100 %. */
static void *steady_worker(void *arg) {
  worker_t *w = arg;
  for (int i = 0; i < ITERS; i++) {
    uint64_t p;
    if (fe_breaker_acquire(w->b, &p) != 0) {
      w->rejected++;
      continue;
    }
    w->permitted++;
    if (i % 3 == 0) {
      fe_breaker_on_error(w->b, p);
      w->errors++;
    } else {
      fe_breaker_on_success(w->b, p);
    }
  }
  return NULL;
}

static void test_threads_counts_add_up(void **state) {
  (void)state;
  fx_t f;
  fx_config(&f);
  f.cfg.window_size = 2 * ITERS;
  f.cfg.minimum_calls = 2 * ITERS;
  f.cfg.failure_rate_threshold = 100;
  f.clock.step = 1000;
  fx_create(&f);
  worker_t w[2] = {{f.b, 0, 0, 0, 0, 0}, {f.b, 1, 0, 0, 0, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&t[i], NULL, steady_worker, &w[i]), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  fe_breaker_metrics_t m = metrics(f.b);
  assert_int_equal(m.state, FE_BREAKER_CLOSED);
  assert_int_equal(w[0].permitted + w[1].permitted, 2 * ITERS);
  assert_int_equal(m.buffered_calls, 2 * ITERS);
  assert_int_equal(m.failed_calls, w[0].errors + w[1].errors);
  assert_int_equal(m.not_permitted_calls, 0);
  assert_int_equal(m.transitions, 0);
  fe_breaker_destroy(f.b);
}

/* Flaps through every automatic state: bursts of failures trip it, the
 * clock's steady advance ends each open wait, and trial calls mostly
 * succeed; some permits are released. */
static void *flapping_worker(void *arg) {
  worker_t *w = arg;
  for (int i = 0; i < ITERS; i++) {
    uint64_t p;
    if (fe_breaker_acquire(w->b, &p) != 0) {
      w->rejected++;
      continue;
    }
    w->permitted++;
    if (i % 11 == 5) {
      fe_breaker_release(w->b, p);
      w->released++;
    } else if ((i / 40) % 3 == 0) {
      fe_breaker_on_error(w->b, p);
      w->errors++;
    } else {
      fe_breaker_on_success(w->b, p);
    }
  }
  return NULL;
}

static int legal(fe_breaker_state_t from, fe_breaker_state_t to) {
  return (from == FE_BREAKER_CLOSED && to == FE_BREAKER_OPEN) ||
         (from == FE_BREAKER_OPEN && to == FE_BREAKER_HALF_OPEN) ||
         (from == FE_BREAKER_HALF_OPEN && to == FE_BREAKER_OPEN) ||
         (from == FE_BREAKER_HALF_OPEN && to == FE_BREAKER_CLOSED);
}

typedef struct counting {
  int calls;   /* atomic */
  int illegal; /* atomic */
} counting_t;

static void count_state(const char *name, fe_breaker_state_t from,
                        fe_breaker_state_t to, void *user) {
  (void)name;
  counting_t *c = user;
  __atomic_fetch_add(&c->calls, 1, __ATOMIC_RELAXED);
  if (!legal(from, to))
    __atomic_fetch_add(&c->illegal, 1, __ATOMIC_RELAXED);
}

static void test_threads_flapping(void **state) {
  (void)state;
  fx_t f;
  counting_t cnt = {0, 0};
  fx_config(&f);
  f.cfg.window_size = 10;
  f.cfg.minimum_calls = 10;
  f.cfg.wait_open_ns = 200 * 1000;      /* 200 us */
  f.cfg.max_wait_half_open_ns = 2 * MS; /* with releases in the mix */
  f.cfg.on_state = count_state;
  f.cfg.user = &cnt;
  f.clock.step = 1000; /* 1 us per clock read */
  fx_create(&f);
  worker_t w[2] = {{f.b, 0, 0, 0, 0, 0}, {f.b, 1, 0, 0, 0, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&t[i], NULL, flapping_worker, &w[i]), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  fe_breaker_metrics_t m = metrics(f.b);
  for (int i = 0; i < 2; i++)
    assert_int_equal(w[i].permitted + w[i].rejected, ITERS);
  assert_int_equal(m.not_permitted_calls, w[0].rejected + w[1].rejected);
  assert_int_equal(m.transitions, (uint64_t)cnt.calls);
  assert_int_equal(cnt.illegal, 0);
  assert_true(m.transitions >= 3);   /* it did flap */
  assert_true(m.not_permitted_calls > 0);
  assert_true(m.buffered_calls <= 10);
  fe_breaker_destroy(f.b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_state_names),
      cmocka_unit_test(test_not_before_minimum_calls),
      cmocka_unit_test(test_open_by_failure_rate_threshold),
      cmocka_unit_test(test_open_by_slow_rate),
      cmocka_unit_test(test_count_window_eviction),
      cmocka_unit_test(test_open_rejects_then_half_open),
      cmocka_unit_test(test_half_open_permits_n_then_closes),
      cmocka_unit_test(test_half_open_bad_trial_reopens),
      cmocka_unit_test(test_half_open_slow_trial_reopens),
      cmocka_unit_test(test_max_wait_half_open),
      cmocka_unit_test(test_max_wait_half_open_on_outcome),
      cmocka_unit_test(test_manual_states),
      cmocka_unit_test(test_time_window),
      cmocka_unit_test(test_time_window_rates_recent_only),
      cmocka_unit_test(test_stale_epoch_ignored),
      cmocka_unit_test(test_release_frees_half_open_slot),
      cmocka_unit_test(test_callback_full_cycle),
      cmocka_unit_test(test_callback_may_reenter),
      cmocka_unit_test(test_invalid_configs),
      cmocka_unit_test(test_null_args),
      cmocka_unit_test(test_threads_counts_add_up),
      cmocka_unit_test(test_threads_flapping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
